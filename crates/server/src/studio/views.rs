//! View models: store records turned into the plain values the templates show.

use std::path::PathBuf;

use rvbbit_core::{EventKind, MicroUsd, SessionStatus, Timestamp, codes};
use rvbbit_engine::human::Question;
use rvbbit_store::{CostRow, Session, SessionSummary, StoredEvent};
use serde_json::{Value, json};

use super::charts::Bar;
use crate::paths::scrub;

/// `$0.001234`, or `$0` for nothing.
pub(crate) fn money(m: MicroUsd) -> String {
    if m.micros() == 0 {
        "$0".to_owned()
    } else {
        format!("${}", m.to_decimal_string())
    }
}

pub(crate) fn duration_us(us: i64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.0} ms", us as f64 / 1000.0)
    } else if us < 120_000_000 {
        format!("{:.1} s", us as f64 / 1_000_000.0)
    } else {
        format!("{:.1} min", us as f64 / 60_000_000.0)
    }
}

pub(crate) fn time(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    // 2026-11-23T12:00:00.123456Z → 2026-11-23 12:00:00
    s.get(..19).map_or(s.clone(), |x| x.replace('T', " "))
}

fn span(s: &Session) -> String {
    match s.ended_at {
        Some(end) => duration_us(end.micros() - s.started_at.micros()),
        None => "running".to_owned(),
    }
}

/// One row of the sessions list.
pub(crate) fn session_row(s: &SessionSummary) -> Value {
    let x = &s.session;
    json!({
        "session_id": x.session_id.as_str(),
        "parent_session_id": x.parent_session_id.as_ref().map(|p| p.as_str()),
        "status": x.status.as_str(),
        "cascade_id": x.cascade_id,
        "caller_id": x.caller_id.as_ref().map(ToString::to_string),
        "started": time(x.started_at),
        "duration": span(x),
        "cost": money(s.cost),
        "events": s.events,
    })
}

pub(crate) fn pretty(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// The text of a chat message's `content`: a string, or the text parts of a list.
fn message_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("text").and_then(Value::as_str) {
                Some(t) => t.to_owned(),
                None => format!("[{}]", p.get("type").and_then(Value::as_str).unwrap_or("part")),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn messages(request: Option<&Value>) -> Vec<Value> {
    let Some(msgs) = request.and_then(|r| r.get("messages")).and_then(Value::as_array) else {
        return Vec::new();
    };
    msgs.iter()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("message");
            let mut text = message_text(m.get("content").unwrap_or(&Value::Null));
            if let Some(calls) = m.get("tool_calls").filter(|c| !c.is_null()) {
                text.push_str(&format!("\n[tool calls] {}", pretty(calls)));
            }
            json!({"role": role, "text": text})
        })
        .collect()
}

fn error_code(e: &rvbbit_core::Event) -> Option<&str> {
    e.error.as_ref()?.get("code")?.as_str()
}

fn error_of(e: &rvbbit_core::Event, roots: &[PathBuf]) -> Value {
    match &e.error {
        Some(err) => json!({
            "code": err.get("code").and_then(Value::as_str).unwrap_or(""),
            "message": scrub(err.get("message").and_then(Value::as_str).unwrap_or(""), roots),
            "hint": err.get("hint").and_then(Value::as_str).map(|h| scrub(h, roots)),
        }),
        None => Value::Null,
    }
}

fn short(v: &Value, max: usize) -> String {
    let text = pretty(v).replace('\n', " ");
    if text.chars().count() > max {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The header facts and the cell timeline of a session.
pub(crate) fn session_page(s: &Session, events: &[StoredEvent], roots: &[PathBuf]) -> (Value, Vec<Value>) {
    let mut cost = MicroUsd::ZERO;
    let (mut tin, mut tout) = (0i64, 0i64);
    let mut cells: Vec<Value> = Vec::new();
    let mut cell_cost = MicroUsd::ZERO;
    for stored in events {
        let e = &stored.event;
        if let Some(c) = e.cost
            && matches!(
                e.kind,
                EventKind::LlmResponse | EventKind::LlmError | EventKind::ToolResult
            )
        {
            cost += c;
            cell_cost += c;
        }
        tin += e.tokens.input.unwrap_or(0);
        tout += e.tokens.output.unwrap_or(0);
        match e.kind {
            EventKind::CellStart => {
                cell_cost = MicroUsd::ZERO;
                cells.push(json!({
                    "name": e.cell_name.clone().unwrap_or_default(),
                    "status": "running", "duration": "", "cost": "", "error": null, "items": [],
                }));
            }
            EventKind::CellComplete | EventKind::CellError => {
                // A cell that stopped to wait for a human did not fail: it waits (or waited, when a
                // resume answered it and ran it again).
                let waited = e.kind == EventKind::CellError && error_code(e) == Some(codes::H_WAITING.code);
                if let Some(c) = cells.last_mut() {
                    c["status"] = json!(match (e.kind, waited) {
                        (EventKind::CellComplete, _) => "ok",
                        (_, true) if s.status == SessionStatus::Waiting => "waiting",
                        (_, true) => "waited",
                        _ => "error",
                    });
                    c["route"] = e.metadata.get("route").cloned().unwrap_or(Value::Null);
                    c["duration"] = json!(e.duration_us.map(duration_us).unwrap_or_default());
                    c["cost"] = json!(if cell_cost.micros() > 0 {
                        money(cell_cost)
                    } else {
                        String::new()
                    });
                    c["error"] = if waited { Value::Null } else { error_of(e, roots) };
                }
            }
            _ => {
                let item = match e.kind {
                    EventKind::LlmResponse | EventKind::LlmError => json!({
                        "kind": "llm",
                        "model": e.model.clone().or_else(|| e.model_requested.clone()).unwrap_or_default(),
                        "tokens_in": e.tokens.input.unwrap_or(0),
                        "tokens_out": e.tokens.output.unwrap_or(0),
                        "cost": e.cost.filter(|c| c.micros() > 0).map(money),
                        "duration": e.duration_us.map(duration_us).unwrap_or_default(),
                        "turn": e.turn.map(|t| t + 1),
                        "messages": messages(e.request.as_ref()),
                        "response": if e.kind == EventKind::LlmResponse { Some(pretty(&e.content)) } else { None },
                        "error": error_of(e, roots),
                    }),
                    EventKind::ToolCall | EventKind::ToolResult => json!({
                        "kind": "tool",
                        "label": if e.kind == EventKind::ToolCall { "tool call" } else { "tool result" },
                        "tool": e.metadata.get("tool").and_then(Value::as_str).unwrap_or(""),
                        "duration": e.duration_us.map(duration_us).unwrap_or_default(),
                        "body": scrub(&pretty(&e.content), roots),
                        "error": error_of(e, roots),
                    }),
                    EventKind::CascadeStart
                    | EventKind::CascadeComplete
                    | EventKind::CascadeError
                    | EventKind::CascadeCancelled => continue,
                    EventKind::CheckpointCreated => json!({
                        "kind": "event",
                        "label": "asked a human",
                        "body": Question::from_ui_spec(&e.content).map_or_else(
                            || scrub(&short(&e.content, 300), roots),
                            |q| short(&Value::String(q.prompt), 300),
                        ),
                    }),
                    EventKind::CheckpointResolved => json!({
                        "kind": "event",
                        "label": "answered",
                        "body": format!(
                            "{} (by {})",
                            scrub(&short(&e.content, 300), roots),
                            e.metadata.get("source").and_then(Value::as_str).unwrap_or("someone")
                        ),
                    }),
                    other => json!({
                        "kind": "event",
                        "label": other.as_str(),
                        "body": scrub(&short(&e.content, 300), roots),
                    }),
                };
                match cells.last_mut().and_then(|c| c["items"].as_array_mut()) {
                    Some(items) => items.push(item),
                    None => cells.push(json!({
                        "name": "(cascade)", "status": "ok", "duration": "", "cost": "", "error": null,
                        "items": [item],
                    })),
                }
            }
        }
    }
    let header = json!({
        "session_id": s.session_id.as_str(),
        "status": s.status.as_str(),
        "cascade_id": s.cascade_id,
        "cascade_file": s.cascade_file.as_ref().map(|f| {
            let shown = scrub(f, roots);
            if shown.starts_with('/') {
                std::path::Path::new(&shown).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            } else {
                shown
            }
        }),
        "caller_id": s.caller_id.as_ref().map(ToString::to_string),
        "parent_session_id": s.parent_session_id.as_ref().map(|p| p.as_str()),
        "started": time(s.started_at),
        "duration": span(s),
        "cost": money(cost),
        "tokens_in": tin,
        "tokens_out": tout,
        "input": pretty(&s.input),
        "output": s.output.as_ref().map(pretty).filter(|o| !o.is_empty()),
        "error": s.error.as_ref().map(|e| scrub(e, roots)),
    });
    (header, cells)
}

/// Table rows and bar widths (0–380 px) for the cost chart; the chart's height.
pub(crate) fn cost_rows(rows: &[CostRow]) -> (Vec<Value>, usize) {
    let max = rows.iter().map(|r| r.cost.micros()).max().unwrap_or(0).max(1);
    let out: Vec<Value> = rows
        .iter()
        .map(|r| {
            let bar = (r.cost.micros() as f64 / max as f64 * 380.0).round() as i64;
            let short: String = if r.key.chars().count() > 28 {
                format!("{}…", r.key.chars().take(27).collect::<String>())
            } else {
                r.key.clone()
            };
            json!({
                "key": r.key, "short": short, "sessions": r.sessions, "calls": r.calls,
                "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "cost": money(r.cost),
                "bar": bar.max(if r.cost.micros() > 0 { 2 } else { 0 }),
            })
        })
        .collect();
    let height = out.len() * 26 + 4;
    (out, height)
}

/// The cascade page: numbered lines with their diagnostics, and the run form's inputs.
pub(crate) fn cascade_page(doc: &Value) -> Value {
    let source = doc["source"].as_str().unwrap_or_default();
    let diags = doc["diagnostics"].as_array().cloned().unwrap_or_default();
    let mut unplaced = Vec::new();
    let mut lines: Vec<Value> = source
        .lines()
        .enumerate()
        .map(|(i, text)| json!({"number": i + 1, "text": text, "diagnostics": []}))
        .collect();
    for d in diags {
        let line = d["line"].as_u64().and_then(|l| usize::try_from(l).ok());
        match line.and_then(|l| lines.get_mut(l.wrapping_sub(1))) {
            Some(l) => {
                if let Some(list) = l["diagnostics"].as_array_mut() {
                    list.push(d);
                }
            }
            None => unplaced.push(d),
        }
    }
    let inputs: Vec<Value> = doc["inputs_schema"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let description = match v {
                        Value::String(s) => s.clone(),
                        Value::Object(o) => o
                            .get("description")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        _ => String::new(),
                    };
                    json!({"name": k, "description": description})
                })
                .collect()
        })
        .unwrap_or_default();
    let errors = doc["errors"].as_u64().unwrap_or(0);
    json!({
        "nav": "cascades",
        "path": doc["path"],
        "cascade_id": doc["cascade_id"],
        "description": doc["description"],
        "errors": errors,
        "warnings": doc["warnings"],
        "lines": lines,
        "unplaced": unplaced,
        "inputs": inputs,
        "runnable": errors == 0 && !doc["cascade_id"].is_null(),
    })
}

/// A pending question as the wait form shows it (choice values JSON-encoded for the round trip).
pub(crate) fn wait(ui_spec: &Value, signal: &str, cell: &str) -> Value {
    let options: Vec<Value> = ui_spec["options"]
        .as_array()
        .map(|o| {
            o.iter()
                .map(|c| {
                    json!({
                        "label": c["label"].as_str().map_or_else(|| c["value"].to_string(), str::to_owned),
                        "value": c["value"].to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let question = Question::from_ui_spec(ui_spec);
    let routes: Vec<Value> = question
        .as_ref()
        .map(Question::routes)
        .unwrap_or_default()
        .iter()
        .map(|r| json!({"label": r.label, "target": r.target, "value": r.answer().to_string()}))
        .collect();
    json!({
        "signal": signal,
        "cell": cell,
        "routes": routes,
        "screen_text": question.as_ref().and_then(Question::screen_text),
        "kind": ui_spec["kind"].as_str().unwrap_or("text"),
        "prompt": ui_spec["prompt"].as_str().unwrap_or("(no question text)"),
        "hint": ui_spec["hint"].as_str(),
        "output": ui_spec.get("output").filter(|o| !o.is_null()).map(pretty),
        "options": options,
        "max_rating": ui_spec["max_rating"].as_u64().unwrap_or(5),
        "html": ui_spec["html"].as_str(),
    })
}

/// The bars of a session's waterfall: each cell (depth 0) with its LLM calls, tool results and waits
/// for a human (depth 1), placed by their start after the session's; and the span they cover (µs).
pub(crate) fn waterfall_bars(s: &Session, events: &[StoredEvent]) -> (Vec<Bar>, i64) {
    let origin = s.started_at.micros();
    let mut bars: Vec<Bar> = Vec::new();
    let mut open_cells: Vec<usize> = Vec::new();
    let mut asked_at: Option<i64> = None;
    let mut end = s.ended_at.map_or(origin, |t| t.micros());
    let mut cell_cost = MicroUsd::ZERO;
    for stored in events {
        let e = &stored.event;
        let at = e.ts_us.micros() - origin;
        end = end.max(e.ts_us.micros());
        let took = e.duration_us.unwrap_or(0).max(0);
        match e.kind {
            EventKind::CellStart => {
                cell_cost = MicroUsd::ZERO;
                open_cells.push(bars.len());
                bars.push(Bar {
                    label: e.cell_name.clone().unwrap_or_default(),
                    kind: "cell",
                    depth: 0,
                    start_us: at,
                    duration_us: 0,
                    note: String::new(),
                    route: None,
                });
            }
            EventKind::CellComplete | EventKind::CellError => {
                let waited = e.kind == EventKind::CellError && error_code(e) == Some(codes::H_WAITING.code);
                if let Some(bar) = open_cells.pop().and_then(|i| bars.get_mut(i)) {
                    bar.duration_us = (at - bar.start_us).max(took);
                    bar.kind = match (e.kind, waited) {
                        (EventKind::CellComplete, _) => "cell",
                        (_, true) => "wait",
                        _ => "error",
                    };
                    bar.note = duration_us(bar.duration_us);
                    if cell_cost.micros() > 0 {
                        bar.note.push_str(&format!(" · {}", money(cell_cost)));
                    }
                    bar.route = e.metadata.get("route").and_then(Value::as_str).map(str::to_owned);
                }
            }
            EventKind::LlmResponse | EventKind::LlmError | EventKind::ToolResult => {
                let cost = e.cost.unwrap_or(MicroUsd::ZERO);
                cell_cost += cost;
                let (label, kind) = if e.kind == EventKind::ToolResult {
                    (
                        format!(
                            "tool {}",
                            e.metadata.get("tool").and_then(Value::as_str).unwrap_or("")
                        ),
                        "tool",
                    )
                } else {
                    (
                        format!(
                            "LLM {}",
                            e.model
                                .clone()
                                .or_else(|| e.model_requested.clone())
                                .unwrap_or_default()
                        ),
                        if e.kind == EventKind::LlmError {
                            "error"
                        } else {
                            "llm"
                        },
                    )
                };
                let mut note = duration_us(took);
                if cost.micros() > 0 {
                    note.push_str(&format!(" · {}", money(cost)));
                }
                bars.push(Bar {
                    label,
                    kind,
                    depth: 1,
                    start_us: (at - took).max(0),
                    duration_us: took,
                    note,
                    route: None,
                });
            }
            EventKind::CheckpointCreated => asked_at = Some(at),
            EventKind::CheckpointResolved => {
                let from = asked_at.take().unwrap_or(at);
                bars.push(Bar {
                    label: "human answer".into(),
                    kind: "wait",
                    depth: 1,
                    start_us: from,
                    duration_us: at - from,
                    note: format!(
                        "{} · by {}",
                        duration_us(at - from),
                        e.metadata
                            .get("source")
                            .and_then(Value::as_str)
                            .unwrap_or("someone")
                    ),
                    // The route a screen's answer took.
                    route: e.content.get("_route").and_then(Value::as_str).map(str::to_owned),
                });
            }
            _ => {}
        }
    }
    if let Some(from) = asked_at {
        // Still waiting (or the run stopped waiting): the wait runs to the end of the picture.
        let now = if s.status == SessionStatus::Waiting {
            Timestamp::now().micros()
        } else {
            end
        };
        end = end.max(now);
        bars.push(Bar {
            label: "human answer".into(),
            kind: "wait",
            depth: 1,
            start_us: from,
            duration_us: now - origin - from,
            note: "waiting".into(),
            route: None,
        });
    }
    (bars, end - origin)
}

/// The facts two runs are compared by: the header of [`session_page`], the path of cells and each
/// cell's duration and cost.
pub(crate) fn run_facts(s: &Session, events: &[StoredEvent], roots: &[PathBuf]) -> Value {
    let (header, cells) = session_page(s, events, roots);
    let path: Vec<Value> = cells
        .iter()
        .filter(|c| c["name"] != "(cascade)")
        .map(|c| json!({"name": c["name"], "status": c["status"], "duration": c["duration"], "cost": c["cost"]}))
        .collect();
    json!({"header": header, "path": path})
}
