//! Processes as the keeper sees them: reaping with rusage, pidfds, signals,
//! the `SIGPIPE` guard and the terminal hand-back.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::check;

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

/// A pidfd for process `pid`: from then on it names that process even if
/// the pid is reused.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: pidfd_open takes two integers and returns a new descriptor.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int)?;
    // SAFETY: the descriptor was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// When process `pid` started, in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`); with the pid it names one process for good.
pub fn start_time(pid: libc::pid_t) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses; the
    // fields after it start behind the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_ascii_whitespace().nth(19))
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/<pid>/stat"))
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

/// How a process is scheduled: like everything else, or as background
/// work that gives way to everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_OTHER` at nice 0.
    Normal,
    /// `SCHED_OTHER` at nice 19. (`SCHED_IDLE` was tried for spare boxes'
    /// builds, so that a box's run forked on the same CPU would not wait a
    /// slice behind one: it made back-to-back boxes slower, its processes
    /// holding the kernel's mount and cgroup locks while any other task
    /// kept them off the CPU. So did nice 19 with the shortest slice Linux
    /// 6.12 grants, 0.1 ms.)
    Background,
}

/// The kernel's `struct sched_attr` as far as `SCHED_ATTR_SIZE_VER0`
/// (the libc crate does not define it): `sched_getattr` and
/// `sched_setattr` read and set a thread's policy and nice value in one
/// call each, which a background child's fork needs (see
/// `fork_scheduled`).
#[repr(C)]
#[derive(Default)]
pub(super) struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

impl Scheduling {
    /// The attributes `sched_setattr` takes for it.
    pub(super) fn attributes(self) -> SchedAttr {
        SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            nice: match self {
                Self::Normal => 0,
                Self::Background => 19,
            },
            ..SchedAttr::default()
        }
    }
}

/// `sched_setattr(2)` for thread `pid` (0: the calling one); async-signal
/// safe.
///
/// # Safety
/// None beyond the call's: `attributes` is a complete `SchedAttr`.
pub(super) unsafe fn sched_setattr(pid: libc::pid_t, attributes: &SchedAttr) -> libc::c_int {
    // SAFETY: the kernel reads `attributes.size` bytes, all of which the
    // struct has.
    unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            pid,
            attributes as *const SchedAttr,
            0,
        ) as libc::c_int
    }
}

/// Schedules process `pid` (0: this process; its threads keep theirs) as
/// `scheduling` says, whatever policy it had.
pub fn set_scheduling(pid: libc::pid_t, scheduling: Scheduling) -> io::Result<()> {
    // SAFETY: a complete attribute set; changes only `pid`'s scheduling.
    check(unsafe { sched_setattr(pid, &scheduling.attributes()) }).map(drop)
}

/// This thread's scheduling, as `sched_setattr` takes it: policy,
/// priority and nice value, with the kernel's default slice (which
/// `sched_getattr` reports in the slice's field, and which, set back
/// from there, would become a slice of this thread's own).
pub(super) fn this_thread_scheduling() -> io::Result<SchedAttr> {
    let mut attributes = SchedAttr::default();
    // SAFETY: the kernel writes at most `size_of::<SchedAttr>()` bytes,
    // the size passed, into `attributes`.
    check(unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attributes as *mut SchedAttr,
            std::mem::size_of::<SchedAttr>() as libc::c_uint,
            0,
        ) as libc::c_int
    })?;
    attributes.size = std::mem::size_of::<SchedAttr>() as u32;
    attributes.flags = 0;
    attributes.runtime = 0;
    Ok(attributes)
}

/// Ignores `SIGPIPE` from now on (a write to a closed pipe is then an
/// `EPIPE` error), as Rust's own start-up does for a program it starts.
pub fn ignore_sigpipe() {
    // SAFETY: changes only this process's disposition of SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
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

/// After a run that kept the terminal (`--tty-hack`): makes the keeper's
/// process group the foreground group of the terminal on stdout again, as
/// isolate does, so the caller's shell gets its terminal back.
pub fn take_back_terminal() {
    // SAFETY: isatty, sigaction, tcsetpgrp and getpgrp only act on our
    // own stdout and signal table; the old disposition is restored.
    unsafe {
        if libc::isatty(1) != 1 {
            return;
        }
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGTTOU, &ignore, &mut old);
        libc::tcsetpgrp(1, libc::getpgrp());
        libc::sigaction(libc::SIGTTOU, &old, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::pipe;

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
