//! The isolate face installed the way CMS deploys isolate: set-user-ID
//! root and executable only by one group (`install -o root -g isolate -m
//! 4750`). The judges' own flows (CMS, Judge0, Piston) run as a caller who
//! is not root but is in that group, then that caller attacks the mode.
//!
//! The caller is a bare numeric uid with the group as a supplementary one
//! (no account is created, so none is left behind). A caller who is not
//! root cannot name a private configuration, so these tests use the default
//! installation, boxes of slot 73 (730–737, uids 60730–60737) of the table
//! in `tests/isolate_support/mod.rs`, apart from the test configuration's
//! uids.
//!
//! Run as root (privileged tests).

mod common;
mod isolate_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::skip_unless_privileged;
use isolate_support::{slot_id, CmsLog};

/// The group the binary is executable by (isolate's `isolate` group).
const GROUP: u32 = 64730;
/// The judge's uid (and primary gid): in [`GROUP`] as a supplementary group.
const CALLER: u32 = 64731;
/// A local user outside [`GROUP`].
const OUTSIDER: u32 = 64732;
/// `box_root` of the default installation.
const DEFAULT_BOX_ROOT: &str = "/var/local/lib/isobox";

/// A set-user-ID copy of isobox named `isolate`, owned by root and
/// [`GROUP`], mode 4750, and a directory the caller owns (its working
/// directory, where it asks for meta files).
struct Installation {
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Installation {
    /// `None` where the file system ignores set-user-ID bits (nosuid):
    /// there is nothing to run there.
    fn new() -> Option<Self> {
        let dir = common::temp_dir("isobox-setuid-flows-", 0o755);
        let binary = dir.path().join("isolate");
        fs::copy(env!("CARGO_BIN_EXE_isobox"), &binary).expect("copying isobox");
        std::os::unix::fs::chown(&binary, Some(0), Some(GROUP)).expect("chown root:group");
        // chown clears the set-user-ID bit, so the mode comes after it.
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o4750)).expect("chmod 4750");
        let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: statvfs is plain data filled by the call.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a valid statvfs.
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut stat) }, 0);
        if stat.f_flag & libc::ST_NOSUID != 0 {
            eprintln!("the temporary directory is nosuid: no set-user-ID installation here");
            return None;
        }
        let installation = Self { dir, binary };
        let work = installation.work();
        fs::create_dir(&work).expect("mkdir work");
        std::os::unix::fs::chown(&work, Some(CALLER), Some(CALLER)).expect("chown work");
        Some(installation)
    }

    /// The caller's own directory.
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Root's directory next to the binary (mode 0755): the caller can
    /// read it, not write it.
    fn root_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The binary run as `uid` with primary gid `uid` and `groups`, in
    /// `/`, without stdin and without `ISOBOX_CONFIG`.
    fn command_as(&self, uid: u32, groups: &[u32]) -> Command {
        command_of(&self.binary, uid, groups)
    }

    /// The binary as the judge: [`CALLER`] in [`GROUP`].
    fn caller(&self) -> Command {
        self.command_as(CALLER, &[GROUP])
    }

    /// `args` run as the judge.
    fn as_caller(&self, args: &[&str]) -> Output {
        output_of(self.caller().args(args))
    }
}

/// `program` run as `uid` with primary gid `uid` and `groups`, in `/`,
/// without stdin and without `ISOBOX_CONFIG`.
fn command_of(program: &Path, uid: u32, groups: &[u32]) -> Command {
    let groups = groups.to_vec();
    let mut command = Command::new(program);
    command
        .current_dir("/")
        .stdin(Stdio::null())
        .env_remove("ISOBOX_CONFIG");
    // SAFETY: setgroups, setgid and setuid are async-signal-safe; the
    // group list was allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(uid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// `command`'s output, retried while the kernel says the binary is busy:
/// a freshly written copy stays open for writing in any child another test
/// thread forks before that child's `execve` (`ETXTBSY`).
fn output_of(command: &mut Command) -> Output {
    for _ in 0..100 {
        match command.output() {
            Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.expect("running the setuid copy"),
        }
    }
    panic!("the setuid copy stayed busy");
}

/// A box of the default installation, cleaned up by root whatever
/// happens (the flows clean up themselves; this is for failures).
struct BoxGuard<'a> {
    installation: &'a Installation,
    id: u32,
}

impl BoxGuard<'_> {
    fn dir(&self) -> PathBuf {
        Path::new(DEFAULT_BOX_ROOT).join(self.id.to_string())
    }
}

impl Drop for BoxGuard<'_> {
    fn drop(&mut self) {
        let _ = output_of(
            Command::new(&self.installation.binary)
                .env_remove("ISOBOX_CONFIG")
                .current_dir("/")
                .stdin(Stdio::null())
                .args(["--cg", "-b", &self.id.to_string(), "--cleanup"]),
        );
        // Root's commands start the default installation's service, with
        // a spare.
        common::stop_installation_and_spares(Path::new(isobox::boxes::DEFAULT_CONFIG_PATH));
    }
}

fn guard(installation: &Installation, id: u32) -> BoxGuard<'_> {
    BoxGuard { installation, id }
}

/// A meta file the caller asked for: there, owned by the caller, parsed.
fn callers_meta(path: &Path) -> CmsLog {
    let owner = fs::metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert_eq!((owner.uid(), owner.gid()), (CALLER, CALLER), "{path:?}");
    CmsLog::parse(&fs::read_to_string(path).expect("reading the meta file"))
}

fn assert_ok(output: &Output, what: &str) {
    assert_eq!(output.status.code(), Some(0), "{what}: {output:?}");
}

fn assert_cleaned_up(installation: &Installation, boxed: &BoxGuard<'_>, cleanup: &[&str]) {
    assert_ok(&installation.as_caller(cleanup), "cleanup");
    assert!(
        !boxed.dir().exists(),
        "{} survived --cleanup",
        boxed.dir().display()
    );
}

/// CMS's flow (tests/isolate_cms.rs): `--box-id=N --cg --init`, its `--run`
/// argument list with a home directory bound at `/tmp`, stdin and stdout
/// files there, the meta file in the caller's directory, `--cleanup`.
#[test]
fn cms_flow_as_a_group_member() {
    skip_unless_privileged!();
    let Some(installation) = Installation::new() else {
        return;
    };
    let id = slot_id(73, 0);
    let boxed = guard(&installation, id);
    let init = installation.as_caller(&[&format!("--box-id={id}"), "--cg", "--init"]);
    assert_ok(&init, "init");
    assert_eq!(
        String::from_utf8_lossy(&init.stdout).trim_end(),
        boxed.dir().display().to_string()
    );
    let home = installation.work().join("home");
    fs::create_dir(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&home, Some(CALLER), Some(CALLER)).unwrap();
    fs::write(home.join("input.txt"), "20 22\n").unwrap();
    fs::set_permissions(home.join("input.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    let meta = installation.work().join("run.meta.0");
    let run = installation.as_caller(&[
        "--cg",
        &format!("--box-id={id}"),
        "--chdir=/tmp",
        &format!("--dir=/tmp={}:rw", home.display()),
        "--dir=/dev/shm:tmp",
        "--dir=/etc/alternatives=/etc/alternatives",
        "--env=HOME=/tmp",
        "--fsize=1024",
        "--stdin=/tmp/input.txt",
        "--cg-mem=262144",
        "--stdout=/tmp/output.txt",
        "--processes=1",
        "--stderr=/tmp/error.txt",
        "--time=5",
        "--wall-time=30",
        "--extra-time=0.5",
        &format!("--meta={}", meta.display()),
        "--run",
        "--",
        "/bin/sh",
        "-c",
        "read a b; echo $((a + b))",
    ]);
    assert_ok(&run, "run");
    let log = callers_meta(&meta);
    assert_eq!(log.get("exitcode"), Some("0"), "{run:?}");
    assert_eq!(log.get("status"), None, "{run:?}");
    assert_eq!(fs::read_to_string(home.join("output.txt")).unwrap(), "42\n");
    assert_cleaned_up(
        &installation,
        &boxed,
        &[&format!("--box-id={id}"), "--cg", "--cleanup"],
    );
}

/// Judge0's flow (tests/isolate_judge0.rs): `--cg -b N --init`, `run.sh` in
/// the box, its `--run` list with `-M`, its limits and `-E` rules, streams
/// redirected by the shell, `--cleanup`. Judge0 asks for the meta file in
/// the box's directory, which only root may write; the judge here names
/// one in its own directory.
#[test]
fn judge0_flow_as_a_group_member() {
    skip_unless_privileged!();
    let Some(installation) = Installation::new() else {
        return;
    };
    let id = slot_id(73, 1);
    let boxed = guard(&installation, id);
    let id_arg = id.to_string();
    let init = installation.as_caller(&["--cg", "-b", &id_arg, "--init"]);
    assert_ok(&init, "init");
    let workdir = PathBuf::from(String::from_utf8_lossy(&init.stdout).trim_end());
    assert_eq!(workdir, boxed.dir());
    let script = workdir.join("box/run.sh");
    fs::write(&script, "read n\necho $((n * 2))\necho \"to stderr\" >&2\n").unwrap();
    std::os::unix::fs::chown(&script, Some(CALLER), Some(CALLER)).unwrap();
    let streams = installation.work();
    for (name, content) in [
        ("stdin.txt", "21\n"),
        ("stdout.txt", ""),
        ("stderr.txt", ""),
    ] {
        fs::write(streams.join(name), content).unwrap();
        std::os::unix::fs::chown(streams.join(name), Some(CALLER), Some(CALLER)).unwrap();
    }
    let meta = streams.join("metadata.txt");
    let meta_arg = meta.display().to_string();
    let run = output_of(
        installation
            .caller()
            .args(["--cg", "-s", "-b", &id_arg, "-M", &meta_arg])
            .args(["-t", "5", "-x", "1", "-w", "30", "-k", "64000", "-p60"])
            .args(["--cg-mem=128000", "-f", "1024", "-E", "LANG", "--cg-timing"])
            .args(["-E", "HOME=/tmp", "-E"])
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .args(["-E", "LANGUAGE", "-E", "LC_ALL", "-E", "JUDGE0_VERSION"])
            .args(["-d", "/etc:noexec", "--run", "--", "/bin/bash", "run.sh"])
            .env("LANG", "C.UTF-8")
            .env("JUDGE0_VERSION", "1.13.1")
            .current_dir(&workdir)
            .stdin(fs::File::open(streams.join("stdin.txt")).unwrap())
            .stdout(fs::File::create(streams.join("stdout.txt")).unwrap())
            .stderr(fs::File::create(streams.join("stderr.txt")).unwrap()),
    );
    let stderr = fs::read_to_string(streams.join("stderr.txt")).unwrap();
    assert_eq!(run.status.code(), Some(0), "{run:?}\n{stderr}");
    assert_eq!(
        fs::read_to_string(streams.join("stdout.txt")).unwrap(),
        "42\n"
    );
    assert!(stderr.contains("to stderr"), "{stderr}");
    let log = callers_meta(&meta);
    assert_eq!(log.get("exitcode"), Some("0"));
    assert_eq!(log.get("status"), None);
    assert!(
        log.get("cg-mem").is_some(),
        "--cg-timing run without cg-mem"
    );
    assert_cleaned_up(&installation, &boxed, &["--cg", "-b", &id_arg, "--cleanup"]);
}

/// Piston's flow (tests/isolate_piston.rs): `--init --cg -bN`, the
/// submission written under `<box>/submission`, `safe_call`'s argument
/// list word for word with the runtime's package directory bound in and
/// stdin written to isolate's pipe, `--cleanup --cg -bN`.
#[test]
fn piston_flow_as_a_group_member() {
    skip_unless_privileged!();
    let Some(installation) = Installation::new() else {
        return;
    };
    let id = slot_id(73, 2);
    let boxed = guard(&installation, id);
    let init = installation.as_caller(&["--init", "--cg", &format!("-b{id}")]);
    assert_ok(&init, "init");
    let dir = PathBuf::from(format!(
        "{}/box",
        String::from_utf8_lossy(&init.stdout).trim()
    ));
    assert!(dir.is_dir(), "{init:?}");
    let submission = dir.join("submission");
    fs::create_dir(&submission).unwrap();
    fs::write(submission.join("main.sh"), "echo \"piston says $(cat)\"\n").unwrap();
    for path in [&submission, &submission.join("main.sh")] {
        std::os::unix::fs::chown(path, Some(CALLER), Some(CALLER)).unwrap();
    }
    // The runtime belongs to root and is readable by everyone, as
    // Piston's package directory is.
    let pkgdir = installation.root_dir().join("packages/bash/5.2.0");
    fs::create_dir_all(&pkgdir).unwrap();
    fs::write(pkgdir.join("run"), "bash \"$@\"\n").unwrap();
    let metadata_file_path = installation.work().join(format!("{id}-metadata.txt"));
    let mut child = installation
        .caller()
        .args([
            "--run".to_string(),
            format!("-b{id}"),
            format!("--meta={}", metadata_file_path.display()),
        ])
        .args(["--cg", "-s", "-c", "/box/submission", "-E", "HOME=/tmp"])
        .args(["-E", "PATH=/usr/local/bin:/usr/bin:/bin", "-E"])
        .arg("PISTON_LANGUAGE=bash")
        .arg(format!("--dir={}", pkgdir.display()))
        .args(["--dir=/etc:noexec", "--processes=64", "--open-files=2048"])
        .args([
            "--fsize=10000",
            "--wall-time=30",
            "--time=5",
            "--extra-time=0",
        ])
        .args(["--cg-mem=256000", "--", "/bin/bash"])
        .arg(pkgdir.join("run"))
        .arg("main.sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning isolate");
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(b"hello\n").unwrap();
    }
    let run = child.wait_with_output().unwrap();
    assert_ok(&run, "run");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "piston says hello\n");
    let log = callers_meta(&metadata_file_path);
    assert_eq!(log.get("exitcode"), Some("0"), "{run:?}");
    assert_eq!(log.get("status"), None, "{run:?}");
    assert_cleaned_up(
        &installation,
        &boxed,
        &["--cleanup", "--cg", &format!("-b{id}")],
    );
}

/// Root's files for the attacks, in root's directory next to the binary
/// (mode 0755): `shared/` (0755) holds `secret` (0600) and `private/`
/// (0700) with `key` (0644) in it.
struct RootFiles {
    shared: PathBuf,
}

impl RootFiles {
    fn new(installation: &Installation) -> Self {
        let shared = installation.root_dir().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(shared.join("secret"), "ROOT SECRET\n").unwrap();
        fs::set_permissions(shared.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        let private = shared.join("private");
        fs::create_dir(&private).unwrap();
        fs::write(private.join("key"), "ROOT KEY\n").unwrap();
        fs::set_permissions(private.join("key"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        Self { shared }
    }

    /// Both files still hold what root wrote, and nothing was added.
    fn assert_untouched(&self) {
        assert_eq!(
            fs::read_to_string(self.shared.join("secret")).unwrap(),
            "ROOT SECRET\n"
        );
        assert_eq!(
            fs::read_to_string(self.shared.join("private/key")).unwrap(),
            "ROOT KEY\n"
        );
        let names = |dir: &Path| {
            let mut names: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&self.shared), ["private", "secret"]);
        assert_eq!(names(&self.shared.join("private")), ["key"]);
    }
}

/// Attack: name, for `--meta`, a root-only file, a new file in a directory
/// only root may write, and one behind a 0700 root directory. Each run is
/// refused; nothing is created, truncated or written.
#[test]
fn meta_files_the_caller_cannot_write_are_refused() {
    skip_unless_privileged!();
    let Some(installation) = Installation::new() else {
        return;
    };
    let files = RootFiles::new(&installation);
    let id = slot_id(73, 3);
    let boxed = guard(&installation, id);
    let id_arg = id.to_string();
    assert_ok(
        &installation.as_caller(&["--cg", "-b", &id_arg, "--init"]),
        "init",
    );
    for target in [
        files.shared.join("secret"),
        files.shared.join("planted"),
        files.shared.join("private/key"),
        files.shared.join("private/planted"),
    ] {
        let meta = format!("--meta={}", target.display());
        let run = installation.as_caller(&[
            "--cg",
            "-b",
            &id_arg,
            &meta,
            "--run",
            "--",
            "/bin/echo",
            "PWNED",
        ]);
        assert_eq!(run.status.code(), Some(2), "{target:?}: {run:?}");
        assert!(
            String::from_utf8_lossy(&run.stderr).contains("cannot open the meta file"),
            "{target:?}: {run:?}"
        );
        files.assert_untouched();
    }
    assert_cleaned_up(&installation, &boxed, &["--cg", "-b", &id_arg, "--cleanup"]);
}

/// Attack: read and overwrite root's files through the program's streams.
/// The caller may bind the readable `shared/` directory, then names the
/// root-only file, and the key behind the 0700 directory, as `--stdin` and
/// `--stdout`: the program never sees their contents and they stay as
/// they were.
#[test]
fn stream_files_the_caller_cannot_open_are_refused() {
    skip_unless_privileged!();
    let Some(installation) = Installation::new() else {
        return;
    };
    let files = RootFiles::new(&installation);
    let id = slot_id(73, 4);
    let boxed = guard(&installation, id);
    let id_arg = id.to_string();
    assert_ok(
        &installation.as_caller(&["--cg", "-b", &id_arg, "--init"]),
        "init",
    );
    let bind = format!("--dir=/shared={}", files.shared.display());
    for inside in ["/shared/secret", "/shared/private/key"] {
        for stream in ["--stdin", "--stdout"] {
            let redirect = format!("{stream}={inside}");
            let run = installation.as_caller(&[
                "--cg", "-b", &id_arg, &bind, &redirect, "--run", "--", "/bin/cat",
            ]);
            assert_eq!(run.status.code(), Some(2), "{redirect}: {run:?}");
            assert!(
                String::from_utf8_lossy(&run.stderr).contains("setting up stdio failed"),
                "{redirect}: {run:?}"
            );
            let stdout = String::from_utf8_lossy(&run.stdout);
            assert!(!stdout.contains("ROOT"), "{redirect}: {run:?}");
            files.assert_untouched();
        }
    }
    // The same bind with readable streams works: the refusals above are
    // the files', not the rule's.
    let run = installation.as_caller(&[
        "--cg", "-b", &id_arg, &bind, "--run", "--", "/bin/ls", "/shared",
    ]);
    assert_ok(&run, "listing /shared");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "private\nsecret\n");
    assert_cleaned_up(&installation, &boxed, &["--cg", "-b", &id_arg, "--cleanup"]);
}

/// Attack: bind what the caller cannot read: root's home (0700), a file in
/// it, the root-only file, the 0700 directory and a file behind it, also
/// with `:maybe`. Each rule is refused before anything runs.
#[test]
fn rule_sources_the_caller_cannot_read_are_refused() {
    skip_unless_privileged!();
    let Some(installation) = Installation::new() else {
        return;
    };
    let files = RootFiles::new(&installation);
    let id = slot_id(73, 5);
    let boxed = guard(&installation, id);
    let id_arg = id.to_string();
    assert_ok(
        &installation.as_caller(&["--cg", "-b", &id_arg, "--init"]),
        "init",
    );
    // Root's home is 0700 on our machines, but not in the VM of
    // scripts/vm-test (the host's root over 9p): there only the test's own
    // root-only files are attacked.
    let home_is_private = fs::metadata("/root").unwrap().permissions().mode() & 0o077 == 0;
    if !home_is_private {
        eprintln!("*** /root is readable by others here: its rules are not attacked ***");
    }
    let home_rules = ["/box/x=/root".to_string(), "/box/x=/root/.bashrc".into()];
    let rules = [
        format!("/box/x={}", files.shared.join("secret").display()),
        format!("/box/x={}", files.shared.join("private").display()),
        format!("/box/x={}", files.shared.join("private/key").display()),
        format!(
            "/box/x={}:maybe",
            files.shared.join("private/key").display()
        ),
    ];
    let home_rules = home_rules.iter().filter(|_| home_is_private);
    for rule in rules.iter().chain(home_rules) {
        let run = installation.as_caller(&[
            "--cg", "-b", &id_arg, "-d", rule, "--run", "--", "/bin/cat", "/box/x",
        ]);
        assert_eq!(run.status.code(), Some(2), "{rule}: {run:?}");
        assert!(!String::from_utf8_lossy(&run.stdout).contains("ROOT"));
        assert!(
            String::from_utf8_lossy(&run.stderr).contains("may not"),
            "{rule}: {run:?}"
        );
    }
    files.assert_untouched();
    assert_cleaned_up(&installation, &boxed, &["--cg", "-b", &id_arg, "--cleanup"]);
}

/// Attack: point `ISOBOX_CONFIG` at a configuration the caller wrote (box
/// root in its own directory, box uids from 0, no cgroups), with the
/// logging variable turned up too. The caller who is not root gets no say:
/// the request is refused, nothing appears in its box root, and without
/// that variable (the rest of the hostile environment kept) the box is the
/// installed one.
#[test]
fn a_callers_configuration_is_not_honoured() {
    skip_unless_privileged!();
    let Some(installation) = Installation::new() else {
        return;
    };
    let id = slot_id(73, 6);
    let boxed = guard(&installation, id);
    let id_arg = id.to_string();
    let hostile_root = installation.work().join("boxes");
    let config = installation.work().join("hostile.conf");
    fs::write(
        &config,
        format!(
            "box_root = {}\nlock_root = {}\nfirst_uid = 0\nfirst_gid = 0\nnum_boxes = 1000\n\
             use_cgroups = false\n",
            hostile_root.display(),
            installation.work().join("locks").display()
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&config, Some(CALLER), Some(CALLER)).unwrap();
    let hostile_env = [
        ("ISOBOX_LOG", "trace"),
        ("HOME", "/root"),
        ("TMPDIR", "/root"),
    ];
    let refused = output_of(
        installation
            .caller()
            .env("ISOBOX_CONFIG", &config)
            .envs(hostile_env)
            .args(["-b", &id_arg, "--init"]),
    );
    if refused.status.code() == Some(0) {
        // Honoured after all: the box it made goes before the test fails.
        let _ = output_of(
            Command::new(&installation.binary)
                .env("ISOBOX_CONFIG", &config)
                .args(["-b", &id_arg, "--cleanup"]),
        );
    }
    assert_ne!(refused.status.code(), Some(0), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("ISOBOX_CONFIG"),
        "{refused:?}"
    );
    assert!(!hostile_root.exists(), "the caller's box root was used");
    assert!(!boxed.dir().exists(), "a refused init made a box");
    let init = output_of(
        installation
            .caller()
            .envs(hostile_env)
            .args(["--cg", "-b", &id_arg, "--init"]),
    );
    assert_ok(&init, "init");
    assert_eq!(
        String::from_utf8_lossy(&init.stdout).trim_end(),
        boxed.dir().display().to_string()
    );
    assert!(!hostile_root.exists(), "the caller's box root was used");
    let run = output_of(installation.caller().envs(hostile_env).args([
        "--cg",
        "-b",
        &id_arg,
        "--run",
        "--",
        "/usr/bin/id",
        "-u",
    ]));
    assert_ok(&run, "run");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim_end(),
        (60000 + id).to_string(),
        "the program does not run as the installed box's uid"
    );
    assert_cleaned_up(&installation, &boxed, &["--cg", "-b", &id_arg, "--cleanup"]);
}

/// A local user outside the group cannot execute the installation at all,
/// and a group member who is not root still cannot act as another uid.
#[test]
fn only_the_group_may_run_it() {
    skip_unless_privileged!();
    let Some(installation) = Installation::new() else {
        return;
    };
    let id_arg = slot_id(73, 7).to_string();
    let mut outsider = installation.command_as(OUTSIDER, &[]);
    outsider.args(["-b", &id_arg, "--init"]);
    let error = loop {
        match outsider.output() {
            Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.expect_err("an outsider ran the installation"),
        }
    };
    assert_eq!(error.raw_os_error(), Some(libc::EACCES), "{error}");
    let boxed = guard(&installation, slot_id(73, 7));
    assert!(!boxed.dir().exists());
    let as_root = installation.as_caller(&["--as-uid=0", "--as-gid=0", "-b", &id_arg, "--init"]);
    assert_eq!(as_root.status.code(), Some(2), "{as_root:?}");
    assert!(
        String::from_utf8_lossy(&as_root.stderr).contains("must be root"),
        "{as_root:?}"
    );
    assert!(!boxed.dir().exists());
}

/// The other faces drop the set-user-ID privilege first and then run as
/// the caller would run a plain copy: `isobox run` by a group member is a
/// rootless run (a user namespace of the caller's), not an error because
/// the kernel left the process undumpable after the set-user-ID exec.
#[test]
fn isobox_run_by_a_group_member_is_the_callers_own_rootless_run() {
    skip_unless_privileged!();
    let Some(installation) = Installation::new() else {
        return;
    };
    let native = installation.root_dir().join("isobox");
    std::os::unix::fs::symlink(&installation.binary, &native).expect("symlink isobox");
    let plain = installation.root_dir().join("plain-isobox");
    fs::copy(env!("CARGO_BIN_EXE_isobox"), &plain).expect("copying isobox");
    fs::set_permissions(&plain, fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let run = |program: &Path| {
        output_of(
            command_of(program, CALLER, &[GROUP])
                .env("TMPDIR", "/tmp")
                .args(["run", "--time", "2", "--", "/usr/bin/id", "-u"]),
        )
    };
    let own = run(&plain);
    let installed = run(&native);
    assert_eq!(
        installed.status.code(),
        own.status.code(),
        "{installed:?}\n{own:?}"
    );
    assert_eq!(installed.stdout, own.stdout, "{installed:?}\n{own:?}");
    // Where the caller may make user namespaces at all (every machine the
    // tests run on), it is a run, as the box's uid 1000.
    if own.status.success() {
        assert_eq!(String::from_utf8_lossy(&own.stdout), "1000\n", "{own:?}");
    }
}
