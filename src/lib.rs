//! akamai-siem: pull security events from Akamai's SIEM API and hand them to Wazuh (or anything
//! that reads JSON lines), losing none and sending none twice.
//!
//! The modules read as the data flow:
//!
//! - `cli`: the command line, raw text only;
//! - `config`: INI, `.edgerc`, environment and flags resolved into validated settings, each value
//!   with its origin (also times and durations, and the secret type);
//! - `commands`: fetch, check, decode and state: thin wiring over the rest;
//! - `collect`: the fetch run loop: the request planner, retries, budgets and the commit order;
//! - `source`: where raw event lines come from: the API client (EdgeGrid signer, requests and
//!   their errors), the spool between the socket and the decoder (and the pump that fills it),
//!   the line splitter, the page protocol. Any byte stream is a `ChunkSource`; the pipeline
//!   and the journal never know which one it was;
//! - `pipeline`: what a raw line becomes: its kind (`classify`), the event tree, §6.1 decoding,
//!   the output formats including the Wazuh shape, the shrinking of lines too long to hold,
//!   and the format workers;
//! - `sink`: where output lines go: one `Destination` per route (stdout, a file), behind a
//!   `Sink` that writes whole lines, makes them durable, then says what to commit;
//! - `checkpoint`: the state file, the run lock and the journal of delivered events;
//! - `diagnostics`: logging in text or Wazuh-safe JSON, and errors mapped to exit codes.

mod checkpoint;
mod cli;
mod collect;
mod commands;
mod config;
mod diagnostics;
mod pipeline;
mod sink;
mod source;

// The surface the binary, the tests, the examples and the benchmark use; everything else is the
// crate's own, so what nothing uses shows up as dead code.
pub use checkpoint::event_hash;
pub use cli::Cli;
pub use commands::{main, main_with_usage_error};
pub use config::secret::Secret;
pub use config::{ApiSettings, Format, OutputSettings, OutputTarget, Tags, parse_config_ids};
pub use pipeline::classify::parse_context;
pub use pipeline::decode::decode_event;
pub use pipeline::event::Value;
pub use pipeline::format::{Formatter, parse_event};
pub use pipeline::pool::FormatPool;
pub use pipeline::wazuh::STATIC_FIELDS;
pub use source::api::{Client, Query, Request};
pub use source::edgegrid;
pub use source::lines::{ChunkSource, Lines};
pub use source::page::{Deliver, Event, Flow, PageEnd, PageReader, PageStats, SpillCounter};
pub use source::spool::Failure;
