//! Splitting a SQL text into its statements by the tokenizer's `;` (strings, quoted names, comments and
//! dollar-quoted bodies are single tokens, so a `;` inside them never splits), keeping each statement's
//! text as written. `sql_data` runs a several-statement query this way, as LARS does.

use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

/// The statements of `sql` as written, blank ones dropped. A text the tokenizer refuses (an unclosed
/// string, say) is one statement: the session parses it and reports the error with its position.
pub(crate) fn split<'a>(sql: &'a str, dialect: &dyn Dialect) -> Vec<&'a str> {
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize_with_location() else {
        return vec![sql];
    };
    let mut offsets = Offsets::new(sql);
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut blank = true;
    for t in tokens {
        match t.token {
            Token::SemiColon => {
                let at = offsets.at(t.span.start);
                if !blank {
                    pieces.push(sql.get(start..at).unwrap_or_default());
                }
                start = at + 1;
                blank = true;
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => blank = false,
        }
    }
    if !blank {
        pieces.push(sql.get(start..).unwrap_or_default());
    }
    pieces
}

/// Byte offsets of tokenizer locations (1-based line, 1-based column in characters), asked in
/// increasing order: each call walks on from the last, so a whole string costs one pass.
pub(crate) struct Offsets<'a> {
    chars: std::str::CharIndices<'a>,
    line: u64,
    column: u64,
    byte: usize,
    len: usize,
}

impl<'a> Offsets<'a> {
    /// Offsets into `sql`, starting at its beginning.
    pub(crate) fn new(sql: &'a str) -> Offsets<'a> {
        Offsets {
            chars: sql.char_indices(),
            line: 1,
            column: 1,
            byte: 0,
            len: sql.len(),
        }
    }

    /// The byte offset of `to` (not before the last one asked).
    pub(crate) fn at(&mut self, to: Location) -> usize {
        while (self.line, self.column) < (to.line, to.column) {
            let Some((i, c)) = self.chars.next() else {
                return self.len;
            };
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
            self.byte = i + c.len_utf8();
        }
        self.byte
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    use super::split;

    #[test]
    fn semicolons_in_strings_comments_and_dollar_quotes_do_not_split() {
        let sql = "CREATE TABLE t AS SELECT 'a;b' AS x; -- one; two\nSELECT $$;$$ AS y /* ; */ ;\n\n; SELECT \"c;d\" FROM t";
        let pieces = split(sql, &PostgreSqlDialect {});
        assert_eq!(
            pieces,
            vec![
                "CREATE TABLE t AS SELECT 'a;b' AS x",
                " -- one; two\nSELECT $$;$$ AS y /* ; */ ",
                " SELECT \"c;d\" FROM t"
            ]
        );
    }

    #[test]
    fn one_statement_and_unclosed_strings_stay_whole() {
        let dialect = PostgreSqlDialect {};
        assert_eq!(split("SELECT 1;", &dialect), vec!["SELECT 1"]);
        assert_eq!(split("SELECT 'é', 2", &dialect), vec!["SELECT 'é', 2"]);
        assert_eq!(split("SELECT 'open; x", &dialect), vec!["SELECT 'open; x"]);
        assert!(split(" ; ;", &dialect).is_empty());
    }
}
