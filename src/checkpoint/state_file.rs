//! The state file: what the next run needs, written atomically.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Offsets are bound to the host and the exact config-id set they came from.
    pub host: String,
    pub config_ids: String,
    /// Where the next request continues; `None` after a reset or before the first page.
    #[serde(default)]
    pub offset: Option<String>,
    /// Unix seconds when `offset` was received, to judge its age.
    #[serde(default)]
    pub offset_obtained_at: Option<i64>,
    /// Unix seconds: every event Akamai stored before this time has been delivered. A
    /// time-based recovery starts here (minus the overlap).
    #[serde(default)]
    pub checkpoint: Option<i64>,
    /// The output file as of the last commit, to cut an uncommitted tail after a crash.
    #[serde(default)]
    pub output: Option<OutputPosition>,
    #[serde(default)]
    pub seen: SeenPosition,
    #[serde(default)]
    pub last_run: Option<RunRecord>,
    /// Config ids the API refused on their own (403, 404) while the others were fetched: each
    /// is tried alone on every run and resumes from its own checkpoint once accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedConfig>,
    /// Counters over every run with this state, for the metrics (Prometheus' `rate()` needs
    /// counters that only grow). Absent from state files written before the metrics.
    #[serde(default)]
    pub totals: Totals,
}

/// What every run so far added up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub runs: u64,
    pub failed_runs: u64,
    pub events: u64,
    pub duplicates: u64,
    pub pages: u64,
    pub response_bytes: u64,
    pub output_bytes: u64,
    /// Retries by cause (`rate_limited`, `server_error`, `page_cut`...).
    pub retries: BTreeMap<String, u64>,
    /// Time-based recoveries (an expired or refused offset, a host or config change).
    pub recoveries: u64,
    pub gaps: u64,
    /// Seconds of events lost in those gaps.
    pub gap_seconds: u64,
    pub events_with_decode_errors: u64,
    pub bad_lines: u64,
    pub shrunk_events: u64,
    /// Unix seconds when the last run that exited 0 finished.
    pub last_success_at: Option<i64>,
}

/// A config id the API refused, and how far its events were delivered before that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedConfig {
    pub id: u64,
    /// The HTTP status of the refusal: 403 (no SIEM access) or 404 (unknown id).
    pub status: u16,
    /// The API's own words, for the diagnostic that repeats on every run.
    pub reason: String,
    /// Unix seconds of the first refusal.
    pub since: i64,
    /// Unix seconds: every event of this id stored before this time was delivered (the set's
    /// checkpoint when it was refused, then moved on while it catches up).
    #[serde(default)]
    pub checkpoint: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputPosition {
    pub path: PathBuf,
    pub device: u64,
    pub inode: u64,
    pub length: u64,
}

/// How much of which journal generation is committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenPosition {
    pub generation: u64,
    pub entries: u64,
}

/// What the last run did, for `state show` and for the next run's warnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub finished_at: i64,
    pub events: u64,
    pub pages: u64,
    pub caught_up: bool,
    /// Why the run stopped before catching up (`max_events`, `max_bytes`, `interrupted`…).
    #[serde(default)]
    pub stopped_by: Option<String>,
    /// The run's exit code and how long it took (absent from older state files).
    #[serde(default)]
    pub exit_code: Option<u8>,
    #[serde(default)]
    pub duration_ms: u64,
}

impl State {
    /// Record where the output stands after a commit. A destination without a position
    /// (stdout, /dev/null) keeps the last file's, for a later run into that file.
    pub fn record_output(&mut self, position: Option<OutputPosition>) {
        if position.is_some() {
            self.output = position;
        }
    }

    pub fn new(host: &str, config_ids: &str) -> State {
        State {
            version: STATE_VERSION,
            host: host.to_string(),
            config_ids: config_ids.to_string(),
            offset: None,
            offset_obtained_at: None,
            checkpoint: None,
            output: None,
            seen: SeenPosition::default(),
            last_run: None,
            refused: Vec::new(),
            totals: Totals::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the state file {} is not valid ({problem}); nothing was fetched. Move it away to start \
         over from initial_lookback, or run `akamai-siem state reset --from TIME`",
        path.display()
    )]
    Corrupt { path: PathBuf, problem: String },
    #[error(
        "the state file {} was written by a newer akamai-siem (format {found}, this one reads \
         {STATE_VERSION}); upgrade this binary",
        path.display()
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("cannot save the state file {}: {source}; the next run repeats this run's last page", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use the seen-events journal {}: {source}", path.display())]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> StateFile {
        StateFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(None)` when there is no state yet (the first run).
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let corrupt = |problem: String| StateError::Corrupt {
            path: self.path.clone(),
            problem,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        let version = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| corrupt("no `version`".to_string()))?;
        if version > u64::from(STATE_VERSION) {
            return Err(StateError::TooNew {
                path: self.path.clone(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
            });
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Replace the state atomically and durably.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let write_error = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        let mut text = serde_json::to_vec_pretty(state).expect("state serialises");
        text.push(b'\n');
        let temporary = self.temporary_path();
        let written =
            write_durably(&temporary, &text).and_then(|_| fs::rename(&temporary, &self.path));
        if let Err(error) = written {
            // A half-written temporary must not outlive the failure (a full disk keeps it full).
            let _ = fs::remove_file(&temporary);
            return Err(write_error(error));
        }
        sync_directory(&self.path).map_err(write_error)
    }

    /// Remove a temporary left by a run that died while saving. Only under the run lock: a
    /// running collector's save in progress would otherwise lose its file.
    pub fn remove_stale_temporary(&self) {
        let _ = fs::remove_file(self.temporary_path());
    }

    fn temporary_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".tmp");
        PathBuf::from(name)
    }
}

/// Open (creating if needed, never truncating) a file only its owner may read: the lock and the
/// journal sit beside the state and say what was collected.
pub fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Replace `path` with `bytes`, readable by its owner only, and durable before this returns
/// (the file; a new name in a directory is durable once the caller syncs the directory).
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(file)
}

/// A rename is durable only once its directory is.
pub fn sync_directory(path: &Path) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_without_a_position_keeps_the_files() {
        let mut state = sample();
        let file = state.output.clone();
        state.record_output(None);
        assert_eq!(state.output, file, "stdout or /dev/null must not erase it");
        let moved = OutputPosition {
            length: 99,
            ..file.clone().unwrap()
        };
        state.record_output(Some(moved.clone()));
        assert_eq!(state.output, Some(moved));
    }

    #[test]
    fn a_failed_save_leaves_no_temporary_behind() {
        // The temporary is created, but the rename onto a directory fails.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("occupied"), "x").unwrap();
        let file = StateFile::new(&path);
        assert!(file.save(&State::new("h", "1")).is_err());
        assert!(!file.temporary_path().exists());
    }

    #[test]
    fn a_stale_temporary_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("state"));
        fs::write(file.temporary_path(), "{half").unwrap();
        file.remove_stale_temporary();
        assert!(!file.temporary_path().exists());
    }

    fn sample() -> State {
        let mut state = State::new("akab-x.luna.akamaiapis.net", "1;2");
        state.offset = Some("8c3a1;Xk9p-_".into());
        state.offset_obtained_at = Some(1_700_000_000);
        state.checkpoint = Some(1_699_999_000);
        state.output = Some(OutputPosition {
            path: "/var/log/akamai.json".into(),
            device: 1,
            inode: 2,
            length: 3,
        });
        state.seen = SeenPosition {
            generation: 4,
            entries: 5,
        };
        state
    }

    #[test]
    fn round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.state"));
        assert_eq!(file.load().unwrap(), None);
        file.save(&sample()).unwrap();
        assert_eq!(file.load().unwrap(), Some(sample()));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "state must not be readable by others");
        assert!(!file.temporary_path().exists());
    }

    #[test]
    fn refused_ids_round_trip_and_older_states_load_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.state"));
        let mut state = sample();
        state.refused.push(RefusedConfig {
            id: 2,
            status: 403,
            reason: "not authorized".into(),
            since: 1_700_000_100,
            checkpoint: Some(1_699_999_000),
        });
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), Some(state));
        // A state written before refused ids existed has no such key.
        file.save(&sample()).unwrap();
        let text = fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains("refused"), "{text}");
        assert_eq!(file.load().unwrap().unwrap().refused, Vec::new());
    }

    #[test]
    fn corrupt_state_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.state"));
        fs::write(file.path(), "{\"version\":1,\"host\":").unwrap();
        let message = file.load().unwrap_err().to_string();
        assert!(message.contains("state reset"), "{message}");
    }

    #[test]
    fn a_state_from_before_the_metrics_loads_with_zero_totals() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.state"));
        fs::write(
            file.path(),
            r#"{"version":1,"host":"h","config_ids":"1","checkpoint":5,
                "last_run":{"finished_at":9,"events":3,"pages":1,"caught_up":true}}"#,
        )
        .unwrap();
        let state = file.load().unwrap().unwrap();
        assert_eq!(state.totals, Totals::default());
        assert_eq!(state.last_run.unwrap().exit_code, None);
        assert_eq!(state.checkpoint, Some(5));
    }

    #[test]
    fn newer_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.state"));
        fs::write(file.path(), "{\"version\":99}").unwrap();
        assert!(matches!(
            file.load(),
            Err(StateError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn an_interrupted_save_leaves_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.state"));
        file.save(&sample()).unwrap();
        // A crash after writing the temporary file but before the rename.
        fs::write(file.temporary_path(), "{\"version\":1,\"half").unwrap();
        assert_eq!(file.load().unwrap(), Some(sample()));
        // The next save replaces the leftover.
        let mut newer = sample();
        newer.offset = Some("next".into());
        file.save(&newer).unwrap();
        assert_eq!(file.load().unwrap(), Some(newer));
    }
}
