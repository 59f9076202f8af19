//! Where output lines go. A [`Sink`] gathers whole lines in a buffer and hands them to its
//! [`Destination`] with as few writes as possible, but never half a line per write, so a reader
//! (Wazuh's logcollector, the wodle's pipe) never sees half a line from a clean run. The buffer
//! does no I/O on its own: the caller decides when to flush, so it can journal exactly the events
//! that went out, and when to commit, which makes them durable (or acknowledged) before the
//! state moves past them.
//!
//! Each route is one [`Destination`] in a file of its own; [`open`] is the one place that picks
//! it from the configured target.

pub mod backoff;
mod file;
mod http;
mod stdout;
mod syslog;

pub use file::repair_torn_tail;
pub use http::probe as probe_http;
pub use stdout::PIPE_LOCK;

use crate::checkpoint::{OutputPosition, Seen};
use crate::config::OutputTarget;
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Lines are flushed once this much is buffered.
pub const BUFFER_SIZE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "stdout was closed by its reader (broken pipe) after {bytes} bytes; the events not \
         written are fetched again by the next run"
    )]
    Closed { bytes: u64 },
    #[error(
        "cannot write to {target}: {source}; nothing is lost, the next run repeats what was not committed"
    )]
    Write { target: String, source: io::Error },
    #[error(
        "{why}: the events of a stateful run would be committed as delivered while nobody \
         receives them. Run it with stdout going somewhere, or pass --output FILE (--output \
         /dev/null to discard them on purpose); nothing was fetched"
    )]
    NoReader { why: String },
    #[error("cannot open the output file {}: {source}{hint}", path.display())]
    Open {
        path: PathBuf,
        source: io::Error,
        hint: &'static str,
    },
}

/// What opening the output file found, relative to the last commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// No earlier commit for this file.
    New,
    /// The file is as the last commit left it.
    Continued,
    /// A run died after writing, before committing: its tail was cut (it is fetched again).
    CutTail { bytes: u64 },
    /// The file was rotated (moved away, or truncated by copytruncate): left untouched.
    Rotated,
    /// A file shared by several tenants of the run: whole lines stay after a crash, so what a
    /// tenant wrote but did not commit may be there or not; it is fetched again (at least once).
    Shared,
    /// A remote receiver (syslog, HTTP): what a run sent but did not commit may never have
    /// arrived, so the journal forgets it and the next run sends it again (at least once).
    Unconfirmed,
}

impl Reconciled {
    /// Whether hashes journalled after the last commit stand for lines that are still in the
    /// output (a new or rotated file, stdout's reader): not when the tail was cut, or the file
    /// is as the last commit left it, or a remote receiver never confirmed them, or a shared
    /// file may or may not hold them. Then those events must be taken again, not dropped as
    /// replays.
    pub fn keeps_uncommitted(&self) -> bool {
        !matches!(
            self,
            Reconciled::CutTail { .. }
                | Reconciled::Continued
                | Reconciled::Unconfirmed
                | Reconciled::Shared
        )
    }
}

/// One route for output lines.
pub trait Destination {
    /// Write all of `lines` (whole lines, each ending in `\n`), or fail.
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()>;
    /// Make everything written so far durable (or acknowledged by its receiver). `Some` position
    /// when the destination can be cut back to it after a crash (a regular file).
    fn make_durable(&mut self) -> io::Result<Option<OutputPosition>>;
    /// Its name in messages.
    fn describe(&self) -> String;
    /// The run's signal flag: a destination that waits (to reconnect, to retry) wakes and gives
    /// up when it is set.
    fn set_stop(&mut self, _stop: Arc<AtomicBool>) {}
    /// Reconnections or resent batches so far (a remote receiver's trouble), for the summary.
    fn retries(&self) -> u64 {
        0
    }
}

/// The sink for `target`, reconciled with what the last run committed there. A stateful run's
/// stdout must have a reader (`require_reader`): its events are committed as delivered.
pub fn open(
    target: &OutputTarget,
    committed: Option<&OutputPosition>,
    require_reader: bool,
) -> Result<(Sink, Reconciled), OutputError> {
    open_stoppable(target, committed, require_reader, None)
}

/// [`open`], with the run's signal flag from the start: reaching a remote receiver that is
/// down waits within the retry budget, and a SIGTERM must end that wait too.
pub fn open_stoppable(
    target: &OutputTarget,
    committed: Option<&OutputPosition>,
    require_reader: bool,
    stop: Option<Arc<AtomicBool>>,
) -> Result<(Sink, Reconciled), OutputError> {
    let (destination, reconciled): (Box<dyn Destination>, Reconciled) = match target {
        OutputTarget::Stdout => {
            if require_reader {
                stdout::check_for_a_reader()?;
            }
            (Box::new(stdout::Stdout::new()), Reconciled::New)
        }
        OutputTarget::File(path) => {
            let (file, reconciled) = file::AppendFile::open(path, committed)?;
            (Box::new(file), reconciled)
        }
        OutputTarget::SharedFile(path) => (
            Box::new(file::AppendFile::open_shared(path)?),
            Reconciled::Shared,
        ),
        OutputTarget::Http(settings) => {
            let post = http::HttpPost::open(settings).map_err(|source| OutputError::Write {
                target: settings.describe(),
                source,
            })?;
            (Box::new(post), Reconciled::Unconfirmed)
        }
        OutputTarget::Syslog(settings) => (
            Box::new(syslog::SyslogDestination::open(settings, stop.clone())?),
            Reconciled::Unconfirmed,
        ),
    };
    let mut sink = Sink::new(destination);
    if let Some(stop) = stop {
        sink.set_stop(stop);
    }
    Ok((sink, reconciled))
}

/// Lines kept from one batch of a worker's output (each with its `\n`), as runs of adjacent
/// ones. A batch kept whole (the usual case) is one write straight from the worker's output;
/// short runs are gathered in the sink's buffer as single lines are.
#[derive(Default)]
pub struct KeptLines {
    runs: Vec<Range<usize>>,
}

impl KeptLines {
    /// A kept line, by its range in the batch's output as the worker recorded it (without the
    /// `\n` that follows it there), joining the run it follows.
    pub fn keep(&mut self, line: Range<usize>) {
        let with_newline = line.start..line.end + 1;
        match self.runs.last_mut() {
            Some(run) if run.end == with_newline.start => run.end = with_newline.end,
            _ => self.runs.push(with_newline),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Hand every run, in order, to `sink`, and forget them. Each write the sink makes is
    /// followed by `written` with its outcome, so the caller journals exactly what went out.
    pub fn write_to(
        &mut self,
        output: &[u8],
        sink: &mut Sink,
        mut written: impl FnMut(Result<(), OutputError>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for run in self.runs.drain(..) {
            let lines = &output[run];
            if sink.writes_directly(lines.len()) {
                written(sink.write_through(lines))?;
                continue;
            }
            if sink.needs_flush_before(lines.len()) {
                written(sink.flush())?;
            }
            sink.append_lines(lines);
            if sink.is_full() {
                written(sink.flush())?;
            }
        }
        Ok(())
    }
}

/// After a write to the output: journal exactly the hashes it took, or, when it failed, none of
/// them: how much reached the reader is unknown, so at worst those events are sent twice.
pub fn journal(seen: &mut Seen, written: Result<(), OutputError>) -> anyhow::Result<()> {
    if let Err(error) = written {
        seen.discard_pending();
        return Err(error.into());
    }
    seen.flush()?;
    Ok(())
}

pub struct Sink {
    destination: Box<dyn Destination>,
    buffer: Vec<u8>,
    written: u64,
    /// A write failed part-way: how much of the buffer went out is unknown, so writing it again
    /// could put a half line and duplicates before the next commit. The sink stays failed; the
    /// next run trims the file back to its last commit and fetches the rest again.
    failed: bool,
}

impl Sink {
    pub fn new(destination: Box<dyn Destination>) -> Sink {
        Sink {
            destination,
            buffer: Vec::with_capacity(BUFFER_SIZE),
            written: 0,
            failed: false,
        }
    }

    /// How often the destination had to reconnect or resend.
    pub fn retries(&self) -> u64 {
        self.destination.retries()
    }

    /// Let the destination's waits end on SIGTERM/SIGINT.
    pub fn set_stop(&mut self, stop: Arc<AtomicBool>) {
        self.destination.set_stop(stop);
    }

    /// Whether appending `length` more bytes should be preceded by a flush.
    pub fn needs_flush_before(&self, length: usize) -> bool {
        !self.buffer.is_empty() && self.buffer.len() + length + 1 > BUFFER_SIZE
    }

    pub fn is_full(&self) -> bool {
        self.buffer.len() >= BUFFER_SIZE
    }

    /// Buffer one line; `\n` is added. No I/O.
    pub fn append(&mut self, line: &[u8]) {
        self.buffer.extend_from_slice(line);
        self.buffer.push(b'\n');
    }

    /// Buffer whole lines, each already ending in `\n`. No I/O.
    pub fn append_lines(&mut self, lines: &[u8]) {
        self.buffer.extend_from_slice(lines);
    }

    /// Whether `length` bytes of whole lines are better written as they are (one write of
    /// their own, after what is buffered) than copied into the buffer first: once they would
    /// fill it anyway, copying buys no fewer writes.
    pub fn writes_directly(&self, length: usize) -> bool {
        length >= BUFFER_SIZE
    }

    /// Write out everything buffered, then `lines` (whole lines, each ending in `\n`) straight
    /// from where they are: a worker's batch kept whole is not copied once more.
    pub fn write_through(&mut self, lines: &[u8]) -> Result<(), OutputError> {
        self.flush()?;
        self.write_out(lines)
    }

    /// Write out everything buffered.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        let buffer = std::mem::take(&mut self.buffer);
        let written = self.write_out(&buffer);
        self.buffer = buffer;
        if written.is_ok() {
            self.buffer.clear();
        }
        written
    }

    fn write_out(&mut self, lines: &[u8]) -> Result<(), OutputError> {
        if self.failed {
            return Err(OutputError::Write {
                target: self.destination.describe(),
                source: io::Error::other("an earlier write failed; nothing more is written"),
            });
        }
        if lines.is_empty() {
            return Ok(());
        }
        match self.destination.write_lines(lines) {
            Ok(()) => {
                self.written += lines.len() as u64;
                Ok(())
            }
            Err(error) => {
                self.failed = true;
                Err(if error.kind() == io::ErrorKind::BrokenPipe {
                    OutputError::Closed {
                        bytes: self.written,
                    }
                } else {
                    OutputError::Write {
                        target: self.destination.describe(),
                        source: error,
                    }
                })
            }
        }
    }

    /// Flush and make durable; the position the state should record, for a file.
    pub fn commit(&mut self) -> Result<Option<OutputPosition>, OutputError> {
        self.flush()?;
        self.destination
            .make_durable()
            .map_err(|source| OutputError::Write {
                target: self.destination.describe(),
                source,
            })
    }
}

/// A destination that keeps every write it is given apart: for tests of what goes out in
/// which write.
#[cfg(test)]
pub(crate) struct RecordedWrites(pub(crate) std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>);

#[cfg(test)]
impl Destination for RecordedWrites {
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().push(lines.to_vec());
        Ok(())
    }
    fn make_durable(&mut self) -> io::Result<Option<OutputPosition>> {
        Ok(None)
    }
    fn describe(&self) -> String {
        "recorded writes".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn position_of(path: &Path, length: u64) -> OutputPosition {
        let metadata = fs::metadata(path).unwrap();
        OutputPosition {
            path: path.to_path_buf(),
            device: metadata.dev(),
            inode: metadata.ino(),
            length,
        }
    }

    #[test]
    fn appends_whole_lines_and_reports_the_committed_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        fs::write(&path, "old\n").unwrap();
        let (mut sink, reconciled) = open(&OutputTarget::File(path.clone()), None, false).unwrap();
        assert_eq!(reconciled, Reconciled::New);
        sink.append(b"{\"a\":1}");
        sink.append(b"{\"b\":2}");
        let position = sink.commit().unwrap().unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "old\n{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(position.length, 20);
    }

    #[test]
    fn an_uncommitted_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        fs::write(&path, "committed\nuncommitted half").unwrap();
        let committed = position_of(&path, 10);
        let (_sink, reconciled) =
            open(&OutputTarget::File(path.clone()), Some(&committed), false).unwrap();
        assert_eq!(reconciled, Reconciled::CutTail { bytes: 16 });
        assert_eq!(fs::read_to_string(&path).unwrap(), "committed\n");
    }

    #[test]
    fn a_rotated_file_is_never_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        fs::write(&path, "a long committed history\n").unwrap();
        let committed = position_of(&path, 25);
        // copytruncate: same file, now shorter.
        fs::write(&path, "x\n").unwrap();
        let (_sink, reconciled) =
            open(&OutputTarget::File(path.clone()), Some(&committed), false).unwrap();
        assert_eq!(reconciled, Reconciled::Rotated);
        assert_eq!(fs::read_to_string(&path).unwrap(), "x\n");

        // moved away and recreated, then grown past the old length by someone else.
        fs::rename(&path, dir.path().join("events.json.1")).unwrap();
        fs::write(&path, "a different file that is now longer than before\n").unwrap();
        let (_sink, reconciled) =
            open(&OutputTarget::File(path.clone()), Some(&committed), false).unwrap();
        assert_eq!(reconciled, Reconciled::Rotated);
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .starts_with("a different")
        );
    }

    #[test]
    fn a_failed_write_is_never_retried_so_no_half_line_gets_committed() {
        let (mut sink, _) = open(&OutputTarget::File("/dev/full".into()), None, false).unwrap();
        sink.append(b"{\"a\":1}");
        let first = sink.flush().unwrap_err().to_string();
        assert!(first.contains("No space left"), "{first}");
        // A second attempt would write the buffer again (and hit ENOSPC again); it must not.
        let second = sink.commit().unwrap_err().to_string();
        assert!(second.contains("an earlier write failed"), "{second}");
        assert_eq!(sink.written, 0);
    }

    #[test]
    fn a_torn_last_line_of_a_shared_file_is_cut_and_whole_lines_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.json");
        assert_eq!(repair_torn_tail(&path).unwrap(), 0, "no file yet");
        fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        assert_eq!(repair_torn_tail(&path).unwrap(), 5);
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(
            repair_torn_tail(&path).unwrap(),
            0,
            "whole lines are left alone"
        );
        // A torn line longer than the block read backwards.
        let long = format!("{{\"a\":1}}\n{}", "x".repeat(200_000));
        fs::write(&path, &long).unwrap();
        assert_eq!(repair_torn_tail(&path).unwrap(), 200_000);
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        fs::write(&path, "no newline at all").unwrap();
        repair_torn_tail(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "");

        let (mut sink, reconciled) =
            open(&OutputTarget::SharedFile(path.clone()), None, false).unwrap();
        assert_eq!(reconciled, Reconciled::Shared);
        sink.append(b"{\"d\":4}");
        assert_eq!(
            sink.commit().unwrap(),
            None,
            "no position of one tenant describes it"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"d\":4}\n");
    }

    #[test]
    fn a_special_file_commits_without_a_position() {
        let (mut sink, _) = open(&OutputTarget::File("/dev/null".into()), None, false).unwrap();
        sink.append(b"{\"a\":1}");
        assert_eq!(sink.commit().unwrap(), None);
    }

    #[test]
    fn a_missing_directory_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let error = open(
            &OutputTarget::File(dir.path().join("no/such/dir/x.json")),
            None,
            false,
        )
        .err()
        .unwrap();
        assert!(
            error.to_string().contains("create its directory"),
            "{error}"
        );
    }

    #[test]
    fn lines_written_through_follow_what_was_buffered_each_in_one_write() {
        let writes = std::rc::Rc::default();
        let mut sink = Sink::new(Box::new(RecordedWrites(std::rc::Rc::clone(&writes))));
        sink.append(b"a");
        sink.append_lines(b"b\nc\n");
        let long = b"x\n".repeat(BUFFER_SIZE / 2);
        assert!(sink.writes_directly(long.len()));
        assert!(!sink.writes_directly(BUFFER_SIZE - 1));
        sink.write_through(&long).unwrap();
        assert_eq!(*writes.borrow(), vec![b"a\nb\nc\n".to_vec(), long.clone()]);
        // Nothing buffered: one write, the lines alone.
        sink.write_through(b"d\n").unwrap();
        sink.commit().unwrap();
        assert_eq!(writes.borrow().len(), 3);
        assert_eq!(writes.borrow()[2], b"d\n");
        assert_eq!(sink.written, 6 + long.len() as u64 + 2);
    }

    #[test]
    fn after_a_failed_write_through_nothing_more_is_written() {
        let (mut sink, _) = open(&OutputTarget::File("/dev/full".into()), None, false).unwrap();
        let error = sink.write_through(b"{\"a\":1}\n").unwrap_err().to_string();
        assert!(error.contains("No space left"), "{error}");
        let again = sink.write_through(b"{\"b\":2}\n").unwrap_err().to_string();
        assert!(again.contains("an earlier write failed"), "{again}");
    }

    #[test]
    fn buffer_asks_for_a_flush_before_overflowing() {
        let mut sink = open(&OutputTarget::Stdout, None, false).unwrap().0;
        assert!(
            !sink.needs_flush_before(BUFFER_SIZE * 2),
            "an empty buffer takes any line"
        );
        sink.append(&vec![b'x'; BUFFER_SIZE - 10]);
        assert!(sink.needs_flush_before(10));
        assert!(!sink.needs_flush_before(5));
        assert!(!sink.is_full());
    }
}
