//! The child side of the mount plan: builds the box's root from the
//! prepared steps and pivots into it, with only async-signal-safe calls.

use std::ffi::CString;
use std::os::fd::RawFd;

use super::*;
use crate::sys::errno;

impl MountPlan {
    /// Child side: builds the root and pivots into it. On failure returns
    /// the index of the failing step (see [`describe`](Self::describe)) and
    /// errno.
    ///
    /// # Safety
    /// Only async-signal-safe calls; call in a fresh, private mount namespace.
    pub(crate) unsafe fn enter(&self) -> Result<(), (u32, i32)> {
        let pivot_step = self.steps.len() as u32;
        // SAFETY: C strings prepared before the fork or static; nothing
        // is read behind them.
        let mounted = unsafe {
            libc::mount(
                c"isobox".as_ptr(),
                self.root.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"size=1m,nr_inodes=4096,mode=755".as_ptr().cast(),
            )
        };
        if mounted != 0 {
            return Err((pivot_step, errno()));
        }
        // Opened after the mount: the fresh tmpfs, not the directory
        // under it. NEW_ROOT is root's own, outside anything a box writes.
        // SAFETY: a C string prepared before the fork.
        let root = unsafe {
            libc::open(
                self.root.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        // SAFETY: a static C string.
        let host = unsafe {
            libc::open(
                c"/".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if root < 0 || host < 0 {
            return Err((pivot_step, errno()));
        }
        // Modes are given exactly; the proxy's umask must not narrow
        // the device nodes.
        // SAFETY: umask only changes this process's mask.
        let umask = unsafe { libc::umask(0) };
        let dirs = Dirs { root, host };
        for (index, step) in self.steps.iter().enumerate() {
            // SAFETY: the caller's contract (child side, private mount
            // namespace) holds for every step.
            if let Err(errno) = unsafe { run_step(step, dirs) } {
                return Err((index as u32, errno));
            }
        }
        // SAFETY: as for the first umask.
        unsafe { libc::umask(umask) };
        // SAFETY: descriptors opened above, not used again.
        unsafe { libc::close(root) };
        // SAFETY: as above.
        unsafe { libc::close(host) };
        // pivot_root(".", ".") stacks the old root under the new one at
        // the same place; detaching it leaves only the new root.
        // SAFETY: a C string prepared before the fork.
        let pivoted = unsafe { libc::chdir(self.root.as_ptr()) } == 0
            // SAFETY: static C strings.
            && unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) } == 0
            // SAFETY: a static C string.
            && unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } == 0
            // SAFETY: a static C string.
            && unsafe { libc::chdir(c"/".as_ptr()) } == 0;
        if !pivoted {
            return Err((pivot_step, errno()));
        }
        Ok(())
    }
}

/// The most renewed mounts whose state a warm box remembers; any beyond
/// are renewed after every run.
pub(crate) const MAX_RENEWED: usize = 8;

/// What a renewed mount looked like right after it was mounted: its free
/// inodes and blocks and its root directory's times. A run that created,
/// changed or even listed anything there (a write changes the counts or
/// the times, a listing the access time) leaves it different.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RenewMark {
    free_inodes: u64,
    free_blocks: u64,
    times: [i64; 6],
}

/// `/` and the parts of `target`, NUL-terminated, in `path`.
fn target_path(target: &Target, path: &mut [u8; 4096]) -> Result<(), i32> {
    let mut len = 0;
    for part in &target.parts {
        let bytes = part.as_bytes();
        if len + 1 + bytes.len() + 1 > path.len() {
            return Err(libc::ENAMETOOLONG);
        }
        path[len] = b'/';
        path[len + 1..len + 1 + bytes.len()].copy_from_slice(bytes);
        len += 1 + bytes.len();
    }
    if len == 0 {
        return Err(libc::EINVAL);
    }
    path[len] = 0;
    Ok(())
}

/// The state of the file system mounted at `path` (NUL-terminated).
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn mark_of(path: &[u8; 4096]) -> Option<RenewMark> {
    // SAFETY: statfs and stat are plain old data; all-zero is valid.
    let (mut fs, mut st): (libc::statfs, libc::stat) = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and buffers of the right types.
    let found = unsafe {
        libc::statfs(path.as_ptr().cast(), &mut fs) == 0
            && libc::fstatat(
                libc::AT_FDCWD,
                path.as_ptr().cast(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            ) == 0
    };
    found.then_some(RenewMark {
        free_inodes: fs.f_ffree,
        free_blocks: fs.f_bfree,
        times: [
            st.st_atime,
            st.st_atime_nsec,
            st.st_mtime,
            st.st_mtime_nsec,
            st.st_ctime,
            st.st_ctime_nsec,
        ],
    })
}

impl MountPlan {
    /// Child side, in a box entered earlier with [`enter`](Self::enter)
    /// and with no process of the program left: every fresh writable
    /// filesystem of the plan (`/tmp`, `/dev/shm`, ...) that is not exactly
    /// as `marks` remembers it is unmounted and an empty one mounted in its
    /// place, so nothing a run wrote there outlives it; `marks` then holds
    /// the state of every renewed one. With `force`, every one is renewed
    /// (or, with `force` and `remount` false, only marked: right after
    /// [`enter`](Self::enter)). On failure returns the step's index and
    /// errno.
    ///
    /// Only for a plan whose [`renewable`](Self::renewable) is true: the
    /// mount points are found by name, through directories only root can
    /// change.
    ///
    /// # Safety
    /// Only async-signal-safe calls; call in the box's mount namespace,
    /// after the pivot.
    pub(crate) unsafe fn renew(
        &self,
        marks: &mut [Option<RenewMark>; MAX_RENEWED],
        remount: bool,
    ) -> Result<(), (u32, i32)> {
        // SAFETY: a static C string.
        let root = unsafe {
            libc::open(
                c"/".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if root < 0 {
            return Err((self.steps.len() as u32, errno()));
        }
        let root = ChildFd(root);
        for (slot, &index) in self.renew.iter().enumerate() {
            let Step::Mount {
                fstype,
                options,
                attributes,
                target,
            } = &self.steps[index]
            else {
                continue;
            };
            let failed = |errno| (index as u32, errno);
            // The path on the stack: no allocation in the holder.
            let mut path = [0u8; 4096];
            target_path(target, &mut path).map_err(failed)?;
            let remembered = marks.get(slot).copied().flatten();
            if remount {
                // SAFETY: `path` is NUL-terminated.
                let now = unsafe { mark_of(&path) };
                if remembered.is_some() && now == remembered {
                    continue;
                }
                // SAFETY: as above.
                let unmounted = unsafe {
                    libc::umount2(
                        path.as_ptr().cast(),
                        libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW,
                    )
                };
                if unmounted != 0 {
                    return Err(failed(errno()));
                }
                // SAFETY: the caller's contract; strings prepared before
                // the fork.
                unsafe { mount_fresh(root.0, fstype, options, *attributes, target) }
                    .map_err(failed)?;
            }
            if let Some(mark) = marks.get_mut(slot) {
                // SAFETY: `path` is NUL-terminated.
                *mark = unsafe { mark_of(&path) };
            }
        }
        Ok(())
    }

    /// Whether [`replace_workdir`](Self::replace_workdir) can work on this
    /// plan: it has the working directory's mount point, with nothing
    /// below it.
    pub(crate) fn workdir_replaceable(&self) -> bool {
        self.workdir.is_some()
    }

    /// Puts `tree`, a detached mount of the box's own directory, where the
    /// working directory goes (on its mount point, or in place of what is
    /// bound there), with the working directory's bind attributes: the
    /// step that turns a spare box (built before any box was asked for)
    /// into a given box's. The mount is made private, so that nothing
    /// mounted later below the host's directory shows in the box. `tree`
    /// stays the caller's to close.
    ///
    /// # Safety
    /// Only async-signal-safe calls; call in the box's mount namespace,
    /// after the pivot, before any program ran in the box (the mount point
    /// is found by name).
    pub(crate) unsafe fn replace_workdir(&self, tree: RawFd) -> Result<(), i32> {
        let (target, attributes, bound) = match self.workdir.map(|index| &self.steps[index]) {
            Some(Step::Bind {
                target, attributes, ..
            }) => (target, attributes, true),
            Some(Step::MountPoint { target, attributes }) => (target, attributes, false),
            _ => return Err(libc::EINVAL),
        };
        let attr = MountAttr {
            attr_set: *attributes,
            attr_clr: 0,
            propagation: libc::MS_PRIVATE,
            userns_fd: 0,
        };
        let mut path = [0u8; 4096];
        target_path(target, &mut path)?;
        // SAFETY: system calls on a descriptor of the caller's, a local
        // mount_attr of the size passed and NUL-terminated paths.
        unsafe {
            checked(libc::syscall(
                libc::SYS_mount_setattr,
                tree,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            ))?;
            if bound {
                checked(libc::umount2(
                    path.as_ptr().cast(),
                    libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW,
                ) as libc::c_long)?;
            }
            let root = libc::open(
                c"/".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if root < 0 {
                return Err(errno());
            }
            let root = ChildFd(root);
            let point = open_target(root.0, target)?;
            let tree = std::mem::ManuallyDrop::new(ChildFd(tree));
            attach(&tree, &point)
        }
    }
}

/// The directories the child-side walks start from.
#[derive(Clone, Copy)]
struct Dirs {
    /// The new root (its tmpfs).
    root: RawFd,
    /// The host's root, still the proxy's `/` before the pivot.
    host: RawFd,
}

/// A descriptor the child opened, closed when dropped (`close` is
/// async-signal-safe and dropping allocates nothing).
struct ChildFd(RawFd);

impl Drop for ChildFd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by this child and is closed once.
        unsafe { libc::close(self.0) };
    }
}

/// `Ok(value)` for a non-negative return, else errno.
fn checked(ret: libc::c_long) -> Result<libc::c_long, i32> {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

/// The type bits of what `fd` refers to.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn file_type(fd: RawFd) -> Result<(libc::mode_t, libc::stat), i32> {
    // SAFETY: `stat` is plain data, written by fstat.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        checked(libc::fstat(fd, &mut stat) as libc::c_long)?;
        Ok((stat.st_mode & libc::S_IFMT, stat))
    }
}

/// Opens entry `name` of directory `dir` as an `O_PATH` descriptor without
/// following a symbolic link (a link is `ELOOP`), with its status.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn open_entry(dir: RawFd, name: &CString) -> Result<(ChildFd, libc::stat), i32> {
    // SAFETY: a live C string and a descriptor of ours.
    unsafe {
        let fd = checked(libc::openat(
            dir,
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        ) as libc::c_long)?;
        let fd = ChildFd(fd as RawFd);
        let (kind, stat) = file_type(fd.0)?;
        if kind == libc::S_IFLNK {
            return Err(libc::ELOOP);
        }
        Ok((fd, stat))
    }
}

/// A directory [`walk`] reached: the base itself (no descriptor of its
/// own to open, duplicate or close), or one the walk opened.
struct WalkedDir {
    fd: RawFd,
    _opened: Option<ChildFd>,
}

/// Walks `parts` down from `base` following no symbolic link; with
/// `create`, missing directories are made (0755). Every component must be a
/// directory.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn walk(base: RawFd, parts: &[CString], create: bool) -> Result<WalkedDir, i32> {
    let mut current = WalkedDir {
        fd: base,
        _opened: None,
    };
    // SAFETY: system calls on descriptors of ours and live C strings.
    unsafe {
        for part in parts {
            // mkdir never follows a link in its last component: a planted
            // link makes it EEXIST, and open_entry then refuses it.
            if create
                && libc::mkdirat(current.fd, part.as_ptr(), 0o755) != 0
                && errno() != libc::EEXIST
            {
                return Err(errno());
            }
            let (next, stat) = open_entry(current.fd, part)?;
            if stat.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(libc::ENOTDIR);
            }
            current = WalkedDir {
                fd: next.0,
                _opened: Some(next),
            };
        }
        Ok(current)
    }
}

/// Opens (creating it when missing) the mount point `target` below the new
/// root. A symbolic link anywhere on the way, or a mount point of the wrong
/// type, is an error: nothing is created or mounted outside the root.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn open_target(root: RawFd, target: &Target) -> Result<ChildFd, i32> {
    let Some((last, parents)) = target.parts.split_last() else {
        return Err(libc::EINVAL);
    };
    // SAFETY: system calls on descriptors of ours and live C strings.
    unsafe {
        let parent = walk(root, parents, true)?;
        match target.kind {
            PointKind::Directory => {
                if libc::mkdirat(parent.fd, last.as_ptr(), 0o755) != 0 && errno() != libc::EEXIST {
                    return Err(errno());
                }
                let (fd, stat) = open_entry(parent.fd, last)?;
                if stat.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(libc::ENOTDIR);
                }
                Ok(fd)
            }
            PointKind::File => {
                // O_EXCL: an existing entry, a link above all, is never
                // opened through this call.
                let created = libc::openat(
                    parent.fd,
                    last.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o644,
                );
                if created >= 0 {
                    return Ok(ChildFd(created));
                }
                if errno() != libc::EEXIST {
                    return Err(errno());
                }
                let (fd, stat) = open_entry(parent.fd, last)?;
                if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(libc::EEXIST);
                }
                Ok(fd)
            }
        }
    }
}

/// Finds bind source `source` again from the host's root, following no
/// link, and checks it is the file the keeper found.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn open_source(host: RawFd, source: &Source) -> Result<ChildFd, i32> {
    let Some((last, parents)) = source.parts.split_last() else {
        // The host's root itself.
        // SAFETY: duplicating a descriptor of ours.
        return unsafe {
            checked(libc::fcntl(host, libc::F_DUPFD_CLOEXEC, 3) as libc::c_long)
                .map(|fd| ChildFd(fd as RawFd))
        };
    };
    // SAFETY: as above.
    unsafe {
        let parent = walk(host, parents, false)?;
        let (fd, stat) = open_entry(parent.fd, last)?;
        if let Some((dev, ino)) = source.identity {
            if stat.st_dev != dev || stat.st_ino != ino {
                return Err(libc::ESTALE);
            }
        }
        Ok(fd)
    }
}

/// `/proc/self/fd/N` of `fd` in `buffer`, NUL-terminated, without
/// allocating.
fn fd_path(fd: RawFd, buffer: &mut [u8; 32]) -> *const libc::c_char {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buffer[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut count = 0;
    let mut value = fd.max(0) as u32;
    loop {
        digits[count] = b'0' + (value % 10) as u8;
        count += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for (index, digit) in digits[..count].iter().rev().enumerate() {
        buffer[PREFIX.len() + index] = *digit;
    }
    buffer[PREFIX.len() + count] = 0;
    buffer.as_ptr().cast()
}

/// Attaches the detached mount `mount` onto the mount point `target`.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn attach(mount: &ChildFd, target: &ChildFd) -> Result<(), i32> {
    // SAFETY: empty paths with *_EMPTY_PATH name the descriptors themselves.
    unsafe {
        checked(libc::syscall(
            libc::SYS_move_mount,
            mount.0,
            c"".as_ptr(),
            target.0,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        ))
        .map(drop)
    }
}

/// Binds `source` (found again from `host`) onto `target`: a detached copy
/// of the source gets its attributes first and is then attached to the
/// mount point's descriptor, so no path is looked up twice.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn bind(
    dirs: Dirs,
    source: &Source,
    target: &Target,
    recursive: bool,
    attributes: u64,
) -> Result<(), i32> {
    // SAFETY: system calls on descriptors of ours, live C strings and a
    // local mount_attr of the size passed.
    unsafe {
        let opened = open_source(dirs.host, source)?;
        let mut flags =
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
        if recursive {
            flags |= AT_RECURSIVE;
        }
        let tree = ChildFd(checked(libc::syscall(
            libc::SYS_open_tree,
            opened.0,
            c"".as_ptr(),
            flags,
        ))? as RawFd);
        drop(opened);
        let attr = MountAttr {
            attr_set: attributes,
            attr_clr: 0,
            propagation: libc::MS_PRIVATE,
            userns_fd: 0,
        };
        let mut setattr_flags = libc::AT_EMPTY_PATH as libc::c_uint;
        if recursive {
            setattr_flags |= AT_RECURSIVE;
        }
        let set_early = libc::syscall(
            libc::SYS_mount_setattr,
            tree.0,
            c"".as_ptr(),
            setattr_flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ) == 0;
        if !set_early && errno() != libc::ENOSYS {
            return Err(errno());
        }
        let point = open_target(dirs.root, target)?;
        attach(&tree, &point)?;
        if !set_early {
            // Before Linux 5.12: a remount of the top mount, now attached,
            // named through its descriptor.
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
            let mut buffer = [0u8; 32];
            checked(libc::mount(
                std::ptr::null(),
                fd_path(tree.0, &mut buffer),
                std::ptr::null(),
                remount,
                std::ptr::null(),
            ) as libc::c_long)?;
        }
        Ok(())
    }
}

/// Mounts a fresh `fstype` configured with `options` onto `target`.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn mount_fresh(
    root: RawFd,
    fstype: &CString,
    options: &[(CString, CString)],
    attributes: u64,
    target: &Target,
) -> Result<(), i32> {
    // SAFETY: system calls on descriptors of ours and live C strings.
    unsafe {
        let context = ChildFd(checked(libc::syscall(
            libc::SYS_fsopen,
            fstype.as_ptr(),
            FSOPEN_CLOEXEC,
        ))? as RawFd);
        for (key, value) in options {
            checked(libc::syscall(
                libc::SYS_fsconfig,
                context.0,
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            ))?;
        }
        checked(libc::syscall(
            libc::SYS_fsconfig,
            context.0,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        ))?;
        let mount = ChildFd(checked(libc::syscall(
            libc::SYS_fsmount,
            context.0,
            FSMOUNT_CLOEXEC,
            attributes as libc::c_uint,
        ))? as RawFd);
        let point = open_target(root, target)?;
        attach(&mount, &point)
    }
}

/// Makes the filesystem mounted at `target` read-only (its superblock, as
/// a remount would).
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn make_read_only(root: RawFd, target: &[CString]) -> Result<(), i32> {
    // SAFETY: system calls on descriptors of ours and static C strings.
    unsafe {
        let dir = walk(root, target, false)?;
        let picked = ChildFd(checked(libc::syscall(
            libc::SYS_fspick,
            dir.fd,
            c"".as_ptr(),
            FSPICK_EMPTY_PATH | FSPICK_CLOEXEC,
        ))? as RawFd);
        checked(libc::syscall(
            libc::SYS_fsconfig,
            picked.0,
            FSCONFIG_SET_FLAG,
            c"ro".as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0,
        ))?;
        checked(libc::syscall(
            libc::SYS_fsconfig,
            picked.0,
            FSCONFIG_CMD_RECONFIGURE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        ))
        .map(drop)
    }
}

/// Runs one step; errno on failure.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn run_step(step: &Step, dirs: Dirs) -> Result<(), i32> {
    match step {
        Step::Bind {
            source,
            target,
            recursive,
            attributes,
        } => {
            // SAFETY: the caller's contract; strings prepared before the fork.
            unsafe { bind(dirs, source, target, *recursive, *attributes) }
        }
        Step::Mount {
            fstype,
            options,
            attributes,
            target,
        } => {
            // SAFETY: as for Bind.
            unsafe { mount_fresh(dirs.root, fstype, options, *attributes, target) }
        }
        Step::Symlink {
            dir,
            name,
            points_to,
        } => {
            // SAFETY: as for Bind.
            let dir = unsafe { walk(dirs.root, dir, false) }?;
            // SAFETY: two live C strings and a descriptor we hold.
            let ret = unsafe { libc::symlinkat(points_to.as_ptr(), dir.fd, name.as_ptr()) };
            checked(ret as libc::c_long).map(drop)
        }
        Step::Device {
            dir,
            name,
            device,
            host,
            point,
        } => {
            // SAFETY: as for Bind.
            let parent = unsafe { walk(dirs.root, dir, false) }?;
            // SAFETY: a live C string and a descriptor we hold.
            if unsafe { libc::mknodat(parent.fd, name.as_ptr(), libc::S_IFCHR | 0o666, *device) }
                == 0
            {
                return Ok(());
            }
            if errno() != libc::EPERM {
                return Err(errno());
            }
            drop(parent);
            // SAFETY: as for Bind.
            unsafe {
                bind(
                    dirs,
                    host,
                    point,
                    false,
                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                )
            }
        }
        // SAFETY: as for Bind.
        Step::ReadOnly { target } => unsafe { make_read_only(dirs.root, target) },
        // SAFETY: as for Bind.
        Step::MountPoint { target, .. } => unsafe { open_target(dirs.root, target) }.map(drop),
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
        Err(errno())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_are_formatted_without_allocating() {
        let mut buffer = [0u8; 32];
        for (fd, text) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (1234567, "/proc/self/fd/1234567"),
        ] {
            let pointer = fd_path(fd, &mut buffer);
            // SAFETY: fd_path wrote a NUL-terminated string into `buffer`.
            let written = unsafe { std::ffi::CStr::from_ptr(pointer) };
            assert_eq!(written.to_str().unwrap(), text);
        }
    }
}
