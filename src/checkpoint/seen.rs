//! Hashes of recently delivered events, kept in memory for lookups and in an append-only
//! journal for the next run.
//!
//! `requestId` is not unique per event (API doc §5); the raw line is the only reliable identity.
//! SHA-256 truncated to 64 bits: the CPU computes it in hardware, it needs no extra dependency,
//! and unlike a fast non-cryptographic hash an attacker who controls request content cannot
//! craft an event that collides with another one to get it dropped.

use super::state_file::{SeenPosition, StateError, open_private, sync_directory, write_durably};
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub fn event_hash(raw_event: &[u8]) -> u64 {
    let mut hasher = EventHasher::new();
    hasher.update(raw_event);
    hasher.finish()
}

/// [`event_hash`] of a line that arrives in pieces (one too long to hold whole).
#[derive(Clone, Default)]
pub struct EventHasher(Sha256);

impl EventHasher {
    pub fn new() -> EventHasher {
        EventHasher(Sha256::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> u64 {
        let digest = self.0.finalize();
        u64::from_le_bytes(
            digest[..8]
                .try_into()
                .expect("a SHA-256 digest has 32 bytes"),
        )
    }
}

/// The keys are already uniformly distributed hashes: hashing them again is wasted work.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

const ENTRY: u64 = 8;

struct Journal {
    state_path: PathBuf,
    generation: u64,
    file: File,
    /// Entries in the file (flushed).
    entries: u64,
    pending: Vec<u8>,
}

impl Journal {
    fn path(state_path: &Path, generation: u64) -> PathBuf {
        let mut name = state_path.as_os_str().to_owned();
        name.push(format!(".seen.{generation}"));
        PathBuf::from(name)
    }

    fn error(&self, source: std::io::Error) -> StateError {
        StateError::Journal {
            path: Self::path(&self.state_path, self.generation),
            source,
        }
    }
}

pub struct Seen {
    set: HashSet<u64, BuildHasherDefault<PassThrough>>,
    order: VecDeque<u64>,
    capacity: usize,
    journal: Option<Journal>,
}

impl Seen {
    /// For runs without state: still drops the replays of a page fetched twice in one run.
    pub fn in_memory(capacity: usize) -> Seen {
        Seen {
            set: HashSet::default(),
            order: VecDeque::new(),
            capacity,
            journal: None,
        }
    }

    /// Loads the journal named by `committed`. Entries written after the last commit are kept
    /// when `keep_uncommitted` (their events went to stdout and cannot be taken back) and cut
    /// otherwise (their events were cut from the output file too).
    pub fn open(
        state_path: &Path,
        committed: SeenPosition,
        keep_uncommitted: bool,
        capacity: usize,
    ) -> Result<Seen, StateError> {
        let path = Journal::path(state_path, committed.generation);
        let journal_error = |source| StateError::Journal {
            path: path.clone(),
            source,
        };
        let file = open_private(&path).map_err(journal_error)?;
        let on_disk = file.metadata().map_err(journal_error)?.len() / ENTRY;
        if on_disk < committed.entries {
            tracing::warn!(
                "the seen-events journal {} is shorter than the state records ({} of {} \
                 entries); replays of older events may be delivered twice",
                path.display(),
                on_disk,
                committed.entries
            );
        }
        let entries = if keep_uncommitted {
            on_disk
        } else {
            on_disk.min(committed.entries)
        };
        file.set_len(entries * ENTRY).map_err(journal_error)?;

        let mut seen = Seen::in_memory(capacity);
        let first = entries.saturating_sub(capacity as u64);
        let mut bytes = vec![0; ((entries - first) * ENTRY) as usize];
        file.read_exact_at(&mut bytes, first * ENTRY)
            .map_err(journal_error)?;
        for entry in bytes.chunks_exact(ENTRY as usize) {
            seen.remember(u64::from_le_bytes(entry.try_into().expect("8 bytes")));
        }
        seen.journal = Some(Journal {
            state_path: state_path.to_path_buf(),
            generation: committed.generation,
            file,
            entries,
            pending: Vec::new(),
        });
        remove_other_generations(state_path, committed.generation);
        Ok(seen)
    }

    pub fn contains(&self, hash: u64) -> bool {
        self.set.contains(&hash)
    }

    /// Remember a delivered event (journalled at the next `flush`).
    pub fn record(&mut self, hash: u64) {
        if self.capacity == 0 {
            return;
        }
        self.remember(hash);
        if let Some(journal) = &mut self.journal {
            journal.pending.extend_from_slice(&hash.to_le_bytes());
        }
    }

    fn remember(&mut self, hash: u64) {
        if self.capacity == 0 || !self.set.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
    }

    /// Append what was recorded since the last flush (call right after the output write).
    pub fn flush(&mut self) -> Result<(), StateError> {
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        if journal.pending.is_empty() {
            return Ok(());
        }
        let offset = journal.entries * ENTRY;
        if let Err(source) = journal.file.write_all_at(&journal.pending, offset) {
            return Err(journal.error(source));
        }
        journal.entries += journal.pending.len() as u64 / ENTRY;
        journal.pending.clear();
        Ok(())
    }

    /// The output failed: what was recorded since the last flush may not have reached its
    /// reader, so it is not journalled (at worst those events come twice, never not at all).
    pub fn discard_pending(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.pending.clear();
        }
    }

    /// Flush and make durable: before a state that names this position is saved.
    pub fn sync(&mut self) -> Result<SeenPosition, StateError> {
        self.flush()?;
        if let Some(journal) = &self.journal
            && let Err(source) = journal.file.sync_data()
        {
            return Err(journal.error(source));
        }
        Ok(self.position())
    }

    pub fn position(&self) -> SeenPosition {
        self.journal
            .as_ref()
            .map(|j| SeenPosition {
                generation: j.generation,
                entries: j.entries,
            })
            .unwrap_or_default()
    }

    /// When the journal holds more than twice what memory keeps, start a new generation with
    /// only the kept entries. The caller saves a state naming the new position and only then
    /// calls [`Seen::remove_generation`] on the returned old one: a crash in between leaves the
    /// old generation named by the old state, intact.
    pub fn compact_if_large(&mut self) -> Result<Option<u64>, StateError> {
        self.flush()?;
        let capacity = self.capacity as u64;
        let Some(journal) = &mut self.journal else {
            return Ok(None);
        };
        if journal.entries <= capacity.saturating_mul(2).max(1024) {
            return Ok(None);
        }
        let generation = journal.generation + 1;
        let path = Journal::path(&journal.state_path, generation);
        let error = |source| StateError::Journal {
            path: path.clone(),
            source,
        };
        let mut bytes = Vec::with_capacity(self.order.len() * ENTRY as usize);
        for hash in &self.order {
            bytes.extend_from_slice(&hash.to_le_bytes());
        }
        let file = write_durably(&path, &bytes).map_err(error)?;
        sync_directory(&path).map_err(error)?;
        let old = journal.generation;
        journal.file = file;
        journal.generation = generation;
        journal.entries = self.order.len() as u64;
        Ok(Some(old))
    }

    /// Hashes held in memory.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.len()
    }

    pub fn remove_generation(state_path: &Path, generation: u64) {
        let _ = fs::remove_file(Journal::path(state_path, generation));
    }
}

/// Leftovers of a compaction that crashed before its state was saved.
fn remove_other_generations(state_path: &Path, keep: u64) {
    let (Some(dir), Some(name)) = (state_path.parent(), state_path.file_name()) else {
        return;
    };
    let prefix = format!("{}.seen.", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if let Some(generation) = file_name.strip_prefix(&prefix)
            && generation.parse::<u64>().is_ok_and(|g| g != keep)
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_differ_for_different_lines_and_match_for_equal_ones() {
        assert_eq!(event_hash(b"{\"a\":1}"), event_hash(b"{\"a\":1}"));
        assert_ne!(event_hash(b"{\"a\":1}"), event_hash(b"{\"a\":2}"));
    }

    #[test]
    fn memory_keeps_only_the_most_recent() {
        let mut seen = Seen::in_memory(3);
        for hash in 1..=5 {
            seen.record(hash);
        }
        assert!(!seen.contains(1) && !seen.contains(2));
        assert!(seen.contains(3) && seen.contains(5));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn zero_capacity_disables_dedup() {
        let mut seen = Seen::in_memory(0);
        seen.record(7);
        assert!(!seen.contains(7));
    }

    #[test]
    fn committed_entries_survive_and_uncommitted_ones_follow_the_output_kind() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let mut seen = Seen::open(&state, SeenPosition::default(), true, 100).unwrap();
        seen.record(1);
        seen.record(2);
        let committed = seen.sync().unwrap();
        assert_eq!(committed.entries, 2);
        seen.record(3); // delivered, then the process died before the next commit
        seen.flush().unwrap();
        drop(seen);

        let stdout_like = Seen::open(&state, committed, true, 100).unwrap();
        assert!(stdout_like.contains(3), "stdout cannot take event 3 back");
        drop(stdout_like);

        // The stdout-like open kept 3 entries on disk; a file-like open cuts back to the commit.
        let file_like = Seen::open(&state, committed, false, 100).unwrap();
        assert!(file_like.contains(1) && file_like.contains(2));
        assert!(
            !file_like.contains(3),
            "event 3 was cut from the file, it must come again"
        );
        assert_eq!(file_like.position().entries, 2);
    }

    #[test]
    fn compaction_keeps_recent_entries_in_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let mut seen = Seen::open(&state, SeenPosition::default(), true, 10).unwrap();
        for hash in 0..2000 {
            seen.record(hash);
        }
        let old = seen
            .compact_if_large()
            .unwrap()
            .expect("2000 > max(2*10, 1024)");
        assert_eq!(old, 0);
        let position = seen.sync().unwrap();
        assert_eq!(
            position,
            SeenPosition {
                generation: 1,
                entries: 10
            }
        );
        Seen::remove_generation(&state, old);
        drop(seen);
        let reopened = Seen::open(&state, position, false, 10).unwrap();
        assert!(reopened.contains(1999) && !reopened.contains(1989));
        assert!(!Journal::path(&state, 0).exists());
    }

    #[test]
    fn a_crashed_compaction_leaves_the_old_generation_in_charge() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let mut seen = Seen::open(&state, SeenPosition::default(), true, 10).unwrap();
        for hash in 0..2000 {
            seen.record(hash);
        }
        let committed = seen.sync().unwrap();
        seen.compact_if_large().unwrap();
        drop(seen); // crash before the state naming generation 1 was saved
        let reopened = Seen::open(&state, committed, false, 10).unwrap();
        assert_eq!(reopened.position(), committed);
        assert!(reopened.contains(1999));
        assert!(
            !Journal::path(&state, 1).exists(),
            "the orphan generation is removed"
        );
    }
}
