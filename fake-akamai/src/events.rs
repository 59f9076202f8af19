//! Events built from plaintext and encoded the way Akamai encodes them (API doc §6.1), plus the
//! oracle: the same plaintext in the decoded form a correct client must produce, computed without
//! decoding anything.
//!
//! Each variant is rendered once into a template; only an event's id, start time, config id and
//! client IP are spliced in per event, so serving 600,000 events costs little more than copying.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSize {
    /// About 2 KB, as real events with full headers.
    Realistic,
    /// A few hundred bytes, for fast tests.
    Small,
}

const RULE_FIELDS: [&str; 7] = [
    "rules",
    "ruleVersions",
    "ruleMessages",
    "ruleTags",
    "ruleData",
    "ruleSelectors",
    "ruleActions",
];

/// One kind of event, in plaintext.
struct Variant {
    policy_id: &'static str,
    applied_action: &'static str,
    ipv6: bool,
    /// The seven rule lists, in `RULE_FIELDS` order; elements are bytes (may not be UTF-8).
    rule_lists: [Vec<Vec<u8>>; 7],
    extra_attack: Vec<(&'static str, &'static str)>,
    method: &'static str,
    host: &'static str,
    path: Cow<'static, str>,
    query: Cow<'static, str>,
    status: &'static str,
    request_headers: Vec<(String, String)>,
    response_headers: Vec<(String, String)>,
    geo: [&'static str; 5],
    sections: Vec<(&'static str, Vec<(&'static str, &'static str)>)>,
    custom: Option<Custom>,
    unknown: Option<(&'static str, &'static str)>,
    fractional_start: bool,
}

impl Variant {
    /// What most variants share; each variant sets what makes it what it is.
    fn base(size: EventSize, host: &'static str) -> Variant {
        Variant {
            policy_id: "",
            applied_action: "",
            ipv6: false,
            rule_lists: Default::default(),
            extra_attack: vec![],
            method: "GET",
            host,
            path: "/".into(),
            query: "".into(),
            status: "200",
            request_headers: request_headers(host, size, &[]),
            response_headers: response_headers(size, &[]),
            geo: ["", "", "", "", ""],
            sections: vec![],
            custom: None,
            unknown: None,
            fractional_start: false,
        }
    }
}

enum Custom {
    Text(Vec<Vec<u8>>),
    Object(Vec<(&'static str, Vec<Vec<u8>>)>),
}

fn texts(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn headers(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

fn request_headers(host: &str, size: EventSize, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list = vec![("Host".to_string(), host.to_string())];
    if size == EventSize::Realistic {
        list.extend(headers(&[
            ("User-Agent", USER_AGENT),
            ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
            ("Accept-Language", "en-US,en;q=0.9,de;q=0.8"),
            ("Accept-Encoding", "gzip, deflate, br"),
            ("Referer", "https://www.example.com/search?q=summer+sale&page=2"),
            ("Cookie", "session=ab12%2Fcd; theme=dark; _ga=GA1.2.1234567890.1700000000; consent=analytics%3Dyes"),
            ("X-Forwarded-For", "192.0.2.10, 198.51.100.7"),
            ("Sec-Fetch-Mode", "navigate"),
        ]));
    }
    list.extend(headers(extra));
    list
}

fn response_headers(size: EventSize, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list = headers(&[("Content-Type", "text/html; charset=utf-8")]);
    if size == EventSize::Realistic {
        list.extend(headers(&[
            ("Server", "AkamaiGHost"),
            ("Content-Length", "342"),
            ("Cache-Control", "max-age=0, no-cache, no-store"),
            ("Date", "Fri, 14 Mar 2025 10:00:05 GMT"),
            ("Set-Cookie", "ak_bmsc=7F3A9C~000000000000000000000000000000~YAAQx+9nY2sZ=; Domain=.example.com; Path=/; HttpOnly"),
            ("Set-Cookie", "bm_sv=D41D8CD98F00B204E9800998ECF8427E~YAAQ; Max-Age=7200; Path=/"),
        ]));
    }
    list.extend(headers(extra));
    list
}

fn variants(size: EventSize) -> Vec<Variant> {
    let geo_de = ["EU", "DE", "FRANKFURT", "HE", "64500"];
    let geo_us = ["NA", "US", "ASHBURN", "VA", "64496"];
    let geo_sg = ["AS", "SG", "SINGAPORE", "", "64511"];
    vec![
        // SQL injection, denied; + in base64, trailing empty selector.
        Variant {
            policy_id: "shop_88112",
            applied_action: "deny",
            rule_lists: [
                texts(&["3000100", "3000108", "SQL-INJECTION-ANOMALY"]),
                texts(&["2", "1", "1"]),
                texts(&[
                    "SQL Injection Attack (Common Injection Testing Detected)",
                    "SQL Injection Attack (SQL Operator Detected)",
                    "Anomaly Score Exceeded for SQL Injection",
                ]),
                texts(&[
                    "ASE/WEB_ATTACK/SQLI",
                    "ASE/WEB_ATTACK/SQLI",
                    "AKAMAI/POLICY/SQL_INJECTION_ANOMALY",
                ]),
                texts(&[
                    "' union select null,version()>?--",
                    "title>cnbc",
                    "Vector Score: 15, DENY threshold: 10",
                ]),
                texts(&["ARGS:id", "ARGS:q", ""]),
                texts(&["alert", "alert", "deny"]),
            ],
            extra_attack: vec![("clientReputation", "ID=@@IP@@;WEBATCK=8;DOSATCK=3")],
            path: "/catalog/item".into(),
            query: "id=1%27%20union%20select%20null,version()%3E%3F--&sort=price+asc".into(),
            status: "403",
            geo: geo_de,
            sections: vec![(
                "identity",
                vec![("ja4", "t13d1516h2_8daaf6152771_02713d6af862")],
            )],
            ..Variant::base(size, "shop.example.com")
        },
        // Cross-site scripting, alerted; IPv6, repeated Set-Cookie, custom as text.
        Variant {
            policy_id: "www_1001",
            applied_action: "alert",
            ipv6: true,
            rule_lists: [
                texts(&["941100", "941160"]),
                texts(&["3", "3"]),
                texts(&[
                    "XSS Attack Detected via libinjection",
                    "NoScript XSS InjectionChecker: HTML Injection",
                ]),
                texts(&["ASE/WEB_ATTACK/XSS", "ASE/WEB_ATTACK/XSS"]),
                texts(&["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]),
                texts(&["ARGS:comment", "ARGS:comment"]),
                texts(&["alert", "alert"]),
            ],
            method: "POST",
            path: "/blog/comments".into(),
            status: "200",
            request_headers: request_headers(
                "www.example.com",
                size,
                &[("Content-Type", "application/x-www-form-urlencoded")],
            ),
            response_headers: response_headers(size, &[("Set-Cookie", "xss_seen=1; Path=/")]),
            geo: geo_us,
            custom: Some(Custom::Text(texts(&["shop-frontend"]))),
            fractional_start: true,
            ..Variant::base(size, "www.example.com")
        },
        // Command injection, denied; binary (non-UTF-8) ruleData, U+2028 in a plain field.
        Variant {
            policy_id: "api_2002",
            applied_action: "deny",
            rule_lists: [
                texts(&["932100", "CMD-INJECTION-ANOMALY"]),
                texts(&["4", "1"]),
                texts(&[
                    "Remote Command Execution: Unix Command Injection",
                    "Anomaly Score Exceeded for Command Injection",
                ]),
                texts(&["ASE/WEB_ATTACK/CMDI", "AKAMAI/POLICY/CMD_INJECTION_ANOMALY"]),
                vec![
                    b";cat /etc/passwd".to_vec(),
                    vec![0xff, 0xfe, b'<', b'x', 0x80],
                ],
                texts(&["ARGS:host", "ARGS:host"]),
                texts(&["alert", "deny"]),
            ],
            extra_attack: vec![("apiId", "api-4411"), ("apiKey", "key-77")],
            path: "/v1/ping".into(),
            query: "host=127.0.0.1%3Bcat%20%2Fetc%2Fpasswd".into(),
            status: "403",
            geo: ["EU", "FR", "PARIS\u{2028}LA DÉFENSE", "IDF", "64501"],
            ..Variant::base(size, "api.example.com")
        },
        // Local file inclusion, monitored; invalid %zz escape in the path, + in the query.
        Variant {
            policy_id: "files_3003",
            applied_action: "monitor",
            rule_lists: [
                texts(&["930100"]),
                texts(&["2"]),
                texts(&["Path Traversal Attack (/../)"]),
                texts(&["ASE/WEB_ATTACK/LFI"]),
                texts(&["../../etc/passwd"]),
                texts(&["REQUEST_FILENAME"]),
                texts(&["monitor"]),
            ],
            path: "/download/..%2f..%2fetc%2fpasswd%zz".into(),
            query: "name=a+b&dir=..%2Fetc".into(),
            status: "404",
            geo: geo_us,
            ..Variant::base(size, "files.example.com")
        },
        // Remote file inclusion, denied; ragged lists and empty elements.
        Variant {
            policy_id: "files_3003",
            applied_action: "deny",
            rule_lists: [
                texts(&["931100", "931110", "RFI-ANOMALY"]),
                texts(&[""]),
                texts(&[
                    "Remote File Inclusion Attack (RFI): URL Parameter using IP Address",
                    "",
                    "RFI anomaly",
                ]),
                texts(&["ASE/WEB_ATTACK/RFI", "ASE/WEB_ATTACK/RFI"]),
                texts(&["http://203.0.113.9/shell.txt"]),
                texts(&["ARGS:file", "", ""]),
                texts(&["alert", "alert", "deny"]),
            ],
            path: "/index.php".into(),
            query: "file=http%3A%2F%2F203.0.113.9%2Fshell.txt%3F".into(),
            status: "403",
            geo: geo_sg,
            ..Variant::base(size, "files.example.com")
        },
        // Protocol anomaly, alerted; a query that would not decode to UTF-8.
        Variant {
            policy_id: "www_1001",
            applied_action: "alert",
            rule_lists: [
                texts(&["920270"]),
                texts(&["1"]),
                texts(&["Invalid character in request (null character)"]),
                texts(&["ASE/PROTOCOL_VIOLATION/INVALID_CHARACTERS"]),
                texts(&["x=%ff%fe"]),
                texts(&["ARGS:x"]),
                texts(&["alert"]),
            ],
            path: "/search".into(),
            query: "x=%ff%fe%3Cscript%3E".into(),
            status: "400",
            request_headers: request_headers(
                "www.example.com",
                size,
                &[("X-Odd", "100% sure; a=b")],
            ),
            geo: geo_de,
            fractional_start: true,
            ..Variant::base(size, "www.example.com")
        },
        // Bot Manager: a scraper, denied by its bot score.
        Variant {
            policy_id: "shop_88112",
            applied_action: "deny",
            ipv6: true,
            rule_lists: [
                texts(&["3990007", "3990011"]),
                texts(&["", ""]),
                texts(&["Headless Browser Detected", "Web Scraper Detected"]),
                texts(&["BOT/DETECTION", "BOT/CATEGORY/WEB_SCRAPER"]),
                texts(&["", ""]),
                texts(&["REQUEST_HEADERS:User-Agent", ""]),
                texts(&["deny", "deny"]),
            ],
            path: "/products/".into(),
            status: "403",
            geo: geo_us,
            sections: vec![
                (
                    "botData",
                    vec![("botScore", "97"), ("responseSegment", "4")],
                ),
                ("clientData", vec![("telemetryType", "0")]),
            ],
            ..Variant::base(size, "shop.example.com")
        },
        // Account Protector: a high-risk login, alerted.
        Variant {
            policy_id: "acct_40213",
            applied_action: "alert",
            rule_lists: [
                texts(&["AP_HIGH_RISK"]),
                texts(&["1"]),
                texts(&["Account Protector: high risk login"]),
                texts(&["AKAMAI/ACCOUNT_PROTECTOR/HIGH_RISK"]),
                texts(&["user=jürgen@example.com"]),
                texts(&["REQUEST_BODY"]),
                texts(&["alert"]),
            ],
            method: "POST",
            path: "/api/v2/login".into(),
            query: "redirect=%2Faccount%3Ftab%3Dorders".into(),
            status: "200",
            request_headers: request_headers(
                "login.example.com",
                size,
                &[("Content-Type", "application/json")],
            ),
            geo: geo_sg,
            sections: vec![(
                "userRiskData",
                vec![
                    ("uuid", "6c0f3e1a-94b2-4c55-9a0e-2f1d7b8e4c11"),
                    ("status", "0"),
                    ("score", "91"),
                    ("risk", "udfp:9f3b2c71/H|ugp:SG/H"),
                    ("trust", ""),
                    ("general", "duc_1h:7|duc_1d:19"),
                    ("allow", "0"),
                    ("username", "jurgen"),
                    ("originUserId", "u-100234"),
                ],
            )],
            ..Variant::base(size, "login.example.com")
        },
        // Rate control and slow POST, denied.
        Variant {
            policy_id: "acct_40213",
            applied_action: "deny",
            rule_lists: [
                texts(&["CTL_RATE_LOGIN"]),
                texts(&["1"]),
                texts(&["Login rate exceeded: 20 requests per 5 seconds"]),
                texts(&["AKAMAI/POLICY/RATE_CONTROL"]),
                texts(&["user=admin"]),
                texts(&["REQUEST_BODY"]),
                texts(&["deny"]),
            ],
            extra_attack: vec![("slowPostAction", "A"), ("slowPostRate", "12")],
            method: "POST",
            path: "/api/v2/login".into(),
            status: "429",
            response_headers: response_headers(size, &[("Retry-After", "5")]),
            geo: geo_de,
            ..Variant::base(size, "login.example.com")
        },
        // Custom rule with custom data as an object, and a field the schema does not know.
        Variant {
            policy_id: "www_1001",
            applied_action: "monitor",
            rule_lists: [
                texts(&["CUSTOM_700001"]),
                texts(&["1"]),
                texts(&["Custom rule: admin path from outside the office"]),
                texts(&["CUSTOM/ADMIN_ACCESS"]),
                texts(&["/admin"]),
                texts(&["REQUEST_FILENAME"]),
                texts(&["monitor"]),
            ],
            path: "/admin".into(),
            status: "200",
            geo: geo_us,
            custom: Some(Custom::Object(vec![
                ("tenant", texts(&["blue", "green"])),
                ("origin", texts(&["dc-1"])),
            ])),
            unknown: Some(("newTopLevelField", "kept as it is")),
            fractional_start: true,
            ..Variant::base(size, "www.example.com")
        },
    ]
}

/// Akamai's encoding of a rule list: base64 each element, join with `;`, percent-encode with
/// lower-case hex (`=`, `;`, `/` escaped, `+` left as it is).
pub fn encode_rule_list(elements: &[Vec<u8>]) -> String {
    let joined: Vec<String> = elements.iter().map(|e| STANDARD.encode(e)).collect();
    escape(&joined.join(";"), |b| matches!(b, b'=' | b';' | b'/'))
}

/// Akamai's encoding of a header block: `Name: value\r\n` lines, percent-encoded once (so a `%`
/// in a value arrives as `%25`), `+` left as it is.
pub fn encode_headers(lines: &[(String, String)]) -> String {
    let block: String = lines
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    escape(&block, |b| {
        !(b.is_ascii_alphanumeric() || b"-_.!*'()+,".contains(&b))
    })
}

fn escape(text: &str, needs_escape: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for &byte in text.as_bytes() {
        if needs_escape(byte) {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push(byte as char);
        }
    }
    out
}

/// Decoding `path`/`query` once, as a client should (the oracle's own, separate implementation):
/// an escape whose byte is not part of valid UTF-8 stays as written; true when one did.
fn readable(raw: &str) -> (String, bool) {
    let bytes = raw.as_bytes();
    // Each decoded byte with the escape it came from.
    let mut out: Vec<(u8, Option<&str>)> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push(((h * 16 + l) as u8, Some(&raw[i..i + 3])));
            i += 3;
            continue;
        }
        out.push((bytes[i], None));
        i += 1;
    }
    let decoded: Vec<u8> = out.iter().map(|(b, _)| *b).collect();
    let (mut text, mut kept, mut at) = (String::new(), false, 0);
    while at < decoded.len() {
        match std::str::from_utf8(&decoded[at..]) {
            Ok(rest) => {
                text.push_str(rest);
                break;
            }
            Err(error) => {
                let valid = at + error.valid_up_to();
                text.push_str(std::str::from_utf8(&decoded[at..valid]).unwrap());
                let bad = error.error_len().unwrap_or(decoded.len() - valid);
                for (_, escape) in &out[valid..valid + bad] {
                    text.push_str(escape.expect("only escaped bytes can be invalid"));
                }
                kept = true;
                at = valid + bad;
            }
        }
    }
    (text, kept)
}

/// Per-event values spliced into a template.
#[derive(Debug, Clone)]
pub struct Dynamic {
    pub id: u64,
    pub start: String,
    pub config_id: u64,
    pub client_ip: String,
}

pub const ID: &str = "@@ID@@";
const START: &str = "@@START@@";
const CONFIG: &str = "@@CFG@@";
const IP: &str = "@@IP@@";

enum Part {
    Literal(Vec<u8>),
    Id,
    Start,
    Config,
    Ip,
}

pub struct Generator {
    templates: Vec<Vec<Part>>,
    variants: Vec<Variant>,
}

impl Generator {
    pub fn new(size: EventSize) -> Generator {
        let variants = variants(size);
        let templates = variants
            .iter()
            .map(|v| split_template(&render(v)))
            .collect();
        Generator {
            templates,
            variants,
        }
    }

    #[cfg(test)]
    pub fn variant_count(&self) -> usize {
        self.variants.len()
    }

    pub fn dynamic(&self, id: u64, stored_at: f64, config_id: u64) -> Dynamic {
        let variant = &self.variants[(id % self.variants.len() as u64) as usize];
        let lag = (id % 5) as f64;
        let start = if variant.fractional_start {
            format!("{:.3}", (stored_at - lag - 0.25).max(0.0))
        } else {
            format!("{}", (stored_at - lag).floor().max(0.0) as u64)
        };
        let client_ip = if variant.ipv6 {
            format!("2001:db8:{:x}::{:x}", (id / 7) % 0xffff, id % 251 + 1)
        } else {
            format!("198.51.{}.{}", (id / 7) % 100, id % 251 + 1)
        };
        Dynamic {
            id,
            start,
            config_id,
            client_ip,
        }
    }

    /// Append the raw API line of one event (no newline).
    pub fn write(&self, dynamic: &Dynamic, out: &mut Vec<u8>) {
        let template = &self.templates[(dynamic.id % self.templates.len() as u64) as usize];
        for part in template {
            match part {
                Part::Literal(bytes) => out.extend_from_slice(bytes),
                Part::Id => out.extend_from_slice(format!("{:016x}", dynamic.id).as_bytes()),
                Part::Start => out.extend_from_slice(dynamic.start.as_bytes()),
                Part::Config => out.extend_from_slice(dynamic.config_id.to_string().as_bytes()),
                Part::Ip => out.extend_from_slice(dynamic.client_ip.as_bytes()),
            }
        }
    }

    /// What a correct client makes of the event: computed from the plaintext.
    pub fn expected_decoded(&self, dynamic: &Dynamic) -> Value {
        let variant = &self.variants[(dynamic.id % self.variants.len() as u64) as usize];
        let mut text = render_decoded(variant).to_string();
        for (placeholder, value) in [
            (ID, format!("{:016x}", dynamic.id)),
            (START, dynamic.start.clone()),
            (CONFIG, dynamic.config_id.to_string()),
            (IP, dynamic.client_ip.clone()),
        ] {
            text = text.replace(placeholder, &value);
        }
        serde_json::from_str(&text).expect("the oracle renders valid JSON")
    }

    /// A one-off event of about `approx_bytes`, with huge headers, ruleData and query.
    pub fn write_large(&self, dynamic: &Dynamic, approx_bytes: usize, out: &mut Vec<u8>) {
        let variant = large_variant(approx_bytes);
        let template = split_template(&render(&variant));
        for part in &template {
            match part {
                Part::Literal(bytes) => out.extend_from_slice(bytes),
                Part::Id => out.extend_from_slice(format!("{:016x}", dynamic.id).as_bytes()),
                Part::Start => out.extend_from_slice(dynamic.start.as_bytes()),
                Part::Config => out.extend_from_slice(dynamic.config_id.to_string().as_bytes()),
                Part::Ip => out.extend_from_slice(dynamic.client_ip.as_bytes()),
            }
        }
    }
}

fn large_variant(approx_bytes: usize) -> Variant {
    let mut variant = variants(EventSize::Realistic).remove(0);
    let chunk = approx_bytes / 6;
    let filler = |tag: &str| -> String {
        (0..)
            .map(|i| format!("{tag}{i:06}-"))
            .take_while({
                let mut len = 0;
                move |s: &String| {
                    len += s.len();
                    len < chunk
                }
            })
            .collect()
    };
    let cookie = filler("c");
    variant.query = format!("q={}", filler("q")).into();
    variant.rule_lists[4] = vec![filler("d").into_bytes(), filler("e").into_bytes()];
    for i in 0..3 {
        variant
            .request_headers
            .push((format!("X-Large-{i}"), filler("h")));
    }
    variant.request_headers.push(("Cookie".into(), cookie));
    variant
}

fn split_template(text: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("@@") {
        let (literal, tail) = rest.split_at(at);
        let (part, marker) = if tail.starts_with(ID) {
            (Part::Id, ID)
        } else if tail.starts_with(START) {
            (Part::Start, START)
        } else if tail.starts_with(CONFIG) {
            (Part::Config, CONFIG)
        } else if tail.starts_with(IP) {
            (Part::Ip, IP)
        } else {
            panic!("unknown placeholder at {tail:.20}");
        };
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.as_bytes().to_vec()));
        }
        parts.push(part);
        rest = &tail[marker.len()..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.as_bytes().to_vec()));
    }
    parts
}

fn strings(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

/// Writes keys in the order given (serde_json's Map would sort them).
fn object(fields: Vec<(&str, String)>) -> String {
    let inner: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("{}:{v}", Value::String(k.into())))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// The raw API line of a variant, with placeholders.
fn render(v: &Variant) -> String {
    let mut attack = vec![
        ("configId", string(CONFIG)),
        ("policyId", string(v.policy_id)),
        ("clientIP", string(IP)),
        ("appliedAction", string(v.applied_action)),
    ];
    for (name, value) in &v.extra_attack {
        attack.push((name, string(value)));
    }
    for (name, list) in RULE_FIELDS.iter().zip(&v.rule_lists) {
        attack.push((name, string(&encode_rule_list(list))));
    }
    let http = vec![
        ("requestId", string(ID)),
        ("start", string(START)),
        ("protocol", string("HTTP/1.1")),
        ("tls", string("tls1.3")),
        ("method", string(v.method)),
        ("host", string(v.host)),
        ("port", string("443")),
        ("path", string(&v.path)),
        ("query", string(&v.query)),
        (
            "requestHeaders",
            string(&encode_headers(&v.request_headers)),
        ),
        ("status", string(v.status)),
        ("bytes", string("342")),
        (
            "responseHeaders",
            string(&encode_headers(&v.response_headers)),
        ),
    ];
    let mut top = vec![
        ("type", string("akamai_siem")),
        ("format", string("json")),
        ("version", string("1.0")),
        ("attackData", object(attack)),
        ("httpMessage", object(http)),
        ("geo", geo(v)),
    ];
    for (name, fields) in &v.sections {
        top.push((name, Value::Object(strings(fields)).to_string()));
    }
    match &v.custom {
        Some(Custom::Text(list)) => top.push(("custom", string(&encode_rule_list(list)))),
        Some(Custom::Object(entries)) => top.push((
            "custom",
            object(
                entries
                    .iter()
                    .map(|(k, list)| (*k, string(&encode_rule_list(list))))
                    .collect(),
            ),
        )),
        None => {}
    }
    if let Some((name, value)) = v.unknown {
        top.push((name, string(value)));
    }
    object(top)
}

fn geo(v: &Variant) -> String {
    let names = ["continent", "country", "city", "regionCode", "asn"];
    object(
        names
            .iter()
            .zip(v.geo)
            .map(|(n, g)| (*n, string(g)))
            .collect(),
    )
}

/// The decoded elements; one that is not UTF-8 is kept lossily and listed as `<path>[<index>]`.
fn lossy_list(list: &[Vec<u8>], path: &str, errors: &mut Vec<Value>) -> Vec<Value> {
    list.iter()
        .enumerate()
        .map(|(index, e)| {
            if std::str::from_utf8(e).is_err() {
                errors.push(json!(format!("{path}[{index}]")));
            }
            Value::String(String::from_utf8_lossy(e).into_owned())
        })
        .collect()
}

/// The decoded form of a variant, with placeholders.
fn render_decoded(v: &Variant) -> Value {
    let longest = v.rule_lists.iter().map(Vec::len).max().unwrap_or(0);
    let mut errors = Vec::new();
    let mut attack = Map::new();
    attack.insert("configId".into(), json!(CONFIG));
    attack.insert("policyId".into(), json!(v.policy_id));
    attack.insert("clientIP".into(), json!(IP));
    attack.insert("appliedAction".into(), json!(v.applied_action));
    for (name, value) in &v.extra_attack {
        attack.insert(name.to_string(), json!(value));
    }
    for (name, list) in RULE_FIELDS.iter().zip(&v.rule_lists) {
        let mut values = lossy_list(list, &format!("attackData.{name}"), &mut errors);
        values.resize(longest, json!(""));
        attack.insert(name.to_string(), Value::Array(values));
    }
    let header_lines = |list: &[(String, String)]| -> Value {
        list.iter()
            .map(|(n, value)| json!(format!("{n}: {value}")))
            .collect()
    };
    let (path, path_kept) = readable(&v.path);
    let (query, query_kept) = readable(&v.query);
    for (name, kept) in [("path", path_kept), ("query", query_kept)] {
        if kept {
            errors.push(json!(format!("httpMessage.{name}")));
        }
    }
    let http = json!({
        "requestId": ID, "start": START, "protocol": "HTTP/1.1", "tls": "tls1.3",
        "method": v.method, "host": v.host, "port": "443",
        "path": path, "query": query,
        "requestHeaders": header_lines(&v.request_headers),
        "status": v.status, "bytes": "342",
        "responseHeaders": header_lines(&v.response_headers),
    });
    let names = ["continent", "country", "city", "regionCode", "asn"];
    let geo: Map<String, Value> = names
        .iter()
        .zip(v.geo)
        .map(|(n, g)| (n.to_string(), json!(g)))
        .collect();
    let mut top = Map::new();
    top.insert("type".into(), json!("akamai_siem"));
    top.insert("format".into(), json!("json"));
    top.insert("version".into(), json!("1.0"));
    top.insert("attackData".into(), Value::Object(attack));
    top.insert("httpMessage".into(), http);
    top.insert("geo".into(), Value::Object(geo));
    for (name, fields) in &v.sections {
        top.insert(name.to_string(), Value::Object(strings(fields)));
    }
    match &v.custom {
        Some(Custom::Text(list)) => {
            let values = lossy_list(list, "custom", &mut errors);
            top.insert("custom".into(), Value::Array(values));
        }
        Some(Custom::Object(entries)) => {
            let map = entries
                .iter()
                .map(|(k, list)| {
                    let values = lossy_list(list, &format!("custom.{k}"), &mut errors);
                    (k.to_string(), Value::Array(values))
                })
                .collect();
            top.insert("custom".into(), Value::Object(map));
        }
        None => {}
    }
    if let Some((name, value)) = v.unknown {
        top.insert(name.into(), json!(value));
    }
    if !errors.is_empty() {
        top.insert("decodeErrors".into(), Value::Array(errors));
    }
    Value::Object(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_the_shared_sample() {
        // Fields of ../shared/samples/siem_response.ndjson, event 1 and 2.
        assert_eq!(
            encode_rule_list(&texts(&["alert", "alert", "deny"])),
            "YWxlcnQ%3d%3bYWxlcnQ%3d%3bZGVueQ%3d%3d"
        );
        assert_eq!(
            encode_rule_list(&texts(&["ARGS:id", "ARGS:id", ""])),
            "QVJHUzppZA%3d%3d%3bQVJHUzppZA%3d%3d%3b"
        );
        assert_eq!(
            encode_rule_list(&texts(&["1 union select password from users where id>?"])),
            "MSB1bmlvbiBzZWxlY3QgcGFzc3dvcmQgZnJvbSB1c2VycyB3aGVyZSBpZD4%2f"
        );
        assert_eq!(
            encode_headers(&headers(&[
                (
                    "Accept",
                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
                ),
                ("Cookie", "session=ab12%2Fcd; theme=dark"),
            ])),
            "Accept%3a%20text%2fhtml,application%2fxhtml+xml,application%2fxml%3bq%3d0.9,*%2f*%3bq%3d0.8%0d%0aCookie%3a%20session%3dab12%252Fcd%3b%20theme%3ddark%0d%0a"
        );
        assert_eq!(
            encode_headers(&headers(&[(
                "Set-Cookie",
                "ak_bmsc=7F3A9C~000000000000000000000000000000~YAAQx+9nY2sZ=; Domain=.example.com; Path=/; HttpOnly"
            )])),
            "Set-Cookie%3a%20ak_bmsc%3d7F3A9C%7e000000000000000000000000000000%7eYAAQx+9nY2sZ%3d%3b%20Domain%3d.example.com%3b%20Path%3d%2f%3b%20HttpOnly%0d%0a"
        );
    }

    #[test]
    fn oracle_decodes_path_and_query_once_and_keeps_non_utf8_escapes() {
        assert_eq!(
            readable("id=1%27%20union%20select%20null,version()%3E%3F--&sort=price+asc"),
            (
                "id=1' union select null,version()>?--&sort=price+asc".into(),
                false
            )
        );
        assert_eq!(readable("/a%2fb%zz%"), ("/a/b%zz%".into(), false));
        assert_eq!(readable("x=%ff%fe%3C"), ("x=%ff%fe<".into(), true));
        assert_eq!(readable("caf%c3%a9%E9"), ("café%E9".into(), true));
    }

    #[test]
    fn every_variant_renders_valid_json_with_its_placeholders_spliced() {
        for size in [EventSize::Realistic, EventSize::Small] {
            let generator = Generator::new(size);
            let mut total = 0;
            for id in 0..generator.variant_count() as u64 * 2 {
                let dynamic = generator.dynamic(id, 1_700_000_000.5, 12345);
                let mut line = Vec::new();
                generator.write(&dynamic, &mut line);
                total += line.len();
                let text = String::from_utf8(line).unwrap();
                assert!(!text.contains("@@"), "{text}");
                assert!(!text.contains('\n'));
                let parsed: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(parsed["httpMessage"]["requestId"], format!("{id:016x}"));
                let expected = generator.expected_decoded(&dynamic);
                assert_eq!(
                    expected["attackData"]["clientIP"],
                    parsed["attackData"]["clientIP"]
                );
            }
            let average = total / (generator.variant_count() * 2);
            match size {
                EventSize::Realistic => assert!((1500..3000).contains(&average), "{average}"),
                EventSize::Small => assert!(average < 1500, "{average}"),
            }
        }
    }

    #[test]
    fn a_large_event_is_large_and_valid() {
        let generator = Generator::new(EventSize::Realistic);
        let mut line = Vec::new();
        generator.write_large(
            &generator.dynamic(5, 1_700_000_000.0, 1),
            250_000,
            &mut line,
        );
        assert!(line.len() > 200_000, "{}", line.len());
        serde_json::from_slice::<Value>(&line).unwrap();
    }
}
