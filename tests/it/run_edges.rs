//! The run loop at its edges: certificates, gateway blocks, pages the API keeps cutting, the
//! 12-hour horizon, runs without state, and what a run says about itself when it ends.

use crate::common;

use common::{Harness, assert_exactly_once, counts, now};
use fake_akamai::{Fault, Options};
use std::time::{Duration, Instant};

fn without_ca_file(harness: &Harness) {
    let text = std::fs::read_to_string(&harness.config).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("ca_file"))
        .collect();
    std::fs::write(&harness.config, kept.join("\n") + "\n").unwrap();
}

/// The last non-empty line of stderr.
fn last_line(stderr: &str) -> &str {
    stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("")
}

#[test]
fn a_certificate_that_cannot_be_verified_fails_at_once_and_is_not_retried() {
    // Unknown issuer: the fake's own CA is not trusted without ca_file.
    let unknown_issuer = Harness::with_defaults();
    unknown_issuer.fake.append_events(3);
    without_ca_file(&unknown_issuer);
    // Wrong name: trusted CA, certificate for another host.
    let wrong_name = Harness::new(Options {
        certificate_names: vec!["siem.example.net".into()],
        ..Options::default()
    });
    wrong_name.fake.append_events(3);
    for harness in [&unknown_issuer, &wrong_name] {
        let started = Instant::now();
        let run = harness.run(&["--no-state"]);
        run.assert_code(5).assert_no_secret(harness);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "retried like a network blip: {:?}",
            started.elapsed()
        );
        assert!(run.stderr.contains("ca_file"), "{}", run.stderr);
        assert!(run.stderr.contains("certificate"), "{}", run.stderr);
        assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn a_gateway_burst_block_is_backed_off_and_retried_like_a_rate_limit() {
    let harness = Harness::with_defaults();
    let t = now();
    let ids = harness.fake.append_events_spread(6, t - 200.0, t - 100.0);
    harness.fake.inject(Fault::BurstBlock);
    let run = harness.run(&["--no-state", "--format", "json"]);
    run.assert_code(0);
    assert_exactly_once(&run.ids(), ids);
    assert!(run.stderr.contains("IPBLOCK-BURST"), "{}", run.stderr);
    assert_eq!(harness.fake.requests().len(), 2);
}

#[test]
fn pages_cut_again_and_again_are_asked_with_a_smaller_limit_until_they_complete() {
    // Every response stops in its 300th event, as the two-minute deadline does on a slow link.
    let harness = Harness::new(Options {
        cut_after_events: Some(300),
        ..Options::default()
    });
    let t = now();
    harness.fake.append_events_at(5, t - 7_200.0);
    let ids = harness
        .fake
        .append_events_spread(2_000, t - 250.0, t - 100.0);
    let output = harness.path("events.json");
    let run = harness.run(&[
        "--format",
        "json",
        "--limit",
        "1000",
        "--output",
        output.to_str().unwrap(),
    ]);
    run.assert_code(0);
    assert_exactly_once(&common::ids_in(&common::read(&output)), ids);
    let limits: Vec<u64> = harness
        .fake
        .requests()
        .iter()
        .map(|r| r.param("limit").unwrap().parse().unwrap())
        .collect();
    assert_eq!(&limits[..3], &[1000, 500, 250], "{limits:?}");
    assert!(limits.len() < 40, "{limits:?}");
    let summary = last_line(&run.stderr);
    assert!(summary.contains("down to 250 events"), "{summary}");
}

#[test]
fn a_twelve_hour_first_run_starts_at_the_edge_and_reports_no_gap() {
    let harness = Harness::with_defaults();
    let t = now();
    let old = harness
        .fake
        .append_events_spread(5, t - 11.5 * 3600.0, t - 11.4 * 3600.0);
    let recent = harness.fake.append_events_at(5, t - 30.0);
    let run = common::Run::from(
        harness
            .command(&["--format", "json"])
            .env("AKAMAI_SIEM_INITIAL_LOOKBACK", "12h")
            .output()
            .unwrap(),
    );
    run.assert_code(0);
    assert!(!run.stderr.contains("gap"), "{}", run.stderr);
    assert_exactly_once(&run.ids(), old.start..recent.end);
    let from: i64 = harness.fake.requests()[0]
        .param("from")
        .unwrap()
        .parse()
        .unwrap();
    let edge = t as i64 - 12 * 3600;
    assert!(
        (edge..edge + 300).contains(&from),
        "from {from}, edge {edge}"
    );
}

#[test]
fn a_run_without_state_never_promises_a_next_run_and_says_how_to_go_on() {
    let harness = Harness::with_defaults();
    let t = now();
    let ids = harness.fake.append_events_spread(20, t - 250.0, t - 100.0);
    for args in [
        vec!["--no-state", "--max-events", "8"],
        vec!["--from", "-10m", "--max-events", "8"],
    ] {
        let mut args = args;
        args.extend(["--format", "json"]);
        let run = harness.run(&args);
        run.assert_code(0);
        assert!(!run.stderr.contains("next run"), "{}", run.stderr);
        assert!(!run.stderr.contains("behind"), "{}", run.stderr);
        assert_eq!(run.ids().len(), 8);
        // The message gives the exact range that delivers the rest.
        let hint = run
            .stderr
            .lines()
            .find(|l| l.contains("--from "))
            .unwrap_or_else(|| panic!("no --from in {}", run.stderr));
        let words: Vec<&str> = hint.split_whitespace().collect();
        let value = |flag: &str| {
            let at = words.iter().position(|w| *w == flag).unwrap();
            words[at + 1].trim_end_matches(|c: char| !c.is_ascii_digit())
        };
        let (from, to) = (value("--from"), value("--to"));
        let rest = harness.run(&["--from", from, "--to", to, "--format", "json"]);
        rest.assert_code(0);
        let mut all = run.ids();
        all.extend(rest.ids());
        let seen = counts(&all);
        assert!(
            ids.clone().all(|id| seen.contains_key(&id)),
            "the suggested range lost events"
        );
    }
    assert!(!harness.state_file().exists());
}

#[test]
fn failed_attempts_are_not_pages_and_a_failed_run_ends_with_its_summary() {
    let harness = Harness::with_defaults();
    let t = now();
    harness.fake.append_events_spread(4, t - 250.0, t - 100.0);
    harness.fake.inject(Fault::Status(503));
    let run = harness.run(&["--no-state", "--format", "json"]);
    run.assert_code(0);
    let summary = last_line(&run.stderr);
    assert!(summary.contains("4 events in 1 page(s)"), "{summary}");

    // A run whose output fails: the summary still comes last, and counts what was written.
    let run = harness.run(&["--output", "/dev/full"]);
    run.assert_code(6);
    let summary = last_line(&run.stderr);
    assert!(
        summary.contains("0 events") && summary.contains("failed"),
        "{}",
        run.stderr
    );
    let show = harness.run(&["state", "show"]);
    show.assert_code(0);
    assert!(show.stdout.contains("0 events"), "{}", show.stdout);
}

#[test]
fn a_connection_reset_is_reported_once_not_wrapped_in_itself() {
    let harness = Harness::with_defaults();
    let t = now();
    harness.fake.append_events_spread(4, t - 250.0, t - 100.0);
    for _ in 0..10 {
        harness.fake.inject(Fault::ResetAfter(1));
    }
    let run = harness.run(&["--no-state", "--retry-budget", "1s"]);
    run.assert_code(5);
    assert_eq!(
        run.stderr.matches("network error talking to").count(),
        run.stderr
            .lines()
            .filter(|l| l.contains("network error talking to"))
            .count(),
        "a cause repeated within one message:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("the API: network error"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_stateful_run_refuses_a_stdout_nobody_reads_and_keeps_the_state_untouched() {
    let harness = Harness::with_defaults();
    let t = now();
    let ids = harness.fake.append_events_spread(5, t - 250.0, t - 100.0);
    // stdout is /dev/null; then closed (`>&-`, which the runtime reopens as /dev/null).
    let to_null = common::Run::from(
        harness
            .command(&[])
            .stdout(std::process::Stdio::null())
            .output()
            .unwrap(),
    );
    to_null.assert_code(6);
    assert!(
        to_null.stderr.contains("--output /dev/null"),
        "{}",
        to_null.stderr
    );
    let closed = common::Run::from(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec {} --config {} --diagnostics text >&-",
                common::BIN,
                harness.config.display()
            ))
            .current_dir(harness.dir.path())
            .env("HOME", harness.dir.path().join("home"))
            .output()
            .unwrap(),
    );
    closed.assert_code(6);
    assert!(
        !harness.state_file().exists(),
        "the state moved past nothing"
    );
    assert!(harness.fake.requests().is_empty(), "nothing was fetched");

    // The next run with a reader gets every event; discarding is possible when asked for.
    let run = harness.run(&["--format", "json"]);
    run.assert_code(0);
    assert_exactly_once(&run.ids(), ids);
    harness.fake.append_events(3);
    harness.run(&["--output", "/dev/null"]).assert_code(0);
    assert_eq!(
        harness.run(&["--format", "json"]).assert_code(0).ids(),
        Vec::<u64>::new()
    );
}

#[test]
fn a_first_run_that_fills_the_disk_leaves_no_half_line_for_the_next() {
    use std::os::unix::process::CommandExt;
    let harness = Harness::with_defaults();
    let t = now();
    let ids = harness.fake.append_events_spread(300, t - 250.0, t - 100.0);
    let output = harness.path("events.json");
    let mut command = harness.command(&["--format", "json", "--output", output.to_str().unwrap()]);
    // The disk is full after 20,000 bytes: writes past it fail (EFBIG) part-way through a line.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 20_000,
                rlim_max: 20_000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let full = common::Run::from(command.output().unwrap());
    full.assert_code(6);
    let text = common::read(&output);
    assert!(
        !text.is_empty() && !text.ends_with('\n'),
        "the disk filled mid-line"
    );
    assert!(!harness.path("akamai-siem-default.state.tmp").exists());

    let run = harness.run(&["--format", "json", "--output", output.to_str().unwrap()]);
    run.assert_code(0);
    let text = common::read(&output);
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("a merged or half line ({e}): {line:.120}"));
    }
    assert_exactly_once(&common::ids_in(&text), ids);
}

#[test]
fn an_event_larger_than_the_line_limit_is_delivered_shrunk_once() {
    let harness = Harness::with_defaults();
    let t = now();
    let small = harness.fake.append_events_at(2, t - 200.0);
    let big = harness.fake.append_large_event(11_500_000);
    let after = harness.fake.append_events(2);
    for format in ["wazuh", "json"] {
        let output = harness.path(&format!("{format}.json"));
        let state = harness.path(&format!("{format}.state"));
        let args = [
            "--format",
            format,
            "--output",
            output.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        let run = harness.run(&args);
        run.assert_code(0);
        assert!(!run.stderr.contains("skipped"), "{}", run.stderr);
        let text = common::read(&output);
        assert_exactly_once(&common::ids_in(&text), small.start..after.end);
        let line = text
            .lines()
            .find(|l| fake_akamai::event_id(l) == Some(big))
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        if format == "wazuh" {
            assert!(line.len() <= 60_000, "{} bytes", line.len());
            assert!(line.starts_with("{\"integration\":\"akamai\""));
        } else {
            assert!(line.len() < 2 * 1024 * 1024, "{} bytes", line.len());
            let original: u64 = value["oversizedEvent"]["originalBytes"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(original > 11_000_000, "{original}");
        }
        // The offset moved past it exactly once: the next run has nothing new.
        harness.run(&args).assert_code(0);
        assert_eq!(common::read(&output), text);
    }
}
