//! Several config ids in one tenant, isolated: the API refuses a request naming an id without
//! SIEM access (403) or an unknown one (404) as a whole, so the refused id is found, reported
//! and set apart, the others are collected, and once it is accepted again its events arrive
//! from its own checkpoint without repeating the others'.
//!
//! The fake API serves event `n` for config id `ids[n % 2]`: with ids `111;222`, even event ids
//! belong to 111 and odd ones to 222.

use crate::common;

use common::{Harness, Run, assert_exactly_once, now};
use fake_akamai::{Options, RequestRecord};
use std::process::{Command, Stdio};

const A: u64 = 111;
const B: u64 = 222;

fn two_ids() -> Harness {
    Harness::new(Options {
        config_ids: vec![A, B],
        ..Options::default()
    })
}

fn of_a(ids: std::ops::Range<u64>) -> Vec<u64> {
    ids.filter(|id| id % 2 == 0).collect()
}

fn of_b(ids: std::ops::Range<u64>) -> Vec<u64> {
    ids.filter(|id| id % 2 == 1).collect()
}

fn sorted(mut ids: Vec<u64>) -> Vec<u64> {
    ids.sort_unstable();
    ids
}

fn state(harness: &Harness) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(harness.state_file()).unwrap()).unwrap()
}

/// The config ids a request named, as `111;222`.
fn configs_of(record: &RequestRecord) -> String {
    let path = record.target.split('?').next().unwrap();
    path.trim_start_matches("/siem/v1/configs/")
        .replace("%3B", ";")
        .replace("%3b", ";")
}

/// The requests a run made, from `first` on: (config ids, status, query).
fn requests_since(harness: &Harness, first: usize) -> Vec<(String, u16, String)> {
    harness.fake.requests()[first..]
        .iter()
        .map(|r| {
            let query = r.target.split_once('?').map_or("", |(_, q)| q).to_string();
            (configs_of(r), r.status, query)
        })
        .collect()
}

/// The number a summary line gives for `field` (`duplicates=3`).
fn summary_number(run: &Run, field: &str) -> u64 {
    let summary = run
        .stderr
        .lines()
        .rfind(|l| l.contains(" page(s)"))
        .unwrap_or_else(|| panic!("no summary in {}", run.stderr));
    let at = summary.find(&format!(" {field}=")).unwrap() + field.len() + 2;
    summary[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_refused_id_is_set_apart_and_resumes_from_its_checkpoint_without_repeating_the_others() {
    for (status, says) in [(403, "Manage SIEM"), (404, "check config_id")] {
        let harness = two_ids();
        let args = ["--format", "json", "--limit", "7"];
        let first = harness.fake.append_events_at(20, now() - 100.0);
        harness.fake.refuse(B, status);

        // Run 1: the request for both is refused; the probes find B; A is collected.
        let run = harness.run(&args);
        run.assert_code(0).assert_no_secret(&harness);
        assert_eq!(run.ids(), of_a(first.clone()), "{}", run.stderr);
        let refusal = format!("config id {B} (HTTP {status}");
        assert!(run.stderr.contains(&refusal), "{}", run.stderr);
        assert!(run.stderr.contains(says), "{}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("config ids fetched: {A}; refused: {B}")),
            "the summary says which ids were fetched: {}",
            run.stderr
        );
        let requests = requests_since(&harness, 0);
        assert_eq!((requests[0].0.as_str(), requests[0].1), ("111;222", status));
        let probes: Vec<(&str, u16)> = requests[1..3]
            .iter()
            .map(|(ids, status, _)| (ids.as_str(), *status))
            .collect();
        assert_eq!(probes, [("111", 200), ("222", status)]);
        assert!(
            requests[3..]
                .iter()
                .all(|(ids, s, _)| ids == "111" && *s == 200)
        );
        let saved = state(&harness);
        assert_eq!(saved["config_ids"], "111");
        assert_eq!(saved["refused"][0]["id"], B);
        assert_eq!(saved["refused"][0]["status"], status);
        let b_checkpoint = saved["refused"][0]["checkpoint"].as_i64().unwrap();
        assert!(
            (b_checkpoint as f64) < now() - 100.0,
            "B's checkpoint is before its first undelivered event"
        );
        // `state show` names the refused id, why, and where it resumes.
        let show = harness.run(&["state", "show"]);
        show.assert_code(0);
        assert!(
            show.stdout
                .contains(&format!("refused      config id {B} since "))
                && show.stdout.contains(&format!("(HTTP {status}"))
                && show.stdout.contains("resumes from"),
            "{}",
            show.stdout
        );

        // Run 2: B is tried alone and still refused (reported again); A goes on by offset.
        let second = harness.fake.append_events(10);
        let before = harness.fake.requests().len();
        let run = harness.run(&args);
        run.assert_code(0);
        assert_eq!(run.ids(), of_a(second.clone()), "{}", run.stderr);
        assert!(run.stderr.contains(&refusal), "{}", run.stderr);
        let requests = requests_since(&harness, before);
        assert_eq!((requests[0].0.as_str(), requests[0].1), ("222", status));
        assert!(
            requests[0].2.starts_with("from="),
            "B is tried by time from its own checkpoint: {requests:?}"
        );
        assert!(
            requests[1..]
                .iter()
                .all(|(ids, s, q)| ids == "111" && *s == 200 && q.starts_with("offset=")),
            "{requests:?}"
        );
        assert_eq!(state(&harness)["refused"][0]["checkpoint"], b_checkpoint);

        // Run 3: B is accepted again: all of its events arrive, from its checkpoint, and none
        // of A's twice.
        harness.fake.accept(B);
        let third = harness.fake.append_events(10);
        let before = harness.fake.requests().len();
        let run = harness.run(&args);
        run.assert_code(0);
        assert!(!run.stderr.contains(&refusal), "{}", run.stderr);
        let mut wanted = of_b(first.start..third.end);
        wanted.extend(of_a(third.clone()));
        assert_eq!(sorted(run.ids()), sorted(wanted), "{}", run.stderr);
        assert!(
            summary_number(&run, "duplicates") > 0,
            "the set's overlap fetched A's events again and dropped them: {}",
            run.stderr
        );
        let requests = requests_since(&harness, before);
        assert_eq!(requests[0].0, "222");
        assert_eq!(
            requests[0].2,
            format!("from={}&limit=7", b_checkpoint - 120),
            "B resumes by time from its checkpoint minus the overlap"
        );
        assert!(
            requests
                .iter()
                .any(|(ids, _, q)| ids == "111;222" && q.starts_with("from=")),
            "then one set again, by time (offsets belong to a set): {requests:?}"
        );
        let saved = state(&harness);
        assert_eq!(saved["config_ids"], "111;222");
        assert!(saved.get("refused").is_none(), "{saved}");

        // Run 4: one request for both, by offset, as before the refusal.
        let fourth = harness.fake.append_events(6);
        let before = harness.fake.requests().len();
        let run = harness.run(&args);
        run.assert_code(0);
        assert_eq!(sorted(run.ids()), fourth.clone().collect::<Vec<_>>());
        let requests = requests_since(&harness, before);
        assert!(
            requests
                .iter()
                .all(|(ids, s, q)| ids == "111;222" && *s == 200 && q.starts_with("offset=")),
            "{requests:?}"
        );
    }
}

#[test]
fn every_event_arrives_once_over_runs_while_an_id_is_refused_and_accepted_again() {
    let harness = two_ids();
    let output = harness.path("events.json");
    let args = [
        "--format",
        "json",
        "--limit",
        "10",
        "--max-events",
        "40",
        "--output",
        output.to_str().unwrap(),
    ];
    harness.fake.append_events_at(10, now() - 200.0);
    harness.fake.refuse(B, 403);
    for _ in 0..3 {
        harness.fake.append_events(30);
        harness.run(&args).assert_code(0);
    }
    // B has 50 events waiting; the budget of a run is 40 events.
    harness.fake.accept(B);
    harness.fake.append_events(20);
    let delivered_before = common::ids_in(&common::read(&output)).len();
    let run = harness.run(&args);
    run.assert_code(0);
    let delivered = common::ids_in(&common::read(&output));
    let this_run = &delivered[delivered_before..];
    assert!(
        this_run.iter().any(|id| id % 2 == 0) && this_run.iter().any(|id| id % 2 == 1),
        "a catching-up id shares the run's budget with the others: {this_run:?}\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("still catching up"), "{}", run.stderr);
    assert!(state(&harness)["refused"][0]["id"] == B);
    let mut runs = 0;
    loop {
        harness.fake.append_events(8);
        let run = harness.run(&args);
        run.assert_code(0);
        runs += 1;
        if run.stderr.contains("page(s), caught up") {
            break;
        }
        assert!(runs < 10, "never caught up: {}", run.stderr);
    }
    assert!(state(&harness).get("refused").is_none());
    assert_exactly_once(
        &common::ids_in(&common::read(&output)),
        0..harness.fake.event_count(),
    );
}

#[test]
fn refusing_every_id_or_the_only_one_is_an_error_as_before() {
    // One id: nothing to isolate, an auth failure (exit 4) or an unknown id (exit 3).
    for (status, code) in [(403, 4), (404, 3)] {
        let harness = Harness::new(Options {
            config_ids: vec![A],
            ..Options::default()
        });
        harness.fake.append_events_at(4, now() - 100.0);
        harness.fake.refuse(A, status);
        let run = harness.run(&["--format", "json"]);
        run.assert_code(code);
        assert!(run.stdout.is_empty());
        assert_eq!(harness.fake.requests().len(), 1, "no probe for one id");
    }
    // Both refused: the probes find no id to go on with, and the API's answer is the error.
    let harness = two_ids();
    harness.fake.append_events_at(4, now() - 100.0);
    harness.fake.refuse(A, 403);
    harness.fake.refuse(B, 403);
    let run = harness.run(&["--format", "json"]);
    run.assert_code(4);
    assert!(run.stdout.is_empty());
    assert!(
        !harness.path("akamai-siem-default.state").exists()
            || state(&harness).get("refused").is_none(),
        "nothing was set apart"
    );
}

#[test]
fn a_run_without_state_collects_the_others_too() {
    let harness = two_ids();
    let events = harness.fake.append_events_at(12, now() - 100.0);
    harness.fake.refuse(B, 403);
    let run = harness.run(&["--no-state", "--format", "json"]);
    run.assert_code(0);
    assert_eq!(run.ids(), of_a(events));
    assert!(
        run.stderr.contains(&format!("config id {B} (HTTP 403")),
        "{}",
        run.stderr
    );
}

/// Under Wazuh the refusal is a JSON diagnostic of its own, with the id: the shipped rules alert
/// on it.
#[test]
fn the_refusal_is_its_own_json_diagnostic_naming_the_id() {
    let harness = two_ids();
    harness.fake.append_events_at(6, now() - 100.0);
    harness.fake.refuse(B, 403);
    let mut command = Command::new(common::BIN);
    command
        .args(["--config", harness.config.to_str().unwrap()])
        .args(["--diagnostics", "json", "--format", "json"])
        .current_dir(harness.dir.path())
        .env("HOME", harness.path("home"))
        .stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("AKAMAI_SIEM_") {
            command.env_remove(name);
        }
    }
    let run = Run::from(command.output().unwrap());
    run.assert_code(0).assert_no_secret(&harness);
    let diagnostics: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let refused: Vec<&serde_json::Value> = diagnostics
        .iter()
        .filter(|d| d["collector"]["code"] == "config_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{}", run.stderr);
    let refusal = &refused[0]["collector"];
    assert_eq!(refusal["level"], "warn");
    assert_eq!(refusal["config_id"], B.to_string());
    assert_eq!(refusal["http_status"], "403");
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("not authorized"),
        "the API's reason: {refusal}"
    );
    let summary = diagnostics.last().unwrap();
    assert_eq!(summary["collector"]["code"], "summary");
    assert_eq!(summary["collector"]["config_ids"], A.to_string());
}

#[test]
fn an_id_refused_longer_than_the_api_keeps_events_reports_its_gap_when_accepted_again() {
    let harness = two_ids();
    harness.fake.append_events_at(6, now() - 100.0);
    harness.fake.refuse(B, 403);
    harness.run(&["--format", "json"]).assert_code(0);
    // As if B had been refused for 13 hours.
    let mut saved = state(&harness);
    let long_ago = now() as i64 - 13 * 3600;
    saved["refused"][0]["checkpoint"] = long_ago.into();
    std::fs::write(harness.state_file(), saved.to_string()).unwrap();
    harness.fake.accept(B);
    let later = harness.fake.append_events(6);
    let run = harness.run(&["--format", "json"]);
    run.assert_code(9);
    assert!(
        run.stderr
            .contains(&format!("events of config id {B} stored from {long_ago}")),
        "{}",
        run.stderr
    );
    // What the API still holds of B arrives, and A goes on.
    let mut wanted = of_b(0..later.end);
    wanted.extend(of_a(later));
    assert_eq!(sorted(run.ids()), sorted(wanted));
}

/// In a run of several tenants, a catching-up id takes its share out of its own tenant's part
/// of the run's budget, never the other tenant's.
#[test]
fn with_several_tenants_a_refused_id_costs_only_its_own_tenant() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    let acme = fake_akamai::FakeAkamai::start(Options {
        config_ids: vec![A, B],
        ..Options::default()
    })
    .unwrap();
    let beta = fake_akamai::FakeAkamai::start(Options {
        config_ids: vec![3003],
        ..Options::default()
    })
    .unwrap();
    let mut text = String::from("[DEFAULT]\nformat = json\n");
    for (name, fake) in [("acme", &acme), ("beta", &beta)] {
        let ca = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca, fake.ca_pem()).unwrap();
        let c = fake.credentials();
        text.push_str(&format!(
            "\n[{name}]\nhost = {}\nconfig_id = {}\nclient_token = {}\nclient_secret = {}\n\
             access_token = {}\nca_file = {}\n",
            fake.host(),
            fake.config_ids(),
            c.client_token,
            c.client_secret,
            c.access_token,
            ca.display()
        ));
    }
    let config = dir.path().join("akamai_config.ini");
    std::fs::write(&config, text).unwrap();
    let mut permissions = std::fs::metadata(&config).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
    std::fs::set_permissions(&config, permissions).unwrap();
    let run = |extra: &[&str]| {
        let mut command = Command::new(common::BIN);
        command
            .args([
                "--config",
                config.to_str().unwrap(),
                "--diagnostics",
                "text",
            ])
            .args(["--all-sections", "--limit", "50"])
            .args(extra)
            .current_dir(dir.path())
            .env("HOME", dir.path().join("home"))
            .stdin(Stdio::null());
        for (name, _) in std::env::vars() {
            if name.starts_with("AKAMAI_SIEM_") {
                command.env_remove(name);
            }
        }
        Run::from(command.output().unwrap())
    };
    let tenant_ids = |run: &Run, tenant: &str| -> Vec<u64> {
        run.stdout
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["tenant"] == tenant)
            .map(|l| fake_akamai::event_id(l).unwrap())
            .collect()
    };

    let first = acme.append_events_at(20, now() - 100.0);
    let beta_first = beta.append_events_at(10, now() - 100.0);
    acme.refuse(B, 403);
    let result = run(&[]);
    result.assert_code(0);
    assert_eq!(tenant_ids(&result, "acme"), of_a(first.clone()));
    assert_eq!(tenant_ids(&result, "beta"), beta_first.collect::<Vec<_>>());
    assert!(
        result.stderr.contains(&format!("config id {B} (HTTP 403")),
        "{}",
        result.stderr
    );

    // B's backlog is large; the run's budget is 400 events, 200 per tenant.
    acme.append_events(600);
    acme.accept(B);
    let beta_more = beta.append_events(150);
    let result = run(&["--max-events", "400"]);
    result.assert_code(0);
    assert_exactly_once(&tenant_ids(&result, "beta"), beta_more);
    let acme_got = tenant_ids(&result, "acme");
    assert!(
        acme_got.len() <= 250,
        "acme's catch-up stayed within its part: {}",
        acme_got.len()
    );
    assert!(
        acme_got.iter().any(|id| id % 2 == 0) && acme_got.iter().any(|id| id % 2 == 1),
        "within acme, B's catch-up shares with A"
    );
}

#[test]
fn check_names_the_refused_id_among_several() {
    let harness = two_ids();
    harness.fake.refuse(B, 403);
    let run = harness.run(&["check"]);
    run.assert_code(4).assert_no_secret(&harness);
    assert!(
        run.stderr.contains(&format!("config id {B} (HTTP 403")),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(&format!("config id {A} (HTTP")),
        "{}",
        run.stderr
    );
    harness.fake.accept(B);
    harness.run(&["check"]).assert_code(0);
}
