use super::*;

/// A rule list on its own, errors listed as `path[index]`.
fn decode_rule_list(text: &str, path: &str, errors: &mut Vec<String>) -> Vec<Value<'static>> {
    let mut decoder = Decoder::default();
    let list = decoder.rule_list(text, "", path);
    errors.append(&mut decoder.errors);
    list
}

fn decode_readable(text: &str) -> (Cow<'_, str>, bool) {
    decode_readable_with(text, &mut Vec::new())
}

fn decode_text(input: &str) -> String {
    let value = decode_event(Value::parse(input.as_bytes()).unwrap());
    let mut out = Vec::new();
    value.write_compact(&mut out);
    String::from_utf8(out).unwrap()
}

fn list(text: &str) -> (Vec<String>, Vec<String>) {
    let mut errors = Vec::new();
    let values = decode_rule_list(text, "f", &mut errors)
        .into_iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (values, errors)
}

fn readable(text: &str) -> String {
    decode_readable(text).0.into_owned()
}

#[test]
fn official_examples() {
    assert_eq!(
        list("OTUwMDAy%3bOTUwMDA2%3bQ01ELUlOSkVDVElPTi1BTk9NQUxZ").0,
        ["950002", "950006", "CMD-INJECTION-ANOMALY"]
    );
    assert_eq!(
        list("YWxlcnQ%3d%3bYWxlcnQ%3d%3bZGVueQ%3d%3d").0,
        ["alert", "alert", "deny"]
    );
}

#[test]
fn plus_is_never_a_space() {
    assert_eq!(list("dGl0bGU+Y25iYw%3d%3d").0, ["title>cnbc"]);
}

#[test]
fn a_deny_after_a_padded_element_is_kept() {
    // Decoding the whole joined string (the Python script's mistake) loses the last element.
    assert_eq!(list("YQ%3d%3d%3bZGVueQ%3d%3d").0, ["a", "deny"]);
}

#[test]
fn empty_and_trailing_empty_elements_are_kept() {
    assert_eq!(list("QQ%3d%3d%3b").0, ["A", ""]);
    assert_eq!(list("%3bQQ%3d%3d%3b%3b").0, ["", "A", "", ""]);
    assert_eq!(list("").0, [""]);
}

#[test]
fn escapes_in_either_case_and_missing_padding_and_whitespace() {
    assert_eq!(list("YWxlcnQ%3D%3BYWxlcnQ").0, ["alert", "alert"]);
    assert_eq!(list(" YWxlcnQ= ").0, ["alert"]);
}

#[test]
fn an_undecodable_element_keeps_its_text_and_is_listed() {
    let (values, errors) = list("YWxlcnQ%3d%3bnot*base64%3bZGVueQ%3d%3d");
    assert_eq!(values, ["alert", "not*base64", "deny"]);
    assert_eq!(errors, ["f[1]"]);
}

#[test]
fn malformed_escapes_stay_as_they_are() {
    let (values, errors) = list("YQ%3d%zz");
    assert_eq!(values, ["YQ=%zz"]);
    assert_eq!(errors, ["f[0]"]);
}

#[test]
fn non_utf8_bytes_become_replacement_characters_and_are_listed() {
    // 0xff 0xfe 'A': the analyst must know bytes were replaced.
    assert_eq!(
        list("//5B"),
        (
            vec!["\u{fffd}\u{fffd}A".to_string()],
            vec!["f[0]".to_string()]
        )
    );
    let out = decode_text(r#"{"attackData":{"ruleData":"QQ%3d%3d%3b//5B"}}"#);
    assert_eq!(
        out,
        "{\"attackData\":{\"ruleData\":[\"A\",\"\u{fffd}\u{fffd}A\"]},\"decodeErrors\":[\"attackData.ruleData[1]\"]}"
    );
}

#[test]
fn ragged_rule_lists_are_padded_to_the_longest() {
    let out = decode_text(
        r#"{"attackData":{"rules":"MQ%3d%3d%3bMg%3d%3d%3bMw%3d%3d","ruleVersions":"","ruleData":"eA%3d%3d","other":"YQ%3d%3d"}}"#,
    );
    assert_eq!(
        out,
        r#"{"attackData":{"rules":["1","2","3"],"ruleVersions":["","",""],"ruleData":["x","",""],"other":"YQ%3d%3d"}}"#
    );
}

#[test]
fn rule_fields_that_are_not_strings_pass_through() {
    let out = decode_text(
        r#"{"attackData":{"rules":["already"],"ruleData":null,"ruleTags":"QQ%3d%3d"}}"#,
    );
    assert_eq!(
        out,
        r#"{"attackData":{"rules":["already"],"ruleData":null,"ruleTags":["A"]}}"#
    );
}

#[test]
fn headers_are_decoded_once_split_and_repeats_kept() {
    let out = decode_text(
        r#"{"httpMessage":{"responseHeaders":"Set-Cookie%3a%20a%3d1%0d%0aSet-Cookie%3a%20b%3d2%0d%0aCookie%3a%20s%3dab12%252Fcd%0d%0aX%3a%20a+b%0aY%3a%201%0d%0a"}}"#,
    );
    assert_eq!(
        out,
        r#"{"httpMessage":{"responseHeaders":["Set-Cookie: a=1","Set-Cookie: b=2","Cookie: s=ab12%2Fcd","X: a+b","Y: 1"]}}"#
    );
}

#[test]
fn header_blocks_split_as_str_split_does_at_every_edge() {
    for block in [
        "",
        "\n",
        "\r\n",
        "\r",
        "a",
        "a\n",
        "\na",
        "a\r\nb",
        "a\n\nb\r\n\r\n",
        "a\rb\n",
        "\r\r\n",
        "é: ü\r\nb",
    ] {
        let reference: Vec<Value<'static>> = block
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .filter(|line| !line.is_empty())
            .map(|line| Value::String(Cow::Owned(line.to_string())))
            .collect();
        let ours = decode_header_block(block.as_bytes(), |_| panic!("valid UTF-8"));
        assert_eq!(ours, Value::Array(reference), "{block:?}");
    }
}

#[test]
fn headers_with_invalid_utf8_are_kept_lossily_line_by_line_and_listed() {
    let out = decode_text(
        r#"{"httpMessage":{"requestHeaders":"A%3a%20ok%0d%0a%0d%0aB%3a%20%ff%0d%0aC%3a%20ok%0d%0a"}}"#,
    );
    assert_eq!(
        out,
        "{\"httpMessage\":{\"requestHeaders\":[\"A: ok\",\"B: \u{fffd}\",\"C: ok\"]},\"decodeErrors\":[\"httpMessage.requestHeaders[1]\"]}"
    );
}

#[test]
fn path_and_query_are_decoded_once_leniently() {
    let out = decode_text(
        r#"{"httpMessage":{"path":"/a%20b/%zz","query":"q=1+2%3E%252F","method":"GET%20"}}"#,
    );
    assert_eq!(
        out,
        r#"{"httpMessage":{"path":"/a b/%zz","query":"q=1+2>%2F","method":"GET%20"}}"#
    );
}

#[test]
fn path_decodes_every_escape_that_forms_utf8_and_keeps_the_others() {
    for (input, expected) in [
        (
            "/%2e%2e/%2e%2e/etc/passwd/caf%e9",
            "/../../etc/passwd/caf%e9",
        ),
        ("caf%c3%a9", "café"),
        ("caf%C3%A9%e9", "café%e9"),
        ("%e9", "%e9"),
        ("%E9x", "%E9x"),
        ("%zz+%2B+", "%zz+++"),
        // Overlong `/` (the old IIS traversal trick) and a surrogate are not UTF-8: kept.
        ("..%c0%af..%C0%AF", "..%c0%af..%C0%AF"),
        ("%ed%a0%80", "%ed%a0%80"),
        ("%e2%82%ac%e2%82x", "€%e2%82x"),
        ("%f0%9f%98%80%ff%41", "😀%ffA"),
        ("%c3é%a9", "%c3é%a9"),
        ("%252e", "%2e"),
    ] {
        assert_eq!(readable(input), expected, "{input}");
    }
}

#[test]
fn a_path_or_query_with_escapes_kept_is_listed() {
    let out = decode_text(r#"{"httpMessage":{"path":"/%ff%fe/%2e","query":"q=%c3%a9"}}"#);
    assert_eq!(
        out,
        r#"{"httpMessage":{"path":"/%ff%fe/.","query":"q=é"},"decodeErrors":["httpMessage.path"]}"#
    );
}

#[test]
fn custom_as_string_or_object() {
    assert_eq!(
        decode_text(r#"{"custom":"YQ%3d%3d"}"#),
        r#"{"custom":["a"]}"#
    );
    assert_eq!(
        decode_text(r#"{"custom":{"tenant":"YQ%3d%3d%3bYg%3d%3d","n":5,"bad":"!!"}}"#),
        r#"{"custom":{"tenant":["a","b"],"n":5,"bad":["!!"]},"decodeErrors":["custom.bad[0]"]}"#
    );
}

#[test]
fn unknown_fields_and_order_pass_through() {
    let input =
        r#"{"zz":1,"type":"akamai_siem","newThing":{"x":"%41"},"attackData":{"clientIP":"::1"}}"#;
    assert_eq!(decode_text(input), input);
}

#[test]
fn errors_are_listed_last_with_their_paths() {
    let out = decode_text(r#"{"attackData":{"ruleData":"QQ%3d%3d%3b***"},"z":1}"#);
    assert_eq!(
        out,
        r#"{"attackData":{"ruleData":["A","***"]},"z":1,"decodeErrors":["attackData.ruleData[1]"]}"#
    );
}

#[test]
fn percent_decoding_matches_the_reference_crate_on_awkward_input() {
    let cases: [&[u8]; 10] = [
        b"",
        b"%",
        b"%%",
        b"%4",
        b"%4G",
        b"%41%42",
        b"a%2fb%2F%zz%",
        b"+%2B+",
        b"%%41",
        b"end%4",
    ];
    let mut decoded = Vec::new();
    for case in cases {
        let reference: Vec<u8> = percent_encoding::percent_decode(case).collect();
        percent_decode_into(case, &mut decoded);
        assert_eq!(decoded, reference, "{case:?}");
    }
}

#[test]
fn block_scanning_decodes_escapes_anywhere_around_block_edges() {
    for offset in 0..40 {
        for tail in ["%41", "%4", "%", "%zz", "%%41", "%2B+"] {
            let input = format!("{}{tail}{}", "x".repeat(offset), "y".repeat(offset % 7));
            let reference: Vec<u8> = percent_encoding::percent_decode(input.as_bytes()).collect();
            let mut ours = Vec::new();
            percent_decode_into(input.as_bytes(), &mut ours);
            assert_eq!(ours, reference, "{input}");
        }
    }
}

/// `length` bytes drawn from `alphabet` by xorshift64: deterministic, so a failure names the
/// input.
pub(super) fn random_bytes(state: &mut u64, alphabet: &[u8], length: usize) -> Vec<u8> {
    (0..length)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            alphabet[(*state % alphabet.len() as u64) as usize]
        })
        .collect()
}

#[test]
fn dense_random_escapes_decode_as_the_reference_does() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let alphabet = b"%%%%0123456789abcdefABCDEFgz+;\n\xc3\xa9";
    let mut ours = Vec::new();
    for length in 0..300 {
        let input = random_bytes(&mut state, alphabet, length);
        let reference: Vec<u8> = percent_encoding::percent_decode(&input).collect();
        percent_decode_into(&input, &mut ours);
        assert_eq!(ours, reference, "{:?}", String::from_utf8_lossy(&input));
    }
}

#[test]
fn a_non_object_passes_through() {
    assert_eq!(decode_text("[1,2]"), "[1,2]");
}

#[test]
fn the_block_decoder_agrees_with_the_scalar_one_at_every_alignment() {
    use super::percent::percent_decode_scalar_into;
    // Escapes and near-escapes at every lane and across every block edge: the alphabet is heavy
    // in `%` and hex digits, so runs like `%%4`, `%4%41`, `%41%` and `%` at the end all occur.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let alphabets: [&[u8]; 3] = [
        b"%%%%0123456789abcdefABCDEFgGz+;\r\n\xc3\xa9\x80\xff",
        b"%%%41aF",
        b"%3a%20AZaz09/;=",
    ];
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    let mut escapes = 0;
    for round in 0..20_000 {
        let alphabet = alphabets[round % alphabets.len()];
        let length = (round * 7) % 97;
        let input = random_bytes(&mut state, alphabet, length);
        percent_decode_into(&input, &mut fast);
        percent_decode_scalar_into(&input, &mut slow);
        assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(&input));
        escapes += input.len() - fast.len();
    }
    // The inputs were escape-dense (two digits squeezed out per escape).
    assert!(escapes > 100_000, "{escapes}");

    // Real blocks: a header block of the fake API, every prefix of it.
    let block = "Host%3a%20shop.example.com%0d%0aUser-Agent%3a%20Mozilla%2f5.0%20(Windows%20NT\
                 %2010.0%3b%20Win64%3b%20x64)%0d%0aCookie%3a%20session%3dab12%252Fcd%3b%20%%zz%4";
    for end in 0..=block.len() {
        percent_decode_into(&block.as_bytes()[..end], &mut fast);
        percent_decode_scalar_into(&block.as_bytes()[..end], &mut slow);
        assert_eq!(fast, slow, "{}", &block[..end]);
        let reference: Vec<u8> =
            percent_encoding::percent_decode(&block.as_bytes()[..end]).collect();
        assert_eq!(fast, reference, "{}", &block[..end]);
    }
}
