//! PIPELINE stages (SQL interface spec §12.2): a query followed by stages, each taking the table so far
//! and giving the next (`SELECT * FROM reviews THEN FILTER 'mentions shipping' THEN STATS`).
//!
//! - A stage is spelled by a `THEN …` operator template of a PIPELINE function (`THEN FILTER
//!   {{ criterion }}`); its cascade reads the table as `input._table` (a JSON array of row objects) and
//!   answers the next table the same way. The shipped ones (`crates/sql/operators/pipeline_*.yaml`) are
//!   FILTER, ENRICH (`AS column`), ANALYZE and DEDUPE.
//! - SAMPLE n, TOP column n, STATS and PASS are relational: they run as SQL over the table ([`native`]),
//!   never ask a model, and a user's PIPELINE function with the same spelling replaces them.
//!
//! [`split`] finds the stages on the SQL tokens: a `THEN` outside parentheses and `CASE … END` ends
//! the query, so `CASE WHEN … THEN …` and strings are never stages. [`run`](run::run) runs them, and
//! makes the table of `CREATE TABLE name AS … THEN …` (or inserts the rows of `INSERT INTO name … THEN
//! …`). Stages of a parenthesised query (a subquery, a CTE's body) run first ([`nested`]).

mod native;
mod nested;
mod run;
mod table;

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};
use rvbbit_cascade::model::SqlShape;
use rvbbit_cascade::operator::Form;

pub(crate) use nested::{drop_tables, expand};
pub(crate) use run::run;

use super::Definition;
use super::tokens::top_level_thens;
use crate::error::{Error, Result};

/// How a stage runs.
#[derive(Debug, Clone)]
pub(crate) enum Runs {
    /// The cascade of a PIPELINE function, with the argument name of each placeholder in order.
    Cascade {
        definition: Arc<Definition>,
        args: Vec<String>,
    },
    /// A relational stage, run as SQL.
    Native(native::Native),
}

/// One stage spelling: `THEN` then its pieces (a keyword, or `None` for a value).
#[derive(Debug, Clone)]
pub(crate) struct Stage {
    pieces: Vec<Option<String>>,
    pub(crate) runs: Runs,
}

impl Stage {
    /// The spelling with placeholders, as users write it: `THEN ENRICH <prompt> AS <column>`.
    pub(crate) fn spelling(&self) -> String {
        let mut names: Vec<String> = match &self.runs {
            Runs::Cascade { args, .. } => args.clone(),
            Runs::Native(n) => n.args().iter().map(|a| (*a).to_owned()).collect(),
        };
        names.reverse();
        let mut out = String::from("THEN");
        for piece in &self.pieces {
            out.push(' ');
            match piece {
                Some(word) => out.push_str(word),
                None => out.push_str(&format!("<{}>", names.pop().unwrap_or_default())),
            }
        }
        out
    }
}

/// The stages of one session: the PIPELINE functions' templates, then the relational stages they do
/// not replace; longest spelling first.
#[derive(Debug, Default)]
pub(crate) struct Stages(Vec<Stage>);

impl Stages {
    /// The stages of `functions` (a spelling two functions use keeps the first, with a warning), then
    /// the relational ones.
    pub(crate) fn of(functions: &[Arc<Definition>], warnings: &mut Vec<String>) -> Stages {
        let mut list: Vec<Stage> = Vec::new();
        let mut seen: BTreeSet<Vec<Option<String>>> = BTreeSet::new();
        for f in functions
            .iter()
            .filter(|f| f.spec.call_shape() == SqlShape::Pipeline)
        {
            for t in &f.templates {
                let Form::Stage { pieces } = &t.form else {
                    continue;
                };
                if !seen.insert(pieces.clone()) {
                    warnings.push(format!(
                        "semantic SQL: the stage `THEN {}` of `{}` ({}) is not loaded: another function \
                         already uses it",
                        spelled(pieces),
                        f.name,
                        f.source
                    ));
                    continue;
                }
                list.push(Stage {
                    pieces: pieces.clone(),
                    runs: Runs::Cascade {
                        definition: f.clone(),
                        args: t.args.clone(),
                    },
                });
            }
        }
        for native in native::Native::ALL {
            let pieces = native.pieces();
            if seen.insert(pieces.clone()) {
                list.push(Stage {
                    pieces,
                    runs: Runs::Native(native),
                });
            }
        }
        list.sort_by_key(|s| std::cmp::Reverse(s.pieces.len()));
        Stages(list)
    }

    /// The stage whose spelling is exactly `tokens`, with its values.
    fn matching(&self, tokens: &[Token]) -> Option<(Stage, Vec<String>)> {
        'stages: for stage in &self.0 {
            if stage.pieces.len() != tokens.len() {
                continue;
            }
            let mut values = Vec::new();
            for (piece, token) in stage.pieces.iter().zip(tokens) {
                match (piece, token) {
                    (Some(keyword), Token::Word(w))
                        if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword) => {}
                    (None, token) => match value(token) {
                        Some(v) => values.push(v),
                        None => continue 'stages,
                    },
                    _ => continue 'stages,
                }
            }
            return Some((stage.clone(), values));
        }
        None
    }

    /// Every spelling, for a message.
    fn spellings(&self) -> String {
        let mut all: Vec<String> = self.0.iter().map(Stage::spelling).collect();
        all.sort();
        all.join(", ")
    }
}

fn spelled(pieces: &[Option<String>]) -> String {
    pieces
        .iter()
        .map(|p| p.as_deref().unwrap_or("…"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value a token gives a placeholder: a string's text, a number, a (column) name.
fn value(token: &Token) -> Option<String> {
    match token {
        Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) | Token::NationalStringLiteral(s) => {
            Some(s.clone())
        }
        Token::DollarQuotedString(d) => Some(d.value.clone()),
        Token::Number(n, _) => Some(n.clone()),
        Token::Word(Word { value, .. }) => Some(value.clone()),
        _ => None,
    }
}

/// A query and the stages after it.
#[derive(Debug)]
pub(crate) struct Pipeline {
    /// The query before the first stage (its own text, comments included).
    pub(crate) query: String,
    /// The stages in order, with their values.
    pub(crate) stages: Vec<(Stage, Vec<String>)>,
    /// The query was `EXPLAIN …`: show the plan and the stages, run nothing.
    pub(crate) explain: bool,
    /// What the statement does with the stages' result, written before the query: `CREATE [TEMP]
    /// TABLE name AS` or `INSERT INTO name [(columns)]`; `None` for a query.
    pub(crate) target: Option<String>,
}

/// Split `sql` into a query and its stages; `None` when it has no stage (a `THEN` outside parentheses
/// and `CASE`). Errors: a stage no spelling matches (RVB-Q001), or stages after a statement that does
/// not make a table of them (RVB-Q009).
pub(crate) fn split(sql: &str, stages: &Stages) -> Result<Option<Pipeline>> {
    if !sql.to_ascii_uppercase().contains("THEN") {
        return Ok(None);
    }
    let Ok(located) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        // Not a pipeline if it does not even tokenize: the planner reports the error.
        return Ok(None);
    };
    let tokens: Vec<Token> = located.iter().map(|t| t.token.clone()).collect();
    let cuts = top_level_thens(&tokens);
    let Some(&first) = cuts.first() else {
        return Ok(None);
    };
    // The byte offset of token `i` (the end of the text past the last one).
    let at = |i: usize| {
        located
            .get(i)
            .map_or(sql.len(), |t| crate::with_clause::offset(sql, t.span.start))
    };
    let mut parts = Vec::new();
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).copied().unwrap_or(tokens.len());
        let words: Vec<Token> = tokens[start + 1..end]
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon | Token::EOF))
            .cloned()
            .collect();
        let Some(found) = stages.matching(&words) else {
            let shown = &sql[at(start)..at(end)];
            return Err(Error::Invalid {
                message: format!(
                    "`{}` is not a pipeline stage; the stages are: {} (each value a 'string', a number \
                     or a column name)",
                    shown.trim().trim_end_matches(';').trim(),
                    stages.spellings()
                ),
            });
        };
        parts.push(found);
    }
    let head = significant(&tokens[..first]);
    let (explain, head) = match head.first() {
        Some(&i) if is_word(&tokens[i], "EXPLAIN") => (true, &head[1..]),
        _ => (false, &head[..]),
    };
    let query_from = query_start(&tokens, head)?;
    let target = (query_from != head.first().copied().unwrap_or(first))
        .then(|| sql[at(head[0])..at(query_from)].trim().to_owned());
    Ok(Some(Pipeline {
        query: sql[at(query_from)..at(first)].trim().to_owned(),
        stages: parts,
        explain,
        target,
    }))
}

/// The positions of the tokens that are not whitespace or comments.
fn significant(tokens: &[Token]) -> Vec<usize> {
    (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_) | Token::EOF))
        .collect()
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Where the query of a statement with stages starts (`head`: its significant tokens): at its first
/// token for a query, after `AS` for `CREATE [TEMP] TABLE name AS`, at the query of `INSERT INTO`.
/// Errors (RVB-Q009): a view, or a statement that makes no table of the stages.
fn query_start(tokens: &[Token], head: &[usize]) -> Result<usize> {
    let Some(&first) = head.first() else {
        return Err(misplaced("before the first `THEN` there is no query"));
    };
    if ["SELECT", "WITH", "VALUES"]
        .iter()
        .any(|w| is_word(&tokens[first], w))
        || tokens[first] == Token::LParen
    {
        return Ok(first);
    }
    // The first top-level word of the query after the statement's own words.
    let mut depth = 0usize;
    let mut top = Vec::new();
    for &i in head {
        match tokens[i] {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ if depth == 0 => top.push(i),
            _ => {}
        }
    }
    if is_word(&tokens[first], "CREATE") {
        if top.iter().any(|&i| is_word(&tokens[i], "VIEW")) {
            return Err(misplaced(
                "a view cannot end with THEN stages: its query runs each time it is read, and stages run \
                 once; make a table of the result with CREATE TABLE name AS SELECT … THEN …",
            ));
        }
        if let Some(p) = top.iter().position(|&i| is_word(&tokens[i], "AS"))
            && top[..p].iter().any(|&i| is_word(&tokens[i], "TABLE"))
            && let Some(&next) = head.iter().find(|&&i| i > top[p])
        {
            return Ok(next);
        }
    } else if is_word(&tokens[first], "INSERT")
        && let Some(&query) = top.iter().skip(1).find(|&&i| {
            ["SELECT", "WITH", "VALUES"]
                .iter()
                .any(|w| is_word(&tokens[i], w))
        })
    {
        return Ok(query);
    }
    Err(misplaced(
        "THEN stages follow a query (`SELECT … THEN …`), the query of `CREATE TABLE name AS` or of \
         `INSERT INTO name`; not this statement",
    ))
}

/// RVB-Q009: stages where they cannot run.
pub(crate) fn misplaced(message: &str) -> Error {
    Error::StagePosition {
        message: format!("pipeline stages (`THEN …`) here are not supported: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages() -> Stages {
        Stages::of(&[], &mut Vec::new())
    }

    #[test]
    fn a_then_outside_case_and_parentheses_starts_a_stage() {
        let p = split(
            "SELECT CASE WHEN a THEN 1 END AS x, (SELECT CASE WHEN b THEN 2 END) FROM t THEN TOP x 5 then stats;",
            &stages(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            p.query,
            "SELECT CASE WHEN a THEN 1 END AS x, (SELECT CASE WHEN b THEN 2 END) FROM t"
        );
        let got: Vec<(String, Vec<String>)> =
            p.stages.iter().map(|(s, v)| (s.spelling(), v.clone())).collect();
        assert_eq!(
            got,
            [
                (
                    "THEN TOP <column> <n>".to_owned(),
                    vec!["x".to_owned(), "5".to_owned()]
                ),
                ("THEN STATS".to_owned(), vec![])
            ]
        );
        assert!(!p.explain);
    }

    #[test]
    fn statements_without_a_stage_are_left_alone() {
        for sql in [
            "SELECT CASE WHEN a THEN 'THEN' ELSE 'x' END FROM t",
            "SELECT 'a THEN b' -- THEN STATS\nFROM t",
            "SELECT 1",
        ] {
            assert!(split(sql, &stages()).unwrap().is_none(), "{sql}");
        }
    }

    #[test]
    fn an_unknown_stage_names_the_known_ones() {
        let e = split("SELECT 1 THEN EXPLODE 'x'", &stages()).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("`THEN EXPLODE 'x'` is not a pipeline stage"), "{m}");
        assert!(m.contains("THEN SAMPLE <n>"), "{m}");
        let e = split("DELETE FROM t THEN PASS", &stages()).unwrap_err();
        assert!(e.to_string().contains("follow a query"), "{e}");
        assert_eq!(e.code().code, "RVB-Q009");
        let e = split("CREATE VIEW v AS SELECT 1 THEN PASS", &stages()).unwrap_err();
        assert!(
            e.to_string().contains("a view cannot end with THEN stages"),
            "{e}"
        );
        let p = split("create temp table t as select 'it''s' as x then pass", &stages())
            .unwrap()
            .unwrap();
        assert_eq!(p.target.as_deref(), Some("create temp table t as"));
        assert_eq!(p.query, "select 'it''s' as x");
        let p = split("INSERT INTO t (a) SELECT 1 THEN PASS", &stages())
            .unwrap()
            .unwrap();
        assert_eq!(p.target.as_deref(), Some("INSERT INTO t (a)"));
        assert_eq!(p.query, "SELECT 1");
        let p = split("EXPLAIN SELECT 1 THEN PASS", &stages()).unwrap().unwrap();
        assert!(p.explain);
        assert_eq!(p.query, "SELECT 1");
    }
}
