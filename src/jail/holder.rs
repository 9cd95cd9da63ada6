//! The holder of a warm box: a process that outlives one run.
//!
//! The holder is cloned like a proxy, into the box's namespaces and its
//! cgroup, builds the box's filesystem and pivots into it once, and then
//! serves run after run: for each it forks an inmate, which drops to the
//! box's user and executes the program as [`inmate`](super::inmate) does,
//! reaps everything the run left, reports, and renews the box's writable
//! mounts (`/tmp`, `/dev/shm`) before it waits for the next run.
//!
//! The holder is a child of a possibly multithreaded keeper that never
//! executes anything, so for its whole life it may only make
//! async-signal-safe calls: no allocation, no lock. What one run needs
//! (argv, environment, rlimits, working directory, stdio files) therefore
//! travels through memory mapped `MAP_SHARED` before the clone, at the same
//! address in both processes: the keeper writes a [`RunPlan`] and the
//! C strings and pointer arrays it points to there, then sends the run's
//! stdin, stdout, stderr and status-pipe descriptors with one byte over a
//! `SOCK_SEQPACKET` socket. What stays the same from run to run (the mount
//! plan, the seccomp filter, the credentials) is read from the holder's own
//! copy of the [`JailSpec`] it was cloned with.
//!
//! Protocol on the socket, one byte each way: the holder says
//! [`READY`] once the box is built; the keeper says [`GO`] with four
//! descriptors; the holder answers [`DONE`] when the run is over, every
//! process of it reaped and the box renewed, or [`BROKEN`] (then exits)
//! when the renewal failed. The holder exits when the keeper's end closes;
//! when that happens during a run (the keeper died), `SIGIO` kills the
//! program first.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use super::mounts::{RenewMark, MAX_RENEWED};
use super::proxy::{self, INMATE_PID};
use super::report::{read_reports, ChildReport, RawReport};
use super::{
    credentials, fail, fail_at, inmate, namespaces, CgroupEntry, Credentials, JailError, JailSpec,
    Proxy, Rlimits, Stage, MAX_TASK_FILES,
};
use crate::sys::errno;

/// Bytes of shared memory for one run's plan; a run whose arguments and
/// environment do not fit runs cold.
const REGION_SIZE: usize = 4 << 20;

/// How long the holder may take to build the box.
const BUILD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes of the stack each inmate starts on (below it, a guard page).
const INMATE_STACK: usize = 1 << 20;

/// Holder to keeper: the box is built.
const READY: u8 = 1;
/// Keeper to holder: run the plan, with these descriptors.
const GO: u8 = 2;
/// Holder to keeper: the run is over and the box renewed.
const DONE: u8 = 3;
/// Holder to keeper: the box could not be renewed; the holder exits.
const BROKEN: u8 = 4;
/// Keeper to holder: put this detached mount where the working directory
/// is (a spare box given to its box); answered with [`DONE`] or
/// [`BROKEN`].
const ATTACH: u8 = 5;

/// Descriptors a [`GO`] carries at most: stdin, stdout, stderr, the status
/// pipe and (cgroup v2) the run's cgroup directory.
const MAX_GO_FDS: usize = 5;

/// The keeper's socket as the holder's `SIGIO` handler sees it.
static SOCKET: AtomicI32 = AtomicI32::new(-1);

/// The holder has started a run: its box's directory is no longer
/// replaced (a program may have made its mount point's path its own).
static SERVED_A_RUN: AtomicBool = AtomicBool::new(false);

/// One run's plan at the start of the shared region; every pointer points
/// into the region.
#[repr(C)]
struct RunPlan {
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// Paths to try with `execve`, NULL-terminated.
    candidates: *const *const libc::c_char,
    box_dir: *const libc::c_char,
    cwd: *const libc::c_char,
    /// NULL where the stream is not a file.
    stdio_files: [*const libc::c_char; 3],
    stderr_to_stdout: bool,
    rlimits: Rlimits,
    /// The ids the program runs as: the run's, not the holder's, so that
    /// a spare box built before its box was known serves that box's user.
    credentials: Option<Credentials>,
    /// Set by the holder just before it starts the inmate: a holder that
    /// died with this unset never started the run, which can then go cold.
    started: AtomicBool,
}

/// Memory shared between the keeper and its holder.
#[derive(Debug)]
struct Region {
    base: *mut u8,
}

// SAFETY: the region is plain memory owned by this value alone on the
// keeper's side; it is written only through `&mut self` methods of the
// holder, never from two threads at once.
unsafe impl Send for Region {}

impl Region {
    fn new() -> Result<Self, JailError> {
        // SAFETY: an anonymous shared mapping with no address hint; the
        // result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                REGION_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(syscall_error("mmap", std::io::Error::last_os_error()));
        }
        Ok(Self { base: base.cast() })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; the holder has
        // its own mapping of the same memory.
        unsafe { libc::munmap(self.base.cast(), REGION_SIZE) };
    }
}

/// The inmates' stack, mapped before the clone: the holder's copy is its
/// own (a private mapping), the keeper's is unmapped once the holder runs.
struct Stack {
    base: *mut u8,
}

impl Stack {
    const LEN: usize = INMATE_STACK + 4096;

    fn new() -> Result<Self, JailError> {
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(syscall_error("mmap", std::io::Error::last_os_error()));
        }
        let stack = Self { base: base.cast() };
        // SAFETY: the lowest page of the mapping just made: a stack that
        // overflows faults instead of writing below it.
        if unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) } != 0 {
            return Err(syscall_error("mprotect", std::io::Error::last_os_error()));
        }
        Ok(stack)
    }

    /// The top of the stack (it grows down), page aligned.
    fn top(&self) -> *mut u8 {
        // SAFETY: one past the end of the mapping.
        unsafe { self.base.add(Self::LEN) }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), Self::LEN) };
    }
}

/// Fills the region past the [`RunPlan`], bump by bump.
struct Writer<'a> {
    region: &'a mut Region,
    used: usize,
}

impl Writer<'_> {
    fn alloc(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        let start = self.used.checked_add(align - 1)? / align * align;
        let end = start.checked_add(size)?;
        if end > REGION_SIZE {
            return None;
        }
        self.used = end;
        // SAFETY: start < end <= REGION_SIZE: inside the mapping.
        Some(unsafe { self.region.base.add(start) })
    }

    fn string(&mut self, text: &CStr) -> Option<*const libc::c_char> {
        let bytes = text.to_bytes_with_nul();
        let at = self.alloc(bytes.len(), 1)?;
        // SAFETY: `at` has room for `bytes` (just allocated) and the two
        // never overlap (one is the keeper's heap).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len()) };
        Some(at.cast_const().cast())
    }

    /// The strings and a NULL-terminated array of pointers to them.
    fn strings<'s>(
        &mut self,
        texts: impl ExactSizeIterator<Item = &'s CStr>,
    ) -> Option<*const *const libc::c_char> {
        let count = texts.len();
        let size = (count + 1).checked_mul(std::mem::size_of::<*const libc::c_char>())?;
        let array: *mut *const libc::c_char = self
            .alloc(size, std::mem::align_of::<*const libc::c_char>())?
            .cast();
        for (index, text) in texts.enumerate() {
            let copied = self.string(text)?;
            // SAFETY: index < count: inside the array just allocated,
            // which is aligned for pointers.
            unsafe { array.add(index).write(copied) };
        }
        // SAFETY: the last slot of the array.
        unsafe { array.add(count).write(std::ptr::null()) };
        Some(array.cast_const())
    }
}

fn syscall_error(call: &'static str, source: std::io::Error) -> JailError {
    JailError::Syscall { call, source }
}

/// The descriptors the holder starts with, all close-on-exec in the keeper.
#[derive(Clone, Copy)]
struct HolderFds {
    socket: RawFd,
    report: RawFd,
    null: RawFd,
    netns: RawFd,
    cgroup_tasks: [RawFd; MAX_TASK_FILES],
    /// Top of the inmates' stack.
    stack: *mut u8,
}

/// A warm box's holder, as the keeper sees it.
#[derive(Debug)]
pub(crate) struct Holder {
    /// The holder's pid and pidfd, for the keeper's stop and kill.
    proxy: Proxy,
    socket: OwnedFd,
    region: Region,
    reaped: Option<i32>,
}

impl Holder {
    /// Clones the holder into `spec`'s namespaces and the box's cgroup
    /// (`cgroup`: born in it on v2, joining it through its `tasks` files
    /// on v1), and waits until it has built the box. `spec` gives
    /// everything that stays the same from run to run; its command is never
    /// run. A failed setup step is an error naming it.
    pub(crate) fn spawn(spec: &JailSpec, cgroup: CgroupEntry<'_>) -> Result<Self, JailError> {
        let (tasks, born_in): (&[File], _) = match cgroup {
            CgroupEntry::None => (&[], None),
            CgroupEntry::Join(tasks) => (tasks, None),
            CgroupEntry::Born(fd) => (&[], Some(fd.as_raw_fd())),
        };
        if tasks.len() > MAX_TASK_FILES {
            return Err(syscall_error(
                "joining the warm box's cgroup",
                std::io::Error::other("too many cgroup hierarchies"),
            ));
        }
        let region = Region::new()?;
        let stack = Stack::new()?;
        let (socket, holder_end) = socket_pair()?;
        let (report_read, report_write) =
            crate::sys::pipe().map_err(|source| syscall_error("pipe", source))?;
        let null = File::open("/dev/null")
            .and_then(|null| crate::sys::above_stdio(OwnedFd::from(null)))
            .map_err(|source| syscall_error("opening /dev/null", source))?;
        let mut fds = HolderFds {
            socket: holder_end.as_raw_fd(),
            report: report_write.as_raw_fd(),
            null: null.as_raw_fd(),
            netns: spec.network_namespace.unwrap_or(-1),
            cgroup_tasks: [-1; MAX_TASK_FILES],
            stack: stack.top(),
        };
        for (slot, file) in fds.cgroup_tasks.iter_mut().zip(tasks) {
            *slot = file.as_raw_fd();
        }
        let plan = region.base.cast_const().cast::<RunPlan>();
        // SAFETY: the child branch runs only holder_main, which is
        // async-signal-safe and never returns.
        let cloned = unsafe { namespaces::clone_box(spec.namespaces, born_in) }
            .map_err(|source| syscall_error("clone3", source))?;
        let (pid, pidfd) = match cloned {
            namespaces::Cloned::Child => {
                // SAFETY: we are the freshly cloned child; `spec`, `fds`
                // and the region are ours (the region shared).
                unsafe { holder_main(spec, fds, plan) }
            }
            namespaces::Cloned::Parent { pid, pidfd } => (pid, pidfd),
        };
        drop((holder_end, report_write, null, stack));
        let mut holder = Self {
            proxy: Proxy {
                pid,
                // SAFETY: clone3 with CLONE_PIDFD stored a new descriptor
                // that nothing else owns.
                pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
                in_cgroup: true,
            },
            socket,
            region,
            reaped: None,
        };
        // A box that takes this long to build is stuck (a mount that
        // hangs): it is killed rather than waited for.
        let deadline = std::time::Instant::now() + BUILD_TIMEOUT;
        let answered = loop {
            let mut entries = [crate::sys::poll_entry(
                holder.socket.as_raw_fd(),
                crate::sys::POLLIN,
            )];
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match crate::sys::poll(&mut entries, Some(left)) {
                Ok(1) => break true,
                // Interrupted (0 before the deadline): wait on.
                Ok(_) if !left.is_zero() => {}
                _ => break false,
            }
        };
        if answered && holder.receive_byte(0) == Some(READY) {
            return Ok(holder);
        }
        holder.kill();
        let reports = read_reports(report_read).unwrap_or_default();
        let failed = reports.into_iter().find_map(|report| match report {
            ChildReport::SetupFailed {
                stage,
                errno,
                detail,
            } => Some((stage, errno, detail)),
            ChildReport::InmateExited { .. } => None,
        });
        Err(match failed {
            Some((Stage::Filesystem, errno, detail)) => syscall_error(
                Stage::Filesystem.describe(),
                std::io::Error::other(format!(
                    "{}: {}",
                    spec.describe_mount_step(detail),
                    crate::sys::strerror(errno)
                )),
            ),
            Some((stage, errno, _)) => {
                syscall_error(stage.describe(), std::io::Error::from_raw_os_error(errno))
            }
            None => syscall_error(
                "starting the warm box",
                std::io::Error::other("the holder ended without reporting"),
            ),
        })
    }

    /// The holder as the keeper's watch loop stops and kills it.
    pub(crate) fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Readable once the current run is over (or the holder is gone).
    pub(crate) fn ended_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Whether the holder is still there to serve a run.
    pub(crate) fn is_alive(&self) -> bool {
        if self.reaped.is_some() {
            return false;
        }
        // A pidfd is readable once its process has exited; a dying holder
        // closes its socket well before that, and a living one never
        // writes between runs.
        let mut entries = [
            crate::sys::poll_entry(self.proxy.pidfd.as_raw_fd(), crate::sys::POLLIN),
            crate::sys::poll_entry(
                self.socket.as_raw_fd(),
                crate::sys::POLLIN | libc::POLLRDHUP,
            ),
        ];
        matches!(
            crate::sys::poll(&mut entries, Some(std::time::Duration::ZERO)),
            Ok(0)
        )
    }

    /// After the holder ended without an answer: whether it had started the
    /// inmate of the run last sent. When not, nothing of that run ran.
    pub(crate) fn started(&self) -> bool {
        // SAFETY: the region starts with the RunPlan written by `prepare`;
        // the holder writes only `started` in it, atomically.
        unsafe { &(*self.region.base.cast::<RunPlan>()).started }.load(Ordering::Acquire)
    }

    /// Writes the plan of the next run of `spec` (its command, environment,
    /// working directory, stdio files and rlimits) into the shared region.
    /// `false` when it does not fit.
    pub(crate) fn prepare(&mut self, spec: &JailSpec) -> bool {
        let mut writer = Writer {
            region: &mut self.region,
            used: std::mem::size_of::<RunPlan>(),
        };
        let mut written = || {
            let argv = writer.strings(spec._argv.iter().map(CString::as_c_str))?;
            let envp = writer.strings(spec._envp.iter().map(CString::as_c_str))?;
            let candidates = writer.strings(spec.candidates.iter().map(CString::as_c_str))?;
            let box_dir = writer.string(&spec.box_dir)?;
            let cwd = writer.string(&spec.cwd)?;
            let mut stdio_files = [std::ptr::null(); 3];
            for (slot, file) in stdio_files.iter_mut().zip(&spec.stdio_files) {
                if let Some(file) = file {
                    *slot = writer.string(file)?;
                }
            }
            Some(RunPlan {
                argv,
                envp,
                candidates,
                box_dir,
                cwd,
                stdio_files,
                stderr_to_stdout: spec.stderr_to_stdout,
                rlimits: spec.rlimits,
                credentials: spec.credentials,
                started: AtomicBool::new(false),
            })
        };
        let Some(plan) = written() else {
            return false;
        };
        // SAFETY: the region starts with room for a RunPlan and is page
        // aligned; the holder reads it only after the next GO.
        unsafe { self.region.base.cast::<RunPlan>().write(plan) };
        true
    }

    /// Starts the prepared run with these stdin, stdout, stderr and
    /// status-pipe write end; on cgroup v2 with `cgroup`, the directory of
    /// the run's own cgroup, which the inmate is born into.
    pub(crate) fn go(
        &self,
        fds: [BorrowedFd<'_>; 4],
        cgroup: Option<BorrowedFd<'_>>,
    ) -> Result<(), JailError> {
        let mut raw = [-1 as RawFd; MAX_GO_FDS];
        for (slot, fd) in raw.iter_mut().zip(fds.into_iter().chain(cgroup)) {
            *slot = fd.as_raw_fd();
        }
        let count = if cgroup.is_some() { 5 } else { 4 };
        self.send_message(GO, &raw[..count])
            .map_err(|source| syscall_error("starting a run in the warm box", source))
    }

    /// Puts `tree`, a detached mount of the box's directory, in place of
    /// the stand-in working directory a spare box was built around (see
    /// [`MountPlan::replace_workdir`](super::MountPlan::replace_workdir)),
    /// and waits until the holder has done it. On failure the holder is
    /// gone.
    pub(crate) fn attach_workdir(&mut self, tree: BorrowedFd<'_>) -> Result<(), JailError> {
        let failed = |source| syscall_error("giving the spare box its directory", source);
        if let Err(error) = self.send_message(ATTACH, &[tree.as_raw_fd()]) {
            self.kill();
            return Err(failed(error));
        }
        let mut entries = [crate::sys::poll_entry(
            self.socket.as_raw_fd(),
            crate::sys::POLLIN,
        )];
        let answered = matches!(crate::sys::poll(&mut entries, Some(BUILD_TIMEOUT)), Ok(1));
        if answered && self.receive_byte(0) == Some(DONE) {
            return Ok(());
        }
        self.kill();
        Err(failed(std::io::Error::other(
            "the holder could not mount the box's directory",
        )))
    }

    /// Sends `byte` with the descriptors `raw` (at most [`MAX_GO_FDS`]).
    fn send_message(&self, byte: u8, raw: &[RawFd]) -> std::io::Result<()> {
        let raw = &raw[..raw.len().min(MAX_GO_FDS)];
        let mut byte = byte;
        let mut iov = libc::iovec {
            iov_base: (&mut byte as *mut u8).cast(),
            iov_len: 1,
        };
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain old data; all-zero is a valid value.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        let data_len = std::mem::size_of_val(raw) as u32;
        // SAFETY: CMSG_SPACE only computes a size.
        message.msg_controllen = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        // SAFETY: the control buffer is 64 bytes, aligned for cmsghdr, and
        // holds CMSG_SPACE(20) = 40 bytes at most (`raw` has at most
        // MAX_GO_FDS); the header and its data are written inside it.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::copy_nonoverlapping(
                raw.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(header),
                data_len as usize,
            );
        }
        // SAFETY: `message` points at live buffers for the call.
        let sent = unsafe { libc::sendmsg(self.socket.as_raw_fd(), &message, libc::MSG_NOSIGNAL) };
        if sent != 1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// After [`ended_fd`](Self::ended_fd) turned readable: whether the
    /// holder finished the run and renewed the box, ready for the next.
    pub(crate) fn finish(&mut self) -> bool {
        self.receive_byte(libc::MSG_DONTWAIT) == Some(DONE)
    }

    /// Kills the holder (and with it the box) and reaps it; its wait status.
    pub(crate) fn kill(&mut self) -> i32 {
        if let Some(status) = self.reaped {
            return status;
        }
        let _ = crate::sys::pidfd_send_signal(self.proxy.pidfd.as_fd(), libc::SIGKILL);
        let status = crate::sys::wait4(self.proxy.pid).map_or(0, |(status, _)| status);
        self.reaped = Some(status);
        status
    }

    fn receive_byte(&self, flags: libc::c_int) -> Option<u8> {
        let mut byte = 0u8;
        loop {
            // SAFETY: reads at most one byte into a stack variable.
            let got = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    (&mut byte as *mut u8).cast(),
                    1,
                    flags,
                )
            };
            match got {
                1 => return Some(byte),
                -1 if errno() == libc::EINTR => {}
                _ => return None,
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A connected pair of close-on-exec `SOCK_SEQPACKET` sockets, numbered
/// above 2.
fn socket_pair() -> Result<(OwnedFd, OwnedFd), JailError> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let made = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if made != 0 {
        return Err(syscall_error("socketpair", std::io::Error::last_os_error()));
    }
    // SAFETY: socketpair succeeded: both descriptors are open and ours.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let above = |fd| crate::sys::above_stdio(fd).map_err(|source| syscall_error("dup", source));
    Ok((above(a)?, above(b)?))
}

/// `SIGIO` on the socket: when the keeper's end is gone, the program must
/// not outlive it.
extern "C" fn keeper_gone(_signal: libc::c_int) {
    let socket = SOCKET.load(Ordering::Relaxed);
    let mut entry = libc::pollfd {
        fd: socket,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: poll on one entry of our own, without waiting; poll is
    // async-signal-safe.
    let polled = unsafe { libc::poll(&mut entry, 1, 0) };
    if polled == 1 && entry.revents & (libc::POLLHUP | libc::POLLRDHUP) != 0 {
        proxy::kill_inmate(libc::SIGIO);
    }
}

/// The holder's steps, in order:
/// 1. default `SIGCHLD`, an empty signal mask, the proxy's stop handler
///    (the keeper's stop request kills the program) and a `SIGIO` handler
///    that kills it when the keeper is gone;
/// 2. join the box's cgroup (cgroup v1), so the holder and every run are
///    in it from birth: no run is ever moved between cgroups;
/// 3. `/dev/null` on 0–2, every other descriptor but the socket, the
///    status pipe and the network namespace closed;
/// 4. the proxy's namespace steps, filesystem and session;
/// 5. non-dumpable (nothing of the box's user may ptrace or read it),
///    `SIGIO` on the socket, out of the OOM killer's reach;
/// 6. [`READY`], then one run per [`GO`] (see [`serve`]) until the
///    keeper's end of the socket closes.
///
/// # Safety
/// Runs in the child of `clone3`; only async-signal-safe calls. Every step
/// has the contract of the proxy's: it runs once, in this child, in order.
unsafe fn holder_main(spec: &JailSpec, fds: HolderFds, plan: *const RunPlan) -> ! {
    let report = fds.report;
    // Every disposition the keeper had back to the default once, so that
    // an inmate needs to undo only the holder's own three (see
    // `warm_inmate`) instead of every signal per run. SIGPIPE stays
    // ignored, as the keeper (a Rust program) had it: a status pipe whose
    // reader gave up on a run must be an EPIPE for the holder, not its end.
    // SAFETY: the holder's first step (see the function's contract).
    unsafe {
        inmate::reset_signals(report);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // SAFETY: as above.
    unsafe { holder_signals(fds.socket) };
    // SAFETY: as above; the descriptors are the keeper's `tasks` files.
    unsafe { proxy::join_cgroup(&fds.cgroup_tasks, report) };
    proxy::place_on_cpus(spec, report);
    for target in 0..3 {
        // SAFETY: dup2 on descriptors of this child's own table; `null`
        // is above 2.
        if unsafe { libc::dup2(fds.null, target) } < 0 {
            fail(report, Stage::Stdio, errno());
        }
    }
    // SAFETY: this child owns nothing among the descriptors it closes but
    // the keeper's copies, which it does not need.
    unsafe { proxy::close_all_except(3, [fds.socket, report, fds.netns]) };
    if fds.netns >= 0 {
        // SAFETY: as for the first step; `netns` is an nsfs descriptor.
        unsafe { proxy::join_network(fds.netns, report) };
    }
    // SAFETY: as for the first step.
    let sysctl_dir = unsafe { proxy::set_up_namespaces(spec, report) };
    // SAFETY: as for the first step; opened while /proc is the host's.
    let oom_score = unsafe { proxy::open_flag_file(c"/proc/self/oom_score_adj", libc::O_WRONLY) };
    if let Some(mounts) = &spec.mounts {
        // SAFETY: as for the first step; the plan was prepared before the
        // clone.
        if let Err((step, errno)) = unsafe { mounts.enter() } {
            fail_at(report, Stage::Filesystem, errno, step);
        }
    }
    // What the fresh writable mounts look like: a run that leaves them so
    // costs no remount.
    let mut marks: [Option<RenewMark>; MAX_RENEWED] = [None; MAX_RENEWED];
    if let Some(mounts) = &spec.mounts {
        // SAFETY: as for the first step, after the pivot.
        if let Err((step, errno)) = unsafe { mounts.renew(&mut marks, false) } {
            fail_at(report, Stage::Filesystem, errno, step);
        }
    }
    // SAFETY: as for the first step.
    unsafe { proxy::start_session(false, report) };
    // Once for every run: the inmates inherit the empty bounding set (the
    // holder never executes anything, and what it still does as root needs
    // effective capabilities, which the bounding set does not touch), so
    // none of them pays 64 credential changes for it.
    // SAFETY: as for the first step.
    unsafe { credentials::drop_bounding_set() };
    // SAFETY: prctl and fcntl on the calling process and its own socket.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::fcntl(fds.socket, libc::F_SETOWN, libc::getpid());
        let flags = libc::fcntl(fds.socket, libc::F_GETFL);
        libc::fcntl(fds.socket, libc::F_SETFL, flags | libc::O_ASYNC);
    }
    set_oom_score(oom_score, b"-1000");
    if !send_byte(fds.socket, READY) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: our own copy of the setup status pipe, not used again.
    unsafe { libc::close(report) };
    loop {
        // SAFETY: the holder's loop, after its setup (see above); the
        // region is mapped at `plan` in this process too.
        unsafe { serve(spec, plan, fds, oom_score, sysctl_dir, &mut marks) };
    }
}

/// Moves the holder to a new IPC namespace, its pools sized through
/// `sysctl_dir` when the box's are (see [`proxy::set_up_namespaces`]);
/// `false` when that fails.
///
/// # Safety
/// A step of [`serve`], after the inmate's clone returned.
unsafe fn fresh_ipc_namespace(spec: &JailSpec, sysctl_dir: RawFd) -> bool {
    // SAFETY: unshare on the calling process, which is root in the box.
    if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
        return false;
    }
    match spec.ipc_limits {
        // SAFETY: in the new namespace; the values were formatted before
        // the holder was cloned.
        Some(limits) if sysctl_dir >= 0 => unsafe { limits.apply(sysctl_dir) }.is_ok(),
        Some(_) => false,
        None => true,
    }
}

/// Step 1 of [`holder_main`].
///
/// # Safety
/// A step of [`holder_main`].
unsafe fn holder_signals(socket: RawFd) {
    SOCKET.store(socket, Ordering::Relaxed);
    // SAFETY: signal and sigprocmask change only this process; the
    // handlers are async-signal-safe.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        proxy::install_stop_handler();
        let mut gone: libc::sigaction = std::mem::zeroed();
        gone.sa_sigaction = keeper_gone as *const () as libc::sighandler_t;
        gone.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGIO, &gone, std::ptr::null_mut());
    }
}

/// Writes `value` to the holder's `oom_score_adj` (negative: none).
fn set_oom_score(oom_score: RawFd, value: &[u8]) {
    if oom_score >= 0 {
        // SAFETY: writes a static byte string to our own descriptor.
        unsafe { libc::pwrite(oom_score, value.as_ptr().cast(), value.len(), 0) };
    }
}

/// Sends one byte to the keeper; false when it is gone.
fn send_byte(socket: RawFd, byte: u8) -> bool {
    // SAFETY: sends one byte from a stack variable; MSG_NOSIGNAL turns a
    // closed peer into EPIPE instead of a signal.
    unsafe { libc::send(socket, (&byte as *const u8).cast(), 1, libc::MSG_NOSIGNAL) == 1 }
}

/// Waits for the keeper's next message: [`GO`] and its four descriptors,
/// and the run's cgroup directory as a fifth on cgroup v2 (-1 when
/// absent), or [`ATTACH`] and its one; exits when the keeper is gone or
/// breaks the protocol.
///
/// # Safety
/// A step of [`holder_main`].
unsafe fn receive_message(socket: RawFd) -> (u8, [RawFd; MAX_GO_FDS]) {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 8];
    loop {
        // SAFETY: msghdr is plain old data; all-zero is a valid value.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: `message` points at live stack buffers for the call.
        let got = unsafe { libc::recvmsg(socket, &mut message, libc::MSG_CMSG_CLOEXEC) };
        if got < 0 && errno() == libc::EINTR {
            continue;
        }
        let mut fds = [-1 as RawFd; MAX_GO_FDS];
        let mut count = 0;
        // SAFETY: the control buffer was filled by recvmsg; the header
        // macros stay within msg_controllen.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&message);
            if got > 0
                && !header.is_null()
                && (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_RIGHTS
            {
                let data = (*header).cmsg_len - libc::CMSG_LEN(0) as usize;
                count = (data / std::mem::size_of::<RawFd>()).min(MAX_GO_FDS);
                std::ptr::copy_nonoverlapping(
                    libc::CMSG_DATA(header),
                    fds.as_mut_ptr().cast::<u8>(),
                    count * std::mem::size_of::<RawFd>(),
                );
            }
        }
        let whole = got == 1
            && match byte {
                GO => count == 4 || count == 5,
                ATTACH => count == 1,
                _ => false,
            }
            && message.msg_flags & libc::MSG_CTRUNC == 0;
        if !whole {
            // Closed by the keeper (0), or not our protocol: end the box.
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(0) };
        }
        return (byte, fds);
    }
}

/// One run: fork the inmate with the received descriptors, move on to a
/// fresh IPC namespace for the next run while it runs, reap it and report,
/// kill and reap whatever else the run left, renew the box, and tell the
/// keeper.
///
/// # Safety
/// A step of [`holder_main`].
unsafe fn serve(
    spec: &JailSpec,
    plan: *const RunPlan,
    fds: HolderFds,
    oom_score: RawFd,
    sysctl_dir: RawFd,
    marks: &mut [Option<RenewMark>; MAX_RENEWED],
) {
    let socket = fds.socket;
    // SAFETY: as on this function.
    let (byte, [stdin, stdout, stderr, report, run_cgroup]) = unsafe { receive_message(socket) };
    if byte == ATTACH {
        // The first message of a spare box, before any run: `stdin` is
        // the detached mount of the box's directory.
        let attached = match &spec.mounts {
            Some(mounts) if !SERVED_A_RUN.load(Ordering::Relaxed) => {
                // SAFETY: as on this function; no program has run in the
                // box.
                unsafe { mounts.replace_workdir(stdin) }.is_ok()
            }
            _ => false,
        };
        // SAFETY: our copy of the mount, not used again.
        unsafe { libc::close(stdin) };
        if !send_byte(socket, if attached { DONE } else { BROKEN }) || !attached {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(0) };
        }
        return;
    }
    SERVED_A_RUN.store(true, Ordering::Relaxed);
    // The inmate must be the OOM killer's first choice, never immune.
    set_oom_score(oom_score, b"0");
    let start = InmateStart {
        spec,
        plan,
        stdio: [stdin, stdout, stderr],
        report,
    };
    let start_arg = (&start as *const InmateStart<'_>).cast_mut().cast();
    // Back on the box's CPUs before every run: before Linux 6.2, writing
    // a cpuset of the holder's cgroup (a run's, on cgroup v1) set the mask
    // of every task in it outright, the holder's included; later kernels
    // keep what a task asked for. When that cpuset leaves none of the
    // box's CPUs the kernel refuses, and the cpuset's mask stays: the
    // cpuset is the limit.
    if let Some(cpus) = &spec.cpu_affinity {
        let _ = rustix::thread::sched_setaffinity(None, cpus);
    }
    // The stop signal waits until the inmate's pid is recorded: the holder
    // is suspended while the inmate sets up, and a stop taken at the end
    // of the clone, before the store, would find no inmate to kill (the
    // keeper would then kill the whole holder). A stop left from an
    // earlier run was taken before GO arrived, so none waits here.
    // SAFETY: sigset_t is plain old data; all-zero is a valid value.
    let mut stop: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `stop` is a valid sigset_t to fill in; the mask is this
    // process's own, and the inmate empties its copy.
    unsafe {
        libc::sigemptyset(&mut stop);
        libc::sigaddset(&mut stop, proxy::STOP_SIGNAL);
        libc::sigprocmask(libc::SIG_BLOCK, &stop, std::ptr::null_mut());
    }
    // SAFETY: the keeper's plan of this run, in the shared region.
    unsafe { &(*plan).started }.store(true, Ordering::Release);
    // Like vfork: the inmate borrows the holder's memory (no page table
    // to copy, however large the keeper was when it made the holder) on
    // a stack of its own, and the holder sleeps until it has executed
    // or exited.
    let (inmate, fork_errno) = if run_cgroup >= 0 {
        // cgroup v2: born straight into the run's own cgroup, so that
        // every counter of it is this run's alone (no move, no reset).
        // SAFETY: the child runs only warm_inmate on the stack below
        // `fds.stack` (the guard page under it), writing nothing of the
        // holder's but errno, while the holder is suspended; `start`
        // outlives it for the same reason.
        let pid = unsafe {
            namespaces::clone_vfork_into_cgroup(
                run_cgroup,
                fds.stack.sub(INMATE_STACK),
                INMATE_STACK,
                inmate_entry,
                start_arg,
            )
        };
        // SAFETY: our copy of the run's cgroup directory, not used again.
        unsafe { libc::close(run_cgroup) };
        if pid < 0 {
            (-1, -pid)
        } else {
            (pid, 0)
        }
    } else {
        // SAFETY: as above; glibc's clone runs no handlers and takes no
        // lock.
        let pid = unsafe {
            libc::clone(
                inmate_entry,
                fds.stack.cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                start_arg,
            )
        };
        (pid, errno())
    };
    if inmate > 0 {
        INMATE_PID.store(inmate, Ordering::Relaxed);
    }
    // SAFETY: as for the block that blocked it.
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &stop, std::ptr::null_mut()) };
    set_oom_score(oom_score, b"-1000");
    for fd in [stdin, stdout, stderr] {
        // SAFETY: our copies of the run's streams: the keeper sees end of
        // file only once they are closed.
        unsafe { libc::close(fd) };
    }
    // The next run's System V objects and message queues start from
    // nothing, sized as the first run's were: the holder leaves the
    // namespace this run's inmate inherited for a fresh one, while the
    // program runs (the clone returns once it has executed or failed),
    // instead of each inmate making one before its program starts. The
    // run's namespace goes with its last process.
    // SAFETY: as on this function; the inmate no longer shares our memory.
    let ipc_fresh = unsafe { fresh_ipc_namespace(spec, sysctl_dir) };
    if inmate < 0 {
        RawReport::setup_failed(Stage::ForkInmate, fork_errno, 0).send(report);
    } else {
        // A keeper that went while the inmate was starting (its SIGIO came
        // before the pid was known) still ends the run.
        keeper_gone(libc::SIGIO);
        // SAFETY: `inmate` is our child.
        let (status, usage) = unsafe { proxy::wait_for_inmate(inmate) };
        RawReport::inmate_exited(status, &usage).send(report);
    }
    // SAFETY: the run's status pipe, ours, not used again.
    unsafe { libc::close(report) };
    // SAFETY: the holder is pid 1 of the box's PID namespace.
    unsafe { proxy::reap_the_rest(true) };
    INMATE_PID.store(0, Ordering::Relaxed);
    let renewed = match &spec.mounts {
        // SAFETY: in the box, after the pivot, with no process of the run
        // left.
        Some(mounts) => unsafe { mounts.renew(marks, true) }.is_ok(),
        None => true,
    };
    // A holder that could not leave the run's IPC namespace must not serve
    // another run in it.
    let renewed = renewed && ipc_fresh;
    if !send_byte(socket, if renewed { DONE } else { BROKEN }) || !renewed {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(0) };
    }
}

/// What the inmate is started with.
struct InmateStart<'a> {
    spec: &'a JailSpec,
    plan: *const RunPlan,
    stdio: [RawFd; 3],
    report: RawFd,
}

/// Entry point of the inmate on its own stack.
extern "C" fn inmate_entry(start: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `start` is the holder's InmateStart, alive while the holder
    // waits for this child to execute or exit; the keeper wrote the plan
    // before GO.
    unsafe {
        let start = &*start.cast_const().cast::<InmateStart<'_>>();
        warm_inmate(start.spec, &*start.plan, start.stdio, start.report)
    }
}

/// A NULL-terminated array of C strings in the shared region.
struct CStrings(*const *const libc::c_char);

impl Iterator for CStrings {
    type Item = &'static CStr;

    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: the array is NULL-terminated and lives in the region,
        // mapped until this process executes or exits.
        unsafe {
            let entry = *self.0;
            if entry.is_null() {
                return None;
            }
            self.0 = self.0.add(1);
            Some(CStr::from_ptr(entry))
        }
    }
}

/// The inmate's signals as a cold inmate leaves them (default dispositions,
/// an empty mask): the holder set every disposition to the default when it
/// started but for its own two handlers and the ignored SIGPIPE, so only
/// those are undone. (Caught signals would be reset by `execve` anyway, but
/// must not run the holder's code in the inmate before it; an ignored one
/// would survive it.)
///
/// # Safety
/// A step of [`warm_inmate`].
unsafe fn reset_holder_signals(report: RawFd) {
    for signal in [proxy::STOP_SIGNAL, libc::SIGIO, libc::SIGPIPE] {
        // SAFETY: signal changes only this process's disposition.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    // SAFETY: as on this function.
    unsafe { inmate::empty_signal_mask(report) };
}

/// The inmate of a warm run: the received streams on 0–2, every other
/// descriptor closed, then the cold inmate's steps on the run's plan. Its
/// IPC namespace is the one the holder moved to after the last run (see
/// [`fresh_ipc_namespace`]): no System V object or POSIX message queue of
/// an earlier run is reachable.
///
/// # Safety
/// Runs in a child forked by the holder; only async-signal-safe calls.
unsafe fn warm_inmate(spec: &JailSpec, plan: &RunPlan, stdio: [RawFd; 3], report: RawFd) -> ! {
    for (source, target) in stdio.into_iter().zip(0..) {
        // SAFETY: dup2 on descriptors of this child's table; the received
        // ones are above 2 (0–2 were taken by /dev/null).
        if unsafe { libc::dup2(source, target) } < 0 {
            fail(report, Stage::Stdio, errno());
        }
    }
    // SAFETY: nothing the program may keep: the socket, the OOM file, the
    // sysctl directory and the received copies all go.
    unsafe { proxy::close_all_except(3, [report, -1, -1]) };
    let text = |pointer: *const libc::c_char| {
        // SAFETY: a C string the keeper wrote into the region.
        unsafe { CStr::from_ptr(pointer) }
    };
    // SAFETY: each call is a step of the cold inmate, in its order, on
    // memory prepared before the fork.
    unsafe {
        reset_holder_signals(report);
        inmate::change_dir(text(plan.box_dir), report);
        if let Err(errno) = plan.rlimits.apply() {
            fail(report, Stage::Rlimits, errno);
        }
        Rlimits::reset_priority();
        // The bounding set is already empty: the holder emptied its own.
        if let Some(credentials) = plan.credentials {
            if let Err(errno) = credentials.apply() {
                fail(report, Stage::Credentials, errno);
            }
        }
        let files = plan
            .stdio_files
            .map(|file| (!file.is_null()).then(|| text(file)));
        inmate::open_stdio(files, plan.stderr_to_stdout, report);
        inmate::change_dir(text(plan.cwd), report);
        if let Err(errno) = credentials::drop_capabilities() {
            fail(report, Stage::Capabilities, errno);
        }
        if let Some(policy) = &spec.seccomp {
            if let Err(errno) = policy.install() {
                fail(report, Stage::Seccomp, errno);
            }
        }
        inmate::execute_along(CStrings(plan.candidates), plan.argv, plan.envp, report)
    }
}
