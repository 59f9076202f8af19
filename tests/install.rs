//! wazuh/install.sh against a scratch Wazuh prefix: puts every file in place with private modes,
//! never overwrites a config, keeps a modified rules file, and can run again.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn install(prefix: &Path, extra: &[&str]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("wazuh/install.sh");
    let output = Command::new("bash")
        .arg(script)
        .args([
            "--binary",
            common::BIN,
            "--prefix",
            prefix.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn installs_idempotently_and_never_overwrites_a_config() {
    let prefix = tempfile::tempdir().unwrap();
    let (code, text) = install(prefix.path(), &[]);
    assert_eq!(code, 0, "{text}");
    let wodle = prefix.path().join("wodles/akamai");
    let config = wodle.join("akamai_config.ini");
    let rules = prefix.path().join("etc/rules/akamai_rules.xml");
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&wodle.join("akamai-siem")), 0o750);
    assert!(
        text.contains("<wodle name=\"command\">"),
        "prints the snippet: {text}"
    );
    assert!(text.contains("akamai-siem"), "{text}");
    assert_eq!(
        std::fs::read(&rules).unwrap(),
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("wazuh/akamai_rules.xml"))
            .unwrap()
    );

    // The operator fills in the config and edits the rules; a second install keeps both.
    std::fs::write(&config, "[default]\nhost = mine\n").unwrap();
    std::fs::write(&rules, "<group name=\"local edit\"></group>\n").unwrap();
    let (code, text) = install(prefix.path(), &["--route", "file"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "[default]\nhost = mine\n"
    );
    assert!(text.contains("left unchanged"), "{text}");
    assert!(text.contains("<localfile>"), "{text}");
    let backup = prefix.path().join("etc/rules/akamai_rules.xml.bak");
    assert!(
        std::fs::read_to_string(backup)
            .unwrap()
            .contains("local edit")
    );
    assert!(prefix.path().join("logs/akamai").is_dir());

    // A third run changes nothing more.
    let before = std::fs::read(&rules).unwrap();
    assert_eq!(install(prefix.path(), &[]).0, 0);
    assert_eq!(std::fs::read(&rules).unwrap(), before);
}

#[test]
fn refuses_a_prefix_that_is_not_wazuh() {
    let (code, text) = install(Path::new("/nonexistent/ossec"), &[]);
    assert_eq!(code, 1);
    assert!(text.contains("is this a Wazuh manager"), "{text}");
}
