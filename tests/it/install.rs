//! wazuh/install.sh against a scratch Wazuh prefix: puts every file in place with private modes,
//! never overwrites a config, keeps every modified rules file, leaves Wazuh's own directories
//! alone, prints paths under the prefix, and can run again.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn install(prefix: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["--binary", common::BIN];
    args.extend(extra);
    install_with(prefix, &args, &[])
}

/// install.sh into `prefix` with these arguments and environment variables.
fn install_with(prefix: &Path, args: &[&str], env: &[(&str, &Path)]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("wazuh/install.sh");
    let output = Command::new("bash")
        .arg(script)
        .args(args)
        .arg("--prefix")
        .arg(prefix)
        .env_remove("CARGO_TARGET_DIR")
        .envs(env.iter().copied())
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
    let backups = backups(&prefix.path().join("etc/rules"));
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(
        std::fs::read_to_string(&backups[0])
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

fn backups(rules_dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(rules_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("akamai_rules.xml.bak")
        })
        .collect();
    found.sort();
    found
}

#[test]
fn every_local_edit_of_the_rules_keeps_its_own_backup() {
    let prefix = tempfile::tempdir().unwrap();
    let rules = prefix.path().join("etc/rules/akamai_rules.xml");
    assert_eq!(install(prefix.path(), &[]).0, 0);
    for edit in ["first local edit", "second local edit"] {
        std::fs::write(&rules, format!("<group name=\"{edit}\"></group>\n")).unwrap();
        let (code, text) = install(prefix.path(), &[]);
        assert_eq!(code, 0, "{text}");
    }
    let backups = backups(&prefix.path().join("etc/rules"));
    let kept: Vec<String> = backups
        .iter()
        .map(|b| std::fs::read_to_string(b).unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{backups:?}");
    assert!(
        kept.iter().any(|k| k.contains("first local edit")),
        "{kept:?}"
    );
    assert!(
        kept.iter().any(|k| k.contains("second local edit")),
        "{kept:?}"
    );
}

#[test]
fn wazuh_directories_that_exist_keep_their_owner_and_mode() {
    let prefix = tempfile::tempdir().unwrap();
    // Deliberately unlike what install.sh would create, so that any change shows.
    let wazuh_dirs = [
        ("etc", 0o751),
        ("etc/rules", 0o750),
        ("wodles", 0o711),
        ("logs", 0o700),
    ];
    let root = unsafe { libc::geteuid() } == 0;
    for (dir, mode) in wazuh_dirs {
        let path = prefix.path().join(dir);
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        if root {
            // Someone else's, as Wazuh's are (ossec/wazuh user and group).
            std::os::unix::fs::chown(&path, Some(4242), Some(4343)).unwrap();
        }
    }
    let before: Vec<(u32, u32, u32)> = wazuh_dirs
        .iter()
        .map(|(dir, _)| {
            let meta = std::fs::metadata(prefix.path().join(dir)).unwrap();
            (meta.mode() & 0o7777, meta.uid(), meta.gid())
        })
        .collect();
    let (code, text) = install(prefix.path(), &["--route", "file"]);
    assert_eq!(code, 0, "{text}");
    for ((dir, _), before) in wazuh_dirs.iter().zip(before) {
        let meta = std::fs::metadata(prefix.path().join(dir)).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            before,
            "{dir}: (mode, uid, gid) changed"
        );
    }
    // Its own directories are still created private.
    assert_eq!(mode(&prefix.path().join("wodles/akamai")), 0o750);
    assert_eq!(mode(&prefix.path().join("logs/akamai")), 0o750);
}

#[test]
fn the_printed_snippet_and_commands_follow_the_prefix() {
    let prefix = tempfile::tempdir().unwrap();
    let at = prefix.path().display().to_string();
    let (code, wodle) = install(prefix.path(), &[]);
    assert_eq!(code, 0, "{wodle}");
    assert!(
        wodle.contains(&format!(
            "<command>{at}/wodles/akamai/akamai-siem --config {at}/wodles/akamai/akamai_config.ini</command>"
        )),
        "{wodle}"
    );
    assert!(!wodle.contains("/var/ossec"), "{wodle}");

    let (code, file) = install(prefix.path(), &["--route", "file"]);
    assert_eq!(code, 0, "{file}");
    assert!(
        file.contains(&format!(
            "<location>{at}/logs/akamai/events.json</location>"
        )),
        "{file}"
    );
    // The copied cron line and units name /var/ossec: the output says to adapt them.
    assert!(file.contains(&format!("replace it with {at}")), "{file}");
}

#[test]
fn finds_the_binary_where_cargo_target_dir_points() {
    let prefix = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let release = target.path().join("release");
    std::fs::create_dir(&release).unwrap();
    // Not the real binary, so that a build in the checkout's own target/ cannot pass for it.
    let stand_in = "#!/bin/sh\necho akamai-siem 0.0.0-from-cargo-target-dir\n";
    let binary = release.join("akamai-siem");
    std::fs::write(&binary, stand_in).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();

    let (code, text) = install_with(prefix.path(), &[], &[("CARGO_TARGET_DIR", target.path())]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("0.0.0-from-cargo-target-dir"), "{text}");
    assert_eq!(
        std::fs::read_to_string(prefix.path().join("wodles/akamai/akamai-siem")).unwrap(),
        stand_in
    );
}

#[test]
fn the_syslog_route_installs_the_decoder_and_prints_the_remote_block() {
    let prefix = tempfile::tempdir().unwrap();
    let (code, text) = install(prefix.path(), &["--route", "syslog"]);
    assert_eq!(code, 0, "{text}");
    let decoders = prefix.path().join("etc/decoders/akamai_decoders.xml");
    assert_eq!(
        std::fs::read(&decoders).unwrap(),
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("wazuh/akamai_decoders.xml"))
            .unwrap()
    );
    assert_eq!(mode(&decoders), 0o660);
    assert!(text.contains("<connection>syslog</connection>"), "{text}");
    assert!(text.contains("output = syslog://"), "{text}");
    assert!(
        !prefix.path().join("logs/akamai").exists(),
        "no file route here"
    );
}
