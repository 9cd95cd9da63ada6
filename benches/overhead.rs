//! Per-run overhead and accuracy of isobox against bare fork+exec, measured
//! in one run on one machine. Run as root: `cargo bench --bench overhead`.
//!
//! Prints a Markdown table (medians, ratios to the floor) ready for
//! docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use isobox::{ExecutionStatus, IsolateConfig, ProcessExecutor};

const ITERATIONS: usize = 300;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_each(iterations: usize, mut f: impl FnMut()) -> Duration {
    // Warm the page cache and the allocator first.
    for _ in 0..10 {
        f();
    }
    let samples = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    median(samples)
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

fn floor() -> Duration {
    time_each(ITERATIONS, || {
        let status = Command::new("/bin/true").status().unwrap();
        assert!(status.success());
    })
}

fn library() -> Duration {
    let dir = workdir("isobox-bench-lib-");
    let mut executor = ProcessExecutor::new(box_config(dir.path(), 61990)).unwrap();
    let command = true_command();
    let median = time_each(ITERATIONS, || {
        let result = executor.execute(&command, None).unwrap();
        assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    });
    executor.cleanup().unwrap();
    median
}

/// The isolate-compatible face as a judge drives it: separate processes
/// for `--init`, `--run` and `--cleanup`. Returns the medians of the whole
/// cycle and of `--run` alone in an initialized box.
fn isolate_cli() -> (Duration, Duration) {
    let root = workdir("isobox-bench-cli-");
    let config = root.path().join("isobox.conf");
    std::fs::write(
        &config,
        format!(
            "box_root = {0}/boxes\nlock_root = {0}/locks\nfirst_uid = 61970\nfirst_gid = 61970\nnum_boxes = 4\n",
            root.path().display()
        ),
    )
    .unwrap();
    let isolate = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_isobox"))
            .args(args)
            .env("ISOBOX_CONFIG", &config)
            .output()
            .unwrap();
        assert!(output.status.success(), "isolate {args:?}: {output:?}");
    };
    let cycle = time_each(ITERATIONS / 3, || {
        isolate(&["--cg", "-b", "1", "--init"]);
        isolate(&[
            "--cg",
            "-b",
            "1",
            "-t",
            "1",
            "-w",
            "2",
            "--run",
            "--",
            "/bin/true",
        ]);
        isolate(&["--cg", "-b", "1", "--cleanup"]);
    });
    isolate(&["--cg", "-b", "2", "--init"]);
    let run = time_each(ITERATIONS / 3, || {
        isolate(&[
            "--cg",
            "-b",
            "2",
            "-t",
            "1",
            "-w",
            "2",
            "--run",
            "--",
            "/bin/true",
        ]);
    });
    isolate(&["--cg", "-b", "2", "--cleanup"]);
    (cycle, run)
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
#include <stdlib.h>
int main(int argc, char **argv) {
    volatile unsigned long x = 0;
    unsigned long n = strtoul(argv[1], 0, 10);
    for (unsigned long i = 0; i < n; i++) x += i;
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

fn main() {
    if !isobox::sys::is_root() {
        eprintln!("the benchmark needs root (namespaces, cgroups)");
        std::process::exit(2);
    }
    let floor = floor();
    let library = library();
    println!("| measurement | median | ratio to floor |");
    println!("|---|---|---|");
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| floor: fork+exec+wait of /bin/true | {} | 1.00 |",
        ms(floor)
    );
    println!(
        "| library: `execute` of /bin/true, full isolation | {} | {:.2} |",
        ms(library),
        library.as_secs_f64() / floor.as_secs_f64()
    );

    let (cycle, run) = isolate_cli();
    println!(
        "| isolate CLI: `--init`, `--run -- /bin/true`, `--cleanup` | {} | {:.2} |",
        ms(cycle),
        cycle.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "| isolate CLI: `--run -- /bin/true` in an initialized box | {} | {:.2} |",
        ms(run),
        run.as_secs_f64() / floor.as_secs_f64()
    );

    let span = Duration::from_secs(3);
    let one = throughput(1, span);
    for boxes in [1, 2, 4] {
        let rate = if boxes == 1 {
            one
        } else {
            throughput(boxes, span)
        };
        println!(
            "| throughput, {boxes} box(es) in parallel | {rate:.0} runs/s | {:.2}× of 1 box |",
            rate / one
        );
    }

    let dir = workdir("isobox-bench-acc-");
    let spin = compile(dir.path(), "spin", SPIN);
    let touch = compile(dir.path(), "touch", TOUCH);
    let spin_inside = "/box/spin".to_string();
    let touch_inside = "/box/touch".to_string();
    let _ = (&spin, &touch);

    // CPU time: the same loop measured bare (rusage of the child) and boxed.
    let iterations = "400000000".to_string();
    // Medians of several runs each: one sample is at the mercy of the
    // other core's load.
    let bare_cpu = median(
        (0..5)
            .map(|_| {
                // Reaped by wait4 below, which also gives its rusage.
                #[allow(clippy::zombie_processes)]
                let child = Command::new(&spin).arg(&iterations).spawn().unwrap();
                let (status, usage) = isobox::sys::wait4(child.id() as i32).unwrap();
                assert_eq!(status, 0);
                usage.cpu_time()
            })
            .collect(),
    )
    .as_secs_f64();
    let mut executor = ProcessExecutor::new(box_config(dir.path(), 61980)).unwrap();
    let boxed_cpu = median(
        (0..5)
            .map(|_| {
                let result = executor
                    .execute(&[spin_inside.clone(), iterations.clone()], None)
                    .unwrap();
                Duration::from_secs_f64(result.cpu_time)
            })
            .collect(),
    )
    .as_secs_f64();
    println!(
        "| CPU time of a busy loop (median of 5): bare {bare_cpu:.3} s, boxed {boxed_cpu:.3} s | | {:+.1} % |",
        (boxed_cpu / bare_cpu - 1.0) * 100.0
    );
    for mib in [64u64, 256] {
        let result = executor
            .execute(&[touch_inside.clone(), mib.to_string()], None)
            .unwrap();
        let exact = (mib << 20) as f64;
        println!(
            "| peak memory of a program touching {mib} MiB | {:.1} MiB | {:+.2} % |",
            result.memory_peak as f64 / (1 << 20) as f64,
            (result.memory_peak as f64 / exact - 1.0) * 100.0
        );
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
                Duration::from_secs_f64(result.cpu_time) - Duration::from_millis(limit)
            })
            .collect();
        println!(
            "| time-limit overshoot at {limit} ms (CPU time past the limit) | {} | |",
            ms(median(overshoots))
        );
        executor.cleanup().unwrap();
    }
}
