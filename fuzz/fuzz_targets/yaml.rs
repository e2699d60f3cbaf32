//! The YAML reader: any bytes parse without panicking, within the default limits, and every span lies
//! inside the text on character boundaries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvbbit_cascade::source::SourceFile;
use rvbbit_cascade::yaml;
use rvbbit_core::config::LimitsConfig;

/// Small budgets, so the fuzzer explores the limits instead of spending its time on huge expansions.
fn limits() -> LimitsConfig {
    LimitsConfig {
        yaml_aliases: 200,
        yaml_nodes: 20_000,
        yaml_depth: 64,
        ..LimitsConfig::default()
    }
}

fn check(node: &yaml::Node, len: usize, text: &str) {
    assert!(node.span.start <= node.span.end && node.span.end <= len, "span {:?}", node.span);
    assert!(text.is_char_boundary(node.span.start) && text.is_char_boundary(node.span.end));
    match &node.kind {
        yaml::NodeKind::Seq(items) => items.iter().for_each(|n| check(n, len, text)),
        yaml::NodeKind::Map(entries) => entries.iter().for_each(|(k, v)| {
            check(k, len, text);
            check(v, len, text);
        }),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = SourceFile::new("fuzz.yaml", text);
    let parsed = yaml::parse_with(&source, &limits());
    if let Some(root) = &parsed.root {
        check(root, text.len(), text);
        let _ = root.to_json();
    }
});
