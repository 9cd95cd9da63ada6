//! Soak: many runs over a few boxes in parallel, through each face of
//! isobox, with leak checks every 500 runs and a verdict check on every run.
//!
//! ```text
//! cargo build --release && \
//! cargo run --release --example soak -- --runs 1000 --boxes 2 --face all --seed 1
//! ```
//!
//! Root only. Each face gets its own uids, cgroup subtree, box root and
//! temporary directory, so that another isobox on the same host (tests,
//! benches) neither disturbs the counts nor is counted.
//!
//! The machinery is in `soak/harness.rs`, which `tests/soak_short.rs`
//! shares for the short soak CI runs.

use std::path::Path;
use std::process::ExitCode;

#[path = "soak/harness.rs"]
mod harness;

/// Runs between two leak checks.
const CHECK_EVERY: u64 = 500;
/// Library boxes run as `LIBRARY_FIRST_UID + box`: above the uids of the
/// test suite (59000–64000) and of its short soak (64700+, 64800+).
const LIBRARY_FIRST_UID: u32 = 64_600;
/// `first_uid` of the soak's isolate installation.
const ISOLATE_FIRST_UID: u32 = 64_300;

/// Command line: `--runs N --boxes K --face F --seed S`.
struct Args {
    runs: u64,
    boxes: u32,
    faces: Vec<&'static str>,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 1000,
        boxes: 2,
        faces: vec!["library"],
        seed: 0,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || words.next().ok_or(format!("{word} needs a value"));
        match word.as_str() {
            "--runs" => args.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--boxes" => args.boxes = value()?.parse().map_err(|e| format!("--boxes: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--face" => {
                args.faces = match value()?.as_str() {
                    "library" => vec!["library"],
                    "isolate" => vec!["isolate"],
                    "serve" => vec!["serve"],
                    "all" => vec!["library", "isolate", "serve"],
                    other => return Err(format!("unknown face {other}")),
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.boxes == 0 || args.boxes > 100 {
        return Err("--boxes must be 1..=100".into());
    }
    if args.seed == 0 {
        args.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    }
    Ok(args)
}
// ---------------------------------------------------------------- main

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("soak: {err}\nusage: soak --runs N --boxes K --face library|isolate|serve|all [--seed S]");
            return ExitCode::from(2);
        }
    };
    if !harness::is_root() {
        eprintln!("soak: needs root");
        return ExitCode::from(2);
    }
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/isobox");
    if args.faces.iter().any(|f| *f != "library") && !binary.exists() {
        eprintln!(
            "soak: build {} first (cargo build --release)",
            binary.display()
        );
        return ExitCode::from(2);
    }
    println!(
        "soak: {} runs x {} boxes, faces {:?}, seed {}",
        args.runs, args.boxes, args.faces, args.seed
    );
    let options = harness::Options {
        runs: args.runs,
        boxes: args.boxes,
        check_every: CHECK_EVERY,
        library_first_uid: LIBRARY_FIRST_UID,
        isolate_first_uid: ISOLATE_FIRST_UID,
        binary,
        label: "soak",
    };
    let mut summaries = Vec::new();
    let mut problems = Vec::new();
    for (n, face) in args.faces.iter().enumerate() {
        let (summary, trouble) =
            harness::soak_face(face, &options, args.seed.wrapping_add(n as u64));
        summaries.extend(summary);
        problems.extend(trouble);
    }
    harness::print_table(&summaries);
    for problem in &problems {
        eprintln!("soak: {problem}");
    }
    if problems.is_empty() && summaries.iter().all(harness::Summary::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
