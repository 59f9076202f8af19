//! An event line too long to hold, shrunk while it streams past, in bounded memory.
//!
//! Akamai occasionally sends events of many megabytes (huge headers or rule data), and an
//! attacker controls much of what goes into them. Such a line must still be delivered: dropping
//! it would hide exactly the request someone made large on purpose. Holding it whole would let
//! one event decide the collector's memory. So the line's bytes go through a small JSON state
//! machine as they arrive: the identity hash is taken over every raw byte, the structure is
//! copied, each string keeps its first [`STRING_KEEP`] bytes and ends with the same
//! `…[cut N bytes]` marker the Wazuh shaping uses, and once [`KEEP_BUDGET`] bytes are kept,
//! further members of every open container are dropped whole. What was done is said in a
//! member `oversizedEvent` added to the event. The result is ordinary JSON, decoded and shaped
//! like any other event (and cut further to fit a Wazuh line).

use crate::checkpoint::{EventHash, EventHasher, Identity};

/// Bytes kept of each string.
pub const STRING_KEEP: usize = 64 * 1024;
/// Bytes kept of the whole line before members start being dropped.
pub const KEEP_BUDGET: usize = 1024 * 1024;
/// Nesting deeper than any event has: the line is not treated as an event.
const MAX_DEPTH: usize = 128;
/// A number or literal longer than this is not JSON an event would carry.
const MAX_TOKEN: usize = 1024;
/// The start of the line kept for a report.
const START_KEPT: usize = 200;

/// What became of one oversized line.
#[derive(Debug, PartialEq, Eq)]
pub struct Shrunk {
    /// The raw line's length (without `\n` and a `\r` before it).
    pub length: usize,
    /// A `\r` ended the line (left out of `length` and of the hash).
    pub ended_in_cr: bool,
    /// The identity hash of the raw line, as [`Identity::hash`] gives it.
    pub hash: EventHash,
    /// Its first bytes, for a report.
    pub start: Vec<u8>,
    /// The shrunk JSON object; `None` when the line is not a JSON object (or is incomplete).
    pub json: Option<Vec<u8>>,
    /// Every container and string was closed: the line was whole.
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// Right after a backslash.
    Backslash,
    /// Inside `\uXXXX`: hex digits still to come, and the value so far.
    Unicode {
        left: u8,
        value: u16,
    },
}

pub struct Shrinker {
    out: Vec<u8>,
    hasher: EventHasher,
    /// A `\r` held back from the hash: it belongs to the line only if more bytes follow.
    pending_cr: bool,
    length: usize,
    start: Vec<u8>,
    stack: Vec<u8>,
    /// Some byte shows this is not a JSON object: only hash and count from here on.
    broken: bool,
    /// The top-level object was opened, and has been closed.
    opened: bool,
    closed: bool,
    in_string: bool,
    escape: Escape,
    /// The last escape was a high surrogate: cutting now would leave it alone.
    after_high_surrogate: bool,
    kept_in_string: usize,
    /// Skipping the rest of the current string, this many bytes so far.
    cutting: Option<u64>,
    token_length: usize,
    /// Dropping the rest of the container at this depth.
    dropping_below: Option<usize>,
    cut_bytes: u64,
    dropped_bytes: u64,
}

impl Shrinker {
    pub fn new(identity: &Identity) -> Shrinker {
        Shrinker {
            out: Vec::new(),
            hasher: identity.hasher(),
            pending_cr: false,
            length: 0,
            start: Vec::new(),
            stack: Vec::new(),
            broken: false,
            opened: false,
            closed: false,
            in_string: false,
            escape: Escape::None,
            after_high_surrogate: false,
            kept_in_string: 0,
            cutting: None,
            token_length: 0,
            dropping_below: None,
            cut_bytes: 0,
            dropped_bytes: 0,
        }
    }

    /// A whole line held in memory, shrunk at once (what feeding it in one piece gives).
    pub fn shrink(identity: &Identity, line: &[u8]) -> Shrunk {
        let mut shrinker = Shrinker::new(identity);
        shrinker.feed(line);
        shrinker.finish()
    }

    /// The next bytes of the line, in order, however they are split.
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.pending_cr {
            self.hasher.update(b"\r");
            self.length += 1;
            self.pending_cr = false;
        }
        let hashed = match bytes.split_last() {
            Some((b'\r', rest)) => {
                self.pending_cr = true;
                rest
            }
            _ => bytes,
        };
        self.hasher.update(hashed);
        self.length += hashed.len();
        if self.start.len() < START_KEPT {
            let take = (START_KEPT - self.start.len()).min(bytes.len());
            self.start.extend_from_slice(&bytes[..take]);
        }
        if !self.broken {
            for &byte in bytes {
                self.step(byte);
                if self.broken {
                    break;
                }
            }
        }
    }

    /// The line ended.
    pub fn finish(mut self) -> Shrunk {
        let complete = self.opened && self.closed && !self.in_string;
        let json = (complete && !self.broken).then(|| {
            // The closing brace is the last byte written: put the account before it.
            let brace = self.out.pop();
            debug_assert_eq!(brace, Some(b'}'));
            if self.out.last() != Some(&b'{') {
                self.out.push(b',');
            }
            self.out.extend_from_slice(
                format!(
                    "\"oversizedEvent\":{{\"originalBytes\":\"{}\",\"cutBytes\":\"{}\",\
                     \"droppedBytes\":\"{}\"}}}}",
                    self.length, self.cut_bytes, self.dropped_bytes
                )
                .as_bytes(),
            );
            std::mem::take(&mut self.out)
        });
        Shrunk {
            length: self.length,
            ended_in_cr: self.pending_cr,
            hash: self.hasher.finish(),
            start: self.start,
            json,
            complete,
        }
    }

    fn step(&mut self, byte: u8) {
        if self.in_string {
            return self.string_byte(byte);
        }
        let emit = self.dropping_below.is_none();
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => return,
            _ if self.closed => return self.broken = true,
            b'{' | b'[' => {
                if !self.opened && byte != b'{' {
                    return self.broken = true;
                }
                self.opened = true;
                self.stack.push(byte);
                if self.stack.len() > MAX_DEPTH {
                    return self.broken = true;
                }
            }
            b'}' | b']' => {
                let opening = if byte == b'}' { b'{' } else { b'[' };
                if self.stack.pop() != Some(opening) {
                    return self.broken = true;
                }
                if self
                    .dropping_below
                    .is_some_and(|depth| self.stack.len() < depth)
                {
                    // The container being dropped closes: it closes in the output too.
                    self.dropping_below = None;
                    self.out.push(byte);
                    self.token_length = 0;
                    self.closed = self.stack.is_empty();
                    return;
                }
                self.closed = self.stack.is_empty();
            }
            b',' if emit && self.out.len() >= KEEP_BUDGET => {
                // Enough is kept: drop the rest of this container's members.
                self.dropping_below = Some(self.stack.len());
                self.dropped_bytes += 1;
                return;
            }
            b'"' => {
                if !self.opened {
                    return self.broken = true;
                }
                self.in_string = true;
                self.kept_in_string = 0;
                self.cutting = None;
                self.escape = Escape::None;
                self.after_high_surrogate = false;
            }
            b',' | b':' => {}
            _ => {
                if !self.opened {
                    return self.broken = true;
                }
                self.token_length += 1;
                if self.token_length > MAX_TOKEN {
                    return self.broken = true;
                }
                if emit {
                    self.out.push(byte);
                } else {
                    self.dropped_bytes += 1;
                }
                return;
            }
        }
        self.token_length = 0;
        if emit {
            self.out.push(byte);
        } else {
            self.dropped_bytes += 1;
        }
    }

    fn string_byte(&mut self, byte: u8) {
        let emit = self.dropping_below.is_none();
        let escape_before = self.escape;
        let ends = escape_before == Escape::None && byte == b'"';
        self.escape = match (escape_before, byte) {
            (Escape::None, b'\\') => Escape::Backslash,
            (Escape::Backslash, b'u') => Escape::Unicode { left: 4, value: 0 },
            (Escape::Unicode { left, value }, _) => {
                let digit = (byte as char).to_digit(16).unwrap_or(0) as u16;
                let value = value << 4 | digit;
                if left > 1 {
                    Escape::Unicode {
                        left: left - 1,
                        value,
                    }
                } else {
                    self.after_high_surrogate = (0xD800..0xDC00).contains(&value);
                    Escape::None
                }
            }
            _ => Escape::None,
        };
        if escape_before == Escape::None && !matches!(self.escape, Escape::Unicode { .. }) {
            // A plain byte, or the start of an escape: a surrogate pair is no longer pending
            // once anything but its second half follows.
            if byte != b'\\' {
                self.after_high_surrogate = false;
            }
        }
        if !emit {
            self.dropped_bytes += 1;
            if ends {
                self.in_string = false;
            }
            return;
        }
        if ends {
            if let Some(cut) = self.cutting.take() {
                self.out
                    .extend_from_slice(format!("…[cut {cut} bytes]").as_bytes());
            }
            self.out.push(b'"');
            self.in_string = false;
            return;
        }
        if let Some(cut) = &mut self.cutting {
            *cut += 1;
            self.cut_bytes += 1;
            return;
        }
        let safe_to_cut = escape_before == Escape::None
            && !(0x80..0xC0).contains(&byte)
            && !self.after_high_surrogate;
        if self.kept_in_string >= STRING_KEEP && safe_to_cut {
            self.cutting = Some(1);
            self.cut_bytes += 1;
            return;
        }
        self.kept_in_string += 1;
        self.out.push(byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    static IDENTITY: LazyLock<Identity> = LazyLock::new(Identity::random);

    fn event_hash(line: &[u8]) -> EventHash {
        IDENTITY.hash(line)
    }

    fn shrink_in_chunks(line: &[u8], chunk: usize) -> Shrunk {
        let mut shrinker = Shrinker::new(&IDENTITY);
        for piece in line.chunks(chunk) {
            shrinker.feed(piece);
        }
        shrinker.finish()
    }

    fn parsed(shrunk: &Shrunk) -> serde_json::Value {
        serde_json::from_slice(shrunk.json.as_ref().expect("an event")).expect("valid JSON")
    }

    fn event_with(field: &str) -> Vec<u8> {
        format!(
            "{{\"type\":\"akamai_siem\",\"httpMessage\":{{\"requestId\":\"1a\",\"query\":\"{field}\"}},\"geo\":{{\"country\":\"NL\"}}}}"
        )
        .into_bytes()
    }

    #[test]
    fn a_huge_string_is_cut_and_the_event_keeps_its_shape_and_identity() {
        let line = event_with(&"q".repeat(11_500_000));
        let shrunk = shrink_in_chunks(&line, 65_536);
        assert_eq!(shrunk.hash, event_hash(&line));
        assert_eq!(shrunk.length, line.len());
        let value = parsed(&shrunk);
        let query = value["httpMessage"]["query"].as_str().unwrap();
        assert!(query.starts_with(&"q".repeat(STRING_KEEP)));
        assert!(query.ends_with(&format!("…[cut {} bytes]", 11_500_000 - STRING_KEEP)));
        assert_eq!(value["httpMessage"]["requestId"], "1a");
        assert_eq!(value["geo"]["country"], "NL");
        assert_eq!(
            value["oversizedEvent"]["originalBytes"],
            line.len().to_string()
        );
        assert!(shrunk.json.unwrap().len() < STRING_KEEP + 1_000);
    }

    #[test]
    fn millions_of_small_members_stay_within_the_budget() {
        let mut line = b"{\"type\":\"akamai_siem\",\"headers\":[".to_vec();
        for i in 0..1_000_000 {
            line.extend_from_slice(format!("\"h{i}\",").as_bytes());
        }
        line.extend_from_slice(b"\"last\"],\"tail\":{\"a\":\"b\"}}");
        let shrunk = shrink_in_chunks(&line, 10_000);
        let size = shrunk.json.as_ref().unwrap().len();
        assert!(size < KEEP_BUDGET + 200, "{size} bytes");
        let value = parsed(&shrunk);
        assert!(value["headers"].as_array().unwrap().len() > 10_000);
        assert!(
            value["oversizedEvent"]["droppedBytes"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
    }

    #[test]
    fn cuts_never_split_an_escape_a_surrogate_pair_or_a_character() {
        for filler in ["\\ud83d\\ude00", "é", "\\\"", "\\\\", "\\u00e9x", "€"] {
            for offset in 0..12 {
                let text = "a".repeat(offset) + &filler.repeat(STRING_KEEP / 2 + 64);
                let line = event_with(&text);
                for chunk in [1 << 20, 4_093] {
                    let shrunk = shrink_in_chunks(&line, chunk);
                    let value = parsed(&shrunk);
                    let query = value["httpMessage"]["query"].as_str().unwrap();
                    assert!(query.contains("…[cut "), "{filler} {offset}");
                }
            }
        }
    }

    #[test]
    fn any_split_of_the_line_gives_the_same_result() {
        let line = event_with(&"x\\\"y".repeat(40_000));
        let whole = shrink_in_chunks(&line, line.len());
        for chunk in [1, 7, 4_096] {
            let split = shrink_in_chunks(&line, chunk);
            assert_eq!(split.json, whole.json);
            assert_eq!(split.hash, whole.hash);
        }
    }

    #[test]
    fn a_crlf_line_has_the_identity_of_its_text() {
        let line = event_with(&"z".repeat(100_000));
        let mut with_cr = line.clone();
        with_cr.push(b'\r');
        let shrunk = shrink_in_chunks(&with_cr, 3_333);
        assert_eq!(shrunk.hash, event_hash(&line));
        assert_eq!(shrunk.length, line.len());
        assert!(shrunk.json.is_some());
    }

    #[test]
    fn what_is_not_a_whole_object_is_not_an_event() {
        let not_json = shrink_in_chunks(&vec![b'x'; 100_000], 4096);
        assert!(not_json.json.is_none());
        assert!(not_json.start.starts_with(b"xxx"));
        let array = shrink_in_chunks(format!("[\"{}\"]", "a".repeat(9)).as_bytes(), 4);
        assert!(array.json.is_none());
        let mut cut = event_with(&"c".repeat(100_000));
        cut.truncate(90_000);
        let cut = shrink_in_chunks(&cut, 4096);
        assert!(cut.json.is_none() && !cut.complete);
        let deep = "[".repeat(10_000);
        assert!(
            shrink_in_chunks(format!("{{\"a\":{deep}").as_bytes(), 512)
                .json
                .is_none()
        );
        let trailing = shrink_in_chunks(b"{\"a\":\"b\"} x", 3);
        assert!(trailing.json.is_none());
    }
}
