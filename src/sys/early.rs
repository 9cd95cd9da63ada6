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
//!   is an indirect function resolved only once glibc has started);
//! - no call to `memcpy`, `memset`, `memcmp` or `strlen`, which the
//!   compiler may emit for a loop or a large copy: loops here read through
//!   `read_volatile`, which it leaves alone;
//! - every function here `#[inline]`, so that it is compiled into the
//!   executable's own crate: a call from there into another crate's
//!   function goes through the GOT, a word that needs relocating;
//! - no thread-local storage, no allocation and no panic (none of them
//!   exists yet);
//! - no word that needs relocating (the executable has not applied its
//!   relocations yet): no static data holding an address (a table of
//!   string slices, a vtable), no call through the GOT.
//!
//! Only optimized code without debug checks keeps them, which is why
//! Cargo.toml builds isobox so in the dev profile too; a build with debug
//! assertions skips the early path.

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
    #[inline]
    pub unsafe fn from_stack(stack: *const usize) -> Self {
        // SAFETY: by the caller's promise, the first word is argc and the
        // argument pointers follow it.
        let (argc, argv) = unsafe { (stack.read(), stack.add(1).cast::<*const u8>()) };
        Self { argc, argv }
    }

    /// How many arguments there are, the program's name included.
    #[inline]
    pub fn argc(&self) -> usize {
        self.argc
    }

    /// Argument `index`, without its terminating NUL.
    #[inline]
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
    #[inline]
    fn environment(&self) -> *const *const u8 {
        // SAFETY: argv has argc pointers and then a null one; the
        // environment's pointers start after it.
        unsafe { self.argv.add(self.argc + 1) }
    }

    /// The value of environment variable `name`, if it is set.
    #[inline]
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
    #[inline]
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
    #[inline]
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
#[inline]
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
#[inline]
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
#[inline]
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
    // SAFETY: the caller's promise; the kernel ignores the arguments a
    // call does not take.
    unsafe { syscall6(number, a, b, c, d, 0, 0) }
}

const SYS_READ: usize = 0;
const SYS_WRITE: usize = 1;
const SYS_CLOSE: usize = 3;
const SYS_POLL: usize = 7;
const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_SOCKET: usize = 41;
const SYS_CONNECT: usize = 42;
const SYS_SENDMSG: usize = 46;
const SYS_SENDTO: usize = 44;
const SYS_RECVFROM: usize = 45;
const SYS_GETSOCKOPT: usize = 55;
const SYS_UMASK: usize = 95;
const SYS_GETUID: usize = 102;
const SYS_GETGID: usize = 104;
const SYS_GETEUID: usize = 107;
const SYS_EXIT_GROUP: usize = 231;
const SYS_OPENAT: usize = 257;
const SYS_SIGNALFD4: usize = 289;
/// `-EINTR`, as a system call returns it.
const INTERRUPTED: isize = -4;
/// `-ECONNRESET`.
const CONNECTION_RESET: isize = -104;

/// Standard output and error, for [`write_all`].
pub const STDOUT: i32 = 1;
/// See [`STDOUT`].
pub const STDERR: i32 = 2;

/// Makes a write to a pipe whose reader is gone fail with EPIPE instead of
/// killing the process (glibc's start-up has not ignored SIGPIPE yet):
/// blocked, the signal stays pending, and the exit discards it.
#[inline]
fn block_sigpipe() {
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
}

/// Writes all of `bytes` to `fd`; a failed write (a closed descriptor, a
/// reader gone) ends it quietly, as an unwritable standard output ends
/// `--version` in the rest of the program.
#[inline]
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    block_sigpipe();
    while !bytes.is_empty() {
        // SAFETY: write(fd, bytes, len) only reads `bytes`.
        let written = unsafe {
            syscall4(
                SYS_WRITE,
                fd as usize,
                bytes.as_ptr() as usize,
                bytes.len(),
                0,
            )
        };
        match written {
            INTERRUPTED => continue,
            // `written` is at most bytes.len(): the rest is in bounds.
            1.. => bytes = bytes.get(written as usize..).unwrap_or_default(),
            _ => return,
        }
    }
}

/// Writes all of `bytes` to standard output (see [`write_all`]).
#[inline]
pub fn write_stdout(bytes: &[u8]) {
    write_all(STDOUT, bytes);
}

/// Ends the process with `status`.
#[inline]
pub fn exit(status: u8) -> ! {
    loop {
        // SAFETY: exit_group takes a number and does not return.
        unsafe {
            syscall4(SYS_EXIT_GROUP, usize::from(status), 0, 0, 0);
        }
    }
}

/// Whether the real and the effective user are both root (not a caller of
/// a set-user-ID installation).
#[inline]
pub fn caller_is_root() -> bool {
    // SAFETY: getuid and geteuid take nothing and cannot fail.
    unsafe { syscall4(SYS_GETUID, 0, 0, 0, 0) == 0 && syscall4(SYS_GETEUID, 0, 0, 0, 0) == 0 }
}

/// Whether the real group is root's.
#[inline]
pub fn caller_group_is_root() -> bool {
    // SAFETY: getgid takes nothing and cannot fail.
    unsafe { syscall4(SYS_GETGID, 0, 0, 0, 0) == 0 }
}

/// The process's file-creation mask (read by setting it and setting it
/// back).
#[inline]
pub fn umask() -> u32 {
    // SAFETY: umask takes a number and cannot fail.
    let mask = unsafe { syscall4(SYS_UMASK, 0o022, 0, 0, 0) };
    // SAFETY: as above; this puts the old mask back.
    unsafe { syscall4(SYS_UMASK, mask as usize, 0, 0, 0) };
    mask as u32
}

/// Bytes built on the stack, without `memcpy` (see the module's rules).
pub struct Text<const N: usize> {
    bytes: [std::mem::MaybeUninit<u8>; N],
    length: usize,
}

impl<const N: usize> Text<N> {
    /// An empty text.
    #[inline]
    pub fn new() -> Self {
        Self {
            bytes: [const { std::mem::MaybeUninit::uninit() }; N],
            length: 0,
        }
    }

    /// Appends `bytes`; `false` (and nothing appended) when they do not
    /// fit.
    #[inline]
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > N - self.length {
            return false;
        }
        let mut index = 0;
        while index < bytes.len() {
            // SAFETY: index < bytes.len(), and length + index < N by the
            // check above. Volatile, so that no `memcpy` replaces the loop.
            unsafe {
                let byte = bytes.as_ptr().add(index).read_volatile();
                self.bytes
                    .as_mut_ptr()
                    .add(self.length + index)
                    .cast::<u8>()
                    .write_volatile(byte);
            }
            index += 1;
        }
        self.length += bytes.len();
        true
    }

    /// Appends `number` in decimal.
    #[inline]
    pub fn push_decimal(&mut self, mut number: u64) -> bool {
        let mut digits = [0u8; 20];
        let mut first = digits.len();
        loop {
            first -= 1;
            // SAFETY: a u64 has at most 20 digits, so `first` stays in
            // bounds.
            unsafe { *digits.as_mut_ptr().add(first) = b'0' + (number % 10) as u8 };
            number /= 10;
            if number == 0 {
                break;
            }
        }
        self.push(digits.get(first..).unwrap_or_default())
    }

    /// What was appended.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: the first `length` bytes were written by `push`.
        unsafe { std::slice::from_raw_parts(self.bytes.as_ptr().cast(), self.length) }
    }
}

impl<const N: usize> Default for Text<N> {
    #[inline]
    fn default() -> Self {
        Self::new()
    }
}

/// A descriptor this early code opened; closed when dropped.
pub struct Descriptor(i32);

impl Descriptor {
    /// The descriptor's number.
    #[inline]
    pub fn raw(&self) -> i32 {
        self.0
    }

    /// A descriptor from what a system call returned, if it succeeded.
    #[inline]
    fn from_result(result: isize) -> Option<Self> {
        (result >= 0).then_some(Self(result as i32))
    }
}

impl Drop for Descriptor {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this descriptor is this value's own.
        unsafe { syscall4(SYS_CLOSE, self.0 as usize, 0, 0, 0) };
    }
}

/// Opens `path`, which must end with a NUL, with `flags` (close-on-exec
/// is added).
#[inline]
fn open(path: &[u8], flags: i32) -> Option<Descriptor> {
    if path.last() != Some(&0) {
        return None;
    }
    // SAFETY: a NUL-terminated path, read by the kernel only.
    let result = unsafe {
        syscall4(
            SYS_OPENAT,
            libc::AT_FDCWD as usize,
            path.as_ptr() as usize,
            (flags | libc::O_CLOEXEC) as usize,
            0,
        )
    };
    Descriptor::from_result(result)
}

/// Reads the file at `path` (ending with a NUL) into `buffer`; `None` if
/// it cannot be read or does not fit.
#[inline]
pub fn read_file<'a>(path: &[u8], buffer: &'a mut [std::mem::MaybeUninit<u8>]) -> Option<&'a [u8]> {
    let file = open(path, libc::O_RDONLY)?;
    let mut length = 0;
    loop {
        let room = buffer.len() - length;
        if room == 0 {
            return None;
        }
        // SAFETY: read(fd, buffer + length, room) writes at most `room`
        // bytes, all inside `buffer`.
        let got = unsafe {
            syscall4(
                SYS_READ,
                file.raw() as usize,
                buffer.as_mut_ptr().add(length) as usize,
                room,
                0,
            )
        };
        match got {
            0 => break,
            INTERRUPTED => continue,
            1.. => length += got as usize,
            _ => return None,
        }
    }
    // SAFETY: the first `length` bytes were written by read.
    Some(unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast(), length) })
}

/// The current directory, opened as a path (to be sent along).
#[inline]
pub fn open_current_directory() -> Option<Descriptor> {
    open(b".\0", libc::O_PATH | libc::O_DIRECTORY)
}

/// Connects a sequenced-packet socket to the Unix socket at `path` (no
/// NUL), whose listener must be root.
#[inline]
pub fn connect_to_root(path: &[u8]) -> Option<Descriptor> {
    let mut address = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    if path.len() >= address.sun_path.len() {
        return None;
    }
    let mut index = 0;
    while index < path.len() {
        // SAFETY: index < path.len() < sun_path's length. Volatile: no
        // `memcpy`.
        unsafe {
            let byte = path.as_ptr().add(index).read_volatile();
            address
                .sun_path
                .as_mut_ptr()
                .add(index)
                .write_volatile(byte as libc::c_char);
        }
        index += 1;
    }
    // SAFETY: socket takes numbers only.
    let socket = Descriptor::from_result(unsafe {
        syscall4(
            SYS_SOCKET,
            libc::AF_UNIX as usize,
            (libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC) as usize,
            0,
            0,
        )
    })?;
    let length = std::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
    // SAFETY: connect reads `length` bytes of `address`, which holds the
    // path and its NUL (sun_path was zeroed).
    let connected = unsafe {
        syscall4(
            SYS_CONNECT,
            socket.raw() as usize,
            std::ptr::addr_of!(address) as usize,
            length,
            0,
        )
    };
    if connected != 0 {
        return None;
    }
    let mut peer = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut peer_length = std::mem::size_of::<libc::ucred>() as u32;
    // The credentials of whoever listens there, which must be root.
    // SAFETY: getsockopt(SO_PEERCRED) writes a ucred into `peer`, at most
    // `peer_length` bytes.
    let asked = unsafe {
        syscall6(
            SYS_GETSOCKOPT,
            socket.raw() as usize,
            libc::SOL_SOCKET as usize,
            libc::SO_PEERCRED as usize,
            std::ptr::addr_of_mut!(peer) as usize,
            std::ptr::addr_of_mut!(peer_length) as usize,
            0,
        )
    };
    (asked == 0 && peer.uid == 0).then_some(socket)
}

/// Sends `header` and `body` as one message on `socket`, with `fds`.
#[inline]
pub fn send_with_descriptors(
    socket: &Descriptor,
    header: &[u8],
    body: &[u8],
    fds: [i32; 4],
) -> bool {
    #[repr(C)]
    struct Control {
        header: libc::cmsghdr,
        fds: [i32; 4],
    }
    let mut control = Control {
        header: libc::cmsghdr {
            cmsg_len: std::mem::size_of::<libc::cmsghdr>() + std::mem::size_of::<[i32; 4]>(),
            cmsg_level: libc::SOL_SOCKET,
            cmsg_type: libc::SCM_RIGHTS,
        },
        fds,
    };
    let mut parts = [
        libc::iovec {
            iov_base: header.as_ptr() as *mut libc::c_void,
            iov_len: header.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: a msghdr is plain data; zero is a valid value for each field.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = parts.as_mut_ptr();
    message.msg_iovlen = parts.len();
    message.msg_control = std::ptr::addr_of_mut!(control).cast();
    message.msg_controllen = std::mem::size_of::<Control>();
    loop {
        // SAFETY: sendmsg reads the message, its two parts and its
        // control data, all alive for the call.
        let sent = unsafe {
            syscall4(
                SYS_SENDMSG,
                socket.raw() as usize,
                std::ptr::addr_of!(message) as usize,
                libc::MSG_NOSIGNAL as usize,
                0,
            )
        };
        if sent != INTERRUPTED {
            return sent >= 0 && sent as usize == header.len() + body.len();
        }
    }
}

/// Sends `bytes` as one message on `socket`.
#[inline]
pub fn send(socket: &Descriptor, bytes: &[u8]) -> bool {
    // SAFETY: sendto(fd, bytes, len, flags, NULL, 0) only reads `bytes`.
    let sent = unsafe {
        syscall6(
            SYS_SENDTO,
            socket.raw() as usize,
            bytes.as_ptr() as usize,
            bytes.len(),
            libc::MSG_NOSIGNAL as usize,
            0,
            0,
        )
    };
    sent >= 0
}

/// The interruption signals, blocked and readable from a signalfd while
/// this lives; the old mask comes back when it is dropped.
pub struct Interruptions {
    signals: Descriptor,
    old_mask: u64,
}

impl Interruptions {
    /// Blocks `signals` and opens a signalfd for them.
    #[inline]
    pub fn catch(signals: &[i32]) -> Option<Self> {
        let mut mask: u64 = 0;
        for signal in signals {
            mask |= 1u64.checked_shl((*signal - 1) as u32).unwrap_or(0);
        }
        let mut old_mask: u64 = 0;
        // SAFETY: rt_sigprocmask reads `mask` and writes the old mask to
        // `old_mask`, both on this stack.
        let blocked = unsafe {
            syscall4(
                SYS_RT_SIGPROCMASK,
                libc::SIG_BLOCK as usize,
                std::ptr::addr_of!(mask) as usize,
                std::ptr::addr_of_mut!(old_mask) as usize,
                std::mem::size_of::<u64>(),
            )
        };
        if blocked != 0 {
            return None;
        }
        // SAFETY: signalfd4(-1, &mask, sizeof mask, SFD_CLOEXEC) reads the
        // mask only.
        let signals = Descriptor::from_result(unsafe {
            syscall4(
                SYS_SIGNALFD4,
                usize::MAX,
                std::ptr::addr_of!(mask) as usize,
                std::mem::size_of::<u64>(),
                libc::SFD_CLOEXEC as usize,
            )
        });
        let caught = Self {
            signals: signals?,
            old_mask,
        };
        Some(caught)
    }
}

impl Drop for Interruptions {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: rt_sigprocmask(SIG_SETMASK, &old, NULL) reads the mask.
        unsafe {
            syscall4(
                SYS_RT_SIGPROCMASK,
                libc::SIG_SETMASK as usize,
                std::ptr::addr_of!(self.old_mask) as usize,
                0,
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// What [`wait`] saw.
pub enum Wake {
    /// A message of this many bytes arrived in the buffer (0: the end of
    /// the connection).
    Message(usize),
    /// This interruption signal arrived.
    Signal(i32),
    /// The peer closed the connection with what was sent to it unread
    /// (or never accepted it): the kernel resets such a connection.
    Reset,
    /// The socket failed otherwise.
    Failed,
}

/// Waits for a message on `socket` (received into `buffer`) or for an
/// interruption.
#[inline]
pub fn wait(socket: &Descriptor, interruptions: &Interruptions, buffer: &mut [u8]) -> Wake {
    let mut entries = [
        libc::pollfd {
            fd: socket.raw(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: interruptions.signals.raw(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: poll reads and writes the two entries, on this stack.
        let ready = unsafe { syscall4(SYS_POLL, entries.as_mut_ptr() as usize, 2, usize::MAX, 0) };
        if ready == INTERRUPTED {
            continue;
        }
        if ready < 0 {
            return Wake::Failed;
        }
        if entries[1].revents != 0 {
            // A signalfd_siginfo is 128 bytes; the signal's number first.
            let mut info = [0u32; 32];
            // SAFETY: read writes at most 128 bytes into `info`.
            let got = unsafe {
                syscall4(
                    SYS_READ,
                    interruptions.signals.raw() as usize,
                    info.as_mut_ptr() as usize,
                    std::mem::size_of_val(&info),
                    0,
                )
            };
            if got > 0 {
                return Wake::Signal(info[0] as i32);
            }
        }
        if entries[0].revents != 0 {
            // SAFETY: recvfrom(fd, buffer, len, 0, NULL, NULL) writes at
            // most `len` bytes into `buffer`.
            let got = unsafe {
                syscall6(
                    SYS_RECVFROM,
                    socket.raw() as usize,
                    buffer.as_mut_ptr() as usize,
                    buffer.len(),
                    0,
                    0,
                    0,
                )
            };
            return match got {
                INTERRUPTED => continue,
                0.. => Wake::Message(got as usize),
                CONNECTION_RESET => Wake::Reset,
                _ => Wake::Failed,
            };
        }
    }
}

/// One system call with up to six arguments, made by hand (see the
/// module's rules). Returns the kernel's value: negative is `-errno`.
///
/// # Safety
///
/// The call must be one whose arguments are valid as given.
#[inline(always)]
unsafe fn syscall6(
    number: usize,
    a: usize,
    b: usize,
    c: usize,
    d: usize,
    e: usize,
    f: usize,
) -> isize {
    let result: isize;
    // SAFETY: the x86-64 Linux system call convention: number in rax,
    // arguments in rdi, rsi, rdx, r10, r8 and r9; the kernel clobbers rcx
    // and r11. What the call does is the caller's promise.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number as isize => result,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            in("r8") e,
            in("r9") f,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
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
        /// (`C-unwind`: nothing here can unwind, there being no panic, and
        /// plain `C` would add a guard that calls into the panic
        /// machinery, through the GOT, should anything unwind.)
        extern "C-unwind" fn isobox_early(stack: *const usize) {
            // Unoptimized code with debug checks calls through the GOT and
            // into glibc (memcpy, panics): such a build starts the ordinary
            // way (Cargo.toml's dev profile builds isobox without them).
            if cfg!(debug_assertions) {
                return;
            }
            // SAFETY: `isobox_entry` passes the stack pointer as the
            // kernel set it, before anything ran.
            let start = unsafe { $crate::sys::early::Start::from_stack(stack) };
            $handler(&start);
        }
    };
}
