//! The format workers: batches of raw lines in, formatted lines and what each line was out.
//!
//! Everything that needs no shared state runs here, in parallel (classify and parse, identity
//! hash, decode, shape); the caller takes the results back in batch order and makes every
//! decision itself, so order and the commit rules stay those of a single thread.

use crate::checkpoint::{EventHash, Identity};
use crate::config::OutputSettings;
use crate::pipeline::classify::{Context, LineKind, classify_line, event_start, oversized_event};
use crate::pipeline::format::{Formatted, Formatter};
use crate::pipeline::shrink::{Shrinker, Shrunk};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Why the pool could not hand a result back.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("a format worker stopped unexpectedly")]
    WorkerGone,
    #[error("interrupted by a signal")]
    Interrupted,
}

/// Batches sent but not yet taken back, per worker: bounds memory, keeps workers busy.
const IN_FLIGHT_PER_WORKER: usize = 2;

/// One line of a batch, or a run of them.
pub(crate) enum Item {
    /// A line copied into the batch's `data` (it straddled two chunks of the body).
    Line {
        range: Range<usize>,
        terminated: bool,
    },
    Oversized {
        shrunk: Shrunk,
        terminated: bool,
    },
    /// Whole lines (each ending in `\n`) of one of the batch's `chunks`, split by the worker.
    Whole {
        chunk: usize,
        range: Range<usize>,
    },
}

#[derive(Default)]
pub(crate) struct LineBatch {
    pub(crate) data: Vec<u8>,
    /// Chunks of the body as the reader filled them, for [`Item::Whole`]; they come back in
    /// [`FormattedBatch::spent`] to be filled again.
    pub(crate) chunks: Vec<Vec<u8>>,
    pub(crate) items: Vec<Item>,
    /// A line of [`Item::Whole`] longer than this is shrunk, as the splitter shrinks the others.
    pub(crate) max_line: usize,
}

impl LineBatch {
    /// Bytes of lines held (copied or in chunks), shrunk ones not counted.
    pub(crate) fn line_bytes(&self) -> usize {
        self.data.len()
            + self
                .items
                .iter()
                .map(|item| match item {
                    Item::Whole { range, .. } => range.len(),
                    _ => 0,
                })
                .sum::<usize>()
    }
}

/// What a worker made of one line.
pub(crate) enum Record {
    Event {
        hash: EventHash,
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

pub(crate) struct FormattedBatch {
    /// The events' output lines in batch order, each followed by `\n` (which their ranges
    /// leave out): a run of kept events is whole lines that can be written as they are.
    pub(crate) output: Vec<u8>,
    pub(crate) records: Vec<Record>,
    /// The batch's chunks, done with.
    pub(crate) spent: Vec<Vec<u8>>,
}

fn format_batch(
    formatter: &mut Formatter,
    identity: &Identity,
    batch: LineBatch,
) -> FormattedBatch {
    let capacity = batch.line_bytes();
    let LineBatch {
        data,
        chunks,
        items,
        max_line,
    } = batch;
    let mut out = BatchOutput {
        formatter,
        output: Vec::with_capacity(capacity),
        records: Vec::with_capacity(items.len()),
        unhashed: Vec::with_capacity(items.len()),
        placeholder: identity.hash(b""),
    };
    for item in items {
        match item {
            Item::Line { range, terminated } => out.line(&data[range], terminated),
            Item::Oversized { shrunk, terminated } => out.oversized(&shrunk, terminated),
            Item::Whole { chunk, range } => {
                let whole = &chunks[chunk][range];
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', whole) {
                    let line = &whole[start..end];
                    start = end + 1;
                    if line.len() > max_line {
                        // As the splitter does with a long line inside one chunk.
                        out.oversized(&Shrinker::shrink(identity, line), true);
                    } else {
                        out.line(line, true);
                    }
                }
            }
        }
    }
    let BatchOutput {
        output,
        mut records,
        unhashed,
        ..
    } = out;
    // Event lines are hashed together at the end (several at once where the CPU allows: see
    // `Identity::hash_lines`); until then their records hold a placeholder.
    let lines: Vec<&[u8]> = unhashed.iter().map(|&(_, raw)| raw).collect();
    let mut hashes = Vec::with_capacity(lines.len());
    identity.hash_lines(&lines, &mut hashes);
    for (&(index, _), hashed) in unhashed.iter().zip(hashes) {
        if let Record::Event { hash, .. } = &mut records[index] {
            *hash = hashed;
        }
    }
    FormattedBatch {
        output,
        records,
        spent: chunks,
    }
}

/// One batch's records and output lines, as they are made.
struct BatchOutput<'f, 'a> {
    formatter: &'f mut Formatter,
    output: Vec<u8>,
    records: Vec<Record>,
    /// Event records still to be hashed, and their raw lines.
    unhashed: Vec<(usize, &'a [u8])>,
    placeholder: EventHash,
}

impl<'a> BatchOutput<'_, 'a> {
    fn line(&mut self, line: &'a [u8], terminated: bool) {
        let raw = line.strip_suffix(b"\r").unwrap_or(line);
        let begin = self.output.len();
        if let Some(written) = self.formatter.write_direct(raw, &mut self.output) {
            self.unhashed.push((self.records.len(), raw));
            let formatted = Formatted {
                decode_errors: written.decode_errors,
                shrunk: false,
            };
            self.event(self.placeholder, written.start, begin, formatted);
            return;
        }
        let (raw, kind) = classify_line(line, terminated);
        let record = match kind {
            LineKind::Blank => return,
            LineKind::Context(context) => Record::Context(context),
            LineKind::Event(value) => {
                self.unhashed.push((self.records.len(), raw));
                let start = event_start(&value);
                let formatted = self.formatter.write(raw, value, &mut self.output);
                return self.event(self.placeholder, start, begin, formatted);
            }
            LineKind::NotJson => Record::Bad(raw[..raw.len().min(80)].to_vec()),
            LineKind::CutTail => Record::CutTail,
        };
        self.records.push(record);
    }

    fn oversized(&mut self, shrunk: &Shrunk, terminated: bool) {
        let record = match oversized_event(shrunk) {
            Some((json, value)) => {
                let start = event_start(&value);
                let begin = self.output.len();
                let mut formatted = self.formatter.write(json, value, &mut self.output);
                formatted.shrunk = true;
                return self.event(shrunk.hash, start, begin, formatted);
            }
            None if !terminated => Record::CutTail,
            None => Record::Oversized {
                length: shrunk.length,
                start: shrunk.start.clone(),
            },
        };
        self.records.push(record);
    }

    /// The event whose line was written from `begin` on: ended with `\n`, recorded.
    fn event(&mut self, hash: EventHash, start: Option<f64>, begin: usize, formatted: Formatted) {
        let line = begin..self.output.len();
        self.output.push(b'\n');
        self.records.push(Record::Event {
            hash,
            start,
            output: line,
            formatted,
        });
    }
}

/// Format workers, each with its own formatter (and decoder scratch space), for a whole run.
pub struct FormatPool {
    workers: Vec<Worker>,
    identity: Identity,
}

struct Worker {
    jobs: Option<SyncSender<LineBatch>>,
    results: Receiver<FormattedBatch>,
    handle: Option<JoinHandle<()>>,
}

/// One worker per core the process may use, and one more. The workers do most of the work, but
/// the response reader (TLS, the socket) and the calling thread (splitting, writing) take about
/// two fifths of it between them, in bursts: with a worker per core only, a core sat idle
/// whenever the worker on it waited for its turn while the other threads ran. On 2 cores,
/// 100,000-event page, medians of 11 alternating runs: 0.63 s with 2 workers, 0.57 s with 3,
/// 0.58 s with 4.
pub fn default_workers() -> usize {
    thread::available_parallelism().map_or(2, |n| n.get()) + 1
}

impl FormatPool {
    /// Workers that hash lines as `identity` says (the journal's: see [`crate::checkpoint::Seen::identity`]).
    pub fn new(
        output: &OutputSettings,
        identity: &Identity,
        workers: usize,
    ) -> std::io::Result<FormatPool> {
        let mut pool = FormatPool {
            workers: Vec::new(),
            identity: identity.clone(),
        };
        for index in 0..workers.max(1) {
            let (jobs, job_queue) = sync_channel::<LineBatch>(IN_FLIGHT_PER_WORKER);
            let (done, results) = sync_channel(IN_FLIGHT_PER_WORKER);
            let mut formatter = Formatter::new(output);
            let identity = identity.clone();
            let handle = thread::Builder::new()
                .name(format!("format-{index}"))
                .spawn(move || {
                    for batch in job_queue {
                        if done
                            .send(format_batch(&mut formatter, &identity, batch))
                            .is_err()
                        {
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

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub(crate) fn capacity(&self) -> usize {
        self.workers.len() * IN_FLIGHT_PER_WORKER
    }

    pub(crate) fn workers(&self) -> usize {
        self.workers.len()
    }

    pub(crate) fn send(&self, worker: usize, batch: LineBatch) -> Result<(), PoolError> {
        self.workers[worker]
            .jobs
            .as_ref()
            .expect("jobs close only on drop")
            .send(batch)
            .map_err(|_| PoolError::WorkerGone)
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
pub(crate) struct InFlight<'p> {
    pub(crate) pool: &'p FormatPool,
    pub(crate) workers: VecDeque<usize>,
}

impl InFlight<'_> {
    /// The oldest batch's result; waits, but notices a stop signal.
    pub(crate) fn take_next(&mut self, stop: &AtomicBool) -> Result<FormattedBatch, PoolError> {
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
                Err(RecvTimeoutError::Timeout) => return Err(PoolError::Interrupted),
                Err(RecvTimeoutError::Disconnected) => return Err(PoolError::WorkerGone),
            }
        }
    }

    /// The oldest batch's result if it is ready; does not wait.
    pub(crate) fn try_take_next(&mut self) -> Result<Option<FormattedBatch>, PoolError> {
        let Some(&worker) = self.workers.front() else {
            return Ok(None);
        };
        match self.pool.workers[worker].results.try_recv() {
            Ok(batch) => {
                self.workers.pop_front();
                Ok(Some(batch))
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(PoolError::WorkerGone),
        }
    }

    /// Take back and drop every result still on its way, so none leaks into the next page.
    pub(crate) fn discard(&mut self) {
        while let Some(worker) = self.workers.pop_front() {
            let _ = self.pool.workers[worker].results.recv();
        }
    }
}
