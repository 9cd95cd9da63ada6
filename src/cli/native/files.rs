//! Files that cross the box's wall in `isobox run`: copied in before the
//! run (`--copy-in` and a program named by a relative path), copied out
//! after it (`--copy-out`), and the program's stdout and stderr sent to
//! files of the caller (`--stdout`, `--stderr`).
//!
//! Everything inside the box is reached through [`isobox::confine`]:
//! after the run the box holds whatever the program made of it (links to
//! the host's files, FIFOs, huge files), and root must not follow any of it.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use isobox::config::BOX_MOUNT_POINT;
use isobox::confine::{self, BoxPath, CopyOutFailure};

use super::report::describe_io_error;

/// One file to copy into the box.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CopyIn {
    source: Source,
    inside: BoxPath,
}

/// Where a copied-in file comes from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// A file of the caller's.
    Host(PathBuf),
    /// Bytes isobox holds: a file copied out of a compile box.
    Bytes(Vec<u8>),
}

impl CopyIn {
    /// The caller's file `host`, to be `inside` in the box.
    pub(super) fn from_host(host: PathBuf, inside: BoxPath) -> Self {
        Self {
            source: Source::Host(host),
            inside,
        }
    }

    /// `data`, to be `inside` in the box.
    pub(super) fn from_bytes(data: Vec<u8>, inside: BoxPath) -> Self {
        Self {
            source: Source::Bytes(data),
            inside,
        }
    }
}

/// One file to copy out of the box.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CopyOut {
    inside: BoxPath,
    host: PathBuf,
}

/// Splits `A:B` at its first colon; without one, B is `None`.
fn split_pair(text: &str) -> (&str, Option<&str>) {
    match text.split_once(':') {
        Some((first, second)) => (first, Some(second)),
        None => (text, None),
    }
}

/// A name inside the box as `--copy-in`/`--copy-out` accept it: relative
/// to the box or absolute below /box, never climbing out.
pub(super) fn inside(name: &str, option: &str) -> Result<BoxPath> {
    BoxPath::parse_in(name, BOX_MOUNT_POINT).map_err(|why| anyhow!("{option} {name}: {why}"))
}

/// The files to copy in: every `--copy-in SRC[:DST]`, then the program
/// itself when it is named by a relative path with a slash (`./solution`)
/// and no `--copy-in` puts a file there. A program without a slash is
/// looked up in the box's PATH, as a shell would; an absolute one is the
/// box's own.
///
/// `planned` are copies decided before (a language preset's files).
pub(super) fn plan_copy_in(
    planned: Vec<CopyIn>,
    specs: &[String],
    program: &str,
) -> Result<Vec<CopyIn>> {
    let mut copies = planned;
    for spec in specs {
        let (source, destination) = split_pair(spec);
        if source.is_empty() {
            bail!("--copy-in {spec}: the source is empty; expected SRC or SRC:DST");
        }
        let destination = match destination {
            Some(destination) => destination,
            None => Path::new(source)
                .file_name()
                .and_then(|name| name.to_str())
                .ok_or_else(|| anyhow!("--copy-in {spec}: {source} has no file name"))?,
        };
        copies.push(CopyIn::from_host(
            PathBuf::from(source),
            inside(destination, "--copy-in")?,
        ));
    }
    if program.contains('/') && !program.starts_with('/') {
        let target = inside(program, "the program")?;
        if !copies.iter().any(|copy| copy.inside == target) {
            copies.push(CopyIn::from_host(PathBuf::from(program), target));
        }
    }
    Ok(copies)
}

/// The files to copy out: `--copy-out PATH[:DEST]`, DEST by default
/// PATH's file name in the working directory.
pub(super) fn plan_copy_out(specs: &[String]) -> Result<Vec<CopyOut>> {
    specs
        .iter()
        .map(|spec| {
            let (path, destination) = split_pair(spec);
            let inside = inside(path, "--copy-out")?;
            let host = match destination {
                Some("") => bail!("--copy-out {spec}: the destination is empty"),
                Some(destination) => PathBuf::from(destination),
                None => PathBuf::from(inside.file_name()),
            };
            Ok(CopyOut { inside, host })
        })
        .collect()
}

/// Copies the planned files into the fresh, still empty box directory.
/// Sources are the caller's files, opened with the caller's rights.
pub(super) fn copy_in(box_dir: &Path, copies: &[CopyIn]) -> Result<()> {
    if copies.is_empty() {
        return Ok(());
    }
    let root = open_box(box_dir)?;
    for copy in copies {
        let what = || match &copy.source {
            Source::Host(host) => format!("cannot copy {} into the box", host.display()),
            Source::Bytes(_) => "cannot copy the compiled program into the box".to_string(),
        };
        let mut source: Box<dyn std::io::Read> = match &copy.source {
            Source::Host(host) => {
                let file = File::open(host)
                    .map_err(|error| anyhow!("{}: {}", what(), describe_io_error(&error)))?;
                let regular = file.metadata().is_ok_and(|meta| meta.is_file());
                if !regular {
                    bail!(
                        "{}: not a regular file (bind a directory with --dir IN=OUT)",
                        what()
                    );
                }
                Box::new(file)
            }
            Source::Bytes(data) => Box::new(data.as_slice()),
        };
        confine::copy_in(&root, &copy.inside, &mut source).map_err(|failure| {
            anyhow!(
                "{} as {}: {}",
                what(),
                copy.inside.relative(),
                describe_io_error(&failure.error)
            )
        })?;
    }
    Ok(())
}

/// Copies the planned files out of the box after the run, each at most
/// `limit` bytes; returns one error line per file that could not be.
pub(super) fn copy_out(box_dir: &Path, copies: &[CopyOut], limit: u64) -> Vec<String> {
    if copies.is_empty() {
        return Vec::new();
    }
    let root = match open_box(box_dir) {
        Ok(root) => root,
        Err(error) => return vec![format!("--copy-out: {error}")],
    };
    let mut troubles = Vec::new();
    for copy in copies {
        let name = copy.inside.relative();
        let data = match confine::copy_out(&root, &copy.inside, limit, false) {
            Ok((data, _)) => data,
            Err(CopyOutFailure::Open(error)) => {
                troubles.push(format!(
                    "cannot copy {name} out of the box: {} (links are not followed)",
                    describe_io_error(&error)
                ));
                continue;
            }
            Err(failure) => {
                troubles.push(format!("cannot copy {name} out of the box: {failure}"));
                continue;
            }
        };
        let written = File::create(&copy.host).and_then(|mut file| file.write_all(&data));
        if let Err(error) = written {
            troubles.push(format!(
                "cannot write {} (copied out of {name}): {}",
                copy.host.display(),
                describe_io_error(&error)
            ));
        }
    }
    troubles
}

/// Reads the regular files `names` out of a box after its run, each at
/// most `limit` bytes, as copies into the next box.
pub(super) fn take_out(box_dir: &Path, names: &[BoxPath], limit: u64) -> Result<Vec<CopyIn>> {
    let root = open_box(box_dir)?;
    names
        .iter()
        .map(|name| {
            let (data, _) = confine::copy_out(&root, name, limit, false).map_err(|failure| {
                let why = match failure {
                    CopyOutFailure::Open(error) => describe_io_error(&error),
                    other => other.to_string(),
                };
                anyhow!(
                    "cannot take {} out of the compile box: {why}",
                    name.relative()
                )
            })?;
            Ok(CopyIn::from_bytes(data, name.clone()))
        })
        .collect()
}

fn open_box(box_dir: &Path) -> Result<OwnedFd> {
    confine::open_box(box_dir).map_err(|error| {
        anyhow!(
            "cannot open the box directory {}: {}",
            box_dir.display(),
            describe_io_error(&error)
        )
    })
}

/// isobox's own stdout and stderr pointed at the files of `--stdout` and
/// `--stderr` for the length of the run: the program's output reaches them
/// through the same keeper, under the same output limit, as it would reach
/// a terminal.
pub(super) struct Redirect {
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

impl Redirect {
    /// Points descriptors 1 and 2 at the files given, keeping the old ones.
    pub(super) fn install(stdout: Option<File>, stderr: Option<File>) -> Result<Self> {
        let mut redirect = Redirect {
            stdout: None,
            stderr: None,
        };
        if let Some(file) = stdout {
            let _ = std::io::stdout().flush();
            redirect.stdout = Some(duplicate(&rustix::stdio::stdout())?);
            rustix::stdio::dup2_stdout(&file)
                .map_err(|error| anyhow!("cannot redirect stdout to the --stdout file: {error}"))?;
        }
        if let Some(file) = stderr {
            redirect.stderr = Some(duplicate(&rustix::stdio::stderr())?);
            rustix::stdio::dup2_stderr(&file)
                .map_err(|error| anyhow!("cannot redirect stderr to the --stderr file: {error}"))?;
        }
        Ok(redirect)
    }

    /// Puts isobox's stdout and stderr back, after writing out what is
    /// still buffered for the file.
    pub(super) fn restore(mut self) -> Result<()> {
        let mut result = Ok(());
        if let Some(saved) = self.stdout.take() {
            if let Err(error) = std::io::stdout().flush() {
                result = Err(anyhow!("cannot write the --stdout file: {error}"));
            }
            rustix::stdio::dup2_stdout(&saved)
                .map_err(|error| anyhow!("cannot restore stdout: {error}"))?;
        }
        if let Some(saved) = self.stderr.take() {
            rustix::stdio::dup2_stderr(&saved)
                .map_err(|error| anyhow!("cannot restore stderr: {error}"))?;
        }
        result
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        // An early return must not leave isobox writing its report into
        // the program's output file.
        if let Some(saved) = self.stdout.take() {
            let _ = std::io::stdout().flush();
            let _ = rustix::stdio::dup2_stdout(&saved);
        }
        if let Some(saved) = self.stderr.take() {
            let _ = rustix::stdio::dup2_stderr(&saved);
        }
    }
}

fn duplicate(fd: &impl std::os::fd::AsFd) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3)
        .map_err(|error| anyhow!("cannot keep isobox's own output: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(specs: &[&str]) -> Vec<String> {
        specs.iter().map(|spec| spec.to_string()).collect()
    }

    #[test]
    fn a_relative_program_is_copied_in_unless_a_copy_in_puts_it_there() {
        let host = |path: &str| Source::Host(PathBuf::from(path));
        let plan = plan_copy_in(Vec::new(), &[], "./solution").unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].source, host("./solution"));
        assert_eq!(plan[0].inside.relative(), "solution");
        let plan = plan_copy_in(
            Vec::new(),
            &strings(&["build/a.out:solution"]),
            "./solution",
        )
        .unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].source, host("build/a.out"));
        let compiled = CopyIn::from_bytes(vec![1], BoxPath::parse_in("solution", "/box").unwrap());
        let plan = plan_copy_in(vec![compiled], &[], "./solution").unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].source, Source::Bytes(vec![1]));
        assert!(plan_copy_in(Vec::new(), &[], "/bin/true")
            .unwrap()
            .is_empty());
        assert!(plan_copy_in(Vec::new(), &[], "python3").unwrap().is_empty());
    }

    #[test]
    fn names_inside_never_climb_out() {
        for spec in ["a:../x", "a:/etc/passwd", "a:", "a:/box/../x", ":x"] {
            assert!(
                plan_copy_in(Vec::new(), &strings(&[spec]), "x").is_err(),
                "{spec}"
            );
        }
        assert!(plan_copy_in(Vec::new(), &[], "../solution").is_err());
        for spec in ["../x", "/etc/shadow", "x:", "/box"] {
            assert!(plan_copy_out(&strings(&[spec])).is_err(), "{spec}");
        }
        let plan = plan_copy_out(&strings(&["/box/out/result.txt", "a:b/c"])).unwrap();
        assert_eq!(plan[0].host, Path::new("result.txt"));
        assert_eq!(plan[0].inside.relative(), "out/result.txt");
        assert_eq!(plan[1].host, Path::new("b/c"));
    }
}
