//! A progress line on stderr for a person watching a long run (a manual `--from -12h` replay):
//! events, MB/s, how far through the time range. Only when stderr is a terminal: under Wazuh's
//! wodle stderr is stdout's pipe, under cron or systemd a pipe or a file, and a line redrawn
//! with carriage returns would land in a log or in the event stream.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraws per second are capped: the terminal is not the bottleneck of a replay.
const REDRAW: Duration = Duration::from_millis(250);

pub(super) struct ProgressLine {
    shown: bool,
    started: Instant,
    last_drawn: Option<Instant>,
    /// The time range the run works through (Unix seconds), when it has one.
    range: Option<(i64, i64)>,
    /// The latest event time seen: how far through the range the run is.
    reached: Option<f64>,
}

impl ProgressLine {
    /// Shown only when stderr is a terminal.
    pub(super) fn new(range: Option<(i64, i64)>) -> ProgressLine {
        ProgressLine::with(std::io::stderr().is_terminal(), range)
    }

    fn with(shown: bool, range: Option<(i64, i64)>) -> ProgressLine {
        ProgressLine {
            shown,
            started: Instant::now(),
            last_drawn: None,
            range,
            reached: None,
        }
    }

    /// After each delivered event: cheap unless a redraw is due.
    pub(super) fn event(&mut self, events: u64, bytes: u64, start: Option<f64>) {
        if !self.shown {
            return;
        }
        if let Some(start) = start {
            self.reached = Some(self.reached.map_or(start, |r| r.max(start)));
        }
        // Reading the clock costs nanoseconds, and only on a terminal.
        let now = Instant::now();
        if self.last_drawn.is_some_and(|t| now - t < REDRAW) {
            return;
        }
        self.last_drawn = Some(now);
        let text = line(events, bytes, now - self.started, self.fraction());
        // `\r` and erase-to-end-of-line: the line is redrawn in place.
        let _ = write!(std::io::stderr(), "\r{text}\x1b[K");
    }

    /// Before the run's last words: the summary line takes the place of the progress line.
    pub(super) fn clear(&mut self) {
        if self.shown && self.last_drawn.take().is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }

    fn fraction(&self) -> Option<f64> {
        let (from, to) = self.range?;
        let reached = self.reached?;
        (to > from).then(|| ((reached - from as f64) / (to - from) as f64).clamp(0.0, 1.0))
    }
}

/// The progress text (without control characters).
fn line(events: u64, bytes: u64, elapsed: Duration, fraction: Option<f64>) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    let rate = bytes as f64 / 1e6 / seconds;
    let mut text = format!("akamai-siem: {events} events, {rate:.1} MB/s");
    if let Some(fraction) = fraction {
        text.push_str(&format!(", {:.0}% of the time range", fraction * 100.0));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_events_rate_and_how_far_through_the_range() {
        assert_eq!(
            line(1200, 5_000_000, Duration::from_secs(2), Some(0.456)),
            "akamai-siem: 1200 events, 2.5 MB/s, 46% of the time range"
        );
        assert_eq!(
            line(0, 0, Duration::ZERO, None),
            "akamai-siem: 0 events, 0.0 MB/s"
        );
    }

    #[test]
    fn the_fraction_follows_the_latest_event_and_stays_within_the_range() {
        let mut progress = ProgressLine::with(true, Some((1000, 2000)));
        progress.reached = Some(1250.0);
        assert_eq!(progress.fraction(), Some(0.25));
        progress.reached = Some(5000.0);
        assert_eq!(progress.fraction(), Some(1.0));
        assert_eq!(ProgressLine::with(true, None).fraction(), None);
    }

    #[test]
    fn nothing_is_tracked_when_not_shown() {
        let mut progress = ProgressLine::with(false, Some((0, 10)));
        progress.event(1, 10, Some(5.0));
        assert_eq!(progress.reached, None);
        assert!(progress.last_drawn.is_none());
    }
}
