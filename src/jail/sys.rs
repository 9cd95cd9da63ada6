//! Safe wrappers over the few system calls the keeper makes around a run:
//! pipes, poll, wait4 with rusage, signals. Child-side calls live with the
//! steps that use them.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Turns a `-1` return into the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Lowest descriptor the keeper hands to a child: keeping every run fd above
/// the standard three means the child can `dup2` onto 0–2 without one
/// source clobbering another.
const FIRST_RUN_FD: RawFd = 3;

/// `fd` itself when it is numbered above 2, else a close-on-exec copy that is.
pub fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= FIRST_RUN_FD {
        return Ok(fd);
    }
    dup_for_child(fd.as_fd())
}

/// A close-on-exec pipe as (read end, write end), both numbered above 2.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and ours alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

/// Makes `fd` close-on-exec and numbered above 2 (for files the caller
/// hands over, such as stdin).
pub fn dup_for_child(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid borrowed descriptor returns a new
    // descriptor that only we own.
    let dup = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, FIRST_RUN_FD) })?;
    // SAFETY: `dup` was just returned by fcntl.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// Puts `fd` into non-blocking mode so one slow stream never stalls the
/// keeper's loop.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL only read and change the status flags of a
    // descriptor that stays valid for the borrow.
    unsafe {
        let flags = check(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        check(libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        ))?;
    }
    Ok(())
}

/// One entry of a [`poll`] set.
pub type PollFd = libc::pollfd;

/// Readiness bits, re-exported so callers need no `libc` import.
pub const POLLIN: i16 = libc::POLLIN;
/// Ready for writing.
pub const POLLOUT: i16 = libc::POLLOUT;
/// Error or hang-up: the other end is gone.
pub const POLLERR_OR_HUP: i16 = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;

/// A poll entry for `fd` waiting for `events`.
pub fn poll_entry(fd: RawFd, events: i16) -> PollFd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Waits until an entry is ready or `timeout` passes; an interrupted wait
/// counts as a timeout so the caller re-checks its clocks.
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    let timeout_ms = timeout.map_or(-1, |t| {
        // Round up so a 0.3 ms remainder does not become a busy 0 ms poll.
        let ms = t.as_micros().div_ceil(1000);
        ms.min(i32::MAX as u128) as i32
    });
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the
    // length passed.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match check(ret) {
        Ok(n) => Ok(n as usize),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(err) => Err(err),
    }
}

/// Resource usage of a reaped process, in the units the keeper reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rusage {
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub system: Duration,
    /// Largest resident set in bytes.
    pub max_rss: u64,
    /// Voluntary context switches.
    pub voluntary_switches: u64,
    /// Involuntary context switches.
    pub involuntary_switches: u64,
}

impl Rusage {
    pub(crate) fn from_raw(raw: &libc::rusage) -> Self {
        let time = |tv: libc::timeval| {
            Duration::from_secs(tv.tv_sec.max(0) as u64)
                + Duration::from_micros(tv.tv_usec.max(0) as u64)
        };
        Self {
            user: time(raw.ru_utime),
            system: time(raw.ru_stime),
            max_rss: (raw.ru_maxrss.max(0) as u64) * 1024,
            voluntary_switches: raw.ru_nvcsw.max(0) as u64,
            involuntary_switches: raw.ru_nivcsw.max(0) as u64,
        }
    }

    /// User plus system time.
    pub fn cpu_time(&self) -> Duration {
        self.user + self.system
    }
}

/// Reaps `pid` (blocking), returning its wait status and rusage.
pub fn wait4(pid: libc::pid_t) -> io::Result<(libc::c_int, Rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut raw: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `raw` are valid for writes for the call.
        let ret = unsafe { libc::wait4(pid, &mut status, libc::__WALL, &mut raw) };
        if ret == pid {
            return Ok((status, Rusage::from_raw(&raw)));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sends `signal` to the process behind `pidfd`; it cannot hit a recycled
/// pid, unlike `kill`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal with a null siginfo and zero flags only
    // reads its scalar arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    check(ret as libc::c_int).map(drop)
}

/// Sends `signal` to every process of process group `pgid`.
pub fn kill_process_group(pgid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill with a negative pid only signals; the caller passes a
    // group it created, so no unrelated process is hit.
    check(unsafe { libc::kill(-pgid, signal) }).map(drop)
}

/// Sends `signal` to process `pid` (positive: one process, never a group).
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: kill with a positive pid signals that one process only.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Mounts a tmpfs named `source` on `target` with `options` (tmpfs's
/// `size=`, `nr_inodes=`, `mode=`), `nosuid` and `nodev`.
pub fn mount_tmpfs(source: &str, target: &std::path::Path, options: &str) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let invalid = |_| io::Error::from_raw_os_error(libc::EINVAL);
    let source = CString::new(source).map_err(invalid)?;
    let target = CString::new(target.as_os_str().as_bytes()).map_err(invalid)?;
    let options = CString::new(options).map_err(invalid)?;
    // SAFETY: every pointer is a live C string for the duration of the call.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    })
    .map(drop)
}

/// Binds `source` (a file or directory, followed if it is a magic link
/// such as `/proc/self/fd/N`) onto `target`.
pub fn bind_mount(source: &std::path::Path, target: &std::path::Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |path: &std::path::Path| {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (source, target) = (c(source)?, c(target)?);
    // SAFETY: two live C strings; a bind mount reads no data argument.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// Unmounts the file system mounted on `target` (lazily when busy).
pub fn unmount(target: &std::path::Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let target = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a live C string and a flag.
    check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) }).map(drop)
}

/// Whether the caller is root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The effective user id of the calling process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Human-readable text of an errno value.
pub fn strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    // std appends " (os error N)"; the message users see reads like strerror(3).
    match text.rfind(" (os error") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

/// Keeps `SIGPIPE` blocked in the calling thread while alive, so writing
/// stdin to a program that closed it yields `EPIPE` instead of killing the
/// keeper; a pending `SIGPIPE` is discarded on drop.
pub struct SigpipeBlocked {
    previous: libc::sigset_t,
}

impl SigpipeBlocked {
    /// Blocks `SIGPIPE` for this thread.
    pub fn new() -> io::Result<Self> {
        // SAFETY: the sigset_t values are initialised by sigemptyset before
        // use, and pthread_sigmask only touches this thread's mask.
        unsafe {
            let mut block: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut block);
            libc::sigaddset(&mut block, libc::SIGPIPE);
            let mut previous: libc::sigset_t = std::mem::zeroed();
            let ret = libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut previous);
            if ret != 0 {
                return Err(io::Error::from_raw_os_error(ret));
            }
            Ok(Self { previous })
        }
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        // SAFETY: sigpending/sigtimedwait/pthread_sigmask operate on
        // initialised local sets and this thread's own mask.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pending);
            if libc::sigpending(&mut pending) == 0
                && libc::sigismember(&pending, libc::SIGPIPE) == 1
            {
                let mut only_pipe: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut only_pipe);
                libc::sigaddset(&mut only_pipe, libc::SIGPIPE);
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&only_pipe, std::ptr::null_mut(), &zero);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_ends_are_above_stdio_and_cloexec() {
        let (read, write) = pipe().unwrap();
        for fd in [&read, &write] {
            assert!(fd.as_raw_fd() >= FIRST_RUN_FD);
            // SAFETY: F_GETFD on an open descriptor only reads its flags.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        }
    }

    #[test]
    fn strerror_reads_like_libc() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
    }

    #[test]
    fn writing_to_a_closed_pipe_is_epipe_not_a_signal() {
        let (read, write) = pipe().unwrap();
        drop(read);
        let guard = SigpipeBlocked::new().unwrap();
        let mut file = std::fs::File::from(write);
        let err = std::io::Write::write(&mut file, b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        drop(guard);
    }
}
