//! What a package installs besides the binary, made by the binary itself:
//! `isobox generate man` and `isobox generate completions`, and the commit
//! `--version` names. Needs no privilege.

use std::path::Path;
use std::process::{Command, Output};

fn isobox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(args)
        .output()
        .expect("running isobox")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn every_manual_page_renders_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let out = isobox(&["generate", "man", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    for page in [
        "isobox.1",
        "isobox-run.1",
        "isobox-serve.1",
        "isobox-check-environment.1",
        "isobox-generate.1",
        "isobox-isolate.1",
        "isobox.conf.5",
    ] {
        let path = dir.path().join(page);
        assert!(path.is_file(), "{page} missing");
        assert!(
            listed.iter().any(|line| Path::new(line) == path),
            "{page} not listed: {listed:?}"
        );
    }
    if !have("man") {
        eprintln!("*** SKIPPED rendering: no man here ***");
        return;
    }
    for line in &listed {
        let render = Command::new("man")
            .args(["--warnings", "-l", line])
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        assert!(render.status.success(), "{line}: {render:?}");
        assert_eq!(text(&render.stderr), "", "{line} warns");
        assert!(render.stdout.len() > 400, "{line} is nearly empty");
    }
}

#[test]
fn the_isolate_page_names_every_option_of_isolate_help() {
    let dir = tempfile::tempdir().unwrap();
    assert!(isobox(&["generate", "man", dir.path().to_str().unwrap()])
        .status
        .success());
    let page = std::fs::read_to_string(dir.path().join("isobox-isolate.1")).unwrap();
    let help = text(&isobox(&["--cg", "--help"]).stdout);
    let mut seen = 0;
    for word in help.split(|c: char| c.is_whitespace() || c == '=' || c == '[' || c == ',') {
        if let Some(name) = word.strip_prefix("--").filter(|name| !name.is_empty()) {
            seen += 1;
            let spelled = format!("\\-\\-{}", name.replace('-', "\\-"));
            assert!(page.contains(&spelled), "--{name} missing from the page");
        }
    }
    assert!(seen > 40, "only {seen} options in --help");
}

#[test]
fn completions_load_and_complete_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = isobox(&["generate", "completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = text(&out.stdout);
        for name in ["run", "serve", "check-environment", "generate"] {
            assert!(script.contains(name), "{shell} completion lacks {name}");
        }
    }
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        isobox(&["generate", "completions", "bash"]).stdout,
    )
    .unwrap();
    let completed = Command::new("bash")
        .args([
            "-c",
            // As bash calls it: the command, the word, the word before.
            "source \"$1\" && COMP_WORDS=(isobox se) COMP_CWORD=1 && _isobox isobox se isobox && echo \"${COMPREPLY[@]}\"",
            "_",
            script.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(completed.status.success(), "{completed:?}");
    assert_eq!(text(&completed.stdout).trim(), "serve", "{completed:?}");
    let wrong = isobox(&["generate", "completions", "tcsh"]);
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let commit = env!("ISOBOX_COMMIT");
    let out = isobox(&["--version"]);
    assert_eq!(
        text(&out.stdout),
        format!("isobox {} (commit {commit})\n", env!("CARGO_PKG_VERSION"))
    );
    // Built from this checkout (the usual case): a commit of it, HEAD or,
    // when something was committed after the build, one of HEAD's
    // ancestors; a made-up or foreign commit fails.
    let manifest = env!("CARGO_MANIFEST_DIR");
    let in_git = Path::new(manifest).join(".git").exists()
        && Command::new("git")
            .args(["-C", manifest, "rev-parse", "HEAD"])
            .output()
            .is_ok_and(|head| head.status.success());
    if in_git {
        let ancestor = Command::new("git")
            .args([
                "-C",
                manifest,
                "merge-base",
                "--is-ancestor",
                commit,
                "HEAD",
            ])
            .output()
            .unwrap();
        assert!(
            ancestor.status.success(),
            "{commit} is not HEAD or before it: {ancestor:?}"
        );
    } else {
        assert!(
            commit == "unknown"
                || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "{commit}"
        );
    }
    // The isolate face keeps isolate's first line and names the commit below it.
    let out = isobox(&["--cg", "--version"]);
    let shown = text(&out.stdout);
    let mut lines = shown.lines();
    assert_eq!(lines.next(), Some("The process isolator 2.6"));
    assert!(lines.next().unwrap().contains(commit), "{shown}");
}
