//! RVB-V025: shell commands that insert outside values without `| q` (issue 13).

use std::path::Path;

use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::{Catalog, Diagnostic, Severity, load_str};

fn v025(name: &str, text: &str) -> Vec<Diagnostic> {
    let loaded = load_str(Path::new(name), text);
    let report = validate_loaded(loaded, &mut Catalog::builtin(), &Options::default());
    report
        .diagnostics()
        .iter()
        .filter(|d| d.code.code == "RVB-V025")
        .cloned()
        .collect()
}

fn shell_cell(tool: &str, key: &str, template: &str) -> String {
    format!("cascade_id: c\ncells:\n  - name: go\n    tool: {tool}\n    inputs:\n      {key}: '{template}'\n")
}

#[test]
fn issue_13_unquoted_input_in_a_shell_command_warns_at_the_braces_with_the_fix() {
    let text = shell_cell("linux_shell", "command", "echo {{ input.x }} {{ state.y | q }}");
    let found = v025("c.yaml", &text);
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(d.cell.as_deref(), Some("go"));
    let span = d.span.unwrap();
    assert_eq!(&text[span.start..span.end], "{{ input.x }}");
    assert!(
        d.hint.as_deref().unwrap().contains("{{ input.x | q }}"),
        "{:?}",
        d.hint
    );
    assert_eq!(
        d.example.as_deref(),
        Some("echo {{ input.x | q }} {{ state.y | q }}")
    );
}

#[test]
fn quoted_values_literals_and_other_tools_do_not_warn() {
    for (tool, key, template) in [
        (
            "linux_shell",
            "command",
            "echo {{ input.x | q }} {{ outputs.a | shell_quote }}",
        ),
        ("linux_shell", "command", "echo {{ 42 }} plain"),
        ("bash_data", "script", "echo id,name"),
        ("set_state", "value", "{{ input.x }}"),
    ] {
        let text = shell_cell(tool, key, template);
        assert!(v025("c.yaml", &text).is_empty(), "{tool}: {template}");
    }
}

#[test]
fn bash_data_scripts_and_tojson_are_checked_too() {
    assert_eq!(
        v025(
            "c.yaml",
            &shell_cell("bash_data", "script", "cat {{ outputs.a.path }}")
        )
        .len(),
        1
    );
    // `tojson` is JSON, not shell quoting.
    assert_eq!(
        v025(
            "c.yaml",
            &shell_cell("linux_shell", "command", "echo {{ input.x | tojson }}")
        )
        .len(),
        1
    );
}

#[test]
fn declarative_shell_tools_warn_on_unquoted_arguments() {
    let tool =
        |command: &str| format!("{{\"tool_id\": \"wc\", \"type\": \"shell\", \"command\": \"{command}\"}}");
    let found = v025("wc.tool.json", &tool("wc -w < {{ path }}"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].example.as_deref(), Some("wc -w < {{ path | q }}"));
    assert!(v025("wc.tool.json", &tool("wc -w < {{ path | q }}")).is_empty());
}
