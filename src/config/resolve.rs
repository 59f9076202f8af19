//! Loading the layers and answering "what is the raw value of this key, and from where?".

use super::{ConfigError, ENV_NOT_KEYS, Ini, KEYS, Origin, env_name, find_key};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the command line said, before any parsing of values.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    /// The section this [`Sources`] reads: the first `--section`, if any.
    pub section: Option<String>,
    /// Every `--section` given: a run over several is a run over several tenants.
    pub sections: Vec<String>,
    /// `--all-sections`: every section of the config file that has credentials.
    pub all_sections: bool,
    /// `(key, raw value)` for every flag given; keys are names from [`KEYS`].
    pub values: Vec<(&'static str, String)>,
}

/// The file name the Python wodle used; kept so its config works unchanged.
pub const DEFAULT_CONFIG_NAME: &str = "akamai_config.ini";

/// Keys that belong to an API client and so come from the same file as the credentials.
const CREDENTIAL_KEYS: &[&str] = &[
    "host",
    "client_token",
    "client_secret",
    "access_token",
    "max_body",
    "headers_to_sign",
];

#[derive(Debug)]
struct LoadedIni {
    path: PathBuf,
    section: String,
    ini: Ini,
}

impl LoadedIni {
    fn read(path: &Path, section: &str) -> Result<LoadedIni, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let ini = Ini::parse(&text).map_err(|source| ConfigError::Syntax {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(LoadedIni {
            path: path.to_path_buf(),
            section: section.to_string(),
            ini,
        })
    }

    fn get(&self, key: &str) -> Option<(String, Origin)> {
        self.ini.get(&self.section, key).map(|v| {
            (
                v.value.clone(),
                Origin::File {
                    path: self.path.clone(),
                    section: self.section.clone(),
                    line: v.line,
                },
            )
        })
    }

    fn no_section_error(&self, flag: &'static str) -> ConfigError {
        let available: Vec<&str> = self.ini.section_names().collect();
        ConfigError::NoSection {
            path: self.path.clone(),
            section: self.section.clone(),
            available: if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            },
            flag,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    ConfigFile,
    Edgerc,
}

/// All layers, loaded once.
#[derive(Debug)]
pub struct Sources {
    section: String,
    /// Chosen by `--section` or `AKAMAI_SIEM_SECTION`, not the implicit `default`.
    section_is_explicit: bool,
    config: Option<LoadedIni>,
    edgerc: Option<LoadedIni>,
    credentials_from: CredentialSource,
    env: BTreeMap<String, String>,
    flags: Vec<(&'static str, String)>,
    cwd: PathBuf,
    warnings: Vec<String>,
}

/// The process environment the resolver may read. Tests pass their own.
#[derive(Debug, Clone)]
pub struct Environment {
    pub vars: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
    pub exe_dir: Option<PathBuf>,
}

impl Environment {
    pub fn from_process() -> Environment {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("AKAMAI_SIEM_"))
            .collect();
        Environment {
            vars,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            home: std::env::home_dir(),
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf)),
        }
    }
}

impl Sources {
    pub fn load(overrides: &Overrides, env: Environment) -> Result<Sources, ConfigError> {
        let chosen = overrides
            .section
            .clone()
            .or_else(|| env.vars.get("AKAMAI_SIEM_SECTION").cloned());
        let section_is_explicit = chosen.is_some();
        let section = chosen.unwrap_or_else(|| "default".to_string());
        let config_path = find_config_file(overrides, &env)?;
        let config = match &config_path {
            Some(path) => Some(LoadedIni::read(path, &section)?),
            None => None,
        };

        let mut sources = Sources {
            section: section.clone(),
            section_is_explicit,
            config,
            edgerc: None,
            credentials_from: CredentialSource::ConfigFile,
            env: env.vars,
            flags: overrides.values.clone(),
            cwd: env.cwd,
            warnings: Vec::new(),
        };
        sources.load_edgerc(env.home.as_deref())?;
        if let Some(config) = &sources.config
            && !config.ini.has_section(&section)
            && sources.credentials_from == CredentialSource::ConfigFile
        {
            return Err(config.no_section_error("--section"));
        }
        sources.warn_about_unknown_keys();
        sources.warn_about_unknown_variables();
        sources.warn_about_readable_secrets();
        Ok(sources)
    }

    /// Credentials come from exactly one file: mixing a token from one with a secret from
    /// another only ever produces a 401 that is hard to explain.
    fn load_edgerc(&mut self, home: Option<&Path>) -> Result<(), ConfigError> {
        let explicit = self.raw_from_layers("edgerc", false);
        let edgerc_section = self
            .raw_from_layers("edgerc_section", false)
            .map(|(value, _)| value)
            .unwrap_or_else(|| self.section.clone());
        let config_has_credentials = self.config.as_ref().is_some_and(|c| {
            ["client_token", "client_secret", "access_token"]
                .iter()
                .any(|k| c.get(k).is_some())
        });

        let path = match explicit {
            Some((value, origin)) => {
                let path = self.resolve_path(&value, &origin);
                if !path.exists() {
                    return Err(ConfigError::Invalid {
                        key: "edgerc",
                        origin,
                        problem: format!("points to {}, which does not exist", path.display()),
                    });
                }
                path
            }
            None if config_has_credentials => return Ok(()),
            None => match home.map(|h| h.join(".edgerc")) {
                Some(path) if path.is_file() => path,
                _ => return Ok(()),
            },
        };
        let edgerc = LoadedIni::read(&path, &edgerc_section)?;
        if !edgerc.ini.has_section(&edgerc_section) {
            return Err(edgerc.no_section_error("--edgerc-section"));
        }
        self.edgerc = Some(edgerc);
        self.credentials_from = CredentialSource::Edgerc;
        Ok(())
    }

    /// Flag, then environment, then file: the value and where it came from.
    pub fn raw(&self, key: &'static str) -> Option<(String, Origin)> {
        self.raw_from_layers(key, true)
    }

    fn raw_from_layers(&self, key: &'static str, include_edgerc: bool) -> Option<(String, Origin)> {
        if let Some((_, value)) = self.flags.iter().rev().find(|(k, _)| *k == key) {
            let flag = find_key(key).and_then(|k| k.flag).unwrap_or("--");
            return Some((value.clone(), Origin::Flag(flag)));
        }
        let env_key = env_name(key);
        if let Some(value) = self.env.get(&env_key) {
            return Some((value.clone(), Origin::Env(env_key)));
        }
        let from_edgerc = include_edgerc
            && self.credentials_from == CredentialSource::Edgerc
            && CREDENTIAL_KEYS.contains(&key);
        if from_edgerc {
            return self.edgerc.as_ref().and_then(|e| e.get(key));
        }
        self.config.as_ref().and_then(|c| c.get(key))
    }

    /// A path value: relative paths in a file are relative to that file's folder, so a config
    /// works the same whatever directory the scheduler starts the tool in.
    pub fn path(&self, key: &'static str) -> Option<(PathBuf, Origin)> {
        self.raw(key)
            .filter(|(value, _)| !value.trim().is_empty())
            .map(|(value, origin)| (self.resolve_path(&value, &origin), origin))
    }

    fn resolve_path(&self, value: &str, origin: &Origin) -> PathBuf {
        let path = PathBuf::from(value.trim());
        if path.is_absolute() {
            return path;
        }
        match origin {
            Origin::File { path: file, .. } => {
                file.parent().map(|dir| dir.join(&path)).unwrap_or(path)
            }
            _ => self.cwd.join(path),
        }
    }

    pub fn section(&self) -> &str {
        &self.section
    }

    /// The section was named (`--section`, `AKAMAI_SIEM_SECTION`, `--all-sections`) rather than
    /// taken as the implicit `default`: its events then say which tenant they belong to.
    pub fn section_is_explicit(&self) -> bool {
        self.section_is_explicit
    }

    /// Whether this section has API credentials, its own, inherited from `[DEFAULT]`, from its
    /// `.edgerc` section or from the environment.
    pub fn has_credentials(&self) -> bool {
        self.raw("client_token").is_some()
    }

    /// `field.NAME = value` lines of the section (its own and inherited), by name.
    pub fn static_fields(&self) -> Vec<(String, String, Origin)> {
        let Some(config) = &self.config else {
            return Vec::new();
        };
        config
            .ini
            .keys(&config.section)
            .into_iter()
            .filter_map(|key| {
                let name = key.strip_prefix(STATIC_FIELD_PREFIX)?;
                let (value, origin) = config.get(key)?;
                Some((name.to_string(), value, origin))
            })
            .collect()
    }

    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_ref().map(|c| c.path.as_path())
    }

    pub fn edgerc_path(&self) -> Option<&Path> {
        self.edgerc.as_ref().map(|e| e.path.as_path())
    }

    pub fn credentials_from(&self) -> CredentialSource {
        self.credentials_from
    }

    /// Where an operator should put a missing key, for the error message.
    pub fn hint_for(&self, key: &'static str) -> String {
        let file_place = match (self.credentials_from, CREDENTIAL_KEYS.contains(&key)) {
            (CredentialSource::Edgerc, true) => self
                .edgerc
                .as_ref()
                .map(|e| format!("[{}] of {}", e.section, e.path.display())),
            _ => self
                .config
                .as_ref()
                .map(|c| format!("[{}] of {}", c.section, c.path.display())),
        }
        .unwrap_or_else(|| {
            format!(
                "[{}] of {DEFAULT_CONFIG_NAME} (none was found)",
                self.section
            )
        });
        let mut places = vec![format!("add `{key} = …` to {file_place}")];
        places.push(format!("set {}", env_name(key)));
        if let Some(flag) = find_key(key).and_then(|k| k.flag) {
            places.push(format!("pass {flag}"));
        }
        places.join(", or ")
    }

    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn warn_about_unknown_keys(&mut self) {
        let Some(config) = &self.config else { return };
        for name in config.ini.keys(&config.section) {
            if find_key(name).is_none() && !name.starts_with(STATIC_FIELD_PREFIX) {
                let line = config.ini.get(&config.section, name).map_or(0, |v| v.line);
                let suggestion = closest_key(name)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                self.warnings.push(format!(
                    "{} [{}] line {line}: unknown key `{name}` is ignored{suggestion}",
                    config.path.display(),
                    config.section
                ));
            }
        }
    }

    /// A misspelt variable is as silently ignored as a misspelt key, and as surprising. Its
    /// value is never shown: it may be a secret.
    fn warn_about_unknown_variables(&mut self) {
        let known = |name: &str| {
            ENV_NOT_KEYS.contains(&name) || KEYS.iter().any(|k| env_name(k.name) == name)
        };
        for name in self.env.keys().filter(|name| !known(name)) {
            let suggestion = closest_variable(name)
                .map(|v| format!("; did you mean {v}?"))
                .unwrap_or_default();
            self.warnings.push(format!(
                "environment variable {name} is not a setting and is ignored{suggestion}"
            ));
        }
    }

    fn warn_about_readable_secrets(&mut self) {
        for file in [&self.config, &self.edgerc].into_iter().flatten() {
            let holds_secret = [
                "client_secret",
                "access_token",
                "client_token",
                "http_secret_header",
            ]
            .iter()
            .any(|k| file.ini.get(&file.section, k).is_some());
            if holds_secret && readable_by_others(&file.path) {
                self.warnings.push(format!(
                    "{} holds API credentials and is readable by group or others: \
                     run `chmod 600 {}`",
                    file.path.display(),
                    file.path.display()
                ));
            }
        }
    }
}

/// `field.NAME = value`: a label added to every event of the section.
pub const STATIC_FIELD_PREFIX: &str = "field.";

/// The sources of every tenant a run covers: one section (the default, or the one `--section`
/// names), every `--section` given, or with `--all-sections` every section of the config file
/// that has credentials (its own, inherited, or through its `.edgerc` section).
pub fn load_tenants(overrides: &Overrides, env: Environment) -> Result<Vec<Sources>, ConfigError> {
    let load = |section: &str| {
        let mut one = overrides.clone();
        one.section = Some(section.to_string());
        Sources::load(&one, env.clone())
    };
    if overrides.all_sections {
        let Some(path) = find_config_file(overrides, &env)? else {
            return Err(ConfigError::Usage(
                "--all-sections needs a config file with sections (pass --config PATH)".into(),
            ));
        };
        let names: Vec<String> = LoadedIni::read(&path, "")?
            .ini
            .section_names()
            .map(str::to_string)
            .collect();
        let mut tenants = Vec::new();
        for name in names {
            let sources = load(&name)?;
            if sources.has_credentials() {
                tenants.push(sources);
            }
        }
        if tenants.is_empty() {
            return Err(ConfigError::Usage(format!(
                "--all-sections: no section of {} has credentials",
                path.display()
            )));
        }
        return Ok(tenants);
    }
    if overrides.sections.len() <= 1 {
        return Ok(vec![Sources::load(overrides, env)?]);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut tenants = Vec::new();
    for name in &overrides.sections {
        if seen.insert(name.clone()) {
            tenants.push(load(name)?);
        }
    }
    Ok(tenants)
}

fn find_config_file(
    overrides: &Overrides,
    env: &Environment,
) -> Result<Option<PathBuf>, ConfigError> {
    let explicit = match (&overrides.config, env.vars.get("AKAMAI_SIEM_CONFIG")) {
        (Some(path), _) => Some((path.clone(), Origin::Flag("--config"))),
        (None, Some(path)) => Some((
            PathBuf::from(path),
            Origin::Env("AKAMAI_SIEM_CONFIG".to_string()),
        )),
        (None, None) => None,
    };
    if let Some((path, origin)) = explicit {
        let path = if path.is_absolute() {
            path
        } else {
            env.cwd.join(path)
        };
        if !path.is_file() {
            return Err(ConfigError::Invalid {
                key: "config",
                origin,
                problem: format!("points to {}, which is not a readable file", path.display()),
            });
        }
        return Ok(Some(path));
    }
    let candidates = [Some(env.cwd.clone()), env.exe_dir.clone()];
    Ok(candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join(DEFAULT_CONFIG_NAME))
        .find(|path| path.is_file()))
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    false
}

/// A key within two edits of a known one is probably a typo of it.
fn closest_key(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (k.name, edit_distance(name, k.name)))
        .filter(|(_, distance)| *distance <= 2)
        .min_by_key(|(_, distance)| *distance)
        .map(|(k, _)| k)
}

fn closest_variable(name: &str) -> Option<String> {
    KEYS.iter()
        .map(|k| env_name(k.name))
        .chain(ENV_NOT_KEYS.iter().map(|v| v.to_string()))
        .map(|v| (edit_distance(name, &v), v))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, v)| v)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
pub(crate) mod tests;
