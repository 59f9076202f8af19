//! One run at a time per state file.

use super::state_file::open_private;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another akamai-siem run{holder} is using {}; this run stops without fetching. \
         If runs keep overlapping, lengthen the schedule interval or lower max_events",
        state.display()
    )]
    Held { state: PathBuf, holder: String },
    #[error("cannot create the lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held until dropped; the kernel releases it if the process dies, so no stale lock survives a
/// crash or `kill -9`.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    pub fn path_for(state: &Path) -> PathBuf {
        let mut name = state.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    pub fn acquire(state: &Path) -> Result<RunLock, LockError> {
        let path = Self::path_for(state);
        let io_error = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = open_private(&path).map_err(io_error)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held {
                    state: state.to_path_buf(),
                    holder: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                });
            }
            return Err(io_error(error));
        }
        // The pid only helps an operator find the other run; failing to write it is harmless.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = writeln!(file, "{}", std::process::id());
        Ok(RunLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let first = RunLock::acquire(&state).unwrap();
        let error = RunLock::acquire(&state).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, LockError::Held { .. }));
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        RunLock::acquire(&state).unwrap();
    }
}
