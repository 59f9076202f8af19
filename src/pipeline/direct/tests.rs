//! The direct path must give exactly the general path's bytes for every line it takes, and
//! take the ordinary events (or it is no faster). Each check runs both paths on the same line.

use super::*;
use crate::config::{OutputTarget, Tags};
use crate::pipeline::classify::{LineKind, classify_line, event_start};
use crate::pipeline::format::{Formatted, Formatter};
use fake_akamai::{EventSize, FakeAkamai, Options};

fn settings(format: Format, tags: Tags) -> OutputSettings {
    OutputSettings {
        target: OutputTarget::Stdout,
        format,
        max_line_bytes: crate::config::DEFAULT_MAX_LINE_BYTES,
        tags,
    }
}

fn tenant_tags() -> Tags {
    Tags {
        tenant: Some("acme".into()),
        fields: vec![("env".into(), "prod \"eu\"".into())],
    }
}

/// Both paths on one line: whether the direct one took it, after checking that what it wrote
/// is byte for byte what the general path writes, that both report the same about it (decode
/// errors; nothing shrunk) and read the same start.
fn same_as_general(output: &OutputSettings, raw: &[u8]) -> bool {
    let mut direct = Formatter::new(output);
    let mut out = b"before".to_vec();
    let Some(written) = direct.write_direct(raw, &mut out) else {
        assert_eq!(out, b"before", "a refused line leaves the output as it was");
        return false;
    };
    let shown = String::from_utf8_lossy(raw);
    let LineKind::Event(value) = classify_line(raw, true).1 else {
        panic!("the direct path took a line that is not an event: {shown}");
    };
    let start = event_start(&value);
    let mut general = b"before".to_vec();
    let formatted = Formatter::new(output).write(raw, value, &mut general);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&general),
        "{:?} of {shown}",
        output.format
    );
    assert_eq!(
        formatted,
        Formatted {
            decode_errors: written.decode_errors,
            shrunk: false
        },
        "{shown}"
    );
    assert_eq!(written.start, start, "{shown}");
    true
}

fn every_setting() -> Vec<OutputSettings> {
    let mut all = Vec::new();
    for format in [Format::Wazuh, Format::Json] {
        all.push(settings(format, Tags::default()));
        all.push(settings(format, tenant_tags()));
    }
    all
}

fn fake_events(size: EventSize, count: usize) -> Vec<String> {
    let fake = FakeAkamai::start(Options {
        event_size: size,
        ..Options::default()
    })
    .unwrap();
    let ids = fake.append_events_spread(count, 1_700_000_000.0, 1_700_000_600.0);
    ids.map(|id| fake.raw_event_line(id)).collect()
}

#[test]
fn every_event_the_fake_api_serves_takes_the_direct_path_with_the_general_paths_bytes() {
    // Both sizes cycle through every variant (each decoding rule, IPv4 and IPv6, ragged-free
    // rule lists, empty elements) many times over.
    for size in [EventSize::Realistic, EventSize::Small] {
        for line in fake_events(size, 600) {
            for output in every_setting() {
                assert!(
                    same_as_general(&output, line.as_bytes()),
                    "{:?} refused an ordinary event: {line}",
                    output.format
                );
            }
        }
    }
}

#[test]
fn raw_output_and_tags_the_shaping_would_rename_always_take_the_general_path() {
    let line = br#"{"type":"akamai_siem","attackData":{"clientIP":"192.0.2.1"}}"#;
    assert!(!same_as_general(
        &settings(Format::Raw, Tags::default()),
        line
    ));
    let clashing = Tags {
        tenant: None,
        fields: vec![("Env".into(), "a".into()), ("env".into(), "b".into())],
    };
    assert!(!same_as_general(
        &settings(Format::Wazuh, clashing.clone()),
        line
    ));
    // JSON has no shaping: the same tags are fine there.
    assert!(same_as_general(&settings(Format::Json, clashing), line));
}

/// An ordinary event to vary: every encoded field, a client IP, a start.
const BASE: &str = concat!(
    r#"{"type":"akamai_siem","format":"json","version":"1.0","attackData":{"configId":"14227","#,
    r#""clientIP":"192.0.2.82","rules":"OTUwMDA0%3bOTkwMDEx","ruleVersions":"NA%3d%3d%3bNA%3d%3d","#,
    r#""ruleData":"dGl0bGU%2BY25iYw%3d%3d%3b","ruleSelectors":"QVJHUzpx%3bQVJHUzpx","#,
    r#""ruleActions":"YWxlcnQ%3d%3bZGVueQ%3d%3d"},"httpMessage":{"requestId":"1158db1758e37bfe67b7c09","#,
    r#""start":"1491303422","protocol":"HTTP/1.1","method":"GET","host":"www.example.com","#,
    r#""path":"/a%2fb/%2e%2e","query":"q=1%20union+select","requestHeaders":"User-Agent%3a%20x%0d%0aAccept%3a%20*%2f*%0d%0a","#,
    r#""responseHeaders":"Server%3a%20AkamaiGHost%0d%0a","status":"403"},"#,
    r#""geo":{"continent":"EU","country":"DE","city":"","nested":{}},"custom":{"a":"YQ%3d%3d%3bYg%3d%3d"}}"#
);

/// Lines around `BASE` that each change one thing the direct path has to get right or hand
/// back: the general path must agree with whatever it does.
fn variations() -> Vec<String> {
    let replace = |from: &str, to: &str| {
        assert!(BASE.contains(from), "{from}");
        BASE.replacen(from, to, 1)
    };
    let many_fields: String = (0..190).map(|i| format!(r#","f{i}":"v""#)).collect();
    let long_value = "x".repeat(59_000);
    vec![
        BASE.to_string(),
        // Escapes, numbers, literals, arrays: the general path's.
        replace("www.example.com", r#"www.exa\"mple.com"#),
        replace("www.example.com", r"www.exa\/mple.com"),
        replace("www.example.com", r"\u0077ww.example.com"),
        replace(r#""status":"403""#, r#""status":403"#),
        replace(r#""status":"403""#, r#""status":4.5e3"#),
        replace(r#""status":"403""#, r#""status":null"#),
        replace(r#""status":"403""#, r#""status":true"#),
        replace(r#""status":"403""#, r#""status":["403"]"#),
        replace(r#""status":"403""#, r#""stat\u0075s":"403""#),
        replace(r#""city":"""#, "\"city\":\"a\u{1}b\""),
        // Repeated keys, exactly and in another case, at the top and inside.
        replace(r#""format":"json""#, r#""format":"json","format":"x""#),
        replace(r#""format":"json""#, r#""format":"json","Format":"x""#),
        replace(r#""city":"""#, r#""city":"","City":"F""#),
        replace(r#""city":"""#, r#""city":"","city":"F""#),
        replace(r#""start":"1491303422""#, r#""start":"1","start":"2""#),
        replace(
            r#""clientIP":"192.0.2.82""#,
            r#""clientIP":"192.0.2.82","clientIP":"::1""#,
        ),
        // Names the shaping reserves at the top level, or the event's own decode list.
        replace(r#""format":"json""#, r#""srcip":"10.0.0.1""#),
        replace(r#""format":"json""#, r#""Port":"443""#),
        replace(r#""format":"json""#, r#""integration":"x""#),
        replace(r#""format":"json""#, r#""decodeErrors":"theirs""#),
        replace(r#""format":"json""#, r#""tenant":"theirs""#),
        replace(r#""format":"json""#, r#""TENANTLABEL":"theirs""#),
        // Fields that do not decode cleanly.
        replace("OTUwMDA0%3bOTkwMDEx", "OTUwMDA0%3b***"),
        replace("OTUwMDA0%3bOTkwMDEx", "OTUwMDA0%3b%2F%2F8%3d"),
        replace("/a%2fb/%2e%2e", "/caf%e9"),
        replace("User-Agent%3a%20x", "User-Agent%3a%20%ff"),
        // Ragged rule lists, and lists that only look ragged before decoding.
        replace("NA%3d%3d%3bNA%3d%3d", "NA%3d%3d"),
        replace("NA%3d%3d%3bNA%3d%3d", "NA%3d%3d;NA%3d%3d"),
        replace("YWxlcnQ%3d%3bZGVueQ%3d%3d", "YWxlcnQ%3d%3b%20"),
        // Client IPs and starts that are not what they seem.
        replace("192.0.2.82", "not an address"),
        replace("192.0.2.82", "2001:db8::1"),
        replace(
            r#""clientIP":"192.0.2.82""#,
            r#""clientIP":{"v":"192.0.2.82"}"#,
        ),
        replace("1491303422", "1491303422.25"),
        replace("1491303422", "inf"),
        replace("1491303422", "NaN"),
        replace("1491303422", "soon"),
        replace(r#""start":"1491303422""#, r#""start":{"s":"1"}"#),
        // Encoded-looking fields in other places are left alone.
        replace(r#""geo":{"#, r#""geo":{"rules":"YQ%3d%3d","path":"%2e","#),
        replace(
            r#""custom":{"a":"YQ%3d%3d%3bYg%3d%3d"}"#,
            r#""custom":"YQ%3d%3d""#,
        ),
        replace(
            r#""custom":{"a":"YQ%3d%3d%3bYg%3d%3d"}"#,
            r#""custom":{"a":{"b":"YQ"}}"#,
        ),
        replace(
            r#""attackData":{"#,
            r#""attackData":{"inner":{"rules":"YQ%3d%3d"},"#,
        ),
        replace(
            r#""type":"akamai_siem","#,
            r#""extra":{"attackData":{"rules":"YQ"}},"#,
        ),
        // White space the API does not send, but JSON allows.
        replace(
            r#""type":"akamai_siem","#,
            " \"type\" : \"akamai_siem\" ,\t",
        ),
        replace(r#""nested":{}"#, "\"nested\":{ }"),
        format!("{BASE} "),
        format!(" {BASE}"),
        // Not one event object.
        format!("{BASE}}}"),
        format!("{BASE},{{}}"),
        r#"{"offset":"abc","total":"3"}"#.to_string(),
        r#"{"geo":{"country":"DE"}}"#.to_string(),
        "{}".to_string(),
        format!(
            r#"{{"type":"x","deep":{}"v"{}}}"#,
            r#"{"a":"#.repeat(40),
            "}".repeat(40)
        ),
        format!(
            r#"{{"type":"x","deep":{}"v"{}}}"#,
            r#"{"a":"#.repeat(20),
            "}".repeat(20)
        ),
        // The Wazuh limits: fields and line length.
        replace(
            r#""version":"1.0","#,
            &format!(r#""version":"1.0"{many_fields},"#),
        ),
        replace(r#""city":"""#, &format!(r#""city":"{long_value}""#)),
        replace(
            r#""city":"""#,
            &format!(r#""city":"{}""#, &long_value[..57_000]),
        ),
    ]
}

#[test]
fn every_variation_gives_the_general_paths_bytes_or_is_handed_back() {
    let mut taken = 0;
    let mut handed_back = 0;
    for line in variations() {
        for output in every_setting() {
            if same_as_general(&output, line.as_bytes()) {
                taken += 1;
            } else {
                handed_back += 1;
            }
        }
    }
    // Both sides must be exercised, or the comparison proves nothing.
    assert!(
        taken >= 40 && handed_back >= 100,
        "{taken} taken, {handed_back} handed back"
    );
}

#[test]
fn what_only_the_general_path_can_report_is_handed_back() {
    let wazuh = settings(Format::Wazuh, Tags::default());
    for (from, to) in [
        (r#""format":"json""#, r#""decodeErrors":"theirs""#),
        (r#""format":"json""#, r#""format":"json","Format":"x""#),
        (r#""format":"json""#, r#""srcip":"10.0.0.1""#),
        (r#""status":"403""#, r#""status":403"#),
    ] {
        let line = BASE.replacen(from, to, 1);
        let mut out = Vec::new();
        assert!(
            Formatter::new(&wazuh)
                .write_direct(line.as_bytes(), &mut out)
                .is_none(),
            "{to}"
        );
    }
    let mut out = Vec::new();
    let not_utf8 = BASE
        .replacen("www", "w\u{e9}w", 1)
        .replace('\u{e9}', "\u{fffd}");
    let mut bytes = not_utf8.into_bytes();
    let at = bytes
        .windows(3)
        .position(|w| w == "\u{fffd}".as_bytes())
        .unwrap();
    bytes.splice(at..at + 3, [0xe9]);
    assert!(
        Formatter::new(&wazuh)
            .write_direct(&bytes, &mut out)
            .is_none()
    );
}

/// A small deterministic generator, so a failure names a seed that reproduces it.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn random_edits_of_real_events_never_make_the_two_paths_differ() {
    let lines: Vec<String> = fake_events(EventSize::Realistic, 40)
        .into_iter()
        .chain([BASE.to_string()])
        .collect();
    let outputs = every_setting();
    const PIECES: &[&str] = &[
        "\"",
        "\\",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "0",
        "null",
        "%",
        "%3b",
        "%e9",
        ";",
        "=",
        "\\u00e9",
        "\u{e9}",
        "\u{1}",
        "a",
        "A",
        "\"rules\":\"YQ\",",
        "\"x\":{},",
    ];
    let (mut taken, mut handed_back) = (0, 0);
    for seed in 0..3_000u64 {
        let mut random = Lcg(seed);
        let mut line = lines[random.below(lines.len())].clone().into_bytes();
        for _ in 0..1 + random.below(3) {
            let at = random.below(line.len());
            match random.below(3) {
                0 => {
                    line.remove(at);
                }
                1 => {
                    let piece = PIECES[random.below(PIECES.len())];
                    line.splice(at..at, piece.bytes());
                }
                _ => {
                    let piece = PIECES[random.below(PIECES.len())];
                    line.splice(at..(at + piece.len()).min(line.len()), piece.bytes());
                }
            }
        }
        let output = &outputs[random.below(outputs.len())];
        if same_as_general(output, &line) {
            taken += 1;
        } else {
            handed_back += 1;
        }
    }
    assert!(
        taken >= 300 && handed_back >= 300,
        "{taken} taken, {handed_back} handed back"
    );
}
