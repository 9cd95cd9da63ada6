//! `pipeMapping`: commands of one request run together, each in its own
//! box, one's output wired to another's input (an interactor and a
//! solution, both ways).
//!
//! The library writes a program's output to a path inside its box, so the
//! writer's end is a FIFO the server makes in the writer's box directory
//! (`.isobox-pipe-<n>`) and opens for reading before the run; the reader's
//! end is an ordinary pipe handed to the other box as its stdin. A pump
//! thread copies between the two, and keeps a copy (up to `max`) when the
//! client asked for `proxy`. Opening the FIFO never blocks either box: the
//! server's reader is there before the writer comes, and the reader's end
//! is a pipe, not a FIFO, so two boxes never wait for each other to open.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use isobox::pool::PoolError;

use super::confine;
use super::model::{CmdResult, PipeMap, Request, Verdict};
use super::run::{self, Cancel, Job, Wiring};
use super::AppState;

/// Checks a request's `pipeMapping`: the ends exist, each descriptor is
/// wired once, and the wired `files` slots are left `null`.
pub fn validate(request: &Request, caps_output: u64) -> Result<(), String> {
    let count = request.cmd.len() as i64;
    let mut used = Vec::new();
    for (number, pipe) in request.pipe_mapping.iter().enumerate() {
        let what = format!("pipeMapping[{number}]");
        let (input, output) = (pipe.input, pipe.output);
        if !(0..count).contains(&input.index) || !(0..count).contains(&output.index) {
            return Err(format!("{what}: no such cmd"));
        }
        if input.index == output.index {
            return Err(format!("{what}: a command wired to itself"));
        }
        if !matches!(input.fd, 1 | 2) || output.fd != 0 {
            return Err(format!(
                "{what}: only stdout or stderr (in.fd 1, 2) to stdin (out.fd 0) are supported"
            ));
        }
        for end in [(input.index, input.fd), (output.index, output.fd)] {
            if used.contains(&end) {
                return Err(format!(
                    "{what}: descriptor {} of cmd {} is wired twice",
                    end.1, end.0
                ));
            }
            used.push(end);
            let slot = request.cmd[end.0 as usize].files.get(end.1 as usize);
            if slot.is_some_and(Option::is_some) {
                return Err(format!(
                    "{what}: files[{}] of cmd {} must be null when wired",
                    end.1, end.0
                ));
            }
        }
        if pipe.proxy && !pipe.name.is_empty() && pipe.max < 0 {
            return Err(format!("{what}: negative max"));
        }
        if pipe.proxy && pipe.max as u64 > caps_output {
            return Err(format!(
                "{what}: max above the server's limit of {caps_output}"
            ));
        }
    }
    Ok(())
}

/// Copies from the FIFO to the reader's pipe until the writer is done,
/// keeping up to `keep` bytes. A reader gone (EPIPE) does not stop the
/// copy: the writer is drained so that it never blocks on a full FIFO.
fn pump(fifo: File, mut to: Option<File>, keep: Option<u64>, writer_done: &AtomicBool) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut fifo = fifo;
    let timeout = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    };
    loop {
        let done = writer_done.load(Ordering::SeqCst);
        let mut fds = [PollFd::new(&fifo, PollFlags::IN)];
        let ready = rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0);
        let events = fds[0].revents();
        if ready == 0 {
            if done {
                break;
            }
            continue;
        }
        match fifo.read(&mut buffer) {
            Ok(0) => {
                // End of file once a writer came and left (HUP); before
                // any writer came, only when its run is over.
                if events.contains(PollFlags::HUP) || done {
                    break;
                }
            }
            Ok(n) => {
                if let Some(limit) = keep {
                    let room = (limit as usize).saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                }
                if let Some(pipe) = &mut to {
                    if pipe.write_all(&buffer[..n]).is_err() {
                        to = None;
                    }
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                if done {
                    break;
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    kept
}

/// Makes the FIFO of pipe `number` in `workdir` and opens its read end.
fn make_fifo(workdir: &std::path::Path, number: usize) -> std::io::Result<(PathBuf, File)> {
    let root = confine::open_box(workdir)?;
    let name = format!(".isobox-pipe-{number}");
    rustix::fs::mknodat(
        &root,
        name.as_str(),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )?;
    // The box's user opens it for writing; the umask must not decide.
    rustix::fs::chmodat(
        &root,
        name.as_str(),
        Mode::from_raw_mode(0o666),
        AtFlags::empty(),
    )?;
    let fd = rustix::fs::openat2(
        &root,
        name.as_str(),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )?;
    Ok((
        PathBuf::from(format!("{}/{name}", confine::BOX_DIR)),
        File::from(fd),
    ))
}

/// Runs the commands of `request` together, wired as it says.
pub fn run_piped(
    state: &AppState,
    jobs: Vec<Job>,
    pipes: &[PipeMap],
    cancel: &Cancel,
) -> Result<Vec<CmdResult>, PoolError> {
    let mut leases = state.pool.acquire_many(jobs.len())?;
    let mut wirings: Vec<Wiring> = jobs.iter().map(|_| Wiring::default()).collect();
    let done: Vec<Arc<AtomicBool>> = jobs.iter().map(|_| Arc::default()).collect();
    let mut pumps = Vec::new();
    for (number, pipe) in pipes.iter().enumerate() {
        let writer = pipe.input.index as usize;
        let reader = pipe.output.index as usize;
        let (inside, fifo) = match make_fifo(leases[writer].workdir(), number) {
            Ok(made) => made,
            Err(err) => {
                return Err(PoolError::Io {
                    context: format!("making pipe {number}"),
                    source: err,
                })
            }
        };
        let (pipe_read, pipe_write) = std::io::pipe().map_err(|source| PoolError::Io {
            context: "pipe".into(),
            source,
        })?;
        wirings[writer].outputs[pipe.input.fd as usize - 1] = Some(inside);
        wirings[reader].stdin = Some(File::from(std::os::fd::OwnedFd::from(pipe_read)));
        let keep = (pipe.proxy && !pipe.name.is_empty()).then_some(pipe.max.max(0) as u64);
        pumps.push((
            writer,
            pipe.name.clone(),
            fifo,
            File::from(std::os::fd::OwnedFd::from(pipe_write)),
            keep,
        ));
    }
    let mut results = std::thread::scope(|scope| {
        let pump_threads: Vec<_> = pumps
            .into_iter()
            .map(|(writer, name, fifo, to, keep)| {
                let writer_done = done[writer].clone();
                let thread = scope.spawn(move || pump(fifo, Some(to), keep, &writer_done));
                (writer, name, keep, thread)
            })
            .collect();
        let run_threads: Vec<_> = jobs
            .into_iter()
            .zip(leases.iter_mut())
            .zip(wirings)
            .zip(&done)
            .map(|(((job, lease), wiring), finished)| {
                scope.spawn(move || {
                    let result = run::execute(job, lease, &state.store, cancel, wiring);
                    finished.store(true, Ordering::SeqCst);
                    result
                })
            })
            .collect();
        let mut results: Vec<CmdResult> = run_threads
            .into_iter()
            .map(|thread| {
                thread.join().unwrap_or_else(|_| {
                    CmdResult::failed(Verdict::InternalError, "the run's thread failed")
                })
            })
            .collect();
        for flag in &done {
            flag.store(true, Ordering::SeqCst);
        }
        for (writer, name, keep, thread) in pump_threads {
            let copied = thread.join().unwrap_or_default();
            if keep.is_some() {
                results[writer]
                    .files
                    .insert(name, String::from_utf8_lossy(&copied).into_owned());
            }
        }
        results
    });
    drop(leases);
    for result in &mut results {
        state.metrics.result(result.status, result.run_time);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pump_copies_and_keeps_at_most_max() {
        let dir = tempfile::tempdir().unwrap();
        let (_, fifo) = make_fifo(dir.path(), 0).unwrap();
        let (read, write) = std::io::pipe().unwrap();
        let done = AtomicBool::new(false);
        let path = dir.path().join(".isobox-pipe-0");
        std::thread::scope(|scope| {
            let pumping = scope.spawn(|| {
                pump(
                    fifo,
                    Some(File::from(std::os::fd::OwnedFd::from(write))),
                    Some(4),
                    &done,
                )
            });
            let mut writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            writer.write_all(b"hello pipe").unwrap();
            drop(writer);
            let mut copied = String::new();
            let mut read = read;
            read.read_to_string(&mut copied).unwrap();
            assert_eq!(copied, "hello pipe");
            assert_eq!(pumping.join().unwrap(), b"hell");
        });
    }

    #[test]
    fn a_writer_that_never_comes_ends_with_its_run() {
        let dir = tempfile::tempdir().unwrap();
        let (_, fifo) = make_fifo(dir.path(), 1).unwrap();
        let done = AtomicBool::new(true);
        assert!(pump(fifo, None, Some(10), &done).is_empty());
    }

    #[test]
    fn mappings_are_checked() {
        let request = |pipes: serde_json::Value| -> Request {
            serde_json::from_value(serde_json::json!({
                "cmd": [{"args": ["a"], "files": [null, null]}, {"args": ["b"], "files": [{"content": ""}]}],
                "pipeMapping": pipes,
            }))
            .unwrap()
        };
        let ok = request(
            serde_json::json!([{"in": {"index": 0, "fd": 1}, "out": {"index": 1, "fd": 1}}]),
        );
        assert!(validate(&ok, 100).is_err(), "out.fd must be 0");
        let slot = request(
            serde_json::json!([{"in": {"index": 0, "fd": 1}, "out": {"index": 1, "fd": 0}}]),
        );
        assert!(validate(&slot, 100).unwrap_err().contains("null"));
        let good = request(
            serde_json::json!([{"in": {"index": 1, "fd": 1}, "out": {"index": 0, "fd": 0}}]),
        );
        assert!(validate(&good, 100).is_ok());
        let far = request(
            serde_json::json!([{"in": {"index": 2, "fd": 1}, "out": {"index": 0, "fd": 0}}]),
        );
        assert!(validate(&far, 100).is_err());
    }
}
