//! `decode`: saved raw API output, decoded offline into the configured format.

use crate::config::{ConfigError, Resolver};
use crate::diagnostics::error_reporting::Exit;
use crate::pipeline::classify::{LineKind, classify_line, oversized_event};
use crate::pipeline::event::Value;
use crate::pipeline::format::Formatter;
use crate::sink;
use crate::source::lines::{Line, Lines, ReadChunks};
use crate::source::page::{PageStats, note_bad_line};

/// The event a saved line holds. Saved output may hold several pages: their context lines are
/// skipped; a line that is not JSON (a cut last line included) is counted for the report.
fn saved_event<'a>(
    (raw, kind): (&'a [u8], LineKind<'a>),
    bad: &mut PageStats,
) -> Option<(&'a [u8], Value<'a>)> {
    match kind {
        LineKind::Event(value) => Some((raw, value)),
        LineKind::Blank | LineKind::Context(_) => None,
        LineKind::NotJson | LineKind::CutTail => {
            note_bad_line(bad, raw);
            None
        }
    }
}

/// Decode saved raw API output offline into the configured format.
pub(super) fn run(resolver: &Resolver<'_>, file: Option<&std::path::Path>) -> anyhow::Result<Exit> {
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
    let (mut sink, _) = sink::open(&output.target, None, false)?;
    let mut formatter = Formatter::new(&output);
    let mut lines = Lines::new(
        ReadChunks::new(input, 256 * 1024),
        8 * 1024 * 1024,
        &crate::checkpoint::Identity::random(),
    );
    let mut line_buffer = Vec::new();
    let mut events = 0u64;
    let mut bad = PageStats::default();
    while let Some(line) = lines.next_line()? {
        line_buffer.clear();
        // The fetch's way first (see pipeline::direct), so both give the same bytes.
        if let Line::Complete(bytes) | Line::Unterminated(bytes) = &line {
            let raw = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            if formatter.write_direct(raw, &mut line_buffer).is_some() {
                deliver(&mut sink, &line_buffer)?;
                events += 1;
                continue;
            }
        }
        let shrunk;
        let (raw, value) = match line {
            Line::Oversized { shrunk: s, .. } => {
                shrunk = s;
                match oversized_event(&shrunk) {
                    Some(event) => event,
                    None => {
                        note_bad_line(&mut bad, &shrunk.start);
                        continue;
                    }
                }
            }
            Line::Complete(bytes) | Line::Unterminated(bytes) => {
                let terminated = matches!(line, Line::Complete(_));
                let Some(event) = saved_event(classify_line(bytes, terminated), &mut bad) else {
                    continue;
                };
                event
            }
        };
        formatter.write(raw, value, &mut line_buffer);
        deliver(&mut sink, &line_buffer)?;
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

/// One output line to the sink, flushing first when the buffer would overflow.
fn deliver(sink: &mut sink::Sink, line: &[u8]) -> Result<(), sink::OutputError> {
    if sink.needs_flush_before(line.len()) {
        sink.flush()?;
    }
    sink.append(line);
    Ok(())
}
