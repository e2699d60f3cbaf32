//! Humans in the loop (§8.3, §8.4): a cell's `human_input`, screen cells (`htmx`/`hitl`) and the
//! `ask_human` tool of LLM cells. Each wait goes through [`wait`]: it records the signal, the checkpoint
//! (with the continuation) and the events, marks the session `waiting`, then asks the engine's
//! [`crate::human::Human`]; no answer suspends the run ([`Error::Waiting`]).

use std::sync::Arc;
use std::time::Duration;

use rvbbit_cascade::model::{Cell, HumanInput, HumanInputSpec};
use rvbbit_core::{EventKind, SessionStatus, Timestamp};
use rvbbit_store::{Checkpoint, CheckpointStatus, Signal, Store};
use serde_json::{Value, json};

use crate::checkpoint::Stage;
use crate::error::{Error, Result};
use crate::human::{Answer, Choice, Question, QuestionKind};
use crate::run::{CellResult, Run};

/// How long a screen waits when the cell sets no `timeout` (§8.4).
const SCREEN_TIMEOUT: Duration = Duration::from_secs(3600);

/// Step 1 of the cell pipeline: the stage a resumed wait at `cell` stopped in (`None`: the cell runs
/// from its start), with the `ask_human` answers to replay set up for the cell.
pub(crate) fn enter(run: &mut Run<'_>, cell: &Cell) -> Option<Stage> {
    let stage = run
        .hitl
        .resume
        .as_ref()
        .filter(|r| r.checkpoint.cell_name == cell.name)
        .map(|r| r.continuation.stage.clone());
    run.hitl.ask_index = 0;
    run.hitl.asked = match &stage {
        Some(Stage::AskHuman { answers }) => answers.clone(),
        _ => Vec::new(),
    };
    stage
}

/// §8.3: ask the human after the cell's output is final; the answer goes to `state["human_<cell>"]`.
pub(crate) async fn after_cell(run: &mut Run<'_>, cell: &Cell, result: CellResult) -> Result<CellResult> {
    let spec = match &cell.human_input {
        None | Some(HumanInput::Enabled(false)) => return Ok(result),
        Some(HumanInput::Enabled(true)) => HumanInputSpec::default(),
        Some(HumanInput::Spec(s)) => (**s).clone(),
    };
    let mut vars = run.template_ctx();
    vars["output"] = result.output.clone();
    if let Some(cond) = &spec.condition {
        let text = render(run, cell, cond, &vars, "human_input.condition").await?;
        if matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "0" | "no" | "none"
        ) {
            return Ok(result);
        }
    }
    // The type by its YAML name (the model's enum is not exported by the cascade crate).
    let type_name = serde_json::to_value(spec.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "confirmation".into());
    let kind = match type_name.as_str() {
        "confirmation" => QuestionKind::Confirmation,
        "choice" => QuestionKind::Choice,
        "rating" => QuestionKind::Rating,
        "text" => QuestionKind::Text,
        other => {
            return Err(Error::Unsupported {
                cell: cell.name.clone(),
                feature: format!(
                    "human_input type `{other}` (supported: confirmation, choice, rating, text)"
                ),
            });
        }
    };
    let prompt = match &spec.prompt {
        Some(p) => render(run, cell, p, &vars, "human_input.prompt").await?,
        None => match kind {
            QuestionKind::Confirmation => format!("Approve the output of `{}`?", cell.name),
            QuestionKind::Choice => format!("Choose how `{}` goes on:", cell.name),
            QuestionKind::Rating => format!("Rate the output of `{}`:", cell.name),
            _ => format!("Your input on the output of `{}`:", cell.name),
        },
    };
    let options = spec.options.iter().flatten().map(choice).collect::<Vec<_>>();
    if kind == QuestionKind::Choice && options.is_empty() {
        return Err(Error::CellFailed {
            cell: cell.name.clone(),
            message: "human_input of type `choice` has no `options`".into(),
        });
    }
    let mut question = question(
        run,
        cell,
        kind,
        prompt,
        spec.timeout_seconds.map(Duration::from_secs),
    );
    question.options = options;
    question.max_rating = spec.max_rating;
    question.hint = spec.hint.clone();
    question.output = Some(result.output.clone());
    let stage = Stage::HumanInput {
        output: result.output.clone(),
        route: result.route.clone(),
    };
    let key = format!("human_{}", cell.name);
    let answer = match wait(run, cell, question, stage).await? {
        Some(a) => a,
        None => match spec.on_timeout.as_deref().unwrap_or("abort") {
            "continue" => {
                run.set_state(&key, Value::Null);
                return Ok(result);
            }
            "default" => spec.default_value.clone().unwrap_or(Value::Null),
            other => {
                return Err(Error::CellFailed {
                    cell: cell.name.clone(),
                    message: format!(
                        "no human answered within {}s (on_timeout: {other})",
                        spec.timeout_seconds.unwrap_or(0)
                    ),
                });
            }
        },
    };
    run.set_state(&key, answer.clone());
    let mut route = result.route;
    match kind {
        QuestionKind::Confirmation
            if answer.get("confirmed") == Some(&Value::Bool(false)) && cell.handoff_targets().is_empty() =>
        {
            return Err(Error::CellFailed {
                cell: cell.name.clone(),
                message: "the human rejected its output (human_input confirmation), which stops the cascade"
                    .into(),
            });
        }
        QuestionKind::Choice => {
            // A chosen value naming a handoff target routes there.
            if let Some(target) = answer.get("selected").and_then(Value::as_str)
                && cell.handoff_targets().contains(&target)
            {
                route = Some(target.to_owned());
            }
        }
        _ => {}
    }
    Ok(CellResult {
        output: result.output,
        route,
    })
}

/// §8.4: a screen cell. Its HTML is rendered and shown; the submitted form becomes the output and
/// `state[<cell>]`; its `_route` field picks the next cell.
pub(crate) async fn screen(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    let mut vars = run.template_ctx();
    vars["session_id"] = json!(run.session_id.as_str());
    let html = render(run, cell, cell.htmx.as_deref().unwrap_or(""), &vars, "htmx").await?;
    if cell.await_input == Some(false) {
        return Ok(CellResult {
            output: json!({"html": html}),
            route: None,
        });
    }
    let title = match &cell.hitl_title {
        Some(t) => render(run, cell, t, &vars, "hitl_title").await?,
        None => format!("Screen `{}`", cell.name),
    };
    let timeout = cell
        .timeout
        .as_ref()
        .and_then(|t| t.as_seconds())
        .map_or(SCREEN_TIMEOUT, Duration::from_secs_f64);
    let mut question = question(run, cell, QuestionKind::Screen, title, Some(timeout));
    question.hint = match &cell.hitl_description {
        Some(d) => Some(render(run, cell, d, &vars, "hitl_description").await?),
        None => None,
    };
    question.html = Some(html);
    question.handoffs = cell.handoff_targets().iter().map(|t| (*t).to_owned()).collect();
    let Some(form) = wait(run, cell, question, Stage::Screen).await? else {
        return Ok(CellResult {
            output: json!({"error": format!("no response within {}s", timeout.as_secs()), "_timeout": true}),
            route: None,
        });
    };
    run.set_state(&cell.name, form.clone());
    let route = form.get("_route").and_then(Value::as_str).map(str::to_owned);
    Ok(CellResult { output: form, route })
}

/// The `ask_human` tool of an LLM cell: the answer (text) is the tool result and `state[<cell>]`.
pub(crate) async fn ask_human(run: &mut Run<'_>, cell: &Cell, args: &Value) -> Result<String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let prompt = ["question", "prompt", "message"]
        .iter()
        .find_map(|k| args.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
        .unwrap_or_else(|| text(args));
    let mut question = question(run, cell, QuestionKind::FreeText, prompt, None);
    question.hint = args.get("context").and_then(Value::as_str).map(str::to_owned);
    match ask(run, cell, question).await? {
        Some(answer) => Ok(text(&answer)),
        None => Ok("Error: no human answered in time".into()),
    }
}

/// A human tool's question (`ask_human`, `request_decision`, `ask_human_custom`), asked from an LLM
/// cell's tool call or a deterministic cell: the normalized answer, also `state[<cell>]`; `None` when
/// the question's deadline passed. A resumed cell runs again from its start, so the answers its
/// earlier calls got are replayed, in order, before anything waits.
pub(crate) async fn ask(run: &mut Run<'_>, cell: &Cell, question: Question) -> Result<Option<Value>> {
    let index = run.hitl.ask_index;
    run.hitl.ask_index += 1;
    if let Some(answer) = run.hitl.asked.get(index).cloned() {
        run.set_state(&cell.name, answer.clone());
        return Ok(Some(answer));
    }
    let stage = Stage::AskHuman {
        answers: run.hitl.asked.clone(),
    };
    let answer = wait(run, cell, question, stage).await?;
    if let Some(answer) = &answer {
        run.hitl.asked.push(answer.clone());
        run.set_state(&cell.name, answer.clone());
    }
    Ok(answer)
}

/// A question of `cell`, answered by the signal named after the cell.
pub(crate) fn question(
    run: &Run<'_>,
    cell: &Cell,
    kind: QuestionKind,
    prompt: String,
    timeout: Option<Duration>,
) -> Question {
    Question {
        session_id: run.session_id.clone(),
        cell: cell.name.clone(),
        signal: cell.name.clone(),
        signal_id: None,
        kind,
        prompt,
        options: Vec::new(),
        max_rating: None,
        hint: None,
        output: None,
        html: None,
        handoffs: Vec::new(),
        fields: Vec::new(),
        ui: None,
        timeout_at: timeout.map(|t| {
            Timestamp::from_micros(
                Timestamp::now()
                    .micros()
                    .saturating_add(i64::try_from(t.as_micros()).unwrap_or(i64::MAX)),
            )
        }),
    }
}

pub(crate) fn choice(v: &Value) -> Choice {
    match v {
        Value::Object(m) => {
            let value = m
                .get("value")
                .or_else(|| m.get("label"))
                .cloned()
                .unwrap_or(Value::Null);
            let label = m
                .get("label")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.as_str().map_or_else(|| value.to_string(), str::to_owned));
            Choice { label, value }
        }
        Value::String(s) => Choice {
            label: s.clone(),
            value: v.clone(),
        },
        other => Choice {
            label: other.to_string(),
            value: other.clone(),
        },
    }
}

async fn render(run: &Run<'_>, cell: &Cell, source: &str, vars: &Value, place: &str) -> Result<String> {
    run.templates
        .render(source, vars)
        .await
        .map_err(|e| e.into_cell_error(&cell.name, place))
}

/// Wait for the answer to `question`: reuse the checkpoint of a resumed wait at this cell, or record a
/// new one (signal, checkpoint with the continuation at `stage`, `checkpoint_created`, session
/// `waiting`); then take an answer given with the resume, one already fired in the store, or one from
/// the engine's human. Returns the normalized answer, `None` when the question's deadline passed, or
/// [`Error::Waiting`] when nobody answered (yet).
async fn wait(run: &mut Run<'_>, cell: &Cell, question: Question, stage: Stage) -> Result<Option<Value>> {
    let store = run.engine.store.clone();
    run.hitl.waited = true;
    let resumed = match run.hitl.resume.take() {
        Some(r) if r.checkpoint.cell_name == cell.name => Some(r),
        other => {
            run.hitl.resume = other;
            None
        }
    };
    let fresh = resumed.is_none();
    let mut recorded = false;
    let mut signal = None;
    let (mut cp, question, mut answer) = match resumed {
        Some(r) => {
            let q = Question::from_ui_spec(&r.checkpoint.ui_spec).unwrap_or(question);
            (r.checkpoint, q, r.answer)
        }
        None => {
            let mut question = question;
            let mut waiting = Signal::waiting(question.signal.clone(), Some(run.session_id.clone()));
            waiting.timeout_at = question.timeout_at;
            // Each visit of the cell asks anew: only the answer to this visit's signal counts.
            question.signal_id = Some(waiting.signal_id.clone());
            let mut cp = Checkpoint::pending(
                run.session_id.clone(),
                cell.name.clone(),
                question.kind.checkpoint_type(),
                question.signal.clone(),
            );
            cp.cascade_id = Some(run.emit.cascade_id().to_owned());
            cp.signal_id = Some(waiting.signal_id.clone());
            signal = Some(waiting);
            cp.ui_spec = serde_json::to_value(&question).unwrap_or(Value::Null);
            cp.timeout_at = question.timeout_at;
            (cp, question, None)
        }
    };
    if fresh {
        recorded = record(run, cell, &mut cp, signal.as_ref(), &stage, &store).await?;
    }

    // An answer: given with the resume, already in the store, or from the engine's human.
    if answer.is_none()
        && let Some(s) = &store
    {
        answer = crate::human::StoreAnswers::new(s.clone(), Duration::ZERO, Some(Duration::ZERO))
            .fired(&question)
            .await?;
    }
    let fired = answer.is_some();
    if answer.is_none() {
        let human = run.engine.human.clone();
        answer = human.answer(&question).await;
    }
    let Some(Answer { value, source }) = answer else {
        let deadline_passed = question.timeout_at.is_some_and(|t| t <= Timestamp::now());
        if !deadline_passed {
            if !fresh && let Some(s) = &store {
                // Waiting again after a resume: the next resume numbers its events on from here.
                cp.continuation = serde_json::to_value(run.continuation(stage)).unwrap_or(Value::Null);
                s.checkpoint_put(&cp).await?;
            }
            return Err(Error::Waiting {
                cell: cell.name.clone(),
                signal: cp.signal_name.clone(),
                session_id: run.session_id.clone(),
            });
        }
        cp.status = CheckpointStatus::Timeout;
        if let Some(s) = &store {
            s.checkpoint_put(&cp).await?;
        }
        resolved(run, cell, &cp, "timeout", Value::Null).await;
        return Ok(None);
    };
    let normalized = question.normalize(&value).map_err(|message| Error::Answer {
        cell: cell.name.clone(),
        message,
    })?;
    if recorded && let Some(s) = &store {
        claim(s.as_ref(), run, cell, &cp).await?;
    }
    if let Some(s) = &store {
        if !fired {
            // Latch the answer on the signal, so the store shows who answered.
            s.signal_fire(
                &cp.signal_name,
                &value,
                &source,
                Some(&run.session_id),
                Timestamp::now(),
            )
            .await?;
        }
        cp.status = CheckpointStatus::Responded;
        cp.response = Some(normalized.clone());
        cp.responded_at = Some(Timestamp::now());
        s.checkpoint_put(&cp).await?;
    }
    resolved(run, cell, &cp, &source, normalized.clone()).await;
    Ok(Some(normalized))
}

/// Record a fresh wait before anything can suspend the run: the checkpoint (with the continuation at
/// `stage`) and the signal in the store, `checkpoint_created`, the session `waiting`, a flush. Returns
/// whether the `waiting` row reached the store.
async fn record(
    run: &mut Run<'_>,
    cell: &Cell,
    cp: &mut Checkpoint,
    signal: Option<&Signal>,
    stage: &Stage,
    store: &Option<Arc<dyn Store>>,
) -> Result<bool> {
    // Record the wait (and the continuation) before anything can suspend the run.
    let mut e = run.emit.event(EventKind::CheckpointCreated, Some(&cell.name));
    e.metadata = json!({
        "checkpoint_id": cp.checkpoint_id,
        "checkpoint_type": cp.checkpoint_type,
        "signal_name": cp.signal_name,
        "signal_id": cp.signal_id,
        "timeout_at": cp.timeout_at.map(Timestamp::micros),
    });
    e.content = cp.ui_spec.clone();
    // The continuation's sequence number counts this event: a resume numbers on after it.
    cp.continuation = serde_json::to_value(run.continuation(stage.clone())).unwrap_or(Value::Null);
    if let Some(s) = &store {
        // The checkpoint first: whoever sees the waiting signal also finds the question it answers.
        s.checkpoint_put(cp).await?;
        if let Some(signal) = signal {
            s.signal_register(signal).await?;
        }
    }
    let unstored = run.emit.unstored();
    run.emit.send(e).await;
    let mut session = run.session.clone();
    session.status = SessionStatus::Waiting;
    session.current_cell = Some(cell.name.clone());
    session.updated_at = Timestamp::now();
    run.emit.session(session).await;
    run.emit.flush().await;
    // Only a `waiting` row that reached the store can be resumed (and claimed) by another process.
    Ok(unstored.is_some() && run.emit.unstored() == unstored)
}

/// The wait was recorded (the session is `waiting` in the store), so another process may have resumed it
/// meanwhile (`rvbbit resume`, the HTTP API): continue only if this process claims it, exactly as a
/// resume does. A store that cannot answer does not stop the run (its records spill anyway).
async fn claim(store: &dyn rvbbit_store::Store, run: &Run<'_>, cell: &Cell, cp: &Checkpoint) -> Result<()> {
    match store
        .claim_waiting(&run.session_id, &cp.checkpoint_id, Timestamp::now())
        .await
    {
        Ok(_) => Ok(()),
        // `rvbbit sessions cancel` ended the waiting session meanwhile: this run stops as cancelled.
        Err(rvbbit_store::Error::Conflict { state, .. }) if state == "cancelled" => Err(Error::Cancelled),
        Err(rvbbit_store::Error::Conflict { .. }) => Err(Error::ResumedElsewhere {
            session_id: run.session_id.clone(),
            cell: cell.name.clone(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, session_id = %run.session_id, "The answered wait could not be claimed; going on");
            Ok(())
        }
    }
}

/// `checkpoint_resolved` and the session back to `running`.
async fn resolved(run: &mut Run<'_>, cell: &Cell, cp: &Checkpoint, source: &str, answer: Value) {
    let mut e = run.emit.event(EventKind::CheckpointResolved, Some(&cell.name));
    e.metadata = json!({
        "checkpoint_id": cp.checkpoint_id,
        "status": cp.status.as_str(),
        "signal_name": cp.signal_name,
        "source": source,
    });
    e.content = answer;
    run.emit.send(e).await;
    let mut session = run.session.clone();
    session.status = SessionStatus::Running;
    session.current_cell = Some(cell.name.clone());
    session.updated_at = Timestamp::now();
    run.emit.session(session).await;
}

/// The run ended other than waiting (cancelled, failed) while a wait was open: mark its pending
/// checkpoints `cancelled` and their signals cancelled, so nothing offers to answer or resume it.
pub(crate) async fn abandon(run: &Run<'_>) {
    if !run.hitl.waited && run.hitl.resume.is_none() {
        return;
    }
    let Some(store) = run.engine.store.clone() else {
        return;
    };
    let pending = match store
        .checkpoints(Some(&run.session_id), Some(CheckpointStatus::Pending))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, session_id = %run.session_id, "Pending checkpoints not read");
            return;
        }
    };
    for mut cp in pending {
        cp.status = CheckpointStatus::Cancelled;
        if let Err(e) = store.checkpoint_put(&cp).await {
            tracing::warn!(error = %e, checkpoint_id = %cp.checkpoint_id, "Checkpoint not cancelled");
        }
        if let Some(id) = &cp.signal_id
            && let Err(e) = store.signal_cancel(id).await
        {
            tracing::warn!(error = %e, signal_id = %id, "Signal not cancelled");
        }
    }
}
