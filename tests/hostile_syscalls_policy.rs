//! Hostile programs against the default-deny system-call policy: socket
//! families, file locks on shared inodes, terminal injection, personality
//! bits, unknown and newer calls, host-wide kernel pools (legacy AIO,
//! notification), isolate's `syscall_flags` switches, the i386 entry, and
//! memory a program could hold outside `RLIMIT_AS` when no memory cgroup
//! limits the run (System V shared memory, memfd, tmpfs). Where the policy
//! alone refuses, a control run shows the call getting through without it.

mod common;
mod isolate_support;

use std::time::Duration;

use common::{
    assert_output, assert_status, hostile, outcome_lines, skip_unless_privileged, sysctl, Brief,
    TestBox,
};
use isobox::config::syscall_flags;
use isobox::ExecutionStatus;
use isolate_support::{slot_id, Isolate};

const MIB: u64 = 1 << 20;

/// Runs the `policy` program with `probes` and asserts each outcome.
fn probe(test_box: &TestBox, program: &str, expected: &[(&str, &str)]) {
    let mut words = vec![program];
    words.extend(expected.iter().map(|(name, _)| *name));
    let result = test_box.run_hostile(&words);
    assert_output(&result, &outcome_lines(expected));
}

/// Attack: sockets of every family but AF_UNIX (vsock reaches the
/// hypervisor, netlink uevents the host's devices); the family's high bits.
#[test]
fn socket_families_are_unix_only() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let policy = test_box.install(&hostile("policy"));
    let refused = "EAFNOSUPPORT";
    probe(
        &test_box,
        &policy,
        &[
            ("unix", "SUCCEEDED"),
            ("inet", refused),
            ("inet6", refused),
            ("vsock", refused),
            ("vsock_high_bits", refused),
            ("netlink_uevent", refused),
            ("packet", refused),
            ("socketpair_inet", refused),
        ],
    );
    // With the host's network: the internet families, nothing more.
    test_box.config.share_net = true;
    probe(
        &test_box,
        &policy,
        &[
            ("inet", "SUCCEEDED"),
            ("inet6", "SUCCEEDED"),
            ("vsock", refused),
            ("netlink_uevent", refused),
        ],
    );
    // Control: without the policy a uevent socket opens.
    test_box.config.share_net = false;
    test_box.config.seccomp = false;
    probe(&test_box, &policy, &[("netlink_uevent", "SUCCEEDED")]);
    test_box.remove();
}

/// Attack: modify_ldt, the mount API's newest call (open_tree_attr, newer
/// than the policy), a call number no kernel has, an executable heap with
/// personality(READ_IMPLIES_EXEC), fanotify and inotify on shared inodes,
/// prctl options outside the subset; ordinary uses still work.
#[test]
fn calls_outside_the_allowlist_are_refused() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let policy = test_box.install(&hostile("policy"));
    probe(
        &test_box,
        &policy,
        &[
            ("modify_ldt", "EPERM"),
            ("open_tree_attr", "ENOSYS"),
            ("unknown_call", "ENOSYS"),
            ("personality_rie", "EPERM"),
            ("personality_linux32", "SUCCEEDED"),
            ("fanotify_init", "EPERM"),
            ("inotify_init", "EPERM"),
            ("prctl_set_mm", "EINVAL"),
            ("prctl_set_name", "SUCCEEDED"),
        ],
    );
    test_box.config.seccomp = false;
    probe(
        &test_box,
        &policy,
        &[
            ("modify_ldt", "SUCCEEDED"),
            ("personality_rie", "SUCCEEDED"),
            ("inotify_init", "SUCCEEDED"),
            ("prctl_set_mm", "EPERM"),
        ],
    );
    test_box.remove();
}

/// Attack: locks, leases and dnotify on an inode every box shares (the
/// program's own binary, the root directory): a side channel between
/// concurrent boxes. isolate's flag 4 switches the restriction.
#[test]
fn file_locks_on_shared_inodes() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let policy = test_box.install(&hostile("policy"));
    probe(
        &test_box,
        &policy,
        &[
            ("flock", "ENOSYS"),
            ("fcntl_setlk", "EPERM"),
            ("fcntl_setlkw", "EPERM"),
            ("fcntl_ofd_setlk", "EPERM"),
            ("fcntl_setlease", "EPERM"),
            ("fcntl_notify", "EPERM"),
            ("fcntl_getlk", "SUCCEEDED"),
            ("fcntl_getfl", "SUCCEEDED"),
        ],
    );
    test_box.config.syscall_flags = syscall_flags::ALL & !syscall_flags::FCNTL;
    probe(
        &test_box,
        &policy,
        &[
            ("flock", "SUCCEEDED"),
            ("fcntl_setlk", "SUCCEEDED"),
            ("fcntl_ofd_setlk", "SUCCEEDED"),
            ("fcntl_notify", "SUCCEEDED"),
        ],
    );
    test_box.remove();
}

/// isolate's flags 1 (keyrings), 2 (vsock) and 8 (io_uring), each on by
/// default and off when cleared.
#[test]
fn isolate_syscall_flags_switch_their_restrictions() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let policy = test_box.install(&hostile("policy"));
    probe(
        &test_box,
        &policy,
        &[
            ("keyctl", "EPERM"),
            ("io_uring_setup", "EPERM"),
            ("vsock", "EAFNOSUPPORT"),
        ],
    );
    let uring = sysctl("kernel/io_uring_disabled").is_none_or(|value| value == "0");
    let vsock = std::path::Path::new("/sys/module/vsock").exists();
    test_box.config.syscall_flags = 0;
    let mut expected = vec![("keyctl", "SUCCEEDED")];
    if vsock {
        expected.push(("vsock", "SUCCEEDED"));
    }
    probe(&test_box, &policy, &expected);
    if uring {
        // Past the filter the kernel makes the ring, or (newer kernels,
        // which charge it to RLIMIT_MEMLOCK, 0 in a box) refuses it with
        // ENOMEM: the kernel's answer either way, not the filter's EPERM.
        let result = test_box.run_hostile(&[&policy, "io_uring_setup"]);
        assert_status(&result, ExecutionStatus::Success);
        assert!(
            ["io_uring_setup: SUCCEEDED\n", "io_uring_setup: ENOMEM\n"]
                .contains(&result.stdout.as_str()),
            "{:?}",
            Brief(&result)
        );
    }
    // The rest of the allowlist stays: no flag opens the mount API.
    probe(&test_box, &policy, &[("modify_ldt", "EPERM")]);
    test_box.remove();
}

/// Attack: push keystrokes into the caller's terminal (TIOCSTI, TIOCLINUX),
/// also with garbage in the command's upper bits; refused whatever the flags.
#[test]
fn terminal_injection_is_refused() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let policy = test_box.install(&hostile("policy"));
    let expected = [
        ("tiocsti", "EPERM"),
        ("tiocsti_high_bits", "EPERM"),
        ("tioclinux", "EPERM"),
        ("tcgets", "ENOTTY"),
    ];
    probe(&test_box, &policy, &expected);
    test_box.config.syscall_flags = 0;
    probe(&test_box, &policy, &expected);
    // Control: without the policy the kernel looks at the descriptor.
    test_box.config.seccomp = false;
    probe(&test_box, &policy, &[("tiocsti", "ENOTTY")]);
    test_box.remove();
}

/// Attack: reserve the host-wide legacy AIO pool (fs.aio-max-nr), whose
/// fill level (fs.aio-nr) every box can read.
#[test]
fn legacy_aio_is_refused() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let policy = test_box.install(&hostile("policy"));
    probe(&test_box, &policy, &[("io_setup", "EPERM")]);
    test_box.config.syscall_flags = 0;
    probe(&test_box, &policy, &[("io_setup", "EPERM")]);
    test_box.config.seccomp = false;
    probe(&test_box, &policy, &[("io_setup", "SUCCEEDED")]);
    test_box.remove();
}

/// With isolate's flag 16 cleared, the i386 entry works, and the same
/// policy judges it with the i386 numbers.
#[test]
fn i386_entry_when_foreign_arches_are_allowed() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.syscall_flags = syscall_flags::ALL & !syscall_flags::LEGACY_ARCH;
    let int80 = test_box.install(&hostile("int80"));
    let result = test_box.run_hostile(&[&int80]);
    assert_eq!(result.exit_code, Some(3), "{:?}", Brief(&result));
    assert!(
        result.stdout.starts_with("int80: trying\nint80: returned "),
        "{:?}",
        Brief(&result)
    );
    let policy = test_box.install(&hostile("policy"));
    probe(
        &test_box,
        &policy,
        &[
            ("i386_getpid", "SUCCEEDED"),
            ("i386_keyctl", "EPERM"),
            ("i386_mount", "EPERM"),
            ("i386_unshare_user", "EPERM"),
            ("i386_socket_vsock", "EAFNOSUPPORT"),
            ("i386_ioctl_tiocsti", "EPERM"),
        ],
    );
    // Control: the i386 keyring call is the filter's doing.
    test_box.config.seccomp = false;
    probe(&test_box, &policy, &[("i386_keyctl", "SUCCEEDED")]);
    test_box.remove();
}

/// A box with a memory limit and no cgroup (limits by rlimit, as isolate
/// without `--cg`).
fn box_without_cgroup(memory: u64) -> TestBox {
    let mut test_box = TestBox::hostile();
    test_box.config.strict_mode = false;
    test_box.config.cgroup_root = Some("/nonexistent".into());
    test_box.config.memory_limit = Some(memory);
    test_box.config.time_limit = Some(Duration::from_secs(10));
    test_box.config.wall_time_limit = Some(Duration::from_secs(30));
    test_box
}

/// The MiB a `policy` memory probe reports holding.
fn held(line: &str) -> u64 {
    line.split("held ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|mib| mib.parse().ok())
        .unwrap_or_else(|| panic!("no amount in {line:?}"))
}

/// Attack: with a memory limit but no memory cgroup, hold memory where
/// RLIMIT_AS does not look: System V segments (attached, filled, detached),
/// a memfd, files in the box's /tmp and /dev/shm tmpfs.
#[test]
fn memory_outside_the_address_space_without_a_cgroup() {
    skip_unless_privileged!();
    let limit = 48 * MIB;
    let mut test_box = box_without_cgroup(limit);
    let policy = test_box.install(&hostile("policy"));
    let result =
        test_box.run_hostile(&[&policy, "shm", "memfd", "fill", "/tmp", "fill", "/dev/shm"]);
    assert_status(&result, ExecutionStatus::Success);
    let lines: Vec<&str> = result.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{:?}", Brief(&result));
    assert!(lines[0].starts_with("shm: held "), "{:?}", Brief(&result));
    assert!(held(lines[0]) <= limit / MIB, "{:?}", Brief(&result));
    assert_eq!(lines[1], "memfd: EPERM", "{:?}", Brief(&result));
    for line in &lines[2..] {
        assert!(held(line) <= limit / MIB, "{line}: {:?}", Brief(&result));
    }

    // Control: a memory cgroup counts all of it, so memfd is allowed there.
    test_box.config.cgroup_root = None;
    test_box.config.strict_mode = true;
    probe(&test_box, &policy, &[("memfd_create", "SUCCEEDED")]);
    test_box.remove();
}

/// The isolate face: the `syscall_flags` configuration key sets the
/// restrictions, `--syscalls` overrides it for one run. (Box ids of slot 57
/// of `tests/isolate_support`.)
#[test]
fn isolate_face_syscalls_option_and_configuration_key() {
    skip_unless_privileged!();
    let program = hostile("policy");
    for (config, options, expected) in [
        ("", &[][..], "keyctl: EPERM\nflock: ENOSYS\n"),
        (
            "syscall_flags = 0\n",
            &[][..],
            "keyctl: SUCCEEDED\nflock: SUCCEEDED\n",
        ),
        (
            "syscall_flags = 0\n",
            &["--syscalls=1"][..],
            "keyctl: EPERM\nflock: SUCCEEDED\n",
        ),
        (
            "",
            &["--syscalls=4"][..],
            "keyctl: SUCCEEDED\nflock: ENOSYS\n",
        ),
    ] {
        let isolate = Isolate::with_extra_config(config);
        let sandbox = isolate.open_box(slot_id(57, 0), false);
        let policy = sandbox.install(&program, "policy");
        let (outcome, meta) = sandbox.run(options, &[&policy, "keyctl", "flock"]);
        assert_eq!(
            outcome.code, 0,
            "{config:?} {options:?}: {} {meta}",
            outcome.stderr
        );
        assert_eq!(outcome.stdout, expected, "{config:?} {options:?}");
    }
}
