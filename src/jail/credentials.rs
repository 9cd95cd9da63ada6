//! Dropping the inmate to the box's user and group.

/// The ids the program runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: libc::uid_t,
    /// Group id.
    pub gid: libc::gid_t,
}

impl Credentials {
    /// Child side: clears supplementary groups, then sets real, effective
    /// and saved gid and uid (group first: after setuid the right to change
    /// groups is gone).
    ///
    /// Raw system calls on purpose: glibc's wrappers broadcast credential
    /// changes to every thread it believes the process has, and a child of
    /// `clone3` inherits the keeper's stale thread list, so the wrappers can
    /// signal unrelated tids or wait forever for threads that do not exist.
    ///
    /// # Safety
    /// Only async-signal-safe calls; meant for the time between fork and exec.
    pub(crate) unsafe fn apply(&self) -> Result<(), i32> {
        // SAFETY: setgroups with size 0 reads no memory; the others take
        // scalars only; each changes only the calling (and only) thread.
        let ok = unsafe {
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) == 0
                && libc::syscall(libc::SYS_setresgid, self.gid, self.gid, self.gid) == 0
                && libc::syscall(libc::SYS_setresuid, self.uid, self.uid, self.uid) == 0
        };
        if ok {
            Ok(())
        } else {
            // SAFETY: errno location is thread-local and always valid.
            Err(unsafe { *libc::__errno_location() })
        }
    }
}
