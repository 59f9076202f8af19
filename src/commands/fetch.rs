//! `fetch` (the default): one collection run, from the state or over a time range.

use crate::cli::Cli;
use crate::collect::plan::{HORIZON, SAFETY_LAG};
use crate::collect::signals::Signals;
use crate::collect::tenants::{self, Mode, Tenant, exit_for};
use crate::collect::{self, RunSetup, Start};
use crate::config::timespec::{describe, parse_time};
use crate::config::{ConfigError, OutputTarget, Resolver, RunKind, Sources};
use crate::diagnostics::error_reporting::Exit;
use crate::source::api::Client;
use anyhow::Context as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The API refuses a `to` later than this many seconds before now.
const API_LATEST_TO_LAG: i64 = 5;

/// `{tenant}` in an output or state path: one file per tenant.
const TENANT_PLACEHOLDER: &str = "{tenant}";

pub(super) fn run(cli: &Cli, tenants: &[Sources]) -> anyhow::Result<Exit> {
    match tenants {
        [one] => run_one(cli, &Resolver::new(one)),
        several => run_several(cli, several),
    }
}

fn run_one(cli: &Cli, resolver: &Resolver<'_>) -> anyhow::Result<Exit> {
    let mut output = resolver.output()?;
    output.tags = resolver.tags(false)?;
    // A named section's diagnostics say whose they are, as its events do.
    crate::diagnostics::logging::set_tenant(output.tags.tenant.as_deref());
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
        pool: None,
    })?;
    Ok(exit_for(&summary))
}

/// Every tenant resolved first, so a mistake in any section stops the run before anything is
/// fetched; then all of them run, each isolated from the others' failures.
fn run_several(cli: &Cli, sections: &[Sources]) -> anyhow::Result<Exit> {
    let replay = replay_range(cli, collect::unix_now())?;
    let (kind, mode) = match replay {
        Some((from, to)) => (RunKind::Replay, Mode::Replay { from, to }),
        None if cli.fetch.no_state => (RunKind::Scheduled, Mode::Window),
        None => (RunKind::Scheduled, Mode::Stateful),
    };
    let stateless = replay.is_some() || cli.fetch.no_state;
    let mut tenants = Vec::new();
    for sources in sections {
        let resolver = Resolver::new(sources);
        let tags = resolver.tags(true)?;
        let name = tags
            .tenant
            .clone()
            .expect("a run of several tenants names each");
        let mut output = resolver.output()?;
        output.tags = tags;
        output.target = match output.target {
            OutputTarget::File(path) => OutputTarget::File(for_tenant(&path, &name)),
            other => other,
        };
        let mut collect = resolver.collect(&output, kind)?;
        if let Some(metrics) = &mut collect.metrics {
            metrics.path = for_tenant(&metrics.path, &name);
        }
        let state = resolver.state(stateless)?.map(|mut state| {
            state.path = for_tenant(&state.path, &name);
            state
        });
        tenants.push(Tenant {
            api: resolver.api()?,
            name,
            output,
            collect,
            state,
        });
    }
    refuse_shared_states(&tenants)?;
    refuse_shared_metrics(&tenants)?;
    share_common_files(&mut tenants)?;
    let parallel = Resolver::new(&sections[0]).parallel()?;
    let signals = Signals::install().context("installing signal handlers")?;
    let outcomes = tenants::run_all(&mut tenants, parallel, mode, &signals);
    Ok(tenants::log_outcomes(&outcomes))
}

fn for_tenant(path: &Path, tenant: &str) -> PathBuf {
    let text = path.to_string_lossy();
    if text.contains(TENANT_PLACEHOLDER) {
        PathBuf::from(text.replace(TENANT_PLACEHOLDER, tenant))
    } else {
        path.to_path_buf()
    }
}

/// Two tenants with one state would take each other's offsets (and one would wait for the
/// other's lock every run).
fn refuse_shared_states(tenants: &[Tenant]) -> Result<(), ConfigError> {
    let mut owners: HashMap<&Path, &str> = HashMap::new();
    for tenant in tenants {
        let Some(state) = &tenant.state else { continue };
        if let Some(other) = owners.insert(&state.path, &tenant.name) {
            return Err(ConfigError::Usage(format!(
                "tenants {other} and {} would share the state file {}: each needs its own \
                 (put {TENANT_PLACEHOLDER} in state_file, or set it per section)",
                tenant.name,
                state.path.display()
            )));
        }
    }
    Ok(())
}

/// Each run replaces its metrics file whole: tenants sharing one would erase each other's.
fn refuse_shared_metrics(tenants: &[Tenant]) -> Result<(), ConfigError> {
    let mut owners: HashMap<&Path, &str> = HashMap::new();
    for tenant in tenants {
        let Some(metrics) = &tenant.collect.metrics else {
            continue;
        };
        if let Some(other) = owners.insert(&metrics.path, &tenant.name) {
            return Err(ConfigError::Usage(format!(
                "tenants {other} and {} would share the metrics_file {}: each needs its own \
                 (put {TENANT_PLACEHOLDER} in its file name, or set it per section)",
                tenant.name,
                metrics.path.display()
            )));
        }
    }
    Ok(())
}

/// Tenants writing to the same file append to it side by side: whole lines each, committed by
/// fsync, with a torn last line from an earlier crash cut once before anyone writes.
fn share_common_files(tenants: &mut [Tenant]) -> anyhow::Result<()> {
    let mut writers: HashMap<PathBuf, usize> = HashMap::new();
    for tenant in tenants.iter() {
        if let OutputTarget::File(path) = &tenant.output.target {
            *writers.entry(path.clone()).or_default() += 1;
        }
    }
    for (path, count) in &writers {
        if *count < 2 {
            continue;
        }
        let cut = crate::sink::repair_torn_tail(path)
            .with_context(|| format!("checking the shared output file {}", path.display()))?;
        if cut > 0 {
            tracing::warn!(
                code = "recovered_crash",
                "cut an unfinished last line ({cut} bytes) from the shared output file {}; \
                 its event is fetched again",
                path.display()
            );
        }
    }
    for tenant in tenants.iter_mut() {
        if let OutputTarget::File(path) = &tenant.output.target
            && writers.get(path).is_some_and(|count| *count > 1)
        {
            tenant.output.target = OutputTarget::SharedFile(path.clone());
        }
    }
    Ok(())
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
