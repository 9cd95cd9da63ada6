//! From what was measured to what is reported: [`RunFacts`] collects
//! everything the keeper saw of a run, [`judge`] (pure) names the verdict
//! and writes its message, and [`RunFacts::into_result`] builds the one
//! [`ExecutionResult`] of the run.

use std::time::Duration;

use crate::cgroup::CgroupUsage;
use crate::jail::Stage;
use crate::result::{ExecutionResult, ExecutionStatus, KillReason, Protection};
use crate::sys::{self, Rusage};

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProgramEnd {
    Exited(i32),
    Signaled(i32),
}

impl ProgramEnd {
    pub(super) fn from_wait_status(status: i32) -> Self {
        if libc::WIFSIGNALED(status) {
            Self::Signaled(libc::WTERMSIG(status))
        } else {
            Self::Exited(libc::WEXITSTATUS(status))
        }
    }
}

/// One output stream as the run left it.
#[derive(Debug, Default)]
pub(super) struct Captured {
    /// What was kept (lossy UTF-8).
    pub(super) text: String,
    /// Bytes dropped beyond the output limit.
    pub(super) dropped: u64,
}

/// Everything measured about a run, before it is judged.
#[derive(Debug, Default)]
pub(super) struct RunFacts {
    /// The failed step, its errno, and which part of it failed.
    pub(super) setup_failure: Option<(Stage, i32, String)>,
    /// A seccomp filter was installed (so SIGSYS means a refused call).
    pub(super) seccomp: bool,
    pub(super) killed_for: Option<KillReason>,
    pub(super) end: Option<ProgramEnd>,
    /// CPU time of every process of the run.
    pub(super) cpu_time: Duration,
    /// The CPU time at which the run is killed (`max(time, extra time)`):
    /// by the keeper with a cgroup, else by the kernel's `SIGKILL` at the
    /// `RLIMIT_CPU` limit a second later.
    pub(super) cpu_kill: Option<Duration>,
    /// A file-size limit (`RLIMIT_FSIZE`) was set.
    pub(super) file_size_limited: bool,
    pub(super) oom_kills: u64,
    pub(super) pids_limit_hits: u64,
    /// From the start of the box until the proxy ended.
    pub(super) wall: Duration,
    /// The program's own rusage, as the proxy reported it.
    pub(super) inmate: Rusage,
    /// Peak memory of the run's cgroup, when it had one.
    pub(super) memory_peak: Option<u64>,
    /// Most tasks of the run's cgroup alive at once (the proxy included),
    /// where the kernel counts them.
    pub(super) pids_peak: Option<u64>,
    pub(super) stdout: Captured,
    pub(super) stderr: Captured,
}

impl RunFacts {
    /// Takes the cgroup's measurements, which cover every process of the
    /// run, over the proxy's.
    pub(super) fn measured_by(&mut self, usage: &CgroupUsage) {
        self.cpu_time = usage.cpu_time;
        self.oom_kills = usage.oom_kills;
        self.pids_limit_hits = usage.pids_limit_hits;
        self.memory_peak = Some(usage.memory_peak);
        self.pids_peak = usage.pids_peak;
    }

    fn output_dropped(&self) -> bool {
        self.stdout.dropped + self.stderr.dropped > 0
    }

    /// The run's result: the verdict of [`judge`] and every figure, in one
    /// place.
    pub(super) fn into_result(
        self,
        time_limit: Option<Duration>,
        absent_protections: Vec<Protection>,
    ) -> ExecutionResult {
        let (status, message) = judge(&self, time_limit);
        let exec_errno = match self.setup_failure {
            Some((Stage::Exec, errno, _)) => Some(errno),
            _ => None,
        };
        let (exit_code, signal) = match (self.killed_for, self.end) {
            // As isolate reports it: the signal that interrupted the keeper.
            (Some(KillReason::Interrupted(signal)), _) => (None, Some(signal)),
            (_, Some(ProgramEnd::Exited(code))) => (Some(code), None),
            (_, Some(ProgramEnd::Signaled(signal))) => (None, Some(signal)),
            (_, None) => (None, None),
        };
        ExecutionResult {
            status,
            exit_code,
            signal,
            stdout: self.stdout.text,
            stderr: self.stderr.text,
            cpu_time: self.cpu_time.as_secs_f64(),
            wall_time: self.wall.as_secs_f64(),
            // Without a cgroup the largest process is the best measure.
            memory_peak: self.memory_peak.unwrap_or(self.inmate.max_rss),
            max_rss: self.inmate.max_rss,
            // The proxy, pid 1 of the box, is no process of the program's.
            process_peak: self.pids_peak.map(|peak| peak.saturating_sub(1)),
            oom_killed: self.oom_kills > 0,
            killed: self.killed_for.is_some(),
            kill_reason: self.killed_for,
            voluntary_context_switches: self.inmate.voluntary_switches,
            involuntary_context_switches: self.inmate.involuntary_switches,
            stdout_dropped: self.stdout.dropped,
            stderr_dropped: self.stderr.dropped,
            exec_errno,
            message,
            absent_protections,
        }
    }
}

/// The verdict and its one-line explanation.
///
/// A time limit is only ever a measurement: the keeper killed the run at a
/// clock, or the measured CPU time is past the limit, or the program died
/// of a `SIGKILL` after its measured CPU time had reached the kill
/// threshold (the kernel's kill at `RLIMIT_CPU`, a second past the
/// threshold: its clock counts whole ticks and can run well ahead of the
/// measured time on a busy machine, so the rlimit itself is no measure).
/// The kernel never sends
/// `SIGXCPU` (the soft limit is the hard one), so a `SIGXCPU` death is an
/// ordinary signal, as is any `SIGKILL` short of the limit.
/// `FileSizeLimit` needs a file-size limit: the kernel's `SIGXFSZ` looks
/// like one the program sent itself, so without a limit it is a signal.
pub(super) fn judge(facts: &RunFacts, time_limit: Option<Duration>) -> (ExecutionStatus, String) {
    use ExecutionStatus::*;
    let failed = facts.end != Some(ProgramEnd::Exited(0));
    if let Some((stage, errno, detail)) = &facts.setup_failure {
        let text = sys::strerror(*errno);
        return match stage {
            Stage::Exec => (RuntimeError, format!("exec failed: {text}")),
            other if detail.is_empty() => (
                InternalError,
                format!("{} failed: {text}", other.describe()),
            ),
            other => (
                InternalError,
                format!("{} failed ({detail}): {text}", other.describe()),
            ),
        };
    }
    if let Some(KillReason::Interrupted(_)) = facts.killed_for {
        return (Signaled, "Interrupted".into());
    }
    let time_limit_message = || KillReason::time_limit_message(facts.killed_for).to_string();
    if facts.killed_for == Some(KillReason::WallTime) {
        return (TimeLimit, time_limit_message());
    }
    let over_cpu = time_limit.is_some_and(|limit| facts.cpu_time > limit);
    let cpu_rlimit_kill = facts.end == Some(ProgramEnd::Signaled(libc::SIGKILL))
        && facts.cpu_kill.is_some_and(|kill| facts.cpu_time >= kill);
    if facts.killed_for == Some(KillReason::CpuTime) || over_cpu || cpu_rlimit_kill {
        return (TimeLimit, time_limit_message());
    }
    if facts.oom_kills > 0 && failed {
        return (MemoryLimit, "Memory limit exceeded".into());
    }
    if facts.file_size_limited && facts.end == Some(ProgramEnd::Signaled(libc::SIGXFSZ)) {
        return (FileSizeLimit, "File size limit exceeded".into());
    }
    if facts.output_dropped() {
        return (OutputLimit, "Output limit exceeded".into());
    }
    if facts.pids_limit_hits > 0 && failed {
        return (ProcessLimit, "Process limit exceeded".into());
    }
    match facts.end {
        // The default policy kills only for the foreign ABIs; anything else
        // it refuses with an errno, so a SIGSYS death names its cause.
        Some(ProgramEnd::Signaled(libc::SIGSYS)) if facts.seccomp => (
            SecurityViolation,
            "Forbidden system call: i386 or x32 system-call ABI, or a call a policy file kills"
                .into(),
        ),
        Some(ProgramEnd::Signaled(signal)) => (Signaled, format!("Caught fatal signal {signal}")),
        Some(ProgramEnd::Exited(0)) => (Success, String::new()),
        Some(ProgramEnd::Exited(code)) => {
            (RuntimeError, format!("Exited with error status {code}"))
        }
        None => (
            InternalError,
            "the sandbox ended without reporting how the program ended".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(end: ProgramEnd) -> RunFacts {
        RunFacts {
            end: Some(end),
            ..RunFacts::default()
        }
    }

    #[test]
    fn clean_exit_is_success_and_nonzero_is_runtime_error() {
        assert_eq!(
            judge(&facts(ProgramEnd::Exited(0)), None).0,
            ExecutionStatus::Success
        );
        let (status, message) = judge(&facts(ProgramEnd::Exited(3)), None);
        assert_eq!(status, ExecutionStatus::RuntimeError);
        assert_eq!(message, "Exited with error status 3");
    }

    #[test]
    fn oom_kill_is_memory_limit_not_signal() {
        let mut run = facts(ProgramEnd::Signaled(libc::SIGKILL));
        run.oom_kills = 1;
        assert_eq!(judge(&run, None).0, ExecutionStatus::MemoryLimit);
    }

    #[test]
    fn wall_kill_says_wall_clock() {
        let mut run = facts(ProgramEnd::Signaled(libc::SIGKILL));
        run.killed_for = Some(KillReason::WallTime);
        let (status, message) = judge(&run, Some(Duration::from_secs(1)));
        assert_eq!(status, ExecutionStatus::TimeLimit);
        assert!(message.contains("wall clock"));
    }

    #[test]
    fn cpu_over_the_limit_is_time_limit_even_after_a_clean_exit() {
        let mut run = facts(ProgramEnd::Exited(0));
        run.cpu_time = Duration::from_millis(300);
        assert_eq!(
            judge(&run, Some(Duration::from_millis(200))).0,
            ExecutionStatus::TimeLimit
        );
        assert_eq!(
            judge(&run, Some(Duration::from_millis(400))).0,
            ExecutionStatus::Success
        );
    }

    #[test]
    fn limit_signals_map_to_their_verdicts() {
        let cases = [
            (libc::SIGXCPU, ExecutionStatus::Signaled),
            (libc::SIGSYS, ExecutionStatus::SecurityViolation),
            (libc::SIGSEGV, ExecutionStatus::Signaled),
        ];
        for (signal, expected) in cases {
            let mut run = facts(ProgramEnd::Signaled(signal));
            run.seccomp = true;
            assert_eq!(judge(&run, None).0, expected, "signal {signal}");
        }
        // Without a filter, SIGSYS came from the program itself.
        assert_eq!(
            judge(&facts(ProgramEnd::Signaled(libc::SIGSYS)), None).0,
            ExecutionStatus::Signaled
        );
    }

    #[test]
    fn a_sigxcpu_is_never_a_time_limit_by_itself() {
        // A raised soft limit and raise(SIGXCPU) after 3 ms under 1 s.
        let mut run = facts(ProgramEnd::Signaled(libc::SIGXCPU));
        run.cpu_time = Duration::from_millis(3);
        run.cpu_kill = Some(Duration::from_secs(1));
        let limit = Some(Duration::from_secs(1));
        let (status, message) = judge(&run, limit);
        assert_eq!(status, ExecutionStatus::Signaled);
        assert_eq!(message, "Caught fatal signal 24");
        // Only measured time makes one: at the rlimit without --time...
        run.cpu_kill = Some(Duration::from_secs(2));
        run.cpu_time = Duration::from_secs(2);
        assert_eq!(judge(&run, None).0, ExecutionStatus::Signaled);
        // ...or past the time limit.
        run.cpu_time = Duration::from_millis(1001);
        assert_eq!(judge(&run, limit).0, ExecutionStatus::TimeLimit);
    }

    #[test]
    fn a_sigkill_past_the_kill_threshold_is_a_time_limit() {
        let mut run = facts(ProgramEnd::Signaled(libc::SIGKILL));
        // Only --extra-time given: the threshold is the measure.
        run.cpu_kill = Some(Duration::from_millis(1500));
        run.cpu_time = Duration::from_millis(1500);
        assert_eq!(judge(&run, None).0, ExecutionStatus::TimeLimit);
        // Short of it: a kill of its own.
        run.cpu_time = Duration::from_millis(1400);
        assert_eq!(judge(&run, None).0, ExecutionStatus::Signaled);
        // No CPU limit at all: nothing in the kernel kills at a CPU time.
        run.cpu_kill = None;
        run.cpu_time = Duration::from_secs(9);
        assert_eq!(judge(&run, None).0, ExecutionStatus::Signaled);
    }

    #[test]
    fn a_sigxfsz_is_a_file_size_limit_only_under_one() {
        let mut run = facts(ProgramEnd::Signaled(libc::SIGXFSZ));
        let (status, message) = judge(&run, None);
        assert_eq!(status, ExecutionStatus::Signaled);
        assert_eq!(message, "Caught fatal signal 25");
        run.file_size_limited = true;
        assert_eq!(judge(&run, None).0, ExecutionStatus::FileSizeLimit);
    }

    #[test]
    fn a_self_sent_kill_is_not_a_time_limit() {
        let mut run = facts(ProgramEnd::Signaled(libc::SIGKILL));
        run.cpu_time = Duration::from_millis(5);
        run.cpu_kill = Some(Duration::from_secs(1));
        assert_eq!(
            judge(&run, Some(Duration::from_secs(1))).0,
            ExecutionStatus::Signaled
        );
        // The keeper's kill at the CPU limit is one.
        run.killed_for = Some(KillReason::CpuTime);
        assert_eq!(
            judge(&run, Some(Duration::from_secs(1))).0,
            ExecutionStatus::TimeLimit
        );
    }

    #[test]
    fn process_limit_only_when_the_program_failed() {
        let mut run = facts(ProgramEnd::Exited(1));
        run.pids_limit_hits = 3;
        assert_eq!(judge(&run, None).0, ExecutionStatus::ProcessLimit);
        run.end = Some(ProgramEnd::Exited(0));
        assert_eq!(judge(&run, None).0, ExecutionStatus::Success);
    }

    #[test]
    fn exec_failure_is_runtime_error_and_setup_failure_internal() {
        let mut run = RunFacts {
            setup_failure: Some((Stage::Exec, libc::ENOENT, String::new())),
            ..RunFacts::default()
        };
        let (status, message) = judge(&run, None);
        assert_eq!(status, ExecutionStatus::RuntimeError);
        assert_eq!(message, "exec failed: No such file or directory");
        run.setup_failure = Some((Stage::Chdir, libc::ENOENT, String::new()));
        assert_eq!(judge(&run, None).0, ExecutionStatus::InternalError);
    }

    #[test]
    fn an_interruption_is_the_signal_that_interrupted() {
        // Even past a limit: the keeper stopped the run for the signal.
        let mut run = facts(ProgramEnd::Signaled(libc::SIGKILL));
        run.killed_for = Some(KillReason::Interrupted(libc::SIGINT));
        run.cpu_time = Duration::from_secs(5);
        let result = run.into_result(Some(Duration::from_secs(1)), Vec::new());
        assert_eq!(result.status, ExecutionStatus::Signaled);
        assert_eq!(result.message, "Interrupted");
        assert_eq!(
            (result.signal, result.exit_code),
            (Some(libc::SIGINT), None)
        );
        assert!(result.killed);
    }

    #[test]
    fn unknown_end_is_an_internal_error() {
        assert_eq!(
            judge(&RunFacts::default(), None).0,
            ExecutionStatus::InternalError
        );
    }

    #[test]
    fn the_result_carries_the_kill_reason_and_the_cgroup_peak() {
        let mut run = facts(ProgramEnd::Signaled(libc::SIGKILL));
        run.killed_for = Some(KillReason::WallTime);
        run.inmate.max_rss = 7;
        run.stdout.dropped = 2;
        let result = run.into_result(None, Vec::new());
        assert_eq!(result.kill_reason, Some(KillReason::WallTime));
        assert!(result.killed);
        assert_eq!(
            (result.signal, result.exit_code),
            (Some(libc::SIGKILL), None)
        );
        // Without a cgroup, the largest process is the peak.
        assert_eq!((result.memory_peak, result.max_rss), (7, 7));
        assert_eq!(result.message, "Time limit exceeded (wall clock)");
        let mut run = facts(ProgramEnd::Exited(0));
        run.memory_peak = Some(4096);
        run.stdout.dropped = 1;
        let result = run.into_result(None, vec![Protection::Seccomp]);
        assert_eq!(result.status, ExecutionStatus::OutputLimit);
        assert_eq!((result.kill_reason, result.killed), (None, false));
        assert_eq!(result.memory_peak, 4096);
        assert_eq!(result.absent_protections, [Protection::Seccomp]);
        assert_eq!(result.process_peak, None);
        let mut run = facts(ProgramEnd::Exited(0));
        run.pids_peak = Some(4);
        assert_eq!(run.into_result(None, Vec::new()).process_peak, Some(3));
    }
}
