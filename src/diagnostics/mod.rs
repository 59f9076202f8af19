//! What the tool says about itself: log lines (text for people, JSON lines with their own
//! discriminator under Wazuh's merged pipe), the mapping of errors to exit codes, and the
//! metrics in Prometheus' text format.

pub mod error_reporting;
pub mod logging;
pub mod metrics;
