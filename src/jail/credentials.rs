//! Dropping the inmate to the box's user and group.

/// The ids the program runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credentials {
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
            Err(crate::sys::errno())
        }
    }
}

/// Highest capability number any kernel defines today is 40; going to 63
/// covers future ones (the kernel answers EINVAL past its own last).
const LAST_POSSIBLE_CAP: libc::c_ulong = 63;

/// Child side: empties the capability bounding set, so no later `execve`
/// (of a setuid binary, or by uid 0) can grant a capability again.
///
/// # Safety
/// Only async-signal-safe calls; meant for the time between fork and exec.
pub(crate) unsafe fn drop_bounding_set() {
    for cap in 0..=LAST_POSSIBLE_CAP {
        // SAFETY: prctl with scalar arguments; EINVAL past the last
        // capability is expected and harmless.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Child side: clears the ambient, effective, permitted and inheritable
/// sets and sets `no_new_privs` (which seccomp also requires).
///
/// # Safety
/// Only async-signal-safe calls; meant for the time between fork and exec.
pub(crate) unsafe fn drop_capabilities() -> Result<(), i32> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: prctl takes scalars; capset reads a v3 header and two data
    // records, both valid for the call.
    let ok = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ) == 0
            && libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) == 0
            && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(crate::sys::errno())
    }
}
