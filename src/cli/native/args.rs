//! The native command line's options (clap) and its usage errors as one
//! line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use isobox::dirs::DirRule;

use crate::cli::env::{EmptyName, EnvRule};
use crate::cli::units::{parse_count, parse_size, parse_time};

/// The native command line.
#[derive(Debug, Parser)]
#[command(
    name = "isobox",
    bin_name = "isobox",
    version = crate::cli::VERSION,
    propagate_version = true,
    about = "Run untrusted programs with hard limits and exact measurements"
)]
pub struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

/// The native subcommands.
// Parsed once per process: the size of the run variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Run one program in a throwaway box and report what happened.
    ///
    /// isobox creates a fresh box directory (isobox-run-XXXXXX in the
    /// temporary directory, $TMPDIR or /tmp), runs the program there with
    /// the given limits and removes the directory afterwards. When isobox
    /// runs as root the program runs as a user and group of its own from
    /// 59000-59999, claimed for the run (never an isolate box's, never
    /// another live run's). Limits that are not given are not enforced.
    #[command(after_help = RUN_AFTER_SHORT_HELP, after_long_help = RUN_AFTER_HELP)]
    #[command(override_usage = "isobox run [OPTIONS] -- CMD [ARGS...]\n       \
                                isobox run [OPTIONS] --lang LANG SOURCE [-- ARGS...]")]
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
    /// Write the manual pages or a shell completion script (for
    /// packagers).
    Generate(crate::cli::generate::GenerateArgs),
    /// Keep a warm box for root's `isobox run`, until stopped.
    ///
    /// As root, `isobox run` hands its whole invocation to the runner
    /// when one is up, before it starts itself: the runner carries it out
    /// as `isobox run` would, with the caller's directory, umask,
    /// environment and standard input, output and error, in a box that
    /// outlives each run (its namespaces, filesystem and cgroup built once;
    /// the box's directory emptied and its processes killed between runs;
    /// a user of its own for its life). One run per box at a time (--boxes):
    /// a run that comes while every box is busy, a run with --lang, another
    /// TMPDIR, CPUs or nice value, ISOBOX_LOG, and any caller not root, run
    /// the ordinary way. Stops on
    /// SIGTERM, SIGINT or SIGHUP (a run under way ends as interrupted), or
    /// after --idle seconds without a run.
    Runner(RunnerArgs),
}

/// `isobox runner`'s options.
#[derive(Debug, Args)]
pub(super) struct RunnerArgs {
    /// Stop after this many seconds without a run (default: never).
    #[arg(long, value_name = "SECONDS")]
    pub(super) idle: Option<u64>,
    /// Boxes kept warm, and so runs served at once (default: one per CPU
    /// isobox may use).
    #[arg(long, value_name = "N")]
    pub(super) boxes: Option<usize>,
    /// A worker of the runner (one per box), started by the runner itself.
    #[arg(long, hide = true)]
    pub(super) worker: bool,
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
  As root, each box has its own uid, namespaces and cgroup. A caller who is
  not root gets rootless boxes: the same namespaces, filesystem and seccomp
  filter inside a user namespace, where the program is uid 1000 (the
  caller's own uid on the host). Its limits are cgroup limits when --cgroup
  names a cgroup v2 subtree delegated to the caller, otherwise rlimits, and
  absent_protections says what the run went without (isobox
  check-environment shows what this host offers). Where user namespaces are
  not allowed the run is refused (exit status 2) unless --unisolated accepts
  running with none of the isolation. As root, --mem where no memory cgroup
  is usable is refused the same way (it would bound each process's address
  space only, not kernel memory or /tmp).

Files:
  The box starts empty. A program named with a relative path (./solution) is
  copied in from the working directory, as are the files of --copy-in; the
  program sees them in /box, its working directory, read-only. --copy-out
  brings files the program wrote back out.

Zero:
  0 means no limit for every limit option (--time 0, --mem 0, --processes 0,
  ...), as in isolate's face.

Exit status:
  0  the program exited with status 0 within every limit
  1  the program failed or hit a limit
  2  bad usage, the program could not be executed, or isobox itself failed

Examples:
  isobox run --time 1 --mem 256M -- ./solution
  isobox run --time 1 --stdin in.txt --stdout out.txt -- ./solution
  isobox run --copy-in data.txt --copy-out result.txt -- ./solution
  isobox run --lang cpp --time 1 --mem 256M --stdin in.txt solution.cpp";

/// Options of `isobox run`.
#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// CPU time limit in seconds (user + system of all the program's
    /// processes)
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_negative_numbers = true)]
    pub(super) time: Option<Duration>,

    /// Wall-clock limit in seconds [default: 2 × max(--time, --extra-time) +
    /// 1 when either is given, none otherwise]
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_negative_numbers = true)]
    pub(super) wall_time: Option<Duration>,

    /// CPU time in seconds after which the program is killed, counted from
    /// the start (not added to --time); using more than --time is still a
    /// time limit verdict
    ///
    /// The program is killed once its CPU time exceeds the larger of --time
    /// and --extra-time, so it can be seen to overrun without being cut off
    /// at the exact limit.
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_negative_numbers = true)]
    pub(super) extra_time: Option<Duration>,

    /// Memory limit of all the program's processes together
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_negative_numbers = true)]
    pub(super) mem: Option<u64>,

    /// Maximum number of processes and threads alive at once
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    pub(super) processes: Option<u64>,

    /// Largest file the program may write
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_negative_numbers = true)]
    pub(super) fsize: Option<u64>,

    /// Stack size limit of each process [default: unlimited]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_negative_numbers = true)]
    pub(super) stack: Option<u64>,

    /// Maximum number of open files of each process [default: 1024; 0: as many as the kernel allows]
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    pub(super) open_files: Option<u64>,

    /// Most output kept of each of stdout and stderr; writing more is an
    /// output limit verdict [default: 64M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_negative_numbers = true)]
    pub(super) output_limit: Option<u64>,

    /// Feed this file to the program's standard input [default: /dev/null]
    #[arg(long, value_name = "FILE")]
    pub(super) stdin: Option<PathBuf>,

    /// Write the program's standard output to this file (created or
    /// truncated) instead of isobox's own stdout
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    pub(super) stdout: Option<PathBuf>,

    /// Write the program's standard error to this file (created or
    /// truncated) instead of isobox's own stderr
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    pub(super) stderr: Option<PathBuf>,

    /// Copy the regular file SRC (on the host, relative to the working
    /// directory) into the box as DST [default: SRC's file name]; may be
    /// repeated
    ///
    /// The copy belongs to root and is read-only for the program. A
    /// program named with a relative path (`./solution`, `bin/sol`) is
    /// copied in the same way unless a --copy-in already puts a file there.
    /// Directories are not copied: bind them with --dir IN=OUT instead.
    #[arg(long, visible_alias = "file", value_name = "SRC[:DST]")]
    pub(super) copy_in: Vec<String>,

    /// After the run, copy the regular file PATH (relative to the box) out
    /// to DEST on the host [default: PATH's file name in the working
    /// directory]; may be repeated
    ///
    /// Only a regular file directly reachable inside the box is copied: no
    /// link is followed, no `..` leaves the box, and a file larger than
    /// --output-limit is refused. A file that cannot be copied is an error
    /// (exit status 2), reported after the run's result.
    #[arg(long, value_name = "PATH[:DEST]")]
    pub(super) copy_out: Vec<String>,

    /// Set VAR=VAL, pass VAR from isobox's environment (VAR), or remove it
    /// (VAR=); may be repeated
    ///
    /// The program starts with PATH=/usr/local/bin:/usr/bin:/bin,
    /// LIBC_FATAL_STDERR_=1 and HOME=/box, and nothing
    /// else of isobox's own environment. Each --env is applied in order. A
    /// VAR that isobox's own environment does not have is left as it is.
    #[arg(long = "env", value_name = "VAR[=VAL]", value_parser = parse_env_rule)]
    pub(super) env: Vec<EnvRule>,

    /// Capture the output and print one JSON object on stdout instead of
    /// the summary line
    #[arg(long)]
    pub(super) json: bool,

    /// Directory rule in isolate's syntax: IN=OUT[:OPTIONS], IN[:OPTIONS]
    /// or IN= (remove); may be repeated
    ///
    /// Options: rw, dev, noexec, maybe, fs, tmp, norec. By default the box
    /// sees /box (its directory, read-write), read-only /bin, /lib, /lib64
    /// and /usr, a fresh /dev, its own /proc and a private /tmp.
    #[arg(long = "dir", value_name = "RULE", value_parser = parse_dir_rule)]
    pub(super) dir: Vec<DirRule>,

    /// Start without the default directory rules (only /box and --dir)
    #[arg(long)]
    pub(super) no_default_dirs: bool,

    /// Turn the default seccomp policy off
    #[arg(long)]
    pub(super) no_seccomp: bool,

    /// isolate's system-call restrictions, a sum of: 1 keyrings, 2 vsock,
    /// 4 file locks, 8 io_uring, 16 foreign architectures (default 65535:
    /// all)
    #[arg(long, value_name = "FLAGS", default_value_t = isobox::config::syscall_flags::ALL, conflicts_with = "no_seccomp")]
    pub(super) syscalls: u32,

    /// A seccomp policy file (seccompiler JSON) that extends the default
    #[arg(long, value_name = "FILE", conflicts_with = "no_seccomp")]
    pub(super) seccomp_policy: Option<PathBuf>,

    /// Keep the host's network instead of an empty network namespace
    #[arg(long)]
    pub(super) share_net: bool,

    /// Refuse to run unless the box has usable cgroups (as root, or without
    /// root in a delegated --cgroup), and treat any limit that cannot be
    /// applied as an error
    #[arg(long)]
    pub(super) strict: bool,

    /// An existing cgroup v2 directory to put the box's cgroups below (a
    /// subtree delegated to the caller), or `self` for the cgroup isobox
    /// runs in (what systemd's Delegate=yes hands a scope or service);
    /// without root this is how a box gets cgroup limits
    #[arg(long, value_name = "DIR")]
    pub(super) cgroup: Option<PathBuf>,

    /// Run even when the program cannot be isolated (not root and no user
    /// namespaces here): no namespaces, no separate user, no cgroup; the
    /// program sees and can touch everything the caller can
    ///
    /// Without this option such a run is refused.
    #[arg(long, conflicts_with = "strict")]
    pub(super) unisolated: bool,

    /// Compile SOURCE in one box and run the result in another, with the
    /// language preset LANG: c, cpp, python, java, rust, go, javascript
    /// (those whose toolchain this host has)
    ///
    /// The compile box has the preset's limits; the run box has the
    /// options given here, and the preset's process limit unless
    /// --processes is given. Compiler messages go to stderr; a failed
    /// compilation is exit status 1. Arguments after `--` go to the
    /// program.
    #[arg(long, value_name = "LANG", requires = "source")]
    pub(super) lang: Option<String>,

    /// Read the language presets from this TOML file instead of the
    /// built-in ones (presets/languages.toml in the source tree)
    #[arg(long, value_name = "FILE", requires = "lang")]
    pub(super) presets: Option<PathBuf>,

    /// The source file of --lang
    #[arg(value_name = "SOURCE")]
    pub(super) source: Option<PathBuf>,

    /// The program to run and its arguments, after `--`
    #[arg(last = true, value_name = "CMD", required_unless_present_any = ["lang", "source"])]
    pub(super) command: Vec<String>,
}

/// Parses the value of `--dir`.
fn parse_dir_rule(text: &str) -> Result<DirRule, String> {
    text.parse::<DirRule>().map_err(|err| err.to_string())
}

/// Parses the value of `--env`.
pub(super) fn parse_env_rule(text: &str) -> Result<EnvRule, String> {
    EnvRule::parse(text).map_err(|EmptyName| {
        "the variable name is empty; expected VAR, VAR=VAL or VAR=".to_string()
    })
}

/// The first line of a clap error, without clap's own `error: ` prefix: the
/// usage dump and hints that follow it are noise in a one-line report.
pub(super) fn first_line_of_clap_error(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    // clap answers a bare `isobox` with the whole help text as an error.
    if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "no subcommand given; usage: isobox run [OPTIONS] -- CMD [ARGS...] \
                (see isobox --help)"
            .to_string();
    }
    if error.kind() == ErrorKind::MissingRequiredArgument {
        return "no command given; usage: isobox run [OPTIONS] -- CMD [ARGS...]".to_string();
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
            let usage = usage
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" or ");
            line = format!("{line}; usage: {usage}");
        }
    }
    line
}

/// `isobox run ARGS...`, parsed (for the tests of this face).
#[cfg(test)]
pub(super) fn parse_run(args: &[&str]) -> Result<RunArgs, clap::Error> {
    let argv = ["isobox", "run"]
        .iter()
        .chain(args)
        .map(std::ffi::OsString::from);
    match Cli::try_parse_from(argv)?.command {
        Command::Run(args) => Ok(args),
        other => panic!("`isobox run ...` parsed as {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        parse_run(args)
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
    fn command_comes_after_the_double_dash() {
        let args = parse(&["--time", "1", "--", "/bin/echo", "--time", "x"]).unwrap();
        assert_eq!(args.command, ["/bin/echo", "--time", "x"]);
        assert!(parse(&[]).is_err());
        assert!(parse(&["--"]).is_err());
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
                &["--bogus", "--", "/bin/true"][..],
                "usage: isobox run [OPTIONS] -- CMD [ARGS...] or isobox run [OPTIONS] --lang LANG \
                 SOURCE [-- ARGS...]",
            ),
            (
                &[][..],
                "no command given; usage: isobox run [OPTIONS] -- CMD",
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
}
