//! The soak's machinery, shared by the example (`examples/soak.rs`, long
//! runs by hand) and the test (`tests/soak_short.rs`, the short run CI
//! does): each includes this file with `#[path]` and uses what it needs.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use isobox::config::BOX_MOUNT_POINT;
use isobox::{ExecutionStatus, IsolateConfig, ProcessExecutor};
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;
/// Wrong verdicts printed in full; the rest are only counted.
const SHOWN_WRONG: u64 = 10;
/// Growth of the keeper's or server's RSS tolerated between the first
/// check and the last (allocator noise), in KiB.
const RSS_SLACK_KIB: u64 = 8 * 1024;

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `low..=high` for limits.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// What a run does, which decides the verdict it must get.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    True,
    Echo,
    Busy,
    Spin,
    Memory,
    ForkBomb,
    Flood,
    Segv,
    Abort,
}

impl Kind {
    /// Ordinary programs half of the time, the rest spread over the
    /// limits and crashes.
    fn pick(rng: &mut Rng) -> Self {
        match rng.next() % 100 {
            0..=19 => Self::True,
            20..=34 => Self::Echo,
            35..=49 => Self::Busy,
            50..=59 => Self::Spin,
            60..=69 => Self::Memory,
            70..=77 => Self::ForkBomb,
            78..=87 => Self::Flood,
            88..=93 => Self::Segv,
            _ => Self::Abort,
        }
    }
}

/// One run: its kind, randomized limits and the program's words, where
/// `{bin}` stands for the directory of the compiled programs.
#[derive(Clone, Debug)]
struct Plan {
    kind: Kind,
    /// Echo's token, expected back on stdout.
    token: String,
    time: Duration,
    wall: Duration,
    memory: u64,
    processes: u64,
    output: u64,
    argv: Vec<String>,
}

impl Plan {
    fn new(kind: Kind, rng: &mut Rng, index: u64) -> Self {
        let sh = |script: &str| vec!["/bin/sh".to_string(), "-c".into(), script.into()];
        let token = format!("soak-{index}-{}", rng.next() % 1_000_000);
        let argv = match kind {
            Kind::True => vec!["/bin/true".to_string()],
            Kind::Echo => sh(&format!("echo {token}")),
            Kind::Busy => sh(&format!(
                "i=0; while [ $i -lt {} ]; do i=$((i+1)); done",
                rng.range(1_000, 20_000)
            )),
            Kind::Spin => sh("while :; do :; done"),
            Kind::Memory => vec!["{bin}/memory".to_string(), "heap".into()],
            Kind::ForkBomb => vec!["{bin}/forkbomb".to_string()],
            // Finite: past the limit the keeper drops output but lets the
            // program run, and a flood running into the CPU limit is a
            // TimeLimit. 4000 lines of 36 bytes are over every output limit.
            Kind::Flood => sh(
                "i=0; while [ $i -lt 4000 ]; do echo floodfloodfloodfloodfloodfloodflood; i=$((i+1)); done",
            ),
            Kind::Segv => sh("kill -SEGV $$"),
            Kind::Abort => sh("kill -ABRT $$"),
        };
        let time = match kind {
            Kind::Spin => Duration::from_millis(200),
            Kind::ForkBomb => Duration::from_millis(rng.range(200, 400)),
            _ => Duration::from_millis(rng.range(1_000, 3_000)),
        };
        Self {
            kind,
            token,
            time,
            wall: time * 3 + Duration::from_secs(2),
            memory: match kind {
                // Always above the 32 MiB the program is sure to pass.
                Kind::Memory => rng.range(16, 32) * MIB,
                _ => rng.range(64, 256) * MIB,
            },
            processes: match kind {
                Kind::ForkBomb => rng.range(4, 16),
                _ => rng.range(8, 32),
            },
            output: match kind {
                Kind::Flood => rng.range(4, 64) * 1024,
                _ => rng.range(64, 1024) * 1024,
            },
            argv,
        }
    }

    fn argv(&self, bin: &str) -> Vec<String> {
        self.argv.iter().map(|w| w.replace("{bin}", bin)).collect()
    }
}

/// A verdict in the face's own words, and whether it is the right one.
struct Verdict {
    right: bool,
    said: String,
}

/// What the leak check counts (see `Scope::check`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    processes: u64,
    cgroups: u64,
    /// Cgroup directories of warm boxes (`warm-*`): a box held between
    /// runs, at most one per executor, dropped after a run that killed it
    /// and made again by the next one, so their number goes up and down.
    warm: u64,
    mounts: u64,
    fds: u64,
    pub rss_kib: u64,
    server_fds: u64,
    pub server_rss_kib: u64,
    /// Whether these are a server's counts (its warm boxes are its own).
    server: bool,
    /// Whether the warm boxes are held by the isolate face's box agents,
    /// processes of their own, not by the keeper.
    agents: bool,
    /// The isolate face's box agents alive (root processes serving the
    /// installation's boxes), at most one per box, and their summed VmRSS.
    pub agents_alive: u64,
    pub agents_rss_kib: u64,
    box_files: u64,
    temp: u64,
    locks: u64,
}

impl Counts {
    fn line(&self, face: &str, done: u64) -> String {
        format!(
            "[{face}] after {done} runs: procs={} cgroups={} warm={} mounts={} fds={} rss={}KiB \
             server_fds={} server_rss={}KiB agents={} agents_rss={}KiB box_files={} temp={} \
             locks={}",
            self.processes,
            self.cgroups,
            self.warm,
            self.mounts,
            self.fds,
            self.rss_kib,
            self.server_fds,
            self.server_rss_kib,
            self.agents_alive,
            self.agents_rss_kib,
            self.box_files,
            self.temp,
            self.locks
        )
    }

    /// The kinds of leak `self` shows against `base`, the counts after the
    /// first batch (boxes and pools warm).
    fn leaks(&self, base: &Counts, warm_ceiling: u64, boxes: u64) -> Vec<String> {
        let mut found = Vec::new();
        if self.processes > 0 {
            found.push(format!("{} box processes alive", self.processes));
        }
        // One agent per box at most, and the installation's service's
        // spare agent (a box built ahead for the next --init).
        if self.agents_alive > boxes + 1 {
            found.push(format!(
                "{} box agents alive (at most {boxes} and a spare)",
                self.agents_alive
            ));
        }
        if self.warm > warm_ceiling {
            found.push(format!(
                "{} warm cgroups (at most {warm_ceiling})",
                self.warm
            ));
        }
        // A warm box holds its cgroup directories open (one descriptor
        // each), in the keeper or in the server.
        let (fds, base_fds) = if self.server || self.agents {
            (self.fds, base.fds)
        } else {
            (
                self.fds.saturating_sub(self.warm),
                base.fds.saturating_sub(base.warm),
            )
        };
        let (server_fds, base_server_fds) = (
            self.server_fds.saturating_sub(self.warm),
            base.server_fds.saturating_sub(base.warm),
        );
        let grew = [
            ("cgroups", self.cgroups, base.cgroups),
            ("mounts", self.mounts, base.mounts),
            ("fds", fds, base_fds),
            ("server_fds", server_fds, base_server_fds),
            ("box_files", self.box_files, base.box_files),
            ("temp", self.temp, base.temp),
            ("locks", self.locks, base.locks),
        ];
        for (name, now, then) in grew {
            if now > then {
                found.push(format!("{name} {then} -> {now}"));
            }
        }
        for (name, now, then) in [
            ("rss", self.rss_kib, base.rss_kib),
            ("server_rss", self.server_rss_kib, base.server_rss_kib),
            // Per agent: agents come and go (one leaves after 30 s idle).
            (
                "agent_rss",
                self.agents_rss_kib / self.agents_alive.max(1),
                base.agents_rss_kib / base.agents_alive.max(1),
            ),
        ] {
            if now > then + RSS_SLACK_KIB {
                found.push(format!("{name} {then} -> {now} KiB"));
            }
        }
        found
    }
}

/// Where one face's boxes live and what of the host belongs to them.
struct Scope {
    /// The soak's private directory (also TMPDIR of every child).
    root: PathBuf,
    /// Uids whose processes must all be gone between batches.
    uids: std::ops::Range<u32>,
    /// Only processes below this pid count (the server), if set.
    ancestor: Option<u32>,
    /// Directories whose subdirectories are this face's cgroups.
    cgroup_dirs: Vec<PathBuf>,
    /// Only cgroup directories whose name starts with this count, if set.
    cgroup_prefix: Option<String>,
    /// Directories of files that programs may leave (box roots).
    box_dirs: Vec<PathBuf>,
    lock_dir: Option<PathBuf>,
    server: Option<u32>,
    /// The configuration file whose box agents are this face's.
    agent_config: Option<PathBuf>,
}

impl Scope {
    fn check(&self) -> Counts {
        let (fds, rss_kib) = process_figures("self");
        let (server_fds, server_rss_kib) = match self.server {
            Some(pid) => process_figures(&pid.to_string()),
            None => (0, 0),
        };
        let (agents_alive, agents_rss_kib) = match &self.agent_config {
            Some(config) => box_agents(config),
            None => (0, 0),
        };
        let root = self.root.display().to_string();
        let (mut cgroups, mut warm) = (0, 0);
        for dir in &self.cgroup_dirs {
            let (plain, warm_dirs) = count_dirs(dir, self.cgroup_prefix.as_deref());
            cgroups += plain;
            warm += warm_dirs;
        }
        Counts {
            processes: box_processes(&self.uids, self.ancestor),
            cgroups,
            warm,
            server: self.server.is_some(),
            agents: self.lock_dir.is_some(),
            agents_alive,
            agents_rss_kib,
            mounts: fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .filter(|line| line.contains(&root))
                .count() as u64,
            fds,
            rss_kib,
            server_fds,
            server_rss_kib,
            box_files: self.box_dirs.iter().map(|dir| count_files(dir)).sum(),
            temp: count_entries(&self.root.join("tmp"))
                + count_owned(Path::new("/dev/shm"), &self.uids)
                + count_owned(Path::new("/tmp"), &self.uids),
            locks: self.lock_dir.as_deref().map_or(0, count_entries),
        }
    }
}

/// Open descriptors and VmRSS (KiB) of `/proc/<pid>`.
fn process_figures(pid: &str) -> (u64, u64) {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64);
    let rss = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

/// The isolate face's box agents of the installation configured by
/// `config` (`isolate --isobox-agent <config> <box>`): how many, and their
/// summed VmRSS in KiB.
fn box_agents(config: &Path) -> (u64, u64) {
    let Ok(dir) = fs::read_dir("/proc") else {
        return (0, 0);
    };
    let mut wanted = b"--isobox-agent\0".to_vec();
    wanted.extend_from_slice(config.as_os_str().as_encoded_bytes());
    wanted.push(0);
    let (mut count, mut rss) = (0, 0);
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{name}/cmdline")).unwrap_or_default();
        // An agent's warm box holder is a clone of it, with its command
        // line, but in the box's PID namespace (two pids on `NSpid`).
        let in_box = fs::read_to_string(format!("/proc/{name}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("NSpid:"))
            .is_some_and(|pids| pids.split_whitespace().count() > 1);
        if !in_box && cmdline.windows(wanted.len()).any(|part| part == wanted) {
            count += 1;
            rss += process_figures(&name).1;
        }
    }
    (count, rss)
}

/// Stops the isolate face's installation service of `config` (`isolate
/// --isobox-service <config>`), if one runs: SIGTERM through `kill(1)`,
/// then waits for it, and so for its spare agent, which it waits for.
fn stop_service(config: &Path) -> Vec<String> {
    let mut wanted = b"--isobox-service\0".to_vec();
    wanted.extend_from_slice(config.as_os_str().as_encoded_bytes());
    wanted.push(0);
    let services: Vec<String> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|name| {
            fs::read(format!("/proc/{name}/cmdline"))
                .is_ok_and(|line| line.windows(wanted.len()).any(|part| part == wanted))
        })
        .collect();
    let mut problems = Vec::new();
    for pid in services {
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        }) {
            if Instant::now() > deadline {
                problems.push(format!("the installation's service {pid} did not leave"));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    problems
}

/// A field of `/proc/<pid>/status` (its first number).
fn status_number(pid: &str, field: &str) -> Option<u32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// Processes whose real uid is in `uids` (and, with `ancestor`, that
/// descend from it: the one-shot uids are shared with other isobox users).
fn box_processes(uids: &std::ops::Range<u32>, ancestor: Option<u32>) -> u64 {
    let Ok(dir) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut count = 0;
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some(uid) = status_number(&name, "Uid:") else {
            continue;
        };
        if !uids.contains(&uid) {
            continue;
        }
        if let Some(ancestor) = ancestor {
            let mut pid = name.parse::<u32>().unwrap_or(1);
            let mut below = false;
            while pid > 1 {
                if pid == ancestor {
                    below = true;
                    break;
                }
                pid = status_number(&pid.to_string(), "PPid:").unwrap_or(1);
            }
            if !below {
                continue;
            }
        }
        count += 1;
    }
    count
}

/// Directories below `dir` (recursively), counting only top-level ones
/// whose name starts with `prefix` when given: (others, `warm-*` ones and
/// what is below them).
fn count_dirs(dir: &Path, prefix: Option<&str>) -> (u64, u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return (0, 0);
    };
    let (mut plain, mut warm) = (0, 0);
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefix.is_some_and(|p| !name.starts_with(p)) {
            continue;
        }
        let (below, below_warm) = count_dirs(&entry.path(), None);
        if name.starts_with("warm-") {
            warm += 1 + below + below_warm;
        } else {
            plain += 1 + below;
            warm += below_warm;
        }
    }
    (plain, warm)
}

/// Files and directories below `dir`, recursively, without following links.
fn count_files(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries.flatten() {
        count += 1;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            count += count_files(&entry.path());
        }
    }
    count
}

fn count_entries(dir: &Path) -> u64 {
    fs::read_dir(dir).map_or(0, |entries| entries.count() as u64)
}

/// Entries of `dir` owned by a box uid.
fn count_owned(dir: &Path, uids: &std::ops::Range<u32>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .metadata()
                .is_ok_and(|meta| uids.contains(&meta.uid()))
        })
        .count() as u64
}

/// The soak's own directory: compiled programs in `bin`, TMPDIR in `tmp`.
fn prepare(root: &Path) -> Result<(), String> {
    let bin = root.join("bin");
    for dir in [root, &bin, &root.join("tmp")] {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/hostile");
    for name in ["memory", "forkbomb"] {
        let status = Command::new("gcc")
            .args(["-O2", "-Wall", "-I"])
            .arg(&sources)
            .arg("-o")
            .arg(bin.join(name))
            .arg(sources.join(format!("{name}.c")))
            .status()
            .map_err(|e| format!("running gcc: {e}"))?;
        if !status.success() {
            return Err(format!("gcc failed on {name}.c"));
        }
    }
    Ok(())
}

/// Tallies shared by the workers of one face.
struct Tally {
    wrong: AtomicU64,
    errors: AtomicU64,
    shown: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, index: u64, plan: &Plan, verdict: Result<Verdict, String>) {
        let note = match verdict {
            Ok(v) if v.right => return,
            Ok(v) => {
                self.wrong.fetch_add(1, Ordering::Relaxed);
                format!("run {index}: {:?} got {}", plan.kind, v.said)
            }
            Err(err) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.wrong.fetch_add(1, Ordering::Relaxed);
                format!("run {index}: {:?} failed: {err}", plan.kind)
            }
        };
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        if (shown.len() as u64) < SHOWN_WRONG {
            eprintln!("WRONG {note} (plan {plan:?})");
            shown.push(note);
        }
    }
}

/// A face: K boxes that each run one plan at a time.
trait Face: Sync {
    fn name(&self) -> &'static str;
    fn scope(&self) -> &Scope;
    fn run(&self, slot: u32, plan: &Plan) -> Result<Verdict, String>;
}

/// Result of one face's soak, for the summary table.
pub struct Summary {
    pub face: &'static str,
    pub runs: u64,
    pub seconds: f64,
    pub wrong: u64,
    pub errors: u64,
    pub leaks: Vec<String>,
    pub first: Counts,
    pub last: Counts,
}

impl Summary {
    /// Whether the face passed: every verdict right, nothing leaked.
    pub fn passed(&self) -> bool {
        self.wrong == 0 && self.leaks.is_empty()
    }
}

fn soak(face: &dyn Face, options: &Options, seed: u64) -> Summary {
    let tally = Tally {
        wrong: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        shown: Mutex::new(Vec::new()),
    };
    let plans = Mutex::new(Rng::new(seed));
    let next = AtomicU64::new(0);
    let started = Instant::now();
    let mut base: Option<Counts> = None;
    let mut last = Counts::default();
    let mut leaks = BTreeSet::new();
    let mut done = 0;
    // The installation service's spare box has a warm cgroup too.
    let warm_ceiling = (u64::from(options.boxes) + 1) * cgroup_hierarchies().len() as u64;
    while done < options.runs {
        let end = (done + options.check_every).min(options.runs);
        std::thread::scope(|scope| {
            for slot in 0..options.boxes {
                let (tally, plans, next) = (&tally, &plans, &next);
                scope.spawn(move || loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        // Leave the counter at `end` for the next batch.
                        next.fetch_min(end, Ordering::Relaxed);
                        break;
                    }
                    let plan = {
                        let mut rng = plans.lock().unwrap_or_else(|e| e.into_inner());
                        let kind = Kind::pick(&mut rng);
                        Plan::new(kind, &mut rng, index)
                    };
                    tally.record(index, &plan, face.run(slot, &plan));
                });
            }
        });
        done = end;
        last = face.scope().check();
        println!("{}", last.line(face.name(), done));
        match &base {
            None => base = Some(last.clone()),
            // The base was taken while a box was between two holders (a
            // run killed outright takes its holder along; the box's next
            // run builds the next one): a warm box holds more descriptors than its cgroup
            // directories (on v1 its kept counter files), so the first
            // check with more boxes warm is the base instead.
            Some(then) if last.warm > then.warm => base = Some(last.clone()),
            Some(base) => leaks.extend(last.leaks(base, warm_ceiling, u64::from(options.boxes))),
        }
        if last.processes > 0 {
            leaks.insert(format!("{} box processes alive", last.processes));
        }
    }
    Summary {
        face: face.name(),
        runs: options.runs,
        seconds: started.elapsed().as_secs_f64(),
        wrong: tally.wrong.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
        leaks: leaks.into_iter().collect(),
        first: base.unwrap_or_default(),
        last,
    }
}

// ---------------------------------------------------------------- library

/// One reused `ProcessExecutor` per box.
struct Library {
    executors: Vec<Mutex<ProcessExecutor>>,
    bins: Vec<String>,
    scope: Scope,
    parent: String,
}

impl Library {
    fn new(root: &Path, options: &Options) -> Result<Self, String> {
        let (boxes, first_uid) = (options.boxes, options.library_first_uid);
        let parent = format!("isobox/{}-{}", options.label, std::process::id());
        let mut executors = Vec::new();
        let mut bins = Vec::new();
        let mut box_dirs = Vec::new();
        for slot in 0..boxes {
            let workdir = root.join(format!("library-{slot}"));
            fs::create_dir_all(&workdir).map_err(|e| e.to_string())?;
            fs::set_permissions(&workdir, fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            for name in ["memory", "forkbomb"] {
                fs::copy(root.join("bin").join(name), workdir.join(name))
                    .map_err(|e| format!("copying {name}: {e}"))?;
            }
            let uid = first_uid + slot;
            let config = IsolateConfig {
                workdir: workdir.clone(),
                strict_mode: true,
                cgroup_parent: Some(PathBuf::from(&parent)),
                uid: Some(uid),
                gid: Some(uid),
                ..IsolateConfig::default()
            };
            bins.push(if config.namespaces {
                BOX_MOUNT_POINT.to_string()
            } else {
                workdir.display().to_string()
            });
            let executor = ProcessExecutor::new(config).map_err(|e| e.to_string())?;
            executors.push(Mutex::new(executor));
            box_dirs.push(workdir);
        }
        Ok(Self {
            executors,
            bins,
            scope: Scope {
                root: root.to_path_buf(),
                uids: first_uid..first_uid + boxes,
                ancestor: None,
                cgroup_dirs: cgroup_hierarchies()
                    .into_iter()
                    .map(|h| h.join(&parent))
                    .collect(),
                cgroup_prefix: None,
                box_dirs,
                lock_dir: None,
                server: None,
                agent_config: None,
            },
            parent,
        })
    }

    /// Removes the executors' cgroups and boxes, then the soak's parent
    /// cgroup (empty by then; the executors made it).
    fn close(self) -> Vec<String> {
        let mut problems = Vec::new();
        for executor in self.executors {
            let mut executor = executor.into_inner().unwrap_or_else(|e| e.into_inner());
            if let Err(err) = executor.cleanup() {
                problems.push(format!("cleanup: {err}"));
            }
        }
        for hierarchy in cgroup_hierarchies() {
            let dir = hierarchy.join(&self.parent);
            if dir.exists() {
                if let Err(err) = fs::remove_dir(&dir) {
                    problems.push(format!("{}: {err}", dir.display()));
                }
            }
        }
        problems
    }
}

/// The mounted cgroup v1 hierarchies (or the v2 root).
fn cgroup_hierarchies() -> Vec<PathBuf> {
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

impl Face for Library {
    fn name(&self) -> &'static str {
        "library"
    }

    fn scope(&self) -> &Scope {
        &self.scope
    }

    fn run(&self, slot: u32, plan: &Plan) -> Result<Verdict, String> {
        let mut executor = self.executors[slot as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let config = executor.config_mut();
        config.time_limit = Some(plan.time);
        config.wall_time_limit = Some(plan.wall);
        config.memory_limit = Some(plan.memory);
        config.process_limit = Some(plan.processes);
        config.output_limit = Some(plan.output);
        let argv = plan.argv(&self.bins[slot as usize]);
        let result = executor.execute(&argv, None).map_err(|e| e.to_string())?;
        use ExecutionStatus as S;
        let right = match plan.kind {
            Kind::True | Kind::Busy => result.status == S::Success,
            Kind::Echo => result.status == S::Success && result.stdout.trim_end() == plan.token,
            Kind::Spin => result.status == S::TimeLimit,
            Kind::Memory => result.status == S::MemoryLimit,
            // A bomb spins into the CPU limit; when the first fork is
            // refused at once it fails on the process limit instead; its
            // processes may also fill the memory limit first, and then the
            // OOM killer ends it.
            Kind::ForkBomb => {
                matches!(result.status, S::TimeLimit | S::ProcessLimit)
                    || (result.status == S::MemoryLimit && result.oom_killed)
            }
            Kind::Flood => result.status == S::OutputLimit,
            Kind::Segv | Kind::Abort => result.status == S::Signaled,
        };
        Ok(Verdict {
            right,
            said: format!("{:?} ({})", result.status, result.message),
        })
    }
}

// ---------------------------------------------------------------- isolate

/// The built binary as `isolate`, with the soak's own installation.
struct Isolate {
    link: PathBuf,
    config: PathBuf,
    box_root: PathBuf,
    boxes: u32,
    scope: Scope,
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

impl Isolate {
    fn new(root: &Path, options: &Options) -> Result<Self, String> {
        let (boxes, first_uid) = (options.boxes, options.isolate_first_uid);
        let box_root = root.join("isolate-boxes");
        let lock_root = root.join("isolate-locks");
        let config = root.join("isobox.conf");
        fs::write(
            &config,
            format!(
                "# the soak's own installation\n\
                 box_root = {}\nlock_root = {}\nfirst_uid = {first_uid}\n\
                 first_gid = {first_uid}\nnum_boxes = {boxes}\n",
                box_root.display(),
                lock_root.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let link = root.join("isolate");
        std::os::unix::fs::symlink(&options.binary, &link).map_err(|e| e.to_string())?;
        let name = installation_name(&box_root, &lock_root);
        let agent_config = Some(config.clone());
        let face = Self {
            link,
            config,
            box_root: box_root.clone(),
            boxes,
            scope: Scope {
                root: root.to_path_buf(),
                uids: first_uid..first_uid + boxes,
                ancestor: None,
                cgroup_dirs: cgroup_hierarchies()
                    .into_iter()
                    .map(|h| h.join("isobox").join(&name))
                    .collect(),
                cgroup_prefix: None,
                box_dirs: vec![box_root],
                lock_dir: Some(lock_root),
                server: None,
                agent_config,
            },
        };
        for slot in 0..boxes {
            let out = face.isolate(slot, &["--init"])?;
            if !out.status.success() {
                return Err(format!(
                    "--init {slot}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let inside = face.box_root.join(slot.to_string()).join("box");
            for name in ["memory", "forkbomb"] {
                fs::copy(root.join("bin").join(name), inside.join(name))
                    .map_err(|e| format!("copying {name}: {e}"))?;
            }
        }
        Ok(face)
    }

    fn isolate(&self, slot: u32, args: &[&str]) -> Result<std::process::Output, String> {
        Command::new(&self.link)
            .env("ISOBOX_CONFIG", &self.config)
            .env("TMPDIR", self.scope.root.join("tmp"))
            .arg("--cg")
            .arg(format!("--box-id={slot}"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running isolate: {e}"))
    }

    fn close(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for slot in 0..self.boxes {
            match self.isolate(slot, &["--cleanup"]) {
                Ok(out) if out.status.success() => {}
                Ok(out) => problems.push(format!(
                    "--cleanup {slot}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )),
                Err(err) => problems.push(err),
            }
        }
        // The installation's service leaves with its spare box, which is in
        // the installation's cgroup; it would otherwise stay 30 s.
        problems.extend(stop_service(&self.config));
        // The installation's own cgroup directories stay after its boxes'
        // `--cleanup` (as isolate's `cg_root` does); the soak's
        // installation ends with the soak.
        for dir in &self.scope.cgroup_dirs {
            if let Err(err) = fs::remove_dir(dir) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    problems.push(format!("removing {}: {err}", dir.display()));
                }
            }
        }
        // `--cleanup` stops the box's agent.
        let deadline = Instant::now() + Duration::from_secs(5);
        while box_agents(&self.config).0 > 0 {
            if Instant::now() > deadline {
                problems.push(format!(
                    "{} box agents alive after --cleanup",
                    box_agents(&self.config).0
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        problems
    }
}

impl Face for Isolate {
    fn name(&self) -> &'static str {
        "isolate"
    }

    fn scope(&self) -> &Scope {
        &self.scope
    }

    fn run(&self, slot: u32, plan: &Plan) -> Result<Verdict, String> {
        let meta = self.scope.root.join(format!("meta-{slot}"));
        let limits = [
            format!("--meta={}", meta.display()),
            format!("--time={}", plan.time.as_secs_f64()),
            format!("--wall-time={}", plan.wall.as_secs_f64()),
            format!("--cg-mem={}", plan.memory / 1024),
            format!("--processes={}", plan.processes),
            // isolate has no output limit: the flood goes to a file.
            format!("--fsize={}", plan.output / 1024),
            "--stdout=out".to_string(),
            "--stderr-to-stdout".to_string(),
            "--run".to_string(),
            "--".to_string(),
        ];
        let mut args: Vec<&str> = limits.iter().map(String::as_str).collect();
        let argv = plan.argv("/box");
        args.extend(argv.iter().map(String::as_str));
        let out = self.isolate(slot, &args)?;
        let meta = fs::read_to_string(&meta).map_err(|e| format!("meta: {e}"))?;
        let field = |key: &str| {
            meta.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
                .unwrap_or("")
                .to_string()
        };
        let (status, signal) = (field("status"), field("exitsig"));
        let stdout = fs::read_to_string(self.box_root.join(slot.to_string()).join("box/out"))
            .unwrap_or_default();
        let right = match plan.kind {
            Kind::True | Kind::Busy => status.is_empty() && out.status.success(),
            Kind::Echo => status.is_empty() && stdout.trim_end() == plan.token,
            Kind::Spin => status == "TO",
            Kind::Memory => field("cg-oom-killed") == "1",
            // isolate says a memory limit was hit by `SG` with SIGKILL
            // and `cg-oom-killed:1`.
            Kind::ForkBomb => {
                status == "TO"
                    || status == "RE"
                    || (status == "SG" && signal == "9" && field("cg-oom-killed") == "1")
            }
            Kind::Flood => status == "SG" && signal == "25",
            Kind::Segv => status == "SG" && signal == "11",
            Kind::Abort => status == "SG" && signal == "6",
        };
        Ok(Verdict {
            right,
            said: format!("meta {:?}", meta.replace('\n', " ")),
        })
    }
}

// ---------------------------------------------------------------- serve

/// `isobox serve --parallelism K` on a loopback port.
struct Serve {
    child: Mutex<Child>,
    url: String,
    client: reqwest::blocking::Client,
    scope: Scope,
}

impl Serve {
    fn new(root: &Path, options: &Options) -> Result<Self, String> {
        let boxes = options.boxes;
        let box_dir = root.join("serve-boxes");
        let mut child = Command::new(&options.binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--parallelism"])
            .arg(boxes.to_string())
            .arg("--box-dir")
            .arg(&box_dir)
            .arg("--dir")
            .arg(format!("/soak={}", root.join("bin").display()))
            .env("TMPDIR", root.join("tmp"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting isobox serve: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut address = None;
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if let Some(found) = line.strip_prefix("isobox serve: listening on ") {
                address = Some(found.to_string());
                break;
            }
            eprintln!("server: {line}");
        }
        let Some(address) = address else {
            let _ = child.wait();
            return Err("isobox serve did not start".into());
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("server: {line}");
            }
        });
        let pid = child.id();
        Ok(Self {
            child: Mutex::new(child),
            url: format!("http://{address}/run"),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?,
            scope: Scope {
                root: root.to_path_buf(),
                uids: isobox::config::ONE_SHOT_UIDS,
                ancestor: Some(pid),
                cgroup_dirs: cgroup_hierarchies()
                    .into_iter()
                    .map(|h| h.join("isobox"))
                    .collect(),
                cgroup_prefix: Some(format!("{pid}-")),
                box_dirs: vec![box_dir],
                lock_dir: None,
                server: Some(pid),
                agent_config: None,
            },
        })
    }

    /// SIGTERM through `kill(1)` (no unsafe here), then waits.
    fn close(&self) -> Vec<String> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() || sent.is_ok() => return Vec::new(),
                Ok(Some(status)) => return vec![format!("server exited {status}")],
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return vec!["server did not stop within 30 s of SIGTERM".into()];
                }
            }
        }
    }
}

impl Face for Serve {
    fn name(&self) -> &'static str {
        "serve"
    }

    fn scope(&self) -> &Scope {
        &self.scope
    }

    fn run(&self, _slot: u32, plan: &Plan) -> Result<Verdict, String> {
        let cmd = json!({
            "args": plan.argv("/soak"),
            "env": ["PATH=/usr/bin:/bin"],
            "files": [{"content": ""}, {"name": "stdout", "max": plan.output},
                      {"name": "stderr", "max": plan.output}],
            "cpuLimit": plan.time.as_nanos() as u64,
            "clockLimit": plan.wall.as_nanos() as u64,
            "memoryLimit": plan.memory,
            "procLimit": plan.processes,
        });
        let response = self
            .client
            .post(&self.url)
            .json(&json!({ "cmd": [cmd] }))
            .send()
            .map_err(|e| format!("POST /run: {e}"))?;
        let code = response.status().as_u16();
        let answer: Value = response.json().map_err(|e| format!("answer: {e}"))?;
        if code != 200 {
            return Err(format!("HTTP {code}: {answer}"));
        }
        let result = &answer[0];
        let status = result["status"].as_str().unwrap_or("");
        let right = match plan.kind {
            Kind::True | Kind::Busy => status == "Accepted",
            Kind::Echo => {
                status == "Accepted"
                    && result["files"]["stdout"].as_str().map(str::trim_end)
                        == Some(plan.token.as_str())
            }
            Kind::Spin => status == "Time Limit Exceeded",
            Kind::Memory => status == "Memory Limit Exceeded",
            Kind::ForkBomb => matches!(
                status,
                "Time Limit Exceeded" | "Nonzero Exit Status" | "Memory Limit Exceeded"
            ),
            Kind::Flood => status == "Output Limit Exceeded",
            Kind::Segv | Kind::Abort => status == "Signalled",
        };
        Ok(Verdict {
            right,
            said: result.to_string(),
        })
    }
}

// ---------------------------------------------------------------- one face

/// What a soak runs and whose it is: two soaks on one host (the example's
/// long run and the test's short one) differ in uids and `label`, and so in
/// every directory, cgroup and process they count.
pub struct Options {
    /// Runs per face.
    pub runs: u64,
    /// Boxes (worker threads) per face.
    pub boxes: u32,
    /// Runs between two leak checks; the first check is the base the
    /// others are compared with.
    pub check_every: u64,
    /// Library boxes run as `library_first_uid + box`.
    pub library_first_uid: u32,
    /// `first_uid` of the soak's isolate installation.
    pub isolate_first_uid: u32,
    /// The isobox binary the isolate and serve faces run.
    pub binary: PathBuf,
    /// Names the soak's directories (`<TMPDIR>/isobox-<label>-<pid>-<face>`)
    /// and its library cgroups (`isobox/<label>-<pid>`).
    pub label: &'static str,
}

/// Soaks one face (`library`, `isolate` or `serve`) in a fresh directory
/// that it removes afterwards: the summary (none when the face could not be
/// set up) and any trouble setting up, closing or removing.
pub fn soak_face(face: &str, options: &Options, seed: u64) -> (Option<Summary>, Vec<String>) {
    let root = std::env::temp_dir().join(format!(
        "isobox-{}-{}-{face}",
        options.label,
        std::process::id()
    ));
    if let Err(err) = prepare(&root) {
        return (None, vec![format!("{face}: {err}")]);
    }
    let outcome = match face {
        "library" => Library::new(&root, options).map(|library| {
            let summary = soak(&library, options, seed);
            (summary, library.close())
        }),
        "isolate" => Isolate::new(&root, options).map(|isolate| {
            let summary = soak(&isolate, options, seed);
            (summary, isolate.close())
        }),
        "serve" => Serve::new(&root, options).map(|serve| {
            let summary = soak(&serve, options, seed);
            (summary, serve.close())
        }),
        other => Err(format!("no face {other}")),
    };
    let mut problems = Vec::new();
    let summary = match outcome {
        Ok((summary, closing)) => {
            problems.extend(closing.into_iter().map(|p| format!("{face}: {p}")));
            Some(summary)
        }
        Err(err) => {
            problems.push(format!("{face}: setting up: {err}"));
            None
        }
    };
    if let Err(err) = fs::remove_dir_all(&root) {
        problems.push(format!("removing {}: {err}", root.display()));
    }
    (summary, problems)
}

/// The summary table, one line per face.
pub fn print_table(summaries: &[Summary]) {
    println!(
        "\n{:<8} {:>7} {:>7} {:>6} {:>6} {:>9} {:>9} {:>10} {:>10}  leaks",
        "face", "runs", "runs/s", "wrong", "errors", "rss0 KiB", "rss1 KiB", "srv0 KiB", "srv1 KiB"
    );
    for s in summaries {
        println!(
            "{:<8} {:>7} {:>7.1} {:>6} {:>6} {:>9} {:>9} {:>10} {:>10}  {}",
            s.face,
            s.runs,
            s.runs as f64 / s.seconds,
            s.wrong,
            s.errors,
            s.first.rss_kib,
            s.last.rss_kib,
            s.first.server_rss_kib,
            s.last.server_rss_kib,
            if s.leaks.is_empty() {
                "none".to_string()
            } else {
                s.leaks.join("; ")
            }
        );
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    status_number("self", "Uid:") == Some(0)
}
