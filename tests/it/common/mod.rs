//! Shared by the integration tests: a fake Akamai API with a config for it, and a hermetic way
//! to run the real binary against it (own HOME and working directory, no inherited
//! `AKAMAI_SIEM_*` variables).

#![allow(dead_code)]

use fake_akamai::{FakeAkamai, Options};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_akamai-siem");

pub struct Harness {
    pub dir: TempDir,
    pub fake: FakeAkamai,
    pub config: PathBuf,
}

/// The binary run in `dir` with `config`, its own HOME and a clean environment (no inherited
/// `AKAMAI_SIEM_*` or proxy variables); text diagnostics so that tests can read stderr.
pub fn hermetic(dir: &Path, config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args([
            "--config",
            config.to_str().unwrap(),
            "--diagnostics",
            "text",
        ])
        .args(args)
        .current_dir(dir)
        .env("HOME", dir.join("home"))
        .stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("AKAMAI_SIEM_") || name.ends_with("_PROXY") || name.ends_with("_proxy")
        {
            command.env_remove(name);
        }
    }
    command
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

impl Harness {
    pub fn new(options: Options) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let fake = FakeAkamai::start(options).unwrap();
        let config = fake.write_config(dir.path()).unwrap();
        Harness { dir, fake, config }
    }

    pub fn with_defaults() -> Harness {
        Harness::new(Options::default())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state_file(&self) -> PathBuf {
        self.path("akamai-siem-default.state")
    }

    /// The binary with this harness's config and a clean environment; text diagnostics so
    /// that tests can read stderr.
    pub fn command(&self, args: &[&str]) -> Command {
        hermetic(self.dir.path(), &self.config, args)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Every secret the fake API knows, for "never printed" checks.
    pub fn secrets(&self) -> Vec<String> {
        let c = self.fake.credentials();
        vec![
            c.client_secret.clone(),
            c.access_token.clone(),
            c.client_token.clone(),
        ]
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Event ids in output order.
    pub fn ids(&self) -> Vec<u64> {
        ids_in(&self.stdout)
    }

    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\nstderr:\n{}",
            self.code, self.stderr
        );
        self
    }

    pub fn assert_no_secret(&self, harness: &Harness) -> &Run {
        for secret in harness.secrets() {
            assert!(!self.stdout.contains(&secret), "a secret is on stdout");
            assert!(
                !self.stderr.contains(&secret),
                "a secret is on stderr:\n{}",
                self.stderr
            );
        }
        self
    }
}

pub fn ids_in(text: &str) -> Vec<u64> {
    text.lines()
        .map(|line| {
            fake_akamai::event_id(line).unwrap_or_else(|| panic!("no event id in {line:.200}"))
        })
        .collect()
}

/// How many times each id occurs.
pub fn counts(ids: &[u64]) -> HashMap<u64, usize> {
    let mut counts = HashMap::new();
    for id in ids {
        *counts.entry(*id).or_insert(0) += 1;
    }
    counts
}

/// Asserts that `delivered` holds every id in `expected` exactly once, and nothing else.
pub fn assert_exactly_once(delivered: &[u64], expected: std::ops::Range<u64>) {
    let counts = counts(delivered);
    let missing: Vec<u64> = expected
        .clone()
        .filter(|id| !counts.contains_key(id))
        .collect();
    let twice: Vec<(u64, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (*id, *n))
        .collect();
    let foreign: Vec<u64> = counts
        .keys()
        .filter(|id| !expected.contains(id))
        .copied()
        .collect();
    assert!(
        missing.is_empty() && twice.is_empty() && foreign.is_empty(),
        "lost {} (first {:?}), duplicated {} (first {:?}), unexpected {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        twice.len(),
        twice.iter().take(5).collect::<Vec<_>>(),
        foreign.iter().take(5).collect::<Vec<_>>()
    );
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
