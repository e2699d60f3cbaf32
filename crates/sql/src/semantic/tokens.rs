//! Helpers on the statement's tokens shared by the token-level syntax (`pipeline/`, `desugar.rs`).

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::Token;

/// The positions of the `THEN`s outside parentheses, brackets and `CASE … END`.
pub(crate) fn top_level_thens(tokens: &[Token]) -> Vec<usize> {
    let mut depth = 0usize;
    let mut cases = 0usize;
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            Token::Word(w) if w.quote_style.is_none() => match w.keyword {
                Keyword::CASE => cases += 1,
                Keyword::END => cases = cases.saturating_sub(1),
                Keyword::THEN if depth == 0 && cases == 0 => out.push(i),
                _ => {}
            },
            _ => {}
        }
    }
    out
}
