//! When and how long to wait before asking again.
//!
//! Exponential backoff with jitter, because the 429 limit is shared by every client of the
//! account: clients retrying in lockstep would keep hitting it. `Retry-After` is honoured. All
//! waits of one run come out of one budget sized to fit the schedule interval, so a run that
//! cannot succeed ends in time for the next one instead of overlapping it.

use crate::source::api::ApiError;
use std::time::Duration;

/// Attempts for one request before the run gives up on it.
pub const MAX_ATTEMPTS: u32 = 6;
/// A skewed clock is not fixed by waiting: re-sign at once, a couple of times.
const MAX_TIMESTAMP_RETRIES: u32 = 2;
const BASE_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Retry {
    budget: Duration,
    spent: Duration,
    attempts: u32,
    timestamp_retries: u32,
    pub total_retries: u32,
}

impl Retry {
    pub fn new(budget: Duration) -> Retry {
        Retry {
            budget,
            spent: Duration::ZERO,
            attempts: 0,
            timestamp_retries: 0,
            total_retries: 0,
        }
    }

    /// A page succeeded: the next failure starts its backoff from the beginning.
    pub fn succeeded(&mut self) {
        self.attempts = 0;
        self.timestamp_retries = 0;
    }

    /// A retry that needs no wait and starts a fresh backoff: the request itself changed (a cut
    /// page asked again with a smaller limit), so earlier failures say nothing about it.
    pub fn retried_at_once(&mut self) {
        self.attempts = 0;
        self.total_retries += 1;
    }

    /// How long to wait before retrying after `error`; `None` when the run should give up.
    /// `jitter` is a uniformly random number in `[0, 1)`.
    pub fn next_delay(&mut self, error: &ApiError, jitter: f64) -> Option<Duration> {
        if !error.is_transient() {
            return None;
        }
        if matches!(error, ApiError::InvalidTimestamp { .. }) {
            self.timestamp_retries += 1;
            self.total_retries += 1;
            return (self.timestamp_retries <= MAX_TIMESTAMP_RETRIES).then_some(Duration::ZERO);
        }
        self.attempts += 1;
        if self.attempts >= MAX_ATTEMPTS {
            return None;
        }
        let exponential = BASE_DELAY
            .saturating_mul(1 << (self.attempts - 1).min(16))
            .min(MAX_DELAY);
        // "Equal jitter": at least half the backoff, so retries never bunch at zero.
        let jittered = exponential.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
        let delay = match error.retry_after() {
            Some(asked) => jittered.max(asked),
            None => jittered,
        };
        if self.spent + delay > self.budget {
            return None;
        }
        self.spent += delay;
        self.total_retries += 1;
        Some(delay)
    }
}

/// A random number in `[0, 1)` from the OS (through uuid's generator, already a dependency).
pub fn random_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error() -> ApiError {
        ApiError::Server {
            status: 503,
            detail: "x".into(),
        }
    }

    #[test]
    fn backoff_grows_and_stays_within_jitter_bounds() {
        let mut retry = Retry::new(Duration::from_secs(1000));
        let delays: Vec<Duration> = (0..4)
            .map(|_| retry.next_delay(&server_error(), 0.0).unwrap())
            .collect();
        assert_eq!(
            delays,
            vec![
                Duration::from_millis(500),
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4)
            ]
        );
        let mut retry = Retry::new(Duration::from_secs(1000));
        assert_eq!(
            retry
                .next_delay(&server_error(), 0.999_999)
                .unwrap()
                .as_millis(),
            999
        );
    }

    #[test]
    fn attempts_per_request_are_bounded_and_reset_by_success() {
        let mut retry = Retry::new(Duration::from_secs(1000));
        let count = (0..100)
            .take_while(|_| retry.next_delay(&server_error(), 0.5).is_some())
            .count();
        assert_eq!(count as u32, MAX_ATTEMPTS - 1);
        retry.succeeded();
        assert!(retry.next_delay(&server_error(), 0.5).is_some());
    }

    #[test]
    fn the_run_budget_caps_all_waits() {
        let mut retry = Retry::new(Duration::from_secs(3));
        assert!(retry.next_delay(&server_error(), 0.0).is_some()); // 0.5 s
        assert!(retry.next_delay(&server_error(), 0.0).is_some()); // 1 s
        assert!(
            retry.next_delay(&server_error(), 0.0).is_none(),
            "2 s more would pass 3 s"
        );
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut retry = Retry::new(Duration::from_secs(100));
        let limited = ApiError::RateLimited {
            detail: "x".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            retry.next_delay(&limited, 0.0),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn clock_skew_is_retried_at_once_twice() {
        let mut retry = Retry::new(Duration::ZERO);
        let skew = ApiError::InvalidTimestamp { detail: "x".into() };
        assert_eq!(retry.next_delay(&skew, 0.5), Some(Duration::ZERO));
        assert_eq!(retry.next_delay(&skew, 0.5), Some(Duration::ZERO));
        assert_eq!(retry.next_delay(&skew, 0.5), None);
    }

    #[test]
    fn permanent_errors_are_never_retried() {
        let mut retry = Retry::new(Duration::from_secs(100));
        let denied = ApiError::Unauthorized { detail: "x".into() };
        assert_eq!(retry.next_delay(&denied, 0.5), None);
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..100 {
            let x = random_unit();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
