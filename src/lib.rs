//! akamai-siem: pull security events from Akamai's SIEM API and hand them to Wazuh (or anything
//! that reads JSON lines), losing none and sending none twice.
//!
//! Data flows one way: `cli` → `config` → `poll` → `api` (signed by `edgegrid`) → `decode` →
//! `output`, with `checkpoint` remembering where the last run stopped.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod edgegrid;
pub mod lines;
pub mod logging;
pub mod output;
pub mod poll;
pub mod secret;
pub mod spool;
pub mod timespec;
