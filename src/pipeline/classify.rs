//! What one raw line of a response (or a saved file, or a pushed body) is: blank, the page's
//! context line, an event, or not JSON. One home for the decision, so that fetch and `decode`
//! cannot drift apart.

use crate::pipeline::event::Value;
use crate::pipeline::format::parse_event;
use crate::pipeline::shrink::Shrunk;

/// The context line: `{"total":N,"offset":"…","limit":L}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub total: Option<u64>,
    pub offset: String,
    /// Present only when the page was cut at the requested limit.
    pub limit: Option<u64>,
}

/// What a line is.
pub enum LineKind<'a> {
    /// Empty, or white space only: nothing (the API sends blank lines between events).
    Blank,
    /// The context line (or one that looks like it but is malformed: the reason).
    Context(Result<Context, String>),
    /// An event, parsed (leniently for bytes that are not UTF-8).
    Event(Value<'a>),
    /// Not a JSON object: reported, not delivered.
    NotJson,
    /// The unterminated end of a stream that is not JSON: a cut response, not a bad line.
    CutTail,
}

/// Classify one line as the splitter gave it (`\r` before its `\n` still on it). Returns the
/// raw event bytes (without that `\r`: the bytes the identity hash is taken over) and the kind.
pub fn classify_line(line: &[u8], terminated: bool) -> (&[u8], LineKind<'_>) {
    let raw = line.strip_suffix(b"\r").unwrap_or(line);
    if raw.iter().all(u8::is_ascii_whitespace) {
        return (raw, LineKind::Blank);
    }
    let kind = match parse_event(raw) {
        Ok(value) => match parse_context(&value) {
            Some(context) => LineKind::Context(context),
            None if matches!(value, Value::Object(_)) => LineKind::Event(value),
            None => LineKind::NotJson,
        },
        Err(_) if !terminated => LineKind::CutTail,
        Err(_) => LineKind::NotJson,
    };
    (raw, kind)
}

/// The event an oversized line was shrunk to, with the JSON it is parsed from; `None` when the
/// line was not a JSON event (its hash is still the raw line's: `shrunk.hash`).
pub fn oversized_event(shrunk: &Shrunk) -> Option<(&[u8], Value<'_>)> {
    let json = shrunk.json.as_deref()?;
    match parse_event(json) {
        Ok(value @ Value::Object(_)) if parse_context(&value).is_none() => Some((json, value)),
        _ => None,
    }
}

/// `httpMessage.start`, when the event has a usable one.
pub fn event_start(event: &Value<'_>) -> Option<f64> {
    match event.pointer(&["httpMessage", "start"])? {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_f64(),
        _ => None,
    }
    .filter(|start: &f64| start.is_finite())
}

/// `Some` when the line is a context line (an object with `offset` or `total` and none of an
/// event's keys); parsed, never string-matched, since spacing and key order vary.
pub fn parse_context(value: &Value<'_>) -> Option<Result<Context, String>> {
    let Value::Object(_) = value else {
        return None;
    };
    let is_event = ["type", "attackData", "httpMessage"]
        .iter()
        .any(|key| value.get(key).is_some());
    if is_event || (value.get("offset").is_none() && value.get("total").is_none()) {
        return None;
    }
    let number = |key: &str| -> Result<Option<u64>, String> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("the context line's {key} is not a count")),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| format!("the context line's {key} is not a count")),
            Some(_) => Err(format!("the context line's {key} is not a count")),
        }
    };
    let offset = match value.get("offset").and_then(Value::as_str) {
        Some(offset) if !offset.is_empty() => offset.to_string(),
        _ => return Some(Err("the context line carries no offset".into())),
    };
    Some((|| {
        Ok(Context {
            total: number("total")?,
            offset,
            limit: number("limit")?,
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str, terminated: bool) -> &'static str {
        match classify_line(line.as_bytes(), terminated).1 {
            LineKind::Blank => "blank",
            LineKind::Context(Ok(_)) => "context",
            LineKind::Context(Err(_)) => "bad context",
            LineKind::Event(_) => "event",
            LineKind::NotJson => "not json",
            LineKind::CutTail => "cut tail",
        }
    }

    #[test]
    fn every_kind_of_line_has_one_answer() {
        assert_eq!(kind("", true), "blank");
        assert_eq!(kind(" \t\r", true), "blank");
        assert_eq!(kind(r#"{"type":"akamai_siem"}"#, true), "event");
        assert_eq!(
            kind(r#"{ "offset": "a;b" , "total" : 2 }"#, true),
            "context"
        );
        assert_eq!(kind(r#"{"total":0}"#, true), "bad context");
        assert_eq!(kind("[1,2]", true), "not json");
        assert_eq!(kind("not json", true), "not json");
        assert_eq!(kind(r#"{"type":"akam"#, false), "cut tail");
        assert_eq!(kind(r#"{"type":"akam"#, true), "not json");
        // An unterminated last line that is whole is still an event.
        assert_eq!(kind(r#"{"type":"akamai_siem"}"#, false), "event");
    }

    #[test]
    fn the_raw_bytes_lose_only_the_carriage_return() {
        let (raw, _) = classify_line(b"{\"a\":\"b\"}\r", true);
        assert_eq!(raw, b"{\"a\":\"b\"}");
    }
}
