//! The status pipe between the box and the keeper.
//!
//! The proxy and the inmate write fixed-size records into a close-on-exec
//! pipe: a failed setup step or `execve` becomes a record instead of a hang,
//! and the proxy reports how the inmate ended. Records are smaller than
//! `PIPE_BUF`, so each write is atomic.

use std::io::Read;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use crate::sys::Rusage;

/// The step of the child-side setup that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    /// Waiting for the keeper's go-ahead.
    WaitForKeeper = 1,
    /// Wiring the box's stdin, stdout and stderr.
    Stdio,
    /// Making mounts private to the box.
    Mounts,
    /// Naming the box's UTS namespace.
    Hostname,
    /// Forking the inmate from the proxy.
    ForkInmate,
    /// Resetting signal dispositions and the signal mask.
    Signals,
    /// Entering the working directory.
    Chdir,
    /// Setting resource limits.
    Rlimits,
    /// Dropping to the box's uid and gid.
    Credentials,
    /// Executing the program.
    Exec,
    /// Building the box's filesystem and pivoting into it.
    Filesystem,
    /// Dropping capabilities and setting no_new_privs.
    Capabilities,
    /// Installing the seccomp filter.
    Seccomp,
    /// Joining the box's network namespace.
    Network,
    /// Sizing the IPC namespace's pools from the memory limit.
    IpcLimits,
    /// Starting the box's own session.
    Session,
    /// Joining the run's cgroup (cgroup v1).
    Cgroup,
    /// Placing the box on its CPUs.
    Affinity,
}

impl Stage {
    fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::WaitForKeeper,
            2 => Self::Stdio,
            3 => Self::Mounts,
            4 => Self::Hostname,
            5 => Self::ForkInmate,
            6 => Self::Signals,
            7 => Self::Chdir,
            8 => Self::Rlimits,
            9 => Self::Credentials,
            10 => Self::Exec,
            11 => Self::Filesystem,
            12 => Self::Capabilities,
            13 => Self::Seccomp,
            14 => Self::Network,
            15 => Self::IpcLimits,
            16 => Self::Session,
            17 => Self::Cgroup,
            18 => Self::Affinity,
            _ => return None,
        })
    }

    /// What the step does, for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::WaitForKeeper => "waiting for the keeper",
            Self::Stdio => "setting up stdio",
            Self::Mounts => "making mounts private",
            Self::Hostname => "setting the hostname",
            Self::ForkInmate => "forking the program",
            Self::Signals => "resetting signals",
            Self::Chdir => "entering the working directory",
            Self::Rlimits => "setting resource limits",
            Self::Credentials => "dropping privileges",
            Self::Exec => "exec",
            Self::Filesystem => "setting up the filesystem",
            Self::Capabilities => "dropping capabilities",
            Self::Seccomp => "installing the seccomp filter",
            Self::Network => "joining the network namespace",
            Self::IpcLimits => "sizing the IPC namespace",
            Self::Session => "starting a new session",
            Self::Cgroup => "joining the run's cgroup",
            Self::Affinity => "placing the box on its CPUs",
        }
    }
}

/// What the box told the keeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildReport {
    /// A setup step (or `execve`) failed with `errno`.
    SetupFailed {
        /// The step.
        stage: Stage,
        /// The error number.
        errno: i32,
        /// Which part of the step (for the filesystem: the mount step).
        detail: u32,
    },
    /// The inmate ended; the proxy reaped it.
    InmateExited {
        /// Raw wait status.
        wait_status: i32,
        /// Its rusage (and that of the children it waited for).
        rusage: Rusage,
    },
}

const KIND_SETUP_FAILED: u32 = 1;
const KIND_INMATE_EXITED: u32 = 2;

/// The record as it travels through the pipe.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct RawReport {
    kind: u32,
    stage: u32,
    errno: i32,
    wait_status: i32,
    detail: u32,
    user_us: u64,
    system_us: u64,
    max_rss: u64,
    voluntary_switches: u64,
    involuntary_switches: u64,
}

const RECORD_SIZE: usize = std::mem::size_of::<RawReport>();

impl RawReport {
    pub(crate) fn setup_failed(stage: Stage, errno: i32, detail: u32) -> Self {
        Self {
            kind: KIND_SETUP_FAILED,
            stage: stage as u32,
            errno,
            detail,
            ..Self::default()
        }
    }

    pub(crate) fn inmate_exited(wait_status: i32, raw: &libc::rusage) -> Self {
        let micros = |tv: libc::timeval| (tv.tv_sec as u64) * 1_000_000 + tv.tv_usec as u64;
        Self {
            kind: KIND_INMATE_EXITED,
            wait_status,
            user_us: micros(raw.ru_utime),
            system_us: micros(raw.ru_stime),
            max_rss: (raw.ru_maxrss as u64) * 1024,
            voluntary_switches: raw.ru_nvcsw as u64,
            involuntary_switches: raw.ru_nivcsw as u64,
            ..Self::default()
        }
    }

    /// Child side: one `write`, no allocation. Errors are ignored because the
    /// child has no one else to tell; the keeper then sees no record and
    /// reports an internal error.
    pub(crate) fn send(&self, fd: RawFd) {
        // SAFETY: `self` is a plain repr(C) value readable for RECORD_SIZE
        // bytes; write(2) is async-signal-safe.
        unsafe {
            libc::write(fd, (self as *const Self).cast(), RECORD_SIZE);
        }
    }

    fn decode(bytes: &[u8; RECORD_SIZE]) -> Option<ChildReport> {
        // SAFETY: RawReport is repr(C) made only of integers, so every bit
        // pattern is a valid value; read_unaligned copes with the buffer's
        // alignment.
        let raw: RawReport = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        match raw.kind {
            KIND_SETUP_FAILED => Some(ChildReport::SetupFailed {
                stage: Stage::from_raw(raw.stage)?,
                errno: raw.errno,
                detail: raw.detail,
            }),
            KIND_INMATE_EXITED => Some(ChildReport::InmateExited {
                wait_status: raw.wait_status,
                rusage: Rusage {
                    user: Duration::from_micros(raw.user_us),
                    system: Duration::from_micros(raw.system_us),
                    max_rss: raw.max_rss,
                    voluntary_switches: raw.voluntary_switches,
                    involuntary_switches: raw.involuntary_switches,
                },
            }),
            _ => None,
        }
    }
}

/// Keeper side: reads every record once the box is gone (all write ends
/// closed, so this never blocks for long).
pub(crate) fn read_reports(read_end: OwnedFd) -> std::io::Result<Vec<ChildReport>> {
    let mut bytes = Vec::new();
    std::fs::File::from(read_end).read_to_end(&mut bytes)?;
    Ok(bytes
        .chunks_exact(RECORD_SIZE)
        .filter_map(|chunk| RawReport::decode(chunk.try_into().ok()?))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn records_survive_the_pipe() {
        let (read, write) = crate::sys::pipe().unwrap();
        RawReport::setup_failed(Stage::Exec, libc::ENOENT, 4).send(write.as_raw_fd());
        // SAFETY: rusage is plain old data; zero is valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        usage.ru_utime.tv_sec = 1;
        usage.ru_stime.tv_usec = 250_000;
        usage.ru_maxrss = 2048;
        usage.ru_nvcsw = 7;
        RawReport::inmate_exited(3 << 8, &usage).send(write.as_raw_fd());
        drop(write);
        let reports = read_reports(read).unwrap();
        assert_eq!(
            reports[0],
            ChildReport::SetupFailed {
                stage: Stage::Exec,
                errno: libc::ENOENT,
                detail: 4,
            }
        );
        let ChildReport::InmateExited {
            wait_status,
            rusage,
        } = reports[1]
        else {
            panic!("expected an exit report, got {:?}", reports[1]);
        };
        assert_eq!(wait_status, 3 << 8);
        assert_eq!(rusage.cpu_time(), Duration::from_millis(1250));
        assert_eq!(rusage.max_rss, 2048 * 1024);
        assert_eq!(rusage.voluntary_switches, 7);
    }
}
