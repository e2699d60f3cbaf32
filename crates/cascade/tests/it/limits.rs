//! Hostile files against the `limits.yaml_*` budgets (issue 13): each limit probed just below (loads)
//! and just above (one `RVB-V024` error at a span, naming the setting).

use std::path::Path;
use std::time::{Duration, Instant};

use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::{Catalog, Diagnostic, load_str, load_str_with};
use rvbbit_core::config::LimitsConfig;

/// A "billion laughs" cascade: nine levels of nine aliases (9^9 strings once expanded), about 500 bytes.
pub(crate) fn bomb() -> String {
    let mut text = String::from("cascade_id: bomb\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let refs = vec![format!("*l{}", i - 1); 9].join(",");
        text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    text.push_str("cells: []\n");
    text
}

fn v024(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
    diags.iter().filter(|d| d.code.code == "RVB-V024").collect()
}

#[test]
fn issue_13_billion_laughs_is_refused_quickly_with_v024() {
    let text = bomb();
    assert!(text.len() < 600, "{} bytes", text.len());
    let started = Instant::now();
    let loaded = load_str(Path::new("bomb.yaml"), &text);
    let report = validate_loaded(loaded, &mut Catalog::builtin(), &Options::default());
    assert!(started.elapsed() < Duration::from_secs(10));
    let found = v024(report.diagnostics());
    assert_eq!(found.len(), 1, "{:?}", report.diagnostics());
    let d = found[0];
    assert!(d.message.contains("limits.yaml_nodes = 1000000"), "{}", d.message);
    assert!(
        d.hint
            .as_deref()
            .is_some_and(|h| h.contains("rvbbit.toml [limits]"))
    );
    let span = d.span.expect("a span");
    assert!(
        text[span.start..span.end].starts_with("*l"),
        "{:?}",
        &text[span.start..span.end]
    );
    assert!(report.loaded.document.is_none());
}

fn cascade_with_aliases(n: usize) -> String {
    let refs = vec!["*name"; n].join(", ");
    format!("cascade_id: c\nnames: &name greet\nlist: [{refs}]\ncells:\n  - name: greet\n    tool: echo\n")
}

#[test]
fn yaml_aliases_limit_below_loads_and_above_is_v024() {
    let limits = LimitsConfig {
        yaml_aliases: 5,
        ..LimitsConfig::default()
    };
    let ok = load_str_with(Path::new("a.yaml"), &cascade_with_aliases(5), &limits);
    assert!(v024(&ok.diagnostics).is_empty(), "{:?}", ok.diagnostics);
    assert!(ok.document.is_some());
    let over = load_str_with(Path::new("a.yaml"), &cascade_with_aliases(6), &limits);
    let found = v024(&over.diagnostics);
    assert_eq!(found.len(), 1, "{:?}", over.diagnostics);
    assert!(
        found[0].message.contains("limits.yaml_aliases = 5"),
        "{}",
        found[0].message
    );
}

#[test]
fn yaml_depth_limit_below_loads_and_above_is_v024() {
    // The cascade mapping is level 1, `x` adds `depth - 1` more.
    let nested = |depth: usize| {
        format!(
            "cascade_id: c\ncells: []\nx: {}{}\n",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    };
    let limits = LimitsConfig {
        yaml_depth: 40,
        ..LimitsConfig::default()
    };
    let ok = load_str_with(Path::new("d.yaml"), &nested(40), &limits);
    assert!(v024(&ok.diagnostics).is_empty(), "{:?}", ok.diagnostics);
    let over = load_str_with(Path::new("d.yaml"), &nested(41), &limits);
    let found = v024(&over.diagnostics);
    assert_eq!(found.len(), 1, "{:?}", over.diagnostics);
    assert!(
        found[0].message.contains("limits.yaml_depth = 40"),
        "{}",
        found[0].message
    );
}

#[test]
fn yaml_nodes_limit_below_loads_and_above_is_v024() {
    let text = "cascade_id: c\ncells: []\n";
    // root mapping + 2 keys + 2 values = 5 nodes
    let at = |n| LimitsConfig {
        yaml_nodes: n,
        ..LimitsConfig::default()
    };
    assert!(v024(&load_str_with(Path::new("n.yaml"), text, &at(5)).diagnostics).is_empty());
    let over = load_str_with(Path::new("n.yaml"), text, &at(4));
    assert_eq!(v024(&over.diagnostics).len(), 1, "{:?}", over.diagnostics);
}
