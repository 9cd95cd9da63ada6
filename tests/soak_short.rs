//! The short soak CI runs (issue 15): the machinery of `examples/soak.rs`
//! over 2 boxes through each face, the isolate and serve faces on the
//! debug `isobox` binary, about 1,000 runs in all (`ISOBOX_SOAK_RUNS` per
//! face, default 350), with leak checks every 100 runs. Any wrong verdict,
//! leak or trouble closing a face fails.
//!
//! Its uids (library 64700+, isolate 64800+), directories and library
//! cgroups (`isobox/soak-test-<pid>`) are its own, so it can run beside
//! the example's long soak (uids 64300+ and 64600+).

mod common;

use std::sync::Mutex;

use common::skip_unless_privileged;

#[allow(dead_code)]
#[path = "../examples/soak/harness.rs"]
mod harness;

/// Boxes (parallel workers) per face.
const BOXES: u32 = 2;

/// The faces take turns: the leak check counts this process's descriptors
/// and memory, which another face's runs would change under it.
static ONE_FACE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn options() -> harness::Options {
    let runs = std::env::var("ISOBOX_SOAK_RUNS")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|runs| *runs > 0)
        .unwrap_or(350);
    harness::Options {
        runs,
        boxes: BOXES,
        // Several checks even in a short soak: the first is the base the
        // others must not grow from.
        check_every: 100,
        library_first_uid: 64_700,
        isolate_first_uid: 64_800,
        binary: env!("CARGO_BIN_EXE_isobox").into(),
        label: "soak-test",
    }
}

/// Soaks `face` with a seed that is printed (a failure is replayed with
/// `cargo run --example soak -- --face FACE --seed SEED`, on the release
/// binary) and asserts it passed.
fn soak(face: &str, seed: u64) {
    let _turn = ONE_FACE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let options = options();
    println!(
        "soak_short: {face}, {} runs over {} boxes, seed {seed}",
        options.runs, options.boxes
    );
    let (summary, problems) = harness::soak_face(face, &options, seed);
    harness::print_table(summary.as_slice());
    assert!(problems.is_empty(), "{face}: {problems:?}");
    let summary = summary.expect("a summary when nothing went wrong");
    assert_eq!(summary.runs, options.runs);
    assert!(
        summary.passed(),
        "{face}: {} wrong verdicts ({} errors), leaks {:?}",
        summary.wrong,
        summary.errors,
        summary.leaks
    );
}

#[test]
fn library_face_soaks_without_wrong_verdicts_or_leaks() {
    skip_unless_privileged!();
    soak("library", 15);
}

#[test]
fn isolate_face_soaks_without_wrong_verdicts_or_leaks() {
    skip_unless_privileged!();
    soak("isolate", 16);
}

#[test]
fn serve_face_soaks_without_wrong_verdicts_or_leaks() {
    skip_unless_privileged!();
    soak("serve", 17);
}
