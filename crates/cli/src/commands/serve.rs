//! `rvbbit serve`: the HTTP API and live event streams (crate rvbbit-server) over the configured store,
//! running cascades with the configured provider.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rvbbit_core::codes;
use rvbbit_engine::Engine;
use rvbbit_engine::human::StoreAnswers;
use rvbbit_engine::tools::Registry;
use rvbbit_server::{Server, ServerConfig};
use rvbbit_store::{Writer, WriterOptions};

use super::run::provider;
use super::storage::{Signals, block_on, fail};
use super::{Coded, Failure, Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Out};

/// How often a running session's heartbeat is refreshed.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// How often a waiting run looks for its answer in the store.
const ANSWER_POLL: Duration = Duration::from_millis(250);
/// How long a run started over HTTP waits in the server for an answer before it suspends (the session
/// stays `waiting`; answering it in the Studio or `POST .../resume` continues it).
const ANSWER_WAIT: Duration = Duration::from_secs(600);

/// Arguments of `rvbbit serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (default 127.0.0.1). Anything but a loopback address (127.0.0.1, ::1,
    /// localhost) requires API keys: create one with `rvbbit keys create` first, or the server refuses
    /// to start (exit 6). Config: server.host
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (default 5050; 0 picks a free one and prints it). Config: server.port
    #[arg(long)]
    port: Option<u16>,
    /// Directories whose cascades the API lists and runs (repeatable). Default: the `roots` setting,
    /// else the current directory.
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<PathBuf>,
    /// Seconds in-flight runs may take to finish on shutdown before they are cancelled (default 10).
    /// Config: server.shutdown_grace_seconds
    #[arg(long, value_name = "SECONDS")]
    shutdown_grace: Option<u64>,
    /// Serve something else than the HTTP API.
    #[command(subcommand)]
    command: Option<ServeCommand>,
}

/// What `rvbbit serve` can serve besides the HTTP API.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ServeCommand {
    /// Serve SQL over the PostgreSQL wire protocol (psql, JDBC, psycopg, BI tools) on 127.0.0.1:15432
    /// (settings `sql.host`, `sql.port`). Any other address requires API keys, sent as the password.
    Sql(super::serve_sql::Args),
}

pub(crate) fn coded(code: &'static rvbbit_core::ErrorCode, message: String, hint: &str) -> Failure {
    Failure::Coded(Coded {
        code,
        message,
        hint: hint.into(),
        causes: Vec::new(),
    })
}

/// The address to bind, and whether it is loopback only (shared with `serve sql`).
pub(crate) fn address(host: &str, port: u16) -> Result<(SocketAddr, bool), Failure> {
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.trim_matches(['[', ']']).parse().map_err(|_| {
            coded(
                codes::C_USAGE,
                format!("`--host {host}` is not an IP address"),
                "use an address such as 127.0.0.1 (the default), ::1 or 0.0.0.0",
            )
        })?
    };
    Ok((SocketAddr::new(ip, port), ip.is_loopback()))
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    if let Some(ServeCommand::Sql(sql)) = &args.command {
        return super::serve_sql::run(cli, sql, out);
    }
    let config = load_config(cli, out)?.config;
    let host = args.host.clone().unwrap_or_else(|| config.server.host.clone());
    let port = args.port.unwrap_or(config.server.port);
    let grace = args
        .shutdown_grace
        .unwrap_or(config.server.shutdown_grace_seconds);
    let (addr, loopback) = address(&host, port)?;
    let roots = if !args.roots.is_empty() {
        args.roots.clone()
    } else if !config.roots.is_empty() {
        config.roots.clone()
    } else {
        vec![std::env::current_dir().unwrap_or_default()]
    };
    for root in &roots {
        if !root.is_dir() {
            return Err(coded(
                codes::C_INVALID,
                format!("the cascade root `{}` is not a directory", root.display()),
                "pass existing directories with --root, or fix the `roots` setting",
            ));
        }
    }
    block_on(async move {
        let mut signals = Signals::install()?;
        let base = std::env::current_dir().unwrap_or_default();
        let store = rvbbit_store::open(&config.store.url, &base).await.map_err(fail)?;
        if !loopback && store.active_keys().await.map_err(fail)? == 0 {
            return Err(coded(
                codes::C_UNSAFE_BIND,
                format!("refusing to listen on {addr} without authentication: no API key exists"),
                "create one with `rvbbit keys create --name NAME` (clients send `Authorization: Bearer KEY`), or bind to 127.0.0.1",
            ));
        }
        let provider = provider(&config, None, None).await?;
        let mut writer_options = WriterOptions::new(base.join(".rvbbit").join("spill"));
        if let Some(url) = &config.store.events.url {
            writer_options.sink = super::sink::writer_sink(url, &base).await;
        }
        let writer = Writer::spawn(store.clone(), writer_options);
        let mut registry = Registry::builtin();
        let batch_tables = rvbbit_sql::register_tools(&mut registry);
        // Agent turns reach their commit point through the gates (every tool wrapped; other runs see
        // the plain tools).
        let gates = rvbbit_agents::Gates::default();
        let registry_for_agents = registry.clone();
        let registry = gates.wrap(&registry);
        // Cancelled on shutdown: runs waiting for a person suspend (stay `waiting`) at once.
        let suspend = rvbbit_engine::CancellationToken::new();
        let engine = super::setup::configured_engine(registry, &config, provider, writer.handle())
            .with_heartbeat(store.clone(), HEARTBEAT_EVERY)
            .with_store(store.clone())
            .with_human(Arc::new(
                StoreAnswers::new(store.clone(), ANSWER_POLL, Some(ANSWER_WAIT))
                    .with_suspend(suspend.clone()),
            ));
        let sql = rvbbit_sql::SqlRuntime::new(
            engine.clone(),
            Some(store.clone()),
            Some(writer.handle()),
            super::setup::served_sql_settings(&config),
            batch_tables,
        )
        .map_err(|e| coded(e.code(), e.to_string(), &e.hint()))?;
        let sql = super::sink::sql_reading_sink(sql, config.store.events.url.as_deref())
            .await
            .map_err(|e| coded(e.code(), e.to_string(), &e.hint()))?;
        let roots_for_agents = roots.clone();
        let mut server_config = ServerConfig::new(roots)
            .with_required_key(!loopback)
            .with_shutdown_grace(Duration::from_secs(grace))
            .with_cors_origins(config.server.cors_origins.clone())
            .with_allowed_hosts(config.server.allowed_hosts.clone())
            .with_connection_limits(
                usize::try_from(config.limits.http_connections).unwrap_or(usize::MAX),
                Duration::from_secs(config.limits.http_header_timeout_seconds.max(1)),
            );
        if let Some(url) = &config.queue.url {
            server_config = server_config.with_queue(url.clone(), super::queue::options(&config, false));
        }
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            coded(
                codes::C_INVALID,
                format!("cannot listen on {addr}: {e}"),
                "pick a free port with --port (0 picks one), or stop the process holding it",
            )
        })?;
        let bound = listener.local_addr().unwrap_or(addr);
        if !out.quiet {
            output::stderr(&format!(
                "rvbbit serve: listening on http://{bound} (API keys {}); Ctrl-C stops it\n",
                if loopback {
                    "not required on loopback"
                } else {
                    "required"
                }
            ));
        }
        let agents = load_agents(&engine, gates, &registry_for_agents, &roots_for_agents, out);
        // Chat integrations (`[channels.NAME]`, POST /hooks/{kind}/{NAME}; docs/channels.md).
        let channels = rvbbit_channels::Channels::new(
            &config.channels,
            engine.clone(),
            Some(agents.clone()),
            roots_for_agents.clone(),
        )
        .map_err(|e| coded(e.code(), e.to_string(), e.code().fix))?
        .with_tenants(&config.tenants);
        let server = Server::new(store, engine, server_config)
            .with_agents(agents)
            .with_channels(channels)
            .with_writer(writer.handle())
            .with_sql(sql)
            .with_suspend_waiting(suspend);
        server
            .serve(listener, async move {
                let caught = signals.recv().await;
                tracing::info!(?caught, "shutting down");
            })
            .await
            .map_err(|e| {
                Failure::Coded(Coded::from_error(
                    codes::INTERNAL,
                    &e,
                    "the HTTP server stopped with an error",
                ))
            })?;
        writer.shutdown().await.map_err(fail)?;
        Ok(0)
    })
}

/// The agents of `agents/*.yaml` under the first root (docs/agents.md); a file that does not load is
/// reported on stderr and left out.
pub(crate) fn load_agents(
    engine: &Engine,
    gates: rvbbit_agents::Gates,
    registry: &Registry,
    roots: &[PathBuf],
    out: Out,
) -> rvbbit_agents::Agents {
    let agents = rvbbit_agents::Agents::new(engine.clone(), gates);
    let Some(root) = roots.first() else {
        return agents;
    };
    let mut catalog = rvbbit_cascade::Catalog::builtin();
    registry.fill_catalog(&mut catalog);
    let (loaded, failed) = rvbbit_agents::file::load_dir(&root.join("agents"), &catalog);
    for (path, e) in failed {
        tracing::warn!(path = %path.display(), error = %e, "An agent file was not loaded.");
        if !out.quiet {
            output::stderr(&format!("rvbbit serve: {}: {e}\n", path.display()));
        }
    }
    for agent in loaded {
        let name = agent.name.clone();
        if let Err(e) = agents.add(agent) {
            output::stderr(&format!("rvbbit serve: agent `{name}`: {e}\n"));
        }
    }
    agents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_told_apart_from_network_addresses() {
        assert!(address("127.0.0.1", 1).unwrap().1);
        assert!(address("localhost", 1).unwrap().1);
        assert!(address("::1", 1).unwrap().1);
        assert!(address("[::1]", 1).unwrap().1);
        assert!(!address("0.0.0.0", 1).unwrap().1);
        assert!(!address("192.168.1.10", 1).unwrap().1);
        assert!(address("example.com", 1).is_err());
    }
}
