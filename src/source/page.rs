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

use crate::checkpoint::event_hash;
use crate::config::OutputSettings;
use crate::pipeline::event::Value;
use crate::pipeline::format::{Formatted, Formatter};
use crate::source::api::{ApiError, PageBody};
use crate::source::lines::{ChunkSource, Line, Lines};
use crate::source::shrink::Shrunk;
use crate::source::spool::{self, Failure};
use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const READ_SIZE: usize = 64 * 1024;
/// Lines are handed to the workers in batches of about this many bytes.
const BATCH_BYTES: usize = 128 * 1024;
/// …or this many lines, whichever comes first (a body of empty lines has no bytes to count).
const BATCH_LINES: usize = 4096;
/// Batches sent but not yet taken back, per worker: bounds memory, keeps workers busy.
const IN_FLIGHT_PER_WORKER: usize = 2;

/// The context line: `{"total":N,"offset":"…","limit":L}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub total: Option<u64>,
    pub offset: String,
    /// Present only when the page was cut at the requested limit.
    pub limit: Option<u64>,
}

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
    pub hash: u64,
    /// `httpMessage.start`, when the event has one.
    pub start: Option<f64>,
    /// The output line (without newline).
    pub line: &'a [u8],
    pub formatted: Formatted,
}

/// What happens to each event of the page, in order.
pub trait Deliver {
    fn event(&mut self, event: Event<'_>) -> anyhow::Result<Flow>;
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
            .spawn(move || pump(body, producer))
            .map_err(|e| {
                PageError::Handler(anyhow::anyhow!("cannot start the reader thread: {e}"))
            })?;
        let result = self.read_lines(Lines::new(consumer, self.max_line), stats, pool, deliver);
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
            if window_full || (ended.is_some() && !in_flight.workers.is_empty()) {
                match in_flight.take_next(&self.stop) {
                    Ok(batch) => match page.apply(batch, stats, deliver) {
                        Ok(true) => continue,
                        Ok(false) => break Ok(()),
                        Err(error) => break Err(error),
                    },
                    Err(error) => break Err(error),
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
                next_worker = (next_worker + 1) % pool.workers.len();
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

/// One line of a batch, by position in the batch's bytes.
enum Item {
    Line {
        range: Range<usize>,
        terminated: bool,
    },
    Oversized {
        shrunk: Shrunk,
        terminated: bool,
    },
}

#[derive(Default)]
struct LineBatch {
    data: Vec<u8>,
    items: Vec<Item>,
}

/// Lines up to about `BATCH_BYTES`, and how the stream ended if it did.
fn next_batch<S>(
    lines: &mut Lines<S>,
    stats: &mut PageStats,
) -> (LineBatch, Option<Result<(), Failure>>)
where
    S: ChunkSource<Error = Failure>,
{
    let mut batch = LineBatch {
        data: Vec::with_capacity(BATCH_BYTES + 4096),
        items: Vec::new(),
    };
    // Shrunk oversized lines count too, so a batch of them stays about BATCH_BYTES.
    let mut shrunk_bytes = 0;
    while batch.data.len() + shrunk_bytes < BATCH_BYTES && batch.items.len() < BATCH_LINES {
        let (bytes, terminated) = match lines.next_line() {
            Ok(Some(Line::Complete(bytes))) => (bytes, true),
            Ok(Some(Line::Unterminated(bytes))) => (bytes, false),
            Ok(Some(Line::Oversized { shrunk, terminated })) => {
                stats.bytes += shrunk.length as u64 + u64::from(terminated);
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

/// What a worker made of one line.
enum Record {
    Event {
        hash: u64,
        start: Option<f64>,
        output: Range<usize>,
        formatted: Formatted,
    },
    Context(Result<Context, String>),
    /// Not a JSON object; its first bytes.
    Bad(Vec<u8>),
    Oversized {
        length: usize,
        start: Vec<u8>,
    },
    /// The unterminated end of the body that is not JSON: the response was cut.
    CutTail,
}

struct FormattedBatch {
    output: Vec<u8>,
    records: Vec<Record>,
}

fn format_batch(formatter: &mut Formatter, batch: LineBatch) -> FormattedBatch {
    let mut output = Vec::with_capacity(batch.data.len());
    let mut records = Vec::with_capacity(batch.items.len());
    for item in batch.items {
        let (range, terminated) = match item {
            Item::Line { range, terminated } => (range, terminated),
            Item::Oversized { shrunk, terminated } => {
                let record = match oversized_event(&shrunk) {
                    Some((json, value)) => {
                        let start = event_start(&value);
                        let begin = output.len();
                        let mut formatted = formatter.write(json, value, &mut output);
                        formatted.shrunk = true;
                        Record::Event {
                            hash: shrunk.hash,
                            start,
                            output: begin..output.len(),
                            formatted,
                        }
                    }
                    None if !terminated => Record::CutTail,
                    None => Record::Oversized {
                        length: shrunk.length,
                        start: shrunk.start.clone(),
                    },
                };
                records.push(record);
                continue;
            }
        };
        let bytes = &batch.data[range];
        let raw = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = match crate::pipeline::format::parse_event(raw) {
            Ok(value) => match parse_context(&value) {
                Some(context) => Record::Context(context),
                None if matches!(value, Value::Object(_)) => {
                    let hash = event_hash(raw);
                    let start = event_start(&value);
                    let begin = output.len();
                    let formatted = formatter.write(raw, value, &mut output);
                    Record::Event {
                        hash,
                        start,
                        output: begin..output.len(),
                        formatted,
                    }
                }
                None => Record::Bad(raw[..raw.len().min(80)].to_vec()),
            },
            Err(_) if !terminated => Record::CutTail,
            Err(_) => Record::Bad(raw[..raw.len().min(80)].to_vec()),
        };
        records.push(record);
    }
    FormattedBatch { output, records }
}

/// The event an oversized line was shrunk to, with the JSON it is parsed from; `None` when the
/// line was not a JSON event (its hash is still the raw line's: `shrunk.hash`).
pub fn oversized_event(shrunk: &Shrunk) -> Option<(&[u8], Value<'_>)> {
    let json = shrunk.json.as_deref()?;
    match crate::pipeline::format::parse_event(json) {
        Ok(value @ Value::Object(_)) if parse_context(&value).is_none() => Some((json, value)),
        _ => None,
    }
}

fn event_start(event: &Value<'_>) -> Option<f64> {
    match event.pointer(&["httpMessage", "start"])? {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_f64(),
        _ => None,
    }
    .filter(|start: &f64| start.is_finite())
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
        for record in batch.records {
            if self.context.is_some() {
                return Err(PageError::Api(ApiError::Malformed(
                    "data follows the context line, which must be the last line".into(),
                )));
            }
            match record {
                Record::Event {
                    hash,
                    start,
                    output,
                    formatted,
                } => {
                    stats.events += 1;
                    let event = Event {
                        hash,
                        start,
                        line: &batch.output[output],
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

/// Format workers, each with its own formatter (and decoder scratch space), for a whole run.
pub struct FormatPool {
    workers: Vec<Worker>,
}

struct Worker {
    jobs: Option<SyncSender<LineBatch>>,
    results: Receiver<FormattedBatch>,
    handle: Option<JoinHandle<()>>,
}

/// Two workers: the machines this runs on have at least two cores, and the calling thread's
/// share (splitting, decisions, writes) is small.
pub const DEFAULT_WORKERS: usize = 2;

impl FormatPool {
    pub fn new(output: &OutputSettings, workers: usize) -> std::io::Result<FormatPool> {
        let mut pool = FormatPool {
            workers: Vec::new(),
        };
        for index in 0..workers.max(1) {
            let (jobs, job_queue) = sync_channel::<LineBatch>(IN_FLIGHT_PER_WORKER);
            let (done, results) = sync_channel(IN_FLIGHT_PER_WORKER);
            let mut formatter = Formatter::new(output);
            let handle = thread::Builder::new()
                .name(format!("format-{index}"))
                .spawn(move || {
                    for batch in job_queue {
                        if done.send(format_batch(&mut formatter, batch)).is_err() {
                            return;
                        }
                    }
                })?;
            pool.workers.push(Worker {
                jobs: Some(jobs),
                results,
                handle: Some(handle),
            });
        }
        Ok(pool)
    }

    fn capacity(&self) -> usize {
        self.workers.len() * IN_FLIGHT_PER_WORKER
    }

    fn send(&self, worker: usize, batch: LineBatch) -> Result<(), PageError> {
        self.workers[worker]
            .jobs
            .as_ref()
            .expect("jobs close only on drop")
            .send(batch)
            .map_err(|_| {
                PageError::Handler(anyhow::anyhow!("a format worker stopped unexpectedly"))
            })
    }
}

impl Drop for FormatPool {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            worker.jobs.take();
        }
        for worker in &mut self.workers {
            // Take whatever it still hands over until it hangs up, so it never blocks on a full
            // channel while being joined.
            while worker.results.recv().is_ok() {}
            if let Some(handle) = worker.handle.take() {
                let _ = handle.join();
            }
        }
    }
}

/// Batches sent and not yet taken back, oldest first (by the worker that has each).
struct InFlight<'p> {
    pool: &'p FormatPool,
    workers: VecDeque<usize>,
}

impl InFlight<'_> {
    /// The oldest batch's result; waits, but notices a stop signal.
    fn take_next(&mut self, stop: &AtomicBool) -> Result<FormattedBatch, PageError> {
        let worker = *self.workers.front().expect("called with batches in flight");
        loop {
            match self.pool.workers[worker]
                .results
                .recv_timeout(Duration::from_millis(100))
            {
                Ok(batch) => {
                    self.workers.pop_front();
                    return Ok(batch);
                }
                Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => continue,
                Err(RecvTimeoutError::Timeout) => return Err(PageError::Interrupted),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(PageError::Handler(anyhow::anyhow!(
                        "a format worker stopped unexpectedly"
                    )));
                }
            }
        }
    }

    /// Take back and drop every result still on its way, so none leaks into the next page.
    fn discard(&mut self) {
        while let Some(worker) = self.workers.pop_front() {
            let _ = self.pool.workers[worker].results.recv();
        }
    }
}

fn pump(mut body: PageBody, producer: spool::Producer) {
    let mut buffer = vec![0u8; READ_SIZE];
    loop {
        match body.read(&mut buffer) {
            Ok(0) => return producer.finish(Ok(())),
            Ok(n) => {
                if producer.push(buffer[..n].to_vec()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return producer.finish(Err(body.network_error(&e))),
        }
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

/// `Some` when the line is a context line (an object with `offset` or `total` and none of an
/// event's keys); parsed, never string-matched, since spacing and key order vary.
pub fn parse_context(value: &Value<'_>) -> Option<Result<Context, String>> {
    let Value::Object(_) = value else {
        return None;
    };
    let is_event = ["type", "attackData", "httpMessage"]
        .iter()
        .any(|key| value.get(key).is_some());
    if is_event || (value.get("offset").is_none() && value.get("total").is_none()) {
        return None;
    }
    let number = |key: &str| -> Result<Option<u64>, String> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("the context line's {key} is not a count")),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| format!("the context line's {key} is not a count")),
            Some(_) => Err(format!("the context line's {key} is not a count")),
        }
    };
    let offset = match value.get("offset").and_then(Value::as_str) {
        Some(offset) if !offset.is_empty() => offset.to_string(),
        _ => return Some(Err("the context line carries no offset".into())),
    };
    Some((|| {
        Ok(Context {
            total: number("total")?,
            offset,
            limit: number("limit")?,
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, OutputTarget};

    struct Chunks(std::vec::IntoIter<Vec<u8>>, Option<Failure>);

    impl ChunkSource for Chunks {
        type Error = Failure;
        fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Failure> {
            match self.0.next() {
                Some(chunk) => Ok(Some(chunk)),
                None => match self.1.take() {
                    Some(failure) => Err(failure),
                    None => Ok(None),
                },
            }
        }
    }

    impl SpillCounter for Chunks {}

    /// Collects the raw lines (the pool formats as `raw`), stopping after `stop_after`.
    struct Collect {
        events: Vec<String>,
        stop_after: Option<usize>,
    }

    impl Deliver for Collect {
        fn event(&mut self, event: Event<'_>) -> anyhow::Result<Flow> {
            self.events
                .push(String::from_utf8(event.line.to_vec()).unwrap());
            Ok(match self.stop_after {
                Some(n) if self.events.len() >= n => Flow::Stop,
                _ => Flow::Continue,
            })
        }
    }

    fn reader() -> PageReader {
        PageReader {
            memory_limit: 1024,
            spill_dir: None,
            max_line: 1024,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn raw_pool() -> FormatPool {
        let output = OutputSettings {
            target: OutputTarget::Stdout,
            format: Format::Raw,
            max_line_bytes: 60_000,
        };
        FormatPool::new(&output, DEFAULT_WORKERS).unwrap()
    }

    fn read(
        body: &str,
        stop_after: Option<usize>,
    ) -> (Result<PageEnd, PageError>, PageStats, Vec<String>) {
        read_chunks(vec![body.as_bytes().to_vec()], None, stop_after)
    }

    fn read_chunks(
        chunks: Vec<Vec<u8>>,
        failure: Option<Failure>,
        stop_after: Option<usize>,
    ) -> (Result<PageEnd, PageError>, PageStats, Vec<String>) {
        let mut stats = PageStats::default();
        let mut collect = Collect {
            events: Vec::new(),
            stop_after,
        };
        let lines = Lines::new(Chunks(chunks.into_iter(), failure), 1024);
        let result = reader().read_lines(lines, &mut stats, &raw_pool(), &mut collect);
        (result, stats, collect.events)
    }

    const E1: &str = r#"{"type":"akamai_siem","httpMessage":{"requestId":"1"}}"#;
    const E2: &str = r#"{"type":"akamai_siem","httpMessage":{"requestId":"2"}}"#;

    #[test]
    fn a_complete_page_ends_with_its_context() {
        let body = format!("{E1}\r\n\n{E2}\n{{ \"total\": 2, \"offset\":\"a;b\", \"limit\":2 }}");
        let (result, stats, events) = read(&body, None);
        let Ok(PageEnd::Complete(context)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            context,
            Context {
                total: Some(2),
                offset: "a;b".into(),
                limit: Some(2)
            }
        );
        assert_eq!(events, vec![E1, E2]);
        assert_eq!(stats.events, 2);
        assert_eq!(stats.bytes, body.len() as u64);
    }

    #[test]
    fn an_empty_page_has_only_its_context() {
        let (result, _, events) = read("{ \"total\": 0, \"offset\":\"318d8\" }\n", None);
        assert!(matches!(
            result,
            Ok(PageEnd::Complete(Context {
                total: Some(0),
                limit: None,
                ..
            }))
        ));
        assert!(events.is_empty());
    }

    #[test]
    fn no_context_line_is_a_truncation() {
        let (result, _, events) = read(&format!("{E1}\n{E2}\n"), None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Truncated { events: 2 }))
        ));
        assert_eq!(
            events.len(),
            2,
            "complete events before the cut still go out"
        );
    }

    #[test]
    fn a_body_cut_mid_line_is_a_truncation_not_a_bad_line() {
        let (result, stats, events) =
            read(&format!("{E1}\n{{\"type\":\"akamai_siem\",\"htt"), None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Truncated { events: 1 }))
        ));
        assert_eq!(stats.bad_lines, 0);
        assert_eq!(events, vec![E1]);
    }

    #[test]
    fn a_final_event_without_newline_and_no_context_is_a_truncation() {
        let (result, _, events) = read(&format!("{E1}\n{E2}"), None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Truncated { events: 2 }))
        ));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn bad_lines_are_counted_and_the_rest_delivered() {
        let body = format!(
            "{E1}\nnot json \u{1b}[31m at all\n[1,2]\n{E2}\n{{\"total\":4,\"offset\":\"x\"}}\n"
        );
        let (result, stats, events) = read(&body, None);
        assert!(matches!(result, Ok(PageEnd::Complete(_))));
        assert_eq!(events, vec![E1, E2]);
        assert_eq!(stats.bad_lines, 2);
        assert_eq!(
            stats.first_bad_line.as_deref(),
            Some("not json .[31m at all")
        );
    }

    #[test]
    fn data_after_the_context_line_is_refused() {
        let body = format!("{E1}\n{{\"total\":1,\"offset\":\"x\"}}\n{E2}\n");
        let (result, _, _) = read(&body, None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Malformed(_)))
        ));
    }

    #[test]
    fn a_context_without_offset_is_refused() {
        let (result, _, _) = read("{\"total\":0}\n", None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Malformed(_)))
        ));
    }

    #[test]
    fn the_receiver_can_stop_the_page() {
        let body = format!("{E1}\n{E2}\n{{\"total\":2,\"offset\":\"x\"}}\n");
        let (result, _, events) = read(&body, Some(1));
        assert!(matches!(result, Ok(PageEnd::Stopped)));
        assert_eq!(events, vec![E1]);
    }

    #[test]
    fn a_network_failure_after_some_events_is_reported_after_them() {
        let chunks = vec![format!("{E1}\n").into_bytes()];
        let (result, _, events) = read_chunks(
            chunks,
            Some(Failure::Source(ApiError::Network {
                host: "h".into(),
                message: "connection reset".into(),
            })),
            None,
        );
        assert!(
            matches!(result, Err(PageError::Api(ApiError::Network { .. }))),
            "{result:?}"
        );
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_stop_signal_interrupts_the_page() {
        let reader = reader();
        reader.stop.store(true, Ordering::Relaxed);
        let lines = Lines::new(
            Chunks(vec![format!("{E1}\n").into_bytes()].into_iter(), None),
            1024,
        );
        let mut collect = Collect {
            events: Vec::new(),
            stop_after: None,
        };
        let result = reader.read_lines(lines, &mut PageStats::default(), &raw_pool(), &mut collect);
        assert!(matches!(result, Err(PageError::Interrupted)));
    }

    #[test]
    fn many_batches_across_workers_keep_their_order() {
        let mut body = String::new();
        let count = 20_000;
        for i in 0..count {
            body.push_str(&format!(
                "{{\"type\":\"akamai_siem\",\"httpMessage\":{{\"requestId\":\"{i}\"}}}}\n"
            ));
        }
        body.push_str(&format!("{{\"total\":{count},\"offset\":\"x\"}}\n"));
        // Uneven chunks, so lines straddle chunk and batch boundaries.
        let chunks: Vec<Vec<u8>> = body.as_bytes().chunks(7_777).map(<[u8]>::to_vec).collect();
        let (result, stats, events) = read_chunks(chunks, None, None);
        assert!(matches!(result, Ok(PageEnd::Complete(_))), "{result:?}");
        assert_eq!(stats.events, count);
        for (i, line) in events.iter().enumerate() {
            assert!(
                line.contains(&format!("\"requestId\":\"{i}\"")),
                "position {i}: {line}"
            );
        }
    }

    #[test]
    fn a_pool_serves_page_after_page_without_leaking_results() {
        let pool = raw_pool();
        for page in 0..3 {
            let mut body = String::new();
            for i in 0..5_000 {
                body.push_str(&format!(
                    "{{\"type\":\"akamai_siem\",\"httpMessage\":{{\"requestId\":\"{page}-{i}\"}}}}\n"
                ));
            }
            body.push_str("{\"total\":5000,\"offset\":\"x\"}\n");
            let mut collect = Collect {
                events: Vec::new(),
                // Stop early on the first page: its in-flight batches must not reach page two.
                stop_after: (page == 0).then_some(10),
            };
            let lines = Lines::new(Chunks(vec![body.into_bytes()].into_iter(), None), 1024);
            let result = reader().read_lines(lines, &mut PageStats::default(), &pool, &mut collect);
            if page == 0 {
                assert!(matches!(result, Ok(PageEnd::Stopped)));
                assert_eq!(collect.events.len(), 10);
            } else {
                assert!(matches!(result, Ok(PageEnd::Complete(_))));
                assert_eq!(collect.events.len(), 5_000);
                assert!(
                    collect
                        .events
                        .iter()
                        .all(|l| l.contains(&format!("\"{page}-")))
                );
            }
        }
    }
}
