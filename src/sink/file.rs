//! A file appended to, reconciled at open with the position the last run committed.

use super::{Destination, OutputError, Reconciled};
use crate::checkpoint::OutputPosition;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub struct AppendFile {
    file: File,
    path: PathBuf,
    /// Other tenants of the run append to it too: no position of ours describes it.
    shared: bool,
    /// Bytes written since writeback was last started (see [`WRITEBACK_AHEAD`]).
    unkicked: usize,
}

/// Writeback of what was written is started every this many bytes, so the fsync that commits a
/// page finds little left to write: without it the kernel holds a whole page's output (hundreds
/// of MB) dirty, and the commit then waits for all of it while nothing else runs (0.1 s of the
/// 0.8 s a 100,000-event page took). Starting writeback does not wait for it, and is only a
/// hint: the commit's fsync is still what makes lines durable.
pub const WRITEBACK_AHEAD: usize = 8 * 1024 * 1024;

impl AppendFile {
    /// Open `path` for appending and reconcile it with the last committed position.
    pub fn open(
        path: &Path,
        committed: Option<&OutputPosition>,
    ) -> Result<(AppendFile, Reconciled), OutputError> {
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
        let file = open_for_appending(path).map_err(open_error)?;
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
        let file = AppendFile {
            file,
            path: path.to_path_buf(),
            shared: false,
            unkicked: 0,
        };
        Ok((file, reconciled))
    }

    /// A file several tenants of one run append to, each with its own descriptor: every write
    /// is whole lines and O_APPEND, so their lines never mix. No tenant can cut it back to its
    /// own last commit (that would cut the others' committed lines), so it commits by fsync
    /// alone; [`repair_torn_tail`] runs once before any tenant writes.
    pub fn open_shared(path: &Path) -> Result<AppendFile, OutputError> {
        let file = open_for_appending(path).map_err(|source| OutputError::Open {
            path: path.to_path_buf(),
            hint: "",
            source,
        })?;
        Ok(AppendFile {
            file,
            path: path.to_path_buf(),
            shared: true,
            unkicked: 0,
        })
    }
}

fn open_for_appending(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Cut an unfinished last line (a run that died mid-write) from a shared file, so the next
/// line appended is not glued to it; whole lines stay. The bytes cut, if any.
pub fn repair_torn_tail(path: &Path) -> io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let length = file.metadata()?.len();
    if !file.metadata()?.is_file() || length == 0 {
        return Ok(0);
    }
    // Read backwards in blocks until a newline: a torn line is at most one write long.
    let mut end = length;
    let mut block = vec![0u8; 64 * 1024];
    loop {
        let start = end.saturating_sub(block.len() as u64);
        let size = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block[..size])?;
        if let Some(at) = block[..size].iter().rposition(|&b| b == b'\n') {
            let keep = start + at as u64 + 1;
            if keep < length {
                file.set_len(keep)?;
                file.sync_all()?;
            }
            return Ok(length - keep);
        }
        if start == 0 {
            file.set_len(0)?;
            file.sync_all()?;
            return Ok(length);
        }
        end = start;
    }
}

/// Start writing the file's dirty pages to disk, without waiting for them. Errors are ignored:
/// a FIFO or /dev/null has nothing to write back (ESPIPE, EINVAL), and a disk error is reported
/// by the fsync of the next commit, which is what decides whether lines count as delivered.
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

impl Destination for AppendFile {
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        self.file.write_all(lines)?;
        self.unkicked += lines.len();
        if self.unkicked >= WRITEBACK_AHEAD {
            self.unkicked = 0;
            start_writeback(&self.file);
        }
        Ok(())
    }

    fn make_durable(&mut self) -> io::Result<Option<OutputPosition>> {
        let metadata = self.file.metadata()?;
        if !metadata.is_file() {
            // /dev/null, a FIFO, a terminal: nothing to sync (fsync says EINVAL) and no length
            // to cut back to; what the writes took is all there is.
            return Ok(None);
        }
        self.file.sync_data()?;
        if self.shared {
            return Ok(None);
        }
        Ok(Some(OutputPosition {
            path: self.path.clone(),
            device: metadata.dev(),
            inode: metadata.ino(),
            length: metadata.len(),
        }))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests;
