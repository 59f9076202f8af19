use super::*;
use crate::config::resolve::tests::environment;
use crate::config::{OutputTarget, Overrides, Sources};
use std::fs;

const NAME: &str = "akamai_config.ini";

/// Sources from a config file `[default]` with `text`, flags and environment variables.
fn load(
    text: &str,
    flags: Vec<(&'static str, String)>,
    vars: &[(&str, &str)],
) -> (tempfile::TempDir, Sources) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(NAME);
    fs::write(&path, format!("[default]\n{text}")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut env = environment(dir.path());
    for (name, value) in vars {
        env.vars.insert(name.to_string(), value.to_string());
    }
    let overrides = Overrides {
        values: flags,
        ..Overrides::default()
    };
    let sources = Sources::load(&overrides, env).unwrap();
    (dir, sources)
}

fn test_ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["receiver.test".to_string()]).unwrap();
    params.self_signed(&key).unwrap().pem()
}

fn http(sources: &Sources) -> Result<HttpSettings, ConfigError> {
    let output = Resolver::new(sources).output()?;
    match output.target {
        OutputTarget::Http(settings) => Ok(*settings),
        other => panic!("not an HTTP output: {other:?}"),
    }
}

fn error(sources: &Sources) -> String {
    Resolver::new(sources).output().unwrap_err().to_string()
}

#[test]
fn an_https_url_gets_defaults_that_suit_common_receivers() {
    let (_dir, sources) = load(
        "output = https://siem.example.com:8088/ingest\n",
        vec![],
        &[],
    );
    let settings = http(&sources).unwrap();
    assert_eq!(settings.url, "https://siem.example.com:8088/ingest");
    assert_eq!(settings.format, HttpFormat::Ndjson);
    assert!(!settings.gzip);
    assert_eq!(settings.batch_events, 500);
    assert_eq!(settings.batch_bytes, 1024 * 1024);
    assert!(settings.headers.is_empty());
    assert_eq!(settings.secret_header, None);
    assert_eq!(settings.retry_budget, Duration::from_secs(120));
    assert_eq!(settings.describe(), "https://siem.example.com:8088");
    // Files keep being files, even with "http" in their name.
    let (_dir, sources) = load("output = http-events.json\n", vec![], &[]);
    assert!(matches!(
        Resolver::new(&sources).output().unwrap().target,
        OutputTarget::File(_)
    ));
}

#[test]
fn every_http_key_is_read_and_checked() {
    let (dir, sources) = load(
        "output = HTTPS://splunk.example.com/services/collector/event\nhttp_format = splunk-hec\n\
         http_gzip = yes\nhttp_batch_events = 50\nhttp_batch_bytes = 2MiB\n\
         http_header = X-Source: akamai\nhttp_header = X-Team: soc, blue\nretry_budget = 30s\n\
         http_ca_file = ca.pem\nread_timeout = 5s\n",
        vec![],
        &[],
    );
    fs::write(dir.path().join("ca.pem"), test_ca_pem()).unwrap();
    let settings = http(&sources).unwrap();
    assert_eq!(settings.format, HttpFormat::SplunkHec);
    assert!(settings.gzip);
    assert_eq!(settings.batch_events, 50);
    assert_eq!(settings.batch_bytes, 2 * 1024 * 1024);
    assert_eq!(
        settings.headers,
        vec![
            ("X-Source".to_string(), "akamai".to_string()),
            ("X-Team".to_string(), "soc, blue".to_string())
        ]
    );
    assert_eq!(settings.retry_budget, Duration::from_secs(30));
    assert_eq!(settings.read_timeout, Duration::from_secs(5));
    assert_eq!(settings.ca_file, Some(dir.path().join("ca.pem")));

    for (line, wanted) in [
        (
            "http_format = gelf\n",
            "`http_format` must be ndjson or splunk-hec",
        ),
        ("http_gzip = maybe\n", "`http_gzip` must be true or false"),
        (
            "http_batch_events = 0\n",
            "`http_batch_events` must be between 1",
        ),
        (
            "http_batch_bytes = 1KiB\n",
            "`http_batch_bytes` must be at least 64KiB",
        ),
        ("http_ca_file = missing.pem\n", "`http_ca_file` points to"),
        (
            "http_ca_file = akamai_config.ini\n",
            "holds no PEM certificate",
        ),
        ("http_header = no colon here\n", "is not `Name: value`"),
        (
            "http_header = Content-Length: 5\n",
            "set by akamai-siem itself",
        ),
    ] {
        let (_dir, sources) = load(
            &format!("output = https://h.example/x\n{line}"),
            vec![],
            &[],
        );
        let message = error(&sources);
        assert!(message.contains(wanted), "{line}: {message}");
        assert!(
            message.contains(&format!("{NAME} [default] line 3")),
            "{message}"
        );
    }
}

#[test]
fn plain_http_goes_only_to_this_machine_unless_allowed() {
    for url in [
        "http://127.0.0.1:9000/in",
        "http://localhost/in",
        "http://[::1]:9000/in",
    ] {
        let (_dir, sources) = load(&format!("output = {url}\n"), vec![], &[]);
        assert!(http(&sources).is_ok(), "{url}");
    }
    let (_dir, sources) = load("output = http://siem.example.com/in\n", vec![], &[]);
    let message = error(&sources);
    assert!(message.contains("unencrypted"), "{message}");
    assert!(message.contains("http_allow_plaintext"), "{message}");
    let (_dir, sources) = load(
        "output = http://siem.example.com/in\n",
        vec![("http_allow_plaintext", "true".into())],
        &[],
    );
    assert!(http(&sources).is_ok());
}

#[test]
fn credentials_never_ride_in_the_url_or_a_flag() {
    let (_dir, sources) = load(
        "output = https://user:hunter2@siem.example.com/in\n",
        vec![],
        &[],
    );
    let message = error(&sources);
    assert!(message.contains("http_secret_header"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    for header in [
        "Authorization: Splunk 1234-abcd",
        "X-Api-Key: 1234-abcd",
        "Cookie: session=1234-abcd",
        "X-Auth-Token: 1234-abcd",
    ] {
        let (_dir, sources) = load(
            "output = https://siem.example.com/in\n",
            vec![("http_header", format!("X-Fine: yes\n{header}"))],
            &[],
        );
        let message = error(&sources);
        assert!(message.starts_with("flag --http-header"), "{message}");
        assert!(message.contains("http_secret_header"), "{message}");
        assert!(!message.contains("1234-abcd"), "{message}");
    }
}

#[test]
fn the_secret_header_comes_from_the_file_or_the_environment_and_never_prints() {
    let (_dir, sources) = load(
        "output = https://siem.example.com/in\n\
         http_secret_header = Authorization: Splunk 11111111-2222\n",
        vec![],
        &[],
    );
    let settings = http(&sources).unwrap();
    let (name, value) = settings.secret_header.clone().unwrap();
    assert_eq!(name, "Authorization");
    assert_eq!(value.expose(), "Splunk 11111111-2222");
    assert!(!format!("{settings:?}").contains("11111111"));

    let (_dir, sources) = load(
        "output = https://siem.example.com/in\n",
        vec![],
        &[("AKAMAI_SIEM_HTTP_SECRET_HEADER", "DD-API-KEY: 33333333")],
    );
    let (name, value) = http(&sources).unwrap().secret_header.unwrap();
    assert_eq!((name.as_str(), value.expose()), ("DD-API-KEY", "33333333"));

    for bad in [
        "Splunk 44444444",
        "Authorization:",
        "Bad Name: 44444444",
        "Authorization: 44444444\nX-Other: 44444444",
    ] {
        let (_dir, sources) = load(
            "output = https://siem.example.com/in\n",
            vec![],
            &[("AKAMAI_SIEM_HTTP_SECRET_HEADER", bad)],
        );
        let message = error(&sources);
        assert!(message.contains("`http_secret_header`"), "{message}");
        assert!(!message.contains("44444444"), "{message}");
    }
}

#[test]
fn a_url_that_is_not_one_says_what_to_give() {
    let (_dir, sources) = load("output = https://\n", vec![], &[]);
    let message = error(&sources);
    assert!(message.contains("`output`"), "{message}");
    assert!(message.contains("https://"), "{message}");
}
