//! Template rendering in the engine's environment (its filters, lenient undefined values) with small
//! `[limits]`: any template either renders or fails with an error; none panics or runs unbounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvbbit_core::config::LimitsConfig;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let limits = LimitsConfig {
        template_fuel: 20_000,
        template_output_bytes: 64 * 1024,
        ..LimitsConfig::default()
    };
    let ctx = json!({
        "input": {"name": "Ada", "x": "x'; id; echo '", "n": 3, "list": [1, "two", null]},
        "state": {"best": 95},
        "outputs": {"scores": {"rows": [{"score": 95}], "row_count": 1}},
    });
    if let Ok(out) = rvbbit_engine::render_for_fuzzing(source, &ctx, &limits) {
        assert!(out.len() <= 64 * 1024);
    }
});
