//! The third outside review's confirmed findings, one hostile test each
//! (plus two for what set-user-ID support allows). Every test here fails on
//! the code the review saw and passes with the fixes (docs/SECURITY.md,
//! "Third review").
//!
//! The isolate-face tests use box ids of slot 84 (840–849) of the table in
//! `tests/isolate_support/mod.rs`; the set-user-ID tests, which cannot name
//! a private configuration for a caller who is not root, use boxes 847–849
//! of the default installation (uids 60847–60849, apart from the test
//! configuration's).

mod common;
mod isolate_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assert_self_signaled, hostile, skip_unless_privileged, Brief, TestBox};
use isobox::config::syscall_flags;
use isobox::{ExecutionStatus, Protection};
use isolate_support::{slot_id, CmsLog, Isolate};

const MIB: u64 = 1024 * 1024;

/// A command that runs as uid and gid 65534 (nobody), no groups.
fn as_nobody(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir("/").stdin(Stdio::null());
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
    command
}

/// `command`'s output, retried while the kernel says the binary is busy:
/// a freshly written copy stays open for writing in any child another test
/// thread forks before that child's `execve` (`ETXTBSY`).
fn output_of(command: &mut Command) -> std::process::Output {
    for _ in 0..100 {
        match command.output() {
            Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.expect("running the setuid copy"),
        }
    }
    panic!("the setuid copy stayed busy");
}

/// Finding 1. Attack, as a local user, on an installation made the way
/// isolate's own `make install` makes it (the binary setuid root, which the
/// isolate face accepts: it takes the real uid as the caller): ask for the
/// meta file at a root-only path. The keeper opens it as root, creating and
/// truncating files in any root-owned directory, even when the action fails
/// before any box is touched (here: a box id out of range).
#[test]
fn setuid_install_never_writes_the_meta_file_as_root_for_a_user() {
    skip_unless_privileged!();
    let dir = common::temp_dir("isobox-review3-suid-", 0o755);
    let Some(binary) = setuid_copy(dir.path()) else {
        return;
    };
    let victim = dir.path().join("root-only");
    fs::write(&victim, "ROOT SECRET\n").expect("writing the victim file");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    let planted = dir.path().join("new-root-file");
    for target in [&victim, &planted] {
        let meta = format!("--meta={}", target.display());
        let output =
            output_of(as_nobody(&binary).args(["-b", "99999", &meta, "--run", "--", "/bin/true"]));
        assert_ne!(output.status.code(), Some(0), "{output:?}");
    }
    assert_eq!(
        fs::read_to_string(&victim).expect("reading the victim"),
        "ROOT SECRET\n",
        "a caller without write access to {} had root truncate and rewrite it",
        victim.display()
    );
    assert!(
        fs::symlink_metadata(&planted).is_err(),
        "a caller without write access to {} had root create a file in it",
        dir.path().display()
    );
}

/// A copy of isobox named `isolate` in `dir`, set-user-ID root (mode 4755,
/// as isolate's `make install` does); `None` where the file system ignores
/// set-user-ID bits (nosuid): there is nothing to attack there.
fn setuid_copy(dir: &Path) -> Option<std::path::PathBuf> {
    let binary = dir.join("isolate");
    fs::copy(env!("CARGO_BIN_EXE_isobox"), &binary).expect("copying isobox");
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o4755)).expect("chmod 4755");
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: statvfs is plain data filled by the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid statvfs.
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut stat) }, 0);
    if stat.f_flag & libc::ST_NOSUID != 0 {
        eprintln!("the temporary directory is nosuid: nothing to attack");
        return None;
    }
    Some(binary)
}

/// Runs the set-user-ID copy as nobody, with the default configuration
/// (a caller who is not root cannot name another one).
fn isolate_as_nobody(binary: &Path, args: &[&str]) -> std::process::Output {
    output_of(as_nobody(binary).env_remove("ISOBOX_CONFIG").args(args))
}

/// Runs the same binary as root, with the default configuration.
fn isolate_as_root(binary: &Path, args: &[&str]) -> std::process::Output {
    output_of(
        Command::new(binary)
            .env_remove("ISOBOX_CONFIG")
            .current_dir("/")
            .stdin(Stdio::null())
            .args(args),
    )
}

/// Box ids of the default installation these tests use (uids 60848 and
/// 60849 there); removed again whatever happens.
struct DefaultBoxes<'a>(&'a Path, [&'a str; 2]);

impl Drop for DefaultBoxes<'_> {
    fn drop(&mut self) {
        for id in self.1 {
            let _ = isolate_as_root(self.0, &["-b", id, "--cleanup"]);
        }
        // Root's commands start the default installation's service, with
        // a spare.
        common::stop_installation_and_spares(Path::new(isobox::boxes::DEFAULT_CONFIG_PATH));
    }
}

/// Finding 1, what setuid support allows. A caller who is not root uses
/// only the boxes it initialized (isolate's rule): nobody cannot run or
/// clean up a box root initialized, or re-initialize it; nobody's own box
/// works, and its meta file is created with nobody's ids.
#[test]
fn setuid_callers_use_only_their_own_boxes() {
    skip_unless_privileged!();
    let dir = common::temp_dir("isobox-review3-owner-", 0o755);
    let Some(binary) = setuid_copy(dir.path()) else {
        return;
    };
    let boxes = DefaultBoxes(&binary, ["848", "849"]);
    let (theirs, mine) = (boxes.1[0], boxes.1[1]);
    let init = isolate_as_root(&binary, &["-b", theirs, "--init"]);
    assert_eq!(init.status.code(), Some(0), "{init:?}");
    for action in [
        &["--run", "--", "/bin/true"][..],
        &["--cleanup"],
        &["--init"],
    ] {
        let mut args = vec!["-b", theirs];
        args.extend_from_slice(action);
        let output = isolate_as_nobody(&binary, &args);
        assert_eq!(output.status.code(), Some(2), "{action:?}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("belongs to a different user (uid 0)"),
            "{output:?}"
        );
    }
    let state = Path::new("/var/local/lib/isobox")
        .join(theirs)
        .join(".isobox-state");
    assert!(state.exists(), "root's box survived nobody's --cleanup");

    let init = isolate_as_nobody(&binary, &["-b", mine, "--init"]);
    assert_eq!(init.status.code(), Some(0), "{init:?}");
    let meta_dir = common::temp_dir("isobox-review3-owner-meta-", 0o755);
    std::os::unix::fs::chown(meta_dir.path(), Some(65534), Some(65534)).expect("chown");
    let meta = meta_dir.path().join("meta");
    let meta_arg = format!("--meta={}", meta.display());
    let run = isolate_as_nobody(
        &binary,
        &["-b", mine, &meta_arg, "--run", "--", "/bin/true"],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    use std::os::unix::fs::MetadataExt;
    let owner = fs::metadata(&meta).expect("the meta file");
    assert_eq!((owner.uid(), owner.gid()), (65534, 65534));
    assert!(fs::read_to_string(&meta)
        .expect("meta")
        .contains("exitcode:0"));
    // Root may still use anyone's box.
    let run = isolate_as_root(&binary, &["-b", mine, "--run", "--", "/bin/true"]);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let cleanup = isolate_as_nobody(&binary, &["-b", mine, "--cleanup"]);
    assert_eq!(cleanup.status.code(), Some(0), "{cleanup:?}");
}

/// Finding 1, directory rules. A caller who is not root binds only what it
/// can read itself: a root-only directory, a file in it and a readable
/// directory asked for read-write are refused before anything runs; a
/// readable one works.
#[test]
fn setuid_callers_bind_only_what_they_can_read() {
    skip_unless_privileged!();
    let dir = common::temp_dir("isobox-review3-dirs-", 0o755);
    let Some(binary) = setuid_copy(dir.path()) else {
        return;
    };
    let secret = dir.path().join("secret");
    fs::create_dir(&secret).expect("mkdir secret");
    fs::write(secret.join("key"), "ROOT SECRET\n").expect("write key");
    fs::set_permissions(secret.join("key"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    let public = dir.path().join("public");
    fs::create_dir(&public).expect("mkdir public");
    fs::write(public.join("note"), "hello\n").expect("write note");
    let boxes = DefaultBoxes(&binary, ["847", "847"]);
    let id = boxes.1[0];
    let init = isolate_as_nobody(&binary, &["-b", id, "--init"]);
    assert_eq!(init.status.code(), Some(0), "{init:?}");
    let refused = [
        format!("--dir=/secret={}", secret.display()),
        format!("--dir=/key={}", secret.join("key").display()),
        format!("--dir=/public={}:rw", public.display()),
    ];
    for rule in &refused {
        let output = isolate_as_nobody(
            &binary,
            &["-b", id, rule, "--run", "--", "/bin/cat", "/key"],
        );
        assert_eq!(output.status.code(), Some(2), "{rule}: {output:?}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("SECRET"));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("may not"),
            "{rule}: {output:?}"
        );
    }
    let rule = format!("--dir=/public={}", public.display());
    let output = isolate_as_nobody(
        &binary,
        &["-b", id, &rule, "--run", "--", "/bin/cat", "/public/note"],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello\n");
}

/// Finding 2. Attack: fake a time limit again, past the fix of the second
/// review's finding 8. The proxy takes a raised `RLIMIT_CPU` soft limit in
/// the dead program's `/proc/<pid>/limits` as proof that the kernel sent
/// `SIGXCPU`; but any process may raise its own soft limit up to the hard
/// one (which sits a second above), then `raise(SIGXCPU)`. The verdict must
/// stay `Signaled`, since no CPU time was used.
#[test]
fn a_raised_cpu_rlimit_and_sigxcpu_is_no_time_limit() {
    skip_unless_privileged!();
    for use_cgroups in [true, false] {
        let mut test_box = TestBox::hostile();
        test_box.config.use_cgroups = use_cgroups;
        test_box.config.time_limit = Some(Duration::from_secs(1));
        let program = test_box.install(&hostile("review3_verdict"));
        let result = test_box.run_hostile(&[&program, "xcpu"]);
        assert!(
            result.stdout.starts_with("cpu_rlimit: "),
            "{:?}",
            Brief(&result)
        );
        assert!(result.cpu_time < 0.5, "{:?}", Brief(&result));
        eprintln!("cgroups: {use_cgroups}");
        assert_self_signaled(&result, libc::SIGXCPU);
        test_box.remove();
    }
}

/// The same through the isolate face, without and with `--cg`: `TO` there
/// is what a judge scores; it must be `SG` with `exitsig:24`.
#[test]
fn a_raised_cpu_rlimit_and_sigxcpu_is_no_time_limit_for_isolate() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    for (index, cg) in [(0, false), (1, true)] {
        let guard = isolate.open_box(slot_id(84, index), cg);
        let program = guard.install(&hostile("review3_verdict"), "verdict");
        let (outcome, meta) = guard.run(&["-t", "1", "-w", "5"], &[&program, "xcpu"]);
        let log = CmsLog::parse(&meta);
        assert_eq!(log.get("status"), Some("SG"), "{outcome:?}\n{meta}");
        assert_eq!(log.get("exitsig"), Some("24"), "{meta}");
        assert_eq!(log.get("killed"), None, "{meta}");
    }
}

/// Finding 3. Attack: the same class with `SIGXFSZ`. A program that sends
/// itself `SIGXFSZ` without writing a byte, in a run with no file-size
/// limit at all, is judged `FileSizeLimit` by the library (and `isobox
/// run`). It must be `Signaled` when no file-size limit was set. Under a
/// limit, the kernel's `SIGXFSZ` carries the same information as the
/// program's own (`SI_USER` from the process itself), so a program can
/// still choose that failure verdict there (docs/SECURITY.md, "Third
/// review"); it gains nothing by it.
#[test]
fn a_self_sent_sigxfsz_is_no_file_size_limit() {
    skip_unless_privileged!();
    for (limit, expected) in [
        (None, ExecutionStatus::Signaled),
        (Some(16 * MIB), ExecutionStatus::FileSizeLimit),
    ] {
        let mut test_box = TestBox::hostile();
        test_box.config.file_size_limit = limit;
        let program = test_box.install(&hostile("review3_verdict"));
        let result = test_box.run_hostile(&[&program, "xfsz"]);
        assert_eq!(
            result.status,
            expected,
            "file size limit {limit:?}: {:?}",
            Brief(&result)
        );
        assert_eq!(result.signal, Some(libc::SIGXFSZ), "{:?}", Brief(&result));
        test_box.remove();
    }
}

/// The MiB a `review3_hog` line reports (the first number in it).
fn mib_in(stdout: &str) -> u64 {
    stdout
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no amount in {stdout:?}"))
}

/// Finding 4, the box. Attack: with `-m` and no `--cg` (limits by rlimit,
/// as isolate without cgroups), write into `/box`. Every box is now a
/// tmpfs, so that is memory, which `RLIMIT_AS` does not see: 512 MiB are
/// held under a 64 MiB limit, the verdict is `OK`, and the memory stays
/// taken after the run, until `--cleanup`. The second review's fix capped
/// `/tmp` and `/dev/shm` by the limit, not the box.
#[test]
fn memory_in_the_box_tmpfs_without_a_cgroup() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let guard = isolate.open_box(slot_id(84, 2), false);
    let program = guard.install(&hostile("review3_hog"), "hog");
    let limit_kib = 65536;
    let (outcome, meta) = guard.run(
        &["-t", "5", "-w", "10", &format!("-m{limit_kib}"), "-p4"],
        &[&program, "file", "/box/held", "512"],
    );
    let held = fs::symlink_metadata(guard.box_dir().join("held")).map_or(0, |meta| meta.len());
    let _ = fs::remove_file(guard.box_dir().join("held"));
    assert!(
        held <= limit_kib * 1024,
        "{} MiB held in the box under a {} MiB limit: {outcome:?}\n{meta}",
        held / MIB,
        limit_kib / 1024
    );
}

/// Finding 4, kernel buffers. Attack: with a memory limit and no memory
/// cgroup, fill unix socket pairs: their buffers are kernel memory, outside
/// the address space. Under a 48 MiB limit and 256 open files the program
/// holds far more than the "small multiple of the limit" the second
/// review's fix promised.
///
/// The decision: where a memory cgroup hierarchy exists, a run with a
/// memory limit is always in a memory cgroup, even with cgroups turned off
/// in the configuration (a memory-only one), and the buffers are charged to
/// it. Where none exists at all (the library's non-strict degrade), the
/// result says the cgroup protection is absent, and kernel memory is
/// documented as unbounded (docs/SECURITY.md, "Third review").
#[test]
fn memory_in_socket_buffers_without_a_cgroup() {
    skip_unless_privileged!();
    let limit = 48 * MIB;
    let mut test_box = TestBox::hostile();
    test_box.config.use_cgroups = false;
    test_box.config.memory_limit = Some(limit);
    test_box.config.time_limit = Some(Duration::from_secs(5));
    test_box.config.wall_time_limit = Some(Duration::from_secs(20));
    let program = test_box.install(&hostile("review3_hog"));
    let result = test_box.run_hostile(&[&program, "sock"]);
    assert!(
        result.absent_protections.contains(&Protection::Cgroup),
        "cgroups are off: {:?}",
        Brief(&result)
    );
    // Filling stops at the limit: the writes fail (the program reports
    // what it got in) or the OOM killer ends it.
    let held = if result.status == ExecutionStatus::MemoryLimit {
        0
    } else {
        mib_in(&result.stdout)
    };
    assert!(
        held * MIB <= 2 * limit,
        "{held} MiB in socket buffers under a {} MiB limit: {:?}",
        limit / MIB,
        Brief(&result)
    );
    test_box.remove();

    // No hierarchy at all: nothing bounds the buffers, and the result says so.
    let mut test_box = TestBox::hostile();
    test_box.config.strict_mode = false;
    test_box.config.cgroup_root = Some("/nonexistent".into());
    test_box.config.memory_limit = Some(limit);
    let result = test_box.run_hostile(&["/bin/true"]);
    assert_eq!(
        result.status,
        ExecutionStatus::Success,
        "{:?}",
        Brief(&result)
    );
    assert!(
        result.absent_protections.contains(&Protection::Cgroup),
        "{:?}",
        Brief(&result)
    );
    test_box.remove();
}

/// Finding 5. Attack: with isolate's flag 16 cleared (foreign
/// architectures allowed) and flag 4 set (file locks refused), take a POSIX
/// lock through the i386 entry: `fcntl64(F_SETLK64)`. The i386 filter
/// reuses the x86_64 argument checks (commands 6, 7, 37, 38, 1024, 1026),
/// but the compat call has commands of its own (12–14), so the lock is
/// taken, on an inode other boxes may share.
#[test]
fn i386_file_locks_are_refused_like_native_ones() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.syscall_flags = syscall_flags::ALL & !syscall_flags::LEGACY_ARCH;
    let program = test_box.install(&hostile("review3_i386_lock"));
    let result = test_box.run_hostile(&[&program, "lockfile"]);
    assert_eq!(
        result.stdout,
        "x86_64_setlk: EPERM\ni386_setlk64: EPERM\nlock_seen_by_child: no\n",
        "{:?}",
        Brief(&result)
    );
    // Control: without the policy the i386 lock is taken.
    test_box.config.seccomp = false;
    let result = test_box.run_hostile(&[&program, "lockfile"]);
    assert!(
        result
            .stdout
            .contains("i386_setlk64: SUCCEEDED\nlock_seen_by_child: yes"),
        "{:?}",
        Brief(&result)
    );
    test_box.remove();
}
