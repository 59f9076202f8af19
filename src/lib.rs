//! akamai-siem: pull security events from Akamai's SIEM API and hand them to Wazuh (or anything
//! that reads JSON lines), losing none and sending none twice.
//!
//! Data flows one way: `cli` → `config` → `poll` → `api` (signed by `edgegrid`) → `decode` →
//! `output`, with `checkpoint` remembering where the last run stopped.

pub mod api;
pub mod app;
pub mod checkpoint;
pub mod cli;
pub mod collect;
pub mod config;
pub mod decode;
pub mod edgegrid;
pub mod error_reporting;
pub mod event;
pub mod format;
pub mod lines;
pub mod logging;
pub mod output;
pub mod page;
pub mod poll;
pub mod retry;
pub mod secret;
pub mod shrink;
pub mod signals;
pub mod spool;
pub mod timespec;
pub mod wazuh;
