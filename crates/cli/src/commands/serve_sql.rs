//! `rvbbit serve sql`: the PostgreSQL wire server (psql, JDBC, psycopg, BI tools) over rvbbit's SQL
//! sessions, one session per connection.

use std::time::Duration;

use rvbbit_core::codes;
use rvbbit_sql::pgwire::{WireAuth, WireServer};

use super::serve::{address, coded};
use super::storage::{Signals, block_on, fail};
use super::{Outcome, load_config, setup};
use crate::cli::Cli;
use crate::output::{self, Out};

/// Arguments of `rvbbit serve sql`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (default: the `sql.host` setting, 127.0.0.1). Anything but a loopback
    /// address requires API keys, which clients send as their password; without one the server refuses
    /// to start (exit 6).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (default: the `sql.port` setting, 15432; 0 picks a free one and prints it).
    #[arg(long)]
    port: Option<u16>,
    /// Seconds running statements may take to finish on SIGINT/SIGTERM before the server exits anyway
    /// (default: the `server.shutdown_grace_seconds` setting, 10).
    #[arg(long, value_name = "SECONDS")]
    shutdown_grace: Option<u64>,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    let config = load_config(cli, out)?.config;
    let host = args.host.clone().unwrap_or_else(|| config.sql.host.clone());
    let (addr, loopback) = address(&host, args.port.unwrap_or(config.sql.port))?;
    let grace = Duration::from_secs(
        args.shutdown_grace
            .unwrap_or(config.server.shutdown_grace_seconds),
    );
    block_on(async move {
        let mut signals = Signals::install()?;
        let parts = setup::sql_runtime(&config).await?;
        let auth = if loopback {
            WireAuth::Trust
        } else {
            let Some(store) = parts.store.clone() else {
                return Err(coded(
                    codes::C_UNSAFE_BIND,
                    format!("refusing to listen on {addr}: the store cannot be opened to check API keys"),
                    "fix the store (`rvbbit doctor`), or bind to 127.0.0.1",
                ));
            };
            if store.active_keys().await.map_err(fail)? == 0 {
                return Err(coded(
                    codes::C_UNSAFE_BIND,
                    format!("refusing to listen on {addr} without authentication: no API key exists"),
                    "create one with `rvbbit keys create --name NAME` (clients send it as their password), or bind to 127.0.0.1",
                ));
            }
            WireAuth::ApiKeys(store)
        };
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
                "rvbbit serve sql: listening on {bound} (PostgreSQL protocol; {}); Ctrl-C stops it\n",
                if loopback {
                    "no password on loopback"
                } else {
                    "password = an API key"
                }
            ));
        }
        let server = WireServer::new(parts.runtime, auth, grace);
        let stats = server
            .serve(listener, async move {
                let caught = signals.recv().await;
                tracing::info!(?caught, "shutting down");
            })
            .await;
        if stats.abandoned > 0 && !out.quiet {
            output::stderr(&format!(
                "rvbbit serve sql: {} statement(s) were still running after {} s and were abandoned\n",
                stats.abandoned,
                args_grace(grace)
            ));
        }
        let flushed = parts.writer.shutdown().await.map_err(fail)?;
        if flushed.spilled > 0 && !out.quiet {
            output::stderr(&format!(
                "warning[{}]: {} event(s) spilled to .rvbbit/spill/; load them with `rvbbit db replay`\n",
                codes::S_SPILLED.code,
                flushed.spilled
            ));
        }
        Ok(0)
    })
}

fn args_grace(grace: Duration) -> u64 {
    grace.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_told_apart_from_network_addresses() {
        assert!(address("127.0.0.1", 1).unwrap().1);
        assert!(address("localhost", 1).unwrap().1);
        assert!(!address("0.0.0.0", 1).unwrap().1);
        assert!(address("example.com", 1).is_err());
    }
}
