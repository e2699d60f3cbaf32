//! `--help` of every command and `--version`.

use insta_cmd::assert_cmd_snapshot;

use crate::{filters, rvbbit};

#[test]
fn help_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["validate", "--help"],
        vec!["schema", "--help"],
        vec!["schema", "export", "--help"],
        vec!["config", "--help"],
        vec!["config", "show", "--help"],
        vec!["explain", "--help"],
    ] {
        let name = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .copied()
            .collect::<Vec<_>>()
            .join("_");
        let name = if name.is_empty() {
            "rvbbit".to_owned()
        } else {
            name
        };
        insta::with_settings!({filters => filters(), snapshot_suffix => name}, {
            assert_cmd_snapshot!(rvbbit(dir.path()).args(&args));
        });
    }
}

#[test]
fn version_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = rvbbit(dir.path()).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("rvbbit {}\n", env!("CARGO_PKG_VERSION"))
    );
}
