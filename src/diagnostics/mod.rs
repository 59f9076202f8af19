//! What the tool says about itself: log lines (text for people, JSON lines with their own
//! discriminator under Wazuh's merged pipe) and the mapping of errors to exit codes.

pub mod error_reporting;
pub mod logging;
