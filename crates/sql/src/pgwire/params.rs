//! Bound parameters of the extended protocol: binary values (PostgreSQL's `send` forms) decoded to the
//! text the statement binder turns into typed literals.

// `ErrorInfo` is pgwire's own error message type (see statement.rs).
#![allow(clippy::result_large_err)]

use datafusion::arrow::temporal_conversions::{
    date32_to_datetime, time64us_to_time, timestamp_us_to_datetime,
};
use pgwire::api::Type;
use pgwire::error::ErrorInfo;

use super::errors::{error, state};

/// Days between 1970-01-01 and 2000-01-01 (PostgreSQL's binary epoch).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds between 1970-01-01 and 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The text form of a binary parameter value of type `ty`; `index` is the 0-based parameter number
/// (for the error).
pub(crate) fn decode_binary(bytes: &[u8], ty: &Type, index: usize) -> Result<String, ErrorInfo> {
    if let Some(element) = super::arrays::element_type(ty) {
        return decode_array(bytes, &element, index);
    }
    let n = index + 1;
    let unreadable = || {
        error(
            state::INVALID_PARAMETER,
            format!(
                "parameter ${n} has a binary value of type {} that cannot be read ({} bytes)",
                ty.name(),
                bytes.len()
            ),
            "send the parameter in text format",
        )
    };
    let fixed = |len: usize| -> Result<&[u8], ErrorInfo> {
        if bytes.len() == len {
            Ok(bytes)
        } else {
            Err(unreadable())
        }
    };
    let be4 = |b: &[u8]| -> [u8; 4] { [b[0], b[1], b[2], b[3]] };
    let be8 = |b: &[u8]| -> [u8; 8] { [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]] };
    Ok(match *ty {
        Type::BOOL => (fixed(1)?[0] != 0).to_string(),
        Type::INT2 => {
            let b = fixed(2)?;
            i16::from_be_bytes([b[0], b[1]]).to_string()
        }
        Type::INT4 => i32::from_be_bytes(be4(fixed(4)?)).to_string(),
        Type::OID => u32::from_be_bytes(be4(fixed(4)?)).to_string(),
        Type::INT8 => i64::from_be_bytes(be8(fixed(8)?)).to_string(),
        Type::FLOAT4 => f32::from_be_bytes(be4(fixed(4)?)).to_string(),
        Type::FLOAT8 => f64::from_be_bytes(be8(fixed(8)?)).to_string(),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN | Type::JSON => {
            String::from_utf8(bytes.to_vec()).map_err(|_| unreadable())?
        }
        Type::JSONB => match bytes.split_first() {
            Some((1, rest)) => String::from_utf8(rest.to_vec()).map_err(|_| unreadable())?,
            _ => return Err(unreadable()),
        },
        Type::BYTEA => format!("\\x{}", hex::encode(bytes)),
        Type::UUID => {
            let h = hex::encode(fixed(16)?);
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        }
        Type::DATE => {
            let days = i32::from_be_bytes(be4(fixed(4)?));
            match days {
                i32::MAX => "infinity".to_owned(),
                i32::MIN => "-infinity".to_owned(),
                d => d
                    .checked_add(PG_EPOCH_DAYS)
                    .and_then(date32_to_datetime)
                    .map(|dt| dt.format("%Y-%m-%d").to_string())
                    .ok_or_else(unreadable)?,
            }
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(be8(fixed(8)?));
            match micros {
                i64::MAX => "infinity".to_owned(),
                i64::MIN => "-infinity".to_owned(),
                m => {
                    let dt = m
                        .checked_add(PG_EPOCH_MICROS)
                        .and_then(timestamp_us_to_datetime)
                        .ok_or_else(unreadable)?;
                    let text = dt.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
                    // timestamptz travels as UTC
                    if *ty == Type::TIMESTAMPTZ {
                        format!("{text}+00:00")
                    } else {
                        text
                    }
                }
            }
        }
        Type::TIME => {
            let micros = i64::from_be_bytes(be8(fixed(8)?));
            time64us_to_time(micros)
                .map(|t| t.format("%H:%M:%S%.6f").to_string())
                .ok_or_else(unreadable)?
        }
        Type::INTERVAL => {
            let b = fixed(16)?;
            let micros = i64::from_be_bytes(be8(&b[0..8]));
            let days = i32::from_be_bytes(be4(&b[8..12]));
            let months = i32::from_be_bytes(be4(&b[12..16]));
            format!("{months} months {days} days {micros} microseconds")
        }
        Type::NUMERIC => numeric_text(bytes).ok_or_else(unreadable)?,
        _ => {
            return Err(error(
                state::NOT_SUPPORTED,
                format!(
                    "parameter ${n} is sent in binary as type {}, which this server cannot read in binary",
                    ty.name()
                ),
                "send the parameter in text format, or cast a text parameter in the statement ($1::type)",
            ));
        }
    })
}

/// Most dimensions PostgreSQL allows in an array (`MAXDIM`).
const MAX_DIMENSIONS: i32 = 6;

/// PostgreSQL's binary array (`array_send`: dimensions, null flag, element type, each dimension's length
/// and lower bound, then each element's length and bytes) of one dimension, as the array's text form.
/// Every length is checked against the bytes there are before anything is allocated.
fn decode_array(bytes: &[u8], element: &Type, index: usize) -> Result<String, ErrorInfo> {
    let n = index + 1;
    let bad = |why: &str| {
        error(
            state::INVALID_BINARY,
            format!(
                "parameter ${n} is not a valid binary {}[] value ({} bytes): {why}",
                element.name(),
                bytes.len()
            ),
            "send the array in PostgreSQL's binary array format, or as text ({1,2,3})",
        )
    };
    let mut rest = bytes;
    let word = |rest: &mut &[u8], what: &str| -> Result<i32, ErrorInfo> {
        let (head, tail) = rest.split_first_chunk::<4>().ok_or_else(|| bad(what))?;
        *rest = tail;
        Ok(i32::from_be_bytes(*head))
    };
    let dimensions = word(&mut rest, "no header")?;
    let _has_nulls = word(&mut rest, "no header")?;
    let oid = word(&mut rest, "no header")?;
    if !(0..=MAX_DIMENSIONS).contains(&dimensions) {
        return Err(bad("the number of dimensions is out of range"));
    }
    if u32::from_ne_bytes(oid.to_ne_bytes()) != element.oid() {
        return Err(error(
            state::DATATYPE_MISMATCH,
            format!(
                "parameter ${n} is an array of type oid {oid}, not of {} (oid {})",
                element.name(),
                element.oid()
            ),
            "send the array's elements in the parameter's element type",
        ));
    }
    if dimensions > 1 {
        return Err(error(
            state::NOT_SUPPORTED,
            format!(
                "parameter ${n} is a {dimensions}-dimensional array; only one-dimensional arrays are supported"
            ),
            "send a flat list",
        ));
    }
    let len = if dimensions == 0 {
        0
    } else {
        word(&mut rest, "no dimension")?
    };
    if dimensions == 1 {
        word(&mut rest, "no lower bound")?;
    }
    let len = usize::try_from(len).map_err(|_| bad("a negative length"))?;
    // Each element takes at least its 4-byte length.
    if len > rest.len() / 4 {
        return Err(bad("more elements than bytes"));
    }
    let mut elements = Vec::with_capacity(len);
    for _ in 0..len {
        let size = word(&mut rest, "an element is cut short")?;
        if size == -1 {
            elements.push(None);
            continue;
        }
        let size = usize::try_from(size).map_err(|_| bad("a negative element length"))?;
        if size > rest.len() {
            return Err(bad("an element is longer than the bytes left"));
        }
        let (value, tail) = rest.split_at(size);
        rest = tail;
        elements.push(Some(decode_binary(value, element, index)?));
    }
    if !rest.is_empty() {
        return Err(bad("bytes after the last element"));
    }
    Ok(super::arrays::to_text(&elements))
}

/// PostgreSQL's binary `numeric` (base-10000 digits, weight, sign, display scale) as decimal text.
fn numeric_text(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u16> {
        let b = bytes.get(i * 2..i * 2 + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(i16::from_ne_bytes(word(1)?.to_ne_bytes()));
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    if bytes.len() != 8 + ndigits * 2 {
        return None;
    }
    match sign {
        0xC000 => return Some("NaN".to_owned()),
        0xD000 => return Some("Infinity".to_owned()),
        0xF000 => return Some("-Infinity".to_owned()),
        0 | 0x4000 => {}
        _ => return None,
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    if digits.iter().any(|d| *d > 9999) {
        return None;
    }
    // digits[i] has weight `weight - i` (a power of 10000)
    let digit_at = |w: i32| -> u16 {
        let i = weight - w;
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 && !digits.is_empty() {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit_at(weight).to_string());
        for w in (0..weight).rev() {
            text.push_str(&format!("{:04}", digit_at(w)));
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut w = -1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit_at(w)));
            w -= 1;
        }
        frac.truncate(dscale);
        text.push('.');
        text.push_str(&frac);
    }
    Some(text)
}

/// bytea's text input: `\x` and hex digits, or the escape form (`\\` and `\nnn` octal escapes).
pub(crate) fn bytea_from_text(text: &str) -> Option<Vec<u8>> {
    if let Some(h) = text.strip_prefix("\\x").or_else(|| text.strip_prefix("\\X")) {
        let h: String = h.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        return hex::decode(h).ok();
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = b.get(i + 1..i + 4)?;
            if !oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                return None;
            }
            let v = oct.iter().fold(0u16, |acc, c| acc * 8 + u16::from(c - b'0'));
            out.push(u8::try_from(v).ok()?);
            i += 4;
        }
    }
    Some(out)
}

/// pgjdbc's `setDate` sends an untyped `2024-01-02 +00` (the date and the client's zone offset):
/// the date part when `text` has that shape.
pub(crate) fn date_with_offset(text: &str) -> Option<&str> {
    let (date, offset) = text.trim().rsplit_once(' ')?;
    let date = date.trim_end();
    let b = date.as_bytes();
    let is_date = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    let rest = offset.strip_prefix('+').or_else(|| offset.strip_prefix('-'))?;
    let is_offset = (2..=8).contains(&rest.len())
        && rest.starts_with(|c: char| c.is_ascii_digit())
        && rest.chars().all(|c| c.is_ascii_digit() || c == ':');
    (is_date && is_offset).then_some(date)
}

/// PostgreSQL's interval text (`2 days 03:04:05.5`, as psycopg sends a timedelta) in the unit words
/// DataFusion parses: a `[-]h:mm[:ss[.f]]` part becomes hours, minutes and seconds.
pub(crate) fn interval_text(text: &str) -> String {
    text.split_whitespace()
        .map(|part| {
            let (sign, clock) = match part.strip_prefix('-') {
                Some(rest) => ("-", rest),
                None => ("", part.strip_prefix('+').unwrap_or(part)),
            };
            let fields: Vec<&str> = clock.split(':').collect();
            let numeric = |f: &str| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit() || c == '.');
            if !(2..=3).contains(&fields.len()) || !fields.iter().all(|f| numeric(f)) {
                return part.to_owned();
            }
            let mut words = format!("{sign}{} hours {sign}{} minutes", fields[0], fields[1]);
            if let Some(seconds) = fields.get(2) {
                words.push_str(&format!(" {sign}{seconds} seconds"));
            }
            words
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8], ty: &Type) -> String {
        decode_binary(bytes, ty, 0).unwrap()
    }

    fn numeric(words: &[i16]) -> String {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        numeric_text(&bytes).unwrap()
    }

    #[test]
    fn binary_dates_times_and_timestamps_decode() {
        // 2024-01-02 is 8767 days after 2000-01-01
        assert_eq!(text(&8767i32.to_be_bytes(), &Type::DATE), "2024-01-02");
        assert_eq!(text(&(-1i32).to_be_bytes(), &Type::DATE), "1999-12-31");
        let micros: i64 = 8767 * 86_400_000_000 + 3_723_000_001;
        assert_eq!(
            text(&micros.to_be_bytes(), &Type::TIMESTAMP),
            "2024-01-02 01:02:03.000001"
        );
        assert_eq!(
            text(&micros.to_be_bytes(), &Type::TIMESTAMPTZ),
            "2024-01-02 01:02:03.000001+00:00"
        );
        assert_eq!(
            text(&3_723_500_000i64.to_be_bytes(), &Type::TIME),
            "01:02:03.500000"
        );
        let mut interval = 3_000_001i64.to_be_bytes().to_vec();
        interval.extend(2i32.to_be_bytes());
        interval.extend(1i32.to_be_bytes());
        assert_eq!(
            text(&interval, &Type::INTERVAL),
            "1 months 2 days 3000001 microseconds"
        );
    }

    #[test]
    fn binary_bytea_uuid_and_numeric_decode() {
        assert_eq!(text(&[1, 2, 255], &Type::BYTEA), "\\x0102ff");
        let uuid: Vec<u8> = (0u8..16).collect();
        assert_eq!(text(&uuid, &Type::UUID), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        // ndigits, weight, sign, dscale, digits… (the pairs numeric_binary writes)
        assert_eq!(numeric(&[0, 0, 0, 0]), "0");
        assert_eq!(numeric(&[2, 0, 0, 2, 1, 5000]), "1.50");
        assert_eq!(numeric(&[3, 1, 0x4000, 1, 1, 2345, 6000]), "-12345.6");
        assert_eq!(numeric(&[1, -1, 0, 4, 1]), "0.0001");
        assert_eq!(numeric(&[1, 1, 0, 0, 1]), "10000");
        assert!(decode_binary(&[1, 2, 3], &Type::INT4, 0).is_err());
        assert_eq!(
            decode_binary(&[0; 12], &Type::TIMETZ, 2).unwrap_err().code,
            "0A000"
        );
    }

    /// `array_send` of one dimension: header, then (length, bytes) per element (None: NULL).
    fn array(oid: u32, elements: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(1i32.to_be_bytes());
        b.extend(i32::from(elements.iter().any(Option::is_none)).to_be_bytes());
        b.extend(oid.to_be_bytes());
        b.extend(i32::try_from(elements.len()).unwrap().to_be_bytes());
        b.extend(1i32.to_be_bytes());
        for e in elements {
            match e {
                None => b.extend((-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend(i32::try_from(v.len()).unwrap().to_be_bytes());
                    b.extend(*v);
                }
            }
        }
        b
    }

    #[test]
    fn binary_arrays_decode_to_array_text() {
        let one = 1i32.to_be_bytes();
        let two = 2i32.to_be_bytes();
        let ints = array(23, &[Some(&one), None, Some(&two)]);
        assert_eq!(text(&ints, &Type::INT4_ARRAY), "{\"1\",NULL,\"2\"}");
        let words = array(25, &[Some(b"a,b"), Some(b"c\"d")]);
        assert_eq!(text(&words, &Type::TEXT_ARRAY), r#"{"a,b","c\"d"}"#);
        let mut empty = vec![0u8; 12];
        empty[8..12].copy_from_slice(&23u32.to_be_bytes());
        assert_eq!(text(&empty, &Type::INT4_ARRAY), "{}");
    }

    #[test]
    fn hostile_binary_arrays_are_refused_cleanly() {
        let one = 1i32.to_be_bytes();
        let good = array(23, &[Some(&one)]);
        let code = |b: &[u8]| decode_binary(b, &Type::INT4_ARRAY, 0).unwrap_err().code;
        // a length claiming a billion elements, an element longer than the bytes, cut short, trailing bytes
        let mut huge = good.clone();
        huge[12..16].copy_from_slice(&1_000_000_000i32.to_be_bytes());
        assert_eq!(code(&huge), "22P03");
        let mut long = good.clone();
        long[20..24].copy_from_slice(&1000i32.to_be_bytes());
        assert_eq!(code(&long), "22P03");
        assert_eq!(code(&good[..good.len() - 1]), "22P03");
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(code(&trailing), "22P03");
        let mut negative = good.clone();
        negative[12..16].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(code(&negative), "22P03");
        assert_eq!(code(&[0, 0]), "22P03");
        // seven dimensions, two dimensions, a wrong element type, a bad element
        let mut dims = good;
        dims[0..4].copy_from_slice(&7i32.to_be_bytes());
        assert_eq!(code(&dims), "22P03");
        dims[0..4].copy_from_slice(&2i32.to_be_bytes());
        assert_eq!(code(&dims), "0A000");
        assert_eq!(code(&array(20, &[Some(&one)])), "42804");
        assert_eq!(code(&array(23, &[Some(&[1, 2])])), "22023");
    }

    proptest::proptest! {
        #[test]
        fn any_binary_value_decodes_or_is_refused(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            ty in proptest::sample::select(vec![
                Type::INT4_ARRAY, Type::TEXT_ARRAY, Type::NUMERIC_ARRAY, Type::DATE_ARRAY,
                Type::NUMERIC, Type::TIMESTAMP, Type::INTERVAL, Type::UUID, Type::JSONB,
            ]),
        ) {
            // never panics: a value or a clean refusal
            if let Err(e) = decode_binary(&bytes, &ty, 0) {
                proptest::prop_assert!(["22P03", "22023", "42804", "0A000"].contains(&e.code.as_str()), "{}", e.code);
            }
        }

        #[test]
        fn int4_arrays_decode_to_their_elements(values in proptest::collection::vec(proptest::option::of(proptest::num::i32::ANY), 0..16)) {
            let encoded: Vec<Vec<u8>> = values.iter().map(|v| v.map(i32::to_be_bytes).map(Vec::from).unwrap_or_default()).collect();
            let elements: Vec<Option<&[u8]>> = values.iter().zip(&encoded).map(|(v, e)| v.map(|_| e.as_slice())).collect();
            let text = decode_binary(&array(23, &elements), &Type::INT4_ARRAY, 0).unwrap();
            let expected: Vec<Option<String>> = values.iter().map(|v| v.map(|n| n.to_string())).collect();
            proptest::prop_assert_eq!(super::super::arrays::parse_text(&text), Ok(expected));
        }
    }

    #[test]
    fn bytea_text_and_jdbc_dates() {
        assert_eq!(bytea_from_text("\\x0102"), Some(vec![1, 2]));
        assert_eq!(bytea_from_text("a\\\\b\\001"), Some(vec![b'a', b'\\', b'b', 1]));
        assert_eq!(bytea_from_text("\\xzz"), None);
        assert_eq!(date_with_offset("2024-01-02 +00"), Some("2024-01-02"));
        assert_eq!(date_with_offset("2024-01-02 -05:30"), Some("2024-01-02"));
        assert_eq!(date_with_offset("2024-01-02"), None);
        assert_eq!(date_with_offset("hello +00"), None);
        assert_eq!(date_with_offset("2024-01-02 03:04:05+00"), None);
        assert_eq!(
            interval_text("2 days 0:00:03"),
            "2 days 0 hours 00 minutes 03 seconds"
        );
        assert_eq!(interval_text("-1:30"), "-1 hours -30 minutes");
        assert_eq!(interval_text("1 year 2 mons"), "1 year 2 mons");
    }
}
