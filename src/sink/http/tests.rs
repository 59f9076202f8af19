use super::*;

fn settings(format: HttpFormat, batch_events: usize, batch_bytes: usize) -> HttpSettings {
    HttpSettings {
        url: "https://siem.example.com:8088/services/collector/event".into(),
        format,
        gzip: false,
        batch_events,
        batch_bytes,
        headers: vec![("X-Source".into(), "akamai".into())],
        secret_header: Some((
            "Authorization".into(),
            Secret::new("Splunk 0000-secret-token"),
        )),
        ca_file: None,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        retry_budget: Duration::from_secs(1),
    }
}

/// Push `lines` and return the batches sent, as (body, events); then the partial one.
fn batches(batcher: &mut Batcher, lines: &[Vec<u8>]) -> Vec<(Vec<u8>, usize)> {
    let mut sent = Vec::new();
    for line in lines {
        batcher
            .push(line, &mut |body, events| {
                sent.push((body, events));
                Ok(())
            })
            .unwrap();
    }
    sent.extend(batcher.take());
    sent
}

fn line(id: usize, size: usize) -> Vec<u8> {
    let prefix = format!("{{\"id\":{id},\"pad\":\"");
    let mut line = prefix.into_bytes();
    line.resize(size - 2, b'x');
    line.extend_from_slice(b"\"}");
    line
}

#[test]
fn a_batch_is_sent_when_it_holds_its_events() {
    let mut batcher = Batcher::new(&settings(HttpFormat::Ndjson, 3, 1 << 20));
    let lines: Vec<Vec<u8>> = (0..7).map(|id| line(id, 40)).collect();
    let sent = batches(&mut batcher, &lines);
    let counts: Vec<usize> = sent.iter().map(|(_, events)| *events).collect();
    assert_eq!(counts, vec![3, 3, 1]);
    let joined: Vec<u8> = sent.iter().flat_map(|(body, _)| body.clone()).collect();
    let expected: Vec<u8> = lines
        .iter()
        .flat_map(|l| [l.as_slice(), b"\n"].concat())
        .collect();
    assert_eq!(
        joined, expected,
        "every line once, in order, newline-delimited"
    );
    assert_eq!(batcher.take(), None);
}

#[test]
fn a_batch_never_outgrows_its_bytes_but_a_huge_line_still_goes_alone() {
    let max = 1000;
    let mut batcher = Batcher::new(&settings(HttpFormat::Ndjson, 500, max));
    let mut lines: Vec<Vec<u8>> = (0..20).map(|id| line(id, 299)).collect();
    lines.insert(7, line(99, 5000));
    let sent = batches(&mut batcher, &lines);
    for (body, events) in &sent {
        assert!(
            body.len() <= max || *events == 1,
            "{} bytes in a batch of {events}",
            body.len()
        );
    }
    assert!(
        sent.iter()
            .any(|(body, events)| *events == 1 && body.len() == 5001)
    );
    let total: usize = sent.iter().map(|(_, events)| events).sum();
    assert_eq!(total, 21);
    // 300-byte lines: three fit in 1000 bytes, a fourth would not.
    assert_eq!(sent[0].1, 3);
}

#[test]
fn hec_wraps_each_event_with_its_start_time_and_sourcetype() {
    let mut out = Vec::new();
    let event =
        br#"{"integration":"akamai","httpMessage":{"requestId":"r1","start":"1741946405"}}"#;
    hec_event(event, &mut out);
    let wrapped: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(wrapped["time"], serde_json::json!(1741946405));
    assert_eq!(wrapped["sourcetype"], "akamai:siem");
    assert_eq!(
        wrapped["event"],
        serde_json::from_slice::<serde_json::Value>(event).unwrap()
    );

    out.clear();
    hec_event(br#"{"httpMessage":{"start":1741946405.25}}"#, &mut out);
    let wrapped: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(wrapped["time"], serde_json::json!(1741946405.25));

    // No usable time: HEC stamps the event on arrival.
    for event in [
        &br#"{"httpMessage":{"start":"soon"}}"#[..],
        br#"{"httpMessage":{}}"#,
        br#"{"type":"akamai_siem"}"#,
    ] {
        out.clear();
        hec_event(event, &mut out);
        let wrapped: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(wrapped.get("time").is_none(), "{wrapped}");
    }

    // Not JSON (a raw line with odd bytes): still one valid HEC event, as a string.
    out.clear();
    hec_event(b"{\"a\":\"caf\xe9\" broken", &mut out);
    let wrapped: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(wrapped["event"], "{\"a\":\"caf\u{fffd}\" broken");
}

#[test]
fn epoch_seconds_are_kept_digit_for_digit() {
    let text = |s: &str| epoch_seconds(&serde_json::Value::String(s.into()));
    assert_eq!(text("1741946405").as_deref(), Some("1741946405"));
    assert_eq!(text(" 1741946405.123 ").as_deref(), Some("1741946405.123"));
    for bad in ["", "1.", ".5", "1e9", "-5", "12a", "1.2.3"] {
        assert_eq!(text(bad), None, "{bad}");
    }
}

#[test]
fn retry_after_takes_seconds_or_an_http_date() {
    let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
    let later = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&(now + jiff::SignedDuration::from_secs(30)))
        .unwrap();
    assert_eq!(retry_after(&later, now), Some(Duration::from_secs(30)));
    let earlier = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&(now - jiff::SignedDuration::from_secs(30)))
        .unwrap();
    assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
    assert_eq!(retry_after("soon", now), None);
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        retry_after: None,
        location: None,
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn answers_are_judged_as_the_issue_says() {
    let sender = Sender::new(&settings(HttpFormat::SplunkHec, 10, 1 << 20)).unwrap();
    assert_eq!(
        sender.judge(&reply(200, "{\"text\":\"Success\"}"), 5),
        Verdict::Accepted
    );
    assert_eq!(sender.judge(&reply(204, ""), 5), Verdict::Accepted);
    for status in [408, 429, 500, 503] {
        let mut answer = reply(status, "busy");
        answer.retry_after = Some("7".into());
        assert_eq!(
            sender.judge(&answer, 5),
            Verdict::Retry {
                why: format!("HTTP {status}: busy"),
                after: Some(Duration::from_secs(7))
            }
        );
    }
    let Verdict::Refused(message) = sender.judge(
        &reply(400, "{\"text\":\"Invalid data format\",\"code\":6}"),
        5,
    ) else {
        panic!("a 400 is not retried");
    };
    assert!(
        message.contains("HTTP 400: {\"text\":\"Invalid data format\""),
        "{message}"
    );
    assert!(message.contains("check http_format"), "{message}");
    let Verdict::Refused(message) = sender.judge(&reply(413, ""), 5) else {
        panic!("a 413 is not retried");
    };
    assert!(message.contains("lower http_batch_bytes"), "{message}");
    let mut moved = reply(301, "");
    moved.location = Some("https://other.example.com/secret-token-path".into());
    let Verdict::Refused(message) = sender.judge(&moved, 5) else {
        panic!("a redirect is not followed");
    };
    assert!(
        message.contains("redirects to https://other.example.com;"),
        "{message}"
    );
    assert!(!message.contains("secret-token-path"), "{message}");
}

#[test]
fn an_answer_that_echoes_the_secret_is_shown_without_it() {
    let sender = Sender::new(&settings(HttpFormat::Ndjson, 10, 1 << 20)).unwrap();
    let Verdict::Refused(message) = sender.judge(
        &reply(
            401,
            "bad header Authorization: Splunk 0000-secret-token\r\nsee docs",
        ),
        1,
    ) else {
        panic!("a 401 is not retried");
    };
    assert!(!message.contains("0000-secret-token"), "{message}");
    assert!(message.contains("[redacted]"), "{message}");
    assert!(!message.contains('\r'), "one line: {message}");
    let long = "y".repeat(5000);
    let shown = sender.shown(long.as_bytes());
    assert_eq!(shown.chars().count(), ANSWER_SHOWN + 1);
}

#[test]
fn headers_are_ours_then_the_configured_ones_and_the_secret_is_marked_sensitive() {
    let mut with_type = settings(HttpFormat::Ndjson, 10, 1 << 20);
    with_type.gzip = true;
    with_type.headers = vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-Tag".into(), "a".into()),
        ("X-Tag".into(), "b".into()),
    ];
    let sender = Sender::new(&with_type).unwrap();
    let values = |name: &str| -> Vec<&str> {
        sender
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(values("content-type"), vec!["application/json"]);
    assert_eq!(values("content-encoding"), vec!["gzip"]);
    assert_eq!(values("x-tag"), vec!["a", "b"]);
    assert!(sender.headers["authorization"].is_sensitive());
    let plain = Sender::new(&settings(HttpFormat::SplunkHec, 10, 1 << 20)).unwrap();
    assert_eq!(plain.headers["content-type"], "application/json");
    assert!(plain.headers.get("content-encoding").is_none());
    let ndjson = Sender::new(&settings(HttpFormat::Ndjson, 10, 1 << 20)).unwrap();
    assert_eq!(ndjson.headers["content-type"], "application/x-ndjson");
}
