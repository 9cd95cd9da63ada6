//! Lists of CPUs, in the kernel's syntax (`0-3,6`): what a cgroup cpuset
//! takes, and where a box's processes are placed
//! ([`IsolateConfig::cpu_affinity`](crate::IsolateConfig::cpu_affinity)).

use std::collections::BTreeSet;

use rustix::thread::CpuSet;

/// A set of CPU numbers, in the kernel's list syntax (`0-3,6`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuList(BTreeSet<u32>);

impl CpuList {
    /// Most CPUs a list may name: far beyond any host, small enough that
    /// a range such as `0-4294967295` cannot fill the caller's memory.
    const MAX_CPU: u32 = 8192;

    /// `0..count`.
    pub fn first(count: u32) -> Self {
        Self((0..count).collect())
    }

    /// Reads a list such as `0-1,3` (spaces and a trailing newline, as the
    /// kernel's files have, are allowed).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut cpus = BTreeSet::new();
        for part in text.trim().split(',') {
            let number = |word: &str| {
                word.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|cpu| *cpu < Self::MAX_CPU)
                    .ok_or_else(|| format!("{text:?} is not a CPU list such as 0-1,3"))
            };
            let (low, high) = match part.split_once('-') {
                Some((low, high)) => (number(low)?, number(high)?),
                None => (number(part)?, number(part)?),
            };
            if low > high {
                return Err(format!("{text:?}: the range {part} runs backwards"));
            }
            cpus.extend(low..=high);
        }
        Ok(Self(cpus))
    }

    /// How many CPUs the list names.
    pub fn count(&self) -> u64 {
        self.0.len() as u64
    }

    /// Whether every CPU of this list is in `of`.
    pub fn is_subset(&self, of: &Self) -> bool {
        self.0.is_subset(&of.0)
    }

    /// The CPUs of both lists.
    pub fn intersection(&self, other: &Self) -> Self {
        Self(self.0.intersection(&other.0).copied().collect())
    }

    /// The CPUs, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// The CPUs the calling thread may run on (its scheduler affinity);
    /// `None` when the kernel does not say.
    pub fn of_this_thread() -> Option<Self> {
        let set = rustix::thread::sched_getaffinity(None).ok()?;
        Some(Self(
            (0..Self::MAX_CPU.min(CpuSet::MAX_CPU as u32))
                .filter(|cpu| set.is_set(*cpu as usize))
                .collect(),
        ))
    }

    /// The affinity mask of the list; `None` when it names a CPU beyond
    /// what the mask holds.
    pub(crate) fn mask(&self) -> Option<CpuSet> {
        let mut set = CpuSet::new();
        for cpu in self.iter() {
            let cpu = cpu as usize;
            if cpu >= CpuSet::MAX_CPU {
                return None;
            }
            set.set(cpu);
        }
        Some(set)
    }
}

impl FromIterator<u32> for CpuList {
    fn from_iter<I: IntoIterator<Item = u32>>(cpus: I) -> Self {
        Self(cpus.into_iter().collect())
    }
}

impl std::fmt::Display for CpuList {
    /// Ranges where the CPUs follow each other: the form the kernel reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut cpus = self.0.iter().copied().peekable();
        let mut first = true;
        while let Some(low) = cpus.next() {
            let mut high = low;
            while cpus.peek() == Some(&(high + 1)) {
                high = cpus.next().expect("peeked");
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_and_print_as_the_kernel_does() {
        let list = CpuList::parse("3,0-1, 5-6\n").unwrap();
        assert_eq!(list.to_string(), "0-1,3,5-6");
        assert_eq!(list.count(), 5);
        assert_eq!(list.iter().collect::<Vec<_>>(), [0, 1, 3, 5, 6]);
        assert_eq!(CpuList::parse("2").unwrap().to_string(), "2");
        for bad in ["", "a", "1-", "3-1", "0-4294967295", "1,,2", "-1"] {
            assert!(CpuList::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CpuList::parse("1-2").unwrap().is_subset(&CpuList::first(4)));
        assert!(!CpuList::parse("3-4").unwrap().is_subset(&CpuList::first(4)));
        assert_eq!(
            CpuList::parse("1-5")
                .unwrap()
                .intersection(&CpuList::parse("0,2,4,9").unwrap()),
            CpuList::parse("2,4").unwrap()
        );
    }

    #[test]
    fn a_mask_holds_the_listed_cpus_and_refuses_what_it_cannot_hold() {
        let mask = CpuList::parse("0,2").unwrap().mask().unwrap();
        assert!(mask.is_set(0) && !mask.is_set(1) && mask.is_set(2));
        let beyond = CpuSet::MAX_CPU as u32;
        assert!(CpuList::parse(&beyond.to_string())
            .unwrap()
            .mask()
            .is_none());
    }

    #[test]
    fn this_threads_cpus_are_the_kernels_answer() {
        let cpus = CpuList::of_this_thread().expect("sched_getaffinity of this thread");
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let listed = status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .unwrap();
        assert_eq!(cpus, CpuList::parse(listed).unwrap());
    }
}
