//! A queue between the network reader and the event writer that never makes the reader wait.
//!
//! Akamai stops sending a response after two minutes. If the output is slower than the network
//! (a pipe that Wazuh drains slowly, a busy disk) a plain pipeline would slow the socket read and
//! get the page cut. So chunks go to memory up to a small bound and beyond it to an unlinked
//! temporary file; the reader drains memory first, then the file, then returns to memory. Order
//! is kept because nothing goes to memory while the file still holds unread data.

use crate::source::api::{ApiError, PageBody};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

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
    memory_bytes: usize,
    spill: Option<File>,
    /// Unread bytes of the spill file are `[spill_read, spill_written)`.
    spill_read: u64,
    spill_written: u64,
    spilled_total: u64,
    finished: Option<Result<(), ApiError>>,
    consumer_gone: bool,
    spill_error_logged: bool,
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
        }),
        changed: Condvar::new(),
        memory_limit,
        spill_dir,
    });
    (
        Producer {
            shared: Arc::clone(&shared),
        },
        Consumer {
            shared,
            stop: None,
            spill_buffer_size: 256 * 1024,
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
    /// Queue a chunk. Never waits for the consumer, except when memory is full and no spill file
    /// can be created (then it has no other choice).
    pub fn push(&self, chunk: Vec<u8>) -> Result<(), ConsumerGone> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut state = self.shared.lock();
        loop {
            if state.consumer_gone {
                return Err(ConsumerGone);
            }
            let fits_in_memory = state.memory_bytes + chunk.len() <= self.shared.memory_limit
                || state.memory.is_empty();
            if !state.spill_pending() && fits_in_memory {
                state.memory_bytes += chunk.len();
                state.memory.push_back(chunk);
                self.shared.changed.notify_all();
                return Ok(());
            }
            match self.append_to_spill(&mut state, &chunk) {
                Ok(()) => {
                    self.shared.changed.notify_all();
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

/// The body is read in pieces of this size.
const READ_SIZE: usize = 64 * 1024;

/// Read the whole body into the spool as fast as the network gives it (on its own thread: the
/// socket never waits for the output), then say how it ended.
pub fn pump(mut body: PageBody, producer: Producer) {
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
                state.memory_bytes -= chunk.len();
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
            state = self
                .shared
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn read_spill(&self, mut state: MutexGuard<'_, State>) -> Result<Vec<u8>, Failure> {
        let start = state.spill_read;
        let length = (state.spill_written - start).min(self.spill_buffer_size as u64) as usize;
        let mut chunk = vec![0; length];
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
        let (producer, mut consumer) = channel(10, None);
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
        let (producer, mut consumer) = channel(1024, None);
        let started = std::time::Instant::now();
        for _ in 0..512 {
            producer.push(vec![7; 4096]).unwrap();
        }
        producer.finish(Ok(()));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(consumer.spilled_bytes(), 512 * 4096 - 4096);
        assert_eq!(drain(&mut consumer).unwrap().len(), 512 * 4096);
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
