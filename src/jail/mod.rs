//! The child side of a run: everything between `clone` and `execve`.
//!
//! The keeper prepares a [`JailSpec`] (every string and limit, allocated
//! up front) and calls [`spawn`]. The new process is the *proxy*: pid 1 of
//! the box's namespaces, it forks the *inmate*, which drops to the box's
//! credentials and executes the program, and then reaps everything until the
//! inmate ends. Between the clone and `execve` both run only the
//! async-signal-safe steps listed on `proxy::proxy_main` and
//! `inmate::inmate_main`, one function per step. The keeper-side system
//! calls around a run live in `crate::sys`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) mod credentials;
mod holder;
mod inmate;
pub(crate) mod ipc;
pub(crate) mod mounts;
pub(crate) mod namespaces;
mod proxy;
pub(crate) mod report;
pub(crate) mod rlimits;
pub(crate) mod seccomp;
mod seccomp_i386;
mod seccomp_x86_64;

pub(crate) use credentials::Credentials;
pub(crate) use holder::Holder;
pub(crate) use mounts::{MountPlan, TmpfsSizes};
pub(crate) use proxy::STOP_SIGNAL;
pub(crate) use report::{ChildReport, Stage};
pub(crate) use rlimits::{RlimitRequest, Rlimits};
pub use seccomp::SeccompError;
pub(crate) use seccomp::{PolicyOptions, SeccompPolicy};

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

/// `value` as a C string for the child side; `what` names it in the error.
fn c_string(what: &str, value: impl Into<Vec<u8>>) -> Result<CString, JailError> {
    crate::sys::c_string(value).map_err(|_| JailError::NulByte(what.to_string()))
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
pub(crate) struct JailSpec {
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
    cpu_affinity: Option<rustix::thread::CpuSet>,
}

/// Where the program runs and what its standard streams are, as the
/// program sees them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunPaths<'a> {
    /// The box directory: relative stdio files are opened from here.
    pub box_dir: &'a Path,
    /// The program's working directory.
    pub cwd: &'a Path,
    /// Where a program named without a `/` is looked up (`PATH`'s syntax).
    pub search_path: &'a str,
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
pub(crate) struct Isolation {
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
    /// The CPUs the box's processes are placed on.
    pub cpu_affinity: Option<rustix::thread::CpuSet>,
}

impl JailSpec {
    /// Prepares a run of `command` (the program is looked up along
    /// [`RunPaths::search_path`] when it has no `/`, as `execvp` would).
    pub(crate) fn new(
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
            .map(|arg| c_string("an argument", arg.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = environment
            .iter()
            .map(|(name, value)| c_string("an environment variable", format!("{name}={value}")))
            .collect::<Result<Vec<_>, _>>()?;
        let search_path = paths.search_path;
        let candidates = if program.contains('/') || program.is_empty() {
            vec![c_string("the program path", program)?]
        } else {
            search_path
                .split(':')
                .map(|dir| {
                    let dir = if dir.is_empty() { "." } else { dir };
                    c_string("the program path", format!("{dir}/{program}"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
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
            cpu_affinity: isolation.cpu_affinity,
        })
    }

    /// Whether a warm box ([`Holder`]) can serve runs of this spec: it
    /// has a PID and a mount namespace, and its writable mounts can be
    /// renewed between runs.
    pub(crate) fn can_be_held(&self) -> bool {
        let needed = (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC) as u64;
        self.namespaces & needed == needed
            && !self.inherit_fds
            && !self.keep_terminal
            && self.mounts.as_ref().is_some_and(MountPlan::renewable)
    }

    /// Whether a holder of this spec can be given another working
    /// directory before its first run (see [`Holder::attach_workdir`]).
    pub(crate) fn workdir_replaceable(&self) -> bool {
        self.mounts
            .as_ref()
            .is_some_and(MountPlan::workdir_replaceable)
    }

    /// Describes mount step `index` of a [`Stage::Filesystem`] failure.
    pub(crate) fn describe_mount_step(&self, index: u32) -> &str {
        self.mounts
            .as_ref()
            .map_or("entering the new root", |plan| plan.describe(index))
    }
}

/// The descriptors a box is started with, all close-on-exec in the keeper.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoxFds<'a> {
    /// Becomes the program's stdin.
    pub stdin: BorrowedFd<'a>,
    /// Becomes the program's stdout.
    pub stdout: BorrowedFd<'a>,
    /// Becomes the program's stderr.
    pub stderr: BorrowedFd<'a>,
    /// Write end of the status pipe.
    pub report: BorrowedFd<'a>,
    /// Read end of the go-ahead pipe: the proxy waits for one byte on it,
    /// so the keeper can record it (and, where it must, move it into the
    /// run's cgroup) before anything runs.
    pub go: BorrowedFd<'a>,
}

/// The proxy as the keeper sees it.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// Host pid of the proxy (also the box's process group).
    pub pid: libc::pid_t,
    /// pidfd of the proxy: readable once it has exited.
    pub pidfd: OwnedFd,
    /// The proxy is in the run's cgroup before it runs anything of the box:
    /// born there (`CLONE_INTO_CGROUP`) or joining it as its first step.
    pub in_cgroup: bool,
}

/// How the proxy gets into the run's cgroup.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CgroupEntry<'a> {
    /// The run has no cgroup.
    None,
    /// cgroup v2: born inside this cgroup directory
    /// (`clone3(CLONE_INTO_CGROUP)`); if the kernel refuses, the proxy is
    /// created outside and [`Proxy::in_cgroup`] is false, for the caller
    /// to move it.
    Born(BorrowedFd<'a>),
    /// cgroup v1: the proxy joins by writing `0` to each of these `tasks`
    /// files, its first step, before it waits for the go-ahead; if one
    /// write fails, the run ends with a [`Stage::Cgroup`] report.
    Join(&'a [std::fs::File]),
}

/// The most `tasks` files [`CgroupEntry::Join`] takes (v1 hierarchies).
const MAX_TASK_FILES: usize = 8;

/// Starts the proxy of a box, entering its cgroup as `cgroup` says.
pub(crate) fn spawn(
    spec: &JailSpec,
    fds: BoxFds<'_>,
    cgroup: CgroupEntry<'_>,
) -> Result<Proxy, JailError> {
    let namespaces = spec.namespaces;
    let mut raw = RawBoxFds {
        stdin: fds.stdin.as_raw_fd(),
        stdout: fds.stdout.as_raw_fd(),
        stderr: fds.stderr.as_raw_fd(),
        report: fds.report.as_raw_fd(),
        go: fds.go.as_raw_fd(),
        cgroup_tasks: [-1; MAX_TASK_FILES],
    };
    let mut born_in = None;
    let mut joins = false;
    match cgroup {
        CgroupEntry::None => {}
        CgroupEntry::Born(fd) => born_in = Some(fd.as_raw_fd()),
        CgroupEntry::Join(files) => {
            if files.len() > MAX_TASK_FILES {
                return Err(JailError::Syscall {
                    call: "joining the run's cgroup",
                    source: std::io::Error::other("too many cgroup hierarchies"),
                });
            }
            for (slot, file) in raw.cgroup_tasks.iter_mut().zip(files) {
                *slot = file.as_raw_fd();
            }
            joins = true;
        }
    }
    loop {
        // SAFETY: the child branch below runs only proxy_main, which is
        // async-signal-safe and never returns.
        match unsafe { namespaces::clone_box(namespaces, born_in) } {
            Ok(namespaces::Cloned::Child) => {
                // SAFETY: we are the freshly cloned child; `spec` and `raw`
                // are our private copies of the keeper's memory.
                unsafe { proxy::proxy_main(spec, raw) }
            }
            Ok(namespaces::Cloned::Parent { pid, pidfd }) => {
                return Ok(Proxy {
                    pid,
                    // SAFETY: clone3 with CLONE_PIDFD stored a new descriptor
                    // that nothing else owns.
                    pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
                    in_cgroup: born_in.is_some() || joins,
                });
            }
            // Kernels before 5.7 or cgroups that refuse CLONE_INTO_CGROUP:
            // fall back to moving the proxy after the clone.
            Err(err) if born_in.is_some() && err.raw_os_error() != Some(libc::EAGAIN) => {
                tracing::debug!("clone3 into the cgroup failed ({err}); moving the proxy instead");
                born_in = None;
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
    /// `tasks` files the proxy writes `0` to (unused slots -1).
    cgroup_tasks: [RawFd; MAX_TASK_FILES],
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
