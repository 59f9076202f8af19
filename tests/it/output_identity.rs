//! Speed work must not change a byte of output. The benchmark's realistic events (every
//! decoding rule exercised), pinned to fixed times so the page is always the same, plus the
//! shared sample response, decoded by the real binary in each format, must give exactly the
//! output the code before the performance work gave: the digests below were produced by that
//! binary (main at bab7b23) from this same page. A fetch over TLS through the format workers
//! must then give exactly what `decode` gives for the lines served.

use crate::common::{BIN, Harness, now};
use crate::shared_folder;
use fake_akamai::{EventSize, FakeAkamai, Options};
use sha2::{Digest, Sha256};
use std::process::{Command, Stdio};

const EVENTS: usize = 10_000;

/// SHA-256 of the pinned page (so the input cannot drift unnoticed) and of the output of
/// `akamai-siem decode --format F` for it, by the pre-change binary.
const PAGE: &str = "3685f792cd19efba95480ba25f7f4adcf22c3111e0bc39d5aaaf56675d0bb5a1";
const WAZUH: &str = "b9ce437e8e8f9623cf21111ce6c9849ec884f08ba372270eba7e831e76f433f0";
const JSON: &str = "254ed1648f1c884eb724745a06e1c54837b8a8bdf2634a83caed1a0abb2dcbde";

fn realistic() -> Options {
    Options {
        event_size: EventSize::Realistic,
        gzip: false,
        ..Options::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn served_lines(fake: &FakeAkamai, ids: std::ops::Range<u64>) -> Vec<u8> {
    let mut page = Vec::new();
    for id in ids {
        page.extend_from_slice(fake.raw_event_line(id).as_bytes());
        page.push(b'\n');
    }
    page
}

/// The benchmark's events at fixed storage times, then the shared sample response.
fn pinned_page() -> Option<Vec<u8>> {
    let samples = shared_folder::shared_folder("samples")?;
    let fake = FakeAkamai::start(realistic()).unwrap();
    let ids = fake.append_events_spread(EVENTS, 1_700_000_000.0, 1_700_000_600.0);
    let mut page = served_lines(&fake, ids);
    page.extend_from_slice(&std::fs::read(samples.join("siem_response.ndjson")).unwrap());
    Some(page)
}

fn decode(page: &[u8], format: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("page.ndjson");
    std::fs::write(&input, page).unwrap();
    let output = Command::new(BIN)
        .args(["--diagnostics", "text", "decode", "--format", format])
        .arg(&input)
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "decode failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn decode_output_is_byte_identical_to_the_code_before_the_speed_work() {
    let Some(page) = pinned_page() else {
        return;
    };
    assert_eq!(
        hex(&page),
        PAGE,
        "the pinned page changed: the digests no longer apply"
    );
    let wazuh = decode(&page, "wazuh");
    assert_eq!(wazuh.iter().filter(|&&b| b == b'\n').count(), EVENTS + 3);
    assert_eq!(hex(&wazuh), WAZUH, "wazuh output changed");
    assert_eq!(hex(&decode(&page, "json")), JSON, "json output changed");
}

#[test]
fn a_fetch_through_the_workers_writes_exactly_what_decode_writes() {
    let harness = Harness::new(realistic());
    let t = now();
    let ids = harness
        .fake
        .append_events_spread(EVENTS, t - 250.0, t - 100.0);
    let expected = decode(&served_lines(&harness.fake, ids), "wazuh");
    let output = harness.path("events.json");
    let (from, to) = ((t as i64 - 260).to_string(), (t as i64 - 90).to_string());
    harness
        .run(&[
            "--no-state",
            "--from",
            &from,
            "--to",
            &to,
            "--limit",
            "4000",
            "--max-events",
            "1000000",
            "--max-bytes",
            "10GiB",
            "--output",
            output.to_str().unwrap(),
        ])
        .assert_code(0);
    let written = std::fs::read(&output).unwrap();
    assert_eq!(written.len(), expected.len(), "same length");
    assert!(written == expected, "fetch and decode differ");
}
