//! Walking directory trees that a hostile program (or a hostile box owner)
//! built: the one walker behind every removal, ownership change and mode
//! reset the keeper does on a box.
//!
//! [`walk`] visits a tree depth first without recursion, holding one
//! directory descriptor at a time (plus a short-lived one while listing),
//! so a tree nested far past `PATH_MAX` or deeper than any call stack is
//! walked like any other. Every name is resolved relative to the directory
//! descriptor it was read from (`openat`/`fstatat`), never as a path from
//! the top, and never through a symlink. The walk climbs back with `..`
//! and checks that it arrived at the directory it came from (same device
//! and inode): someone who moves a directory out of the tree while the
//! walk is inside it (the box's owner can, between runs) stops the walk
//! instead of leading it into the host. An entry on another file system (a
//! mount point) stops it too.
//!
//! On top of it: [`remove_tree`] deletes a tree, and [`reset_tree`] gives a
//! tree to a uid and gid. `reset_tree` changes an inode only through a
//! descriptor of that inode (`O_PATH`, `AT_EMPTY_PATH`) after checking what
//! it is: a non-directory with more than one link may be reachable from
//! outside the tree (a host file hard-linked into the box), so it is never
//! changed, only skipped or unlinked from the tree.
//!
//! Nothing else in the crate walks a box's files. (Cgroup directories are
//! removed by the cgroup layer with `rmdir`, bottom-up: they hold only
//! kernel files, never anything a program planted.)

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Gid, Mode, OFlags, Stat, Uid, CWD};
use rustix::io::Errno;

/// What the walk does with a directory it was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Visit its entries (then call `leave` for it).
    Enter,
    /// Leave it alone.
    Skip,
}

fn open_directory(at: impl AsFd, name: &CStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(at, name, flags, Mode::empty())?)
}

/// Opens the directory `path` for a walk; only its last component is
/// refused as a symlink (the caller vouches for the rest of the path).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    let name = CString::new(path.as_os_str().as_bytes())?;
    open_directory(CWD, &name)
}

fn changed(what: &str) -> io::Error {
    io::Error::other(format!("the tree changed during the walk ({what})"))
}

/// Walks the tree below the directory `root` (not `root` itself).
///
/// `entry(dir, name, stat)` is called for every entry (`stat` as
/// `fstatat` without following links saw it) and says whether to enter
/// it; only directories are entered. `leave(parent, name)` is called after
/// the directory `name` of `parent` and everything below it was visited.
/// Entries that vanish while the walk runs are passed over.
pub fn walk(
    root: OwnedFd,
    mut entry: impl FnMut(BorrowedFd<'_>, &CStr, &Stat) -> io::Result<Step>,
    mut leave: impl FnMut(BorrowedFd<'_>, &CStr) -> io::Result<()>,
) -> io::Result<()> {
    let top = rustix::fs::fstat(&root)?;
    let device = top.st_dev;
    // Every directory being visited: its name in its parent, its inode
    // (to recognize it when climbing back) and the subdirectories it
    // still has to enter.
    struct Frame {
        name: CString,
        inode: u64,
        pending: Vec<CString>,
    }
    let mut current = root;
    let mut frames = vec![Frame {
        name: CString::default(),
        inode: top.st_ino,
        pending: visit(&current, device, &mut entry)?,
    }];
    while let Some(frame) = frames.last_mut() {
        if let Some(name) = frame.pending.pop() {
            let child = match open_directory(&current, &name) {
                Ok(child) => child,
                // Gone, or replaced by something that is not a directory.
                Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    continue
                }
                Err(err) if err.raw_os_error() == Some(libc::ELOOP) => continue,
                Err(err) => return Err(err),
            };
            let stat = rustix::fs::fstat(&child)?;
            if stat.st_dev != device {
                return Err(changed("a directory became a mount point"));
            }
            current = child;
            let pending = visit(&current, device, &mut entry)?;
            frames.push(Frame {
                name,
                inode: stat.st_ino,
                pending,
            });
            continue;
        }
        let Some(done) = frames.pop() else { break };
        let Some(parent) = frames.last() else { break };
        let up = open_directory(&current, c"..")?;
        let stat = rustix::fs::fstat(&up)?;
        if stat.st_dev != device || stat.st_ino != parent.inode {
            return Err(changed("a directory was moved out of it"));
        }
        current = up;
        leave(current.as_fd(), &done.name)?;
    }
    Ok(())
}

/// Shows `entry` every entry of `dir` (passing over those that vanish) and
/// returns the directories it asked to enter. An entry on a device other
/// than `device` (a mount point) stops the walk.
fn visit(
    dir: &OwnedFd,
    device: u64,
    entry: &mut impl FnMut(BorrowedFd<'_>, &CStr, &Stat) -> io::Result<Step>,
) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for item in Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    let mut pending = Vec::new();
    for name in names {
        let stat = match rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(err) => return Err(err.into()),
        };
        if stat.st_dev != device {
            return Err(io::Error::other(format!(
                "{name:?} is on another file system (a mount point)"
            )));
        }
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        if entry(dir.as_fd(), &name, &stat)? == Step::Enter && is_dir {
            pending.push(name);
        }
    }
    Ok(pending)
}

/// Removes `root` and everything below it, however deep, without following
/// any link. A missing `root` is not an error; a `root` that is not a
/// directory is unlinked.
pub fn remove_tree(root: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(root) {
        Ok(meta) if !meta.is_dir() => return std::fs::remove_file(root),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    }
    let gone = |result: rustix::io::Result<()>| match result {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(err) => Err(io::Error::from(err)),
    };
    walk(
        open_root(root)?,
        |dir, name, stat| {
            if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                return Ok(Step::Enter);
            }
            gone(rustix::fs::unlinkat(dir, name, AtFlags::empty()))?;
            Ok(Step::Skip)
        },
        |parent, name| gone(rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)),
    )?;
    std::fs::remove_dir(root)
}

/// What [`reset_tree`] does with a file that has more than one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// Leave it as it is (its owner and mode are not touched).
    Skip,
    /// Unlink its name from the tree (the inode and its other names stay).
    Remove,
}

/// How [`reset_tree`] leaves a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// Owner of every entry afterwards.
    pub uid: u32,
    /// Group of every entry afterwards.
    pub gid: u32,
    /// Mode of the root directory afterwards.
    pub root_mode: u32,
    /// Keep symlinks, fifos, sockets and devices (chowned); otherwise they
    /// are unlinked.
    pub keep_special: bool,
    /// Files with more than one link.
    pub linked: Linked,
}

/// What [`reset_tree`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Entries visited.
    pub entries: u64,
    /// Files with more than one link, skipped or unlinked.
    pub linked: u64,
    /// Special files unlinked.
    pub special_removed: u64,
}

/// Bits no entry keeps after a reset: set-user-ID, set-group-ID, and write
/// permission for group and others (nobody but the owner may change a
/// box's files or plant links in its directories).
const STRIPPED_BITS: u32 = 0o6022;

/// `chmod` of the inode behind `fd` (an `O_PATH` descriptor, which
/// `fchmod` refuses): `/proc/self/fd/N` names that inode, not a path.
fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::chmod(path.as_str(), Mode::from_raw_mode(mode))?)
}

/// Gives the inode behind `fd` (whose `fstat` is `stat`) to `reset`'s
/// owner and strips [`STRIPPED_BITS`] from its mode.
fn reset_inode(
    fd: BorrowedFd<'_>,
    stat: &Stat,
    reset: &Reset,
    mode: Option<u32>,
) -> io::Result<()> {
    if stat.st_uid != reset.uid || stat.st_gid != reset.gid {
        rustix::fs::chownat(
            fd,
            c"",
            Some(Uid::from_raw(reset.uid)),
            Some(Gid::from_raw(reset.gid)),
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
        return Ok(());
    }
    let old = stat.st_mode & 0o7777;
    let new = mode.unwrap_or(old & !STRIPPED_BITS);
    // A chown may clear set-id bits by itself (never set any): the mode is
    // said again after one unless it has none to lose and is already
    // right, which spares each run two calls on the box directory.
    let chowned = stat.st_uid != reset.uid || stat.st_gid != reset.gid;
    if new != old || (chowned && old & 0o6000 != 0) {
        chmod_fd(fd, new)?;
    }
    Ok(())
}

/// Gives the directory `root` and everything below it to `reset.uid` and
/// `reset.gid`, strips set-id bits and group/other write permission, sets
/// the root's mode, and removes special files unless asked to keep them.
///
/// Every change goes through a descriptor of the inode changed, opened
/// without following links, after checking on that descriptor that the
/// inode is on the tree's file system and, unless it is a directory, has
/// exactly one link. Files with more links are handled as `reset.linked`
/// says and counted.
pub fn reset_tree(root: OwnedFd, reset: &Reset) -> io::Result<ResetReport> {
    let top = rustix::fs::fstat(&root)?;
    let device = top.st_dev;
    reset_inode(root.as_fd(), &top, reset, Some(reset.root_mode))?;
    let mut report = ResetReport::default();
    walk(
        root,
        |dir, name, _| {
            report.entries += 1;
            let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Ok(Step::Skip),
                Err(err) => return Err(err.into()),
            };
            // What the descriptor holds is what gets changed, whatever the
            // name points to by now.
            let stat = rustix::fs::fstat(&fd)?;
            if stat.st_dev != device {
                return Err(changed("an entry moved to another file system"));
            }
            let kind = FileType::from_raw_mode(stat.st_mode);
            let unlink = |flags| match rustix::fs::unlinkat(dir, name, flags) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(err) => Err(io::Error::from(err)),
            };
            match kind {
                FileType::Directory => {
                    reset_inode(fd.as_fd(), &stat, reset, None)?;
                    return Ok(Step::Enter);
                }
                _ if stat.st_nlink > 1 => {
                    report.linked += 1;
                    if reset.linked == Linked::Remove {
                        unlink(AtFlags::empty())?;
                    }
                }
                FileType::RegularFile => reset_inode(fd.as_fd(), &stat, reset, None)?,
                _ if reset.keep_special => reset_inode(fd.as_fd(), &stat, reset, None)?,
                _ => {
                    report.special_removed += 1;
                    unlink(AtFlags::empty())?;
                }
            }
            Ok(Step::Skip)
        },
        |_, _| Ok(()),
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn removes_a_tree_deeper_than_path_max_without_following_links() {
        let outside = tempfile::tempdir().unwrap();
        let keep = outside.path().join("keep.txt");
        std::fs::write(&keep, "must survive").unwrap();

        let root = tempfile::tempdir().unwrap().keep();
        // Deeper than PATH_MAX allows to name in one path.
        let mut dir = std::fs::File::open(&root).unwrap();
        let long = "d".repeat(200);
        for _ in 0..100 {
            let name = CString::new(long.clone()).unwrap();
            rustix::fs::mkdirat(&dir, &name, Mode::from_raw_mode(0o755)).unwrap();
            let next = open_directory(&dir, &name).unwrap();
            rustix::fs::symlinkat(outside.path(), &next, c"link").unwrap();
            dir = std::fs::File::from(next);
        }
        std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();

        remove_tree(&root).unwrap();
        assert!(!root.exists());
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "must survive");
    }

    #[test]
    fn missing_root_is_fine_and_a_file_is_unlinked() {
        remove_tree(Path::new("/nonexistent/isobox-tree")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        remove_tree(&file).unwrap();
        assert!(!file.exists());
    }

    #[test]
    fn reset_strips_bits_and_never_touches_linked_files() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let host = outside.path().join("host");
        std::fs::write(&host, "host").unwrap();
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o4777)).unwrap();
        let sub = root.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o2777)).unwrap();
        std::fs::write(sub.join("plain"), "x").unwrap();
        std::fs::set_permissions(sub.join("plain"), std::fs::Permissions::from_mode(0o6666))
            .unwrap();
        std::fs::hard_link(&host, sub.join("linked")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", sub.join("link")).unwrap();
        let me = std::fs::metadata("/proc/self").unwrap();
        let mut reset = Reset {
            uid: me.uid(),
            gid: me.gid(),
            root_mode: 0o700,
            keep_special: true,
            linked: Linked::Skip,
        };
        let report = reset_tree(open_root(root.path()).unwrap(), &reset).unwrap();
        assert_eq!((report.entries, report.linked), (4, 1));
        let mode = |path: &Path| std::fs::symlink_metadata(path).unwrap().mode() & 0o7777;
        assert_eq!(mode(root.path()), 0o700);
        assert_eq!(mode(&sub), 0o755);
        assert_eq!(mode(&sub.join("plain")), 0o644);
        assert_eq!(mode(&host), 0o4777, "a linked file was changed");
        assert!(sub.join("link").symlink_metadata().is_ok());
        reset.keep_special = false;
        reset.linked = Linked::Remove;
        let report = reset_tree(open_root(root.path()).unwrap(), &reset).unwrap();
        assert_eq!((report.linked, report.special_removed), (1, 1));
        assert!(sub.join("linked").symlink_metadata().is_err());
        assert!(sub.join("link").symlink_metadata().is_err());
        assert_eq!(std::fs::read_to_string(&host).unwrap(), "host");
    }

    #[test]
    fn a_directory_moved_out_during_the_walk_stops_it() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/x"), "x").unwrap();
        std::fs::write(root.join("z"), "z").unwrap();
        let outside = base.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let mut left = Vec::new();
        let err = walk(
            open_root(&root).unwrap(),
            |_, name, _| {
                if name == c"x" {
                    // What the box's owner can do between runs.
                    std::fs::rename(root.join("a"), outside.join("a")).unwrap();
                }
                Ok(Step::Enter)
            },
            |_, name| {
                left.push(name.to_owned());
                Ok(())
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        // It left `b` (inside the moved directory), never `a`'s new parent.
        assert_eq!(left, [c"b".to_owned()]);
    }
}
