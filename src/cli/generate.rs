//! `isobox generate`: the manual pages and shell completions a package
//! installs, made from the definitions the parsers themselves use, so that
//! they cannot disagree with the program.
//!
//! A subcommand rather than a build step: the clap definitions live in the
//! binary (the native face and `serve`), which a build script cannot call
//! without keeping a second copy of them; and a packager can run it on
//! whatever binary it is about to ship.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use clap_complete::Shell;

use super::{print_error, EXIT_TROUBLE};

/// `isobox generate` arguments.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: What,
}

/// What `isobox generate` writes.
#[derive(Debug, Subcommand)]
enum What {
    /// Write the manual pages into DIR: isobox(1), one page per subcommand
    /// (isobox-run(1), isobox-serve(1)...), isobox-isolate(1) and
    /// isobox.conf(5).
    Man {
        /// Directory to write into (created when missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the completion script for SHELL on standard output.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_name = "SHELL")]
        shell: Shell,
    },
}

/// Carries out `isobox generate`.
pub fn main(args: GenerateArgs) -> ExitCode {
    let done = match args.what {
        What::Man { dir } => write_pages(&dir).map(|pages| {
            for page in pages {
                crate::cli::print_out(format_args!("{}\n", page.display()));
            }
        }),
        What::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut full_command(), "isobox", &mut script);
            std::io::stdout()
                .lock()
                .write_all(&script)
                .context("writing the completion script")
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&format!("{error:#}"));
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

/// The whole native command line as one clap tree: the native parser's
/// subcommands and `serve`, which parses its own arguments at run time
/// but belongs in the pages and completions like the others.
pub fn full_command() -> clap::Command {
    let command = super::native::command();
    #[cfg(feature = "serve")]
    let command = {
        use clap::CommandFactory;
        command.subcommand(
            crate::server::ServeArgs::command()
                .name("serve")
                .bin_name("isobox serve"),
        )
    };
    command
}

/// Writes every page into `dir` and returns their paths.
pub fn write_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut pages = Vec::new();
    for (name, text) in pages_text()? {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        pages.push(path);
    }
    Ok(pages)
}

/// Every page as (file name, roff text).
pub fn pages_text() -> Result<Vec<(String, String)>> {
    let mut root = full_command().disable_help_subcommand(true);
    root.build();
    let manual = format!("isobox {}", super::VERSION);
    let render = |command: clap::Command, extra: &str| -> Result<(String, String)> {
        let man = clap_mangen::Man::new(command)
            .source(manual.clone())
            .manual("isobox manual");
        let mut text = Vec::new();
        man.render(&mut text).context("rendering a manual page")?;
        let mut text = String::from_utf8(text).context("a manual page is not UTF-8")?;
        text.push_str(extra);
        Ok((man.get_filename(), text))
    };
    let mut pages = Vec::new();
    for sub in root.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        pages.push(render(sub.clone(), &see_also(&["isobox(1)"]))?);
    }
    let isolate_face = section(
        "THE ISOLATE FACE",
        &format!(
            "{}\n\n{}",
            super::isolate::FACE_SUMMARY,
            "isobox-isolate(1) describes every option of that face."
        ),
    );
    let mut others: Vec<String> = pages.iter().map(|(file, _)| page_reference(file)).collect();
    others.extend(["isobox-isolate(1)".into(), "isobox.conf(5)".into()]);
    let others: Vec<&str> = others.iter().map(String::as_str).collect();
    pages.insert(
        0,
        render(root, &format!("{isolate_face}{}", see_also(&others)))?,
    );
    pages.push((
        "isobox-isolate.1".into(),
        super::isolate::manual_page(&manual),
    ));
    pages.push(("isobox.conf.5".into(), super::conf_page::page(&manual)));
    Ok(pages)
}

/// `isobox-run.1` as a reference: `isobox-run(1)`.
fn page_reference(file: &str) -> String {
    match file.rsplit_once('.') {
        Some((name, section)) => format!("{name}({section})"),
        None => file.to_string(),
    }
}

/// A SEE ALSO section naming `pages`.
fn see_also(pages: &[&str]) -> String {
    section("SEE ALSO", &pages.join(", "))
}

/// A section `title` holding `text`: paragraphs split at blank lines,
/// lines indented by two spaces or more kept as they are (examples,
/// command lines).
pub fn section(title: &str, text: &str) -> String {
    let mut roff = format!(".SH \"{title}\"\n");
    for paragraph in text.split("\n\n") {
        roff.push_str(".PP\n");
        let lines: Vec<&str> = paragraph.lines().collect();
        if lines.iter().skip(1).any(|line| line.starts_with("  ")) {
            roff.push_str(".nf\n");
            for line in lines {
                roff.push_str(&escape(line));
                roff.push('\n');
            }
            roff.push_str(".fi\n");
        } else {
            roff.push_str(&escape(&lines.join(" ")));
            roff.push('\n');
        }
    }
    roff
}

/// `text` as roff input text: backslashes and hyphens escaped (a plain
/// `-` may be typeset as a hyphen, which cannot be copied back into a
/// shell), and a leading `.` or `'` kept from being read as a request.
pub fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_a_page_and_every_page_a_title() {
        let pages = pages_text().unwrap();
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        for wanted in [
            "isobox.1",
            "isobox-run.1",
            "isobox-check-environment.1",
            "isobox-generate.1",
            "isobox-isolate.1",
            "isobox.conf.5",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        #[cfg(feature = "serve")]
        assert!(names.contains(&"isobox-serve.1"), "{names:?}");
        for (name, text) in &pages {
            assert!(text.starts_with(".ie") || text.starts_with(".TH"), "{name}");
            assert!(text.contains(".SH NAME"), "{name}");
        }
    }

    #[test]
    fn roff_escapes_what_roff_would_misread() {
        assert_eq!(escape("--cg-mem"), "\\-\\-cg\\-mem");
        assert_eq!(escape(".hidden"), "\\&.hidden");
        assert_eq!(escape("a\\b"), "a\\eb");
    }
}
