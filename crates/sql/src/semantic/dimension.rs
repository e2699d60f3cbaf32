//! DIMENSION semantic functions (SQL interface spec §12.2): `GROUP BY TOPICS(title, 5)` groups rows by
//! buckets the model names after seeing the column's distinct values.
//!
//! Before planning, the planner asks [`sites`] for the DIMENSION calls in the GROUP BY of the statement's
//! SELECT, runs [`Site::distinct_sql`] (the distinct values of the call's column over the same FROM and
//! WHERE), and [`resolve`] asks the function's cascade for a value → bucket mapping: the values cut into
//! JSON arrays within `rvbbit.semantic_context_bytes`, the first chunk naming at most n buckets, every
//! later chunk (concurrently) assigning its values to the buckets named so far (input `buckets`). Then
//! [`Site::replace`] turns every copy of the call in the statement (select list, GROUP BY, HAVING,
//! ORDER BY) into a call of a per-statement lookup function ([`Lookup`]), so the plan groups by the
//! bucket label. A value the model left out is NULL (its own group), with a notice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, ObjectNamePart, SetExpr,
    Statement as SqlStatement, Value as SqlValue, visit_expressions_mut,
};
use rvbbit_cascade::model::{SqlShape, SqlType};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::chunk::chunk;
use super::coerce::{Typed, coerce};
use super::dialect::call_with;
use super::registry::Definition;
use crate::calls::{self, Call};
use crate::error::Error;
use crate::options::RvbbitOptions;
use crate::runtime::Runtime;
use crate::statement::{Answer, Statement};

/// The DIMENSION functions of a session, by call name.
#[derive(Debug, Default)]
pub(crate) struct Dimensions(BTreeMap<String, Arc<Definition>>);

impl Dimensions {
    /// The DIMENSION functions among `functions`, under each of their call names.
    pub(crate) fn of(functions: &[Arc<Definition>]) -> Dimensions {
        let mut map = BTreeMap::new();
        for f in functions
            .iter()
            .filter(|f| f.spec.call_shape() == SqlShape::Dimension)
        {
            for name in f.call_names() {
                map.entry(name).or_insert_with(|| f.clone());
            }
        }
        Dimensions(map)
    }

    /// Whether the session has none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, name: &str) -> Option<Arc<Definition>> {
        self.0.get(name).cloned()
    }
}

/// One DIMENSION call in a GROUP BY.
#[derive(Debug)]
pub(crate) struct Site {
    /// The call as written (after parsing), which its copies in the statement match.
    call: String,
    /// The function.
    pub(crate) definition: Arc<Definition>,
    /// The grouped column (the first argument).
    column: Expr,
    /// The other arguments, as text (literals).
    extra: Vec<String>,
    /// `SELECT DISTINCT` of the column over the SELECT's FROM and WHERE.
    distinct: String,
}

impl Site {
    /// The query giving the distinct values of the call's column (as text, NULLs left out).
    pub(crate) fn distinct_sql(&self) -> &str {
        &self.distinct
    }

    /// Replace every copy of the call in `statement` by `lookup(column)`.
    pub(crate) fn replace(&self, statement: &mut DfStatement, lookup: &str) {
        let mut swap = |expr: &mut Expr| {
            if matches!(expr, Expr::Function(_)) && expr.to_string() == self.call {
                *expr = call_with(lookup, vec![self.column.clone()], None);
            }
            ControlFlow::<()>::Continue(())
        };
        match statement {
            DfStatement::Statement(s) => {
                // The visitor never breaks: the result carries nothing.
                let _ = visit_expressions_mut(s.as_mut(), &mut swap);
            }
            DfStatement::Explain(explain) => self.replace(&mut explain.statement, lookup),
            _ => {}
        }
    }
}

/// Whether `statement` is an `EXPLAIN` (its DIMENSION calls are planned without asking the model).
pub(crate) fn is_explain(statement: &DfStatement) -> bool {
    matches!(statement, DfStatement::Explain(_))
}

/// The DIMENSION calls in the GROUP BY of `statement`'s SELECT (a query, or `CREATE TABLE … AS` one,
/// also under `EXPLAIN`).
pub(crate) fn sites(statement: &DfStatement, dimensions: &Dimensions) -> Result<Vec<Site>, Error> {
    let s = match statement {
        DfStatement::Statement(s) => s,
        DfStatement::Explain(explain) => return sites(&explain.statement, dimensions),
        _ => return Ok(Vec::new()),
    };
    let query = match s.as_ref() {
        SqlStatement::Query(q) => q,
        SqlStatement::CreateTable(create) => match &create.query {
            Some(q) => q,
            None => return Ok(Vec::new()),
        },
        _ => return Ok(Vec::new()),
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Ok(Vec::new());
    };
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Site> = Vec::new();
    for expr in exprs {
        let Expr::Function(f) = expr else { continue };
        let Some(ObjectNamePart::Identifier(ident)) = f.name.0.last() else {
            continue;
        };
        let Some(definition) = dimensions.get(&ident.value.to_lowercase()) else {
            continue;
        };
        let FunctionArguments::List(list) = &f.args else {
            continue;
        };
        let mut args = list.args.iter().map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
            other => Err(Error::Invalid {
                message: format!("{}: the argument `{other}` is not a plain value", ident.value),
            }),
        });
        let Some(column) = args.next().transpose()? else {
            return Err(Error::Invalid {
                message: format!(
                    "{}(…) needs the column to group as its first argument",
                    ident.value
                ),
            });
        };
        let extra = args
            .map(|e| literal(&e?, &ident.value))
            .collect::<Result<Vec<String>, Error>>()?;
        let with = query.with.as_ref().map(|w| format!("{w} ")).unwrap_or_default();
        let from = select
            .from
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if from.is_empty() {
            return Err(Error::Invalid {
                message: format!("GROUP BY {}(…) needs a FROM clause", ident.value),
            });
        }
        let filter = select
            .selection
            .as_ref()
            .map(|w| format!(" WHERE {w}"))
            .unwrap_or_default();
        let call = expr.to_string();
        if out.iter().any(|s| s.call == call) {
            continue;
        }
        out.push(Site {
            distinct: format!(
                "{with}SELECT DISTINCT CAST(({column}) AS VARCHAR) AS value FROM {from}{filter} ORDER BY 1"
            ),
            call,
            definition,
            column,
            extra,
        });
    }
    Ok(out)
}

/// A literal argument's text (`5`, `'a hint'`).
fn literal(expr: &Expr, function: &str) -> Result<String, Error> {
    match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => Ok(n.clone()),
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Ok(s.clone()),
            SqlValue::Boolean(b) => Ok(b.to_string()),
            other => Err(not_literal(function, &other.to_string())),
        },
        other => Err(not_literal(function, &other.to_string())),
    }
}

fn not_literal(function: &str, arg: &str) -> Error {
    Error::Invalid {
        message: format!(
            "{function}: `{arg}` must be a literal (a number or a quoted string): a DIMENSION function's \
             arguments after the column are the same for every row"
        ),
    }
}

/// What [`resolve`] needs of the statement.
pub(crate) struct Ask<'a> {
    pub(crate) runtime: &'a Runtime,
    pub(crate) stmt: &'a Arc<Statement>,
    pub(crate) options: &'a RvbbitOptions,
}

/// The value → bucket mapping of `site` over `values`.
pub(crate) async fn resolve(
    site: &Site,
    values: &[String],
    ask: &Ask<'_>,
) -> Result<HashMap<String, String>, Error> {
    let name = &site.definition.name;
    let chunks = chunk(values, ask.options.semantic_context_bytes);
    if chunks.arrays.len() > 1 {
        tracing::debug!(function = %name, values = values.len(), chunks = chunks.arrays.len(), "dimension in chunks");
    }
    if chunks.truncated > 0 {
        ask.stmt.note(&format!(
            "{name}: {} value(s) longer than rvbbit.semantic_context_bytes = {} were cut to fit (raise it with \
             SET rvbbit.semantic_context_bytes = n)",
            chunks.truncated, ask.options.semantic_context_bytes
        ));
    }
    let mut mapping = HashMap::new();
    match chunks.arrays.as_slice() {
        [] => return Ok(mapping),
        // All values in one prompt: one call names the buckets and assigns them.
        [only] => mapping.extend(ask_chunk(site, only, None, ask).await?),
        arrays => {
            // The buckets are named from a sample spread over all the values (every k-th), then every
            // value the sample left out is assigned to them, chunk by chunk, concurrently.
            let sample = spread_sample(values, arrays.len(), ask.options.semantic_context_bytes);
            mapping.extend(ask_chunk(site, &sample, None, ask).await?);
            let buckets: BTreeSet<&String> = mapping.values().collect();
            let listed = serde_json::to_string(&buckets).unwrap_or_default();
            let left: Vec<&String> = values.iter().filter(|v| !mapping.contains_key(*v)).collect();
            let calls: Vec<Call> = chunk(&left, ask.options.semantic_context_bytes)
                .arrays
                .iter()
                .map(|array| chunk_call(site, array, Some(&listed), ask))
                .collect();
            let answers = calls::answer_within(ask.runtime, ask.stmt, calls, ask.options.max_calls).await?;
            for answer in answers {
                mapping.extend(read_mapping(site, &answer, ask));
            }
        }
    }
    let missing = values.iter().filter(|v| !mapping.contains_key(*v)).count();
    if missing > 0 {
        ask.stmt.note(&format!(
            "{name}: the model put {missing} of {} value(s) in no bucket; their rows are grouped under NULL",
            values.len()
        ));
    }
    Ok(mapping)
}

/// Every k-th of `values` (k from `chunks` up, doubling) until they fit one prompt of `budget` bytes, as
/// a JSON array.
fn spread_sample(values: &[String], chunks: usize, budget: usize) -> String {
    let mut step = chunks.max(2);
    loop {
        let sample: Vec<&String> = values.iter().step_by(step).collect();
        let fitted = chunk(&sample, budget).arrays;
        if fitted.len() <= 1 || step >= values.len() {
            return fitted.into_iter().next().unwrap_or_else(|| "[]".into());
        }
        step *= 2;
    }
}

/// Ask one chunk alone (the naming one).
async fn ask_chunk(
    site: &Site,
    array: &str,
    buckets: Option<&str>,
    ask: &Ask<'_>,
) -> Result<HashMap<String, String>, Error> {
    let call = chunk_call(site, array, buckets, ask);
    let answers = calls::answer_within(ask.runtime, ask.stmt, vec![call], ask.options.max_calls).await?;
    Ok(answers
        .first()
        .map(|a| read_mapping(site, a, ask))
        .unwrap_or_default())
}

/// The call asking `array` (a JSON array of values), with the buckets named so far.
fn chunk_call(site: &Site, array: &str, buckets: Option<&str>, ask: &Ask<'_>) -> Call {
    let spec = &site.definition.spec;
    let context = spec
        .context_arg
        .clone()
        .or_else(|| spec.args.first().map(|a| a.name.clone()))
        .unwrap_or_else(|| "texts".into());
    let mut input = Map::new();
    let mut extra = site.extra.iter();
    for arg in &spec.args {
        let value = if arg.name == context {
            array.to_owned()
        } else {
            match (extra.next(), &arg.default) {
                (Some(v), _) => v.clone(),
                (None, Some(Value::String(d))) => d.clone(),
                (None, Some(Value::Null) | None) => String::new(),
                (None, Some(other)) => other.to_string(),
            }
        };
        input.insert(arg.name.clone(), Value::String(value));
    }
    input.insert(
        "buckets".into(),
        Value::String(buckets.unwrap_or_default().to_owned()),
    );
    let cache = ask.options.cache && spec.cache != Some(false);
    Call::run(
        ask.runtime,
        site.definition.cascade.clone(),
        Value::Object(input),
        None,
        cache,
    )
    .with_ttl(spec.cache_ttl)
}

/// The mapping in one answer: a JSON object `{value: bucket}`, or an array of `{value, bucket}`. A failed
/// or unreadable answer gives none, with a notice.
fn read_mapping(site: &Site, answer: &Answer, ask: &Ask<'_>) -> HashMap<String, String> {
    let name = &site.definition.name;
    let doc = match answer {
        Answer::Ok(doc) => doc,
        Answer::Failed { message, .. } => {
            ask.stmt.note(&format!("{name} failed: {message}"));
            return HashMap::new();
        }
    };
    let parsed = match coerce(SqlType::Json, doc.get("final_output").unwrap_or(&Value::Null)) {
        Ok(Typed::Text(text)) => serde_json::from_str::<Value>(&text).ok(),
        _ => None,
    };
    let label = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut out = HashMap::new();
    match parsed {
        Some(Value::Object(map)) => {
            for (value, bucket) in map {
                if let Some(b) = label(&bucket) {
                    out.insert(value, b);
                }
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let value = item.get("value").and_then(Value::as_str);
                let bucket = ["bucket", "label", "topic"]
                    .iter()
                    .find_map(|k| item.get(*k))
                    .and_then(label);
                if let (Some(v), Some(b)) = (value, bucket) {
                    out.insert(v.to_owned(), b);
                }
            }
        }
        _ => ask.stmt.note(&format!(
            "{name}: the answer is not a JSON object of value → bucket; its values are grouped under NULL"
        )),
    }
    out
}

/// The per-statement function giving a value's bucket.
#[derive(Debug)]
pub(crate) struct Lookup {
    name: String,
    mapping: HashMap<String, String>,
    signature: Signature,
}

impl Lookup {
    /// `mapping` under a name of its own (a digest of its content).
    pub(crate) fn new(mapping: HashMap<String, String>) -> Lookup {
        let mut pairs: Vec<(&String, &String)> = mapping.iter().collect();
        pairs.sort();
        let digest = hex::encode(Sha256::digest(json!(pairs).to_string().as_bytes()));
        Lookup {
            name: format!("__rvbbit_dimension_{}", &digest[..16]),
            mapping,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    /// Its SQL name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl PartialEq for Lookup {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Lookup {}

impl Hash for Lookup {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Lookup {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let Some(arg) = args.args.first() else {
            return Ok(ColumnarValue::Array(Arc::new(StringArray::new_null(n))));
        };
        let values: ArrayRef = datafusion::arrow::compute::cast(&arg.to_array(n)?, &DataType::Utf8)?;
        let text = values.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
            Error::Execution {
                message: format!("{}: the column did not convert to text", self.name),
            }
            .into_datafusion()
        })?;
        let mut out = StringBuilder::with_capacity(n, n * 8);
        for i in 0..n {
            let bucket = (!text.is_null(i))
                .then(|| self.mapping.get(text.value(i)))
                .flatten();
            out.append_option(bucket);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
