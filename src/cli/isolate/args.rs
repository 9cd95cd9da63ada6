//! isolate's command line, parsed the way isolate parses it.
//!
//! The parser follows `getopt_long`: long options may be abbreviated to any
//! unambiguous prefix and take their value as `--opt=value` or
//! `--opt value`; short options cluster (`-sv`) and take their value
//! attached (`-b3`) or as the next argument (`-b 3`); `-p`/`--processes`
//! takes a value only when it is attached (`-p60`, `--processes=60`);
//! options come in any order and repeat where that makes sense (`-d`, `-E`,
//! `-v`). The command to run follows `--`. isobox is stricter in one place:
//! an argument that is not an option before `--` is an error, where
//! `getopt_long` would quietly move it behind the options.
//!
//! Values keep isolate's units: sizes in KiB, times in decimal seconds.
//! Turning them into a configuration is [`super::driver`]'s job.

use std::path::PathBuf;
use std::time::Duration;

use isobox::dirs::DirRule;

use super::getopt::{split, Key};
use crate::cli::env::{EmptyName, EnvRule};
use crate::cli::units::{parse_count, parse_time, unlimited_if_zero};

/// What isolate is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `--init`: create (or reset) the box and print its directory.
    Init,
    /// `--run -- CMD ARGS`: run a program in the box.
    Run(Vec<String>),
    /// `--cleanup`: remove the box.
    Cleanup,
    /// `--version`.
    Version,
    /// `--print-cg-root`.
    PrintCgRoot,
    /// `--check-config`: read the configuration file and report problems.
    CheckConfig,
    /// `--help`.
    Help,
}

/// Everything the command line says, in isolate's units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolateArgs {
    /// The action.
    pub action: Action,
    /// `-b`: the box number.
    pub box_id: u64,
    /// `--cg`: limit and measure with cgroups.
    pub cg: bool,
    /// `-M`: the meta file (`-` = stdout).
    pub meta: Option<PathBuf>,
    /// `-i`: stdin, opened inside the box.
    pub stdin: Option<PathBuf>,
    /// `-o`: stdout, opened inside the box.
    pub stdout: Option<PathBuf>,
    /// `-r`: stderr, opened inside the box.
    pub stderr: Option<PathBuf>,
    /// `--stderr-to-stdout`.
    pub stderr_to_stdout: bool,
    /// `-c`: working directory inside the box.
    pub chdir: Option<PathBuf>,
    /// `-t`: CPU time limit (0 = none).
    pub time: Option<Duration>,
    /// `-w`: wall-clock limit (0 = none).
    pub wall_time: Option<Duration>,
    /// `-x`: absolute CPU time at which a timing-out program is killed.
    pub extra_time: Option<Duration>,
    /// `-m`: address space per process, KiB (0 = none).
    pub mem_kib: Option<u64>,
    /// `--cg-mem`: cgroup memory limit, KiB (0 = none).
    pub cg_mem_kib: Option<u64>,
    /// `-k`: stack, KiB (0 = unlimited).
    pub stack_kib: Option<u64>,
    /// `-f`: largest file, KiB (0 = none).
    pub fsize_kib: Option<u64>,
    /// `--core`: largest core file, KiB (default 0).
    pub core_kib: u64,
    /// `-n`: open files (default 1024 as in isolate 2.6; 0 = unlimited, `None`).
    pub open_files: Option<u64>,
    /// `-p`: processes (default 1; bare `-p` or 0 = unlimited, `None`).
    pub processes: Option<u64>,
    /// `-q`: blocks (KiB) and inodes, used by `--init`.
    pub quota: Option<(u64, u64)>,
    /// `-E` rules, in order.
    pub env: Vec<EnvRule>,
    /// `-e`: start from isolate's whole environment.
    pub full_env: bool,
    /// `-d` rules, in order.
    pub dirs: Vec<DirRule>,
    /// `-D`: no default directory rules.
    pub no_default_dirs: bool,
    /// `--share-net`.
    pub share_net: bool,
    /// `--inherit-fds`.
    pub inherit_fds: bool,
    /// `--tty-hack`: the program keeps isolate's controlling terminal and
    /// is its foreground process group during the run.
    pub tty_hack: bool,
    /// `--special-files`: keep non-regular files the program made.
    pub special_files: bool,
    /// `-s`, counted.
    pub silent: u32,
    /// `-v`, counted.
    pub verbose: u32,
    /// `--wait`: wait for a busy box.
    pub wait: bool,
    /// `--as-uid`.
    pub as_uid: Option<u32>,
    /// `--as-gid`.
    pub as_gid: Option<u32>,
    /// `--syscalls`: isolate's `syscall_flags` for this run.
    pub syscalls: Option<u32>,
}

impl Default for IsolateArgs {
    fn default() -> Self {
        Self {
            action: Action::Help,
            box_id: 0,
            cg: false,
            meta: None,
            stdin: None,
            stdout: None,
            stderr: None,
            stderr_to_stdout: false,
            chdir: None,
            time: None,
            wall_time: None,
            extra_time: None,
            mem_kib: None,
            cg_mem_kib: None,
            stack_kib: None,
            fsize_kib: None,
            core_kib: 0,
            open_files: Some(1024),
            processes: Some(1),
            quota: None,
            env: Vec::new(),
            full_env: false,
            dirs: Vec::new(),
            no_default_dirs: false,
            share_net: false,
            inherit_fds: false,
            tty_hack: false,
            special_files: false,
            silent: 0,
            verbose: 0,
            wait: false,
            as_uid: None,
            as_gid: None,
            syscalls: None,
        }
    }
}

/// A whole number of isolate's (at most `i32::MAX`, as isolate's
/// `opt_uint`).
fn whole(spelled: &str, value: &str) -> Result<u64, String> {
    let number = parse_count(value).map_err(|why| format!("{spelled} {value}: {why}"))?;
    if number > i32::MAX as u64 {
        return Err(format!("{spelled} {value}: the number is out of range"));
    }
    Ok(number)
}

/// A limit where 0 means "none".
fn limit(spelled: &str, value: &str) -> Result<Option<u64>, String> {
    whole(spelled, value).map(unlimited_if_zero)
}

fn time(spelled: &str, value: &str) -> Result<Option<Duration>, String> {
    let duration = parse_time(value).map_err(|why| format!("{spelled} {value}: {why}"))?;
    Ok(unlimited_if_zero(duration))
}

fn id(spelled: &str, value: &str) -> Result<u32, String> {
    whole(spelled, value).map(|n| n as u32)
}

/// An `-E` rule (`VAR` passes isolate's own `VAR`, or removes it when
/// isolate has none).
fn env_rule(value: &str) -> Result<EnvRule, String> {
    EnvRule::parse(value).map_err(|EmptyName| {
        format!("invalid environment rule '{value}': expected VAR, VAR=VALUE or VAR=")
    })
}

fn quota(spelled: &str, value: &str) -> Result<(u64, u64), String> {
    let (blocks, inodes) = value
        .split_once(',')
        .ok_or_else(|| format!("{spelled} {value}: expected BLOCKS,INODES"))?;
    let (blocks, inodes) = (whole(spelled, blocks)?, whole(spelled, inodes)?);
    // tmpfs reads a size or inode count of 0 as "no limit".
    if blocks == 0 || inodes == 0 {
        return Err(format!(
            "{spelled} {value}: blocks and inodes must both be at least 1"
        ));
    }
    Ok((blocks, inodes))
}

/// Parses isolate's arguments (without the program name). Errors are one
/// line, worded like isolate's and `getopt_long`'s.
pub fn parse(args: &[String]) -> Result<IsolateArgs, String> {
    let split = split(args)?;
    let mut parsed = IsolateArgs::default();
    let mut action: Option<(Key, String)> = None;
    let mut needs_cg: Option<String> = None;
    for given in split.options {
        let spelled = given.spelled.as_str();
        let value = given.value.as_deref().unwrap_or("");
        match given.key {
            Key::Init
            | Key::Run
            | Key::Cleanup
            | Key::Version
            | Key::PrintCgRoot
            | Key::CheckConfig
            | Key::Help => match &action {
                Some((key, _)) if *key == given.key => {}
                Some((_, first)) => {
                    return Err(format!(
                        "only one command is allowed, but both {first} and {spelled} were given"
                    ))
                }
                None => action = Some((given.key, spelled.to_string())),
            },
            Key::AsUid => parsed.as_uid = Some(id(spelled, value)?),
            Key::AsGid => parsed.as_gid = Some(id(spelled, value)?),
            Key::BoxId => parsed.box_id = whole(spelled, value)?,
            Key::Chdir => parsed.chdir = Some(PathBuf::from(value)),
            Key::Cg => parsed.cg = true,
            Key::CgMem => {
                parsed.cg_mem_kib = limit(spelled, value)?;
                needs_cg.get_or_insert_with(|| spelled.to_string());
            }
            Key::CgTiming => {
                needs_cg.get_or_insert_with(|| spelled.to_string());
            }
            Key::NoCgTiming => {}
            Key::Core => parsed.core_kib = whole(spelled, value)?,
            Key::Dir => parsed.dirs.push(
                value
                    .parse::<DirRule>()
                    .map_err(|err| format!("{spelled} {value}: {err}"))?,
            ),
            Key::NoDefaultDirs => parsed.no_default_dirs = true,
            Key::Fsize => parsed.fsize_kib = limit(spelled, value)?,
            Key::Env => parsed.env.push(env_rule(value)?),
            Key::ExtraTime => parsed.extra_time = time(spelled, value)?,
            Key::FullEnv => parsed.full_env = true,
            Key::InheritFds => parsed.inherit_fds = true,
            Key::Mem => parsed.mem_kib = limit(spelled, value)?,
            Key::Meta => parsed.meta = Some(PathBuf::from(value)),
            // 0 asks for no limit. isolate then leaves the caller's own in
            // place; isobox sets every limit itself (nothing of the
            // caller's reaches the box), so it gives the kernel's most.
            Key::OpenFiles => {
                parsed.open_files =
                    Some(limit(spelled, value)?.unwrap_or(isobox::config::OPEN_FILES_UNLIMITED))
            }
            Key::Processes => {
                parsed.processes = match &given.value {
                    Some(value) => limit(spelled, value)?,
                    None => None,
                }
            }
            Key::Quota => parsed.quota = Some(quota(spelled, value)?),
            Key::ShareNet => parsed.share_net = true,
            Key::Silent => parsed.silent += 1,
            Key::SpecialFiles => parsed.special_files = true,
            Key::Stack => parsed.stack_kib = limit(spelled, value)?,
            Key::Stderr => {
                parsed.stderr = Some(PathBuf::from(value));
                parsed.stderr_to_stdout = false;
            }
            Key::StderrToStdout => {
                parsed.stderr = None;
                parsed.stderr_to_stdout = true;
            }
            Key::Stdin => parsed.stdin = Some(PathBuf::from(value)),
            Key::Stdout => parsed.stdout = Some(PathBuf::from(value)),
            Key::Syscalls => parsed.syscalls = Some(id(spelled, value)?),
            Key::Time => parsed.time = time(spelled, value)?,
            Key::TtyHack => parsed.tty_hack = true,
            Key::Verbose => parsed.verbose += 1,
            Key::Wait => parsed.wait = true,
            Key::WallTime => parsed.wall_time = time(spelled, value)?,
        }
    }
    let Some((key, spelled)) = action else {
        return Err(match split.stray.first() {
            Some(stray) => format!(
                "unexpected argument '{stray}': isolate's commands are options \
                 (--init, --run -- CMD ARGS..., --cleanup)"
            ),
            None => "please specify an isolate command (e.g. --init, --run, --cleanup)".to_string(),
        });
    };
    if let Some(stray) = split.stray.first() {
        return Err(if key == Key::Run {
            format!("unexpected argument '{stray}': the command to run goes after '--' (isolate [OPTIONS] --run -- CMD ARGS...)")
        } else {
            format!("unexpected argument '{stray}': {spelled} takes no parameters")
        });
    }
    parsed.action =
        match key {
            Key::Run => {
                let command = split.command.unwrap_or_default();
                match command.first() {
                    None => return Err(
                        "--run needs a command after '--' (isolate [OPTIONS] --run -- CMD ARGS...)"
                            .to_string(),
                    ),
                    Some(program) if program.is_empty() => {
                        return Err("the program name after '--' is empty".to_string())
                    }
                    Some(_) => Action::Run(command),
                }
            }
            other => {
                if let Some(extra) = split.command.as_ref().and_then(|c| c.first()) {
                    return Err(format!(
                        "unexpected argument '{extra}': {spelled} takes no parameters"
                    ));
                }
                match other {
                    Key::Init => Action::Init,
                    Key::Cleanup => Action::Cleanup,
                    Key::Version => Action::Version,
                    Key::PrintCgRoot => Action::PrintCgRoot,
                    Key::CheckConfig => Action::CheckConfig,
                    _ => Action::Help,
                }
            }
        };
    if let Some(option) = needs_cg {
        if !parsed.cg && matches!(parsed.action, Action::Init | Action::Run(_)) {
            return Err(format!(
                "{option} needs --cg (options related to control groups require --cg to be set)"
            ));
        }
    }
    if parsed.as_uid.is_some() != parsed.as_gid.is_some() {
        return Err("--as-uid and --as-gid must be used either both or none".to_string());
    }
    Ok(parsed)
}

/// How `isobox --help` introduces the isolate face.
pub const FACE_SUMMARY: &str = "\
The isolate-compatible face (a drop-in for IOI isolate, as used by CMS and Judge0):
  isobox [isolate options] --init | --run -- CMD ARGS... | --cleanup | ...
  isolate [isolate options] ...      (isobox installed or linked as `isolate`)
isobox speaks isolate's command line when it is invoked as `isolate` or when its
first argument is an option other than --help or --version: boxes numbered by
-b live in box_root (default /var/local/lib/isobox), are set up by --init, run
programs with --run and are removed by --cleanup; -M writes isolate's meta
file. The configuration file is /etc/isobox.conf, or the file named by
ISOBOX_CONFIG. `isobox --cg --help` lists every isolate option.";

/// The usage text of the isolate face (`isolate --help`).
pub const USAGE: &str = "\
Usage: isolate [<options>] <command>

isobox's isolate-compatible command line (a drop-in for IOI isolate 2.x).

Commands:
    --init              Initialize the box (reset it if it exists); print its directory
    --run -- <cmd> ...  Run the command in the box
    --cleanup           Remove the box (fine if it does not exist)
    --print-cg-root     Print the root of the cgroup hierarchy
    --check-config      Check the configuration file
    --version           Print the version
    --help              Print this text

Options:
    --as-uid=<uid>      Act on behalf of this user (root only; with --as-gid)
    --as-gid=<gid>      Act on behalf of this group (root only; with --as-uid)
-b, --box-id=<id>       Box number (default 0; below num_boxes)
    --cg                Limit and measure with control groups
    --cg-mem=<size>     Memory limit of the whole box in KiB (needs --cg)
    --cg-timing         Accepted for isolate 1.x (cgroup timing is the default with --cg)
    --no-cg-timing      Accepted for isolate 1.x
-c, --chdir=<dir>       Working directory inside the box (default /box)
    --core=<size>       Largest core file in KiB (default 0)
-d, --dir=<in>=<out>[:<opts>]  Bind <out> outside at <in> inside; -d <dir> binds
                        <dir> at the same place; -d <in>= removes a rule.
                        Options: rw, dev, noexec, maybe, fs, tmp, norec
-D, --no-default-dirs   Do not add the default directory rules
-e, --full-env          Pass the whole environment
-E, --env=<var>         Pass <var> from the environment
-E, --env=<var>=<val>   Set <var>; with an empty <val>, remove it
-f, --fsize=<size>      Largest file the program may write, in KiB
-i, --stdin=<file>      Standard input, opened inside the box (relative to /box)
    --inherit-fds       Let the program inherit isolate's open descriptors
-k, --stack=<size>      Stack limit in KiB (default: unlimited)
-m, --mem=<size>        Address space limit of each process in KiB
-M, --meta=<file>       Write the meta file (- for standard output)
-n, --open-files=<max>  Open files per process (default 1024; 0 = unlimited)
-o, --stdout=<file>     Standard output, opened inside the box (relative to /box)
-p, --processes[=<max>] Processes and threads (default 1; -p alone = unlimited)
-q, --quota=<blk>,<ino> With --init: a box file system of <blk> KiB and <ino> inodes
                        (both at least 1; default: box_quota, 1048576,65536)
-r, --stderr=<file>     Standard error, opened inside the box (relative to /box)
    --stderr-to-stdout  Send standard error where standard output goes
    --syscalls=<flags>  isolate's system-call restrictions for this run, a sum of: 1 keyrings,
                        2 vsock, 4 file locks, 8 io_uring, 16 foreign architectures
                        (default: syscall_flags of the configuration, 65535 = all)
    --share-net         Keep the host's network
-s, --silent            Print no status messages, only fatal errors
    --special-files     Keep symlinks, fifos and other special files the program made
-t, --time=<time>       CPU time limit in seconds
    --tty-hack          Let the program use isolate's terminal (it can type into it)
-v, --verbose           Say more (repeatable)
    --wait              Wait for a busy box instead of failing
-w, --wall-time=<time>  Wall-clock limit in seconds
-x, --extra-time=<time> CPU time at which a timing-out program is killed (absolute)

Exit status: 0 the program succeeded, 1 it failed (RE, SG, TO), 2 sandbox error
or bad usage. The configuration file is /etc/isobox.conf, or the file named by
ISOBOX_CONFIG.";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    fn ok(words: &[&str]) -> IsolateArgs {
        parse(&args(words)).unwrap_or_else(|err| panic!("{words:?}: {err}"))
    }

    fn err(words: &[&str]) -> String {
        parse(&args(words)).expect_err(&format!("{words:?} should fail"))
    }

    #[test]
    fn syscalls_takes_isolate_flags() {
        assert_eq!(ok(&["--run", "--", "a"]).syscalls, None);
        assert_eq!(ok(&["--syscalls=0", "--run", "--", "a"]).syscalls, Some(0));
        assert_eq!(
            ok(&["--syscalls", "15", "--run", "--", "a"]).syscalls,
            Some(15)
        );
        err(&["--syscalls=many", "--run", "--", "a"]);
        err(&["--syscalls=-1", "--run", "--", "a"]);
    }

    #[test]
    fn the_cms_command_lines_parse() {
        let init = ok(&["--box-id=3", "--cg", "--init"]);
        assert_eq!(
            (init.action.clone(), init.box_id, init.cg),
            (Action::Init, 3, true)
        );
        let run = ok(&[
            "--cg",
            "--box-id=3",
            "--chdir=/tmp",
            "--dir=/tmp=/srv/outer/home:rw",
            "--dir=/dev/shm:tmp",
            "--dir=/etc/alternatives=/etc/alternatives",
            "--env=HOME=/tmp",
            "--full-env",
            "--env=PYTHONPATH",
            "--fsize=1024",
            "--stdin=/tmp/input.txt",
            "--stack=65536",
            "--cg-mem=262144",
            "--stdout=/tmp/output.txt",
            "--processes=1000",
            "--stderr=/tmp/error.txt",
            "--time=1.5",
            "-v",
            "--wall-time=10",
            "--extra-time=0.5",
            "--meta=/srv/outer/run.meta.0",
            "--run",
            "--",
            "/usr/bin/python3",
            "solution.py",
        ]);
        assert_eq!(
            run.action,
            Action::Run(args(&["/usr/bin/python3", "solution.py"]))
        );
        assert_eq!(run.chdir, Some(PathBuf::from("/tmp")));
        assert_eq!(run.dirs.len(), 3);
        assert_eq!(
            run.env,
            [
                EnvRule::Set("HOME".into(), "/tmp".into()),
                EnvRule::Pass("PYTHONPATH".into())
            ]
        );
        assert!(run.full_env);
        assert_eq!(run.fsize_kib, Some(1024));
        assert_eq!(run.stack_kib, Some(65536));
        assert_eq!(run.cg_mem_kib, Some(262144));
        assert_eq!(run.processes, Some(1000));
        assert_eq!(run.time, Some(Duration::from_millis(1500)));
        assert_eq!(run.wall_time, Some(Duration::from_secs(10)));
        assert_eq!(run.extra_time, Some(Duration::from_millis(500)));
        assert_eq!(run.verbose, 1);
        assert_eq!(run.meta, Some(PathBuf::from("/srv/outer/run.meta.0")));
        assert_eq!(run.stdin, Some(PathBuf::from("/tmp/input.txt")));
    }

    #[test]
    fn the_judge0_command_line_parses() {
        let run = ok(&[
            "--cg",
            "-s",
            "-b",
            "17",
            "-M",
            "/var/box/17/metadata.txt",
            "--stderr-to-stdout",
            "-t",
            "5.0",
            "-x",
            "1.0",
            "-w",
            "10.0",
            "-k",
            "64000",
            "-p60",
            "--cg-timing",
            "--cg-mem=128000",
            "-f",
            "1024",
            "-E",
            "HOME=/tmp",
            "-E",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "-E",
            "LANG",
            "-d",
            "/etc:noexec",
            "--run",
            "--",
            "/bin/bash",
            "run.sh",
        ]);
        assert_eq!(run.box_id, 17);
        assert_eq!(run.silent, 1);
        assert!(run.stderr_to_stdout);
        assert_eq!(run.processes, Some(60));
        assert_eq!(run.time, Some(Duration::from_secs(5)));
        assert_eq!(run.extra_time, Some(Duration::from_secs(1)));
        assert_eq!(run.cg_mem_kib, Some(128000));
        assert_eq!(run.env.len(), 3);
        assert_eq!(run.action, Action::Run(args(&["/bin/bash", "run.sh"])));
    }

    #[test]
    fn long_options_abbreviate_when_unambiguous() {
        let run = ok(&["--box=4", "--chd", "/x", "--wall", "2", "--run", "--", "a"]);
        assert_eq!(run.box_id, 4);
        assert_eq!(run.chdir, Some(PathBuf::from("/x")));
        assert_eq!(run.wall_time, Some(Duration::from_secs(2)));
        // An exact name wins over longer ones it prefixes.
        assert!(ok(&["--cg", "--init"]).cg);
        assert_eq!(
            ok(&["--stderr=e", "--run", "--", "a"]).stderr,
            Some("e".into())
        );
        assert!(ok(&["--cg", "--cg-t", "--init"]).cg);
        assert_eq!(ok(&["--ini"]).action, Action::Init);
        assert_eq!(ok(&["--clean"]).action, Action::Cleanup);
        let ambiguous = err(&["--st=x", "--init"]);
        assert!(
            ambiguous.contains("option '--st' is ambiguous"),
            "{ambiguous}"
        );
        assert!(ambiguous.contains("'--stack'") && ambiguous.contains("'--stdin'"));
        assert!(err(&["--cg-", "--init"]).contains("ambiguous"));
    }

    #[test]
    fn short_options_cluster_and_take_attached_values() {
        let run = ok(&["-sv", "-b3", "-M", "-", "-vvt1", "--run", "--", "a"]);
        assert_eq!((run.silent, run.verbose, run.box_id), (1, 3, 3));
        assert_eq!(run.meta, Some(PathBuf::from("-")));
        assert_eq!(run.time, Some(Duration::from_secs(1)));
        assert_eq!(ok(&["-sb", "7", "--init"]).box_id, 7);
        // -n exists (isolate 1.10 lost it).
        assert_eq!(
            ok(&["-n", "0", "--run", "--", "a"]).open_files,
            Some(isobox::config::OPEN_FILES_UNLIMITED)
        );
        assert_eq!(ok(&["-n128", "--run", "--", "a"]).open_files, Some(128));
    }

    #[test]
    fn processes_take_only_an_attached_value() {
        assert_eq!(ok(&["--run", "--", "a"]).processes, Some(1));
        assert_eq!(ok(&["-p", "--run", "--", "a"]).processes, None);
        assert_eq!(ok(&["-p60", "--run", "--", "a"]).processes, Some(60));
        assert_eq!(
            ok(&["--processes=8", "--run", "--", "a"]).processes,
            Some(8)
        );
        assert_eq!(ok(&["--processes", "--run", "--", "a"]).processes, None);
        assert_eq!(ok(&["-p0", "--run", "--", "a"]).processes, None);
        assert_eq!(ok(&["-sp4", "--run", "--", "a"]).processes, Some(4));
        // A detached value is not the option's: it is a stray argument.
        let stray = err(&["-p", "5", "--run", "--", "a"]);
        assert!(stray.contains("unexpected argument '5'"), "{stray}");
    }

    #[test]
    fn env_rules_in_every_form() {
        let run = ok(&["-E", "A=1", "--env=B", "-EC=", "-e", "--run", "--", "a"]);
        assert_eq!(
            run.env,
            [
                EnvRule::Set("A".into(), "1".into()),
                EnvRule::Pass("B".into()),
                EnvRule::Unset("C".into())
            ]
        );
        assert!(run.full_env);
        assert_eq!(
            ok(&["-E", "X=a=b", "--run", "--", "a"]).env,
            [EnvRule::Set("X".into(), "a=b".into())]
        );
        assert!(err(&["-E", "=1", "--run", "--", "a"]).contains("invalid environment rule"));
    }

    #[test]
    fn repeated_dirs_and_values_keep_isolates_meaning() {
        let run = ok(&[
            "-d",
            "/a",
            "--dir=/b=/c:rw",
            "-d/d=",
            "-D",
            "--run",
            "--",
            "x",
        ]);
        assert_eq!(run.dirs.len(), 3);
        assert!(run.no_default_dirs);
        // Sizes are KiB and 0 means no limit.
        let run = ok(&["-m", "0", "-k0", "-f", "5", "--core=3", "--run", "--", "x"]);
        assert_eq!((run.mem_kib, run.stack_kib), (None, None));
        assert_eq!((run.fsize_kib, run.core_kib), (Some(5), 3));
        // -r and --stderr-to-stdout: the last one wins.
        let run = ok(&["-r", "e", "--stderr-to-stdout", "--run", "--", "x"]);
        assert!(run.stderr_to_stdout && run.stderr.is_none());
        let run = ok(&["--stderr-to-stdout", "-r", "e", "--run", "--", "x"]);
        assert!(!run.stderr_to_stdout && run.stderr.is_some());
        assert_eq!(ok(&["-q", "1000,50", "--init"]).quota, Some((1000, 50)));
        assert!(ok(&["-t", "0", "--run", "--", "x"]).time.is_none());
    }

    #[test]
    fn bad_usage_is_one_clear_line() {
        for (words, expected) in [
            (&["--bogus", "--init"][..], "unrecognized option '--bogus'"),
            (&["-z", "--init"], "invalid option -- 'z'"),
            (&["--init", "-b"], "option requires an argument -- 'b'"),
            (
                &["--init", "--meta"],
                "option '--meta' requires an argument",
            ),
            (
                &["--cg=1", "--init"],
                "option '--cg' doesn't allow an argument",
            ),
            (&["-b", "x", "--init"], "-b x"),
            (&["-b", "-1", "--init"], "negative"),
            (&["-b", "99999999999", "--init"], "out of range"),
            (&["-t", "abc", "--run", "--", "a"], "not a time"),
            (&["-m", "1G", "--run", "--", "a"], "not a whole number"),
            (&["-q", "100", "--init"], "BLOCKS,INODES"),
            (&["-q", "0,0", "--init"], "at least 1"),
            (&["-q", "100,0", "--init"], "at least 1"),
            (&["-d", "/x=rel", "--init"], "directory rule"),
            (&["-b", "1"], "please specify an isolate command"),
            (&["--init", "--run"], "only one command is allowed"),
            (&["--run"], "--run needs a command after '--'"),
            (&["--run", "--"], "--run needs a command after '--'"),
            (&["--run", "/bin/true"], "goes after '--'"),
            (&["--init", "extra"], "--init takes no parameters"),
            (&["--cleanup", "--", "x"], "--cleanup takes no parameters"),
            (&["--cg-mem=100", "--run", "--", "a"], "needs --cg"),
            (&["--cg-timing", "--init"], "needs --cg"),
            (&["--as-uid=5", "--init"], "both or none"),
            (&["--run", "--", ""], "empty"),
        ] {
            let line = err(words);
            assert!(line.contains(expected), "{words:?}: {line}");
            assert!(!line.contains('\n'), "{words:?}: {line}");
        }
    }

    #[test]
    fn the_command_keeps_its_own_options() {
        let run = ok(&["--run", "--", "/bin/ls", "-l", "--", "--cg"]);
        assert_eq!(
            run.action,
            Action::Run(args(&["/bin/ls", "-l", "--", "--cg"]))
        );
        assert!(!run.cg);
        // The same command twice is fine; a lone '-' is an argument.
        assert_eq!(ok(&["--init", "--init"]).action, Action::Init);
        assert!(err(&["-", "--init"]).contains("unexpected argument '-'"));
    }

    #[test]
    fn usage_lists_every_long_option() {
        for spec in super::super::getopt::OPTIONS {
            assert!(
                USAGE.contains(&format!("--{}", spec.long)),
                "--{} missing from the usage",
                spec.long
            );
            if let Some(letter) = spec.short {
                assert!(USAGE.contains(&format!("-{letter}, --{}", spec.long)));
            }
        }
    }
}
