//! `await_signal` and `fire_signal` (OBSERVABILITY.md §8, its "Proposed" behaviour): named wake-ups
//! between sessions, through the store's signals, so a signal fired by another process (`rvbbit signal
//! send`, another run's `fire_signal`) reaches the waiter.
//!
//! `await_signal` registers a *waiting* signal of the calling session first, then reads the store until
//! it is fired, the wait's timeout passes or the run is cancelled, and returns an explicit status:
//! `{"status": "fired", "payload": …, "_route": "fired"}`, `{"status": "timeout", …, "_route":
//! "timeout"}` or `{"status": "cancelled", …}`. Because the row exists before anyone fires, a fire that
//! comes while the waiter is between reads is never lost. Firing is the store's compare-and-set
//! (`waiting` → `fired`), so each waiting signal is fired exactly once; a timed-out wait cancels its
//! row, so a late fire does not land on it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rvbbit_core::{SessionId, Timestamp};
use rvbbit_store::{Signal, SignalStatus, Store};
use serde_json::{Value, json};

use super::{SideEffect, Tool, ToolContext, ToolError};

/// The longest wait `await_signal` takes (`timeout` above it is refused).
const MAX_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// The default wait, as LARS's.
const DEFAULT_WAIT: &str = "1h";

/// The longest signal name.
const MAX_NAME: usize = 200;

/// How often a wait reads the store.
const POLL: Duration = Duration::from_millis(500);

/// The store of the calling run, or the error that says signals need one.
fn store_of(ctx: &ToolContext, tool: &str) -> Result<Arc<dyn Store>, ToolError> {
    ctx.child_runs()
        .and_then(|runs| runs.engine().store().cloned())
        .ok_or_else(|| {
            ToolError::Failed(format!(
                "`{tool}` needs a store to keep signals in: run it with `rvbbit run` (the project's \
                 `.rvbbit` store, or `store.url`)"
            ))
        })
}

/// The signal's name: `signal_name` (LARS's) or `name`, 1–200 characters of letters, digits, `_`, `-`,
/// `.` and `:`.
fn signal_name(args: &Value) -> Result<String, ToolError> {
    let name = args
        .get("signal_name")
        .or_else(|| args.get("name"))
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ToolError::InvalidArguments(format!(
            "`signal_name` must be 1-{MAX_NAME} characters of letters, digits, `_`, `-`, `.` and `:` (got {:?})",
            name.chars().take(60).collect::<String>()
        )))
    }
}

/// The wait's `timeout` (`30s`, `5m`, `4h`, `1d` or seconds), at most [`MAX_WAIT`].
fn wait_of(args: &Value) -> Result<Duration, ToolError> {
    let seconds = match args.get("timeout") {
        None | Some(Value::Null) => rvbbit_cascade::model::parse_duration(DEFAULT_WAIT),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => rvbbit_cascade::model::parse_duration(s.trim()),
        Some(_) => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s >= 0.0 && s <= MAX_WAIT.as_secs_f64() => Ok(Duration::from_secs_f64(s)),
        _ => Err(ToolError::InvalidArguments(format!(
            "`timeout` must be a duration such as \"30s\", \"5m\", \"4h\" or \"1d\", at most {} days",
            MAX_WAIT.as_secs() / 86_400
        ))),
    }
}

/// `await_signal(signal_name, timeout="1h", description?)`.
#[derive(Debug)]
pub struct AwaitSignal;

#[async_trait]
impl Tool for AwaitSignal {
    fn name(&self) -> &str {
        "await_signal"
    }

    fn description(&self) -> &str {
        "Wait until another process or session fires the named signal (or the timeout passes); returns its payload."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "signal_name": {"type": "string", "description": "The signal to wait for."},
                "timeout": {"type": "string", "description": "How long to wait: 30s, 5m, 4h, 1d (default 1h)."},
                "description": {"type": "string", "description": "What the wait is for (shown with the signal)."}
            },
            "required": ["signal_name"]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }

    fn default_timeout(&self) -> Option<Duration> {
        None
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let name = signal_name(&args)?;
        // A cell's own `timeout` shortens the wait (the wait then ends as `timeout`, routed).
        let wait = match ctx.timeout {
            Some(cell) => wait_of(&args)?.min(cell),
            None => wait_of(&args)?,
        };
        let store = store_of(ctx, "await_signal")?;
        let failed = |e: rvbbit_store::Error| ToolError::Failed(format!("signal `{name}`: {e}"));
        let mut signal = Signal::waiting(name.clone(), Some(ctx.session_id.clone()));
        signal.timeout_at =
            Some(Timestamp::from_micros(Timestamp::now().micros().saturating_add(
                i64::try_from(wait.as_micros()).unwrap_or(i64::MAX),
            )));
        store.signal_register(&signal).await.map_err(failed)?;
        let cancel = ctx.child_runs().map(|runs| runs.cancel_token());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(found) = mine(&*store, &name, &signal.signal_id).await.map_err(failed)? {
                match found.status {
                    SignalStatus::Fired => {
                        return Ok(json!({
                            "status": "fired",
                            "signal_name": name,
                            "payload": found.payload.unwrap_or(Value::Null),
                            "source": found.source,
                            "_route": "fired",
                        }));
                    }
                    SignalStatus::Waiting => {}
                    _ => {
                        return Ok(ended(
                            &name,
                            "cancelled",
                            "the signal was cancelled while waiting",
                        ));
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return give_up(&*store, &name, &signal.signal_id, &ctx.session_id, wait).await;
            }
            let pause = tokio::time::sleep(POLL.min(deadline - now));
            match &cancel {
                Some(token) => tokio::select! {
                    () = pause => {}
                    () = token.cancelled() => {
                        // The run is cancelled: withdraw the waiting row, so nobody fires into a dead wait.
                        let _withdrawn = store.signal_cancel(&signal.signal_id).await;
                        return Err(ToolError::Failed(format!("the wait for signal `{name}` was cancelled with its run")));
                    }
                },
                None => pause.await,
            }
        }
    }
}

/// This wait's signal as the store has it now.
async fn mine(store: &dyn Store, name: &str, id: &str) -> rvbbit_store::Result<Option<Signal>> {
    Ok(store
        .signals(Some(name))
        .await?
        .into_iter()
        .find(|s| s.signal_id == id))
}

/// The wait timed out: withdraw the row (a fire that wins the race first still counts).
async fn give_up(
    store: &dyn Store,
    name: &str,
    id: &str,
    session: &SessionId,
    wait: Duration,
) -> Result<Value, ToolError> {
    if let Ok(Some(found)) = mine(store, name, id).await
        && found.status == SignalStatus::Fired
    {
        return Ok(
            json!({"status": "fired", "signal_name": name, "payload": found.payload.unwrap_or(Value::Null), "source": found.source, "_route": "fired"}),
        );
    }
    // Best effort: a row left waiting past its timeout_at is ignored by answers anyway.
    let _withdrawn = store.signal_cancel(id).await;
    Ok(ended(
        name,
        "timeout",
        &format!(
            "no one fired `{name}` for session {} within {}",
            session.as_str(),
            crate::error::humanize(wait)
        ),
    ))
}

fn ended(name: &str, status: &str, error: &str) -> Value {
    json!({"status": status, "signal_name": name, "payload": null, "error": error, "_route": status})
}

/// `fire_signal(signal_name, payload?, session_id?)`.
#[derive(Debug)]
pub struct FireSignal;

#[async_trait]
impl Tool for FireSignal {
    fn name(&self) -> &str {
        "fire_signal"
    }

    fn description(&self) -> &str {
        "Fire the named signal: every session waiting for it (or only `session_id`) continues with the payload."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "signal_name": {"type": "string", "description": "The signal to fire."},
                "payload": {"description": "What the waiters receive (any JSON)."},
                "session_id": {"type": "string", "description": "Only this session's wait."}
            },
            "required": ["signal_name"]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let name = signal_name(&args)?;
        let store = store_of(ctx, "fire_signal")?;
        let payload = match args.get("payload") {
            // Templates render to strings: a payload that is JSON text is sent as JSON.
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        let session = match args
            .get("session_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(id) => Some(id.parse::<SessionId>().map_err(|e| {
                ToolError::InvalidArguments(format!("`session_id` is not a session id: {e}"))
            })?),
            None => None,
        };
        let fired = store
            .signal_fire(
                &name,
                &payload,
                ctx.session_id.as_str(),
                session.as_ref(),
                Timestamp::now(),
            )
            .await
            .map_err(|e| ToolError::Failed(format!("signal `{name}`: {e}")))?;
        let sessions: Vec<&str> = fired
            .iter()
            .filter_map(|s| s.session_id.as_ref().map(SessionId::as_str))
            .collect();
        Ok(json!({
            "signal_name": name,
            "fired": fired.len(),
            "sessions": sessions,
            "_route": if fired.is_empty() { "no_waiters" } else { "success" },
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{signal_name, wait_of};

    #[test]
    fn names_and_timeouts_are_checked_before_anything_waits() {
        assert_eq!(
            signal_name(&json!({"signal_name": "source_data_ready"})).unwrap(),
            "source_data_ready"
        );
        assert_eq!(signal_name(&json!({"name": "a:b.c-d"})).unwrap(), "a:b.c-d");
        assert!(signal_name(&json!({"signal_name": ""})).is_err());
        assert!(signal_name(&json!({"signal_name": "a b"})).is_err());
        assert!(signal_name(&json!({"signal_name": "x".repeat(201)})).is_err());
        assert_eq!(wait_of(&json!({})).unwrap().as_secs(), 3600);
        assert_eq!(wait_of(&json!({"timeout": "4h"})).unwrap().as_secs(), 4 * 3600);
        assert_eq!(wait_of(&json!({"timeout": 2})).unwrap().as_secs(), 2);
        assert!(wait_of(&json!({"timeout": "31d"})).is_err());
        assert!(wait_of(&json!({"timeout": "soon"})).is_err());
        assert!(wait_of(&json!({"timeout": -1})).is_err());
    }
}
