//! `rvbbit keys create|list|revoke`: API keys of the HTTP door. The secret is printed once, at
//! creation; the store keeps only its SHA-256.

use rvbbit_core::Timestamp;
use serde_json::json;

use super::storage::{block_on, fail, open};
use super::{Failure, Outcome};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `rvbbit keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create a key and print its secret (shown only this once).
    Create {
        /// A label for the key (who or what uses it).
        #[arg(long, default_value = "default")]
        name: String,
        /// The tenant the key's requests act for (agents' conversations are the tenant's only); without
        /// it, the `default` tenant. 1 to 256 printable characters.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List keys (ids, names, dates; never secrets).
    List,
    /// Revoke a key: requests using it are refused from now on.
    Revoke {
        /// The key id (`key_…`), as `rvbbit keys list` shows it.
        #[arg(value_name = "KEY_ID")]
        key_id: String,
    },
}

pub(crate) fn run(cli: &Cli, cmd: &Command, out: Out) -> Outcome {
    block_on(async move {
        let opened = open(cli, out).await?;
        let store = opened.store;
        match cmd {
            Command::Create { name, tenant } => {
                let mut new = rvbbit_server::auth::generate(name);
                if let Some(t) = tenant {
                    if t.is_empty() || t.len() > 256 || t.chars().any(char::is_control) {
                        return Err(super::serve::coded(
                            rvbbit_core::codes::G_BAD_FIELD,
                            format!(
                                "`--tenant` must be 1 to 256 printable characters; got {} bytes",
                                t.len()
                            ),
                            "name the tenant as your platform does, such as `acme`",
                        ));
                    }
                    new.key.tenant = Some(t.clone());
                }
                store.key_insert(&new.key).await.map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({
                        "key_id": new.key.key_id,
                        "name": new.key.name,
                        "tenant": new.key.tenant,
                        "secret": new.secret,
                    }))?,
                    Format::Text => {
                        output::stdout(&format!("{}\n", new.secret))?;
                        if !out.quiet {
                            output::stderr(&format!(
                                "created {} ({}); the secret above is shown only once: clients send `Authorization: Bearer <secret>`\n",
                                new.key.key_id, new.key.name
                            ));
                        }
                    }
                }
            }
            Command::List => {
                let keys = store.keys().await.map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({"keys": keys.iter().map(|k| json!({
                        "key_id": k.key_id,
                        "name": k.name,
                        "created_at": k.created_at,
                        "last_used_at": k.last_used_at,
                        "revoked_at": k.revoked_at,
                    })).collect::<Vec<_>>()}))?,
                    Format::Text => {
                        let mut text = String::new();
                        if keys.is_empty() {
                            text.push_str("no API keys; create one with `rvbbit keys create --name NAME`\n");
                        }
                        for k in &keys {
                            let state = match k.revoked_at {
                                Some(t) => format!("revoked {t}"),
                                None => "active".to_owned(),
                            };
                            let used = k
                                .last_used_at
                                .map_or_else(|| "never used".to_owned(), |t| format!("last used {t}"));
                            text.push_str(&format!(
                                "{}  {:<16} created {}  {}  {}\n",
                                k.key_id, k.name, k.created_at, used, state
                            ));
                        }
                        output::stdout(&text)?;
                    }
                }
            }
            Command::Revoke { key_id } => {
                let key = store.key_revoke(key_id, Timestamp::now()).await.map_err(fail)?;
                match out.format {
                    Format::Json => {
                        output::json(&json!({"key_id": key.key_id, "revoked_at": key.revoked_at}))?
                    }
                    Format::Text => output::stdout(&format!("revoked {}\n", key.key_id))?,
                }
            }
        }
        Ok::<u8, Failure>(0)
    })
}
