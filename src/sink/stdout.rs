//! Stdout: the command wodle's pipe, or a terminal.

use super::{Destination, OutputError};
use crate::checkpoint::OutputPosition;
use std::io::{self, Write};
use std::sync::Mutex;

/// Under Wazuh's wodle stdout and stderr are one pipe, and a pipe write over 4 KiB is not
/// atomic: every write to either goes through this lock so a diagnostic line can never land in
/// the middle of an event line.
pub static PIPE_LOCK: Mutex<()> = Mutex::new(());

pub struct Stdout(io::Stdout);

impl Stdout {
    pub fn new() -> Stdout {
        Stdout(io::stdout())
    }
}

impl Destination for Stdout {
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        let _pipe = PIPE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut lock = self.0.lock();
        lock.write_all(lines).and_then(|()| lock.flush())
    }

    /// What went down a pipe cannot be taken back, nor synced: written is all there is.
    fn make_durable(&mut self) -> io::Result<Option<OutputPosition>> {
        Ok(None)
    }

    fn describe(&self) -> String {
        "stdout".to_string()
    }
}

/// Refuse a stdout nobody can read, for a run that commits what it writes there. A closed stdout
/// (`>&-`) is reopened as /dev/null by the runtime, so both look alike here; `--output
/// /dev/null` discards on purpose.
pub fn check_for_a_reader() -> Result<(), OutputError> {
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
    Ok(())
}
