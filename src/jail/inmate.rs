//! The inmate: started by the proxy, it drops to the box's credentials and
//! executes the program. Until `execve` it shares the proxy's memory (the
//! proxy waits meanwhile, `CLONE_VFORK`) and runs on a stack of its own;
//! only async-signal-safe calls are allowed, and nothing here writes the
//! proxy's memory but that stack and `errno` (which the proxy reads only
//! right after its own calls). Each step is a function of its own and
//! [`inmate_main`] lists them in order.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::{credentials, fail, fail_at, JailSpec, Rlimits, Stage};
use crate::sys::errno;

/// The inmate's steps, in order: default signal dispositions and an empty
/// mask (the keeper may ignore `SIGPIPE`), working directory, rlimits, the
/// capability bounding set, uid/gid, every remaining capability and
/// `no_new_privs`, the seccomp filter, then `execve` along the `PATH`
/// candidates.
///
/// # Safety
/// Runs in the inmate (see the module); only async-signal-safe calls. Every step below
/// has the same contract: it runs once, in this child, in this order, on
/// memory prepared before the fork.
pub(super) unsafe fn inmate_main(spec: &JailSpec, report: RawFd) -> ! {
    // SAFETY: the inmate's first step (see the function's contract).
    unsafe { reset_signals(report) };
    // SAFETY: as above.
    unsafe { change_dir(&spec.box_dir, report) };
    // SAFETY: as above.
    if let Err(errno) = unsafe { spec.rlimits.apply() } {
        fail(report, Stage::Rlimits, errno);
    }
    // SAFETY: as above.
    unsafe { Rlimits::reset_priority() };
    // The bounding set needs CAP_SETPCAP, so it goes before the uid.
    // SAFETY: as above.
    unsafe { credentials::drop_bounding_set() };
    if let Some(credentials) = spec.credentials {
        // SAFETY: as above.
        if let Err(errno) = unsafe { credentials.apply() } {
            fail(report, Stage::Credentials, errno);
        }
    }
    // SAFETY: as above.
    unsafe { open_stdio_files(spec, report) };
    // SAFETY: as above.
    unsafe { change_dir(&spec.cwd, report) };
    // SAFETY: as above.
    if let Err(errno) = unsafe { credentials::drop_capabilities() } {
        fail(report, Stage::Capabilities, errno);
    }
    if let Some(policy) = &spec.seccomp {
        // SAFETY: as above; the filter was compiled before the fork.
        if let Err(errno) = unsafe { policy.install() } {
            fail(report, Stage::Seccomp, errno);
        }
    }
    // SAFETY: as above.
    unsafe { execute(spec, report) }
}

/// Default dispositions for every signal and an empty signal mask.
///
/// # Safety
/// A step of [`inmate_main`], or the first of a warm box's holder.
pub(super) unsafe fn reset_signals(report: RawFd) {
    // The kernel's `struct sigaction` on x86_64 (handler, flags, restorer,
    // mask), all zero: SIG_DFL. Not glibc's wrapper, which refuses the two
    // signals it keeps for itself (32 and 33): one of those left ignored by
    // whoever started the keeper would stay ignored through `execve`.
    let default = [0u64; 4];
    for signal in 1..=libc::SIGRTMAX() {
        // Fails harmlessly for SIGKILL and SIGSTOP.
        // SAFETY: rt_sigaction reads 32 bytes of `default`, the kernel's
        // layout, and changes only this process's disposition.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    // SAFETY: as on this function.
    unsafe { empty_signal_mask(report) };
}

/// Unblocks every signal.
///
/// # Safety
/// A step of [`inmate_main`] or of a warm box's inmate.
pub(super) unsafe fn empty_signal_mask(report: RawFd) {
    // SAFETY: sigset_t is plain old data; all-zero is a valid value.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `empty` is a valid sigset_t to fill in.
    unsafe { libc::sigemptyset(&mut empty) };
    // SAFETY: `empty` is initialised; the old mask is not asked for.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) } != 0 {
        fail(report, Stage::Signals, errno());
    }
}

/// Enters directory `dir`.
///
/// # Safety
/// A step of [`inmate_main`].
pub(super) unsafe fn change_dir(dir: &CStr, report: RawFd) {
    // SAFETY: a C string prepared before the fork.
    if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
        fail(report, Stage::Chdir, errno());
    }
}

/// Opens the stdio files (isolate's `-i/-o/-r`) onto 0–2, as the box's
/// user, so a file the user may not read stays closed; then sends stderr
/// to stdout when asked.
///
/// # Safety
/// A step of [`inmate_main`].
unsafe fn open_stdio_files(spec: &JailSpec, report: RawFd) {
    let files = [0, 1, 2].map(|fd| spec.stdio_files[fd].as_deref());
    // SAFETY: the same step, on the spec's files.
    unsafe { open_stdio(files, spec.stderr_to_stdout, report) }
}

/// [`open_stdio_files`] on files given one by one (a warm box's run plan).
///
/// # Safety
/// A step of [`inmate_main`] or of a warm box's inmate.
pub(super) unsafe fn open_stdio(files: [Option<&CStr>; 3], stderr_to_stdout: bool, report: RawFd) {
    for (fd, file) in files.into_iter().enumerate() {
        let Some(file) = file else {
            continue;
        };
        let flags = if fd == 0 {
            libc::O_RDONLY
        } else {
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
        };
        // SAFETY: a C string prepared before the fork.
        let opened = unsafe { libc::open(file.as_ptr(), flags | libc::O_CLOEXEC, 0o666) };
        // SAFETY: dup2 on descriptors of this child's own table.
        if opened < 0 || unsafe { libc::dup2(opened, fd as RawFd) } < 0 {
            fail_at(report, Stage::Stdio, errno(), fd as u32);
        }
        // SAFETY: the descriptor just opened, not used again.
        unsafe { libc::close(opened) };
    }
    // SAFETY: dup2 on descriptors of this child's own table.
    if stderr_to_stdout && unsafe { libc::dup2(1, 2) } < 0 {
        fail_at(report, Stage::Stdio, errno(), 2);
    }
}

/// `execve` along the candidates. execvp's rule: keep looking past missing
/// entries, but report a permission problem over "not found" if nothing
/// runs.
///
/// # Safety
/// A step of [`inmate_main`].
unsafe fn execute(spec: &JailSpec, report: RawFd) -> ! {
    let candidates = spec.candidates.iter().map(|candidate| candidate.as_c_str());
    // SAFETY: the same step; the arrays are the spec's, NULL-terminated.
    unsafe {
        execute_along(
            candidates,
            spec.argv_ptrs.as_ptr(),
            spec.envp_ptrs.as_ptr(),
            report,
        )
    }
}

/// [`execute`] along `candidates` with `argv` and `envp` given apart (a
/// warm box's run plan).
///
/// # Safety
/// A step of [`inmate_main`] or of a warm box's inmate; `argv` and `envp`
/// are NULL-terminated arrays of C strings that outlive the call.
pub(super) unsafe fn execute_along<'a>(
    candidates: impl Iterator<Item = &'a CStr>,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    report: RawFd,
) -> ! {
    let mut exec_errno = libc::ENOENT;
    for candidate in candidates {
        // SAFETY: the path, argv and envp arrays are NUL-terminated and
        // were prepared before the fork; they outlive the call.
        unsafe { libc::execve(candidate.as_ptr(), argv, envp) };
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
