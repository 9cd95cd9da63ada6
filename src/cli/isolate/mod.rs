//! The isolate-compatible face: isolate's command line ([`args`], split
//! as `getopt_long` does in [`getopt`]), its
//! actions on numbered boxes ([`driver`]) and its meta file ([`meta`]).
//!
//! [`main`] is the entry point; it reads the arguments, answers `--help`
//! and `--version`, and turns any failure into isolate's `die()`: status
//! `XX` in the meta file, one line on stderr, exit status 2.

use std::ffi::OsString;
use std::process::ExitCode;

mod agent;
mod args;
mod driver;
pub mod front;
mod getopt;
mod manual;
mod meta;
mod service;

pub use manual::manual_page;

pub use args::FACE_SUMMARY;

use args::{parse, Action, USAGE};
use driver::{execute, MetaFile};
use meta::Meta;

use super::{print_error, program_name, set_program_name, EXIT_TROUBLE};

/// The version of isolate whose command line, configuration file and meta
/// file this face follows, as a literal for `concat!`.
macro_rules! isolate_version {
    () => {
        "2.6"
    };
}

/// The text of `isolate --version`. The first line is isolate's own:
/// front-ends read the version as what follows `The process isolator `
/// on it (or only look for that phrase), so nothing else may be on it.
pub const VERSION_TEXT: &str = concat!(
    "The process isolator ",
    isolate_version!(),
    "\nisobox ",
    super::version_literal!(),
    ", a sandbox that follows isolate ",
    isolate_version!(),
    "; not isolate itself\n"
);

/// Prints [`VERSION_TEXT`] on stdout; an unwritable stdout is not an error
/// (as for clap's `--version`).
pub fn print_version() {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(VERSION_TEXT.as_bytes());
}

/// Runs the isolate face on `args` (argv, program name first).
pub fn main(args: Vec<OsString>) -> ExitCode {
    if let Some(name) = args
        .first()
        .and_then(|program| std::path::Path::new(program).file_name())
    {
        set_program_name(name.to_string_lossy().into_owned());
    }
    let mut words = Vec::with_capacity(args.len());
    for (index, arg) in args.into_iter().enumerate().skip(1) {
        match arg.into_string() {
            Ok(word) => words.push(word),
            Err(raw) => {
                print_error(&format!(
                    "argument {index} ({}) is not valid UTF-8",
                    raw.to_string_lossy()
                ));
                return ExitCode::from(EXIT_TROUBLE);
            }
        }
    }
    if words.first().map(String::as_str) == Some(agent::AGENT_FLAG) {
        return agent::main(&words[1..]);
    }
    if words.first().map(String::as_str) == Some(service::SERVICE_FLAG) {
        return service::main(&words[1..]);
    }
    let parsed = match parse(&words) {
        Ok(parsed) => parsed,
        Err(message) => {
            print_error(&format!("{message} (see {} --help)", program_name()));
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    match parsed.action {
        Action::Help => {
            crate::cli::print_out(format_args!("{USAGE}\n"));
            return ExitCode::SUCCESS;
        }
        Action::Version => {
            print_version();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let mut meta = MetaFile::new(parsed.meta.as_deref());
    let code = execute(&parsed, &words, &mut meta).unwrap_or_else(|error| die(&error, &mut meta));
    ExitCode::from(code)
}

/// isolate's die(): status XX in the meta file, the message on stderr;
/// returns exit status 2.
fn die(error: &anyhow::Error, meta: &mut MetaFile) -> u8 {
    let mut message = crate::cli::error_text(error);
    if let Err(problem) = meta.write(&Meta::sandbox_error(&message)) {
        // One line still: the error, then why the meta file lacks it.
        message = format!("{message}; and {problem}");
    }
    print_error(&message);
    EXIT_TROUBLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_text_names_the_isolate_version_it_follows() {
        let mut lines = VERSION_TEXT.lines();
        assert_eq!(lines.next(), Some("The process isolator 2.6"));
        let second = lines.next().unwrap();
        assert!(second.starts_with(&format!("isobox {}, ", crate::cli::VERSION)));
        assert!(second.ends_with("follows isolate 2.6; not isolate itself"));
        assert_eq!(lines.next(), None);
    }
}
