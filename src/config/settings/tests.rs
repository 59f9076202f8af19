use super::*;
use crate::config::Overrides;
use crate::config::resolve::DEFAULT_CONFIG_NAME as NAME;
use crate::config::resolve::tests::environment;
use std::fs;

fn sources_with(text: &str, flags: Vec<(&'static str, String)>) -> (tempfile::TempDir, Sources) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(NAME);
    fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let overrides = Overrides {
        values: flags,
        ..Overrides::default()
    };
    let sources = Sources::load(&overrides, environment(dir.path())).unwrap();
    (dir, sources)
}

const SEED: &str = "[default]\nhost = https://akab-abc.luna.akamaiapis.net/\n\
                    config_id = 1234, 5678\nclient_token = akab-ct\n\
                    client_secret = c2VjcmV0\naccess_token = akab-at\n";

#[test]
fn the_seed_config_works_unchanged() {
    let (_dir, sources) = sources_with(SEED, vec![]);
    let api = Resolver::new(&sources).api().unwrap();
    assert_eq!(api.host, "akab-abc.luna.akamaiapis.net");
    assert_eq!(api.config_ids.to_string(), "1234;5678");
    assert_eq!(api.client_secret.expose(), "c2VjcmV0");
    let collect = Resolver::new(&sources)
        .collect(
            &Resolver::new(&sources).output().unwrap(),
            RunKind::Scheduled,
        )
        .unwrap();
    assert_eq!(collect.limit, 10_000);
    assert_eq!(collect.window, Duration::from_secs(300));
    assert_eq!(collect.max_events, WODLE_MAX_EVENTS);
}

#[test]
fn invalid_values_name_file_section_line_and_key() {
    let (_dir, sources) = sources_with(&format!("{SEED}limit = 0\n"), vec![]);
    let output = Resolver::new(&sources).output().unwrap();
    let message = Resolver::new(&sources)
        .collect(&output, RunKind::Scheduled)
        .unwrap_err()
        .to_string();
    assert!(message.contains(NAME), "{message}");
    assert!(message.contains("[default] line 7"), "{message}");
    assert!(
        message.contains("`limit` must be between 1 and 600000"),
        "{message}"
    );
}

#[test]
fn flag_errors_name_the_flag() {
    let (_dir, sources) = sources_with(SEED, vec![("limit", "600001".into())]);
    let output = Resolver::new(&sources).output().unwrap();
    let message = Resolver::new(&sources)
        .collect(&output, RunKind::Scheduled)
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("flag --limit"), "{message}");
}

#[test]
fn missing_credentials_say_where_to_put_them() {
    let (_dir, sources) = sources_with("[default]\nhost = h\nconfig_id = 1\n", vec![]);
    let message = Resolver::new(&sources).api().unwrap_err().to_string();
    assert!(message.contains("`client_token` is not set"), "{message}");
    assert!(message.contains("AKAMAI_SIEM_CLIENT_TOKEN"), "{message}");
}

#[test]
fn errors_never_echo_secret_values() {
    let (_dir, sources) = sources_with(
        "[default]\nhost = h\nconfig_id = 1\nclient_token = ct\n\
         client_secret = has whitespace-SECRETVALUE\naccess_token = at\n",
        vec![],
    );
    let message = Resolver::new(&sources).api().unwrap_err().to_string();
    assert!(message.contains("client_secret"), "{message}");
    assert!(!message.contains("SECRETVALUE"), "{message}");
}

#[test]
fn the_unedited_template_says_what_to_fill_in() {
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("akamai_config.ini.template"),
    )
    .unwrap();
    let (_dir, sources) = sources_with(&template, vec![]);
    let message = Resolver::new(&sources).api().unwrap_err().to_string();
    assert!(
        message.contains("`host` still holds the template's placeholder"),
        "{message}"
    );
}

#[test]
fn hosts_are_normalised() {
    assert_eq!(
        normalise_host("https://a.example.net//").unwrap(),
        "a.example.net"
    );
    assert_eq!(
        normalise_host(" 127.0.0.1:8443 ").unwrap(),
        "127.0.0.1:8443"
    );
    assert_eq!(normalise_host("[::1]:8443").unwrap(), "[::1]:8443");
    assert!(
        normalise_host("127.0.0.1:99999")
            .unwrap_err()
            .contains("99999")
    );
    assert!(normalise_host("127.0.0.1:0").is_err());
    assert!(normalise_host("h:").is_err());
    assert!(normalise_host(":443").is_err());
    assert!(normalise_host("http://a.example.net").is_err());
    assert!(normalise_host("a.example.net/siem").is_err());
}

#[test]
fn config_ids_accept_both_separators() {
    assert_eq!(parse_config_ids("1;2,3").unwrap().to_string(), "1;2;3");
    assert_eq!(parse_config_ids(" 7 ; ").unwrap().to_string(), "7");
    assert_eq!(parse_config_ids("1;1").unwrap().ids(), &[1]);
    assert!(parse_config_ids("abc").unwrap_err().contains("`abc`"));
    assert!(parse_config_ids(";").is_err());
}

#[test]
fn state_defaults_beside_the_config_named_after_the_section() {
    let (dir, sources) = sources_with(SEED, vec![]);
    let state = Resolver::new(&sources).state(false).unwrap().unwrap();
    assert_eq!(state.path, dir.path().join("akamai-siem-default.state"));
    assert!(Resolver::new(&sources).state(true).unwrap().is_none());
}

#[test]
fn budgets_default_by_output_route() {
    let (_dir, sources) = sources_with(SEED, vec![("output", "/tmp/x.json".into())]);
    let output = Resolver::new(&sources).output().unwrap();
    assert_eq!(output.target, OutputTarget::File("/tmp/x.json".into()));
    let collect = Resolver::new(&sources)
        .collect(&output, RunKind::Scheduled)
        .unwrap();
    assert_eq!(collect.max_events, FILE_MAX_EVENTS);
}

#[test]
fn a_replay_lifts_only_the_default_stdout_budget() {
    let (_dir, sources) = sources_with(SEED, vec![]);
    let output = Resolver::new(&sources).output().unwrap();
    let replay = Resolver::new(&sources)
        .collect(&output, RunKind::Replay)
        .unwrap();
    assert_eq!(
        (replay.max_events, replay.max_bytes),
        (FILE_MAX_EVENTS, FILE_MAX_BYTES)
    );
    let (_dir, sources) = sources_with(&format!("{SEED}max_events = 5\n"), vec![]);
    let replay = Resolver::new(&sources)
        .collect(&output, RunKind::Replay)
        .unwrap();
    assert_eq!(replay.max_events, 5);
}

#[test]
fn byte_sizes_take_units() {
    assert_eq!(parse_bytes("60MiB").unwrap(), 60 * 1024 * 1024);
    assert_eq!(parse_bytes("65536").unwrap(), 65536);
    assert!(parse_bytes("1k").is_err());
    assert!(parse_bytes("5 parsecs").is_err());
}
