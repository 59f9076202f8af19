//! `state show` and `state reset`: where the next run continues, and starting over.

use crate::checkpoint::{RunLock, State, StateError, StateFile};
use crate::collect::plan::HORIZON;
use crate::collect::{self};
use crate::config::timespec::{describe, human_duration, parse_time};
use crate::config::{ConfigError, Resolver};
use crate::diagnostics::error_reporting::{Exit, Failure};
use std::io::Write;
use std::time::Duration;

pub(super) fn unusable_state(error: StateError) -> anyhow::Error {
    match error {
        StateError::Corrupt { path, problem } => Failure::error(
            Exit::State,
            format!(
                "the state file {} is corrupt ({problem}): run `akamai-siem state reset` to \
                 replace it (the next run then starts like a first run), or `akamai-siem state \
                 reset --from TIME` to start from TIME",
                path.display()
            ),
        ),
        other => other.into(),
    }
}

pub(super) fn show(resolver: &Resolver<'_>) -> anyhow::Result<Exit> {
    let settings = resolver
        .state(false)?
        .expect("state settings exist when not stateless");
    let mut out = std::io::stdout().lock();
    let Some(state) = StateFile::new(&settings.path)
        .load()
        .map_err(unusable_state)?
    else {
        writeln!(
            out,
            "no state at {}: the next run is a first run (from {} ago)",
            settings.path.display(),
            human_duration(settings.initial_lookback)
        )?;
        return Ok(Exit::Success);
    };
    let now = collect::unix_now();
    let ago = |t: i64| human_duration(Duration::from_secs((now - t).max(0) as u64));
    let at = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map(describe)
            .unwrap_or_else(|_| t.to_string())
    };
    writeln!(out, "state file   {}", settings.path.display())?;
    writeln!(out, "host         {}", state.host)?;
    writeln!(out, "config ids   {}", state.config_ids)?;
    for refused in &state.refused {
        let since = jiff::Timestamp::from_second(refused.since)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| refused.since.to_string());
        let from = refused
            .checkpoint
            .and_then(|c| jiff::Timestamp::from_second(c).ok())
            .map(|t| format!("; resumes from {t} once accepted"))
            .unwrap_or_default();
        writeln!(
            out,
            "refused      config id {} since {since} (HTTP {}: {}){from}",
            refused.id, refused.status, refused.reason
        )?;
    }
    match (&state.offset, state.offset_obtained_at) {
        (Some(offset), Some(t)) => {
            writeln!(out, "offset       {offset} (obtained {} ago)", ago(t))?
        }
        (Some(offset), None) => writeln!(out, "offset       {offset}")?,
        (None, _) => writeln!(out, "offset       none: the next run starts by time")?,
    }
    match state.checkpoint {
        Some(t) => writeln!(
            out,
            "checkpoint   {} ({} ago): events stored before it are delivered",
            at(t),
            ago(t)
        )?,
        None => writeln!(out, "checkpoint   none")?,
    }
    if let Some(output) = &state.output {
        writeln!(
            out,
            "output       {} committed at {} bytes",
            output.path.display(),
            output.length
        )?;
    }
    writeln!(
        out,
        "seen         {} delivered-event hashes kept (journal generation {})",
        state.seen.entries, state.seen.generation
    )?;
    if let Some(run) = &state.last_run {
        let ending = match (&run.stopped_by, run.caught_up) {
            (_, true) => "caught up".to_string(),
            (Some(reason), false) => format!("stopped by {reason}"),
            (None, false) => "did not finish".to_string(),
        };
        writeln!(
            out,
            "last run     {} ago: {} events in {} page(s), {ending}",
            ago(run.finished_at),
            run.events,
            run.pages
        )?;
        let backlog = if run.caught_up {
            "none at the last run".to_string()
        } else {
            let lag = state
                .checkpoint
                .map(|c| format!(", about {} of events behind", ago(c)))
                .unwrap_or_default();
            format!("events were still pending at the last run{lag}")
        };
        writeln!(out, "backlog      {backlog}")?;
    }
    Ok(Exit::Success)
}

pub(super) fn reset(resolver: &Resolver<'_>, from: Option<&str>) -> anyhow::Result<Exit> {
    let settings = resolver
        .state(false)?
        .expect("state settings exist when not stateless");
    let api = resolver.api()?;
    // A reset under a running collector would be overwritten by its next commit.
    let _lock = RunLock::acquire(&settings.path)?;
    let file = StateFile::new(&settings.path);
    let now = collect::unix_now();
    let checkpoint = match from {
        Some(text) => {
            let t = parse_time(text, jiff::Timestamp::from_second(now)?)
                .map_err(|e| ConfigError::Usage(format!("--from: {e}")))?
                .as_second();
            if t < now - HORIZON || t > now {
                return Err(ConfigError::Usage(
                    "--from must be within the last 12 hours (the API keeps no more)".into(),
                )
                .into());
            }
            Some(t)
        }
        None => None,
    };
    let previous = match file.load() {
        Ok(previous) => previous,
        // The advice for a corrupt state is this command, so it must be able to replace it.
        Err(StateError::Corrupt { path, problem }) => {
            let mut kept = path.clone().into_os_string();
            kept.push(".corrupt");
            let kept = std::path::PathBuf::from(kept);
            std::fs::rename(&path, &kept).map_err(|source| StateError::Write {
                path: path.clone(),
                source,
            })?;
            tracing::warn!(
                code = "state_replaced",
                "the state file {} is corrupt ({problem}); replacing it discards whatever it \
                 held: the offset, the checkpoint, the committed output length (an uncommitted \
                 tail left by a crash is not cut) and the seen-events position (events already \
                 delivered since the new start may be delivered again). The corrupt file is \
                 kept as {}",
                path.display(),
                kept.display()
            );
            None
        }
        Err(other) => return Err(other.into()),
    };
    let mut state = previous.unwrap_or_else(|| State::new(&api.host, &api.config_ids.to_string()));
    state.offset = None;
    state.offset_obtained_at = None;
    state.checkpoint = checkpoint;
    state.host = api.host.clone();
    state.config_ids = api.config_ids.to_string();
    file.save(&state)?;
    let mut out = std::io::stdout().lock();
    match checkpoint {
        Some(t) => writeln!(
            out,
            "reset {}: the next run starts by time from {}",
            settings.path.display(),
            describe(jiff::Timestamp::from_second(t)?)
        )?,
        None => writeln!(
            out,
            "reset {}: the next run starts like a first run ({} back)",
            settings.path.display(),
            human_duration(settings.initial_lookback)
        )?,
    }
    Ok(Exit::Success)
}
