//! `rvbbit health`: is the store reachable (and how fast), at the right schema, and is a provider key
//! configured, and (when `queue.url` is set) is the job queue reachable. Exit 0 when healthy, 5 when the
//! store or the queue is not, 6 when no provider key is configured: fit for a Kubernetes probe.

use std::time::Instant;

use serde_json::json;

use super::storage::{block_on, fail};
use super::{Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `rvbbit health` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Do not require a provider API key (for hosts that only read the store).
    #[arg(long)]
    pub(crate) no_provider: bool,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    let loaded = load_config(cli, out)?;
    let provider = &loaded.config.provider;
    let key_configured = provider.api_key.as_deref().is_some_and(|k| !k.is_empty())
        || std::env::var(&provider.api_key_env).is_ok_and(|k| !k.is_empty());
    let base = std::env::current_dir().unwrap_or_default();
    let url = loaded.config.store.url.clone();
    // Shown in output: never with its password.
    let shown_url = rvbbit_core::config::mask_url(&url);
    let started = Instant::now();
    let store_result = block_on(async {
        let store = rvbbit_store::open(&url, &base).await.map_err(fail)?;
        store.ping().await.map_err(fail)?;
        let server = store.server_version().await.map_err(fail)?;
        Ok((store.status().await.map_err(fail)?, server))
    });
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (store_ok, version, store_error, code) = match &store_result {
        Ok((s, _)) => (true, Some(s.schema_version), None, 0),
        Err(super::Failure::Coded(c)) => (false, None, Some(c.message.clone()), c.code.exit_code()),
        Err(_) => (false, None, Some("the store could not be opened".to_owned()), 5),
    };
    let server_version = store_result.as_ref().ok().and_then(|(_, v)| v.clone());
    let backend = url
        .split_once("://")
        .map_or("unknown", |(scheme, _)| match scheme {
            "postgresql" => "postgres",
            other => other,
        });
    // The mock provider answers offline: it needs no key.
    let mock = provider.kind == rvbbit_core::config::ProviderKind::Mock;
    let key_ok = key_configured || args.no_provider || mock;
    // The event sink never decides the exit code: runs go on without it (its events spill and are
    // replayed), so a probe must not restart a healthy host because the warehouse is down.
    let sink = loaded
        .config
        .store
        .events
        .url
        .as_ref()
        .map(|u| block_on(async { Ok(super::sink::report(u, &base).await) }))
        .transpose()?;
    let queue = match &loaded.config.queue.url {
        Some(_) => Some(block_on(async { Ok(queue_probe(&loaded.config).await) })?),
        None => None,
    };
    let exit = if !store_ok {
        code
    } else if queue.as_ref().is_some_and(|q| q["reachable"] != true) {
        rvbbit_core::codes::S_QUEUE_UNAVAILABLE.exit_code()
    } else if !key_ok {
        6
    } else {
        0
    };
    match out.format {
        Format::Json => output::json(&json!({
            "status": if exit == 0 { "ok" } else { "unhealthy" },
            "exit_code": exit,
            "store": {"url": shown_url, "backend": backend, "server_version": server_version, "reachable": store_ok, "latency_ms": latency_ms, "schema_version": version, "error": store_error},
            "provider": {"kind": provider.kind, "api_key_env": provider.api_key_env, "key_configured": key_configured},
            "events_sink": sink,
            "queue": queue,
        }))?,
        Format::Text => {
            let mut text = String::new();
            match &store_error {
                None => text.push_str(&format!(
                    "ok    store {shown_url} ({backend}{}) reachable in {latency_ms:.1} ms, schema version {}\n",
                    server_version
                        .as_deref()
                        .map_or(String::new(), |v| format!(" {v}")),
                    version.unwrap_or(0)
                )),
                Some(e) => text.push_str(&format!("FAIL  store {shown_url}: {e}\n")),
            }
            if mock {
                text.push_str("ok    provider mock (offline answers, no key needed)\n");
            } else if key_configured {
                text.push_str(&format!(
                    "ok    provider key configured ({})\n",
                    provider.api_key_env
                ));
            } else {
                text.push_str(&format!(
                    "{}  provider key not configured: set {}\n",
                    if args.no_provider { "skip" } else { "FAIL" },
                    provider.api_key_env
                ));
            }
            if let Some(q) = &queue {
                match q["error"].as_str() {
                    None => text.push_str(&format!(
                        "ok    queue {} reachable, {} job(s) waiting, {} in flight, {} dead letter(s)\n",
                        q["url"].as_str().unwrap_or_default(),
                        q["depth"],
                        q["in_flight"],
                        q["dead_letters"]
                    )),
                    Some(e) => text.push_str(&format!("FAIL  queue: {e}\n")),
                }
            }
            if let Some(sink) = &sink {
                let word = if sink.ok() { "ok  " } else { "WARN" };
                text.push_str(&format!("{word}  {}\n", sink.line()));
            }
            output::stdout(&text)?;
        }
    }
    Ok(exit)
}

/// The job queue's reachability and counts, as the `queue` object of the JSON output.
async fn queue_probe(config: &rvbbit_core::Config) -> serde_json::Value {
    let shown = config.queue.url.as_deref().map(rvbbit_core::config::mask_url);
    let status = match super::queue::open(config, &super::queue::QueueArg::default(), false).await {
        Ok(queue) => queue.status().await.map_err(|e| e.to_string()),
        Err(super::Failure::Coded(c)) => Err(c.message),
        Err(_) => Err("the queue could not be opened".to_owned()),
    };
    match status {
        Ok(s) => json!({"url": shown, "reachable": true, "depth": s.depth, "in_flight": s.in_flight,
            "dead_letters": s.dead_letters, "error": null}),
        Err(e) => json!({"url": shown, "reachable": false, "depth": null, "in_flight": null,
            "dead_letters": null, "error": e}),
    }
}
