//! The proxy: pid 1 of the box's namespaces, from the `clone3` until it
//! has reported how the inmate ended and reaped every process of the box.
//!
//! Everything here runs in the child of `clone3`, where only
//! async-signal-safe calls are allowed: no allocation, no lock, no `std`
//! I/O. Each step is a function of its own; [`proxy_main`] lists them in
//! order.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use super::report::RawReport;
use super::{fail, fail_at, inmate, ipc, mounts, namespaces, JailSpec, RawBoxFds, Stage};
use crate::sys::errno;

/// The signal the keeper sends the proxy to end a run: the proxy kills the
/// inmate, reaps it and reports its rusage before the box goes away, so a
/// killed run still has its max RSS and context switches. (A SIGKILL to the
/// proxy would take the inmate's figures with it; the keeper sends one only
/// if the proxy does not end promptly.)
pub(crate) const STOP_SIGNAL: libc::c_int = libc::SIGUSR1;

/// The inmate's pid inside the box; written by the proxy after the fork and
/// read by its [`STOP_SIGNAL`] handler. Each process has its own copy.
pub(super) static INMATE_PID: AtomicI32 = AtomicI32::new(0);

pub(super) extern "C" fn kill_inmate(_signal: libc::c_int) {
    let pid = INMATE_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; `pid` is our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The proxy's steps, in order:
/// 1. die with the keeper (`PR_SET_PDEATHSIG`), default `SIGCHLD` handling;
///    on cgroup v1, join the run's cgroup (see [`join_cgroup`]);
/// 2. wire stdio onto 0–2 and close every other inherited descriptor, so
///    another run's pipes never stay open because of this box;
/// 3. wait for the keeper's go-ahead (it records us first, and moves us
///    into the cgroup when we were neither born there nor joined it);
/// 4. in namespaces: make mounts private, set the hostname, size the IPC
///    namespace (a memory limit without a cgroup), build the box's
///    filesystem and pivot into it;
/// 5. start a new session without a controlling terminal, so the program
///    can never push input into the caller's terminal (`TIOCSTI` needs it
///    to be the caller's own terminal) nor get signals from it; with
///    `keep_terminal` instead own a process group and make it the
///    terminal's foreground group (isolate's `--tty-hack`). Either way the
///    box is a process group the keeper can kill without namespaces. This
///    comes after the filesystem steps, so no file they open can become
///    the session's terminal;
/// 6. without a PID namespace, become a subreaper so orphans stay ours;
/// 7. fork the inmate and reap everything until it ends; report how it
///    ended; then kill every process of the box still alive and reap them
///    all, so the keeper's `wait4` on the proxy counts the CPU time of
///    every process of the run; exit.
///
/// # Safety
/// Runs in the child of `clone3`; only async-signal-safe calls. Every step
/// below has the same contract: it runs once, in this child, in this order.
pub(super) unsafe fn proxy_main(spec: &JailSpec, fds: RawBoxFds) -> ! {
    let report = fds.report;
    // SAFETY: the proxy's first step (see the function's contract).
    unsafe { die_with_keeper() };
    // SAFETY: as above.
    unsafe { install_stop_handler() };
    // SAFETY: as above; the descriptors are the keeper's `tasks` files,
    // open in this child.
    unsafe { join_cgroup(&fds.cgroup_tasks, report) };
    place_on_cpus(spec, report);
    // SAFETY: as above; `fds` are the keeper's descriptors, open in this child.
    unsafe { wire_stdio(fds) };
    let netns = spec.network_namespace.unwrap_or(-1);
    if !spec.inherit_fds {
        // SAFETY: this child owns nothing among the descriptors it closes
        // but the keeper's copies, which it does not need.
        unsafe { close_all_except(3, [report, fds.go, netns]) };
    }
    if netns >= 0 {
        // SAFETY: as for the first step; `netns` is an nsfs descriptor.
        unsafe { join_network(netns, report) };
    }
    // SAFETY: as for the first step.
    unsafe { wait_for_go_ahead(fds.go) };
    // SAFETY: as for the first step.
    let sysctl_dir = unsafe { set_up_namespaces(spec, report) };
    if sysctl_dir >= 0 {
        // SAFETY: opened above, ours, not used again.
        unsafe { libc::close(sysctl_dir) };
    }
    // Opened while /proc is still the host's; after the pivot the box
    // may have no /proc at all.
    // SAFETY: as for the first step.
    let oom_score = unsafe { open_flag_file(c"/proc/self/oom_score_adj", libc::O_WRONLY) };
    if let Some(plan) = &spec.mounts {
        // SAFETY: as for the first step; the plan was prepared before the
        // clone.
        if let Err((step, errno)) = unsafe { plan.enter() } {
            fail_at(report, Stage::Filesystem, errno, step);
        }
    }
    // SAFETY: as for the first step.
    unsafe { start_session(spec.keep_terminal, report) };
    let pid_namespace = spec.namespaces & libc::CLONE_NEWPID as u64 != 0;
    if !pid_namespace {
        // SAFETY: prctl on the calling process only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    // SAFETY: as for the first step.
    let inmate = unsafe { fork_inmate(spec, report) };
    // The OOM killer must take the program, never the proxy: only the
    // proxy can report how the program ended and what it used. Set
    // after the fork so the inmate keeps the default score.
    // SAFETY: as for the first step; `oom_score` is ours or negative.
    unsafe { protect_from_oom(oom_score) };
    // SAFETY: as for the first step; `inmate` is our child.
    let (status, usage) = unsafe { wait_for_inmate(inmate) };
    RawReport::inmate_exited(status, &usage).send(report);
    // SAFETY: as for the first step.
    unsafe { reap_the_rest(pid_namespace) };
    // SAFETY: _exit is async-signal-safe and skips the keeper's atexit
    // handlers and stdio buffers.
    unsafe { libc::_exit(0) }
}

/// Dies when the keeper dies, and gives `SIGCHLD` its default disposition
/// (the keeper may have changed it) so that `waitid` sees every child.
///
/// # Safety
/// A step of [`proxy_main`].
pub(super) unsafe fn die_with_keeper() {
    // SAFETY: prctl with scalar arguments, on the calling process only.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // SAFETY: signal is async-signal-safe and changes only this process.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

/// Installs the [`STOP_SIGNAL`] handler. Installed before the go-ahead, so
/// the keeper's stop request can never meet the default disposition
/// (ignored, for a pid 1).
///
/// # Safety
/// A step of [`proxy_main`].
pub(super) unsafe fn install_stop_handler() {
    // SAFETY: sigaction is plain old data; all-zero is a valid value.
    let mut stop: libc::sigaction = unsafe { std::mem::zeroed() };
    stop.sa_sigaction = kill_inmate as *const () as libc::sighandler_t;
    stop.sa_flags = libc::SA_RESTART;
    // SAFETY: `stop` is a valid sigaction and `kill_inmate` is
    // async-signal-safe.
    unsafe { libc::sigaction(STOP_SIGNAL, &stop, std::ptr::null_mut()) };
}

/// Joins the run's cgroup (cgroup v1) by writing `0`, "this thread", to
/// the `tasks` file of each hierarchy, and closes them. The proxy has a
/// single thread, so this moves the whole process; unlike a move by the
/// keeper it takes no global lock. Done first, so everything the box
/// does, the proxy's own setup included, is limited and counted.
///
/// # Safety
/// A step of [`proxy_main`].
pub(super) unsafe fn join_cgroup(tasks: &[RawFd], report: RawFd) {
    for &fd in tasks.iter().filter(|fd| **fd >= 0) {
        // SAFETY: writes one byte of a static string to a descriptor of
        // this child's own table.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            fail(report, Stage::Cgroup, errno());
        }
        // SAFETY: our own copy of the descriptor, not used again.
        unsafe { libc::close(fd) };
    }
}

/// Places this process, and so everything of the box it starts, on the
/// box's CPUs. After [`join_cgroup`]: joining a cgroup v1 cpuset sets the
/// mask to the cpuset's.
///
/// A step of [`proxy_main`] (and of the holder's setup): one system call.
pub(super) fn place_on_cpus(spec: &JailSpec, report: RawFd) {
    if let Some(cpus) = &spec.cpu_affinity {
        if let Err(errno) = rustix::thread::sched_setaffinity(None, cpus) {
            fail(report, Stage::Affinity, errno.raw_os_error());
        }
    }
}

/// Puts the box's stdin, stdout and stderr onto 0, 1 and 2.
///
/// # Safety
/// A step of [`proxy_main`].
unsafe fn wire_stdio(fds: RawBoxFds) {
    for (source, target) in [(fds.stdin, 0), (fds.stdout, 1), (fds.stderr, 2)] {
        // SAFETY: dup2 on descriptors of this child's own table; the run's
        // descriptors are all above 2 (see sys::above_stdio), so no source
        // is clobbered before it is copied.
        if unsafe { libc::dup2(source, target) } < 0 {
            fail(fds.report, Stage::Stdio, errno());
        }
    }
}

/// Closes every descriptor from `first` up, except those in `keep`
/// (negative entries are ignored).
///
/// # Safety
/// Must only run in a child that owns nothing else among those descriptors.
pub(super) unsafe fn close_all_except(first: RawFd, mut keep: [RawFd; 3]) {
    keep.sort_unstable();
    let mut from = first as u32;
    for fd in keep.into_iter().filter(|fd| *fd >= first) {
        let fd = fd as u32;
        if fd > from {
            // SAFETY: closing descriptors inherited from the keeper only
            // affects this child's copy of the table.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
        }
        from = from.max(fd + 1);
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

/// Joins the network namespace behind `netns` and closes it.
///
/// # Safety
/// A step of [`proxy_main`].
pub(super) unsafe fn join_network(netns: RawFd, report: RawFd) {
    // SAFETY: setns on a descriptor of this child's table.
    if unsafe { libc::setns(netns, libc::CLONE_NEWNET) } != 0 {
        fail(report, Stage::Network, errno());
    }
    // SAFETY: our own copy of the descriptor, not used again.
    unsafe { libc::close(netns) };
}

/// Waits for the keeper's one byte on `go`; without it (the keeper gave up
/// on this run, or died) exits with nothing to report to.
///
/// # Safety
/// A step of [`proxy_main`].
unsafe fn wait_for_go_ahead(go: RawFd) {
    let mut byte = 0u8;
    // SAFETY: reads one byte into a stack variable.
    if unsafe { libc::read(go, (&mut byte as *mut u8).cast(), 1) } != 1 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: our own copy of the descriptor, not used again.
    unsafe { libc::close(go) };
}

/// In the box's new namespaces, still root: mounts private, the box's
/// hostname, the IPC namespace's pools sized. Returns the open
/// `/proc/sys/kernel` when the pools were sized (for a holder, which sizes
/// every namespace it moves to), else -1.
///
/// # Safety
/// A step of [`proxy_main`].
pub(super) unsafe fn set_up_namespaces(spec: &JailSpec, report: RawFd) -> RawFd {
    if spec.namespaces & libc::CLONE_NEWNS as u64 != 0 {
        // SAFETY: in our own mount namespace, before anything else mounts.
        if let Err(errno) = unsafe { mounts::make_mounts_private() } {
            fail(report, Stage::Mounts, errno);
        }
    }
    if spec.namespaces & libc::CLONE_NEWUTS as u64 != 0 {
        // SAFETY: in our own UTS namespace.
        if let Err(errno) = unsafe { namespaces::set_box_hostname() } {
            fail(report, Stage::Hostname, errno);
        }
    }
    if let Some(limits) = spec
        .ipc_limits
        .filter(|_| spec.namespaces & libc::CLONE_NEWIPC as u64 != 0)
    {
        // SAFETY: in our own IPC namespace, before the box's root hides
        // the host's writable /proc; the values were formatted before the
        // clone.
        let sysctl_dir = unsafe { ipc::open_sysctl_dir() };
        if sysctl_dir < 0 {
            fail_at(report, Stage::IpcLimits, errno(), 0);
        }
        // SAFETY: as above.
        if let Err((setting, errno)) = unsafe { limits.apply(sysctl_dir) } {
            fail_at(report, Stage::IpcLimits, errno, setting);
        }
        return sysctl_dir;
    }
    -1
}

/// `open(path, flags | O_CLOEXEC)`; negative when it fails.
///
/// # Safety
/// A step of [`proxy_main`].
pub(super) unsafe fn open_flag_file(path: &std::ffi::CStr, flags: libc::c_int) -> RawFd {
    // SAFETY: a static C string; open is async-signal-safe.
    unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) }
}

/// A session of the box's own, or with `keep_terminal` a process group of
/// its own in the foreground of the terminal on stdout.
///
/// # Safety
/// A step of [`proxy_main`].
pub(super) unsafe fn start_session(keep_terminal: bool, report: RawFd) {
    if !keep_terminal {
        // SAFETY: setsid on the calling process.
        if unsafe { libc::setsid() } < 0 {
            fail(report, Stage::Session, errno());
        }
        return;
    }
    // SAFETY: setpgid on the calling process.
    unsafe { libc::setpgid(0, 0) };
    // SAFETY: isatty on our own stdout.
    if unsafe { libc::isatty(1) } == 1 {
        // A background group asking for the terminal gets SIGTTOU.
        // SAFETY: signal changes only this process's disposition.
        unsafe { libc::signal(libc::SIGTTOU, libc::SIG_IGN) };
        // SAFETY: tcsetpgrp and getpgrp on our own stdout and group.
        unsafe { libc::tcsetpgrp(1, libc::getpgrp()) };
        // SAFETY: as for the first signal call.
        unsafe { libc::signal(libc::SIGTTOU, libc::SIG_DFL) };
    }
}

/// What the inmate's entry point needs, on the proxy's stack.
struct InmateStart<'a> {
    spec: &'a JailSpec,
    report: RawFd,
}

extern "C" fn inmate_entry(start: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `start` is the InmateStart that fork_inmate passed, alive on
    // the proxy's stack while the proxy waits for this child to exec.
    let start = unsafe { &*start.cast::<InmateStart<'_>>() };
    // SAFETY: we are the new inmate; inmate_main never returns.
    unsafe { inmate::inmate_main(start.spec, start.report) }
}

/// Starts the inmate, which runs [`inmate::inmate_main`] on a stack of
/// its own in the proxy's memory, and waits until it has executed the
/// program (or failed); records its pid for the stop handler.
///
/// # Safety
/// A step of [`proxy_main`].
unsafe fn fork_inmate(spec: &JailSpec, report: RawFd) -> libc::pid_t {
    // The stop signal waits until the pid is recorded: the proxy is
    // suspended while the inmate sets up, and a stop request taken before
    // the store would find no inmate to kill.
    // SAFETY: sigset_t is plain old data; all-zero is a valid value.
    let mut stop: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `stop` is a valid sigset_t to fill in; the mask changes only
    // this process's, and the inmate sets its own.
    unsafe {
        libc::sigemptyset(&mut stop);
        libc::sigaddset(&mut stop, STOP_SIGNAL);
        libc::sigprocmask(libc::SIG_BLOCK, &stop, std::ptr::null_mut());
    }
    let mut start = InmateStart { spec, report };
    // SAFETY: inmate_entry runs only inmate_main (async-signal-safe, never
    // returns) and touches only its stack and `start`, which outlives the
    // wait; this proxy starts one inmate.
    let inmate = unsafe {
        namespaces::spawn_sharing_memory(inmate_entry, (&mut start as *mut InmateStart<'_>).cast())
    };
    if inmate < 0 {
        fail(report, Stage::ForkInmate, errno());
    }
    INMATE_PID.store(inmate, Ordering::Relaxed);
    // SAFETY: as for the block above.
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &stop, std::ptr::null_mut()) };
    inmate
}

/// Writes `-1000` to the proxy's `oom_score_adj` (opened as `oom_score`
/// before the pivot) and closes it.
///
/// # Safety
/// A step of [`proxy_main`].
unsafe fn protect_from_oom(oom_score: RawFd) {
    if oom_score < 0 {
        return;
    }
    // SAFETY: writes five bytes of a static string to our own descriptor.
    unsafe { libc::write(oom_score, b"-1000".as_ptr().cast(), 5) };
    // SAFETY: our own descriptor, not used again.
    unsafe { libc::close(oom_score) };
}

/// Reaps every child until the inmate ends: its wait status and its
/// rusage.
///
/// # Safety
/// A step of [`proxy_main`].
pub(super) unsafe fn wait_for_inmate(inmate: libc::pid_t) -> (libc::c_int, libc::rusage) {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain old data; all-zero is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid for writes for the call.
        let pid = unsafe { libc::wait4(-1, &mut status, libc::__WALL, &mut usage) };
        if pid == inmate {
            return (status, usage);
        }
        if pid < 0 && errno() != libc::EINTR {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(1) };
        }
    }
}

/// Kills every process of the box that outlived the inmate and reaps them
/// all, so their CPU time lands in the proxy's children's rusage (which
/// the keeper reads with `wait4`) instead of vanishing with them.
///
/// Killing again before every wait closes the race with a process that
/// forks while the others die.
///
/// # Safety
/// Runs in the proxy; only async-signal-safe calls.
pub(super) unsafe fn reap_the_rest(pid_namespace: bool) {
    loop {
        if pid_namespace {
            // As pid 1 of the namespace, -1 reaches every other process of
            // the box and nothing outside it. (Never without the namespace:
            // there it would be every process of the host.)
            // SAFETY: kill is async-signal-safe.
            unsafe { libc::kill(-1, libc::SIGKILL) };
        } else {
            // SAFETY: as on this function.
            unsafe { kill_own_children() };
        }
        // SAFETY: wait4 with a null rusage only reaps.
        let pid =
            unsafe { libc::wait4(-1, std::ptr::null_mut(), libc::__WALL, std::ptr::null_mut()) };
        if pid < 0 && errno() != libc::EINTR {
            return;
        }
    }
}

/// Without a PID namespace: SIGKILLs the proxy's direct children, listed
/// by `/proc/thread-self/children`. As a subreaper the proxy inherits
/// every orphan of the box, so killing children until none is left
/// reaches every descendant, including those that left the process group.
/// A child's pid cannot be reused before the proxy reaps it, so no pid
/// read here names a stranger.
///
/// # Safety
/// Runs in the proxy; only async-signal-safe calls.
unsafe fn kill_own_children() {
    let mut buffer = [0u8; 4096];
    // SAFETY: a static C string; open is async-signal-safe.
    let fd = unsafe {
        libc::open(
            c"/proc/thread-self/children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    // SAFETY: reads at most the stack buffer's length into it.
    let read = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
    // SAFETY: the descriptor just opened, not used again.
    unsafe { libc::close(fd) };
    let Ok(read) = usize::try_from(read) else {
        return;
    };
    // Each pid is followed by a space; a number cut off at the end of
    // the buffer has none and is left for the next round.
    let mut pid: libc::pid_t = 0;
    let mut digits = false;
    for &byte in &buffer[..read] {
        if byte.is_ascii_digit() {
            pid = pid
                .saturating_mul(10)
                .saturating_add((byte - b'0') as libc::pid_t);
            digits = true;
        } else {
            if digits && pid > 1 {
                // SAFETY: `pid` is our own child, not yet reaped, so it
                // names no other process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            pid = 0;
            digits = false;
        }
    }
}
