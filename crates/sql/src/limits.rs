//! Limits on client SQL, checked before planning: the text's size, its number of statements and the
//! nesting depth of its syntax tree (`limits.sql_*` in `rvbbit.toml`).
//!
//! DataFusion's planner, optimizer and physical planner recurse over expressions, and sqlparser builds
//! left-deep chains (`1+1+…`, `a AND b AND …`, `x::int::int…`) in a loop, so its own recursion limit
//! does not bound them: a short statement could overflow a thread's stack and abort the whole server.
//! Here:
//!
//! - [`Limits::check_text`] refuses an oversized text or too many statements by scanning tokens, before
//!   anything is parsed;
//! - [`Limits::parser_recursion`] caps the parser's own recursion (parentheses, `CASE`, function
//!   arguments, subqueries) at the expression depth limit whatever a client `SET`s;
//! - [`Limits::check_tree`] measures the parsed tree with a visitor that stops one level past the limit
//!   (so the check itself recurses at most `sql_expression_depth` levels) and, when the tree is too
//!   deep, takes it apart in bounded pieces so that dropping it cannot overflow either.
//!
//! Statements then plan and run on the big-stack threads of [`crate::stack`], which gives the default
//! limit a wide margin (see `docs/sql.md`, "Limits").

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Query, Value, Visit, VisitMut, Visitor, VisitorMut};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::Error;

/// Parser recursion a statement uses before its first nested expression (statement, query, select
/// item).
const PARSER_OVERHEAD: usize = 3;

/// How to raise a limit, at the end of each refusal.
const RAISE: &str = "raise it in rvbbit.toml [limits]";

/// Limits on the SQL a client sends (the `[limits]` section of `rvbbit.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// `limits.sql_expression_depth`: deepest nesting of expressions and subqueries in one statement.
    pub expression_depth: u32,
    /// `limits.sql_statements`: statements in one request or pgwire message.
    pub statements: u32,
    /// `limits.sql_query_bytes`: bytes of SQL text in one request or pgwire message.
    pub query_bytes: u64,
    /// `limits.pgwire_connections`: connections `rvbbit serve sql` serves at once (SQLSTATE 53300 past
    /// it).
    pub connections: u32,
    /// `limits.pgwire_copy_bytes`: bytes one `COPY … FROM STDIN` may send (SQLSTATE 54000 past it).
    pub copy_bytes: u64,
    /// `limits.pgwire_cursors`: cursors one connection holds open at once (SQLSTATE 54000 past it).
    pub cursors: u32,
    /// Operator files: the most `*.yaml`/`*.yml` files a session reads under `cascades/` looking for
    /// `sql_function` blocks (default 1000; `limits.sql_operator_files` in `rvbbit.toml`). Past it the
    /// rest are not loaded, with an RVB-Q006 warning.
    pub operator_files: u32,
    /// Operator files: the most bytes a session reads under `cascades/` (default 16 MiB; `limits.sql_operator_bytes`).
    pub operator_bytes: u64,
}

/// Default of [`Limits::operator_files`].
pub(crate) const OPERATOR_FILES: u32 = 1000;
/// Default of [`Limits::operator_bytes`] (16 MiB).
pub(crate) const OPERATOR_BYTES: u64 = 16 * 1024 * 1024;

impl Default for Limits {
    /// The defaults of `rvbbit.toml` `[limits]`.
    fn default() -> Self {
        let c = rvbbit_core::config::LimitsConfig::default();
        Limits {
            expression_depth: c.sql_expression_depth,
            statements: c.sql_statements,
            query_bytes: c.sql_query_bytes,
            connections: c.pgwire_connections,
            copy_bytes: c.pgwire_copy_bytes,
            cursors: c.pgwire_cursors,
            operator_files: OPERATOR_FILES,
            operator_bytes: OPERATOR_BYTES,
        }
    }
}

impl Limits {
    /// Refuse a text longer than `sql_query_bytes` or holding more than `sql_statements` statements,
    /// counted from `dialect`'s tokens (semicolons inside strings and comments do not count). Runs in
    /// time linear in the text and never recurses. A text that does not tokenize passes (the parser
    /// reports the error with its position).
    ///
    /// Errors: [`Error::Limit`] naming the limit and its setting.
    ///
    /// The same scan measures how deep parentheses, brackets and `CASE … END` nest: past
    /// `recursion - PARSER_OVERHEAD` levels the parser (with recursion limit `recursion`) cannot take
    /// the statement, so it is refused here with RVB-Q006 (sqlparser reports some of these, such as
    /// nested `CASE`, as a syntax error instead of its recursion limit).
    pub(crate) fn check_text(&self, sql: &str, dialect: &dyn Dialect, recursion: usize) -> Result<(), Error> {
        let bytes = sql.len() as u64;
        if bytes > self.query_bytes {
            return Err(Error::Limit {
                message: format!(
                    "the SQL text is {bytes} bytes, longer than limits.sql_query_bytes = {}; send smaller \
                     statements or {RAISE}",
                    self.query_bytes
                ),
            });
        }
        let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize() else {
            return Ok(());
        };
        let mut statements: u64 = 0;
        let mut in_statement = false;
        let deepest = recursion.saturating_sub(PARSER_OVERHEAD).max(1);
        let mut nesting: usize = 0;
        for token in &tokens {
            match token {
                Token::LParen | Token::LBracket => nesting += 1,
                Token::Word(w) if w.keyword == Keyword::CASE => nesting += 1,
                Token::RParen | Token::RBracket => nesting = nesting.saturating_sub(1),
                Token::Word(w) if w.keyword == Keyword::END => nesting = nesting.saturating_sub(1),
                _ => {}
            }
            if nesting > deepest {
                return Err(self.parser_too_deep(recursion));
            }
            match token {
                Token::SemiColon => in_statement = false,
                Token::Whitespace(_) | Token::EOF => {}
                _ if !in_statement => {
                    in_statement = true;
                    statements += 1;
                    if statements > u64::from(self.statements) {
                        return Err(Error::Limit {
                            message: format!(
                                "the SQL text holds more than limits.sql_statements = {} statements; send \
                                 them in several requests or {RAISE}",
                                self.statements
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The recursion limit to give the SQL parser: the session's `datafusion.sql_parser.recursion_limit`,
    /// but never more than the expression depth limit (a client may `SET` the former).
    pub(crate) fn parser_recursion(&self, configured: usize) -> usize {
        configured.min(self.depth()).max(1)
    }

    fn depth(&self) -> usize {
        usize::try_from(self.expression_depth).unwrap_or(usize::MAX)
    }

    /// Refuse a statement whose expressions and subqueries nest deeper than `sql_expression_depth`.
    /// The check stops one level past the limit; a refused tree is taken apart in pieces of bounded
    /// depth, so the caller may drop it safely.
    ///
    /// Errors: [`Error::Limit`] naming the limit and its setting.
    pub(crate) fn check_tree<T: Visit + VisitMut>(&self, tree: &mut T) -> Result<(), Error> {
        let mut meter = Meter {
            depth: 0,
            limit: self.depth(),
            queries: 0,
            calls: 0,
            query_limit: self.query_depth(),
        };
        match Visit::visit(tree, &mut meter) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(which) => {
                dismantle(tree);
                Err(match which {
                    TooDeep::Expressions => self.too_deep(),
                    TooDeep::Queries => self.queries_too_deep(),
                })
            }
        }
    }

    /// Deepest nesting of queries (subqueries, derived tables): DataFusion's planning time about
    /// doubles with each level of nested scalar subqueries (16 levels took 11 s in a debug build), so
    /// they get a bound of their own, derived from the depth limit: `sql_expression_depth / 20`
    /// (12 at the default), at least 2.
    pub(crate) fn query_depth(&self) -> usize {
        (self.depth() / QUERY_DEPTH_DIVISOR).max(2)
    }

    fn queries_too_deep(&self) -> Error {
        Error::Limit {
            message: format!(
                "the statement nests subqueries or function calls deeper than {} levels \
                 (limits.sql_expression_depth / \
                 {QUERY_DEPTH_DIVISOR}, with limits.sql_expression_depth = {}; planning time doubles with each \
                 level); use joins or WITH, or {RAISE}",
                self.query_depth(),
                self.expression_depth
            ),
        }
    }

    /// [`Limits::check_tree`] over a DataFusion statement (its SQL statement, the query of `COPY … TO`,
    /// the ordering and column defaults of `CREATE EXTERNAL TABLE`, the statement under `EXPLAIN`).
    pub(crate) fn check_statement(&self, statement: &mut DfStatement) -> Result<(), Error> {
        match statement {
            DfStatement::Statement(s) => self.check_tree(s.as_mut()),
            DfStatement::CopyTo(copy) => match &mut copy.source {
                CopyToSource::Query(q) => self.check_tree(q.as_mut()),
                CopyToSource::Relation(_) => Ok(()),
            },
            DfStatement::CreateExternalTable(create) => {
                for ordering in &mut create.order_exprs {
                    self.check_tree(ordering)?;
                }
                self.check_tree(&mut create.columns)
            }
            // EXPLAIN nests once: the parser takes no EXPLAIN under EXPLAIN.
            DfStatement::Explain(explain) => self.check_statement(&mut explain.statement),
            DfStatement::Reset(_) => Ok(()),
        }
    }

    /// The refusal of a statement nested too deeply (by our check or the parser's recursion limit).
    pub(crate) fn too_deep(&self) -> Error {
        Error::Limit {
            message: format!(
                "the statement nests expressions or subqueries deeper than limits.sql_expression_depth = \
                 {}; use IN (…) lists, a join against a table of values or smaller statements, or {RAISE}",
                self.expression_depth
            ),
        }
    }

    /// The refusal when the SQL parser's recursion limit stopped a statement (parentheses, `CASE`,
    /// function calls or subqueries nested too deeply).
    pub(crate) fn parser_too_deep(&self, recursion: usize) -> Error {
        Error::Limit {
            message: format!(
                "the statement nests parentheses, CASE, function calls or subqueries deeper than the SQL \
                 parser allows ({recursion} levels: datafusion.sql_parser.recursion_limit, capped at \
                 limits.sql_expression_depth = {}); flatten the statement, or raise both \
                 (SET datafusion.sql_parser.recursion_limit, and limits.sql_expression_depth in \
                 rvbbit.toml [limits])",
                self.expression_depth
            ),
        }
    }
}

/// `sql_expression_depth / QUERY_DEPTH_DIVISOR` is the query nesting bound ([`Limits::query_depth`]).
const QUERY_DEPTH_DIVISOR: usize = 20;

/// Which bound a tree broke.
#[derive(Clone, Copy, Debug)]
enum TooDeep {
    Expressions,
    Queries,
}

/// Counts the nesting of expressions and queries (and of queries alone); breaks one level past a
/// limit.
struct Meter {
    depth: usize,
    limit: usize,
    queries: usize,
    calls: usize,
    query_limit: usize,
}

impl Meter {
    fn enter(&mut self) -> ControlFlow<TooDeep> {
        self.depth += 1;
        if self.depth > self.limit {
            ControlFlow::Break(TooDeep::Expressions)
        } else {
            ControlFlow::Continue(())
        }
    }

    fn leave(&mut self) -> ControlFlow<TooDeep> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }
}

impl Visitor for Meter {
    type Break = TooDeep;

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<TooDeep> {
        self.queries += 1;
        if self.queries > self.query_limit {
            return ControlFlow::Break(TooDeep::Queries);
        }
        self.enter()
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<TooDeep> {
        self.queries = self.queries.saturating_sub(1);
        self.leave()
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<TooDeep> {
        // Nested function calls cost DataFusion's planner exponential time too (`abs(abs(…))` 47 deep
        // never finished), so they share the query nesting bound.
        if matches!(expr, Expr::Function(_)) {
            self.calls += 1;
            if self.calls > self.query_limit {
                return ControlFlow::Break(TooDeep::Queries);
            }
        }
        self.enter()
    }

    fn post_visit_expr(&mut self, expr: &Expr) -> ControlFlow<TooDeep> {
        if matches!(expr, Expr::Function(_)) {
            self.calls = self.calls.saturating_sub(1);
        }
        self.leave()
    }
}

/// Expression levels a piece of a dismantled tree keeps.
const PIECE_DEPTH: usize = 32;

/// Cuts every expression deeper than [`PIECE_DEPTH`] out of the tree it visits (leaving NULL).
struct Cutter {
    depth: usize,
    cut: Vec<Expr>,
}

impl VisitorMut for Cutter {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > PIECE_DEPTH {
            let null = Expr::Value(Value::Null.into());
            self.cut.push(std::mem::replace(expr, null));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _: &mut Expr) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }
}

/// Take a tree apart into pieces at most [`PIECE_DEPTH`] expressions deep and drop them one by one:
/// dropping (and visiting) a piece recurses a bounded number of levels, whatever the tree's depth.
/// Queries nest only as deep as the parser's recursion limit allows, so they stay in their pieces.
fn dismantle<T: VisitMut>(tree: &mut T) {
    let mut cutter = Cutter {
        depth: 0,
        cut: Vec::new(),
    };
    // The cutter never breaks.
    let _ = VisitMut::visit(tree, &mut cutter);
    while let Some(mut piece) = cutter.cut.pop() {
        cutter.depth = 0;
        // As above: the cutter never breaks.
        let _ = VisitMut::visit(&mut piece, &mut cutter);
        drop(piece);
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn limits(depth: u32, statements: u32, bytes: u64) -> Limits {
        Limits {
            expression_depth: depth,
            statements,
            query_bytes: bytes,
            connections: 1,
            ..Limits::default()
        }
    }

    fn depth_ok(limits: &Limits, sql: &str) -> bool {
        let mut statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap();
        statements.iter_mut().all(|s| limits.check_tree(s).is_ok())
    }

    #[test]
    fn chains_are_measured_to_the_limit() {
        // `SELECT 1+1` is a query (1), a binary expression (2) and its operands (3).
        let l = limits(3, 1, 1000);
        assert!(depth_ok(&l, "SELECT 1+1"));
        assert!(!depth_ok(&l, "SELECT 1+1+1"));
        let l = limits(101, 1, 100_000);
        let chain = |n: usize| format!("SELECT {}", vec!["1"; n].join("+"));
        assert!(depth_ok(&l, &chain(100)));
        assert!(!depth_ok(&l, &chain(101)));
    }

    #[test]
    fn a_very_deep_chain_is_refused_and_dropped_without_overflow() {
        // 200,000 terms: far deeper than a recursive drop could go on a test thread's stack.
        let sql = format!("SELECT {}", vec!["1"; 200_000].join("+"));
        let l = limits(256, 1, u64::MAX);
        let mut statements = Parser::parse_sql(&GenericDialect {}, &sql).unwrap();
        let err = l.check_tree(&mut statements[0]).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }));
        assert!(err.to_string().contains("limits.sql_expression_depth = 256"));
        drop(statements);
    }

    #[test]
    fn statements_are_counted_from_tokens() {
        let l = limits(10, 2, 1000);
        assert!(
            l.check_text("SELECT 1; SELECT 2;", &GenericDialect {}, 50)
                .is_ok()
        );
        assert!(
            l.check_text("SELECT ';;;'; SELECT 2 -- ;;\n", &GenericDialect {}, 50)
                .is_ok()
        );
        let err = l
            .check_text("SELECT 1; SELECT 2; SELECT 3", &GenericDialect {}, 50)
            .unwrap_err();
        assert!(err.to_string().contains("limits.sql_statements = 2"));
    }

    #[test]
    fn nesting_past_the_parser_recursion_is_refused_from_tokens() {
        let l = limits(256, 2, 100_000);
        let parens = |n: usize| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n));
        assert!(l.check_text(&parens(47), &GenericDialect {}, 50).is_ok());
        let err = l.check_text(&parens(48), &GenericDialect {}, 50).unwrap_err();
        assert!(err.to_string().contains("recursion_limit"), "{err}");
        // Sequential groups do not add up; END closes CASE.
        let flat = vec!["(CASE WHEN (1) THEN 2 END)"; 100].join("+");
        assert!(
            l.check_text(&format!("SELECT {flat}"), &GenericDialect {}, 50)
                .is_ok()
        );
    }

    #[test]
    fn text_size_is_checked_first() {
        let l = limits(10, 2, 8);
        assert!(l.check_text("SELECT 1", &GenericDialect {}, 50).is_ok());
        let err = l.check_text("SELECT 12", &GenericDialect {}, 50).unwrap_err();
        assert!(err.to_string().contains("limits.sql_query_bytes = 8"));
    }
}
