//! The installation's service: a resident root process that carries out a
//! root caller's `--init` and `--cleanup`, handed to it whole before the C
//! library starts (see [`front`]), as a box's agent carries out its runs.
//!
//! A judge calls `--init`, `--run` and `--cleanup` per test case, each a
//! new process. In each of the three, glibc's and isobox's own start-up
//! (about 0.6 ms here: `cpuid` probing that traps to the hypervisor, the
//! relocation of the static executable, the configuration) cost more than
//! the box work itself. The agent takes that off `--run` from a box's
//! second run on; no agent exists before `--init`, and one goes with
//! `--cleanup`, so those two are served by one process per installation,
//! at `<lock_root>/agents/service.sock`.
//!
//! It is started by the first root caller whose `--init` or `--cleanup`
//! took the ordinary path and found none ([`start_for`]), through
//! [`isobox::sys::spawn_root_daemon`], with nothing of the caller's. Only
//! one runs per lock root: it holds `service.lock` for its whole life,
//! from the starter on (the lock comes to it as a descriptor, so there is
//! no moment in which a second starter could take it), and the starter
//! binds the socket before the service exists. It leaves after [`IDLE`]
//! without a request, on `SIGTERM`, `SIGINT` or `SIGHUP`, or at once when
//! its socket is gone; it removes its socket before it lets the lock go,
//! so a caller either reaches it or finds nothing (a connection left in
//! its queue is reset, and the front takes the ordinary path).
//!
//! What it serves is exactly what the ordinary path would do for a root
//! caller, through the same driver code, with the caller's directory,
//! umask, standard output and error; it declines (and the caller's own
//! process does the work) whatever it would not do identically: another
//! configuration file, another program name in messages, another mount
//! namespace or root directory, logs asked for (`ISOBOX_LOG`), a busy box
//! (which the ordinary path reports, or waits for with `--wait`), and
//! anything that fails before the box is locked.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use isobox::boxes::{self, BoxesConfig};
use isobox::sys::{self, poll_entry, POLLIN};
use rustix::net::{SendFlags, SocketFlags};

use super::agent::{config_path_of, AGENTS_DIR};
use super::args::{parse, Action};
use super::driver::{self, MetaFile};
use crate::cli::front;
use crate::cli::resident::{self, Forward, Place};
use crate::cli::{print_error, EXIT_TROUBLE};

/// The hidden first argument that makes the isolate face the service.
pub(super) const SERVICE_FLAG: &str = "--isobox-service";

/// The service's socket, in the agents' directory of the lock root.
pub const SOCKET_NAME: &str = "service.sock";

/// The lock the running service holds, next to its socket.
const LOCK_NAME: &str = "service.lock";

/// How long the service waits for a request before it leaves.
const IDLE: Duration = Duration::from_secs(30);

/// How long the service waits for a connected caller's command.
const SILENT_CALLER: Duration = Duration::from_secs(1);

/// How often an idle service looks whether its socket is still there.
const TICK: Duration = Duration::from_secs(1);

fn socket_path(config: &BoxesConfig) -> PathBuf {
    config.lock_root.join(AGENTS_DIR).join(SOCKET_NAME)
}

/// Starts the installation's service after an ordinary `--init` or
/// `--cleanup`, when a front could use it (the caller is root through and
/// through: real and effective ids 0), the installation allows resident
/// helpers (`box_agent`) and none runs. Anything that goes wrong only
/// means the next commands take the ordinary path too.
pub(super) fn start_for(config: &BoxesConfig, config_path: &Path) {
    // The service resolves nothing relative to a caller's directory.
    if sys::real_ids() != (0, 0)
        || !sys::is_root()
        || !config.box_agent
        || !config_path.is_absolute()
    {
        return;
    }
    if let Err(error) = start(config, config_path) {
        tracing::debug!("cannot start the installation's service: {error:#}");
    }
}

fn start(config: &BoxesConfig, config_path: &Path) -> Result<()> {
    let path = socket_path(config);
    let dir = path.parent().context("no agents directory")?;
    resident::private_directory(dir)?;
    let lock = sys::open_lock_file(&dir.join(LOCK_NAME)).context("opening the service's lock")?;
    match lock.try_lock() {
        Ok(()) => {}
        // A service runs (it declined this caller, or the caller never
        // tried), or another caller is starting one.
        Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(error).context("locking the service's lock")
        }
    }
    // Nobody holds the lock, so a socket left there is a dead service's.
    let config_path = config_path
        .to_str()
        .context("the configuration's path is not UTF-8")?;
    let pid = resident::spawn_listening(&path, &[SERVICE_FLAG, config_path], Some(lock.as_fd()))
        .context("starting the service")?;
    tracing::debug!(pid, "the installation's service started");
    Ok(())
}

/// The service's entry point: `isolate --isobox-service <config>`, with
/// the listening socket as standard input and the lock as descriptor 3.
pub(super) fn main(words: &[String]) -> ExitCode {
    // As for the agent: only isolate itself starts the service, as root
    // through and through.
    if sys::real_ids() != (0, 0) || sys::is_set_id() || !sys::is_root() {
        print_error("the service is started by isolate itself");
        return ExitCode::from(EXIT_TROUBLE);
    }
    let [config_path] = words else {
        print_error("usage: --isobox-service <configuration>");
        return ExitCode::from(EXIT_TROUBLE);
    };
    match serve(Path::new(config_path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::warn!("the installation's service: {error:#}");
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

/// What the service keeps between requests.
struct Service {
    config_path: PathBuf,
    /// The configuration as last loaded, with the file's identity then.
    config: Option<(FileState, BoxesConfig)>,
    /// Where it listens, and the socket file's device and inode there: a
    /// file at that path that is not this one means the service is gone
    /// from the installation.
    socket: PathBuf,
    socket_id: (u64, u64),
    /// Where this process stands: callers must stand there too.
    place: Place,
    /// Standard output and error between requests.
    null: File,
    /// The spare agent started last, until a box is given to it.
    spare: Option<Spare>,
    /// Boxes initialized with `--init --cg` whose first caller the spare
    /// is for: their agent sockets, listened on by this service until that
    /// caller comes.
    awaiting: Vec<Awaiting>,
    /// Spare agents that ended before they were ready, in a row: after
    /// [`SPARE_ATTEMPTS`], no more are started.
    failed_spares: u32,
}

/// A spare agent (see [`agent`](super::agent)'s `serve_spare`), as the
/// service sees it: the channel it was started with, and whether it said
/// its box is built.
struct Spare {
    channel: OwnedFd,
    pid: libc::pid_t,
    ready: bool,
    /// Scheduled normally again for a caller who waits for it.
    hurried: bool,
}

/// A box whose agent socket the service listens on until its first
/// caller comes (see [`Service::hand_spares`]).
struct Awaiting {
    id: u32,
    listener: OwnedFd,
    path: PathBuf,
    /// The socket file's device and inode: removed only while it is this.
    file: (u64, u64),
    /// When the box's first caller came, while the spare was still being
    /// built: the caller waits for it (see [`SPARE_PATIENCE`]).
    called: Option<Instant>,
}

impl Awaiting {
    /// Stops listening, and removes the socket file while it is this
    /// one's: a caller connected meanwhile is reset and takes the ordinary
    /// path.
    fn forget(self) {
        if file_id(&self.path).ok() == Some(self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How long the leaving service waits for its spare to take its box down.
const SPARE_LEAVING: Duration = Duration::from_secs(5);

/// How long a box's first caller waits for a spare still being built
/// before its connection is reset and it takes the ordinary path. A spare
/// started at the last hand-over is ahead of the agent such a caller would
/// start, unless something keeps it from running at all.
const SPARE_PATIENCE: Duration = Duration::from_secs(1);

/// Spare agents that may end unready in a row before the service stops
/// starting them (an installation whose boxes cannot be held).
const SPARE_ATTEMPTS: u32 = 3;

fn serve(config_path: &Path) -> Result<()> {
    let lock = sys::take_kept_fd().context("no lock descriptor")?;
    // The lock is the one its starter took: held by this open file
    // description, which a second `flock` by this process finds its own.
    File::from(lock.try_clone()?)
        .try_lock()
        .context("the service's lock is not held")?;
    let (listener, null) = resident::take_listener()?;
    let config = BoxesConfig::load(config_path)?;
    let socket = socket_path(&config);
    let socket_id = file_id(&socket).context("the service's socket")?;
    crate::cli::catch_interruptions();
    isobox::cgroup::remember_layout();
    let mut service = Service {
        config_path: config_path.to_path_buf(),
        config: None,
        socket,
        socket_id,
        place: Place::own()?,
        null,
        spare: None,
        awaiting: Vec::new(),
        failed_spares: 0,
    };
    // The spares, forked from this process, find their filter compiled.
    if let Ok(template) = super::agent::spare_config(&config, Path::new("/")) {
        let _ = isobox::executor::compile_filter_ahead(&template);
    }
    service.sweep_spares();
    service.start_spare();
    let mut last_request = Instant::now();
    loop {
        let wake = sys::interruption_fd().context("no interruption pipe")?;
        let mut entries = vec![
            poll_entry(listener.as_raw_fd(), POLLIN),
            poll_entry(wake.as_raw_fd(), POLLIN),
        ];
        // The boxes whose first caller has not come yet, and, while a
        // caller waits for it, the spare's word that it is ready.
        let uncalled: Vec<usize> = (0..service.awaiting.len())
            .filter(|&index| service.awaiting[index].called.is_none())
            .collect();
        entries.extend(
            uncalled
                .iter()
                .map(|&index| poll_entry(service.awaiting[index].listener.as_raw_fd(), POLLIN)),
        );
        let waiting = service.first_waiting();
        if let (Some(_), Some(spare)) = (waiting, &service.spare) {
            entries.push(poll_entry(spare.channel.as_raw_fd(), POLLIN));
        }
        let timeout = waiting.map_or(TICK, |since| {
            SPARE_PATIENCE.saturating_sub(since.elapsed()).min(TICK)
        });
        let ready = sys::poll(&mut entries, Some(timeout))?;
        if sys::interruption().is_some() {
            service.leave();
            return Ok(());
        }
        // The spare agents are this process's children, also once they
        // serve a box: reaped when they end.
        while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
        for (offset, &index) in uncalled.iter().enumerate() {
            if entries[2 + offset].revents != 0 {
                last_request = Instant::now();
                service.awaiting[index].called = Some(last_request);
            }
        }
        service.hand_spares();
        if ready == 0 || entries[0].revents == 0 {
            if file_id(&service.socket).ok() != Some(service.socket_id) {
                // Removed by hand, with the installation perhaps: another
                // service may be starting there, whose socket is not this
                // one's to remove. The boxes' sockets it listens on are.
                for box_ in std::mem::take(&mut service.awaiting) {
                    box_.forget();
                }
                return Ok(());
            }
            if last_request.elapsed() >= IDLE {
                service.leave();
                return Ok(());
            }
            continue;
        }
        let Ok(connection) = rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) else {
            continue;
        };
        // A front sends its command as soon as it is connected; a caller
        // that connects and sends nothing (stopped, say) must not hold up
        // every other caller.
        let _ = rustix::net::sockopt::set_socket_timeout(
            &connection,
            rustix::net::sockopt::Timeout::Recv,
            Some(SILENT_CALLER),
        );
        last_request = Instant::now();
        service.serve_one(&connection);
        drop(connection);
        service.start_spare();
    }
}

/// What tells one version of the configuration from another: for its file
/// and the two files `subid_user` reads, the device and inode, size, and
/// modification and change times (a missing file has none).
#[derive(PartialEq, Eq)]
struct FileState([[i64; 7]; 3]);

impl FileState {
    fn of(config: &Path) -> io::Result<Self> {
        let state = |path: &Path| -> io::Result<[i64; 7]> {
            let meta = match std::fs::metadata(path) {
                Ok(meta) => meta,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok([0; 7]),
                Err(error) => return Err(error),
            };
            Ok([
                meta.dev() as i64,
                meta.ino() as i64,
                meta.size() as i64,
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
            ])
        };
        Ok(Self([
            state(config)?,
            state(Path::new(boxes::SUBUID_PATH))?,
            state(Path::new(boxes::SUBGID_PATH))?,
        ]))
    }
}

/// A file's device and inode.
fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl Service {
    /// Removes the socket (when it is still this service's), so that no
    /// caller reaches a service that is leaving; the lock goes with the
    /// process.
    fn leave(&mut self) {
        if file_id(&self.socket).ok() == Some(self.socket_id) {
            let _ = std::fs::remove_file(&self.socket);
        }
        for box_ in std::mem::take(&mut self.awaiting) {
            box_.forget();
        }
        // The spare's channel closes with it, and the spare takes its box
        // down: waited for, so that nothing of it outlives the service.
        if let Some(Spare { channel, pid, .. }) = self.spare.take() {
            drop(channel);
            if let Ok(pidfd) = sys::pidfd_open(pid) {
                let mut entries = [poll_entry(pidfd.as_raw_fd(), POLLIN)];
                let _ = sys::poll(&mut entries, Some(SPARE_LEAVING));
            }
        }
    }

    /// Serves or declines one caller: root peers only.
    fn serve_one(&mut self, connection: &OwnedFd) {
        let Ok(peer) = rustix::net::sockopt::socket_peercred(connection) else {
            return;
        };
        if !peer.uid.is_root() {
            return;
        }
        let Ok(Some((bytes, fds))) = resident::receive_bytes(connection) else {
            return;
        };
        let forward = bytes
            .starts_with(&front::FORWARD_MAGIC)
            .then(|| Forward::decode(&bytes, fds))
            .flatten();
        let answer = match forward {
            Some(forward) => {
                if Place::of(peer.pid.as_raw_nonzero().get()).ok().as_ref() == Some(&self.place) {
                    self.carry_out(forward)
                } else {
                    Err("another mount namespace or root directory".into())
                }
            }
            None => Err("not a forwarded command".into()),
        };
        // An interruption the front passed on meanwhile is read, not left
        // in the queue: closing a connection with unread data resets it,
        // and the front could then take the reset for the answer.
        let mut unread = [0u8; 64];
        while rustix::net::recv(connection, &mut unread, rustix::net::RecvFlags::DONTWAIT)
            .is_ok_and(|(length, _)| length > 0)
        {}
        let reply = match answer {
            Ok(code) => vec![front::FINISHED, code],
            Err(why) => {
                tracing::debug!("the service declined a command: {why}");
                vec![front::DECLINED]
            }
        };
        let _ = rustix::net::send(connection, &reply, SendFlags::NOSIGNAL);
    }

    /// Carries out a forwarded `--init` or `--cleanup` and returns its exit
    /// status, or says why the caller must do it itself.
    fn carry_out(&mut self, forward: Forward) -> std::result::Result<u8, String> {
        let program = Path::new(&forward.program)
            .file_name()
            .map(|name| name.to_string_lossy());
        if program.as_deref() != Some(crate::cli::program_name()) {
            return Err("called by another name".into());
        }
        let parsed = parse(&forward.words)?;
        if !matches!(parsed.action, Action::Init | Action::Cleanup) {
            return Err("neither --init nor --cleanup".into());
        }
        if config_path_of(&forward).as_ref() != Some(&self.config_path) {
            return Err("another installation".into());
        }
        // The caller asks for the command's logs, which this process does
        // not keep.
        if forward
            .environment
            .iter()
            .any(|(name, _)| name == "ISOBOX_LOG")
        {
            return Err("logs asked for".into());
        }
        let owner = driver::owner_of_new_box(&parsed, (0, 0)).map_err(|error| error.to_string())?;
        let config = self.config().map_err(|error| format!("{error:#}"))?;
        rustix::process::fchdir(&forward.directory).map_err(|error| error.to_string())?;
        let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(forward.umask));
        let answer = self.carry_out_in(&forward, &parsed, &config, owner);
        rustix::process::umask(umask);
        let _ = rustix::process::chdir("/");
        answer
    }

    /// The configuration as the command line would read it now: loaded
    /// again when the file is not the one loaded last (another inode, size
    /// or change time).
    fn config(&mut self) -> Result<BoxesConfig> {
        let state = FileState::of(&self.config_path)?;
        if let Some((known, config)) = &self.config {
            if *known == state {
                return Ok(config.clone());
            }
        }
        let config = BoxesConfig::load(&self.config_path)?;
        // Changed while it was read: loaded again next time.
        if FileState::of(&self.config_path)? == state {
            self.config = Some((state, config.clone()));
        }
        Ok(config)
    }

    /// [`carry_out`](Self::carry_out) in the caller's directory and umask.
    fn carry_out_in(
        &mut self,
        forward: &Forward,
        parsed: &super::args::IsolateArgs,
        config: &BoxesConfig,
        owner: (u32, u32),
    ) -> std::result::Result<u8, String> {
        // Busy: the ordinary path reports it, or waits with --wait.
        let locked = config
            .sandbox(parsed.box_id)
            .and_then(|sandbox| sandbox.lock(false))
            .map_err(|error| error.to_string())?;
        rustix::stdio::dup2_stdout(&forward.stdout).map_err(|error| error.to_string())?;
        if let Err(error) = rustix::stdio::dup2_stderr(&forward.stderr) {
            self.give_back_stdio();
            return Err(error.to_string());
        }
        // The box's agent socket, if this service still listens on it, is
        // not left for the command's own stop of the box's agent.
        if let Ok(id) = u32::try_from(parsed.box_id) {
            self.forget_awaiting(id);
        }
        driver::note_configuration(parsed, &self.config_path, config);
        let done = match parsed.action {
            Action::Init => {
                let mut await_first_caller = |locked: &boxes::LockedBox| {
                    if parsed.cg {
                        self.await_first_caller(config, locked.id());
                    }
                };
                driver::init_locked(config, parsed, locked, 0, owner, &mut await_first_caller)
            }
            _ => driver::cleanup_locked(config, parsed, locked, 0),
        };
        let code = done
            .unwrap_or_else(|error| super::die(&error, &mut MetaFile::new(parsed.meta.as_deref())));
        // What went to the caller's stdout through Rust's buffer goes
        // before the descriptor is taken back.
        let _ = io::Write::flush(&mut io::stdout());
        self.give_back_stdio();
        Ok(code)
    }

    /// Starts a spare agent when there is none and the installation has
    /// agents: it builds its box while the service waits for the next
    /// command.
    fn start_spare(&mut self) {
        if self.spare.is_some() || self.failed_spares >= SPARE_ATTEMPTS {
            return;
        }
        let Ok(config) = self.config() else {
            return;
        };
        // A spare is built for the boxes' common configuration: with
        // CPUs or memory nodes given per box, a box's own would not fit it.
        if !config.box_agent || !config.per_box.is_empty() {
            return;
        }
        let started = (|| -> Result<Spare> {
            let (ours, theirs) = resident::packet_pair()?;
            let config_path = self
                .config_path
                .to_str()
                .context("the configuration's path is not UTF-8")?;
            let command_line = [
                crate::cli::program_name(),
                super::agent::SPARE_FLAG,
                config_path,
            ]
            .join("\0");
            let pid = match sys::fork_resident(
                theirs.as_fd(),
                super::agent::SPARE_NAME,
                command_line.as_bytes(),
                sys::Scheduling::Background,
            )? {
                sys::Forked::Parent(pid) => pid,
                sys::Forked::Child => super::agent::forked_spare(&self.config_path),
            };
            Ok(Spare {
                channel: ours,
                pid,
                ready: false,
                hurried: false,
            })
        })();
        match started {
            Ok(spare) => self.spare = Some(spare),
            Err(error) => {
                tracing::debug!("cannot start a spare agent: {error:#}");
                self.failed_spares = SPARE_ATTEMPTS;
            }
        }
    }

    /// Whether the spare agent has built its box; a spare that ended
    /// unready is forgotten (and counted).
    fn spare_ready(&mut self) -> bool {
        let Some(spare) = &mut self.spare else {
            return false;
        };
        if !spare.ready {
            let mut byte = [0u8; 1];
            match rustix::net::recv(&spare.channel, &mut byte, rustix::net::RecvFlags::DONTWAIT) {
                Ok((1, _)) if byte[0] == super::agent::SPARE_READY => {
                    spare.ready = true;
                }
                // Still building.
                Err(rustix::io::Errno::AGAIN) => return false,
                _ => {
                    self.spare = None;
                    self.failed_spares += 1;
                    return false;
                }
            }
        }
        self.failed_spares = 0;
        true
    }

    /// For box `id`, just initialized with `--cg` (its lock held), when
    /// there is a spare: binds the box's agent socket and listens on it
    /// until the box's first caller comes ([`hand_spares`](Self::hand_spares)).
    /// A box cleaned up without a run never takes the spare.
    fn await_first_caller(&mut self, config: &BoxesConfig, id: u32) {
        // Ready or still being built: the box's first caller waits for it
        // if need be.
        self.spare_ready();
        if self.spare.is_none() {
            return;
        }
        let path = super::agent::socket_path(config, id);
        let listening =
            resident::listen_at(&path).and_then(|listener| Ok((listener, file_id(&path)?)));
        match listening {
            Ok((listener, file)) => self.awaiting.push(Awaiting {
                id,
                listener,
                path,
                file,
                called: None,
            }),
            Err(error) => {
                let _ = std::fs::remove_file(&path);
                tracing::debug!("cannot listen for box {id}'s first caller: {error:#}");
            }
        }
    }

    /// When the first of the boxes whose first caller has come (and waits
    /// for the spare) was called.
    fn first_waiting(&self) -> Option<Instant> {
        self.awaiting.iter().filter_map(|box_| box_.called).min()
    }

    /// Gives the spare to the box whose first caller came first, as long
    /// as a ready spare and such a box remain: the spare agent is given the
    /// box's number and its socket, the caller waiting in it, and becomes
    /// the box's agent; a new spare is started for the next. A caller who
    /// would wait for a spare that ended, or longer than
    /// [`SPARE_PATIENCE`], has its connection reset and takes the ordinary
    /// path; one who waits for a spare still being built has the spare
    /// built at the usual priority from then on.
    fn hand_spares(&mut self) {
        loop {
            let Some(index) = (0..self.awaiting.len())
                .filter(|&index| self.awaiting[index].called.is_some())
                .min_by_key(|&index| self.awaiting[index].called)
            else {
                return;
            };
            if !self.spare_ready() {
                if self.spare.is_none() {
                    self.forget_called(|_| true);
                } else {
                    self.forget_called(|since| since.elapsed() >= SPARE_PATIENCE);
                    self.hurry_spare();
                }
                return;
            }
            let (Some(spare), box_) = (self.spare.take(), self.awaiting.remove(index)) else {
                return;
            };
            // In the background the spare would wake behind whatever else
            // runs, the caller waiting (it schedules itself and its holder
            // normally too, but only once it runs).
            let _ = sys::set_scheduling(spare.pid, sys::Scheduling::Normal);
            let given = resident::send_with_descriptor(
                &spare.channel,
                box_.id.to_string().as_bytes(),
                box_.listener.as_fd(),
            );
            if let Err(error) = given {
                tracing::debug!("cannot give box {} the spare agent: {error}", box_.id);
                box_.forget();
            }
            self.start_spare();
        }
    }

    /// Resets the connections of the callers who came at a time `late`
    /// says is too late (see [`Awaiting::forget`]).
    fn forget_called(&mut self, late: impl Fn(Instant) -> bool) {
        let (forgotten, kept) = std::mem::take(&mut self.awaiting)
            .into_iter()
            .partition(|box_| box_.called.is_some_and(&late));
        self.awaiting = kept;
        for box_ in forgotten {
            box_.forget();
        }
    }

    /// A caller waits for the spare: its agent, and the holder in its
    /// cgroup, go on scheduled normally rather than in the background,
    /// where any other work on the machine would hold them up. (Each
    /// cgroup of the spare lists the same holder; the service cannot tell
    /// the holder's pid otherwise.)
    fn hurry_spare(&mut self) {
        let Some(spare) = &mut self.spare else {
            return;
        };
        if std::mem::replace(&mut spare.hurried, true) {
            return;
        }
        let spare_pid = spare.pid;
        let normally = |pid: i32| {
            if pid > 0 {
                let _ = sys::set_scheduling(pid, sys::Scheduling::Normal);
            }
        };
        normally(spare_pid);
        let Ok(config) = self.config() else {
            return;
        };
        let Ok(placement) = config
            .sandbox(0)
            .and_then(|sandbox| sandbox.cgroup_placement())
        else {
            return;
        };
        let name = format!("{}{}", super::agent::SPARE_CGROUP_PREFIX, spare_pid);
        for parent in placement.parent_dirs() {
            let procs = std::fs::read_to_string(parent.join(&name).join("cgroup.procs"));
            for pid in procs.iter().flat_map(|text| text.lines()) {
                if let Ok(pid) = pid.parse() {
                    normally(pid);
                }
            }
        }
    }

    /// Stops waiting for box `id`'s first caller (the box is initialized
    /// again or cleaned up).
    fn forget_awaiting(&mut self, id: u32) {
        let (forgotten, kept) = std::mem::take(&mut self.awaiting)
            .into_iter()
            .partition(|box_| box_.id == id);
        self.awaiting = kept;
        for box_ in forgotten {
            box_.forget();
        }
    }

    /// Removes the cgroups spare agents left when they were killed (their
    /// boxes die with them), named after their pids.
    fn sweep_spares(&mut self) {
        let Ok(config) = self.config() else {
            return;
        };
        let Ok(placement) = config
            .sandbox(0)
            .and_then(|sandbox| sandbox.cgroup_placement())
        else {
            return;
        };
        let mut dead = std::collections::BTreeSet::new();
        for parent in placement.parent_dirs() {
            for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let gone = name
                    .strip_prefix(super::agent::SPARE_CGROUP_PREFIX)
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                if gone {
                    dead.insert(name);
                }
            }
        }
        for name in dead {
            if let Ok(Some(mut cgroup)) = isobox::CgroupController::existing(&placement, &name) {
                if let Err(error) = cgroup.remove() {
                    tracing::debug!("removing a dead spare's cgroup {name}: {error}");
                }
            }
        }
    }

    /// Standard output and error are `/dev/null` again.
    fn give_back_stdio(&self) {
        let _ = rustix::stdio::dup2_stdout(&self.null);
        let _ = rustix::stdio::dup2_stderr(&self.null);
    }
}
