//! [`ProcessExecutor`]: spawns the program in its jail, watches it, kills it
//! at a limit, measures it and turns all of it into an [`ExecutionResult`].
//!
//! SKELETON — being implemented.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::types::{ExecutionResult, IsolateConfig, Result};

/// Where the program's standard input comes from.
#[derive(Debug, Default)]
pub enum Stdin {
    /// `/dev/null`.
    #[default]
    Null,
    /// These bytes, fed through a pipe while output is read.
    Bytes(Vec<u8>),
    /// An open file, handed to the program as it is.
    File(std::fs::File),
}

/// Runs programs under one [`IsolateConfig`].
#[derive(Debug)]
pub struct ProcessExecutor {
    config: IsolateConfig,
}

/// A name no other executor of this host uses at the same time.
pub(crate) fn unique_instance_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl ProcessExecutor {
    /// Checks the environment and prepares the executor's cgroup.
    pub fn new(config: IsolateConfig) -> Result<Self> {
        Ok(Self { config })
    }

    /// The configuration runs use.
    pub fn config(&self) -> &IsolateConfig {
        &self.config
    }

    /// Runs `command` with `stdin` as its standard input.
    pub fn execute(&mut self, command: &[String], stdin: Option<&str>) -> Result<ExecutionResult> {
        self.execute_bytes(command, stdin.map(str::as_bytes))
    }

    /// Like [`execute`](Self::execute) with binary standard input.
    pub fn execute_bytes(
        &mut self,
        command: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<ExecutionResult> {
        let stdin = stdin.map_or(Stdin::Null, |bytes| Stdin::Bytes(bytes.to_vec()));
        self.execute_with_stdin(command, stdin)
    }

    /// Runs `command` with any [`Stdin`].
    pub fn execute_with_stdin(
        &mut self,
        command: &[String],
        stdin: Stdin,
    ) -> Result<ExecutionResult> {
        let _ = (command, stdin);
        unimplemented!()
    }

    /// CPU seconds and peak memory bytes of the last run, from its cgroup;
    /// `(0.0, 0)` without one.
    pub fn get_resource_usage(&self) -> (f64, u64) {
        unimplemented!()
    }

    /// Whether runs are measured and limited by a cgroup.
    pub fn has_cgroup(&self) -> bool {
        unimplemented!()
    }

    /// The cgroup directories of this executor (empty without cgroups).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        unimplemented!()
    }

    /// Removes the executor's cgroup. Called by `Drop` when not called.
    pub fn cleanup(&mut self) -> Result<()> {
        unimplemented!()
    }
}
