//! Counters for Prometheus' text format, served on `--metrics-listen`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::model::Verdict;
use super::AppState;

const STATUSES: [Verdict; 9] = [
    Verdict::Accepted,
    Verdict::MemoryLimitExceeded,
    Verdict::TimeLimitExceeded,
    Verdict::OutputLimitExceeded,
    Verdict::FileError,
    Verdict::NonzeroExitStatus,
    Verdict::Signalled,
    Verdict::DangerousSyscall,
    Verdict::InternalError,
];

/// What the service counts.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    bad_requests: AtomicU64,
    refused_busy: AtomicU64,
    cancelled: AtomicU64,
    by_status: [AtomicU64; 9],
    run_seconds_micros: AtomicU64,
}

impl Metrics {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bad_request(&self) {
        self.bad_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn busy(&self) {
        self.refused_busy.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn result(&self, status: Verdict, wall_nanos: u64) {
        if let Some(index) = STATUSES.iter().position(|known| *known == status) {
            self.by_status[index].fetch_add(1, Ordering::Relaxed);
        }
        self.run_seconds_micros
            .fetch_add(wall_nanos / 1000, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, state: &AppState) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "isobox_requests_total",
            "POST /run requests received.",
            self.requests.load(Ordering::Relaxed),
        );
        counter(
            "isobox_bad_requests_total",
            "Requests refused with 400.",
            self.bad_requests.load(Ordering::Relaxed),
        );
        counter(
            "isobox_busy_total",
            "Requests refused because the wait queue was full.",
            self.refused_busy.load(Ordering::Relaxed),
        );
        counter(
            "isobox_cancelled_total",
            "Requests whose client went away before the answer.",
            self.cancelled.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP isobox_run_seconds_total Wall-clock seconds of runs, summed.\n\
             # TYPE isobox_run_seconds_total counter\nisobox_run_seconds_total {:.6}",
            self.run_seconds_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP isobox_runs_total Commands run, by go-judge status.\n# TYPE isobox_runs_total counter"
        );
        for (status, count) in STATUSES.iter().zip(&self.by_status) {
            let _ = writeln!(
                out,
                "isobox_runs_total{{status=\"{}\"}} {}",
                status.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        let stats = state.pool.stats();
        let (files, bytes) = state.store.usage();
        for (name, help, value) in [
            ("isobox_pool_boxes", "Boxes alive.", stats.alive as u64),
            ("isobox_pool_idle", "Boxes idle.", stats.idle as u64),
            (
                "isobox_pool_waiting",
                "Requests waiting for a box.",
                stats.waiting as u64,
            ),
            (
                "isobox_pool_replaced",
                "Boxes replaced after a failed reset.",
                stats.replaced,
            ),
            ("isobox_store_files", "Files in the store.", files as u64),
            ("isobox_store_bytes", "Bytes in the store.", bytes),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}
