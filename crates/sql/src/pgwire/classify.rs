//! What a wire statement is (parsed with sqlparser's PostgreSQL dialect): session commands the server
//! answers itself (SET/RESET/SHOW of PostgreSQL parameters, transaction control) or SQL for the
//! session ([`Sql`]), rewritten for the catalog (`rewrite.rs`) and rendered with its `$n` parameters
//! bound as literals in the syntax tree (`bind.rs`); and the command tag of a statement.

// `ErrorInfo` is pgwire's own error message type, which the protocol layer consumes as is; a statement
// fails at most once, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::{
    CopyTarget, Expr, ObjectName, ObjectNamePart, Reset, Set, Statement, Value, ValueWithSpan, VisitMut,
};
use pgwire::api::Type;
use pgwire::error::ErrorInfo;

pub(crate) use super::bind::Param;
use super::bind::{Binder, bind_text};
use super::copy::{self, CopyFormat, Direction, Target};
use super::cursor::{Fetch, Header};
use super::errors::{error, state};
use super::rewrite::CatalogRewriter;

/// One statement of a query string.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// `SET name = value` of a PostgreSQL parameter (kept per connection).
    SetParam {
        /// Lower-case parameter name.
        name: String,
        /// The value; None for `DEFAULT`.
        value: Option<String>,
    },
    /// `RESET name` / `RESET ALL` (None).
    Reset(Option<String>),
    /// `SHOW name` / `SHOW ALL`.
    Show(String),
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// `COPY (query) TO STDOUT` / `COPY table TO STDOUT`: the query's rows, streamed (`copy/out.rs`).
    CopyOut {
        /// The query, as for [`Kind::Sql`].
        sql: Box<Sql>,
        /// The row format.
        format: CopyFormat,
    },
    /// `COPY table FROM STDIN` (`copy/input.rs`).
    CopyIn(Box<Target>),
    /// A statement refused before it runs (a COPY form or option that is not served).
    Refused(Box<Refusal>),
    /// `DECLARE name CURSOR … FOR query` (`cursor/`).
    Declare(Box<Declare>),
    /// `FETCH` / `MOVE`.
    Fetch(Fetch),
    /// `CLOSE name` / `CLOSE ALL` (None).
    Close(Option<String>),
    /// Accepted and ignored (SAVEPOINT, RELEASE, DISCARD, DEALLOCATE, SET TRANSACTION, …) with this tag.
    Ignored(&'static str),
    /// SQL for the session.
    Sql(Sql),
}

/// `DECLARE name … CURSOR … FOR query`.
#[derive(Clone, Debug)]
pub(crate) struct Declare {
    pub(crate) header: Header,
    /// The query (a SELECT or VALUES), as any statement for the session.
    pub(crate) sql: Sql,
}

/// Why a statement is refused: its SQLSTATE, message and hint (an `ErrorInfo` when it runs).
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) hint: String,
}

impl Refusal {
    pub(super) fn of(info: ErrorInfo) -> Kind {
        Kind::Refused(Box::new(Refusal {
            code: info.code,
            message: info.message,
            hint: info.hint.unwrap_or_default(),
        }))
    }

    /// The error to answer with.
    pub(crate) fn error(&self) -> ErrorInfo {
        error(&self.code, self.message.clone(), self.hint.clone())
    }
}

/// SQL for the session: the parsed tree (None when sqlparser does not parse it: RVBBIT MAP, DataFusion
/// extensions) and the original text.
#[derive(Clone, Debug)]
pub(crate) struct Sql {
    /// The parsed statement, already rewritten for the catalog.
    pub(crate) ast: Option<Box<Statement>>,
    /// The text as the client sent it (used when there is no tree).
    pub(crate) text: String,
    /// Whether it reads `pg_catalog` tables (the session's catalog snapshot is refreshed first).
    pub(crate) reads_catalog: bool,
    /// Number of `$n` parameters (the highest n).
    pub(crate) params: usize,
    /// The types of parameters cast explicitly, as written (before the catalog rewrites).
    pub(crate) casts: BTreeMap<usize, Type>,
    /// Whether it calls `current_setting` or `set_config` (the connection answers those).
    pub(crate) calls_settings: bool,
    /// It has `-- @` annotations: the session gets `text` as written (the tree has no comments), its
    /// `$n` bound on the tokens ([`bind_text`]); the tree serves to infer the parameters' types.
    pub(crate) annotated: bool,
    /// A query's own trailing `WITH (…)` options, parsed apart and put back after the rendered
    /// statement.
    pub(crate) suffix: Option<String>,
}

impl Sql {
    /// The SQL to run, with `params` (text values and their types) bound as literals.
    pub(crate) fn render(&self, params: &[Param]) -> Result<String, ErrorInfo> {
        let text = self.render_body(params)?;
        Ok(self.with_suffix(text))
    }

    /// `text` followed by the statement's own `WITH (…)` options, if it has some.
    fn with_suffix(&self, text: String) -> String {
        match &self.suffix {
            Some(clause) => format!("{text}\n{clause}"),
            None => text,
        }
    }

    /// The statement without its own `WITH (…)` options, with `params` bound.
    fn render_body(&self, params: &[Param]) -> Result<String, ErrorInfo> {
        if self.annotated {
            return bind_text(&self.text, params);
        }
        let Some(ast) = &self.ast else {
            if params.is_empty() {
                return Ok(self.text.clone());
            }
            return Err(error(
                state::NOT_SUPPORTED,
                "parameters ($1, $2, …) are not supported in this statement",
                "put the values in the statement text, or use parameters in a plain SELECT",
            ));
        };
        if params.is_empty() && self.params == 0 {
            return Ok(ast.to_string());
        }
        let mut ast = ast.clone();
        let mut binder = Binder { params, error: None };
        // The binder keeps its error in `binder.error`; the visit's `ControlFlow` carries nothing.
        let _ = ast.visit(&mut binder);
        if let Some(e) = binder.error {
            return Err(e);
        }
        Ok(ast.to_string())
    }

    /// The statement with `params` bound in its tree (as [`Sql::render`] binds them) and no
    /// parameters left: what the connection answers `current_setting($1)` calls on.
    pub(crate) fn bound(&self, params: &[Param]) -> Result<Sql, ErrorInfo> {
        let Some(ast) = &self.ast else {
            return Ok(self.clone());
        };
        let mut ast = ast.clone();
        let mut binder = Binder { params, error: None };
        // The binder keeps its error in `binder.error`; the visit's `ControlFlow` carries nothing.
        let _ = ast.visit(&mut binder);
        if let Some(e) = binder.error {
            return Err(e);
        }
        Ok(Sql {
            ast: Some(ast),
            params: 0,
            ..self.clone()
        })
    }

    /// The SQL with every `$n` replaced by a typed NULL (for describing a statement before it is bound).
    pub(crate) fn render_unbound(&self, types: &[Option<Type>]) -> Option<String> {
        let ast = self.ast.as_ref()?;
        let nulls: Vec<Param> = (0..self.params)
            .map(|i| Param {
                value: None,
                ty: types.get(i).cloned().flatten().unwrap_or(Type::UNKNOWN),
            })
            .collect();
        if self.annotated {
            return bind_text(&self.text, &nulls).ok().map(|t| self.with_suffix(t));
        }
        let mut ast = ast.clone();
        let mut binder = Binder {
            params: &nulls,
            error: None,
        };
        // The binder keeps its error in `binder.error`; the visit's `ControlFlow` carries nothing.
        let _ = ast.visit(&mut binder);
        binder.error.is_none().then(|| self.with_suffix(ast.to_string()))
    }
}

/// The kind of one parsed statement.
pub(super) fn classify(statement: Statement) -> Kind {
    match &statement {
        Statement::Set(set) => match set {
            Set::SingleAssignment { variable, values, .. } => {
                let name = object_name(variable);
                if is_session_setting(&name) {
                    return sql(statement);
                }
                let value = values_text(values);
                if value.eq_ignore_ascii_case("default") {
                    Kind::SetParam { name, value: None }
                } else {
                    Kind::SetParam {
                        name,
                        value: Some(value),
                    }
                }
            }
            Set::SetTimeZone { value, .. } => Kind::SetParam {
                name: "timezone".into(),
                value: Some(values_text(std::slice::from_ref(value))),
            },
            Set::SetNames { charset_name, .. } => Kind::SetParam {
                name: "client_encoding".into(),
                value: Some(charset_name.value.clone()),
            },
            _ => Kind::Ignored("SET"),
        },
        Statement::Reset(reset) => match &reset.reset {
            Reset::ALL => Kind::Reset(None),
            Reset::ConfigurationParameter(name) => Kind::Reset(Some(object_name(name))),
        },
        Statement::ShowVariable { variable } => {
            let words: Vec<String> = variable.iter().map(|i| i.value.to_ascii_lowercase()).collect();
            let spaced = words.join(" ");
            let known = [
                "transaction isolation level",
                "time zone",
                "session authorization",
            ];
            Kind::Show(if known.contains(&spaced.as_str()) {
                spaced
            } else {
                words.join(".")
            })
        }
        Statement::Copy {
            target: CopyTarget::Stdin | CopyTarget::Stdout,
            ..
        } => match copy::plan(&statement) {
            Ok(c) => match c.direction {
                Direction::Out(query) => Kind::CopyOut {
                    sql: Box::new(parsed_sql(*query)),
                    format: c.format,
                },
                Direction::In(target) => Kind::CopyIn(Box::new(target)),
            },
            Err(e) => Refusal::of(e),
        },
        Statement::StartTransaction { .. } => Kind::Begin,
        Statement::Commit { .. } => Kind::Commit,
        Statement::Rollback { savepoint: None, .. } => Kind::Rollback,
        Statement::Rollback { .. } => Kind::Ignored("ROLLBACK"),
        Statement::Savepoint { .. } => Kind::Ignored("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Kind::Ignored("RELEASE"),
        Statement::Discard { .. } => Kind::Ignored("DISCARD ALL"),
        Statement::Deallocate { .. } => Kind::Ignored("DEALLOCATE"),
        _ => sql(statement),
    }
}

fn sql(statement: Statement) -> Kind {
    Kind::Sql(parsed_sql(statement))
}

pub(super) fn parsed_sql(mut statement: Statement) -> Sql {
    let mut rewriter = CatalogRewriter::default();
    // The rewriter never breaks: what it finds is in its fields.
    let _ = statement.visit(&mut rewriter);
    let text = statement.to_string();
    let calls_settings = super::settings::calls_settings(&text);
    Sql {
        ast: Some(Box::new(statement)),
        text,
        calls_settings,
        reads_catalog: rewriter.reads_catalog,
        params: rewriter.placeholders.last().copied().unwrap_or(0),
        casts: rewriter.casts,
        annotated: false,
        suffix: None,
    }
}

/// `rvbbit.*` and `datafusion.*` settings belong to the session (DataFusion's SET).
fn is_session_setting(name: &str) -> bool {
    name.starts_with("rvbbit.") || name.starts_with("datafusion.")
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.to_ascii_lowercase(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The value of a SET as PostgreSQL shows it: strings without quotes, lists joined with ", ".
fn values_text(values: &[Expr]) -> String {
    values
        .iter()
        .map(|v| match v {
            Expr::Value(ValueWithSpan {
                value: Value::SingleQuotedString(s) | Value::DoubleQuotedString(s),
                ..
            }) => s.clone(),
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The command tag of a statement: `SELECT`, `INSERT`, `CREATE TABLE`, …
pub(crate) fn command_tag(sql: &str) -> String {
    // Leading `--` comment lines (`-- @` annotations) are not the statement.
    let mut sql = sql.trim_start();
    while sql.starts_with("--") {
        sql = sql.split_once('\n').map_or("", |(_, rest)| rest).trim_start();
    }
    let words: Vec<String> = sql
        .split_whitespace()
        .take(6)
        .map(|w| w.trim_start_matches('(').to_ascii_uppercase())
        .collect();
    let first = words.first().map(String::as_str).unwrap_or("");
    match first {
        "SELECT" | "WITH" | "VALUES" | "TABLE" | "" => "SELECT".into(),
        "CREATE" | "DROP" | "ALTER" => {
            let mut tag = vec![first.to_owned()];
            for w in words.iter().skip(1) {
                if matches!(
                    w.as_str(),
                    "OR" | "REPLACE" | "TEMP" | "TEMPORARY" | "EXTERNAL" | "UNBOUNDED"
                ) {
                    continue;
                }
                tag.push(w.clone());
                break;
            }
            tag.join(" ")
        }
        "RVBBIT" | "LARS" => "SELECT".into(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgwire::split::parse;
    use crate::pgwire::types::DUPLICATE_MARK;

    fn one(sql: &str) -> Kind {
        parse(sql).into_iter().next().unwrap()
    }

    #[test]
    fn session_commands_are_recognised() {
        assert!(
            matches!(one("SET extra_float_digits = 3"), Kind::SetParam { ref name, value: Some(ref v) } if name == "extra_float_digits" && v == "3")
        );
        assert!(
            matches!(one("SET application_name TO 'x y'"), Kind::SetParam { value: Some(ref v), .. } if v == "x y")
        );
        assert!(matches!(one("SET rvbbit.udf_errors = 'raise'"), Kind::Sql(_)));
        assert!(matches!(one("RESET ALL"), Kind::Reset(None)));
        assert!(
            matches!(one("SHOW transaction isolation level"), Kind::Show(ref n) if n == "transaction isolation level")
        );
        assert!(matches!(one("BEGIN"), Kind::Begin));
        assert!(matches!(one("START TRANSACTION"), Kind::Begin));
        assert!(matches!(one("COMMIT"), Kind::Commit));
        assert!(matches!(one("END"), Kind::Commit));
        assert!(matches!(one("ROLLBACK"), Kind::Rollback));
        assert!(matches!(one("COPY (SELECT 1) TO STDOUT"), Kind::CopyOut { .. }));
        assert!(matches!(
            one("COPY t FROM STDIN WITH (FORMAT csv)"),
            Kind::CopyIn(_)
        ));
        assert!(matches!(
            one("COPY t TO STDOUT WITH (FORMAT binary, NOPE)"),
            Kind::Refused(e) if e.code == "42601"
        ));
        assert!(matches!(one("COPY t TO 'out.csv'"), Kind::Sql(_)));
        assert_eq!(parse("SELECT 1; SELECT 2").len(), 2);
        assert!(parse(" ; ").is_empty());
    }

    #[test]
    fn catalog_sql_is_rewritten() {
        let Kind::Sql(s) = one(
            "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) AND c.oid = 'pg_class'::regclass",
        ) else {
            panic!()
        };
        assert!(s.reads_catalog);
        let text = s.render(&[]).unwrap();
        assert!(text.contains("c.relname ~ '^(t)$'"), "{text}");
        assert!(text.contains(" pg_table_is_visible(c.oid)"), "{text}");
        assert!(text.contains("c.oid = 1259"), "{text}");
        let Kind::Sql(s) = one("SELECT relname FROM pg_class") else {
            panic!()
        };
        assert!(s.reads_catalog);
        assert!(s.render(&[]).unwrap().contains("pg_catalog.pg_class"));
        // DBeaver's `x.oid, x.*` and pgjdbc's `(information_schema._pg_expandarray(i.indkey)).n`
        let Kind::Sql(s) = one(
            "SELECT x.oid, x.*, (information_schema._pg_expandarray(i.indkey)).n AS k FROM pg_catalog.pg_class x, pg_catalog.pg_index i",
        ) else {
            panic!()
        };
        let text = s.render(&[]).unwrap();
        assert!(
            text.starts_with(&format!("SELECT x.oid AS \"oid{DUPLICATE_MARK}\", x.*, ")),
            "{text}"
        );
        assert!(
            text.contains("get_field(_pg_expandarray(i.indkey), 'n') AS k"),
            "{text}"
        );
    }

    #[test]
    fn array_literals_regproc_and_array_upper_are_rewritten() {
        let Kind::Sql(s) = one(
            "SELECT '{a,\"b c\",NULL}'::text[], '{1}'::oid[], array_upper(x, 1) FROM t WHERE typinput = 'array_in'::regproc",
        ) else {
            panic!()
        };
        let text = s.render(&[]).unwrap();
        assert!(text.contains("ARRAY['a', 'b c', NULL]::TEXT[]"), "{text}");
        assert!(text.contains("ARRAY['1']::BIGINT[]"), "{text}");
        assert!(text.contains("CAST(array_length(x, 1) AS BIGINT)"), "{text}");
        assert!(text.contains("typinput = 'array_in'"), "{text}");
    }

    #[test]
    fn parameters_become_typed_literals() {
        let Kind::Sql(s) = one("SELECT $1 AS a, $2 AS b, $3 AS c") else {
            panic!()
        };
        assert_eq!(s.params, 3);
        let params = [
            Param {
                value: Some("it's".into()),
                ty: Type::UNKNOWN,
            },
            Param {
                value: Some("42".into()),
                ty: Type::INT4,
            },
            Param {
                value: None,
                ty: Type::TEXT,
            },
        ];
        let text = s.render(&params).unwrap();
        assert_eq!(
            text,
            "SELECT 'it''s' AS a, CAST(42 AS INT) AS b, CAST(NULL AS TEXT) AS c"
        );
        let bad = [Param {
            value: Some("4x".into()),
            ty: Type::INT8,
        }];
        let Kind::Sql(s) = one("SELECT $1") else { panic!() };
        assert_eq!(s.render(&bad).unwrap_err().code, "22P02");
        let bind = |value: &str, ty: Type| {
            s.render(&[Param {
                value: Some(value.into()),
                ty,
            }])
        };
        assert_eq!(
            bind("{1, 2}", Type::INT4_ARRAY).unwrap(),
            "SELECT CAST(ARRAY[1, 2] AS INT[])"
        );
        assert_eq!(
            bind(r#"{"a,b",NULL}"#, Type::TEXT_ARRAY).unwrap(),
            "SELECT CAST(ARRAY['a,b', CAST(NULL AS TEXT)] AS TEXT[])"
        );
        assert_eq!(
            bind("{}", Type::INT8_ARRAY).unwrap(),
            "SELECT CAST(ARRAY[] AS BIGINT[])"
        );
        assert_eq!(bind("{1,x}", Type::INT8_ARRAY).unwrap_err().code, "22P02");
        assert_eq!(bind("{1", Type::INT8_ARRAY).unwrap_err().code, "22P02");
        assert_eq!(bind("{{1}}", Type::INT8_ARRAY).unwrap_err().code, "0A000");
        // numeric: a decimal of the value's scale, never a float
        assert_eq!(
            bind("-1.50", Type::NUMERIC).unwrap(),
            "SELECT CAST(-1.50 AS DECIMAL(38,2))"
        );
        assert_eq!(bind(&"9".repeat(39), Type::NUMERIC).unwrap_err().code, "22003");
        assert_eq!(s.render(&[]).unwrap_err().code, "08P01");
        // regclass: a catalog table's name is its oid, an unknown name 42P01
        assert_eq!(
            bind("pg_catalog.pg_constraint", Type::REGCLASS).unwrap(),
            "SELECT 2606"
        );
        assert_eq!(bind("1259", Type::REGCLASS).unwrap(), "SELECT 1259");
        assert_eq!(bind("no_such", Type::REGCLASS).unwrap_err().code, "42P01");
    }

    #[test]
    fn tags() {
        assert_eq!(command_tag("select 1"), "SELECT");
        assert_eq!(command_tag("CREATE TABLE t AS SELECT 1"), "CREATE TABLE");
        assert_eq!(command_tag("create or replace view v as select 1"), "CREATE VIEW");
        assert_eq!(command_tag("INSERT INTO t VALUES (1)"), "INSERT");
        assert_eq!(command_tag("RVBBIT MAP 'x.yaml' USING (SELECT 1)"), "SELECT");
    }
}
