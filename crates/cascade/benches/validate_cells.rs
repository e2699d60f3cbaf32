//! Validation time against the number of cells (issue 13: 106k cells took over 300 s, quadratic).
//!
//! `cargo bench -p rvbbit-cascade --bench validate_cells` loads and validates generated cascades of 10k
//! and 40k cells (LLM cells with templates reading earlier outputs, tool cells, handoffs, routing) and
//! prints the time of each and their ratio: about 4 means linear, about 16 quadratic. `-- N M` picks
//! other sizes. Like the engine's bench, a plain timing harness: no timing assertions anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use rvbbit_cascade::source::SourceFile;
use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::{Catalog, load_str, yaml};

const ROUNDS: usize = 3;

/// A valid cascade of `n` cells, every kind of reference the validator follows.
fn cascade(n: usize) -> String {
    let mut text = String::from("cascade_id: many\ndescription: generated\ncells:\n");
    for i in 0..n {
        let next = (i + 1 < n).then(|| format!("c{}", i + 1));
        if i % 2 == 0 {
            text.push_str(&format!(
                "  - name: c{i}\n    instructions: |\n      Step {i} of {{{{ input.topic }}}}: improve {{{{ outputs.c{prev} }}}}.\n    rules: {{max_turns: 2}}\n",
                prev = i.saturating_sub(1)
            ));
        } else {
            text.push_str(&format!(
                "  - name: c{i}\n    tool: set_state\n    inputs:\n      key: k{i}\n      value: \"{{{{ state.k{prev} }}}} {{{{ outputs.c{prev} | tojson }}}}\"\n",
                prev = i - 1
            ));
        }
        if let Some(next) = next {
            if i % 3 == 0 {
                text.push_str(&format!("    routing: {{success: {next}, default: {next}}}\n"));
            } else {
                text.push_str(&format!("    handoffs: [{next}]\n"));
            }
        }
    }
    text
}

/// Best of [`ROUNDS`]: (parse only, load + validate).
fn time(n: usize) -> (Duration, Duration) {
    let text = cascade(n);
    let source = SourceFile::new("many.yaml", text.as_str());
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let parsed = yaml::parse(&source);
        best.0 = best.0.min(started.elapsed());
        drop(parsed);
        let started = Instant::now();
        let loaded = load_str(Path::new("/nonexistent/many.yaml"), &text);
        let report = validate_loaded(loaded, &mut Catalog::builtin(), &Options::default());
        let took = started.elapsed();
        let (errors, _) = report.counts();
        assert_eq!(errors, 0, "{:?}", &report.diagnostics()[..errors.min(3)]);
        best.1 = best.1.min(took);
    }
    best
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (small, large) = match sizes[..] {
        [a, b, ..] => (a, b),
        _ => (10_000, 40_000),
    };
    let (p_small, t_small) = time(small);
    println!(
        "{small:>7} cells: load + validate {t_small:>10.2?}, of which parsing YAML {p_small:>10.2?} (best of {ROUNDS})"
    );
    let (p_large, t_large) = time(large);
    println!(
        "{large:>7} cells: load + validate {t_large:>10.2?}, of which parsing YAML {p_large:>10.2?} (best of {ROUNDS})"
    );
    println!(
        "ratio {:.2} (parsing {:.2}) for {}x the cells (linear ≈ {}, quadratic ≈ {})",
        t_large.as_secs_f64() / t_small.as_secs_f64(),
        p_large.as_secs_f64() / p_small.as_secs_f64(),
        large / small,
        large / small,
        (large / small).pow(2)
    );
}
