//! The `isobox` binary: sets up logging, picks the face that matches how it
//! was called and turns whatever happens into an exit status.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

mod cli;
#[cfg(feature = "serve")]
mod server;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if asks_only_for_the_version(&args) {
        // What clap would print, without building the whole command tree
        // (and the logger) first; an unwritable stdout is not an error here
        // either.
        let _ = writeln!(std::io::stdout(), "isobox {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    init_logging();
    install_panic_hook();
    // Unwinding instead of exiting from the hook lets the throwaway box
    // directory be removed by its destructor on the way out.
    match std::panic::catch_unwind(|| dispatch(args)) {
        Ok(code) => code,
        Err(_) => ExitCode::from(cli::EXIT_TROUBLE),
    }
}

/// `isobox --version` (or `-V`) and nothing else, not called as
/// `isolate` (whose face has a version text of its own).
fn asks_only_for_the_version(args: &[OsString]) -> bool {
    let [program, flag] = args else {
        return false;
    };
    let called_isolate = std::path::Path::new(program)
        .file_name()
        .is_some_and(|name| name == "isolate");
    !called_isolate && (flag == "--version" || flag == "-V")
}

/// Hands the arguments to the face that should handle them.
fn dispatch(args: Vec<OsString>) -> ExitCode {
    // ======================== FACE DISPATCH ========================
    // The isolate-compatible face is chosen here, and only here: when the
    // file name of argv[0] is `isolate`, or when the first argument starts
    // with `-` and is not --help, -h, --version or -V. Everything else goes
    // to the native subcommands; their help also explains the isolate face.
    // ===============================================================
    let called_isolate = args
        .first()
        .and_then(|name| std::path::Path::new(name).file_name())
        .is_some_and(|name| name == "isolate");
    let first = args.get(1).map(|arg| arg.to_string_lossy().into_owned());
    let first = first.as_deref();
    let native_flag = matches!(first, Some("--help" | "-h" | "--version" | "-V"));
    if called_isolate || (first.is_some_and(|arg| arg.starts_with('-')) && !native_flag) {
        return cli::isolate::main(args);
    }
    // Only the isolate face knows what a caller who is not root may do in
    // a set-user-ID installation; the others run with the caller's own
    // ids (so `isobox run` refuses such a caller unless `--unisolated`).
    if let Err(error) = isobox::sys::drop_set_id() {
        cli::print_error(&format!("cannot drop set-user-ID privileges: {error}"));
        return ExitCode::from(cli::EXIT_TROUBLE);
    }
    // `isobox serve` is the service face (go-judge's REST API); it has its
    // own arguments and never reaches the native parser.
    #[cfg(feature = "serve")]
    if first == Some("serve") {
        return server::main(args);
    }
    let help = matches!(first, Some("--help" | "-h"));
    let code = cli::native::main(args);
    if help {
        println!("\n{}", cli::isolate::FACE_SUMMARY);
        #[cfg(feature = "serve")]
        println!("\n{}", server::SUMMARY);
    }
    code
}

/// Logs to stderr, filtered by `ISOBOX_LOG` (`tracing` filter syntax),
/// warnings and errors only by default.
fn init_logging() {
    // A malformed ISOBOX_LOG must not stop the program from running; the
    // default filter is the sensible fallback.
    // Parsing a filter costs about half a millisecond, paid on every run
    // of a judge: only when ISOBOX_LOG asks for one.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time();
    match std::env::var_os("ISOBOX_LOG") {
        Some(_) => {
            let filter =
                EnvFilter::try_from_env("ISOBOX_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
            builder.with_env_filter(filter).init();
        }
        None => builder
            .with_max_level(tracing::level_filters::LevelFilter::WARN)
            .init(),
    }
}

/// Reports a panic as one `isobox: internal error` line, never with a
/// backtrace: users get a clear line, and the location is enough to find
/// the bug.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unexpected failure");
        let place = info
            .location()
            .map(|at| format!(" (at {}:{})", at.file(), at.line()))
            .unwrap_or_default();
        cli::print_error(&format!("internal error: {message}{place}"));
    }));
}
