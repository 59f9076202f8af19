//! Where the collector stopped, kept so that the next run continues without gaps or duplicates.
//!
//! Three files beside each other:
//! - `<state>`: small JSON, replaced atomically (temp file, fsync, rename, fsync the directory),
//!   so a crash at any instant leaves the old or the new state, never a broken one;
//! - `<state>.lock`: held with `flock` for the whole run, so runs never overlap;
//! - `<state>.seen.<generation>`: an append-only journal of hashes of delivered events, so
//!   replays (after a crash, a cut page, or the overlap of a time-based recovery) are dropped.
//!
//! Commit order is the guarantee: events are written (and, for a file, fsynced) before the state
//! that moves past them is saved, so the state is never ahead of the output.

mod lock;
mod seen;
mod sip_lanes;
mod state_file;

pub use lock::{LockError, RunLock};
pub use seen::{EventHash, EventHasher, Identity, Seen};
pub use state_file::{
    OutputPosition, RefusedConfig, RunRecord, State, StateError, StateFile, Totals,
};
