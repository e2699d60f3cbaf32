//! One-dimensional array parameters in PostgreSQL's text form (`{1,2,NULL,"a b"}`): read into their
//! elements for the binder, and written from elements (the binary form is decoded to this text first).

use pgwire::api::Type;

/// The element type of an array type this server reads (None: not an array, or one it does not read).
pub(crate) fn element_type(ty: &Type) -> Option<Type> {
    Some(match *ty {
        Type::BOOL_ARRAY => Type::BOOL,
        Type::INT2_ARRAY => Type::INT2,
        Type::INT4_ARRAY => Type::INT4,
        Type::INT8_ARRAY => Type::INT8,
        Type::OID_ARRAY => Type::OID,
        Type::FLOAT4_ARRAY => Type::FLOAT4,
        Type::FLOAT8_ARRAY => Type::FLOAT8,
        Type::NUMERIC_ARRAY => Type::NUMERIC,
        Type::TEXT_ARRAY => Type::TEXT,
        Type::VARCHAR_ARRAY => Type::VARCHAR,
        Type::BPCHAR_ARRAY => Type::BPCHAR,
        Type::NAME_ARRAY => Type::NAME,
        Type::DATE_ARRAY => Type::DATE,
        Type::TIME_ARRAY => Type::TIME,
        Type::TIMESTAMP_ARRAY => Type::TIMESTAMP,
        Type::TIMESTAMPTZ_ARRAY => Type::TIMESTAMPTZ,
        Type::INTERVAL_ARRAY => Type::INTERVAL,
        Type::BYTEA_ARRAY => Type::BYTEA,
        Type::UUID_ARRAY => Type::UUID,
        Type::JSON_ARRAY => Type::JSON,
        _ => return None,
    })
}

/// Why an array's text was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not an array literal (SQLSTATE 22P02).
    Malformed(String),
    /// A nested (multidimensional) array (SQLSTATE 0A000).
    Nested,
}

/// The elements of a one-dimensional array literal (None: NULL). A leading dimension decoration
/// (`[1:3]=`) is skipped.
pub(crate) fn parse_text(text: &str) -> Result<Vec<Option<String>>, Refusal> {
    let malformed = |why: &str| Refusal::Malformed(why.to_owned());
    let mut body = text.trim();
    if body.starts_with('[') {
        body = body
            .split_once('=')
            .map(|(_, rest)| rest.trim_start())
            .ok_or_else(|| malformed("a dimension decoration must be followed by \"=\""))?;
    }
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| malformed("an array value must start with \"{\" and end with \"}\""))?;
    let mut elements = Vec::new();
    let mut chars = inner.chars().peekable();
    skip_spaces(&mut chars);
    if chars.peek().is_none() {
        return Ok(elements);
    }
    loop {
        skip_spaces(&mut chars);
        match chars.peek() {
            Some('{') => return Err(Refusal::Nested),
            Some('"') => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => {
                            value.push(chars.next().ok_or_else(|| malformed("unexpected end of input"))?)
                        }
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => return Err(malformed("unterminated quoted element")),
                    }
                }
                elements.push(Some(value));
                skip_spaces(&mut chars);
            }
            _ => {
                let mut value = String::new();
                let mut escaped = false;
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    chars.next();
                    match c {
                        '\\' => {
                            value.push(chars.next().ok_or_else(|| malformed("unexpected end of input"))?);
                            escaped = true;
                        }
                        '"' | '{' | '}' => {
                            return Err(malformed("unexpected character in an unquoted element"));
                        }
                        c => value.push(c),
                    }
                }
                let value = value.trim_end().to_owned();
                if value.is_empty() && !escaped {
                    return Err(malformed("an element is empty"));
                }
                let null = !escaped && value.eq_ignore_ascii_case("null");
                elements.push((!null).then_some(value));
            }
        }
        match chars.next() {
            None => return Ok(elements),
            Some(',') => {}
            Some(_) => return Err(malformed("junk after an element")),
        }
    }
}

fn skip_spaces(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

/// The array literal of `elements`, every element quoted (so any text reads back as itself).
pub(crate) fn to_text(elements: &[Option<String>]) -> String {
    let mut out = String::from("{");
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match element {
            None => out.push_str("NULL"),
            Some(v) => {
                out.push('"');
                for c in v.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some((*s).to_owned())).collect()
    }

    #[test]
    fn array_text_reads_and_writes_back() {
        assert_eq!(parse_text("{}"), Ok(vec![]));
        assert_eq!(parse_text(" { } "), Ok(vec![]));
        assert_eq!(parse_text("{1,2, 3 }"), Ok(some(&["1", "2", "3"])));
        assert_eq!(
            parse_text(r#"{"a,b","x\"y",NULL,"NULL",c\,d}"#),
            Ok(vec![
                Some("a,b".into()),
                Some("x\"y".into()),
                None,
                Some("NULL".into()),
                Some("c,d".into())
            ])
        );
        assert_eq!(parse_text("[1:2]={7,8}"), Ok(some(&["7", "8"])));
        let odd = vec![Some("a \"b\" \\ c".to_owned()), None, Some(String::new())];
        assert_eq!(parse_text(&to_text(&odd)), Ok(odd));
    }

    proptest::proptest! {
        #[test]
        fn any_elements_read_back_from_their_text(
            elements in proptest::collection::vec(proptest::option::of(".{0,12}"), 0..8)
        ) {
            proptest::prop_assert_eq!(parse_text(&to_text(&elements)), Ok(elements));
        }

        #[test]
        fn any_text_is_read_or_refused(text in "[{}\\\",a-c NUL\\[\\]:=1-3]{0,24}") {
            // never panics; what it reads writes back to the same elements
            if let Ok(elements) = parse_text(&text) {
                proptest::prop_assert_eq!(parse_text(&to_text(&elements)), Ok(elements));
            }
        }
    }

    #[test]
    fn bad_arrays_are_refused() {
        assert_eq!(parse_text("{{1,2},{3,4}}"), Err(Refusal::Nested));
        for bad in [
            "1,2",
            "{1,2",
            "{1,,2}",
            "{\"a}",
            "{a\"b}",
            "{1} x",
            "{\"a\" b}",
            "[1:2]",
        ] {
            assert!(matches!(parse_text(bad), Err(Refusal::Malformed(_))), "{bad}");
        }
    }
}
