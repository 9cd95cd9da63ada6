//! File-level plumbing shared by the v1 and v2 backends: the write policy,
//! parsing of cgroup files, the kept-open CPU counter, killing and removal.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::CgroupError;

/// How long `kill_all` waits for a killed cgroup to empty.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `rmdir` keeps retrying while the kernel still reports `EBUSY`
/// (a cgroup whose last task just exited can stay busy for a moment).
const RMDIR_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest single sleep while polling; short enough that an emptied cgroup
/// is noticed quickly, long enough not to spin.
const MAX_POLL_SLEEP: Duration = Duration::from_millis(50);

/// Wraps an I/O error with the path it concerns.
pub(super) fn io_error(path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to do when a write to a cgroup file fails: the one place that
/// decides between failing and warning, so that no write is silently lost.
#[derive(Debug, Clone, Copy)]
pub(super) struct WritePolicy {
    /// Whether a failed write is an error (otherwise it is logged).
    pub(super) strict: bool,
}

impl WritePolicy {
    /// Writes `value` into the existing file `path` under this policy.
    pub(super) fn write(self, path: &Path, value: &str) -> Result<(), CgroupError> {
        self.settle(path, value, write_file(path, value))
    }

    /// Applies the policy to the outcome of a write of `value` to `path`.
    pub(super) fn settle(
        self,
        path: &Path,
        value: &str,
        outcome: io::Result<()>,
    ) -> Result<(), CgroupError> {
        match outcome {
            Ok(()) => Ok(()),
            Err(source) if self.strict => Err(io_error(path, source)),
            Err(source) => {
                tracing::warn!(
                    file = %path.display(),
                    value,
                    error = %source,
                    "cgroup write failed; continuing without it because strict mode is off"
                );
                Ok(())
            }
        }
    }
}

/// Writes `value` into the existing file `path` in one `write(2)`.
///
/// The file is never created: a cgroup file that does not exist means the
/// controller is missing, and creating a plain file would hide that.
/// Truncation is harmless on cgroupfs and keeps plain files sane.
pub(super) fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    // cgroupfs parses each write(2) separately, so the value must go in one
    // call; a short write would leave the kernel with half a number.
    let written = file.write(value.as_bytes())?;
    whole_write(written, value)
}

/// An error unless all of `value` was written.
fn whole_write(written: usize, value: &str) -> io::Result<()> {
    if written == value.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            ErrorKind::WriteZero,
            format!("short write ({written} of {} bytes)", value.len()),
        ))
    }
}

/// Reads a whole cgroup file; `Ok(None)` when it does not exist.
pub(super) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(content) => Ok(Some(content)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Reads a whole cgroup file that must exist.
pub(super) fn read_required(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| io_error(path, e))
}

fn parse_error(path: &Path, content: &str) -> CgroupError {
    CgroupError::Parse {
        path: path.to_path_buf(),
        content: content.to_owned(),
    }
}

/// Parses a file holding one number, such as `memory.peak`.
pub(super) fn parse_single(path: &Path, content: &str) -> Result<u64, CgroupError> {
    content
        .trim()
        .parse()
        .map_err(|_| parse_error(path, content))
}

/// Reads a file holding one number that is only ever reported, never
/// judged by, such as `pids.peak`: `None` when the kernel has no such file,
/// and (with a warning) when it cannot be read, which must not fail a run.
pub(super) fn read_report_only(path: &Path) -> Option<u64> {
    report_only(path, read_optional(path))
}

/// [`read_report_only`] on `content` already read from `path`.
pub(super) fn report_only(
    path: &Path,
    content: Result<Option<String>, CgroupError>,
) -> Option<u64> {
    content
        .and_then(|content| content.map(|text| parse_single(path, &text)).transpose())
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "an optional cgroup counter is unreadable");
            None
        })
}

/// The microseconds cgroup CPU-bandwidth files take.
pub(super) fn micros(duration: std::time::Duration) -> String {
    duration.as_micros().to_string()
}

/// Finds `key` in a flat-keyed file (`key value` per line, as in
/// `memory.events` or `cpu.stat`). `Ok(None)` when the key is absent, which
/// older kernels do for some keys.
pub(super) fn parse_keyed(
    path: &Path,
    content: &str,
    key: &str,
) -> Result<Option<u64>, CgroupError> {
    for line in content.lines() {
        let mut fields = line.split_ascii_whitespace();
        if fields.next() != Some(key) {
            continue;
        }
        let value = fields.next().and_then(|v| v.parse().ok());
        return match (value, fields.next()) {
            (Some(value), None) => Ok(Some(value)),
            _ => Err(parse_error(path, content)),
        };
    }
    Ok(None)
}

/// Reads `key` of an optional flat-keyed file; 0 when the file or the key
/// is missing (the controller is off, or the kernel predates the key).
pub(super) fn read_keyed_or_zero(path: &Path, key: &str) -> Result<u64, CgroupError> {
    keyed_or_zero(path, read_optional(path)?, key)
}

/// [`read_keyed_or_zero`] on `content` already read from `path`.
pub(super) fn keyed_or_zero(
    path: &Path,
    content: Option<String>,
    key: &str,
) -> Result<u64, CgroupError> {
    match content {
        Some(content) => Ok(parse_keyed(path, &content, key)?.unwrap_or(0)),
        None => Ok(0),
    }
}

/// Counter files of a cgroup kept open from run to run: a warm box on v1
/// keeps its cgroup, and each of its runs reads five files and writes two
/// (`memory.usage_in_bytes`, the peak, OOM and pids counters, the resets),
/// where an `open` (a walk of some ten cgroupfs path components) and a
/// `close` cost more than the `pread` or `pwrite` at offset 0 itself, which
/// makes cgroupfs regenerate or parse the content as a fresh descriptor
/// would. A descriptor that fails is dropped and the file opened again
/// once, in case the directory was made anew. A process allowed fewer than
/// [`KEEP_MIN_OPEN_FILES`] descriptors keeps none (each warm box would hold
/// seven): there the descriptors matter more than the microseconds.
#[derive(Debug)]
pub(super) struct KeptFiles {
    keep: bool,
    /// By path, and whether opened for writing.
    files: Mutex<Vec<(PathBuf, bool, Arc<File>)>>,
}

/// The soft `RLIMIT_NOFILE` from which [`KeptFiles`] keeps its files open.
const KEEP_MIN_OPEN_FILES: u64 = 1024;

impl KeptFiles {
    pub(super) fn new() -> Self {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        Self {
            keep: limit.current.is_none_or(|soft| soft >= KEEP_MIN_OPEN_FILES),
            files: Mutex::new(Vec::new()),
        }
    }

    fn open(&self, path: &Path, write: bool, fresh: bool) -> io::Result<Arc<File>> {
        if !self.keep {
            return Ok(Arc::new(
                OpenOptions::new().read(!write).write(write).open(path)?,
            ));
        }
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let at = files
            .iter()
            .position(|(kept, for_writing, _)| *for_writing == write && kept == path);
        match at {
            Some(at) if !fresh => return Ok(Arc::clone(&files[at].2)),
            Some(at) => {
                files.swap_remove(at);
            }
            None => {}
        }
        let file = Arc::new(OpenOptions::new().read(!write).write(write).open(path)?);
        files.push((path.to_path_buf(), write, Arc::clone(&file)));
        Ok(file)
    }

    /// `operation` on the kept descriptor of `path`, retried once on a
    /// fresh one when it fails.
    fn with_file<T>(
        &self,
        path: &Path,
        write: bool,
        operation: impl Fn(&File) -> io::Result<T>,
    ) -> io::Result<T> {
        match operation(&*self.open(path, write, false)?) {
            Ok(value) => Ok(value),
            Err(_) => operation(&*self.open(path, write, true)?),
        }
    }

    /// [`read_optional`] through a kept descriptor.
    pub(super) fn read_optional(&self, path: &Path) -> Result<Option<String>, CgroupError> {
        match self.with_file(path, false, read_from_start) {
            Ok(content) => Ok(Some(content)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(path, e)),
        }
    }

    /// [`read_required`] through a kept descriptor.
    pub(super) fn read_required(&self, path: &Path) -> Result<String, CgroupError> {
        self.with_file(path, false, read_from_start)
            .map_err(|e| io_error(path, e))
    }

    /// [`write_file`] through a kept descriptor: one `pwrite` at offset 0.
    pub(super) fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.with_file(path, true, |file| {
            let written = file.write_at(value.as_bytes(), 0)?;
            // What a longer value left behind in a plain file (a fake
            // cgroup tree) goes, as the truncating open of `write_file`
            // made it; cgroupfs files have no size.
            if file.metadata()?.len() > written as u64 {
                file.set_len(written as u64)?;
            }
            whole_write(written, value)
        })
    }
}

/// The whole content of `file` from offset 0, by `pread`.
fn read_from_start(file: &File) -> io::Result<String> {
    let mut content = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = file.read_at(&mut chunk, content.len() as u64)?;
        if read == 0 {
            break;
        }
        content.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8(content).map_err(|e| io::Error::new(ErrorKind::InvalidData, e))
}

/// The format of the file a [`CpuCounter`] reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum CpuFormat {
    /// v1 `cpuacct.usage`: one number of nanoseconds.
    Nanoseconds,
    /// v2 `cpu.stat`: the `usage_usec` line, microseconds.
    UsageUsec,
}

/// The CPU-time file of a cgroup, kept open because it is polled every few
/// milliseconds while a program runs.
#[derive(Debug)]
pub(super) struct CpuCounter {
    path: PathBuf,
    format: CpuFormat,
    /// Opened on first use: a cgroup's files exist as soon as its directory
    /// does, so a later open fails only when the cgroup is gone.
    file: OnceLock<File>,
}

impl CpuCounter {
    pub(super) fn new(path: PathBuf, format: CpuFormat) -> Self {
        Self {
            path,
            format,
            file: OnceLock::new(),
        }
    }

    fn file(&self) -> Result<&File, CgroupError> {
        if let Some(file) = self.file.get() {
            return Ok(file);
        }
        let file = File::open(&self.path).map_err(|e| io_error(&self.path, e))?;
        // A concurrent caller may have won the race; either file is fine.
        let _ = self.file.set(file);
        self.file
            .get()
            .ok_or_else(|| io_error(&self.path, io::Error::other("counter file vanished")))
    }

    /// CPU time so far: one `pread` at offset 0, which makes cgroupfs
    /// regenerate the content, into a stack buffer.
    pub(super) fn read(&self) -> Result<Duration, CgroupError> {
        let file = self.file()?;
        // cpu.stat is about ten short lines; usage_usec is the first one.
        let mut buf = [0u8; 1024];
        let len = file
            .read_at(&mut buf, 0)
            .map_err(|e| io_error(&self.path, e))?;
        let bytes = &buf[..len];
        let invalid = || parse_error(&self.path, &String::from_utf8_lossy(bytes));
        let text = std::str::from_utf8(bytes).map_err(|_| invalid())?;
        match self.format {
            CpuFormat::Nanoseconds => {
                // A full buffer would mean a truncated number.
                if len == buf.len() {
                    return Err(invalid());
                }
                Ok(Duration::from_nanos(parse_single(&self.path, text)?))
            }
            CpuFormat::UsageUsec => match parse_keyed(&self.path, text, "usage_usec")? {
                Some(usec) => Ok(Duration::from_micros(usec)),
                None => Err(invalid()),
            },
        }
    }
}

/// Parses `cgroup.procs`: one positive pid per line.
fn parse_pids(path: &Path, content: &str, pids: &mut Vec<i32>) -> Result<(), CgroupError> {
    for line in content.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.parse::<i32>() {
            // Anything else would make kill(2) signal a process group or
            // every process of the host.
            Ok(pid) if pid > 0 => pids.push(pid),
            _ => return Err(parse_error(path, content)),
        }
    }
    Ok(())
}

/// Collects the pids of `dir` and of every cgroup below it. Returns the
/// first directory found populated, for error messages. A directory that
/// vanished meanwhile counts as empty.
pub(super) fn subtree_pids(
    dir: &Path,
    pids: &mut Vec<i32>,
) -> Result<Option<PathBuf>, CgroupError> {
    let procs = dir.join("cgroup.procs");
    let before = pids.len();
    if let Some(content) = read_optional(&procs)? {
        parse_pids(&procs, &content, pids)?;
    }
    let mut populated = (pids.len() > before).then(|| dir.to_path_buf());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(populated),
        Err(e) => return Err(io_error(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| io_error(&entry.path(), e))?
            .is_dir();
        if is_dir {
            let below = subtree_pids(&entry.path(), pids)?;
            populated = populated.or(below);
        }
    }
    Ok(populated)
}

/// Whether no task lives in `dirs` or below them.
pub(super) fn is_empty(dirs: &[PathBuf]) -> Result<bool, CgroupError> {
    let mut pids = Vec::new();
    for dir in dirs {
        subtree_pids(dir, &mut pids)?;
    }
    Ok(pids.is_empty())
}

/// Kills every task in `dirs` and below, then waits until they are gone.
///
/// With `signal` the tasks are sent SIGKILL each round until none is left,
/// which catches tasks forked between reading `cgroup.procs` and killing.
/// Without it the caller has already killed the tree (v2 `cgroup.kill`) and
/// this only waits.
pub(super) fn kill_and_wait(dirs: &[PathBuf], signal: bool) -> Result<(), CgroupError> {
    let deadline = Instant::now() + KILL_TIMEOUT;
    let own_pid = i32::try_from(std::process::id()).unwrap_or(0);
    let mut sleep = Duration::from_millis(1);
    let mut pids = Vec::new();
    loop {
        pids.clear();
        let mut populated = None;
        for dir in dirs {
            let found = subtree_pids(dir, &mut pids)?;
            populated = populated.or(found);
        }
        let Some(populated) = populated else {
            return Ok(());
        };
        if signal {
            for &pid in &pids {
                if pid == own_pid {
                    // The keeper must never sit in a box cgroup; killing it
                    // would abort the sandbox instead of the inmate.
                    tracing::warn!(pid, cgroup = %populated.display(), "isobox itself is in the cgroup it must kill; not killing itself");
                    continue;
                }
                // SAFETY: kill(2) takes plain integers and touches no memory
                // of ours; pid is > 0 (checked by parse_pids), so it names
                // one process, never a group or every process.
                let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
                if rc != 0 {
                    // ESRCH: it exited already. Anything else shows up as
                    // the cgroup staying populated until the deadline.
                    let error = io::Error::last_os_error();
                    if error.raw_os_error() != Some(libc::ESRCH) {
                        tracing::warn!(pid, %error, "cannot kill a task of the cgroup");
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(CgroupError::Busy(populated));
        }
        thread::sleep(sleep);
        sleep = (sleep * 2).min(MAX_POLL_SLEEP);
    }
}

/// Removes the cgroup `dir` and any cgroup left below it, deepest first.
/// A directory that is already gone counts as removed.
///
/// Not a second walker of file trees (that is [`crate::fstree`], for trees
/// a program built): a cgroup directory holds only the kernel's control
/// files, which cannot be unlinked and beside which nothing can be
/// planted (no links, no regular files), and it goes with `rmdir` once its
/// tasks and child cgroups are gone.
pub(super) fn rmdir_cgroups(dir: &Path) -> Result<(), CgroupError> {
    // The common case, a cgroup with no cgroup below it, needs no listing
    // (which reads every control file's entry); any failure, such as
    // EBUSY for child cgroups, takes the careful way below.
    if rmdir_if_empty(dir) {
        return Ok(());
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| io_error(dir, e))?;
                let file_type = entry.file_type().map_err(|e| io_error(&entry.path(), e))?;
                // Only directories are cgroups; never follow a symlink.
                if file_type.is_dir() {
                    rmdir_cgroups(&entry.path())?;
                }
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(dir, e)),
    }
    rmdir_retrying(dir)
}

/// One `rmdir` of `dir`: whether it is gone (removed now, or missing).
/// Any failure, such as a cgroup still holding a task or a child, is left
/// to [`rmdir_cgroups`] after the caller killed what is inside.
pub(super) fn rmdir_if_empty(dir: &Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == ErrorKind::NotFound,
    }
}

/// `rmdir` that treats a missing directory as done and retries briefly
/// while the kernel is still releasing the cgroup.
fn rmdir_retrying(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + RMDIR_TIMEOUT;
    let mut sleep = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(sleep);
                sleep = (sleep * 2).min(MAX_POLL_SLEEP);
            }
            Err(e) => return Err(io_error(dir, e)),
        }
    }
}

/// Creates the directory `dir`; `Ok(false)` when it already existed.
pub(super) fn make_dir(dir: &Path) -> Result<bool, CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error(dir, e)),
    }
}

/// Creates a fresh cgroup directory `dir`. A leftover of an earlier run is
/// removed first: its counters (peak memory, CPU time) would otherwise
/// leak into the new run's measurements.
pub(super) fn make_fresh_dir(dir: &Path) -> Result<(), CgroupError> {
    if make_dir(dir)? {
        return Ok(());
    }
    tracing::debug!(cgroup = %dir.display(), "removing a leftover cgroup");
    kill_and_wait(&[dir.to_path_buf()], true)?;
    rmdir_cgroups(dir)?;
    if make_dir(dir)? {
        Ok(())
    } else {
        Err(io_error(dir, io::Error::from(ErrorKind::AlreadyExists)))
    }
}

/// Rolls back directories created by a constructor that failed half way.
/// Nothing was ever added to them, so a plain `rmdir` suffices.
pub(super) fn undo_created(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        if let Err(error) = std::fs::remove_dir(dir) {
            tracing::warn!(cgroup = %dir.display(), %error, "cannot remove a half-created cgroup");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values_parse_or_report() {
        let path = Path::new("x");
        let content = "low 0\nhigh 3\nmax 7\noom 1\noom_kill 2\n";
        assert_eq!(parse_keyed(path, content, "oom_kill").unwrap(), Some(2));
        assert_eq!(parse_keyed(path, content, "oom").unwrap(), Some(1));
        assert_eq!(parse_keyed(path, content, "missing").unwrap(), None);
        assert!(matches!(
            parse_keyed(path, "max lots\n", "max"),
            Err(CgroupError::Parse { .. })
        ));
        assert!(matches!(
            parse_keyed(path, "max 1 2\n", "max"),
            Err(CgroupError::Parse { .. })
        ));
    }

    #[test]
    fn pids_refuse_group_and_broadcast_values() {
        let path = Path::new("cgroup.procs");
        let mut pids = Vec::new();
        parse_pids(path, "12\n 34 \n\n", &mut pids).unwrap();
        assert_eq!(pids, [12, 34]);
        for bad in ["0\n", "-1\n", "abc\n"] {
            assert!(parse_pids(path, bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cpu_counter_rereads_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpu.stat");
        std::fs::write(&path, "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n").unwrap();
        let counter = CpuCounter::new(path.clone(), CpuFormat::UsageUsec);
        assert_eq!(counter.read().unwrap(), Duration::from_micros(1500));
        std::fs::write(&path, "usage_usec 2500000\nuser_usec 1\n").unwrap();
        assert_eq!(counter.read().unwrap(), Duration::from_micros(2_500_000));
        std::fs::write(&path, "user_usec 1\n").unwrap();
        assert!(matches!(counter.read(), Err(CgroupError::Parse { .. })));

        let path = dir.path().join("cpuacct.usage");
        std::fs::write(&path, "123456789\n").unwrap();
        let counter = CpuCounter::new(path.clone(), CpuFormat::Nanoseconds);
        assert_eq!(counter.read().unwrap(), Duration::from_nanos(123_456_789));
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(matches!(counter.read(), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn policy_fails_or_warns() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be opened for writing: a guaranteed failure.
        let target = dir.path().join("pids.max");
        std::fs::create_dir(&target).unwrap();
        assert!(WritePolicy { strict: true }.write(&target, "5").is_err());
        assert!(WritePolicy { strict: false }.write(&target, "5").is_ok());
        // Missing files are never created.
        let missing = dir.path().join("memory.max");
        assert!(WritePolicy { strict: true }.write(&missing, "5").is_err());
        assert!(!missing.exists());
    }
}
