//! A queue between the network reader and the event writer that never lets a slow output get
//! the response cut.
//!
//! Akamai stops sending a response after two minutes. If the output is slower than the network
//! (a pipe that Wazuh drains slowly, a busy disk) a plain pipeline would slow the socket read and
//! get the page cut. So chunks go to memory up to a small bound and beyond it to an unlinked
//! temporary file; the reader drains memory first, then the file, then returns to memory. Order
//! is kept because nothing goes to memory while the file still holds unread data.
//!
//! Spilling is not free, though: when the output merely runs a little behind a fast network
//! (the format workers decode ~150-300 MB/s, loopback TLS delivers ~500), nearly the whole page
//! would go through the file, written and read back for nothing. So while the output keeps
//! pace ([`PACE`]: it frees memory at least 32 MiB/s, and for at most 20 s of waiting per
//! response) the reader waits for room in memory instead; the first time the output falls
//! behind that pace, the reader stops waiting for the rest of the response and spills. The
//! download can then never be slower than 32 MiB/s, nor than the network 20 s after it began.
//! Spent chunks come back to the reader for reuse, so the byte path allocates nothing per read.

use crate::source::api::{ApiError, PageBody};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When the reader may wait for the output instead of spilling.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// While waiting, the output must take chunks at least this fast (bytes per second).
    pub min_rate: f64,
    /// Waiting allowed before the output has shown its rate (start-up, a scheduling hiccup).
    pub slack: Duration,
    /// At most this much waiting per response, whatever the rate: Akamai's two minutes leave
    /// the rest for the network alone.
    pub max_wait: Duration,
}

#[cfg(test)]
impl Pace {
    /// Never wait: spill as soon as memory is full.
    pub const NEVER: Pace = Pace {
        min_rate: f64::INFINITY,
        slack: Duration::ZERO,
        max_wait: Duration::ZERO,
    };
}

/// At 32 MiB/s even a 600,000-event page of 2.2 KB events (1.3 GB) is read in 40 s; a slower
/// output (a pipe Wazuh drains at a few MB/s) is spilled for at once, after at most 0.1 s.
pub const PACE: Pace = Pace {
    min_rate: 32.0 * 1024.0 * 1024.0,
    slack: Duration::from_millis(100),
    max_wait: Duration::from_secs(20),
};

/// The body is read in pieces of this size.
const READ_SIZE: usize = 64 * 1024;

/// Spent chunks kept for reuse (beyond it they are freed).
const SPARE_CHUNKS: usize = 8;

/// Why the stream of chunks ended early. Typed, so that the consumer's thread sees the same
/// error the reader's thread had: a network failure stays an [`ApiError`] (retried), and a
/// failure of the local spool file stays a [`SpoolError`] (a disk problem, never retried as if
/// it were the network).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Source(#[from] ApiError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The consumer was asked to stop (a signal).
    #[error("interrupted by a signal")]
    Stopped,
}

/// The spool file in `spool_dir` could not be read back: a local disk failure.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read back the response spooled to a temporary file: {0}; check spool_dir (free \
     space, a healthy disk); nothing is lost, the next run fetches this page again"
)]
pub struct SpoolError(io::Error);

struct State {
    memory: VecDeque<Vec<u8>>,
    /// Capacity, not length, of the chunks in memory: a short read still holds a whole buffer.
    memory_bytes: usize,
    spill: Option<File>,
    /// Unread bytes of the spill file are `[spill_read, spill_written)`.
    spill_read: u64,
    spill_written: u64,
    spilled_total: u64,
    finished: Option<Result<(), ApiError>>,
    consumer_gone: bool,
    spill_error_logged: bool,
    /// The reader still waits for the output when memory is full (see [`Pace`]).
    patient: bool,
    /// Time the reader spent waiting for room, and what the output took meanwhile.
    waited: Duration,
    taken_while_waiting: u64,
    /// Who is blocked on `changed`, so that nobody is woken for nothing.
    producer_waiting: bool,
    consumer_waiting: bool,
    /// Spent chunks, back from the consumer for the reader to fill again.
    spare: Vec<Vec<u8>>,
}

impl State {
    fn spill_pending(&self) -> bool {
        self.spill_read < self.spill_written
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    memory_limit: usize,
    spill_dir: Option<PathBuf>,
    pace: Pace,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub fn channel(memory_limit: usize, spill_dir: Option<PathBuf>) -> (Producer, Consumer) {
    channel_with_pace(memory_limit, spill_dir, PACE)
}

pub fn channel_with_pace(
    memory_limit: usize,
    spill_dir: Option<PathBuf>,
    pace: Pace,
) -> (Producer, Consumer) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            memory: VecDeque::new(),
            memory_bytes: 0,
            spill: None,
            spill_read: 0,
            spill_written: 0,
            spilled_total: 0,
            finished: None,
            consumer_gone: false,
            spill_error_logged: false,
            patient: !pace.max_wait.is_zero(),
            waited: Duration::ZERO,
            taken_while_waiting: 0,
            producer_waiting: false,
            consumer_waiting: false,
            spare: Vec::new(),
        }),
        changed: Condvar::new(),
        memory_limit,
        spill_dir,
        pace,
    });
    (
        Producer {
            shared: Arc::clone(&shared),
        },
        Consumer {
            shared,
            stop: None,
            spill_buffer_size: READ_SIZE,
        },
    )
}

pub struct Producer {
    shared: Arc<Shared>,
}

/// The consumer went away; the producer should stop reading.
#[derive(Debug)]
pub struct ConsumerGone;

impl Producer {
    /// Queue a chunk. Waits for the consumer only while it keeps pace (see [`Pace`]), or when
    /// memory is full and no spill file can be created (then it has no other choice).
    pub fn push(&self, chunk: Vec<u8>) -> Result<(), ConsumerGone> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut state = self.shared.lock();
        loop {
            if state.consumer_gone {
                return Err(ConsumerGone);
            }
            let fits_in_memory = state.memory_bytes + chunk.capacity() <= self.shared.memory_limit
                || state.memory.is_empty();
            if !state.spill_pending() && fits_in_memory {
                state.memory_bytes += chunk.capacity();
                state.memory.push_back(chunk);
                if state.consumer_waiting {
                    self.shared.changed.notify_all();
                }
                return Ok(());
            }
            if state.patient && !state.spill_pending() {
                if let Some(allowed) = self.wait_allowed(&state) {
                    state.producer_waiting = true;
                    let started = Instant::now();
                    state = self
                        .shared
                        .changed
                        .wait_timeout(state, allowed)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                    state.waited += started.elapsed();
                    state.producer_waiting = false;
                    continue;
                }
                // The output fell behind: from now on this response goes to the file.
                state.patient = false;
                tracing::debug!(
                    waited_ms = state.waited.as_millis() as u64,
                    taken = state.taken_while_waiting,
                    "the output is slower than the network: spooling the rest of the response"
                );
            }
            match self.append_to_spill(&mut state, &chunk) {
                Ok(()) => {
                    if state.consumer_waiting {
                        self.shared.changed.notify_all();
                    }
                    // Its bytes are in the file: the chunk can be filled again at once.
                    if state.spare.len() < SPARE_CHUNKS {
                        state.spare.push(chunk);
                    }
                    return Ok(());
                }
                Err(error) => {
                    if !state.spill_error_logged {
                        state.spill_error_logged = true;
                        tracing::warn!(
                            "cannot spool the response to a temporary file ({error}); reading \
                             at the output's pace instead, which risks Akamai's 2-minute cut: \
                             set spool_dir to a writable directory"
                        );
                    }
                    state = self
                        .shared
                        .changed
                        .wait_timeout(state, Duration::from_millis(50))
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
            }
        }
    }

    /// How much longer the reader may wait for room in memory, if at all: the output has
    /// `slack` plus the time `min_rate` gives for what it took while the reader waited, within
    /// `max_wait` in all.
    fn wait_allowed(&self, state: &State) -> Option<Duration> {
        let pace = &self.shared.pace;
        let earned = Duration::try_from_secs_f64(state.taken_while_waiting as f64 / pace.min_rate)
            .unwrap_or(Duration::ZERO);
        let allowed = (pace.slack + earned).min(pace.max_wait);
        allowed.checked_sub(state.waited).filter(|d| !d.is_zero())
    }

    /// A spent chunk to fill again, if the consumer has given one back.
    fn spare(&self) -> Option<Vec<u8>> {
        self.shared.lock().spare.pop()
    }

    fn append_to_spill(&self, state: &mut State, chunk: &[u8]) -> io::Result<()> {
        if state.spill.is_none() {
            let file = match &self.shared.spill_dir {
                Some(dir) => tempfile::tempfile_in(dir)?,
                None => tempfile::tempfile()?,
            };
            state.spill = Some(file);
        }
        let file = state.spill.as_ref().expect("created above");
        file.write_all_at(chunk, state.spill_written)?;
        state.spill_written += chunk.len() as u64;
        state.spilled_total += chunk.len() as u64;
        Ok(())
    }

    /// The end of the stream: `Ok` for a complete body, the reader's error otherwise.
    pub fn finish(self, result: Result<(), ApiError>) {
        let mut state = self.shared.lock();
        state.finished = Some(result);
        self.shared.changed.notify_all();
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.finished.is_none() {
            state.finished = Some(Err(ApiError::Network {
                host: "the API".to_string(),
                message: "the response reader stopped unexpectedly".to_string(),
            }));
            self.shared.changed.notify_all();
        }
    }
}

/// Read the whole body into the spool (on its own thread: the socket never waits for a slow
/// output), then say how it ended. Reads append straight to the chunks the spool hands on
/// (spent ones come back), so no chunk is allocated or zeroed per read.
pub fn pump(mut body: PageBody, producer: Producer) {
    loop {
        let mut chunk = producer
            .spare()
            .unwrap_or_else(|| Vec::with_capacity(READ_SIZE));
        chunk.clear();
        match body.read_append(&mut chunk, READ_SIZE) {
            Ok(0) => return producer.finish(Ok(())),
            Ok(_) => {
                if producer.push(chunk).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return producer.finish(Err(body.network_error(&e))),
        }
    }
}

pub struct Consumer {
    shared: Arc<Shared>,
    stop: Option<Arc<AtomicBool>>,
    spill_buffer_size: usize,
}

impl Consumer {
    /// Checked while waiting, so a signal stops a consumer blocked on a silent network.
    pub fn with_stop_flag(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Bytes that went through the spill file so far.
    pub fn spilled_bytes(&self) -> u64 {
        self.shared.lock().spilled_total
    }

    /// The next chunk in order; `Ok(None)` at a complete end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        let mut state = self.shared.lock();
        loop {
            if let Some(chunk) = state.memory.pop_front() {
                state.memory_bytes -= chunk.capacity();
                if state.producer_waiting {
                    state.taken_while_waiting += chunk.len() as u64;
                    // Wake the reader at half the bound, not per chunk: fewer wake-ups.
                    if state.memory_bytes <= self.shared.memory_limit / 2 {
                        self.shared.changed.notify_all();
                    }
                }
                return Ok(Some(chunk));
            }
            if state.spill_pending() {
                return self.read_spill(state).map(Some);
            }
            if let Some(result) = state.finished.take() {
                // Handed over once; later calls see a clean end of what is left (nothing).
                state.finished = Some(Ok(()));
                return result.map(|()| None).map_err(Failure::Source);
            }
            if self.stop_requested() {
                return Err(Failure::Stopped);
            }
            state.consumer_waiting = true;
            state = self
                .shared
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            state.consumer_waiting = false;
        }
    }

    /// Give a spent chunk back for the reader to fill again (it keeps its length: see [`pump`]).
    pub fn recycle(&self, chunk: Vec<u8>) {
        let mut state = self.shared.lock();
        if state.spare.len() < SPARE_CHUNKS {
            state.spare.push(chunk);
        }
    }

    fn read_spill(&self, mut state: MutexGuard<'_, State>) -> Result<Vec<u8>, Failure> {
        let start = state.spill_read;
        let length = (state.spill_written - start).min(self.spill_buffer_size as u64) as usize;
        // A spent chunk is already initialised up to its length: no fresh zeroed buffer.
        let mut chunk = state.spare.pop().unwrap_or_default();
        chunk.resize(length, 0);
        let file = state
            .spill
            .as_ref()
            .expect("pending spill data implies a file");
        file.read_exact_at(&mut chunk, start)
            .map_err(|error| Failure::Spool(SpoolError(error)))?;
        state.spill_read += length as u64;
        if !state.spill_pending() {
            // Drained: back to memory, and give the disk space back.
            state.spill_read = 0;
            state.spill_written = 0;
            if let Some(file) = &state.spill {
                let _ = file.set_len(0);
            }
        }
        Ok(chunk)
    }

    fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.consumer_gone = true;
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn drain(consumer: &mut Consumer) -> Result<Vec<u8>, Failure> {
        let mut all = Vec::new();
        while let Some(chunk) = consumer.next_chunk()? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    #[test]
    fn keeps_order_through_memory_and_spill() {
        let (producer, mut consumer) = channel_with_pace(10, None, Pace::NEVER);
        let mut expected = Vec::new();
        for i in 0..100u8 {
            let chunk = vec![i; 7];
            expected.extend_from_slice(&chunk);
            producer.push(chunk).unwrap();
        }
        producer.finish(Ok(()));
        assert!(
            consumer.spilled_bytes() > 0,
            "a 10-byte memory bound must spill"
        );
        assert_eq!(drain(&mut consumer).unwrap(), expected);
    }

    #[test]
    fn interleaved_reads_and_writes_keep_order() {
        let (producer, mut consumer) = channel(16, None);
        let writer = thread::spawn(move || {
            for i in 0..2000u32 {
                producer.push(i.to_le_bytes().repeat(3)).unwrap();
            }
            producer.finish(Ok(()));
        });
        let data = drain(&mut consumer).unwrap();
        writer.join().unwrap();
        let expected: Vec<u8> = (0..2000u32)
            .flat_map(|i| i.to_le_bytes().repeat(3))
            .collect();
        assert_eq!(data, expected);
    }

    #[test]
    fn the_producer_never_waits_for_a_slow_consumer() {
        let (producer, mut consumer) = channel_with_pace(1024, None, Pace::NEVER);
        let started = std::time::Instant::now();
        for _ in 0..512 {
            producer.push(vec![7; 4096]).unwrap();
        }
        producer.finish(Ok(()));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(consumer.spilled_bytes(), 512 * 4096 - 4096);
        assert_eq!(drain(&mut consumer).unwrap().len(), 512 * 4096);
    }

    /// A pace for tests: generous slack, so a loaded machine does not make them flaky.
    fn patient(min_rate: f64, slack_ms: u64, max_wait_ms: u64) -> Pace {
        Pace {
            min_rate,
            slack: Duration::from_millis(slack_ms),
            max_wait: Duration::from_millis(max_wait_ms),
        }
    }

    #[test]
    fn a_consumer_that_keeps_pace_gets_everything_through_memory() {
        let (producer, mut consumer) =
            channel_with_pace(64 * 1024, None, patient(1024.0, 10_000, 60_000));
        let writer = thread::spawn(move || {
            for i in 0..400u32 {
                producer.push(i.to_le_bytes().repeat(4096)).unwrap();
            }
            producer.finish(Ok(()));
        });
        let data = drain(&mut consumer).unwrap();
        writer.join().unwrap();
        let expected: Vec<u8> = (0..400u32)
            .flat_map(|i| i.to_le_bytes().repeat(4096))
            .collect();
        assert_eq!(data, expected);
        assert_eq!(consumer.spilled_bytes(), 0, "6.4 MB through a 64 KiB bound");
        assert!(consumer.shared.lock().waited > Duration::ZERO, "it waited");
    }

    #[test]
    fn a_consumer_slower_than_the_pace_makes_the_reader_spill() {
        // The consumer takes 4 KiB per 40 ms (100 KiB/s), far below the pace's 10 MiB/s.
        let (producer, mut consumer) =
            channel_with_pace(8 * 1024, None, patient(10.0 * 1024.0 * 1024.0, 50, 60_000));
        let writer = thread::spawn(move || {
            for i in 0..50u8 {
                producer.push(vec![i; 4096]).unwrap();
            }
            producer.finish(Ok(()));
            std::time::Instant::now()
        });
        let started = std::time::Instant::now();
        let mut data = Vec::new();
        while let Some(chunk) = consumer.next_chunk().unwrap() {
            data.extend_from_slice(&chunk);
            thread::sleep(Duration::from_millis(40));
        }
        let producer_done = writer.join().unwrap() - started;
        assert!(
            producer_done < Duration::from_secs(1),
            "the reader kept waiting: {producer_done:?} for what the output takes 2 s to drain"
        );
        assert!(consumer.spilled_bytes() > 0);
        assert!(!consumer.shared.lock().patient);
        let expected: Vec<u8> = (0..50u8).flat_map(|i| vec![i; 4096]).collect();
        assert_eq!(data, expected);
    }

    #[test]
    fn the_reader_waits_no_longer_than_max_wait_in_all() {
        // A rate any output meets, but the total wait is capped at 200 ms.
        let (producer, mut consumer) = channel_with_pace(4, None, patient(1.0, 10_000, 200));
        let started = std::time::Instant::now();
        for chunk in [b"abcd", b"efgh", b"ijkl"] {
            producer.push(chunk.to_vec()).unwrap();
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(consumer.spilled_bytes(), 8);
        producer.finish(Ok(()));
        assert_eq!(drain(&mut consumer).unwrap(), b"abcdefghijkl");
    }

    #[test]
    fn a_waiting_reader_sees_the_consumer_go() {
        let (producer, consumer) = channel_with_pace(4, None, patient(1.0, 60_000, 60_000));
        producer.push(b"abcd".to_vec()).unwrap();
        let writer = thread::spawn(move || producer.push(b"efgh".to_vec()));
        thread::sleep(Duration::from_millis(100));
        drop(consumer);
        assert!(writer.join().unwrap().is_err());
    }

    #[test]
    fn memory_counts_what_a_chunk_holds_not_what_it_carries() {
        // A short read still occupies a whole buffer; counting lengths would let many short
        // chunks hold far more memory than the bound.
        let (producer, consumer) = channel_with_pace(2048, None, Pace::NEVER);
        for _ in 0..3 {
            let mut chunk = Vec::with_capacity(1024);
            chunk.push(b'x');
            producer.push(chunk).unwrap();
        }
        assert_eq!(
            consumer.spilled_bytes(),
            1,
            "the third 1 KiB buffer is over 2 KiB"
        );
    }

    #[test]
    fn spent_chunks_go_back_to_the_reader() {
        let (producer, mut consumer) = channel_with_pace(1024, None, Pace::NEVER);
        producer.push(b"abc".to_vec()).unwrap();
        let chunk = consumer.next_chunk().unwrap().unwrap();
        let address = chunk.as_ptr();
        consumer.recycle(chunk);
        let spare = producer.spare().expect("the spent chunk");
        assert_eq!(spare.as_ptr(), address, "the same allocation, not a copy");
        // It keeps its length: refilling it zeroes only what it lacks.
        assert_eq!(spare, b"abc");
    }

    #[test]
    fn producer_failure_reaches_the_consumer_after_the_data() {
        let (producer, mut consumer) = channel(1024, None);
        producer.push(b"abc".to_vec()).unwrap();
        producer.finish(Err(ApiError::Network {
            host: "h".into(),
            message: "connection reset".into(),
        }));
        assert_eq!(consumer.next_chunk().unwrap(), Some(b"abc".to_vec()));
        // The consumer gets the reader's typed error, not a string to wrap again.
        match consumer.next_chunk() {
            Err(Failure::Source(ApiError::Network { message, .. })) => {
                assert_eq!(message, "connection reset")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dropped_producer_is_a_failure_not_an_end() {
        let (producer, mut consumer) = channel(1024, None);
        drop(producer);
        assert!(matches!(consumer.next_chunk(), Err(Failure::Source(_))));
    }

    #[test]
    fn a_failing_spool_file_is_a_local_error_not_a_network_one() {
        let (producer, mut consumer) = channel(4, None);
        producer.push(b"abcd".to_vec()).unwrap();
        producer.push(b"efgh".to_vec()).unwrap();
        assert!(consumer.spilled_bytes() > 0);
        // The disk loses the spooled bytes (a failing disk, a full one that truncated).
        if let Some(file) = &consumer.shared.lock().spill {
            file.set_len(0).unwrap();
        }
        assert_eq!(consumer.next_chunk().unwrap(), Some(b"abcd".to_vec()));
        match consumer.next_chunk() {
            Err(Failure::Spool(error)) => {
                assert!(error.to_string().contains("spool_dir"), "{error}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dropped_consumer_stops_the_producer() {
        let (producer, consumer) = channel(1024, None);
        drop(consumer);
        assert!(producer.push(b"x".to_vec()).is_err());
    }

    #[test]
    fn the_stop_flag_ends_a_wait() {
        let stop = Arc::new(AtomicBool::new(false));
        let (_producer, consumer) = channel(1024, None);
        let mut consumer = consumer.with_stop_flag(Arc::clone(&stop));
        let setter = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            stop.store(true, Ordering::Relaxed);
        });
        assert!(matches!(consumer.next_chunk(), Err(Failure::Stopped)));
        setter.join().unwrap();
    }
}
