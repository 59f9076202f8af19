//! Base64 of rule-list elements: short (a few dozen characters), so the base64 crate's set-up
//! per call cost more than its decoding. Plain elements (the standard alphabet, canonical
//! padding or none) are decoded here with one table; anything else goes to the crate, whose
//! verdict (`BASE64`: padding optional, trailing bits allowed) stays the rule.

use super::BASE64;
use base64::Engine as _;

/// Decode `input` onto the end of `out` exactly as `BASE64.decode_vec` would.
pub(super) fn base64_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), base64::DecodeError> {
    let start = out.len();
    if decode_plain(input, out).is_some() {
        return Ok(());
    }
    out.truncate(start);
    BASE64.decode_vec(input, out)
}

const INVALID: u8 = 0xff;

/// The 6-bit value of each character of the standard alphabet; `INVALID` for the rest.
const VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// `Some` when `input` is plain base64 (every character in the alphabet, then one or two `=`
/// only where they complete the last quad) and decoded onto `out`; `None` for anything the
/// crate must judge (it may have appended to `out`).
fn decode_plain(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let body = match input {
        [rest @ .., b'=', b'='] | [rest @ .., b'='] if input.len().is_multiple_of(4) => rest,
        _ => input,
    };
    // One character over a quad is never base64; the crate says why.
    if body.len() % 4 == 1 {
        return None;
    }
    out.reserve(body.len() / 4 * 3 + 2);
    let mut quads = body.chunks_exact(4);
    for quad in &mut quads {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| VALUES[quad[i] as usize]);
        // Valid values are below 64: one test for all four.
        if (a | b | c | d) > 63 {
            return None;
        }
        let bits = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        out.extend_from_slice(&bits.to_be_bytes()[1..]);
    }
    // A last group of two or three characters: one or two bytes; leftover bits are allowed.
    let rest = quads.remainder();
    let mut bits = 0u32;
    for &character in rest {
        let value = VALUES[character as usize];
        if value > 63 {
            return None;
        }
        bits = bits << 6 | u32::from(value);
    }
    match rest.len() {
        0 => {}
        2 => out.push((bits >> 4) as u8),
        3 => out.extend_from_slice(&((bits >> 2) as u16).to_be_bytes()),
        _ => unreachable!("a remainder of one was refused above"),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_elements_decode_as_the_crate_decodes_them_and_the_rest_goes_to_it() {
        let mut state = 0x853c_49e6_748f_ea9b_u64;
        let alphabets: [&[u8]; 3] = [
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            b"AQgw+/=",
            b"Qg== \n-_.",
        ];
        let (mut ours, mut crates) = (Vec::new(), Vec::new());
        let (mut plain, mut judged) = (0, 0);
        for round in 0..50_000 {
            let alphabet = alphabets[round % alphabets.len()];
            let length = round % 23;
            let input = super::super::tests::random_bytes(&mut state, alphabet, length);
            ours.clear();
            crates.clear();
            if decode_plain(&input, &mut ours).is_some() {
                plain += 1;
                BASE64.decode_vec(&input, &mut crates).unwrap_or_else(|e| {
                    panic!(
                        "{:?}: decoded here, refused by the crate ({e})",
                        input.escape_ascii().to_string()
                    )
                });
                assert_eq!(ours, crates, "{}", input.escape_ascii());
            } else {
                judged += 1;
            }
            ours.clear();
            crates.clear();
            let result = base64_into(&input, &mut ours);
            assert_eq!(result, BASE64.decode_vec(&input, &mut crates));
            assert_eq!(ours, crates, "{}", input.escape_ascii());
        }
        assert!(
            plain > 10_000 && judged > 10_000,
            "{plain} plain, {judged} judged"
        );
    }

    #[test]
    fn canonical_padding_and_none_are_plain() {
        for (input, decoded) in [
            (&b"QQ=="[..], &b"A"[..]),
            (b"QQ", b"A"),
            (b"QUI=", b"AB"),
            (b"QUI", b"AB"),
            (b"QUJD", b"ABC"),
            (b"", b""),
        ] {
            let mut out = Vec::new();
            assert_eq!(decode_plain(input, &mut out), Some(()), "{input:?}");
            assert_eq!(out, decoded);
        }
        for judged in [&b"Q"[..], b"QQ=", b"Q===", b"QQ==QQ==", b"QU=I", b"-_"] {
            assert_eq!(decode_plain(judged, &mut Vec::new()), None, "{judged:?}");
        }
    }
}
