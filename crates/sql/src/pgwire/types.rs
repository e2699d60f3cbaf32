//! Arrow types → PostgreSQL types (exact OIDs) and the encoding of result cells in text and binary format.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray,
    LargeBinaryArray, LargeStringArray, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Field, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, IntervalUnit, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;

/// Ends the alias of a column named next to `*` (see `pre_visit_select`); the row description drops
/// it and what follows, so clients see the column's own name.
pub(crate) const DUPLICATE_MARK: &str = "\u{1}dup";

/// Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's binary epoch).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The PostgreSQL type of an Arrow field.
pub(crate) fn pg_type(field: &Field) -> Type {
    if field
        .metadata()
        .get(crate::result::EXTENSION_KEY)
        .is_some_and(|n| n == crate::result::JSON_EXTENSION)
    {
        return Type::JSON;
    }
    scalar_type(field.data_type())
}

pub(crate) fn scalar_type(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 | DataType::Decimal32(..) | DataType::Decimal64(..) => Type::NUMERIC,
        DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => Type::TEXT,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            Type::BYTEA
        }
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::Dictionary(_, value) => scalar_type(value),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f) => array_type(&scalar_type(f.data_type())),
        DataType::Struct(_) | DataType::Map(..) => Type::JSON,
        _ => Type::TEXT,
    }
}

/// The array type of an element type (text[] for anything without one).
pub(crate) fn array_type(element: &Type) -> Type {
    match *element {
        Type::BOOL => Type::BOOL_ARRAY,
        Type::INT2 => Type::INT2_ARRAY,
        Type::INT4 => Type::INT4_ARRAY,
        Type::INT8 => Type::INT8_ARRAY,
        Type::OID => Type::OID_ARRAY,
        Type::FLOAT4 => Type::FLOAT4_ARRAY,
        Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::NUMERIC => Type::NUMERIC_ARRAY,
        Type::DATE => Type::DATE_ARRAY,
        Type::TIME => Type::TIME_ARRAY,
        Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
        Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
        Type::INTERVAL => Type::INTERVAL_ARRAY,
        Type::BYTEA => Type::BYTEA_ARRAY,
        Type::JSON => Type::JSON_ARRAY,
        _ => Type::TEXT_ARRAY,
    }
}

/// `pg_type.typlen` of a type (-1: variable width).
pub(crate) fn type_len(ty: &Type) -> i16 {
    match *ty {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE | Type::OID => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => 8,
        Type::INTERVAL => 16,
        _ => -1,
    }
}

/// The row description of a result schema, with the formats the client asked for.
pub(crate) fn fields(schema: &datafusion::arrow::datatypes::Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let ty = pg_type(f);
            let len = type_len(&ty);
            // `SELECT c.oid, c.*`: the explicit column carries a marked alias (rewrite.rs)
            let name = f
                .name()
                .split_once(DUPLICATE_MARK)
                .map_or(f.name().as_str(), |(n, _)| n);
            FieldInfo::new(name.to_owned(), None, None, ty, field_format(format, i)).with_type_size(len)
        })
        .collect()
}

/// The format of column `i` (a format list shorter than the columns means text for the rest).
pub(crate) fn field_format(format: &Format, i: usize) -> FieldFormat {
    match format {
        Format::Individual(codes) => match codes.get(i) {
            Some(1) => FieldFormat::Binary,
            _ => FieldFormat::Text,
        },
        other => other.format_for(i),
    }
}

/// Encode every row of `batches` as DataRow messages.
pub(crate) fn encode_rows(batches: &[RecordBatch], fields: &[FieldInfo]) -> Result<Vec<DataRow>, String> {
    let mut rows = Vec::new();
    let options = FormatOptions::new().with_null("");
    for batch in batches {
        let formatters: Vec<ArrayFormatter<'_>> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let mut buf = BytesMut::with_capacity(64);
            for (col, field) in batch.columns().iter().enumerate() {
                let binary = fields.get(col).is_some_and(|f| f.format() == FieldFormat::Binary);
                let ty = fields
                    .get(col)
                    .map(|f| f.datatype().clone())
                    .unwrap_or(Type::TEXT);
                encode_cell(&mut buf, col_ref(batch, col), row, &ty, binary, &formatters[col])?;
                // The Arrow field is not needed: the wire type comes from the row description.
                let _ = field;
            }
            let count = i16::try_from(batch.num_columns()).map_err(|_| "too many columns".to_owned())?;
            rows.push(DataRow::new(buf, count));
        }
    }
    Ok(rows)
}

/// Every cell of `batches` in the text format [`encode_rows`] writes (`None` for NULL).
pub(crate) fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>, String> {
    let options = FormatOptions::new().with_null("");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter<'_>> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let mut cells = Vec::with_capacity(batch.num_columns());
            for (array, formatter) in batch.columns().iter().zip(&formatters) {
                if array.is_null(row) || array.data_type() == &DataType::Null {
                    cells.push(None);
                    continue;
                }
                let mut buf = BytesMut::new();
                write_text(&mut buf, array, row, formatter)?;
                cells.push(Some(String::from_utf8_lossy(&buf).into_owned()));
            }
            rows.push(cells);
        }
    }
    Ok(rows)
}

/// Write the cell at `row` of every column of `batch` with `write(column, cell)`: `None` for NULL,
/// else its bytes in text format, or in binary format for the columns whose `binary[col]` is set
/// (as [`encode_rows`] writes them; COPY frames them its own way).
pub(crate) fn each_cell(
    batch: &RecordBatch,
    types: &[Type],
    binary: bool,
    mut write: impl FnMut(usize, usize, Option<&[u8]>) -> Result<(), String>,
) -> Result<(), String> {
    let options = FormatOptions::new().with_null("");
    let formatters: Vec<ArrayFormatter<'_>> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut buf = BytesMut::with_capacity(64);
    for row in 0..batch.num_rows() {
        for (col, array) in batch.columns().iter().enumerate() {
            // A `NULL` literal's column has no null buffer: every row is NULL.
            if array.is_null(row) || array.data_type() == &DataType::Null {
                write(row, col, None)?;
                continue;
            }
            buf.clear();
            if binary {
                let ty = types.get(col).cloned().unwrap_or(Type::TEXT);
                write_binary(&mut buf, array, row, &ty, &formatters[col])?;
            } else {
                write_text(&mut buf, array, row, &formatters[col])?;
            }
            write(row, col, Some(&buf))?;
        }
    }
    Ok(())
}

fn col_ref(batch: &RecordBatch, col: usize) -> &ArrayRef {
    batch.column(col)
}

/// Write one cell: its length and bytes, or -1 for NULL.
fn encode_cell(
    buf: &mut BytesMut,
    array: &ArrayRef,
    row: usize,
    ty: &Type,
    binary: bool,
    formatter: &ArrayFormatter<'_>,
) -> Result<(), String> {
    // A `NULL` literal's column (Arrow's Null type) has no null buffer: every row is NULL.
    if array.is_null(row) || array.data_type() == &DataType::Null {
        buf.put_i32(-1);
        return Ok(());
    }
    let at = buf.len();
    buf.put_i32(0);
    if binary {
        write_binary(buf, array, row, ty, formatter)?;
    } else {
        write_text(buf, array, row, formatter)?;
    }
    let len = i32::try_from(buf.len() - at - 4).map_err(|_| "a value is larger than 2 GiB".to_owned())?;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// The text form PostgreSQL clients parse.
fn write_text(
    buf: &mut BytesMut,
    array: &ArrayRef,
    row: usize,
    formatter: &ArrayFormatter<'_>,
) -> Result<(), String> {
    use std::fmt::Write as _;
    let mut s = String::new();
    match array.data_type() {
        DataType::Boolean => s.push(if array.as_boolean().value(row) { 't' } else { 'f' }),
        DataType::Float16 => float_text(&mut s, f64::from(array.as_primitive::<Float16Type>().value(row))),
        DataType::Float32 => {
            let v = array.as_primitive::<Float32Type>().value(row);
            if v.is_finite() {
                // Writing to a `String` cannot fail.
                let _ = write!(s, "{v}");
            } else {
                float_text(&mut s, f64::from(v));
            }
        }
        DataType::Float64 => float_text(&mut s, array.as_primitive::<Float64Type>().value(row)),
        DataType::Timestamp(unit, tz) => {
            let micros = timestamp_micros(array, *unit, row);
            let secs = micros.div_euclid(1_000_000);
            let nanos = u32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0);
            let dt = datafusion::arrow::temporal_conversions::timestamp_s_to_datetime(secs)
                .ok_or_else(|| "a timestamp is out of range".to_owned())?;
            let dt = dt + std::time::Duration::from_nanos(u64::from(nanos));
            // Writing to a `String` cannot fail.
            let _ = write!(s, "{}", dt.format("%Y-%m-%d %H:%M:%S%.f"));
            if tz.is_some() {
                s.push_str("+00");
            }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            // bytea's text form (bytea_output = hex): `\x` and two hex digits a byte
            s.push_str("\\x");
            s.push_str(&hex::encode(binary_value(array, row)));
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let values = list_values(array, row);
            let options = FormatOptions::new();
            let f = ArrayFormatter::try_new(values.as_ref(), &options).map_err(|e| e.to_string())?;
            s.push('{');
            for i in 0..values.len() {
                if i > 0 {
                    s.push(',');
                }
                if values.is_null(i) {
                    s.push_str("NULL");
                    continue;
                }
                let mut item = String::new();
                write_text_string(&mut item, &values, i, &f)?;
                array_quote(&mut s, &item);
            }
            s.push('}');
        }
        _ => {
            // Writing to a `String` cannot fail.
            let _ = write!(s, "{}", formatter.value(row));
        }
    }
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn write_text_string(
    out: &mut String,
    array: &ArrayRef,
    row: usize,
    formatter: &ArrayFormatter<'_>,
) -> Result<(), String> {
    let mut b = BytesMut::new();
    write_text(&mut b, array, row, formatter)?;
    out.push_str(&String::from_utf8_lossy(&b));
    Ok(())
}

/// Quote an array element when PostgreSQL's array syntax needs it.
fn array_quote(out: &mut String, item: &str) {
    let needs = item.is_empty()
        || item.eq_ignore_ascii_case("null")
        || item
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
    if !needs {
        out.push_str(item);
        return;
    }
    out.push('"');
    for c in item.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn float_text(s: &mut String, v: f64) {
    use std::fmt::Write as _;
    if v.is_nan() {
        s.push_str("NaN");
    } else if v.is_infinite() {
        s.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        // Writing to a `String` cannot fail.
        let _ = write!(s, "{v}");
    }
}

fn timestamp_micros(array: &ArrayRef, unit: TimeUnit, row: usize) -> i64 {
    match unit {
        TimeUnit::Second => array
            .as_primitive::<TimestampSecondType>()
            .value(row)
            .saturating_mul(1_000_000),
        TimeUnit::Millisecond => array
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .saturating_mul(1000),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row) / 1000,
    }
}

fn list_values(array: &ArrayRef, row: usize) -> ArrayRef {
    match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().value(row),
        DataType::LargeList(_) => array.as_list::<i64>().value(row),
        DataType::FixedSizeList(..) => array.as_fixed_size_list().value(row),
        _ => Arc::new(StringArray::from(Vec::<Option<&str>>::new())),
    }
}

/// The bytes of a binary cell (empty for a non-binary array).
fn binary_value(array: &ArrayRef, row: usize) -> &[u8] {
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<BinaryArray>() {
        a.value(row)
    } else if let Some(a) = any.downcast_ref::<LargeBinaryArray>() {
        a.value(row)
    } else if let Some(a) = any.downcast_ref::<BinaryViewArray>() {
        a.value(row)
    } else if let Some(a) = any.downcast_ref::<FixedSizeBinaryArray>() {
        a.value(row)
    } else {
        &[]
    }
}

/// The binary form (PostgreSQL's `send` functions) of the common types; others are sent as their text
/// form, which is the binary form of text, varchar and json.
fn write_binary(
    buf: &mut BytesMut,
    array: &ArrayRef,
    row: usize,
    ty: &Type,
    formatter: &ArrayFormatter<'_>,
) -> Result<(), String> {
    let int = |buf: &mut BytesMut, v: i64| -> Result<(), String> {
        match *ty {
            Type::INT2 => buf.put_i16(i16::try_from(v).map_err(|_| "an int2 value is out of range")?),
            Type::INT4 => buf.put_i32(i32::try_from(v).map_err(|_| "an int4 value is out of range")?),
            _ => buf.put_i64(v),
        }
        Ok(())
    };
    match array.data_type() {
        DataType::Boolean => {
            let a: &BooleanArray = array.as_boolean();
            buf.put_u8(u8::from(a.value(row)));
        }
        DataType::Int8 => int(buf, i64::from(array.as_primitive::<Int8Type>().value(row)))?,
        DataType::Int16 => int(buf, i64::from(array.as_primitive::<Int16Type>().value(row)))?,
        DataType::Int32 => int(buf, i64::from(array.as_primitive::<Int32Type>().value(row)))?,
        DataType::Int64 => int(buf, array.as_primitive::<Int64Type>().value(row))?,
        DataType::UInt8 => int(buf, i64::from(array.as_primitive::<UInt8Type>().value(row)))?,
        DataType::UInt16 => int(buf, i64::from(array.as_primitive::<UInt16Type>().value(row)))?,
        DataType::UInt32 => int(buf, i64::from(array.as_primitive::<UInt32Type>().value(row)))?,
        DataType::UInt64 => numeric_binary(buf, &array.as_primitive::<UInt64Type>().value(row).to_string())?,
        DataType::Float16 => buf.put_f32(f32::from(array.as_primitive::<Float16Type>().value(row))),
        DataType::Float32 => buf.put_f32(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => buf.put_f64(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Decimal32(..)
        | DataType::Decimal64(..) => {
            let text = match array.data_type() {
                DataType::Decimal128(..) => array.as_primitive::<Decimal128Type>().value_as_string(row),
                DataType::Decimal256(..) => array.as_primitive::<Decimal256Type>().value_as_string(row),
                _ => formatter.value(row).to_string(),
            };
            numeric_binary(buf, &text)?;
        }
        DataType::Date32 => buf.put_i32(array.as_primitive::<Date32Type>().value(row) - PG_EPOCH_DAYS),
        DataType::Date64 => {
            let days = array
                .as_primitive::<Date64Type>()
                .value(row)
                .div_euclid(86_400_000);
            buf.put_i32(i32::try_from(days).map_err(|_| "a date is out of range")? - PG_EPOCH_DAYS);
        }
        DataType::Timestamp(unit, _) => buf.put_i64(timestamp_micros(array, *unit, row) - PG_EPOCH_MICROS),
        DataType::Time32(TimeUnit::Second) => {
            buf.put_i64(i64::from(array.as_primitive::<Time32SecondType>().value(row)) * 1_000_000)
        }
        DataType::Time32(_) => {
            buf.put_i64(i64::from(array.as_primitive::<Time32MillisecondType>().value(row)) * 1000)
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            buf.put_i64(array.as_primitive::<Time64NanosecondType>().value(row) / 1000)
        }
        DataType::Time64(_) => buf.put_i64(array.as_primitive::<Time64MicrosecondType>().value(row)),
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array
                .as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>()
                .value(row);
            buf.put_i64(v.nanoseconds / 1000);
            buf.put_i32(v.days);
            buf.put_i32(v.months);
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            buf.put_slice(binary_value(array, row));
        }
        DataType::Utf8 => buf.put_slice(
            array
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|a| a.value(row))
                .unwrap_or_default()
                .as_bytes(),
        ),
        DataType::LargeUtf8 => buf.put_slice(
            array
                .as_any()
                .downcast_ref::<LargeStringArray>()
                .map(|a| a.value(row))
                .unwrap_or_default()
                .as_bytes(),
        ),
        DataType::Utf8View => buf.put_slice(
            array
                .as_any()
                .downcast_ref::<StringViewArray>()
                .map(|a| a.value(row))
                .unwrap_or_default()
                .as_bytes(),
        ),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let values = list_values(array, row);
            let element = match ty.kind() {
                postgres_types::Kind::Array(e) => e.clone(),
                _ => Type::TEXT,
            };
            let options = FormatOptions::new();
            let f = ArrayFormatter::try_new(values.as_ref(), &options).map_err(|e| e.to_string())?;
            buf.put_i32(1); // dimensions
            buf.put_i32(i32::from(values.null_count() > 0));
            buf.put_u32(element.oid());
            buf.put_i32(i32::try_from(values.len()).map_err(|_| "an array is too long")?);
            buf.put_i32(1); // lower bound
            for i in 0..values.len() {
                encode_cell(buf, &values, i, &element, true, &f)?;
            }
        }
        _ => {
            // text, varchar, json and the types sent as text: the binary form is the UTF-8 text
            write_text(buf, array, row, formatter)?;
        }
    }
    Ok(())
}

/// PostgreSQL's binary `numeric`: base-10000 digits with weight, sign and display scale.
pub(crate) fn numeric_binary(buf: &mut BytesMut, text: &str) -> Result<(), String> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if !int_part
        .chars()
        .chain(frac_part.chars())
        .all(|c| c.is_ascii_digit())
    {
        return Err(format!("`{text}` is not a number"));
    }
    let dscale = frac_part.len();
    let int_part = int_part.trim_start_matches('0');
    let pad_left = (4 - int_part.len() % 4) % 4;
    let pad_right = (4 - frac_part.len() % 4) % 4;
    let all: String = "0".repeat(pad_left) + int_part + frac_part + &"0".repeat(pad_right);
    let int_groups = (pad_left + int_part.len()) / 4;
    let mut groups: Vec<i16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = i32::try_from(int_groups).unwrap_or(0) - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let count = i16::try_from(groups.len()).map_err(|_| "a numeric value is too long")?;
    buf.put_i16(count);
    buf.put_i16(i16::try_from(weight).map_err(|_| "a numeric value is out of range")?);
    buf.put_u16(if negative && !groups.is_empty() { 0x4000 } else { 0 });
    buf.put_i16(i16::try_from(dscale).map_err(|_| "a numeric value has too many decimals")?);
    for g in groups {
        buf.put_i16(g);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<i16> {
        let mut b = BytesMut::new();
        numeric_binary(&mut b, text).unwrap();
        b.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn numeric_binary_matches_postgres() {
        // ndigits, weight, sign, dscale, digits…
        assert_eq!(numeric("0"), vec![0, 0, 0, 0]);
        assert_eq!(numeric("1.50"), vec![2, 0, 0, 2, 1, 5000]);
        assert_eq!(numeric("-12345.6"), vec![3, 1, 0x4000, 1, 1, 2345, 6000]);
        assert_eq!(numeric("0.0001"), vec![1, -1, 0, 4, 1]);
        assert_eq!(numeric("10000"), vec![1, 1, 0, 0, 1]);
        assert!(numeric_binary(&mut BytesMut::new(), "1e5").is_err());
    }

    #[test]
    fn types_are_exact() {
        let f = |dt: DataType| pg_type(&Field::new("x", dt, true)).oid();
        assert_eq!(f(DataType::Int16), 21);
        assert_eq!(f(DataType::Int32), 23);
        assert_eq!(f(DataType::Int64), 20);
        assert_eq!(f(DataType::Float32), 700);
        assert_eq!(f(DataType::Float64), 701);
        assert_eq!(f(DataType::Boolean), 16);
        assert_eq!(f(DataType::Utf8), 25);
        assert_eq!(f(DataType::Date32), 1082);
        assert_eq!(f(DataType::Timestamp(TimeUnit::Microsecond, None)), 1114);
        assert_eq!(
            f(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
            1184
        );
        assert_eq!(f(DataType::Decimal128(10, 2)), 1700);
        assert_eq!(f(DataType::Binary), 17);
        assert_eq!(
            f(DataType::List(Arc::new(Field::new(
                "item",
                DataType::Int64,
                true
            )))),
            1016
        );
        let json = crate::result::json_field("j");
        assert_eq!(pg_type(&json).oid(), 114);
    }
}
