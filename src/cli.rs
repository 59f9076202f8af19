//! Command-line interface. Flags only carry raw text into [`Overrides`]: validation happens in
//! `config`, once, for flags, environment and files alike.

use crate::config::Overrides;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `--version`: the release, the git commit and the target triple (set by build.rs), so a
/// production host can say exactly which build it runs.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_GIT_COMMIT"),
    ", ",
    env!("BUILD_TARGET"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "akamai-siem",
    version = VERSION,
    about = "Pull security events from Akamai's SIEM API and print them as JSON lines for Wazuh",
    long_about = "Pull security events from Akamai's SIEM API and print them as JSON lines for \
                  Wazuh (or anything that reads JSON lines).\n\nWithout a subcommand it fetches: \
                  it continues where the previous run stopped (the state file), pages until \
                  caught up or until the run's budget, and prints one JSON object per event.",
    after_help = "Exit codes: 0 ok, 2 usage, 3 configuration, 4 authentication/permission, \
                  5 API/network, 6 output, 7 state, 8 another run holds the lock, 9 events lost \
                  (gap reported), 130/143 interrupted. See README.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: SettingsArgs,

    #[command(flatten)]
    pub fetch: FetchArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub syslog: SyslogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch new events (the default when no subcommand is given).
    Fetch,
    /// Validate the configuration and make one small signed request; prints no events and
    /// never touches the state.
    Check,
    /// Decode saved raw API output (a file, or stdin) offline, into the same output format.
    Decode {
        /// Raw API response lines; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// Show or reset where the next run continues.
    #[command(subcommand)]
    State(StateCommand),
    /// Receive events pushed by an Akamai DataStream 2 security stream (custom HTTPS
    /// destination) until SIGTERM/SIGINT; each body is answered 200 only once durable.
    Receive(Box<ReceiveArgs>),
    /// Print a shell completion script, generated from these very options.
    #[command(after_help = "Install: bash: akamai-siem completions bash > \
                            /etc/bash_completion.d/akamai-siem; zsh: into a directory of \
                            $fpath as _akamai-siem; fish: into \
                            ~/.config/fish/completions/akamai-siem.fish")]
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
    /// Print the manual page (roff), generated from these very options: `akamai-siem man |
    /// man -l -`.
    Man {
        /// Write akamai-siem.1 and one page per subcommand (akamai-siem-fetch.1 and so on) into DIR
        /// instead, as a package installs them.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The shells `completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Options of the push receiver. Secrets (auth_token, basic_password) have no flag: set them in
/// the config file or the environment.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Address and port to listen on [default: 0.0.0.0:8443]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Server certificate chain (PEM)
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<String>,
    /// Server private key (PEM)
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<String>,
    /// Require client certificates issued by this CA (PEM): mTLS
    #[arg(long, value_name = "PATH")]
    pub client_ca: Option<String>,
    /// Serve plain HTTP (loopback `listen` only, behind a TLS-terminating proxy)
    #[arg(long)]
    pub plain_http: bool,
    /// Accept pushes on this request path only [default: any path]
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Header carrying auth_token [default: Authorization]
    #[arg(long, value_name = "NAME")]
    pub auth_header: Option<String>,
    /// User name for Basic authentication (the password: basic_password, file or environment)
    #[arg(long, value_name = "USER")]
    pub basic_user: Option<String>,
    /// Largest body, as received and once decompressed [default: 32MiB]
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<String>,
    /// Most connections open at once [default: 128]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,
    /// The receiver's state (journal, output position, lock) [default: beside the config file,
    /// akamai-siem-SECTION.receive.state]
    #[arg(long = "receive-state", value_name = "PATH")]
    pub receive_state_file: Option<String>,
    /// Where rejected bodies are kept [default: beside the receive state, *.receive.quarantine]
    #[arg(long, value_name = "DIR")]
    pub quarantine_dir: Option<String>,
    /// How often a summary line is logged [default: 300s]
    #[arg(long, value_name = "DURATION")]
    pub summary_interval: Option<String>,
}

impl ReceiveArgs {
    fn overrides(&self) -> Vec<(&'static str, String)> {
        let plain_http = self.plain_http.then(|| "true".to_string());
        let pairs: [(&'static str, &Option<String>); 13] = [
            ("listen", &self.listen),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("client_ca", &self.client_ca),
            ("plain_http", &plain_http),
            ("path", &self.path),
            ("auth_header", &self.auth_header),
            ("basic_user", &self.basic_user),
            ("max_body_bytes", &self.max_body_bytes),
            ("max_connections", &self.max_connections),
            ("receive_state_file", &self.receive_state_file),
            ("quarantine_dir", &self.quarantine_dir),
            ("summary_interval", &self.summary_interval),
        ];
        pairs
            .into_iter()
            .filter_map(|(key, value)| value.as_ref().map(|v| (key, v.clone())))
            .collect()
    }
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Where the next run continues: offset age, checkpoint, output position, backlog.
    Show,
    /// Forget the offset: the next run starts by time, from TIME or like a first run.
    Reset {
        /// Start the next run from this time (Unix seconds, RFC 3339 or relative like -2h;
        /// within the last 12 hours). Without it the next run behaves like a first run.
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        from: Option<String>,
    },
}

/// Settings every command understands. Each maps to a config key of the same name.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// INI config file [default: ./akamai_config.ini, then beside the executable]
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Section of the config file (and of the .edgerc) to use [default: default]; repeat it to
    /// collect several tenants in one run
    #[arg(long, short = 's', global = true, value_name = "NAME")]
    pub section: Vec<String>,
    /// Every section of the config file that has credentials, each a tenant
    #[arg(long, global = true, conflicts_with = "section")]
    pub all_sections: bool,
    /// Akamai .edgerc to take credentials from [default: ~/.edgerc when the config has none]
    #[arg(long, global = true, value_name = "PATH")]
    pub edgerc: Option<String>,
    /// Section of the .edgerc [default: the --section]
    #[arg(long, global = true, value_name = "NAME")]
    pub edgerc_section: Option<String>,
    /// API host, e.g. akab-xxxx.luna.akamaiapis.net
    #[arg(long, global = true, value_name = "HOST")]
    pub host: Option<String>,
    /// Security configuration id(s), separated by ; or ,
    #[arg(long, global = true, value_name = "IDS")]
    pub config_id: Option<String>,
    /// Extra trusted CA certificate (PEM), for TLS-intercepting proxies and tests
    #[arg(long, global = true, value_name = "PATH")]
    pub ca_file: Option<String>,
    /// Connection timeout [default: 10s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// Timeout for each read of the response [default: 60s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub read_timeout: Option<String>,
    /// Write logs to this file instead of stderr
    #[arg(long, global = true, value_name = "PATH")]
    pub log_file: Option<String>,
    /// error, warn, info, debug or trace [default: info]
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// How diagnostics look: auto (JSON when stderr is stdout's pipe, as under Wazuh), text or
    /// json [default: auto]
    #[arg(long, global = true, value_name = "MODE")]
    pub diagnostics: Option<String>,
    /// Append events to FILE instead of printing them (`-` for stdout), or send them to a
    /// receiver: https://HOST/PATH (HTTP POST batches), syslog://HOST:PORT (TCP),
    /// syslog+tls://HOST:PORT, syslog+udp://HOST:PORT
    #[arg(long, short = 'o', global = true, value_name = "FILE|URL")]
    pub output: Option<String>,
    /// wazuh (default), json (the decoded event) or raw (the API's lines untouched)
    #[arg(long, short = 'f', global = true, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Longest line written in the wazuh format; bigger events are shrunk [default: 60000]
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_line_bytes: Option<String>,
}

/// Options of the fetch run.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Events per request, 1..600000 [default: 10000]
    #[arg(long, global = true, value_name = "N")]
    pub limit: Option<String>,
    /// Width of the stateless time window [default: 300s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub window: Option<String>,
    /// State file [default: beside the config file, named after the section]
    #[arg(long = "state", global = true, value_name = "PATH")]
    pub state_file: Option<String>,
    /// Run without state, like the Python script: one time window, nothing remembered
    #[arg(long, global = true, conflicts_with = "state_file")]
    pub no_state: bool,
    /// How far back the very first run starts [default: 300s; at most 12h]
    #[arg(long, global = true, value_name = "DURATION")]
    pub initial_lookback: Option<String>,
    /// Treat offsets older than this as expired [default: none, rely on the API's 416]
    #[arg(long, global = true, value_name = "DURATION")]
    pub offset_ttl: Option<String>,
    /// How far before the checkpoint a time-based recovery starts [default: 120s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub overlap: Option<String>,
    /// Most events one run delivers [default: 30000 to stdout, 2000000 to a file]
    #[arg(long, global = true, value_name = "N")]
    pub max_events: Option<String>,
    /// Most bytes one run writes [default: 60MiB to stdout, 4GiB to a file]
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_bytes: Option<String>,
    /// Total time one run may spend waiting to retry [default: 120s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub retry_budget: Option<String>,
    /// Tenants fetched at once, with several --section or --all-sections [default: 4]
    #[arg(long, global = true, value_name = "N")]
    pub parallel: Option<String>,
    /// Replay from this time (Unix seconds, RFC 3339, or relative like -2h); implies --no-state
    #[arg(long, global = true, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the replay [default: now - 60s]
    #[arg(
        long,
        global = true,
        value_name = "TIME",
        requires = "from",
        allow_hyphen_values = true
    )]
    pub to: Option<String>,
}

/// How batches go to an HTTP output (`--output https://…`). The receiver's credential has no
/// flag: `http_secret_header` in the config file or the environment.
#[derive(Debug, Args)]
#[command(next_help_heading = "HTTP output")]
pub struct HttpArgs {
    /// HTTP output body: ndjson (the lines as they are) or splunk-hec [default: ndjson]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub http_format: Option<String>,
    /// Compress HTTP output batches (Content-Encoding: gzip) [default: false]
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub http_gzip: Option<String>,
    /// Most events in one HTTP output batch [default: 500]
    #[arg(long, global = true, value_name = "N")]
    pub http_batch_events: Option<String>,
    /// Most bytes in one HTTP output batch, before gzip [default: 1MiB]
    #[arg(long, global = true, value_name = "BYTES")]
    pub http_batch_bytes: Option<String>,
    /// Extra header on every HTTP output request, `Name: value` (repeatable; never a
    /// credential: set http_secret_header in the config file or environment)
    #[arg(long, global = true, value_name = "HEADER")]
    pub http_header: Vec<String>,
    /// Extra trusted CA certificate (PEM) for the HTTP output's receiver
    #[arg(long, global = true, value_name = "PATH")]
    pub http_ca_file: Option<String>,
    /// Allow plain http:// to a receiver that is not on this machine [default: false]
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub http_allow_plaintext: Option<String>,
}

/// How events look on a syslog output (`--output syslog://…`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Syslog output")]
pub struct SyslogArgs {
    /// rfc3164 (what Wazuh's remote syslog parses), rfc5424 or json (no header) [default: rfc3164]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub syslog_format: Option<String>,
    /// newline (RFC 6587 non-transparent) or octet-counting [default: newline]
    #[arg(long, global = true, value_name = "FRAMING")]
    pub syslog_framing: Option<String>,
    /// Facility name or number [default: local0]
    #[arg(long, global = true, value_name = "FACILITY")]
    pub syslog_facility: Option<String>,
    /// auto (deny → warning, alert → notice, else info) or a fixed severity [default: auto]
    #[arg(long, global = true, value_name = "SEVERITY")]
    pub syslog_severity: Option<String>,
    /// APP-NAME / program name in the header [default: akamai-siem]
    #[arg(long, global = true, value_name = "NAME")]
    pub syslog_app_name: Option<String>,
    /// HOSTNAME in the header [default: this machine's name]
    #[arg(long, global = true, value_name = "NAME")]
    pub syslog_hostname: Option<String>,
    /// CA certificate (PEM) that signed the syslog+tls receiver's certificate [default: the
    /// system's trusted roots]
    #[arg(long, global = true, value_name = "PATH")]
    pub syslog_ca_file: Option<String>,
    /// Client certificate (PEM) for a receiver that requires mutual TLS
    #[arg(long, global = true, value_name = "PATH")]
    pub syslog_client_cert: Option<String>,
    /// Its private key (PEM)
    #[arg(long, global = true, value_name = "PATH")]
    pub syslog_client_key: Option<String>,
}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        let s = &self.settings;
        let f = &self.fetch;
        let h = &self.http;
        let y = &self.syslog;
        let pairs: [(&'static str, &Option<String>); 38] = [
            ("edgerc", &s.edgerc),
            ("edgerc_section", &s.edgerc_section),
            ("host", &s.host),
            ("config_id", &s.config_id),
            ("ca_file", &s.ca_file),
            ("connect_timeout", &s.connect_timeout),
            ("read_timeout", &s.read_timeout),
            ("log_file", &s.log_file),
            ("log_level", &s.log_level),
            ("diagnostics", &s.diagnostics),
            ("output", &s.output),
            ("format", &s.format),
            ("max_line_bytes", &s.max_line_bytes),
            ("http_format", &h.http_format),
            ("http_gzip", &h.http_gzip),
            ("http_batch_events", &h.http_batch_events),
            ("http_batch_bytes", &h.http_batch_bytes),
            ("http_ca_file", &h.http_ca_file),
            ("http_allow_plaintext", &h.http_allow_plaintext),
            ("limit", &f.limit),
            ("window", &f.window),
            ("state_file", &f.state_file),
            ("initial_lookback", &f.initial_lookback),
            ("offset_ttl", &f.offset_ttl),
            ("overlap", &f.overlap),
            ("max_events", &f.max_events),
            ("max_bytes", &f.max_bytes),
            ("retry_budget", &f.retry_budget),
            ("parallel", &f.parallel),
            ("syslog_format", &y.syslog_format),
            ("syslog_framing", &y.syslog_framing),
            ("syslog_facility", &y.syslog_facility),
            ("syslog_severity", &y.syslog_severity),
            ("syslog_app_name", &y.syslog_app_name),
            ("syslog_hostname", &y.syslog_hostname),
            ("syslog_ca_file", &y.syslog_ca_file),
            ("syslog_client_cert", &y.syslog_client_cert),
            ("syslog_client_key", &y.syslog_client_key),
        ];
        let mut values: Vec<(&'static str, String)> = pairs
            .into_iter()
            .filter_map(|(key, value)| value.as_ref().map(|v| (key, v.clone())))
            .collect();
        // A repeatable key: one value per line, as the config file gives it.
        if !h.http_header.is_empty() {
            values.push(("http_header", h.http_header.join("\n")));
        }
        if let Some(Command::Receive(receive)) = &self.command {
            values.extend(receive.overrides());
        }
        Overrides {
            config: s.config.clone(),
            section: s.section.first().cloned(),
            sections: s.section.clone(),
            all_sections: s.all_sections,
            values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KEYS;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_maps_to_a_known_key() {
        let cli = Cli::parse_from([
            "akamai-siem",
            "--limit",
            "5",
            "--host",
            "h",
            "--state",
            "/tmp/s",
            "-o",
            "out.json",
        ]);
        let overrides = cli.overrides();
        for (key, _) in &overrides.values {
            assert!(KEYS.iter().any(|k| k.name == *key), "unknown key {key}");
        }
        assert!(overrides.values.contains(&("limit", "5".to_string())));
        assert!(
            overrides
                .values
                .contains(&("state_file", "/tmp/s".to_string()))
        );
        assert!(
            overrides
                .values
                .contains(&("output", "out.json".to_string()))
        );
    }

    #[test]
    fn every_key_flag_exists_on_the_command_line() {
        let command = Cli::command();
        // The receiver's own flags belong to its subcommand.
        let receive = command
            .get_subcommands()
            .find(|c| c.get_name() == "receive")
            .expect("the receive subcommand");
        for key in KEYS {
            if let Some(flag) = key.flag {
                let long = flag.trim_start_matches("--");
                assert!(
                    command
                        .get_arguments()
                        .chain(receive.get_arguments())
                        .any(|a| a.get_long() == Some(long)),
                    "{flag} is documented for `{}` but not accepted",
                    key.name
                );
            }
        }
    }

    #[test]
    fn options_work_after_subcommands_too() {
        let cli = Cli::parse_from(["akamai-siem", "check", "--config", "x.ini"]);
        assert!(matches!(cli.command, Some(Command::Check)));
        assert_eq!(cli.settings.config, Some(PathBuf::from("x.ini")));
    }

    #[test]
    fn receive_flags_reach_their_keys() {
        let cli = Cli::parse_from([
            "akamai-siem",
            "receive",
            "--listen",
            "127.0.0.1:9",
            "--plain-http",
            "--receive-state",
            "/tmp/r",
        ]);
        let values = cli.overrides().values;
        assert!(values.contains(&("listen", "127.0.0.1:9".to_string())));
        assert!(values.contains(&("plain_http", "true".to_string())));
        assert!(values.contains(&("receive_state_file", "/tmp/r".to_string())));
        assert!(
            values
                .iter()
                .all(|(k, _)| KEYS.iter().any(|key| key.name == *k))
        );
    }

    #[test]
    fn repeated_and_boolean_http_flags() {
        let cli = Cli::parse_from([
            "akamai-siem",
            "--http-header",
            "X-One: 1",
            "--http-gzip",
            "--http-header=X-Two: 2",
            "--http-allow-plaintext=false",
            "check",
        ]);
        let values = cli.overrides().values;
        assert!(values.contains(&("http_header", "X-One: 1\nX-Two: 2".to_string())));
        assert!(values.contains(&("http_gzip", "true".to_string())));
        assert!(values.contains(&("http_allow_plaintext", "false".to_string())));
        assert!(matches!(cli.command, Some(Command::Check)));
    }

    #[test]
    fn no_state_conflicts_with_state() {
        assert!(Cli::try_parse_from(["akamai-siem", "--no-state", "--state", "x"]).is_err());
        assert!(Cli::try_parse_from(["akamai-siem", "--to", "-1h"]).is_err());
    }
}
