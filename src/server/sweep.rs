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
    removed.extend(isobox::pool::sweep_dead_cgroups(cgroup_parent));
    removed
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
    }
}
