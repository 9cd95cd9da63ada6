//! Memory a box could hold outside its address space when no memory cgroup
//! limits the run: System V shared memory, message queues and semaphores
//! live in the box's IPC namespace, not in any process, so `RLIMIT_AS` does
//! not see them. The proxy, pid 1 of a fresh IPC namespace and still root,
//! sizes that namespace's pools from the memory limit before the program
//! starts; a warm box's holder does the same for the fresh namespace it
//! moves to after each run. The values are formatted before the fork.

use std::ffi::CStr;

/// Longest value written (a decimal `u64`, or the four numbers of `sem`).
const VALUE_MAX: usize = 96;

/// One sysctl of the IPC namespace (a file of `/proc/sys/kernel`) and the
/// text to write into it.
#[derive(Debug, Clone, Copy)]
struct Setting {
    name: &'static CStr,
    value: [u8; VALUE_MAX],
    len: usize,
}

/// The IPC namespace's limits for one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpcLimits {
    settings: [Setting; 6],
}

/// Size of a semaphore in the kernel (`struct sem` is one cache line).
const SEMAPHORE_BYTES: u64 = 64;
/// Shared memory segments a box may have at once.
const SHM_SEGMENTS: u64 = 64;
/// Bytes a message queue may hold (the kernel's default, `MSGMNB`).
const QUEUE_BYTES: u64 = 16384;

fn setting(name: &'static CStr, text: &str) -> Setting {
    let mut value = [0u8; VALUE_MAX];
    let len = text.len().min(VALUE_MAX);
    value[..len].copy_from_slice(&text.as_bytes()[..len]);
    Setting { name, value, len }
}

/// Opens `/proc/sys/kernel` (negative when it fails). Opened through a
/// writable `/proc` (the host's, before the box's root replaces it), it
/// stays the way to the sysctls of whatever IPC namespace the caller is in
/// when it opens a file below it: the kernel resolves each name in the
/// opener's namespace, while a file opened earlier keeps writing to the
/// namespace it was opened in.
///
/// # Safety
/// Async-signal-safe; the caller owns the descriptor.
pub(crate) unsafe fn open_sysctl_dir() -> libc::c_int {
    // SAFETY: a static C string; open is async-signal-safe.
    unsafe {
        libc::open(
            c"/proc/sys/kernel".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    }
}

impl IpcLimits {
    /// Limits that keep each pool (shared memory, message queues,
    /// semaphores) of the namespace within `bytes`: shared memory at most
    /// `bytes` in all, queues and semaphores a quarter each.
    pub(crate) fn for_memory(bytes: u64) -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let queue_bytes = QUEUE_BYTES.min(bytes);
        let queues = (bytes / 4 / queue_bytes.max(1)).clamp(1, 32000);
        let semaphores = (bytes / 4 / SEMAPHORE_BYTES).clamp(1, 32000 * 32000);
        let per_set = semaphores.min(250);
        let sets = semaphores.div_ceil(per_set).clamp(1, 32000);
        Self {
            settings: [
                setting(c"shmmax", &bytes.to_string()),
                setting(c"shmall", &(bytes / page).to_string()),
                setting(c"shmmni", &SHM_SEGMENTS.to_string()),
                setting(c"msgmnb", &queue_bytes.to_string()),
                setting(c"msgmni", &queues.to_string()),
                setting(c"sem", &format!("{per_set} {semaphores} 32 {sets}")),
            ],
        }
    }

    /// Child side: writes every setting into the files of `sysctl_dir`
    /// ([`open_sysctl_dir`]). Must run in the box's new IPC namespace, with
    /// the privileges to write its sysctls. Returns the index of the failed
    /// setting and the errno.
    ///
    /// # Safety
    /// Only async-signal-safe calls; meant for the time between clone and
    /// exec, or a holder's.
    pub(crate) unsafe fn apply(&self, sysctl_dir: libc::c_int) -> Result<(), (u32, i32)> {
        for (index, setting) in self.settings.iter().enumerate() {
            let failed = |index: usize| (index as u32, crate::sys::errno());
            // SAFETY: a NUL-terminated name below a directory of ours; the
            // descriptor is ours.
            let fd = unsafe {
                libc::openat(
                    sysctl_dir,
                    setting.name.as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(failed(index));
            }
            // SAFETY: `value` holds at least `len` initialised bytes.
            let written = unsafe { libc::write(fd, setting.value.as_ptr().cast(), setting.len) };
            let result = if written == setting.len as isize {
                Ok(())
            } else {
                Err(failed(index))
            };
            // SAFETY: closes the descriptor opened above.
            unsafe { libc::close(fd) };
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(limits: &IpcLimits, index: usize) -> &str {
        let setting = &limits.settings[index];
        std::str::from_utf8(&setting.value[..setting.len]).unwrap()
    }

    #[test]
    fn pools_are_sized_from_the_limit() {
        let limits = IpcLimits::for_memory(64 << 20);
        assert_eq!(text(&limits, 0), (64u64 << 20).to_string());
        assert_eq!(text(&limits, 1), (16384).to_string());
        assert_eq!(text(&limits, 4), "1024");
        assert_eq!(text(&limits, 5), "250 262144 32 1049");
        let tiny = IpcLimits::for_memory(1000);
        assert_eq!(text(&tiny, 1), "0");
        assert_eq!(text(&tiny, 3), "1000");
    }
}
