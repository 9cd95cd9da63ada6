//! Under load (issue 15): four boxes at once while twice as many busy
//! processes as the host has CPUs, outside any box, keep every CPU
//! saturated. Programs with a clear margin must keep their verdicts in
//! every round: 0.2 s of CPU under a 1 s limit passes, 2 s under 1 s is a
//! time-out. Load stretches wall times; the CPU time a box is charged must
//! stay the program's own, so it is checked too and its spread printed.
//!
//! `ISOBOX_LOAD_ROUNDS` sets the rounds per face (default 2, for CI); the
//! figures of a long run are in docs/RELIABILITY.md ("Under load").

mod common;
mod isolate_support;

use std::ops::RangeInclusive;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::{
    assert_no_process_of_uid_except, assert_paths_gone, program, skip_unless_privileged, Brief,
    TestBox,
};
use isobox::ExecutionStatus;
use isolate_support::{slot_id, CmsLog, Isolate};

/// Boxes running at once.
const BOXES: u32 = 4;
/// The CPU limit of every run.
const LIMIT: &str = "1";
/// Where the CPU time of the 0.2 s program must be: its own work plus
/// start-up, whatever the load.
const SHORT_CPU: RangeInclusive<f64> = 0.15..=0.5;
/// Where the CPU time of the 2 s program killed at 1 s must be: at the
/// limit, plus the keeper's reaction (unit tests see up to 0.5 s at a
/// 0.5 s limit on an idle machine).
const LONG_CPU: RangeInclusive<f64> = 1.0..=1.5;

/// The faces take turns: each brings its own load, and two loads at once
/// would make a different experiment than the one reported.
static ONE_FACE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn rounds() -> u32 {
    std::env::var("ISOBOX_LOAD_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|rounds| *rounds > 0)
        .unwrap_or(2)
}

/// Busy processes outside any box (in the test's own cgroup), killed and
/// reaped on drop, a failing test included.
struct Load {
    busy: Vec<Child>,
}

impl Load {
    /// Two busy processes per CPU. Each stops by itself after `backstop`
    /// seconds of CPU, so that even a test killed by SIGKILL (no drop)
    /// leaves nothing running for long.
    fn start(backstop: u32) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let spin = program("spin_cpu");
        let busy = (0..2 * cpus)
            .map(|_| {
                Command::new(&spin)
                    .arg(backstop.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("starting a busy process")
            })
            .collect();
        // Let the scheduler see them all before the first run starts.
        std::thread::sleep(Duration::from_millis(200));
        Self { busy }
    }

    /// Fails when a busy process is gone: the runs were not under load.
    fn assert_held(&mut self) {
        for child in &mut self.busy {
            let exited = child.try_wait().expect("try_wait on a busy process");
            assert!(exited.is_none(), "a busy process ended early: {exited:?}");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for child in &mut self.busy {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One measured run.
#[derive(Clone, Copy)]
struct Sample {
    long: bool,
    cpu: f64,
    wall: f64,
}

/// Minimum, median and maximum of `values`.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    (values[0], median, values[values.len() - 1])
}

/// Prints the spread of each program's CPU and wall time, and checks that
/// every run was measured.
fn report(face: &str, samples: &[Sample], rounds: u32) {
    for (long, name) in [(false, "0.2 s program"), (true, "2 s program")] {
        let runs: Vec<Sample> = samples.iter().copied().filter(|s| s.long == long).collect();
        assert_eq!(
            runs.len() as u32,
            rounds * BOXES,
            "{face}: runs of the {name}"
        );
        let cpu = spread(runs.iter().map(|s| s.cpu).collect());
        let wall = spread(runs.iter().map(|s| s.wall).collect());
        println!(
            "under load [{face}] {name}: {} runs, cpu min/median/max {:.3}/{:.3}/{:.3} s \
             (spread {:.3} s), wall {:.3}/{:.3}/{:.3} s",
            runs.len(),
            cpu.0,
            cpu.1,
            cpu.2,
            cpu.2 - cpu.0,
            wall.0,
            wall.1,
            wall.2
        );
    }
}

/// Every box runs both programs in each round, half of them the long one
/// first, so that short and long runs overlap.
fn order(slot: u32) -> [bool; 2] {
    if slot.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

#[test]
fn library_verdicts_hold_with_the_cpus_saturated() {
    skip_unless_privileged!();
    let _turn = ONE_FACE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let rounds = rounds();
    let boxes: Vec<TestBox> = (0..BOXES)
        .map(|_| {
            let mut test_box = TestBox::new();
            test_box.config.time_limit = Some(Duration::from_secs(1));
            test_box.config.wall_time_limit = Some(Duration::from_secs(60));
            test_box
        })
        .collect();
    let spins: Vec<String> = boxes
        .iter()
        .map(|test_box| test_box.install(&program("spin_cpu")))
        .collect();
    // A judge's executor runs submission after submission.
    let mut executors: Vec<_> = boxes.iter().map(TestBox::executor).collect();
    let mut samples = Vec::new();
    let mut load = Load::start(rounds * 20 + 60);
    for _ in 0..rounds {
        let round: Vec<Sample> = std::thread::scope(|scope| {
            let workers: Vec<_> = executors
                .iter_mut()
                .zip(&spins)
                .enumerate()
                .map(|(slot, (executor, spin))| {
                    scope.spawn(move || {
                        order(slot as u32).map(|long| {
                            let seconds = if long { "2" } else { "0.2" };
                            let argv = vec![spin.clone(), seconds.to_string()];
                            let result = executor.execute(&argv, None).expect("execute");
                            let (expected, range) = if long {
                                (ExecutionStatus::TimeLimit, LONG_CPU)
                            } else {
                                (ExecutionStatus::Success, SHORT_CPU)
                            };
                            assert_eq!(result.status, expected, "{:?}", Brief(&result));
                            assert!(range.contains(&result.cpu_time), "{:?}", Brief(&result));
                            Sample {
                                long,
                                cpu: result.cpu_time,
                                wall: result.wall_time,
                            }
                        })
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().expect("a box's runs failed"))
                .collect()
        });
        samples.extend(round);
        load.assert_held();
    }
    drop(load);
    for (executor, test_box) in executors.iter_mut().zip(&boxes) {
        let paths = executor.cgroup_paths();
        assert_no_process_of_uid_except(test_box.uid, &[]);
        executor.cleanup().expect("cleanup");
        assert_paths_gone(&paths);
    }
    report("library", &samples, rounds);
}

#[test]
fn isolate_verdicts_hold_with_the_cpus_saturated() {
    skip_unless_privileged!();
    let _turn = ONE_FACE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let rounds = rounds();
    let isolate = Isolate::new();
    let boxes: Vec<_> = (0..BOXES)
        .map(|index| isolate.open_box(slot_id(50, index), true))
        .collect();
    for guard in &boxes {
        guard.install(&program("spin_cpu"), "spin_cpu");
    }
    let time = format!("--time={LIMIT}");
    let options = [time.as_str(), "--wall-time=60"];
    let mut samples = Vec::new();
    let mut load = Load::start(rounds * 20 + 60);
    for _ in 0..rounds {
        let round: Vec<Sample> = std::thread::scope(|scope| {
            let workers: Vec<_> = boxes
                .iter()
                .enumerate()
                .map(|(slot, guard)| {
                    let options = &options;
                    scope.spawn(move || {
                        order(slot as u32).map(|long| {
                            let seconds = if long { "2" } else { "0.2" };
                            let (outcome, text) = guard.run(options, &["/box/spin_cpu", seconds]);
                            let meta = CmsLog::parse(&text);
                            let (expected, code, range) = if long {
                                (Some("TO"), 1, LONG_CPU)
                            } else {
                                (None, 0, SHORT_CPU)
                            };
                            assert_eq!(
                                (meta.get("status"), outcome.code),
                                (expected, code),
                                "{outcome:?}\n{text}"
                            );
                            assert!(range.contains(&meta.time()), "{text}");
                            let wall = meta
                                .get("time-wall")
                                .and_then(|value| value.parse().ok())
                                .unwrap_or_else(|| panic!("no time-wall in {text}"));
                            Sample {
                                long,
                                cpu: meta.time(),
                                wall,
                            }
                        })
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().expect("a box's runs failed"))
                .collect()
        });
        samples.extend(round);
        load.assert_held();
    }
    drop(load);
    drop(boxes);
    report("isolate", &samples, rounds);
}
