//! isolate's meta file: what a run did, as `key:value` lines.
//!
//! [`Meta::from_result`] turns an [`ExecutionResult`] into the lines isolate
//! writes, in isolate's order and units (seconds with three decimals, sizes
//! in KiB), so that judges that parse isolate's meta file (CMS, Judge0)
//! read isobox's unchanged:
//!
//! ```text
//! time:0.001            CPU seconds
//! time-wall:0.011       wall-clock seconds
//! max-rss:1112          KiB, largest single process
//! csw-voluntary:6
//! csw-forced:1
//! cg-mem:512            KiB, peak of the run's cgroup (cgroup mode only)
//! cg-oom-killed:1       the OOM killer fired in this run (cgroup mode only)
//! exitcode:0            or exitsig:N
//! status:RE             RE, SG, TO or XX; absent when the program succeeded
//! message:Exited with error status 3
//! killed:1              the sandbox killed the program
//! ```
//!
//! When the sandbox killed the program at a time limit, `status`, `message`
//! and `killed` come first, as isolate writes them.
//!
//! The keeper runs as root and the file's path may cross directories the
//! box or other users write: [`open_meta_file`] opens it without letting
//! them choose what gets written, and [`write_meta_file`] writes through
//! that descriptor.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use isobox::{ExecutionResult, ExecutionStatus, KillReason};

// Line breaks in a value would start new keys.
use crate::cli::one_line;

/// isolate's verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The program exited with status 0 within its limits (no `status`).
    Ok,
    /// `RE`: the program exited with a nonzero status.
    RuntimeError,
    /// `SG`: the program died of a signal.
    Signal,
    /// `TO`: a time limit was exceeded.
    Timeout,
    /// `XX`: the sandbox failed.
    SandboxError,
}

impl Verdict {
    /// The `status` code, `None` for [`Verdict::Ok`].
    pub fn code(self) -> Option<&'static str> {
        match self {
            Self::Ok => None,
            Self::RuntimeError => Some("RE"),
            Self::Signal => Some("SG"),
            Self::Timeout => Some("TO"),
            Self::SandboxError => Some("XX"),
        }
    }

    /// isolate's exit status for this verdict: 0 success, 1 the program
    /// failed, 2 the sandbox failed.
    pub fn exit_status(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::RuntimeError | Self::Signal | Self::Timeout => 1,
            Self::SandboxError => 2,
        }
    }
}

/// The contents of one meta file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    verdict: Verdict,
    message: String,
    lines: Vec<(&'static str, String)>,
}

/// Whole milliseconds of `seconds`, never negative (isolate truncates).
fn millis(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        // Truncation is isolate's rounding; the tiny epsilon keeps 0.3 s
        // stored as 0.29999999... from reading as 0.299.
        (seconds * 1000.0 + 1e-6) as u64
    } else {
        0
    }
}

fn seconds(value: f64) -> String {
    let ms = millis(value);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// How a finished run reads in isolate's terms.
enum Outcome {
    Ok,
    Exited(i32, String),
    Signaled(i32),
    /// The keeper was interrupted by this signal.
    Interrupted(i32),
    Timeout {
        killed: bool,
        message: String,
    },
    Failed(String),
}

fn outcome(result: &ExecutionResult) -> Outcome {
    use ExecutionStatus::*;
    if let Some(KillReason::Interrupted(signal)) = result.kill_reason {
        return Outcome::Interrupted(signal);
    }
    match result.status {
        Success => Outcome::Ok,
        InternalError => Outcome::Failed(one_line(&result.message)),
        TimeLimit => Outcome::Timeout {
            // Only the keeper's own kill: a signal the program got from
            // anywhere else, itself included, is no proof of a limit.
            killed: result.killed,
            message: KillReason::time_limit_message(result.kill_reason).to_string(),
        },
        // Every other verdict is what the program's end looks like to
        // isolate: a signal (memory, file size, seccomp...) or an exit.
        _ => match (result.signal, result.exit_code) {
            (Some(signal), _) => Outcome::Signaled(signal),
            (None, Some(code)) if code != 0 => {
                Outcome::Exited(code, format!("Exited with error status {code}"))
            }
            (None, Some(code)) => Outcome::Exited(code, one_line(&result.message)),
            // The end is unknown only when execution itself failed, which
            // isolate reports as exit status 127.
            (None, None) => Outcome::Exited(127, "Exited with error status 127".to_string()),
        },
    }
}

impl Meta {
    /// The meta file of a finished run. `cgroups` adds `cg-mem` and
    /// `cg-oom-killed` (isolate's `--cg` mode).
    pub fn from_result(result: &ExecutionResult, cgroups: bool) -> Self {
        let mut stats: Vec<(&'static str, String)> = vec![
            ("time", seconds(result.cpu_time)),
            ("time-wall", seconds(result.wall_time)),
            ("max-rss", (result.max_rss / 1024).to_string()),
            (
                "csw-voluntary",
                result.voluntary_context_switches.to_string(),
            ),
            (
                "csw-forced",
                result.involuntary_context_switches.to_string(),
            ),
        ];
        if cgroups {
            stats.push(("cg-mem", (result.memory_peak / 1024).to_string()));
            if result.oom_killed {
                stats.push(("cg-oom-killed", "1".to_string()));
            }
        }
        let status = |verdict: Verdict| ("status", verdict.code().unwrap_or("").to_string());
        let (verdict, message, lines) = match outcome(result) {
            Outcome::Ok => {
                stats.push(("exitcode", "0".to_string()));
                (Verdict::Ok, String::new(), stats)
            }
            Outcome::Exited(code, message) => {
                stats.push(("exitcode", code.to_string()));
                stats.push(status(Verdict::RuntimeError));
                stats.push(("message", message.clone()));
                (Verdict::RuntimeError, message, stats)
            }
            Outcome::Signaled(signal) => {
                let message = format!("Caught fatal signal {signal}");
                stats.push(("exitsig", signal.to_string()));
                stats.push(status(Verdict::Signal));
                stats.push(("message", message.clone()));
                (Verdict::Signal, message, stats)
            }
            // isolate's keeper loop: `exitsig`, then err("SG: Interrupted"),
            // whose exit kills the box (`killed:1`) and adds the figures.
            Outcome::Interrupted(signal) => {
                let message = "Interrupted".to_string();
                let mut lines = vec![
                    ("exitsig", signal.to_string()),
                    status(Verdict::Signal),
                    ("message", message.clone()),
                    ("killed", "1".to_string()),
                ];
                lines.extend(stats);
                (Verdict::Signal, message, lines)
            }
            Outcome::Timeout {
                killed: true,
                message,
            } => {
                let mut lines = vec![
                    status(Verdict::Timeout),
                    ("message", message.clone()),
                    ("killed", "1".to_string()),
                ];
                lines.extend(stats);
                (Verdict::Timeout, message, lines)
            }
            Outcome::Timeout {
                killed: false,
                message,
            } => {
                stats.push(status(Verdict::Timeout));
                stats.push(("message", message.clone()));
                (Verdict::Timeout, message, stats)
            }
            Outcome::Failed(message) => return Self::sandbox_error(&message),
        };
        Self {
            verdict,
            message,
            lines,
        }
    }

    /// The meta file of a run the sandbox could not carry out: only
    /// `status:XX` and the message, as isolate writes it.
    pub fn sandbox_error(message: &str) -> Self {
        let message = one_line(message);
        Self {
            verdict: Verdict::SandboxError,
            lines: vec![("status", "XX".to_string()), ("message", message.clone())],
            message,
        }
    }

    /// The verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The message (empty on success).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The lines as `(key, value)`, in file order.
    pub fn lines(&self) -> &[(&'static str, String)] {
        &self.lines
    }

    /// The value of `key`, if the file has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value.as_str())
    }
}

impl fmt::Display for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in self.lines() {
            writeln!(f, "{key}:{value}")?;
        }
        Ok(())
    }
}

/// Why the meta file cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum MetaFileError {
    /// The path has no file name (`/`, `..`, empty).
    #[error("the meta file {0} names no file")]
    NoName(PathBuf),
    /// A component of the path could not be opened.
    #[error("cannot open the meta file {path} ({component:?}: {error}){}", if *.untrusted { "; links are not followed in a directory the box or another user can write" } else { "" })]
    Component {
        /// The meta file.
        path: PathBuf,
        /// The component.
        component: std::ffi::OsString,
        /// Whether it was looked up in an untrusted directory.
        untrusted: bool,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The meta file would be inside the box, where the program may
    /// replace it during the run.
    #[error("the meta file {0} is inside the box; put it outside the box")]
    InsideBox(PathBuf),
    /// The path names a fifo, a device, a directory...
    #[error("the meta file {0} is not a regular file")]
    NotRegular(PathBuf),
    /// The file has other names in a directory others can write: it may
    /// be someone else's file.
    #[error(
        "the meta file {0} has more than one link in a directory the box or another user can write"
    )]
    Linked(PathBuf),
}

/// Opens (creating, then truncating) the meta file at `path` for the
/// keeper, who runs as root, without letting anyone else choose what it
/// writes to.
///
/// The path is resolved one component at a time. A directory is trusted
/// when it is owned by root or by `caller_uid`, nobody else may write it,
/// and it is not on the box's file system (`box_device`). In a trusted
/// directory the next component is opened as the caller's path says,
/// links included; in any other directory links are not followed (a link
/// there may have been planted by the box or another user). The file is
/// opened non-blocking (a planted fifo cannot hang the keeper) and must be
/// a regular file; in an untrusted directory it must also have a single
/// link. A meta file on the box's own file system is refused: the program
/// owns that file system during the run.
pub fn open_meta_file(
    path: &Path,
    box_device: u64,
    caller_uid: u32,
) -> Result<File, MetaFileError> {
    use rustix::fs::{Mode, OFlags, CWD};
    use std::path::Component;
    let trusted = |fd: &OwnedFd| {
        rustix::fs::fstat(fd).is_ok_and(|stat| {
            stat.st_dev != box_device
                && (stat.st_uid == 0 || stat.st_uid == caller_uid)
                && stat.st_mode & 0o022 == 0
        })
    };
    let failed = |component: &OsStr, untrusted: bool| {
        let component = component.to_os_string();
        move |err: rustix::io::Errno| MetaFileError::Component {
            path: path.to_path_buf(),
            component,
            untrusted,
            error: err.into(),
        }
    };
    let Some(Component::Normal(name)) = path.components().next_back() else {
        return Err(MetaFileError::NoName(path.to_path_buf()));
    };
    let start: &OsStr = if path.is_absolute() {
        "/".as_ref()
    } else {
        ".".as_ref()
    };
    let search = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir =
        rustix::fs::openat(CWD, start, search, Mode::empty()).map_err(failed(start, false))?;
    let mut parents: Vec<&OsStr> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part),
            Component::ParentDir => Some("..".as_ref()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    parents.pop();
    for part in parents {
        let safe = trusted(&dir);
        let flags = if safe {
            search
        } else {
            search | OFlags::NOFOLLOW
        };
        dir = rustix::fs::openat(&dir, part, flags, Mode::empty()).map_err(failed(part, !safe))?;
    }
    let inside = |stat: &rustix::fs::Stat| stat.st_dev == box_device;
    if rustix::fs::fstat(&dir).is_ok_and(|stat| inside(&stat)) {
        return Err(MetaFileError::InsideBox(path.to_path_buf()));
    }
    let safe = trusted(&dir);
    let mut flags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    if !safe {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = match rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(0o644)) {
        Ok(fd) => fd,
        // A fifo without a reader (or a socket) answers ENXIO to a
        // non-blocking open for writing.
        Err(rustix::io::Errno::NXIO) => return Err(MetaFileError::NotRegular(path.to_path_buf())),
        Err(err) => return Err(failed(name, !safe)(err)),
    };
    let stat = rustix::fs::fstat(&fd).map_err(failed(name, !safe))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(MetaFileError::NotRegular(path.to_path_buf()));
    }
    if inside(&stat) {
        return Err(MetaFileError::InsideBox(path.to_path_buf()));
    }
    if !safe && stat.st_nlink != 1 {
        return Err(MetaFileError::Linked(path.to_path_buf()));
    }
    rustix::fs::ftruncate(&fd, 0).map_err(failed(name, !safe))?;
    Ok(File::from(fd))
}

/// Replaces the contents of the meta file opened by [`open_meta_file`]
/// with `meta`, through its descriptor (the path is not looked up again).
pub fn write_meta_file(file: &mut File, meta: &Meta) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(meta.to_string().as_bytes())
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
            cpu_time: 0.0015,
            wall_time: 0.0111,
            memory_peak: 524_288,
            max_rss: 1_138_688,
            process_peak: None,
            oom_killed: false,
            killed: false,
            kill_reason: None,
            voluntary_context_switches: 6,
            involuntary_context_switches: 1,
            stdout_dropped: 0,
            stderr_dropped: 0,
            exec_errno: None,
            message: String::new(),
            absent_protections: Vec::new(),
        }
    }

    fn keys(meta: &Meta) -> Vec<&str> {
        meta.lines().iter().map(|(key, _)| *key).collect()
    }

    #[test]
    fn success_has_no_status_and_the_documented_order() {
        let mut run = result(ExecutionStatus::Success);
        run.exit_code = Some(0);
        let meta = Meta::from_result(&run, true);
        assert_eq!(
            meta.to_string(),
            "time:0.001\ntime-wall:0.011\nmax-rss:1112\ncsw-voluntary:6\ncsw-forced:1\n\
             cg-mem:512\nexitcode:0\n"
        );
        assert_eq!(meta.verdict(), Verdict::Ok);
        assert_eq!(meta.verdict().exit_status(), 0);
        // Without cgroups there is no cg-mem.
        let plain = Meta::from_result(&run, false);
        assert_eq!(
            keys(&plain),
            [
                "time",
                "time-wall",
                "max-rss",
                "csw-voluntary",
                "csw-forced",
                "exitcode"
            ]
        );
    }

    #[test]
    fn nonzero_exit_is_re() {
        let mut run = result(ExecutionStatus::RuntimeError);
        run.exit_code = Some(3);
        let meta = Meta::from_result(&run, true);
        assert!(meta
            .to_string()
            .ends_with("cg-mem:512\nexitcode:3\nstatus:RE\nmessage:Exited with error status 3\n"));
        assert_eq!(meta.verdict().exit_status(), 1);
    }

    #[test]
    fn failed_exec_is_re_127() {
        let mut run = result(ExecutionStatus::RuntimeError);
        run.exit_code = Some(127);
        run.exec_errno = Some(2);
        run.message = "exec failed: No such file or directory".into();
        let meta = Meta::from_result(&run, false);
        assert_eq!(meta.get("exitcode"), Some("127"));
        assert_eq!(meta.get("status"), Some("RE"));
        assert_eq!(meta.message(), "Exited with error status 127");
        run.exit_code = None;
        assert_eq!(Meta::from_result(&run, false).get("exitcode"), Some("127"));
    }

    #[test]
    fn signals_are_sg_and_oom_adds_the_flag() {
        let mut run = result(ExecutionStatus::Signaled);
        run.signal = Some(11);
        let meta = Meta::from_result(&run, true);
        assert!(meta
            .to_string()
            .ends_with("exitsig:11\nstatus:SG\nmessage:Caught fatal signal 11\n"));
        assert_eq!(meta.get("cg-oom-killed"), None);

        let mut oom = result(ExecutionStatus::MemoryLimit);
        oom.signal = Some(9);
        oom.oom_killed = true;
        let meta = Meta::from_result(&oom, true);
        assert_eq!(
            keys(&meta)[5..],
            ["cg-mem", "cg-oom-killed", "exitsig", "status", "message"]
        );
        assert_eq!(meta.get("status"), Some("SG"));
        assert_eq!(meta.verdict().exit_status(), 1);

        for (status, signal) in [
            (ExecutionStatus::FileSizeLimit, 25),
            (ExecutionStatus::SecurityViolation, 31),
            (ExecutionStatus::ProcessLimit, 6),
        ] {
            let mut run = result(status);
            run.signal = Some(signal);
            let meta = Meta::from_result(&run, false);
            assert_eq!(meta.get("status"), Some("SG"), "{status}");
            assert_eq!(meta.get("exitsig"), Some(signal.to_string().as_str()));
        }
    }

    #[test]
    fn killed_timeouts_put_status_message_and_killed_first() {
        let mut run = result(ExecutionStatus::TimeLimit);
        run.signal = Some(9);
        run.killed = true;
        run.kill_reason = Some(KillReason::CpuTime);
        run.cpu_time = 1.0049;
        let meta = Meta::from_result(&run, true);
        assert_eq!(
            meta.to_string(),
            "status:TO\nmessage:Time limit exceeded\nkilled:1\ntime:1.004\ntime-wall:0.011\n\
             max-rss:1112\ncsw-voluntary:6\ncsw-forced:1\ncg-mem:512\n"
        );
        run.kill_reason = Some(KillReason::WallTime);
        let meta = Meta::from_result(&run, true);
        assert_eq!(
            meta.get("message"),
            Some("Time limit exceeded (wall clock)")
        );
        assert_eq!(meta.verdict().exit_status(), 1);
    }

    #[test]
    fn an_interrupted_keeper_writes_what_isolate_writes() {
        // Whatever the program's end looked like (the keeper stopped it).
        let mut run = result(ExecutionStatus::Signaled);
        run.signal = Some(libc::SIGTERM);
        run.killed = true;
        run.kill_reason = Some(KillReason::Interrupted(libc::SIGTERM));
        let meta = Meta::from_result(&run, true);
        assert_eq!(
            meta.to_string(),
            "exitsig:15\nstatus:SG\nmessage:Interrupted\nkilled:1\ntime:0.001\n\
             time-wall:0.011\nmax-rss:1112\ncsw-voluntary:6\ncsw-forced:1\ncg-mem:512\n"
        );
        assert_eq!(meta.verdict().exit_status(), 1);
        assert_eq!(meta.message(), "Interrupted");
    }

    #[test]
    fn a_timeout_by_a_signal_the_keeper_did_not_send_is_not_killed() {
        let mut run = result(ExecutionStatus::TimeLimit);
        run.signal = Some(libc::SIGKILL);
        run.message = "Time limit exceeded".into();
        let meta = Meta::from_result(&run, false);
        assert!(!keys(&meta).contains(&"killed"), "{:?}", keys(&meta));
        assert_eq!(meta.get("status"), Some("TO"));
    }

    #[test]
    fn a_timeout_after_a_clean_exit_is_not_killed() {
        let mut run = result(ExecutionStatus::TimeLimit);
        run.exit_code = Some(0);
        run.message = "Time limit exceeded".into();
        let meta = Meta::from_result(&run, false);
        assert_eq!(
            keys(&meta),
            [
                "time",
                "time-wall",
                "max-rss",
                "csw-voluntary",
                "csw-forced",
                "status",
                "message"
            ]
        );
    }

    #[test]
    fn sandbox_errors_are_xx_with_one_line() {
        let mut run = result(ExecutionStatus::InternalError);
        run.message = "opening the standard streams failed\n(stdin.txt)".into();
        let meta = Meta::from_result(&run, true);
        assert_eq!(
            meta.to_string(),
            "status:XX\nmessage:opening the standard streams failed (stdin.txt)\n"
        );
        assert_eq!(meta.verdict(), Verdict::SandboxError);
        assert_eq!(meta.verdict().exit_status(), 2);
    }

    #[test]
    fn times_are_never_negative_and_truncated_to_milliseconds() {
        assert_eq!(seconds(-0.5), "0.000");
        assert_eq!(seconds(f64::NAN), "0.000");
        assert_eq!(seconds(0.3), "0.300");
        assert_eq!(seconds(2.9999), "2.999");
        assert_eq!(seconds(12.0), "12.000");
    }
}
