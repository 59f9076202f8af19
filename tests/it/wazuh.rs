//! Wazuh: the output format's hard limits on every kind of event, the rules file's structure,
//! and which rule each kind of event triggers.

use crate::common;
use crate::shared_folder;

use akamai_siem::Formatter;
use akamai_siem::STATIC_FIELDS;
use akamai_siem::Value;
use akamai_siem::{Format, OutputSettings, OutputTarget};
use common::{Harness, now};
use fake_akamai::{EventSize, FakeAkamai, Options};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

const CAP: usize = 60_000;

fn wazuh_line(raw: &str) -> String {
    let mut formatter = Formatter::new(&OutputSettings {
        target: OutputTarget::Stdout,
        format: Format::Wazuh,
        max_line_bytes: CAP,
        tags: Default::default(),
    });
    let mut out = Vec::new();
    formatter.write(
        raw.as_bytes(),
        Value::parse(raw.as_bytes()).unwrap(),
        &mut out,
    );
    String::from_utf8(out).unwrap()
}

/// Every limit of docs/wazuh.md §1-3, checked on one line; returns its number of fields.
fn assert_wazuh_safe(line: &str) -> usize {
    assert!(
        line.starts_with("{\"integration\":\"akamai\","),
        "{line:.100}"
    );
    assert!(!line.contains('\n') && !line.starts_with('\u{feff}'));
    assert!(line.len() <= CAP, "{} bytes", line.len());
    let value: Json = serde_json::from_str(line).unwrap();
    fn walk(value: &Json, path: &str, fields: &mut usize) {
        match value {
            Json::Object(map) => {
                let mut seen = HashSet::new();
                for (key, inner) in map {
                    assert!(
                        seen.insert(key.to_ascii_lowercase()),
                        "duplicate key {path}.{key}"
                    );
                    walk(inner, &format!("{path}.{key}"), fields);
                }
            }
            Json::Array(items) => {
                *fields += 1;
                assert!(
                    items.iter().all(Json::is_string),
                    "{path}: arrays hold strings only"
                );
            }
            Json::String(_) => *fields += 1,
            other => panic!("{path}: {other} is not a string"),
        }
    }
    let mut fields = 0;
    walk(&value, "", &mut fields);
    assert!(fields <= 200, "{fields} fields");
    fields
}

#[test]
fn every_kind_of_event_and_the_largest_are_wazuh_safe() {
    let fake = FakeAkamai::start(Options {
        event_size: EventSize::Realistic,
        ..Options::default()
    })
    .unwrap();
    let ids = fake.append_events_at(20, now() - 10.0);
    let mut most = 0;
    for id in ids {
        let line = wazuh_line(&fake.raw_event_line(id));
        most = most.max(assert_wazuh_safe(&line));
        // Shaping changes nothing of the decoded event but what it adds.
        let mut shaped: Json = serde_json::from_str(&line).unwrap();
        let map = shaped.as_object_mut().unwrap();
        assert_eq!(map.remove("integration").unwrap(), "akamai");
        assert_eq!(
            map.remove("srcip").unwrap(),
            fake.expected_decoded(id)["attackData"]["clientIP"]
        );
        assert_eq!(shaped, fake.expected_decoded(id), "event {id}");
    }
    let large = fake.append_large_event(260_000);
    let raw = fake.raw_event_line(large);
    assert!(raw.len() > 200_000, "{}", raw.len());
    let line = wazuh_line(&raw);
    assert_wazuh_safe(&line);
    let value: Json = serde_json::from_str(&line).unwrap();
    assert!(!value["cutFields"].as_array().unwrap().is_empty());
    assert_eq!(value["httpMessage"]["requestId"], format!("{large:016x}"));
    eprintln!(
        "fake events: at most {most} fields; the {} byte event became {} bytes",
        raw.len(),
        line.len()
    );
}

#[test]
fn the_richest_event_stays_under_the_field_limit() {
    // Every field of API doc §6, every optional section, custom data and decode errors.
    let rule = "YQ%3d%3d%3bYg%3d%3d%3bYw%3d%3d%3bZA%3d%3d%3bZQ%3d%3d";
    let raw = format!(
        r#"{{"type":"akamai_siem","format":"json","version":"1.0","attackData":{{"configId":"1","policyId":"p","clientIP":"192.0.2.1","appliedAction":"deny","clientReputation":"ID=x;WEBATCK=9","apiId":"a","apiKey":"k","slowPostAction":"A","slowPostRate":"3","rules":"{rule}","ruleVersions":"{rule}","ruleMessages":"{rule}","ruleTags":"{rule}","ruleData":"{rule}%3b***","ruleSelectors":"{rule}","ruleActions":"{rule}"}},"httpMessage":{{"requestId":"r","start":"1","protocol":"HTTP/2","tls":"tls1.3","method":"GET","host":"h","port":"443","path":"/","query":"q","requestHeaders":"A%3a%201%0d%0a","status":"200","bytes":"1","responseHeaders":"B%3a%202%0d%0a"}},"geo":{{"continent":"EU","country":"DE","city":"X","regionCode":"HE","asn":"1"}},"botData":{{"botScore":"90","responseSegment":"3"}},"clientData":{{"telemetryType":"1","appBundleId":"b","appVersion":"1","sdkVersion":"2"}},"userRiskData":{{"uuid":"u","status":"0","score":"9","allow":"0","risk":"a:b","trust":"c:d","general":"e:f","username":"n","originUserId":"o"}},"identity":{{"ja4":"j","tlsFingerprintV2":"2","tlsFingerprintV3":"3"}},"custom":{{"k1":"{rule}","k2":"{rule}","k3":"{rule}"}}}}"#
    );
    let line = wazuh_line(&raw);
    let fields = assert_wazuh_safe(&line);
    let value: Json = serde_json::from_str(&line).unwrap();
    assert_eq!(
        value["decodeErrors"],
        serde_json::json!(["attackData.ruleData[5]"])
    );
    eprintln!("the richest event has {fields} fields");
    assert!(fields > 60, "the test event really is rich: {fields}");
}

#[test]
fn the_shared_sample_keeps_its_wazuh_shape() {
    let Some(samples) = shared_folder::shared_folder("samples") else {
        return;
    };
    let text = std::fs::read_to_string(samples.join("siem_response.ndjson")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("\"akamai_siem\""))
        .map(wazuh_line)
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_wazuh_safe(line);
    }
    insta::assert_snapshot!("shared_sample_wazuh", lines.join("\n"));
}

/// Run with stdout and stderr as one pipe, as Wazuh's wodle does: the exit code and all text.
fn on_a_merged_pipe(mut command: std::process::Command) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    command.stdout(writer.try_clone().unwrap()).stderr(writer);
    let mut child = command.spawn().unwrap();
    drop(command);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut { reader }, &mut text).unwrap();
    (child.wait().unwrap().code(), text)
}

#[test]
fn under_a_merged_pipe_an_authentication_failure_emits_only_json() {
    let harness = Harness::with_defaults();
    harness.fake.inject(fake_akamai::Fault::Status(401));
    // No --diagnostics flag: the merged pipe is detected.
    let mut command = std::process::Command::new(common::BIN);
    command
        .args(["--config", harness.config.to_str().unwrap()])
        .current_dir(harness.dir.path())
        .env("HOME", harness.path("home"))
        .env_remove("AKAMAI_SIEM_DIAGNOSTICS")
        .stdin(std::process::Stdio::null());
    let (code, text) = on_a_merged_pipe(command);
    assert_eq!(code, Some(4));
    assert!(!text.is_empty());
    let codes: Vec<String> = text
        .lines()
        .map(|line| {
            let value: Json =
                serde_json::from_str(line).unwrap_or_else(|_| panic!("free text: {line}"));
            assert_eq!(value["integration"], "akamai");
            value["collector"]["code"].as_str().unwrap().to_string()
        })
        .collect();
    // The cause, then (as after every run) the summary, last.
    assert_eq!(codes, ["auth_failed", "summary"], "{text}");
    for secret in harness.secrets() {
        assert!(!text.contains(&secret));
    }

    // A usage error (a typo in the wodle's <command>) is JSON too.
    let mut command = std::process::Command::new(common::BIN);
    command.arg("--no-such-flag");
    let (code, text) = on_a_merged_pipe(command);
    assert_eq!(code, Some(2));
    let value: Json =
        serde_json::from_str(text.trim_end()).unwrap_or_else(|_| panic!("free text: {text}"));
    assert_eq!(value["collector"]["code"], "usage_error");

    // With a log file, nothing at all reaches the pipe.
    let log = harness.path("collector.log");
    harness.fake.inject(fake_akamai::Fault::Status(401));
    let (code, text) = on_a_merged_pipe(harness.command(&["--log-file", log.to_str().unwrap()]));
    assert_eq!(code, Some(4));
    assert_eq!(text, "", "nothing on the merged pipe");
    assert!(common::read(&log).contains("rejected the credentials"));
}

// ----- the rules file -----

#[derive(Debug)]
struct Rule {
    id: u32,
    level: u32,
    if_sid: Vec<u32>,
    if_matched_group: Option<String>,
    decoded_as: Option<String>,
    fields: Vec<(String, regex::Regex, bool)>,
    matches: Vec<(regex::Regex, bool)>,
    groups: Vec<String>,
    order: usize,
    description: String,
}

fn rules_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wazuh/akamai_rules.xml")
}

fn load_rules() -> Vec<Rule> {
    let text = std::fs::read_to_string(rules_path()).unwrap();
    let document = roxmltree::Document::parse(&text).expect("akamai_rules.xml is well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "group");
    let file_groups: Vec<String> = root
        .attribute("name")
        .unwrap()
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    let mut rules = Vec::new();
    for (order, node) in root
        .children()
        .filter(|n| n.has_tag_name("rule"))
        .enumerate()
    {
        let text_of = |tag: &str| {
            node.children()
                .find(|c| c.has_tag_name(tag))
                .and_then(|c| c.text())
                .map(str::to_string)
        };
        let compile = |child: roxmltree::Node| {
            assert_eq!(
                child.attribute("type"),
                Some("pcre2"),
                "rule {:?}: every match is PCRE2",
                node.attribute("id")
            );
            regex::Regex::new(child.text().unwrap()).unwrap()
        };
        let mut groups = file_groups.clone();
        if let Some(own) = text_of("group") {
            groups.extend(own.split(',').filter(|g| !g.is_empty()).map(str::to_string));
        }
        rules.push(Rule {
            id: node.attribute("id").unwrap().parse().unwrap(),
            level: node.attribute("level").unwrap().parse().unwrap(),
            if_sid: text_of("if_sid")
                .map(|t| t.split(',').map(|s| s.trim().parse().unwrap()).collect())
                .unwrap_or_default(),
            if_matched_group: text_of("if_matched_group"),
            decoded_as: text_of("decoded_as"),
            fields: node
                .children()
                .filter(|c| c.has_tag_name("field"))
                .map(|c| {
                    (
                        c.attribute("name").unwrap().to_string(),
                        compile(c),
                        c.attribute("negate") == Some("yes"),
                    )
                })
                .collect(),
            matches: node
                .children()
                .filter(|c| c.has_tag_name("match"))
                .map(|c| (compile(c), c.attribute("negate") == Some("yes")))
                .collect(),
            groups,
            order,
            description: text_of("description").unwrap(),
        });
    }
    rules
}

#[test]
fn rules_are_well_formed_unique_in_range_and_reachable() {
    let rules = load_rules();
    let ids: HashSet<u32> = rules.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), rules.len(), "rule ids are unique");
    assert!(
        rules.iter().all(|r| (110_000..=110_999).contains(&r.id)),
        "ids stay in 110000-110999"
    );
    assert!(rules.iter().all(|r| r.level <= 16));

    let parent = rules.iter().find(|r| r.id == 110_000).unwrap();
    assert_eq!(parent.level, 0, "the parent rule is level 0");
    assert_eq!(parent.decoded_as.as_deref(), Some("json"));
    assert_eq!(parent.fields[0].0, "integration");
    let roots: Vec<u32> = rules
        .iter()
        .filter(|r| r.if_sid.is_empty() && r.if_matched_group.is_none())
        .map(|r| r.id)
        .collect();
    assert_eq!(
        roots,
        vec![110_000, 110_003],
        "everything hangs from the two parents: json (wodle, file) and remote syslog"
    );
    let syslog_parent = rules.iter().find(|r| r.id == 110_003).unwrap();
    assert_eq!(syslog_parent.level, 0);
    assert_eq!(syslog_parent.decoded_as.as_deref(), Some("akamai-siem"));
    assert_eq!(syslog_parent.fields[0].0, "integration");

    for rule in &rules {
        for (name, _, _) in &rule.fields {
            assert!(
                !STATIC_FIELDS.contains(&name.as_str()),
                "rule {} names static field {name}",
                rule.id
            );
        }
    }
    // Reachability: every if_sid chain ends at the parent; every correlated group is given by a
    // reachable rule.
    let by_id: HashMap<u32, &Rule> = rules.iter().map(|r| (r.id, r)).collect();
    fn reaches_parent(id: u32, by_id: &HashMap<u32, &Rule>, depth: usize) -> bool {
        if id == 110_000 || id == 110_003 {
            return true;
        }
        let rule = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("if_sid {id} does not exist"));
        depth < 16
            && !rule.if_sid.is_empty()
            && rule
                .if_sid
                .iter()
                .all(|p| reaches_parent(*p, by_id, depth + 1))
    }
    for rule in &rules {
        match &rule.if_matched_group {
            Some(group) => assert!(
                rules
                    .iter()
                    .any(|r| r.groups.contains(group) && reaches_parent(r.id, &by_id, 0)),
                "rule {} correlates group {group}, which no reachable rule gives",
                rule.id
            ),
            None => assert!(
                reaches_parent(rule.id, &by_id, 0),
                "rule {} is unreachable",
                rule.id
            ),
        }
    }
}

/// Wazuh's JSON decoder: nested objects become dotted names, arrays their JSON text.
fn flatten(value: &Json, prefix: &str, out: &mut BTreeMap<String, String>) {
    match value {
        Json::Object(map) => {
            for (key, inner) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(inner, &name, out);
            }
        }
        Json::Array(items) => {
            let parts: Vec<String> = items.iter().map(Json::to_string).collect();
            out.insert(prefix.to_string(), format!("[{}]", parts.join(", ")));
        }
        Json::String(text) => {
            out.insert(prefix.to_string(), text.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn rule_matches(rule: &Rule, fields: &BTreeMap<String, String>, line: &str) -> bool {
    rule.fields
        .iter()
        .all(|(name, regex, negate)| match fields.get(name) {
            Some(value) => regex.is_match(value) != *negate,
            None => false, // a missing field never matches, negated or not
        })
        && rule
            .matches
            .iter()
            .all(|(regex, negate)| regex.is_match(line) != *negate)
}

/// The rule Wazuh would report for a line its stock json decoder took (the wodle, a file).
fn classify<'r>(rules: &'r [Rule], line: &str) -> Option<&'r Rule> {
    classify_decoded(rules, "json", line)
}

/// The rule Wazuh would report for `line` decoded by `decoder`: start at the parent for that
/// decoder, descend trying children by level (highest first) then file order, and keep the
/// deepest match.
fn classify_decoded<'r>(rules: &'r [Rule], decoder: &str, line: &str) -> Option<&'r Rule> {
    let value: Json = serde_json::from_str(line).unwrap();
    let mut fields = BTreeMap::new();
    flatten(&value, "", &mut fields);
    let mut current = rules
        .iter()
        .filter(|r| r.if_sid.is_empty() && r.if_matched_group.is_none())
        .find(|r| r.decoded_as.as_deref() == Some(decoder) && rule_matches(r, &fields, line))?;
    loop {
        let mut children: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.if_sid.contains(&current.id))
            .collect();
        children.sort_by_key(|r| (std::cmp::Reverse(r.level), r.order));
        match children
            .into_iter()
            .find(|r| rule_matches(r, &fields, line))
        {
            Some(child) => current = child,
            None => return Some(current),
        }
    }
}

#[test]
fn each_kind_of_event_triggers_its_rule() {
    let rules = load_rules();
    let fake = FakeAkamai::start_default().unwrap();
    let ids = fake.append_events_at(10, now() - 10.0);
    // The fake cycles through ten kinds of event, in this order.
    let expected = [
        110_100, 110_111, 110_102, 110_123, 110_104, 110_115, 110_200, 110_211, 110_220, 110_012,
    ];
    let mut table = Vec::new();
    for (id, want) in ids.zip(expected) {
        let line = wazuh_line(&fake.raw_event_line(id));
        let rule = classify(&rules, &line).unwrap();
        let value: Json = serde_json::from_str(&line).unwrap();
        table.push(format!(
            "{} (level {:>2}) <- fake event kind {} ({}, tags {})",
            rule.id,
            rule.level,
            id % 10,
            value["attackData"]["appliedAction"],
            value["attackData"]["ruleTags"]
        ));
        assert_eq!(
            rule.id,
            want,
            "event kind {}: {}",
            id % 10,
            rule.description
        );
    }

    // An older event without appliedAction falls back to the per-rule actions.
    let raw = fake
        .raw_event_line(0)
        .replacen(r#""appliedAction":"deny","#, "", 1);
    let legacy = classify(&rules, &wazuh_line(&raw)).unwrap();
    assert_eq!(legacy.id, 110_100, "legacy SQLi deny");
    table.push(format!(
        "{} (level {:>2}) <- the same SQLi event without appliedAction",
        legacy.id, legacy.level
    ));

    // The shared sample's three events.
    if let Some(samples) = shared_folder::shared_folder("samples") {
        let text = std::fs::read_to_string(samples.join("siem_response.ndjson")).unwrap();
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("\"akamai_siem\""))
            .collect();
        for (index, (raw, want)) in samples.iter().zip([110_100, 110_201, 110_210]).enumerate() {
            let rule = classify(&rules, &wazuh_line(raw)).unwrap();
            assert_eq!(rule.id, want);
            table.push(format!(
                "{} (level {:>2}) <- shared sample event {}",
                rule.id,
                rule.level,
                index + 1
            ));
        }
    }

    // Collector diagnostics.
    for (code, want, level) in [
        ("auth_failed", 110_400, 12),
        ("gap", 110_401, 12),
        ("api_unavailable", 110_402, 9),
        ("config_refused", 110_407, 10),
        ("behind", 110_403, 7),
        ("decode_errors", 110_404, 5),
        ("locked", 110_405, 5),
        ("retrying", 110_406, 3),
        ("config_resumed", 110_406, 3),
        ("summary", 110_002, 0),
        ("push_auth_failed", 110_408, 8),
        ("bad_body", 110_404, 5),
        ("too_many_connections", 110_405, 5),
        ("recovered", 110_406, 3),
    ] {
        let line = format!(
            r#"{{"integration":"akamai","collector":{{"level":"error","code":"{code}","message":"m"}}}}"#
        );
        let rule = classify(&rules, &line).unwrap();
        assert_eq!((rule.id, rule.level), (want, level), "{code}");
        table.push(format!(
            "{} (level {:>2}) <- collector diagnostic {code}",
            rule.id, rule.level
        ));
    }
    eprintln!("{}", table.join("\n"));
}

#[test]
fn repeated_denies_and_attacks_on_several_hosts_are_correlated() {
    let rules = load_rules();
    let denies = rules.iter().find(|r| r.id == 110_300).unwrap();
    let spread = rules.iter().find(|r| r.id == 110_301).unwrap();
    let fake = FakeAkamai::start_default().unwrap();
    let ids = fake.append_events_at(10, now() - 10.0);
    let mut deny_groups = 0;
    let mut attack_groups = 0;
    for id in ids {
        let rule = classify(&rules, &wazuh_line(&fake.raw_event_line(id))).unwrap();
        deny_groups += usize::from(
            rule.groups
                .contains(denies.if_matched_group.as_ref().unwrap()),
        );
        attack_groups += usize::from(
            rule.groups
                .contains(spread.if_matched_group.as_ref().unwrap()),
        );
    }
    // Kinds 0, 2, 4 are denied web attacks, 6 a denied bot, 8 a denied rate control; 1, 3, 5
    // are alerted or monitored web attacks.
    assert_eq!(
        deny_groups, 5,
        "every denied event feeds the repeated-deny correlation"
    );
    assert_eq!(
        attack_groups, 6,
        "every web-attack family feeds the several-hosts correlation"
    );
}

/// Wazuh's pre-decoding of an RFC 3164 message (what remoted and analysisd do before any
/// decoder): the priority goes, the header gives hostname and program name, the rest is the log.
fn predecode_rfc3164(message: &str) -> (String, String, String) {
    let header = regex::Regex::new(
        r"^<\d{1,3}>([A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d) (\S+) ([^:\[\s]+)(?:\[\d+\])?: (.*)$",
    )
    .unwrap();
    let captures = header
        .captures(message)
        .unwrap_or_else(|| panic!("not an RFC 3164 message: {message:.120}"));
    (
        captures[2].to_string(),
        captures[3].to_string(),
        captures[4].to_string(),
    )
}

/// The decoder file's program-name decoder and whether its child runs the JSON plugin on what
/// follows the header.
fn load_syslog_decoder() -> regex::Regex {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("wazuh/akamai_decoders.xml");
    let text = std::fs::read_to_string(path).unwrap();
    // Wazuh reads a decoder file as a list of elements without a common root.
    let wrapped = format!("<root>{text}</root>");
    let document = roxmltree::Document::parse(&wrapped).expect("well-formed decoders");
    let decoders: Vec<_> = document
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("decoder"))
        .collect();
    let parent = decoders
        .iter()
        .find(|d| d.attribute("name") == Some("akamai-siem"))
        .expect("an akamai-siem decoder");
    let program = parent
        .children()
        .find(|c| c.has_tag_name("program_name"))
        .and_then(|c| c.text())
        .expect("it keys on the program name");
    let child = decoders
        .iter()
        .find(|d| {
            d.children()
                .any(|c| c.has_tag_name("parent") && c.text() == Some("akamai-siem"))
        })
        .expect("a child decoder");
    let plugin = child
        .children()
        .find(|c| c.has_tag_name("plugin_decoder"))
        .expect("the child runs a plugin");
    assert_eq!(plugin.text(), Some("JSON_Decoder"));
    assert_eq!(plugin.attribute("offset"), Some("after_parent"));
    regex::Regex::new(program).unwrap()
}

#[test]
fn lines_by_remote_syslog_trigger_the_same_rules_as_from_a_file() {
    let rules = load_rules();
    let program_name = load_syslog_decoder();
    let harness = Harness::with_defaults();
    let ids = harness.fake.append_events_at(20, now() - 10.0);
    // A receiver that behaves like Wazuh's remoted: it reads a session to its end, then closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = std::thread::spawn(move || {
        let mut received = String::new();
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut session = String::new();
            std::io::Read::read_to_string(&mut stream, &mut session).unwrap();
            let done = session.is_empty();
            received.push_str(&session);
            if done {
                return received;
            }
        }
        received
    });
    harness
        .run(&["--output", &format!("syslog://127.0.0.1:{port}")])
        .assert_code(0);
    // An empty session tells the receiver thread that the run is over.
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    let received = receiver.join().unwrap();
    let messages: Vec<&str> = received.lines().collect();
    assert_eq!(messages.len(), 20);
    for (message, id) in messages.iter().zip(ids) {
        let (_host, program, log) = predecode_rfc3164(message);
        assert!(program_name.is_match(&program), "program name {program}");
        let by_syslog = classify_decoded(&rules, "akamai-siem", &log).unwrap();
        // Without the decoder the stock json decoder never sees it (measured: rule 1002).
        let by_file = classify(&rules, &wazuh_line(&harness.fake.raw_event_line(id))).unwrap();
        assert_eq!(
            by_syslog.id, by_file.id,
            "event {id}: {} by syslog, {} from a file",
            by_syslog.description, by_file.description
        );
        assert!(by_syslog.level >= 3, "event {id} alerts");
    }
}

#[test]
fn every_shipped_wazuh_file_is_well_formed_xml() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("wazuh");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Snippets and decoder files are lists of elements, as Wazuh reads them.
            if let Err(error) = roxmltree::Document::parse(&format!("<root>{text}</root>")) {
                panic!("{}: {error}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked} files");
}

#[test]
fn a_tenants_events_and_diagnostics_trigger_the_same_rules_and_carry_its_name() {
    let rules = load_rules();
    let fake = FakeAkamai::start_default().unwrap();
    let tags = akamai_siem::Tags {
        tenant: Some("acme-eu".into()),
        fields: vec![("customer".into(), "ACME".into())],
    };
    let mut tagged = Formatter::new(&OutputSettings {
        target: OutputTarget::Stdout,
        format: Format::Wazuh,
        max_line_bytes: CAP,
        tags,
    });
    for id in fake.append_events_at(10, now() - 10.0) {
        let raw = fake.raw_event_line(id);
        let mut out = Vec::new();
        tagged.write(
            raw.as_bytes(),
            Value::parse(raw.as_bytes()).unwrap(),
            &mut out,
        );
        let line = String::from_utf8(out).unwrap();
        let value: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(value["tenant"], "acme-eu");
        assert_eq!(value["customer"], "ACME");
        assert_wazuh_safe(&line);
        let plain_line = wazuh_line(&raw);
        let plain = classify(&rules, &plain_line).unwrap();
        let rule = classify(&rules, &line).unwrap();
        assert_eq!(rule.id, plain.id, "event {id}");
        // The alert names the tenant; the single-account alert reads as it always did.
        let tagged_text = describe(rule, &line);
        assert!(tagged_text.starts_with("[acme-eu] Akamai"), "{tagged_text}");
        let plain_text = describe(plain, &plain_line);
        assert!(plain_text.starts_with("Akamai"), "{plain_text}");
        assert!(!plain_text.contains("$("), "{plain_text}");
    }
    // A tenant's diagnostic, as the logging writes it: top-level tenant, named in the message.
    let line = r#"{"integration":"akamai","tenant":"acme-eu","collector":{"level":"error","code":"auth_failed","message":"[acme-eu] the API rejected the credentials"}}"#;
    let rule = classify(&rules, line).unwrap();
    assert_eq!(rule.id, 110_400);
    assert!(
        rule.description.contains("$(collector.message)"),
        "{}",
        rule.description
    );
}

/// A rule's description as Wazuh renders it (analysisd's ParseRuleComment): each `$(field)`
/// becomes the field's value, or nothing when the event has no such field.
fn describe(rule: &Rule, line: &str) -> String {
    let value: Json = serde_json::from_str(line).unwrap();
    let mut fields = BTreeMap::new();
    flatten(&value, "", &mut fields);
    let pattern = regex::Regex::new(r"\$\(([^)]*)\)").unwrap();
    pattern
        .replace_all(&rule.description, |c: &regex::Captures| {
            fields.get(&c[1]).cloned().unwrap_or_default()
        })
        .into_owned()
}
