//! The trace tree of one session: cascade-level events, then one node per cell holding its LLM calls,
//! tool calls and other events, each with cost and time. Used by `rvbbit sessions show` and
//! `rvbbit debug trace`.

use rvbbit_core::{EventKind, MicroUsd};
use serde::Serialize;
use serde_json::Value;

use crate::model::StoredEvent;

/// One node of the trace tree.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Node {
    /// `cell` for a cell node, otherwise the event kind.
    pub kind: String,
    /// A short label: the cell name, model, tool name or event kind.
    pub label: String,
    /// The event id (none for cell nodes).
    pub event_id: Option<String>,
    /// Cost of this node and everything under it.
    pub cost: MicroUsd,
    /// Input and output tokens of this node and everything under it.
    pub tokens: (i64, i64),
    /// Duration, when known.
    pub duration_us: Option<i64>,
    /// The event's content (omitted for cell nodes).
    pub content: Option<Value>,
    /// Nodes under this one, in order.
    pub children: Vec<Node>,
}

fn is_call(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::LlmResponse | EventKind::LlmError | EventKind::ToolCall | EventKind::ToolResult
    )
}

fn leaf(e: &StoredEvent) -> Node {
    let ev = &e.event;
    let label = match ev.kind {
        EventKind::LlmResponse | EventKind::LlmError | EventKind::LlmRequest => ev
            .model
            .clone()
            .or_else(|| ev.model_requested.clone())
            .unwrap_or_else(|| ev.kind.to_string()),
        EventKind::ToolCall | EventKind::ToolResult => ev
            .metadata
            .get("tool")
            .and_then(Value::as_str)
            .map_or_else(|| ev.kind.to_string(), str::to_owned),
        _ => ev.kind.to_string(),
    };
    Node {
        kind: ev.kind.to_string(),
        label,
        event_id: Some(ev.event_id.to_string()),
        cost: ev.cost.unwrap_or_default(),
        tokens: (ev.tokens.input.unwrap_or(0), ev.tokens.output.unwrap_or(0)),
        duration_us: ev.duration_us,
        content: Some(ev.content.clone()),
        children: Vec::new(),
    }
}

/// Build the tree from a session's events (in store order). With `calls_only`, cells keep only LLM and
/// tool calls (the `sessions show` view); otherwise every event appears (the `debug trace` view).
pub fn build(events: &[StoredEvent], calls_only: bool) -> Vec<Node> {
    let mut roots: Vec<Node> = Vec::new();
    // Index into `roots` of each cell node, by name.
    let mut cells: Vec<(String, usize)> = Vec::new();
    for e in events {
        let ev = &e.event;
        let Some(cell) = &ev.cell_name else {
            if !calls_only
                || is_call(ev.kind)
                || matches!(ev.kind, EventKind::CascadeError | EventKind::Error)
            {
                roots.push(leaf(e));
            }
            continue;
        };
        let idx = match cells.iter().find(|(n, _)| n == cell) {
            Some((_, i)) => *i,
            None => {
                roots.push(Node {
                    kind: "cell".into(),
                    label: cell.clone(),
                    event_id: None,
                    cost: MicroUsd::ZERO,
                    tokens: (0, 0),
                    duration_us: None,
                    content: None,
                    children: Vec::new(),
                });
                cells.push((cell.clone(), roots.len() - 1));
                roots.len() - 1
            }
        };
        let node = &mut roots[idx];
        if matches!(ev.kind, EventKind::CellComplete | EventKind::CellError) && ev.duration_us.is_some() {
            node.duration_us = ev.duration_us;
        }
        node.cost += ev.cost.unwrap_or_default();
        node.tokens.0 += ev.tokens.input.unwrap_or(0);
        node.tokens.1 += ev.tokens.output.unwrap_or(0);
        if !calls_only || is_call(ev.kind) || ev.kind == EventKind::CellError {
            node.children.push(leaf(e));
        }
    }
    roots
}
