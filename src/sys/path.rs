//! Opening host paths the way root may open a path other users can write
//! parts of.

use std::io;
use std::os::fd::OwnedFd;

use super::{effective_uid, strerror};

/// A host file or directory found by [`resolve_host_path`]: an open
/// descriptor, the path with every symbolic link resolved, and its identity
/// (device and inode) so that a later walk along the path can check that it
/// reached the same file.
#[derive(Debug)]
pub struct HostPath {
    /// `O_PATH` descriptor, or an ordinary read-only one when the last
    /// component was opened with [`Resolve::open_last`].
    pub fd: OwnedFd,
    /// Absolute, without `.`, `..` or symbolic links.
    pub path: std::path::PathBuf,
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Whether the last component was created by this call.
    pub created: bool,
}

/// How [`resolve_host_path`] treats the path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resolve {
    /// Follow a symbolic link in the last component (still only in a
    /// directory no one but root can write).
    pub follow_last: bool,
    /// Create missing directories (0755, the last one 0700).
    pub create: bool,
    /// Open the last component as a readable directory (for `fchown`,
    /// `fchmod`), never following a link there.
    pub open_last: bool,
}

/// Root (and the keeper itself) own this directory and no one else may
/// write it, so an entry in it is what its owner put there.
fn trusted_directory(stat: &rustix::fs::Stat) -> bool {
    let euid = effective_uid();
    (stat.st_uid == 0 || stat.st_uid == euid) && stat.st_mode & 0o022 == 0
}

fn refused(path: &std::path::Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}", path.display()),
    )
}

/// Opens host path `path` (absolute) the way root may open a path other
/// users can write parts of: a symbolic link is followed only when the
/// directory holding it is owned by root (or the keeper) and writable by no
/// one else; anywhere else (the box, a writable bind, `/tmp`, a user's home)
/// it is an error, as is a last component that is a link unless
/// `how.follow_last`. Every step is an `openat` relative to the directory
/// before it, so nothing can be redirected between the checks.
pub fn resolve_host_path(path: &std::path::Path, how: Resolve) -> io::Result<HostPath> {
    use rustix::fs::{FileType, Mode, OFlags};
    use std::collections::VecDeque;
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStringExt;
    use std::path::{Component, Path, PathBuf};

    /// More links than this is a loop (the kernel's own limit).
    const MAX_LINKS: u32 = 40;
    if !path.is_absolute() {
        return Err(refused(path, "not an absolute path"));
    }
    let open_root = || {
        rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let components = |path: &Path| -> VecDeque<OsString> {
        path.components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    // The directories walked so far: (descriptor, name), the root first.
    let mut stack: Vec<(OwnedFd, OsString)> = vec![(open_root()?, OsString::new())];
    let mut todo = components(path);
    let mut links = 0;
    let mut created = false;
    let walked = |stack: &[(OwnedFd, OsString)], name: &OsStr| -> PathBuf {
        let mut walked = PathBuf::from("/");
        walked.extend(stack.iter().skip(1).map(|(_, name)| name));
        walked.join(name)
    };
    let mut last_stat = None;
    while let Some(name) = todo.pop_front() {
        let last = todo.is_empty();
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            last_stat = None;
            continue;
        }
        let dir = &stack.last().expect("the root stays").0;
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut made = false;
        let entry = match rustix::fs::openat(dir, name.as_os_str(), flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) if how.create => {
                let mode = if last { 0o700 } else { 0o755 };
                match rustix::fs::mkdirat(dir, name.as_os_str(), Mode::from_raw_mode(mode)) {
                    Ok(()) => made = true,
                    // Someone else made it meanwhile: used like an existing one.
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(err) => return Err(err.into()),
                }
                rustix::fs::openat(dir, name.as_os_str(), flags, Mode::empty())
            }
            other => other,
        };
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => return Err(located(&walked(&stack, &name), err)),
        };
        // A readable descriptor of the same directory, opened again from
        // its parent without following a link, for fchown and fchmod.
        let entry = if last && how.open_last {
            let reopened = rustix::fs::openat(
                dir,
                name.as_os_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            match (rustix::fs::fstat(&entry), reopened) {
                (Ok(before), Ok(reopened)) => {
                    let after = rustix::fs::fstat(&reopened)?;
                    if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino) {
                        return Err(refused(
                            &walked(&stack, &name),
                            "was replaced while being opened",
                        ));
                    }
                    reopened
                }
                // A link or a file: reported below from the O_PATH view.
                (_, Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)) | (Err(_), _) => {
                    entry
                }
                // Anything else (no descriptor left, say) is the error: an
                // O_PATH descriptor in its place would fail every fchmod
                // later with a puzzling EBADF.
                (Ok(_), Err(err)) => return Err(located(&walked(&stack, &name), err)),
            }
        } else {
            entry
        };
        let stat = rustix::fs::fstat(&entry)?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind == FileType::Symlink {
            if last && !how.follow_last {
                return Err(refused(
                    &walked(&stack, &name),
                    "is a symbolic link, which root does not follow here",
                ));
            }
            if !trusted_directory(&rustix::fs::fstat(dir)?) {
                return Err(refused(
                    &walked(&stack, &name),
                    "is a symbolic link in a directory that users other than root can write; \
                     root does not follow it (name the link's target instead)",
                ));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = rustix::fs::readlinkat(&entry, "", Vec::new())?;
            let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
            let mut spliced = components(&target);
            spliced.extend(todo);
            todo = spliced;
            if target.is_absolute() {
                stack.truncate(1);
            }
            continue;
        }
        if made && stat.st_uid != effective_uid() {
            return Err(refused(
                &walked(&stack, &name),
                "was replaced while being created",
            ));
        }
        if (!last || how.open_last) && kind != FileType::Directory {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{}: not a directory", walked(&stack, &name).display()),
            ));
        }
        created = made && last;
        last_stat = Some(stat);
        stack.push((entry, name));
    }
    let stat = match last_stat {
        Some(stat) => stat,
        None => rustix::fs::fstat(&stack.last().expect("the root stays").0)?,
    };
    let mut resolved = PathBuf::from("/");
    resolved.extend(stack.iter().skip(1).map(|(_, name)| name));
    let (fd, _) = stack.pop().expect("the root stays");
    if how.open_last && resolved == Path::new("/") {
        return Err(refused(path, "the root directory cannot be used here"));
    }
    Ok(HostPath {
        fd,
        path: resolved,
        dev: stat.st_dev,
        ino: stat.st_ino,
        is_dir: FileType::from_raw_mode(stat.st_mode) == FileType::Directory,
        created,
    })
}

/// `err` with the path it happened at, said once: `<path>: <strerror>`.
fn located(path: &std::path::Path, err: rustix::io::Errno) -> io::Error {
    let err = io::Error::from(err);
    io::Error::new(
        err.kind(),
        format!(
            "{}: {}",
            path.display(),
            strerror(err.raw_os_error().unwrap_or(libc::EIO))
        ),
    )
}
