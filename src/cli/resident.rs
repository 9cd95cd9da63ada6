//! What the command line's resident helpers share: the isolate face's
//! agents and service, and the native face's runner. Each is this program
//! started again as a root daemon, listening on a Unix socket in a
//! directory only root can enter, and each serves invocations a front door
//! (`front.rs`) handed over whole before the C library started.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use isobox::sys;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SocketAddrUnix, SocketFlags, SocketType,
};

/// The largest message: an invocation's arguments and environment.
pub(crate) const MAX_MESSAGE: usize = 256 * 1024;

/// How many connections wait for a resident helper.
const BACKLOG: i32 = 64;

/// Starts this program again, as a root daemon with nothing of the
/// caller's ([`sys::spawn_root_daemon`]), with `words` after its name,
/// listening at `path` in a directory only root can enter, and with
/// `kept` as its descriptor 3; returns its pid. A socket left at `path`
/// is removed first: the caller knows its listener is gone. The socket is
/// bound and listening before the daemon starts, so what callers send
/// meanwhile waits in its queue.
pub(crate) fn spawn_listening(
    path: &Path,
    words: &[&str],
    kept: Option<BorrowedFd<'_>>,
) -> Result<libc::pid_t> {
    let listener = listen_at(path)?;
    let argv = std::iter::once(crate::cli::program_name())
        .chain(words.iter().copied())
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()?;
    sys::spawn_root_daemon(
        c"/proc/self/exe",
        &argv,
        listener.as_fd(),
        kept,
        sys::Scheduling::Normal,
    )
    .map_err(|error| {
        let _ = std::fs::remove_file(path);
        error.into()
    })
}

/// A sequenced-packet socket listening at `path`, in a directory only
/// root can enter, in place of a socket left there (the caller knows its
/// listener is gone). It is bound and listening under another name first
/// and then renamed: whoever finds a socket at `path` finds it listening.
pub(crate) fn listen_at(path: &Path) -> Result<OwnedFd> {
    let dir = path.parent().context("no directory for the socket")?;
    private_directory(dir)?;
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(format!(".{}.new", std::process::id()));
    let fresh = PathBuf::from(fresh);
    match std::fs::remove_file(&fresh) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(error).context("removing a stale socket")
        }
        _ => {}
    }
    let listener = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::bind(&listener, &SocketAddrUnix::new(&fresh)?)?;
    let listening = rustix::net::listen(&listener, BACKLOG)
        .map_err(anyhow::Error::from)
        .and_then(|()| std::fs::rename(&fresh, path).context("putting the socket in place"));
    if let Err(error) = listening {
        let _ = std::fs::remove_file(&fresh);
        return Err(error);
    }
    Ok(listener)
}

/// What a daemon started by [`spawn_listening`] begins with: the listening
/// socket it was given as standard input, listening again so that callers
/// see this process at the other end (`SO_PEERCRED`), not its starter; and
/// `/dev/null`, now its standard input, for its standard output and error
/// between requests.
pub(crate) fn take_listener() -> Result<(OwnedFd, File)> {
    let (listener, null) = take_stdin()?;
    if !rustix::net::sockopt::socket_acceptconn(&listener)? {
        bail!("standard input is not a listening socket");
    }
    rustix::net::listen(&listener, BACKLOG)?;
    Ok((listener, null))
}

/// Standard input as a descriptor of this process's own, `/dev/null` (read
/// and write) put in its place and returned: what a helper started with a
/// socket as its standard input begins with.
pub(crate) fn take_stdin() -> Result<(OwnedFd, File)> {
    let taken = io::stdin().as_fd().try_clone_to_owned()?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    Ok((taken, null))
}

/// A connected pair of close-on-exec sequenced-packet sockets: a resident
/// helper's end, and the one it starts a child process with.
pub(crate) fn packet_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Makes sure `dir` is a directory only root can enter.
pub(crate) fn private_directory(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => {
            return Err(error).with_context(|| format!("creating {}", dir.display()))
        }
        _ => {}
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
        bail!(
            "{} is not a directory only root can enter: no agent",
            dir.display()
        );
    }
    Ok(())
}

/// [`receive`], the message left as it came.
pub(crate) fn receive_bytes(socket: impl AsFd) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let socket = socket.as_fd();
    // The message's length first (a peek that takes nothing, not even its
    // descriptors): most messages are a few hundred bytes, and a buffer
    // of the largest size is a mapping made and dropped per message.
    let length = loop {
        match rustix::net::recv(socket, &mut [0u8; 0], RecvFlags::PEEK | RecvFlags::TRUNC) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?.1,
        }
    };
    let mut bytes = vec![0; length.clamp(1, MAX_MESSAGE)];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut bytes)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.bytes == 0 {
        return Ok(None);
    }
    if got
        .flags
        .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
    {
        return Err(io::Error::other("a message was cut"));
    }
    bytes.truncate(got.bytes);
    Ok(Some((bytes, fds)))
}

/// An invocation forwarded by a root caller's front: the name it was run
/// by and its arguments, environment and umask, and its standard input,
/// output, error and current directory.
pub(crate) struct Forward {
    /// The name the caller was run by (`argv[0]`).
    pub(crate) program: String,
    pub(crate) words: Vec<String>,
    pub(crate) environment: Vec<(String, String)>,
    pub(crate) umask: u32,
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
    pub(crate) directory: OwnedFd,
}

impl Forward {
    /// The value of the caller's environment variable `name`, if set.
    pub(crate) fn env(&self, name: &str) -> Option<&str> {
        self.environment
            .iter()
            .find(|(entry, _)| entry == name)
            .map(|(_, value)| value.as_str())
    }

    /// Reads what `super::front::hand_over` sent; `None` for anything else.
    pub(crate) fn decode(bytes: &[u8], fds: Vec<OwnedFd>) -> Option<Self> {
        let [stdin, stdout, stderr, directory]: [OwnedFd; 4] = fds.try_into().ok()?;
        let header = bytes.get(..super::front::HEADER_LENGTH)?;
        let field = |index: usize| {
            let at = super::front::FORWARD_MAGIC.len() + 4 * index;
            Some(u32::from_le_bytes(header.get(at..at + 4)?.try_into().ok()?) as usize)
        };
        let (arguments, entries, umask) = (field(0)?, field(1)?, field(2)? as u32);
        let strings = bytes
            .get(super::front::HEADER_LENGTH..)?
            .strip_suffix(&[0])?;
        let mut strings = strings.split(|&byte| byte == 0);
        let mut words = Vec::with_capacity(arguments);
        for _ in 0..arguments {
            words.push(String::from_utf8(strings.next()?.to_vec()).ok()?);
        }
        // As std::env reads the environment: an entry without `=` is
        // skipped, and a name is never empty.
        let mut environment = Vec::with_capacity(entries);
        for _ in 0..entries {
            let entry = String::from_utf8_lossy(strings.next()?);
            let split = entry
                .get(1..)
                .and_then(|rest| rest.find('='))
                .map(|at| at + 1);
            if let Some(at) = split {
                environment.push((entry[..at].to_string(), entry[at + 1..].to_string()));
            }
        }
        if strings.next().is_some() || words.is_empty() {
            return None;
        }
        let program = words.remove(0);
        Some(Self {
            program,
            words,
            environment,
            umask,
            stdin,
            stdout,
            stderr,
            directory,
        })
    }
}

/// Where a process stands: its mount namespace and its root directory, as
/// the text of their `/proc` links (reading a link's text costs a third
/// of following it). A helper serves only callers that stand where it
/// does: a path in their arguments must name the same file for both.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Place {
    mount_namespace: PathBuf,
    root: PathBuf,
}

impl Place {
    /// Where process `pid` stands.
    pub(crate) fn of(pid: i32) -> io::Result<Self> {
        Self::at(&format!("/proc/{pid}"))
    }

    /// Where this process stands.
    pub(crate) fn own() -> io::Result<Self> {
        Self::at("/proc/self")
    }

    fn at(process: &str) -> io::Result<Self> {
        Ok(Self {
            mount_namespace: std::fs::read_link(format!("{process}/ns/mnt"))?,
            root: std::fs::read_link(format!("{process}/root"))?,
        })
    }
}

/// Sends `fd` over `socket` as one message (a byte and the descriptor).
pub(crate) fn send_descriptor(socket: impl AsFd, fd: BorrowedFd<'_>) -> io::Result<()> {
    send_with_descriptor(socket, b"c", fd)
}

/// Sends `message` and `fd` over `socket` as one message.
pub(crate) fn send_with_descriptor(
    socket: impl AsFd,
    message: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for the descriptor"));
    }
    rustix::net::sendmsg(
        socket,
        &[io::IoSlice::new(message)],
        &mut control,
        rustix::net::SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// The CPUs process `pid` (this one for `None`) may run on and its nice
/// value; `None` when they cannot be read.
pub(crate) fn scheduling_of(pid: Option<i32>) -> Option<(rustix::thread::CpuSet, i32)> {
    let pid = pid.and_then(rustix::process::Pid::from_raw);
    let cpus = rustix::thread::sched_getaffinity(pid).ok()?;
    let nice = rustix::process::getpriority_process(pid).ok()?;
    Some((cpus, nice))
}
