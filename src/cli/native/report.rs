//! What `isobox run` prints of a finished run: one summary line, or the
//! JSON object of `--json`; and its exit status.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{anyhow, Result};
use isobox::{ExecutionResult, ExecutionStatus};
use serde::Serialize;

use crate::cli::units::human_size;
use crate::cli::{one_line, EXIT_TROUBLE};

/// The JSON object printed by `--json`, field by field, so the output keeps
/// its documented shape whatever is added to [`ExecutionResult`].
#[derive(Debug, Serialize)]
pub(super) struct JsonReport<'a> {
    status: &'static str,
    exit_code: Option<i32>,
    signal: Option<i32>,
    cpu_time: f64,
    wall_time: f64,
    memory_peak: u64,
    max_rss: u64,
    oom_killed: bool,
    stdout: &'a str,
    stderr: &'a str,
    message: &'a str,
    absent_protections: Vec<&'static str>,
}

impl<'a> From<&'a ExecutionResult> for JsonReport<'a> {
    fn from(result: &'a ExecutionResult) -> Self {
        Self {
            status: result.status.as_str(),
            exit_code: result.exit_code,
            signal: result.signal,
            cpu_time: result.cpu_time,
            wall_time: result.wall_time,
            memory_peak: result.memory_peak,
            max_rss: result.max_rss,
            oom_killed: result.oom_killed,
            stdout: &result.stdout,
            stderr: &result.stderr,
            message: &result.message,
            absent_protections: result
                .absent_protections
                .iter()
                .map(|protection| protection.as_str())
                .collect(),
        }
    }
}

/// Prints the result: the JSON object on stdout with `json`, otherwise the
/// summary line on stderr.
pub(super) fn report(result: &ExecutionResult, json: bool) -> Result<()> {
    if json {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer(&mut stdout, &JsonReport::from(result))
            .map_err(|error| anyhow!("cannot write the JSON result: {error}"))?;
        writeln!(stdout)
            .and_then(|()| stdout.flush())
            .map_err(|error| anyhow!("cannot write the JSON result: {error}"))?;
    } else if result.exec_errno.is_none() {
        // A program that never started has no run to summarise; its error
        // line says everything.
        let _ = writeln!(std::io::stderr().lock(), "{}", summary_line(result));
    }
    Ok(())
}

/// One line saying how the run ended and what it used, e.g.
/// `RuntimeError cpu 0.001s wall 0.003s mem 1.2MiB exit 1`.
pub(super) fn summary_line(result: &ExecutionResult) -> String {
    let mut line = format!(
        "{} cpu {:.3}s wall {:.3}s mem {}",
        result.status,
        result.cpu_time,
        result.wall_time,
        human_size(result.memory_peak)
    );
    // Writing to a String cannot fail.
    if let Some(code) = result.exit_code.filter(|&code| code != 0) {
        let _ = write!(line, " exit {code}");
    }
    if let Some(signal) = result.signal {
        let _ = write!(line, " signal {signal}");
    }
    let message = one_line(&result.message);
    if !message.is_empty() {
        let _ = write!(line, " ({message})");
    }
    line
}

/// Exit status of isobox for a finished run.
pub(super) fn exit_status(status: ExecutionStatus) -> u8 {
    match status {
        ExecutionStatus::Success => 0,
        ExecutionStatus::InternalError => EXIT_TROUBLE,
        _ => 1,
    }
}

/// An I/O error as a person wants to read it: the system's description
/// without Rust's " (os error N)" suffix.
pub(super) fn describe_io_error(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => isobox::sys::strerror(code),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: ExecutionStatus) -> ExecutionResult {
        ExecutionResult {
            status,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            cpu_time: 0.0,
            wall_time: 0.0,
            memory_peak: 0,
            max_rss: 0,
            process_peak: None,
            oom_killed: false,
            killed: false,
            kill_reason: None,
            voluntary_context_switches: 0,
            involuntary_context_switches: 0,
            stdout_dropped: 0,
            stderr_dropped: 0,
            exec_errno: None,
            message: String::new(),
            absent_protections: Vec::new(),
        }
    }

    #[test]
    fn summary_line_shows_status_times_memory_and_why() {
        let mut limit = result(ExecutionStatus::TimeLimit);
        limit.cpu_time = 1.0021;
        limit.wall_time = 1.01;
        limit.memory_peak = 1_258_291;
        assert_eq!(
            summary_line(&limit),
            "TimeLimit cpu 1.002s wall 1.010s mem 1.2MiB"
        );
        limit.signal = Some(9);
        limit.message = "cpu time limit\nexceeded".to_string();
        assert_eq!(
            summary_line(&limit),
            "TimeLimit cpu 1.002s wall 1.010s mem 1.2MiB signal 9 (cpu time limit exceeded)"
        );
        let mut failed = result(ExecutionStatus::RuntimeError);
        failed.exit_code = Some(1);
        assert_eq!(
            summary_line(&failed),
            "RuntimeError cpu 0.000s wall 0.000s mem 0B exit 1"
        );
        let mut success = result(ExecutionStatus::Success);
        success.exit_code = Some(0);
        assert_eq!(
            summary_line(&success),
            "Success cpu 0.000s wall 0.000s mem 0B"
        );
    }

    #[test]
    fn json_report_has_the_documented_keys_in_order() {
        let mut run = result(ExecutionStatus::Success);
        run.exit_code = Some(0);
        run.stdout = "hello\n".to_string();
        run.absent_protections = vec![isobox::Protection::Cgroup, isobox::Protection::SeparateUser];
        let json = serde_json::to_string(&JsonReport::from(&run)).unwrap();
        assert_eq!(
            json,
            "{\"status\":\"Success\",\"exit_code\":0,\"signal\":null,\"cpu_time\":0.0,\
             \"wall_time\":0.0,\"memory_peak\":0,\"max_rss\":0,\"oom_killed\":false,\
             \"stdout\":\"hello\\n\",\"stderr\":\"\",\"message\":\"\",\
             \"absent_protections\":[\"cgroup\",\"separate_user\"]}"
        );
    }

    #[test]
    fn exit_status_follows_the_verdict() {
        assert_eq!(exit_status(ExecutionStatus::Success), 0);
        for status in [
            ExecutionStatus::TimeLimit,
            ExecutionStatus::MemoryLimit,
            ExecutionStatus::RuntimeError,
            ExecutionStatus::Signaled,
            ExecutionStatus::SecurityViolation,
            ExecutionStatus::ProcessLimit,
            ExecutionStatus::FileSizeLimit,
            ExecutionStatus::OutputLimit,
        ] {
            assert_eq!(exit_status(status), 1, "{status}");
        }
        assert_eq!(exit_status(ExecutionStatus::InternalError), 2);
    }
}
