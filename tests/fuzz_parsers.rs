//! Fuzzing of every parser of outside input (issue 15): one property per
//! parser, inputs both fully random and built near-valid from the real
//! option names, units and keys, each bounded to a few seconds. A panic on
//! any input is a bug; the inputs that once made one stay below as
//! regression cases. `PROPTEST_CASES=100000 cargo test --test fuzz_parsers`
//! runs longer (see docs/RELIABILITY.md).
//!
//! The isolate face's parsers and the service's request model and
//! `prepare` live in the binary crate; they are self-contained modules, so
//! they are compiled here from the same source files and called in process,
//! the way `main` and the server call them.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use isobox::boxes::BoxesConfig;
use isobox::dirs::DirRule;
use isobox::{ExecutionResult, ExecutionStatus, KillReason};
use proptest::prelude::*;
use proptest::test_runner::Config;

// The module tree `args.rs` expects: `super::getopt` beside it and
// `crate::cli::{env, units}`. (A `#[path]` inside an inline module would be
// resolved below a `tests/cli/` directory that does not exist.)
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../src/cli/isolate/args.rs"]
mod args;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../src/cli/env.rs"]
mod env;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../src/cli/isolate/getopt.rs"]
mod getopt;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../src/cli/isolate/meta.rs"]
mod meta;
#[path = "../src/cli/text.rs"]
mod text;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../src/cli/units.rs"]
mod units;
mod cli {
    pub(crate) use super::text::one_line;
    pub(crate) use super::{env, units};
}

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../src/server/model.rs"]
mod model;
// The service's `prepare` and what `run.rs` expects beside it:
// `super::{confine, model, store}`.
use isobox::confine;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../src/server/run.rs"]
mod run;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../src/server/store.rs"]
mod store;

use env::EnvRule;
use units::{parse_count, parse_size, parse_time, MAX_SECONDS};

/// Cases per property unless `PROPTEST_CASES` says otherwise: every parser
/// here takes microseconds, so this stays well under a second each.
fn cases(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Every long option isolate knows, and the short ones.
const LONG: &[&str] = &[
    "as-uid",
    "as-gid",
    "box-id",
    "chdir",
    "cg",
    "cg-mem",
    "cg-timing",
    "check-config",
    "cleanup",
    "core",
    "dir",
    "no-cg-timing",
    "no-default-dirs",
    "fsize",
    "env",
    "extra-time",
    "full-env",
    "help",
    "inherit-fds",
    "init",
    "mem",
    "meta",
    "open-files",
    "print-cg-root",
    "processes",
    "quota",
    "run",
    "share-net",
    "silent",
    "special-files",
    "stack",
    "stderr",
    "stderr-to-stdout",
    "stdin",
    "stdout",
    "syscalls",
    "time",
    "tty-hack",
    "verbose",
    "version",
    "wait",
    "wall-time",
];
const SHORT: &str = "bcdDfEexmMnpqsrkiotvw";

/// Numbers, sizes and times as people and fuzzers misspell them.
fn number_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-+]?[0-9]{0,25}(\\.[0-9]{0,12})?[kKmMgGtTpP]?[iI]?[bB]?",
        "[0-9.eE+\\-]{0,12}",
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("9223372036854775807".to_string()),
        Just("inf".to_string()),
        Just("NaN".to_string()),
        Just("-0".to_string()),
        Just(".".to_string()),
        any::<String>(),
    ]
}

/// Directory rules: paths, `=`, `:` and the real options.
fn dir_rule_like() -> impl Strategy<Value = String> {
    let option = prop_oneof![
        Just("rw"),
        Just("dev"),
        Just("noexec"),
        Just("maybe"),
        Just("norec"),
        Just("fs"),
        Just("tmp"),
        Just(""),
        Just("bogus"),
    ];
    let path = "[/a-z.\\x00]{0,12}";
    (
        path,
        proptest::option::of(path),
        proptest::option::of(proptest::collection::vec(option, 0..5)),
    )
        .prop_map(|(inside, outside, options)| {
            let mut rule = inside;
            if let Some(outside) = outside {
                rule = format!("{rule}={outside}");
            }
            if let Some(options) = options {
                rule = format!("{rule}:{}", options.join(","));
            }
            rule
        })
}

/// One word of an isolate command line.
fn isolate_word() -> impl Strategy<Value = String> {
    let long = proptest::sample::select(LONG);
    let short = proptest::sample::select(SHORT.chars().collect::<Vec<_>>());
    prop_oneof![
        long.clone().prop_map(|name| format!("--{name}")),
        (long.clone(), number_like()).prop_map(|(name, value)| format!("--{name}={value}")),
        // Abbreviations, ambiguous or not.
        (long, 1usize..4).prop_map(|(name, keep)| format!("--{}", &name[..keep.min(name.len())])),
        short.clone().prop_map(|c| format!("-{c}")),
        (short.clone(), number_like()).prop_map(|(c, value)| format!("-{c}{value}")),
        (short.clone(), short).prop_map(|(a, b)| format!("-{a}{b}")),
        dir_rule_like(),
        number_like(),
        Just("--".to_string()),
        Just("-".to_string()),
        Just("---".to_string()),
        Just("--=".to_string()),
        "[A-Z_]{0,4}=?[a-z]{0,3}",
        any::<String>(),
    ]
}

/// Words that once broke a parser or sit on an edge of one.
const ISOLATE_SEEDS: &[&[&str]] = &[
    &[],
    &["--"],
    &["-"],
    &["--run"],
    &["--run", "--"],
    &["-b"],
    &["-b", "-1"],
    &["-b18446744073709551616", "--run", "--", "x"],
    &["--processes"],
    &["-p"],
    &["--time=", "--run"],
    &["--dir=", "--run"],
    &["--dir=:", "--init"],
    &["-d", "=", "--run"],
    &["--env=", "--run"],
    &["-E=", "--run"],
    &["--e", "--run"],
    &["--wall-time=1e309", "--run"],
    &["--mem=99999999999999999999999", "--run"],
    &["--cg-mem=-1", "--cg", "--run"],
    &["--version", "--run"],
    &["--meta=/dev/null", "--cleanup"],
    &["--syscalls=", "--run"],
    &["--as-uid=4294967296", "--init"],
];

#[test]
fn isolate_arguments_seeds_never_panic() {
    for seed in ISOLATE_SEEDS {
        let words: Vec<String> = seed.iter().map(|word| word.to_string()).collect();
        let _ = args::parse(&words);
    }
}

proptest! {
    #![proptest_config(cases(2500))]

    /// The whole isolate command line, parsed as `main` parses it.
    #[test]
    fn isolate_arguments_never_panic(words in proptest::collection::vec(isolate_word(), 0..8),
                                     action in prop_oneof![
                                         Just(None), Just(Some("--run")), Just(Some("--init")),
                                         Just(Some("--cleanup")), Just(Some("--version")),
                                     ],
                                     command in proptest::collection::vec(any::<String>(), 0..3)) {
        let mut line = words;
        if let Some(action) = action {
            line.push(action.to_string());
        }
        line.push("--".to_string());
        line.extend(command);
        let _ = args::parse(&line);
    }

    #[test]
    fn dir_rules_never_panic(rule in prop_oneof![dir_rule_like(), any::<String>()]) {
        if let Ok(parsed) = DirRule::from_str(&rule) {
            // What parses is absolute inside the box: anything else would
            // be mounted relative to wherever root happens to stand.
            prop_assert!(parsed.inside.is_absolute(), "{rule:?} -> {parsed:?}");
        }
    }

    #[test]
    fn sizes_never_panic_and_round_trip(text in number_like(),
                                        n in any::<u64>(),
                                        unit in proptest::sample::select(&[("", 0u32), ("K", 10), ("m", 20), ("GiB", 30), ("tb", 40)][..])) {
        let _ = parse_size(&text);
        let _ = parse_count(&text);
        prop_assert_eq!(parse_count(&n.to_string()), Ok(n));
        let (suffix, shift) = unit;
        let expected = n.checked_mul(1u64 << shift);
        match parse_size(&format!("{n}{suffix}")) {
            Ok(bytes) => prop_assert_eq!(Some(bytes), expected),
            Err(_) => prop_assert_eq!(expected, None),
        }
    }

    #[test]
    fn times_never_panic_and_round_trip(text in number_like(),
                                        seconds in 0u64..10_000_000,
                                        nanos in 0u32..1_000_000_000) {
        let _ = parse_time(&text);
        let printed = format!("{seconds}.{nanos:09}");
        match parse_time(&printed) {
            Ok(time) => prop_assert_eq!(time, Duration::new(seconds, nanos)),
            // Only a time past the cap may be refused.
            Err(_) => prop_assert!(Duration::new(seconds, nanos) > Duration::from_secs(MAX_SECONDS)),
        }
    }

    #[test]
    fn env_rules_never_panic_and_round_trip(text in any::<String>(),
                                            name in "[A-Za-z_][A-Za-z0-9_]{0,8}",
                                            value in "[^\\x00]{1,12}") {
        let _ = EnvRule::parse(&text);
        let set = EnvRule::parse(&format!("{name}={value}"));
        prop_assert!(matches!(set, Ok(EnvRule::Set(ref n, ref v)) if *n == name && *v == value), "{set:?}");
        let unset = EnvRule::parse(&format!("{name}="));
        prop_assert!(matches!(unset, Ok(EnvRule::Unset(ref n)) if *n == name), "{unset:?}");
        let pass = EnvRule::parse(&name);
        prop_assert!(matches!(pass, Ok(EnvRule::Pass(ref n)) if *n == name), "{pass:?}");
    }

    #[test]
    fn config_files_never_panic(lines in proptest::collection::vec(prop_oneof![
            config_line(),
            proptest::sample::select(config_seeds()),
            any::<String>(),
        ], 0..8)) {
        let text = lines.join("\n");
        // No subid file: a `subid_user` line must fail cleanly, not panic.
        let missing = Path::new("/nonexistent/isobox-fuzz");
        if let Ok(config) = BoxesConfig::parse_with_subids(&text, Path::new("fuzz.conf"), missing, missing) {
            let _ = config.cgroup_placement();
        }
    }

    #[test]
    fn requests_never_panic(body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            mutated_request(),
        ]) {
        let _ = serde_json::from_slice::<model::Request>(&body);
    }
}

/// The configuration keys the parser knows, and a few it does not.
fn config_line() -> impl Strategy<Value = String> {
    let key = proptest::sample::select(
        &[
            "box_root",
            "lock_root",
            "cg_root",
            "box_quota",
            "subid_user",
            "first_uid",
            "first_gid",
            "num_boxes",
            "restricted_init",
            "syscall_flags",
            "box0.cpus",
            "box7.mems",
            "box.cpus",
            "box99999999999999999999.cpus",
            "boxx.mems",
            "box1.bogus",
            "",
            "#",
        ][..],
    );
    let value = prop_oneof![
        number_like(),
        "(auto:)?/[a-z/]{0,8}",
        Just("auto".to_string()),
        "[ #=a-z0-9]{0,8}",
    ];
    (key, "[ \t]{0,2}=?[ \t]{0,2}", value).prop_map(|(k, sep, v)| format!("{k}{sep}{v}"))
}

fn config_seeds() -> Vec<String> {
    include_str!("fuzz_corpus/config_seeds.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A valid request from the corpus, mutated, so that most inputs get deep
/// into the model before they break.
fn mutated_request() -> impl Strategy<Value = Vec<u8>> {
    mutated(include_str!("fuzz_corpus/requests.json"))
}

#[test]
fn corpus_requests_parse() {
    // The seeds are valid: if one stopped parsing, the mutations above
    // would only exercise the error paths.
    for line in include_str!("fuzz_corpus/requests.json").lines() {
        serde_json::from_str::<model::Request>(line).unwrap_or_else(|err| panic!("{line}: {err}"));
    }
}

fn status() -> impl Strategy<Value = ExecutionStatus> {
    proptest::sample::select(
        &[
            ExecutionStatus::Success,
            ExecutionStatus::TimeLimit,
            ExecutionStatus::MemoryLimit,
            ExecutionStatus::RuntimeError,
            ExecutionStatus::Signaled,
            ExecutionStatus::InternalError,
            ExecutionStatus::SecurityViolation,
            ExecutionStatus::ProcessLimit,
            ExecutionStatus::FileSizeLimit,
            ExecutionStatus::OutputLimit,
        ][..],
    )
}

fn kill_reason() -> impl Strategy<Value = Option<KillReason>> {
    proptest::option::of(prop_oneof![
        Just(KillReason::CpuTime),
        Just(KillReason::WallTime),
        any::<i32>().prop_map(KillReason::Interrupted),
    ])
}

/// Any result the executor could hand the meta writer, the message included
/// (it carries text from the program's failed `exec` and from the kernel).
fn execution_result() -> impl Strategy<Value = ExecutionResult> {
    let float = prop_oneof![
        0.0f64..1e7,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
        Just(f64::MAX)
    ];
    (
        (status(), any::<Option<i32>>(), any::<Option<i32>>()),
        (float.clone(), float, any::<u64>(), any::<u64>()),
        (
            any::<Option<u64>>(),
            any::<bool>(),
            any::<bool>(),
            kill_reason(),
        ),
        (any::<u64>(), any::<u64>(), any::<Option<i32>>()),
        prop_oneof![any::<String>(), "[a-z \r\n:]{0,12}"],
    )
        .prop_map(
            |(
                (status, exit_code, signal),
                (cpu_time, wall_time, memory_peak, max_rss),
                (process_peak, oom_killed, killed, kill_reason),
                (dropped, switches, exec_errno),
                message,
            )| ExecutionResult {
                status,
                exit_code,
                signal,
                stdout: String::new(),
                stderr: String::new(),
                cpu_time,
                wall_time,
                memory_peak,
                max_rss,
                process_peak,
                oom_killed,
                killed,
                kill_reason,
                voluntary_context_switches: switches,
                involuntary_context_switches: switches / 2,
                stdout_dropped: dropped,
                stderr_dropped: dropped / 3,
                exec_errno,
                message,
                absent_protections: Vec::new(),
            },
        )
}

/// Reads a meta file the way CMS does (line by line with universal
/// newlines, each line split at its first `:`) and requires it to give back
/// exactly the pairs that were written.
fn assert_reads_back(meta: &meta::Meta) -> Result<(), TestCaseError> {
    let text = meta.to_string();
    let read: Vec<(&str, &str)> = text
        .split_terminator('\n')
        .flat_map(|line| line.split('\r'))
        .map(|line| line.split_once(':').unwrap_or((line, "<no colon>")))
        .collect();
    let written: Vec<(&str, &str)> = meta
        .lines()
        .iter()
        .map(|(key, value)| (*key, value.trim()))
        .collect();
    prop_assert_eq!(read, written, "meta file {:?}", text);
    Ok(())
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn meta_files_read_back(result in execution_result(), cgroups in any::<bool>(),
                            error in any::<String>()) {
        assert_reads_back(&meta::Meta::from_result(&result, cgroups))?;
        assert_reads_back(&meta::Meta::sandbox_error(&error))?;
    }
}

/// An executor that only compiles its system-call filter: no cgroup, no
/// namespaces, nothing run, so each case costs a file write and a compile.
fn compile_extension(path: &Path) -> Result<isobox::ProcessExecutor, isobox::IsolateError> {
    let config = isobox::IsolateConfig {
        use_cgroups: false,
        namespaces: false,
        strict_mode: false,
        seccomp: true,
        seccomp_policy: Some(path.to_path_buf()),
        ..Default::default()
    };
    isobox::ProcessExecutor::new(config)
}

#[test]
fn seccomp_extension_seeds_compile_or_fail_cleanly() {
    let dir = tempfile_dir("seeds");
    let path = dir.join("policy.json");
    let seeds: Vec<&str> = include_str!("fuzz_corpus/seccomp_extensions.json")
        .lines()
        .collect();
    let mut compiled = 0;
    for seed in &seeds {
        std::fs::write(&path, seed).unwrap();
        compiled += usize::from(compile_extension(&path).is_ok());
    }
    // The corpus holds both kinds, so the mutations below start from both.
    assert!(
        compiled > 0 && compiled < seeds.len(),
        "{compiled} of {}",
        seeds.len()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A scratch directory of this test process, removed by the test.
fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("isobox-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A seed from the corpus with bytes overwritten, inserted or cut.
fn mutated(seeds: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = seeds.lines().map(|line| line.as_bytes().to_vec()).collect();
    let edit = (any::<usize>(), any::<u8>(), 0u8..3);
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(edit, 0..4),
    )
        .prop_map(|(mut body, edits)| {
            for (at, byte, kind) in edits {
                let at = at % (body.len() + 1);
                match kind {
                    0 if at < body.len() => body[at] = byte,
                    1 => body.insert(at, byte),
                    _ => body.truncate(at),
                }
            }
            body
        })
}

proptest! {
    #![proptest_config(cases(400))]

    #[test]
    fn seccomp_extensions_never_panic(body in prop_oneof![
            mutated(include_str!("fuzz_corpus/seccomp_extensions.json")),
            proptest::collection::vec(any::<u8>(), 0..32),
        ]) {
        let dir = tempfile_dir("cases");
        let path = dir.join("policy.json");
        std::fs::write(&path, &body).unwrap();
        let _ = compile_extension(&path);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

// ------------------------------------------------------- the service's prepare

/// The settings of a server started as a judge would start it:
/// `--limits-cap cpu=5,clock=15,memory=512m,procs=32,output=16m,copyout=8m,
/// copyouttotal=64m,cmds=8,cpurate=1500,cpuset=0-1 --cpu-controls
/// --src-prefix /etc` on a 4-CPU host (`copy_in_files` lowered too, so
/// that its cap is reachable); or, with `plain`, the defaults of a bare
/// `isobox serve` on that host (no CPU controls, no host files).
fn server_settings(plain: bool) -> run::Settings {
    let host_cpus = run::CpuList::first(4);
    if plain {
        return run::Settings {
            caps: run::Caps::default(),
            src_prefixes: Vec::new(),
            cpu_controls: false,
            host_cpus,
        };
    }
    run::Settings {
        caps: run::Caps {
            cpu: Duration::from_secs(5),
            clock: Duration::from_secs(15),
            memory: 512 << 20,
            procs: 32,
            output: 16 << 20,
            copy_out: 8 << 20,
            copy_out_total: 64 << 20,
            file_size: 64 << 20,
            copy_in_files: 3,
            cmds: 8,
            cpu_rate: Some(1500),
            cpuset: Some(run::CpuList::parse("0-1").unwrap()),
        },
        src_prefixes: vec![std::fs::canonicalize("/etc").unwrap()],
        cpu_controls: true,
        host_cpus,
    }
}

/// A path of the box as `BoxPath` must leave it: relative, and no
/// component that climbs out.
fn assert_inside(path: &confine::BoxPath) -> Result<(), TestCaseError> {
    let relative = path.relative();
    prop_assert!(
        !relative.is_empty() && !relative.starts_with('/'),
        "{relative:?}"
    );
    prop_assert!(!relative.contains('\0'), "{relative:?}");
    prop_assert!(
        relative
            .split('/')
            .all(|part| !matches!(part, "" | "." | "..")),
        "{relative:?}"
    );
    Ok(())
}

/// What `prepare` accepted is within the server's caps and well formed.
fn assert_within_caps(job: &run::Job, settings: &run::Settings) -> Result<(), TestCaseError> {
    let caps = &settings.caps;
    prop_assert!(job.args.first().is_some_and(|arg| !arg.is_empty()));
    prop_assert!(job.args.iter().all(|arg| !arg.contains('\0')));
    for (name, value) in &job.env {
        prop_assert!(!name.is_empty() && !name.contains(['=', '\0']), "{name:?}");
        prop_assert!(!value.contains('\0'), "{value:?}");
    }
    prop_assert!(job.env.iter().any(|(name, _)| name == "HOME"));
    prop_assert!(!job.cpu.is_zero() && job.cpu <= caps.cpu, "{:?}", job.cpu);
    prop_assert!(
        !job.clock.is_zero() && job.clock <= caps.clock,
        "{:?}",
        job.clock
    );
    prop_assert!(job.memory > 0 && job.memory <= caps.memory);
    prop_assert!(job.stack > 0 && job.stack <= job.memory);
    prop_assert!(job.procs > 0 && job.procs <= caps.procs);
    for output in [&job.stdout, &job.stderr] {
        if let run::Output::Collect { name, max } = output {
            prop_assert!(!name.is_empty());
            prop_assert!(*max <= caps.output);
        }
    }
    if let (run::Output::Collect { name: a, .. }, run::Output::Collect { name: b, .. }) =
        (&job.stdout, &job.stderr)
    {
        prop_assert_ne!(a, b);
    }
    prop_assert!(job.copy_in.len() + job.symlinks.len() <= caps.copy_in_files);
    let sources = job
        .copy_in
        .iter()
        .map(|(_, _, source)| source)
        .chain(job.stdin.as_ref());
    for source in sources {
        if let run::Source::Host(path) = source {
            prop_assert!(
                settings
                    .src_prefixes
                    .iter()
                    .any(|prefix| path.starts_with(prefix)),
                "{path:?} is outside every --src-prefix"
            );
        }
    }
    for (_, path, _) in &job.copy_in {
        assert_inside(path)?;
    }
    for (_, path, target) in &job.symlinks {
        assert_inside(path)?;
        prop_assert!(!target.contains('\0'));
    }
    for (_, path, _, _) in &job.copy_out {
        assert_inside(path)?;
    }
    prop_assert!(job.copy_out_max > 0 && job.copy_out_max <= caps.copy_out);
    prop_assert_eq!(job.copy_out_total, caps.copy_out_total);
    if !settings.cpu_controls {
        prop_assert!(job.cpu_bandwidth.is_none() && job.cpuset.is_none());
    }
    let allowed = caps.cpuset.as_ref().unwrap_or(&settings.host_cpus);
    let cpus = match &job.cpuset {
        Some(set) => {
            let set = run::CpuList::parse(set);
            prop_assert!(set.is_ok(), "the cpuset {set:?} does not read back");
            let set = set.unwrap();
            prop_assert!(set.count() > 0 && set.is_subset(allowed), "{set}");
            set.count()
        }
        None => allowed.count(),
    };
    if let Some(bandwidth) = job.cpu_bandwidth {
        let thousandths = bandwidth.quota.as_micros() * 1000 / bandwidth.period.as_micros();
        prop_assert!(bandwidth.quota >= Duration::from_millis(1), "{bandwidth:?}");
        // A quota of every CPU the run has would throttle nothing.
        prop_assert!(thousandths < u128::from(cpus) * 1000, "{bandwidth:?}");
        if let Some(cap) = caps.cpu_rate {
            prop_assert!(thousandths <= u128::from(cap), "{bandwidth:?}");
        }
    }
    Ok(())
}

/// Deserialises a request body and prepares its commands the way
/// `POST /run` does (the request-level checks first), each command even
/// after one is refused; checks every accepted one. How many were
/// accepted, for the seeds' test.
fn prepare_body(body: &[u8], settings: &run::Settings) -> Result<usize, TestCaseError> {
    let Ok(request) = serde_json::from_slice::<model::Request>(body) else {
        return Ok(0);
    };
    if request.cmd.is_empty() || request.cmd.len() > settings.caps.cmds {
        return Ok(0);
    }
    let mut accepted = 0;
    for cmd in &request.cmd {
        if let Ok(job) = run::prepare(cmd, settings) {
            assert_within_caps(&job, settings)?;
            accepted += 1;
        }
    }
    Ok(accepted)
}

/// A number where the caps and the parsers have edges: zero, one, just
/// around each cap, the extremes of the types, and anything.
fn edge_number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        60 => proptest::sample::select(
            &[
                0,
                1,
                9,
                10,
                999,
                1000,
                1500,
                1501,
                4000,
                32,
                33,
                64,
                1 << 20,
                8 << 20,
                (8 << 20) + 1,
                (16 << 20) + 1,
                512 << 20,
                (512 << 20) + 1,
                1_000_000_000,
                5_000_000_000,
                5_000_000_001,
                15_000_000_001,
                i64::MAX as u64,
                u64::MAX,
            ][..]
        )
        .prop_map(serde_json::Value::from),
        20 => any::<u64>().prop_map(serde_json::Value::from),
        // Rare: one refused number refuses the whole request.
        1 => Just(serde_json::json!(-1)),
        1 => Just(serde_json::json!(1.5)),
    ]
}

/// A string from the words `prepare` treats specially, or anything.
fn edge_string(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(words).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// Mostly a word `prepare` accepts, else one of the words it refuses or
/// anything: a command has many fields, and each refusal ends it.
fn mostly(
    good: &'static [&'static str],
    bad: &'static [&'static str],
) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(good).prop_map(str::to_string),
        1 => edge_string(bad),
    ]
}

const BOX_NAMES: &[&str] = &[
    "a.c",
    "stdout",
    "stderr",
    "/w/a",
    "/w/",
    "/w",
    "/wx/a",
    "a/../b",
    "../a",
    "..",
    ".",
    "",
    "/etc/passwd",
    "a//b/./c",
    "x?",
    "?",
    "a\0b",
];

const HOST_FILES: &[&str] = &[
    "/etc/hostname",
    "/etc/passwd",
    "/etc/../etc/passwd",
    "/etc/os-release",
    "/proc/self/root/etc/passwd",
    "/etc/nonexistent",
    "/tmp",
    "etc/passwd",
    "",
];

/// One file of a command: every shape the model takes, the ones each
/// slot accepts most often.
fn cmd_file() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => Just(serde_json::Value::Null),
        4 => (mostly(&["stdout", "stderr", "out"], BOX_NAMES), edge_number())
            .prop_map(|(name, max)| serde_json::json!({ "name": name, "max": max })),
        4 => edge_string(&["", "int main(){}", "\0"])
            .prop_map(|c| serde_json::json!({ "content": c })),
        1 => Just(serde_json::json!({})),
        1 => edge_string(HOST_FILES).prop_map(|src| serde_json::json!({ "src": src })),
        1 => edge_string(&["abc", "", "../x"]).prop_map(|id| serde_json::json!({ "fileId": id })),
        1 => edge_string(&["../../etc/passwd", "/etc", "", "a\0"])
            .prop_map(|target| serde_json::json!({ "symlink": target })),
        1 => Just(serde_json::json!({ "pipe": true })),
        1 => Just(serde_json::json!({ "streamOut": true, "name": "stdout" })),
    ]
}

/// A `copyIn` entry (never `null`): mostly a file with content.
fn copy_in_file() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => edge_string(&["", "int main(){}"]).prop_map(|c| serde_json::json!({ "content": c })),
        1 => cmd_file().prop_filter("null is no copyIn entry", |file| !file.is_null()),
    ]
}

/// A command built field by field from values near every edge of
/// `prepare`, serialised so that it goes through the model too.
fn structured_request() -> impl Strategy<Value = Vec<u8>> {
    let words = proptest::collection::vec(mostly(&["/bin/true", "x", "-"], &["", "a\0b"]), 1..3);
    let env = proptest::collection::vec(
        mostly(
            &["PATH=/bin", "HOME=/w", "A=b=c", "A="],
            &["=x", "A", "A=\0", "HOME"],
        ),
        0..3,
    );
    let files = proptest::collection::vec(cmd_file(), 0..4);
    let limits = proptest::collection::vec(edge_number(), 9);
    let cpuset = mostly(
        &["", "", "", "0", "0-1", "1"],
        &[" ", "3", "0-3", "0-8191", "0-4294967295", "1,,2", "2-1"],
    );
    let good_names = &["a.c", "stdout", "/w/a", "a//b/./c", "x?", "dir/f"];
    let copy_in =
        proptest::collection::btree_map(mostly(good_names, BOX_NAMES), copy_in_file(), 0..5);
    let copy_out = proptest::collection::vec(mostly(good_names, BOX_NAMES), 0..4);
    let cached = proptest::collection::vec(mostly(good_names, BOX_NAMES), 0..3);
    let flags = proptest::collection::vec(any::<bool>(), 6);
    // A terminal is refused: rarely asked for.
    let tty = proptest::bool::weighted(0.05);
    let cmds = 1..10usize;
    (
        (words, env, files, limits, cpuset),
        (copy_in, copy_out, cached, flags, cmds, tty),
    )
        .prop_map(
            |(
                (args, env, files, limits, cpuset),
                (copy_in, copy_out, cached, flags, cmds, tty),
            )| {
                let cmd = serde_json::json!({
                    "args": args,
                    "env": env,
                    "files": files,
                    "cpuLimit": limits[0],
                    "realCpuLimit": limits[1],
                    "clockLimit": limits[2],
                    "memoryLimit": limits[3],
                    "stackLimit": limits[4],
                    "procLimit": limits[5],
                    // A rate is refused without --cpu-controls: often none.
                    "cpuRateLimit": if flags[5] { limits[6].clone() } else { 0.into() },
                    "cpuSetLimit": cpuset,
                    "copyIn": copy_in,
                    "copyOut": copy_out,
                    "copyOutCached": cached,
                    "copyOutMax": limits[7],
                    "copyOutTruncate": flags[0],
                    "tty": tty,
                    "copyOutDir": if flags[1] { "d" } else { "" },
                    "strictMemoryLimit": flags[2],
                    "dataSegmentLimit": flags[3],
                    "addressSpaceLimit": flags[4],
                });
                // Now and then more commands than the cap allows.
                let count = if limits[8].as_u64().is_some_and(|n| n.is_multiple_of(8)) {
                    cmds
                } else {
                    1
                };
                serde_json::to_vec(&serde_json::json!({ "cmd": vec![cmd; count] })).unwrap()
            },
        )
}

#[test]
fn corpus_requests_are_prepared_within_the_caps() {
    // Most seeds get through prepare with both settings, so that their
    // mutations reach its checks and not only the model's.
    for plain in [false, true] {
        let settings = server_settings(plain);
        let mut accepted = 0;
        for line in include_str!("fuzz_corpus/requests.json").lines() {
            accepted += prepare_body(line.as_bytes(), &settings).unwrap();
        }
        assert!(
            accepted >= 3,
            "only {accepted} commands of the seeds accepted"
        );
    }
}

proptest! {
    #![proptest_config(cases(2500))]

    #[test]
    fn prepare_never_panics_and_keeps_the_caps(
        body in prop_oneof![mutated_request(), structured_request()],
        plain in any::<bool>(),
    ) {
        prepare_body(&body, &server_settings(plain))?;
    }
}
