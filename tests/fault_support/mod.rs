//! Fault injection against the isolate face and `isobox serve`: keepers
//! killed at random points, a server killed during a request, full disks
//! and too few descriptors. Shared by `examples/faults.rs` (the long run
//! whose figures are in docs/RELIABILITY.md) and `tests/faults.rs` (the
//! CI-sized one), which include it with `#[path]`.
//!
//! Each scenario returns [`Row`]s: attempts, kills (a signal that reached
//! a live process), kills per stage (seen from outside at the moment of
//! the kill), failures of the command that follows, and leaks per kind.

// Each user includes a different subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde_json::{json, Value};

/// How long a command that should finish may take before it counts as
/// hung (a stale lock, a keeper waiting on something dead).
const HUNG: Duration = Duration::from_secs(30);

/// xorshift64*: reproducible from the seed.
pub struct Rng(u64);

impl Rng {
    /// A generator; seed 0 is taken as 1.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A duration in `0..=max`.
    pub fn upto(&mut self, max: Duration) -> Duration {
        let micros = max.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % (micros + 1))
    }
}

/// One line of a result table.
#[derive(Debug, Default, Clone)]
pub struct Row {
    /// What was done, e.g. `--run SIGKILL`.
    pub name: String,
    /// Commands started.
    pub attempts: u64,
    /// Signals that reached a live process.
    pub kills: u64,
    /// Kills per stage.
    pub stages: BTreeMap<String, u64>,
    /// The command after the fault failed (or the faulted one answered
    /// unclearly).
    pub failures: u64,
    /// Leaks per kind, counted once per attempt that showed them.
    pub leaks: BTreeMap<String, u64>,
    /// The first few problems, in full.
    pub notes: Vec<String>,
}

impl Row {
    fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    fn note(&mut self, text: String) {
        if self.notes.len() < 5 {
            self.notes.push(text);
        }
    }

    fn fail(&mut self, text: String) {
        self.failures += 1;
        self.note(text);
    }

    fn leak(&mut self, kinds: Vec<String>) {
        for kind in kinds {
            let key = kind.split(':').next().unwrap_or("").to_string();
            *self.leaks.entry(key).or_default() += 1;
            self.note(format!("leak {kind}"));
        }
    }

    /// Whether anything went wrong.
    pub fn clean(&self) -> bool {
        self.failures == 0 && self.leaks.is_empty()
    }
}

/// Prints `rows` as a table under `title`.
pub fn print_table(title: &str, rows: &[Row]) {
    println!("\n## {title}\n");
    println!("| what | attempts | kills | kills per stage | next command failed | leaks |");
    println!("|---|---:|---:|---|---:|---|");
    for row in rows {
        let stages = row
            .stages
            .iter()
            .map(|(stage, n)| format!("{stage} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let leaks = if row.leaks.is_empty() {
            "none".to_string()
        } else {
            row.leaks
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.name,
            row.attempts,
            row.kills,
            if stages.is_empty() {
                "–".into()
            } else {
                stages
            },
            row.failures,
            leaks
        );
    }
    for row in rows {
        for note in &row.notes {
            println!("  {}: {note}", row.name);
        }
    }
}

/// Sends `signal` to `pid`; false when it is gone.
pub fn signal(pid: u32, signal: Signal) -> bool {
    Pid::from_raw(pid as i32).is_some_and(|pid| rustix::process::kill_process(pid, signal).is_ok())
}

/// Waits for `child` at most `limit`; kills it when it is late.
fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The mounted cgroup v1 hierarchies (or the v2 root).
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Directories below `dir`, recursively.
fn count_dirs(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| 1 + count_dirs(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

fn count_entries(dir: &Path) -> u64 {
    fs::read_dir(dir).map_or(0, |entries| entries.count() as u64)
}

/// pids of live processes whose real uid is in `uids`.
pub fn processes_of(uids: &std::ops::Range<u32>) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let uid = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
            });
        if uid.is_some_and(|uid| uids.contains(&uid)) {
            found.push(pid);
        }
    }
    found
}

/// pids of live processes whose cgroup path (any hierarchy) contains
/// `needle`.
pub fn processes_in_cgroups(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|text| text.contains(needle))
        {
            found.push(pid);
        }
    }
    found
}

/// Lines of the mount table that name `text`.
pub fn mounts_naming(text: &str) -> u64 {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(text))
        .count() as u64
}

/// Entries of `dir` owned by a uid in `uids`.
fn count_owned(dir: &Path, uids: &std::ops::Range<u32>) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.metadata().is_ok_and(|m| uids.contains(&m.uid())))
                .count() as u64
        })
        .unwrap_or(0)
}

/// What an isolate invocation did.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status; -1 when killed, -2 when it hung and was killed.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Outcome {
    /// Exit status 2 with exactly one line on stderr, no panic: isolate's
    /// sandbox error.
    /// Log lines (` WARN ...`) aside: the keeper may say what it did
    /// without, as long as the error itself is one line.
    pub fn clear_error(&self) -> bool {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|line| !line.contains(" WARN "))
            .collect();
        self.code == 2 && lines.len() == 1 && !self.panicked() && !self.misleading()
    }

    /// Whether stderr says something that cannot be true of a box the
    /// harness initialized, or that only a bug says (EBADF).
    pub fn misleading(&self) -> bool {
        self.stderr.contains("not initialized") || self.stderr.contains("Bad file descriptor")
    }

    /// Whether stderr shows a Rust panic.
    pub fn panicked(&self) -> bool {
        self.stderr.contains("panicked")
    }
}

/// A private isolate installation of the built binary.
pub struct Install {
    /// Everything lives here.
    pub root: PathBuf,
    /// The configuration file (ISOBOX_CONFIG).
    pub config: PathBuf,
    /// `box_root`.
    pub box_root: PathBuf,
    /// `lock_root`.
    pub lock_root: PathBuf,
    /// `first_uid`.
    pub first_uid: u32,
    /// The `isolate` symlink.
    pub link: PathBuf,
    /// The installation's cgroup directory in each hierarchy.
    pub cgroups: Vec<PathBuf>,
}

/// isobox's name for an installation's cgroup (`BoxesConfig::installation_name`).
fn installation_name(box_root: &Path, lock_root: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut bytes = box_root.as_os_str().as_bytes().to_vec();
    bytes.push(0);
    bytes.extend_from_slice(lock_root.as_os_str().as_bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("boxes-{hash:016x}")
}

impl Install {
    /// An installation in `root` (made 0755) with boxes in `box_root`
    /// (default `root/boxes`), uids from `first_uid`, `num_boxes` boxes.
    pub fn new(
        root: &Path,
        binary: &Path,
        first_uid: u32,
        num_boxes: u32,
        box_root: Option<&Path>,
    ) -> Self {
        fs::create_dir_all(root.join("tmp")).expect("the installation's directory");
        fs::create_dir_all(root.join("out")).expect("the installation's directory");
        let box_root = box_root.map_or_else(|| root.join("boxes"), Path::to_path_buf);
        let lock_root = root.join("locks");
        let config = root.join("isobox.conf");
        fs::write(
            &config,
            format!(
                "# written by the fault injection\nbox_root = {}\nlock_root = {}\n\
                 first_uid = {first_uid}\nfirst_gid = {first_uid}\nnum_boxes = {num_boxes}\n\
                 # the cold path; tests/isolate_warm.rs kills the box agent's runs\n\
                 box_agent = 0\n",
                box_root.display(),
                lock_root.display()
            ),
        )
        .expect("writing the configuration");
        let link = root.join("isolate");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(binary, &link).expect("symlink isolate");
        let name = installation_name(&box_root, &lock_root);
        Self {
            root: root.to_path_buf(),
            config,
            box_root,
            lock_root,
            first_uid,
            link,
            cgroups: cgroup_hierarchies()
                .into_iter()
                .map(|h| h.join("isobox").join(&name))
                .collect(),
        }
    }

    /// `isolate --cg -b ID ARGS`, stdout and stderr into files of `out/`.
    pub fn command(&self, id: u32, args: &[&str]) -> Command {
        let mut command = Command::new(&self.link);
        let out = self.root.join("out");
        command
            .env("ISOBOX_CONFIG", &self.config)
            .env("TMPDIR", self.root.join("tmp"))
            .current_dir(&self.root)
            .arg("--cg")
            .arg(format!("--box-id={id}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(out.join(format!("{id}.stdout"))).expect("stdout file"))
            .stderr(fs::File::create(out.join(format!("{id}.stderr"))).expect("stderr file"));
        command
    }

    fn outcome(&self, id: u32, status: Option<ExitStatus>) -> Outcome {
        let out = self.root.join("out");
        Outcome {
            code: status.map_or(-2, |s| s.code().unwrap_or(-1)),
            stdout: fs::read_to_string(out.join(format!("{id}.stdout"))).unwrap_or_default(),
            stderr: fs::read_to_string(out.join(format!("{id}.stderr"))).unwrap_or_default(),
        }
    }

    /// Runs `isolate --cg -b ID ARGS` to its end (or [`HUNG`]).
    pub fn isolate(&self, id: u32, args: &[&str]) -> Outcome {
        self.finish(id, self.command(id, args))
    }

    /// Runs a prepared command to its end (or [`HUNG`]).
    pub fn finish(&self, id: u32, mut command: Command) -> Outcome {
        let mut child = command.spawn().expect("starting isolate");
        let status = wait_for(&mut child, HUNG);
        self.outcome(id, status)
    }

    /// `<box_root>/<id>`.
    pub fn dir(&self, id: u32) -> PathBuf {
        self.box_root.join(id.to_string())
    }

    /// `<box_root>/<id>/box`.
    pub fn box_dir(&self, id: u32) -> PathBuf {
        self.dir(id).join("box")
    }

    /// The meta file of box `id`'s runs.
    pub fn meta(&self, id: u32) -> PathBuf {
        self.root.join(format!("meta-{id}"))
    }

    /// `--run` of the marker program: `started`, a short loop, `done`.
    pub fn run_args(&self, id: u32) -> Vec<String> {
        vec![
            format!("--meta={}", self.meta(id).display()),
            "--time=2".into(),
            "--wall-time=5".into(),
            "--cg-mem=65536".into(),
            "--processes=8".into(),
            "--run".into(),
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            ": > started; i=0; while [ $i -lt 1500 ]; do i=$((i+1)); done; : > done".into(),
        ]
    }

    /// A `--run` that must give status OK.
    pub fn run_ok(&self, id: u32) -> Result<(), String> {
        let _ = fs::remove_file(self.meta(id));
        let args = self.run_args(id);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.isolate(id, &args);
        let meta = fs::read_to_string(self.meta(id)).unwrap_or_default();
        if out.code != 0 || meta.contains("status:") {
            return Err(format!(
                "--run gave {} ({}), meta {:?}",
                out.code,
                out.stderr.trim(),
                meta.replace('\n', " ")
            ));
        }
        Ok(())
    }

    /// A command that must exit 0.
    pub fn must(&self, id: u32, args: &[&str]) -> Result<(), String> {
        let out = self.isolate(id, args);
        if out.code != 0 {
            return Err(format!(
                "{args:?} gave {} ({})",
                out.code,
                out.stderr.trim()
            ));
        }
        Ok(())
    }

    /// What of the host belongs to this installation now.
    pub fn census(&self, uids: &std::ops::Range<u32>) -> Census {
        let root = self.root.display().to_string();
        let box_root = self.box_root.display().to_string();
        Census {
            processes: processes_of(uids).len() as u64,
            cgroups: self.cgroups.iter().map(|dir| count_dirs(dir)).sum(),
            mounts: fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .filter(|line| line.contains(&root) || line.contains(&box_root))
                .count() as u64,
            // Files outside the box root: the keeper's TMPDIR, and what
            // box uids own in the shared temporary directories.
            files: count_entries(&self.root.join("tmp"))
                + count_owned(Path::new("/tmp"), uids)
                + count_owned(Path::new("/dev/shm"), uids),
            locks: count_entries(&self.lock_root),
        }
    }
}

impl Drop for Install {
    /// Removes the installation's own cgroup directories (isobox keeps
    /// them for its next boxes); `rmdir` fails on any that still holds a
    /// box.
    fn drop(&mut self) {
        for dir in &self.cgroups {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Counts of what an installation holds on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Census {
    /// Processes of the box uids.
    pub processes: u64,
    /// Cgroup directories below the installation's.
    pub cgroups: u64,
    /// Mounts naming the installation's directories.
    pub mounts: u64,
    /// Files outside the box root.
    pub files: u64,
    /// Lock files.
    pub locks: u64,
}

impl Census {
    /// Kinds in which `self` holds more than `base` (or any process).
    pub fn leaks(&self, base: &Census) -> Vec<String> {
        let mut found = Vec::new();
        if self.processes > 0 {
            found.push(format!("processes: {}", self.processes));
        }
        for (kind, now, then) in [
            ("cgroups", self.cgroups, base.cgroups),
            ("mounts", self.mounts, base.mounts),
            ("files", self.files, base.files),
            ("locks", self.locks, base.locks),
        ] {
            if now > then {
                found.push(format!("{kind}: {then} -> {now}"));
            }
        }
        found
    }
}

/// Which isolate command a kill hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `--init`.
    Init,
    /// `--run`.
    Run,
    /// `--cleanup`.
    Cleanup,
}

/// The usual duration of each command (median of a few, at least 1 ms).
fn usual(install: &Install, id: u32) -> [Duration; 3] {
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let run = install.run_args(id);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    for _ in 0..5 {
        for (n, args) in [&["--init"][..], &run, &["--cleanup"][..]]
            .iter()
            .enumerate()
        {
            let started = Instant::now();
            let _ = install.isolate(id, args);
            times[n].push(started.elapsed());
        }
    }
    times.map(|mut t| {
        t.sort();
        t[t.len() / 2].max(Duration::from_millis(1))
    })
}

fn is_mounted(install: &Install, id: u32) -> bool {
    match (
        fs::symlink_metadata(install.dir(id)),
        fs::symlink_metadata(install.box_dir(id)),
    ) {
        (Ok(dir), Ok(inner)) => dir.dev() != inner.dev(),
        _ => false,
    }
}

/// Subdirectories of the box's cgroup (runs under way), in the first
/// hierarchy that has it; `None` when the box has no cgroup.
fn run_cgroups(install: &Install, id: u32) -> Option<u64> {
    install
        .cgroups
        .iter()
        .map(|dir| dir.join(format!("box-{id}")))
        .find(|dir| dir.exists())
        .map(|dir| count_dirs(&dir))
}

/// What the command was doing, seen from outside just before the signal.
fn observe(install: &Install, id: u32, stage: Stage) -> &'static str {
    let dir = install.dir(id);
    let inside = install.box_dir(id);
    match stage {
        Stage::Init => {
            if inside.join("old").exists() {
                "removing the old box"
            } else if !dir.exists() {
                "cgroup check, cleanup"
            } else if !is_mounted(install, id) {
                "directories"
            } else if !dir.join(".isobox-netns").exists() {
                "quota mount"
            } else if !dir.join(".isobox-state").exists() {
                "network namespace"
            } else {
                "state written"
            }
        }
        Stage::Run => {
            let started = inside.join("started").exists();
            let done = inside.join("done").exists();
            match (started, done, run_cgroups(install, id)) {
                (false, _, None) => "lock, hand-over",
                (false, _, Some(_)) => "cgroup, namespaces, mounts",
                (true, false, _) => "program",
                (true, true, _) => "teardown, give-back",
            }
        }
        Stage::Cleanup => {
            if run_cgroups(install, id).is_some() {
                "proxy, cgroup"
            } else if is_mounted(install, id) {
                "unmount"
            } else if dir.exists() {
                "remove tree"
            } else {
                "removed"
            }
        }
    }
}

/// Brings box `id` to the state the command expects before it runs.
fn set_up(install: &Install, id: u32, stage: Stage, rng: &mut Rng) -> Result<(), String> {
    match stage {
        Stage::Init => {
            if rng.next().is_multiple_of(2) {
                install.must(id, &["--cleanup"])
            } else {
                install.must(id, &["--init"])?;
                fs::write(install.box_dir(id).join("old"), "x").map_err(|e| e.to_string())
            }
        }
        Stage::Run | Stage::Cleanup => {
            if !install.dir(id).join(".isobox-state").exists() {
                install.must(id, &["--init"])?;
            }
            let inside = install.box_dir(id);
            let _ = fs::remove_file(inside.join("started"));
            let _ = fs::remove_file(inside.join("done"));
            if stage == Stage::Cleanup {
                install.run_ok(id)?;
                for n in 0..50 {
                    fs::write(inside.join(format!("f{n}")), "file").map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        }
    }
}

/// The command after a fault, which must work, ending with the box as
/// the baseline has it (`live`: initialized, after a run; else removed).
fn recover(install: &Install, id: u32, stage: Stage) -> Result<bool, String> {
    match stage {
        Stage::Init => {
            install.must(id, &["--init"])?;
            install.run_ok(id)?;
            Ok(true)
        }
        Stage::Run => {
            install.run_ok(id)?;
            Ok(true)
        }
        Stage::Cleanup => {
            install.must(id, &["--cleanup"])?;
            if install.dir(id).exists() {
                return Err("--cleanup left the box directory".into());
            }
            Ok(false)
        }
    }
}

/// The two baselines: box `id` initialized after a run, and removed.
fn baselines(install: &Install, id: u32, uids: &std::ops::Range<u32>) -> (Census, Census) {
    install.must(id, &["--init"]).expect("--init");
    install.run_ok(id).expect("--run");
    let live = install.census(uids);
    install.must(id, &["--cleanup"]).expect("--cleanup");
    let gone = install.census(uids);
    (live, gone)
}

/// Kills `isolate --init/--run/--cleanup` of box `id` with SIGKILL and
/// SIGTERM at random points, `kills` times in all (spread over the six
/// kinds), checking after each that the next command works and that
/// nothing is left.
pub fn keeper_kills(install: &Install, id: u32, kills: u64, rng: &mut Rng) -> Vec<Row> {
    let uids = install.first_uid + id..install.first_uid + id + 1;
    let durations = usual(install, id);
    println!(
        "usual durations: --init {:?}, --run {:?}, --cleanup {:?}",
        durations[0], durations[1], durations[2]
    );
    let (live, gone) = baselines(install, id, &uids);
    let kinds = [
        (Stage::Init, Signal::KILL, "--init SIGKILL"),
        (Stage::Init, Signal::TERM, "--init SIGTERM"),
        (Stage::Run, Signal::KILL, "--run SIGKILL"),
        (Stage::Run, Signal::TERM, "--run SIGTERM"),
        (Stage::Cleanup, Signal::KILL, "--cleanup SIGKILL"),
        (Stage::Cleanup, Signal::TERM, "--cleanup SIGTERM"),
    ];
    let mut rows: Vec<Row> = kinds.iter().map(|k| Row::named(k.2)).collect();
    let per_kind = kills.div_ceil(kinds.len() as u64);
    for (n, &(stage, sig, _)) in kinds.iter().enumerate() {
        let row = &mut rows[n];
        let usual = durations[match stage {
            Stage::Init => 0,
            Stage::Run => 1,
            Stage::Cleanup => 2,
        }];
        // Past the end now and then: a signal to a finished command is
        // an attempt without a kill.
        let spread = usual + usual / 5;
        let mut attempts_left = per_kind * 4;
        while row.kills < per_kind && attempts_left > 0 {
            attempts_left -= 1;
            if let Err(err) = set_up(install, id, stage, rng) {
                row.fail(format!("setting up: {err}"));
                continue;
            }
            row.attempts += 1;
            let args = match stage {
                Stage::Init => vec!["--init".to_string()],
                Stage::Run => install.run_args(id),
                Stage::Cleanup => vec!["--cleanup".to_string()],
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let delay = rng.upto(spread);
            let mut child = install.command(id, &args).spawn().expect("isolate");
            let started = Instant::now();
            while started.elapsed() < delay {
                std::hint::spin_loop();
            }
            let seen = observe(install, id, stage);
            let alive = matches!(child.try_wait(), Ok(None));
            if alive && signal(child.id(), sig) {
                row.kills += 1;
                *row.stages.entry(seen.to_string()).or_default() += 1;
            }
            let status = wait_for(&mut child, HUNG);
            let outcome = install.outcome(id, status);
            if outcome.code == -2 {
                row.fail(format!("{} hung after {sig:?}", row.name));
            }
            if outcome.panicked() {
                row.fail(format!("panic: {}", outcome.stderr.trim()));
            }
            // SIGTERM is caught during a run: the keeper must stop the
            // run and still report like isolate.
            if sig == Signal::TERM && outcome.code == 2 && !outcome.clear_error() {
                row.fail(format!("unclear error: {:?}", outcome.stderr));
            }
            match recover(install, id, stage) {
                Ok(is_live) => {
                    let base = if is_live { &live } else { &gone };
                    row.leak(install.census(&uids).leaks(base));
                }
                Err(err) => row.fail(format!("after a kill at {seen:?}: {err}")),
            }
        }
    }
    let _ = install.isolate(id, &["--cleanup"]);
    rows
}

/// Kills the box's own processes (the proxy, the program) from outside
/// while `--run` sets up or runs, found through the box's cgroup, and
/// checks that the keeper reports and the next run works.
pub fn inmate_kills(install: &Install, id: u32, kills: u64, rng: &mut Rng) -> Vec<Row> {
    let uids = install.first_uid + id..install.first_uid + id + 1;
    let (live, _) = baselines(install, id, &uids);
    install.must(id, &["--init"]).expect("--init");
    let mut row = Row::named("box processes SIGKILL");
    let args = install.run_args(id);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // In the box's cgroup itself (a cold run) or below it (the agent's).
    let tree = format!(
        "{}/box-{id}",
        install.cgroups[0]
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let (below, in_it) = (format!("{tree}/"), format!("{tree}\n"));
    let mut attempts_left = kills * 4;
    while row.kills < kills && attempts_left > 0 {
        attempts_left -= 1;
        row.attempts += 1;
        let inside = install.box_dir(id);
        let _ = fs::remove_file(inside.join("started"));
        let _ = fs::remove_file(inside.join("done"));
        let _ = fs::remove_file(install.meta(id));
        // Kill the first, second... process seen in the box's cgroup.
        let skip = rng.next() % 6;
        let mut child = install.command(id, &args).spawn().expect("isolate");
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = 0;
        let mut victim = None;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            let mut pids = processes_in_cgroups(&below);
            pids.extend(processes_in_cgroups(&in_it));
            pids.sort_unstable();
            if !pids.is_empty() {
                if seen >= skip {
                    // The proxy (the lowest pid) or the newest process,
                    // the inmate or the program.
                    let pick = if skip.is_multiple_of(2) {
                        0
                    } else {
                        pids.len() - 1
                    };
                    victim = Some(pids[pick]);
                    break;
                }
                seen += 1;
            }
        }
        if let Some(pid) = victim {
            let uid = processes_of(&uids).contains(&pid);
            let stage = if !inside.join("started").exists() {
                "setup"
            } else {
                "program"
            };
            if signal(pid, Signal::KILL) {
                row.kills += 1;
                let what = if uid {
                    "a box-uid process"
                } else {
                    "the proxy or the inmate before its uid change"
                };
                *row.stages.entry(format!("{what} in {stage}")).or_default() += 1;
            }
        }
        let status = wait_for(&mut child, HUNG);
        let outcome = install.outcome(id, status);
        let meta = fs::read_to_string(install.meta(id)).unwrap_or_default();
        if outcome.code < 0 || outcome.panicked() {
            row.fail(format!("keeper ended {}: {}", outcome.code, outcome.stderr));
        } else if !meta.contains("time:") && !meta.contains("status:XX") {
            row.fail(format!("no meta file after the kill: {meta:?}"));
        }
        match install.run_ok(id) {
            Ok(()) => row.leak(install.census(&uids).leaks(&live)),
            Err(err) => row.fail(err),
        }
    }
    let _ = install.isolate(id, &["--cleanup"]);
    vec![row]
}

// ------------------------------------------------------------------ serve

/// A running `isobox serve`.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://ADDR`.
    pub base: String,
    /// Everything it said on stderr.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `isobox serve --listen 127.0.0.1:0 EXTRA` (under `prefix`,
    /// e.g. `prlimit`, when given).
    pub fn start(binary: &Path, prefix: &[&str], extra: &[&str]) -> Result<Self, String> {
        let mut command = match prefix.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting isobox serve: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut address = None;
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if let Some(found) = line.strip_prefix("isobox serve: listening on ") {
                address = Some(found.to_string());
                break;
            }
            log.lock().unwrap().push(line);
        }
        let Some(address) = address else {
            let _ = child.wait();
            return Err(format!(
                "isobox serve did not start: {:?}",
                log.lock().unwrap()
            ));
        };
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Ok(Self {
            child,
            base: format!("http://{address}"),
            log,
        })
    }

    /// SIGTERM and a wait.
    pub fn stop(mut self) -> Option<ExitStatus> {
        signal(self.child.id(), Signal::TERM);
        wait_for(&mut self.child, HUNG)
    }

    /// Whether its log shows a panic.
    pub fn panicked(&self) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("panicked"))
    }
}

/// A scenario that ends early (an error on the way) still stops its server:
/// nothing of it may outlive the harness.
impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal(self.child.id(), Signal::TERM);
            if wait_for(&mut self.child, HUNG).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// `POST /run` of `sh -c SCRIPT`; the go-judge status of its command.
pub fn post_run(
    client: &reqwest::blocking::Client,
    base: &str,
    script: &str,
) -> Result<String, String> {
    let cmd = json!({
        "args": ["/bin/sh", "-c", script],
        "env": ["PATH=/usr/bin:/bin"],
        "files": [{"content": ""}, {"name": "stdout", "max": 10240}, {"name": "stderr", "max": 10240}],
        "cpuLimit": 2_000_000_000u64,
        "clockLimit": 5_000_000_000u64,
        "memoryLimit": 128u64 << 20,
        "procLimit": 16,
    });
    let response = client
        .post(format!("{base}/run"))
        .json(&json!({ "cmd": [cmd] }))
        .send()
        .map_err(|e| format!("POST /run: {e}"))?;
    let code = response.status().as_u16();
    let answer: Value = response.json().map_err(|e| format!("answer: {e}"))?;
    if code != 200 {
        return Err(format!("HTTP {code}: {answer}"));
    }
    let status = answer[0]["status"].as_str().unwrap_or("");
    Ok(match answer[0]["error"].as_str() {
        Some(error) if !error.is_empty() && status != "Accepted" => format!("{status}: {error}"),
        _ => status.to_string(),
    })
}

/// What a dead server `pid` left: its cgroups, its processes, its mounts
/// and its directory under `/run/isobox`.
fn server_remains(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    let prefix = format!("{pid}-");
    let cgroups: u64 = cgroup_hierarchies()
        .iter()
        .map(|h| {
            fs::read_dir(h.join("isobox"))
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                        .count() as u64
                })
                .unwrap_or(0)
        })
        .sum();
    if cgroups > 0 {
        found.push(format!("cgroups: {cgroups}"));
    }
    let processes = processes_in_cgroups(&format!("/isobox/{pid}-")).len();
    if processes > 0 {
        found.push(format!("processes: {processes}"));
    }
    // Exactly this server's directories (`/serve-12` is no part of
    // `/serve-123`).
    let mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            line.split_whitespace().nth(4).is_some_and(|point| {
                point.split('/').any(|part| {
                    part == format!("serve-{pid}") || part == format!("serve-{pid}-files")
                })
            })
        })
        .map(str::to_string)
        .collect();
    if !mounts.is_empty() {
        found.push(format!("mounts: {mounts:?}"));
    }
    for name in [format!("serve-{pid}"), format!("serve-{pid}-files")] {
        if Path::new("/run/isobox").join(&name).exists() {
            found.push(format!("files: /run/isobox/{name}"));
        }
    }
    found
}

/// Kills `isobox serve` (SIGKILL and SIGTERM) during a request, `kills`
/// times; after each a new server starts (its sweep removes the dead
/// one's remains), answers a request, and nothing of the dead one is
/// left.
pub fn server_kills(binary: &Path, kills: u64, rng: &mut Rng) -> Vec<Row> {
    let client = client();
    let script = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo ok";
    // The usual length of a request on a fresh server.
    let mut server = Server::start(binary, &[], &["--parallelism", "1"]).expect("isobox serve");
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let _ = post_run(&client, &server.base, script);
        times.push(started.elapsed());
    }
    times.sort();
    let usual = times[2];
    println!("usual request: {usual:?}");
    let mut rows = vec![Row::named("serve SIGKILL"), Row::named("serve SIGTERM")];
    let per_kind = kills.div_ceil(2);
    for (n, sig) in [Signal::KILL, Signal::TERM].into_iter().enumerate() {
        let row = &mut rows[n];
        let mut attempts_left = per_kind * 4;
        while row.kills < per_kind && attempts_left > 0 {
            attempts_left -= 1;
            row.attempts += 1;
            let base = server.base.clone();
            let request = {
                let client = client.clone();
                std::thread::spawn(move || post_run(&client, &base, script))
            };
            let delay = rng.upto(usual + usual / 5);
            std::thread::sleep(delay);
            let pid = server.child.id();
            let boxes_busy = !processes_in_cgroups(&format!("/isobox/{pid}-")).is_empty();
            if matches!(server.child.try_wait(), Ok(None)) && signal(pid, sig) {
                row.kills += 1;
                let stage = if boxes_busy {
                    "box busy"
                } else {
                    "request in HTTP or pool"
                };
                *row.stages.entry(stage.to_string()).or_default() += 1;
            }
            if wait_for(&mut server.child, HUNG).is_none() {
                row.fail("the server did not stop".into());
            }
            // The request ends one way or another once the server is gone.
            let _ = request.join();
            if server.panicked() {
                row.fail(format!("panic: {:?}", server.log.lock().unwrap()));
            }
            server = match Server::start(binary, &[], &["--parallelism", "1"]) {
                Ok(next) => next,
                Err(err) => {
                    row.fail(format!("restart: {err}"));
                    Server::start(binary, &[], &["--parallelism", "1"]).expect("isobox serve")
                }
            };
            match post_run(&client, &server.base, "echo ok") {
                Ok(status) if status == "Accepted" => {}
                Ok(status) => row.fail(format!("next request: {status}")),
                Err(err) => row.fail(format!("next request: {err}")),
            }
            row.leak(server_remains(pid));
        }
    }
    let pid = server.child.id();
    if server.stop().is_none_or(|status| !status.success()) {
        rows[1].fail("the last server did not stop cleanly".into());
    }
    rows[1].leak(server_remains(pid));
    rows
}

// -------------------------------------------------------------- disk full

/// A tmpfs of `options` mounted on `dir`, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts it (`dir` is made).
    pub fn mount(dir: &Path, options: &str) -> Self {
        fs::create_dir_all(dir).expect("a mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs on {}", dir.display());
        Self(dir.to_path_buf())
    }

    /// Fills it: one file until ENOSPC, then empty files until no inode
    /// is left. Returns the files, to free it again.
    pub fn fill(&self) -> Vec<PathBuf> {
        let mut files = vec![self.0.join("filler")];
        if let Ok(mut file) = fs::File::create(&files[0]) {
            let block = vec![b'x'; 4096];
            while file.write_all(&block).is_ok() {}
        }
        for n in 0.. {
            let path = self.0.join(format!("inode-{n}"));
            if fs::File::create(&path).is_err() {
                break;
            }
            files.push(path);
        }
        files
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Full disks under the isolate face: a box root on a tiny full tmpfs, a
/// meta file on a full tmpfs, a program filling its box.
pub fn disk_full(root: &Path, binary: &Path, first_uid: u32, id: u32) -> Vec<Row> {
    let uids = first_uid + id..first_uid + id + 2;
    let mut rows = Vec::new();

    // A box root on a tiny tmpfs: --init of a second box on the full
    // file system, then --run of a box made before it filled up.
    let mut row = Row::named("box root full: --init, --run");
    let tiny = Tmpfs::mount(&root.join("tiny"), "size=256k,nr_inodes=64,mode=755");
    let install = Install::new(root, binary, first_uid, id + 2, Some(&tiny.0.join("boxes")));
    let mut before = install.census(&uids);
    // Lock files stay, as isolate's do: one per box used.
    before.locks += 2;
    let result = (|| -> Result<(), String> {
        install.must(id, &["--init"])?;
        install.run_ok(id)?;
        let filler = tiny.fill();
        row.attempts += 1;
        let init = install.isolate(id + 1, &["--init"]);
        if !init.clear_error() {
            row.fail(format!("--init on a full box root: {init:?}"));
        }
        if install.dir(id + 1).exists() || is_mounted(&install, id + 1) {
            row.fail("the failed --init left its box".into());
        }
        row.attempts += 1;
        let _ = fs::remove_file(install.meta(id));
        let args = install.run_args(id);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = install.isolate(id, &args);
        let meta = fs::read_to_string(install.meta(id)).unwrap_or_default();
        let ok = run.code == 0 && !meta.contains("status:");
        let error = run.clear_error() && meta.contains("status:XX");
        if !ok && !error {
            row.fail(format!("--run on a full box root: {run:?}, meta {meta:?}"));
        }
        let said = if ok {
            "--run OK".to_string()
        } else {
            format!("--run XX ({})", run.stderr.trim())
        };
        *row.stages.entry(said).or_default() += 1;
        *row.stages
            .entry(format!("--init: {}", init.stderr.trim()))
            .or_default() += 1;
        for file in filler {
            let _ = fs::remove_file(file);
        }
        install.must(id + 1, &["--init"])?;
        install.run_ok(id + 1)?;
        install.run_ok(id)?;
        install.must(id + 1, &["--cleanup"])?;
        install.must(id, &["--cleanup"])?;
        Ok(())
    })();
    if let Err(err) = result {
        row.fail(err);
    }
    row.leak(install.census(&uids).leaks(&before));
    let _ = install.isolate(id, &["--cleanup"]);
    let _ = install.isolate(id + 1, &["--cleanup"]);
    drop(tiny);
    rows.push(row);

    // The meta file's directory on a full tmpfs.
    let mut row = Row::named("meta directory full: --run");
    let install = Install::new(root, binary, first_uid, id + 2, None);
    let metafs = Tmpfs::mount(&root.join("metafs"), "size=16k,nr_inodes=16,mode=755");
    let mut before = install.census(&uids);
    before.locks += 1;
    let result = (|| -> Result<(), String> {
        install.must(id, &["--init"])?;
        let filler = metafs.fill();
        for create in [true, false] {
            // Without a free inode the file cannot be made; with one, it
            // can, but nothing can be written into it.
            if !create {
                let _ = fs::remove_file(filler.last().ok_or("no filler")?);
            }
            row.attempts += 1;
            let meta = metafs.0.join("meta");
            let _ = fs::remove_file(&meta);
            let mut args = install.run_args(id);
            args[0] = format!("--meta={}", meta.display());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = install.isolate(id, &args);
            if !run.clear_error() {
                row.fail(format!("--run with a full meta directory: {run:?}"));
            }
        }
        for file in filler {
            let _ = fs::remove_file(file);
        }
        install.run_ok(id)?;
        install.must(id, &["--cleanup"])?;
        Ok(())
    })();
    if let Err(err) = result {
        row.fail(err);
    }
    row.leak(install.census(&uids).leaks(&before));
    let _ = install.isolate(id, &["--cleanup"]);
    rows.push(row);

    // The program fills its own box (a 1 MiB quota).
    let mut row = Row::named("program fills its box");
    drop(metafs);
    let before = install.census(&uids);
    let result = (|| -> Result<(), String> {
        install.must(id, &["--init", "--quota=1024,64"])?;
        for script in [
            "cat /dev/zero > big; echo $? >&2; exit 3",
            "i=0; while : > f$i; do i=$((i+1)); done; exit 4",
        ] {
            row.attempts += 1;
            let _ = fs::remove_file(install.meta(id));
            let mut args = install.run_args(id);
            *args.last_mut().ok_or("no script")? = script.to_string();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = install.isolate(id, &args);
            let meta = fs::read_to_string(install.meta(id)).unwrap_or_default();
            if run.code != 1 || !meta.contains("status:RE") || !meta.contains("exitcode:") {
                row.fail(format!("{script}: {run:?}, meta {meta:?}"));
            }
        }
        // Nothing the program wrote is lost: its owner gets the files
        // back, removes them, and the box runs again.
        let inside = install.box_dir(id);
        if fs::metadata(inside.join("big")).map_or(0, |m| m.len()) < 512 * 1024 {
            return Err("the program's big file is not in the box".into());
        }
        for entry in fs::read_dir(&inside).map_err(|e| e.to_string())?.flatten() {
            let _ = fs::remove_file(entry.path());
        }
        install.run_ok(id)?;
        install.must(id, &["--cleanup"])?;
        Ok(())
    })();
    if let Err(err) = result {
        row.fail(err);
    }
    row.leak(install.census(&uids).leaks(&before));
    let _ = install.isolate(id, &["--cleanup"]);
    rows.push(row);
    rows
}

/// Full disks under the service: its file store on a full tmpfs (an
/// upload fails clearly), a program filling its box.
pub fn serve_disk_full(root: &Path, binary: &Path) -> Vec<Row> {
    let mut row = Row::named("serve: file store full, box full");
    let files = Tmpfs::mount(&root.join("store"), "size=64k,nr_inodes=32,mode=700");
    let store = files.0.join("files");
    let store_arg = store.display().to_string();
    let result = (|| -> Result<(), String> {
        let server = Server::start(
            binary,
            &[],
            &[
                "--parallelism",
                "1",
                "--file-dir",
                &store_arg,
                "--box-size",
                "1M",
            ],
        )?;
        let pid = server.child.id();
        let client = client();
        // Full once the server made its store (at start it empties it).
        let filler = files.fill();
        row.attempts += 1;
        let upload = client
            .post(format!("{}/file", server.base))
            .multipart(reqwest::blocking::multipart::Form::new().part(
                "file",
                reqwest::blocking::multipart::Part::bytes(vec![b'x'; 8 * 1024]).file_name("small"),
            ))
            .send();
        match upload {
            Ok(upload) => {
                let code = upload.status();
                let body = upload.text().unwrap_or_default();
                if code.is_success() || code.as_u16() < 400 || body.lines().count() > 1 {
                    row.fail(format!("upload to a full store: {code} {body:?}"));
                }
            }
            // The server answers a refused upload before it has read the
            // whole body and closes the connection: a client still
            // writing may see that as an error of its own instead of the
            // answer. Refused either way; what follows checks that the
            // server lives on and serves.
            Err(err) if err.is_body() || err.is_request() => {}
            Err(err) => return Err(format!("POST /file: {err}")),
        }
        row.attempts += 1;
        // A fresh connection: the server closes the one whose upload it
        // refused before reading it all, and a pooled client may not
        // notice in time.
        let client = self::client();
        match post_run(&client, &server.base, "cat /dev/zero > big; exit 3") {
            Ok(status) if status.starts_with("Nonzero Exit Status") => {}
            other => row.fail(format!("a program filling its box: {other:?}")),
        }
        match post_run(&client, &server.base, "echo ok") {
            Ok(status) if status == "Accepted" => {}
            other => row.fail(format!("the next request: {other:?}")),
        }
        // Room again: the store takes the file.
        for file in filler {
            let _ = fs::remove_file(file);
        }
        let upload = client
            .post(format!("{}/file", server.base))
            .multipart(reqwest::blocking::multipart::Form::new().part(
                "file",
                reqwest::blocking::multipart::Part::bytes(vec![b'x'; 8 * 1024]).file_name("small"),
            ))
            .send()
            .map_err(|e| format!("POST /file: {e}"))?;
        if !upload.status().is_success() {
            row.fail(format!("upload once there is room: {}", upload.status()));
        }
        if server.panicked() {
            row.fail("the server panicked".into());
        }
        if server.stop().is_none_or(|s| !s.success()) {
            row.fail("the server did not stop cleanly".into());
        }
        row.leak(server_remains(pid));
        if count_entries(&files.0) > 0 && store.exists() && count_entries(&store) > 0 {
            row.leak(vec!["files: the file store".into()]);
        }
        Ok(())
    })();
    if let Err(err) = result {
        row.fail(err);
    }
    drop(files);

    // The box directory on a full tmpfs: the server refuses to start, or
    // fails its runs, saying why; with room again it serves.
    let mut second = Row::named("serve: box directory full");
    let boxes = Tmpfs::mount(&root.join("boxfs"), "size=16k,nr_inodes=8,mode=755");
    let box_dir = boxes.0.join("boxes").display().to_string();
    let extra = ["--parallelism", "1", "--box-dir", &box_dir];
    let filler = boxes.fill();
    second.attempts += 1;
    match Server::start(binary, &[], &extra) {
        Err(err)
            if err.contains("panicked")
                || !err.contains("No space left")
                || err.matches("No space left").count() > 1 =>
        {
            second.fail(format!("starting on a full box directory: {err}"))
        }
        Err(_) => *second.stages.entry("refused to start".into()).or_default() += 1,
        Ok(server) => {
            let pid = server.child.id();
            match post_run(&client(), &server.base, "echo ok") {
                Ok(status) if status.contains("No space left") => {}
                other => second.fail(format!("a run on a full box directory: {other:?}")),
            }
            let _ = server.stop();
            second.leak(server_remains(pid));
        }
    }
    for file in filler {
        let _ = fs::remove_file(file);
    }
    second.attempts += 1;
    match Server::start(binary, &[], &extra) {
        Ok(server) => {
            let pid = server.child.id();
            match post_run(&client(), &server.base, "echo ok") {
                Ok(status) if status == "Accepted" => {}
                other => second.fail(format!("a run once there is room: {other:?}")),
            }
            if server.stop().is_none_or(|s| !s.success()) {
                second.fail("the server did not stop cleanly".into());
            }
            second.leak(server_remains(pid));
            if Path::new(&box_dir).exists() {
                second.leak(vec!["files: the box directory stayed".into()]);
            }
        }
        Err(err) => second.fail(format!("starting once there is room: {err}")),
    }
    vec![row, second]
}

// ------------------------------------------------------------ descriptors

/// `isolate --init/--run/--cleanup` under `prlimit --nofile=N` for every
/// N in `limits`: exit 0, or a clear sandbox error, never a panic; the
/// next commands at the normal limit work and nothing is left.
pub fn descriptors(install: &Install, id: u32, limits: impl IntoIterator<Item = u32>) -> Vec<Row> {
    let uids = install.first_uid + id..install.first_uid + id + 1;
    let (live, _) = baselines(install, id, &uids);
    let mut row = Row::named("isolate under prlimit --nofile");
    for limit in limits {
        for stage in [Stage::Init, Stage::Run, Stage::Cleanup] {
            row.attempts += 1;
            let args = match stage {
                Stage::Init => vec!["--init".to_string()],
                Stage::Run => install.run_args(id),
                Stage::Cleanup => vec!["--cleanup".to_string()],
            };
            if stage != Stage::Init && !install.dir(id).join(".isobox-state").exists() {
                let _ = install.must(id, &["--init"]);
            }
            let command = install.command(id, &[]);
            let isolate = command.get_program().to_os_string();
            let mut limited = Command::new("prlimit");
            limited
                // The soft limit only, as `ulimit -Sn`: the inmate may
                // still set its own (raising a hard limit needs
                // CAP_SYS_RESOURCE, which root lacks in some containers).
                .arg(format!("--nofile={limit}:"))
                .arg(isolate)
                .args(command.get_args());
            for (key, value) in command.get_envs() {
                if let Some(value) = value {
                    limited.env(key, value);
                }
            }
            let out = install.root.join("out");
            limited
                .args(&args)
                .current_dir(&install.root)
                .stdin(Stdio::null())
                .stdout(fs::File::create(out.join(format!("{id}.stdout"))).expect("stdout"))
                .stderr(fs::File::create(out.join(format!("{id}.stderr"))).expect("stderr"));
            let outcome = install.finish(id, limited);
            let fine = outcome.code == 0 || (stage == Stage::Run && outcome.code == 1);
            if outcome.panicked() || outcome.misleading() {
                row.fail(format!(
                    "{stage:?} at --nofile={limit}: {} {:?}",
                    outcome.code, outcome.stderr
                ));
            } else if !fine {
                *row.stages.entry(format!("{stage:?} refused")).or_default() += 1;
                if !outcome.clear_error() {
                    row.fail(format!(
                        "{stage:?} at --nofile={limit}: {} {:?}",
                        outcome.code, outcome.stderr
                    ));
                }
            }
            let recovered = match stage {
                Stage::Cleanup => install
                    .must(id, &["--cleanup"])
                    .and_then(|()| install.must(id, &["--init"]))
                    .and_then(|()| install.run_ok(id)),
                _ => install
                    .must(id, &["--init"])
                    .and_then(|()| install.run_ok(id)),
            };
            match recovered {
                Ok(()) => row.leak(install.census(&uids).leaks(&live)),
                Err(err) => row.fail(format!("after {stage:?} at --nofile={limit}: {err}")),
            }
        }
    }
    let _ = install.isolate(id, &["--cleanup"]);
    vec![row]
}

/// `isobox serve` under `prlimit --nofile=N` with `parallel` requests at
/// once: answers or clear errors, no panic, and a request after the load
/// works; nothing is left once it stops.
pub fn serve_descriptors(binary: &Path, limits: &[u32], parallel: usize) -> Vec<Row> {
    let mut row = Row::named("serve under prlimit --nofile");
    for &limit in limits {
        let nofile = format!("--nofile={limit}:");
        row.attempts += 1;
        let server = match Server::start(binary, &["prlimit", &nofile], &["--parallelism", "2"]) {
            Ok(server) => server,
            Err(err) => {
                // Too few to start is fine when it says so.
                *row.stages.entry("refused to start".into()).or_default() += 1;
                if err.contains("panicked") {
                    row.fail(err);
                }
                continue;
            }
        };
        let pid = server.child.id();
        // Whether the server can run anything at all with this few: below
        // some limit every run fails, which it must say clearly.
        let idle = post_run(&client(), &server.base, "echo ok");
        let serves = idle.as_deref() == Ok("Accepted");
        if !serves {
            let said = format!("{idle:?}");
            // With fewer still the server cannot even accept a connection:
            // the client sees it closed, and the server lives on.
            let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let alive = state
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'));
            if said.contains("Too many open files") {
                *row.stages.entry("too few to run".into()).or_default() += 1;
            } else if said.contains("error sending request") && alive {
                *row.stages.entry("too few to accept".into()).or_default() += 1;
            } else {
                row.fail(format!("--nofile={limit}: an idle request: {said}"));
            }
        }
        // Each request on a connection of its own, all dropped after the
        // burst: idle keep-alive connections would hold descriptors.
        let threads: Vec<_> = (0..parallel)
            .map(|_| {
                let base = server.base.clone();
                std::thread::spawn(move || post_run(&client(), &base, "echo ok"))
            })
            .collect();
        for thread in threads {
            let key = match thread.join() {
                Ok(Ok(status)) if status == "Accepted" => "answered".to_string(),
                Ok(Ok(status)) => format!("status {}", status.split(':').next().unwrap_or("")),
                Ok(Err(err)) if err.starts_with("HTTP") => {
                    err.split(':').next().unwrap_or("HTTP").to_string()
                }
                Ok(Err(_)) => "connection failed".to_string(),
                Err(_) => "client panicked".to_string(),
            };
            *row.stages.entry(key).or_default() += 1;
        }
        // Load gone: the next request works.
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = Err(String::new());
        while Instant::now() < deadline {
            last = post_run(&client, &server.base, "echo ok");
            if last.as_deref() == Ok("Accepted") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if serves && last.as_deref() != Ok("Accepted") {
            row.fail(format!("--nofile={limit}: after the load: {last:?}"));
        }
        if server.panicked() {
            row.fail(format!(
                "--nofile={limit}: panic: {:?}",
                server.log.lock().unwrap()
            ));
        }
        if server.stop().is_none() {
            row.fail(format!("--nofile={limit}: the server did not stop"));
        }
        row.leak(server_remains(pid));
    }
    vec![row]
}
