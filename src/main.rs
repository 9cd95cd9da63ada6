//! The `isobox` binary: sets up logging, picks the face that matches how it
//! was called and turns whatever happens into an exit status.

// The C runtime calls `main` below directly: see there. A test build
// keeps the test harness's own `main`.
#![cfg_attr(not(test), no_main)]

use std::ffi::OsString;
use std::io::{IsTerminal, Write};

use isobox::sys::early;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

mod cli;
#[cfg(feature = "serve")]
mod server;

/// The process's entry, called by the C runtime instead of Rust's own
/// wrapper. That wrapper first asks glibc for the main thread's stack
/// bounds (glibc reads `/proc/self/maps` for them) and maps an alternate
/// signal stack, to print a message on a stack overflow: about 65 µs of
/// every command-line invocation, before any of isobox's work, where a
/// judge calls the command three times per test case. What of the wrapper
/// isobox relies on is done here: standard input, output and error open
/// (so that no file this possibly set-user-ID program opens becomes one of
/// them), `SIGPIPE` ignored (a closed pipe is a write error, not death),
/// and standard output flushed on the way out (`std::process::exit`).
/// A stack overflow is then an ordinary `SIGSEGV`. The arguments come from
/// `std::env`, which glibc hands to Rust's standard library before `main`.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    if isobox::sys::open_standard_fds().is_err() {
        std::process::exit(i32::from(cli::EXIT_TROUBLE));
    }
    isobox::sys::ignore_sigpipe();
    let code = run();
    // `ExitCode` keeps its number to itself on stable Rust (its
    // `exit_process` is not stable yet): the number is found by comparison.
    let status = (0..=u8::MAX)
        .find(|&number| ExitCode::from(number) == code)
        .unwrap_or(cli::EXIT_TROUBLE);
    // Flushes standard output as Rust's wrapper would on the way out.
    std::process::exit(i32::from(status))
}

#[cfg_attr(test, allow(dead_code))]
fn run() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    init_logging();
    install_panic_hook();
    // Unwinding instead of exiting from the hook lets the throwaway box
    // directory be removed by its destructor on the way out.
    match std::panic::catch_unwind(|| dispatch(args)) {
        Ok(code) => code,
        Err(_) => ExitCode::from(cli::EXIT_TROUBLE),
    }
}

// The entry point: version requests are answered before the C library
// starts (see `isobox::sys::early`); the test harness keeps its own.
#[cfg(not(test))]
isobox::early_entry!(answer_early);

/// Answers what needs nothing of the C library, as the faces would answer
/// it: `--version` alone when called as `isolate`, `--version` or `-V`
/// alone by any other name (`dispatch` sends exactly these to the version
/// printers); and hands a root caller's `--run` in the isolate face
/// (chosen as `dispatch` chooses it) to the box's agent when it has one,
/// and a root caller's `isobox run` to the runner when one is up.
/// Anything else returns, and the program starts as usual. Keeps the
/// rules of `isobox::sys::early`, which `tests/early_start.rs` checks on
/// the built executable.
#[cfg_attr(test, allow(dead_code))]
fn answer_early(start: &early::Start) {
    let (Some(program), Some(first)) = (start.arg(0), start.arg(1)) else {
        return;
    };
    let called_isolate = early::same_bytes(early::file_name(program), b"isolate");
    let version = early::same_bytes(first, b"--version");
    if start.argc() == 2 && (version || (!called_isolate && early::same_bytes(first, b"-V"))) {
        early::write_stdout(if called_isolate {
            cli::isolate::VERSION_TEXT.as_bytes()
        } else {
            cli::NATIVE_VERSION_TEXT.as_bytes()
        });
        early::exit(0)
    }
    if called_isolate || first.first() == Some(&b'-') {
        cli::isolate::front::forward(start);
    } else if early::same_bytes(first, b"run") {
        cli::native::runner::forward(start);
    }
}

/// Hands the arguments to the face that should handle them.
fn dispatch(mut args: Vec<OsString>) -> ExitCode {
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
    if !called_isolate {
        if let Some(reordered) = cli::options_after_subcommand(&args) {
            args = reordered;
        }
    }
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
    let help = matches!(first, Some("--help" | "-h")) || (first == Some("help") && args.len() == 2);
    let code = cli::native::main(args);
    if help {
        cli::print_out(format_args!("\n{}\n", cli::isolate::FACE_SUMMARY));
        #[cfg(feature = "serve")]
        cli::print_out(format_args!("\n{}\n", server::SUMMARY));
    }
    code
}

/// Logs to stderr, filtered by `ISOBOX_LOG` (`tracing` filter syntax),
/// warnings and errors only by default.
fn init_logging() {
    // Without ISOBOX_LOG only warnings and errors are shown, and no span:
    // a logger of its own does that without `tracing_subscriber`'s span
    // registry, whose set-up cost every command-line run about 60 µs.
    if std::env::var_os("ISOBOX_LOG").is_none() {
        let _ = tracing::subscriber::set_global_default(Warnings);
        return;
    }
    // A malformed ISOBOX_LOG must not stop the program from running; the
    // default filter is the sensible fallback.
    let filter = EnvFilter::try_from_env("ISOBOX_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_env_filter(filter)
        .init();
}

/// The default logger: each warning or error as one line on stderr, laid
/// out as `tracing_subscriber::fmt` lays it out (level, target, message,
/// fields); spans are neither recorded nor shown.
struct Warnings;

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::WARN)
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        // Never called for a span this logger disables; an id is required.
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        if cli::logs_silenced() {
            return;
        }
        let metadata = event.metadata();
        let mut line = format!("{:>5} {}: ", metadata.level(), metadata.target());
        let mut fields = FieldText {
            message: String::new(),
            rest: String::new(),
        };
        event.record(&mut fields);
        line.push_str(&fields.message);
        line.push_str(&fields.rest);
        line.push('\n');
        // One write, so that lines of concurrent threads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// An event's message, then its other fields as ` name=value`.
struct FieldText {
    message: String,
    rest: String,
}

impl tracing::field::Visit for FieldText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
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
