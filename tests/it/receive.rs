//! `receive` end to end: the real binary over real TLS (certificates from rcgen, a host name,
//! not an IP), pushed to by a client that behaves like DataStream: batches of events with the
//! metadata object, gzip and plain, NDJSON and arrays, header and Basic authentication, and a
//! retry of every body that is not answered 2xx (errors and timeouts included).

use crate::common::{self, BIN, Harness, assert_exactly_once, ids_in, now, read};
use fake_akamai::{EventSize, FakeAkamai, Options};
use flate2::{Compression, write::GzEncoder};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name the receiver's certificate is for; the pusher resolves it to loopback.
const HOST: &str = "receiver.test";
const TOKEN: &str = "Bearer ds-token-6b1f0c";
const USER: &str = "datastream";
const PASSWORD: &str = "pw-93c1e7aa";

/// A CA and the receiver's certificate; a second CA and a client certificate for mTLS; and a
/// client certificate from a CA the receiver does not know.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_ca: String,
    client: (String, String),
    rogue: (String, String),
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "akamai-siem test");
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let (ca_pem, ca) = ca("receiver test CA");
    let (server_cert, server_key) = leaf(&ca, &[HOST], ExtendedKeyUsagePurpose::ServerAuth);
    let (client_ca, clients) = ca_pair("DataStream client CA");
    let client = leaf(
        &clients,
        &["datastream"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (_, strangers) = ca_pair("someone else's CA");
    let rogue = leaf(
        &strangers,
        &["datastream"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    Pki {
        ca: ca_pem,
        server_cert,
        server_key,
        client_ca,
        client,
        rogue,
    }
}

fn ca_pair(name: &str) -> (String, Issuer<'static, KeyPair>) {
    ca(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The real binary as a long-running receiver, restartable on the same port and files.
struct Receiver {
    dir: tempfile::TempDir,
    port: u16,
    listen: String,
    output: String,
    args: Vec<String>,
    child: Option<Child>,
}

impl Receiver {
    /// `ini` is the config file's `[default]` body (secrets live there, never in flags).
    fn new(pki: &Pki, ini: &str, args: &[&str]) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        for (name, text) in [
            ("server.pem", &pki.server_cert),
            ("server.key", &pki.server_key),
            ("client-ca.pem", &pki.client_ca),
        ] {
            write_private(&dir.path().join(name), text);
        }
        write_private(
            &dir.path().join("akamai_config.ini"),
            &format!("[default]\n{ini}"),
        );
        let port = free_port();
        let mut all: Vec<String> = vec![
            "--tls-cert".into(),
            "server.pem".into(),
            "--tls-key".into(),
            "server.key".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        Receiver {
            dir,
            port,
            listen: format!("127.0.0.1:{port}"),
            output: "events.json".into(),
            args: all,
            child: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn output(&self) -> String {
        read(&self.path("events.json"))
    }

    fn log(&self) -> String {
        read(&self.path("stderr.log"))
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(["--config", "akamai_config.ini", "--diagnostics", "json"])
            .args(["receive", "--output", &self.output])
            .args(["--listen", &self.listen])
            .args(&self.args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path().join("home"))
            .stdin(Stdio::null());
        for (name, _) in std::env::vars() {
            if name.starts_with("AKAMAI_SIEM_") {
                command.env_remove(name);
            }
        }
        command
    }

    /// Start it and wait until it listens; its diagnostics are appended to stderr.log.
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("stderr.log"))
            .unwrap();
        let mut child = self
            .command()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the receiver exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "the receiver never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    fn kill_9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(&child, libc::SIGTERM);
        wait_for(&mut child, Duration::from_secs(40))
    }

    fn assert_no_secret(&self) {
        let log = self.log();
        for secret in [TOKEN, "ds-token-6b1f0c", PASSWORD] {
            assert!(!log.contains(secret), "a secret is in the log:\n{log}");
        }
    }

    /// The codes of its diagnostics, in order.
    fn codes(&self) -> Vec<String> {
        self.log()
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|_| panic!("a diagnostic that is not JSON: {line}"));
                value["collector"]["code"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

fn wait_for(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the receiver did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tls_client_config(pki: &Pki, identity: Option<&(String, String)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    }
}

/// How a push authenticates.
#[derive(Clone, Copy)]
enum Auth {
    None,
    Token,
    Basic,
    Both,
}

/// A client that pushes like DataStream: POST of the log content over TLS to a host name.
struct Pusher {
    client: reqwest::blocking::Client,
    url: String,
    auth: Auth,
}

impl Pusher {
    fn new(pki: &Pki, port: u16, auth: Auth, identity: Option<&(String, String)>) -> Pusher {
        let client = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls_client_config(pki, identity))
            .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], port)))
            .timeout(Duration::from_secs(15))
            .no_proxy()
            .build()
            .unwrap();
        Pusher {
            client,
            url: format!("https://{HOST}:{port}/datastream"),
            auth,
        }
    }

    fn plain(pki: &Pki, port: u16, auth: Auth) -> Pusher {
        Pusher {
            client: reqwest::blocking::Client::builder()
                // Unused for http://, but reqwest needs a TLS stack all the same.
                .tls_backend_preconfigured(tls_client_config(pki, None))
                .timeout(Duration::from_secs(15))
                .no_proxy()
                .build()
                .unwrap(),
            url: format!("http://127.0.0.1:{port}/datastream"),
            auth,
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        body: &[u8],
        gzip: bool,
    ) -> reqwest::blocking::RequestBuilder {
        let mut request = self
            .client
            .request(method, &self.url)
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        if matches!(self.auth, Auth::Token | Auth::Both) {
            let header = match self.auth {
                Auth::Both => "X-Akamai-Token",
                _ => "Authorization",
            };
            request = request.header(header, TOKEN);
        }
        if matches!(self.auth, Auth::Basic | Auth::Both) {
            request = request.basic_auth(USER, Some(PASSWORD));
        }
        request
    }

    fn post(&self, body: &[u8], gzip: bool) -> reqwest::Result<reqwest::blocking::Response> {
        self.request(reqwest::Method::POST, body, gzip).send()
    }

    /// As DataStream does: again and again until a 2xx. How many attempts it took.
    fn push_until_acknowledged(&self, body: &[u8], gzip: bool) -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        for attempt in 1.. {
            match self.post(body, gzip) {
                Ok(response) if response.status().is_success() => return attempt,
                _ => {
                    assert!(Instant::now() < deadline, "a body was never acknowledged");
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
        }
        unreachable!()
    }
}

/// A DataStream body: the events, and the metadata object at `metadata_at`, as NDJSON or as a
/// JSON array, gzipped or not.
fn batch(events: &[String], metadata_at: usize, array: bool, gzip: bool) -> Vec<u8> {
    let metadata = format!(
        r#"{{"limit":{},"offset":{},"total":{}}}"#,
        events.len(),
        metadata_at,
        events.len()
    );
    let mut records: Vec<&str> = events.iter().map(String::as_str).collect();
    records.insert(metadata_at.min(records.len()), &metadata);
    let text = if array {
        format!("[{}]", records.join(",\n"))
    } else {
        records.join("\n") + "\n"
    };
    if !gzip {
        return text.into_bytes();
    }
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// Raw event lines as the SIEM API serves them (and DataStream pushes them).
fn raw_events(n: usize, size: EventSize) -> (FakeAkamai, std::ops::Range<u64>, Vec<String>) {
    let fake = FakeAkamai::start(Options {
        event_size: size,
        ..Options::default()
    })
    .unwrap();
    let ids = fake.append_events(n);
    let lines = ids.clone().map(|id| fake.raw_event_line(id)).collect();
    (fake, ids, lines)
}

/// A small deterministic generator (the seed is printed, so a failure can be replayed).
struct Random(u64);

impl Random {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

const BOTH_AUTH: &str = "auth_header = X-Akamai-Token\nauth_token = Bearer ds-token-6b1f0c\n\
                         basic_user = datastream\nbasic_password = pw-93c1e7aa\n";

#[test]
fn every_pushed_event_arrives_once_across_kill_9_and_restarts() {
    let pki = pki();
    // Enough bodies that the pushes outlast several kills however fast the machine is.
    let (_fake, ids, events) = raw_events(6000, EventSize::Small);
    let mut receiver = Receiver::new(&pki, BOTH_AUTH, &["--format", "json"]);
    receiver.start();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut random = Random(seed);
    let pusher = Pusher::new(&pki, receiver.port, Auth::Both, None);
    let pushing = std::thread::spawn(move || {
        let mut retried = 0;
        for (index, chunk) in events.chunks(40).enumerate() {
            let gzip = index % 2 == 0;
            let body = batch(chunk, index % (chunk.len() + 1), index % 3 == 0, gzip);
            retried += pusher.push_until_acknowledged(&body, gzip) - 1;
        }
        retried
    });
    let mut kills = 0;
    while !pushing.is_finished() {
        std::thread::sleep(Duration::from_millis(100 + random.next(250)));
        if pushing.is_finished() {
            break;
        }
        receiver.kill_9();
        kills += 1;
        std::thread::sleep(Duration::from_millis(random.next(150)));
        receiver.start();
    }
    let retried = pushing.join().unwrap();
    assert!(
        kills >= 3,
        "only {kills} kill(s): the pushes ended too soon"
    );
    assert!(retried >= 1, "no body had to be retried");
    assert!(receiver.terminate().success());
    assert_exactly_once(&ids_in(&receiver.output()), ids);
    receiver.assert_no_secret();
}

#[test]
fn a_body_retried_after_a_timeout_or_a_restart_is_not_written_twice() {
    let pki = pki();
    let (_fake, ids, events) = raw_events(50, EventSize::Small);
    let mut receiver = Receiver::new(&pki, "auth_token = Bearer ds-token-6b1f0c\n", &[]);
    receiver.start();
    let body = batch(&events, 10, false, true);
    let mut pusher = Pusher::new(&pki, receiver.port, Auth::Token, None);
    let patient = std::mem::replace(
        &mut pusher.client,
        reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls_client_config(&pki, None))
            .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], receiver.port)))
            .timeout(Duration::from_secs(1))
            .no_proxy()
            .build()
            .unwrap(),
    );
    // A receiver that does not answer in time: the push times out, as DataStream's would.
    signal(receiver.child.as_ref().unwrap(), libc::SIGSTOP);
    let timed_out = pusher.post(&body, true).unwrap_err();
    assert!(timed_out.is_timeout(), "{timed_out}");
    signal(receiver.child.as_ref().unwrap(), libc::SIGCONT);
    pusher.client = patient;
    pusher.push_until_acknowledged(&body, true);
    let counts = |response: reqwest::blocking::Response| {
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = serde_json::from_str(&response.text().unwrap()).unwrap();
        (answer["events"].as_u64(), answer["duplicates"].as_u64())
    };
    // Retried once more (its answer was lost, say), and after a restart.
    assert_eq!(
        counts(pusher.post(&body, true).unwrap()),
        (Some(0), Some(50))
    );
    assert!(receiver.terminate().success());
    receiver.start();
    assert_eq!(
        counts(pusher.post(&body, true).unwrap()),
        (Some(0), Some(50))
    );
    assert!(receiver.terminate().success());
    assert_exactly_once(&ids_in(&receiver.output()), ids);
}

#[test]
fn a_raw_event_gives_the_same_line_by_receive_fetch_and_decode() {
    let pki = pki();
    for (format, array, gzip) in [("json", false, false), ("wazuh", true, true)] {
        let harness = Harness::new(Options {
            event_size: EventSize::Realistic,
            ..Options::default()
        });
        let t = now();
        let ids = harness.fake.append_events_spread(25, t - 300.0, t - 90.0);
        let raw: Vec<String> = ids
            .clone()
            .map(|id| harness.fake.raw_event_line(id))
            .collect();

        let fetched = harness.run(&["--no-state", "--format", format]);
        fetched.assert_code(0);
        assert_eq!(fetched.ids(), ids.clone().collect::<Vec<_>>());

        let saved = harness.path("raw.ndjson");
        std::fs::write(&saved, raw.join("\n") + "\n").unwrap();
        let decoded = harness.run(&["decode", saved.to_str().unwrap(), "--format", format]);
        decoded.assert_code(0);

        let mut receiver = Receiver::new(
            &pki,
            "auth_token = Bearer ds-token-6b1f0c\n",
            &["--format", format],
        );
        receiver.start();
        let pusher = Pusher::new(&pki, receiver.port, Auth::Token, None);
        let response = pusher.post(&batch(&raw, 3, array, gzip), gzip).unwrap();
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = serde_json::from_str(&response.text().unwrap()).unwrap();
        assert_eq!(answer["events"], 25);
        assert_eq!(answer["metadata"], 1);
        assert!(receiver.terminate().success());

        assert_eq!(
            receiver.output(),
            fetched.stdout,
            "receive and fetch ({format})"
        );
        assert_eq!(
            decoded.stdout, fetched.stdout,
            "decode and fetch ({format})"
        );
    }
}

#[test]
fn bad_credentials_are_answered_401_and_write_nothing() {
    let pki = pki();
    let (_fake, ids, events) = raw_events(5, EventSize::Small);
    let mut receiver = Receiver::new(&pki, BOTH_AUTH, &[]);
    receiver.start();
    let body = batch(&events, 0, false, false);
    let port = receiver.port;
    let wrong_token = |pusher: &Pusher| {
        pusher
            .request(reqwest::Method::POST, &body, false)
            .header("X-Akamai-Token", "Bearer ds-token-6b1f0d")
            .send()
            .unwrap()
    };
    let wrong_password = |pusher: &Pusher| {
        pusher
            .request(reqwest::Method::POST, &body, false)
            .basic_auth(USER, Some("pw-93c1e7ab"))
            .send()
            .unwrap()
    };
    let responses = [
        Pusher::new(&pki, port, Auth::None, None)
            .post(&body, false)
            .unwrap(),
        Pusher::new(&pki, port, Auth::Token, None)
            .post(&body, false)
            .unwrap(),
        Pusher::new(&pki, port, Auth::Basic, None)
            .post(&body, false)
            .unwrap(),
        wrong_token(&Pusher::new(&pki, port, Auth::Basic, None)),
        wrong_password(&Pusher::new(&pki, port, Auth::Token, None)),
    ];
    for response in responses {
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"akamai-siem\", charset=\"UTF-8\""
        );
    }
    assert_eq!(
        receiver.output(),
        "",
        "a push without valid credentials wrote"
    );
    // The same body with both credentials goes through.
    let both = Pusher::new(&pki, port, Auth::Both, None);
    assert_eq!(both.post(&body, false).unwrap().status(), 200);
    assert!(receiver.terminate().success());
    assert_exactly_once(&ids_in(&receiver.output()), ids);
    let codes = receiver.codes();
    assert_eq!(
        codes.iter().filter(|c| *c == "push_auth_failed").count(),
        2,
        "one line when the address first fails, one with its count in the summary: {codes:?}"
    );
    assert!(
        receiver.log().contains(r#""auth_failures":"5""#),
        "{}",
        receiver.log()
    );
    receiver.assert_no_secret();
}

#[test]
fn oversized_malformed_and_misdirected_requests_get_their_status() {
    let pki = pki();
    let (_fake, ids, events) = raw_events(3, EventSize::Small);
    // Plain HTTP on loopback, as behind a TLS-terminating proxy.
    let mut receiver = Receiver::new(&pki, "auth_token = Bearer ds-token-6b1f0c\n", &[]);
    receiver.args = [
        "--plain-http",
        "--max-body-bytes",
        "64KiB",
        "--path",
        "/datastream",
    ]
    .map(String::from)
    .to_vec();
    receiver.start();
    let pusher = Pusher::plain(&pki, receiver.port, Auth::Token);
    let gzip = |data: &[u8]| {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    };
    let status = |body: &[u8], encoding: Option<&str>| {
        let mut request = pusher.request(reqwest::Method::POST, body, false);
        if let Some(encoding) = encoding {
            request = request.header("Content-Encoding", encoding);
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(
        status(&vec![b' '; 100 * 1024], None),
        413,
        "over max_body_bytes"
    );
    let bomb = gzip(&vec![b' '; 8 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    assert_eq!(
        status(&bomb, Some("gzip")),
        413,
        "over max_body_bytes decompressed"
    );
    assert_eq!(status(b"{\"a\":1}", Some("br")), 415);
    assert_eq!(status(b"not json at all", None), 400);
    assert_eq!(status(b"{\"a\":1}", Some("gzip")), 400, "says gzip, is not");
    assert_eq!(status(b"[{\"a\":1},", None), 400, "a cut JSON array");
    // A body with one bad line: its event is delivered, the bad line kept.
    let mixed = format!("{}\nnot an event\n{}\n", events[0], events[1]);
    assert_eq!(status(mixed.as_bytes(), None), 200);
    // Bytes that are not UTF-8 inside an event: delivered, as fetch does, with decodeErrors.
    let mut odd = events[2].clone().into_bytes();
    let at = odd
        .windows(15)
        .position(|w| w == b"\"httpMessage\":{")
        .unwrap()
        + 15;
    odd.splice(at..at, b"\"note\":\"\xff\xfe\",".iter().copied());
    assert_eq!(status(&odd, None), 200);

    let get = pusher
        .request(reqwest::Method::GET, b"", false)
        .send()
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let client = &pusher.client;
    let base = format!("http://127.0.0.1:{}", receiver.port);
    let elsewhere = client
        .post(format!("{base}/other"))
        .header("Authorization", TOKEN)
        .body(events[0].clone())
        .send()
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    let health = client.get(format!("{base}/health")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.bytes().unwrap().len(), 0, "/health gives no data");
    // The same metrics family as fetch's metrics_file, authenticated like a push.
    let anonymous = client.get(format!("{base}/metrics")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let metrics = client
        .get(format!("{base}/metrics"))
        .header("Authorization", TOKEN)
        .send()
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    let delivered = receiver.output().lines().count() as f64;
    assert!(delivered >= 3.0);
    assert_eq!(
        value("akamai_siem_events_delivered_total"),
        delivered,
        "{text}"
    );
    assert!(value("akamai_siem_push_rejected_total") >= 6.0, "{text}");
    assert!(
        value("akamai_siem_push_auth_failures_total") >= 1.0,
        "{text}"
    );
    assert_eq!(value("akamai_siem_output_up"), 1.0);

    assert!(receiver.terminate().success());
    assert_exactly_once(&ids_in(&receiver.output()), ids);
    let last = receiver.output().lines().last().unwrap().to_string();
    assert!(
        last.contains("decodeErrors") && last.contains('\u{fffd}'),
        "{last}"
    );
    let quarantine = receiver.path("akamai-siem-default.receive.quarantine");
    let mut kept: Vec<String> = std::fs::read_dir(&quarantine)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{:?}", entry.path());
            let name = entry.file_name().into_string().unwrap();
            assert!(name.contains("-127.0.0.1_"), "{name}");
            name.split('-').nth(2).unwrap().to_string()
        })
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        ["bad", "malformed", "malformed", "not", "too", "unsupported"],
        "every refused body that was read is kept (the 100 KiB one was never read)"
    );
    let codes = receiver.codes();
    let count = |code: &str| codes.iter().filter(|c| *c == code).count();
    // 413 twice, 415, 400 twice for the body itself; the lines that are not JSON (a whole
    // body of them, and one beside events) are reported as bad lines, as fetch does.
    assert_eq!(count("bad_body"), 5, "{codes:?}");
    assert_eq!(count("bad_lines"), 2, "{codes:?}");
}

#[test]
fn mtls_refuses_clients_without_a_certificate_from_the_client_ca() {
    let pki = pki();
    let (_fake, ids, events) = raw_events(3, EventSize::Small);
    let mut receiver = Receiver::new(&pki, "", &["--client-ca", "client-ca.pem"]);
    receiver.start();
    let body = batch(&events, 3, false, true);
    let port = receiver.port;
    for identity in [None, Some(&pki.rogue)] {
        let result = Pusher::new(&pki, port, Auth::None, identity).post(&body, true);
        assert!(
            result.is_err(),
            "accepted a client without a valid certificate"
        );
    }
    assert_eq!(receiver.output(), "");
    let trusted = Pusher::new(&pki, port, Auth::None, Some(&pki.client));
    assert_eq!(trusted.post(&body, true).unwrap().status(), 200);
    assert!(receiver.terminate().success());
    assert_exactly_once(&ids_in(&receiver.output()), ids);
    // The two refused clients, and the bare connection that saw the receiver listening.
    assert!(
        receiver.log().contains(r#""tls_failures":"3""#),
        "{}",
        receiver.log()
    );
}

#[test]
fn sigterm_finishes_the_body_in_flight_then_exits_0() {
    let pki = pki();
    let (_fake, ids, events) = raw_events(200, EventSize::Small);
    let mut receiver = Receiver::new(&pki, "auth_token = Bearer ds-token-6b1f0c\n", &[]);
    receiver.start();
    let body = batch(&events, 200, false, false);
    let config = Arc::new(tls_client_config(&pki, None));
    let connection =
        rustls::ClientConnection::new(config, ServerName::try_from(HOST).unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", receiver.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    write!(
        stream,
        "POST /datastream HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {TOKEN}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let half = body.len() / 2;
    stream.write_all(&body[..half]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let child = receiver.child.as_ref().unwrap();
    signal(child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    // Stopping: a new push is not taken (the listener is closed).
    assert!(TcpStream::connect(("127.0.0.1", receiver.port)).is_err());
    stream.write_all(&body[half..]).unwrap();
    stream.flush().unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut child = receiver.child.take().unwrap();
    let status = wait_for(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", receiver.log());
    assert_exactly_once(&ids_in(&receiver.output()), ids);
    let codes = receiver.codes();
    assert_eq!(
        codes.last().map(String::as_str),
        Some("summary"),
        "{codes:?}"
    );
}

#[test]
fn connections_headers_and_silent_clients_are_bounded() {
    let pki = pki();
    let (_fake, ids, events) = raw_events(3, EventSize::Small);
    let mut receiver = Receiver::new(
        &pki,
        "auth_token = Bearer ds-token-6b1f0c\n",
        &["--max-connections", "3"],
    );
    receiver.start();
    // Let the bare readiness probe's connection end (its handshake fails at once).
    std::thread::sleep(Duration::from_millis(300));
    let connect = || {
        let tcp = TcpStream::connect(("127.0.0.1", receiver.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        tcp
    };
    let silent: Vec<TcpStream> = (0..3).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    // One connection too many is closed at once.
    let started = Instant::now();
    let mut extra = connect();
    assert_eq!(extra.read(&mut [0; 16]).unwrap_or(0), 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Clients that never start their TLS handshake are dropped after 10 s.
    for mut idle in silent {
        assert_eq!(idle.read(&mut [0; 16]).unwrap_or(0), 0);
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    // Headers larger than the limit are refused before any body.
    let pusher = Pusher::new(&pki, receiver.port, Auth::Token, None);
    let huge = pusher
        .request(reqwest::Method::POST, b"", false)
        .header("X-Padding", "x".repeat(20 * 1024))
        .send()
        .unwrap();
    assert_eq!(huge.status(), 431);
    // And the receiver still takes pushes.
    let body = batch(&events, 0, false, false);
    assert_eq!(pusher.post(&body, false).unwrap().status(), 200);
    assert!(receiver.terminate().success());
    assert_exactly_once(&ids_in(&receiver.output()), ids);
    assert!(
        receiver
            .codes()
            .contains(&"too_many_connections".to_string())
    );
}

#[test]
fn a_failing_output_is_answered_503_with_retry_after_and_health_says_so() {
    let pki = pki();
    let (_fake, _ids, events) = raw_events(3, EventSize::Small);
    let mut receiver = Receiver::new(&pki, "auth_token = Bearer ds-token-6b1f0c\n", &[]);
    receiver.output = "/dev/full".into();
    receiver.start();
    let pusher = Pusher::new(&pki, receiver.port, Auth::Token, None);
    let health = format!("https://{HOST}:{}/health", receiver.port);
    assert_eq!(pusher.client.get(&health).send().unwrap().status(), 200);
    for _ in 0..2 {
        // The first fails writing; the second fails again after reopening the output.
        let response = pusher
            .post(&batch(&events, 0, false, false), false)
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "10");
        assert_eq!(pusher.client.get(&health).send().unwrap().status(), 503);
    }
    assert!(receiver.terminate().success());
    let codes = receiver.codes();
    assert_eq!(
        codes.iter().filter(|c| *c == "output_error").count(),
        1,
        "the failure is reported once, not once per retry: {codes:?}"
    );
}

#[test]
fn receive_refuses_to_start_without_credentials_tls_or_its_own_lock() {
    let pki = pki();
    let run = |receiver: &Receiver| common::Run::from(receiver.command().output().unwrap());

    let open = Receiver::new(&pki, "", &[]);
    let refused = run(&open);
    refused.assert_code(3);
    assert!(refused.stderr.contains("auth_token"), "{}", refused.stderr);

    let mut no_tls = Receiver::new(&pki, "auth_token = t\n", &[]);
    no_tls.args.clear();
    let refused = run(&no_tls);
    refused.assert_code(3);
    assert!(refused.stderr.contains("tls_cert"), "{}", refused.stderr);

    let mut exposed = Receiver::new(&pki, "auth_token = t\n", &[]);
    exposed.args = vec!["--plain-http".into()];
    exposed.listen = "0.0.0.0:1".into();
    let refused = run(&exposed);
    refused.assert_code(3);
    assert!(refused.stderr.contains("loopback"), "{}", refused.stderr);

    // fetch's options do not apply: refused, not ignored.
    let mut stateful = Receiver::new(&pki, "auth_token = t\n", &[]);
    stateful
        .args
        .extend(["--state".to_string(), "x.state".to_string()]);
    let refused = run(&stateful);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("--state does not apply"),
        "{}",
        refused.stderr
    );

    // A secret is never a flag.
    let mut flagged = Receiver::new(&pki, "auth_token = t\n", &[]);
    flagged
        .args
        .extend(["--auth-token".to_string(), "t".to_string()]);
    run(&flagged).assert_code(2);

    // Two receivers never share a journal.
    let mut first = Receiver::new(&pki, "auth_token = t\n", &[]);
    first.start();
    let mut second = first.command();
    second.args(["--max-connections", "1"]);
    let locked = common::Run::from(second.output().unwrap());
    locked.assert_code(8);
    assert!(first.terminate().success());
}

fn unit_text() -> String {
    read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/akamai-siem-receive.service"))
}

/// `Key=Value` lines of the unit (no continuation lines in ours).
fn unit_values(key: &str) -> Vec<String> {
    unit_text()
        .lines()
        .filter_map(|line| line.trim().split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .collect()
}

#[test]
fn the_receive_unit_runs_receive_long_lived_and_can_write_what_it_writes() {
    let exec = unit_values("ExecStart");
    assert_eq!(exec.len(), 1);
    let words: Vec<&str> = exec[0].split_whitespace().collect();
    let after = |flag: &str| {
        let at = words.iter().position(|w| *w == flag).unwrap();
        Path::new(words[at + 1])
    };
    assert!(words.contains(&"receive"), "{words:?}");
    assert_eq!(unit_values("Restart"), ["on-failure"]);
    assert_eq!(unit_values("Type"), ["exec"], "long-running, not oneshot");
    assert_eq!(unit_values("ProtectSystem"), ["strict"]);
    let writable: Vec<String> = unit_values("ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    // The state, journal, lock and quarantine go beside the config; then the events and the log.
    for written in [
        after("--config").parent().unwrap(),
        after("--output").parent().unwrap(),
        after("--log-file").parent().unwrap(),
    ] {
        assert!(
            writable.iter().any(|w| written.starts_with(w)),
            "{} is not writable under the sandbox",
            written.display()
        );
    }
    // Restarting cannot fix a bad configuration or a second receiver on the same state.
    let no_restart = unit_values("RestartPreventExitStatus");
    assert_eq!(no_restart, ["2 3 8"]);
}

#[test]
#[ignore = "needs systemd-analyze"]
fn systemd_analyze_verifies_the_receive_unit() {
    let dir = tempfile::tempdir().unwrap();
    let binary = "/var/ossec/wodles/akamai/akamai-siem";
    let unit = unit_text().replace(binary, common::BIN);
    std::fs::write(dir.path().join("akamai-siem-receive.service"), unit).unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "akamai-siem-receive.service"])
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("akamai-siem"),
        "warnings about the unit: {stderr}"
    );
}
