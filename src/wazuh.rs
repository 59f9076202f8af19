//! Shaping decoded events for Wazuh's JSON decoder and rules (see docs/wazuh.md).

use crate::event::Value;

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

/// Append `{"integration":"akamai","srcip":…,…event…}` to `out`.
pub fn write_event(event: Value<'_>, out: &mut Vec<u8>, _limits: &Limits) -> Shaped {
    let Value::Object(fields) = event else {
        event.write_compact(out);
        return Shaped::default();
    };
    out.extend_from_slice(b"{\"integration\":\"akamai\"");
    let srcip = Value::Object(fields.clone())
        .pointer(&["attackData", "clientIP"])
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(ip) = srcip {
        out.extend_from_slice(b",\"srcip\":");
        Value::String(ip.into()).write_compact(out);
    }
    for (key, value) in fields {
        out.push(b',');
        Value::String(key).write_compact(out);
        out.push(b':');
        value.write_compact(out);
    }
    out.push(b'}');
    Shaped::default()
}
