//! Where events go: stdout, or a file appended to.
//!
//! Lines are gathered in a buffer and written with as few `write(2)` calls as possible, but a
//! line is never split across two calls, so a reader (Wazuh's logcollector, the wodle's pipe)
//! never sees half a line from a clean run. The buffer does no I/O on its own: the caller
//! decides when to flush, so it can journal exactly the events that went out.

use crate::checkpoint::OutputPosition;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Lines are flushed once this much is buffered.
pub const BUFFER_SIZE: usize = 64 * 1024;

/// Under Wazuh's wodle stdout and stderr are one pipe, and a pipe write over 4 KiB is not
/// atomic: every write to either goes through this lock so a diagnostic line can never land in
/// the middle of an event line.
pub static PIPE_LOCK: Mutex<()> = Mutex::new(());

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
}

enum Destination {
    Stdout(io::Stdout),
    File { file: File, path: PathBuf },
}

pub struct Sink {
    destination: Destination,
    buffer: Vec<u8>,
    written: u64,
    /// A write failed part-way: how much of the buffer went out is unknown, so writing it again
    /// could put a half line and duplicates before the next commit. The sink stays failed; the
    /// next run trims the file back to its last commit and fetches the rest again.
    failed: bool,
}

impl Sink {
    pub fn stdout() -> Sink {
        Sink {
            destination: Destination::Stdout(io::stdout()),
            buffer: Vec::with_capacity(BUFFER_SIZE),
            written: 0,
            failed: false,
        }
    }

    /// Stdout for a run that commits what it writes there: refused when nobody can read it. A
    /// closed stdout (`>&-`) is reopened as /dev/null by the runtime, so both look alike here;
    /// `--output /dev/null` discards on purpose.
    pub fn stdout_with_a_reader() -> Result<Sink, OutputError> {
        let refused = |why: &str| OutputError::NoReader {
            why: why.to_string(),
        };
        // SAFETY: fcntl and fstat on fd 1 only read the descriptor's flags and metadata.
        let flags = unsafe { libc::fcntl(1, libc::F_GETFL) };
        if flags < 0 {
            return Err(refused("stdout is closed"));
        }
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(refused("stdout is open for reading only"));
        }
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: as above; `stat` is written by fstat before it is read.
        if unsafe { libc::fstat(1, stat.as_mut_ptr()) } == 0 {
            let stat = unsafe { stat.assume_init() };
            let null = std::fs::metadata("/dev/null").ok();
            let is_null = (stat.st_mode & libc::S_IFMT) == libc::S_IFCHR
                && null.is_some_and(|n| std::os::unix::fs::MetadataExt::rdev(&n) == stat.st_rdev);
            if is_null {
                return Err(refused("stdout is /dev/null (or was closed)"));
            }
        }
        Ok(Sink::stdout())
    }

    /// Open `path` for appending and reconcile it with the last committed position.
    pub fn file(
        path: &Path,
        committed: Option<&OutputPosition>,
    ) -> Result<(Sink, Reconciled), OutputError> {
        let open_error = |source: io::Error| OutputError::Open {
            path: path.to_path_buf(),
            hint: match source.kind() {
                io::ErrorKind::NotFound => ": create its directory first",
                io::ErrorKind::PermissionDenied => {
                    ": check the directory's owner and mode (the wodle runs as root, cron as its user)"
                }
                _ => "",
            },
            source,
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
            .map_err(open_error)?;
        let metadata = file.metadata().map_err(open_error)?;
        let reconciled = match committed {
            Some(position) if position.path == path => {
                if (position.device, position.inode) != (metadata.dev(), metadata.ino())
                    || metadata.len() < position.length
                {
                    Reconciled::Rotated
                } else if metadata.len() > position.length {
                    file.set_len(position.length).map_err(open_error)?;
                    file.sync_all().map_err(open_error)?;
                    Reconciled::CutTail {
                        bytes: metadata.len() - position.length,
                    }
                } else {
                    Reconciled::Continued
                }
            }
            _ => Reconciled::New,
        };
        let sink = Sink {
            destination: Destination::File {
                file,
                path: path.to_path_buf(),
            },
            buffer: Vec::with_capacity(BUFFER_SIZE),
            written: 0,
            failed: false,
        };
        Ok((sink, reconciled))
    }

    pub fn is_file(&self) -> bool {
        matches!(self.destination, Destination::File { .. })
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

    /// Bytes handed to the operating system so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Write out everything buffered.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        if self.failed {
            return Err(OutputError::Write {
                target: self.describe(),
                source: io::Error::other("an earlier write failed; nothing more is written"),
            });
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = match &mut self.destination {
            Destination::Stdout(stdout) => {
                let _pipe = PIPE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
                let mut lock = stdout.lock();
                lock.write_all(&self.buffer).and_then(|()| lock.flush())
            }
            Destination::File { file, .. } => file.write_all(&self.buffer),
        };
        match result {
            Ok(()) => {
                self.written += self.buffer.len() as u64;
                self.buffer.clear();
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
                        target: self.describe(),
                        source: error,
                    }
                })
            }
        }
    }

    /// Flush and make durable; for a file, the position the state should record.
    pub fn commit(&mut self) -> Result<Option<OutputPosition>, OutputError> {
        self.flush()?;
        let Destination::File { file, path } = &self.destination else {
            return Ok(None);
        };
        let error = |source| OutputError::Write {
            target: path.display().to_string(),
            source,
        };
        let metadata = file.metadata().map_err(error)?;
        if !metadata.is_file() {
            // /dev/null, a FIFO, a terminal: nothing to sync (fsync says EINVAL) and no length
            // to cut back to; what the writes took is all there is.
            return Ok(None);
        }
        file.sync_data().map_err(error)?;
        Ok(Some(OutputPosition {
            path: path.clone(),
            device: metadata.dev(),
            inode: metadata.ino(),
            length: metadata.len(),
        }))
    }

    fn describe(&self) -> String {
        match &self.destination {
            Destination::Stdout(_) => "stdout".to_string(),
            Destination::File { path, .. } => path.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
        let (mut sink, reconciled) = Sink::file(&path, None).unwrap();
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
        let (_sink, reconciled) = Sink::file(&path, Some(&committed)).unwrap();
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
        let (_sink, reconciled) = Sink::file(&path, Some(&committed)).unwrap();
        assert_eq!(reconciled, Reconciled::Rotated);
        assert_eq!(fs::read_to_string(&path).unwrap(), "x\n");

        // moved away and recreated, then grown past the old length by someone else.
        fs::rename(&path, dir.path().join("events.json.1")).unwrap();
        fs::write(&path, "a different file that is now longer than before\n").unwrap();
        let (_sink, reconciled) = Sink::file(&path, Some(&committed)).unwrap();
        assert_eq!(reconciled, Reconciled::Rotated);
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .starts_with("a different")
        );
    }

    #[test]
    fn a_failed_write_is_never_retried_so_no_half_line_gets_committed() {
        let (mut sink, _) = Sink::file(Path::new("/dev/full"), None).unwrap();
        sink.append(b"{\"a\":1}");
        let first = sink.flush().unwrap_err().to_string();
        assert!(first.contains("No space left"), "{first}");
        // A second attempt would write the buffer again (and hit ENOSPC again); it must not.
        let second = sink.commit().unwrap_err().to_string();
        assert!(second.contains("an earlier write failed"), "{second}");
        assert_eq!(sink.written(), 0);
    }

    #[test]
    fn a_special_file_commits_without_a_position() {
        let (mut sink, _) = Sink::file(Path::new("/dev/null"), None).unwrap();
        sink.append(b"{\"a\":1}");
        assert_eq!(sink.commit().unwrap(), None);
    }

    #[test]
    fn a_missing_directory_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let error = Sink::file(&dir.path().join("no/such/dir/x.json"), None)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("create its directory"),
            "{error}"
        );
    }

    #[test]
    fn buffer_asks_for_a_flush_before_overflowing() {
        let mut sink = Sink::stdout();
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
