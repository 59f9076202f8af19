//! Typed, validated settings, one group per concern, each built only when a command needs it
//! (`decode` works offline without credentials).

use super::resolve::CredentialSource;
use super::{ConfigError, Origin, Sources};
use crate::config::secret::Secret;
use crate::config::timespec::parse_duration;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

mod http;
mod receive;
mod syslog;
pub use http::{HttpFormat, HttpSettings, describe_url};
pub use receive::{PushAuth, ReceiveSettings, TlsFiles};
pub use syslog::{
    SyslogFraming, SyslogMessageFormat, SyslogSettings, SyslogSeverity, SyslogTransport,
    is_syslog_url,
};

/// The API refuses `from` older than 12 hours.
pub const API_HORIZON: Duration = Duration::from_secs(12 * 3600);
/// Largest page the API serves.
pub const MAX_LIMIT: u32 = 600_000;
/// Wazuh's command wodle forwards at most 100 lines/s by default: one 5-minute interval.
pub const WODLE_MAX_EVENTS: u64 = 30_000;
/// The wodle keeps at most 64 MiB of a command's output; leave room for diagnostics.
pub const WODLE_MAX_BYTES: u64 = 60 * 1024 * 1024;
/// A file has no such limits; these only keep one run from running for hours.
pub const FILE_MAX_EVENTS: u64 = 2_000_000;
pub const FILE_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Wazuh's logcollector reads at most 65,278 bytes per line (the file route's limit, the
/// lowest of Wazuh's three); 60,000 leaves margin for the `1:command_akamai:` prefix and more.
pub const DEFAULT_MAX_LINE_BYTES: usize = 60_000;
pub const WAZUH_LINE_LIMIT: usize = 65_278;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"integration":"akamai","srcip":…}` shaped for Wazuh's JSON decoder and rules.
    Wazuh,
    /// The decoded event as it is, nothing added.
    Json,
    /// The API's event lines untouched.
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    Stdout,
    File(PathBuf),
    /// A file other tenants of the same run append to as well.
    SharedFile(PathBuf),
    /// POSTed in batches to an `https://` (or loopback `http://`) receiver.
    Http(Box<HttpSettings>),
    /// A syslog receiver (`syslog://`, `syslog+tls://`, `syslog+udp://`).
    Syslog(Box<SyslogSettings>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diagnostics {
    /// Text on stderr, unless stderr is the same pipe as stdout (Wazuh's wodle): then JSON.
    Auto,
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone)]
pub struct OutputSettings {
    pub target: OutputTarget,
    pub format: Format,
    pub max_line_bytes: usize,
    /// Added to every event of the `wazuh` and `json` formats.
    pub tags: Tags,
}

/// What says whose an event is: the tenant (`tenant = …`, or the section's name when the run
/// names its sections) and the section's `field.NAME = value` labels, like Filebeat's
/// `fields`. Empty for the plain single-section run, whose output stays as it always was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    pub tenant: Option<String>,
    pub fields: Vec<(String, String)>,
}

impl Tags {
    /// `(name, value)` in the order they are written: `tenant` first.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tenant
            .as_deref()
            .map(|tenant| ("tenant", tenant))
            .into_iter()
            .chain(self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    pub fn is_empty(&self) -> bool {
        self.tenant.is_none() && self.fields.is_empty()
    }
}

/// Names a label may not take: the event's own top-level members, what the Wazuh shaping adds,
/// and Wazuh's static fields and index clashes (a rule cannot match those by name).
const RESERVED_LABELS: &[&str] = &[
    "tenant",
    "tenantLabel",
    "integration",
    "type",
    "format",
    "version",
    "attackData",
    "httpMessage",
    "geo",
    "botData",
    "clientData",
    "userRiskData",
    "identity",
    "decodeErrors",
    "oversizedEvent",
    "wazuh",
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
    "port",
    "timestamp",
];

fn parse_label_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`field.{name}`: a label name is 1 to 64 letters, digits or `_`, starting with a letter"
        ));
    }
    if RESERVED_LABELS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "`field.{name}` would collide with the event's own `{name}` (or a name Wazuh \
             reserves): choose another name"
        ));
    }
    Ok(name.to_string())
}

fn parse_label_value(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
        return Err("must be 1 to 1024 characters without control characters".to_string());
    }
    Ok(value.to_string())
}

/// A tenant name goes into file names (`{tenant}`), state names and every event.
pub fn parse_tenant(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !value.starts_with('.');
    if !valid {
        return Err(format!(
            "must be 1 to 64 letters, digits, `_`, `-` or `.` (not starting with `.`), got `{value}`"
        ));
    }
    Ok(value.to_string())
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub file: Option<PathBuf>,
    pub level: LogLevel,
    pub diagnostics: Diagnostics,
}

/// Security configuration ids in the order given, joined with `;` for the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIds(Vec<u64>);

impl ConfigIds {
    pub fn ids(&self) -> &[u64] {
        &self.0
    }
}

impl fmt::Display for ConfigIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&joined.join(";"))
    }
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Without scheme or trailing slash; may carry `:port`.
    pub host: String,
    pub config_ids: ConfigIds,
    pub client_token: String,
    pub client_secret: Secret,
    pub access_token: Secret,
    pub max_body: usize,
    pub headers_to_sign: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct StateSettings {
    pub path: PathBuf,
    pub initial_lookback: Duration,
    pub offset_ttl: Option<Duration>,
    pub overlap: Duration,
    pub dedup_capacity: usize,
}

#[derive(Debug, Clone)]
pub struct CollectSettings {
    pub limit: u32,
    pub window: Duration,
    pub max_events: u64,
    pub max_bytes: u64,
    pub retry_budget: Duration,
    pub spool_dir: Option<PathBuf>,
    pub metrics: Option<MetricsSettings>,
}

/// `metrics_file`: where a run with state leaves its Prometheus metrics.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub path: PathBuf,
    /// The `tenant` label: the tenant's name, or the config section without one.
    pub tenant: String,
}

/// What kind of fetch the settings are for: it decides the budgets' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// The plain fetch or a `--no-state` window: what a scheduler (Wazuh's wodle) runs.
    Scheduled,
    /// An explicit `--from`/`--to` replay.
    Replay,
}

/// Builds settings groups from the loaded sources.
pub struct Resolver<'a> {
    pub(super) sources: &'a Sources,
}

impl<'a> Resolver<'a> {
    pub fn new(sources: &'a Sources) -> Self {
        Resolver { sources }
    }

    pub(super) fn parsed<T>(
        &self,
        key: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.sources.raw(key) {
            None => Ok(default),
            Some((value, origin)) => parse(value.trim()).map_err(|problem| ConfigError::Invalid {
                key,
                origin,
                problem,
            }),
        }
    }

    fn required(&self, key: &'static str) -> Result<(String, Origin), ConfigError> {
        match self.sources.raw(key) {
            Some((value, origin)) if !value.trim().is_empty() => {
                Ok((value.trim().to_string(), origin))
            }
            Some((_, origin)) => Err(ConfigError::Invalid {
                key,
                origin,
                problem: "is empty".to_string(),
            }),
            None => Err(ConfigError::Missing {
                key,
                hint: self.sources.hint_for(key),
            }),
        }
    }

    fn credential(&self, key: &'static str) -> Result<String, ConfigError> {
        let (value, origin) = self.required(key)?;
        reject_placeholder(key, &value, &origin)?;
        if value.chars().any(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                key,
                origin,
                problem: "contains whitespace: copy it again from Akamai Control Center"
                    .to_string(),
            });
        }
        Ok(value)
    }

    pub fn output(&self) -> Result<OutputSettings, ConfigError> {
        let target = match self.sources.raw("output") {
            Some((url, origin)) if http::is_http_url(&url) => {
                OutputTarget::Http(Box::new(self.http_output(url.trim(), origin)?))
            }
            Some((url, origin)) if is_syslog_url(url.trim()) => {
                OutputTarget::Syslog(Box::new(self.syslog_settings(url.trim(), origin)?))
            }
            _ => match self.sources.path("output") {
                Some((path, _)) if path.as_os_str() != "-" && !path.ends_with("-") => {
                    OutputTarget::File(path)
                }
                _ => OutputTarget::Stdout,
            },
        };
        let format = self.parsed("format", Format::Wazuh, parse_format)?;
        let max_line_bytes = self.parsed("max_line_bytes", DEFAULT_MAX_LINE_BYTES, |v| {
            if format == Format::Wazuh {
                // A longer line is cut by Wazuh itself, where no marker says so.
                parse_in_range(v, 4096, WAZUH_LINE_LIMIT).map_err(|problem| {
                    format!(
                        "{problem}: Wazuh reads at most {WAZUH_LINE_LIMIT} bytes per line \
                         (the limit applies to the wazuh format only)"
                    )
                })
            } else {
                parse_in_range(v, 4096, 16 * 1024 * 1024)
            }
        })?;
        Ok(OutputSettings {
            target,
            format,
            max_line_bytes,
            tags: Tags::default(),
        })
    }

    /// The tenant's labels. `several` when the run covers more than one tenant: then every
    /// event says whose it is, as it does when the section was named or `tenant` is set.
    pub fn tags(&self, several: bool) -> Result<Tags, ConfigError> {
        let explicit = self.parsed("tenant", None, |v| parse_tenant(v).map(Some))?;
        let tenant =
            match explicit {
                Some(tenant) => Some(tenant),
                None if several || self.sources.section_is_explicit() => {
                    let section = self.sources.section();
                    Some(parse_tenant(section).map_err(|problem| ConfigError::Invalid {
                    key: "tenant",
                    origin: Origin::Default,
                    problem: format!(
                        "the section name [{section}] is the tenant's name, but it {problem}; \
                         set `tenant = NAME` in the section"
                    ),
                })?)
                }
                None => None,
            };
        let mut fields = Vec::new();
        for (name, value, origin) in self.sources.static_fields() {
            let invalid = |problem: String| ConfigError::Invalid {
                key: "field.NAME",
                origin: origin.clone(),
                problem,
            };
            let name = parse_label_name(&name).map_err(invalid)?;
            let value = parse_label_value(value.trim())
                .map_err(|problem| invalid(format!("`field.{name}` {problem}")))?;
            fields.push((name, value));
        }
        Ok(Tags { tenant, fields })
    }

    /// How many tenants run at once [default: 4].
    pub fn parallel(&self) -> Result<usize, ConfigError> {
        self.parsed("parallel", 4, |v| parse_in_range(v, 1, 64))
    }

    pub fn logging(&self) -> Result<LogSettings, ConfigError> {
        Ok(LogSettings {
            file: self.sources.path("log_file").map(|(path, _)| path),
            level: self.parsed("log_level", LogLevel::Info, parse_log_level)?,
            diagnostics: self.parsed("diagnostics", Diagnostics::Auto, parse_diagnostics)?,
        })
    }

    pub fn api(&self) -> Result<ApiSettings, ConfigError> {
        let (raw_host, host_origin) = self.required("host")?;
        reject_placeholder("host", &raw_host, &host_origin)?;
        let host = normalise_host(&raw_host).map_err(|problem| ConfigError::Invalid {
            key: "host",
            origin: host_origin,
            problem,
        })?;
        let (raw_ids, ids_origin) = self.required("config_id")?;
        let config_ids = parse_config_ids(&raw_ids).map_err(|problem| ConfigError::Invalid {
            key: "config_id",
            origin: ids_origin,
            problem,
        })?;
        let ca_file = match self.sources.path("ca_file") {
            Some((path, origin)) if !path.is_file() => {
                return Err(ConfigError::Invalid {
                    key: "ca_file",
                    origin,
                    problem: format!("points to {}, which is not a readable file", path.display()),
                });
            }
            other => other.map(|(path, _)| path),
        };
        Ok(ApiSettings {
            host,
            config_ids,
            client_token: self.credential("client_token")?,
            client_secret: Secret::new(self.credential("client_secret")?),
            access_token: Secret::new(self.credential("access_token")?),
            max_body: self.parsed("max_body", 131_072, |v| parse_in_range(v, 1, usize::MAX))?,
            headers_to_sign: self.parsed("headers_to_sign", Vec::new(), |v| {
                Ok(v.split([',', '\n'])
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_string)
                    .collect())
            })?,
            ca_file,
            connect_timeout: self.connect_timeout()?,
            read_timeout: self.read_timeout()?,
        })
    }

    /// Shared by the API and the HTTP output: one network, one pair of timeouts.
    pub(super) fn connect_timeout(&self) -> Result<Duration, ConfigError> {
        self.parsed("connect_timeout", Duration::from_secs(10), |v| {
            parse_duration_in(v, Duration::from_secs(1), Duration::from_secs(300))
        })
    }

    pub(super) fn read_timeout(&self) -> Result<Duration, ConfigError> {
        self.parsed("read_timeout", Duration::from_secs(60), |v| {
            parse_duration_in(v, Duration::from_secs(1), Duration::from_secs(600))
        })
    }

    /// All waits of one run, for the API and for a remote output alike.
    pub(super) fn retry_budget(&self) -> Result<Duration, ConfigError> {
        self.parsed("retry_budget", Duration::from_secs(120), |v| {
            parse_duration_in(v, Duration::ZERO, Duration::from_secs(3600))
        })
    }

    /// `None` when `stateless`: `--no-state` and replays never touch the state. The state keys
    /// are validated all the same, so that a trial run by hand catches the bad value the
    /// scheduled run would stop on.
    pub fn state(&self, stateless: bool) -> Result<Option<StateSettings>, ConfigError> {
        let settings = self.state_settings()?;
        if stateless {
            return Ok(None);
        }
        let path = match self.sources.path("state_file") {
            Some((path, _)) => path,
            None => self.default_state_path()?,
        };
        Ok(Some(StateSettings { path, ..settings }))
    }

    /// Where `state_file` was set, for messages that name the place to fix it.
    pub fn state_file_origin(&self) -> Origin {
        self.sources
            .raw("state_file")
            .map_or(Origin::Default, |(_, origin)| origin)
    }

    fn state_settings(&self) -> Result<StateSettings, ConfigError> {
        Ok(StateSettings {
            path: PathBuf::new(),
            initial_lookback: self.parsed("initial_lookback", Duration::from_secs(300), |v| {
                parse_duration_in(v, Duration::from_secs(1), API_HORIZON)
            })?,
            offset_ttl: self.parsed("offset_ttl", None, |v| {
                if v == "0" || v.eq_ignore_ascii_case("none") {
                    return Ok(None);
                }
                parse_duration_in(v, Duration::from_secs(10), Duration::from_secs(7 * 86_400))
                    .map(Some)
            })?,
            overlap: self.parsed("overlap", Duration::from_secs(120), |v| {
                parse_duration_in(v, Duration::ZERO, Duration::from_secs(3600))
            })?,
            dedup_capacity: self.parsed("dedup_capacity", 200_000, |v| {
                parse_in_range(v, 0, 5_000_000)
            })?,
        })
    }

    /// Beside the config file (or the .edgerc), named after the section, so two sections of one
    /// file never share a state.
    fn default_state_path(&self) -> Result<PathBuf, ConfigError> {
        let anchor = match self.sources.credentials_from() {
            CredentialSource::ConfigFile => self.sources.config_path(),
            CredentialSource::Edgerc => self
                .sources
                .config_path()
                .or_else(|| self.sources.edgerc_path()),
        };
        let file_name = format!("akamai-siem-{}.state", sanitise(self.sources.section()));
        match anchor.and_then(|path| path.parent()) {
            Some(dir) => Ok(dir.join(file_name)),
            None => Err(ConfigError::Missing {
                key: "state_file",
                hint: "no config file was found to keep the state beside: pass --state PATH \
                       (or --no-state for a one-off stateless run)"
                    .to_string(),
            }),
        }
    }

    /// The run's settings. `run` decides the budgets' defaults: the stdout ones fit Wazuh's
    /// wodle, which a scheduled run feeds; an explicit replay (`--from`) is a person asking for a
    /// whole window, so it gets the file route's defaults, and only a budget given explicitly
    /// (flag, environment, file) cuts it short.
    pub fn collect(
        &self,
        output: &OutputSettings,
        run: RunKind,
    ) -> Result<CollectSettings, ConfigError> {
        let (default_events, default_bytes) = match (&output.target, run) {
            (OutputTarget::Stdout, RunKind::Scheduled) => (WODLE_MAX_EVENTS, WODLE_MAX_BYTES),
            // A file or a remote receiver has no wodle limits.
            _ => (FILE_MAX_EVENTS, FILE_MAX_BYTES),
        };
        Ok(CollectSettings {
            limit: self.parsed("limit", 10_000, |v| parse_in_range(v, 1, MAX_LIMIT))?,
            window: self.parsed("window", Duration::from_secs(300), |v| {
                parse_duration_in(v, Duration::from_secs(1), API_HORIZON)
            })?,
            max_events: self.parsed("max_events", default_events, |v| {
                parse_in_range(v, 1, u64::MAX)
            })?,
            max_bytes: self.parsed("max_bytes", default_bytes, parse_bytes)?,
            retry_budget: self.retry_budget()?,
            spool_dir: self.sources.path("spool_dir").map(|(path, _)| path),
            metrics: self.metrics()?,
        })
    }

    /// The file is replaced through a temporary beside it, so its directory must exist; a
    /// mistyped directory is caught before the run, not warned about after it.
    fn metrics(&self) -> Result<Option<MetricsSettings>, ConfigError> {
        let Some((path, origin)) = self.sources.path("metrics_file") else {
            return Ok(None);
        };
        let invalid = |problem: String| ConfigError::Invalid {
            key: "metrics_file",
            origin: origin.clone(),
            problem,
        };
        if path.is_dir() || path.file_name().is_none() {
            return Err(invalid(format!(
                "is {}, a directory: give a file in it, e.g. {}",
                path.display(),
                path.join("akamai_siem.prom").display()
            )));
        }
        match path.parent() {
            Some(dir) if dir.as_os_str().is_empty() || dir.is_dir() => {}
            Some(dir) => {
                return Err(invalid(format!(
                    "is in {}, which is not a directory (node_exporter's textfile directory, \
                     e.g. /var/lib/prometheus/node-exporter, must exist)",
                    dir.display()
                )));
            }
            None => return Err(invalid("names no file".to_string())),
        }
        // The tenant's name (`tenant`, or its section in a run of several), else the section.
        let tenant = self
            .tags(false)?
            .tenant
            .unwrap_or_else(|| self.sources.section().to_string());
        Ok(Some(MetricsSettings { path, tenant }))
    }
}

/// The template's placeholders say what to fill in; catching them here beats a DNS error or a
/// 401 that does not say why.
const PLACEHOLDER: &str = "REPLACE-WITH-YOUR";

fn reject_placeholder(key: &'static str, value: &str, origin: &Origin) -> Result<(), ConfigError> {
    if value.contains(PLACEHOLDER) {
        return Err(ConfigError::Invalid {
            key,
            origin: origin.clone(),
            problem: "still holds the template's placeholder: fill in the value from Akamai \
                      Control Center (Identity and access > API clients)"
                .to_string(),
        });
    }
    Ok(())
}

fn sanitise(section: &str) -> String {
    section
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn normalise_host(raw: &str) -> Result<String, String> {
    let mut host = raw.trim();
    if let Some(rest) = host.strip_prefix("https://") {
        host = rest;
    } else if host.contains("://") {
        return Err(format!(
            "`{host}` uses a scheme other than https://; give the API host name only, \
             e.g. akab-xxxx.luna.akamaiapis.net"
        ));
    }
    let host = host.trim_end_matches('/');
    if host.is_empty() {
        return Err("is empty".to_string());
    }
    if host.contains(['/', '?', '#', ' ', '@']) {
        return Err(format!(
            "`{host}` is not a host name: give only the API host, \
             e.g. akab-xxxx.luna.akamaiapis.net"
        ));
    }
    // `name:port`, where an IPv6 literal keeps its colons inside brackets.
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') || name.ends_with(']') => (name, Some(port)),
        _ => (host, None),
    };
    if name.is_empty() {
        return Err(format!("`{host}` names no host before the port"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!(
            "`{host}` has an impossible port `{port}`: a port is a number from 1 to 65535"
        ));
    }
    Ok(host.to_string())
}

/// `12892;29182` as the API wants it; `,` accepted because people type it.
pub fn parse_config_ids(raw: &str) -> Result<ConfigIds, String> {
    let mut ids = Vec::new();
    for part in raw.split([';', ',']).map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let id: u64 = part.parse().map_err(|_| {
            format!("`{part}` is not a security configuration id (a number, e.g. 12892)")
        })?;
        if id == 0 {
            return Err("0 is not a security configuration id".to_string());
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err("lists no security configuration id".to_string());
    }
    Ok(ConfigIds(ids))
}

pub(super) fn parse_in_range<T>(value: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let number: T = value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("must be a whole number, got `{value}`"))?;
    if number < min || number > max {
        return Err(format!("must be between {min} and {max}, got {number}"));
    }
    Ok(number)
}

fn parse_duration_in(value: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration < min || duration > max {
        return Err(format!(
            "must be between {}s and {}s, got `{value}`",
            min.as_secs(),
            max.as_secs()
        ));
    }
    Ok(duration)
}

/// `62914560`, `60MiB`, `60M`, `1G`: byte budgets are easier to read with a unit.
pub(super) fn parse_bytes(value: &str) -> Result<u64, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("must be a byte count such as 62914560 or 60MiB, got `{value}`"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown unit `{other}`: use KiB, MiB or GiB")),
    };
    let bytes = number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{value}` is too large"))?;
    if bytes < 64 * 1024 {
        return Err(format!("must be at least 64KiB, got `{value}`"));
    }
    Ok(bytes)
}

fn parse_format(value: &str) -> Result<Format, String> {
    match value.to_ascii_lowercase().as_str() {
        "wazuh" => Ok(Format::Wazuh),
        "json" => Ok(Format::Json),
        "raw" => Ok(Format::Raw),
        _ => Err(format!("must be wazuh, json or raw, got `{value}`")),
    }
}

fn parse_log_level(value: &str) -> Result<LogLevel, String> {
    match value.to_ascii_lowercase().as_str() {
        "error" => Ok(LogLevel::Error),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "info" => Ok(LogLevel::Info),
        "debug" => Ok(LogLevel::Debug),
        "trace" => Ok(LogLevel::Trace),
        _ => Err(format!(
            "must be error, warn, info, debug or trace, got `{value}`"
        )),
    }
}

fn parse_diagnostics(value: &str) -> Result<Diagnostics, String> {
    match value.to_ascii_lowercase().as_str() {
        "auto" => Ok(Diagnostics::Auto),
        "text" => Ok(Diagnostics::Text),
        "json" => Ok(Diagnostics::Json),
        _ => Err(format!("must be auto, text or json, got `{value}`")),
    }
}

#[cfg(test)]
mod tests;
