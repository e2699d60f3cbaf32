//! `pg_get_keywords()`: the SQL keywords of the parser this server uses (sqlparser's list), as
//! PostgreSQL's table function returns them (pgjdbc's `getSQLKeywords` reads it).

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

/// Keywords PostgreSQL reserves (`catcode` `R`); the others are listed as unreserved (`U`).
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

/// The `pg_get_keywords` table function.
#[derive(Debug)]
pub(super) struct Keywords;

impl TableFunctionImpl for Keywords {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return Err(DataFusionError::Plan(
                "pg_get_keywords() takes no arguments".into(),
            ));
        }
        let words: Vec<String> = ALL_KEYWORDS.iter().map(|w| w.to_ascii_lowercase()).collect();
        let reserved: Vec<bool> = words.iter().map(|w| RESERVED.contains(&w.as_str())).collect();
        let code = |r: &bool| if *r { "R" } else { "U" };
        let desc = |r: &bool| if *r { "reserved" } else { "unreserved" };
        let schema = Arc::new(Schema::new(vec![
            Field::new("word", DataType::Utf8, false),
            Field::new("catcode", DataType::Utf8, false),
            Field::new("barelabel", DataType::Boolean, false),
            Field::new("catdesc", DataType::Utf8, false),
            Field::new("baredesc", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(words)),
                Arc::new(StringArray::from(reserved.iter().map(code).collect::<Vec<_>>())),
                Arc::new(BooleanArray::from(
                    reserved.iter().map(|r| !r).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(reserved.iter().map(desc).collect::<Vec<_>>())),
                Arc::new(StringArray::from(
                    reserved
                        .iter()
                        .map(|r| if *r { "requires AS" } else { "can be bare label" })
                        .collect::<Vec<_>>(),
                )),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
