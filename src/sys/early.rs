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
//! A debug build's entry point first applies the executable's
//! relocations (see [`early_entry!`](crate::early_entry)); what else glibc
//! sets up is missing. Code that runs this early lives by rules the
//! compiler does not check, so `tests/early_start.rs` checks them on the
//! built executable:
//!
//! - no C library: system calls are made here by hand, not through glibc
//!   (or rustix, whose wrappers may call `memcpy`, which in a static glibc
//!   is an indirect function resolved only once glibc has started);
//! - no call to `memcpy`, `memset`, `memcmp` or `strlen`, which the
//!   compiler may emit for a loop or a large copy: loops here read through
//!   `read_volatile`, which it leaves alone;
//! - no thread-local storage, no allocation and no panic (none of them
//!   exists yet; in a debug build the compiler's checks still have panic
//!   paths, which the test allows there and refuses in a release build);
//! - in a release build, no word that needs relocating: no static data
//!   holding an address (a table of string slices, a vtable), no call
//!   through the GOT.

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
        // SAFETY: the kernel's argument strings end with a NUL and live on
        // the initial stack as long as the process; nothing writes them.
        (!text.is_null()).then(|| unsafe { c_bytes(text) })
    }
}

impl Start {
    /// The environment's entries, which follow the arguments' terminating
    /// null pointer.
    fn environment(&self) -> *const *const u8 {
        // SAFETY: argv has argc pointers and then a null one; the
        // environment's pointers start after it.
        unsafe { self.argv.add(self.argc + 1) }
    }

    /// The value of environment variable `name`, if it is set.
    pub fn env_var(&self, name: &[u8]) -> Option<&'static [u8]> {
        let mut index = 0;
        while let Some(entry) = self.env_entry(index) {
            let after = name.len().saturating_add(1);
            if let (Some(key), Some(b'='), Some(value)) = (
                entry.get(..name.len()),
                entry.get(name.len()),
                entry.get(after..),
            ) {
                if same_bytes(key, name) {
                    return Some(value);
                }
            }
            index += 1;
        }
        None
    }

    /// Environment entry `index` (`NAME=value`), without its NUL.
    fn env_entry(&self, index: usize) -> Option<&'static [u8]> {
        // SAFETY: the environment's pointers end with a null one, and
        // `index` never passes it (the walk stops there).
        let text = unsafe { self.environment().add(index).read() };
        // SAFETY: a pointer the kernel wrote to a NUL-terminated string.
        (!text.is_null()).then(|| unsafe { c_bytes(text) })
    }

    /// The arguments and the environment as the kernel laid them out: one
    /// run of NUL-terminated strings, the arguments first. With the
    /// number of environment entries; `None` if they are not laid out so.
    pub fn strings(&self) -> Option<(&'static [u8], usize)> {
        let first = self.arg(0)?;
        let mut end = first.as_ptr_range().end;
        let mut check = |next: &'static [u8]| {
            // Each string starts right after the previous one's NUL.
            // SAFETY: `end` points at the previous string's NUL.
            let contiguous = next.as_ptr() == unsafe { end.add(1) };
            end = next.as_ptr_range().end;
            contiguous
        };
        for index in 1..self.argc {
            if !check(self.arg(index)?) {
                return None;
            }
        }
        let mut entries = 0;
        while let Some(entry) = self.env_entry(entries) {
            if !check(entry) {
                return None;
            }
            entries += 1;
        }
        // SAFETY: from the first argument to the last string's NUL, all
        // of it the kernel's strings, checked above to be one run.
        let length = unsafe { end.offset_from(first.as_ptr()) } as usize + 1;
        // SAFETY: as above; the run lives as long as the process.
        Some((
            unsafe { std::slice::from_raw_parts(first.as_ptr(), length) },
            entries,
        ))
    }
}

/// The bytes of a NUL-terminated string, without the NUL.
///
/// # Safety
///
/// `text` points to a NUL-terminated string that lives, unchanged, as
/// long as the process.
unsafe fn c_bytes(text: *const u8) -> &'static [u8] {
    let mut length = 0;
    // SAFETY: the string ends with a NUL, and nothing before it is out of
    // the string. The volatile read keeps the compiler from turning the
    // loop into a call to `strlen`.
    while unsafe { text.add(length).read_volatile() } != 0 {
        length += 1;
    }
    // SAFETY: `length` bytes from `text` are the string, which lives on.
    unsafe { std::slice::from_raw_parts(text, length) }
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
        // the calls. At the kernel's entry rdx holds the function glibc
        // would register with atexit (none for a static executable): zero
        // again, whatever the handler left there.
        ::std::arch::global_asm!(
            ".globl isobox_entry",
            ".type isobox_entry,@function",
            "isobox_entry:",
            "mov r12, rsp",
            "call isobox_relocate",
            "mov rdi, r12",
            "and rsp, -16",
            "call {early}",
            "mov rsp, r12",
            "xor edx, edx",
            "jmp _start",
            ".size isobox_entry, . - isobox_entry",
            early = sym isobox_early,
        );

        // A debug build calls even its own functions through the GOT, and
        // its checks keep addresses in data: it applies the executable's
        // relocations first, as glibc's start-up would (every
        // R_X86_64_RELATIVE entry of DT_RELA: the word at base + offset
        // becomes base + addend; glibc applies them again later, to the
        // same values). In assembly, because nothing compiled from Rust
        // may run before it; `__ehdr_start` is the load address,
        // `_DYNAMIC` the dynamic section, both defined by the linker. A
        // release build does without (the pass costs about 0.14 ms here,
        // in page faults), and `tests/early_start.rs` checks there that
        // the early code needs no relocated word.
        #[cfg(debug_assertions)]
        ::std::arch::global_asm!(
            ".type isobox_relocate,@function",
            "isobox_relocate:",
            "lea rsi, [rip + __ehdr_start]",
            "lea rdi, [rip + _DYNAMIC]",
            "xor ecx, ecx",
            "xor edx, edx",
            "2:",
            "mov rax, [rdi]",
            "test rax, rax",
            "jz 5f",
            "cmp rax, 7",
            "jne 3f",
            "mov rcx, [rdi + 8]",
            "3:",
            "cmp rax, 8",
            "jne 4f",
            "mov rdx, [rdi + 8]",
            "4:",
            "add rdi, 16",
            "jmp 2b",
            "5:",
            "test rcx, rcx",
            "jz 8f",
            "add rcx, rsi",
            "add rdx, rcx",
            "6:",
            "cmp rcx, rdx",
            "jae 8f",
            "cmp dword ptr [rcx + 8], 8",
            "jne 7f",
            "mov rax, [rcx + 16]",
            "add rax, rsi",
            "mov r8, [rcx]",
            "mov [rsi + r8], rax",
            "7:",
            "add rcx, 24",
            "jmp 6b",
            "8:",
            "ret",
            ".size isobox_relocate, . - isobox_relocate",
        );

        #[cfg(not(debug_assertions))]
        ::std::arch::global_asm!(
            ".type isobox_relocate,@function",
            "isobox_relocate:",
            "ret",
            ".size isobox_relocate, . - isobox_relocate",
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
