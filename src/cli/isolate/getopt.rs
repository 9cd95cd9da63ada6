//! `getopt_long` as isolate calls it: the table of isolate's options and
//! the split of the arguments into options, their values and the command.
//! What the options mean is [`super::args`]'s.

/// How an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HasArg {
    No,
    Required,
    /// Only attached: `-p5`, `--processes=5`.
    Optional,
}

/// Every option isolate knows (and isobox's `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    AsUid,
    AsGid,
    BoxId,
    Chdir,
    Cg,
    CgMem,
    CgTiming,
    NoCgTiming,
    CheckConfig,
    Cleanup,
    Core,
    Dir,
    NoDefaultDirs,
    Fsize,
    Env,
    ExtraTime,
    FullEnv,
    Help,
    InheritFds,
    Init,
    Mem,
    Meta,
    OpenFiles,
    PrintCgRoot,
    Processes,
    Quota,
    Run,
    ShareNet,
    Silent,
    SpecialFiles,
    Stack,
    Stderr,
    StderrToStdout,
    Stdin,
    Syscalls,
    Stdout,
    Time,
    TtyHack,
    Verbose,
    Version,
    Wait,
    WallTime,
}

/// One entry of the option table.
pub(super) struct Spec {
    pub(super) long: &'static str,
    pub(super) short: Option<char>,
    has_arg: HasArg,
    key: Key,
}

const fn spec(long: &'static str, short: Option<char>, has_arg: HasArg, key: Key) -> Spec {
    Spec {
        long,
        short,
        has_arg,
        key,
    }
}

/// isolate 2.x's options, 1.x's `--cg-timing`/`--no-cg-timing`, and
/// `--help`; the short letters are isolate's `b:c:d:DeE:f:i:k:m:M:n:o:p::q:r:st:vw:x:`.
pub(super) const OPTIONS: &[Spec] = &[
    spec("as-uid", None, HasArg::Required, Key::AsUid),
    spec("as-gid", None, HasArg::Required, Key::AsGid),
    spec("box-id", Some('b'), HasArg::Required, Key::BoxId),
    spec("chdir", Some('c'), HasArg::Required, Key::Chdir),
    spec("cg", None, HasArg::No, Key::Cg),
    spec("cg-mem", None, HasArg::Required, Key::CgMem),
    spec("cg-timing", None, HasArg::No, Key::CgTiming),
    spec("check-config", None, HasArg::No, Key::CheckConfig),
    spec("cleanup", None, HasArg::No, Key::Cleanup),
    spec("core", None, HasArg::Required, Key::Core),
    spec("dir", Some('d'), HasArg::Required, Key::Dir),
    spec("no-cg-timing", None, HasArg::No, Key::NoCgTiming),
    spec("no-default-dirs", Some('D'), HasArg::No, Key::NoDefaultDirs),
    spec("fsize", Some('f'), HasArg::Required, Key::Fsize),
    spec("env", Some('E'), HasArg::Required, Key::Env),
    spec("extra-time", Some('x'), HasArg::Required, Key::ExtraTime),
    spec("full-env", Some('e'), HasArg::No, Key::FullEnv),
    spec("help", None, HasArg::No, Key::Help),
    spec("inherit-fds", None, HasArg::No, Key::InheritFds),
    spec("init", None, HasArg::No, Key::Init),
    spec("mem", Some('m'), HasArg::Required, Key::Mem),
    spec("meta", Some('M'), HasArg::Required, Key::Meta),
    spec("open-files", Some('n'), HasArg::Required, Key::OpenFiles),
    spec("print-cg-root", None, HasArg::No, Key::PrintCgRoot),
    spec("processes", Some('p'), HasArg::Optional, Key::Processes),
    spec("quota", Some('q'), HasArg::Required, Key::Quota),
    spec("run", None, HasArg::No, Key::Run),
    spec("share-net", None, HasArg::No, Key::ShareNet),
    spec("silent", Some('s'), HasArg::No, Key::Silent),
    spec("special-files", None, HasArg::No, Key::SpecialFiles),
    spec("stack", Some('k'), HasArg::Required, Key::Stack),
    spec("stderr", Some('r'), HasArg::Required, Key::Stderr),
    spec("stderr-to-stdout", None, HasArg::No, Key::StderrToStdout),
    spec("stdin", Some('i'), HasArg::Required, Key::Stdin),
    spec("stdout", Some('o'), HasArg::Required, Key::Stdout),
    spec("syscalls", None, HasArg::Required, Key::Syscalls),
    spec("time", Some('t'), HasArg::Required, Key::Time),
    spec("tty-hack", None, HasArg::No, Key::TtyHack),
    spec("verbose", Some('v'), HasArg::No, Key::Verbose),
    spec("version", None, HasArg::No, Key::Version),
    spec("wait", None, HasArg::No, Key::Wait),
    spec("wall-time", Some('w'), HasArg::Required, Key::WallTime),
];

/// One option as it was given: the entry, its value, and how it was
/// spelled (for messages).
pub(super) struct Given {
    pub(super) key: Key,
    pub(super) value: Option<String>,
    pub(super) spelled: String,
}

/// What `getopt_long` splits the arguments into.
pub(super) struct Split {
    pub(super) options: Vec<Given>,
    /// Arguments that are not options, before `--`.
    pub(super) stray: Vec<String>,
    /// Everything after `--`, when `--` was given.
    pub(super) command: Option<Vec<String>>,
}

fn find_long(name: &str) -> Result<&'static Spec, String> {
    if let Some(exact) = OPTIONS.iter().find(|spec| spec.long == name) {
        return Ok(exact);
    }
    let matches: Vec<&Spec> = OPTIONS
        .iter()
        .filter(|spec| spec.long.starts_with(name))
        .collect();
    match matches.as_slice() {
        [] => Err(format!("unrecognized option '--{name}'")),
        [only] => Ok(only),
        many => Err(format!(
            "option '--{name}' is ambiguous; possibilities: {}",
            many.iter()
                .map(|spec| format!("'--{}'", spec.long))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

fn find_short(letter: char) -> Result<&'static Spec, String> {
    OPTIONS
        .iter()
        .find(|spec| spec.short == Some(letter))
        .ok_or_else(|| format!("invalid option -- '{letter}'"))
}

/// Splits `args` (without the program name) as `getopt_long` would.
pub(super) fn split(args: &[String]) -> Result<Split, String> {
    let mut options = Vec::new();
    let mut stray = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            return Ok(Split {
                options,
                stray,
                command: Some(rest.cloned().collect()),
            });
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, attached) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (body, None),
            };
            let spec = find_long(name)?;
            let spelled = format!("--{}", spec.long);
            let value = match (spec.has_arg, attached) {
                (HasArg::No, Some(_)) => {
                    return Err(format!("option '{spelled}' doesn't allow an argument"))
                }
                (HasArg::Required, None) => Some(
                    rest.next()
                        .cloned()
                        .ok_or_else(|| format!("option '{spelled}' requires an argument"))?,
                ),
                (_, attached) => attached,
            };
            options.push(Given {
                key: spec.key,
                value,
                spelled,
            });
        } else if arg.len() > 1 && arg.starts_with('-') {
            let cluster = &arg[1..];
            for (at, letter) in cluster.char_indices() {
                let spec = find_short(letter)?;
                let spelled = format!("-{letter}");
                let attached = &cluster[at + letter.len_utf8()..];
                let value = match spec.has_arg {
                    HasArg::No => None,
                    HasArg::Optional => (!attached.is_empty()).then(|| attached.to_string()),
                    HasArg::Required if !attached.is_empty() => Some(attached.to_string()),
                    HasArg::Required => Some(
                        rest.next()
                            .cloned()
                            .ok_or_else(|| format!("option requires an argument -- '{letter}'"))?,
                    ),
                };
                let takes_rest = value.is_some();
                options.push(Given {
                    key: spec.key,
                    value,
                    spelled,
                });
                if takes_rest {
                    break;
                }
            }
        } else {
            stray.push(arg.clone());
        }
    }
    Ok(Split {
        options,
        stray,
        command: None,
    })
}
