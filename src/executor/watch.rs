//! The keeper's side of a running box: one `poll` loop that feeds stdin,
//! drains stdout and stderr into their sinks, and wakes in time for the
//! wall-clock deadline and the next CPU-time check. At a limit the proxy
//! (pid 1 of the box) is asked to stop, and killed if it does not.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::verdict::Captured;
use super::ProcessExecutor;
use crate::cgroup::CgroupController;
use crate::error::{IsolateError, Result};
use crate::jail;
use crate::result::KillReason;
use crate::sys;

/// Shortest and longest pause between two CPU-time checks. The pause is the
/// remaining CPU budget spread over every CPU, so the check can never be
/// late by more than the shortest pause.
const MIN_CPU_CHECK: Duration = Duration::from_millis(1);
const MAX_CPU_CHECK: Duration = Duration::from_millis(100);

/// How long output may keep flowing after the box is gone (only without
/// namespaces can anything outlive the proxy and hold a pipe open).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How long the proxy gets to kill the inmate and report before it is
/// killed itself.
const STOP_GRACE: Duration = Duration::from_millis(50);

const READ_CHUNK: usize = 64 * 1024;

/// Collects one output stream, keeping at most `limit` bytes.
pub(super) struct OutputSink {
    limit: Option<u64>,
    accepted: u64,
    dropped: u64,
    kept: Vec<u8>,
    /// Forward to the keeper's own stdout (1) or stderr (2) instead of keeping.
    forward_to: Option<i32>,
}

impl OutputSink {
    fn new(limit: Option<u64>, forward_to: Option<i32>) -> Self {
        Self {
            limit,
            accepted: 0,
            dropped: 0,
            kept: Vec::new(),
            forward_to,
        }
    }

    fn accept(&mut self, bytes: &[u8]) {
        let room = self
            .limit
            .map_or(u64::MAX, |limit| limit.saturating_sub(self.accepted));
        let take = (bytes.len() as u64).min(room) as usize;
        self.accepted += take as u64;
        self.dropped += (bytes.len() - take) as u64;
        let bytes = &bytes[..take];
        match self.forward_to {
            // A closed terminal must not kill the run: forwarding is best effort.
            Some(1) => drop(std::io::stdout().lock().write_all(bytes)),
            Some(_) => drop(std::io::stderr().lock().write_all(bytes)),
            None => self.kept.extend_from_slice(bytes),
        }
    }

    fn finish(self) -> Captured {
        let text = String::from_utf8(self.kept)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned());
        Captured {
            text,
            dropped: self.dropped,
        }
    }
}

/// The keeper's ends of one run's pipes, and what flowed through them.
pub(super) struct Streams {
    /// The pipe and how much of `stdin_data` went into it.
    stdin: Option<(File, usize)>,
    /// Kept whole until the run is over: a warm run whose box died before
    /// the program started gives it back for a cold run.
    stdin_data: Vec<u8>,
    stdout: Option<File>,
    stderr: Option<File>,
    stdout_sink: OutputSink,
    stderr_sink: OutputSink,
}

impl Streams {
    /// The keeper's ends, non-blocking: `stdin` with the bytes to feed it,
    /// the read ends of the output pipes (none where the program writes
    /// to the caller's own descriptor). Output beyond `limit` is dropped;
    /// with `pass_through` it goes to the keeper's stdout and stderr.
    pub(super) fn new(
        stdin: Option<(OwnedFd, Vec<u8>)>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        limit: Option<u64>,
        pass_through: bool,
    ) -> std::io::Result<Self> {
        let (stdin, stdin_data) = match stdin {
            Some((fd, data)) => (Some((File::from(fd), 0)), data),
            None => (None, Vec::new()),
        };
        let streams = Self {
            stdin,
            stdin_data,
            stdout: stdout.map(File::from),
            stderr: stderr.map(File::from),
            stdout_sink: OutputSink::new(limit, pass_through.then_some(1)),
            stderr_sink: OutputSink::new(limit, pass_through.then_some(2)),
        };
        let stdin = streams.stdin.as_ref().map(|(file, _)| file);
        for file in [stdin, streams.stdout.as_ref(), streams.stderr.as_ref()]
            .into_iter()
            .flatten()
        {
            sys::set_nonblocking(file.as_fd())?;
        }
        Ok(streams)
    }

    /// The bytes meant for stdin, whether or not they were fed.
    pub(super) fn take_stdin_data(&mut self) -> Vec<u8> {
        self.stdin = None;
        std::mem::take(&mut self.stdin_data)
    }

    /// What the program wrote to stdout and stderr.
    pub(super) fn finish(self) -> (Captured, Captured) {
        (self.stdout_sink.finish(), self.stderr_sink.finish())
    }

    fn is_drained(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none()
    }

    /// The streams still open, as `poll` entries.
    fn poll_entries(&self, entries: &mut Vec<sys::PollFd>) {
        for file in [&self.stdout, &self.stderr].into_iter().flatten() {
            entries.push(sys::poll_entry(file.as_raw_fd(), sys::POLLIN));
        }
        if let Some((file, _)) = &self.stdin {
            entries.push(sys::poll_entry(file.as_raw_fd(), sys::POLLOUT));
        }
    }

    /// Moves data on every stream `poll` found ready.
    fn pump_ready(&mut self, ready: impl Fn(i32) -> bool, buffer: &mut [u8]) {
        if self.stdout.as_ref().is_some_and(|f| ready(f.as_raw_fd())) {
            Self::pump_output(&mut self.stdout, &mut self.stdout_sink, buffer);
        }
        if self.stderr.as_ref().is_some_and(|f| ready(f.as_raw_fd())) {
            Self::pump_output(&mut self.stderr, &mut self.stderr_sink, buffer);
        }
        if self
            .stdin
            .as_ref()
            .is_some_and(|(f, _)| ready(f.as_raw_fd()))
        {
            self.pump_stdin();
        }
    }

    /// Reads whatever is available; `None`s the stream at end of file.
    fn pump_output(stream: &mut Option<File>, sink: &mut OutputSink, buffer: &mut [u8]) {
        while let Some(file) = stream {
            match file.read(buffer) {
                Ok(0) => *stream = None,
                Ok(n) => sink.accept(&buffer[..n]),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) => {
                    tracing::warn!("reading the program's output failed: {err}");
                    *stream = None;
                }
            }
        }
    }

    /// Writes as much stdin as the pipe takes; closes it when done or when
    /// the program stopped reading.
    fn pump_stdin(&mut self) {
        let data = &self.stdin_data;
        while let Some((file, written)) = &mut self.stdin {
            if *written == data.len() {
                self.stdin = None;
                return;
            }
            match file.write(&data[*written..]) {
                Ok(n) => *written += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                // EPIPE: the program closed its stdin; that is its right.
                Err(_) => self.stdin = None,
            }
        }
    }
}

/// The clocks of a running box and the kill the keeper is in the middle
/// of.
struct Clocks<'a> {
    wall_deadline: Option<Instant>,
    /// The CPU-time cap and the cgroup to read CPU time from; without a
    /// cgroup the `RLIMIT_CPU` of the box is the only CPU limit.
    cpu_cap: Option<(Duration, &'a CgroupController)>,
    /// CPUs the box may run on at once.
    cpus: u32,
    next_cpu_check: Instant,
    killed_for: Option<KillReason>,
    /// When the proxy, asked to stop, is killed instead.
    hard_kill_at: Option<Instant>,
    /// The proxy was sent `SIGKILL`: a warm box's holder may have been
    /// taken with it even when it had already answered.
    hard_killed: bool,
    /// The signal the executor's [`OutsideEvent`] stopped the run with.
    ///
    /// [`OutsideEvent`]: super::OutsideEvent
    outside_interruption: Option<i32>,
}

impl Clocks<'_> {
    /// The limit the box is past at `now`, if any; an interruption of the
    /// keeper comes first.
    fn limit_passed(&mut self, now: Instant) -> Option<KillReason> {
        if let Some(signal) = sys::interruption().or(self.outside_interruption) {
            return Some(KillReason::Interrupted(signal));
        }
        if self.wall_deadline.is_some_and(|deadline| now >= deadline) {
            return Some(KillReason::WallTime);
        }
        let (cap, cgroup) = self.cpu_cap?;
        if now < self.next_cpu_check {
            return None;
        }
        let used = cgroup.cpu_time().unwrap_or_else(|err| {
            tracing::warn!("reading CPU time failed: {err}");
            Duration::ZERO
        });
        if used > cap {
            return Some(KillReason::CpuTime);
        }
        let pause = ((cap - used) / self.cpus).clamp(MIN_CPU_CHECK, MAX_CPU_CHECK);
        self.next_cpu_check = now + pause;
        None
    }

    /// When the loop must look at the clocks again while the box runs.
    fn wake_at(&self) -> Option<Instant> {
        if self.killed_for.is_some() {
            return self.hard_kill_at;
        }
        let cpu_check = self.cpu_cap.map(|_| self.next_cpu_check);
        match (self.wall_deadline, cpu_check) {
            (Some(wall), Some(cpu)) => Some(wall.min(cpu)),
            (wall, cpu) => wall.or(cpu),
        }
    }
}

impl ProcessExecutor {
    /// The keeper's loop: moves data, enforces the clocks, and returns once
    /// the run has ended (`ended_fd` readable: the proxy's pidfd, or a warm
    /// box's socket) and the output is drained. Returns why the box was
    /// killed, if it was, the wall time until the run ended, and whether the
    /// proxy had to be sent `SIGKILL`.
    pub(super) fn watch(
        &self,
        proxy: &jail::Proxy,
        ended_fd: std::os::fd::BorrowedFd<'_>,
        cgroup: Option<&CgroupController>,
        streams: &mut Streams,
        start: Instant,
    ) -> Result<(Option<KillReason>, Duration, bool)> {
        // Blocked for this thread while it feeds stdin, so a program that
        // closes its stdin costs an EPIPE, not the keeper's life.
        let _sigpipe = sys::SigpipeBlocked::new()
            .map_err(|err| tracing::warn!("cannot block SIGPIPE: {err}"))
            .ok();
        let mut clocks = Clocks {
            wall_deadline: self.config.wall_time_limit.map(|limit| start + limit),
            cpu_cap: self.config.cpu_kill_threshold().zip(cgroup),
            cpus: self.cpus,
            next_cpu_check: start,
            killed_for: None,
            hard_kill_at: None,
            hard_killed: false,
            outside_interruption: None,
        };
        // Polled until it first turns readable.
        let mut outside = self.outside.as_ref();
        // Once the proxy is gone: the wall time of the run, and until when
        // output may still be drained.
        let mut ended: Option<(Duration, Instant)> = None;
        let mut buffer = vec![0u8; READ_CHUNK];
        let mut entries = Vec::with_capacity(4);
        loop {
            let now = Instant::now();
            let wake_at = match ended {
                Some((wall, drain_deadline)) => {
                    if streams.is_drained() || now >= drain_deadline {
                        return Ok((clocks.killed_for, wall, clocks.hard_killed));
                    }
                    Some(drain_deadline)
                }
                None => {
                    self.enforce_limits(&mut clocks, proxy, ended_fd, now)?;
                    clocks.wake_at()
                }
            };
            entries.clear();
            if ended.is_none() {
                entries.push(sys::poll_entry(ended_fd.as_raw_fd(), sys::POLLIN));
                // Only to wake up: the byte stays, and the next round finds
                // the signal through `limit_passed`.
                if let Some(fd) = sys::interruption_fd().filter(|_| clocks.killed_for.is_none()) {
                    entries.push(sys::poll_entry(fd.as_raw_fd(), sys::POLLIN));
                }
                if let Some(event) = outside.filter(|_| clocks.killed_for.is_none()) {
                    entries.push(sys::poll_entry(event.fd.as_raw_fd(), sys::POLLIN));
                }
            }
            streams.poll_entries(&mut entries);
            let timeout = wake_at.map(|at| at.saturating_duration_since(now));
            sys::poll(&mut entries, timeout).map_err(|source| IsolateError::io("poll", source))?;

            let ready = |fd: i32| {
                entries
                    .iter()
                    .any(|entry| entry.fd == fd && entry.revents != 0)
            };
            if let Some(event) = outside.filter(|event| ready(event.fd.as_raw_fd())) {
                outside = None;
                clocks.outside_interruption = (event.on_ready)(event.fd.as_fd());
            }
            streams.pump_ready(ready, &mut buffer);
            if ended.is_none() && ready(ended_fd.as_raw_fd()) {
                let now = Instant::now();
                ended = Some((now - start, now + DRAIN_GRACE));
                streams.stdin = None;
            }
        }
    }

    /// At a limit, asks the proxy to stop (it kills the inmate and reports
    /// how it ended); kills it when it has not stopped by [`STOP_GRACE`].
    fn enforce_limits(
        &self,
        clocks: &mut Clocks<'_>,
        proxy: &jail::Proxy,
        ended_fd: std::os::fd::BorrowedFd<'_>,
        now: Instant,
    ) -> Result<()> {
        if clocks.killed_for.is_none() {
            if let Some(reason) = clocks.limit_passed(now) {
                clocks.killed_for = Some(reason);
                sys::pidfd_send_signal(proxy.pidfd.as_fd(), jail::STOP_SIGNAL)
                    .map_err(|source| IsolateError::io("stopping the box", source))?;
                clocks.hard_kill_at = Some(now + STOP_GRACE);
            }
        }
        if clocks.hard_kill_at.is_some_and(|at| now >= at) {
            clocks.hard_kill_at = None;
            // The run may have ended since the last poll (a warm holder's
            // answer is waiting): then there is nothing left to kill, and a
            // kill would take a holder that is ready for the next run.
            let mut entries = [sys::poll_entry(ended_fd.as_raw_fd(), sys::POLLIN)];
            if sys::poll(&mut entries, Some(Duration::ZERO)).is_ok_and(|ready| ready > 0) {
                return Ok(());
            }
            clocks.hard_killed = true;
            let delay = super::HARD_KILL_DELAY_FOR_TESTS.load(std::sync::atomic::Ordering::Relaxed);
            if delay > 0 {
                std::thread::sleep(Duration::from_micros(delay));
            }
            sys::pidfd_send_signal(proxy.pidfd.as_fd(), libc::SIGKILL)
                .map_err(|source| IsolateError::io("killing the box", source))?;
            if !self.namespaces {
                let _ = sys::kill_process_group(proxy.pid, libc::SIGKILL);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sink_keeps_at_most_the_limit() {
        let mut sink = OutputSink::new(Some(5), None);
        sink.accept(b"abc");
        sink.accept(b"defgh");
        let captured = sink.finish();
        assert_eq!(captured.dropped, 3);
        assert_eq!(captured.text, "abcde");
    }
}
