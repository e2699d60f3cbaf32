//! `smart_sql_run(question, tables?, limit?)`: a model writes one SQL query from the question and the
//! named tables' schemas, the query runs read-only, and a failing query is repaired once.
//!
//! The writer is a one-cell cascade built in memory ([`WRITER`]), run through the engine as a child of
//! the calling run, so its model call is an `llm_response` event with its cost, added to the caller's
//! total. Its reply's SQL (a fenced block, or the whole reply) runs as `sql_query` runs it; when it
//! fails (a syntax error, an unknown column, a write refused), the writer is asked once more with the
//! failed query and the error, and that query's result (or error) is final. LARS's deterministic form
//! `smart_sql_run(query=…)` runs the given query, with the same single repair.

use std::path::Path;

use async_trait::async_trait;
use rvbbit_engine::tools::{SideEffect, Tool, ToolContext, ToolError};
use serde_json::{Value, json};

use super::{DEFAULT_ROWS, Door, MAX_ROWS, Opened, limit_arg, tables_arg, text_arg};
use crate::cascade::load_cascade_text;

/// The most tables whose schemas go into the prompt.
const MAX_TABLES: usize = 50;

/// The in-memory cascade that writes (and repairs) the query.
const WRITER: &str = r#"cascade_id: smart_sql_run
description: Write one read-only SQL query for smart_sql_run.
inputs_schema:
  question: The question to answer.
  schemas: The tables that may be queried, with their columns.
  failed_sql: A query that failed (repair), or empty.
  error: Its error, or empty.
cells:
  - name: write_sql
    instructions: |-
      Write one read-only SQL query (PostgreSQL dialect, run by Apache DataFusion) that answers the question.

      Tables (name: column type, ...):
      {{ input.schemas }}

      Question: {{ input.question }}
      {% if input.failed_sql %}
      This query failed:
      {{ input.failed_sql }}

      Error: {{ input.error }}

      Write a corrected query.
      {% endif %}
      Reply with the SQL only, in a ```sql fenced block: one SELECT or WITH statement, no explanation.
    rules:
      max_turns: 1
"#;

/// `smart_sql_run`: question in, SQL and rows out.
#[derive(Clone, Debug)]
pub struct SmartSqlRun {
    door: Door,
}

impl SmartSqlRun {
    pub(crate) fn new(door: Door) -> Self {
        SmartSqlRun { door }
    }
}

#[async_trait]
impl Tool for SmartSqlRun {
    fn name(&self) -> &str {
        "smart_sql_run"
    }

    fn description(&self) -> &str {
        "Answer a question with SQL: a model writes one read-only query from the question and the tables' schemas, it runs, and a failing query is repaired once. Returns {sql, rows, columns, row_count, truncated, repaired}."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "What to find out, in words."},
                "tables": {"type": "array", "items": {"type": "string"}, "description": "The tables the query may use (default: every table list_sql_connections shows)."},
                "query": {"type": "string", "description": "A query to run instead of writing one (repaired once if it fails)."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "description": format!("Most rows returned (default {DEFAULT_ROWS}).")}
            }
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Pure
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let question = text_arg(&args, &["question", "prompt", "instructions"]);
        let given = text_arg(&args, &["query", "sql"]);
        if question.is_none() && given.is_none() {
            return Err(ToolError::InvalidArguments(
                "`question` (or a `query` to run) is required and must be a non-empty string".into(),
            ));
        }
        let limit = limit_arg(&args, DEFAULT_ROWS)?;
        let opened = self.door.open(ctx)?;
        let schemas = schemas(&opened, &tables_arg(&args)).await?;
        let question = question.map_or_else(
            || "Fix this query so that it runs; keep what it asks for.".to_owned(),
            str::to_owned,
        );
        let writer = Writer {
            opened: &opened,
            ctx,
            question: &question,
            schemas: &schemas,
        };
        let first = match given {
            Some(sql) => sql.to_owned(),
            None => writer.write(None).await?,
        };
        let mut attempts = Vec::new();
        let (sql, mut result) = match opened.read(&first, limit).await {
            Ok(result) => (first, result),
            Err(e) => {
                let error = format!("[{}] {e}", e.code().code);
                attempts.push(json!({"sql": first, "error": error}));
                let repaired = writer.write(Some((&first, &error))).await?;
                match opened.read(&repaired, limit).await {
                    Ok(result) => (repaired, result),
                    Err(e) => {
                        return Err(ToolError::Failed(format!(
                            "[{}] the repaired query failed too: {e}\nfirst query: {first}\nfirst error: {error}\nrepaired query: {repaired}",
                            e.code().code
                        )));
                    }
                }
            }
        };
        result["sql"] = json!(sql);
        result["repaired"] = json!(!attempts.is_empty());
        result["attempts"] = Value::Array(attempts);
        Ok(result)
    }
}

/// The schemas of `wanted` (or of every table), one line per table: `name: column type, …`.
async fn schemas(opened: &Opened, wanted: &[String]) -> Result<String, ToolError> {
    let known: Vec<&str> = opened.tables.iter().map(|(_, n)| n.as_str()).collect();
    if let Some(unknown) = wanted.iter().find(|w| !known.contains(&w.as_str())) {
        return Err(ToolError::InvalidArguments(format!(
            "no table `{unknown}`; the tables are: {}",
            if known.is_empty() {
                "(none)".to_owned()
            } else {
                known.join(", ")
            }
        )));
    }
    let names: Vec<&str> = if wanted.is_empty() {
        known
    } else {
        wanted.iter().map(String::as_str).collect()
    };
    let mut lines = Vec::new();
    for name in names.into_iter().take(MAX_TABLES) {
        let columns = opened.columns(name).await.map_err(super::failed)?;
        let columns: Vec<String> = columns.iter().map(|(c, t)| format!("{c} {t}")).collect();
        lines.push(format!("{name}: {}", columns.join(", ")));
    }
    if lines.is_empty() {
        lines.push("(no tables: only constant queries such as SELECT 1 can run)".into());
    }
    Ok(lines.join("\n"))
}

/// Asks the model of the calling run for a query.
struct Writer<'a> {
    opened: &'a Opened,
    ctx: &'a ToolContext,
    question: &'a str,
    schemas: &'a str,
}

impl Writer<'_> {
    /// One model call: a query for the question, or a repair of `failed` (its SQL and error).
    async fn write(&self, failed: Option<(&str, &str)>) -> Result<String, ToolError> {
        let parent = self.opened.parent.as_ref().ok_or_else(|| {
            ToolError::Failed(
                "smart_sql_run asks a model to write its query, so it runs only inside a cascade run".into(),
            )
        })?;
        let loaded = load_cascade_text(Path::new("<smart_sql_run>"), WRITER, parent.engine())
            .map_err(|e| ToolError::Failed(format!("the query writer cannot load (this is a bug): {e}")))?;
        let mut request = loaded.template;
        request.input = json!({
            "question": self.question,
            "schemas": self.schemas,
            "failed_sql": failed.map_or("", |f| f.0),
            "error": failed.map_or("", |f| f.1),
        });
        request.caller_id = parent.caller_id().clone();
        request.cancel = parent.cancel_token();
        request.metadata = json!({"tool": "smart_sql_run", "repair": failed.is_some()});
        let outcome = parent
            .run(request, &self.ctx.cell_name)
            .await
            .map_err(|e| ToolError::Failed(format!("the query writer did not start: {e}")))?;
        if let Some(e) = &outcome.error {
            return Err(ToolError::Failed(format!(
                "the query writer (session {}) failed: {e}",
                outcome.session_id
            )));
        }
        let reply = match &outcome.output {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let sql = extract_sql(&reply);
        if sql.is_empty() {
            return Err(ToolError::Failed(format!(
                "the query writer (session {}) replied with no SQL: {reply:?}",
                outcome.session_id
            )));
        }
        Ok(sql)
    }
}

/// The SQL in a reply: the first ```sql (or plain ```) fenced block, else the whole reply; trimmed,
/// without a trailing `;`.
fn extract_sql(reply: &str) -> String {
    let mut rest = reply;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let lang = after[..line_end].trim().to_ascii_lowercase();
        let body = &after[(line_end + 1).min(after.len())..];
        let Some(end) = body.find("```") else {
            break;
        };
        if lang.is_empty() || lang == "sql" {
            return clean(&body[..end]);
        }
        rest = &body[end + 3..];
    }
    clean(reply)
}

fn clean(sql: &str) -> String {
    sql.trim().trim_end_matches(';').trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::extract_sql;

    #[test]
    fn the_query_is_taken_from_a_fence_or_the_whole_reply() {
        assert_eq!(extract_sql("Here:\n```sql\nSELECT 1;\n```\nDone."), "SELECT 1");
        assert_eq!(extract_sql("```python\nx\n```\n```\nSELECT 2\n```"), "SELECT 2");
        assert_eq!(extract_sql("  SELECT 3;  "), "SELECT 3");
    }
}
