//! How rvbbit function calls run: per statement, distinct calls are served from the statement's memo,
//! then from the persistent result cache (one batched store read), and the rest run through the engine
//! concurrently, bounded by the provider's concurrency limit. Every run is a session under the statement's
//! caller id. Cache hits write nothing per hit: the statement counts them (`HitSummary`) and
//! records one `cache_hit` summary event when it ends (count, avoided cost, keys by digest and sample).

mod cache;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rvbbit_core::{MicroUsd, SessionStatus, Timestamp};
use rvbbit_engine::{Outcome, Sampling};
use serde_json::{Value, json};

use crate::cascade::LoadedCascade;
use crate::error::Error;
pub(crate) use crate::keys::cache_key;
use crate::keys::{Canonical, RunKey, UdfKey, run_key, udf_key};
use crate::runtime::Runtime;
pub(crate) use crate::spending::admit;
use crate::statement::{Answer, Statement};
pub(crate) use cache::{AnsweredBy, cache_value, cached_count, lookup, remember};
use cache::{CACHE_LAYOUT, cache_put};

/// One distinct call to make.
#[derive(Debug)]
pub(crate) struct Call {
    /// The cache key (SHA-256 hex).
    pub(crate) key: String,
    /// Read and fill the persistent cache.
    pub(crate) cache: bool,
    /// What to run.
    pub(crate) kind: CallKind,
    /// Where the call came from (a MAP row: `{row_index, column, row_key}`), recorded as `source` in
    /// its run's invocation metadata.
    pub(crate) source: Option<Value>,
    /// Seconds its cache entry stays valid (`sql_function.cache_ttl`); `None`: until evicted.
    pub(crate) ttl: Option<u64>,
}

impl Call {
    /// The cache key and call of `rvbbit_udf(instructions, value, model)`.
    /// The sampling settings (temperature 0 unless overridden, spec §2) are part of the key.
    pub(crate) fn udf(
        runtime: &Runtime,
        instructions: &str,
        value: &str,
        model: Option<&str>,
        sampling: Sampling,
        cache: bool,
    ) -> Call {
        let key = udf_key(&UdfKey {
            cascade: &runtime.udf.hash,
            function: "rvbbit_udf",
            instructions,
            layout: CACHE_LAYOUT,
            max_tokens: sampling.max_tokens,
            model: model.unwrap_or(&runtime.settings.default_model),
            temperature: sampling.temperature,
            value,
        });
        Call {
            key,
            cache,
            kind: CallKind::Udf {
                input: json!({"instructions": instructions, "value": value}),
                model: model.map(str::to_owned),
                sampling,
            },
            source: None,
            ttl: None,
        }
    }

    /// The cache key and call of `rvbbit_run(cascade, inputs)`.
    pub(crate) fn run(
        runtime: &Runtime,
        cascade: Arc<LoadedCascade>,
        input: Value,
        model: Option<&str>,
        cache: bool,
    ) -> Call {
        let effective = model.unwrap_or(&runtime.settings.default_model);
        let key = run_key(&RunKey {
            cascade: &cascade.hash,
            function: "rvbbit_run",
            inputs: Canonical(&input),
            layout: CACHE_LAYOUT,
            model: effective,
        });
        Call {
            key,
            cache,
            kind: CallKind::Run {
                cascade,
                input,
                model: model.map(str::to_owned),
            },
            source: None,
            ttl: None,
        }
    }

    /// A `RVBBIT RUN` / `rvbbit_run_batch` call: `cascade` once over `table` (named `name` for its
    /// `sql_data` cells); `rows_hash` identifies the rows, so identical batches in a statement run once.
    pub(crate) fn batch(
        runtime: &Runtime,
        cascade: Arc<LoadedCascade>,
        input: Value,
        model: Option<&str>,
        (name, table, rows_hash): (String, Arc<dyn datafusion::catalog::TableProvider>, String),
    ) -> Call {
        let key = cache_key(&json!({
            "fn": "rvbbit_run_batch",
            "cascade": cascade.hash,
            "inputs": input,
            "rows": rows_hash,
            "model": model.unwrap_or(&runtime.settings.default_model),
        }));
        Call {
            key,
            cache: false,
            kind: CallKind::Batch {
                cascade,
                input,
                model: model.map(str::to_owned),
                name,
                table,
            },
            source: None,
            ttl: None,
        }
    }

    /// Keep its cache entry `seconds` only.
    pub(crate) fn with_ttl(mut self, seconds: Option<u64>) -> Call {
        self.ttl = seconds;
        self
    }

    /// When its cache entry, written `now` by `stmt`, expires: the statement's `WITH (cache = '1h')`
    /// when it has one, else the call's own lifetime.
    pub(crate) fn expires(&self, stmt: Option<&Statement>, now: Timestamp) -> Option<Timestamp> {
        stmt.and_then(Statement::cache_ttl).or(self.ttl).map(|s| {
            now.add_micros(
                i64::try_from(s)
                    .unwrap_or(i64::MAX / 2_000_000)
                    .saturating_mul(1_000_000),
            )
        })
    }

    /// Record where the call came from.
    pub(crate) fn with_source(mut self, source: Value) -> Call {
        self.source = Some(source);
        self
    }
}

/// What a call runs.
#[derive(Debug)]
pub(crate) enum CallKind {
    /// `rvbbit_udf`: the in-memory one-cell cascade.
    Udf {
        input: Value,
        model: Option<String>,
        sampling: Sampling,
    },
    /// `rvbbit_run`: a cascade file.
    Run {
        cascade: Arc<LoadedCascade>,
        input: Value,
        model: Option<String>,
    },
    /// `RVBBIT RUN` / `rvbbit_run_batch`: a cascade file run once over a table, which its `sql_data`
    /// cells see under `name` (session `batch-…`, never cached).
    Batch {
        cascade: Arc<LoadedCascade>,
        input: Value,
        model: Option<String>,
        name: String,
        table: Arc<dyn datafusion::catalog::TableProvider>,
    },
}

impl CallKind {
    /// The function's place in a `cache_hit` summary (`rvbbit_udf`, `rvbbit_run`, `rvbbit_run_batch`).
    pub(crate) fn function(&self) -> usize {
        match self {
            CallKind::Udf { .. } => 0,
            CallKind::Run { .. } => 1,
            CallKind::Batch { .. } => 2,
        }
    }
}

/// Answer distinct `calls` (in order): memo, then the persistent cache, then concurrent runs.
///
/// # Errors
/// [`Error::SpendLimit`] when runs are needed and a spending limit is used up ([`crate::spending::check`]).
pub(crate) async fn answer(
    runtime: &Runtime,
    stmt: &Arc<Statement>,
    calls: Vec<Call>,
) -> Result<Vec<Answer>, Error> {
    let known = lookup(runtime, stmt, &calls).await;
    if known.iter().any(Option::is_none) {
        let started = Instant::now();
        crate::spending::check(runtime, stmt).await?;
        tracing::debug!(
            target: "rvbbit::timings",
            ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
            "Spending limits checked"
        );
    }
    Ok(run(runtime, stmt, &calls, known).await)
}

/// [`answer`], refusing to start more runs than `max_calls` (`rvbbit.max_calls`) for the whole
/// statement: the runs the memo and the cache do not answer are counted first, and over the limit
/// nothing runs and the statement fails with a limit error.
pub(crate) async fn answer_within(
    runtime: &Runtime,
    stmt: &Arc<Statement>,
    calls: Vec<Call>,
    max_calls: u64,
) -> Result<Vec<Answer>, Error> {
    let known = lookup(runtime, stmt, &calls).await;
    let to_run = known.iter().filter(|a| a.is_none()).count();
    admit(stmt, to_run, max_calls)?;
    if to_run > 0 {
        crate::spending::check(runtime, stmt).await?;
    }
    Ok(run(runtime, stmt, &calls, known).await)
}

/// Run the `calls` that `known` has no answer for, concurrently, and answer all of them in order.
pub(crate) async fn run(
    runtime: &Runtime,
    stmt: &Arc<Statement>,
    calls: &[Call],
    mut known: Vec<Option<Answer>>,
) -> Vec<Answer> {
    let cells = stmt.cells(calls.iter().map(|c| c.key.as_str()));
    let open: Vec<usize> = (0..calls.len()).filter(|&i| known[i].is_none()).collect();
    let futures = open.iter().map(|&i| {
        let (call, cell) = (&calls[i], &cells[i]);
        async move { cell.get_or_init(|| execute(runtime, stmt, call)).await.clone() }
    });
    let ran = futures::future::join_all(futures).await;
    for (i, answer) in open.into_iter().zip(ran) {
        known[i] = Some(answer);
    }
    known
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                let message = "a call of the batch got no answer; this is a bug".to_owned();
                Answer::Failed {
                    document: json!({"error": message, "status": "failed"}),
                    message,
                }
            })
        })
        .collect()
}

/// Run one call through the engine; successes go to the persistent cache.
async fn execute(runtime: &Runtime, stmt: &Statement, call: &Call) -> Answer {
    let (loaded, input, model, prefix) = match &call.kind {
        CallKind::Udf { input, model, .. } => (&runtime.udf, input, model, "udf"),
        CallKind::Run {
            cascade,
            input,
            model,
        } => (cascade, input, model, "udf"),
        CallKind::Batch {
            cascade,
            input,
            model,
            ..
        } => (cascade, input, model, "batch"),
    };
    let mut request = loaded.template.clone();
    request.input = input.clone();
    request.caller_id = stmt.caller_id.clone();
    request.model = model.clone();
    if let CallKind::Udf { sampling, .. } = &call.kind {
        request.sampling = *sampling;
    }
    request.cancel = stmt.cancel.child_token();
    request.metadata = stmt.metadata.clone();
    if let (Some(source), Some(m)) = (&call.source, request.metadata.as_object_mut()) {
        m.insert("source".into(), source.clone());
    }
    // Spec §2/§3/§5: SQL function sessions are `udf-<woodland>`, batch runs `batch-<woodland>`.
    request.session_id = format!("{prefix}-{}", rvbbit_core::woodland_name()).parse().ok();
    // A batch run's table, visible to its `sql_data` cells while it runs.
    let _table = match (&call.kind, &request.session_id) {
        (CallKind::Batch { name, table, .. }, Some(id)) => {
            Some(runtime.batch_tables.share(id, name, table.clone()))
        }
        _ => None,
    };
    let started = Instant::now();
    // Only the run holds a permit (waiting duplicates and the cache write do not); the semaphore is
    // never closed, so `acquire` cannot fail.
    let local = match stmt.parallel.get() {
        Some(p) => p.acquire().await.ok(),
        None => None,
    };
    let permit = runtime.permits.acquire().await.ok();
    // Stop when the next call, at the average cost of the calls so far, would pass the budget.
    let spent = stmt.counters.cost_micros.load(Ordering::Relaxed);
    let runs = i64::try_from(stmt.counters.runs.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
    let next = if runs > 0 { spent / runs } else { 0 };
    if let Some(&budget) = stmt.budget.get()
        && spent.saturating_add(next) > budget
    {
        stmt.counters.skipped.fetch_add(1, Ordering::Relaxed);
        let message = format!(
            "not run: the statement's budget of ${} is spent",
            MicroUsd::from_micros(budget).to_decimal_string()
        );
        return Answer::Failed {
            document: json!({"error": message, "status": "skipped"}),
            message,
        };
    }
    // The run is its own task: when the statement is abandoned mid-way, its token cancels the run,
    // which still records its `cancelled` status instead of vanishing as `running`.
    let engine = runtime.engine.clone();
    let parent = stmt.parent.clone();
    let task = runtime.tasks.spawn(async move {
        match parent {
            // Inside a cascade (`sql_data`): a child of the calling run.
            Some(parent) => parent.run(request, "sql_data").await.map_err(|e| e.to_string()),
            None => Ok(engine.run(request).await),
        }
    });
    let outcome = match task.await.map_err(|e| e.to_string()).and_then(|r| r) {
        Ok(outcome) => outcome,
        Err(e) => {
            drop(permit);
            drop(local);
            let message = format!("the cascade run stopped unexpectedly: {e}");
            stmt.note_error(&message);
            return Answer::Failed {
                document: json!({"error": message, "status": "failed"}),
                message,
            };
        }
    };
    drop(permit);
    drop(local);
    stmt.counters.runs.fetch_add(1, Ordering::Relaxed);
    stmt.counters
        .llm_calls
        .fetch_add(u64::from(outcome.llm_calls), Ordering::Relaxed);
    stmt.counters
        .cost_micros
        .fetch_add(outcome.cost.micros(), Ordering::Relaxed);
    tracing::debug!(session = %outcome.session_id, ms = started.elapsed().as_millis(), "SQL call ran");
    let answer = match &call.kind {
        CallKind::Udf { .. } => udf_answer(&outcome),
        CallKind::Run { .. } | CallKind::Batch { .. } => run_answer(&outcome),
    };
    match &answer {
        Answer::Ok(value) if call.cache => cache_put(runtime, stmt, call, value, &outcome).await,
        Answer::Ok(_) => {}
        Answer::Failed { message, .. } => stmt.note_error(message),
    }
    answer
}

fn failure_message(outcome: &Outcome) -> String {
    match &outcome.error {
        Some(e) => format!("[{}] {e}", e.code().code),
        None => format!("the run ended {}", outcome.status),
    }
}

fn udf_answer(outcome: &Outcome) -> Answer {
    if outcome.status != SessionStatus::Completed {
        let message = failure_message(outcome);
        return Answer::Failed {
            document: json!({"error": message, "status": "failed", "session_id": outcome.session_id.as_str()}),
            message,
        };
    }
    let text = match &outcome.output {
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    Answer::Ok(Value::String(text))
}

fn run_answer(outcome: &Outcome) -> Answer {
    let completed = outcome.status == SessionStatus::Completed;
    // A cell that answered with JSON text (an LLM told to "return only JSON") is data: its value is
    // the parsed JSON, so `json_extract_string(doc, '$.outputs.cell.field')` reaches into it.
    let outputs: serde_json::Map<String, Value> = outcome
        .outputs
        .iter()
        .map(|(cell, output)| (cell.clone(), parsed_if_json(output)))
        .collect();
    // Built field by field: `json!` would copy the outputs through a serializer.
    let mut doc = serde_json::Map::with_capacity(8);
    doc.insert("outputs".into(), Value::Object(outputs));
    doc.insert("state".into(), Value::Object(outcome.state.clone()));
    doc.insert(
        "status".into(),
        Value::from(if completed { "success" } else { "failed" }),
    );
    doc.insert("session_id".into(), Value::from(outcome.session_id.as_str()));
    doc.insert("has_errors".into(), Value::Bool(!completed));
    doc.insert("final_output".into(), outcome.output.clone());
    doc.insert("cost_usd".into(), Value::from(outcome.cost.to_decimal_string()));
    if completed {
        return Answer::Ok(Value::Object(doc));
    }
    let message = failure_message(outcome);
    doc.insert("error".into(), Value::String(message.clone()));
    Answer::Failed {
        message,
        document: Value::Object(doc),
    }
}

/// `output` parsed when it is text holding one JSON object or array (surrounding white space allowed),
/// else unchanged.
pub(crate) fn parsed_if_json(output: &Value) -> Value {
    if let Value::String(text) = output {
        let t = text.trim();
        if ((t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']')))
            && let Ok(v) = serde_json::from_str::<Value>(t)
        {
            return v;
        }
    }
    output.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    use crate::statement::{HIT_KEY_SAMPLE, HitSummary};

    #[test]
    fn a_hit_summary_names_keys_by_reference() {
        let call = |key: &str| Call {
            key: key.to_owned(),
            cache: true,
            kind: CallKind::Udf {
                input: Value::Null,
                model: None,
                sampling: Sampling::default(),
            },
            source: None,
            ttl: None,
        };
        let mut summary = HitSummary::default();
        for i in 0..100 {
            let hit = call(&format!("k{i}"));
            summary.add(hit.kind.function(), &hit.key);
        }
        let meta = summary.metadata(1234);
        assert_eq!(meta["count"], 100);
        assert_eq!(meta["avoided_cost_micro_usd"], 1234);
        assert_eq!(meta["functions"], json!({"rvbbit_udf": 100}));
        assert_eq!(
            meta["keys"]["sample"].as_array().map(Vec::len),
            Some(HIT_KEY_SAMPLE)
        );
        let mut expected = Sha256::new();
        for i in 0..100 {
            expected.update(format!("k{i}\n").as_bytes());
        }
        assert_eq!(meta["keys"]["sha256"], hex::encode(expected.finalize()));
    }
}
