//! What the benches share: which `isobox` executable they time.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The `isobox` executable as `cargo build --release` makes it, which is
/// the one users install.
///
/// `CARGO_BIN_EXE_isobox` alone is not that binary: to build a bench, cargo
/// unifies the dev-dependencies' features into the crates they share with
/// the executable (reqwest adds hyper's client, proptest all of
/// regex-syntax's Unicode tables), so the bench's copy is a megabyte larger
/// with 20,500 start-up relocations instead of 11,900, and each invocation
/// started 0.1–0.2 ms later than the shipped one. Cargo writes both kinds to
/// the same `target/release/isobox`, whichever was built last; building the
/// release one here makes that the one timed.
///
/// `ISOBOX_BENCH_BIN` names an executable instead (the cgroup v2 VM, where
/// there is no cargo: `scripts/vm-test` builds the release one on the host).
pub fn shipped_isobox() -> PathBuf {
    if let Some(bin) = std::env::var_os("ISOBOX_BENCH_BIN") {
        return PathBuf::from(bin);
    }
    let path = PathBuf::from(env!("CARGO_BIN_EXE_isobox"));
    let Some(cargo) = std::env::var_os("CARGO") else {
        eprintln!(
            "warning: not run by cargo (no CARGO): timing {} as it is, which may be the \
             bench build with its dev-dependencies' features",
            path.display()
        );
        return path;
    };
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "isobox"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo to build the release isobox");
    assert!(status.success(), "cargo build --release failed: {status}");
    path
}

/// Removes the cgroups `isobox` made for the installation configured in
/// `config` (`isobox/boxes-<hash>` in each hierarchy) once its boxes are
/// cleaned up: each bench run's installation lives in a temporary
/// directory of its own, so its cgroups would otherwise stay behind, one
/// set per run. A directory still in use stays (`rmdir` refuses).
// The serve bench shares this module and makes no installation.
#[allow(dead_code)]
pub fn remove_installation_cgroups(config: &std::path::Path) {
    let Ok(config) = isobox::boxes::BoxesConfig::load(config) else {
        return;
    };
    if let Ok(placement) = config.cgroup_placement() {
        if !placement.given {
            for dir in placement.parent_dirs() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Stops the isolate face's installation service of the installation
/// configured in `config` (started by the bench's first `--init` or
/// `--cleanup`), found through the peer of its socket, and waits until it
/// is gone: a bench leaves no process behind.
#[allow(dead_code)]
pub fn stop_installation_service(config: &std::path::Path) {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
    let Ok(config) = isobox::boxes::BoxesConfig::load(config) else {
        return;
    };
    let path = config.lock_root.join("agents").join("service.sock");
    let Ok(socket) = rustix::net::socket(AddressFamily::UNIX, SocketType::SEQPACKET, None) else {
        return;
    };
    let connected =
        SocketAddrUnix::new(&path).and_then(|address| rustix::net::connect(&socket, &address));
    let Ok(peer) = connected.and_then(|()| rustix::net::sockopt::socket_peercred(&socket)) else {
        return;
    };
    drop(socket);
    if rustix::process::kill_process(peer.pid, rustix::process::Signal::TERM).is_err() {
        return;
    }
    let alive = format!("/proc/{}/cmdline", peer.pid.as_raw_nonzero());
    let deadline = Instant::now() + Duration::from_secs(10);
    // A process that exited has an empty command line until it is reaped.
    while std::fs::read(&alive).is_ok_and(|line| !line.is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}
