//! The cascade validator: load + validate from bytes never panics, and every diagnostic renders with a
//! span inside the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::{Catalog, load_str_with, render};
use rvbbit_core::config::LimitsConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = LimitsConfig {
        yaml_aliases: 200,
        yaml_nodes: 20_000,
        yaml_depth: 64,
        ..LimitsConfig::default()
    };
    // A path in a directory without tool folders: validation reads nothing else from disk.
    let path = Path::new("/nonexistent-rvbbit-fuzz/fuzz.yaml");
    let loaded = load_str_with(path, text, &limits);
    let report = validate_loaded(loaded, &mut Catalog::builtin(), &Options::default());
    let source = report.loaded.source.clone();
    for d in report.diagnostics() {
        if let (Some(span), Some(src)) = (d.span, &source) {
            assert!(span.start <= span.end && span.end <= src.text().len(), "{span:?}");
        }
        let _ = render(d, path, source.as_ref(), false);
    }
});
