//! Config ids isolated from each other. The API refuses a request naming an id without SIEM
//! access (403) or an unknown one (404) as a whole, so one such id must not cost the others their
//! events.
//!
//! When a request for several ids is refused, each id is probed alone; the refused ones are
//! reported (`config_refused`) and remembered in the state with their own checkpoint, and the
//! others go on as a smaller set, by time from the set's checkpoint (offsets belong to a set).
//! On later runs each refused id is tried alone first, by time from its own checkpoint: still
//! refused, it is reported again; accepted, its events are fetched alone until it has caught up
//! (within a fair share of the run's budget, so a long catch-up cannot starve the others), then
//! it joins the set again, whose next request goes by time from the earlier of the two
//! checkpoints. What that overlap fetches again of the other ids is dropped by hash.

use super::*;
use crate::checkpoint::RefusedConfig;
use plan::{healthy_ids, joined_checkpoint, probe_request};

/// How one stream of requests (the set, or a refused id alone) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamEnd {
    CaughtUp,
    /// A budget or a signal: `summary.stopped_by` says which.
    Stopped,
    /// A refused id tried alone is still refused (reported).
    Refused,
}

/// What a refusal (403, 404) of the current stream's request leads to.
pub(super) enum Refusal {
    /// The stream ends here.
    Ended(StreamEnd),
    /// The refused ids were set apart; the stream goes on with the others.
    Isolated,
    /// Isolating cannot help (one id, or all of them refused): the refusal is the run's error.
    Fatal(ApiError),
}

/// Refused ids no longer configured are forgotten; those asked for with the set again (no
/// other id left) bring their checkpoints into the set's, so none of their events is skipped.
pub(super) fn forget_unplanned(state: &mut State, ids: &IdPlan) {
    for rejoined in &ids.rejoined {
        state.checkpoint = joined_checkpoint(state.checkpoint, rejoined.checkpoint);
    }
    state
        .refused
        .retain(|refused| ids.alone.iter().any(|alone| alone.id == refused.id));
}

/// A complete page of a refused id tried alone moves its own checkpoint on.
pub(super) fn record_alone_checkpoint(state: &mut State, ids: &[u64], checkpoint: Option<i64>) {
    if let Some(refused) = state.refused.iter_mut().find(|r| ids.contains(&r.id)) {
        refused.checkpoint = checkpoint;
    }
}

/// Remember `id` as refused. An id refused before keeps when it was first refused and the
/// earlier checkpoint: the later one could skip events it never delivered.
fn remember_refused(
    state: &mut State,
    id: u64,
    status: u16,
    reason: &str,
    checkpoint: Option<i64>,
    now: i64,
) {
    match state.refused.iter_mut().find(|r| r.id == id) {
        Some(refused) => {
            refused.status = status;
            refused.reason = reason.to_string();
            refused.checkpoint = joined_checkpoint(refused.checkpoint, checkpoint);
        }
        None => state.refused.push(RefusedConfig {
            id,
            status,
            reason: reason.to_string(),
            since: now,
            checkpoint,
        }),
    }
}

/// A probe's verdict on one id.
enum Probe {
    Accepted,
    Refused { status: u16, reason: String },
    Interrupted,
}

impl Collector<'_> {
    /// Every stream of the run: the refused ids alone first (each from its own checkpoint),
    /// then the others together.
    pub(super) fn streams(&mut self) -> anyhow::Result<()> {
        let waiting = std::mem::take(&mut self.waiting_alone);
        let mut alone_behind = false;
        if !waiting.is_empty() {
            // The set's stream waits aside (an idle planner holds its place) while each
            // refused id has its own.
            let set = (
                std::mem::replace(&mut self.planner, Planner::replay(0, 0, 1)),
                self.client.clone(),
                std::mem::take(&mut self.ids),
            );
            let mut rejoined = false;
            let count = waiting.len();
            for (index, refused) in waiting.into_iter().enumerate() {
                // This id, the ones after it and the set share what is left of the budget.
                let shares = (count - index + 1) as u64;
                match self.alone_stream(refused, shares)? {
                    Alone::Rejoined => rejoined = true,
                    Alone::Refused => {}
                    Alone::Behind => alone_behind = true,
                    Alone::Stopped => return Ok(()),
                }
            }
            (self.planner, self.client, self.ids) = set;
            self.alone = false;
            if rejoined {
                self.rejoin_set();
            }
        }
        let end = self.pages()?;
        self.summary.caught_up = end == StreamEnd::CaughtUp && !alone_behind;
        Ok(())
    }

    /// A refused id rejoined the set: plan the set again from the state, which now asks for it
    /// too and holds the earlier checkpoint.
    fn rejoin_set(&mut self) {
        let Some(checkpointing) = &self.checkpointing else {
            return;
        };
        let ids = plan_config_ids(
            self.setup.api.config_ids.ids(),
            &checkpointing.state.refused,
        );
        let together = join_ids(&ids.together);
        let (planner, notices) =
            self.setup
                .set_planner(Some(&checkpointing.state), &together, unix_now(), None);
        self.planner = planner;
        self.client = self.setup.client.for_config_ids(&together);
        self.ids = ids.together;
        self.report(&notices);
    }

    /// Try a refused id alone, and fetch its events until caught up or its share of the
    /// budget is spent.
    fn alone_stream(&mut self, refused: RefusedConfig, shares: u64) -> anyhow::Result<Alone> {
        let Start::Stateful(settings) = self.setup.start else {
            unreachable!("only a state remembers refused ids")
        };
        let id = refused.id;
        let (planner, notices) = Planner::resume(
            refused.checkpoint,
            &self.setup.plan_settings(settings),
            unix_now(),
        );
        self.planner = planner;
        self.client = self.setup.client.for_config_ids(&id.to_string());
        self.ids = vec![id];
        self.alone = true;
        // Said once the API accepts the id again: while it refuses, only the refusal matters.
        self.held_notices = notices;
        // Its share comes out of this tenant's own allowance: the pool shared with other
        // tenants is not asked for more while a catching-up id runs (it is given back after).
        let pool = self.delivery.pool.take();
        let (max_events, max_bytes) = (self.delivery.max_events, self.delivery.max_bytes);
        let share = |max: u64, used: u64| used + (max.saturating_sub(used) / shares).max(1);
        self.delivery.max_events = share(max_events, self.delivery.events);
        self.delivery.max_bytes = share(max_bytes, self.delivery.bytes);
        let result = self.pages();
        self.delivery.max_events = max_events;
        self.delivery.max_bytes = max_bytes;
        self.delivery.pool = pool;
        self.held_notices.clear();
        match result? {
            StreamEnd::Refused => Ok(Alone::Refused),
            StreamEnd::CaughtUp => {
                self.rejoined(id)?;
                Ok(Alone::Rejoined)
            }
            StreamEnd::Stopped => {
                let run_spent = matches!(self.summary.stopped_by, Some(StopReason::Signal(_)))
                    || self.delivery.bytes >= self.delivery.max_bytes
                    || !self.delivery.has_allowance();
                if run_spent {
                    return Ok(Alone::Stopped);
                }
                self.summary.stopped_by = None;
                self.delivery.budget_hit = None;
                self.summary.catching_up_config_ids.push(id);
                let checkpoint = self
                    .planner
                    .checkpoint()
                    .map(|c| describe(report::jiff_from(c)).to_string())
                    .unwrap_or_default();
                tracing::warn!(
                    code = "behind",
                    config_id = id,
                    "config id {id} is accepted again and still catching up (it had its share \
                     of this run's budget, the other config ids have theirs); the next run \
                     continues it from {checkpoint}"
                );
                Ok(Alone::Behind)
            }
        }
    }

    /// A refused id caught up alone: it is asked for with the set again from now on.
    fn rejoined(&mut self, id: u64) -> anyhow::Result<()> {
        let checkpoint = self.planner.checkpoint();
        tracing::info!(
            code = "config_resumed",
            config_id = id,
            "config id {id} is accepted again and caught up; it is asked for with the other \
             config ids again"
        );
        let Some(checkpointing) = &mut self.checkpointing else {
            return Ok(());
        };
        let state = &mut checkpointing.state;
        state.refused.retain(|r| r.id != id);
        state.checkpoint = joined_checkpoint(state.checkpoint, checkpoint);
        checkpointing
            .file
            .save(state)
            .context("recording a config id accepted again")?;
        Ok(())
    }

    /// A complete page of the current stream: its ids are fetched this run.
    pub(super) fn fetched_from_stream(&mut self) {
        if self.alone && !self.held_notices.is_empty() {
            let notices = std::mem::take(&mut self.held_notices);
            let id = self.ids[0];
            tracing::info!(
                config_id = id,
                "config id {id} is accepted again: fetching its events alone from its own \
                 checkpoint"
            );
            report_notices(&notices, &mut self.summary, Some(id));
        }
        for id in &self.ids {
            if !self.summary.config_ids.contains(id) {
                self.summary.config_ids.push(*id);
            }
        }
        // In configured order, whatever order the streams ran in.
        let configured = self.setup.api.config_ids.ids();
        self.summary
            .config_ids
            .sort_by_key(|id| configured.iter().position(|c| c == id));
    }

    /// Notices of the current stream, naming the id when it is a refused id alone.
    pub(super) fn report(&mut self, notices: &[Notice]) {
        let id = self.alone.then(|| self.ids[0]);
        report_notices(notices, &mut self.summary, id);
    }

    /// The API refused the current stream's request (403, 404).
    pub(super) fn refused(&mut self, error: ApiError) -> anyhow::Result<Refusal> {
        let Some((status, reason)) = error.config_refusal().map(|(s, r)| (s, r.to_string())) else {
            return Ok(Refusal::Fatal(error));
        };
        let now = unix_now();
        if self.alone {
            let id = self.ids[0];
            self.set_apart(id, status, &reason, None, now)?;
            return Ok(Refusal::Ended(StreamEnd::Refused));
        }
        if self.ids.len() < 2 {
            return Ok(Refusal::Fatal(error));
        }
        let mut refused = Vec::new();
        for id in self.ids.clone() {
            match self.probe(id)? {
                Probe::Accepted => {}
                Probe::Refused { status, reason } => refused.push((id, status, reason)),
                Probe::Interrupted => {
                    let signal = self.setup.signals.received().unwrap_or(15);
                    self.summary.stopped_by = Some(StopReason::Signal(signal));
                    return Ok(Refusal::Ended(StreamEnd::Stopped));
                }
            }
        }
        let refused_ids: Vec<u64> = refused.iter().map(|(id, _, _)| *id).collect();
        let Some(healthy) = healthy_ids(&self.ids, &refused_ids) else {
            return Ok(Refusal::Fatal(error));
        };
        // Everything of the refused ids before the set's checkpoint was delivered with the set.
        let checkpoint = self.planner.checkpoint();
        for (id, status, reason) in &refused {
            self.set_apart(*id, *status, reason, checkpoint, now)?;
        }
        let together = join_ids(&healthy);
        let notices = self.planner.config_ids_changed(
            now,
            format!(
                "config id(s) {} refused: asking for {together} without them (offsets belong to \
                 the old set)",
                join_ids(&refused_ids)
            ),
        );
        self.report(&notices);
        self.client = self.setup.client.for_config_ids(&together);
        self.ids = healthy;
        Ok(Refusal::Isolated)
    }

    /// Report `id` as refused and remember it (with `checkpoint`, or the one it had).
    fn set_apart(
        &mut self,
        id: u64,
        status: u16,
        reason: &str,
        checkpoint: Option<i64>,
        now: i64,
    ) -> anyhow::Result<()> {
        if !self.summary.refused_config_ids.contains(&id) {
            self.summary.refused_config_ids.push(id);
        }
        let mut pending_since = checkpoint;
        if let Some(checkpointing) = &mut self.checkpointing {
            let state = &mut checkpointing.state;
            remember_refused(state, id, status, reason, checkpoint, now);
            pending_since = state
                .refused
                .iter()
                .find(|r| r.id == id)
                .and_then(|r| r.checkpoint);
            checkpointing
                .file
                .save(state)
                .context("recording a refused config id")?;
        }
        let what = match status {
            404 => format!(
                "the API does not know config id {id} (HTTP 404: {reason}); check config_id"
            ),
            _ => format!(
                "the API client may not read config id {id} (HTTP 403: {reason}); give it the \
                 \"Manage SIEM\" role and enable SIEM in that security configuration, or remove \
                 the id from config_id"
            ),
        };
        let resume = match (&self.checkpointing, pending_since) {
            (Some(_), Some(since)) => format!(
                "; it is tried alone on every run, and once accepted its events are fetched \
                 from {} on (the API keeps 12 hours)",
                describe(report::jiff_from(since))
            ),
            _ => String::new(),
        };
        tracing::warn!(
            code = "config_refused",
            config_id = id,
            http_status = status,
            "{what}. Its events are not collected, the other config ids' are{resume}"
        );
        Ok(())
    }

    /// Ask for `id` alone, for one event at most (not delivered), to tell whether the API
    /// refuses it. Transient failures are retried within the run's budget.
    fn probe(&mut self, id: u64) -> anyhow::Result<Probe> {
        let client = self.setup.client.for_config_ids(&id.to_string());
        loop {
            match self.open_page(&client, &probe_request(unix_now())) {
                Ok(body) => {
                    drop(body);
                    return Ok(Probe::Accepted);
                }
                Err(PageError::Interrupted) => return Ok(Probe::Interrupted),
                Err(PageError::Handler(error)) => return Err(error),
                Err(PageError::Api(error)) => {
                    if let Some((status, reason)) = error.config_refusal() {
                        return Ok(Probe::Refused {
                            status,
                            reason: reason.to_string(),
                        });
                    }
                    match self.retry.next_delay(&error, random_unit()) {
                        Some(delay) => {
                            tracing::warn!(
                                code = "retrying",
                                "{error} (asking for config id {id} alone, to find the one the \
                                 API refuses); retrying in {:.1}s",
                                delay.as_secs_f64()
                            );
                            self.setup.signals.sleep(delay);
                        }
                        None => {
                            return Err(anyhow::Error::new(error).context(format!(
                                "asking for config id {id} alone, to find the one the API refuses"
                            )));
                        }
                    }
                }
            }
        }
    }
}

/// How a refused id tried alone ended.
enum Alone {
    /// Caught up: it is part of the set again.
    Rejoined,
    /// Still refused (reported).
    Refused,
    /// Accepted, but its share of the budget is spent: the next run continues it.
    Behind,
    /// A signal, or the run's whole budget is spent.
    Stopped,
}
