//! Waiting before a remote destination (syslog, HTTP) is tried again.
//!
//! A receiver that restarts, a load balancer that drops a connection, a 503 during a deploy:
//! these pass within seconds, so a remote sink retries on its own before it gives up and the run
//! ends with the output exit code. All waits of one run come out of one budget (the run's
//! `retry_budget`), so a receiver that stays down ends the run in time for the next one, and a
//! SIGTERM ends any wait at once: Wazuh's wodle and systemd wait for us.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BASE_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Backoff {
    budget: Duration,
    spent: Duration,
    attempts: u32,
    stop: Arc<AtomicBool>,
    /// Retries over the whole run, for the summary.
    pub retries: u64,
}

/// Why no retry follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The run's retry budget is spent.
    BudgetSpent,
    /// SIGTERM/SIGINT arrived.
    Stopped,
}

impl Backoff {
    pub fn new(budget: Duration) -> Backoff {
        Backoff {
            budget,
            spent: Duration::ZERO,
            attempts: 0,
            stop: Arc::new(AtomicBool::new(false)),
            retries: 0,
        }
    }

    /// Wake early and give up when `stop` is set (the run's signal flag).
    pub fn set_stop(&mut self, stop: Arc<AtomicBool>) {
        self.stop = stop;
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The receiver took something: the next failure starts from the shortest wait again.
    pub fn succeeded(&mut self) {
        self.attempts = 0;
    }

    /// The next wait: doubling from 250 ms to at most 15 s, or what the receiver asked for
    /// (`Retry-After`), never past what is left of the budget.
    pub fn next_delay(&mut self, asked: Option<Duration>) -> Result<Duration, GiveUp> {
        if self.stopped() {
            return Err(GiveUp::Stopped);
        }
        let left = self.budget.saturating_sub(self.spent);
        if left.is_zero() {
            return Err(GiveUp::BudgetSpent);
        }
        let doubling = BASE_DELAY
            .saturating_mul(1 << self.attempts.min(16))
            .min(MAX_DELAY);
        self.attempts += 1;
        let delay = asked.unwrap_or(doubling);
        if delay > left {
            // Waiting less than the receiver asked would only be refused again.
            if asked.is_some() {
                return Err(GiveUp::BudgetSpent);
            }
            return Ok(left);
        }
        Ok(delay)
    }

    /// Wait `delay` (counted against the budget), waking early on a signal.
    pub fn wait(&mut self, delay: Duration) -> Result<(), GiveUp> {
        self.retries += 1;
        let started = Instant::now();
        let deadline = started + delay;
        loop {
            if self.stopped() {
                self.spent += started.elapsed();
                return Err(GiveUp::Stopped);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
        self.spent += delay;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_budget_then_it_gives_up() {
        let mut backoff = Backoff::new(Duration::from_secs(1));
        let first = backoff.next_delay(None).unwrap();
        let second = backoff.next_delay(None).unwrap();
        assert_eq!(second, first * 2);
        backoff.spent = Duration::from_millis(900);
        assert_eq!(
            backoff.next_delay(None).unwrap(),
            Duration::from_millis(100),
            "the last wait is what the budget has left"
        );
        backoff.spent = Duration::from_secs(1);
        assert_eq!(backoff.next_delay(None), Err(GiveUp::BudgetSpent));
    }

    #[test]
    fn a_retry_after_beyond_the_budget_gives_up_instead_of_retrying_early() {
        let mut backoff = Backoff::new(Duration::from_secs(5));
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(2))).unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(60))),
            Err(GiveUp::BudgetSpent)
        );
    }

    #[test]
    fn success_starts_the_doubling_again() {
        let mut backoff = Backoff::new(Duration::from_secs(60));
        let first = backoff.next_delay(None).unwrap();
        backoff.next_delay(None).unwrap();
        backoff.succeeded();
        assert_eq!(backoff.next_delay(None).unwrap(), first);
    }

    #[test]
    fn a_signal_ends_a_wait_at_once() {
        let mut backoff = Backoff::new(Duration::from_secs(60));
        let stop = Arc::new(AtomicBool::new(false));
        backoff.set_stop(Arc::clone(&stop));
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        assert_eq!(backoff.wait(Duration::from_secs(30)), Err(GiveUp::Stopped));
        assert!(started.elapsed() < Duration::from_secs(5));
        setter.join().unwrap();
        assert_eq!(backoff.next_delay(None), Err(GiveUp::Stopped));
    }
}
