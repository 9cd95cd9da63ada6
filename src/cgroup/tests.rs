//! Unit tests of the cgroup layer on fake cgroup trees.
use super::*;
use std::fs;

/// No process can have this pid (PID_MAX_LIMIT is 4194304), so a fake
/// `cgroup.procs` holding it can never make `kill_all` hit anyone.
const IMPOSSIBLE_PID: i32 = 999_999_999;

fn touch(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap()
}

/// Files a fake v1 cgroup of `controller` holds.
fn v1_files(controller: &str) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![("cgroup.procs", "")];
    files.extend_from_slice(match controller {
        "memory" => &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.swappiness", "60\n"),
            ("memory.max_usage_in_bytes", "0\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
        ][..],
        "pids" => &[("pids.max", "max\n"), ("pids.events", "max 0\n")][..],
        "cpuacct" => &[("cpuacct.usage", "0\n")][..],
        "cpu" => &[
            ("cpu.shares", "1024\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_quota_us", "-1\n"),
        ][..],
        "cpuset" => &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")][..],
        _ => &[][..],
    });
    files
}

const V1_CONTROLLERS: [&str; 5] = ["memory", "pids", "cpuacct", "cpu", "cpuset"];

#[test]
fn an_owners_subtree_and_the_parent_that_finds_a_placement_again() {
    assert_eq!(own_subtree("boxes-1"), Path::new("isobox/boxes-1"));
    let made = Placement {
        version: CgroupVersion::V1,
        root: PathBuf::from("/sys/fs/cgroup"),
        parent: own_subtree("boxes-1"),
        given: false,
    };
    assert_eq!(made.parent_argument(), Path::new("isobox/boxes-1"));
    let given = Placement {
        version: CgroupVersion::V2,
        given: true,
        parent: PathBuf::from("system.slice/isolate.service"),
        ..made
    };
    assert_eq!(
        given.parent_argument(),
        Path::new("/sys/fs/cgroup/system.slice/isolate.service")
    );
}

/// A v1 layout with `isobox/` in every hierarchy and, with `instance`,
/// a pre-made `isobox/<instance>` holding the control files.
fn fake_v1(instance: Option<&str>) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for controller in V1_CONTROLLERS {
        let top = root.path().join(controller);
        touch(&top, &v1_files(controller));
        touch(&top.join("isobox"), &v1_files(controller));
        if let Some(name) = instance {
            touch(&top.join("isobox").join(name), &v1_files(controller));
        }
    }
    touch(
        &root.path().join("cpuset"),
        &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
    );
    root
}

#[test]
fn parents_must_stay_below_the_root_or_be_a_real_v2_cgroup() {
    let root = fake_v1(None);
    let placement = place(Some(root.path()), Some(Path::new("isobox/boxes-1"))).unwrap();
    assert_eq!(placement.version, CgroupVersion::V1);
    assert_eq!(placement.parent, Path::new("isobox/boxes-1"));
    assert!(!placement.given);
    assert_eq!(
        placement.parent_dirs()[0],
        root.path().join("memory/isobox/boxes-1")
    );
    let default = place(Some(root.path()), None).unwrap();
    assert_eq!(default.parent, Path::new(DEFAULT_PARENT));
    for bad in ["isobox/../..", "../x", ""] {
        let err = place(Some(root.path()), Some(Path::new(bad))).unwrap_err();
        assert!(matches!(err, CgroupError::Unavailable(_)), "{bad:?}: {err}");
    }
    // An absolute parent must be an existing cgroup v2 directory.
    let err = place(None, Some(&root.path().join("memory"))).unwrap_err();
    assert!(err.to_string().contains("cgroup v2"), "{err}");
    let err = place(None, Some(Path::new("/nonexistent/cgroup"))).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

const V2_FILES: [(&str, &str); 15] = [
    ("cgroup.procs", ""),
    ("cgroup.subtree_control", ""),
    ("cgroup.kill", ""),
    ("memory.max", "max\n"),
    ("memory.swap.max", "max\n"),
    ("pids.max", "max\n"),
    ("cpu.weight", "100\n"),
    ("cpu.max", "max 100000\n"),
    ("cpuset.cpus", "\n"),
    ("cpuset.mems", "\n"),
    ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"),
    ("memory.peak", "0\n"),
    ("memory.current", "0\n"),
    ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
    ("pids.events", "max 0\n"),
];

/// A v2 layout; with `instance`, a pre-made `isobox/<instance>`.
fn fake_v2(instance: Option<&str>) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    touch(
        root.path(),
        &[
            (
                "cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma misc\n",
            ),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", "1\n"),
        ],
    );
    touch(
        &root.path().join("isobox"),
        &[("cgroup.subtree_control", "")],
    );
    if let Some(name) = instance {
        touch(&root.path().join("isobox").join(name), &V2_FILES);
    }
    root
}

#[test]
fn detects_v1() {
    let root = fake_v1(None);
    let (version, found) = CgroupController::detect(Some(root.path())).unwrap();
    assert_eq!(version, CgroupVersion::V1);
    assert_eq!(found, root.path());
}

#[test]
fn detects_v2() {
    let root = fake_v2(None);
    let (version, _) = CgroupController::detect(Some(root.path())).unwrap();
    assert_eq!(version, CgroupVersion::V2);
}

#[test]
fn hybrid_root_with_v1_memory_is_v1() {
    let root = fake_v1(None);
    touch(root.path(), &[("cgroup.controllers", "")]);
    let (version, _) = CgroupController::detect(Some(root.path())).unwrap();
    assert_eq!(version, CgroupVersion::V1);
}

#[test]
fn detects_neither() {
    let empty = tempfile::tempdir().unwrap();
    let error = CgroupController::detect(Some(empty.path())).unwrap_err();
    assert!(
        matches!(&error, CgroupError::Unavailable(why) if why.contains("memory, pids, cpuacct")),
        "{error}"
    );

    // A v1 layout missing pids is not usable either.
    let partial = fake_v1(None);
    fs::remove_file(partial.path().join("pids/cgroup.procs")).unwrap();
    let error = CgroupController::detect(Some(partial.path())).unwrap_err();
    assert!(
        matches!(&error, CgroupError::Unavailable(why) if why.contains("pids")),
        "{error}"
    );

    // Like a hybrid system's `unified` mount: cgroup2 without controllers.
    let bare = tempfile::tempdir().unwrap();
    touch(bare.path(), &[("cgroup.controllers", "\n")]);
    let error = CgroupController::detect(Some(bare.path())).unwrap_err();
    assert!(
        matches!(&error, CgroupError::Unavailable(why) if why.contains("memory, pids")),
        "{error}"
    );

    let missing = empty.path().join("nowhere");
    assert!(matches!(
        CgroupController::detect(Some(&missing)),
        Err(CgroupError::Unavailable(_))
    ));
}

#[test]
fn refuses_names_that_leave_the_parent() {
    let root = fake_v2(None);
    for name in ["", ".", "..", "a/b", "../x"] {
        assert!(
            CgroupController::new(Some(root.path()), name, true).is_err(),
            "{name:?}"
        );
    }
}

#[test]
fn v1_instance_inherits_cpuset_and_lists_every_hierarchy() {
    let root = fake_v1(Some("box"));
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    assert_eq!(cgroup.version(), CgroupVersion::V1);
    assert!(cgroup.directory_fd().is_none());
    let expected: Vec<PathBuf> = V1_CONTROLLERS
        .iter()
        .map(|c| root.path().join(c).join("isobox/box"))
        .collect();
    assert_eq!(cgroup.paths(), expected);
    let cpuset = root.path().join("cpuset/isobox");
    assert_eq!(read(cpuset.join("cpuset.cpus")), "0-3");
    assert_eq!(read(cpuset.join("cpuset.mems")), "0");
    assert_eq!(read(cpuset.join("box/cpuset.cpus")), "0-3");
    assert_eq!(read(cpuset.join("box/cpuset.mems")), "0");
}

#[test]
fn v1_co_mounted_controllers_are_one_hierarchy() {
    // As systemd mounts them: one `cpu,cpuacct` hierarchy, reached through
    // two links.
    let root = fake_v1(Some("box"));
    let shared = root.path().join("cpu,cpuacct");
    fs::rename(root.path().join("cpuacct"), &shared).unwrap();
    fs::remove_dir_all(root.path().join("cpu")).unwrap();
    touch(&shared.join("isobox/box"), &v1_files("cpu"));
    std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpuacct")).unwrap();
    std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpu")).unwrap();
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    let paths = cgroup.paths();
    assert_eq!(
        paths,
        ["memory", "pids", "cpuacct", "cpuset"].map(|c| root.path().join(c).join("isobox/box"))
    );
    assert!(shared.join("isobox/box").is_dir());
    // The cpu weight lands in the shared hierarchy, written once.
    cgroup
        .apply_limits(&CgroupLimits {
            cpu_shares: Some(512),
            ..CgroupLimits::default()
        })
        .unwrap();
    assert_eq!(read(shared.join("isobox/box/cpu.shares")), "512");
    cgroup.keep();
}

#[test]
fn v1_refuses_a_populated_instance() {
    let root = fake_v1(Some("box"));
    let procs = root.path().join("pids/isobox/box/cgroup.procs");
    fs::write(&procs, format!("{IMPOSSIBLE_PID}\n")).unwrap();
    let error = CgroupController::new(Some(root.path()), "box", false).unwrap_err();
    assert!(matches!(error, CgroupError::InUse(_)), "{error}");
    fs::write(&procs, "").unwrap();
}

#[test]
fn v1_writes_limits() {
    let root = fake_v1(Some("box"));
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    let dir = |controller: &str| root.path().join(controller).join("isobox/box");
    cgroup
        .apply_limits(&CgroupLimits {
            memory: Some(64 << 20),
            pids: Some(10),
            cpu_shares: Some(512),
            cpuset_cpus: Some("1".into()),
            cpuset_mems: Some("0".into()),
            cpu_bandwidth: Some(CpuBandwidth::from_thousandths(250)),
        })
        .unwrap();
    assert_eq!(read(dir("cpu").join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(dir("cpu").join("cpu.cfs_quota_us")), "25000");
    assert_eq!(
        read(dir("memory").join("memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(
        read(dir("memory").join("memory.memsw.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(read(dir("pids").join("pids.max")), "10");
    assert_eq!(read(dir("cpu").join("cpu.shares")), "512");
    assert_eq!(read(dir("cpuset").join("cpuset.cpus")), "1");
    assert_eq!(read(dir("cpuset").join("cpuset.mems")), "0");

    cgroup.apply_limits(&CgroupLimits::default()).unwrap();
    assert_eq!(read(dir("memory").join("memory.limit_in_bytes")), "-1");
    assert_eq!(
        read(dir("memory").join("memory.memsw.limit_in_bytes")),
        "-1"
    );
    assert_eq!(read(dir("pids").join("pids.max")), "max");
    assert_eq!(read(dir("cpu").join("cpu.shares")), "1024");
    // A cgroup kept for another run keeps neither the quota nor the
    // cpuset of the last one: both go back to what a new cgroup has.
    assert_eq!(read(dir("cpu").join("cpu.cfs_quota_us")), "-1");
    let parent = root.path().join("cpuset/isobox");
    assert_eq!(
        read(dir("cpuset").join("cpuset.cpus")),
        read(parent.join("cpuset.cpus")).trim()
    );
    assert_eq!(
        read(dir("cpuset").join("cpuset.mems")),
        read(parent.join("cpuset.mems")).trim()
    );
}

#[test]
fn v1_without_swap_accounting_turns_swappiness_off() {
    let root = fake_v1(Some("box"));
    let memory = root.path().join("memory/isobox/box");
    fs::remove_file(memory.join("memory.memsw.limit_in_bytes")).unwrap();
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    let limits = CgroupLimits {
        memory: Some(1 << 20),
        ..CgroupLimits::default()
    };
    cgroup.apply_limits(&limits).unwrap();
    assert_eq!(read(memory.join("memory.limit_in_bytes")), "1048576");
    assert_eq!(read(memory.join("memory.swappiness")), "0");
    assert!(!memory.join("memory.memsw.limit_in_bytes").exists());
}

#[test]
fn v1_reads_usage() {
    let root = fake_v1(Some("box"));
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    let dir = |controller: &str| root.path().join(controller).join("isobox/box");
    touch(&dir("cpuacct"), &[("cpuacct.usage", "2500000000\n")]);
    touch(
        &dir("memory"),
        &[
            ("memory.max_usage_in_bytes", "1048576\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
        ],
    );
    touch(
        &dir("pids"),
        &[("pids.events", "max 4\n"), ("pids.peak", "9\n")],
    );
    let expected = CgroupUsage {
        cpu_time: Duration::from_millis(2500),
        memory_peak: 1 << 20,
        oom_kills: 3,
        pids_limit_hits: 4,
        pids_peak: Some(9),
    };
    assert_eq!(cgroup.usage().unwrap(), expected);
    assert_eq!(cgroup.cpu_time().unwrap(), Duration::from_millis(2500));

    // A counter read again is read anew (the cgroup keeps its files open
    // from run to run).
    touch(&dir("pids"), &[("pids.events", "max 5\n")]);
    assert_eq!(cgroup.usage().unwrap().pids_limit_hits, 5);

    // Older kernels lack pids.events and the oom_kill line (a cgroup
    // opened there, which never kept those files).
    fs::remove_file(dir("pids").join("pids.events")).unwrap();
    fs::remove_file(dir("pids").join("pids.peak")).unwrap();
    touch(
        &dir("memory"),
        &[("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")],
    );
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    let usage = cgroup.usage().unwrap();
    assert_eq!((usage.oom_kills, usage.pids_limit_hits), (0, 0));
    assert_eq!(usage.pids_peak, None);

    // An unreadable peak of tasks is only not reported.
    touch(&dir("pids"), &[("pids.peak", "many\n")]);
    assert_eq!(cgroup.usage().unwrap().pids_peak, None);

    touch(&dir("memory"), &[("memory.max_usage_in_bytes", "lots\n")]);
    assert!(matches!(cgroup.usage(), Err(CgroupError::Parse { .. })));
}

#[test]
fn v1_add_process_joins_every_hierarchy() {
    let root = fake_v1(Some("box"));
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    cgroup.add_process(IMPOSSIBLE_PID).unwrap();
    for dir in cgroup.paths() {
        assert_eq!(read(dir.join("cgroup.procs")), IMPOSSIBLE_PID.to_string());
        // Empty again, so that dropping the controller finds no task.
        fs::write(dir.join("cgroup.procs"), "").unwrap();
    }
}

#[test]
fn v1_failed_write_is_an_error_only_when_strict() {
    for strict in [true, false] {
        let root = fake_v1(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", strict).unwrap();
        let pids_max = root.path().join("pids/isobox/box/pids.max");
        fs::remove_file(&pids_max).unwrap();
        fs::create_dir(&pids_max).unwrap();
        let shares = root.path().join("cpu/isobox/box/cpu.shares");
        fs::write(&shares, "").unwrap();
        let outcome = cgroup.apply_limits(&CgroupLimits::default());
        assert_eq!(outcome.is_err(), strict, "strict={strict}: {outcome:?}");
        // The writes after the failed one still happen when not strict.
        assert_eq!(read(shares) == "1024", !strict);
    }
}

#[test]
fn v2_instance_enables_controllers_top_down() {
    let root = fake_v2(Some("box"));
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    assert_eq!(cgroup.version(), CgroupVersion::V2);
    assert_eq!(cgroup.paths(), [root.path().join("isobox/box")]);
    assert!(cgroup.directory_fd().is_some());
    for dir in ["", "isobox"] {
        let control = root.path().join(dir).join("cgroup.subtree_control");
        assert_eq!(read(control), "+memory +pids +cpu +cpuset", "{dir}");
    }
    // The instance hands them on only with its first child: until then it
    // may hold a run itself.
    let control = root.path().join("isobox/box/cgroup.subtree_control");
    assert_eq!(read(&control), "");
    let _child = cgroup.create_child("run").unwrap();
    assert_eq!(read(&control), "+memory +pids +cpu +cpuset");
}

#[test]
fn v2_enables_only_offered_controllers() {
    let root = fake_v2(Some("box"));
    touch(root.path(), &[("cgroup.controllers", "memory io pids\n")]);
    let _cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    assert_eq!(
        read(root.path().join("cgroup.subtree_control")),
        "+memory +pids"
    );
}

#[test]
fn v2_writes_limits() {
    let root = fake_v2(Some("box"));
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    let dir = root.path().join("isobox/box");
    cgroup
        .apply_limits(&CgroupLimits {
            memory: Some(64 << 20),
            pids: Some(10),
            cpu_shares: Some(1024),
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: Some("0".into()),
            cpu_bandwidth: Some(CpuBandwidth {
                quota: Duration::from_millis(150),
                period: Duration::from_millis(50),
            }),
        })
        .unwrap();
    assert_eq!(read(dir.join("cpu.max")), "150000 50000");
    assert_eq!(read(dir.join("memory.max")), "67108864");
    assert_eq!(read(dir.join("memory.swap.max")), "0");
    assert_eq!(read(dir.join("pids.max")), "10");
    assert_eq!(read(dir.join("cpu.weight")), "100");
    assert_eq!(read(dir.join("cpuset.cpus")), "0-1");
    assert_eq!(read(dir.join("cpuset.mems")), "0");

    for (shares, weight) in [(2, "1"), (262_144, "10000")] {
        let limits = CgroupLimits {
            cpu_shares: Some(shares),
            ..CgroupLimits::default()
        };
        cgroup.apply_limits(&limits).unwrap();
        assert_eq!(read(dir.join("cpu.weight")), weight, "shares {shares}");
    }

    cgroup.apply_limits(&CgroupLimits::default()).unwrap();
    assert_eq!(read(dir.join("memory.max")), "max");
    assert_eq!(read(dir.join("memory.swap.max")), "max");
    assert_eq!(read(dir.join("pids.max")), "max");
    assert_eq!(read(dir.join("cpu.weight")), "100");

    // Without swap accounting there is no memory.swap.max to write.
    fs::remove_file(dir.join("memory.swap.max")).unwrap();
    let limits = CgroupLimits {
        memory: Some(1 << 20),
        ..CgroupLimits::default()
    };
    cgroup.apply_limits(&limits).unwrap();
    assert_eq!(read(dir.join("memory.max")), "1048576");
    assert!(!dir.join("memory.swap.max").exists());
}

#[test]
fn v2_reads_usage() {
    let root = fake_v2(Some("box"));
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    let dir = root.path().join("isobox/box");
    touch(
        &dir,
        &[
            (
                "cpu.stat",
                "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
            ),
            ("memory.peak", "8388608\n"),
            ("memory.current", "4096\n"),
            ("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n"),
            ("pids.events", "max 7\n"),
            ("pids.peak", "3\n"),
        ],
    );
    let expected = CgroupUsage {
        cpu_time: Duration::from_millis(1500),
        memory_peak: 8 << 20,
        oom_kills: 1,
        pids_limit_hits: 7,
        pids_peak: Some(3),
    };
    assert_eq!(cgroup.usage().unwrap(), expected);

    // Before Linux 5.19 there is no memory.peak.
    fs::remove_file(dir.join("memory.peak")).unwrap();
    assert_eq!(cgroup.usage().unwrap().memory_peak, 4096);

    // Controllers that are off leave their counters at 0.
    for file in [
        "memory.current",
        "memory.events",
        "pids.events",
        "pids.peak",
    ] {
        fs::remove_file(dir.join(file)).unwrap();
    }
    let usage = cgroup.usage().unwrap();
    assert_eq!(usage.pids_peak, None);
    assert_eq!(
        (usage.memory_peak, usage.oom_kills, usage.pids_limit_hits),
        (0, 0, 0)
    );

    touch(&dir, &[("pids.events", "max many\n")]);
    assert!(matches!(cgroup.usage(), Err(CgroupError::Parse { .. })));
}

#[test]
fn v2_without_memory_peak_keeps_the_largest_sample() {
    let root = fake_v2(Some("box"));
    let dir = root.path().join("isobox/box");
    // Before Linux 5.19: no memory.peak from the start.
    fs::remove_file(dir.join("memory.peak")).unwrap();
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    for current in ["5000000\n", "7000000\n", "100\n"] {
        touch(&dir, &[("memory.current", current)]);
        cgroup.cpu_time().unwrap();
    }
    assert_eq!(cgroup.usage().unwrap().memory_peak, 7_000_000);
    // A final reading above every sample wins.
    touch(&dir, &[("memory.current", "9000000\n")]);
    assert_eq!(cgroup.usage().unwrap().memory_peak, 9_000_000);
}

#[test]
fn v2_enables_only_missing_controllers() {
    let root = fake_v2(Some("box"));
    // As the kernel lists them: no `+`, some already enabled.
    touch(root.path(), &[("cgroup.subtree_control", "cpu memory\n")]);
    let _cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    assert_eq!(
        read(root.path().join("cgroup.subtree_control")),
        "+pids +cpuset"
    );
    // Everything enabled already: nothing is written (which would need
    // write permission on a delegated cgroup).
    let shared = root.path().join("isobox/cgroup.subtree_control");
    touch(
        &root.path().join("isobox"),
        &[("cgroup.subtree_control", "cpuset cpu memory pids\n")],
    );
    let _again = CgroupController::new(Some(root.path()), "other", false);
    assert_eq!(read(&shared), "cpuset cpu memory pids\n");
}

#[test]
fn v2_add_process_writes_the_pid() {
    let root = fake_v2(Some("box"));
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    let procs = root.path().join("isobox/box/cgroup.procs");
    cgroup.add_process(IMPOSSIBLE_PID).unwrap();
    assert_eq!(read(&procs), IMPOSSIBLE_PID.to_string());
    fs::write(&procs, "").unwrap();
}

#[test]
fn v2_failed_write_is_an_error_only_when_strict() {
    for strict in [true, false] {
        let root = fake_v2(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", strict).unwrap();
        let memory_max = root.path().join("isobox/box/memory.max");
        fs::remove_file(&memory_max).unwrap();
        fs::create_dir(&memory_max).unwrap();
        let limits = CgroupLimits {
            pids: Some(3),
            ..CgroupLimits::default()
        };
        let outcome = cgroup.apply_limits(&limits);
        assert_eq!(outcome.is_err(), strict, "strict={strict}: {outcome:?}");
        let pids_max = read(root.path().join("isobox/box/pids.max"));
        assert_eq!(pids_max == "3", !strict);
    }
}

#[test]
fn v2_strict_new_fails_when_controllers_cannot_be_enabled() {
    let root = fake_v2(Some("box"));
    fs::remove_file(root.path().join("isobox/cgroup.subtree_control")).unwrap();
    assert!(CgroupController::new(Some(root.path()), "box", true).is_err());
    // Not strict: the failure is logged and the cgroup is usable.
    assert!(CgroupController::new(Some(root.path()), "box", false).is_ok());
}

#[test]
fn v2_remove_takes_children_along_and_is_idempotent() {
    // Created by new() itself, hence empty directories that rmdir can
    // take; the control files are missing, so only non-strict works.
    let root = fake_v2(None);
    let mut cgroup = CgroupController::new(Some(root.path()), "box", false).unwrap();
    let mut child = cgroup.create_child("run").unwrap();
    assert_eq!(child.paths(), [root.path().join("isobox/box/run")]);
    assert!(child.directory_fd().is_some());
    let paths = cgroup.paths();
    cgroup.remove().unwrap();
    assert!(paths.iter().all(|p| !p.exists()));
    assert!(
        root.path().join("isobox").is_dir(),
        "the shared parent stays"
    );
    cgroup.remove().unwrap();
    child.remove().unwrap();
}

#[test]
fn only_an_instance_made_here_and_unused_is_fresh_once() {
    for (made_here, root) in [(true, fake_v2(None)), (false, fake_v2(Some("box")))] {
        let cgroup = CgroupController::new(Some(root.path()), "box", false).unwrap();
        assert_eq!(
            cgroup.claim_fresh(),
            made_here,
            "v2, made here: {made_here}"
        );
        assert!(!cgroup.claim_fresh(), "claimed twice");
    }
    for (made_here, root) in [(true, fake_v1(None)), (false, fake_v1(Some("box")))] {
        let cgroup = CgroupController::new(Some(root.path()), "box", false).unwrap();
        assert_eq!(
            cgroup.claim_fresh(),
            made_here,
            "v1, made here: {made_here}"
        );
    }
    // A child ends the freshness: the instance's controllers and limits
    // now serve it.
    let root = fake_v2(None);
    let cgroup = CgroupController::new(Some(root.path()), "box", false).unwrap();
    let _child = cgroup.create_child("run").unwrap();
    assert!(!cgroup.claim_fresh());
}

#[test]
fn a_reused_instance_keeps_no_limit_of_its_last_run() {
    // What a run held directly by the instance leaves when its keeper
    // dies before removing it.
    let root = fake_v1(Some("box"));
    let instance = root.path().join("memory/isobox/box");
    fs::write(instance.join("memory.limit_in_bytes"), "1048576").unwrap();
    fs::write(root.path().join("pids/isobox/box/pids.max"), "5").unwrap();
    fs::write(root.path().join("cpuset/isobox/box/cpuset.cpus"), "1").unwrap();
    let _cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    assert_eq!(read(instance.join("memory.limit_in_bytes")), "-1");
    assert_eq!(read(root.path().join("pids/isobox/box/pids.max")), "max");
    assert_eq!(
        read(root.path().join("cpuset/isobox/box/cpuset.cpus")),
        read(root.path().join("cpuset/isobox/cpuset.cpus")).trim()
    );

    let root = fake_v2(Some("box"));
    let instance = root.path().join("isobox/box");
    fs::write(instance.join("memory.max"), "1048576").unwrap();
    fs::write(instance.join("cpuset.cpus"), "1").unwrap();
    let _cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    assert_eq!(read(instance.join("memory.max")), "max");
    assert_eq!(read(instance.join("cpuset.cpus")), "");
}

#[test]
fn v2_a_child_that_cannot_get_the_controllers_is_not_made() {
    // The instance directory is made by new(), without control files.
    let root = fake_v2(None);
    let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
    assert!(cgroup.create_child("run").is_err());
    assert!(!root.path().join("isobox/box/run").exists());
}

#[test]
fn a_remembered_layout_is_looked_for_once_per_root_and_a_failure_never_kept() {
    let remembered: super::Remembered<&str, u32> = super::Remembered::new();
    let looks = std::cell::Cell::new(0);
    let look = |value: Result<u32, ()>| {
        looks.set(looks.get() + 1);
        value
    };
    // Not remembering: every use looks.
    for _ in 0..2 {
        assert_eq!(remembered.get_or_find(false, "a", || look(Ok(1))), Ok(1));
    }
    assert_eq!(looks.get(), 2);
    // Remembering: a failure is looked for again, a success once per key.
    assert_eq!(remembered.get_or_find(true, "a", || look(Err(()))), Err(()));
    assert_eq!(remembered.get_or_find(true, "a", || look(Ok(3))), Ok(3));
    assert_eq!(remembered.get_or_find(true, "a", || look(Ok(4))), Ok(3));
    assert_eq!(remembered.get_or_find(true, "b", || look(Ok(5))), Ok(5));
    assert_eq!(looks.get(), 5);
}
