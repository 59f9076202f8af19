//! The syslog output against a real rsyslog (Debian's package; `.ci/run` installs it): every
//! event arrives once after a clean run, over TCP, TLS and mutual TLS, with either framing;
//! rsyslog killed and restarted mid-run loses nothing; a receiver that stays down ends the run
//! with exit 6 and the next run delivers what the first could not.

use crate::common;

use common::{Harness, assert_exactly_once, counts, ids_in};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Events a page holds in these tests: a commit (and so a confirmed session) per page.
const PAGE: &str = "500";

enum Transport {
    Tcp,
    Tls,
    /// TLS, and rsyslog requires a client certificate signed by the test CA.
    MutualTls,
    Udp,
}

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "syslog test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |name: &str, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf("collector", ExtendedKeyUsagePurpose::ClientAuth);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("syslog-ca.pem", &ca_cert.pem()),
        server_cert: write("syslog-server.pem", &server_cert),
        server_key: write("syslog-server.key", &server_key),
        client_cert: write("syslog-client.pem", &client_cert),
        client_key: write("syslog-client.key", &client_key),
    }
}

/// One rsyslogd on a free loopback port, with its own config, writing every message it
/// receives to `output` as `PROGRAMNAME<TAB>HOSTNAME<TAB>RAW MESSAGE`.
struct Rsyslog {
    dir: PathBuf,
    port: u16,
    udp: bool,
    child: Option<Child>,
    output: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, transport: Transport, pki: Option<&Pki>) -> Rsyslog {
        let dir = dir.join("rsyslog");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let output = dir.join("received.log");
        let (driver, auth, udp) = match transport {
            Transport::Tcp => ("", "", false),
            Transport::Udp => ("", "", true),
            Transport::Tls => ("gtls", "anon", false),
            Transport::MutualTls => ("gtls", "x509/certvalid", false),
        };
        let tls_globals = match pki {
            Some(pki) if !driver.is_empty() => format!(
                "DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" \
                 DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                pki.ca.display(),
                pki.server_cert.display(),
                pki.server_key.display()
            ),
            _ => String::new(),
        };
        let input = if udp {
            format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" port=\"{port}\" address=\"127.0.0.1\" ruleset=\"out\")"
            )
        } else if driver.is_empty() {
            format!(
                "module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\" ruleset=\"out\")"
            )
        } else {
            format!(
                "module(load=\"imtcp\" StreamDriver.Name=\"{driver}\" StreamDriver.Mode=\"1\" \
                 StreamDriver.AuthMode=\"{auth}\")\n\
                 input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\" ruleset=\"out\")"
            )
        };
        // A direct main queue: rsyslog writes a message before it reads the next, so by the
        // time it closes a session everything it read is in the file (as with a disk queue in
        // production; see README).
        let config = format!(
            "global(workDirectory=\"{dir}\" maxMessageSize=\"256k\" {tls_globals})\n\
             main_queue(queue.type=\"Direct\")\n\
             {input}\n\
             template(name=\"seen\" type=\"string\" string=\"%programname%\\t%hostname%\\t%rawmsg%\\n\")\n\
             ruleset(name=\"out\" queue.type=\"Direct\") {{\n\
               action(type=\"omfile\" file=\"{output}\" template=\"seen\")\n\
             }}\n",
            dir = dir.display(),
            output = output.display(),
        );
        std::fs::write(dir.join("rsyslog.conf"), config).unwrap();
        let mut rsyslog = Rsyslog {
            dir,
            port,
            udp,
            child: None,
            output,
        };
        rsyslog.restart();
        rsyslog
    }

    /// Start (again) on the same port and wait until it listens.
    fn restart(&mut self) {
        let child = Command::new(rsyslogd())
            .args(["-n", "-f"])
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("rsyslogd.stderr")).unwrap())
            .spawn()
            .expect("rsyslogd runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        if self.udp {
            while !self.dir.join("rsyslogd.pid").exists() {
                assert!(Instant::now() < deadline, "rsyslogd did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen on {}: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("rsyslogd.stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freeze it, so that what we send piles up unread in its socket's buffers (accepted by
    /// the kernel, never processed), then kill it: a receiver that died under load.
    fn freeze_then_kill(&mut self) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGSTOP);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("rsyslogd.pid"));
    }

    fn received(&self) -> Vec<Received> {
        common::read(&self.output)
            .lines()
            .map(|line| {
                let mut fields = line.splitn(3, '\t');
                let program = fields.next().unwrap().to_string();
                let host = fields.next().unwrap_or_default().to_string();
                let raw = fields.next().unwrap_or_default().to_string();
                Received { program, host, raw }
            })
            .collect()
    }

    /// Wait until `count` messages are in the file (rsyslog writes them as it reads).
    fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let received = self.received();
            if received.len() >= count || Instant::now() > deadline {
                return received;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Received {
    program: String,
    host: String,
    raw: String,
}

impl Received {
    /// The JSON line the message carries: everything from its first `{"`.
    fn json(&self) -> &str {
        let at = self
            .raw
            .find("{\"")
            .unwrap_or_else(|| panic!("no JSON in {:.200}", self.raw));
        &self.raw[at..]
    }
}

fn ids(received: &[Received]) -> Vec<u64> {
    let text: String = received.iter().map(|r| format!("{}\n", r.json())).collect();
    ids_in(&text)
}

fn rsyslogd() -> &'static str {
    if Path::new("/usr/sbin/rsyslogd").exists() {
        "/usr/sbin/rsyslogd"
    } else {
        "rsyslogd"
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
#[ignore = "needs rsyslog"]
fn over_tcp_every_event_arrives_once_with_a_header_rsyslog_parses() {
    let harness = Harness::with_defaults();
    let expected = harness.fake.append_events(1_700);
    let rsyslog = Rsyslog::start(harness.dir.path(), Transport::Tcp, None);
    let url = rsyslog.url("syslog");
    let run = harness.run(&[
        "--output",
        &url,
        "--limit",
        PAGE,
        "--syslog-hostname",
        "collector-7",
    ]);
    run.assert_code(0).assert_no_secret(&harness);
    assert!(run.stderr.contains("caught up"), "{}", run.stderr);
    // The run returned only after rsyslog closed each session, so everything is in the file.
    let received = rsyslog.received();
    assert_exactly_once(&ids(&received), expected);
    for message in &received {
        assert_eq!(message.program, "akamai-siem", "{:.200}", message.raw);
        assert_eq!(message.host, "collector-7");
        // RFC 3164: priority local0 (16 * 8) plus a severity from 4 (warning) to 6 (info).
        assert!(
            ["<132>", "<133>", "<134>"]
                .iter()
                .any(|p| message.raw.starts_with(p)),
            "{:.80}",
            message.raw
        );
        let event: serde_json::Value = serde_json::from_str(message.json()).unwrap();
        assert_eq!(event["integration"], "akamai");
    }
    // A second run with nothing new sends nothing.
    harness.run(&["--output", &url]).assert_code(0);
    assert_eq!(rsyslog.received().len(), received.len());
}

#[test]
#[ignore = "needs rsyslog"]
fn over_tls_with_octet_counting_every_event_arrives_once() {
    let harness = Harness::with_defaults();
    let expected = harness.fake.append_events(1_200);
    let pki = make_pki(harness.dir.path());
    let rsyslog = Rsyslog::start(harness.dir.path(), Transport::Tls, Some(&pki));
    let run = harness.run(&[
        "--output",
        &rsyslog.url("syslog+tls"),
        "--syslog-ca-file",
        pki.ca.to_str().unwrap(),
        "--syslog-framing",
        "octet-counting",
        "--syslog-format",
        "rfc5424",
        "--limit",
        PAGE,
    ]);
    run.assert_code(0);
    let received = rsyslog.received();
    assert_exactly_once(&ids(&received), expected);
    for message in &received {
        assert_eq!(message.program, "akamai-siem");
        assert!(message.raw.starts_with("<1"), "{:.80}", message.raw);
        assert!(
            message.raw.contains(">1 "),
            "RFC 5424 version: {:.80}",
            message.raw
        );
    }

    // Without the CA the receiver's certificate is refused before anything is fetched.
    let refused = harness.run(&[
        "--output",
        &rsyslog.url("syslog+tls"),
        "--retry-budget",
        "2s",
    ]);
    refused.assert_code(6);
    assert!(
        refused.stderr.contains("syslog_ca_file"),
        "{}",
        refused.stderr
    );
}

#[test]
#[ignore = "needs rsyslog"]
fn mutual_tls_needs_the_client_certificate() {
    let harness = Harness::with_defaults();
    let expected = harness.fake.append_events(300);
    let pki = make_pki(harness.dir.path());
    let rsyslog = Rsyslog::start(harness.dir.path(), Transport::MutualTls, Some(&pki));
    let url = rsyslog.url("syslog+tls");
    let ca = pki.ca.to_str().unwrap();

    let without = harness.run(&[
        "--output",
        &url,
        "--syslog-ca-file",
        ca,
        "--retry-budget",
        "2s",
    ]);
    assert_eq!(without.code, 6, "{}", without.stderr);
    assert!(rsyslog.received().is_empty());

    let with = harness.run(&[
        "--output",
        &url,
        "--syslog-ca-file",
        ca,
        "--syslog-client-cert",
        pki.client_cert.to_str().unwrap(),
        "--syslog-client-key",
        pki.client_key.to_str().unwrap(),
    ]);
    with.assert_code(0);
    assert_exactly_once(&ids(&rsyslog.received()), expected);
}

#[test]
#[ignore = "needs rsyslog"]
fn rsyslog_killed_and_restarted_mid_run_loses_nothing() {
    let harness = Harness::with_defaults();
    let expected = harness.fake.append_events(20_000);
    let mut rsyslog = Rsyslog::start(harness.dir.path(), Transport::Tcp, None);
    let url = rsyslog.url("syslog");
    let run = harness.spawn(&["--output", &url, "--limit", PAGE, "--format", "json"]);
    // Kill it while events flow, twice, and bring it back each time.
    for _ in 0..2 {
        let before = rsyslog.received().len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while rsyslog.received().len() < before + 2_000 {
            assert!(Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        rsyslog.freeze_then_kill();
        std::thread::sleep(Duration::from_millis(700));
        rsyslog.restart();
    }
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("reconnecting in"), "{stderr}");
    let retries: u64 = regex::Regex::new(r"output_retries=(\d+)")
        .unwrap()
        .captures(&stderr)
        .map(|c| c[1].parse().unwrap())
        .expect("the summary counts the reconnections");
    assert!(retries >= 2, "{retries} reconnections for two restarts");
    let delivered = ids(&rsyslog.wait_for(20_000));
    let counts = counts(&delivered);
    let missing = expected
        .clone()
        .filter(|id| !counts.contains_key(id))
        .count();
    assert_eq!(missing, 0, "lost events");
    // What a restart costs is bounded by what was unconfirmed: at most a page per restart.
    let duplicates = delivered.len() - counts.len();
    let page: usize = PAGE.parse().unwrap();
    assert!(
        duplicates <= 2 * page,
        "{duplicates} duplicates for two restarts"
    );
}

#[test]
#[ignore = "needs rsyslog"]
fn udp_is_best_effort_but_delivers_on_a_quiet_loopback() {
    let harness = Harness::with_defaults();
    let expected = harness.fake.append_events(60);
    let rsyslog = Rsyslog::start(harness.dir.path(), Transport::Udp, None);
    harness
        .run(&[
            "--output",
            &rsyslog.url("syslog+udp"),
            "--syslog-format",
            "json",
        ])
        .assert_code(0);
    assert_exactly_once(&ids(&rsyslog.wait_for(60)), expected);
}

#[test]
#[ignore = "needs rsyslog"]
fn a_receiver_down_for_the_whole_budget_exits_6_and_the_next_run_delivers_it_all() {
    let harness = Harness::with_defaults();
    let first = harness.fake.append_events(800);
    let mut rsyslog = Rsyslog::start(harness.dir.path(), Transport::Tcp, None);
    let url = rsyslog.url("syslog");
    harness.run(&["--output", &url]).assert_code(0);
    assert_exactly_once(&ids(&rsyslog.received()), first.clone());

    rsyslog.kill();
    let second = harness.fake.append_events(700);
    let started = Instant::now();
    let down = harness.run(&["--output", &url, "--retry-budget", "3s"]);
    down.assert_code(6);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(down.stderr.contains("retry_budget"), "{}", down.stderr);
    assert!(down.stderr.contains(&url), "{}", down.stderr);

    rsyslog.restart();
    harness.run(&["--output", &url]).assert_code(0);
    assert_exactly_once(&ids(&rsyslog.received()), first.start..second.end);
}

/// A port nothing listens on (bound, read, released).
fn closed_port() -> u16 {
    free_port()
}

#[test]
fn a_receiver_that_is_down_is_found_before_anything_is_fetched() {
    let harness = Harness::with_defaults();
    harness.fake.append_events(10);
    let url = format!("syslog://127.0.0.1:{}", closed_port());
    let run = harness.run(&["--output", &url, "--retry-budget", "1s"]);
    run.assert_code(6).assert_no_secret(&harness);
    assert!(run.stderr.contains(&url), "{}", run.stderr);
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
    assert!(harness.fake.requests().is_empty(), "nothing was fetched");
    assert!(!harness.state_file().exists(), "no state was written");

    let check = harness.run(&["check", "--output", &url]);
    check.assert_code(6);
    assert!(check.stderr.contains(&url), "{}", check.stderr);
    assert!(
        harness.fake.requests().is_empty(),
        "check asked the API nothing"
    );
}

#[test]
fn a_bad_syslog_setting_names_the_key_to_fix() {
    let harness = Harness::with_defaults();
    for (args, key) in [
        (&["--output", "syslog://host:99999"][..], "output"),
        (
            &["--output", "syslog://h:514", "--syslog-facility", "local9"][..],
            "syslog_facility",
        ),
        (
            &["--output", "syslog://h:514", "--syslog-format", "cef"][..],
            "syslog_format",
        ),
        (
            &[
                "--output",
                "syslog://h:514",
                "--syslog-app-name",
                "two words",
            ][..],
            "syslog_app_name",
        ),
        (
            &[
                "--output",
                "syslog+tls://h",
                "--syslog-client-cert",
                "/etc/hostname",
            ][..],
            "syslog_client_key",
        ),
    ] {
        let run = harness.run(args);
        assert_eq!(run.code, 3, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(key), "{args:?}: {}", run.stderr);
    }
}
