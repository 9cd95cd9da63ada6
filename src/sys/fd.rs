//! Descriptors the keeper hands to a box, and the `poll` it watches them with.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::check;

/// Lowest descriptor the keeper hands to a child: keeping every run fd above
/// the standard three means the child can `dup2` onto 0–2 without one
/// source clobbering another.
const FIRST_RUN_FD: RawFd = 3;

/// `fd` itself when it is numbered above 2, else a close-on-exec copy that is.
pub fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= FIRST_RUN_FD {
        return Ok(fd);
    }
    dup_for_child(fd.as_fd())
}

/// Opens `/dev/null` on whichever of descriptors 0, 1 and 2 is closed, so
/// that no file the process opens later takes one of their numbers (what
/// Rust's own start-up does for a program it starts; see `main`).
pub fn open_standard_fds() -> io::Result<()> {
    let mut entries = [0, 1, 2].map(|fd| poll_entry(fd, 0));
    poll(&mut entries, Some(Duration::ZERO))?;
    for entry in entries {
        if entry.revents & libc::POLLNVAL == 0 {
            continue;
        }
        // SAFETY: a static C string; the descriptor, when opened, takes
        // the lowest free number, which is this closed standard one.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if fd != entry.fd {
            return Err(if fd < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::other("/dev/null did not take a closed standard descriptor")
            });
        }
    }
    Ok(())
}

/// A close-on-exec pipe as (read end, write end), both numbered above 2.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and ours alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

/// Makes `fd` close-on-exec and numbered above 2 (for files the caller
/// hands over, such as stdin).
pub fn dup_for_child(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid borrowed descriptor returns a new
    // descriptor that only we own.
    let dup = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, FIRST_RUN_FD) })?;
    // SAFETY: `dup` was just returned by fcntl.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// Puts `fd` into non-blocking mode so one slow stream never stalls the
/// keeper's loop.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL only read and change the status flags of a
    // descriptor that stays valid for the borrow.
    unsafe {
        let flags = check(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        check(libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        ))?;
    }
    Ok(())
}

/// One entry of a [`poll`] set.
pub type PollFd = libc::pollfd;

/// Readiness bits, re-exported so callers need no `libc` import.
pub const POLLIN: i16 = libc::POLLIN;
/// Ready for writing.
pub const POLLOUT: i16 = libc::POLLOUT;
/// Error or hang-up: the other end is gone.
pub const POLLERR_OR_HUP: i16 = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;

/// A poll entry for `fd` waiting for `events`.
pub fn poll_entry(fd: RawFd, events: i16) -> PollFd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Waits until an entry is ready or `timeout` passes; an interrupted wait
/// counts as a timeout so the caller re-checks its clocks.
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    let timeout_ms = timeout.map_or(-1, |t| {
        // Round up so a 0.3 ms remainder does not become a busy 0 ms poll.
        let ms = t.as_micros().div_ceil(1000);
        ms.min(i32::MAX as u128) as i32
    });
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the
    // length passed.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match check(ret) {
        Ok(n) => Ok(n as usize),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(err) => Err(err),
    }
}

/// Opens (creating, mode 0600) a lock file in a root-owned directory,
/// refusing a link at its name, for `flock`-style locks held as long as the
/// file stays open.
pub fn open_lock_file(path: &std::path::Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_ends_are_above_stdio_and_cloexec() {
        let (read, write) = pipe().unwrap();
        for fd in [&read, &write] {
            assert!(fd.as_raw_fd() >= FIRST_RUN_FD);
            // SAFETY: F_GETFD on an open descriptor only reads its flags.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        }
    }
}
