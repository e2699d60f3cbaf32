//! How a `pg_catalog` table is declared: a row struct with named fields whose Rust types give the
//! column types ([`Column`]), and [`CatalogTable`], its name, oid, schema and how a `Vec` of rows
//! becomes a record batch. The [`catalog_table!`] macro writes both from one field list, so a
//! column's name, type and place are said once.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Int16Array, Int16Builder, Int32Array, Int64Array, Int64Builder,
    ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;

use super::Snapshot;

/// An `oid` column (served as int8, as it always was).
pub(super) type Oid = i64;
/// A `text[]` column (`relacl`, `reloptions`, …).
pub(super) type TextArray = Option<Vec<String>>;
/// An `int2vector` / `int2[]` column (`pg_index.indkey`, `indoption`, `pg_constraint.conkey`).
pub(super) type I2Array = Option<Vec<i16>>;
/// An `oidvector` / `oid[]` column (`pg_index.indclass`, `indcollation`), of int8 as [`Oid`].
pub(super) type OidArray = Option<Vec<Oid>>;

/// A Rust type that is a catalog column: its Arrow type and how a column of values becomes an array.
/// `Option<T>` is the same column with NULLs.
pub(super) trait Column: Sized {
    /// The Arrow type of the column.
    fn data_type() -> DataType;
    /// The column's array.
    fn array(values: Vec<Self>) -> ArrayRef;
}

/// Plain columns: `T` and `Option<T>` through the Arrow array's `From<Vec<_>>`.
macro_rules! plain_column {
    ($($rust:ty => $array:ty, $arrow:expr;)*) => {$(
        impl Column for $rust {
            fn data_type() -> DataType {
                $arrow
            }
            fn array(values: Vec<Self>) -> ArrayRef {
                Arc::new(<$array>::from(values))
            }
        }
        impl Column for Option<$rust> {
            fn data_type() -> DataType {
                $arrow
            }
            fn array(values: Vec<Self>) -> ArrayRef {
                Arc::new(<$array>::from(values))
            }
        }
    )*};
}

plain_column! {
    i64 => Int64Array, DataType::Int64;
    i32 => Int32Array, DataType::Int32;
    i16 => Int16Array, DataType::Int16;
    f32 => Float32Array, DataType::Float32;
    bool => BooleanArray, DataType::Boolean;
    String => StringArray, DataType::Utf8;
}

impl Column for TextArray {
    fn data_type() -> DataType {
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
    }
    fn array(values: Vec<Self>) -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for value in values {
            match value {
                Some(items) => {
                    for item in items {
                        b.values().append_value(item);
                    }
                    b.append(true);
                }
                None => b.append_null(),
            }
        }
        Arc::new(b.finish())
    }
}

/// List columns of a primitive element: (Rust list type, Arrow element type, element builder).
macro_rules! list_column {
    ($($rust:ty => $element:expr, $builder:ty;)*) => {$(
        impl Column for $rust {
            fn data_type() -> DataType {
                DataType::List(Arc::new(Field::new("item", $element, true)))
            }
            fn array(values: Vec<Self>) -> ArrayRef {
                let mut b = ListBuilder::new(<$builder>::new());
                for value in values {
                    match value {
                        Some(items) => {
                            for item in items {
                                b.values().append_value(item);
                            }
                            b.append(true);
                        }
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        }
    )*};
}

list_column! {
    I2Array => DataType::Int16, Int16Builder;
    OidArray => DataType::Int64, Int64Builder;
}

/// One `pg_catalog` table: `Self` is one of its rows.
pub(super) trait CatalogTable: Sized {
    /// The table name.
    const NAME: &'static str;
    /// The table's oid (`'name'::regclass`).
    const OID: i64;

    /// The columns, in order, all nullable.
    fn schema() -> SchemaRef;

    /// The rows as a batch with [`Self::schema`].
    fn batch(rows: Vec<Self>) -> Result<RecordBatch>;

    /// The rows for a snapshot of the session's catalog (none by default).
    fn rows(_snapshot: &Snapshot<'_>) -> Vec<Self> {
        Vec::new()
    }
}

/// A nullable field of the schema.
pub(super) fn field<C: Column>(name: &str) -> Field {
    Field::new(name, C::data_type(), true)
}

/// The schema of the given fields.
pub(super) fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

/// Declare a catalog table: the row struct (fields in column order, their types the column types) and
/// its [`CatalogTable`] impl; `rows = f` names the function building the rows from a snapshot (the
/// table is empty without it).
macro_rules! catalog_table {
    (
        $(#[$doc:meta])*
        $row:ident = $name:literal, oid $oid:literal $(, rows = $rows:path)? {
            $($(#[$fdoc:meta])* $col:ident: $ty:ty,)*
        }
    ) => {
        $(#[$doc])*
        pub(super) struct $row {
            $($(#[$fdoc])* pub(super) $col: $ty,)*
        }

        impl $crate::pgwire::catalog::table::CatalogTable for $row {
            const NAME: &'static str = $name;
            const OID: i64 = $oid;

            fn schema() -> datafusion::arrow::datatypes::SchemaRef {
                $crate::pgwire::catalog::table::schema(vec![
                    $($crate::pgwire::catalog::table::field::<$ty>(stringify!($col)),)*
                ])
            }

            fn batch(rows: Vec<Self>) -> datafusion::error::Result<datafusion::arrow::record_batch::RecordBatch> {
                $(let mut $col: Vec<$ty> = Vec::with_capacity(rows.len());)*
                for row in rows {
                    $($col.push(row.$col);)*
                }
                let columns = vec![
                    $(<$ty as $crate::pgwire::catalog::table::Column>::array($col),)*
                ];
                Ok(datafusion::arrow::record_batch::RecordBatch::try_new(Self::schema(), columns)?)
            }

            $(
                fn rows(snapshot: &$crate::pgwire::catalog::Snapshot<'_>) -> Vec<Self> {
                    $rows(snapshot)
                }
            )?
        }
    };
}

pub(super) use catalog_table;
