//! Record and replay: [`Recorder`] writes every reply of a real provider to a file, keyed by a
//! canonical hash of the request; [`ReplayProvider`] answers from that file without any network, so
//! cascades can be tested in CI. A request missing from the file is an [`Error::ReplayMiss`] naming it.
//!
//! The file is JSON Lines, one `{"hash", "request", "response"}` object per call, in call order. The
//! same request recorded several times replays its responses in order (the last one repeats).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::provider::Provider;
use crate::request::ChatRequest;
use crate::response::{ChatResponse, ChatStream, StreamEvent};

/// The canonical hash of a request: SHA-256 (hex) of its JSON with object keys sorted, so field order
/// never changes the key. Streaming and non-streaming calls of the same request share a hash.
pub fn request_hash(request: &ChatRequest) -> String {
    let value = serde_json::to_value(request).unwrap_or(Value::Null);
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    hash: String,
    request: ChatRequest,
    response: ChatResponse,
}

/// A provider that forwards to `inner` and appends every successful reply to a recording file.
pub struct Recorder<P> {
    inner: P,
    file: Arc<RecordFile>,
}

impl<P> std::fmt::Debug for Recorder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.file.path)
            .finish_non_exhaustive()
    }
}

struct RecordFile {
    path: PathBuf,
    file: tokio::sync::Mutex<tokio::fs::File>,
}

impl RecordFile {
    async fn append(&self, request: &ChatRequest, response: &ChatResponse) -> Result<()> {
        let entry = Entry {
            hash: request_hash(request),
            request: request.clone(),
            response: response.clone(),
        };
        let mut line = serde_json::to_string(&entry)
            .map_err(|e| Error::Internal(format!("cannot serialise a recorded reply: {e}")))?;
        line.push('\n');
        // An async mutex: the guard is meant to be held across the write so lines never interleave.
        let mut file = self.file.lock().await;
        file.write_all(line.as_bytes())
            .await
            .map_err(|source| file_error(&self.path, source))?;
        file.flush()
            .await
            .map_err(|source| file_error(&self.path, source))
    }
}

impl<P: Provider> Recorder<P> {
    /// Record the replies of `inner` into `path`, which is created or truncated.
    ///
    /// # Errors
    /// [`Error::File`] when the file cannot be created.
    pub async fn create(inner: P, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|source| file_error(&path, source))?;
        Ok(Recorder {
            inner,
            file: Arc::new(RecordFile {
                path,
                file: tokio::sync::Mutex::new(file),
            }),
        })
    }

    /// The provider being recorded.
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

#[async_trait]
impl<P: Provider + 'static> Provider for Recorder<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let response = self.inner.chat(request).await?;
        self.file.append(request, &response).await?;
        Ok(response)
    }

    /// Events pass through as they arrive; the final reply is written before `Done` is delivered.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let inner = self.inner.chat_stream(request).await?;
        let file = Arc::clone(&self.file);
        let request = request.clone();
        Ok(Box::pin(inner.then(move |event| {
            let file = Arc::clone(&file);
            let request = request.clone();
            async move {
                if let Ok(StreamEvent::Done(reply)) = &event {
                    file.append(&request, reply).await?;
                }
                event
            }
        })))
    }
}

/// A provider answering from a recording made by [`Recorder`]; it never touches the network.
///
/// Replayed replies cost zero: their [`crate::Cost::avoided`] holds what the recorded call cost.
#[derive(Debug)]
pub struct ReplayProvider {
    path: PathBuf,
    entries: HashMap<String, Vec<ChatResponse>>,
    cursors: Mutex<HashMap<String, usize>>,
}

impl ReplayProvider {
    /// Load the recording at `path`.
    ///
    /// # Errors
    /// [`Error::File`] when the file cannot be read or a line is not a recorded call.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|source| file_error(&path, source))?;
        let mut entries: HashMap<String, Vec<ChatResponse>> = HashMap::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let entry: Entry = serde_json::from_str(line).map_err(|e| {
                file_error(
                    &path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {}: {e}", n + 1)),
                )
            })?;
            entries.entry(entry.hash).or_default().push(entry.response);
        }
        Ok(ReplayProvider {
            path,
            entries,
            cursors: Mutex::new(HashMap::new()),
        })
    }

    /// How many distinct requests the recording holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the recording is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[async_trait]
impl Provider for ReplayProvider {
    fn name(&self) -> &str {
        "replay"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let hash = request_hash(request);
        let Some(replies) = self.entries.get(&hash).filter(|r| !r.is_empty()) else {
            let summary: String = request
                .messages
                .last()
                .map(|m| m.text())
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect();
            return Err(Error::ReplayMiss {
                file: self.path.display().to_string(),
                hash,
                model: request.model.clone(),
                summary,
            });
        };
        let index = {
            let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
            let cursor = cursors.entry(hash).or_insert(0);
            let index = (*cursor).min(replies.len() - 1);
            *cursor += 1;
            index
        };
        let mut reply = replies
            .get(index)
            .cloned()
            .ok_or_else(|| Error::Internal("replay cursor out of range".into()))?;
        reply.cost = reply.cost.as_cached();
        Ok(reply)
    }
}

fn file_error(path: &Path, source: std::io::Error) -> Error {
    Error::File {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Message;

    #[test]
    fn hash_ignores_key_order_but_not_content() {
        let a = ChatRequest::new("m", vec![Message::user("hi")]);
        let b: ChatRequest = serde_json::from_str(
            r#"{"messages":[{"content":[{"text":"hi","type":"text"}],"role":"user"}],"model":"m"}"#,
        )
        .unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(
            request_hash(&a),
            request_hash(&ChatRequest::new("m", vec![Message::user("ho")]))
        );
    }
}
