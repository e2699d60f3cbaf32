//! Every LLM example has a recording in `examples/recordings/<name>.jsonl` that replays it with no
//! provider and no API key, as the README and examples/README.md show. `RVBBIT_BLESS=1` re-records them
//! against the testkit's scripted server (after a change to how prompts are built, which changes the
//! request hashes): `RVBBIT_BLESS=1 cargo test -p rvbbit --test it replay`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_command::{JsonOutcome, example};
use crate::rvbbit;

const TRIAGE_INPUT: &str =
    r#"{"ticket": "I was charged twice for order 1182, please give me my money back"}"#;
const DRAFT: &str = "Refund of the duplicate charge on order 1182 approved; 5 business days.";
const REPLY: &str = "Hello! We have refunded the duplicate charge on order 1182; it will reach your account \
within 5 business days. Sorry for the trouble.";
const GREETING: &str = "Ahoy, Ada! May yer sails be full and yer code compile on the first try.";
const REPORT: &str = "Alice (95) and Charlie (92) scored 90 or more; Bob (87) fell short.";
const TAGLINES: [&str; 3] = [
    "Tea, powered by the sun.",
    "Boil by daylight.",
    "The kettle that waits for noon.",
];
const SUMMARY: &str = "Ada Lovelace wrote the first published program, for Babbage's Analytical Engine. \
She saw that such machines could work on symbols, not only numbers.";
const TITLE: &str = "Ada Lovelace and the First Program";
const ANNOUNCEMENT: &str = "Our new office in Lisbon opens on Monday. Come and say hello!";
const DIRECTORY_REPORT: &str = "The folder holds a short README about the child cascades.";

pub(crate) fn recording(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../examples/recordings/{name}.jsonl"))
        .display()
        .to_string()
}

/// All the text of a request's messages (content as a string or as parts).
fn text_of(body: &Value) -> String {
    let mut text = String::new();
    for m in body["messages"].as_array().into_iter().flatten() {
        match &m["content"] {
            Value::String(s) => text.push_str(s),
            Value::Array(parts) => {
                for p in parts {
                    text.push_str(p["text"].as_str().unwrap_or_default());
                }
            }
            _ => {}
        }
        text.push('\n');
    }
    text
}

/// The contents of the tool results in a request, in order.
fn tool_results(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "tool")
        .map(|m| text_of(&json!({"messages": [m]})))
        .collect()
}

/// The first whole number in `text` (the count `wc -w` printed).
fn first_number(text: &str) -> u64 {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

/// The scripted model of every example: a reply chosen from the request's text.
fn scripted(body: &Value) -> Reply {
    let text = text_of(body);
    let has = |s: &str| text.contains(s);
    if has("Read this ticket and route it") {
        return Reply::tool_call(
            "call_1",
            "route_to",
            json!({"target": "refund", "reason": "the customer asks for their money back"}),
        )
        .usage(212, 31);
    }
    if has("Turn the draft into the final reply") {
        return Reply::text(REPLY).usage(160, 34);
    }
    if has("Draft a refund confirmation") {
        return Reply::text(DRAFT).usage(140, 18);
    }
    if has("Write a one-line greeting for Ada") {
        return Reply::text(GREETING).usage(40, 17);
    }
    if has("Summarize these results for a manager") {
        return Reply::text(REPORT).usage(70, 20);
    }
    if has("## Attempt") {
        return Reply::text(r#"{"winner": 2, "reason": "Shortest, and it sticks."}"#).usage(90, 12);
    }
    for (n, tagline) in TAGLINES.iter().enumerate() {
        if has(&format!("Take {} of 3", n + 1)) {
            return Reply::text(*tagline).usage(30, 8);
        }
    }
    if has("Summarize in two sentences") {
        return Reply::text(SUMMARY).usage(80, 40);
    }
    if has("Write a title for this summary") {
        return Reply::text(TITLE).usage(60, 9);
    }
    if has("Draft a two-sentence announcement") {
        return Reply::text(ANNOUNCEMENT).usage(30, 15);
    }
    if has("You are a validator") || has("plausible email address") {
        return Reply::text(r#"{"valid": true, "reason": "ada@example.com is a plausible address"}"#)
            .usage(50, 14);
    }
    if has("Extract the person's name, email and phone") {
        return Reply::text(
            r#"{"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958"}"#,
        )
        .usage(70, 25);
    }
    if has("Count the words in the README") {
        // Turn 1 counts, turn 2 saves the counted number, turn 3 says so.
        return match tool_results(body).as_slice() {
            [] => Reply::tool_call("call_wc", "word_count", json!({"path": "children/README.md"}))
                .usage(120, 20),
            [count] => Reply::tool_call(
                "call_set",
                "set_state",
                json!({"key": "words", "value": first_number(count)}),
            )
            .usage(150, 20),
            [count, ..] => Reply::text(format!(
                "children/README.md has {} words; the count is saved as `words`.",
                first_number(count)
            ))
            .usage(170, 20),
        };
    }
    if has("Write a one-paragraph report") {
        return Reply::text(DIRECTORY_REPORT).usage(90, 18);
    }
    Reply::error(400, format!("the recording script has no reply for: {text}"))
}

/// One example run: its file, input and extra flags.
struct Example {
    name: &'static str,
    input: &'static str,
    flags: &'static [&'static str],
}

impl Example {
    fn command(&self, dir: &Path, mode: &str, file: &str) -> Command {
        let mut cmd = rvbbit(dir);
        cmd.args([
            "--output",
            "json",
            "run",
            &example(&format!("{}.yaml", self.name)),
        ])
        .args(["--input", self.input, mode, file])
        .args(self.flags);
        cmd
    }

    /// Re-record against the testkit server when `RVBBIT_BLESS` is set.
    fn bless(&self, dir: &Path, exit: i32) {
        if std::env::var_os("RVBBIT_BLESS").is_none() {
            return;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(TestServer::start(Script::rule(scripted)));
        let file = recording(self.name);
        // The recording may not exist yet.
        let _ = std::fs::remove_file(&file);
        let out = self
            .command(dir, "--record", &file)
            .env("RVBBIT_PROVIDER_BASE_URL", server.base_url())
            .env("OPENROUTER_API_KEY", "recording-key")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(exit),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        rt.block_on(server.shutdown());
        if self.name == "hello" {
            let scaffold = Path::new(env!("CARGO_MANIFEST_DIR")).join("scaffold/recordings/hello.jsonl");
            std::fs::copy(&file, scaffold).unwrap();
        }
        // The store of the recording run is not the one the replay is checked against.
        let _ = std::fs::remove_dir_all(dir.join(".rvbbit"));
    }

    /// Replay the shipped recording (blessing it first when asked) and return the outcome.
    fn replay(&self, exit: i32) -> (TempDir, JsonOutcome) {
        let dir = TempDir::new().unwrap();
        self.bless(dir.path(), exit);
        let out = self
            .command(dir.path(), "--replay", &recording(self.name))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(exit),
            "{}: the recording no longer matches the requests (re-record with RVBBIT_BLESS=1 cargo test \
             -p rvbbit --test it replay): {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let outcome: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
        (dir, outcome)
    }
}

fn completed(example: &Example) -> JsonOutcome {
    let (_dir, outcome) = example.replay(0);
    assert_eq!(outcome.status, "completed", "{outcome:?}");
    assert!(outcome.caller_id.starts_with("cli-"), "{}", outcome.caller_id);
    assert_eq!(outcome.cost_usd, "0.000000", "replayed calls cost nothing");
    outcome
}

#[test]
fn the_recording_replays_triage_routing() {
    let outcome = completed(&Example {
        name: "triage_routing",
        input: TRIAGE_INPUT,
        flags: &[],
    });
    assert_eq!(outcome.path, ["triage", "refund", "reply"]);
    assert_eq!(outcome.outputs["refund"], json!(DRAFT));
    assert_eq!(outcome.output, json!(REPLY));
    assert_eq!(outcome.llm_calls, 3);
}

#[test]
fn the_recording_replays_hello() {
    let outcome = completed(&Example {
        name: "hello",
        input: r#"{"name": "Ada", "style": "pirate"}"#,
        flags: &[],
    });
    assert_eq!(outcome.output, json!(GREETING));
    assert_eq!(outcome.llm_calls, 1);
}

#[test]
fn the_recording_replays_deterministic_pipeline() {
    let outcome = completed(&Example {
        name: "deterministic_pipeline",
        input: r#"{"min_score": 90}"#,
        flags: &[],
    });
    assert_eq!(outcome.path, ["generate", "top_scores", "report"]);
    assert_eq!(outcome.outputs["top_scores"]["row_count"], json!(2));
    assert_eq!(outcome.output, json!(REPORT));
    assert_eq!(outcome.llm_calls, 1);
}

#[test]
fn the_recording_replays_best_of_three() {
    let outcome = completed(&Example {
        name: "best_of_three",
        input: r#"{"product": "a solar kettle"}"#,
        flags: &[],
    });
    // Three takes and the evaluator, which picked take 2.
    assert_eq!(outcome.llm_calls, 4);
    assert_eq!(outcome.output, json!(TAGLINES[1]));
}

#[test]
fn the_recording_replays_sub_cascade_parent() {
    let outcome = completed(&Example {
        name: "sub_cascade_parent",
        input: r#"{"document": "Ada Lovelace published the first algorithm meant for a machine, the Analytical Engine of Charles Babbage, in 1843. She also saw that it could compose music."}"#,
        flags: &[],
    });
    assert_eq!(outcome.output, json!(TITLE));
}

#[test]
fn the_recording_replays_validated_output() {
    let outcome = completed(&Example {
        name: "validated_output",
        input: r#"{"text": "Reach Ada Lovelace at ada@example.com or +44 20 7946 0958."}"#,
        flags: &[],
    });
    assert_eq!(outcome.output["email"], json!("ada@example.com"));
    assert_eq!(outcome.output["name"], json!("Ada Lovelace"));
}

#[test]
fn the_recording_replays_tools_and_context() {
    let outcome = completed(&Example {
        name: "tools_and_context",
        input: r#"{"directory": "children"}"#,
        flags: &[],
    });
    assert_eq!(outcome.path, ["explore", "report"]);
    assert_eq!(outcome.output, json!(DIRECTORY_REPORT));
    // word_count ran beside the example (on examples/children/README.md) and set_state saved its count.
    assert_eq!(outcome.tool_calls, 2, "{outcome:?}");
    let words = std::fs::read_to_string(example("children/README.md"))
        .unwrap()
        .split_whitespace()
        .count();
    assert_eq!(
        outcome.outputs["explore"],
        json!(format!(
            "children/README.md has {words} words; the count is saved as `words`."
        ))
    );
}

/// human_review waits twice: the confirmation of the draft, then the screen; answered with
/// `rvbbit signal send` and continued with `rvbbit resume`, it publishes the recorded draft.
#[test]
fn the_recording_replays_human_review_through_its_two_waits() {
    let ex = Example {
        name: "human_review",
        input: r#"{"news": "our new office in Lisbon opens on Monday"}"#,
        flags: &["--detach", "--session", "review-1"],
    };
    let (dir, outcome) = ex.replay(10);
    assert_eq!(outcome.status, "waiting");
    assert_eq!(outcome.path, ["draft"]);
    assert_eq!(outcome.llm_calls, 1);
    let step = |args: &[&str], exit: i32| {
        let out = rvbbit(dir.path()).args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(exit),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    step(&["signal", "send", "review-1", "draft", "--value", "true"], 0);
    step(&["resume", "review-1", "--detach"], 10);
    step(
        &[
            "signal",
            "send",
            "review-1",
            "approve",
            "--value",
            r#"{"_route": "publish"}"#,
        ],
        0,
    );
    let out = step(&["--output", "json", "resume", "review-1"], 0);
    let done: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done.status, "completed");
    assert_eq!(done.path, ["draft", "approve", "publish"]);
    assert_eq!(done.output, json!({"key": "published", "value": ANNOUNCEMENT}));
}

#[test]
fn every_llm_example_has_a_recording() {
    let dir = PathBuf::from(example(""));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".yaml"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("instructions:") {
            assert!(
                Path::new(&recording(stem)).is_file(),
                "examples/{stem}.yaml has LLM cells but no examples/recordings/{stem}.jsonl"
            );
        }
    }
}

#[test]
fn a_replay_miss_names_the_request_and_exits_4() {
    let dir = TempDir::new().unwrap();
    let out = rvbbit(dir.path())
        .args([
            "run",
            &example("triage_routing.yaml"),
            "--input",
            r#"{"ticket": "a different ticket that was never recorded"}"#,
            "--replay",
            &recording("triage_routing"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("RVB-L"), "{stderr}");
    assert!(stderr.to_lowercase().contains("record"), "{stderr}");
}
