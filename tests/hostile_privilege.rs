//! Hostile programs against the credentials and the seccomp policy: asking
//! for root, tracing, mounting, new namespaces, the kernel's dangerous
//! interfaces, the clock, the hostname, foreign system-call ABIs, signals to
//! the host and the host's System V IPC. Where a refusal comes from the
//! seccomp policy alone, the same program runs again with seccomp off as a
//! control: it must then get through, which proves the test can see the
//! policy fail.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{
    assert_output, assert_status, hostile, outcome_lines, skip_unless_privileged, sysctl, Brief,
    TestBox,
};
use isobox::ExecutionStatus;

/// Whether an unprivileged process may create a user namespace here
/// (Debian's switch, and a nonzero namespace count).
fn unprivileged_userns() -> bool {
    sysctl("kernel/unprivileged_userns_clone").is_none_or(|value| value != "0")
        && sysctl("user/max_user_namespaces").is_none_or(|value| value != "0")
}

/// Runs the `syscalls` program with `calls` in a hostile box, with the
/// default policy, and asserts each call's outcome. With `control`, runs
/// again with seccomp off and asserts those outcomes.
fn attempt_calls(expected: &[(&str, &str)], control: Option<&[(&str, &str)]>) {
    let mut test_box = TestBox::hostile();
    let syscalls = test_box.install(&hostile("syscalls"));
    let mut words = vec![syscalls.as_str()];
    words.extend(expected.iter().map(|(name, _)| *name));
    let result = test_box.run_hostile(&words);
    assert_output(&result, &outcome_lines(expected));
    if let Some(control) = control {
        test_box.config.seccomp = false;
        let result = test_box.run_hostile(&words);
        assert_output(&result, &outcome_lines(control));
    }
    test_box.remove();
}

/// Attack: setuid(0), setgid(0), setgroups, capset, ambient caps, clearing no_new_privs.
#[test]
fn setuid_zero_and_capabilities() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let creds = test_box.install(&hostile("creds"));
    let result = test_box.run_hostile(&[&creds]);
    let uid = test_box.uid_inside();
    // Rootless, uid and gid 0 are not mapped in the box's user namespace:
    // the kernel refuses them as invalid before any privilege check.
    let zero = if common::rootless() {
        "EINVAL"
    } else {
        "EPERM"
    };
    let none = "0000000000000000";
    assert_output(
        &result,
        &format!(
            "ids: {uid} {uid} {uid} / {uid} {uid} {uid}\n\
             groups: 0\n\
             CapInh: {none}\nCapPrm: {none}\nCapEff: {none}\nCapBnd: {none}\nCapAmb: {none}\n\
             NoNewPrivs: 1\n\
             Seccomp: 2\n\
             setuid 0: {zero}\n\
             setresuid 0: {zero}\n\
             setgid 0: {zero}\n\
             setgroups 0: EPERM\n\
             capset sys_admin: EPERM\n\
             ambient raise: EPERM\n\
             clear no_new_privs: EINVAL\n"
        ),
    );
    test_box.remove();
}

/// Attack: ptrace, process_vm_readv/writev and pidfd_getfd on other processes.
#[test]
fn ptrace_and_process_vm() {
    skip_unless_privileged!();
    attempt_calls(
        &[
            ("ptrace_child", "EPERM"),
            ("ptrace_init", "EPERM"),
            ("process_vm_readv", "EPERM"),
            ("process_vm_writev", "EPERM"),
            ("pidfd_getfd", "EPERM"),
        ],
        Some(&[
            ("ptrace_child", "SUCCEEDED"),
            ("ptrace_init", "EPERM"),
            ("process_vm_readv", "SUCCEEDED"),
            ("process_vm_writev", "SUCCEEDED"),
            ("pidfd_getfd", "SUCCEEDED"),
        ]),
    );
}

/// Attack: mount, unmount, pivot_root and the new mount API.
#[test]
fn mount_family() {
    skip_unless_privileged!();
    attempt_calls(
        &[
            ("mount", "EPERM"),
            ("umount2", "EPERM"),
            ("pivot_root", "EPERM"),
            ("move_mount", "EPERM"),
            ("fsopen", "EPERM"),
            ("fsmount", "EPERM"),
            ("open_tree", "EPERM"),
            ("chroot", "EPERM"),
        ],
        None,
    );
}

/// Attack: unshare a user namespace (root inside it), then other namespaces; setns.
#[test]
fn unshare_user_namespace() {
    skip_unless_privileged!();
    // Without the policy, the new user namespace makes the program root
    // there, and every other namespace is then its for the asking (where
    // the host lets unprivileged users have user namespaces at all).
    let control: &[(&str, &str)] = if unprivileged_userns() {
        &[
            ("unshare_user", "SUCCEEDED"),
            ("unshare_mount", "SUCCEEDED"),
            ("unshare_net", "SUCCEEDED"),
            ("setns", "EPERM"),
        ]
    } else {
        &[
            ("unshare_user", "EPERM"),
            ("unshare_mount", "EPERM"),
            ("unshare_net", "EPERM"),
            ("setns", "EPERM"),
        ]
    };
    attempt_calls(
        &[
            ("unshare_user", "EPERM"),
            ("unshare_mount", "EPERM"),
            ("unshare_net", "EPERM"),
            ("setns", "EPERM"),
        ],
        Some(control),
    );
}

/// Attack: clone and clone3 with namespace flags (fork and threads must still work).
#[test]
fn clone3_with_namespace_flags() {
    skip_unless_privileged!();
    let newuser = if unprivileged_userns() {
        "SUCCEEDED"
    } else {
        "EPERM"
    };
    attempt_calls(
        &[
            ("clone3_newuser", "ENOSYS"),
            ("clone3_plain", "ENOSYS"),
            ("clone_newuser", "EPERM"),
            ("clone_newns", "EPERM"),
            ("fork", "SUCCEEDED"),
            ("thread", "SUCCEEDED"),
        ],
        Some(&[
            ("clone3_newuser", newuser),
            ("clone3_plain", "SUCCEEDED"),
            ("clone_newuser", newuser),
            ("clone_newns", "EPERM"),
            ("fork", "SUCCEEDED"),
            ("thread", "SUCCEEDED"),
        ]),
    );
}

/// Attack: io_uring, whose operations bypass the system-call filter.
#[test]
fn io_uring_setup() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let syscalls = test_box.install(&hostile("syscalls"));
    let words = [
        syscalls.as_str(),
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ];
    let result = test_box.run_hostile(&words);
    assert_output(
        &result,
        &outcome_lines(&[
            ("io_uring_setup", "EPERM"),
            ("io_uring_enter", "EPERM"),
            ("io_uring_register", "EPERM"),
        ]),
    );
    // The control only where the host has not turned io_uring off itself.
    if sysctl("kernel/io_uring_disabled").is_none_or(|value| value == "0") {
        test_box.config.seccomp = false;
        let result = test_box.run_hostile(&words);
        // Past the filter the kernel makes the ring, or (newer kernels,
        // which charge it to RLIMIT_MEMLOCK, 0 in a box) refuses it with
        // ENOMEM; either is the kernel's answer, never the filter's EPERM.
        let made = outcome_lines(&[
            ("io_uring_setup", "SUCCEEDED"),
            ("io_uring_enter", "EBADF"),
            ("io_uring_register", "EBADF"),
        ]);
        let refused = made.replacen("SUCCEEDED", "ENOMEM", 1);
        assert!(
            result.stdout == made || result.stdout == refused,
            "{:?}",
            Brief(&result)
        );
    }
    test_box.remove();
}

/// Attack: bpf (a kernel JIT and verifier within reach).
#[test]
fn bpf() {
    skip_unless_privileged!();
    attempt_calls(&[("bpf", "EPERM")], None);
}

/// Attack: the kernel keyring (keyctl, add_key, request_key).
#[test]
fn keyctl() {
    skip_unless_privileged!();
    attempt_calls(
        &[
            ("keyctl", "EPERM"),
            ("add_key", "EPERM"),
            ("request_key", "EPERM"),
        ],
        Some(&[
            ("keyctl", "SUCCEEDED"),
            ("add_key", "SUCCEEDED"),
            ("request_key", "ENOKEY"),
        ]),
    );
}

/// Attack: perf_event_open and userfaultfd, favourite kernel exploit primitives.
#[test]
fn perf_event_open_and_userfaultfd() {
    skip_unless_privileged!();
    let paranoid = sysctl("kernel/perf_event_paranoid")
        .and_then(|text| text.parse::<i32>().ok())
        .unwrap_or(3);
    // Above 2, even measuring oneself needs a capability.
    let perf_control = if paranoid <= 2 { "SUCCEEDED" } else { "EACCES" };
    attempt_calls(
        &[("perf_event_open", "EPERM"), ("userfaultfd", "EPERM")],
        Some(&[
            ("perf_event_open", perf_control),
            ("userfaultfd", "SUCCEEDED"),
        ]),
    );
}

/// Attack: modules, kexec, reboot, swap, file handles ("shocker"), iopl, acct, syslog.
#[test]
fn kernel_interfaces() {
    skip_unless_privileged!();
    attempt_calls(
        &[
            ("init_module", "EPERM"),
            ("finit_module", "EPERM"),
            ("delete_module", "EPERM"),
            ("kexec_load", "EPERM"),
            ("kexec_file_load", "EPERM"),
            ("reboot", "EPERM"),
            ("swapon", "EPERM"),
            ("swapoff", "EPERM"),
            ("open_by_handle_at", "EPERM"),
            ("name_to_handle_at", "EPERM"),
            ("iopl", "EPERM"),
            ("acct", "EPERM"),
            ("syslog", "EPERM"),
        ],
        None,
    );
}

/// Attack: set the clock (settimeofday, clock_settime, adjtimex).
#[test]
fn settimeofday() {
    skip_unless_privileged!();
    attempt_calls(
        &[
            ("settimeofday", "EPERM"),
            ("clock_settime", "EPERM"),
            ("adjtimex", "EPERM"),
        ],
        None,
    );
}

/// Attack: turn off address-space randomisation with personality().
#[test]
fn personality_without_aslr() {
    skip_unless_privileged!();
    attempt_calls(
        &[
            ("personality_norandom", "EPERM"),
            ("personality_query", "SUCCEEDED"),
        ],
        Some(&[
            ("personality_norandom", "SUCCEEDED"),
            ("personality_query", "SUCCEEDED"),
        ]),
    );
}

/// The host's hostname, read from the kernel.
fn host_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").unwrap()
}

/// Attack: sethostname and setdomainname, after reading the box's name.
#[test]
fn sethostname() {
    skip_unless_privileged!();
    let before = host_hostname();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    let syscalls = test_box.install(&hostile("syscalls"));
    let result = test_box.run_hostile(&[&probe, "hostname"]);
    assert_output(&result, "hostname: isobox\n");
    let result = test_box.run_hostile(&[&syscalls, "sethostname", "setdomainname"]);
    assert_output(&result, "sethostname: EPERM\nsetdomainname: EPERM\n");
    assert_eq!(host_hostname(), before);
    test_box.remove();
}

/// Attack: write kernel settings through /proc/sys and /proc/sysrq-trigger.
#[test]
fn writing_proc_sys() {
    skip_unless_privileged!();
    let hostname = host_hostname();
    let core_pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let test_box = TestBox::hostile();
    let probe = test_box.install(&hostile("probe"));
    // Those this kernel has (modprobe needs module support).
    let targets: Vec<&str> = [
        "/proc/sys/kernel/hostname",
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/vm/drop_caches",
        "/proc/sys/kernel/modprobe",
        "/proc/sysrq-trigger",
    ]
    .into_iter()
    .filter(|path| std::path::Path::new(path).exists())
    .collect();
    assert!(targets.len() >= 3, "{targets:?}");
    let mut words = vec![probe.as_str()];
    for target in &targets {
        words.extend(["write", *target]);
    }
    let result = test_box.run_hostile(&words);
    assert_status(&result, ExecutionStatus::Success);
    let outcomes: Vec<&str> = result.stdout.lines().collect();
    assert_eq!(outcomes.len(), targets.len(), "{:?}", Brief(&result));
    for (line, target) in outcomes.iter().zip(&targets) {
        let refused = [": EACCES", ": EROFS"]
            .iter()
            .any(|errno| *line == format!("write {target}{errno}"));
        assert!(refused, "{line}");
    }
    assert_eq!(host_hostname(), hostname);
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern
    );
    test_box.remove();
}

/// Runs a program that uses a foreign system-call ABI: killed for a
/// security violation with the policy, not with seccomp off.
fn foreign_abi(program: &str, abi_word: &str) {
    let mut test_box = TestBox::hostile();
    let binary = test_box.install(&hostile(program));
    let result = test_box.run_hostile(&[&binary]);
    assert_status(&result, ExecutionStatus::SecurityViolation);
    assert_eq!(result.signal, Some(libc::SIGSYS), "{:?}", Brief(&result));
    assert_eq!(result.stdout, format!("{program}: trying\n"));
    assert!(result.message.contains(abi_word), "{:?}", Brief(&result));

    // Control: without the policy the kernel answers (or has no such ABI).
    test_box.config.seccomp = false;
    let result = test_box.run_hostile(&[&binary]);
    assert_ne!(
        result.status,
        ExecutionStatus::SecurityViolation,
        "{:?}",
        Brief(&result)
    );
    test_box.remove();
}

/// Attack: the i386 entry (int $0x80) from a 64-bit program.
#[test]
fn i386_int80_entry() {
    skip_unless_privileged!();
    foreign_abi("int80", "i386");
}

/// Attack: an x32 system call number (bit 0x40000000).
#[test]
fn x32_system_call() {
    skip_unless_privileged!();
    foreign_abi("x32", "x32");
}

/// A host process running as the box's uid, outside the box: what a
/// careless sandbox would let the box kill. Killed and reaped on drop.
struct HostSentinel(std::process::Child);

impl HostSentinel {
    fn start(uid: u32) -> Self {
        let child = Command::new("/bin/sleep")
            .arg("60")
            .uid(uid)
            .gid(uid)
            .spawn()
            .expect("starting the sentinel");
        Self(child)
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn assert_alive(&mut self) {
        assert!(
            self.0
                .try_wait()
                .expect("waiting for the sentinel")
                .is_none(),
            "the sentinel on the host was killed"
        );
    }
}

impl Drop for HostSentinel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Attack: kill(-1, SIGKILL), with a host process of the same uid around.
#[test]
fn kill_minus_one() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let mut sentinel = HostSentinel::start(test_box.uid);
    let killall = test_box.install(&hostile("killall"));
    let keeper = std::process::id().to_string();
    let result = test_box.run_sparing(
        &[&killall, &keeper, &sentinel.pid().to_string()],
        isobox::Stdin::Null,
        &[sentinel.pid()],
    );
    sentinel.assert_alive();
    drop(sentinel);
    test_box.assert_host_clean();
    // The box's own child dies; nothing outside the box can be reached.
    // Rootless, the box's pid 1 (the proxy) has the program's uid, so the
    // kill is allowed, and the kernel drops it: a namespace's init gets no
    // SIGKILL from inside (the run ending normally shows it lived).
    let kill_init = if common::rootless() {
        "SUCCEEDED"
    } else {
        "EPERM"
    };
    assert_output(
        &result,
        &format!(
            "kill -1: sent\nchild: signal 9\nkill 1: {kill_init}\n\
             kill keeper: ESRCH\nkill sentinel: ESRCH\npidfd keeper: ESRCH\n"
        ),
    );
    test_box.remove();
}

/// Attack: signal the keeper, and a host process of the box's uid, by host pid.
#[test]
fn signalling_the_keeper_by_host_pid() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let mut sentinel = HostSentinel::start(test_box.uid);
    let probe = test_box.install(&hostile("probe"));
    let keeper = std::process::id().to_string();
    let host_pid = sentinel.pid().to_string();
    let result = test_box.run_sparing(
        &[
            &probe, "kill", &keeper, "9", "kill", &keeper, "0", "pidfd", &keeper, "kill",
            &host_pid, "9",
        ],
        isobox::Stdin::Null,
        &[sentinel.pid()],
    );
    sentinel.assert_alive();
    drop(sentinel);
    test_box.assert_host_clean();
    assert_output(
        &result,
        &format!(
            "kill {keeper} 9: ESRCH\nkill {keeper} 0: ESRCH\npidfd {keeper}: ESRCH\n\
             kill {host_pid} 9: ESRCH\n"
        ),
    );
    test_box.remove();
}

/// Attack: attach to the host's System V shared memory, queues and semaphores.
#[test]
fn host_system_v_ipc() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let key = 0x1b0b_0000 + test_box.uid as i32;
    // SAFETY: plain System V calls with a key of our own; removed below.
    let (shm, msg, sem) = unsafe {
        (
            libc::shmget(key, 4096, libc::IPC_CREAT | 0o666),
            libc::msgget(key, libc::IPC_CREAT | 0o666),
            libc::semget(key, 1, libc::IPC_CREAT | 0o666),
        )
    };
    assert!(shm >= 0 && msg >= 0 && sem >= 0, "creating the host's IPC");
    let ipc = test_box.install(&hostile("ipc"));
    let result = test_box.run_hostile(&[&ipc, &key.to_string()]);
    // SAFETY: removing the objects created above.
    unsafe {
        libc::shmctl(shm, libc::IPC_RMID, std::ptr::null_mut());
        libc::msgctl(msg, libc::IPC_RMID, std::ptr::null_mut());
        libc::semctl(sem, 0, libc::IPC_RMID);
    }
    // Rootless without a cgroup, the box's IPC pools cannot be sized to its
    // memory limit, so shared memory and queues are refused outright
    // (docs/SECURITY.md, "Rootless mode"); the host's objects stay unseen.
    let pools = if common::has_cgroup() {
        "ENOENT"
    } else {
        "EPERM"
    };
    assert_output(
        &result,
        &format!("shmget: {pools}\nmsgget: {pools}\nsemget: ENOENT\n"),
    );
    test_box.remove();
}
