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

/// Bytes of stack the inmate has until it executes the program: its
/// steps keep little on the stack (the largest is a 64-byte report).
const INMATE_STACK_SIZE: usize = 64 * 1024;

/// The inmate's stack, in the proxy's memory: every proxy has a private
/// copy of this (untouched, so unallocated) static, and the keeper never
/// uses its own.
#[repr(C, align(16))]
struct InmateStack(std::cell::UnsafeCell<[u8; INMATE_STACK_SIZE]>);

// SAFETY: only ever used by the inmate of the one proxy whose copy of the
// memory it is, while that proxy waits for it (CLONE_VFORK).
unsafe impl Sync for InmateStack {}

static INMATE_STACK: InmateStack = InmateStack(std::cell::UnsafeCell::new([0; INMATE_STACK_SIZE]));

/// Child side: starts `entry(arg)` in a new process that shares the
/// caller's memory, on a stack of its own, with the caller suspended
/// until the new process executes a program or exits (`CLONE_VM |
/// CLONE_VFORK`, as `posix_spawn` does). No page table is copied, which a
/// plain fork of a copy of a large keeper would do (about 0.6 ms here);
/// and no atfork handler runs (glibc's `fork` runs some that may take
/// locks another thread of the keeper held at clone time). Returns the
/// new pid, or -1 with errno.
///
/// # Safety
/// Same as [`clone_box`] for `entry`, which must never return; and
/// since `entry` writes the caller's memory, it may only use its own stack
/// and the memory `arg` names, and no two callers in one process may
/// overlap (each proxy starts one inmate).
pub(crate) unsafe fn spawn_sharing_memory(
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::pid_t {
    // The stack grows down from its end, which the alignment of the
    // static keeps on a 16-byte boundary.
    let top = INMATE_STACK
        .0
        .get()
        .cast::<u8>()
        .wrapping_add(INMATE_STACK_SIZE);
    // SAFETY: glibc's clone runs `entry` on `top` in the child and never
    // returns there; the stack is this process's and unused by anyone else
    // (see the contract); the parent waits until the child execs or exits.
    unsafe {
        libc::clone(
            entry,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        )
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

/// Child side: starts `entry(arg)` in a child born inside the cgroup
/// directory `cgroup_fd` (`clone3` with `CLONE_INTO_CGROUP`), sharing the
/// caller's memory and running on the stack `[stack, stack + stack_size)`,
/// while the caller sleeps until the child has executed or exited
/// (`CLONE_VM | CLONE_VFORK`). The child exits with what `entry` returns.
/// Returns the child's pid, or `-errno`.
///
/// glibc exports no `clone3` wrapper, and a plain `syscall(SYS_clone3)`
/// cannot be used with a new stack: the child would return into the
/// wrapper's frame on a stack that holds none. The child's path is
/// therefore written out in assembly: it calls `entry` on its own stack
/// and exits, touching nothing of the caller's frame. Other architectures
/// clone like `fork` (a copy of the address space, no `CLONE_VM`), which is
/// slower for a large caller but the same to the child.
///
/// # Safety
/// Only async-signal-safe calls in the caller's process; `stack` is mapped,
/// writable, page aligned and used by nothing else while the child runs;
/// `entry` may only do async-signal-safe work, must not return into the
/// caller's frames, and `arg` stays valid until the child has executed or
/// exited.
pub(crate) unsafe fn clone_vfork_into_cgroup(
    cgroup_fd: RawFd,
    stack: *mut u8,
    stack_size: usize,
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::pid_t {
    let mut args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack as u64,
        stack_size: stack_size as u64,
        cgroup: cgroup_fd as u64,
        ..CloneArgs::default()
    };
    #[cfg(target_arch = "x86_64")]
    {
        let ret: i64;
        // SAFETY: `args` is a valid clone_args block that lives across the
        // call. The parent gets the syscall's result in rax (rcx and r11
        // are clobbered by `syscall`; every other register is kept). The
        // child starts at the instruction after `syscall` with rax 0 and
        // rsp at the top of `stack` (16-byte aligned, so rsp is as the ABI
        // wants at a call); it calls `entry(arg)` from r12/r13, which it
        // inherited, and exits with its result without ever returning into
        // Rust code of the caller's frame.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "xor ebp, ebp",
                "mov rdi, r12",
                "call r13",
                "mov edi, eax",
                "mov eax, {exit}",
                "syscall",
                "ud2",
                "2:",
                exit = const libc::SYS_exit,
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") &mut args as *mut CloneArgs,
                in("rsi") std::mem::size_of::<CloneArgs>(),
                in("r12") arg,
                in("r13") entry,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret as libc::pid_t
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        args.flags &= !(libc::CLONE_VM as u64);
        args.stack = 0;
        args.stack_size = 0;
        // SAFETY: as in `clone_box`: without a new stack the child runs
        // on a private copy of this one, as after fork(2).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match ret {
            0 => {
                let status = entry(arg);
                // SAFETY: _exit is async-signal-safe.
                unsafe { libc::_exit(status) }
            }
            -1 => -crate::sys::errno(),
            pid => pid as libc::pid_t,
        }
    }
}
