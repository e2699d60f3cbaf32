//! `rvbbit-testkit serve [--latency 200ms] [--port 0] [--semantic]`: run the scripted server until
//! Ctrl-C, echoing every request, or with `--semantic` answering semantic SQL yes/no prompts (one row or
//! many: [`semantic`]). Prints the base URL on stdout.

#![allow(clippy::print_stdout, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use rvbbit_testkit::{Options, Reply, Script, TestServer, batch_answer, batch_rows};
use serde_json::Value;

const USAGE: &str =
    "usage: rvbbit-testkit serve [--latency <duration, e.g. 200ms or 1s>] [--port <port>] [--semantic]";

/// The `--semantic` model: a yes/no prompt's answer is `true` when its `Text:` line has an even number of
/// characters; a many-rows prompt is answered row by row as a JSON array. Usage is reported as a
/// quarter of the prompt's and the answer's characters, so benchmarks can compare token counts.
fn semantic(body: &Value) -> Reply {
    let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
    let yes = |one: &str| {
        one.lines()
            .find_map(|l| l.strip_prefix("Text: "))
            .is_some_and(|t| t.chars().count() % 2 == 0)
    };
    let answer = match batch_rows(prompt) {
        Some(rows) => batch_answer(
            &rows
                .iter()
                .map(|(id, one)| (*id, Value::Bool(yes(one))))
                .collect::<Vec<_>>(),
        ),
        None => yes(prompt).to_string(),
    };
    let tokens = |text: &str| (text.chars().count() as u64).div_ceil(4);
    Reply::text(answer.clone()).usage(tokens(prompt), tokens(&answer))
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(s) = text.strip_suffix('s') {
        return s
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
    }
    text.parse().ok().map(Duration::from_millis)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("serve") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let mut latency = Duration::ZERO;
    let mut port: u16 = 0;
    let mut answers_semantic = false;
    let mut rest = args.iter().skip(1);
    while let Some(flag) = rest.next() {
        if flag == "--semantic" {
            answers_semantic = true;
            continue;
        }
        let value = rest.next();
        match (flag.as_str(), value) {
            ("--latency", Some(v)) => match parse_duration(v) {
                Some(d) => latency = d,
                None => {
                    eprintln!("invalid --latency `{v}`\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            ("--port", Some(v)) => match v.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("invalid --port `{v}`\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let script = if answers_semantic {
            Script::rule(semantic)
        } else {
            Script::echo()
        };
        let mut options = Options::new(script).latency(latency);
        options.addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = TestServer::start_with(options).await;
        println!("{}", server.base_url());
        let kind = if answers_semantic { "semantic" } else { "echo" };
        eprintln!("Serving scripted {kind} replies with {latency:?} latency; Ctrl-C stops.");
        // Ctrl-C either arrives or cannot be listened for; both mean "stop now".
        let _ = tokio::signal::ctrl_c().await;
        server.shutdown().await;
    });
    ExitCode::SUCCESS
}
