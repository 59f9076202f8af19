//! `fetch` (the default): one collection run, from the state or over a time range.

use crate::cli::Cli;
use crate::collect::plan::{HORIZON, SAFETY_LAG};
use crate::collect::signals::Signals;
use crate::collect::{self, RunSetup, Start};
use crate::config::timespec::{describe, parse_time};
use crate::config::{ConfigError, Resolver, RunKind};
use crate::diagnostics::error_reporting::Exit;
use crate::source::api::Client;
use anyhow::Context as _;

/// The API refuses a `to` later than this many seconds before now.
const API_LATEST_TO_LAG: i64 = 5;

pub(super) fn run(cli: &Cli, resolver: &Resolver<'_>) -> anyhow::Result<Exit> {
    let output = resolver.output()?;
    let replay = replay_range(cli, collect::unix_now())?;
    let kind = match replay {
        Some(_) => RunKind::Replay,
        None => RunKind::Scheduled,
    };
    let collect = resolver.collect(&output, kind)?;
    let api = resolver.api()?;
    let state = resolver.state(replay.is_some() || cli.fetch.no_state)?;
    let start = match (replay, &state) {
        (Some((from, to)), _) => Start::Replay { from, to },
        (None, Some(settings)) => Start::Stateful(settings),
        (None, None) => Start::Window,
    };
    let signals = Signals::install().context("installing signal handlers")?;
    let client = Client::new(&api)?;
    let summary = collect::run(RunSetup {
        client: &client,
        api: &api,
        collect: &collect,
        output: &output,
        start,
        signals: &signals,
    })?;
    Ok(summary.exit())
}

/// `--from`/`--to` as Unix seconds, checked against what the API accepts.
fn replay_range(cli: &Cli, now: i64) -> anyhow::Result<Option<(i64, i64)>> {
    let Some(from_text) = &cli.fetch.from else {
        return Ok(None);
    };
    let now_ts = jiff::Timestamp::from_second(now)?;
    let usage = |message: String| anyhow::Error::new(ConfigError::Usage(message));
    let from = parse_time(from_text, now_ts)
        .map_err(|e| usage(format!("--from: {e}")))?
        .as_second();
    let describe_second = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map(describe)
            .unwrap_or_else(|_| t.to_string())
    };
    // An explicit --to is what the operator wants delivered: kept whenever the API accepts it.
    let to = match &cli.fetch.to {
        Some(text) => {
            let asked = parse_time(text, now_ts)
                .map_err(|e| usage(format!("--to: {e}")))?
                .as_second();
            if asked > now - API_LATEST_TO_LAG {
                let used = now - SAFETY_LAG;
                tracing::warn!(
                    code = "to_adjusted",
                    "--to {} is later than the API accepts ({API_LATEST_TO_LAG}s before now); \
                     using --to {} instead",
                    describe_second(asked),
                    describe_second(used)
                );
                used
            } else {
                asked
            }
        }
        None => now - SAFETY_LAG,
    };
    if from < now - HORIZON {
        return Err(usage(format!(
            "--from {} is more than 12 hours ago; the API only keeps 12 hours",
            describe(jiff::Timestamp::from_second(from)?)
        )));
    }
    if from >= to {
        return Err(usage(format!(
            "--from must be before --to (without --to: {SAFETY_LAG}s before now): from {}, \
             to {}",
            describe_second(from),
            describe_second(to)
        )));
    }
    Ok(Some((from, to)))
}
