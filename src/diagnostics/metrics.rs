//! The collector's health in Prometheus' text format (version 0.0.4): a pure rendering of the
//! state (counters kept across runs, the last run, the checkpoint), and the atomic write of the
//! metrics file for node_exporter's textfile collector.
//!
//! Rendering from the state alone means anything that can read the state file (a fetch run at
//! its end, a server answering `GET /metrics`) reports the same family with the same values.

use crate::checkpoint::State;
use crate::cli::VERSION;
use crate::collect::plan::HORIZON;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Prometheus text for the collector whose state is `state`, as of `now` (Unix seconds).
/// `tenant` labels every series together with the state's config ids.
pub fn render(tenant: &str, state: &State, now: i64) -> String {
    let labels = format!(
        "tenant=\"{}\",config_ids=\"{}\"",
        escape(tenant),
        escape(&state.config_ids)
    );
    let mut out = Metrics {
        text: String::new(),
        labels: &labels,
    };
    let t = &state.totals;
    out.counter("runs_total", "Fetch runs finished.", t.runs);
    out.counter(
        "runs_failed_total",
        "Fetch runs that exited with a code other than 0.",
        t.failed_runs,
    );
    out.counter(
        "events_delivered_total",
        "Events written to the output.",
        t.events,
    );
    out.counter(
        "duplicates_dropped_total",
        "Events dropped because they were already delivered.",
        t.duplicates,
    );
    out.counter("pages_total", "Complete API responses read.", t.pages);
    out.counter(
        "response_bytes_total",
        "Bytes read from the API.",
        t.response_bytes,
    );
    out.counter(
        "output_bytes_total",
        "Bytes written to the output.",
        t.output_bytes,
    );
    out.header("retries_total", "counter", "Requests retried, by cause.");
    for (cause, count) in &t.retries {
        out.sample(
            "retries_total",
            &format!(",cause=\"{}\"", escape(cause)),
            *count as f64,
        );
    }
    out.counter(
        "recoveries_total",
        "Time-based recoveries (an offset expired, refused, or bound to another host or config).",
        t.recoveries,
    );
    out.counter(
        "gaps_total",
        "Intervals of events lost past the API's 12 hours.",
        t.gaps,
    );
    out.counter(
        "gap_seconds_total",
        "Seconds of events lost in those gaps.",
        t.gap_seconds,
    );
    out.counter(
        "decode_errors_total",
        "Events delivered with fields that could not be decoded (listed in decodeErrors).",
        t.events_with_decode_errors,
    );
    out.counter(
        "bad_lines_total",
        "Response lines skipped because they were not JSON events.",
        t.bad_lines,
    );
    out.counter(
        "shrunk_events_total",
        "Events shrunk to fit max_line_bytes.",
        t.shrunk_events,
    );
    out.gauge(
        "last_success_timestamp_seconds",
        "When the last run that exited 0 finished (0: never).",
        t.last_success_at.unwrap_or(0) as f64,
    );
    if let Some(run) = &state.last_run {
        out.gauge(
            "last_run_timestamp_seconds",
            "When the last run finished.",
            run.finished_at as f64,
        );
        if let Some(code) = run.exit_code {
            out.gauge(
                "last_run_exit_code",
                "The last run's exit code (see the README's exit codes).",
                f64::from(code),
            );
        }
        out.gauge(
            "last_run_duration_seconds",
            "How long the last run took.",
            run.duration_ms as f64 / 1000.0,
        );
        out.gauge(
            "last_run_events",
            "Events the last run delivered.",
            run.events as f64,
        );
        out.gauge(
            "last_run_caught_up",
            "1 when the last run reached the newest events, 0 when it stopped before.",
            f64::from(u8::from(run.caught_up)),
        );
    }
    if let Some(checkpoint) = state.checkpoint {
        let lag = (now - checkpoint).max(0);
        out.gauge(
            "checkpoint_timestamp_seconds",
            "Every event stored before this time has been delivered.",
            checkpoint as f64,
        );
        out.gauge(
            "checkpoint_lag_seconds",
            "How far the checkpoint is behind now.",
            lag as f64,
        );
        out.gauge(
            "horizon_remaining_seconds",
            "Time left, at the current lag, before undelivered events pass the API's 12 hours.",
            (HORIZON - lag).max(0) as f64,
        );
    }
    let build = format!(
        "version=\"{}\",commit=\"{}\",target=\"{}\"",
        escape(env!("CARGO_PKG_VERSION")),
        escape(env!("BUILD_GIT_COMMIT")),
        escape(env!("BUILD_TARGET"))
    );
    out.header(
        "build_info",
        "gauge",
        &format!("The running build: {VERSION}."),
    );
    out.text
        .push_str(&format!("akamai_siem_build_info{{{build}}} 1\n"));
    out.text
}

/// Replace `path` with `text` atomically: a temporary beside it, fsync, rename, fsync the
/// directory. node_exporter reads the file at any moment and must never see half of it; the
/// temporary's name does not end in `.prom`, so the textfile collector never reads it.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".akamai-siem-metrics.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temporary.write_all(text.as_bytes())?;
    // Metrics carry no secret, and node_exporter runs as its own user.
    use std::os::unix::fs::PermissionsExt;
    temporary
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// What the push receiver counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveCounts {
    pub bodies: u64,
    pub events: u64,
    pub duplicates: u64,
    pub metadata: u64,
    pub bad_lines: u64,
    pub rejected: u64,
    pub auth_failures: u64,
    pub tls_failures: u64,
    pub received_bytes: u64,
    /// The output is open and its last commit succeeded.
    pub output_up: bool,
}

/// Prometheus text for `receive`'s `GET /metrics`: the same family and names as the fetch
/// metrics where they mean the same (`events_delivered_total`, `duplicates_dropped_total`,
/// `bad_lines_total`), `push_*` for what only a receiver counts. Counters start at zero with
/// the process, which Prometheus' `rate()` handles as a restart.
pub fn render_receive(tenant: &str, counts: &ReceiveCounts, started_at: i64) -> String {
    let labels = format!("tenant=\"{}\",route=\"push\"", escape(tenant));
    let mut out = Metrics {
        text: String::new(),
        labels: &labels,
    };
    out.counter(
        "events_delivered_total",
        "Events written to the output.",
        counts.events,
    );
    out.counter(
        "duplicates_dropped_total",
        "Events dropped because they were already delivered.",
        counts.duplicates,
    );
    out.counter(
        "bad_lines_total",
        "Lines that were not JSON events (kept in the quarantine).",
        counts.bad_lines,
    );
    out.counter(
        "push_bodies_total",
        "Pushed bodies answered 200 (durable).",
        counts.bodies,
    );
    out.counter(
        "push_metadata_objects_total",
        "DataStream metadata objects skipped.",
        counts.metadata,
    );
    out.counter(
        "push_rejected_total",
        "Pushes answered 4xx (other than 401) or 503.",
        counts.rejected,
    );
    out.counter(
        "push_auth_failures_total",
        "Pushes answered 401.",
        counts.auth_failures,
    );
    out.counter(
        "push_tls_failures_total",
        "TLS handshakes that failed or timed out.",
        counts.tls_failures,
    );
    out.counter(
        "push_received_bytes_total",
        "Body bytes received, as sent (before gzip decompression).",
        counts.received_bytes,
    );
    out.gauge(
        "output_up",
        "1 while the output is open and its last commit succeeded.",
        if counts.output_up { 1.0 } else { 0.0 },
    );
    out.gauge(
        "process_start_time_seconds",
        "Unix time the receiver started.",
        started_at as f64,
    );
    out.text
}

struct Metrics<'a> {
    text: String,
    labels: &'a str,
}

impl Metrics<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP akamai_siem_{name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE akamai_siem_{name} {kind}");
    }

    fn sample(&mut self, name: &str, extra_labels: &str, value: f64) {
        let _ = writeln!(
            self.text,
            "akamai_siem_{name}{{{}{extra_labels}}} {value}",
            self.labels
        );
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        self.sample(name, "", value as f64);
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        self.sample(name, "", value);
    }
}

/// A label value: backslash, double quote and line feed are escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text: backslash and line feed are escaped.
fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receivers_metrics_parse_and_carry_its_counts() {
        let counts = ReceiveCounts {
            bodies: 3,
            events: 120,
            duplicates: 7,
            auth_failures: 2,
            output_up: true,
            ..ReceiveCounts::default()
        };
        let text = render_receive("acme-eu", &counts, 1_796_000_000);
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let value = |name: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                    _ => f64::NAN,
                })
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        };
        assert_eq!(value("akamai_siem_events_delivered_total"), 120.0);
        assert_eq!(value("akamai_siem_duplicates_dropped_total"), 7.0);
        assert_eq!(value("akamai_siem_push_bodies_total"), 3.0);
        assert_eq!(value("akamai_siem_push_auth_failures_total"), 2.0);
        assert_eq!(value("akamai_siem_output_up"), 1.0);
        let sample = &scrape.samples[0];
        assert_eq!(sample.labels.get("tenant"), Some("acme-eu"));
        assert_eq!(sample.labels.get("route"), Some("push"));
    }
    use crate::checkpoint::{RunRecord, Totals};

    fn sample_state() -> State {
        let mut state = State::new("akab-x.luna.akamaiapis.net", "12892;29182");
        state.checkpoint = Some(1_700_000_000 - 90);
        state.last_run = Some(RunRecord {
            finished_at: 1_700_000_000,
            events: 7,
            pages: 2,
            caught_up: true,
            stopped_by: None,
            exit_code: Some(0),
            duration_ms: 1500,
        });
        state.totals = Totals {
            runs: 3,
            events: 1234,
            retries: [("page_cut".to_string(), 2), ("rate_limited".to_string(), 5)]
                .into_iter()
                .collect(),
            last_success_at: Some(1_700_000_000),
            ..Totals::default()
        };
        state
    }

    #[test]
    fn renders_every_series_with_its_type_labels_and_value() {
        let text = render("prod \"eu\"", &sample_state(), 1_700_000_000);
        let labels = r#"tenant="prod \"eu\"",config_ids="12892;29182""#;
        for line in [
            "# TYPE akamai_siem_events_delivered_total counter".to_string(),
            format!("akamai_siem_events_delivered_total{{{labels}}} 1234"),
            format!("akamai_siem_runs_total{{{labels}}} 3"),
            format!("akamai_siem_retries_total{{{labels},cause=\"rate_limited\"}} 5"),
            format!("akamai_siem_retries_total{{{labels},cause=\"page_cut\"}} 2"),
            format!("akamai_siem_last_run_duration_seconds{{{labels}}} 1.5"),
            format!("akamai_siem_last_run_exit_code{{{labels}}} 0"),
            format!("akamai_siem_checkpoint_lag_seconds{{{labels}}} 90"),
            format!("akamai_siem_horizon_remaining_seconds{{{labels}}} 43110"),
            format!("akamai_siem_last_success_timestamp_seconds{{{labels}}} 1700000000"),
            "# TYPE akamai_siem_checkpoint_lag_seconds gauge".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line} in\n{text}");
        }
        // One HELP and one TYPE per family, before its samples.
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
        assert_eq!(text.matches("# TYPE akamai_siem_retries_total").count(), 1);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            let typed = text.find(&format!("# TYPE {name} ")).expect(name);
            assert!(typed < text.find(line).unwrap(), "{name} typed after use");
        }
    }

    #[test]
    fn a_collector_past_the_horizon_has_no_time_left_and_an_unknown_lag_is_absent() {
        let mut state = sample_state();
        state.checkpoint = Some(0);
        let text = render("t", &state, 1_700_000_000);
        assert!(
            text.contains("horizon_remaining_seconds{tenant=\"t\",config_ids=\"12892;29182\"} 0\n")
        );
        state.checkpoint = None;
        state.last_run = None;
        state.totals.last_success_at = None;
        let text = render("t", &state, 1_700_000_000);
        assert!(!text.contains("checkpoint_lag_seconds"), "{text}");
        assert!(!text.contains("last_run_exit_code"), "{text}");
        // Never succeeded reads as long ago, so "no success for 15 minutes" fires.
        assert!(text.contains("akamai_siem_last_success_timestamp_seconds{tenant=\"t\",config_ids=\"12892;29182\"} 0\n"));
    }

    #[test]
    fn the_file_is_replaced_whole_and_readable_by_the_exporter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("akamai_siem.prom");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary is left behind");
        assert!(write_atomically(&dir.path().join("no/such/dir.prom"), "x").is_err());
    }
}
