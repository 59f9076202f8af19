//! The tool as a packaged system tool: `--version` naming its build, shell completions and the
//! man page generated from the command line, the metrics file, progress on a terminal only.

use crate::common;

use common::{BIN, Harness, Run, now};
use fake_akamai::Fault;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn output_of(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `program args` with `input` on stdin; its exit code and stderr.
fn pipe_into(program: &str, args: &[&str], input: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// --- --version, completions, man ----------------------------------------------------------

#[test]
fn version_names_the_release_the_commit_and_the_target() {
    let (code, stdout, _) = output_of(&["--version"]);
    assert_eq!(code, 0);
    let version = env!("CARGO_PKG_VERSION");
    let line = stdout.trim();
    let pattern = regex::Regex::new(&format!(
        r"^akamai-siem {} \(commit ([0-9a-f]{{12}}|unknown), [a-z0-9_]+-[a-z0-9_-]+\)$",
        regex::escape(version)
    ))
    .unwrap();
    assert!(pattern.is_match(line), "{line}");
    // Built from this checkout, it names this checkout's HEAD.
    if let Ok(head) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        && head.status.success()
    {
        let head = String::from_utf8(head.stdout).unwrap();
        assert!(line.contains(head.trim()), "{line} does not name {head}");
    }
}

#[test]
fn completions_are_valid_scripts_that_know_every_subcommand_and_flag() {
    let (code, bash, stderr) = output_of(&["completions", "bash"]);
    assert_eq!(code, 0, "{stderr}");
    let (syntax, problems) = pipe_into("bash", &["-n"], &bash);
    assert_eq!(syntax, 0, "bash -n rejects the script: {problems}");
    for word in [
        "fetch",
        "check",
        "decode",
        "state",
        "--max-events",
        "--from",
        "man",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    for (shell, marker) in [
        ("zsh", "#compdef akamai-siem"),
        ("fish", "complete -c akamai-siem"),
    ] {
        let (code, script, stderr) = output_of(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(script.contains(marker), "{shell}: {script:.300}");
        assert!(script.contains("max-events"), "{shell} lacks --max-events");
    }
}

#[test]
fn completions_for_an_unknown_shell_are_a_usage_error() {
    let (code, stdout, stderr) = output_of(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("bash") && stderr.contains("fish"),
        "{stderr}"
    );
}

#[test]
fn completions_and_man_need_no_config_and_refuse_fetch_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["man"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH akamai-siem 1"));
    let (code, _, stderr) = output_of(&["completions", "bash", "--max-events", "5"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--max-events does not apply"), "{stderr}");
}

#[test]
#[ignore = "needs groff"]
fn every_man_page_renders_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = output_of(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let mut pages: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    assert!(pages.len() >= 8, "{pages:?}");
    for page in &pages {
        let roff = std::fs::read_to_string(page).unwrap();
        // -k: through preconv, as man(1) renders a page, so UTF-8 in help text (→) is text.
        let (rendered, warnings) = pipe_into("groff", &["-k", "-man", "-ww", "-z"], &roff);
        assert_eq!(rendered, 0, "{}: groff failed: {warnings}", page.display());
        assert_eq!(warnings, "", "groff warns about {}", page.display());
    }
    // `man` alone prints the main page, which as text carries what a reader looks for.
    let (_, page, _) = output_of(&["man"]);
    assert_eq!(page, common::read(&dir.path().join("akamai-siem.1")));
    let text = render_as_text(&page);
    for word in [
        "--max-events",
        "completions",
        "Exit codes",
        "SUBCOMMANDS",
        "akamai-siem-state(1)",
    ] {
        assert!(text.contains(word), "rendered page lacks {word}:\n{text}");
    }
}

fn render_as_text(roff: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-P-cbou"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(roff.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // groff hyphenates at line ends and justifies with extra spaces: join the pieces and
    // collapse the spaces so words and phrases are found whole.
    let text = String::from_utf8_lossy(&out.stdout).replace("\u{2010}\n", "");
    let spaces = regex::Regex::new(r" +").unwrap();
    spaces.replace_all(&text, " ").into_owned()
}

// --- metrics_file ---------------------------------------------------------------------------

/// The harness's config with `metrics_file` set, and where that file is.
fn with_metrics(harness: &Harness) -> PathBuf {
    let path = harness.path("textfile/akamai_siem.prom");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut config = std::fs::read_to_string(&harness.config).unwrap();
    config.push_str(&format!("metrics_file = {}\n", path.display()));
    std::fs::write(&harness.config, config).unwrap();
    path
}

/// The run's summary line as `name=value` pairs.
fn summary_fields(run: &Run) -> HashMap<String, f64> {
    let line = run
        .stderr
        .lines()
        .rfind(|l| l.contains(" events=") && l.contains(" pages="))
        .unwrap_or_else(|| panic!("no summary line in\n{}", run.stderr));
    line.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
        .collect()
}

/// The metrics file through a Prometheus text parser: `name` or `name{cause=…}` to value.
/// Every sample line must parse, with a declared counter or gauge type, and carry the labels.
fn parse_metrics(path: &Path, tenant: &str, config_ids: &str) -> HashMap<String, f64> {
    use prometheus_parse::{Scrape, Value};
    let text = std::fs::read_to_string(path).unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let sample_lines = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "unparsed lines in\n{text}"
    );
    let mut values = HashMap::new();
    for sample in scrape.samples {
        let value = match sample.value {
            Value::Counter(v) => {
                assert!(
                    sample.metric.ends_with("_total"),
                    "{} is a counter",
                    sample.metric
                );
                v
            }
            Value::Gauge(v) => v,
            other => panic!("{}: untyped or unexpected {other:?}", sample.metric),
        };
        assert!(
            scrape.docs.contains_key(&sample.metric),
            "{} has no HELP",
            sample.metric
        );
        if sample.metric == "akamai_siem_build_info" {
            continue;
        }
        assert_eq!(
            sample.labels.get("tenant"),
            Some(tenant),
            "{}",
            sample.metric
        );
        assert_eq!(sample.labels.get("config_ids"), Some(config_ids));
        let key = match sample.labels.get("cause") {
            Some(cause) => format!("{}{{cause={cause}}}", sample.metric),
            None => sample.metric.clone(),
        };
        assert!(
            values.insert(key, value).is_none(),
            "{} twice",
            sample.metric
        );
    }
    values
}

fn metric(values: &HashMap<String, f64>, name: &str) -> f64 {
    *values
        .get(&format!("akamai_siem_{name}"))
        .unwrap_or_else(|| panic!("no akamai_siem_{name} in {values:?}"))
}

#[test]
fn the_metrics_file_matches_each_runs_summary_and_its_counters_grow_across_runs() {
    let harness = Harness::with_defaults();
    let metrics = with_metrics(&harness);
    let ids = harness.fake.config_ids();
    harness.fake.append_events_at(25, now() - 120.0);
    harness.fake.inject(Fault::TooManyRequests {
        retry_after_secs: 0,
    });
    let first = harness.run(&["--limit", "10"]);
    first.assert_code(0).assert_no_secret(&harness);
    let summary = summary_fields(&first);
    let after_first = parse_metrics(&metrics, "default", &ids);
    for (name, field) in [
        ("events_delivered_total", "events"),
        ("duplicates_dropped_total", "duplicates"),
        ("pages_total", "pages"),
        ("response_bytes_total", "response_bytes"),
        ("output_bytes_total", "output_bytes"),
    ] {
        assert_eq!(metric(&after_first, name), summary[field], "{name}");
    }
    assert_eq!(metric(&after_first, "events_delivered_total"), 25.0);
    assert_eq!(summary["retries"], 1.0);
    assert_eq!(
        metric(&after_first, "retries_total{cause=rate_limited}"),
        1.0
    );
    assert_eq!(
        metric(&after_first, "retries_total{cause=server_error}"),
        0.0
    );
    assert_eq!(metric(&after_first, "runs_total"), 1.0);
    assert_eq!(metric(&after_first, "runs_failed_total"), 0.0);
    assert_eq!(metric(&after_first, "last_run_exit_code"), 0.0);
    assert_eq!(metric(&after_first, "last_run_caught_up"), 1.0);
    let seconds = summary["seconds"];
    let duration = metric(&after_first, "last_run_duration_seconds");
    assert!((duration - seconds).abs() < 0.05, "{duration} vs {seconds}");
    let finished = metric(&after_first, "last_run_timestamp_seconds");
    assert!((now() - finished).abs() < 30.0, "{finished}");
    assert_eq!(
        metric(&after_first, "last_success_timestamp_seconds"),
        finished
    );
    // Caught up: the checkpoint is about the API's safety lag behind, far from the horizon.
    let lag = metric(&after_first, "checkpoint_lag_seconds");
    assert!((0.0..600.0).contains(&lag), "lag {lag}");
    let left = metric(&after_first, "horizon_remaining_seconds");
    assert_eq!(left, 43_200.0 - lag);

    // A second run adds to the counters; the file is replaced whole.
    harness.fake.append_events(7);
    harness.fake.inject(Fault::Status(503));
    let second = harness.run(&["--limit", "10"]);
    second.assert_code(0);
    let summary = summary_fields(&second);
    let after_second = parse_metrics(&metrics, "default", &ids);
    assert_eq!(summary["events"], 7.0);
    for (name, field) in [
        ("events_delivered_total", "events"),
        ("pages_total", "pages"),
        ("response_bytes_total", "response_bytes"),
        ("output_bytes_total", "output_bytes"),
    ] {
        assert_eq!(
            metric(&after_second, name),
            metric(&after_first, name) + summary[field],
            "{name} must grow by the second run's {field}"
        );
    }
    assert_eq!(metric(&after_second, "runs_total"), 2.0);
    assert_eq!(
        metric(&after_second, "retries_total{cause=server_error}"),
        1.0
    );
    assert_eq!(
        metric(&after_second, "retries_total{cause=rate_limited}"),
        1.0
    );

    // A failed run is counted, says its exit code, and is no success.
    harness.fake.inject(Fault::Status(401));
    let failed = harness.run(&[]);
    failed.assert_code(4).assert_no_secret(&harness);
    let after_failure = parse_metrics(&metrics, "default", &ids);
    assert_eq!(metric(&after_failure, "runs_total"), 3.0);
    assert_eq!(metric(&after_failure, "runs_failed_total"), 1.0);
    assert_eq!(metric(&after_failure, "last_run_exit_code"), 4.0);
    assert_eq!(
        metric(&after_failure, "last_success_timestamp_seconds"),
        metric(&after_second, "last_success_timestamp_seconds")
    );
    assert_eq!(
        metric(&after_failure, "events_delivered_total"),
        metric(&after_second, "events_delivered_total")
    );
    let left: Vec<_> = std::fs::read_dir(metrics.parent().unwrap())
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1, "only the metrics file, no temporary");
}

#[test]
fn a_replay_leaves_the_scheduled_collectors_metrics_alone() {
    let harness = Harness::with_defaults();
    let metrics = with_metrics(&harness);
    harness.fake.append_events_at(5, now() - 300.0);
    harness.run(&[]).assert_code(0);
    let before = std::fs::read_to_string(&metrics).unwrap();
    // Its counters are not the collector's: writing them would read as a counter reset.
    for args in [&["--from", "-10m"][..], &["--no-state"][..]] {
        harness.run(args).assert_code(0);
        assert_eq!(
            std::fs::read_to_string(&metrics).unwrap(),
            before,
            "{args:?}"
        );
    }
}

#[test]
fn a_metrics_file_in_a_missing_directory_is_refused_before_fetching() {
    let harness = Harness::with_defaults();
    let mut config = std::fs::read_to_string(&harness.config).unwrap();
    let missing = harness.path("no-such-dir/akamai_siem.prom");
    config.push_str(&format!("metrics_file = {}\n", missing.display()));
    std::fs::write(&harness.config, config).unwrap();
    let run = harness.run(&[]);
    run.assert_code(3);
    assert!(run.stderr.contains("`metrics_file`"), "{}", run.stderr);
    assert!(run.stderr.contains("no-such-dir"), "{}", run.stderr);
    assert!(harness.fake.requests().is_empty(), "nothing is fetched");
}

#[test]
#[ignore = "needs promtool"]
fn promtool_accepts_the_metrics_file() {
    let harness = Harness::with_defaults();
    let metrics = with_metrics(&harness);
    harness.fake.append_events_at(5, now() - 300.0);
    harness.run(&[]).assert_code(0);
    let text = std::fs::read_to_string(&metrics).unwrap();
    // `check metrics` also lints names, units and HELP by Prometheus' conventions.
    let (code, problems) = pipe_into("promtool", &["check", "metrics"], &text);
    assert_eq!(code, 0, "promtool: {problems}\n{text}");
    assert_eq!(problems.trim(), "", "promtool lints:\n{text}");
}

#[test]
#[ignore = "needs promtool"]
fn the_readmes_alert_rules_are_valid_and_name_real_metrics() {
    let readme = common::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let rules = readme
        .split("```yaml\n")
        .find(|block| block.contains("AkamaiSiemNoSuccessfulRun"))
        .and_then(|block| block.split("```").next())
        .expect("the alert rules in README.md");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("akamai-siem.rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every metric an alert uses is one the collector writes.
    let harness = Harness::with_defaults();
    let metrics = with_metrics(&harness);
    harness.run(&[]).assert_code(0);
    let written = std::fs::read_to_string(&metrics).unwrap();
    let names = regex::Regex::new(r"akamai_siem_[a-z_]+").unwrap();
    for name in names.find_iter(rules) {
        assert!(
            written.contains(&format!("\n{}{{", name.as_str())),
            "{} is not written",
            name.as_str()
        );
    }
}

// --- progress on a terminal only -----------------------------------------------------------

const REPLAYED: u64 = 1500;

/// A replay slow enough (about two seconds) for the progress line to be drawn more than once.
fn slow_replay(harness: &Harness) -> Vec<String> {
    harness
        .fake
        .append_events_spread(REPLAYED as usize, now() - 540.0, now() - 120.0);
    harness.fake.inject(Fault::Slow {
        delay_per_event: std::time::Duration::from_millis(1),
    });
    let events = harness.path("events.json");
    vec![
        "--config".into(),
        harness.config.to_str().unwrap().into(),
        "--diagnostics".into(),
        "text".into(),
        "--from".into(),
        "-10m".into(),
        "--output".into(),
        events.to_str().unwrap().into(),
    ]
}

#[test]
fn no_progress_is_drawn_when_stderr_is_a_pipe() {
    let harness = Harness::with_defaults();
    let args = slow_replay(&harness);
    let args: Vec<&str> = args.iter().skip(4).map(String::as_str).collect();
    let run = harness.run(&args);
    run.assert_code(0);
    assert!(!run.stderr.contains('\r'), "{:?}", run.stderr);
    assert!(!run.stderr.contains("MB/s"), "{}", run.stderr);
    let summary = format!("{REPLAYED} events in 1 page(s)");
    assert!(run.stderr.contains(&summary), "{}", run.stderr);
}

#[test]
fn a_replay_on_a_terminal_shows_events_rate_and_how_far_it_got() {
    let harness = Harness::with_defaults();
    let args = slow_replay(&harness);
    // util-linux `script` runs the command on a pseudo-terminal: stderr is a TTY there.
    let quoted: Vec<String> = std::iter::once(BIN.to_string())
        .chain(args)
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let mut command = Command::new("script");
    command
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .current_dir(harness.dir.path())
        .env("HOME", harness.dir.path().join("home"))
        .stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("AKAMAI_SIEM_") || name.to_ascii_lowercase().ends_with("_proxy") {
            command.env_remove(name);
        }
    }
    let out = command.output().expect("script (util-linux)");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{terminal}");
    let drawn = regex::Regex::new(
        r"\rakamai-siem: (\d+) events, \d+\.\d MB/s, (\d+)% of the time range\x1b\[K",
    )
    .unwrap();
    let progress: Vec<(u64, u64)> = drawn
        .captures_iter(&terminal)
        .map(|c| (c[1].parse().unwrap(), c[2].parse().unwrap()))
        .collect();
    assert!(progress.len() >= 2, "{terminal:?}");
    // Events and the share of the range only go up: the range is worked through.
    assert!(
        progress
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{progress:?}"
    );
    assert!(progress.last().unwrap().1 > progress[0].1, "{progress:?}");
    // Cleared before the run's last words, and the summary stays readable.
    let end = terminal.rfind("% of the time range\x1b[K").unwrap();
    assert!(
        terminal[end..].contains("\x1b[K\r\x1b[Kakamai-siem: "),
        "{terminal:?}"
    );
    let summary = format!("akamai-siem: info: {REPLAYED} events in 1 page(s)");
    assert!(terminal.contains(&summary), "{terminal:?}");
    // The events went where they were sent, untouched by the progress line.
    let events = common::read(&harness.path("events.json"));
    assert_eq!(common::ids_in(&events).len() as u64, REPLAYED);
    assert!(!events.contains('\r'));
}

/// Two tenants (two sections, here on one fake account) with `metrics` in `[DEFAULT]`.
fn two_tenants(harness: &Harness, metrics: &str) {
    let single = std::fs::read_to_string(&harness.config).unwrap();
    let body = single.split_once("[default]\n").unwrap().1;
    let text = format!("[DEFAULT]\nmetrics_file = {metrics}\n[acme]\n{body}\n[beta]\n{body}");
    std::fs::write(&harness.config, text).unwrap();
}

#[test]
fn each_tenant_of_a_run_writes_its_own_metrics_labelled_with_its_name() {
    let harness = Harness::with_defaults();
    let dir = harness.path("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    two_tenants(
        &harness,
        dir.join("akamai_siem_{tenant}.prom").to_str().unwrap(),
    );
    harness.fake.append_events_at(4, now() - 120.0);
    harness.run(&["--all-sections"]).assert_code(0);
    let ids = harness.fake.config_ids();
    for tenant in ["acme", "beta"] {
        let values = parse_metrics(
            &dir.join(format!("akamai_siem_{tenant}.prom")),
            tenant,
            &ids,
        );
        assert_eq!(metric(&values, "events_delivered_total"), 4.0, "{tenant}");
        assert_eq!(metric(&values, "runs_total"), 1.0, "{tenant}");
    }
}

#[test]
fn tenants_sharing_one_metrics_file_are_refused_before_fetching() {
    let harness = Harness::with_defaults();
    let dir = harness.path("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    two_tenants(&harness, dir.join("akamai_siem.prom").to_str().unwrap());
    let run = harness.run(&["--all-sections"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("would share the metrics_file") && run.stderr.contains("{tenant}"),
        "{}",
        run.stderr
    );
    assert!(harness.fake.requests().is_empty());
}
