//! Agents over HTTP (`rvbbit-agents`): a message to an agent's conversation, and the caller's tenant's
//! conversations with their messages and turns. The tenant comes from the API key
//! (`rvbbit keys create --tenant T`); without keys every request is the `default` tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use rvbbit_agents::{Accepted, ConversationKey, Message};
use rvbbit_core::codes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Body, Params};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The tenant of a request: its API key's, else `default`.
#[derive(Clone, Debug)]
pub(crate) struct Tenant(pub(crate) String);

/// The tenant of requests whose key has none, and of every request of a keyless server.
pub(crate) const DEFAULT_TENANT: &str = "default";

/// How long an `Idempotency-Key` answers a retried POST with the first answer.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(300);
/// Most idempotency keys remembered at once (the oldest go first past it).
const IDEMPOTENCY_MAX: usize = 100_000;
/// Longest `Idempotency-Key`, in bytes.
const IDEMPOTENCY_KEY_BYTES: usize = 256;
/// Most conversations one list returns.
const MAX_LIST: u32 = 1000;
/// Most messages and turns one conversation read returns.
const MAX_READ: u64 = 1000;

/// `(tenant, agent, Idempotency-Key)`.
type IdemKey = (String, String, String);

/// Answers of recent POSTs by `(tenant, agent, Idempotency-Key)`.
#[derive(Debug, Default)]
pub(crate) struct Idempotency {
    seen: Mutex<HashMap<IdemKey, (Instant, Value)>>,
}

impl Idempotency {
    fn get(&self, key: &IdemKey) -> Option<Value> {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.get(key)
            .filter(|(at, _)| at.elapsed() < IDEMPOTENCY_TTL)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: IdemKey, answer: Value) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Expired answers are swept only when the map is full, so a POST costs O(1) until then.
        if seen.len() >= IDEMPOTENCY_MAX {
            seen.retain(|_, (at, _)| at.elapsed() < IDEMPOTENCY_TTL);
        }
        if seen.len() >= IDEMPOTENCY_MAX
            && let Some(oldest) = seen.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone())
        {
            seen.remove(&oldest);
        }
        seen.insert(key, (Instant::now(), answer));
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessageBody {
    interlocutor: String,
    channel: String,
    text: String,
    #[serde(default)]
    attachments: Vec<Value>,
}

fn tenant_of(tenant: Option<Extension<Tenant>>) -> String {
    tenant.map_or_else(|| DEFAULT_TENANT.to_owned(), |Extension(t)| t.0)
}

fn agents_error(e: &rvbbit_agents::Error) -> ApiError {
    let status = match e {
        rvbbit_agents::Error::UnknownAgent { .. } => StatusCode::NOT_FOUND,
        rvbbit_agents::Error::MessageTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        rvbbit_agents::Error::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
        rvbbit_agents::Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let code = e.code();
    let message = e.to_string();
    let message = message.strip_prefix(code.code).unwrap_or(&message).trim_start();
    ApiError::new(status, code, message, code.fix)
}

fn unknown_agent(agent: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::G_UNKNOWN_AGENT,
        format!("no agent is named `{agent}`"),
        codes::G_UNKNOWN_AGENT.fix,
    )
}

/// `POST /api/v1/agents/{agent}/messages`: hand a message to its conversation; 202 with the turn it
/// joined. A retry with the same `Idempotency-Key` within 5 minutes gets the first answer.
pub(crate) async fn post_message(
    State(state): State<Arc<AppState>>,
    tenant: Option<Extension<Tenant>>,
    UrlPath(agent): UrlPath<String>,
    headers: HeaderMap,
    Body(body): Body<MessageBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = tenant_of(tenant);
    let Some(agents) = &state.agents else {
        return Err(unknown_agent(&agent));
    };
    let idempotency = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_BYTES => {
                Some((tenant.clone(), agent.clone(), k.to_owned()))
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    codes::G_BAD_FIELD,
                    format!(
                        "the `Idempotency-Key` header must be 1 to {IDEMPOTENCY_KEY_BYTES} visible ASCII characters"
                    ),
                    "send a UUID per logical message, the same on every retry",
                ));
            }
        },
    };
    if let Some(answer) = idempotency.as_ref().and_then(|k| state.idempotency.get(k)) {
        return Ok((StatusCode::ACCEPTED, Json(answer)));
    }
    let key = ConversationKey::new(&tenant, &agent, body.interlocutor, body.channel)
        .map_err(|e| agents_error(&e))?;
    let message = Message {
        key,
        text: body.text,
        attachments: body.attachments,
    };
    let accepted = agents.send(message).await.map_err(|e| agents_error(&e))?;
    let answer = accepted_json(&agent, &accepted);
    if let Some(k) = idempotency {
        state.idempotency.put(k, answer.clone());
    }
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

fn accepted_json(agent: &str, a: &Accepted) -> Value {
    json!({"turn_id": a.turn_id, "conversation_id": a.conversation_id.as_str(),
        "disposition": a.disposition,
        "links": {"conversation": format!("/api/v1/agents/{agent}/conversations/{}", a.conversation_id)}})
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<u32>,
}

/// `GET /api/v1/agents/{agent}/conversations?limit=N`: the caller's tenant's conversations with the
/// agent, the most recently changed first (default 50, at most 1000).
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    tenant: Option<Extension<Tenant>>,
    UrlPath(agent): UrlPath<String>,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<Value>> {
    let tenant = tenant_of(tenant);
    if state.agents.as_ref().and_then(|a| a.agent(&agent)).is_none() {
        return Err(unknown_agent(&agent));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::bad_request(
            format!("`limit={limit}` is out of range"),
            format!("ask for 1 to {MAX_LIST} conversations"),
        ));
    }
    let rows = state
        .store
        .conversations(&tenant, &agent, u64::from(limit))
        .await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|c| {
            json!({"conversation_id": c.id, "interlocutor": c.interlocutor, "channel": c.channel,
                "created_at": c.created_at, "updated_at": c.updated_at,
                "links": {"self": format!("/api/v1/agents/{agent}/conversations/{}", c.id)}})
        })
        .collect();
    Ok(Json(json!({"agent": agent, "conversations": list})))
}

/// `GET /api/v1/agents/{agent}/conversations/{id}`: one conversation of the caller's tenant, its
/// latest messages and turns (404 for another tenant's).
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    tenant: Option<Extension<Tenant>>,
    UrlPath((agent, id)): UrlPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let tenant = tenant_of(tenant);
    let missing = || {
        ApiError::not_found(
            format!("agent `{agent}` has no conversation `{id}`"),
            format!("list them with `GET /api/v1/agents/{agent}/conversations`"),
        )
    };
    if state.agents.as_ref().and_then(|a| a.agent(&agent)).is_none() {
        return Err(unknown_agent(&agent));
    }
    let conversation = state
        .store
        .conversation(&tenant, &id)
        .await?
        .filter(|c| c.agent == agent)
        .ok_or_else(missing)?;
    let messages = state.store.messages(&tenant, &id, MAX_READ).await?;
    let turns = state.store.turns(&tenant, &id, MAX_READ).await?;
    Ok(Json(json!({
        "conversation_id": conversation.id, "agent": conversation.agent,
        "interlocutor": conversation.interlocutor, "channel": conversation.channel,
        "vars": conversation.vars, "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "messages": messages.iter().map(|m| json!({"seq": m.seq, "role": m.role, "text": m.text,
            "attachments": m.attachments, "turn_id": m.turn_id, "at": m.at})).collect::<Vec<_>>(),
        "turns": turns.iter().map(|t| json!({"turn_id": t.turn_id, "status": t.status,
            "attempts": t.attempts, "messages": t.messages, "reply": t.reply,
            "run_session_id": t.run_session_id, "started_at": t.started_at, "ended_at": t.ended_at}))
            .collect::<Vec<_>>(),
    })))
}
