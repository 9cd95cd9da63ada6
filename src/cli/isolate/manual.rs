//! isobox-isolate(1): the manual page of the isolate face, made from the
//! option table the parser uses ([`OPTIONS`]) and the descriptions of
//! `--help` ([`USAGE`]), so that no option can be missing from it.

use super::args::{FACE_SUMMARY, USAGE};
use super::getopt::OPTIONS;
use crate::cli::generate::{escape, section};

/// One entry of `--help`: the option as written there and what it does.
#[derive(Debug)]
struct Entry {
    /// `-b, --box-id=<id>`.
    synopsis: String,
    /// The text after it, continuation lines joined.
    description: String,
    /// Listed under `Commands:` rather than `Options:`.
    command: bool,
}

/// The entries of [`USAGE`]. An entry starts with a `-` and its
/// description starts at column 24, or after two spaces when the
/// synopsis is longer; a line indented to column 24 continues it.
fn entries() -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut command = false;
    for line in USAGE.lines() {
        match line {
            "Commands:" => command = true,
            "Options:" => command = false,
            _ => {}
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || !line.starts_with([' ', '-']) {
            continue;
        }
        if !trimmed.starts_with('-') {
            if let Some(last) = entries.last_mut() {
                last.description.push(' ');
                last.description.push_str(trimmed);
            }
            continue;
        }
        let at = if line.len() > 24 && line.as_bytes()[23] == b' ' {
            24
        } else {
            line.find("  ").unwrap_or(line.len())
        };
        let (synopsis, description) = line.split_at(at);
        entries.push(Entry {
            synopsis: synopsis.trim().to_string(),
            description: description.trim().to_string(),
            command,
        });
    }
    entries
}

/// Whether `synopsis` spells `--long` (not merely a longer option that
/// starts the same, as `--cg-mem` does `--cg`).
fn names(synopsis: &str, long: &str) -> bool {
    let option = format!("--{long}");
    synopsis.match_indices(&option).any(|(at, _)| {
        !synopsis[at + option.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// The page, `manual` naming the release in its title line.
pub fn manual_page(manual: &str) -> String {
    let entries = entries();
    let mut commands = String::new();
    let mut options = String::new();
    for spec in OPTIONS {
        let described: Vec<&Entry> = entries
            .iter()
            .filter(|entry| names(&entry.synopsis, spec.long))
            .collect();
        // Every option of the table is on the page; one that --help does
        // not describe still gets its name (and the tests fail).
        let fallback = Entry {
            synopsis: match spec.short {
                Some(letter) => format!("-{letter}, --{}", spec.long),
                None => format!("--{}", spec.long),
            },
            description: String::new(),
            command: false,
        };
        let described = if described.is_empty() {
            vec![&fallback]
        } else {
            described
        };
        for entry in described {
            let target = if entry.command {
                &mut commands
            } else {
                &mut options
            };
            target.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                escape(&entry.synopsis),
                escape(&entry.description)
            ));
        }
    }
    let mut page = format!(
        ".TH ISOBOX\\-ISOLATE 1 \"\" \"{}\" \"isobox manual\"\n\
         .SH NAME\n\
         isobox\\-isolate \\- the isolate\\-compatible command line of isobox\n\
         .SH SYNOPSIS\n\
         .nf\n\
         \\fBisolate\\fR [\\fIoptions\\fR] \\fB\\-\\-init\\fR\n\
         \\fBisolate\\fR [\\fIoptions\\fR] \\fB\\-\\-run\\fR \\-\\- \\fIcommand\\fR [\\fIarguments\\fR...]\n\
         \\fBisolate\\fR [\\fIoptions\\fR] \\fB\\-\\-cleanup\\fR\n\
         \\fBisobox\\fR [\\fIoptions\\fR] \\fB\\-\\-init\\fR | \\fB\\-\\-run\\fR ... | \\fB\\-\\-cleanup\\fR | ...\n\
         .fi\n",
        escape(manual)
    );
    page.push_str(&section("DESCRIPTION", FACE_SUMMARY));
    page.push_str(".SH COMMANDS\n");
    page.push_str(&commands);
    page.push_str(".SH OPTIONS\n");
    page.push_str(&options);
    page.push_str(
        ".PP\nLong options may be abbreviated while unambiguous; short options \
         cluster (\\fB\\-sv\\fR) and take attached values (\\fB\\-t1\\fR).\n",
    );
    page.push_str(&section(
        "EXIT STATUS",
        "0 the program succeeded, 1 it failed (RE, SG, TO), 2 sandbox error or bad usage.",
    ));
    page.push_str(&section(
        "FILES",
        "/etc/isobox.conf, the configuration (see isobox.conf(5)).",
    ));
    page.push_str(&section(
        "ENVIRONMENT",
        "ISOBOX_CONFIG names another configuration file (root only).",
    ));
    page.push_str(&section(
        "SEE ALSO",
        "isobox(1), isobox-run(1), isobox.conf(5), isolate(1)",
    ));
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_the_parser_accepts_is_described_on_the_page() {
        let page = manual_page("isobox test");
        let entries = entries();
        for spec in OPTIONS {
            let long = escape(&format!("--{}", spec.long));
            assert!(page.contains(&long), "{long} missing from the page");
            if let Some(letter) = spec.short {
                let both = escape(&format!("-{letter}, --{}", spec.long));
                assert!(page.contains(&both), "{both} missing from the page");
            }
            let described = entries
                .iter()
                .filter(|entry| names(&entry.synopsis, spec.long))
                .collect::<Vec<_>>();
            assert!(!described.is_empty(), "--{} has no entry", spec.long);
            for entry in described {
                assert!(
                    entry.description.len() > 5,
                    "--{} has no description: {entry:?}",
                    spec.long
                );
            }
        }
    }

    #[test]
    fn usage_lines_split_into_synopsis_and_description() {
        let entries = entries();
        let find = |synopsis: &str| {
            entries
                .iter()
                .find(|entry| entry.synopsis == synopsis)
                .unwrap_or_else(|| panic!("{synopsis} not found in {entries:#?}"))
        };
        assert!(find("-q, --quota=<blk>,<ino>")
            .description
            .contains("(both at least 1"));
        assert!(find("--run -- <cmd> ...").command);
        assert!(!find("-x, --extra-time=<time>").command);
        assert!(find("-d, --dir=<in>=<out>[:<opts>]")
            .description
            .ends_with("Options: rw, dev, noexec, maybe, fs, tmp, norec"));
        assert!(names("--cg", "cg") && !names("--cg-mem=<size>", "cg"));
    }
}
