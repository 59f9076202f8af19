//! The commands: each one asks the configuration for what it needs and wires the collector,
//! the pipeline or the state to it. This file turns the command line into one of them, and its
//! outcome into an exit code.

mod check;
mod decode;
mod docs;
mod fetch;
mod receive;
mod state;

use crate::cli::{Cli, Command, StateCommand};
use crate::config::{
    ConfigError, Diagnostics, Environment, Origin, Resolver, Sources, load_tenants,
};
use crate::diagnostics::error_reporting::{self, Exit};
use crate::diagnostics::logging;
use std::process::ExitCode;

/// Run the command line and turn the outcome into an exit code.
pub fn main(cli: Cli) -> ExitCode {
    logging::init_early(early_diagnostics(&cli));
    report_panics_as_diagnostics();
    match run(cli) {
        Ok(exit) => exit.into(),
        Err(error) => error_reporting::report(&error),
    }
}

/// The command line could not be parsed. Under Wazuh's wodle even this must not reach the
/// event stream as free text.
pub fn main_with_usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || !logging::stderr_is_stdout()
    {
        error.exit();
    }
    logging::init_early(Diagnostics::Json);
    let message = error.render().to_string();
    let first_line = message.lines().next().unwrap_or("invalid command line");
    tracing::error!(
        code = "usage_error",
        "{first_line} (see akamai-siem --help)"
    );
    Exit::Usage.into()
}

/// A panic is a bug, but its message must still take the diagnostics' shape (JSON under the
/// wodle), and say what to do.
fn report_panics_as_diagnostics() {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            code = "internal_error",
            "internal error{place}: {payload} (a bug: please report it; the state is consistent, \
             the next run repeats what was not committed)"
        );
    }));
}

/// Before the config is read only the flag or the environment can say how to log.
fn early_diagnostics(cli: &Cli) -> Diagnostics {
    let raw = cli
        .settings
        .diagnostics
        .clone()
        .or_else(|| std::env::var("AKAMAI_SIEM_DIAGNOSTICS").ok());
    match raw.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("text") => Diagnostics::Text,
        Some("json") => Diagnostics::Json,
        _ => Diagnostics::Auto,
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    refuse_inapplicable_flags(&cli)?;
    // Generated from the command line alone: no config is needed or read.
    match &cli.command {
        Some(Command::Completions { shell }) => return docs::completions(*shell),
        Some(Command::Man { dir }) => return docs::man(dir.as_deref()),
        _ => {}
    }
    let mut tenants = load_tenants(&cli.overrides(), Environment::from_process())?;
    // One log for the run: the first tenant's settings (a flag, the environment or [DEFAULT]).
    let log_settings = Resolver::new(&tenants[0]).logging()?;
    logging::configure(&log_settings).map_err(|error| log_file_error(&tenants[0], &error))?;
    let mut warnings: Vec<String> = tenants
        .iter_mut()
        .flat_map(Sources::take_warnings)
        .collect();
    warnings.dedup();
    for warning in warnings {
        tracing::warn!(code = "config_warning", "{warning}");
    }
    if tenants.len() > 1 && matches!(cli.command, Some(Command::Receive(_))) {
        return Err(ConfigError::Usage(
            "`receive` serves one section (one listener, one journal): run one receiver per \
             section"
                .into(),
        )
        .into());
    }
    if tenants.len() > 1 && !matches!(cli.command, None | Some(Command::Fetch)) {
        return several(&cli, &tenants);
    }
    let sources = &tenants[0];
    let resolver = Resolver::new(sources);
    match &cli.command {
        None | Some(Command::Fetch) => fetch::run(&cli, &tenants),
        Some(Command::Check) => check::run(&cli, &resolver, sources),
        Some(Command::Decode { file }) => decode::run(&resolver, file.as_deref()),
        Some(Command::State(StateCommand::Show)) => state::show(&resolver),
        Some(Command::State(StateCommand::Reset { from })) => {
            state::reset(&resolver, from.as_deref())
        }
        Some(Command::Receive(_)) => receive::run(&resolver),
        Some(Command::Completions { .. } | Command::Man { .. }) => {
            unreachable!("handled before the config is read")
        }
    }
}

/// `check` and `state` for several tenants: each in turn, under its name; the exit code is the
/// most severe. `decode` works offline and has no tenants.
fn several(cli: &Cli, tenants: &[Sources]) -> anyhow::Result<Exit> {
    use crate::collect::tenants::most_severe;
    let mut exit = Exit::Success;
    for sources in tenants {
        let resolver = Resolver::new(sources);
        let name = resolver
            .tags(true)?
            .tenant
            .expect("a run of several tenants names each");
        println!("== tenant {name} ([{}])", sources.section());
        logging::set_tenant(Some(&name));
        let result = match &cli.command {
            Some(Command::Check) => check::run(cli, &resolver, sources),
            Some(Command::State(StateCommand::Show)) => state::show(&resolver),
            Some(Command::State(StateCommand::Reset { from })) => {
                state::reset(&resolver, from.as_deref())
            }
            Some(Command::Decode { .. }) => Err(anyhow::Error::new(ConfigError::Usage(
                "`decode` works offline and takes one section at most".into(),
            ))),
            None | Some(Command::Fetch) => unreachable!("fetch runs its tenants itself"),
            Some(Command::Receive(_)) => unreachable!("receive refuses several sections"),
            Some(Command::Completions { .. } | Command::Man { .. }) => {
                unreachable!("handled before the config is read")
            }
        };
        let tenant_exit = match result {
            Ok(exit) => exit,
            Err(error) => error_reporting::log(&error),
        };
        logging::set_tenant(None);
        exit = most_severe(exit, tenant_exit);
    }
    Ok(exit)
}

/// The log file is opened before anything else is reported, so its failure names the key and
/// where it was set, like any other invalid value.
fn log_file_error(sources: &Sources, error: &std::io::Error) -> ConfigError {
    let (path, origin) = sources
        .path("log_file")
        .unwrap_or_else(|| (Default::default(), Origin::Default));
    ConfigError::Invalid {
        key: "log_file",
        origin,
        problem: format!(
            "cannot be opened for appending: {}: {error}",
            path.display()
        ),
    }
}

/// A fetch option the command cannot use is refused: ignoring it would let the operator
/// believe it took effect (a `--state` on a replay, a `--limit` on `check`).
fn refuse_inapplicable_flags(cli: &Cli) -> Result<(), ConfigError> {
    let f = &cli.fetch;
    let given = [
        ("--limit", f.limit.is_some()),
        ("--window", f.window.is_some()),
        ("--state", f.state_file.is_some()),
        ("--no-state", f.no_state),
        ("--initial-lookback", f.initial_lookback.is_some()),
        ("--offset-ttl", f.offset_ttl.is_some()),
        ("--overlap", f.overlap.is_some()),
        ("--max-events", f.max_events.is_some()),
        ("--max-bytes", f.max_bytes.is_some()),
        ("--retry-budget", f.retry_budget.is_some()),
        ("--parallel", f.parallel.is_some()),
        ("--from", f.from.is_some()),
        ("--to", f.to.is_some()),
    ];
    const RUN: &[&str] = &[
        "--limit",
        "--max-events",
        "--max-bytes",
        "--retry-budget",
        "--parallel",
    ];
    const STATE: &[&str] = &["--state", "--initial-lookback", "--offset-ttl", "--overlap"];
    let fetching = matches!(cli.command, None | Some(Command::Fetch));
    let (allowed, reason): (Vec<&str>, &str) = match &cli.command {
        _ if fetching && f.from.is_some() => (
            [RUN, &["--from", "--to", "--no-state"]].concat(),
            "a replay (--from), which never reads or writes the state and fetches exactly \
             --from to --to",
        ),
        _ if fetching && f.no_state => (
            [RUN, &["--window", "--no-state"]].concat(),
            "a run with --no-state, which never reads or writes the state",
        ),
        _ if fetching => (
            [RUN, STATE].concat(),
            "a run with state, which continues where the last one stopped (--window sets the \
             one window of a --no-state run)",
        ),
        Some(Command::Check) => (
            vec!["--state", "--no-state"],
            "`check`, which only validates (--state and --no-state choose the state it checks)",
        ),
        Some(Command::Decode { .. }) => (vec![], "`decode`, which works offline"),
        Some(Command::Receive(_)) => (
            vec![],
            "`receive`, which is pushed to and keeps its own state (--receive-state)",
        ),
        Some(Command::Completions { .. } | Command::Man { .. }) => {
            (vec![], "`completions` and `man`, which only print text")
        }
        // clap hands `state reset --from` to the global --from too.
        Some(Command::State(StateCommand::Reset { .. })) => (
            vec!["--state", "--initial-lookback", "--from"],
            "`state reset`, which only resets the state file (--state chooses it)",
        ),
        _ => (
            vec!["--state", "--initial-lookback"],
            "`state show`, which only reads the state file (--state chooses it)",
        ),
    };
    match given
        .iter()
        .find(|(flag, present)| *present && !allowed.contains(flag))
    {
        Some((flag, _)) => Err(ConfigError::Usage(format!(
            "{flag} does not apply to {reason}"
        ))),
        None => Ok(()),
    }
}
