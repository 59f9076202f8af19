//! Checking a push's credentials: a header token and/or Basic authentication, compared in
//! constant time, and the failures counted per address for the summary.

use crate::config::PushAuth;
use base64::Engine as _;
use hyper::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// Equal in constant time, whatever the lengths: both sides are hashed first, so neither the
/// position of the first difference nor the expected length shows in the timing.
fn same(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    given.ct_eq(&expected).into()
}

pub struct Authenticator {
    header: Option<(hyper::header::HeaderName, Vec<u8>)>,
    /// `user:password`, as Basic carries it once base64-decoded.
    basic: Option<Vec<u8>>,
}

impl Authenticator {
    pub fn new(auth: &PushAuth) -> Authenticator {
        Authenticator {
            header: auth.header.as_ref().map(|(name, token)| {
                (
                    hyper::header::HeaderName::from_bytes(name.as_bytes())
                        .expect("validated as a header name"),
                    token.expose().as_bytes().to_vec(),
                )
            }),
            basic: auth
                .basic
                .as_ref()
                .map(|(user, password)| format!("{user}:{}", password.expose()).into_bytes()),
        }
    }

    pub fn uses_basic(&self) -> bool {
        self.basic.is_some()
    }

    /// Every configured check must pass. Both are evaluated, so the timing does not say which
    /// one failed.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let header_ok = match &self.header {
            None => true,
            Some((name, expected)) => {
                let given = headers.get(name).map_or(&[][..], |v| v.as_bytes());
                let once = headers.get_all(name).iter().count() == 1;
                same(given, expected) & once
            }
        };
        let basic_ok = match &self.basic {
            None => true,
            Some(expected) => {
                let given = headers
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| basic_credentials(v.as_bytes()))
                    .unwrap_or_default();
                same(&given, expected)
            }
        };
        header_ok & basic_ok
    }
}

/// `Basic dXNlcjpwYXNz` → `user:pass`.
fn basic_credentials(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
}

/// Failed authentications per client address since the last summary. Bounded: a scan from many
/// addresses cannot grow it without limit (the total still counts them all).
#[derive(Default)]
pub struct Failures {
    by_address: Mutex<HashMap<IpAddr, u64>>,
}

const MAX_ADDRESSES: usize = 1024;

impl Failures {
    /// Count one; true for the first failure of this address in the period (worth a line).
    pub fn record(&self, address: IpAddr) -> bool {
        let mut map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&address) {
            *count += 1;
            return false;
        }
        if map.len() < MAX_ADDRESSES {
            map.insert(address, 1);
        }
        true
    }

    /// The period's counts, most failures first; the map starts afresh.
    pub fn take(&self) -> Vec<(IpAddr, u64)> {
        let mut map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts: Vec<(IpAddr, u64)> = map.drain().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_header_token_must_match_exactly_and_once() {
        let auth = Authenticator::new(&PushAuth {
            header: Some(("X-Token".into(), Secret::new("s3cret"))),
            basic: None,
        });
        assert!(auth.allows(&headers(&[("x-token", "s3cret")])));
        assert!(!auth.allows(&headers(&[("x-token", "s3cre")])));
        assert!(!auth.allows(&headers(&[("x-token", "s3cret ")])));
        assert!(!auth.allows(&headers(&[])));
        assert!(!auth.allows(&headers(&[("x-token", "s3cret"), ("x-token", "other")])));
    }

    #[test]
    fn basic_needs_both_user_and_password() {
        let auth = Authenticator::new(&PushAuth {
            header: None,
            basic: Some(("akamai".into(), Secret::new("pa:ss"))),
        });
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let with = |v: String| headers(&[("authorization", &v)]);
        assert!(auth.allows(&with(format!("Basic {}", encode("akamai:pa:ss")))));
        assert!(auth.allows(&with(format!("basic {}", encode("akamai:pa:ss")))));
        assert!(!auth.allows(&with(format!("Basic {}", encode("akamai:pa")))));
        assert!(!auth.allows(&with(format!("Basic {}", encode("other:pa:ss")))));
        assert!(!auth.allows(&with(format!("Bearer {}", encode("akamai:pa:ss")))));
        assert!(!auth.allows(&with("Basic !!!".into())));
    }

    #[test]
    fn both_checks_must_pass_when_both_are_set() {
        let auth = Authenticator::new(&PushAuth {
            header: Some(("X-Token".into(), Secret::new("t"))),
            basic: Some(("u".into(), Secret::new("p"))),
        });
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:p")
        );
        assert!(auth.allows(&headers(&[("x-token", "t"), ("authorization", &basic)])));
        assert!(!auth.allows(&headers(&[("authorization", &basic)])));
        assert!(!auth.allows(&headers(&[("x-token", "t")])));
    }

    #[test]
    fn failures_are_counted_per_address_and_bounded() {
        let failures = Failures::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(failures.record(a));
        assert!(!failures.record(a));
        for i in 0..2000u32 {
            failures.record(IpAddr::from(i.to_be_bytes()));
        }
        let counts = failures.take();
        assert_eq!(counts[0], (a, 2));
        assert_eq!(counts.len(), MAX_ADDRESSES);
        assert!(failures.take().is_empty());
    }
}
