//! Chat control: commands that run, inspect and cancel cascades from a chat, and their safeguards.
//!
//! Every command goes through the same steps ([`Control::execute`]), each recorded in the audit trail:
//! `command.attempt` → the rate limit (per integration and user) → the allowlist (per command) →
//! argument validation → for `!run`, the circuit breaker → the command → `command.success`,
//! `command.denied` or `command.failed`. Nothing is ever handed to a shell: a cascade name is only
//! looked up as a file under the cascade roots, and runs go through [`rvbbit_engine::Engine::run`].

pub mod args;
pub mod audit;
pub mod breaker;
mod exec;
pub mod limit;
pub mod parse;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvbbit_agents::Agents;
use rvbbit_core::{EventKind, codes};
use rvbbit_engine::Engine;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use self::audit::{Trail, Who};
use self::breaker::Breaker;
use self::limit::RateLimiter;
use self::parse::Command;

/// Who may do what on one integration, and its limiter and breaker.
#[derive(Debug)]
pub struct Guard {
    /// Users (ids or names) who may use every command but `!help`; empty: nobody. `None`: everyone
    /// (the local operator of `rvbbit chat-control` without `--integration`).
    allow_users: Option<Vec<String>>,
    /// Per command, the users in place of `allow_users`.
    command_users: BTreeMap<String, Vec<String>>,
    /// The groups that `@NAME` entries of the lists name.
    groups: BTreeMap<String, Vec<String>>,
    /// How often a `!run` sends a progress reply while it lives; `None`: never.
    status_interval: Option<Duration>,
    limiter: RateLimiter,
    breaker: Breaker,
}

impl Guard {
    /// A guard with these allowlists and rate.
    pub fn new(
        allow_users: Option<Vec<String>>,
        command_users: BTreeMap<String, Vec<String>>,
        per_minute: u32,
        burst: u32,
    ) -> Self {
        Guard {
            allow_users,
            command_users,
            groups: BTreeMap::new(),
            status_interval: None,
            limiter: RateLimiter::new(per_minute, burst),
            breaker: Breaker::default(),
        }
    }

    /// With these groups for the lists' `@NAME` entries (validated by the config loader: an unknown
    /// group allows nobody).
    #[must_use]
    pub fn with_groups(mut self, groups: BTreeMap<String, Vec<String>>) -> Self {
        self.groups = groups;
        self
    }

    /// With a progress reply every `seconds` while a `!run` lives (0: none).
    #[must_use]
    pub fn with_status_interval(mut self, seconds: u32) -> Self {
        self.status_interval = (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)));
        self
    }

    fn allows(&self, command: &str, who: &Who) -> bool {
        if command == "help" {
            return true;
        }
        let list = match (self.command_users.get(command), &self.allow_users) {
            (Some(list), _) => list,
            (None, Some(list)) => list,
            (None, None) => return true,
        };
        let is = |u: &String| *u == who.user || who.user_name.as_deref() == Some(u.as_str());
        list.iter().any(|entry| match entry.strip_prefix('@') {
            Some(group) => self
                .groups
                .get(group)
                .is_some_and(|members| members.iter().any(is)),
            None => is(entry),
        })
    }
}

/// What chat commands act on. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Control {
    engine: Engine,
    roots: Vec<PathBuf>,
    agents: Option<Agents>,
    /// Runs started from chat and still going, by session id.
    runs: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

/// A reply, and whether the command it answers succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The text to send back.
    pub text: String,
    /// The outcome recorded in the audit trail.
    pub outcome: Outcome,
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It ran and replied.
    Success,
    /// It was refused before running.
    Denied,
    /// It ran and failed.
    Failed,
}

impl Control {
    /// Commands running cascades under `roots` with `engine` (whose writer records the audit
    /// events), listing `agents`.
    pub fn new(engine: Engine, roots: Vec<PathBuf>, agents: Option<Agents>) -> Self {
        Control {
            engine,
            roots,
            agents,
            runs: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Run one command (`parsed`, from [`parse::parse`] of `text`) for `who` under `guard`, and reply.
    /// A `!run` waits for its run to end.
    pub async fn execute(
        &self,
        guard: &Guard,
        who: &Who,
        text: &str,
        parsed: Result<Command, String>,
    ) -> Reply {
        self.execute_with_updates(guard, who, text, parsed, None).await
    }

    /// [`Control::execute`], and while a `!run` lives, its updates sent to `updates`: "started
    /// SESSION" at once, then a progress reply naming the running cell every status interval of
    /// `guard` (at most 20). The final reply is returned, not sent.
    pub async fn execute_with_updates(
        &self,
        guard: &Guard,
        who: &Who,
        text: &str,
        parsed: Result<Command, String>,
        updates: Option<UnboundedSender<String>>,
    ) -> Reply {
        let mut trail = Trail::start(self.engine.writer().cloned(), who, text).await;
        let name = parsed.as_ref().map_or("invalid", Command::name);
        let reply = self.gate(guard, who, parsed).await;
        let reply = match reply {
            Ok(command) => self.run_command(guard, who, command, updates).await,
            Err(reply) => reply,
        };
        let (kind, reason) = match reply.outcome {
            Outcome::Success => (EventKind::CommandSuccess, None),
            Outcome::Denied => (EventKind::CommandDenied, Some(reply.text.as_str())),
            Outcome::Failed => (EventKind::CommandFailed, Some(reply.text.as_str())),
        };
        trail.end(kind, Some(name), reason).await;
        reply
    }

    /// The safeguards before a command runs: rate limit, allowlist, arguments.
    async fn gate(
        &self,
        guard: &Guard,
        who: &Who,
        parsed: Result<Command, String>,
    ) -> Result<Command, Reply> {
        if let Err(wait) = guard.limiter.check(&format!("{}:{}", who.integration, who.user)) {
            return Err(denied(
                codes::K_RATE_LIMITED,
                &format!(
                    "rate limit: too many commands; try again in {} s",
                    wait.as_secs_f64().ceil().max(1.0)
                ),
            ));
        }
        let command = parsed.map_err(|why| denied(codes::K_REFUSED, &why))?;
        if !guard.allows(command.name(), who) {
            return Err(denied(
                codes::K_DENIED,
                &format!(
                    "`{}` may not use `!{}` on this integration",
                    who.user_name.as_deref().unwrap_or(&who.user),
                    command.name()
                ),
            ));
        }
        Ok(command)
    }

    async fn run_command(
        &self,
        guard: &Guard,
        who: &Who,
        command: Command,
        updates: Option<UnboundedSender<String>>,
    ) -> Reply {
        match command {
            Command::Run { cascade, input } => {
                self.run(guard, who, &cascade, input.as_deref(), updates).await
            }
            Command::Status(id) => self.status(&id).await,
            Command::Cancel(id) => self.cancel(&id),
            Command::List(filter) => self.list(filter.as_deref()).await,
            Command::Agents => success(match &self.agents {
                Some(a) if !a.names().is_empty() => format!("agents: {}", a.names().join(", ")),
                _ => "no agents are served here".into(),
            }),
            Command::Help(topic) => help(topic.as_deref()),
        }
    }
}

fn denied(code: &rvbbit_core::ErrorCode, why: &str) -> Reply {
    Reply {
        text: format!("{code} {why}"),
        outcome: Outcome::Denied,
    }
}

fn success(text: String) -> Reply {
    Reply {
        text,
        outcome: Outcome::Success,
    }
}

fn help(topic: Option<&str>) -> Reply {
    match topic.map(|t| t.trim_start_matches('!')) {
        None => success(format!(
            "commands (also as /rvbbit WORDS):\n{}",
            parse::COMMANDS
                .iter()
                .filter_map(|c| parse::usage(c))
                .collect::<Vec<_>>()
                .join("\n")
        )),
        Some(t) => match parse::usage(t) {
            Some(u) => success(u.to_owned()),
            None => denied(
                codes::K_REFUSED,
                &format!("no command `!{t}`; `!help` lists them"),
            ),
        },
    }
}
