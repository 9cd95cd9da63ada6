//! The executable's early path (`src/sys/early.rs`): what it answers
//! before the C library starts, and the rules its machine code must keep,
//! checked on the built executable itself.

// Only the filter of `common` is used here: none of these tests needs
// root, so its privilege guard goes unused.
#[allow(unused_macros, unused_imports)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_isobox");

/// Runs `program` (the binary, or a link to it) with `args`, killed at its
/// first `arch_prctl`, which glibc's start-up makes to set up thread-local
/// storage: a process that gets through answered before the C library
/// started.
fn run_without_the_c_library(program: &std::path::Path, args: &[&str]) -> Output {
    let program_filter = common::killed_at_glibc_start();
    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: between fork and exec the child only makes the two system
    // calls of apply_filter (no_new_privs, then the filter), on a program
    // built before the fork.
    unsafe {
        command.pre_exec(move || {
            seccompiler::apply_filter(&program_filter).map_err(std::io::Error::other)
        });
    }
    command.output().unwrap()
}

fn killed_by_sigsys(output: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    output.status.signal() == Some(libc::SIGSYS)
}

#[test]
fn version_requests_are_answered_before_the_c_library_starts() {
    let dir = tempfile::tempdir().unwrap();
    let isolate = dir.path().join("isolate");
    symlink(BINARY, &isolate).unwrap();

    // The filter bites: anything else needs the C library.
    for (program, args) in [
        (&isolate, &["--version", "--cg"][..]),
        (&isolate, &["--help"][..]),
        (&std::path::PathBuf::from(BINARY), &["--help"][..]),
        (&std::path::PathBuf::from(BINARY), &["-V", "-V"][..]),
    ] {
        let output = run_without_the_c_library(program, args);
        assert!(killed_by_sigsys(&output), "{args:?}: {output:?}");
    }

    let output = run_without_the_c_library(&isolate, &["--version"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("The process isolator 2.6"), "{text}");
    let second = lines.next().unwrap_or_default();
    assert!(
        second.starts_with(&format!("isobox {version} (commit "))
            && second.ends_with("), a sandbox that follows isolate 2.6; not isolate itself"),
        "{text}"
    );
    assert_eq!(lines.next(), None, "{text}");
    assert!(output.stderr.is_empty(), "{output:?}");

    // By its own name, as clap prints it (the late path checks this text
    // against clap's in `the_native_version_is_claps`).
    for flag in ["--version", "-V"] {
        let output = run_without_the_c_library(std::path::Path::new(BINARY), &[flag]);
        assert!(output.status.success(), "{output:?}");
        let line = String::from_utf8(output.stdout).unwrap();
        assert!(
            line.starts_with(&format!("isobox {version} (commit ")) && line.ends_with(")\n"),
            "{line:?}"
        );
        assert_eq!(line.lines().count(), 1);
    }
}

/// The early text is the one clap prints on the ordinary path: the same
/// version, with a second argument that only clap accepts.
#[test]
fn the_native_version_is_claps() {
    let early = Command::new(BINARY).arg("--version").output().unwrap();
    let late = Command::new(BINARY)
        .args(["--version", "--version"])
        .output()
        .unwrap();
    assert!(early.status.success() && late.status.success());
    assert_eq!(early.stdout, late.stdout);
}

/// A reader that is gone is no death by SIGPIPE: the early path exits 0
/// as the ordinary one does.
#[test]
fn a_closed_pipe_does_not_kill_the_early_path() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(BINARY)
        .arg("--version")
        .stdout(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// A function of the executable: where it starts and how long it is.
struct Symbols {
    by_address: BTreeMap<u64, (u64, String)>,
}

impl Symbols {
    fn read() -> Self {
        let listing = tool("nm", &["--defined-only", "-S", "-n", BINARY]);
        let mut by_address = BTreeMap::new();
        for line in listing.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // address [size] type name: a symbol without a size (glibc's
            // `_start`) is only ever a target, never walked.
            let (address, size, kind, name) = match fields[..] {
                [address, size, kind, name] => (address, size, kind, name),
                [address, kind, name] => (address, "0", kind, name),
                _ => continue,
            };
            if kind.eq_ignore_ascii_case("t") {
                let address = u64::from_str_radix(address, 16).unwrap();
                let size = u64::from_str_radix(size, 16).unwrap();
                by_address.insert(address, (size, name.to_string()));
            }
        }
        Self { by_address }
    }

    fn named(&self, wanted: &str) -> u64 {
        self.by_address
            .iter()
            .find(|(_, (_, name))| name == wanted)
            .map(|(address, _)| *address)
            .unwrap_or_else(|| panic!("no symbol {wanted}"))
    }
}

/// The sections' address ranges.
fn sections() -> Vec<(String, u64, u64)> {
    let listing = tool("objdump", &["-h", BINARY]);
    let mut sections = Vec::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // index name size vma lma offset align
        if fields.len() == 7 && fields[0].parse::<u32>().is_ok() {
            let size = u64::from_str_radix(fields[2], 16).unwrap();
            let start = u64::from_str_radix(fields[3], 16).unwrap();
            sections.push((fields[1].to_string(), start, start + size));
        }
    }
    sections
}

fn tool(name: &str, args: &[&str]) -> String {
    let output = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{name} (binutils) is needed here: {error}"));
    assert!(output.status.success(), "{name} {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// The address a `call`, `jmp` or RIP-relative operand names in objdump's
/// listing: `... 28e850 <name>` or `# 28e850 <name>`.
fn named_address(text: &str) -> Option<u64> {
    let before = text[..text.rfind(" <")?].trim_end();
    let word = before.rsplit([' ', '\t']).next()?;
    u64::from_str_radix(word, 16).ok()
}

/// Whether the function of this (mangled) name only reports a failed
/// check: the way into a panic.
fn panics(name: &str) -> bool {
    [
        "panic",
        "precondition_check",
        "unwrap_failed",
        "expect_failed",
        "index_len_fail",
        "index_order_fail",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Everything that runs from the entry point until it hands over to
/// glibc's `_start` keeps the early rules (`src/sys/early.rs`): it calls
/// and jumps only into Rust code of the executable (never into glibc, so
/// never `memcpy`, nor anything through the GOT, which is not relocated
/// yet), has no way into a panic, no branch through a register, no
/// reference to a word that needs relocating (the GOT, `.data.rel.ro`),
/// and uses no thread-local storage.
#[test]
fn the_early_path_needs_nothing_the_c_library_sets_up() {
    if cfg!(debug_assertions) {
        panic!(
            "isobox was built with debug assertions, which turn its early path off: \
             Cargo.toml's dev profile builds it without them"
        );
    }
    let symbols = Symbols::read();
    let sections = sections();
    let section_of = |address: u64| {
        sections
            .iter()
            .find(|(_, start, end)| (*start..*end).contains(&address))
            .map_or("none", |(name, _, _)| name.as_str())
    };
    let entry = symbols.named("isobox_entry");
    let handover = symbols.named("_start");
    let mut pending = vec![entry];
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    while let Some(start) = pending.pop() {
        if !seen.insert(start) {
            continue;
        }
        let Some((size, name)) = symbols.by_address.get(&start) else {
            problems.push(format!("a call to {start:x}, which starts no function"));
            continue;
        };
        if start != entry && !(name.starts_with("_ZN") || name.starts_with("_R")) {
            problems.push(format!("a call to {name}, which is not Rust code"));
            continue;
        }
        if panics(name) {
            problems.push(format!("a way into a panic: {name}"));
            continue;
        }
        let listing = tool(
            "objdump",
            &[
                "-d",
                "--no-show-raw-insn",
                &format!("--start-address=0x{start:x}"),
                &format!("--stop-address=0x{:x}", start + size),
                BINARY,
            ],
        );
        let instructions = listing
            .lines()
            .filter(|line| line.starts_with("  ") && line.contains(":\t"));
        for line in instructions {
            let instruction = line.split_once(":\t").unwrap().1.trim();
            let mnemonic = instruction.split_whitespace().next().unwrap_or_default();
            let context = format!("{name}: {instruction}");
            if instruction.contains("%fs:") || instruction.contains("%gs:") {
                problems.push(format!("thread-local storage in {context}"));
            }
            let branch = mnemonic.starts_with('j') || mnemonic.starts_with("call");
            if branch && instruction.contains('*') {
                problems.push(format!("an indirect branch in {context}"));
                continue;
            }
            let Some(target) = named_address(instruction) else {
                continue;
            };
            match section_of(target) {
                ".text" if branch => {
                    let local = (start..start + size).contains(&target);
                    let handing_over = start == entry && target == handover;
                    if !(local || handing_over) {
                        pending.push(target);
                    }
                }
                ".rodata" if !branch => {}
                section => problems.push(format!("a reference into {section} in {context}")),
            }
        }
    }
    assert!(seen.len() >= 2, "the walk found no handler: {seen:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
