//! What went wrong inside the sandbox itself: [`IsolateError`], which wraps
//! the errors of the lower layers (cgroup, jail, seccomp policy), and the
//! library's [`Result`].
//!
//! It sits above `cgroup` and `jail` (it names their errors) and below the
//! executor and everything that reports to a caller.

use crate::cgroup::CgroupError;
use crate::jail::{JailError, SeccompError};

/// Errors of the sandbox itself (not of the program it runs).
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// The configuration or the request cannot be carried out.
    #[error("configuration error: {0}")]
    Config(String),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The seccomp policy cannot be read or compiled (a configuration
    /// error, reported as one).
    #[error("configuration error: {0}")]
    Seccomp(#[from] SeccompError),
    /// Setting up the jail failed on the keeper side.
    #[error(transparent)]
    Jail(#[from] JailError),
    /// An I/O operation of the keeper failed.
    #[error("{context}: {source}")]
    Io {
        /// What the keeper was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl IsolateError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result type of the library.
pub type Result<T, E = IsolateError> = std::result::Result<T, E>;
