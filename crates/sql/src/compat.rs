//! DuckDB-dialect helpers the RVBBIT corpus and the spec (§1.2) expect, as DataFusion functions:
//! `to_json(x)`, `json_object(k, v, ...)`, `json_extract_string(json, path)`, `json_extract(json, path)`
//! and the aggregate `json_group_array(x)`. (The table functions `read_csv_auto`, `read_json`, … live in
//! `sources.rs`.) They are stateless and registered in every session, including `sql_data`'s.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, Volatility, function::AccumulatorArgs,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use serde_json::{Map, Value};

/// Register the helpers in `ctx`.
pub(crate) fn register(ctx: &SessionContext) {
    for f in [
        Compat::ToJson,
        Compat::JsonObject,
        Compat::JsonExtractString,
        Compat::JsonExtract,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Scalar::new(f)));
    }
    ctx.register_udaf(AggregateUDF::new_from_impl(JsonGroupArray::default()));
}

/// Which helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Compat {
    ToJson,
    JsonObject,
    JsonExtractString,
    JsonExtract,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Scalar {
    which: Compat,
    signature: Signature,
}

impl Scalar {
    fn new(which: Compat) -> Self {
        let signature = match which {
            Compat::ToJson => Signature::any(1, Volatility::Immutable),
            Compat::JsonObject => Signature::variadic_any(Volatility::Immutable),
            Compat::JsonExtractString | Compat::JsonExtract => {
                Signature::one_of(vec![TypeSignature::Any(2)], Volatility::Immutable)
            }
        };
        Scalar { which, signature }
    }
}

fn failed(message: String) -> DataFusionError {
    crate::error::Error::Argument { message }.into_datafusion()
}

/// The values of `array` as JSON (NULL as `Value::Null`; structs as objects, lists as arrays).
pub(crate) fn json_values(array: &ArrayRef) -> Result<Vec<Value>> {
    let n = array.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let schema = Arc::new(Schema::new(vec![Field::new(
        "v",
        array.data_type().clone(),
        true,
    )]));
    let batch = RecordBatch::try_new(schema, vec![array.clone()])?;
    let rows = crate::result::json_rows(&[batch]).map_err(|e| e.into_datafusion())?;
    Ok(rows
        .into_iter()
        .map(|mut row| row.get_mut("v").map(Value::take).unwrap_or(Value::Null))
        .collect())
}

fn text_array(array: &ArrayRef) -> Result<StringArray> {
    let text = cast(array, &DataType::Utf8)?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("a text cast did not give text".into()))
}

/// A step of a JSON path.
#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Parse the supported JSON path subset: `$`, `$.a.b`, `$.a[0]`, `$[0].a`, `$."odd key"`, the shorthand
/// `a.b` (no `$`) and JSON pointers `/a/0`.
fn parse_path(path: &str) -> std::result::Result<Vec<Step>, String> {
    let bad = |why: &str| {
        format!("JSON path `{path}` is not supported ({why}); use `$.key`, `$.a.b`, `$.list[0]` or `key`")
    };
    if let Some(pointer) = path.strip_prefix('/') {
        return Ok(pointer
            .split('/')
            .map(|s| {
                let s = s.replace("~1", "/").replace("~0", "~");
                match s.parse::<usize>() {
                    Ok(i) => Step::Index(i),
                    Err(_) => Step::Key(s),
                }
            })
            .collect());
    }
    let Some(rest) = path.strip_prefix('$') else {
        // Shorthand: a bare key path.
        return Ok(path
            .split('.')
            .filter(|s| !s.is_empty())
            .map(|s| Step::Key(s.to_owned()))
            .collect());
    };
    let mut steps = Vec::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'"') {
                    let start = i + 1;
                    let end = chars[start..]
                        .iter()
                        .position(|&c| c == '"')
                        .ok_or_else(|| bad("unclosed quote"))?;
                    steps.push(Step::Key(chars[start..start + end].iter().collect()));
                    i = start + end + 1;
                } else {
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    if i == start {
                        return Err(bad("empty key"));
                    }
                    steps.push(Step::Key(chars[start..i].iter().collect()));
                }
            }
            '[' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or_else(|| bad("unclosed `[`"))?;
                let inner: String = chars[start..start + end].iter().collect();
                let inner = inner.trim();
                if let Some(key) = inner
                    .strip_prefix('"')
                    .and_then(|k| k.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
                {
                    steps.push(Step::Key(key.to_owned()));
                } else {
                    let index = inner
                        .parse::<usize>()
                        .map_err(|_| bad("an index must be a whole number"))?;
                    steps.push(Step::Index(index));
                }
                i = start + end + 1;
            }
            _ => return Err(bad("expected `.` or `[`")),
        }
    }
    Ok(steps)
}

fn follow<'a>(mut value: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    for step in steps {
        value = match (step, value) {
            (Step::Key(k), Value::Object(map)) => map.get(k)?,
            (Step::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

impl ScalarUDFImpl for Scalar {
    fn name(&self) -> &str {
        match self.which {
            Compat::ToJson => "to_json",
            Compat::JsonObject => "json_object",
            Compat::JsonExtractString => "json_extract_string",
            Compat::JsonExtract => "json_extract",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.clone().into_array(n))
            .collect::<Result<_>>()?;
        let mut out = StringBuilder::with_capacity(n, n * 16);
        match self.which {
            Compat::ToJson => {
                let values = json_values(&arrays[0])?;
                for v in &values {
                    if v.is_null() {
                        out.append_null();
                    } else {
                        out.append_value(v.to_string());
                    }
                }
            }
            Compat::JsonObject => {
                if !arrays.len().is_multiple_of(2) {
                    return Err(failed(format!(
                        "json_object takes key, value pairs; got {} argument(s)",
                        arrays.len()
                    )));
                }
                let keys: Vec<StringArray> =
                    arrays.iter().step_by(2).map(text_array).collect::<Result<_>>()?;
                let values: Vec<Vec<Value>> = arrays
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .map(json_values)
                    .collect::<Result<_>>()?;
                for row in 0..n {
                    let mut map = Map::new();
                    for (k, v) in keys.iter().zip(&values) {
                        if k.is_null(row) {
                            return Err(failed("json_object: a key is NULL; keys must be text".into()));
                        }
                        map.insert(
                            k.value(row).to_owned(),
                            v.get(row).cloned().unwrap_or(Value::Null),
                        );
                    }
                    out.append_value(Value::Object(map).to_string());
                }
            }
            Compat::JsonExtractString | Compat::JsonExtract => {
                let docs = text_array(&arrays[0])?;
                let paths = text_array(&arrays[1])?;
                // Constant paths (the usual case) are parsed once.
                let mut parsed: Option<(String, Vec<Step>)> = None;
                for row in 0..n {
                    if docs.is_null(row) || paths.is_null(row) {
                        out.append_null();
                        continue;
                    }
                    let path = paths.value(row);
                    if parsed.as_ref().is_none_or(|(p, _)| p != path) {
                        parsed = Some((path.to_owned(), parse_path(path).map_err(failed)?));
                    }
                    let steps = parsed.as_ref().map(|(_, s)| s.as_slice()).unwrap_or_default();
                    let Ok(doc) = serde_json::from_str::<Value>(docs.value(row)) else {
                        // Not JSON: DuckDB raises; we give NULL so one bad row does not sink a query.
                        out.append_null();
                        continue;
                    };
                    match (follow(&doc, steps), self.which) {
                        (None | Some(Value::Null), Compat::JsonExtractString) => out.append_null(),
                        (None, _) => out.append_null(),
                        (Some(Value::String(s)), Compat::JsonExtractString) => out.append_value(s),
                        (Some(v), _) => out.append_value(v.to_string()),
                    }
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `json_group_array(x)`: the group's values (NULLs included) as a JSON array text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonGroupArray {
    signature: Signature,
}

impl Default for JsonGroupArray {
    fn default() -> Self {
        JsonGroupArray {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for JsonGroupArray {
    fn name(&self) -> &str {
        "json_group_array"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(JsonArrayAcc::default()))
    }
}

#[derive(Debug, Default)]
struct JsonArrayAcc {
    values: Vec<Value>,
}

impl Accumulator for JsonArrayAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if let Some(array) = values.first() {
            self.values.extend(json_values(array)?);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(Some(
            Value::Array(self.values.clone()).to_string(),
        )))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.len() * std::mem::size_of::<Value>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(array) = states.first() else {
            return Ok(());
        };
        let text = text_array(array)?;
        for i in 0..text.len() {
            if text.is_null(i) {
                continue;
            }
            match serde_json::from_str::<Value>(text.value(i)) {
                Ok(Value::Array(items)) => self.values.extend(items),
                _ => {
                    return Err(DataFusionError::Internal(
                        "json_group_array: a partial state is not a JSON array".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("$.a.b[2].\"c d\"").unwrap(),
            vec![
                Step::Key("a".into()),
                Step::Key("b".into()),
                Step::Index(2),
                Step::Key("c d".into())
            ]
        );
        assert_eq!(
            parse_path("a.b").unwrap(),
            vec![Step::Key("a".into()), Step::Key("b".into())]
        );
        assert_eq!(
            parse_path("/a/0").unwrap(),
            vec![Step::Key("a".into()), Step::Index(0)]
        );
        assert_eq!(parse_path("$").unwrap(), vec![]);
        assert!(parse_path("$a").is_err());
        assert!(parse_path("$.a[x]").is_err());
    }
}
