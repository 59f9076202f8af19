//! Reading one response page: events in order, then the context line that proves it complete.
//!
//! The body is read on its own thread into the spool, so the socket never waits for the output.
//! A page is complete only when its last non-empty line is a context line (API doc §3); anything
//! else is a truncated page, never a success. A line that is not JSON is reported and skipped,
//! the page's other events still go out; but a broken final fragment is how a cut response ends,
//! so it is a truncation, not a bad line.

use crate::api::{ApiError, PageBody};
use crate::event::Value;
use crate::lines::{ChunkSource, Line, Lines};
use crate::spool::{self, Failure};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

const READ_SIZE: usize = 64 * 1024;

/// The context line: `{"total":N,"offset":"…","limit":L}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub total: Option<u64>,
    pub offset: String,
    /// Present only when the page was cut at the requested limit.
    pub limit: Option<u64>,
}

/// Whether the event handler wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// A budget is spent: stop reading this page.
    Stop,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageStats {
    /// Event lines seen (including ones the handler dropped as duplicates).
    pub events: u64,
    pub bad_lines: u64,
    /// The start of the first bad line, for the report (printable ASCII only).
    pub first_bad_line: Option<String>,
    /// Response body bytes read by the consumer.
    pub bytes: u64,
    /// Bytes that had to go through the spool file because the output was slower.
    pub spilled_bytes: u64,
}

#[derive(Debug)]
pub enum PageEnd {
    Complete(Context),
    /// The handler said stop (a budget).
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("interrupted by a signal")]
    Interrupted,
    #[error(transparent)]
    Handler(anyhow::Error),
}

pub struct PageReader {
    pub memory_limit: usize,
    pub spill_dir: Option<PathBuf>,
    pub max_line: usize,
    pub stop: Arc<AtomicBool>,
}

impl PageReader {
    /// Read `body` to its end, handing each event line (raw, without `\r\n`) and its parsed
    /// form to `on_event`.
    pub fn read<F>(
        &self,
        body: PageBody,
        stats: &mut PageStats,
        on_event: F,
    ) -> Result<PageEnd, PageError>
    where
        F: FnMut(&[u8], Value<'_>) -> anyhow::Result<Flow>,
    {
        let (producer, consumer) = spool::channel(self.memory_limit, self.spill_dir.clone());
        let consumer = consumer.with_stop_flag(Arc::clone(&self.stop));
        let reader = thread::Builder::new()
            .name("response-reader".into())
            .spawn(move || pump(body, producer))
            .map_err(|e| {
                PageError::Handler(anyhow::anyhow!("cannot start the reader thread: {e}"))
            })?;
        let result = self.read_lines(Lines::new(consumer, self.max_line), stats, on_event);
        // On success the reader has finished; otherwise it stops at its next push (the consumer
        // is gone) and is not waited for: it may be stuck on a silent socket.
        if matches!(result, Ok(PageEnd::Complete(_))) {
            let _ = reader.join();
        }
        result
    }

    /// The line loop, separate from the network so tests can feed it any bytes.
    pub fn read_lines<S, F>(
        &self,
        mut lines: Lines<S>,
        stats: &mut PageStats,
        mut on_event: F,
    ) -> Result<PageEnd, PageError>
    where
        S: ChunkSource<Error = Failure> + SpillCounter,
        F: FnMut(&[u8], Value<'_>) -> anyhow::Result<Flow>,
    {
        let mut context: Option<Context> = None;
        let mut stopped_by_handler = false;
        let result = loop {
            if self.stop.load(Ordering::Relaxed) {
                break Err(PageError::Interrupted);
            }
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break Ok(()),
                Err(Failure::Stopped) => break Err(PageError::Interrupted),
                Err(Failure::Producer(message)) => {
                    break Err(PageError::Api(ApiError::Network {
                        host: "the API".into(),
                        message,
                    }));
                }
            };
            let (bytes, terminated) = match line {
                Line::Complete(bytes) => (bytes, true),
                Line::Unterminated(bytes) => (bytes, false),
                Line::Oversized { length, start } => {
                    stats.bytes += length as u64 + 1;
                    if context.is_some() {
                        break Err(after_context());
                    }
                    note_bad_line(stats, &start);
                    tracing::error!(
                        code = "bad_line",
                        "skipped a response line of {length} bytes, over the {} byte limit",
                        self.max_line
                    );
                    continue;
                }
            };
            stats.bytes += bytes.len() as u64 + u64::from(terminated);
            let raw = trim_line_end(bytes);
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if context.is_some() {
                break Err(after_context());
            }
            match Value::parse(raw) {
                Ok(value) => match parse_context(&value) {
                    Some(Ok(found)) => context = Some(found),
                    Some(Err(problem)) => break Err(PageError::Api(ApiError::Malformed(problem))),
                    None if matches!(value, Value::Object(_)) => {
                        stats.events += 1;
                        match on_event(raw, value) {
                            Ok(Flow::Continue) => {}
                            Ok(Flow::Stop) => {
                                stopped_by_handler = true;
                                break Ok(());
                            }
                            Err(error) => break Err(PageError::Handler(error)),
                        }
                    }
                    None => note_bad_line(stats, raw),
                },
                // The unterminated end of the body that is not JSON: the response was cut.
                Err(_) if !terminated => break Ok(()),
                Err(_) => note_bad_line(stats, raw),
            }
        };
        stats.spilled_bytes = lines.source().spilled();
        result?;
        if self.stop.load(Ordering::Relaxed) && context.is_none() {
            return Err(PageError::Interrupted);
        }
        match context {
            Some(context) => {
                if let Some(total) = context.total
                    && total != stats.events + stats.bad_lines
                {
                    tracing::warn!(
                        "the page announced {total} events but carried {} (and {} bad lines)",
                        stats.events,
                        stats.bad_lines
                    );
                }
                Ok(PageEnd::Complete(context))
            }
            None if stopped_by_handler => Ok(PageEnd::Stopped),
            None => Err(PageError::Api(ApiError::Truncated {
                events: stats.events,
            })),
        }
    }
}

/// How much of the stream went through a spool file (zero for plain readers).
pub trait SpillCounter {
    fn spilled(&self) -> u64 {
        0
    }
}

impl SpillCounter for spool::Consumer {
    fn spilled(&self) -> u64 {
        self.spilled_bytes()
    }
}

fn after_context() -> PageError {
    PageError::Api(ApiError::Malformed(
        "data follows the context line, which must be the last line".into(),
    ))
}

fn pump(mut body: PageBody, producer: spool::Producer) {
    let mut buffer = vec![0u8; READ_SIZE];
    loop {
        match body.read(&mut buffer) {
            Ok(0) => return producer.finish(Ok(())),
            Ok(n) => {
                if producer.push(buffer[..n].to_vec()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return producer.finish(Err(body.network_error(&e).to_string())),
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn note_bad_line(stats: &mut PageStats, line: &[u8]) {
    stats.bad_lines += 1;
    if stats.first_bad_line.is_none() {
        // Bytes, not text: show printable ASCII only, so nothing odd reaches a terminal or log.
        let start: String = line
            .iter()
            .take(80)
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        stats.first_bad_line = Some(start);
    }
}

/// `Some` when the line is a context line (an object with `offset` or `total` and none of an
/// event's keys); parsed, never string-matched, since spacing and key order vary.
pub fn parse_context(value: &Value<'_>) -> Option<Result<Context, String>> {
    let Value::Object(_) = value else {
        return None;
    };
    let is_event = ["type", "attackData", "httpMessage"]
        .iter()
        .any(|key| value.get(key).is_some());
    if is_event || (value.get("offset").is_none() && value.get("total").is_none()) {
        return None;
    }
    let number = |key: &str| -> Result<Option<u64>, String> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("the context line's {key} is not a count")),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| format!("the context line's {key} is not a count")),
            Some(_) => Err(format!("the context line's {key} is not a count")),
        }
    };
    let offset = match value.get("offset").and_then(Value::as_str) {
        Some(offset) if !offset.is_empty() => offset.to_string(),
        _ => return Some(Err("the context line carries no offset".into())),
    };
    Some((|| {
        Ok(Context {
            total: number("total")?,
            offset,
            limit: number("limit")?,
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Chunks(std::vec::IntoIter<Vec<u8>>, Option<Failure>);

    impl ChunkSource for Chunks {
        type Error = Failure;
        fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Failure> {
            match self.0.next() {
                Some(chunk) => Ok(Some(chunk)),
                None => match self.1.take() {
                    Some(failure) => Err(failure),
                    None => Ok(None),
                },
            }
        }
    }

    impl SpillCounter for Chunks {}

    fn reader() -> PageReader {
        PageReader {
            memory_limit: 1024,
            spill_dir: None,
            max_line: 1024,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn read(
        body: &str,
        stop_after: Option<usize>,
    ) -> (Result<PageEnd, PageError>, PageStats, Vec<String>) {
        read_chunks(vec![body.as_bytes().to_vec()], None, stop_after)
    }

    fn read_chunks(
        chunks: Vec<Vec<u8>>,
        failure: Option<Failure>,
        stop_after: Option<usize>,
    ) -> (Result<PageEnd, PageError>, PageStats, Vec<String>) {
        let mut stats = PageStats::default();
        let mut events = Vec::new();
        let lines = Lines::new(Chunks(chunks.into_iter(), failure), 1024);
        let result = reader().read_lines(lines, &mut stats, |raw, _value| {
            events.push(String::from_utf8(raw.to_vec()).unwrap());
            Ok(match stop_after {
                Some(n) if events.len() >= n => Flow::Stop,
                _ => Flow::Continue,
            })
        });
        (result, stats, events)
    }

    const E1: &str = r#"{"type":"akamai_siem","httpMessage":{"requestId":"1"}}"#;
    const E2: &str = r#"{"type":"akamai_siem","httpMessage":{"requestId":"2"}}"#;

    #[test]
    fn a_complete_page_ends_with_its_context() {
        let body = format!("{E1}\r\n\n{E2}\n{{ \"total\": 2, \"offset\":\"a;b\", \"limit\":2 }}");
        let (result, stats, events) = read(&body, None);
        let Ok(PageEnd::Complete(context)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            context,
            Context {
                total: Some(2),
                offset: "a;b".into(),
                limit: Some(2)
            }
        );
        assert_eq!(events, vec![E1, E2]);
        assert_eq!(stats.events, 2);
        assert_eq!(stats.bytes, body.len() as u64);
    }

    #[test]
    fn an_empty_page_has_only_its_context() {
        let (result, _, events) = read("{ \"total\": 0, \"offset\":\"318d8\" }\n", None);
        assert!(matches!(
            result,
            Ok(PageEnd::Complete(Context {
                total: Some(0),
                limit: None,
                ..
            }))
        ));
        assert!(events.is_empty());
    }

    #[test]
    fn no_context_line_is_a_truncation() {
        let (result, _, events) = read(&format!("{E1}\n{E2}\n"), None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Truncated { events: 2 }))
        ));
        assert_eq!(
            events.len(),
            2,
            "complete events before the cut still go out"
        );
    }

    #[test]
    fn a_body_cut_mid_line_is_a_truncation_not_a_bad_line() {
        let (result, stats, events) =
            read(&format!("{E1}\n{{\"type\":\"akamai_siem\",\"htt"), None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Truncated { events: 1 }))
        ));
        assert_eq!(stats.bad_lines, 0);
        assert_eq!(events, vec![E1]);
    }

    #[test]
    fn a_final_event_without_newline_and_no_context_is_a_truncation() {
        let (result, _, events) = read(&format!("{E1}\n{E2}"), None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Truncated { events: 2 }))
        ));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn bad_lines_are_counted_and_the_rest_delivered() {
        let body = format!(
            "{E1}\nnot json \u{1b}[31m at all\n[1,2]\n{E2}\n{{\"total\":4,\"offset\":\"x\"}}\n"
        );
        let (result, stats, events) = read(&body, None);
        assert!(matches!(result, Ok(PageEnd::Complete(_))));
        assert_eq!(events, vec![E1, E2]);
        assert_eq!(stats.bad_lines, 2);
        assert_eq!(
            stats.first_bad_line.as_deref(),
            Some("not json .[31m at all")
        );
    }

    #[test]
    fn data_after_the_context_line_is_refused() {
        let body = format!("{E1}\n{{\"total\":1,\"offset\":\"x\"}}\n{E2}\n");
        let (result, _, _) = read(&body, None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Malformed(_)))
        ));
    }

    #[test]
    fn a_context_without_offset_is_refused() {
        let (result, _, _) = read("{\"total\":0}\n", None);
        assert!(matches!(
            result,
            Err(PageError::Api(ApiError::Malformed(_)))
        ));
    }

    #[test]
    fn the_handler_can_stop_the_page() {
        let body = format!("{E1}\n{E2}\n{{\"total\":2,\"offset\":\"x\"}}\n");
        let (result, _, events) = read(&body, Some(1));
        assert!(matches!(result, Ok(PageEnd::Stopped)));
        assert_eq!(events, vec![E1]);
    }

    #[test]
    fn a_network_failure_after_some_events_is_reported_as_such() {
        let chunks = vec![format!("{E1}\n").into_bytes()];
        let (result, _, events) = read_chunks(
            chunks,
            Some(Failure::Producer("connection reset".into())),
            None,
        );
        assert!(
            matches!(result, Err(PageError::Api(ApiError::Network { .. }))),
            "{result:?}"
        );
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_stop_signal_interrupts_the_page() {
        let reader = reader();
        reader.stop.store(true, Ordering::Relaxed);
        let lines = Lines::new(
            Chunks(vec![format!("{E1}\n").into_bytes()].into_iter(), None),
            1024,
        );
        let result = reader.read_lines(lines, &mut PageStats::default(), |_, _| Ok(Flow::Continue));
        assert!(matches!(result, Err(PageError::Interrupted)));
    }
}
