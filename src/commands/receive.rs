//! `receive`: the DataStream push receiver, until SIGTERM or SIGINT.

use crate::config::Resolver;
use crate::diagnostics::error_reporting::Exit;

pub(super) fn run(resolver: &Resolver<'_>) -> anyhow::Result<Exit> {
    let output = resolver.output()?;
    let settings = resolver.receive()?;
    crate::receive::run(&settings, &output)?;
    // A stop is how a long-running service ends: not a failure.
    Ok(Exit::Success)
}
