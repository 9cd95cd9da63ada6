//! The executable's first instructions, before the C library starts.
//!
//! glibc's start-up costs a static binary about 0.3 ms on our machines
//! before `main`, most of it probing the processor with `cpuid` (which
//! traps to the hypervisor) and relocating itself; a process that does
//! without it lives about 0.15 ms from `execve` to exit. Requests that
//! need nothing of the C library (`--version`) are answered here, from
//! the entry point [`early_entry!`](crate::early_entry) installs, and
//! everything else goes on to glibc's own `_start` with the stack as the
//! kernel left it.
//!
//! Code that runs this early lives by rules the compiler does not check,
//! so `tests/early_start.rs` checks them on the built executable:
//!
//! - no C library: system calls are made here by hand, not through glibc
//!   (or rustix, whose wrappers may call `memcpy`, which in a static glibc
//!   is resolved only once glibc has started);
//! - no call to `memcpy`, `memset`, `memcmp` or `strlen`, which the
//!   compiler may emit for a loop or a large copy: loops here read through
//!   `read_volatile`, which it leaves alone;
//! - no panic and no allocation (neither exists yet);
//! - no static data holding an address (a table of string slices, a
//!   vtable): the executable is position-independent and has not applied
//!   its relocations yet, so such an address would be wrong.

use std::arch::asm;

/// What the kernel left on the stack at `execve`: the arguments (the
/// environment and the auxiliary vector follow them, unused here).
pub struct Start {
    argc: usize,
    argv: *const *const u8,
}

impl Start {
    /// Reads the arguments off the process's initial stack.
    ///
    /// # Safety
    ///
    /// `stack` must be the stack pointer as the kernel set it at
    /// `execve` (`argc`, then `argc` argument pointers), and nothing may
    /// have written to that part of the stack since.
    pub unsafe fn from_stack(stack: *const usize) -> Self {
        // SAFETY: by the caller's promise, the first word is argc and the
        // argument pointers follow it.
        let (argc, argv) = unsafe { (stack.read(), stack.add(1).cast::<*const u8>()) };
        Self { argc, argv }
    }

    /// How many arguments there are, the program's name included.
    pub fn argc(&self) -> usize {
        self.argc
    }

    /// Argument `index`, without its terminating NUL.
    pub fn arg(&self, index: usize) -> Option<&'static [u8]> {
        if index >= self.argc {
            return None;
        }
        // SAFETY: index < argc, and the kernel wrote argc pointers.
        let text = unsafe { self.argv.add(index).read() };
        if text.is_null() {
            return None;
        }
        let mut length = 0;
        // SAFETY: the kernel's argument strings end with a NUL, and
        // nothing before it is out of the string. The volatile read keeps
        // the compiler from turning the loop into a call to `strlen`.
        while unsafe { text.add(length).read_volatile() } != 0 {
            length += 1;
        }
        // SAFETY: `length` bytes from `text` are the argument, which lives
        // on the initial stack as long as the process does; nothing writes
        // to it.
        Some(unsafe { std::slice::from_raw_parts(text, length) })
    }
}

/// Whether two byte strings are equal, without `memcmp` (see the module's
/// rules).
pub fn same_bytes(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let mut index = 0;
    while index < left.len() {
        // SAFETY: index < left.len() == right.len(). Volatile, so that
        // the loop stays a loop and no `bcmp` call replaces it.
        let (a, b) = unsafe {
            (
                left.as_ptr().add(index).read_volatile(),
                right.as_ptr().add(index).read_volatile(),
            )
        };
        if a != b {
            return false;
        }
        index += 1;
    }
    true
}

/// What follows the last `/` of a path (the whole path when it has none).
pub fn file_name(path: &[u8]) -> &[u8] {
    let mut start = path.len();
    while start > 0 {
        // SAFETY: start - 1 < path.len().
        if unsafe { path.as_ptr().add(start - 1).read_volatile() } == b'/' {
            break;
        }
        start -= 1;
    }
    // SAFETY: start <= path.len(), so the rest of `path` from there is in
    // bounds (and the slice cannot panic, which it could not do yet).
    unsafe { path.get_unchecked(start..) }
}

/// One system call with up to four arguments, made by hand (see the
/// module's rules). Returns the kernel's value: negative is `-errno`.
///
/// # Safety
///
/// The call must be one whose arguments are valid as given.
#[inline(always)]
unsafe fn syscall4(number: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let result: isize;
    // SAFETY: the x86-64 Linux system call convention: number in rax,
    // arguments in rdi, rsi, rdx, r10; the kernel clobbers rcx and r11.
    // What the call does is the caller's promise.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number as isize => result,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

const SYS_WRITE: usize = 1;
const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_EXIT_GROUP: usize = 231;
/// `-EINTR`, as a system call returns it.
const INTERRUPTED: isize = -4;

/// Writes all of `bytes` to standard output; a failed write (a closed
/// descriptor, a reader gone) ends it quietly, as an unwritable standard
/// output ends `--version` in the rest of the program.
pub fn write_stdout(mut bytes: &[u8]) {
    // A reader that went away must not kill the process with SIGPIPE
    // (glibc's start-up has not ignored it yet): blocked, the signal stays
    // pending, the write fails with EPIPE and the exit discards the signal.
    let pipe_signal: u64 = 1 << (libc::SIGPIPE - 1);
    // SAFETY: rt_sigprocmask(SIG_BLOCK, &set, NULL, sizeof set) only
    // reads the set, which lives on this stack for the call.
    unsafe {
        syscall4(
            SYS_RT_SIGPROCMASK,
            libc::SIG_BLOCK as usize,
            std::ptr::addr_of!(pipe_signal) as usize,
            0,
            std::mem::size_of::<u64>(),
        );
    }
    while !bytes.is_empty() {
        // SAFETY: write(1, bytes, len) only reads `bytes`.
        let written = unsafe { syscall4(SYS_WRITE, 1, bytes.as_ptr() as usize, bytes.len(), 0) };
        match written {
            INTERRUPTED => continue,
            // `written` is at most bytes.len(): the rest is in bounds.
            1.. => bytes = bytes.get(written as usize..).unwrap_or_default(),
            _ => return,
        }
    }
}

/// Ends the process with `status`.
pub fn exit(status: u8) -> ! {
    loop {
        // SAFETY: exit_group takes a number and does not return.
        unsafe {
            syscall4(SYS_EXIT_GROUP, usize::from(status), 0, 0, 0);
        }
    }
}

/// Makes `isobox_entry` the executable's entry point (the linker's
/// `--entry`, which `.cargo/rustc-static-bin` passes): it calls `$handler`
/// with the [`Start`](crate::sys::early::Start) of the process, before the
/// C library starts, and, when `$handler` returns, goes on to glibc's
/// `_start` with the stack pointer and registers as the kernel set them.
/// `$handler` must keep the rules of [`crate::sys::early`], and either
/// return or end the process with [`crate::sys::early::exit`].
#[macro_export]
macro_rules! early_entry {
    ($handler:path) => {
        // r12 is callee-saved: it carries the kernel's stack pointer across
        // the call. At the kernel's entry rdx holds the function glibc
        // would register with atexit (none for a static executable): zero
        // again, whatever the handler left there.
        ::std::arch::global_asm!(
            ".globl isobox_entry",
            ".type isobox_entry,@function",
            "isobox_entry:",
            "mov r12, rsp",
            "mov rdi, rsp",
            "and rsp, -16",
            "call {early}",
            "mov rsp, r12",
            "xor edx, edx",
            "jmp _start",
            ".size isobox_entry, . - isobox_entry",
            early = sym isobox_early,
        );

        /// Called by `isobox_entry` with the process's initial stack.
        extern "C" fn isobox_early(stack: *const usize) {
            // SAFETY: `isobox_entry` passes the stack pointer as the
            // kernel set it, before anything ran.
            let start = unsafe { $crate::sys::early::Start::from_stack(stack) };
            $handler(&start);
        }
    };
}
