//! Embeddings in SQL (SQL interface spec §12.4): `a SIMILAR_TO b` / `semantic_similarity(a, b [, model])`
//! (the cosine similarity of the two texts' embeddings), `rvbbit_embed(text [, model])` (the vector) and
//! `VECTOR_SEARCH('query', 'table', 'column', k)` (`search.rs`: the k rows nearest the query).
//!
//! A statement's texts are embedded once each: the statement's memo, then the persistent result cache
//! (keyed by model and SHA-256 of the text, so a changed text or model misses), then the provider's
//! `/embeddings` endpoint in requests of up to [`CHUNK`] texts, at most the provider's concurrency at
//! once. Each request counts as one call against `rvbbit.max_calls` and is one `embedding` event with
//! its model, tokens and cost; cache hits join the statement's one `cache_hit` event. A text that cannot
//! be embedded (a failed request, a text over `rvbbit.semantic_context_bytes`) is NULL with a notice.

mod search;
mod udf;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use futures::StreamExt;
use rvbbit_core::{Event, EventKind, MicroUsd, SessionId, Timestamp};
use rvbbit_llm::{EmbedRequest, EmbedResponse};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub(crate) use search::rewrite as rewrite_vector_search;
pub(crate) use udf::{EmbedUdf, SimilarityUdf};

use crate::calls;
use crate::error::Error;
use crate::options::RvbbitOptions;
use crate::runtime::Runtime;
use crate::statement::{Estimate, Statement};

/// Texts per `/embeddings` request.
pub(crate) const CHUNK: usize = 256;

/// A text's vector, or why it has none.
pub(crate) type Embedded = Result<Arc<[f32]>, String>;

/// The model a call uses: its own argument, else `rvbbit.embed_model`, else `default_embed_model` of
/// the configuration. Errors: none set (the message names both settings).
pub(crate) fn model(own: Option<&str>, options: &RvbbitOptions, runtime: &Runtime) -> Result<String, Error> {
    own.map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .or_else(|| options.embed_model.clone())
        .or_else(|| runtime.settings.embed_model.clone())
        .ok_or_else(|| Error::Invalid {
            message: "no embedding model is set: name one in the call, `SET rvbbit.embed_model = \
                      'provider/model'`, or set `default_embed_model` in rvbbit.toml"
                .into(),
        })
}

/// The result-cache key of `text` embedded by `model`.
fn cache_key(model: &str, text: &str) -> String {
    format!(
        "embed:v1:{model}:{}",
        hex::encode(Sha256::digest(text.as_bytes()))
    )
}

/// The cached form of a vector: its little-endian `f32`s in base64.
fn encode(vector: &[f32]) -> Value {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    json!({ "dims": vector.len(), "f32le": base64::engine::general_purpose::STANDARD.encode(bytes) })
}

/// A vector from its cached form; `None` for anything malformed (then it is embedded again).
fn decode(value: &Value) -> Option<Arc<[f32]>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.get("f32le")?.as_str()?)
        .ok()?;
    let dims = usize::try_from(value.get("dims")?.as_u64()?).ok()?;
    if bytes.len() != dims * 4 || dims == 0 {
        return None;
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    v.iter().all(|x| x.is_finite()).then(|| Arc::from(v))
}

/// The vector of each distinct text of `texts` embedded by `model`, as described in the module docs.
/// Under `EXPLAIN` nothing is asked: the statement's estimate is filled and every text has no vector.
///
/// Errors: the statement would pass `rvbbit.max_calls`, or no provider is configured.
pub(crate) async fn embed(
    runtime: &Runtime,
    stmt: &Arc<Statement>,
    options: &RvbbitOptions,
    function: &str,
    model: &str,
    texts: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, Embedded>, Error> {
    let mut out: HashMap<String, Embedded> = HashMap::new();
    let mut wanted: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    for text in texts {
        if !seen.insert(text.clone()) {
            continue;
        }
        if text.len() > options.semantic_context_bytes {
            out.insert(
                text.clone(),
                Err(format!(
                    "a text of {} bytes is over rvbbit.semantic_context_bytes ({}) and is not embedded; \
                     raise it with SET rvbbit.semantic_context_bytes = n",
                    text.len(),
                    options.semantic_context_bytes
                )),
            );
            continue;
        }
        let key = cache_key(model, &text);
        match stmt.vector(&key) {
            Some(v) => {
                out.insert(text, Ok(v));
            }
            None => wanted.push((key, text)),
        }
    }
    let missing = from_cache(runtime, stmt, options, wanted, &mut out).await;
    let requests = missing.len().div_ceil(CHUNK);
    if stmt.is_estimating() {
        stmt.estimate(
            function,
            Estimate {
                rows: seen.len() as u64,
                distinct: seen.len() as u64,
                cached: (seen.len() - missing.len()) as u64,
                calls: requests as u64,
                rows_per_call: CHUNK as u64,
                prompt_bytes: missing.iter().map(|(_, t)| t.len() as u64).sum(),
                cascade: None,
                stages: None,
            },
        );
        for (_, text) in missing {
            out.insert(text, Err("not asked under EXPLAIN".into()));
        }
        return Ok(out);
    }
    if missing.is_empty() {
        return Ok(out);
    }
    calls::admit(stmt, requests, options.max_calls)?;
    crate::spending::check(runtime, stmt).await?;
    let provider = runtime.engine.provider().cloned().ok_or_else(|| Error::Invalid {
        message: "embeddings need an LLM provider, and this SQL door has none configured".into(),
    })?;
    let chunks: Vec<Vec<(String, String)>> = missing.chunks(CHUNK).map(<[_]>::to_vec).collect();
    let mut answers = futures::stream::iter(chunks.into_iter().map(|chunk| {
        let provider = provider.clone();
        async move {
            let started = Instant::now();
            let inputs = chunk.iter().map(|(_, t)| t.clone()).collect();
            let reply = provider.embed(&EmbedRequest::new(model, inputs)).await;
            (chunk, reply, started.elapsed())
        }
    }))
    .buffer_unordered(runtime.settings.concurrency.max(1));
    while let Some((chunk, reply, took)) = answers.next().await {
        record(runtime, stmt, model, chunk.len(), &reply, took).await;
        match reply {
            Ok(reply) => {
                let mut fresh = Vec::with_capacity(chunk.len());
                for ((key, text), vector) in chunk.into_iter().zip(reply.vectors) {
                    let vector: Arc<[f32]> = Arc::from(vector);
                    fresh.push((key.clone(), encode(&vector)));
                    stmt.remember_vector(key, vector.clone());
                    out.insert(text, Ok(vector));
                }
                if options.cache
                    && let Some(store) = &runtime.store
                    && let Err(e) = store.cache_put_many(&fresh, Timestamp::now(), None).await
                {
                    stmt.note(&format!("embeddings were not cached: {e}"));
                }
            }
            Err(e) => {
                let message = format!("{} ({})", e, e.code().code);
                stmt.note_error(&format!("{function}: an embeddings request failed: {message}"));
                for (_, text) in chunk {
                    out.insert(text, Err(message.clone()));
                }
            }
        }
    }
    Ok(out)
}

/// Serve what the statement's memo missed from the persistent cache (when `rvbbit.cache` is on);
/// returns the texts still to embed, with their keys.
async fn from_cache(
    runtime: &Runtime,
    stmt: &Arc<Statement>,
    options: &RvbbitOptions,
    wanted: Vec<(String, String)>,
    out: &mut HashMap<String, Embedded>,
) -> Vec<(String, String)> {
    let store = match &runtime.store {
        Some(store) if options.cache && !wanted.is_empty() => store,
        _ => return wanted,
    };
    let keys: Vec<String> = wanted.iter().map(|(k, _)| k.clone()).collect();
    let Ok(found) = store.cache_peek_many(&keys, Timestamp::now()).await else {
        return wanted;
    };
    let mut missing = Vec::new();
    for ((key, text), entry) in wanted.into_iter().zip(found) {
        match entry.as_ref().and_then(|e| decode(&e.value)) {
            Some(vector) => {
                stmt.count_embedding_hit(&key);
                stmt.remember_vector(key, vector.clone());
                out.insert(text, Ok(vector));
            }
            None => missing.push((key, text)),
        }
    }
    missing
}

/// One `embedding` event for a request (its model, inputs, tokens, cost, time, or its error), and the
/// statement's counters.
async fn record(
    runtime: &Runtime,
    stmt: &Statement,
    model: &str,
    inputs: usize,
    reply: &rvbbit_llm::Result<EmbedResponse>,
    took: std::time::Duration,
) {
    stmt.counters
        .llm_calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Some(writer) = &runtime.writer else {
        return;
    };
    let Ok(session) = stmt.caller_id.as_str().parse::<SessionId>() else {
        return;
    };
    let mut event = Event::new(EventKind::Embedding, session, 0);
    event.caller_id = Some(stmt.caller_id.clone());
    event.model = Some(model.to_owned());
    event.model_requested = Some(model.to_owned());
    event.duration_us = Some(i64::try_from(took.as_micros()).unwrap_or(i64::MAX));
    match reply {
        Ok(reply) => {
            event.provider = Some(reply.provider.clone());
            event.tokens.input = i64::try_from(reply.usage.prompt_tokens()).ok();
            event.cost = reply.cost.amount;
            event.cost_status = match reply.cost.status {
                rvbbit_llm::CostStatus::Exact => rvbbit_core::CostStatus::Exact,
                rvbbit_llm::CostStatus::Estimated => rvbbit_core::CostStatus::Estimated,
                _ => rvbbit_core::CostStatus::Unknown,
            };
            let cost = reply.cost.amount.unwrap_or(MicroUsd::ZERO).micros();
            stmt.counters
                .cost_micros
                .fetch_add(cost, std::sync::atomic::Ordering::Relaxed);
            event.metadata = json!({"inputs": inputs, "dimensions": reply.dimensions()});
        }
        Err(e) => {
            stmt.counters
                .errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            event.error = Some(json!({"code": e.code().code, "message": e.to_string()}));
            event.metadata = json!({"inputs": inputs});
        }
    }
    if let Err(e) = writer.event(event).await {
        tracing::warn!(error = %e, "embedding event not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_the_cache_form_and_damage_is_a_miss() {
        let v = [0.25f32, -1.5, 3.0];
        let back = decode(&encode(&v)).unwrap();
        assert_eq!(&*back, &v);
        assert!(decode(&json!({"dims": 4, "f32le": encode(&v)["f32le"]})).is_none());
        assert!(decode(&json!({"dims": 3, "f32le": "not base64!"})).is_none());
        assert!(decode(&json!({"dims": 0, "f32le": ""})).is_none());
        let nan = encode(&[f32::NAN]);
        assert!(decode(&nan).is_none());
    }

    #[test]
    fn keys_change_with_the_model_and_the_text() {
        let a = cache_key("m1", "apple");
        assert_ne!(a, cache_key("m2", "apple"));
        assert_ne!(a, cache_key("m1", "apple "));
        assert!(a.starts_with("embed:v1:m1:"));
    }
}
