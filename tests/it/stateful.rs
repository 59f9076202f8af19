//! Stateful collection over many runs: whatever happens (faults, expired offsets, kill -9,
//! SIGTERM, budgets, overlapping runs), the union of all runs' output holds every event once.

use crate::common;

use common::{Harness, Run, assert_exactly_once, ids_in, now};
use fake_akamai::{EventSize, Fault, Options};
use std::io::Read;
use std::time::{Duration, Instant};

/// A small deterministic generator, so a failing random test can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn seeded() -> Lcg {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("random seed {seed}");
        Lcg(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn send_signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

fn state_is_valid_json(harness: &Harness) {
    if let Ok(text) = std::fs::read_to_string(harness.state_file()) {
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("state is not valid JSON ({e}): {text}"));
    }
}

#[test]
fn twenty_runs_over_a_growing_stream_lose_nothing_and_repeat_nothing() {
    let harness = Harness::with_defaults();
    let mut rng = Lcg::seeded();
    harness.fake.append_events_at(5, now() - 100.0);
    let mut delivered = Vec::new();
    for run in 0..20 {
        harness.fake.append_events(rng.below(40) as usize);
        let result = harness.run(&["--format", "json", "--limit", "7"]);
        result.assert_code(0);
        delivered.extend(result.ids());
        state_is_valid_json(&harness);
        assert!(
            result.stderr.contains("caught up"),
            "run {run}: {}",
            result.stderr
        );
    }
    let total = harness.fake.event_count();
    assert_exactly_once(&delivered, 0..total);
    eprintln!("20 runs, {total} events, each delivered once");
}

#[test]
fn faults_in_the_middle_of_a_chain_lose_nothing_into_stdout_or_a_file() {
    let faults = [
        Fault::TooManyRequests {
            retry_after_secs: 0,
        },
        Fault::Status(500),
        Fault::Status(503),
        Fault::TruncateAfter(2),
        Fault::CutMidLine(2),
        Fault::ResetAfter(2),
    ];
    for to_file in [false, true] {
        let harness = Harness::with_defaults();
        let output = harness.path("events.json");
        let mut args = vec!["--format", "json", "--limit", "5", "--retry-budget", "2s"];
        if to_file {
            args.extend(["--output", output.to_str().unwrap()]);
        }
        harness.fake.append_events_at(3, now() - 100.0);
        let mut stdout_ids = Vec::new();
        let mut failed_runs = 0;
        for fault in &faults {
            harness.fake.append_events(12);
            // The fault hits the second page of the run; half the time it keeps hitting until
            // the run gives up, and the next run has to pick up the pieces.
            harness.fake.inject(Fault::Pass);
            harness.fake.inject(fault.clone());
            let persistent = matches!(fault, Fault::Status(503) | Fault::ResetAfter(_));
            if persistent {
                for _ in 0..8 {
                    harness.fake.inject(fault.clone());
                }
            }
            let run = harness.run(&args);
            if persistent {
                run.assert_code(5);
                harness.fake.clear_faults();
                failed_runs += 1;
            } else {
                run.assert_code(0);
            }
            stdout_ids.extend(run.ids());
            state_is_valid_json(&harness);
        }
        // Drain what the failed runs left behind.
        let run = harness.run(&args);
        run.assert_code(0);
        stdout_ids.extend(run.ids());
        let delivered = if to_file {
            assert!(stdout_ids.is_empty());
            ids_in(&common::read(&output))
        } else {
            stdout_ids
        };
        assert_exactly_once(&delivered, 0..harness.fake.event_count());
        eprintln!(
            "{}: {} events over {} runs ({failed_runs} failed), each once",
            if to_file { "file" } else { "stdout" },
            harness.fake.event_count(),
            faults.len() + 1
        );
    }
}

#[test]
fn expired_offsets_between_and_within_runs_lose_nothing() {
    let harness = Harness::with_defaults();
    harness.fake.append_events_at(10, now() - 100.0);
    let first = harness.run(&["--format", "json"]);
    first.assert_code(0);
    let mut delivered = first.ids();

    // Between runs: the stored offset expired.
    harness.fake.append_events(15);
    harness.fake.expire_offsets();
    let run = harness.run(&["--format", "json", "--limit", "6"]);
    run.assert_code(0);
    assert!(run.stderr.contains("416"), "{}", run.stderr);
    delivered.extend(run.ids());
    let recovery = harness
        .fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.param("from").is_some())
        .expect("a time-based recovery request");
    assert!(
        recovery.param("to").is_none(),
        "recovery continues by offset afterwards"
    );

    // Within a run: the third request of a chain gets 416.
    harness.fake.append_events(40);
    harness.fake.inject(Fault::Pass);
    harness.fake.inject(Fault::Pass);
    harness.fake.inject(Fault::ExpiredOffset);
    let run = harness.run(&["--format", "json", "--limit", "6"]);
    run.assert_code(0);
    delivered.extend(run.ids());
    assert!(
        run.stderr.contains("recovering") || run.stderr.contains("416"),
        "{}",
        run.stderr
    );
    assert_exactly_once(&delivered, 0..harness.fake.event_count());
}

#[test]
fn kill_9_at_random_moments_leaves_every_event_once_in_the_file() {
    // Without gzip a page streams in as it is made, so the tool writes while the page is still
    // arriving: kills land between a write and its commit as well as everywhere else.
    let harness = Harness::new(Options {
        event_size: EventSize::Realistic,
        gzip: false,
        ..Options::default()
    });
    let output = harness.path("events.json");
    let args = ["--output", output.to_str().unwrap(), "--limit", "40"];
    let mut rng = Lcg::seeded();
    harness.fake.append_events_at(50, now() - 100.0);
    let (mut killed_mid_run, mut tails_cut) = (0, 0);
    for _ in 0..50 {
        harness.fake.append_events(100 + rng.below(200) as usize);
        let child = harness.spawn(&args);
        std::thread::sleep(Duration::from_micros(rng.below(200_000)));
        send_signal(&child, libc::SIGKILL);
        let output = child.wait_with_output().unwrap();
        killed_mid_run += usize::from(output.status.code().is_none());
        // Each run reports when it had to cut what the previous, killed one left uncommitted.
        tails_cut += usize::from(String::from_utf8_lossy(&output.stderr).contains("cut its last"));
        state_is_valid_json(&harness);
    }
    // Let clean runs finish the job.
    for _ in 0..5 {
        harness.run(&args).assert_code(0);
    }
    let text = common::read(&output);
    assert!(text.ends_with('\n'), "no half line survives");
    assert_exactly_once(&ids_in(&text), 0..harness.fake.event_count());
    eprintln!(
        "50 runs killed with SIGKILL ({killed_mid_run} while running, {tails_cut} uncommitted \
         tails cut), {} events, each once",
        harness.fake.event_count()
    );
}

#[test]
fn sigterm_during_a_large_page_stops_within_two_seconds_and_the_next_run_delivers_the_rest() {
    let harness = Harness::with_defaults();
    harness.fake.append_events_at(3_000, now() - 100.0);
    harness.fake.inject(Fault::Slow {
        delay_per_event: Duration::from_millis(2),
    });
    let mut child = harness.spawn(&["--format", "json"]);
    let mut stdout = child.stdout.take().unwrap();
    let (first_line, first_line_seen) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match stdout.read(&mut buffer).unwrap() {
                0 => return String::from_utf8(bytes).unwrap(),
                n => bytes.extend_from_slice(&buffer[..n]),
            }
            if bytes.contains(&b'\n') {
                let _ = first_line.send(());
            }
        }
    });
    // Signal in the middle of the page: once events flow (however busy the machine is).
    first_line_seen
        .recv_timeout(Duration::from_secs(30))
        .expect("no event within 30 s");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    send_signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    let stopped_in = signalled.elapsed();
    assert_eq!(status.code(), Some(143));
    assert!(
        stopped_in < Duration::from_secs(2),
        "stopped in {stopped_in:?}"
    );
    let first = reader.join().unwrap();
    let first_ids = ids_in(&first);
    assert!(
        !first_ids.is_empty() && first_ids.len() < 3_000,
        "{} events before SIGTERM",
        first_ids.len()
    );

    let run = harness.run(&["--format", "json"]);
    run.assert_code(0);
    let mut all = first_ids.clone();
    all.extend(run.ids());
    assert_exactly_once(&all, 0..3_000);
    eprintln!(
        "SIGTERM after {} events: stopped in {stopped_in:?}; the next run delivered {}",
        first_ids.len(),
        run.ids().len()
    );
}

#[test]
fn sigterm_while_the_api_has_not_answered_yet_stops_within_two_seconds() {
    let harness = Harness::with_defaults();
    harness.fake.append_events_at(5, now() - 100.0);
    harness
        .fake
        .inject(Fault::HangBeforeHeaders(Duration::from_secs(20)));
    let mut child = harness.spawn(&["--format", "json"]);
    std::thread::sleep(Duration::from_millis(700));
    let signalled = Instant::now();
    send_signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "stopped in {:?}",
        signalled.elapsed()
    );
    // Nothing was delivered; the next run delivers everything.
    let run = harness.run(&["--format", "json"]);
    run.assert_code(0);
    assert_exactly_once(&run.ids(), 0..5);
}

#[test]
fn an_api_that_goes_silent_mid_page_is_cut_by_the_read_timeout_and_asked_again() {
    let harness = Harness::with_defaults();
    harness.fake.append_events_at(500, now() - 100.0);
    harness.fake.inject(Fault::StallAfter {
        events: 100,
        stall: Duration::from_secs(8),
    });
    let started = Instant::now();
    let run = harness.run(&["--format", "json", "--read-timeout", "1s"]);
    let took = started.elapsed();
    run.assert_code(0);
    // The silent connection was given up after the read timeout, not after the stall.
    assert!(took < Duration::from_secs(7), "took {took:?}");
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    // What came before the silence is delivered once, the rest from the page asked again.
    assert_exactly_once(&run.ids(), 0..500);
    assert!(run.stderr.contains(" retries=1 "), "{}", run.stderr);
}

#[test]
fn budgets_split_a_backlog_across_runs_exactly() {
    let harness = Harness::with_defaults();
    harness
        .fake
        .append_events_spread(100_000, now() - 250.0, now() - 100.0);
    let mut delivered = Vec::new();
    for run_index in 0..4 {
        let run = harness.run(&[
            "--format",
            "raw",
            "--max-events",
            "30000",
            "--limit",
            "10000",
        ]);
        run.assert_code(0);
        let ids = run.ids();
        assert!(
            ids.len() <= 30_000,
            "run {run_index} delivered {}",
            ids.len()
        );
        if run_index < 3 {
            assert_eq!(ids.len(), 30_000);
            assert!(run.stderr.contains("max_events"), "{}", run.stderr);
        }
        delivered.extend(ids);
    }
    assert_exactly_once(&delivered, 0..100_000);

    // A byte budget stops mid-page and the next run continues exactly there.
    let harness = Harness::with_defaults();
    harness.fake.append_events_at(600, now() - 100.0);
    let mut delivered = Vec::new();
    let mut runs = 0;
    while delivered.len() < 600 && runs < 30 {
        let run = harness.run(&["--format", "raw", "--max-bytes", "64KiB"]);
        run.assert_code(0);
        assert!(run.stdout.len() <= 64 * 1024, "{} bytes", run.stdout.len());
        assert!(!run.stdout.is_empty(), "every run makes progress");
        delivered.extend(run.ids());
        runs += 1;
    }
    assert_exactly_once(&delivered, 0..600);
    eprintln!("max_bytes 64KiB: 600 events in {runs} runs, each once");
}

#[test]
fn a_second_concurrent_run_exits_at_once_with_the_lock_code() {
    let harness = Harness::with_defaults();
    harness.fake.append_events_at(400, now() - 100.0);
    harness.fake.inject(Fault::Slow {
        delay_per_event: Duration::from_millis(3),
    });
    let first = harness.spawn(&["--format", "json"]);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let second = harness.run(&["--format", "json"]);
    second.assert_code(8);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(second.stdout.is_empty(), "the second run prints no events");
    assert!(
        second.stderr.contains("another akamai-siem run"),
        "{}",
        second.stderr
    );
    let first = Run::from(first.wait_with_output().unwrap());
    first.assert_code(0);
    assert_exactly_once(&first.ids(), 0..400);
}

#[test]
fn manual_runs_do_not_steal_events_from_the_schedule() {
    let harness = Harness::with_defaults();
    harness.fake.append_events_at(8, now() - 100.0);
    harness.run(&["--format", "json"]).assert_code(0);
    let state = common::read(&harness.state_file());
    harness.fake.append_events_at(5, now() - 80.0);
    harness.run(&["check"]).assert_code(0);
    harness.run(&["--no-state"]).assert_code(0);
    harness.run(&["--from", "-10m"]).assert_code(0);
    assert_eq!(
        common::read(&harness.state_file()),
        state,
        "manual runs left the state alone"
    );
    let run = harness.run(&["--format", "json"]);
    assert_exactly_once(&run.ids(), 8..13);
}

#[test]
fn state_show_and_reset() {
    let harness = Harness::with_defaults();
    harness.fake.append_events_at(6, now() - 100.0);
    harness.run(&[]).assert_code(0);
    let show = harness.run(&["state", "show"]);
    show.assert_code(0).assert_no_secret(&harness);
    for expected in [
        "offset",
        "obtained",
        "checkpoint",
        "last run",
        "6 events",
        "caught up",
    ] {
        assert!(
            show.stdout.contains(expected),
            "{expected}: {}",
            show.stdout
        );
    }
    let reset = harness.run(&["state", "reset", "--from", "-10m"]);
    reset.assert_code(0);
    assert!(reset.stdout.contains("starts by time"), "{}", reset.stdout);
    // The next run goes back by time and drops what it already delivered.
    let run = harness.run(&["--format", "json"]);
    run.assert_code(0);
    assert!(
        run.ids().is_empty(),
        "replays were dropped: {:?}",
        run.ids()
    );
    let request = harness.fake.requests().pop().unwrap();
    assert!(request.param("from").is_some(), "{}", request.target);
    harness
        .run(&["state", "reset", "--from", "-13h"])
        .assert_code(2);
}

#[test]
fn an_unrecoverable_gap_is_reported_with_its_interval_and_exit_9() {
    let harness = Harness::with_defaults();
    harness.fake.append_events_at(4, now() - 100.0);
    harness.run(&[]).assert_code(0);
    // Pretend the collector was down for 20 hours: the checkpoint is older than the API keeps.
    let text = common::read(&harness.state_file());
    let mut state: serde_json::Value = serde_json::from_str(&text).unwrap();
    let checkpoint = now() as i64 - 20 * 3600;
    state["checkpoint"] = checkpoint.into();
    std::fs::write(harness.state_file(), state.to_string()).unwrap();
    harness.fake.expire_offsets();
    harness.fake.append_events(3);
    let run = harness.run(&["--format", "json"]);
    run.assert_code(9);
    assert!(
        run.stderr.contains("can no longer be fetched"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&checkpoint.to_string()),
        "the exact interval: {}",
        run.stderr
    );
    assert_exactly_once(&run.ids(), 4..7);
}

#[test]
fn a_slow_reader_does_not_make_akamai_cut_the_page() {
    // Akamai ends a response after two minutes; here after one second. The output drains at
    // about 8 MB/s, far slower than the page arrives: the spool must take the difference.
    let harness = Harness::new(Options {
        event_size: EventSize::Realistic,
        response_deadline: Some(Duration::from_secs(1)),
        gzip: false,
        ..Options::default()
    });
    harness.fake.append_events_at(12_000, now() - 100.0);
    let mut child = harness.spawn(&["--format", "raw", "--limit", "20000"]);
    let mut stdout = child.stdout.take().unwrap();
    let mut text = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = stdout.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buffer[..n]);
        std::thread::sleep(Duration::from_millis(8));
    }
    let run = Run::from(std::process::Output {
        status: child.wait().unwrap(),
        stdout: text,
        stderr: {
            let mut err = Vec::new();
            child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
            err
        },
    });
    run.assert_code(0);
    assert!(
        !run.stderr.contains("without its closing context line"),
        "{}",
        run.stderr
    );
    assert_exactly_once(&run.ids(), 0..12_000);
    assert_eq!(
        harness.fake.requests().len(),
        1,
        "the page was read whole the first time"
    );
}
