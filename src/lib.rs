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
//!   their errors), the spool between the socket and the decoder, the line splitter, the page
//!   protocol, and the shrinking of lines too long to hold;
//! - `pipeline`: what a raw line becomes: the event tree, §6.1 decoding, the output formats
//!   including the Wazuh shape;
//! - `sink`: where output lines go (stdout, a file): whole lines, made durable, then committed;
//! - `checkpoint`: the state file, the run lock and the journal of delivered events;
//! - `diagnostics`: logging in text or Wazuh-safe JSON, and errors mapped to exit codes.

pub mod checkpoint;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod config;
pub mod diagnostics;
pub mod pipeline;
pub mod sink;
pub mod source;
