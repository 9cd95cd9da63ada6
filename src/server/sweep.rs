//! What a killed server left: a SIGKILL gives it no chance to remove its
//! boxes. At start, the remains of servers whose process is gone are
//! removed: their box tmpfs mounts and directories under `/run/isobox`
//! (a rootless server's own runtime directory without root), their file
//! stores there, and their boxes' cgroups (`<pid>-<n>-box<k>` below
//! `isobox` in every hierarchy, or below the delegated cgroup a rootless
//! server was given).

use std::fs;
use std::path::{Path, PathBuf};

/// Where servers run by root keep their boxes and files by default.
pub const RUN_DIR: &str = "/run/isobox";

/// The pid in a name `serve-<pid>` or `serve-<pid>-files`.
fn server_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("serve-")?;
    rest.strip_suffix("-files").unwrap_or(rest).parse().ok()
}

/// The pid of a pool box's cgroup name, `<pid>-<n>-box<k>`.
fn box_cgroup_pid(name: &str) -> Option<u32> {
    let (pid, rest) = name.split_once('-')?;
    let (_, k) = rest.split_once("-box")?;
    k.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the remains of dead servers in `run_dir` and in their cgroups:
/// below `cgroup_parent` when the server was given one, else below
/// `isobox` in every hierarchy; returns what it removed.
pub fn sweep(run_dir: &Path, cgroup_parent: Option<&Path>) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let own = std::process::id();
    let dead = |pid: u32| pid != own && !alive(pid);
    if let Ok(entries) = fs::read_dir(run_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = server_pid(&name) else {
                continue;
            };
            if !dead(pid) || !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let dir = entry.path();
            for child in fs::read_dir(&dir).into_iter().flatten().flatten() {
                // Box directories are tmpfs mounts; a detached unmount of
                // something that is not a mount point just fails.
                let _ = rustix::mount::unmount(child.path(), rustix::mount::UnmountFlags::DETACH);
            }
            // What a box held may be nested deeper than any stack.
            match isobox::fstree::remove_tree(&dir) {
                Ok(()) => removed.push(dir),
                Err(err) => tracing::warn!("removing {}: {err}", dir.display()),
            }
        }
    }
    let hierarchies = match cgroup_parent {
        Some(parent) => vec![parent.to_path_buf()],
        None => cgroup_dirs(),
    };
    for hierarchy in hierarchies {
        for entry in fs::read_dir(&hierarchy).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !box_cgroup_pid(&name).is_some_and(dead) {
                continue;
            }
            if remove_cgroup(&entry.path()) {
                removed.push(entry.path());
            }
        }
    }
    removed
}

/// `isobox` below the root of every hierarchy that has one.
fn cgroup_dirs() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join("isobox")];
    for entry in fs::read_dir(root).into_iter().flatten().flatten() {
        dirs.push(entry.path().join("isobox"));
    }
    dirs.into_iter().filter(|dir| dir.is_dir()).collect()
}

/// Kills what is left in a cgroup and its children, then removes them,
/// children first.
fn remove_cgroup(dir: &Path) -> bool {
    for child in fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_cgroup(&child.path());
        }
    }
    if fs::write(dir.join("cgroup.kill"), "1").is_err() {
        let pids = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in pids
            .lines()
            .filter_map(|line| line.trim().parse::<i32>().ok())
        {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    // A killed process leaves its cgroup a moment after the signal.
    for _ in 0..50 {
        if fs::remove_dir(dir).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!("could not remove the cgroup {}", dir.display());
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_server_remains() {
        assert_eq!(server_pid("serve-123"), Some(123));
        assert_eq!(server_pid("serve-123-files"), Some(123));
        assert_eq!(server_pid("serve-x"), None);
        assert_eq!(server_pid("uids"), None);
        assert_eq!(box_cgroup_pid("123-0-box4"), Some(123));
        // Runs of `isobox run` and isolate boxes are not the pool's.
        assert_eq!(box_cgroup_pid("123-0"), None);
        assert_eq!(box_cgroup_pid("box-4"), None);
    }
}
