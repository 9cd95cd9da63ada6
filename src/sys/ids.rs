//! The caller's identity in a set-user-ID installation: the real ids are
//! the caller, the effective ones root. Files the caller names are opened
//! with the caller's file-system ids, as isolate does, so that root's
//! rights never reach a path the caller could not open itself.

use std::io;

/// The real uid and gid (the caller, also when installed set-user-ID).
pub fn real_ids() -> (u32, u32) {
    // SAFETY: getuid and getgid have no arguments and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Whether the process runs with other effective ids than its caller's
/// (installed set-user-ID or set-group-ID and called by someone else).
pub fn is_set_id() -> bool {
    // SAFETY: the four calls have no arguments and cannot fail.
    unsafe { libc::getuid() != libc::geteuid() || libc::getgid() != libc::getegid() }
}

/// Drops every privilege a set-user-ID or set-group-ID installation gave,
/// for good: real, effective and saved ids all become the caller's. A
/// no-op when the process is not set-id.
pub fn drop_set_id() -> io::Result<()> {
    if !is_set_id() {
        return Ok(());
    }
    let (uid, gid) = real_ids();
    // SAFETY: setresgid and setresuid take scalars and change only this
    // process's credentials; the gid goes first, while root may still
    // change it.
    let failed =
        unsafe { libc::setresgid(gid, gid, gid) != 0 || libc::setresuid(uid, uid, uid) != 0 };
    if failed || is_set_id() {
        return Err(io::Error::last_os_error());
    }
    // The kernel made this process undumpable at the set-user-ID exec,
    // which also gives its /proc files to root: a rootless run could not
    // write its child's uid and gid maps (the child inherits the flag).
    // With every id the caller's again there is nothing of root's left to
    // guard, so the process becomes what a plain exec by the caller makes.
    // SAFETY: prctl with scalar arguments; changes only this process.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes root the effective group when the effective user is root but the
/// group is the caller's (an installation set-user-ID, not set-group-ID),
/// so files the keeper creates belong to root's group, as isolate does. The
/// real gid stays the caller's.
pub fn take_root_group() -> io::Result<()> {
    // SAFETY: scalar arguments; changes only this process's effective gid.
    unsafe {
        if libc::geteuid() == 0
            && libc::getegid() != 0
            && libc::setresgid(u32::MAX, 0, u32::MAX) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Runs `open` with the calling thread's file-system uid and gid set to
/// the real ones (the caller's), then sets them back to the effective
/// ones. The kernel then checks every path lookup and permission in
/// `open` as it would for the caller, without `CAP_DAC_OVERRIDE` and the
/// other file capabilities (they leave the effective set while the
/// file-system uid is not 0). For a caller who is root, nothing changes.
///
/// The ids are per thread: `open` must not hand work to other threads.
pub fn as_caller<T>(open: impl FnOnce() -> T) -> io::Result<T> {
    let (uid, gid) = real_ids();
    // SAFETY: geteuid and getegid cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // setfsuid and setfsgid return the previous id whether or not they
    // succeeded; asking again with an invalid id (-1) returns the current
    // one, which tells.
    let set = |fsuid: u32, fsgid: u32| -> io::Result<()> {
        // SAFETY: scalar arguments; they change only this thread's
        // file-system ids. The gid first: changing it needs CAP_SETGID,
        // which the uid change may clear from the effective set.
        let (now_gid, now_uid) = unsafe {
            libc::setfsgid(fsgid);
            libc::setfsuid(fsuid);
            (libc::setfsgid(u32::MAX), libc::setfsuid(u32::MAX))
        };
        if now_uid as u32 != fsuid || now_gid as u32 != fsgid {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("cannot switch the file-system ids to {fsuid}:{fsgid}"),
            ));
        }
        Ok(())
    };
    set(uid, gid)?;
    let result = open();
    set(euid, egid)?;
    Ok(result)
}
