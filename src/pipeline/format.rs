//! One parsed API event in, one output line out, in the chosen format.

use crate::config::{Format, OutputSettings, Tags};
use crate::pipeline::decode::{DECODE_ERRORS, Decoder};
use crate::pipeline::direct::{Direct, Written};
use crate::pipeline::event::{Value, invalid_utf8_paths};
use crate::pipeline::wazuh;

/// The Wazuh format's display form of the tenant, for rule descriptions.
pub const TENANT_LABEL: &str = "tenantLabel";

pub struct Formatter {
    format: Format,
    wazuh: wazuh::Limits,
    decoder: Decoder,
    tags: Tags,
    direct: Direct,
}

/// What formatting noticed about an event, for the run's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Formatted {
    /// Some field could not be decoded (the event lists which in `decodeErrors`).
    pub decode_errors: bool,
    /// The line was too big for Wazuh and had fields cut (listed in the event).
    pub shrunk: bool,
}

impl Formatter {
    pub fn new(output: &OutputSettings) -> Formatter {
        Formatter {
            format: output.format,
            wazuh: wazuh::Limits {
                max_line_bytes: output.max_line_bytes,
                ..wazuh::Limits::default()
            },
            decoder: Decoder::default(),
            tags: output.tags.clone(),
            direct: Direct::new(output),
        }
    }

    /// Append the line for `raw` (a response line without its line end) straight from its
    /// bytes when it is an ordinary event (see [`crate::pipeline::direct`]): exactly what
    /// [`Formatter::write`] would give for it, with nothing to report. `None`, with `out`
    /// untouched, when the line needs the general path: classify it and call `write`.
    pub fn write_direct(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Option<Written> {
        self.direct.write(raw, out)
    }

    /// The tenant and labels, last among the event's top-level members. The raw format has
    /// none: it is the API's bytes. A name the event already has keeps the event's value.
    fn add_tags<'a>(&self, mut event: Value<'a>) -> Value<'a> {
        if let Value::Object(fields) = &mut event {
            for (name, value) in self.tags.members() {
                if !fields.iter().any(|(key, _)| key == name) {
                    fields.push((
                        name.to_string().into(),
                        Value::String(value.to_string().into()),
                    ));
                }
            }
        }
        event
    }

    /// Append the line for `event` (without newline) to `out`. `raw` is the API's line.
    pub fn write(&mut self, raw: &[u8], event: Value<'_>, out: &mut Vec<u8>) -> Formatted {
        match self.format {
            Format::Raw => {
                out.extend_from_slice(raw);
                Formatted::default()
            }
            Format::Json => {
                let decoded = self.decoder.decode_event(event);
                let decoded = self.add_tags(decoded);
                let decode_errors = decoded.get(DECODE_ERRORS).is_some();
                decoded.write_compact(out);
                Formatted {
                    decode_errors,
                    shrunk: false,
                }
            }
            Format::Wazuh => {
                let decoded = self.decoder.decode_event(event);
                let mut decoded = self.add_tags(decoded);
                // The rules' descriptions start with `$(tenantLabel)`: `[acme] Akamai: deny …`
                // for a tenant's event, and, since Wazuh renders a field an event lacks as
                // nothing, `Akamai: deny …` for the plain single-account run.
                if let (Some(tenant), Value::Object(fields)) = (&self.tags.tenant, &mut decoded) {
                    fields.push((
                        TENANT_LABEL.into(),
                        Value::String(format!("[{tenant}] ").into()),
                    ));
                }
                let decode_errors = decoded.get(DECODE_ERRORS).is_some();
                let shrunk = wazuh::write_event(decoded, out, &self.wazuh).shrunk;
                Formatted {
                    decode_errors,
                    shrunk,
                }
            }
        }
    }
}

/// One response line as a parsed event, tolerant of bytes that are not UTF-8: those become
/// U+FFFD and the fields that held them are listed in `decodeErrors` (which the decoder then
/// extends), so the event is delivered and the analyst knows bytes were replaced. Only a line
/// that is not JSON at all is an error. The caller hashes `raw` itself, so the identity of a
/// lossily parsed line is still its raw bytes.
pub fn parse_event(raw: &[u8]) -> Result<Value<'_>, serde_json::Error> {
    let error = match Value::parse(raw) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    // serde_json already checks UTF-8 while parsing, so only a failed line pays for this.
    if std::str::from_utf8(raw).is_ok() {
        return Err(error);
    }
    let text = String::from_utf8_lossy(raw);
    let mut value = Value::parse(text.as_bytes())?.into_owned();
    if let Value::Object(fields) = &mut value {
        let paths = invalid_utf8_paths(raw)
            .into_iter()
            .map(|path| Value::String(path.into()))
            .collect();
        fields.push((DECODE_ERRORS.into(), Value::Array(paths)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &Value<'_>) -> String {
        let mut out = Vec::new();
        value.write_compact(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_line_that_is_not_utf8_is_parsed_lossily_with_its_fields_listed() {
        let raw = b"{\"httpMessage\":{\"host\":\"caf\xe9\",\"path\":\"/ok\"},\"k\":[\"\xff\xfe\"]}";
        let value = parse_event(raw).unwrap();
        assert_eq!(
            json(&value),
            "{\"httpMessage\":{\"host\":\"caf\u{fffd}\",\"path\":\"/ok\"},\"k\":[\"\u{fffd}\u{fffd}\"],\"decodeErrors\":[\"httpMessage.host\",\"k[0]\"]}"
        );
    }

    #[test]
    fn a_valid_line_is_parsed_as_it_is_and_borrowed() {
        let raw = br#"{"host":"caf\u00e9","decodeErrors":"theirs"}"#;
        let value = parse_event(raw).unwrap();
        assert_eq!(value, Value::parse(raw).unwrap());
        assert!(matches!(
            value.get("decodeErrors"),
            Some(Value::String(std::borrow::Cow::Borrowed(_)))
        ));
    }

    #[test]
    fn only_a_line_that_is_not_json_is_an_error() {
        assert!(parse_event(b"not json \xff").is_err());
        assert!(parse_event(b"{\"a\":\"x\"} \xff").is_err());
        assert!(parse_event(b"{\"a\":1,}").is_err());
    }

    #[test]
    fn the_decoder_extends_the_list_the_parse_started() {
        let raw = b"{\"httpMessage\":{\"host\":\"\xff\"},\"attackData\":{\"rules\":\"***\"}}";
        let mut formatter = Formatter::new(&OutputSettings {
            target: crate::config::OutputTarget::Stdout,
            format: Format::Json,
            max_line_bytes: 60_000,
            tags: Tags::default(),
        });
        let mut out = Vec::new();
        let formatted = formatter.write(raw, parse_event(raw).unwrap(), &mut out);
        assert!(formatted.decode_errors);
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            line["decodeErrors"],
            serde_json::json!(["httpMessage.host", "attackData.rules[0]"])
        );
    }
}
