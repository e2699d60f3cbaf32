//! Shared helpers: settings pointing at a test server, with small timeouts.

use std::time::Duration;

use rvbbit_llm::{BreakerSettings, ChatRequest, Client, Message, ProviderSettings, RetryPolicy, Timeouts};
use rvbbit_testkit::TestServer;

/// Settings for `server`: a key, short timeouts, three retries without jitter (so waits are exact), no
/// breaker unless a test sets one.
pub(crate) fn settings(server: &TestServer) -> ProviderSettings {
    let mut s = ProviderSettings::new(server.base_url()).with_api_key("sk-test-secret");
    s.name = "testkit".to_owned();
    s.timeouts = Timeouts {
        connect: Duration::from_secs(1),
        first_byte: Duration::from_secs(5),
        total: Duration::from_secs(120),
    };
    s.retry = RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(100),
        jitter: false,
        ..RetryPolicy::default()
    };
    s.breaker = BreakerSettings {
        failure_threshold: 0,
        ..BreakerSettings::default()
    };
    s
}

pub(crate) fn client(server: &TestServer) -> Client {
    Client::new(settings(server)).unwrap()
}

pub(crate) fn ask(model: &str, text: &str) -> ChatRequest {
    ChatRequest::new(model, vec![Message::user(text)])
}
