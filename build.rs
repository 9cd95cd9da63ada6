//! Build script: tells the binary which commit it was built from, for
//! `isobox --version`.
//!
//! From a git checkout the commit is `git rev-parse HEAD`; from a crate
//! tarball (`cargo package`, `cargo install isobox`) it is the `git.sha1`
//! cargo wrote into `.cargo_vcs_info.json` when the tarball was made;
//! `ISOBOX_COMMIT` in the environment overrides both (a distribution that
//! builds from a plain source tree); anything else is `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ISOBOX_COMMIT");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = Path::new(&manifest_dir);
    let commit = std::env::var("ISOBOX_COMMIT")
        .ok()
        .filter(|value| !value.is_empty())
        .or_else(|| from_git(dir))
        .or_else(|| from_vcs_info(dir))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ISOBOX_COMMIT={commit}");
}

/// The abbreviated commit of the checkout at `dir`; asks cargo to run this
/// script again when HEAD moves (and only then: rerunning on every source
/// change would rebuild the library each time for nothing).
fn from_git(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    };
    // A crate unpacked inside some other repository must not take that
    // repository's commit: the top of the work tree has to be this crate.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD names the branch; the branch's ref (loose or packed) names the
    // commit. In a worktree HEAD is per worktree, the refs are shared.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["rev-parse", "--symbolic-full-name", "HEAD"])
            .and_then(|name| git(&["rev-parse", "--git-path", &name])),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ]
    .into_iter()
    .flatten()
    {
        let path = dir.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}

/// The commit `cargo package` recorded in the tarball.
fn from_vcs_info(dir: &Path) -> Option<String> {
    let path = dir.join(".cargo_vcs_info.json");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(path).ok()?;
    // {"git": {"sha1": "<40 hex digits>", ...}, "path_in_vcs": ""}: a
    // search is enough, and keeps the build script free of dependencies.
    let after = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let start = after.find('"')? + 1;
    let sha: String = after[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (sha.len() >= 12).then(|| sha[..12].to_string())
}
