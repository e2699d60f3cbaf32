//! `rvbbit config show`, configuration errors (exit 6), `rvbbit explain` and `rvbbit schema export`.

use insta_cmd::assert_cmd_snapshot;

use crate::{filters, rvbbit};

#[test]
fn config_show_lists_every_setting_with_its_source_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rvbbit.toml"),
        "default_model = \"openai/gpt-4.1\"\n[provider]\nmax_concurrency = 8\napi_key = \"sk-from-file\"\n",
    )
    .unwrap();
    let mut cmd = rvbbit(dir.path());
    cmd.args(["config", "show"])
        .env("RVBBIT_PROVIDER_BASE_URL", "http://127.0.0.1:9/v1");
    insta::with_settings!({filters => filters()}, {
        assert_cmd_snapshot!(cmd);
    });
    let out = rvbbit(dir.path())
        .args(["config", "show", "--output", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("sk-from-file"), "secret leaked");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        doc["settings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["key"] == "provider.api_key" && s["value"] == "\"****\"")
    );
}

#[test]
fn invalid_configuration_reports_every_problem_and_exits_six() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rvbbit.toml"),
        "default_modle = \"x\"\n[provider]\nmax_concurrency = \"many\"\n",
    )
    .unwrap();
    let mut cmd = rvbbit(dir.path());
    cmd.args(["validate", "."])
        .env("RVBBIT_PROVIDER__TIMEOUT_SECONDS", "soon");
    insta::with_settings!({filters => filters()}, {
        assert_cmd_snapshot!(cmd);
    });
    let out = rvbbit(dir.path())
        .args(["validate", ".", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["exit_code"], 6);
    assert_eq!(doc["problems"].as_array().unwrap().len(), 2);
}

#[test]
fn a_missing_explicit_config_file_exits_six() {
    let dir = tempfile::tempdir().unwrap();
    let out = rvbbit(dir.path())
        .args(["--config", "missing.toml", "config", "show"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RVB-C004"));
}

#[test]
fn explain_prints_the_error_page() {
    let dir = tempfile::tempdir().unwrap();
    assert_cmd_snapshot!(rvbbit(dir.path()).args(["explain", "v008"]));
    let out = rvbbit(dir.path()).args(["explain", "RVB-X999"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    let list = rvbbit(dir.path()).args(["explain"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).lines().count(),
        rvbbit_core::codes::ALL.len()
    );
}

#[test]
fn schema_export_writes_a_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = rvbbit(dir.path())
        .args(["schema", "export", "--format", "jsonschema"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "rvbbit cascade");
    assert!(schema["properties"]["cells"].is_object() && schema["properties"]["phases"].is_object());
    let out = rvbbit(dir.path())
        .args(["schema", "export", "--target", "tool", "-o", "tool.schema.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let tool: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("tool.schema.json")).unwrap()).unwrap();
    assert_eq!(tool["title"], "rvbbit tool definition");
    let out = rvbbit(dir.path())
        .args(["schema", "export", "-o", "no/such/dir/schema.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error[RVB-C005]: cannot write `no/such/dir/schema.json`")
            && stderr.contains("caused by:"),
        "{stderr}"
    );
}

#[test]
fn set_flags_override_every_other_layer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rvbbit.toml"),
        "[provider]\nmax_concurrency = 8\n",
    )
    .unwrap();
    let out = rvbbit(dir.path())
        .args([
            "--set",
            "provider.max_concurrency=4",
            "config",
            "show",
            "--output",
            "json",
        ])
        .env("RVBBIT_PROVIDER__MAX_CONCURRENCY", "6")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = doc["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "provider.max_concurrency")
        .unwrap()
        .clone();
    assert_eq!(row["value"], "4");
    assert_eq!(row["source"], "flag --set provider.max_concurrency=4");
    let bad = rvbbit(dir.path())
        .args(["--set", "provider.max_concurrency", "config", "show"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(6));
    let unknown = rvbbit(dir.path())
        .args(["--set", "provider.max_concurency=2", "config", "show"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("did you mean `provider.max_concurrency`?"));
}
