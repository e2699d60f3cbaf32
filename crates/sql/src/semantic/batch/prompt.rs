//! The batch prompt and its reply: [`Batching::prompt`] writes the task once with marks for the
//! arguments that differ between the rows (when the instructions only interpolate them) or each row's
//! whole task, and asks for a JSON array of `{"id", "answer"[, "confidence"]}`; [`Batching::read_scored`]
//! reads each row's answer back, checked against the function's type.

use rvbbit_core::config::LimitsConfig;
use serde_json::{Map, Value, json};

use super::Batching;
use crate::semantic::coerce::coerce;

impl Batching {
    /// The prompt asking `rows` (the cascade inputs `{arg: value}`, ids 1, 2, ...).
    pub(crate) fn prompt(
        &self,
        rows: &[&Value],
        limits: &LimitsConfig,
        confidence: bool,
    ) -> Result<String, String> {
        let sure = if confidence {
            " Add \"confidence\": how sure you are of that answer, from 0 (a guess) to 1 (certain)."
        } else {
            ""
        };
        let varying = varying_args(rows);
        let shared = self.shared_task(rows.first().copied(), &varying, limits)?;
        let mut out = String::new();
        match shared {
            Some(task) => {
                let marks: Vec<String> = varying.iter().map(|a| mark(a, 0)).collect();
                // One row alone (a cheap model's one-row call) has no field that differs.
                let legend = if marks.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} stand{} for each item's field{} of the same name)",
                        marks.join(", "),
                        if marks.len() == 1 { "s" } else { "" },
                        if marks.len() == 1 { "" } else { "s" },
                    )
                };
                out.push_str(&format!(
                    "Do the task below once for each of the {} items after it, each item on its own.\n\n\
                     ### Task{legend}\n{task}\n\n\
                     ### Items (one JSON object per line)\n",
                    rows.len(),
                ));
                for (i, row) in rows.iter().enumerate() {
                    let mut item = Map::new();
                    item.insert("id".into(), json!(i + 1));
                    for arg in &varying {
                        item.insert(arg.clone(), row.get(arg).cloned().unwrap_or(Value::Null));
                    }
                    out.push_str(&Value::Object(item).to_string());
                    out.push('\n');
                }
                out.push_str(&format!(
                    "\n### Reply\nOnly a JSON array with one object per item: {{\"id\": <the item's id>, \
                     \"answer\": <the task's answer for that item>}}. Each answer is {}.{sure} No other text.",
                    self.answer_words
                ));
            }
            None => {
                out.push_str(&format!(
                    "Do each of the {} tasks below on its own.\n\n\
                     ### Items (one JSON object per line; \"task\" is the whole task)\n",
                    rows.len()
                ));
                for (i, row) in rows.iter().enumerate() {
                    let task = render(&self.instructions, row, limits)?;
                    out.push_str(&json!({"id": i + 1, "task": task}).to_string());
                    out.push('\n');
                }
                out.push_str(&format!(
                    "\n### Reply\nOnly a JSON array with one object per item: {{\"id\": <the item's id>, \
                     \"answer\": <the answer to that item's task>}}. Each answer is {}.{sure} No other text.",
                    self.answer_words
                ));
            }
        }
        Ok(out)
    }

    /// The task with the `varying` arguments as marks, when the instructions use them only by
    /// interpolation: rendering with two different marks gives texts that differ only in the marks.
    fn shared_task(
        &self,
        first: Option<&Value>,
        varying: &[String],
        limits: &LimitsConfig,
    ) -> Result<Option<String>, String> {
        let Some(first) = first else { return Ok(None) };
        let with = |style: usize| {
            let mut input = first.as_object().cloned().unwrap_or_default();
            for arg in varying {
                input.insert(arg.clone(), Value::String(mark(arg, style)));
            }
            Value::Object(input)
        };
        let one = render(&self.instructions, &with(0), limits)?;
        let two = render(&self.instructions, &with(1), limits)?;
        let mut swapped = one.clone();
        for arg in varying {
            swapped = swapped.replace(&mark(arg, 0), &mark(arg, 1));
        }
        let every_mark_shown = varying.iter().all(|a| one.contains(&mark(a, 0)));
        Ok((swapped == two && every_mark_shown).then_some(one))
    }

    /// Each row's answer in `reply` (ids 1..=n), `None` when missing, repeated differently or not of the
    /// function's type.
    #[cfg(test)]
    pub(crate) fn read_reply(&self, reply: &Value, n: usize) -> Vec<Option<Value>> {
        self.read_scored(reply, n)
            .into_iter()
            .map(|a| a.map(|(v, _)| v))
            .collect()
    }

    /// Each row's answer in `reply` (ids 1..=n) with its `confidence` (0 when absent or not a number in
    /// 0..=1); `None` when missing, repeated differently or not of the function's type.
    pub(crate) fn read_scored(&self, reply: &Value, n: usize) -> Vec<Option<(Value, f64)>> {
        let mut answers: Vec<Option<(Value, f64)>> = vec![None; n];
        let mut conflicting = vec![false; n];
        for item in reply_items(reply) {
            let Some(i) = item_id(&item).filter(|&i| (1..=n).contains(&i)) else {
                continue;
            };
            let Some(answer) = item.get("answer").filter(|a| !a.is_null()) else {
                continue;
            };
            let confidence = item
                .get("confidence")
                .and_then(Value::as_f64)
                .filter(|c| (0.0..=1.0).contains(c))
                .unwrap_or(0.0);
            match &answers[i - 1] {
                Some((earlier, _)) if earlier != answer => conflicting[i - 1] = true,
                Some(_) => {}
                None => answers[i - 1] = Some((answer.clone(), confidence)),
            }
        }
        answers
            .into_iter()
            .zip(conflicting)
            .map(|(a, conflict)| {
                a.filter(|(v, _)| !conflict && coerce(self.returns, v).is_ok() && self.is_label(v))
            })
            .collect()
    }
}

/// The arguments whose values are not the same in every row, in argument order.
fn varying_args(rows: &[&Value]) -> Vec<String> {
    let Some(first) = rows.first().and_then(|r| r.as_object()) else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|(k, v)| rows.iter().any(|r| r.get(k.as_str()) != Some(v)))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The mark standing for `arg` in a shared task: `⟨arg⟩`, or (style 1, for the interpolation check) a
/// longer one.
fn mark(arg: &str, style: usize) -> String {
    if style == 0 {
        format!("⟨{arg}⟩")
    } else {
        format!("⟨⟨value of {arg}⟩⟩")
    }
}

/// `instructions` rendered for the cascade input `input`, with the variables a one-cell run starts with.
fn render(instructions: &str, input: &Value, limits: &LimitsConfig) -> Result<String, String> {
    let ctx = json!({
        "input": input,
        "state": {},
        "outputs": {},
        "lineage": [],
        "history": [],
        "candidate_index": 0,
        "sounding_index": 0,
        "take_index": 0,
        "candidate_factor": null,
        "sounding_factor": null,
        "take_factor": null,
        "is_sounding": false,
        "is_candidate": false,
        "is_take": false,
    });
    rvbbit_engine::render_template(instructions, &ctx, limits)
}

/// The objects of a batch reply: a JSON array (inside code fences or text, too), or an object holding
/// one.
fn reply_items(reply: &Value) -> Vec<Map<String, Value>> {
    let parsed = match reply {
        Value::String(text) => parse_array_text(text),
        other => Some(other.clone()),
    };
    let array = match parsed {
        Some(Value::Array(items)) => items,
        Some(Value::Object(map)) => map
            .into_iter()
            .find_map(|(_, v)| match v {
                Value::Array(items) => Some(items),
                _ => None,
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    array
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// The JSON of a reply's text: all of it, or from its first `[` to its last `]`.
fn parse_array_text(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return Some(v);
    }
    let (start, end) = (t.find('[')?, t.rfind(']')?);
    serde_json::from_str(t.get(start..=end)?).ok()
}

/// An item's id: a number, or a number as text.
fn item_id(item: &Map<String, Value>) -> Option<usize> {
    match item.get("id")? {
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
