//! A pushed body, from the bytes received to NDJSON lines for the pipeline: decompressed when it
//! is gzip (by `Content-Encoding` or by its magic bytes), within the size limit once
//! decompressed too (a small bomb cannot fill memory), and a JSON array turned into one line
//! per element.

use flate2::read::MultiGzDecoder;
use serde_json::value::RawValue;
use std::io::Read;

/// Why a body is refused; each maps to one status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// 415: an encoding other than gzip.
    #[error("unsupported Content-Encoding `{0}` (only gzip or none)")]
    Encoding(String),
    /// 400: not gzip although it says so, or not JSON.
    #[error("{0}")]
    Malformed(String),
    /// 413: larger than max_body_bytes once decompressed.
    #[error("larger than max_body_bytes ({limit} bytes) once decompressed")]
    TooLarge { limit: u64 },
}

impl Refused {
    pub fn status(&self) -> u16 {
        match self {
            Refused::Encoding(_) => 415,
            Refused::Malformed(_) => 400,
            Refused::TooLarge { .. } => 413,
        }
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// Whether the `Content-Encoding` header asks for gzip; `Err` for any other coding.
pub fn gzip_declared(content_encoding: Option<&[u8]>) -> Result<bool, Refused> {
    let Some(value) = content_encoding else {
        return Ok(false);
    };
    let text = String::from_utf8_lossy(value);
    let mut gzip = false;
    for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match coding.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" if !gzip => gzip = true,
            "identity" => {}
            _ => return Err(Refused::Encoding(text.chars().take(64).collect())),
        }
    }
    Ok(gzip)
}

/// The body as NDJSON, every line ending in `\n`.
pub fn to_lines(received: &[u8], gzip_declared: bool, limit: u64) -> Result<Vec<u8>, Refused> {
    // A decompressed body is used as it is; a plain one is copied once.
    let mut text = if gzip_declared || received.starts_with(GZIP_MAGIC) {
        gunzip(received, limit)?
    } else {
        received.to_vec()
    };
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    if text[start..].starts_with(b"[") {
        return array_lines(&text[start..]);
    }
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    Ok(text)
}

fn gunzip(received: &[u8], limit: u64) -> Result<Vec<u8>, Refused> {
    if !received.starts_with(GZIP_MAGIC) {
        return Err(Refused::Malformed(
            "Content-Encoding says gzip, but the body is not gzip".into(),
        ));
    }
    let mut out = Vec::with_capacity(received.len().saturating_mul(4).min(limit as usize));
    MultiGzDecoder::new(received)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Refused::Malformed(format!("the gzip body does not decompress: {e}")))?;
    if out.len() as u64 > limit {
        return Err(Refused::TooLarge { limit });
    }
    Ok(out)
}

/// One line per element, with its bytes as sent (the identity hash and the raw format are over
/// them). Line breaks between an element's tokens become spaces: JSON strings cannot hold raw
/// line breaks, so this changes no value, and each element stays one line.
fn array_lines(text: &[u8]) -> Result<Vec<u8>, Refused> {
    let elements: Vec<&RawValue> = serde_json::from_slice(text).map_err(|e| {
        Refused::Malformed(format!("the body is a JSON array that does not parse: {e}"))
    })?;
    let mut lines = Vec::with_capacity(text.len() + 1);
    for element in elements {
        lines.extend(element.get().bytes().map(|b| match b {
            b'\n' | b'\r' => b' ',
            other => other,
        }));
        lines.push(b'\n');
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn ndjson_passes_through_and_gets_a_final_newline() {
        assert_eq!(
            to_lines(b"{\"a\":1}\n{\"b\":2}", false, 100).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(to_lines(b"", false, 100).unwrap(), b"");
    }

    #[test]
    fn gzip_is_found_by_header_or_by_magic() {
        let body = gzip(b"{\"a\":1}\n");
        assert_eq!(to_lines(&body, true, 100).unwrap(), b"{\"a\":1}\n");
        assert_eq!(to_lines(&body, false, 100).unwrap(), b"{\"a\":1}\n");
        let refused = to_lines(b"{\"a\":1}", true, 100).unwrap_err();
        assert_eq!(refused.status(), 400);
        let mut cut = body.clone();
        cut.truncate(body.len() - 6);
        assert_eq!(to_lines(&cut, true, 100).unwrap_err().status(), 400);
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b' '; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(
            to_lines(&bomb, true, 1024 * 1024).unwrap_err(),
            Refused::TooLarge { limit: 1024 * 1024 }
        );
    }

    #[test]
    fn an_array_becomes_one_line_per_element_with_its_bytes() {
        let body =
            b" [{\"a\": 1},\n {\"b\":\n \"x y\"}, {\"total\":2,\"offset\":\"o\",\"limit\":5}]\n";
        assert_eq!(
            to_lines(body, false, 1000).unwrap(),
            b"{\"a\": 1}\n{\"b\":  \"x y\"}\n{\"total\":2,\"offset\":\"o\",\"limit\":5}\n"
        );
        assert_eq!(
            to_lines(b"[{\"a\":1}", false, 100).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn only_gzip_and_identity_are_accepted_encodings() {
        assert_eq!(gzip_declared(None), Ok(false));
        assert_eq!(gzip_declared(Some(b"identity")), Ok(false));
        assert_eq!(gzip_declared(Some(b"GZIP")), Ok(true));
        assert_eq!(gzip_declared(Some(b"br")).unwrap_err().status(), 415);
        assert_eq!(
            gzip_declared(Some(b"gzip, gzip")).unwrap_err().status(),
            415
        );
    }
}
