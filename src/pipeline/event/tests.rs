use super::*;

fn round_trip(text: &str) -> String {
    let value = Value::parse(text.as_bytes()).unwrap();
    let mut out = Vec::new();
    value.write_compact(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn writes_exactly_what_serde_json_writes() {
    let inputs = [
        r#"{"a":"x\"y\\z\n\t\u0000\u001f\u007f","b":[1,-2,3.5,1e300,true,false,null],"c":{}}"#,
        // Keys in sorted order: serde_json::Value (the reference) sorts them.
        r#"{"emoji":"\ud83d\ude00","slash":"a\/b","é":"ü\u2028\u0085 text"}"#,
        r#"[{"nested":[[],[{}]]}]"#,
    ];
    for input in inputs {
        let expected =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(input).unwrap())
                .unwrap();
        assert_eq!(round_trip(input), expected, "{input}");
    }
}

#[test]
fn escaping_matches_serde_json_for_every_byte_in_every_position() {
    for byte in 0u8..=0x7f {
        for position in 0..40 {
            let mut text = "x".repeat(position);
            text.push(byte as char);
            text.push_str("tail-after-the-byte");
            let mut ours = Vec::new();
            write_string(&text, &mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "byte {byte:#x} at {position}"
            );
        }
    }
    let mut ours = Vec::new();
    write_string("ü€😀\u{2028}", &mut ours);
    assert_eq!(ours, serde_json::to_vec("ü€😀\u{2028}").unwrap());
}

#[test]
fn keeps_order_and_duplicate_keys() {
    assert_eq!(
        round_trip(r#"{ "z":1, "a":2, "z":3 }"#),
        r#"{"z":1,"a":2,"z":3}"#
    );
}

#[test]
fn strings_without_escapes_are_borrowed() {
    let line = br#"{"plain":"abc","escaped":"a\nb"}"#;
    let value = Value::parse(line).unwrap();
    assert!(matches!(
        value.get("plain"),
        Some(Value::String(Cow::Borrowed("abc")))
    ));
    assert!(matches!(
        value.get("escaped"),
        Some(Value::String(Cow::Owned(_)))
    ));
}

#[test]
fn line_separators_inside_strings_survive() {
    let text = "{\"a\":\"one\u{2028}two\u{85}three\"}";
    assert_eq!(round_trip(text), text);
}

#[test]
fn trailing_data_and_invalid_json_are_errors() {
    assert!(Value::parse(b"{\"a\":1} x").is_err());
    assert!(Value::parse(b"{\"a\":1}{}").is_err());
    assert!(Value::parse(b"{\"a\":").is_err());
    assert!(Value::parse(b"not json").is_err());
    assert!(Value::parse(b"  {\"a\":1}  \r").is_ok());
}

#[test]
fn invalid_utf8_is_located_by_path() {
    let line = b"{\"a\":\"ok\",\"h\":{\"x\\\"\\u00e9\":\"\xff\",\"l\":[\"\",{\"k\":\"\xe9\"},\"\xc3\"]},\"k\xfe\":1,\"z\":\"\xff\"}";
    assert_eq!(
        invalid_utf8_paths(line),
        ["h.x\"\u{e9}", "h.l[1].k", "h.l[2]", "k\u{fffd}", "z"]
    );
    assert!(invalid_utf8_paths(br#"{"a":["b",{"c":"d"}]}"#).is_empty());
}

#[test]
fn pointer_and_get_follow_keys() {
    let value = Value::parse(br#"{"attackData":{"clientIP":"2001:db8::1"}}"#).unwrap();
    assert_eq!(
        value
            .pointer(&["attackData", "clientIP"])
            .and_then(Value::as_str),
        Some("2001:db8::1")
    );
    assert!(value.pointer(&["attackData", "missing"]).is_none());
    assert!(value.get("attackData").unwrap().get("clientIP").is_some());
}

#[test]
fn the_escape_bitmap_marks_exactly_the_bytes_that_need_an_escape() {
    let mut bits = Vec::new();
    for length in [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 200] {
        for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for at in (0..length).step_by(7) {
                let mut bytes: Vec<u8> = (0..length).map(|i| b' ' + (i % 90) as u8).collect();
                // Fill with bytes that need no escape, but for the one under test and any
                // quote or backslash the pattern itself makes.
                bytes[at] = special;
                escape_bitmap(&bytes, &mut bits);
                assert_eq!(bits.len(), length.div_ceil(64));
                for (index, &byte) in bytes.iter().enumerate() {
                    let set = bits[index / 64] >> (index % 64) & 1 == 1;
                    let needs = byte == b'"' || byte == b'\\' || byte < 0x20;
                    assert_eq!(set, needs, "byte {index} ({byte:#x}) of {length}");
                }
            }
        }
    }
    // Bytes of 0x80 and above are text, never escapes.
    escape_bitmap(&[0x80, 0xff, 0xe9, 0x7f], &mut bits);
    assert_eq!(bits, [0]);
}

#[test]
fn the_first_escape_is_found_at_every_length_and_position_in_the_last_block_too() {
    let needs = |byte: u8| byte == b'"' || byte == b'\\' || byte < 0x20;
    for length in 0..80 {
        let clean: Vec<u8> = (0..length).map(|i| b'a' + (i % 26) as u8).collect();
        assert_eq!(first_escape(&clean), None, "none in {length} bytes");
        for at in 0..length {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                let mut bytes = clean.clone();
                bytes[at] = special;
                assert_eq!(
                    first_escape(&bytes),
                    Some(at),
                    "{special:#x} at {at} of {length}"
                );
                // A later escape never hides an earlier one, nor the reverse.
                if at + 1 < length {
                    bytes[length - 1] = b'"';
                    assert_eq!(
                        first_escape(&bytes),
                        Some(at),
                        "{at} then the end, {length}"
                    );
                }
            }
        }
        let high: Vec<u8> = (0..length).map(|i| 0x80 + (i % 0x7f) as u8).collect();
        assert_eq!(first_escape(&high), high.iter().position(|&b| needs(b)));
    }
}
