//! Settings of `receive`, the DataStream push receiver: where it listens, how it proves itself
//! (TLS) and checks its clients (mTLS, a header token, Basic), how much it accepts, and where its
//! journal and quarantine live.

use super::{ConfigError, Origin, Resolver, parse_bytes, parse_duration_in, parse_in_range};
use super::{StateSettings, sanitise};
use crate::config::secret::Secret;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A body's bytes as received and once decompressed are each limited to `max_body_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a push must carry. Every configured check must pass.
#[derive(Debug, Clone, Default)]
pub struct PushAuth {
    /// A request header and its exact expected value (a token).
    pub header: Option<(String, Secret)>,
    /// Basic authentication: user and password.
    pub basic: Option<(String, Secret)>,
}

#[derive(Debug, Clone)]
pub struct ReceiveSettings {
    pub listen: SocketAddr,
    /// `None`: plain HTTP behind a TLS-terminating proxy on loopback (`plain_http`).
    pub tls: Option<TlsFiles>,
    /// Client certificates must chain to this CA (mTLS).
    pub client_ca: Option<PathBuf>,
    pub auth: PushAuth,
    /// Only this request path takes pushes; any path when `None`.
    pub path: Option<String>,
    pub max_body_bytes: u64,
    pub max_connections: usize,
    /// The receiver's own state: output position and identity journal, and its lock.
    pub state: StateSettings,
    pub quarantine_dir: PathBuf,
    pub summary_interval: Duration,
}

impl Resolver<'_> {
    pub fn receive(&self) -> Result<ReceiveSettings, ConfigError> {
        let listen = self.parsed("listen", SocketAddr::from(([0, 0, 0, 0], 8443)), |v| {
            v.parse().map_err(|_| {
                format!(
                    "must be an IP address and port such as 0.0.0.0:8443 or [::]:8443, got `{v}`"
                )
            })
        })?;
        let plain_http = self.parsed("plain_http", false, parse_bool)?;
        let tls = self.tls_files(plain_http, &listen)?;
        let client_ca = self.existing_file("client_ca")?;
        if plain_http && client_ca.is_some() {
            return Err(self.invalid(
                "client_ca",
                "needs TLS, but plain_http is set: verify client certificates at the proxy that \
                 terminates TLS, or unset plain_http",
            ));
        }
        let auth = self.push_auth()?;
        if auth.header.is_none() && auth.basic.is_none() && client_ca.is_none() {
            return Err(ConfigError::Missing {
                key: "auth_token",
                hint: "receive accepts no unauthenticated pushes: set auth_token (the value \
                       DataStream sends in auth_header), or basic_user and basic_password, or \
                       client_ca for mTLS, in the config file or the environment"
                    .to_string(),
            });
        }
        let path = self.parsed("path", None, |v| {
            if v.is_empty() {
                Ok(None)
            } else if !v.starts_with('/') || v.contains(['?', '#', ' ']) {
                Err(format!(
                    "must be a request path starting with / (no query), got `{v}`"
                ))
            } else {
                Ok(Some(v.to_string()))
            }
        })?;
        let state_path = match self.sources.path("receive_state_file") {
            Some((path, _)) => path,
            None => self.default_receive_state_path()?,
        };
        let quarantine_dir = match self.sources.path("quarantine_dir") {
            Some((path, _)) => path,
            None => state_path.with_extension("quarantine"),
        };
        let state = StateSettings {
            path: state_path,
            ..self.state_settings()?
        };
        Ok(ReceiveSettings {
            listen,
            tls,
            client_ca,
            auth,
            path,
            max_body_bytes: self.parsed("max_body_bytes", DEFAULT_MAX_BODY_BYTES, |v| {
                let bytes = parse_bytes(v)?;
                if bytes > 1024 * 1024 * 1024 {
                    return Err(format!("must be at most 1GiB, got `{v}`"));
                }
                Ok(bytes)
            })?,
            max_connections: self.parsed("max_connections", DEFAULT_MAX_CONNECTIONS, |v| {
                parse_in_range(v, 1, 65_536)
            })?,
            state,
            quarantine_dir,
            summary_interval: self.parsed("summary_interval", Duration::from_secs(300), |v| {
                parse_duration_in(v, Duration::from_secs(1), Duration::from_secs(86_400))
            })?,
        })
    }

    fn invalid(&self, key: &'static str, problem: &str) -> ConfigError {
        ConfigError::Invalid {
            key,
            origin: self
                .sources
                .raw(key)
                .map_or(Origin::Default, |(_, origin)| origin),
            problem: problem.to_string(),
        }
    }

    fn existing_file(&self, key: &'static str) -> Result<Option<PathBuf>, ConfigError> {
        match self.sources.path(key) {
            Some((path, origin)) if !path.is_file() => Err(ConfigError::Invalid {
                key,
                origin,
                problem: format!("points to {}, which is not a readable file", path.display()),
            }),
            other => Ok(other.map(|(path, _)| path)),
        }
    }

    /// TLS unless plain HTTP was asked for explicitly, and that only on loopback: DataStream
    /// only pushes over TLS, so plain HTTP is for a TLS-terminating proxy on the same host.
    fn tls_files(
        &self,
        plain_http: bool,
        listen: &SocketAddr,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        let cert = self.existing_file("tls_cert")?;
        let key = self.existing_file("tls_key")?;
        if plain_http {
            if !listen.ip().is_loopback() {
                return Err(self.invalid(
                    "plain_http",
                    &format!(
                        "is only allowed when `listen` is a loopback address (for a reverse \
                         proxy on this host that terminates TLS), but listen is {listen}"
                    ),
                ));
            }
            if cert.is_some() || key.is_some() {
                return Err(self.invalid(
                    "plain_http",
                    "is set together with tls_cert/tls_key: choose one (unset plain_http to \
                     serve TLS)",
                ));
            }
            return Ok(None);
        }
        let hint = |key: &str| {
            format!(
                "receive serves HTTPS: set {key} (a PEM file) with --{} or in the config file, or \
                 set plain_http with a loopback `listen` behind a TLS-terminating proxy",
                key.replace('_', "-")
            )
        };
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, _) => Err(ConfigError::Missing {
                key: "tls_cert",
                hint: hint("tls_cert"),
            }),
            (_, None) => Err(ConfigError::Missing {
                key: "tls_key",
                hint: hint("tls_key"),
            }),
        }
    }

    fn push_auth(&self) -> Result<PushAuth, ConfigError> {
        let secret = |key: &'static str| -> Result<Option<Secret>, ConfigError> {
            match self.sources.raw(key) {
                None => Ok(None),
                Some((value, origin)) if value.trim().is_empty() => Err(ConfigError::Invalid {
                    key,
                    origin,
                    problem: "is empty".to_string(),
                }),
                Some((value, _)) => Ok(Some(Secret::new(value.trim()))),
            }
        };
        let header_name = self.parsed("auth_header", "Authorization".to_string(), |v| {
            let token = !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if token {
                Ok(v.to_string())
            } else {
                Err(format!(
                    "must be an HTTP header name such as X-Akamai-Token, got `{v}`"
                ))
            }
        })?;
        let header = secret("auth_token")?.map(|token| (header_name.clone(), token));
        let user = self.parsed("basic_user", None, |v| {
            if v.is_empty() || v.contains(':') {
                Err("must be a non-empty user name without `:`".to_string())
            } else {
                Ok(Some(v.to_string()))
            }
        })?;
        let basic = match (user, secret("basic_password")?) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    key: "basic_password",
                    hint: "basic_user is set: set basic_password in the config file or \
                           AKAMAI_SIEM_BASIC_PASSWORD (never a flag)"
                        .to_string(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    key: "basic_user",
                    hint: "basic_password is set: set basic_user too (--basic-user or the \
                           config file)"
                        .to_string(),
                });
            }
        };
        if header.is_some() && basic.is_some() && header_name.eq_ignore_ascii_case("authorization")
        {
            return Err(self.invalid(
                "auth_header",
                "is Authorization, which Basic authentication uses too: with both a token and \
                 basic_user set, name another header for the token (e.g. X-Akamai-Token)",
            ));
        }
        Ok(PushAuth { header, basic })
    }

    /// Like fetch's state, beside the config file and named after the section, with a
    /// `receive` suffix: the two routes never share a journal or a lock.
    fn default_receive_state_path(&self) -> Result<PathBuf, ConfigError> {
        let fetch_state = self
            .default_state_path()
            .map_err(|_| ConfigError::Missing {
                key: "receive_state_file",
                hint: "no config file was found to keep the receiver's state beside: pass \
                   --receive-state PATH"
                    .to_string(),
            })?;
        Ok(fetch_state.with_file_name(format!(
            "akamai-siem-{}.receive.state",
            sanitise(self.sources.section())
        )))
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("must be true or false, got `{value}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resolve::tests::environment;
    use crate::config::{Overrides, Sources};
    use std::os::unix::fs::PermissionsExt;

    /// The receive settings for a config file body and flags, or the error's text.
    fn receive(ini: &str, flags: &[(&'static str, &str)]) -> Result<ReceiveSettings, String> {
        let dir = tempfile::tempdir().unwrap();
        for name in ["cert.pem", "key.pem"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let config = dir.path().join("akamai_config.ini");
        std::fs::write(&config, format!("[default]\n{ini}")).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let overrides = Overrides {
            values: flags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            ..Overrides::default()
        };
        let sources = Sources::load(&overrides, environment(dir.path())).unwrap();
        Resolver::new(&sources).receive().map_err(|e| e.to_string())
    }

    const TLS: &str = "tls_cert = cert.pem\ntls_key = key.pem\n";

    #[test]
    fn defaults_keep_their_own_state_beside_the_config() {
        let settings = receive(&format!("{TLS}auth_token = t0ken\n"), &[]).unwrap();
        assert_eq!(settings.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(settings.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        let state = settings.state.path.file_name().unwrap().to_str().unwrap();
        assert_eq!(state, "akamai-siem-default.receive.state");
        let quarantine = settings
            .quarantine_dir
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(quarantine, "akamai-siem-default.receive.quarantine");
        let (header, token) = settings.auth.header.unwrap();
        assert_eq!(
            (header.as_str(), token.expose()),
            ("Authorization", "t0ken")
        );
        assert!(settings.auth.basic.is_none() && settings.path.is_none());
    }

    #[test]
    fn some_authentication_is_required() {
        let error = receive(TLS, &[]).unwrap_err();
        assert!(
            error.contains("auth_token") && error.contains("client_ca"),
            "{error}"
        );
        let error = receive(&format!("{TLS}basic_user = u\n"), &[]).unwrap_err();
        assert!(error.contains("basic_password"), "{error}");
        let both = format!("{TLS}auth_token = t\nbasic_user = u\nbasic_password = p\n");
        let error = receive(&both, &[]).unwrap_err();
        assert!(error.contains("auth_header"), "{error}");
        let settings = receive(&both, &[("auth_header", "X-Akamai-Token")]).unwrap();
        assert!(settings.auth.header.is_some() && settings.auth.basic.is_some());
        let error = receive(&format!("{TLS}auth_token = t\n"), &[("auth_header", "a b")]);
        assert!(error.unwrap_err().contains("header name"));
    }

    #[test]
    fn plain_http_only_on_loopback_and_tls_otherwise() {
        let error = receive("auth_token = t\n", &[]).unwrap_err();
        assert!(error.contains("tls_cert"), "{error}");
        let plain = [("plain_http", "true"), ("listen", "127.0.0.1:8080")];
        let settings = receive("auth_token = t\n", &plain).unwrap();
        assert!(settings.tls.is_none());
        let error = receive("auth_token = t\n", &[("plain_http", "true")]).unwrap_err();
        assert!(error.contains("loopback"), "{error}");
        let error = receive(&format!("{TLS}auth_token = t\n"), &plain).unwrap_err();
        assert!(error.contains("choose one"), "{error}");
        let error = receive("auth_token = t\n", &[("listen", "localhost")]).unwrap_err();
        assert!(error.contains("IP address and port"), "{error}");
    }

    #[test]
    fn limits_and_paths_are_checked() {
        let ok = format!("{TLS}auth_token = t\n");
        let settings = receive(&ok, &[("max_body_bytes", "1MiB"), ("path", "/ds")]).unwrap();
        assert_eq!(settings.max_body_bytes, 1024 * 1024);
        assert_eq!(settings.path.as_deref(), Some("/ds"));
        assert!(receive(&ok, &[("max_body_bytes", "2GiB")]).is_err());
        assert!(receive(&ok, &[("path", "ds")]).is_err());
        assert!(receive(&ok, &[("max_connections", "0")]).is_err());
        assert!(receive(&ok, &[("client_ca", "missing.pem")]).is_err());
    }
}
