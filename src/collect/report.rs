//! What a run says when it ends (warnings that follow from how it ended, then one summary
//! line) and on the way (gaps, recoveries, clamps).

use super::*;

impl Collector<'_> {
    /// The run's last words: warnings that follow from how it ended, then its one summary line.
    pub(super) fn log_summary(&self, failed: Option<Exit>) {
        let s = &self.summary;
        if s.events_with_decode_errors > 0 {
            tracing::warn!(
                code = "decode_errors",
                "{} event(s) had fields that could not be decoded; they are delivered with \
                 their original text and list the fields in decodeErrors",
                s.events_with_decode_errors
            );
        }
        let budget = match s.stopped_by {
            Some(reason @ (StopReason::MaxEvents | StopReason::MaxBytes)) => Some(reason),
            _ => None,
        };
        match (budget, self.replay) {
            (Some(reason), None) => {
                let behind = self
                    .planner
                    .checkpoint()
                    .map(|c| format!(" (the checkpoint is {} behind now)", ago(c)))
                    .unwrap_or_default();
                tracing::warn!(
                    code = "behind",
                    "this run reached {} with events still pending{behind}; the next run \
                     continues exactly here. If this repeats, the collector falls behind: raise \
                     max_events and Wazuh's wazuh_modules.max_eps, shorten the interval, or use \
                     the file route",
                    reason.name()
                );
            }
            (Some(reason), Some((_, to))) => {
                // Nothing is remembered, so say exactly how to go on. The checkpoint is a proven
                // lower bound of what was not delivered: a few events may repeat, none is skipped.
                let from = self.planner.checkpoint().unwrap_or(to);
                tracing::warn!(
                    code = "replay_incomplete",
                    "this run reached {} before the end of its time range; to deliver the rest, \
                     run again with --from {from} --to {to} (events near {from} may repeat), or \
                     raise --max-events/--max-bytes",
                    reason.name()
                );
            }
            (None, _) => {}
        }
        let mut status = match (failed, s.caught_up, s.stopped_by) {
            (Some(exit), _, _) => format!("failed ({})", exit.diagnostic_code()),
            (None, true, _) if self.replay.is_some() => "the whole time range delivered".into(),
            (None, true, _) => "caught up".into(),
            (None, false, Some(reason)) => format!("stopped by {}", reason.name()),
            (None, false, None) if !s.catching_up_config_ids.is_empty() => format!(
                "config id(s) {} still catching up",
                join_ids(&s.catching_up_config_ids)
            ),
            (None, false, None) => "stopped".into(),
        };
        if let Some(limit) = self.planner.smallest_limit() {
            status.push_str(&format!(
                " (responses were cut before their end; pages went down to {limit} events)"
            ));
        }
        let position = match (&self.checkpointing, self.replay) {
            (Some(checkpointing), _) => {
                let state = &checkpointing.state;
                let at = match &state.offset {
                    Some(offset) => format!("offset {}", abbreviate(offset)),
                    None => "a time query".to_string(),
                };
                let checkpoint = state
                    .checkpoint
                    .map(|c| format!(", checkpoint {}", describe(jiff_from(c))))
                    .unwrap_or_default();
                format!("next run continues at {at}{checkpoint}")
            }
            (None, Some((from, to))) => format!(
                "time range {} to {}, no state kept",
                describe(jiff_from(from)),
                describe(jiff_from(to))
            ),
            (None, None) => "no state kept".to_string(),
        };
        if !s.refused_config_ids.is_empty() {
            status.push_str(&format!(
                " (config ids fetched: {}; refused: {})",
                list_or_none(&s.config_ids),
                list_or_none(&s.refused_config_ids)
            ));
        }
        tracing::info!(
            code = "summary",
            config_ids = join_ids(&s.config_ids),
            events = s.events,
            duplicates = s.duplicates,
            pages = s.pages,
            response_bytes = s.response_bytes,
            output_bytes = s.output_bytes,
            retries = s.retries,
            output_retries = s.output_retries,
            spooled_bytes = s.spilled_bytes,
            seconds = format!("{:.3}", s.elapsed.as_secs_f64()),
            "{} events in {} page(s), {status}; {position}",
            s.events,
            s.pages
        );
    }
}

fn list_or_none(ids: &[u64]) -> String {
    if ids.is_empty() {
        "none".into()
    } else {
        join_ids(ids)
    }
}

fn ago(t: i64) -> String {
    human_duration(Duration::from_secs((unix_now() - t).max(0) as u64))
}

/// `config_id`: the notices concern that one id, tried alone (it had been refused).
pub(super) fn report_notices(notices: &[Notice], summary: &mut Summary, config_id: Option<u64>) {
    let of = config_id
        .map(|id| format!(" of config id {id}"))
        .unwrap_or_default();
    let for_id = config_id
        .map(|id| format!(" for config id {id}"))
        .unwrap_or_default();
    for notice in notices {
        match notice {
            Notice::Gap { from, to } => {
                summary.lost_events = true;
                summary.gaps += 1;
                summary.gap_seconds += u64::try_from(to - from).unwrap_or(0);
                tracing::error!(
                    code = "gap",
                    gap_from = from,
                    gap_to = to,
                    "events{of} stored from {} to {} can no longer be fetched (the API keeps 12 \
                     hours): they are lost. Run the collector more often, and alert on this",
                    describe(jiff_from(*from)),
                    describe(jiff_from(*to))
                );
            }
            Notice::Clamped { from, to } => tracing::warn!(
                code = "clamped",
                "the API refused `from` {} as older than its 12 hours; asking from {} instead",
                describe(jiff_from(*from)),
                describe(jiff_from(*to))
            ),
            Notice::Recovering { from, reason } => {
                summary.recoveries += 1;
                tracing::warn!(
                    code = "recovering",
                    "{reason}: continuing{for_id} by time from {}; events already delivered are \
                     dropped by hash",
                    describe(jiff_from(*from))
                )
            }
        }
    }
}

fn abbreviate(text: &str) -> String {
    if text.chars().count() <= 24 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(24).collect::<String>())
    }
}

pub(super) fn jiff_from(seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
