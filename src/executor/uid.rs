//! The one-shot uid claim: a run that names no uid gets one of
//! [`ONE_SHOT_UIDS`](crate::config::ONE_SHOT_UIDS) that no other live
//! executor holds.

use std::fs::File;
use std::path::Path;

use crate::config::IsolateConfig;
use crate::error::{IsolateError, Result};
use crate::jail::Credentials;

/// Who the box runs as: the configured uid (and gid, else the keeper's),
/// or, when none is named, a uid claimed for the executor's life (gid the
/// same number unless one is named). Without root the box runs as the
/// caller.
pub(super) fn box_credentials(
    config: &IsolateConfig,
    root: bool,
) -> Result<(Option<Credentials>, Option<UidClaim>)> {
    if !root {
        if config.uid.is_some() || config.gid.is_some() {
            tracing::warn!("not root: running as the caller, not as the configured uid/gid");
        }
        return Ok((None, None));
    }
    if let Some(uid) = config.uid {
        let gid = config.gid.unwrap_or(current_gid());
        return Ok((Some(Credentials { uid, gid }), None));
    }
    let claim = UidClaim::take()?;
    let credentials = Credentials {
        uid: claim.uid,
        gid: config.gid.unwrap_or(claim.uid),
    };
    Ok((Some(credentials), Some(claim)))
}

/// The keeper's own gid, read without unsafe: /proc/self belongs to us.
fn current_gid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |meta| meta.gid())
}

/// A uid of [`ONE_SHOT_UIDS`](crate::config::ONE_SHOT_UIDS) that no other
/// live executor holds: an exclusive `flock` on
/// `<UID_CLAIM_DIR>/<uid>`, released when dropped or, if the process dies,
/// by the kernel. `flock` locks belong to the open file, so two executors
/// of one process exclude each other too.
#[derive(Debug)]
pub(super) struct UidClaim {
    pub(super) uid: u32,
    _lock: File,
}

impl UidClaim {
    pub(super) fn take() -> Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let range = crate::config::ONE_SHOT_UIDS;
        let dir = Path::new(crate::config::UID_CLAIM_DIR);
        let failed = |what: &str| {
            let what = format!("{what} {}", dir.display());
            move |source| IsolateError::io(what, source)
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(failed("creating"))?;
        // Anyone who could write here could hold every uid, or plant links.
        let meta = std::fs::symlink_metadata(dir).map_err(failed("checking"))?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(IsolateError::Config(format!(
                "{} must be a directory only root can write",
                dir.display()
            )));
        }
        let count = range.end - range.start;
        // Start somewhere else in each process, so that concurrent
        // executors seldom try the same files.
        let first = std::process::id().wrapping_mul(2_654_435_761) % count;
        for step in 0..count {
            let uid = range.start + (first + step) % count;
            let path = dir.join(uid.to_string());
            let file = crate::sys::open_lock_file(&path).map_err(|source| {
                IsolateError::io(format!("opening {}", path.display()), source)
            })?;
            match file.try_lock() {
                Ok(()) => return Ok(Self { uid, _lock: file }),
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(IsolateError::io(
                        format!("locking {}", path.display()),
                        source,
                    ))
                }
            }
        }
        Err(IsolateError::Config(format!(
            "every uid of {}..{} is held by a live run",
            range.start, range.end
        )))
    }
}
