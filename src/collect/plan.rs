//! Planning requests: which query comes next, how big a page, and how to recover.
//!
//! Pure: it is told the time and what each page returned, and answers with the next request.
//! Offset mode is the primary mode (API doc §2: a time window misses events stored late for it);
//! time mode is for the first run, replays, and recovery when an offset is gone.

use crate::checkpoint::State;
use crate::source::api::{ApiError, Query, Request};
use std::time::Duration;

/// Never ask for `to` later than this before now (the API rejects `to` > now − 5 s; its safe
/// reading is now − 60 s).
pub const SAFETY_LAG: i64 = 60;
/// How long the API keeps events: a `from` older than this is refused (API doc §2).
pub const HORIZON: i64 = 12 * 3600;
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
    pub fn from_rejected(&mut self, now: i64) -> Option<Vec<Notice>> {
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
            to: None,
        };
        self.offset_obtained_at = None;
        notices
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_741_946_405;

    fn settings() -> PlanSettings {
        PlanSettings {
            limit: 10_000,
            initial_lookback: Duration::from_secs(300),
            offset_ttl: None,
            overlap: Duration::from_secs(120),
        }
    }

    fn state_with_offset(obtained: i64, checkpoint: i64) -> State {
        let mut state = State::new("h", "1;2");
        state.offset = Some("abc;def".into());
        state.offset_obtained_at = Some(obtained);
        state.checkpoint = Some(checkpoint);
        state
    }

    fn page(events: u64, cut: bool, max_start: Option<f64>) -> PageResult {
        PageResult {
            events,
            offset: format!("o{events}"),
            cut_at_limit: cut,
            max_event_start: max_start,
            requested_at: NOW,
        }
    }

    #[test]
    fn first_run_starts_by_time_without_an_upper_bound() {
        let (planner, notices) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
        assert!(notices.is_empty());
        assert_eq!(
            planner.next_request(u64::MAX).query,
            Query::Time {
                from: NOW - 300,
                to: None
            }
        );
        assert_eq!(planner.checkpoint(), Some(NOW - 300));
    }

    #[test]
    fn later_runs_continue_by_offset() {
        let state = state_with_offset(NOW - 300, NOW - 400);
        let (planner, notices) = Planner::stateful(Some(&state), "h", "1;2", &settings(), NOW);
        assert!(notices.is_empty());
        assert_eq!(
            planner.next_request(5).query,
            Query::Offset("abc;def".into())
        );
    }

    #[test]
    fn pages_are_sized_to_the_remaining_budget() {
        let (planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
        assert_eq!(planner.next_request(2_500).limit, 2_500);
        assert_eq!(planner.next_request(50_000).limit, 10_000);
        assert_eq!(planner.next_request(0).limit, 1);
    }

    #[test]
    fn a_full_page_asks_for_more_and_a_short_one_is_caught_up() {
        let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
        assert_eq!(
            planner.page_done(&page(100, false, None), 100),
            Progress::More
        );
        assert_eq!(planner.next_request(1).query, Query::Offset("o100".into()));
        assert_eq!(planner.page_done(&page(5, true, None), 100), Progress::More);
        assert_eq!(
            planner.page_done(&page(5, false, None), 100),
            Progress::CaughtUp
        );
    }

    #[test]
    fn checkpoint_follows_event_starts_and_catch_up_time_never_the_future() {
        let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
        planner.page_done(&page(100, false, Some((NOW - 200) as f64 + 0.5)), 100);
        assert_eq!(planner.checkpoint(), Some(NOW - 200 - CHECKPOINT_MARGIN));
        // An event claiming a start in the future cannot move the checkpoint past the request.
        planner.page_done(&page(100, false, Some((NOW + 9_999) as f64)), 100);
        assert_eq!(planner.checkpoint(), Some(NOW - CHECKPOINT_MARGIN));
        // Caught up: the request time is the checkpoint; it never moves back.
        planner.page_done(&page(1, false, Some((NOW - 5_000) as f64)), 100);
        assert_eq!(planner.checkpoint(), Some(NOW - CHECKPOINT_MARGIN));
    }

    #[test]
    fn expired_offset_recovers_from_checkpoint_minus_overlap() {
        let state = state_with_offset(NOW - 300, NOW - 1_000);
        let (mut planner, _) = Planner::stateful(Some(&state), "h", "1;2", &settings(), NOW);
        let notices = planner.offset_expired(NOW).unwrap();
        assert!(matches!(notices[0], Notice::Recovering { from, .. } if from == NOW - 1_120));
        assert_eq!(notices.len(), 1, "no gap within the horizon");
        assert_eq!(
            planner.next_request(10).query,
            Query::Time {
                from: NOW - 1_120,
                to: None
            }
        );
    }

    #[test]
    fn a_checkpoint_beyond_twelve_hours_reports_the_exact_gap() {
        let old = NOW - 20 * 3600;
        let state = state_with_offset(NOW - 300, old);
        let (mut planner, _) = Planner::stateful(Some(&state), "h", "1;2", &settings(), NOW);
        let notices = planner.offset_expired(NOW).unwrap();
        let earliest = NOW - HORIZON + HORIZON_MARGIN;
        assert!(notices.contains(&Notice::Gap {
            from: old,
            to: earliest
        }));
        assert_eq!(
            planner.next_request(10).query,
            Query::Time {
                from: earliest,
                to: None
            }
        );
    }

    #[test]
    fn recoveries_per_run_are_capped() {
        let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
        for _ in 0..MAX_RECOVERIES {
            planner.offset_expired(NOW).unwrap();
        }
        assert!(matches!(
            planner.offset_expired(NOW),
            Err(ApiError::OffsetsKeepExpiring { .. })
        ));
    }

    #[test]
    fn an_old_offset_beyond_its_ttl_is_not_used() {
        let state = state_with_offset(NOW - 7_200, NOW - 7_300);
        let ttl = PlanSettings {
            offset_ttl: Some(Duration::from_secs(3_600)),
            ..settings()
        };
        let (planner, notices) = Planner::stateful(Some(&state), "h", "1;2", &ttl, NOW);
        assert!(
            matches!(&notices[0], Notice::Recovering { reason, .. } if reason.contains("offset_ttl"))
        );
        assert_eq!(
            planner.next_request(1).query,
            Query::Time {
                from: NOW - 7_420,
                to: None
            }
        );
    }

    #[test]
    fn a_changed_config_set_does_not_reuse_the_offset() {
        let state = state_with_offset(NOW - 60, NOW - 100);
        let (planner, notices) = Planner::stateful(Some(&state), "h", "1;2;3", &settings(), NOW);
        assert!(
            matches!(&notices[0], Notice::Recovering { reason, .. } if reason.contains("config ids"))
        );
        assert!(matches!(planner.next_request(1).query, Query::Time { .. }));
    }

    #[test]
    fn a_rejected_from_is_clamped_once_and_a_replay_reports_no_gap() {
        let mut planner = Planner::replay(NOW - HORIZON + 10, NOW - 60, 10);
        let notices = planner.from_rejected(NOW).unwrap();
        let clamped = NOW - HORIZON + 2 * HORIZON_MARGIN;
        assert_eq!(
            notices,
            vec![Notice::Clamped {
                from: NOW - HORIZON + 10,
                to: clamped
            }]
        );
        assert!(planner.from_rejected(NOW).is_none(), "only once");
    }

    #[test]
    fn a_twelve_hour_first_run_starts_at_the_edge_without_a_gap() {
        let twelve_hours = PlanSettings {
            initial_lookback: Duration::from_secs(HORIZON as u64),
            ..settings()
        };
        let (mut planner, notices) = Planner::stateful(None, "h", "1;2", &twelve_hours, NOW);
        assert!(notices.is_empty());
        let from = NOW - HORIZON + HORIZON_MARGIN;
        assert_eq!(
            planner.next_request(1).query,
            Query::Time { from, to: None }
        );
        // Even if the API's clock is ahead and it refuses: clamp, but nothing was promised.
        let notices = planner.from_rejected(NOW + 30).unwrap();
        assert!(
            !notices.iter().any(|n| matches!(n, Notice::Gap { .. })),
            "{notices:?}"
        );
    }

    #[test]
    fn a_checkpoint_just_inside_the_horizon_is_no_gap() {
        // 11h58m ago: still retrievable. The overlap is cut to the edge, but nothing is lost.
        let checkpoint = NOW - HORIZON + 120;
        let state = state_with_offset(NOW - 300, checkpoint);
        let (mut planner, _) = Planner::stateful(Some(&state), "h", "1;2", &settings(), NOW);
        let notices = planner.offset_expired(NOW).unwrap();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(
            planner.next_request(1).query,
            Query::Time {
                from: NOW - HORIZON + HORIZON_MARGIN,
                to: None
            }
        );
    }

    #[test]
    fn a_cut_page_is_asked_again_with_half_the_limit_down_to_a_floor() {
        let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
        let query = planner.next_request(u64::MAX).query;
        assert_eq!(planner.page_cut(10_000), Some(5_000));
        let again = planner.next_request(u64::MAX);
        assert_eq!(again.query, query, "the same query, only smaller");
        assert_eq!(again.limit, 5_000);
        let mut limits = Vec::new();
        while let Some(limit) = planner.page_cut(planner.next_request(u64::MAX).limit) {
            limits.push(limit);
        }
        assert_eq!(limits, vec![2_500, 1_250, 625, 312, 156, MIN_CUT_LIMIT]);
        assert_eq!(planner.smallest_limit(), Some(MIN_CUT_LIMIT));
        // A configured limit below the floor is the floor.
        let mut small = Planner::replay(NOW - 600, NOW - 60, 10);
        assert_eq!(small.page_cut(10), None);
    }

    #[test]
    fn complete_pages_grow_a_shrunk_limit_back() {
        let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
        planner.page_cut(10_000);
        planner.page_cut(5_000);
        let mut seen = Vec::new();
        for _ in 0..3 * PAGES_BEFORE_GROWING {
            let limit = planner.next_request(u64::MAX).limit;
            seen.push(limit);
            planner.page_done(&page(u64::from(limit), false, None), limit);
        }
        assert_eq!(seen[0], 2_500);
        assert_eq!(seen[PAGES_BEFORE_GROWING as usize], 5_000);
        assert_eq!(seen[2 * PAGES_BEFORE_GROWING as usize], 10_000);
        assert_eq!(
            planner.next_request(u64::MAX).limit,
            10_000,
            "never above the configured limit"
        );
        assert_eq!(planner.smallest_limit(), Some(2_500));
    }

    #[test]
    fn window_mode_matches_the_python_script_with_a_safety_lag() {
        let (from, to) = window_range(Duration::from_secs(300), NOW);
        let planner = Planner::replay(from, to, 600_000);
        assert_eq!(
            planner.next_request(u64::MAX).query,
            Query::Time {
                from: NOW - 360,
                to: Some(NOW - 60)
            }
        );
    }
}
