//! The native embedding functions as DataFusion async UDFs: per batch, every text of the batch is
//! embedded at once (`super::embed`), then each row is computed from the vectors. A NULL argument, or a
//! text without a vector, gives NULL.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float32Builder, Float64Builder, ListBuilder, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::Result;
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::batch_args::{self, get, text_columns};
use crate::error::Error;
use crate::shared::Shared;

/// The vectors of the texts in `columns` (all rows), by text, with the batch's model (its `model_at`
/// column's first non-NULL value, else the session's).
async fn vectors_of(
    shared: &Shared,
    name: &str,
    args: &ScalarFunctionArgs,
    columns: &[StringArray],
    text_cols: &[usize],
    model_at: usize,
) -> Result<std::collections::HashMap<String, super::Embedded>> {
    let stmt = shared.statement();
    let options = batch_args::options(args, &stmt);
    let n = args.number_rows;
    let mut models = (0..n).filter_map(|r| get(columns.get(model_at), r));
    let own = models.next();
    if let Some(other) = models.find(|m| Some(*m) != own) {
        return Err(Error::Invalid {
            message: format!(
                "{name}: one call embeds with one model, and this one names `{}` and `{other}`; make the \
                 model argument a constant",
                own.unwrap_or_default()
            ),
        }
        .into_datafusion());
    }
    let runtime = &shared.runtime;
    let model = super::model(own, &options, runtime).map_err(Error::into_datafusion)?;
    let texts = text_cols
        .iter()
        .flat_map(|&c| (0..n).filter_map(move |r| get(columns.get(c), r)))
        .map(str::to_owned);
    super::embed(runtime, &stmt, &options, name, &model, texts)
        .await
        .map_err(Error::into_datafusion)
}

/// `semantic_similarity(a, b [, model])`, also written `a SIMILAR_TO b`: the cosine similarity (-1 to
/// 1) of the two texts' embeddings.
#[derive(Debug)]
pub(crate) struct SimilarityUdf {
    signature: Signature,
    shared: Arc<Shared>,
}

impl SimilarityUdf {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        SimilarityUdf {
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Volatile,
            ),
            shared,
        }
    }
}

/// `rvbbit_embed(text [, model])`: the text's embedding as a list of `REAL`s.
#[derive(Debug)]
pub(crate) struct EmbedUdf {
    signature: Signature,
    shared: Arc<Shared>,
}

impl EmbedUdf {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        EmbedUdf {
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Volatile,
            ),
            shared,
        }
    }
}

macro_rules! same_by_shared {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.shared, &other.shared)
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                Arc::as_ptr(&self.shared).hash(state);
            }
        }
    };
}
same_by_shared!(SimilarityUdf);
same_by_shared!(EmbedUdf);

fn not_sync(name: &str) -> datafusion::error::DataFusionError {
    Error::Execution {
        message: format!("{name} cannot be evaluated synchronously; this is a bug"),
    }
    .into_datafusion()
}

impl ScalarUDFImpl for SimilarityUdf {
    fn name(&self) -> &str {
        "semantic_similarity"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(not_sync(self.name()))
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for SimilarityUdf {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let cols = text_columns(&args)?;
        let vectors = vectors_of(&self.shared, self.name(), &args, &cols, &[0, 1], 2).await?;
        let mut out = Float64Builder::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let pair = (get(cols.first(), row), get(cols.get(1), row));
            let score = match pair {
                (Some(a), Some(b)) => match (vectors.get(a), vectors.get(b)) {
                    (Some(Ok(va)), Some(Ok(vb))) => Some(rvbbit_llm::cosine(va, vb)),
                    _ => None,
                },
                _ => None,
            };
            out.append_option(score);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

impl ScalarUDFImpl for EmbedUdf {
    fn name(&self) -> &str {
        "rvbbit_embed"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            DataType::Float32,
            true,
        ))))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(not_sync(self.name()))
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for EmbedUdf {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let cols = text_columns(&args)?;
        let vectors = vectors_of(&self.shared, self.name(), &args, &cols, &[0], 1).await?;
        let mut out = ListBuilder::new(Float32Builder::new());
        for row in 0..args.number_rows {
            match get(cols.first(), row).and_then(|t| vectors.get(t)) {
                Some(Ok(v)) => {
                    out.values().append_slice(v);
                    out.append(true);
                }
                _ => out.append(false),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}
