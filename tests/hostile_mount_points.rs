//! Hostile tests of how root builds the box's filesystem and handles the
//! working directory: a program (or a local user) plants symbolic links
//! between runs where root later creates mount points, looks up bind
//! sources or changes the working directory. Nothing outside the box may be
//! created, bound, chmodded or chowned through them; a tampered rule is a
//! clear sandbox error.
//!
//! Run as root with cgroups (privileged tests). Isolate box ids come from
//! slot 80 of the table in `tests/isolate_support/mod.rs`.

mod common;
mod isolate_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{argv, skip_unless_privileged, temp_dir, TestBox, MIB};
use isobox::dirs::DirRule;
use isobox::{ExecutionStatus, IsolateConfig, IsolateError, ProcessExecutor};
use isolate_support::{slot_id, Isolate};
use tempfile::TempDir;

const SLOT: u32 = 80;

/// Host places a planted link would reach: a directory root keeps to itself
/// with a file the box must never see, and the name of a file root must
/// never create.
struct Victim {
    dir: TempDir,
}

impl Victim {
    fn new() -> Self {
        let dir = temp_dir("isobox-victim-", 0o755);
        fs::write(dir.path().join("secret"), "TOPSECRET\n").unwrap();
        fs::set_permissions(dir.path().join("secret"), fs::Permissions::from_mode(0o644)).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where a file mount point would land through the planted link.
    fn file(&self) -> PathBuf {
        self.path().join("created-by-root")
    }

    /// Checks that nothing was created in the victim directory and that its
    /// owner and mode are as made.
    fn assert_untouched(&self) {
        let names: Vec<String> = fs::read_dir(self.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["secret"], "root created files on the host");
        let meta = fs::symlink_metadata(self.path()).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "victim chowned");
        assert_eq!(meta.mode() & 0o7777, 0o755, "victim chmodded");
    }
}

/// CMS's writable outer directory: `home` (0777) is bound read-write at
/// `/tmp` in the box.
fn cms_home() -> (TempDir, PathBuf) {
    let outer = temp_dir("isobox-mounts-outer-", 0o755);
    let home = outer.path().join("home");
    fs::create_dir(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o777)).unwrap();
    (outer, home)
}

const ISOLATE_LIMITS: [&str; 5] = [
    "--time=2",
    "--wall-time=10",
    "--cg-mem=131072",
    "--processes=16",
    "--fsize=1024",
];

/// Through isolate (CMS's `-d /tmp=HOME:rw`): run 1 plants links in HOME;
/// run 2 asks for nested mount points through them (a file mount point, and
/// a new directory below a planted directory link). Before the fix root
/// created `created-by-root` and `newdir` in the victim directory.
#[test]
fn isolate_mount_points_through_planted_links() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(SLOT, 0), true);
    let victim = Victim::new();
    let (_outer, home) = cms_home();
    let tmp_rule = format!("--dir=/tmp={}:rw", home.display());
    let mut options: Vec<&str> = ISOLATE_LIMITS.to_vec();
    options.push(&tmp_rule);
    let plant = format!(
        "ln -s {} /tmp/x && ln -s {} /tmp/sub",
        victim.file().display(),
        victim.path().display()
    );
    let (planted, meta) = sandbox.run(&options, &["/bin/sh", "-c", &plant]);
    assert_eq!(planted.code, 0, "planting failed: {planted:?} {meta}");
    assert!(fs::symlink_metadata(home.join("x")).unwrap().is_symlink());

    for nested in ["--dir=/tmp/x=/etc/hostname", "--dir=/tmp/sub/newdir=/usr"] {
        let mut with_nested = options.clone();
        with_nested.push(nested);
        let (run, meta) = sandbox.run(&with_nested, &["/bin/true"]);
        assert_ne!(run.code, 0, "{nested}: the run went ahead: {run:?}");
        assert!(meta.contains("status:XX"), "{nested}: {meta}");
        assert!(
            meta.contains("symbolic link"),
            "{nested}: the error does not say why: {meta}"
        );
        victim.assert_untouched();
    }
    // The links are still the program's own, nothing was mounted on them.
    assert!(fs::symlink_metadata(home.join("sub")).unwrap().is_symlink());
}

/// Through isolate: a rule whose source lies inside a box-writable tree
/// (the writable bind) does not follow a link the program planted there,
/// however the path is spelled. Before the fix the victim directory
/// was bound into the box and its secret read.
#[test]
fn isolate_bind_sources_through_planted_links() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(SLOT, 1), true);
    let victim = Victim::new();
    let (_outer, home) = cms_home();
    let tmp_rule = format!("--dir=/tmp={}:rw", home.display());
    let mut options: Vec<&str> = ISOLATE_LIMITS.to_vec();
    options.push(&tmp_rule);
    let plant = format!("ln -s {} /tmp/cfg", victim.path().display());
    let (planted, meta) = sandbox.run(&options, &["/bin/sh", "-c", &plant]);
    assert_eq!(planted.code, 0, "planting failed: {planted:?} {meta}");

    // (Links the program leaves in the box itself are deleted before the
    // next run; the library test below attacks the box directory.)
    let through_home = format!("--dir=/secret={}/cfg:rw", home.display());
    let through_nested = format!("--dir=/secret={}/cfg/../cfg", home.display());
    for rule in [&through_home, &through_nested] {
        let mut with_rule = options.clone();
        with_rule.push(rule);
        let (run, meta) = sandbox.run(&with_rule, &["/bin/cat", "/secret/secret"]);
        assert!(
            !run.stdout.contains("TOPSECRET"),
            "{rule}: the planted link was followed: {run:?}"
        );
        assert_ne!(run.code, 0, "{rule}: {run:?}");
        assert!(
            run.stderr.contains("symbolic link") || meta.contains("symbolic link"),
            "{rule}: the error does not say why: {run:?} {meta}"
        );
        victim.assert_untouched();
    }
}

/// The same attacks through the library: a writable bind rule, links
/// planted by run 1, nested rules in run 2.
#[test]
fn library_mount_points_and_sources_through_planted_links() {
    skip_unless_privileged!();
    let victim = Victim::new();
    let (_outer, home) = cms_home();
    let mut test_box = TestBox::hostile();
    let writable: DirRule = format!("/data={}:rw", home.display()).parse().unwrap();
    test_box.config.dir_rules = vec![writable.clone()];
    let plant = format!(
        "ln -s {} /data/x && ln -s {1} /data/sub && ln -s {1} /data/cfg && ln -s {1} /box/cfg",
        victim.file().display(),
        victim.path().display(),
    );
    let planted = test_box.run_hostile(&["/bin/sh", "-c", &plant]);
    assert_eq!(planted.status, ExecutionStatus::Success, "{planted:?}");

    for nested in ["/data/x=/etc/hostname", "/data/sub/newdir=/usr"] {
        let mut attacked = TestBox::hostile();
        attacked.config.dir_rules = vec![writable.clone(), nested.parse().unwrap()];
        let result = attacked.run(&["/bin/true"]);
        assert_eq!(
            result.status,
            ExecutionStatus::InternalError,
            "{nested}: {result:?}"
        );
        assert!(
            result.message.contains("symbolic link"),
            "{nested}: {}",
            result.message
        );
        victim.assert_untouched();
    }

    // Sources inside the writable bind and inside the box directory
    // itself (the same box, run again).
    let in_box = format!("/secret={}/cfg", test_box.workdir().display());
    for source in [format!("/secret={}/cfg", home.display()), in_box] {
        let mut config = test_box.config.clone();
        config.dir_rules = vec![writable.clone(), source.parse().unwrap()];
        let mut executor = ProcessExecutor::new(config).expect("strict executor");
        let outcome = executor.execute(&argv(&["/bin/cat", "/secret/secret"]), None);
        executor.cleanup().expect("cleanup");
        match &outcome {
            Err(IsolateError::Config(message)) => {
                assert!(message.contains("symbolic link"), "{source}: {message}")
            }
            other => panic!("{source}: the planted source link was not refused: {other:?}"),
        }
        victim.assert_untouched();
    }
}

/// A small strict configuration with limits for the workdir tests.
fn limited(config: IsolateConfig) -> IsolateConfig {
    IsolateConfig {
        strict_mode: true,
        time_limit: Some(std::time::Duration::from_secs(2)),
        wall_time_limit: Some(std::time::Duration::from_secs(10)),
        memory_limit: Some(128 * MIB),
        process_limit: Some(16),
        file_size_limit: Some(MIB),
        output_limit: Some(64 * 1024),
        uid: Some(61990),
        gid: Some(61990),
        ..config
    }
}

/// The library's default workdir: a local user plants links to a
/// root-only directory (and directories of their own) at every name the
/// old predictable scheme (`$TMPDIR/isobox-<pid>-<n>`) would have given.
/// Before the fix the victim was chmodded 0755, chowned to the box and
/// bound read-write (or the planted directory became the box).
#[test]
fn default_workdir_is_unpredictable_and_never_followed() {
    skip_unless_privileged!();
    let victim = temp_dir("isobox-victim-", 0o700);
    fs::write(victim.path().join("secret"), "TOPSECRET\n").unwrap();
    let planted: Vec<PathBuf> = (0..256)
        .map(|n| std::env::temp_dir().join(format!("isobox-{}-{n}", std::process::id())))
        .filter(|path| fs::symlink_metadata(path).is_err())
        .collect();
    for (index, path) in planted.iter().enumerate() {
        if index % 2 == 0 {
            std::os::unix::fs::symlink(victim.path(), path).unwrap();
        } else {
            fs::create_dir(path).unwrap();
            fs::write(path.join("attacker-file"), "planted\n").unwrap();
        }
    }
    let config = limited(IsolateConfig::default());
    assert!(config.workdir.as_os_str().is_empty());
    let mut executor = ProcessExecutor::new(config).expect("strict executor");
    let result = executor.execute(
        &argv(&[
            "/bin/sh",
            "-c",
            "ls -a /box; cat /box/secret; touch /box/mine && echo made",
        ]),
        None,
    );
    executor.cleanup().expect("cleanup");
    let meta = fs::symlink_metadata(victim.path()).unwrap();
    let untouched = (meta.uid(), meta.mode() & 0o7777) == (0, 0o700);
    for path in &planted {
        if fs::symlink_metadata(path).unwrap().is_symlink() {
            fs::remove_file(path).unwrap();
        } else {
            fs::remove_dir_all(path).unwrap();
        }
    }
    let result = result.expect("the run");
    assert!(untouched, "the planted link was followed: {meta:?}");
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    assert!(result.stdout.contains("made"), "{result:?}");
    assert!(!result.stdout.contains("attacker-file"), "{result:?}");
    assert!(!result.stdout.contains("TOPSECRET"), "{result:?}");
    assert_eq!(fs::read_dir(victim.path()).unwrap().count(), 1);
}

/// An explicit workdir that is a symbolic link is refused and its target
/// left alone; a real explicit workdir gets its owner and mode back.
#[test]
fn explicit_workdir_link_is_refused_and_owner_restored() {
    skip_unless_privileged!();
    let victim = temp_dir("isobox-victim-", 0o700);
    let parent = temp_dir("isobox-workdirs-", 0o755);
    let link = parent.path().join("box");
    std::os::unix::fs::symlink(victim.path(), &link).unwrap();
    let mut executor = ProcessExecutor::new(limited(IsolateConfig {
        workdir: link.clone(),
        ..IsolateConfig::default()
    }))
    .expect("strict executor");
    let outcome = executor.execute(&argv(&["/bin/true"]), None);
    executor.cleanup().expect("cleanup");
    let message = format!("{:?}", outcome.expect_err("a link as the workdir was used"));
    assert!(message.contains("symbolic link"), "{message}");
    let meta = fs::symlink_metadata(victim.path()).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o700));
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());

    let real = parent.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::chown(&real, Some(4242), Some(4343)).unwrap();
    let mut executor = ProcessExecutor::new(limited(IsolateConfig {
        workdir: real.clone(),
        ..IsolateConfig::default()
    }))
    .expect("strict executor");
    let result = executor
        .execute(&argv(&["/bin/sh", "-c", "id -u; stat -c %u:%a /box"]), None)
        .expect("the run");
    executor.cleanup().expect("cleanup");
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    assert_eq!(result.stdout, "61990\n61990:755\n", "{result:?}");
    let meta = fs::metadata(&real).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (4242, 4343, 0o751),
        "owner and mode not restored"
    );
    assert!(real.exists(), "a workdir the caller made was removed");
}

/// The library refuses a relative source when the workdir is its own
/// temporary directory: there is no directory the caller meant.
#[test]
fn library_refuses_relative_sources_with_a_temporary_workdir() {
    skip_unless_privileged!();
    let mut executor = ProcessExecutor::new(limited(IsolateConfig {
        dir_rules: vec!["/in=./input".parse().unwrap()],
        ..IsolateConfig::default()
    }))
    .expect("strict executor");
    let outcome = executor.execute(&argv(&["/bin/true"]), None);
    executor.cleanup().expect("cleanup");
    match outcome {
        Err(IsolateError::Config(message)) => {
            assert!(message.contains("relative source"), "{message}")
        }
        other => panic!("a relative source was accepted: {other:?}"),
    }
}

/// `isobox run --dir IN=./X` reads X from the caller's working directory,
/// never from `$TMPDIR` (where any local user can plant `X`).
#[test]
fn cli_relative_dir_source_is_the_callers_directory() {
    skip_unless_privileged!();
    let cwd = temp_dir("isobox-cwd-", 0o755);
    let tmpdir = temp_dir("isobox-tmpdir-", 0o1777);
    for (base, text) in [(cwd.path(), "from-cwd\n"), (tmpdir.path(), "from-tmpdir\n")] {
        fs::create_dir(base.join("input")).unwrap();
        fs::set_permissions(base.join("input"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(base.join("input/f"), text).unwrap();
        fs::set_permissions(base.join("input/f"), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let output = Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args([
            "run",
            "--time",
            "2",
            "--wall-time",
            "10",
            "--mem",
            "128M",
            "--processes",
            "8",
            "--dir",
            "/in=./input",
            "--",
            "/bin/cat",
            "/in/f",
        ])
        .current_dir(cwd.path())
        .env("TMPDIR", tmpdir.path())
        .env_remove("ISOBOX_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("isobox runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout,
        "from-cwd\n",
        "{output:?} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

/// A rule may mount a fresh filesystem only of a type isolate 2.5 allows
/// (`proc`, `sysfs`, `tmpfs`, `devpts`): `debugfs`, `bpf`, `tracefs` and
/// the like would hand the program kernel interfaces of the host, and in a
/// setuid installation the caller writes the rules.
#[test]
fn rules_mount_only_safe_filesystem_types() {
    skip_unless_privileged!();
    for fstype in [
        "debugfs",
        "bpf",
        "tracefs",
        "securityfs",
        "configfs",
        "cgroup2",
        "mqueue",
    ] {
        let mut executor = ProcessExecutor::new(limited(IsolateConfig {
            dir_rules: vec![format!("/kernel={fstype}:fs").parse().unwrap()],
            ..IsolateConfig::default()
        }))
        .expect("strict executor");
        let outcome = executor.execute(&argv(&["/bin/true"]), None);
        executor.cleanup().expect("cleanup");
        match outcome {
            Err(err) => assert!(
                err.to_string().contains("not a filesystem a box may mount"),
                "{fstype}: {err}"
            ),
            Ok(result) => panic!("{fstype} was mounted: {result:?}"),
        }
    }
    let mut executor = ProcessExecutor::new(limited(IsolateConfig {
        dir_rules: vec!["/scratch=tmpfs:fs,rw".parse().unwrap()],
        ..IsolateConfig::default()
    }))
    .expect("strict executor");
    let result = executor
        .execute(
            &argv(&["/bin/sh", "-c", "touch /scratch/f && ls /scratch"]),
            None,
        )
        .expect("a tmpfs rule runs");
    executor.cleanup().expect("cleanup");
    assert_eq!(result.stdout.trim(), "f", "{result:?}");
}
