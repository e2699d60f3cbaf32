//! `sql_query(sql, connection?, limit?)`: one read-only query over the tables a cascade can see.

use async_trait::async_trait;
use rvbbit_engine::tools::{SideEffect, Tool, ToolContext, ToolError};
use serde_json::{Value, json};

use super::{DEFAULT_ROWS, Door, MAX_ROWS, failed, limit_arg, text_arg};

/// `sql_query`: run one statement that only reads; the rows capped and flagged `truncated`.
#[derive(Clone, Debug)]
pub struct SqlQuery {
    door: Door,
}

impl SqlQuery {
    pub(crate) fn new(door: Door) -> Self {
        SqlQuery { door }
    }
}

#[async_trait]
impl Tool for SqlQuery {
    fn name(&self) -> &str {
        "sql_query"
    }

    fn description(&self) -> &str {
        "Run one read-only SQL query (SELECT, WITH, VALUES, EXPLAIN, SHOW) over the configured tables and earlier cells' tables (`_<cell>`); `list_sql_connections` lists them. Returns {rows, columns, row_count, total_rows, truncated}; writes are refused."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "sql": {"type": "string", "description": "The query (one statement)."},
                "connection": {"type": "string", "description": "Accepted for compatibility: every table is in one session; write `table`, not `connection.table`."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "description": format!("Most rows returned (default {DEFAULT_ROWS}).")}
            },
            "required": ["sql"]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Pure
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let sql = text_arg(&args, &["sql", "query"]).ok_or_else(|| {
            ToolError::InvalidArguments("`sql` is required and must be a non-empty string".into())
        })?;
        let limit = limit_arg(&args, DEFAULT_ROWS)?;
        let opened = self.door.open(ctx)?;
        let mut result = opened.read(sql, limit).await.map_err(failed)?;
        result["sql"] = json!(sql);
        Ok(result)
    }
}
