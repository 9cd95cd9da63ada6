//! Fuzzing of every parser of outside input (issue 15): one property per
//! parser, inputs both fully random and built near-valid from the real
//! option names, units and keys, each bounded to a few seconds. A panic on
//! any input is a bug; the inputs that once made one stay below as
//! regression cases. `PROPTEST_CASES=100000 cargo test --test fuzz_parsers`
//! runs longer (see docs/RELIABILITY.md).
//!
//! The isolate face's parsers and the service's request model live in the
//! binary crate; they are self-contained modules, so they are compiled here
//! from the same source files and called in process, the way `main` calls
//! them.

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
