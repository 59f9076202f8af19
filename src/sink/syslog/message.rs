//! One output line as a framed syslog message. Pure: the header's clock is passed in.

use crate::config::{SyslogFraming, SyslogMessageFormat, SyslogSettings, SyslogSeverity};
use jiff::Timestamp;

const WARNING: u8 = 4;
const NOTICE: u8 = 5;
const INFO: u8 = 6;

/// What every message's header carries.
#[derive(Debug, Clone)]
pub struct Shape {
    pub format: SyslogMessageFormat,
    pub framing: SyslogFraming,
    pub facility: u8,
    pub severity: SyslogSeverity,
    pub app_name: String,
    pub hostname: String,
    pub pid: u32,
}

impl Shape {
    pub fn new(settings: &SyslogSettings) -> Shape {
        Shape {
            format: settings.format,
            framing: settings.framing,
            facility: settings.facility,
            severity: settings.severity,
            app_name: settings.app_name.clone(),
            hostname: settings.hostname.clone(),
            pid: std::process::id(),
        }
    }
}

/// RFC 3164's timestamp, formatted once per second rather than once per event.
#[derive(Debug, Default)]
pub struct Clock {
    second: Option<i64>,
    rfc3164: String,
}

impl Clock {
    fn rfc3164(&mut self, now: Timestamp) -> &str {
        if self.second != Some(now.as_second()) {
            self.second = Some(now.as_second());
            // RFC 3164 has no zone: receivers read it as their local time, so write ours.
            let local = now.to_zoned(jiff::tz::TimeZone::system());
            self.rfc3164 = local.strftime("%b %e %H:%M:%S").to_string();
        }
        &self.rfc3164
    }
}

/// Deny and tarpit matter more than an alert, an alert more than monitoring. The action is found
/// by its key: in compact JSON the bytes `"appliedAction":"` cannot occur inside a string value
/// (its quotes would be escaped), so only the real member matches.
pub fn severity_of(line: &[u8]) -> u8 {
    const KEY: &[u8] = b"\"appliedAction\":\"";
    let Some(at) = memchr::memmem::find(line, KEY) else {
        return INFO;
    };
    let value = &line[at + KEY.len()..];
    if value.starts_with(b"deny") || value.starts_with(b"tarpit") {
        WARNING
    } else if value.starts_with(b"alert") {
        NOTICE
    } else {
        INFO
    }
}

/// Append `line` (without its `\n`) as one framed message to `out`.
pub fn frame_into(
    out: &mut Vec<u8>,
    line: &[u8],
    shape: &Shape,
    clock: &mut Clock,
    now: Timestamp,
) {
    let severity = match shape.severity {
        SyslogSeverity::FromEvent => severity_of(line),
        SyslogSeverity::Fixed(severity) => severity,
    };
    let priority = u32::from(shape.facility) * 8 + u32::from(severity);
    let header = match shape.format {
        SyslogMessageFormat::Json => String::new(),
        // `host akamai-siem: {…}`: the form Wazuh's remote syslog parses into hostname and
        // program_name (measured with Wazuh 4.14), which the shipped decoder keys on.
        SyslogMessageFormat::Rfc3164 => format!(
            "<{priority}>{} {} {}: ",
            clock.rfc3164(now),
            shape.hostname,
            shape.app_name
        ),
        SyslogMessageFormat::Rfc5424 => format!(
            "<{priority}>1 {} {} {} {} - - ",
            now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            shape.hostname,
            shape.app_name,
            shape.pid
        ),
    };
    match shape.framing {
        SyslogFraming::Newline => {
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        SyslogFraming::OctetCounting => {
            let length = header.len() + line.len();
            out.extend_from_slice(length.to_string().as_bytes());
            out.push(b' ');
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(format: SyslogMessageFormat, framing: SyslogFraming) -> Shape {
        Shape {
            format,
            framing,
            facility: 16,
            severity: SyslogSeverity::FromEvent,
            app_name: "akamai-siem".into(),
            hostname: "collector1".into(),
            pid: 4242,
        }
    }

    fn framed(shape: &Shape, line: &str) -> String {
        let mut out = Vec::new();
        let now: Timestamp = "2026-12-02T03:21:38.123Z".parse().unwrap();
        frame_into(&mut out, line.as_bytes(), shape, &mut Clock::default(), now);
        String::from_utf8(out).unwrap()
    }

    const DENY: &str = r#"{"attackData":{"appliedAction":"deny","clientIP":"1.2.3.4"}}"#;

    #[test]
    fn rfc5424_header_then_the_json_line() {
        let message = framed(
            &shape(SyslogMessageFormat::Rfc5424, SyslogFraming::Newline),
            DENY,
        );
        // local0 (16) * 8 + warning (4) = 132
        assert_eq!(
            message,
            format!("<132>1 2026-12-02T03:21:38.123Z collector1 akamai-siem 4242 - - {DENY}\n")
        );
    }

    #[test]
    fn rfc3164_header_is_the_one_wazuh_parses() {
        let message = framed(
            &shape(SyslogMessageFormat::Rfc3164, SyslogFraming::Newline),
            DENY,
        );
        let re = regex::Regex::new(
            r"^<132>[A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9] collector1 akamai-siem: \{",
        )
        .unwrap();
        assert!(re.is_match(&message), "{message}");
        assert!(message.ends_with(&format!(": {DENY}\n")));
    }

    #[test]
    fn json_messages_have_no_header() {
        let message = framed(
            &shape(SyslogMessageFormat::Json, SyslogFraming::Newline),
            DENY,
        );
        assert_eq!(message, format!("{DENY}\n"));
    }

    #[test]
    fn octet_counting_prefixes_the_exact_length() {
        let message = framed(
            &shape(SyslogMessageFormat::Rfc5424, SyslogFraming::OctetCounting),
            DENY,
        );
        let (length, rest) = message.split_once(' ').unwrap();
        assert_eq!(length.parse::<usize>().unwrap(), rest.len());
        assert!(rest.ends_with(DENY), "no newline inside the count");
        let multibyte = "{\"a\":\"é€😀\"}";
        let message = framed(
            &shape(SyslogMessageFormat::Json, SyslogFraming::OctetCounting),
            multibyte,
        );
        assert_eq!(message, format!("{} {multibyte}", multibyte.len()));
    }

    #[test]
    fn severity_follows_the_action_and_ignores_lookalikes_inside_strings() {
        assert_eq!(severity_of(DENY.as_bytes()), WARNING);
        assert_eq!(
            severity_of(br#"{"attackData":{"appliedAction":"tarpit"}}"#),
            WARNING
        );
        assert_eq!(
            severity_of(br#"{"attackData":{"appliedAction":"alert"}}"#),
            NOTICE
        );
        assert_eq!(
            severity_of(br#"{"attackData":{"appliedAction":"monitor"}}"#),
            INFO
        );
        // An attacker's path holding the key text: escaped quotes, so it does not count.
        let crafted = br#"{"httpMessage":{"path":"/\"appliedAction\":\"deny"},"attackData":{"appliedAction":"monitor"}}"#;
        assert_eq!(severity_of(crafted), INFO);
        assert_eq!(severity_of(b"{}"), INFO);
        let mut fixed = shape(SyslogMessageFormat::Rfc5424, SyslogFraming::Newline);
        fixed.severity = SyslogSeverity::Fixed(2);
        assert!(framed(&fixed, DENY).starts_with("<130>1 "));
    }
}
