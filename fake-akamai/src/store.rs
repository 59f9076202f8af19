//! What the fake API knows: events by id in storage order, and the offsets it handed out.
//!
//! Events are not kept: only segments of ids with their storage-time range, so 600,000 events
//! cost a few bytes. An event's bytes are rendered from its id when served.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::BTreeMap;
use std::ops::Range;

#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    count: u64,
    from: f64,
    to: f64,
}

#[derive(Debug, Default)]
pub struct Store {
    segments: Vec<Segment>,
    /// Ids of one-off large events and their approximate size.
    pub large: BTreeMap<u64, usize>,
}

impl Store {
    pub fn len(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.first + s.count)
    }

    /// `n` events stored at times spread evenly over `[from, to]`, never before the last one.
    pub fn append(&mut self, n: u64, from: f64, to: f64) -> Range<u64> {
        let first = self.len();
        if n == 0 {
            return first..first;
        }
        let floor = self.segments.last().map_or(f64::MIN, |s| s.to);
        let from = from.max(floor);
        let to = to.max(from);
        self.segments.push(Segment {
            first,
            count: n,
            from,
            to,
        });
        first..first + n
    }

    pub fn stored_at(&self, id: u64) -> f64 {
        let segment = &self.segments[self.segment_of(id)];
        if segment.count == 1 {
            return segment.from;
        }
        let position = (id - segment.first) as f64 / (segment.count - 1) as f64;
        segment.from + (segment.to - segment.from) * position
    }

    fn segment_of(&self, id: u64) -> usize {
        self.segments.partition_point(|s| s.first + s.count <= id)
    }

    /// The smallest id stored at or after `t` (or `len()` when none is).
    pub fn first_at_or_after(&self, t: f64) -> u64 {
        let index = self.segments.partition_point(|s| s.to < t);
        let Some(segment) = self.segments.get(index) else {
            return self.len();
        };
        if segment.from >= t || segment.count == 1 {
            return segment.first;
        }
        let span = segment.to - segment.from;
        let estimate = ((t - segment.from) / span * (segment.count - 1) as f64).floor() as u64;
        let mut id = segment.first + estimate.min(segment.count - 1);
        while id > segment.first && self.stored_at(id - 1) >= t {
            id -= 1;
        }
        while id < segment.first + segment.count && self.stored_at(id) < t {
            id += 1;
        }
        id
    }
}

/// An offset as handed to clients: opaque to them, with `;`, `-` or `_` in it like real ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offset {
    /// The next id to serve.
    pub next: u64,
    /// The config-id set it belongs to, as `1;2`.
    pub configs: String,
    pub issued_at: i64,
    pub serial: u64,
}

impl Offset {
    pub fn encode(&self) -> String {
        let payload = format!("{}|{}|{}", self.configs, self.issued_at, self.serial);
        format!("{:x};{}", self.next, URL_SAFE_NO_PAD.encode(payload))
    }

    pub fn decode(text: &str) -> Option<Offset> {
        let (next, payload) = text.split_once(';')?;
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let mut parts = payload.split('|');
        let configs = parts.next()?.to_string();
        let issued_at = parts.next()?.parse().ok()?;
        let serial = parts.next()?.parse().ok()?;
        Some(Offset {
            next: u64::from_str_radix(next, 16).ok()?,
            configs,
            issued_at,
            serial,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_times_are_spread_and_searchable() {
        let mut store = Store::default();
        assert_eq!(store.append(10, 100.0, 109.0), 0..10);
        assert_eq!(store.append(1, 200.0, 200.0), 10..11);
        assert_eq!(
            store.append(5, 150.0, 300.0),
            11..16,
            "never before the last"
        );
        assert_eq!(store.stored_at(0), 100.0);
        assert_eq!(store.stored_at(9), 109.0);
        assert_eq!(store.stored_at(11), 200.0);
        assert_eq!(store.first_at_or_after(0.0), 0);
        assert_eq!(store.first_at_or_after(104.5), 5);
        assert_eq!(store.first_at_or_after(105.0), 5);
        assert_eq!(store.first_at_or_after(150.0), 10);
        assert_eq!(store.first_at_or_after(200.0), 10);
        assert_eq!(store.first_at_or_after(1e9), 16);
        for t in [100.0, 100.1, 103.7, 108.99, 109.0, 250.0, 299.0] {
            let id = store.first_at_or_after(t);
            assert!(id == store.len() || store.stored_at(id) >= t);
            assert!(id == 0 || store.stored_at(id - 1) < t, "t {t} id {id}");
        }
    }

    #[test]
    fn offsets_round_trip_and_look_real() {
        let offset = Offset {
            next: 0x2a,
            configs: "12345;678".into(),
            issued_at: 1_700_000_000,
            serial: 3,
        };
        let text = offset.encode();
        assert!(text.contains(';'));
        assert_eq!(Offset::decode(&text), Some(offset));
        assert_eq!(Offset::decode("garbage"), None);
    }
}
