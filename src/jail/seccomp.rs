//! The system-call filter of the inmate.
//!
//! The policy is data: `policy/seccomp-default.json`, in seccompiler's JSON
//! format (named filters, each with a match and a mismatch action), compiled
//! when the executor is created. A policy file in the same format extends it:
//! its filters are installed after the default ones, and the kernel applies
//! the strictest answer of all filters to every call.
//!
//! Two checks no JSON rule can express are added in front of the first
//! filter: the i386 entry (`int $0x80`, a different audit arch) and x32
//! system-call numbers (bit 30 set) kill the process, since no EPERM would
//! be meaningful for a call whose number means something else there.

use std::path::Path;

use seccompiler::{sock_filter, BpfProgram, TargetArch};

/// The default policy, embedded so the binary needs no data files.
pub const DEFAULT_POLICY: &str = include_str!("../../policy/seccomp-default.json");

/// Errors of building a policy.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The policy file cannot be read.
    #[error("seccomp policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The policy does not compile.
    #[error("seccomp policy {origin}: {reason}")]
    Compile {
        /// Which policy.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

/// x32 system calls are the x86_64 numbers with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const SECCOMP_DATA_NR_OFFSET: u32 = 0;
// Classic BPF opcodes (linux/bpf_common.h): BPF_LD|BPF_W|BPF_ABS,
// BPF_JMP|BPF_JGE|BPF_K and BPF_RET|BPF_K.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;

/// Kills the process for an x32 system call, before any other rule runs.
fn x32_guard() -> [sock_filter; 3] {
    [
        sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: SECCOMP_DATA_NR_OFFSET,
        },
        sock_filter {
            code: BPF_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_KILL_PROCESS,
        },
    ]
}

/// Compiled filters, ready to install between fork and exec.
#[derive(Debug, Clone)]
pub struct SeccompPolicy {
    programs: Vec<BpfProgram>,
}

fn compile(json: &str, origin: &str) -> Result<Vec<BpfProgram>, SeccompError> {
    let arch = TargetArch::x86_64;
    let map = seccompiler::compile_from_json(json.as_bytes(), arch).map_err(|err| {
        SeccompError::Compile {
            origin: origin.to_string(),
            reason: err.to_string(),
        }
    })?;
    // Sorted by filter name so the order of installation is stable.
    let mut named: Vec<_> = map.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named.into_iter().map(|(_, program)| program).collect())
}

impl SeccompPolicy {
    /// The default policy, extended by the policy file `extension` if given.
    pub fn new(extension: Option<&Path>) -> Result<Self, SeccompError> {
        if !cfg!(target_arch = "x86_64") {
            return Err(SeccompError::Compile {
                origin: "default".into(),
                reason: "only x86_64 is supported".into(),
            });
        }
        let mut programs = compile(DEFAULT_POLICY, "default")?;
        if let Some(path) = extension {
            let text = std::fs::read_to_string(path).map_err(|source| SeccompError::Read {
                path: path.display().to_string(),
                source,
            })?;
            programs.extend(compile(&text, &path.display().to_string())?);
        }
        if let Some(first) = programs.first_mut() {
            first.splice(0..0, x32_guard());
        }
        Ok(Self { programs })
    }

    /// Child side: installs every filter. `no_new_privs` must already be
    /// set. Returns the errno of a failed installation.
    ///
    /// # Safety
    /// Only async-signal-safe calls; meant for the time between fork and exec.
    pub(crate) unsafe fn install(&self) -> Result<(), i32> {
        for program in &self.programs {
            let prog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: `prog` points at a live, well-formed BPF program for
            // the duration of the call; the kernel copies it.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &prog as *const libc::sock_fprog,
                )
            };
            if ret != 0 {
                // SAFETY: errno location is thread-local and always valid.
                return Err(unsafe { *libc::__errno_location() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_compiles_with_the_x32_guard_first() {
        let policy = SeccompPolicy::new(None).unwrap();
        assert_eq!(policy.programs.len(), 2);
        assert_eq!(policy.programs[0][1].k, X32_SYSCALL_BIT);
        assert_eq!(policy.programs[0][2].k, libc::SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn default_policy_names_every_required_call() {
        for name in [
            "ptrace",
            "process_vm_readv",
            "bpf",
            "keyctl",
            "io_uring_setup",
            "mount",
            "unshare",
            "setns",
            "open_by_handle_at",
            "init_module",
            "reboot",
            "settimeofday",
            "personality",
            "clone3",
            "userfaultfd",
            "perf_event_open",
        ] {
            assert!(
                DEFAULT_POLICY.contains(&format!("\"{name}\"")),
                "{name} missing from the default policy"
            );
        }
    }

    #[test]
    fn extension_file_adds_filters_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("extra.json");
        std::fs::write(
            &good,
            r#"{"no_chmod":{"mismatch_action":"allow","match_action":{"errno":1},"filter":[{"syscall":"chmod"}]}}"#,
        )
        .unwrap();
        assert_eq!(SeccompPolicy::new(Some(&good)).unwrap().programs.len(), 3);

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"x":{"mismatch_action":"allow","match_action":"allow","filter":[{"syscall":"no_such_call"}]}}"#).unwrap();
        let err = SeccompPolicy::new(Some(&bad)).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
        let missing = SeccompPolicy::new(Some(Path::new("/nonexistent.json"))).unwrap_err();
        assert!(matches!(missing, SeccompError::Read { .. }));
    }
}
