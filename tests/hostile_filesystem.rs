//! Hostile programs against the filesystem jail: reading host secrets,
//! climbing out of /box, looking through /proc at other processes, writing
//! the system directories, planting symlinks and hard links for the keeper
//! to trip over, executing from the temporary filesystems, and poking at
//! /dev. Each run also checks the host afterwards (see
//! `TestBox::run_hostile`).

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{assert_output, assert_status, hostile, skip_unless_privileged, temp_dir, TestBox};
use isobox::dirs::DirRule;
use isobox::ExecutionStatus;

/// What the root of a default box holds.
fn default_root() -> &'static str {
    if Path::new("/lib64").exists() {
        "bin box dev lib lib64 proc tmp usr"
    } else {
        "bin box dev lib proc tmp usr"
    }
}

fn rule(text: &str) -> DirRule {
    text.parse()
        .unwrap_or_else(|err| panic!("rule {text}: {err}"))
}

/// Attack: read /etc/passwd and /etc/shadow.
#[test]
fn reading_etc_passwd_and_shadow() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let result = test_box.run_hostile(&[
        &probe,
        "read",
        "/etc/passwd",
        "read",
        "/etc/shadow",
        "list",
        "/etc",
    ]);
    assert_output(
        &result,
        "read /etc/passwd: ENOENT\nread /etc/shadow: ENOENT\nlist /etc: ENOENT\n",
    );
    test_box.remove();
}

/// Attack: read /etc/shadow and write /etc where a rule binds the host's /etc.
#[test]
fn reading_etc_shadow_through_an_etc_rule() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.dir_rules = vec![rule("/etc")];
    let probe = test_box.install(&hostile("probe"));
    let planted = format!("/etc/{}", test_box.marker);
    let result = test_box.run_hostile(&[
        &probe,
        "read",
        "/etc/passwd",
        "read",
        "/etc/shadow",
        "write",
        &planted,
    ]);
    assert_output(
        &result,
        &format!("read /etc/passwd: ok\nread /etc/shadow: EACCES\nwrite {planted}: EROFS\n"),
    );
    assert!(!Path::new(&planted).exists());
    test_box.remove();
}

/// Attack: reach the host through /proc/1 (root, environ, cmdline, fd).
#[test]
fn reading_proc_1_root_and_environ() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let result = test_box.run_hostile(&[
        &probe,
        "list",
        "/proc/1/root",
        "read",
        "/proc/1/root/etc/passwd",
        "read",
        "/proc/1/environ",
        "read",
        "/proc/1/cmdline",
        "list",
        "/proc/1/fd",
    ]);
    assert_output(
        &result,
        "list /proc/1/root: ENOENT\n\
         read /proc/1/root/etc/passwd: ENOENT\n\
         read /proc/1/environ: ENOENT\n\
         read /proc/1/cmdline: ENOENT\n\
         list /proc/1/fd: ENOENT\n",
    );
    test_box.remove();
}

/// Attack: read the keeper's /proc entry by its host pid; count visible processes.
#[test]
fn reading_the_keepers_proc_entry() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let keeper = std::process::id().to_string();
    let environ = format!("/proc/{keeper}/environ");
    let cmdline = format!("/proc/{keeper}/cmdline");
    let root = format!("/proc/{keeper}/root");
    let result = test_box.run_hostile(&[
        &probe, "read", &environ, "read", &cmdline, "list", &root, "list", "/proc",
    ]);
    assert_status(&result, ExecutionStatus::Success);
    let mut lines = result.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("read {environ}: ENOENT").as_str())
    );
    assert_eq!(
        lines.next(),
        Some(format!("read {cmdline}: ENOENT").as_str())
    );
    assert_eq!(lines.next(), Some(format!("list {root}: ENOENT").as_str()));
    // Only the probe itself: pid 1 (root) is hidden, the host is elsewhere.
    let pids: Vec<&str> = lines
        .next()
        .and_then(|line| line.strip_prefix("list /proc: "))
        .expect("a listing of /proc")
        .split(' ')
        .filter(|name| name.parse::<u32>().is_ok())
        .collect();
    assert_eq!(pids.len(), 1, "visible processes: {pids:?}");
    assert_ne!(pids[0], "1", "pid 1 is visible");
    test_box.remove();
}

/// Attack: list /sys, /root, /home, /var, /run and the keeper's directory.
#[test]
fn listing_sys_and_host_directories() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let here = std::env::current_dir().unwrap().display().to_string();
    let mut words = vec![probe.as_str()];
    let dirs = [
        "/sys",
        "/sys/fs/cgroup",
        "/root",
        "/home",
        "/var",
        "/run",
        &here,
    ];
    for dir in dirs {
        words.extend(["list", dir]);
    }
    let result = test_box.run_hostile(&words);
    let expected: String = dirs
        .iter()
        .map(|dir| format!("list {dir}: ENOENT\n"))
        .collect();
    assert_output(&result, &expected);
    test_box.remove();
}

/// Attack: write into /bin, /usr, /usr/bin and the root of the box.
#[test]
fn writing_to_bin_and_usr() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let targets: Vec<String> = ["/bin", "/usr", "/usr/bin", ""]
        .iter()
        .map(|dir| format!("{dir}/{}", test_box.marker))
        .collect();
    let mut words = vec![probe.as_str()];
    for target in &targets {
        words.extend(["write", target.as_str()]);
    }
    words.extend(["mkdir", "/usr/lib/isobox-planted", "write", "/bin/sh"]);
    let result = test_box.run_hostile(&words);
    let mut expected: String = targets
        .iter()
        .map(|target| format!("write {target}: EROFS\n"))
        .collect();
    expected.push_str("mkdir /usr/lib/isobox-planted: EROFS\nwrite /bin/sh: EROFS\n");
    assert_output(&result, &expected);
    for target in &targets[..3] {
        assert!(!Path::new(target).exists(), "{target} appeared on the host");
    }
    assert!(!Path::new("/usr/lib/isobox-planted").exists());
    test_box.remove();
}

/// Attack: write to a read-only bind of a host directory the box user owns.
#[test]
fn read_only_rule_holds_against_the_owner() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let data = temp_dir("isobox-data-", 0o755);
    std::os::unix::fs::chown(data.path(), Some(test_box.uid), Some(test_box.uid)).unwrap();
    let source = data.path().display().to_string();
    test_box.config.dir_rules = vec![rule(&format!("/data={source}"))];
    let probe = test_box.install(&hostile("probe"));
    let result = test_box.run(&[&probe, "write", "/data/x", "chmod", "/data"]);
    assert_output(&result, "write /data/x: EROFS\nchmod /data: EROFS\n");

    test_box.config.dir_rules = vec![rule(&format!("/data={source}:rw"))];
    let result = test_box.run(&[&probe, "write", "/data/x"]);
    assert_output(&result, "write /data/x: ok\n");
    assert!(data.path().join("x").is_file());
    test_box.remove();
}

/// Attack: chdir("..") twenty times, then open etc/passwd.
#[test]
fn chdir_up_twenty_times_then_etc_passwd() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let result =
        test_box.run_hostile(&[&probe, "up", "20", "cwd", "read", "etc/passwd", "list", "."]);
    assert_output(
        &result,
        &format!(
            "up 20: ok\ncwd: /\nread etc/passwd: ENOENT\nlist .: {}\n",
            default_root()
        ),
    );
    test_box.remove();
}

/// Attack: a Python program climbing out of /box and looking around.
#[test]
fn python_escape_attempt() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.allow_python();
    let escape = test_box.install(&hostile("pyescape.py"));
    let result = test_box.run_hostile(&["/usr/bin/python3", &escape]);
    // Rootless, uid 0 is not mapped: EINVAL, a plain OSError in Python.
    let setuid_zero = if common::rootless() {
        "OSError"
    } else {
        "PermissionError"
    };
    assert_output(
        &result,
        &format!(
            "cwd: /\n\
             root: {}\n\
             read etc/passwd: FileNotFoundError\n\
             read /etc/shadow: FileNotFoundError\n\
             read /proc/1/environ: FileNotFoundError\n\
             setuid 0: {setuid_zero}\n\
             other processes: []\n",
            default_root()
        ),
    );
    test_box.remove();
}

/// A host directory the keeper must never touch on behalf of a box: root's,
/// mode 0700, holding one file.
struct Sentinel {
    dir: tempfile::TempDir,
}

impl Sentinel {
    fn new() -> Self {
        let dir = temp_dir("isobox-sentinel-", 0o700);
        fs::write(dir.path().join("precious"), "precious\n").unwrap();
        fs::set_permissions(
            dir.path().join("precious"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Panics unless the directory and its file are exactly as made.
    fn assert_untouched(&self) {
        // The keeper's: root's, or the rootless pass's own uid.
        let keeper = fs::metadata("/proc/self").expect("stat /proc/self");
        let (uid, gid) = (keeper.uid(), keeper.gid());
        let dir = fs::symlink_metadata(self.dir.path()).expect("the sentinel is gone");
        assert_eq!(
            (dir.uid(), dir.gid(), dir.mode() & 0o7777),
            (uid, gid, 0o700)
        );
        let file = fs::symlink_metadata(self.dir.path().join("precious")).expect("precious");
        assert_eq!(
            (file.uid(), file.gid(), file.mode() & 0o7777),
            (uid, gid, 0o600)
        );
        assert_eq!(
            fs::read_to_string(self.dir.path().join("precious")).unwrap(),
            "precious\n"
        );
        let names: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|entry| entry.file_name())
            .collect();
        assert_eq!(names, ["precious"], "the box wrote into the sentinel");
    }
}

/// Attack: symlinks in /box to host paths, for the keeper's chown and removal to follow.
#[test]
fn symlink_to_a_host_path_planted_in_the_box() {
    skip_unless_privileged!();
    let sentinel = Sentinel::new();
    let test_box = TestBox::hostile();
    let plant = test_box.install(&hostile("plant_links.sh"));
    let result = test_box.run_hostile(&[&plant, &sentinel.path()]);
    assert_output(
        &result,
        "read file-link: refused\nlist dir-link: refused\nwrite dir-link: refused\nplanted\n",
    );
    let link = fs::symlink_metadata(test_box.workdir().join("dir-link")).unwrap();
    assert!(link.file_type().is_symlink(), "the planted link is gone");
    sentinel.assert_untouched();
    // A second run chowns the box to the box user and back again.
    let result = test_box.run_hostile(&["/bin/true"]);
    assert_status(&result, ExecutionStatus::Success);
    sentinel.assert_untouched();
    test_box.remove();
    sentinel.assert_untouched();
}

/// Attack: host symlinks in a box directory the executor creates and removes itself.
#[test]
fn symlinks_survive_executor_cleanup_without_being_followed() {
    skip_unless_privileged!();
    let sentinel = Sentinel::new();
    let mut test_box = TestBox::hostile();
    let fresh = test_box.workdir().join("fresh");
    test_box.config.workdir = fresh.clone();
    let script = format!(
        "ln -s {0} /box/dir-link && ln -s {0}/precious /box/file-link && ln -s / /box/root",
        sentinel.path()
    );
    // run() cleans up: the executor made the directory, so it removes it.
    let result = test_box.run(&["/bin/sh", "-c", &script]);
    assert_status(&result, ExecutionStatus::Success);
    assert!(!fresh.exists(), "the executor left its box directory");
    sentinel.assert_untouched();
    test_box.remove();
}

/// Attack: hard links to setuid-root binaries, and running a setuid-root file in /box.
#[test]
fn hard_link_to_a_setuid_binary() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let suid = test_box.install_as(&hostile("whoami"), "suid");
    let suid_host = test_box.workdir().join("suid");
    std::os::unix::fs::chown(&suid_host, Some(0), Some(0)).unwrap();
    fs::set_permissions(&suid_host, fs::Permissions::from_mode(0o4755)).unwrap();
    let host_suid = ["/usr/bin/passwd", "/usr/bin/su", "/usr/bin/mount"]
        .into_iter()
        .find(|path| {
            fs::metadata(path).is_ok_and(|meta| meta.mode() & 0o4000 != 0 && meta.uid() == 0)
        })
        .expect("a setuid-root binary on the host");
    let result = test_box.run_hostile(&[
        &probe,
        "link",
        &suid,
        "/box/suid-link",
        "link",
        host_suid,
        "/box/host-link",
        "exec",
        &suid,
    ]);
    // fs.protected_hardlinks (on in most distributions, off in the kernel's
    // defaults) refuses a link to someone else's setuid file; without it the
    // link is made, and it is still only another name for a file that gives
    // no root inside the box.
    let protected = fs::read_to_string("/proc/sys/fs/protected_hardlinks")
        .is_ok_and(|value| value.trim() == "1");
    let own_link = if protected { "EPERM" } else { "SUCCEEDED" };
    let uid = test_box.uid;
    assert_output(
        &result,
        &format!(
            "link {suid} /box/suid-link: {own_link}\n\
             link {host_suid} /box/host-link: EXDEV\n\
             euid={uid} egid={uid}\n\
             exec {suid}: exited 0\n"
        ),
    );
    let links = if protected { 1 } else { 2 };
    assert_eq!(fs::metadata(&suid_host).unwrap().nlink(), links);
    let mut setuid_files: Vec<_> = fs::read_dir(test_box.workdir())
        .unwrap()
        .flatten()
        .filter(|entry| entry.metadata().is_ok_and(|meta| meta.mode() & 0o6000 != 0))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    setuid_files.sort();
    let expected: &[&str] = if protected {
        &["suid"]
    } else {
        &["suid", "suid-link"]
    };
    assert_eq!(setuid_files, expected);
    test_box.remove();
}

/// Attack: read the host's /tmp and /dev/shm files and leave files there.
#[test]
fn host_tmp_and_dev_shm_are_invisible_and_untouched() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let host_only = format!("isobox-host-only-{}", test_box.uid);
    let host_files = [
        Path::new("/tmp").join(&host_only),
        Path::new("/dev/shm").join(&host_only),
    ];
    for file in &host_files {
        fs::write(file, "host\n").unwrap();
        fs::set_permissions(file, fs::Permissions::from_mode(0o666)).unwrap();
    }
    let tmp_host = format!("/tmp/{host_only}");
    let shm_host = format!("/dev/shm/{host_only}");
    let tmp_mark = format!("/tmp/{}", test_box.marker);
    let shm_mark = format!("/dev/shm/{}", test_box.marker);
    let result = test_box.run_hostile(&[
        &probe, "read", &tmp_host, "read", &shm_host, "write", &tmp_mark, "write", &shm_mark,
        "list", "/tmp", "list", "/dev/shm",
    ]);
    for file in &host_files {
        assert_eq!(fs::read_to_string(file).unwrap(), "host\n");
        fs::remove_file(file).unwrap();
    }
    let marker = &test_box.marker;
    assert_output(
        &result,
        &format!(
            "read {tmp_host}: ENOENT\nread {shm_host}: ENOENT\n\
             write {tmp_mark}: ok\nwrite {shm_mark}: ok\n\
             list /tmp: {marker}\nlist /dev/shm: {marker}\n"
        ),
    );
    test_box.remove();
}

/// Attack: execute files written to /tmp (allowed) and /dev/shm (noexec), also via ld.so.
#[test]
fn executing_from_tmp_and_dev_shm() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let script = test_box.install(&hostile("tmp_exec.sh"));
    let result = test_box.run_hostile(&[&script, &test_box.marker]);
    assert_output(
        &result,
        "/tmp script: ran\n/tmp binary: ran\n/tmp loader: ran\n\
         /dev/shm script: refused\n/dev/shm binary: refused\n/dev/shm loader: refused\n",
    );
    test_box.remove();
}

/// Attack: memfd_create + fexecve, running code from outside every mount.
#[test]
fn memfd_create_and_fexecve() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let memfd = test_box.install(&hostile("memfd"));
    let result = test_box.run_hostile(&[&memfd]);
    let memfd_noexec = fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap_or_default();
    // Allowed unless the host forbids it: the code runs as itself, still
    // under every restriction of the box.
    if !common::has_cgroup() {
        // Rootless without a cgroup: a memfd's pages are in no address
        // space an rlimit bounds, so memfd_create is refused.
        assert_eq!(
            result.stdout,
            "memfd_create: EPERM\n",
            "{:?}",
            common::Brief(&result)
        );
        assert_status(&result, ExecutionStatus::RuntimeError);
        test_box.remove();
        return;
    }
    let setuid_zero = if common::rootless() {
        "EINVAL"
    } else {
        "EPERM"
    };
    let expected = if memfd_noexec.trim() == "2" {
        "fexecve: EACCES\n".to_string()
    } else {
        format!(
            "child: uid={} NoNewPrivs=1 Seccomp=2\nchild setuid 0: {setuid_zero}\n",
            test_box.uid_inside()
        )
    };
    assert_output(&result, &expected);
    test_box.remove();
}

/// Attack: look for host devices in /dev and make device nodes.
#[test]
fn dev_is_minimal_and_mknod_is_refused() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let result = test_box.run_hostile(&[
        &probe,
        "list",
        "/dev",
        "read",
        "/dev/mem",
        "read",
        "/dev/kmsg",
        "mknod",
        "/box/mem",
        "mknod",
        "/tmp/mem",
        "write",
        "/dev/planted",
        "write",
        "/dev/null",
        "read",
        "/dev/zero",
        "read",
        "/dev/urandom",
        "write",
        "/dev/full",
    ]);
    assert_output(
        &result,
        "list /dev: fd full null random shm stderr stdin stdout urandom zero\n\
         read /dev/mem: ENOENT\nread /dev/kmsg: ENOENT\n\
         mknod /box/mem: EPERM\nmknod /tmp/mem: EPERM\n\
         write /dev/planted: EROFS\nwrite /dev/null: ok\n\
         read /dev/zero: ok\nread /dev/urandom: ok\nwrite /dev/full: ENOSPC\n",
    );
    assert!(!test_box.workdir().join("mem").exists());
    test_box.remove();
}

/// Attack: look for the host's old root among the box's mounts.
#[test]
fn old_root_is_detached() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let result = test_box.run_hostile(&[&probe, "mounts"]);
    assert_status(&result, ExecutionStatus::Success);
    let points: Vec<&str> = result
        .stdout
        .trim_end()
        .strip_prefix("mounts: ")
        .expect("a list of mount points")
        .split(' ')
        .collect();
    let allowed = [
        "/box", "/bin", "/dev", "/lib", "/lib64", "/proc", "/tmp", "/usr",
    ];
    for point in &points {
        let inside = *point == "/"
            || allowed
                .iter()
                .any(|top| point == top || point.starts_with(&format!("{top}/")));
        assert!(inside, "mount point {point} in the box: {points:?}");
    }
    // Exactly one root: the old one is gone, not stacked underneath.
    assert_eq!(points.iter().filter(|point| **point == "/").count(), 1);
    test_box.remove();
}

/// Attack: look for descriptors inherited from the keeper.
#[test]
fn no_descriptor_leaks_into_the_box() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let result = test_box.run_hostile(&[&probe, "list", "/proc/self/fd"]);
    // 0-2 and the directory being listed.
    assert_output(&result, "list /proc/self/fd: 0 1 2 3\n");
    test_box.remove();
}
