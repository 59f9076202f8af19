//! What a run adds to the counters kept across runs (the state's `totals`), and the metrics
//! file it leaves from them: each run's summary, added once, when the run ends.

use super::*;
use crate::checkpoint::Totals;
use crate::diagnostics::metrics;

/// Every cause a retry is counted under, so each series exists (at 0) from the first run:
/// an alert on `increase(...[1h]) > 0` then sees the first retry too.
pub const RETRY_CAUSES: &[&str] = &[
    "rate_limited",
    "burst_blocked",
    "server_error",
    "network",
    "truncated",
    "page_cut",
    "clock_skew",
    "other",
];

/// The cause a failed request is retried for, as the metrics label it.
pub(super) fn retry_cause(error: &ApiError) -> &'static str {
    match error {
        ApiError::RateLimited { .. } => "rate_limited",
        ApiError::BurstBlocked { .. } => "burst_blocked",
        ApiError::Server { .. } => "server_error",
        ApiError::Network { .. } => "network",
        ApiError::Truncated { .. } => "truncated",
        ApiError::InvalidTimestamp { .. } => "clock_skew",
        _ => "other",
    }
}

impl Summary {
    pub(super) fn count_retry(&mut self, cause: &'static str) {
        *self.retry_causes.entry(cause).or_insert(0) += 1;
    }
}

impl Collector<'_> {
    /// After the run is recorded in the state: only a run with state has counters that grow
    /// across runs (a replay's would look like a counter reset). Best effort: the events are
    /// delivered and committed whatever happens to this file.
    pub(super) fn write_metrics(&self) {
        let (Some(settings), Some(checkpointing)) =
            (&self.setup.collect.metrics, &self.checkpointing)
        else {
            return;
        };
        let text = metrics::render(&settings.tenant, &checkpointing.state, unix_now());
        if let Err(error) = metrics::write_atomically(&settings.path, &text) {
            tracing::warn!(
                code = "metrics_not_written",
                "cannot write metrics_file {}: {error}; the events are delivered, but Prometheus \
                 sees the previous run's metrics until this is fixed",
                settings.path.display()
            );
        }
    }
}

/// Add one finished run to the totals.
pub(super) fn add_run(totals: &mut Totals, summary: &Summary, exit: Exit, finished_at: i64) {
    totals.runs += 1;
    if exit != Exit::Success {
        totals.failed_runs += 1;
    } else {
        totals.last_success_at = Some(finished_at);
    }
    totals.events += summary.events;
    totals.duplicates += summary.duplicates;
    totals.pages += summary.pages;
    totals.response_bytes += summary.response_bytes;
    totals.output_bytes += summary.output_bytes;
    for cause in RETRY_CAUSES {
        let this_run = summary.retry_causes.get(cause).copied().unwrap_or(0);
        *totals.retries.entry(cause.to_string()).or_insert(0) += this_run;
    }
    totals.recoveries += summary.recoveries;
    totals.gaps += summary.gaps;
    totals.gap_seconds += summary.gap_seconds;
    totals.events_with_decode_errors += summary.events_with_decode_errors;
    totals.bad_lines += summary.bad_lines;
    totals.shrunk_events += summary.shrunk_events;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_add_up_and_only_a_clean_exit_is_a_success() {
        let mut totals = Totals::default();
        let mut summary = Summary {
            events: 10,
            duplicates: 2,
            pages: 3,
            response_bytes: 1000,
            output_bytes: 900,
            gaps: 1,
            gap_seconds: 60,
            ..Summary::default()
        };
        summary.count_retry("page_cut");
        summary.count_retry("rate_limited");
        summary.count_retry("rate_limited");
        add_run(&mut totals, &summary, Exit::Success, 100);
        add_run(&mut totals, &summary, Exit::Api, 200);
        assert_eq!((totals.runs, totals.failed_runs), (2, 1));
        assert_eq!(
            totals.last_success_at,
            Some(100),
            "a failed run is not a success"
        );
        assert_eq!((totals.events, totals.duplicates, totals.pages), (20, 4, 6));
        assert_eq!((totals.response_bytes, totals.output_bytes), (2000, 1800));
        assert_eq!((totals.gaps, totals.gap_seconds), (2, 120));
        assert_eq!(totals.retries["rate_limited"], 4);
        assert_eq!(totals.retries["page_cut"], 2);
        assert_eq!(
            totals.retries["server_error"], 0,
            "every cause has a series"
        );
        assert_eq!(totals.retries.len(), RETRY_CAUSES.len());
    }
}
