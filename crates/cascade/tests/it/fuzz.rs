//! Property tests: the parser and validator never panic, and every span they report lies inside the file.
//!
//! Bounded by `PROPTEST_CASES` (default 256 per property here), so CI runs them in seconds.

use std::path::Path;

use proptest::prelude::*;
use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::{Catalog, load_str, render};

use crate::{corpus_dir, files_under};

fn check_text(text: &str) {
    let loaded = load_str(Path::new("fuzz.yaml"), text);
    let report = validate_loaded(loaded, &mut Catalog::builtin(), &Options::default());
    let source = report.loaded.source.clone();
    for d in report.diagnostics() {
        if let (Some(span), Some(src)) = (d.span, &source) {
            assert!(
                span.start <= span.end && span.end <= src.text().len(),
                "span {span:?} out of bounds"
            );
            assert!(src.text().is_char_boundary(span.start) && src.text().is_char_boundary(span.end));
        }
        // Rendering must not fail either.
        let _ = render(d, Path::new("fuzz.yaml"), source.as_ref(), false);
    }
}

fn corpus_texts() -> Vec<String> {
    files_under(&corpus_dir())
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check_text(&text);
    }

    #[test]
    fn yaml_shaped_text_never_panics(text in "([a-z_]{1,12}: (\\[|\\{|\"|'|\\||>|-|\\{\\{ |[a-z0-9 ]{0,10}|\n  )){0,40}") {
        check_text(&text);
    }

    #[test]
    fn mutated_corpus_files_never_panic(index in 0usize..10_000, cut in 0usize..10_000, flip in 0usize..10_000, byte in any::<u8>()) {
        let texts = corpus_texts();
        let original = &texts[index % texts.len()];
        let mut bytes = original.clone().into_bytes();
        if !bytes.is_empty() {
            let at = flip % bytes.len();
            bytes[at] = byte;
            bytes.truncate(bytes.len() - cut % bytes.len().max(1) / 4);
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        check_text(&text);
    }
}

#[test]
fn pathological_inputs_are_rejected_cleanly() {
    check_text(&"[".repeat(50_000));
    check_text(&"a: ".repeat(10_000));
    check_text(&format!(
        "cascade_id: x\ncells:\n{}",
        "  - name: a\n    instructions: '{{'\n".repeat(2_000)
    ));
    check_text("a: &x [*x]\n");
    check_text("cascade_id: \"\\uD800\"\ncells: []\n");
}
