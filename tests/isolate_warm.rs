//! The isolate face's per-box agent: from a box's second `--run` on, runs
//! go to an agent that keeps the box warm across invocations. What a caller
//! sees must not change: the same verdicts and meta files as cold runs,
//! nothing of one run in the next, nothing left after `--cleanup`, an
//! interrupted or killed client stops its run, and a killed agent never
//! breaks the next run.
//!
//! Run as root with cgroups (privileged tests).

mod common;
mod isolate_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::skip_unless_privileged;
use isolate_support::{assert_box_gone, box_cgroups, slot_id, CmsLog, Isolate, Outcome};

/// The arguments of a process, `None` when it is gone.
fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|byte| *byte == 0)
            .filter(|word| !word.is_empty())
            .map(|word| String::from_utf8_lossy(word).into_owned())
            .collect(),
    )
}

fn parent(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` runs as the agent of box `id` of `isolate`'s installation
/// (its holder, a clone of it, has the same arguments).
fn is_agent_process(isolate: &Isolate, pid: i32, id: u32) -> bool {
    let config = isolate.root().join("isobox.conf");
    cmdline(pid).is_some_and(|words| {
        words.len() == 4
            && words[1] == "--isobox-agent"
            && Path::new(&words[2]) == config
            && words[3] == id.to_string()
    })
}

/// The pids of box `id`'s agent and its holder.
fn agent_processes(isolate: &Isolate, id: u32) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| is_agent_process(isolate, *pid, id))
        .collect()
}

/// The pid of box `id`'s agent (not its holder), if it runs.
fn agent(isolate: &Isolate, id: u32) -> Option<i32> {
    agent_processes(isolate, id)
        .into_iter()
        .find(|pid| !parent(*pid).is_some_and(|up| is_agent_process(isolate, up, id)))
}

fn socket(isolate: &Isolate, id: u32) -> PathBuf {
    isolate.root().join(format!("locks/agents/{id}.sock"))
}

/// Processes running as uid `uid`.
fn processes_of(uid: u32) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::metadata(format!("/proc/{pid}")).is_ok_and(|meta| meta.uid() == uid))
        .collect()
}

/// Waits (a few seconds at most) until `done` holds.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The meta file's lines that do not depend on timing.
fn verdict_lines(meta: &str) -> Vec<String> {
    let log = CmsLog::parse(meta);
    let mut keys: Vec<&str> = log.keys();
    keys.sort_unstable();
    keys.into_iter()
        .map(|key| match key {
            "status" | "exitcode" | "exitsig" | "killed" | "message" => {
                format!("{key}:{}", log.get(key).unwrap())
            }
            // Figures: present, values vary.
            other => other.to_string(),
        })
        .collect()
}

#[test]
fn repeated_runs_reuse_the_agent_and_its_box() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(65, 0);
    let sandbox = isolate.open_box(id, true);
    let (first, _) = sandbox.run(&[], &["/bin/true"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(agent(&isolate, id), None, "the first run starts no agent");
    let mut agents = Vec::new();
    let mut namespaces = Vec::new();
    for _ in 0..5 {
        let (outcome, meta) = sandbox.run(&[], &["/bin/readlink", "/proc/self/ns/pid"]);
        assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
        namespaces.push(outcome.stdout.clone());
        agents.push(agent(&isolate, id).expect("an agent from the second run on"));
        // Between two runs the agent has built the box for the next one:
        // its holder (a clone of it) waits beside it.
        eventually("the agent builds the box after its first run", || {
            agent_processes(&isolate, id).len() == 2
        });
    }
    assert!(agents.iter().all(|pid| *pid == agents[0]), "{agents:?}");
    // The agent's first run is cold and builds the box after it, so its
    // next ones are forks of the same holder, in the same PID namespace.
    assert!(
        namespaces[1..].iter().all(|ns| *ns == namespaces[1]),
        "{namespaces:?}"
    );
    assert!(socket(&isolate, id).exists());
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert!(agent_processes(&isolate, id).is_empty());
    assert!(!socket(&isolate, id).exists());
    assert_box_gone(&isolate, id);
}

#[test]
fn verdicts_and_meta_equal_the_cold_runs() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let warm = isolate.open_box(slot_id(65, 1), true);
    let memory = common::program("memory_bomb");
    let cases: [(&str, Vec<&str>, Vec<&str>); 6] = [
        (
            "ordinary",
            vec![],
            vec!["/bin/sh", "-c", "echo out; echo err >&2"],
        ),
        ("runtime error", vec![], vec!["/bin/sh", "-c", "exit 3"]),
        ("signal", vec![], vec!["/bin/sh", "-c", "kill -SEGV $$"]),
        (
            "time limit",
            vec!["-t", "0.2", "-w", "5"],
            vec!["/bin/sh", "-c", "while :; do :; done"],
        ),
        ("memory limit", vec!["--cg-mem=20000"], vec!["memory_bomb"]),
        (
            "output file",
            vec!["-o", "out.txt", "-f", "1"],
            vec!["/bin/sh", "-c", "head -c 5000 /dev/zero"],
        ),
    ];
    warm.install(&memory, "memory_bomb");
    // Twice first: the agent's own first run is cold too.
    for _ in 0..2 {
        assert_eq!(warm.run(&[], &["/bin/true"]).0.code, 0);
    }
    for (index, (name, options, command)) in cases.iter().enumerate() {
        let cold = isolate.open_box(slot_id(66, index as u32), true);
        cold.install(&memory, "memory_bomb");
        let command: Vec<String> = command
            .iter()
            .map(|word| match *word {
                "memory_bomb" => "./memory_bomb".to_string(),
                other => other.to_string(),
            })
            .collect();
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        let (cold_outcome, cold_meta) = cold.run(options, &command);
        assert_eq!(
            agent(&isolate, cold.id),
            None,
            "{name}: a first run is cold"
        );
        let (warm_outcome, warm_meta) = warm.run(options, &command);
        assert!(agent(&isolate, warm.id).is_some(), "{name}");
        assert_eq!(cold_outcome.code, warm_outcome.code, "{name}");
        assert_eq!(cold_outcome.stdout, warm_outcome.stdout, "{name}");
        // The status line holds times: only its verdict is compared.
        let verdict = |outcome: &Outcome| outcome.stderr.split(" (").next().unwrap().to_string();
        assert_eq!(verdict(&cold_outcome), verdict(&warm_outcome), "{name}");
        assert_eq!(
            verdict_lines(&cold_meta),
            verdict_lines(&warm_meta),
            "{name}:\n{cold_meta}\n{warm_meta}"
        );
        if *name == "output file" {
            assert_eq!(
                fs::read(cold.box_dir().join("out.txt")).unwrap(),
                fs::read(warm.box_dir().join("out.txt")).unwrap()
            );
        }
    }
}

#[test]
fn rules_and_limits_may_change_between_runs() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let host = isolate.root().join("shared");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("file"), "shared\n").unwrap();
    let sandbox = isolate.open_box(slot_id(65, 2), true);
    let rule = format!("--dir=/shared={}", host.display());
    let look = ["/bin/sh", "-c", "cat /shared/file 2>/dev/null || echo none"];
    for round in 0..3 {
        let (without, _) = sandbox.run(&["-p"], &look);
        assert_eq!(without.stdout, "none\n", "round {round}: {without:?}");
        let (with, _) = sandbox.run(&["-p", &rule], &look);
        assert_eq!(with.stdout, "shared\n", "round {round}: {with:?}");
        let (slow, meta) = sandbox.run(&["-t", "0.1"], &["/bin/sh", "-c", "while :; do :; done"]);
        assert_eq!(CmsLog::parse(&meta).get("status"), Some("TO"), "{slow:?}");
        let (fast, meta) = sandbox.run(&["-t", "5"], &["/bin/sh", "-c", "exit 0"]);
        assert_eq!(fast.code, 0, "{fast:?}\n{meta}");
        let (env, _) = sandbox.run(&[&format!("-EROUND={round}")], &["/usr/bin/env"]);
        let rounds: Vec<&str> = env
            .stdout
            .lines()
            .filter(|line| line.starts_with("ROUND="))
            .collect();
        assert_eq!(rounds, [format!("ROUND={round}")], "{env:?}");
    }
    assert!(agent(&isolate, sandbox.id).is_some());
}

#[test]
fn a_killed_agent_never_breaks_the_next_run() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(65, 3), true);
    let mut seed = std::process::id() as u64;
    for round in 0..12 {
        for _ in 0..2 {
            let (outcome, meta) = sandbox.run(&[], &["/bin/true"]);
            assert_eq!(outcome.code, 0, "round {round}: {outcome:?}\n{meta}");
        }
        // A run under way, and the agent killed at some point of it.
        let child = isolate
            .command()
            .args(sandbox.with_box(&["-p", "--run", "--", "/bin/sh", "-c", "sleep 0.05; echo hi"]))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 80));
        if let Some(pid) = agent(&isolate, sandbox.id) {
            // SAFETY: signals the agent process this test's runs started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let ended: Outcome = child.wait_with_output().unwrap().into();
        assert!(ended.code == 0 || ended.code == 2, "{ended:?}");
        let (next, meta) = sandbox.run(&[], &["/bin/sh", "-c", "echo next"]);
        assert_eq!(next.code, 0, "round {round}: {next:?}\n{meta}");
        assert_eq!(next.stdout, "next\n");
    }
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert!(agent_processes(&isolate, sandbox.id).is_empty());
    assert!(!socket(&isolate, sandbox.id).exists());
    assert!(processes_of(sandbox.uid()).is_empty());
    assert_box_gone(&isolate, sandbox.id);
}

#[test]
fn the_program_cannot_reach_the_socket() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(65, 4), true);
    let locks = isolate.root().join("locks");
    let rule = format!("--dir=/locks={}", locks.display());
    let path = socket(&isolate, sandbox.id);
    let probe = format!(
        "test -e {} && echo visible; ls /locks/agents 2>/dev/null && echo listed; \
         test -e /locks/agents/{}.sock && echo reachable; echo done",
        path.display(),
        sandbox.id
    );
    for _ in 0..3 {
        let (outcome, meta) = sandbox.run(&["-p", &rule], &["/bin/sh", "-c", &probe]);
        assert_eq!(outcome.stdout, "done\n", "{outcome:?}\n{meta}");
    }
    assert!(path.exists(), "the agent's socket exists meanwhile");
}

#[test]
fn leftovers_of_a_run_never_reach_the_next() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(65, 5), true);
    for round in 0..4 {
        let (planted, meta) = sandbox.run(
            &["-p"],
            &[
                "/bin/sh",
                "-c",
                "echo x > /tmp/left; echo y > /dev/shm/left; \
                 (setsid sleep 1000 &) ; (sleep 1000 &); echo planted",
            ],
        );
        assert_eq!(
            planted.stdout, "planted\n",
            "round {round}: {planted:?}\n{meta}"
        );
        let (looked, meta) = sandbox.run(
            &["-p"],
            &[
                "/bin/sh",
                "-c",
                "ls /tmp /dev/shm; ls /proc | grep -c '^[0-9]'",
            ],
        );
        // The shell and ls alone (and the holder, pid 1, in a warm box).
        let count: u32 = looked.stdout.lines().last().unwrap().parse().unwrap();
        assert!(count <= 3, "round {round}: {looked:?}\n{meta}");
        assert!(!looked.stdout.contains("left"), "round {round}: {looked:?}");
    }
    assert!(agent(&isolate, sandbox.id).is_some());
    assert!(processes_of(sandbox.uid()).is_empty());
}

#[test]
fn an_interrupted_or_killed_client_stops_its_run() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(65, 6), true);
    for _ in 0..2 {
        assert_eq!(sandbox.run(&[], &["/bin/true"]).0.code, 0);
    }
    let meta = isolate.root().join("meta-interrupted");
    let meta_arg = format!("--meta={}", meta.display());
    let script = "touch /box/started; sleep 1000 & sleep 1000; wait";
    let child = sandbox.start_script(&[&meta_arg, "-p"], script);
    assert!(agent(&isolate, sandbox.id).is_some());
    // SAFETY: signals the isolate process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let outcome: Outcome = child.wait_with_output().unwrap().into();
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(outcome.stderr, "Interrupted\n", "{outcome:?}");
    let log = CmsLog::parse(&fs::read_to_string(&meta).unwrap());
    assert_eq!(log.get("status"), Some("SG"));
    assert_eq!(log.get("exitsig"), Some(libc::SIGTERM.to_string().as_str()));
    assert!(processes_of(sandbox.uid()).is_empty());
    let _ = fs::remove_file(sandbox.box_dir().join("started"));

    // A client killed outright: the agent stops the run itself.
    for _ in 0..2 {
        assert_eq!(sandbox.run(&[], &["/bin/true"]).0.code, 0);
    }
    let mut child: Child = sandbox.start_script(&["-p"], script);
    child.kill().unwrap();
    child.wait().unwrap();
    eventually("the killed client's run stops", || {
        processes_of(sandbox.uid()).is_empty()
    });
    let (next, meta) = sandbox.run(&[], &["/bin/true"]);
    assert_eq!(next.code, 0, "{next:?}\n{meta}");
    drop(sandbox);
    assert!(agent_processes(&isolate, slot_id(65, 6)).is_empty());
    assert!(box_cgroups(&isolate, slot_id(65, 6))
        .iter()
        .all(|dir| !dir.exists()));
}

/// A set-user-ID copy of isobox (mode 4750, root and a group the caller
/// is in), as in `tests/isolate_setuid_flows.rs`: its callers get an agent
/// that owes them nothing (root through and through, no environment), and
/// their meta files are still theirs.
#[test]
fn set_user_id_callers_get_a_root_agent() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    const GROUP: u32 = 64730;
    const CALLER: u32 = 64731;
    skip_unless_privileged!();
    let dir = common::temp_dir("isobox-warm-setuid-", 0o755);
    let binary = dir.path().join("isolate");
    fs::copy(env!("CARGO_BIN_EXE_isobox"), &binary).unwrap();
    std::os::unix::fs::chown(&binary, Some(0), Some(GROUP)).unwrap();
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o4750)).unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(CALLER), Some(CALLER)).unwrap();
    let id = slot_id(67, 0).to_string();
    // Kills at glibc's first `arch_prctl`: installed by root before the
    // switch to the caller, so without no_new_privs, and the set-user-ID
    // bit still counts.
    let filter = common::killed_at_glibc_start();
    let run_filtered = |args: &[&str], filtered: bool| -> Outcome {
        let mut command = std::process::Command::new(&binary);
        command
            .current_dir(&work)
            .stdin(std::process::Stdio::null())
            .env_remove("ISOBOX_CONFIG")
            .env("SECRET", "caller's")
            .args(args);
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        let program = std::ptr::addr_of!(program) as usize;
        // SAFETY: seccomp, setgroups, setgid and setuid are
        // async-signal-safe; the filter program outlives the child's exec.
        unsafe {
            command.pre_exec(move || {
                if filtered
                    && libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, program)
                        != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setgroups(1, &GROUP) != 0
                    || libc::setgid(CALLER) != 0
                    || libc::setuid(CALLER) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        for _ in 0..100 {
            match command.output() {
                Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other.unwrap().into(),
            }
        }
        panic!("the setuid copy stayed busy");
    };
    let run = |args: &[&str]| run_filtered(args, false);
    let agents = || -> Vec<i32> {
        fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                cmdline(*pid).is_some_and(|words| {
                    words.len() == 4 && words[1] == "--isobox-agent" && words[3] == id
                })
            })
            .collect()
    };
    struct Cleanup<'a>(&'a Path, String);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new(self.0)
                .env_remove("ISOBOX_CONFIG")
                .args(["--cg", "-b", &self.1, "--cleanup"])
                .output();
            // That root --cleanup starts the default installation's
            // service, with a spare.
            common::stop_installation_and_spares(Path::new(isobox::boxes::DEFAULT_CONFIG_PATH));
        }
    }
    let _cleanup = Cleanup(&binary, id.clone());
    let init = run(&["--cg", "-b", &id, "--init"]);
    assert_eq!(init.code, 0, "{init:?}");
    for round in 0..4 {
        let meta = format!("meta-{round}");
        let outcome = run(&[
            "--cg",
            "-b",
            &id,
            "-M",
            &meta,
            "-p",
            "-e",
            "--run",
            "--",
            "/bin/sh",
            "-c",
            "echo $SECRET; id -u",
        ]);
        assert_eq!(outcome.code, 0, "round {round}: {outcome:?}");
        // -e hands the caller's environment to the program, as ever.
        assert!(outcome.stdout.starts_with("caller's\n"), "{outcome:?}");
        let owner = fs::metadata(work.join(&meta)).unwrap();
        assert_eq!((owner.uid(), owner.gid()), (CALLER, CALLER));
    }
    let found = agents();
    assert!(!found.is_empty(), "no agent after four runs");
    // A caller who is not root never hands its run to the agent whole (the
    // agent takes a forwarded run for a root caller's, its checks and its
    // meta file root's): its run takes the ordinary path, which starts
    // glibc, whose first arch_prctl the filter kills.
    let forwarded = run_filtered(&["--cg", "-b", &id, "--run", "--", "/bin/true"], true);
    assert_eq!(forwarded.code, -1, "not killed: {forwarded:?}");
    assert_eq!(agents(), found, "the agent served something");
    for pid in &found {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let ids = |key: &str| {
            status
                .lines()
                .find(|line| line.starts_with(key))
                .unwrap()
                .split_whitespace()
                .skip(1)
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("Uid:"), ["0", "0", "0", "0"], "pid {pid}");
        assert_eq!(ids("Gid:"), ["0", "0", "0", "0"], "pid {pid}");
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert!(environ.is_empty(), "pid {pid}: {environ:?}");
    }
    let cleanup = run(&["--cg", "-b", &id, "--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert!(agents().is_empty());
}

/// An agent nobody asks leaves by itself (after 30 s), leaving the box as
/// a cold run does: no process, no socket, the box's cgroup with nothing
/// below it; the next runs start over.
#[test]
fn an_idle_agent_leaves_the_box_as_a_cold_run_does() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(65, 7), true);
    for _ in 0..3 {
        assert_eq!(sandbox.run(&[], &["/bin/true"]).0.code, 0);
    }
    assert!(agent(&isolate, sandbox.id).is_some());
    let start = Instant::now();
    while !agent_processes(&isolate, sandbox.id).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "the agent stays");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        start.elapsed() > Duration::from_secs(20),
        "it left too soon"
    );
    assert!(!socket(&isolate, sandbox.id).exists());
    assert!(processes_of(sandbox.uid()).is_empty());
    let kept: Vec<PathBuf> = box_cgroups(&isolate, sandbox.id)
        .into_iter()
        .filter(|dir| dir.exists())
        .collect();
    assert!(!kept.is_empty(), "a box's cgroup stays until --cleanup");
    for dir in kept {
        let below: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .map(|entry| entry.path())
            .collect();
        assert!(below.is_empty(), "{below:?}");
    }
    for _ in 0..3 {
        let (outcome, meta) = sandbox.run(&[], &["/bin/true"]);
        assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    }
    assert!(agent(&isolate, sandbox.id).is_some());
}

/// `isolate ARGS` (ARGS naming the box), with umask 077, `FROM_CALLER`
/// in its environment and `stdin` as standard input; when `filtered`,
/// killed at its first `arch_prctl` (glibc's start-up makes it to set up
/// thread-local storage): a run that gets through then went to the agent
/// whole, before the C library started (`src/cli/isolate/front.rs`).
fn run_as_caller(
    isolate: &Isolate,
    args: &[String],
    stdin: &Path,
    filtered: bool,
) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let program = common::killed_at_glibc_start();
    let mut command = isolate.command();
    command
        .args(args)
        .env("FROM_CALLER", "kept")
        .stdin(fs::File::open(stdin).unwrap());
    // SAFETY: between fork and exec the child only sets its umask and,
    // when filtered, makes the two system calls of apply_filter, on a
    // program built before the fork.
    unsafe {
        command.pre_exec(move || {
            libc::umask(0o077);
            if filtered {
                seccompiler::apply_filter(&program).map_err(std::io::Error::other)?;
            }
            Ok(())
        });
    }
    command.output().unwrap()
}

/// A root caller's warm run goes to the agent before the C library
/// starts, and is the same run as a cold one: the caller's standard input,
/// output and error, environment (`-E`), current directory (a relative
/// meta file) and umask (the meta file's mode) are the agent's for the
/// run. A run the agent cannot serve is left to the ordinary path.
#[test]
fn a_root_callers_warm_run_goes_to_the_agent_whole() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(65, 8), true);
    let input = isolate.root().join("input");
    fs::write(&input, "hello\n").unwrap();
    let meta = isolate.root().join("relative-meta");
    let script = "read line; echo \"$line $FOO $FROM_CALLER\"; echo to-stderr >&2; exit 3";
    let args = sandbox.with_box(&[
        "-M",
        "relative-meta",
        "-E",
        "FOO=bar",
        "-E",
        "FROM_CALLER",
        "--run",
        "--",
        "/bin/sh",
        "-c",
        script,
    ]);
    // The box's first run is cold and its second starts the agent: the
    // ordinary path both times, which the filter stops.
    for _ in 0..2 {
        let output = run_as_caller(&isolate, &args, &input, true);
        assert_eq!(output.status.signal(), Some(libc::SIGSYS), "{output:?}");
        assert_eq!(sandbox.run(&[], &["/bin/true"]).0.code, 0);
    }
    // A run an agent cannot serve stops the agent and runs cold: the
    // ordinary path (stopped by the filter first, to show that the front
    // leaves it alone).
    let inherit = sandbox.with_box(&["--inherit-fds", "--run", "--", "/bin/true"]);
    let output = run_as_caller(&isolate, &inherit, &input, true);
    assert_eq!(output.status.signal(), Some(libc::SIGSYS), "{output:?}");
    let output = run_as_caller(&isolate, &inherit, &input, false);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(agent(&isolate, sandbox.id), None);
    let cold = run_as_caller(&isolate, &args, &input, false);
    let cold_meta = verdict_lines(&fs::read_to_string(&meta).unwrap());
    let cold_mode = fs::metadata(&meta).unwrap().permissions().mode() & 0o777;
    fs::remove_file(&meta).unwrap();
    assert_eq!(cold.status.code(), Some(1), "{cold:?}");
    assert_eq!(String::from_utf8_lossy(&cold.stdout), "hello bar kept\n");
    assert_eq!(cold_mode, 0o600, "the caller's umask");

    // The agent again, then the same run through the front.
    assert_eq!(sandbox.run(&[], &["/bin/true"]).0.code, 0);
    assert!(agent(&isolate, sandbox.id).is_some());
    let warm = run_as_caller(&isolate, &args, &input, true);
    assert_eq!(warm.status.code(), Some(1), "{warm:?}");
    assert_eq!(warm.stdout, cold.stdout, "{warm:?}");
    assert_eq!(warm.stderr, cold.stderr, "{warm:?}");
    assert_eq!(
        verdict_lines(&fs::read_to_string(&meta).unwrap()),
        cold_meta
    );
    assert_eq!(
        fs::metadata(&meta).unwrap().permissions().mode() & 0o777,
        cold_mode
    );
}

/// The front door hands a run only to a root listener: with a socket at
/// the agent's place whose listener is not root (the directory is root's,
/// so only root could put one there; this test is root), the front sends
/// nothing and the ordinary path runs the command (here stopped at
/// glibc's start-up by the filter, which is the proof).
#[test]
fn the_front_door_talks_only_to_a_root_listener() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(65, 9), true);
    let agents = isolate.root().join("locks/agents");
    fs::create_dir_all(&agents).unwrap();
    let path = agents.join(format!("{}.sock", sandbox.id));
    let mut impostor = common::impostor_listener(&path);
    fs::write(isolate.root().join("input"), "").unwrap();
    let mut forwarded = {
        let filter = common::killed_at_glibc_start();
        let mut command = isolate.command();
        command.args(sandbox.with_box(&["--run", "--", "/bin/true"]));
        // SAFETY: apply_filter makes two system calls, on a program built
        // before the fork.
        unsafe {
            command.pre_exec(move || {
                seccompiler::apply_filter(&filter).map_err(std::io::Error::other)
            });
        }
        command.spawn().unwrap()
    };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = forwarded.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = forwarded.kill();
            let _ = forwarded.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = impostor.kill();
    let _ = impostor.wait();
    let status = status.expect("the front waited on a listener that is not root");
    assert_eq!(status.signal(), Some(libc::SIGSYS), "{status:?}");
}
