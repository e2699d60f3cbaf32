//! COPY's row formats: writing result batches as text, CSV or binary rows ([`RowEncoder`]), and reading
//! text or CSV rows sent by the client into columns of strings ([`parse`]).

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::record_batch::RecordBatch;
use pgwire::api::Type;
use pgwire::error::ErrorInfo;

use super::CopyFormat;
use crate::pgwire::errors::{error, state};
use crate::pgwire::types;

/// SQLSTATE bad_copy_file_format.
pub(super) const BAD_COPY: &str = "22P04";
/// SQLSTATE character_not_in_repertoire (COPY data that is not UTF-8).
const NOT_UTF8: &str = "22021";

/// The binary format's signature, flags and header extension length.
const PGCOPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// Writes batches as COPY rows, one CopyData payload per row (as PostgreSQL sends them; psycopg reads
/// a message as a row).
pub(super) struct RowEncoder {
    format: CopyFormat,
    types: Vec<Type>,
    /// Binary: whether the header went out (with the first row, or with the trailer).
    header_sent: bool,
}

impl RowEncoder {
    pub(super) fn new(format: CopyFormat, types: Vec<Type>) -> RowEncoder {
        RowEncoder {
            format,
            types,
            header_sent: false,
        }
    }

    /// The CSV header line of `names`, when the format asks for one.
    pub(super) fn header(&self, names: &[String]) -> Option<Bytes> {
        let CopyFormat::Csv { header: true, .. } = &self.format else {
            return None;
        };
        let mut buf = BytesMut::new();
        for (i, name) in names.iter().enumerate() {
            self.write_field(&mut buf, i, Some(name.as_bytes()));
        }
        buf.put_u8(b'\n');
        Some(buf.freeze())
    }

    /// Every row of `batch`, encoded.
    pub(super) fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, String> {
        let columns = batch.num_columns();
        let binary = self.format == CopyFormat::Binary;
        let count = i16::try_from(columns).map_err(|_| "too many columns".to_owned())?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut buf = BytesMut::with_capacity(64);
        let this = &*self;
        types::each_cell(batch, &this.types, binary, |_, col, cell| {
            if binary && col == 0 {
                buf.put_i16(count);
            }
            this.write_field(&mut buf, col, cell);
            if col + 1 == columns {
                if !binary {
                    buf.put_u8(b'\n');
                }
                rows.push(buf.split().freeze());
            }
            Ok(())
        })?;
        if binary
            && !self.header_sent
            && let Some(first) = rows.first_mut()
        {
            let mut with_header = BytesMut::with_capacity(PGCOPY_HEADER.len() + first.len());
            with_header.put_slice(PGCOPY_HEADER);
            with_header.put_slice(first);
            *first = with_header.freeze();
            self.header_sent = true;
        }
        Ok(rows)
    }

    /// The binary trailer (after the header, when no row carried it); nothing for text and CSV.
    pub(super) fn finish(&mut self) -> Option<Bytes> {
        if self.format != CopyFormat::Binary {
            return None;
        }
        let mut buf = BytesMut::new();
        if !self.header_sent {
            buf.put_slice(PGCOPY_HEADER);
            self.header_sent = true;
        }
        buf.put_i16(-1);
        Some(buf.freeze())
    }

    /// One field, with the separator before it (text and CSV).
    fn write_field(&self, buf: &mut BytesMut, col: usize, cell: Option<&[u8]>) {
        match &self.format {
            CopyFormat::Binary => match cell {
                None => buf.put_i32(-1),
                Some(v) => {
                    // A value over 2 GiB cannot be encoded by `each_cell` (it builds it in memory first).
                    buf.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                    buf.put_slice(v);
                }
            },
            CopyFormat::Text { delimiter, null } => {
                if col > 0 {
                    buf.put_u8(*delimiter);
                }
                let Some(v) = cell else {
                    buf.put_slice(null.as_bytes());
                    return;
                };
                for &b in v {
                    match b {
                        b'\\' => buf.put_slice(b"\\\\"),
                        b'\n' => buf.put_slice(b"\\n"),
                        b'\r' => buf.put_slice(b"\\r"),
                        b'\t' => buf.put_slice(b"\\t"),
                        0x08 => buf.put_slice(b"\\b"),
                        0x0c => buf.put_slice(b"\\f"),
                        0x0b => buf.put_slice(b"\\v"),
                        b if b == *delimiter => {
                            buf.put_u8(b'\\');
                            buf.put_u8(b);
                        }
                        b => buf.put_u8(b),
                    }
                }
            }
            CopyFormat::Csv {
                delimiter,
                quote,
                escape,
                null,
                ..
            } => {
                if col > 0 {
                    buf.put_u8(*delimiter);
                }
                let Some(v) = cell else {
                    buf.put_slice(null.as_bytes());
                    return;
                };
                let quoted = v == null.as_bytes()
                    || v.starts_with(b"\\.")
                    || v.iter()
                        .any(|b| [*delimiter, *quote, *escape, b'\n', b'\r'].contains(b));
                if !quoted {
                    buf.put_slice(v);
                    return;
                }
                buf.put_u8(*quote);
                for &b in v {
                    if b == *quote || b == *escape {
                        buf.put_u8(*escape);
                    }
                    buf.put_u8(b);
                }
                buf.put_u8(*quote);
            }
        }
    }
}

/// Where a row came from, for error messages.
pub(super) struct Place<'a> {
    /// The table, as written.
    pub(super) table: &'a str,
    /// The target columns' names.
    pub(super) columns: &'a [String],
    /// The longest row, in bytes (`limits.sql_query_bytes`).
    pub(super) max_row: u64,
}

/// Parse `data` (text or CSV rows) into one string column per target column. A row with another
/// number of fields, a broken quote or escape is 22P04 naming its line; data that is not UTF-8 22021; a
/// row longer than `max_row` bytes 54000.
pub(super) fn parse(
    data: &[u8],
    format: &CopyFormat,
    place: &Place<'_>,
) -> Result<Vec<StringBuilder>, ErrorInfo> {
    let mut columns: Vec<StringBuilder> = place.columns.iter().map(|_| StringBuilder::new()).collect();
    let mut line = 0usize;
    let mut push = |fields: Vec<Option<Vec<u8>>>, line: usize| -> Result<(), ErrorInfo> {
        check_count(fields.len(), place, line)?;
        for (column, field) in columns.iter_mut().zip(fields) {
            match field {
                None => column.append_null(),
                Some(bytes) => {
                    let text = std::str::from_utf8(&bytes).map_err(|_| {
                        error(
                            NOT_UTF8,
                            format!("COPY {}, line {line}: the data is not valid UTF-8", place.table),
                            "send UTF-8 text",
                        )
                    })?;
                    column.append_value(text);
                }
            }
        }
        Ok(())
    };
    match format {
        CopyFormat::Text { delimiter, null } => {
            // The final newline ends the last row; it does not start an empty one.
            let body = data.strip_suffix(b"\n").unwrap_or(data);
            for raw in body.split(|&b| b == b'\n').filter(|_| !data.is_empty()) {
                line += 1;
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                if raw == b"\\." {
                    break;
                }
                check_row_length(raw.len(), place, line)?;
                push(text_fields(raw, *delimiter, null.as_bytes(), place, line)?, line)?;
            }
        }
        CopyFormat::Csv {
            delimiter,
            quote,
            escape,
            null,
            header,
        } => {
            let mut reader = CsvReader {
                data,
                at: 0,
                delimiter: *delimiter,
                quote: *quote,
                escape: *escape,
                null: null.as_bytes(),
            };
            while let Some((fields, start_line)) = reader.record(&mut line, place)? {
                if *header && start_line == 1 {
                    continue;
                }
                push(fields, start_line)?;
            }
        }
        CopyFormat::Binary => {
            return Err(error(
                state::NOT_SUPPORTED,
                "COPY FROM STDIN in binary format is not supported",
                "send text or CSV",
            ));
        }
    }
    Ok(columns)
}

fn check_count(fields: usize, place: &Place<'_>, line: usize) -> Result<(), ErrorInfo> {
    let expected = place.columns.len();
    if fields == expected {
        return Ok(());
    }
    let message = if fields > expected {
        format!(
            "COPY {}, line {line}: extra data after last expected column",
            place.table
        )
    } else {
        let missing = place.columns.get(fields).map_or("?", String::as_str);
        format!(
            "COPY {}, line {line}: missing data for column \"{missing}\"",
            place.table
        )
    };
    Err(error(
        BAD_COPY,
        message,
        format!("each row needs {expected} field(s); nothing was copied"),
    ))
}

fn check_row_length(len: usize, place: &Place<'_>, line: usize) -> Result<(), ErrorInfo> {
    if (len as u64) <= place.max_row {
        return Ok(());
    }
    let mut info = error(
        state::PROGRAM_LIMIT,
        format!(
            "COPY {}, line {line}: the row is {len} bytes, longer than limits.sql_query_bytes = {}",
            place.table, place.max_row
        ),
        "split the value, or raise limits.sql_query_bytes in rvbbit.toml [limits]; nothing was copied",
    );
    info.detail = Some("rvbbit error RVB-Q006".into());
    Err(info)
}

/// The fields of one text-format line: `null` as written is NULL, backslash escapes are decoded.
fn text_fields(
    raw: &[u8],
    delimiter: u8,
    null: &[u8],
    place: &Place<'_>,
    line: usize,
) -> Result<Vec<Option<Vec<u8>>>, ErrorInfo> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i <= raw.len() {
        if i == raw.len() || raw[i] == delimiter {
            let field = &raw[start..i];
            fields.push(if field == null {
                None
            } else {
                Some(unescape(field, place, line)?)
            });
            start = i + 1;
        } else if raw[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
    Ok(fields)
}

/// Decode the text format's backslash escapes (`\n`, `\t`, `\\`, octal `\123`, hex `\x4f`, …).
fn unescape(field: &[u8], place: &Place<'_>, line: usize) -> Result<Vec<u8>, ErrorInfo> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = field.get(i) else {
            return Err(error(
                BAD_COPY,
                format!("COPY {}, line {line}: a backslash ends the line", place.table),
                "write a backslash as \\\\; nothing was copied",
            ));
        };
        i += 1;
        match e {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v.wrapping_mul(16).wrapping_add(d as u8);
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v);
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Reads CSV records (a quoted value may span lines).
struct CsvReader<'a> {
    data: &'a [u8],
    at: usize,
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: &'a [u8],
}

impl CsvReader<'_> {
    /// The next record and the line it starts on; None at the end or at a `\.` line.
    #[allow(clippy::type_complexity)]
    fn record(
        &mut self,
        line: &mut usize,
        place: &Place<'_>,
    ) -> Result<Option<(Vec<Option<Vec<u8>>>, usize)>, ErrorInfo> {
        if self.at >= self.data.len() {
            return Ok(None);
        }
        *line += 1;
        let start_line = *line;
        let start = self.at;
        let rest = &self.data[self.at..];
        let first_line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        if first_line.strip_suffix(b"\r").unwrap_or(first_line) == b"\\." {
            return Ok(None);
        }
        let mut fields = Vec::new();
        let mut field = Vec::new();
        let mut quoted = false;
        let mut in_quotes = false;
        loop {
            check_row_length(self.at - start, place, start_line)?;
            let Some(&b) = self.data.get(self.at) else {
                if in_quotes {
                    return Err(error(
                        BAD_COPY,
                        format!(
                            "COPY {}, line {start_line}: unterminated CSV quoted field",
                            place.table
                        ),
                        "close the quote; nothing was copied",
                    ));
                }
                break;
            };
            self.at += 1;
            if in_quotes {
                let next = self.data.get(self.at).copied();
                let escaped =
                    next == Some(self.quote) || (self.escape != self.quote && next == Some(self.escape));
                if b == self.escape && escaped {
                    // An escaped quote (`""` by default) or escape inside a quoted value.
                    field.extend(next);
                    self.at += 1;
                    continue;
                }
                if b == self.quote {
                    in_quotes = false;
                } else {
                    if b == b'\n' {
                        *line += 1;
                    }
                    field.push(b);
                }
                continue;
            }
            match b {
                b if b == self.quote => {
                    in_quotes = true;
                    quoted = true;
                }
                b if b == self.delimiter => {
                    fields.push(self.value(std::mem::take(&mut field), quoted));
                    quoted = false;
                }
                b'\n' => break,
                b'\r' if self.data.get(self.at) == Some(&b'\n') => {}
                b => field.push(b),
            }
        }
        fields.push(self.value(field, quoted));
        Ok(Some((fields, start_line)))
    }

    fn value(&self, field: Vec<u8>, quoted: bool) -> Option<Vec<u8>> {
        (quoted || field != self.null).then_some(field)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, StringArray};

    use super::*;

    fn cols(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    fn rows(data: &str, format: &CopyFormat, n: usize) -> Result<Vec<Vec<Option<String>>>, ErrorInfo> {
        let columns = cols(n);
        let place = Place {
            table: "t",
            columns: &columns,
            max_row: 1000,
        };
        let built: Vec<StringArray> = parse(data.as_bytes(), format, &place)?
            .into_iter()
            .map(|mut b| b.finish())
            .collect();
        let len = built.first().map_or(0, Array::len);
        Ok((0..len)
            .map(|r| {
                built
                    .iter()
                    .map(|c| (!c.is_null(r)).then(|| c.value(r).to_owned()))
                    .collect()
            })
            .collect())
    }

    fn text() -> CopyFormat {
        CopyFormat::Text {
            delimiter: b'\t',
            null: "\\N".into(),
        }
    }

    fn csv(header: bool) -> CopyFormat {
        CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: String::new(),
            header,
        }
    }

    #[test]
    fn text_rows_escapes_and_nulls() {
        let got = rows("1\ta\\tb\n2\t\\N\n\\.\nignored\n", &text(), 2).unwrap();
        assert_eq!(
            got,
            vec![
                vec![Some("1".into()), Some("a\tb".into())],
                vec![Some("2".into()), None]
            ]
        );
        assert_eq!(rows("", &text(), 2).unwrap(), Vec::<Vec<Option<String>>>::new());
        assert_eq!(
            rows("x\\101\\x42\r\n", &text(), 1).unwrap(),
            vec![vec![Some("xAB".into())]]
        );
    }

    #[test]
    fn csv_rows_quotes_headers_and_nulls() {
        let got = rows("a,b\n1,\"x,\"\"y\"\"\nz\"\n2,\n3,\"\"\n", &csv(true), 2).unwrap();
        assert_eq!(
            got,
            vec![
                vec![Some("1".into()), Some("x,\"y\"\nz".into())],
                vec![Some("2".into()), None],
                vec![Some("3".into()), Some(String::new())],
            ]
        );
    }

    #[test]
    fn malformed_rows_are_22p04_with_their_line() {
        let e = rows("1\ta\n2\n", &text(), 2).unwrap_err();
        assert_eq!(e.code, "22P04");
        assert!(
            e.message.contains("line 2: missing data for column \"c1\""),
            "{}",
            e.message
        );
        let e = rows("1,2,3\n", &csv(false), 2).unwrap_err();
        assert!(e.message.contains("line 1: extra data"), "{}", e.message);
        assert_eq!(rows("1,\"open\n", &csv(false), 2).unwrap_err().code, "22P04");
        assert_eq!(rows(&"x".repeat(1001), &text(), 1).unwrap_err().code, "54000");
        assert_eq!(rows("\u{0}\\xff\n", &text(), 1).unwrap_err().code, "22021");
    }

    #[test]
    fn text_and_csv_encoding_round_trip_through_the_parser() {
        use std::sync::Arc;

        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};

        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![Some("a\tb\\"), Some(""), None])),
            ],
        )
        .unwrap();
        for format in [text(), csv(false)] {
            let mut encoder = RowEncoder::new(format.clone(), vec![Type::INT8, Type::TEXT]);
            let encoded: Vec<u8> = encoder.batch(&batch).unwrap().concat();
            let back = rows(std::str::from_utf8(&encoded).unwrap(), &format, 2).unwrap();
            assert_eq!(
                back,
                vec![
                    vec![Some("1".into()), Some("a\tb\\".into())],
                    vec![None, Some(String::new())],
                    vec![Some("3".into()), None],
                ],
                "{format:?}"
            );
        }
        let mut binary = RowEncoder::new(CopyFormat::Binary, vec![Type::INT8, Type::TEXT]);
        let first = binary.batch(&batch).unwrap();
        assert!(first[0].starts_with(PGCOPY_HEADER));
        assert_eq!(
            &first[0][PGCOPY_HEADER.len()..],
            b"\x00\x02\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x04a\tb\\"
        );
        assert_eq!(binary.finish().unwrap().as_ref(), b"\xff\xff");
        let mut empty = RowEncoder::new(CopyFormat::Binary, vec![]);
        assert_eq!(empty.finish().unwrap().len(), PGCOPY_HEADER.len() + 2);
    }
}
