//! `sql_search(query, tables?, limit?)`: keyword search over the tables a cascade can query.
//!
//! The query's words (lower-cased letters and digits, two characters or more, a few stop words left
//! out, at most [`MAX_TERMS`]) are matched against each table's name and column names (LARS's "find the
//! relevant tables": those tables come back with their columns and a few sample rows) and against the
//! text of its rows: a row's score is the share of the words found anywhere in its text columns
//! (case-insensitive substring). Rows of every table are ranked together, best first. Embedding
//! search (`SIMILAR_TO`) is not used here.

use std::cmp::Ordering;

use async_trait::async_trait;
use rvbbit_engine::tools::{SideEffect, Tool, ToolContext, ToolError};
use serde_json::{Value, json};

use super::{Door, Opened, Source, failed, limit_arg, quoted, tables_arg, text_arg};

/// The most words of a query that count.
const MAX_TERMS: usize = 16;

/// Rows returned when the call names no `limit`.
const DEFAULT_MATCHES: usize = 10;

/// Sample rows shown for a table whose name or columns match.
const SAMPLE_ROWS: usize = 3;

/// The score column of the generated statements.
const SCORE: &str = "_rvbbit_score";

/// Words too common to search for.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "of", "on", "or",
    "that", "the", "to", "with", "what", "which", "who",
];

/// `sql_search`: find tables and rows matching words.
#[derive(Clone, Debug)]
pub struct SqlSearch {
    door: Door,
}

impl SqlSearch {
    pub(crate) fn new(door: Door) -> Self {
        SqlSearch { door }
    }
}

#[async_trait]
impl Tool for SqlSearch {
    fn name(&self) -> &str {
        "sql_search"
    }

    fn description(&self) -> &str {
        "Search the SQL tables this cascade can query for words: returns the tables whose name or columns match (with columns and sample rows) and the matching rows of their text columns with a score (share of the words found), best first."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Words to look for (e.g. 'sales region')."},
                "tables": {"type": "array", "items": {"type": "string"}, "description": "Only these tables (default: all)."},
                "limit": {"type": "integer", "minimum": 1, "description": format!("Most rows returned (default {DEFAULT_MATCHES}).")}
            },
            "required": ["query"]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Pure
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let query = text_arg(&args, &["query", "q", "search"]).ok_or_else(|| {
            ToolError::InvalidArguments("`query` is required and must be a non-empty string".into())
        })?;
        let terms = terms(query);
        if terms.is_empty() {
            return Err(ToolError::InvalidArguments(format!(
                "`query` holds no word to search for (letters or digits, two or more): {query:?}"
            )));
        }
        let limit = limit_arg(&args, DEFAULT_MATCHES)?;
        let opened = self.door.open(ctx)?;
        let wanted = tables_arg(&args);
        if let Some(unknown) = wanted
            .iter()
            .find(|w| !opened.tables.iter().any(|(_, n)| n == *w))
        {
            let known: Vec<&str> = opened.tables.iter().map(|(_, n)| n.as_str()).collect();
            return Err(ToolError::InvalidArguments(format!(
                "no table `{unknown}`; the tables are: {}",
                if known.is_empty() {
                    "(none)".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
        let mut tables = Vec::new();
        let mut skipped = Vec::new();
        let mut rows: Vec<(f64, String, Value)> = Vec::new();
        for (source, name) in &opened.tables {
            if !wanted.is_empty() && !wanted.contains(name) {
                continue;
            }
            // A configured file that cannot be read is skipped (and named), not fatal to the search.
            let found = match search_table(&opened, *source, name, &terms, limit).await {
                Ok(found) => found,
                Err(e) if wanted.is_empty() => {
                    skipped.push(json!({"table": name, "error": e.to_string()}));
                    continue;
                }
                Err(e) => return Err(e),
            };
            rows.extend(found.rows.into_iter().map(|(s, r)| (s, name.clone(), r)));
            if let Some(t) = found.table {
                tables.push(t);
            }
        }
        rows.sort_by(|a, b| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(Ordering::Equal)
                .then(a.1.cmp(&b.1))
        });
        let total = rows.len();
        rows.truncate(limit);
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|(score, table, row)| json!({"table": table, "score": score, "row": row}))
            .collect();
        Ok(json!({
            "query": query,
            "terms": terms,
            "tables": tables,
            "rows": rows,
            "row_count": rows.len(),
            "truncated": rows.len() < total,
            "skipped": skipped,
        }))
    }
}

/// What one table gave: itself (when its name, columns or rows match) and its scored rows.
struct Found {
    table: Option<Value>,
    rows: Vec<(f64, Value)>,
}

async fn search_table(
    opened: &Opened,
    source: Source,
    name: &str,
    terms: &[String],
    limit: usize,
) -> Result<Found, ToolError> {
    let columns = opened.columns(name).await.map_err(failed)?;
    let lower_name = name.to_lowercase();
    let name_hits = terms
        .iter()
        .filter(|t| {
            lower_name.contains(t.as_str())
                || columns.iter().any(|(c, _)| c.to_lowercase().contains(t.as_str()))
        })
        .count();
    let text: Vec<&str> = columns
        .iter()
        .filter(|(_, kind)| kind.contains("Utf8"))
        .map(|(c, _)| c.as_str())
        .collect();
    let mut rows = Vec::new();
    if !text.is_empty() {
        let joined = format!(
            "lower(concat_ws(' ', {}))",
            text.iter()
                .map(|c| format!("CAST({} AS VARCHAR)", quoted(c)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Terms are letters and digits only (`terms`), so they are safe inside quotes.
        let hits = terms
            .iter()
            .map(|t| format!("(CASE WHEN strpos({joined}, '{t}') > 0 THEN 1 ELSE 0 END)"))
            .collect::<Vec<_>>()
            .join(" + ");
        let sql = format!(
            "SELECT * FROM (SELECT *, CAST({hits} AS DOUBLE) / {n} AS {score} FROM {table}) AS scored \
             WHERE {score} > 0 ORDER BY {score} DESC LIMIT {limit}",
            n = terms.len(),
            score = quoted(SCORE),
            table = quoted(name),
        );
        let result = opened.run(&sql).await.map_err(failed)?;
        for mut row in result.to_json_rows().map_err(failed)? {
            let score = row
                .as_object_mut()
                .and_then(|m| m.remove(SCORE))
                .and_then(|s| s.as_f64())
                .unwrap_or(0.0);
            rows.push(((score * 1000.0).round() / 1000.0, row));
        }
    }
    if name_hits == 0 && rows.is_empty() {
        return Ok(Found { table: None, rows });
    }
    let sample = opened
        .run(&format!("SELECT * FROM {} LIMIT {SAMPLE_ROWS}", quoted(name)))
        .await
        .and_then(|r| r.to_json_rows())
        .map_err(failed)?;
    let columns: Vec<Value> = columns
        .iter()
        .map(|(c, kind)| json!({"name": c, "type": kind}))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let score = name_hits as f64 / terms.len() as f64;
    let table = json!({
        "table": name,
        "connection": source.connection(),
        "score": (score * 1000.0).round() / 1000.0,
        "matching_rows": rows.len(),
        "columns": columns,
        "sample_rows": sample,
    });
    Ok(Found {
        table: Some(table),
        rows,
    })
}

/// The words of `query` searched for: lower-cased runs of letters and digits, two characters or more,
/// stop words left out, each once, at most [`MAX_TERMS`].
fn terms(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in query
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2 && !STOP_WORDS.contains(w))
    {
        // Only letters and digits reach here: no quote can.
        if !out.iter().any(|t| t == word) && out.len() < MAX_TERMS {
            out.push(word.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::terms;

    #[test]
    fn query_words_are_lowered_deduplicated_and_stripped_of_quotes() {
        assert_eq!(terms("Sales by REGION, sales!"), ["sales", "region"]);
        assert_eq!(terms("it's O'Brien'; DROP"), ["brien", "drop"]);
        assert!(terms("a ? !").is_empty());
        let many: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
        assert_eq!(terms(&many.join(" ")).len(), super::MAX_TERMS);
    }
}
