//! Python-style literals as templates render them: `{{ outputs.cell.result }}` of a list of strings is
//! `['apple', 'banana']` (single quotes, as Jinja prints a Python list), not JSON. [`parse`] reads such
//! text — lists, tuples, dicts, quoted strings, numbers, `True`/`False`/`None` (and their lower-case and
//! JSON spellings) — into JSON, so `map_cascade` accepts what a template hands it.

use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused (the text is bounded by the template output limit already).
const MAX_DEPTH: usize = 128;

/// The value of a whole Python-style literal, or `None` when `text` is not one.
pub(crate) fn parse(text: &str) -> Option<Value> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let value = p.value(0)?;
    p.skip_ws();
    (p.pos == p.chars.len()).then_some(value)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        match self.peek()? {
            '[' => self.items(']', depth).map(Value::Array),
            '(' => self.items(')', depth).map(Value::Array),
            '{' => self.dict(depth),
            q @ ('\'' | '"') => self.string(q).map(Value::String),
            _ => self.word(),
        }
    }

    /// A list or tuple body up to `close` (a trailing comma allowed).
    fn items(&mut self, close: char, depth: usize) -> Option<Vec<Value>> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            if self.peek()? == close {
                self.pos += 1;
                return Some(out);
            }
            out.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek()? {
                ',' => self.pos += 1,
                c if c == close => {}
                _ => return None,
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Option<Value> {
        self.pos += 1;
        let mut out = Map::new();
        loop {
            self.skip_ws();
            if self.peek()? == '}' {
                self.pos += 1;
                return Some(Value::Object(out));
            }
            let key = match self.value(depth + 1)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            self.skip_ws();
            if self.peek()? != ':' {
                return None;
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            out.insert(key, value);
            self.skip_ws();
            match self.peek()? {
                ',' => self.pos += 1,
                '}' => {}
                _ => return None,
            }
        }
    }

    /// A quoted string with Python's common escapes.
    fn string(&mut self, quote: char) -> Option<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                c if c == quote => return Some(out),
                '\\' => {
                    let e = self.peek()?;
                    self.pos += 1;
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '0' => out.push('\0'),
                        'x' => out.push(self.hex(2)?),
                        'u' => out.push(self.hex(4)?),
                        'U' => out.push(self.hex(8)?),
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn hex(&mut self, n: usize) -> Option<char> {
        let digits: String = self.chars.get(self.pos..self.pos + n)?.iter().collect();
        self.pos += n;
        char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
    }

    /// A number or a keyword.
    fn word(&mut self) -> Option<Value> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        match word.as_str() {
            "True" | "true" => Some(Value::Bool(true)),
            "False" | "false" => Some(Value::Bool(false)),
            "None" | "none" | "null" => Some(Value::Null),
            w => {
                if let Ok(i) = w.parse::<i64>() {
                    return Some(Value::Number(i.into()));
                }
                w.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn python_lists_dicts_and_scalars_become_json() {
        assert_eq!(parse("['apple', 'banana']"), Some(json!(["apple", "banana"])));
        assert_eq!(
            parse(r#"[{'a': 1, "b": None}, (True, false, -2.5), 'it\'s', "x\n"]"#),
            Some(json!([{"a": 1, "b": null}, [true, false, -2.5], "it's", "x\n"]))
        );
        assert_eq!(parse("[1, 2,]"), Some(json!([1, 2])));
        assert_eq!(parse(" [] "), Some(json!([])));
    }

    #[test]
    fn anything_else_is_not_a_literal() {
        for bad in [
            "not a list",
            "[1, 2",
            "['a' 'b']",
            "{'a' 1}",
            "[1] extra",
            "['\\x4']",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse(&deep), None);
    }
}
