//! Splitting a chunked byte stream into lines on `\n` only.
//!
//! JSON strings may hold U+2028 or U+0085, which some line readers treat as line ends and so cut
//! valid events in two; only `\n` ends a line here. A line is lent straight out of its chunk
//! when it does not straddle two, so the common case copies nothing.

use crate::checkpoint::Identity;
use crate::pipeline::shrink::{Shrinker, Shrunk};
use memchr::{memchr, memrchr};
use std::ops::Range;

/// Something that yields the stream's chunks in order.
pub trait ChunkSource {
    type Error;
    /// The next chunk; `Ok(None)` at the end of the stream.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Self::Error>;
    /// A chunk whose lines are all taken, for reuse (a source that has no use drops it).
    fn recycle(&mut self, chunk: Vec<u8>) {
        drop(chunk);
    }
}

impl ChunkSource for crate::source::spool::Consumer {
    type Error = crate::source::spool::Failure;
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Self::Error> {
        crate::source::spool::Consumer::next_chunk(self)
    }
    fn recycle(&mut self, chunk: Vec<u8>) {
        crate::source::spool::Consumer::recycle(self, chunk)
    }
}

/// Reads any `Read` in fixed-size chunks (files and stdin for `decode`, tests).
pub struct ReadChunks<R> {
    reader: R,
    chunk_size: usize,
    /// The last spent chunk, filled again instead of a fresh zeroed one.
    spare: Option<Vec<u8>>,
}

impl<R: std::io::Read> ReadChunks<R> {
    pub fn new(reader: R, chunk_size: usize) -> Self {
        ReadChunks {
            reader,
            chunk_size,
            spare: None,
        }
    }
}

impl<R: std::io::Read> ChunkSource for ReadChunks<R> {
    type Error = std::io::Error;
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Self::Error> {
        let mut chunk = self.spare.take().unwrap_or_default();
        chunk.resize(self.chunk_size, 0);
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    chunk.truncate(n);
                    return Ok(Some(chunk));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    fn recycle(&mut self, chunk: Vec<u8>) {
        self.spare = Some(chunk);
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line that ended with `\n` (the `\n` removed; a `\r` before it is kept).
    Complete(&'a [u8]),
    /// Bytes after the last `\n` at the end of the stream: a final line without newline, or
    /// half a line of a cut response. Only the caller can tell which.
    Unterminated(&'a [u8]),
    /// A line longer than the limit, shrunk as it streamed past (see [`crate::pipeline::shrink`]);
    /// `terminated` as for the other kinds.
    Oversized { shrunk: Shrunk, terminated: bool },
}

enum Found {
    InChunk(usize, usize),
    InPartial,
    Unterminated,
    Oversized(Shrunk, bool),
    End,
}

pub struct Lines<S> {
    source: S,
    chunk: Vec<u8>,
    position: usize,
    partial: Vec<u8>,
    /// `partial` was lent out last time and must be emptied before reuse.
    partial_lent: bool,
    /// Inside an oversized line: its bytes go to the shrinker until its `\n`.
    oversized: Option<Shrinker>,
    max_line: usize,
    /// Oversized lines are hashed here, as they stream past: the same way the workers hash.
    identity: Identity,
    finished: bool,
}

impl<S: ChunkSource> Lines<S> {
    pub fn new(source: S, max_line: usize, identity: &Identity) -> Self {
        Lines {
            identity: identity.clone(),
            source,
            chunk: Vec::new(),
            position: 0,
            partial: Vec::new(),
            partial_lent: false,
            oversized: None,
            max_line,
            finished: false,
        }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, S::Error> {
        if self.partial_lent {
            self.partial.clear();
            self.partial_lent = false;
        }
        let found = self.find_next()?;
        Ok(match found {
            Found::InChunk(start, end) => Some(Line::Complete(&self.chunk[start..end])),
            Found::InPartial => {
                self.partial_lent = true;
                Some(Line::Complete(&self.partial))
            }
            Found::Unterminated => {
                self.partial_lent = true;
                Some(Line::Unterminated(&self.partial))
            }
            Found::Oversized(shrunk, terminated) => Some(Line::Oversized { shrunk, terminated }),
            Found::End => None,
        })
    }

    /// The rest of the current chunk up to its last `\n`, handed over as it is: its lines are
    /// split by whoever takes it (a format worker), so the common case neither copies nor scans
    /// a line here. What follows that `\n` stays as the start of the next line. `None` when a
    /// line begun in an earlier chunk is still open (only [`Lines::next_line`] completes it) or
    /// no `\n` is left in this chunk.
    pub fn take_whole_lines(&mut self) -> Option<(Vec<u8>, Range<usize>)> {
        if self.partial_lent {
            self.partial.clear();
            self.partial_lent = false;
        }
        if !self.partial.is_empty() || self.oversized.is_some() {
            return None;
        }
        let rest = self.chunk.get(self.position..)?;
        let last = memrchr(b'\n', rest)?;
        let whole = self.position..self.position + last + 1;
        self.partial.extend_from_slice(&self.chunk[whole.end..]);
        self.shrink_if_too_long();
        self.position = 0;
        Some((std::mem::take(&mut self.chunk), whole))
    }

    /// Hand a chunk taken with [`Lines::take_whole_lines`] back to the source, for reuse.
    pub fn recycle(&mut self, chunk: Vec<u8>) {
        self.source.recycle(chunk);
    }

    /// The longest line held whole; a longer one is shrunk (see [`crate::pipeline::shrink`]).
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The line in progress grew: once too long to hold, it is shrunk as it streams.
    fn shrink_if_too_long(&mut self) {
        if self.partial.len() > self.max_line {
            let mut shrinker = Shrinker::new(&self.identity);
            shrinker.feed(&self.partial);
            self.partial = Vec::new();
            self.oversized = Some(shrinker);
        }
    }

    fn find_next(&mut self) -> Result<Found, S::Error> {
        loop {
            if self.position < self.chunk.len() {
                let rest = &self.chunk[self.position..];
                match memchr(b'\n', rest) {
                    Some(index) => {
                        let start = self.position;
                        self.position += index + 1;
                        if let Some(mut shrinker) = self.oversized.take() {
                            shrinker.feed(&rest[..index]);
                            return Ok(Found::Oversized(shrinker.finish(), true));
                        }
                        if self.partial.is_empty() {
                            if index > self.max_line {
                                let shrunk = Shrinker::shrink(&self.identity, &rest[..index]);
                                return Ok(Found::Oversized(shrunk, true));
                            }
                            return Ok(Found::InChunk(start, start + index));
                        }
                        self.partial.extend_from_slice(&rest[..index]);
                        if self.partial.len() > self.max_line {
                            let shrunk = Shrinker::shrink(&self.identity, &self.partial);
                            self.partial.clear();
                            return Ok(Found::Oversized(shrunk, true));
                        }
                        return Ok(Found::InPartial);
                    }
                    None => {
                        self.position = self.chunk.len();
                        if let Some(shrinker) = &mut self.oversized {
                            shrinker.feed(rest);
                        } else {
                            self.partial.extend_from_slice(rest);
                            self.shrink_if_too_long();
                        }
                    }
                }
                continue;
            }
            if self.finished {
                return Ok(Found::End);
            }
            match self.source.next_chunk()? {
                Some(chunk) => {
                    let spent = std::mem::replace(&mut self.chunk, chunk);
                    if spent.capacity() > 0 {
                        self.source.recycle(spent);
                    }
                    self.position = 0;
                }
                None => {
                    self.finished = true;
                    if let Some(shrinker) = self.oversized.take() {
                        return Ok(Found::Oversized(shrinker.finish(), false));
                    }
                    if !self.partial.is_empty() {
                        return Ok(Found::Unterminated);
                    }
                    return Ok(Found::End);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Chunks(std::vec::IntoIter<Vec<u8>>);

    impl ChunkSource for Chunks {
        type Error = ();
        fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ()> {
            Ok(self.0.next())
        }
    }

    fn lines_over(chunks: &[&[u8]], max_line: usize) -> Lines<Chunks> {
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        Lines::new(Chunks(chunks.into_iter()), max_line, &Identity::random())
    }

    /// `C:` complete, `U:` unterminated, `O:`/`OU:` oversized with its length and start.
    fn describe(line: Line<'_>) -> String {
        match line {
            Line::Complete(l) => format!("C:{}", String::from_utf8_lossy(l)),
            Line::Unterminated(l) => format!("U:{}", String::from_utf8_lossy(l)),
            Line::Oversized { shrunk, terminated } => format!(
                "O{}:{}:{}",
                if terminated { "" } else { "U" },
                shrunk.length,
                String::from_utf8_lossy(&shrunk.start)
            ),
        }
    }

    fn lines_of(chunks: &[&[u8]], max_line: usize) -> Vec<String> {
        let mut lines = lines_over(chunks, max_line);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(describe(line));
        }
        out
    }

    #[test]
    fn splits_on_newline_only() {
        let text = "a\u{2028}b\u{85}c\nd\r\n\ne".as_bytes();
        assert_eq!(
            lines_of(&[text], 100),
            vec!["C:a\u{2028}b\u{85}c", "C:d\r", "C:", "U:e"]
        );
    }

    #[test]
    fn lines_straddling_chunks_are_joined() {
        assert_eq!(
            lines_of(&[b"ab", b"c\nde", b"", b"f\n", b"g"], 100),
            vec!["C:abc", "C:def", "U:g"]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let text = b"first line\nsecond\r\n\nthird without end";
        let expected = lines_of(&[text], 100);
        for cut in 0..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(lines_of(&[a, b], 100), expected, "cut at {cut}");
        }
    }

    #[test]
    fn oversized_lines_are_reported_and_skipped() {
        let long = vec![b'x'; 50];
        let mut text = b"ok\n".to_vec();
        text.extend_from_slice(&long);
        text.extend_from_slice(b"\nnext\n");
        let chunks: Vec<&[u8]> = text.chunks(7).collect();
        let lines = lines_of(&chunks, 20);
        assert_eq!(lines[0], "C:ok");
        assert!(lines[1].starts_with("O:50:xxxx"), "{lines:?}");
        assert_eq!(lines[2], "C:next");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn oversized_unterminated_tail_is_reported() {
        let lines = lines_of(&[b"ok\n", &[b'y'; 30]], 20);
        assert_eq!(
            lines,
            vec!["C:ok".to_string(), format!("OU:30:{}", "y".repeat(30))]
        );
    }

    #[test]
    fn oversized_line_inside_one_chunk_is_reported() {
        let lines = lines_of(&[b"short\nthis line is far too long\nend\n"], 10);
        assert_eq!(
            lines,
            vec!["C:short", "O:25:this line is far too long", "C:end"]
        );
    }

    #[test]
    fn an_oversized_event_is_shrunk_whatever_its_chunks() {
        let event = format!(
            "{{\"type\":\"akamai_siem\",\"big\":\"{}\"}}",
            "b".repeat(5_000)
        );
        let text = format!("ok\n{event}\r\nnext\n");
        for chunk in [1, 13, 4_096, text.len()] {
            let source = Chunks(
                text.as_bytes()
                    .chunks(chunk)
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            let identity = Identity::random();
            let mut lines = Lines::new(source, 1_000, &identity);
            assert_eq!(lines.next_line().unwrap(), Some(Line::Complete(b"ok")));
            let Some(Line::Oversized { shrunk, terminated }) = lines.next_line().unwrap() else {
                panic!("chunk {chunk}: not oversized")
            };
            assert!(terminated);
            assert_eq!(shrunk.hash, identity.hash(event.as_bytes()));
            let value: serde_json::Value = serde_json::from_slice(&shrunk.json.unwrap()).unwrap();
            assert_eq!(value["big"].as_str().unwrap().len(), 5_000);
            assert_eq!(lines.next_line().unwrap(), Some(Line::Complete(b"next")));
        }
    }

    /// Lines as the page reader takes them: whole runs of a chunk where it can, one line at a
    /// time where a line straddles chunks; the runs split here as a worker splits them.
    fn lines_taking_whole_runs(chunks: &[&[u8]], max_line: usize) -> Vec<String> {
        let mut lines = lines_over(chunks, max_line);
        let mut out = Vec::new();
        loop {
            if let Some((chunk, range)) = lines.take_whole_lines() {
                assert_eq!(chunk[range.end - 1], b'\n', "a run ends with a whole line");
                for line in chunk[range].split_inclusive(|&b| b == b'\n') {
                    let line = &line[..line.len() - 1];
                    out.push(if line.len() > max_line {
                        format!("O:{}:{}", line.len(), String::from_utf8_lossy(line))
                    } else {
                        describe(Line::Complete(line))
                    });
                }
                continue;
            }
            match lines.next_line().unwrap() {
                Some(line) => out.push(describe(line)),
                None => return out,
            }
        }
    }

    #[test]
    fn taking_whole_runs_of_a_chunk_gives_the_same_lines_at_every_split() {
        let text = b"first line\nsecond\r\n\nthird is the long one\nend\nno end";
        let expected = lines_of(&[text], 15);
        assert!(expected.iter().any(|l| l.starts_with("O:")), "{expected:?}");
        for cut in 0..text.len() {
            for second in cut..text.len() {
                let chunks = [&text[..cut], &text[cut..second], &text[second..]];
                assert_eq!(
                    lines_taking_whole_runs(&chunks, 15),
                    expected,
                    "cuts at {cut} and {second}"
                );
            }
        }
        // A line too long to hold that starts after a run, in the run's chunk.
        let tail = lines_taking_whole_runs(&[b"ok\nthis one grows too long", b" indeed\nx\n"], 15);
        assert_eq!(tail[0], "C:ok");
        assert!(tail[1].starts_with("O:30:this one grows"), "{tail:?}");
        assert_eq!(tail[2], "C:x");
    }

    #[test]
    fn empty_stream_has_no_lines() {
        assert!(lines_of(&[], 10).is_empty());
        assert!(lines_of(&[b""], 10).is_empty());
    }
}
