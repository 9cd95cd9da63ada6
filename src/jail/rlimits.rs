//! Per-process resource limits of the inmate, computed before the fork and
//! applied with plain `setrlimit` calls after it.

use std::time::Duration;

use crate::types::IsolateConfig;

/// Most limits a run sets; a fixed array keeps the child side allocation-free.
const MAX_RLIMITS: usize = 8;

/// One limit: resource, soft, hard, and whether failing to set it is fatal.
#[derive(Debug, Clone, Copy)]
struct Entry {
    resource: libc::__rlimit_resource_t,
    soft: libc::rlim_t,
    hard: libc::rlim_t,
    required: bool,
}

/// The rlimits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Rlimits {
    entries: [Option<Entry>; MAX_RLIMITS],
}

fn seconds_ceil(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl Rlimits {
    /// Limits for `config`. Without a cgroup, `RLIMIT_AS` stands in for the
    /// memory limit and `RLIMIT_CPU` is the only CPU enforcement, so it is
    /// set tight; with one, `RLIMIT_CPU` is only a backstop one second past
    /// the keeper's own kill.
    pub fn for_config(config: &IsolateConfig, have_cgroup: bool) -> Self {
        let mut limits = Self {
            entries: [None; MAX_RLIMITS],
        };
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
        add(
            libc::RLIMIT_CORE,
            config.core_limit,
            config.core_limit,
            true,
        );
        if let Some(bytes) = config.file_size_limit {
            add(libc::RLIMIT_FSIZE, bytes, bytes, true);
        }
        match config.stack_limit {
            Some(bytes) => add(libc::RLIMIT_STACK, bytes, bytes, true),
            // Judged programs recurse deeply; like isolate, the stack is
            // unlimited unless asked otherwise (best effort for non-root).
            None => add(
                libc::RLIMIT_STACK,
                libc::RLIM_INFINITY,
                libc::RLIM_INFINITY,
                false,
            ),
        }
        if let Some(count) = config.open_files_limit {
            add(libc::RLIMIT_NOFILE, count, count, true);
        }
        let address_space = config
            .address_space_limit
            .or(config.memory_limit.filter(|_| !have_cgroup));
        if let Some(bytes) = address_space {
            add(libc::RLIMIT_AS, bytes, bytes, true);
        }
        if let Some(cap) = config.cpu_kill_threshold() {
            let seconds = seconds_ceil(cap);
            let soft = if have_cgroup {
                seconds + 1
            } else {
                seconds.max(1)
            };
            add(libc::RLIMIT_CPU, soft, soft + 1, true);
        }
        if !have_cgroup {
            if let Some(count) = config.process_limit {
                add(libc::RLIMIT_NPROC, count, count, true);
            }
        }
        limits
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
            if unsafe { libc::setrlimit(entry.resource, &value) } != 0 && entry.required {
                // SAFETY: errno location is thread-local and always valid.
                return Err(unsafe { *libc::__errno_location() });
            }
        }
        Ok(())
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
        let config = IsolateConfig {
            time_limit: Some(Duration::from_millis(1500)),
            ..IsolateConfig::default()
        };
        assert_eq!(
            Rlimits::for_config(&config, true).get(libc::RLIMIT_CPU),
            Some((3, 4))
        );
        assert_eq!(
            Rlimits::for_config(&config, false).get(libc::RLIMIT_CPU),
            Some((2, 3))
        );
    }

    #[test]
    fn memory_falls_back_to_address_space_without_cgroup() {
        let config = IsolateConfig {
            memory_limit: Some(64 << 20),
            process_limit: Some(5),
            ..IsolateConfig::default()
        };
        let with_cgroup = Rlimits::for_config(&config, true);
        assert_eq!(with_cgroup.get(libc::RLIMIT_AS), None);
        assert_eq!(with_cgroup.get(libc::RLIMIT_NPROC), None);
        let without = Rlimits::for_config(&config, false);
        assert_eq!(without.get(libc::RLIMIT_AS), Some((64 << 20, 64 << 20)));
        assert_eq!(without.get(libc::RLIMIT_NPROC), Some((5, 5)));
    }

    #[test]
    fn core_dumps_are_off_and_stack_unlimited_by_default() {
        let limits = Rlimits::for_config(&IsolateConfig::default(), true);
        assert_eq!(limits.get(libc::RLIMIT_CORE), Some((0, 0)));
        assert_eq!(
            limits.get(libc::RLIMIT_STACK),
            Some((libc::RLIM_INFINITY, libc::RLIM_INFINITY))
        );
    }
}
