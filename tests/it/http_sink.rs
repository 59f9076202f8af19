//! The HTTP output, the real binary against the fake API and a test receiver over real TLS
//! (no Splunk or Elastic runs here): what the receiver accepted holds every event at least once,
//! and a copy only ever comes from a batch sent again with the same idempotency key.

use crate::common;

use common::{Harness, Run, assert_exactly_once, counts};
use flate2::read::GzDecoder;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: &str = "11111111-2222-3333-4444-555555555555";

/// What the receiver does with one request.
#[derive(Debug, Clone)]
enum Act {
    /// 200, like HEC's `{"text":"Success","code":0}`.
    Accept,
    /// This status and body, not accepted; with `Retry-After` when given.
    Refuse(u16, &'static str, Option<&'static str>),
    /// Read part of the body, then reset the connection.
    ResetMidBody,
    /// Take the whole batch, then close without an answer: the batch arrived, its answer did not.
    LoseAnswer,
    /// Take the whole batch, wait, then answer 200 (to a client that may have given up).
    Slow(Duration),
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    /// The body as sent (gzip-decoded when it said so).
    body: Vec<u8>,
    accepted: bool,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    fn key(&self) -> &str {
        self.header("idempotency-key")
            .expect("every batch has a key")
    }

    fn lines(&self) -> Vec<&str> {
        std::str::from_utf8(&self.body)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .collect()
    }
}

#[derive(Default)]
struct Log {
    script: VecDeque<Act>,
    received: Vec<Received>,
}

struct Receiver {
    address: SocketAddr,
    tls: bool,
    ca_pem: String,
    log: Arc<Mutex<Log>>,
    shutdown: Arc<AtomicBool>,
}

impl Receiver {
    fn start(tls: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (config, ca_pem) = server_tls();
        let log = Arc::new(Mutex::new(Log::default()));
        let shutdown = Arc::new(AtomicBool::new(false));
        {
            let log = Arc::clone(&log);
            let shutdown = Arc::clone(&shutdown);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if shutdown.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let log = Arc::clone(&log);
                    let config = Arc::clone(&config);
                    thread::spawn(move || {
                        if tls {
                            let connection = rustls::ServerConnection::new(config).unwrap();
                            serve(rustls::StreamOwned::new(connection, stream), &log);
                        } else {
                            serve(stream, &log);
                        }
                    });
                }
            });
        }
        Receiver {
            address,
            tls,
            ca_pem,
            log,
            shutdown,
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.address)
    }

    /// The next requests get these acts, then `Accept`.
    fn script(&self, acts: &[Act]) {
        self.log.lock().unwrap().script.extend(acts.iter().cloned());
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().received.clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
    }
}

/// A CA, and a certificate for 127.0.0.1 signed by it.
fn server_tls() -> (Arc<rustls::ServerConfig>, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    (Arc::new(config), ca.pem())
}

/// HTTP/1.1 requests with a Content-Length body, kept alive until the client closes.
fn serve<S: Read + Write>(stream: S, log: &Mutex<Log>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        if method == "HEAD" {
            // What `check` sends: like most receivers, refuse the method, store nothing.
            log.lock().unwrap().received.push(Received {
                method,
                path,
                headers,
                body: Vec::new(),
                accepted: false,
            });
            let stream = reader.get_mut();
            let _ = stream.write_all(b"HTTP/1.1 405 X\r\nContent-Length: 0\r\n\r\n");
            let _ = stream.flush();
            continue;
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .expect("batches have a Content-Length");
        let act = log
            .lock()
            .unwrap()
            .script
            .pop_front()
            .unwrap_or(Act::Accept);
        if let Act::ResetMidBody = act {
            let mut half = vec![0; length / 2];
            let _ = reader.read_exact(&mut half);
            // Unread data in the socket: closing it sends a reset.
            return;
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let gzip = headers.get("content-encoding").map(String::as_str) == Some("gzip");
        if gzip {
            let mut decoded = Vec::new();
            GzDecoder::new(body.as_slice())
                .read_to_end(&mut decoded)
                .unwrap();
            body = decoded;
        }
        let authorized =
            headers.get("authorization").map(String::as_str) == Some(&format!("Splunk {TOKEN}"));
        let (status, answer, retry_after) = match (&act, authorized) {
            // A debugging endpoint that echoes what it got: the client must not show it.
            (_, false) => (
                401,
                format!(
                    "{{\"text\":\"Invalid token\",\"got\":\"{}\"}}",
                    headers.get("authorization").cloned().unwrap_or_default()
                ),
                None,
            ),
            (Act::Refuse(status, text, retry_after), true) => {
                (*status, text.to_string(), *retry_after)
            }
            _ => (200, "{\"text\":\"Success\",\"code\":0}".to_string(), None),
        };
        let accepted = status == 200;
        log.lock().unwrap().received.push(Received {
            method,
            path,
            headers,
            body,
            accepted,
        });
        match act {
            Act::LoseAnswer => return,
            Act::Slow(delay) => thread::sleep(delay),
            _ => {}
        }
        let stream = reader.get_mut();
        let retry_after = retry_after
            .map(|v| format!("Retry-After: {v}\r\n"))
            .unwrap_or_default();
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{retry_after}\
             Content-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if stream
            .write_all(response.as_bytes())
            .and_then(|()| stream.flush())
            .is_err()
        {
            return;
        }
    }
}

/// A harness whose config holds the HEC token as the secret header.
fn harness_with_token() -> Harness {
    let harness = Harness::with_defaults();
    let mut config = std::fs::read_to_string(&harness.config).unwrap();
    config.push_str(&format!(
        "http_secret_header = Authorization: Splunk {TOKEN}\n"
    ));
    std::fs::write(&harness.config, config).unwrap();
    harness
}

fn run_to(harness: &Harness, receiver: &Receiver, path: &str, extra: &[&str]) -> Run {
    let ca = harness.path("receiver-ca.pem");
    std::fs::write(&ca, &receiver.ca_pem).unwrap();
    let url = receiver.url(path);
    let mut args = vec![
        "--output",
        url.as_str(),
        "--http-ca-file",
        ca.to_str().unwrap(),
        "--format",
        "json",
    ];
    // Small batches and pages, so that a few events make many of both.
    for (flag, value) in [("--http-batch-events", "7"), ("--limit", "40")] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    let run = harness.run(&args);
    assert_eq!(run.stdout, "", "nothing goes to stdout");
    assert!(
        !run.stderr.contains(TOKEN),
        "the token is on stderr:\n{}",
        run.stderr
    );
    run.assert_no_secret(harness);
    run
}

/// Event ids of ndjson batches, in order.
fn ids(batches: &[Received]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| b.lines())
        .map(|line| fake_akamai::event_id(line).unwrap_or_else(|| panic!("no id in {line:.200}")))
        .collect()
}

/// One batch per idempotency key: what a receiver that drops retried keys keeps.
fn distinct_by_key(batches: &[Received]) -> Vec<Received> {
    let mut seen = HashMap::new();
    for batch in batches {
        let previous = seen.entry(batch.key().to_string()).or_insert(batch.clone());
        assert_eq!(
            previous.body,
            batch.body,
            "two different batches share the key {}",
            batch.key()
        );
    }
    seen.into_values().collect()
}

fn assert_keys_are_content_hashes(batches: &[Received]) {
    for batch in batches {
        let hash: String = Sha256::digest(&batch.body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            batch.key(),
            hash,
            "the key is the SHA-256 of the batch body"
        );
    }
}

#[test]
fn plain_and_gzip_batches_carry_every_event_once_with_the_token() {
    for gzip in [false, true] {
        let harness = harness_with_token();
        let receiver = Receiver::start(true);
        let events = harness.fake.append_events(100);
        let gzip_flag = if gzip {
            "--http-gzip"
        } else {
            "--http-gzip=false"
        };
        let run = run_to(&harness, &receiver, "/ingest/akamai", &[gzip_flag]);
        run.assert_code(0);
        let received = receiver.received();
        assert!(received.len() >= 100 / 7, "{} batches", received.len());
        for batch in &received {
            assert!(batch.accepted, "refused: {batch:?}");
            assert_eq!(
                (batch.method.as_str(), batch.path.as_str()),
                ("POST", "/ingest/akamai")
            );
            assert_eq!(
                batch.header("authorization"),
                Some(&*format!("Splunk {TOKEN}"))
            );
            assert_eq!(
                batch.header("content-encoding"),
                gzip.then_some("gzip"),
                "gzip={gzip}"
            );
            assert_eq!(batch.header("content-type"), Some("application/x-ndjson"));
            assert!(batch.lines().len() <= 7);
        }
        assert_keys_are_content_hashes(&received);
        assert_exactly_once(&ids(&received), events);

        // The state moved past what was confirmed: the next run sends only what is new.
        let more = harness.fake.append_events(5);
        run_to(&harness, &receiver, "/ingest/akamai", &[gzip_flag]).assert_code(0);
        let new: Vec<Received> = receiver.received().split_off(received.len());
        assert_exactly_once(&ids(&new), more);
    }
}

#[test]
fn splunk_hec_gets_events_with_their_time_and_sourcetype() {
    let harness = harness_with_token();
    let receiver = Receiver::start(true);
    let events = harness.fake.append_events(30);
    let run = run_to(
        &harness,
        &receiver,
        "/services/collector/event",
        &["--http-format", "splunk-hec", "--http-gzip"],
    );
    run.assert_code(0);
    let mut seen = Vec::new();
    for batch in receiver.received() {
        assert_eq!(batch.header("content-type"), Some("application/json"));
        for line in batch.lines() {
            let hec: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(hec["sourcetype"], "akamai:siem");
            let start = hec["event"]["httpMessage"]["start"].as_str().unwrap();
            // A number, digit for digit what the API gave as text.
            assert!(hec["time"].is_number(), "{line:.300}");
            assert!(line.contains(&format!(",\"time\":{start},")), "{line:.300}");
            seen.push(fake_akamai::event_id(&hec["event"].to_string()).unwrap());
        }
    }
    assert_exactly_once(&seen, events);
}

#[test]
fn failures_mid_run_are_retried_and_copies_only_come_from_the_same_key() {
    let harness = harness_with_token();
    let receiver = Receiver::start(true);
    let events = harness.fake.append_events(120);
    receiver.script(&[
        Act::Accept,
        Act::Refuse(503, "{\"text\":\"Server is busy\",\"code\":9}", Some("1")),
        Act::ResetMidBody,
        Act::Accept,
        Act::LoseAnswer,
        Act::Refuse(429, "slow down", None),
        // Longer than --read-timeout: the receiver keeps it, the client sends it again.
        Act::Slow(Duration::from_millis(2500)),
        Act::Slow(Duration::from_millis(300)),
        Act::Refuse(500, "oops", None),
    ]);
    let started = Instant::now();
    let run = run_to(
        &harness,
        &receiver,
        "/ingest",
        &["--http-gzip", "--read-timeout", "1s"],
    );
    run.assert_code(0);
    assert!(started.elapsed() < Duration::from_secs(60));
    for said in [
        "HTTP 503: {\"text\":\"Server is busy\"",
        "HTTP 429",
        "HTTP 500",
    ] {
        assert!(
            run.stderr.contains(said),
            "{said} not reported:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("sending the batch of"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("operation timed out"), "{}", run.stderr);
    // 503, reset, lost answer, 429, timeout, 500: six resends, counted in the summary.
    let retries: u64 = regex::Regex::new(r"output_retries=(\d+)")
        .unwrap()
        .captures(&run.stderr)
        .map(|c| c[1].parse().unwrap())
        .expect("the summary counts the output's retries");
    assert!(retries >= 6, "{}", run.stderr);
    assert!(
        !run.stderr.contains("/ingest"),
        "messages never show the path: {}",
        run.stderr
    );

    let accepted = receiver.accepted();
    assert_keys_are_content_hashes(&accepted);
    let all = ids(&accepted);
    let copies = counts(&all).values().filter(|n| **n > 1).count();
    assert!(
        copies > 0,
        "the lost answer and the timeout must give copies"
    );
    // Every event at least once; dropping batches whose key was seen leaves each exactly once.
    assert_exactly_once(&ids(&distinct_by_key(&accepted)), events);
}

#[test]
fn a_refused_batch_ends_the_run_with_exit_6_and_the_next_run_sends_it() {
    let harness = harness_with_token();
    let receiver = Receiver::start(true);
    let events = harness.fake.append_events(100);
    receiver.script(&[
        Act::Accept,
        Act::Accept,
        Act::Refuse(400, "{\"text\":\"Invalid data format\",\"code\":6}", None),
    ]);
    let first = run_to(&harness, &receiver, "/ingest", &[]);
    first.assert_code(6);
    assert!(
        first
            .stderr
            .contains("HTTP 400: {\"text\":\"Invalid data format\",\"code\":6}"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("check http_format"),
        "{}",
        first.stderr
    );
    let after_first = receiver.accepted();
    assert_eq!(after_first.len(), 2);
    assert_eq!(receiver.received().len(), 3, "a 400 is not retried");

    let second = run_to(&harness, &receiver, "/ingest", &[]);
    second.assert_code(0);
    let accepted = receiver.accepted();
    // Nothing refused is lost: the state had not moved past it.
    let all = ids(&accepted);
    let counted = counts(&all);
    assert!(events.clone().all(|id| counted.contains_key(&id)));
    // The second run starts from the same place: its first batches are the first run's again,
    // with the same keys, so a receiver can drop them.
    assert_exactly_once(&ids(&distinct_by_key(&accepted)), events);
}

#[test]
fn a_receiver_down_for_the_whole_retry_budget_ends_the_run_with_exit_6() {
    let harness = harness_with_token();
    let events = harness.fake.append_events(20);
    let down = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/ingest", down.local_addr().unwrap());
    drop(down);
    let started = Instant::now();
    let run = harness.run(&["--output", &url, "--retry-budget", "2s", "--format", "json"]);
    run.assert_code(6).assert_no_secret(&harness);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        run.stderr.contains("retry_budget is spent"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing is lost"), "{}", run.stderr);

    // Back up: everything arrives, nothing was committed past it.
    let receiver = Receiver::start(true);
    run_to(&harness, &receiver, "/ingest", &[]).assert_code(0);
    assert_exactly_once(&ids(&receiver.accepted()), events);
}

#[test]
fn a_credential_in_a_flag_is_refused_and_the_token_never_printed() {
    let harness = Harness::with_defaults();
    let receiver = Receiver::start(true);
    harness.fake.append_events(5);
    let run = run_to(
        &harness,
        &receiver,
        "/ingest",
        &["--http-header", &format!("Authorization: Splunk {TOKEN}")],
    );
    run.assert_code(3);
    assert!(run.stderr.contains("http_secret_header"), "{}", run.stderr);
    assert!(receiver.received().is_empty());

    // A wrong token: the receiver's 401 echoes what it got; the message must not.
    let wrong = "99999999-8888-7777-6666-000000000000";
    std::fs::write(
        &harness.config,
        std::fs::read_to_string(&harness.config).unwrap()
            + &format!("http_secret_header = Authorization: Splunk {wrong}\n"),
    )
    .unwrap();
    let run = run_to(&harness, &receiver, "/ingest", &["--log-level", "trace"]);
    run.assert_code(6);
    assert!(run.stderr.contains("HTTP 401"), "{}", run.stderr);
    assert!(
        run.stderr.contains("check http_secret_header"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(wrong), "{}", run.stderr);
}

#[test]
fn plain_http_reaches_a_receiver_on_this_machine_and_the_token_may_come_from_the_environment() {
    let harness = Harness::with_defaults();
    let receiver = Receiver::start(false);
    let events = harness.fake.append_events(10);
    let url = receiver.url("/in");
    let run = Run::from(
        harness
            .command(&["--output", &url, "--format", "json"])
            .env(
                "AKAMAI_SIEM_HTTP_SECRET_HEADER",
                format!("Authorization: Splunk {TOKEN}"),
            )
            .output()
            .unwrap(),
    );
    run.assert_code(0);
    assert!(!run.stderr.contains(TOKEN));
    assert_exactly_once(&ids(&receiver.accepted()), events);
}

#[test]
fn sigterm_is_not_held_up_by_a_receiver_that_never_answers() {
    let harness = harness_with_token();
    let receiver = Receiver::start(true);
    let events = harness.fake.append_events(30);
    receiver.script(&[Act::Slow(Duration::from_secs(60))]);
    let ca = harness.path("receiver-ca.pem");
    std::fs::write(&ca, &receiver.ca_pem).unwrap();
    let url = receiver.url("/ingest");
    let child = harness.spawn(&[
        "--output",
        &url,
        "--http-ca-file",
        ca.to_str().unwrap(),
        "--http-batch-events",
        "7",
        "--format",
        "json",
    ]);
    while receiver.received().is_empty() {
        thread::sleep(Duration::from_millis(50));
    }
    let signalled = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let run = Run::from(child.wait_with_output().unwrap());
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "SIGTERM took {:?}",
        signalled.elapsed()
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("nothing is lost"), "{}", run.stderr);
    assert!(!run.stderr.contains(TOKEN));

    // The unanswered batch was not committed: the next run sends it (and everything after it).
    run_to(&harness, &receiver, "/ingest", &[]).assert_code(0);
    assert_exactly_once(&ids(&distinct_by_key(&receiver.accepted())), events);
}

#[test]
fn check_reaches_the_receiver_and_shows_it_without_its_path() {
    let harness = harness_with_token();
    let receiver = Receiver::start(true);
    let ca = harness.path("receiver-ca.pem");
    std::fs::write(&ca, &receiver.ca_pem).unwrap();
    let url = receiver.url("/receiver/v1/http/ZaVnC4dhaV2-path-token");
    let trusted = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--http-ca-file", ca.to_str().unwrap()]);
        harness.run(&all)
    };
    let run = trusted(&["check", "--output", &url, "--http-format", "splunk-hec"]);
    run.assert_code(0).assert_no_secret(&harness);
    let shown = format!(
        "output       {} (POST, splunk-hec batches of at most 500 events), wazuh format",
        receiver.url("")
    );
    assert!(run.stdout.contains(&shown), "{}", run.stdout);
    assert!(!run.stdout.contains("path-token") && !run.stderr.contains("path-token"));
    assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN));
    let received = receiver.received();
    assert_eq!(received.len(), 1, "one probe");
    assert_eq!(received[0].method, "HEAD", "check sends no events");
    assert_eq!(
        received[0].header("authorization"),
        Some(&*format!("Splunk {TOKEN}"))
    );

    // Without the receiver's CA its certificate does not verify: exit 6, saying what to set.
    let run = harness.run(&["check", "--output", &url]);
    run.assert_code(6);
    assert!(run.stderr.contains("http_ca_file"), "{}", run.stderr);
    assert!(!run.stderr.contains("path-token"), "{}", run.stderr);
    // Nobody listening: exit 6 at once, not after the retry budget.
    let down = TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("https://{}/ingest", down.local_addr().unwrap());
    drop(down);
    let started = Instant::now();
    let run = harness.run(&["check", "--output", &gone]);
    run.assert_code(6);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(run.stderr.contains("can reach it"), "{}", run.stderr);

    // A bad value is caught by check as by the run: configuration error, exit 3.
    let run = trusted(&["check", "--output", &url, "--http-batch-events", "0"]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("flag --http-batch-events"),
        "{}",
        run.stderr
    );
    let run = harness.run(&["check", "--output", "http://192.0.2.10/ingest"]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("http_allow_plaintext"),
        "{}",
        run.stderr
    );
}
