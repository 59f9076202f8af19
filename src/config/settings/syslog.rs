//! `output = syslog://…`: the syslog route's settings, from the URL and the `syslog_*` keys.

use super::Resolver;
use crate::config::{ConfigError, Origin};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    /// `syslog://`: TCP; a page is committed once the receiver closed the session.
    Tcp,
    /// `syslog+tls://`: TCP in TLS, confirmed the same way.
    Tls,
    /// `syslog+udp://`: one datagram per event, no confirmation: best effort.
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogFraming {
    /// RFC 6587 non-transparent framing: each message ends in `\n`.
    Newline,
    /// RFC 6587 octet counting: `LENGTH SP MESSAGE`.
    OctetCounting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogMessageFormat {
    /// `<PRI>Mmm dd hh:mm:ss HOST APP[PID]: {…}`: the header Wazuh's remote syslog parses.
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOST APP PID - - {…}`.
    Rfc5424,
    /// The JSON line alone, no header: Wazuh decodes it as it decodes a file line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogSeverity {
    /// From what Akamai did: deny or tarpit → warning, alert → notice, anything else → info.
    FromEvent,
    Fixed(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    pub transport: SyslogTransport,
    pub host: String,
    pub port: u16,
    pub framing: SyslogFraming,
    pub format: SyslogMessageFormat,
    pub facility: u8,
    pub severity: SyslogSeverity,
    pub app_name: String,
    pub hostname: String,
    /// CA that signed the receiver's certificate; `None` trusts the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for receivers that require mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Longest wait for one write, or for the receiver to confirm a session.
    pub io_timeout: Duration,
    /// Reconnecting and resending share the run's `retry_budget`.
    pub retry_budget: Duration,
}

impl SyslogSettings {
    /// The target as the operator wrote it, for messages.
    pub fn url(&self) -> String {
        let scheme = match self.transport {
            SyslogTransport::Tcp => "syslog",
            SyslogTransport::Tls => "syslog+tls",
            SyslogTransport::Udp => "syslog+udp",
        };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Whether `output` names a syslog receiver rather than a file.
pub fn is_syslog_url(value: &str) -> bool {
    value.starts_with("syslog://")
        || value.starts_with("syslog+tls://")
        || value.starts_with("syslog+udp://")
        || value.starts_with("syslog+tcp://")
}

/// `syslog[+tcp|+tls|+udp]://HOST[:PORT]` → transport, host, port.
pub fn parse_syslog_url(value: &str) -> Result<(SyslogTransport, String, u16), String> {
    let (scheme, rest) = value
        .split_once("://")
        .ok_or_else(|| format!("`{value}` is not a syslog URL"))?;
    let transport = match scheme {
        "syslog" | "syslog+tcp" => SyslogTransport::Tcp,
        "syslog+tls" => SyslogTransport::Tls,
        "syslog+udp" => SyslogTransport::Udp,
        other => {
            return Err(format!(
                "unknown scheme `{other}`: use syslog:// (TCP), syslog+tls:// or syslog+udp://"
            ));
        }
    };
    let default_port = if transport == SyslogTransport::Tls {
        6514
    } else {
        514
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') || authority.contains('@') || authority.contains('?') {
        return Err(format!(
            "`{value}`: a syslog URL is only scheme://HOST:PORT (no path, user or query)"
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("`{value}`: an IPv6 address needs its closing `]`"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(format!("`{value}`: expected `:PORT` after `]`")),
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{value}` names no host"));
    }
    let port = match port {
        None => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(format!(
                    "`{value}`: the port must be 1..65535, got `{port}`"
                ));
            }
        },
    };
    Ok((transport, host, port))
}

fn parse_facility(value: &str) -> Result<u8, String> {
    let lower = value.to_ascii_lowercase();
    if let Some(index) = FACILITIES.iter().position(|name| *name == lower) {
        return Ok(index as u8);
    }
    match lower.parse::<u8>() {
        Ok(number) if number < 24 => Ok(number),
        _ => Err(format!(
            "must be a facility name (local0 … local7, user, daemon, auth, …) or 0..23, got `{value}`"
        )),
    }
}

fn parse_severity(value: &str) -> Result<SyslogSeverity, String> {
    let lower = value.to_ascii_lowercase();
    if lower == "auto" {
        return Ok(SyslogSeverity::FromEvent);
    }
    let lower = match lower.as_str() {
        "error" => "err".to_string(),
        "warn" => "warning".to_string(),
        "emergency" => "emerg".to_string(),
        "critical" => "crit".to_string(),
        _ => lower,
    };
    if let Some(index) = SEVERITIES.iter().position(|name| *name == lower) {
        return Ok(SyslogSeverity::Fixed(index as u8));
    }
    match lower.parse::<u8>() {
        Ok(number) if number < 8 => Ok(SyslogSeverity::Fixed(number)),
        _ => Err(format!(
            "must be auto (from the event's action) or a severity (emerg … debug, or 0..7), got `{value}`"
        )),
    }
}

fn parse_framing(value: &str) -> Result<SyslogFraming, String> {
    match value.to_ascii_lowercase().as_str() {
        "newline" | "lf" | "non-transparent" => Ok(SyslogFraming::Newline),
        "octet-counting" | "octet-counted" | "octet" => Ok(SyslogFraming::OctetCounting),
        _ => Err(format!(
            "must be newline (RFC 6587 non-transparent) or octet-counting, got `{value}`"
        )),
    }
}

fn parse_message_format(value: &str) -> Result<SyslogMessageFormat, String> {
    match value.to_ascii_lowercase().as_str() {
        "rfc3164" | "bsd" => Ok(SyslogMessageFormat::Rfc3164),
        "rfc5424" => Ok(SyslogMessageFormat::Rfc5424),
        "json" => Ok(SyslogMessageFormat::Json),
        _ => Err(format!("must be rfc3164, rfc5424 or json, got `{value}`")),
    }
}

/// RFC 5424 allows printable US-ASCII without spaces (APP-NAME up to 48, HOSTNAME up to 255);
/// RFC 3164 receivers split the header on spaces, so the same rule keeps both parseable.
fn header_token(value: &str, longest: usize) -> Result<String, String> {
    if value.is_empty() || value.len() > longest || !value.bytes().all(|b| (33..=126).contains(&b))
    {
        return Err(format!(
            "must be 1 to {longest} printable ASCII characters without spaces, got `{value}`"
        ));
    }
    if value.contains(':') || value.contains('[') {
        // An RFC 3164 parser (Wazuh's among them) ends the program name at `:` or `[`.
        return Err(format!("must not contain `:` or `[`, got `{value}`"));
    }
    Ok(value.to_string())
}

/// This machine's name, as `hostname` prints it.
fn machine_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name = String::from_utf8_lossy(&buffer[..end]).into_owned();
    if result != 0 || header_token(&name, 255).is_err() {
        return "localhost".to_string();
    }
    name
}

impl Resolver<'_> {
    pub(super) fn syslog_settings(
        &self,
        url: &str,
        origin: Origin,
    ) -> Result<SyslogSettings, ConfigError> {
        let (transport, host, port) =
            parse_syslog_url(url).map_err(|problem| ConfigError::Invalid {
                key: "output",
                origin,
                problem,
            })?;
        let file = |key: &'static str| -> Result<Option<PathBuf>, ConfigError> {
            match self.sources.path(key) {
                Some((path, origin)) if !path.is_file() => Err(ConfigError::Invalid {
                    key,
                    origin,
                    problem: format!("points to {}, which is not a readable file", path.display()),
                }),
                other => Ok(other.map(|(path, _)| path)),
            }
        };
        let client_cert = file("syslog_client_cert")?;
        let client_key = file("syslog_client_key")?;
        if client_cert.is_some() != client_key.is_some() {
            let key = if client_cert.is_some() {
                "syslog_client_key"
            } else {
                "syslog_client_cert"
            };
            return Err(ConfigError::Missing {
                key,
                hint: "mutual TLS needs both syslog_client_cert and syslog_client_key".to_string(),
            });
        }
        Ok(SyslogSettings {
            transport,
            host,
            port,
            framing: self.parsed("syslog_framing", SyslogFraming::Newline, parse_framing)?,
            format: self.parsed(
                "syslog_format",
                SyslogMessageFormat::Rfc3164,
                parse_message_format,
            )?,
            facility: self.parsed("syslog_facility", 16, parse_facility)?,
            severity: self.parsed("syslog_severity", SyslogSeverity::FromEvent, parse_severity)?,
            app_name: self.parsed("syslog_app_name", "akamai-siem".to_string(), |v| {
                header_token(v, 48)
            })?,
            hostname: match self.sources.raw("syslog_hostname") {
                None => machine_name(),
                Some(_) => {
                    self.parsed("syslog_hostname", String::new(), |v| header_token(v, 255))?
                }
            },
            ca_file: file("syslog_ca_file")?,
            client_cert,
            client_key,
            connect_timeout: self.connect_timeout()?,
            io_timeout: self.read_timeout()?,
            retry_budget: self.retry_budget()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_transport_host_and_port() {
        assert_eq!(
            parse_syslog_url("syslog://wazuh.example:1514").unwrap(),
            (SyslogTransport::Tcp, "wazuh.example".to_string(), 1514)
        );
        assert_eq!(
            parse_syslog_url("syslog+tls://relay").unwrap(),
            (SyslogTransport::Tls, "relay".to_string(), 6514)
        );
        assert_eq!(
            parse_syslog_url("syslog+udp://[::1]:5514").unwrap(),
            (SyslogTransport::Udp, "::1".to_string(), 5514)
        );
        assert_eq!(parse_syslog_url("syslog://10.0.0.1/").unwrap().2, 514);
        for bad in [
            "syslog://",
            "syslog://host:0",
            "syslog://host:99999",
            "syslog://host/path",
            "syslog://user@host",
            "syslog+ftp://host",
            "syslog://[::1",
        ] {
            assert!(parse_syslog_url(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn facility_and_severity_take_names_or_numbers() {
        assert_eq!(parse_facility("local0"), Ok(16));
        assert_eq!(parse_facility("LOCAL7"), Ok(23));
        assert_eq!(parse_facility("4"), Ok(4));
        assert!(parse_facility("24").is_err());
        assert!(parse_facility("local8").is_err());
        assert_eq!(parse_severity("auto"), Ok(SyslogSeverity::FromEvent));
        assert_eq!(parse_severity("warning"), Ok(SyslogSeverity::Fixed(4)));
        assert_eq!(parse_severity("error"), Ok(SyslogSeverity::Fixed(3)));
        assert_eq!(parse_severity("7"), Ok(SyslogSeverity::Fixed(7)));
        assert!(parse_severity("8").is_err());
    }

    #[test]
    fn header_names_that_would_break_a_parser_are_refused() {
        assert!(header_token("akamai-siem", 48).is_ok());
        assert!(header_token("two words", 48).is_err());
        assert!(header_token("app:x", 48).is_err());
        assert!(header_token(&"a".repeat(49), 48).is_err());
        assert!(header_token("", 48).is_err());
        assert!(header_token(&machine_name(), 255).is_ok());
    }
}
