//! Akamai EdgeGrid request signing, EG1-HMAC-SHA256 (API doc §1).
//!
//! Complete as the official client libraries implement it (signed headers and the body hash
//! included), because their test vectors test both; the SIEM GET uses neither. Pure: the time
//! and nonce are parameters, and only [`Signer::authorization_now`] reads the clock.

use crate::config::secret::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

/// The official libraries' default for how much of a POST body is hashed.
pub const DEFAULT_MAX_BODY: usize = 131_072;

#[derive(Clone)]
pub struct Credentials {
    pub client_token: String,
    pub client_secret: Secret,
    pub access_token: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

/// One request as it goes on the wire.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// As sent, with `:port` when there is one; signed in lower case.
    pub host: &'a str,
    /// Exactly the bytes of the request target: path, `?`, query, escapes as sent.
    pub path_and_query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

#[derive(Clone)]
pub struct Signer {
    credentials: Credentials,
    max_body: usize,
    headers_to_sign: Vec<String>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("credentials", &self.credentials)
            .field("max_body", &self.max_body)
            .field("headers_to_sign", &self.headers_to_sign)
            .finish()
    }
}

impl Signer {
    pub fn new(credentials: Credentials) -> Signer {
        Signer {
            credentials,
            max_body: DEFAULT_MAX_BODY,
            headers_to_sign: Vec::new(),
        }
    }

    pub fn with_max_body(mut self, max_body: usize) -> Signer {
        self.max_body = max_body;
        self
    }

    pub fn with_headers_to_sign(mut self, names: Vec<String>) -> Signer {
        self.headers_to_sign = names;
        self
    }

    /// The `Authorization` header value for a given timestamp and nonce.
    pub fn authorization(
        &self,
        request: &RequestParts<'_>,
        timestamp: &str,
        nonce: &str,
    ) -> String {
        let prefix = auth_prefix(&self.credentials, timestamp, nonce);
        let data = data_to_sign(
            request,
            &prefix,
            &canonical_headers(request.headers, &self.headers_to_sign),
            &content_hash(request.method, request.body, self.max_body),
        );
        let key = signing_key(self.credentials.client_secret.expose(), timestamp);
        format!(
            "{prefix}signature={}",
            hmac_base64(key.as_bytes(), data.as_bytes())
        )
    }

    /// Signed now, with a fresh nonce: every request and every retry must be signed afresh.
    pub fn authorization_now(&self, request: &RequestParts<'_>) -> String {
        let timestamp = format_timestamp(jiff::Timestamp::now());
        let nonce = uuid::Uuid::new_v4().to_string();
        self.authorization(request, &timestamp, &nonce)
    }
}

fn auth_prefix(credentials: &Credentials, timestamp: &str, nonce: &str) -> String {
    format!(
        "EG1-HMAC-SHA256 client_token={};access_token={};timestamp={timestamp};nonce={nonce};",
        credentials.client_token,
        credentials.access_token.expose()
    )
}

/// `20250314T10:00:05+0000`.
pub fn format_timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y%m%dT%H:%M:%S+0000").to_string()
}

/// The per-request key: HMAC of the timestamp under the client secret as written (never
/// base64-decoded), itself base64-encoded. Its base64 *text* keys the signature.
pub fn signing_key(client_secret: &str, timestamp: &str) -> String {
    hmac_base64(client_secret.as_bytes(), timestamp.as_bytes())
}

/// Only a POST with a body is hashed, and only its first `max_body` bytes.
pub fn content_hash(method: &str, body: &[u8], max_body: usize) -> String {
    if !method.eq_ignore_ascii_case("POST") || body.is_empty() {
        return String::new();
    }
    let hashed = &body[..body.len().min(max_body)];
    STANDARD.encode(Sha256::digest(hashed))
}

/// The configured headers present in the request, in configuration order, as
/// `name:value` with the value trimmed and inner whitespace runs folded to one space.
pub fn canonical_headers(headers: &[(&str, &str)], headers_to_sign: &[String]) -> String {
    let mut parts = Vec::new();
    for wanted in headers_to_sign {
        if let Some((_, value)) = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
        {
            let folded = value.split_whitespace().collect::<Vec<_>>().join(" ");
            parts.push(format!("{}:{folded}", wanted.to_ascii_lowercase()));
        }
    }
    parts.join("\t")
}

/// The tab-joined string that is signed.
pub fn data_to_sign(
    request: &RequestParts<'_>,
    auth_prefix: &str,
    canonical_headers: &str,
    content_hash: &str,
) -> String {
    [
        request.method.to_ascii_uppercase().as_str(),
        "https",
        request.host.to_ascii_lowercase().as_str(),
        request.path_and_query,
        canonical_headers,
        content_hash,
        auth_prefix,
    ]
    .join("\t")
}

fn hmac_base64(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(Credentials {
            client_token: "akab-client-token-xxx-xxxxxxxxxxxxxxxx".into(),
            client_secret: Secret::new("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx="),
            access_token: Secret::new("akab-access-token-xxx-xxxxxxxxxxxxxxxx"),
        })
    }

    const HOST: &str = "akaa-baseurl-xxxxxxxxxxx-xxxxxxxxxxxxx.luna.akamaiapis.net";

    #[test]
    fn timestamp_format() {
        let t = jiff::Timestamp::from_second(1_741_946_405).unwrap();
        assert_eq!(format_timestamp(t), "20250314T10:00:05+0000");
    }

    #[test]
    fn canonical_headers_fold_whitespace_and_follow_configuration_order() {
        let headers = [
            ("X-Test2", " t2 "),
            ("x-test1", "a   b\t c"),
            ("X-Extra", "no"),
        ];
        let wanted = vec![
            "X-Test1".to_string(),
            "X-Test2".to_string(),
            "X-Test3".to_string(),
        ];
        assert_eq!(
            canonical_headers(&headers, &wanted),
            "x-test1:a b c\tx-test2:t2"
        );
    }

    #[test]
    fn only_post_bodies_are_hashed_up_to_max_body() {
        assert_eq!(content_hash("GET", b"data", 10), "");
        assert_eq!(content_hash("POST", b"", 10), "");
        assert_eq!(content_hash("PUT", b"data", 10), "");
        assert_eq!(
            content_hash("POST", b"abcdef", 3),
            content_hash("POST", b"abc", 10)
        );
        assert_ne!(
            content_hash("POST", b"abcdef", 4),
            content_hash("POST", b"abc", 10)
        );
    }

    #[test]
    fn the_host_is_signed_in_lower_case() {
        let lower = RequestParts {
            method: "GET",
            host: "example.net:8443",
            path_and_query: "/",
            headers: &[],
            body: &[],
        };
        let upper = RequestParts {
            host: "EXAMPLE.net:8443",
            ..lower
        };
        assert_eq!(
            signer().authorization(&lower, "20140321T19:34:21+0000", "n"),
            signer().authorization(&upper, "20140321T19:34:21+0000", "n")
        );
    }

    #[test]
    fn every_signature_is_fresh() {
        let request = RequestParts {
            method: "GET",
            host: HOST,
            path_and_query: "/siem/v1/configs/1?offset=a&limit=1",
            headers: &[],
            body: &[],
        };
        let first = signer().authorization_now(&request);
        let second = signer().authorization_now(&request);
        let nonce = |auth: &str| {
            auth.split(';')
                .find_map(|part| part.strip_prefix("nonce="))
                .unwrap()
                .to_string()
        };
        assert_ne!(nonce(&first), nonce(&second));
        let parsed = uuid::Uuid::parse_str(&nonce(&first)).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn debug_output_never_shows_credentials() {
        let text = format!("{:?}", signer());
        assert!(!text.contains("xxxxxxxxxxxx"), "{text}");
        assert!(!text.contains("akab-"), "{text}");
    }
}
