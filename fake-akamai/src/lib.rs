//! A fake Akamai SIEM API for akamai-siem's integration tests, demo and benchmark.
//!
//! HTTPS on 127.0.0.1 with a certificate from a CA made at start-up; every request's EdgeGrid
//! signature is verified; events are served in time and offset mode with the real API's
//! context-line rules and errors; faults are injected on demand. See the API doc in
//! `../shared/docs/akamai-siem-api.md` for what it mirrors.

mod auth;
mod events;
mod server;
mod store;
mod tls;

pub use events::{EventSize, encode_headers, encode_rule_list};

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// Obviously fake credentials the server accepts.
#[derive(Debug, Clone)]
pub struct TestCredentials {
    pub client_token: String,
    pub client_secret: String,
    pub access_token: String,
}

impl Default for TestCredentials {
    fn default() -> Self {
        TestCredentials {
            client_token: "akab-fake-client-token-0000000000000000".into(),
            client_secret: "ZmFrZS1jbGllbnQtc2VjcmV0LWZvci10ZXN0cy1vbmx5".into(),
            access_token: "akab-fake-access-token-0000000000000000".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStyle {
    /// `\n` after every line, the context line included.
    Lf,
    /// `\r\n` after every line.
    CrLf,
    /// `\r\n` on some lines, blank lines between events, no newline after the context line.
    Messy,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub config_ids: Vec<u64>,
    pub credentials: TestCredentials,
    pub max_clock_skew: Duration,
    pub server_clock_offset_secs: i64,
    pub offset_ttl: Option<Duration>,
    pub gzip: bool,
    pub line_style: LineStyle,
    pub page_overshoot: usize,
    pub response_deadline: Option<Duration>,
    /// Like the two-minute deadline on a slow link, by count: every response stops in the middle
    /// of its event number N (0-based), so only pages of at most N events ever complete.
    pub cut_after_events: Option<usize>,
    /// The names the server certificate is valid for.
    pub certificate_names: Vec<String>,
    pub event_size: EventSize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_ids: vec![12345],
            credentials: TestCredentials::default(),
            max_clock_skew: Duration::from_secs(30),
            server_clock_offset_secs: 0,
            offset_ttl: None,
            gzip: true,
            line_style: LineStyle::Lf,
            page_overshoot: 0,
            response_deadline: None,
            cut_after_events: None,
            certificate_names: vec!["127.0.0.1".into(), "localhost".into()],
            event_size: EventSize::Small,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Serve this request normally: queued before another fault, it places that fault on a
    /// later request.
    Pass,
    /// An error status with a problem+json body (429, 5xx; 401/403/404 on demand).
    Status(u16),
    TooManyRequests {
        retry_after_secs: u64,
    },
    InvalidTimestamp,
    /// The API gateway's burst block: a 400 whose detail names a WAF rule `IPBLOCK-BURST…`.
    BurstBlock,
    ExpiredOffset,
    /// N events, then a clean end of the body without the context line.
    TruncateAfter(usize),
    /// N events and half of the next line, then a clean end.
    CutMidLine(usize),
    /// N events, then the TCP connection is reset.
    ResetAfter(usize),
    Slow {
        delay_per_event: Duration,
    },
    /// Say nothing, not even the status line, for this long, then answer normally.
    HangBeforeHeaders(Duration),
    StallAfter {
        events: usize,
        stall: Duration,
    },
}

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub target: String,
    pub params: Vec<(String, String)>,
    pub status: u16,
    pub events: u64,
    pub nonce: Option<String>,
    pub fault: Option<Fault>,
}

impl RequestRecord {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) struct Shared {
    options: Options,
    generator: events::Generator,
    store: Mutex<store::Store>,
    faults: Mutex<VecDeque<Fault>>,
    nonces: Mutex<HashSet<String>>,
    requests: Mutex<Vec<RequestRecord>>,
    /// Config ids answered with this status (403, 404) for now, whatever else is asked with them.
    refused: Mutex<HashMap<u64, u16>>,
    serial: AtomicU64,
    expired_before_serial: AtomicU64,
    shutdown: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn now(&self) -> f64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs_f64();
        now + self.options.server_clock_offset_secs as f64
    }
}

pub struct FakeAkamai {
    shared: Arc<Shared>,
    address: SocketAddr,
    ca_pem: String,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl FakeAkamai {
    pub fn start(options: Options) -> io::Result<FakeAkamai> {
        let tls = tls::make(&options.certificate_names).map_err(io::Error::other)?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            generator: events::Generator::new(options.event_size),
            options,
            store: Mutex::new(store::Store::default()),
            faults: Mutex::new(VecDeque::new()),
            nonces: Mutex::new(HashSet::new()),
            requests: Mutex::new(Vec::new()),
            refused: Mutex::new(HashMap::new()),
            serial: AtomicU64::new(0),
            expired_before_serial: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            let config = Arc::clone(&tls.config);
            thread::Builder::new()
                .name("fake-akamai-accept".into())
                .spawn(move || server::accept_loop(listener, config, shared))?
        };
        Ok(FakeAkamai {
            shared,
            address,
            ca_pem: tls.ca_pem,
            acceptor: Some(acceptor),
        })
    }

    pub fn start_default() -> io::Result<FakeAkamai> {
        Self::start(Options::default())
    }

    pub fn host(&self) -> String {
        self.address.to_string()
    }

    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    pub fn credentials(&self) -> &TestCredentials {
        &self.shared.options.credentials
    }

    pub fn config_ids(&self) -> String {
        let ids: Vec<String> = self
            .shared
            .options
            .config_ids
            .iter()
            .map(u64::to_string)
            .collect();
        ids.join(";")
    }

    /// `ca.pem` and `akamai_config.ini` (mode 0600) for this server, in `dir`.
    pub fn write_config(&self, dir: &Path) -> io::Result<PathBuf> {
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, &self.ca_pem)?;
        let credentials = self.credentials();
        let text = format!(
            "# akamai-siem config for the fake Akamai SIEM API on {host}\n[default]\n\
             host = {host}\nconfig_id = {ids}\nclient_token = {}\nclient_secret = {}\n\
             access_token = {}\nca_file = {}\n",
            credentials.client_token,
            credentials.client_secret,
            credentials.access_token,
            ca.display(),
            host = self.host(),
            ids = self.config_ids(),
        );
        let path = dir.join("akamai_config.ini");
        write_private(&path, &text)?;
        Ok(path)
    }

    /// Events stored now.
    pub fn append_events(&self, n: usize) -> Range<u64> {
        let now = self.shared.now();
        self.append_events_spread(n, now, now)
    }

    /// Events stored at one moment (never before the last stored event).
    pub fn append_events_at(&self, n: usize, stored_at_unix: f64) -> Range<u64> {
        self.append_events_spread(n, stored_at_unix, stored_at_unix)
    }

    /// Events stored evenly over `[from, to]`.
    pub fn append_events_spread(&self, n: usize, from_unix: f64, to_unix: f64) -> Range<u64> {
        lock(&self.shared.store).append(n as u64, from_unix, to_unix)
    }

    /// One event of about `approx_bytes` (huge headers, ruleData and query), stored now.
    pub fn append_large_event(&self, approx_bytes: usize) -> u64 {
        let id = self.append_events(1).start;
        lock(&self.shared.store).large.insert(id, approx_bytes);
        id
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// Drop the faults not yet used.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// From now on, refuse every request that names config id `id` with `status`: 403 as for an
    /// API client without SIEM access to it, 404 as for an id the account does not have. Like
    /// the real API, a request naming it with other ids is refused as a whole. Its events are
    /// still stored, and served again after `accept`.
    pub fn refuse(&self, id: u64, status: u16) {
        assert!(
            matches!(status, 403 | 404),
            "the API refuses a config id with 403 or 404"
        );
        assert!(
            self.shared.options.config_ids.contains(&id),
            "refuse one of this server's config ids"
        );
        lock(&self.shared.refused).insert(id, status);
    }

    /// Serve config id `id` again (access given back).
    pub fn accept(&self, id: u64) {
        lock(&self.shared.refused).remove(&id);
    }

    /// Every offset handed out so far answers 416 from now on.
    pub fn expire_offsets(&self) {
        let serial = self.shared.serial.load(Ordering::SeqCst);
        self.shared
            .expired_before_serial
            .store(serial + 1, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.requests).clone()
    }

    pub fn event_count(&self) -> u64 {
        lock(&self.shared.store).len()
    }

    /// The exact bytes served for event `id` (without newline).
    pub fn raw_event_line(&self, id: u64) -> String {
        let mut line = Vec::new();
        server::render_event(&self.shared, id, &mut line);
        String::from_utf8(line).expect("events are UTF-8")
    }

    /// Event `id` as a correct client decodes it (computed from plaintext, not by decoding).
    pub fn expected_decoded(&self, id: u64) -> serde_json::Value {
        let dynamic = server::dynamic_of(&self.shared, id);
        self.shared.generator.expected_decoded(&dynamic)
    }
}

impl Drop for FakeAkamai {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// The fake event id carried by a JSON line (raw, decoded or Wazuh-shaped).
pub fn event_id(line: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let id = value.get("httpMessage")?.get("requestId")?.as_str()?;
    u64::from_str_radix(id, 16).ok()
}
