//! The OpenAPI 3.1 document of `/api/v1` (and the probes), served at `/api/v1/openapi.json`.

use axum::Json;
use serde_json::{Value, json};

fn error_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Error"},
        "401": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"},
        "500": {"$ref": "#/components/responses/Error"},
    })
}

fn op(summary: &str, params: Value, ok: Value) -> Value {
    let mut responses = error_responses();
    if let (Some(r), Some(ok)) = (responses.as_object_mut(), ok.as_object()) {
        for (k, v) in ok {
            r.insert(k.clone(), v.clone());
        }
    }
    json!({"summary": summary, "parameters": params, "responses": responses})
}

fn json_ok(description: &str) -> Value {
    json!({"200": {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}})
}

fn param(name: &str, place: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": place, "required": place == "path", "description": description, "schema": schema})
}

/// The document.
#[allow(
    clippy::redundant_clone,
    reason = "`json!` consumes each value; the lint misreads the clones the macro needs"
)]
pub(crate) fn spec() -> Value {
    let s = json!({"type": "string"});
    let i = json!({"type": "integer"});
    let id = param("id", "path", "Session id", s.clone());
    let bid = param("id", "path", "Batch id (with or without `batch-`)", s.clone());
    let since = param(
        "since",
        "query",
        "UTC date/time or a duration back from now (`24h`)",
        s.clone(),
    );
    let until = param("until", "query", "Same forms as `since`", s.clone());
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "rvbbit HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs, sessions, live events and costs of rvbbit. When the server listens beyond loopback every route except the probes needs `Authorization: Bearer KEY` (keys from `rvbbit keys create`). Errors are `{error_id, code, message, hint}`.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error_id", "code", "message", "hint"],
                    "properties": {
                        "error_id": {"type": "string", "description": "Find the details in the server log under this id"},
                        "code": {"type": "string", "description": "RVB-… code; docs/errors/<code>.md explains it"},
                        "message": {"type": "string"},
                        "hint": {"type": "string"},
                        "diagnostics": {"type": "array", "items": {"type": "object"}, "description": "Invalid cascades only"},
                    },
                },
                "RunRequest": {
                    "type": "object",
                    "required": ["cascade"],
                    "properties": {
                        "cascade": {"type": "string", "description": "Path relative to a cascade root"},
                        "input": {"type": "object"},
                        "session_id": {"type": "string"},
                        "model": {"type": "string"},
                        "submission_id": {"type": "string", "description": "With `queue=true`: deduplicates the job"},
                    },
                },
            },
            "responses": {
                "Error": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": op("Liveness: the process answers", json!([]), json_ok("ok"))},
            "/readyz": {"get": op("Readiness: the event store answers", json!([]), json_ok("ready"))},
            "/metrics": {"get": op("Prometheus / OpenMetrics text", json!([]),
                json!({"200": {"description": "metrics", "content": {"application/openmetrics-text": {}}}}))},
            "/api/v1/openapi.json": {"get": op("This document", json!([]), json_ok("the document"))},
            "/api/v1/cascades": {"get": op("Cascades under the configured roots", json!([]), json_ok("`{cascades: [{path, cascade_id, description, cells, inputs}]}`"))},
            "/api/v1/cascades/{path}": {"get": op("A cascade's source and diagnostics",
                json!([param("path", "path", "Path relative to a root (may contain `/`)", s.clone())]),
                json_ok("`{path, cascade_id, source, errors, warnings, diagnostics}`"))},
            "/api/v1/cascades/validate": {"post": {
                "summary": "Validate posted cascade text",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["text"], "properties": {"text": s.clone(), "filename": s.clone()}}}}},
                "responses": json_ok("`{valid, errors, warnings, diagnostics}`"),
            }},
            "/api/v1/runs": {"post": {
                "summary": "Start a run: 202 with the session id, or with `wait=true` 200 with the outcome",
                "parameters": [
                    param("wait", "query", "Wait for the run to finish", json!({"type": "boolean"})),
                    param("queue", "query", "Enqueue for `rvbbit worker`s instead of running here (202 with the submission id)", json!({"type": "boolean"})),
                ],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}}},
                "responses": {
                    "200": {"description": "The outcome (`wait=true`)"},
                    "202": {"description": "Started: `{session_id, caller_id, status, links}`; queued (`queue=true`): `{submission_id, duplicate, sequence, caller_id, status, links}`"},
                    "409": {"$ref": "#/components/responses/Error"},
                    "503": {"$ref": "#/components/responses/Error"},
                    "422": {"$ref": "#/components/responses/Error"},
                },
            }},
            "/api/v1/sessions": {"get": op("Sessions, newest first", json!([
                param("status", "query", "running, waiting, completed, failed or cancelled", s.clone()),
                param("cascade_id", "query", "Only this cascade", s.clone()),
                param("caller_id", "query", "Only this caller", s.clone()),
                since.clone(), until.clone(),
                param("limit", "query", "At most this many (default 50, max 1000)", i.clone()),
            ]), json_ok("`{sessions: [...]}`"))},
            "/api/v1/sessions/{id}": {"get": op("One session with totals", json!([id.clone()]), json_ok("the session"))},
            "/api/v1/sessions/{id}/trace": {"get": op("The trace tree: cells with their LLM and tool calls", json!([id.clone()]), json_ok("`{session_id, status, nodes}`"))},
            "/api/v1/sessions/{id}/events": {"get": op(
                "Events after a cursor: a JSON page, or with `Accept: text/event-stream` a live SSE stream (replay, then live, then a `complete` event). Resume with `Last-Event-ID` or `cursor`.",
                json!([id.clone(),
                    param("cursor", "query", "Only events after this store sequence", i.clone()),
                    param("limit", "query", "Page size (default 500, max 5000)", i.clone()),
                    param("Last-Event-ID", "header", "SSE resume cursor", s.clone())]),
                json!({"200": {"description": "`{events, next_cursor, done}` or an SSE stream",
                    "content": {"application/json": {}, "text/event-stream": {}}}}))},
            "/api/v1/sessions/{id}/cancel": {"post": {
                "summary": "Cancel a run (at once when this server runs it; otherwise the running process is asked)",
                "parameters": [id],
                "responses": {"202": {"description": "`{session_id, cancel}`"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}},
            }},
            "/api/v1/sessions/{id}/artifacts": {"get": op("The artifacts the session published (`create_artifact`, `create_chart`, `create_plotly`, `create_vega_lite`), oldest first, without their bodies", json!([id.clone()]),
                json_ok("`{session_id, artifacts: [{artifact_id, kind, title, description, tags, content_type, bytes, rendered, not_rendered_because, cell_name, created_at, links: {body, svg}}]}`"))},
            "/api/v1/sessions/{id}/artifacts/{artifact}": {"get": {
                "summary": "One artifact's body with its own content type, served as an untrusted document (a `sandbox` Content-Security-Policy: no script, nothing fetched)",
                "parameters": [id.clone(), param("artifact", "path", "Artifact id (`art_` and 16 hex digits)", s.clone())],
                "responses": {"200": {"description": "The body (HTML, Markdown, text or a chart spec as JSON)"}, "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}},
            }},
            "/api/v1/sessions/{id}/artifacts/{artifact}/svg": {"get": {
                "summary": "A chart artifact's drawing (`image/svg+xml`, untrusted as above); 404 when it was not drawn, saying why",
                "parameters": [id.clone(), param("artifact", "path", "Artifact id", s.clone())],
                "responses": {"200": {"description": "The SVG"}, "404": {"$ref": "#/components/responses/Error"}},
            }},
            "/api/v1/sessions/{id}/waits": {"get": op("The questions a waiting session asks (pending checkpoints)", json!([id.clone()]),
                json_ok("`{session_id, status, waits: [{checkpoint_id, cell_name, type, signal_name, question, created_at, timeout_at}]}`"))},
            "/api/v1/sessions/{id}/signals/{name}": {"post": {
                "summary": "Answer a waiting signal (checked against its question; 422 RVB-C007 when it does not fit). A process still waiting for it continues by itself; otherwise resume the session",
                "parameters": [id.clone(), param("name", "path", "Signal name (the asking cell)", s.clone())],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["value"], "properties": {"value": {}}}}}},
                "responses": {"200": {"description": "`{session_id, signal, fired}`"}, "404": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}},
            }},
            "/api/v1/sessions/{id}/resume": {"post": {
                "summary": "Continue a waiting session in this server (optionally answering first: `{signal?, value?}`)",
                "parameters": [id.clone()],
                "responses": {"202": {"description": "`{session_id, status}`"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}},
            }},
            "/api/v1/batches": {"get": op("The latest batches of `rvbbit batch` and `rvbbit exec`, newest first", json!([
                param("limit", "query", "How many (1 to 1000, default 20)", json!({"type": "integer"})),
            ]), json_ok("`{batches: [{batch_id, cascade_id, status, started_at, updated_at, links}]}`"))},
            "/api/v1/batches/{id}": {"get": op("One batch: options, live progress while it runs (`batch.progress`), counts, cost and each input's result (`batch.results`)", json!([bid.clone()]),
                json_ok("`{batch_id, cascade_id, status, started_at, updated_at, links, batch}`"))},
            "/api/v1/batches/{id}/cancel": {"post": {
                "summary": "Ask a running batch to stop (compare-and-set running → cancelling); the inputs not started are skipped",
                "parameters": [bid.clone()],
                "responses": {"202": {"description": "`{batch_id, status}`"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}},
            }},
            "/api/v1/costs": {"get": op("Cost totals", json!([
                param("group", "query", "day (default), model, cascade, caller or total", s.clone()),
                since, until,
                param("cascade_id", "query", "Only this cascade", s.clone()),
                param("caller_id", "query", "Only this caller", s.clone()),
            ]), json_ok("`{group, rows: [{key, sessions, calls, tokens_in, tokens_out, cost_micro_usd, cost_usd, unknown_cost_calls}]}`"))},
        },
    });
    if let Some(paths) = doc["paths"].as_object_mut()
        && let Value::Object(more) = sql_paths(s.clone())
    {
        paths.extend(more);
    }
    if let Some(paths) = doc["paths"].as_object_mut()
        && let Value::Object(more) = agent_paths(s.clone())
    {
        paths.extend(more);
    }
    if let Some(paths) = doc["paths"].as_object_mut()
        && let Value::Object(more) = hook_paths(s.clone())
    {
        paths.extend(more);
    }
    if let Some(paths) = doc["paths"].as_object_mut()
        && let Value::Object(more) = channel_paths(s.clone())
    {
        paths.extend(more);
    }
    if let Some(paths) = doc["paths"].as_object_mut()
        && let Value::Object(more) = chat_paths(s)
    {
        paths.extend(more);
    }
    doc
}

/// The chat hooks (docs/channels.md): no API key; the platform's signature or token instead.
#[allow(
    clippy::redundant_clone,
    reason = "`json!` consumes each value; the lint misreads the clones the macro needs"
)]
fn hook_paths(s: Value) -> Value {
    let e = json!({"$ref": "#/components/responses/Error"});
    json!({
        "/hooks/{kind}/{integration}": {"post": {
            "summary": "An inbound message from Slack (Events API, slash command), Mattermost (outgoing webhook, slash command) or a signed webhook. Verified by the signature (`X-Slack-Signature`, `X-Rvbbit-Signature`, timestamps within 5 minutes) or the `token` field; acknowledged at once, handled in the background, replied to through the platform",
            "security": [],
            "parameters": [param("kind", "path", "`slack`, `mattermost` or `webhook`", s.clone()),
                param("integration", "path", "The name of a `[channels.NAME]` table", s)],
            "requestBody": {"required": true, "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "Accepted: empty, Slack's `{challenge}`, or the webhook's `{accepted: true}`"},
                "400": e.clone(), "401": e.clone(), "404": e.clone(), "413": e},
        }},
    })
}

/// Integrations configured through the API (docs/channels.md): secrets accepted, never answered.
#[allow(
    clippy::redundant_clone,
    reason = "`json!` consumes each value; the lint misreads the clones the macro needs"
)]
fn channel_paths(s: Value) -> Value {
    let e = json!({"$ref": "#/components/responses/Error"});
    let name = param(
        "name",
        "path",
        "The integration's name (1 to 64 letters, digits, `_` or `-`)",
        s,
    );
    let view = "`{name, source: config|api, kind, tenant, config (secrets as \"***\"), secrets_set: {token, signing_secret, secret, bot_token}}`";
    json!({
        "/api/v1/channels": {"get": op("Every chat integration: rvbbit.toml's (`source: config`, read-only) and the API's (`source: api`), secrets masked",
            json!([]), json_ok("`{integrations: [view]}`"))},
        "/api/v1/channels/{name}": {
            "get": {"summary": "One integration, secrets masked", "parameters": [name.clone()],
                "responses": {"200": {"description": view}, "404": e.clone()}},
            "put": {"summary": "Create or replace an integration: the body is the `[channels.NAME]` keys as JSON, checked as rvbbit.toml is (RVB-K001 naming the key). Works for `/hooks/{kind}/{name}` (or `/chat/{name}`) at once; other processes sharing the store within seconds. At most 1000",
                "parameters": [name.clone()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["kind"]}}}},
                "responses": {"200": {"description": view}, "400": e.clone(), "401": e.clone(), "409": e.clone(), "413": e.clone()}},
            "delete": {"summary": "Remove an integration configured through the API (its hook answers 404)", "parameters": [name],
                "responses": {"204": {"description": "Removed"}, "404": e.clone(), "409": e}},
        },
    })
}

/// The web chat (docs/channels.md): no API key; anonymous visitors, bounded by the integration's limits.
#[allow(
    clippy::redundant_clone,
    reason = "`json!` consumes each value; the lint misreads the clones the macro needs"
)]
fn chat_paths(s: Value) -> Value {
    let e = json!({"$ref": "#/components/responses/Error"});
    let name = param(
        "integration",
        "path",
        "The name of a `[channels.NAME]` table with `kind = \"web\"`",
        s.clone(),
    );
    json!({
        "/chat/{integration}": {"get": {
            "summary": "The web chat page (HTML, embeddable in an iframe from `allowed_origins`)",
            "security": [],
            "parameters": [name.clone()],
            "responses": {"200": {"description": "The page", "content": {"text/html": {}}}, "404": e.clone()},
        }},
        "/chat/{integration}/messages": {"post": {
            "summary": "A visitor's message `{visitor, text}` (at most `max_message_bytes`, no control characters but line breaks and tabs); the reply comes on the visitor's event stream",
            "security": [],
            "parameters": [name.clone()],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
                "required": ["visitor", "text"],
                "properties": {"visitor": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"}, "text": {"type": "string"}}}}}},
            "responses": {"202": {"description": "`{accepted: true, id}`: the message's entry id"},
                "400": e.clone(), "401": e.clone(), "404": e.clone(), "413": e.clone(), "429": e.clone()},
        }},
        "/chat/{integration}/events": {"get": {
            "summary": "The visitor's conversation as Server-Sent Events: `ready`, then `entry` ({id, role, text}, after `after` or `Last-Event-ID`) and `typing` ({typing}); at most `max_streams` at once",
            "security": [],
            "parameters": [name, param("visitor", "query", "The visitor id the page keeps", s.clone()),
                param("after", "query", "Only entries after this id (default 0: every kept entry)", json!({"type": "integer"}))],
            "responses": {"200": {"description": "The event stream", "content": {"text/event-stream": {}}},
                "400": e.clone(), "404": e.clone(), "503": e},
        }},
    })
}

/// The agent routes (docs/agents.md). The tenant is the API key's (`default` without keys).
fn agent_paths(s: Value) -> Value {
    let agent = param(
        "agent",
        "path",
        "Agent name (the file stem of `agents/NAME.yaml`)",
        s.clone(),
    );
    json!({
        "/api/v1/agents/{agent}/messages": {"post": {
            "summary": "Send a message to the conversation `tenant:agent:interlocutor:channel`; it joins a turn (new, gathering, superseding the one in flight, or queued behind a committed one). Retries with the same `Idempotency-Key` header within 5 minutes get the first answer",
            "parameters": [agent, param("Idempotency-Key", "header", "At most 256 characters; the same on every retry of one message", s.clone())],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["interlocutor", "channel", "text"],
                "properties": {"interlocutor": s, "channel": s, "text": s,
                    "attachments": {"type": "array"}}}}}},
            "responses": {"202": {"description": "`{turn_id, conversation_id, disposition: new_turn|absorbed|superseded|queued, links}`"},
                "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"},
                "429": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}},
        }},
        "/api/v1/agents/{agent}/conversations": {"get": op("The caller's tenant's conversations with the agent, most recently changed first", json!([
            agent, param("limit", "query", "1 to 1000 (default 50)", json!({"type": "integer"})),
        ]), json_ok("`{agent, conversations: [{conversation_id, interlocutor, channel, created_at, updated_at, links}]}`"))},
        "/api/v1/agents/{agent}/conversations/{id}": {"get": op("One conversation of the caller's tenant (404 for another tenant's): its variables, messages and turns", json!([
            agent, param("id", "path", "Conversation id", s),
        ]), json_ok("`{conversation_id, agent, interlocutor, channel, vars, messages: [{seq, role, text, attachments, turn_id, at}], turns: [{turn_id, status, attempts, messages, reply, run_session_id, started_at, ended_at}]}`"))},
    })
}

/// The SQL routes (a separate literal: one `json!` of the whole document exceeds the macro recursion
/// limit).
fn sql_paths(s: Value) -> Value {
    json!({
            "/api/v1/sql": {"post": {
            "summary": "Run one SQL statement through the SQL door (DataFusion with rvbbit_udf, rvbbit_run, RVBBIT MAP and the magic tables) under a fresh `http-…` caller id. Without `session_id` a new SQL session opens (expires after 15 minutes idle); pass its id back to keep tables and settings",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["query"],
                "properties": {
                    "query": {"type": "string"},
                    "session_id": {"type": "string"},
                    "format": {"type": "string", "enum": ["records", "json", "csv", "ndjson"], "default": "records"},
                },
            }}}},
            "responses": {
                "200": {"description": "`{success: true, columns, column_types: [{name, type}], data, row_count, session_id, caller_id, execution_time_ms, stats, notices}`; `data` holds objects (`records`) or arrays (`json`); `csv` and `ndjson` answer the rows as text"},
                "400": {"description": "No query, or the statement does not parse or plan: `{success: false, error_id, code, error, message, hint, position: {line, column} | null, session_id}`"},
                "401": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "422": {"description": "The statement failed while running (same shape as 400)"},
                "503": {"$ref": "#/components/responses/Error"},
            },
        }},
        "/api/v1/sql/tables": {"get": op("The tables and columns a SQL session can query (a new session unless `session_id` names one)", json!([
            param("session_id", "query", "An open SQL session", s),
        ]), json_ok("`{session_id, tables: [{schema, name, columns: [{name, type}]}]}`"))},
    })
}

/// `GET /api/v1/openapi.json`
pub(crate) async fn document() -> Json<Value> {
    Json(spec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let spec = spec();
        let paths = spec["paths"].as_object().unwrap();
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.to_uppercase(), p.clone()))
            })
            .collect();
        documented.sort();
        let mut routes: Vec<(String, String)> = crate::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
