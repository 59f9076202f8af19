//! Events must never be dropped: lines that are not valid UTF-8 are delivered (lossily, with
//! the affected fields listed), and every Wazuh line stays within the cap whatever the shape
//! of the event.

use crate::common;

use akamai_siem::Failure;
use akamai_siem::FormatPool;
use akamai_siem::event_hash;
use akamai_siem::{ChunkSource, Lines};
use akamai_siem::{Deliver, Event, Flow, PageEnd, PageReader, PageStats, SpillCounter};
use akamai_siem::{Format, OutputSettings, OutputTarget};
use akamai_siem::{Formatter, parse_event};
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
        tags: Default::default(),
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

// ---- the Wazuh line cap, against adversarial shapes ----

/// xorshift64*: deterministic, so a failure names a seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// JSON text of a string made of `unit` repeated `count` times (`unit` is already escaped).
fn repeated(unit: &str, count: usize) -> String {
    format!("\"{}\"", unit.repeat(count))
}

/// A short piece of text that expands when JSON-escaped, or a multi-byte character, or plain.
fn awkward_unit(rng: &mut Rng) -> &'static str {
    ["\\u0001", "\\\"", "\\\\", "é", "😀", "a", "%41", "\\n", "<"][rng.below(9)]
}

fn random_value(rng: &mut Rng, depth: usize, budget: usize) -> String {
    match rng.below(if depth > 6 { 3 } else { 6 }) {
        0 => repeated(awkward_unit(rng), rng.below(budget.max(1))),
        1 => ["null", "1.5", "true", "-7"][rng.below(4)].to_string(),
        2 => format!(
            "[{}]",
            (0..rng.below(budget.max(1) / 4 + 1))
                .map(|_| repeated(awkward_unit(rng), rng.below(4)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        _ => random_object(rng, depth + 1, budget / 2),
    }
}

fn random_object(rng: &mut Rng, depth: usize, budget: usize) -> String {
    let fields: Vec<String> = (0..rng.below(12) + 1)
        .map(|_| {
            let key = ["id", "a", "A", "srcip", "x\\\"y", "é", "clientIP", "k"][rng.below(8)];
            // Children share the parent's budget, so an event stays within a few times it.
            let size = rng.below(budget / 2 + 1);
            format!("\"{key}\":{}", random_value(rng, depth, size))
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Hand-picked hostile shapes, each at a small and a big size.
fn hostile_events(scale: usize) -> Vec<(String, String)> {
    let n = scale;
    let headers: String = (0..n).map(|i| format!("X-H{i}%3a%20%ff%0d%0a")).collect();
    let tiny_fields: String = (0..n).map(|i| format!(",\"f{i}\":\"v\"")).collect();
    let duplicates: String = (0..n / 4).map(|_| ",\"a\":\"v\"".to_string()).collect();
    let reserved: String = (0..n / 4)
        .map(|i| format!(",\"{}\":\"v\"", ["id", "ID", "Id", "srcip", "data"][i % 5]))
        .collect();
    let escaping: String = (0..190)
        .map(|i| format!(",\"e{i}\":{}", repeated("\\u0001", n / 20)))
        .collect();
    let deep = format!(
        "{}{}{}",
        "{\"d\":".repeat(120),
        repeated("z", n * 10),
        "}".repeat(120)
    );
    let short_strings = (0..n * 2).map(|_| "\"ab\"").collect::<Vec<_>>().join(",");
    let big = |unit: &str| repeated(unit, n * 10);
    vec![
        (
            "huge key".into(),
            format!(r#"{{"type":"akamai_siem","{}":"v"}}"#, "K".repeat(n * 10)),
        ),
        (
            "huge key in attackData".into(),
            format!(
                r#"{{"type":"akamai_siem","attackData":{{"clientIP":"1.2.3.4","{}\"":"v"}}}}"#,
                "K".repeat(n * 10)
            ),
        ),
        (
            "huge escaped key".into(),
            format!(r#"{{"{}":"v"}}"#, "\\u0002".repeat(n * 2)),
        ),
        (
            "thousands of tiny fields".into(),
            format!(r#"{{"type":"akamai_siem"{tiny_fields}}}"#),
        ),
        (
            "thousands of tiny nested fields".into(),
            format!(r#"{{"type":"akamai_siem","httpMessage":{{"requestId":"r"{tiny_fields}}}}}"#),
        ),
        (
            "duplicate keys".into(),
            format!(r#"{{"type":"akamai_siem"{duplicates},"o":{{"b":"1"{duplicates}}}}}"#),
        ),
        (
            "reserved names".into(),
            format!(r#"{{"type":"akamai_siem"{reserved}}}"#),
        ),
        ("deep nesting".into(), deep),
        (
            "huge array of short strings".into(),
            format!(r#"{{"attackData":{{"ruleData":[{short_strings}]}}}}"#),
        ),
        (
            "huge clientIP".into(),
            format!(
                r#"{{"type":"akamai_siem","attackData":{{"clientIP":{}}}}}"#,
                big("1")
            ),
        ),
        (
            "clientIP as an object".into(),
            format!(
                r#"{{"attackData":{{"clientIP":{{"v":{},"w":{}}}}}}}"#,
                big("2"),
                big("3")
            ),
        ),
        (
            "huge identifying fields".into(),
            format!(
                r#"{{"type":{},"attackData":{{"configId":{},"appliedAction":{}}},"httpMessage":{{"requestId":{},"host":{}}}}}"#,
                big("t"),
                big("\\\""),
                big("\\u0003"),
                big("r"),
                big("é")
            ),
        ),
        (
            "many fields that expand when escaped".into(),
            format!(r#"{{"type":"akamai_siem"{escaping}}}"#),
        ),
        (
            "a huge number of headers".into(),
            format!(
                r#"{{"type":"akamai_siem","httpMessage":{{"requestHeaders":"{headers}","responseHeaders":"{headers}"}}}}"#
            ),
        ),
        (
            "huge rule lists".into(),
            format!(
                r#"{{"attackData":{{"rules":"{}","ruleData":"{}"}}}}"#,
                "QQ%3d%3d%3b".repeat(n),
                "%ff%3b".repeat(n)
            ),
        ),
        ("a huge non-object".into(), format!("[{short_strings}]")),
    ]
}

fn wazuh(cap: usize, raw: &[u8]) -> String {
    let mut formatter = Formatter::new(&OutputSettings {
        target: OutputTarget::Stdout,
        format: Format::Wazuh,
        max_line_bytes: cap,
        tags: Default::default(),
    });
    let mut out = Vec::new();
    let event =
        parse_event(raw).unwrap_or_else(|e| panic!("{e}: {:.200}", String::from_utf8_lossy(raw)));
    formatter.write(raw, event, &mut out);
    String::from_utf8(out).expect("Wazuh lines are UTF-8")
}

/// The hard limits: under the cap, valid JSON, the discriminator first, at most 200 fields.
fn assert_within_limits(name: &str, cap: usize, line: &str) {
    assert!(
        line.len() <= cap,
        "{name}, cap {cap}: {} bytes: {line:.300}",
        line.len()
    );
    assert!(
        line.starts_with(r#"{"integration":"akamai""#),
        "{name}: {line:.200}"
    );
    let value: Json = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{name}, cap {cap}: {e}: {line:.300}"));
    fn leaves(value: &Json) -> usize {
        match value {
            Json::Object(map) => map.values().map(leaves).sum(),
            _ => 1,
        }
    }
    assert!(leaves(&value) <= 200, "{name}: {} fields", leaves(&value));
    if let Some(srcip) = value.get("srcip") {
        let srcip = srcip.as_str().unwrap();
        assert!(
            srcip.parse::<std::net::IpAddr>().is_ok(),
            "{name}: srcip {srcip:.80}"
        );
    }
}

#[test]
fn hostile_shapes_stay_within_the_wazuh_limits() {
    for scale in [300, 10_000] {
        for (name, event) in hostile_events(scale) {
            for cap in [4_096, 60_000] {
                let line = wazuh(cap, event.as_bytes());
                assert_within_limits(&format!("{name} (scale {scale})"), cap, &line);
            }
        }
    }
}

#[test]
fn random_shapes_stay_within_the_wazuh_limits() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let budget = [50, 2_000, 200_000][rng.below(3)];
        let event = random_object(&mut rng, 0, budget);
        let cap = [4_096, 8_000, 60_000][rng.below(3)];
        let line = wazuh(cap, event.as_bytes());
        assert_within_limits(&format!("seed {seed}"), cap, &line);
    }
}

#[test]
fn a_hostile_client_ip_is_not_srcip() {
    let line = wazuh(
        60_000,
        format!(
            r#"{{"attackData":{{"clientIP":"{}"}}}}"#,
            "9".repeat(100_000)
        )
        .as_bytes(),
    );
    assert_within_limits("huge clientIP", 60_000, &line);
    assert!(!line.contains("\"srcip\""), "{line:.200}");
    for (ip, kept) in [
        ("192.0.2.1", true),
        ("2001:db8::1", true),
        ("::ffff:192.0.2.1", true),
        ("192.0.2.1 ", false),
        ("1.2.3.4; drop", false),
        ("", false),
    ] {
        let line = wazuh(
            60_000,
            format!(r#"{{"attackData":{{"clientIP":"{ip}"}}}}"#).as_bytes(),
        );
        let value: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(value.get("srcip").is_some(), kept, "{ip}: {line}");
        assert_eq!(value["attackData"]["clientIP"], ip, "kept as it was");
    }
}
