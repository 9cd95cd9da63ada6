//! The child side of a run: everything between `clone` and `execve`.
//!
//! The keeper prepares a [`JailSpec`] (every string and limit, allocated
//! up front) and calls [`spawn`]. The new process is the *proxy*: pid 1 of
//! the box's namespaces, it forks the *inmate*, which drops to the box's
//! credentials and executes the program, and then reaps everything until the
//! inmate ends. Between the clone and `execve` both run only the
//! async-signal-safe steps listed on `proxy_main` and `inmate_main`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

pub mod credentials;
pub mod ipc;
pub mod mounts;
pub mod namespaces;
pub mod report;
pub mod rlimits;
pub mod seccomp;
mod seccomp_i386;
pub mod sys;

pub use credentials::Credentials;
pub use mounts::{MountPlan, TmpfsSizes};
pub use report::{ChildReport, Stage};
pub use rlimits::Rlimits;
pub use seccomp::{PolicyOptions, SeccompError, SeccompPolicy};

use report::RawReport;

/// Errors of setting up the jail on the keeper side.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// A string handed to `execve` contains a NUL byte.
    #[error("{0} contains a NUL byte")]
    NulByte(String),
    /// A directory rule names a host path that does not exist.
    #[error(
        "directory rule {rule}: {source_path} does not exist (add the 'maybe' option to skip it)"
    )]
    MissingSource {
        /// The inside path of the rule.
        rule: String,
        /// The missing host path.
        source_path: String,
    },
    /// A directory rule's source cannot be opened safely: a symbolic link
    /// where root does not follow one, or another error on the way.
    #[error("directory rule {rule}: {reason}")]
    UnsafeSource {
        /// The inside path of the rule.
        rule: String,
        /// What is wrong with the source.
        reason: String,
    },
    /// The seccomp policy cannot be built.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// A system call failed.
    #[error("{call}: {source}")]
    Syscall {
        /// The call.
        call: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn c_string(what: &str, value: &[u8]) -> Result<CString, JailError> {
    CString::new(value).map_err(|_| JailError::NulByte(what.to_string()))
}

/// A NULL-terminated array of pointers into `strings` (which must outlive it).
fn pointer_array(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Everything the child side needs, prepared before the fork so that the
/// child allocates nothing.
#[derive(Debug)]
pub struct JailSpec {
    /// Paths to try with `execve`, in `PATH` order.
    candidates: Vec<CString>,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    box_dir: CString,
    cwd: CString,
    stdio_files: [Option<CString>; 3],
    stderr_to_stdout: bool,
    inherit_fds: bool,
    keep_terminal: bool,
    rlimits: Rlimits,
    credentials: Option<Credentials>,
    namespaces: u64,
    mounts: Option<MountPlan>,
    seccomp: Option<SeccompPolicy>,
    network_namespace: Option<RawFd>,
    ipc_limits: Option<ipc::IpcLimits>,
}

/// Where the program runs and what its standard streams are, as the
/// program sees them.
#[derive(Debug, Clone, Copy)]
pub struct RunPaths<'a> {
    /// The box directory: relative stdio files are opened from here.
    pub box_dir: &'a Path,
    /// The program's working directory.
    pub cwd: &'a Path,
    /// Files opened as stdin, stdout and stderr, by the program's user,
    /// before the working directory is entered (isolate's `-i/-o/-r`).
    pub stdio_files: [Option<&'a Path>; 3],
    /// stderr goes wherever stdout goes.
    pub stderr_to_stdout: bool,
    /// Keep the descriptors the keeper inherited without close-on-exec.
    pub inherit_fds: bool,
    /// Stay in the keeper's session and make the box the foreground process
    /// group of the terminal on stdout (isolate's `--tty-hack`); otherwise
    /// the box runs in a session of its own, without a controlling terminal.
    pub keep_terminal: bool,
}

/// How the box is isolated, beyond what every run gets.
#[derive(Debug, Default)]
pub struct Isolation {
    /// New namespaces (`CLONE_NEW*` flags); 0 runs without any.
    pub namespaces: u64,
    /// The box's filesystem; needs a mount namespace.
    pub mounts: Option<MountPlan>,
    /// The system-call filter.
    pub seccomp: Option<SeccompPolicy>,
    /// A network namespace to join instead of creating one (`namespaces`
    /// then lacks `CLONE_NEWNET`). The descriptor must stay open until
    /// [`spawn`] returns.
    pub network_namespace: Option<RawFd>,
    /// Sizes of the new IPC namespace's pools (needs `CLONE_NEWIPC`).
    pub ipc_limits: Option<ipc::IpcLimits>,
}

impl JailSpec {
    /// Prepares a run of `command` (the program is looked up in the `PATH` of
    /// `environment` when it has no `/`, as `execvp` would).
    pub fn new(
        command: &[String],
        environment: &[(String, String)],
        paths: &RunPaths<'_>,
        rlimits: Rlimits,
        credentials: Option<Credentials>,
        isolation: Isolation,
    ) -> Result<Self, JailError> {
        let program = command.first().map(String::as_str).unwrap_or_default();
        let argv = command
            .iter()
            .map(|arg| c_string("an argument", arg.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = environment
            .iter()
            .map(|(name, value)| {
                c_string(
                    "an environment variable",
                    format!("{name}={value}").as_bytes(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let search_path = environment
            .iter()
            .rev()
            .find(|(name, _)| name == "PATH")
            .map(|(_, value)| value.as_str())
            .unwrap_or(crate::types::DEFAULT_PATH);
        let candidates = if program.contains('/') || program.is_empty() {
            vec![c_string("the program path", program.as_bytes())?]
        } else {
            search_path
                .split(':')
                .map(|dir| {
                    let dir = if dir.is_empty() { "." } else { dir };
                    c_string("the program path", format!("{dir}/{program}").as_bytes())
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        use std::os::unix::ffi::OsStrExt;
        let path = |what: &str, path: &Path| c_string(what, path.as_os_str().as_bytes());
        let mut stdio_files = [None, None, None];
        for (slot, file) in stdio_files.iter_mut().zip(paths.stdio_files) {
            *slot = file.map(|file| path("a stdio file", file)).transpose()?;
        }
        Ok(Self {
            box_dir: path("the box directory", paths.box_dir)?,
            cwd: path("the working directory", paths.cwd)?,
            stdio_files,
            stderr_to_stdout: paths.stderr_to_stdout,
            inherit_fds: paths.inherit_fds,
            keep_terminal: paths.keep_terminal,
            candidates,
            argv_ptrs: pointer_array(&argv),
            _argv: argv,
            envp_ptrs: pointer_array(&envp),
            _envp: envp,
            rlimits,
            credentials,
            namespaces: isolation.namespaces,
            mounts: isolation.mounts,
            seccomp: isolation.seccomp,
            network_namespace: isolation.network_namespace,
            ipc_limits: isolation.ipc_limits,
        })
    }

    /// Describes mount step `index` of a [`Stage::Filesystem`] failure.
    pub fn describe_mount_step(&self, index: u32) -> &str {
        self.mounts
            .as_ref()
            .map_or("entering the new root", |plan| plan.describe(index))
    }
}

/// The descriptors a box is started with, all close-on-exec in the keeper.
#[derive(Debug, Clone, Copy)]
pub struct BoxFds<'a> {
    /// Becomes the program's stdin.
    pub stdin: BorrowedFd<'a>,
    /// Becomes the program's stdout.
    pub stdout: BorrowedFd<'a>,
    /// Becomes the program's stderr.
    pub stderr: BorrowedFd<'a>,
    /// Write end of the status pipe.
    pub report: BorrowedFd<'a>,
    /// Read end of the go-ahead pipe: the proxy waits for one byte on it,
    /// so the keeper can move it into cgroups before anything runs.
    pub go: BorrowedFd<'a>,
}

/// The proxy as the keeper sees it.
#[derive(Debug)]
pub struct Proxy {
    /// Host pid of the proxy (also the box's process group).
    pub pid: libc::pid_t,
    /// pidfd of the proxy: readable once it has exited.
    pub pidfd: OwnedFd,
    /// The proxy was born inside the run's cgroup (`CLONE_INTO_CGROUP`).
    pub in_cgroup: bool,
}

/// Starts the proxy of a box. When `cgroup_fd` is given the proxy is created
/// inside that cgroup; if the kernel refuses, it is created outside and
/// [`Proxy::in_cgroup`] says so, for the caller to move it.
pub fn spawn(
    spec: &JailSpec,
    fds: BoxFds<'_>,
    cgroup_fd: Option<BorrowedFd<'_>>,
) -> Result<Proxy, JailError> {
    let namespaces = spec.namespaces;
    let raw = RawBoxFds {
        stdin: fds.stdin.as_raw_fd(),
        stdout: fds.stdout.as_raw_fd(),
        stderr: fds.stderr.as_raw_fd(),
        report: fds.report.as_raw_fd(),
        go: fds.go.as_raw_fd(),
    };
    let mut cgroup = cgroup_fd.map(|fd| fd.as_raw_fd());
    loop {
        // SAFETY: the child branch below runs only proxy_main, which is
        // async-signal-safe and never returns.
        match unsafe { namespaces::clone_box(namespaces, cgroup) } {
            Ok(namespaces::Cloned::Child) => {
                // SAFETY: we are the freshly cloned child; `spec` and `raw`
                // are our private copies of the keeper's memory.
                unsafe { proxy_main(spec, raw) }
            }
            Ok(namespaces::Cloned::Parent { pid, pidfd }) => {
                return Ok(Proxy {
                    pid,
                    // SAFETY: clone3 with CLONE_PIDFD stored a new descriptor
                    // that nothing else owns.
                    pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
                    in_cgroup: cgroup.is_some(),
                });
            }
            // Kernels before 5.7 or cgroups that refuse CLONE_INTO_CGROUP:
            // fall back to moving the proxy after the clone.
            Err(err) if cgroup.is_some() && err.raw_os_error() != Some(libc::EAGAIN) => {
                tracing::debug!("clone3 into the cgroup failed ({err}); moving the proxy instead");
                cgroup = None;
            }
            Err(source) => {
                return Err(JailError::Syscall {
                    call: "clone3",
                    source,
                })
            }
        }
    }
}

#[derive(Clone, Copy)]
struct RawBoxFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    report: RawFd,
    go: RawFd,
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The signal the keeper sends the proxy to end a run: the proxy kills the
/// inmate, reaps it and reports its rusage before the box goes away, so a
/// killed run still has its max RSS and context switches. (A SIGKILL to the
/// proxy would take the inmate's figures with it; the keeper sends one only
/// if the proxy does not end promptly.)
pub const STOP_SIGNAL: libc::c_int = libc::SIGUSR1;

/// The inmate's pid inside the box; written by the proxy after the fork and
/// read by its [`STOP_SIGNAL`] handler. Each process has its own copy.
static INMATE_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn kill_inmate(_signal: libc::c_int) {
    let pid = INMATE_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; `pid` is our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Reports a failed step and ends the calling child process.
fn fail(report: RawFd, stage: Stage, errno: i32) -> ! {
    fail_at(report, stage, errno, 0)
}

/// Like [`fail`], naming which part of the step failed.
fn fail_at(report: RawFd, stage: Stage, errno: i32, detail: u32) -> ! {
    RawReport::setup_failed(stage, errno, detail).send(report);
    // SAFETY: _exit is async-signal-safe and skips atexit handlers and
    // stdio flushing that belong to the keeper.
    unsafe { libc::_exit(127) }
}

/// Closes every descriptor from `first` up, except those in `keep`
/// (negative entries are ignored).
///
/// # Safety
/// Must only run in a child that owns nothing else among those descriptors.
unsafe fn close_all_except(first: RawFd, mut keep: [RawFd; 3]) {
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

/// The proxy's steps, in order:
/// 1. die with the keeper (`PR_SET_PDEATHSIG`), default `SIGCHLD` handling;
/// 2. wire stdio onto 0–2 and close every other inherited descriptor, so
///    another run's pipes never stay open because of this box;
/// 3. wait for the keeper's go-ahead (it moves us into the cgroup first);
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
/// Runs in the child of `clone3`; only async-signal-safe calls.
unsafe fn proxy_main(spec: &JailSpec, fds: RawBoxFds) -> ! {
    let report = fds.report;
    // SAFETY (whole block): every call is an async-signal-safe system call
    // on descriptors and memory this child owns; nothing allocates.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        // Installed before the go-ahead, so the keeper's stop request can
        // never meet the default disposition (ignored, for a pid 1).
        let mut stop: libc::sigaction = std::mem::zeroed();
        stop.sa_sigaction = kill_inmate as *const () as libc::sighandler_t;
        stop.sa_flags = libc::SA_RESTART;
        libc::sigaction(STOP_SIGNAL, &stop, std::ptr::null_mut());

        if libc::dup2(fds.stdin, 0) < 0
            || libc::dup2(fds.stdout, 1) < 0
            || libc::dup2(fds.stderr, 2) < 0
        {
            fail(report, Stage::Stdio, errno());
        }
        let netns = spec.network_namespace.unwrap_or(-1);
        if !spec.inherit_fds {
            close_all_except(3, [report, fds.go, netns]);
        }
        if netns >= 0 {
            if libc::setns(netns, libc::CLONE_NEWNET) != 0 {
                fail(report, Stage::Network, errno());
            }
            libc::close(netns);
        }

        let mut byte = 0u8;
        if libc::read(fds.go, (&mut byte as *mut u8).cast(), 1) != 1 {
            // The keeper gave up on this run (or died); nothing to report to.
            libc::_exit(1);
        }
        libc::close(fds.go);

        if spec.namespaces & libc::CLONE_NEWNS as u64 != 0 {
            if let Err(errno) = mounts::make_mounts_private() {
                fail(report, Stage::Mounts, errno);
            }
        }
        if spec.namespaces & libc::CLONE_NEWUTS as u64 != 0 {
            if let Err(errno) = namespaces::set_box_hostname() {
                fail(report, Stage::Hostname, errno);
            }
        }
        // Still root, in the box's own IPC namespace.
        if let Some(limits) = spec
            .ipc_limits
            .filter(|_| spec.namespaces & libc::CLONE_NEWIPC as u64 != 0)
        {
            if let Err((setting, errno)) = limits.apply() {
                fail_at(report, Stage::IpcLimits, errno, setting);
            }
        }
        // Opened while /proc is still the host's; after the pivot the box
        // may have no /proc at all.
        let oom_score = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if let Some(plan) = &spec.mounts {
            if let Err((step, errno)) = plan.enter() {
                fail_at(report, Stage::Filesystem, errno, step);
            }
        }
        // The box's own /proc (the host's without a mount namespace), to
        // read the inmate's limits when it dies of SIGXCPU; may be absent.
        let proc_dir = libc::open(
            c"/proc".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if spec.keep_terminal {
            libc::setpgid(0, 0);
            if libc::isatty(1) == 1 {
                // A background group asking for the terminal gets SIGTTOU.
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(1, libc::getpgrp());
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            }
        } else if libc::setsid() < 0 {
            fail(report, Stage::Session, errno());
        }
        let pid_namespace = spec.namespaces & libc::CLONE_NEWPID as u64 != 0;
        if !pid_namespace {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }

        let inmate = namespaces::raw_fork();
        if inmate == 0 {
            inmate_main(spec, report);
        }
        if inmate < 0 {
            fail(report, Stage::ForkInmate, errno());
        }
        INMATE_PID.store(inmate, Ordering::Relaxed);
        // The OOM killer must take the program, never the proxy: only the
        // proxy can report how the program ended and what it used. Set
        // after the fork so the inmate keeps the default score.
        if oom_score >= 0 {
            libc::write(oom_score, b"-1000".as_ptr().cast(), 5);
            libc::close(oom_score);
        }
        loop {
            // Look before reaping: a dead inmate's /proc entry (and its
            // limits) lasts only until it is reaped.
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let options = libc::WEXITED | libc::WNOWAIT | libc::__WALL;
            if libc::waitid(libc::P_ALL, 0, &mut info, options) != 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                libc::_exit(1);
            }
            let pid = info.si_pid();
            if pid != inmate {
                libc::wait4(
                    pid,
                    std::ptr::null_mut(),
                    libc::__WALL,
                    std::ptr::null_mut(),
                );
                continue;
            }
            let killed = info.si_code == libc::CLD_KILLED || info.si_code == libc::CLD_DUMPED;
            let kernel_sigxcpu = killed
                && info.si_status() == libc::SIGXCPU
                && spec
                    .rlimits
                    .cpu_soft_seconds()
                    .is_some_and(|soft| cpu_rlimit_raised(proc_dir, pid, soft));
            let mut status = 0;
            let mut usage: libc::rusage = std::mem::zeroed();
            while libc::wait4(inmate, &mut status, libc::__WALL, &mut usage) != inmate {
                if errno() != libc::EINTR {
                    libc::_exit(1);
                }
            }
            RawReport::inmate_exited(status, &usage, kernel_sigxcpu).send(report);
            reap_the_rest(pid_namespace);
            libc::_exit(0);
        }
    }
}

/// Whether the `RLIMIT_CPU` soft limit of the dead (not yet reaped) process
/// `pid` is above `soft` seconds, read from `<proc_dir>/<pid>/limits`. The
/// kernel raises the soft limit by a second each time it sends `SIGXCPU`
/// for it, and nothing else can (the program may lower its own limits, not
/// raise them past the hard one, which sits a second above), so a raised
/// limit tells the kernel's `SIGXCPU` from one the program sent itself.
///
/// # Safety
/// Runs in the proxy; only async-signal-safe calls.
unsafe fn cpu_rlimit_raised(proc_dir: RawFd, pid: libc::pid_t, soft: u64) -> bool {
    if proc_dir < 0 || pid <= 0 {
        return false;
    }
    // "<pid>/limits\0", written backwards from the end of the buffer.
    let mut path = [0u8; 32];
    let suffix = b"/limits\0";
    let mut start = path.len() - suffix.len();
    path[start..].copy_from_slice(suffix);
    let mut rest = pid as u32;
    loop {
        start -= 1;
        path[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut text = [0u8; 4096];
    // SAFETY: openat/read/close on a stack buffer and our own descriptor.
    let read = unsafe {
        let fd = libc::openat(
            proc_dir,
            path[start..].as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return false;
        }
        let read = libc::read(fd, text.as_mut_ptr().cast(), text.len());
        libc::close(fd);
        read
    };
    let Ok(read) = usize::try_from(read) else {
        return false;
    };
    let text = &text[..read];
    let label = b"Max cpu time";
    let Some(at) = text.windows(label.len()).position(|window| window == label) else {
        return false;
    };
    let mut value: u64 = 0;
    let mut digits = false;
    for &byte in &text[at + label.len()..] {
        match byte {
            b' ' if !digits => {}
            b'0'..=b'9' => {
                value = value
                    .saturating_mul(10)
                    .saturating_add(u64::from(byte - b'0'));
                digits = true;
            }
            // "unlimited", or the end of the number.
            _ => break,
        }
    }
    digits && value > soft
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
unsafe fn reap_the_rest(pid_namespace: bool) {
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
    // SAFETY (whole block): open/read/close/kill on a stack buffer.
    unsafe {
        let fd = libc::open(
            c"/proc/thread-self/children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let read = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
        libc::close(fd);
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
                    libc::kill(pid, libc::SIGKILL);
                }
                pid = 0;
                digits = false;
            }
        }
    }
}

/// Keeper side, after a run with [`RunPaths::keep_terminal`]: makes the
/// keeper's process group the foreground group of the terminal on stdout
/// again, as isolate does after `--tty-hack`, so the caller's shell gets its
/// terminal back.
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

/// The inmate's steps, in order: default signal dispositions and an empty
/// mask (the keeper may ignore `SIGPIPE`), working directory, rlimits, the
/// capability bounding set, uid/gid, every remaining capability and
/// `no_new_privs`, the seccomp filter, then `execve` along the `PATH`
/// candidates.
///
/// # Safety
/// Runs in a forked child; only async-signal-safe calls.
unsafe fn inmate_main(spec: &JailSpec, report: RawFd) -> ! {
    // SAFETY (whole block): async-signal-safe system calls on memory
    // prepared before the fork; nothing allocates.
    unsafe {
        for signal in 1..libc::SIGRTMAX() {
            // Fails harmlessly for SIGKILL and SIGSTOP.
            libc::signal(signal, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            fail(report, Stage::Signals, errno());
        }
        if libc::chdir(spec.box_dir.as_ptr()) != 0 {
            fail(report, Stage::Chdir, errno());
        }
        if let Err(errno) = spec.rlimits.apply() {
            fail(report, Stage::Rlimits, errno);
        }
        Rlimits::reset_priority();
        // The bounding set needs CAP_SETPCAP, so it goes before the uid.
        credentials::drop_bounding_set();
        if let Some(credentials) = spec.credentials {
            if let Err(errno) = credentials.apply() {
                fail(report, Stage::Credentials, errno);
            }
        }
        // As the box's user, so a file the user may not read stays closed.
        for (fd, file) in spec.stdio_files.iter().enumerate() {
            if let Some(file) = file {
                let flags = if fd == 0 {
                    libc::O_RDONLY
                } else {
                    libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
                };
                let opened = libc::open(file.as_ptr(), flags | libc::O_CLOEXEC, 0o666);
                if opened < 0 || libc::dup2(opened, fd as RawFd) < 0 {
                    fail_at(report, Stage::Stdio, errno(), fd as u32);
                }
                libc::close(opened);
            }
        }
        if spec.stderr_to_stdout && libc::dup2(1, 2) < 0 {
            fail_at(report, Stage::Stdio, errno(), 2);
        }
        if libc::chdir(spec.cwd.as_ptr()) != 0 {
            fail(report, Stage::Chdir, errno());
        }
        if let Err(errno) = credentials::drop_capabilities() {
            fail(report, Stage::Capabilities, errno);
        }
        if let Some(policy) = &spec.seccomp {
            if let Err(errno) = policy.install() {
                fail(report, Stage::Seccomp, errno);
            }
        }
        // execvp's rule: keep looking past missing entries, but report a
        // permission problem over "not found" if nothing runs.
        let mut exec_errno = libc::ENOENT;
        for candidate in &spec.candidates {
            libc::execve(
                candidate.as_ptr(),
                spec.argv_ptrs.as_ptr(),
                spec.envp_ptrs.as_ptr(),
            );
            match errno() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => exec_errno = libc::EACCES,
                other => {
                    exec_errno = other;
                    break;
                }
            }
        }
        fail(report, Stage::Exec, exec_errno)
    }
}
