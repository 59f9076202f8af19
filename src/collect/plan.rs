//! Planning requests: which query comes next, how big a page, and how to recover.
//!
//! Pure: it is told the time and what each page returned, and answers with the next request.
//! Offset mode is the primary mode (API doc §2: a time window misses events stored late for it);
//! time mode is for the first run, replays, and recovery when an offset is gone.

use crate::checkpoint::{RefusedConfig, State};
use crate::config::API_HORIZON;
use crate::source::api::{ApiError, Query, Request};
use std::time::Duration;

/// Never ask for `to` later than this before now (the API rejects `to` > now − 5 s; its safe
/// reading is now − 60 s).
pub const SAFETY_LAG: i64 = 60;
/// How long the API keeps events: a `from` older than this is refused (API doc §2).
pub const HORIZON: i64 = API_HORIZON.as_secs() as i64;
/// Stay this far inside the API's 12-hour horizon so a slow request or a clock a few seconds off
/// does not turn a valid `from` into a 400. Small on purpose: events in this margin are skipped
/// when a recovery has to start at the edge (see `earliest_from`).
pub const HORIZON_MARGIN: i64 = 60;
/// Clock differences between us, Akamai's edge and its storage: keep checkpoints this far back.
pub const CHECKPOINT_MARGIN: i64 = 60;
/// Time-based recoveries in one run before giving up until the next run.
pub const MAX_RECOVERIES: u32 = 3;
/// A cut page is asked again with half the limit, but never fewer events than this (or the
/// configured limit, if smaller).
pub const MIN_CUT_LIMIT: u32 = 100;
/// After a cut, this many complete pages in a row at the smaller limit earn a doubling back
/// towards the configured one: a link that was slow for a while gets its large pages back, one
/// that stays slow costs one cut per this many pages.
pub const PAGES_BEFORE_GROWING: u32 = 4;

/// A window like the Python script's: `[now − lag − window, now − lag]`.
pub fn window_range(window: Duration, now: i64) -> (i64, i64) {
    let to = now - SAFETY_LAG;
    (to - window.as_secs() as i64, to)
}

/// The oldest `from` worth asking for at `now`.
pub fn earliest_from(now: i64) -> i64 {
    now - HORIZON + HORIZON_MARGIN
}

/// What a complete page told us.
#[derive(Debug, Clone, PartialEq)]
pub struct PageResult {
    /// Event lines in the page (duplicates included): decides whether the page was full.
    pub events: u64,
    pub offset: String,
    /// The context line carried `limit`: the page was cut, more is waiting.
    pub cut_at_limit: bool,
    /// Largest `httpMessage.start` among the page's events (a lower bound of what remains).
    pub max_event_start: Option<f64>,
    /// Unix seconds when the request was sent.
    pub requested_at: i64,
}

/// Something the operator must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Events stored in `[from, to)` can no longer be fetched: the API keeps 12 hours.
    Gap { from: i64, to: i64 },
    /// Recovering by time, and why.
    Recovering { from: i64, reason: String },
    /// The API refused `from` as older than its 12 hours; asking from `to` instead.
    Clamped { from: i64, to: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The page was full: ask again at once.
    More,
    CaughtUp,
}

#[derive(Debug, Clone)]
pub struct PlanSettings {
    pub limit: u32,
    pub initial_lookback: Duration,
    pub offset_ttl: Option<Duration>,
    pub overlap: Duration,
}

#[derive(Debug)]
pub struct Planner {
    next: Query,
    /// The configured page size.
    limit: u32,
    /// The page size in use: smaller than `limit` after pages were cut before their end.
    page_limit: u32,
    /// Complete pages in a row since `page_limit` last changed.
    complete_in_a_row: u32,
    /// The smallest `page_limit` this run used, when it had to shrink.
    smallest_limit: Option<u32>,
    overlap: i64,
    initial_lookback: i64,
    checkpoint: Option<i64>,
    offset_obtained_at: Option<i64>,
    recoveries: u32,
    clamped_once: bool,
    /// Whether time that can no longer be fetched is a gap to report. Only a run continuing
    /// from a saved checkpoint promised to deliver everything after it; a first run, a window
    /// and a replay never did, so an old `from` there is clamped silently (with a notice).
    reports_gaps: bool,
    /// The end of a replay's time range: a recovery by time keeps it.
    upper: Option<i64>,
}

impl Planner {
    pub fn replay(from: i64, to: i64, limit: u32) -> Planner {
        Planner {
            next: Query::Time { from, to: Some(to) },
            limit,
            page_limit: limit,
            complete_in_a_row: 0,
            smallest_limit: None,
            overlap: 0,
            initial_lookback: 0,
            checkpoint: Some(from),
            offset_obtained_at: None,
            recoveries: 0,
            clamped_once: false,
            reports_gaps: false,
            upper: Some(to),
        }
    }

    /// Continue from `state` (or start like a first run), and say what the operator must know.
    pub fn stateful(
        state: Option<&State>,
        host: &str,
        config_ids: &str,
        settings: &PlanSettings,
        now: i64,
    ) -> (Planner, Vec<Notice>) {
        // `initial_lookback` may be the API's whole 12 hours: start at the edge the API accepts.
        let first_from = (now - settings.initial_lookback.as_secs() as i64).max(earliest_from(now));
        let mut planner = Planner {
            next: Query::Time {
                from: first_from,
                to: None,
            },
            limit: settings.limit,
            page_limit: settings.limit,
            complete_in_a_row: 0,
            smallest_limit: None,
            overlap: settings.overlap.as_secs() as i64,
            initial_lookback: settings.initial_lookback.as_secs() as i64,
            checkpoint: None,
            offset_obtained_at: None,
            recoveries: 0,
            clamped_once: false,
            reports_gaps: false,
            upper: None,
        };
        let Some(state) = state else {
            planner.checkpoint = Some(first_from);
            return (planner, Vec::new());
        };
        planner.checkpoint = state.checkpoint;
        planner.reports_gaps = state.checkpoint.is_some();
        let offset_age = state.offset_obtained_at.map(|t| now - t);
        let usable_offset = match (&state.offset, settings.offset_ttl, offset_age) {
            (None, _, _) => {
                Err("the state holds no offset yet (a reset, or a first run cut short)".to_string())
            }
            (Some(_), _, _) if state.host != host || state.config_ids != config_ids => {
                Err(format!(
                    "the host or config ids changed (state: {} {}, now: {host} {config_ids}); \
                 offsets belong to the old set",
                    state.host, state.config_ids
                ))
            }
            (Some(_), Some(ttl), Some(age)) if age > ttl.as_secs() as i64 => Err(format!(
                "the stored offset is {age}s old, beyond offset_ttl ({}s)",
                ttl.as_secs()
            )),
            (Some(offset), _, _) => Ok(offset.clone()),
        };
        let notices = match usable_offset {
            Ok(offset) => {
                planner.next = Query::Offset(offset);
                planner.offset_obtained_at = state.offset_obtained_at;
                Vec::new()
            }
            Err(reason) => planner.plan_time_recovery(now, reason),
        };
        (planner, notices)
    }

    /// The next request, with the page sized to what the run may still deliver.
    pub fn next_request(&self, remaining_events: u64) -> Request {
        let limit = u64::from(self.page_limit).min(remaining_events.max(1));
        Request {
            query: self.next.clone(),
            limit: u32::try_from(limit).unwrap_or(self.page_limit),
        }
    }

    /// The response to a request of `requested_limit` ended before its context line (Akamai
    /// stops sending after about two minutes, so on a slow link a large page never completes).
    /// Asking the same query with the same limit would be cut again: halve it, down to a floor.
    /// `Some(new limit)` when it shrank, `None` when it is at the floor already.
    pub fn page_cut(&mut self, requested_limit: u32) -> Option<u32> {
        let floor = MIN_CUT_LIMIT.min(self.limit);
        let smaller = (requested_limit.min(self.page_limit) / 2).max(floor);
        self.complete_in_a_row = 0;
        if smaller >= self.page_limit {
            return None;
        }
        self.page_limit = smaller;
        self.smallest_limit = Some(self.smallest_limit.map_or(smaller, |s| s.min(smaller)));
        Some(smaller)
    }

    /// The smallest page size this run had to fall back to, if pages were cut.
    pub fn smallest_limit(&self) -> Option<u32> {
        self.smallest_limit
    }

    /// A complete page arrived: continue from its offset.
    pub fn page_done(&mut self, page: &PageResult, requested_limit: u32) -> Progress {
        let full = page.cut_at_limit || page.events >= u64::from(requested_limit);
        let mut candidate = page
            .max_event_start
            .map(|start| (start.floor() as i64).min(page.requested_at));
        if !full {
            // Caught up: everything stored before the request went out has been served.
            candidate = Some(candidate.unwrap_or(i64::MIN).max(page.requested_at));
        }
        if let Some(candidate) = candidate {
            let candidate = candidate - CHECKPOINT_MARGIN;
            self.checkpoint = Some(self.checkpoint.map_or(candidate, |c| c.max(candidate)));
        }
        self.next = Query::Offset(page.offset.clone());
        self.offset_obtained_at = Some(page.requested_at);
        if self.page_limit < self.limit {
            self.complete_in_a_row += 1;
            if self.complete_in_a_row >= PAGES_BEFORE_GROWING {
                self.page_limit = self.page_limit.saturating_mul(2).min(self.limit);
                self.complete_in_a_row = 0;
            }
        }
        if full {
            Progress::More
        } else {
            Progress::CaughtUp
        }
    }

    /// The offset expired (416): go back to time mode from the checkpoint.
    pub fn offset_expired(&mut self, now: i64) -> Result<Vec<Notice>, ApiError> {
        if self.recoveries >= MAX_RECOVERIES {
            return Err(ApiError::OffsetsKeepExpiring {
                recoveries: MAX_RECOVERIES,
            });
        }
        self.recoveries += 1;
        Ok(self.plan_time_recovery(now, "the API answered 416: the offset expired".into()))
    }

    /// The API said `from` is too old (a slow request, or its clock ahead of ours): clamp once
    /// more inside the horizon. `None` when the request was not a time query or this was already
    /// tried.
    pub fn rejected_from(&mut self, now: i64) -> Option<Vec<Notice>> {
        let Query::Time { from, to } = self.next else {
            return None;
        };
        if self.clamped_once {
            return None;
        }
        self.clamped_once = true;
        let clamped = earliest_from(now) + HORIZON_MARGIN;
        if from >= clamped {
            return None;
        }
        self.next = Query::Time { from: clamped, to };
        let mut notices = vec![Notice::Clamped { from, to: clamped }];
        notices.extend(self.gap_before(clamped, now));
        Some(notices)
    }

    /// The part of the promise (everything after the checkpoint) that a request starting at
    /// `start` leaves out and that the API no longer holds: only time really gone, never the
    /// margin this planner keeps from the edge.
    fn gap_before(&self, start: i64, now: i64) -> Option<Notice> {
        let checkpoint = self.checkpoint.filter(|_| self.reports_gaps)?;
        (checkpoint < now - HORIZON && checkpoint < start).then_some(Notice::Gap {
            from: checkpoint,
            to: start,
        })
    }

    fn plan_time_recovery(&mut self, now: i64, reason: String) -> Vec<Notice> {
        let earliest = earliest_from(now);
        let mut notices = Vec::new();
        let start = match self.checkpoint {
            Some(checkpoint) => {
                let start = (checkpoint - self.overlap).max(earliest);
                notices.extend(self.gap_before(start, now));
                start
            }
            None => (now - self.initial_lookback).max(earliest),
        };
        notices.insert(
            0,
            Notice::Recovering {
                from: start,
                reason,
            },
        );
        self.next = Query::Time {
            from: start,
            to: self.upper,
        };
        self.offset_obtained_at = None;
        notices
    }

    /// A config id refused alone that is tried again: by time from its own checkpoint (minus
    /// the overlap), reporting what the API no longer holds, like a recovery of a saved state.
    /// Without a checkpoint it starts like a first run.
    pub fn resume(
        checkpoint: Option<i64>,
        settings: &PlanSettings,
        now: i64,
    ) -> (Planner, Vec<Notice>) {
        let (mut planner, _) = Planner::stateful(None, "", "", settings, now);
        let Some(checkpoint) = checkpoint else {
            return (planner, Vec::new());
        };
        planner.checkpoint = Some(checkpoint);
        planner.reports_gaps = true;
        let notices =
            planner.plan_time_recovery(now, "resuming a config id the API had refused".into());
        (planner, notices)
    }

    /// The set of config ids changed in the middle of a run (one was refused): offsets belong to
    /// the old set, so continue by time from the checkpoint. Not an expiry: it does not count
    /// against `MAX_RECOVERIES`.
    pub fn config_ids_changed(&mut self, now: i64, reason: String) -> Vec<Notice> {
        self.plan_time_recovery(now, reason)
    }

    pub fn checkpoint(&self) -> Option<i64> {
        self.checkpoint
    }

    /// The offset the next request would use, for the state.
    pub fn offset(&self) -> Option<(&str, Option<i64>)> {
        match &self.next {
            Query::Offset(offset) => Some((offset, self.offset_obtained_at)),
            Query::Time { .. } => None,
        }
    }
}

/// Which config ids a run asks for, and how: the ones refused before are tried alone first,
/// each from its own checkpoint; the others are asked for together, as one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPlan {
    /// Refused ids still configured, in configured order: each is tried alone.
    pub alone: Vec<RefusedConfig>,
    /// Ids asked for together (the set offsets are bound to), in configured order.
    pub together: Vec<u64>,
    /// Refused ids asked for with the set again because no other id is left: their
    /// checkpoints join the set's (see `joined_checkpoint`), so none of their events is skipped.
    pub rejoined: Vec<RefusedConfig>,
}

/// Plan the config ids of a run from the configured ones and those refused on earlier runs.
/// A refused id that is no longer configured is forgotten; when every configured id was
/// refused, they are all asked for together again (the API's own answer is then the error).
pub fn plan_config_ids(configured: &[u64], refused: &[RefusedConfig]) -> IdPlan {
    let alone: Vec<RefusedConfig> = configured
        .iter()
        .filter_map(|id| refused.iter().find(|r| r.id == *id).cloned())
        .collect();
    let together: Vec<u64> = configured
        .iter()
        .copied()
        .filter(|id| !alone.iter().any(|r| r.id == *id))
        .collect();
    if together.is_empty() {
        return IdPlan {
            alone: Vec::new(),
            together: configured.to_vec(),
            rejoined: alone,
        };
    }
    IdPlan {
        alone,
        together,
        rejoined: Vec::new(),
    }
}

/// The ids as the API's path takes them: `1;2`.
pub fn join_ids(ids: &[u64]) -> String {
    let text: Vec<String> = ids.iter().map(u64::to_string).collect();
    text.join(";")
}

/// A request that tells whether the API accepts one config id, at the cost of one event at
/// most (never delivered): a one-minute window ending a safety lag before now.
pub fn probe_request(now: i64) -> Request {
    Request {
        query: Query::Time {
            from: now - SAFETY_LAG - 60,
            to: Some(now - SAFETY_LAG),
        },
        limit: 1,
    }
}

/// After a request for `requested` was refused and each id was probed alone: the ids to go on
/// with, or `None` when isolating cannot help (one id only, none refused alone, or all of them)
/// and the refusal is the run's error.
pub fn healthy_ids(requested: &[u64], refused: &[u64]) -> Option<Vec<u64>> {
    let healthy: Vec<u64> = requested
        .iter()
        .copied()
        .filter(|id| !refused.contains(id))
        .collect();
    (!refused.is_empty() && !healthy.is_empty()).then_some(healthy)
}

/// The set's checkpoint once a resumed id joins it again: the earlier of the two, so a
/// recovery by time covers what either still lacks (replays are dropped by hash).
pub fn joined_checkpoint(set: Option<i64>, resumed: Option<i64>) -> Option<i64> {
    match (set, resumed) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
