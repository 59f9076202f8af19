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

mod fit;

use crate::pipeline::decode::DECODE_ERRORS;
use crate::pipeline::event::{Object, Value};
use fit::*;
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
pub(crate) fn is_reserved_top_level(name: &str) -> bool {
    // Asked for every top-level key of every event, nearly always of a name that is not
    // reserved: the first byte and the length rule out almost all of them at once.
    let bytes = name.as_bytes();
    let could_be = match bytes.first() {
        Some(&first) if bytes.len() < 16 => {
            RESERVED_SHAPES[first.to_ascii_lowercase() as usize] & (1 << bytes.len()) != 0
        }
        _ => false,
    };
    could_be && reserved_top_level().any(|reserved| reserved.eq_ignore_ascii_case(name))
}

fn reserved_top_level() -> impl Iterator<Item = &'static &'static str> {
    SHAPING_NAMES
        .iter()
        .chain(STATIC_FIELDS)
        .chain(INDEX_CLASHES)
}

/// The names this shaping adds.
const SHAPING_NAMES: &[&str] = &["integration", "srcip"];

/// For each lower-case first byte, one bit per length (below 16) of a reserved name with it.
const RESERVED_SHAPES: [u16; 256] = {
    let mut shapes = [0u16; 256];
    let lists = [SHAPING_NAMES, STATIC_FIELDS, INDEX_CLASHES];
    let mut list = 0;
    while list < lists.len() {
        let mut at = 0;
        while at < lists[list].len() {
            let name = lists[list][at].as_bytes();
            assert!(
                !name.is_empty() && name.len() < 16,
                "a reserved name of 1 to 15 bytes"
            );
            shapes[name[0].to_ascii_lowercase() as usize] |= 1 << name.len();
            at += 1;
        }
        list += 1;
    }
    shapes
};

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
mod tests;
