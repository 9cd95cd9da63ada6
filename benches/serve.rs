//! The warm pool and `isobox serve` against bare fork+exec of `/bin/true`,
//! measured in one run on one machine. Run as root:
//! `cargo bench --bench serve` (`ISOBOX_BENCH_RUNS` sets the iterations).
//!
//! Prints a Markdown table (medians and p99, ratios to the floor) ready for
//! docs/BENCHMARKS.md.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use isobox::pool::{Pool, PoolConfig};
use isobox::{ExecutionStatus, IsolateConfig};

mod support;

fn iterations() -> usize {
    std::env::var("ISOBOX_BENCH_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(300)
}

/// Median and 99th percentile of `f`'s duration.
fn time_each(iterations: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    // Warm the page cache, the allocator and the pool first.
    for _ in 0..10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (samples[samples.len() / 2], p99)
}

fn floor(iterations: usize) -> (Duration, Duration) {
    time_each(iterations, || {
        let status = Command::new("/bin/true").status().unwrap();
        assert!(status.success());
    })
}

fn pooled(iterations: usize) -> (Duration, Duration) {
    let pool = Pool::new(PoolConfig {
        template: IsolateConfig {
            strict_mode: true,
            time_limit: Some(Duration::from_secs(5)),
            wall_time_limit: Some(Duration::from_secs(10)),
            memory_limit: Some(256 << 20),
            process_limit: Some(64),
            ..IsolateConfig::default()
        },
        base_dir: format!("/run/isobox/bench-pool-{}", std::process::id()).into(),
        size: 1,
        warm: 1,
        queue: 1,
        box_size: Some(256 << 20),
        box_cpus: None,
    })
    .unwrap();
    let command = vec!["/bin/true".to_string()];
    let mut lease = pool.acquire().unwrap();
    let bare = time_each(iterations, || {
        let result = lease.executor().execute(&command, None).unwrap();
        assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    });
    drop(lease);
    eprintln!("execute alone in a leased box: median {bare:?}");
    let times = time_each(iterations, || {
        let mut lease = pool.acquire().unwrap();
        let result = lease.executor().execute(&command, None).unwrap();
        assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
        // The reset is part of the cost of a pooled run.
        drop(lease);
    });
    pool.shutdown();
    times
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(parallelism: usize, pinning: &str) -> Self {
        static ISOBOX: OnceLock<PathBuf> = OnceLock::new();
        let isobox = ISOBOX.get_or_init(support::shipped_isobox);
        let mut child = Command::new(isobox)
            .args(["serve", "--listen", "127.0.0.1:0", "--parallelism"])
            .arg(parallelism.to_string())
            .args(["--cpu-pinning", pinning])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("isobox serve: listening on ")
                    .map(str::to_string)
            })
            .expect("isobox serve did not start");
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url: format!("http://{address}/run"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to the server this bench started
        // and still owns (not yet reaped, so the pid is not reused).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// go-judge's usual request: `/bin/true` with one `content` stdin and two
/// collectors.
const BODY: &str = r#"{"cmd":[{"args":["/bin/true"],"env":["PATH=/usr/bin:/bin"],
"files":[{"content":"1 2\n"},{"name":"stdout","max":10240},{"name":"stderr","max":10240}],
"cpuLimit":1000000000,"memoryLimit":268435456,"procLimit":50}]}"#;

fn post(client: &reqwest::blocking::Client, url: &str) {
    let answer = client.post(url).body(BODY).send().unwrap().text().unwrap();
    assert!(answer.contains("\"Accepted\""), "{answer}");
}

fn served(iterations: usize) -> (Duration, Duration) {
    let server = Server::start(1, "auto");
    let client = reqwest::blocking::Client::new();
    time_each(iterations, || post(&client, &server.url))
}

/// A minimal HTTP/1.1 keep-alive client for the throughput rows, in the
/// manner of `wrk`: the load generator shares the machine's two CPUs with
/// the server, and reqwest's blocking client (a runtime thread behind each
/// call) took about 120 µs of CPU per request, a tenth of what it measured.
/// This one writes a prepared request and reads the answer by its
/// `Content-Length`.
struct RawClient {
    stream: std::net::TcpStream,
    request: Vec<u8>,
    buffer: Vec<u8>,
}

impl RawClient {
    fn connect(url: &str) -> Self {
        let address = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .expect("an http:// URL");
        let stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_nodelay(true).unwrap();
        let request = format!(
            "POST /run HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes();
        Self {
            stream,
            request,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// Posts [`BODY`] and checks that the answer is a 200 with the run
    /// accepted.
    fn post(&mut self) {
        use std::io::{Read, Write};
        self.stream.write_all(&self.request).unwrap();
        self.buffer.clear();
        let mut chunk = [0u8; 4096];
        let (head_end, length) = loop {
            let read = self.stream.read(&mut chunk).unwrap();
            assert!(read > 0, "the server closed the connection");
            self.buffer.extend_from_slice(&chunk[..read]);
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end]).unwrap();
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .expect("a Content-Length");
                break (end + 4, length);
            }
        };
        while self.buffer.len() < head_end + length {
            let read = self.stream.read(&mut chunk).unwrap();
            assert!(read > 0, "the server closed the connection");
            self.buffer.extend_from_slice(&chunk[..read]);
        }
        let body = &self.buffer[head_end..head_end + length];
        assert!(
            body.windows(10).any(|w| w == b"\"Accepted\""),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// What a throughput run did: runs per second, and the CPU time each run
/// cost the client (this process) and the server (with its boxes and
/// programs), in microseconds.
struct Throughput {
    runs_per_second: f64,
    client_cpu_us: f64,
    server_cpu_us: f64,
}

/// Runs per second with `connections` clients posting to `server` for
/// `seconds`.
fn throughput(server: &Server, connections: usize, seconds: f64) -> Throughput {
    let server_pid = server.child.id();
    let (client_before, server_before) = (own_cpu(), tree_cpu(server_pid));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                scope.spawn(|| {
                    let mut client = RawClient::connect(&server.url);
                    let mut done = 0;
                    while Instant::now() < deadline {
                        client.post();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let per_run = |cpu: Duration| cpu.as_secs_f64() * 1e6 / total as f64;
    Throughput {
        runs_per_second: total as f64 / elapsed,
        client_cpu_us: per_run(own_cpu() - client_before),
        server_cpu_us: per_run(tree_cpu(server_pid).saturating_sub(server_before)),
    }
}

/// The median of each figure over `spans`.
fn median_of(spans: &[Throughput]) -> Throughput {
    let median = |figure: fn(&Throughput) -> f64| {
        let mut values: Vec<f64> = spans.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Throughput {
        runs_per_second: median(|span| span.runs_per_second),
        client_cpu_us: median(|span| span.client_cpu_us),
        server_cpu_us: median(|span| span.server_cpu_us),
    }
}

fn own_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the buffer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU time of `pid` and its descendants: their own and that of the
/// children they reaped (a box's holder reaps its programs).
fn tree_cpu(pid: u32) -> Duration {
    let ticks = || {
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        per_second as f64
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name, which may hold spaces: utime is the
    // 14th field of the line, so the 12th after the name.
    let after_name = &stat[stat.rfind(')').map_or(0, |end| end + 2)..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let sum: u64 = fields[11..15]
        .iter()
        .map(|field| field.parse::<u64>().unwrap_or(0))
        .sum();
    let mut cpu = Duration::from_secs_f64(sum as f64 / ticks());
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            cpu += tree_cpu(child);
        }
    }
    cpu
}

fn ms(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1e3)
}

fn main() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("serve benchmark: needs root (boxes with namespaces and cgroups); skipped");
        return;
    }
    let iterations = iterations();
    let floor = floor(iterations);
    let pooled = pooled(iterations);
    let served = served(iterations);
    let ratio = |(median, _): (Duration, Duration)| median.as_secs_f64() / floor.0.as_secs_f64();
    println!("| what | median ms | p99 ms | × fork+exec |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| fork+exec /bin/true | {} | {} | 1.00 |",
        ms(floor.0),
        ms(floor.1)
    );
    println!(
        "| pooled run (Pool::acquire, execute, reset) | {} | {} | {:.2} |",
        ms(pooled.0),
        ms(pooled.1),
        ratio(pooled)
    );
    println!(
        "| POST /run, 1 connection | {} | {} | {:.2} |",
        ms(served.0),
        ms(served.1),
        ratio(served)
    );
    // The servers up at once, their spans alternating (three each), so
    // that a change in the machine's load hits all alike. The last one
    // shows what placing each box on a CPU of its own is worth.
    let kinds = [(1, "auto"), (2, "auto"), (2, "off")];
    let servers = kinds.map(|(workers, pinning)| Server::start(workers, pinning));
    for server in &servers {
        // The pool's boxes are built at the start; let that finish first.
        post(&reqwest::blocking::Client::new(), &server.url);
    }
    let mut spans: [Vec<Throughput>; 3] = Default::default();
    for _ in 0..3 {
        for (server, spans) in servers.iter().zip(&mut spans) {
            spans.push(throughput(server, 4, 2.0));
        }
    }
    let figures = spans.map(|spans| median_of(&spans));
    let one = &figures[0];
    println!();
    println!("| workers (--parallelism) | --cpu-pinning | 4 connections, runs/s | CPU per run: client µs | server, boxes and programs µs |");
    println!("| --- | --- | --- | --- | --- |");
    for ((workers, pinning), figures) in kinds.iter().zip(&figures) {
        let rate = if *workers == 1 {
            format!("{:.0}", figures.runs_per_second)
        } else {
            format!(
                "{:.0} ({:.2}× one worker)",
                figures.runs_per_second,
                figures.runs_per_second / one.runs_per_second
            )
        };
        println!(
            "| {workers} | {pinning} | {rate} | {:.0} | {:.0} |",
            figures.client_cpu_us, figures.server_cpu_us
        );
    }
    // Two CPUs shared by the client and the server: once one worker's runs
    // keep more than one CPU busy, a second worker cannot double them.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let busy = one.runs_per_second * (one.client_cpu_us + one.server_cpu_us) / 1e6;
    println!();
    println!(
        "One worker keeps {busy:.2} of {cpus:.0} CPUs busy (client and server): \
         at most {:.2}× with more workers on this machine.",
        cpus / busy
    );
}
