//! `isobox serve`: an HTTP service speaking go-judge's REST API, running
//! each command in a box from a warm pool.
//!
//! The async side (axum on a small tokio runtime) only parses, checks and
//! answers; runs are blocking and go to tokio's blocking threads, at most
//! `--parallelism` at once (the pool has that many boxes) with at most
//! `--queue` more waiting for a box; one more is answered 503 at once.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

use isobox::confine;
use isobox::dirs::{DirAction, DirOptions, DirRule};
use isobox::pool::{Pool, PoolConfig};
use isobox::IsolateConfig;

use crate::cli::units::{parse_size, parse_time};
use crate::cli::{print_error, EXIT_TROUBLE};

mod http;
mod metrics;
mod model;
mod pipes;
mod run;
mod store;
mod sweep;
mod ws;

use run::{Caps, Settings};
use store::FileStore;

/// The version go-judge clients compare against: Hydro reads
/// `buildVersion.split('v')[1]` as semver and wants at least 1.8.6 for the
/// features isobox has; the build metadata says what really answers.
pub const BUILD_VERSION: &str = concat!("v1.9.0+isobox.", env!("CARGO_PKG_VERSION"));

/// `PATH` of a command whose `env` names none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// One paragraph for `isobox --help`.
pub const SUMMARY: &str = "\
The service face: `isobox serve [--listen 127.0.0.1:5050] [--parallelism N] ...`
serves go-judge's REST API (POST /run, /file, /version, /config, /ws) from a
warm pool of boxes; `isobox serve --help` lists its options.";

/// `isobox serve` options.
#[derive(Debug, Parser)]
#[command(
    name = "isobox serve",
    bin_name = "isobox serve",
    version = crate::cli::VERSION,
    about = "Serve go-judge's REST API (POST /run, /file, /version, /config) from a warm pool of boxes",
    after_help = "SIZE: bytes or a number with K, M, G (powers of 1024). TIME: seconds (0.5, 2).\n\
--limits-cap takes KEY=VALUE[,KEY=VALUE...]: cpu=TIME, clock=TIME, memory=SIZE, procs=N,\n\
output=SIZE (largest collector), copyout=SIZE (largest file copied out), copyouttotal=SIZE\n\
(all files copied out by one command), filesize=SIZE (largest file a program writes),\n\
cmds=N (commands in one request), cpurate=N (largest cpuRateLimit, thousandths of a CPU),\n\
cpuset=LIST (CPUs runs may use, e.g. 0-1,3); cpurate and cpuset turn --cpu-controls on."
)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs --auth-token-file.
    #[arg(long, default_value = "127.0.0.1:5050")]
    listen: SocketAddr,
    /// Runs at once (boxes in the pool); default: the number of CPUs.
    #[arg(long)]
    parallelism: Option<usize>,
    /// Boxes made ahead of time (at most --parallelism); default: all.
    #[arg(long)]
    pool: Option<usize>,
    /// `auto`: when --parallelism is at most the CPUs runs may use, each
    /// box is placed on a CPU of its own, so that a box's runs stay on one
    /// CPU and two boxes never share one; `off`: the scheduler places them.
    #[arg(long, value_enum, default_value_t = CpuPinning::Auto)]
    cpu_pinning: CpuPinning,
    /// Requests waiting for a box at most; more get 503.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// File holding the bearer token clients must send (first line).
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Directory whose files `src` may name (repeatable); none: `src` refused.
    #[arg(long, value_name = "DIR")]
    src_prefix: Vec<PathBuf>,
    /// Directory of the file store (created 0700; emptied at start and stop).
    #[arg(long, value_name = "DIR")]
    file_dir: Option<PathBuf>,
    /// Largest request body and largest uploaded file.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    max_body: u64,
    /// Total size of the file store.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    file_store_max: u64,
    /// Remove stored files this long after they were stored (seconds);
    /// by default they stay until deleted or the server stops.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    file_ttl: Option<Duration>,
    /// Ceilings for request limits (see below); also the defaults of a
    /// request that asks for none.
    #[arg(long, value_name = "KEY=VALUE,...")]
    limits_cap: Vec<String>,
    /// Address for Prometheus metrics (`GET /metrics`); off by default.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Size of each box's own tmpfs (all a program may write in /w).
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    box_size: u64,
    /// A directory rule for every box, isolate's syntax (`IN=OUT:OPTIONS`,
    /// see `isobox run --help`); repeatable, after the defaults.
    #[arg(long, value_name = "RULE")]
    dir: Vec<String>,
    /// A file of directory rules, one per line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    mount_file: Option<PathBuf>,
    /// Directory holding the boxes (created 0700, removed at stop).
    #[arg(long, value_name = "DIR")]
    box_dir: Option<PathBuf>,
    /// An existing cgroup v2 directory for the boxes' cgroups (a subtree
    /// delegated to the server's user), or `self` for the one the server
    /// runs in (systemd's `Delegate=yes`); needed without root.
    #[arg(long, value_name = "DIR")]
    cgroup: Option<PathBuf>,
    /// Honour cpuRateLimit and cpuSetLimit (refused without): the boxes
    /// join the cpu and cpuset controllers, which costs two cgroup
    /// directories per run on cgroup v1 (nothing on v2).
    #[arg(long)]
    cpu_controls: bool,
}

/// Whether the boxes get a CPU each (`--cpu-pinning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CpuPinning {
    Auto,
    Off,
}

/// The CPUs the boxes are spread over, one each: those runs may use (the
/// cpuset cap, or the host's) that the server itself may run on, when
/// there are at least as many as boxes. More boxes than CPUs would share
/// them anyway, and then the scheduler balances better than a fixed
/// placement.
fn box_cpus(
    pinning: CpuPinning,
    boxes: usize,
    runs_may_use: &run::CpuList,
    server_may_use: Option<run::CpuList>,
) -> Option<run::CpuList> {
    if pinning == CpuPinning::Off {
        return None;
    }
    let usable = runs_may_use.intersection(&server_may_use?);
    (boxes as u64 <= usable.count()).then_some(usable)
}

/// Where a server without root keeps its boxes and files: the user's
/// runtime directory (`$XDG_RUNTIME_DIR/isobox`) when it has one of its
/// own, else `/tmp/isobox-<uid>`; made 0700 and checked to be the user's.
fn rootless_run_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = isobox::sys::effective_uid();
    let owned = |dir: &std::path::Path| {
        std::fs::symlink_metadata(dir)
            .is_ok_and(|meta| meta.is_dir() && meta.uid() == uid && meta.mode() & 0o022 == 0)
    };
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(runtime) if owned(&runtime) => runtime.join("isobox"),
        _ => PathBuf::from(format!("/tmp/isobox-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).with_context(|| format!("creating {}", dir.display())),
    }
    if !owned(&dir) {
        bail!(
            "{} is not a directory only this user can write",
            dir.display()
        );
    }
    Ok(dir)
}

/// The host's CPUs, as the kernel lists them; the first
/// `available_parallelism` when that cannot be read.
fn host_cpus() -> run::CpuList {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|text| run::CpuList::parse(&text).ok())
        .unwrap_or_else(|| {
            run::CpuList::first(std::thread::available_parallelism().map_or(1, |n| n.get()) as u32)
        })
}

/// `KEY=VALUE` pairs of `--limits-cap`: split at commas, except that a
/// piece without `=` continues the value before it (`cpuset=0-1,3`).
fn cap_pairs(specs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in specs.iter().flat_map(|spec| spec.split(',')) {
        match (piece.split_once('='), pairs.last_mut()) {
            (Some((key, value)), _) => pairs.push((key.to_string(), value.to_string())),
            (None, Some((_, value))) if !piece.is_empty() => {
                value.push(',');
                value.push_str(piece);
            }
            (None, _) => bail!("--limits-cap {piece:?}: expected KEY=VALUE"),
        }
    }
    Ok(pairs)
}

fn parse_caps(specs: &[String]) -> anyhow::Result<Caps> {
    let mut caps = Caps::default();
    for (key, value) in cap_pairs(specs)? {
        let (key, value) = (key.as_str(), value.as_str());
        let size = || parse_size(value).map_err(|err| anyhow::anyhow!("--limits-cap {key}: {err}"));
        let time = || parse_time(value).map_err(|err| anyhow::anyhow!("--limits-cap {key}: {err}"));
        match key {
            "cpu" => caps.cpu = time()?,
            "clock" => caps.clock = time()?,
            "memory" => caps.memory = size()?,
            "procs" => {
                caps.procs = value
                    .parse()
                    .with_context(|| format!("--limits-cap procs: {value:?}"))?
            }
            "output" => caps.output = size()?,
            "cmds" => {
                caps.cmds = value
                    .parse()
                    .with_context(|| format!("--limits-cap cmds: {value:?}"))?
            }
            "copyout" => caps.copy_out = size()?,
            "copyouttotal" => caps.copy_out_total = size()?,
            "filesize" => caps.file_size = size()?,
            "cpurate" => {
                caps.cpu_rate = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|rate| *rate >= 10)
                        .with_context(|| {
                            format!("--limits-cap cpurate: {value:?} is not a number of thousandths of a CPU, at least 10")
                        })?,
                )
            }
            "cpuset" => {
                caps.cpuset = Some(
                    run::CpuList::parse(value)
                        .map_err(|err| anyhow::anyhow!("--limits-cap cpuset: {err}"))?,
                )
            }
            other => bail!("--limits-cap: unknown key {other:?}"),
        }
    }
    if caps.cpu.is_zero()
        || caps.clock.is_zero()
        || caps.memory == 0
        || caps.procs == 0
        || caps.cmds == 0
    {
        bail!("--limits-cap: cpu, clock, memory, procs and cmds must be above 0");
    }
    Ok(caps)
}

/// The configuration every box starts from: go-judge's box layout (the
/// working directory at `/w`, the host files compilers need where the host
/// has them), strict isolation.
fn box_template(
    caps: &Caps,
    extra_rules: &[String],
    cpu_controls: bool,
) -> anyhow::Result<IsolateConfig> {
    let mut dir_rules = vec![DirRule {
        inside: confine::BOX_DIR.into(),
        action: DirAction::WorkDir,
        options: DirOptions {
            rw: true,
            ..DirOptions::default()
        },
    }];
    // go-judge's default mount.yaml, less what isobox's defaults already
    // give (/bin, /lib, /lib64, /usr, /dev, /proc, /tmp).
    for rule in [
        "/etc/ld.so.cache:maybe",
        "/etc/alternatives:maybe",
        "/etc/fpc.cfg:maybe",
        "/etc/mono:maybe",
        "/etc/java-17-openjdk:maybe",
        "/etc/java-21-openjdk:maybe",
        "/var/lib/ghc:maybe",
    ] {
        dir_rules.push(rule.parse().with_context(|| format!("mount rule {rule}"))?);
    }
    for rule in extra_rules {
        dir_rules.push(rule.parse().with_context(|| format!("--dir {rule}"))?);
    }
    Ok(IsolateConfig {
        strict_mode: true,
        dir_rules,
        inner_workdir: confine::BOX_DIR.into(),
        environment: vec![
            ("PATH".into(), DEFAULT_PATH.into()),
            ("HOME".into(), confine::BOX_DIR.into()),
        ],
        file_size_limit: Some(caps.file_size),
        open_files_limit: Some(256),
        cpu_controllers: cpu_controls,
        ..IsolateConfig::default()
    })
}

/// Shared by every request.
pub struct AppState {
    pool: Pool,
    store: FileStore,
    settings: Settings,
    token: Option<String>,
    max_body: u64,
    metrics: metrics::Metrics,
    cgroup_version: u8,
    parallelism: usize,
    /// Requests running or waiting for a box: `--parallelism` + `--queue`
    /// permits, taken before a request gets a thread, so that a flood is
    /// answered 503 at once instead of piling up in memory.
    admission: Arc<tokio::sync::Semaphore>,
    file_ttl: Option<Duration>,
}

/// Entry point of `isobox serve ...` (`args[0]` is the program, `args[1]`
/// is `serve`).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let parsed = match ServeArgs::try_parse_from(args.into_iter().skip(1)) {
        Ok(parsed) => parsed,
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let text = error.to_string();
            let line = text.lines().next().unwrap_or("bad arguments");
            print_error(line.trim_start_matches("error: "));
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    match serve(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&format!("serve: {}", crate::cli::error_text(&error)));
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(token)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let token = args
        .auth_token_file
        .as_deref()
        .map(read_token)
        .transpose()?;
    if token.is_none() && !args.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {} without --auth-token-file: anyone who reaches it could run programs",
            args.listen
        );
    }
    let caps = parse_caps(&args.limits_cap)?;
    let mut src_prefixes = Vec::new();
    for prefix in &args.src_prefix {
        src_prefixes.push(
            std::fs::canonicalize(prefix)
                .with_context(|| format!("--src-prefix {}", prefix.display()))?,
        );
    }
    let parallelism = args
        .parallelism
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let warm = args.pool.unwrap_or(parallelism).min(parallelism);
    let pid = std::process::id();
    let root = isobox::sys::is_root();
    if !root && args.cgroup.is_none() {
        bail!(
            "not root: isobox serve needs a cgroup v2 subtree delegated to its user (--cgroup \
             DIR) to limit and measure memory; see isobox check-environment"
        );
    }
    let run_dir = if root {
        PathBuf::from(sweep::RUN_DIR)
    } else {
        rootless_run_dir()?
    };
    let box_dir = args
        .box_dir
        .clone()
        .unwrap_or_else(|| run_dir.join(format!("serve-{pid}")));
    let file_dir = args
        .file_dir
        .clone()
        .unwrap_or_else(|| run_dir.join(format!("serve-{pid}-files")));

    let swept = sweep::sweep(&run_dir, args.cgroup.as_deref());
    if !swept.is_empty() {
        tracing::warn!(
            "removed what killed servers left: {}",
            swept
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let store = FileStore::new(&file_dir, args.max_body, args.file_store_max)
        .with_context(|| format!("file store in {}", file_dir.display()))?;
    let mut rules = Vec::new();
    if let Some(path) = &args.mount_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--mount-file {}", path.display()))?;
        rules.extend(
            text.lines()
                .map(|line| line.split('#').next().unwrap_or("").trim())
                .filter(|line| !line.is_empty())
                .map(str::to_string),
        );
    }
    rules.extend(args.dir.iter().cloned());
    let cpu_controls = args.cpu_controls || caps.cpu_rate.is_some() || caps.cpuset.is_some();
    let host_cpus = host_cpus();
    if let Some(cpuset) = &caps.cpuset {
        if !cpuset.is_subset(&host_cpus) {
            bail!("--limits-cap cpuset={cpuset}: the host's CPUs are {host_cpus}");
        }
    }
    let mut template = box_template(&caps, &rules, cpu_controls)?;
    template.cgroup_parent = args
        .cgroup
        .as_deref()
        .map(crate::cli::cgroup_option)
        .transpose()?;
    if !root {
        tracing::warn!(
            "not root: boxes are rootless (user namespaces, the server's own uid on the host) \
             and have no tmpfs of their own, so --box-size does not bound what a program \
             writes; file sizes are still capped"
        );
    }
    let box_cpus = box_cpus(
        args.cpu_pinning,
        parallelism,
        caps.cpuset.as_ref().unwrap_or(&host_cpus),
        run::CpuList::of_this_thread(),
    );
    match &box_cpus {
        Some(cpus) => tracing::info!("each box on a CPU of its own, of {cpus}"),
        None if args.cpu_pinning == CpuPinning::Auto => tracing::info!(
            "{parallelism} boxes and fewer CPUs to place them on: the scheduler places them"
        ),
        None => {}
    }
    let pool = Pool::new(PoolConfig {
        template,
        base_dir: box_dir,
        size: parallelism,
        warm,
        queue: args.queue,
        // Mounting a box's tmpfs on the host needs root.
        box_size: root.then_some(args.box_size),
        box_cpus,
    })
    .context("making the pool of boxes")?;
    let cgroup_version = pool
        .acquire()
        .ok()
        .and_then(|lease| {
            let paths = lease.cgroup_paths();
            paths.first().map(|path| {
                if path.join("cgroup.controllers").exists() {
                    2
                } else {
                    1
                }
            })
        })
        .unwrap_or(0);

    let state = Arc::new(AppState {
        pool: pool.clone(),
        store,
        settings: Settings {
            caps,
            src_prefixes,
            cpu_controls,
            host_cpus,
        },
        token,
        max_body: args.max_body,
        metrics: metrics::Metrics::default(),
        cgroup_version,
        parallelism,
        admission: Arc::new(tokio::sync::Semaphore::new(parallelism + args.queue)),
        file_ttl: args.file_ttl,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Every run holds a blocking thread, and so does every request
        // waiting for a box: the pool bounds both.
        .max_blocking_threads(parallelism + args.queue + 4)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(http::serve(state.clone(), args.listen, args.metrics_listen));
    // Drained: every request has its answer. Give the boxes back to the
    // kernel before anything can fail on the way out.
    runtime.shutdown_timeout(Duration::from_secs(5));
    pool.shutdown();
    state.store.clear();
    if args.file_dir.is_none() {
        let _ = std::fs::remove_dir(&file_dir);
    }
    tracing::info!("stopped; boxes and files removed");
    served
}

/// The body of `GET /version` (public).
pub fn version_body() -> serde_json::Value {
    serde_json::json!({
        "buildVersion": BUILD_VERSION,
        "goVersion": "none (isobox, Rust)",
        "platform": std::env::consts::ARCH,
        "os": std::env::consts::OS,
        "copyOutOptional": true,
        "pipeProxy": true,
        "symlink": true,
        "addressSpaceLimit": true,
        "stream": false,
        "procPeak": true,
        "copyOutTruncate": true,
        "pipeProxyZeroCopy": false,
        "fixSymlinkEscape": true,
    })
}

/// The body of `GET /config`.
pub fn config_body(state: &AppState) -> serde_json::Value {
    let caps = &state.settings.caps;
    let mut body = version_body();
    let object = body.as_object_mut().expect("version_body is an object");
    object.remove("buildVersion");
    object.remove("goVersion");
    object.remove("platform");
    object.remove("os");
    object.insert(
        "fileStorePath".into(),
        state.store.dir().display().to_string().into(),
    );
    let controllers: Vec<&str> = ["cpu", "cpuacct", "cpuset", "memory", "pids"]
        .into_iter()
        .filter(|name| *name != "cpuacct" || state.cgroup_version == 1)
        .filter(|name| *name != "cpuset" || state.settings.cpu_controls)
        .collect();
    let limits: BTreeMap<&str, u64> = [
        ("cpuLimit", caps.cpu.as_nanos() as u64),
        ("clockLimit", caps.clock.as_nanos() as u64),
        ("memoryLimit", caps.memory),
        ("procLimit", caps.procs),
        ("outputMax", caps.output),
        ("copyOutMax", caps.copy_out),
        ("copyOutTotal", caps.copy_out_total),
        ("fileSizeLimit", caps.file_size),
        ("maxBody", state.max_body),
    ]
    .into_iter()
    .chain(caps.cpu_rate.map(|rate| ("cpuRateLimit", rate)))
    .collect();
    object.insert(
        "runnerConfig".into(),
        serde_json::json!({
            "cgroupType": state.cgroup_version,
            "cgroupControllers": controllers,
            "parallelism": state.parallelism,
            "limitsCap": limits,
            "cpuControls": state.settings.cpu_controls,
            "cpuSet": caps.cpuset.as_ref().unwrap_or(&state.settings.host_cpus).to_string(),
        }),
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_list_keeps_its_commas_in_the_caps() {
        let caps = parse_caps(&["cpuset=0-1,3,memory=1M".into(), "cpurate=500".into()]).unwrap();
        assert_eq!(caps.cpuset.unwrap().to_string(), "0-1,3");
        assert_eq!((caps.memory, caps.cpu_rate), (1 << 20, Some(500)));
        for bad in [",cpuset=1", "cpurate=5", "cpuset=x", "procs"] {
            assert!(parse_caps(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn boxes_get_a_cpu_each_only_when_there_are_cpus_enough() {
        let list = |text: &str| run::CpuList::parse(text).unwrap();
        let auto = CpuPinning::Auto;
        assert_eq!(
            box_cpus(auto, 2, &list("0-3"), Some(list("0-3"))),
            Some(list("0-3"))
        );
        // Only CPUs the server may run on, within the cap.
        assert_eq!(
            box_cpus(auto, 2, &list("0-3"), Some(list("1-2"))),
            Some(list("1-2"))
        );
        assert_eq!(box_cpus(auto, 3, &list("0-3"), Some(list("1-2"))), None);
        assert_eq!(box_cpus(auto, 1, &list("2"), Some(list("0-1"))), None);
        assert_eq!(box_cpus(auto, 1, &list("0"), None), None);
        assert_eq!(
            box_cpus(CpuPinning::Off, 1, &list("0-3"), Some(list("0-3"))),
            None
        );
    }
}
