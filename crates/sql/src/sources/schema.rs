//! The default schema of a session ([`SessionSchema`]): its own in-memory tables, then the configured
//! `[sql.tables]`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::TableType;

use super::Sources;

/// The default schema of a session: its own tables (memory), then the configured `[sql.tables]`.
#[derive(Debug)]
pub(crate) struct SessionSchema {
    own: MemorySchemaProvider,
    sources: Arc<Sources>,
}

impl SessionSchema {
    pub(crate) fn new(sources: Arc<Sources>) -> Self {
        SessionSchema {
            own: MemorySchemaProvider::new(),
            sources,
        }
    }
}

#[async_trait]
impl SchemaProvider for SessionSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.own.table_names();
        for name in self.sources.tables.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    async fn table_type(&self, name: &str) -> Result<Option<TableType>> {
        // Listing tables (information_schema.tables) does not open the configured files.
        if let Some(t) = self.own.table_type(name).await? {
            return Ok(Some(t));
        }
        Ok(self.sources.tables.contains_key(name).then_some(TableType::Base))
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.own.table(name).await? {
            return Ok(Some(table));
        }
        self.sources.configured(name).await
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.own.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.own.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.own.table_exist(name) || self.sources.tables.contains_key(name)
    }
}
