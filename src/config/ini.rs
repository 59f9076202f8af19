//! A small INI reader that accepts both file styles this tool meets.
//!
//! - The Python wodle's `akamai_config.ini`, written for `configparser`: `key = value` or
//!   `key: value`, full-line `#`/`;` comments, indented continuation lines, a `[DEFAULT]`
//!   section whose keys every section inherits, and duplicate keys or sections are errors
//!   (except for the few keys that are lists, such as `http_header`: each line adds one).
//! - Akamai's `.edgerc`, as the official SDKs read it: values may be quoted (`"..."` or `'...'`
//!   with backslash escapes, so `;` may appear inside), ` ;`/` #` start an inline comment, and
//!   keys may be spelt with dashes (`client-secret`, `max-body`).
//!
//! Every value remembers its line so that errors can name the exact place to fix.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniValue {
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct Ini {
    /// Section name as written → keys (normalised: lower case, `-` → `_`).
    sections: BTreeMap<String, BTreeMap<String, IniValue>>,
    defaults: BTreeMap<String, IniValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSyntaxError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for IniSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for IniSyntaxError {}

/// The section `configparser` treats as defaults for all others.
const DEFAULT_SECTION: &str = "DEFAULT";

impl Ini {
    pub fn parse(text: &str) -> Result<Ini, IniSyntaxError> {
        let mut ini = Ini::default();
        // (section, key) of the last key line, for continuation lines.
        let mut current_section: Option<String> = None;
        let mut last_key: Option<String> = None;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);

        for (index, raw_line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = raw_line.trim_end_matches('\r');
            let trimmed = line.trim();
            if trimmed.is_empty() {
                last_key = None;
                continue;
            }
            if trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let error = |message: String| IniSyntaxError {
                line: line_number,
                message,
            };

            let indented = line.starts_with([' ', '\t']);
            if indented && let (Some(section), Some(key)) = (&current_section, &last_key) {
                let value = strip_inline_comment(trimmed);
                let entry = ini
                    .section_mut(section)
                    .get_mut(key)
                    .expect("continuation follows a key line of this section");
                entry.value.push('\n');
                entry.value.push_str(value);
                continue;
            }

            if let Some(rest) = trimmed.strip_prefix('[') {
                let Some(end) = rest.find(']') else {
                    return Err(error(format!(
                        "section header `{trimmed}` has no closing `]`"
                    )));
                };
                let name = rest[..end].trim();
                let after = rest[end + 1..].trim();
                if !(after.is_empty() || after.starts_with(';') || after.starts_with('#')) {
                    return Err(error(format!(
                        "unexpected text `{after}` after section header `[{name}]`"
                    )));
                }
                if name.is_empty() {
                    return Err(error("empty section name `[]`".to_string()));
                }
                if name != DEFAULT_SECTION && ini.sections.contains_key(name) {
                    return Err(error(format!("section [{name}] appears twice")));
                }
                if name != DEFAULT_SECTION {
                    ini.sections.insert(name.to_string(), BTreeMap::new());
                }
                current_section = Some(name.to_string());
                last_key = None;
                continue;
            }

            let Some(section) = current_section.clone() else {
                return Err(error(
                    "a key appears before any [section] header (add e.g. [default] above it)"
                        .to_string(),
                ));
            };
            let Some(split) = trimmed.find(['=', ':']) else {
                return Err(error(format!(
                    "expected `key = value`, found `{}`",
                    redact_line(trimmed)
                )));
            };
            let key = normalise_key(&trimmed[..split]);
            if key.is_empty() {
                return Err(error("a line starts with `=` but names no key".to_string()));
            }
            let value = parse_value(trimmed[split + 1..].trim())
                .map_err(|message| error(format!("key `{key}`: {message}")))?;
            let entries = ini.section_mut(&section);
            if let Some(previous) = entries.get_mut(&key) {
                if super::REPEATABLE.contains(&key.as_str()) {
                    // One value per line, as continuation lines give them.
                    previous.value.push('\n');
                    previous.value.push_str(&value);
                    last_key = Some(key);
                    continue;
                }
                return Err(error(format!(
                    "key `{key}` appears twice in [{section}] (first on line {})",
                    previous.line
                )));
            }
            entries.insert(
                key.clone(),
                IniValue {
                    value,
                    line: line_number,
                },
            );
            last_key = Some(key);
        }
        Ok(ini)
    }

    fn section_mut(&mut self, name: &str) -> &mut BTreeMap<String, IniValue> {
        if name == DEFAULT_SECTION {
            &mut self.defaults
        } else {
            self.sections.entry(name.to_string()).or_default()
        }
    }

    pub fn has_section(&self, name: &str) -> bool {
        self.sections.contains_key(name)
    }

    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    /// A key of `section`, falling back to `[DEFAULT]` as configparser does.
    pub fn get(&self, section: &str, key: &str) -> Option<&IniValue> {
        self.sections
            .get(section)
            .and_then(|keys| keys.get(key))
            .or_else(|| self.defaults.get(key))
    }

    /// All keys visible in `section` (its own and inherited defaults).
    pub fn keys(&self, section: &str) -> Vec<&str> {
        let mut keys: Vec<&str> = self.defaults.keys().map(String::as_str).collect();
        if let Some(own) = self.sections.get(section) {
            keys.extend(own.keys().map(String::as_str));
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// `Client-Secret` and `client_secret` are the same key: the SDKs accept both spellings.
fn normalise_key(raw: &str) -> String {
    raw.trim().to_ascii_lowercase().replace('-', "_")
}

fn parse_value(raw: &str) -> Result<String, String> {
    match raw.chars().next() {
        Some(quote @ ('"' | '\'')) => parse_quoted(raw, quote),
        _ => Ok(strip_inline_comment(raw).to_string()),
    }
}

/// `"client;secret" ; comment` → `client;secret`.
fn parse_quoted(raw: &str, quote: char) -> Result<String, String> {
    let mut value = String::new();
    let mut chars = raw.char_indices().skip(1);
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => return Err("value ends with a lone backslash".to_string()),
            },
            c if c == quote => {
                let rest = raw[index + c.len_utf8()..].trim();
                if rest.is_empty() || rest.starts_with(';') || rest.starts_with('#') {
                    return Ok(value);
                }
                return Err(format!(
                    "unexpected text after the closing {quote}: remove it or quote the whole value"
                ));
            }
            c => value.push(c),
        }
    }
    Err(format!(
        "the value opens a {quote} quote that is never closed"
    ))
}

/// Inline comments need whitespace before `;`/`#`, so `a;b` stays one value.
fn strip_inline_comment(raw: &str) -> &str {
    let bytes = raw.as_bytes();
    for (index, &byte) in bytes.iter().enumerate() {
        if (byte == b';' || byte == b'#') && index > 0 && bytes[index - 1].is_ascii_whitespace() {
            return raw[..index].trim_end();
        }
    }
    raw.trim_end()
}

/// A malformed line may hold a secret: show only its start.
fn redact_line(line: &str) -> String {
    let shown: String = line.chars().take(12).collect();
    if shown.len() < line.len() {
        format!("{shown}…")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(ini: &'a Ini, section: &str, key: &str) -> Option<&'a str> {
        ini.get(section, key).map(|v| v.value.as_str())
    }

    #[test]
    fn reads_the_python_wodle_config() {
        let ini = Ini::parse(
            "[default]\nhost = akab-abc.luna.akamaiapis.net\nconfig_id = 1234;5678\n\
             client_token: akab-ct\nclient_secret = c2VjcmV0+/=\naccess_token = akab-at\n",
        )
        .unwrap();
        assert_eq!(
            value(&ini, "default", "host"),
            Some("akab-abc.luna.akamaiapis.net")
        );
        assert_eq!(value(&ini, "default", "config_id"), Some("1234;5678"));
        assert_eq!(value(&ini, "default", "client_token"), Some("akab-ct"));
        assert_eq!(value(&ini, "default", "client_secret"), Some("c2VjcmV0+/="));
        assert_eq!(ini.get("default", "access_token").unwrap().line, 6);
    }

    #[test]
    fn quoted_values_keep_semicolons_and_drop_comments() {
        let ini = Ini::parse(
            "; comment\n[comment-test] ; comment\nhost = \"example.net\" ; comment\n\
             client_secret = \"client;secret\" ; comment\n\
             other = 'The \"most\" \\'interesting\\' ; value' ; comment\nplain = a;b ; c\n",
        )
        .unwrap();
        assert_eq!(value(&ini, "comment-test", "host"), Some("example.net"));
        assert_eq!(
            value(&ini, "comment-test", "client_secret"),
            Some("client;secret")
        );
        assert_eq!(
            value(&ini, "comment-test", "other"),
            Some("The \"most\" 'interesting' ; value")
        );
        assert_eq!(value(&ini, "comment-test", "plain"), Some("a;b"));
    }

    #[test]
    fn dashed_keys_are_the_same_as_underscored() {
        let ini = Ini::parse("[dashes]\nClient-Secret = x\nmax-body = 131072\n").unwrap();
        assert_eq!(value(&ini, "dashes", "client_secret"), Some("x"));
        assert_eq!(value(&ini, "dashes", "max_body"), Some("131072"));
    }

    #[test]
    fn default_section_is_inherited() {
        let ini = Ini::parse("[DEFAULT]\nlimit = 5\n[a]\nhost = h\n[b]\nlimit = 6\n").unwrap();
        assert_eq!(value(&ini, "a", "limit"), Some("5"));
        assert_eq!(value(&ini, "b", "limit"), Some("6"));
        assert!(!ini.has_section("DEFAULT"));
        assert_eq!(ini.keys("a"), vec!["host", "limit"]);
    }

    #[test]
    fn continuation_lines_extend_the_previous_value() {
        let ini = Ini::parse("[a]\nheaders_to_sign = X-One\n  X-Two\nnext = 1\n").unwrap();
        assert_eq!(value(&ini, "a", "headers_to_sign"), Some("X-One\nX-Two"));
        assert_eq!(value(&ini, "a", "next"), Some("1"));
    }

    #[test]
    fn errors_name_the_line() {
        let duplicate = Ini::parse("[a]\nhost = x\n\nhost = y\n").unwrap_err();
        assert_eq!(duplicate.line, 4);
        assert!(duplicate.message.contains("first on line 2"), "{duplicate}");

        let orphan = Ini::parse("host = x\n").unwrap_err();
        assert_eq!(orphan.line, 1);

        let unclosed = Ini::parse("[a]\nclient_secret = \"abc\n").unwrap_err();
        assert_eq!(unclosed.line, 2);
        assert!(unclosed.message.contains("never closed"));

        let twice = Ini::parse("[a]\n[a]\n").unwrap_err();
        assert_eq!(twice.line, 2);
    }

    #[test]
    fn a_repeatable_key_collects_one_value_per_line() {
        let ini = Ini::parse(
            "[a]\nhttp_header = X-One: 1\nhost = h\nhttp_header = X-Two: 2\n  X-Three: 3\n",
        )
        .unwrap();
        assert_eq!(
            value(&ini, "a", "http_header"),
            Some("X-One: 1\nX-Two: 2\nX-Three: 3")
        );
        assert_eq!(ini.get("a", "http_header").unwrap().line, 2);
        // Any other key still may not be given twice.
        assert!(Ini::parse("[a]\nhttp_format = ndjson\nhttp_format = splunk-hec\n").is_err());
    }

    #[test]
    fn a_malformed_line_is_not_echoed_in_full() {
        let error = Ini::parse("[a]\nsecretvalue1234567890abcdef\n").unwrap_err();
        assert!(!error.message.contains("1234567890abcdef"), "{error}");
    }

    #[test]
    fn colon_in_a_value_is_kept_when_equals_comes_first() {
        let ini = Ini::parse("[a]\nhost = 127.0.0.1:8443\n").unwrap();
        assert_eq!(value(&ini, "a", "host"), Some("127.0.0.1:8443"));
    }

    #[test]
    fn byte_order_mark_and_crlf_are_tolerated() {
        let ini = Ini::parse("\u{feff}[a]\r\nhost = h\r\n").unwrap();
        assert_eq!(value(&ini, "a", "host"), Some("h"));
    }
}
