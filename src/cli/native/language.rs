//! `isobox run --lang LANG SOURCE`: the source compiled in a box of its
//! own, under the preset's limits, and the run box prepared with what the
//! compiler made (or the source itself, for an interpreted language).
//!
//! The compile box is as hostile as the run box (a source file can make a
//! compiler write links and FIFOs, or fill the disk): its output is taken
//! out through [`isobox::confine`], regular files only, size-capped.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use isobox::{IsolateConfig, ProcessExecutor, Stdin};

use super::args::RunArgs;
use super::files::{self, CopyIn};
use super::presets::{self, Compile, Preset};
use super::report::{report, summary_line};
use super::{create_box_dir, default_wall_time};
use crate::cli::env::{self, WhenAbsent};
use crate::cli::print_error;

/// Largest file a compile step may hand to the run box.
const MAX_COMPILED: u64 = 256 << 20;

/// Compiles when the preset says so and turns `args` into the run of the
/// result: the preset's command before the user's arguments, its
/// directory and environment rules before the user's (which therefore
/// win), its process and memory limits where the user gave none.
///
/// Returns the files the run box needs, or the exit status when the
/// compilation failed (already reported).
pub(super) fn prepare(
    args: &mut RunArgs,
    lang: &str,
) -> Result<std::result::Result<Vec<CopyIn>, u8>> {
    let preset = presets::choose(presets::load(args.presets.as_deref())?, lang)?;
    let Some(source) = args.source.clone() else {
        bail!("--lang {lang} needs a source file: isobox run --lang {lang} SOURCE");
    };
    let copies = match &preset.compile {
        None => vec![CopyIn::from_host(source, preset.source.clone())],
        Some(compile) => match compile_in_box(&preset, compile, &source, args)? {
            Ok(copies) => copies,
            Err(code) => return Ok(Err(code)),
        },
    };
    let mut command = preset.run_command.clone();
    command.append(&mut args.command);
    args.command = command;
    args.dir.splice(0..0, preset.dirs.iter().cloned());
    args.env.splice(0..0, preset.env.iter().cloned());
    args.processes = args.processes.or(preset.run_processes);
    args.mem = args.mem.or(preset.run_mem);
    Ok(Ok(copies))
}

/// Runs the compile step in a throwaway box holding only the source and
/// takes its output files.
fn compile_in_box(
    preset: &Preset,
    compile: &Compile,
    source: &Path,
    args: &RunArgs,
) -> Result<std::result::Result<Vec<CopyIn>, u8>> {
    let box_dir = create_box_dir()?;
    files::copy_in(
        box_dir.path(),
        &[CopyIn::from_host(
            source.to_path_buf(),
            preset.source.clone(),
        )],
    )?;
    let mut environment = isobox::config::default_environment();
    // A preset's VAR without a value would pass isobox's own: nothing of
    // the caller's environment reaches a compiler.
    env::apply(&mut environment, &preset.env, WhenAbsent::Keep, |_| {
        Ok::<_, anyhow::Error>(None)
    })?;
    let config = IsolateConfig {
        workdir: box_dir.path().to_path_buf(),
        strict_mode: args.strict,
        time_limit: compile.time,
        wall_time_limit: compile
            .wall_time
            .or_else(|| default_wall_time(compile.time, None)),
        memory_limit: compile.mem,
        process_limit: compile.processes,
        file_size_limit: compile.fsize,
        output_limit: Some(isobox::config::DEFAULT_OUTPUT_LIMIT),
        environment,
        dir_rules: preset.dirs.clone(),
        default_dirs: true,
        uid: None,
        gid: None,
        pass_through_output: false,
        ..IsolateConfig::default()
    };
    let mut executor = ProcessExecutor::new(config).map_err(|error| anyhow!("{error}"))?;
    super::check_isolation(
        &executor,
        args.unisolated,
        compile.mem.is_some(),
        "compile box",
    )?;
    let outcome = executor.execute_with_stdin(&compile.command, Stdin::Null);
    let cleaned = executor.cleanup();
    drop(executor);
    let result = outcome.map_err(|error| anyhow!("compiling {}: {error}", source.display()))?;
    cleaned.map_err(|error| anyhow!("cleaning up after compiling: {error}"))?;
    if let Some(errno) = result.exec_errno {
        bail!(
            "cannot execute the {} compiler {}: {}",
            preset.name,
            compile.command[0],
            isobox::sys::strerror(errno)
        );
    }
    if isobox::sys::interruption().is_some() {
        // Stopped by the caller: the compile step's result is the outcome
        // (as the run's would be), and no run follows.
        report(&result, args.json)?;
        box_dir.remove().map_err(|error| anyhow!(error))?;
        return Ok(Err(super::report::exit_status(result.status)));
    }
    if result.status != isobox::ExecutionStatus::Success {
        if args.json {
            report(&result, true)?;
        } else {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(result.stdout.as_bytes());
            let _ = stderr.write_all(result.stderr.as_bytes());
            let _ = writeln!(stderr, "compile: {}", summary_line(&result));
        }
        print_error(&format!(
            "compiling {} as {} failed",
            source.display(),
            preset.name
        ));
        box_dir.remove().map_err(|error| anyhow!(error))?;
        return Ok(Err(1));
    }
    // Warnings are worth seeing; they never mix with the program's stdout.
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(result.stdout.as_bytes());
    let _ = stderr.write_all(result.stderr.as_bytes());
    drop(stderr);
    let copies = files::take_out(box_dir.path(), &compile.output, MAX_COMPILED)?;
    box_dir.remove().map_err(|error| anyhow!(error))?;
    Ok(Ok(copies))
}
