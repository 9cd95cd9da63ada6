//! Hostile programs against the process side of a run: the caller's
//! terminal (keystroke injection), rlimits inherited from the keeper,
//! processes left behind to hide CPU time without cgroups, a faked time
//! limit, an output flood under the library's default configuration, and a
//! caller without the privileges for isolation.
//!
//! The isolate-face tests use box ids of slot 86 (860–869) of the table in
//! `tests/isolate_support/mod.rs`.

mod common;
mod isolate_support;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    assert_self_signaled, assert_status, hostile, program, skip_unless_privileged, Brief, TestBox,
};
use isobox::{ExecutionStatus, IsolateConfig, Protection};
use isolate_support::{slot_id, CmsLog, Isolate};

/// A pseudo-terminal as (master, slave), the slave in raw mode without
/// echo, so anything pushed into its input queue can be read back at once
/// and nothing the program types shows up on the master.
fn raw_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the other pointers may be null.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty succeeded; both descriptors are ours alone.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: termios is plain data filled by tcgetattr before use.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut mode), 0);
        libc::cfmakeraw(&mut mode);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &mode), 0);
    }
    (master, slave)
}

/// Everything readable on `fd` right now, without blocking.
fn drain(fd: &OwnedFd) -> String {
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let mut entry = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut entry, 1, 100) };
        if ready <= 0 || entry.revents & libc::POLLIN == 0 {
            break;
        }
        // SAFETY: reads into a buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
        if n <= 0 {
            break;
        }
        text.extend_from_slice(&buffer[..n as usize]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Makes `command` a session leader whose controlling terminal is its
/// stdin, as a login shell and what it starts are: the caller's terminal.
fn on_own_terminal(command: &mut Command, terminal: &OwnedFd) {
    let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the terminal"));
    command
        .stdin(io(terminal))
        .stdout(io(terminal))
        .stderr(io(terminal));
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Attack: push "echo INJECTED\n" into the caller's terminal with TIOCSTI
/// through `isolate --run`, whose stdio is the caller's own terminal (a
/// root shell would run the line after isolate exits). The terminal's input
/// queue must stay empty; the program has no controlling terminal.
#[test]
fn tiocsti_through_the_isolate_face() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let guard = isolate.open_box(slot_id(86, 0), false);
    let tty = guard.install(&hostile("tty"), "tty");
    let (master, slave) = raw_pty();
    let meta = isolate.root().join("meta-tty");
    let mut command = isolate.command();
    command.args(guard.with_box(&[
        &format!("--meta={}", meta.display()),
        "-t",
        "2",
        "-w",
        "10",
        "--run",
        "--",
        &tty,
        "steal",
    ]));
    on_own_terminal(&mut command, &slave);
    let status = command.status().expect("running isolate");
    let typed = drain(&slave);
    let shown = drain(&master);
    assert_eq!(
        typed, "",
        "reached the caller's terminal; output: {shown:?}"
    );
    assert!(!shown.contains("tiocsti: SUCCEEDED"), "{shown:?}");
    assert!(!shown.contains("tiocsctty: SUCCEEDED"), "{shown:?}");
    // The filter may refuse TIOCSTI outright (then the program ends with
    // SIGSYS before its next line); without it the kernel refuses it.
    assert!(shown.contains("ctty: none\n"), "{shown:?} ({status})");
    let log = CmsLog::parse(&std::fs::read_to_string(&meta).expect("meta file"));
    assert_ne!(log.get("status"), Some("XX"), "{shown:?}");
}

/// Attack: the same through `isobox run --no-seccomp` (the library's
/// path, no system-call filter): with stdin the caller's terminal and
/// TIOCSTI allowed by the filter, only the missing controlling terminal
/// stops it. Leaving for a new session and stealing the terminal fails too.
#[test]
fn tiocsti_without_seccomp() {
    skip_unless_privileged!();
    let tty = hostile("tty");
    let tty = std::path::Path::new(&tty);
    let programs = tty.parent().expect("the programs directory");
    let (master, slave) = raw_pty();
    let mut command = Command::new(env!("CARGO_BIN_EXE_isobox"));
    command.arg("run").args(common::cgroup_run_args()).args([
        "--no-seccomp",
        "--json",
        "--time",
        "2",
        "--stdin",
        "/dev/tty",
        "--dir",
        &format!("/progs={}", programs.display()),
        "--",
        &format!("/progs/{}", tty.file_name().unwrap().to_string_lossy()),
        "steal",
    ]);
    on_own_terminal(&mut command, &slave);
    // The JSON report comes through a pipe, not the terminal.
    command.stdout(Stdio::piped());
    let output = command.output().expect("running isobox");
    let typed = drain(&slave);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the JSON report");
    let stdout = json["stdout"].as_str().unwrap_or_default();
    assert_eq!(typed, "", "reached the caller's terminal: {json}");
    assert_eq!(
        stdout,
        "ctty: none\ntiocsti: EPERM\nsetsid: SUCCEEDED\ntiocsctty: EPERM\n\
         tiocsti after steal: EPERM\n",
        "{json}"
    );
    assert_eq!(
        json["absent_protections"],
        common::absent_protections_json(&[Protection::Seccomp])
    );
    drop(master);
}

/// `--tty-hack` keeps the terminal on purpose, as isolate does: the program
/// has it as its controlling terminal and is its foreground group, and
/// afterwards the caller's group is the foreground group again.
#[test]
fn tty_hack_lends_the_terminal_and_takes_it_back() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let guard = isolate.open_box(slot_id(86, 1), false);
    let tty = guard.install(&hostile("tty"), "tty");
    let (master, slave) = raw_pty();
    // A shell owns the terminal, runs isolate in its own process group and
    // then says which group the terminal's foreground is.
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(
            "\"$0\" -b \"$1\" -t 2 -w 10 --tty-hack --run -- \"$2\" hack; \
             echo fg $(cut -d' ' -f5,8 /proc/$$/stat)",
        )
        .arg(&isolate.link)
        .arg(guard.id.to_string())
        .arg(&tty)
        .env("ISOBOX_CONFIG", &isolate.config)
        .current_dir(isolate.root());
    on_own_terminal(&mut command, &slave);
    let status = command.status().expect("running sh");
    let shown = drain(&master);
    assert!(status.success(), "{shown:?}");
    assert!(shown.contains("ctty: yes\nforeground: yes\n"), "{shown:?}");
    let groups: Vec<&str> = shown
        .lines()
        .find_map(|line| line.strip_prefix("fg "))
        .unwrap_or_else(|| panic!("no fg line in {shown:?}"))
        .split_whitespace()
        .collect();
    assert_eq!(groups.len(), 2, "{shown:?}");
    assert_eq!(
        groups[0], groups[1],
        "the shell's group is not the foreground"
    );
}

/// The rlimits a program gets, from `/proc/self/limits` as printed by
/// `cat` in a box of `isobox run` whose keeper was started with generous
/// limits and a raised priority. (Where root lacks `CAP_SYS_RESOURCE`, as
/// in some containers, the keeper's limits are raised only as far as its
/// hard limits go.)
#[test]
fn rlimits_are_set_not_inherited() {
    skip_unless_privileged!();
    let mut command = Command::new(env!("CARGO_BIN_EXE_isobox"));
    command.args(["run", "--json", "--time", "2", "--", "/bin/sh", "-c"]);
    command.arg("cat /proc/self/limits; cut -d' ' -f19 /proc/self/stat");
    // SAFETY: setrlimit and setpriority are async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let generous = [
                (libc::RLIMIT_MEMLOCK, libc::RLIM_INFINITY),
                (libc::RLIMIT_MSGQUEUE, libc::RLIM_INFINITY),
                (libc::RLIMIT_NICE, 40),
                (libc::RLIMIT_RTPRIO, 99),
                (libc::RLIMIT_SIGPENDING, 1 << 20),
                (libc::RLIMIT_NOFILE, 1 << 16),
                (libc::RLIMIT_CORE, libc::RLIM_INFINITY),
            ];
            for (resource, value) in generous {
                let limit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    let mut limit = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(resource, &mut limit);
                    limit.rlim_cur = limit.rlim_max;
                    if libc::setrlimit(resource, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            if libc::setpriority(libc::PRIO_PROCESS, 0, -5) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().expect("running isobox");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the JSON report");
    assert_eq!(json["status"], "Success", "{json}");
    let text = json["stdout"].as_str().expect("stdout");
    let limits: BTreeMap<&str, (String, String)> = text
        .lines()
        .filter_map(|line| {
            let name = line.get(..26)?.trim();
            let mut values = line.get(26..)?.split_whitespace();
            Some((
                name,
                (values.next()?.to_string(), values.next()?.to_string()),
            ))
        })
        .collect();
    let expect = |name: &str, soft: &str, hard: &str| {
        assert_eq!(
            limits.get(name),
            Some(&(soft.to_string(), hard.to_string())),
            "{name} in {text}"
        );
    };
    expect("Max locked memory", "0", "0");
    expect("Max msgqueue size", "0", "0");
    expect("Max nice priority", "0", "0");
    expect("Max realtime priority", "0", "0");
    expect("Max pending signals", "256", "256");
    expect("Max open files", "1024", "4096");
    expect("Max core file size", "0", "0");
    // Soft = hard: the kernel sends no SIGXCPU (review 3, finding 2).
    expect("Max cpu time", "3", "3");
    expect("Max data size", "unlimited", "unlimited");
    // The nice value (field 19 of stat): the keeper's -5 is not passed on.
    assert_eq!(text.lines().last(), Some("0"), "{text}");
}

/// Attack (without cgroups): a parent forks three workers that burn 0.6 s
/// of CPU each and exits while they pause, so nobody in the box waits for
/// them. Under a 1 s limit the run used 1.8 s: a time limit, and the CPU
/// time says so. The workers are gone afterwards. With a PID namespace the
/// proxy kills them as pid 1; without one, as their subreaper.
#[test]
fn orphans_cannot_hide_cpu_time_without_cgroups() {
    skip_unless_privileged!();
    for namespaces in [true, false] {
        let mut test_box = TestBox::hostile();
        test_box.config.use_cgroups = false;
        test_box.config.namespaces = namespaces;
        test_box.config.time_limit = Some(Duration::from_secs(1));
        test_box.config.wall_time_limit = Some(Duration::from_secs(30));
        let orphans = test_box.install(&hostile("orphans"));
        let result = test_box.run_hostile(&[&orphans, "600"]);
        let what = format!("namespaces {namespaces}: {:?}", Brief(&result));
        assert_eq!(result.stdout, "workers done: 3\n", "{what}");
        assert_eq!(result.status, ExecutionStatus::TimeLimit, "{what}");
        assert!(result.cpu_time >= 1.7, "{what}");
        assert!(!result.killed, "{what}");
        assert!(
            result.absent_protections.contains(&Protection::Cgroup),
            "{what}"
        );
        test_box.remove();
    }
}

/// The same attack through the isolate face without `--cg`.
#[test]
fn orphans_cannot_hide_cpu_time_from_isolate() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let guard = isolate.open_box(slot_id(86, 2), false);
    let orphans = guard.install(&hostile("orphans"), "orphans");
    let (outcome, meta) = guard.run(
        &["-t", "1", "-w", "30", "--processes=8"],
        &[&orphans, "600"],
    );
    let log = CmsLog::parse(&meta);
    assert_eq!(log.get("status"), Some("TO"), "{outcome:?}\n{meta}");
    assert!(log.time() >= 1.7, "{meta}");
    assert_eq!(log.get("killed"), None, "{meta}");
}

/// Attack: fake a time limit with `kill -XCPU $$` after no CPU time at all,
/// through the library (with and without a cgroup).
#[test]
fn self_sent_sigxcpu_is_no_time_limit() {
    skip_unless_privileged!();
    for use_cgroups in [true, false] {
        let mut test_box = TestBox::hostile();
        test_box.config.use_cgroups = use_cgroups;
        test_box.config.time_limit = Some(Duration::from_secs(1));
        let result = test_box.run_hostile(&["/bin/sh", "-c", "kill -XCPU $$"]);
        eprintln!("cgroups: {use_cgroups}");
        assert_self_signaled(&result, libc::SIGXCPU);
        test_box.remove();
    }
}

/// The same through the isolate face: `SG`, signal 24, no `killed:1`.
#[test]
fn self_sent_sigxcpu_is_no_time_limit_for_isolate() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    for (index, cg) in [(3, false), (4, true)] {
        let guard = isolate.open_box(slot_id(86, index), cg);
        let (outcome, meta) = guard.run(&["-t", "1"], &["/bin/sh", "-c", "kill -XCPU $$"]);
        let log = CmsLog::parse(&meta);
        assert_eq!(log.get("status"), Some("SG"), "{outcome:?}\n{meta}");
        assert_eq!(log.get("exitsig"), Some("24"), "{meta}");
        assert_eq!(log.get("killed"), None, "{meta}");
    }
}

/// Attack: flood stdout under the library's default configuration (only
/// the box's own limits set): the keeper keeps at most the default output
/// limit, not everything the program writes.
#[test]
fn flood_with_the_default_output_limit() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let default = IsolateConfig::default().output_limit;
    assert_eq!(default, Some(isobox::config::DEFAULT_OUTPUT_LIMIT));
    test_box.config.output_limit = default;
    test_box.config.time_limit = Some(Duration::from_secs(10));
    test_box.config.wall_time_limit = Some(Duration::from_secs(30));
    let flood = test_box.install(&program("flood"));
    let bytes = (isobox::config::DEFAULT_OUTPUT_LIMIT * 3).to_string();
    let result = test_box.run_hostile(&[&flood, "out", &bytes]);
    assert_status(&result, ExecutionStatus::OutputLimit);
    assert_eq!(
        result.stdout.len() as u64,
        isobox::config::DEFAULT_OUTPUT_LIMIT
    );
    assert_eq!(
        result.stdout_dropped,
        isobox::config::DEFAULT_OUTPUT_LIMIT * 2,
        "{:?}",
        Brief(&result)
    );
    test_box.remove();
}

/// `isobox run` as uid 65534 with `command`'s arguments.
fn isobox_as_nobody(args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_isobox"));
    command
        .args(args)
        .current_dir("/")
        .env("TMPDIR", "/tmp")
        .stdin(Stdio::null());
    // SAFETY: setgroups, setgid and setuid are async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().expect("running isobox as nobody")
}

/// Attack (on the operator): run `isobox run` as a user without root. Where
/// the kernel allows user namespaces (here) the box is rootless: the
/// program runs isolated, as uid 1000 inside, sees none of the host's
/// files, and the result names what it went without (no cgroup, no uid of
/// its own); `--unisolated` changes nothing where isolation is possible.
/// (tests/rootless.rs attacks rootless boxes in depth.)
#[test]
fn non_root_gets_a_rootless_box() {
    skip_unless_privileged!();
    let marker = format!("/tmp/isobox-unisolated-{}", std::process::id());
    let script = format!("touch {marker}; id -u");
    for extra in [&[][..], &["--unisolated"][..]] {
        let mut args = vec!["run", "--json", "--time", "2"];
        args.extend_from_slice(extra);
        args.extend(["--", "/bin/sh", "-c", &script]);
        let output = isobox_as_nobody(&args);
        let marker_on_host = std::fs::symlink_metadata(&marker).is_ok();
        let _ = std::fs::remove_file(&marker);
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!(
                "{extra:?}: no JSON report: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert_eq!(json["status"], "Success", "{extra:?}: {json}");
        assert_eq!(json["stdout"], "1000\n", "{extra:?}: {json}");
        assert_eq!(
            json["absent_protections"],
            serde_json::json!(["cgroup", "separate_user"]),
            "{extra:?}: {json}"
        );
        assert!(
            !marker_on_host,
            "{extra:?}: the program wrote the host's /tmp"
        );
    }
}

/// A fully isolated run lists nothing as absent.
#[test]
fn isolated_runs_lack_nothing() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let result = test_box.run(&["/bin/true"]);
    assert_eq!(result.status, ExecutionStatus::Success, "{:?}", result);
    assert_eq!(result.absent_protections, common::absent_protections(&[]));
    test_box.remove();
}
