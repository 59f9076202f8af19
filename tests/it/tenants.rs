//! Several tenants in one run: two fake APIs stand for two Akamai accounts (own host, CA,
//! credentials and config ids). Each tenant's events arrive once, tagged; a tenant that fails
//! does not cost the other its events; the run's budget is shared fairly.

use crate::common;

use common::{assert_exactly_once, ids_in};
use fake_akamai::{FakeAkamai, Fault, Options, TestCredentials};
use std::path::{Path, PathBuf};

struct Accounts {
    dir: tempfile::TempDir,
    acme: FakeAkamai,
    beta: FakeAkamai,
    config: PathBuf,
}

fn account(config_id: u64, tag: &str) -> FakeAkamai {
    FakeAkamai::start(Options {
        config_ids: vec![config_id],
        credentials: TestCredentials {
            client_token: format!("akab-{tag}-client-token-000000000000"),
            client_secret: format!("c2VjcmV0LW9mLXRoZS17dGFnfS1hY2NvdW50LXh4eHh4{tag}"),
            access_token: format!("akab-{tag}-access-token-000000000000"),
        },
        ..Options::default()
    })
    .unwrap()
}

fn section(name: &str, fake: &FakeAkamai, dir: &Path) -> String {
    let ca = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca, fake.ca_pem()).unwrap();
    let c = fake.credentials();
    format!(
        "[{name}]\nhost = {}\nconfig_id = {}\nclient_token = {}\nclient_secret = {}\n\
         access_token = {}\nca_file = {}\n",
        fake.host(),
        fake.config_ids(),
        c.client_token,
        c.client_secret,
        c.access_token,
        ca.display()
    )
}

impl Accounts {
    /// Two accounts, with `defaults` in `[DEFAULT]` and `extra` added to `[acme]`.
    fn new(defaults: &str, acme_extra: &str) -> Accounts {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let acme = account(1001, "acme");
        let beta = account(2002, "beta");
        let text = format!(
            "[DEFAULT]\n{defaults}\n{}{acme_extra}\n\n{}",
            section("acme", &acme, dir.path()),
            section("beta", &beta, dir.path())
        );
        let config = dir.path().join("akamai_config.ini");
        std::fs::write(&config, text).unwrap();
        let mut permissions = std::fs::metadata(&config).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
        std::fs::set_permissions(&config, permissions).unwrap();
        Accounts {
            dir,
            acme,
            beta,
            config,
        }
    }

    fn run(&self, args: &[&str]) -> common::Run {
        let output = common::hermetic(self.dir.path(), &self.config, args)
            .output()
            .unwrap();
        common::Run::from(output)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Event ids of `tenant` in `text` (JSON lines carrying `tenant`).
fn ids_of(text: &str, tenant: &str) -> Vec<u64> {
    let lines: String = text
        .lines()
        .filter(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["tenant"] == tenant
        })
        .map(|line| format!("{line}\n"))
        .collect();
    ids_in(&lines)
}

#[test]
fn two_accounts_in_one_run_deliver_each_tenants_events_once_and_tagged() {
    let accounts = Accounts::new(
        "output = events.json\nformat = json",
        "field.customer = ACME Corp\nfield.region = eu",
    );
    let acme = accounts.acme.append_events(300);
    let beta = accounts.beta.append_events(200);
    let run = accounts.run(&["--all-sections", "--limit", "70"]);
    run.assert_code(0);
    for secret in [&accounts.acme, &accounts.beta].iter().flat_map(|f| {
        [
            f.credentials().client_secret.clone(),
            f.credentials().access_token.clone(),
        ]
    }) {
        assert!(!run.stderr.contains(&secret), "a secret in stderr");
    }
    let text = common::read(&accounts.path("events.json"));
    assert_eq!(text.lines().count(), 500, "whole lines, nothing else");
    assert_exactly_once(&ids_of(&text, "acme"), acme.clone());
    assert_exactly_once(&ids_of(&text, "beta"), beta.clone());
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        match value["tenant"].as_str().unwrap() {
            "acme" => {
                assert_eq!(value["customer"], "ACME Corp");
                assert_eq!(value["region"], "eu");
            }
            "beta" => assert!(value.get("customer").is_none(), "labels are per section"),
            other => panic!("tenant {other}"),
        }
    }
    // Each tenant's diagnostics name it; one line says how each ended.
    assert!(run.stderr.contains("[acme] 300 events"), "{}", run.stderr);
    assert!(run.stderr.contains("[beta] 200 events"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("2 tenants; acme: caught up (300 events); beta: caught up (200 events)"),
        "{}",
        run.stderr
    );
    assert!(accounts.path("akamai-siem-acme.state").is_file());
    assert!(accounts.path("akamai-siem-beta.state").is_file());

    // The next run continues each tenant where it stopped.
    let more = accounts.beta.append_events(50);
    accounts
        .run(&["--section", "acme", "--section", "beta"])
        .assert_code(0);
    let text = common::read(&accounts.path("events.json"));
    assert_exactly_once(&ids_of(&text, "acme"), acme);
    assert_exactly_once(&ids_of(&text, "beta"), beta.start..more.end);
}

#[test]
fn a_failing_tenant_does_not_stop_the_other_and_catches_up_next_run() {
    let accounts = Accounts::new(
        "output = {tenant}.json\nformat = json\nretry_budget = 2s",
        "",
    );
    let acme = accounts.acme.append_events(120);
    let beta = accounts.beta.append_events(80);
    for _ in 0..40 {
        accounts.beta.inject(Fault::Status(503));
    }
    let run = accounts.run(&["--all-sections"]);
    assert_eq!(run.code, 5, "the most severe exit: {}", run.stderr);
    assert!(run.stderr.contains("failed: beta"), "{}", run.stderr);
    assert!(
        run.stderr.contains("acme: caught up (120 events)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("[beta]"), "{}", run.stderr);
    // One file per tenant, and acme's is complete and committed.
    assert_exactly_once(
        &ids_of(&common::read(&accounts.path("acme.json")), "acme"),
        acme.clone(),
    );
    assert!(ids_of(&common::read(&accounts.path("beta.json")), "beta").is_empty());

    accounts.beta.clear_faults();
    accounts.run(&["--all-sections"]).assert_code(0);
    assert_exactly_once(
        &ids_of(&common::read(&accounts.path("acme.json")), "acme"),
        acme,
    );
    assert_exactly_once(
        &ids_of(&common::read(&accounts.path("beta.json")), "beta"),
        beta,
    );
}

#[test]
fn a_busy_tenant_cannot_starve_a_quiet_one_under_the_runs_budget() {
    let accounts = Accounts::new("format = json", "");
    accounts.acme.append_events(3_000);
    let beta = accounts.beta.append_events(150);
    // stdout: the wodle's route, where the budget matters most. acme alone would take it all.
    let run = accounts.run(&["--all-sections", "--max-events", "1000", "--limit", "400"]);
    run.assert_code(0);
    let acme_got = ids_of(&run.stdout, "acme").len();
    assert_exactly_once(&ids_of(&run.stdout, "beta"), beta);
    assert!(
        (500..=850).contains(&acme_got),
        "acme had its half, plus at most what beta left: {acme_got}"
    );
    assert!(
        run.stderr.contains("stopped by max_events"),
        "{}",
        run.stderr
    );
}

#[test]
fn tenants_sharing_a_state_file_are_refused_before_anything_is_fetched() {
    let accounts = Accounts::new("state_file = one.state\noutput = events.json", "");
    accounts.acme.append_events(5);
    let run = accounts.run(&["--all-sections"]);
    run.assert_code(2);
    assert!(run.stderr.contains("{tenant}"), "{}", run.stderr);
    assert!(accounts.acme.requests().is_empty());
    assert!(accounts.beta.requests().is_empty());
}

#[test]
fn a_single_named_section_is_tagged_but_the_plain_default_run_is_not() {
    let accounts = Accounts::new("format = json", "");
    // Before the safety lag, inside the one window of a --no-state run.
    accounts.acme.append_events_at(3, common::now() - 120.0);
    let named = accounts.run(&["--section", "acme", "--no-state"]);
    named.assert_code(0);
    assert_eq!(ids_of(&named.stdout, "acme").len(), 3);
    assert!(named.stderr.contains("[acme]"), "{}", named.stderr);

    let accounts = Accounts::new("format = json", "");
    // A [default] section, like the Python wodle's config: its output stays as it was.
    let text = std::fs::read_to_string(&accounts.config)
        .unwrap()
        .replace("[acme]", "[default]");
    std::fs::write(&accounts.config, text).unwrap();
    accounts.acme.append_events_at(3, common::now() - 120.0);
    let plain = accounts.run(&["--no-state"]);
    plain.assert_code(0);
    assert_eq!(plain.stdout.lines().count(), 3);
    for line in plain.stdout.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value.get("tenant").is_none(), "{line}");
    }
    assert!(!plain.stderr.contains("[default]"), "{}", plain.stderr);
}

#[test]
fn state_show_and_check_cover_every_selected_tenant() {
    let accounts = Accounts::new("output = events.json", "");
    accounts.acme.append_events(4);
    accounts.beta.append_events(4);
    accounts.run(&["--all-sections"]).assert_code(0);
    let show = accounts.run(&["state", "show", "--all-sections"]);
    show.assert_code(0);
    assert!(show.stdout.contains("== tenant acme"), "{}", show.stdout);
    assert!(show.stdout.contains("== tenant beta"), "{}", show.stdout);
    let check = accounts.run(&["check", "--section", "acme", "--section", "beta"]);
    check.assert_code(0);
    assert_eq!(check.stdout.matches("OK:").count(), 2, "{}", check.stdout);
    let reset = accounts.run(&["state", "reset", "--section", "beta"]);
    reset.assert_code(0);
}

#[test]
fn in_the_wazuh_format_the_tenant_and_labels_are_top_level_fields_the_rules_see() {
    let accounts = Accounts::new("output = {tenant}.json", "field.customer = ACME Corp");
    accounts.acme.append_events(10);
    accounts.beta.append_events(10);
    accounts.run(&["--all-sections"]).assert_code(0);
    let text = common::read(&accounts.path("acme.json"));
    assert_eq!(text.lines().count(), 10);
    for line in text.lines() {
        assert!(
            line.starts_with("{\"integration\":\"akamai\","),
            "{line:.80}"
        );
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["tenant"], "acme");
        assert_eq!(value["customer"], "ACME Corp");
    }
}

#[test]
fn a_label_that_would_collide_with_an_event_field_is_refused_with_its_line() {
    for (label, word) in [
        ("field.type = x", "collide"),
        ("field.srcip = x", "collide"),
        ("field.9lives = x", "letters"),
    ] {
        let accounts = Accounts::new("output = events.json", label);
        let run = accounts.run(&["--all-sections"]);
        assert_eq!(run.code, 3, "{label}: {}", run.stderr);
        assert!(run.stderr.contains(word), "{label}: {}", run.stderr);
        assert!(
            run.stderr.contains("[acme] line"),
            "{label}: {}",
            run.stderr
        );
        assert!(accounts.acme.requests().is_empty());
    }
}
