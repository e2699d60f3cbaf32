//! The semantic operators as a grammar extension: [`SemanticDialect`] wraps the session's dialect and
//! parses `a MEANS 'x'`, `a NOT MEANS 'x'`, `a RELEVANCE TO 'x'` and `a IS_SPAM` as calls of the
//! operators' functions (`semantic_matches(a, 'x')`), at a precedence like a comparison.
//!
//! Operators are recognised on the parser's tokens, after an expression: strings, quoted identifiers
//! and comments are never operators. A predicate (a `BOOLEAN` function) binds like `LIKE` and takes
//! `NOT`; any other operator binds tighter than arithmetic (just above `*`), so `a ABOUT 'x' > 0.7`
//! compares the score and `a ABOUT 'x' * 2` doubles it. An operator
//! word followed by the end of the expression (`FROM`, `,`, `)`) is left to the SQL grammar, so a
//! column alias of the same name still works.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, UnaryOperator,
};
use datafusion::sql::sqlparser::dialect::{Dialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// Where an operator's arguments stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fixity {
    /// `a KEYWORDS b`.
    Infix,
    /// `a KEYWORDS`.
    Postfix,
}

/// One operator spelling: its keywords and the function it calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Operator {
    /// The keywords, upper-cased, in order.
    pub(crate) keywords: Vec<String>,
    /// The function called, with the arguments in template order.
    pub(crate) function: String,
    /// Where the arguments stand.
    pub(crate) fixity: Fixity,
    /// A `BOOLEAN` function: comparison precedence, `NOT` allowed.
    pub(crate) predicate: bool,
    /// The function's argument position of each placeholder, in template order (a permutation of
    /// `0..n`: `{{ b }} K {{ a }}` gives `[1, 0]`).
    pub(crate) positions: Vec<usize>,
}

/// The operators of one session, longest spelling first.
#[derive(Debug, Default)]
pub(crate) struct Operators {
    list: Vec<Operator>,
    /// The call names of the AGGREGATE functions (lower-case), whose calls collect a group's values.
    aggregates: BTreeSet<String>,
    /// The call names of the SCALAR functions returning DOUBLE (scores: a bare one in a condition
    /// means `> 0.5`).
    scores: BTreeSet<String>,
}

impl Operators {
    /// The table of `operators` (the longest keyword sequence is tried first).
    pub(crate) fn new(mut list: Vec<Operator>) -> Operators {
        list.sort_by_key(|op| std::cmp::Reverse(op.keywords.len()));
        Operators {
            list,
            aggregates: BTreeSet::new(),
            scores: BTreeSet::new(),
        }
    }

    /// The table, knowing `names` as the call names of AGGREGATE functions.
    pub(crate) fn with_aggregates(mut self, names: impl IntoIterator<Item = String>) -> Operators {
        self.aggregates.extend(names);
        self
    }

    /// The table, knowing `names` as the call names of score functions.
    pub(crate) fn with_scores(mut self, names: impl IntoIterator<Item = String>) -> Operators {
        self.scores.extend(names);
        self
    }

    /// Whether `name` (lower-case) calls a SCALAR semantic function returning DOUBLE.
    pub(crate) fn is_score(&self, name: &str) -> bool {
        self.scores.contains(name)
    }

    /// Whether `name` (lower-case) calls an AGGREGATE semantic function.
    pub(crate) fn is_aggregate(&self, name: &str) -> bool {
        self.aggregates.contains(name)
    }
}

/// The session's dialect with the semantic operators: every `Dialect` method forwards to `inner`
/// (`dialect_delegate.rs`, generated), except the infix parsing and precedence, which try the
/// operators first.
#[derive(Debug)]
pub(crate) struct SemanticDialect {
    pub(crate) inner: Box<dyn Dialect>,
    operators: Arc<Operators>,
}

/// Words after which an operator keyword is a column alias, not an operator.
const ENDS: &[Keyword] = &[
    Keyword::FROM,
    Keyword::WHERE,
    Keyword::GROUP,
    Keyword::ORDER,
    Keyword::LIMIT,
    Keyword::HAVING,
    Keyword::UNION,
    Keyword::EXCEPT,
    Keyword::INTERSECT,
    Keyword::WINDOW,
    Keyword::QUALIFY,
    Keyword::OFFSET,
    Keyword::AS,
    Keyword::AND,
    Keyword::OR,
    Keyword::THEN,
    Keyword::END,
];

impl SemanticDialect {
    /// `inner` with `operators`.
    pub(crate) fn new(inner: Box<dyn Dialect>, operators: Arc<Operators>) -> SemanticDialect {
        SemanticDialect { inner, operators }
    }

    /// The operator whose keywords start `skip` tokens ahead, followed by an operand when it takes one.
    fn matching(&self, parser: &Parser, skip: usize) -> Option<&Operator> {
        self.operators.list.iter().find(|op| {
            let words = op.keywords.iter().enumerate().all(|(i, kw)| {
                matches!(&parser.peek_nth_token_ref(skip + i).token,
                    Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
            });
            words && (op.fixity == Fixity::Postfix || operand_follows(parser, skip + op.keywords.len()))
        })
    }

    /// The next operator (and whether `NOT` precedes it), if the parser stands before one.
    fn next_operator(&self, parser: &Parser) -> Option<(&Operator, bool)> {
        if let Some(op) = self.matching(parser, 0) {
            return Some((op, false));
        }
        let not = matches!(&parser.peek_token_ref().token, Token::Word(w) if w.keyword == Keyword::NOT);
        if not && let Some(op) = self.matching(parser, 1).filter(|op| op.predicate) {
            return Some((op, true));
        }
        None
    }

    fn precedence(&self, op: &Operator) -> u8 {
        if op.predicate {
            self.inner.prec_value(Precedence::Like)
        } else {
            // Just above `*` (and `||`): `a ABOUT 'x' * 2` doubles the score.
            self.inner.prec_value(Precedence::MulDivModOp).saturating_add(1)
        }
    }

    /// `get_next_precedence_default`: an operator's precedence, else the wrapped dialect's answer.
    pub(super) fn semantic_next_precedence(&self, parser: &Parser) -> Result<u8, ParserError> {
        match self.next_operator(parser) {
            Some((op, _)) => Ok(self.precedence(op)),
            None => self.inner.get_next_precedence_default(parser),
        }
    }

    /// `parse_infix`: an operator becomes a call of its function; anything else goes to the wrapped
    /// dialect.
    pub(super) fn semantic_parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        let Some((op, negated)) = self.next_operator(parser) else {
            return self.inner.parse_infix(parser, expr, precedence);
        };
        // The call's name carries the operator's position (a `-- @` annotation before it applies).
        let at = parser.peek_token_ref().span;
        for _ in 0..op.keywords.len() + usize::from(negated) {
            parser.next_token();
        }
        let mut operands = vec![expr.clone()];
        if op.fixity == Fixity::Infix {
            match parser.parse_subexpr(self.precedence(op)) {
                Ok(right) => operands.push(right),
                Err(e) => return Some(Err(e)),
            }
        }
        // Placeholders in template order, put at their argument positions.
        let mut placed: Vec<(usize, Expr)> = op.positions.iter().copied().zip(operands).collect();
        placed.sort_by_key(|(position, _)| *position);
        let mut call = call(&op.function, placed.into_iter().map(|(_, e)| e).collect());
        if let Expr::Function(f) = &mut call
            && let Some(ObjectNamePart::Identifier(ident)) = f.name.0.first_mut()
        {
            ident.span = at;
        }
        Some(Ok(if negated {
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr: Box::new(call),
            }
        } else {
            call
        }))
    }
}

/// Whether the token `n` ahead can start an operand (not the end of the expression or a clause).
fn operand_follows(parser: &Parser, n: usize) -> bool {
    match &parser.peek_nth_token_ref(n).token {
        Token::EOF | Token::Comma | Token::RParen | Token::SemiColon => false,
        Token::Word(w) if w.quote_style.is_none() => !ENDS.contains(&w.keyword),
        _ => true,
    }
}

/// `name(args…)` as a plain function call.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    call_with(name, args, None)
}

/// `name([DISTINCT] args…)` as a function call (also the aggregate rewrite's `array_agg`).
pub(super) fn call_with(
    name: &str,
    args: Vec<Expr>,
    duplicate_treatment: Option<DuplicateTreatment>,
) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::{GenericDialect, PostgreSqlDialect};

    use super::*;

    fn op(
        keywords: &[&str],
        function: &str,
        fixity: Fixity,
        predicate: bool,
        positions: &[usize],
    ) -> Operator {
        Operator {
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
            function: function.to_owned(),
            fixity,
            predicate,
            positions: positions.to_vec(),
        }
    }

    fn parsed(sql: &str) -> String {
        let operators = Arc::new(Operators::new(vec![
            op(&["MEANS"], "matches", Fixity::Infix, true, &[0, 1]),
            op(&["ABOUT"], "score", Fixity::Infix, false, &[0, 1]),
            op(&["RELEVANCE", "TO"], "score", Fixity::Infix, false, &[0, 1]),
            op(&["IS_SPAM"], "spam", Fixity::Postfix, true, &[0]),
            op(&["EXPLAINS"], "implies", Fixity::Infix, true, &[1, 0]),
        ]));
        let dialect = SemanticDialect::new(Box::new(GenericDialect {}), operators);
        let statements = Parser::parse_sql(&dialect, sql).unwrap();
        statements[0].to_string()
    }

    #[test]
    fn operators_parse_as_calls_at_their_precedence() {
        assert_eq!(
            parsed("SELECT x MEANS 'a' AND y ABOUT 'b' > 0.7"),
            "SELECT matches(x, 'a') AND score(y, 'b') > 0.7"
        );
        assert_eq!(parsed("SELECT x NOT MEANS 'a'"), "SELECT NOT matches(x, 'a')");
        assert_eq!(parsed("SELECT NOT x MEANS 'a'"), "SELECT NOT matches(x, 'a')");
        assert_eq!(
            parsed("SELECT x ABOUT 'b' * 2 + 1"),
            "SELECT score(x, 'b') * 2 + 1"
        );
        assert_eq!(
            parsed("SELECT 1 FROM t ORDER BY x relevance to 'y' DESC"),
            "SELECT 1 FROM t ORDER BY score(x, 'y') DESC"
        );
        assert_eq!(parsed("SELECT a.b IS_SPAM"), "SELECT spam(a.b)");
        assert_eq!(parsed("SELECT 'p' EXPLAINS 'q'"), "SELECT implies('q', 'p')");
    }

    #[test]
    fn strings_comments_quoted_names_and_aliases_are_left_alone() {
        assert_eq!(parsed("SELECT 'x MEANS y'"), "SELECT 'x MEANS y'");
        assert_eq!(parsed("SELECT x -- MEANS 'y'\n"), "SELECT x");
        assert_eq!(parsed("SELECT x /* MEANS 'y' */ FROM t"), "SELECT x FROM t");
        assert_eq!(parsed("SELECT x means FROM t"), "SELECT x AS means FROM t");
        assert_eq!(parsed("SELECT x \"MEANS\""), "SELECT x AS \"MEANS\"");
        assert_eq!(parsed("SELECT x NOT IN (1)"), "SELECT x NOT IN (1)");
    }

    #[test]
    fn the_wrapper_is_the_wrapped_dialect_for_dialect_checks() {
        let dialect = SemanticDialect::new(Box::new(PostgreSqlDialect {}), Arc::default());
        assert_eq!(dialect.dialect(), std::any::TypeId::of::<PostgreSqlDialect>());
        assert!(dialect.supports_filter_during_aggregation());
    }
}
