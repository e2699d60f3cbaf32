//! End-to-end tests of the `rvbbit` binary: exit codes, rendered output and the JSON shapes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod artifacts;
mod batch;
mod batch_queue;
mod channels;
mod clients;
mod config;
mod cursors;
mod distributed_map;
mod docs_commands;
mod events_sink;
mod exactly_once;
mod exec;
mod first_hour;
mod for_each_row;
mod help;
mod hitl;
mod init;
mod lars_data;
mod limits;
mod mock_provider;
mod money;
mod pgwire;
mod registry;
mod replay_example;
mod run_command;
mod run_compose;
mod run_llm;
mod sandbox;
mod serve;
mod shared_store;
mod signal_tools;
mod sql_command;
mod sql_tools;
mod store_commands;
mod store_faults;
mod store_processes;
mod studio_e2e;
mod validate;
mod webchat;
mod workers;
mod workers_http;
mod workers_journal;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The built binary, run with a clean environment (no host `RVBBIT_*` variables, no colors).
pub(crate) fn rvbbit(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvbbit"));
    cmd.env_clear().env("NO_COLOR", "1").current_dir(dir);
    cmd
}

/// Spawn a server (`cmd` with stderr piped), read the line it announces itself with, and take the port
/// from the address after `marker` in it. The rest of stderr is drained so the server never blocks on a
/// full pipe. Returns the child, the port and the announcement.
pub(crate) fn spawn_server(cmd: &mut Command, marker: &str) -> (std::process::Child, u16, String) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = first
        .split(marker)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.trim_end_matches('/').rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port after `{marker}` in `{first}`"));
    std::thread::spawn(move || for _ in lines {});
    (child, port, first)
}

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Filters that make snapshots independent of the machine.
pub(crate) fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
        (r"rvbbit \d+\.\d+\.\d+", "rvbbit [VERSION]"),
    ]
}
