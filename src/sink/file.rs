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
}

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
        let file = AppendFile {
            file,
            path: path.to_path_buf(),
        };
        Ok((file, reconciled))
    }
}

impl Destination for AppendFile {
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        self.file.write_all(lines)
    }

    fn make_durable(&mut self) -> io::Result<Option<OutputPosition>> {
        let metadata = self.file.metadata()?;
        if !metadata.is_file() {
            // /dev/null, a FIFO, a terminal: nothing to sync (fsync says EINVAL) and no length
            // to cut back to; what the writes took is all there is.
            return Ok(None);
        }
        self.file.sync_data()?;
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
