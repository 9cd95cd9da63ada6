//! The box's filesystem: a fresh tmpfs root filled according to the
//! directory rules, entered with `pivot_root`, the host's root detached.
//!
//! The keeper turns the rules into a [`MountPlan`] (checking sources, making
//! every path a C string) before the fork; the proxy only walks the plan.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::dirs::{DirAction, DirRule};

use super::{c_string, JailError};
use crate::sys;

mod enter;

pub(crate) use enter::{make_mounts_private, RenewMark, MAX_RENEWED};

/// The filesystem types a directory rule may mount fresh (`IN=TYPE:fs`),
/// as isolate 2.5 limits them: others (`debugfs`, `tracefs`, `bpf`,
/// `securityfs`, `configfs`, cgroup hierarchies, ...) would hand the
/// program a kernel interface of the host, and a setuid caller may write
/// rules.
pub(crate) const BOX_FILESYSTEMS: [&str; 4] = ["proc", "sysfs", "tmpfs", "devpts"];

/// Host directory the box root is mounted on. Every box mounts its own
/// tmpfs there inside its own mount namespace, so one directory serves all.
pub(crate) const NEW_ROOT: &str = "/run/isobox/root";

/// The host directory a box's root is mounted on, made if missing: root's
/// [`NEW_ROOT`], or for a caller without root (a box in a user namespace)
/// a directory of the caller's own, in `$XDG_RUNTIME_DIR` when the caller
/// has one, else in `/tmp`. The box never sees it; it only needs to exist
/// and to be outside every bind source, which a fixed name no rule uses
/// is.
pub(crate) fn new_root(rootless: bool) -> Result<PathBuf, JailError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let failed = |call| move |source| JailError::Syscall { call, source };
    if !rootless {
        std::fs::create_dir_all(NEW_ROOT).map_err(failed("mkdir /run/isobox/root"))?;
        return Ok(PathBuf::from(NEW_ROOT));
    }
    let uid = crate::sys::effective_uid();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| {
            std::fs::symlink_metadata(dir)
                .is_ok_and(|meta| meta.is_dir() && meta.uid() == uid && meta.mode() & 0o022 == 0)
        });
    let dir = match runtime {
        Some(runtime) => runtime.join("isobox-root"),
        None => PathBuf::from(format!("/tmp/isobox-root-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(failed("mkdir of the rootless box root")(err)),
    }
    // In /tmp anyone may have made it first, as a link or a directory of
    // theirs: only the caller's own directory will do.
    let meta = std::fs::symlink_metadata(&dir).map_err(failed("lstat of the box root"))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(failed("checking the box root")(std::io::Error::other(
            format!(
                "{} is not a directory only the caller can write",
                dir.display()
            ),
        )));
    }
    Ok(dir)
}

/// Device nodes of the fresh `/dev`: name, major, minor (the memory
/// devices, `mem(4)`).
const DEVICES: [(&str, u32, u32); 5] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
];
/// Links of the fresh `/dev`.
const DEVICE_LINKS: [(&str, &str); 4] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];
/// Inodes of a private tmpfs: enough for any build, few enough that an
/// inode bomb ends quickly with ENOSPC.
const TMPFS_INODES: u64 = 65_536;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSPICK_CLOEXEC: libc::c_uint = 1;
const FSPICK_EMPTY_PATH: libc::c_uint = 8;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSCONFIG_CMD_RECONFIGURE: libc::c_uint = 7;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A host file or directory to bind, as the proxy finds it again: the
/// components of its path with every link already resolved by the keeper
/// (the proxy follows none), and the device and inode the keeper found
/// there, so that a file swapped in between is refused.
#[derive(Debug)]
struct Source {
    parts: Vec<CString>,
    identity: Option<(u64, u64)>,
}

/// What a mount point must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PointKind {
    Directory,
    File,
}

/// A mount point inside the new root: components below it, created as
/// needed, none of them a symbolic link.
#[derive(Debug)]
struct Target {
    parts: Vec<CString>,
    kind: PointKind,
}

/// One child-side step.
#[derive(Debug)]
enum Step {
    /// Bind `source` at `target` with `attributes` (MOUNT_ATTR_*).
    Bind {
        source: Source,
        target: Target,
        recursive: bool,
        attributes: u64,
    },
    /// Mount a fresh filesystem configured with `options`.
    Mount {
        fstype: CString,
        options: Vec<(CString, CString)>,
        attributes: u64,
        target: Target,
    },
    /// A character device usable by everyone in directory `dir` (the
    /// host's node `host` is bound there when mknod is refused, as in a user
    /// namespace).
    Device {
        dir: Vec<CString>,
        name: CString,
        device: libc::dev_t,
        host: Source,
        /// Where `host` is bound instead: `dir`/`name`, a file.
        point: Target,
    },
    /// A symbolic link `name` in directory `dir`, pointing to `points_to`.
    Symlink {
        dir: Vec<CString>,
        name: CString,
        points_to: CString,
    },
    /// Make the filesystem at `target` read-only once everything below it
    /// is in place.
    ReadOnly { target: Vec<CString> },
    /// Only the directory `target`, where a bind with `attributes` comes
    /// later (a spare box's working directory; see
    /// [`MountPlan::replace_workdir`]).
    MountPoint { target: Target, attributes: u64 },
}

/// Sizes of the box's private filesystems.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TmpfsSizes {
    /// Bytes of each `tmp` rule (the box's `/tmp`).
    pub tmp: u64,
    /// Bytes of `/dev/shm`.
    pub shm: u64,
}

/// Everything the proxy mounts, in order.
#[derive(Debug)]
pub(crate) struct MountPlan {
    root: CString,
    steps: Vec<Step>,
    /// What each step does, for the keeper's error messages.
    descriptions: Vec<String>,
    /// Steps mounting a fresh writable filesystem (`/tmp`, `/dev/shm`,
    /// other `tmp` rules, writable `fs` rules), mounted anew between two
    /// runs of a warm box so that nothing one run wrote is seen by the next.
    renew: Vec<usize>,
    /// No renewed mount point lies below a directory the program can write:
    /// its path can then be unmounted by name without following anything
    /// the program made.
    renew_safe: bool,
    /// The step binding the working directory (or making only its mount
    /// point), when nothing else lies below it: a spare box can then be
    /// given a box's directory there (see
    /// [`replace_workdir`](Self::replace_workdir)).
    workdir: Option<usize>,
}

fn c_path(path: &Path) -> Result<CString, JailError> {
    c_string(
        &format!("path {}", path.display()),
        path.as_os_str().as_bytes(),
    )
}

fn c_text(text: &str) -> Result<CString, JailError> {
    c_string(text, text)
}

/// The components of an absolute path without `.` or `..` (directory rules
/// and resolved host paths have none).
fn c_parts(path: &Path) -> Result<Vec<CString>, JailError> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(c_path(Path::new(name))),
            _ => None,
        })
        .collect()
}

fn bind_attributes(rule: &DirRule) -> u64 {
    let mut attributes = MOUNT_ATTR_NOSUID;
    if !rule.options.rw {
        attributes |= MOUNT_ATTR_RDONLY;
    }
    if !rule.options.dev {
        attributes |= MOUNT_ATTR_NODEV;
    }
    if rule.options.noexec {
        attributes |= MOUNT_ATTR_NOEXEC;
    }
    attributes
}

fn tmpfs_options(bytes: u64, mode: &str) -> Vec<(String, String)> {
    vec![
        ("size".into(), bytes.to_string()),
        ("nr_inodes".into(), TMPFS_INODES.to_string()),
        ("mode".into(), mode.into()),
    ]
}

/// A bind source found on the host (see [`sys::resolve_host_path`]).
fn host_source(path: &Path) -> Result<(Source, bool), std::io::Error> {
    let found = sys::resolve_host_path(
        path,
        sys::Resolve {
            follow_last: true,
            ..sys::Resolve::default()
        },
    )?;
    let source = Source {
        parts: c_parts(&found.path).map_err(|err| std::io::Error::other(err.to_string()))?,
        identity: Some((found.dev, found.ino)),
    };
    Ok((source, found.is_dir))
}

struct Builder {
    steps: Vec<Step>,
    descriptions: Vec<String>,
    /// Read-only remounts, run after every other step.
    finally: Vec<(Step, String)>,
    /// Indices of the steps to renew between runs (see [`MountPlan`]).
    renew: Vec<usize>,
    /// Inside paths of every mount the program can write.
    writable: Vec<std::path::PathBuf>,
}

impl Builder {
    fn push(&mut self, step: Step, description: String) {
        self.steps.push(step);
        self.descriptions.push(description);
    }

    /// Marks the step just pushed, a fresh writable filesystem at
    /// `inside`, as one to renew between runs.
    fn renew_last(&mut self, inside: &Path) {
        self.renew.push(self.steps.len() - 1);
        self.writable.push(inside.to_path_buf());
    }

    fn bind(
        &mut self,
        source: Source,
        shown: &Path,
        is_dir: bool,
        rule: &DirRule,
        recursive: bool,
    ) -> Result<(), JailError> {
        let kind = if is_dir {
            PointKind::Directory
        } else {
            PointKind::File
        };
        self.push(
            Step::Bind {
                source,
                target: Target {
                    parts: c_parts(&rule.inside)?,
                    kind,
                },
                recursive,
                attributes: bind_attributes(rule),
            },
            format!("binding {} at {}", shown.display(), rule.inside.display()),
        );
        if rule.options.rw {
            self.writable.push(rule.inside.clone());
        }
        Ok(())
    }

    fn mount(
        &mut self,
        inside: &Path,
        fstype: &str,
        attributes: u64,
        options: &[(String, String)],
    ) -> Result<(), JailError> {
        let options = options
            .iter()
            .map(|(key, value)| Ok((c_text(key)?, c_text(value)?)))
            .collect::<Result<Vec<_>, JailError>>()?;
        self.push(
            Step::Mount {
                fstype: c_text(fstype)?,
                options,
                attributes,
                target: Target {
                    parts: c_parts(inside)?,
                    kind: PointKind::Directory,
                },
            },
            format!("mounting {fstype} at {}", inside.display()),
        );
        Ok(())
    }

    fn devices(&mut self, rule: &DirRule, sizes: TmpfsSizes) -> Result<(), JailError> {
        let dev = &rule.inside;
        self.mount(
            dev,
            "tmpfs",
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            &[
                ("size".into(), "64k".into()),
                ("nr_inodes".into(), "64".into()),
                ("mode".into(), "755".into()),
            ],
        )?;
        for (name, major, minor) in DEVICES {
            // One mknod is far cheaper than a bind mount and its attributes;
            // the host's node is bound only where mknod is not allowed.
            self.push(
                Step::Device {
                    dir: c_parts(dev)?,
                    name: c_text(name)?,
                    device: libc::makedev(major, minor),
                    host: Source {
                        parts: vec![c_text("dev")?, c_text(name)?],
                        identity: None,
                    },
                    point: Target {
                        parts: c_parts(&dev.join(name))?,
                        kind: PointKind::File,
                    },
                },
                format!("creating /dev/{name}"),
            );
        }
        for (name, points_to) in DEVICE_LINKS {
            self.push(
                Step::Symlink {
                    dir: c_parts(dev)?,
                    name: c_text(name)?,
                    points_to: c_text(points_to)?,
                },
                format!("linking /dev/{name}"),
            );
        }
        self.mount(
            &dev.join("shm"),
            "tmpfs",
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            &tmpfs_options(sizes.shm, "1777"),
        )?;
        self.renew_last(&dev.join("shm"));
        self.finally.push((
            Step::ReadOnly {
                target: c_parts(dev)?,
            },
            format!("making {} read-only", dev.display()),
        ));
        Ok(())
    }
}

impl MountPlan {
    /// [`MountPlan::new_in`] on root's [`NEW_ROOT`].
    #[cfg(test)]
    pub(crate) fn new(
        rules: &[DirRule],
        workdir: &sys::HostPath,
        sizes: TmpfsSizes,
    ) -> Result<Self, JailError> {
        Self::new_in(rules, Some(workdir), sizes, Path::new(NEW_ROOT))
    }

    /// Plans the box's filesystem from `rules` (already merged with the
    /// defaults), its root mounted on the host directory `root` (see
    /// [`new_root`]). `workdir` is the host directory behind
    /// [`DirAction::WorkDir`], as the keeper opened it; `None` leaves only
    /// its mount point, for a spare box's (see
    /// [`replace_workdir`](Self::replace_workdir)).
    ///
    /// Every bind source is looked up on the host now, following only
    /// links that root's own directories hold (see
    /// [`sys::resolve_host_path`]); the proxy finds the same file again
    /// without following any link. A bind whose source is missing is an
    /// error unless the rule says `maybe`, in which case it is skipped.
    pub(crate) fn new_in(
        rules: &[DirRule],
        workdir: Option<&sys::HostPath>,
        sizes: TmpfsSizes,
        root: &Path,
    ) -> Result<Self, JailError> {
        let mut rules: Vec<&DirRule> = rules.iter().collect();
        // Parents before children, otherwise keeping the rules' order.
        rules.sort_by_key(|rule| rule.inside.components().count());
        let mut workdir_step = None;
        let mut builder = Builder {
            steps: Vec::new(),
            descriptions: Vec::new(),
            finally: Vec::new(),
            renew: Vec::new(),
            writable: Vec::new(),
        };
        for rule in rules {
            match &rule.action {
                DirAction::Remove => {}
                DirAction::WorkDir => {
                    match workdir {
                        Some(workdir) => {
                            let source = Source {
                                parts: c_parts(&workdir.path)?,
                                identity: Some((workdir.dev, workdir.ino)),
                            };
                            builder.bind(source, &workdir.path, true, rule, false)?;
                        }
                        None => builder.push(
                            Step::MountPoint {
                                target: Target {
                                    parts: c_parts(&rule.inside)?,
                                    kind: PointKind::Directory,
                                },
                                attributes: bind_attributes(rule),
                            },
                            format!("making the mount point {}", rule.inside.display()),
                        ),
                    }
                    workdir_step = Some(builder.steps.len() - 1);
                }
                DirAction::Bind(path) => {
                    let (source, is_dir) = match host_source(path) {
                        Ok(found) => found,
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                            if rule.options.maybe {
                                continue;
                            }
                            return Err(JailError::MissingSource {
                                rule: rule.inside.display().to_string(),
                                source_path: path.display().to_string(),
                            });
                        }
                        Err(err) => {
                            return Err(JailError::UnsafeSource {
                                rule: rule.inside.display().to_string(),
                                reason: err.to_string(),
                            })
                        }
                    };
                    builder.bind(source, path, is_dir, rule, !rule.options.norec)?;
                }
                DirAction::Filesystem(fstype) => {
                    if !BOX_FILESYSTEMS.contains(&fstype.as_str()) {
                        return Err(JailError::UnsafeSource {
                            rule: rule.inside.display().to_string(),
                            reason: format!(
                                "{fstype:?} is not a filesystem a box may mount (only {})",
                                BOX_FILESYSTEMS.join(", ")
                            ),
                        });
                    }
                    let mut attributes = MOUNT_ATTR_NOSUID;
                    if !rule.options.rw {
                        attributes |= MOUNT_ATTR_RDONLY;
                    }
                    if !rule.options.dev {
                        attributes |= MOUNT_ATTR_NODEV;
                    }
                    if rule.options.noexec || fstype == "proc" {
                        attributes |= MOUNT_ATTR_NOEXEC;
                    }
                    // Other users' processes (the proxy runs as root) stay
                    // invisible to the program.
                    let options = if fstype == "proc" {
                        vec![("hidepid".to_string(), "2".to_string())]
                    } else {
                        Vec::new()
                    };
                    builder.mount(&rule.inside, fstype, attributes, &options)?;
                    if rule.options.rw {
                        builder.renew_last(&rule.inside);
                    }
                }
                DirAction::Tmp => {
                    let mut attributes = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
                    if rule.options.noexec {
                        attributes |= MOUNT_ATTR_NOEXEC;
                    }
                    builder.mount(
                        &rule.inside,
                        "tmpfs",
                        attributes,
                        &tmpfs_options(sizes.tmp, "1777"),
                    )?;
                    builder.renew_last(&rule.inside);
                }
                DirAction::Devices => builder.devices(rule, sizes)?,
            }
        }
        builder.finally.push((
            Step::ReadOnly { target: Vec::new() },
            "making / read-only".into(),
        ));
        for (step, description) in std::mem::take(&mut builder.finally) {
            builder.push(step, description);
        }
        let renew_safe = builder.renew.iter().all(|&index| {
            let Step::Mount { target, .. } = &builder.steps[index] else {
                return false;
            };
            let inside: std::path::PathBuf = std::iter::once(Path::new("/"))
                .chain(
                    target
                        .parts
                        .iter()
                        .map(|part| Path::new(std::ffi::OsStr::from_bytes(part.as_bytes()))),
                )
                .collect();
            !builder
                .writable
                .iter()
                .any(|dir| *dir != inside && inside.starts_with(dir))
        });
        // What each step makes, as path components inside the box.
        let target_of = |step: &Step| match step {
            Step::Bind { target, .. }
            | Step::Mount { target, .. }
            | Step::MountPoint { target, .. }
            | Step::Device { point: target, .. } => Some(target.parts.clone()),
            Step::Symlink { dir, name, .. } => {
                Some(dir.iter().chain(std::iter::once(name)).cloned().collect())
            }
            _ => None,
        };
        let workdir = workdir_step.filter(|&index| {
            let Some(below) = target_of(&builder.steps[index]) else {
                return false;
            };
            builder.steps.iter().enumerate().all(|(other, step)| {
                other == index
                    || target_of(step).is_none_or(|parts| {
                        parts.len() <= below.len() || parts[..below.len()] != below[..]
                    })
            })
        });
        Ok(Self {
            root: c_path(root)?,
            steps: builder.steps,
            descriptions: builder.descriptions,
            renew: builder.renew,
            renew_safe,
            workdir,
        })
    }

    /// Whether a warm box may renew this plan's writable mounts between
    /// runs (see [`renew`](Self::renew)).
    pub(crate) fn renewable(&self) -> bool {
        self.renew_safe
    }

    /// What step `index` did, for error messages; `steps().len()` and beyond
    /// name the final pivot.
    pub(crate) fn describe(&self, index: u32) -> &str {
        self.descriptions
            .get(index as usize)
            .map_or("entering the new root", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirs::effective_rules;

    fn sizes() -> TmpfsSizes {
        TmpfsSizes {
            tmp: 1 << 20,
            shm: 1 << 20,
        }
    }

    fn tmp() -> sys::HostPath {
        sys::resolve_host_path(Path::new("/tmp"), sys::Resolve::default()).unwrap()
    }

    #[test]
    fn default_plan_binds_the_system_and_ends_read_only() {
        let rules = effective_rules(true, &[], None).unwrap();
        let plan = MountPlan::new(&rules, &tmp(), sizes()).unwrap();
        let text = plan.descriptions.join("\n");
        for expected in [
            "binding /tmp at /box",
            "binding /usr at /usr",
            "mounting proc at /proc",
            "mounting tmpfs at /tmp",
            "mounting tmpfs at /dev/shm",
            "creating /dev/null",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
        assert_eq!(plan.descriptions.last().unwrap(), "making / read-only");
        assert!(!text.contains("/etc"));
    }

    #[test]
    fn missing_source_is_an_error_unless_maybe() {
        let missing: DirRule = "/data=/nonexistent/data".parse().unwrap();
        let err = MountPlan::new(&[missing], &tmp(), sizes()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/data"), "{err}");
        let maybe: DirRule = "/data=/nonexistent/data:maybe".parse().unwrap();
        let plan = MountPlan::new(&[maybe], &tmp(), sizes()).unwrap();
        assert!(!plan.descriptions.join("\n").contains("/data"));
    }

    #[test]
    fn parents_are_mounted_before_children() {
        let rules: Vec<DirRule> = ["/etc/alternatives=/tmp", "/etc"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        let plan = MountPlan::new(&rules, &tmp(), sizes()).unwrap();
        let text = plan.descriptions.join("\n");
        let parent = text.find("at /etc\n").unwrap();
        let child = text.find("at /etc/alternatives").unwrap();
        assert!(parent < child, "{text}");
    }

    #[test]
    fn a_source_through_a_link_others_can_write_is_refused() {
        // The world-writable (sticky) temporary directory stands in for a
        // writable bind: a link there is not followed, a real directory is.
        let parent = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            parent.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc", parent.path().join("link")).unwrap();
        std::fs::create_dir(parent.path().join("real")).unwrap();
        let rule: DirRule = format!("/x={}/link/ssl", parent.path().display())
            .parse()
            .unwrap();
        let err = MountPlan::new(&[rule], &tmp(), sizes()).unwrap_err();
        assert!(
            matches!(err, JailError::UnsafeSource { .. })
                && err.to_string().contains("symbolic link"),
            "{err}"
        );
        let rule: DirRule = format!("/x={}/real", parent.path().display())
            .parse()
            .unwrap();
        MountPlan::new(&[rule], &tmp(), sizes()).unwrap();
    }
}
