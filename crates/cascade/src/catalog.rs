//! What tools, cascades and validators a cascade can name, for validation.
//!
//! The catalog starts from the built-in tools and grows by discovery: declarative tool files
//! (`*.tool.json`, `*.tool.yaml`) and cascades in `traits/`, `tackle/`, `skills/` and `cascades/`
//! directories next to a cascade (or its parents) and under configured roots. The engine will later feed its
//! real registry in through [`Catalog::add_tool`].

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Severity};
use crate::load::{Content, load_file};
use crate::source::SourceFile;

/// Where a catalog entry comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Built into rvbbit.
    Builtin,
    /// A tool RVBBIT had that rvbbit does not provide.
    Unsupported,
    /// Registered by the embedding program (the engine's registry).
    Registered,
    /// A declarative tool file.
    ToolFile(PathBuf),
    /// A cascade usable as a tool or validator.
    Cascade(PathBuf),
    /// A tool the program provides that cannot run on this machine (a runtime it needs is missing):
    /// a run fails the cell with RVB-E003 and this reason.
    Unavailable {
        /// Why, and how to fix it (`not configured: install babashka (bb) …`).
        reason: String,
    },
    /// A tool file that names this tool but does not load (an unknown `type`, say): not usable, and
    /// validation says why, at the file's line, instead of "not registered".
    Broken {
        /// The tool file.
        path: PathBuf,
        /// Its first error, with the line (`line 3: …`).
        reason: String,
    },
}

impl Origin {
    /// Whether the name can be used (neither unsupported, unavailable here nor a broken tool file).
    pub fn usable(&self) -> bool {
        !matches!(
            self,
            Origin::Unsupported | Origin::Unavailable { .. } | Origin::Broken { .. }
        )
    }
}

/// Tools rvbbit provides (or will provide, per the engine and SQL issues), by every era's name.
pub const BUILTIN_TOOLS: &[&str] = &[
    "sql_data",
    "python_data",
    "bash_data",
    "rvbbit_data",
    "windlass_data",
    "lars_data",
    "linux_shell",
    "run_code",
    "http_request",
    "set_state",
    "append_state",
    "ask_human",
    "ask_human_custom",
    "route_to",
    "await_signal",
    "fire_signal",
    "spawn_cascade",
    "map_cascade",
    "smart_sql_run",
    "sql_query",
    "sql_search",
    "list_sql_connections",
    "request_decision",
    "create_artifact",
    "create_chart",
    "create_plotly",
    "create_vega_lite",
    "js_data",
    "clojure_data",
    "read_image",
    "say",
];

/// Tools RVBBIT registered that rvbbit does not provide: naming one is a warning that says so.
pub const UNSUPPORTED_TOOLS: &[&str] = &[
    "linux_shell_dangerous",
    "sql_rag_search",
    "show_ui",
    "rabbitize_start",
    "rabbitize_execute",
    "rabbitize_extract",
    "rabbitize_close",
];

/// The prefix of a Python function reference (`python:module.function`), a tool by itself.
pub const PYTHON_PREFIX: &str = "python:";

/// The longest `python:` reference taken.
const MAX_PYTHON_REFERENCE: usize = 256;

/// Why a `python:` reference is malformed, or None when it is well formed (`python:` then a dotted path
/// of at least two Python identifiers, the last the function).
pub fn python_reference_problem(name: &str) -> Option<String> {
    let path = name.strip_prefix(PYTHON_PREFIX)?;
    if name.len() > MAX_PYTHON_REFERENCE {
        return Some(format!("it is longer than {MAX_PYTHON_REFERENCE} characters"));
    }
    let parts: Vec<&str> = path.split('.').collect();
    if parts.len() < 2 {
        return Some("it names no module: write `python:module.function`".into());
    }
    let identifier = |p: &str| {
        let mut chars = p.chars();
        chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && chars.all(|c| c.is_alphanumeric() || c == '_')
    };
    parts
        .iter()
        .find(|p| !identifier(p))
        .map(|bad| format!("`{bad}` is not a Python identifier"))
}

/// Directory names searched for tools and validator cascades (every era's spelling).
pub const TOOL_DIRS: &[&str] = &["traits", "tackle", "skills", "cascades"];

/// Known tools and cascades.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    tools: BTreeMap<String, Origin>,
    scanned: HashSet<PathBuf>,
}

impl Catalog {
    /// A catalog with the built-in tools only.
    pub fn builtin() -> Self {
        let mut catalog = Catalog::default();
        for name in BUILTIN_TOOLS {
            catalog.tools.insert((*name).to_owned(), Origin::Builtin);
        }
        for name in UNSUPPORTED_TOOLS {
            catalog.tools.insert((*name).to_owned(), Origin::Unsupported);
        }
        catalog
    }

    /// Keep as built in only the names in `provided` (what the program that runs cascades registers):
    /// a built-in name it does not provide becomes [`Origin::Unsupported`], so validation says what a
    /// run would refuse instead of passing it silently. `route_to` stays: it is routing, not a tool.
    pub fn provided_only(&mut self, provided: &[&str]) {
        for (name, origin) in &mut self.tools {
            if *origin == Origin::Builtin && name != "route_to" && !provided.contains(&name.as_str()) {
                *origin = Origin::Unsupported;
            }
        }
    }

    /// Register a tool by name (the engine's registry uses this).
    pub fn add_tool(&mut self, name: impl Into<String>, origin: Origin) {
        self.tools.entry(name.into()).or_insert(origin);
    }

    /// Enter `name` with `origin`, replacing what the catalog had (the program knows better than the
    /// built-in list, e.g. that a tool's runtime is missing here).
    pub fn set_tool(&mut self, name: impl Into<String>, origin: Origin) {
        self.tools.insert(name.into(), origin);
    }

    /// Where a name comes from, if known.
    pub fn get(&self, name: &str) -> Option<&Origin> {
        self.tools.get(name)
    }

    /// All usable names (unsupported ones excluded), sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tools
            .iter()
            .filter(|(_, o)| o.usable())
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Scan the tool directories under `base` (each directory once per catalog).
    pub fn discover_under(&mut self, base: &Path) {
        for dir in TOOL_DIRS {
            let dir = base.join(dir);
            let canon = fs::canonicalize(&dir).unwrap_or(dir.clone());
            if !canon.is_dir() || !self.scanned.insert(canon.clone()) {
                continue;
            }
            let Ok(entries) = fs::read_dir(&canon) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if !path.is_file() || !matches!(ext, "yaml" | "yml" | "json") {
                    continue;
                }
                let loaded = load_file(&path);
                match loaded.document.map(|d| d.content) {
                    Some(Content::Tool(tool)) => self.add_tool(tool.tool_id.clone(), Origin::ToolFile(path)),
                    Some(Content::Cascade(cascade)) if !cascade.cascade_id.is_empty() => {
                        self.add_tool(cascade.cascade_id.clone(), Origin::Cascade(path.clone()));
                        // Validators are also named by file stem (`grammar_check.json`).
                        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                            self.add_tool(stem.trim_end_matches(".tool").to_owned(), Origin::Cascade(path));
                        }
                    }
                    Some(Content::Cascade(_)) => {}
                    None => {
                        if let Some((name, reason)) = broken_tool(&loaded.diagnostics, loaded.source.as_ref())
                        {
                            self.add_tool(name, Origin::Broken { path, reason });
                        }
                    }
                }
            }
        }
    }
}

/// The `tool_id` a tool file that did not load names (read from its text: `tool_id: x` or
/// `"tool_id": "x"`), and its first error with the line.
fn broken_tool(diags: &[Diagnostic], source: Option<&SourceFile>) -> Option<(String, String)> {
    let source = source?;
    let name = source.text().lines().find_map(|line| {
        let rest = line.trim().trim_start_matches(['{', ',']).trim();
        let rest = rest.strip_prefix("tool_id:").or_else(|| {
            rest.strip_prefix("\"tool_id\"")
                .map(|r| r.trim_start().trim_start_matches(':'))
        })?;
        let value = rest.trim().trim_end_matches(',').trim().trim_matches(['"', '\'']);
        (!value.is_empty() && value.len() <= 200).then(|| value.to_owned())
    })?;
    let first = diags.iter().find(|d| d.severity == Severity::Error)?;
    let line = first.span.map(|s| source.line_col(s.start).line);
    let reason = match line {
        Some(line) => format!("line {line}: {}", first.message),
        None => first.message.clone(),
    };
    Some((name, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_unsupported_are_distinct() {
        let c = Catalog::builtin();
        assert_eq!(c.get("sql_data"), Some(&Origin::Builtin));
        assert_eq!(c.get("show_ui"), Some(&Origin::Unsupported));
        assert!(!c.names().contains(&"show_ui"));
        for name in BUILTIN_TOOLS {
            assert!(!UNSUPPORTED_TOOLS.contains(name), "{name} is in both lists");
        }
    }
}
