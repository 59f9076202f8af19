//! What happens to each formatted event of a page, in order: replays dropped, budgets
//! checked, lines buffered and written, hashes journalled for exactly the lines that went out.

use super::*;

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
        if self.sink.needs_flush_before(event.line.len()) {
            self.flush()?;
        }
        self.sink.append(event.line);
        self.seen.record(event.hash);
        self.events += 1;
        self.bytes += length;
        self.events_with_decode_errors += u64::from(event.formatted.decode_errors);
        self.shrunk_events += u64::from(event.formatted.shrunk);
        self.progress.event(self.events, self.bytes, event.start);
        if self.sink.is_full() {
            self.flush()?;
        }
        Ok(Flow::Continue)
    }
}

impl Delivery {
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
        if let Err(error) = self.sink.flush() {
            // Unknown how much reached the reader: not journalled, so at worst sent twice.
            self.seen.discard_pending();
            return Err(error.into());
        }
        self.written_events = self.events;
        self.written_bytes = self.bytes;
        self.seen.flush()?;
        Ok(())
    }
}
