//! The tool's main job against the bundled fake Akamai SIEM API, no credentials needed:
//!
//!     cargo run --example demo                      # Wazuh-shaped lines (the default format)
//!     cargo run --example demo -- --format json     # the plain decoded events
//!
//! It starts the fake API on 127.0.0.1 with a throwaway CA, stores a few events of every kind
//! over the last minutes, writes a config for it into a temporary directory, and runs
//! akamai-siem's fetch with that config, exactly as the binary would (first run: by time from
//! 5 minutes back, then by offset). Extra arguments are passed to akamai-siem.

use akamai_siem::Cli;
use clap::Parser;
use fake_akamai::{EventSize, FakeAkamai, Options};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let fake = FakeAkamai::start(Options {
        event_size: EventSize::Realistic,
        ..Options::default()
    })
    .expect("start the fake Akamai SIEM API");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64();
    fake.append_events_spread(10, now - 240.0, now - 5.0);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = fake
        .write_config(dir.path())
        .expect("write the demo config");
    eprintln!(
        "demo: fake Akamai SIEM API on https://{} ; config {}",
        fake.host(),
        config.display()
    );
    let mut args = vec![
        "akamai-siem".to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    args.extend(std::env::args().skip(1));
    akamai_siem::main(Cli::parse_from(args))
}
