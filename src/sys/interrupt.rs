//! isolate's interruption signals (`SIGHUP`, `SIGINT`, `SIGQUIT`,
//! `SIGTERM`) caught instead of ending the keeper: a run in progress is
//! then stopped and reported like any other end, and everything it made
//! is removed on the way out. Without [`catch_interruptions`] (a library
//! user's own process, the service) nothing changes.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use super::check;

/// The signals isolate's keeper treats as "stop the run and report it".
pub const INTERRUPTION_SIGNALS: [i32; 4] =
    [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM];

/// The first interruption signal received, 0 before any.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The process that installed the handlers: a child that inherited them
/// (until its `execve`) must not pass for the keeper.
static KEEPER_PID: AtomicI32 = AtomicI32::new(0);

/// The write end the handler wakes the keeper's `poll` through.
static WAKE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The read end of the wake-up pipe, -1 before [`catch_interruptions`].
/// Both ends stay open for the process's life (or until a child forked
/// without an exec closes them and makes its own).
static WAKE_READ: AtomicI32 = AtomicI32::new(-1);

/// Whether [`catch_interruptions`] was called in this process (or in the
/// parent a child was forked from).
static CAUGHT: AtomicBool = AtomicBool::new(false);

extern "C" fn note_interruption(signal: libc::c_int) {
    // Only async-signal-safe work here: atomics, getpid, write.
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    if unsafe { libc::getpid() } != KEEPER_PID.load(Ordering::Relaxed) {
        return;
    }
    record(signal);
}

/// Records `signal` as received and wakes [`interruption_fd`]; what the
/// handler does, and async-signal-safe as it is.
fn record(signal: libc::c_int) {
    let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    let fd = WAKE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        // The interrupted code may be about to read errno.
        let saved = super::errno();
        let byte = 1u8;
        // SAFETY: `fd` is the wake-up pipe's write end, open for the
        // process's life; a full (non-blocking) pipe just drops the byte,
        // which is fine because a byte is already waiting.
        let _ = unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = saved };
    }
}

/// Catches the interruption signals from now on (once per process; later
/// calls do nothing): each is recorded ([`interruption`]) and wakes
/// [`interruption_fd`]. A run under way is stopped by its keeper's loop.
pub fn catch_interruptions() -> io::Result<()> {
    if CAUGHT.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    install().inspect_err(|_| CAUGHT.store(false, Ordering::SeqCst))
}

/// In a child forked without an exec, once it closed every descriptor it
/// inherited: interruptions, if its parent caught them, are caught for
/// the child from now on, through a pipe of its own and with nothing
/// received yet. (The handlers it inherited ignore its signals: they are
/// the parent's.)
pub(super) fn catch_interruptions_after_fork() -> io::Result<()> {
    RECEIVED.store(0, Ordering::SeqCst);
    WAKE_WRITE.store(-1, Ordering::SeqCst);
    WAKE_READ.store(-1, Ordering::SeqCst);
    if CAUGHT.load(Ordering::SeqCst) {
        install()?;
    }
    Ok(())
}

fn install() -> io::Result<()> {
    let (read, write) = super::pipe()?;
    super::set_nonblocking(read.as_fd())?;
    super::set_nonblocking(write.as_fd())?;
    WAKE_WRITE.store(write.into_raw_fd(), Ordering::SeqCst);
    WAKE_READ.store(read.into_raw_fd(), Ordering::SeqCst);
    // SAFETY: getpid has no preconditions.
    KEEPER_PID.store(unsafe { libc::getpid() }, Ordering::SeqCst);
    for signal in INTERRUPTION_SIGNALS {
        // SAFETY: sigaction is plain old data; all-zero is a valid value.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = note_interruption as *const () as libc::sighandler_t;
        // Restarted calls: the keeper learns of the signal through the
        // pipe, not through EINTR somewhere in its file handling.
        action.sa_flags = libc::SA_RESTART;
        // Each handler blocks the others: signals that arrive together are
        // then handled one at a time, lowest first, instead of stacking up
        // so that the last one delivered runs, and is recorded, first.
        for other in INTERRUPTION_SIGNALS {
            // SAFETY: `sa_mask` is a valid sigset_t owned by `action`.
            check(unsafe { libc::sigaddset(&mut action.sa_mask, other) })?;
        }
        // SAFETY: `action` is a valid sigaction whose handler does only
        // async-signal-safe work; the old action is not wanted.
        check(unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) })?;
    }
    Ok(())
}

/// Records `signal` as if it had been received (for a process that learns
/// of an interruption some other way, such as a message from the client it
/// runs for), at once and on the calling thread. Does nothing unless
/// [`catch_interruptions`] was called.
pub fn record_interruption(signal: i32) {
    if WAKE_READ.load(Ordering::SeqCst) >= 0 {
        record(signal);
    }
}

/// The first interruption signal received since [`catch_interruptions`].
pub fn interruption() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// A descriptor that turns readable once an interruption signal arrived
/// (for `poll`); `None` unless [`catch_interruptions`] was called.
pub fn interruption_fd() -> Option<BorrowedFd<'static>> {
    let fd = WAKE_READ.load(Ordering::SeqCst);
    // SAFETY: the pipe's read end stays open for the process's life once
    // stored (see WAKE_READ).
    (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
}
