//! Hashes of recently delivered events, kept in memory for lookups and in an append-only
//! journal for the next run.
//!
//! `requestId` is not unique per event (API doc §5); the raw line is the only reliable identity.
//! The identity is SipHash-2-4 (128-bit output, 64 bits kept) of the raw line under a random
//! key made for each installation and kept in the journal's header. An attacker controls much
//! of a request's content, but without the key cannot craft an event whose hash matches
//! another one's to get it dropped as a replay: that is what a keyed hash gives, at about 1.5
//! times SHA-256's speed on CPUs with SHA instructions and far more without them.
//!
//! Journals written before the key existed hold SHA-256 hashes (truncated to 64 bits), which
//! cannot be recomputed under a key. They are kept as they are, marked as such in the header,
//! and an event is a replay when either its keyed hash or (while any such entry is still in
//! memory) its SHA-256 hash was recorded; the old entries age out of memory and out of the
//! journal at compaction like any other.

use super::sip_lanes;
use super::state_file::{SeenPosition, StateError, open_private, sync_directory, write_durably};
use sha2::{Digest, Sha256};
use siphasher::sip128::{Hasher128, SipHasher24};
use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The identity of an event line: its keyed hash, and its SHA-256 hash while the journal still
/// holds entries written before keyed hashes (only then is it computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHash {
    keyed: u64,
    legacy: Option<u64>,
}

/// How event lines are hashed in this installation: the key, and whether the SHA-256 hash of
/// older journals is needed too. Cheap to clone, one per format worker.
#[derive(Clone)]
pub struct Identity {
    key: [u8; 16],
    legacy: bool,
}

impl std::fmt::Debug for Identity {
    // The key stays out of any debug output: with it, collisions could be crafted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("legacy", &self.legacy)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh random key: for a run without state, and for a journal made anew.
    pub fn random() -> Identity {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).expect("the operating system provides random bytes");
        Identity { key, legacy: false }
    }

    pub fn hash(&self, raw_event: &[u8]) -> EventHash {
        let mut hasher = self.hasher();
        hasher.update(raw_event);
        hasher.finish()
    }

    /// [`Identity::hash`] of every line, appended to `hashes` in the lines' order: the same
    /// bits, but on CPUs with AVX2 the keyed hashes of several lines are computed at once
    /// (`sip_lanes`), for a batch costing a fraction of line-by-line hashing.
    pub fn hash_lines(&self, lines: &[&[u8]], hashes: &mut Vec<EventHash>) {
        self.hash_lines_by(lines, hashes, |key, lines, done| {
            sip_lanes::hash_each(key, lines, done)
        });
    }

    /// [`Identity::hash_lines`] one line at a time, without the lanes: to compare with them.
    #[doc(hidden)]
    pub fn hash_lines_scalar(&self, lines: &[&[u8]], hashes: &mut Vec<EventHash>) {
        self.hash_lines_by(lines, hashes, |key, lines, done| {
            sip_lanes::scalar_each(key, lines, done)
        });
    }

    /// The batch hashes with the keyed ones from `keyed_each`; the legacy SHA-256 (when the
    /// journal still needs it) per line.
    fn hash_lines_by(
        &self,
        lines: &[&[u8]],
        hashes: &mut Vec<EventHash>,
        keyed_each: impl FnOnce(&[u8; 16], &[&[u8]], &mut dyn FnMut(usize, u64)),
    ) {
        let start = hashes.len();
        hashes.extend(lines.iter().map(|line| EventHash {
            keyed: 0,
            legacy: self.legacy.then(|| legacy_hash(line)),
        }));
        let batch = &mut hashes[start..];
        keyed_each(&self.key, lines, &mut |index, keyed| {
            batch[index].keyed = keyed
        });
    }

    /// For a line that arrives in pieces (one too long to hold whole).
    pub fn hasher(&self) -> EventHasher {
        EventHasher {
            keyed: SipHasher24::new_with_key(&self.key),
            legacy: self.legacy.then(Sha256::new),
        }
    }
}

/// [`Identity::hash`] of a line fed in pieces.
#[derive(Clone)]
pub struct EventHasher {
    keyed: SipHasher24,
    legacy: Option<Sha256>,
}

impl EventHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.keyed.write(bytes);
        if let Some(legacy) = &mut self.legacy {
            legacy.update(bytes);
        }
    }

    pub fn finish(self) -> EventHash {
        EventHash {
            keyed: self.keyed.finish128().h1,
            legacy: self.legacy.map(|legacy| {
                let digest = legacy.finalize();
                u64::from_le_bytes(
                    digest[..8]
                        .try_into()
                        .expect("a SHA-256 digest has 32 bytes"),
                )
            }),
        }
    }
}

/// The SHA-256 identity of journals from before the key, truncated as they hold it.
fn legacy_hash(line: &[u8]) -> u64 {
    let digest = Sha256::digest(line);
    u64::from_le_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
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

/// A journal starts with `MAGIC`, the key, and how many of its first entries are SHA-256
/// hashes from before the key existed; entries follow. A journal without the header is one
/// of those older ones, all SHA-256: an old hash equal to `MAGIC` has a chance of 2^-64.
const MAGIC: [u8; 8] = *b"AKSEEN\x00\x02";
const HEADER: u64 = 32;

fn header(key: &[u8; 16], legacy: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER as usize);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&legacy.to_le_bytes());
    bytes
}

/// The key and the count of SHA-256 entries, when `file` starts with a header.
fn read_header(file: &File) -> std::io::Result<Option<([u8; 16], u64)>> {
    if file.metadata()?.len() < HEADER {
        return Ok(None);
    }
    let mut bytes = [0u8; HEADER as usize];
    file.read_exact_at(&mut bytes, 0)?;
    if bytes[..8] != MAGIC {
        return Ok(None);
    }
    let key = bytes[8..24].try_into().expect("16 bytes");
    let legacy = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
    Ok(Some((key, legacy)))
}

struct Journal {
    state_path: PathBuf,
    generation: u64,
    file: File,
    /// Entries in the file (flushed), after the header.
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

/// A journal from before keyed hashes becomes one with a header, a new key, and all its entries
/// marked as SHA-256 ones, in the same place: so the state, which counts entries, still names
/// it rightly. Written beside it and renamed over it, so a crash leaves the old or the new one.
fn add_header(path: &Path, file: File, entries: u64) -> std::io::Result<(File, [u8; 16])> {
    let key = Identity::random().key;
    let mut bytes = header(&key, entries);
    let start = bytes.len();
    bytes.resize(start + (entries * ENTRY) as usize, 0);
    file.read_exact_at(&mut bytes[start..], 0)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let written = write_durably(&temporary, &bytes).and_then(|new| {
        fs::rename(&temporary, path)?;
        sync_directory(path)?;
        Ok(new)
    });
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    Ok((written?, key))
}

pub struct Seen {
    identity: Identity,
    set: HashSet<u64, BuildHasherDefault<PassThrough>>,
    /// SHA-256 hashes from a journal older than the key, while they are among the kept ones.
    legacy: HashSet<u64, BuildHasherDefault<PassThrough>>,
    /// Oldest first; the first `legacy_in_order` are SHA-256 hashes (all older than any keyed
    /// one: they come from before the key).
    order: VecDeque<u64>,
    legacy_in_order: usize,
    capacity: usize,
    journal: Option<Journal>,
}

impl Seen {
    /// For runs without state: still drops the replays of a page fetched twice in one run.
    pub fn in_memory(capacity: usize) -> Seen {
        Seen {
            identity: Identity::random(),
            set: HashSet::default(),
            legacy: HashSet::default(),
            order: VecDeque::new(),
            legacy_in_order: 0,
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
        let mut file = open_private(&path).map_err(journal_error)?;
        let found = read_header(&file).map_err(journal_error)?;
        let base = if found.is_some() { HEADER } else { 0 };
        let length = file.metadata().map_err(journal_error)?.len();
        let on_disk = length.saturating_sub(base) / ENTRY;
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
        file.set_len(base + entries * ENTRY)
            .map_err(journal_error)?;
        let (key, legacy) = match found {
            Some(header) => header,
            None => {
                let (new, key) = add_header(&path, file, entries).map_err(journal_error)?;
                file = new;
                (key, entries)
            }
        };

        let mut seen = Seen::in_memory(capacity);
        let first = entries.saturating_sub(capacity as u64);
        let mut bytes = vec![0; ((entries - first) * ENTRY) as usize];
        file.read_exact_at(&mut bytes, HEADER + first * ENTRY)
            .map_err(journal_error)?;
        for (index, entry) in (first..).zip(bytes.chunks_exact(ENTRY as usize)) {
            let hash = u64::from_le_bytes(entry.try_into().expect("8 bytes"));
            if index < legacy {
                seen.remember_legacy(hash);
            } else {
                seen.remember(hash);
            }
        }
        seen.identity = Identity {
            key,
            legacy: !seen.legacy.is_empty(),
        };
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

    /// How the lines of this run must be hashed for [`Seen::contains`] to know them.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn contains(&self, hash: EventHash) -> bool {
        self.set.contains(&hash.keyed)
            || hash
                .legacy
                .is_some_and(|legacy| self.legacy.contains(&legacy))
    }

    /// Remember a delivered event (journalled at the next `flush`).
    pub fn record(&mut self, hash: EventHash) {
        if self.capacity == 0 {
            return;
        }
        self.remember(hash.keyed);
        if let Some(journal) = &mut self.journal {
            journal.pending.extend_from_slice(&hash.keyed.to_le_bytes());
        }
    }

    fn remember(&mut self, hash: u64) {
        if self.capacity == 0 || !self.set.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        self.evict();
    }

    fn remember_legacy(&mut self, hash: u64) {
        if self.capacity == 0 || !self.legacy.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        self.legacy_in_order += 1;
        self.evict();
    }

    fn evict(&mut self) {
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            if self.legacy_in_order > 0 {
                self.legacy_in_order -= 1;
                self.legacy.remove(&oldest);
            } else {
                self.set.remove(&oldest);
            }
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
        let offset = HEADER + journal.entries * ENTRY;
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
    /// only the kept entries (and the key). The caller saves a state naming the new position
    /// and only then calls [`Seen::remove_generation`] on the returned old one: a crash in
    /// between leaves the old generation named by the old state, intact.
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
        let mut bytes = header(&self.identity.key, self.legacy_in_order as u64);
        bytes.reserve(self.order.len() * ENTRY as usize);
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
        self.set.len() + self.legacy.len()
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
        // `.tmp`: a journal given its header by a run that died before the rename.
        if let Some(generation) = file_name.strip_prefix(&prefix)
            && let unfinished = generation.strip_suffix(".tmp")
            && unfinished
                .unwrap_or(generation)
                .parse::<u64>()
                .is_ok_and(|g| g != keep || unfinished.is_some())
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash as a journal holds it, for tests that need no real line.
    fn keyed(n: u64) -> EventHash {
        EventHash {
            keyed: n,
            legacy: None,
        }
    }

    #[test]
    fn hashes_differ_for_different_lines_and_match_for_equal_ones() {
        let identity = Identity::random();
        assert_eq!(identity.hash(b"{\"a\":1}"), identity.hash(b"{\"a\":1}"));
        assert_ne!(identity.hash(b"{\"a\":1}"), identity.hash(b"{\"a\":2}"));
    }

    #[test]
    fn a_batch_hashes_as_its_lines_one_by_one_with_and_without_sha256() {
        let mut identity = Identity::random();
        let lines: Vec<Vec<u8>> = (0..23u64)
            .map(|n| {
                let mut line = line(n * 977);
                line.resize(line.len() + (n as usize * 131) % 2300, b'x');
                line
            })
            .collect();
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        for legacy in [false, true] {
            identity.legacy = legacy;
            for batch in [0, 1, 2, 3, 4, 5, 9, 23] {
                let expected: Vec<EventHash> =
                    lines[..batch].iter().map(|l| identity.hash(l)).collect();
                let mut hashes = vec![keyed(7)];
                identity.hash_lines(&lines[..batch], &mut hashes);
                assert_eq!(hashes[0], keyed(7), "appended after what was there");
                assert_eq!(hashes[1..], expected[..], "legacy {legacy}, batch {batch}");
                let mut scalar = Vec::new();
                identity.hash_lines_scalar(&lines[..batch], &mut scalar);
                assert_eq!(scalar, expected);
                assert_eq!(
                    expected.iter().all(|h| h.legacy.is_some()),
                    legacy || batch == 0
                );
            }
        }
    }

    #[test]
    fn the_hash_depends_on_the_key() {
        let (one, other) = (Identity::random(), Identity::random());
        assert_ne!(one.hash(b"{\"a\":1}"), other.hash(b"{\"a\":1}"));
    }

    #[test]
    fn a_line_hashed_in_pieces_hashes_as_the_whole_line() {
        let mut identity = Identity::random();
        identity.legacy = true;
        let line = b"{\"a\":\"0123456789abcdefghijklmnopqrstuvwxyz\"}";
        for cut in [0, 1, 7, 8, 9, 16, line.len()] {
            let mut hasher = identity.hasher();
            hasher.update(&line[..cut]);
            hasher.update(&line[cut..]);
            assert_eq!(hasher.finish(), identity.hash(line), "cut at {cut}");
        }
        assert_eq!(identity.hash(line).legacy, Some(sha256_prefix(line)));
    }

    #[test]
    fn the_key_is_kept_in_the_journal_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let seen = Seen::open(&state, SeenPosition::default(), true, 100).unwrap();
        let hash = seen.identity().hash(b"{}");
        let key = seen.identity().key;
        assert_eq!(
            format!("{:?}", seen.identity()),
            "Identity { legacy: false, .. }"
        );
        drop(seen);
        let journal = Journal::path(&state, 0);
        let bytes = fs::read(&journal).unwrap();
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(&bytes[8..24], &key);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&journal).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let reopened = Seen::open(&state, SeenPosition::default(), true, 100).unwrap();
        assert_eq!(
            reopened.identity().hash(b"{}"),
            hash,
            "the same key next run"
        );
        let elsewhere = Seen::open(
            &dir.path().join("t.state"),
            SeenPosition::default(),
            true,
            100,
        );
        assert_ne!(
            elsewhere.unwrap().identity().hash(b"{}"),
            hash,
            "a key per installation"
        );
    }

    #[test]
    fn memory_keeps_only_the_most_recent() {
        let mut seen = Seen::in_memory(3);
        for hash in 1..=5 {
            seen.record(keyed(hash));
        }
        assert!(!seen.contains(keyed(1)) && !seen.contains(keyed(2)));
        assert!(seen.contains(keyed(3)) && seen.contains(keyed(5)));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn zero_capacity_disables_dedup() {
        let mut seen = Seen::in_memory(0);
        seen.record(keyed(7));
        assert!(!seen.contains(keyed(7)));
    }

    #[test]
    fn committed_entries_survive_and_uncommitted_ones_follow_the_output_kind() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let mut seen = Seen::open(&state, SeenPosition::default(), true, 100).unwrap();
        seen.record(keyed(1));
        seen.record(keyed(2));
        let committed = seen.sync().unwrap();
        assert_eq!(committed.entries, 2);
        seen.record(keyed(3)); // delivered, then the process died before the next commit
        seen.flush().unwrap();
        drop(seen);

        let stdout_like = Seen::open(&state, committed, true, 100).unwrap();
        assert!(
            stdout_like.contains(keyed(3)),
            "stdout cannot take event 3 back"
        );
        drop(stdout_like);

        // The stdout-like open kept 3 entries on disk; a file-like open cuts back to the commit.
        let file_like = Seen::open(&state, committed, false, 100).unwrap();
        assert!(file_like.contains(keyed(1)) && file_like.contains(keyed(2)));
        assert!(
            !file_like.contains(keyed(3)),
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
            seen.record(keyed(hash));
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
        assert!(reopened.contains(keyed(1999)) && !reopened.contains(keyed(1989)));
        assert!(!Journal::path(&state, 0).exists());
    }

    #[test]
    fn a_crashed_compaction_leaves_the_old_generation_in_charge() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let mut seen = Seen::open(&state, SeenPosition::default(), true, 10).unwrap();
        for hash in 0..2000 {
            seen.record(keyed(hash));
        }
        let committed = seen.sync().unwrap();
        seen.compact_if_large().unwrap();
        drop(seen); // crash before the state naming generation 1 was saved
        let reopened = Seen::open(&state, committed, false, 10).unwrap();
        assert_eq!(reopened.position(), committed);
        assert!(reopened.contains(keyed(1999)));
        assert!(
            !Journal::path(&state, 1).exists(),
            "the orphan generation is removed"
        );
    }

    fn sha256_prefix(line: &[u8]) -> u64 {
        u64::from_le_bytes(Sha256::digest(line)[..8].try_into().unwrap())
    }

    fn line(n: u64) -> Vec<u8> {
        format!("{{\"httpMessage\":{{\"requestId\":\"{n}\"}}}}").into_bytes()
    }

    /// A journal as the versions before keyed hashes wrote it: SHA-256 prefixes, no header.
    fn old_journal(state: &Path, lines: std::ops::Range<u64>) -> SeenPosition {
        let bytes: Vec<u8> = lines
            .clone()
            .flat_map(|n| sha256_prefix(&line(n)).to_le_bytes())
            .collect();
        fs::write(Journal::path(state, 0), bytes).unwrap();
        SeenPosition {
            generation: 0,
            entries: lines.end - lines.start,
        }
    }

    #[test]
    fn an_old_journal_still_drops_the_replays_it_covers_and_keeps_new_ones_keyed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let committed = old_journal(&state, 0..50);
        let mut seen = Seen::open(&state, committed, false, 1000).unwrap();
        assert_eq!(seen.position(), committed, "the state's count still holds");
        let identity = seen.identity().clone();
        assert!(identity.legacy, "old entries in memory: SHA-256 is needed");
        assert!((0..50).all(|n| seen.contains(identity.hash(&line(n)))));
        assert!(!seen.contains(identity.hash(&line(50))));
        for n in 50..60 {
            seen.record(identity.hash(&line(n)));
        }
        let committed = seen.sync().unwrap();
        assert_eq!(committed.entries, 60);
        drop(seen);
        assert!(
            !dir.path().join("s.state.seen.0.tmp").exists(),
            "the conversion leaves nothing behind"
        );

        let seen = Seen::open(&state, committed, false, 1000).unwrap();
        let identity = seen.identity().clone();
        assert!(identity.legacy);
        assert!(
            (0..60).all(|n| seen.contains(identity.hash(&line(n)))),
            "old and new entries both known after a restart"
        );
        assert!(!seen.contains(identity.hash(&line(60))));
        let bytes = fs::read(Journal::path(&state, 0)).unwrap();
        assert_eq!(bytes.len() as u64, HEADER + 60 * ENTRY);
        assert_eq!(u64::from_le_bytes(bytes[24..32].try_into().unwrap()), 50);
        let new_entry = u64::from_le_bytes(bytes[32 + 50 * 8..32 + 51 * 8].try_into().unwrap());
        assert_eq!(
            new_entry,
            identity.hash(&line(50)).keyed,
            "keyed from here on"
        );
        assert_ne!(new_entry, sha256_prefix(&line(50)));
    }

    #[test]
    fn uncommitted_old_entries_are_cut_before_the_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        old_journal(&state, 0..10);
        let committed = SeenPosition {
            generation: 0,
            entries: 8,
        };
        let seen = Seen::open(&state, committed, false, 100).unwrap();
        let identity = seen.identity().clone();
        assert!(seen.contains(identity.hash(&line(7))));
        assert!(
            !seen.contains(identity.hash(&line(8))),
            "cut from the output too"
        );
        assert_eq!(seen.position(), committed);
    }

    #[test]
    fn old_entries_age_out_and_then_sha256_is_no_longer_computed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let committed = old_journal(&state, 0..5);
        let mut seen = Seen::open(&state, committed, false, 5).unwrap();
        let identity = seen.identity().clone();
        for n in 100..103 {
            seen.record(identity.hash(&line(n)));
        }
        assert!(
            !seen.contains(identity.hash(&line(2))),
            "evicted, oldest first"
        );
        assert!(seen.contains(identity.hash(&line(3))));
        for n in 103..105 {
            seen.record(identity.hash(&line(n)));
        }
        let committed = seen.sync().unwrap();
        drop(seen);
        let seen = Seen::open(&state, committed, false, 5).unwrap();
        assert!(
            !seen.identity().legacy,
            "no old entry in the window any more"
        );
        let identity = seen.identity().clone();
        assert_eq!(identity.hash(&line(1)).legacy, None);
        assert!((100..105).all(|n| seen.contains(identity.hash(&line(n)))));
    }

    #[test]
    fn compaction_keeps_old_entries_marked_as_old() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let committed = old_journal(&state, 0..1500);
        let mut seen = Seen::open(&state, committed, false, 600).unwrap();
        let identity = seen.identity().clone();
        for n in 5000..5100 {
            seen.record(identity.hash(&line(n)));
        }
        let old = seen.compact_if_large().unwrap().expect("1600 > 1200");
        let position = seen.sync().unwrap();
        assert_eq!(position.entries, 600);
        Seen::remove_generation(&state, old);
        drop(seen);
        let seen = Seen::open(&state, position, false, 600).unwrap();
        let identity = seen.identity().clone();
        assert!(identity.legacy);
        assert!((1000..1500).all(|n| seen.contains(identity.hash(&line(n)))));
        assert!(!seen.contains(identity.hash(&line(999))));
        assert!((5000..5100).all(|n| seen.contains(identity.hash(&line(n)))));
    }

    #[test]
    fn an_unfinished_conversion_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        let committed = old_journal(&state, 0..3);
        drop(Seen::open(&state, committed, false, 100).unwrap());
        // As if a later conversion had died before its rename.
        let leftover = dir.path().join("s.state.seen.0.tmp");
        fs::write(&leftover, b"half").unwrap();
        let seen = Seen::open(&state, committed, false, 100).unwrap();
        let identity = seen.identity().clone();
        assert!((0..3).all(|n| seen.contains(identity.hash(&line(n)))));
        assert!(!leftover.exists());
    }
}
