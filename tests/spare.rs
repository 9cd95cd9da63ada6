//! Spare boxes (`SpareBox`): a warm box built around a stand-in directory
//! before the box it is to serve is known, then given that box's directory
//! and user. Each test looks from inside the box it became for what the
//! spare must not carry over, and for what the box must not reach.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::skip_unless_privileged;
use isobox::{ExecutionResult, ExecutionStatus, IsolateConfig, ProcessExecutor, SpareBox};

/// A test's directories: the spare's stand-in and two boxes' own, each
/// with a file that names it.
struct Place {
    base: PathBuf,
}

impl Place {
    fn new(name: &str) -> Self {
        let base = PathBuf::from(format!(
            "/run/isobox/test-spare-{}-{name}",
            std::process::id()
        ));
        for dir in ["stand-in", "box-a", "box-b"] {
            fs::create_dir_all(base.join(dir)).unwrap();
            fs::write(base.join(dir).join(format!("{dir}-file")), dir).unwrap();
        }
        Self { base }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

fn config(workdir: &Path, uid: u32, instance: &str) -> IsolateConfig {
    IsolateConfig {
        strict_mode: true,
        workdir: workdir.to_path_buf(),
        uid: Some(uid),
        gid: Some(uid),
        instance_id: format!("test-spare-{}-{instance}", std::process::id()),
        process_limit: Some(16),
        wall_time_limit: Some(Duration::from_secs(10)),
        ..IsolateConfig::default()
    }
}

fn spare(place: &Place, name: &str) -> SpareBox {
    SpareBox::build(config(&place.dir("stand-in"), 60990, name))
        .unwrap()
        .expect("a box of the default layout can be held")
}

fn sh(executor: &mut ProcessExecutor, script: &str) -> ExecutionResult {
    let command = ["/bin/sh", "-c", script].map(String::from);
    let result = executor.execute(&command, None).unwrap();
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    result
}

/// The host directories of the isobox cgroups `/proc/self/cgroup` lines
/// name (one per v1 hierarchy the box uses, or the v2 one).
fn cgroup_dirs(lines: &str) -> Vec<PathBuf> {
    lines
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let hierarchy = controllers.split(',').next().unwrap_or("");
            let hierarchy = hierarchy.strip_prefix("name=").unwrap_or(hierarchy);
            Some(
                Path::new("/sys/fs/cgroup")
                    .join(hierarchy)
                    .join(path.trim_start_matches('/')),
            )
        })
        // The hierarchies a box does not use show their root.
        .filter(|dir| dir.to_string_lossy().contains("/isobox/"))
        .collect()
}

#[test]
fn a_spare_becomes_the_box_it_is_given_and_goes_with_it() {
    skip_unless_privileged!();
    let place = Place::new("become");
    let spare = spare(&place, "become");
    let box_config = config(&place.dir("box-a"), 60991, "become-a");
    assert!(spare.fits(&box_config));
    let mut executor = spare.into_executor(box_config).unwrap();
    let result = sh(
        &mut executor,
        "id -u; id -g; ls /box; grep ' /box ' /proc/self/mountinfo; \
         echo written > /box/out; echo; cat /proc/self/cgroup",
    );
    let stdout = result.stdout.clone();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("60991"), "{stdout}");
    assert_eq!(lines.next(), Some("60991"), "{stdout}");
    // The box's own directory, not the stand-in the spare was built on.
    assert!(stdout.contains("box-a-file"), "{stdout}");
    assert!(!stdout.contains("stand-in-file"), "{stdout}");
    let mount = stdout
        .lines()
        .find(|line| line.contains(" /box "))
        .expect("/box is a mount");
    assert!(
        mount.contains("nosuid") && mount.contains("nodev"),
        "{mount}"
    );
    // Private: no peer group with the host's mount.
    assert!(!mount.contains("shared:"), "{mount}");
    let written = place.dir("box-a").join("out");
    assert_eq!(fs::read_to_string(&written).unwrap(), "written\n");
    assert_eq!(fs::metadata(&written).unwrap().uid(), 60991);
    // The run was the spare's: in the spare's cgroup, which goes with the
    // executor (closed as an isolate box's agent closes it, keeping the
    // box's cgroups: a spare's is not the box's).
    let cgroups = stdout.split_once("\n\n").map_or("", |(_, after)| after);
    // The spare's own cgroup (cgroup v1: the run is in the holder's below
    // it; v2: in one of its own below it, gone with the run).
    let instance = format!("test-spare-{}-become", std::process::id());
    let dirs: Vec<PathBuf> = cgroup_dirs(cgroups)
        .into_iter()
        .filter_map(|dir| {
            dir.ancestors()
                .find(|up| up.file_name().is_some_and(|name| name == instance.as_str()))
                .map(Path::to_path_buf)
        })
        .collect();
    assert!(!dirs.is_empty(), "{stdout}");
    assert!(dirs.iter().all(|dir| dir.exists()), "{dirs:?}");
    // A second run is warm in the same box.
    let again = sh(&mut executor, "cat /box/out; cat /proc/self/cgroup");
    assert!(again.stdout.starts_with("written\n"));
    assert!(
        again.stdout.contains(&format!("/{instance}/")),
        "{}",
        again.stdout
    );
    executor.close_keeping_cgroups().unwrap();
    for dir in &dirs {
        assert!(!dir.exists(), "{} left", dir.display());
    }
}

#[test]
fn what_the_host_mounts_in_the_box_later_stays_out() {
    skip_unless_privileged!();
    let place = Place::new("late");
    // The box's directory as isolate's is: a file system of its own, and
    // here a shared one, whose copies would see what is mounted in it
    // later (with the host's `/` shared, as under systemd, it is so).
    let box_dir = place.dir("box-a");
    isobox::sys::mount_tmpfs("box", &box_dir, "size=1m").unwrap();
    let shared = std::process::Command::new("mount")
        .arg("--make-shared")
        .arg(&box_dir)
        .status()
        .unwrap();
    assert!(shared.success());
    let sub = box_dir.join("sub");
    fs::create_dir_all(&sub).unwrap();
    let spare = spare(&place, "late");
    let mut executor = spare
        .into_executor(config(&place.dir("box-a"), 60991, "late-a"))
        .unwrap();
    isobox::sys::mount_tmpfs("late", &sub, "size=1m").unwrap();
    fs::write(sub.join("mounted-later"), "x").unwrap();
    let result = sh(
        &mut executor,
        "ls -a /box/sub; grep /box/sub /proc/self/mountinfo; true",
    );
    isobox::sys::unmount(&sub).unwrap();
    drop(executor);
    isobox::sys::unmount(&box_dir).unwrap();
    let stdout = &result.stdout;
    assert!(!stdout.contains("mounted-later"), "{stdout}");
    assert!(!stdout.contains(" /box/sub "), "{stdout}");
}

#[test]
fn a_spare_fits_only_its_own_configuration() {
    skip_unless_privileged!();
    let place = Place::new("fit");
    let spare = spare(&place, "fit");
    let base = config(&place.dir("box-a"), 60991, "fit-a");
    assert!(spare.fits(&base));
    let others = [
        IsolateConfig {
            share_net: true,
            ..base.clone()
        },
        IsolateConfig {
            seccomp: false,
            ..base.clone()
        },
        IsolateConfig {
            dir_rules: vec!["/opt".parse().unwrap()],
            ..base.clone()
        },
        IsolateConfig {
            tmp_size: base.tmp_size / 2,
            ..base.clone()
        },
        IsolateConfig {
            proxy_record: Some(place.dir("record")),
            ..base.clone()
        },
    ];
    for other in &others {
        assert!(!spare.fits(other), "{other:?}");
    }
    let instance = format!("test-spare-{}-fit", std::process::id());
    assert!(!instance_dirs(&instance).is_empty());
    // Refused, and gone: the holder killed, its cgroups removed.
    let [first, ..] = others;
    assert!(spare.into_executor(first).is_err());
    assert_eq!(instance_dirs(&instance), Vec::<PathBuf>::new());
}

/// The directories of cgroup `instance` below `isobox` in every hierarchy.
fn instance_dirs(instance: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join("isobox").join(instance)];
    for entry in fs::read_dir(root).unwrap().flatten() {
        dirs.push(entry.path().join("isobox").join(instance));
    }
    dirs.into_iter().filter(|dir| dir.exists()).collect()
}

#[test]
fn each_box_made_from_a_spare_has_namespaces_of_its_own() {
    skip_unless_privileged!();
    let place = Place::new("fresh");
    let script = "for ns in net ipc uts mnt pid; do readlink /proc/self/ns/$ns; done";
    let mut seen = Vec::new();
    for (name, uid) in [("box-a", 60991), ("box-b", 60992)] {
        let spare = spare(&place, &format!("fresh-{name}"));
        let mut executor = spare
            .into_executor(config(&place.dir(name), uid, &format!("fresh-{name}-box")))
            .unwrap();
        let result = sh(&mut executor, script);
        seen.push(result.stdout.clone());
    }
    let host: Vec<String> = ["net", "ipc", "uts", "mnt", "pid"]
        .iter()
        .map(|ns| {
            fs::read_link(format!("/proc/self/ns/{ns}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let a: Vec<&str> = seen[0].lines().collect();
    let b: Vec<&str> = seen[1].lines().collect();
    assert_eq!(a.len(), 5, "{seen:?}");
    for index in 0..5 {
        assert_ne!(a[index], b[index], "{seen:?}");
        assert_ne!(a[index], host[index], "{seen:?}");
        assert_ne!(b[index], host[index], "{seen:?}");
    }
}
