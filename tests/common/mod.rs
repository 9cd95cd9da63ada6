//! Helpers shared by the executor integration tests: the privilege guard,
//! the builder of the C test programs in `tests/programs/`, fresh boxes whose
//! limits are always set, and checks of the host after a run.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use isobox::{ExecutionResult, ExecutionStatus, IsolateConfig, ProcessExecutor, Protection, Stdin};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// Formats a result for a failure message with stdout and stderr cut to
/// their first 200 bytes, so a flood does not drown the report.
pub struct Brief<'a>(pub &'a ExecutionResult);

impl std::fmt::Debug for Brief<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn cut(text: &str) -> String {
            if text.len() <= 200 {
                return text.to_string();
            }
            let mut end = 200;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}...({} bytes in all)", &text[..end], text.len())
        }
        let mut result = self.0.clone();
        result.stdout = cut(&result.stdout);
        result.stderr = cut(&result.stderr);
        result.fmt(f)
    }
}

/// Asserts the verdict of a run, showing the run (cut short) when it is
/// another; a failure points at the caller.
#[track_caller]
pub fn assert_status(result: &ExecutionResult, expected: ExecutionStatus) {
    assert_eq!(result.status, expected, "{:?}", Brief(result));
}

/// Asserts a clean exit (Success) with exactly `expected` on stdout.
#[track_caller]
pub fn assert_output(result: &ExecutionResult, expected: &str) {
    assert_eq!(result.stdout, expected, "{:?}", Brief(result));
    assert_status(result, ExecutionStatus::Success);
}

/// Asserts the program died of `signal` by its own doing: `Signaled`, and
/// not killed by the keeper (a signal is no evidence of a limit).
#[track_caller]
pub fn assert_self_signaled(result: &ExecutionResult, signal: i32) {
    assert_status(result, ExecutionStatus::Signaled);
    assert_eq!(result.signal, Some(signal), "{:?}", Brief(result));
    assert!(!result.killed, "{:?}", Brief(result));
}

/// `"<name>: <outcome>\n"` for each pair: what the hostile probes print
/// for the calls they are asked to try.
pub fn outcome_lines(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, outcome)| format!("{name}: {outcome}\n"))
        .collect()
}

/// The host's value of the sysctl at `/proc/sys/<name>`, if it has one.
pub fn sysctl(name: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/sys/{name}"))
        .ok()
        .map(|value| value.trim().to_string())
}

/// Waits (at most 30 s) until `path` exists.
pub fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `check` on every case of a table, each case even when an earlier
/// one failed, then fails naming the cases that failed (each one's own
/// panic message is printed above, followed by its name).
pub fn each_case<C>(cases: &[C], name: impl Fn(&C) -> &str, check: impl Fn(&C)) {
    let mut failed = Vec::new();
    for case in cases {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(case)));
        if outcome.is_err() {
            eprintln!("^^^ case `{}` failed", name(case));
            failed.push(name(case).to_string());
        }
    }
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}

/// Skips the calling test, loudly, when privileged tests cannot run here;
/// see [`privileged`]. Stands first in a `#[test] fn` and names the test
/// after that function, so the message cannot name another test.
macro_rules! skip_unless_privileged {
    () => {{
        fn here() {}
        if !$crate::common::privileged($crate::common::test_name(::std::any::type_name_of_val(
            &here,
        ))) {
            return;
        }
    }};
}
pub(crate) use skip_unless_privileged;

/// The test's name as the harness prints it, from the type name of a
/// function `here` declared inside it: `crate::module::test::here` gives
/// `module::test`.
pub fn test_name(here: &'static str) -> &'static str {
    let path = here.strip_suffix("::here").unwrap_or(here);
    path.split_once("::").map_or(path, |(_crate, rest)| rest)
}

/// Whether privileged tests can run here: root and a usable cgroup
/// hierarchy (v1, or v2 with the controllers isobox needs).
///
/// When they cannot, says so on the real stderr (not captured by the test
/// harness, in one write so parallel tests do not interleave) and returns
/// false, or panics when `ISOBOX_REQUIRE_PRIVILEGED=1`, where a skip would
/// hide a failure. Tests call it through [`skip_unless_privileged`].
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && rootless_pass() {
        return true;
    }
    let cgroups = isobox::cgroup::CgroupController::detect(None).err();
    let why = match (root, cgroups) {
        (true, None) => return true,
        (false, None) => "not root".to_string(),
        (true, Some(err)) => err.to_string(),
        (false, Some(err)) => format!("not root; {err}"),
    };
    if std::env::var("ISOBOX_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: needs root and cgroups ({why}) and ISOBOX_REQUIRE_PRIVILEGED=1");
    }
    let message = format!("\n*** SKIPPED (needs root and cgroups): {test} ({why}) ***\n");
    let _ = std::io::stderr().write_all(message.as_bytes());
    false
}

/// Set (to `1`) by the rootless pass of `tests/rootless.rs`
/// (`the_suites_hold_rootless`) in the environment of the test binaries it
/// runs as an unprivileged user: there, the tests that [`privileged`] lets
/// run build rootless boxes (see [`rootless`]).
pub const ROOTLESS_PASS: &str = "ISOBOX_TEST_ROOTLESS";

/// The cgroup v2 directory delegated to the rootless pass's user, if any
/// (the VM's cgroup v2; none on a cgroup v1 host, where no delegation
/// exists): the boxes' `cgroup_parent`.
pub const ROOTLESS_CGROUP: &str = "ISOBOX_TEST_CGROUP";

/// Whether this process is the rootless pass: not root, and told so by
/// its driver. A user without root who runs `cargo test` by hand is not:
/// the privileged tests skip (loudly) for them as before, instead of
/// failing wherever a test has not been made to run rootless.
pub fn rootless_pass() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    !root && std::env::var(ROOTLESS_PASS).as_deref() == Ok("1")
}

/// How the boxes of this test process are isolated, for the assertions
/// that differ between the modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// As root: a uid of the box's own, the executor's cgroups.
    Root,
    /// The rootless pass: a user namespace mapping this process's uid
    /// (1000 inside), and the delegated cgroup when there is one
    /// (otherwise rlimits only, and no strict mode).
    Rootless {
        /// The delegated cgroup v2 directory the boxes go below.
        cgroup: Option<PathBuf>,
    },
}

/// This process's [`Mode`].
pub fn mode() -> Mode {
    if rootless_pass() {
        Mode::Rootless {
            cgroup: std::env::var_os(ROOTLESS_CGROUP)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
        }
    } else {
        Mode::Root
    }
}

/// Whether this is the rootless pass (see [`mode`]).
pub fn rootless() -> bool {
    mode() != Mode::Root
}

/// Whether the boxes have a cgroup: always as root (the privileged tests
/// need one), with a delegated directory in the rootless pass.
pub fn has_cgroup() -> bool {
    match mode() {
        Mode::Root => true,
        Mode::Rootless { cgroup } => cgroup.is_some(),
    }
}

/// The uid a rootless box's program has inside its user namespace.
pub const ROOTLESS_BOX_UID: u32 = 1000;

/// What a run lacks in this [`Mode`] besides `turned_off`: no cgroup
/// without a delegated one, never a separate uid rootless. In the order
/// the library lists them.
pub fn absent_protections(turned_off: &[Protection]) -> Vec<Protection> {
    let mode_lacks = [
        (!has_cgroup(), Protection::Cgroup),
        (rootless(), Protection::SeparateUser),
    ];
    let lacking: Vec<Protection> = mode_lacks
        .into_iter()
        .filter_map(|(lacks, protection)| lacks.then_some(protection))
        .chain(turned_off.iter().copied())
        .collect();
    [
        Protection::Namespaces,
        Protection::Cgroup,
        Protection::Seccomp,
        Protection::SeparateUser,
    ]
    .into_iter()
    .filter(|protection| lacking.contains(protection))
    .collect()
}

/// [`absent_protections`] as `isobox run --json` writes them.
pub fn absent_protections_json(turned_off: &[Protection]) -> serde_json::Value {
    serde_json::to_value(absent_protections(turned_off)).expect("protections serialize")
}

/// The arguments of `isobox run` that give its box this [`Mode`]'s cgroup:
/// none as root (the executor's own), `--cgroup DIR` rootless with the
/// delegated cgroup.
pub fn cgroup_run_args() -> Vec<String> {
    match mode() {
        Mode::Rootless { cgroup: Some(dir) } => {
            vec!["--cgroup".to_string(), dir.display().to_string()]
        }
        _ => Vec::new(),
    }
}

/// The arguments of `isobox run` that ask for strict mode in this [`Mode`]:
/// `--strict` as root; rootless, `--strict --cgroup DIR` with the
/// delegated cgroup, nothing without one (strict mode would be refused).
pub fn strict_run_args() -> Vec<String> {
    match mode() {
        Mode::Root => vec!["--strict".to_string()],
        Mode::Rootless { cgroup: Some(dir) } => vec![
            "--strict".to_string(),
            "--cgroup".to_string(),
            dir.display().to_string(),
        ],
        Mode::Rootless { cgroup: None } => Vec::new(),
    }
}

/// A temporary directory named `<prefix>...`, with mode `mode`, owned by
/// the keeper (root); removed when dropped.
pub fn temp_dir(prefix: &str, mode: u32) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temporary directory");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).expect("chmod");
    dir
}

/// Copies the host file `host_path` to `target` as an executable (mode
/// 0755, owned by the keeper).
///
/// The copy is written by `install`, in a process of its own: a
/// descriptor this process held open for writing would be inherited by any
/// child another test thread forks meanwhile, and until that child's
/// `execve` running the copy fails with `ETXTBSY`.
pub fn copy_executable(host_path: &str, target: &Path) {
    let status = std::process::Command::new("install")
        .args(["-m", "0755", "--"])
        .arg(host_path)
        .arg(target)
        .status()
        .unwrap_or_else(|err| panic!("running install: {err}"));
    assert!(
        status.success(),
        "copying {host_path} to {}: install {status}",
        target.display()
    );
}

/// Absolute path of `tests/programs/<name>.c` compiled with
/// `gcc -O2 -pthread`; built once per test binary into a temporary directory
/// (mode 0755, removed at exit) that any uid can execute from.
pub fn program(name: &str) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(format!("{name}.c"));
    build_c(&source, name)
}

/// A hostile program of `tests/programs/hostile/`: `<name>.c` compiled like
/// [`program`] (with that directory on the include path, for `hostile.h`),
/// or the absolute path of the script `<name>` (`.sh`, `.py`) as it is.
///
/// Hostile programs are only ever run inside a box with limits set: install
/// them with [`TestBox::install`].
pub fn hostile(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/hostile");
    let script = dir.join(name);
    if script
        .extension()
        .is_some_and(|ext| ext == "sh" || ext == "py")
    {
        assert!(script.is_file(), "no script {}", script.display());
        return script.display().to_string();
    }
    build_c(&dir.join(format!("{name}.c")), &format!("hostile-{name}"))
}

/// Compiles `source` into the programs directory as `binary` (once per test
/// binary) and returns the binary's absolute path.
fn build_c(source: &Path, binary: &str) -> String {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = built.get(binary) {
        return path.display().to_string();
    }
    let include = source.parent().expect("a source has a directory");
    let output_path = programs_dir().join(binary);
    let output = Command::new("gcc")
        .args(["-O2", "-pthread", "-Wall", "-I"])
        .arg(include)
        .arg("-o")
        .arg(&output_path)
        .arg(source)
        .output()
        .expect("running gcc");
    assert!(
        output.status.success(),
        "gcc failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    fs::set_permissions(&output_path, fs::Permissions::from_mode(0o755)).expect("chmod program");
    built.insert(binary.to_string(), output_path.clone());
    output_path.display().to_string()
}

static PROGRAMS_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_programs_dir() {
    if let Some(dir) = PROGRAMS_DIR.get() {
        let _ = fs::remove_dir_all(dir);
    }
}

fn programs_dir() -> &'static Path {
    PROGRAMS_DIR.get_or_init(|| {
        let dir = temp_dir("isobox-test-programs-", 0o755).keep();
        // Every parent must be searchable by the box uid.
        for parent in dir.ancestors().skip(1) {
            let mode = fs::metadata(parent)
                .expect("stat parent")
                .permissions()
                .mode();
            assert!(
                mode & 0o001 != 0,
                "{} is not searchable by other users",
                parent.display()
            );
        }
        // SAFETY: registers an extern "C" fn that takes no arguments.
        unsafe { libc::atexit(remove_programs_dir) };
        dir
    })
}

/// A uid (and gid) for one box that no other test uses, even in another test
/// process: 61000..62000, claimed with a file `isobox-test-uid-<uid>` in the
/// temporary directory holding our pid (removed at exit; a file whose owner
/// is dead is taken over). A uid that still has processes is skipped.
pub fn next_uid() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Start each process somewhere else in the range to avoid contention.
    let start = std::process::id().wrapping_mul(97);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < 1000, "no free test uid left in 61000..62000");
        let uid = 61_000 + start.wrapping_add(n) % 1000;
        if processes_of_uid(uid).is_empty() && claim_uid(uid) {
            return uid;
        }
    }
}

static CLAIMED_UIDS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn claim_uid(uid: u32) -> bool {
    let path = std::env::temp_dir().join(format!("isobox-test-uid-{uid}"));
    for _ in 0..2 {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                write!(file, "{}", std::process::id()).expect("writing the uid claim");
                let mut claimed = CLAIMED_UIDS
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if claimed.is_empty() {
                    // SAFETY: registers an extern "C" fn that takes no arguments.
                    unsafe { libc::atexit(release_uids) };
                }
                claimed.push(path);
                return true;
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| text.trim().parse::<i32>().ok());
                let alive = owner.is_some_and(|pid| {
                    // SAFETY: signal 0 only checks that the process exists.
                    let signalled = unsafe { libc::kill(pid, 0) };
                    signalled == 0
                        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
                });
                if alive || owner.is_none() {
                    return false;
                }
                // The owner is gone: take the claim over.
                let _ = fs::remove_file(&path);
            }
            Err(err) => panic!("claiming uid {uid} at {}: {err}", path.display()),
        }
    }
    false
}

extern "C" fn release_uids() {
    let claimed = CLAIMED_UIDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for path in claimed.iter() {
        let _ = fs::remove_file(path);
    }
}

/// `["a", "b"]` as the `Vec<String>` the executor takes.
pub fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| word.to_string()).collect()
}

/// A fresh box: its own workdir (0755, owned by the keeper, which the
/// executor hands to the box uid for each run and takes back), its own uid,
/// strict mode, and limits always set so a hostile program cannot hurt the
/// host even when a limit under test is broken.
pub struct TestBox {
    /// The uid and gid the program runs as.
    pub uid: u32,
    /// A name no other box uses: programs that try to leave files in the
    /// host's `/tmp` or `/dev/shm` name them after it, and
    /// [`assert_host_clean`](Self::assert_host_clean) looks for it.
    pub marker: String,
    /// The configuration; tests adjust it before running.
    pub config: IsolateConfig,
    workdir: tempfile::TempDir,
}

impl Default for TestBox {
    fn default() -> Self {
        Self::new()
    }
}

impl TestBox {
    /// Default limits: 5 s CPU, 10 s wall, 256 MiB memory, 32 processes,
    /// 64 MiB files, 4 MiB of output per stream.
    ///
    /// In the rootless pass the program runs as this process's uid (its
    /// only mappable id), below the delegated cgroup when there is one,
    /// strict only then (strict mode needs a cgroup).
    pub fn new() -> Self {
        let (uid, box_ids, strict_mode, cgroup_parent) = match mode() {
            Mode::Root => {
                let uid = next_uid();
                (uid, Some(uid), true, None)
            }
            Mode::Rootless { cgroup } => {
                (isobox::sys::effective_uid(), None, cgroup.is_some(), cgroup)
            }
        };
        let workdir = temp_dir("isobox-box-", 0o755);
        let config = IsolateConfig {
            workdir: workdir.path().to_path_buf(),
            strict_mode,
            cgroup_parent,
            time_limit: Some(Duration::from_secs(5)),
            wall_time_limit: Some(Duration::from_secs(10)),
            memory_limit: Some(256 * MIB),
            process_limit: Some(32),
            file_size_limit: Some(64 * MIB),
            output_limit: Some(4 * MIB),
            uid: box_ids,
            gid: box_ids,
            ..IsolateConfig::default()
        };
        Self {
            uid,
            marker: format!("isobox-mark-{uid}-{}", std::process::id()),
            config,
            workdir,
        }
    }

    /// The uid the program sees itself as: the box uid as root,
    /// [`ROOTLESS_BOX_UID`] in the rootless pass's user namespace.
    pub fn uid_inside(&self) -> u32 {
        if rootless() {
            ROOTLESS_BOX_UID
        } else {
            self.uid
        }
    }

    /// A box for hostile programs, with tighter limits: 2 s CPU, 10 s wall,
    /// 128 MiB memory, 16 processes, 16 MiB files, 256 open files, 64 KiB
    /// of output per stream.
    pub fn hostile() -> Self {
        let mut test_box = Self::new();
        let config = &mut test_box.config;
        config.time_limit = Some(Duration::from_secs(2));
        config.wall_time_limit = Some(Duration::from_secs(10));
        config.memory_limit = Some(128 * MIB);
        config.process_limit = Some(16);
        config.file_size_limit = Some(16 * MIB);
        config.open_files_limit = Some(256);
        config.output_limit = Some(64 * 1024);
        test_box
    }

    /// Time limits for a Python program: its start-up alone takes seconds
    /// of CPU in the emulated VM of `scripts/vm-test` (30 s CPU, 60 s wall).
    pub fn allow_python(&mut self) {
        self.config.time_limit = Some(Duration::from_secs(30));
        self.config.wall_time_limit = Some(Duration::from_secs(60));
    }

    /// The program's working directory on the host.
    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    /// Where `name` of the working directory is as the program sees it:
    /// `/box/<name>` in the jail, the host path without namespaces.
    pub fn inside(&self, name: &str) -> String {
        if self.config.namespaces {
            format!("{}/{name}", isobox::config::BOX_MOUNT_POINT)
        } else {
            self.config.workdir.join(name).display().to_string()
        }
    }

    /// Copies the host file `host_path` into the working directory (mode
    /// 0755, owned by the keeper) and returns its path inside the box.
    pub fn install(&self, host_path: &str) -> String {
        let name = Path::new(host_path)
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a program path ends in a UTF-8 file name");
        self.install_as(host_path, name)
    }

    /// Like [`install`](Self::install), under another name.
    pub fn install_as(&self, host_path: &str, name: &str) -> String {
        copy_executable(host_path, &self.config.workdir.join(name));
        self.inside(name)
    }

    /// A strict executor for this box's configuration.
    pub fn executor(&self) -> ProcessExecutor {
        ProcessExecutor::new(self.config.clone()).expect("strict ProcessExecutor::new")
    }

    /// Runs `words` with stdin from /dev/null in a new executor; see
    /// [`run_with`](Self::run_with).
    pub fn run(&self, words: &[&str]) -> ExecutionResult {
        self.run_with(words, Stdin::Null)
    }

    /// Runs `words` in a new executor, then checks that no process of the
    /// box uid survived, cleans up and checks the cgroups are gone.
    pub fn run_with(&self, words: &[&str], stdin: Stdin) -> ExecutionResult {
        self.run_sparing(words, stdin, &[])
    }

    /// Like [`run_with`](Self::run_with), but processes of the box uid
    /// whose host pids are in `spared` (started by the test itself, outside
    /// the box) are allowed to survive.
    pub fn run_sparing(&self, words: &[&str], stdin: Stdin, spared: &[i32]) -> ExecutionResult {
        let mut executor = self.executor();
        let result = match executor.execute_with_stdin(&argv(words), stdin) {
            Ok(result) => result,
            Err(err) => {
                // Do not leave a hostile program behind on the way out.
                let left = kill_processes_of_uid_except(self.uid, spared);
                panic!("execute failed: {err:?} (killed leftovers: {left:?})");
            }
        };
        let paths = executor.cgroup_paths();
        assert_no_process_of_uid_except(self.uid, spared);
        executor.cleanup().expect("cleanup");
        assert_paths_gone(&paths);
        result
    }

    /// Runs a hostile program: [`run`](Self::run) (no process of the box
    /// uid left, cgroups emptied and removed), then
    /// [`assert_host_clean`](Self::assert_host_clean).
    pub fn run_hostile(&self, words: &[&str]) -> ExecutionResult {
        let result = self.run(words);
        self.assert_host_clean();
        result
    }

    /// Checks the host after a run: the working directory is a directory
    /// owned by the keeper again, and nothing in the host's `/tmp`,
    /// `/var/tmp` or `/dev/shm` carries the box's marker or belongs to its
    /// uid or gid (looking into every directory the box user could write).
    pub fn assert_host_clean(&self) {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(&self.config.workdir).expect("stat the workdir");
        assert!(meta.is_dir(), "the workdir is no longer a directory");
        let keeper = fs::metadata("/proc/self").expect("stat /proc/self");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (keeper.uid(), keeper.gid()),
            "the workdir was not given back to the keeper"
        );
        let mut found = Vec::new();
        for root in ["/tmp", "/var/tmp", "/dev/shm"] {
            leftovers(Path::new(root), self, 4, &mut found);
        }
        assert!(
            found.is_empty(),
            "the box left files on the host: {found:?}"
        );
    }

    /// Removes the working directory as a box manager must (see
    /// [`remove_tree`]), and checks that nothing of it is left.
    pub fn remove(self) {
        let path = self.workdir.keep();
        remove_tree(&path)
            .unwrap_or_else(|err| panic!("removing the box {}: {err}", path.display()));
        assert!(
            fs::symlink_metadata(&path).is_err(),
            "{} survived its removal",
            path.display()
        );
    }
}

pub use isobox::fstree::remove_tree;

/// Collects, under `dir`, entries named after the box's marker or owned by
/// its uid or gid, descending `depth` levels into directories the box user
/// could write to (world-writable or its own). Never follows symlinks, and
/// skips the box's own working directory.
fn leftovers(dir: &Path, test_box: &TestBox, depth: u32, found: &mut Vec<PathBuf>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == test_box.config.workdir || path == test_box.workdir() {
            continue;
        }
        // Other tests create and remove files here all the time.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        // Rootless, the box's uid is this process's own, whose files are
        // everywhere: only the marker tells the box's apart.
        let ours = !rootless() && (meta.uid() == test_box.uid || meta.gid() == test_box.uid);
        let named = entry
            .file_name()
            .to_string_lossy()
            .contains(&test_box.marker);
        if ours || named {
            found.push(path.clone());
        }
        let writable = meta.mode() & 0o002 != 0 || ours;
        if meta.is_dir() && writable && depth > 0 {
            leftovers(&path, test_box, depth - 1, found);
        }
    }
}

/// Live (not zombie) processes whose real, effective, saved or filesystem
/// uid is `uid`, as `(pid, "Name State")`.
///
/// In the rootless pass the boxes' uid is this process's own: it and its
/// ancestors are left out, and the pass runs one test at a time so that no
/// other test's box or helper can be alive when a test looks.
pub fn processes_of_uid(uid: u32) -> Vec<(i32, String)> {
    let ourselves = if rootless() && uid == isobox::sys::effective_uid() {
        ancestors()
    } else {
        Vec::new()
    };
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if ourselves.contains(&pid) {
            continue;
        }
        // The process may be gone by now; that is fine.
        let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .map(str::trim)
                .unwrap_or("")
                .to_string()
        };
        let matches = field("Uid:")
            .split_whitespace()
            .any(|id| id.parse::<u32>() == Ok(uid));
        let state = field("State:");
        let dead = state.starts_with('Z') || state.starts_with('X');
        if matches && !dead {
            found.push((pid, format!("{} {}", field("Name:"), state)));
        }
    }
    found
}

/// This process and its ancestors (a test binary may run itself as a
/// child, which is then one of them).
fn ancestors() -> Vec<i32> {
    let mut pids = vec![std::process::id() as i32];
    while let Some(parent) = fs::read_to_string(format!("/proc/{}/status", pids[pids.len() - 1]))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("PPid:"))
                .and_then(|pid| pid.trim().parse::<i32>().ok())
        })
        .filter(|&pid| pid > 1 && pids.len() < 64)
    {
        pids.push(parent);
    }
    pids
}

/// Panics if a process of `uid` is still alive half a second from now (the
/// grace only covers processes the kernel is still tearing down). Survivors
/// are SIGKILLed by pid before panicking so a failure leaves the host clean.
pub fn assert_no_process_of_uid(uid: u32) {
    assert_no_process_of_uid_except(uid, &[]);
}

/// Like [`assert_no_process_of_uid`], ignoring the processes in `spared`.
pub fn assert_no_process_of_uid_except(uid: u32, spared: &[i32]) {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        let left: Vec<_> = processes_of_uid(uid)
            .into_iter()
            .filter(|(pid, _)| !spared.contains(pid))
            .collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            kill_processes_of_uid_except(uid, spared);
            panic!("processes of uid {uid} survived the run: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILLs, by pid, every live process of `uid` (a uid owned by one test)
/// and returns what it found.
pub fn kill_processes_of_uid(uid: u32) -> Vec<(i32, String)> {
    kill_processes_of_uid_except(uid, &[])
}

/// Like [`kill_processes_of_uid`], sparing the processes in `spared`.
pub fn kill_processes_of_uid_except(uid: u32, spared: &[i32]) -> Vec<(i32, String)> {
    let left: Vec<_> = processes_of_uid(uid)
        .into_iter()
        .filter(|(pid, _)| !spared.contains(pid))
        .collect();
    for (pid, _) in &left {
        // SAFETY: kills a process this test harness left behind.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    left
}

/// Panics if any of `paths` still exists.
pub fn assert_paths_gone(paths: &[PathBuf]) {
    let left: Vec<_> = paths.iter().filter(|path| path.exists()).collect();
    assert!(left.is_empty(), "cgroup directories left behind: {left:?}");
}

/// A seccomp program that kills a process at its first `arch_prctl`,
/// which glibc's start-up makes to set up thread-local storage: a process
/// under it that gets through never started glibc (isobox's early path,
/// `src/sys/early.rs`).
pub fn killed_at_glibc_start() -> seccompiler::BpfProgram {
    seccompiler::SeccompFilter::new(
        [(libc::SYS_arch_prctl, vec![])].into_iter().collect(),
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::KillProcess,
        seccompiler::TargetArch::x86_64,
    )
    .and_then(TryInto::try_into)
    .expect("a filter of one rule")
}

/// Whether process `pid` is a spare agent, or a holder or run of one
/// before its exec: forked by the service, named `isobox-spare`, with
/// the command line `isolate --isobox-spare <config>`.
pub fn is_spare_process(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|name| name == "isobox-spare\n")
}

/// The pids of the isolate face's installation services started for the
/// configuration file `config` (`isolate --isobox-service <config>`).
pub fn installation_services(config: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // A service's child just after its fork (a spare agent, before it
    // sets its own) has the service's command line for a moment.
    let parent = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let services: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let words: Vec<&[u8]> = raw.split(|byte| *byte == 0).collect();
            words.len() >= 3
                && !is_spare_process(*pid)
                && words[1] == b"--isobox-service"
                && Path::new(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(words[2]),
                ) == config
        })
        .collect();
    services
        .iter()
        .copied()
        .filter(|pid| !parent(*pid).is_some_and(|up| services.contains(&up)))
        .collect()
}

/// Every process whose command line names the configuration file
/// `config` (the installation's service, its agents and spares, and their
/// holders), but for zombies. (The test installations' paths have no
/// spaces.)
pub fn installation_processes(config: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let wanted = config.as_os_str().as_encoded_bytes();
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                // Words, or one title of words (a forked spare's).
                .is_ok_and(|line| {
                    line.split(|byte| *byte == 0 || *byte == b' ')
                        .any(|word| word == wanted)
                })
                && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rsplit_once(')')
                        .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
                })
        })
        .collect()
}

/// Stops the installation service of `config`, if one runs, as an
/// administrator would (`SIGTERM`), and waits until it is gone (killing
/// it after 10 s): a test leaves no process behind.
pub fn stop_installation_service(config: &Path) {
    for pid in installation_services(config) {
        // SAFETY: signals a process this test's installation started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
            if std::time::Instant::now() > deadline {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// [`stop_installation_service`], then waits (10 s at most) until no
/// spare agent of the installation is left, given a box or not: the
/// service leaves with the spare it kept, and a box's cleanup does not
/// wait for a spare that served the box to take its box down. For the
/// default installation, which tests share and whose service the first
/// root `--init` or `--cleanup` starts.
pub fn stop_installation_and_spares(config: &Path) {
    stop_installation_service(config);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while installation_processes(config)
        .into_iter()
        .any(is_spare_process)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` has exited and waits for its parent (init) to reap it.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_ascii_whitespace()
                .next()
                .map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// A unix socket at `path` listened on by `nobody` (a `sleep` that became
/// `nobody` and called `listen(2)` on it before it ran): the peer a front
/// door must never talk to. The caller kills and reaps the child.
pub fn impostor_listener(path: &Path) -> std::process::Child {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        None,
    )
    .unwrap();
    rustix::net::bind(&socket, &rustix::net::SocketAddrUnix::new(path).unwrap()).unwrap();
    let raw = socket.as_raw_fd();
    let mut impostor = Command::new("/bin/sleep");
    impostor.arg("60");
    // SAFETY: setgid, setuid and listen are async-signal-safe.
    unsafe {
        impostor.pre_exec(move || {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 || libc::listen(raw, 8) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    impostor.spawn().unwrap()
}

/// A forwarded invocation as a front door sends it (`src/cli/front.rs`):
/// the header, then `words` (the program's name first) and `environment`
/// entries, each ending with a NUL; umask 022.
pub fn forwarded_message(words: &[&str], environment: &[&str]) -> Vec<u8> {
    let mut message = b"isobox>1".to_vec();
    for field in [words.len() as u32, environment.len() as u32, 0o022] {
        message.extend_from_slice(&field.to_le_bytes());
    }
    for string in words.iter().chain(environment) {
        message.extend_from_slice(string.as_bytes());
        message.push(0);
    }
    message
}

/// Sends `message` to the socket at `path` as `nobody`, with its standard
/// descriptors and `directory`, as a front door would; the exit status
/// tells what happened: 0 nothing came back, 1 an answer came, 2 to 5 a
/// step failed (becoming nobody, the socket, connecting, sending).
pub fn forward_as_nobody(
    path: &Path,
    message: Vec<u8>,
    directory: &std::fs::File,
) -> std::process::ExitStatus {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let address = rustix::net::SocketAddrUnix::new(path).unwrap();
    let mut sender = Command::new("/bin/true");
    let dir_fd = directory.as_raw_fd();
    // SAFETY: the child makes only system calls on values built before
    // the fork (rustix's are plain system calls), then exits.
    unsafe {
        sender.pre_exec(move || {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(2);
            }
            let Ok(socket) = rustix::net::socket(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::SEQPACKET,
                None,
            ) else {
                libc::_exit(3)
            };
            if rustix::net::connect(&socket, &address).is_err() {
                libc::_exit(4);
            }
            let fds = [
                std::os::fd::BorrowedFd::borrow_raw(0),
                std::os::fd::BorrowedFd::borrow_raw(1),
                std::os::fd::BorrowedFd::borrow_raw(2),
                std::os::fd::BorrowedFd::borrow_raw(dir_fd),
            ];
            let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
            let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
            let _ = control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
            let iov = [std::io::IoSlice::new(&message)];
            // Refused, the connection may be closed before the message is
            // sent: that too is nothing done.
            if rustix::net::sendmsg(
                &socket,
                &iov,
                &mut control,
                rustix::net::SendFlags::NOSIGNAL,
            )
            .is_err()
            {
                libc::_exit(5);
            }
            // A helper that never answers ends the sender, not the test.
            libc::alarm(10);
            let mut reply = [0u8; 8];
            match rustix::net::recv(&socket, &mut reply, rustix::net::RecvFlags::empty()) {
                Ok((0, _)) | Err(_) => libc::_exit(0),
                Ok(_) => libc::_exit(1),
            }
        });
    }
    sender.status().unwrap()
}

/// Waits up to 10 s for `done`, failing the test with `what` after that.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes whose command line (its words, each ending with a NUL)
/// ends with `tail`, with their real uids.
pub fn processes_with_command_line(tail: &str) -> Vec<(i32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.ends_with(tail.as_bytes()))
        })
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let uid = status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((pid, uid))
        })
        .collect()
}

/// How a test makes an invocation of isobox: under the filter that kills
/// the C library's start ([`killed_at_glibc_start`]), with a umask, from
/// another root directory, in another mount namespace, with a real group.
#[derive(Clone, Default)]
pub struct Caller {
    pub filtered: bool,
    pub umask: Option<u32>,
    pub chroot: Option<PathBuf>,
    pub own_mount_namespace: bool,
    pub group: Option<u32>,
    /// Its nice value.
    pub nice: Option<i32>,
    /// The one CPU it may run on.
    pub cpu: Option<usize>,
}

/// The caller that only has the filter.
pub const FILTERED: Caller = Caller {
    filtered: true,
    umask: None,
    chroot: None,
    own_mount_namespace: false,
    group: None,
    nice: None,
    cpu: None,
};

impl Caller {
    /// Makes `command`'s child this caller, between its fork and its exec.
    pub fn apply(&self, command: &mut Command) {
        use std::os::unix::process::CommandExt;
        let filter = killed_at_glibc_start();
        let caller = self.clone();
        // SAFETY: between fork and exec the child makes only the system
        // calls below (umask, chroot and chdir on a path built before the
        // fork, unshare, setresgid, setpriority, sched_setaffinity on a set
        // on its stack, and the two of apply_filter, on a program built
        // before the fork).
        unsafe {
            command.pre_exec(move || {
                if let Some(mask) = caller.umask {
                    libc::umask(mask);
                }
                if let Some(root) = &caller.chroot {
                    std::os::unix::fs::chroot(root)?;
                    std::env::set_current_dir("/")?;
                }
                if caller.own_mount_namespace && libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(group) = caller.group {
                    if libc::setresgid(group, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(nice) = caller.nice {
                    if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(cpu) = caller.cpu {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if caller.filtered {
                    seccompiler::apply_filter(&filter).map_err(std::io::Error::other)?;
                }
                Ok(())
            });
        }
    }
}

/// Whether a process made by a filtered [`Caller`] died at the C
/// library's start: nobody carried its invocation out for it.
pub fn died_at_glibc_start(output: &std::process::Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    output.status.signal() == Some(libc::SIGSYS)
}
