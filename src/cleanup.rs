//! Removing a directory tree that a hostile program built.
//!
//! `std::fs::remove_dir_all` recurses once per level and holds a descriptor
//! per level, so a program that nests directories for a second overflows
//! the keeper's stack or runs out of descriptors. [`remove_tree`] walks
//! the tree with one open directory at a time and no recursion: it
//! descends into the first non-empty subdirectory it finds and climbs back
//! with `..` once a directory is empty. Nothing is followed: symlinks are
//! unlinked, directories are opened with `O_NOFOLLOW`, and the walk never
//! leaves the tree (`..` of a directory we entered from its parent is that
//! parent, as nothing else changes the tree while the box is dead).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, Mode, OFlags, CWD};
use rustix::io::Errno;

fn open_directory(at: impl rustix::fd::AsFd, name: &CStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(at, name, flags, Mode::empty())?)
}

/// Removes every non-directory of `dir`, and every empty subdirectory;
/// returns the name of a subdirectory that still has content, if any.
fn clear_level(dir: &OwnedFd) -> io::Result<Option<CString>> {
    let mut pending = None;
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => continue,
            // Linux answers EISDIR for a directory.
            Err(Errno::ISDIR) | Err(Errno::PERM) => {}
            Err(err) => return Err(err.into()),
        }
        match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => {
                pending.get_or_insert_with(|| name.to_owned());
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(pending)
}

/// Removes `root` and everything below it, however deep, with at most two
/// descriptors open. A missing `root` is not an error; a `root` that is not
/// a directory is unlinked.
pub fn remove_tree(root: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(root) {
        Ok(meta) if !meta.is_dir() => return std::fs::remove_file(root),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    }
    use std::os::unix::ffi::OsStrExt;
    let c_root = CString::new(root.as_os_str().as_bytes())?;
    let mut current = open_directory(CWD, &c_root)?;
    let mut depth = 0usize;
    loop {
        match clear_level(&current)? {
            Some(child) => {
                current = open_directory(&current, &child)?;
                depth += 1;
            }
            None if depth == 0 => break,
            None => {
                // Empty now: climb, and the parent's next pass removes it.
                current = open_directory(&current, c"..")?;
                depth -= 1;
            }
        }
    }
    drop(current);
    std::fs::remove_dir(root)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
