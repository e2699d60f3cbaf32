//! The values of one AGGREGATE group cut to fit the model's context: [`chunk`] splits them into JSON
//! arrays of strings each at most `rvbbit.semantic_context_bytes` long (a value too big alone is cut at a
//! character boundary), so a large group is answered map-reduce: one call per chunk, then calls on the
//! JSON array of the partial answers, until one call's input fits.

use serde_json::Value;

use crate::options::MIN_CONTEXT_BYTES;

/// A group's values cut into chunks.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Chunks {
    /// Each chunk as the JSON array of its values (at most the budget in bytes), in order.
    pub(crate) arrays: Vec<String>,
    /// How many values were cut to fit the budget alone.
    pub(crate) truncated: usize,
}

/// The bytes `c` takes inside a JSON string (serde_json's escaping).
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The bytes `value` takes as a JSON string, quotes included.
fn encoded_len(value: &str) -> usize {
    2 + value.chars().map(escaped_len).sum::<usize>()
}

/// The longest prefix of `value` (at a character boundary) whose JSON string fits `room` bytes.
fn cut(value: &str, room: usize) -> &str {
    let mut used = 2;
    for (at, c) in value.char_indices() {
        used += escaped_len(c);
        if used > room {
            return &value[..at];
        }
    }
    value
}

/// Cut `values` into JSON arrays of at most `budget` bytes each (`budget` is at least
/// [`MIN_CONTEXT_BYTES`]; a smaller one is raised to it). No values give no chunks.
pub(crate) fn chunk<S: AsRef<str>>(values: &[S], budget: usize) -> Chunks {
    let budget = budget.max(MIN_CONTEXT_BYTES);
    // One value alone fits when its string fits between the brackets.
    let room = budget - 2;
    let mut out = Chunks::default();
    let mut current: Vec<&str> = Vec::new();
    let mut used = 2;
    for value in values {
        let mut value = value.as_ref();
        let mut len = encoded_len(value);
        if len > room {
            value = cut(value, room);
            len = encoded_len(value);
            out.truncated += 1;
        }
        // A comma joins it to the chunk's previous value.
        let add = len + usize::from(!current.is_empty());
        if used + add > budget {
            out.arrays.push(array(&current));
            current.clear();
            used = 2;
            current.push(value);
            used += len;
        } else {
            current.push(value);
            used += add;
        }
    }
    if !current.is_empty() {
        out.arrays.push(array(&current));
    }
    out
}

/// The JSON array of `values`.
fn array(values: &[&str]) -> String {
    Value::Array(values.iter().map(|v| Value::String((*v).to_owned())).collect()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(array: &str) -> Vec<String> {
        serde_json::from_str(array).unwrap()
    }

    #[test]
    fn an_empty_group_has_no_chunks() {
        let none: [&str; 0] = [];
        assert_eq!(chunk(&none, 4096), Chunks::default());
    }

    #[test]
    fn a_small_group_is_one_chunk() {
        let c = chunk(&["a", "b \"quoted\"", "ü"], 4096);
        assert_eq!(c.arrays, vec![r#"["a","b \"quoted\"","ü"]"#.to_owned()]);
        assert_eq!(c.truncated, 0);
    }

    #[test]
    fn one_huge_value_is_cut_at_a_char_boundary_to_the_budget() {
        let huge = "é".repeat(10_000);
        let c = chunk(&[huge.as_str(), "next"], 1000);
        assert_eq!(c.truncated, 1);
        assert_eq!(c.arrays.len(), 2);
        assert!(c.arrays[0].len() <= 1000, "{}", c.arrays[0].len());
        // "é" is two bytes: 996 bytes of content between quotes and brackets.
        assert_eq!(decoded(&c.arrays[0]), vec!["é".repeat(498)]);
        assert_eq!(decoded(&c.arrays[1]), vec!["next".to_owned()]);
    }

    #[test]
    fn escapes_count_toward_the_budget() {
        let quotes = "\"".repeat(1000);
        let c = chunk(&[quotes.as_str()], 300);
        assert!(c.arrays[0].len() <= 300);
        assert_eq!(c.arrays[0].len(), 300);
    }

    #[test]
    fn a_chunk_may_fill_the_budget_exactly_and_not_one_byte_more() {
        // ["aaaa…","bbbb…"]: 2 brackets + 2 × (quotes + 126) + 1 comma = 259 bytes.
        let a = "a".repeat(126);
        let b = "b".repeat(126);
        let exact = chunk(&[a.as_str(), b.as_str()], 259);
        assert_eq!(exact.arrays.len(), 1);
        assert_eq!(exact.arrays[0].len(), 259);
        let over = chunk(&[a.as_str(), b.as_str()], 258);
        assert_eq!(over.arrays.len(), 2);
        assert_eq!(decoded(&over.arrays[1]), vec![b]);
    }

    #[test]
    fn every_value_lands_in_order_in_exactly_one_chunk() {
        let values: Vec<String> = (0..1000).map(|i| format!("value number {i}")).collect();
        let c = chunk(&values, 512);
        assert!(c.arrays.len() > 1);
        assert!(c.arrays.iter().all(|a| a.len() <= 512));
        let back: Vec<String> = c.arrays.iter().flat_map(|a| decoded(a)).collect();
        assert_eq!(back, values);
    }

    #[test]
    fn a_budget_under_the_minimum_is_raised_to_it() {
        let long = "x".repeat(1000);
        let c = chunk(&[long.as_str()], 10);
        assert_eq!(c.arrays[0].len(), MIN_CONTEXT_BYTES);
    }
}
