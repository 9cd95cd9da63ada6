//! Language presets of `isobox run --lang`: how to compile and run a
//! source file of a language, and what the toolchain needs to see.
//!
//! The presets are data (`presets/languages.toml`, built in, or the file
//! of `--presets`): a host whose JDK lives elsewhere is served by a file,
//! not by a new isobox.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use isobox::confine::BoxPath;
use isobox::dirs::DirRule;
use serde::Deserialize;

use super::args::parse_env_rule;
use super::files::inside;
use crate::cli::env::EnvRule;
use crate::cli::units::{parse_size, parse_time};

/// The built-in presets.
const BUILT_IN: &str = include_str!("../../../presets/languages.toml");

/// One preset as the file spells it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetText {
    name: String,
    #[serde(default)]
    requires: Vec<PathBuf>,
    source: String,
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    compile: Option<CompileText>,
    run: RunText,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompileText {
    command: Vec<String>,
    #[serde(default)]
    output: Vec<String>,
    time: Option<String>,
    wall_time: Option<String>,
    mem: Option<String>,
    processes: Option<u64>,
    fsize: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunText {
    command: Vec<String>,
    processes: Option<u64>,
    mem: Option<String>,
}

/// A language preset, checked.
#[derive(Debug)]
pub(super) struct Preset {
    /// The language, for messages.
    pub(super) name: String,
    /// Host paths the toolchain needs.
    pub(super) requires: Vec<PathBuf>,
    /// The source's name inside the box.
    pub(super) source: BoxPath,
    /// Directory rules of both boxes.
    pub(super) dirs: Vec<DirRule>,
    /// Environment rules of both boxes.
    pub(super) env: Vec<EnvRule>,
    /// The compile step, if the language has one.
    pub(super) compile: Option<Compile>,
    /// The argv that runs the program.
    pub(super) run_command: Vec<String>,
    /// Default process limit of the run.
    pub(super) run_processes: Option<u64>,
    /// Default memory limit of the run.
    pub(super) run_mem: Option<u64>,
}

/// A compile step, checked.
#[derive(Debug)]
pub(super) struct Compile {
    /// The compiler's argv.
    pub(super) command: Vec<String>,
    /// Files the run box gets.
    pub(super) output: Vec<BoxPath>,
    /// CPU time limit.
    pub(super) time: Option<Duration>,
    /// Wall-clock limit.
    pub(super) wall_time: Option<Duration>,
    /// Memory limit.
    pub(super) mem: Option<u64>,
    /// Process limit.
    pub(super) processes: Option<u64>,
    /// Largest file the compiler may write.
    pub(super) fsize: Option<u64>,
}

/// The presets of `file`, or the built-in ones.
pub(super) fn load(file: Option<&Path>) -> Result<BTreeMap<String, Preset>> {
    let (text, origin) = match file {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|error| anyhow!("cannot read --presets {}: {error}", path.display()))?,
            path.display().to_string(),
        ),
        None => (BUILT_IN.to_string(), "the built-in presets".to_string()),
    };
    parse(&text).map_err(|error| anyhow!("{origin}: {error}"))
}

/// Parses and checks a presets file.
fn parse(text: &str) -> Result<BTreeMap<String, Preset>> {
    let raw: BTreeMap<String, PresetText> = toml::from_str(text).map_err(|error| {
        anyhow!(
            "not a valid presets file: {}",
            crate::cli::one_line(&error.to_string())
        )
    })?;
    raw.into_iter()
        .map(|(key, preset)| {
            let checked = check(preset).map_err(|error| anyhow!("preset {key}: {error}"))?;
            Ok((key, checked))
        })
        .collect()
}

fn check(preset: PresetText) -> Result<Preset> {
    let time = |value: Option<String>, what: &str| {
        value
            .map(|text| parse_time(&text).map_err(|why| anyhow!("{what}: {why}")))
            .transpose()
    };
    let size = |value: Option<String>, what: &str| {
        value
            .map(|text| parse_size(&text).map_err(|why| anyhow!("{what}: {why}")))
            .transpose()
    };
    if preset.run.command.is_empty() {
        bail!("run.command is empty");
    }
    let compile = match preset.compile {
        None => None,
        Some(compile) => {
            if compile.command.is_empty() {
                bail!("compile.command is empty");
            }
            Some(Compile {
                command: compile.command,
                output: compile
                    .output
                    .iter()
                    .map(|name| inside(name, "compile.output"))
                    .collect::<Result<_>>()?,
                time: time(compile.time, "compile.time")?,
                wall_time: time(compile.wall_time, "compile.wall_time")?,
                mem: size(compile.mem, "compile.mem")?,
                processes: compile.processes,
                fsize: size(compile.fsize, "compile.fsize")?,
            })
        }
    };
    Ok(Preset {
        name: preset.name,
        requires: preset.requires,
        source: inside(&preset.source, "source")?,
        dirs: preset
            .dirs
            .iter()
            .map(|rule| {
                rule.parse::<DirRule>()
                    .map_err(|error| anyhow!("dirs {rule}: {error}"))
            })
            .collect::<Result<_>>()?,
        env: preset
            .env
            .iter()
            .map(|rule| parse_env_rule(rule).map_err(|why| anyhow!("env {rule}: {why}")))
            .collect::<Result<_>>()?,
        compile,
        run_command: preset.run.command,
        run_processes: preset.run.processes,
        run_mem: size(preset.run.mem, "run.mem")?,
    })
}

/// The preset `key` of `presets`, usable on this host: every path it
/// requires exists.
pub(super) fn choose(mut presets: BTreeMap<String, Preset>, key: &str) -> Result<Preset> {
    let known = presets.keys().cloned().collect::<Vec<_>>().join(", ");
    let Some(preset) = presets.remove(key) else {
        bail!("no language preset {key:?}; the presets are {known}");
    };
    if let Some(missing) = preset.requires.iter().find(|path| !path.exists()) {
        bail!(
            "the {} preset needs {}, which this host does not have; install the toolchain \
             or give a presets file with --presets",
            preset.name,
            missing.display()
        );
    }
    Ok(preset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_presets_are_all_valid() {
        let presets = load(None).unwrap();
        for key in ["c", "cpp", "python", "java", "rust", "go", "javascript"] {
            let preset = &presets[key];
            assert!(!preset.requires.is_empty(), "{key}");
            if let Some(compile) = &preset.compile {
                assert!(!compile.output.is_empty(), "{key}");
                assert!(compile.time.is_some() && compile.mem.is_some(), "{key}");
            }
        }
    }

    #[test]
    fn bad_presets_are_refused_with_their_name() {
        for (text, why) in [
            ("[x]\nname='X'\nsource='a'\nrun.command=[]\n", "preset x: run.command"),
            (
                "[x]\nname='X'\nsource='../a'\nrun.command=['a']\n",
                "preset x: source",
            ),
            (
                "[x]\nname='X'\nsource='a'\ndirs=['/a:bogus']\nrun.command=['a']\n",
                "preset x: dirs",
            ),
            (
                "[x]\nname='X'\nsource='a'\ncompile.command=['cc']\ncompile.mem='1Q'\nrun.command=['a']\n",
                "compile.mem",
            ),
            ("[x]\nname='X'\nsource='a'\nbogus=1\nrun.command=['a']\n", "bogus"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn a_missing_toolchain_is_named() {
        let presets =
            parse("[x]\nname='X'\nrequires=['/nonexistent/cc']\nsource='a'\nrun.command=['a']\n")
                .unwrap();
        let error = choose(presets, "x").unwrap_err().to_string();
        assert!(error.contains("/nonexistent/cc"), "{error}");
        let error = choose(load(None).unwrap(), "cobol")
            .unwrap_err()
            .to_string();
        assert!(error.contains("cpp"), "{error}");
    }
}
