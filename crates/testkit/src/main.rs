//! `rvbbit-testkit serve [--latency 200ms] [--port 0]`: run the scripted server, echoing every request,
//! until Ctrl-C. Prints the base URL on stdout.

#![allow(clippy::print_stdout, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use rvbbit_testkit::{Options, Script, TestServer};

const USAGE: &str = "usage: rvbbit-testkit serve [--latency <duration, e.g. 200ms or 1s>] [--port <port>]";

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
    let mut rest = args.iter().skip(1);
    while let Some(flag) = rest.next() {
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
        let mut options = Options::new(Script::echo()).latency(latency);
        options.addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = TestServer::start_with(options).await;
        println!("{}", server.base_url());
        eprintln!("Serving scripted echo replies with {latency:?} latency; Ctrl-C stops.");
        // Ctrl-C either arrives or cannot be listened for; both mean "stop now".
        let _ = tokio::signal::ctrl_c().await;
        server.shutdown().await;
    });
    ExitCode::SUCCESS
}
