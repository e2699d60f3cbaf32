//! `sql_function`: a cascade exposed as a SQL function (SQL interface spec §12.1).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a cascade is called from SQL: its name, arguments, result type, shape and operator syntax.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SqlFunction {
    /// SQL function name (default: the `cascade_id`).
    pub name: Option<String>,
    /// What the function does, shown in the `rvbbit_functions` catalog.
    pub description: Option<String>,
    /// Positional SQL arguments; the cascade input is `{arg_name: value}`.
    pub args: Vec<SqlArg>,
    /// The SQL type of the result; the cascade's answer is coerced to it (default `VARCHAR`).
    pub returns: Option<SqlType>,
    /// How the function is called (default `SCALAR`).
    pub shape: Option<SqlShape>,
    /// Operator syntax, such as `'{{ text }} MEANS {{ criterion }}'` or `'CONDENSE({{ text }})'`.
    pub operators: Vec<String>,
    /// `AGGREGATE`: the argument that receives the JSON array of the group's values.
    pub context_arg: Option<String>,
    /// What the cascade returns: a value (the default), or SQL to execute or return.
    pub output_mode: Option<OutputMode>,
    /// Cache results (default true).
    pub cache: Option<bool>,
    /// Seconds a cached result stays valid (default: forever).
    pub cache_ttl: Option<u64>,
    /// How the cache key is computed (LARS: `strategy`, `structure_args`, `fingerprint_args`, ...).
    pub cache_key: Option<Value>,
    /// Seconds one call may take.
    pub timeout: Option<f64>,
    /// Retries of a failed call (default 2).
    pub max_retries: Option<u32>,
    /// `SCALAR`/`ROW`: the most rows asked in one prompt (1 to 1000, default 16; a session's
    /// `SET rvbbit.semantic_batch_size` wins). `1` always asks one row per call. Since v0.4.
    pub batch_size: Option<u32>,
    /// Register the function (default true).
    pub enabled: Option<bool>,
    /// Examples checked by a test run: `[{sql, expect, skip?, description}]`.
    pub test_cases: Option<Vec<Value>>,
    /// `DIMENSION` execution variant (LARS).
    pub mode: Option<Value>,
    /// `DIMENSION` extractor settings (LARS).
    pub extractor: Option<Value>,
    /// `DIMENSION` classifier settings (LARS).
    pub classifier: Option<Value>,
}

/// One positional argument of a SQL function.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlArg {
    /// The argument's name: the key of the cascade input (`{{ input.<name> }}`).
    pub name: String,
    /// SQL type of the argument (default `VARCHAR`); values reach the cascade as text.
    #[serde(default, rename = "type")]
    pub sql_type: Option<String>,
    /// The argument may be left out (default false).
    #[serde(default)]
    pub optional: Option<bool>,
    /// The value used when an optional argument is left out.
    #[serde(default)]
    pub default: Option<Value>,
    /// What the argument is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The argument's role (LARS).
    #[serde(default)]
    pub role: Option<String>,
    /// The argument's JSON structure feeds a `structure` cache key (LARS).
    #[serde(default)]
    pub structure_source: Option<bool>,
}

/// The SQL type of a function's result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SqlType {
    /// Text.
    #[default]
    #[serde(rename = "VARCHAR")]
    Varchar,
    /// A 64-bit integer.
    #[serde(rename = "INTEGER")]
    Integer,
    /// A 64-bit float.
    #[serde(rename = "DOUBLE")]
    Double,
    /// `true` or `false`.
    #[serde(rename = "BOOLEAN")]
    Boolean,
    /// JSON text.
    #[serde(rename = "JSON")]
    Json,
    /// A list of floats (embeddings; LARS).
    #[serde(rename = "DOUBLE[]")]
    DoubleList,
    /// A table (`PIPELINE` functions; LARS).
    #[serde(rename = "TABLE")]
    Table,
}

impl SqlType {
    /// The name as written in a file (`VARCHAR`, `BOOLEAN`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SqlType::Varchar => "VARCHAR",
            SqlType::Integer => "INTEGER",
            SqlType::Double => "DOUBLE",
            SqlType::Boolean => "BOOLEAN",
            SqlType::Json => "JSON",
            SqlType::DoubleList => "DOUBLE[]",
            SqlType::Table => "TABLE",
        }
    }
}

/// How a SQL function is called (spec §12.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SqlShape {
    /// Per row, `f(a, b)`: one run per distinct argument tuple.
    #[default]
    #[serde(rename = "SCALAR")]
    Scalar,
    /// Per row, like `SCALAR`.
    #[serde(rename = "ROW")]
    Row,
    /// Per group of a grouped `SELECT`.
    #[serde(rename = "AGGREGATE")]
    Aggregate,
    /// `GROUP BY f(col, n)`: values mapped to buckets.
    #[serde(rename = "DIMENSION")]
    Dimension,
    /// `SELECT ... THEN f 'x'`: a stage over the whole result.
    #[serde(rename = "PIPELINE")]
    Pipeline,
}

impl SqlShape {
    /// The name as written in a file (`SCALAR`, `AGGREGATE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SqlShape::Scalar => "SCALAR",
            SqlShape::Row => "ROW",
            SqlShape::Aggregate => "AGGREGATE",
            SqlShape::Dimension => "DIMENSION",
            SqlShape::Pipeline => "PIPELINE",
        }
    }
}

/// What a SQL function's cascade returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// A value (the default).
    #[default]
    Value,
    /// SQL that is executed; its scalar result is the value.
    SqlExecute,
    /// SQL text, returned as is.
    SqlRaw,
    /// A full SQL statement.
    SqlStatement,
}

impl SqlFunction {
    /// The SQL name: `name`, else the cascade id.
    pub fn sql_name<'a>(&'a self, cascade_id: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(cascade_id)
    }

    /// The declared result type (`VARCHAR` when not given).
    pub fn result_type(&self) -> SqlType {
        self.returns.unwrap_or_default()
    }

    /// The declared shape (`SCALAR` when not given).
    pub fn call_shape(&self) -> SqlShape {
        self.shape.unwrap_or_default()
    }
}
