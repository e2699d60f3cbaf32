//! The sandbox of code and shell cells as the commands use it: `rvbbit batch`'s `--no-sandbox` and
//! `--sandbox-*` flags, and building (and checking) the engine's [`Sandbox`] from `[sandbox]`
//! (docs/sandbox.md).

use std::sync::Arc;

use rvbbit_cascade::model::CellSandbox;
use rvbbit_core::config::SandboxConfig;
use rvbbit_engine::tools::sandbox::{Sandbox, SandboxError};

use super::{Coded, Failure};

/// The sandbox flags of `rvbbit batch` (kept in the batch's record, so a retry uses the same).
#[derive(Clone, Debug, Default, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct BatchArgs {
    /// Run code and shell cells without the sandbox (on by default for batches: `sandbox.batch`).
    #[arg(long, conflicts_with_all = ["sandbox_memory_mib", "sandbox_processes", "sandbox_cpus", "sandbox_wall_seconds", "sandbox_output_kb"])]
    no_sandbox: bool,
    /// Address-space limit of each sandboxed process, in MiB (default `sandbox.memory_mib`, 512; at
    /// most `sandbox.max_memory_mib`).
    #[arg(long, value_name = "MIB")]
    sandbox_memory_mib: Option<u64>,
    /// Most processes and threads per sandbox (default `sandbox.processes`, 64).
    #[arg(long, value_name = "N")]
    sandbox_processes: Option<u64>,
    /// CPUs each sandbox is pinned to (default `sandbox.cpus`, 1).
    #[arg(long, value_name = "N")]
    sandbox_cpus: Option<u32>,
    /// Wall-clock seconds before a sandbox is killed (default `sandbox.wall_seconds`, 300).
    #[arg(long, value_name = "SECONDS")]
    sandbox_wall_seconds: Option<u64>,
    /// KB kept of each process's stdout and of its stderr (default `sandbox.output_kb`, 100).
    #[arg(long, value_name = "KB")]
    sandbox_output_kb: Option<u64>,
}

impl BatchArgs {
    /// `--no-sandbox` was given.
    pub(crate) fn is_off(&self) -> bool {
        self.no_sandbox
    }

    /// The sandbox of a batch: `None` when turned off (`--no-sandbox`, or `on` false: the door's setting
    /// `sandbox.batch` or `sandbox.exec`). Not yet checked: [`check`] runs it once before the first input.
    ///
    /// # Errors
    /// RVB-B010 when bubblewrap is missing; RVB-B011 for a flag above its ceiling.
    pub(crate) fn sandbox(&self, config: &SandboxConfig, on: bool) -> Result<Option<Arc<Sandbox>>, Failure> {
        if self.no_sandbox || !on {
            return Ok(None);
        }
        let overrides = CellSandbox {
            memory_mib: self.sandbox_memory_mib,
            processes: self.sandbox_processes,
            cpus: self.sandbox_cpus,
            wall_seconds: self.sandbox_wall_seconds,
            output_kb: self.sandbox_output_kb,
        };
        let sandbox = Sandbox::new(config, &overrides).map_err(failure)?;
        Ok(Some(Arc::new(sandbox)))
    }
}

/// What of the batch's sandbox goes into its result cache key: its limits (a result cut by a smaller
/// output limit is not the result of a larger one), or that it is off.
pub(crate) fn cache_part(sandbox: Option<&Sandbox>) -> String {
    match sandbox {
        Some(s) => format!("sandbox:{:?}", s.defaults()),
        None => "sandbox:off".into(),
    }
}

/// Run `true` in `sandbox` once, so a sandbox the kernel refuses stops the command before any work.
///
/// # Errors
/// RVB-B010 with bubblewrap's message.
pub(crate) async fn check(sandbox: &Sandbox) -> Result<(), Failure> {
    sandbox.check().await.map_err(failure)
}

/// The configured sandbox, checked by running `true` in it once.
///
/// # Errors
/// RVB-B010 when bubblewrap is missing or cannot start; RVB-B011 for a setting above its ceiling.
pub(crate) async fn build(config: &SandboxConfig, overrides: &CellSandbox) -> Result<Arc<Sandbox>, Failure> {
    let sandbox = Sandbox::new(config, overrides).map_err(failure)?;
    check(&sandbox).await?;
    Ok(Arc::new(sandbox))
}

/// A sandbox error as the commands report it.
pub(crate) fn failure(e: SandboxError) -> Failure {
    Failure::Coded(Coded {
        code: e.code,
        message: e.message,
        hint: e.hint,
        causes: Vec::new(),
    })
}
