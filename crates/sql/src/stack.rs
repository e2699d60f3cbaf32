//! The threads client statements parse, plan and run on: a Tokio runtime of the SQL runtime's own whose
//! threads (workers and blocking pool) have [`STACK_BYTES`] of stack instead of the usual 2 MiB.
//!
//! DataFusion's planner, optimizer, physical planner and expression evaluation recurse over the
//! statement; the depth check of [`crate::limits`] bounds that recursion, and these stacks give the
//! default bound a wide margin (measured in `docs/sql.md`, "Limits"). A stack is address space reserved
//! up front; memory is used only as deep as a statement actually recurses.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use crate::error::Error;

/// Stack size of the SQL threads.
pub(crate) const STACK_BYTES: usize = 64 * 1024 * 1024;

/// Most blocking-pool threads (file listing, parsing) of the SQL runtime.
const BLOCKING_THREADS: usize = 64;

/// The SQL runtime's threads. Dropping it shuts them down without waiting (safe inside async code).
#[derive(Debug)]
pub(crate) struct BigStack {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl BigStack {
    /// A multi-threaded runtime with one worker per CPU (at least 2).
    pub(crate) fn new() -> Result<BigStack, String> {
        let workers = std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(2)
            .max(2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_stack_size(STACK_BYTES)
            .thread_name("rvbbit-sql")
            .enable_all()
            .build()
            .map_err(|e| format!("the SQL threads cannot be started: {e}"))?;
        let handle = runtime.handle().clone();
        Ok(BigStack {
            runtime: Some(runtime),
            handle,
        })
    }

    /// The runtime's handle, to spawn long-lived tasks (pgwire connections) on the SQL threads.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Run `fut` on the SQL threads and wait for it. Dropping the returned future aborts `fut` (which
    /// drops it at its next await point), so a cancelled statement stops as it would inline.
    ///
    /// Errors: [`Error::Execution`] if `fut` panicked (a bug) or the runtime is shutting down.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let task = AbortOnDrop(self.handle.spawn(fut));
        task.await.unwrap_or_else(|e| Err(failed(&e)))
    }

    /// Run the blocking `f` on a SQL thread (the blocking pool) and wait for it.
    ///
    /// Errors: as [`BigStack::run`].
    pub(crate) async fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let task = AbortOnDrop(self.handle.spawn_blocking(f));
        task.await.map_err(|e| failed(&e))
    }
}

impl Drop for BigStack {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn failed(e: &tokio::task::JoinError) -> Error {
    Error::Execution {
        message: if e.is_panic() {
            "the statement's thread panicked; this is a bug, please report it".to_owned()
        } else {
            "the statement was cancelled because the SQL runtime is shutting down".to_owned()
        },
    }
}

/// A task handle that aborts its task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}
