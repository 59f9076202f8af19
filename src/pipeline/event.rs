//! A JSON value that borrows from its input line, keeps key order and duplicate keys, and
//! writes itself back compactly exactly as serde_json would.
//!
//! Events are mostly strings without escapes, so most of a parsed event points into the
//! response buffer and costs no copy. Order and duplicates are kept because the output must
//! pass unknown fields through unchanged, and the Wazuh shaping decides what to do with
//! duplicates, not the parser.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Object<'a>),
}

/// Keys in input order, duplicates kept.
pub type Object<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

impl<'a> Value<'a> {
    /// Exactly one JSON value; surrounding whitespace allowed, anything else is an error.
    pub fn parse(line: &'a [u8]) -> Result<Value<'a>, serde_json::Error> {
        // One pass over the whole line checks UTF-8 much faster than serde_json does string by
        // string from a byte slice, and text already known to be UTF-8 is parsed unchecked.
        // A line that is not UTF-8 goes the slice way, so its error is the one it always was.
        match std::str::from_utf8(line) {
            Ok(text) => {
                let mut deserializer = serde_json::Deserializer::from_str(text);
                let value = Value::deserialize(&mut deserializer)?;
                deserializer.end()?;
                Ok(value)
            }
            Err(_) => {
                let mut deserializer = serde_json::Deserializer::from_slice(line);
                let value = Value::deserialize(&mut deserializer)?;
                deserializer.end()?;
                Ok(value)
            }
        }
    }

    /// The same value owning all its text, borrowing nothing.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Number(n) => Value::Number(n),
            Value::String(text) => Value::String(Cow::Owned(text.into_owned())),
            Value::Array(items) => Value::Array(items.into_iter().map(Value::into_owned).collect()),
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(key, value)| (Cow::Owned(key.into_owned()), value.into_owned()))
                    .collect(),
            ),
        }
    }

    /// The first value under `key`, when this is an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value<'a>> {
        match self {
            Value::Object(fields) => fields.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follow object keys: `["attackData", "clientIP"]`.
    pub fn pointer(&self, path: &[&str]) -> Option<&Value<'a>> {
        path.iter().try_fold(self, |value, key| value.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// Compact JSON, keys in order, strings escaped as serde_json escapes them.
    pub fn write_compact(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
            Value::String(text) => write_string(text, out),
            Value::Array(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    item.write_compact(out);
                }
                out.push(b']');
            }
            Value::Object(fields) => {
                out.push(b'{');
                for (index, (key, value)) in fields.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    write_string(key, out);
                    out.push(b':');
                    value.write_compact(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// The paths of the strings (values or keys) of a JSON text that hold bytes that are not UTF-8,
/// in order, each once, named as `decodeErrors` names fields: `httpMessage.host`, `a.list[2]`.
/// `line` must be JSON apart from those bytes (they are never structural: all are >= 0x80).
pub fn invalid_utf8_paths(line: &[u8]) -> Vec<String> {
    enum Frame {
        Object(String),
        Array(usize),
    }
    fn path_of(stack: &[Frame]) -> String {
        let mut path = String::new();
        for frame in stack {
            match frame {
                Frame::Object(key) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Frame::Array(index) => path.push_str(&format!("[{index}]")),
            }
        }
        path
    }
    let mut stack = Vec::new();
    let mut paths = Vec::new();
    let mut expecting_key = false;
    let mut at = 0;
    while at < line.len() {
        match line[at] {
            b'{' => {
                stack.push(Frame::Object(String::new()));
                expecting_key = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(index)) => *index += 1,
                Some(Frame::Object(_)) => expecting_key = true,
                None => {}
            },
            b':' => expecting_key = false,
            b'"' => {
                let end = string_end(line, at + 1);
                let quoted = &line[at..(end + 1).min(line.len())];
                let valid = std::str::from_utf8(quoted).is_ok();
                if expecting_key {
                    let lossy = String::from_utf8_lossy(quoted);
                    let key = serde_json::from_str::<String>(&lossy)
                        .unwrap_or_else(|_| lossy.trim_matches('"').to_string());
                    if let Some(Frame::Object(current)) = stack.last_mut() {
                        *current = key;
                    }
                }
                let path = path_of(&stack);
                if !valid && !paths.contains(&path) {
                    paths.push(path);
                }
                at = end;
            }
            _ => {}
        }
        at += 1;
    }
    paths
}

/// Index of the quote that ends the string whose text starts at `from`.
fn string_end(line: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < line.len() {
        match line[at] {
            b'\\' => at += 2,
            b'"' => return at,
            _ => at += 1,
        }
    }
    line.len()
}

/// serde_json's escaping (only `"`, `\` and control characters, `\u00xx` in lower case), so
/// output is byte-identical to serde_json's for the same value. Most strings need no escape at
/// all: the runs between escapes are found 16 bytes at a time and copied whole.
pub fn write_string(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(offset) = first_escape(&bytes[start..]) {
        let at = start + offset;
        out.extend_from_slice(&bytes[start..at]);
        write_escape(bytes[at], out);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Index of the first byte that needs an escape.
pub(crate) fn first_escape(bytes: &[u8]) -> Option<usize> {
    // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
    #[cfg(target_arch = "x86_64")]
    let (checked, found) = unsafe { sse2::first_escape(bytes) };
    #[cfg(not(target_arch = "x86_64"))]
    let (checked, found) = (0, None);
    found.or_else(|| {
        bytes[checked..]
            .iter()
            .position(|&b| ESCAPES[b as usize] != 0)
            .map(|p| checked + p)
    })
}

/// One bit per byte of `bytes`, set where the byte needs an escape (`"`, `\\`, a control
/// character), 64 bytes to a word; `bits` is cleared first. For a walk over one line that
/// looks for the end of each of its strings: one pass over the line instead of one scan per
/// string, which for the short strings of an event costs more in set-up than in scanning.
pub(crate) fn escape_bitmap(bytes: &[u8], bits: &mut Vec<u64>) {
    bits.clear();
    let mut chunks = bytes.chunks_exact(64);
    for chunk in &mut chunks {
        let chunk: &[u8; 64] = chunk.try_into().expect("chunks of 64");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
        bits.push(unsafe { sse2::escape_bits(chunk) });
        #[cfg(not(target_arch = "x86_64"))]
        bits.push(scalar_escape_bits(chunk));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        bits.push(scalar_escape_bits(rest));
    }
}

fn scalar_escape_bits(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| ESCAPES[b as usize] != 0)
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// Scans whole 16-byte blocks; returns how far it got and the first escape found there.
    /// SSE2 is part of the x86-64 baseline, so this needs no runtime detection.
    /// A text of 16 bytes or more is scanned to its end: its last block overlaps the one before
    /// (the bytes already checked are masked off), so no tail is left to a byte-by-byte loop.
    #[target_feature(enable = "sse2")]
    pub(super) fn first_escape(bytes: &[u8]) -> (usize, Option<usize>) {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let control_max = _mm_set1_epi8(0x1f);
        let escapes_at = |at: usize| {
            // SAFETY: callers pass `at + 16 <= bytes.len()`; the load is unaligned.
            let block = unsafe { _mm_loadu_si128(bytes.as_ptr().add(at).cast::<__m128i>()) };
            // A byte is a control character when min(byte, 0x1f) == byte (unsigned).
            let control = _mm_cmpeq_epi8(_mm_min_epu8(block, control_max), block);
            let special = _mm_or_si128(
                _mm_cmpeq_epi8(block, quote),
                _mm_cmpeq_epi8(block, backslash),
            );
            _mm_movemask_epi8(_mm_or_si128(control, special)) as u32
        };
        let mut index = 0;
        while index + 16 <= bytes.len() {
            let mask = escapes_at(index);
            if mask != 0 {
                return (index, Some(index + mask.trailing_zeros() as usize));
            }
            index += 16;
        }
        if index == bytes.len() || bytes.len() < 16 {
            return (index, None);
        }
        let last = bytes.len() - 16;
        let mask = escapes_at(last) >> (index - last);
        let found = (mask != 0).then(|| index + mask.trailing_zeros() as usize);
        (bytes.len(), found)
    }

    /// The escape bits of 64 bytes, as [`super::escape_bitmap`] sets them.
    #[target_feature(enable = "sse2")]
    pub(super) fn escape_bits(chunk: &[u8; 64]) -> u64 {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let control_max = _mm_set1_epi8(0x1f);
        let mut bits = 0u64;
        for part in 0..4 {
            // SAFETY: the 16 bytes at `16 * part` are inside the 64 of `chunk`; unaligned load.
            let block = unsafe { _mm_loadu_si128(chunk.as_ptr().add(16 * part).cast::<__m128i>()) };
            let control = _mm_cmpeq_epi8(_mm_min_epu8(block, control_max), block);
            let special = _mm_or_si128(
                _mm_cmpeq_epi8(block, quote),
                _mm_cmpeq_epi8(block, backslash),
            );
            let mask = _mm_movemask_epi8(_mm_or_si128(control, special)) as u16;
            bits |= u64::from(mask) << (16 * part);
        }
        bits
    }
}

/// 0: as is; b'u': `\u00xx`; otherwise the letter after the backslash.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

fn write_escape(byte: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPES[byte as usize] {
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 0xf) as usize],
        ]),
        letter => out.extend_from_slice(&[b'\\', letter]),
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value<'de>, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value<'de>, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value<'de>, E> {
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(value.to_string())))
    }

    fn visit_string<E>(self, value: String) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            fields.push((key.0, map.next_value()?));
        }
        Ok(Value::Object(fields))
    }
}

/// An object key, borrowed when it had no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(value)))
            }
            fn visit_str<E>(self, value: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(value.to_string())))
            }
            fn visit_string<E>(self, value: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests;
