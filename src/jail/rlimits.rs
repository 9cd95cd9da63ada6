//! Per-process resource limits of the inmate, computed before the fork and
//! applied with plain `setrlimit` calls after it.
//!
//! Every resource the kernel knows is set, so nothing of the keeper's own
//! limits (a root shell's `RLIMIT_MEMLOCK`, `RLIMIT_RTPRIO`, `RLIMIT_NICE`,
//! `RLIMIT_MSGQUEUE`...) reaches the program: what the configuration does
//! not limit gets a fixed value chosen here, never an inherited one.

use std::time::Duration;

/// One entry per resource the kernel has (`RLIMIT_NLIMITS`); a fixed array
/// keeps the child side allocation-free.
const MAX_RLIMITS: usize = 16;

/// `RLIMIT_NOFILE` when the configuration sets none: the kernel's own
/// defaults for a fresh process (`INR_OPEN_CUR`, `INR_OPEN_MAX`).
pub(crate) const DEFAULT_OPEN_FILES: (u64, u64) = (1024, 4096);

/// `RLIMIT_SIGPENDING`: signals queued for the box's uid at once. Each
/// costs kernel memory outside every cgroup limit; contest programs queue
/// none, a few hundred is plenty for any runtime.
pub(crate) const DEFAULT_SIGPENDING: u64 = 256;

/// One limit: resource, soft, hard, and whether failing to set it is fatal.
#[derive(Debug, Clone, Copy)]
struct Entry {
    resource: libc::__rlimit_resource_t,
    soft: libc::rlim_t,
    hard: libc::rlim_t,
    required: bool,
}

/// What a run's configuration asks of the rlimits; the executor fills it
/// in, so that the jail never reads the whole configuration. `None` is "no
/// limit asked for".
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RlimitRequest {
    /// Largest core dump in bytes (`RLIMIT_CORE`).
    pub core: u64,
    /// Largest file the program may write (`RLIMIT_FSIZE`).
    pub file_size: Option<u64>,
    /// Stack size (`RLIMIT_STACK`).
    pub stack: Option<u64>,
    /// Open descriptors (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Address space per process (`RLIMIT_AS`).
    pub address_space: Option<u64>,
    /// Data segment per process (`RLIMIT_DATA`).
    pub data_segment: Option<u64>,
    /// Memory of the whole run; stands in for `address_space` without a
    /// cgroup.
    pub memory: Option<u64>,
    /// CPU time at which the keeper kills the run.
    pub cpu_kill: Option<Duration>,
    /// Processes alive at once; an rlimit only without a cgroup.
    pub processes: Option<u64>,
}

/// The rlimits of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rlimits {
    entries: [Option<Entry>; MAX_RLIMITS],
}

/// `fs.nr_open`, the most descriptors the kernel lets one process have
/// (read before the fork; its default when it cannot be read).
fn kernel_open_files_maximum() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1 << 20)
}

fn seconds_ceil(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl Rlimits {
    /// Limits for `request`. Without a cgroup, `RLIMIT_AS` stands in for the
    /// memory limit and `RLIMIT_CPU` is the only CPU enforcement, so it is
    /// set tight; `RLIMIT_CPU` is one second past the CPU kill threshold
    /// either way: with a cgroup a backstop behind the keeper's own kill;
    /// without one the kill itself, late enough that the measured CPU time
    /// has reached the threshold when it comes (the kernel's rlimit clock
    /// counts whole ticks and runs ahead of the measured time on a busy
    /// machine, by a tenth and more). Its soft limit is its hard one:
    /// the kernel then never sends `SIGXCPU`, only `SIGKILL` at the limit,
    /// so a `SIGXCPU` death is always one the program chose (a program may
    /// raise its soft limit up to the hard one, so a gap between them would
    /// let it fake the kernel's warning).
    ///
    /// Resources the configuration leaves open are still set: unlimited
    /// where a limit would only get in a program's way (CPU, file size,
    /// data, stack, address space, processes), the kernel's fresh-process
    /// default for open files, and zero or small for what no contest
    /// program needs and the host pays for: `MEMLOCK` 0 (no pinned
    /// memory), `MSGQUEUE` 0 (no POSIX message queue memory), `NICE` 0 and
    /// `RTPRIO` 0 (no raising its priority, no real-time scheduling),
    /// `SIGPENDING` [`DEFAULT_SIGPENDING`].
    pub(crate) fn new(request: &RlimitRequest, have_cgroup: bool) -> Self {
        const INFINITY: u64 = libc::RLIM_INFINITY;
        let mut limits = Self {
            entries: [None; MAX_RLIMITS],
        };
        // `required`: lowering a limit always works; raising one needs
        // privilege, so the unlimited defaults are best effort for a
        // caller that is not root.
        let mut add = |resource, soft: u64, hard: u64, required| {
            let slot = limits.entries.iter_mut().find(|slot| slot.is_none());
            if let Some(slot) = slot {
                *slot = Some(Entry {
                    resource,
                    soft,
                    hard,
                    required,
                });
            }
        };
        add(libc::RLIMIT_CORE, request.core, request.core, true);
        match request.file_size {
            Some(bytes) => add(libc::RLIMIT_FSIZE, bytes, bytes, true),
            None => add(libc::RLIMIT_FSIZE, INFINITY, INFINITY, false),
        }
        match request.stack {
            Some(bytes) => add(libc::RLIMIT_STACK, bytes, bytes, true),
            // Judged programs recurse deeply; like isolate, the stack is
            // unlimited unless asked otherwise.
            None => add(libc::RLIMIT_STACK, INFINITY, INFINITY, false),
        }
        match request.open_files {
            // No resource limit can be infinite here: the kernel refuses
            // more than `fs.nr_open`, and a caller without the privilege
            // to raise its own hard limit gets that (best effort below).
            Some(crate::config::OPEN_FILES_UNLIMITED) => {
                let most = kernel_open_files_maximum();
                add(libc::RLIMIT_NOFILE, most, most, false)
            }
            Some(count) => add(libc::RLIMIT_NOFILE, count, count, true),
            None => add(
                libc::RLIMIT_NOFILE,
                DEFAULT_OPEN_FILES.0,
                DEFAULT_OPEN_FILES.1,
                false,
            ),
        }
        let address_space = request
            .address_space
            .or(request.memory.filter(|_| !have_cgroup));
        match address_space {
            Some(bytes) => add(libc::RLIMIT_AS, bytes, bytes, true),
            None => add(libc::RLIMIT_AS, INFINITY, INFINITY, false),
        }
        match request.cpu_kill {
            Some(cap) => {
                let limit = seconds_ceil(cap) + 1;
                add(libc::RLIMIT_CPU, limit, limit, true);
            }
            None => add(libc::RLIMIT_CPU, INFINITY, INFINITY, false),
        }
        match request.processes.filter(|_| !have_cgroup) {
            Some(count) => add(libc::RLIMIT_NPROC, count, count, true),
            // With a cgroup the pids controller counts the run's processes.
            None => add(libc::RLIMIT_NPROC, INFINITY, INFINITY, false),
        }
        match request.data_segment {
            Some(bytes) => add(libc::RLIMIT_DATA, bytes, bytes, true),
            None => add(libc::RLIMIT_DATA, INFINITY, INFINITY, false),
        }
        add(libc::RLIMIT_RSS, INFINITY, INFINITY, false);
        add(libc::RLIMIT_LOCKS, INFINITY, INFINITY, false);
        add(libc::RLIMIT_RTTIME, INFINITY, INFINITY, false);
        add(libc::RLIMIT_MEMLOCK, 0, 0, true);
        add(libc::RLIMIT_MSGQUEUE, 0, 0, true);
        add(libc::RLIMIT_NICE, 0, 0, true);
        add(libc::RLIMIT_RTPRIO, 0, 0, true);
        add(
            libc::RLIMIT_SIGPENDING,
            DEFAULT_SIGPENDING,
            DEFAULT_SIGPENDING,
            true,
        );
        limits
    }

    /// The `RLIMIT_CPU` limit of the run (soft and hard alike), if it has
    /// one: the CPU time at which the kernel kills the program.
    #[cfg(test)]
    pub(crate) fn cpu_limit(&self) -> Option<Duration> {
        self.entries
            .iter()
            .flatten()
            .find(|entry| entry.resource == libc::RLIMIT_CPU && entry.hard != libc::RLIM_INFINITY)
            .map(|entry| Duration::from_secs(entry.hard))
    }

    /// Child side: applies every limit. Returns the errno of the first
    /// required limit that could not be set.
    ///
    /// # Safety
    /// Only async-signal-safe calls; meant for the time between fork and exec.
    pub(crate) unsafe fn apply(&self) -> Result<(), i32> {
        for entry in self.entries.iter().flatten() {
            let value = libc::rlimit {
                rlim_cur: entry.soft,
                rlim_max: entry.hard,
            };
            // SAFETY: `value` is a valid rlimit for the duration of the call.
            if unsafe { libc::setrlimit(entry.resource, &value) } == 0 {
                continue;
            }
            if entry.required {
                return Err(crate::sys::errno());
            }
            // Not allowed to raise it (not root): as far as the hard limit
            // we have goes, so the value is still ours, not a soft limit
            // the keeper happened to run with.
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `current` is a valid rlimit to fill in.
            if unsafe { libc::getrlimit(entry.resource, &mut current) } == 0 {
                let value = libc::rlimit {
                    rlim_cur: entry.soft.min(current.rlim_max),
                    rlim_max: current.rlim_max,
                };
                // SAFETY: as above; failing leaves the inherited value.
                unsafe { libc::setrlimit(entry.resource, &value) };
            }
        }
        Ok(())
    }

    /// Child side: takes back a real-time scheduling policy or a raised
    /// priority inherited from the keeper (`RLIMIT_RTPRIO` and
    /// `RLIMIT_NICE` only stop the program from asking for them). A keeper
    /// that runs at a lower priority on purpose keeps that for the box.
    ///
    /// # Safety
    /// Only async-signal-safe calls; meant for the time between fork and exec.
    pub(crate) unsafe fn reset_priority() {
        // SAFETY: sched_getscheduler reads the calling process's policy.
        let policy = unsafe { libc::sched_getscheduler(0) };
        if policy == libc::SCHED_FIFO || policy == libc::SCHED_RR {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: `param` is a valid sched_param for the call.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
        }
        // getpriority may return -1 as a value; only errno tells a failure.
        crate::sys::clear_errno();
        // SAFETY: getpriority reads the calling process's nice value.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        if nice < 0 && crate::sys::errno() == 0 {
            // SAFETY: setpriority changes only the calling process.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
        }
    }

    #[cfg(test)]
    fn get(&self, resource: libc::__rlimit_resource_t) -> Option<(u64, u64)> {
        self.entries
            .iter()
            .flatten()
            .find(|entry| entry.resource == resource)
            .map(|entry| (entry.soft, entry.hard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backstop_sits_past_the_keeper_kill_with_a_cgroup() {
        let request = RlimitRequest {
            cpu_kill: Some(Duration::from_millis(1500)),
            ..RlimitRequest::default()
        };
        assert_eq!(
            Rlimits::new(&request, true).get(libc::RLIMIT_CPU),
            Some((3, 3))
        );
        // Soft = hard: the kernel sends no SIGXCPU a program could imitate;
        // a second past the threshold without a cgroup too.
        assert_eq!(
            Rlimits::new(&request, false).get(libc::RLIMIT_CPU),
            Some((3, 3))
        );
        assert_eq!(
            Rlimits::new(&request, false).cpu_limit(),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn memory_falls_back_to_address_space_without_cgroup() {
        let request = RlimitRequest {
            memory: Some(64 << 20),
            processes: Some(5),
            ..RlimitRequest::default()
        };
        let with_cgroup = Rlimits::new(&request, true);
        let unlimited = Some((libc::RLIM_INFINITY, libc::RLIM_INFINITY));
        assert_eq!(with_cgroup.get(libc::RLIMIT_AS), unlimited);
        assert_eq!(with_cgroup.get(libc::RLIMIT_NPROC), unlimited);
        let without = Rlimits::new(&request, false);
        assert_eq!(without.get(libc::RLIMIT_AS), Some((64 << 20, 64 << 20)));
        assert_eq!(without.get(libc::RLIMIT_NPROC), Some((5, 5)));
    }

    #[test]
    fn core_dumps_are_off_and_stack_unlimited_by_default() {
        let limits = Rlimits::new(&RlimitRequest::default(), true);
        assert_eq!(limits.get(libc::RLIMIT_CORE), Some((0, 0)));
        assert_eq!(
            limits.get(libc::RLIMIT_STACK),
            Some((libc::RLIM_INFINITY, libc::RLIM_INFINITY))
        );
    }

    #[test]
    fn every_resource_is_set_once_whatever_the_config() {
        for have_cgroup in [false, true] {
            let limits = Rlimits::new(&RlimitRequest::default(), have_cgroup);
            for resource in 0..MAX_RLIMITS as libc::__rlimit_resource_t {
                let count = limits
                    .entries
                    .iter()
                    .flatten()
                    .filter(|entry| entry.resource == resource)
                    .count();
                assert_eq!(count, 1, "resource {resource}");
            }
        }
    }

    #[test]
    fn nothing_to_pin_queue_or_raise_priority() {
        let limits = Rlimits::new(&RlimitRequest::default(), false);
        for resource in [
            libc::RLIMIT_MEMLOCK,
            libc::RLIMIT_MSGQUEUE,
            libc::RLIMIT_NICE,
            libc::RLIMIT_RTPRIO,
        ] {
            assert_eq!(limits.get(resource), Some((0, 0)), "resource {resource}");
        }
        assert_eq!(
            limits.get(libc::RLIMIT_SIGPENDING),
            Some((DEFAULT_SIGPENDING, DEFAULT_SIGPENDING))
        );
        assert_eq!(limits.get(libc::RLIMIT_NOFILE), Some(DEFAULT_OPEN_FILES));
        assert_eq!(limits.cpu_limit(), None);
    }
}
