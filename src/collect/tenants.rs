//! Several tenants (Akamai accounts, one config section each) in one run: each with its own
//! API client, state, lock, journal and retry budget, fetched concurrently, sharing the run's
//! event and byte budget fairly ([`BudgetPool`]). A tenant that fails never stops the others;
//! the run's exit code is the most severe of theirs.

use super::budget::{Allowance, BudgetPool};
use super::signals::Signals;
use super::{RunSetup, Start, StopReason, Summary};
use crate::config::{ApiSettings, CollectSettings, OutputSettings, StateSettings};
use crate::diagnostics::error_reporting::{self, Exit, Reported};
use crate::diagnostics::logging;
use crate::source::api::Client;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Everything one tenant's run needs, resolved from its section.
#[derive(Debug)]
pub struct Tenant {
    pub name: String,
    pub api: ApiSettings,
    pub output: OutputSettings,
    pub collect: CollectSettings,
    /// `None` for a replay or `--no-state`.
    pub state: Option<StateSettings>,
}

/// How one tenant's run ended.
#[derive(Debug)]
pub struct Outcome {
    pub tenant: String,
    pub exit: Exit,
    pub summary: Option<Summary>,
}

/// How the run's tenants find their first request.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Stateful,
    Window,
    Replay { from: i64, to: i64 },
}

/// Run every tenant, at most `parallel` at once, and say how each ended (in `tenants` order).
pub fn run_all(
    tenants: &mut [Tenant],
    parallel: usize,
    mode: Mode,
    signals: &Signals,
) -> Vec<Outcome> {
    let total = Allowance {
        events: tenants
            .iter()
            .map(|t| t.collect.max_events)
            .min()
            .unwrap_or(0),
        bytes: tenants
            .iter()
            .map(|t| t.collect.max_bytes)
            .min()
            .unwrap_or(0),
    };
    let (pool, share) = BudgetPool::new(total, tenants.len() as u64);
    let pool = Arc::new(pool);
    for tenant in tenants.iter_mut() {
        tenant.collect.max_events = share.events;
        tenant.collect.max_bytes = share.bytes;
    }
    let next = AtomicUsize::new(0);
    let tenants: &[Tenant] = tenants;
    let mut outcomes: Vec<(usize, Outcome)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..parallel.clamp(1, tenants.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(tenant) = tenants.get(index) else {
                            return done;
                        };
                        done.push((index, run_one(tenant, mode, signals, Arc::clone(&pool))));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_default())
            .collect()
    });
    outcomes.sort_by_key(|(index, _)| *index);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

fn run_one(tenant: &Tenant, mode: Mode, signals: &Signals, pool: Arc<BudgetPool>) -> Outcome {
    logging::set_tenant(Some(&tenant.name));
    let result = (|| -> anyhow::Result<Summary> {
        let client = Client::new(&tenant.api)?;
        let start = match (mode, &tenant.state) {
            (Mode::Replay { from, to }, _) => Start::Replay { from, to },
            (Mode::Stateful, Some(state)) => Start::Stateful(state),
            _ => Start::Window,
        };
        super::run(RunSetup {
            client: &client,
            api: &tenant.api,
            collect: &tenant.collect,
            output: &tenant.output,
            start,
            signals,
            pool: Some(pool),
        })
    })();
    let outcome = match result {
        Ok(summary) => Outcome {
            tenant: tenant.name.clone(),
            exit: exit_for(&summary),
            summary: Some(summary),
        },
        Err(error) => {
            let exit = match error.downcast_ref::<Reported>() {
                Some(Reported(exit)) => *exit,
                // Failed before its run began (lock, state, output, client): say so here,
                // tagged with the tenant like its other diagnostics.
                None => error_reporting::log(&error),
            };
            Outcome {
                tenant: tenant.name.clone(),
                exit,
                summary: None,
            }
        }
    };
    logging::set_tenant(None);
    outcome
}

/// The exit code of one finished run.
pub fn exit_for(summary: &Summary) -> Exit {
    match summary.stopped_by {
        Some(StopReason::Signal(signal)) => Exit::Interrupted(signal),
        _ if summary.lost_events => Exit::DataLost,
        _ => Exit::Success,
    }
}

/// Which of two exits the run reports: the more severe. A stop by signal outranks a tenant's
/// failure (the scheduler asked us to stop and must hear that), a bug outranks everything.
pub fn most_severe(a: Exit, b: Exit) -> Exit {
    fn rank(exit: Exit) -> u8 {
        match exit {
            Exit::Success => 0,
            Exit::Locked => 1,
            Exit::DataLost => 2,
            Exit::Api => 3,
            Exit::Output => 4,
            Exit::State => 5,
            Exit::Auth => 6,
            Exit::Config => 7,
            Exit::Usage => 8,
            Exit::Interrupted(_) => 9,
            Exit::Internal => 10,
        }
    }
    if rank(b) > rank(a) { b } else { a }
}

/// One line naming each tenant and how it ended, after their own summaries.
pub fn log_outcomes(outcomes: &[Outcome]) -> Exit {
    let mut exit = Exit::Success;
    let mut parts = Vec::new();
    for outcome in outcomes {
        exit = most_severe(exit, outcome.exit);
        let how = match (&outcome.summary, outcome.exit) {
            (Some(summary), Exit::Success) if summary.caught_up => {
                format!("caught up ({} events)", summary.events)
            }
            (Some(summary), Exit::Success) => match summary.stopped_by {
                Some(reason) => format!("stopped by {} ({} events)", reason.name(), summary.events),
                None => format!("stopped ({} events)", summary.events),
            },
            (Some(summary), failed) => {
                format!("{} ({} events)", failed.diagnostic_code(), summary.events)
            }
            (None, failed) => format!("failed ({})", failed.diagnostic_code()),
        };
        parts.push(format!("{}: {how}", outcome.tenant));
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.exit != Exit::Success)
        .map(|o| o.tenant.as_str())
        .collect();
    let message = format!("{} tenants; {}", outcomes.len(), parts.join("; "));
    if failed.is_empty() {
        tracing::info!(code = "tenants", "{message}");
    } else {
        tracing::error!(
            code = "tenants_failed",
            "{message}; failed: {} (their own diagnostics above say why; the others were \
             delivered and committed)",
            failed.join(", ")
        );
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_severe_exit_wins_whatever_the_order() {
        let exits = [
            Exit::Success,
            Exit::Api,
            Exit::Auth,
            Exit::Locked,
            Exit::DataLost,
        ];
        let forward = exits.iter().fold(Exit::Success, |a, b| most_severe(a, *b));
        let backward = exits
            .iter()
            .rev()
            .fold(Exit::Success, |a, b| most_severe(a, *b));
        assert_eq!(forward, Exit::Auth);
        assert_eq!(backward, Exit::Auth);
        assert_eq!(
            most_severe(Exit::Config, Exit::Interrupted(15)),
            Exit::Interrupted(15)
        );
        assert_eq!(most_severe(Exit::Success, Exit::Success), Exit::Success);
    }
}
