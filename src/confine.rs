//! Files named inside a box, reached without ever leaving it: copy-in
//! before a run and copy-out after it, for `isobox serve` and `isobox run`.
//!
//! Every path is looked up from a descriptor of the box directory with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV)`: no `..` above the box, no link followed (one the
//! program planted, or one an earlier `copyIn` entry made), no crossing
//! into another mount. go-judge followed a planted link on copy-out (its
//! issue 176); here the kernel refuses the lookup.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// A path inside the box, as clean components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxPath {
    parts: Vec<String>,
}

/// Where `isobox serve`'s clients name the box: go-judge's working
/// directory.
pub const BOX_DIR: &str = "/w";

impl BoxPath {
    /// Parses a name from a go-judge request: relative to the box, or
    /// absolute below [`BOX_DIR`]. `..`, empty names and other absolute
    /// paths are refused.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::parse_in(name, BOX_DIR)
    }

    /// Parses a name relative to the box, or absolute below `mount` (where
    /// the program sees the box). `..`, empty names and other absolute
    /// paths are refused.
    pub fn parse_in(name: &str, mount: &str) -> Result<Self, String> {
        let relative = match name.strip_prefix(mount) {
            Some(rest) if rest.starts_with('/') => &rest[1..],
            _ if name.starts_with('/') => {
                return Err(format!("{name:?} is outside the box ({mount})"))
            }
            _ => name,
        };
        if name.contains('\0') {
            return Err(format!("{name:?} contains a NUL byte"));
        }
        let mut parts = Vec::new();
        for part in relative.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(format!("{name:?} climbs out with '..'")),
                part => parts.push(part.to_string()),
            }
        }
        if parts.is_empty() {
            return Err(format!("{name:?} names no file"));
        }
        Ok(Self { parts })
    }

    /// The last component: the file's own name.
    pub fn file_name(&self) -> &str {
        self.parts.last().map_or("", String::as_str)
    }

    /// The path relative to the box, components joined by `/`.
    pub fn relative(&self) -> String {
        self.parts.join("/")
    }
}

fn resolve() -> ResolveFlags {
    ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV
}

/// Opens the box directory itself, refusing a link.
pub fn open_box(dir: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn open_dir(at: &OwnedFd, name: &str) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        resolve(),
    )?)
}

/// Opens (making them as needed) the directories above `path`; returns the
/// last one and the file name left.
fn parent_of<'p>(root: &OwnedFd, path: &'p BoxPath) -> std::io::Result<(OwnedFd, &'p str)> {
    let (last, dirs) = path.parts.split_last().expect("a BoxPath is never empty");
    let mut dir = rustix::io::dup(root)?;
    for part in dirs {
        let made = match rustix::fs::mkdirat(&dir, part.as_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) => true,
            Err(rustix::io::Errno::EXIST) => false,
            Err(err) => return Err(err.into()),
        };
        dir = open_dir(&dir, part)?;
        if made {
            // The program may add files below what a request made; the
            // server's umask must not decide that.
            rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o777))?;
        }
    }
    Ok((dir, last))
}

/// Which copy-in step failed (go-judge reports each with its own type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyInStep {
    /// Making or opening a directory above the file.
    Dir,
    /// Creating the file (it must not exist yet).
    Create,
    /// Filling it.
    Copy,
}

/// Failure of a copy-in step.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CopyInFailure {
    /// The step that failed.
    pub step: CopyInStep,
    /// Why.
    #[source]
    pub error: std::io::Error,
}

/// Creates `path` in the box (it must not exist yet) and fills it from
/// `source`. Files are 0755 as go-judge makes them (0777 less the usual
/// umask): programs compiled in one run are run from the file store in
/// the next.
pub fn copy_in(root: &OwnedFd, path: &BoxPath, source: &mut dyn Read) -> Result<(), CopyInFailure> {
    let (dir, name) = parent_of(root, path).map_err(|error| CopyInFailure {
        step: CopyInStep::Dir,
        error,
    })?;
    let file = rustix::fs::openat2(
        &dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o755),
        resolve(),
    )
    .map_err(|err| CopyInFailure {
        step: CopyInStep::Create,
        error: err.into(),
    })?;
    let mut file = File::from(file);
    rustix::fs::fchmod(&file, Mode::from_raw_mode(0o755)).map_err(|err| CopyInFailure {
        step: CopyInStep::Create,
        error: err.into(),
    })?;
    std::io::copy(source, &mut file).map_err(|error| CopyInFailure {
        step: CopyInStep::Copy,
        error,
    })?;
    Ok(())
}

/// Makes a symbolic link at `path` pointing to `target`. The target is
/// only ever followed by the program, inside its box: the server never
/// follows a link.
pub fn symlink(root: &OwnedFd, path: &BoxPath, target: &str) -> std::io::Result<()> {
    let (dir, name) = parent_of(root, path)?;
    rustix::fs::symlinkat(target, &dir, name)?;
    Ok(())
}

/// Why a copy-out failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyOutFailure {
    /// Missing, a link, a name that climbs out, or unreadable.
    #[error("{0}")]
    Open(#[source] std::io::Error),
    /// A directory, FIFO, device or socket.
    #[error("not a regular file")]
    NotRegular,
    /// Larger than the limit (size found).
    #[error("larger than the limit ({0} bytes or more)")]
    TooLarge(u64),
    /// Reading failed midway.
    #[error("reading failed: {0}")]
    Read(#[source] std::io::Error),
}

/// Reads the regular file at `path` in the box, at most `max` bytes. With
/// `truncate`, a larger file gives its first `max` bytes and `true`.
pub fn copy_out(
    root: &OwnedFd,
    path: &BoxPath,
    max: u64,
    truncate: bool,
) -> Result<(Vec<u8>, bool), CopyOutFailure> {
    let joined = path.parts.join("/");
    // NONBLOCK: opening a FIFO the program left must not wait for a writer.
    let fd = rustix::fs::openat2(
        root,
        joined.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        resolve(),
    )
    .map_err(|err| CopyOutFailure::Open(err.into()))?;
    let stat = rustix::fs::fstat(&fd).map_err(|err| CopyOutFailure::Open(err.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(CopyOutFailure::NotRegular);
    }
    let size = stat.st_size.max(0) as u64;
    if size > max && !truncate {
        return Err(CopyOutFailure::TooLarge(size));
    }
    let mut data = Vec::with_capacity(size.min(max) as usize);
    // One byte past the limit tells a file that grew since the stat.
    File::from(fd)
        .take(max.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(CopyOutFailure::Read)?;
    if data.len() as u64 > max {
        if !truncate {
            return Err(CopyOutFailure::TooLarge(data.len() as u64));
        }
        data.truncate(max as usize);
        return Ok((data, true));
    }
    Ok((data, size > max))
}

/// Whether the box holds an executable regular file `name` at its top
/// (not through a link): go-judge runs such a file before looking in
/// `PATH`, and clients run what they compiled as just `foo`.
pub fn is_box_executable(root: &OwnedFd, name: &str) -> bool {
    let Ok(fd) = rustix::fs::openat2(
        root,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        resolve(),
    ) else {
        return false;
    };
    rustix::fs::fstat(&fd).is_ok_and(|stat| {
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile
            && stat.st_mode & 0o111 != 0
    })
}

/// Whether an error means "not there" (for optional copy-outs).
pub fn is_missing(error: &std::io::Error) -> bool {
    error.kind() == ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_box() {
        assert_eq!(BoxPath::parse("a/./b").unwrap().parts, ["a", "b"]);
        assert_eq!(BoxPath::parse("/w/out").unwrap().parts, ["out"]);
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "/w",
            "",
            "/wx/y",
            "a\0b",
        ] {
            assert!(BoxPath::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn links_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("file")).unwrap();
        let root = open_box(dir.path()).unwrap();
        for name in ["link/secret", "file"] {
            let path = BoxPath::parse(name).unwrap();
            assert!(matches!(
                copy_out(&root, &path, 100, false),
                Err(CopyOutFailure::Open(_))
            ));
        }
        let path = BoxPath::parse("link/new").unwrap();
        assert!(copy_in(&root, &path, &mut "x".as_bytes()).is_err());
        assert!(!outside.path().join("new").exists());
        let path = BoxPath::parse("file").unwrap();
        assert!(copy_in(&root, &path, &mut "x".as_bytes()).is_err());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("secret")).unwrap(),
            "s"
        );
    }

    #[test]
    fn copy_out_limits_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), "0123456789").unwrap();
        let root = open_box(dir.path()).unwrap();
        let path = BoxPath::parse("big").unwrap();
        assert!(matches!(
            copy_out(&root, &path, 4, false),
            Err(CopyOutFailure::TooLarge(10))
        ));
        assert_eq!(
            copy_out(&root, &path, 4, true).unwrap(),
            (b"0123".to_vec(), true)
        );
        assert_eq!(
            copy_out(&root, &path, 10, false).unwrap(),
            (b"0123456789".to_vec(), false)
        );
        let sub = BoxPath::parse("d/e/f").unwrap();
        copy_in(&root, &sub, &mut "hi".as_bytes()).unwrap();
        assert!(matches!(
            copy_out(&root, &BoxPath::parse("d").unwrap(), 4, false),
            Err(CopyOutFailure::NotRegular)
        ));
    }
}
