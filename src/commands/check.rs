//! `check`: validate everything the real run needs, then make one small signed request.

use super::state::unusable_state;
use crate::checkpoint::StateFile;
use crate::cli::Cli;
use crate::collect::plan::SAFETY_LAG;
use crate::collect::signals::Signals;
use crate::collect::{self};
use crate::config::{Origin, OutputSettings, OutputTarget, Resolver, RunKind, Sources};
use crate::diagnostics::error_reporting::{Exit, Failure};
use crate::pipeline::pool::FormatPool;
use crate::source::api::Client;
use crate::source::api::{Query, Request};
use crate::source::page::{PageEnd, PageReader, PageStats};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Validate, make one small signed request, print a verdict; no events, no state change.
pub(super) fn run(cli: &Cli, resolver: &Resolver<'_>, sources: &Sources) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    let api = resolver.api()?;
    let output = resolver.output()?;
    resolver.collect(&output, RunKind::Scheduled)?;
    // What the real run would trip on locally is found before the request, and without
    // changing anything, so a failing check never costs an API call or leaves a trace.
    check_output_is_writable(&output)?;
    let state_line = if cli.fetch.no_state {
        resolver.state(true)?;
        None
    } else {
        Some(check_state(resolver)?)
    };
    let config = sources
        .config_path()
        .map(|p| format!("{} [{}]", p.display(), sources.section()))
        .unwrap_or_else(|| "none (environment and flags only)".to_string());
    let credentials = match sources.credentials_from() {
        crate::config::CredentialSource::Edgerc => sources
            .edgerc_path()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        crate::config::CredentialSource::ConfigFile => "the config file (or environment)".into(),
    };
    writeln!(out, "config       {config}")?;
    writeln!(out, "credentials  from {credentials}")?;
    writeln!(out, "host         {}", api.host)?;
    writeln!(out, "config ids   {}", api.config_ids)?;
    writeln!(out, "output       {}", describe_output(&output))?;
    if let Some(line) = state_line {
        writeln!(out, "state        {line}")?;
    }
    out.flush()?;

    let client = Client::new(&api)?;
    let now = collect::unix_now();
    let request = Request {
        query: Query::Time {
            from: now - 300,
            to: Some(now - SAFETY_LAG),
        },
        limit: 1,
    };
    let started = Instant::now();
    let body = match client.open_page(&request) {
        Ok(body) => body,
        Err(error) if error.config_refusal().is_some() && api.config_ids.ids().len() > 1 => {
            return Err(name_the_refused_ids(&client, &request, &api, error));
        }
        Err(error) => return Err(error.into()),
    };
    let mut stats = PageStats::default();
    let reader = PageReader {
        memory_limit: 1024 * 1024,
        spill_dir: None,
        max_line: 8 * 1024 * 1024,
        stop: Signals::none().stop_flag(),
    };
    // check prints no events: the page is read to its end to prove it complete, then dropped.
    struct Discard;
    impl crate::source::page::Deliver for Discard {
        fn event(
            &mut self,
            _: crate::source::page::Event<'_>,
        ) -> anyhow::Result<crate::source::page::Flow> {
            Ok(crate::source::page::Flow::Continue)
        }
    }
    let pool = FormatPool::new(&output, &crate::checkpoint::Identity::random(), 1)?;
    let end = reader
        .read(body, &mut stats, &pool, &mut Discard)
        .map_err(|e| match e {
            // Each keeps its typed chain, so the exit code is the real run's.
            crate::source::page::PageError::Api(api) => anyhow::Error::new(api),
            crate::source::page::PageError::Handler(error) => error,
            interrupted => anyhow::Error::new(interrupted),
        })?;
    let elapsed = started.elapsed();
    let sample = match end {
        PageEnd::Complete(context) => format!(
            "{} event(s) in the last 5 minutes' sample, offset returned",
            context.total.unwrap_or(stats.events)
        ),
        PageEnd::Stopped => "stopped".to_string(),
    };
    writeln!(
        out,
        "request      signed GET {} → HTTP 200 in {} ms ({sample})",
        client.path_and_query(&request),
        elapsed.as_millis()
    )?;
    writeln!(
        out,
        "OK: the credentials work and the security configurations are readable"
    )?;
    Ok(Exit::Success)
}

/// The API refuses a request for several ids as a whole when one of them is refused: ask each
/// alone, so the message names the id to fix (the run itself goes on with the others).
fn name_the_refused_ids(
    client: &Client,
    request: &Request,
    api: &crate::config::ApiSettings,
    whole: crate::source::api::ApiError,
) -> anyhow::Error {
    let mut refused = Vec::new();
    for id in api.config_ids.ids() {
        let alone = client.for_config_ids(&id.to_string());
        if let Err(error) = alone.open_page(request)
            && let Some((status, reason)) = error.config_refusal()
        {
            refused.push(format!("config id {id} (HTTP {status}: {reason})"));
        }
    }
    if refused.is_empty() {
        return whole.into();
    }
    anyhow::Error::new(whole).context(format!(
        "the API refuses {}; a fetch collects the other ids and reports these on every run \
         until they are accepted (give the API client access, or remove them from config_id)",
        refused.join(", ")
    ))
}

/// The run appends to an existing output file, or creates it in its directory; a syslog
/// receiver must accept a session (and, for TLS, the certificates), which sends no message; an
/// HTTP receiver must answer a HEAD over a verified connection.
fn check_output_is_writable(output: &OutputSettings) -> anyhow::Result<()> {
    let path = match &output.target {
        OutputTarget::File(path) | OutputTarget::SharedFile(path) => path,
        OutputTarget::Syslog(settings) => {
            // One attempt: a check answers now; the run itself retries within its budget.
            let mut once = settings.clone();
            once.retry_budget = std::time::Duration::ZERO;
            crate::sink::open(&OutputTarget::Syslog(once), None, false)?;
            return Ok(());
        }
        OutputTarget::Http(settings) => {
            // A HEAD stores nothing: reachable, certificate verified, whatever it answers.
            let status = crate::sink::probe_http(settings)?;
            tracing::debug!("{} answered HEAD with HTTP {status}", settings.describe());
            return Ok(());
        }
        OutputTarget::Stdout => return Ok(()),
    };
    let result = match std::fs::metadata(path) {
        // Opening for appending writes nothing, not even the modification time.
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop),
        Err(_) => probe_writable_directory(parent_directory(path)),
    };
    result.map_err(|error| {
        Failure::error(
            Exit::Output,
            format!(
                "cannot write the output file {}: {error}; create its directory, or set \
                 `output` (--output) to a writable place",
                path.display()
            ),
        )
    })
}

/// The run takes a lock beside the state and replaces the state by renaming a temporary file
/// into its directory; and it must be able to read the state there.
fn check_state(resolver: &Resolver<'_>) -> anyhow::Result<String> {
    let state = resolver
        .state(false)?
        .expect("state settings exist when not stateless");
    let directory = parent_directory(&state.path);
    probe_writable_directory(directory).map_err(|error| {
        let origin = match resolver.state_file_origin() {
            Origin::Default => "the default place beside the config file".to_string(),
            origin => origin.to_string(),
        };
        Failure::error(
            Exit::State,
            format!(
                "the state file {} ({origin}) cannot be written: cannot create files in {}: \
                 {error}; create that directory, or set `state_file` (--state) to a writable \
                 place",
                state.path.display(),
                directory.display()
            ),
        )
    })?;
    Ok(match StateFile::new(&state.path).load() {
        Ok(Some(s)) => format!(
            "{} (offset {}; not modified by check)",
            state.path.display(),
            if s.offset.is_some() {
                "stored"
            } else {
                "none yet"
            }
        ),
        Ok(None) => format!(
            "{} (none yet: the first run starts by time)",
            state.path.display()
        ),
        Err(error) => return Err(unusable_state(error)),
    })
}

fn parent_directory(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Whether files can be created in `directory`, found by creating and removing one: unlike
/// permission bits this also holds for root, read-only mounts and ACLs.
fn probe_writable_directory(directory: &Path) -> std::io::Result<()> {
    let probe = directory.join(format!(".akamai-siem-check.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// A corrupt state, as `check` and `state show` report it: what it is and the command that
/// replaces it (the fetch's own message also says that nothing was fetched).
fn describe_output(output: &OutputSettings) -> String {
    let format = format!("{:?}", output.format).to_ascii_lowercase();
    match &output.target {
        OutputTarget::Stdout => format!("stdout, {format} format"),
        OutputTarget::File(path) => format!("{} (appended), {format} format", path.display()),
        OutputTarget::Http(http) => format!(
            "{} (POST, {} batches of at most {} events), {format} format",
            http.describe(),
            http.format.name(),
            http.batch_events
        ),
        OutputTarget::SharedFile(path) => format!(
            "{} (appended, shared with the run's other tenants), {format} format",
            path.display()
        ),
        OutputTarget::Syslog(syslog) => format!(
            "{} ({:?} messages, {:?} framing), {format} format",
            syslog.url(),
            syslog.format,
            syslog.framing
        ),
    }
}
