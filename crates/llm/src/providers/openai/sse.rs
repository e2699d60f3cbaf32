//! Server-sent events of a streamed chat completion, turned into [`StreamEvent`]s.

use std::collections::VecDeque;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::time::Instant;

use crate::cost::Cost;
use crate::error::{Error, Result, TimeoutPhase};
use crate::request::ToolCall;
use crate::response::{ChatResponse, ChatStream, FinishReason, StreamEvent};

use super::wire::{decode_usage, error_message};

pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Who is answering, for errors and the final reply.
#[derive(Clone, Debug)]
pub(crate) struct StreamContext {
    pub(crate) provider: String,
    pub(crate) model: String,
    /// The whole call must end by then.
    pub(crate) deadline: Instant,
    /// The first event must arrive by then.
    pub(crate) first_event_deadline: Instant,
    pub(crate) total: std::time::Duration,
    pub(crate) first_byte: std::time::Duration,
}

struct State {
    body: ByteStream,
    ctx: StreamContext,
    buffer: Vec<u8>,
    data: String,
    queue: VecDeque<Result<StreamEvent>>,
    reply: ChatResponse,
    calls: Vec<ToolCall>,
    finish: Option<FinishReason>,
    seen_event: bool,
    finished: bool,
}

/// Parse `body` as an SSE chat-completion stream.
pub(crate) fn parse(body: ByteStream, ctx: StreamContext) -> ChatStream {
    let reply = ChatResponse::new(&ctx.provider, &ctx.model, String::new());
    let state = State {
        body,
        ctx,
        buffer: Vec::new(),
        data: String::new(),
        queue: VecDeque::new(),
        reply,
        calls: Vec::new(),
        finish: None,
        seen_event: false,
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.queue.pop_front() {
                if item.is_err() {
                    // An error ends the stream: drop whatever else was queued.
                    st.queue.clear();
                    st.finished = true;
                }
                return Some((item, st));
            }
            if st.finished {
                return None;
            }
            st.read_more().await;
        }
    }))
}

impl State {
    fn invalid(&self, message: String) -> Error {
        Error::InvalidResponse {
            provider: self.ctx.provider.clone(),
            model: self.ctx.model.clone(),
            message,
            transient: true,
        }
    }

    /// Read the next chunk of the body and queue the events it completes.
    async fn read_more(&mut self) {
        let (limit, phase, after) = if self.seen_event {
            (self.ctx.deadline, TimeoutPhase::Total, self.ctx.total)
        } else {
            let first = self.ctx.first_event_deadline.min(self.ctx.deadline);
            (first, TimeoutPhase::FirstByte, self.ctx.first_byte)
        };
        match tokio::time::timeout_at(limit, self.body.next()).await {
            Err(_) => {
                let err = Error::Timeout {
                    provider: self.ctx.provider.clone(),
                    model: self.ctx.model.clone(),
                    phase,
                    after,
                };
                self.queue.push_back(Err(err));
            }
            Ok(Some(Ok(chunk))) => {
                self.buffer.extend_from_slice(&chunk);
                while let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buffer.drain(..=pos).collect();
                    let line = String::from_utf8_lossy(&line);
                    self.line(line.trim_end_matches(['\n', '\r']));
                    if self.finished {
                        return;
                    }
                }
            }
            Ok(Some(Err(e))) => {
                let err = self.invalid(format!("the stream broke off: {e}"));
                self.queue.push_back(Err(err));
            }
            Ok(None) => {
                if !self.buffer.is_empty() {
                    let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned();
                    self.line(rest.trim_end_matches('\r'));
                }
                if !self.finished {
                    self.dispatch();
                }
                if !self.finished {
                    if self.finish.is_some() {
                        // Some servers end with a finish reason but no `[DONE]` line: the reply is whole.
                        self.complete();
                    } else {
                        let err = self.invalid(
                            "the stream ended before the reply was complete (no finish reason, no [DONE])"
                                .to_owned(),
                        );
                        self.queue.push_back(Err(err));
                    }
                }
            }
        }
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            self.dispatch();
        } else if let Some(data) = line.strip_prefix("data:") {
            if !self.data.is_empty() {
                self.data.push('\n');
            }
            self.data.push_str(data.strip_prefix(' ').unwrap_or(data));
        }
        // Comments (`: keep-alive`) and other fields (`event:`, `id:`) carry nothing we use.
    }

    fn dispatch(&mut self) {
        let data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        if data.trim() == "[DONE]" {
            self.complete();
            return;
        }
        let chunk: Value = match serde_json::from_str(&data) {
            Ok(v) => v,
            Err(e) => {
                let err = self.invalid(format!("a stream event is not JSON ({e}): {}", preview(&data)));
                self.queue.push_back(Err(err));
                return;
            }
        };
        if let Some(message) = error_message(&chunk) {
            let err = Error::Provider {
                provider: self.ctx.provider.clone(),
                model: self.ctx.model.clone(),
                status: None,
                message,
                retry_after: None,
            };
            self.queue.push_back(Err(err));
            return;
        }
        self.seen_event = true;
        if let Some(id) = chunk.get("id").and_then(Value::as_str) {
            self.reply.id = Some(id.to_owned());
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.reply.model = model.to_owned();
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let (tokens, cost) = decode_usage(usage);
            self.reply.usage = tokens;
            self.reply.cost = cost.map_or(Cost::UNKNOWN, Cost::exact);
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(FinishReason::parse(reason));
        }
        let Some(delta) = choice.get("delta") else { return };
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.reply.text.push_str(text);
            self.queue.push_back(Ok(StreamEvent::Text(text.to_owned())));
        }
        let reasoning = delta.get("reasoning").or_else(|| delta.get("reasoning_content"));
        if let Some(text) = reasoning.and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.reply
                .reasoning
                .get_or_insert_with(String::new)
                .push_str(text);
            self.queue.push_back(Ok(StreamEvent::Reasoning(text.to_owned())));
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            let id = call.get("id").and_then(Value::as_str).map(str::to_owned);
            let function = call.get("function");
            let name = function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let arguments = function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            while self.calls.len() <= index {
                self.calls.push(ToolCall::new("", "", ""));
            }
            let slot = &mut self.calls[index];
            if let Some(id) = &id {
                slot.id.clone_from(id);
            }
            if let Some(name) = &name {
                slot.name.push_str(name);
            }
            slot.arguments.push_str(&arguments);
            self.queue.push_back(Ok(StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            }));
        }
    }

    fn complete(&mut self) {
        let mut reply = self.reply.clone();
        reply.tool_calls = std::mem::take(&mut self.calls);
        reply.finish_reason = match self.finish.take() {
            Some(reason) => reason,
            None if !reply.tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        self.queue.push_back(Ok(StreamEvent::Done(reply)));
        self.finished = true;
    }
}

fn preview(text: &str) -> String {
    text.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ctx() -> StreamContext {
        let now = Instant::now();
        StreamContext {
            provider: "p".into(),
            model: "m".into(),
            deadline: now + Duration::from_secs(60),
            first_event_deadline: now + Duration::from_secs(10),
            total: Duration::from_secs(60),
            first_byte: Duration::from_secs(10),
        }
    }

    async fn run(chunks: &[&str]) -> Vec<Result<StreamEvent>> {
        let owned: Vec<reqwest::Result<Bytes>> =
            chunks.iter().map(|c| Ok(Bytes::from(c.to_string()))).collect();
        parse(Box::pin(futures::stream::iter(owned)), ctx())
            .collect()
            .await
    }

    #[tokio::test]
    async fn lines_split_across_chunks_crlf_and_comments() {
        let events = run(&[
            ": OPENROUTER PROCESSING\r\n\r\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel",
            "lo\"}}]}\r\n\r\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],",
            "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"cost\":0.000002}}\n\ndata: [DONE]\n\n",
        ])
        .await;
        assert!(matches!(&events[0], Ok(StreamEvent::Text(t)) if t == "Hello"));
        let Some(Ok(StreamEvent::Done(reply))) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(reply.text, "Hello");
        assert_eq!(reply.usage.total(), 4);
        assert_eq!(reply.cost.amount, Some(rvbbit_core::MicroUsd::from_micros(2)));
        assert_eq!(events.len(), 2);
    }

    #[tokio::test]
    async fn a_finish_reason_without_done_is_complete_but_nothing_is_truncation() {
        let whole =
            run(&["data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"length\"}]}\n\n"])
                .await;
        let Some(Ok(StreamEvent::Done(reply))) = whole.last() else {
            panic!("{whole:?}")
        };
        assert_eq!(reply.finish_reason, FinishReason::Length);

        let cut = run(&["data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"]).await;
        assert!(
            matches!(
                cut.last(),
                Some(Err(Error::InvalidResponse { transient: true, .. }))
            ),
            "{cut:?}"
        );
    }

    #[tokio::test]
    async fn an_error_event_ends_the_stream() {
        let events = run(&[
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"error\":{\"message\":\"upstream died\"}}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"never\"}}]}\n\n",
        ])
        .await;
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[1], Err(Error::Provider { message, .. }) if message == "upstream died"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_hits_the_first_event_timeout() {
        let silent: ByteStream = Box::pin(futures::stream::pending());
        let events: Vec<_> = parse(silent, ctx()).collect().await;
        assert!(matches!(
            events.as_slice(),
            [Err(Error::Timeout {
                phase: TimeoutPhase::FirstByte,
                ..
            })]
        ));
    }
}
