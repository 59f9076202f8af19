//! The HTTP side: connections (bounded in number, TLS handshake and header deadlines), one
//! answer per request. Authentication comes before the body is read; the body is read within
//! `max_body_bytes` and a deadline, decoded on a blocking thread, and handed to the writer,
//! whose answer decides the status: 200 only once the body's events are durable.

use super::auth::Authenticator;
use super::body::{self, Refused};
use super::quarantine;
use super::report::Stats;
use super::writer::{Answer, Job};
use http_body_util::BodyExt as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its TLS handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this, counted from when the connection is ready for
/// them: so it is also how long an idle keep-alive connection stays open.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// The whole body must arrive within this (a slow client cannot hold a body slot for long).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// The connection's read buffer, which bounds the request line and headers.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;
/// Bodies read and decoded at once; each holds up to twice max_body_bytes in memory, so this
/// bounds the receiver's memory. The writer takes one at a time anyway.
pub const BODY_SLOTS: usize = 4;
/// How long a request waits for a body slot before it is answered 503.
const SLOT_WAIT: Duration = Duration::from_secs(30);
/// What a 503 asks the pusher to wait.
const RETRY_AFTER: &str = "10";

pub struct Shared {
    pub auth: Authenticator,
    pub path: Option<String>,
    pub max_body_bytes: u64,
    pub quarantine_dir: PathBuf,
    pub jobs: mpsc::Sender<Job>,
    pub stats: Arc<Stats>,
    pub stopping: AtomicBool,
    pub body_slots: Semaphore,
    /// For the metrics' labels.
    pub tenant: String,
    pub started_at: i64,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16) -> Reply {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    response
}

fn with(mut response: Reply, name: header::HeaderName, value: &'static str) -> Reply {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
    response
}

fn unavailable() -> Reply {
    with(reply(503), header::RETRY_AFTER, RETRY_AFTER)
}

/// Serve one accepted connection until it closes, the deadlines expire, or the receiver stops.
pub async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    watcher: Watcher,
) {
    let _ = tcp.set_nodelay(true);
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |request| handle(request, peer, Arc::clone(&shared)))
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    match acceptor {
        Some(acceptor) => {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    shared.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("TLS handshake with {peer} failed: {error}");
                    return;
                }
                Err(_) => {
                    shared.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("TLS handshake with {peer} timed out");
                    return;
                }
            };
            let _ = watcher
                .watch(builder.serve_connection(TokioIo::new(tls), service))
                .await;
        }
        None => {
            let _ = watcher
                .watch(builder.serve_connection(TokioIo::new(tcp), service))
                .await;
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Result<Reply, Infallible> {
    let stats = &shared.stats;
    let path = request.uri().path();
    if path == "/health" && matches!(*request.method(), Method::GET | Method::HEAD) {
        // For load balancers: no authentication and no data, only whether pushes can succeed.
        let ready =
            !shared.stopping.load(Ordering::Relaxed) && stats.writer_ok.load(Ordering::Relaxed);
        return Ok(if ready { reply(200) } else { unavailable() });
    }
    if path == "/metrics" && request.method() == Method::GET {
        // Authenticated like a push: the counts tell an outsider how much traffic there is.
        if !shared.auth.allows(request.headers()) {
            stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            return Ok(reply(401));
        }
        let text = crate::diagnostics::metrics::render_receive(
            &shared.tenant,
            &stats.counts(),
            shared.started_at,
        );
        let mut response = Response::new(Full::new(Bytes::from(text)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return Ok(response);
    }
    if shared.path.as_deref().is_some_and(|wanted| wanted != path) {
        return Ok(reply(404));
    }
    if request.method() != Method::POST {
        return Ok(with(reply(405), header::ALLOW, "POST"));
    }
    if !shared.auth.allows(request.headers()) {
        stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        if stats.failed_auth.record(peer.ip()) {
            tracing::warn!(
                code = "push_auth_failed",
                srcip = %peer.ip(),
                "a push from {peer} failed authentication (answered 401, nothing written); \
                 further failures from this address are counted in the next summary"
            );
        }
        let response = reply(401);
        return Ok(if shared.auth.uses_basic() {
            with(
                response,
                header::WWW_AUTHENTICATE,
                "Basic realm=\"akamai-siem\", charset=\"UTF-8\"",
            )
        } else {
            response
        });
    }
    let answer = receive(request, peer, &shared).await;
    let status = answer.status().as_u16();
    if status != 200 {
        stats.rejected.fetch_add(1, Ordering::Relaxed);
    }
    Ok(answer)
}

/// An authenticated push: read, decode, deliver.
async fn receive(request: Request<Incoming>, peer: SocketAddr, shared: &Shared) -> Reply {
    if shared.stopping.load(Ordering::Relaxed) {
        return unavailable();
    }
    let limit = shared.max_body_bytes;
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limit) {
        tracing::warn!(
            code = "bad_body",
            "a push from {peer} announced {} bytes, more than max_body_bytes ({limit}): \
             answered 413 without reading it",
            declared_length.unwrap_or_default()
        );
        return with(reply(413), header::CONNECTION, "close");
    }
    let gzip = body::gzip_declared(
        request
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(HeaderValue::as_bytes),
    );
    let Ok(_slot) = tokio::time::timeout(SLOT_WAIT, shared.body_slots.acquire()).await else {
        return unavailable();
    };
    let received = match read_body(request.into_body(), limit).await {
        Ok(received) => received,
        Err(status) => {
            tracing::warn!(
                code = "bad_body",
                "a push from {peer} was answered {status}: {}",
                match status {
                    413 => format!("its body is larger than max_body_bytes ({limit})"),
                    408 => format!("its body did not arrive within {}s", BODY_TIMEOUT.as_secs()),
                    _ => "its body could not be read to its end".to_string(),
                }
            );
            return with(reply(status), header::CONNECTION, "close");
        }
    };
    shared
        .stats
        .received_bytes
        .fetch_add(received.len() as u64, Ordering::Relaxed);
    let decoded = tokio::task::spawn_blocking(move || {
        let decoded = gzip.and_then(|gzip| body::to_lines(&received, gzip, limit));
        match decoded {
            Ok(lines) => Ok(lines),
            Err(refused) => Err((refused, received)),
        }
    })
    .await;
    let lines = match decoded {
        Ok(Ok(lines)) => lines,
        Ok(Err((refused, received))) => return refuse(refused, received, peer, shared).await,
        Err(_) => return unavailable(),
    };
    let (answer, answered) = oneshot::channel();
    let job = Job {
        lines,
        peer,
        reply: answer,
    };
    if shared.jobs.send(job).await.is_err() {
        return unavailable();
    }
    match answered.await {
        Ok(Answer::Delivered(counts)) => {
            // What became of the body, for whoever debugs a stream; no event data.
            let text = format!(
                "{{\"events\":{},\"duplicates\":{},\"metadata\":{},\"bad_lines\":{}}}",
                counts.events, counts.duplicates, counts.metadata, counts.bad_lines
            );
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Ok(Answer::NotJson) => reply(400),
        Ok(Answer::Unavailable) | Err(_) => unavailable(),
    }
}

/// A body that cannot be delivered is kept in the quarantine, then refused with its status. If
/// it cannot be kept, 503: DataStream keeps it and sends it again.
async fn refuse(refused: Refused, received: Vec<u8>, peer: SocketAddr, shared: &Shared) -> Reply {
    let dir = shared.quarantine_dir.clone();
    let reason = match refused {
        Refused::Encoding(_) => "unsupported-encoding",
        Refused::Malformed(_) => "malformed",
        Refused::TooLarge { .. } => "too-large-decompressed",
    };
    let kept =
        tokio::task::spawn_blocking(move || quarantine::keep(&dir, peer, reason, &received)).await;
    let status = refused.status();
    match kept {
        Ok(Ok(path)) => {
            tracing::warn!(
                code = "bad_body",
                "a push from {peer} was refused with {status}: {refused}; nothing of it was \
                 written, the body is kept in {}",
                path.display()
            );
            reply(status)
        }
        Ok(Err(error)) => {
            tracing::error!(
                code = "output_error",
                "a push from {peer} is refused ({refused}) but cannot be kept in the quarantine \
                 directory {} (check quarantine_dir): {error}; answered 503 so that DataStream \
                 keeps it",
                shared.quarantine_dir.display()
            );
            unavailable()
        }
        Err(_) => unavailable(),
    }
}

/// The whole body, or the status to answer: 413 over the limit, 408 too slow, 400 broken.
async fn read_body(mut body: Incoming, limit: u64) -> Result<Vec<u8>, u16> {
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    let mut data = Vec::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(408),
            Ok(None) => return Ok(data),
            Ok(Some(Err(_))) => return Err(400),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(chunk) = frame.into_data() {
            if (data.len() + chunk.len()) as u64 > limit {
                return Err(413);
            }
            data.extend_from_slice(&chunk);
        }
    }
}
