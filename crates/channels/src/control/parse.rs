//! Reading a chat command: `!run CASCADE [json]`, `!status ID`, `!cancel ID`, `!list [filter]`,
//! `!agents`, `!help [command]`, or the same words after `/rvbbit`.

/// The commands, for `!help` and error messages.
pub const COMMANDS: [&str; 6] = ["run", "status", "cancel", "list", "agents", "help"];

/// A parsed chat command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Run a cascade with an optional JSON input (still text: validated later).
    Run {
        /// The cascade's name as typed.
        cascade: String,
        /// The input text, if any.
        input: Option<String>,
    },
    /// A session's status.
    Status(String),
    /// Cancel a run started from chat.
    Cancel(String),
    /// The cascades `!run` accepts, optionally those whose path contains a filter.
    List(Option<String>),
    /// The agents.
    Agents,
    /// The commands, or one command's usage.
    Help(Option<String>),
}

impl Command {
    /// The command's word (`run`, `status`, …), as used in `command_users` and audit events.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run { .. } => "run",
            Command::Status(_) => "status",
            Command::Cancel(_) => "cancel",
            Command::List(_) => "list",
            Command::Agents => "agents",
            Command::Help(_) => "help",
        }
    }
}

/// The usage line of a command.
pub fn usage(command: &str) -> Option<&'static str> {
    Some(match command {
        "run" => {
            "!run CASCADE [JSON]: run a cascade under the roots with a JSON object input (at most 64 KiB); replies with its output"
        }
        "status" => "!status SESSION_ID: a session's status and cascade (and error)",
        "cancel" => "!cancel SESSION_ID: cancel a run started from chat",
        "list" => "!list [FILTER]: the cascades !run accepts (those whose path contains FILTER)",
        "agents" => "!agents: the agents plain messages can reach",
        "help" => "!help [COMMAND]: this list, or one command's usage",
        _ => return None,
    })
}

/// Whether `text` is a command: `None` when it is a plain message, else the command or why it is
/// refused.
pub fn parse(text: &str) -> Option<Result<Command, String>> {
    let text = text.trim();
    let rest = if let Some(rest) = text.strip_prefix('!') {
        rest
    } else if let Some(rest) = text.strip_prefix("/rvbbit") {
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            return None;
        }
        let rest = rest.trim_start();
        rest.strip_prefix('!').unwrap_or(rest)
    } else {
        return None;
    };
    Some(parse_words(rest))
}

fn parse_words(rest: &str) -> Result<Command, String> {
    if let Some(c) = rest.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the message contains a control character (U+{:04X}); send the command on one line",
            u32::from(c)
        ));
    }
    let rest = rest.trim();
    let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let args = args.trim();
    let one = |what: &str| -> Result<String, String> {
        match args.split_whitespace().collect::<Vec<_>>()[..] {
            [one] => Ok(one.to_owned()),
            [] => Err(format!(
                "`!{word}` needs {what}; usage: {}",
                usage(word).unwrap_or_default()
            )),
            _ => Err(format!(
                "`!{word}` takes one {what}; usage: {}",
                usage(word).unwrap_or_default()
            )),
        }
    };
    let optional = || (!args.is_empty()).then(|| args.to_owned());
    match word.to_ascii_lowercase().as_str() {
        "" | "help" => Ok(Command::Help(optional())),
        "run" => {
            let (cascade, input) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
            if cascade.is_empty() {
                return Err(format!(
                    "`!run` needs a cascade; usage: {}",
                    usage("run").unwrap_or_default()
                ));
            }
            let input = input.trim();
            Ok(Command::Run {
                cascade: cascade.to_owned(),
                input: (!input.is_empty()).then(|| input.to_owned()),
            })
        }
        "status" => Ok(Command::Status(one("a session id")?)),
        "cancel" => Ok(Command::Cancel(one("a session id")?)),
        "list" => Ok(Command::List(optional())),
        "agents" => Ok(Command::Agents),
        _ => Err(format!(
            "unknown command `!{}`; the commands are {}",
            word.chars().take(40).collect::<String>(),
            COMMANDS.map(|c| format!("!{c}")).join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bang_and_slash_forms_parse_alike() {
        let run = Command::Run {
            cascade: "hello".into(),
            input: Some(r#"{"name": "Ada"}"#.into()),
        };
        assert_eq!(parse(r#"!run hello {"name": "Ada"}"#), Some(Ok(run.clone())));
        assert_eq!(
            parse(r#"/rvbbit run hello {"name": "Ada"}"#),
            Some(Ok(run.clone()))
        );
        assert_eq!(parse(r#"/rvbbit !run hello {"name": "Ada"}"#), Some(Ok(run)));
        assert_eq!(parse("!status s-1"), Some(Ok(Command::Status("s-1".into()))));
        assert_eq!(parse("!CANCEL s-1"), Some(Ok(Command::Cancel("s-1".into()))));
        assert_eq!(parse("!list etl"), Some(Ok(Command::List(Some("etl".into())))));
        assert_eq!(parse("!agents"), Some(Ok(Command::Agents)));
        assert_eq!(parse("/rvbbit"), Some(Ok(Command::Help(None))));
        assert_eq!(parse("!help run"), Some(Ok(Command::Help(Some("run".into())))));
        assert_eq!(
            parse("!run hello"),
            Some(Ok(Command::Run {
                cascade: "hello".into(),
                input: None
            }))
        );
    }

    #[test]
    fn plain_messages_are_not_commands() {
        assert_eq!(parse("hello there"), None);
        assert_eq!(parse("/rvbbitx run"), None);
        assert_eq!(parse("wow!"), None);
    }

    #[test]
    fn bad_commands_say_why() {
        let e = parse("!status").unwrap().unwrap_err();
        assert!(e.contains("needs a session id"), "{e}");
        let e = parse("!status a b").unwrap().unwrap_err();
        assert!(e.contains("takes one"), "{e}");
        let e = parse("!rm -rf /").unwrap().unwrap_err();
        assert!(e.contains("unknown command `!rm`") && e.contains("!run"), "{e}");
        let e = parse("!run x {}\u{7}").unwrap().unwrap_err();
        assert!(e.contains("U+0007"), "{e}");
        assert!(parse("!run").unwrap().is_err());
    }
}
