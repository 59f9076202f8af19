//! One run's budget (events, bytes) shared fairly by its tenants.
//!
//! Each tenant starts with an equal share. A tenant that finishes (caught up, or failed) gives
//! back what it did not use; a tenant that reaches its allowance takes a fair part of what was
//! given back, split among the tenants still running. So a busy tenant cannot starve the others
//! (under the wodle's 30,000 events per interval, each of three tenants is sure of 10,000), and
//! what a quiet tenant leaves is not wasted.

use std::sync::Mutex;

#[derive(Debug)]
pub struct BudgetPool {
    inner: Mutex<Pool>,
}

#[derive(Debug)]
struct Pool {
    events: u64,
    bytes: u64,
    running: u64,
}

/// An amount of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub events: u64,
    pub bytes: u64,
}

impl BudgetPool {
    /// The pool for `tenants` sharing `total`, and each tenant's first share.
    pub fn new(total: Allowance, tenants: u64) -> (BudgetPool, Allowance) {
        let tenants = tenants.max(1);
        let share = Allowance {
            events: (total.events / tenants).max(1),
            bytes: total.bytes / tenants,
        };
        let pool = BudgetPool {
            inner: Mutex::new(Pool {
                events: total.events.saturating_sub(share.events * tenants),
                bytes: total.bytes.saturating_sub(share.bytes * tenants),
                running: tenants,
            }),
        };
        (pool, share)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// More for a tenant at its allowance: an equal part of what is free among the tenants
    /// still running. Zero when nothing is free.
    pub fn grant(&self) -> Allowance {
        let mut pool = self.lock();
        let running = pool.running.max(1);
        let events = pool.events.div_ceil(running);
        let bytes = pool.bytes.div_ceil(running);
        pool.events -= events;
        pool.bytes -= bytes;
        Allowance { events, bytes }
    }

    /// A tenant is done: what it did not use is free for the others.
    pub fn finish(&self, unused: Allowance) {
        let mut pool = self.lock();
        pool.events += unused.events;
        pool.bytes += unused.bytes;
        pool.running = pool.running.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOTAL: Allowance = Allowance {
        events: 30_000,
        bytes: 60 * 1024 * 1024,
    };

    #[test]
    fn each_tenant_is_sure_of_an_equal_share() {
        let (pool, share) = BudgetPool::new(TOTAL, 3);
        assert_eq!(share.events, 10_000);
        assert_eq!(share.bytes, 20 * 1024 * 1024);
        // A busy tenant asking for more while the others run gets nothing of theirs.
        assert_eq!(pool.grant().events, 0);
    }

    #[test]
    fn what_a_finished_tenant_leaves_goes_to_those_still_running() {
        let (pool, share) = BudgetPool::new(TOTAL, 3);
        // A quiet tenant used 1,000 events and 1 MiB.
        pool.finish(Allowance {
            events: share.events - 1_000,
            bytes: share.bytes - 1024 * 1024,
        });
        // Two tenants still run: each gets half of the 9,000 left.
        let first = pool.grant();
        assert_eq!(first.events, 4_500);
        let second = pool.grant();
        assert_eq!(
            second.events, 2_250,
            "half of what is left, still fair to the other"
        );
        pool.finish(Allowance {
            events: 0,
            bytes: 0,
        });
        pool.finish(Allowance {
            events: 0,
            bytes: 0,
        });
        assert_eq!(pool.grant().events, 2_250, "the last one takes the rest");
        assert_eq!(pool.grant().events, 0);
    }

    #[test]
    fn nothing_is_created_or_lost() {
        let (pool, share) = BudgetPool::new(
            Allowance {
                events: 10,
                bytes: 100,
            },
            3,
        );
        assert_eq!(share.events, 3);
        let mut granted = share.events * 3;
        for _ in 0..3 {
            granted += pool.grant().events;
            pool.finish(Allowance {
                events: 0,
                bytes: 0,
            });
        }
        assert_eq!(granted, 10);
    }
}
