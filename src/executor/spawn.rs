//! One run, from the keeper's side: a fresh cgroup with the run's limits,
//! the pipes, the proxy cloned into its namespaces (on v2 directly into
//! the cgroup, on v1 joining it as its first step), recorded and released with the
//! go-ahead, watched to its end, reaped, and its reports read into
//! [`RunFacts`].

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use super::verdict::{ProgramEnd, RunFacts};
use super::watch::Streams;
use super::{ProcessExecutor, Stdin};
use crate::cgroup::{CgroupController, CgroupLimits, CgroupUsage};
use crate::error::{IsolateError, Result};
use crate::jail::{self, BoxFds, CgroupEntry, ChildReport, JailSpec, Stage};
use crate::sys::{self, Rusage};

/// The box's ends of its pipes, held until the box has its own copies.
pub(super) struct BoxEnds {
    pub(super) stdin: OwnedFd,
    pub(super) stdout: OwnedFd,
    pub(super) stderr: OwnedFd,
    pub(super) report: OwnedFd,
    go: OwnedFd,
}

impl BoxEnds {
    fn fds(&self) -> BoxFds<'_> {
        BoxFds {
            stdin: self.stdin.as_fd(),
            stdout: self.stdout.as_fd(),
            stderr: self.stderr.as_fd(),
            report: self.report.as_fd(),
            go: self.go.as_fd(),
        }
    }
}

/// The keeper's ends of a run's pipes.
pub(super) struct KeeperEnds {
    pub(super) streams: Streams,
    /// Read end of the status pipe.
    pub(super) report: OwnedFd,
    /// Write end of the go-ahead pipe.
    go: OwnedFd,
}

pub(super) fn io_err(context: &'static str) -> impl FnOnce(std::io::Error) -> IsolateError {
    move |source| IsolateError::io(context, source)
}

/// The cgroup a cold run is measured and limited by.
pub(super) enum RunCgroup {
    /// The executor's own cgroup, fresh: the run is the first thing in it.
    Instance,
    /// A fresh child of the executor's cgroup.
    Child(CgroupController),
    /// None: the executor has no cgroup.
    None,
}

impl ProcessExecutor {
    /// A fresh cgroup for the next run, with its limits, so no peak, OOM
    /// count or limit of an earlier run can show: the executor's own, when
    /// it was just made and nothing used it yet (an executor used once,
    /// such as `isobox run`'s or a box's cold run, saves a directory made
    /// and removed in every v1 hierarchy); otherwise a child of it.
    pub(super) fn open_run_cgroup(&mut self) -> Result<RunCgroup> {
        let Some(cgroup) = &self.cgroup else {
            return Ok(RunCgroup::None);
        };
        if cgroup.claim_fresh() {
            // Spent from here on, even if the limits cannot be written.
            self.instance_spent = true;
            cgroup.apply_limits(&self.run_limits())?;
            return Ok(RunCgroup::Instance);
        }
        let run = cgroup.create_child(&format!("run-{}", self.runs))?;
        run.apply_limits(&self.run_limits())?;
        Ok(RunCgroup::Child(run))
    }

    /// Replaces an executor cgroup that held a run itself by a new one,
    /// before a run or a warm box uses it: its limits would bound every
    /// cgroup below it.
    pub(super) fn renew_spent_instance(&mut self) -> Result<()> {
        if !self.instance_spent {
            return Ok(());
        }
        if let Some(mut spent) = self.cgroup.take() {
            spent.remove()?;
        }
        self.instance_spent = false;
        self.cgroup = super::place_cgroup(&self.config)?;
        Ok(())
    }

    /// The limits of the next run's cgroup.
    pub(super) fn run_limits(&self) -> CgroupLimits {
        CgroupLimits {
            memory: self.config.memory_limit,
            // The proxy (pid 1 of the box) sits in the cgroup too; the
            // program gets the whole limit.
            pids: self
                .config
                .process_limit
                .map(|count| count.saturating_add(1)),
            // The default weight is what a new cgroup has anyway.
            cpu_shares: (self.config.cpu_shares != crate::config::DEFAULT_CPU_SHARES)
                .then_some(self.config.cpu_shares),
            cpuset_cpus: self.config.cpuset_cpus.clone(),
            cpuset_mems: self.config.cpuset_mems.clone(),
            cpu_bandwidth: self.config.cpu_bandwidth,
        }
    }

    /// The run's memory-only cgroup (see [`super::memory_bound`]), limited
    /// to the memory bound and nothing else, when the executor has one.
    pub(super) fn open_memory_guard(&self) -> Result<Option<CgroupController>> {
        let (Some(guard), Some(bytes)) = (&self.memory_guard, super::memory_bound(&self.config))
        else {
            return Ok(None);
        };
        let run = guard.create_child(&format!("run-{}", self.runs))?;
        run.apply_limits(&CgroupLimits {
            memory: Some(bytes),
            ..CgroupLimits::default()
        })?;
        Ok(Some(run))
    }

    /// What the run's cgroup measured, then the cgroup removed.
    pub(super) fn close_run_cgroup(&self, mut run: CgroupController) -> Result<CgroupUsage> {
        // Read before removal: removing empties the accounting.
        let usage = self.measure(&run);
        run.remove()?;
        usage
    }

    /// What the cgroup `run` measured of the run that ended.
    pub(super) fn measure(&self, run: &CgroupController) -> Result<CgroupUsage> {
        // With a PID namespace the box died with its proxy; without one,
        // stragglers are killed first so they stop consuming.
        let usage = if self.namespaces {
            run.usage()
        } else {
            run.kill_all().and_then(|()| run.usage())
        };
        Ok(usage?)
    }

    /// Starts the box, watches it to its end and collects the raw facts.
    /// The box goes into `cgroup` (which also measures and limits the
    /// run), or else into `guard` (which only bounds its memory).
    pub(super) fn run_in_box(
        &self,
        command: &[String],
        stdin: Stdin,
        cgroup: Option<&CgroupController>,
        guard: Option<&CgroupController>,
    ) -> Result<RunFacts> {
        let plan = self.plan(command, cgroup.is_some())?;
        let (box_ends, keeper) = self.pipes(stdin)?;
        let KeeperEnds {
            mut streams,
            report,
            go,
        } = keeper;
        let start = std::time::Instant::now();
        let proxy = start_box(&plan.spec, box_ends, cgroup.or(guard))?;
        let watched = self.release(&proxy, cgroup.or(guard), go).and_then(|()| {
            let ended = proxy.pidfd.as_fd();
            self.watch(&proxy, ended, cgroup, &mut streams, start)
        });
        let (killed_for, wall, _) = match watched {
            Ok(watched) => watched,
            Err(err) => {
                kill_and_reap(&proxy);
                return Err(err);
            }
        };
        let (proxy_status, proxy_usage) = self.reap(&proxy)?;
        let reports =
            jail::report::read_reports(report).map_err(io_err("reading the box's status"))?;
        let (stdout, stderr) = streams.finish();
        let mut facts = RunFacts {
            killed_for,
            seccomp: plan.seccomp,
            // The proxy reaped every process of the box before it exited,
            // so its children's rusage is the CPU time of the whole run.
            cpu_time: proxy_usage.cpu_time(),
            cpu_kill: self.config.cpu_kill_threshold(),
            file_size_limited: self.config.file_size_limit.is_some(),
            wall,
            stdout,
            stderr,
            ..RunFacts::default()
        };
        self.take_reports(&mut facts, &plan.spec, reports, proxy_status);
        Ok(facts)
    }

    /// The run's pipes (stdin, stdout, stderr, status, go-ahead): the
    /// box's ends and the keeper's.
    pub(super) fn pipes(&self, stdin: Stdin) -> Result<(BoxEnds, KeeperEnds)> {
        let (stdin_box, stdin_keeper) = match stdin {
            Stdin::Null => {
                let null = File::open("/dev/null").map_err(io_err("opening /dev/null"))?;
                let null = sys::above_stdio(OwnedFd::from(null)).map_err(io_err("dup"))?;
                (null, None)
            }
            Stdin::File(file) => (
                sys::dup_for_child(file.as_fd()).map_err(io_err("dup"))?,
                None,
            ),
            Stdin::Bytes(data) => {
                let (read, write) = sys::pipe().map_err(io_err("pipe"))?;
                (read, Some((write, data)))
            }
        };
        let (stdout_keeper, stdout_box) = self.output_channel(1)?;
        let (stderr_keeper, stderr_box) = self.output_channel(2)?;
        let (report_keeper, report_box) = sys::pipe().map_err(io_err("pipe"))?;
        let (go_box, go_keeper) = sys::pipe().map_err(io_err("pipe"))?;
        let streams = Streams::new(
            stdin_keeper,
            stdout_keeper,
            stderr_keeper,
            self.config.output_limit,
            self.config.pass_through_output,
        )
        .map_err(io_err("fcntl"))?;
        let box_ends = BoxEnds {
            stdin: stdin_box,
            stdout: stdout_box,
            stderr: stderr_box,
            report: report_box,
            go: go_box,
        };
        let keeper = KeeperEnds {
            streams,
            report: report_keeper,
            go: go_keeper,
        };
        Ok((box_ends, keeper))
    }

    /// The keeper's read end (if it reads) and the program's end of output
    /// stream `fd` (1 or 2): a pipe, or the caller's own descriptor when
    /// the program writes there directly.
    fn output_channel(&self, fd: i32) -> Result<(Option<OwnedFd>, OwnedFd)> {
        let io_err = |source| IsolateError::io("preparing the program's output", source);
        if self.config.inherit_stdout_stderr {
            let own = if fd == 1 {
                std::io::stdout().as_fd().try_clone_to_owned()
            } else {
                std::io::stderr().as_fd().try_clone_to_owned()
            };
            let own = own.map_err(io_err)?;
            return Ok((None, sys::dup_for_child(own.as_fd()).map_err(io_err)?));
        }
        let (read, write) = sys::pipe().map_err(io_err)?;
        Ok((Some(read), write))
    }

    /// Moves the proxy into the run's cgroup (unless it was born there or
    /// joins it itself), records it, and gives it the go-ahead: from here
    /// on the program runs.
    fn release(
        &self,
        proxy: &jail::Proxy,
        cgroup: Option<&CgroupController>,
        go: OwnedFd,
    ) -> Result<()> {
        if let Some(cgroup) = cgroup.filter(|_| !proxy.in_cgroup) {
            cgroup.add_process(proxy.pid)?;
        }
        if let Some(mapping) = &self.user_namespace {
            // Until its maps are written the proxy is nobody in its user
            // namespace; it waits for the go-ahead before its first step
            // that needs an id.
            mapping
                .write_for(proxy.pid)
                .map_err(io_err("writing the box's uid and gid maps"))?;
        }
        self.record_proxy(proxy.pid)?;
        File::from(go)
            .write_all(&[1])
            .map_err(io_err("releasing the box"))
    }

    /// Reaps the proxy once it has ended and tidies up after it.
    fn reap(&self, proxy: &jail::Proxy) -> Result<(i32, Rusage)> {
        let reaped = sys::wait4(proxy.pid).map_err(io_err("wait4"))?;
        self.forget_proxy();
        if self.config.keep_terminal {
            sys::take_back_terminal();
        }
        if !self.namespaces {
            // Without a PID namespace the box's leftovers are in its group.
            let _ = sys::kill_process_group(proxy.pid, libc::SIGKILL);
        }
        Ok(reaped)
    }

    /// Reads the box's reports into `facts`: a failed setup step, or how
    /// the program ended and what it used.
    pub(super) fn take_reports(
        &self,
        facts: &mut RunFacts,
        spec: &JailSpec,
        reports: Vec<ChildReport>,
        proxy_status: i32,
    ) {
        for report in reports {
            match report {
                ChildReport::SetupFailed {
                    stage,
                    errno,
                    detail,
                } => {
                    let detail = match stage {
                        Stage::Filesystem => spec.describe_mount_step(detail).to_string(),
                        Stage::Stdio => self
                            .stdio_files()
                            .get(detail as usize)
                            .copied()
                            .flatten()
                            .map(|file| format!("opening {}", file.display()))
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    facts.setup_failure.get_or_insert((stage, errno, detail));
                }
                ChildReport::InmateExited {
                    wait_status,
                    rusage,
                } => {
                    facts.end = Some(ProgramEnd::from_wait_status(wait_status));
                    facts.inmate = rusage;
                }
            }
        }
        if facts.end.is_none() && facts.setup_failure.is_none() {
            // The proxy died before it could report: killed by us, by the OOM
            // killer, or by something else. Its own signal tells which.
            let proxy_end = ProgramEnd::from_wait_status(proxy_status);
            if facts.killed_for.is_some() || matches!(proxy_end, ProgramEnd::Signaled(_)) {
                facts.end = Some(proxy_end);
            }
        }
    }

    /// Records the proxy ([`IsolateConfig::proxy_record`]) before the box
    /// is released, so no moment of the run goes unrecorded. The directory
    /// is root's: a link there is not the box's doing, but is refused all
    /// the same.
    ///
    /// [`IsolateConfig::proxy_record`]: crate::config::IsolateConfig::proxy_record
    fn record_proxy(&self, pid: libc::pid_t) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = &self.config.proxy_record else {
            return Ok(());
        };
        let failed =
            |source| IsolateError::io(format!("recording the box at {}", path.display()), source);
        let started = sys::start_time(pid).map_err(failed)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(failed)?;
        writeln!(file, "{pid} {started}").map_err(failed)
    }

    /// Drops the record of a proxy that has been reaped.
    fn forget_proxy(&self) {
        if let Some(path) = &self.config.proxy_record {
            if let Err(error) = std::fs::remove_file(path) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), %error, "cannot remove the proxy record");
                }
            }
        }
    }
}

/// Clones the proxy with the box's ends of the pipes, then closes ours: the
/// box holds its own copies now, and ours would keep the pipes from ever
/// reporting end of file.
fn start_box(
    spec: &JailSpec,
    ends: BoxEnds,
    cgroup: Option<&CgroupController>,
) -> Result<jail::Proxy> {
    let task_files = cgroup
        .map(CgroupController::self_join_files)
        .transpose()?
        .flatten();
    let entry = match (cgroup, &task_files) {
        (_, Some(files)) => CgroupEntry::Join(files),
        (Some(cgroup), None) => cgroup
            .directory_fd()
            .map_or(CgroupEntry::None, CgroupEntry::Born),
        (None, None) => CgroupEntry::None,
    };
    let proxy = jail::spawn(spec, ends.fds(), entry)?;
    drop(ends);
    Ok(proxy)
}

/// Ends a box the keeper gave up on, and reaps its proxy: the one way out
/// of a run after the clone other than watching it to its end. (Without
/// the go-ahead the proxy would exit by itself; this makes sure.)
fn kill_and_reap(proxy: &jail::Proxy) {
    let _ = sys::pidfd_send_signal(proxy.pidfd.as_fd(), libc::SIGKILL);
    let _ = sys::wait4(proxy.pid);
}
