//! Errors to exit codes and one clear diagnostic.
//!
//! Wazuh's command wodle only logs a warning for a non-zero exit but throws away all output of a
//! command that exits 127, so 127 is never used. The codes are documented in README.md.

use crate::checkpoint::{LockError, StateError};
use crate::config::ConfigError;
use crate::sink::OutputError;
use crate::source::api::ApiError;
use crate::source::spool::SpoolError;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    Internal,
    Usage,
    Config,
    Auth,
    Api,
    Output,
    State,
    Locked,
    /// The run finished, but events older than the API's 12-hour horizon were lost (a gap was
    /// reported with its exact interval).
    DataLost,
    /// Stopped by SIGINT (130) or SIGTERM (143) after leaving output and state consistent.
    Interrupted(i32),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Internal => 1,
            Exit::Usage => 2,
            Exit::Config => 3,
            Exit::Auth => 4,
            Exit::Api => 5,
            Exit::Output => 6,
            Exit::State => 7,
            Exit::Locked => 8,
            Exit::DataLost => 9,
            Exit::Interrupted(signal) => u8::try_from(128 + signal).unwrap_or(1),
        }
    }

    /// A short name for the code, for diagnostics that rules can match.
    pub fn diagnostic_code(self) -> &'static str {
        match self {
            Exit::Success => "ok",
            Exit::Internal => "internal_error",
            Exit::Usage => "usage_error",
            Exit::Config => "config_error",
            Exit::Auth => "auth_failed",
            Exit::Api => "api_unavailable",
            Exit::Output => "output_error",
            Exit::State => "state_error",
            Exit::Locked => "locked",
            Exit::DataLost => "gap",
            Exit::Interrupted(_) => "interrupted",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// An error whose diagnostic was already logged (so that what follows it, such as a run's
/// summary line, could come after it); only its exit code is left to give.
#[derive(Debug, thiserror::Error)]
#[error("already reported")]
pub struct Reported(pub Exit);

/// A failure whose message already says what to fix, with the exit code it stands for: for
/// checks that find, before the real work, what the real work would fail on.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn error(exit: Exit, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failure {
            exit,
            message: message.into(),
        })
    }
}

/// The exit code for an error: the first typed error in its chain decides.
pub fn classify(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if let Some(Reported(exit)) = cause.downcast_ref::<Reported>() {
            return *exit;
        }
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return failure.exit;
        }
        if let Some(error) = cause.downcast_ref::<ConfigError>() {
            return match error {
                ConfigError::Usage(_) => Exit::Usage,
                _ => Exit::Config,
            };
        }
        if let Some(error) = cause.downcast_ref::<ApiError>() {
            return match error {
                ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => Exit::Auth,
                ApiError::UnknownConfig { .. } | ApiError::BadRequest { .. } => Exit::Config,
                ApiError::Setup(_) => Exit::Config,
                _ => Exit::Api,
            };
        }
        // A spool file is local disk, like the output: not the network, not retried.
        if cause.downcast_ref::<OutputError>().is_some()
            || cause.downcast_ref::<SpoolError>().is_some()
        {
            return Exit::Output;
        }
        if let Some(error) = cause.downcast_ref::<LockError>() {
            return match error {
                LockError::Held { .. } => Exit::Locked,
                LockError::Io { .. } => Exit::State,
            };
        }
        if cause.downcast_ref::<StateError>().is_some() {
            return Exit::State;
        }
    }
    Exit::Internal
}

/// Log the error (in whatever shape diagnostics currently take) and return its exit code.
pub fn report(error: &anyhow::Error) -> ExitCode {
    if let Some(Reported(exit)) = error.downcast_ref::<Reported>() {
        return (*exit).into();
    }
    log(error).into()
}

/// Log the error's one diagnostic and say which exit code it means.
pub fn log(error: &anyhow::Error) -> Exit {
    let exit = classify(error);
    let code = exit.diagnostic_code();
    let message = describe_chain(error);
    match exit {
        Exit::Locked => tracing::warn!(code, "{message}"),
        Exit::Internal => tracing::error!(
            code,
            "{message} (this looks like a bug: please report it with this message)"
        ),
        _ => tracing::error!(code, "{message}"),
    }
    exit
}

/// The error and its causes, each said once. Many errors print their own source (thiserror's
/// `{source}`, an io::Error rebuilt with its text), so anyhow's `{:#}` would repeat it:
/// `cannot read x: Is a directory (os error 21): Is a directory (os error 21)`. A cause whose
/// text the message already holds adds nothing and is skipped.
pub fn describe_chain(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn typed_errors_decide_the_code_through_context() {
        let error = anyhow::Error::new(ApiError::Unauthorized { detail: "x".into() })
            .context("fetching page 3");
        assert_eq!(classify(&error), Exit::Auth);
        let error: anyhow::Result<()> =
            Err(ConfigError::Usage("bad".into())).context("while starting");
        assert_eq!(classify(&error.unwrap_err()), Exit::Usage);
        assert_eq!(classify(&anyhow::anyhow!("something odd")), Exit::Internal);
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let error = anyhow::Error::new(ConfigError::Unreadable {
            path: "/etc/x.ini".into(),
            source: io,
        })
        .context("loading the configuration");
        let message = describe_chain(&error);
        assert_eq!(
            message,
            "loading the configuration: cannot read /etc/x.ini: permission denied"
        );
        let distinct = anyhow::anyhow!("inner").context("outer");
        assert_eq!(describe_chain(&distinct), "outer: inner");
    }

    #[test]
    fn a_failure_carries_its_own_exit_code() {
        let error = Failure::error(Exit::Output, "cannot write x").context("checking");
        assert_eq!(classify(&error), Exit::Output);
        assert_eq!(describe_chain(&error), "checking: cannot write x");
    }

    #[test]
    fn no_code_is_127_and_all_differ() {
        let all = [
            Exit::Success,
            Exit::Internal,
            Exit::Usage,
            Exit::Config,
            Exit::Auth,
            Exit::Api,
            Exit::Output,
            Exit::State,
            Exit::Locked,
            Exit::DataLost,
            Exit::Interrupted(2),
            Exit::Interrupted(15),
        ];
        let codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        assert!(!codes.contains(&127));
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert_eq!(Exit::Interrupted(15).code(), 143);
    }

    #[test]
    fn transient_api_failures_are_api_errors_and_404_is_configuration() {
        let server = anyhow::Error::new(ApiError::Server {
            status: 503,
            detail: "x".into(),
        });
        assert_eq!(classify(&server), Exit::Api);
        let unknown = anyhow::Error::new(ApiError::UnknownConfig {
            detail: "x".into(),
            config_ids: "1".into(),
        });
        assert_eq!(classify(&unknown), Exit::Config);
    }
}
