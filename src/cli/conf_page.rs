//! isobox.conf(5): the manual page of the configuration file, one entry
//! per key of [`KEYS`]; the tests hold that table to the keys
//! [`isobox::boxes::BoxesConfig`] parses.

use super::generate::{escape, section};

/// One key of the configuration file.
struct Key {
    /// As written, `box<N>.cpus` for the per-box ones.
    name: &'static str,
    /// The value's form, such as `PATH`.
    value: &'static str,
    /// A value the parser accepts, for the tests (`N` in a name is 3).
    #[cfg_attr(not(test), allow(dead_code))]
    example: &'static str,
    /// What the key does and its default.
    text: &'static str,
}

/// Every key, in the order of the page.
const KEYS: &[Key] = &[
    Key {
        name: "box_root",
        value: "PATH",
        example: "/var/local/lib/isobox",
        text: "Directory holding box N at PATH/N (its files in PATH/N/box). It and every \
               directory above it must be writable only by root. \
               Default: /var/local/lib/isobox.",
    },
    Key {
        name: "lock_root",
        value: "PATH",
        example: "/run/isobox/locks",
        text: "Directory holding the lock file of box N at PATH/N. Default: /run/isobox/locks.",
    },
    Key {
        name: "cg_root",
        value: "auto | PATH | auto:FILE",
        example: "auto:/run/isolate/cgroup",
        text: "Where the boxes' cgroups go. auto (the default): isobox/boxes-HASH below \
               the root of the hierarchy, a subtree of this installation's own (HASH is \
               made from box_root and lock_root). A path on cgroup v2: an existing cgroup, \
               such as one systemd delegates, holding box-N directly. The directory of the \
               cgroup v1 hierarchies (/sys/fs/cgroup): the installation's subtree below it. \
               auto:FILE: the cgroup v2 path written in FILE, read at each use (isolate's \
               service writes /run/isolate/cgroup).",
    },
    Key {
        name: "first_uid",
        value: "N",
        example: "60000",
        text: "uid of box 0; box N runs as first_uid + N. Not 0. Default: 60000.",
    },
    Key {
        name: "first_gid",
        value: "N",
        example: "60000",
        text: "gid of box 0; box N runs as first_gid + N. Not 0. Default: 60000.",
    },
    Key {
        name: "num_boxes",
        value: "N",
        example: "1000",
        text: "Number of boxes: box ids are 0 to N-1. Default: 1000, or with \
               subid_user the smaller of the user's two blocks.",
    },
    Key {
        name: "subid_user",
        value: "USER",
        example: "root",
        text: "Take the box uids and gids from USER's blocks in /etc/subuid and \
               /etc/subgid instead of first_uid and first_gid (which must then not be \
               given), as isolate 2.6's default configuration does.",
    },
    Key {
        name: "restricted_init",
        value: "0 | 1",
        example: "1",
        text: "1: only root may --init a box. Default: 0 (in a set-user-ID installation \
               any caller may initialize a box, and then use only the boxes it made).",
    },
    Key {
        name: "syscall_flags",
        value: "N",
        example: "65535",
        text: "isolate's system-call restrictions, the default of --syscalls: a sum of 1 \
               keyrings, 2 vsock, 4 file locks, 8 io_uring, 16 foreign architectures. \
               Default: 65535 (all); 0 none.",
    },
    Key {
        name: "box_quota",
        value: "BLOCKS,INODES",
        example: "1048576,65536",
        text: "isobox only: the size in KiB and the inodes of the file system of a box \
               made by --init without -q. Both at least 1. Default: 1048576,65536 (1 GiB).",
    },
    Key {
        name: "box_agent",
        value: "0 | 1",
        example: "1",
        text: "isobox only: 1 lets a box's second and later --run (with --cg) go to an \
               agent process of the box that keeps its namespaces, root and cgroup warm \
               between runs and exits after 30 s idle or at --cleanup, and root's --init \
               and --cleanup go to one service process per lock_root (started by the \
               first of them; it exits after 30 s idle or on SIGTERM), which keeps a \
               spare box built ahead for the next --init --cg, whose first --run is then \
               warm; 0 runs every command in its own process, with no process left \
               between commands. Default: 1.",
    },
    Key {
        name: "box<N>.cpus",
        value: "LIST",
        example: "0-1",
        text: "CPUs box N may use, in cpuset syntax (0-3,6), with --cg.",
    },
    Key {
        name: "box<N>.mems",
        value: "LIST",
        example: "0",
        text: "Memory nodes box N may use, in cpuset syntax, with --cg.",
    },
];

/// The page, `manual` naming the release in its title line.
pub fn page(manual: &str) -> String {
    let mut page = format!(
        ".TH ISOBOX.CONF 5 \"\" \"{}\" \"isobox manual\"\n\
         .SH NAME\n\
         isobox.conf \\- configuration of isobox's isolate\\-compatible face\n",
        escape(manual)
    );
    page.push_str(&section(
        "DESCRIPTION",
        "isobox(1) reads /etc/isobox.conf, or as root the file named by ISOBOX_CONFIG, \
         when it acts on numbered boxes (isobox-isolate(1)); a missing file means the \
         defaults. The syntax is isolate's: one KEY = VALUE a line; blank lines and lines \
         starting with # are ignored. A comment must be a line of its own: isolate would \
         take a # after a value as part of the value, so isobox refuses such a line. A \
         wrong line is an error naming the file and the line. isolate's own configuration \
         files are accepted as they are.",
    ));
    page.push_str(".SH KEYS\n");
    for key in KEYS {
        page.push_str(&format!(
            ".TP\n\\fB{}\\fR = \\fI{}\\fR\n{}\n",
            escape(key.name),
            escape(key.value),
            escape(key.text)
        ));
    }
    page.push_str(&section(
        "EXAMPLE",
        "The defaults, written out:\n  box_root = /var/local/lib/isobox\n  \
         lock_root = /run/isobox/locks\n  first_uid = 60000\n  first_gid = 60000\n  \
         num_boxes = 1000\n  syscall_flags = 65535\n  restricted_init = 0\n  \
         box_quota = 1048576,65536",
    ));
    page.push_str(&section("FILES", "/etc/isobox.conf"));
    page.push_str(&section("SEE ALSO", "isobox(1), isobox-isolate(1)"));
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use isobox::boxes::BoxesConfig;
    use std::path::Path;

    /// The keys the parser's `set` matches on, read from its source: the
    /// string literals before `=>` in that function (the per-box ones as
    /// `box<N>.item`), so that a key added there and not here fails.
    fn keys_in_the_parser() -> Vec<String> {
        let source = include_str!("../boxes/config.rs");
        let start = source
            .find("fn set(&mut self, key: &str, value: &str)")
            .expect("the parser's set function");
        let body = &source[start..];
        let body = &body[..body.find("\n    }\n").expect("the end of set")];
        let mut keys = Vec::new();
        let mut per_box = false;
        for line in body.lines() {
            let line = line.trim();
            if line.starts_with("let per_box") {
                per_box = true;
            }
            let Some(rest) = line.strip_prefix('"') else {
                continue;
            };
            let Some((key, after)) = rest.split_once('"') else {
                continue;
            };
            // Values matched inside an arm (restricted_init's "0" and "1")
            // are not keys; every key is a lowercase word.
            let word = key.starts_with(|c: char| c.is_ascii_lowercase())
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if word && after.trim_start().starts_with("=>") {
                keys.push(if per_box {
                    format!("box<N>.{key}")
                } else {
                    key.to_string()
                });
            }
        }
        keys
    }

    #[test]
    fn every_key_the_parser_knows_is_on_the_page() {
        let known = keys_in_the_parser();
        assert!(known.len() >= 10, "too few keys found: {known:?}");
        let page = page("isobox test");
        for key in &known {
            assert!(
                KEYS.iter().any(|documented| documented.name == key),
                "{key} is parsed but not documented"
            );
            assert!(page.contains(&escape(key)), "{key} missing from the page");
        }
        for documented in KEYS {
            assert!(
                known.iter().any(|key| key == documented.name),
                "{} is documented but not parsed",
                documented.name
            );
        }
    }

    #[test]
    fn every_documented_example_parses() {
        for key in KEYS {
            // subid_user needs the other ids left out and a block of ids.
            if key.name == "subid_user" {
                continue;
            }
            let line = format!("{} = {}\n", key.name.replace("<N>", "3"), key.example);
            BoxesConfig::parse(&line, Path::new("isobox.conf"))
                .unwrap_or_else(|error| panic!("{line:?}: {error}"));
        }
        let wrong = BoxesConfig::parse("box_rooot = /x\n", Path::new("isobox.conf"));
        assert!(wrong.is_err());
    }
}
