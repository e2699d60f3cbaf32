//! Embeddings: many texts in, one vector each out, from an OpenAI-compatible `/embeddings` endpoint.
//!
//! [`EmbedRequest`] names one model and its inputs; [`EmbedResponse`] holds one vector per input in the
//! same order, with the tokens the provider billed and their cost. A request is never split or retried
//! on another model by fallback: vectors of two models are not comparable, so a fallback chain would
//! silently mix spaces. Retries, limits and breakers apply as for chat ([`crate::Client`]).

use serde_json::{Value, json};

use crate::cost::Cost;
use crate::response::Usage;

/// The most inputs one request may carry (OpenAI's own limit is 2,048): callers send more in chunks.
pub const MAX_EMBED_INPUTS: usize = 2048;

/// One embeddings request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmbedRequest {
    /// The model (as for chat: `provider/model`, or `ollama/<model>` for the local endpoint).
    pub model: String,
    /// The texts, one vector each.
    pub inputs: Vec<String>,
}

impl EmbedRequest {
    /// A request for `inputs` with `model`.
    pub fn new(model: impl Into<String>, inputs: Vec<String>) -> Self {
        EmbedRequest {
            model: model.into(),
            inputs,
        }
    }

    /// A rough token estimate for rate limits (4 bytes a token, at least one per input).
    pub fn estimated_tokens(&self) -> u64 {
        self.inputs
            .iter()
            .map(|t| (t.len() as u64).div_ceil(4).max(1))
            .sum()
    }
}

/// The vectors of one [`EmbedRequest`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EmbedResponse {
    /// The provider that answered.
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// One vector per input, in the request's order, all of one length.
    pub vectors: Vec<Vec<f32>>,
    /// The tokens billed (as prompt tokens).
    pub usage: Usage,
    /// Their cost.
    pub cost: Cost,
}

impl EmbedResponse {
    /// A response of `vectors` with no usage and an unknown cost.
    pub fn new(provider: impl Into<String>, model: impl Into<String>, vectors: Vec<Vec<f32>>) -> Self {
        EmbedResponse {
            provider: provider.into(),
            model: model.into(),
            vectors,
            usage: Usage::default(),
            cost: Cost::UNKNOWN,
        }
    }

    /// The vectors' length (0 without vectors).
    pub fn dimensions(&self) -> usize {
        self.vectors.first().map_or(0, Vec::len)
    }
}

/// The JSON body of an `/embeddings` request for model id `model`.
pub(crate) fn encode(model: &str, inputs: &[String]) -> Value {
    json!({ "model": model, "input": inputs, "encoding_format": "float" })
}

/// The vectors of an `/embeddings` answer for `expected` inputs, in input order (the `index` of each
/// item, which some servers do not sort), with the prompt tokens billed. Errors are messages: a missing
/// or short `data`, an index out of range or repeated, vectors of different lengths, a non-number or a
/// non-finite number.
pub(crate) fn decode(body: &Value, expected: usize) -> Result<(Vec<Vec<f32>>, Usage), String> {
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the answer has no `data` array")?;
    if data.len() != expected {
        return Err(format!(
            "the answer has {} vectors for {expected} inputs",
            data.len()
        ));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in data.iter().enumerate() {
        let index = match item.get("index") {
            Some(i) => i
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or("an `index` is not a whole number")?,
            None => position,
        };
        let slot = vectors
            .get_mut(index)
            .ok_or_else(|| format!("index {index} is out of range for {expected} inputs"))?;
        if slot.is_some() {
            return Err(format!("index {index} appears twice"));
        }
        let numbers = item.get("embedding").and_then(Value::as_array).ok_or_else(|| {
            format!("vector {index} has no `embedding` array (base64 answers are not read)")
        })?;
        let mut vector = Vec::with_capacity(numbers.len());
        for n in numbers {
            let x = n
                .as_f64()
                .ok_or_else(|| format!("vector {index} holds a non-number"))?;
            #[allow(clippy::cast_possible_truncation)]
            let x = x as f32;
            if !x.is_finite() {
                return Err(format!("vector {index} holds a non-finite number"));
            }
            vector.push(x);
        }
        *slot = Some(vector);
    }
    let vectors: Vec<Vec<f32>> = vectors.into_iter().flatten().collect();
    let dims = vectors.first().map_or(0, Vec::len);
    if dims == 0 {
        return Err("the answer's vectors are empty".into());
    }
    if vectors.iter().any(|v| v.len() != dims) {
        return Err("the answer's vectors differ in length".into());
    }
    let tokens = body
        .pointer("/usage/prompt_tokens")
        .or_else(|| body.pointer("/usage/total_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok((vectors, Usage::new(tokens, 0, 0, 0, 0)))
}

/// The cosine similarity of two vectors (0 when either is all zeros or their lengths differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// A deterministic stand-in embedding of `text` with `dims` dimensions: each lower-cased word (letters
/// and digits) adds 1 at a position chosen by its FNV-1a hash, then the vector is normalised. Texts that
/// share words point the same way, so similarity behaves plausibly without a model: the offline
/// `--provider mock` and the testkit's scripted server use it.
pub fn hashed_embedding(text: &str, dims: usize) -> Vec<f32> {
    let dims = dims.max(1);
    let mut v = vec![0.0f32; dims];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        #[allow(clippy::cast_possible_truncation)]
        let slot = (h % dims as u64) as usize;
        v[slot] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_put_back_in_input_order_and_checked() {
        let body = json!({
            "data": [
                {"index": 1, "embedding": [0.0, 1.0]},
                {"index": 0, "embedding": [1.0, 0.0]}
            ],
            "usage": {"prompt_tokens": 7, "total_tokens": 7}
        });
        let (vectors, usage) = decode(&body, 2).unwrap();
        assert_eq!(vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert_eq!(usage.prompt_tokens(), 7);

        for (bad, why) in [
            (json!({}), "no `data`"),
            (json!({"data": [{"embedding": [1.0]}]}), "1 vectors for 2"),
            (
                json!({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]}),
                "twice",
            ),
            (
                json!({"data": [{"index": 5, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]}),
                "out of range",
            ),
            (
                json!({"data": [{"embedding": [1.0]}, {"embedding": [1.0, 2.0]}]}),
                "differ in length",
            ),
            (
                json!({"data": [{"embedding": "AAAA"}, {"embedding": [1.0]}]}),
                "base64",
            ),
            (
                json!({"data": [{"embedding": [1.0, "x"]}, {"embedding": [1.0, 2.0]}]}),
                "non-number",
            ),
            (
                json!({"data": [{"embedding": [1e300]}, {"embedding": [1.0]}]}),
                "non-finite",
            ),
        ] {
            let err = decode(&bad, 2).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn cosine_of_hashed_embeddings_follows_shared_words() {
        let fruit = hashed_embedding("a red apple", 64);
        let also = hashed_embedding("Apple, red!", 64);
        let other = hashed_embedding("tax return deadline", 64);
        assert!((cosine(&fruit, &fruit) - 1.0).abs() < 1e-6);
        assert!(cosine(&fruit, &also) > 0.8, "{}", cosine(&fruit, &also));
        assert!(cosine(&fruit, &other) < 0.3, "{}", cosine(&fruit, &other));
        assert!(cosine(&[0.0, 0.0], &[1.0, 0.0]).abs() < f64::EPSILON);
        assert!(cosine(&[1.0], &[1.0, 0.0]).abs() < f64::EPSILON);
        assert_eq!(hashed_embedding("", 4), vec![0.0; 4]);
    }

    #[test]
    fn token_estimates_count_every_input() {
        let r = EmbedRequest::new("m", vec![String::new(), "abcdefgh".into()]);
        assert_eq!(r.estimated_tokens(), 3);
    }
}
