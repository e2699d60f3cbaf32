//! The COPY sub-protocol: `COPY (query) TO STDOUT` / `COPY table TO STDOUT` stream the query's batches
//! as CopyData rows (`out.rs`); `COPY table FROM STDIN` buffers the client's CopyData up to
//! `limits.pgwire_copy_bytes`, parses and checks every row and appends them to a session table in one
//! INSERT (`input.rs`). The row formats (text, CSV, binary) are in `format.rs`. COPY to or from a file
//! on the server is DataFusion's statement and stays under the file rule (42501).

// `ErrorInfo` is pgwire's own error message type, which the protocol layer consumes as is.
#![allow(clippy::result_large_err)]

mod format;
mod input;
mod out;

use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use pgwire::error::ErrorInfo;

pub(super) use input::{Pending, affected_rows, done, fail, receive, start};
pub(super) use out::send;

use super::errors::{error, state};

/// A `COPY … TO STDOUT` or `COPY … FROM STDIN` statement.
#[derive(Clone, Debug)]
pub(crate) struct Copy {
    /// Which way the rows go.
    pub(crate) direction: Direction,
    /// How each row is written.
    pub(crate) format: CopyFormat,
}

/// The way a COPY's rows go.
#[derive(Clone, Debug)]
pub(crate) enum Direction {
    /// To the client: the rows of this query (a `Statement::Query`).
    Out(Box<Statement>),
    /// From the client, into a table.
    In(Target),
}

/// The table a `COPY … FROM STDIN` fills, and how its rows are written.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The table as written (possibly qualified and quoted).
    pub(crate) table: String,
    /// The target columns, unquoted (empty: every column, in order).
    pub(crate) columns: Vec<String>,
    /// The row format.
    pub(crate) format: CopyFormat,
}

/// A COPY row format and its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CopyFormat {
    /// PostgreSQL's text format: `delimiter`-separated, backslash escapes, `null` for NULL.
    Text {
        /// One ASCII byte (tab by default).
        delimiter: u8,
        /// The NULL marker (`\N` by default).
        null: String,
    },
    /// CSV.
    Csv {
        /// One ASCII byte (comma by default).
        delimiter: u8,
        /// The quote byte (`"` by default).
        quote: u8,
        /// The byte escaping a quote inside a quoted value (the quote by default).
        escape: u8,
        /// The NULL marker (an unquoted empty value by default).
        null: String,
        /// Whether the first line holds the column names.
        header: bool,
    },
    /// PostgreSQL's binary format (`PGCOPY` header, length-prefixed values).
    Binary,
}

impl CopyFormat {
    /// The format code of CopyInResponse / CopyOutResponse (0 text, 1 binary).
    pub(crate) fn code(&self) -> i8 {
        i8::from(*self == CopyFormat::Binary)
    }
}

/// What a `COPY … STDIN/STDOUT` statement asks for, or why it cannot be served.
pub(crate) fn plan(statement: &Statement) -> Result<Copy, ErrorInfo> {
    let Statement::Copy {
        source,
        to,
        options,
        legacy_options,
        ..
    } = statement
    else {
        return Err(error(state::INTERNAL, "not a COPY statement (this is a bug)", ""));
    };
    let format = options_format(options, legacy_options)?;
    let direction = match (source, to) {
        (CopySource::Query(query), true) => Direction::Out(Box::new(Statement::Query(query.clone()))),
        (CopySource::Table { table_name, columns }, true) => {
            let cols = if columns.is_empty() {
                "*".to_owned()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let text = format!("SELECT {cols} FROM {table_name}");
            let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, &text)
                .map_err(|e| error(state::SYNTAX, e.to_string(), ""))?;
            let Some(query) = parsed.pop() else {
                return Err(error(state::INTERNAL, "an empty COPY query (this is a bug)", ""));
            };
            Direction::Out(Box::new(query))
        }
        (CopySource::Table { table_name, columns }, false) => {
            if format == CopyFormat::Binary {
                return Err(error(
                    state::NOT_SUPPORTED,
                    "COPY FROM STDIN in binary format is not supported",
                    "send text or CSV (WITH (FORMAT csv))",
                ));
            }
            Direction::In(Target {
                table: table_name.to_string(),
                columns: columns.iter().map(|c| c.value.clone()).collect(),
                format: format.clone(),
            })
        }
        (CopySource::Query(_), false) => {
            return Err(error(
                state::SYNTAX,
                "COPY FROM needs a table, not a query",
                "COPY table [(columns)] FROM STDIN",
            ));
        }
    };
    Ok(Copy { direction, format })
}

/// The row format of COPY's options (`WITH (FORMAT csv, HEADER)`, or the old `CSV HEADER`, `BINARY`).
fn options_format(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyFormat, ErrorInfo> {
    let mut kind = "text".to_owned();
    let mut delimiter = None;
    let mut null = None;
    let mut header = false;
    let mut quote = None;
    let mut escape = None;
    let unsupported = |what: &str| {
        error(
            state::NOT_SUPPORTED,
            format!("COPY option {what} is not supported"),
            "the options served are FORMAT (text, csv, binary), DELIMITER, NULL, HEADER, QUOTE, ESCAPE and ENCODING 'UTF8'",
        )
    };
    for option in options {
        match option {
            CopyOption::Format(name) => kind = name.value.to_ascii_lowercase(),
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(s) => null = Some(s.clone()),
            CopyOption::Header(h) => header = *h,
            CopyOption::Quote(c) => quote = Some(*c),
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::Freeze(_) => {}
            CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => return Err(unsupported(&other.to_string())),
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => kind = "binary".into(),
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(s) => null = Some(s.clone()),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Csv(csv) => {
                kind = "csv".into();
                for o in csv {
                    match o {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(c) => quote = Some(*c),
                        CopyLegacyCsvOption::Escape(c) => escape = Some(*c),
                        other => return Err(unsupported(&other.to_string())),
                    }
                }
            }
            other => return Err(unsupported(&other.to_string())),
        }
    }
    let byte = |c: Option<char>, default: u8, what: &str| -> Result<u8, ErrorInfo> {
        match c {
            None => Ok(default),
            Some(c) if c.is_ascii() && c != '\r' && c != '\n' => Ok(c as u8),
            Some(c) => Err(error(
                state::INVALID_PARAMETER,
                format!("COPY {what} must be a single one-byte character, not {c:?}"),
                "",
            )),
        }
    };
    match kind.as_str() {
        "text" => {
            if header || quote.is_some() || escape.is_some() {
                return Err(error(
                    state::NOT_SUPPORTED,
                    "COPY HEADER, QUOTE and ESCAPE are available only in CSV mode",
                    "add FORMAT csv",
                ));
            }
            Ok(CopyFormat::Text {
                delimiter: byte(delimiter, b'\t', "delimiter")?,
                null: null.unwrap_or_else(|| "\\N".into()),
            })
        }
        "csv" => {
            let quote = byte(quote, b'"', "quote")?;
            Ok(CopyFormat::Csv {
                delimiter: byte(delimiter, b',', "delimiter")?,
                quote,
                escape: byte(escape, quote, "escape")?,
                null: null.unwrap_or_default(),
                header,
            })
        }
        "binary" => Ok(CopyFormat::Binary),
        other => Err(error(
            state::INVALID_PARAMETER,
            format!("COPY format \"{other}\" not recognized"),
            "the formats are text, csv and binary",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_of(sql: &str) -> Result<Copy, ErrorInfo> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap();
        plan(&statement)
    }

    #[test]
    fn formats_and_directions() {
        let c = copy_of("COPY (SELECT 1) TO STDOUT WITH (FORMAT csv, HEADER)").unwrap();
        assert!(matches!(
            c.format,
            CopyFormat::Csv {
                header: true,
                delimiter: b',',
                ..
            }
        ));
        assert!(matches!(c.direction, Direction::Out(s) if s.to_string() == "SELECT 1"));
        let c = copy_of("COPY t (a, \"B\") FROM STDIN").unwrap();
        assert_eq!(
            c.format,
            CopyFormat::Text {
                delimiter: b'\t',
                null: "\\N".into()
            }
        );
        assert!(matches!(c.direction, Direction::In(t) if t.table == "t" && t.columns == ["a", "B"]));
        let c = copy_of("COPY t TO STDOUT BINARY").unwrap();
        assert_eq!(c.format, CopyFormat::Binary);
        assert!(matches!(c.direction, Direction::Out(s) if s.to_string() == "SELECT * FROM t"));
        let c = copy_of("COPY t FROM STDIN WITH CSV HEADER").unwrap();
        assert!(matches!(c.format, CopyFormat::Csv { header: true, .. }));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            copy_of("COPY t FROM STDIN (FORMAT binary)").unwrap_err().code,
            "0A000"
        );
        assert_eq!(
            copy_of("COPY t TO STDOUT (FORMAT xml)").unwrap_err().code,
            "22023"
        );
        assert_eq!(copy_of("COPY t TO STDOUT (HEADER)").unwrap_err().code, "0A000");
    }
}
