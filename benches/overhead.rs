//! What a sandboxed run costs, against bare fork+exec of `/bin/true` in the
//! same run on the same machine, and how exactly isobox measures. Run as
//! root: `cargo bench --bench overhead`.
//!
//! Every path of issue 12 is sampled once per round, in an order that
//! rotates from round to round, so that a noisy neighbour or a drifting
//! clock hits every path alike; each figure is the median of its samples.
//! With `ISOBOX_BENCH_ISOLATE=/path/to/isolate` (a reference isolate built
//! from ioi/isolate's source with its configuration compiled in, see
//! docs/BENCHMARKS.md) its command-line paths are sampled in the same rounds
//! and the table gains isobox/isolate ratios.
//!
//! Knobs (environment):
//! - `ISOBOX_BENCH_ISOLATE`: the reference isolate binary (none by default)
//! - `ISOBOX_BENCH_ROUNDS`: rounds of interleaved samples (default 150)
//! - `ISOBOX_BENCH_BIN`: the isobox executable to time (default: the one
//!   `cargo build --release` makes, built first; see `support`)
//! - `ISOBOX_BENCH_SPAN_MS`: length of one throughput span (default 1000;
//!   three spans each of one box and of two boxes, alternating)
//! - `ISOBOX_BENCH_ACCURACY=0`: skip the accuracy rows (CPU time, peak
//!   memory, overshoot), which compile two C programs with gcc
//!
//! Prints Markdown tables ready for docs/BENCHMARKS.md.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isobox::{ExecutionStatus, IsolateConfig, ProcessExecutor};

mod support;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn median_f64(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Bare and boxed runs of the busy loop for the CPU-time rows.
const CPU_PAIRS: usize = 7;

fn quartiles(samples: &[Duration]) -> (Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    (sorted[sorted.len() / 4], sorted[sorted.len() * 3 / 4])
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
        Err(_) => default,
    }
}

fn box_config(workdir: &Path, uid: u32) -> IsolateConfig {
    IsolateConfig {
        workdir: workdir.to_path_buf(),
        strict_mode: true,
        time_limit: Some(Duration::from_secs(5)),
        wall_time_limit: Some(Duration::from_secs(10)),
        memory_limit: Some(512 << 20),
        process_limit: Some(64),
        uid: Some(uid),
        gid: Some(uid),
        ..IsolateConfig::default()
    }
}

fn workdir(name: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix(name).tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn true_command() -> Vec<String> {
    vec!["/bin/true".to_string()]
}

/// One command-line tool: a binary and the environment it needs.
struct Tool {
    program: PathBuf,
    env: Vec<(&'static str, OsString)>,
}

impl Tool {
    /// Runs one command to completion, stdio on /dev/null, exactly as the
    /// floor runs /bin/true, and returns its wall time (fork, exec, wait).
    fn time(&self, args: &[&str]) -> Duration {
        let mut command = self.command(args);
        let start = Instant::now();
        let status = command.status().unwrap();
        let elapsed = start.elapsed();
        if !status.success() {
            // Again, with its output, to say why.
            let output = command.stderr(Stdio::piped()).output().unwrap();
            panic!(
                "{} {args:?}: {status}: {}",
                self.program.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        elapsed
    }

    /// Runs a command whose failure does not matter (cleaning up a box
    /// that may not exist).
    fn quietly(&self, args: &[&str]) {
        let _ = self.command(args).status();
    }

    /// The tool with `args`, its environment, stdio on /dev/null.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }
}

const RUN_TRUE: [&str; 7] = ["-t", "10", "-w", "20", "--run", "--", "/bin/true"];

/// `isobox runner`, up for the `isobox run` row; stopped (and waited for)
/// when dropped.
struct Runner(std::process::Child);

impl Runner {
    fn start(program: &Path) -> Self {
        let child = Command::new(program)
            .arg("runner")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting isobox runner");
        let mut runner = Runner(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(Path::new("/run/isobox/runner/runner.sock")) {
            if let Ok(Some(status)) = runner.0.try_wait() {
                panic!("isobox runner exited: {status} (is another one running?)");
            }
            assert!(Instant::now() < deadline, "isobox runner never listened");
            std::thread::sleep(Duration::from_millis(5));
        }
        runner
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.0.wait();
    }
}

/// A path of issue 12, as a row of the table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    Floor,
    Cycle,
    Run,
    InitCleanup,
    Version,
    NativeRun,
    /// `isobox run` as the ordinary path runs it: declined by the runner.
    NativeRunOrdinary,
    Library,
    /// The library row with warm boxes off: every run builds its box.
    LibraryCold,
}

impl Row {
    fn label(self) -> &'static str {
        match self {
            Row::Floor => "floor: fork+exec+wait of `/bin/true`",
            Row::Cycle => "`--init` + `--run -- /bin/true` + `--cleanup`",
            Row::Run => "`--run -- /bin/true` in an initialized box",
            Row::InitCleanup => "`--init` + `--cleanup`",
            Row::Version => "`--version` (start-up)",
            Row::NativeRun => "`isobox run -- /bin/true` (the runner up)",
            Row::NativeRunOrdinary => {
                "`isobox run -- /bin/true`, the ordinary path (another `TMPDIR`: declined)"
            }
            Row::Library => "library `execute` of /bin/true (executor reused)",
            Row::LibraryCold => "library `execute` of /bin/true (executor reused, `warm: false`)",
        }
    }

    /// Issue 12's target, as a ratio to the floor.
    fn target(self) -> Option<f64> {
        match self {
            Row::Cycle => Some(5.0),
            Row::Run | Row::NativeRun => Some(3.0),
            Row::Library => Some(1.8),
            Row::Version => Some(1.3),
            _ => None,
        }
    }
}

/// One sampled path: which tool, which row, how to take one sample.
struct Sampler<'a> {
    isolate: bool,
    row: Row,
    take: Box<dyn FnMut() -> Duration + 'a>,
    samples: Vec<Duration>,
}

impl<'a> Sampler<'a> {
    fn new(isolate: bool, row: Row, take: impl FnMut() -> Duration + 'a) -> Self {
        Sampler {
            isolate,
            row,
            take: Box::new(take),
            samples: Vec::new(),
        }
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn borrowed(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The isolate command-line paths of one tool on boxes `first`,
/// `first + 1` and `first + 2`: the whole cycle, `--run` in a box kept
/// initialized (initialized here; the caller cleans it up) and init +
/// cleanup, plus `--version`.
fn isolate_paths<'a>(tool: &'a Tool, isolate: bool, first: u32) -> Vec<Sampler<'a>> {
    let ids: Vec<String> = (first..first + 3).map(|id| id.to_string()).collect();
    for id in &ids {
        tool.quietly(&["--cg", "-b", id, "--cleanup"]);
    }
    let with_box = |id: &str, rest: &[&str]| {
        let mut args = owned(&["--cg", "-b", id]);
        args.extend(owned(rest));
        args
    };
    let (c_init, c_run, c_clean) = (
        with_box(&ids[0], &["--init"]),
        with_box(&ids[0], &RUN_TRUE),
        with_box(&ids[0], &["--cleanup"]),
    );
    tool.time(&borrowed(&with_box(&ids[1], &["--init"])));
    let run = with_box(&ids[1], &RUN_TRUE);
    let (i_init, i_clean) = (
        with_box(&ids[2], &["--init"]),
        with_box(&ids[2], &["--cleanup"]),
    );
    vec![
        Sampler::new(isolate, Row::Cycle, move || {
            tool.time(&borrowed(&c_init))
                + tool.time(&borrowed(&c_run))
                + tool.time(&borrowed(&c_clean))
        }),
        Sampler::new(isolate, Row::Run, move || tool.time(&borrowed(&run))),
        Sampler::new(isolate, Row::InitCleanup, move || {
            tool.time(&borrowed(&i_init)) + tool.time(&borrowed(&i_clean))
        }),
        Sampler::new(isolate, Row::Version, move || tool.time(&["--version"])),
    ]
}

/// Sandboxed /bin/true runs per second with `boxes` executors in parallel.
fn throughput(boxes: u32, span: Duration) -> f64 {
    let runs: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..boxes)
            .map(|index| {
                scope.spawn(move || {
                    let dir = workdir("isobox-bench-tp-");
                    let mut executor =
                        ProcessExecutor::new(box_config(dir.path(), 61900 + index)).unwrap();
                    let command = true_command();
                    let start = Instant::now();
                    let mut runs = 0;
                    while start.elapsed() < span {
                        let result = executor.execute(&command, None).unwrap();
                        assert_eq!(result.status, ExecutionStatus::Success);
                        runs += 1;
                    }
                    executor.cleanup().unwrap();
                    runs
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    runs as f64 / span.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

/// The medians of every latency path.
struct Latencies {
    /// (tool is the reference isolate, row, samples)
    samples: Vec<(bool, Row, Vec<Duration>)>,
}

impl Latencies {
    fn all(&self, isolate: bool, row: Row) -> Vec<Duration> {
        self.samples
            .iter()
            .filter(|(i, r, _)| *i == isolate && *r == row)
            .flat_map(|(_, _, s)| s.iter().copied())
            .collect()
    }

    fn median(&self, isolate: bool, row: Row) -> Option<Duration> {
        let all = self.all(isolate, row);
        (!all.is_empty()).then(|| median(all))
    }
}

/// Samples the latency paths in interleaved rounds.
fn latencies(rounds: usize, reference: Option<&Tool>) -> Latencies {
    let root = workdir("isobox-bench-cli-");
    let config = root.path().join("isobox.conf");
    std::fs::write(
        &config,
        format!(
            "box_root = {0}/boxes\nlock_root = {0}/locks\nfirst_uid = 61970\nfirst_gid = 61970\nnum_boxes = 8\n",
            root.path().display()
        ),
    )
    .unwrap();
    let isobox = Tool {
        program: support::shipped_isobox(),
        env: vec![("ISOBOX_CONFIG", config.clone().into_os_string())],
    };
    // The runner declines a caller whose temporary directory is not its
    // own: that caller's process runs the box itself, as with no runner.
    let ordinary_tmp = workdir("isobox-bench-tmpdir-");
    let ordinary = Tool {
        program: support::shipped_isobox(),
        env: vec![("TMPDIR", ordinary_tmp.path().into())],
    };
    let runner = Runner::start(&isobox.program);
    let bare = Tool {
        program: "/bin/true".into(),
        env: Vec::new(),
    };
    let lib_dir = workdir("isobox-bench-lib-");
    let mut executor = ProcessExecutor::new(box_config(lib_dir.path(), 61990)).unwrap();
    let cold_dir = workdir("isobox-bench-lib-cold-");
    let mut cold = ProcessExecutor::new(IsolateConfig {
        warm: false,
        ..box_config(cold_dir.path(), 61991)
    })
    .unwrap();
    let command = true_command();

    let mut samplers = vec![
        Sampler::new(false, Row::Floor, || bare.time(&[])),
        Sampler::new(false, Row::NativeRun, || {
            isobox.time(&["run", "--", "/bin/true"])
        }),
        Sampler::new(false, Row::NativeRunOrdinary, || {
            ordinary.time(&["run", "--", "/bin/true"])
        }),
        Sampler::new(false, Row::Library, || {
            let start = Instant::now();
            let result = executor.execute(&command, None).unwrap();
            let elapsed = start.elapsed();
            assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
            elapsed
        }),
        Sampler::new(false, Row::LibraryCold, || {
            let start = Instant::now();
            let result = cold.execute(&command, None).unwrap();
            let elapsed = start.elapsed();
            assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
            elapsed
        }),
    ];
    samplers.extend(isolate_paths(&isobox, false, 1));
    if let Some(reference) = reference {
        samplers.extend(isolate_paths(reference, true, 1));
    }
    // The floor is the denominator of every ratio: sample it twice a round.
    samplers.push(Sampler::new(false, Row::Floor, || bare.time(&[])));

    let warmup = 5;
    let count = samplers.len();
    for round in 0..warmup + rounds {
        // Rotate the order so that no path always follows the same one.
        for k in 0..count {
            let sampler = &mut samplers[(round + k) % count];
            let sample = (sampler.take)();
            if round >= warmup {
                sampler.samples.push(sample);
            }
        }
    }
    let samples = samplers
        .into_iter()
        .map(|s| (s.isolate, s.row, s.samples))
        .collect();
    drop(runner);
    isobox.quietly(&["--cg", "-b", "2", "--cleanup"]);
    support::stop_installation_service(&config);
    support::remove_installation_cgroups(&config);
    if let Some(reference) = reference {
        reference.quietly(&["--cg", "-b", "2", "--cleanup"]);
    }
    executor.cleanup().unwrap();
    cold.cleanup().unwrap();
    Latencies { samples }
}

fn main() {
    if !isobox::sys::is_root() {
        eprintln!("the benchmark needs root (namespaces, cgroups)");
        std::process::exit(2);
    }
    let rounds = env_number("ISOBOX_BENCH_ROUNDS", 150) as usize;
    let span = Duration::from_millis(env_number("ISOBOX_BENCH_SPAN_MS", 1000));
    let accuracy = std::env::var("ISOBOX_BENCH_ACCURACY").map_or(true, |v| v != "0");
    let reference = std::env::var_os("ISOBOX_BENCH_ISOLATE").map(|path| Tool {
        program: PathBuf::from(path),
        env: Vec::new(),
    });
    let started = Instant::now();
    let version = reference.as_ref().map(|tool| {
        let output = Command::new(&tool.program)
            .arg("--version")
            .output()
            .expect("ISOBOX_BENCH_ISOLATE does not run");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cgroup = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "cgroup v2"
    } else {
        "cgroup v1"
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "Linux {}, {cgroup}, {cpus} CPU(s); {rounds} interleaved rounds, medians{}",
        kernel.trim(),
        version
            .as_ref()
            .map_or(String::new(), |v| format!("; reference: {v}"))
    );
    println!();

    let lat = latencies(rounds, reference.as_ref());
    let floor = lat.median(false, Row::Floor).unwrap();
    let (q1, q3) = quartiles(&lat.all(false, Row::Floor));
    let with_isolate = reference.is_some();
    if with_isolate {
        println!("| path | isobox | × floor | isolate | × floor | isobox / isolate |");
        println!("|---|---|---|---|---|---|");
    } else {
        println!("| path | isobox | × floor |");
        println!("|---|---|---|");
    }
    println!(
        "| {} (quartiles {}–{}) | {} | 1.00 |{}",
        Row::Floor.label(),
        ms(q1),
        ms(q3),
        ms(floor),
        if with_isolate { " | 1.00 | |" } else { "" }
    );
    let mut targets = Vec::new();
    for row in [
        Row::Cycle,
        Row::Run,
        Row::InitCleanup,
        Row::Version,
        Row::NativeRun,
        Row::NativeRunOrdinary,
        Row::Library,
        Row::LibraryCold,
    ] {
        let ours = lat.median(false, row).unwrap();
        let theirs = lat.median(true, row);
        let mut line = format!(
            "| {} | {} | {:.2} |",
            row.label(),
            ms(ours),
            ratio(ours, floor)
        );
        if with_isolate {
            match theirs {
                Some(theirs) => {
                    line += &format!(
                        " {} | {:.2} | {:.2} |",
                        ms(theirs),
                        ratio(theirs, floor),
                        ratio(ours, theirs)
                    )
                }
                None => line += " – | – | – |",
            }
        }
        println!("{line}");
        if let Some(target) = row.target() {
            let got = ratio(ours, floor);
            targets.push(format!(
                "| {} ≤ {target}× floor | {got:.2}× | {} |",
                row.label(),
                verdict(got <= target)
            ));
        }
        if let Some(theirs) = theirs {
            let got = ratio(ours, theirs);
            targets.push(format!(
                "| {} ≤ 0.6× isolate | {got:.2}× | {} |",
                row.label(),
                verdict(got <= 0.6)
            ));
        }
    }

    // Throughput: one box and two boxes in alternating spans.
    let mut one = Vec::new();
    let mut two = Vec::new();
    for _ in 0..3 {
        one.push(throughput(1, span));
        two.push(throughput(2, span));
    }
    let rate = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (one, two) = (rate(one), rate(two));
    let scaling = two / one;
    println!(
        "| throughput, library, 1 box | {one:.0} runs/s | |{}",
        if with_isolate { " | | |" } else { "" }
    );
    println!(
        "| throughput, library, 2 boxes in parallel | {two:.0} runs/s | {scaling:.2}× of 1 box |{}",
        if with_isolate { " | | |" } else { "" }
    );
    targets.push(format!(
        "| throughput, 2 boxes ≥ 1.8× of 1 | {scaling:.2}× | {} |",
        verdict(scaling >= 1.8)
    ));

    if accuracy {
        accuracy_rows(&mut targets);
    }

    println!();
    println!("| target (issue 12) | result | |");
    println!("|---|---|---|");
    for line in targets {
        println!("{line}");
    }
    println!();
    println!(
        "(the whole benchmark took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
}

/// CPU time, peak memory and overshoot, printed as rows of their own
/// table; the targets go into `targets`.
fn accuracy_rows(targets: &mut Vec<String>) {
    println!();
    println!("| accuracy | measured | error |");
    println!("|---|---|---|");
    let dir = workdir("isobox-bench-acc-");
    let spin = compile(dir.path(), "spin", SPIN);
    compile(dir.path(), "touch", TOUCH);
    let spin_inside = "/box/spin".to_string();
    let touch_inside = "/box/touch".to_string();

    // CPU time, two ways. Bare against boxed: the same loop run bare
    // (the child's rusage) and boxed, in alternating pairs, each pair's
    // ratio taken and the median of the ratios kept, so that a change in
    // the machine's load between two runs (which moves a busy loop's CPU
    // time by several per cent on these virtual machines) does not pass
    // for an error. And in the same run: what the program's own clock
    // (`CLOCK_PROCESS_CPUTIME_ID`, read as it ends) says against what
    // isobox reports for that run, which no load can tell apart.
    let iterations = "400000000".to_string();
    let mut executor = ProcessExecutor::new(box_config(dir.path(), 61980)).unwrap();
    let mut pair_errors = Vec::new();
    let mut own_clock_errors = Vec::new();
    let (mut bare_cpu, mut boxed_cpu) = (Vec::new(), Vec::new());
    for _ in 0..CPU_PAIRS {
        // Reaped by wait4 below, which also gives its rusage.
        #[allow(clippy::zombie_processes)]
        let child = Command::new(&spin)
            .arg(&iterations)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (status, usage) = isobox::sys::wait4(child.id() as i32).unwrap();
        assert_eq!(status, 0);
        let bare = usage.cpu_time().as_secs_f64();
        let result = executor
            .execute(&[spin_inside.clone(), iterations.clone()], None)
            .unwrap();
        assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
        let own_clock: f64 = result
            .stdout
            .trim()
            .parse()
            .expect("the loop's own CPU time");
        pair_errors.push(result.cpu_time / bare - 1.0);
        own_clock_errors.push(result.cpu_time / own_clock - 1.0);
        bare_cpu.push(Duration::from_secs_f64(bare));
        boxed_cpu.push(Duration::from_secs_f64(result.cpu_time));
    }
    let cpu_error = median_f64(pair_errors) * 100.0;
    let own_clock_error = median_f64(own_clock_errors) * 100.0;
    // The spread says how far the machine moves a loop's CPU time from
    // run to run, which bounds what the bare comparison can tell.
    let spread = |samples: &[Duration]| {
        let low = samples.iter().min().copied().unwrap_or_default();
        let high = samples.iter().max().copied().unwrap_or_default();
        format!("{:.3}–{:.3} s", low.as_secs_f64(), high.as_secs_f64())
    };
    println!(
        "| CPU time of a busy loop, bare and boxed in {CPU_PAIRS} alternating pairs: bare {:.3} s ({}), boxed {:.3} s ({}) (medians, ranges) | median of the pairs' errors | {cpu_error:+.1} % |",
        median(bare_cpu.clone()).as_secs_f64(),
        spread(&bare_cpu),
        median(boxed_cpu.clone()).as_secs_f64(),
        spread(&boxed_cpu),
    );
    println!(
        "| the same boxed runs: isobox's CPU time against the loop's own clock (median) | | {own_clock_error:+.2} % |"
    );
    targets.push(format!(
        "| CPU time within 2 % (bare against boxed) | {cpu_error:+.1} % | {} |",
        verdict(cpu_error.abs() <= 2.0)
    ));
    targets.push(format!(
        "| CPU time within 2 % (the program's own clock, same run) | {own_clock_error:+.2} % | {} |",
        verdict(own_clock_error.abs() <= 2.0)
    ));
    for mib in [64u64, 256] {
        let result = executor
            .execute(&[touch_inside.clone(), mib.to_string()], None)
            .unwrap();
        let exact = (mib << 20) as f64;
        let peak = result.memory_peak as f64;
        let error = (peak / exact - 1.0) * 100.0;
        println!(
            "| peak memory of a program touching {mib} MiB | {:.1} MiB | {error:+.2} % |",
            peak / (1 << 20) as f64,
        );
        let within = (peak - exact).abs() <= exact * 0.02 + (1 << 20) as f64;
        targets.push(format!(
            "| peak memory at {mib} MiB within 2 % + 1 MiB | {error:+.2} % | {} |",
            verdict(within)
        ));
    }
    executor.cleanup().unwrap();
    for limit in [500u64, 1000] {
        let mut config = box_config(dir.path(), 61981);
        config.time_limit = Some(Duration::from_millis(limit));
        let mut executor = ProcessExecutor::new(config).unwrap();
        let overshoots: Vec<Duration> = (0..5)
            .map(|_| {
                let result = executor
                    .execute(&[spin_inside.clone(), "100000000000".into()], None)
                    .unwrap();
                assert_eq!(result.status, ExecutionStatus::TimeLimit);
                Duration::from_secs_f64(result.cpu_time)
                    .saturating_sub(Duration::from_millis(limit))
            })
            .collect();
        let overshoot = median(overshoots);
        println!(
            "| time-limit overshoot at {limit} ms (CPU time past the limit, median of 5) | {} | |",
            ms(overshoot)
        );
        targets.push(format!(
            "| overshoot at {limit} ms ≤ 10 ms | {} | {} |",
            ms(overshoot),
            verdict(overshoot <= Duration::from_millis(10))
        ));
        executor.cleanup().unwrap();
    }
}

/// Compiles a small C program into `dir` and returns its path.
fn compile(dir: &Path, name: &str, source: &str) -> PathBuf {
    let source_path = dir.join(format!("{name}.c"));
    std::fs::write(&source_path, source).unwrap();
    let binary = dir.join(name);
    let status = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(&source_path)
        .status()
        .expect("gcc");
    assert!(status.success());
    binary
}

const SPIN: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
    volatile unsigned long x = 0;
    unsigned long n = strtoul(argv[1], 0, 10);
    for (unsigned long i = 0; i < n; i++) x += i;
    struct timespec used;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    printf("%.9f\n", used.tv_sec + used.tv_nsec / 1e9);
    return 0;
}
"#;

const TOUCH: &str = r#"
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    size_t bytes = strtoul(argv[1], 0, 10) << 20;
    char *p = malloc(bytes);
    memset(p, 1, bytes);
    return p[bytes / 2] == 1 ? 0 : 1;
}
"#;

/// Whether a process listens at `path` (a socket file a killed runner left
/// refuses the connection).
fn listening(path: &Path) -> bool {
    let Ok(socket) = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        None,
    ) else {
        return false;
    };
    rustix::net::SocketAddrUnix::new(path)
        .and_then(|address| rustix::net::connect(&socket, &address))
        .is_ok()
}
