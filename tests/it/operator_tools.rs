//! The tool as a packaged system tool: `--version` naming its build, shell completions and the
//! man page generated from the command line, the metrics file, progress on a terminal only.

use crate::common;

use common::BIN;
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
        let (rendered, warnings) = pipe_into("groff", &["-man", "-ww", "-z"], &roff);
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
        .args(["-man", "-Tutf8", "-P-cbou"])
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
    // groff hyphenates at line ends; join the pieces so words are found whole.
    String::from_utf8_lossy(&out.stdout).replace("\u{2010}\n", "")
}
