//! Everything the tool is told, from four layers, resolved into validated settings.
//!
//! Layers, weakest first: the INI file's section (`[DEFAULT]` inherited), Akamai's `.edgerc`
//! (credentials only), `AKAMAI_SIEM_*` environment variables, command-line flags. Each layer
//! yields raw strings tagged with where they came from; one parser per key validates them, so an
//! error always names the file, section, line, variable or flag to fix.

mod ini;
mod resolve;
pub mod secret;
mod settings;
pub mod timespec;

pub use ini::{Ini, IniSyntaxError};
pub use resolve::{CredentialSource, Environment, Overrides, Sources, load_tenants};
pub use settings::*;

use std::fmt;
use std::path::PathBuf;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File {
        path: PathBuf,
        section: String,
        line: usize,
    },
    Env(String),
    Flag(&'static str),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                path,
                section,
                line,
            } => write!(f, "{} [{section}] line {line}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Default => f.write_str("built-in default"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: `{key}` {problem}")]
    Invalid {
        key: &'static str,
        origin: Origin,
        problem: String,
    },
    #[error("`{key}` is not set: {hint}")]
    Missing { key: &'static str, hint: String },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Syntax {
        path: PathBuf,
        source: IniSyntaxError,
    },
    #[error("{} has no section [{section}] (sections there: {available}); pass {flag} NAME", path.display())]
    NoSection {
        path: PathBuf,
        section: String,
        available: String,
        /// The flag that picks this file's section: `--section`, or `--edgerc-section`.
        flag: &'static str,
    },
    #[error("{0}")]
    Usage(String),
}

/// Every setting, with its flag when it has one. Environment names are derived: `host` is read
/// from `AKAMAI_SIEM_HOST`. Secrets have no flag: a flag is visible to every user in `ps`.
pub struct Key {
    pub name: &'static str,
    pub flag: Option<&'static str>,
}

const fn key(name: &'static str, flag: &'static str) -> Key {
    Key {
        name,
        flag: Some(flag),
    }
}

const fn file_only(name: &'static str) -> Key {
    Key { name, flag: None }
}

/// A secret comes from the file or the environment only: a flag is visible in `ps`.
const fn secret(name: &'static str) -> Key {
    file_only(name)
}

pub const KEYS: &[Key] = &[
    key("host", "--host"),
    key("config_id", "--config-id"),
    secret("client_token"),
    secret("client_secret"),
    secret("access_token"),
    file_only("max_body"),
    file_only("headers_to_sign"),
    key("edgerc", "--edgerc"),
    key("edgerc_section", "--edgerc-section"),
    key("limit", "--limit"),
    key("window", "--window"),
    key("ca_file", "--ca-file"),
    key("connect_timeout", "--connect-timeout"),
    key("read_timeout", "--read-timeout"),
    key("log_file", "--log-file"),
    key("log_level", "--log-level"),
    key("diagnostics", "--diagnostics"),
    key("output", "--output"),
    key("syslog_format", "--syslog-format"),
    key("syslog_framing", "--syslog-framing"),
    key("syslog_facility", "--syslog-facility"),
    key("syslog_severity", "--syslog-severity"),
    key("syslog_app_name", "--syslog-app-name"),
    key("syslog_hostname", "--syslog-hostname"),
    key("syslog_ca_file", "--syslog-ca-file"),
    key("syslog_client_cert", "--syslog-client-cert"),
    key("syslog_client_key", "--syslog-client-key"),
    key("format", "--format"),
    key("max_line_bytes", "--max-line-bytes"),
    key("state_file", "--state"),
    key("initial_lookback", "--initial-lookback"),
    key("offset_ttl", "--offset-ttl"),
    key("overlap", "--overlap"),
    key("max_events", "--max-events"),
    key("max_bytes", "--max-bytes"),
    key("retry_budget", "--retry-budget"),
    file_only("dedup_capacity"),
    // A label per section: a flag would give every tenant of a run the same one.
    file_only("tenant"),
    key("parallel", "--parallel"),
    file_only("spool_dir"),
    // `receive`, the DataStream push receiver.
    key("listen", "--listen"),
    key("tls_cert", "--tls-cert"),
    key("tls_key", "--tls-key"),
    key("client_ca", "--client-ca"),
    key("plain_http", "--plain-http"),
    key("path", "--path"),
    key("auth_header", "--auth-header"),
    secret("auth_token"),
    key("basic_user", "--basic-user"),
    secret("basic_password"),
    key("max_body_bytes", "--max-body-bytes"),
    key("max_connections", "--max-connections"),
    key("receive_state_file", "--receive-state"),
    key("quarantine_dir", "--quarantine-dir"),
    key("summary_interval", "--summary-interval"),
    // A deployment setting of the scheduled collector: only runs with state write it.
    file_only("metrics_file"),
    key("http_format", "--http-format"),
    key("http_gzip", "--http-gzip"),
    key("http_batch_events", "--http-batch-events"),
    key("http_batch_bytes", "--http-batch-bytes"),
    key("http_header", "--http-header"),
    secret("http_secret_header"),
    key("http_ca_file", "--http-ca-file"),
    key("http_allow_plaintext", "--http-allow-plaintext"),
];

/// Keys that may appear more than once in a section (and as a flag): their values are joined
/// one per line, as continuation lines would give them.
pub const REPEATABLE: &[&str] = &["http_header"];

pub fn env_name(key: &str) -> String {
    format!("AKAMAI_SIEM_{}", key.to_ascii_uppercase())
}

/// `AKAMAI_SIEM_*` variables that are not keys but choose which file and section to read.
pub const ENV_NOT_KEYS: &[&str] = &["AKAMAI_SIEM_CONFIG", "AKAMAI_SIEM_SECTION"];

pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}
