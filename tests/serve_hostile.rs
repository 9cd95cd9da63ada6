//! The hostile suite through `isobox serve`: every program of
//! `tests/programs/hostile/` runs once in a library box with the hostile
//! suite's limits (`TestBox::hostile`, a shorter wall clock) and once
//! through `POST /run` with the same limits, side by side; the service must give the library's
//! verdict in go-judge's words, and that verdict must be the one the
//! program earns.
#![cfg(feature = "serve")]

mod common;
#[path = "common/hostile_cases.rs"]
mod hostile_cases;
#[path = "common/server.rs"]
mod server;

use std::path::Path;

use common::{hostile, skip_unless_privileged};
use hostile_cases::{
    cases, is_python, through_the_library, Case, CLOCK, CPU, INPUT, MIB, PYTHON_CPU,
};
use serde_json::{json, Value};
use server::{dir_of, Server};

/// The service's answer to the same program with the same limits.
fn through_the_service(server: &Server, case: &Case, path: &str) -> Value {
    let python = is_python(case.program);
    let mut args = Vec::new();
    if python {
        args.push("/usr/bin/python3".to_string());
    }
    args.push("prog".to_string());
    args.extend(case.args.iter().cloned());
    let mut copy_in = json!({"prog": {"src": path}});
    if case.input {
        copy_in["input.txt"] = json!({"content": INPUT});
    }
    server.run(json!({
        "args": args,
        "env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
        "files": [null, {"name": "stdout", "max": 65536}, {"name": "stderr", "max": 65536}],
        "copyIn": copy_in,
        "cpuLimit": if python { PYTHON_CPU } else { CPU },
        "clockLimit": if python { 60_000_000_000u64 } else { CLOCK },
        "memoryLimit": 128 * MIB,
        "procLimit": 16,
    }))
}

#[test]
fn every_hostile_program_gets_the_library_verdict() {
    skip_unless_privileged!();
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("precious"), "keep me").unwrap();
    let cases = cases(&host_dir.path().display().to_string());
    let paths: Vec<String> = cases.iter().map(|case| hostile(case.program)).collect();
    // Compiled programs live in the test programs directory, scripts in
    // the source tree.
    let mut prefixes: Vec<String> = paths.iter().map(|path| dir_of(path)).collect();
    prefixes.sort();
    prefixes.dedup();
    let mut flags = vec!["--limits-cap", "filesize=16M", "--parallelism", "1"];
    for prefix in &prefixes {
        flags.extend(["--src-prefix", prefix.as_str()]);
    }
    let server = Server::start(&flags);

    let mut failures = Vec::new();
    for (case, path) in cases.iter().zip(&paths) {
        let name = format!("{} {}", case.program, case.args.join(" "));
        // Side by side: the verdicts are of CPU time and memory, which
        // the other run does not change.
        let ((library, details), service) = std::thread::scope(|scope| {
            let library = scope.spawn(|| through_the_library(case, path));
            let service = through_the_service(&server, case, path);
            (library.join().expect("the library run"), service)
        });
        let served = service["status"].as_str().unwrap_or("(none)").to_string();
        eprintln!("{name}: library {library}, service {served}");
        if !case.expected.contains(&library) {
            failures.push(format!(
                "{name}: the library gave {library}, expected one of {:?}: {details}",
                case.expected
            ));
        }
        if !case.expected.contains(&served.as_str()) {
            failures.push(format!(
                "{name}: the service gave {served}, expected one of {:?}: {service}",
                case.expected
            ));
        }
        if case.expected.len() == 1 && served != library {
            failures.push(format!(
                "{name}: the service gave {served}, the library {library}: {service}"
            ));
        }
    }
    // The host directory the links pointed at is untouched, and the box
    // is clean for the next request.
    assert_eq!(
        std::fs::read_to_string(host_dir.path().join("precious")).unwrap(),
        "keep me"
    );
    let after = server.run(json!({
        "args": ["/bin/sh", "-c", "ls -A /w /tmp"],
        "env": ["PATH=/usr/bin:/bin"],
        "files": [null, {"name": "stdout", "max": 4096}, {"name": "stderr", "max": 4096}],
        "cpuLimit": CPU,
        "memoryLimit": 64 * MIB,
        "procLimit": 4,
    }));
    assert_eq!(after["files"]["stdout"], "/tmp:\n\n/w:\n", "{after}");
    assert!(
        Path::new(&host_dir.path().join("precious")).is_file(),
        "the link target is gone"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
