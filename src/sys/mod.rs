//! Keeper-side system-call wrappers: the few calls the keeper makes around
//! a run (pipes, poll, wait4 with rusage, pidfds, signals, mounts, the
//! open-without-following walk of host paths), each behind a safe function,
//! and the helpers every unsafe caller in the crate shares: [`errno`], the
//! C-string conversion ([`c_string`], [`c_path`]) and [`strerror`].
//!
//! The child side (between `clone` and `execve`) lives in `jail`; it uses
//! only [`errno`] and [`c_string`] from here.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

mod daemon;
pub mod early;
mod fd;
mod ids;
mod interrupt;
mod mount;
mod path;
mod process;
mod userns;

pub use daemon::{fork_resident, spawn_root_daemon, take_kept_fd, Forked};
pub use fd::{
    above_stdio, dup_for_child, open_lock_file, open_standard_fds, pipe, poll, poll_entry,
    set_nonblocking, PollFd, POLLERR_OR_HUP, POLLIN, POLLOUT,
};
pub use ids::{as_caller, drop_set_id, is_set_id, real_ids, take_root_group};
pub use interrupt::{
    catch_interruptions, interruption, interruption_fd, record_interruption, INTERRUPTION_SIGNALS,
};
pub use mount::{
    bind_mount, detached_copy, is_mount_root, mount_tmpfs, new_network_namespace, unmount,
};
pub use path::{resolve_host_path, HostPath, Resolve};
pub use process::{
    ignore_sigpipe, kill, kill_process_group, pidfd_open, pidfd_send_signal, set_scheduling,
    start_time, take_back_terminal, wait4, Rusage, Scheduling, SigpipeBlocked,
};
pub use userns::{user_namespaces_usable, IdMapping, ROOTLESS_INSIDE_ID};

/// The calling thread's `errno`. Async-signal-safe (a read of a
/// thread-local), so the child side may call it between fork and exec.
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns the calling thread's errno slot,
    // valid for the thread's life.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno` to 0, for the calls (`getpriority`)
/// whose failure shows only there. Async-signal-safe.
pub(crate) fn clear_errno() {
    // SAFETY: as in errno; the slot is writable.
    unsafe { *libc::__errno_location() = 0 };
}

/// Turns a `-1` return into the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `value` as a C string. A NUL byte inside is `EINVAL`: the kernel would
/// read only up to it, which would name something else.
pub fn c_string(value: impl Into<Vec<u8>>) -> io::Result<CString> {
    CString::new(value).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `path` as a C string (see [`c_string`]).
pub fn c_path(path: &Path) -> io::Result<CString> {
    c_string(path.as_os_str().as_bytes())
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

/// Whether the caller is root (effective uid 0).
pub fn is_root() -> bool {
    effective_uid() == 0
}

/// The caller's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_reads_like_libc() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
        assert_eq!(strerror(libc::EACCES), "Permission denied");
    }
}
