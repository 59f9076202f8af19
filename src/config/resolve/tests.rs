use super::*;
use std::fs;

pub(crate) fn environment(dir: &Path) -> Environment {
    Environment {
        vars: BTreeMap::new(),
        cwd: dir.to_path_buf(),
        home: Some(dir.join("home")),
        exe_dir: None,
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn flags_beat_environment_beat_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join(DEFAULT_CONFIG_NAME),
        "[default]\nlimit = 1\nwindow = 2\nhost = h\n",
    );
    let mut env = environment(dir.path());
    env.vars.insert("AKAMAI_SIEM_LIMIT".into(), "10".into());
    env.vars.insert("AKAMAI_SIEM_WINDOW".into(), "20".into());
    let overrides = Overrides {
        values: vec![("limit", "100".into())],
        ..Overrides::default()
    };
    let sources = Sources::load(&overrides, env).unwrap();
    assert_eq!(
        sources.raw("limit").unwrap(),
        ("100".into(), Origin::Flag("--limit"))
    );
    assert_eq!(
        sources.raw("window").unwrap(),
        ("20".into(), Origin::Env("AKAMAI_SIEM_WINDOW".into()))
    );
    let (host, origin) = sources.raw("host").unwrap();
    assert_eq!(host, "h");
    assert!(matches!(origin, Origin::File { line: 4, .. }), "{origin:?}");
}

#[test]
fn explicit_config_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        config: Some(dir.path().join("missing.ini")),
        ..Overrides::default()
    };
    let error = Sources::load(&overrides, environment(dir.path())).unwrap_err();
    assert!(error.to_string().contains("flag --config"), "{error}");
    assert!(error.to_string().contains("missing.ini"), "{error}");
}

#[test]
fn missing_section_lists_the_ones_there() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join(DEFAULT_CONFIG_NAME),
        "[default]\nhost = h\n[staging]\nhost = s\n",
    );
    let overrides = Overrides {
        section: Some("prod".into()),
        ..Overrides::default()
    };
    let error = Sources::load(&overrides, environment(dir.path())).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("[prod]") && message.contains("default, staging"),
        "{message}"
    );
    assert!(message.contains("pass --section NAME"), "{message}");
}

#[test]
fn misspelt_variables_warn_but_file_and_section_choosers_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = environment(dir.path());
    for (name, value) in [
        ("AKAMAI_SIEM_CLIENT_SECRE", "SECRETVALUE"),
        ("AKAMAI_SIEM_SECTION", "default"),
        ("AKAMAI_SIEM_LIMIT", "5"),
    ] {
        env.vars.insert(name.into(), value.into());
    }
    let mut sources = Sources::load(&Overrides::default(), env).unwrap();
    let warnings = sources.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("AKAMAI_SIEM_CLIENT_SECRE is not a setting")
            && warnings[0].contains("did you mean AKAMAI_SIEM_CLIENT_SECRET?"),
        "{warnings:?}"
    );
    assert!(!warnings[0].contains("SECRETVALUE"), "{warnings:?}");
}

#[test]
fn credentials_come_from_edgerc_when_the_config_has_none() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join(DEFAULT_CONFIG_NAME),
        "[default]\nconfig_id = 1\nhost = ignored\n",
    );
    write(
        &dir.path().join("home/.edgerc"),
        "[default]\nhost = edge.example.net\nclient_token = ct\nclient_secret = cs\naccess_token = at\n",
    );
    let sources = Sources::load(&Overrides::default(), environment(dir.path())).unwrap();
    assert_eq!(sources.credentials_from(), CredentialSource::Edgerc);
    assert_eq!(sources.raw("host").unwrap().0, "edge.example.net");
    assert_eq!(sources.raw("client_secret").unwrap().0, "cs");
    assert_eq!(sources.raw("config_id").unwrap().0, "1");
}

#[test]
fn credentials_in_the_config_win_over_a_default_edgerc() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join(DEFAULT_CONFIG_NAME),
        "[default]\nhost = ini.example.net\nclient_secret = from-ini\n",
    );
    write(
        &dir.path().join("home/.edgerc"),
        "[default]\nclient_secret = from-edgerc\n",
    );
    let sources = Sources::load(&Overrides::default(), environment(dir.path())).unwrap();
    assert_eq!(sources.credentials_from(), CredentialSource::ConfigFile);
    assert_eq!(sources.raw("client_secret").unwrap().0, "from-ini");
}

#[test]
fn edgerc_section_can_differ_from_the_config_section() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("creds"),
        "[siem]\nhost = siem.example.net\n",
    );
    let overrides = Overrides {
        values: vec![
            ("edgerc", dir.path().join("creds").display().to_string()),
            ("edgerc_section", "siem".into()),
        ],
        ..Overrides::default()
    };
    let sources = Sources::load(&overrides, environment(dir.path())).unwrap();
    assert_eq!(sources.raw("host").unwrap().0, "siem.example.net");
}

#[test]
fn relative_paths_in_a_file_are_relative_to_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etc/akamai.ini");
    write(&config, "[default]\nca_file = ca.pem\n");
    let overrides = Overrides {
        config: Some(config.clone()),
        values: vec![("log_file", "logs/run.log".into())],
        ..Overrides::default()
    };
    let sources = Sources::load(&overrides, environment(dir.path())).unwrap();
    assert_eq!(
        sources.path("ca_file").unwrap().0,
        dir.path().join("etc/ca.pem")
    );
    assert_eq!(
        sources.path("log_file").unwrap().0,
        dir.path().join("logs/run.log")
    );
}

#[test]
fn warns_about_typos_and_readable_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join(DEFAULT_CONFIG_NAME);
    write(&config, "[default]\nlimt = 5\nclient_secret = x\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut sources = Sources::load(&Overrides::default(), environment(dir.path())).unwrap();
    let warnings = sources.take_warnings().join("\n");
    assert!(warnings.contains("did you mean `limit`"), "{warnings}");
    #[cfg(unix)]
    assert!(warnings.contains("chmod 600"), "{warnings}");
}

#[test]
fn hint_names_every_place_a_key_can_be_set() {
    let dir = tempfile::tempdir().unwrap();
    let sources = Sources::load(&Overrides::default(), environment(dir.path())).unwrap();
    let hint = sources.hint_for("host");
    assert!(
        hint.contains("AKAMAI_SIEM_HOST") && hint.contains("--host"),
        "{hint}"
    );
    let secret_hint = sources.hint_for("client_secret");
    assert!(!secret_hint.contains("--client"), "{secret_hint}");
}
