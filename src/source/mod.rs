//! Where raw event lines come from: the SIEM API (signed requests, a spool that never makes the
//! socket wait, a splitter on `\n` only, the page protocol).

pub mod api;
pub mod edgegrid;
pub mod lines;
pub mod page;
pub mod spool;
