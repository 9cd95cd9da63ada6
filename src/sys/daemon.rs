//! A long-lived helper started from a keeper (the isolate face's per-box
//! agent): a process that owes nothing to whoever started the keeper.
//!
//! In a set-user-ID installation the keeper's caller chose its real ids,
//! environment, working directory, umask, rlimits, signal mask and
//! dispositions and scheduling. A helper that outlives the caller and
//! serves other callers must keep none of them, so the child takes every
//! one from a fixed source before it executes the program: root's ids, an
//! empty environment, `/`, umask 022, init's rlimits, no blocked or ignored
//! signal, `SCHED_OTHER` at nice 0 (or background scheduling, when its
//! starter asks for it), a session of its own and no controlling
//! terminal.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::check;
use super::process::Scheduling;

/// The descriptor `kept` of [`spawn_root_daemon`] becomes in the program.
pub(crate) const KEPT_FD: libc::c_int = 3;

/// Every resource `setrlimit` knows (`RLIMIT_CPU` to `RLIMIT_RTTIME`).
const RESOURCES: [libc::__rlimit_resource_t; 16] = [
    libc::RLIMIT_CPU,
    libc::RLIMIT_FSIZE,
    libc::RLIMIT_DATA,
    libc::RLIMIT_STACK,
    libc::RLIMIT_CORE,
    libc::RLIMIT_RSS,
    libc::RLIMIT_NPROC,
    libc::RLIMIT_NOFILE,
    libc::RLIMIT_MEMLOCK,
    libc::RLIMIT_AS,
    libc::RLIMIT_LOCKS,
    libc::RLIMIT_SIGPENDING,
    libc::RLIMIT_MSGQUEUE,
    libc::RLIMIT_NICE,
    libc::RLIMIT_RTPRIO,
    libc::RLIMIT_RTTIME,
];

/// Starts `program` with `argv` as a detached root process (see the module
/// documentation) whose standard input is `stdin` and whose standard
/// output and error are `/dev/null`; returns its pid once the program has
/// replaced the child (so that whoever looks for the helper right after,
/// in `/proc` say, finds it by its command line), or the error that ended
/// the child before (the child reaped). `kept`, when given, becomes the
/// program's descriptor 3 (a lock the program holds from the caller on,
/// with no moment where nobody holds it). The program is scheduled as
/// `scheduling` says (`Normal` but for work meant to give way to
/// everything else, which is scheduled so from its first instruction).
/// The caller must be single-threaded and have root as its effective uid.
pub fn spawn_root_daemon(
    program: &CStr,
    argv: &[CString],
    stdin: BorrowedFd<'_>,
    kept: Option<BorrowedFd<'_>>,
    scheduling: Scheduling,
) -> io::Result<libc::pid_t> {
    // Everything the child needs is made before the fork: it only makes
    // system calls.
    let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
    pointers.push(std::ptr::null());
    let environment: [*const libc::c_char; 1] = [std::ptr::null()];
    let null = c"/dev/null";
    let root = c"/";
    let stdin = stdin.as_raw_fd();
    let kept = kept.map(|fd| fd.as_raw_fd());
    let child_scheduling = scheduling.attributes();
    // The child's report: nothing (closed by the exec) when the program
    // runs, its errno when a step failed. Both ends above the descriptors
    // the child sets up, which must not land on them.
    let (reader, writer) = {
        let (low_reader, low_writer) = super::fd::pipe()?;
        (
            rustix::io::fcntl_dupfd_cloexec(&low_reader, KEPT_FD + 1)?,
            rustix::io::fcntl_dupfd_cloexec(&low_writer, KEPT_FD + 1)?,
        )
    };
    let report = writer.as_raw_fd();
    // SAFETY: the caller is single-threaded; the child below makes only
    // async-signal-safe system calls on memory prepared above, then
    // executes or exits.
    let pid = unsafe { fork_scheduled(scheduling) }?;
    if pid > 0 {
        drop(writer);
        return started(pid, reader);
    }
    // SAFETY: the child's steps, each a plain system call on values built
    // before the fork; any failure ends the child with status 127 before
    // the program runs, so no half-reset helper ever starts.
    unsafe {
        let mut ok = libc::setsid() >= 0
            && libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(0, 0, 0) == 0
            && libc::setresuid(0, 0, 0) == 0
            && libc::chdir(root.as_ptr()) == 0
            && super::process::sched_setattr(0, &child_scheduling) == 0;
        libc::umask(0o022);
        // Init's limits (read once root, as a caller who is not root
        // may not), or, where they cannot be had (a hard limit the caller
        // lowered, without CAP_SYS_RESOURCE), the nearest below the
        // current hard limit.
        for resource in RESOURCES {
            let mut wanted = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            let mut own = wanted;
            ok = ok
                && libc::prlimit(1, resource, std::ptr::null(), &mut wanted) == 0
                && libc::prlimit(0, resource, std::ptr::null(), &mut own) == 0;
            let fallback = libc::rlimit {
                rlim_cur: wanted.rlim_cur.min(own.rlim_max),
                rlim_max: wanted.rlim_max.min(own.rlim_max),
            };
            ok = ok
                && (libc::setrlimit(resource, &wanted) == 0
                    || libc::setrlimit(resource, &fallback) == 0);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        ok = ok
            && libc::sigemptyset(&mut empty) == 0
            && libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) == 0;
        for signal in 1..libc::SIGRTMAX() {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                // Signals glibc keeps for itself refuse; nothing to reset.
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        let devnull = libc::open(null.as_ptr(), libc::O_RDWR);
        ok = ok
            && devnull >= 0
            && libc::dup2(stdin, 0) == 0
            && libc::dup2(devnull, 1) == 1
            && libc::dup2(devnull, 2) == 2;
        // `dup2` leaves the copy without close-on-exec; the same open file
        // description, so a lock on it stays held through the exec.
        // (At 3 already, it only loses close-on-exec.)
        if let Some(kept) = kept {
            ok = ok
                && if kept == KEPT_FD {
                    libc::fcntl(KEPT_FD, libc::F_SETFD, 0) == 0
                } else {
                    libc::dup2(kept, KEPT_FD) == KEPT_FD
                };
        }
        if ok {
            if devnull > 2 && (kept.is_none() || devnull != KEPT_FD) {
                libc::close(devnull);
            }
            libc::execve(program.as_ptr(), pointers.as_ptr(), environment.as_ptr());
        }
        let errno = *libc::__errno_location();
        let errno = if errno == 0 { libc::EINVAL } else { errno }.to_ne_bytes();
        libc::write(report, errno.as_ptr().cast(), errno.len());
        libc::_exit(127)
    }
}

/// `fork`, with the child scheduled as `scheduling` says from its first
/// instruction. A background child is forked with this thread switched to
/// the background's scheduling for the fork, and back: forked at nice 0,
/// with a new task's early deadline, a spare agent was run ahead of the
/// box's run already under way on that CPU, and went on at nice 19
/// through its exec for 1.3 ms in one trace while the run waited.
///
/// # Safety
/// As `fork`'s: in a process with other threads, the child may only make
/// async-signal-safe calls.
unsafe fn fork_scheduled(scheduling: Scheduling) -> io::Result<libc::pid_t> {
    let ours = match scheduling {
        Scheduling::Background => {
            let ours = super::process::this_thread_scheduling()?;
            // SAFETY: a complete attribute set; changes only this thread.
            check(unsafe { super::process::sched_setattr(0, &scheduling.attributes()) })?;
            Some(ours)
        }
        Scheduling::Normal => None,
    };
    // SAFETY: the caller's contract.
    let forked = check(unsafe { libc::fork() });
    if let (Some(ours), Ok(1..) | Err(_)) = (&ours, &forked) {
        // SAFETY: the attributes the kernel reported for this thread.
        unsafe { super::process::sched_setattr(0, ours) };
    }
    forked
}

/// Which side of [`fork_resident`] the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(libc::pid_t),
    /// The child.
    Child,
}

/// Forks a resident helper that runs this program's own code, without an
/// exec (an exec of this program and the C library's start-up cost a
/// helper about a millisecond of CPU time on our machines, most of it the
/// C library probing the CPU, which traps to the hypervisor). The caller
/// must be a single-threaded root daemon (its ids, environment, limits
/// and working directory are then the helper's too); the child comes
/// back from here in a session of its own, scheduled as `scheduling`
/// says from its first instruction, with no signal blocked, with `stdin`
/// as its standard input and every other descriptor it inherited closed
/// (its standard output and error on `/dev/null`), interruption signals caught afresh
/// if its parent caught them ([`super::catch_interruptions`]), with
/// `name` as its name (`/proc/<pid>/comm`, at most 15 bytes) and, where
/// the kernel lets root (with `CAP_SYS_RESOURCE`), `command_line`
/// (NUL-separated words) as what `/proc/<pid>/cmdline` shows; without
/// that capability, those words as one title over the parent's command
/// line, cut to its length. A child that cannot be set up so ends at once with status 127.
/// The child must never return to its parent's work: it ends with
/// `std::process::exit` (or a signal).
pub fn fork_resident(
    stdin: BorrowedFd<'_>,
    name: &CStr,
    command_line: &[u8],
    scheduling: Scheduling,
) -> io::Result<Forked> {
    let mut command_line = command_line.to_vec();
    if command_line.last() != Some(&0) {
        command_line.push(0);
    }
    // SAFETY: the caller is single-threaded (the contract above).
    let pid = unsafe { fork_scheduled(scheduling) }?;
    if pid > 0 {
        return Ok(Forked::Parent(pid));
    }
    let set_up = move || -> io::Result<()> {
        rustix::process::setsid()?;
        rustix::stdio::dup2_stdin(stdin)?;
        // The parent's may be a caller's, whose end of file would wait
        // for this helper.
        let null = rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        rustix::stdio::dup2_stdout(&null)?;
        rustix::stdio::dup2_stderr(&null)?;
        // SAFETY: the child owns every descriptor above the standard ones
        // and uses none of them again: whatever the parent's objects hold
        // is never dropped here, as the child never returns to them.
        check(unsafe {
            libc::syscall(libc::SYS_close_range, 3, libc::c_uint::MAX, 0) as libc::c_int
        })?;
        // SAFETY: an empty set, applied to this thread's mask.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                &none,
                std::ptr::null_mut(),
            ))?;
        }
        super::interrupt::catch_interruptions_after_fork()?;
        // SAFETY: `name` is a NUL-terminated string the kernel copies (up
        // to 15 bytes); changes only this thread's name.
        check(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) })?;
        // The buffer lives as long as the process: the kernel reads the
        // command line from it whenever someone asks.
        let shown: &'static [u8] = Vec::leak(command_line);
        let range = shown.as_ptr_range();
        // SAFETY: both addresses bound the leaked buffer in this process's
        // memory; the start is set first, below the end already set (the
        // heap lies below the stack, where the old command line is).
        let moved = unsafe {
            libc::prctl(
                libc::PR_SET_MM,
                libc::PR_SET_MM_ARG_START,
                range.start as libc::c_ulong,
                0,
                0,
            ) == 0
                && libc::prctl(
                    libc::PR_SET_MM,
                    libc::PR_SET_MM_ARG_END,
                    range.end as libc::c_ulong,
                    0,
                    0,
                ) == 0
        };
        if !moved {
            // Root without CAP_SYS_RESOURCE (in some containers and
            // virtual machines): the command line as one title, written
            // over the parent's in place.
            if let Err(error) = retitle(shown) {
                tracing::debug!("a forked helper keeps its parent's command line: {error}");
            }
        }
        Ok(())
    };
    match set_up() {
        Ok(()) => Ok(Forked::Child),
        Err(error) => {
            tracing::debug!("a forked helper cannot be set up: {error}");
            // SAFETY: ends the child at once, running nothing of its
            // parent's.
            unsafe { libc::_exit(127) }
        }
    }
}

/// Writes `command_line` (NUL-separated words) over this process's own
/// command line, as `setproctitle` does: its words joined by spaces, cut
/// to the room the original one had, then a NUL, then spaces to the end.
/// The kernel shows a command line whose last byte is no longer a NUL as
/// that one title, up to the NUL. (The C library's and Rust's views of
/// the arguments change with it; this program reads them only at its
/// start.)
fn retitle(command_line: &[u8]) -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let field = |index: usize| -> Option<usize> {
        // Fields 48 and 49, arg_start and arg_end, counted after the
        // command name's closing parenthesis (which ends field 2).
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(index)?
            .parse()
            .ok()
    };
    let (Some(start), Some(end)) = (field(45), field(46)) else {
        return Err(io::Error::other("no argument range in /proc/self/stat"));
    };
    let room = end.saturating_sub(start);
    if room < 2 {
        return Err(io::Error::other("no room for a title"));
    }
    let words = command_line.strip_suffix(b"\0").unwrap_or(command_line);
    let mut title: Vec<u8> = words
        .iter()
        .map(|&byte| if byte == 0 { b' ' } else { byte })
        .take(room - 2)
        .collect();
    title.push(0);
    title.resize(room, b' ');
    // SAFETY: [start, end) is this process's own argument strings, on its
    // stack, as the kernel reports them; `title` is exactly that long.
    unsafe { std::ptr::copy_nonoverlapping(title.as_ptr(), start as *mut u8, room) };
    Ok(())
}

/// What the child of [`spawn_root_daemon`] reported through `reader`:
/// `pid` when its exec closed the pipe, its error (the child reaped)
/// when it wrote one.
fn started(pid: libc::pid_t, reader: OwnedFd) -> io::Result<libc::pid_t> {
    let mut errno = [0u8; 4];
    let read = loop {
        match rustix::io::read(&reader, &mut errno) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other,
        }
    };
    let error = match read {
        Ok(0) => return Ok(pid),
        Ok(4) => io::Error::from_raw_os_error(i32::from_ne_bytes(errno)),
        Ok(_) => io::Error::other("the helper's child ended before its exec"),
        Err(error) => error.into(),
    };
    let mut status = 0;
    // SAFETY: reaps the child this process just forked, which has ended or
    // is ending.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Err(error)
}

/// The descriptor a program started by [`spawn_root_daemon`] was given as
/// `kept`, made close-on-exec again; an error when there is none. Takes
/// it over: to be called once, at the program's start.
pub fn take_kept_fd() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails on a
    // descriptor that is not open.
    check(unsafe { libc::fcntl(KEPT_FD, libc::F_GETFD) })?;
    // SAFETY: descriptor 3 is open (above) and, in a program started with
    // `kept`, nothing else in the process owns it: the start-up code opens
    // standard input, output and error only.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(KEPT_FD) };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    Ok(fd)
}
