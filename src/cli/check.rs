//! `isobox check-environment`: whether isobox can run in strict mode on
//! this machine, and what makes its timing noisy, in the spirit of
//! isolate's `isolate-check-environment`.
//!
//! Every finding is one line, `OK`, `WARN` or `FAIL`, then the topic and
//! what was found. `FAIL` is kept for what stops strict mode; timing noise
//! is at most `WARN`. Nothing here may panic on a strange machine: a file
//! that is missing or unreadable becomes a finding of its own.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use isobox::cgroup::{CgroupController, CgroupLimits, CgroupVersion};
use isobox::{ExecutionStatus, IsolateConfig, ProcessExecutor};

use super::units::human_size;

/// How a finding bears on running isobox here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// As it should be.
    Ok,
    /// Works, but measurements are noisier or a feature is degraded.
    Warn,
    /// Strict mode cannot work.
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    level: Level,
    topic: &'static str,
    detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4}  {}: {}", self.level, self.topic, self.detail)
    }
}

fn finding(level: Level, topic: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        level,
        topic,
        detail: detail.into(),
    }
}

/// Runs every check, prints one line per finding and returns 0 when
/// strict mode works here (no `FAIL`), 1 otherwise.
pub fn main() -> ExitCode {
    let findings = check_all();
    let failed = findings.iter().any(|f| f.level == Level::Fail);
    let mut out = String::new();
    for finding in &findings {
        out.push_str(&finding.to_string());
        out.push('\n');
    }
    out.push_str(if failed {
        "=> isobox cannot run in strict mode here (see the FAIL lines)\n"
    } else {
        "=> isobox can run in strict mode here\n"
    });
    // Nothing useful can be done when stdout itself is gone.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    ExitCode::from(u8::from(failed))
}

/// Every check, in the order they are printed.
fn check_all() -> Vec<Finding> {
    let root = isobox::sys::is_root();
    let mut findings = vec![check_kernel(), check_root(root)];
    let cgroup = check_cgroups(root, &mut findings);
    findings.push(check_namespaces());
    check_rootless(root, &mut findings);
    findings.push(check_seccomp());
    findings.push(check_strict_run(root, cgroup.is_some()));
    findings.push(check_swap());
    findings.push(check_boost());
    findings.push(check_smt());
    findings.push(check_aslr());
    findings.push(check_thp());
    findings
}

/// Reads a small kernel file, trimmed; `None` when it cannot be read.
fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// `(major, minor)` of a kernel release such as `6.1.0-48-amd64`.
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn check_kernel() -> Finding {
    const TOPIC: &str = "kernel";
    let Some(release) = read_trimmed("/proc/sys/kernel/osrelease") else {
        return finding(
            Level::Warn,
            TOPIC,
            "cannot read /proc/sys/kernel/osrelease (is /proc mounted?)",
        );
    };
    kernel_finding(&release)
}

fn kernel_finding(release: &str) -> Finding {
    const TOPIC: &str = "kernel";
    let Some(version) = parse_release(release) else {
        return finding(
            Level::Warn,
            TOPIC,
            format!("Linux {release}: cannot tell the version"),
        );
    };
    let (level, note) = if version < (5, 3) {
        (Level::Fail, "isobox needs 5.3+ for clone3 and pidfds")
    } else if version < (5, 7) {
        (
            Level::Warn,
            "before 5.7 no CLONE_INTO_CGROUP: on v2 the box joins its cgroup after clone",
        )
    } else if version < (5, 19) {
        (
            Level::Warn,
            "before 5.19 no memory.peak: on v2 peak memory is sampled",
        )
    } else {
        (Level::Ok, "5.7+: clone3 straight into the cgroup")
    };
    finding(level, TOPIC, format!("Linux {release} ({note})"))
}

fn check_root(root: bool) -> Finding {
    if root {
        finding(Level::Ok, "user", "running as root")
    } else {
        finding(
            Level::Warn,
            "user",
            "not root: boxes go in a user namespace (rootless, see below), run as the \
             caller's own uid on the host, and need a delegated cgroup for cgroup limits",
        )
    }
}

/// The cgroup findings; returns the hierarchy when it is usable.
fn check_cgroups(root: bool, findings: &mut Vec<Finding>) -> Option<(CgroupVersion, PathBuf)> {
    let (version, dir) = match CgroupController::detect(None) {
        Ok(found) => found,
        Err(error) => {
            findings.push(finding(Level::Fail, "cgroup", error.to_string()));
            return None;
        }
    };
    findings.push(finding(
        Level::Ok,
        "cgroup",
        match version {
            CgroupVersion::V2 => format!("v2 (unified) at {}", dir.display()),
            CgroupVersion::V1 => format!("v1 (a hierarchy per controller) at {}", dir.display()),
        },
    ));
    findings.push(controllers_finding(version, &dir));
    if root {
        findings.push(probe_cgroup());
        Some((version, dir))
    } else {
        findings.push(finding(
            Level::Fail,
            "cgroup probe",
            "skipped: only root can create cgroups",
        ));
        None
    }
}

/// Which controllers are there and which isobox uses.
fn controllers_finding(version: CgroupVersion, dir: &Path) -> Finding {
    const TOPIC: &str = "cgroup controllers";
    const OPTIONAL: [&str; 2] = ["cpu", "cpuset"];
    let (available, required): (Vec<String>, &[&str]) = match version {
        CgroupVersion::V2 => {
            let Some(list) = read_trimmed(dir.join("cgroup.controllers")) else {
                return finding(
                    Level::Fail,
                    TOPIC,
                    format!("cannot read {}", dir.join("cgroup.controllers").display()),
                );
            };
            (
                list.split_ascii_whitespace().map(str::to_owned).collect(),
                &["memory", "pids"],
            )
        }
        CgroupVersion::V1 => {
            let mounted = ["memory", "pids", "cpuacct", "cpu", "cpuset", "blkio"]
                .into_iter()
                .filter(|c| dir.join(c).join("cgroup.procs").is_file())
                .map(str::to_owned)
                .collect();
            (mounted, &["memory", "pids", "cpuacct"])
        }
    };
    let has = |c: &str| available.iter().any(|a| a == c);
    let missing: Vec<&str> = required.iter().copied().filter(|c| !has(c)).collect();
    let unused: Vec<&str> = OPTIONAL.iter().copied().filter(|c| !has(c)).collect();
    let what = match version {
        CgroupVersion::V2 => "available",
        CgroupVersion::V1 => "mounted",
    };
    let mut detail = format!(
        "{what}: {} (needs {}; uses {})",
        available.join(" "),
        required.join(" "),
        OPTIONAL.join(" ")
    );
    let level = if !missing.is_empty() {
        detail.push_str(&format!("; MISSING: {}", missing.join(" ")));
        Level::Fail
    } else if !unused.is_empty() {
        detail.push_str(&format!(
            "; without {} the CPU weight or cpuset cannot be set",
            unused.join(" ")
        ));
        Level::Warn
    } else {
        Level::Ok
    };
    finding(level, TOPIC, detail)
}

/// Creates a strict instance and a run cgroup below it, writes every
/// limit, reads the measurements and removes both: what a run does.
fn probe_cgroup() -> Finding {
    const TOPIC: &str = "cgroup probe";
    let name = format!("check-{}", std::process::id());
    let outcome = (|| -> Result<String, isobox::CgroupError> {
        let mut instance = CgroupController::new(None, &name, true)?;
        let mut run = instance.create_child("probe")?;
        run.apply_limits(&CgroupLimits {
            memory: Some(64 << 20),
            pids: Some(8),
            cpu_shares: Some(1024),
            ..CgroupLimits::default()
        })?;
        run.usage()?;
        let features = cgroup_features(&run);
        run.remove()?;
        instance.remove()?;
        Ok(features)
    })();
    match outcome {
        Ok(features) => finding(
            Level::Ok,
            TOPIC,
            format!("isobox/{name}/probe created, limited, measured, removed; {features}"),
        ),
        Err(error) => finding(Level::Fail, TOPIC, error.to_string()),
    }
}

/// Which of the optional kernel interfaces a run cgroup has.
fn cgroup_features(run: &CgroupController) -> String {
    let paths = run.paths();
    let exists = |file: &str| paths.iter().any(|dir| dir.join(file).exists());
    let features: &[(&str, &str)] = match run.version() {
        CgroupVersion::V2 => &[
            ("memory.peak", "peak memory (5.19+)"),
            ("cgroup.kill", "tree kill (5.14+)"),
            ("memory.swap.max", "swap limit"),
        ],
        CgroupVersion::V1 => &[
            ("memory.memsw.limit_in_bytes", "swap limit"),
            ("memory.max_usage_in_bytes", "peak memory"),
        ],
    };
    let (present, absent): (Vec<_>, Vec<_>) = features.iter().partition(|(f, _)| exists(f));
    let mut text = String::new();
    if !present.is_empty() {
        let names: Vec<&str> = present.iter().map(|(f, _)| *f).collect();
        text.push_str(&format!("has {}", names.join(", ")));
    }
    if !absent.is_empty() {
        let names: Vec<String> = absent.iter().map(|(f, w)| format!("{f} ({w})")).collect();
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&format!("lacks {}", names.join(", ")));
    }
    text
}

fn check_namespaces() -> Finding {
    const TOPIC: &str = "namespaces";
    // (name in /proc/self/ns, name in /proc/sys/user/max_*_namespaces)
    const NEEDED: [(&str, &str); 5] = [
        ("pid", "pid"),
        ("mnt", "mnt"),
        ("net", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
    ];
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (ns, limit) in NEEDED {
        let present = Path::new("/proc/self/ns").join(ns).exists();
        let max = read_trimmed(format!("/proc/sys/user/max_{limit}_namespaces"))
            .and_then(|v| v.parse::<u64>().ok());
        match (present, max) {
            (false, _) => bad.push(format!("{ns} (not in this kernel)")),
            (true, Some(0)) => bad.push(format!("{ns} (max_{limit}_namespaces is 0)")),
            (true, _) => ok.push(ns),
        }
    }
    if bad.is_empty() {
        finding(
            Level::Ok,
            TOPIC,
            format!("{} (a box gets its own of each)", ok.join(" ")),
        )
    } else {
        finding(
            Level::Fail,
            TOPIC,
            format!("unavailable: {}", bad.join(", ")),
        )
    }
}

/// What rootless mode (a caller without root, boxes in a user namespace)
/// has here: user namespaces the caller may use, subordinate id ranges,
/// and a cgroup v2 subtree delegated to the caller.
fn check_rootless(root: bool, findings: &mut Vec<Finding>) {
    const TOPIC: &str = "rootless";
    let mut blockers = Vec::new();
    match read_trimmed("/proc/sys/user/max_user_namespaces").and_then(|v| v.parse::<u64>().ok()) {
        Some(0) => blockers.push("user.max_user_namespaces is 0".to_string()),
        None => blockers.push("no user namespaces in this kernel".to_string()),
        Some(_) => {}
    }
    // Debian's and older Ubuntu's switch for unprivileged user namespaces.
    if read_trimmed("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        blockers.push("kernel.unprivileged_userns_clone is 0".to_string());
    }
    // Ubuntu 23.10 and later: the namespace is made, its capabilities
    // are withheld unless an AppArmor profile allows them.
    if read_trimmed("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref()
        == Some("1")
    {
        blockers.push(
            "kernel.apparmor_restrict_unprivileged_userns is 1 (AppArmor withholds \
             capabilities in user namespaces unless a profile allows them)"
                .to_string(),
        );
    }
    let level = if !root && !isobox::sys::user_namespaces_usable() {
        if blockers.is_empty() {
            blockers.push("a user and mount namespace could not be made and used".to_string());
        }
        Level::Fail
    } else if blockers.is_empty() {
        Level::Ok
    } else {
        Level::Warn
    };
    findings.push(finding(
        level,
        TOPIC,
        if blockers.is_empty() {
            if root {
                "user namespaces are open to callers without root (boxes of a caller \
                 without root go in one)"
                    .to_string()
            } else {
                "this caller can isolate boxes in a user namespace".to_string()
            }
        } else {
            format!(
                "user namespaces unusable without root: {}",
                blockers.join("; ")
            )
        },
    ));
    findings.push(check_subids());
    findings.push(check_delegated_cgroup(root));
}

/// Subordinate id ranges of the caller, which `newuidmap` would map.
fn check_subids() -> Finding {
    const TOPIC: &str = "rootless ids";
    let uid = isobox::sys::effective_uid();
    let name = fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)? == uid.to_string()).then(|| name.to_string())
        });
    let ranges = fs::read_to_string("/etc/subuid")
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            let owner = line.split(':').next().unwrap_or_default();
            owner == uid.to_string() || Some(owner) == name.as_deref()
        })
        .count();
    let newuidmap = Path::new("/usr/bin/newuidmap").exists();
    finding(
        Level::Ok,
        TOPIC,
        format!(
            "a box's program runs as uid {} inside, the caller's own uid outside; \
             /etc/subuid ranges for uid {uid}: {ranges}, newuidmap {}",
            isobox::sys::ROOTLESS_INSIDE_ID,
            if newuidmap { "present" } else { "absent" }
        ),
    )
}

/// A cgroup v2 directory the caller may write, with the memory and pids
/// controllers: the caller's own cgroup when something (systemd's
/// `Delegate=yes`) handed it over.
fn check_delegated_cgroup(root: bool) -> Finding {
    const TOPIC: &str = "rootless cgroup";
    if root {
        return finding(Level::Ok, TOPIC, "not needed as root");
    }
    let own = fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("0::").map(str::to_string));
    let Some(own) = own.filter(|_| Path::new("/sys/fs/cgroup/cgroup.controllers").exists()) else {
        return finding(
            Level::Warn,
            TOPIC,
            "no cgroup v2 hierarchy: limits are rlimits and the result names the absent \
             cgroup",
        );
    };
    let dir = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
    let uid = isobox::sys::effective_uid();
    use std::os::unix::fs::MetadataExt;
    let owned = fs::metadata(&dir).is_ok_and(|meta| meta.uid() == uid);
    let controllers = read_trimmed(dir.join("cgroup.controllers")).unwrap_or_default();
    let has = |name: &str| controllers.split_whitespace().any(|c| c == name);
    if owned && has("memory") && has("pids") {
        finding(
            Level::Ok,
            TOPIC,
            format!(
                "{} is delegated to this caller (memory, pids); give it as the cgroup \
                 parent",
                dir.display()
            ),
        )
    } else {
        finding(
            Level::Warn,
            TOPIC,
            format!(
                "{} is not delegated to this caller with memory and pids: limits are \
                 rlimits (run under `systemd-run --user --scope -p Delegate=yes`, or have \
                 root make and chown a cgroup)",
                dir.display()
            ),
        )
    }
}

fn check_seccomp() -> Finding {
    const TOPIC: &str = "seccomp";
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mode = status
        .lines()
        .find_map(|line| line.strip_prefix("Seccomp:"))
        .map(str::trim);
    let actions = read_trimmed("/proc/sys/kernel/seccomp/actions_avail");
    match (mode, actions) {
        (None, _) => finding(
            Level::Fail,
            TOPIC,
            "this kernel has no seccomp (no Seccomp line in /proc/self/status)",
        ),
        (Some(_), None) => finding(
            Level::Fail,
            TOPIC,
            "no seccomp filters (no /proc/sys/kernel/seccomp/actions_avail)",
        ),
        (Some(mode), Some(actions)) => {
            let under = if mode == "0" {
                String::new()
            } else {
                format!("; isobox itself already runs under seccomp mode {mode}")
            };
            finding(Level::Ok, TOPIC, format!("filters ({actions}){under}"))
        }
    }
}

/// The real test: one strict run of `/bin/true` with every default on
/// (namespaces, jail, seccomp, box user, cgroup limits).
fn check_strict_run(root: bool, cgroup: bool) -> Finding {
    const TOPIC: &str = "strict mode";
    if !root || !cgroup {
        return finding(
            Level::Fail,
            TOPIC,
            "not tried: strict mode needs root and a usable cgroup hierarchy",
        );
    }
    match strict_run() {
        Ok(detail) => finding(Level::Ok, TOPIC, detail),
        Err(detail) => finding(Level::Fail, TOPIC, detail),
    }
}

fn strict_run() -> Result<String, String> {
    const PROGRAM: &str = "/bin/true";
    let workdir = tempfile::Builder::new()
        .prefix("isobox-check-")
        .tempdir()
        .map_err(|e| format!("cannot create a box directory: {e}"))?;
    fs::set_permissions(workdir.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod the box directory: {e}"))?;
    let config = IsolateConfig {
        workdir: workdir.path().to_path_buf(),
        strict_mode: true,
        time_limit: Some(Duration::from_secs(2)),
        wall_time_limit: Some(Duration::from_secs(20)),
        memory_limit: Some(64 << 20),
        process_limit: Some(8),
        output_limit: Some(1 << 20),
        ..IsolateConfig::default()
    };
    let mut executor = ProcessExecutor::new(config).map_err(|e| e.to_string())?;
    let outcome = executor.execute(&[PROGRAM.to_owned()], None);
    let cleaned = executor.cleanup();
    let result = outcome.map_err(|e| format!("running {PROGRAM}: {e}"))?;
    cleaned.map_err(|e| format!("cleaning up after {PROGRAM}: {e}"))?;
    if result.status != ExecutionStatus::Success {
        return Err(format!(
            "{PROGRAM} in a strict box ended with {} ({})",
            result.status, result.message
        ));
    }
    Ok(format!(
        "{PROGRAM} in a strict box (namespaces, jail, seccomp, a uid of its own, cgroup): \
         {}, {:.3}s wall, {}",
        result.status,
        result.wall_time,
        human_size(result.memory_peak)
    ))
}

fn check_swap() -> Finding {
    const TOPIC: &str = "swap";
    let Ok(swaps) = fs::read_to_string("/proc/swaps") else {
        return finding(Level::Warn, TOPIC, "cannot read /proc/swaps");
    };
    swap_finding(&swaps)
}

fn swap_finding(swaps: &str) -> Finding {
    const TOPIC: &str = "swap";
    let devices: Vec<String> = swaps
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let size = fields.get(2)?.parse::<u64>().ok()?;
            Some(format!("{} {}", fields.first()?, human_size(size * 1024)))
        })
        .collect();
    if devices.is_empty() {
        finding(Level::Ok, TOPIC, "off")
    } else {
        finding(
            Level::Warn,
            TOPIC,
            format!(
                "on ({}): boxes cannot swap, but swapping elsewhere adds noise; swapoff -a",
                devices.join(", ")
            ),
        )
    }
}

fn check_boost() -> Finding {
    const TOPIC: &str = "cpu frequency";
    let cpu = Path::new("/sys/devices/system/cpu");
    let mut noisy = Vec::new();
    if read_trimmed(cpu.join("intel_pstate/no_turbo")).as_deref() == Some("0") {
        noisy.push("turbo boost on (intel_pstate/no_turbo=0)".to_owned());
    }
    if read_trimmed(cpu.join("cpufreq/boost")).as_deref() == Some("1") {
        noisy.push("boost on (cpufreq/boost=1)".to_owned());
    }
    let mut governors: Vec<String> = fs::read_dir(cpu.join("cpufreq"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| read_trimmed(e.path().join("scaling_governor")))
                .collect()
        })
        .unwrap_or_default();
    governors.sort();
    governors.dedup();
    let scaling = !governors.is_empty();
    if governors.iter().any(|g| g != "performance") {
        noisy.push(format!(
            "governor {} (performance keeps the clock steady)",
            governors.join(", ")
        ));
    }
    if !noisy.is_empty() {
        finding(Level::Warn, TOPIC, noisy.join("; "))
    } else if scaling {
        finding(Level::Ok, TOPIC, "governor performance, no boost")
    } else {
        finding(
            Level::Ok,
            TOPIC,
            "no scaling or boost control visible (a VM's host may still scale it)",
        )
    }
}

fn check_smt() -> Finding {
    const TOPIC: &str = "SMT";
    let dir = Path::new("/sys/devices/system/cpu/smt");
    match (
        read_trimmed(dir.join("active")).as_deref(),
        read_trimmed(dir.join("control")),
    ) {
        (Some("1"), _) => finding(
            Level::Warn,
            TOPIC,
            "on: sibling threads share a core and slow each other; echo off > \
             /sys/devices/system/cpu/smt/control, or pin boxes to separate cores",
        ),
        (Some("0"), control) => finding(
            Level::Ok,
            TOPIC,
            format!("off (control: {})", control.as_deref().unwrap_or("unknown")),
        ),
        _ => finding(Level::Ok, TOPIC, "not reported by this kernel"),
    }
}

fn check_aslr() -> Finding {
    const TOPIC: &str = "address-space randomization";
    match read_trimmed("/proc/sys/kernel/randomize_va_space").as_deref() {
        Some("0") => finding(Level::Ok, TOPIC, "off"),
        Some(value) => finding(
            Level::Warn,
            TOPIC,
            format!(
                "on (kernel.randomize_va_space={value}): time and memory vary a little \
                 between runs; set it to 0"
            ),
        ),
        None => finding(
            Level::Warn,
            TOPIC,
            "cannot read /proc/sys/kernel/randomize_va_space",
        ),
    }
}

fn check_thp() -> Finding {
    const TOPIC: &str = "transparent huge pages";
    let dir = Path::new("/sys/kernel/mm/transparent_hugepage");
    let Some(enabled) = read_trimmed(dir.join("enabled")) else {
        return finding(Level::Ok, TOPIC, "not in this kernel");
    };
    let defrag = read_trimmed(dir.join("defrag"));
    thp_finding(&enabled, defrag.as_deref())
}

/// The bracketed choice of a sysfs selector such as `always [madvise] never`.
fn selected(choices: &str) -> &str {
    choices
        .split_whitespace()
        .find_map(|c| c.strip_prefix('[').and_then(|c| c.strip_suffix(']')))
        .unwrap_or(choices)
}

fn thp_finding(enabled: &str, defrag: Option<&str>) -> Finding {
    const TOPIC: &str = "transparent huge pages";
    let enabled = selected(enabled);
    let defrag = defrag.map(selected).unwrap_or("unknown");
    if enabled == "never" {
        return finding(Level::Ok, TOPIC, "never");
    }
    finding(
        Level::Warn,
        TOPIC,
        format!(
            "enabled={enabled} defrag={defrag}: faults and compaction add noise; set \
             both to never in /sys/kernel/mm/transparent_hugepage"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_are_judged() {
        assert_eq!(parse_release("6.1.0-48-amd64"), Some((6, 1)));
        assert_eq!(parse_release("5.10"), Some((5, 10)));
        assert_eq!(parse_release("weird"), None);
        assert_eq!(kernel_finding("6.1.0-48-amd64").level, Level::Ok);
        assert_eq!(kernel_finding("5.15.0").level, Level::Warn);
        assert_eq!(kernel_finding("5.4.0").level, Level::Warn);
        assert_eq!(kernel_finding("4.19.0").level, Level::Fail);
        assert_eq!(kernel_finding("x").level, Level::Warn);
    }

    #[test]
    fn swap_lines_are_counted() {
        let header = "Filename\tType\tSize\tUsed\tPriority\n";
        assert_eq!(swap_finding(header).level, Level::Ok);
        assert_eq!(swap_finding("").level, Level::Ok);
        let on = swap_finding(&format!("{header}/dev/vda2 partition 1048572 0 -2\n"));
        assert_eq!(on.level, Level::Warn);
        assert!(on.detail.contains("/dev/vda2"), "{}", on.detail);
    }

    #[test]
    fn huge_page_selectors_are_read() {
        assert_eq!(selected("always [madvise] never"), "madvise");
        assert_eq!(selected("garbage"), "garbage");
        assert_eq!(thp_finding("always madvise [never]", None).level, Level::Ok);
        let warn = thp_finding("[always] madvise never", Some("[defer] never"));
        assert_eq!(warn.level, Level::Warn);
        assert!(warn.detail.contains("defrag=defer"), "{}", warn.detail);
    }

    #[test]
    fn lines_start_with_an_aligned_level() {
        let line = finding(Level::Ok, "kernel", "fine").to_string();
        assert_eq!(line, "OK    kernel: fine");
        let line = finding(Level::Fail, "user", "not root").to_string();
        assert_eq!(line, "FAIL  user: not root");
    }

    #[test]
    fn the_real_machine_never_panics() {
        // Whatever this machine is, every check must come back with lines.
        let findings = check_all();
        assert!(findings.len() >= 12, "{findings:?}");
    }
}
