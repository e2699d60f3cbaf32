//! Every file of the shared corpus is read without a crash, and its exact outcome is asserted.

use std::collections::BTreeMap;

use rvbbit_cascade::validate::{Options, validate_file};
use rvbbit_cascade::{Catalog, Content, Severity};

use crate::{corpus_dir, files_under};

/// Files that are not valid for rvbbit, with the codes of their errors. Each is a real mistake in the
/// corpus that RVBBIT silently tolerated:
/// - two cells named `phase_1` (RVBBIT ran the first for both);
/// - handoffs to a cell `end` that does not exist (RVBBIT stopped silently);
/// - a template in `max_turns`, which must be a number (RVBBIT could not load this validator at all).
const INVALID: &[(&str, &[&str])] = &[
    ("rvbbit-2025-12-25/cascades/test_image_flow.yaml", &["RVB-V006"]),
    (
        "rvbbit-2025-12-25/examples/blog_post_quality_flow.yaml",
        &["RVB-V008"],
    ),
    (
        "rvbbit-2025-12-25/examples/grammar_validation_flow.yaml",
        &["RVB-V008"],
    ),
    ("rvbbit-2025-12-25/traits/web_navigator.json", &["RVB-V005"]),
];

/// Warning codes that are justified in the corpus, each with the reason:
/// - V009: a tool RVBBIT had (browser automation, `show_ui`, …) that rvbbit does not provide;
/// - V019: the two `FUTURE_*` design notes append a second YAML document;
/// - V020: sub-cascade refs written against RVBBIT's old repository layout (`windlass/...`) or `.json` names of `.yaml` files;
/// - V011: `research_loop` in `research_cockpit_demo.yaml` hands off only to itself, so it can end only by error;
/// - V025: shell commands written before `| q` existed (`hybrid_etl_demo.yaml`, three `traits/*.tool.json`:
///   7 places) insert values unquoted (issue 13).
const JUSTIFIED_WARNINGS: &[&str] = &["RVB-V009", "RVB-V019", "RVB-V020", "RVB-V011", "RVB-V025"];

fn outcome_table() -> BTreeMap<String, (usize, usize, Vec<String>)> {
    let root = corpus_dir();
    let mut catalog = Catalog::builtin();
    let mut table = BTreeMap::new();
    for path in files_under(&root) {
        let report = validate_file(&path, &mut catalog, &Options::default());
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        let (errors, warnings) = report.counts();
        let mut codes: Vec<String> = report
            .diagnostics()
            .iter()
            .map(|d| {
                format!(
                    "{}{}",
                    if d.severity == Severity::Error { "E:" } else { "W:" },
                    d.code.code
                )
            })
            .collect();
        codes.dedup();
        table.insert(rel, (errors, warnings, codes));
    }
    table
}

#[test]
fn every_corpus_file_has_its_expected_outcome() {
    let table = outcome_table();
    assert!(
        table.len() >= 230,
        "expected the whole corpus, found {} files",
        table.len()
    );
    // Files whose only errors are deterministic cells calling a tool nobody provides (RVB-V009) or
    // features not built (RVB-E003): `rvbbit run` refuses them (RVB-E003), so validation says so
    // (issue 19: validate predicts run).
    let mut refused_for_tools = 0;
    for (file, (errors, _, codes)) in &table {
        match INVALID.iter().find(|(f, _)| f == file) {
            Some((_, expected)) => {
                let got: Vec<&str> = codes.iter().filter_map(|c| c.strip_prefix("E:")).collect();
                let got: Vec<&str> = got
                    .into_iter()
                    .filter(|c| *c != "RVB-V009" && *c != "RVB-E003")
                    .collect();
                assert_eq!(&got, expected, "{file}: error codes");
            }
            None if *errors > 0 => {
                assert!(
                    codes
                        .iter()
                        .filter(|c| c.starts_with("E:"))
                        .all(|c| c == "E:RVB-V009" || c == "E:RVB-E003"),
                    "{file} should validate without errors other than missing tools and features not built, got {codes:?}"
                );
                refused_for_tools += 1;
            }
            None => {}
        }
        for code in codes.iter().filter_map(|c| c.strip_prefix("W:")) {
            assert!(
                JUSTIFIED_WARNINGS.contains(&code),
                "{file}: unexpected warning {code}"
            );
        }
    }
    eprintln!("{refused_for_tools} corpus files call a tool this catalog does not provide (refused at run)");
    // The exact per-file outcome (errors, warnings, codes) is pinned as a snapshot.
    let lines: Vec<String> = table
        .iter()
        .map(|(f, (e, w, c))| {
            format!(
                "{f}: {e} errors, {w} warnings {}",
                if c.is_empty() {
                    String::new()
                } else {
                    format!("{c:?}")
                }
            )
        })
        .collect();
    insta::assert_snapshot!("corpus_outcomes", lines.join("\n"));
}

#[test]
fn every_era_is_read_into_the_same_model() {
    let root = corpus_dir().join("rvbbit-2025-12-25");
    // E1 (`phases`, `tackle`, `soundings`) and E2 (`cells`, `traits`, `candidates`) files type alike.
    let e1 = rvbbit_cascade::load_file(&root.join("traits/satisfied.json"));
    let doc = e1.document.expect("E1 validator loads");
    let cascade = doc.cascade().expect("is a cascade");
    assert_eq!(cascade.cascade_id, "satisfied");
    assert_eq!(cascade.cells.len(), 1);
    assert_eq!(cascade.cells[0].name, "check");
    let tool = rvbbit_cascade::load_file(&root.join("traits/word_count.tool.json"));
    assert!(matches!(tool.document.unwrap().content, Content::Tool(_)));
}

#[test]
fn spans_point_into_the_file() {
    let root = corpus_dir().join("rvbbit-2025-12-25");
    let loaded = rvbbit_cascade::load_file(&root.join("examples/bash_substrate/00_hello_bash.yaml"));
    let doc = loaded.document.unwrap();
    let span = doc.span_of("cells[1].tool").unwrap();
    assert_eq!(doc.source.slice(span), "sql_data");
    assert_eq!(doc.source.line_col(span.start).line, 22);
    let key = doc.key_span_of("cells[0].handoffs").unwrap();
    assert_eq!(doc.source.slice(key), "handoffs");
}
