//! Directory rules: what of the host the box sees, in isolate's syntax.
//!
//! A rule is `IN=OUT[:OPTIONS]` (bind host path OUT at IN inside the box;
//! OPTIONS separated by `:` as isolate writes them, or by `,`),
//! `IN[:OPTIONS]` (the same path on both sides), or `IN=` (remove the rule
//! for IN). Options: `rw`, `dev`, `noexec`, `maybe` (skip when OUT is
//! missing), `fs` (OUT names a filesystem type to mount fresh: `proc`,
//! `tmpfs`, `sysfs`, ...), `tmp` (a private writable tmpfs), `norec` (do not
//! bind submounts). Binds are read-only, `nosuid` and `nodev` unless the
//! options say otherwise.
//!
//! The default rules give a box `/box` (the working directory, read-write),
//! read-only `/bin`, `/lib`, `/lib64` (when present) and `/usr`, a fresh
//! minimal `/dev` with a private `/dev/shm`, its own `/proc` and a private
//! `/tmp`. Nothing else of the host is visible.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// Where the working directory appears inside the box.
pub const BOX_MOUNT_POINT: &str = "/box";

/// What a rule puts at its place inside the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirAction {
    /// Bind this host directory (or file).
    Bind(PathBuf),
    /// Mount a fresh filesystem of this type (`proc`, `tmpfs`, `sysfs`, ...).
    Filesystem(String),
    /// A private, writable, size-limited tmpfs.
    Tmp,
    /// A fresh minimal `/dev`: null, zero, full, random, urandom, the
    /// fd/stdin/stdout/stderr links and a private `/dev/shm`.
    Devices,
    /// The box's working directory, read-write.
    WorkDir,
    /// Remove the rule with the same inside path.
    Remove,
}

/// Options of a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirOptions {
    /// Writable.
    pub rw: bool,
    /// Device files work.
    pub dev: bool,
    /// Nothing can be executed from it.
    pub noexec: bool,
    /// A missing source is skipped instead of being an error.
    pub maybe: bool,
    /// Bind only the directory itself, not the mounts below it.
    pub norec: bool,
}

/// One directory rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRule {
    /// Absolute path inside the box.
    pub inside: PathBuf,
    /// What goes there.
    pub action: DirAction,
    /// How it is mounted.
    pub options: DirOptions,
}

/// A rule that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("directory rule {rule:?}: {reason}")]
pub struct DirRuleError {
    rule: String,
    reason: String,
}

fn inside_path(raw: &str) -> Option<PathBuf> {
    let path = Path::new("/").join(raw);
    let clean = path
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    (clean && path != Path::new("/")).then_some(path)
}

impl FromStr for DirRule {
    type Err = DirRuleError;

    fn from_str(rule: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| DirRuleError {
            rule: rule.to_string(),
            reason: reason.to_string(),
        };
        let (paths, option_list) = match rule.split_once(':') {
            Some((paths, options)) => (paths, Some(options)),
            None => (rule, None),
        };
        let mut options = DirOptions::default();
        let (mut fs, mut tmp) = (false, false);
        for option in option_list.into_iter().flat_map(|o| o.split([':', ','])) {
            match option {
                "rw" => options.rw = true,
                "dev" => options.dev = true,
                "noexec" => options.noexec = true,
                "maybe" => options.maybe = true,
                "norec" => options.norec = true,
                "fs" => fs = true,
                "tmp" => tmp = true,
                "" => {}
                other => return Err(error(&format!("unknown option {other:?}"))),
            }
        }
        let (inside, outside) = match paths.split_once('=') {
            Some((inside, outside)) => (inside, Some(outside)),
            None => (paths, None),
        };
        let inside = inside_path(inside)
            .ok_or_else(|| error("the inside path must be a non-empty path without '..'"))?;
        let action = match outside {
            Some("") if option_list.is_none() => DirAction::Remove,
            Some("") => return Err(error("a removal rule takes no options")),
            _ if fs && tmp => return Err(error("'fs' and 'tmp' exclude each other")),
            _ if tmp => DirAction::Tmp,
            Some(fstype) if fs => DirAction::Filesystem(fstype.to_string()),
            None if fs => return Err(error("'fs' needs a filesystem type: IN=TYPE:fs")),
            Some(outside) if outside.starts_with('/') || outside.starts_with("./") => {
                DirAction::Bind(PathBuf::from(outside))
            }
            Some(_) => return Err(error("the outside path must start with '/' or './'")),
            None => DirAction::Bind(inside.clone()),
        };
        Ok(Self {
            inside,
            action,
            options,
        })
    }
}

impl fmt::Display for DirRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inside.display())
    }
}

fn rule(inside: &str, action: DirAction, options: DirOptions) -> DirRule {
    DirRule {
        inside: PathBuf::from(inside),
        action,
        options,
    }
}

/// isolate's default rules, with a fresh `/dev` instead of the host's.
pub fn default_rules() -> Vec<DirRule> {
    let read_only = DirOptions::default();
    let maybe = DirOptions {
        maybe: true,
        ..DirOptions::default()
    };
    let writable = DirOptions {
        rw: true,
        ..DirOptions::default()
    };
    vec![
        rule(BOX_MOUNT_POINT, DirAction::WorkDir, writable),
        rule("/bin", DirAction::Bind("/bin".into()), read_only),
        rule("/dev", DirAction::Devices, read_only),
        rule("/lib", DirAction::Bind("/lib".into()), read_only),
        rule("/lib64", DirAction::Bind("/lib64".into()), maybe),
        rule("/proc", DirAction::Filesystem("proc".into()), read_only),
        rule("/tmp", DirAction::Tmp, writable),
        rule("/usr", DirAction::Bind("/usr".into()), read_only),
    ]
}

/// The rules of a box: the defaults (unless turned off; the box itself is
/// always there), then `extra` in order. A rule for a path already present
/// replaces it in place; a removal drops it. Relative outside paths
/// (`./x`) are resolved against `relative_base` (isolate resolves them
/// against the directory holding the box); without one they are refused,
/// never looked up in some temporary directory.
pub fn effective_rules(
    default_dirs: bool,
    extra: &[DirRule],
    relative_base: Option<&Path>,
) -> Result<Vec<DirRule>, DirRuleError> {
    let mut rules = if default_dirs {
        default_rules()
    } else {
        default_rules()
            .into_iter()
            .filter(|rule| rule.action == DirAction::WorkDir)
            .collect()
    };
    for extra_rule in extra {
        let mut extra_rule = extra_rule.clone();
        if let DirAction::Bind(source) = &extra_rule.action {
            if let Ok(relative) = source.strip_prefix(".") {
                let base = relative_base.ok_or_else(|| DirRuleError {
                    rule: format!("{}={}", extra_rule.inside.display(), source.display()),
                    reason: "a relative source needs a working directory given explicitly \
                             (it is resolved against that directory's parent); \
                             use an absolute path"
                        .into(),
                })?;
                extra_rule.action = DirAction::Bind(base.join(relative));
            }
        }
        let existing = rules.iter().position(|r| r.inside == extra_rule.inside);
        match (existing, &extra_rule.action) {
            (Some(index), DirAction::Remove) => {
                rules.remove(index);
            }
            (None, DirAction::Remove) => {}
            (Some(index), _) => rules[index] = extra_rule,
            (None, _) => rules.push(extra_rule),
        }
    }
    Ok(rules)
}

/// Makes the relative outside paths (`./x`) of `rules` absolute against
/// `base` (for a command line: the caller's working directory).
pub fn anchor_relative_sources(rules: &mut [DirRule], base: &Path) {
    for rule in rules {
        if let DirAction::Bind(source) = &rule.action {
            if let Ok(relative) = source.strip_prefix(".") {
                rule.action = DirAction::Bind(base.join(relative));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DirRule {
        text.parse().unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn isolate_forms_parse() {
        let bind = parse("/tmp=/srv/home:rw");
        assert_eq!(bind.inside, Path::new("/tmp"));
        assert_eq!(bind.action, DirAction::Bind("/srv/home".into()));
        assert!(bind.options.rw);

        let same = parse("/etc:noexec");
        assert_eq!(same.action, DirAction::Bind("/etc".into()));
        assert!(same.options.noexec && !same.options.rw);

        assert_eq!(parse("box").inside, Path::new("/box"));
        assert_eq!(parse("/dev/shm:tmp").action, DirAction::Tmp);
        assert_eq!(
            parse("proc=proc:fs").action,
            DirAction::Filesystem("proc".into())
        );
        assert_eq!(parse("/opt=").action, DirAction::Remove);
        let relative = parse("box=./box:rw,maybe,norec,dev");
        assert_eq!(relative.action, DirAction::Bind("./box".into()));
        assert!(relative.options.maybe && relative.options.norec && relative.options.dev);
        // isolate's own separator between options is a colon.
        let colons = parse("/x=/srv/x:noexec:maybe:rw");
        assert_eq!(colons.action, DirAction::Bind("/srv/x".into()));
        assert!(colons.options.noexec && colons.options.maybe && colons.options.rw);
        assert!("/x=/srv/x:noexec:bogus".parse::<DirRule>().is_err());
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for bad in [
            "",
            "/",
            "/a/../etc",
            "/x=relative",
            "/x=/y:bogus",
            "/x:fs",
            "/x=:rw",
            "/x:fs,tmp",
        ] {
            let err = bad.parse::<DirRule>().expect_err(bad);
            assert!(err.to_string().contains("directory rule"), "{err}");
        }
    }

    #[test]
    fn extra_rules_replace_in_place_and_remove() {
        let extra = [parse("/usr="), parse("/bin=/opt/bin"), parse("/etc")];
        let rules = effective_rules(true, &extra, Some(Path::new("/var/boxes/3"))).unwrap();
        let insides: Vec<_> = rules.iter().map(|r| r.inside.clone()).collect();
        assert!(!insides.contains(&PathBuf::from("/usr")));
        assert_eq!(insides[1], Path::new("/bin"));
        assert_eq!(rules[1].action, DirAction::Bind("/opt/bin".into()));
        assert_eq!(insides.last().unwrap(), Path::new("/etc"));
    }

    #[test]
    fn without_defaults_only_the_box_remains() {
        let rules =
            effective_rules(false, &[parse("x=./data")], Some(Path::new("/var/boxes/3"))).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].action, DirAction::WorkDir);
        assert_eq!(rules[1].action, DirAction::Bind("/var/boxes/3/data".into()));
    }

    #[test]
    fn relative_sources_without_a_base_are_refused() {
        let err = effective_rules(true, &[parse("x=./data")], None).unwrap_err();
        assert!(err.to_string().contains("relative source"), "{err}");
        let mut rules = vec![parse("x=./data"), parse("/y=/abs")];
        anchor_relative_sources(&mut rules, Path::new("/home/me"));
        assert_eq!(rules[0].action, DirAction::Bind("/home/me/data".into()));
        assert_eq!(rules[1].action, DirAction::Bind("/abs".into()));
    }
}
