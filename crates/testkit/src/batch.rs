//! Reading rvbbit's many-rows prompts (docs/semantic-sql.md, "Many rows per prompt") the way a model
//! would, so a scripted rule can answer each row as it answers one-row prompts.
//!
//! A batch prompt is either a shared task (`### Task (⟨text⟩ stands for each item's field of the same
//! name)`) followed by `### Items`, one JSON object per line, or items that each carry their whole
//! `task`. [`batch_rows`] gives each item's id and the one-row prompt it stands for; [`batch_answer`]
//! writes the JSON array reply.

use serde_json::{Map, Value, json};

/// The first line of a shared-task batch prompt.
const SHARED: &str = "Do the task below once for each of the ";
/// The first line of a whole-task batch prompt.
const WHOLE: &str = "Do each of the ";

/// Whether `prompt` asks many rows at once.
pub fn is_batch(prompt: &str) -> bool {
    prompt.starts_with(SHARED) || prompt.starts_with(WHOLE)
}

/// Each item of a batch `prompt`: its id and the one-row prompt it stands for (the task with the
/// item's fields in place of their marks). `None` when `prompt` is not a batch prompt.
pub fn batch_rows(prompt: &str) -> Option<Vec<(u64, String)>> {
    if !is_batch(prompt) {
        return None;
    }
    let task = section(prompt, "### Task");
    let items = section(prompt, "### Items")?;
    let mut rows = Vec::new();
    for line in items.lines().filter(|l| !l.trim().is_empty()) {
        let item: Map<String, Value> = serde_json::from_str(line).ok()?;
        let id = item.get("id")?.as_u64()?;
        let one = match (&task, item.get("task")) {
            (_, Some(Value::String(whole))) => whole.clone(),
            (Some(task), _) => {
                let mut text = task.clone();
                for (field, value) in &item {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    text = text.replace(&format!("⟨{field}⟩"), &value);
                }
                text
            }
            (None, _) => return None,
        };
        rows.push((id, one));
    }
    Some(rows)
}

/// The reply to a batch: a JSON array of `{"id", "answer"}` (rows without an answer are left out).
pub fn batch_answer(answers: &[(u64, Value)]) -> String {
    Value::Array(
        answers
            .iter()
            .map(|(id, answer)| json!({"id": id, "answer": answer}))
            .collect(),
    )
    .to_string()
}

/// The body of the section under the heading line starting with `heading`, up to the next heading.
fn section(prompt: &str, heading: &str) -> Option<String> {
    let start = prompt.find(&format!("\n{heading}"))? + 1;
    let body_start = start + prompt[start..].find('\n')? + 1;
    let rest = &prompt[body_start..];
    let end = rest.find("\n### ").unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('\n').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_task_gives_each_rows_prompt() {
        let prompt = "Do the task below once for each of the 2 items after it, each item on its own.\n\n\
                      ### Task (⟨text⟩ stands for each item's field of the same name)\nCriterion: fruit\nText: ⟨text⟩\n\n\
                      ### Items (one JSON object per line)\n{\"id\":1,\"text\":\"apple\"}\n{\"id\":2,\"text\":\"hammer\"}\n\n\
                      ### Reply\nOnly a JSON array.";
        let rows = batch_rows(prompt).unwrap();
        assert_eq!(
            rows,
            vec![
                (1, "Criterion: fruit\nText: apple".to_owned()),
                (2, "Criterion: fruit\nText: hammer".to_owned())
            ]
        );
        let reply: Value = serde_json::from_str(&batch_answer(&[(1, json!(true))])).unwrap();
        assert_eq!(reply, json!([{"id": 1, "answer": true}]));
        assert!(batch_rows("Criterion: fruit").is_none());
    }
}
