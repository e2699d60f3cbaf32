//! Agent files: `agents/NAME.yaml` in a served directory, each naming the cascade that answers its
//! turns (a path relative to the file), its window settings, tool policies and limits.
//!
//! ```yaml
//! # agents/travel.yaml
//! cascade: ../travel_agent.yaml
//! description: Books trips.
//! window:
//!   channels: {web: 600}
//!   max_messages: 12
//! tools:
//!   book_flight: irreversible
//!   search_flights: pure
//! limits:
//!   max_message_bytes: 16384
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rvbbit_cascade::source::SourceFile;
use rvbbit_cascade::{Catalog, Severity, validate, yaml};
use serde::{Deserialize, Serialize};

use crate::definition::{Agent, AgentLimits, ToolPolicy};
use crate::error::Error;
use crate::window::WindowSettings;

/// Largest agent file, in bytes.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Most agent files read from one directory.
pub const MAX_AGENT_FILES: usize = 1000;

/// The content of an agent file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    /// The cascade that answers each turn, relative to the agent file.
    pub cascade: String,
    /// What the agent is for (shown in listings).
    #[serde(default)]
    pub description: Option<String>,
    /// Turn-accumulation window settings.
    #[serde(default)]
    pub window: WindowSettings,
    /// Tool side-effect policies by tool name.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolPolicy>,
    /// Bounds of the agent's conversations.
    #[serde(default)]
    pub limits: AgentLimits,
}

/// Load the agent file at `path` (its name is the file stem), validating its cascade with `catalog`.
///
/// # Errors
/// [`Error::BadDefinition`] naming every problem: the file cannot be read, does not parse, has an
/// unknown key or a bad value, or its cascade does not load and validate.
pub fn load_file(path: &Path, catalog: &Catalog) -> Result<Agent, Error> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let bad = |problems: String| Error::BadDefinition {
        agent: name.clone(),
        problems,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| bad(format!("{} cannot be read: {e}", path.display())))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(bad(format!(
            "{} is {size} bytes; an agent file is at most {MAX_FILE_BYTES}",
            path.display()
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| bad(format!("{} cannot be read: {e}", path.display())))?;
    let parsed = yaml::parse(&SourceFile::new(path, text));
    let Some(root) = parsed.root.filter(|_| parsed.problems.is_empty()) else {
        return Err(bad(format!("{} is not well-formed YAML", path.display())));
    };
    let file: AgentFile =
        serde_json::from_value(root.to_json()).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let cascade_path = path.parent().unwrap_or(Path::new(".")).join(&file.cascade);
    let cascade = load_cascade(&cascade_path, catalog).map_err(bad)?;
    let mut agent = Agent::new(&name, cascade)
        .with_window(file.window)
        .with_limits(file.limits);
    agent.tools = file.tools;
    let problems = agent.problems();
    if !problems.is_empty() {
        return Err(bad(problems.join("; ")));
    }
    Ok(agent)
}

fn load_cascade(path: &Path, catalog: &Catalog) -> Result<rvbbit_cascade::model::Cascade, String> {
    if !path.is_file() {
        return Err(format!("the cascade {} does not exist", path.display()));
    }
    let mut catalog = catalog.clone();
    let report = validate::validate_file(path, &mut catalog, &validate::Options::default());
    let errors: Vec<String> = report
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.message.clone())
        .collect();
    if !errors.is_empty() {
        return Err(format!(
            "the cascade {} does not validate: {}",
            path.display(),
            errors.join("; ")
        ));
    }
    report
        .loaded
        .document
        .and_then(|d| d.cascade().cloned())
        .ok_or_else(|| format!("{} is not a cascade", path.display()))
}

/// Every `*.yaml`/`*.yml` file of `dir` (sorted, at most [`MAX_AGENT_FILES`]), loaded: the agents
/// that load, and the files that do not with why. A missing directory has no agents.
pub fn load_dir(dir: &Path, catalog: &Catalog) -> (Vec<Agent>, Vec<(PathBuf, Error)>) {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.truncate(MAX_AGENT_FILES);
    let mut agents = Vec::new();
    let mut failed = Vec::new();
    for path in paths {
        match load_file(&path, catalog) {
            Ok(a) => agents.push(a),
            Err(e) => failed.push((path, e)),
        }
    }
    (agents, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASCADE: &str =
        "cascade_id: echo\ncells:\n  - name: reply\n    instructions: 'Say {{ input.messages }}'\n";

    #[test]
    fn a_directory_of_agent_files_loads_and_names_each_broken_one() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join("echo.yaml"), CASCADE).unwrap();
        let agents = dir.path().join("agents");
        std::fs::create_dir(&agents).unwrap();
        std::fs::write(
            agents.join("helper.yaml"),
            "cascade: ../echo.yaml\ntools: {book_flight: irreversible}\nwindow: {channels: {web: 300}}\n",
        )
        .unwrap();
        std::fs::write(agents.join("typo.yaml"), "cascade: ../echo.yaml\ntool: {}\n").unwrap();
        std::fs::write(
            agents.join("policy.yaml"),
            "cascade: ../echo.yaml\ntools: {x: maybe}\n",
        )
        .unwrap();
        std::fs::write(agents.join("missing.yaml"), "cascade: ../nope.yaml\n").unwrap();
        std::fs::write(
            agents.join("window.yaml"),
            "cascade: ../echo.yaml\nwindow: {min_ms: 9000}\n",
        )
        .unwrap();
        std::fs::write(agents.join("notes.txt"), "not an agent").unwrap();
        let (ok, failed) = load_dir(&agents, &Catalog::builtin());
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].name, "helper");
        assert_eq!(ok[0].tools["book_flight"], ToolPolicy::Irreversible);
        assert_eq!(ok[0].window.base_ms("web"), 300);
        assert_eq!(ok[0].cascade.cascade_id, "echo");
        let why: BTreeMap<String, String> = failed
            .iter()
            .map(|(p, e)| {
                (
                    p.file_stem().unwrap().to_string_lossy().into_owned(),
                    e.to_string(),
                )
            })
            .collect();
        assert_eq!(why.len(), 4, "{why:?}");
        assert!(why["typo"].contains("unknown field `tool`"), "{}", why["typo"]);
        assert!(
            why["policy"].contains("unknown variant `maybe`"),
            "{}",
            why["policy"]
        );
        assert!(why["missing"].contains("does not exist"), "{}", why["missing"]);
        assert!(
            why["window"].contains("window.min_ms (9000) is above window.max_ms"),
            "{}",
            why["window"]
        );
        assert!(failed.iter().all(|(_, e)| e.code().code == "RVB-G005"));
        let (none, nothing) = load_dir(&dir.path().join("absent"), &Catalog::builtin());
        assert!(none.is_empty() && nothing.is_empty());
    }
}
