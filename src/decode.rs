//! Decoding one event exactly as API doc §6.1 says; pure.
//!
//! Most collectors get this wrong in one of three ways, each of which corrupts or loses data:
//! they form-decode (`+` becomes a space: `title>cnbc` turns into `title cnbc`), they base64-decode
//! the whole `;`-joined list (everything after a padded element is lost), or they drop the
//! event when one element is bad. Here `+` is never touched, each element is decoded on its own,
//! and an element that cannot be decoded keeps its text and is listed in `decodeErrors`.

use crate::event::{Object, Value};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use memchr::memchr;
use std::borrow::Cow;

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
const BASE64: GeneralPurpose = GeneralPurpose::new(
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
            let list = self
                .errors
                .drain(..)
                .map(|e| Value::String(e.into()))
                .collect();
            fields.push((DECODE_ERRORS.into(), Value::Array(list)));
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
                "requestHeaders" | "responseHeaders" => *value = self.headers(text),
                "path" | "query" => {
                    if let Some(decoded) = decode_readable(text) {
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
        self.unescaped
            .split(|&byte| byte == b';')
            .enumerate()
            .map(|(index, element)| {
                let trimmed = element.trim_ascii();
                if trimmed.is_empty() {
                    return Value::String(Cow::Borrowed(""));
                }
                let text = match BASE64.decode(trimmed) {
                    Ok(bytes) => into_string_lossy(bytes),
                    Err(_) => {
                        errors.push(format!("{prefix}{key}[{index}]"));
                        String::from_utf8_lossy(element).into_owned()
                    }
                };
                Value::String(Cow::Owned(text))
            })
            .collect()
    }

    /// One percent-encoded block of `Name: value\r\n` lines → the lines, in order, repeats
    /// kept.
    fn headers(&mut self, text: &str) -> Value<'static> {
        percent_decode_into(text.as_bytes(), &mut self.unescaped);
        decode_header_block(&self.unescaped)
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

/// A rule list on its own (errors listed as `path[index]`), for callers outside a stream.
pub fn decode_rule_list(text: &str, path: &str, errors: &mut Vec<String>) -> Vec<Value<'static>> {
    let mut decoder = Decoder::default();
    let list = decoder.rule_list(text, "", path);
    errors.append(&mut decoder.errors);
    list
}

fn decode_header_block(unescaped: &[u8]) -> Value<'static> {
    // Validate the block once; per-line lossy conversion only for the rare invalid block.
    let lines = match std::str::from_utf8(unescaped) {
        Ok(block) => block
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .filter(|line| !line.is_empty())
            .map(|line| Value::String(Cow::Owned(line.to_string())))
            .collect(),
        Err(_) => unescaped
            .split(|&byte| byte == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.is_empty())
            .map(|line| Value::String(Cow::Owned(String::from_utf8_lossy(line).into_owned())))
            .collect(),
    };
    Value::Array(lines)
}

/// `path`/`query` are the client's own text: decode once for readability, but keep the
/// original when decoding would not give valid UTF-8 (lossy would destroy attack evidence).
/// `None` when there is nothing to change.
pub fn decode_readable(text: &str) -> Option<String> {
    match percent_decode_once(text.as_bytes()) {
        Cow::Borrowed(_) => None,
        Cow::Owned(bytes) => String::from_utf8(bytes).ok(),
    }
}

/// `%XX` (either case) → the byte, once; anything else, a malformed `%` and `+` included, is
/// copied as it is. Borrowed when there is no `%` at all.
pub fn percent_decode_once(input: &[u8]) -> Cow<'_, [u8]> {
    if memchr(b'%', input).is_none() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::new();
    percent_decode_into(input, &mut out);
    Cow::Owned(out)
}

/// Decode into `out` (cleared first). Akamai's blocks have an escape every few bytes, so the
/// `%` signs are found 16 bytes at a time and the literal runs between them copied whole.
pub fn percent_decode_into(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(input.len());
    let mut run_start = 0;
    let visit = |at: usize, out: &mut Vec<u8>, run_start: &mut usize| {
        if let (Some(high), Some(low)) = (
            input.get(at + 1).and_then(|&b| hex_value(b)),
            input.get(at + 2).and_then(|&b| hex_value(b)),
        ) {
            out.extend_from_slice(&input[*run_start..at]);
            out.push(high << 4 | low);
            *run_start = at + 3;
        }
    };
    let mut block = 0;
    while block + 16 <= input.len() {
        let mut mask = percent_mask(&input[block..block + 16]);
        while mask != 0 {
            // A valid escape's second and third bytes are hex digits, never `%`, so no `%`
            // found here can lie inside an escape already decoded.
            visit(block + mask.trailing_zeros() as usize, out, &mut run_start);
            mask &= mask - 1;
        }
        block += 16;
    }
    for (at, &byte) in input.iter().enumerate().skip(block) {
        if byte == b'%' {
            visit(at, out, &mut run_start);
        }
    }
    out.extend_from_slice(&input[run_start..]);
}

/// Bit *i* set when `block[i]` is `%`.
fn percent_mask(block: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        debug_assert_eq!(block.len(), 16);
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads exactly the 16 bytes of
        // `block` (the caller passes 16), unaligned.
        unsafe {
            let bytes = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'%' as i8))) as u32
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        block
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'%')
            .fold(0, |mask, (i, _)| mask | 1 << i)
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn into_string_lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_text(input: &str) -> String {
        let value = decode_event(Value::parse(input.as_bytes()).unwrap());
        let mut out = Vec::new();
        value.write_compact(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn list(text: &str) -> (Vec<String>, Vec<String>) {
        let mut errors = Vec::new();
        let values = decode_rule_list(text, "f", &mut errors)
            .into_iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        (values, errors)
    }

    #[test]
    fn official_examples() {
        assert_eq!(
            list("OTUwMDAy%3bOTUwMDA2%3bQ01ELUlOSkVDVElPTi1BTk9NQUxZ").0,
            ["950002", "950006", "CMD-INJECTION-ANOMALY"]
        );
        assert_eq!(
            list("YWxlcnQ%3d%3bYWxlcnQ%3d%3bZGVueQ%3d%3d").0,
            ["alert", "alert", "deny"]
        );
    }

    #[test]
    fn plus_is_never_a_space() {
        assert_eq!(list("dGl0bGU+Y25iYw%3d%3d").0, ["title>cnbc"]);
    }

    #[test]
    fn a_deny_after_a_padded_element_is_kept() {
        // Decoding the whole joined string (the Python script's mistake) loses the last element.
        assert_eq!(list("YQ%3d%3d%3bZGVueQ%3d%3d").0, ["a", "deny"]);
    }

    #[test]
    fn empty_and_trailing_empty_elements_are_kept() {
        assert_eq!(list("QQ%3d%3d%3b").0, ["A", ""]);
        assert_eq!(list("%3bQQ%3d%3d%3b%3b").0, ["", "A", "", ""]);
        assert_eq!(list("").0, [""]);
    }

    #[test]
    fn escapes_in_either_case_and_missing_padding_and_whitespace() {
        assert_eq!(list("YWxlcnQ%3D%3BYWxlcnQ").0, ["alert", "alert"]);
        assert_eq!(list(" YWxlcnQ= ").0, ["alert"]);
    }

    #[test]
    fn an_undecodable_element_keeps_its_text_and_is_listed() {
        let (values, errors) = list("YWxlcnQ%3d%3bnot*base64%3bZGVueQ%3d%3d");
        assert_eq!(values, ["alert", "not*base64", "deny"]);
        assert_eq!(errors, ["f[1]"]);
    }

    #[test]
    fn malformed_escapes_stay_as_they_are() {
        let (values, errors) = list("YQ%3d%zz");
        assert_eq!(values, ["YQ=%zz"]);
        assert_eq!(errors, ["f[0]"]);
    }

    #[test]
    fn non_utf8_bytes_become_replacement_characters() {
        // 0xff 0xfe 'A'
        assert_eq!(list("//5B").0, ["\u{fffd}\u{fffd}A"]);
    }

    #[test]
    fn ragged_rule_lists_are_padded_to_the_longest() {
        let out = decode_text(
            r#"{"attackData":{"rules":"MQ%3d%3d%3bMg%3d%3d%3bMw%3d%3d","ruleVersions":"","ruleData":"eA%3d%3d","other":"YQ%3d%3d"}}"#,
        );
        assert_eq!(
            out,
            r#"{"attackData":{"rules":["1","2","3"],"ruleVersions":["","",""],"ruleData":["x","",""],"other":"YQ%3d%3d"}}"#
        );
    }

    #[test]
    fn rule_fields_that_are_not_strings_pass_through() {
        let out = decode_text(
            r#"{"attackData":{"rules":["already"],"ruleData":null,"ruleTags":"QQ%3d%3d"}}"#,
        );
        assert_eq!(
            out,
            r#"{"attackData":{"rules":["already"],"ruleData":null,"ruleTags":["A"]}}"#
        );
    }

    #[test]
    fn headers_are_decoded_once_split_and_repeats_kept() {
        let out = decode_text(
            r#"{"httpMessage":{"responseHeaders":"Set-Cookie%3a%20a%3d1%0d%0aSet-Cookie%3a%20b%3d2%0d%0aCookie%3a%20s%3dab12%252Fcd%0d%0aX%3a%20a+b%0aY%3a%201%0d%0a"}}"#,
        );
        assert_eq!(
            out,
            r#"{"httpMessage":{"responseHeaders":["Set-Cookie: a=1","Set-Cookie: b=2","Cookie: s=ab12%2Fcd","X: a+b","Y: 1"]}}"#
        );
    }

    #[test]
    fn headers_with_invalid_utf8_are_kept_lossily_line_by_line() {
        let out =
            decode_text(r#"{"httpMessage":{"requestHeaders":"A%3a%20%ff%0d%0aB%3a%20ok%0d%0a"}}"#);
        assert_eq!(
            out,
            "{\"httpMessage\":{\"requestHeaders\":[\"A: \u{fffd}\",\"B: ok\"]}}"
        );
    }

    #[test]
    fn path_and_query_are_decoded_once_leniently() {
        let out = decode_text(
            r#"{"httpMessage":{"path":"/a%20b/%zz","query":"q=1+2%3E%252F","method":"GET%20"}}"#,
        );
        assert_eq!(
            out,
            r#"{"httpMessage":{"path":"/a b/%zz","query":"q=1+2>%2F","method":"GET%20"}}"#
        );
    }

    #[test]
    fn path_that_would_not_be_utf8_keeps_its_original_text() {
        let out = decode_text(r#"{"httpMessage":{"path":"/%ff%fe"}}"#);
        assert_eq!(out, r#"{"httpMessage":{"path":"/%ff%fe"}}"#);
    }

    #[test]
    fn custom_as_string_or_object() {
        assert_eq!(
            decode_text(r#"{"custom":"YQ%3d%3d"}"#),
            r#"{"custom":["a"]}"#
        );
        assert_eq!(
            decode_text(r#"{"custom":{"tenant":"YQ%3d%3d%3bYg%3d%3d","n":5,"bad":"!!"}}"#),
            r#"{"custom":{"tenant":["a","b"],"n":5,"bad":["!!"]},"decodeErrors":["custom.bad[0]"]}"#
        );
    }

    #[test]
    fn unknown_fields_and_order_pass_through() {
        let input = r#"{"zz":1,"type":"akamai_siem","newThing":{"x":"%41"},"attackData":{"clientIP":"::1"}}"#;
        assert_eq!(decode_text(input), input);
    }

    #[test]
    fn errors_are_listed_last_with_their_paths() {
        let out = decode_text(r#"{"attackData":{"ruleData":"QQ%3d%3d%3b***"},"z":1}"#);
        assert_eq!(
            out,
            r#"{"attackData":{"ruleData":["A","***"]},"z":1,"decodeErrors":["attackData.ruleData[1]"]}"#
        );
    }

    #[test]
    fn percent_decoding_matches_the_reference_crate_on_awkward_input() {
        let cases: [&[u8]; 10] = [
            b"",
            b"%",
            b"%%",
            b"%4",
            b"%4G",
            b"%41%42",
            b"a%2fb%2F%zz%",
            b"+%2B+",
            b"%%41",
            b"end%4",
        ];
        for case in cases {
            let reference: Vec<u8> = percent_encoding::percent_decode(case).collect();
            assert_eq!(
                percent_decode_once(case).as_ref(),
                reference.as_slice(),
                "{case:?}"
            );
        }
        assert!(matches!(
            percent_decode_once(b"no escapes"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn block_scanning_decodes_escapes_anywhere_around_block_edges() {
        for offset in 0..40 {
            for tail in ["%41", "%4", "%", "%zz", "%%41", "%2B+"] {
                let input = format!("{}{tail}{}", "x".repeat(offset), "y".repeat(offset % 7));
                let reference: Vec<u8> =
                    percent_encoding::percent_decode(input.as_bytes()).collect();
                let mut ours = Vec::new();
                percent_decode_into(input.as_bytes(), &mut ours);
                assert_eq!(ours, reference, "{input}");
            }
        }
    }

    #[test]
    fn a_non_object_passes_through() {
        assert_eq!(decode_text("[1,2]"), "[1,2]");
    }
}
