//! What a box left on the host, found without trusting the box: the file
//! systems mounted in its tree (from `/proc/self/mountinfo`), the proxy of
//! a run whose keeper died (from the record the keeper wrote) and the
//! processes in its cgroup (asked of [`crate::cgroup`]).

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::{CgroupController, CgroupError};

use super::{io_error, BoxError, LockedBox, Sandbox};

/// `<pid> <start time>` of the proxy of the run in progress, written by the
/// keeper ([`IsolateConfig::proxy_record`](crate::IsolateConfig::proxy_record)):
/// cleanup's handle on a box's processes when the box has no cgroup.
const PROXY_FILE: &str = ".isobox-proxy";

/// How long cleanup waits for leftover processes to disappear.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

impl Sandbox {
    /// The box's proxy record ([`PROXY_FILE`]), which the keeper of each
    /// run writes.
    pub(super) fn proxy_record(&self) -> PathBuf {
        self.dir.join(PROXY_FILE)
    }
}

impl LockedBox {
    /// Kills what is left of a run whose keeper died, through the proxy it
    /// recorded: the proxy is pid 1 of the box's PID namespace, so killing
    /// it kills every process of the box, and nothing of any other box or
    /// installation. A record whose process is gone, or whose pid now
    /// belongs to a process started at another time, is stale.
    ///
    /// (Every process of a box dies with its keeper anyway: the proxy has
    /// `PR_SET_PDEATHSIG`, and exits when the keeper's go-ahead pipe
    /// closes unread. This is the handle for when that fails.)
    pub fn stop_proxy(&self) -> Result<(), BoxError> {
        let path = self.proxy_record();
        let text = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .and_then(io::read_to_string)
        {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(BoxError::Io {
                    context: format!("cannot read {}", path.display()),
                    source,
                })
            }
        };
        let mut fields = text.split_ascii_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(pid)), Some(Ok(started))) = (fields.next(), fields.next()) {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                self.kill_recorded(pid, started)?;
            }
        }
        fs::remove_file(&path).or_else(|err| match err.kind() {
            io::ErrorKind::NotFound => Ok(()),
            _ => Err(BoxError::Io {
                context: format!("cannot remove {}", path.display()),
                source: err,
            }),
        })
    }

    /// Kills process `pid` if it is still the one that started at
    /// `started`, and waits until it is gone.
    fn kill_recorded(&self, pid: libc::pid_t, started: u64) -> Result<(), BoxError> {
        use crate::sys;
        use std::os::fd::{AsFd, AsRawFd};
        let Ok(pidfd) = sys::pidfd_open(pid) else {
            return Ok(());
        };
        // Checked after the pidfd is open: if the start time still matches,
        // the pidfd names the recorded process, whatever happens to the pid.
        if sys::start_time(pid).ok() != Some(started) {
            return Ok(());
        }
        tracing::warn!(
            "killing what is left of box {} (its proxy, pid {pid})",
            self.id
        );
        if let Err(err) = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL) {
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(BoxError::ProxyKill {
                    id: self.id,
                    pid,
                    error: err,
                });
            }
        }
        // The pidfd turns readable once the proxy has exited, which for
        // pid 1 of a namespace is after every other process of it.
        let mut entries = [sys::poll_entry(pidfd.as_raw_fd(), sys::POLLIN)];
        match sys::poll(&mut entries, Some(LEFTOVER_GRACE)) {
            Ok(0) => Err(BoxError::ProxySurvives { id: self.id, pid }),
            Ok(_) => Ok(()),
            Err(error) => Err(BoxError::ProxyWait { id: self.id, error }),
        }
    }

    /// Removes the box's cgroup, killing whatever is left in it. For a cold
    /// run, with the box's lock held and no agent alive: then anything
    /// there is what a run whose keeper died left, which may still be
    /// ending (its proxy's parent-death signal not yet taken), or was never
    /// recorded (the keeper died before [`stop_proxy`](Self::stop_proxy)
    /// could find it); and the cgroup itself may carry that run's limits
    /// (a cold run is held by the box's cgroup itself). The run makes a
    /// new one.
    pub fn kill_leftovers(&self) -> Result<(), BoxError> {
        self.remove_cgroup()
    }

    /// Removes the box's cgroup when it exists, killing whatever is in it:
    /// the box's cgroup is in this installation's own subtree, so nothing
    /// of another installation is ever touched.
    pub(super) fn remove_cgroup(&self) -> Result<(), BoxError> {
        let placement = match self.cgroup_placement() {
            Ok(placement) => placement,
            // A box without cgroups has none to remove; one made with
            // cgroups must find its own.
            Err(error) if !self.state().is_ok_and(|state| state.cgroups) => {
                tracing::debug!(%error, "no cgroup place; box {} has no cgroup", self.id);
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let Some(mut cgroup) = CgroupController::existing(&placement, &self.cgroup_name())? else {
            return Ok(());
        };
        let left = cgroup.pids()?;
        if !left.is_empty() {
            tracing::warn!("killing leftover processes of box {}: {left:?}", self.id);
        }
        cgroup.remove().map_err(|error| match error {
            CgroupError::Busy(dir) => BoxError::CgroupSurvives { id: self.id, dir },
            other => other.into(),
        })
    }

    /// Unmounts the box's own file system (with anything mounted inside
    /// it) when `<box_root>/<N>` itself is no mount point; `false` when that
    /// cannot be known or is not so, and [`unmount_all`](Self::unmount_all)
    /// must do it.
    pub(super) fn unmount_own(&self) -> Result<bool, BoxError> {
        let mount_root = |path: &Path| match crate::sys::is_mount_root(path) {
            Ok(answer) => Ok(answer),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Some(false)),
            Err(source) => Err(BoxError::Io {
                context: format!("cannot stat {}", path.display()),
                source,
            }),
        };
        if mount_root(&self.dir)? != Some(false) {
            return Ok(false);
        }
        // A path mounted over more than once needs as many unmounts; a
        // detached mount takes the ones below it along.
        for _ in 0..MAX_STACKED_MOUNTS {
            match mount_root(&self.box_dir)? {
                Some(false) => return Ok(true),
                None => return Ok(false),
                Some(true) => {
                    crate::sys::unmount(&self.box_dir).map_err(|error| BoxError::Unmount {
                        path: self.box_dir.clone(),
                        error,
                    })?
                }
            }
        }
        Ok(false)
    }

    /// Unmounts every file system mounted on or below `<box_root>/<N>`,
    /// deepest first.
    pub(super) fn unmount_all(&self) -> Result<(), BoxError> {
        let mut points: Vec<PathBuf> = mount_points()?
            .into_iter()
            .filter(|point| point.starts_with(&self.dir))
            .collect();
        points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
        points.dedup();
        for point in points {
            // A path mounted twice needs two unmounts; mount_points lists
            // it twice, and the second attempt finds it still mounted.
            crate::sys::unmount(&point).map_err(|error| BoxError::Unmount {
                path: point.clone(),
                error,
            })?;
        }
        Ok(())
    }
}

/// How many mounts stacked on the box's directory [`LockedBox::unmount_own`]
/// takes off before it leaves the rest to the mount table.
const MAX_STACKED_MOUNTS: usize = 8;

/// Every mount point of this process's mount namespace.
fn mount_points() -> Result<Vec<PathBuf>, BoxError> {
    use std::io::Read;
    // The file reports no size: read into a large buffer from the start,
    // as std would otherwise begin with 32 bytes and grow, and the kernel
    // formats the table again, in part, for every short read.
    let mut text = String::with_capacity(64 * 1024);
    fs::File::open("/proc/self/mountinfo")
        .and_then(|mut file| file.read_to_string(&mut text))
        .map_err(io_error("cannot read /proc/self/mountinfo"))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_field(field)))
        .collect())
}

/// Undoes the octal escapes (`\040` for a space...) of a mountinfo field.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match escape {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mount_field("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_field("/tab\\011x\\134y"), "/tab\tx\\y");
        assert_eq!(unescape_mount_field("/plain\\"), "/plain\\");
    }
}
