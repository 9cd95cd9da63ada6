//! isobox installed in place of isolate 2.6: isolate's own configuration
//! file as its Makefile renders it (`subid_user` and all), per-box CPU
//! pinning, `--syscalls` and `syscall_flags`, the version text front-ends
//! parse, errors under the invoked name, and inline comments refused.
//!
//! Run as root (privileged tests); the `/etc/subuid` of the first test is
//! a file bound over the real one in a mount namespace of its own.

mod common;
mod isolate_support;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::skip_unless_privileged;
use isolate_support::{slot_id, Isolate, Outcome, FIRST_UID};

/// isolate 2.6's `default.cf.in`, rendered as its Makefile does
/// (`sed "s|@SBINDIR@|$(SBINDIR)|g; s|@BOXDIR@|$(BOXDIR)|g"`), with `BOXDIR`
/// set on make's command line to `box_root`.
fn isolate_26_default_cf(box_root: &Path) -> String {
    include_str!("isolate_support/isolate-2.6-default.cf.in")
        .replace("@SBINDIR@", "/usr/local/sbin")
        .replace("@BOXDIR@", &box_root.display().to_string())
}

#[test]
fn isolate_26s_own_configuration_file_works_as_it_is() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let root = isolate.root();
    let box_root = root.join("isolate-boxes");
    fs::create_dir(&box_root).unwrap();
    let config = root.join("default.cf");
    fs::write(&config, isolate_26_default_cf(&box_root)).unwrap();
    // The subordinate ids of user `isolate`: a block of uids and one of
    // gids that differ, both within this test's ids.
    let id = slot_id(72, 0);
    let (subuid, subgid) = (root.join("subuid"), root.join("subgid"));
    fs::write(
        &subuid,
        format!("someone:100000:65536\nisolate:{FIRST_UID}:1000\n"),
    )
    .unwrap();
    fs::write(&subgid, format!("isolate:{}:1000\n", FIRST_UID + 1)).unwrap();
    // /run is private too: lock_root is /run/isolate/locks.
    let script = format!(
        "set -e\n\
         mount --bind {subuid} /etc/subuid\n\
         mount --bind {subgid} /etc/subgid\n\
         mount -t tmpfs -o mode=0755 isobox-test-run /run\n\
         isolate=$1\n\
         \"$isolate\" -b {id} --init\n\
         \"$isolate\" -b {id} -s -p -E PATH=/usr/bin:/bin --run -- /bin/sh -c 'echo $(id -u) $(id -g)'\n\
         \"$isolate\" -b {cg_id} --cg --init || echo \"cg refused: $?\"\n\
         \"$isolate\" -b {id} --cleanup\n\
         \"$isolate\" -b 1000 --init || echo \"1000 refused: $?\"\n",
        subuid = subuid.display(),
        subgid = subgid.display(),
        cg_id = id + 1,
    );
    let outcome: Outcome = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(&script)
        .arg("sh")
        .arg(&isolate.link)
        .env("ISOBOX_CONFIG", &config)
        .current_dir(root)
        .output()
        .expect("running unshare")
        .into();
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            box_root.join(id.to_string()).display().to_string().as_str(),
            // uid from /etc/subuid, gid from /etc/subgid, each + box id.
            &format!("{} {}", FIRST_UID + id, FIRST_UID + 1 + id),
            "cg refused: 2",
            // num_boxes: the smaller block.
            "1000 refused: 2",
        ],
        "{outcome:?}"
    );
    // --cg needs the cgroup isolate's service writes into
    // /run/isolate/cgroup; without it the error says so, under isolate's
    // name.
    let errors: Vec<&str> = outcome.stderr.lines().collect();
    let cg_error = errors
        .iter()
        .find(|line| line.contains("auto:/run/isolate/cgroup"))
        .unwrap_or_else(|| panic!("{outcome:?}"));
    assert!(cg_error.starts_with("isolate: "), "{cg_error}");
    // The system's reason, once.
    assert_eq!(cg_error.matches("No such file").count(), 1, "{cg_error}");
    assert!(
        errors
            .iter()
            .any(|line| line.starts_with("isolate: ") && line.contains("out of range")),
        "{outcome:?}"
    );
    isolate_support::assert_box_gone(&isolate, id);
    for id in [id, id + 1] {
        assert!(!box_root.join(id.to_string()).exists(), "box {id} survived");
    }
}

#[test]
fn per_box_cpus_pin_the_box() {
    skip_unless_privileged!();
    let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    // The last online CPU: a set other than "all" wherever there are two.
    let last = online.trim().rsplit([',', '-']).next().unwrap().to_string();
    let id = slot_id(72, 1);
    let isolate = Isolate::with_extra_config(&format!("box{id}.cpus = {last}\nbox{id}.mems = 0\n"));
    let sandbox = isolate.open_box(id, true);
    let (outcome, meta) = sandbox.run(
        &["-s"],
        &[
            "/bin/grep",
            "-E",
            "^(Cpus|Mems)_allowed_list",
            "/proc/self/status",
        ],
    );
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    assert_eq!(
        outcome.stdout,
        format!("Cpus_allowed_list:\t{last}\nMems_allowed_list:\t0\n")
    );
    // Another box of the same installation is not pinned.
    let other = isolate.open_box(slot_id(72, 2), true);
    let (outcome, _) = other.run(
        &["-s"],
        &["/bin/grep", "^Cpus_allowed_list", "/proc/self/status"],
    );
    assert_eq!(
        outcome.stdout,
        format!("Cpus_allowed_list:\t{}\n", online.trim())
    );
}

#[test]
fn syscalls_option_and_syscall_flags_select_isolates_restrictions() {
    skip_unless_privileged!();
    // flock(2): isolate's flag 4.
    let lock = ["/usr/bin/flock", "/box/lock", "/bin/true"];
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(72, 3), false);
    sandbox.write("lock", "");
    // flock(1) runs its command in a child.
    let code = |options: &[&str]| {
        let options: Vec<&str> = ["-p"].iter().chain(options).copied().collect();
        let (outcome, meta) = sandbox.run(&options, &lock);
        (outcome.code, meta)
    };
    // The default: every restriction.
    let (refused, meta) = code(&[]);
    assert_eq!(refused, 1, "{meta}");
    for allowed in [
        &["--syscalls=0"][..],
        &["--syscalls", "65531"],
        &["--syscalls=11"],
    ] {
        let (status, meta) = code(allowed);
        assert_eq!(status, 0, "{allowed:?}: {meta}");
    }
    assert_eq!(code(&["--syscalls=4"]).0, 1);

    // The configuration's syscall_flags is the default; --syscalls wins.
    let relaxed = Isolate::with_extra_config("syscall_flags = 0\n");
    let sandbox = relaxed.open_box(slot_id(72, 4), false);
    sandbox.write("lock", "");
    let (outcome, meta) = sandbox.run(&["-p"], &lock);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    let (outcome, meta) = sandbox.run(&["-p", "--syscalls=65535"], &lock);
    assert_eq!(outcome.code, 1, "{outcome:?}\n{meta}");
}

#[test]
fn version_text_parses_as_isolates() {
    let isolate = Isolate::new();
    for args in [&["--version"][..], &["--cg", "--version"]] {
        let outcome = isolate.isolate(args);
        assert_eq!(outcome.code, 0, "{outcome:?}");
        let mut lines = outcome.stdout.lines();
        // Front-ends strip this prefix from the first line and keep the
        // rest as the version.
        let first = lines.next().unwrap();
        assert_eq!(first.strip_prefix("The process isolator "), Some("2.6"));
        let second = lines.next().unwrap();
        assert!(second.starts_with("isobox "), "{outcome:?}");
        assert!(second.contains(env!("CARGO_PKG_VERSION")), "{outcome:?}");
        assert_eq!(lines.next(), None);
    }
    // The native face keeps its own.
    let native = Command::new(env!("CARGO_BIN_EXE_isobox"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&native.stdout),
        format!(
            "isobox {} (commit {})\n",
            env!("CARGO_PKG_VERSION"),
            env!("ISOBOX_COMMIT")
        )
    );
}

#[test]
fn errors_start_with_the_invoked_name() {
    let isolate = Isolate::new();
    let outcome = isolate.isolate(&["--bogus"]);
    assert_eq!(outcome.code, 2);
    assert_eq!(
        outcome.stderr,
        "isolate: unrecognized option '--bogus' (see isolate --help)\n"
    );
    let outcome = isolate.isolate(&["-b", "100000", "--init"]);
    assert_eq!(outcome.code, 2);
    assert!(
        outcome
            .stderr
            .starts_with("isolate: box id 100000 is out of range"),
        "{outcome:?}"
    );
    // The same face called as isobox says isobox.
    let outcome: Outcome = Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(["--bogus"])
        .env("ISOBOX_CONFIG", &isolate.config)
        .output()
        .unwrap()
        .into();
    assert!(
        outcome.stderr.starts_with("isobox: unrecognized option"),
        "{outcome:?}"
    );
}

#[test]
fn an_inline_comment_in_the_configuration_is_refused_naming_the_line() {
    let isolate = Isolate::with_extra_config("box_quota = 4096,256    # a comment\n");
    let outcome = isolate.isolate(&["-b", &slot_id(72, 5).to_string(), "--init"]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:?}");
    // The test configuration has six lines before this one.
    let expected = format!("isolate: {}, line 7: ", isolate.config.display());
    assert!(outcome.stderr.starts_with(&expected), "{outcome:?}");
    assert!(outcome.stderr.contains("comment"), "{outcome:?}");
    assert!(!isolate.box_root.join(slot_id(72, 5).to_string()).exists());
}

#[test]
fn check_config_vv_prints_the_parsed_configuration_as_isolate_does() {
    let isolate = Isolate::with_extra_config("syscall_flags = 27\nrestricted_init = 1\n");
    let outcome = isolate.isolate(&["--check-config", "-vv"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let config_lines: Vec<&str> = outcome
        .stdout
        .lines()
        .filter(|line| line.starts_with("Config: "))
        .collect();
    assert_eq!(config_lines.len(), 3, "{outcome:?}");
    assert!(config_lines[0].contains(&format!("box_root={} ", isolate.box_root.display())));
    assert_eq!(
        config_lines[1],
        format!("Config: first_uids={FIRST_UID} first_gid={FIRST_UID} num_boxes=1000")
    );
    assert_eq!(
        config_lines[2],
        "Config: restricted_init=1 syscall_flags=27"
    );
    // Without -vv, nothing of it.
    let quiet = isolate.isolate(&["--check-config"]);
    assert!(!quiet.stdout.contains("Config: "), "{quiet:?}");
}

/// `-n 0` is "no limit on open files" as in isolate's usage text, not the
/// default 1024: the kernel's most (`fs.nr_open`), or as many as this
/// process may have where it may not raise its own hard limit.
#[test]
fn open_files_zero_is_no_limit() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(72, 6), false);
    let limits = |options: &[&str]| {
        let (outcome, meta) = sandbox.run(options, &["/bin/sh", "-c", "ulimit -Sn; ulimit -Hn"]);
        assert_eq!(outcome.code, 0, "{options:?}: {outcome:?}\n{meta}");
        let values: Vec<u64> = outcome.stdout.lines().map(|l| l.parse().unwrap()).collect();
        values
    };
    assert_eq!(limits(&[]), [1024, 1024], "isolate's default");
    assert_eq!(limits(&["-n", "77"]), [77, 77]);
    let nr_open: u64 = fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let own_hard: u64 = fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(4))
        .unwrap()
        .parse()
        .unwrap();
    let unlimited = limits(&["-n", "0"]);
    assert_eq!(unlimited[0], unlimited[1], "{unlimited:?}");
    assert!(
        unlimited[0] == nr_open || unlimited[0] == own_hard.max(1024),
        "{unlimited:?}, nr_open {nr_open}, our hard limit {own_hard}"
    );
    assert!(unlimited[0] > 1024 || own_hard <= 1024, "{unlimited:?}");
}

/// A box pinned to a CPU the machine does not have fails every run with
/// one clear line naming the cgroup file, cold (first run) or through the
/// box's agent (the next ones) alike, and the box stays usable for
/// `--cleanup`.
#[test]
fn a_pinning_the_kernel_refuses_is_one_line_per_run() {
    skip_unless_privileged!();
    let id = slot_id(72, 7);
    let isolate = Isolate::with_extra_config(&format!("box{id}.cpus = 4095\n"));
    let sandbox = isolate.open_box(id, true);
    for run in 0..3 {
        let (outcome, _) = sandbox.run(&[], &["/bin/true"]);
        assert_eq!(outcome.code, 2, "run {run}: {outcome:?}");
        let lines: Vec<&str> = outcome.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "run {run}: {outcome:?}");
        assert!(lines[0].contains("cpuset.cpus"), "run {run}: {outcome:?}");
        let reason = lines[0].rsplit(": ").next().unwrap();
        assert_eq!(
            lines[0].matches(reason).count(),
            1,
            "run {run}: the reason said twice: {outcome:?}"
        );
    }
}
