//! What happens to each formatted event of a page, in order: replays dropped, budgets
//! checked, lines buffered and written, hashes journalled for exactly the lines that went out.

use super::*;
use crate::sink::{KeptLines, journal};

/// Everything that happens to one formatted event, in page order.
pub(super) struct Delivery {
    pub(super) sink: Sink,
    pub(super) seen: Seen,
    pub(super) max_events: u64,
    pub(super) max_bytes: u64,
    /// Events and bytes handed to the sink (the budgets count these).
    pub(super) events: u64,
    pub(super) bytes: u64,
    /// Of those, what a successful write has taken: what a summary may call delivered.
    pub(super) written_events: u64,
    pub(super) written_bytes: u64,
    pub(super) duplicates: u64,
    pub(super) events_with_decode_errors: u64,
    pub(super) shrunk_events: u64,
    pub(super) page_max_start: Option<f64>,
    pub(super) budget_hit: Option<StopReason>,
    /// On a terminal only.
    pub(super) progress: ProgressLine,
    /// The run's budget shared with other tenants: asked for more when this one's is spent.
    pub(super) pool: Option<std::sync::Arc<BudgetPool>>,
    /// What is kept of the current batch, written at its end.
    pub(super) kept: KeptLines,
}

impl Deliver for Delivery {
    fn event(&mut self, event: Event<'_>) -> anyhow::Result<Flow> {
        if let Some(start) = event.start {
            self.page_max_start = Some(self.page_max_start.map_or(start, |m| m.max(start)));
        }
        if self.seen.contains(event.hash) {
            self.duplicates += 1;
            return Ok(Flow::Continue);
        }
        if self.events >= self.max_events && !self.more_from_the_pool() {
            self.budget_hit = Some(StopReason::MaxEvents);
            return Ok(Flow::Stop);
        }
        let length = event.line.len() as u64 + 1;
        // The first event always goes, so a single huge event cannot stall the collector.
        while self.events > 0 && self.bytes + length > self.max_bytes {
            if !self.more_from_the_pool() {
                self.budget_hit = Some(StopReason::MaxBytes);
                return Ok(Flow::Stop);
            }
        }
        self.kept.keep(event.at..event.at + event.line.len());
        self.seen.record(event.hash);
        self.events += 1;
        self.bytes += length;
        self.events_with_decode_errors += u64::from(event.formatted.decode_errors);
        self.shrunk_events += u64::from(event.formatted.shrunk);
        self.progress.event(self.events, self.bytes, event.start);
        Ok(Flow::Continue)
    }

    /// What was kept of the batch goes out (see [`KeptLines`]).
    fn end_of_batch(&mut self, output: &[u8]) -> anyhow::Result<()> {
        let (events, bytes) = (self.events, self.bytes);
        let Delivery {
            kept,
            sink,
            seen,
            written_events,
            written_bytes,
            ..
        } = self;
        kept.write_to(output, sink, |written| {
            if written.is_ok() {
                (*written_events, *written_bytes) = (events, bytes);
            }
            journal(seen, written)
        })
    }
}

impl Delivery {
    /// Nothing delivered yet: `max_events` and `max_bytes` are this tenant's budget, `pool` the
    /// run's shared one when tenants share it.
    pub(super) fn new(
        sink: Sink,
        seen: Seen,
        max_events: u64,
        max_bytes: u64,
        pool: Option<std::sync::Arc<BudgetPool>>,
    ) -> Delivery {
        Delivery {
            sink,
            seen,
            max_events,
            max_bytes,
            events: 0,
            bytes: 0,
            written_events: 0,
            written_bytes: 0,
            duplicates: 0,
            events_with_decode_errors: 0,
            shrunk_events: 0,
            page_max_start: None,
            budget_hit: None,
            progress: ProgressLine::new(None),
            pool,
            kept: KeptLines::default(),
        }
    }

    /// Whether any of the budget is left, asking the shared pool when this tenant's is spent.
    pub(super) fn has_allowance(&mut self) -> bool {
        self.events < self.max_events || self.more_from_the_pool()
    }

    /// Take a fair part of what other tenants left; false when nothing more is free.
    fn more_from_the_pool(&mut self) -> bool {
        let Some(pool) = &self.pool else {
            return false;
        };
        let more = pool.grant();
        self.max_events += more.events;
        self.max_bytes += more.bytes;
        more.events > 0 && more.bytes > 0
    }

    /// Give back what this tenant did not use, once its run is over.
    pub(super) fn return_unused(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.finish(Allowance {
                events: self.max_events.saturating_sub(self.events),
                bytes: self.max_bytes.saturating_sub(self.bytes),
            });
        }
    }

    /// Write the buffered lines, then journal exactly their hashes.
    pub(super) fn flush(&mut self) -> anyhow::Result<()> {
        debug_assert!(
            self.kept.is_empty(),
            "kept lines are written at their batch's end"
        );
        let written = self.sink.flush();
        if written.is_ok() {
            self.written_events = self.events;
            self.written_bytes = self.bytes;
        }
        journal(&mut self.seen, written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Identity;
    use crate::sink::{BUFFER_SIZE, RecordedWrites};
    use std::cell::RefCell;
    use std::rc::Rc;

    fn delivery(writes: &Rc<RefCell<Vec<Vec<u8>>>>, max_events: u64) -> Delivery {
        let sink = Sink::new(Box::new(RecordedWrites(Rc::clone(writes))));
        Delivery::new(sink, Seen::in_memory(1_000), max_events, u64::MAX, None)
    }

    /// Hands `lines` over as one batch's events (output lines as a worker lays them out), as
    /// the page reader does; how the batch's events were taken.
    fn hand_over(delivery: &mut Delivery, identity: &Identity, lines: &[&str]) -> Vec<Flow> {
        let output: String = lines.iter().map(|line| format!("{line}\n")).collect();
        let mut flows = Vec::new();
        let mut at = 0;
        for line in lines {
            let event = Event {
                hash: identity.hash(line.as_bytes()),
                start: None,
                line: line.as_bytes(),
                at,
                formatted: Default::default(),
            };
            at += line.len() + 1;
            let flow = delivery.event(event).unwrap();
            flows.push(flow);
            if flow == Flow::Stop {
                break;
            }
        }
        delivery.end_of_batch(output.as_bytes()).unwrap();
        flows
    }

    #[test]
    fn a_batch_kept_whole_is_one_write_and_a_replay_within_it_is_left_out() {
        let writes = Rc::default();
        let mut delivery = delivery(&writes, u64::MAX);
        let identity = delivery.seen.identity().clone();
        let big = "e".repeat(BUFFER_SIZE);
        let whole = [big.as_str(), "f", "g", "h", "i"];
        hand_over(&mut delivery, &identity, &whole);
        assert_eq!(writes.borrow().len(), 1, "kept whole: written as it is");
        assert_eq!(delivery.written_events, 5);
        // `f` and `g` come again within the next batch: the lines around them still go out,
        // in order, and only once.
        hand_over(&mut delivery, &identity, &["j", "f", "k", "g", "l"]);
        delivery.flush().unwrap();
        let written = writes.borrow().concat();
        let expected: String = [&whole[..], &["j", "k", "l"]]
            .concat()
            .iter()
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(String::from_utf8(written).unwrap(), expected);
        assert_eq!((delivery.events, delivery.duplicates), (8, 2));
        assert_eq!(delivery.written_events, 8);
    }

    #[test]
    fn a_budget_spent_within_a_batch_writes_what_was_kept_before_it() {
        let writes = Rc::default();
        let mut delivery = delivery(&writes, 2);
        let identity = delivery.seen.identity().clone();
        let flows = hand_over(&mut delivery, &identity, &["a", "b", "c", "d"]);
        assert_eq!(flows, [Flow::Continue, Flow::Continue, Flow::Stop]);
        assert_eq!(delivery.budget_hit, Some(StopReason::MaxEvents));
        delivery.flush().unwrap();
        assert_eq!(writes.borrow().concat(), b"a\nb\n");
        assert!(delivery.kept.is_empty());
    }
}
