//! The installation's service: a root caller's `--init` and `--cleanup`
//! are handed whole, before the C library starts, to one resident process
//! per installation (`src/cli/isolate/service.rs`). What a caller sees must
//! not change: the same output, exit status, files, modes, owners and
//! meta file as the command line's own; whatever the service would not do
//! identically goes the ordinary way; it serves root only, one runs per
//! installation, and it leaves when told to.
//!
//! A command run under a seccomp filter that kills at glibc's first
//! `arch_prctl` gets through only if it never started the C library: it
//! was carried out by the service. Run as root (privileged tests).

mod common;
mod isolate_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{
    died_at_glibc_start, eventually, installation_services, skip_unless_privileged, Caller,
    FILTERED,
};
use isolate_support::{slot_id, Isolate};

/// Runs `program args` as `caller`, with `isolate`'s configuration (or
/// `config`) and from its root directory.
fn invoke(
    isolate: &Isolate,
    program: &Path,
    config: &Path,
    args: &[&str],
    caller: Caller,
) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .env("ISOBOX_CONFIG", config)
        .current_dir(isolate.root())
        .stdin(std::process::Stdio::null());
    caller.apply(&mut command);
    command.output().expect("running isolate")
}

fn isolate_as(isolate: &Isolate, args: &[&str], caller: Caller) -> Output {
    invoke(isolate, &isolate.link, &isolate.config, args, caller)
}

/// Output and status with the installation's own directory written as
/// `ROOT`, to compare two installations.
fn seen(isolate: &Isolate, output: &Output) -> (Option<i32>, String, String) {
    seen_in(&[isolate.root()], output)
}

/// [`seen`], with each of `roots` written as `ROOT`.
fn seen_in(roots: &[&Path], output: &Output) -> (Option<i32>, String, String) {
    let text = |bytes: &[u8]| {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        for root in roots {
            text = text.replace(&root.display().to_string(), "ROOT");
        }
        text
    };
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// Mode and owner of `path`, or `None` when it is not there.
fn mode_and_owner(path: &Path) -> Option<(u32, u32, u32)> {
    let meta = fs::symlink_metadata(path).ok()?;
    Some((meta.mode() & 0o7777, meta.uid(), meta.gid()))
}

/// The one service of `isolate`'s installation, started by an ordinary
/// `--init` of box `id` (cleaned up again) if none runs yet.
fn started_service(isolate: &Isolate, id: u32) -> i32 {
    if installation_services(&isolate.config).is_empty() {
        let sandbox = isolate.open_box(id, false);
        drop(sandbox);
    }
    let services = installation_services(&isolate.config);
    assert_eq!(
        services.len(),
        1,
        "one service per installation: {services:?}"
    );
    services[0]
}

/// `--init` and `--cleanup` carried out by the service are the command
/// line's: compared with an installation that keeps no resident helper
/// (`box_agent = 0`), the same output, status, directories (their modes
/// under the caller's umask, their owners with `--as-uid`), state, and the
/// meta file of a failure at the caller's relative path.
#[test]
fn init_and_cleanup_by_the_service_are_the_command_lines() {
    skip_unless_privileged!();
    let served = Isolate::new();
    let ordinary = Isolate::with_extra_config("box_agent = 0\n");
    let id = slot_id(81, 0);
    let box_arg = id.to_string();
    let _guards = (served.adopt_box(id, true), ordinary.adopt_box(id, true));
    started_service(&served, slot_id(81, 1));
    let cleanup = ["-b", box_arg.as_str(), "--cleanup"];
    let cases: Vec<(Vec<&str>, Caller)> = vec![
        (vec!["--cg", "-b", &box_arg, "--init"], Caller::default()),
        (
            vec!["--cg", "-b", &box_arg, "-v", "--init"],
            Caller::default(),
        ),
        (cleanup.to_vec(), Caller::default()),
        (cleanup.to_vec(), Caller::default()),
        (
            vec!["-b", &box_arg, "--init"],
            Caller {
                umask: Some(0o077),
                ..Caller::default()
            },
        ),
        (
            vec!["-b", &box_arg, "--as-uid=63811", "--as-gid=63812", "--init"],
            Caller::default(),
        ),
        (
            vec!["-b", &box_arg, "-q", "2048,100", "--init"],
            Caller::default(),
        ),
        (cleanup.to_vec(), Caller::default()),
    ];
    for (args, caller) in cases {
        let by_service = isolate_as(
            &served,
            &args,
            Caller {
                filtered: true,
                ..caller.clone()
            },
        );
        let by_command_line = isolate_as(&ordinary, &args, caller);
        assert!(
            !died_at_glibc_start(&by_service),
            "{args:?} was not served: {by_service:?}"
        );
        assert_eq!(
            seen(&served, &by_service),
            seen(&ordinary, &by_command_line),
            "{args:?}"
        );
        for (path, other) in [
            (
                served.box_root.join(&box_arg),
                ordinary.box_root.join(&box_arg),
            ),
            (
                served.box_root.join(&box_arg).join("box"),
                ordinary.box_root.join(&box_arg).join("box"),
            ),
        ] {
            assert_eq!(
                mode_and_owner(&path),
                mode_and_owner(&other),
                "{args:?}: {path:?}"
            );
        }
        let state = |isolate: &Isolate| {
            fs::read_to_string(isolate.box_root.join(&box_arg).join(".isobox-state")).ok()
        };
        assert_eq!(state(&served), state(&ordinary), "{args:?}");
    }

    // A failure after the box is locked: its message, and the meta file at
    // the caller's relative path (written in the caller's directory).
    let file = |isolate: &Isolate| {
        let path = isolate.root().join("not-a-directory");
        fs::write(&path, "").unwrap();
        Isolate::with_extra_config(&format!("box_root = {}\n", path.display()))
    };
    let (served_broken, ordinary_broken) = (file(&served), file(&ordinary));
    // The broken installation needs its own service (another file).
    let other = slot_id(81, 2).to_string();
    let args = ["-b", other.as_str(), "-M", "relative-meta", "--cleanup"];
    let _ = invoke(
        &served_broken,
        &served_broken.link,
        &served_broken.config,
        &args,
        Caller::default(),
    );
    fs::remove_file(served_broken.root().join("relative-meta")).unwrap();
    let by_service = invoke(
        &served_broken,
        &served_broken.link,
        &served_broken.config,
        &args,
        FILTERED,
    );
    let by_command_line = invoke(
        &ordinary_broken,
        &ordinary_broken.link,
        &ordinary_broken.config,
        &args,
        Caller::default(),
    );
    assert!(!died_at_glibc_start(&by_service), "{by_service:?}");
    assert_eq!(by_service.status.code(), Some(2), "{by_service:?}");
    // The two installations' roots differ; each names its own.
    assert_eq!(
        seen_in(&[served.root(), served_broken.root()], &by_service),
        seen_in(&[ordinary.root(), ordinary_broken.root()], &by_command_line)
    );
    let meta = |isolate: &Isolate, roots: &[&Path]| {
        let mut text = fs::read_to_string(isolate.root().join("relative-meta")).unwrap();
        for root in roots {
            text = text.replace(&root.display().to_string(), "ROOT");
        }
        text
    };
    let served_meta = meta(&served_broken, &[served.root(), served_broken.root()]);
    assert!(served_meta.starts_with("status:XX\n"), "{served_meta}");
    assert_eq!(
        served_meta,
        meta(&ordinary_broken, &[ordinary.root(), ordinary_broken.root()])
    );
}

/// What the service would not do exactly as the command line does goes
/// the ordinary way (stopped by the filter here, which is the proof; run
/// again without it, it does what the command line does): a busy box, a
/// caller in another mount namespace (whose paths may name other files),
/// another configuration file naming the same lock root, another program
/// name (which starts every message), a caller whose real group is not
/// root's (the owner of a box it makes), logs asked for (`ISOBOX_LOG`).
#[test]
fn what_the_service_would_not_do_identically_goes_the_ordinary_way() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(81, 3);
    let box_arg = id.to_string();
    let _guard = isolate.adopt_box(id, false);
    started_service(&isolate, slot_id(81, 4));
    let init = ["-b", box_arg.as_str(), "--init"];

    let other_config = isolate.root().join("same-installation.conf");
    fs::copy(&isolate.config, &other_config).unwrap();
    let renamed = isolate.root().join("isolate-renamed");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_isobox"), &renamed).unwrap();
    // Logs asked for: the command's own process writes them.
    let mut logged = Command::new(&isolate.link);
    logged
        .args(init)
        .env("ISOBOX_CONFIG", &isolate.config)
        .env("ISOBOX_LOG", "debug");
    let filter = common::killed_at_glibc_start();
    // SAFETY: apply_filter makes two system calls, on a program built
    // before the fork.
    unsafe {
        logged.pre_exec(move || seccompiler::apply_filter(&filter).map_err(std::io::Error::other));
    }
    assert!(
        died_at_glibc_start(&logged.output().unwrap()),
        "logs asked for"
    );

    let declined = [
        (
            "another mount namespace",
            &isolate.link,
            &isolate.config,
            Caller {
                own_mount_namespace: true,
                ..FILTERED
            },
        ),
        (
            "another configuration file",
            &isolate.link,
            &other_config,
            FILTERED,
        ),
        ("another program name", &renamed, &isolate.config, FILTERED),
        (
            "another real group",
            &isolate.link,
            &isolate.config,
            Caller {
                group: Some(1),
                ..FILTERED
            },
        ),
    ];
    for (why, program, config, caller) in declined {
        let output = invoke(&isolate, program, config, &init, caller.clone());
        assert!(died_at_glibc_start(&output), "{why}: {output:?}");
        let output = invoke(
            &isolate,
            program,
            config,
            &init,
            Caller {
                filtered: false,
                ..caller
            },
        );
        assert_eq!(output.status.code(), Some(0), "{why}: {output:?}");
    }

    // A box whose lock another process holds: the command line reports it
    // (or waits, with --wait).
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(isolate.root().join("locks").join(&box_arg))
        .unwrap();
    lock.lock().unwrap();
    let output = isolate_as(&isolate, &init, FILTERED);
    assert!(died_at_glibc_start(&output), "busy: {output:?}");
    let output = isolate_as(&isolate, &init, Caller::default());
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--wait"),
        "{output:?}"
    );
    drop(lock);
    let output = isolate_as(&isolate, &["-b", box_arg.as_str(), "--cleanup"], FILTERED);
    assert!(output.status.success(), "{output:?}");
}

/// One service per installation, however many callers start one at once;
/// it runs as root from `/` with nothing of its starter's, behind a
/// directory only root can enter; it leaves on `SIGTERM` with its socket,
/// and one that was killed is replaced by the next command, which the
/// command line carries out meanwhile.
#[test]
fn one_service_per_installation_and_it_leaves_when_told() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let ids: Vec<String> = (0..5).map(|index| slot_id(82, index).to_string()).collect();
    let _guards: Vec<_> = (0..5)
        .map(|index| isolate.adopt_box(slot_id(82, index), false))
        .collect();
    let service = started_service(&isolate, slot_id(82, 0));
    let status = fs::read_to_string(format!("/proc/{service}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|line| line.starts_with("Uid:\t0\t0\t0\t0")),
        "{status}"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{service}/cwd")).unwrap(),
        Path::new("/")
    );
    assert_eq!(fs::read(format!("/proc/{service}/environ")).unwrap(), b"");
    let agents = isolate.root().join("locks/agents");
    assert_eq!(
        fs::metadata(&agents).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let socket: PathBuf = agents.join("service.sock");
    assert!(socket.exists());

    // Killed: the next commands take the ordinary path, and the first of
    // them to finish starts the next service; callers at once start one.
    unsafe_kill(service, libc::SIGKILL);
    eventually("the killed service gone", || {
        !Path::new(&format!("/proc/{service}")).exists()
    });
    let callers: Vec<_> = ids
        .iter()
        .map(|id| {
            isolate
                .command()
                .args(["-b", id, "--init"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut caller in callers {
        assert!(caller.wait().unwrap().success());
    }
    let services = installation_services(&isolate.config);
    assert_eq!(services.len(), 1, "{services:?}");
    assert_ne!(services[0], service);
    for id in &ids {
        let output = isolate_as(&isolate, &["-b", id, "--cleanup"], FILTERED);
        assert!(output.status.success(), "{output:?}");
        assert!(!isolate.box_root.join(id).exists());
    }

    // SIGTERM: gone, its socket with it.
    unsafe_kill(services[0], libc::SIGTERM);
    eventually("the service gone", || {
        installation_services(&isolate.config).is_empty()
    });
    assert!(!socket.exists(), "the socket outlived the service");
}

fn unsafe_kill(pid: i32, signal: i32) {
    // SAFETY: signals a process this test's installation started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// The front hands `--init` only to a root listener, and the service
/// serves only root: a socket at the service's place listened on by
/// `nobody` gets nothing (the command goes the ordinary way, stopped by
/// the filter, and does not hang), and a forwarded `--init` sent by
/// `nobody` to the real service (its directory opened to others for the
/// test) is not carried out.
#[test]
fn the_service_and_the_front_trust_only_root() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(82, 5).to_string();
    let _guard = isolate.adopt_box(slot_id(82, 5), false);
    let service = started_service(&isolate, slot_id(82, 6));
    let agents = isolate.root().join("locks/agents");
    let path = agents.join("service.sock");

    // A forwarded --init from nobody: header, arguments, environment.
    let config = isolate.config.display().to_string();
    let message = common::forwarded_message(
        &["isolate", "-b", &id, "--init"],
        &[&format!("ISOBOX_CONFIG={config}")],
    );
    let directory = fs::File::open(isolate.root()).unwrap();
    fs::set_permissions(&agents, fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
    let status = common::forward_as_nobody(&path, message, &directory);
    fs::set_permissions(&agents, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(
        matches!(status.code(), Some(0 | 5)),
        "the service answered nobody, or the test could not ask: {status:?}"
    );
    assert!(
        !isolate.box_root.join(&id).exists(),
        "the service made a box for nobody"
    );
    assert_eq!(installation_services(&isolate.config), vec![service]);

    // An impostor listening at the service's place.
    common::stop_installation_service(&isolate.config);
    let _ = fs::remove_file(&path);
    let mut impostor = common::impostor_listener(&path);
    let started = Instant::now();
    let output = isolate_as(&isolate, &["-b", &id, "--init"], FILTERED);
    let _ = impostor.kill();
    let _ = impostor.wait();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the front waited"
    );
    assert!(died_at_glibc_start(&output), "{output:?}");
    let _ = fs::remove_file(&path);
}

/// The service reads the configuration again when its file changes, as
/// every command line does: a box made after `box_root` moved is in the
/// new place.
#[test]
fn a_changed_configuration_is_read_again() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(81, 8);
    let _guard = isolate.adopt_box(id, false);
    started_service(&isolate, slot_id(81, 9));
    let moved = isolate.root().join("moved-boxes");
    let text = fs::read_to_string(&isolate.config).unwrap();
    fs::write(
        &isolate.config,
        format!("{text}box_root = {}\n", moved.display()),
    )
    .unwrap();
    let box_arg = id.to_string();
    let output = isolate_as(&isolate, &["-b", &box_arg, "--init"], FILTERED);
    assert!(output.status.success(), "{output:?}");
    let made = moved.join(&box_arg);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", made.display())
    );
    assert!(made.join("box").is_dir());
    assert!(!isolate.box_root.join(&box_arg).exists());
    let output = isolate_as(&isolate, &["-b", &box_arg, "--cleanup"], FILTERED);
    assert!(output.status.success(), "{output:?}");
    assert!(!made.exists());
}

/// A caller that connects and never sends its command (a front stopped
/// between the two, say) holds the service up for a second at most: the
/// next caller is served.
#[test]
fn a_silent_caller_does_not_hold_up_the_next() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(82, 7);
    let _guard = isolate.adopt_box(id, false);
    started_service(&isolate, slot_id(82, 8));
    let silent = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        None,
    )
    .unwrap();
    let socket = isolate.root().join("locks/agents/service.sock");
    rustix::net::connect(&silent, &rustix::net::SocketAddrUnix::new(&socket).unwrap()).unwrap();
    let filter = common::killed_at_glibc_start();
    let mut command = isolate.command();
    command.args(["-b", &id.to_string(), "--init"]);
    // SAFETY: apply_filter makes two system calls, on a program built
    // before the fork.
    unsafe {
        command.pre_exec(move || seccompiler::apply_filter(&filter).map_err(std::io::Error::other));
    }
    let mut caller = command.stdout(std::process::Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = caller.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = caller.kill();
            let _ = caller.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(silent);
    let status = status.expect("the next caller waited on the silent one");
    assert!(status.success(), "{status:?}");
    assert!(isolate.box_root.join(id.to_string()).join("box").is_dir());
}

/// Every spare process of the installation (see
/// [`common::is_spare_process`]): its spare agents, their holders, and
/// anything a holder starts (a run's process has the holder's name and
/// command line until its exec).
fn spare_processes(isolate: &Isolate) -> Vec<i32> {
    common::installation_processes(&isolate.config)
        .into_iter()
        .filter(|&pid| common::is_spare_process(pid))
        .collect()
}

/// The installation's spare agents not given a box yet, or given one
/// (their command line stays the spare's): of the [`spare_processes`],
/// the service's children.
fn spare_agents(isolate: &Isolate) -> Vec<i32> {
    let services = common::installation_services(&isolate.config);
    spare_processes(isolate)
        .into_iter()
        // The fourth field of /proc/<pid>/stat: the parent.
        .filter(|&pid| {
            stat_field(pid, 1)
                .is_some_and(|up| services.iter().any(|&service| i64::from(service) == up))
        })
        .collect()
}

/// Field `index` of `/proc/<pid>/stat` counted from the one after the
/// command name (0 is the state).
fn stat_field(pid: i32, index: usize) -> Option<i64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat_fields(&stat, &[index])?[0])
}

/// Fields `indices` of a `/proc/<pid>/stat` line, counted as in
/// [`stat_field`].
fn stat_fields(stat: &str, indices: &[usize]) -> Option<Vec<i64>> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    indices
        .iter()
        .map(|&index| fields.get(index)?.parse().ok())
        .collect()
}

/// The nineteenth field of /proc/<pid>/stat, as [`stat_field`] counts.
const NICE: usize = 16;
/// The forty-first: the scheduling policy.
const POLICY: usize = 38;
const SCHED_OTHER: i64 = 0;

fn nice(pid: i32) -> Option<i64> {
    stat_field(pid, NICE)
}

fn policy(pid: i32) -> Option<i64> {
    stat_field(pid, POLICY)
}

/// The installation's one spare agent, once its box is built (its holder
/// has the box's filesystem), after the service was started.
fn ready_spare(isolate: &Isolate) -> i32 {
    ready_spare_besides(isolate, &[])
}

/// [`ready_spare`], not counting the agents `given` a box.
fn ready_spare_besides(isolate: &Isolate, given: &[i32]) -> i32 {
    let mut ready = None;
    eventually("a spare agent with its box built", || {
        let mut spares = spare_agents(isolate);
        spares.retain(|spare| !given.contains(spare));
        let [spare] = spares[..] else {
            return false;
        };
        let holder = fs::read_to_string(format!("/proc/{spare}/task/{spare}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .find_map(|pid| pid.parse::<i32>().ok());
        let built = holder.is_some_and(|holder| {
            fs::read_to_string(format!("/proc/{holder}/mountinfo"))
                .is_ok_and(|mounts| mounts.contains(" /tmp ") && mounts.contains(" /dev/shm "))
        });
        ready = Some(spare);
        built
    });
    // Built is a moment before ready: the spare says so just after.
    std::thread::sleep(Duration::from_millis(100));
    ready.unwrap()
}

/// Where a spare agent's box lives: its cgroup in every hierarchy, and its
/// stand-in directory.
fn spare_leftovers(isolate: &Isolate, spare: i32) -> Vec<PathBuf> {
    let config = isobox::boxes::BoxesConfig::load(&isolate.config).unwrap();
    let placement = config.cgroup_placement().unwrap();
    placement
        .parent_dirs()
        .into_iter()
        .map(|dir| dir.join(format!("spare-{spare}")))
        .chain([isolate.root().join(format!("locks/agents/spare-{spare}"))])
        .filter(|path| path.exists())
        .collect()
}

/// A box the service initializes with `--cg` gets the spare agent's box,
/// built before, when its first caller comes (a box cleaned up without a
/// run leaves the spare for the next): its first run is a warm one in the
/// spare's cgroup, as the box's user, in the box's own directory, and sees
/// nothing of the spare's stand-in or of the agents' directory. The box's cleanup takes the
/// spare down with everything of it, and the service has built the next.
#[test]
fn a_box_the_service_initializes_runs_first_in_a_spare() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(84, 0);
    let box_arg = id.to_string();
    let guard = isolate.adopt_box(id, true);
    started_service(&isolate, slot_id(84, 1));
    let spare = ready_spare(&isolate);
    assert!(!spare_leftovers(&isolate, spare).is_empty());
    // A box initialized and cleaned up without a run leaves the spare as
    // it was, and nothing listening for the box.
    let socket = isolate.root().join(format!("locks/agents/{id}.sock"));
    for action in ["--init", "--cleanup"] {
        let output = isolate_as(&isolate, &["--cg", "-b", &box_arg, action], FILTERED);
        assert!(output.status.success(), "{output:?}");
    }
    assert!(!socket.exists());
    assert_eq!(spare_agents(&isolate), vec![spare]);
    let init = isolate_as(&isolate, &["--cg", "-b", &box_arg, "--init"], FILTERED);
    assert!(init.status.success(), "{init:?}");
    fs::write(guard.box_dir().join("given"), "the box's own\n").unwrap();
    let script = "id -u; cat /box/given; echo; cat /proc/self/cgroup; \
                  cat /proc/self/mountinfo; ls -a /; cat /proc/self/stat";
    let run = isolate_as(
        &isolate,
        &[
            "--cg", "-b", &box_arg, "-p", "--run", "--", "/bin/sh", "-c", script,
        ],
        FILTERED,
    );
    assert!(run.status.success(), "{run:?}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let (head, rest) = stdout.split_once("\n\n").unwrap();
    assert_eq!(head, format!("{}\nthe box's own", guard.uid()));
    assert!(rest.contains(&format!("/spare-{spare}/")), "{stdout}");
    assert!(!rest.contains("agents"), "{stdout}");
    // The spare was built in the background; its box's run is not.
    assert_eq!(nice(spare), Some(0));
    assert_eq!(policy(spare), Some(SCHED_OTHER));
    let run_stat = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        stat_fields(run_stat, &[NICE, POLICY]),
        Some(vec![0, SCHED_OTHER]),
        "{run_stat}"
    );
    // The box's second run is warm in the same box.
    let again = isolate_as(
        &isolate,
        &[
            "--cg",
            "-b",
            &box_arg,
            "--run",
            "--",
            "/bin/cat",
            "/proc/self/cgroup",
        ],
        FILTERED,
    );
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains(&format!("/spare-{spare}/")));

    let cleanup = isolate_as(&isolate, &["-b", &box_arg, "--cleanup"], FILTERED);
    assert!(cleanup.status.success(), "{cleanup:?}");
    assert!(!guard.box_dir().exists());
    eventually("the spare agent gone with its box", || {
        !Path::new(&format!("/proc/{spare}")).exists()
            && spare_leftovers(&isolate, spare).is_empty()
    });
    let next = ready_spare(&isolate);
    assert_ne!(next, spare);

    // The service leaves with its spare, and the spare with its box.
    common::stop_installation_service(&isolate.config);
    eventually("the spare gone with the service", || {
        spare_processes(&isolate).is_empty() && spare_leftovers(&isolate, next).is_empty()
    });
}

/// An agent that was a spare holds nothing of its box, so a `--cleanup`
/// does not wait for it to go (`Released`): the box may be initialized
/// again, and given the next spare, while that agent still takes its own
/// box down. Going, it must leave the box's socket alone, which is the
/// next agent's by then: a box whose socket was removed under its agent
/// has an agent its `--cleanup` cannot find (it stayed for its idle time,
/// with its holder and cgroups). The test holds the first agent's stop
/// open, as a slow teardown would, while the box is used again.
#[test]
fn a_released_agent_leaves_the_next_agents_socket_alone() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(83, 0);
    let box_arg = id.to_string();
    let _guard = isolate.adopt_box(id, true);
    started_service(&isolate, slot_id(83, 1));
    let socket = isolate.root().join(format!("locks/agents/{id}.sock"));
    let use_box = || {
        for args in [&["--init"][..], &["--run", "--", "/bin/true"]] {
            let mut words = vec!["--cg", "-b", &box_arg];
            words.extend_from_slice(args);
            let output = isolate_as(&isolate, &words, FILTERED);
            assert!(output.status.success(), "{output:?}");
        }
    };
    let first = ready_spare(&isolate);
    use_box();
    let second = ready_spare_besides(&isolate, &[first]);

    // The first agent's stop, as a cleanup sends it (the agent's protocol
    // is JSON over a packet socket).
    let stop = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        None,
    )
    .unwrap();
    rustix::net::connect(&stop, &rustix::net::SocketAddrUnix::new(&socket).unwrap()).unwrap();
    rustix::net::send(&stop, b"\"Stop\"", rustix::net::SendFlags::empty()).unwrap();
    let mut reply = [0u8; 64];
    let length = rustix::io::read(&stop, &mut reply).unwrap();
    assert_eq!(&reply[..length], b"\"Released\"");
    // While it waits for the hang-up: the box again, and its first run in
    // the second spare.
    use_box();
    assert!(socket.exists());
    drop(stop);
    eventually("the first agent gone", || {
        !Path::new(&format!("/proc/{first}")).exists()
    });
    assert!(
        socket.exists(),
        "the first agent removed the second's socket"
    );
    assert!(Path::new(&format!("/proc/{second}")).exists());

    let cleanup = isolate_as(&isolate, &["-b", &box_arg, "--cleanup"], FILTERED);
    assert!(cleanup.status.success(), "{cleanup:?}");
    eventually("the second agent gone with the box", || {
        !Path::new(&format!("/proc/{second}")).exists()
            && spare_leftovers(&isolate, second).is_empty()
    });
    common::stop_installation_service(&isolate.config);
    eventually("no agent left with the service", || {
        spare_processes(&isolate).is_empty()
    });
}

/// A first run whose configuration the spare's box does not fit (here
/// `--share-net`) runs as without a spare, and the unused spare goes.
#[test]
fn a_first_run_the_spare_does_not_fit_runs_cold_and_the_spare_goes() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(85, 0);
    let box_arg = id.to_string();
    let guard = isolate.adopt_box(id, true);
    started_service(&isolate, slot_id(85, 1));
    let spare = ready_spare(&isolate);
    let init = isolate_as(&isolate, &["--cg", "-b", &box_arg, "--init"], FILTERED);
    assert!(init.status.success(), "{init:?}");
    let run = isolate_as(
        &isolate,
        &[
            "--cg",
            "-b",
            &box_arg,
            "--share-net",
            "--run",
            "--",
            "/bin/cat",
            "/proc/self/cgroup",
        ],
        FILTERED,
    );
    assert!(run.status.success(), "{run:?}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains(&format!("/box-{id}")), "{stdout}");
    assert!(!stdout.contains("/spare-"), "{stdout}");
    eventually("the unused spare's box gone", || {
        spare_leftovers(&isolate, spare).is_empty()
    });
    let cleanup = isolate_as(&isolate, &["-b", &box_arg, "--cleanup"], FILTERED);
    assert!(cleanup.status.success(), "{cleanup:?}");
    drop(guard);
    eventually("the box's agent gone", || {
        !Path::new(&format!("/proc/{spare}")).exists()
    });
}

/// A resident helper (the service, a box's agent) is started by
/// `spawn_root_daemon`, which returns only once the helper's program runs:
/// a test, or an administrator, who looks for the service right after the
/// `--cleanup` that started it finds it by its command line, and stops
/// it. (It used to return at the fork: such a look could miss a service
/// still between its fork and its exec, which then lived on with its
/// spare.)
/// A child that cannot execute its program is an error.
#[test]
fn a_helper_is_its_program_when_its_start_returns() {
    skip_unless_privileged!();
    use isobox::sys::Scheduling::Normal;
    use std::os::fd::AsFd;
    let argv = ["/bin/sleep", "30"].map(|word| std::ffi::CString::new(word).unwrap());
    let stdin = fs::File::open("/dev/null").unwrap();
    for _ in 0..20 {
        let pid = isobox::sys::spawn_root_daemon(c"/bin/sleep", &argv, stdin.as_fd(), None, Normal)
            .unwrap();
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        // SAFETY: kills and reaps this test's own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        assert_eq!(cmdline, b"/bin/sleep\x0030\x00");
    }
    let missing =
        isobox::sys::spawn_root_daemon(c"/nonexistent/helper", &argv, stdin.as_fd(), None, Normal)
            .unwrap_err();
    assert_eq!(missing.raw_os_error(), Some(libc::ENOENT), "{missing}");
}

/// A spare agent is forked by the service without an exec, and keeps
/// nothing of the service's: none of its descriptors (its lock, which
/// would keep a later service from starting once this one left, its
/// socket, or a caller's output it had on its standard output then), and
/// not its handling of interruption signals, which would have it ignore
/// them. It is named as a spare and shows a spare's command line, and
/// `SIGTERM` takes it down with its box, the service staying.
#[test]
fn a_spare_forked_by_the_service_keeps_nothing_of_it() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let service = started_service(&isolate, slot_id(94, 0));
    let spare = ready_spare(&isolate);
    assert_eq!(stat_field(spare, 1), Some(i64::from(service)));
    assert_eq!(
        fs::read_to_string(format!("/proc/{spare}/comm")).unwrap(),
        "isobox-spare\n"
    );
    // Forked at nice 19, by a service back at its own scheduling.
    assert_eq!(nice(spare), Some(19));
    assert_eq!(
        (nice(service), policy(service)),
        (Some(0), Some(SCHED_OTHER))
    );
    // Its command line: as its words where root may set it, or as one
    // title over the service's.
    let cmdline = fs::read(format!("/proc/{spare}/cmdline")).unwrap();
    let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        shown
            .trim_end()
            .ends_with(&format!(" --isobox-spare {}", isolate.config.display())),
        "{cmdline:?}"
    );
    let open_files = |pid: i32| -> Vec<(String, String)> {
        fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let target = fs::read_link(entry.path()).ok()?;
                Some((
                    entry.file_name().to_string_lossy().into_owned(),
                    target.to_string_lossy().into_owned(),
                ))
            })
            .collect()
    };
    let services_files: Vec<String> = open_files(service)
        .into_iter()
        .map(|(_, target)| target)
        .filter(|target| target != "/dev/null")
        .collect();
    assert!(
        services_files
            .iter()
            .any(|target| target.ends_with("service.lock")),
        "{services_files:?}"
    );
    let spares_files = open_files(spare);
    for (fd, target) in &spares_files {
        assert!(
            !services_files.contains(target),
            "the spare's descriptor {fd} is the service's {target}"
        );
    }
    for standard in ["1", "2"] {
        assert!(
            spares_files
                .iter()
                .any(|(fd, target)| fd == standard && target == "/dev/null"),
            "{spares_files:?}"
        );
    }
    assert!(!spare_leftovers(&isolate, spare).is_empty());
    unsafe_kill(spare, libc::SIGTERM);
    eventually("the spare gone with its box on SIGTERM", || {
        let state = fs::read_to_string(format!("/proc/{spare}/stat")).unwrap_or_default();
        (state.is_empty() || state.contains(") Z ")) && spare_leftovers(&isolate, spare).is_empty()
    });
    assert_eq!(installation_services(&isolate.config), vec![service]);
}

/// A helper started as background work is forked at the background's
/// scheduling (nice 19), so that it never runs ahead of its starter's
/// callers, and its starter, switched to it for the fork, gets its own
/// scheduling back, slice included.
#[test]
fn a_background_helper_leaves_its_starter_scheduled_as_it_was() {
    skip_unless_privileged!();
    use isobox::sys::Scheduling::Background;
    use std::os::fd::AsFd;
    let argv = ["/bin/sleep", "30"].map(|word| std::ffi::CString::new(word).unwrap());
    let stdin = fs::File::open("/dev/null").unwrap();
    let thread = || fs::read_to_string("/proc/thread-self/stat").unwrap();
    let thread_sched = || fs::read_to_string("/proc/thread-self/sched").unwrap();
    let slice_of = |sched: &str| {
        sched
            .lines()
            .find(|line| line.starts_with("se.slice"))
            .map(str::to_owned)
    };
    let (before, slice_before) = (
        stat_fields(&thread(), &[NICE, POLICY]),
        slice_of(&thread_sched()),
    );
    let pid = isobox::sys::spawn_root_daemon(c"/bin/sleep", &argv, stdin.as_fd(), None, Background)
        .unwrap();
    let child = (nice(pid), policy(pid));
    let (after, slice_after) = (
        stat_fields(&thread(), &[NICE, POLICY]),
        slice_of(&thread_sched()),
    );
    // SAFETY: kills and reaps this test's own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    assert_eq!(child.0, Some(19));
    assert_eq!(child.1, Some(SCHED_OTHER));
    assert_eq!(after, before);
    assert_eq!(slice_after, slice_before);
}

/// A box's first caller who comes while the spare is still being built
/// waits for it, rather than starting a box of its own: in back-to-back
/// cycles the spare started at one box's first run may not be built by
/// the next box's. The service also schedules the spare normally (it is
/// built in the background) for the waiting caller, and sends the caller
/// the ordinary way when the spare does not come within a second. (The spare is caught, and stopped,
/// before it is built.)
#[test]
fn a_first_caller_waits_for_a_spare_still_being_built() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let (first, second, third) = (slot_id(86, 0), slot_id(86, 1), slot_id(86, 2));
    let first_guard = isolate.adopt_box(first, true);
    let second_guard = isolate.adopt_box(second, true);
    let third_guard = isolate.adopt_box(third, true);
    started_service(&isolate, slot_id(86, 3));
    let spawn_run = |id: u32, program: &[&str]| {
        let box_arg = id.to_string();
        let mut args = vec!["--cg", "-b", &box_arg, "--run", "--"];
        args.extend(program);
        let mut command = Command::new(&isolate.link);
        command
            .args(&args)
            .env("ISOBOX_CONFIG", &isolate.config)
            .current_dir(isolate.root())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        FILTERED.apply(&mut command);
        command.spawn().expect("running isolate")
    };
    let built = |spare: i32| {
        fs::read_to_string(format!("/proc/{spare}/task/{spare}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse::<i32>().ok())
            .any(|holder| {
                fs::read_to_string(format!("/proc/{holder}/mountinfo"))
                    .is_ok_and(|mounts| mounts.contains(" /dev/shm "))
            })
    };
    /// Lets a stopped spare go on, whatever happens.
    struct Stopped(i32);
    impl Drop for Stopped {
        fn drop(&mut self) {
            // SAFETY: signals this test's installation's spare agent.
            unsafe { libc::kill(self.0, libc::SIGCONT) };
        }
    }
    // The first box's first run takes the ready spare; the service starts
    // the next at once, caught here before its box is built.
    let catch_a_spare_being_built = || -> Stopped {
        for _ in 0..20 {
            let spare = ready_spare(&isolate);
            let init = isolate_as(
                &isolate,
                &["--cg", "-b", &first.to_string(), "--init"],
                FILTERED,
            );
            assert!(init.status.success(), "{init:?}");
            let run = spawn_run(first, &["/bin/true"]);
            let deadline = Instant::now() + Duration::from_secs(5);
            let next = loop {
                if let Some(&next) = spare_agents(&isolate).iter().find(|&&pid| pid != spare) {
                    break next;
                }
                assert!(Instant::now() < deadline, "no new spare after a hand-over");
            };
            // SAFETY: stops this test's installation's spare agent.
            unsafe { libc::kill(next, libc::SIGSTOP) };
            let stopped = Stopped(next);
            let output = run.wait_with_output().unwrap();
            assert!(output.status.success(), "{output:?}");
            let cleanup = isolate_as(&isolate, &["-b", &first.to_string(), "--cleanup"], FILTERED);
            assert!(cleanup.status.success(), "{cleanup:?}");
            // A spare that ended (one whose box could not be built, say)
            // is not one being built.
            if !built(next) && stat_field(next, 1).is_some() {
                return stopped;
            }
        }
        panic!("every new spare was built before it could be stopped");
    };
    let stopped = catch_a_spare_being_built();
    let spare = stopped.0;
    assert_eq!(nice(spare), Some(19), "a spare is built in the background");
    assert_eq!(policy(spare), Some(SCHED_OTHER));
    let init = isolate_as(
        &isolate,
        &["--cg", "-b", &second.to_string(), "--init"],
        FILTERED,
    );
    assert!(init.status.success(), "{init:?}");
    let mut run = spawn_run(second, &["/bin/cat", "/proc/self/cgroup"]);
    eventually("the waiting caller's spare scheduled normally", || {
        nice(spare) == Some(0) && policy(spare) == Some(SCHED_OTHER)
    });
    assert!(
        run.try_wait().unwrap().is_none(),
        "the first run did not wait for the spare"
    );
    drop(stopped);
    let output = run.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("/spare-{spare}/")), "{stdout}");
    let cleanup = isolate_as(
        &isolate,
        &["-b", &second.to_string(), "--cleanup"],
        FILTERED,
    );
    assert!(cleanup.status.success(), "{cleanup:?}");

    // A spare that does not come within the service's patience (here one
    // kept stopped): the caller goes the ordinary way (which starts the C
    // library: a caller without the filter), and its run is in the box's
    // own cgroup.
    let stopped = catch_a_spare_being_built();
    let init = isolate_as(
        &isolate,
        &["--cg", "-b", &third.to_string(), "--init"],
        FILTERED,
    );
    assert!(init.status.success(), "{init:?}");
    let output = isolate_as(
        &isolate,
        &[
            "--cg",
            "-b",
            &third.to_string(),
            "--run",
            "--",
            "/bin/cat",
            "/proc/self/cgroup",
        ],
        Caller::default(),
    );
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("/box-{third}")), "{stdout}");
    assert!(!stdout.contains("/spare-"), "{stdout}");
    drop(stopped);
    let cleanup = isolate_as(&isolate, &["-b", &third.to_string(), "--cleanup"], FILTERED);
    assert!(cleanup.status.success(), "{cleanup:?}");
    drop((first_guard, second_guard, third_guard));
    common::stop_installation_service(&isolate.config);
    eventually("the spares gone with the service", || {
        spare_processes(&isolate).is_empty()
    });
}
