//! Tables as JSON (`{rows, columns, row_count}`): parsing tool stdout and writing CSV for stdin.

use serde_json::{Map, Value, json};

/// Parse `text` as a table in `format` (`csv`, `json`, `jsonl` or `auto`).
///
/// CSV: the first line is the header; fields may be quoted (`""` escapes a quote); numbers and
/// `true`/`false` become JSON numbers and booleans, empty fields `null`. JSON: an array of objects, one
/// object (one row), or scalars (a `value` column).
pub(crate) fn parse(text: &str, format: &str) -> Result<Value, String> {
    let format = match format {
        "auto" => {
            let t = text.trim_start();
            if t.starts_with('[') || (t.starts_with('{') && serde_json::from_str::<Value>(text).is_ok()) {
                "json"
            } else if t.starts_with('{') {
                "jsonl"
            } else {
                "csv"
            }
        }
        other => other,
    };
    let rows: Vec<Value> = match format {
        "csv" => return Ok(csv_table(text)),
        "json" => match serde_json::from_str::<Value>(text.trim()) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Null) => Vec::new(),
            Ok(other) => vec![other],
            Err(e) => return Err(format!("stdout is not JSON: {e}")),
        },
        "jsonl" => {
            let mut rows = Vec::new();
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                rows.push(
                    serde_json::from_str(line)
                        .map_err(|e| format!("stdout line {} is not JSON: {e}", i + 1))?,
                );
            }
            rows
        }
        other => {
            return Err(format!(
                "unknown output_format `{other}`; expected csv, json, jsonl or auto"
            ));
        }
    };
    Ok(from_rows(rows))
}

fn from_rows(rows: Vec<Value>) -> Value {
    let mut columns: Vec<String> = Vec::new();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| match r {
            Value::Object(m) => Value::Object(m),
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                Value::Object(m)
            }
        })
        .collect();
    for r in &rows {
        if let Value::Object(m) = r {
            for k in m.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    json!({"rows": rows, "columns": columns, "row_count": rows.len()})
}

fn csv_table(text: &str) -> Value {
    let records = csv_records(text);
    let mut iter = records.into_iter();
    let Some(header) = iter.next() else {
        return json!({"rows": [], "columns": [], "row_count": 0});
    };
    let rows: Vec<Value> = iter
        .map(|fields| {
            let mut m = Map::new();
            for (i, name) in header.iter().enumerate() {
                let raw = fields.get(i).map(String::as_str).unwrap_or("");
                m.insert(name.clone(), scalar(raw));
            }
            Value::Object(m)
        })
        .collect();
    json!({"rows": rows, "columns": header, "row_count": rows.len()})
}

fn scalar(raw: &str) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = raw.parse::<i64>() {
        return json!(i);
    }
    if raw.contains('.')
        && let Ok(f) = raw.parse::<f64>()
        && f.is_finite()
    {
        return json!(f);
    }
    match raw {
        "true" | "True" => json!(true),
        "false" | "False" => json!(false),
        _ => json!(raw),
    }
}

/// RFC 4180-ish records: quoted fields may hold commas, quotes (`""`) and newlines; blank lines skipped.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].is_empty()) {
                    records.push(std::mem::take(&mut record));
                }
                record.clear();
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// A table value (`{rows, columns}`) as CSV with a header; other values as their JSON text.
pub(crate) fn to_csv(value: &Value) -> String {
    let (Some(rows), Some(columns)) = (
        value.get("rows").and_then(Value::as_array),
        value.get("columns").and_then(Value::as_array),
    ) else {
        return match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
    };
    let names: Vec<String> = columns
        .iter()
        .map(|c| c.as_str().map(str::to_owned).unwrap_or_else(|| c.to_string()))
        .collect();
    let mut out = names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for row in rows {
        let line: Vec<String> = names
            .iter()
            .map(|n| match row.get(n) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => quote(s),
                Some(other) => quote(&other.to_string()),
            })
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_keeps_quotes_and_types() {
        let t = parse("id,name,score\n1,\"Smith, Al\",9.5\n2,Bo,\n", "auto").unwrap();
        assert_eq!(t["row_count"], 2);
        assert_eq!(t["rows"][0]["name"], "Smith, Al");
        assert_eq!(t["rows"][0]["score"], 9.5);
        assert_eq!(t["rows"][1]["score"], Value::Null);
        assert_eq!(to_csv(&t), "id,name,score\n1,\"Smith, Al\",9.5\n2,Bo,\n");
    }

    #[test]
    fn json_and_jsonl_are_detected() {
        assert_eq!(
            parse("[{\"a\":1},{\"b\":2}]", "auto").unwrap()["columns"],
            json!(["a", "b"])
        );
        assert_eq!(parse("{\"a\":1}\n{\"a\":2}\n", "auto").unwrap()["row_count"], 2);
        assert!(parse("nope", "json").is_err());
    }
}
