use super::*;

fn shape(input: &str, limits: &Limits) -> (String, serde_json::Value, Shaped) {
    let event = Value::parse(input.as_bytes()).unwrap();
    let mut out = Vec::new();
    let shaped = write_event(event, &mut out, limits);
    let text = String::from_utf8(out).unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (text, value, shaped)
}

fn default_shape(input: &str) -> (String, serde_json::Value) {
    let (text, value, _) = shape(input, &Limits::default());
    (text, value)
}

#[test]
fn starts_with_the_discriminator_and_adds_srcip() {
    let (text, value) =
        default_shape(r#"{"type":"akamai_siem","attackData":{"clientIP":"2001:db8::1"}}"#);
    assert!(
        text.starts_with(r#"{"integration":"akamai","srcip":"2001:db8::1","type":"#),
        "{text}"
    );
    assert_eq!(value["attackData"]["clientIP"], "2001:db8::1");
}

#[test]
fn nulls_numbers_and_arrays_are_made_wazuh_safe() {
    let (text, _) = default_shape(
        r#"{"a":null,"n":1.5,"b":true,"list":["x",2,null,{"o":1},[1]],"o":{"z":null,"k":7}}"#,
    );
    assert_eq!(
        text,
        r#"{"integration":"akamai","n":"1.5","b":"true","list":["x","2","","{\"o\":1}","[1]"],"o":{"k":"7"}}"#
    );
}

#[test]
fn duplicate_and_reserved_keys_are_renamed_never_dropped() {
    let (text, value) = default_shape(r#"{"id":"1","Geo":{"a":"1","A":"2","a":"3"},"srcip":"x"}"#);
    assert!(text.contains(r#""akamai_id":"1""#), "{text}");
    assert!(
        text.contains(r#""Geo":{"a":"1","A_2":"2","a_3":"3"}"#),
        "{text}"
    );
    assert!(text.contains(r#""akamai_srcip":"x""#), "{text}");
    assert_eq!(value["renamedFields"].as_array().unwrap().len(), 4);
}

#[test]
fn too_many_fields_are_collapsed_into_text() {
    let many: Vec<String> = (0..300).map(|i| format!("\"f{i}\":\"{i}\"")).collect();
    let input = format!(
        r#"{{"type":"akamai_siem","extra":{{{}}},"small":{{"a":"b"}}}}"#,
        many.join(",")
    );
    let (_, value, shaped) = shape(&input, &Limits::default());
    assert!(shaped.shrunk);
    assert!(
        value["extra"].is_string(),
        "the big object became one text field"
    );
    assert_eq!(value["small"]["a"], "b");
    assert_eq!(value["collapsedFields"], serde_json::json!(["extra"]));
    let text = value["extra"].as_str().unwrap();
    assert!(
        text.contains("\"f299\":\"299\""),
        "nothing lost: {text:.80}"
    );
}

#[test]
fn oversized_events_are_cut_from_their_largest_fields_and_stay_valid() {
    let big_header = "X".repeat(150_000);
    let input = format!(
        r#"{{"type":"akamai_siem","attackData":{{"clientIP":"1.2.3.4","ruleData":["{}","short"]}},"httpMessage":{{"requestId":"ab","requestHeaders":["Cookie: {big_header}","Host: a"],"query":"{}"}}}}"#,
        "d".repeat(40_000),
        "q".repeat(30_000)
    );
    let limits = Limits::default();
    let (text, value, shaped) = shape(&input, &limits);
    assert!(shaped.shrunk);
    assert!(text.len() <= limits.max_line_bytes, "{}", text.len());
    let cut: Vec<&str> = value["cutFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(cut.contains(&"httpMessage.requestHeaders"), "{cut:?}");
    assert_eq!(
        value["httpMessage"]["requestId"], "ab",
        "small fields are untouched"
    );
    assert_eq!(value["srcip"], "1.2.3.4");
    assert!(text.contains("…[cut "), "an explicit marker");
}

#[test]
fn every_cap_is_honoured_with_valid_json() {
    let input = format!(
        r#"{{"type":"akamai_siem","attackData":{{"clientIP":"1.2.3.4"}},"a":"{}","b":["{}","é\"\\{}"],"c":{{"d":"{}"}}}}"#,
        "a".repeat(9_000),
        "b".repeat(9_000),
        "\\u0001".repeat(3_000),
        "ü".repeat(4_000)
    );
    for cap in [1_000, 2_500, 5_000, 12_000, 60_000] {
        let limits = Limits {
            max_line_bytes: cap,
            ..Limits::default()
        };
        let (text, _, _) = shape(&input, &limits);
        assert!(text.len() <= cap, "cap {cap}: {}", text.len());
        assert!(text.starts_with("{\"integration\":\"akamai\","));
    }
}

#[test]
fn thousands_of_tiny_fields_fall_back_to_a_minimal_event() {
    let many: Vec<String> = (0..5_000)
        .map(|i| format!("\"k{i}\":{{\"v\":\"{i}\"}}"))
        .collect();
    let input = format!(
        r#"{{"type":"akamai_siem","httpMessage":{{"requestId":"r1"}},{}}}"#,
        many.join(",")
    );
    let limits = Limits {
        max_line_bytes: 4_096,
        max_fields: 200,
    };
    let (text, value, shaped) = shape(&input, &limits);
    assert!(shaped.shrunk);
    assert!(text.len() <= 4_096, "{}", text.len());
    assert_eq!(value["httpMessage"]["requestId"], "r1");
}

#[test]
fn a_non_object_is_kept_under_a_decodable_key() {
    let (text, _) = default_shape("[1,2]");
    assert_eq!(
        text,
        r#"{"integration":"akamai","unexpectedValue":"[1,2]"}"#
    );
}

#[test]
fn the_quick_reserved_name_check_agrees_with_the_lists_in_any_case() {
    let listed = |name: &str| reserved_top_level().any(|r| r.eq_ignore_ascii_case(name));
    let mut names: Vec<String> = reserved_top_level()
        .flat_map(|r| {
            [
                r.to_string(),
                r.to_ascii_uppercase(),
                format!("{r}x"),
                r[1..].to_string(),
            ]
        })
        .collect();
    names.extend(
        [
            "",
            "type",
            "attackData",
            "httpMessage",
            "geo",
            "userRiskData",
            "Timestamp",
            "ID",
        ]
        .map(String::from),
    );
    names.push("s".repeat(20));
    for name in &names {
        assert_eq!(is_reserved_top_level(name), listed(name), "{name:?}");
    }
    assert!(is_reserved_top_level("SrcIP") && is_reserved_top_level("timestamp"));
    assert!(!is_reserved_top_level("srcips") && !is_reserved_top_level("type"));
}
