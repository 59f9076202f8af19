//! Shaping decoded events for Wazuh's JSON decoder and rules (see docs/wazuh.md §3).
//!
//! Every line starts with `{"integration":"akamai",` (the discriminator the rules key on) and a
//! top-level `srcip` (the client IP, which unlocks `<same_srcip/>`, CDB lists, active response and
//! GeoIP). Wazuh turns `null` into the text "null", prints non-integer numbers with six decimals,
//! pretty-prints arrays of objects over several lines, lets the first of two case-insensitively
//! equal keys win, drops fields beyond 256, and silently cuts lines at 64 KiB into invalid JSON.
//! So: no nulls, numbers as strings, arrays of strings only, unique keys, at most `max_fields`
//! leaf fields, and at most `max_line_bytes` per line, shrinking the largest fields with a visible
//! marker rather than ever dropping an event.

use crate::pipeline::decode::DECODE_ERRORS;
use crate::pipeline::event::{Object, Value};
use std::borrow::Cow;

#[derive(Debug, Clone)]
pub struct Limits {
    /// The longest line written; bigger events are shrunk, never dropped.
    pub max_line_bytes: usize,
    /// Wazuh drops fields beyond 256 per event; stay well below.
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: crate::config::DEFAULT_MAX_LINE_BYTES,
            max_fields: 200,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shaped {
    pub shrunk: bool,
}

/// Wazuh's static fields (docs/wazuh.md §3): rules may not name them in `<field>`.
pub const STATIC_FIELDS: &[&str] = &[
    "srcip",
    "dstip",
    "srcport",
    "dstport",
    "protocol",
    "action",
    "user",
    "srcuser",
    "dstuser",
    "id",
    "status",
    "url",
    "data",
    "extra_data",
    "systemname",
];

/// Top-level names that clash with Wazuh's index template.
const INDEX_CLASHES: &[&str] = &["port", "timestamp"];

/// An event field at the top level with a reserved name is kept under `akamai_<name>`: static
/// fields, index clashes, and the two names this shaping adds.
fn is_reserved_top_level(name: &str) -> bool {
    ["integration", "srcip"]
        .iter()
        .chain(STATIC_FIELDS)
        .chain(INDEX_CLASHES)
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
}

pub const CUT_FIELDS: &str = "cutFields";
pub const RENAMED_FIELDS: &str = "renamedFields";
pub const COLLAPSED_FIELDS: &str = "collapsedFields";
/// The top-level fields beyond the field limit, as one JSON text.
pub const OVERFLOW_FIELDS: &str = "overflowFields";
/// The shaping's own lists show this many entries, each at most `NOTE_BYTES` long: a hostile
/// event (thousands of repeated keys, a 100 KB key) must not make the notes outgrow the line.
const NOTES_SHOWN: usize = 10;
const NOTE_BYTES: usize = 160;

/// Room for the shaping's own lists and markers when sizing cuts.
const CUT_RESERVE: usize = 512;
/// A cut field keeps at least this much of its start.
const MIN_KEPT: usize = 64;

/// Append the Wazuh-shaped line for one decoded event to `out`.
pub fn write_event(event: Value<'_>, out: &mut Vec<u8>, limits: &Limits) -> Shaped {
    let Value::Object(fields) = event else {
        // Not an event object: keep the data, under a key Wazuh can decode.
        let mut text = Vec::new();
        event.write_compact(&mut text);
        let fields = vec![(
            Cow::Borrowed("unexpectedValue"),
            Value::String(String::from_utf8_lossy(&text).into_owned().into()),
        )];
        return write_event(Value::Object(fields), out, limits);
    };
    let mut notes = Notes::default();
    // Only a real address: srcip feeds CDB lists and active response, and any other text
    // (100 KB of it, say) would be copied uncut to the front of the line. The field itself
    // stays in attackData as it was. Usually borrowed: cloning the Cow copies no bytes.
    let srcip = match fields
        .iter()
        .find(|(k, _)| k == "attackData")
        .and_then(|(_, v)| v.get("clientIP"))
    {
        Some(Value::String(ip)) if ip.parse::<std::net::IpAddr>().is_ok() => Some(ip.clone()),
        _ => None,
    };
    let mut shaped = fields;
    normalise_object(&mut shaped, &mut String::new(), true, &mut notes);
    let added = 1 + usize::from(srcip.is_some()) + 3;
    let max_leaves = limits.max_fields.saturating_sub(added);
    collapse_until(&mut shaped, max_leaves, &mut notes);
    collapse_top_level_overflow(&mut shaped, max_leaves, &mut notes);

    let start = out.len();
    write_line(&shaped, srcip.as_deref(), &notes, out);
    let mut rounds = 0;
    while out.len() - start > limits.max_line_bytes {
        rounds += 1;
        let excess = out.len() - start - limits.max_line_bytes + CUT_RESERVE;
        let cut = cut_largest(&mut shaped, excess, &mut notes);
        out.truncate(start);
        if !cut || rounds > 64 {
            write_minimal(&shaped, srcip.as_deref(), limits.max_line_bytes, out);
            return Shaped { shrunk: true };
        }
        write_line(&shaped, srcip.as_deref(), &notes, out);
    }
    Shaped {
        shrunk: !notes.cut.is_empty() || !notes.collapsed.is_empty(),
    }
}

#[derive(Default)]
struct Notes {
    cut: Vec<String>,
    renamed: Vec<String>,
    collapsed: Vec<String>,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Nulls dropped, scalars as strings, arrays of strings, keys unique case-insensitively; in
/// place, since almost every event is already all strings and needs no change.
/// `path` is the dotted path of `fields` (one buffer for the whole walk: it is only read when
/// a key has to be renamed).
fn normalise_object(
    fields: &mut Object<'_>,
    path: &mut String,
    top_level: bool,
    notes: &mut Notes,
) {
    fields.retain(|(_, value)| !matches!(value, Value::Null));
    let mut names = Names::for_object(fields.len());
    for index in 0..fields.len() {
        let (key, value) = &mut fields[index];
        match value {
            Value::String(_) => {}
            Value::Object(inner) => {
                let length = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                normalise_object(inner, path, false, notes);
                path.truncate(length);
            }
            Value::Array(items) => {
                for item in items.iter_mut() {
                    if !matches!(item, Value::String(_)) {
                        *item = array_element(std::mem::replace(item, Value::Null));
                    }
                }
            }
            scalar => *scalar = Value::String(scalar_text(std::mem::replace(scalar, Value::Null))),
        }
        let (earlier, rest) = fields.split_at_mut(index);
        let key = &mut rest[0].0;
        if names.taken(key, earlier, top_level) {
            *key = Cow::Owned(names.unique(key, earlier, top_level, path, notes));
        }
        names.add(key);
    }
}

/// The keys of one object seen so far, case-insensitively. Events have a dozen keys per object,
/// and comparing against them costs nothing; a hostile object with thousands of keys (or
/// thousands of the same key) would make that quadratic, so big objects keep a set instead.
enum Names {
    Few,
    Many {
        seen: std::collections::HashSet<String>,
        /// The next suffix to try per renamed base, so repeats of one key stay linear.
        next_suffix: std::collections::HashMap<String, usize>,
    },
}

impl Names {
    fn for_object(fields: usize) -> Names {
        if fields <= 32 {
            Names::Few
        } else {
            Names::Many {
                seen: std::collections::HashSet::with_capacity(fields),
                next_suffix: std::collections::HashMap::new(),
            }
        }
    }

    fn taken(&self, key: &str, earlier: &[(Cow<'_, str>, Value<'_>)], top_level: bool) -> bool {
        (top_level && is_reserved_top_level(key))
            || match self {
                Names::Few => earlier.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)),
                Names::Many { seen, .. } => seen.contains(&key.to_ascii_lowercase()),
            }
    }

    fn add(&mut self, key: &str) {
        if let Names::Many { seen, .. } = self {
            seen.insert(key.to_ascii_lowercase());
        }
    }

    fn unique(
        &mut self,
        key: &str,
        earlier: &[(Cow<'_, str>, Value<'_>)],
        top_level: bool,
        prefix: &str,
        notes: &mut Notes,
    ) -> String {
        let base = if top_level {
            format!("akamai_{key}")
        } else {
            key.to_string()
        };
        let mut n = match self {
            Names::Few => 2,
            Names::Many { next_suffix, .. } => next_suffix
                .get(&base.to_ascii_lowercase())
                .copied()
                .unwrap_or(2),
        };
        let mut candidate = base.clone();
        while self.taken(&candidate, earlier, top_level) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        if let Names::Many { next_suffix, .. } = self {
            next_suffix.insert(base.to_ascii_lowercase(), n);
        }
        notes.renamed.push(format!(
            "{} -> {}",
            join(prefix, key),
            join(prefix, &candidate)
        ));
        candidate
    }
}

fn scalar_text<'a>(value: Value<'a>) -> Cow<'a, str> {
    match value {
        Value::String(text) => text,
        Value::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
        Value::Number(n) => Cow::Owned(n.to_string()),
        other => {
            let mut text = Vec::new();
            other.write_compact(&mut text);
            Cow::Owned(String::from_utf8_lossy(&text).into_owned())
        }
    }
}

/// Elements keep their place (rule lists are aligned by index): a null becomes "".
fn array_element(value: Value<'_>) -> Value<'_> {
    match value {
        Value::Null => Value::String(Cow::Borrowed("")),
        Value::String(text) => Value::String(text),
        other => Value::String(scalar_text(other)),
    }
}

/// Wazuh counts every non-object value as one field (arrays included, as one text).
fn leaves(fields: &Object<'_>) -> usize {
    fields
        .iter()
        .map(|(_, v)| match v {
            Value::Object(inner) => leaves(inner),
            _ => 1,
        })
        .sum()
}

/// Turn the object with the most leaves into one JSON-text field until the event fits.
fn collapse_until(fields: &mut Object<'_>, max_leaves: usize, notes: &mut Notes) {
    while leaves(fields) > max_leaves {
        let Some(path) = largest_object(fields) else {
            return;
        };
        let Some(slot) = find_mut(fields, &path) else {
            return;
        };
        let mut text = Vec::new();
        slot.write_compact(&mut text);
        *slot = Value::String(Cow::Owned(String::from_utf8_lossy(&text).into_owned()));
        notes.collapsed.push(path.join("."));
    }
}

/// Collapsing objects cannot help when the top level itself has too many fields: the fields
/// beyond the limit are kept together as the JSON text of one field, rather than left for Wazuh
/// to drop. The fields rules key on stay where they are, whatever comes before them.
fn collapse_top_level_overflow(fields: &mut Object<'_>, max_leaves: usize, notes: &mut Notes) {
    if leaves(fields) <= max_leaves {
        return;
    }
    let count = |value: &Value<'_>| match value {
        Value::Object(inner) => leaves(inner),
        _ => 1,
    };
    let essential =
        |key: &str| ["type", "attackData", "httpMessage", "geo", DECODE_ERRORS].contains(&key);
    // One leaf is for the overflow field itself.
    let mut room = max_leaves.saturating_sub(1).saturating_sub(
        fields
            .iter()
            .filter(|(k, _)| essential(k))
            .map(|(_, v)| count(v))
            .sum(),
    );
    let (mut kept, mut moved) = (Vec::with_capacity(max_leaves), Vec::new());
    for (key, value) in fields.drain(..) {
        if essential(&key) {
            kept.push((key, value));
        } else if count(&value) <= room && moved.is_empty() {
            room -= count(&value);
            kept.push((key, value));
        } else {
            moved.push((key, value));
        }
    }
    *fields = kept;
    let overflow = Value::Object(moved);
    let mut text = Vec::new();
    overflow.write_compact(&mut text);
    let mut name = OVERFLOW_FIELDS.to_string();
    let mut n = 2;
    while fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
        name = format!("{OVERFLOW_FIELDS}_{n}");
        n += 1;
    }
    notes.collapsed.push(name.clone());
    fields.push((
        Cow::Owned(name),
        Value::String(Cow::Owned(String::from_utf8_lossy(&text).into_owned())),
    ));
}

/// The path of the object holding the most leaves: collapsing the biggest converges fastest.
fn largest_object(fields: &Object<'_>) -> Option<Vec<String>> {
    let mut best: Option<(usize, Vec<String>)> = None;
    fn visit(fields: &Object<'_>, path: &mut Vec<String>, best: &mut Option<(usize, Vec<String>)>) {
        for (key, value) in fields {
            if let Value::Object(inner) = value {
                path.push(key.to_string());
                let count = leaves(inner);
                if count > 1 && best.as_ref().is_none_or(|(c, _)| count > *c) {
                    *best = Some((count, path.clone()));
                }
                visit(inner, path, best);
                path.pop();
            }
        }
    }
    visit(fields, &mut Vec::new(), &mut best);
    best.map(|(_, path)| path)
}

fn find_mut<'v, 'a>(fields: &'v mut Object<'a>, path: &[String]) -> Option<&'v mut Value<'a>> {
    let (first, rest) = path.split_first()?;
    let value = fields
        .iter_mut()
        .find(|(k, _)| k == first.as_str())
        .map(|(_, v)| v)?;
    if rest.is_empty() {
        return Some(value);
    }
    match value {
        Value::Object(inner) => find_mut(inner, rest),
        _ => None,
    }
}

/// Serialised size of each leaf, with its path.
fn leaf_sizes(fields: &Object<'_>, path: &mut Vec<String>, sizes: &mut Vec<(usize, Vec<String>)>) {
    for (key, value) in fields {
        path.push(key.to_string());
        match value {
            Value::Object(inner) => leaf_sizes(inner, path, sizes),
            leaf => {
                let mut text = Vec::new();
                leaf.write_compact(&mut text);
                sizes.push((text.len(), path.clone()));
            }
        }
        path.pop();
    }
}

/// Shrink the largest leaf by `excess` bytes (keeping at least its start); false when nothing
/// can be cut any more.
fn cut_largest(fields: &mut Object<'_>, excess: usize, notes: &mut Notes) -> bool {
    let mut sizes = Vec::new();
    leaf_sizes(fields, &mut Vec::new(), &mut sizes);
    let Some((size, path)) = sizes.into_iter().max_by_key(|(size, _)| *size) else {
        return false;
    };
    if size <= MIN_KEPT * 2 {
        return false;
    }
    let target = size.saturating_sub(excess).max(MIN_KEPT);
    let Some(slot) = find_mut(fields, &path) else {
        return false;
    };
    match slot {
        Value::String(text) => *text = Cow::Owned(cut_string(text, target)),
        Value::Array(items) => cut_array(items, target),
        _ => return false,
    }
    let name = path.join(".");
    if !notes.cut.contains(&name) {
        notes.cut.push(name);
    }
    true
}

/// The start of `text` whose escaped form fits `budget` bytes, with a marker saying how much
/// was cut.
fn cut_string(text: &str, budget: usize) -> String {
    let marker_room = 40;
    let keep = budget.saturating_sub(marker_room);
    let mut kept = 0;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        let width = escaped_width(c);
        if kept + width > keep {
            break;
        }
        kept += width;
        end = index + c.len_utf8();
    }
    format!("{}…[cut {} bytes]", &text[..end], text.len() - end)
}

fn escaped_width(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Keep the leading elements that fit `budget`, cutting the one that crosses it, and add a
/// marker element saying how many were cut.
fn cut_array(items: &mut Vec<Value<'_>>, budget: usize) {
    let total = items.len();
    let mut used = 2;
    let mut kept = 0;
    for item in items.iter_mut() {
        let text = item.as_str().unwrap_or_default().to_string();
        let width: usize = text.chars().map(escaped_width).sum::<usize>() + 3;
        if used + width > budget {
            let room = budget.saturating_sub(used);
            if room > MIN_KEPT {
                *item = Value::String(Cow::Owned(cut_string(&text, room)));
                kept += 1;
            }
            break;
        }
        used += width;
        kept += 1;
    }
    items.truncate(kept);
    items.push(Value::String(Cow::Owned(format!(
        "…[cut {} of {total} items]",
        total - kept.min(total)
    ))));
}

fn write_line(fields: &Object<'_>, srcip: Option<&str>, notes: &Notes, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"integration\":\"akamai\"");
    if let Some(ip) = srcip {
        out.extend_from_slice(b",\"srcip\":");
        crate::pipeline::event::write_string(ip, out);
    }
    for (key, value) in fields {
        out.push(b',');
        crate::pipeline::event::write_string(key, out);
        out.push(b':');
        value.write_compact(out);
    }
    for (name, list) in [
        (CUT_FIELDS, &notes.cut),
        (COLLAPSED_FIELDS, &notes.collapsed),
        (RENAMED_FIELDS, &notes.renamed),
    ] {
        if !list.is_empty() {
            out.push(b',');
            crate::pipeline::event::write_string(name, out);
            out.extend_from_slice(b":[");
            for (index, entry) in list.iter().take(NOTES_SHOWN).enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                if entry.len() > NOTE_BYTES {
                    crate::pipeline::event::write_string(&cut_string(entry, NOTE_BYTES), out);
                } else {
                    crate::pipeline::event::write_string(entry, out);
                }
            }
            if list.len() > NOTES_SHOWN {
                out.push(b',');
                let more = format!(
                    "…[cut {} of {} items]",
                    list.len() - NOTES_SHOWN,
                    list.len()
                );
                crate::pipeline::event::write_string(&more, out);
            }
            out.push(b']');
        }
    }
    out.push(b'}');
}

/// Last resort for an event that cannot be shrunk field by field (thousands of tiny fields or
/// giant keys): the identifying fields, and the whole event as one cut text.
fn write_minimal(fields: &Object<'_>, srcip: Option<&str>, cap: usize, out: &mut Vec<u8>) {
    let mut whole = Vec::new();
    Value::Object(fields.clone()).write_compact(&mut whole);
    let text = String::from_utf8_lossy(&whole);
    // Identifying fields are short in any real event; here each is a string of bounded size,
    // whatever the event holds, so the head always leaves room under the cap.
    let identifying = |value: &Value<'_>| -> Option<Value<'static>> {
        let text = value.as_str()?;
        Some(Value::String(Cow::Owned(if text.len() > NOTE_BYTES {
            cut_string(text, NOTE_BYTES)
        } else {
            text.to_string()
        })))
    };
    let keep: Object<'_> = ["type", "attackData", "httpMessage"]
        .iter()
        .filter_map(|k| fields.iter().find(|(key, _)| key == k))
        .filter_map(|(k, v)| match (k.as_ref(), v) {
            ("type", v) => Some((k.clone(), identifying(v)?)),
            (_, Value::Object(inner)) => {
                let small: Object<'_> = inner
                    .iter()
                    .filter(|(key, _)| {
                        ["requestId", "host", "clientIP", "configId", "appliedAction"]
                            .contains(&key.as_ref())
                    })
                    .filter_map(|(key, value)| Some((key.clone(), identifying(value)?)))
                    .collect();
                Some((k.clone(), Value::Object(small)))
            }
            _ => None,
        })
        .collect();
    let mut head = Vec::new();
    let notes = Notes {
        cut: vec!["*".into()],
        ..Notes::default()
    };
    write_line(&keep, srcip, &notes, &mut head);
    let room = cap.saturating_sub(head.len() + 32);
    let mut fields = keep;
    fields.push((
        Cow::Borrowed("truncatedEvent"),
        Value::String(Cow::Owned(cut_string(&text, room))),
    ));
    write_line(&fields, srcip, &notes, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(input: &str, limits: &Limits) -> (String, serde_json::Value, Shaped) {
        let event = Value::parse(input.as_bytes()).unwrap();
        let mut out = Vec::new();
        let shaped = write_event(event, &mut out, limits);
        let text = String::from_utf8(out).unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (text, value, shaped)
    }

    fn default_shape(input: &str) -> (String, serde_json::Value) {
        let (text, value, _) = shape(input, &Limits::default());
        (text, value)
    }

    #[test]
    fn starts_with_the_discriminator_and_adds_srcip() {
        let (text, value) =
            default_shape(r#"{"type":"akamai_siem","attackData":{"clientIP":"2001:db8::1"}}"#);
        assert!(
            text.starts_with(r#"{"integration":"akamai","srcip":"2001:db8::1","type":"#),
            "{text}"
        );
        assert_eq!(value["attackData"]["clientIP"], "2001:db8::1");
    }

    #[test]
    fn nulls_numbers_and_arrays_are_made_wazuh_safe() {
        let (text, _) = default_shape(
            r#"{"a":null,"n":1.5,"b":true,"list":["x",2,null,{"o":1},[1]],"o":{"z":null,"k":7}}"#,
        );
        assert_eq!(
            text,
            r#"{"integration":"akamai","n":"1.5","b":"true","list":["x","2","","{\"o\":1}","[1]"],"o":{"k":"7"}}"#
        );
    }

    #[test]
    fn duplicate_and_reserved_keys_are_renamed_never_dropped() {
        let (text, value) =
            default_shape(r#"{"id":"1","Geo":{"a":"1","A":"2","a":"3"},"srcip":"x"}"#);
        assert!(text.contains(r#""akamai_id":"1""#), "{text}");
        assert!(
            text.contains(r#""Geo":{"a":"1","A_2":"2","a_3":"3"}"#),
            "{text}"
        );
        assert!(text.contains(r#""akamai_srcip":"x""#), "{text}");
        assert_eq!(value["renamedFields"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn too_many_fields_are_collapsed_into_text() {
        let many: Vec<String> = (0..300).map(|i| format!("\"f{i}\":\"{i}\"")).collect();
        let input = format!(
            r#"{{"type":"akamai_siem","extra":{{{}}},"small":{{"a":"b"}}}}"#,
            many.join(",")
        );
        let (_, value, shaped) = shape(&input, &Limits::default());
        assert!(shaped.shrunk);
        assert!(
            value["extra"].is_string(),
            "the big object became one text field"
        );
        assert_eq!(value["small"]["a"], "b");
        assert_eq!(value["collapsedFields"], serde_json::json!(["extra"]));
        let text = value["extra"].as_str().unwrap();
        assert!(
            text.contains("\"f299\":\"299\""),
            "nothing lost: {text:.80}"
        );
    }

    #[test]
    fn oversized_events_are_cut_from_their_largest_fields_and_stay_valid() {
        let big_header = "X".repeat(150_000);
        let input = format!(
            r#"{{"type":"akamai_siem","attackData":{{"clientIP":"1.2.3.4","ruleData":["{}","short"]}},"httpMessage":{{"requestId":"ab","requestHeaders":["Cookie: {big_header}","Host: a"],"query":"{}"}}}}"#,
            "d".repeat(40_000),
            "q".repeat(30_000)
        );
        let limits = Limits::default();
        let (text, value, shaped) = shape(&input, &limits);
        assert!(shaped.shrunk);
        assert!(text.len() <= limits.max_line_bytes, "{}", text.len());
        let cut: Vec<&str> = value["cutFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(cut.contains(&"httpMessage.requestHeaders"), "{cut:?}");
        assert_eq!(
            value["httpMessage"]["requestId"], "ab",
            "small fields are untouched"
        );
        assert_eq!(value["srcip"], "1.2.3.4");
        assert!(text.contains("…[cut "), "an explicit marker");
    }

    #[test]
    fn every_cap_is_honoured_with_valid_json() {
        let input = format!(
            r#"{{"type":"akamai_siem","attackData":{{"clientIP":"1.2.3.4"}},"a":"{}","b":["{}","é\"\\{}"],"c":{{"d":"{}"}}}}"#,
            "a".repeat(9_000),
            "b".repeat(9_000),
            "\\u0001".repeat(3_000),
            "ü".repeat(4_000)
        );
        for cap in [1_000, 2_500, 5_000, 12_000, 60_000] {
            let limits = Limits {
                max_line_bytes: cap,
                ..Limits::default()
            };
            let (text, _, _) = shape(&input, &limits);
            assert!(text.len() <= cap, "cap {cap}: {}", text.len());
            assert!(text.starts_with("{\"integration\":\"akamai\","));
        }
    }

    #[test]
    fn thousands_of_tiny_fields_fall_back_to_a_minimal_event() {
        let many: Vec<String> = (0..5_000)
            .map(|i| format!("\"k{i}\":{{\"v\":\"{i}\"}}"))
            .collect();
        let input = format!(
            r#"{{"type":"akamai_siem","httpMessage":{{"requestId":"r1"}},{}}}"#,
            many.join(",")
        );
        let limits = Limits {
            max_line_bytes: 4_096,
            max_fields: 200,
        };
        let (text, value, shaped) = shape(&input, &limits);
        assert!(shaped.shrunk);
        assert!(text.len() <= 4_096, "{}", text.len());
        assert_eq!(value["httpMessage"]["requestId"], "r1");
    }

    #[test]
    fn a_non_object_is_kept_under_a_decodable_key() {
        let (text, _) = default_shape("[1,2]");
        assert_eq!(
            text,
            r#"{"integration":"akamai","unexpectedValue":"[1,2]"}"#
        );
    }
}
