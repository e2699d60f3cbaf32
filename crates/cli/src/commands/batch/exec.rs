//! `rvbbit exec [OPTIONS] SCRIPT [ARGS…]`: a plain script (Python, bash, sh or node) run as a one-cell
//! cascade around the `run_script` tool, in the sandbox (on by default: `sandbox.exec`), once, or once
//! per file with `--batch GLOB`. It is a batch underneath: one caller id, the record in the store, the
//! result cache, `--budget-dollars`, `rvbbit batch status|logs|retry` all work on it. See docs/exec.md.
//!
//! Before anything runs: the interpreter is found, the script is copied by content
//! ([`script_env::copy_script`]), a Python script's `requirements.txt` becomes a cached venv, and each
//! argument naming a file or folder becomes its absolute path, mounted read-only and hashed into the
//! cascade text, so the cache key changes when any of them changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rvbbit_core::{ErrorCode, codes};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::inputs::{self, Input};
use super::script_env::{self, Runtime};
use super::{Args, Done, usage};
use crate::cli::Cli;
use crate::commands::{Coded, Failure, Outcome, load_config};
use crate::output::{self, Format, Out};

/// Arguments of `rvbbit exec`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// The interpreter (default: from the script's extension: .py python, .sh bash, .js node).
    #[arg(long, value_enum)]
    runtime: Option<Runtime>,
    /// Run the script once per file this glob matches (quote it): the file is mounted read-only and
    /// passed as its absolute path, in place of an argument `{}` or else after the other arguments.
    #[arg(long, value_name = "GLOB")]
    batch: Option<String>,
    /// Runs at once with `--batch` (default `batch.parallel`).
    #[arg(long, value_name = "N")]
    parallel: Option<u32>,
    /// Where each run's files go: DIR/<name>/ (the script's name, or each input file's) with
    /// output.json (or error.json).
    #[arg(long, value_name = "DIR", default_value = "outputs")]
    output_dir: PathBuf,
    /// Invocation metadata recorded on every session (repeatable).
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// Stop starting runs before the cost would pass this many dollars.
    #[arg(long, value_name = "DOLLARS")]
    budget_dollars: Option<String>,
    /// Neither read nor write the result cache.
    #[arg(long, conflicts_with = "refresh")]
    no_cache: bool,
    /// Run again and replace the cached result.
    #[arg(long)]
    refresh: bool,
    #[command(flatten)]
    sandbox: crate::commands::sandbox::BatchArgs,
    /// The script file.
    #[arg(value_name = "SCRIPT")]
    script: PathBuf,
    /// The script's arguments (after SCRIPT, everything is the script's). One that names an existing
    /// file or folder is mounted read-only and passed as its absolute path.
    #[arg(value_name = "ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// What the batch behind an exec is given: its inputs ready-made, and whether it is one run (shown as
/// the script's own output) or a batch (shown as a batch).
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(super) inputs: Vec<Input>,
    pub(super) single: bool,
    /// What a retry needs to prepare it again (kept in the batch's record).
    pub(super) spec: Value,
}

/// `rvbbit exec`.
pub(crate) fn run(cli: &Cli, args: &ExecArgs, out: Out) -> Outcome {
    let spec = json!({
        "script": std::path::absolute(&args.script).unwrap_or_else(|_| args.script.clone()),
        "args": args.args,
        "batch": args.batch,
        "runtime": args.runtime,
    });
    let prepared = prepare(cli, &spec, !args.sandbox.is_off(), out)?;
    let batch = Args {
        cascade: Some(prepared.0),
        inputs: Some(args.batch.clone().unwrap_or_else(|| "(one run)".into())),
        parallel: args.parallel,
        output_dir: args.output_dir.clone(),
        flat: false,
        meta: args.meta.clone(),
        budget_dollars: args.budget_dollars.clone(),
        model: None,
        no_cache: args.no_cache,
        refresh: args.refresh,
        sandbox: args.sandbox.clone(),
        action: None,
        only: None,
        retry_of: None,
        local: true,
        exec: Some(Arc::new(prepared.1)),
    };
    super::run(cli, &batch, out)
}

/// Prepare the exec `spec` (as recorded: script, args, batch, runtime): the cascade file made for it and
/// its inputs.
pub(super) fn prepare(
    cli: &Cli,
    spec: &Value,
    sandbox: bool,
    out: Out,
) -> Result<(PathBuf, Prepared), Failure> {
    let config = load_config(cli, out)?.config;
    let sandboxed = sandbox && config.sandbox.exec;
    let script = PathBuf::from(spec["script"].as_str().unwrap_or_default());
    let args: Vec<String> = serde_json::from_value(spec["args"].clone()).unwrap_or_default();
    let runtime = match serde_json::from_value::<Option<Runtime>>(spec["runtime"].clone())
        .ok()
        .flatten()
    {
        Some(r) => r,
        None => Runtime::of(&script).ok_or_else(|| {
            usage(
                codes::C_USAGE,
                format!(
                    "`{}`: the runtime cannot be told from its extension",
                    script.display()
                ),
                "name it with `--runtime python|bash|sh|node`, or use a .py, .sh or .js file",
            )
        })?,
    };
    let dir = script_env::exec_dir(&config.exec)?;
    let (copy, script_sha) = script_env::copy_script(&script, &dir)?;
    let interpreter = runtime.interpreter(sandboxed)?;
    let mut command = vec![interpreter.display().to_string()];
    let mut mounts = Vec::new();
    let mut requirements = "none".to_owned();
    if runtime == Runtime::Python {
        let script_dir = script.parent().unwrap_or(Path::new("."));
        if let Some((venv, hash)) = script_env::python_env(&interpreter, &config.exec, &dir, script_dir)? {
            command = vec![venv.join("bin/python").display().to_string()];
            mounts.push(venv.display().to_string());
            requirements = hash;
        }
    }
    let arguments = script_env::arguments(&args, &config.exec)?;
    mounts.extend(arguments.mounts.iter().cloned());
    let stem = script
        .file_stem()
        .map_or_else(|| "script".into(), |s| inputs::safe_name(&s.to_string_lossy()));
    let text = cascade_text(
        &script,
        &stem,
        runtime,
        &script_sha,
        &requirements,
        &arguments.digest,
        &config.exec,
    );
    let file = dir.join("cascades").join(format!(
        "{}.yaml",
        &hex::encode(Sha256::digest(text.as_bytes()))[..24]
    ));
    if !file.is_file() {
        std::fs::create_dir_all(file.parent().unwrap_or(&dir))
            .and_then(|()| std::fs::write(&file, &text))
            .map_err(|e| {
                usage(
                    codes::S_FILE,
                    format!(
                        "the cascade for the script cannot be written to {}: {e}",
                        file.display()
                    ),
                    "set `exec.dir` in rvbbit.toml to a folder you can write to",
                )
            })?;
    }
    let base = json!({"script": copy.display().to_string(), "command": command});
    let (inputs, single) = match spec["batch"].as_str() {
        None => {
            if args.iter().any(|a| a == "{}") {
                return Err(usage(
                    codes::C_USAGE,
                    "the argument `{}` stands for each input file of `--batch`, and there is no `--batch`"
                        .into(),
                    "add `--batch 'GLOB'`, or remove `{}`",
                ));
            }
            let mut value = base;
            value["argv"] = json!(arguments.argv);
            value["mounts"] = json!(mounts);
            let input = Input {
                name: stem,
                source: script.display().to_string(),
                value: Ok(value),
            };
            (vec![input], true)
        }
        Some(glob) => {
            let mut found = inputs::file_refs(glob, &config.batch, config.exec.max_argument_bytes)?;
            for input in &mut found {
                if let Ok(v) = &mut input.value {
                    *v = per_file(&base, v, &arguments.argv, &mounts);
                }
            }
            (found, false)
        }
    };
    Ok((
        file,
        Prepared {
            inputs,
            single,
            spec: spec.clone(),
        },
    ))
}

/// One input file's run: its path in place of `{}` (or after the arguments) and mounted.
fn per_file(base: &Value, file: &Value, argv: &[String], mounts: &[String]) -> Value {
    let path = file["path"].as_str().unwrap_or_default().to_owned();
    let mut args: Vec<String> = argv
        .iter()
        .map(|a| if a == "{}" { path.clone() } else { a.clone() })
        .collect();
    if !argv.iter().any(|a| a == "{}") {
        args.push(path.clone());
    }
    let mut mounts = mounts.to_vec();
    mounts.push(path);
    let mut value = base.clone();
    value["argv"] = json!(args);
    value["mounts"] = json!(mounts);
    value["file"] = file.clone();
    value
}

/// The one-cell cascade of a script. Its comments carry what the cache key must cover beyond the
/// inputs: the script's content, the requirements and the contents of the files the arguments name.
fn cascade_text(
    script: &Path,
    stem: &str,
    runtime: Runtime,
    sha: &str,
    requirements: &str,
    arguments: &str,
    config: &rvbbit_core::config::ExecConfig,
) -> String {
    let shown = script.display().to_string().replace(['\n', '\r'], " ");
    format!(
        "# Made by `rvbbit exec` for {shown} (docs/exec.md): one cell around the run_script tool.\n\
         # The result cache's key covers this text and each input.\n\
         #   runtime: {runtime}\n\
         #   script sha256: {sha}\n\
         #   requirements sha256: {requirements}\n\
         #   argument contents sha256: {arguments}\n\
         cascade_id: exec-{stem}\n\
         description: A script run by `rvbbit exec`.\n\
         cells:\n\
         \x20 - name: script\n\
         \x20   tool: run_script\n\
         \x20   inputs:\n\
         \x20     script: \"{{{{ input.script }}}}\"\n\
         \x20     command: \"{{{{ input.command | tojson }}}}\"\n\
         \x20     args: \"{{{{ input.argv | tojson }}}}\"\n\
         \x20     mounts: \"{{{{ input.mounts | tojson }}}}\"\n\
         \x20     max_files: {}\n\
         \x20     max_bytes: {}\n",
        config.max_output_files,
        config.max_output_bytes,
        runtime = runtime.name(),
    )
}

/// One run's result as the script's own: its stdout on stdout, its stderr on stderr, then where its
/// files went (text); or one JSON document.
pub(super) fn show(done: &[Done], output_dir: &Path, out: Out) -> Result<(), Failure> {
    let Some(d) = done.first() else { return Ok(()) };
    let folder = output_dir.join(&d.name);
    let result = d.output.clone().unwrap_or(Value::Null);
    let files: Vec<Value> = result["files"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| json!({"path": f["path"], "size": f["size"], "sha256": f["sha256"]}))
                .collect()
        })
        .unwrap_or_default();
    match out.format {
        Format::Json => output::json(&json!({
            "status": d.status, "session_id": d.session_id, "code": d.code, "message": d.message,
            "returncode": result["returncode"], "stdout": result["stdout"], "stderr": result["stderr"],
            "truncated": result["truncated"], "files": files, "output_dir": folder,
            "cost_usd": d.cost_usd, "duration_ms": d.duration_ms,
        }))?,
        Format::Text if matches!(d.status, "completed" | "cached") => {
            output::stdout(result["stdout"].as_str().unwrap_or_default())?;
            output::stderr(result["stderr"].as_str().unwrap_or_default());
            if !out.quiet {
                let from = if d.status == "cached" {
                    ", from the cache at $0"
                } else {
                    ""
                };
                output::stderr(&format!(
                    "rvbbit: {} file(s) in {} (session {}{from})\n",
                    files.len(),
                    folder.display(),
                    d.session_id.as_deref().unwrap_or("-"),
                ));
            }
        }
        Format::Text => {}
    }
    Ok(())
}

/// The exit of one run: 0, or its error's code (the script's failure is RVB-B020, exit 3).
pub(super) fn exit(done: &[Done], out: Out) -> Outcome {
    let Some(d) = done.first() else { return Ok(0) };
    if matches!(d.status, "completed" | "cached") {
        return Ok(0);
    }
    let code: &'static ErrorCode = d.code.and_then(codes::lookup).unwrap_or(codes::E_CELL_FAILED);
    let coded = Coded {
        code,
        message: d
            .message
            .clone()
            .unwrap_or_else(|| format!("the script's run {}", d.status)),
        hint: code.fix.to_owned(),
        causes: Vec::new(),
    };
    if out.format == Format::Text {
        crate::commands::report_coded(&coded, out);
    }
    Ok(code.exit_code())
}

/// Prepare a recorded exec batch again for `rvbbit batch retry` (from its recorded spec).
pub(super) fn retry(cli: &Cli, spec: &Value, mut args: Args, out: Out) -> Outcome {
    let (file, prepared) = prepare(cli, spec, !args.sandbox.is_off(), out)?;
    args.cascade = Some(file);
    args.exec = Some(Arc::new(prepared));
    super::run(cli, &args, out)
}
