//! `sql_function`: typed, and validated with positions (SQL interface spec §12.1).

use std::path::Path;

use rvbbit_cascade::model::{SqlShape, SqlType};
use rvbbit_cascade::validate::{Options, Report, validate_loaded};
use rvbbit_cascade::{Catalog, Severity, load_str};

fn validate(text: &str, strict: bool) -> Report {
    let loaded = load_str(Path::new("op.yaml"), text);
    validate_loaded(
        loaded,
        &mut Catalog::builtin(),
        &Options {
            strict,
            ..Options::default()
        },
    )
}

/// (code, line, column, message) of every error.
fn errors(report: &Report) -> Vec<(String, usize, usize, String)> {
    let source = report.loaded.source.as_ref().unwrap();
    report
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let at = source.line_col(d.span.unwrap().start);
            (d.code.code.to_owned(), at.line, at.col, d.message.clone())
        })
        .collect()
}

const CELLS: &str =
    "cells:\n  - name: judge\n    instructions: 'Is {{ input.text }} about {{ input.topic }}?'\n";

#[test]
fn a_typed_sql_function_with_lars_keys_validates_strictly() {
    let text = format!(
        "cascade_id: about\nsql_function:\n  name: semantic_about\n  description: Relevance.\n  args:\n    \
         - {{name: text, type: VARCHAR, role: data, structure_source: false}}\n    \
         - {{name: topic, type: VARCHAR, optional: true, default: x}}\n  returns: DOUBLE\n  shape: SCALAR\n  \
         operators: ['{{{{ text }}}} ABOUT {{{{ topic }}}}', 'ABOUT({{{{ text }}}}, {{{{ topic }}}})']\n  \
         cache: true\n  cache_ttl: 60\n  cache_key: {{strategy: content}}\n  timeout: 30\n  max_retries: 2\n  \
         enabled: true\n  output_mode: value\n  test_cases: [{{sql: \"SELECT 1\", expect: 1}}]\n{CELLS}"
    );
    let report = validate(&text, true);
    assert_eq!(report.counts(), (0, 0), "{:?}", report.diagnostics());
    let doc = report.loaded.document.as_ref().unwrap();
    let f = doc.cascade().unwrap().sql_function.as_ref().unwrap();
    assert_eq!(f.result_type(), SqlType::Double);
    assert_eq!(f.call_shape(), SqlShape::Scalar);
    assert_eq!(f.sql_name("about"), "semantic_about");
    assert_eq!(f.args[1].optional, Some(true));
}

#[test]
fn broken_sql_functions_are_reported_at_their_position() {
    let text = format!(
        "cascade_id: broken\nsql_function:\n  args:\n    - name: text\n    - name: text\n  returns: BOOL\n  \
         shape: SCALARISH\n  operators:\n    - '{{{{ text }}}} MEANS {{{{ criterion }}}}'\n    \
         - '{{{{ text }}}} >= {{{{ text }}}}'\n{CELLS}"
    );
    let found = errors(&validate(&text, false));
    let has = |code: &str, line: usize, col: usize, words: &str| {
        assert!(
            found
                .iter()
                .any(|(c, l, k, m)| c == code && *l == line && *k == col && m.contains(words)),
            "no {code} at {line}:{col} mentioning {words:?} in {found:#?}"
        );
    };
    has("RVB-V005", 5, 13, "two arguments");
    has("RVB-V005", 6, 12, "BOOL");
    has("RVB-V005", 7, 10, "SCALARISH");
    has("RVB-V005", 9, 28, "`{{ criterion }}`");
    has("RVB-V013", 10, 19, "does not parse");
}

/// `batch_size` is 1 to 1000: 1000 validates, 1001 and 0 are reported at their position.
#[test]
fn batch_size_is_bounded_and_reported_at_its_position() {
    let with = |n: u32| {
        format!("cascade_id: b\nsql_function:\n  args: [{{name: text}}]\n  batch_size: {n}\n{CELLS}")
    };
    assert_eq!(validate(&with(1000), true).counts(), (0, 0));
    for n in [0, 1001] {
        let found = errors(&validate(&with(n), false));
        assert!(
            found.iter().any(|(c, l, k, m)| c == "RVB-V005"
                && *l == 4
                && *k == 15
                && m.contains("between 1 and 1000")),
            "{found:#?}"
        );
    }
}

#[test]
fn pipeline_stages_validate_and_a_stage_on_another_shape_is_reported() {
    let stage = "cascade_id: keep\nsql_function:\n  args: [{name: criterion}]\n  returns: TABLE\n  shape: PIPELINE\n  \
                 operators: ['THEN KEEP {{ criterion }}', 'THEN KEEP {{ criterion }} AS {{ criterion }}']\n\
                 cells:\n  - name: judge\n    instructions: 'Keep {{ input.criterion }} of {{ input._table }}'\n";
    let report = validate(stage, true);
    assert_eq!(report.counts(), (0, 0), "{:?}", report.diagnostics());
    let mixed = "cascade_id: mixed\nsql_function:\n  args: [{name: text}]\n  returns: BOOLEAN\n  \
                 operators: ['THEN KEEP {{ text }}']\ncells:\n  - name: judge\n    instructions: 'x'\n";
    let found = errors(&validate(mixed, false));
    assert!(
        found
            .iter()
            .any(|(c, l, _, m)| c == "RVB-V005" && *l == 5 && m.contains("is a pipeline stage")),
        "{found:#?}"
    );
    let pipeline = "cascade_id: p\nsql_function:\n  args: [{name: text}]\n  returns: TABLE\n  shape: PIPELINE\n  \
                    operators: ['{{ text }} KEEPS']\ncells:\n  - name: judge\n    instructions: 'x'\n";
    let found = errors(&validate(pipeline, false));
    assert!(
        found
            .iter()
            .any(|(c, l, _, m)| c == "RVB-V005" && *l == 6 && m.contains("is not a stage")),
        "{found:#?}"
    );
}
