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

mod config_ids;
mod delivery;
mod opening;
mod progress;
mod report;
mod tally;

use delivery::Delivery;
use opening::{Checkpointing, open_state_and_output};
use progress::ProgressLine;
use report::report_notices;

use crate::checkpoint::{RefusedConfig, RunLock, RunRecord, Seen, State, StateFile};
use crate::config::timespec::{describe, human_duration};
use crate::config::{ApiSettings, CollectSettings, OutputSettings, OutputTarget, StateSettings};
use crate::diagnostics::error_reporting::{self, Exit, Reported};
use crate::pipeline::pool::{FormatPool, default_workers};
use crate::sink::{self, Reconciled, Sink};
use crate::source::api::{ApiError, Client, Query, Request};
use crate::source::page::{Deliver, Event, Flow, PageEnd, PageError, PageReader, PageStats};
use anyhow::Context as _;
use budget::{Allowance, BudgetPool};
use config_ids::{Refusal, StreamEnd};
use plan::{
    IdPlan, Notice, PageResult, PlanSettings, Planner, Progress, join_ids, plan_config_ids,
    window_range,
};
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
    /// Config ids whose events this run fetched (at least one complete page).
    pub config_ids: Vec<u64>,
    /// Config ids the API refused this run (reported as `config_refused`).
    pub refused_config_ids: Vec<u64>,
    /// Config ids accepted again that had their share of the budget before catching up.
    pub catching_up_config_ids: Vec<u64>,
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

    /// The planner for the ids asked for together, continuing from the state (`None` for a
    /// first run); the notices are for the operator.
    fn set_planner(
        &self,
        state: Option<&State>,
        ids: &str,
        now: i64,
        replay: Option<(i64, i64)>,
    ) -> (Planner, Vec<Notice>) {
        let settings = match (self.start, replay) {
            (Start::Stateful(settings), _) => settings,
            (_, Some((from, to))) => {
                return (Planner::replay(from, to, self.collect.limit), Vec::new());
            }
            (_, None) => unreachable!("a run without state has a time range"),
        };
        // A state that has neither offset nor checkpoint never got past its first request.
        let previous = state.filter(|s| s.offset.is_some() || s.checkpoint.is_some());
        Planner::stateful(
            previous,
            &self.api.host,
            ids,
            &self.plan_settings(settings),
            now,
        )
    }

    fn plan_settings(&self, settings: &StateSettings) -> PlanSettings {
        PlanSettings {
            limit: self.collect.limit,
            initial_lookback: settings.initial_lookback,
            offset_ttl: settings.offset_ttl,
            overlap: settings.overlap,
        }
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
    let (mut checkpointing, sink, seen) = match open_state_and_output(&setup) {
        Ok(opened) => opened,
        // Stopped while a remote output was still being reached: nothing was fetched.
        Err(error) if stopped_while_waiting_on_the_output(setup.signals, &error) => {
            let signal = setup.signals.received().unwrap_or(15);
            tracing::warn!(
                code = "interrupted",
                "stopped by signal {signal} before the output answered ({}); nothing was fetched",
                error_reporting::describe_chain(&error)
            );
            return Ok(Summary {
                stopped_by: Some(StopReason::Signal(signal)),
                ..Summary::default()
            });
        }
        Err(error) => return Err(error),
    };
    let mut summary = Summary::default();
    let replay = match setup.start {
        Start::Window => Some(window_range(setup.collect.window, now)),
        Start::Replay { from, to } => Some((from, to)),
        Start::Stateful(_) => None,
    };
    let ids = plan_config_ids(
        setup.api.config_ids.ids(),
        checkpointing.as_ref().map_or(&[][..], |c| &c.state.refused),
    );
    if let Some(checkpointing) = &mut checkpointing {
        config_ids::forget_unplanned(&mut checkpointing.state, &ids);
    }
    let together = join_ids(&ids.together);
    let (planner, notices) = setup.set_planner(
        checkpointing.as_ref().map(|c| &c.state),
        &together,
        now,
        replay,
    );
    report_notices(&notices, &mut summary, None);
    let pool = FormatPool::new(setup.output, seen.identity(), default_workers())
        .context("starting the format workers")?;
    let mut collector = Collector::new(&setup, checkpointing, sink, seen, planner, pool);
    collector.summary = summary;
    collector.replay = replay;
    collector.client = setup.client.for_config_ids(&together);
    collector.ids = ids.together;
    collector.waiting_alone = ids.alone;
    // What a person watching the run sees it work through: the replay's range, or from the
    // checkpoint to what the API serves now.
    let range = replay.or_else(|| {
        collector
            .planner
            .checkpoint()
            .map(|from| (from, now - plan::SAFETY_LAG))
    });
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
    /// The API client for the ids the current stream asks for.
    client: Client,
    /// The ids the current stream asks for: the set, or one refused id tried alone.
    ids: Vec<u64>,
    /// The current stream is a refused id tried alone (its planner stands apart from the set's).
    alone: bool,
    /// Refused ids still to be tried alone this run, before the set.
    waiting_alone: Vec<RefusedConfig>,
    /// What the planner of a refused id tried alone has to say, once the API accepts it.
    held_notices: Vec<Notice>,
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
            delivery: Delivery::new(
                sink,
                seen,
                setup.collect.max_events,
                setup.collect.max_bytes,
                setup.pool.clone(),
            ),
            checkpointing,
            planner,
            retry: Retry::new(setup.collect.retry_budget),
            summary: Summary::default(),
            replay: None,
            client: setup.client.clone(),
            ids: setup.api.config_ids.ids().to_vec(),
            alone: false,
            waiting_alone: Vec::new(),
            held_notices: Vec::new(),
        }
    }

    fn finish(mut self, started: Instant) -> anyhow::Result<Summary> {
        let result = match self.streams() {
            Err(error) if stopped_while_waiting_on_the_output(self.setup.signals, &error) => {
                let signal = self.setup.signals.received().unwrap_or(15);
                tracing::warn!(
                    code = "interrupted",
                    "stopped by signal {signal} while the output was still unconfirmed ({}); \
                     what it did not confirm is sent again by the next run",
                    error_reporting::describe_chain(&error)
                );
                self.summary.stopped_by = Some(StopReason::Signal(signal));
                Ok(())
            }
            other => other,
        };
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

    /// Pages of the current stream until it is caught up, a budget or a signal stops it, or
    /// (a refused id tried alone) the API still refuses it.
    fn pages(&mut self) -> anyhow::Result<StreamEnd> {
        loop {
            if let Some(signal) = self.setup.signals.received() {
                self.summary.stopped_by = Some(StopReason::Signal(signal));
                return Ok(StreamEnd::Stopped);
            }
            if !self.delivery.has_allowance() {
                self.summary.stopped_by = Some(StopReason::MaxEvents);
                return Ok(StreamEnd::Stopped);
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
                    self.fetched_from_stream();
                    if progress == Progress::CaughtUp {
                        return Ok(StreamEnd::CaughtUp);
                    }
                }
                Ok(PageEnd::Stopped) => {
                    self.commit(false)?;
                    self.summary.stopped_by = self.delivery.budget_hit;
                    return Ok(StreamEnd::Stopped);
                }
                Err(PageError::Interrupted) => {
                    self.commit(false)?;
                    let signal = self.setup.signals.received().unwrap_or(15);
                    self.summary.stopped_by = Some(StopReason::Signal(signal));
                    return Ok(StreamEnd::Stopped);
                }
                Err(PageError::Handler(error)) => {
                    // The output failed: keep what is known to be delivered, then stop.
                    let _ = self.commit(false);
                    return Err(error);
                }
                Err(PageError::Api(error)) => {
                    self.commit(false)?;
                    match self.refused(error)? {
                        Refusal::Ended(end) => return Ok(end),
                        Refusal::Isolated => {}
                        Refusal::Fatal(error) => self.recover(error, &request)?,
                    }
                }
            }
        }
    }

    /// Send the request and read the page. `Err(Cut)` when the 200 response ended early.
    fn fetch(&mut self, request: &Request, stats: &mut PageStats) -> Result<PageEnd, Failed> {
        self.delivery.page_max_start = None;
        let path = self.client.path_and_query(request);
        tracing::debug!("GET {path}");
        let body = self
            .open_page(&self.client, request)
            .map_err(Failed::Before)?;
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
    fn open_page(
        &self,
        client: &Client,
        request: &Request,
    ) -> Result<crate::source::api::PageBody, PageError> {
        let client = client.clone();
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
                self.report(&notices);
                Ok(())
            }
            ApiError::BadRequest { .. } if matches!(request.query, Query::Time { .. }) => {
                match self.planner.rejected_from(now) {
                    Some(notices) => {
                        tracing::warn!(
                            code = "recovering",
                            "the API refused `from` as too old ({error}); retrying closer to now"
                        );
                        self.report(&notices);
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
        if self.alone {
            // A refused id tried alone has its own checkpoint; the set's state is not its.
            if page_complete {
                config_ids::record_alone_checkpoint(state, &self.ids, self.planner.checkpoint());
            }
        } else if page_complete || state.checkpoint.is_none() {
            // A first run cut short must still remember where its time window began.
            state.checkpoint = self.planner.checkpoint();
        }
        if page_complete && !self.alone {
            if let Some((offset, obtained)) = self.planner.offset() {
                state.offset = Some(offset.to_string());
                state.offset_obtained_at = obtained;
            }
            state.host = self.setup.api.host.clone();
            state.config_ids = self.client.config_ids().to_string();
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

/// A remote output gives up its wait (a retry, an unanswered request) when SIGTERM/SIGINT
/// arrives: that is the stop the scheduler asked for, not an output failure, so the run exits
/// with the signal's code. Nothing unconfirmed was committed.
fn stopped_while_waiting_on_the_output(signals: &Signals, error: &anyhow::Error) -> bool {
    signals.received().is_some()
        && error.chain().any(|cause| {
            let interrupted = |e: &std::io::Error| e.kind() == std::io::ErrorKind::Interrupted;
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(interrupted)
                || matches!(
                    cause.downcast_ref::<crate::sink::OutputError>(),
                    Some(crate::sink::OutputError::Write { source, .. }) if interrupted(source)
                )
        })
}

pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}
