//! The child side of a run: everything between `clone` and `execve`.

/// Errors of setting up the jail on the keeper side.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// A string handed to `execve` contains a NUL byte.
    #[error("{0} contains a NUL byte")]
    NulByte(String),
    /// A system call failed.
    #[error("{call}: {source}")]
    Syscall {
        /// The call.
        call: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
