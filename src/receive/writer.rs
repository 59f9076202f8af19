//! The one writer: every pushed body goes through this thread, so the sink and the journal see
//! whole lines from one place, in order, exactly as a fetch run's page does. Bodies queued
//! together are committed together (one fsync of the output, the journal and the state for all
//! of them), and each is answered only after that commit: a 200 means durable.

use super::quarantine;
use super::report::Stats;
use crate::checkpoint::{RunLock, Seen, State, StateFile};
use crate::config::{OutputSettings, OutputTarget, StateSettings};
use crate::diagnostics::error_reporting;
use crate::pipeline::pool::{FormatPool, FormattedBatch, InFlight, Record, default_workers};
use crate::sink::{self, KeptLines, Reconciled, Sink, journal};
use crate::source::lines::{ChunkSource, Lines};
use crate::source::page::{PageStats, next_batch, note_bad_line};
use crate::source::spool::Failure;
use anyhow::Context as _;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot};

/// A line longer than this is not an event Akamai would send (as for fetch).
const MAX_LINE: usize = 8 * 1024 * 1024;
/// Most bodies committed together: all that can be in hand (each holds a body slot until it
/// is answered).
const MAX_GROUP: usize = super::server::BODY_SLOTS;
/// The bodies are in memory already; the line splitter takes them in pieces of this size.
const CHUNK: usize = 1024 * 1024;

/// One decoded body (NDJSON, every line ending in `\n`) and where to send the answer.
pub struct Job {
    pub lines: Vec<u8>,
    pub peer: SocketAddr,
    pub reply: oneshot::Sender<Answer>,
}

#[derive(Debug, Default, Clone)]
pub struct BodyCounts {
    pub events: u64,
    pub duplicates: u64,
    pub metadata: u64,
    pub bad_lines: u64,
    pub first_bad_line: Option<String>,
}

#[derive(Debug)]
pub enum Answer {
    /// Its events are durable (the bad lines, if any, quarantined).
    Delivered(BodyCounts),
    /// No line of it is JSON: nothing written, the body quarantined.
    NotJson,
    /// The output or the journal failed (or the quarantine): nothing of it is committed; the
    /// pusher should retry later.
    Unavailable,
}

pub struct Writer {
    target: OutputTarget,
    state_settings: StateSettings,
    quarantine_dir: PathBuf,
    /// Started once the journal is open: the identity hash is keyed by the journal's key.
    pool: Option<FormatPool>,
    output: OutputSettings,
    file: StateFile,
    state: State,
    _lock: RunLock,
    /// `None` after a failure, until reopened from the last commit.
    open: Option<(Sink, Seen)>,
    /// A failure was reported and nothing has succeeded since: DataStream retries every body,
    /// and one line per retry would bury the cause.
    failing: bool,
    stats: Arc<Stats>,
    /// Set when a stop's grace period is over.
    give_up: Arc<AtomicBool>,
}

/// What DataStream state carries in the fields fetch uses for the API host.
const STATE_HOST: &str = "datastream";

impl Writer {
    /// Lock the receiver's state and open the output reconciled with its last commit: what a
    /// killed receiver wrote after its last commit is cut (those bodies were not answered 200).
    pub fn open(
        output: &OutputSettings,
        state_settings: &StateSettings,
        quarantine_dir: PathBuf,
        stats: Arc<Stats>,
        give_up: Arc<AtomicBool>,
    ) -> anyhow::Result<Writer> {
        let lock = RunLock::acquire(&state_settings.path)?;
        let file = StateFile::new(&state_settings.path);
        file.remove_stale_temporary();
        let state = file.load()?.unwrap_or_else(|| State::new(STATE_HOST, ""));
        let mut writer = Writer {
            target: output.target.clone(),
            state_settings: state_settings.clone(),
            quarantine_dir,
            pool: None,
            output: output.clone(),
            file,
            state,
            _lock: lock,
            open: None,
            failing: false,
            stats,
            give_up,
        };
        writer.open_output()?;
        Ok(writer)
    }

    fn open_output(&mut self) -> anyhow::Result<()> {
        let (mut sink, reconciled) = sink::open(&self.target, self.state.output.as_ref(), true)?;
        // A remote destination's waits (reconnecting, resending) end when the stop's grace
        // period is over.
        sink.set_stop(Arc::clone(&self.give_up));
        if matches!(self.target, OutputTarget::File(_)) && reconciled != Reconciled::Continued {
            self.state.record_output(sink.commit()?);
            self.file
                .save(&self.state)
                .context("recording the output file's position")?;
        }
        match &reconciled {
            Reconciled::CutTail { bytes } => tracing::warn!(
                code = "recovered_crash",
                "the receiver stopped between writing and committing: cut the last {bytes} \
                 uncommitted bytes from the output file; those bodies were not acknowledged and \
                 DataStream sends them again"
            ),
            Reconciled::Rotated => tracing::info!("the output file was rotated"),
            Reconciled::New
            | Reconciled::Continued
            | Reconciled::Unconfirmed
            | Reconciled::Shared => {}
        }
        // As for fetch (those bodies were not acknowledged if their lines are gone).
        let keep_uncommitted = reconciled.keeps_uncommitted();
        let seen = Seen::open(
            &self.state_settings.path,
            self.state.seen,
            keep_uncommitted,
            self.state_settings.dedup_capacity,
        )?;
        if self.pool.is_none() {
            self.pool = Some(
                FormatPool::new(&self.output, seen.identity(), default_workers())
                    .context("starting the format workers")?,
            );
        }
        self.open = Some((sink, seen));
        self.stats.writer_ok.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Serve jobs until every sender is gone (the server stopped), then return.
    pub fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.process(group);
        }
    }

    fn process(&mut self, group: Vec<Job>) {
        match self.deliver_all(&group) {
            Ok(answers) => {
                if std::mem::take(&mut self.failing) {
                    tracing::info!(
                        code = "recovered",
                        "the output and the journal work again; pushes are acknowledged"
                    );
                }
                for (job, answer) in group.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => {
                self.open = None;
                self.stats.writer_ok.store(false, Ordering::Relaxed);
                let message = error_reporting::describe_chain(&error);
                if std::mem::replace(&mut self.failing, true) {
                    tracing::debug!("still failing: {message}");
                } else {
                    tracing::error!(
                        code = error_reporting::classify(&error).diagnostic_code(),
                        "{message}; pushes are answered 503 (DataStream retries them) until the \
                         output works again"
                    );
                }
                for job in group {
                    let _ = job.reply.send(Answer::Unavailable);
                }
            }
        }
    }

    fn deliver_all(&mut self, group: &[Job]) -> anyhow::Result<Vec<Answer>> {
        if self.open.is_none() {
            self.open_output()?;
        }
        let mut counts = Vec::with_capacity(group.len());
        for job in group {
            counts.push(self.deliver(&job.lines)?);
        }
        self.commit()?;
        let mut answers = Vec::with_capacity(group.len());
        for (job, counts) in group.iter().zip(counts) {
            answers.push(self.settle(job, counts)?);
        }
        Ok(answers)
    }

    /// After the commit: keep what was not delivered, count, and say what to answer.
    fn settle(&mut self, job: &Job, counts: BodyCounts) -> anyhow::Result<Answer> {
        let not_json = counts.events == 0 && counts.metadata == 0 && counts.bad_lines > 0;
        if counts.bad_lines > 0 {
            let reason = if not_json { "not-json" } else { "bad-lines" };
            let path = quarantine::keep(&self.quarantine_dir, job.peer, reason, &job.lines)
                .with_context(|| {
                    format!(
                        "cannot keep a body from {} with {} bad line(s) in the quarantine \
                         directory {} (check quarantine_dir)",
                        job.peer,
                        counts.bad_lines,
                        self.quarantine_dir.display()
                    )
                })?;
            tracing::error!(
                code = "bad_lines",
                "a body from {} held {} line(s) that are not JSON events{}; kept in {} (the \
                 first began: {})",
                job.peer,
                counts.bad_lines,
                if not_json {
                    " and nothing else (answered 400)".to_string()
                } else {
                    format!(", beside {} event(s) that were delivered", counts.events)
                },
                path.display(),
                counts.first_bad_line.as_deref().unwrap_or("")
            );
        }
        self.stats.record_body(&counts);
        Ok(if not_json {
            Answer::NotJson
        } else {
            Answer::Delivered(counts)
        })
    }

    /// Format every line of one body and hand its new events to the sink (not yet durable).
    fn deliver(&mut self, body: &[u8]) -> anyhow::Result<BodyCounts> {
        let pool = self
            .pool
            .as_ref()
            .expect("started when the output first opened");
        let mut counts = BodyCounts::default();
        let mut stats = PageStats::default();
        let mut lines = Lines::new(BodyChunks { body, at: 0 }, MAX_LINE, pool.identity());
        let never = AtomicBool::new(false);
        let mut in_flight = InFlight {
            pool,
            workers: VecDeque::new(),
        };
        let (sink, seen) = self.open.as_mut().expect("opened before delivering");
        let mut next_worker = 0;
        let mut ended = false;
        let result = loop {
            let window_full = in_flight.workers.len() >= pool.capacity();
            if window_full || (ended && !in_flight.workers.is_empty()) {
                let batch = match in_flight.take_next(&never) {
                    Ok(batch) => batch,
                    Err(error) => break Err(anyhow::Error::new(error)),
                };
                if let Err(error) = apply(batch, sink, seen, &mut counts, &mut stats) {
                    break Err(error);
                }
                continue;
            }
            if ended {
                break Ok(());
            }
            let (batch, end) = next_batch(&mut lines, &mut stats);
            if !batch.items.is_empty() {
                if let Err(error) = pool.send(next_worker, batch) {
                    break Err(anyhow::Error::new(error));
                }
                in_flight.workers.push_back(next_worker);
                next_worker = (next_worker + 1) % pool.workers();
            }
            ended = end.is_some();
        };
        in_flight.discard();
        result?;
        counts.bad_lines = stats.bad_lines;
        counts.first_bad_line = stats.first_bad_line;
        Ok(counts)
    }

    /// Everything handed to the sink since the last commit made durable, then the journal,
    /// then the state that names both.
    fn commit(&mut self) -> anyhow::Result<()> {
        let (sink, seen) = self.open.as_mut().expect("opened before committing");
        journal(seen, sink.flush())?;
        let output = sink.commit()?;
        let position = seen.sync()?;
        self.state.record_output(output);
        self.state.seen = position;
        self.file
            .save(&self.state)
            .context("committing pushed events")?;
        if let Some(old_generation) = seen.compact_if_large()? {
            self.state.seen = seen.position();
            self.file.save(&self.state)?;
            Seen::remove_generation(self.file.path(), old_generation);
        }
        Ok(())
    }
}

/// The decisions for one formatted batch, in body order.
fn apply(
    batch: FormattedBatch,
    sink: &mut Sink,
    seen: &mut Seen,
    counts: &mut BodyCounts,
    stats: &mut PageStats,
) -> anyhow::Result<()> {
    let mut kept = KeptLines::default();
    for record in batch.records {
        match record {
            Record::Event { hash, output, .. } => {
                if seen.contains(hash) {
                    counts.duplicates += 1;
                    continue;
                }
                kept.keep(output);
                seen.record(hash);
                counts.events += 1;
            }
            // DataStream's metadata object (`limit`, `offset`, `total`): not an event.
            Record::Context(_) => counts.metadata += 1,
            Record::Bad(start) => note_bad_line(stats, &start),
            Record::Oversized { start, .. } => note_bad_line(stats, &start),
            // Every line of a body ends in `\n`, so no line is a cut tail; counted all the same.
            Record::CutTail => note_bad_line(stats, b""),
        }
    }
    kept.write_to(&batch.output, sink, |written| journal(seen, written))
}

/// A body in memory, in pieces for the line splitter.
struct BodyChunks<'a> {
    body: &'a [u8],
    at: usize,
}

impl ChunkSource for BodyChunks<'_> {
    type Error = Failure;
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        if self.at >= self.body.len() {
            return Ok(None);
        }
        let end = (self.at + CHUNK).min(self.body.len());
        let chunk = self.body[self.at..end].to_vec();
        self.at = end;
        Ok(Some(chunk))
    }
}
