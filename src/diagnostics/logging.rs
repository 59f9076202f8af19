//! Diagnostics: never on stdout, and never as free text in Wazuh's event stream.
//!
//! Three shapes: text on stderr for people, text with timestamps in `log_file`, or one JSON
//! object per line when stderr is the same pipe as stdout (Wazuh's command wodle ingests every
//! stderr line as an event). JSON diagnostics carry their own discriminator, `collector`, so the
//! shipped rules turn them into collector-health alerts instead of junk events:
//!
//! `{"integration":"akamai","collector":{"level":"error","code":"auth_failed","message":"…"}}`
//!
//! The target can change once the configuration is known, so even an error in the config file
//! itself reaches Wazuh in the right shape.

use crate::config::{Diagnostics, LogLevel, LogSettings};
use crate::sink::PIPE_LOCK;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Debug)]
enum Target {
    StderrText,
    StderrJson,
    File(File),
}

struct Config {
    target: Target,
    level: Level,
}

static CONFIG: Mutex<Option<Config>> = Mutex::new(None);

thread_local! {
    /// The tenant whose run this thread does: every diagnostic it reports names it.
    static TENANT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Name `tenant` in every diagnostic this thread reports from now on (`None`: no tenant).
pub fn set_tenant(tenant: Option<&str>) {
    TENANT.with(|current| *current.borrow_mut() = tenant.map(str::to_string));
}

fn current_tenant() -> Option<String> {
    TENANT.with(|current| current.borrow().clone())
}

/// Start logging before the configuration is read: stderr, shaped by what stderr is.
pub fn init_early(diagnostics: Diagnostics) {
    set(Config {
        target: stderr_target(diagnostics),
        level: Level::INFO,
    });
    let subscriber = tracing_subscriber::registry().with(DiagnosticsLayer);
    // A second init (tests run many commands in one process) keeps the first subscriber, which
    // reads the same CONFIG: harmless.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Switch to the configured target and level. The error is the log file's own: the caller
/// knows where `log_file` was set and names it.
pub fn configure(settings: &LogSettings) -> io::Result<()> {
    let target = match &settings.file {
        Some(path) => Target::File(open_log_file(path)?),
        None => stderr_target(settings.diagnostics),
    };
    set(Config {
        target,
        level: to_level(settings.level),
    });
    Ok(())
}

fn set(config: Config) {
    *lock() = Some(config);
}

fn lock() -> std::sync::MutexGuard<'static, Option<Config>> {
    CONFIG.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_log_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

fn stderr_target(diagnostics: Diagnostics) -> Target {
    match diagnostics {
        Diagnostics::Text => Target::StderrText,
        Diagnostics::Json => Target::StderrJson,
        Diagnostics::Auto if stderr_is_stdout() => Target::StderrJson,
        Diagnostics::Auto => Target::StderrText,
    }
}

/// True under Wazuh's wodle (one pipe for both) and `cmd >> file 2>&1`; false on a terminal,
/// where both usually point at the same tty but a person is reading.
pub fn stderr_is_stdout() -> bool {
    if io::stderr().is_terminal() {
        return false;
    }
    let identity = |fd| {
        // SAFETY: fstat fills the struct we own for a descriptor we only inspect.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        (unsafe { libc::fstat(fd, &mut stat) } == 0).then_some((stat.st_dev, stat.st_ino))
    };
    match (identity(1), identity(2)) {
        (Some(out), Some(err)) => out == err,
        _ => false,
    }
}

fn to_level(level: LogLevel) -> Level {
    match level {
        LogLevel::Error => Level::ERROR,
        LogLevel::Warn => Level::WARN,
        LogLevel::Info => Level::INFO,
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Trace => Level::TRACE,
    }
}

struct DiagnosticsLayer;

#[derive(Default)]
struct Fields {
    tenant: Option<String>,
    message: String,
    code: Option<String>,
    extra: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "code" => self.code = Some(value.to_string()),
            name => self.extra.push((name, value.to_string())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            "code" => self.code = Some(text.trim_matches('"').to_string()),
            name => self.extra.push((name, text)),
        }
    }
}

impl<S: Subscriber> Layer<S> for DiagnosticsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        // Only our own diagnostics: dependencies' logs (rustls, hyper) are noise for operators.
        if !metadata.target().starts_with("akamai_siem") {
            return;
        }
        let mut guard = lock();
        let Some(config) = guard.as_mut() else {
            return;
        };
        if *metadata.level() > config.level {
            return;
        }
        let mut fields = Fields {
            tenant: current_tenant(),
            ..Fields::default()
        };
        event.record(&mut fields);
        let level = metadata.level();
        match &mut config.target {
            Target::StderrText => {
                let _pipe = PIPE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
                let _ = io::stderr().write_all(text_line(level, &fields, false).as_bytes());
            }
            Target::StderrJson => {
                let _pipe = PIPE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
                let _ = io::stderr().write_all(json_line(level, &fields).as_bytes());
            }
            Target::File(file) => {
                let _ = file.write_all(text_line(level, &fields, true).as_bytes());
            }
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn text_line(level: &Level, fields: &Fields, timestamped: bool) -> String {
    let mut line = String::new();
    if timestamped {
        let now = jiff::Timestamp::now();
        let _ = write!(
            line,
            "{} {:5} ",
            now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            level_name(level).to_uppercase()
        );
    } else {
        let _ = write!(line, "akamai-siem: {}: ", level_name(level));
    }
    if let Some(tenant) = &fields.tenant {
        let _ = write!(line, "[{tenant}] ");
    }
    line.push_str(&fields.message);
    for (name, value) in &fields.extra {
        let _ = write!(line, " {name}={value}");
    }
    line.push('\n');
    line
}

fn json_line(level: &Level, fields: &Fields) -> String {
    let mut collector = serde_json::Map::new();
    collector.insert("level".into(), level_name(level).into());
    collector.insert(
        "code".into(),
        fields.code.clone().unwrap_or_else(|| "log".into()).into(),
    );
    // The tenant leads the message too: the collector-health rules describe an alert by its
    // message, so the alert names the tenant it concerns.
    let message = match &fields.tenant {
        Some(tenant) => format!("[{tenant}] {}", fields.message),
        None => fields.message.clone(),
    };
    collector.insert("message".into(), message.into());
    for (name, value) in &fields.extra {
        collector.insert((*name).to_string(), value.clone().into());
    }
    let mut line = String::from("{\"integration\":\"akamai\",");
    if let Some(tenant) = &fields.tenant {
        let _ = write!(
            line,
            "\"tenant\":{},",
            serde_json::Value::from(tenant.as_str())
        );
    }
    line.push_str("\"collector\":");
    line.push_str(&serde_json::Value::Object(collector).to_string());
    line.push_str("}\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, code: Option<&str>) -> Fields {
        Fields {
            tenant: None,
            message: message.into(),
            code: code.map(Into::into),
            extra: vec![("events", "5".into())],
        }
    }

    #[test]
    fn json_diagnostics_start_with_the_wazuh_discriminator() {
        let line = json_line(
            &Level::ERROR,
            &fields("bad \"creds\"\nnext", Some("auth_failed")),
        );
        assert!(
            line.starts_with("{\"integration\":\"akamai\",\"collector\":{"),
            "{line}"
        );
        assert!(
            line.ends_with("}\n") && line.matches('\n').count() == 1,
            "{line}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["collector"]["code"], "auth_failed");
        assert_eq!(parsed["collector"]["level"], "error");
        assert_eq!(parsed["collector"]["events"], "5");
        assert_eq!(parsed["collector"]["message"], "bad \"creds\"\nnext");
    }

    #[test]
    fn a_tenants_diagnostics_name_it_in_the_text_and_in_the_json() {
        let mut tagged = fields("offset expired", Some("recovering"));
        tagged.tenant = Some("acme-eu".into());
        let line = json_line(&Level::WARN, &tagged);
        assert!(
            line.starts_with("{\"integration\":\"akamai\",\"tenant\":\"acme-eu\",\"collector\":{"),
            "{line}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["collector"]["message"], "[acme-eu] offset expired");
        assert_eq!(
            text_line(&Level::WARN, &tagged, false),
            "akamai-siem: warn: [acme-eu] offset expired events=5\n"
        );
        // Set per thread: another thread's diagnostics are not tagged.
        set_tenant(Some("beta"));
        assert_eq!(current_tenant().as_deref(), Some("beta"));
        assert_eq!(std::thread::spawn(current_tenant).join().unwrap(), None);
        set_tenant(None);
    }

    #[test]
    fn text_lines_are_single_lines_with_fields() {
        let line = text_line(&Level::WARN, &fields("falling behind", None), false);
        assert_eq!(line, "akamai-siem: warn: falling behind events=5\n");
        let stamped = text_line(&Level::INFO, &fields("done", None), true);
        assert!(stamped.contains(" INFO  done events=5"), "{stamped}");
    }
}
