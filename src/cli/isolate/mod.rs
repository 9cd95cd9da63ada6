//! The isolate-compatible face: isolate's command line ([`args`], split
//! as `getopt_long` does in [`getopt`]), its
//! actions on numbered boxes ([`driver`]) and its meta file ([`meta`]).
//!
//! [`main`] is the entry point; it reads the arguments, answers `--help`
//! and `--version`, and turns any failure into isolate's `die()`: status
//! `XX` in the meta file, one line on stderr, exit status 2.

use std::ffi::OsString;
use std::process::ExitCode;

mod args;
mod driver;
mod getopt;
mod meta;

pub use args::FACE_SUMMARY;

use args::{parse, Action, USAGE};
use driver::{execute, MetaFile};
use meta::Meta;

use super::{print_error, EXIT_TROUBLE};

/// Runs the isolate face on `args` (argv, program name first).
pub fn main(args: Vec<OsString>) -> ExitCode {
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
    let parsed = match parse(&words) {
        Ok(parsed) => parsed,
        Err(message) => {
            print_error(&format!("{message} (see isolate --help)"));
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    match parsed.action {
        Action::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Action::Version => {
            println!(
                "The process isolator, as isobox {} (compatible with isolate 2.x)",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let mut meta = MetaFile::new(parsed.meta.as_deref());
    let code = execute(&parsed, &mut meta).unwrap_or_else(|error| {
        // isolate's die(): status XX in the meta file, the message on
        // stderr, exit status 2.
        let message = format!("{error:#}");
        meta.write(&Meta::sandbox_error(&message));
        print_error(&message);
        EXIT_TROUBLE
    });
    ExitCode::from(code)
}
