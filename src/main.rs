use akamai_siem::Cli;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Usage errors exit 2, --help and --version 0; never 127 (Wazuh discards that output).
    match Cli::try_parse() {
        Ok(cli) => akamai_siem::main(cli),
        Err(error) => akamai_siem::main_with_usage_error(error),
    }
}
