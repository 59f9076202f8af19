//! What the receiver says on the way: counters shared by the server and the writer, and one
//! summary line per interval (and at the end) in the shape of fetch's, with the same `summary`
//! code, plus one `push_auth_failed` line per address that failed to authenticate.

use super::auth::Failures;
use super::writer::BodyCounts;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Stats {
    pub bodies: AtomicU64,
    pub events: AtomicU64,
    pub duplicates: AtomicU64,
    pub metadata: AtomicU64,
    pub bad_lines: AtomicU64,
    /// Bodies answered 4xx (other than 401) or 503.
    pub rejected: AtomicU64,
    pub auth_failures: AtomicU64,
    pub received_bytes: AtomicU64,
    /// TLS handshakes that failed or timed out (mTLS without a valid certificate, scanners).
    pub tls_failures: AtomicU64,
    /// The output and journal are open and the last commit succeeded.
    pub writer_ok: AtomicBool,
    pub failed_auth: Failures,
}

impl Stats {
    /// The counts now, for `GET /metrics`.
    pub fn counts(&self) -> crate::diagnostics::metrics::ReceiveCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        crate::diagnostics::metrics::ReceiveCounts {
            bodies: load(&self.bodies),
            events: load(&self.events),
            duplicates: load(&self.duplicates),
            metadata: load(&self.metadata),
            bad_lines: load(&self.bad_lines),
            rejected: load(&self.rejected),
            auth_failures: load(&self.auth_failures),
            tls_failures: load(&self.tls_failures),
            received_bytes: load(&self.received_bytes),
            output_up: self.writer_ok.load(Ordering::Relaxed),
        }
    }

    pub fn record_body(&self, counts: &BodyCounts) {
        self.bodies.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(counts.events, Ordering::Relaxed);
        self.duplicates
            .fetch_add(counts.duplicates, Ordering::Relaxed);
        self.metadata.fetch_add(counts.metadata, Ordering::Relaxed);
        self.bad_lines
            .fetch_add(counts.bad_lines, Ordering::Relaxed);
    }
}

/// The counters at one moment, to report the difference since the last summary.
#[derive(Default, Clone, Copy)]
struct Snapshot {
    bodies: u64,
    events: u64,
    duplicates: u64,
    metadata: u64,
    bad_lines: u64,
    rejected: u64,
    auth_failures: u64,
    received_bytes: u64,
    tls_failures: u64,
}

impl Snapshot {
    fn of(stats: &Stats) -> Snapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            bodies: get(&stats.bodies),
            events: get(&stats.events),
            duplicates: get(&stats.duplicates),
            metadata: get(&stats.metadata),
            bad_lines: get(&stats.bad_lines),
            rejected: get(&stats.rejected),
            auth_failures: get(&stats.auth_failures),
            received_bytes: get(&stats.received_bytes),
            tls_failures: get(&stats.tls_failures),
        }
    }

    fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            bodies: self.bodies - earlier.bodies,
            events: self.events - earlier.events,
            duplicates: self.duplicates - earlier.duplicates,
            metadata: self.metadata - earlier.metadata,
            bad_lines: self.bad_lines - earlier.bad_lines,
            rejected: self.rejected - earlier.rejected,
            auth_failures: self.auth_failures - earlier.auth_failures,
            received_bytes: self.received_bytes - earlier.received_bytes,
            tls_failures: self.tls_failures - earlier.tls_failures,
        }
    }
}

pub struct Reporter {
    last: Snapshot,
    since: Instant,
}

impl Reporter {
    pub fn new() -> Reporter {
        Reporter {
            last: Snapshot::default(),
            since: Instant::now(),
        }
    }

    /// Log what happened since the last call; `status` says where the receiver stands.
    pub fn summary(&mut self, stats: &Stats, status: &str) {
        for (address, failures) in stats.failed_auth.take() {
            tracing::warn!(
                code = "push_auth_failed",
                srcip = %address,
                failures,
                "{address} failed to authenticate {failures} time(s) in the last {}s: a \
                 DataStream stream with outdated credentials, or someone probing the receiver",
                self.since.elapsed().as_secs()
            );
        }
        let now = Snapshot::of(stats);
        let d = now.since(self.last);
        let elapsed: Duration = self.since.elapsed();
        tracing::info!(
            code = "summary",
            events = d.events,
            duplicates = d.duplicates,
            bodies = d.bodies,
            metadata = d.metadata,
            bad_lines = d.bad_lines,
            rejected = d.rejected,
            auth_failures = d.auth_failures,
            received_bytes = d.received_bytes,
            tls_failures = d.tls_failures,
            seconds = format!("{:.3}", elapsed.as_secs_f64()),
            "{} events in {} pushed body(ies) ({} duplicate(s) dropped, {} rejected, {} failed \
             authentication, {} failed TLS handshake(s)) in the last {:.0}s; {status}",
            d.events,
            d.bodies,
            d.duplicates,
            d.rejected,
            d.auth_failures,
            d.tls_failures,
            elapsed.as_secs_f64()
        );
        self.last = now;
        self.since = Instant::now();
    }
}
