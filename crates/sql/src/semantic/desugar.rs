//! `SEMANTIC JOIN` and `SELECT SEMANTIC DISTINCT` (SQL interface spec §12.4), written out on the
//! statement's tokens before it is parsed:
//! - `SEMANTIC JOIN t ON a ~ b` is `JOIN t ON a SAME_AS b`: a `~` in its `ON` condition asks whether
//!   the two values name the same thing (any other condition is kept as written); the condition is
//!   evaluated on the joined rows ([`crate::async_join`]).
//! - `SELECT SEMANTIC DISTINCT cols …` is `SELECT DISTINCT cols … THEN DEDUPE`: the exact duplicates
//!   go first, then the `DEDUPE` pipeline stage drops the rows that mean the same as an earlier one.
//!   It must be the statement's own `SELECT` (not a subquery's, nor a branch of a `UNION`).
//!
//! `SEMANTIC` is a keyword only right before `JOIN` or (after `SELECT`) `DISTINCT`; strings, quoted
//! names and comments are never rewritten.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace, Word};

use crate::error::{Error, Result};

/// The statement with `VECTOR_SEARCH(…)`, `SEMANTIC JOIN` and `SEMANTIC DISTINCT` written out, or `None`
/// when it uses none of them.
pub(crate) fn desugar(sql: &str) -> Result<Option<String>> {
    let searched = super::rewrite_vector_search(sql)?;
    let sql = searched.as_deref().unwrap_or(sql);
    match semantic(sql)? {
        Some(done) => Ok(Some(done)),
        None => Ok(searched),
    }
}

/// `SEMANTIC JOIN` and `SEMANTIC DISTINCT` written out, or `None` without them.
fn semantic(sql: &str) -> Result<Option<String>> {
    if !sql.to_ascii_uppercase().contains("SEMANTIC") {
        return Ok(None);
    }
    let Ok(mut tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        // The planner reports a text that does not tokenize.
        return Ok(None);
    };
    let mut changed = false;
    let mut distinct = false;
    let mut i = 0;
    while i < tokens.len() {
        if !is_word(&tokens[i], "SEMANTIC") {
            i += 1;
            continue;
        }
        let next = next_significant(&tokens, i + 1);
        match next.map(|n| &tokens[n]) {
            Some(t) if is_keyword(t, Keyword::JOIN) => {
                tokens.drain(i..next.unwrap_or(i + 1));
                same_as_in_on(&mut tokens, i);
                changed = true;
            }
            Some(t) if is_keyword(t, Keyword::DISTINCT) && follows_select(&tokens, i) => {
                if depth_at(&tokens, i) > 0 {
                    return Err(Error::Invalid {
                        message: "SEMANTIC DISTINCT works on the statement's own SELECT, not in a \
                                  subquery or a CTE: write it on the outer SELECT, or end the statement \
                                  with `THEN DEDUPE`"
                            .into(),
                    });
                }
                tokens.drain(i..next.unwrap_or(i + 1));
                distinct = true;
                changed = true;
            }
            _ => i += 1,
        }
    }
    if !changed {
        return Ok(None);
    }
    if distinct {
        if has_top_level_set_operation(&tokens) {
            return Err(Error::Invalid {
                message: "SEMANTIC DISTINCT on a UNION, EXCEPT or INTERSECT is not supported: put the \
                          set operation in a subquery and write `SELECT SEMANTIC DISTINCT * FROM (…) t`"
                    .into(),
            });
        }
        let space = || Token::Whitespace(Whitespace::Space);
        let (then, dedupe) = (Token::make_keyword("THEN"), Token::make_word("DEDUPE", None));
        match super::tokens::top_level_thens(&tokens).first().copied() {
            // Before the statement's own stages, which follow a space already.
            Some(at) => tokens.splice(at..at, [then, space(), dedupe, space()]),
            None => {
                let at = end_of_statement(&tokens);
                tokens.splice(at..at, [space(), then, space(), dedupe])
            }
        };
    }
    Ok(Some(tokens.iter().map(ToString::to_string).collect()))
}

/// Whether `token` is the unquoted word `word` (any case).
fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(Word { value, quote_style: None, .. }) if value.eq_ignore_ascii_case(word))
}

/// Whether `token` is the unquoted keyword `keyword`.
fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.keyword == keyword)
}

/// The position of the first token at or after `from` that is not whitespace or a comment.
fn next_significant(tokens: &[Token], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&i| !matches!(tokens[i], Token::Whitespace(_)))
}

/// Whether the token before `at` (whitespace and comments aside) is `SELECT`.
fn follows_select(tokens: &[Token], at: usize) -> bool {
    tokens[..at]
        .iter()
        .rev()
        .find(|t| !matches!(t, Token::Whitespace(_)))
        .is_some_and(|t| is_keyword(t, Keyword::SELECT))
}

/// How many parentheses are open at `at`.
fn depth_at(tokens: &[Token], at: usize) -> usize {
    tokens[..at].iter().fold(0usize, |d, t| match t {
        Token::LParen => d + 1,
        Token::RParen => d.saturating_sub(1),
        _ => d,
    })
}

/// Whether a `UNION`, `EXCEPT` or `INTERSECT` stands outside parentheses.
fn has_top_level_set_operation(tokens: &[Token]) -> bool {
    let mut depth = 0usize;
    tokens.iter().any(|t| {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        depth == 0
            && [Keyword::UNION, Keyword::EXCEPT, Keyword::INTERSECT]
                .into_iter()
                .any(|k| is_keyword(t, k))
    })
}

/// Where the statement ends: before a trailing `;` and whitespace.
fn end_of_statement(tokens: &[Token]) -> usize {
    let mut end = tokens.len();
    while end > 0
        && matches!(
            tokens[end - 1],
            Token::Whitespace(_) | Token::SemiColon | Token::EOF
        )
    {
        end -= 1;
    }
    end
}

/// In the `ON` condition of the join whose `JOIN` keyword is at or after `from`, each `~` outside
/// nested parentheses becomes `SAME_AS`. The condition ends at the next clause or join at its depth.
fn same_as_in_on(tokens: &mut [Token], from: usize) {
    const ENDS: [Keyword; 17] = [
        Keyword::JOIN,
        Keyword::INNER,
        Keyword::LEFT,
        Keyword::RIGHT,
        Keyword::FULL,
        Keyword::CROSS,
        Keyword::NATURAL,
        Keyword::WHERE,
        Keyword::GROUP,
        Keyword::HAVING,
        Keyword::ORDER,
        Keyword::LIMIT,
        Keyword::UNION,
        Keyword::EXCEPT,
        Keyword::INTERSECT,
        Keyword::WINDOW,
        Keyword::THEN,
    ];
    let mut depth = 0usize;
    let mut in_on = false;
    for token in tokens.iter_mut().skip(from + 1) {
        match token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => return,
            Token::RParen => depth -= 1,
            Token::SemiColon | Token::Comma if depth == 0 => return,
            Token::Word(w) if depth == 0 && w.quote_style.is_none() => {
                if w.keyword == Keyword::ON {
                    in_on = true;
                } else if in_on && (ENDS.contains(&w.keyword) || w.value.eq_ignore_ascii_case("SEMANTIC")) {
                    return;
                }
            }
            Token::Tilde if in_on && depth == 0 => *token = Token::make_word("SAME_AS", None),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(sql: &str) -> String {
        desugar(sql)
            .unwrap()
            .unwrap_or_else(|| format!("unchanged: {sql}"))
    }

    #[test]
    fn semantic_join_becomes_a_join_whose_tilde_is_same_as() {
        assert_eq!(
            out("SELECT * FROM a semantic JOIN b ON a.x ~ b.y AND a.z ~ 'q' WHERE a.w ~ 'x'"),
            "SELECT * FROM a JOIN b ON a.x SAME_AS b.y AND a.z SAME_AS 'q' WHERE a.w ~ 'x'"
        );
        assert_eq!(
            out("SELECT * FROM a SEMANTIC JOIN b ON (a.x ~ b.y) JOIN c ON a.k ~ c.k"),
            "SELECT * FROM a JOIN b ON (a.x ~ b.y) JOIN c ON a.k ~ c.k",
            "only the SEMANTIC JOIN's own condition, outside nested parentheses"
        );
    }

    #[test]
    fn semantic_distinct_dedupes_after_the_query_and_before_other_stages() {
        assert_eq!(
            out("SELECT SEMANTIC DISTINCT tag FROM t;"),
            "SELECT DISTINCT tag FROM t THEN DEDUPE;"
        );
        assert_eq!(
            out("select semantic distinct tag from t then stats"),
            "select distinct tag from t THEN DEDUPE then stats"
        );
    }

    #[test]
    fn strings_names_and_other_uses_are_left_alone() {
        for sql in [
            "SELECT 'SEMANTIC JOIN' FROM t",
            "SELECT \"semantic\" FROM t",
            "SELECT semantic FROM t -- SEMANTIC DISTINCT",
            "SELECT x FROM t WHERE semantic = 1",
        ] {
            assert_eq!(desugar(sql).unwrap(), None, "{sql}");
        }
    }

    #[test]
    fn semantic_distinct_outside_the_outer_select_is_refused() {
        for sql in [
            "SELECT * FROM (SELECT SEMANTIC DISTINCT tag FROM t) s",
            "SELECT SEMANTIC DISTINCT tag FROM t UNION SELECT tag FROM u",
        ] {
            let err = desugar(sql).unwrap_err().to_string();
            assert!(err.contains("SEMANTIC DISTINCT"), "{sql}: {err}");
        }
    }
}
