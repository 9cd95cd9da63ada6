//! Attacks on what boxes share with the rest of the host: two isolate
//! installations with the same box numbers, one-shot runs next to isolate
//! boxes and next to each other, and cleanup's way of finding a box's
//! leftovers.
//!
//! Box ids come from slots 90–99 of `tests/isolate_support/mod.rs`.

mod common;
mod isolate_support;

use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{argv, assert_status, skip_unless_privileged, temp_dir, wait_for, TestBox};
use isobox::boxes::BoxesConfig;
use isobox::cgroup::{CgroupController, OptionalControllers};
use isobox::config::ONE_SHOT_UIDS;
use isobox::{ExecutionStatus, ProcessExecutor};
use isolate_support::{assert_box_gone, box_cgroups, slot_id, Isolate, FIRST_UID};

/// A process of `uid` outside every box (`sleep 60`), standing for an
/// unrelated process that happens to share a box's uid.
fn bystander(uid: u32) -> Child {
    Command::new("/bin/sleep")
        .arg("60")
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting a bystander")
}

/// Whether `child` is still running (not killed by anyone).
fn still_running(child: &mut Child) -> bool {
    child.try_wait().expect("try_wait").is_none()
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits (at most 5 s) for `child` to end and returns the signal that
/// ended it.
fn ended_by(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.signal();
        }
        assert!(Instant::now() < deadline, "the process is still running");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn cleanup_in_one_installation_spares_the_same_box_of_another() {
    skip_unless_privileged!();
    // Two installations from one template: same box number, same uid
    // range, different box and lock roots.
    let first = Isolate::new();
    let second = Isolate::new();
    let id = slot_id(90, 0);
    let running = first.open_box(id, true);
    let other = second.open_box(id, true);
    assert_ne!(
        box_cgroups(&first, id),
        box_cgroups(&second, id),
        "both installations would use one cgroup for box {id}"
    );

    let meta = first.root().join("meta-running");
    let meta_arg = format!("--meta={}", meta.display());
    let keeper = running.start_script(
        &[&meta_arg, "-p10", "-t", "20", "-w", "60"],
        "touch /box/started; while [ ! -e /box/go ]; do sleep 0.05; done; echo finished",
    );
    let busy: Vec<PathBuf> = box_cgroups(&first, id)
        .into_iter()
        .filter(|dir| dir.is_dir())
        .collect();
    assert!(!busy.is_empty(), "the running box has no cgroup");

    // The second installation cleans up, re-creates and runs its box 7
    // while the first one's box 7 runs.
    let cleanup = other.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    let init = other.isolate(&["--init"]);
    assert_eq!(init.code, 0, "{init:?}");
    for _ in 0..2 {
        let (outcome, meta_text) = other.run(&["-t", "5", "-w", "20"], &["/bin/echo", "second"]);
        assert_eq!(outcome.code, 0, "{outcome:?}\n{meta_text}");
        assert_eq!(outcome.stdout, "second\n", "{outcome:?}");
        assert!(!meta_text.contains("status:"), "{meta_text}");
    }
    let cleanup = other.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    // (assert_box_gone would see the first installation's processes of
    // the shared uid.)
    assert!(
        !other.dir.exists(),
        "the second installation's box survived"
    );
    let left: Vec<PathBuf> = box_cgroups(&second, id)
        .into_iter()
        .filter(|dir| dir.exists())
        .collect();
    assert!(
        left.is_empty(),
        "cgroups of the second box survived: {left:?}"
    );

    // The first installation's run was never touched.
    assert!(
        busy.iter().all(|dir| dir.is_dir()),
        "the running box's cgroup was removed"
    );
    fs::write(running.box_dir().join("go"), "").expect("releasing the run");
    let output = keeper.wait_with_output().expect("waiting for the run");
    let meta_text = fs::read_to_string(&meta).unwrap_or_default();
    assert_eq!(output.status.code(), Some(0), "{output:?}\n{meta_text}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "finished\n");
    assert!(!meta_text.contains("status:"), "{meta_text}");
    drop(running);
    assert_box_gone(&first, id);
}

#[test]
fn cleanup_kills_what_is_in_the_box_cgroup_and_nothing_else_of_its_uid() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(91, 0);
    let uid = FIRST_UID + id;
    let sandbox = isolate.open_box(id, true);

    // A leftover of the box: a process of its uid in its cgroup, as a run
    // whose keeper vanished would leave it.
    let config = BoxesConfig::load(&isolate.config).expect("the test configuration");
    let placement = config.cgroup_placement().expect("the cgroup place");
    let cgroup = CgroupController::placed(
        &placement,
        &format!("box-{id}"),
        true,
        OptionalControllers {
            cpu_weight: false,
            cpuset: false,
        },
    )
    .expect("making the box's cgroup");
    // In a run's cgroup below the box's, where runs put their processes
    // (on v2 the box's own cgroup cannot hold any: it hands controllers
    // down to its children).
    let run = cgroup
        .create_child("run-leftover")
        .expect("making a run cgroup in the box's");
    let mut leftover = bystander(uid);
    run.add_process(leftover.id() as i32)
        .expect("moving the leftover into the box's cgroup");
    // Same uid, not of this box (another installation's box, say).
    let mut unrelated = bystander(uid);

    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert_eq!(ended_by(&mut leftover), Some(libc::SIGKILL));
    let spared = still_running(&mut unrelated);
    stop(unrelated);
    assert!(
        spared,
        "cleanup killed a process of the box's uid outside the box"
    );
    assert!(
        cgroup.paths().iter().all(|dir| !dir.exists()),
        "the box's cgroup survived cleanup"
    );
    drop(run);
    drop(cgroup);
    assert_box_gone(&isolate, id);
}

#[test]
fn cleanup_without_cgroups_kills_the_recorded_proxy_only_when_it_is_the_same_process() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(92, 0);
    let uid = FIRST_UID + id;
    let sandbox = isolate.open_box(id, false);
    let record = sandbox.dir.join(".isobox-proxy");
    let start_time = |pid: u32| isobox::sys::start_time(pid as i32).expect("start time");

    // A record whose pid now belongs to a process started at another time
    // (a recycled pid) must not kill that process.
    let mut recycled = bystander(uid);
    fs::write(
        &record,
        format!("{} {}\n", recycled.id(), start_time(recycled.id()) + 1),
    )
    .unwrap();
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    let spared = still_running(&mut recycled);
    stop(recycled);
    assert!(spared, "cleanup killed a process through a stale record");

    // The recorded process itself is killed, and an unrelated process of
    // the box's uid is not.
    let init = sandbox.isolate(&["--init"]);
    assert_eq!(init.code, 0, "{init:?}");
    let mut proxy = bystander(uid);
    let mut unrelated = bystander(uid);
    fs::write(
        &record,
        format!("{} {}\n", proxy.id(), start_time(proxy.id())),
    )
    .unwrap();
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert_eq!(ended_by(&mut proxy), Some(libc::SIGKILL));
    let spared = still_running(&mut unrelated);
    stop(unrelated);
    assert!(
        spared,
        "cleanup killed a process of the box's uid outside the box"
    );
    assert_box_gone(&isolate, id);
}

#[test]
fn a_run_records_its_proxy_while_it_lasts() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(93, 0), false);
    let record = sandbox.dir.join(".isobox-proxy");
    let keeper = sandbox.start_script(
        &["-p10", "-t", "20", "-w", "60"],
        "touch /box/started; while [ ! -e /box/go ]; do sleep 0.05; done",
    );
    let text = fs::read_to_string(&record).expect("the proxy record during the run");
    let fields: Vec<u64> = text
        .split_whitespace()
        .map(|field| field.parse().expect("a number"))
        .collect();
    assert_eq!(fields.len(), 2, "{text:?}");
    let pid = fields[0] as i32;
    assert_eq!(isobox::sys::start_time(pid).ok(), Some(fields[1]));
    // It is the box's pid 1: its PID namespace is not the host's.
    let own = fs::read_link("/proc/self/ns/pid").unwrap();
    assert_ne!(fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(), own);
    fs::write(sandbox.box_dir().join("go"), "").unwrap();
    let output = keeper.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(!record.exists(), "the record outlived the run");
}

/// Runs `id -u; id -g` in an executor that names no uid.
fn run_ids(executor: &mut ProcessExecutor) -> (u32, u32) {
    let result = executor
        .execute(&argv(&["/bin/sh", "-c", "id -u; id -g"]), None)
        .expect("execute");
    assert_status(&result, ExecutionStatus::Success);
    let ids: Vec<u32> = result
        .stdout
        .lines()
        .map(|line| line.trim().parse().expect("a number"))
        .collect();
    (ids[0], ids[1])
}

fn one_shot_box() -> TestBox {
    let mut test_box = TestBox::hostile();
    test_box.config.uid = None;
    test_box.config.gid = None;
    test_box
}

#[test]
fn live_one_shot_executors_never_share_a_uid() {
    skip_unless_privileged!();
    let boxes: Vec<TestBox> = (0..3).map(|_| one_shot_box()).collect();
    let mut executors: Vec<ProcessExecutor> = boxes.iter().map(TestBox::executor).collect();
    let mut uids = Vec::new();
    for executor in &mut executors {
        let (uid, gid) = run_ids(executor);
        assert!(ONE_SHOT_UIDS.contains(&uid), "uid {uid}");
        assert_eq!(gid, uid);
        // The same executor keeps its uid from run to run.
        assert_eq!(run_ids(executor), (uid, gid));
        uids.push(uid);
    }
    let mut distinct = uids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        uids.len(),
        "live executors share a uid: {uids:?}"
    );
    // The claim ends with the executor: its lock file can be taken again.
    let released = uids[0];
    let mut first = executors.remove(0);
    first.cleanup().expect("cleanup");
    drop(first);
    let lock = fs::File::open(Path::new(isobox::config::UID_CLAIM_DIR).join(released.to_string()))
        .expect("the claim file");
    // A process forked by a concurrent test (a `Command` before its exec,
    // a box's proxy before it closes what it inherited) holds every open
    // description of this process for a moment, the claim's too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Err(error) = lock.try_lock() {
        assert!(
            std::time::Instant::now() < deadline,
            "the uid is not free again: {error:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(lock);
    for mut executor in executors {
        executor.cleanup().expect("cleanup");
    }
}

/// A directory the box user can write, for the program and the test to
/// meet in (bound into the box read-write).
fn meeting_point(name: &str) -> tempfile::TempDir {
    temp_dir(&format!("isobox-meet-{name}-"), 0o777)
}

/// `isobox run` of a program that writes its uid to `/meet/uid` and waits
/// for `/meet/go`.
fn waiting_run(meet: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(["run", "--time", "20", "--wall-time", "60", "--mem", "64M"])
        .arg(format!("--dir=/meet={}:rw", meet.display()))
        .args([
            "--",
            "/bin/sh",
            "-c",
            "id -u > /meet/uid.tmp && mv /meet/uid.tmp /meet/uid; \
             while [ ! -e /meet/go ]; do sleep 0.05; done; echo survived",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting isobox run")
}

#[test]
fn one_shot_runs_are_apart_from_each_other_and_from_isolate_boxes() {
    skip_unless_privileged!();
    let meets = [meeting_point("a"), meeting_point("b")];
    let runs: Vec<Child> = meets.iter().map(|meet| waiting_run(meet.path())).collect();
    let uids: Vec<u32> = meets
        .iter()
        .map(|meet| {
            let file = meet.path().join("uid");
            wait_for(&file);
            fs::read_to_string(&file).unwrap().trim().parse().unwrap()
        })
        .collect();

    // An isolate installation with the default uids cleans up its box 0
    // (uid 60000, the uid `isobox run` used to share) meanwhile.
    let isolate = Isolate::with_extra_config("first_uid = 60000\nfirst_gid = 60000\n");
    let sandbox = isolate.open_box(0, false);
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");

    for meet in &meets {
        fs::write(meet.path().join("go"), "").unwrap();
    }
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "survived\n");
    }
    assert_ne!(uids[0], uids[1], "two live runs share a uid");
    for uid in &uids {
        assert!(ONE_SHOT_UIDS.contains(uid), "uid {uid}");
        assert!(
            !(60000..61000).contains(uid),
            "uid {uid} is one of isolate's default boxes"
        );
    }
}
