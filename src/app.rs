//! The commands: what each one needs from the configuration, and what it prints.

use crate::checkpoint::{RunLock, State, StateError, StateFile};
use crate::cli::{Cli, Command, StateCommand};
use crate::collect::plan::{HORIZON, SAFETY_LAG};
use crate::collect::signals::Signals;
use crate::collect::{self, RunSetup, Start, StopReason, Summary};
use crate::config::timespec::{describe, human_duration, parse_time};
use crate::config::{
    ConfigError, Diagnostics, Environment, Origin, OutputSettings, OutputTarget, Resolver, RunKind,
    Sources,
};
use crate::diagnostics::error_reporting::{self, Exit, Failure};
use crate::diagnostics::logging;
use crate::pipeline::event::Value;
use crate::pipeline::format::Formatter;
use crate::sink::Sink;
use crate::source::api::Client;
use crate::source::api::{Query, Request};
use crate::source::lines::{Line, Lines, ReadChunks};
use crate::source::page::{PageEnd, PageReader, PageStats, note_bad_line, parse_context};
use anyhow::Context as _;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The API refuses a `to` later than this many seconds before now.
const API_LATEST_TO_LAG: i64 = 5;

/// Run the command line and turn the outcome into an exit code.
pub fn main(cli: Cli) -> ExitCode {
    logging::init_early(early_diagnostics(&cli));
    report_panics_as_diagnostics();
    match run(cli) {
        Ok(exit) => exit.into(),
        Err(error) => error_reporting::report(&error),
    }
}

/// The command line could not be parsed. Under Wazuh's wodle even this must not reach the
/// event stream as free text.
pub fn main_with_usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || !logging::stderr_is_stdout()
    {
        error.exit();
    }
    logging::init_early(Diagnostics::Json);
    let message = error.render().to_string();
    let first_line = message.lines().next().unwrap_or("invalid command line");
    tracing::error!(
        code = "usage_error",
        "{first_line} (see akamai-siem --help)"
    );
    Exit::Usage.into()
}

/// A panic is a bug, but its message must still take the diagnostics' shape (JSON under the
/// wodle), and say what to do.
fn report_panics_as_diagnostics() {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            code = "internal_error",
            "internal error{place}: {payload} (a bug: please report it; the state is consistent, \
             the next run repeats what was not committed)"
        );
    }));
}

/// Before the config is read only the flag or the environment can say how to log.
fn early_diagnostics(cli: &Cli) -> Diagnostics {
    let raw = cli
        .settings
        .diagnostics
        .clone()
        .or_else(|| std::env::var("AKAMAI_SIEM_DIAGNOSTICS").ok());
    match raw.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("text") => Diagnostics::Text,
        Some("json") => Diagnostics::Json,
        _ => Diagnostics::Auto,
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    refuse_inapplicable_flags(&cli)?;
    let mut sources = Sources::load(&cli.overrides(), Environment::from_process())?;
    let resolver = Resolver::new(&sources);
    let log_settings = resolver.logging()?;
    logging::configure(&log_settings).map_err(|error| log_file_error(&sources, &error))?;
    for warning in sources.take_warnings() {
        tracing::warn!(code = "config_warning", "{warning}");
    }
    let resolver = Resolver::new(&sources);
    match &cli.command {
        None | Some(Command::Fetch) => fetch(&cli, &resolver),
        Some(Command::Check) => check(&cli, &resolver, &sources),
        Some(Command::Decode { file }) => decode(&resolver, file.as_deref()),
        Some(Command::State(StateCommand::Show)) => state_show(&resolver),
        Some(Command::State(StateCommand::Reset { from })) => {
            state_reset(&resolver, from.as_deref())
        }
    }
}

/// The log file is opened before anything else is reported, so its failure names the key and
/// where it was set, like any other invalid value.
fn log_file_error(sources: &Sources, error: &std::io::Error) -> ConfigError {
    let (path, origin) = sources
        .path("log_file")
        .unwrap_or_else(|| (Default::default(), Origin::Default));
    ConfigError::Invalid {
        key: "log_file",
        origin,
        problem: format!(
            "cannot be opened for appending: {}: {error}",
            path.display()
        ),
    }
}

/// A fetch option the command cannot use is refused: ignoring it would let the operator
/// believe it took effect (a `--state` on a replay, a `--limit` on `check`).
fn refuse_inapplicable_flags(cli: &Cli) -> Result<(), ConfigError> {
    let f = &cli.fetch;
    let given = [
        ("--limit", f.limit.is_some()),
        ("--window", f.window.is_some()),
        ("--state", f.state_file.is_some()),
        ("--no-state", f.no_state),
        ("--initial-lookback", f.initial_lookback.is_some()),
        ("--offset-ttl", f.offset_ttl.is_some()),
        ("--overlap", f.overlap.is_some()),
        ("--max-events", f.max_events.is_some()),
        ("--max-bytes", f.max_bytes.is_some()),
        ("--retry-budget", f.retry_budget.is_some()),
        ("--from", f.from.is_some()),
        ("--to", f.to.is_some()),
    ];
    const RUN: &[&str] = &["--limit", "--max-events", "--max-bytes", "--retry-budget"];
    const STATE: &[&str] = &["--state", "--initial-lookback", "--offset-ttl", "--overlap"];
    let fetching = matches!(cli.command, None | Some(Command::Fetch));
    let (allowed, reason): (Vec<&str>, &str) = match &cli.command {
        _ if fetching && f.from.is_some() => (
            [RUN, &["--from", "--to", "--no-state"]].concat(),
            "a replay (--from), which never reads or writes the state and fetches exactly \
             --from to --to",
        ),
        _ if fetching && f.no_state => (
            [RUN, &["--window", "--no-state"]].concat(),
            "a run with --no-state, which never reads or writes the state",
        ),
        _ if fetching => (
            [RUN, STATE].concat(),
            "a run with state, which continues where the last one stopped (--window sets the \
             one window of a --no-state run)",
        ),
        Some(Command::Check) => (
            vec!["--state", "--no-state"],
            "`check`, which only validates (--state and --no-state choose the state it checks)",
        ),
        Some(Command::Decode { .. }) => (vec![], "`decode`, which works offline"),
        // clap hands `state reset --from` to the global --from too.
        Some(Command::State(StateCommand::Reset { .. })) => (
            vec!["--state", "--initial-lookback", "--from"],
            "`state reset`, which only resets the state file (--state chooses it)",
        ),
        _ => (
            vec!["--state", "--initial-lookback"],
            "`state show`, which only reads the state file (--state chooses it)",
        ),
    };
    match given
        .iter()
        .find(|(flag, present)| *present && !allowed.contains(flag))
    {
        Some((flag, _)) => Err(ConfigError::Usage(format!(
            "{flag} does not apply to {reason}"
        ))),
        None => Ok(()),
    }
}

fn fetch(cli: &Cli, resolver: &Resolver<'_>) -> anyhow::Result<Exit> {
    let output = resolver.output()?;
    let replay = replay_range(cli, collect::unix_now())?;
    let kind = match replay {
        Some(_) => RunKind::Replay,
        None => RunKind::Scheduled,
    };
    let collect = resolver.collect(&output, kind)?;
    let api = resolver.api()?;
    let start = match (replay, cli.fetch.no_state) {
        (Some((from, to)), _) => Start::Replay { from, to },
        (None, true) => Start::Window,
        (None, false) => Start::Stateful,
    };
    let state = resolver.state(!matches!(start, Start::Stateful))?;
    let signals = Signals::install().context("installing signal handlers")?;
    let client = Client::new(&api)?;
    let summary = collect::run(RunSetup {
        client: &client,
        host: &api.host,
        config_ids: &api.config_ids.to_string(),
        collect: &collect,
        output: &output,
        state: state.as_ref(),
        start,
        signals: &signals,
    })?;
    Ok(exit_for(&summary))
}

fn exit_for(summary: &Summary) -> Exit {
    match summary.stopped_by {
        Some(StopReason::Signal(signal)) => Exit::Interrupted(signal),
        _ if summary.lost_events => Exit::DataLost,
        _ => Exit::Success,
    }
}

/// `--from`/`--to` as Unix seconds, checked against what the API accepts.
fn replay_range(cli: &Cli, now: i64) -> anyhow::Result<Option<(i64, i64)>> {
    let Some(from_text) = &cli.fetch.from else {
        return Ok(None);
    };
    let now_ts = jiff::Timestamp::from_second(now)?;
    let usage = |message: String| anyhow::Error::new(ConfigError::Usage(message));
    let from = parse_time(from_text, now_ts)
        .map_err(|e| usage(format!("--from: {e}")))?
        .as_second();
    let describe_second = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map(describe)
            .unwrap_or_else(|_| t.to_string())
    };
    // An explicit --to is what the operator wants delivered: kept whenever the API accepts it.
    let to = match &cli.fetch.to {
        Some(text) => {
            let asked = parse_time(text, now_ts)
                .map_err(|e| usage(format!("--to: {e}")))?
                .as_second();
            if asked > now - API_LATEST_TO_LAG {
                let used = now - SAFETY_LAG;
                tracing::warn!(
                    code = "to_adjusted",
                    "--to {} is later than the API accepts ({API_LATEST_TO_LAG}s before now); \
                     using --to {} instead",
                    describe_second(asked),
                    describe_second(used)
                );
                used
            } else {
                asked
            }
        }
        None => now - SAFETY_LAG,
    };
    if from < now - HORIZON {
        return Err(usage(format!(
            "--from {} is more than 12 hours ago; the API only keeps 12 hours",
            describe(jiff::Timestamp::from_second(from)?)
        )));
    }
    if from >= to {
        return Err(usage(format!(
            "--from must be before --to (without --to: {SAFETY_LAG}s before now): from {}, \
             to {}",
            describe_second(from),
            describe_second(to)
        )));
    }
    Ok(Some((from, to)))
}

/// Validate, make one small signed request, print a verdict; no events, no state change.
fn check(cli: &Cli, resolver: &Resolver<'_>, sources: &Sources) -> anyhow::Result<Exit> {
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
    let body = client.open_page(&request)?;
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
    let pool = crate::source::page::FormatPool::new(&output, 1)?;
    let end = reader
        .read(body, &mut stats, &pool, &mut Discard)
        .map_err(|e| match e {
            crate::source::page::PageError::Api(api) => anyhow::Error::new(api),
            other => anyhow::anyhow!("{other}"),
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

/// The run appends to an existing output file, or creates it in its directory.
fn check_output_is_writable(output: &OutputSettings) -> anyhow::Result<()> {
    let OutputTarget::File(path) = &output.target else {
        return Ok(());
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
fn unusable_state(error: StateError) -> anyhow::Error {
    match error {
        StateError::Corrupt { path, problem } => Failure::error(
            Exit::State,
            format!(
                "the state file {} is corrupt ({problem}): run `akamai-siem state reset` to \
                 replace it (the next run then starts like a first run), or `akamai-siem state \
                 reset --from TIME` to start from TIME",
                path.display()
            ),
        ),
        other => other.into(),
    }
}

fn describe_output(output: &OutputSettings) -> String {
    let format = format!("{:?}", output.format).to_ascii_lowercase();
    match &output.target {
        OutputTarget::Stdout => format!("stdout, {format} format"),
        OutputTarget::File(path) => format!("{} (appended), {format} format", path.display()),
    }
}

/// Decode saved raw API output offline into the configured format.
fn decode(resolver: &Resolver<'_>, file: Option<&std::path::Path>) -> anyhow::Result<Exit> {
    let output = resolver.output()?;
    let input: Box<dyn std::io::Read> = match file {
        // Opening a directory succeeds; only the first read fails, as an I/O error.
        Some(path) if path.is_dir() => {
            return Err(ConfigError::Usage(format!(
                "{} is a directory: decode reads one file of saved raw API output (or stdin)",
                path.display()
            ))
            .into());
        }
        Some(path) if path.as_os_str() != "-" => Box::new(
            std::fs::File::open(path)
                .map_err(|e| ConfigError::Usage(format!("cannot read {}: {e}", path.display())))?,
        ),
        _ => Box::new(std::io::stdin().lock()),
    };
    let mut sink = match &output.target {
        OutputTarget::Stdout => Sink::stdout(),
        OutputTarget::File(path) => Sink::file(path, None)?.0,
    };
    let mut formatter = Formatter::new(&output);
    let mut lines = Lines::new(ReadChunks::new(input, 256 * 1024), 8 * 1024 * 1024);
    let mut line_buffer = Vec::new();
    let mut events = 0u64;
    let mut bad = PageStats::default();
    while let Some(line) = lines.next_line()? {
        let shrunk;
        let (raw, value) = match line {
            Line::Oversized { shrunk: s, .. } => {
                shrunk = s;
                match crate::source::page::oversized_event(&shrunk) {
                    Some(event) => event,
                    None => {
                        note_bad_line(&mut bad, &shrunk.start);
                        continue;
                    }
                }
            }
            Line::Complete(bytes) | Line::Unterminated(bytes) => {
                let raw = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                if raw.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                // Saved output may hold several pages: their context lines are skipped.
                match crate::pipeline::format::parse_event(raw) {
                    Ok(value @ Value::Object(_)) if parse_context(&value).is_none() => (raw, value),
                    Ok(Value::Object(_)) => continue,
                    _ => {
                        note_bad_line(&mut bad, raw);
                        continue;
                    }
                }
            }
        };
        line_buffer.clear();
        formatter.write(raw, value, &mut line_buffer);
        if sink.needs_flush_before(line_buffer.len()) {
            sink.flush()?;
        }
        sink.append(&line_buffer);
        events += 1;
    }
    sink.commit()?;
    if bad.bad_lines > 0 {
        tracing::warn!(
            code = "bad_lines",
            "skipped {} line(s) that are not JSON events; the first began: {}",
            bad.bad_lines,
            bad.first_bad_line.as_deref().unwrap_or("")
        );
    }
    tracing::info!(code = "summary", "decoded {events} event(s)");
    Ok(Exit::Success)
}

fn state_show(resolver: &Resolver<'_>) -> anyhow::Result<Exit> {
    let settings = resolver
        .state(false)?
        .expect("state settings exist when not stateless");
    let mut out = std::io::stdout().lock();
    let Some(state) = StateFile::new(&settings.path)
        .load()
        .map_err(unusable_state)?
    else {
        writeln!(
            out,
            "no state at {}: the next run is a first run (from {} ago)",
            settings.path.display(),
            human_duration(settings.initial_lookback)
        )?;
        return Ok(Exit::Success);
    };
    let now = collect::unix_now();
    let ago = |t: i64| human_duration(Duration::from_secs((now - t).max(0) as u64));
    let at = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map(describe)
            .unwrap_or_else(|_| t.to_string())
    };
    writeln!(out, "state file   {}", settings.path.display())?;
    writeln!(out, "host         {}", state.host)?;
    writeln!(out, "config ids   {}", state.config_ids)?;
    match (&state.offset, state.offset_obtained_at) {
        (Some(offset), Some(t)) => {
            writeln!(out, "offset       {offset} (obtained {} ago)", ago(t))?
        }
        (Some(offset), None) => writeln!(out, "offset       {offset}")?,
        (None, _) => writeln!(out, "offset       none: the next run starts by time")?,
    }
    match state.checkpoint {
        Some(t) => writeln!(
            out,
            "checkpoint   {} ({} ago): events stored before it are delivered",
            at(t),
            ago(t)
        )?,
        None => writeln!(out, "checkpoint   none")?,
    }
    if let Some(output) = &state.output {
        writeln!(
            out,
            "output       {} committed at {} bytes",
            output.path.display(),
            output.length
        )?;
    }
    writeln!(
        out,
        "seen         {} delivered-event hashes kept (journal generation {})",
        state.seen.entries, state.seen.generation
    )?;
    if let Some(run) = &state.last_run {
        let ending = match (&run.stopped_by, run.caught_up) {
            (_, true) => "caught up".to_string(),
            (Some(reason), false) => format!("stopped by {reason}"),
            (None, false) => "did not finish".to_string(),
        };
        writeln!(
            out,
            "last run     {} ago: {} events in {} page(s), {ending}",
            ago(run.finished_at),
            run.events,
            run.pages
        )?;
        let backlog = if run.caught_up {
            "none at the last run".to_string()
        } else {
            let lag = state
                .checkpoint
                .map(|c| format!(", about {} of events behind", ago(c)))
                .unwrap_or_default();
            format!("events were still pending at the last run{lag}")
        };
        writeln!(out, "backlog      {backlog}")?;
    }
    Ok(Exit::Success)
}

fn state_reset(resolver: &Resolver<'_>, from: Option<&str>) -> anyhow::Result<Exit> {
    let settings = resolver
        .state(false)?
        .expect("state settings exist when not stateless");
    let api = resolver.api()?;
    // A reset under a running collector would be overwritten by its next commit.
    let _lock = RunLock::acquire(&settings.path)?;
    let file = StateFile::new(&settings.path);
    let now = collect::unix_now();
    let checkpoint = match from {
        Some(text) => {
            let t = parse_time(text, jiff::Timestamp::from_second(now)?)
                .map_err(|e| ConfigError::Usage(format!("--from: {e}")))?
                .as_second();
            if t < now - HORIZON || t > now {
                return Err(ConfigError::Usage(
                    "--from must be within the last 12 hours (the API keeps no more)".into(),
                )
                .into());
            }
            Some(t)
        }
        None => None,
    };
    let previous = match file.load() {
        Ok(previous) => previous,
        // The advice for a corrupt state is this command, so it must be able to replace it.
        Err(StateError::Corrupt { path, problem }) => {
            let mut kept = path.clone().into_os_string();
            kept.push(".corrupt");
            let kept = std::path::PathBuf::from(kept);
            std::fs::rename(&path, &kept).map_err(|source| StateError::Write {
                path: path.clone(),
                source,
            })?;
            tracing::warn!(
                code = "state_replaced",
                "the state file {} is corrupt ({problem}); replacing it discards whatever it \
                 held: the offset, the checkpoint, the committed output length (an uncommitted \
                 tail left by a crash is not cut) and the seen-events position (events already \
                 delivered since the new start may be delivered again). The corrupt file is \
                 kept as {}",
                path.display(),
                kept.display()
            );
            None
        }
        Err(other) => return Err(other.into()),
    };
    let mut state = previous.unwrap_or_else(|| State::new(&api.host, &api.config_ids.to_string()));
    state.offset = None;
    state.offset_obtained_at = None;
    state.checkpoint = checkpoint;
    state.host = api.host.clone();
    state.config_ids = api.config_ids.to_string();
    file.save(&state)?;
    let mut out = std::io::stdout().lock();
    match checkpoint {
        Some(t) => writeln!(
            out,
            "reset {}: the next run starts by time from {}",
            settings.path.display(),
            describe(jiff::Timestamp::from_second(t)?)
        )?,
        None => writeln!(
            out,
            "reset {}: the next run starts like a first run ({} back)",
            settings.path.display(),
            human_duration(settings.initial_lookback)
        )?,
    }
    Ok(Exit::Success)
}
