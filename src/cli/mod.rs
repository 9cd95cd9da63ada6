//! The command-line faces of isobox.
//!
//! A face only translates: its arguments into an [`isobox::IsolateConfig`],
//! the [`isobox::ExecutionResult`] into its output and exit status. Policy
//! stays in the library, so that every face behaves the same.

use std::io::Write;

pub mod check;
pub mod env;
pub mod isolate;
pub mod native;
pub mod units;

/// Exit status for bad usage and for anything that kept isobox from running
/// the program or from knowing how it ended.
pub const EXIT_TROUBLE: u8 = 2;

/// Prints `isobox: <message>` as exactly one line on stderr.
///
/// Line breaks inside the message are folded into spaces: scripts and tests
/// rely on an error being one line.
pub fn print_error(message: &str) {
    // Nothing useful can be done when stderr itself is gone.
    let _ = writeln!(std::io::stderr().lock(), "isobox: {}", one_line(message));
}

/// `text` trimmed, with every line break (`\n`, `\r`) turned into a space:
/// error lines, summary lines and meta file values are read line by line,
/// so a message must never start a new one.
pub fn one_line(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect()
}
