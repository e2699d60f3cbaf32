//! Snapshots of the rendered diagnostics for broken cascades (one file per check), and of the JSON form.

use std::path::{Path, PathBuf};

use rvbbit_cascade::validate::{Options, Report, validate_file};
use rvbbit_cascade::{Catalog, render};

fn fixture(name: &str) -> PathBuf {
    // Relative paths keep the snapshots free of machine-specific directories; tests run in the crate dir.
    Path::new("tests/fixtures/broken").join(name)
}

fn check(path: &Path) -> Report {
    validate_file(path, &mut Catalog::builtin(), &Options::default())
}

fn rendered(report: &Report) -> String {
    let mut out = String::new();
    for d in report.diagnostics() {
        out.push_str(&render(
            d,
            &report.loaded.path,
            report.loaded.source.as_ref(),
            false,
        ));
    }
    let (e, w) = report.counts();
    out.push_str(&format!("-- {e} errors, {w} warnings\n"));
    out
}

#[test]
fn broken_cascades_render_compiler_quality_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 25,
        "expected at least 25 broken cascades, found {}",
        names.len()
    );
    for name in names {
        let report = check(&fixture(&name));
        let diagnostics = report.diagnostics();
        assert!(
            !diagnostics.is_empty(),
            "{name}: a broken cascade must produce a diagnostic"
        );
        for d in diagnostics {
            assert!(
                d.span.is_some() || d.code.code == "RVB-V018",
                "{name}: `{}` has no position",
                d.message
            );
            assert!(
                d.hint.is_some() || d.example.is_some() || d.label.is_some(),
                "{name}: `{}` says nothing about how to fix it",
                d.message
            );
        }
        let snapshot = name.replace('.', "_");
        insta::assert_snapshot!(snapshot, rendered(&report));
    }
}

/// Each fixture exercises its check: the expected code is among its diagnostics.
#[test]
fn each_fixture_triggers_its_check() {
    let expected = [
        ("01_yaml_syntax.yaml", "RVB-V001"),
        ("02_json_syntax.json", "RVB-V001"),
        ("03_tab_indent.yaml", "RVB-V001"),
        ("04_empty.yaml", "RVB-V002"),
        ("05_top_level_list.yaml", "RVB-V002"),
        ("06_missing_cascade_id.yaml", "RVB-V003"),
        ("07_missing_cell_name.yaml", "RVB-V003"),
        ("08_duplicate_cell_names.yaml", "RVB-V006"),
        ("09_no_primary_kind.yaml", "RVB-V007"),
        ("10_two_primary_kinds.yaml", "RVB-V007"),
        ("11_unknown_key_typo.yaml", "RVB-V004"),
        ("12_key_belongs_under_rules.yaml", "RVB-V004"),
        ("13_unknown_top_level_key.yaml", "RVB-V004"),
        ("14_wrong_type.yaml", "RVB-V005"),
        ("15_bad_enum.yaml", "RVB-V005"),
        ("16_unknown_handoff.yaml", "RVB-V008"),
        ("17_unknown_routing_target.yaml", "RVB-V008"),
        ("18_unknown_on_error_target.yaml", "RVB-V008"),
        ("19_unknown_context_from.yaml", "RVB-V008"),
        ("20_unknown_tool_trait.yaml", "RVB-V009"),
        ("21_unknown_tool_deterministic.yaml", "RVB-V009"),
        ("22_unknown_validator_loop_until.yaml", "RVB-V010"),
        ("23_unknown_validator_ward.yaml", "RVB-V010"),
        ("24_handoff_cycle.yaml", "RVB-V011"),
        ("25_invalid_output_schema.yaml", "RVB-V012"),
        ("26_template_syntax_instructions.yaml", "RVB-V013"),
        ("27_template_syntax_inputs.yaml", "RVB-V013"),
        ("28_template_syntax_retry_instructions.yaml", "RVB-V013"),
        ("29_template_unknown_output_ref.yaml", "RVB-V014"),
        ("30_alias_conflict.yaml", "RVB-V015"),
        ("31_duplicate_yaml_key.yaml", "RVB-V017"),
        ("32_empty_cells.yaml", "RVB-V022"),
        ("33_inline_validator_two_languages.yaml", "RVB-V021"),
        ("34_missing_include.yaml", "RVB-V016"),
        ("35_bad_regex.yaml", "RVB-V005"),
        ("36_multi_document.yaml", "RVB-V019"),
        ("37_out_of_range.yaml", "RVB-V005"),
        ("38_tool_missing_command.tool.json", "RVB-V023"),
        ("39_unknown_subcascade.yaml", "RVB-V020"),
        ("40_template_state_output_ref.yaml", "RVB-V014"),
        ("41_handoff_to_end.yaml", "RVB-V008"),
        ("42_wrong_shape_union.yaml", "RVB-V005"),
    ];
    for (name, code) in expected {
        let report = check(&fixture(name));
        let codes: Vec<&str> = report.diagnostics().iter().map(|d| d.code.code).collect();
        assert!(codes.contains(&code), "{name}: expected {code}, got {codes:?}");
    }
}

#[test]
fn template_errors_point_at_the_exact_position() {
    // Literal block: the error is on file line 8, inside `{{ item.title }`.
    let report = check(&fixture("26_template_syntax_instructions.yaml"));
    let d = report
        .diagnostics()
        .iter()
        .find(|d| d.code.code == "RVB-V013")
        .unwrap();
    let at = report
        .loaded
        .source
        .as_ref()
        .unwrap()
        .line_col(d.span.unwrap().start);
    assert_eq!(at.line, 8, "{d:?}");
    // Single-line quoted string: column inside the string.
    let report = check(&fixture("28_template_syntax_retry_instructions.yaml"));
    let d = report
        .diagnostics()
        .iter()
        .find(|d| d.code.code == "RVB-V013")
        .unwrap();
    let src = report.loaded.source.as_ref().unwrap();
    assert_eq!(src.line_col(d.span.unwrap().start).line, 8);
}

#[test]
fn strict_turns_warnings_into_errors() {
    let path = fixture("20_unknown_tool_trait.yaml");
    let relaxed = validate_file(&path, &mut Catalog::builtin(), &Options::default());
    assert_eq!(relaxed.counts().0, 0);
    let strict = validate_file(
        &path,
        &mut Catalog::builtin(),
        &Options {
            strict: true,
            ..Options::default()
        },
    );
    assert!(strict.counts().0 > 0);
}

#[test]
fn json_form_is_stable() {
    let mut docs = Vec::new();
    for name in [
        "11_unknown_key_typo.yaml",
        "08_duplicate_cell_names.yaml",
        "26_template_syntax_instructions.yaml",
    ] {
        let report = check(&fixture(name));
        for d in report.diagnostics() {
            docs.push(d.to_json(&report.loaded.path, report.loaded.source.as_ref()));
        }
    }
    insta::assert_json_snapshot!("diagnostics_json", docs);
}

/// A tool file with a `type` rvbbit does not run (LARS's `local_model`) is a coded error at its `type`
/// key, never the internal-error code; a cascade naming that tool hears why the tool is missing (the
/// file and its line), an error where a cell calls it and a warning where a model is offered it.
#[test]
fn an_unknown_tool_type_is_an_error_at_its_key_and_cascades_naming_it_say_why() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("traits")).unwrap();
    let tool = dir.path().join("traits/embed.tool.yaml");
    std::fs::write(&tool, "tool_id: local_embed\ntype: local_model\n").unwrap();
    let report = check(&tool);
    let codes: Vec<&str> = report.diagnostics().iter().map(|d| d.code.code).collect();
    assert_eq!(codes, vec!["RVB-V005"], "{}", rendered(&report));
    let d = &report.diagnostics()[0];
    let source = report.loaded.source.as_ref().unwrap();
    assert_eq!(source.slice(d.span.unwrap()), "local_model");
    assert!(d.message.contains("`local_model` is not one of"), "{}", d.message);

    let cascade = dir.path().join("c.yaml");
    std::fs::write(
        &cascade,
        "cascade_id: c\ncells:\n  - name: ask\n    instructions: hi\n    traits: [local_embed]\n  - name: call\n    tool: local_embed\n",
    )
    .unwrap();
    let report = check(&cascade);
    let found: Vec<(String, &str)> = report
        .diagnostics()
        .iter()
        .map(|d| (format!("{:?}", d.severity), d.message.as_str()))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    for (_, message) in &found {
        assert!(
            message.contains("is defined in")
                && message.contains("embed.tool.yaml")
                && message.contains("line 2: `local_model` is not one of"),
            "{message}"
        );
    }
    assert_eq!(found[0].0, "Warning");
    assert_eq!(found[1].0, "Error");
}
