//! What an operator meets by hand: `check` catching what the real run would trip on, errors that
//! say each cause once and name the place to fix, flags that cannot apply refused, replays that
//! deliver the window asked for.

use crate::common;

use common::{Harness, now};
use fake_akamai::{EventSize, Options};
use std::path::{Path, PathBuf};

/// A path whose parent is a regular file: creating it fails even for root (ENOTDIR), unlike a
/// chmod'ed directory.
fn under_a_file(harness: &Harness, name: &str) -> PathBuf {
    let file = harness.path("a-regular-file");
    std::fs::write(&file, "not a directory\n").unwrap();
    file.join(name)
}

fn rewrite_config(harness: &Harness, edit: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(&harness.config).unwrap();
    std::fs::write(&harness.config, edit(&text)).unwrap();
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("akamai-siem: error:"))
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// --- check fails whenever the real run would -------------------------------------------------

#[test]
fn check_fails_before_any_request_when_the_state_directory_is_unusable() {
    let harness = Harness::with_defaults();
    let missing = harness.path("no-such-dir/s.state");
    let under_file = under_a_file(&harness, "s.state");
    for state in [&missing, &under_file] {
        let run = harness.run(&["check", "--state", state.to_str().unwrap()]);
        run.assert_code(7).assert_no_secret(&harness);
        let errors = error_lines(&run.stderr);
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert!(
            errors[0].contains(&state.display().to_string()) && errors[0].contains("state_file"),
            "{}",
            run.stderr
        );
        assert!(!run.stdout.contains("OK"), "{}", run.stdout);
    }
    assert!(
        harness.fake.requests().is_empty(),
        "local checks come first"
    );
    assert!(!missing.parent().unwrap().exists(), "check creates nothing");
}

#[test]
fn a_corrupt_state_fails_check_and_show_and_state_reset_replaces_it() {
    let harness = Harness::with_defaults();
    let state = harness.state_file();
    std::fs::write(&state, "{ this is not json").unwrap();

    let check = harness.run(&["check"]);
    check.assert_code(7);
    let errors = error_lines(&check.stderr);
    assert_eq!(errors.len(), 1, "{}", check.stderr);
    assert!(
        errors[0].contains("corrupt") && errors[0].contains("akamai-siem state reset"),
        "{}",
        check.stderr
    );
    assert!(
        harness.fake.requests().is_empty(),
        "local checks come first"
    );

    let show = harness.run(&["state", "show"]);
    show.assert_code(7);
    assert!(
        show.stderr.contains("corrupt") && show.stderr.contains("state reset"),
        "{}",
        show.stderr
    );
    assert!(
        !show.stderr.contains("nothing was fetched"),
        "{}",
        show.stderr
    );

    // The advice works: reset replaces the corrupt state, saying what it discards.
    let reset = harness.run(&["state", "reset", "--from", "-30m"]);
    reset.assert_code(0);
    let said = format!("{}{}", reset.stdout, reset.stderr);
    assert!(said.contains("discard"), "{said}");
    let shown = harness.run(&["state", "show"]);
    shown.assert_code(0);
    assert!(shown.stdout.contains("checkpoint"), "{}", shown.stdout);
    harness.run(&["check"]).assert_code(0);
}

#[test]
fn check_fails_before_any_request_when_the_output_directory_is_unusable() {
    let harness = Harness::with_defaults();
    let missing = harness.path("no-such-dir/events.json");
    let under_file = under_a_file(&harness, "events.json");
    for output in [&missing, &under_file] {
        let run = harness.run(&["check", "--output", output.to_str().unwrap()]);
        run.assert_code(6);
        let errors = error_lines(&run.stderr);
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert!(
            errors[0].contains(&output.display().to_string()),
            "{}",
            run.stderr
        );
    }
    assert!(
        harness.fake.requests().is_empty(),
        "local checks come first"
    );

    // A usable output directory passes and is left as it was.
    let before = entries(harness.dir.path());
    let fine = harness.path("events.json");
    harness
        .run(&["check", "--output", fine.to_str().unwrap()])
        .assert_code(0);
    assert_eq!(entries(harness.dir.path()), before, "check creates nothing");
}

#[test]
fn an_unopenable_log_file_is_a_configuration_error_naming_the_key() {
    let harness = Harness::with_defaults();
    let log = under_a_file(&harness, "run.log");
    for command in [&["check"][..], &["--no-state"][..]] {
        let mut args = command.to_vec();
        args.extend(["--log-file", log.to_str().unwrap()]);
        let run = harness.run(&args);
        run.assert_code(3);
        assert!(
            run.stderr.contains("--log-file") && run.stderr.contains("`log_file`"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stderr.matches("os error").count(), 1, "{}", run.stderr);
    }
    assert!(harness.fake.requests().is_empty());
}

// --- one message per cause ---------------------------------------------------------------------

#[test]
fn each_cause_is_said_once() {
    let harness = Harness::with_defaults();
    // An io::Error inside a variant that prints its source.
    let run = harness.run(&[
        "--no-state",
        "--edgerc",
        harness.dir.path().to_str().unwrap(),
    ]);
    run.assert_code(3);
    assert_eq!(run.stderr.matches("os error").count(), 1, "{}", run.stderr);

    // A state file that cannot be read: the same shape from the state module.
    let run = harness.run(&[
        "state",
        "show",
        "--state",
        harness.dir.path().to_str().unwrap(),
    ]);
    run.assert_code(7);
    assert_eq!(run.stderr.matches("os error").count(), 1, "{}", run.stderr);

    // An INI syntax error wrapped with its file.
    rewrite_config(&harness, |text| format!("{text}limit = 5\nlimit = 6\n"));
    let run = harness.run(&["--no-state"]);
    run.assert_code(3);
    assert_eq!(
        run.stderr.matches("appears twice").count(),
        1,
        "{}",
        run.stderr
    );
}

// --- exit codes as documented ------------------------------------------------------------------

#[test]
fn a_host_with_an_impossible_port_names_the_file_and_line() {
    let harness = Harness::with_defaults();
    rewrite_config(&harness, |text| {
        text.lines()
            .map(|line| {
                if line.starts_with("host =") {
                    "host = 127.0.0.1:99999".to_string()
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    });
    let line = std::fs::read_to_string(&harness.config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("host ="))
        .unwrap()
        + 1;
    for args in [&["check"][..], &["--no-state"][..]] {
        let run = harness.run(args);
        run.assert_code(3);
        assert!(
            run.stderr
                .contains(&format!("akamai_config.ini [default] line {line}: `host`")),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("99999"), "{}", run.stderr);
    }
}

#[test]
fn decoding_a_directory_is_a_usage_error() {
    let harness = Harness::with_defaults();
    let run = harness.run(&["decode", harness.dir.path().to_str().unwrap()]);
    run.assert_code(2);
    assert!(!run.stderr.contains("bug"), "{}", run.stderr);
    assert!(run.stderr.contains("directory"), "{}", run.stderr);
}

#[test]
fn a_missing_edgerc_section_names_the_flag_that_picks_it() {
    let harness = Harness::with_defaults();
    let edgerc = harness.path("edgerc");
    std::fs::write(&edgerc, "[other]\nhost = h\n").unwrap();
    let run = harness.run(&["--no-state", "--edgerc", edgerc.to_str().unwrap()]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("--edgerc-section NAME") && run.stderr.contains("other"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("--section NAME"), "{}", run.stderr);
}

// --- flags that cannot apply are refused -------------------------------------------------------

#[test]
fn flags_that_cannot_apply_are_refused_naming_the_flag() {
    let harness = Harness::with_defaults();
    let state = harness.path("s.state");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--from", "-1h", "--state", state.to_str().unwrap()],
            "--state",
        ),
        (&["--from", "-1h", "--window", "5m"], "--window"),
        (&["check", "--limit", "5"], "--limit"),
        (&["check", "--max-events", "5"], "--max-events"),
        (&["decode", "--window", "5m"], "--window"),
        (&["decode", "--no-state"], "--no-state"),
        (&["state", "show", "--retry-budget", "5s"], "--retry-budget"),
        (&["state", "reset", "--max-bytes", "1GiB"], "--max-bytes"),
    ];
    for (args, flag) in cases {
        let run = harness.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(flag), "{args:?}: {}", run.stderr);
    }
    assert!(harness.fake.requests().is_empty());
    assert!(!state.exists());
}

#[test]
fn compound_durations_and_relative_times_parse() {
    let harness = Harness::with_defaults();
    harness
        .run(&["--no-state", "--window", "1h30m"])
        .assert_code(0);
    let requests = harness.fake.requests();
    let from: i64 = requests[0].param("from").unwrap().parse().unwrap();
    let to: i64 = requests[0].param("to").unwrap().parse().unwrap();
    assert_eq!(to - from, 5400);

    let started = now() as i64;
    harness
        .run(&["--from", "-11h55m", "--to", "-11h", "--format", "json"])
        .assert_code(0);
    let from: i64 = harness.fake.requests()[1]
        .param("from")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (from - (started - 42_900)).abs() <= 2,
        "{from} vs {started}"
    );
}

#[test]
fn a_misspelt_environment_variable_warns_with_a_suggestion() {
    let harness = Harness::with_defaults();
    let run = common::Run::from(
        harness
            .command(&["--no-state"])
            .env("AKAMAI_SIEM_LIMT", "5")
            .env("AKAMAI_SIEM_SECTION", "default")
            .output()
            .unwrap(),
    );
    run.assert_code(0);
    assert!(
        run.stderr.contains("AKAMAI_SIEM_LIMT") && run.stderr.contains("AKAMAI_SIEM_LIMIT"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("AKAMAI_SIEM_SECTION"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_run_without_state_still_validates_the_state_keys() {
    let harness = Harness::with_defaults();
    rewrite_config(&harness, |text| format!("{text}overlap = 5x\n"));
    let run = harness.run(&["--no-state"]);
    run.assert_code(3);
    assert!(run.stderr.contains("`overlap`"), "{}", run.stderr);
    assert!(harness.fake.requests().is_empty());
}

#[test]
fn wazuh_lines_cannot_be_longer_than_wazuh_reads() {
    let harness = Harness::with_defaults();
    let run = harness.run(&["--no-state", "--max-line-bytes", "70000"]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("--max-line-bytes") && run.stderr.contains("65278"),
        "{}",
        run.stderr
    );
    // Other formats do not go through Wazuh's line limit.
    harness
        .run(&[
            "--no-state",
            "--max-line-bytes",
            "70000",
            "--format",
            "json",
        ])
        .assert_code(0);
}

// --- replays deliver the window asked for ------------------------------------------------------

#[test]
fn a_replay_to_stdout_is_not_cut_by_the_wodle_budget() {
    let harness = Harness::new(Options {
        event_size: EventSize::Small,
        ..Options::default()
    });
    let t = now();
    let ids = harness
        .fake
        .append_events_spread(30_010, t - 1_800.0, t - 1_200.0);
    let run = harness.run(&[
        "--from", "-1h", "--to", "-10m", "--format", "raw", "--limit", "600000",
    ]);
    run.assert_code(0);
    assert_eq!(run.stdout.lines().count() as u64, ids.end - ids.start);

    // An explicit budget still applies.
    let run = harness.run(&[
        "--from",
        "-1h",
        "--to",
        "-10m",
        "--format",
        "raw",
        "--max-events",
        "7",
    ]);
    run.assert_code(0);
    assert_eq!(run.stdout.lines().count(), 7);
}

#[test]
fn an_explicit_to_is_honoured_and_a_changed_one_is_announced() {
    let harness = Harness::with_defaults();
    let started = now() as i64;
    harness
        .run(&["--from", "-1h", "--to", "-10s"])
        .assert_code(0);
    let to: i64 = harness.fake.requests()[0]
        .param("to")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (to - (started - 10)).abs() <= 2,
        "to {to}, started {started}"
    );

    let run = harness.run(&["--from", "-1h", "--to", "now"]);
    run.assert_code(0);
    let to: i64 = harness.fake.requests()[1]
        .param("to")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        run.stderr.contains("--to") && run.stderr.contains(&to.to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn a_replay_older_than_twelve_hours_is_refused_clearly() {
    let harness = Harness::with_defaults();
    let run = harness.run(&["--from", "-12h5m"]);
    run.assert_code(2);
    assert!(run.stderr.contains("12 hours"), "{}", run.stderr);
}
