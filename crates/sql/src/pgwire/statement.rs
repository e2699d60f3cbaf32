//! What a wire statement is (parsed with sqlparser's PostgreSQL dialect): session commands the server
//! answers itself (SET/RESET/SHOW of PostgreSQL parameters, transaction control) or SQL for the
//! session, rewritten for the catalog (`pg_catalog.` names, `OPERATOR(pg_catalog.~)`, `COLLATE`,
//! `::regclass`) and with `$n` parameters replaced by literals in the syntax tree.

// `ErrorInfo` is pgwire's own error message type, which the protocol layer consumes as is; a statement
// fails at most once, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, CopyTarget, DataType as SqlType, ExactNumberInfo, Expr, ObjectName,
    ObjectNamePart, Reset, Set, Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Span;
use pgwire::api::Type;
use pgwire::error::ErrorInfo;

use super::catalog;
use super::errors::{error, state};
use super::params;
use crate::limits::Limits;

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
    /// `COPY … TO STDOUT` / `COPY … FROM STDIN`: refused (SQLSTATE 0A000), the copy sub-protocol is
    /// not served.
    Copy,
    /// Accepted and ignored (SAVEPOINT, RELEASE, DISCARD, DEALLOCATE, SET TRANSACTION, …) with this tag.
    Ignored(&'static str),
    /// SQL for the session.
    Sql(Sql),
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
}

impl Sql {
    /// The SQL to run, with `params` (text values and their types) bound as literals.
    pub(crate) fn render(&self, params: &[Param]) -> Result<String, ErrorInfo> {
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
        let _ = ast.visit(&mut binder);
        if let Some(e) = binder.error {
            return Err(e);
        }
        Ok(ast.to_string())
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
        let mut ast = ast.clone();
        let mut binder = Binder {
            params: &nulls,
            error: None,
        };
        let _ = ast.visit(&mut binder);
        binder.error.is_none().then(|| ast.to_string())
    }
}

/// A bound parameter: its text form (None: NULL) and type.
#[derive(Clone, Debug)]
pub(crate) struct Param {
    /// The value as text (binary values are decoded to text first).
    pub(crate) value: Option<String>,
    /// The type the client gave (UNKNOWN when it gave none).
    pub(crate) ty: Type,
}

/// Split and classify a query string. A string sqlparser cannot parse is one statement for the session
/// as it is (RVBBIT MAP, or an error the session reports with its position).
#[cfg(test)]
pub(crate) fn parse(sql: &str) -> Vec<Kind> {
    parse_checked(sql, &Limits::default()).unwrap_or_default()
}

/// [`parse`] under `limits`: the text's size and statement count are checked before parsing, each
/// parsed statement's depth before it is rewritten (a too-deep tree is taken apart, never recursed
/// into). Call it on the SQL threads (parsing recurses up to the parser's recursion limit).
///
/// Errors: SQLSTATE 54000 (size, count) or 54001 (depth), with the rvbbit code RVB-Q006.
pub(crate) fn parse_checked(sql: &str, limits: &Limits) -> Result<Vec<Kind>, ErrorInfo> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = PostgreSqlDialect {};
    let refuse = |e: crate::error::Error| super::errors::from_sql_error(&e, sql);
    let recursion = limits.parser_recursion(PARSER_RECURSION);
    limits.check_text(sql, &dialect, recursion).map_err(refuse)?;
    let parsed = Parser::new(&dialect)
        .with_recursion_limit(recursion)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    match parsed {
        Ok(mut statements) if !statements.is_empty() => {
            // Every statement is checked (and a deep one taken apart) before any is dropped.
            let mut checked = Ok(());
            for statement in &mut statements {
                if let Err(e) = limits.check_tree(statement) {
                    checked = Err(e);
                }
            }
            checked.map_err(refuse)?;
            Ok(statements.into_iter().map(classify).collect())
        }
        _ if is_copy_stream(trimmed) => Ok(vec![Kind::Copy]),
        _ => Ok(vec![Kind::Sql(Sql {
            ast: None,
            text: trimmed.to_owned(),
            reads_catalog: false,
            params: 0,
        })]),
    }
}

/// sqlparser's default recursion limit (what `Parser::parse_sql` uses).
const PARSER_RECURSION: usize = 50;

fn classify(statement: Statement) -> Kind {
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
        } => Kind::Copy,
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

fn sql(mut statement: Statement) -> Kind {
    let mut rewriter = CatalogRewriter::default();
    let _ = statement.visit(&mut rewriter);
    let text = statement.to_string();
    Kind::Sql(Sql {
        ast: Some(Box::new(statement)),
        text,
        reads_catalog: rewriter.reads_catalog,
        params: rewriter.placeholders.last().copied().unwrap_or(0),
    })
}

/// A `COPY` through the client's stdin/stdout (what sqlparser could not parse, by its words).
fn is_copy_stream(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.starts_with("COPY")
        && upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "STDIN" || w == "STDOUT")
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

/// Ends the alias of a column named next to `*` (see `pre_visit_select`); the row description drops
/// it and what follows, so clients see the column's own name.
pub(crate) const DUPLICATE_MARK: &str = "\u{1}dup";

/// Rewrites that make PostgreSQL client catalog SQL plannable by DataFusion.
#[derive(Default)]
struct CatalogRewriter {
    reads_catalog: bool,
    placeholders: BTreeSet<usize>,
}

impl VisitorMut for CatalogRewriter {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        let parts: Vec<String> = relation
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => i.value.to_ascii_lowercase(),
                other => other.to_string(),
            })
            .collect();
        match parts.as_slice() {
            [table] if catalog::is_catalog_table(table) => {
                relation.0.insert(
                    0,
                    ObjectNamePart::Identifier(datafusion::sql::sqlparser::ast::Ident::new("pg_catalog")),
                );
                self.reads_catalog = true;
            }
            [schema, _] if schema == "pg_catalog" => self.reads_catalog = true,
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut datafusion::sql::sqlparser::ast::Select) -> ControlFlow<()> {
        // PostgreSQL allows two unnamed columns with the same text (`SELECT NULL, NULL`); DataFusion
        // needs unique names: alias the repeats.
        use datafusion::sql::sqlparser::ast::{Ident, SelectItem};
        // With `*` in the list, a column named before it (`SELECT c.oid, c.*`, DBeaver's navigator) would
        // appear twice: alias it with a marked name that the wire's row description drops.
        let wildcard = select
            .projection
            .iter()
            .any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)));
        if wildcard {
            for item in select.projection.iter_mut() {
                if let SelectItem::UnnamedExpr(e @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_))) = item
                {
                    let name = match &*e {
                        Expr::Identifier(i) => i.value.clone(),
                        Expr::CompoundIdentifier(parts) => {
                            parts.last().map(|i| i.value.clone()).unwrap_or_default()
                        }
                        _ => String::new(),
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote(
                            '"',
                            format!("{}{DUPLICATE_MARK}", name.to_ascii_lowercase()),
                        ),
                    };
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (i, item) in select.projection.iter_mut().enumerate() {
            if let SelectItem::UnnamedExpr(e) = item {
                let name = e.to_string();
                if !seen.insert(name) {
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote('"', format!("?column?{}", i + 1)),
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // x::regtype::text → format_type(x, NULL)
        if let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = expr
            && is_text_type(data_type)
            && let Expr::Cast {
                expr: inner2,
                data_type: inner_type,
                ..
            } = inner.as_ref()
            && type_name(inner_type) == "regtype"
            && let Ok(call) = parse_expr(&format!("format_type({inner2}, NULL)"))
        {
            *expr = call;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Subquery(_) => rewrite_catalog_subquery(expr),
            Expr::Collate { expr: inner, .. } => {
                *expr = (**inner).clone();
            }
            Expr::BinaryOp { op, .. } => {
                if let BinaryOperator::PGCustomBinaryOperator(parts) = op
                    && let Some(plain) = parts.last().and_then(|o| plain_operator(o))
                {
                    *op = plain;
                }
            }
            // ARRAY(subquery) is not plannable by DataFusion; psql uses it only over catalog tables that
            // are always empty here (pg_policy, pg_publication), where it is never evaluated.
            Expr::Function(f)
                if self.reads_catalog
                    && f.name.to_string().eq_ignore_ascii_case("array")
                    && matches!(
                        f.args,
                        datafusion::sql::sqlparser::ast::FunctionArguments::Subquery(_)
                    ) =>
            {
                if let Ok(null) = parse_expr("CAST(NULL AS TEXT[])") {
                    *expr = null;
                }
            }
            Expr::Function(f)
                if f.name.0.len() == 2
                    && f.name.0.first().is_some_and(|p| {
                        let schema = p.to_string();
                        schema.eq_ignore_ascii_case("pg_catalog")
                            || schema.eq_ignore_ascii_case("information_schema")
                                && f.name
                                    .0
                                    .last()
                                    .is_some_and(|n| n.to_string() == "_pg_expandarray")
                    }) =>
            {
                f.name.0.remove(0);
            }
            // `(expr).field` → get_field(expr, 'field') (DataFusion reads only `column.field`)
            Expr::CompoundFieldAccess { root, access_chain } => {
                if let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() {
                    let mut base = root.as_ref();
                    while let Expr::Nested(inner) = base {
                        base = inner;
                    }
                    let field = field.value.to_ascii_lowercase().replace('\'', "''");
                    if let Ok(call) = parse_expr(&format!("get_field({base}, '{field}')")) {
                        *expr = call;
                    }
                }
            }
            Expr::Value(ValueWithSpan {
                value: Value::Placeholder(p),
                ..
            }) => {
                if let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                    self.placeholders.insert(n);
                }
            }
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => {
                let name = type_name(data_type);
                if matches!(
                    name.as_str(),
                    "regclass"
                        | "regtype"
                        | "regproc"
                        | "regprocedure"
                        | "regnamespace"
                        | "regrole"
                        | "regoper"
                ) {
                    if let Expr::Value(ValueWithSpan {
                        value: Value::SingleQuotedString(s),
                        ..
                    }) = inner.as_ref()
                    {
                        let oid = catalog::oid_of(&name, s).unwrap_or(0);
                        *expr = number(&oid.to_string());
                    } else {
                        *data_type = SqlType::BigInt(None);
                    }
                } else if matches!(name.as_str(), "oid" | "xid" | "cid" | "tid") {
                    *data_type = SqlType::BigInt(None);
                } else if matches!(
                    name.as_str(),
                    "name" | "\"char\"" | "char" | "int2vector" | "oidvector" | "text"
                ) {
                    *data_type = SqlType::Text;
                } else if let SqlType::Custom(obj, _) = data_type
                    && obj.0.len() == 2
                    && let Ok(plain) = parse_type(&name)
                {
                    *data_type = plain;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// PostgreSQL allows a correlated scalar subquery that returns one row; DataFusion wants it aggregated
/// and correlated by equalities only. For subqueries over catalog tables only (psql's `\d`): wrap the
/// one selected value in `max(…)`, and lift conditions on the outer row out of the subquery into
/// `CASE WHEN cond THEN (subquery) END` (a column of an inner table joined by `key = outer` in such a
/// condition is read by its own subquery).
fn rewrite_catalog_subquery(expr: &mut Expr) {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr, TableFactor};
    let Expr::Subquery(query) = expr else {
        return;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    // inner alias → table name
    let mut inner: Vec<(String, String)> = Vec::new();
    for t in &select.from {
        let TableFactor::Table { name, alias, .. } = &t.relation else {
            // A set-returning function over the outer row (psql's publication query over the always
            // empty pg_publication_rel): DataFusion cannot run it; it would be NULL here.
            if (matches!(
                &t.relation,
                TableFactor::Function { .. } | TableFactor::TableFunction { .. }
            ) || matches!(&t.relation, TableFactor::Table { args: Some(_), .. }))
                && let Ok(null) = parse_expr("NULL")
            {
                *expr = null;
            }
            return;
        };
        if name
            .0
            .first()
            .is_some_and(|p| p.to_string().eq_ignore_ascii_case("pg_catalog"))
            && matches!(&t.relation, TableFactor::Table { args: Some(_), .. })
        {
            if let Ok(null) = parse_expr("NULL") {
                *expr = null;
            }
            return;
        }
        if !t.joins.is_empty()
            || !name
                .0
                .first()
                .is_some_and(|p| p.to_string().eq_ignore_ascii_case("pg_catalog"))
        {
            return;
        }
        let alias = alias
            .as_ref()
            .map(|a| a.name.value.to_ascii_lowercase())
            .unwrap_or_else(|| {
                name.0
                    .last()
                    .map(|p| p.to_string().to_ascii_lowercase())
                    .unwrap_or_default()
            });
        inner.push((alias, name.to_string()));
    }
    let grouped = !matches!(&select.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty());
    if inner.is_empty() || select.projection.len() != 1 || grouped {
        return;
    }
    let projected = match &mut select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return,
    };
    let aggregated = matches!(projected, Expr::Function(f) if matches!(f.name.to_string().to_ascii_lowercase().as_str(),
        "max" | "min" | "count" | "sum" | "avg" | "array_agg" | "string_agg" | "bool_or" | "bool_and"));
    if !aggregated && let Ok(wrapped) = parse_expr(&format!("max({projected})")) {
        *projected = wrapped;
    }
    let Some(selection) = select.selection.take() else {
        return;
    };
    let is_inner = |q: &str| inner.iter().any(|(a, _)| a == q);
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    let mut kept = Vec::new();
    let mut guard = Vec::new();
    let mut mixed = Vec::new();
    for c in conjuncts {
        let quals = qualifiers(&c);
        let has_inner = quals.iter().any(|q| is_inner(q));
        let has_outer = quals.iter().any(|q| !is_inner(q));
        let equality = matches!(&c, Expr::BinaryOp { op: BinaryOperator::Eq, left, right }
            if qualifiers(left).iter().all(|q| is_inner(q)) != qualifiers(right).iter().all(|q| is_inner(q)));
        if has_outer && !has_inner {
            guard.push(c.to_string());
        } else if has_outer && !equality {
            mixed.push(c);
        } else {
            kept.push(c);
        }
    }
    // `outer <op> t.col` where t is joined by `t.key = outer2`: read t.col by its own subquery.
    for c in mixed {
        let mut text = c.to_string();
        let mut resolved = true;
        for q in qualifiers(&c).into_iter().filter(|q| is_inner(q)) {
            let Some(key) = kept.iter().find_map(|k| match k {
                Expr::BinaryOp {
                    op: BinaryOperator::Eq,
                    left,
                    right,
                } => {
                    let (l, r) = (qualifiers(left), qualifiers(right));
                    if l.len() == 1 && l[0] == q && r.iter().all(|x| !is_inner(x)) {
                        Some((left.to_string(), right.to_string()))
                    } else if r.len() == 1 && r[0] == q && l.iter().all(|x| !is_inner(x)) {
                        Some((right.to_string(), left.to_string()))
                    } else {
                        None
                    }
                }
                _ => None,
            }) else {
                resolved = false;
                break;
            };
            let table = inner
                .iter()
                .find(|(a, _)| *a == q)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            let Ok(parsed) = parse_expr(&text) else {
                resolved = false;
                break;
            };
            text = replace_inner_columns(parsed, &q, &table, &key.0, &key.1).to_string();
        }
        if resolved {
            guard.push(text);
        } else {
            kept.push(c);
        }
    }
    select.selection = join_and(kept);
    if guard.is_empty() {
        return;
    }
    if let Ok(case) = parse_expr(&format!("CASE WHEN {} THEN ({query}) END", guard.join(" AND "))) {
        *expr = case;
    }
}

fn split_and(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(*inner, out)
        }
        other => out.push(other),
    }
}

fn join_and(parts: Vec<Expr>) -> Option<Expr> {
    parts.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    })
}

/// The qualifiers (`a` in `a.col`) of the compound identifiers in an expression, lower case; a bare
/// column counts as inner (qualifier "").
fn qualifiers(e: &Expr) -> Vec<String> {
    use datafusion::sql::sqlparser::ast::Visit;
    struct Q(Vec<String>);
    impl datafusion::sql::sqlparser::ast::Visitor for Q {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e
                && parts.len() >= 2
            {
                self.0.push(parts[parts.len() - 2].value.to_ascii_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    let mut q = Q(Vec::new());
    let _ = e.visit(&mut q);
    q.0
}

/// Replace `alias.col` by `(SELECT max(alias.col) FROM table alias WHERE key = outer)`.
fn replace_inner_columns(mut e: Expr, alias: &str, table: &str, key: &str, outer: &str) -> Expr {
    struct R<'a>(&'a str, &'a str, &'a str, &'a str);
    impl VisitorMut for R<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e
                && parts.len() == 2
                && parts[0].value.eq_ignore_ascii_case(self.0)
                && let Ok(sub) = parse_expr(&format!(
                    "(SELECT max({e}) FROM {} {} WHERE {} = {})",
                    self.1, self.0, self.2, self.3
                ))
            {
                *e = sub;
            }
            ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut R(alias, table, key, outer));
    e
}

fn plain_operator(op: &str) -> Option<BinaryOperator> {
    Some(match op {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "||" => BinaryOperator::StringConcat,
        "~~" => return None,
        _ => return None,
    })
}

/// A type's name without `pg_catalog.`, lower case.
fn type_name(ty: &SqlType) -> String {
    let s = ty.to_string().to_ascii_lowercase();
    s.strip_prefix("pg_catalog.").map(str::to_owned).unwrap_or(s)
}

fn is_text_type(ty: &SqlType) -> bool {
    matches!(type_name(ty).as_str(), "text" | "varchar" | "name") || matches!(ty, SqlType::Text)
}

fn parse_expr(sql: &str) -> Result<Expr, String> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| e.to_string())
}

fn parse_type(sql: &str) -> Result<SqlType, String> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_data_type())
        .map_err(|e| e.to_string())
}

fn number(n: &str) -> Expr {
    Expr::Value(ValueWithSpan {
        value: Value::Number(n.to_owned(), false),
        span: Span::empty(),
    })
}

fn string(s: &str) -> Expr {
    Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(s.to_owned()),
        span: Span::empty(),
    })
}

/// Replaces `$n` by literals of the parameters' types.
struct Binder<'a> {
    params: &'a [Param],
    error: Option<ErrorInfo>,
}

impl VisitorMut for Binder<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Value(ValueWithSpan {
            value: Value::Placeholder(p),
            ..
        }) = expr
        else {
            return ControlFlow::Continue(());
        };
        let Some(index) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else {
            self.error = Some(error(
                state::SYNTAX,
                format!("`{p}` is not a parameter; parameters are written $1, $2, …"),
                "number the parameters from $1",
            ));
            return ControlFlow::Break(());
        };
        let Some(param) = index.checked_sub(1).and_then(|i| self.params.get(i)) else {
            self.error = Some(error(
                state::PROTOCOL,
                format!(
                    "there is no parameter ${index}: {} value(s) were bound",
                    self.params.len()
                ),
                "bind one value per $n placeholder",
            ));
            return ControlFlow::Break(());
        };
        match literal(param) {
            Ok(e) => *expr = e,
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// A parameter as a literal of its type (a string literal when the client gave no type).
fn literal(param: &Param) -> Result<Expr, ErrorInfo> {
    let cast = |e: Expr, ty: SqlType| Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(e),
        data_type: ty,
        array: false,
        format: None,
    };
    let Some(value) = &param.value else {
        let null = Expr::Value(ValueWithSpan {
            value: Value::Null,
            span: Span::empty(),
        });
        return Ok(match sql_type(&param.ty) {
            Some(ty) => cast(null, ty),
            None => cast(null, SqlType::Text),
        });
    };
    let invalid = |what: &str| {
        error(
            state::INVALID_TEXT,
            format!("invalid input syntax for type {what}: \"{value}\""),
            format!("bind a valid {what} value"),
        )
    };
    Ok(match param.ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid(param.ty.name()))?;
            let ty = sql_type(&param.ty).unwrap_or(SqlType::BigInt(None));
            cast(number(value.trim()), ty)
        }
        Type::FLOAT4 | Type::FLOAT8 => {
            let v = value.trim();
            if v.parse::<f64>().is_err() {
                return Err(invalid(param.ty.name()));
            }
            let ty = sql_type(&param.ty).unwrap_or(SqlType::Text);
            cast(string(v), ty)
        }
        Type::NUMERIC => {
            let v = value.trim();
            match v.parse::<f64>() {
                Ok(f) if f.is_finite() => number(v),
                // NaN and ±Infinity have no decimal form
                Ok(_) => cast(string(v), SqlType::Double(ExactNumberInfo::None)),
                Err(_) => return Err(invalid("numeric")),
            }
        }
        Type::BYTEA => {
            let bytes = params::bytea_from_text(value).ok_or_else(|| invalid("bytea"))?;
            Expr::Value(ValueWithSpan {
                value: Value::HexStringLiteral(hex::encode(bytes)),
                span: Span::empty(),
            })
        }
        Type::DATE => {
            // pgjdbc's setDate adds the client's zone offset (`2024-01-02 +00`), which a date ignores
            let v = params::date_with_offset(value).unwrap_or(value);
            cast(string(v), SqlType::Date)
        }
        Type::UUID => {
            // psycopg sends a UUID's text as 32 hex digits; PostgreSQL shows it hyphenated
            let hex: String = value.chars().filter(|c| !matches!(c, '-' | '{' | '}')).collect();
            if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid("uuid"));
            }
            let h = hex.to_ascii_lowercase();
            string(&format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            ))
        }
        Type::UNKNOWN if params::date_with_offset(value).is_some() => {
            let v = params::date_with_offset(value).unwrap_or(value);
            cast(string(v), SqlType::Date)
        }
        Type::BOOL => {
            let b = match value.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "1" | "yes" | "on" | "y" => true,
                "f" | "false" | "0" | "no" | "off" | "n" => false,
                _ => return Err(invalid("boolean")),
            };
            Expr::Value(ValueWithSpan {
                value: Value::Boolean(b),
                span: Span::empty(),
            })
        }
        Type::INTERVAL => cast(
            string(&params::interval_text(value)),
            SqlType::Interval {
                fields: None,
                precision: None,
            },
        ),
        Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => match sql_type(&param.ty) {
            Some(ty) => cast(string(value), ty),
            None => string(value),
        },
        _ => string(value),
    })
}

/// The SQL type a parameter type is cast to (None: leave the literal as it is).
fn sql_type(ty: &Type) -> Option<SqlType> {
    let name = match *ty {
        Type::INT2 => "SMALLINT",
        Type::INT4 => "INT",
        Type::INT8 | Type::OID => "BIGINT",
        Type::FLOAT4 => "REAL",
        Type::FLOAT8 => "DOUBLE",
        Type::BOOL => "BOOLEAN",
        Type::DATE => "DATE",
        Type::TIMESTAMP => "TIMESTAMP",
        Type::TIMESTAMPTZ => "TIMESTAMPTZ",
        Type::TIME => "TIME",
        Type::INTERVAL => "INTERVAL",
        Type::NUMERIC => "DECIMAL(38, 10)",
        Type::BYTEA => "BYTEA",
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => "TEXT",
        _ => return None,
    };
    parse_type(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(one("COPY (SELECT 1) TO STDOUT"), Kind::Copy));
        assert!(matches!(one("COPY t FROM STDIN WITH (FORMAT csv)"), Kind::Copy));
        assert!(matches!(
            one("COPY t TO STDOUT WITH (FORMAT binary, NOPE)"),
            Kind::Copy
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
        assert_eq!(s.render(&[]).unwrap_err().code, "08P01");
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
