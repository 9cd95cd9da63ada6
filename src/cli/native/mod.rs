//! The native command line: `isobox run [OPTIONS] -- CMD [ARGS...]`.
//!
//! `run` makes a throwaway box directory, runs one program in it under the
//! given limits, reports what happened and removes the directory again.
//! Its options are `args`, what it prints is `report`.

use std::ffi::OsString;
use std::fs::{File, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::Parser;
use isobox::config::OPEN_FILES_UNLIMITED;
use isobox::dirs::DirRule;
use isobox::{ExecutionResult, IsolateConfig, ProcessExecutor, Stdin};

use super::env::{self, EnvRule, Environment, WhenAbsent};
use super::units::unlimited_if_zero;
use super::{print_error, EXIT_TROUBLE};

mod args;
mod files;
mod language;
mod presets;
mod report;
pub mod runner;

use args::{first_line_of_clap_error, Cli, Command, RunArgs};
use report::{describe_io_error, exit_status, report};

/// Name prefix of throwaway box directories in the temporary directory.
const BOX_DIR_PREFIX: &str = "isobox-run-";

/// The native command line's clap definition (for pages and completions).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
}

/// Runs the native command line on `args` (argv, program name first) and
/// returns the exit status.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let asks_for_a_language = args.iter().any(|arg| {
        let arg = arg.to_string_lossy();
        arg == "--lang" || arg.starts_with("--lang=")
    });
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // --help and --version come back as "errors" that belong on stdout.
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        // With --lang what is missing is the source file, not a command.
        Err(error)
            if asks_for_a_language
                && error.kind() == clap::error::ErrorKind::MissingRequiredArgument =>
        {
            print_error(
                "--lang needs a source file; usage: isobox run [OPTIONS] --lang LANG SOURCE \
                 [-- ARGS...]",
            );
            return ExitCode::from(EXIT_TROUBLE);
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
        Command::Generate(args) => return super::generate::main(args),
        Command::Runner(args) => runner::main(args).unwrap_or_else(|error| {
            print_error(&crate::cli::error_text(&error));
            EXIT_TROUBLE
        }),
    };
    ExitCode::from(code)
}

/// Refuses a run that would go without what the caller did not accept to
/// lose (`--unisolated`): namespaces, and for `--mem` a memory cgroup. A
/// caller without root who has namespaces (a user namespace) but no
/// cgroup is told what the run lacks and goes on: rlimits are all that
/// place has, and the result names what was absent. `box_name` names the
/// box in messages ("" for the run's box).
pub(super) fn check_isolation(
    executor: &ProcessExecutor,
    unisolated: bool,
    mem_limited: bool,
    box_name: &str,
) -> Result<()> {
    if unisolated {
        return Ok(());
    }
    let absent = executor.absent_protections();
    let of_box = if box_name.is_empty() {
        String::new()
    } else {
        format!(" for the {box_name}")
    };
    if absent.contains(&isobox::Protection::Namespaces) {
        bail!(
            "not root (uid {}) and no usable user namespace{of_box}: isobox run cannot isolate \
             the program (see isobox check-environment); pass --unisolated to run it without \
             isolation",
            isobox::sys::effective_uid()
        );
    }
    if mem_limited && !executor.has_memory_cgroup() && isobox::sys::is_root() {
        bail!(
            "no usable memory cgroup{of_box}: --mem would only limit each process's address \
                 space, not kernel memory or /tmp; fix the cgroup hierarchy (see isobox \
                 check-environment) or pass --unisolated to run with that weaker limit"
        );
    }
    if !absent.is_empty() && !isobox::sys::is_root() {
        let names: Vec<&str> = absent.iter().map(|p| p.as_str()).collect();
        tracing::warn!(
            "not root: the run{of_box} goes without {} (rlimits stand in for a cgroup; see \
             isobox check-environment)",
            names.join(", ")
        );
    }
    Ok(())
}

/// Carries out `isobox run` and returns the exit status.
///
/// Errors are everything that makes the outcome of the program unknown;
/// they are reported by the caller as one line with exit status 2.
fn run(args: RunArgs) -> Result<u8> {
    run_in(args, &mut OneShot::default(), &|name| {
        std::env::var_os(name)
    })
}

/// Where a run's box comes from: made for the run and removed after it
/// ([`OneShot`], the command line's), or kept warm between runs (the
/// runner's). Everything else of `isobox run` is the same either way.
trait RunBox {
    /// The box's directory, empty, for the run's files.
    fn directory(&mut self) -> Result<PathBuf>;

    /// The executor that runs in the box under `config` (whose working
    /// directory is [`directory`](Self::directory)).
    fn executor(&mut self, config: IsolateConfig) -> Result<&mut ProcessExecutor>;

    /// Runs `command` in the box.
    fn execute(&mut self, command: &[String], stdin: Stdin) -> isobox::Result<ExecutionResult>;

    /// Makes sure nothing of the run is left in the box but its files.
    fn settle(&mut self) -> isobox::Result<()>;

    /// Gives the directory up (removed, or emptied for the next run).
    fn release(&mut self) -> std::result::Result<(), String>;
}

/// The command line's box: a directory and an executor of this run's own.
#[derive(Default)]
struct OneShot {
    dir: Option<BoxDir>,
    executor: Option<ProcessExecutor>,
}

impl RunBox for OneShot {
    fn directory(&mut self) -> Result<PathBuf> {
        Ok(self.dir.insert(create_box_dir()?).path().to_path_buf())
    }

    fn executor(&mut self, config: IsolateConfig) -> Result<&mut ProcessExecutor> {
        let executor = ProcessExecutor::new(config).map_err(|error| anyhow!("{error}"))?;
        Ok(self.executor.insert(executor))
    }

    fn execute(&mut self, command: &[String], stdin: Stdin) -> isobox::Result<ExecutionResult> {
        let executor = self
            .executor
            .as_mut()
            .ok_or_else(|| isobox::IsolateError::Config("no executor".into()))?;
        executor.execute_with_stdin(command, stdin)
    }

    fn settle(&mut self) -> isobox::Result<()> {
        match self.executor.take() {
            Some(mut executor) => executor.cleanup(),
            None => Ok(()),
        }
    }

    fn release(&mut self) -> std::result::Result<(), String> {
        self.dir.take().map_or(Ok(()), BoxDir::remove)
    }
}

/// [`run`] in the box `boxes` gives, with `lookup` reading the caller's
/// environment.
fn run_in(
    mut args: RunArgs,
    boxes: &mut dyn RunBox,
    lookup: &dyn Fn(&str) -> Option<OsString>,
) -> Result<u8> {
    if let (Some(source), None) = (&args.source, &args.lang) {
        bail!(
            "unexpected argument '{}': a program goes after `--` (isobox run [OPTIONS] -- {0}), \
             a source file after --lang LANG",
            source.display()
        );
    }
    if args.command.first().is_some_and(String::is_empty) {
        bail!("the program name is empty");
    }
    // From here on boxes exist (the compile box first, with --lang): an
    // interruption ends the run under way, which then cleans up as any
    // run does, instead of ending isobox and leaving the box behind.
    crate::cli::catch_interruptions();
    let mut prepared = Vec::new();
    if let Some(lang) = args.lang.clone() {
        match language::prepare(&mut args, &lang)? {
            Ok(copies) => prepared = copies,
            Err(code) => return Ok(code),
        }
    }
    let Some(program) = args.command.first() else {
        bail!("no command given; usage: isobox run [OPTIONS] -- CMD [ARGS...]");
    };
    let stdin = open_stdin(args.stdin.as_deref())?;
    let stdout = open_output(args.stdout.as_deref(), "--stdout")?;
    let stderr = open_output(args.stderr.as_deref(), "--stderr")?;
    let copies_in = files::plan_copy_in(prepared, &args.copy_in, program)?;
    let copies_out = files::plan_copy_out(&args.copy_out)?;
    // From here on the box directory exists; every return below gives it
    // up (the one-shot box's removes it).
    let box_dir = boxes.directory()?;
    files::copy_in(&box_dir, &copies_in)?;
    let config = build_config(&args, &box_dir, lookup)?;

    let executor = boxes.executor(config)?;
    check_isolation(executor, args.unisolated, args.mem.is_some(), "")?;
    let redirect = files::Redirect::install(stdout, stderr)?;
    let outcome = boxes.execute(&args.command, stdin);
    let restored = redirect.restore();
    let cleaned = boxes.settle();
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
        troubles.push(format!(
            "cannot execute {program}: {}",
            isobox::sys::strerror(errno)
        ));
    }
    if let Err(error) = restored {
        troubles.push(error.to_string());
    }
    // Copied out only once every process of the box is gone, so nothing
    // changes a file while it is read.
    if cleaned.is_ok() {
        let limit = output_limit(&args).unwrap_or(u64::MAX);
        troubles.extend(files::copy_out(&box_dir, &copies_out, limit));
    }
    if let Err(error) = cleaned {
        troubles.push(format!("cleaning up after the run: {error}"));
    }
    if let Err(error) = boxes.release() {
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

/// Opens (creating or truncating) the file of `--stdout` or `--stderr`
/// before anything else, so a path that cannot be written is a usage error.
fn open_output(path: Option<&Path>, option: &str) -> Result<Option<File>> {
    let Some(path) = path else {
        return Ok(None);
    };
    File::create(path).map(Some).map_err(|error| {
        anyhow!(
            "cannot open {option} file {}: {}",
            path.display(),
            describe_io_error(&error)
        )
    })
}

/// The most output kept of each stream, and the largest file copied out;
/// `None` (`--output-limit 0`) keeps everything.
fn output_limit(args: &RunArgs) -> Option<u64> {
    match args.output_limit {
        None => Some(isobox::config::DEFAULT_OUTPUT_LIMIT),
        Some(limit) => unlimited_if_zero(limit),
    }
}

/// The throwaway box directory; removed on drop (best effort) or by
/// [`remove`](Self::remove). Removal copes with whatever the program left,
/// however deeply nested, and follows no link.
pub(super) struct BoxDir(Option<PathBuf>);

impl BoxDir {
    pub(super) fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    pub(super) fn remove(mut self) -> std::result::Result<(), String> {
        let Some(path) = self.0.take() else {
            return Ok(());
        };
        isobox::fstree::remove_tree(&path).map_err(|error| {
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
            if let Err(error) = isobox::fstree::remove_tree(&path) {
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
pub(super) fn create_box_dir() -> Result<BoxDir> {
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
/// other live run ([`isobox::config::ONE_SHOT_UIDS`]).
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
    // One rule for every limit, in both faces: 0 is no limit.
    let time = args.time.and_then(unlimited_if_zero);
    let extra_time = args.extra_time.and_then(unlimited_if_zero);
    Ok(IsolateConfig {
        workdir: box_dir.to_path_buf(),
        strict_mode: args.strict,
        cgroup_parent: args
            .cgroup
            .as_deref()
            .map(crate::cli::cgroup_option)
            .transpose()?,
        time_limit: time,
        extra_time,
        wall_time_limit: match args.wall_time {
            Some(wall) => unlimited_if_zero(wall),
            None => default_wall_time(time, extra_time),
        },
        memory_limit: args.mem.and_then(unlimited_if_zero),
        process_limit: args.processes.and_then(unlimited_if_zero),
        file_size_limit: args.fsize.and_then(unlimited_if_zero),
        stack_limit: args.stack.and_then(unlimited_if_zero),
        open_files_limit: args
            .open_files
            .map(|count| unlimited_if_zero(count).unwrap_or(OPEN_FILES_UNLIMITED)),
        output_limit: output_limit(args),
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
pub(super) fn default_wall_time(
    time: Option<Duration>,
    extra: Option<Duration>,
) -> Option<Duration> {
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
    let mut environment = isobox::config::default_environment();
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

#[cfg(test)]
mod tests {
    use super::args::{parse_env_rule, parse_run as parse};
    use super::*;

    fn config(args: &[&str]) -> IsolateConfig {
        let with_command = [args, &["--", "/bin/true"][..]].concat();
        let args = if args.contains(&"--") {
            args
        } else {
            &with_command[..]
        };
        let args = parse(args).expect("valid arguments");
        build_config(&args, Path::new("/tmp/isobox-run-test"), |_| None)
            .expect("valid configuration")
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
    fn zero_is_no_limit() {
        let zeros = config(&[
            "--time",
            "0",
            "--extra-time",
            "0",
            "--mem",
            "0",
            "--processes",
            "0",
            "--fsize",
            "0",
            "--stack",
            "0",
            "--open-files",
            "0",
            "--output-limit",
            "0",
        ]);
        assert_eq!(zeros.time_limit, None);
        assert_eq!(zeros.extra_time, None);
        assert_eq!(zeros.wall_time_limit, None);
        assert_eq!(zeros.memory_limit, None);
        assert_eq!(zeros.process_limit, None);
        assert_eq!(zeros.file_size_limit, None);
        assert_eq!(zeros.stack_limit, None);
        // Open files always have a limit; 0 asks for the kernel's most.
        assert_eq!(zeros.open_files_limit, Some(OPEN_FILES_UNLIMITED));
        assert_eq!(zeros.output_limit, None);
        assert_eq!(
            config(&["--wall-time", "0", "--time", "1"]).wall_time_limit,
            None
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
}
