//! The front door the faces share: an invocation handed whole, before the
//! C library starts (see `isobox::sys::early`), to a resident helper that
//! already runs (a box's agent or the installation's service for the
//! isolate face, the runner for `isobox run`); the process only waits for
//! the exit status.
//!
//! Otherwise each invocation pays, in its own process, glibc's start-up
//! (about 0.6 ms here with isobox's own) and the parsing and checks that
//! the helper, already running, does faster. The front sends the
//! arguments and the environment as the kernel laid them out, its umask,
//! its standard input, output and error and its current directory; the
//! helper parses them as the command line would, and runs everything the
//! command line runs, writing to the descriptors it was given.
//!
//! Whatever the front cannot settle it leaves to the ordinary path, which
//! sees the process as it was: nothing here prints (but for a helper that
//! read the invocation and ended without answering, which is that
//! invocation's error), and every descriptor it opened is closed again.
//! So are the cases the helper declines (any invocation it would not carry
//! out the same way as the command line). Only root callers come here:
//! the faces check that first.

use isobox::sys::early::{self, Interruptions, Start, Text, Wake};
use isobox::sys::INTERRUPTION_SIGNALS;

/// The first bytes of a forwarded invocation: what tells it from the
/// command line's requests (JSON) on an agent's socket.
pub(crate) const FORWARD_MAGIC: [u8; 8] = *b"isobox>1";

/// The header: [`FORWARD_MAGIC`], then the number of arguments, of
/// environment entries and the umask (little-endian `u32`s). The strings
/// follow, each ending with a NUL, the arguments first; the descriptors
/// (standard input, output, error, the current directory) come along.
pub(crate) const HEADER_LENGTH: usize = 20;

/// The answer: the invocation is the caller's own process's to carry out.
pub(crate) const DECLINED: u8 = b'D';

/// The answer: the invocation was carried out, and its exit status
/// follows.
pub(crate) const FINISHED: u8 = b'F';

/// Hands the invocation to the helper listening at `socket_path` (no NUL),
/// which must be root, and exits with its answer; returns when the
/// ordinary path must handle it. `ended` ends the one-line error (after
/// the program's name) for a helper that read the invocation and ended
/// without answering. Keeps the rules of `isobox::sys::early`.
pub fn hand_over(start: &Start, socket_path: &[u8], ended: &[u8]) {
    // Blocked before the run is sent: a signal that comes during the run
    // is passed on, none is lost in between.
    let Some(interruptions) = Interruptions::catch(&INTERRUPTION_SIGNALS) else {
        return;
    };
    let Some(socket) = early::connect_to_root(socket_path) else {
        return;
    };
    let Some(directory) = early::open_current_directory() else {
        return;
    };
    let Some((strings, entries)) = start.strings() else {
        return;
    };
    let mut header = [0u8; HEADER_LENGTH];
    let fields = [start.argc() as u32, entries as u32, early::umask()];
    let mut at = 0;
    while at < FORWARD_MAGIC.len() {
        header[at] = FORWARD_MAGIC[at];
        at += 1;
    }
    for field in fields {
        for byte in field.to_le_bytes() {
            if let Some(slot) = header.get_mut(at) {
                *slot = byte;
            }
            at += 1;
        }
    }
    let descriptors = [0, 1, 2, directory.raw()];
    if !early::send_with_descriptors(&socket, &header, strings, descriptors) {
        return;
    }
    drop(directory);
    let mut passed_on = false;
    let mut reply = [0u8; 8];
    loop {
        match early::wait(&socket, &interruptions, &mut reply) {
            Wake::Signal(signal) => {
                // An agent or the runner stops the run as the command line
                // would; its answer follows. (The isolate service finishes
                // its `--init` or `--cleanup`, a millisecond's work, rather
                // than leave a box half made: the signal then ends nothing
                // but this wait.)
                let mut message = Text::<32>::new();
                let _ = message.push(b"{\"Interrupt\":")
                    && message.push_decimal(u64::from(signal as u32))
                    && message.push(b"}");
                passed_on |= early::send(&socket, message.as_bytes());
            }
            Wake::Message(2) if reply[0] == FINISHED => early::exit(reply[1]),
            Wake::Message(1) if reply[0] == DECLINED => return,
            // An agent leaving refuses what it finds waiting, unread, as
            // it refuses a command line's run.
            Wake::Message(_) if !passed_on && early::same_bytes(&reply[..7], b"{\"Refus") => return,
            // The agent left with the run unread (it was leaving): nothing
            // ran, so the ordinary path runs it.
            Wake::Reset if !passed_on => return,
            _ => {
                // The agent read the run and ended without an answer: the
                // program may have run, so it is not run again.
                let name = early::file_name(start.arg(0).unwrap_or_default());
                early::write_all(early::STDERR, name);
                early::write_all(early::STDERR, ended);
                early::exit(crate::cli::EXIT_TROUBLE)
            }
        }
    }
}
