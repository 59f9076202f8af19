//! Checking EdgeGrid signatures the way the API's gateway does. Written independently of the
//! akamai-siem crate's signer on purpose: two implementations that agree (and both pass the
//! official vectors) are evidence; one reused would only agree with itself.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

#[derive(Debug, Clone)]
pub struct Credentials {
    pub client_token: String,
    pub client_secret: String,
    pub access_token: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted {
        nonce: String,
    },
    /// 401: wrong tokens, bad signature, malformed header.
    Denied(String),
    /// 400 "Invalid timestamp": outside the allowed clock skew.
    InvalidTimestamp,
}

pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub target: &'a str,
    pub authorization: Option<&'a str>,
}

pub fn verify(
    credentials: &Credentials,
    request: &Request<'_>,
    server_now: i64,
    max_skew: i64,
) -> Verdict {
    let Some(header) = request.authorization else {
        return Verdict::Denied("Missing Authorization header".into());
    };
    let Some(fields) = header.strip_prefix("EG1-HMAC-SHA256 ") else {
        return Verdict::Denied("Unsupported authorization scheme".into());
    };
    let Some(signature_at) = fields.find("signature=") else {
        return Verdict::Denied("Missing signature".into());
    };
    let unsigned = &header[..header.len() - fields.len() + signature_at];
    let field = |name: &str| {
        fields[..signature_at]
            .split(';')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let (Some(client_token), Some(access_token), Some(timestamp), Some(nonce)) = (
        field("client_token"),
        field("access_token"),
        field("timestamp"),
        field("nonce"),
    ) else {
        return Verdict::Denied("Malformed authorization header".into());
    };
    if client_token != credentials.client_token || access_token != credentials.access_token {
        return Verdict::Denied("Invalid client token or access token".into());
    }
    let Some(signed_at) = parse_timestamp(timestamp) else {
        return Verdict::Denied("Malformed timestamp".into());
    };
    if (server_now - signed_at).abs() > max_skew {
        return Verdict::InvalidTimestamp;
    }
    let data = [
        request.method,
        "https",
        &request.host.to_ascii_lowercase(),
        request.target,
        "",
        "",
        unsigned,
    ]
    .join("\t");
    let key = hmac(credentials.client_secret.as_bytes(), timestamp.as_bytes());
    let expected = hmac(key.as_bytes(), data.as_bytes());
    if expected != fields[signature_at + "signature=".len()..] {
        return Verdict::Denied("The signature does not match".into());
    }
    Verdict::Accepted {
        nonce: nonce.to_string(),
    }
}

fn hmac(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `20231114T22:18:20+0000` → Unix seconds.
fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.strip_suffix("+0000")?;
    let time = jiff::civil::DateTime::strptime("%Y%m%dT%H:%M:%S", text).ok()?;
    Some(
        time.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Akamai's SIEM-shaped vectors (signed by edgegrid-python) must verify here.
    #[test]
    fn accepts_the_derived_siem_vectors() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/edgegrid-vectors/derived_siem_cases.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("notice: {} not found; skipping", path.display());
            return;
        };
        let data: serde_json::Value = serde_json::from_str(&text).unwrap();
        let credentials = Credentials {
            client_token: data["client_token"].as_str().unwrap().into(),
            client_secret: data["client_secret"].as_str().unwrap().into(),
            access_token: data["access_token"].as_str().unwrap().into(),
        };
        let signed_at = parse_timestamp(data["timestamp"].as_str().unwrap()).unwrap();
        let mut checked = 0;
        for case in data["tests"].as_array().unwrap() {
            let url = case["request"]["url"].as_str().unwrap();
            let rest = url.strip_prefix("https://").unwrap();
            let slash = rest.find('/').unwrap();
            let request = Request {
                method: "GET",
                host: &rest[..slash],
                target: &rest[slash..],
                authorization: case["expectedAuthorization"].as_str(),
            };
            assert!(
                matches!(
                    verify(&credentials, &request, signed_at, 30),
                    Verdict::Accepted { .. }
                ),
                "{url}"
            );
            let tampered = Request {
                target: "/siem/v1/configs/99999?from=1",
                ..request
            };
            assert!(matches!(
                verify(&credentials, &tampered, signed_at, 30),
                Verdict::Denied(_)
            ));
            assert_eq!(
                verify(&credentials, &request, signed_at + 31, 30),
                Verdict::InvalidTimestamp
            );
            checked += 1;
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn timestamps_parse_as_utc() {
        assert_eq!(
            parse_timestamp("20250314T10:00:05+0000"),
            Some(1_741_946_405)
        );
        assert_eq!(parse_timestamp("20250314T10:00:05+0100"), None);
    }
}
