//! The isolate-compatible face's actions: carries out what [`super::args`]
//! parsed.
//!
//! It only translates. The box lifecycle (paths, lock, init, cleanup) is
//! [`isobox::boxes`], the meta file is [`super::meta`], the run is the
//! executor's. What is left here is isolate's vocabulary: options into an
//! [`IsolateConfig`], the result into a meta file, a status line and
//! isolate's exit status (0 the program succeeded, 1 it failed, 2 the
//! sandbox failed or the usage was wrong).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use isobox::boxes::{self, BoxError, BoxState, BoxesConfig, LockedBox, Quota};
use isobox::{ExecutionResult, IsolateConfig, ProcessExecutor, Stdin};

use super::args::{Action, IsolateArgs};
use super::meta::{self, Meta, Verdict};
use super::{agent, service};
use crate::cli::env::{self, Environment, WhenAbsent};
use crate::cli::print_error;

/// Where the meta file goes.
pub(super) enum MetaFile {
    None,
    Stdout,
    /// Not opened yet: it is opened once the box is locked and swept (see
    /// [`MetaFile::open`]), or, to report an error that came before, when
    /// that error is written (with the same rules).
    Pending {
        path: PathBuf,
        /// The device of the box's file system, once known.
        box_device: Option<u64>,
        caller_uid: u32,
    },
    File(PathBuf, File),
}

impl MetaFile {
    pub(super) fn new(path: Option<&Path>) -> Self {
        match path {
            None => Self::None,
            Some(path) if path == Path::new("-") => Self::Stdout,
            Some(path) => Self::Pending {
                path: path.to_path_buf(),
                box_device: None,
                // The real uid, whatever --as-uid says: the meta file is
                // the caller's (isolate opens it with the caller's ids).
                caller_uid: isobox::sys::real_ids().0,
            },
        }
    }

    /// Opens a pending meta file. Called with the box's lock held and after
    /// the box was swept of links and fifos, so nothing the box's program
    /// left can be waiting at the path; see [`meta::open_meta_file`]
    /// for how the path is resolved.
    fn open(&mut self) -> Result<()> {
        if let Self::Pending {
            path,
            box_device,
            caller_uid,
        } = self
        {
            // Before the box is known, nothing is on its file system.
            let device = box_device.unwrap_or(u64::MAX);
            // With the caller's file-system ids, as isolate does: in a
            // set-user-ID installation root's rights must not create or
            // truncate a file the caller could not.
            let opened = isobox::sys::as_caller(|| meta::open_meta_file(path, device, *caller_uid))
                .context("cannot switch to the caller's file-system ids")?;
            match opened {
                Ok(file) => *self = Self::File(path.clone(), file),
                Err(error) => {
                    // Said once: the error itself is reported, not retried.
                    *self = Self::None;
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    /// Records what [`open`](Self::open) needs to know, as it is learned.
    fn learn(&mut self, device: Option<u64>) {
        if let Self::Pending { box_device, .. } = self {
            *box_device = device.or(*box_device);
        }
    }

    /// Writes `meta`; the error, in one line, when it could not be (the
    /// caller says it: a judge must not take a run whose meta file is
    /// missing or cut short for one that went well).
    pub(super) fn write(&mut self, meta: &Meta) -> std::result::Result<(), String> {
        self.open()
            .map_err(|error| crate::cli::error_text(&error))?;
        let written = match self {
            Self::None | Self::Pending { .. } => Ok(()),
            Self::Stdout => std::io::stdout()
                .lock()
                .write_all(meta.to_string().as_bytes()),
            Self::File(_, file) => meta::write_meta_file(file, meta),
        };
        written.map_err(|error| {
            let name = match self {
                Self::File(path, _) => path.display().to_string(),
                _ => "-".to_string(),
            };
            format!("cannot write the meta file {name}: {error}")
        })
    }
}

/// Carries out every action but `--help` and `--version`; returns the exit
/// status, or an error that is a sandbox error.
pub(super) fn execute(parsed: &IsolateArgs, words: &[String], meta: &mut MetaFile) -> Result<u8> {
    if !isobox::sys::is_root() {
        bail!("isolate must be run as root or installed set-user-ID root (isobox needs root to build boxes)");
    }
    isobox::sys::take_root_group().context("cannot switch to root's group")?;
    // The real ids: the caller, also in a set-user-ID installation.
    let (caller_uid, caller_gid) = isobox::sys::real_ids();
    let owner = owner_of_new_box(parsed, (caller_uid, caller_gid))?;
    let from_env = std::env::var_os(boxes::CONFIG_ENV).filter(|value| !value.is_empty());
    if from_env.is_some() && caller_uid != 0 {
        bail!(
            "{} is honoured only when the caller is root",
            boxes::CONFIG_ENV
        );
    }
    let config_path = boxes::config_path(from_env.as_deref());
    let config = BoxesConfig::load(&config_path)?;
    note_configuration(parsed, &config_path, &config);
    match &parsed.action {
        Action::CheckConfig => {
            if parsed.cg {
                config.cgroup_placement()?;
            }
            crate::cli::print_out(format_args!(
                "{}: fine ({} boxes in {}, uids from {})\n",
                config_path.display(),
                config.num_boxes,
                config.box_root.display(),
                config.first_uid
            ));
            if parsed.verbose > 1 {
                crate::cli::print_out(isolate_config_dump(&config));
            }
            Ok(0)
        }
        Action::PrintCgRoot => {
            // isolate 2.x prints the cgroup holding the boxes when one is
            // configured; otherwise the hierarchy's root, as isolate 1.x.
            let placement = config.cgroup_placement()?;
            let shown = if placement.given {
                placement.parent_argument()
            } else {
                placement.root
            };
            crate::cli::print_out(format_args!("{}\n", shown.display()));
            Ok(0)
        }
        Action::Init => {
            if config.restricted_init && caller_uid != 0 {
                bail!("new boxes can be created only by root (restricted_init is set)");
            }
            let locked = lock(&config, parsed)?;
            let code = init_locked(&config, parsed, locked, caller_uid, owner, &mut |_| {});
            service::start_for(&config, &config_path);
            code
        }
        Action::Cleanup => {
            let locked = lock(&config, parsed)?;
            let code = cleanup_locked(&config, parsed, locked, caller_uid);
            service::start_for(&config, &config_path);
            code
        }
        Action::Run(command) => {
            let how = Invocation {
                config: &config,
                config_path: &config_path,
                parsed,
                words,
            };
            run(&how, command, caller_uid, meta)
        }
        Action::Help | Action::Version => Ok(0),
    }
}

/// The owner `--init` records: the caller, or whom `--as-uid` and
/// `--as-gid` name (root only, both or neither).
pub(super) fn owner_of_new_box(parsed: &IsolateArgs, caller: (u32, u32)) -> Result<(u32, u32)> {
    match (parsed.as_uid, parsed.as_gid) {
        (Some(uid), Some(gid)) if caller.0 == 0 => Ok((uid, gid)),
        (Some(_), _) | (_, Some(_)) => bail!("you must be root to use --as-uid or --as-gid"),
        _ => Ok(caller),
    }
}

/// `--init` of the locked box, for `caller_uid`, recorded as `owner`'s.
pub(super) fn init_locked(
    config: &BoxesConfig,
    parsed: &IsolateArgs,
    locked: LockedBox,
    caller_uid: u32,
    owner: (u32, u32),
    made: &mut dyn FnMut(&LockedBox),
) -> Result<u8> {
    check_owner(&locked, caller_uid)?;
    let _released = agent::stop(config, locked.id());
    let state = BoxState {
        cgroups: parsed.cg,
        owner_uid: owner.0,
        owner_gid: owner.1,
    };
    let quota = parsed
        .quota
        .map(|(blocks, inodes)| Quota { blocks, inodes });
    locked
        .init(state, quota)
        .map_err(|error| explain(error, parsed))?;
    made(&locked);
    crate::cli::print_out(format_args!("{}\n", locked.dir().display()));
    Ok(0)
}

/// `--cleanup` of the locked box, for `caller_uid`.
pub(super) fn cleanup_locked(
    config: &BoxesConfig,
    parsed: &IsolateArgs,
    locked: LockedBox,
    caller_uid: u32,
) -> Result<u8> {
    check_owner(&locked, caller_uid)?;
    let released = agent::stop(config, locked.id());
    locked.cleanup().map_err(|error| explain(error, parsed))?;
    drop(released);
    Ok(0)
}

/// What `-v` says first: which configuration and boxes are used.
pub(super) fn note_configuration(parsed: &IsolateArgs, config_path: &Path, config: &BoxesConfig) {
    if parsed.verbose > 0 {
        crate::cli::print_note(format_args!(
            "{}: configuration {}, boxes in {}\n",
            crate::cli::program_name(),
            config_path.display(),
            config.box_root.display()
        ));
    }
}

/// A caller who is not root may use only the boxes it initialized (the
/// owner in the box's state file), as in isolate; a box with no complete
/// state belongs to no one yet.
fn check_owner(locked: &LockedBox, caller_uid: u32) -> Result<()> {
    match locked.recorded_owner() {
        Some((owner, _)) => check_owner_is(owner, caller_uid),
        None => Ok(()),
    }
}

/// [`check_owner`] with the owner already read.
fn check_owner_is(owner: u32, caller_uid: u32) -> Result<()> {
    if caller_uid != 0 && owner != caller_uid {
        bail!("this box belongs to a different user (uid {owner})")
    }
    Ok(())
}

/// A caller who is not root may bind only what it can read itself (and
/// write, for a writable rule), checked with its real ids (`access(2)`),
/// which drop root's file capabilities for a caller who is not root. The
/// keeper then resolves the same path without following a link in a
/// directory the caller (or anyone but root) can write, so the caller
/// cannot swap an unreadable file in through a link after the check.
fn check_sources(config: &BoxesConfig, parsed: &IsolateArgs, caller_uid: u32) -> Result<()> {
    use isobox::dirs::DirAction;
    use rustix::fs::Access;
    if caller_uid == 0 {
        return Ok(());
    }
    let sandbox = config
        .sandbox(parsed.box_id)
        .map_err(|error| explain(error, parsed))?;
    for rule in &parsed.dirs {
        let DirAction::Bind(source) = &rule.action else {
            continue;
        };
        // isolate's relative sources: the directory holding the box.
        let path = match source.strip_prefix(".") {
            Ok(relative) => sandbox.dir().join(relative),
            Err(_) => source.clone(),
        };
        let mut wanted = Access::READ_OK;
        if rule.options.rw {
            wanted |= Access::WRITE_OK;
        }
        let checked = rustix::fs::access(&path, wanted).and_then(|()| {
            // A directory must be searchable too.
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => rustix::fs::access(&path, Access::EXEC_OK),
                _ => Ok(()),
            }
        });
        match checked {
            Ok(()) => {}
            Err(rustix::io::Errno::NOENT) if rule.options.maybe => {}
            Err(errno) => bail!(
                "directory rule {}={}: the caller (uid {caller_uid}) may not {} it: {}",
                rule.inside.display(),
                source.display(),
                if rule.options.rw {
                    "read and write"
                } else {
                    "read"
                },
                std::io::Error::from(errno)
            ),
        }
    }
    Ok(())
}

/// Takes the lock of the box the arguments name.
fn lock(config: &BoxesConfig, parsed: &IsolateArgs) -> Result<LockedBox> {
    let sandbox = config
        .sandbox(parsed.box_id)
        .map_err(|error| explain(error, parsed))?;
    sandbox
        .lock(parsed.wait)
        .map_err(|error| explain(error, parsed))
}

/// A box error with the hint an isolate user needs.
fn explain(error: BoxError, parsed: &IsolateArgs) -> anyhow::Error {
    let init = format!(
        "isolate {}-b {} --init",
        if parsed.cg { "--cg " } else { "" },
        parsed.box_id
    );
    match &error {
        BoxError::Busy(_) => anyhow!("{error} (pass --wait to wait for it)"),
        BoxError::NotInitialized(_) => anyhow!("{error}: run `{init}` first"),
        BoxError::HalfInitialized(_) | BoxError::Unbounded(_) => {
            anyhow!("{error}: run `{init}` again")
        }
        BoxError::CgroupMode { .. } => {
            anyhow!("{error}: use the same --cg mode, or run `{init}` again")
        }
        _ => anyhow!(error),
    }
}

/// What `isolate --check-config -vv` prints: the parsed configuration in
/// isolate 2.6's words (`first_uids` is isolate's spelling).
fn isolate_config_dump(config: &BoxesConfig) -> String {
    let cg_root = match &config.cg_root {
        boxes::CgRoot::Installation => "auto".to_string(),
        boxes::CgRoot::Path(path) => path.display().to_string(),
        boxes::CgRoot::Auto(file) => format!("auto:{}", file.display()),
    };
    format!(
        "Config: box_root={} lock_root={} cg_root={cg_root}\n\
         Config: first_uids={} first_gid={} num_boxes={}\n\
         Config: restricted_init={} syscall_flags={}\n",
        config.box_root.display(),
        config.lock_root.display(),
        config.first_uid,
        config.first_gid,
        config.num_boxes,
        u8::from(config.restricted_init),
        config.syscall_flags as i32,
    )
}

/// What `--run` was given: the installation and the arguments.
struct Invocation<'a> {
    config: &'a BoxesConfig,
    config_path: &'a Path,
    parsed: &'a IsolateArgs,
    /// The arguments as given (an agent parses them again).
    words: &'a [String],
}

/// How the agent runs a command under a configuration, with a stdin.
pub(super) type RunInAgent<'a> =
    dyn FnMut(IsolateConfig, &[String], Stdin) -> Result<ExecutionResult> + 'a;

/// Who carries out the run once the box is locked.
enum Runner<'a> {
    /// The command line: through the box's agent when it has one, cold
    /// otherwise.
    CommandLine(&'a Invocation<'a>),
    /// The box's agent, for a run forwarded to it whole: its own executor,
    /// and the caller's environment and standard input.
    Agent {
        environment: &'a [(String, String)],
        stdin: Stdin,
        execute: &'a mut RunInAgent<'a>,
    },
}

/// `--run`: runs the command in the box and reports like isolate.
fn run(
    how: &Invocation<'_>,
    command: &[String],
    caller_uid: u32,
    meta: &mut MetaFile,
) -> Result<u8> {
    let (config, parsed) = (how.config, how.parsed);
    learn_box_device(config, parsed, meta);
    check_sources(config, parsed, caller_uid)?;
    let locked = lock(config, parsed)?;
    run_locked(
        config,
        parsed,
        locked,
        command,
        caller_uid,
        meta,
        Runner::CommandLine(how),
    )
}

/// `--run` forwarded whole to the box's agent by a root caller (see
/// `front`): `locked` is the box, locked by the agent; the agent runs the
/// program with `execute`. Everything else is as on the command line.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_forwarded(
    config: &BoxesConfig,
    config_path: &Path,
    parsed: &IsolateArgs,
    locked: LockedBox,
    meta: &mut MetaFile,
    environment: &[(String, String)],
    stdin: Stdin,
    execute: &mut RunInAgent<'_>,
) -> Result<u8> {
    let Action::Run(command) = &parsed.action else {
        bail!("not a run");
    };
    note_configuration(parsed, config_path, config);
    learn_box_device(config, parsed, meta);
    let runner = Runner::Agent {
        environment,
        stdin,
        execute,
    };
    run_locked(config, parsed, locked, command, 0, meta, runner)
}

/// Tells the meta file the device of the box's file system, when the box
/// is there to tell (see [`MetaFile::open`]).
fn learn_box_device(config: &BoxesConfig, parsed: &IsolateArgs, meta: &mut MetaFile) {
    if let Ok(sandbox) = config.sandbox(parsed.box_id) {
        let device = std::fs::symlink_metadata(sandbox.box_dir()).map(|meta| {
            use std::os::unix::fs::MetadataExt;
            meta.dev()
        });
        meta.learn(device.ok());
    }
}

/// The rest of `--run`, with the box locked.
fn run_locked(
    config: &BoxesConfig,
    parsed: &IsolateArgs,
    locked: LockedBox,
    command: &[String],
    caller_uid: u32,
    meta: &mut MetaFile,
    runner: Runner<'_>,
) -> Result<u8> {
    // From here on the box is handed over and a run cgroup made: a signal
    // must stop the run and leave the box as any run leaves it (before,
    // with `--wait`, it still ends the wait as it always did).
    crate::cli::catch_interruptions();
    // The state file is read once: its owner is checked first, as for the
    // other actions, then whether the box can run.
    let ready = locked.ready_for_run(parsed.cg);
    match &ready {
        Ok(state) => check_owner_is(state.owner_uid, caller_uid)?,
        Err(_) => check_owner(&locked, caller_uid)?,
    }
    let state = ready.map_err(|error| explain(error, parsed))?;
    // A run whose keeper was killed may have left its box running (until
    // the proxy's parent-death signal lands): stopped before the box is
    // handed over and before the box's cgroup is reused.
    locked.stop_proxy()?;
    // The program's files belong to the box user during the run and to
    // the box's owner after it; special files go, as in isolate.
    locked.prepare_for_run()?;
    meta.learn(Some(locked.box_device()?));
    meta.open()?;
    let environment = match &runner {
        Runner::CommandLine(_) => environment(
            parsed,
            |name| std::env::var(name).ok(),
            || {
                std::env::vars_os()
                    .map(|(name, value)| {
                        (
                            name.to_string_lossy().into_owned(),
                            value.to_string_lossy().into_owned(),
                        )
                    })
                    .collect()
            },
        ),
        // As glibc's getenv finds a name: its first entry.
        Runner::Agent {
            environment: given, ..
        } => environment(
            parsed,
            |name| {
                given
                    .iter()
                    .find(|(entry, _)| entry == name)
                    .map(|(_, value)| value.clone())
            },
            || given.to_vec(),
        ),
    };
    let mut run_config = build_config(parsed, environment);
    // A box's first run, when the later ones go to its agent, leaves no
    // network namespace pinned: the agent's runs need one, a box used once
    // does not.
    let keep_network = !agent::eligible(parsed, config) || agent::ran_before(&locked);
    locked.configure(&mut run_config, keep_network)?;
    run_config.syscall_flags = parsed.syscalls.unwrap_or(config.syscall_flags);
    let (outcome, cleaned) = match runner {
        Runner::Agent { stdin, execute, .. } => {
            let stdin = if parsed.stdin.is_some() {
                Stdin::Null
            } else {
                stdin
            };
            (execute(run_config, command, stdin), Ok(()))
        }
        Runner::CommandLine(how) => {
            let stdin = match parsed.stdin {
                Some(_) => Stdin::Null,
                None => inherited_stdin(),
            };
            let route = if agent::eligible(parsed, config) {
                agent::run(
                    &locked,
                    config,
                    how.config_path,
                    how.words,
                    &run_config,
                    &stdin,
                )
            } else {
                // A box's agent holds its cgroup: it goes before a cold
                // run (one that holds nothing of the box takes its own
                // down meanwhile).
                drop(agent::stop(config, locked.id()));
                agent::Route::Cold { mark: false }
            };
            match route {
                agent::Route::Done(outcome) => (*outcome, Ok(())),
                agent::Route::Cold { mark } => {
                    // A keeper killed before it recorded its proxy leaves
                    // the box's processes ending on their own, in the
                    // box's cgroup, which may carry that run's limits: the
                    // new run makes it again.
                    locked.kill_leftovers()?;
                    let mut executor = ProcessExecutor::new(run_config)?;
                    let outcome = executor.execute_with_stdin(command, stdin);
                    // The box's cgroup, made for this run and holding it,
                    // goes with it.
                    let cleaned = executor.close_keeping_cgroups();
                    if mark {
                        agent::mark(&locked);
                    }
                    (outcome.map_err(anyhow::Error::from), cleaned)
                }
            }
        }
    };
    let given_back = locked.give_back(&state, parsed.special_files);
    let result = outcome?;
    // The program's verdict stands; these only need the admin's eyes.
    if let Err(error) = cleaned {
        print_error(&format!("warning: cleaning up after the run: {error}"));
    }
    if let Err(error) = given_back {
        print_error(&format!(
            "warning: giving the box's files back to uid {}: {error}",
            state.owner_uid
        ));
    }

    if let Some(errno) = result.exec_errno {
        // isolate's inside process says this on the program's stderr.
        crate::cli::print_note(format_args!(
            "execve(\"{}\"): {}\n",
            command[0],
            isobox::sys::strerror(errno)
        ));
    }
    let report = Meta::from_result(&result, parsed.cg);
    if let Err(problem) = meta.write(&report) {
        // isolate would exit 0 with a meta file cut short (it never checks
        // its writes); the run's figures are lost, which is a sandbox error.
        print_error(&problem);
        return Ok(crate::cli::EXIT_TROUBLE);
    }
    let verdict = report.verdict();
    match verdict {
        Verdict::SandboxError => print_error(report.message()),
        _ if parsed.silent > 0 => {}
        Verdict::Ok => crate::cli::print_note(format_args!(
            "OK ({} sec real, {} sec wall)\n",
            report.get("time").unwrap_or("0.000"),
            report.get("time-wall").unwrap_or("0.000")
        )),
        _ => crate::cli::print_note(format_args!("{}\n", report.message())),
    }
    Ok(verdict.exit_status())
}

/// isolate's stdin when `-i` is not given: its own.
fn inherited_stdin() -> Stdin {
    match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdin::File(File::from(fd)),
        // No stdin at all: the program reads end of file.
        Err(_) => Stdin::Null,
    }
}

/// The program's environment: nothing (or, with `-e`, everything) of the
/// caller's, `LIBC_FATAL_STDERR_=1`, then the `-E` rules in order; `-E VAR`
/// removes a `VAR` the caller does not have.
fn environment(
    parsed: &IsolateArgs,
    lookup: impl Fn(&str) -> Option<String>,
    everything: impl FnOnce() -> Environment,
) -> Environment {
    let mut environment = if parsed.full_env {
        everything()
    } else {
        Vec::new()
    };
    env::set(&mut environment, "LIBC_FATAL_STDERR_", "1".to_string());
    let lookup = |name: &str| Ok::<_, std::convert::Infallible>(lookup(name));
    let Ok(()) = env::apply(&mut environment, &parsed.env, WhenAbsent::Remove, lookup);
    environment
}

/// KiB to bytes (values are at most `i32::MAX` KiB, so this cannot
/// overflow).
fn kib(value: u64) -> u64 {
    value * 1024
}

/// The run's configuration from isolate's options (the box fills in its
/// own part: directory, ids, cgroup).
pub(super) fn build_config(parsed: &IsolateArgs, environment: Environment) -> IsolateConfig {
    // isolate checks -x only together with -t.
    let extra_time = parsed.time.and(parsed.extra_time);
    IsolateConfig {
        strict_mode: true,
        use_cgroups: parsed.cg,
        time_limit: parsed.time,
        extra_time,
        wall_time_limit: parsed.wall_time,
        memory_limit: parsed.cg_mem_kib.map(kib),
        address_space_limit: parsed.mem_kib.map(kib),
        process_limit: parsed.processes,
        file_size_limit: parsed.fsize_kib.map(kib),
        stack_limit: parsed.stack_kib.map(kib),
        open_files_limit: parsed.open_files,
        core_limit: kib(parsed.core_kib),
        output_limit: None,
        environment,
        default_dirs: !parsed.no_default_dirs,
        dir_rules: parsed.dirs.clone(),
        inner_workdir: parsed
            .chdir
            .clone()
            .unwrap_or_else(|| PathBuf::from(isobox::config::BOX_MOUNT_POINT)),
        share_net: parsed.share_net,
        stdin_file: parsed.stdin.clone(),
        stdout_file: parsed.stdout.clone(),
        stderr_file: parsed.stderr.clone(),
        stderr_to_stdout: parsed.stderr_to_stdout,
        inherit_stdout_stderr: true,
        inherit_fds: parsed.inherit_fds,
        // Without --tty-hack the program runs in a session of its own with
        // no controlling terminal, even when stdio is isolate's terminal.
        keep_terminal: parsed.tty_hack,
        ..IsolateConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::parse;
    use super::*;
    use std::time::Duration;

    fn parsed(words: &[&str]) -> IsolateArgs {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        parse(&words).unwrap()
    }

    #[test]
    fn sizes_are_kib_and_defaults_are_isolates() {
        let args = parsed(&[
            "--cg",
            "-m",
            "1000",
            "--cg-mem=2000",
            "-k",
            "64",
            "-f",
            "8",
            "--run",
            "--",
            "a",
        ]);
        let config = build_config(&args, Vec::new());
        assert_eq!(config.address_space_limit, Some(1000 * 1024));
        assert_eq!(config.memory_limit, Some(2000 * 1024));
        assert_eq!(config.stack_limit, Some(64 * 1024));
        assert_eq!(config.file_size_limit, Some(8 * 1024));
        assert_eq!(config.open_files_limit, Some(1024));
        assert_eq!(config.core_limit, 0);
        assert_eq!(config.output_limit, None);
        assert!(config.use_cgroups && config.inherit_stdout_stderr);
        assert_eq!(config.inner_workdir, Path::new("/box"));

        let plain = build_config(&parsed(&["--run", "--", "a"]), Vec::new());
        assert!(!plain.use_cgroups);
        assert_eq!(plain.process_limit, Some(1));
        assert_eq!((plain.memory_limit, plain.stack_limit), (None, None));
    }

    #[test]
    fn extra_time_is_absolute_and_needs_a_time_limit() {
        let config = build_config(
            &parsed(&["-t", "1", "-x", "1.5", "--run", "--", "a"]),
            vec![],
        );
        assert_eq!(config.time_limit, Some(Duration::from_secs(1)));
        assert_eq!(config.extra_time, Some(Duration::from_millis(1500)));
        assert_eq!(
            config.cpu_kill_threshold(),
            Some(Duration::from_millis(1500))
        );
        let config = build_config(&parsed(&["-x", "1.5", "--run", "--", "a"]), vec![]);
        assert_eq!(config.extra_time, None);
    }

    #[test]
    fn environment_is_empty_but_for_the_rules() {
        let lookup = |name: &str| (name == "LANG").then(|| "C.UTF-8".to_string());
        let everything = || {
            vec![
                ("LANG".to_string(), "C.UTF-8".to_string()),
                ("SECRET".to_string(), "x".to_string()),
            ]
        };
        let args = parsed(&[
            "-E",
            "HOME=/tmp",
            "-E",
            "LANG",
            "-E",
            "MISSING",
            "--run",
            "--",
            "a",
        ]);
        assert_eq!(
            environment(&args, lookup, everything),
            [
                ("LIBC_FATAL_STDERR_".to_string(), "1".to_string()),
                ("HOME".to_string(), "/tmp".to_string()),
                ("LANG".to_string(), "C.UTF-8".to_string()),
            ]
        );
        let full = parsed(&["-e", "-E", "SECRET=", "--run", "--", "a"]);
        let env = environment(&full, lookup, everything);
        assert!(env.iter().any(|(name, _)| name == "LANG"));
        assert!(!env.iter().any(|(name, _)| name == "SECRET"));
        assert!(env.contains(&("LIBC_FATAL_STDERR_".to_string(), "1".to_string())));
    }
}
