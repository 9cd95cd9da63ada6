//! What the keeper does to a box between runs, attacked: the meta file
//! (symlink to a root-only file, fifo, directory swapped for a link during
//! the run, a meta file inside the box), a box left world-writable, hard
//! links the keeper would chown through, a flood of files for the keeper's
//! walks, and quotas of zero (isolate face and library).
//!
//! Run as root with cgroups (privileged tests). Box ids come from slots
//! 87–89 of `tests/isolate_support`.

mod common;
mod isolate_support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::skip_unless_privileged;
use isolate_support::{assert_box_gone, slot_id, CmsLog, Isolate, Outcome};

/// A root-only host file with known contents.
fn victim(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, "root only, do not touch\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A directory the box may write (as CMS binds its home directory),
/// world-writable so that it is no trusted place for a root-opened file.
fn writable_outer(isolate: &Isolate) -> std::path::PathBuf {
    let outer = isolate.root().join("outer");
    fs::create_dir(&outer).unwrap();
    fs::set_permissions(&outer, fs::Permissions::from_mode(0o777)).unwrap();
    outer
}

/// Runs isolate with `args` and fails the test (after killing it) if it
/// takes longer than `limit`: a planted fifo must not hang the keeper.
fn isolate_within(isolate: &Isolate, args: &[String], limit: Duration) -> Outcome {
    let mut child = isolate
        .command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("isolate {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap().into()
}

/// Attack: run 1 plants `meta -> root-only file` in a directory the box
/// can write; run 2 names that path with -M. Before: File::create followed
/// the link and truncated the host file.
#[test]
fn a_planted_symlink_at_the_meta_path_is_not_followed() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(87, 0), true);
    let outer = writable_outer(&isolate);
    let target = victim(isolate.root(), "shadow");
    let bind = format!("--dir=/out={}:rw", outer.display());
    let plant = format!("ln -s {} /out/meta", target.display());
    let (outcome, _) = sandbox.run(&["-p", &bind], &["/bin/sh", "-c", &plant]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(fs::symlink_metadata(outer.join("meta"))
        .unwrap()
        .is_symlink());

    let meta = format!("-M{}", outer.join("meta").display());
    let outcome = sandbox.isolate(&[&meta, "--run", "--", "/bin/true"]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(
        outcome.stderr.contains("links are not followed"),
        "{outcome:?}"
    );
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        "root only, do not touch\n"
    );
    // In the box itself the path is refused outright.
    fs::write(sandbox.box_dir().join("x"), "").unwrap();
    std::os::unix::fs::symlink(&target, sandbox.box_dir().join("meta")).unwrap();
    let meta = format!("-M{}", sandbox.box_dir().join("meta").display());
    let outcome = sandbox.isolate(&[&meta, "--run", "--", "/bin/true"]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        "root only, do not touch\n"
    );
}

/// Attack: run 1 leaves a fifo where the next run's meta file goes.
/// Before: the next run's keeper blocked opening it, forever.
#[test]
fn a_planted_fifo_at_the_meta_path_does_not_hang_the_keeper() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(87, 1), true);
    let outer = writable_outer(&isolate);
    let bind = format!("--dir=/out={}:rw", outer.display());
    let (outcome, _) = sandbox.run(&["-p", &bind], &["/bin/sh", "-c", "mkfifo /out/meta"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let args = sandbox.with_box(&[
        &format!("-M{}", outer.join("meta").display()),
        "--run",
        "--",
        "/bin/true",
    ]);
    let outcome = isolate_within(&isolate, &args, Duration::from_secs(20));
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(outcome.stderr.contains("not a regular file"), "{outcome:?}");
    assert!(fs::symlink_metadata(outer.join("meta"))
        .unwrap()
        .file_type()
        .is_fifo());
}

/// Attack: during a --special-files run, the program replaces a directory
/// on the meta file's path with a link to a host directory. Before: the
/// final write looked the path up again and created the meta file there.
#[test]
fn a_directory_swapped_for_a_link_during_the_run_does_not_redirect_the_meta_file() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(87, 2), true);
    let outer = writable_outer(&isolate);
    fs::create_dir(outer.join("sub")).unwrap();
    fs::set_permissions(outer.join("sub"), fs::Permissions::from_mode(0o777)).unwrap();
    let host_dir = isolate.root().join("host-dir");
    fs::create_dir(&host_dir).unwrap();
    let bind = format!("--dir=/out={}:rw", outer.display());
    let meta = format!("-M{}", outer.join("sub/meta").display());
    let swap = format!("rm -r /out/sub && ln -s {} /out/sub", host_dir.display());
    let outcome = sandbox.isolate(&[
        &meta,
        "-p",
        "--special-files",
        &bind,
        "--run",
        "--",
        "/bin/sh",
        "-c",
        &swap,
    ]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(fs::symlink_metadata(outer.join("sub"))
        .unwrap()
        .is_symlink());
    assert!(
        fs::symlink_metadata(host_dir.join("meta")).is_err(),
        "the meta file was written through the planted link"
    );
}

/// Attack: a meta file inside the box, where the program can forge it or
/// put a link or a fifo in its place. Refused before anything runs.
#[test]
fn a_meta_file_inside_the_box_is_refused_whatever_is_planted_there() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(87, 3), true);
    let (outcome, _) = sandbox.run(
        &["-p", "--special-files"],
        &["/bin/sh", "-c", "mkfifo /box/fifo && mkdir /box/d"],
    );
    assert_eq!(outcome.code, 0, "{outcome:?}");
    for name in ["fifo", "d/meta", "plain"] {
        let meta = format!("-M{}", sandbox.box_dir().join(name).display());
        let args = sandbox.with_box(&[&meta, "--run", "--", "/bin/true"]);
        let outcome = isolate_within(&isolate, &args, Duration::from_secs(20));
        assert_eq!(outcome.code, 2, "{name}: {outcome:?}");
        assert!(
            outcome.stderr.contains("inside the box"),
            "{name}: {outcome:?}"
        );
    }
}

/// Attack: the program leaves its box world-writable, a setgid
/// world-writable directory and a set-uid world-writable file. Before: all
/// survived the run, for any local user to plant links in.
#[test]
fn the_box_is_never_left_writable_by_others_or_set_id() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(88, 0), true);
    let script = "chmod 0777 /box && mkdir /box/d && chmod 2777 /box/d \
                  && echo x > /box/d/f && chmod 6777 /box/d/f && chmod 1777 /box/d";
    let (outcome, meta) = sandbox.run(&["-p"], &["/bin/sh", "-c", script]);
    assert_eq!(outcome.code, 0, "{outcome:?} {meta}");
    let mode = |path: &Path| fs::symlink_metadata(path).unwrap().mode() & 0o7777;
    assert_eq!(mode(&sandbox.box_dir()), 0o700);
    for path in [sandbox.box_dir().join("d"), sandbox.box_dir().join("d/f")] {
        assert_eq!(
            mode(&path) & 0o6022,
            0,
            "{}: {:o}",
            path.display(),
            mode(&path)
        );
        assert_eq!(fs::metadata(&path).unwrap().uid(), 0, "{}", path.display());
    }
}

/// Attack: a file of the box with a second name (a host file hard-linked
/// into the box by its owner). Before: the keeper chowned it to the box's
/// uid before the run and to the owner after it. Now a box is a file system
/// of its own (a host file cannot be linked into it at all), and a file
/// with more than one link is never changed: left alone before the run,
/// unlinked from the box after it.
#[test]
fn the_keeper_never_chowns_through_hard_links() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(88, 1), true);
    let host = victim(isolate.root(), "host-secret");
    let err = fs::hard_link(&host, sandbox.box_dir().join("linked")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EXDEV), "{err}");

    // Simulate a linked inode inside the box's file system: root-only, two
    // names.
    let first = victim(&sandbox.box_dir(), "secret");
    fs::hard_link(&first, sandbox.box_dir().join("secret2")).unwrap();
    let (outcome, meta) = sandbox.run(
        &["-p"],
        &[
            "/bin/sh",
            "-c",
            "cat /box/secret; echo appended >> /box/secret2",
        ],
    );
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(CmsLog::parse(&meta).exit_status(), "nonzero return");
    assert!(!outcome.stdout.contains("root only"), "{outcome:?}");
    // After the run the box holds no inode under two names: the walk
    // unlinked names while the inode had several (the last name left is
    // the box's alone), and the program could neither read nor write it.
    let left: Vec<_> = ["secret", "secret2"]
        .iter()
        .filter_map(|name| fs::symlink_metadata(sandbox.box_dir().join(name)).ok())
        .collect();
    assert!(left.len() <= 1, "both names survived");
    for meta in &left {
        assert_eq!(meta.nlink(), 1);
    }
    if left.is_empty() {
        return;
    }
    let survivor = ["secret", "secret2"]
        .iter()
        .map(|name| sandbox.box_dir().join(name))
        .find(|path| path.exists())
        .unwrap();
    assert_eq!(
        fs::read_to_string(survivor).unwrap(),
        "root only, do not touch\n"
    );
}

/// Attack: a program creates files until something stops it. Before: it
/// made 591,434, and the next run's chown walk took 18 s of keeper time.
/// Now the box is a tmpfs with an inode cap (the configuration's
/// `box_quota`, 65536 by default), which bounds every walk.
#[test]
fn a_flood_of_files_stops_at_the_boxs_inode_cap() {
    skip_unless_privileged!();
    let isolate = Isolate::with_extra_config("box_quota = 65536,500\n");
    let sandbox = isolate.open_box(slot_id(88, 2), true);
    let stat = rustix::fs::statvfs(sandbox.box_dir()).unwrap();
    assert_eq!(stat.f_files, 500, "the box's inode cap");
    let flood = "mkdir /box/d; i=0; while true 2>/dev/null > /box/d/f$i; do i=$((i+1)); done";
    let (outcome, meta) = sandbox.run(&["-p", "-t", "10"], &["/bin/sh", "-c", flood]);
    assert_eq!(outcome.code, 0, "{outcome:?} {meta}");
    let made: usize = fs::read_dir(sandbox.box_dir().join("d")).unwrap().count();
    assert!(made > 0 && made < 500, "{made} files");
    // The next run walks at most the cap, and works.
    let (outcome, _) = sandbox.run(&["-p"], &["/bin/sh", "-c", "ls /box/d | wc -l"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(outcome.stdout.trim(), made.to_string());

    // Without -q or box_quota, a box gets the documented default.
    let plain = Isolate::new();
    let other = plain.open_box(slot_id(88, 3), false);
    let stat = rustix::fs::statvfs(other.box_dir()).unwrap();
    assert_eq!(stat.f_files, 65536);
    assert_eq!(stat.f_blocks * stat.f_frsize, 1 << 30);
}

/// Attack: `-q 0,0` and a library tmp_size/shm_size of 0. Before: tmpfs
/// read 0 as "no limit" and the box got an unlimited file system.
#[test]
fn zero_sizes_are_refused_not_unlimited() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(89, 0);
    for quota in ["0,0", "0,100", "100,0"] {
        let outcome = isolate.isolate(&["-b", &id.to_string(), "-q", quota, "--init"]);
        assert_eq!(outcome.code, 2, "{quota}: {outcome:?}");
        assert!(outcome.stderr.contains("at least 1"), "{outcome:?}");
        assert_box_gone(&isolate, id);
    }
    let config = Isolate::with_extra_config("box_quota = 0,0\n");
    let outcome = config.isolate(&["-b", &id.to_string(), "--init"]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(outcome.stderr.contains("at least 1"), "{outcome:?}");
    // The configuration is refused before anything is made, so nothing
    // (cgroups included) can be looked up through it: no box directory.
    let dir = config.box_root.join(id.to_string());
    assert!(
        fs::symlink_metadata(&dir).is_err(),
        "{} made",
        dir.display()
    );

    for (tmp, shm) in [(0, 1 << 20), (1 << 20, 0)] {
        let config = isobox::IsolateConfig {
            tmp_size: tmp,
            shm_size: shm,
            ..isobox::IsolateConfig::default()
        };
        match isobox::ProcessExecutor::new(config) {
            Err(isobox::IsolateError::Config(message)) => {
                assert!(message.contains("at least 1"), "{message}")
            }
            Err(other) => panic!("tmp {tmp}, shm {shm}: {other}"),
            Ok(_) => panic!("tmp {tmp}, shm {shm}: a zero-sized tmpfs was accepted"),
        }
    }
}
