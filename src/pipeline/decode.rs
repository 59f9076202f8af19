//! Decoding one event exactly as API doc §6.1 says; pure.
//!
//! Most collectors get this wrong in one of three ways, each of which corrupts or loses data:
//! they form-decode (`+` becomes a space: `title>cnbc` turns into `title cnbc`), they base64-decode
//! the whole `;`-joined list (everything after a padded element is lost), or they drop the
//! event when one element is bad. Here `+` is never touched, each element is decoded on its own,
//! and an element that cannot be decoded keeps its text and is listed in `decodeErrors`.

use crate::pipeline::event::{Object, Value};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use memchr::memchr;
use std::borrow::Cow;

mod base64_plain;
mod percent;
use base64_plain::base64_into;
pub use percent::percent_decode_into;

/// The seven parallel lists of `attackData`: element *i* of each belongs to rule *i*.
pub const RULE_FIELDS: [&str; 7] = [
    "rules",
    "ruleVersions",
    "ruleMessages",
    "ruleTags",
    "ruleData",
    "ruleSelectors",
    "ruleActions",
];

/// The top-level field listing what could not be decoded.
pub const DECODE_ERRORS: &str = "decodeErrors";

/// Standard alphabet, padding optional; lenient about trailing bits so that only text that is
/// really not base64 counts as an error.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decode the encoded fields of one API event; everything else passes through in order.
pub fn decode_event(event: Value<'_>) -> Value<'_> {
    Decoder::default().decode_event(event)
}

/// Decodes events with reusable scratch space, so a stream of events costs no allocation
/// beyond the decoded values themselves.
#[derive(Default)]
pub struct Decoder {
    unescaped: Vec<u8>,
    decoded: Vec<u8>,
    escape_run: Vec<u8>,
    errors: Vec<String>,
}

impl Decoder {
    /// Decode the encoded fields of one API event; everything else passes through in order.
    pub fn decode_event<'a>(&mut self, mut event: Value<'a>) -> Value<'a> {
        let Value::Object(fields) = &mut event else {
            return event;
        };
        self.errors.clear();
        for (key, value) in fields.iter_mut() {
            match key.as_ref() {
                "attackData" => self.decode_attack_data(value),
                "httpMessage" => self.decode_http_message(value),
                "custom" => self.decode_custom(value),
                _ => {}
            }
        }
        if !self.errors.is_empty() {
            let errors = self.errors.drain(..).map(|e| Value::String(e.into()));
            // `format::parse_event` starts the list at the end of the event when the line had
            // bytes that are not UTF-8: one list, not two.
            match fields.last_mut() {
                Some((key, Value::Array(list))) if key == DECODE_ERRORS => list.extend(errors),
                _ => fields.push((DECODE_ERRORS.into(), Value::Array(errors.collect()))),
            }
        }
        event
    }

    fn decode_attack_data(&mut self, attack_data: &mut Value<'_>) {
        let Value::Object(fields) = attack_data else {
            return;
        };
        let mut longest = 0;
        for (key, value) in fields.iter_mut() {
            if let (true, Value::String(text)) = (RULE_FIELDS.contains(&key.as_ref()), &*value) {
                let list = self.rule_list(text, "attackData.", key);
                longest = longest.max(list.len());
                *value = Value::Array(list);
            }
        }
        pad_rule_lists(fields, longest);
    }

    fn decode_custom(&mut self, custom: &mut Value<'_>) {
        match custom {
            Value::String(text) => {
                let list = self.rule_list(text, "", "custom");
                *custom = Value::Array(list);
            }
            Value::Object(fields) => {
                for (key, value) in fields.iter_mut() {
                    if let Value::String(text) = &*value {
                        let list = self.rule_list(text, "custom.", key);
                        *value = Value::Array(list);
                    }
                }
            }
            _ => {}
        }
    }

    fn decode_http_message(&mut self, http_message: &mut Value<'_>) {
        let Value::Object(fields) = http_message else {
            return;
        };
        for (key, value) in fields.iter_mut() {
            let Value::String(text) = &*value else {
                continue;
            };
            match key.as_ref() {
                "requestHeaders" | "responseHeaders" => *value = self.headers(text, key),
                "path" | "query" => {
                    let (decoded, kept_escapes) = decode_readable_with(text, &mut self.escape_run);
                    let decoded = match decoded {
                        Cow::Owned(decoded) => Some(decoded),
                        Cow::Borrowed(_) => None,
                    };
                    if kept_escapes {
                        self.errors.push(format!("httpMessage.{key}"));
                    }
                    if let Some(decoded) = decoded {
                        *value = Value::String(Cow::Owned(decoded));
                    }
                }
                _ => {}
            }
        }
    }

    /// `%XX` once, `+` untouched, malformed escapes kept; `;`-split; each element base64.
    /// Errors are reported as `<prefix><key>[<index>]`.
    fn rule_list(&mut self, text: &str, prefix: &str, key: &str) -> Vec<Value<'static>> {
        percent_decode_into(text.as_bytes(), &mut self.unescaped);
        let errors = &mut self.errors;
        let mut list = Vec::new();
        for_each_rule_element(&self.unescaped, &mut self.decoded, |index, element| {
            list.push(Value::String(match element {
                RuleElement::Empty => Cow::Borrowed(""),
                RuleElement::Text(text) => Cow::Owned(text.to_string()),
                RuleElement::NotUtf8(bytes) | RuleElement::NotBase64(bytes) => {
                    // Replaced bytes change what a rule sees, and an element that is not base64
                    // keeps its text: say so either way.
                    errors.push(format!("{prefix}{key}[{index}]"));
                    Cow::Owned(String::from_utf8_lossy(bytes).into_owned())
                }
            }));
        });
        list
    }

    /// One percent-encoded block of `Name: value\r\n` lines → the lines, in order, repeats
    /// kept; a line that is not UTF-8 is kept lossily and listed as `httpMessage.<key>[<index>]`.
    fn headers(&mut self, text: &str, key: &str) -> Value<'static> {
        percent_decode_into(text.as_bytes(), &mut self.unescaped);
        decode_header_block(&self.unescaped, |index| {
            self.errors.push(format!("httpMessage.{key}[{index}]"))
        })
    }
}

/// One element of a percent-decoded rule list.
pub(crate) enum RuleElement<'e> {
    /// Empty or white space only: `""`.
    Empty,
    /// The element's base64, decoded.
    Text(&'e str),
    /// Base64 of bytes that are not UTF-8: those bytes.
    NotUtf8(&'e [u8]),
    /// Not base64: the element as it was sent.
    NotBase64(&'e [u8]),
}

/// Each element of a percent-decoded rule list, in order, with its index: split on `;`, each
/// trimmed and base64-decoded on its own (into `scratch`, reused). The tree decoder and the
/// direct writer both decode through here, so they cannot disagree on an element.
pub(crate) fn for_each_rule_element(
    unescaped: &[u8],
    scratch: &mut Vec<u8>,
    mut each: impl FnMut(usize, RuleElement<'_>),
) {
    for (index, element) in unescaped.split(|&byte| byte == b';').enumerate() {
        let trimmed = element.trim_ascii();
        if trimmed.is_empty() {
            each(index, RuleElement::Empty);
            continue;
        }
        scratch.clear();
        match base64_into(trimmed, scratch) {
            Ok(()) => match simdutf8::basic::from_utf8(scratch) {
                Ok(text) => each(index, RuleElement::Text(text)),
                Err(_) => each(index, RuleElement::NotUtf8(scratch)),
            },
            Err(_) => each(index, RuleElement::NotBase64(element)),
        }
    }
}

/// Each line of a percent-decoded header block, in order, repeats kept, without its `\r`,
/// empty ones skipped, with its index and whether bytes that are not UTF-8 were replaced in it.
/// The block is validated once; only a rare invalid block is converted line by line, lossily.
/// Lines are found with the memchr crate (SIMD): `str::split` searches byte by byte. A `\n` is
/// ASCII, so every cut is at a character boundary. The tree decoder and the direct writer both
/// split through here.
pub(crate) fn for_each_header_line(unescaped: &[u8], mut each: impl FnMut(usize, &str, bool)) {
    match simdutf8::basic::from_utf8(unescaped) {
        Ok(block) => {
            let mut start = 0;
            let ends = memchr::memchr_iter(b'\n', unescaped).chain([unescaped.len()]);
            let lines = ends.filter_map(|end| {
                let line = &block[start..end];
                start = end + 1;
                let line = line.strip_suffix('\r').unwrap_or(line);
                (!line.is_empty()).then_some(line)
            });
            for (index, line) in lines.enumerate() {
                each(index, line, false);
            }
        }
        Err(_) => {
            let lines = unescaped
                .split(|&byte| byte == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
                .filter(|line| !line.is_empty());
            for (index, line) in lines.enumerate() {
                let text = String::from_utf8_lossy(line);
                each(index, &text, matches!(text, Cow::Owned(_)));
            }
        }
    }
}

/// Ragged lists are padded with `""` so index *i* means rule *i* in every list.
fn pad_rule_lists(fields: &mut Object<'_>, longest: usize) {
    for (key, value) in fields.iter_mut() {
        if let (true, Value::Array(list)) = (RULE_FIELDS.contains(&key.as_ref()), value) {
            list.resize(longest.max(list.len()), Value::String(Cow::Borrowed("")));
        }
    }
}

fn decode_header_block(unescaped: &[u8], mut replaced: impl FnMut(usize)) -> Value<'static> {
    let mut lines = Vec::new();
    for_each_header_line(unescaped, |index, line, lossy| {
        if lossy {
            replaced(index);
        }
        lines.push(Value::String(Cow::Owned(line.to_string())));
    });
    Value::Array(lines)
}

/// `path`/`query` are the client's own text: every escape is decoded once where its bytes form
/// UTF-8 (so `%2e%2e` is `..` for the rules), and an escape whose byte is not part of valid
/// UTF-8 is kept exactly as written (`caf%e9`, the overlong `/` `%c0%af`): replacing it would
/// destroy attack evidence. The flag says whether any escape was kept. `run` is scratch space
/// for the bytes of a run of escapes, so the decoder allocates only the decoded text.
pub(crate) fn decode_readable_with<'t>(text: &'t str, run: &mut Vec<u8>) -> (Cow<'t, str>, bool) {
    let input = text.as_bytes();
    if memchr(b'%', input).is_none() {
        return (Cow::Borrowed(text), false);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut kept_escapes = false;
    let (mut copied, mut at) = (0, 0);
    while let Some(offset) = memchr(b'%', &input[at..]) {
        let start = at + offset;
        // A run of consecutive escapes: a multi-byte character is always split over escapes
        // that follow each other, never mixed with literal bytes (the text is valid UTF-8, so
        // a literal continuation byte always follows its literal lead byte).
        run.clear();
        let mut end = start;
        while let Some(byte) = escape_at(input, end) {
            run.push(byte);
            end += 3;
        }
        if run.is_empty() {
            at = start + 1;
            continue;
        }
        out.extend_from_slice(&input[copied..start]);
        let mut decoded = 0;
        for chunk in run.utf8_chunks() {
            out.extend_from_slice(chunk.valid().as_bytes());
            decoded += chunk.valid().len();
            for _ in chunk.invalid() {
                let escape = start + 3 * decoded;
                out.extend_from_slice(&input[escape..escape + 3]);
                decoded += 1;
                kept_escapes = true;
            }
        }
        (copied, at) = (end, end);
    }
    out.extend_from_slice(&input[copied..]);
    match String::from_utf8(out) {
        Ok(decoded) => (Cow::Owned(decoded), kept_escapes),
        // Cannot happen (literal runs are cut at ASCII `%`); the original is the safe answer.
        Err(_) => (Cow::Borrowed(text), true),
    }
}

/// The byte of the `%XX` escape at `at`, if there is one.
fn escape_at(input: &[u8], at: usize) -> Option<u8> {
    if input.get(at) != Some(&b'%') {
        return None;
    }
    let high = hex_value(*input.get(at + 1)?)?;
    let low = hex_value(*input.get(at + 2)?)?;
    Some(high << 4 | low)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
