//! Events must never be dropped: lines that are not valid UTF-8 are delivered (lossily, with
//! the affected fields listed).

mod common;

use akamai_siem::checkpoint::event_hash;
use akamai_siem::config::{Format, OutputSettings, OutputTarget};
use akamai_siem::lines::{ChunkSource, Lines};
use akamai_siem::page::{
    Deliver, Event, Flow, FormatPool, PageEnd, PageReader, PageStats, SpillCounter,
};
use akamai_siem::spool::Failure;
use serde_json::Value as Json;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// An event whose `httpMessage.host` holds the Latin-1 bytes of "café" (0xE9 is not UTF-8).
fn latin1_event(id: &str) -> Vec<u8> {
    let mut line = format!(
        r#"{{"type":"akamai_siem","attackData":{{"clientIP":"192.0.2.7","rules":"OTUwMDAy"}},"httpMessage":{{"requestId":"{id}","host":"caf"#
    )
    .into_bytes();
    line.extend_from_slice(b"\xe9\xff");
    line.extend_from_slice(br#"","path":"/a"}}"#);
    line
}

fn decode_file(contents: &[u8], format: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("response.ndjson");
    std::fs::write(&file, contents).unwrap();
    let output = Command::new(common::BIN)
        .args(["--diagnostics", "text", "decode"])
        .arg(&file)
        .args(["--format", format])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    (
        String::from_utf8(output.stdout).expect("the output is UTF-8"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn response_with_a_latin1_line() -> Vec<u8> {
    let mut body =
        br#"{"type":"akamai_siem","httpMessage":{"requestId":"ok1","host":"a"}}"#.to_vec();
    body.push(b'\n');
    body.extend_from_slice(&latin1_event("latin1"));
    body.push(b'\n');
    body.extend_from_slice(b"this is not json\n");
    body.extend_from_slice(br#"{"total":3,"offset":"a;b"}"#);
    body.push(b'\n');
    body
}

#[test]
fn decode_delivers_a_line_that_is_not_utf8_as_json() {
    let (stdout, stderr) = decode_file(&response_with_a_latin1_line(), "json");
    let lines: Vec<Json> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let event = &lines[1];
    assert_eq!(event["httpMessage"]["requestId"], "latin1");
    assert_eq!(event["httpMessage"]["host"], "caf\u{fffd}\u{fffd}");
    assert_eq!(event["attackData"]["rules"], serde_json::json!(["950002"]));
    assert_eq!(
        event["decodeErrors"],
        serde_json::json!(["httpMessage.host"])
    );
    assert!(lines[0].get("decodeErrors").is_none());
    // Only the line that is not JSON at all is reported, and counted.
    assert!(stderr.contains("skipped 1 line(s)"), "{stderr}");
}

#[test]
fn decode_delivers_a_line_that_is_not_utf8_to_wazuh() {
    let (stdout, _) = decode_file(&response_with_a_latin1_line(), "wazuh");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[1].starts_with(r#"{"integration":"akamai","srcip":"192.0.2.7","#),
        "{}",
        lines[1]
    );
    let event: Json = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(event["httpMessage"]["host"], "caf\u{fffd}\u{fffd}");
    assert_eq!(
        event["decodeErrors"],
        serde_json::json!(["httpMessage.host"])
    );
}

struct Chunks(Vec<Vec<u8>>);

impl ChunkSource for Chunks {
    type Error = Failure;
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
    }
}

impl SpillCounter for Chunks {}

#[derive(Default)]
struct Collect(Vec<(u64, String)>);

impl Deliver for Collect {
    fn event(&mut self, event: Event<'_>) -> anyhow::Result<Flow> {
        let line = String::from_utf8(event.line.to_vec()).expect("output is UTF-8");
        self.0.push((event.hash, line));
        Ok(Flow::Continue)
    }
}

#[test]
fn a_page_delivers_a_line_that_is_not_utf8_and_hashes_its_raw_bytes() {
    let output = OutputSettings {
        target: OutputTarget::Stdout,
        format: Format::Json,
        max_line_bytes: 60_000,
    };
    let pool = FormatPool::new(&output, 2).unwrap();
    let reader = PageReader {
        memory_limit: 1 << 20,
        spill_dir: None,
        max_line: 1 << 20,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let mut stats = PageStats::default();
    let mut collect = Collect::default();
    let lines = Lines::new(Chunks(vec![response_with_a_latin1_line()]), 1 << 20);
    let end = reader
        .read_lines(lines, &mut stats, &pool, &mut collect)
        .unwrap();
    assert!(matches!(end, PageEnd::Complete(_)), "{end:?}");
    assert_eq!(collect.0.len(), 2);
    assert_eq!(stats.bad_lines, 1, "only the line that is not JSON");
    assert_eq!(stats.first_bad_line.as_deref(), Some("this is not json"));
    let (hash, line) = &collect.0[1];
    assert_eq!(*hash, event_hash(&latin1_event("latin1")), "the raw bytes");
    let event: Json = serde_json::from_str(line).unwrap();
    assert_eq!(
        event["decodeErrors"],
        serde_json::json!(["httpMessage.host"])
    );
}
