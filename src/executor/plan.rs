//! What the next box will be, decided before anything is cloned: its
//! environment, paths, rlimits, namespaces, filesystem and filter, all in
//! one [`JailSpec`].

use std::os::fd::AsRawFd;
use std::path::Path;

use super::ProcessExecutor;
use crate::dirs;
use crate::error::{IsolateError, Result};
use crate::jail::{self, JailError, JailSpec, MountPlan, Rlimits, RunPaths, TmpfsSizes};

/// The next run's jail, and what the verdict needs to know of it.
pub(super) struct Plan {
    pub(super) spec: JailSpec,
    /// A seccomp filter is installed (so SIGSYS means a refused call).
    pub(super) seccomp: bool,
}

impl ProcessExecutor {
    /// Prepares a run of `command`; `has_cgroup` says whether the run has
    /// a cgroup of its own (else rlimits stand in for its limits).
    pub(super) fn plan(&self, command: &[String], has_cgroup: bool) -> Result<Plan> {
        let isolation = self.isolation()?;
        let in_box = isolation.mounts.is_some();
        self.plan_with(command, has_cgroup, isolation, in_box)
    }

    /// Like [`plan`](Self::plan) with the isolation given (a warm box's
    /// runs take theirs from the box); `in_box` says the program sees its
    /// working directory at the box's mount point.
    pub(super) fn plan_with(
        &self,
        command: &[String],
        has_cgroup: bool,
        isolation: jail::Isolation,
        in_box: bool,
    ) -> Result<Plan> {
        let mut environment = self.config.environment.clone();
        if !environment.iter().any(|(name, _)| name == "PATH") {
            environment.push(("PATH".into(), crate::config::DEFAULT_PATH.into()));
        }
        let seccomp = isolation.seccomp.is_some();
        let (box_dir, cwd) = if in_box {
            (
                Path::new(crate::config::BOX_MOUNT_POINT),
                self.config.inner_workdir.as_path(),
            )
        } else {
            let workdir = self.workdir_path();
            (workdir, workdir)
        };
        let paths = RunPaths {
            box_dir,
            cwd,
            stdio_files: self.stdio_files(),
            stderr_to_stdout: self.config.stderr_to_stdout,
            inherit_fds: self.config.inherit_fds,
            keep_terminal: self.config.keep_terminal,
            search_path: crate::config::search_path(&environment),
        };
        let rlimits = Rlimits::new(&rlimit_request(&self.config), has_cgroup);
        let spec = JailSpec::new(
            command,
            &environment,
            &paths,
            rlimits,
            self.credentials,
            isolation,
        )?;
        Ok(Plan { spec, seccomp })
    }

    /// Files opened as the program's stdin, stdout and stderr, if any.
    pub(super) fn stdio_files(&self) -> [Option<&Path>; 3] {
        [
            self.config.stdin_file.as_deref(),
            self.config.stdout_file.as_deref(),
            self.config.stderr_file.as_deref(),
        ]
    }

    /// Namespaces, filesystem and seccomp filter of the next run.
    fn isolation(&self) -> Result<jail::Isolation> {
        let cpu_affinity = self
            .config
            .cpu_affinity
            .as_ref()
            .map(|cpus| {
                cpus.mask().ok_or_else(|| {
                    IsolateError::Config(format!(
                        "cpu_affinity {cpus}: a CPU beyond the {} an affinity mask holds",
                        rustix::thread::CpuSet::MAX_CPU
                    ))
                })
            })
            .transpose()?;
        if !self.namespaces {
            return Ok(jail::Isolation {
                seccomp: self.seccomp.clone(),
                cpu_affinity,
                ..jail::Isolation::default()
            });
        }
        // The box joins the executor's own empty network namespace, or
        // (with share_net) stays in the host's; a box in a user namespace,
        // or one whose executor has not made its namespace yet, makes its
        // own (unless it shares the host's).
        let mut namespaces = jail::namespaces::BOX_NAMESPACES & !(libc::CLONE_NEWNET as u64);
        if self.network_pending {
            namespaces |= libc::CLONE_NEWNET as u64;
        }
        if self.user_namespace.is_some() {
            namespaces |= libc::CLONE_NEWUSER as u64;
            if !self.config.share_net {
                namespaces |= libc::CLONE_NEWNET as u64;
            }
        }
        // Relative sources follow isolate: the directory holding the box.
        // A temporary workdir has no meaningful parent, so there they are
        // refused rather than looked up in the temporary directory.
        let base = if self.config.workdir.as_os_str().is_empty() {
            None
        } else {
            std::path::absolute(&self.config.workdir)
                .ok()
                .and_then(|path| path.parent().map(Path::to_path_buf))
        };
        let rules = dirs::effective_rules(
            self.config.default_dirs,
            &self.config.dir_rules,
            base.as_deref(),
        )
        .map_err(|err| IsolateError::Config(err.to_string()))?;
        // Without a memory cgroup, tmpfs pages and the IPC namespace's pools
        // are memory no rlimit sees: each is kept within the limit.
        let rlimit_memory = self.config.rlimit_only_memory(self.cgroup.is_some());
        let cap = |size: u64| rlimit_memory.map_or(size, |bytes| size.min(bytes));
        let sizes = TmpfsSizes {
            tmp: cap(self.config.tmp_size),
            shm: cap(self.config.shm_size),
        };
        let workdir = &self
            .workdir
            .as_ref()
            .expect("the workdir is set up before a run")
            .dir;
        // A spare box's directory comes when it is given its box.
        let workdir = (!self.builds_spare).then_some(workdir);
        let mounts =
            MountPlan::new_in(&rules, workdir, sizes, &self.new_root).map_err(|err| match err {
                JailError::MissingSource { .. } | JailError::UnsafeSource { .. } => {
                    IsolateError::Config(err.to_string())
                }
                other => other.into(),
            })?;
        Ok(jail::Isolation {
            namespaces,
            mounts: Some(mounts),
            seccomp: self.seccomp.clone(),
            network_namespace: self.network.as_ref().map(AsRawFd::as_raw_fd),
            // A box in a user namespace may not write its IPC sysctls: the
            // filter refuses the segments and queues they would bound.
            ipc_limits: rlimit_memory
                .filter(|_| self.user_namespace.is_none())
                .map(jail::ipc::IpcLimits::for_memory),
            cpu_affinity,
        })
    }

    /// The working directory on the host (after the first setup).
    fn workdir_path(&self) -> &Path {
        self.workdir
            .as_ref()
            .map_or(self.config.workdir.as_path(), |workdir| {
                workdir.dir.path.as_path()
            })
    }
}

/// What the configuration asks of the box's rlimits.
fn rlimit_request(config: &crate::config::IsolateConfig) -> jail::RlimitRequest {
    jail::RlimitRequest {
        core: config.core_limit,
        file_size: config.file_size_limit,
        stack: config.stack_limit,
        open_files: config.open_files_limit,
        address_space: config.address_space_limit,
        data_segment: config.data_segment_limit,
        memory: config.memory_limit,
        cpu_kill: config.cpu_kill_threshold(),
        processes: config.process_limit,
    }
}
