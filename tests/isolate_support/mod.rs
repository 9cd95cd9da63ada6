//! Running the real `isobox` binary as `isolate`: a private configuration
//! (box root, lock root, uids) per test, boxes that clean up after
//! themselves, and meta files read the way judges read them.
//!
//! Box ids decide the uid (`FIRST_UID + id`), which is host-wide (the
//! cgroup `box-<id>` is in each installation's own subtree), so every test
//! owns its own ids: test files take slots from this table and each slot
//! owns the ten ids `slot * 10 ..= slot * 10 + 9`.
//!
//! | file                  | slots   |
//! |-----------------------|---------|
//! | `isolate_cms.rs`      | 1–9     |
//! | `isolate_judge0.rs`   | 10–19   |
//! | `isolate_lifecycle.rs`| 20–39   |
//! | `isolate_usage.rs`    | 40–49   |
//! | `under_load.rs`       | 50–52   |
//! | `isolate_warm.rs`     | 65–68   |
//! | `scripts/package-test` | 69 (box 690 of the installed package's own configuration, after the tests) |
//! | `isolate_piston.rs`   | 70      |
//! | `isolate_interrupt.rs`| 71      |
//! | `isolate_parity.rs`   | 72      |
//! | `isolate_setuid_flows.rs` | 73–79 (default installation) |
//! | `hostile_syscalls_policy.rs` | 57 |
//! | `faults.rs`           | 60–64   |
//! | `hostile_mount_points.rs` | 80  |
//! | `isolate_service.rs`  | 81–86 (84 and 86 shared with files whose tests never run at the same time) |
//! | `hostile_review3.rs`  | 84      |
//! | `hostile_process.rs`  | 86      |
//! | `hostile_box_walk.rs` | 87–89   |
//! | `hostile_installations.rs` | 90–99 |

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use tempfile::TempDir;

/// uid and gid of box 0 in the test configuration: above the 61000–62000
/// range the executor tests use, below anything real.
pub const FIRST_UID: u32 = 63000;

/// The first box id of `slot` (see the table above).
pub fn slot_id(slot: u32, index: u32) -> u32 {
    assert!(index < 10, "a slot has ten box ids");
    slot * 10 + index
}

/// What one invocation did.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A private isolate installation: a configuration file, box and lock
/// roots, and a symlink named `isolate` to the isobox binary.
pub struct Isolate {
    root: TempDir,
    /// The configuration file (ISOBOX_CONFIG).
    pub config: PathBuf,
    /// `box_root` of the configuration.
    pub box_root: PathBuf,
    /// The `isolate` symlink.
    pub link: PathBuf,
}

impl Default for Isolate {
    fn default() -> Self {
        Self::new()
    }
}

impl Isolate {
    /// An installation with 1000 boxes from uid [`FIRST_UID`].
    pub fn new() -> Self {
        Self::with_extra_config("")
    }

    /// Like [`new`](Self::new), with more lines appended to the
    /// configuration file.
    pub fn with_extra_config(extra: &str) -> Self {
        let root = crate::common::temp_dir("isobox-isolate-", 0o755);
        let box_root = root.path().join("boxes");
        let config = root.path().join("isobox.conf");
        fs::write(
            &config,
            format!(
                "# written by the isolate tests\n\
                 box_root = {}\n\
                 lock_root = {}\n\
                 first_uid = {FIRST_UID}\n\
                 first_gid = {FIRST_UID}\n\
                 num_boxes = 1000\n\
                 {extra}",
                box_root.display(),
                root.path().join("locks").display(),
            ),
        )
        .expect("writing the configuration");
        let link = root.path().join("isolate");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_isobox"), &link).expect("symlink isolate");
        Self {
            root,
            config,
            box_root,
            link,
        }
    }

    /// The temporary directory everything lives in (the commands' cwd).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `isolate` with the test configuration, run from the test root, with
    /// stdin from /dev/null.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.link);
        command
            .env("ISOBOX_CONFIG", &self.config)
            .current_dir(self.root.path())
            .stdin(Stdio::null());
        command
    }

    /// Runs `isolate ARGS` and waits for it.
    pub fn isolate(&self, args: &[&str]) -> Outcome {
        self.command()
            .args(args)
            .output()
            .expect("running isolate")
            .into()
    }

    /// A guard for box `id` (initialized by the caller, or not at all)
    /// that cleans it up.
    pub fn adopt_box(&self, id: u32, cg: bool) -> BoxGuard<'_> {
        BoxGuard {
            isolate: self,
            id,
            cg,
            dir: self.box_root.join(id.to_string()),
        }
    }

    /// Initializes box `id` (with `--cg` when `cg`) and returns a guard
    /// that cleans it up.
    pub fn open_box(&self, id: u32, cg: bool) -> BoxGuard<'_> {
        let guard = self.adopt_box(id, cg);
        let init = guard.isolate(&["--init"]);
        assert_eq!(init.code, 0, "--init of box {id} failed: {init:?}");
        assert_eq!(init.stdout, format!("{}\n", guard.dir.display()));
        guard
    }
}

impl Drop for Isolate {
    /// Stops the installation's service and removes the installation's own
    /// cgroup directories (isobox keeps them for the installation's next
    /// boxes); `rmdir` fails on any that still holds a box, which is then
    /// the box guard's business.
    fn drop(&mut self) {
        // The installation's service (started by its first `--init` or
        // `--cleanup`) would otherwise outlive the test by its idle time.
        crate::common::stop_installation_service(&self.config);
        // A box's agent answers a cleanup before it has taken its box down
        // when the box was a spare's; the service's spare goes with it:
        // neither may outlive the test.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !crate::common::installation_processes(&self.config).is_empty()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let Ok(config) = isobox::boxes::BoxesConfig::load(&self.config) else {
            return;
        };
        if let Ok(placement) = config.cgroup_placement() {
            if !placement.given {
                for dir in placement.parent_dirs() {
                    let _ = fs::remove_dir(dir);
                }
            }
        }
    }
}

/// An initialized box; dropping it runs `--cleanup` and kills anything of
/// its uid that is left (a failing test must not leave a box behind).
pub struct BoxGuard<'a> {
    isolate: &'a Isolate,
    /// The box id.
    pub id: u32,
    /// Whether the box uses cgroups.
    pub cg: bool,
    /// `<box_root>/<id>`, what `--init` printed.
    pub dir: PathBuf,
}

impl BoxGuard<'_> {
    /// The program's directory, `/box` inside.
    pub fn box_dir(&self) -> PathBuf {
        self.dir.join("box")
    }

    /// uid (and gid) of the box's program.
    pub fn uid(&self) -> u32 {
        FIRST_UID + self.id
    }

    /// `[--cg] -b ID` followed by `rest`.
    pub fn with_box(&self, rest: &[&str]) -> Vec<String> {
        let mut args = Vec::new();
        if self.cg {
            args.push("--cg".to_string());
        }
        args.push("-b".to_string());
        args.push(self.id.to_string());
        args.extend(rest.iter().map(|arg| arg.to_string()));
        args
    }

    /// Runs `isolate [--cg] -b ID ARGS`.
    pub fn isolate(&self, rest: &[&str]) -> Outcome {
        self.isolate
            .command()
            .args(self.with_box(rest))
            .output()
            .expect("running isolate")
            .into()
    }

    /// Runs `isolate [--cg] -b ID -M <meta> OPTIONS --run -- COMMAND` and
    /// returns the outcome and the meta file.
    pub fn run(&self, options: &[&str], command: &[&str]) -> (Outcome, String) {
        let meta = self.isolate.root().join(format!("meta-{}", self.id));
        let meta_arg = format!("--meta={}", meta.display());
        let mut rest = vec![meta_arg.as_str()];
        rest.extend_from_slice(options);
        rest.push("--run");
        rest.push("--");
        rest.extend_from_slice(command);
        let outcome = self.isolate(&rest);
        let text = fs::read_to_string(&meta).unwrap_or_default();
        (outcome, text)
    }

    /// Starts `isolate [--cg] -b ID OPTIONS --run -- /bin/sh -c SCRIPT` in
    /// the background, its output piped, and returns once the script has
    /// touched `/box/started` (it must): the run is then under way.
    pub fn start_script(&self, options: &[&str], script: &str) -> Child {
        let mut rest = options.to_vec();
        rest.extend(["--run", "--", "/bin/sh", "-c", script]);
        let child = self
            .isolate
            .command()
            .args(self.with_box(&rest))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting isolate --run");
        crate::common::wait_for(&self.box_dir().join("started"));
        child
    }

    /// Copies the host file `host_path` into the box as `name` (mode 0755)
    /// and returns its path inside the box.
    pub fn install(&self, host_path: &str, name: &str) -> String {
        crate::common::copy_executable(host_path, &self.box_dir().join(name));
        format!("/box/{name}")
    }

    /// Writes `contents` to `name` in the box.
    pub fn write(&self, name: &str, contents: &str) {
        fs::write(self.box_dir().join(name), contents).expect("writing into the box");
    }

    /// Reads `name` of the box.
    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.box_dir().join(name))
            .unwrap_or_else(|err| panic!("reading {name} of box {}: {err}", self.id))
    }
}

impl Drop for BoxGuard<'_> {
    fn drop(&mut self) {
        let _ = self.isolate(&["--cleanup"]);
        crate::common::kill_processes_of_uid(self.uid());
    }
}

/// Checks that nothing of box `id` is left: no directory under
/// `box_root`, no cgroup, no mount, no process of its uid.
pub fn assert_box_gone(isolate: &Isolate, id: u32) {
    let dir = isolate.box_root.join(id.to_string());
    assert!(
        fs::symlink_metadata(&dir).is_err(),
        "{} survived",
        dir.display()
    );
    let cgroups = box_cgroups(isolate, id);
    let left: Vec<_> = cgroups.iter().filter(|path| path.exists()).collect();
    assert!(left.is_empty(), "cgroups of box {id} survived: {left:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir_text = dir.display().to_string();
    assert!(
        !mounts.lines().any(|line| line.contains(&dir_text)),
        "a mount of box {id} survived"
    );
    crate::common::assert_no_process_of_uid(FIRST_UID + id);
}

/// Where the cgroup of box `id` of `isolate` is (would be), in every
/// hierarchy.
pub fn box_cgroups(isolate: &Isolate, id: u32) -> Vec<PathBuf> {
    let config = isobox::boxes::BoxesConfig::load(&isolate.config).expect("the test configuration");
    let placement = config
        .cgroup_placement()
        .expect("the installation's cgroup place");
    placement
        .parent_dirs()
        .into_iter()
        .map(|dir| dir.join(format!("box-{id}")))
        .collect()
}

/// A meta file read the way CMS reads it: each line split at its first
/// `:`, values collected per key.
#[derive(Debug, Default)]
pub struct CmsLog {
    entries: Vec<(String, String)>,
}

impl CmsLog {
    /// Parses the meta file text.
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .map(|line| {
                let line = line.trim();
                let (key, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("meta line without ':': {line:?}"));
                (key.to_string(), value.to_string())
            })
            .collect();
        Self { entries }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// The keys in file order.
    pub fn keys(&self) -> Vec<&str> {
        self.entries.iter().map(|(key, _)| key.as_str()).collect()
    }

    /// CMS's `get_exit_status`: XX > TO (wall when the message says so) >
    /// SG (memory limit when `cg-oom-killed` is there) > RE > OK.
    pub fn exit_status(&self) -> &'static str {
        match self.get("status") {
            Some("XX") => "sandbox error",
            Some("TO") if self.get("message").is_some_and(|m| m.contains("wall")) => "wall timeout",
            Some("TO") => "timeout",
            Some("SG") if self.get("cg-oom-killed").is_some() => "memory limit",
            Some("SG") => "signal",
            Some("RE") => "nonzero return",
            _ => "ok",
        }
    }

    /// CMS's execution time: `time`, in seconds.
    pub fn time(&self) -> f64 {
        self.get("time")
            .expect("a meta file with time")
            .parse()
            .expect("time is a number")
    }

    /// CMS's memory used: `cg-mem` KiB times 1024.
    pub fn memory(&self) -> u64 {
        self.get("cg-mem")
            .expect("a meta file with cg-mem")
            .parse::<u64>()
            .expect("cg-mem is a number")
            * 1024
    }
}

/// isolate's exit status as CMS sees it: 0 and 1 are a sandbox that did its
/// job, 2 a sandbox error.
pub fn cms_box_ok(code: i32) -> bool {
    code == 0 || code == 1
}
