//! The integration tests, one binary (one link) with a module per concern: the real binary
//! against the fake Akamai API, the Wazuh files, the deployment files and the official vectors.

mod common;
mod shared_folder;

mod config_ids;
mod decode_samples;
mod deploy;
mod edgegrid_vectors;
mod fetch;
mod hostile_input;
mod http_sink;
mod install;
mod operator;
mod operator_tools;
mod output_identity;
mod packages;
mod receive;
mod run_edges;
mod stateful;
mod syslog;
mod tenants;
mod wazuh;
