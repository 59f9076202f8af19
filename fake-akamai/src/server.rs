//! Connections, requests and responses: hand-written HTTP/1.1 over rustls, because faults like
//! a body cut mid-line or a reset after N events are exactly what an HTTP library hides.

use crate::auth::{self, Verdict};
use crate::events::Dynamic;
use crate::store::Offset;
use crate::{Fault, LineStyle, RequestRecord, Shared, lock};
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Instant;

const HORIZON: f64 = 12.0 * 3600.0;
const MAX_LIMIT: u64 = 600_000;
const PROBLEM_BASE: &str = "https://problems.luna.akamaiapis.net";

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

pub fn accept_loop(listener: TcpListener, config: Arc<rustls::ServerConfig>, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let config = Arc::clone(&config);
        let shared = Arc::clone(&shared);
        let _ = thread::Builder::new()
            .name("fake-akamai-conn".into())
            .spawn(move || {
                let Ok(connection) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(connection, stream);
                while let Ok(Some(request)) = read_request(&mut tls) {
                    match handle(&shared, &request, &mut tls) {
                        Ok(Connection::KeepAlive) => continue,
                        Ok(Connection::Close) | Err(_) => break,
                    }
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
    }
}

struct Request {
    method: String,
    target: String,
    host: String,
    authorization: Option<String>,
    gzip: bool,
}

fn read_request(tls: &mut Tls) -> io::Result<Option<Request>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut byte)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&byte[..n]);
        if head.len() > 64 * 1024 {
            return Err(io::Error::other("request head too large"));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let mut request = Request {
        method,
        target,
        host: String::new(),
        authorization: None,
        gzip: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "host" => request.host = value.to_string(),
            "authorization" => request.authorization = Some(value.to_string()),
            "accept-encoding" => request.gzip = value.contains("gzip"),
            _ => {}
        }
    }
    Ok(Some(request))
}

enum Connection {
    KeepAlive,
    Close,
}

struct Problem {
    status: u16,
    kind: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<u64>,
}

fn problem(
    status: u16,
    kind: &'static str,
    title: &'static str,
    detail: impl Into<String>,
) -> Problem {
    Problem {
        status,
        kind,
        title,
        detail: detail.into(),
        retry_after: None,
    }
}

fn handle(shared: &Shared, request: &Request, tls: &mut Tls) -> io::Result<Connection> {
    let mut record = RequestRecord {
        target: request.target.clone(),
        params: Vec::new(),
        status: 200,
        events: 0,
        nonce: None,
        fault: None,
    };
    let answer = serve(shared, request, &mut record);
    if let Err(Outcome::Problem(p)) = &answer {
        record.status = p.status;
    }
    // Recorded before it is answered: a client that exits on the answer must find its request
    // in `requests()` (a test once read them between the answer and a later push, one short).
    lock(&shared.requests).push(record);
    match answer {
        Ok((page, fault)) => write_page(shared, request, tls, &page, fault.as_ref()),
        Err(Outcome::Problem(p)) => {
            write_problem(tls, request, &p)?;
            Ok(Connection::KeepAlive)
        }
        Err(Outcome::Io(e)) => Err(e),
    }
}

enum Outcome {
    Problem(Problem),
    Io(io::Error),
}

impl From<Problem> for Outcome {
    fn from(p: Problem) -> Outcome {
        Outcome::Problem(p)
    }
}

impl From<io::Error> for Outcome {
    fn from(e: io::Error) -> Outcome {
        Outcome::Io(e)
    }
}

/// What to answer: the page to send (and the fault to send it with), or why not.
fn serve(
    shared: &Shared,
    request: &Request,
    record: &mut RequestRecord,
) -> Result<(Page, Option<Fault>), Outcome> {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let Some(id_text) = path.strip_prefix("/siem/v1/configs/") else {
        return Err(problem(404, "/siem/v1/not-found", "Not Found", "No such resource").into());
    };
    let now = shared.now();
    let credentials = auth::Credentials {
        client_token: shared.options.credentials.client_token.clone(),
        client_secret: shared.options.credentials.client_secret.clone(),
        access_token: shared.options.credentials.access_token.clone(),
    };
    let verdict = auth::verify(
        &credentials,
        &auth::Request {
            method: &request.method,
            host: &request.host,
            target: &request.target,
            authorization: request.authorization.as_deref(),
        },
        now as i64,
        shared.options.max_clock_skew.as_secs() as i64,
    );
    match verdict {
        Verdict::Denied(detail) => return Err(denied(detail).into()),
        Verdict::InvalidTimestamp => return Err(invalid_timestamp().into()),
        Verdict::Accepted { nonce } => {
            record.nonce = Some(nonce.clone());
            if !lock(&shared.nonces).insert(nonce) {
                return Err(denied("Nonce already used").into());
            }
        }
    }
    let fault = lock(&shared.faults).pop_front();
    record.fault = fault.clone();
    if let Some(Fault::HangBeforeHeaders(pause)) = &fault {
        thread::sleep(*pause);
    }
    match &fault {
        Some(Fault::Status(status)) => return Err(status_problem(*status).into()),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut p = status_problem(429);
            p.retry_after = Some(*retry_after_secs);
            return Err(p.into());
        }
        Some(Fault::InvalidTimestamp) => return Err(invalid_timestamp().into()),
        Some(Fault::BurstBlock) => {
            return Err(problem(
                400,
                "/-/waf/deny",
                "Bad Request",
                "WAF deny rule IPBLOCK-BURST4-54013",
            )
            .into());
        }
        Some(Fault::ExpiredOffset) => return Err(expired().into()),
        _ => {}
    }

    let configs = parse_configs(shared, id_text)?;
    record.params = parse_query(query);
    let page = plan_page(shared, &configs, &record.params, now)?;
    record.events = page.ids.len() as u64;
    Ok((page, fault))
}

/// The gateway's 401.
fn denied(detail: impl Into<String>) -> Problem {
    problem(401, "/-/pep-authn/deny", "Not authorized", detail)
}

/// The gateway's answer to a clock more than the allowed skew away.
fn invalid_timestamp() -> Problem {
    problem(
        400,
        "/-/pep-authn/request-error",
        "Bad request",
        "Invalid timestamp",
    )
}

fn status_problem(status: u16) -> Problem {
    match status {
        401 => denied("The signature does not match"),
        403 => problem(
            403,
            "/siem/v1/unauthorized",
            "Forbidden",
            "The API client is not authorized for this configuration",
        ),
        404 => problem(
            404,
            "/siem/v1/not-found",
            "Not Found",
            "Unknown configuration id",
        ),
        429 => problem(
            429,
            "/siem/v1/too-many-requests",
            "Too Many Requests",
            "Rate limit exceeded",
        ),
        status => problem(
            status,
            "/siem/v1/server-error",
            "Server Error",
            format!("Injected HTTP {status}"),
        ),
    }
}

fn expired() -> Problem {
    problem(
        416,
        "/siem/v1/offset-too-old",
        "Expired offset",
        "Expired offset parameter in the request",
    )
}

fn bad_parameters(detail: impl Into<String>) -> Problem {
    problem(400, "/siem/v1/missing-parameters", "Bad Request", detail)
}

fn parse_configs(shared: &Shared, text: &str) -> Result<Vec<u64>, Problem> {
    let decoded = text.replace("%3B", ";").replace("%3b", ";");
    let mut ids = Vec::new();
    for part in decoded.split(';') {
        let id: u64 = part
            .parse()
            .map_err(|_| bad_parameters(format!("Invalid configId {part}")))?;
        if !shared.options.config_ids.contains(&id) {
            return Err(problem(
                404,
                "/siem/v1/not-found",
                "Not Found",
                format!("Unknown configId {id}"),
            ));
        }
        ids.push(id);
    }
    let refused = lock(&shared.refused);
    if let Some(status) = ids.iter().find_map(|id| refused.get(id)) {
        // Refused as a whole: the answer does not say which id is the cause.
        return Err(status_problem(*status));
    }
    Ok(ids)
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

struct Page {
    ids: Vec<u64>,
    offset: String,
    /// The page was cut at the limit: more is waiting.
    cut: bool,
    serial: u64,
}

fn plan_page(
    shared: &Shared,
    configs: &[u64],
    params: &[(String, String)],
    now: f64,
) -> Result<Page, Problem> {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str| -> Result<Option<i64>, Problem> {
        param(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| bad_parameters(format!("Invalid {name}")))
            })
            .transpose()
    };
    let limit = match number("limit")? {
        None => 10_000,
        Some(l) if (1..=MAX_LIMIT as i64).contains(&l) => l as u64,
        Some(_) => return Err(bad_parameters("limit must be between 1 and 600000")),
    };
    let config_key = {
        let ids: Vec<String> = configs.iter().map(u64::to_string).collect();
        ids.join(";")
    };
    let store = lock(&shared.store);
    let (start, end) = match (number("from")?, param("offset")) {
        (Some(from), _) => {
            let to = number("to")?;
            if (from as f64) < now - HORIZON {
                return Err(bad_parameters("from is more than 12 hours ago"));
            }
            if let Some(to) = to {
                if to as f64 > now - 5.0 {
                    return Err(bad_parameters("to must be at least 5 seconds in the past"));
                }
                if to < from {
                    return Err(bad_parameters("from is after to"));
                }
            }
            let end = store.first_at_or_after(to.map_or(now, |t| t as f64));
            (store.first_at_or_after(from as f64), end)
        }
        (None, Some(text)) => {
            let offset = Offset::decode(text).ok_or_else(|| bad_parameters("Invalid offset"))?;
            if offset.configs != config_key {
                return Err(bad_parameters("offset belongs to other configIds"));
            }
            let expired_serial =
                offset.serial < shared.expired_before_serial.load(Ordering::SeqCst);
            let expired_ttl = shared
                .options
                .offset_ttl
                .is_some_and(|ttl| (now as i64 - offset.issued_at) as f64 > ttl.as_secs_f64());
            if expired_serial || expired_ttl {
                return Err(expired());
            }
            (offset.next, store.len())
        }
        (None, None) => return Err(bad_parameters("Either offset or from is required")),
    };
    let wanted = limit + shared.options.page_overshoot as u64;
    let in_configs = |id: u64| {
        let all = &shared.options.config_ids;
        configs.contains(&all[(id % all.len() as u64) as usize])
    };
    let mut ids = Vec::new();
    let mut id = start;
    while id < end && (ids.len() as u64) < wanted {
        if in_configs(id) {
            ids.push(id);
        }
        id += 1;
    }
    let cut = (id..end).any(in_configs);
    let next = if cut { id } else { end };
    let serial = shared.serial.fetch_add(1, Ordering::SeqCst);
    let offset = Offset {
        next,
        configs: config_key,
        issued_at: now as i64,
        serial,
    };
    Ok(Page {
        ids,
        offset: offset.encode(),
        cut,
        serial,
    })
}

pub fn dynamic_of(shared: &Shared, id: u64) -> Dynamic {
    let stored_at = lock(&shared.store).stored_at(id);
    let all = &shared.options.config_ids;
    shared
        .generator
        .dynamic(id, stored_at, all[(id % all.len() as u64) as usize])
}

pub fn render_event(shared: &Shared, id: u64, out: &mut Vec<u8>) {
    let dynamic = dynamic_of(shared, id);
    let large = lock(&shared.store).large.get(&id).copied();
    match large {
        Some(bytes) => shared.generator.write_large(&dynamic, bytes, out),
        None => shared.generator.write(&dynamic, out),
    }
}

/// A chunked body, optionally gzipped; writes go out in chunks of up to 64 KiB.
enum Body<'a> {
    Plain(BufWriter<Chunked<&'a mut Tls>>),
    Gzip(GzEncoder<BufWriter<Chunked<&'a mut Tls>>>),
}

struct Chunked<W: Write>(W);

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.0, "{:x}\r\n", buf.len())?;
        self.0.write_all(buf)?;
        self.0.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Body<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Body::Plain(w) => w.write_all(bytes),
            Body::Gzip(w) => w.write_all(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Body::Plain(w) => w.flush(),
            Body::Gzip(w) => w.flush(),
        }
    }

    /// End the body properly (terminating chunk).
    fn finish(self) -> io::Result<()> {
        let buffered = match self {
            Body::Plain(w) => w,
            Body::Gzip(w) => w.finish()?,
        };
        let Chunked(stream) = buffered.into_inner().map_err(|e| e.into_error())?;
        stream.write_all(b"0\r\n\r\n")?;
        stream.flush()
    }
}

fn write_page(
    shared: &Shared,
    request: &Request,
    tls: &mut Tls,
    page: &Page,
    fault: Option<&Fault>,
) -> io::Result<Connection> {
    let gzip = request.gzip && shared.options.gzip;
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
    );
    if gzip {
        head.push_str("Content-Encoding: gzip\r\n");
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes())?;
    let buffered = BufWriter::with_capacity(64 * 1024, Chunked(&mut *tls));
    let mut body = if gzip {
        Body::Gzip(GzEncoder::new(buffered, Compression::fast()))
    } else {
        Body::Plain(buffered)
    };
    let started = Instant::now();
    let style = shared.options.line_style;
    let mut line = Vec::with_capacity(4096);
    for (index, &id) in page.ids.iter().enumerate() {
        match fault {
            Some(Fault::TruncateAfter(n)) if index == *n => {
                body.finish()?;
                return Ok(Connection::KeepAlive);
            }
            Some(Fault::CutMidLine(n)) if index == *n => {
                line.clear();
                render_event(shared, id, &mut line);
                body.write_all(&line[..line.len() / 2])?;
                body.finish()?;
                return Ok(Connection::KeepAlive);
            }
            Some(Fault::ResetAfter(n)) if index == *n => {
                body.flush()?;
                drop(body);
                reset(tls);
                return Ok(Connection::Close);
            }
            Some(Fault::StallAfter { events, stall }) if index == *events => {
                body.flush()?;
                thread::sleep(*stall);
            }
            Some(Fault::Slow { delay_per_event }) => {
                body.flush()?;
                thread::sleep(*delay_per_event);
            }
            _ => {}
        }
        line.clear();
        render_event(shared, id, &mut line);
        let deadline_passed = shared
            .options
            .response_deadline
            .is_some_and(|deadline| started.elapsed() > deadline);
        if deadline_passed || shared.options.cut_after_events == Some(index) {
            // Like Akamai's two-minute cut: the body just ends, wherever it was.
            body.write_all(&line[..line.len() / 2])?;
            body.finish()?;
            return Ok(Connection::KeepAlive);
        }
        let crlf = match style {
            LineStyle::Lf => false,
            LineStyle::CrLf => true,
            LineStyle::Messy => index % 2 == 1,
        };
        line.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        if style == LineStyle::Messy && index % 5 == 4 {
            line.extend_from_slice(b"\n\r\n");
        }
        body.write_all(&line)?;
    }
    if matches!(
        fault,
        Some(Fault::TruncateAfter(_) | Fault::CutMidLine(_) | Fault::ResetAfter(_))
    ) {
        // The fault asked for more events than the page has: cut before the context line.
        body.finish()?;
        return Ok(Connection::KeepAlive);
    }
    let context = context_line(page);
    body.write_all(context.as_bytes())?;
    if style != LineStyle::Messy {
        body.write_all(if style == LineStyle::CrLf {
            b"\r\n"
        } else {
            b"\n"
        })?;
    }
    body.finish()?;
    Ok(Connection::KeepAlive)
}

/// Spacing and key order vary like the real API's: clients must parse, not string-match.
fn context_line(page: &Page) -> String {
    let total = page.ids.len();
    let offset = &page.offset;
    let limit = if page.cut {
        format!(",\"limit\":{total}")
    } else {
        String::new()
    };
    match page.serial % 3 {
        0 if total == 0 => format!("{{ \"total\": 0, \"offset\":\"{offset}\" }}"),
        0 => format!("{{\"total\":{total},\"offset\":\"{offset}\"{limit}}}"),
        1 => format!("{{ \"offset\": \"{offset}\" , \"total\" : {total}{limit} }}"),
        _ => format!("{{\"offset\":\"{offset}\",\"total\":{total}{limit}}}"),
    }
}

/// Close with RST: SO_LINGER with a zero timeout makes close() abort the connection.
fn reset(tls: &mut Tls) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on our own socket with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            tls.sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = tls.sock.shutdown(std::net::Shutdown::Both);
}

fn write_problem(tls: &mut Tls, request: &Request, p: &Problem) -> io::Result<()> {
    let body = serde_json::json!({
        "type": format!("{PROBLEM_BASE}{}", p.kind),
        "title": p.title,
        "detail": p.detail,
        "instance": format!("https://{}{}", request.host, request.target),
        "method": request.method,
        "serverIp": "127.0.0.1",
        "clientIp": "127.0.0.1",
        "requestId": "fake0000",
        "requestTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
    .to_string();
    let reason = match p.status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\n",
        p.status,
        body.len()
    );
    if let Some(seconds) = p.retry_after {
        head.push_str(&format!("Retry-After: {seconds}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes())?;
    tls.write_all(body.as_bytes())?;
    tls.flush()
}
