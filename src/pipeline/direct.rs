//! The direct path: an ordinary event goes from its raw line to its output line in one pass,
//! decoding while it copies, with no event tree and no allocation.
//!
//! Nearly every event the API sends is an object of objects and strings, without escapes,
//! duplicate keys or anything the Wazuh shaping would have to change. For those, the general
//! path (parse a tree, decode it into a second one, shape it, serialise it, free it) spends
//! most of its time building and walking trees only to write the line's own bytes back.
//! Here the unencoded strings are copied as they are (a JSON string without escapes is what
//! serde_json would write for it) and the encoded fields are decoded straight into the output
//! through the same element decoders the tree decoder uses.
//!
//! The rule is simple: anything unusual is not handled here but handed back. A number, `null`,
//! an array, an escape, a key repeated or reserved, a field that does not decode cleanly,
//! ragged rule lists, too many fields or too long a line: [`Direct::write`] leaves the output
//! untouched and returns `None`, and the caller takes the general path, which decides as it
//! always did. So the direct path never has to be right about an edge: only about the common
//! case, which tests compare with the general path byte for byte.

use crate::config::{Format, OutputSettings};
use crate::pipeline::decode::{
    DECODE_ERRORS, RULE_FIELDS, RuleElement, decode_readable_with, for_each_header_line,
    for_each_rule_element, percent_decode_into,
};
use crate::pipeline::event::{escape_bitmap, write_string};
use crate::pipeline::format::TENANT_LABEL;
use crate::pipeline::wazuh::{self, is_reserved_top_level};

/// Deeper than any event: serde_json refuses past 128 levels, and the general path decides.
const MAX_DEPTH: usize = 32;
/// Keys per object compared for repeats; a bigger object takes the general path.
const MAX_KEYS: usize = 32;
/// Fields the Wazuh shaping adds besides `srcip`: `integration` and room for its three notes.
const SHAPING_FIELDS: usize = 1 + 3;

/// An event written by the direct path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Written {
    /// `httpMessage.start`, as [`crate::pipeline::classify::event_start`] reads it.
    pub start: Option<f64>,
    /// Some field could not be decoded (the line lists which in `decodeErrors`).
    pub decode_errors: bool,
}

pub struct Direct {
    shape: Shape,
    /// The tags as JSON members (`,"tenant":"acme"…`), written last among the top level.
    tags_json: Vec<u8>,
    tag_names: Vec<String>,
    unescaped: Vec<u8>,
    decoded: Vec<u8>,
    escape_run: Vec<u8>,
    /// The event's `decodeErrors` entries so far, as JSON texts joined by commas.
    errors: Vec<u8>,
    escapes: Vec<u64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Raw output, or tags the shaping would rename: always the general path.
    Off,
    Json,
    Wazuh {
        max_line_bytes: usize,
        max_fields: usize,
    },
}

/// What an object's members are, by where it sits: which of them are encoded.
#[derive(Clone, Copy, PartialEq)]
enum Members {
    Plain,
    AttackData,
    HttpMessage,
    Custom,
}

/// What one event's walk has found so far.
struct Walk<'a> {
    wazuh: bool,
    leaves: usize,
    is_event: bool,
    client_ip: Option<&'a str>,
    start: Option<f64>,
    attack_data_seen: bool,
    http_message_seen: bool,
}

impl Direct {
    pub fn new(output: &OutputSettings) -> Direct {
        let mut tags: Vec<(String, String)> = output
            .tags
            .members()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let mut shape = match output.format {
            Format::Raw => Shape::Off,
            Format::Json => Shape::Json,
            Format::Wazuh => {
                let limits = wazuh::Limits {
                    max_line_bytes: output.max_line_bytes,
                    ..wazuh::Limits::default()
                };
                Shape::Wazuh {
                    max_line_bytes: limits.max_line_bytes,
                    max_fields: limits.max_fields,
                }
            }
        };
        if let (Shape::Wazuh { .. }, Some(tenant)) = (shape, &output.tags.tenant) {
            tags.push((TENANT_LABEL.to_string(), format!("[{tenant}] ")));
        }
        // Tags that the Wazuh shaping would rename (a repeat, a reserved name) are the general
        // path's business for every event: configuration refuses them, this only makes sure.
        if let Shape::Wazuh { .. } = shape {
            let clash = tags.iter().enumerate().any(|(index, (name, _))| {
                is_reserved_top_level(name)
                    || tags[..index]
                        .iter()
                        .any(|(earlier, _)| earlier.eq_ignore_ascii_case(name))
            });
            if clash {
                shape = Shape::Off;
            }
        }
        let mut tags_json = Vec::new();
        for (name, value) in &tags {
            tags_json.push(b',');
            write_string(name, &mut tags_json);
            tags_json.push(b':');
            write_string(value, &mut tags_json);
        }
        Direct {
            shape,
            tags_json,
            tag_names: tags.into_iter().map(|(name, _)| name).collect(),
            unescaped: Vec::new(),
            decoded: Vec::new(),
            escape_run: Vec::new(),
            errors: Vec::new(),
            escapes: Vec::new(),
        }
    }

    /// Append the output line for `raw` (one response line without its line end) to `out`
    /// when it is an ordinary event; otherwise leave `out` as it was and return `None`, and the
    /// general path decides what the line is and what it becomes.
    pub fn write(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Option<Written> {
        if self.shape == Shape::Off {
            return None;
        }
        let begin = out.len();
        // Lent out for the walk, which borrows it while the decoders use the other scratch.
        let mut escapes = std::mem::take(&mut self.escapes);
        escape_bitmap(raw, &mut escapes);
        let written = self.write_event(raw, &escapes, out);
        self.escapes = escapes;
        if written.is_none() {
            out.truncate(begin);
        }
        written
    }

    fn write_event(&mut self, raw: &[u8], escapes: &[u64], out: &mut Vec<u8>) -> Option<Written> {
        // One check of the whole line, so every string below is text already.
        let text = simdutf8::basic::from_utf8(raw).ok()?;
        if raw.first() != Some(&b'{') || raw.last() != Some(&b'}') {
            return None;
        }
        let wazuh = matches!(self.shape, Shape::Wazuh { .. });
        let mut walk = Walk {
            wazuh,
            leaves: 0,
            is_event: false,
            client_ip: None,
            start: None,
            attack_data_seen: false,
            http_message_seen: false,
        };
        let mut cursor = Cursor {
            text,
            escapes,
            at: 1,
        };
        self.errors.clear();
        let begin = out.len();
        if wazuh {
            out.extend_from_slice(b"{\"integration\":\"akamai\"");
        } else {
            out.push(b'{');
        }
        let members_at = out.len();
        let mut keys = Keys::default();
        if cursor.peek()? != b'}' {
            loop {
                let key = cursor.string()?;
                // A key `add_tags` would skip, or the shaping would rename.
                if self.tag_names.iter().any(|name| {
                    if wazuh {
                        name.eq_ignore_ascii_case(key)
                    } else {
                        name == key
                    }
                }) || (wazuh && is_reserved_top_level(key))
                    // The event's own list: the run counts it as an event with decode errors.
                    || key == DECODE_ERRORS
                {
                    return None;
                }
                keys.add(key, wazuh)?;
                cursor.expect(b':')?;
                if wazuh || out.len() > members_at {
                    out.push(b',');
                }
                write_key(key, out);
                self.top_level_value(key, &mut cursor, &mut walk, out)?;
                match cursor.next()? {
                    b',' => {}
                    b'}' => break,
                    _ => return None,
                }
            }
        } else {
            cursor.at += 1;
        }
        // Only white space may follow: serde_json refuses anything else.
        if cursor.peek().is_some() || !walk.is_event {
            return None;
        }
        // What could not be decoded, listed last among the event's own members as the tree
        // decoder lists it, then the tags.
        let decode_errors = !self.errors.is_empty();
        if decode_errors {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(DECODE_ERRORS.as_bytes());
            out.extend_from_slice(b"\":[");
            out.extend_from_slice(&self.errors);
            out.push(b']');
            walk.leaves += 1;
        }
        out.extend_from_slice(&self.tags_json);
        out.push(b'}');
        if let Shape::Wazuh {
            max_line_bytes,
            max_fields,
        } = self.shape
        {
            let srcip = walk
                .client_ip
                .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
            let added = SHAPING_FIELDS + usize::from(srcip.is_some());
            if walk.leaves + self.tag_names.len() > max_fields.saturating_sub(added) {
                return None;
            }
            if let Some(ip) = srcip {
                // Written at the end and rotated into place: no allocation, one move.
                let end = out.len();
                out.extend_from_slice(b",\"srcip\":");
                write_string(ip, out);
                let member = out.len() - end;
                out[members_at..].rotate_right(member);
            }
            if out.len() - begin > max_line_bytes {
                return None;
            }
        }
        Some(Written {
            start: walk.start,
            decode_errors,
        })
    }

    fn top_level_value<'a>(
        &mut self,
        key: &'a str,
        cursor: &mut Cursor<'a>,
        walk: &mut Walk<'a>,
        out: &mut Vec<u8>,
    ) -> Option<()> {
        walk.is_event |= matches!(key, "type" | "attackData" | "httpMessage");
        let members = match key {
            "attackData" => Members::AttackData,
            "httpMessage" => Members::HttpMessage,
            "custom" => Members::Custom,
            _ => Members::Plain,
        };
        // Only the first of each: that is the one `srcip` and the page's timestamps read.
        let first = match members {
            Members::AttackData => !std::mem::replace(&mut walk.attack_data_seen, true),
            Members::HttpMessage => !std::mem::replace(&mut walk.http_message_seen, true),
            _ => false,
        };
        match cursor.peek()? {
            b'{' => self.object(cursor, walk, out, 1, members, first),
            b'"' => {
                let text = cursor.string()?;
                walk.leaves += 1;
                if members == Members::Custom {
                    self.rule_list(text, "", key, out);
                    Some(())
                } else {
                    write_raw_string(text, out);
                    Some(())
                }
            }
            _ => None,
        }
    }

    /// An object at `depth`, its opening brace at the cursor. `first` marks the first top-level
    /// `attackData` or `httpMessage`, whose `clientIP` or `start` the caller needs.
    fn object<'a>(
        &mut self,
        cursor: &mut Cursor<'a>,
        walk: &mut Walk<'a>,
        out: &mut Vec<u8>,
        depth: usize,
        members: Members,
        first: bool,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        cursor.at += 1;
        out.push(b'{');
        if cursor.peek()? == b'}' {
            cursor.at += 1;
            out.push(b'}');
            return Some(());
        }
        let mut keys = Keys::default();
        let mut rule_lists = RuleLists::default();
        let mut start_seen = false;
        let mut client_ip_seen = false;
        loop {
            let key = cursor.string()?;
            keys.add(key, walk.wazuh)?;
            cursor.expect(b':')?;
            if keys.count > 1 {
                out.push(b',');
            }
            write_key(key, out);
            match cursor.peek()? {
                b'{' => self.object(cursor, walk, out, depth + 1, Members::Plain, false)?,
                b'"' => {
                    let text = cursor.string()?;
                    walk.leaves += 1;
                    if first && members == Members::HttpMessage && key == "start" && !start_seen {
                        walk.start = text.parse::<f64>().ok().filter(|s| s.is_finite());
                    }
                    if first
                        && members == Members::AttackData
                        && key == "clientIP"
                        && !client_ip_seen
                    {
                        walk.client_ip = Some(text);
                    }
                    match (members, key) {
                        (Members::AttackData, _) if RULE_FIELDS.contains(&key) => {
                            let length = self.rule_list(text, "attackData.", key, out);
                            rule_lists.add(out.len() - 1, length)?;
                        }
                        (Members::Custom, _) => {
                            self.rule_list(text, "custom.", key, out);
                        }
                        (Members::HttpMessage, "requestHeaders" | "responseHeaders") => {
                            self.headers(text, key, out)
                        }
                        (Members::HttpMessage, "path" | "query") => self.readable(text, key, out),
                        _ => write_raw_string(text, out),
                    }
                }
                _ => return None,
            }
            // The first `start`/`clientIP` key counts, whatever its value was.
            start_seen |= key == "start";
            client_ip_seen |= key == "clientIP";
            match cursor.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        rule_lists.pad(out);
        out.push(b'}');
        Some(())
    }

    /// A `;`-joined, percent-encoded list of base64 elements as a JSON array of texts, each
    /// element on its own; an element that does not decode keeps its text (lossily) and is
    /// listed as `<prefix><key>[<index>]`. Returns the list's length.
    fn rule_list(&mut self, text: &str, prefix: &str, key: &str, out: &mut Vec<u8>) -> usize {
        percent_decode_into(text.as_bytes(), &mut self.unescaped);
        let errors = &mut self.errors;
        out.push(b'[');
        let mut length = 0;
        for_each_rule_element(&self.unescaped, &mut self.decoded, |index, element| {
            if index > 0 {
                out.push(b',');
            }
            length += 1;
            match element {
                RuleElement::Empty => out.extend_from_slice(b"\"\""),
                RuleElement::Text(text) => write_string(text, out),
                RuleElement::NotUtf8(bytes) | RuleElement::NotBase64(bytes) => {
                    write_string(&String::from_utf8_lossy(bytes), out);
                    list_error(errors, format_args!("{prefix}{key}[{index}]"));
                }
            }
        });
        out.push(b']');
        length
    }

    /// A percent-encoded header block as the JSON array of its lines. A line that is not
    /// UTF-8 is kept lossily and listed as `httpMessage.<key>[<index>]`.
    fn headers(&mut self, text: &str, key: &str, out: &mut Vec<u8>) {
        percent_decode_into(text.as_bytes(), &mut self.unescaped);
        let errors = &mut self.errors;
        out.push(b'[');
        for_each_header_line(&self.unescaped, |index, line, lossy| {
            if index > 0 {
                out.push(b',');
            }
            if lossy {
                list_error(errors, format_args!("httpMessage.{key}[{index}]"));
            }
            write_string(line, out);
        });
        out.push(b']');
    }

    /// `path`/`query`: every escape that forms UTF-8 decoded, the others kept and listed.
    fn readable(&mut self, text: &str, key: &str, out: &mut Vec<u8>) {
        let (decoded, kept_escapes) = decode_readable_with(text, &mut self.escape_run);
        if kept_escapes {
            list_error(&mut self.errors, format_args!("httpMessage.{key}"));
        }
        write_string(&decoded, out);
    }
}

/// One more `decodeErrors` entry.
fn list_error(errors: &mut Vec<u8>, name: std::fmt::Arguments<'_>) {
    if !errors.is_empty() {
        errors.push(b',');
    }
    write_string(&name.to_string(), errors);
}

/// A key or string without escapes is written as it was read: quotes around the same bytes.
fn write_key(key: &str, out: &mut Vec<u8>) {
    write_raw_string(key, out);
    out.push(b':');
}

fn write_raw_string(text: &str, out: &mut Vec<u8>) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// The rule lists of one `attackData`: element *i* of each belongs to rule *i*, so shorter
/// lists are padded with `""` to the longest, as the tree decoder pads them.
#[derive(Default)]
struct RuleLists {
    /// Where each list's closing bracket is in the output, and its length.
    lists: [(usize, usize); RULE_FIELDS.len()],
    count: usize,
}

impl RuleLists {
    fn add(&mut self, closing_bracket: usize, length: usize) -> Option<()> {
        *self.lists.get_mut(self.count)? = (closing_bracket, length);
        self.count += 1;
        Some(())
    }

    fn pad(&self, out: &mut Vec<u8>) {
        let lists = &self.lists[..self.count];
        let longest = lists.iter().map(|&(_, length)| length).max().unwrap_or(0);
        // From the last list back, so the positions of the earlier ones stay where they were.
        for &(closing_bracket, length) in lists.iter().rev() {
            if length < longest {
                let padding = b",\"\"".repeat(longest - length);
                out.splice(closing_bracket..closing_bracket, padding);
            }
        }
    }
}

/// The keys of one object so far, to refuse repeats (case-insensitively for Wazuh, which lets
/// the first of two such keys win; exactly for JSON, where only a repeat of an encoded field
/// would matter, and refusing every repeat is simpler and as rare).
#[derive(Default)]
struct Keys<'a> {
    seen: [&'a str; MAX_KEYS],
    count: usize,
    /// One bit per (length, last letter) of the keys seen: a key whose bit is clear cannot
    /// repeat one, so most keys are compared with none of the others.
    signatures: u64,
}

impl<'a> Keys<'a> {
    fn add(&mut self, key: &'a str, wazuh: bool) -> Option<()> {
        if self.count == MAX_KEYS {
            return None;
        }
        // Case-folded, so that keys equal ignoring case (the Wazuh shape) share a bit.
        let last = key.as_bytes().last().map_or(0, u8::to_ascii_lowercase) as usize;
        let signature = 1u64 << ((key.len() + 7 * last) % 64);
        let maybe_repeated = self.signatures & signature != 0;
        self.signatures |= signature;
        let repeated = maybe_repeated
            && self.seen[..self.count].iter().any(|seen| {
                if wazuh {
                    seen.eq_ignore_ascii_case(key)
                } else {
                    *seen == key
                }
            });
        if repeated {
            return None;
        }
        self.seen[self.count] = key;
        self.count += 1;
        Some(())
    }
}

/// A position in the line. Every method returns `None` for what the direct path does not take.
struct Cursor<'a> {
    text: &'a str,
    /// [`escape_bitmap`] of `text`: where each string can end.
    escapes: &'a [u64],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn skip_white_space(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not white space, left in place.
    fn peek(&mut self) -> Option<u8> {
        self.skip_white_space();
        self.text.as_bytes().get(self.at).copied()
    }

    /// The next byte that is not white space, consumed.
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// A string without escapes or control characters: its text between the quotes.
    fn string(&mut self) -> Option<&'a str> {
        if self.next()? != b'"' {
            return None;
        }
        let start = self.at;
        let mut word = start / 64;
        let mut bits = *self.escapes.get(word)? & (u64::MAX << (start % 64));
        while bits == 0 {
            word += 1;
            bits = *self.escapes.get(word)?;
        }
        let end = word * 64 + bits.trailing_zeros() as usize;
        // The first byte needing an escape must be the closing quote: a backslash is an escape
        // (the general path unescapes it), a control character makes the line invalid JSON.
        if self.text.as_bytes()[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Cut at ASCII quotes of valid UTF-8: always character boundaries.
        self.text.get(start..end)
    }
}

#[cfg(test)]
mod tests;
