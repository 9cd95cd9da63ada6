//! The configuration file in isolate's syntax ([`BoxesConfig`]): where the
//! boxes live, who their programs run as, where their cgroups go
//! ([`CgRoot`]) and how large their file systems are ([`Quota`]).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::cgroup::{self, CgroupController, CgroupVersion, Placement};

use super::{BoxError, Sandbox};

/// Where the configuration file is unless [`CONFIG_ENV`] names another.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/isobox.conf";

/// The environment variable naming another configuration file.
pub const CONFIG_ENV: &str = "ISOBOX_CONFIG";

/// Default directory holding the boxes.
pub const DEFAULT_BOX_ROOT: &str = "/var/local/lib/isobox";

/// Default directory holding the lock files of the boxes.
pub const DEFAULT_LOCK_ROOT: &str = "/run/isobox/locks";

/// Where `subid_user`'s block of uids is looked up.
pub const SUBUID_PATH: &str = "/etc/subuid";

/// Where `subid_user`'s block of gids is looked up.
pub const SUBGID_PATH: &str = "/etc/subgid";

/// Default number of boxes (ids `0..num_boxes`).
pub const DEFAULT_NUM_BOXES: u32 = 1000;

/// The file system every box gets when `--init` is not given `-q`: 1 GiB
/// and 65536 inodes. Whatever a program leaves in its box, the keeper's
/// work on it (handing it over before a run, back after it, removing it)
/// is bounded by these numbers.
pub const DEFAULT_QUOTA: Quota = Quota {
    blocks: 1 << 20,
    inodes: 65536,
};

/// Settings of one box from the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerBoxConfig {
    /// CPUs the box may use (cpuset syntax).
    pub cpus: Option<String>,
    /// Memory nodes the box may use (cpuset syntax).
    pub mems: Option<String>,
}

/// The configuration file: where boxes live and who they run as.
///
/// The syntax is isolate's: `key = value` lines, blank lines and lines
/// starting with `#` ignored; a value never holds a comment (isolate would
/// take it as part of the value, so isobox refuses it). Keys: `box_root`,
/// `lock_root`, `cg_root` (see [`CgRoot`]), `first_uid`, `first_gid`,
/// `num_boxes`, or instead of the ids `subid_user` (the uids and gids are
/// that user's blocks in `/etc/subuid` and `/etc/subgid`, and `num_boxes`
/// defaults to the smaller block),
/// `restricted_init` (0 or 1), `syscall_flags` (isolate's system-call
/// restrictions, a number as in isolate: 65535 all, 0 none), and per box
/// `box<N>.cpus` and `box<N>.mems`; isobox adds `box_quota = BLOCKS,INODES`,
/// the file system of a box made without `-q`, and `box_agent` (0 or 1),
/// whether a box's repeated `--run`s go to an agent holding a warm box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxesConfig {
    /// Directory holding box N at `<box_root>/<N>`.
    pub box_root: PathBuf,
    /// Directory holding the lock file of box N at `<lock_root>/<N>`.
    pub lock_root: PathBuf,
    /// Where the boxes' cgroups live.
    pub cg_root: CgRoot,
    /// uid of box 0.
    pub first_uid: u32,
    /// gid of box 0.
    pub first_gid: u32,
    /// Number of boxes: ids are `0..num_boxes`.
    pub num_boxes: u32,
    /// Only root may initialize boxes.
    pub restricted_init: bool,
    /// isolate's `syscall_flags`, the default of `--syscalls`.
    pub syscall_flags: u32,
    /// Settings of single boxes, by id.
    pub per_box: BTreeMap<u32, PerBoxConfig>,
    /// The file system of a box initialized without `-q` (key
    /// `box_quota = BLOCKS,INODES`, an isobox extension).
    pub default_quota: Quota,
    /// A box's second and later `--run`s go to its agent, which keeps a
    /// warm box, and root's `--init` and `--cleanup` to the installation's
    /// service (key `box_agent`, an isobox extension; default 1).
    pub box_agent: bool,
}

impl Default for BoxesConfig {
    fn default() -> Self {
        Self {
            box_root: PathBuf::from(DEFAULT_BOX_ROOT),
            lock_root: PathBuf::from(DEFAULT_LOCK_ROOT),
            cg_root: CgRoot::Installation,
            first_uid: crate::config::DEFAULT_BOX_ID_BASE,
            first_gid: crate::config::DEFAULT_BOX_ID_BASE,
            num_boxes: DEFAULT_NUM_BOXES,
            restricted_init: false,
            syscall_flags: crate::config::syscall_flags::ALL,
            per_box: BTreeMap::new(),
            default_quota: DEFAULT_QUOTA,
            box_agent: true,
        }
    }
}

/// The configuration file to use: [`CONFIG_ENV`] when set and not empty,
/// [`DEFAULT_CONFIG_PATH`] otherwise.
pub fn config_path(env_value: Option<&std::ffi::OsStr>) -> PathBuf {
    match env_value {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

impl BoxesConfig {
    /// Reads the configuration file at `path`; a missing file means the
    /// built-in defaults.
    pub fn load(path: &Path) -> Result<Self, BoxError> {
        match fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| BoxError::ConfigInvalid {
                    path: path.to_path_buf(),
                    reason: "the file is not valid UTF-8".into(),
                })?;
                Self::parse(&text, path)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(BoxError::ConfigRead {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the text of a configuration file; `path` only names it in
    /// errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, BoxError> {
        Self::parse_with_subids(text, path, Path::new(SUBUID_PATH), Path::new(SUBGID_PATH))
    }

    /// [`parse`](Self::parse), with `subid_user` looked up in `subuid` and
    /// `subgid` instead of the system's files.
    pub fn parse_with_subids(
        text: &str,
        path: &Path,
        subuid: &Path,
        subgid: &Path,
    ) -> Result<Self, BoxError> {
        let mut config = Self::default();
        let mut given = Given::default();
        for (index, raw) in text.lines().enumerate() {
            let line_error = |reason: String| BoxError::ConfigLine {
                path: path.to_path_buf(),
                line: index + 1,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(line_error(format!(
                    "expected 'key = value', found {line:?}"
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(line_error(format!("{key:?} is not a configuration key")));
            }
            // isolate keeps everything after `=` as the value, so a
            // trailing "# comment" would become part of a path or make a
            // number invalid there; refusing it here says why.
            if let Some(at) = value.find('#') {
                if value[..at].ends_with(char::is_whitespace) {
                    return Err(line_error(format!(
                        "the value of {key} holds a comment ({:?}); comments must be on lines of their own",
                        &value[at..]
                    )));
                }
            }
            given.note(key);
            config.set(key, value).map_err(line_error)?;
            if key == "subid_user" {
                given.subid_user = Some(value.to_string());
            }
        }
        let invalid = |reason: String| BoxError::ConfigInvalid {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(user) = &given.subid_user {
            if given.first_ids {
                return Err(invalid(
                    "subid_user and first_uid/first_gid must not both be given".into(),
                ));
            }
            config
                .take_subids(user, given.num_boxes, subuid, subgid)
                .map_err(invalid)?;
        }
        config.check().map_err(invalid)?;
        Ok(config)
    }

    /// isolate's `subid_user`: the box uids and gids are `user`'s blocks
    /// in the subordinate-id files, and there are as many boxes as the
    /// smaller block holds unless `num_boxes` was given (then both blocks
    /// must hold that many).
    fn take_subids(
        &mut self,
        user: &str,
        num_boxes_given: bool,
        subuid: &Path,
        subgid: &Path,
    ) -> Result<(), String> {
        let (first_uid, uids) = find_subid(subuid, user)?;
        let (first_gid, gids) = find_subid(subgid, user)?;
        self.first_uid = first_uid;
        self.first_gid = first_gid;
        if !num_boxes_given {
            self.num_boxes = uids.min(gids);
        } else if let Some((file, count)) = [(subuid, uids), (subgid, gids)]
            .into_iter()
            .find(|(_, count)| *count < self.num_boxes)
        {
            return Err(format!(
                "num_boxes = {}, but the block of {user} in {} holds only {count} ids",
                self.num_boxes,
                file.display()
            ));
        }
        Ok(())
    }

    /// Applies one `key = value` entry.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let absolute = |value: &str| {
            if value.starts_with('/') {
                Ok(PathBuf::from(value))
            } else {
                Err(format!("{key} must be an absolute path, not {value:?}"))
            }
        };
        match key {
            "box_root" => self.box_root = absolute(value)?,
            "lock_root" => self.lock_root = absolute(value)?,
            "cg_root" => {
                self.cg_root = match value.strip_prefix("auto:") {
                    _ if value == "auto" => CgRoot::Installation,
                    Some(file) => CgRoot::Auto(absolute(file)?),
                    None => CgRoot::Path(absolute(value)?),
                }
            }
            "box_quota" => {
                let (blocks, inodes) = value
                    .split_once(',')
                    .ok_or_else(|| format!("box_quota must be BLOCKS,INODES, not {value:?}"))?;
                let quota = Quota {
                    blocks: number(key, blocks.trim())?.into(),
                    inodes: number(key, inodes.trim())?.into(),
                };
                quota.check().map_err(|err| err.to_string())?;
                self.default_quota = quota;
            }
            "subid_user" => {
                if value.is_empty() {
                    return Err("subid_user must name a user".into());
                }
            }
            "first_uid" => self.first_uid = number(key, value)?,
            "first_gid" => self.first_gid = number(key, value)?,
            "num_boxes" => self.num_boxes = number(key, value)?,
            "box_agent" => {
                self.box_agent = match value {
                    "0" => false,
                    "1" => true,
                    _ => return Err(format!("box_agent must be 0 or 1, not {value:?}")),
                }
            }
            "restricted_init" => {
                self.restricted_init = match value {
                    "0" => false,
                    "1" => true,
                    _ => return Err(format!("restricted_init must be 0 or 1, not {value:?}")),
                }
            }
            // isolate reads it as a C int; a negative one is all bits.
            "syscall_flags" => {
                self.syscall_flags = value
                    .parse::<i32>()
                    .map_err(|_| format!("syscall_flags must be a whole number, not {value:?}"))?
                    as u32
            }
            _ => {
                let Some((section, item)) = key.split_once('.') else {
                    return Err(format!("unknown configuration item {key:?}"));
                };
                let id = section
                    .strip_prefix("box")
                    .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        format!("unknown configuration section {section:?} (expected box<N>)")
                    })?;
                let id: u32 = number(section, id)?;
                let per_box = self.per_box.entry(id).or_default();
                match item {
                    "cpus" => per_box.cpus = Some(value.to_string()),
                    "mems" => per_box.mems = Some(value.to_string()),
                    _ => return Err(format!("unknown per-box configuration item {item:?}")),
                }
            }
        }
        Ok(())
    }

    /// Checks the whole configuration.
    fn check(&self) -> Result<(), String> {
        if self.first_uid == 0 || self.first_gid == 0 {
            return Err("first_uid and first_gid must not be 0 (box 0 would run as root)".into());
        }
        if self.num_boxes == 0 {
            return Err("num_boxes must be at least 1".into());
        }
        if self.first_uid.checked_add(self.num_boxes).is_none()
            || self.first_gid.checked_add(self.num_boxes).is_none()
        {
            return Err("first_uid/first_gid + num_boxes is beyond the largest id".into());
        }
        Ok(())
    }

    /// Box `id`, when it is below `num_boxes`.
    pub fn sandbox(&self, id: u64) -> Result<Sandbox, BoxError> {
        let out_of_range = || BoxError::OutOfRange {
            id,
            max: self.num_boxes.saturating_sub(1),
        };
        let index = u32::try_from(id).map_err(|_| out_of_range())?;
        if index >= self.num_boxes {
            return Err(out_of_range());
        }
        let dir = self.box_root.join(index.to_string());
        let per_box = self.per_box.get(&index).cloned().unwrap_or_default();
        Ok(Sandbox {
            id: index,
            box_dir: dir.join("box"),
            dir,
            lock_path: self.lock_root.join(index.to_string()),
            lock_root: self.lock_root.clone(),
            uid: self.first_uid + index,
            gid: self.first_gid + index,
            cg_root: self.cg_root.clone(),
            installation: self.installation_name(),
            per_box,
            default_quota: self.default_quota,
        })
    }
}

impl BoxesConfig {
    /// The name of this installation's own cgroup below `isobox`:
    /// `boxes-` and a hash of `box_root` and `lock_root`. Two
    /// configurations that differ in either can run the same box number
    /// at once, so they get different names; the hash is FNV-1a, fixed
    /// here so that the name never changes with the compiler.
    pub fn installation_name(&self) -> String {
        use std::os::unix::ffi::OsStrExt;
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let roots = [self.box_root.as_os_str(), self.lock_root.as_os_str()];
        for byte in roots.join(std::ffi::OsStr::new("\0")).as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("boxes-{hash:016x}")
    }

    /// Where this installation's box cgroups go (see [`CgRoot`]).
    pub fn cgroup_placement(&self) -> Result<Placement, BoxError> {
        self.cg_root.placement(&self.installation_name())
    }
}

/// `cg_root` of the configuration file: the cgroup under which the boxes'
/// cgroups `box-<N>` live.
///
/// Every installation gets a subtree of its own, so that one
/// installation's `--cleanup` of box 7 never touches another's box 7:
///
/// - not set, or `auto` ([`Installation`](Self::Installation)):
///   `isobox/boxes-<hash>` below the root of the hierarchy (of every v1
///   hierarchy), named by [`BoxesConfig::installation_name`];
/// - a path on cgroup v2 ([`Path`](Self::Path)): isolate 2.x's meaning,
///   an existing cgroup (such as the subtree systemd delegates to
///   isolate's service) holding `box-<N>` directly; isobox writes only in
///   it and below. Two installations given the same path share it, as
///   they would under isolate;
/// - a path holding cgroup v1 hierarchies: isolate 1.x's meaning, the
///   root of the cgroup file system (`/sys/fs/cgroup`); the boxes then go
///   in the installation's own subtree below it, as when not set, because
///   a v1 cgroup is one directory per hierarchy, not one path;
/// - `auto:FILE` ([`Auto`](Self::Auto)): isolate 2.x's service writes the
///   path of its delegated cgroup into FILE; it is read at each use and
///   must name a cgroup v2 directory. A missing FILE is an error for
///   anything that uses cgroups (as in isolate: boxes must not land
///   outside the subtree the service keeps), and is ignored otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CgRoot {
    /// The installation's own subtree below `isobox`.
    #[default]
    Installation,
    /// A cgroup v2 directory, or the root of the v1 hierarchies.
    Path(PathBuf),
    /// The file from which the cgroup v2 directory is read.
    Auto(PathBuf),
}

impl CgRoot {
    /// Where the box cgroups of the installation `installation` go.
    pub fn placement(&self, installation: &str) -> Result<Placement, BoxError> {
        let own = cgroup::own_subtree(installation);
        let placement = match self {
            Self::Installation => cgroup::place(None, Some(&own))?,
            Self::Path(path) => match CgroupController::detect(Some(path))? {
                (CgroupVersion::V1, _) => cgroup::place(Some(path), Some(&own))?,
                (CgroupVersion::V2, _) => cgroup::place(None, Some(path))?,
            },
            Self::Auto(file) => {
                let text =
                    fs::read_to_string(file).map_err(|error| BoxError::CgRootUnreadable {
                        file: file.clone(),
                        error,
                    })?;
                let path = Path::new(text.lines().next().unwrap_or("").trim());
                if !path.is_absolute() {
                    return Err(BoxError::CgRootRelative {
                        file: file.clone(),
                        found: path.to_path_buf(),
                    });
                }
                cgroup::place(None, Some(path))?
            }
        };
        Ok(placement)
    }
}

/// Which of the keys that `subid_user` interacts with the file gave.
#[derive(Default)]
struct Given {
    subid_user: Option<String>,
    first_ids: bool,
    num_boxes: bool,
}

impl Given {
    fn note(&mut self, key: &str) {
        match key {
            "first_uid" | "first_gid" => self.first_ids = true,
            "num_boxes" => self.num_boxes = true,
            _ => {}
        }
    }
}

/// The first id and the length of `user`'s block in a subordinate-id file
/// (`/etc/subuid` syntax: `name:first:count` lines), as isolate reads it:
/// the first line naming the user counts.
fn find_subid(file: &Path, user: &str) -> Result<(u32, u32), String> {
    let text = fs::read_to_string(file)
        .map_err(|error| format!("subid_user: cannot read {}: {error}", file.display()))?;
    let line = text
        .lines()
        .find(|line| line.split(':').next() == Some(user))
        .ok_or_else(|| format!("subid_user: user {user} not found in {}", file.display()))?;
    let mut fields = line.split(':').skip(1);
    let mut field = |what: &str| {
        fields
            .next()
            .and_then(|field| field.parse::<u32>().ok())
            .filter(|id| *id <= i32::MAX as u32)
            .ok_or_else(|| {
                format!(
                    "subid_user: cannot parse the line of {user} in {}: bad range {what}",
                    file.display()
                )
            })
    };
    Ok((field("start")?, field("length")?))
}

fn number(key: &str, value: &str) -> Result<u32, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key} must be a whole number, not {value:?}"));
    }
    value
        .parse()
        .map_err(|_| format!("{key} {value} is out of range"))
}

/// The file system of a box: the box directory becomes a tmpfs of at most
/// `blocks` KiB and `inodes` files and directories. Both must be positive
/// (tmpfs reads 0 as "no limit", which is never what a quota means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Size in KiB.
    pub blocks: u64,
    /// Number of inodes.
    pub inodes: u64,
}

impl Quota {
    /// Refuses a zero size or inode count.
    pub fn check(&self) -> Result<(), BoxError> {
        if self.blocks == 0 || self.inodes == 0 {
            return Err(BoxError::BadQuota {
                blocks: self.blocks,
                inodes: self.inodes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BoxesConfig, BoxError> {
        BoxesConfig::parse(text, Path::new("/etc/isobox.conf"))
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = BoxesConfig::default();
        assert_eq!(config.box_root, Path::new("/var/local/lib/isobox"));
        assert_eq!(config.first_uid, 60000);
        assert_eq!(config.first_gid, 60000);
        assert_eq!(config.num_boxes, 1000);
        assert_eq!(config.cg_root, CgRoot::Installation);
        assert_eq!(parse("").unwrap(), config);
    }

    #[test]
    fn isolate_syntax_is_accepted() {
        let config = parse(
            "# isolate's own file\n\
             box_root = /srv/boxes\n\
             lock_root=/run/boxes\n\
             \tcg_root = /sys/fs/cgroup  \n\
             first_uid = 70000\n\
             first_gid = 71000\n\
             num_boxes = 16\n\
             \n\
             box3.cpus = 2-3\n\
             box3.mems = 0\n\
             restricted_init = 1\n\
             syscall_flags = 27\n",
        )
        .unwrap();
        assert_eq!(config.syscall_flags, 27);
        assert_eq!(BoxesConfig::default().syscall_flags, 65535);
        let all_bits = BoxesConfig::parse("syscall_flags = -1\n", Path::new("x")).unwrap();
        assert_eq!(all_bits.syscall_flags, u32::MAX);
        assert!(BoxesConfig::parse("syscall_flags = lots\n", Path::new("x")).is_err());
        assert_eq!(config.box_root, Path::new("/srv/boxes"));
        assert_eq!(config.lock_root, Path::new("/run/boxes"));
        assert_eq!(config.cg_root, CgRoot::Path("/sys/fs/cgroup".into()));
        assert_eq!((config.first_uid, config.first_gid), (70000, 71000));
        assert_eq!(config.num_boxes, 16);
        assert!(config.restricted_init);
        let box3 = &config.per_box[&3];
        assert_eq!(box3.cpus.as_deref(), Some("2-3"));
        assert_eq!(box3.mems.as_deref(), Some("0"));
        // isolate 2.x's delegated cgroup, read from the service's file.
        assert_eq!(
            parse("cg_root = auto:/run/isolate/cgroup").unwrap().cg_root,
            CgRoot::Auto("/run/isolate/cgroup".into())
        );
        assert_eq!(
            parse("cg_root = auto").unwrap().cg_root,
            CgRoot::Installation
        );
        assert!(parse("cg_root = auto:relative").is_err());
    }

    #[test]
    fn bad_lines_name_the_file_and_the_line() {
        for (text, line, reason) in [
            ("box_root = /a\nnonsense\n", 2, "expected 'key = value'"),
            ("first_uid = -5", 1, "whole number"),
            ("first_uid = 99999999999", 1, "out of range"),
            ("\n\ncolour = blue", 3, "unknown configuration item"),
            ("boxy3.cpus = 1", 1, "unknown configuration section"),
            ("box3.cpu = 1", 1, "unknown per-box configuration item"),
            ("boxA.cpus = 1", 1, "unknown configuration section"),
            ("box99999999999.cpus = 1", 1, "out of range"),
            ("box_root = relative", 1, "absolute path"),
            ("restricted_init = yes", 1, "0 or 1"),
            ("first uid = 3", 1, "not a configuration key"),
        ] {
            let err = parse(text).unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("/etc/isobox.conf, line {line}: ")),
                "{text:?}: {shown}"
            );
            assert!(shown.contains(reason), "{text:?}: {shown}");
        }
    }

    #[test]
    fn unusable_configurations_are_refused() {
        for text in ["first_uid = 0", "num_boxes = 0", "first_gid = 4294967290"] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(err, BoxError::ConfigInvalid { .. }),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = BoxesConfig::load(&dir.path().join("absent.conf")).unwrap();
        assert_eq!(config, BoxesConfig::default());
    }

    #[test]
    fn the_environment_can_name_another_file() {
        assert_eq!(config_path(None), Path::new(DEFAULT_CONFIG_PATH));
        assert_eq!(
            config_path(Some("".as_ref())),
            Path::new(DEFAULT_CONFIG_PATH)
        );
        assert_eq!(
            config_path(Some("/tmp/x.conf".as_ref())),
            Path::new("/tmp/x.conf")
        );
    }

    #[test]
    fn installations_differing_in_either_root_get_their_own_cgroup() {
        let name = |text: &str| parse(text).unwrap().installation_name();
        let a = name("box_root = /srv/a\nlock_root = /run/a");
        assert_eq!(a.len(), "boxes-".len() + 16, "{a}");
        assert!(a.starts_with("boxes-"));
        assert_eq!(
            a,
            name("box_root = /srv/a\nlock_root = /run/a\nfirst_uid = 7")
        );
        assert_ne!(a, name("box_root = /srv/b\nlock_root = /run/a"));
        assert_ne!(a, name("box_root = /srv/a\nlock_root = /run/b"));
        // The separator keeps ("/a", "b/c") and ("/a/b", "c")-like splits apart.
        assert_ne!(
            name("box_root = /x\nlock_root = /yz"),
            name("box_root = /xy\nlock_root = /z")
        );
        // Fixed forever: existing installations must find their cgroups
        // after an upgrade.
        assert_eq!(
            BoxesConfig::default().installation_name(),
            "boxes-4b211dcdb60af6a4"
        );
    }

    #[test]
    fn an_unreadable_auto_file_is_a_clear_error() {
        let config = parse("cg_root = auto:/nonexistent/isolate/cgroup").unwrap();
        let shown = config.cgroup_placement().unwrap_err().to_string();
        assert!(
            shown.contains("auto:/nonexistent/isolate/cgroup"),
            "{shown}"
        );
        assert!(shown.contains("service"), "{shown}");
    }

    #[test]
    fn box_paths_ids_and_range() {
        let config =
            parse("box_root = /srv/b\nlock_root = /run/l\nnum_boxes = 10\nbox7.cpus = 1").unwrap();
        let sandbox = config.sandbox(7).unwrap();
        assert_eq!(sandbox.dir(), Path::new("/srv/b/7"));
        assert_eq!(sandbox.box_dir(), Path::new("/srv/b/7/box"));
        assert_eq!((sandbox.uid(), sandbox.gid()), (60007, 60007));
        assert_eq!(sandbox.cgroup_name(), "box-7");
        assert_eq!(sandbox.lock_path, Path::new("/run/l/7"));
        assert_eq!(sandbox.per_box.cpus.as_deref(), Some("1"));
        let err = config.sandbox(10).unwrap_err();
        assert_eq!(err.to_string(), "box id 10 is out of range (allowed: 0-9)");
        assert!(config.sandbox(u64::MAX).is_err());
    }

    /// Parses `text` with `subuid` and `subgid` as the subordinate-id
    /// files.
    fn parse_subids(text: &str, subuid: &str, subgid: &str) -> Result<BoxesConfig, BoxError> {
        let dir = tempfile::tempdir().unwrap();
        let (uid_file, gid_file) = (dir.path().join("subuid"), dir.path().join("subgid"));
        fs::write(&uid_file, subuid).unwrap();
        fs::write(&gid_file, subgid).unwrap();
        BoxesConfig::parse_with_subids(text, Path::new("/etc/isobox.conf"), &uid_file, &gid_file)
    }

    #[test]
    fn subid_user_takes_the_blocks_of_subuid_and_subgid() {
        let subuid = "alice:100000:65536\nisolate:200000:1000\nisolate:900000:5\n";
        let subgid = "isolate:300000:500\nalice:100000:65536\n";
        let config = parse_subids("subid_user = isolate\n", subuid, subgid).unwrap();
        // Each from its own file (isolate 2.4.1 fixed reading subuid twice),
        // the first matching line, as many boxes as the smaller block.
        assert_eq!((config.first_uid, config.first_gid), (200000, 300000));
        assert_eq!(config.num_boxes, 500);
        let sandbox = config.sandbox(499).unwrap();
        assert_eq!((sandbox.uid(), sandbox.gid()), (200499, 300499));
        assert!(config.sandbox(500).is_err());

        let fewer = parse_subids("subid_user = isolate\nnum_boxes = 8", subuid, subgid).unwrap();
        assert_eq!(fewer.num_boxes, 8);
        for (text, subuid, reason) in [
            (
                "subid_user = isolate\nnum_boxes = 501",
                subuid,
                "only 500 ids",
            ),
            (
                "subid_user = isolate\nfirst_uid = 7",
                subuid,
                "must not both",
            ),
            (
                "first_gid = 7\nsubid_user = isolate",
                subuid,
                "must not both",
            ),
            ("subid_user = bob", subuid, "user bob not found in"),
            ("subid_user = isolate", "isolate:x:5\n", "bad range start"),
            ("subid_user = isolate", "isolate:5\n", "bad range length"),
        ] {
            let shown = parse_subids(text, subuid, subgid).unwrap_err().to_string();
            assert!(shown.contains(reason), "{text:?}: {shown}");
        }
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let shown =
            BoxesConfig::parse_with_subids("subid_user = u", Path::new("c"), &missing, &missing)
                .unwrap_err()
                .to_string();
        assert!(
            shown.contains("cannot read") && shown.contains("absent"),
            "{shown}"
        );
    }

    #[test]
    fn isolate_26s_own_file_is_accepted() {
        // isolate 2.6's default.cf.in as its Makefile renders it.
        let text = include_str!("../../tests/isolate_support/isolate-2.6-default.cf.in")
            .replace("@BOXDIR@", "/var/local/lib/isolate")
            .replace("@SBINDIR@", "/usr/local/sbin");
        let config =
            parse_subids(&text, "isolate:100000:65536\n", "isolate:100000:65536\n").unwrap();
        assert_eq!(config.box_root, Path::new("/var/local/lib/isolate"));
        assert_eq!(config.lock_root, Path::new("/run/isolate/locks"));
        assert_eq!(config.cg_root, CgRoot::Auto("/run/isolate/cgroup".into()));
        assert_eq!(
            (config.first_uid, config.first_gid, config.num_boxes),
            (100000, 100000, 65536)
        );
        assert_eq!(config.syscall_flags, 65535);
        assert!(!config.restricted_init);
        assert!(config.per_box.is_empty());
        // Every key it shows commented out is understood too.
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest)
                    if rest.trim_start().split_once('=').is_some_and(|(key, _)| {
                        !key.trim().is_empty() && !key.trim().contains(' ')
                    }) =>
                {
                    rest.trim_start()
                }
                _ => line,
            })
            .filter(|line| !line.starts_with("subid_user"))
            .collect::<Vec<_>>()
            .join("\n");
        let config = parse(&uncommented).unwrap();
        // The explicit path comes first; the later auto: line wins.
        assert_eq!(config.cg_root, CgRoot::Auto("/run/isolate/cgroup".into()));
        assert_eq!((config.first_uid, config.num_boxes), (60000, 1000));
        assert!(config.restricted_init);
        assert_eq!(config.per_box[&0].cpus.as_deref(), Some("4-7"));
        assert_eq!(config.per_box[&0].mems.as_deref(), Some("1"));
    }

    #[test]
    fn an_inline_comment_is_refused_with_its_line() {
        let shown = parse("num_boxes = 10\nbox_root = /srv/bx    # default\n")
            .unwrap_err()
            .to_string();
        assert!(shown.starts_with("/etc/isobox.conf, line 2: "), "{shown}");
        assert!(
            shown.contains("box_root") && shown.contains("comment"),
            "{shown}"
        );
        assert!(!shown.contains('\n'));
        assert!(parse("first_uid = 60000\t# default").is_err());
        // A '#' inside a value is the value's, as in isolate.
        assert_eq!(
            parse("box_root = /srv/a#b").unwrap().box_root,
            Path::new("/srv/a#b")
        );
    }

    #[test]
    fn zero_quotas_are_refused() {
        assert!(parse("box_quota = 0,100").is_err());
        assert!(parse("").unwrap().box_agent);
        assert!(!parse("box_agent = 0").unwrap().box_agent);
        assert!(parse("box_agent = yes").is_err());
        assert!(parse("box_quota = 100,0").is_err());
        assert_eq!(
            parse("box_quota = 2048,64").unwrap().default_quota,
            Quota {
                blocks: 2048,
                inodes: 64
            }
        );
    }
}
