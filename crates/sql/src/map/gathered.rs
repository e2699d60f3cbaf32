//! The rows of a distributed statement as jobs and back: a run call as a [`Job`], a worker's session as
//! an answer (with each cell's output from its events), and the budget check made before each job.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rvbbit_core::{EventKind, MicroUsd, SessionStatus, Timestamp, codes};
use rvbbit_store::{EventFilter, Job, SessionSummary, Store};
use serde_json::{Value, json};

use crate::calls::{self, Call, CallKind};
use crate::error::{Error, Result};
use crate::statement::{Answer, Statement};

/// The cascade id of a run call.
pub(super) fn cascade_id(call: &Call) -> Option<&str> {
    match &call.kind {
        CallKind::Run { cascade, .. } => Some(cascade.cascade_id()),
        _ => None,
    }
}

/// Whether a session recorded an outcome of its own (ended, and not merely marked orphaned).
pub(super) fn ended(s: &rvbbit_store::Session) -> bool {
    let orphaned = s
        .error
        .as_deref()
        .is_some_and(|e| e.contains(codes::E_ORPHANED.code));
    !orphaned
        && matches!(
            s.status,
            SessionStatus::Completed | SessionStatus::Failed | SessionStatus::Waiting
        )
}

/// The job of a run call: the cascade's text, the row as input, the statement's caller id.
pub(super) fn job(id: &str, call: &Call, stmt: &Statement) -> Result<Job> {
    let CallKind::Run {
        cascade,
        input,
        model,
    } = &call.kind
    else {
        return Err(Error::Execution {
            message: "only cascade runs can be distributed".into(),
        });
    };
    if model.is_some() {
        return Err(Error::Argument {
            message: "a distributed run cannot name a model yet (MAP option `model`): workers run the \
                      cascade with its own models; drop `model`, or drop `distributed = true`"
                .into(),
        });
    }
    let template = &cascade.template;
    let file = template
        .cascade_file
        .as_ref()
        .and_then(|p| p.file_name())
        .map_or_else(
            || format!("{}.yaml", cascade.cascade_id()),
            |n| n.to_string_lossy().into_owned(),
        );
    let mut metadata = serde_json::Map::new();
    metadata.insert("sql_caller_id".into(), json!(stmt.caller_id.as_str()));
    if let Some(source) = &call.source {
        metadata.insert("source".into(), json!(source.to_string()));
    }
    // Built from JSON so that optional fields the job gains later keep their defaults.
    serde_json::from_value(json!({
        "id": id,
        "cascade_file": file,
        "cascade_text": template.cascade_text.clone().unwrap_or_default(),
        "input": input,
        "metadata": metadata,
        "submitted_at": Timestamp::now().to_rfc3339(),
    }))
    .map_err(|e| Error::Execution {
        message: format!("a distributed row job does not encode: {e}"),
    })
}

/// The statement's budget is spent: the next call, at the average cost of those so far, would pass it
/// (the check a local call makes); the skipped answer.
pub(super) fn over_budget(stmt: &Statement) -> Option<Answer> {
    let budget = *stmt.budget.get()?;
    let spent = stmt.counters.cost_micros.load(Ordering::Relaxed);
    let runs = i64::try_from(stmt.counters.runs.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
    let next = if runs > 0 { spent / runs } else { 0 };
    if spent.saturating_add(next) <= budget {
        return None;
    }
    stmt.counters.skipped.fetch_add(1, Ordering::Relaxed);
    let message = format!(
        "not run: the statement's budget of ${} is spent",
        MicroUsd::from_micros(budget).to_decimal_string()
    );
    Some(Answer::Failed {
        document: json!({"error": message, "status": "skipped"}),
        message,
    })
}

/// Each cell's output in a session, from its `cell_complete` events (the last of a cell, preferring the
/// events outside candidates), parsed when it is JSON text as a local run's are.
/// Nothing (an empty object) unless the session `completed`.
pub(super) async fn cell_outputs(
    store: Arc<dyn Store>,
    session: rvbbit_core::SessionId,
    completed: bool,
) -> Value {
    if !completed {
        return Value::Object(serde_json::Map::new());
    }
    let filter = EventFilter {
        session_id: Some(session.clone()),
        kind: Some(EventKind::CellComplete),
        ..EventFilter::default()
    };
    let mut outputs = serde_json::Map::new();
    match store.events(&filter).await {
        Ok(events) => {
            for e in events.iter().filter(|e| e.event.candidate_index.is_none()) {
                if let Some(cell) = &e.event.cell_name {
                    outputs.insert(cell.clone(), calls::parsed_if_json(&e.event.content));
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, %session, "The cells' outputs of a distributed run are unreadable")
        }
    }
    Value::Object(outputs)
}

/// The answer a worker's session gives: the result document of `rvbbit_run` (`outputs` from its events;
/// `state` is not in the store, so it is empty), or the failure.
pub(super) fn session_answer(s: &SessionSummary, outputs: Value) -> Answer {
    let session = &s.session;
    let completed = session.status == SessionStatus::Completed;
    let doc = json!({
        "outputs": outputs,
        "state": {},
        "status": if completed { "success" } else { "failed" },
        "session_id": session.session_id.as_str(),
        "has_errors": !completed,
        "final_output": session.output.clone().unwrap_or(Value::Null),
        "cost_usd": s.cost.to_decimal_string(),
    });
    if completed {
        return Answer::Ok(doc);
    }
    let message = match (&session.error, session.status) {
        (Some(e), _) => format!("session {}: {e}", session.session_id),
        (None, SessionStatus::Waiting) => format!(
            "session {} is waiting for a human (a HITL cell): answer it with `rvbbit sessions`",
            session.session_id
        ),
        (None, status) => format!("session {} ended {status}", session.session_id),
    };
    let mut doc = doc;
    if let Some(map) = doc.as_object_mut() {
        map.insert("error".into(), Value::String(message.clone()));
    }
    Answer::Failed {
        message,
        document: doc,
    }
}
