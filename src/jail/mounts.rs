//! The box's filesystem: a fresh tmpfs root filled according to the
//! directory rules, entered with `pivot_root`, the host's root detached.
//!
//! The keeper turns the rules into a [`MountPlan`] (checking sources, making
//! every path a C string) before the fork; the proxy only walks the plan.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::dirs::{DirAction, DirRule};

use super::JailError;

/// Host directory the box root is mounted on. Every box mounts its own
/// tmpfs there inside its own mount namespace, so one directory serves all.
pub const NEW_ROOT: &str = "/run/isobox/root";

/// Makes sure [`NEW_ROOT`] exists.
pub fn ensure_new_root() -> Result<(), JailError> {
    std::fs::create_dir_all(NEW_ROOT).map_err(|source| JailError::Syscall {
        call: "mkdir /run/isobox/root",
        source,
    })
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

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// One child-side step.
#[derive(Debug)]
enum Step {
    /// A directory; an existing one is fine.
    Mkdir(CString),
    /// An empty file to bind a file onto.
    CreateFile(CString),
    /// Bind `source` at `target` with `attributes` (MOUNT_ATTR_*).
    Bind {
        source: CString,
        target: CString,
        recursive: bool,
        attributes: u64,
    },
    /// Mount a fresh filesystem.
    Mount {
        fstype: CString,
        target: CString,
        flags: libc::c_ulong,
        data: CString,
    },
    /// A character device usable by everyone (`host` is bound there when
    /// mknod is refused, as in a user namespace).
    Device {
        path: CString,
        device: libc::dev_t,
        host: CString,
    },
    /// A symbolic link at `link` pointing to `target`.
    Symlink { target: CString, link: CString },
    /// Make a filesystem read-only once everything below it is in place.
    RemountReadOnly {
        target: CString,
        flags: libc::c_ulong,
    },
}

/// Sizes of the box's private filesystems.
#[derive(Debug, Clone, Copy)]
pub struct TmpfsSizes {
    /// Bytes of each `tmp` rule (the box's `/tmp`).
    pub tmp: u64,
    /// Bytes of `/dev/shm`.
    pub shm: u64,
}

/// Everything the proxy mounts, in order.
#[derive(Debug)]
pub struct MountPlan {
    root: CString,
    steps: Vec<Step>,
    /// What each step does, for the keeper's error messages.
    descriptions: Vec<String>,
}

fn c_path(path: &Path) -> Result<CString, JailError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| JailError::NulByte(format!("path {}", path.display())))
}

fn c_text(text: &str) -> Result<CString, JailError> {
    CString::new(text).map_err(|_| JailError::NulByte(text.to_string()))
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

fn tmpfs_data(bytes: u64, mode: &str) -> String {
    format!("size={bytes},nr_inodes={TMPFS_INODES},mode={mode}")
}

struct Builder {
    root: PathBuf,
    steps: Vec<Step>,
    descriptions: Vec<String>,
    /// Read-only remounts, run after every other step.
    finally: Vec<(Step, String)>,
}

impl Builder {
    fn push(&mut self, step: Step, description: String) {
        self.steps.push(step);
        self.descriptions.push(description);
    }

    fn target(&self, inside: &Path) -> PathBuf {
        self.root.join(inside.strip_prefix("/").unwrap_or(inside))
    }

    /// Mount point `inside`, with its parents, as a directory or a file.
    fn mount_point(&mut self, inside: &Path, is_file: bool) -> Result<PathBuf, JailError> {
        let mut partial = PathBuf::from("/");
        let parts: Vec<_> = inside.components().skip(1).collect();
        for (index, part) in parts.iter().enumerate() {
            partial.push(part);
            let target = self.target(&partial);
            let last = index + 1 == parts.len();
            let description = format!("creating {}", partial.display());
            if last && is_file {
                self.push(Step::CreateFile(c_path(&target)?), description);
            } else {
                self.push(Step::Mkdir(c_path(&target)?), description);
            }
        }
        Ok(self.target(inside))
    }

    fn bind(&mut self, source: &Path, rule: &DirRule, attributes: u64) -> Result<(), JailError> {
        let target = self.mount_point(&rule.inside, !source.is_dir())?;
        self.push(
            Step::Bind {
                source: c_path(source)?,
                target: c_path(&target)?,
                recursive: !rule.options.norec,
                attributes,
            },
            format!("binding {} at {}", source.display(), rule.inside.display()),
        );
        Ok(())
    }

    fn mount(
        &mut self,
        inside: &Path,
        fstype: &str,
        flags: libc::c_ulong,
        data: &str,
    ) -> Result<PathBuf, JailError> {
        let target = self.mount_point(inside, false)?;
        self.push(
            Step::Mount {
                fstype: c_text(fstype)?,
                target: c_path(&target)?,
                flags,
                data: c_text(data)?,
            },
            format!("mounting {fstype} at {}", inside.display()),
        );
        Ok(target)
    }

    fn devices(&mut self, rule: &DirRule, sizes: TmpfsSizes) -> Result<(), JailError> {
        let dev = self.mount(
            &rule.inside,
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "size=64k,nr_inodes=64,mode=755",
        )?;
        for (name, major, minor) in DEVICES {
            // One mknod is far cheaper than a bind mount and its attributes;
            // the host's node is bound only where mknod is not allowed.
            self.push(
                Step::Device {
                    path: c_path(&dev.join(name))?,
                    device: libc::makedev(major, minor),
                    host: c_path(&Path::new("/dev").join(name))?,
                },
                format!("creating /dev/{name}"),
            );
        }
        for (name, points_to) in DEVICE_LINKS {
            self.push(
                Step::Symlink {
                    target: c_text(points_to)?,
                    link: c_path(&dev.join(name))?,
                },
                format!("linking /dev/{name}"),
            );
        }
        self.mount(
            &rule.inside.join("shm"),
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            &tmpfs_data(sizes.shm, "1777"),
        )?;
        self.finally.push((
            Step::RemountReadOnly {
                target: c_path(&dev)?,
                flags: libc::MS_NOSUID | libc::MS_NOEXEC,
            },
            format!("making {} read-only", rule.inside.display()),
        ));
        Ok(())
    }
}

impl MountPlan {
    /// Plans the box's filesystem from `rules` (already merged with the
    /// defaults). `workdir` is the host directory behind [`DirAction::WorkDir`].
    /// A bind whose source is missing is an error unless the rule says
    /// `maybe`, in which case it is skipped.
    pub fn new(rules: &[DirRule], workdir: &Path, sizes: TmpfsSizes) -> Result<Self, JailError> {
        let mut rules: Vec<&DirRule> = rules.iter().collect();
        // Parents before children, otherwise keeping the rules' order.
        rules.sort_by_key(|rule| rule.inside.components().count());
        let mut builder = Builder {
            root: PathBuf::from(NEW_ROOT),
            steps: Vec::new(),
            descriptions: Vec::new(),
            finally: Vec::new(),
        };
        for rule in rules {
            match &rule.action {
                DirAction::Remove => {}
                DirAction::WorkDir => {
                    let attributes = bind_attributes(rule);
                    let norec = DirRule {
                        options: crate::dirs::DirOptions {
                            norec: true,
                            ..rule.options
                        },
                        ..rule.clone()
                    };
                    builder.bind(workdir, &norec, attributes)?;
                }
                DirAction::Bind(source) => {
                    if !source.exists() {
                        if rule.options.maybe {
                            continue;
                        }
                        return Err(JailError::MissingSource {
                            rule: rule.inside.display().to_string(),
                            source_path: source.display().to_string(),
                        });
                    }
                    builder.bind(source, rule, bind_attributes(rule))?;
                }
                DirAction::Filesystem(fstype) => {
                    let mut flags = libc::MS_NOSUID;
                    if !rule.options.rw {
                        flags |= libc::MS_RDONLY;
                    }
                    if !rule.options.dev {
                        flags |= libc::MS_NODEV;
                    }
                    if rule.options.noexec || fstype == "proc" {
                        flags |= libc::MS_NOEXEC;
                    }
                    // Other users' processes (the proxy runs as root) stay
                    // invisible to the program.
                    let data = if fstype == "proc" { "hidepid=2" } else { "" };
                    builder.mount(&rule.inside, fstype, flags, data)?;
                }
                DirAction::Tmp => {
                    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
                    if rule.options.noexec {
                        flags |= libc::MS_NOEXEC;
                    }
                    builder.mount(&rule.inside, "tmpfs", flags, &tmpfs_data(sizes.tmp, "1777"))?;
                }
                DirAction::Devices => builder.devices(rule, sizes)?,
            }
        }
        let root = c_path(&builder.root)?;
        builder.finally.push((
            Step::RemountReadOnly {
                target: root.clone(),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
            },
            "making / read-only".into(),
        ));
        for (step, description) in std::mem::take(&mut builder.finally) {
            builder.push(step, description);
        }
        Ok(Self {
            root,
            steps: builder.steps,
            descriptions: builder.descriptions,
        })
    }

    /// What step `index` did, for error messages; `steps().len()` and beyond
    /// name the final pivot.
    pub fn describe(&self, index: u32) -> &str {
        self.descriptions
            .get(index as usize)
            .map_or("entering the new root", String::as_str)
    }

    /// Child side: builds the root and pivots into it. On failure returns
    /// the index of the failing step (see [`describe`](Self::describe)) and
    /// errno.
    ///
    /// # Safety
    /// Only async-signal-safe calls; call in a fresh, private mount namespace.
    pub(crate) unsafe fn enter(&self) -> Result<(), (u32, i32)> {
        let errno = || {
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        };
        let pivot_step = self.steps.len() as u32;
        // SAFETY (whole block): system calls on C strings prepared before
        // the fork; nothing allocates.
        unsafe {
            if libc::mount(
                c"isobox".as_ptr(),
                self.root.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"size=1m,nr_inodes=4096,mode=755".as_ptr().cast(),
            ) != 0
            {
                return Err((pivot_step, errno()));
            }
            for (index, step) in self.steps.iter().enumerate() {
                if !run_step(step) {
                    return Err((index as u32, errno()));
                }
            }
            // pivot_root(".", ".") stacks the old root under the new one at
            // the same place; detaching it leaves only the new root.
            if libc::chdir(self.root.as_ptr()) != 0
                || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
                || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
                || libc::chdir(c"/".as_ptr()) != 0
            {
                return Err((pivot_step, errno()));
            }
        }
        Ok(())
    }
}

/// Runs one step; false with errno set on failure.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn run_step(step: &Step) -> bool {
    // SAFETY (whole block): every pointer comes from a live CString or a
    // local value; the calls are plain system calls.
    unsafe {
        match step {
            Step::Mkdir(path) => {
                libc::mkdir(path.as_ptr(), 0o755) == 0 || *libc::__errno_location() == libc::EEXIST
            }
            Step::CreateFile(path) => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                fd >= 0 && libc::close(fd) == 0
            }
            Step::Bind {
                source,
                target,
                recursive,
                attributes,
            } => {
                let mut flags = libc::MS_BIND;
                if *recursive {
                    flags |= libc::MS_REC;
                }
                if libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ) != 0
                {
                    return false;
                }
                set_attributes(target, *recursive, *attributes)
            }
            Step::Mount {
                fstype,
                target,
                flags,
                data,
            } => {
                libc::mount(
                    fstype.as_ptr(),
                    target.as_ptr(),
                    fstype.as_ptr(),
                    *flags,
                    data.as_ptr().cast(),
                ) == 0
            }
            Step::Symlink { target, link } => libc::symlink(target.as_ptr(), link.as_ptr()) == 0,
            Step::Device { path, device, host } => {
                // The proxy's umask would narrow the mode: chmod sets it exactly.
                if libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, *device) == 0 {
                    return libc::chmod(path.as_ptr(), 0o666) == 0;
                }
                if *libc::__errno_location() != libc::EPERM {
                    return false;
                }
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o666,
                );
                fd >= 0
                    && libc::close(fd) == 0
                    && libc::mount(
                        host.as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) == 0
                    && set_attributes(path, false, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)
            }
            Step::RemountReadOnly { target, flags } => {
                libc::mount(
                    std::ptr::null(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT | libc::MS_RDONLY | *flags,
                    std::ptr::null(),
                ) == 0
            }
        }
    }
}

/// Applies mount attributes to a bind, to every mount below it when
/// `recursive` (mount_setattr, Linux 5.12); older kernels get a remount of
/// the top mount only.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn set_attributes(target: &CString, recursive: bool, attributes: u64) -> bool {
    let attr = MountAttr {
        attr_set: attributes,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid mount_attr of the size passed; `target` is a
    // live C string.
    unsafe {
        let ret = libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            target.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        );
        if ret == 0 {
            return true;
        }
        if *libc::__errno_location() != libc::ENOSYS {
            return false;
        }
        let mut remount = libc::MS_REMOUNT | libc::MS_BIND;
        for (attribute, flag) in [
            (MOUNT_ATTR_RDONLY, libc::MS_RDONLY),
            (MOUNT_ATTR_NOSUID, libc::MS_NOSUID),
            (MOUNT_ATTR_NODEV, libc::MS_NODEV),
            (MOUNT_ATTR_NOEXEC, libc::MS_NOEXEC),
        ] {
            if attributes & attribute != 0 {
                remount |= flag;
            }
        }
        libc::mount(
            std::ptr::null(),
            target.as_ptr(),
            std::ptr::null(),
            remount,
            std::ptr::null(),
        ) == 0
    }
}

/// Child side: stops mount events from propagating between the box and the
/// host, in both directions, before the box mounts anything of its own.
///
/// # Safety
/// Only async-signal-safe calls; call in a fresh mount namespace.
pub(crate) unsafe fn make_mounts_private() -> Result<(), i32> {
    // SAFETY: the path is a static NUL-terminated string and the other
    // pointers may be null for a propagation change.
    let ret = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        // SAFETY: errno location is thread-local and always valid.
        Err(unsafe { *libc::__errno_location() })
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

    #[test]
    fn default_plan_binds_the_system_and_ends_read_only() {
        let rules = effective_rules(true, &[], Path::new("/var/box"));
        let plan = MountPlan::new(&rules, Path::new("/tmp"), sizes()).unwrap();
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
        let err = MountPlan::new(&[missing], Path::new("/tmp"), sizes()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/data"), "{err}");
        let maybe: DirRule = "/data=/nonexistent/data:maybe".parse().unwrap();
        let plan = MountPlan::new(&[maybe], Path::new("/tmp"), sizes()).unwrap();
        assert!(!plan.descriptions.join("\n").contains("/data"));
    }

    #[test]
    fn parents_are_mounted_before_children() {
        let rules: Vec<DirRule> = ["/etc/alternatives=/tmp", "/etc"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        let plan = MountPlan::new(&rules, Path::new("/tmp"), sizes()).unwrap();
        let text = plan.descriptions.join("\n");
        let parent = text.find("at /etc\n").unwrap();
        let child = text.find("at /etc/alternatives").unwrap();
        assert!(parent < child, "{text}");
    }
}
