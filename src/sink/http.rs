//! Output lines POSTed in batches to an HTTP receiver: Splunk's HTTP Event Collector, Elastic,
//! Logstash, Sumo Logic, Vector, a webhook.
//!
//! The run loop commits (saves the state past a page's events) only after [`make_durable`]
//! returns, and here that means every batch of those events was answered with a 2xx. Lines are
//! gathered into a batch until it holds `http_batch_events` events or one more line would take it
//! past `http_batch_bytes`; a full batch is sent at once, the partial one at each commit. So the
//! memory held is one batch and, with gzip, its compressed copy, whatever the receiver's speed.
//!
//! A batch the receiver did not confirm is sent again, unchanged, with the same `Idempotency-Key`
//! (the SHA-256 of its body before gzip), so a receiver that keeps the keys it has seen can drop
//! the copy when only its answer was lost. 408, 429, 5xx and network failures are retried within
//! the run's `retry_budget`, honouring `Retry-After`; any other answer ends the run (exit 6) with
//! what the receiver said, and the events of the batch are sent again by the next run.
//!
//! [`make_durable`]: Destination::make_durable

use super::backoff::{Backoff, GiveUp};
use super::{Destination, OutputError};
use crate::checkpoint::OutputPosition;
use crate::config::secret::Secret;
use crate::config::{HttpFormat, HttpSettings};
use crate::source::api::{certificate_problem, error_chain, install_crypto_provider};
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::blocking::{Client, Request};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The header that carries each batch's content hash (IETF draft "The Idempotency-Key HTTP
/// Header Field").
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Splunk's sourcetype for every event sent to HEC.
const HEC_SOURCETYPE: &str = "akamai:siem";
/// How much of the receiver's answer is kept for a message.
const ANSWER_SHOWN: usize = 300;
/// How much of an answer is read at all: enough to reuse the connection after a short body.
const ANSWER_READ: u64 = 64 * 1024;
/// After SIGTERM, how long a request already under way may still take before it is abandoned:
/// it may well be the last batch, delivered in time; a stalled receiver must not hold the stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct HttpPost {
    batcher: Batcher,
    sender: Sender,
}

impl HttpPost {
    pub fn open(settings: &HttpSettings) -> io::Result<HttpPost> {
        Ok(HttpPost {
            batcher: Batcher::new(settings),
            sender: Sender::new(settings)?,
        })
    }
}

impl Destination for HttpPost {
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        let lines = lines.strip_suffix(b"\n").unwrap_or(lines);
        let sender = &mut self.sender;
        for line in lines.split(|b| *b == b'\n') {
            self.batcher
                .push(line, &mut |body, events| sender.send(body, events))?;
        }
        Ok(())
    }

    /// Send what is gathered: the caller commits only once every batch was confirmed.
    fn make_durable(&mut self) -> io::Result<Option<OutputPosition>> {
        if let Some((body, events)) = self.batcher.take() {
            self.sender.send(body, events)?;
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        self.sender.receiver.clone()
    }

    fn set_stop(&mut self, stop: Arc<AtomicBool>) {
        self.sender.backoff.set_stop(stop);
    }

    /// Batches sent again after a failed attempt.
    fn retries(&self) -> u64 {
        self.sender.backoff.retries
    }
}

/// For `check`: one `HEAD` request, which stores nothing, to show that the receiver is
/// reachable and its certificate verifies. Any HTTP answer will do (many receivers refuse HEAD
/// with 405); the status is returned for the report.
pub fn probe(settings: &HttpSettings) -> Result<u16, OutputError> {
    let failed = |message: String| OutputError::Write {
        target: settings.describe(),
        source: io::Error::other(message),
    };
    let sender = Sender::new(settings).map_err(|e| failed(e.to_string()))?;
    let request = sender
        .client
        .head(sender.url.clone())
        .headers(sender.headers.clone())
        .build()
        .map_err(|e| failed(error_chain(&e)))?;
    match sender.attempt(request).map_err(|e| failed(e.to_string()))? {
        Ok(reply) => Ok(reply.status),
        Err(error) => Err(failed(match sender.judge_failure(error) {
            Verdict::Refused(message) => message,
            Verdict::Retry { why, .. } => {
                format!("{why}; check that it runs and that this machine can reach it")
            }
            Verdict::Accepted => unreachable!("a failed request is never accepted"),
        })),
    }
}

/// Lines into batch bodies, by events and by bytes.
struct Batcher {
    format: HttpFormat,
    max_events: usize,
    max_bytes: usize,
    body: Vec<u8>,
    events: usize,
    /// The line being added, encoded, before it is known whether it still fits.
    encoded: Vec<u8>,
}

impl Batcher {
    fn new(settings: &HttpSettings) -> Batcher {
        Batcher {
            format: settings.format,
            max_events: settings.batch_events,
            max_bytes: settings.batch_bytes,
            body: Vec::new(),
            events: 0,
            encoded: Vec::new(),
        }
    }

    /// Add one line (without its `\n`); `send` gets each batch that is full.
    fn push(
        &mut self,
        line: &[u8],
        send: &mut dyn FnMut(Vec<u8>, usize) -> io::Result<()>,
    ) -> io::Result<()> {
        self.encoded.clear();
        match self.format {
            HttpFormat::Ndjson => self.encoded.extend_from_slice(line),
            HttpFormat::SplunkHec => hec_event(line, &mut self.encoded),
        }
        self.encoded.push(b'\n');
        if self.events > 0 && self.body.len() + self.encoded.len() > self.max_bytes {
            let (body, events) = self.take().expect("a batch with events");
            send(body, events)?;
        }
        self.body.extend_from_slice(&self.encoded);
        self.events += 1;
        if self.events >= self.max_events || self.body.len() >= self.max_bytes {
            let (body, events) = self.take().expect("a batch with events");
            send(body, events)?;
        }
        Ok(())
    }

    /// The batch gathered so far, if it holds anything.
    fn take(&mut self) -> Option<(Vec<u8>, usize)> {
        if self.events == 0 {
            return None;
        }
        let events = std::mem::replace(&mut self.events, 0);
        Some((std::mem::take(&mut self.body), events))
    }
}

/// `{"event":<line>,"time":<httpMessage.start>,"sourcetype":"akamai:siem"}`. A line that is not
/// JSON (possible with `format = raw`) goes as a JSON string, so one odd event cannot make HEC
/// refuse its whole batch; without a usable start time HEC stamps the event on arrival.
fn hec_event(line: &[u8], out: &mut Vec<u8>) {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "httpMessage")]
        http_message: Option<HttpMessage>,
    }
    #[derive(serde::Deserialize)]
    struct HttpMessage {
        start: Option<serde_json::Value>,
    }
    out.extend_from_slice(b"{\"event\":");
    let time = match serde_json::from_slice::<Probe>(line) {
        Ok(probe) => {
            out.extend_from_slice(line);
            probe
                .http_message
                .and_then(|m| m.start)
                .and_then(|start| epoch_seconds(&start))
        }
        Err(_) => {
            let text = String::from_utf8_lossy(line);
            serde_json::to_writer(&mut *out, &*text).expect("writing to a Vec cannot fail");
            None
        }
    };
    if let Some(time) = time {
        out.extend_from_slice(b",\"time\":");
        out.extend_from_slice(time.as_bytes());
    }
    out.extend_from_slice(b",\"sourcetype\":\"");
    out.extend_from_slice(HEC_SOURCETYPE.as_bytes());
    out.extend_from_slice(b"\"}");
}

/// The API gives `start` as a string of epoch seconds (`"1741946405"`, sometimes with a
/// fraction); HEC wants a number. Kept digit for digit.
fn epoch_seconds(start: &serde_json::Value) -> Option<String> {
    let text = match start {
        serde_json::Value::String(text) => text.trim().to_string(),
        serde_json::Value::Number(number) => number.to_string(),
        _ => return None,
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let usable = !whole.is_empty()
        && digits(whole)
        && digits(fraction)
        && (text.len() == whole.len() || !fraction.is_empty());
    usable.then_some(text)
}

/// The HTTP side: one client, its headers, the retry budget.
struct Sender {
    client: Client,
    url: reqwest::Url,
    headers: HeaderMap,
    gzip: bool,
    /// What messages call the receiver (scheme, host, port; never the path).
    receiver: String,
    /// Removed from anything the receiver answers before it is shown.
    secret: Option<Secret>,
    backoff: Backoff,
}

/// What the receiver said to one attempt, read off the connection.
struct Reply {
    status: u16,
    retry_after: Option<String>,
    location: Option<String>,
    body: Vec<u8>,
}

/// What to do after one attempt.
#[derive(Debug, PartialEq)]
enum Verdict {
    Accepted,
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Refused(String),
}

impl Sender {
    fn new(settings: &HttpSettings) -> io::Result<Sender> {
        install_crypto_provider();
        let setup = |problem: String| io::Error::other(problem);
        let url = reqwest::Url::parse(&settings.url).map_err(|e| setup(e.to_string()))?;
        let mut builder = Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.read_timeout)
            .user_agent(concat!("akamai-siem/", env!("CARGO_PKG_VERSION")))
            // A redirected POST loses its body or, worse, takes the secret header elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| setup(format!("cannot read http_ca_file {}: {e}", path.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                setup(format!(
                    "http_ca_file {} holds no usable PEM certificate: {e}",
                    path.display()
                ))
            })?;
            builder = builder.tls_certs_merge(certificates);
        }
        let client = builder.build().map_err(|e| setup(error_chain(&e)))?;

        let mut headers = HeaderMap::new();
        let content_type = match settings.format {
            HttpFormat::Ndjson => "application/x-ndjson",
            HttpFormat::SplunkHec => "application/json",
        };
        // An http_header Content-Type (a receiver that insists on its own) replaces ours.
        if !settings
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if settings.gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| setup(format!("http_header `{name}`: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| setup(format!("http_header `{name}`: {e}")))?;
            // Repeated names all go, in order.
            headers.append(name, value);
        }
        let mut secret = None;
        if let Some((name, value)) = &settings.secret_header {
            secret = Some(value_secret(value.expose()));
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| setup(format!("http_secret_header `{name}`: {e}")))?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                setup(format!(
                    "http_secret_header `{name}`: its value is not a valid header value"
                ))
            })?;
            // Kept out of the HTTP stack's debug output.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Sender {
            client,
            url,
            headers,
            gzip: settings.gzip,
            receiver: settings.describe(),
            secret,
            backoff: Backoff::new(settings.retry_budget),
        })
    }

    /// POST one batch until the receiver confirms it, or give up.
    fn send(&mut self, body: Vec<u8>, events: usize) -> io::Result<()> {
        let key = hex(&Sha256::digest(&body));
        let bytes = body.len();
        let body = if self.gzip {
            let mut encoder = GzEncoder::new(Vec::with_capacity(bytes / 4), Compression::default());
            encoder.write_all(&body)?;
            let compressed = encoder.finish()?;
            // Only the compressed copy is kept for the attempts (a shadowed binding would live on).
            drop(body);
            compressed
        } else {
            body
        };
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(IDEMPOTENCY_KEY, &key)
            .body(body)
            .build()
            .map_err(|e| io::Error::other(error_chain(&e)))?;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let started = Instant::now();
            let attempt = request
                .try_clone()
                .expect("a body held in memory can be sent again");
            let verdict = match self.attempt(attempt)? {
                Ok(reply) => self.judge(&reply, events),
                Err(error) => self.judge_failure(error),
            };
            tracing::debug!(
                "POST of {events} events ({bytes} bytes, key {key:.16}) to {}: {verdict:?} in {} ms",
                self.receiver,
                started.elapsed().as_millis()
            );
            let (why, after) = match verdict {
                Verdict::Accepted => {
                    self.backoff.succeeded();
                    return Ok(());
                }
                Verdict::Refused(message) => return Err(io::Error::other(message)),
                Verdict::Retry { why, after } => (why, after),
            };
            let delay = match self.backoff.next_delay(after) {
                Ok(delay) => delay,
                Err(give_up) => return Err(gave_up(give_up, &why, attempts)),
            };
            tracing::warn!(
                code = "output_retry",
                "{}: {why}; sending the batch of {events} events again in {:.1}s",
                self.receiver,
                delay.as_secs_f64()
            );
            if let Err(give_up) = self.backoff.wait(delay) {
                return Err(gave_up(give_up, &why, attempts));
            }
        }
    }

    /// One request, from a helper thread: a receiver that stalls must not keep SIGTERM waiting
    /// for the read timeout (Wazuh's wodle waits for us without limit). `Err` when stopped.
    fn attempt(&self, request: Request) -> io::Result<Result<Reply, reqwest::Error>> {
        let client = self.client.clone();
        let (answer, answered) = mpsc::channel();
        std::thread::Builder::new()
            .name("http-output".into())
            .spawn(move || {
                let _ = answer.send(client.execute(request).map(read_reply));
            })?;
        let mut stop_seen: Option<Instant> = None;
        loop {
            match answered.recv_timeout(Duration::from_millis(100)) {
                Ok(result) => return Ok(result),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.backoff.stopped()
                        && stop_seen.get_or_insert_with(Instant::now).elapsed() > STOP_GRACE
                    {
                        return Err(io::Error::new(
                            io::ErrorKind::Interrupted,
                            "stopped by a signal while the receiver had not answered a batch",
                        ));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("the HTTP output's request thread stopped"));
                }
            }
        }
    }

    fn judge(&self, reply: &Reply, events: usize) -> Verdict {
        let status = reply.status;
        if (200..300).contains(&status) {
            return Verdict::Accepted;
        }
        let answer = self.shown(&reply.body);
        let said = if answer.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {answer}")
        };
        if status == 408 || status == 429 || (500..600).contains(&status) {
            return Verdict::Retry {
                after: reply
                    .retry_after
                    .as_deref()
                    .and_then(|v| retry_after(v, jiff::Timestamp::now())),
                why: said,
            };
        }
        let hint = match status {
            300..=399 => format!(
                "it redirects{}; set output to the URL it points to",
                reply
                    .location
                    .as_deref()
                    .map(|to| format!(" to {}", crate::config::describe_url(to)))
                    .unwrap_or_default()
            ),
            400 | 422 => "it cannot read the batch: check http_format (splunk-hec for Splunk's \
                          /services/collector/event, ndjson for the rest) and the URL path"
                .to_string(),
            401 | 403 => "check http_secret_header (the token, and that it may send here)".into(),
            404 | 405 => "check the URL path in output".into(),
            411 | 413 => "lower http_batch_bytes (and http_batch_events)".into(),
            415 => "check http_format and http_gzip".into(),
            _ => "check the receiver's configuration".into(),
        };
        Verdict::Refused(format!(
            "it refused a batch of {events} events with {said}; {hint}"
        ))
    }

    fn judge_failure(&self, error: reqwest::Error) -> Verdict {
        // The URL's path may hold a token (Sumo Logic): messages show the receiver only.
        let error = error.without_url();
        if let Some(problem) = certificate_problem(&error) {
            return Verdict::Refused(format!(
                "cannot verify its TLS certificate: {problem}; set http_ca_file to the CA \
                 certificate (PEM) that signed it, or check the host name in output"
            ));
        }
        let mut why = self.shown(error_chain(&error).as_bytes());
        if error.is_timeout() {
            why.push_str(" (raise read_timeout or connect_timeout if the receiver is slow)");
        }
        Verdict::Retry { why, after: None }
    }

    /// Receiver text fit for a message: bounded, one line, and never the secret (a debugging
    /// endpoint may echo the request's headers).
    fn shown(&self, text: &[u8]) -> String {
        let text = String::from_utf8_lossy(text);
        let mut shown: String = text
            .trim()
            .chars()
            .take(ANSWER_SHOWN)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.trim().chars().count() > ANSWER_SHOWN {
            shown.push('…');
        }
        if let Some(secret) = &self.secret
            && !secret.is_empty()
        {
            shown = shown.replace(secret.expose(), "[redacted]");
        }
        shown
    }
}

/// The part of a secret header's value worth hiding: the token after a scheme such as `Splunk`
/// or `Bearer` (the scheme itself is no secret, and hiding only the whole value would miss an
/// echoed token).
fn value_secret(value: &str) -> Secret {
    let token = value.rsplit(' ').next().unwrap_or(value);
    Secret::new(token)
}

fn read_reply(response: reqwest::blocking::Response) -> Reply {
    let text = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = response.status().as_u16();
    let retry_after = text(header::RETRY_AFTER);
    let location = text(header::LOCATION);
    let mut body = Vec::new();
    // Reading the (short) answer to its end lets the connection serve the next batch.
    let _ = response.take(ANSWER_READ).read_to_end(&mut body);
    body.truncate(4 * ANSWER_SHOWN);
    Reply {
        status,
        retry_after,
        location,
        body,
    }
}

/// `Retry-After`: delay-seconds, or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

fn gave_up(give_up: GiveUp, why: &str, attempts: u32) -> io::Error {
    match give_up {
        GiveUp::BudgetSpent => io::Error::other(format!(
            "{why}; gave up after {attempts} attempt(s): retry_budget is spent (raise it to ride \
             out longer outages)"
        )),
        GiveUp::Stopped => io::Error::new(
            io::ErrorKind::Interrupted,
            format!("{why}; stopped by a signal while waiting to send the batch again"),
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
