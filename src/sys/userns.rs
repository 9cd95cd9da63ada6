//! User namespaces for a caller without root: whether this host lets the
//! caller build a box in one, and the id maps the keeper writes for it.

use std::io;

/// How the box's user namespace maps ids: one uid and one gid inside,
/// each standing for the caller's own outside. An unprivileged caller may
/// map nothing else (wider maps need `newuidmap` and `/etc/subuid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// The program's uid, as it sees it.
    pub inside_uid: u32,
    /// The program's gid, as it sees it.
    pub inside_gid: u32,
    /// The caller's effective uid, which the inside uid is on the host.
    pub outside_uid: u32,
    /// The caller's effective gid.
    pub outside_gid: u32,
}

/// The uid and gid a program of a rootless box sees: an ordinary user's,
/// not 0, so that nothing inside takes it for root.
pub const ROOTLESS_INSIDE_ID: u32 = 1000;

impl IdMapping {
    /// The caller's own ids mapped to [`ROOTLESS_INSIDE_ID`].
    pub fn for_caller() -> Self {
        // SAFETY: geteuid and getegid have no arguments and cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Self {
            inside_uid: ROOTLESS_INSIDE_ID,
            inside_gid: ROOTLESS_INSIDE_ID,
            outside_uid: uid,
            outside_gid: gid,
        }
    }

    /// Writes the maps of the stopped-at-birth process `pid`, which is in a
    /// user namespace of its own that the caller created: `setgroups` is
    /// denied first (the kernel requires it before an unprivileged gid
    /// map, and it keeps the program from dropping a group that a file's
    /// permissions deny it), then the uid and gid maps.
    pub fn write_for(&self, pid: libc::pid_t) -> io::Result<()> {
        let proc_file = |name: &str| format!("/proc/{pid}/{name}");
        std::fs::write(proc_file("setgroups"), "deny")?;
        std::fs::write(
            proc_file("uid_map"),
            format!("{} {} 1\n", self.inside_uid, self.outside_uid),
        )?;
        std::fs::write(
            proc_file("gid_map"),
            format!("{} {} 1\n", self.inside_gid, self.outside_gid),
        )
    }
}

/// Whether this caller can build a box in a user namespace: a child makes
/// a user and a mount namespace and changes a mount there. Creating the
/// namespace is not enough to know: AppArmor's
/// `apparmor_restrict_unprivileged_userns` (Ubuntu 23.10 and later) lets
/// the call succeed and withholds the capabilities inside.
pub fn user_namespaces_usable() -> bool {
    // SAFETY: the child runs only async-signal-safe calls (unshare, mount,
    // _exit) before it exits; the parent only waits for it.
    unsafe {
        match libc::fork() {
            -1 => false,
            0 => {
                let usable = libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0
                    && libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) == 0;
                libc::_exit(if usable { 0 } else { 1 })
            }
            child => {
                let mut status = 0;
                while libc::waitpid(child, &mut status, 0) == -1
                    && crate::sys::errno() == libc::EINTR
                {}
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
            }
        }
    }
}
