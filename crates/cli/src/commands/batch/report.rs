//! What a batch shows and writes: the live progress (an indicatif bar on a terminal, a plain line every
//! few seconds otherwise), each input's output file, and the summary (a table, or one JSON document).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rvbbit_core::{MicroUsd, codes};
use serde_json::json;

use super::Done;
use crate::commands::storage::table;
use crate::commands::{Coded, Failure};
use crate::output::{self, Format, Out};

/// How often the plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Where outputs go: `DIR/<name>/output.json` (or `error.json`), or `DIR/<name>.json` when flat.
pub(super) struct Outputs {
    dir: PathBuf,
    flat: bool,
    /// `rvbbit exec`: the files in each output (`files`, with `content_base64`) are written beside
    /// `output.json`, which keeps their paths, sizes and hashes only.
    files: bool,
}

impl Outputs {
    /// Create (or reuse) the output folder.
    pub(super) fn new(dir: &Path, flat: bool) -> Result<Self, Failure> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::Coded(Coded {
                code: codes::S_FILE,
                message: format!("the output folder {} cannot be created: {e}", dir.display()),
                hint: "pass a folder you can write to with `--output-dir`".into(),
                causes: Vec::new(),
            })
        })?;
        Ok(Outputs {
            dir: dir.to_path_buf(),
            flat,
            files: false,
        })
    }

    /// Write the files of each output too (`rvbbit exec`).
    pub(super) fn with_files(mut self, files: bool) -> Self {
        self.files = files;
        self
    }

    /// Write one input's result. The name is a safe folder name (inputs.rs); a link planted where the
    /// file goes is refused rather than followed.
    pub(super) fn write(&self, done: &Done) -> Result<(), String> {
        if done.status == "skipped" {
            return Ok(());
        }
        let ok = matches!(done.status, "completed" | "cached");
        let body = if ok {
            let mut body = done.output.clone().unwrap_or_default();
            if self.files && !self.flat {
                write_files(&self.dir.join(&done.name), &mut body)?;
            }
            body
        } else {
            json!({"status": done.status, "code": done.code, "message": done.message,
                "session_id": done.session_id, "source": done.source})
        };
        let (folder, file) = if self.flat {
            (self.dir.clone(), self.dir.join(format!("{}.json", done.name)))
        } else {
            let folder = self.dir.join(&done.name);
            let file = folder.join(if ok { "output.json" } else { "error.json" });
            (folder, file)
        };
        for p in [&folder, &file] {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(format!(
                    "{} is a link: refused (outputs are never written through links)",
                    p.display()
                ));
            }
        }
        std::fs::create_dir_all(&folder).map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        let text = serde_json::to_string_pretty(&body).unwrap_or_default() + "\n";
        // A rerun mostly rewrites what is there: leave an identical file alone (rewriting one makes the
        // file system flush it, which is most of a cached rerun's time).
        let same = std::fs::read(&file).is_ok_and(|old| old == text.as_bytes());
        if !same {
            std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
        if !self.flat {
            // A result that changed from failed to completed (or back) leaves no stale file beside it.
            let stale = folder.join(if ok { "error.json" } else { "output.json" });
            if std::fs::symlink_metadata(&stale).is_ok_and(|m| m.is_file()) {
                std::fs::remove_file(&stale)
                    .map_err(|e| format!("cannot remove {}: {e}", stale.display()))?;
            }
        }
        Ok(())
    }
}

/// Write each of `body.files` (`{path, content_base64}`) under `folder`, and drop its content from
/// `body`. A path must be relative with plain parts (no `..`); no link on the way is followed.
fn write_files(folder: &Path, body: &mut serde_json::Value) -> Result<(), String> {
    use base64::Engine as _;
    let Some(files) = body.get_mut("files").and_then(|f| f.as_array_mut()) else {
        return Ok(());
    };
    if std::fs::symlink_metadata(folder).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!(
            "{} is a link: refused (outputs are never written through links)",
            folder.display()
        ));
    }
    for file in files {
        let rel = file["path"].as_str().unwrap_or_default().to_owned();
        let path = Path::new(&rel);
        let plain = !rel.is_empty()
            && path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
            && !matches!(rel.as_str(), "output.json" | "error.json");
        if !plain {
            return Err(format!("the script's file `{rel}` has no safe name: refused"));
        }
        let target = folder.join(path);
        let mut at = folder.to_path_buf();
        for part in path.components() {
            at.push(part);
            if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(format!(
                    "{} is a link: refused (outputs are never written through links)",
                    at.display()
                ));
            }
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(file["content_base64"].as_str().unwrap_or_default())
            .map_err(|e| format!("the script's file `{rel}` is not valid base64: {e}"))?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&target, bytes).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        if let Some(m) = file.as_object_mut() {
            m.remove("content_base64");
        }
    }
    Ok(())
}

/// Counters behind the display.
#[derive(Default)]
struct Counts {
    done: u64,
    failed: u64,
    cached: u64,
    cost: MicroUsd,
    last_plain: Option<Instant>,
}

/// The live display.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    batch: String,
    started: Instant,
    counts: Mutex<Counts>,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines when it is not, nothing with `--quiet`.
    pub(super) fn start(out: Out, batch: &str, total: usize) -> Self {
        let total = total as u64;
        let terminal = std::io::stderr().is_terminal();
        let bar = (!out.quiet && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} batch {prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(batch.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            plain: !out.quiet && !terminal,
            total,
            batch: batch.to_owned(),
            started: Instant::now(),
            counts: Mutex::new(Counts::default()),
        }
    }

    /// One input finished.
    pub(super) fn tick(&self, done: &Option<Done>, cost: MicroUsd) {
        let Ok(mut c) = self.counts.lock() else { return };
        c.done += 1;
        c.cost += cost;
        match done.as_ref().map(|d| d.status) {
            Some("cached") => c.cached += 1,
            Some("failed" | "skipped") => c.failed += 1,
            _ => {}
        }
        let msg = format!("{} failed, {} cached, {}", c.failed, c.cached, c.cost);
        if let Some(bar) = &self.bar {
            bar.set_position(c.done);
            bar.set_message(msg);
        } else if self.plain && c.last_plain.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            c.last_plain = Some(Instant::now());
            output::stderr(&self.line(&c));
        }
    }

    /// The counts so far, as the batch's record shows them while it runs.
    pub(super) fn snapshot(&self) -> serde_json::Value {
        let Ok(c) = self.counts.lock() else {
            return serde_json::Value::Null;
        };
        json!({"total": self.total, "done": c.done, "failed": c.failed, "cached": c.cached,
            "cost_usd": c.cost.to_string(), "cost_micros": c.cost.micros(),
            "elapsed_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)})
    }

    fn line(&self, c: &Counts) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = c.done as f64 / secs;
        let eta = if rate > 0.0 {
            (self.total - c.done) as f64 / rate
        } else {
            0.0
        };
        format!(
            "batch {}: {}/{} done, {} failed, {} cached, {:.1}/s, ETA {:.0} s, {}\n",
            self.batch, c.done, self.total, c.failed, c.cached, rate, eta, c.cost
        )
    }

    /// The end: the bar cleared, or a last plain line.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        } else if self.plain
            && let Ok(c) = self.counts.lock()
        {
            output::stderr(&self.line(&c));
        }
    }
}

/// Print the summary: a table of the inputs that did not complete and the totals, or one JSON document.
pub(super) fn summary(
    batch: &str,
    done: &[Done],
    took: Duration,
    outputs: &Outputs,
    verdict: Option<&Coded>,
    out: Out,
) -> Result<(), Failure> {
    let count = |s: &str| done.iter().filter(|d| d.status == s).count();
    let cost = done.iter().fold(MicroUsd::ZERO, |a, d| a + d.cost);
    let avoided = done
        .iter()
        .filter_map(|d| {
            d.avoided_usd
                .as_deref()?
                .trim_start_matches('$')
                .parse::<MicroUsd>()
                .ok()
        })
        .fold(MicroUsd::ZERO, |a, c| a + c);
    let per_min = done.len() as f64 / took.as_secs_f64().max(0.001) * 60.0;
    match out.format {
        Format::Json => output::json(&json!({
            "status": match verdict.map(|c| c.code) {
                None => "ok",
                Some(c) if c == codes::B_ALL_FAILED => "failed",
                Some(_) => "partial",
            },
            "exit_code": verdict.map_or(0, |c| c.code.exit_code()),
            "code": verdict.map(|c| c.code.code),
            "message": verdict.map(|c| c.message.clone()),
            "batch_id": batch,
            "caller_id": format!("batch-{batch}"),
            "total": done.len(),
            "completed": count("completed"),
            "cached": count("cached"),
            "failed": count("failed"),
            "skipped": count("skipped"),
            "cost_usd": cost.to_string(),
            "avoided_usd": avoided.to_string(),
            "duration_ms": u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "inputs_per_minute": (per_min * 10.0).round() / 10.0,
            "output_dir": outputs.dir,
            "inputs": done,
        }))?,
        Format::Text => {
            let bad: Vec<Vec<String>> = done
                .iter()
                .filter(|d| matches!(d.status, "failed" | "skipped"))
                .map(|d| {
                    vec![
                        d.name.clone(),
                        d.status.to_owned(),
                        d.code.unwrap_or("").to_owned(),
                        d.message.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let mut text = format!(
                "batch {batch}: {} inputs, {} completed, {} cached, {} failed, {} skipped in {:.1} s ({:.0}/min); cost {}, saved {} by the cache\noutputs in {}\n",
                done.len(),
                count("completed"),
                count("cached"),
                count("failed"),
                count("skipped"),
                took.as_secs_f64(),
                per_min,
                cost,
                avoided,
                outputs.dir.display()
            );
            if !bad.is_empty() {
                text.push_str(&table(&["INPUT", "STATUS", "CODE", "ERROR"], &bad));
            }
            output::stdout(&text)?;
        }
    }
    Ok(())
}
