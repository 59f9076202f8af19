//! Reading one response page: events in order, then the context line that proves it complete.
//!
//! Three kinds of thread share the work. The body is read on its own thread into the spool, so
//! the socket never waits for the output. The calling thread splits lines into batches and sends
//! them round-robin to format workers, which do everything that needs no shared state (parse,
//! identity hash, decode, Wazuh shaping). The calling thread takes the results back in batch
//! order and makes every decision itself: context line, duplicates, budgets, writes. So order and
//! the commit rules are exactly those of a single thread; only the pure work runs in parallel.
//!
//! A page is complete only when its last non-empty line is a context line (API doc §3); anything
//! else is a truncated page, never a success. A line that is not JSON is reported and skipped,
//! the page's other events still go out; but a broken final fragment is how a cut response ends,
//! so it is a truncation, not a bad line.

use crate::pipeline::classify::Context;
use crate::pipeline::format::Formatted;
use crate::pipeline::pool::{
    FormatPool, FormattedBatch, InFlight, Item, LineBatch, PoolError, Record,
};
use crate::source::api::{ApiError, PageBody};
use crate::source::lines::{ChunkSource, Line, Lines};
use crate::source::spool::{self, Failure};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

/// Lines are handed to the workers in batches of about this many bytes. Measured on the
/// benchmark's 600,000-event page against 128 KiB: 3% less CPU and 7% less wall time (fewer
/// hand-offs and wake-ups per event); 512 KiB was slower again, and costs memory per batch.
const BATCH_BYTES: usize = 256 * 1024;
/// …or this many lines, whichever comes first (a body of empty lines has no bytes to count).
const BATCH_LINES: usize = 4096;

/// Whether the receiver of events wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// A budget is spent: stop reading this page.
    Stop,
}

/// One event, formatted, in page order.
pub struct Event<'a> {
    /// Identity of the raw line, for dropping replays.
    pub hash: crate::checkpoint::EventHash,
    /// `httpMessage.start`, when the event has one.
    pub start: Option<f64>,
    /// The output line (without newline).
    pub line: &'a [u8],
    /// Where `line` starts in its batch's output (see [`Deliver::end_of_batch`]).
    pub at: usize,
    pub formatted: Formatted,
}

/// What happens to each event of the page, in order.
pub trait Deliver {
    fn event(&mut self, event: Event<'_>) -> anyhow::Result<Flow>;
    /// The events of one batch were all handed over, or the page stopped among them. `output`
    /// holds their lines, each at its [`Event::at`] and followed by `\n`: a receiver that kept
    /// adjacent events can write them from here as they are, without copying them first.
    fn end_of_batch(&mut self, _output: &[u8]) -> anyhow::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageStats {
    /// Event lines seen (including ones the receiver dropped as duplicates).
    pub events: u64,
    pub bad_lines: u64,
    /// The start of the first bad line, for the report (printable ASCII only).
    pub first_bad_line: Option<String>,
    /// Response body bytes read.
    pub bytes: u64,
    /// Bytes that had to go through the spool file because the output was slower.
    pub spilled_bytes: u64,
}

#[derive(Debug)]
pub enum PageEnd {
    Complete(Context),
    /// The receiver said stop (a budget).
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("interrupted by a signal")]
    Interrupted,
    #[error(transparent)]
    Handler(anyhow::Error),
}

impl From<PoolError> for PageError {
    fn from(error: PoolError) -> PageError {
        match error {
            PoolError::Interrupted => PageError::Interrupted,
            PoolError::WorkerGone => PageError::Handler(anyhow::Error::new(error)),
        }
    }
}

impl From<Failure> for PageError {
    fn from(failure: Failure) -> PageError {
        match failure {
            Failure::Source(error) => PageError::Api(error),
            // A local disk error: the run stops (like an output failure), it is not retried.
            Failure::Spool(error) => PageError::Handler(anyhow::Error::new(error)),
            Failure::Stopped => PageError::Interrupted,
        }
    }
}

pub struct PageReader {
    pub memory_limit: usize,
    pub spill_dir: Option<PathBuf>,
    pub max_line: usize,
    pub stop: Arc<AtomicBool>,
}

impl PageReader {
    /// Read `body` to its end, handing each event to `deliver` in order.
    pub fn read(
        &self,
        body: PageBody,
        stats: &mut PageStats,
        pool: &FormatPool,
        deliver: &mut impl Deliver,
    ) -> Result<PageEnd, PageError> {
        let (producer, consumer) = spool::channel(self.memory_limit, self.spill_dir.clone());
        let consumer = consumer.with_stop_flag(Arc::clone(&self.stop));
        let reader = thread::Builder::new()
            .name("response-reader".into())
            .spawn(move || spool::pump(body, producer))
            .map_err(|e| {
                PageError::Handler(anyhow::anyhow!("cannot start the reader thread: {e}"))
            })?;
        let result = self.read_lines(
            Lines::new(consumer, self.max_line, pool.identity()),
            stats,
            pool,
            deliver,
        );
        // On success the reader has finished; otherwise it stops at its next push (the consumer
        // is gone) and is not waited for: it may be stuck on a silent socket.
        if matches!(result, Ok(PageEnd::Complete(_))) {
            let _ = reader.join();
        }
        result
    }

    /// The line loop, separate from the network so tests can feed it any bytes.
    pub fn read_lines<S>(
        &self,
        mut lines: Lines<S>,
        stats: &mut PageStats,
        pool: &FormatPool,
        deliver: &mut impl Deliver,
    ) -> Result<PageEnd, PageError>
    where
        S: ChunkSource<Error = Failure> + SpillCounter,
    {
        let mut page = PageState::default();
        let mut in_flight = InFlight {
            pool,
            workers: VecDeque::new(),
        };
        let mut next_worker = 0;
        let mut ended: Option<Result<(), Failure>> = None;
        let outcome = loop {
            if self.stop.load(Ordering::Relaxed) {
                break Err(PageError::Interrupted);
            }
            let window_full = in_flight.workers.len() >= pool.capacity();
            // Results are taken as soon as they are ready, not only once the window is full:
            // on a page that trickles in, a full window is many batches late.
            let taken = if window_full || (ended.is_some() && !in_flight.workers.is_empty()) {
                Some(in_flight.take_next(&self.stop))
            } else {
                in_flight.try_take_next().transpose()
            };
            if let Some(taken) = taken {
                match taken {
                    Ok(mut batch) => {
                        for chunk in batch.spent.drain(..) {
                            lines.recycle(chunk);
                        }
                        match page.apply(batch, stats, deliver) {
                            Ok(true) => continue,
                            Ok(false) => break Ok(()),
                            Err(error) => break Err(error),
                        }
                    }
                    Err(error) => break Err(error.into()),
                }
            }
            // Reached only once every batch in flight is taken back.
            match ended.take() {
                Some(Ok(())) => break Ok(()),
                Some(Err(failure)) => break Err(PageError::from(failure)),
                None => {}
            }
            let (batch, end) = next_batch(&mut lines, stats);
            if !batch.items.is_empty() {
                pool.send(next_worker, batch)?;
                in_flight.workers.push_back(next_worker);
                next_worker = (next_worker + 1) % pool.workers();
            }
            if let Some(end) = end {
                ended = Some(end);
            }
        };
        // Whatever ended the loop, results still on their way belong to this page.
        in_flight.discard();
        stats.spilled_bytes = lines.source().spilled();
        outcome?;
        if page.stopped {
            return Ok(PageEnd::Stopped);
        }
        if self.stop.load(Ordering::Relaxed) && page.context.is_none() {
            return Err(PageError::Interrupted);
        }
        match page.context {
            Some(context) => {
                if let Some(total) = context.total
                    && total != stats.events + stats.bad_lines
                {
                    tracing::warn!(
                        "the page announced {total} events but carried {} (and {} bad lines)",
                        stats.events,
                        stats.bad_lines
                    );
                }
                Ok(PageEnd::Complete(context))
            }
            None => Err(PageError::Api(ApiError::Truncated {
                events: stats.events,
            })),
        }
    }
}

/// How much of the stream went through a spool file (zero for plain readers).
pub trait SpillCounter {
    fn spilled(&self) -> u64 {
        0
    }
}

impl SpillCounter for spool::Consumer {
    fn spilled(&self) -> u64 {
        self.spilled_bytes()
    }
}

/// Lines up to about `BATCH_BYTES`, and how the stream ended if it did.
pub(crate) fn next_batch<S>(
    lines: &mut Lines<S>,
    stats: &mut PageStats,
) -> (LineBatch, Option<Result<(), Failure>>)
where
    S: ChunkSource<Error = Failure>,
{
    let mut batch = LineBatch {
        max_line: lines.max_line(),
        ..LineBatch::default()
    };
    // Shrunk oversized lines count too, so a batch of them stays about BATCH_BYTES.
    let mut shrunk_bytes = 0;
    let mut whole_bytes = 0;
    while batch.data.len() + whole_bytes + shrunk_bytes < BATCH_BYTES
        && batch.items.len() < BATCH_LINES
    {
        // Most of the body goes as the reader's own chunks; only lines that straddle two are
        // copied (below).
        if let Some((chunk, range)) = lines.take_whole_lines() {
            stats.bytes += range.len() as u64;
            whole_bytes += range.len();
            batch.items.push(Item::Whole {
                chunk: batch.chunks.len(),
                range,
            });
            batch.chunks.push(chunk);
            continue;
        }
        let (bytes, terminated) = match lines.next_line() {
            Ok(Some(Line::Complete(bytes))) => (bytes, true),
            Ok(Some(Line::Unterminated(bytes))) => (bytes, false),
            Ok(Some(Line::Oversized { shrunk, terminated })) => {
                stats.bytes +=
                    shrunk.length as u64 + u64::from(shrunk.ended_in_cr) + u64::from(terminated);
                shrunk_bytes += shrunk.json.as_ref().map_or(0, Vec::len);
                batch.items.push(Item::Oversized { shrunk, terminated });
                continue;
            }
            Ok(None) => return (batch, Some(Ok(()))),
            Err(failure) => return (batch, Some(Err(failure))),
        };
        stats.bytes += bytes.len() as u64 + u64::from(terminated);
        let start = batch.data.len();
        batch.data.extend_from_slice(bytes);
        batch.items.push(Item::Line {
            range: start..batch.data.len(),
            terminated,
        });
    }
    (batch, None)
}

/// The decisions, made in page order on the calling thread.
#[derive(Default)]
struct PageState {
    context: Option<Context>,
    stopped: bool,
}

impl PageState {
    /// `Ok(true)` to go on, `Ok(false)` when the page ended early (the receiver stopped, or the
    /// body was cut mid-line).
    fn apply(
        &mut self,
        batch: FormattedBatch,
        stats: &mut PageStats,
        deliver: &mut impl Deliver,
    ) -> Result<bool, PageError> {
        let applied = self.apply_records(batch.records, &batch.output, stats, deliver);
        // However the batch ended, what the receiver kept of it goes out.
        let ended = deliver.end_of_batch(&batch.output);
        let go_on = applied?;
        ended.map_err(PageError::Handler)?;
        Ok(go_on)
    }

    fn apply_records(
        &mut self,
        records: Vec<Record>,
        output: &[u8],
        stats: &mut PageStats,
        deliver: &mut impl Deliver,
    ) -> Result<bool, PageError> {
        for record in records {
            if self.context.is_some() {
                return Err(PageError::Api(ApiError::Malformed(
                    "data follows the context line, which must be the last line".into(),
                )));
            }
            match record {
                Record::Event {
                    hash,
                    start,
                    output: line,
                    formatted,
                } => {
                    stats.events += 1;
                    let event = Event {
                        hash,
                        start,
                        at: line.start,
                        line: &output[line],
                        formatted,
                    };
                    match deliver.event(event) {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Stop) => {
                            self.stopped = true;
                            return Ok(false);
                        }
                        Err(error) => return Err(PageError::Handler(error)),
                    }
                }
                Record::Context(Ok(context)) => self.context = Some(context),
                Record::Context(Err(problem)) => {
                    return Err(PageError::Api(ApiError::Malformed(problem)));
                }
                Record::Bad(start) => note_bad_line(stats, &start),
                Record::Oversized { length, start } => {
                    note_bad_line(stats, &start);
                    tracing::error!(
                        code = "bad_line",
                        "a response line of {length} bytes, too long to hold, is not a JSON \
                         event: skipped"
                    );
                }
                Record::CutTail => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// Count a line that is not a JSON event, keeping the first one's start for the report.
pub fn note_bad_line(stats: &mut PageStats, line: &[u8]) {
    stats.bad_lines += 1;
    if stats.first_bad_line.is_none() {
        // Bytes, not text: show printable ASCII only, so nothing odd reaches a terminal or log.
        let start: String = line
            .iter()
            .take(80)
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        stats.first_bad_line = Some(start);
    }
}

#[cfg(test)]
mod tests;
