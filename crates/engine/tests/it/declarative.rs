//! Declarative tool files (`*.tool.json`) run as tools: the corpus's shell and composite tools, an http
//! tool against a real local HTTP server (Python's `http.server`), a python tool, and the refusal of
//! Gradio tools.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rvbbit_core::SessionStatus;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::compose::{engine_with_cascade_tools, request_for, run};
use crate::support::{CORPUS, Harness, load};

/// A project directory with `traits/` holding the corpus's shell and composite tools, and `cascade.yaml`.
fn project(cascade: &str, extra: &[(&str, &str)]) -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let traits = dir.path().join("traits");
    std::fs::create_dir_all(&traits).unwrap();
    let corpus_traits = Path::new(CORPUS).join("../traits");
    for name in ["word_count", "list_directory", "search_files", "find_and_count"] {
        std::fs::copy(
            corpus_traits.join(format!("{name}.tool.json")),
            traits.join(format!("{name}.tool.json")),
        )
        .unwrap();
    }
    for (name, text) in extra {
        std::fs::write(traits.join(name), text).unwrap();
    }
    let file = dir.path().join("cascade.yaml");
    std::fs::write(&file, cascade).unwrap();
    (dir, file)
}

#[tokio::test]
async fn corpus_shell_and_composite_tools_run_from_their_files() {
    let data = TempDir::new().unwrap();
    std::fs::write(data.path().join("notes.txt"), "alpha\nneedle here\nomega\n").unwrap();
    std::fs::write(data.path().join("other.txt"), "no match\n").unwrap();
    let dir = data.path().display().to_string();
    let cascade = format!(
        r#"
cascade_id: declarative
cells:
  - name: count
    tool: word_count
    inputs: {{text: "one two three"}}
  - name: listing
    tool: list_directory
    inputs: {{path: "{dir}"}}
  - name: search
    tool: search_files
    inputs: {{pattern: needle, path: "{dir}"}}
  - name: both
    tool: find_and_count
    inputs: {{pattern: needle, directory: "{dir}"}}
"#
    );
    let (_p, file) = project(&cascade, &[]);
    let h = Harness::new().await;
    let engine = engine_with_cascade_tools(&h, &file, None);
    for name in ["word_count", "list_directory", "search_files", "find_and_count"] {
        assert!(engine.registry().get(name).is_some(), "{name} is registered");
    }
    let out = h.run(&engine, load(&file), json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    // `echo 'one two three' | wc`: 1 line, 3 words, 14 characters.
    let words: Vec<&str> = out.outputs["count"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(words, ["1", "3", "14"]);
    let listing: Vec<&str> = out.outputs["listing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(listing.iter().any(|l| l.ends_with("notes.txt")), "{listing:?}");
    assert_eq!(
        out.outputs["search"],
        json!([format!("{dir}/notes.txt:2:needle here")])
    );
    let both = &out.outputs["both"];
    assert_eq!(both["steps"][0]["success"], true, "{both}");
    assert_eq!(both["steps"][1]["tool"], "list_directory");
    assert!(both["result"].as_array().unwrap().len() >= 3, "{both}");
}

/// A shell tool runs in the folder of the cascade file, so a relative path in its arguments means the
/// file beside the cascade (examples/tools_and_context.yaml with `{"directory": "children"}`); without a
/// known file it runs in the session directory, where the path does not exist.
#[tokio::test]
async fn shell_tools_resolve_relative_paths_beside_the_cascade_file() {
    let cat = r#"{"tool_id": "cat_file", "description": "Print a file.", "inputs_schema": {"path": "A file"},
                 "type": "shell", "command": "cat {{ path | q }}"}"#;
    let cascade =
        "cascade_id: rel\ncells:\n  - name: read\n    tool: cat_file\n    inputs: {path: data/note.txt}\n";
    let (dir, file) = project(cascade, &[("cat_file.tool.json", cat)]);
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/note.txt"), "beside the cascade\n").unwrap();
    let h = Harness::new().await;
    let engine = engine_with_cascade_tools(&h, &file, None);

    let out = run(&h, &engine, request_for(&file, json!({}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.outputs["read"], json!("beside the cascade\n"));

    // The same cascade without its file: the session directory, where data/note.txt is missing.
    let out = h.run(&engine, load(&file), json!({})).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let error = out.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("data/note.txt"), "{error}");
}

/// `python3 -m http.server` on a free loopback port, serving `dir`.
struct PyServer(Child, u16);

impl PyServer {
    fn start(dir: &Path) -> PyServer {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in `{line}`"));
        PyServer(child, port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        // Best-effort cleanup: the process may already have exited.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn http_python_and_gradio_tools() {
    let site = TempDir::new().unwrap();
    std::fs::write(
        site.path().join("data.json"),
        r#"{"items": [{"name": "first"}, {"name": "second"}]}"#,
    )
    .unwrap();
    let server = PyServer::start(site.path());
    let http_tool = json!({
        "tool_id": "pick_item",
        "description": "Read one item",
        "inputs_schema": {"port": "server port", "file": "file"},
        "type": "http",
        "url": "http://127.0.0.1:{{ port }}/{{ file }}",
        "response_jq": ".items[1]",
        "timeout": 10
    })
    .to_string();
    let py_tool = json!({
        "tool_id": "add",
        "inputs_schema": {"a": "a number", "b": "a number"},
        "type": "python",
        "function": "helpers.add"
    })
    .to_string();
    let gradio = json!({"tool_id": "space", "type": "gradio", "space": "x/y", "api_name": "/p"}).to_string();
    let cascade = format!(
        r#"
cascade_id: declarative_more
cells:
  - name: fetch
    tool: pick_item
    inputs: {{port: "{}", file: data.json}}
  - name: sum
    tool: add
    inputs: {{a: "2", b: "40"}}
  - name: missing_file
    tool: pick_item
    inputs: {{port: "{}", file: nope.json}}
    on_error: space_call
  - name: space_call
    tool: space
    inputs: {{}}
"#,
        server.1, server.1
    );
    let (p, file) = project(
        &cascade,
        &[
            ("pick_item.tool.json", &http_tool),
            ("add.tool.json", &py_tool),
            ("space.tool.json", &gradio),
            (
                "helpers.py",
                "def add(a, b):\n    return {'sum': int(a) + int(b)}\n",
            ),
        ],
    );
    let h = Harness::new().await;
    let engine = engine_with_cascade_tools(&h, &file, None);
    let out = h.run(&engine, load(&file), json!({})).await;
    assert_eq!(out.outputs["fetch"], json!({"name": "second"}));
    assert_eq!(out.outputs["sum"], json!({"sum": 42}));
    // The 404 routes through on_error to the Gradio tool, which is refused.
    assert_eq!(out.path, ["fetch", "sum", "missing_file", "space_call"]);
    assert_eq!(out.status, SessionStatus::Failed);
    let message = out.error.unwrap().to_string();
    assert!(
        message.contains("Gradio") && message.contains("RVB-E003"),
        "{message}"
    );
    assert_eq!(
        out.state["last_deterministic_error"]["cell"],
        Value::from("missing_file")
    );
    assert!(
        out.state["last_deterministic_error"]["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 404"),
        "{}",
        out.state["last_deterministic_error"]
    );
    drop(p);
}
