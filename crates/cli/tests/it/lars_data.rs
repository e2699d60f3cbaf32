//! Data cells as LARS writes them (issue 19): `python_data` reads earlier cells as attributes of `data`,
//! tables as pandas DataFrames when pandas imports (plain row lists otherwise), and `sql_data` runs a
//! query of several statements.

use std::path::Path;

use serde_json::json;
use tempfile::TempDir;

use crate::run_command::JsonOutcome;
use crate::rvbbit;

/// The corpus's `data_cascade_test.yaml` as LARS wrote it (`df = data.generate`, `result = df`, pandas
/// throughout), run with a python that has pandas first on `PATH`.
#[test]
fn the_corpus_data_cascade_runs_with_pandas_dataframes_from_data_attributes() {
    let Some(python) = crate::clients::clients_python("pandas") else {
        return;
    };
    let bin = Path::new(&python).parent().unwrap();
    let dir = TempDir::new().unwrap();
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/rvbbit-2025-12-25/traits/data_cascade_test.yaml"
    );
    let out = rvbbit(dir.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .args(["--output", "json", "run", file, "--input", r#"{"threshold": 2}"#])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    // The DataFrame `result` came back as rows, with the columns pandas added.
    assert_eq!(doc.outputs["transform"]["row_count"], 4);
    assert_eq!(
        doc.outputs["transform"]["rows"][0],
        json!({"id": 2, "name": "bob", "amount": 200, "category": "low", "double_amount": 400})
    );
    assert_eq!(
        doc.outputs["final"]["result"],
        json!({
            "total_records": 4,
            "categories": [
                {"category": "high", "count": 3, "total_amount": 1200, "avg_double": 800.0},
                {"category": "low", "count": 1, "total_amount": 200, "avg_double": 400.0}
            ],
            "high_value_names": ["charlie", "diana", "eve"],
            "grand_total": 1400
        })
    );
}

const PLAIN: &str = r#"cascade_id: plain_rows
cells:
- name: generate
  tool: sql_data
  inputs:
    query: "CREATE TABLE t AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name); SELECT id, name FROM t ORDER BY id"
- name: double
  tool: python_data
  inputs:
    code: |
      rows = data.generate
      result = {"ids": [r["id"] * 2 for r in rows], "kind": type(rows).__name__, "same": data["generate"]["row_count"]}
- name: missing
  tool: python_data
  inputs:
    code: |
      result = data.nothing
"#;

/// Without pandas a table is a list of row dicts; `data["cell"]` is still the output itself; an
/// attribute naming no earlier cell fails the cell saying which cells there are.
#[test]
fn without_pandas_tables_are_row_lists_and_a_missing_cell_is_named() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("plain.yaml"), PLAIN).unwrap();
    let out = rvbbit(dir.path())
        .env("PATH", "/usr/bin:/bin")
        .args(["--output", "json", "run", "plain.yaml"])
        .output()
        .unwrap();
    let system_has_pandas = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import pandas"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        doc.outputs["generate"]["rows"],
        json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    );
    let kind = if system_has_pandas { "DataFrame" } else { "list" };
    assert_eq!(
        doc.outputs["double"]["result"],
        json!({"ids": [2, 4], "kind": kind, "same": 2})
    );
    let error = doc.message.unwrap_or_default();
    assert!(
        error.contains("no earlier cell is named 'nothing'") && error.contains("double, generate"),
        "{error}"
    );
}

const PY_TOOLS: &str = r#"
def double(n, label="x"):
    print("printed output does not disturb the answer")
    return {"n": int(n) * 2, "label": label}

def boom():
    raise ValueError("the input was bad")
"#;

const PY_REF: &str = r#"cascade_id: python_refs
cells:
- name: doubled
  tool: python:lib.helpers.double
  inputs:
    n: "{{ input.n }}"
    label: twice
- name: again
  tool: python:lib.helpers.double
  inputs:
    n: "{{ outputs.doubled.n }}"
"#;

/// `python:module.function` names a Python function as a tool: found next to the cascade (a package
/// path works), called with the inputs as keyword arguments, its return value the output. A raised
/// exception fails the cell with its type, message and last frame; a module that is nowhere is a
/// validate warning and a ModuleNotFoundError with a hint at run; a malformed reference is a validate
/// error.
#[test]
fn python_function_references_are_tools() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("flows/lib")).unwrap();
    std::fs::write(dir.path().join("flows/lib/__init__.py"), "").unwrap();
    std::fs::write(dir.path().join("flows/lib/helpers.py"), PY_TOOLS).unwrap();
    std::fs::write(dir.path().join("flows/refs.yaml"), PY_REF).unwrap();
    let out = rvbbit(dir.path())
        .args(["validate", "flows/refs.yaml", "--strict"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = rvbbit(dir.path())
        .args([
            "--output",
            "json",
            "run",
            "flows/refs.yaml",
            "--input",
            r#"{"n": 21}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.outputs["doubled"], json!({"n": 42, "label": "twice"}));
    assert_eq!(doc.output, json!({"n": 84, "label": "x"}));

    let failing = "cascade_id: boom\ncells:\n- name: b\n  tool: python:lib.helpers.boom\n";
    std::fs::write(dir.path().join("flows/boom.yaml"), failing).unwrap();
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", "flows/boom.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    let message = doc.message.unwrap_or_default();
    assert!(
        message.contains("ValueError: the input was bad") && message.contains("helpers.py:7 in boom"),
        "{message}"
    );

    let nowhere = "cascade_id: nowhere\ncells:\n- name: n\n  tool: python:no_such_module.f\n";
    std::fs::write(dir.path().join("nowhere.yaml"), nowhere).unwrap();
    let out = rvbbit(dir.path())
        .args(["validate", "nowhere.yaml"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("the module `no_such_module`") && text.contains("warning[RVB-V009]"),
        "{text}"
    );
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", "nowhere.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    let message = doc.message.unwrap_or_default();
    assert!(
        message.contains("ModuleNotFoundError")
            && message.contains("put `no_such_module.py` next to the cascade"),
        "{message}"
    );

    let malformed = "cascade_id: bad\ncells:\n- name: n\n  tool: \"python:os.system;rm\"\n";
    std::fs::write(dir.path().join("bad.yaml"), malformed).unwrap();
    let out = rvbbit(dir.path())
        .args(["validate", "bad.yaml"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("is malformed: `system;rm` is not a Python identifier"),
        "{text}"
    );
}
