//! The one call this tool makes: a signed `GET /siem/v1/configs/{ids}?…`, and the API's errors
//! as typed values that say what to do.

use crate::config::ApiSettings;
use crate::source::edgegrid::{Credentials, RequestParts, Signer};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// Offsets hold `;`, `-`, `_`; everything but unreserved characters is escaped (`;` → `%3B`), and
/// the escaped form is what gets signed.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What one request asks for: by time (`from`, optional `to`) or by the offset the previous page
/// returned, and how many events at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Time { from: i64, to: Option<i64> },
    Offset(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub query: Query,
    pub limit: u32,
}

/// Error bodies are small; read no more than this of one.
const MAX_ERROR_BODY: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the API rejected the credentials (HTTP 401: {detail}); check client_token, \
         client_secret and access_token (and that host belongs to the same API client)"
    )]
    Unauthorized { detail: String },
    #[error(
        "the API client may not read these security configurations (HTTP 403: {detail}); give \
         it the \"Manage SIEM\" role and enable SIEM in each configuration ({config_ids})"
    )]
    Forbidden { detail: String, config_ids: String },
    #[error(
        "unknown security configuration id in config_id {config_ids} (HTTP 404: {detail}); check config_id"
    )]
    UnknownConfig { detail: String, config_ids: String },
    #[error("the API refused the request's parameters (HTTP 400: {detail})")]
    BadRequest { detail: String },
    #[error(
        "the API refused the request's timestamp (HTTP 400: {detail}); this machine's clock is \
         off by more than 30 seconds: synchronise it (NTP)"
    )]
    InvalidTimestamp { detail: String },
    #[error("the offset expired (HTTP 416: {detail})")]
    OffsetExpired { detail: String },
    #[error(
        "rate limited by the API (HTTP 429: {detail}); every client of the account shares this limit"
    )]
    RateLimited {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Akamai's API gateway blocks bursts from one client with a 400 (API doc §4): transient.
    #[error(
        "the API gateway is blocking a burst of requests from this client (HTTP 400: {detail}); \
         every client of the account shares this limit"
    )]
    BurstBlocked {
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("the API failed (HTTP {status}: {detail})")]
    Server { status: u16, detail: String },
    #[error("unexpected HTTP {status} from the API: {detail}")]
    Unexpected { status: u16, detail: String },
    #[error("network error talking to {host}: {message}")]
    Network { host: String, message: String },
    /// The server's certificate cannot be verified: no retry makes it valid.
    #[error(
        "cannot verify the TLS certificate of {host}: {message}; if a proxy intercepts TLS, set \
         ca_file to its CA certificate in PEM; otherwise check host"
    )]
    Certificate { host: String, message: String },
    #[error(
        "the response ended without its closing context line after {events} events (cut by the \
         API, a proxy or the network); the page is fetched again"
    )]
    Truncated { events: u64 },
    /// Offsets expired again and again within one run (recovery by time each time).
    #[error(
        "gave up after {recoveries} time-based recoveries in one run (offsets keep expiring); \
         the next run continues from the checkpoint"
    )]
    OffsetsKeepExpiring { recoveries: u32 },
    #[error("the response is not what the API sends: {0}")]
    Malformed(String),
    #[error("cannot set up HTTPS: {0}")]
    Setup(String),
}

impl ApiError {
    /// Worth another try within the run's retry budget.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. }
                | ApiError::BurstBlocked { .. }
                | ApiError::Server { .. }
                | ApiError::Network { .. }
                | ApiError::Truncated { .. }
                | ApiError::InvalidTimestamp { .. }
        )
    }

    /// The API refused the config ids themselves (no SIEM access, or unknown): with several ids
    /// in the request, one of them may be the cause. The HTTP status and the API's words.
    pub fn config_refusal(&self) -> Option<(u16, &str)> {
        match self {
            ApiError::Forbidden { detail, .. } => Some((403, detail)),
            ApiError::UnknownConfig { detail, .. } => Some((404, detail)),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. }
            | ApiError::BurstBlocked { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Cheap to clone: the HTTP client, its connection pool and its runtime are shared.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Drives the connection, on whichever thread waits for it (the request, then the response
    /// reader). Blocking reqwest would run it on a thread of its own and hand every chunk of a
    /// page across (a wake-up per 16 KiB: a tenth of the tool's CPU on a large page); here the
    /// thread that reads the body also reads the socket.
    runtime: Arc<tokio::runtime::Runtime>,
    signer: Signer,
    host: String,
    config_ids: String,
}

/// An open 200 response, read as a byte stream.
pub struct PageBody {
    response: reqwest::Response,
    runtime: Arc<tokio::runtime::Runtime>,
    /// What the last chunk had left after filling the caller's buffer.
    pending: hyper::body::Bytes,
    /// A read failed after it had filled part of a buffer: reported by the next read.
    failed: Option<std::io::Error>,
    ended: bool,
    host: String,
}

impl Read for PageBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        self.fill(buf.len(), |piece| {
            buf[filled..filled + piece.len()].copy_from_slice(piece);
            filled += piece.len();
        })
    }
}

impl PageBody {
    pub fn network_error(&self, error: &std::io::Error) -> ApiError {
        ApiError::Network {
            host: self.host.clone(),
            message: describe_io(error),
        }
    }

    /// Append up to `room` bytes of the body to `out`, as [`Read::read`] would read them, but
    /// into the vector's spare capacity: nothing is zeroed first. 0 at the end of the body.
    pub fn read_append(&mut self, out: &mut Vec<u8>, room: usize) -> std::io::Result<usize> {
        self.fill(room, |piece| out.extend_from_slice(piece))
    }

    /// Hand `take` up to `room` bytes from as many chunks as are already there: wait for the
    /// first, then take only what arrived meanwhile, so a trickling page is not held back.
    fn fill(&mut self, room: usize, mut take: impl FnMut(&[u8])) -> std::io::Result<usize> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let runtime = Arc::clone(&self.runtime);
        runtime.block_on(async {
            let mut filled = 0;
            while filled < room {
                if self.pending.is_empty() {
                    if self.ended {
                        break;
                    }
                    let next = if filled == 0 {
                        self.response.chunk().await
                    } else {
                        // Let the connection read what the socket holds, then take it only if
                        // it is there; dropping an unfinished chunk() loses nothing.
                        tokio::task::yield_now().await;
                        let chunk = std::pin::pin!(self.response.chunk());
                        match poll_once(chunk).await {
                            Some(next) => next,
                            None => break,
                        }
                    };
                    match next {
                        Ok(Some(chunk)) => self.pending = chunk,
                        Ok(None) => self.ended = true,
                        Err(error) => {
                            let error = std::io::Error::other(error);
                            if filled == 0 {
                                return Err(error);
                            }
                            self.failed = Some(error);
                            break;
                        }
                    }
                    continue;
                }
                let n = self.pending.len().min(room - filled);
                take(&self.pending.split_to(n));
                filled += n;
            }
            Ok(filled)
        })
    }
}

/// The future's output if it is ready at its first poll.
async fn poll_once<F: Future>(mut future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// ring is the TLS crypto provider of this binary; install it before any TLS object exists.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    pub fn new(settings: &ApiSettings) -> Result<Client, ApiError> {
        install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ApiError::Setup(format!("cannot start the HTTP client's runtime: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            // Each wait (headers, then every read): an idle timeout, so a long page is not cut
            // while data still flows.
            .read_timeout(settings.read_timeout)
            .user_agent(concat!("akamai-siem/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .gzip(true);
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                ApiError::Setup(format!("cannot read ca_file {}: {e}", path.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ApiError::Setup(format!(
                    "ca_file {} holds no usable PEM certificate: {e}",
                    path.display()
                ))
            })?;
            if certificates.is_empty() {
                return Err(ApiError::Setup(format!(
                    "ca_file {} holds no PEM certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certificates);
        }
        // The connector and its pool look for the runtime they are built in.
        let http = {
            let _context = runtime.enter();
            builder.build()
        }
        .map_err(|e| ApiError::Setup(error_chain(&e)))?;
        let signer = Signer::new(Credentials {
            client_token: settings.client_token.clone(),
            client_secret: settings.client_secret.clone(),
            access_token: settings.access_token.clone(),
        })
        .with_max_body(settings.max_body)
        .with_headers_to_sign(settings.headers_to_sign.clone());
        Ok(Client {
            http,
            runtime: Arc::new(runtime),
            signer,
            host: settings.host.clone(),
            config_ids: settings.config_ids.to_string(),
        })
    }

    /// The same API client asking for another set of config ids (`1;2`): a set with an id the
    /// API refuses is refused as a whole, so the others are asked for without it.
    pub fn for_config_ids(&self, config_ids: &str) -> Client {
        Client {
            config_ids: config_ids.to_string(),
            ..self.clone()
        }
    }

    pub fn config_ids(&self) -> &str {
        &self.config_ids
    }

    pub fn path_and_query(&self, request: &Request) -> String {
        let query = match &request.query {
            Query::Offset(offset) => format!(
                "offset={}&limit={}",
                utf8_percent_encode(offset, QUERY_VALUE),
                request.limit
            ),
            Query::Time { from, to: Some(to) } => {
                format!("from={from}&to={to}&limit={}", request.limit)
            }
            Query::Time { from, to: None } => format!("from={from}&limit={}", request.limit),
        };
        format!("/siem/v1/configs/{}?{query}", self.config_ids)
    }

    /// Send one request, signed afresh (every retry gets a new timestamp and nonce).
    pub fn open_page(&self, request: &Request) -> Result<PageBody, ApiError> {
        let url_text = format!("https://{}{}", self.host, self.path_and_query(request));
        let url = reqwest::Url::parse(&url_text).map_err(|e| {
            ApiError::Setup(format!(
                "cannot build the request URL for host {}: {e}",
                self.host
            ))
        })?;
        let authorization = self.sign(&url);
        let request = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::AUTHORIZATION, authorization);
        let response = self
            .runtime
            .block_on(async { request.send().await })
            .map_err(|e| self.network_error(&e))?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(self.body(response));
        }
        Err(self.error_from(status, response))
    }

    /// A response's body as a byte stream, read on the calling thread.
    fn body(&self, response: reqwest::Response) -> PageBody {
        PageBody {
            response,
            runtime: Arc::clone(&self.runtime),
            pending: hyper::body::Bytes::new(),
            failed: None,
            ended: false,
            host: self.host.clone(),
        }
    }

    /// Sign exactly what goes on the wire: the URL as reqwest will send it (its host drops a
    /// default `:443`, its target keeps our escapes).
    fn sign(&self, url: &reqwest::Url) -> String {
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        self.signer.authorization_now(&RequestParts {
            method: "GET",
            host: &host,
            path_and_query: &target,
            headers: &[],
            body: &[],
        })
    }

    fn error_from(&self, status: u16, response: reqwest::Response) -> ApiError {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        let _ = self
            .body(response)
            .take(MAX_ERROR_BODY)
            .read_to_end(&mut body);
        let problem = Problem::parse(&body);
        let detail = problem.summary();
        let config_ids = self.config_ids.clone();
        match status {
            400 if problem.is_invalid_timestamp() => ApiError::InvalidTimestamp { detail },
            400 if problem.is_burst_block() => ApiError::BurstBlocked {
                detail,
                retry_after,
            },
            400 => ApiError::BadRequest { detail },
            401 => ApiError::Unauthorized { detail },
            403 => ApiError::Forbidden { detail, config_ids },
            404 => ApiError::UnknownConfig { detail, config_ids },
            416 => ApiError::OffsetExpired { detail },
            429 => ApiError::RateLimited {
                detail,
                retry_after,
            },
            500..=599 => ApiError::Server { status, detail },
            _ => ApiError::Unexpected { status, detail },
        }
    }

    fn network_error(&self, error: &reqwest::Error) -> ApiError {
        let mut message = error_chain(error);
        if let Some(problem) = certificate_problem(error) {
            return ApiError::Certificate {
                host: self.host.clone(),
                message: problem,
            };
        }
        if error.is_timeout() {
            message.push_str(" (raise read_timeout or connect_timeout if the network is slow)");
        }
        ApiError::Network {
            host: self.host.clone(),
            message,
        }
    }
}

/// An `application/problem+json` body, leniently: gateways sometimes answer with HTML.
#[derive(Debug, Default, PartialEq, Eq)]
struct Problem {
    kind: String,
    title: String,
    detail: String,
}

impl Problem {
    fn parse(body: &[u8]) -> Problem {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body)
        else {
            let text = String::from_utf8_lossy(body);
            return Problem {
                detail: shorten(text.trim()),
                ..Problem::default()
            };
        };
        let text = |key: &str| {
            map.get(key)
                .and_then(|v| v.as_str())
                .map(shorten)
                .unwrap_or_default()
        };
        Problem {
            kind: text("type"),
            title: text("title"),
            detail: text("detail"),
        }
    }

    fn is_invalid_timestamp(&self) -> bool {
        self.kind.ends_with("/-/pep-authn/request-error")
            || self.detail.eq_ignore_ascii_case("invalid timestamp")
    }

    /// A gateway WAF rule like `IPBLOCK-BURST…` denying the client for sending too fast.
    fn is_burst_block(&self) -> bool {
        [&self.detail, &self.title]
            .iter()
            .any(|text| text.to_ascii_uppercase().contains("IPBLOCK-BURST"))
    }

    fn summary(&self) -> String {
        if self.detail.is_empty() {
            if self.title.is_empty() {
                "no details given".to_string()
            } else {
                self.title.clone()
            }
        } else if self.title.is_empty() || self.detail.contains(&self.title) {
            self.detail.clone()
        } else {
            format!("{}: {}", self.title, self.detail)
        }
    }
}

/// Server text goes into our messages: bound it.
fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() <= MAX {
        return text.to_string();
    }
    let short: String = text.chars().take(MAX).collect();
    format!("{short}…")
}

pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The certificate verdict of rustls somewhere in the error's chain (reqwest → hyper → io →
/// rustls), as text; `None` for every other failure.
pub(crate) fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        // An io::Error's source() skips the error it wraps, and rustls's sits right there.
        let inner = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(current), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>()
                && matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                )
            {
                return Some(tls.to_string());
            }
        }
        cause = inner.or_else(|| current.source());
    }
    None
}

fn describe_io(error: &std::io::Error) -> String {
    match error.get_ref() {
        Some(inner) => error_chain(inner),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_details_are_summarised() {
        let problem = Problem::parse(
            br#"{"type":"https://problems.luna.akamaiapis.net/siem/v1/offset-too-old","title":"Expired offset","detail":"Expired offset parameter in the request","instance":"x"}"#,
        );
        // The title repeats the detail's start: said once.
        assert_eq!(problem.summary(), "Expired offset parameter in the request");
        let both = Problem::parse(br#"{"title":"Bad Request","detail":"from is too old"}"#);
        assert_eq!(both.summary(), "Bad Request: from is too old");
        let html = Problem::parse(b"<html>Bad gateway</html>");
        assert_eq!(html.summary(), "<html>Bad gateway</html>");
        assert_eq!(Problem::parse(b"").summary(), "no details given");
    }

    #[test]
    fn invalid_timestamp_is_recognised_by_type_or_detail() {
        let by_type = Problem::parse(
            br#"{"type":"https://problems.luna.akamaiapis.net/-/pep-authn/request-error","detail":"Invalid timestamp"}"#,
        );
        assert!(by_type.is_invalid_timestamp());
        let other = Problem::parse(
            br#"{"type":"https://problems.luna.akamaiapis.net/siem/v1/missing-parameters","detail":"from is too old"}"#,
        );
        assert!(!other.is_invalid_timestamp());
    }

    #[test]
    fn a_gateway_burst_block_is_recognised_and_transient() {
        let gateway = Problem::parse(
            br#"{"type":"https://problems.luna.akamaiapis.net/-/waf/deny","title":"Forbidden","detail":"WAF deny rule IPBLOCK-BURST4-54013"}"#,
        );
        assert!(gateway.is_burst_block());
        assert!(!Problem::parse(br#"{"detail":"from is too old"}"#).is_burst_block());
        let error = ApiError::BurstBlocked {
            detail: gateway.summary(),
            retry_after: None,
        };
        assert!(error.is_transient());
    }

    #[test]
    fn long_server_text_is_bounded() {
        let long = "x".repeat(1000);
        assert_eq!(shorten(&long).chars().count(), 301);
    }

    #[test]
    fn offsets_are_escaped_in_the_query() {
        let encoded = utf8_percent_encode("71cca;3phZ-m_E.d~+/=", QUERY_VALUE).to_string();
        assert_eq!(encoded, "71cca%3B3phZ-m_E.d~%2B%2F%3D");
    }
}
