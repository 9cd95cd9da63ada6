//! Creating the box's process: `clone3` into fresh namespaces (and, on
//! cgroup v2, straight into the run's cgroup), and naming its UTS namespace.

use std::os::fd::RawFd;

/// `clone3`'s argument block (linux/sched.h, version 2 with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Namespaces every box gets: its own pids (the proxy is pid 1), mounts,
/// network, System V IPC and hostname.
pub(crate) const BOX_NAMESPACES: u64 = (libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS) as u64;

/// What `clone3` returned to the caller.
pub(crate) enum Cloned {
    /// We are the new process.
    Child,
    /// We are the keeper; the child has this pid and pidfd.
    Parent {
        /// Host pid of the child.
        pid: libc::pid_t,
        /// A pidfd referring to the child.
        pidfd: RawFd,
    },
}

/// Forks like `fork(2)` (the child continues on a copy of this stack) but
/// with `namespaces`, a pidfd, and optionally born inside `cgroup_fd`.
///
/// # Safety
/// In a multi-threaded process the child may only run async-signal-safe
/// code until it execs or exits; the caller's child branch must honour that.
pub(crate) unsafe fn clone_box(
    namespaces: u64,
    cgroup_fd: Option<RawFd>,
) -> std::io::Result<Cloned> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: namespaces | CLONE_PIDFD,
        pidfd: (&mut pidfd as *mut RawFd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: `args` is a valid clone_args block for its full size and lives
    // across the call; with a zero stack the child runs on a private copy of
    // this stack, as after fork(2).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent {
            pid: pid as libc::pid_t,
            pidfd,
        }),
    }
}

/// Child side: a plain fork with no namespaces, no handlers and no locks
/// (glibc's `fork` runs atfork handlers that may take locks another thread
/// of the keeper held at clone time).
///
/// # Safety
/// Same as [`clone_box`].
pub(crate) unsafe fn raw_fork() -> libc::pid_t {
    // SAFETY: clone with only an exit signal and no new stack behaves like
    // fork(2); the caller keeps the child async-signal-safe.
    unsafe {
        libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) as libc::pid_t
    }
}

/// Name the box's UTS namespace shows to the program.
pub(crate) const BOX_HOSTNAME: &[u8] = b"isobox";

/// Child side: sets the hostname and NIS domain name of the new UTS
/// namespace, so the program learns nothing about the host from uname(2).
///
/// # Safety
/// Only async-signal-safe calls; call in a fresh UTS namespace.
pub(crate) unsafe fn set_box_hostname() -> Result<(), i32> {
    // SAFETY: the pointer and length describe a static byte string.
    let ok = unsafe {
        libc::sethostname(BOX_HOSTNAME.as_ptr().cast(), BOX_HOSTNAME.len()) == 0
            && libc::setdomainname(BOX_HOSTNAME.as_ptr().cast(), BOX_HOSTNAME.len()) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(crate::sys::errno())
    }
}
