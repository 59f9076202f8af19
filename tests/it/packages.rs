//! The .deb and .rpm that `packaging/build` makes (.ci/run installs the packagers and builds
//! them before the ignored tests, which need them): what they install,
//! with which modes, which files are conffiles, and that installing touches no Wazuh
//! installation and enables nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn packages_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/packages")
}

/// The one package of this version with this extension.
fn package(extension: &str) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    let found: Vec<PathBuf> = std::fs::read_dir(packages_dir())
        .map(|dir| dir.map(|e| e.unwrap().path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p: &PathBuf| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("akamai-siem") && name.contains(version) && name.ends_with(extension)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want one akamai-siem {version} {extension} in {} (run packaging/build): {found:?}",
        packages_dir().display()
    );
    found.into_iter().next().unwrap()
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Path (without the leading `.`) to mode and owner, from `dpkg-deb --contents`.
fn deb_contents(deb: &Path) -> HashMap<String, (String, String)> {
    run("dpkg-deb", &["--contents", deb.to_str().unwrap()])
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields[5].trim_start_matches('.').to_string();
            (path, (fields[0].to_string(), fields[1].to_string()))
        })
        .collect()
}

/// Every file both packages install, with its mode.
const FILES: &[(&str, &str)] = &[
    ("/usr/bin/akamai-siem", "-rwxr-xr-x"),
    ("/etc/akamai-siem/akamai_config.ini", "-rw-------"),
    ("/etc/logrotate.d/akamai-siem", "-rw-r--r--"),
    (
        "/usr/share/akamai-siem/wazuh/akamai_rules.xml",
        "-rw-r--r--",
    ),
    ("/usr/share/akamai-siem/wazuh/ossec-wodle.xml", "-rw-r--r--"),
    (
        "/usr/share/akamai-siem/wazuh/ossec-localfile.xml",
        "-rw-r--r--",
    ),
    ("/usr/share/man/man1/akamai-siem.1.gz", "-rw-r--r--"),
    ("/usr/share/man/man1/akamai-siem-fetch.1.gz", "-rw-r--r--"),
    (
        "/usr/share/man/man1/akamai-siem-state-reset.1.gz",
        "-rw-r--r--",
    ),
    (
        "/usr/share/bash-completion/completions/akamai-siem",
        "-rw-r--r--",
    ),
    (
        "/usr/share/fish/vendor_completions.d/akamai-siem.fish",
        "-rw-r--r--",
    ),
    ("/usr/share/doc/akamai-siem/README.md", "-rw-r--r--"),
];

#[test]
#[ignore = "needs cargo-deb"]
fn the_deb_installs_the_tool_its_config_units_wazuh_files_man_pages_and_completions() {
    let deb = package(".deb");
    let deb = deb.to_str().unwrap();
    let info = run("dpkg-deb", &["--field", deb]);
    for field in [
        "Package: akamai-siem",
        &format!("Version: {}", env!("CARGO_PKG_VERSION")),
        "Architecture: amd64",
        "Section: net",
        "Maintainer: ",
        "Description: Pulls security events from Akamai",
    ] {
        assert!(info.contains(field), "no {field} in\n{info}");
    }
    let contents = deb_contents(Path::new(deb));
    let mut expected: Vec<(&str, &str)> = FILES.to_vec();
    expected.extend([
        ("/lib/systemd/system/akamai-siem.service", "-rw-r--r--"),
        (
            "/lib/systemd/system/akamai-siem-receive.service",
            "-rw-r--r--",
        ),
        ("/lib/systemd/system/akamai-siem.timer", "-rw-r--r--"),
        (
            "/usr/share/zsh/vendor-completions/_akamai-siem",
            "-rw-r--r--",
        ),
    ]);
    for (path, mode) in &expected {
        let (found, owner) = contents
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not in the package: {contents:#?}"));
        assert_eq!(found, mode, "{path}");
        assert!(
            owner == "root/root" || owner == "0/0",
            "{path} owned by {owner}"
        );
    }
    // Installing never touches Wazuh: nothing under /var/ossec, no maintainer script naming
    // it, nothing enabled or started.
    assert!(
        !contents.keys().any(|p| p.starts_with("/var/ossec")),
        "{contents:#?}"
    );
    let conffiles = run("dpkg-deb", &["--info", deb, "conffiles"]);
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort();
    assert_eq!(
        conffiles,
        [
            "/etc/akamai-siem/akamai_config.ini",
            "/etc/logrotate.d/akamai-siem"
        ]
    );
    let postinst = run("dpkg-deb", &["--info", deb, "postinst"]);
    assert!(
        postinst.contains("install -d -m 0700 /var/lib/akamai-siem"),
        "{postinst}"
    );
    for never in [
        "/var/ossec",
        "systemctl enable",
        "systemctl start",
        "deb-systemd-helper",
        "ossec.conf",
    ] {
        assert!(
            !postinst.contains(never),
            "postinst mentions {never}:\n{postinst}"
        );
    }
}

#[test]
#[ignore = "needs cargo-deb"]
fn what_the_deb_installs_works_together() {
    let deb = package(".deb");
    let root = tempfile::tempdir().unwrap();
    run(
        "dpkg-deb",
        &["-x", deb.to_str().unwrap(), root.path().to_str().unwrap()],
    );
    let file = |path: &str| root.path().join(path.trim_start_matches('/'));
    let binary = file("/usr/bin/akamai-siem");
    let version = run(binary.to_str().unwrap(), &["--version"]);
    assert!(
        version.starts_with(&format!(
            "akamai-siem {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
    // The unit runs what the package installs, with the packaged config.
    let unit = std::fs::read_to_string(file("/lib/systemd/system/akamai-siem.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], "/usr/bin/akamai-siem");
    let config = words[words.iter().position(|w| *w == "--config").unwrap() + 1];
    assert_eq!(config, "/etc/akamai-siem/akamai_config.ini");
    assert!(unit.contains("StateDirectory=akamai-siem"), "{unit}");
    // systemd accepts the units (verify needs the executable to exist: the extracted one; the
    // man page named in Documentation= is checked in the package's file list instead).
    let units = tempfile::tempdir().unwrap();
    std::fs::write(
        units.path().join("akamai-siem.service"),
        unit.replace("/usr/bin/akamai-siem", binary.to_str().unwrap()),
    )
    .unwrap();
    std::fs::copy(
        file("/lib/systemd/system/akamai-siem.timer"),
        units.path().join("akamai-siem.timer"),
    )
    .unwrap();
    let receive =
        std::fs::read_to_string(file("/lib/systemd/system/akamai-siem-receive.service")).unwrap();
    assert!(receive.contains(" receive "), "{receive}");
    std::fs::write(
        units.path().join("akamai-siem-receive.service"),
        receive.replace("/usr/bin/akamai-siem", binary.to_str().unwrap()),
    )
    .unwrap();
    let verified = Command::new("systemd-analyze")
        .args([
            "verify",
            "--man=no",
            "akamai-siem.service",
            "akamai-siem-receive.service",
            "akamai-siem.timer",
        ])
        .current_dir(units.path())
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let problems = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{problems}");
    assert!(
        !problems.contains("akamai-siem"),
        "warnings about the units: {problems}"
    );
    // The config is the template, keeping its state where the package says, and the binary
    // reads it: `check` stops at the first placeholder, naming the key to fill in.
    let text = std::fs::read_to_string(file(config)).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "state_file = /var/lib/akamai-siem/akamai-siem-default.state"),
        "{text}"
    );
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(&binary)
        .args(["--config", file(config).to_str().unwrap(), "check"])
        .env("HOME", home.path())
        .env_remove("AKAMAI_SIEM_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("placeholder"), "{stderr}");
    // The man page is the binary's own, compressed.
    let man = file("/usr/share/man/man1/akamai-siem.1.gz");
    let page = run("gzip", &["-dc", man.to_str().unwrap()]);
    assert_eq!(page, run(binary.to_str().unwrap(), &["man"]));
    let bash = std::fs::read_to_string(file("/usr/share/bash-completion/completions/akamai-siem"))
        .unwrap();
    assert_eq!(
        bash,
        run(binary.to_str().unwrap(), &["completions", "bash"])
    );
}

#[test]
#[ignore = "needs rpm"]
fn the_rpm_installs_the_same_files_with_the_config_kept_on_upgrade() {
    let rpm = package(".rpm");
    let rpm = rpm.to_str().unwrap();
    let listing = run(
        "rpm",
        &[
            "-qp",
            "--queryformat",
            "[%{FILEMODES:perms} %{FILENAMES}\n]",
            rpm,
        ],
    );
    let modes: HashMap<&str, &str> = listing
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(mode, path)| (path, mode))
        .collect();
    let mut expected: Vec<(&str, &str)> = FILES.to_vec();
    expected.extend([
        ("/usr/lib/systemd/system/akamai-siem.service", "-rw-r--r--"),
        (
            "/usr/lib/systemd/system/akamai-siem-receive.service",
            "-rw-r--r--",
        ),
        ("/usr/lib/systemd/system/akamai-siem.timer", "-rw-r--r--"),
        ("/usr/share/zsh/site-functions/_akamai-siem", "-rw-r--r--"),
    ]);
    for (path, mode) in &expected {
        assert_eq!(modes.get(path), Some(mode), "{path} in\n{listing}");
    }
    let listed = run("rpm", &["-qlp", rpm]);
    assert_eq!(listed.lines().count(), modes.len(), "{listed}");
    assert!(!listed.contains("/var/ossec"), "{listed}");
    let config = run("rpm", &["-qcp", rpm]);
    assert!(
        config.contains("/etc/akamai-siem/akamai_config.ini"),
        "{config}"
    );
    let scripts = run("rpm", &["-qp", "--scripts", rpm]);
    assert!(scripts.contains("/var/lib/akamai-siem"), "{scripts}");
    // noreplace: an edited config survives an upgrade (the new one lands as .rpmnew).
    let flags = run(
        "rpm",
        &[
            "-qp",
            "--queryformat",
            "[%{FILEFLAGS:fflags} %{FILENAMES}\n]",
            rpm,
        ],
    );
    assert!(
        flags
            .lines()
            .any(|l| l == "cn /etc/akamai-siem/akamai_config.ini"),
        "{flags}"
    );
}
