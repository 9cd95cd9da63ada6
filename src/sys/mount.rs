//! Mounts the keeper makes on the host (a box's tmpfs, the bind that keeps
//! a network namespace) and the namespace itself.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::{c_path, c_string, check};

/// Mounts a tmpfs named `source` on `target` with `options` (tmpfs's
/// `size=`, `nr_inodes=`, `mode=`), `nosuid` and `nodev`.
pub fn mount_tmpfs(source: &str, target: &Path, options: &str) -> io::Result<()> {
    let source = c_string(source)?;
    let target = c_path(target)?;
    let options = c_string(options)?;
    // SAFETY: every pointer is a live C string for the duration of the call.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    })
    .map(drop)
}

/// Binds `source` (a file or directory, followed if it is a magic link
/// such as `/proc/self/fd/N`) onto `target`.
pub fn bind_mount(source: &Path, target: &Path) -> io::Result<()> {
    let (source, target) = (c_path(source)?, c_path(target)?);
    // SAFETY: two live C strings; a bind mount reads no data argument.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// Unmounts the file system mounted on `target` (lazily when busy).
pub fn unmount(target: &Path) -> io::Result<()> {
    let target = c_path(target)?;
    // SAFETY: a live C string and a flag.
    check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) }).map(drop)
}

/// Whether `path` (not followed if a link) is the root of a mount; `None`
/// when the kernel does not say (before Linux 5.8).
pub fn is_mount_root(path: &Path) -> io::Result<Option<bool>> {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    let stat = rustix::fs::statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::empty(),
    )?;
    Ok(stat
        .stx_attributes_mask
        .contains(StatxAttributes::MOUNT_ROOT)
        .then(|| stat.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)))
}

/// A new, empty network namespace (no interface up, no route), held open by
/// the returned descriptor. Creating one costs about half a millisecond and
/// serializes on a kernel lock, so an executor makes one and its boxes join
/// it with `setns` run after run.
pub fn new_network_namespace() -> io::Result<OwnedFd> {
    // unshare moves only the calling thread; a throwaway thread keeps the
    // caller's own namespace untouched.
    std::thread::spawn(|| {
        // SAFETY: unshare takes a flag; it changes only this thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        std::fs::File::open("/proc/thread-self/ns/net").map(OwnedFd::from)
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// A detached copy of the mount at the directory `dir`, as a bind of `dir`
/// would show it (without what is mounted below it): what a spare box is
/// given as its box's directory. Made in the caller's mount namespace,
/// where `dir` was checked; the copy can be attached in another.
pub fn detached_copy(dir: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: a descriptor the caller holds, an empty C string and flags.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), c"".as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
