//! Fault injection: keepers and servers killed at random points, full
//! disks, too few descriptors; a table per scenario.
//!
//! ```text
//! cargo build --release && \
//! cargo run --release --example faults -- --kills 1000 --seed 1
//! ```
//!
//! Root only. Its own installation (box root, lock root, uids
//! 64000–64099) in a private directory, removed at the end.

#[path = "../tests/fault_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::ExitCode;

use support::{Install, Rng, Row};

/// uids 64000..64099: above the test suite's, below the soak's 64300.
const FIRST_UID: u32 = 64_000;

fn main() -> ExitCode {
    let mut kills: u64 = 1000;
    let mut seed: u64 = 0;
    let mut only: Option<String> = None;
    let mut binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/isobox");
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let value = words.next();
        let number = value.as_deref().and_then(|v| v.parse().ok());
        match (word.as_str(), number) {
            ("--kills", Some(v)) => kills = v,
            ("--seed", Some(v)) => seed = v,
            ("--binary", _) if value.is_some() => binary = value.unwrap_or_default().into(),
            ("--only", _) if value.is_some() => only = value,
            _ => {
                eprintln!("usage: faults [--kills N] [--seed S] [--binary PATH] [--only keeper,box,serve,disk,fds]");
                return ExitCode::from(2);
            }
        }
    }
    if seed == 0 {
        seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("faults: needs root");
        return ExitCode::from(2);
    }
    if !binary.exists() {
        eprintln!(
            "faults: build {} first (cargo build --release)",
            binary.display()
        );
        return ExitCode::from(2);
    }
    println!("faults: {kills} kills, seed {seed}");
    let root = std::env::temp_dir().join(format!("isobox-faults-{}", std::process::id()));
    let mut rng = Rng::new(seed);
    let started = std::time::Instant::now();
    let install = Install::new(&root, &binary, FIRST_UID, 100, None);
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|w| w == name))
    };
    // Of the kills: 3/5 to the keeper, 1/5 to the box's processes, 1/5 to
    // the server.
    let mut keeper = Vec::new();
    if wanted("keeper") {
        keeper = support::keeper_kills(&install, 0, kills * 3 / 5, &mut rng);
        support::print_table("keeper killed", &keeper);
    }
    let mut inmates = Vec::new();
    if wanted("box") {
        inmates = support::inmate_kills(&install, 1, kills / 5, &mut rng);
        support::print_table("box processes killed during --run", &inmates);
    }
    let mut server = Vec::new();
    if wanted("serve") {
        server = support::server_kills(&binary, kills / 5, &mut rng);
        support::print_table("isobox serve killed during a request", &server);
    }
    let mut disk_rows = Vec::new();
    if wanted("disk") {
        disk_rows = support::disk_full(&root.join("disk"), &binary, FIRST_UID, 10);
        disk_rows.extend(support::serve_disk_full(&root.join("disk"), &binary));
        support::print_table("disk full", &disk_rows);
    }
    let mut fds = Vec::new();
    if wanted("fds") {
        fds = support::descriptors(&install, 20, 3..=40);
        fds.extend(support::serve_descriptors(
            &binary,
            &[16, 20, 24, 32, 48, 64],
            16,
        ));
        support::print_table("descriptors", &fds);
    }

    let all: Vec<&Row> = keeper
        .iter()
        .chain(&inmates)
        .chain(&server)
        .chain(&disk_rows)
        .chain(&fds)
        .collect();
    let total: u64 = all.iter().map(|r| r.kills).sum();
    let failures: u64 = all.iter().map(|r| r.failures).sum();
    let leaks: u64 = all.iter().map(|r| r.leaks.values().sum::<u64>()).sum();
    println!(
        "\nfaults: {total} kills, {failures} failures, {leaks} leaks in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    drop(install);
    let _ = std::fs::remove_dir_all(&root);
    if failures == 0 && leaks == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
