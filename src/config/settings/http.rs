//! The HTTP output's settings: `output = https://HOST/PATH` and the `http_*` keys.
//!
//! Events and the receiver's credential travel over this connection, so the checks lean to
//! refusing: plain `http://` only to this machine unless allowed on purpose, no credentials in the
//! URL (it is shown in messages and, as a flag, in `ps`), and no header that looks like a
//! credential in `http_header` (a flag): those go in `http_secret_header`, file or environment
//! only, and are never shown.

use super::{Resolver, parse_bytes, parse_in_range};
use crate::config::secret::Secret;
use crate::config::{ConfigError, Origin};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What each batch's body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFormat {
    /// The output lines as they are, one per line (`application/x-ndjson`): Elastic, Logstash,
    /// Sumo Logic, Vector, most webhooks.
    Ndjson,
    /// Splunk's HTTP Event Collector: `{"event":…,"time":…,"sourcetype":"akamai:siem"}` per line.
    SplunkHec,
}

impl HttpFormat {
    pub fn name(self) -> &'static str {
        match self {
            HttpFormat::Ndjson => "ndjson",
            HttpFormat::SplunkHec => "splunk-hec",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Validated: `http` or `https`, a host, no credentials, no fragment.
    pub url: String,
    pub format: HttpFormat,
    pub gzip: bool,
    /// A batch is sent when it holds this many events...
    pub batch_events: usize,
    /// ...or when one more line would take it past this many bytes (before gzip). A single line
    /// bigger than this goes alone.
    pub batch_bytes: usize,
    /// `http_header` lines, validated, in order.
    pub headers: Vec<(String, String)>,
    /// `http_secret_header`: name shown, value never.
    pub secret_header: Option<(String, Secret)>,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// How long the output may spend waiting to send a batch again, over the whole run.
    pub retry_budget: Duration,
}

impl HttpSettings {
    /// The receiver as messages show it: scheme, host and port, never the path (Sumo Logic's
    /// URLs carry their token in it) nor the query.
    pub fn describe(&self) -> String {
        describe_url(&self.url)
    }
}

pub fn describe_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => format!(
            "{}://{}",
            url.scheme(),
            match (url.host_str(), url.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_string(),
                _ => String::new(),
            }
        ),
        Err(_) => "the HTTP receiver".to_string(),
    }
}

/// `output` names an HTTP receiver rather than a file.
pub fn is_http_url(value: &str) -> bool {
    let value = value.trim().as_bytes();
    let starts = |prefix: &str| {
        value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    starts("http://") || starts("https://")
}

/// Headers this tool sets itself (framing, the body's encoding, the idempotency key): a second
/// value would make the request ambiguous or lie about the body.
const OWN_HEADERS: &[&str] = &[
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
    "idempotency-key",
];

/// A header whose value is probably a credential: `http_header` can be a flag, visible in `ps`,
/// and its values are shown in messages.
fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["authorization", "cookie"].contains(&name.as_str())
        || [
            "auth", "token", "secret", "password", "api-key", "apikey", "api_key",
        ]
        .iter()
        .any(|word| name.contains(word))
}

impl Resolver<'_> {
    pub(super) fn http_output(
        &self,
        url: &str,
        origin: Origin,
    ) -> Result<HttpSettings, ConfigError> {
        let url = check_url(url).map_err(|problem| ConfigError::Invalid {
            key: "output",
            origin: origin.clone(),
            problem,
        })?;
        let allow_plaintext = self.parsed("http_allow_plaintext", false, parse_bool)?;
        if url.scheme() == "http" && !allow_plaintext && !is_loopback(&url) {
            return Err(ConfigError::Invalid {
                key: "output",
                origin,
                problem: format!(
                    "sends events (and http_secret_header) unencrypted to {}: use https://, or \
                     set http_allow_plaintext = true if the network to it is trusted \
                     (plain http:// is accepted without it only to this machine)",
                    describe_url(url.as_str())
                ),
            });
        }
        let ca_file = match self.sources.path("http_ca_file") {
            Some((path, origin)) if !path.is_file() => {
                return Err(ConfigError::Invalid {
                    key: "http_ca_file",
                    origin,
                    problem: format!("points to {}, which is not a readable file", path.display()),
                });
            }
            Some((path, origin)) => {
                check_pem(&path).map_err(|problem| ConfigError::Invalid {
                    key: "http_ca_file",
                    origin,
                    problem,
                })?;
                Some(path)
            }
            None => None,
        };
        Ok(HttpSettings {
            url: url.to_string(),
            format: self.parsed("http_format", HttpFormat::Ndjson, parse_format)?,
            gzip: self.parsed("http_gzip", false, parse_bool)?,
            batch_events: self
                .parsed("http_batch_events", 500, |v| parse_in_range(v, 1, 100_000))?,
            batch_bytes: self.parsed("http_batch_bytes", 1024 * 1024, |v| {
                let bytes = parse_bytes(v)?;
                if bytes > 256 * 1024 * 1024 {
                    return Err(format!("must be at most 256MiB, got `{v}`"));
                }
                Ok(bytes as usize)
            })?,
            headers: self.parsed("http_header", Vec::new(), parse_headers)?,
            secret_header: self.secret_header()?,
            ca_file,
            connect_timeout: self.connect_timeout()?,
            read_timeout: self.read_timeout()?,
            retry_budget: self.retry_budget()?,
        })
    }

    fn secret_header(&self) -> Result<Option<(String, Secret)>, ConfigError> {
        let Some((raw, origin)) = self.sources.raw("http_secret_header") else {
            return Ok(None);
        };
        let invalid = |problem: String| ConfigError::Invalid {
            key: "http_secret_header",
            origin: origin.clone(),
            problem,
        };
        // The value is never part of a message: only the name, once it is known to be one.
        let Some((name, value)) = raw.trim().split_once(':') else {
            return Err(invalid(
                "must be `Name: value`, e.g. `Authorization: Splunk <HEC token>` (the value \
                 is not shown here)"
                    .to_string(),
            ));
        };
        let name = check_name(name.trim()).map_err(invalid)?;
        let value = value.trim();
        if value.is_empty() {
            return Err(invalid(format!("gives header `{name}` an empty value")));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(invalid(format!(
                "gives header `{name}` a value with control characters or several lines \
                 (the value is not shown here); only one secret header can be set"
            )));
        }
        Ok(Some((name, Secret::new(value))))
    }
}

fn check_url(raw: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| {
        format!("is not a usable URL ({e}): give e.g. https://splunk.example.com:8088/services/collector/event")
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "holds credentials (user:password@): the URL is shown in messages and a flag is \
             visible in `ps`; set http_secret_header = Authorization: Basic … in the config \
             file or the environment instead"
                .to_string(),
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("names no host: give e.g. https://siem.example.com/ingest".to_string());
    }
    if url.fragment().is_some() {
        return Err("has a #fragment, which is never sent: remove it".to_string());
    }
    Ok(url)
}

/// The receiver's CA, read now so that a wrong file is a configuration error, not a failed run.
fn check_pem(path: &std::path::Path) -> Result<(), String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("points to {}, which cannot be read: {e}", path.display()))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(()),
        Ok(_) => Err(format!(
            "points to {}, which holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )),
        Err(e) => Err(format!(
            "points to {}, which holds no usable PEM certificate: {e}",
            path.display()
        )),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    // An IPv6 literal keeps its brackets in host_str.
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// RFC 9110 token characters.
fn check_name(name: &str) -> Result<String, String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!(
            "`{name}` is not a header name (letters, digits and -, e.g. X-Source)"
        ));
    }
    Ok(name.to_string())
}

/// One `Name: value` per line (repeated keys and continuation lines give several).
fn parse_headers(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!(
                "`{line}` is not `Name: value` (e.g. `X-Source: akamai`)"
            ));
        };
        let name = check_name(name.trim())?;
        if looks_secret(&name) {
            return Err(format!(
                "header `{name}` looks like it carries a credential: set it as \
                 http_secret_header = {name}: … in the config file or in the environment \
                 (AKAMAI_SIEM_HTTP_SECRET_HEADER), never in http_header or a flag, which \
                 `ps` and messages show"
            ));
        }
        if OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "header `{name}` is set by akamai-siem itself and cannot be overridden"
            ));
        }
        let value = value.trim();
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(format!(
                "header `{name}` has control characters in its value"
            ));
        }
        headers.push((name, value.to_string()));
    }
    Ok(headers)
}

fn parse_format(value: &str) -> Result<HttpFormat, String> {
    match value.to_ascii_lowercase().as_str() {
        "ndjson" => Ok(HttpFormat::Ndjson),
        "splunk-hec" | "splunk_hec" | "hec" => Ok(HttpFormat::SplunkHec),
        _ => Err(format!("must be ndjson or splunk-hec, got `{value}`")),
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("must be true or false, got `{value}`")),
    }
}

#[cfg(test)]
mod tests;
