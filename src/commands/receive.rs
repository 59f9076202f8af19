//! `receive`: the DataStream push receiver, until SIGTERM or SIGINT.

use crate::config::Resolver;
use crate::diagnostics::error_reporting::Exit;

pub(super) fn run(resolver: &Resolver<'_>) -> anyhow::Result<Exit> {
    let mut output = resolver.output()?;
    // A named section's events say whose they are, as by fetch: the same line by either route.
    output.tags = resolver.tags(false)?;
    crate::diagnostics::logging::set_tenant(output.tags.tenant.as_deref());
    let settings = resolver.receive()?;
    crate::receive::run(&settings, &output)?;
    // A stop is how a long-running service ends: not a failure.
    Ok(Exit::Success)
}
