//! The shared sample response decodes byte for byte into the shared decoded sample.

use akamai_siem::Value;
use akamai_siem::decode_event;
use akamai_siem::parse_context;

use crate::shared_folder;

#[test]
fn shared_sample_decodes_byte_for_byte() {
    let Some(dir) = shared_folder::shared_folder("samples") else {
        return;
    };
    let response = std::fs::read_to_string(dir.join("siem_response.ndjson")).unwrap();
    let expected = std::fs::read_to_string(dir.join("siem_events_decoded.ndjson")).unwrap();
    let mut decoded = Vec::new();
    for line in response.lines().filter(|l| !l.trim().is_empty()) {
        let value = Value::parse(line.as_bytes()).unwrap();
        if parse_context(&value).is_some() {
            continue;
        }
        let mut out = Vec::new();
        decode_event(value).write_compact(&mut out);
        decoded.push(String::from_utf8(out).unwrap());
    }
    let expected: Vec<&str> = expected.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded.len(), expected.len());
    for (index, (ours, theirs)) in decoded.iter().zip(&expected).enumerate() {
        assert_eq!(ours, theirs, "event {index} differs");
    }
}
