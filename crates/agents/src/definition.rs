//! What an agent is: a name, the cascade that answers each turn, its window settings, the side-effect
//! policies of the tools its cascade calls, and its limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use rvbbit_cascade::model::Cascade;
use rvbbit_engine::tools::SideEffect;
use serde::{Deserialize, Serialize};

use crate::window::WindowSettings;

/// What calling a tool in a turn does to the world, and so what a newer message may do to the turn.
///
/// Declared per agent (the `tools:` map of an agent file); a tool the agent does not name takes the
/// class of its engine definition ([`SideEffect`]: pure, idempotent, or irreversible for tools that
/// change the world, such as `linux_shell` or `http_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolPolicy {
    /// Reads only; a turn that called it can still be superseded and run again.
    Pure,
    /// Repeating the call is harmless; a turn that called it can still be superseded.
    Idempotent,
    /// Changes the world, but can be undone: the turn commits (later messages queue) and the call is
    /// made at most once per turn group.
    Compensatable,
    /// Changes the world for good: the turn commits and the call is made at most once per turn group.
    Irreversible,
}

impl ToolPolicy {
    /// Whether a call commits the turn (later messages queue as a new turn group).
    pub fn commits(self) -> bool {
        matches!(self, ToolPolicy::Compensatable | ToolPolicy::Irreversible)
    }

    /// The text form (`pure`, `idempotent`, `compensatable`, `irreversible`).
    pub fn as_str(self) -> &'static str {
        match self {
            ToolPolicy::Pure => "pure",
            ToolPolicy::Idempotent => "idempotent",
            ToolPolicy::Compensatable => "compensatable",
            ToolPolicy::Irreversible => "irreversible",
        }
    }

    /// The policy of a tool the agent does not name, from its engine class.
    pub fn of_side_effect(effect: SideEffect) -> ToolPolicy {
        match effect {
            SideEffect::Pure => ToolPolicy::Pure,
            SideEffect::Idempotent => ToolPolicy::Idempotent,
            _ => ToolPolicy::Irreversible,
        }
    }
}

/// The bounds of an agent's conversations (the `limits:` block of an agent file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentLimits {
    /// The largest message text plus attachments, in bytes (default 16384; RVB-G002 above).
    pub max_message_bytes: usize,
    /// The most attachments on one message (default 8; RVB-G003 above).
    pub max_attachments: usize,
    /// The most messages a conversation holds unanswered (default 64; RVB-G004 above).
    pub max_pending_messages: usize,
    /// How many earlier messages (user and agent) the cascade sees as `input.history` (default 50).
    pub history_messages: usize,
    /// How long a conversation with nothing to do keeps its task, in milliseconds (default 60000).
    pub idle_ms: u64,
}

impl Default for AgentLimits {
    fn default() -> Self {
        AgentLimits {
            max_message_bytes: 16 * 1024,
            max_attachments: 8,
            max_pending_messages: 64,
            history_messages: 50,
            idle_ms: 60_000,
        }
    }
}

impl AgentLimits {
    /// Every problem with these limits (empty when they are usable).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let checks: [(&str, usize, usize); 4] = [
            ("max_message_bytes", self.max_message_bytes, 1024 * 1024),
            ("max_attachments", self.max_attachments, 64),
            ("max_pending_messages", self.max_pending_messages, 10_000),
            ("history_messages", self.history_messages, 1000),
        ];
        for (name, value, most) in checks {
            if value == 0 || value > most {
                out.push(format!("limits.{name} ({value}) must be 1..={most}"));
            }
        }
        if self.idle_ms == 0 || self.idle_ms > 86_400_000 {
            out.push(format!("limits.idle_ms ({}) must be 1..=86400000", self.idle_ms));
        }
        out
    }
}

/// An agent: a validated cascade served as a conversation partner.
#[derive(Clone, Debug)]
pub struct Agent {
    /// The agent's name (the `{agent}` of the URL, the file stem of `agents/NAME.yaml`).
    pub name: String,
    /// The cascade that answers each turn.
    pub cascade: Arc<Cascade>,
    /// Turn-accumulation window settings.
    pub window: WindowSettings,
    /// Tool side-effect policies by tool name, over the tools' own classes.
    pub tools: BTreeMap<String, ToolPolicy>,
    /// Bounds of its conversations.
    pub limits: AgentLimits,
}

impl Agent {
    /// An agent named `name` answering with `cascade`, default window, policies and limits.
    pub fn new(name: impl Into<String>, cascade: Cascade) -> Self {
        Agent {
            name: name.into(),
            cascade: Arc::new(cascade),
            window: WindowSettings::default(),
            tools: BTreeMap::new(),
            limits: AgentLimits::default(),
        }
    }

    /// Declare the policy of `tool`.
    pub fn with_tool(mut self, tool: impl Into<String>, policy: ToolPolicy) -> Self {
        self.tools.insert(tool.into(), policy);
        self
    }

    /// Set the window settings.
    pub fn with_window(mut self, window: WindowSettings) -> Self {
        self.window = window;
        self
    }

    /// Set the limits.
    pub fn with_limits(mut self, limits: AgentLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Every problem with the definition (window and limits), empty when usable.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.window.problems();
        out.extend(self.limits.problems());
        out
    }
}
