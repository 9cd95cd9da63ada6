//! The library's working directory (the box's `/box`): made with an
//! unpredictable name or opened without following links, then changed and
//! restored only through its descriptor.

use std::path::Path;

use crate::error::{IsolateError, Result};
use crate::jail::Credentials;
use crate::sys;

/// The working directory as the keeper holds it: a descriptor opened
/// without following links, through which it is changed and restored.
#[derive(Debug)]
pub(super) struct Workdir {
    pub(super) dir: sys::HostPath,
    /// Made by this executor (and so removed by its cleanup).
    created: bool,
    /// Owner, group and mode before the run, put back after it.
    saved: Option<(u32, u32, u32)>,
}

impl Workdir {
    /// Opens the working directory, creating it when needed: a fresh
    /// directory with an unpredictable name (`mkdtemp`) when `configured`
    /// is empty, else the configured path, which is created if missing and
    /// never followed if it is a symbolic link.
    pub(super) fn open(configured: &Path) -> Result<Self> {
        let open = sys::Resolve {
            follow_last: false,
            create: true,
            open_last: true,
        };
        let failed = |path: &Path| {
            let context = format!("opening the working directory {}", path.display());
            move |source| IsolateError::io(context, source)
        };
        if configured.as_os_str().is_empty() {
            let parent = std::env::temp_dir();
            let made = tempfile::Builder::new()
                .prefix("isobox-")
                .tempdir_in(&parent)
                .map_err(failed(&parent))?;
            let dir = sys::resolve_host_path(made.path(), open).map_err(failed(made.path()))?;
            // From here on the executor's cleanup removes it.
            let _ = made.keep();
            return Ok(Self {
                dir,
                created: true,
                saved: None,
            });
        }
        let path = std::path::absolute(configured).map_err(failed(configured))?;
        let dir = sys::resolve_host_path(&path, open).map_err(failed(&path))?;
        Ok(Self {
            created: dir.created,
            dir,
            saved: None,
        })
    }

    /// Makes the directory 0755 and hands it to the box's user, through
    /// its descriptor; [`restore_owner`](Self::restore_owner) undoes both.
    pub(super) fn hand_over(&mut self, credentials: Option<Credentials>) -> Result<()> {
        use rustix::fs::{Gid, Mode, Uid};
        let context = |what: &str| format!("{what} {}", self.dir.path.display());
        let stat = rustix::fs::fstat(&self.dir.fd)
            .map_err(|err| IsolateError::io(context("stat"), err.into()))?;
        if self.created && stat.st_uid != sys::effective_uid() {
            return Err(IsolateError::Config(format!(
                "{} was replaced by someone else's directory",
                self.dir.path.display()
            )));
        }
        if self.saved.is_none() {
            self.saved = Some((stat.st_uid, stat.st_gid, stat.st_mode & 0o7777));
        }
        rustix::fs::fchmod(&self.dir.fd, Mode::from_raw_mode(0o755))
            .map_err(|err| IsolateError::io(context("chmod"), err.into()))?;
        if let Some(credentials) = credentials {
            rustix::fs::fchown(
                &self.dir.fd,
                Some(Uid::from_raw(credentials.uid)),
                Some(Gid::from_raw(credentials.gid)),
            )
            .map_err(|err| IsolateError::io(context("chown"), err.into()))?;
        }
        Ok(())
    }

    /// Gives the directory its owner and mode from before the run back,
    /// through its descriptor.
    pub(super) fn restore_owner(&mut self) {
        use rustix::fs::{Gid, Mode, Uid};
        let Some((uid, gid, mode)) = self.saved.take() else {
            return;
        };
        let restored = rustix::fs::fchown(
            &self.dir.fd,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
        )
        .and_then(|()| rustix::fs::fchmod(&self.dir.fd, Mode::from_raw_mode(mode)));
        if let Err(err) = restored {
            tracing::warn!(
                "giving {} back its owner and mode failed: {err}",
                self.dir.path.display()
            );
        }
    }

    /// Removes the directory when this executor made it (whatever the
    /// program left in it, without following links); leaves it otherwise.
    pub(super) fn remove_if_created(self) -> Result<()> {
        if !self.created {
            return Ok(());
        }
        let path = self.dir.path;
        drop(self.dir.fd);
        crate::fstree::remove_tree(&path)
            .map_err(|source| IsolateError::io(format!("removing {}", path.display()), source))
    }
}
