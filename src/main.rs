use akamai_siem::cli::Cli;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // clap exits 2 on usage errors and 0 for --help/--version; never 127.
    akamai_siem::app::main(Cli::parse())
}
