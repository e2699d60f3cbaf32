//! `http_request`: one HTTP call with reqwest.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{SideEffect, Tool, ToolContext, ToolError, str_arg};

/// Most bytes of a response body kept.
const BODY_CAP: usize = 4 * 1024 * 1024;

/// `http_request(url, method=GET, headers?, body?, json?)`: returns `{status, headers, body, _route}`;
/// `body` is parsed JSON when the response is JSON, text otherwise; `_route` is `error` for 4xx/5xx.
#[derive(Debug, Default)]
pub struct HttpRequest {
    /// Built at the first request: building it (TLS roots) costs milliseconds that a run without HTTP
    /// cells should not pay at start-up (issue 21).
    client: std::sync::OnceLock<reqwest::Client>,
}

#[async_trait]
impl Tool for HttpRequest {
    fn name(&self) -> &str {
        "http_request"
    }
    fn description(&self) -> &str {
        "Make an HTTP request and return the status, headers and body."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "method": {"type": "string"},
                "headers": {"type": "object"},
                "body": {"type": "string"},
                "json": {}
            },
            "required": ["url"]
        })
    }
    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }
    fn default_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(60))
    }
    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let url = str_arg(&args, "url")?;
        let method = args
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| ToolError::InvalidArguments(format!("`{method}` is not an HTTP method")))?;
        let mut req = self.client.get_or_init(reqwest::Client::new).request(method, url);
        if let Some(Value::Object(h)) = args.get("headers") {
            for (k, v) in h {
                let v = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
                req = req.header(k, v);
            }
        }
        if let Some(key) = &ctx.idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        if let Some(j) = args.get("json") {
            req = req.json(j);
        } else if let Some(b) = args.get("body") {
            req = req.body(b.as_str().map(str::to_owned).unwrap_or_else(|| b.to_string()));
        }
        let limit = ctx
            .timeout
            .or(self.default_timeout())
            .unwrap_or(Duration::from_secs(60));
        let resp = tokio::time::timeout(limit, req.send())
            .await
            .map_err(|_| ToolError::Timeout(limit))?
            .map_err(|e| ToolError::Failed(format!("request to {url} failed: {e}")))?;
        let status = resp.status().as_u16();
        let mut headers = Map::new();
        for (k, v) in resp.headers() {
            headers.insert(k.to_string(), json!(v.to_str().unwrap_or("")));
        }
        let bytes = tokio::time::timeout(limit, resp.bytes())
            .await
            .map_err(|_| ToolError::Timeout(limit))?
            .map_err(|e| ToolError::Failed(format!("reading the body from {url} failed: {e}")))?;
        let bytes = &bytes[..bytes.len().min(BODY_CAP)];
        let text = String::from_utf8_lossy(bytes).into_owned();
        let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        Ok(json!({
            "status": status,
            "headers": headers,
            "body": body,
            "_route": if status >= 400 { "error" } else { "success" },
        }))
    }
}
