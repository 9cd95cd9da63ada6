//! The per-box agent: a process that outlives one `--run` and keeps an
//! executor with a warm box (see `executor/warm.rs`), so that the box's
//! later runs are forks of a holder that already lives in the box's
//! namespaces, root and cgroup, instead of a new box each time.
//!
//! A box that is initialized, run once and cleaned up never meets an agent:
//! its first `--run` runs cold and leaves a mark ([`MARK_FILE`], next to the
//! box's state file); the second starts the agent. The client (the `--run`
//! process) still does everything it does for a cold run (arguments,
//! checks, the lock, the box's hand-over, the meta file, the verdict): only
//! the executor's part moves to the agent. It sends the run's arguments and
//! computed environment with its standard input, output and error
//! (`SCM_RIGHTS`) over a `SOCK_SEQPACKET` socket in a root-only directory
//! of the installation's lock root, and gets the `ExecutionResult` back.
//!
//! A root caller's run usually never gets that far: its process hands
//! the whole invocation to the agent before glibc starts ([`front`]), and
//! the agent does the client's part too, through the same driver code
//! ([`Agent::forwarded`]). The protocol above serves everyone else: the
//! callers of a set-user-ID installation, and runs the front could not
//! hand over.
//!
//! Trust goes both ways through `SO_PEERCRED`: the agent serves only
//! peers whose effective uid is root (the isolate binary itself, also when
//! installed set-user-ID), and the client talks only to an agent running as
//! root. The agent is started through [`isobox::sys::spawn_root_daemon`]
//! with nothing of the caller's. It serves one client at a time, and only
//! clients that hold the box's lock; it leaves by itself after [`IDLE`]
//! once it can take the lock, and `--init`, `--cleanup` and runs it cannot
//! serve ([`eligible`]) stop it first. Whenever anything does not fit, the
//! client runs cold.

use std::fs::File;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use isobox::boxes::{self, BoxesConfig, LockedBox, Sandbox};
use isobox::sys::{self, poll_entry, POLLIN};
use isobox::{
    CgroupController, ExecutionResult, IsolateConfig, OutsideEvent, ProcessExecutor, SpareBox,
    Stdin,
};
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};

use super::args::{parse, Action, IsolateArgs};
use super::driver::{build_config, run_forwarded, MetaFile};
use crate::cli::front;
use crate::cli::resident::{receive_bytes, spawn_listening, take_listener, Forward};
use crate::cli::{print_error, EXIT_TROUBLE};

/// The hidden first argument that makes the isolate face an agent.
pub(super) const AGENT_FLAG: &str = "--isobox-agent";

/// How long an agent waits for a run before it leaves.
const IDLE: Duration = Duration::from_secs(30);

/// How long an agent that answered `Released` waits for its client to
/// hang up before it takes its box down (see [`stop`]).
const RELEASED_WAIT: Duration = Duration::from_secs(1);

/// The mark of a box that ran once, in `<box_root>/<N>` (not in `box`:
/// the program never sees it); `--init` and `--cleanup` remove it with the
/// box.
const MARK_FILE: &str = ".isobox-ran";

/// The directory of the agents' sockets, in the lock root.
pub(super) const AGENTS_DIR: &str = "agents";

/// How long `--init` and `--cleanup` wait for an agent to leave before
/// killing it.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// What a client asks.
#[derive(Serialize, Deserialize)]
enum Request {
    /// Run this, with the descriptors that come along.
    Run(Box<RunRequest>),
    /// Forward this interruption signal to the run under way.
    Interrupt(i32),
    /// Leave the box as a cold run would, then exit.
    Stop,
}

/// A run: what the client parsed and computed; the agent rebuilds the
/// configuration from it and must arrive at the same one.
#[derive(Serialize, Deserialize)]
struct RunRequest {
    words: Vec<String>,
    environment: Vec<(String, String)>,
    fields: BoxFields,
    /// The client's configuration, `Debug`-printed.
    fingerprint: String,
    /// Whether the first descriptor is the program's stdin (then stdout
    /// and stderr follow).
    stdin: bool,
}

/// The part of the configuration that comes from the box and the
/// installation, not from the arguments.
#[derive(Serialize, Deserialize)]
struct BoxFields {
    instance_id: String,
    network_namespace: Option<PathBuf>,
    workdir: PathBuf,
    uid: Option<u32>,
    gid: Option<u32>,
    cgroup_parent: Option<PathBuf>,
    cgroup_root: Option<PathBuf>,
    cpuset_cpus: Option<String>,
    cpuset_mems: Option<String>,
    syscall_flags: u32,
}

impl BoxFields {
    fn of(config: &IsolateConfig) -> Self {
        Self {
            instance_id: config.instance_id.clone(),
            network_namespace: config.network_namespace.clone(),
            workdir: config.workdir.clone(),
            uid: config.uid,
            gid: config.gid,
            cgroup_parent: config.cgroup_parent.clone(),
            cgroup_root: config.cgroup_root.clone(),
            cpuset_cpus: config.cpuset_cpus.clone(),
            cpuset_mems: config.cpuset_mems.clone(),
            syscall_flags: config.syscall_flags,
        }
    }

    fn apply(self, config: &mut IsolateConfig) {
        config.instance_id = self.instance_id;
        config.network_namespace = self.network_namespace;
        config.workdir = self.workdir;
        config.uid = self.uid;
        config.gid = self.gid;
        config.cgroup_parent = self.cgroup_parent;
        config.cgroup_root = self.cgroup_root;
        config.cpuset_cpus = self.cpuset_cpus;
        config.cpuset_mems = self.cpuset_mems;
        config.syscall_flags = self.syscall_flags;
    }
}

/// What the agent answers: once per run, at its end (an answer when the
/// run starts would wake the client in the middle of every run, for the
/// rare agent that is killed in between).
#[derive(Serialize, Deserialize)]
enum Reply {
    /// How it went.
    Done(Box<ExecutionResult>),
    /// The sandbox failed: the message a cold run would have died with.
    Failed(String),
    /// Nothing ran and the agent is gone: run cold.
    Refused(String),
    /// The agent left the box as a cold run would and is exiting.
    Stopped,
    /// The agent holds nothing of the box any more (its box was a spare's,
    /// in a cgroup of its own, every process of every run reaped) and is
    /// taking its own box down: the box's cleanup need not wait for it.
    Released,
}

/// Whether a run of these arguments can go to an agent: the installation
/// allows agents (`box_agent`), a warm box needs a cgroup, and the
/// descriptors and terminal of the caller cannot be held.
pub(super) fn eligible(parsed: &IsolateArgs, config: &BoxesConfig) -> bool {
    config.box_agent && servable(parsed)
}

/// Whether a warm box can serve a run of these arguments (see
/// [`eligible`]).
fn servable(parsed: &IsolateArgs) -> bool {
    parsed.cg && !parsed.inherit_fds && !parsed.tty_hack
}

/// Where the agent of box `id` listens.
pub(super) fn socket_path(config: &BoxesConfig, id: u32) -> PathBuf {
    config.lock_root.join(AGENTS_DIR).join(format!("{id}.sock"))
}

fn mark_path(sandbox: &Sandbox) -> PathBuf {
    sandbox.dir().join(MARK_FILE)
}

/// Whether the box has had its first run (which leaves the mark an agent
/// is started by).
pub(super) fn ran_before(locked: &LockedBox) -> bool {
    mark_path(locked).exists()
}

/// Marks a box that ran once (cold): its next run starts an agent.
pub(super) fn mark(locked: &LockedBox) {
    if let Err(error) = File::create(mark_path(locked)) {
        tracing::debug!("cannot mark box {} as used: {error}", locked.id());
    }
}

/// How `--run` goes.
pub(super) enum Route {
    /// The agent ran it.
    Done(Box<Result<ExecutionResult>>),
    /// Run cold; `mark` when this is the box's first run.
    Cold { mark: bool },
}

/// The client's side of a connection, with the agent's pid.
struct Client {
    socket: OwnedFd,
    pid: libc::pid_t,
}

/// Runs the command through the box's agent, starting it on the box's
/// second run; [`Route::Cold`] when the run must go cold.
pub(super) fn run(
    locked: &LockedBox,
    config: &BoxesConfig,
    config_path: &Path,
    words: &[String],
    run_config: &IsolateConfig,
    stdin: &Stdin,
) -> Route {
    let path = socket_path(config, locked.id());
    let client = match connect(&path) {
        Ok(client) => client,
        Err(_) if !mark_path(locked).exists() => return Route::Cold { mark: true },
        Err(error) => match start_after(locked, error, config_path, &path) {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!("cannot start the agent of box {}: {error:#}", locked.id());
                return Route::Cold { mark: false };
            }
        },
    };
    let mut fingerprinted = run_config.clone();
    fingerprinted.proxy_record = None;
    let request = RunRequest {
        words: words.to_vec(),
        environment: run_config.environment.clone(),
        fields: BoxFields::of(run_config),
        fingerprint: format!("{fingerprinted:?}"),
        stdin: matches!(stdin, Stdin::File(_)),
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut fds = Vec::with_capacity(3);
    if let Stdin::File(file) = stdin {
        fds.push(file.as_fd());
    }
    fds.push(stdout.as_fd());
    fds.push(stderr.as_fd());
    client.run(locked, &Request::Run(Box::new(request)), &fds)
}

impl Client {
    /// Sends the run and waits for its end, forwarding an interruption.
    fn run(self, locked: &LockedBox, request: &Request, fds: &[BorrowedFd<'_>]) -> Route {
        if let Err(error) = send(&self.socket, request, fds) {
            tracing::debug!("cannot send the run to the agent: {error}");
            self.wait_gone(Some(locked));
            return Route::Cold { mark: false };
        }
        let mut forwarded = false;
        loop {
            let wake = sys::interruption_fd().filter(|_| !forwarded);
            let mut entries = vec![poll_entry(self.socket.as_raw_fd(), POLLIN)];
            if let Some(wake) = wake {
                entries.push(poll_entry(wake.as_raw_fd(), POLLIN));
            }
            if let Err(error) = sys::poll(&mut entries, None) {
                return Route::Done(Box::new(Err(anyhow!(
                    "waiting for the box's agent: {error}"
                ))));
            }
            if !forwarded {
                if let Some(signal) = sys::interruption() {
                    // A failed send means the agent is gone: the end of
                    // the connection says the rest.
                    let _ = send(&self.socket, &Request::Interrupt(signal), &[]);
                    forwarded = true;
                }
            }
            if entries[0].revents == 0 {
                continue;
            }
            match receive::<Reply>(&self.socket) {
                Ok(Some((Reply::Done(result), _))) => return Route::Done(Box::new(Ok(*result))),
                Ok(Some((Reply::Failed(message), _))) => {
                    return Route::Done(Box::new(Err(anyhow!(message))))
                }
                Ok(Some((Reply::Refused(why), _))) => {
                    tracing::debug!("the box's agent refused the run: {why}");
                    self.wait_gone(Some(locked));
                    return Route::Cold { mark: false };
                }
                Err(error) if !forwarded && never_read(&error) => {
                    // The agent left with the request unread (a client
                    // killed during the last run makes it leave, and this
                    // one connected meanwhile): nothing of this run ran,
                    // so it runs cold.
                    self.wait_gone(Some(locked));
                    return Route::Cold { mark: false };
                }
                Ok(Some((Reply::Stopped | Reply::Released, _))) | Ok(None) | Err(_) => {
                    // The agent was killed, before the run or during it:
                    // the program may have run, and written to the
                    // caller's output, so it is not run again. Once the
                    // agent is gone, the box is as a cold run leaves it.
                    self.wait_gone(Some(locked));
                    return Route::Done(Box::new(Err(anyhow!(
                        "the box's agent (pid {}) ended before it answered",
                        self.pid
                    ))));
                }
            }
        }
    }

    /// Waits until the agent's process is gone, killing it after
    /// [`STOP_WAIT`]; then, for a run, until what it held in `locked`'s
    /// cgroup is gone too.
    fn wait_gone(&self, locked: Option<&LockedBox>) {
        self.wait_exit();
        if let Some(locked) = locked {
            sweep(locked);
        }
    }

    fn wait_exit(&self) {
        let Ok(pidfd) = sys::pidfd_open(self.pid) else {
            return;
        };
        let gone = |timeout| {
            let mut entries = [poll_entry(pidfd.as_raw_fd(), POLLIN)];
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match sys::poll(&mut entries, Some(left)) {
                    Ok(1..) => return true,
                    Ok(0) if left.is_zero() => return false,
                    Ok(0) => continue,
                    Err(_) => return false,
                }
            }
        };
        if !gone(STOP_WAIT) {
            tracing::warn!("the box's agent (pid {}) does not leave: killed", self.pid);
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            gone(STOP_WAIT);
        }
    }
}

/// Stops box `id`'s agent, if it has one, and waits until it is gone:
/// `--init`, `--cleanup` and runs the agent cannot serve do this first,
/// with the box's lock held. An agent that holds nothing of the box
/// (`Released`) is not waited for: it takes its own box down once the
/// returned connection is dropped (or after [`RELEASED_WAIT`]), which the
/// caller keeps while it removes the box.
#[must_use = "the agent takes its box down once this is dropped"]
pub(super) fn stop(config: &BoxesConfig, id: u32) -> Option<OwnedFd> {
    let path = socket_path(config, id);
    let client = match connect(&path) {
        Ok(client) => client,
        Err(error) => {
            if error.kind() != io::ErrorKind::NotFound {
                // A socket nobody listens on: an agent that was killed.
                let _ = std::fs::remove_file(&path);
            }
            return None;
        }
    };
    if send(&client.socket, &Request::Stop, &[]).is_ok() {
        let mut entries = [poll_entry(client.socket.as_raw_fd(), POLLIN)];
        if sys::poll(&mut entries, Some(STOP_WAIT)).is_ok_and(|ready| ready > 0)
            && matches!(
                receive::<Reply>(&client.socket),
                Ok(Some((Reply::Released, _)))
            )
        {
            return Some(client.socket);
        }
    }
    client.wait_gone(None);
    let _ = std::fs::remove_file(&path);
    None
}

/// Starts the box's agent after `connect` failed with `error`: an agent
/// that was killed (its socket left, nobody listening) may have left its
/// holder dying in the box's cgroup, waited for first.
fn start_after(
    locked: &LockedBox,
    error: io::Error,
    config_path: &Path,
    path: &Path,
) -> Result<Client> {
    if error.kind() != io::ErrorKind::NotFound {
        sweep(locked);
    }
    start(config_path, locked.id(), path)
}

/// Kills whatever a dead agent left in the box's cgroup (its holder dies
/// with it, and its box's processes with the holder, but not at once) and
/// waits until the cgroup is empty. Called with the box's lock held and no
/// agent alive, so nothing there is anyone's.
fn sweep(locked: &LockedBox) {
    let Ok(placement) = locked.cgroup_placement() else {
        return;
    };
    if let Ok(Some(cgroup)) = CgroupController::existing(&placement, &locked.cgroup_name()) {
        if let Err(error) = cgroup.kill_all() {
            tracing::warn!("box {}: {error}", locked.id());
        }
        cgroup.keep();
    }
}

/// Connects to the agent listening at `path`, which must run as root.
fn connect(path: &Path) -> io::Result<Client> {
    let socket = connect_socket(path)?;
    // The credentials of whoever last called `listen`: the agent itself
    // (it listens again as it starts, before it serves anyone).
    let peer = rustix::net::sockopt::socket_peercred(&socket)?;
    if !peer.uid.is_root() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the agent's socket {} is not root's", path.display()),
        ));
    }
    Ok(Client {
        socket,
        pid: peer.pid.as_raw_nonzero().get(),
    })
}

fn connect_socket(path: &Path) -> io::Result<OwnedFd> {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&socket, &SocketAddrUnix::new(path)?)?;
    Ok(socket)
}

/// Starts box `id`'s agent listening at `path`, and connects to it. The
/// socket is bound and listening before the agent starts, so the run sent
/// next waits in its queue.
fn start(config_path: &Path, id: u32, path: &Path) -> Result<Client> {
    // The agent works from `/`: a relative path would name another file.
    if !config_path.is_absolute() {
        bail!("the configuration's path is relative");
    }
    let config_path = config_path
        .to_str()
        .context("the configuration's path is not UTF-8")?;
    let pid = spawn_listening(path, &[AGENT_FLAG, config_path, &id.to_string()], None)
        .context("starting the agent")?;
    tracing::debug!(pid, "agent of box {id} started");
    // This connection may come before the agent listens again: its peer
    // credentials may still be this process's, so the pid is the spawned
    // one.
    Ok(Client {
        socket: connect_socket(path)?,
        pid,
    })
}

/// Whether a connection's error says that its peer closed it with what was
/// sent to it still unread: the kernel resets a stream or sequenced-packet
/// connection closed with data in its queue, or never accepted, where a
/// peer that read everything leaves a plain end of file.
fn never_read(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ECONNRESET)
}

/// Sends one message with `fds`.
fn send(socket: &OwnedFd, message: &impl Serialize, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let bytes = serde_json::to_vec(message)?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors"));
    }
    let sent = rustix::net::sendmsg(
        socket,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != bytes.len() {
        return Err(io::Error::other("a message was cut"));
    }
    Ok(())
}

/// Receives one message and the descriptors that came with it; `None` at
/// the end of the connection.
fn receive<T: for<'de> Deserialize<'de>>(
    socket: impl AsFd,
) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    match receive_bytes(socket)? {
        Some((bytes, fds)) => Ok(Some((serde_json::from_slice(&bytes)?, fds))),
        None => Ok(None),
    }
}

/// The agent's entry point: `isolate --isobox-agent <config> <box>`, with
/// the listening socket as standard input.
pub(super) fn main(words: &[String]) -> ExitCode {
    // Only the isolate face starts an agent, as root through and through:
    // a caller of a set-user-ID installation who names the flag is refused.
    if sys::real_ids() != (0, 0) || sys::is_set_id() || !sys::is_root() {
        print_error("the agent is started by isolate itself");
        return ExitCode::from(EXIT_TROUBLE);
    }
    let [config_path, id] = words else {
        print_error("usage: --isobox-agent <configuration> <box>");
        return ExitCode::from(EXIT_TROUBLE);
    };
    // An agent serves many runs, each of which would look the cgroup
    // hierarchies up again (see the service).
    isobox::cgroup::remember_layout();
    // Spare agents are forked by the service (`forked_spare`), never
    // started on their own.
    let served = serve(Path::new(config_path), id);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::warn!("agent of box {id}: {error:#}");
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

/// A spare agent forked by the installation's service
/// ([`sys::fork_resident`], with the channel to it as standard input):
/// [`serve_spare`], then the end of the process. It never returns to the
/// service's work, not even by a panic.
pub(super) fn forked_spare(config_path: &Path) -> ! {
    let served = std::panic::catch_unwind(|| serve_spare(config_path));
    let code = match served {
        Ok(Ok(())) => 0,
        Ok(Err(error)) => {
            tracing::warn!("spare agent: {error:#}");
            EXIT_TROUBLE
        }
        Err(_) => EXIT_TROUBLE,
    };
    std::process::exit(code.into())
}

/// The process name (`/proc/<pid>/comm`) of a spare agent forked by the
/// service, and of its holder.
pub(super) const SPARE_NAME: &std::ffi::CStr = c"isobox-spare";

/// The flag in the command line a spare agent shows (see
/// [`forked_spare`]), before the configuration's path: it fits where the
/// service's own flag was, which a spare's command line is written over
/// where root may not set another.
pub(super) const SPARE_FLAG: &str = "--isobox-spare";

/// What a spare agent says on its channel once its box is built.
pub(super) const SPARE_READY: u8 = b'r';

/// A spare agent, forked by the installation's service with a channel to
/// it as standard input: it builds a box before any box is asked for (a
/// [`SpareBox`], with only a mount point for the box's directory, in a
/// cgroup `spare-<pid>` of the installation's), says [`SPARE_READY`], and
/// waits. When the first caller of a box the service initialized with
/// `--init --cg` comes, the service sends that box's number with the
/// box's agent socket, the caller waiting in it, and the spare becomes
/// that box's agent: its box, given the box's directory, serves the box's
/// runs whose configuration it fits, the first one warm. The spare leaves,
/// with its box, when the channel closes first (the service left) or on a
/// signal.
fn serve_spare(config_path: &Path) -> Result<()> {
    let (channel, null) = crate::cli::resident::take_stdin()?;
    let config = BoxesConfig::load(config_path)?;
    crate::cli::catch_interruptions();
    // Started in the background by the service (a spare is for later,
    // and must not take CPU time from the runs under way); its box's runs
    // are scheduled normally again.
    let stand_in = StandIn::make(&config)?;
    let template = spare_config(&config, &stand_in.0)?;
    let spare = SpareBox::build(template)?.context("this installation's boxes cannot be held")?;
    // Removed while the spare waits: not on the hand-over's path.
    drop(stand_in);
    rustix::net::send(&channel, &[SPARE_READY], SendFlags::NOSIGNAL)?;
    let (id, listener) = loop {
        let wake = sys::interruption_fd().context("no interruption pipe")?;
        let mut entries = [
            poll_entry(channel.as_raw_fd(), POLLIN),
            poll_entry(wake.as_raw_fd(), POLLIN),
        ];
        sys::poll(&mut entries, None)?;
        if sys::interruption().is_some() {
            return Ok(());
        }
        if entries[0].revents == 0 {
            continue;
        }
        match receive_bytes(&channel) {
            Ok(Some((bytes, mut fds))) if fds.len() == 1 => {
                let id = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .context("a box number from the service")?;
                break (id, fds.remove(0));
            }
            // The service left before it had a box for this spare.
            _ => return Ok(()),
        }
    };
    let _ = sys::set_scheduling(0, sys::Scheduling::Normal);
    // Listening again makes this process the socket's peer: the one a
    // client waits for when it stops the agent.
    rustix::net::listen(&listener, 64)?;
    let sandbox = config.sandbox(id)?;
    let socket = socket_path(&config, sandbox.id());
    tracing::debug!("a spare agent is now box {id}'s");
    // The executor of the box's runs is made for the configuration a run
    // with no other option than `--cg` has (the caller waiting is usually
    // such a run): a first run that asks for another gets an executor of
    // its own, as any agent's first run does, and the spare goes.
    let mut agent = Agent {
        executor: None,
        spare: None,
        config: config.clone(),
        config_path: config_path.to_path_buf(),
        id,
        socket: Some(socket),
        null,
    };
    let expected = default_run_config(&config, &sandbox)?;
    if spare.fits(&expected) {
        let key = expected.settled_part();
        match spare.into_executor(expected) {
            Ok(executor) => agent.executor = Some((key, executor)),
            Err(error) => tracing::warn!("agent of box {id}: {error}"),
        }
    } else {
        agent.spare = Some(spare);
    }
    serve_box(agent, listener)
}

/// A spare box's stand-in working directory, empty, root's, removed when
/// dropped: the spare's executor opens it, but its box has only a mount
/// point where a box's directory comes.
struct StandIn(PathBuf);

impl StandIn {
    fn make(config: &BoxesConfig) -> Result<Self> {
        let agents = config.lock_root.join(AGENTS_DIR);
        crate::cli::resident::private_directory(&agents)?;
        let path = agents.join(format!("spare-{}", std::process::id()));
        // Left by a killed process of the same pid: nothing of anyone's.
        let _ = std::fs::remove_dir(&path);
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The configuration of a spare box: [`default_run_config`] of box 0 but
/// for the box's own parts (its directory is the stand-in, its cgroup
/// `spare-<pid>`; the user is each run's).
pub(super) fn spare_config(config: &BoxesConfig, stand_in: &Path) -> Result<IsolateConfig> {
    let mut spare = default_run_config(config, &config.sandbox(0)?)?;
    spare.instance_id = format!("{SPARE_CGROUP_PREFIX}{}", std::process::id());
    spare.workdir = stand_in.to_path_buf();
    Ok(spare)
}

/// What a `--run --cg` in `sandbox` with no other option, forwarded to the
/// box's agent as its first run, is configured with (as `run_locked` and
/// [`Agent::forwarded`] make it): its settled part is the one such a run
/// looks its executor up by.
fn default_run_config(config: &BoxesConfig, sandbox: &Sandbox) -> Result<IsolateConfig> {
    let words = ["--cg", "--run", "--", "/bin/true"].map(String::from);
    let parsed = parse(&words).map_err(|why| anyhow!(why))?;
    let mut run = build_config(&parsed, Vec::new());
    sandbox.place(&mut run)?;
    run.instance_id = sandbox.cgroup_name();
    run.workdir = sandbox.box_dir().to_path_buf();
    run.uid = Some(sandbox.uid());
    run.gid = Some(sandbox.gid());
    run.syscall_flags = config.syscall_flags;
    Ok(run)
}

/// A spare agent's cgroup is named so, then its pid.
pub(super) const SPARE_CGROUP_PREFIX: &str = "spare-";

/// The agent: its executor, the box it serves, and `/dev/null`, which
/// stands for stdout and stderr between runs.
struct Agent {
    executor: Option<(IsolateConfig, ProcessExecutor)>,
    /// The spare box this agent was started with, when the box's expected
    /// configuration did not fit it (see [`serve_spare`]): dropped after
    /// the first run's answer.
    spare: Option<SpareBox>,
    config: BoxesConfig,
    config_path: PathBuf,
    id: u64,
    /// The box's socket, while the path is this agent's.
    socket: Option<PathBuf>,
    null: File,
}

fn serve(config_path: &Path, id: &str) -> Result<()> {
    let (listener, null) = take_listener()?;
    let config = BoxesConfig::load(config_path)?;
    let id: u64 = id.parse().context("the box number")?;
    let sandbox = config.sandbox(id)?;
    let socket = socket_path(&config, sandbox.id());
    crate::cli::catch_interruptions();
    let agent = Agent {
        executor: None,
        spare: None,
        config,
        config_path: config_path.to_path_buf(),
        id,
        socket: Some(socket),
        null,
    };
    serve_box(agent, listener)
}

/// The agent's loop: serves its box's runs until it leaves.
fn serve_box(mut agent: Agent, listener: OwnedFd) -> Result<()> {
    loop {
        let wake = sys::interruption_fd().context("no interruption pipe")?;
        let mut entries = [
            poll_entry(listener.as_raw_fd(), POLLIN),
            poll_entry(wake.as_raw_fd(), POLLIN),
        ];
        let ready = sys::poll(&mut entries, Some(IDLE))?;
        if sys::interruption().is_some() {
            // Asked to leave (by a signal): at once, but only while no
            // client can be starting a run, as below.
            return agent.leave(&listener);
        }
        if ready == 0 {
            // Idle: leaves once no client holds the box, or at once when
            // its socket is gone (the installation was removed by hand:
            // taking the lock would make its directory again).
            if !agent.socket.as_deref().is_some_and(Path::exists) {
                agent.close();
                return Ok(());
            }
            if let Ok(_locked) = agent.config.sandbox(agent.id)?.lock(false) {
                agent.close();
                return Ok(());
            }
            continue;
        }
        if entries[0].revents == 0 {
            continue;
        }
        let Ok(connection) = rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) else {
            continue;
        };
        let root =
            rustix::net::sockopt::socket_peercred(&connection).is_ok_and(|peer| peer.uid.is_root());
        if !root {
            continue;
        }
        let request = match receive_bytes(&connection) {
            Ok(Some((bytes, fds))) if bytes.starts_with(&front::FORWARD_MAGIC) => {
                if !agent.forwarded(&connection, &bytes, fds) {
                    return Ok(());
                }
                continue;
            }
            Ok(Some((bytes, fds))) => serde_json::from_slice::<Request>(&bytes)
                .map(|request| Some((request, fds)))
                .map_err(io::Error::from),
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        };
        match request {
            Ok(Some((Request::Run(request), fds))) => {
                let serving = agent.run(&connection, *request, fds);
                if !serving {
                    return Ok(());
                }
            }
            Ok(Some((Request::Stop, _))) => {
                if agent.holds_nothing_of_the_box() {
                    // Removed now, and not again as it leaves: the client
                    // goes on without waiting for this agent, and the box
                    // may be initialized again, and given another agent
                    // listening at the same path, before this one is gone.
                    if let Some(socket) = agent.socket.take() {
                        let _ = std::fs::remove_file(socket);
                    }
                    let _ = send(&connection, &Reply::Released, &[]);
                    // The teardown (namespaces, mounts, cgroups) waits
                    // until the client has removed the box and hung up:
                    // both take the kernel's mount and cgroup locks, and
                    // the client's removal is on its caller's path.
                    let mut entries = [poll_entry(connection.as_raw_fd(), POLLIN)];
                    let _ = sys::poll(&mut entries, Some(RELEASED_WAIT));
                    agent.close();
                } else {
                    agent.close();
                    let _ = send(&connection, &Reply::Stopped, &[]);
                }
                return Ok(());
            }
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                // A client this agent does not understand (the binary was
                // upgraded under it): it leaves, and the client runs cold.
                agent.close();
                let _ = send(&connection, &Reply::Refused(error.to_string()), &[]);
                return Ok(());
            }
            _ => {}
        }
    }
}

impl Agent {
    /// Leaves the box as a cold run would: the holder killed and its
    /// cgroup removed, the box's cgroup kept; the socket removed.
    fn close(&mut self) {
        self.spare = None;
        if let Some((_, executor)) = self.executor.take() {
            if let Err(error) = executor.close_keeping_cgroups() {
                tracing::warn!("agent of box {}: {error}", self.id);
            }
        }
        if let Some(socket) = self.socket.take() {
            let _ = std::fs::remove_file(socket);
        }
    }

    /// Whether nothing of the box is this agent's between runs: its box
    /// was a spare's, whose cgroup is its own (not the box's), and a spare
    /// it did not use is not the box's either.
    fn holds_nothing_of_the_box(&self) -> bool {
        self.executor
            .as_ref()
            .is_none_or(|(_, executor)| executor.cgroup_is_a_spares())
    }

    /// Leaves when told to by a signal: with the box's lock, or, when a
    /// client holds it, after refusing that client's run (the client
    /// waits for this process to be gone before it runs cold).
    fn leave(&mut self, listener: &OwnedFd) -> Result<()> {
        loop {
            if let Ok(_locked) = self.config.sandbox(self.id)?.lock(false) {
                self.close();
                return Ok(());
            }
            let mut entries = [poll_entry(listener.as_raw_fd(), POLLIN)];
            if sys::poll(&mut entries, Some(Duration::from_millis(20)))? == 0 {
                continue;
            }
            if let Ok(connection) = rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
                self.close();
                let _ = send(&connection, &Reply::Refused("leaving".into()), &[]);
                return Ok(());
            }
        }
    }

    /// Serves one run; `false` when the agent must leave afterwards (it
    /// has then closed and answered).
    fn run(&mut self, connection: &OwnedFd, request: RunRequest, fds: Vec<OwnedFd>) -> bool {
        let (config, command) = match rebuild(request, fds.len(), self.id) {
            Ok(rebuilt) => rebuilt,
            Err(why) => {
                self.close();
                let _ = send(connection, &Reply::Refused(why), &[]);
                return false;
            }
        };
        let reply = match self.execute(connection, config, &command, fds) {
            Ok(result) => Reply::Done(Box::new(result)),
            Err(error) => Reply::Failed(crate::cli::error_text(&error)),
        };
        // An interrupted run ends the agent (the interruption stays
        // recorded); it leaves before answering, so the client, which
        // holds the box, finds it gone.
        let leaving = sys::interruption().is_some();
        if leaving {
            self.close();
        }
        let _ = send(connection, &reply, &[]);
        if !leaving {
            self.prepare_next_run();
        }
        !leaving
    }

    /// Runs `command` under `config` with the client's descriptors.
    fn execute(
        &mut self,
        connection: &OwnedFd,
        config: IsolateConfig,
        command: &[String],
        mut fds: Vec<OwnedFd>,
    ) -> Result<ExecutionResult> {
        let stderr = fds.pop().context("no stderr")?;
        let stdout = fds.pop().context("no stdout")?;
        let stdin = fds
            .pop()
            .map_or(Stdin::Null, |fd| Stdin::File(File::from(fd)));
        // The program writes to the client's stdout and stderr directly,
        // as it does to the keeper's in a cold run; they are the agent's
        // own for the run.
        if let Err(error) = self.take_stdio(&stdout, &stderr) {
            self.give_back_stdio();
            return Err(error);
        }
        drop((stdout, stderr));
        let outcome = self.execute_in(connection, config, command, stdin);
        self.give_back_stdio();
        outcome
    }

    /// Makes `stdout` and `stderr` this process's own until
    /// [`give_back_stdio`](Self::give_back_stdio), with its logs held back
    /// (they are not the client's).
    fn take_stdio(&self, stdout: &OwnedFd, stderr: &OwnedFd) -> Result<()> {
        crate::cli::silence_logs(true);
        rustix::stdio::dup2_stdout(stdout)?;
        rustix::stdio::dup2_stderr(stderr)?;
        Ok(())
    }

    /// Runs `command` under `config`, standard output and error being the
    /// client's already.
    fn execute_in(
        &mut self,
        connection: &OwnedFd,
        config: IsolateConfig,
        command: &[String],
        stdin: Stdin,
    ) -> Result<ExecutionResult> {
        let key = config.settled_part();
        let executor = match &mut self.executor {
            Some((current, executor)) if *current == key => {
                *executor.config_mut() = config;
                executor
            }
            _ => {
                if let Some((_, old)) = self.executor.take() {
                    if let Err(error) = old.close_keeping_cgroups() {
                        tracing::warn!("agent of box {}: {error}", self.id);
                    }
                }
                let executor = ProcessExecutor::new(config)?;
                &mut self.executor.insert((key, executor)).1
            }
        };
        // The client's interruption, or its end (killed), stops the run and
        // is recorded as this process's own interruption, which makes the
        // agent leave after answering.
        let client = OutsideEvent {
            fd: connection.try_clone()?,
            on_ready: Box::new(|connection| {
                let signal = match receive::<Request>(&connection) {
                    Ok(Some((Request::Interrupt(signal), _)))
                        if sys::INTERRUPTION_SIGNALS.contains(&signal) =>
                    {
                        signal
                    }
                    _ => libc::SIGTERM,
                };
                sys::record_interruption(signal);
                Some(signal)
            }),
        };
        Ok(executor.execute_watching(command, stdin, client)?)
    }

    /// Serves a run forwarded whole by a root caller's front (see
    /// [`front`]): everything a cold `--run` does, in this process, with
    /// the caller's descriptors, directory, umask and environment; or
    /// declines it, when it is not a run the command line would hand to
    /// this agent, and the caller runs it the ordinary way. `false` when
    /// the agent must leave afterwards.
    fn forwarded(&mut self, connection: &OwnedFd, bytes: &[u8], fds: Vec<OwnedFd>) -> bool {
        let decline = |why: &str| {
            tracing::debug!("agent of box {}: a forwarded run declined: {why}", self.id);
            let _ = rustix::net::send(connection, &[front::DECLINED], SendFlags::NOSIGNAL);
            true
        };
        let Some(forward) = Forward::decode(bytes, fds) else {
            return decline("not a forwarded run");
        };
        let parsed = match parse(&forward.words) {
            Ok(parsed) => parsed,
            Err(why) => return decline(&why),
        };
        if parsed.box_id != self.id || !matches!(parsed.action, Action::Run(_)) {
            return decline("not a run in this box");
        }
        if !servable(&parsed) {
            return decline("a run an agent cannot serve");
        }
        if config_path_of(&forward).as_ref() != Some(&self.config_path) {
            return decline("another installation");
        }
        // Busy: a command-line client holds the box and may be waiting for
        // this agent, which must not wait for it in turn. The ordinary path
        // reports the busy box, or waits with --wait.
        let Ok(locked) = self
            .config
            .sandbox(self.id)
            .and_then(|box_| box_.lock(false))
        else {
            return decline("the box is busy");
        };
        if rustix::process::fchdir(&forward.directory).is_err() {
            return decline("cannot enter the caller's directory");
        }
        let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(forward.umask));
        let code = match self.take_stdio(&forward.stdout, &forward.stderr) {
            Ok(()) => {
                let config = self.config.clone();
                let config_path = self.config_path.clone();
                let mut meta = MetaFile::new(parsed.meta.as_deref());
                let stdin = Stdin::File(File::from(forward.stdin));
                let mut execute = |mut config: IsolateConfig, command: &[String], stdin: Stdin| {
                    // The agent's runs are held, and the agent itself
                    // stands for the proxy a cold run records (a command
                    // line's run to this agent sends no record either).
                    config.proxy_record = None;
                    self.execute_in(connection, config, command, stdin)
                };
                let code = run_forwarded(
                    &config,
                    &config_path,
                    &parsed,
                    locked,
                    &mut meta,
                    &forward.environment,
                    stdin,
                    &mut execute,
                )
                .unwrap_or_else(|error| super::die(&error, &mut meta));
                // What went to the client's stdout through Rust's buffer
                // goes before the descriptor is taken back.
                let _ = io::Write::flush(&mut io::stdout());
                self.give_back_stdio();
                code
            }
            Err(error) => {
                self.give_back_stdio();
                super::die(&error, &mut MetaFile::new(parsed.meta.as_deref()))
            }
        };
        rustix::process::umask(umask);
        let _ = rustix::process::chdir("/");
        let leaving = sys::interruption().is_some();
        if leaving {
            self.close();
        }
        let _ = rustix::net::send(connection, &[front::FINISHED, code], SendFlags::NOSIGNAL);
        if !leaving {
            self.prepare_next_run();
        }
        !leaving
    }

    /// Standard output and error are `/dev/null` again, and logs go there.
    fn give_back_stdio(&self) {
        let _ = rustix::stdio::dup2_stdout(&self.null);
        let _ = rustix::stdio::dup2_stderr(&self.null);
        crate::cli::silence_logs(false);
    }

    /// The box's next run, usually the judge's next test case, finds the
    /// box built (the executor would otherwise build it during its second
    /// run): built now, while the client finishes.
    fn prepare_next_run(&mut self) {
        // A spare the first run could not take goes now, after the answer.
        self.spare = None;
        if let Some((_, executor)) = &mut self.executor {
            if let Err(error) = executor.prepare_warm_box() {
                tracing::warn!("agent of box {}: {error}", self.id);
            }
        }
    }
}

/// The configuration file the forwarded command line would read, when
/// it names the same file in any directory (a relative path is the
/// caller's to resolve).
pub(super) fn config_path_of(forward: &Forward) -> Option<PathBuf> {
    let from_env = forward
        .env(boxes::CONFIG_ENV)
        .map(std::ffi::OsStr::new)
        .filter(|value| !value.is_empty());
    Some(boxes::config_path(from_env)).filter(|path| path.is_absolute())
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.close();
    }
}

/// The run's configuration from the request, as the client built it, or
/// why not.
fn rebuild(
    request: RunRequest,
    descriptors: usize,
    id: u64,
) -> std::result::Result<(IsolateConfig, Vec<String>), String> {
    let parsed = parse(&request.words)?;
    if parsed.box_id != id {
        return Err(format!("a run for box {}", parsed.box_id));
    }
    let Action::Run(command) = &parsed.action else {
        return Err("not a run".into());
    };
    if !servable(&parsed) {
        return Err("a run an agent cannot serve".into());
    }
    if descriptors != 2 + usize::from(request.stdin) {
        return Err(format!("{descriptors} descriptors"));
    }
    let mut config = build_config(&parsed, request.environment);
    request.fields.apply(&mut config);
    if format!("{config:?}") != request.fingerprint {
        return Err("the configuration differs from the client's".into());
    }
    Ok((config, command.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(dir: &Path) -> (OwnedFd, PathBuf) {
        let path = dir.join("agent.sock");
        let listener = rustix::net::socket_with(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let address = rustix::net::SocketAddrUnix::new(&path).unwrap();
        rustix::net::bind(&listener, &address).unwrap();
        rustix::net::listen(&listener, 8).unwrap();
        (listener, path)
    }

    /// What [`never_read`] relies on, on the real kernel: an agent that
    /// leaves without accepting a connection resets it, and so does one
    /// that accepted it without reading the request; one that read the
    /// request and left ends it plainly, and the client must not run again
    /// what may have run.
    #[test]
    fn only_a_request_left_unread_reads_as_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let request = Request::Stop;

        let (agent, path) = listener(dir.path());
        let client = connect_socket(&path).unwrap();
        send(&client, &request, &[]).unwrap();
        drop(agent);
        let Err(error) = receive::<Reply>(&client) else {
            panic!("an answer from an agent that left");
        };
        assert!(never_read(&error), "not accepted: {error}");
        std::fs::remove_file(&path).unwrap();

        let (agent, path) = listener(dir.path());
        let client = connect_socket(&path).unwrap();
        send(&client, &request, &[]).unwrap();
        let accepted = rustix::net::accept(&agent).unwrap();
        drop((accepted, agent));
        let Err(error) = receive::<Reply>(&client) else {
            panic!("an answer from an agent that left");
        };
        assert!(never_read(&error), "accepted, not read: {error}");
        std::fs::remove_file(&path).unwrap();

        let (agent, path) = listener(dir.path());
        let client = connect_socket(&path).unwrap();
        send(&client, &request, &[]).unwrap();
        let accepted = rustix::net::accept(&agent).unwrap();
        assert!(receive::<Request>(&accepted).unwrap().is_some());
        drop((accepted, agent));
        assert!(matches!(receive::<Reply>(&client), Ok(None)));
    }
}
