//! The command-line faces of isobox.
//!
//! A face only translates: its arguments into an [`isobox::IsolateConfig`],
//! the [`isobox::ExecutionResult`] into its output and exit status. Policy
//! stays in the library, so that every face behaves the same.

use std::ffi::OsString;
use std::io::Write;

pub mod check;
mod conf_page;
pub mod env;
pub mod front;
pub mod generate;
pub mod isolate;
pub mod native;
pub(crate) mod resident;
mod text;
pub mod units;

pub use text::one_line;

/// The version and the commit it was built from (`build.rs`), as
/// `isobox --version` prints them after the name: `0.1.0 (commit
/// 0123456789ab)`, or `(commit unknown)` where the build could not tell.
pub const VERSION: &str = version_literal!();

/// [`VERSION`] as a literal, for texts built with `concat!` (which takes
/// only literals): the version texts are constants, printed before the C
/// library starts (`sys::early`).
macro_rules! version_literal {
    () => {
        concat!(
            env!("CARGO_PKG_VERSION"),
            " (commit ",
            env!("ISOBOX_COMMIT"),
            ")"
        )
    };
}
pub(crate) use version_literal;

/// What `isobox --version` (and `-V`) prints, as clap prints it.
pub const NATIVE_VERSION_TEXT: &str = concat!("isobox ", version_literal!(), "\n");

/// Exit status for bad usage and for anything that kept isobox from running
/// the program or from knowing how it ended.
pub const EXIT_TROUBLE: u8 = 2;

/// The native subcommands, as the face dispatch must recognise them.
const NATIVE_SUBCOMMANDS: [&str; 6] = [
    "run",
    "runner",
    "check-environment",
    "serve",
    "generate",
    "help",
];

/// isolate's commands: an argument list with one of them is the isolate
/// face's, whatever else it holds.
const ISOLATE_COMMANDS: [&str; 5] = [
    "--init",
    "--run",
    "--cleanup",
    "--version",
    "--print-cg-root",
];

/// `isobox --json run ...` put right: options written before a native
/// subcommand are moved after it (`isobox run --json ...`), where its
/// parser reads them, or names them as unknown. `None` when the arguments
/// are not such a list: no subcommand word before `--`, or one of
/// isolate's commands among them (then the isolate face reads them).
pub fn options_after_subcommand(args: &[OsString]) -> Option<Vec<OsString>> {
    let before_program = args
        .iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .collect::<Vec<_>>();
    if before_program
        .iter()
        .any(|arg| ISOLATE_COMMANDS.iter().any(|command| *arg == command))
    {
        return None;
    }
    let at = before_program
        .iter()
        .position(|arg| NATIVE_SUBCOMMANDS.iter().any(|name| *arg == name))?
        + 1;
    let first = args.get(1)?;
    if at == 1 || !first.to_string_lossy().starts_with('-') {
        return None;
    }
    let mut reordered = Vec::with_capacity(args.len());
    reordered.push(args[0].clone());
    reordered.push(args[at].clone());
    reordered.extend_from_slice(&args[1..at]);
    reordered.extend_from_slice(&args[at + 1..]);
    Some(reordered)
}

/// The name errors start with: `isobox` unless a face set another
/// ([`set_program_name`]).
static PROGRAM_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes errors start with `name` from now on: the isolate face uses the
/// name it was invoked by, as isolate does, so that log filters written
/// for isolate keep matching. Only the first call counts.
pub fn set_program_name(name: String) {
    let _ = PROGRAM_NAME.set(name);
}

/// The name errors start with (see [`set_program_name`]).
pub fn program_name() -> &'static str {
    PROGRAM_NAME.get().map_or("isobox", String::as_str)
}

/// An error and its causes in one line, `a: b: c` as `{:#}` gives them,
/// leaving out a cause whose text the line already ends with (an error
/// whose own text includes its source, as the library's `Io` variants do,
/// would otherwise say it twice).
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

/// Whether warnings are held back: set by the isolate face's agent while a
/// run has the client's stderr as its own (the agent's warnings, about its
/// warm box, are not the client's business and would break its one-line
/// errors; outside a run the agent's stderr is `/dev/null` anyway).
static LOGS_SILENCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Holds warnings back (`true`) or lets them through again.
pub fn silence_logs(silenced: bool) {
    LOGS_SILENCED.store(silenced, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`silence_logs`] holds warnings back now.
pub fn logs_silenced() -> bool {
    LOGS_SILENCED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes `text` to stdout, ignoring a stdout that is closed or full:
/// `isobox help | head` must not turn into a panic after the reader has
/// gone, and `println!` panics on any write error.
pub fn print_out(text: impl std::fmt::Display) {
    let _ = write!(std::io::stdout().lock(), "{text}");
}

/// [`print_out`]'s counterpart for stderr, for the lines a face prints there
/// that are not errors (isolate's verdict line, verbose notes).
pub fn print_note(text: impl std::fmt::Display) {
    // Formatted first and written at once: stderr is unbuffered, and a
    // line formatted straight into it costs a write per piece.
    let _ = std::io::stderr()
        .lock()
        .write_all(text.to_string().as_bytes());
}

/// Prints `isobox: <message>` (or the name given to [`set_program_name`])
/// as exactly one line on stderr.
///
/// Line breaks inside the message are folded into spaces: scripts and tests
/// rely on an error being one line.
pub fn print_error(message: &str) {
    // Nothing useful can be done when stderr itself is gone.
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}: {}",
        program_name(),
        one_line(message)
    );
}

/// From now on `SIGHUP`, `SIGINT`, `SIGQUIT` and `SIGTERM` stop the run
/// under way instead of the process, as isolate's keeper does: the run ends
/// as interrupted (isolate's `status:SG`, `message:Interrupted`) and the
/// face cleans up and reports as after any run. Every face that runs a
/// program calls this once it has something to clean up.
pub fn catch_interruptions() {
    if let Err(error) = isobox::sys::catch_interruptions() {
        // The run can go on; a signal would then end it the old way.
        tracing::warn!("cannot catch interruption signals: {error}");
    }
}

/// The cgroup a `--cgroup` option names: a directory, or `self`, the cgroup
/// v2 directory the caller runs in (what systemd delegated to a service or
/// scope with `Delegate=yes`; isobox moves itself into a leaf below it).
pub fn cgroup_option(value: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    if value != std::path::Path::new("self") {
        return Ok(value.to_path_buf());
    }
    let root = std::path::Path::new("/sys/fs/cgroup");
    if !root.join("cgroup.controllers").exists() {
        anyhow::bail!("--cgroup self: no cgroup v2 hierarchy at /sys/fs/cgroup");
    }
    isobox::cgroup::own_cgroup(root)
        .ok_or_else(|| anyhow::anyhow!("--cgroup self: /proc/self/cgroup names no cgroup v2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reorder(args: &[&str]) -> Option<Vec<String>> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        options_after_subcommand(&args).map(|args| {
            args.into_iter()
                .map(|arg| arg.into_string().unwrap())
                .collect()
        })
    }

    #[test]
    fn an_error_says_its_cause_once() {
        // BoxError::Io shows its source in its own text, as many of the
        // library's errors do; anyhow's `{:#}` said it twice.
        let io = std::io::Error::from_raw_os_error(libc::EMFILE);
        let error = anyhow::Error::new(isobox::boxes::BoxError::Io {
            context: "cannot reset /b/0/box".into(),
            source: io,
        });
        assert_eq!(
            error_text(&error),
            "cannot reset /b/0/box: Too many open files (os error 24)"
        );
        // Causes that add something are all kept, in order.
        let error = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOSPC))
            .context("cannot write /m")
            .context("reporting");
        assert_eq!(
            error_text(&error),
            "reporting: cannot write /m: No space left on device (os error 28)"
        );
    }

    #[test]
    fn options_before_a_subcommand_move_after_it() {
        assert_eq!(
            reorder(&["isobox", "--json", "--time", "1", "run", "--", "/bin/true"]).unwrap(),
            ["isobox", "run", "--json", "--time", "1", "--", "/bin/true"]
        );
        assert_eq!(
            reorder(&["isobox", "--strict", "check-environment"]).unwrap(),
            ["isobox", "check-environment", "--strict"]
        );
    }

    #[test]
    fn isolate_argument_lists_are_left_alone() {
        for args in [
            &["isobox", "run", "--json", "--", "/bin/true"][..],
            &["isobox", "-b", "1", "--run", "--", "run"],
            &["isobox", "-M", "run", "--run", "--", "/bin/true"],
            &["isobox", "-b", "1", "--init"],
            &["isobox", "--json", "--", "run"],
        ] {
            assert_eq!(reorder(args), None, "{args:?}");
        }
    }
}
