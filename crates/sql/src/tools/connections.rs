//! `list_sql_connections()`: the tables a cascade's SQL tools can query, by source, with their columns.

use async_trait::async_trait;
use rvbbit_engine::tools::{SideEffect, Tool, ToolContext, ToolError};
use serde_json::{Map, Value, json};

use super::{Door, Source};

/// `list_sql_connections`: the configured `[sql.tables]` (`sql_tables`), the batch run's table
/// (`batch`) and earlier cells' tables (`cells`), each with its columns and types.
#[derive(Clone, Debug)]
pub struct ListSqlConnections {
    door: Door,
}

impl ListSqlConnections {
    pub(crate) fn new(door: Door) -> Self {
        ListSqlConnections { door }
    }
}

#[async_trait]
impl Tool for ListSqlConnections {
    fn name(&self) -> &str {
        "list_sql_connections"
    }

    fn description(&self) -> &str {
        "List the SQL sources this cascade can query (configured tables, earlier cells' tables `_<cell>`), with each table's columns. Query them with sql_query by the table name shown."
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {}})
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Pure
    }

    async fn execute(&self, _args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let opened = self.door.open(ctx)?;
        let mut connections: Vec<(Source, Vec<Value>)> = Vec::new();
        for (source, name) in &opened.tables {
            let mut table = Map::new();
            table.insert("name".into(), json!(name));
            if let Some(location) = opened.locations.get(name) {
                table.insert("location".into(), json!(location));
            }
            // A configured file that cannot be opened is listed with its error, not fatal.
            match opened.columns(name).await {
                Ok(columns) => {
                    let columns: Vec<Value> = columns
                        .into_iter()
                        .map(|(name, kind)| json!({"name": name, "type": kind}))
                        .collect();
                    table.insert("columns".into(), Value::Array(columns));
                }
                Err(e) => {
                    table.insert("error".into(), json!(format!("[{}] {e}", e.code().code)));
                }
            }
            match connections.iter_mut().find(|(s, _)| s == source) {
                Some((_, tables)) => tables.push(Value::Object(table)),
                None => connections.push((*source, vec![Value::Object(table)])),
            }
        }
        let table_count: usize = connections.iter().map(|(_, t)| t.len()).sum();
        let connections: Vec<Value> = connections
            .into_iter()
            .map(|(source, tables)| {
                json!({"name": source.connection(), "type": "datafusion", "tables": tables})
            })
            .collect();
        Ok(json!({
            "connections": connections,
            "table_count": table_count,
            "note": "Query a table by its name, e.g. SELECT * FROM name LIMIT 5 (no connection prefix)."
        }))
    }
}
