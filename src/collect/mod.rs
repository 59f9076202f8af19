//! One fetch run: plan a request, read the page, drop replays, decode and write each event,
//! commit, and repeat until caught up or a budget or a signal says stop.
//!
//! The commit order is the no-loss guarantee: events are written (and fsynced, for a file) and
//! their hashes journalled before the state that moves past them is saved. Whatever happens in
//! the middle of a page (a cut response, a budget, a signal), what was delivered is committed as
//! delivered but the offset stays, so the next request repeats the page and the replayed events
//! are dropped by hash.

pub mod budget;
pub mod plan;
pub mod retry;
pub mod signals;
pub mod tenants;

mod delivery;
mod opening;
mod progress;
mod report;
mod tally;

use delivery::Delivery;
use opening::{Checkpointing, open_state_and_output};
use progress::ProgressLine;
use report::report_notices;

use crate::checkpoint::{RunLock, RunRecord, Seen, State, StateFile};
use crate::config::timespec::{describe, human_duration};
use crate::config::{ApiSettings, CollectSettings, OutputSettings, OutputTarget, StateSettings};
use crate::diagnostics::error_reporting::{self, Exit, Reported};
use crate::pipeline::pool::{DEFAULT_WORKERS, FormatPool};
use crate::sink::{self, Reconciled, Sink};
use crate::source::api::{ApiError, Client, Query, Request};
use crate::source::page::{Deliver, Event, Flow, PageEnd, PageError, PageReader, PageStats};
use anyhow::Context as _;
use budget::{Allowance, BudgetPool};
use plan::{Notice, PageResult, PlanSettings, Planner, Progress, window_range};
use retry::{Retry, random_unit};
use signals::Signals;
use std::time::{Duration, Instant};

/// In-memory part of the spool; beyond it the response goes to a temporary file.
const SPOOL_MEMORY: usize = 4 * 1024 * 1024;
/// A line longer than this is not an event Akamai would send; report and skip it.
const MAX_RESPONSE_LINE: usize = 8 * 1024 * 1024;
/// Replays dropped within a run without state (a page fetched again after a cut).
const STATELESS_DEDUP: usize = 100_000;

/// Where the run gets its first request from.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// Continue from the state file.
    Stateful(&'a StateSettings),
    /// One window ending a safety lag before now, nothing remembered (`--no-state`).
    Window,
    /// `--from`/`--to`, nothing remembered.
    Replay { from: i64, to: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    MaxEvents,
    MaxBytes,
    Signal(i32),
}

impl StopReason {
    fn name(self) -> &'static str {
        match self {
            StopReason::MaxEvents => "max_events",
            StopReason::MaxBytes => "max_bytes",
            StopReason::Signal(_) => "signal",
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub events: u64,
    pub duplicates: u64,
    pub pages: u64,
    pub response_bytes: u64,
    pub output_bytes: u64,
    pub bad_lines: u64,
    pub events_with_decode_errors: u64,
    pub shrunk_events: u64,
    pub retries: u32,
    /// The same retries by cause (`tally::retry_cause`), for the metrics.
    pub retry_causes: std::collections::BTreeMap<&'static str, u64>,
    /// Time-based recoveries, gaps and the seconds those gaps lost.
    pub recoveries: u64,
    pub gaps: u64,
    pub gap_seconds: u64,
    /// Reconnections and resends to a remote output (syslog, HTTP).
    pub output_retries: u64,
    pub spilled_bytes: u64,
    pub caught_up: bool,
    pub stopped_by: Option<StopReason>,
    /// An interval of events could not be fetched any more (reported as a gap).
    pub lost_events: bool,
    pub elapsed: Duration,
}

pub struct RunSetup<'a> {
    pub client: &'a Client,
    pub api: &'a ApiSettings,
    pub collect: &'a CollectSettings,
    pub output: &'a OutputSettings,
    pub start: Start<'a>,
    pub signals: &'a Signals,
    /// The budget shared with the run's other tenants (`collect` then holds this tenant's
    /// first share); `None` for a run of one.
    pub pool: Option<std::sync::Arc<BudgetPool>>,
}

impl RunSetup<'_> {
    /// The config ids as offsets are bound to them (and the state records them).
    fn config_ids(&self) -> String {
        self.api.config_ids.to_string()
    }
}

/// How a page attempt failed.
enum Failed {
    /// Before the response body, or not because of how it ended.
    Before(PageError),
    /// A 200 response that ended before its context line: cut by the API's two-minute
    /// deadline, a proxy or the network.
    Cut(ApiError),
}

pub fn run(setup: RunSetup<'_>) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let now = unix_now();
    let (checkpointing, sink, seen) = open_state_and_output(&setup)?;
    let mut summary = Summary::default();
    let replay = match setup.start {
        Start::Window => Some(window_range(setup.collect.window, now)),
        Start::Replay { from, to } => Some((from, to)),
        Start::Stateful(_) => None,
    };
    let planner = match (setup.start, replay) {
        (Start::Window | Start::Replay { .. }, Some((from, to))) => {
            Planner::replay(from, to, setup.collect.limit)
        }
        _ => {
            let Start::Stateful(settings) = setup.start else {
                unreachable!("a run without a time range is stateful")
            };
            // A state that has neither offset nor checkpoint never got past its first request.
            let previous = checkpointing
                .as_ref()
                .map(|c| &c.state)
                .filter(|s| s.offset.is_some() || s.checkpoint.is_some());
            let (planner, notices) = Planner::stateful(
                previous,
                &setup.api.host,
                &setup.config_ids(),
                &PlanSettings {
                    limit: setup.collect.limit,
                    initial_lookback: settings.initial_lookback,
                    offset_ttl: settings.offset_ttl,
                    overlap: settings.overlap,
                },
                now,
            );
            report_notices(&notices, &mut summary);
            planner
        }
    };
    let pool =
        FormatPool::new(setup.output, DEFAULT_WORKERS).context("starting the format workers")?;
    // What a person watching the run sees it work through: the replay's range, or from the
    // checkpoint to what the API serves now.
    let range = replay.or_else(|| {
        planner
            .checkpoint()
            .map(|from| (from, now - plan::SAFETY_LAG))
    });
    let mut collector = Collector::new(&setup, checkpointing, sink, seen, planner, pool);
    collector.summary = summary;
    collector.replay = replay;
    collector.delivery.progress = ProgressLine::new(range);
    collector.finish(started)
}

struct Collector<'a> {
    setup: &'a RunSetup<'a>,
    reader: PageReader,
    pool: FormatPool,
    delivery: Delivery,
    checkpointing: Option<Checkpointing>,
    planner: Planner,
    retry: Retry,
    summary: Summary,
    /// The time range of a run without state (`--no-state` or `--from`), for its messages.
    replay: Option<(i64, i64)>,
}

impl<'a> Collector<'a> {
    fn new(
        setup: &'a RunSetup<'a>,
        checkpointing: Option<Checkpointing>,
        sink: Sink,
        seen: Seen,
        planner: Planner,
        pool: FormatPool,
    ) -> Collector<'a> {
        Collector {
            setup,
            reader: PageReader {
                memory_limit: SPOOL_MEMORY,
                spill_dir: setup.collect.spool_dir.clone(),
                max_line: MAX_RESPONSE_LINE,
                stop: setup.signals.stop_flag(),
            },
            pool,
            delivery: Delivery {
                sink,
                seen,
                max_events: setup.collect.max_events,
                max_bytes: setup.collect.max_bytes,
                events: 0,
                bytes: 0,
                written_events: 0,
                written_bytes: 0,
                duplicates: 0,
                events_with_decode_errors: 0,
                shrunk_events: 0,
                page_max_start: None,
                budget_hit: None,
                progress: ProgressLine::new(None),
                pool: setup.pool.clone(),
            },
            checkpointing,
            planner,
            retry: Retry::new(setup.collect.retry_budget),
            summary: Summary::default(),
            replay: None,
        }
    }

    fn finish(mut self, started: Instant) -> anyhow::Result<Summary> {
        let result = self.pages();
        self.delivery.progress.clear();
        self.delivery.return_unused();
        self.collect_counters();
        self.summary.elapsed = started.elapsed();
        // The cause first, then the summary: every run ends with its summary line.
        let exit = match &result {
            Ok(()) => tenants::exit_for(&self.summary),
            Err(error) => error_reporting::log(error),
        };
        self.record_run(exit);
        self.write_metrics();
        match result {
            Ok(()) => {
                self.log_summary(None);
                Ok(self.summary)
            }
            Err(_) => {
                self.log_summary(Some(exit));
                Err(anyhow::Error::new(Reported(exit)))
            }
        }
    }

    fn pages(&mut self) -> anyhow::Result<()> {
        loop {
            if let Some(signal) = self.setup.signals.received() {
                self.summary.stopped_by = Some(StopReason::Signal(signal));
                return Ok(());
            }
            if !self.delivery.has_allowance() {
                self.summary.stopped_by = Some(StopReason::MaxEvents);
                return Ok(());
            }
            let remaining = self.delivery.max_events - self.delivery.events;
            let request = self.planner.next_request(remaining);
            let requested_at = unix_now();
            let mut stats = PageStats::default();
            let outcome = self.fetch(&request, &mut stats);
            self.account(&stats, matches!(outcome, Ok(PageEnd::Complete(_))));
            let outcome = match outcome {
                Err(Failed::Cut(error)) => {
                    self.commit(false)?;
                    self.page_cut(error, &request)?;
                    continue;
                }
                Err(Failed::Before(error)) => Err(error),
                Ok(end) => Ok(end),
            };
            match outcome {
                Ok(PageEnd::Complete(context)) => {
                    let page = PageResult {
                        events: stats.events,
                        offset: context.offset,
                        cut_at_limit: context.limit.is_some(),
                        max_event_start: self.delivery.page_max_start,
                        requested_at,
                    };
                    let progress = self.planner.page_done(&page, request.limit);
                    self.commit(true)?;
                    self.retry.succeeded();
                    if progress == Progress::CaughtUp {
                        self.summary.caught_up = true;
                        return Ok(());
                    }
                }
                Ok(PageEnd::Stopped) => {
                    self.commit(false)?;
                    self.summary.stopped_by = self.delivery.budget_hit;
                    return Ok(());
                }
                Err(PageError::Interrupted) => {
                    self.commit(false)?;
                    let signal = self.setup.signals.received().unwrap_or(15);
                    self.summary.stopped_by = Some(StopReason::Signal(signal));
                    return Ok(());
                }
                Err(PageError::Handler(error)) => {
                    // The output failed: keep what is known to be delivered, then stop.
                    let _ = self.commit(false);
                    return Err(error);
                }
                Err(PageError::Api(error)) => {
                    self.commit(false)?;
                    self.recover(error, &request)?;
                }
            }
        }
    }

    /// Send the request and read the page. `Err(Cut)` when the 200 response ended early.
    fn fetch(&mut self, request: &Request, stats: &mut PageStats) -> Result<PageEnd, Failed> {
        self.delivery.page_max_start = None;
        let path = self.setup.client.path_and_query(request);
        tracing::debug!("GET {path}");
        let body = self.open_page(request).map_err(Failed::Before)?;
        self.reader
            .read(body, stats, &self.pool, &mut self.delivery)
            .map_err(|error| match error {
                PageError::Api(error @ (ApiError::Truncated { .. } | ApiError::Network { .. })) => {
                    Failed::Cut(error)
                }
                other => Failed::Before(other),
            })
    }

    /// Send the request from a helper thread: an API that stalls before answering must not keep
    /// a SIGTERM waiting for the read timeout (Wazuh's wodle waits for us without limit).
    fn open_page(&self, request: &Request) -> Result<crate::source::api::PageBody, PageError> {
        let client = self.setup.client.clone();
        let request = request.clone();
        let (answer, answered) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("request".into())
            .spawn(move || {
                let _ = answer.send(client.open_page(&request));
            })
            .map_err(|e| {
                PageError::Handler(anyhow::anyhow!("cannot start the request thread: {e}"))
            })?;
        loop {
            match answered.recv_timeout(Duration::from_millis(100)) {
                Ok(result) => return result.map_err(PageError::Api),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if self.setup.signals.received().is_some() {
                        return Err(PageError::Interrupted);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PageError::Handler(anyhow::anyhow!(
                        "the request thread stopped unexpectedly"
                    )));
                }
            }
        }
    }

    /// The response was cut before its end. With the same limit it would be cut again (on a slow
    /// link the API's two-minute deadline cuts every large page), so ask the same position for a
    /// smaller page at once; at the smallest page size, back off like any transient failure.
    fn page_cut(&mut self, error: ApiError, request: &Request) -> anyhow::Result<()> {
        match self.planner.page_cut(request.limit) {
            Some(limit) => {
                self.retry.retried_at_once();
                self.summary.count_retry("page_cut");
                tracing::warn!(
                    code = "page_cut",
                    "{error}; retrying at once with at most {limit} events per page (the API \
                     stops sending a response after about two minutes)"
                );
                Ok(())
            }
            None => self.recover(error, request),
        }
    }

    /// Decide what to do after a failed page; `Err` ends the run.
    fn recover(&mut self, error: ApiError, request: &Request) -> anyhow::Result<()> {
        let now = unix_now();
        match error {
            ApiError::OffsetExpired { .. } => {
                let notices = self.planner.offset_expired(now)?;
                report_notices(&notices, &mut self.summary);
                Ok(())
            }
            ApiError::BadRequest { .. } if matches!(request.query, Query::Time { .. }) => {
                match self.planner.rejected_from(now) {
                    Some(notices) => {
                        tracing::warn!(
                            code = "recovering",
                            "the API refused `from` as too old ({error}); retrying closer to now"
                        );
                        report_notices(&notices, &mut self.summary);
                        Ok(())
                    }
                    None => Err(error.into()),
                }
            }
            error => match self.retry.next_delay(&error, random_unit()) {
                Some(delay) => {
                    self.summary.count_retry(tally::retry_cause(&error));
                    let code = match error {
                        ApiError::InvalidTimestamp { .. } => "clock_skew",
                        ApiError::Truncated { .. } => "truncated",
                        _ => "retrying",
                    };
                    tracing::warn!(code, "{error}; retrying in {:.1}s", delay.as_secs_f64());
                    self.setup.signals.sleep(delay);
                    Ok(())
                }
                None if error.is_transient() => Err(anyhow::Error::new(error)
                    .context("giving up for this run (retries or retry_budget exhausted); the next run continues from the same place")),
                None => Err(error.into()),
            },
        }
    }

    /// Make delivered events durable and save the state that follows them. `page_complete`
    /// moves the offset and checkpoint on; otherwise only what was delivered is recorded.
    fn commit(&mut self, page_complete: bool) -> anyhow::Result<()> {
        self.delivery.flush()?;
        let output = self.delivery.sink.commit()?;
        let seen = self.delivery.seen.sync()?;
        let Some(checkpointing) = &mut self.checkpointing else {
            return Ok(());
        };
        let state = &mut checkpointing.state;
        state.record_output(output);
        state.seen = seen;
        // A first run cut short must still remember where its time window began.
        if page_complete || state.checkpoint.is_none() {
            state.checkpoint = self.planner.checkpoint();
        }
        if page_complete {
            if let Some((offset, obtained)) = self.planner.offset() {
                state.offset = Some(offset.to_string());
                state.offset_obtained_at = obtained;
            }
            state.host = self.setup.api.host.clone();
            state.config_ids = self.setup.config_ids();
        }
        checkpointing
            .file
            .save(state)
            .context("committing the page")?;
        if let Some(old_generation) = self.delivery.seen.compact_if_large()? {
            state.seen = self.delivery.seen.position();
            checkpointing.file.save(state)?;
            Seen::remove_generation(checkpointing.file.path(), old_generation);
        }
        Ok(())
    }

    /// Count one attempt's reading; only a complete page is a page.
    fn account(&mut self, stats: &PageStats, complete: bool) {
        self.summary.pages += u64::from(complete);
        self.summary.response_bytes += stats.bytes;
        self.summary.spilled_bytes += stats.spilled_bytes;
        self.summary.bad_lines += stats.bad_lines;
        if stats.bad_lines > 0 {
            tracing::error!(
                code = "bad_lines",
                "skipped {} response line(s) that are not JSON events; the first began: {}",
                stats.bad_lines,
                stats.first_bad_line.as_deref().unwrap_or("")
            );
        }
    }

    fn collect_counters(&mut self) {
        let d = &self.delivery;
        self.summary.events = d.written_events;
        self.summary.duplicates = d.duplicates;
        self.summary.output_bytes = d.written_bytes;
        self.summary.events_with_decode_errors = d.events_with_decode_errors;
        self.summary.shrunk_events = d.shrunk_events;
        self.summary.retries = self.retry.total_retries;
        self.summary.output_retries = self.delivery.sink.retries();
    }

    /// Remember how this run ended, for `state show` and the metrics, and add it to the totals;
    /// best effort (the commit already happened).
    fn record_run(&mut self, exit: Exit) {
        let Some(checkpointing) = &mut self.checkpointing else {
            return;
        };
        let finished_at = unix_now();
        checkpointing.state.last_run = Some(RunRecord {
            finished_at,
            events: self.summary.events,
            pages: self.summary.pages,
            caught_up: self.summary.caught_up,
            stopped_by: self.summary.stopped_by.map(|s| s.name().to_string()),
            exit_code: Some(exit.code()),
            duration_ms: u64::try_from(self.summary.elapsed.as_millis()).unwrap_or(u64::MAX),
        });
        tally::add_run(
            &mut checkpointing.state.totals,
            &self.summary,
            exit,
            finished_at,
        );
        if let Err(error) = checkpointing.file.save(&checkpointing.state) {
            tracing::warn!("{error}");
        }
    }
}

pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}
