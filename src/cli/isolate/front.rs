//! The isolate face's front door: a root caller's `--run` in a box whose
//! agent is up goes to the agent whole, and its `--init` or `--cleanup` to
//! the installation's service (`service.rs`), before the C library starts
//! (see `isobox::sys::early`); the process only waits for the exit status.
//!
//! Otherwise each of these pays, in its own process, glibc's start-up
//! (about 0.6 ms here with isobox's own) and the parsing and checks that
//! the agent or service, already running, does faster. The front sends the
//! arguments and the environment as the kernel laid them out, its umask,
//! its standard input, output and error and its current directory; the
//! other end parses them as the command line would, and runs everything
//! the command line runs (the lock, the checks, the box's hand-over, the
//! meta file, the verdict line), writing to the descriptors it was given.
//!
//! Whatever the front cannot settle it leaves to the ordinary path, which
//! sees the process as it was: nothing here prints (but for an agent or
//! service that read the command and ended without answering, which is
//! that command's error), and every descriptor it opened is closed again.
//! So are the cases the other end declines (any invocation it would not
//! carry out the same way as the command line). The front reads only a
//! hint of where the invocation goes, from the arguments and the
//! configuration file; the other end decides. Callers who are not root (a
//! set-user-ID installation) take the ordinary path, which hands a warm
//! run to the agent after checking the caller's rights itself.

use std::mem::MaybeUninit;

use isobox::boxes::{CONFIG_ENV, DEFAULT_CONFIG_PATH, DEFAULT_LOCK_ROOT};
use isobox::sys::early::{self, Start, Text};

use super::service::SOCKET_NAME as SERVICE_SOCKET;

/// The most a configuration file may hold for the front to read it.
const CONFIG_ROOM: usize = 16 * 1024;

/// Forwards the invocation if it can, and then never returns; returns when
/// the ordinary path must handle it. Keeps the rules of
/// `isobox::sys::early`.
pub fn forward(start: &Start) {
    if !early::caller_is_root() {
        return;
    }
    let Some(target) = target(start) else {
        return;
    };
    // The service records the caller's group as the owner of a box it
    // makes, and opens files with it: it serves root's group only.
    if matches!(target, Target::Service) && !early::caller_group_is_root() {
        return;
    }
    let mut socket_path = Text::<108>::new();
    let config_path = match start.env_var(CONFIG_ENV.as_bytes()) {
        Some(value) if !value.is_empty() => value,
        _ => DEFAULT_CONFIG_PATH.as_bytes(),
    };
    let mut config_file = Text::<4096>::new();
    if !config_file.push(config_path) || !config_file.push(b"\0") {
        return;
    }
    let mut buffer = [const { MaybeUninit::uninit() }; CONFIG_ROOM];
    // An unreadable file makes the ordinary path fail (or, missing, use
    // the defaults): the default's socket is then only a guess, which the
    // other end checks.
    let lock_root = early::read_file(config_file.as_bytes(), &mut buffer)
        .and_then(lock_root)
        .unwrap_or(DEFAULT_LOCK_ROOT.as_bytes());
    let named = socket_path.push(lock_root)
        && socket_path.push(b"/agents/")
        && match target {
            Target::Run(id) => {
                socket_path.push_decimal(u64::from(id)) && socket_path.push(b".sock")
            }
            Target::Service => socket_path.push(SERVICE_SOCKET.as_bytes()),
        };
    if !named {
        return;
    }
    let ended: &[u8] = match target {
        Target::Run(_) => b": the box's agent ended before it answered\n",
        Target::Service => b": the installation's service ended before it answered\n",
    };
    crate::cli::front::hand_over(start, socket_path.as_bytes(), ended);
}

/// Where an invocation can go.
#[derive(Clone, Copy)]
enum Target {
    /// A `--run` in this box: to the box's agent.
    Run(u32),
    /// `--init` or `--cleanup`: to the installation's service.
    Service,
}

/// Where the arguments can go: a `--run` (in box `-b N`, `-bN`,
/// `--box-id N` or `--box-id=N` before `--`, box 0 when none is named), or
/// an `--init` or `--cleanup`; nowhere when they name none of these or
/// more than one.
fn target(start: &Start) -> Option<Target> {
    let mut run = false;
    let mut init_or_cleanup = false;
    let mut id = 0;
    let mut index = 1;
    while let Some(arg) = start.arg(index) {
        index += 1;
        if early::same_bytes(arg, b"--") {
            break;
        }
        if early::same_bytes(arg, b"--run") {
            run = true;
        } else if early::same_bytes(arg, b"--init") || early::same_bytes(arg, b"--cleanup") {
            init_or_cleanup = true;
        } else if early::same_bytes(arg, b"-b") || early::same_bytes(arg, b"--box-id") {
            id = number(start.arg(index)?)?;
            index += 1;
        } else if let Some(value) = after(arg, b"--box-id=") {
            id = number(value)?;
        } else if let Some(value) = after(arg, b"-b") {
            id = number(value)?;
        }
    }
    match (run, init_or_cleanup) {
        (true, false) => Some(Target::Run(id)),
        (false, true) => Some(Target::Service),
        _ => None,
    }
}

/// What follows `prefix` in `text`, if `text` starts with it.
fn after<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = text.get(..prefix.len())?;
    early::same_bytes(head, prefix).then(|| text.get(prefix.len()..).unwrap_or_default())
}

/// A box number in decimal.
fn number(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 9 {
        return None;
    }
    let mut value = 0u32;
    for &digit in text {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(digit - b'0');
    }
    Some(value)
}

/// The last `lock_root = value` of a configuration file's text.
fn lock_root(text: &[u8]) -> Option<&[u8]> {
    let mut found = None;
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = 0;
        while end < rest.len() && rest.get(end) != Some(&b'\n') {
            end += 1;
        }
        let line = rest.get(..end).unwrap_or_default();
        rest = rest.get(end + 1..).unwrap_or_default();
        let mut equals = 0;
        while equals < line.len() && line.get(equals) != Some(&b'=') {
            equals += 1;
        }
        let (Some(key), Some(value)) = (line.get(..equals), line.get(equals + 1..)) else {
            continue;
        };
        if early::same_bytes(trim(key), b"lock_root") {
            found = Some(trim(value));
        }
    }
    found
}

/// `text` without the spaces and tabs around it.
fn trim(mut text: &[u8]) -> &[u8] {
    while let Some((&first, rest)) = text.split_first() {
        if first != b' ' && first != b'\t' && first != b'\r' {
            break;
        }
        text = rest;
    }
    while let Some((&last, rest)) = text.split_last() {
        if last != b' ' && last != b'\t' && last != b'\r' {
            break;
        }
        text = rest;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_root_is_the_last_one_given() {
        let text = b"# lock_root = /no\nbox_root=/b\n lock_root = /run/a \nlock_root\t=\t/run/b\n";
        assert_eq!(lock_root(text), Some(&b"/run/b"[..]));
        assert_eq!(lock_root(b"box_root = /b\n"), None);
        assert_eq!(lock_root(b"lock_root=/x"), Some(&b"/x"[..]));
    }

    #[test]
    fn box_numbers_are_plain_decimals() {
        assert_eq!(number(b"17"), Some(17));
        assert_eq!(number(b""), None);
        assert_eq!(number(b"1x"), None);
        assert_eq!(number(b"9999999999"), None);
        assert_eq!(after(b"--box-id=3", b"--box-id="), Some(&b"3"[..]));
        assert_eq!(after(b"-b", b"-b"), Some(&b""[..]));
        assert_eq!(after(b"-", b"-b"), None);
    }
}
