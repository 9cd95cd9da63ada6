//! What happened in a run: the verdict ([`ExecutionStatus`]), the
//! measurements ([`ExecutionResult`]) and the protections it lacked
//! ([`Protection`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a run ended, from the judge's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExecutionStatus {
    /// Exited with status 0 within every limit.
    Success,
    /// Used more CPU time than allowed, or ran past the wall-clock limit.
    TimeLimit,
    /// Killed by the memory limit (the cgroup OOM killer fired).
    MemoryLimit,
    /// Exited with a nonzero status, or could not be executed at all.
    RuntimeError,
    /// Killed by a signal the sandbox did not send.
    Signaled,
    /// The sandbox itself failed; the program's outcome is unknown.
    InternalError,
    /// Killed for a forbidden action (seccomp).
    SecurityViolation,
    /// Failed after being refused a new process or thread by the limit.
    ProcessLimit,
    /// Killed by `SIGXFSZ` in a run with a file size limit (the kernel's,
    /// for writing past it, or one the program sent itself: the signal
    /// does not tell them apart). Without a limit, `SIGXFSZ` is
    /// [`Signaled`](Self::Signaled).
    FileSizeLimit,
    /// Wrote more than the output limit to stdout or stderr.
    OutputLimit,
}

impl ExecutionStatus {
    /// The variant name, as used in JSON output (`"TimeLimit"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::TimeLimit => "TimeLimit",
            Self::MemoryLimit => "MemoryLimit",
            Self::RuntimeError => "RuntimeError",
            Self::Signaled => "Signaled",
            Self::InternalError => "InternalError",
            Self::SecurityViolation => "SecurityViolation",
            Self::ProcessLimit => "ProcessLimit",
            Self::FileSizeLimit => "FileSizeLimit",
            Self::OutputLimit => "OutputLimit",
        }
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protection a run can lack: the executor degrades without root or
/// without a cgroup hierarchy (outside strict mode), and the configuration
/// can turn some off. [`ExecutionResult::absent_protections`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// PID, mount, network, IPC and UTS namespaces: without them the program
    /// sees the host's processes, files and network.
    Namespaces,
    /// A cgroup: without it memory and process limits are per-process
    /// rlimits and CPU time and memory are measured by rusage.
    Cgroup,
    /// The seccomp system-call filter.
    Seccomp,
    /// A user of the program's own: without it the program runs as the
    /// caller's user.
    SeparateUser,
}

impl Protection {
    /// The name used in JSON (`"separate_user"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::Cgroup => "cgroup",
            Self::Seccomp => "seccomp",
            Self::SeparateUser => "separate_user",
        }
    }
}

/// Why the keeper killed a run: the limits it enforces itself, by clock.
/// Every other end (the OOM killer, `SIGXFSZ`, the seccomp filter, a signal
/// the program got elsewhere) is the kernel's or the program's doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillReason {
    /// The CPU time of the run passed
    /// [`IsolateConfig::cpu_kill_threshold`](crate::IsolateConfig::cpu_kill_threshold).
    CpuTime,
    /// The run lasted past
    /// [`IsolateConfig::wall_time_limit`](crate::IsolateConfig::wall_time_limit).
    WallTime,
    /// The keeper was interrupted by this signal (isolate's `SIGHUP`,
    /// `SIGINT`, `SIGQUIT` or `SIGTERM`; see
    /// [`sys::catch_interruptions`](crate::sys::catch_interruptions)).
    Interrupted(i32),
}

impl KillReason {
    /// The one-line message of an [`ExecutionStatus::TimeLimit`] verdict
    /// (isolate's words). A run over its CPU time that the keeper did not
    /// have to kill reads as `CpuTime`.
    pub fn time_limit_message(reason: Option<Self>) -> &'static str {
        match reason {
            Some(Self::WallTime) => "Time limit exceeded (wall clock)",
            Some(Self::CpuTime | Self::Interrupted(_)) | None => "Time limit exceeded",
        }
    }
}

/// What one run did and used. Every figure is measured by the keeper, never
/// reported by the program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    /// The verdict.
    pub status: ExecutionStatus,
    /// Exit status when the program exited normally.
    pub exit_code: Option<i32>,
    /// Terminating signal when the program was killed by one.
    pub signal: Option<i32>,
    /// Captured standard output (lossy UTF-8, at most `output_limit` bytes).
    pub stdout: String,
    /// Captured standard error (lossy UTF-8, at most `output_limit` bytes).
    pub stderr: String,
    /// CPU seconds, user + system, of every process of the run.
    pub cpu_time: f64,
    /// Wall-clock seconds from the start of the sandbox to the end of the run.
    pub wall_time: f64,
    /// Peak memory of the whole run in bytes (cgroup peak, or max RSS
    /// without a cgroup).
    pub memory_peak: u64,
    /// Largest resident set of a single process in bytes.
    pub max_rss: u64,
    /// Most processes and threads of the program alive at once, counted by
    /// the run's cgroup (`pids.peak`, Linux 6.1; on cgroup v1 only where the
    /// kernel's pids controller offers it there too); `None` without a
    /// cgroup or where the kernel keeps no such count.
    #[serde(default)]
    pub process_peak: Option<u64>,
    /// The OOM killer fired in this run.
    pub oom_killed: bool,
    /// The keeper killed the program at a CPU or wall-clock limit
    /// (`kill_reason.is_some()`). A signal the program got from anywhere
    /// else (itself included) leaves this false.
    pub killed: bool,
    /// Which limit the keeper killed the program at, if it did.
    #[serde(default)]
    pub kill_reason: Option<KillReason>,
    /// Voluntary context switches of the program and its waited children.
    pub voluntary_context_switches: u64,
    /// Involuntary context switches of the program and its waited children.
    pub involuntary_context_switches: u64,
    /// Bytes of stdout dropped beyond the output limit.
    pub stdout_dropped: u64,
    /// Bytes of stderr dropped beyond the output limit.
    pub stderr_dropped: u64,
    /// `errno` of the failed `execve` when the program could not be started
    /// at all (missing file, no permission, bad format).
    pub exec_errno: Option<i32>,
    /// One line explaining the verdict (empty on success).
    pub message: String,
    /// Protections this run did not have (empty for a fully isolated run).
    #[serde(default)]
    pub absent_protections: Vec<Protection>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_names_match_their_json() {
        for protection in [
            Protection::Namespaces,
            Protection::Cgroup,
            Protection::Seccomp,
            Protection::SeparateUser,
        ] {
            let json = serde_json::to_string(&protection).unwrap();
            assert_eq!(json, format!("\"{}\"", protection.as_str()));
        }
    }

    #[test]
    fn status_names_match_variants() {
        assert_eq!(ExecutionStatus::TimeLimit.to_string(), "TimeLimit");
        let json = serde_json::to_string(&ExecutionStatus::MemoryLimit).unwrap();
        assert_eq!(json, "\"MemoryLimit\"");
    }
}
