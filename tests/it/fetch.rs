//! One run against the fake API: every event of the window once, decoded per §6.1, pages
//! followed, faults handled with the documented exit codes, nothing printed twice.

use crate::common;
use crate::shared_folder;

use common::{Harness, assert_exactly_once, now};
use fake_akamai::{EventSize, Fault, LineStyle, Options};

/// Events inside `[now-360, now-60]` (the default stateless window) plus some outside it.
fn window_with_neighbours(harness: &Harness, inside: usize) -> std::ops::Range<u64> {
    let t = now();
    harness.fake.append_events_at(4, t - 2_000.0);
    let ids = harness
        .fake
        .append_events_spread(inside, t - 300.0, t - 90.0);
    harness.fake.append_events_at(3, t - 10.0);
    ids
}

#[test]
fn a_window_run_prints_every_event_once_decoded_exactly() {
    let harness = Harness::new(Options {
        event_size: EventSize::Realistic,
        ..Options::default()
    });
    let expected = window_with_neighbours(&harness, 30);
    let run = harness.run(&["--no-state", "--format", "json"]);
    run.assert_code(0).assert_no_secret(&harness);
    assert_exactly_once(&run.ids(), expected);
    for line in run.stdout.lines() {
        let id = fake_akamai::event_id(line).unwrap();
        let got: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(got, harness.fake.expected_decoded(id), "event {id}");
    }
    // Nothing was fetched twice and the stateless run kept no state.
    assert_eq!(harness.fake.requests().len(), 1);
    assert!(!harness.state_file().exists());
}

#[test]
fn full_pages_are_followed_by_offset_until_caught_up() {
    let harness = Harness::with_defaults();
    let expected = window_with_neighbours(&harness, 95);
    let run = harness.run(&["--no-state", "--format", "json", "--limit", "10"]);
    run.assert_code(0);
    assert_exactly_once(&run.ids(), expected.start..expected.end + 3);
    let requests = harness.fake.requests();
    assert!(requests.len() >= 10, "{} requests", requests.len());
    assert!(requests[0].param("from").is_some() && requests[0].param("to").is_some());
    for request in &requests[1..] {
        assert!(request.param("offset").is_some(), "{}", request.target);
        assert_eq!(request.param("limit"), Some("10"));
        assert!(
            request.target.contains("%3B"),
            "the offset's ; is escaped: {}",
            request.target
        );
    }
    let nonces: std::collections::HashSet<_> = requests.iter().map(|r| r.nonce.clone()).collect();
    assert_eq!(
        nonces.len(),
        requests.len(),
        "every request is signed afresh"
    );
}

#[test]
fn crlf_blank_lines_and_a_missing_final_newline_are_tolerated() {
    for style in [LineStyle::CrLf, LineStyle::Messy] {
        let harness = Harness::new(Options {
            line_style: style,
            ..Options::default()
        });
        let expected = window_with_neighbours(&harness, 12);
        let run = harness.run(&["--no-state", "--format", "raw"]);
        run.assert_code(0);
        assert_exactly_once(&run.ids(), expected.clone());
        for (line, id) in run.stdout.lines().zip(expected) {
            assert_eq!(
                line,
                harness.fake.raw_event_line(id),
                "raw is untouched ({style:?})"
            );
        }
    }
}

#[test]
fn transient_faults_are_retried_and_nothing_is_printed_twice() {
    let faults = [
        Fault::Status(500),
        Fault::Status(503),
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        Fault::TruncateAfter(3),
        Fault::CutMidLine(3),
        Fault::ResetAfter(3),
    ];
    for fault in faults {
        let harness = Harness::with_defaults();
        let expected = window_with_neighbours(&harness, 8);
        harness.fake.inject(fault.clone());
        let run = harness.run(&["--no-state", "--format", "json"]);
        run.assert_code(0);
        assert_exactly_once(&run.ids(), expected);
        assert_eq!(harness.fake.requests().len(), 2, "{fault:?}: one retry");
        assert!(run.stderr.contains("retrying"), "{fault:?}: {}", run.stderr);
    }
}

#[test]
fn persistent_api_failures_end_with_the_api_exit_code() {
    let harness = Harness::with_defaults();
    window_with_neighbours(&harness, 5);
    for _ in 0..10 {
        harness.fake.inject(Fault::Status(503));
    }
    let run = harness.run(&["--no-state", "--retry-budget", "3s"]);
    run.assert_code(5).assert_no_secret(&harness);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("HTTP 503"), "{}", run.stderr);
    assert!(
        run.stderr.contains("giving up for this run"),
        "{}",
        run.stderr
    );
    let requests = harness.fake.requests().len();
    assert!(
        (2..10).contains(&requests),
        "{requests} requests within a 3 s budget"
    );
}

#[test]
fn authentication_and_permission_failures_are_not_retried() {
    let harness = Harness::with_defaults();
    let config = common::read(&harness.config).replace(
        &harness.fake.credentials().client_secret,
        "d3Jvbmctc2VjcmV0LXRoYXQtaXMtbm90LXRoZS1yZWFs",
    );
    std::fs::write(&harness.config, config).unwrap();
    let run = harness.run(&["--no-state"]);
    run.assert_code(4).assert_no_secret(&harness);
    assert!(run.stderr.contains("client_secret"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("d3Jvbmct"),
        "the wrong secret is not echoed either"
    );
    assert_eq!(harness.fake.requests().len(), 1);

    let forbidden = Harness::with_defaults();
    forbidden.fake.inject(Fault::Status(403));
    let run = forbidden.run(&["--no-state"]);
    run.assert_code(4);
    assert!(run.stderr.contains("Manage SIEM"), "{}", run.stderr);
    assert_eq!(forbidden.fake.requests().len(), 1);
}

#[test]
fn an_unknown_config_id_alone_is_a_configuration_error_and_among_others_is_set_apart() {
    let harness = Harness::with_defaults();
    let run = harness.run(&["--no-state", "--config-id", "999"]);
    run.assert_code(3);
    assert!(run.stderr.contains("config_id 999"), "{}", run.stderr);
    assert_eq!(harness.fake.requests().len(), 1);
    // With a known id beside it (config_ids.rs tests this in depth): probed, reported, and the
    // known one collected.
    let run = harness.run(&["--no-state", "--config-id", "999;12345"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("config id 999 (HTTP 404"),
        "{}",
        run.stderr
    );
    let statuses: Vec<u16> = harness.fake.requests()[1..]
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [404, 404, 200, 200],
        "the set, the probes, 12345 alone"
    );
}

#[test]
fn a_skewed_clock_is_retried_signed_afresh_then_reported() {
    let harness = Harness::with_defaults();
    let expected = window_with_neighbours(&harness, 4);
    harness.fake.inject(Fault::InvalidTimestamp);
    let run = harness.run(&["--no-state", "--format", "json"]);
    run.assert_code(0);
    assert_exactly_once(&run.ids(), expected);
    assert!(run.stderr.contains("clock"), "{}", run.stderr);
    let requests = harness.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_ne!(requests[0].nonce, requests[1].nonce);

    let skewed = Harness::new(Options {
        server_clock_offset_secs: 120,
        ..Options::default()
    });
    let run = skewed.run(&["--no-state"]);
    run.assert_code(5);
    assert!(run.stderr.contains("synchronise it"), "{}", run.stderr);
    assert_eq!(
        skewed.fake.requests().len(),
        3,
        "first try and two re-signed retries"
    );
}

#[test]
fn check_validates_and_prints_no_events() {
    let harness = Harness::with_defaults();
    window_with_neighbours(&harness, 20);
    let run = harness.run(&["check"]);
    run.assert_code(0).assert_no_secret(&harness);
    assert!(
        run.stdout.contains("OK: the credentials work"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("akamai_siem"), "no event is printed");
    assert_eq!(harness.fake.requests()[0].param("limit"), Some("1"));
    assert!(
        !harness.state_file().exists(),
        "check never touches the state"
    );

    harness.fake.inject(Fault::Status(401));
    harness.run(&["check"]).assert_code(4);
}

#[test]
fn bad_configuration_names_file_section_and_key_without_secrets() {
    let harness = Harness::with_defaults();
    let original = common::read(&harness.config);
    std::fs::write(&harness.config, format!("{original}limit = lots\n")).unwrap();
    let run = harness.run(&["--no-state"]);
    run.assert_code(3).assert_no_secret(&harness);
    assert!(run.stderr.contains("[default] line 9"), "{}", run.stderr);
    assert!(
        run.stderr.contains("`limit` must be a whole number"),
        "{}",
        run.stderr
    );

    let without_host: String = original
        .lines()
        .filter(|l| !l.starts_with("host"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&harness.config, without_host).unwrap();
    let run = harness.run(&["--no-state"]);
    run.assert_code(3).assert_no_secret(&harness);
    assert!(run.stderr.contains("`host` is not set"), "{}", run.stderr);
    assert!(run.stderr.contains("AKAMAI_SIEM_HOST"), "{}", run.stderr);
    assert!(harness.fake.requests().is_empty());
}

#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let harness = Harness::with_defaults();
    window_with_neighbours(&harness, 3);
    let run = harness
        .command(&["--no-state", "--limit", "2"])
        .env("AKAMAI_SIEM_LIMIT", "0")
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "the flag wins over an invalid variable"
    );
    assert_eq!(harness.fake.requests()[0].param("limit"), Some("2"));
    let run = harness
        .command(&["--no-state"])
        .env("AKAMAI_SIEM_LIMIT", "0")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&run.stderr).contains("AKAMAI_SIEM_LIMIT"));
}

#[test]
fn wazuh_format_is_the_default() {
    let harness = Harness::with_defaults();
    let expected = window_with_neighbours(&harness, 6);
    let run = harness.run(&["--no-state"]);
    run.assert_code(0);
    assert_exactly_once(&run.ids(), expected);
    for line in run.stdout.lines() {
        assert!(
            line.starts_with("{\"integration\":\"akamai\","),
            "{line:.80}"
        );
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["srcip"], value["attackData"]["clientIP"]);
    }
}

#[test]
fn a_closed_stdout_ends_the_run_with_the_output_code_not_a_panic() {
    let harness = Harness::new(Options {
        event_size: EventSize::Realistic,
        ..Options::default()
    });
    window_with_neighbours(&harness, 400);
    let mut child = harness.spawn(&["--no-state"]);
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("broken pipe"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn replay_takes_a_range_within_twelve_hours() {
    let harness = Harness::with_defaults();
    let t = now();
    let old = harness
        .fake
        .append_events_spread(7, t - 3_500.0, t - 3_100.0);
    harness.fake.append_events_spread(5, t - 600.0, t - 300.0);
    let run = harness.run(&["--from", "-1h", "--to", "-50m", "--format", "json"]);
    run.assert_code(0);
    assert_exactly_once(&run.ids(), old);
    assert!(
        !harness.state_file().exists(),
        "a replay never touches the state"
    );

    let run = harness.run(&["--from", "-13h"]);
    run.assert_code(2);
    assert!(run.stderr.contains("12 hours"), "{}", run.stderr);
}

#[test]
fn decode_reproduces_the_shared_decoded_sample() {
    let Some(samples) = shared_folder::shared_folder("samples") else {
        return;
    };
    let harness = Harness::with_defaults();
    let response = samples.join("siem_response.ndjson");
    let run = harness.run(&["decode", response.to_str().unwrap(), "--format", "json"]);
    run.assert_code(0);
    let expected = std::fs::read_to_string(samples.join("siem_events_decoded.ndjson")).unwrap();
    assert_eq!(run.stdout.trim_end(), expected.trim_end());
    assert!(harness.fake.requests().is_empty(), "decode works offline");
}

#[test]
fn a_huge_event_passes_through_whole_in_json() {
    let harness = Harness::with_defaults();
    let small = harness.fake.append_events_at(2, now() - 200.0);
    let big = harness.fake.append_large_event(250_000);
    // A first stateful run starts 5 minutes back with no upper bound, so it includes "now".
    let run = harness.run(&["--format", "json"]);
    run.assert_code(0);
    assert_exactly_once(&run.ids(), small.start..big + 1);
    let line = run.stdout.lines().last().unwrap();
    assert!(line.len() > 200_000, "{} bytes", line.len());
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(value["attackData"]["ruleData"].as_array().unwrap().len() >= 2);
}

#[test]
fn https_proxy_and_no_proxy_from_the_environment_are_honoured() {
    let harness = Harness::with_defaults();
    let expected = window_with_neighbours(&harness, 3);
    // A proxy that refuses connections: the run can only fail if it really goes through it.
    let dead_proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", dead_proxy.local_addr().unwrap());
    drop(dead_proxy);
    let through_proxy = harness
        .command(&["--no-state", "--retry-budget", "0s"])
        .env("HTTPS_PROXY", &proxy)
        .output()
        .unwrap();
    assert_eq!(
        through_proxy.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&through_proxy.stderr)
    );
    assert!(
        harness.fake.requests().is_empty(),
        "nothing reached the API directly"
    );

    let bypassed = common::Run::from(
        harness
            .command(&["--no-state", "--format", "json"])
            .env("HTTPS_PROXY", &proxy)
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap(),
    );
    bypassed.assert_code(0);
    assert_exactly_once(&bypassed.ids(), expected);
}
