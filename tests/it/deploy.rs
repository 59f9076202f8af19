//! The files that ship beside the binary (config/, wazuh/, .ci/run, Cargo.toml) do what they
//! claim: the systemd service can write everything a run writes under its own sandbox, the timer
//! really catches up, a lost-events run is visible to systemd, cron and systemd run what
//! install.sh installs, and the tests that need `../shared` cannot pass without it.

use crate::common;
use crate::shared_folder;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative)).unwrap()
}

/// A systemd unit file: its `Key=Value` lines in order, with their section. Repeated keys stay
/// separate entries, as systemd accumulates them; an empty value resets the list.
struct Unit {
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut section = String::new();
        let mut entries = Vec::new();
        let mut logical = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if logical.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
                continue;
            }
            // A trailing backslash continues the line; systemd joins with a space.
            if let Some(head) = line.strip_suffix('\\') {
                logical.push_str(head);
                logical.push(' ');
                continue;
            }
            logical.push_str(line);
            let line = std::mem::take(&mut logical);
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not Key=Value in [{section}]: {line}"));
            entries.push((
                section.clone(),
                key.trim().to_string(),
                value.trim().to_string(),
            ));
        }
        Unit { entries }
    }

    /// Every value of `key` in `section`, after the last reset to empty.
    fn all(&self, section: &str, key: &str) -> Vec<String> {
        let mut values = Vec::new();
        for (s, k, v) in &self.entries {
            if s == section && k == key {
                if v.is_empty() {
                    values.clear();
                } else {
                    values.push(v.clone());
                }
            }
        }
        values
    }

    fn last(&self, section: &str, key: &str) -> Option<String> {
        self.all(section, key).pop()
    }

    /// A whitespace-separated list setting (ReadWritePaths=, SuccessExitStatus=, ...).
    fn words(&self, section: &str, key: &str) -> Vec<String> {
        self.all(section, key)
            .iter()
            .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect()
    }

    fn yes(&self, section: &str, key: &str) -> bool {
        matches!(
            self.last(section, key).as_deref(),
            Some("yes" | "true" | "on" | "1")
        )
    }
}

fn service() -> Unit {
    Unit::parse(&read("config/akamai-siem.service"))
}

fn timer() -> Unit {
    Unit::parse(&read("config/akamai-siem.timer"))
}

/// One akamai-siem command line, split into the paths a fetch run reads and writes.
#[derive(Debug, PartialEq)]
struct Invocation {
    binary: String,
    config: String,
    output: String,
    log_file: String,
    state: String,
}

impl Invocation {
    fn parse(command: &str) -> Invocation {
        assert!(
            !command.contains(['"', '\'', '$']),
            "keep the command free of quoting and variables: {command}"
        );
        let mut words = command.split_whitespace();
        // systemd's prefixes (`-`, `@`, `+`, `!`, `:`) change how it runs the command, not what.
        let binary = words
            .next()
            .unwrap()
            .trim_start_matches(['-', '@', '+', '!', ':'])
            .to_string();
        let (mut config, mut output, mut log_file, mut state) = (None, None, None, None);
        let mut section = "default".to_string();
        let words: Vec<&str> = words.collect();
        let mut index = 0;
        while index < words.len() {
            let (flag, inline) = match words[index].split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_string())),
                None => (words[index], None),
            };
            let mut value = || {
                inline.clone().unwrap_or_else(|| {
                    index += 1;
                    words[index].to_string()
                })
            };
            match flag {
                "-c" | "--config" => config = Some(value()),
                "-o" | "--output" => output = Some(value()),
                "--log-file" => log_file = Some(value()),
                "--state" => state = Some(value()),
                "-s" | "--section" => section = value(),
                "--no-state" => panic!("a scheduled run must keep its state: {command}"),
                _ => {}
            }
            index += 1;
        }
        let config = config.unwrap_or_else(|| panic!("no --config in {command}"));
        // README: the state defaults to akamai-siem-<section>.state beside the config.
        let state = state.unwrap_or_else(|| {
            Path::new(&config)
                .with_file_name(format!("akamai-siem-{section}.state"))
                .display()
                .to_string()
        });
        Invocation {
            binary,
            config,
            output: output.unwrap_or_else(|| panic!("no --output in {command}")),
            log_file: log_file.unwrap_or_else(|| panic!("no --log-file in {command}")),
            state,
        }
    }

    /// Everything a fetch run creates or changes: the output, the log, the state with its
    /// temporary copy, lock and journal (all beside it), and the spool in $TMPDIR.
    fn written(&self, tmpdir: &str) -> Vec<String> {
        vec![
            self.output.clone(),
            self.log_file.clone(),
            self.state.clone(),
            format!("{}.lock", self.state),
            format!("{}.seen.1", self.state),
            format!("{tmpdir}/akamai-siem-spool"),
        ]
    }
}

fn exec_start(unit: &Unit) -> Invocation {
    let commands = unit.all("Service", "ExecStart");
    assert_eq!(commands.len(), 1, "one ExecStart: {commands:?}");
    Invocation::parse(&commands[0])
}

fn cron_invocation() -> Invocation {
    let text = read("config/akamai-siem.cron");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(lines.len(), 1, "one job: {lines:?}");
    // minute hour day month weekday user command...
    let command: Vec<&str> = lines[0].split_whitespace().skip(6).collect();
    Invocation::parse(&command.join(" "))
}

/// What the service's sandbox lets it write: the longest matching rule wins, as systemd's
/// more specific mount wins.
struct Sandbox {
    rules: Vec<(PathBuf, bool)>,
}

impl Sandbox {
    fn of(unit: &Unit) -> Sandbox {
        let mut rules = Vec::new();
        let read_only: &[&str] = match unit.last("Service", "ProtectSystem").as_deref() {
            None | Some("no" | "false") => &[],
            Some("yes" | "true") => &["/usr", "/boot", "/efi"],
            Some("full") => &["/usr", "/boot", "/efi", "/etc"],
            Some("strict") => &["/"],
            Some(other) => panic!("unknown ProtectSystem={other}"),
        };
        rules.extend(read_only.iter().map(|p| (PathBuf::from(p), false)));
        if unit
            .last("Service", "ProtectHome")
            .is_some_and(|v| v != "no")
        {
            rules.extend(["/home", "/root", "/run/user"].map(|p| (PathBuf::from(p), false)));
        }
        for path in unit.words("Service", "ReadOnlyPaths") {
            rules.push((PathBuf::from(path.trim_start_matches(['-', '+'])), false));
        }
        for path in unit.words("Service", "ReadWritePaths") {
            rules.push((PathBuf::from(path.trim_start_matches(['-', '+'])), true));
        }
        for (key, base) in [
            ("StateDirectory", "/var/lib"),
            ("LogsDirectory", "/var/log"),
            ("CacheDirectory", "/var/cache"),
            ("RuntimeDirectory", "/run"),
        ] {
            for name in unit.words("Service", key) {
                rules.push((Path::new(base).join(name), true));
            }
        }
        if unit.yes("Service", "PrivateTmp") {
            rules.extend(["/tmp", "/var/tmp"].map(|p| (PathBuf::from(p), true)));
        }
        Sandbox { rules }
    }

    fn writable(&self, path: &str) -> bool {
        self.rules
            .iter()
            .filter(|(dir, _)| Path::new(path).starts_with(dir))
            .max_by_key(|(dir, _)| dir.components().count())
            .is_none_or(|(_, writable)| *writable)
    }
}

#[test]
fn the_service_can_write_everything_a_run_writes() {
    let unit = service();
    let run = exec_start(&unit);
    let sandbox = Sandbox::of(&unit);
    for path in run.written("/tmp") {
        assert!(
            sandbox.writable(&path),
            "{path} is read-only under the service's sandbox (ProtectSystem=, ReadWritePaths=, \
             StateDirectory=, LogsDirectory=, PrivateTmp=)"
        );
    }
    // And the sandbox still protects the system and the config the run only reads.
    for path in [
        "/usr/lib/x",
        "/etc/passwd",
        "/boot/x",
        &run.binary,
        &run.config,
    ] {
        assert!(!sandbox.writable(path), "{path} should stay read-only");
    }
}

#[test]
fn the_sandbox_model_sees_what_made_the_old_unit_fail() {
    // The shipped unit before the fix: ProtectSystem=full, state beside the config in /etc.
    let old = Unit::parse(
        "[Service]\nExecStart=/usr/local/bin/akamai-siem --config /etc/akamai-siem/a.ini \
         --output /var/ossec/logs/akamai/events.json --log-file /var/log/akamai-siem.log\n\
         PrivateTmp=yes\nProtectSystem=full\n",
    );
    let sandbox = Sandbox::of(&old);
    let run = exec_start(&old);
    assert_eq!(run.state, "/etc/akamai-siem/akamai-siem-default.state");
    assert!(!sandbox.writable(&run.state));
    assert!(sandbox.writable(&run.output));
    let strict = Unit::parse("[Service]\nProtectSystem=strict\nReadWritePaths=-/var/a /var/b\n");
    let sandbox = Sandbox::of(&strict);
    assert!(sandbox.writable("/var/a/x") && sandbox.writable("/var/b/y"));
    assert!(!sandbox.writable("/var/c") && !sandbox.writable("/tmp/x"));
}

#[test]
fn lost_events_fail_the_service_for_systemd() {
    // Exit 9 means events were lost for good: systemd must mark the unit failed so that
    // `systemctl --failed`, OnFailure= and monitoring see it. Only a stop (143) is clean.
    let unit = service();
    let success = unit.words("Service", "SuccessExitStatus");
    for code in 1..=9 {
        assert!(
            !success.contains(&code.to_string()),
            "SuccessExitStatus={success:?} hides exit {code} from systemd"
        );
    }
    assert_eq!(unit.last("Service", "Type").as_deref(), Some("oneshot"));
}

#[test]
fn the_timer_catches_up_missed_runs() {
    let timer = timer();
    if timer.yes("Timer", "Persistent") {
        // Persistent= only records and catches up OnCalendar= triggers; with monotonic ones
        // (OnBootSec=, OnUnitActiveSec=) it does nothing.
        assert!(
            timer.last("Timer", "OnCalendar").is_some(),
            "Persistent=true needs OnCalendar="
        );
    }
    assert!(
        !timer.all("Timer", "OnCalendar").is_empty()
            || !timer.all("Timer", "OnUnitActiveSec").is_empty(),
        "the timer repeats"
    );
    let unit = timer
        .last("Timer", "Unit")
        .unwrap_or("akamai-siem.service".into());
    assert!(repo_file("config").join(&unit).is_file(), "{unit}");
    assert_eq!(
        timer.last("Install", "WantedBy").as_deref(),
        Some("timers.target")
    );
}

/// Runs install.sh for the file route into a scratch prefix.
fn install_file_route(prefix: &Path) {
    let output = Command::new("bash")
        .arg(repo_file("wazuh/install.sh"))
        .args(["--binary", common::BIN, "--route", "file", "--prefix"])
        .arg(prefix)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `/var/ossec/...` inside a scratch prefix.
fn under(prefix: &Path, path: &str) -> PathBuf {
    let relative = path
        .strip_prefix("/var/ossec/")
        .unwrap_or_else(|| panic!("{path} is not where install.sh installs (/var/ossec)"));
    prefix.join(relative)
}

#[test]
fn cron_and_systemd_run_what_install_sh_installs() {
    let cron = cron_invocation();
    let unit = service();
    let systemd = exec_start(&unit);
    assert_eq!(cron, systemd, "cron and systemd run the same command");

    let prefix = tempfile::tempdir().unwrap();
    install_file_route(prefix.path());
    assert!(under(prefix.path(), &systemd.binary).is_file());
    assert!(under(prefix.path(), &systemd.config).is_file());
    // The directories written to exist after install.sh (cron has no systemd to create them),
    // except those the unit creates itself.
    let created_by_unit: Vec<PathBuf> = unit
        .words("Service", "LogsDirectory")
        .iter()
        .map(|name| Path::new("/var/log").join(name))
        .chain(
            unit.words("Service", "StateDirectory")
                .iter()
                .map(|name| Path::new("/var/lib").join(name)),
        )
        .collect();
    assert!(
        created_by_unit.is_empty(),
        "cron has no {created_by_unit:?}: keep cron and systemd on the same paths"
    );
    for path in [&systemd.output, &systemd.log_file, &systemd.state] {
        let parent = Path::new(path).parent().unwrap().display().to_string();
        assert!(
            under(prefix.path(), &parent).is_dir(),
            "{parent} (for {path}) is not created by install.sh"
        );
    }
}

#[test]
fn wazuh_reads_and_logrotate_rotates_what_the_schedule_writes() {
    let run = exec_start(&service());
    let localfile = read("wazuh/ossec-localfile.xml");
    assert!(
        localfile.contains(&format!("<location>{}</location>", run.output)),
        "ossec-localfile.xml reads {}",
        run.output
    );
    let logrotate = read("wazuh/akamai-siem.logrotate");
    let rotated: BTreeSet<&str> = logrotate
        .lines()
        .filter_map(|l| l.strip_suffix(" {"))
        .collect();
    for path in [&run.output, &run.log_file] {
        assert!(rotated.contains(path.as_str()), "{path} in {rotated:?}");
    }
}

/// `systemd-analyze verify` needs the executable to exist: the units are checked with
/// ExecStart pointing at the built binary.
#[test]
#[ignore = "needs systemd-analyze"]
fn systemd_analyze_verifies_the_units() {
    let dir = tempfile::tempdir().unwrap();
    let binary = exec_start(&service()).binary;
    let unit = read("config/akamai-siem.service").replace(&binary, common::BIN);
    std::fs::write(dir.path().join("akamai-siem.service"), unit).unwrap();
    std::fs::copy(
        repo_file("config/akamai-siem.timer"),
        dir.path().join("akamai-siem.timer"),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(["akamai-siem.service", "akamai-siem.timer"])
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("akamai-siem"),
        "warnings about our units: {stderr}"
    );
}

#[test]
fn every_dev_dependency_is_used() {
    let manifest = read("Cargo.toml");
    let section = manifest
        .split("[dev-dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    let names: Vec<String> = section
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(name, _)| name.trim().replace('-', "_"))
        })
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    assert!(!names.is_empty());
    let mut sources = String::new();
    for dir in ["tests", "src", "examples", "benches"] {
        collect_rust(&repo_file(dir), &mut sources);
    }
    for name in names {
        let used = [
            format!("{name}::"),
            format!("use {name}"),
            format!("{name}!"),
        ]
        .iter()
        .any(|pattern| sources.contains(pattern.as_str()));
        assert!(
            used,
            "dev-dependency {name} is used by no test, example or bench"
        );
    }
}

fn collect_rust(dir: &Path, into: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rust(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn every_test_finds_the_shared_folder_through_the_one_helper() {
    // Built here so that this file does not match itself.
    let literal = format!("{}../shared", '"');
    let mut offenders = Vec::new();
    let mut folders = vec![repo_file("tests")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // The helper itself is the one place that opens the folder.
                if !path.ends_with("shared_folder") {
                    folders.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path).unwrap().contains(&literal)
            {
                offenders.push(path.display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these tests open ../shared themselves and would skip silently without it: {offenders:?}"
    );
}

#[test]
fn a_missing_shared_folder_fails_unless_the_run_skips_it() {
    let missing = Path::new("/nonexistent/shared/edgegrid-vectors");
    let problem = shared_folder::locate(missing, false, false).unwrap_err();
    assert!(
        problem.contains("/nonexistent/shared/edgegrid-vectors"),
        "{problem}"
    );
    assert!(problem.contains(shared_folder::SKIP_VAR), "{problem}");

    assert_eq!(shared_folder::locate(missing, false, true), Ok(None));

    // CI's requirement wins over a skip inherited from the environment.
    let problem = shared_folder::locate(missing, true, true).unwrap_err();
    assert!(problem.contains(shared_folder::REQUIRE_VAR), "{problem}");

    let present = repo_file("tests");
    assert_eq!(
        shared_folder::locate(&present, true, true),
        Ok(Some(present.clone()))
    );
}

#[test]
fn ci_makes_the_shared_folder_mandatory() {
    let ci = read(".ci/run");
    assert!(
        ci.contains(&format!("export {}=1", shared_folder::REQUIRE_VAR)),
        ".ci/run must set {}=1",
        shared_folder::REQUIRE_VAR
    );
    assert!(!ci.contains(shared_folder::SKIP_VAR));
}

#[test]
fn ci_runs_the_tests_as_readme_gives_them_and_the_ignored_ones() {
    let ci = read(".ci/run");
    let readme = read("README.md");
    assert!(readme.contains("cargo test --workspace"));
    assert!(ci.contains("cargo test --workspace --locked\n"), "{ci}");
    assert!(
        ci.contains("cargo test --workspace --locked -- --ignored"),
        "{ci}"
    );
    assert!(ci.contains("bench/run --quick"), "{ci}");
    // Every #[ignore] names what it needs, and CI installs it.
    let mut sources = String::new();
    collect_rust(&repo_file("tests"), &mut sources);
    collect_rust(&repo_file("src"), &mut sources);
    for reason in sources
        .split("#[ignore = \"needs ")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
    {
        // `need COMMAND PACKAGE`: the reason names the command or the package.
        let installed = ci.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.len() == 3 && words[0] == "need" && (words[1] == reason || words[2] == reason)
        });
        assert!(
            installed,
            "{reason}: .ci/run must install it when it is missing"
        );
    }
}
