use super::*;
use crate::checkpoint::Identity;
use crate::config::OutputSettings;
use crate::config::{Format, OutputTarget};
use crate::pipeline::pool::default_workers;

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

/// Collects the raw lines (the pool formats as `raw`), stopping after `stop_after`.
struct Collect {
    events: Vec<String>,
    stop_after: Option<usize>,
    shrunk: usize,
}

impl Deliver for Collect {
    fn event(&mut self, event: Event<'_>) -> anyhow::Result<Flow> {
        self.shrunk += usize::from(event.formatted.shrunk);
        self.events
            .push(String::from_utf8(event.line.to_vec()).unwrap());
        Ok(match self.stop_after {
            Some(n) if self.events.len() >= n => Flow::Stop,
            _ => Flow::Continue,
        })
    }
}

fn reader() -> PageReader {
    PageReader {
        memory_limit: 1024,
        spill_dir: None,
        max_line: 1024,
        stop: Arc::new(AtomicBool::new(false)),
    }
}

fn raw_pool() -> FormatPool {
    let output = OutputSettings {
        target: OutputTarget::Stdout,
        format: Format::Raw,
        max_line_bytes: 60_000,
        tags: Default::default(),
    };
    FormatPool::new(&output, &Identity::random(), default_workers()).unwrap()
}

fn read(
    body: &str,
    stop_after: Option<usize>,
) -> (Result<PageEnd, PageError>, PageStats, Vec<String>) {
    let (result, stats, events, _) = read_chunks(vec![body.as_bytes().to_vec()], None, stop_after);
    (result, stats, events)
}

fn read_chunks(
    chunks: Vec<Vec<u8>>,
    failure: Option<Failure>,
    stop_after: Option<usize>,
) -> (Result<PageEnd, PageError>, PageStats, Vec<String>, usize) {
    let mut stats = PageStats::default();
    let mut collect = Collect {
        events: Vec::new(),
        stop_after,
        shrunk: 0,
    };
    let pool = raw_pool();
    let lines = Lines::new(Chunks(chunks.into_iter(), failure), 1024, pool.identity());
    let result = reader().read_lines(lines, &mut stats, &pool, &mut collect);
    (result, stats, collect.events, collect.shrunk)
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
    let (result, stats, events) = read(&format!("{E1}\n{{\"type\":\"akamai_siem\",\"htt"), None);
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
fn the_receiver_can_stop_the_page() {
    let body = format!("{E1}\n{E2}\n{{\"total\":2,\"offset\":\"x\"}}\n");
    let (result, _, events) = read(&body, Some(1));
    assert!(matches!(result, Ok(PageEnd::Stopped)));
    assert_eq!(events, vec![E1]);
}

#[test]
fn a_network_failure_after_some_events_is_reported_after_them() {
    let chunks = vec![format!("{E1}\n").into_bytes()];
    let (result, _, events, _) = read_chunks(
        chunks,
        Some(Failure::Source(ApiError::Network {
            host: "h".into(),
            message: "connection reset".into(),
        })),
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
        &Identity::random(),
    );
    let mut collect = Collect {
        events: Vec::new(),
        stop_after: None,
        shrunk: 0,
    };
    let result = reader.read_lines(lines, &mut PageStats::default(), &raw_pool(), &mut collect);
    assert!(matches!(result, Err(PageError::Interrupted)));
}

#[test]
fn many_batches_across_workers_keep_their_order() {
    let mut body = String::new();
    let count = 20_000;
    for i in 0..count {
        body.push_str(&format!(
            "{{\"type\":\"akamai_siem\",\"httpMessage\":{{\"requestId\":\"{i}\"}}}}\n"
        ));
    }
    body.push_str(&format!("{{\"total\":{count},\"offset\":\"x\"}}\n"));
    // Uneven chunks, so lines straddle chunk and batch boundaries.
    let chunks: Vec<Vec<u8>> = body.as_bytes().chunks(7_777).map(<[u8]>::to_vec).collect();
    let (result, stats, events, _) = read_chunks(chunks, None, None);
    assert!(matches!(result, Ok(PageEnd::Complete(_))), "{result:?}");
    assert_eq!(stats.events, count);
    for (i, line) in events.iter().enumerate() {
        assert!(
            line.contains(&format!("\"requestId\":\"{i}\"")),
            "position {i}: {line}"
        );
    }
}

#[test]
fn a_line_too_long_to_hold_is_shrunk_alike_inside_one_chunk_or_across_many() {
    // Inside one chunk the worker shrinks it; across chunks the splitter does, as it streams.
    let big = format!(
        r#"{{"type":"akamai_siem","httpMessage":{{"requestId":"big","path":"/{}"}}}}"#,
        "p".repeat(3_000)
    );
    let body = format!("{E1}\n{big}\r\n{E2}\n{{\"total\":3,\"offset\":\"x\"}}\n");
    let mut seen = Vec::new();
    for size in [body.len(), 7, 1_000, 2_048] {
        let chunks = body.as_bytes().chunks(size).map(<[u8]>::to_vec).collect();
        let (result, stats, events, shrunk) = read_chunks(chunks, None, None);
        assert!(
            matches!(result, Ok(PageEnd::Complete(_))),
            "{size}: {result:?}"
        );
        assert_eq!((stats.events, shrunk), (3, 1), "chunks of {size}");
        assert_eq!(stats.bytes, body.len() as u64, "chunks of {size}");
        assert_eq!(events[0], E1);
        assert_eq!(events[2], E2);
        assert!(
            events[1].contains("\"oversizedEvent\""),
            "{size}: {}",
            events[1]
        );
        seen.push(events);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:#?}");
}

#[test]
fn a_pool_serves_page_after_page_without_leaking_results() {
    let pool = raw_pool();
    for page in 0..3 {
        let mut body = String::new();
        for i in 0..5_000 {
            body.push_str(&format!(
                "{{\"type\":\"akamai_siem\",\"httpMessage\":{{\"requestId\":\"{page}-{i}\"}}}}\n"
            ));
        }
        body.push_str("{\"total\":5000,\"offset\":\"x\"}\n");
        let mut collect = Collect {
            events: Vec::new(),
            // Stop early on the first page: its in-flight batches must not reach page two.
            stop_after: (page == 0).then_some(10),
            shrunk: 0,
        };
        let lines = Lines::new(
            Chunks(vec![body.into_bytes()].into_iter(), None),
            1024,
            pool.identity(),
        );
        let result = reader().read_lines(lines, &mut PageStats::default(), &pool, &mut collect);
        if page == 0 {
            assert!(matches!(result, Ok(PageEnd::Stopped)));
            assert_eq!(collect.events.len(), 10);
        } else {
            assert!(matches!(result, Ok(PageEnd::Complete(_))));
            assert_eq!(collect.events.len(), 5_000);
            assert!(
                collect
                    .events
                    .iter()
                    .all(|l| l.contains(&format!("\"{page}-")))
            );
        }
    }
}

/// Hands out one chunk per call, each after a pause (a page that trickles in), counting them.
struct Trickle {
    chunks: std::vec::IntoIter<Vec<u8>>,
    handed_out: Arc<std::sync::atomic::AtomicUsize>,
}

impl ChunkSource for Trickle {
    type Error = Failure;
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        if self.handed_out.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let chunk = self.chunks.next();
        if chunk.is_some() {
            self.handed_out.fetch_add(1, Ordering::SeqCst);
        }
        Ok(chunk)
    }
}

impl SpillCounter for Trickle {}

#[test]
fn on_a_trickling_page_events_go_out_as_their_batch_is_formatted_not_once_the_window_fills() {
    // Chunks of whole lines, each a little over a batch: one batch per chunk.
    let line = format!(
        "{{\"type\":\"akamai_siem\",\"httpMessage\":{{\"requestId\":\"{}\"}}}}\n",
        "r".repeat(1000)
    );
    let per_chunk = BATCH_BYTES / line.len() + 1;
    let chunks_in_all = 10;
    let mut chunks: Vec<Vec<u8>> = (0..chunks_in_all)
        .map(|_| line.repeat(per_chunk).into_bytes())
        .collect();
    let total = chunks_in_all * per_chunk;
    chunks.push(format!("{{\"total\":{total},\"offset\":\"x\"}}\n").into_bytes());

    struct FirstSeen {
        handed_out: Arc<std::sync::atomic::AtomicUsize>,
        at_first_event: Option<usize>,
        events: usize,
    }
    impl Deliver for FirstSeen {
        fn event(&mut self, _: Event<'_>) -> anyhow::Result<Flow> {
            self.events += 1;
            self.at_first_event
                .get_or_insert(self.handed_out.load(Ordering::SeqCst));
            Ok(Flow::Continue)
        }
    }
    let handed_out = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pool = raw_pool();
    let source = Trickle {
        chunks: chunks.into_iter(),
        handed_out: Arc::clone(&handed_out),
    };
    let mut first = FirstSeen {
        handed_out,
        at_first_event: None,
        events: 0,
    };
    let mut stats = PageStats::default();
    let lines = Lines::new(source, 4096, pool.identity());
    let result = reader().read_lines(lines, &mut stats, &pool, &mut first);
    assert!(matches!(result, Ok(PageEnd::Complete(_))), "{result:?}");
    assert_eq!(first.events, total);
    // The window holds more batches than this (two per worker), so waiting for it to fill
    // would deliver the first event only once chunk 6 (on 2 cores) or a later one had come.
    assert!(pool.capacity() >= 4);
    let at = first.at_first_event.unwrap();
    assert!(
        at <= 3,
        "the first event went out after chunk {at} of {chunks_in_all}"
    );
}
