//! The native command line: `isobox run [OPTIONS] -- CMD [ARGS...]`.
//!
//! `run` makes a throwaway box directory, runs one program in it under the
//! given limits, reports what happened and removes the directory again.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{File, Permissions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Parser, Subcommand};
use isobox::dirs::DirRule;
use isobox::{ExecutionResult, ExecutionStatus, IsolateConfig, ProcessExecutor, Stdin};
use serde::Serialize;

use super::env::{self, EmptyName, EnvRule, Environment, WhenAbsent};
use super::units::{human_size, parse_count, parse_size, parse_time};
use super::{one_line, print_error, EXIT_TROUBLE};

/// Name prefix of throwaway box directories in the temporary directory.
const BOX_DIR_PREFIX: &str = "isobox-run-";

/// The native command line.
#[derive(Debug, Parser)]
#[command(
    name = "isobox",
    bin_name = "isobox",
    version,
    propagate_version = true,
    about = "Run untrusted programs with hard limits and exact measurements"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The native subcommands.
// Parsed once per process: the size of the run variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run one program in a throwaway box and report what happened.
    ///
    /// isobox creates a fresh box directory (isobox-run-XXXXXX in the
    /// temporary directory, $TMPDIR or /tmp), runs the program there with
    /// the given limits and removes the directory afterwards. When isobox
    /// runs as root the program runs as user and group 60000. Limits that
    /// are not given are not enforced.
    #[command(after_help = RUN_AFTER_SHORT_HELP, after_long_help = RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Check whether isobox can run in strict mode here and what makes
    /// timing noisy.
    ///
    /// Prints one line per finding, OK, WARN or FAIL: kernel, cgroup
    /// version and controllers (with a probe that creates and removes a
    /// cgroup), namespaces, seccomp, a strict run of /bin/true, then swap,
    /// CPU frequency boost, SMT, address-space randomization and
    /// transparent huge pages. Exit status 0 when strict mode works here,
    /// 1 when it does not.
    CheckEnvironment,
}

/// Text after the options of `isobox run -h`.
const RUN_AFTER_SHORT_HELP: &str = "\
SIZE is bytes or a whole number with K, M, G or T (powers of 1024): 64M, 1G.
TIME is seconds: 1, 0.5, 2.25. Exit status: 0 success, 1 the program failed or
hit a limit, 2 usage or isobox error. See --help for more.";

/// Text after the options of `isobox run --help`.
const RUN_AFTER_HELP: &str = "\
Units:
  SIZE  bytes, or a whole number with K, M, G or T (powers of 1024, any case;
        KiB, KB, MiB, MB... mean the same): 1000, 512K, 64M, 1G
  TIME  seconds, a non-negative decimal number: 1, 0.5, 2.25

Output:
  The program's stdout and stderr go to isobox's own as they are written; then
  one summary line goes to stderr, e.g. 'TimeLimit cpu 1.002s wall 1.010s mem
  1.2MiB'. With --json, the output is captured instead and stdout receives one
  JSON object with the keys status, exit_code, signal, cpu_time, wall_time,
  memory_peak, max_rss, oom_killed, stdout, stderr, message and
  absent_protections (a list of what the run went without: namespaces,
  cgroup, seccomp, separate_user; empty when fully isolated).

Privileges:
  isobox run needs root. A caller who is not root is refused (exit status 2)
  unless they pass --unisolated, which runs the program with none of the
  isolation: as the caller, seeing the host, limited by rlimits only.

Exit status:
  0  the program exited with status 0 within every limit
  1  the program failed or hit a limit
  2  bad usage, the program could not be executed, or isobox itself failed

Example:
  isobox run --time 1 --mem 256M -- ./solution";

/// Options of `isobox run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// CPU time limit in seconds (user + system of all the program's
    /// processes)
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_negative_numbers = true)]
    time: Option<Duration>,

    /// Wall-clock limit in seconds [default: 2 × max(--time, --extra-time) +
    /// 1 when either is given, none otherwise]
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_negative_numbers = true)]
    wall_time: Option<Duration>,

    /// CPU time in seconds after which the program is killed, counted from
    /// the start (not added to --time); using more than --time is still a
    /// time limit verdict
    ///
    /// The program is killed once its CPU time exceeds the larger of --time
    /// and --extra-time, so it can be seen to overrun without being cut off
    /// at the exact limit.
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_negative_numbers = true)]
    extra_time: Option<Duration>,

    /// Memory limit of all the program's processes together
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_negative_numbers = true)]
    mem: Option<u64>,

    /// Maximum number of processes and threads alive at once
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    processes: Option<u64>,

    /// Largest file the program may write
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_negative_numbers = true)]
    fsize: Option<u64>,

    /// Stack size limit of each process [default: unlimited]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_negative_numbers = true)]
    stack: Option<u64>,

    /// Maximum number of open files of each process
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    open_files: Option<u64>,

    /// Most output kept of each of stdout and stderr; writing more is an
    /// output limit verdict [default: 64M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_negative_numbers = true)]
    output_limit: Option<u64>,

    /// Feed this file to the program's standard input [default: /dev/null]
    #[arg(long, value_name = "FILE")]
    stdin: Option<PathBuf>,

    /// Set VAR=VAL, pass VAR from isobox's environment (VAR), or remove it
    /// (VAR=); may be repeated
    ///
    /// The program starts with PATH=/usr/local/bin:/usr/bin:/bin,
    /// LIBC_FATAL_STDERR_=1 and HOME=/box, and nothing
    /// else of isobox's own environment. Each --env is applied in order. A
    /// VAR that isobox's own environment does not have is left as it is.
    #[arg(long = "env", value_name = "VAR[=VAL]", value_parser = parse_env_rule)]
    env: Vec<EnvRule>,

    /// Capture the output and print one JSON object on stdout instead of
    /// the summary line
    #[arg(long)]
    json: bool,

    /// Directory rule in isolate's syntax: IN=OUT[:OPTIONS], IN[:OPTIONS]
    /// or IN= (remove); may be repeated
    ///
    /// Options: rw, dev, noexec, maybe, fs, tmp, norec. By default the box
    /// sees /box (its directory, read-write), read-only /bin, /lib, /lib64
    /// and /usr, a fresh /dev, its own /proc and a private /tmp.
    #[arg(long = "dir", value_name = "RULE", value_parser = parse_dir_rule)]
    dir: Vec<DirRule>,

    /// Start without the default directory rules (only /box and --dir)
    #[arg(long)]
    no_default_dirs: bool,

    /// Turn the default seccomp policy off
    #[arg(long)]
    no_seccomp: bool,

    /// isolate's system-call restrictions, a sum of: 1 keyrings, 2 vsock,
    /// 4 file locks, 8 io_uring, 16 foreign architectures (default 65535:
    /// all)
    #[arg(long, value_name = "FLAGS", default_value_t = isobox::jail::seccomp::syscall_flags::ALL, conflicts_with = "no_seccomp")]
    syscalls: u32,

    /// A seccomp policy file (seccompiler JSON) that extends the default
    #[arg(long, value_name = "FILE", conflicts_with = "no_seccomp")]
    seccomp_policy: Option<PathBuf>,

    /// Keep the host's network instead of an empty network namespace
    #[arg(long)]
    share_net: bool,

    /// Refuse to run unless isobox is root with usable cgroups, and treat
    /// any limit that cannot be applied as an error
    #[arg(long)]
    strict: bool,

    /// Run even without the privileges for isolation (not root): no
    /// namespaces, no separate user, no cgroup; the program sees and can
    /// touch everything the caller can
    ///
    /// Without this option a caller who is not root is refused.
    #[arg(long, conflicts_with = "strict")]
    unisolated: bool,

    /// The program to run and its arguments, after `--`
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Parses the value of `--dir`.
fn parse_dir_rule(text: &str) -> Result<DirRule, String> {
    text.parse::<DirRule>().map_err(|err| err.to_string())
}

/// Parses the value of `--env`.
fn parse_env_rule(text: &str) -> Result<EnvRule, String> {
    EnvRule::parse(text).map_err(|EmptyName| {
        "the variable name is empty; expected VAR, VAR=VAL or VAR=".to_string()
    })
}

/// Runs the native command line on `args` (argv, program name first) and
/// returns the exit status.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // --help and --version come back as "errors" that belong on stdout.
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            print_error(&first_line_of_clap_error(&error));
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    let code = match cli.command {
        Command::Run(args) => run(args).unwrap_or_else(|error| {
            print_error(&error.to_string());
            EXIT_TROUBLE
        }),
        Command::CheckEnvironment => return super::check::main(),
    };
    ExitCode::from(code)
}

/// The first line of a clap error, without clap's own `error: ` prefix: the
/// usage dump and hints that follow it are noise in a one-line report.
fn first_line_of_clap_error(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    // clap answers a bare `isobox` with the whole help text as an error.
    if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "no subcommand given; usage: isobox run [OPTIONS] -- CMD [ARGS...] \
                (see isobox --help)"
            .to_string();
    }
    let rendered = error.render().to_string();
    let line = rendered.lines().next().unwrap_or_default().trim();
    let mut line = line
        .strip_prefix("error:")
        .unwrap_or(line)
        .trim()
        .to_string();
    // An unknown argument is usually a misplaced program; the usage line
    // shows where it belongs.
    if error.kind() == ErrorKind::UnknownArgument {
        if let Some(ContextValue::StyledStr(usage)) = error.get(ContextKind::Usage) {
            let usage = usage.to_string();
            let usage = usage.trim();
            let usage = usage.strip_prefix("Usage:").unwrap_or(usage).trim();
            line = format!("{line}; usage: {usage}");
        }
    }
    line
}

/// Carries out `isobox run` and returns the exit status.
///
/// Errors are everything that makes the outcome of the program unknown;
/// they are reported by the caller as one line with exit status 2.
fn run(args: RunArgs) -> Result<u8> {
    let Some(program) = args.command.first() else {
        bail!("no command given; usage: isobox run [OPTIONS] -- CMD [ARGS...]");
    };
    if program.is_empty() {
        bail!("the program name is empty");
    }
    if !isobox::jail::sys::is_root() && !args.unisolated {
        bail!(
            "not root (uid {}): isobox run needs root for namespaces, a separate user and \
             cgroups; pass --unisolated to run the program without isolation",
            isobox::jail::sys::effective_uid()
        );
    }
    let stdin = open_stdin(args.stdin.as_deref())?;
    // From here on the box directory exists; every return below drops it,
    // which removes it.
    let box_dir = create_box_dir()?;
    let config = build_config(&args, box_dir.path(), |name| std::env::var_os(name))?;

    let mut executor = ProcessExecutor::new(config).map_err(|error| anyhow!("{error}"))?;
    let outcome = executor.execute_with_stdin(&args.command, stdin);
    let cleaned = executor.cleanup();
    drop(executor);
    let result = match outcome {
        Ok(result) => result,
        Err(error) => {
            if let Err(cleanup_error) = cleaned {
                tracing::warn!("cleaning up after the failed run: {cleanup_error}");
            }
            bail!("{error}");
        }
    };

    report(&result, args.json)?;

    // Troubles after the run are reported after its result, so the result
    // is never lost; any of them makes the exit status 2.
    let mut troubles = Vec::new();
    if let Some(errno) = result.exec_errno {
        troubles.push(format!("cannot execute {program}: {}", strerror(errno)));
    }
    if let Err(error) = cleaned {
        troubles.push(format!("cleaning up after the run: {error}"));
    }
    if let Err(error) = box_dir.remove() {
        troubles.push(error);
    }
    if troubles.is_empty() {
        return Ok(exit_status(result.status));
    }
    for trouble in &troubles {
        print_error(trouble);
    }
    Ok(EXIT_TROUBLE)
}

/// Opens the `--stdin` file in isobox, with isobox's permissions, so a
/// missing or unreadable file is a usage error rather than a failed run.
fn open_stdin(path: Option<&Path>) -> Result<Stdin> {
    let Some(path) = path else {
        return Ok(Stdin::Null);
    };
    let file = File::open(path).map_err(|error| {
        anyhow!(
            "cannot open --stdin file {}: {}",
            path.display(),
            describe_io_error(&error)
        )
    })?;
    // Opening a directory succeeds; reading it would only fail inside the
    // program, so refuse it here.
    let is_dir = file.metadata().map(|meta| meta.is_dir()).unwrap_or(false);
    if is_dir {
        bail!("cannot use --stdin {}: it is a directory", path.display());
    }
    Ok(Stdin::File(file))
}

/// The throwaway box directory; removed on drop (best effort) or by
/// [`remove`](Self::remove). Removal copes with whatever the program left,
/// however deeply nested, and follows no link.
struct BoxDir(Option<PathBuf>);

impl BoxDir {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn remove(mut self) -> std::result::Result<(), String> {
        let Some(path) = self.0.take() else {
            return Ok(());
        };
        isobox::cleanup::remove_tree(&path).map_err(|error| {
            format!(
                "cannot remove the box directory {}: {}",
                path.display(),
                describe_io_error(&error)
            )
        })
    }
}

impl Drop for BoxDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            if let Err(error) = isobox::cleanup::remove_tree(&path) {
                tracing::warn!(
                    "cannot remove the box directory {}: {error}",
                    path.display()
                );
            }
        }
    }
}

/// Creates the throwaway box directory, mode 0755 whatever the umask, so
/// the box user can enter it.
fn create_box_dir() -> Result<BoxDir> {
    let parent = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix(BOX_DIR_PREFIX)
        .tempdir_in(&parent)
        .map_err(|error| {
            anyhow!(
                "cannot create a box directory in {}: {}",
                parent.display(),
                describe_io_error(&error)
            )
        })?;
    let dir = BoxDir(Some(dir.keep()));
    std::fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).map_err(|error| {
        anyhow!(
            "cannot set the mode of the box directory {}: {}",
            dir.path().display(),
            describe_io_error(&error)
        )
    })?;
    Ok(dir)
}

/// Translates the options into the library's configuration.
///
/// `lookup` reads isobox's own environment; it is a parameter so that the
/// translation can be tested without touching the real environment.
///
/// The program's uid and gid are left to the library: as root it claims
/// a uid of the run's own, disjoint from isolate's boxes and from every
/// other live run ([`isobox::types::ONE_SHOT_UIDS`]).
fn build_config(
    args: &RunArgs,
    box_dir: &Path,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<IsolateConfig> {
    // `--dir IN=./X` means X in the caller's working directory, as any
    // relative path on a command line does.
    let mut dir_rules = args.dir.clone();
    let relative = |rule: &DirRule| matches!(&rule.action, isobox::dirs::DirAction::Bind(source) if source.starts_with("."));
    if dir_rules.iter().any(relative) {
        let cwd = std::env::current_dir().map_err(|error| {
            anyhow!(
                "--dir with a relative source: cannot read the working directory: {}",
                describe_io_error(&error)
            )
        })?;
        isobox::dirs::anchor_relative_sources(&mut dir_rules, &cwd);
    }
    Ok(IsolateConfig {
        workdir: box_dir.to_path_buf(),
        strict_mode: args.strict,
        time_limit: args.time,
        extra_time: args.extra_time,
        wall_time_limit: args
            .wall_time
            .or_else(|| default_wall_time(args.time, args.extra_time)),
        memory_limit: args.mem,
        process_limit: args.processes,
        file_size_limit: args.fsize,
        stack_limit: args.stack,
        open_files_limit: args.open_files,
        output_limit: args
            .output_limit
            .or(Some(isobox::types::DEFAULT_OUTPUT_LIMIT)),
        environment: build_environment(&args.env, lookup)?,
        dir_rules,
        default_dirs: !args.no_default_dirs,
        seccomp: !args.no_seccomp,
        seccomp_policy: args.seccomp_policy.clone(),
        syscall_flags: args.syscalls,
        share_net: args.share_net,
        uid: None,
        gid: None,
        // With --json the output belongs in the JSON object; otherwise the
        // user watches it as it comes.
        pass_through_output: !args.json,
        ..IsolateConfig::default()
    })
}

/// The wall-clock limit when none is given: twice the CPU limit plus a
/// second, so that a program that sleeps or waits is stopped too, while a
/// program that computes is always stopped by the CPU limit first.
fn default_wall_time(time: Option<Duration>, extra: Option<Duration>) -> Option<Duration> {
    let cpu = match (time, extra) {
        (Some(time), Some(extra)) => time.max(extra),
        (time, extra) => time.or(extra)?,
    };
    Some(cpu.saturating_mul(2).saturating_add(Duration::from_secs(1)))
}

/// The program's environment: a small fixed base changed by the `--env`
/// rules in order. Nothing else of isobox's environment gets through, so
/// that secrets of the caller never reach the program by accident.
///
/// `--env VAR` leaves the environment as it is when isobox has no `VAR`.
fn build_environment(
    rules: &[EnvRule],
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<Environment> {
    let mut environment = isobox::types::default_environment();
    env::apply(&mut environment, rules, WhenAbsent::Keep, |name| {
        lookup(name)
            .map(|value| {
                value.into_string().map_err(|_| {
                    anyhow!("--env {name}: its value in isobox's environment is not valid UTF-8")
                })
            })
            .transpose()
    })?;
    Ok(environment)
}

/// The JSON object printed by `--json`, field by field, so the output keeps
/// its documented shape whatever is added to [`ExecutionResult`].
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    status: &'static str,
    exit_code: Option<i32>,
    signal: Option<i32>,
    cpu_time: f64,
    wall_time: f64,
    memory_peak: u64,
    max_rss: u64,
    oom_killed: bool,
    stdout: &'a str,
    stderr: &'a str,
    message: &'a str,
    absent_protections: Vec<&'static str>,
}

impl<'a> From<&'a ExecutionResult> for JsonReport<'a> {
    fn from(result: &'a ExecutionResult) -> Self {
        Self {
            status: result.status.as_str(),
            exit_code: result.exit_code,
            signal: result.signal,
            cpu_time: result.cpu_time,
            wall_time: result.wall_time,
            memory_peak: result.memory_peak,
            max_rss: result.max_rss,
            oom_killed: result.oom_killed,
            stdout: &result.stdout,
            stderr: &result.stderr,
            message: &result.message,
            absent_protections: result
                .absent_protections
                .iter()
                .map(|protection| protection.as_str())
                .collect(),
        }
    }
}

/// Prints the result: the JSON object on stdout with `json`, otherwise the
/// summary line on stderr.
fn report(result: &ExecutionResult, json: bool) -> Result<()> {
    if json {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer(&mut stdout, &JsonReport::from(result))
            .map_err(|error| anyhow!("cannot write the JSON result: {error}"))?;
        writeln!(stdout)
            .and_then(|()| stdout.flush())
            .map_err(|error| anyhow!("cannot write the JSON result: {error}"))?;
    } else if result.exec_errno.is_none() {
        // A program that never started has no run to summarise; its error
        // line says everything.
        let _ = writeln!(std::io::stderr().lock(), "{}", summary_line(result));
    }
    Ok(())
}

/// One line saying how the run ended and what it used, e.g.
/// `RuntimeError cpu 0.001s wall 0.003s mem 1.2MiB exit 1`.
fn summary_line(result: &ExecutionResult) -> String {
    let mut line = format!(
        "{} cpu {:.3}s wall {:.3}s mem {}",
        result.status,
        result.cpu_time,
        result.wall_time,
        human_size(result.memory_peak)
    );
    // Writing to a String cannot fail.
    if let Some(code) = result.exit_code.filter(|&code| code != 0) {
        let _ = write!(line, " exit {code}");
    }
    if let Some(signal) = result.signal {
        let _ = write!(line, " signal {signal}");
    }
    let message = one_line(&result.message);
    if !message.is_empty() {
        let _ = write!(line, " ({message})");
    }
    line
}

/// Exit status of isobox for a finished run.
fn exit_status(status: ExecutionStatus) -> u8 {
    match status {
        ExecutionStatus::Success => 0,
        ExecutionStatus::InternalError => EXIT_TROUBLE,
        _ => 1,
    }
}

/// The system's description of an errno, e.g. "No such file or directory".
fn strerror(errno: i32) -> String {
    describe_io_error(&std::io::Error::from_raw_os_error(errno))
}

/// An I/O error as a person wants to read it: the system's description
/// without Rust's " (os error N)" suffix.
fn describe_io_error(error: &std::io::Error) -> String {
    let text = error.to_string();
    match error.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let argv = ["isobox", "run"].iter().chain(args).map(OsString::from);
        match Cli::try_parse_from(argv)?.command {
            Command::Run(args) => Ok(args),
            other => panic!("`isobox run ...` parsed as {other:?}"),
        }
    }

    fn config(args: &[&str]) -> IsolateConfig {
        let args = parse(args).expect("valid arguments");
        build_config(&args, Path::new("/tmp/isobox-run-test"), |_| None)
            .expect("valid configuration")
    }

    fn parse_error(args: &[&str]) -> String {
        first_line_of_clap_error(&parse(args).expect_err("arguments should be rejected"))
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_limit_reaches_the_configuration() {
        let config = config(&[
            "--time",
            "1.5",
            "--wall-time",
            "10",
            "--extra-time",
            "2",
            "--mem",
            "64M",
            "--processes",
            "8",
            "--fsize",
            "1G",
            "--stack",
            "8M",
            "--open-files",
            "32",
            "--output-limit",
            "512K",
            "--strict",
            "--",
            "/bin/true",
        ]);
        assert_eq!(config.time_limit, Some(Duration::from_millis(1500)));
        assert_eq!(config.wall_time_limit, Some(Duration::from_secs(10)));
        assert_eq!(config.extra_time, Some(Duration::from_secs(2)));
        assert_eq!(config.memory_limit, Some(64 << 20));
        assert_eq!(config.process_limit, Some(8));
        assert_eq!(config.file_size_limit, Some(1 << 30));
        assert_eq!(config.stack_limit, Some(8 << 20));
        assert_eq!(config.open_files_limit, Some(32));
        assert_eq!(config.output_limit, Some(512 << 10));
        assert!(config.strict_mode);
        assert!(config.pass_through_output);
        assert_eq!(config.workdir, Path::new("/tmp/isobox-run-test"));
        assert_eq!((config.uid, config.gid), (None, None));
    }

    #[test]
    fn limits_not_given_are_not_set() {
        let config = config(&["--", "/bin/true"]);
        assert_eq!(config.time_limit, None);
        assert_eq!(config.wall_time_limit, None);
        assert_eq!(config.extra_time, None);
        assert_eq!(config.memory_limit, None);
        assert_eq!(config.process_limit, None);
        assert!(!config.strict_mode);
    }

    #[test]
    fn wall_time_defaults_to_twice_the_cpu_limit_plus_a_second() {
        let wall = |args: &[&str]| config(args).wall_time_limit;
        assert_eq!(wall(&["--time", "1"]), Some(Duration::from_secs(3)));
        assert_eq!(wall(&["--time", "0.2"]), Some(Duration::from_millis(1400)));
        assert_eq!(wall(&["--extra-time", "2"]), Some(Duration::from_secs(5)));
        assert_eq!(
            wall(&["--time", "1", "--extra-time", "3"]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            wall(&["--time", "3", "--extra-time", "1"]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            wall(&["--time", "1", "--wall-time", "0.5"]),
            Some(Duration::from_millis(500))
        );
        assert_eq!(wall(&["--mem", "1M"]), None);
        assert_eq!(
            wall(&["--time", "1000000000"]),
            Some(Duration::from_secs(2_000_000_001))
        );
    }

    #[test]
    fn json_captures_output_instead_of_passing_it_through() {
        assert!(!config(&["--json", "--", "/bin/true"]).pass_through_output);
    }

    #[test]
    fn the_library_chooses_the_box_user() {
        let args = parse(&["--", "/bin/true"]).unwrap();
        let config = build_config(&args, Path::new("/tmp/b"), |_| None).unwrap();
        assert_eq!((config.uid, config.gid), (None, None));
    }

    #[test]
    fn command_comes_after_the_double_dash() {
        let args = parse(&["--time", "1", "--", "/bin/echo", "--time", "x"]).unwrap();
        assert_eq!(args.command, ["/bin/echo", "--time", "x"]);
        assert!(parse(&[]).unwrap().command.is_empty());
        assert!(parse(&["--"]).unwrap().command.is_empty());
    }

    #[test]
    fn environment_starts_from_a_fixed_base() {
        let environment = build_environment(&[], |_| Some(OsString::from("leaked"))).unwrap();
        assert_eq!(
            environment,
            [
                (
                    "PATH".to_string(),
                    "/usr/local/bin:/usr/bin:/bin".to_string()
                ),
                ("HOME".to_string(), "/box".to_string()),
                ("LIBC_FATAL_STDERR_".to_string(), "1".to_string()),
            ]
        );
    }

    #[test]
    fn env_rules_set_pass_and_unset_in_order() {
        let rules: Vec<EnvRule> = [
            "FOO=bar",
            "SECRET",
            "MISSING",
            "LIBC_FATAL_STDERR_=",
            "PATH=/opt/bin",
            "EQ=a=b",
            "FOO=baz",
        ]
        .iter()
        .map(|text| parse_env_rule(text).unwrap())
        .collect();
        let lookup = |name: &str| (name == "SECRET").then(|| OsString::from("s3cret"));
        let environment = build_environment(&rules, lookup).unwrap();
        let pairs: Vec<(&str, &str)> = environment
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("PATH", "/opt/bin"),
                ("HOME", "/box"),
                ("FOO", "baz"),
                ("SECRET", "s3cret"),
                ("EQ", "a=b"),
            ]
        );
    }

    #[test]
    fn passing_an_unset_variable_keeps_the_base_value() {
        let rules = [parse_env_rule("HOME").unwrap()];
        let environment = build_environment(&rules, |_| None).unwrap();
        assert!(environment.contains(&("HOME".to_string(), "/box".to_string())));
    }

    #[test]
    fn non_utf8_passed_variable_is_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let rules = [parse_env_rule("BIN").unwrap()];
        let lookup = |_: &str| Some(OsString::from_vec(vec![0xff, 0xfe]));
        let error = build_environment(&rules, lookup).unwrap_err();
        assert!(error.to_string().contains("not valid UTF-8"), "{error}");
    }

    #[test]
    fn env_rule_syntax() {
        assert_eq!(
            parse_env_rule("A=1"),
            Ok(EnvRule::Set("A".into(), "1".into()))
        );
        assert_eq!(parse_env_rule("A"), Ok(EnvRule::Pass("A".into())));
        assert_eq!(parse_env_rule("A="), Ok(EnvRule::Unset("A".into())));
        assert!(parse_env_rule("=1").is_err());
        assert!(parse_env_rule("").is_err());
    }

    #[test]
    fn usage_errors_become_one_clear_line() {
        for (args, expected) in [
            (
                &["--bogus", "--", "/bin/true"][..],
                "unexpected argument '--bogus'",
            ),
            (&["--mem", "12Q", "--", "/bin/true"][..], "unknown unit"),
            (
                &["--time", "-1", "--", "/bin/true"][..],
                "must not be negative",
            ),
            (
                &["--time=-0.5", "--", "/bin/true"][..],
                "must not be negative",
            ),
            (&["--time", "nan", "--", "/bin/true"][..], "finite"),
            (&["--wall-time", "abc", "--", "/bin/true"][..], "not a time"),
            (&["--processes", "-3", "--", "/bin/true"][..], "negative"),
            (
                &["--env", "=x", "--", "/bin/true"][..],
                "variable name is empty",
            ),
            (
                &["/bin/true"][..],
                "unexpected argument '/bin/true' found; usage: isobox run [OPTIONS] [-- <CMD>...]",
            ),
        ] {
            let line = parse_error(args);
            assert!(line.contains(expected), "{args:?}: {line}");
            assert!(!line.starts_with("error"), "{args:?}: {line}");
            assert!(!line.contains('\n'), "{args:?}: {line}");
        }
    }

    #[test]
    fn missing_subcommand_is_one_line_not_the_help() {
        let error = Cli::try_parse_from(["isobox"]).unwrap_err();
        let line = first_line_of_clap_error(&error);
        assert!(line.starts_with("no subcommand given"), "{line}");
    }

    #[test]
    fn help_and_version_are_not_errors() {
        for args in [
            &["isobox", "--help"][..],
            &["isobox", "run", "--help"],
            &["isobox", "-V"],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert!(!error.use_stderr(), "{args:?}");
        }
    }

    #[test]
    fn run_help_explains_every_option_and_the_wall_default() {
        use clap::CommandFactory;
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        for option in [
            "--time",
            "--wall-time",
            "--extra-time",
            "--mem",
            "--processes",
            "--fsize",
            "--stack",
            "--open-files",
            "--output-limit",
            "--stdin",
            "--env",
            "--json",
            "--strict",
            "2 × max(--time, --extra-time)",
        ] {
            assert!(help.contains(option), "{option} missing from:\n{help}");
        }
    }

    fn result(status: ExecutionStatus) -> ExecutionResult {
        ExecutionResult {
            status,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            cpu_time: 0.0,
            wall_time: 0.0,
            memory_peak: 0,
            max_rss: 0,
            oom_killed: false,
            killed: false,
            voluntary_context_switches: 0,
            involuntary_context_switches: 0,
            stdout_dropped: 0,
            stderr_dropped: 0,
            exec_errno: None,
            message: String::new(),
            absent_protections: Vec::new(),
        }
    }

    #[test]
    fn summary_line_shows_status_times_memory_and_why() {
        let mut limit = result(ExecutionStatus::TimeLimit);
        limit.cpu_time = 1.0021;
        limit.wall_time = 1.01;
        limit.memory_peak = 1_258_291;
        assert_eq!(
            summary_line(&limit),
            "TimeLimit cpu 1.002s wall 1.010s mem 1.2MiB"
        );
        limit.signal = Some(9);
        limit.message = "cpu time limit\nexceeded".to_string();
        assert_eq!(
            summary_line(&limit),
            "TimeLimit cpu 1.002s wall 1.010s mem 1.2MiB signal 9 (cpu time limit exceeded)"
        );
        let mut failed = result(ExecutionStatus::RuntimeError);
        failed.exit_code = Some(1);
        assert_eq!(
            summary_line(&failed),
            "RuntimeError cpu 0.000s wall 0.000s mem 0B exit 1"
        );
        let mut success = result(ExecutionStatus::Success);
        success.exit_code = Some(0);
        assert_eq!(
            summary_line(&success),
            "Success cpu 0.000s wall 0.000s mem 0B"
        );
    }

    #[test]
    fn json_report_has_the_documented_keys_in_order() {
        let mut run = result(ExecutionStatus::Success);
        run.exit_code = Some(0);
        run.stdout = "hello\n".to_string();
        run.absent_protections = vec![isobox::Protection::Cgroup, isobox::Protection::SeparateUser];
        let json = serde_json::to_string(&JsonReport::from(&run)).unwrap();
        assert_eq!(
            json,
            "{\"status\":\"Success\",\"exit_code\":0,\"signal\":null,\"cpu_time\":0.0,\
             \"wall_time\":0.0,\"memory_peak\":0,\"max_rss\":0,\"oom_killed\":false,\
             \"stdout\":\"hello\\n\",\"stderr\":\"\",\"message\":\"\",\
             \"absent_protections\":[\"cgroup\",\"separate_user\"]}"
        );
    }

    #[test]
    fn exit_status_follows_the_verdict() {
        assert_eq!(exit_status(ExecutionStatus::Success), 0);
        for status in [
            ExecutionStatus::TimeLimit,
            ExecutionStatus::MemoryLimit,
            ExecutionStatus::RuntimeError,
            ExecutionStatus::Signaled,
            ExecutionStatus::SecurityViolation,
            ExecutionStatus::ProcessLimit,
            ExecutionStatus::FileSizeLimit,
            ExecutionStatus::OutputLimit,
        ] {
            assert_eq!(exit_status(status), 1, "{status}");
        }
        assert_eq!(exit_status(ExecutionStatus::InternalError), 2);
    }

    #[test]
    fn errno_descriptions_have_no_rust_suffix() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
        assert_eq!(strerror(libc::EACCES), "Permission denied");
    }
}
