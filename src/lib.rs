//! isobox runs untrusted programs on Linux with hard limits, isolated from
//! the host, measures what they used and says what happened.
//!
//! ```
//! use std::time::Duration;
//! use isobox::{ExecutionStatus, IsolateConfig, ProcessExecutor};
//!
//! let config = IsolateConfig {
//!     time_limit: Some(Duration::from_secs(1)),
//!     wall_time_limit: Some(Duration::from_secs(3)),
//!     memory_limit: Some(256 << 20),
//!     process_limit: Some(16),
//!     ..IsolateConfig::default()
//! };
//! let mut executor = ProcessExecutor::new(config)?;
//! let command = ["/bin/echo".to_string(), "hello".to_string()];
//! let result = executor.execute(&command, None)?;
//! assert_eq!(result.status, ExecutionStatus::Success);
//! assert_eq!(result.stdout, "hello\n");
//! executor.cleanup()?;
//! # Ok::<(), isobox::IsolateError>(())
//! ```

pub mod boxes;
pub mod cgroup;
pub mod config;
pub mod confine;
pub mod cpus;
pub mod dirs;
pub mod error;
pub mod executor;
pub mod fstree;
mod jail;
pub mod pool;
pub mod result;
pub mod sys;

pub use cgroup::{CgroupController, CgroupError, CgroupVersion};
pub use config::IsolateConfig;
pub use error::{IsolateError, Result};
pub use executor::{OutsideEvent, ProcessExecutor, SpareBox, Stdin};
pub use jail::{JailError, SeccompError};
pub use result::{ExecutionResult, ExecutionStatus, KillReason, Protection};
