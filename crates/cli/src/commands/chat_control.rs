//! `rvbbit chat-control`: one chat command through the same code as `POST /hooks/…` (crate
//! rvbbit-channels), here, without HTTP; the reply is printed.

use std::sync::Arc;

use rvbbit_channels::Channels;
use rvbbit_core::codes;
use rvbbit_engine::tools::Registry;
use serde_json::json;

use super::run::provider;
use super::serve::{coded, load_agents};
use super::setup::store_writer;
use super::storage::block_on;
use super::{Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// Arguments of `rvbbit chat-control`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The user the command comes from (a platform user id or name).
    #[arg(long, value_name = "USER")]
    user: String,
    /// Act as this `[channels.NAME]` integration: its allowlist, rate limit and breaker apply. Without
    /// it, the command runs as the local operator (every command allowed; audit integration `cli`).
    #[arg(long, value_name = "NAME")]
    integration: Option<String>,
    /// The command, as typed in the chat: `!run CASCADE [JSON]`, `!status ID`, `!cancel ID`,
    /// `!list [FILTER]`, `!agents`, `!help [COMMAND]`, or `/rvbbit WORDS`.
    #[arg(value_name = "COMMAND")]
    command: String,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    let config = load_config(cli, out)?.config;
    if let Some(name) = &args.integration
        && !config.channels.contains_key(name)
    {
        let known: Vec<&str> = config.channels.keys().map(String::as_str).collect();
        return Err(coded(
            codes::K_UNKNOWN,
            format!("no integration is named `{name}`"),
            &format!(
                "name a `[channels.NAME]` table of rvbbit.toml ({}), or leave out --integration",
                if known.is_empty() {
                    "there are none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    block_on(async move {
        let (writer, store) = store_writer(&config).await;
        let provider = provider(&config, None, None).await?;
        let registry = Registry::builtin();
        let gates = rvbbit_agents::Gates::default();
        let mut engine =
            super::setup::configured_engine(gates.wrap(&registry), &config, provider, writer.handle());
        if let Some(store) = store {
            engine = engine.with_store(Arc::clone(&store));
        }
        let agents = load_agents(&engine, gates, &registry, &config.roots, out);
        let channels = Channels::new(
            &config.channels,
            engine,
            Some(agents.clone()),
            config.roots.clone(),
        )
        .map_err(|e| coded(e.code(), e.to_string(), e.code().fix))?;
        let reply = channels
            .command(args.integration.as_deref(), &args.user, &args.command)
            .await
            .map_err(|e| coded(e.code(), e.to_string(), e.code().fix));
        channels.shutdown().await;
        agents.shutdown().await;
        // The audit events are written before the reply is printed.
        if let Err(e) = writer.shutdown().await {
            output::stderr(&format!("warning: audit events were not all stored: {e}\n"));
        }
        let reply = reply?;
        let printed = match out.format {
            Format::Json => output::json(&json!({"reply": reply})),
            Format::Text => output::stdout(&format!("{reply}\n")),
        };
        printed.map_err(super::Failure::from)?;
        Ok(0)
    })
}
