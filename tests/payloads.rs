//! docs/mqtt.md against what the daemon really publishes, so that the
//! reference cannot drift from the code.
//!
//! One run of `edgeclip run` on the demo clip (with a GPIO output and input
//! on a simulated chip, so that the stats carry every section), against a
//! real Mosquitto, with every command sent once; then the document is read:
//!
//! - its topic table: every topic the daemon published matches exactly one
//!   row, every row was seen, a text payload is one of the values its row
//!   names (in backquotes), a JPEG is a JPEG, an empty payload is allowed
//!   only where the row says "empty", and the topics a later subscriber
//!   gets as retained are exactly those of the rows that say so;
//! - its JSON examples (` ```json <kind> ` blocks): the keys of every real
//!   payload of a kind, at every depth, and the types of their values equal
//!   the example's. A field added, removed or retyped in
//!   src/publish/payloads.rs fails here until the document follows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::{config, events, last_values, Daemon};
use crate::support::demo::{clip, truth_visits};
use crate::support::mosquitto::{Mosquitto, MosquittoOptions};
use crate::support::paths::repo;
use crate::support::subscriber::{Received, Subscriber};
use crate::support::timing::{emulated, patience};

/// What the document's placeholders stand for in this test's run; any other
/// `<name>` is one topic level (or part of one).
const PLACEHOLDERS: [(&str, &str); 3] =
    [("<prefix>", "edgeclip"), ("<node>", "test"), ("<discovery_prefix>", "homeassistant")];

/// Objects whose keys are names (cameras in the stats, labels in the
/// scores), not fields: their values are compared, under the key `<name>`.
const KEYED_BY_NAME: [&str; 3] = ["cameras", "scores", "thresholds"];

/// What a row of the topic table says a payload is.
#[derive(Debug, Clone, PartialEq)]
enum Payload {
    /// JSON of one of these kinds (the example blocks' names).
    Json(Vec<String>),
    Jpeg,
    /// Any UTF-8 text.
    Text,
    /// One of these values.
    OneOf(Vec<String>),
}

/// A row of the topic table.
#[derive(Debug)]
struct Row {
    topic: String,
    pattern: regex::Regex,
    /// edgeclip, or who else publishes on it.
    from: String,
    retained: bool,
    payload: Payload,
    /// An empty payload is allowed (a retained message deleted).
    empty: bool,
}

/// The backquoted spans of a text, in order.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// What matches a documented topic in this test's run.
fn topic_regex(topic: &str) -> regex::Regex {
    let mut pattern = regex::escape(topic);
    for (placeholder, value) in PLACEHOLDERS {
        pattern = pattern.replace(placeholder, value);
    }
    let level = regex::Regex::new("<[a-z_]+>").unwrap().replace_all(&pattern, "[^/]+").into_owned();
    regex::Regex::new(&format!("^{level}$")).unwrap()
}

/// The topic table of docs/mqtt.md.
fn topic_table(doc: &str) -> Vec<Row> {
    let mut lines = doc.lines().skip_while(|l| !l.starts_with("| topic | from | QoS | retained | payload |")).skip(2);
    let mut rows = Vec::new();
    while let Some(line) = lines.next().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [topic, from, _qos, retained, payload] = cells[..] else { panic!("a topic row of 5 cells: {line}") };
        let topic = code_spans(topic).into_iter().next().unwrap_or_else(|| panic!("a `topic`: {line}"));
        let pattern = topic_regex(&topic);
        let values = code_spans(payload);
        let kind = if payload.starts_with("JSON") {
            Payload::Json(values)
        } else if payload.starts_with("JPEG") {
            Payload::Jpeg
        } else if payload.starts_with("Text") {
            Payload::Text
        } else {
            assert!(!values.is_empty(), "the values of a text payload, in backquotes: {line}");
            Payload::OneOf(values)
        };
        assert!(["yes", "no"].contains(&retained), "retained is yes or no: {line}");
        rows.push(Row {
            topic,
            pattern,
            from: from.to_string(),
            retained: retained == "yes",
            payload: kind,
            empty: payload.contains("empty"),
        });
    }
    assert!(rows.len() >= 10, "the topic table of docs/mqtt.md: {rows:#?}");
    rows
}

/// The ` ```json <kind> ` blocks of docs/mqtt.md, by kind.
fn json_examples(doc: &str) -> BTreeMap<String, Value> {
    let mut examples = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(kind) = line.strip_prefix("```json ") else { continue };
        let text: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        let value = serde_json::from_str(&text.join("\n")).unwrap_or_else(|e| panic!("the {kind} example: {e}"));
        assert!(examples.insert(kind.trim().to_string(), value).is_none(), "one example of {kind}");
    }
    examples
}

/// The JSON type of a value; numbers with a fraction and integers differ
/// (`1.0` and `1` are different formats).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every path in `value` (`mqtt.connected`, `gpio.outputs[]`) and the
/// types seen there, added to `shape`.
fn add_shape(value: &Value, path: &str, shape: &mut BTreeMap<String, BTreeSet<&'static str>>) {
    shape.entry(path.to_string()).or_default().insert(type_name(value));
    let child = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        Value::Object(fields) => {
            for (key, v) in fields {
                let key = if KEYED_BY_NAME.contains(&path) { "<name>" } else { key.as_str() };
                add_shape(v, &child(key), shape);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| add_shape(v, &format!("{path}[]"), shape)),
        _ => {}
    }
}

fn shape_of(value: &Value) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut shape = BTreeMap::new();
    add_shape(value, "", &mut shape);
    shape
}

/// The differences between the shape of real payloads and the documented
/// one. A field that can be null (`mqtt.last_error` until there is a
/// connection problem) is documented with its other type, and must have
/// been published with it at least once.
fn shape_differences(
    real: &BTreeMap<String, BTreeSet<&'static str>>,
    documented: &BTreeMap<String, BTreeSet<&'static str>>,
) -> Vec<String> {
    let mut differences = Vec::new();
    for (path, types) in real {
        let Some(doc) = documented.get(path) else {
            differences.push(format!("'{path}' ({types:?}) is published but not documented"));
            continue;
        };
        let mut types = types.clone();
        if !doc.contains("null") {
            types.remove("null");
        }
        if &types != doc {
            differences.push(format!("'{path}' is published as {types:?}, documented as {doc:?}"));
        }
    }
    for (path, doc) in documented {
        if !real.contains_key(path) {
            differences.push(format!("'{path}' ({doc:?}) is documented but was not published"));
        }
    }
    differences
}

/// A labels file's text without the line of `label`.
fn without_label(text: &str, label: &str) -> String {
    let kept: Vec<&str> = text.lines().filter(|l| l.split(':').next().map(str::trim) != Some(label)).collect();
    assert_eq!(kept.len() + 1, text.lines().count(), "one line of '{label}'");
    kept.join("\n") + "\n"
}

/// Labels of the demo labels file that can fire (not `!`, not comments).
fn positive_labels(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| l.split(':').next().unwrap().trim().to_string())
        .collect()
}

fn count(messages: &[Received], topic: &str, payload: &[u8]) -> usize {
    messages.iter().filter(|m| m.topic == topic && m.payload == payload).count()
}

/// Runs the daemon through everything it can publish and returns what a
/// subscriber got, and the topics a subscriber that came after the stop
/// got as retained.
fn run_everything() -> (Vec<Received>, BTreeSet<String>) {
    let mut broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "payloads-sub", &["edgeclip/#", "homeassistant/#"]);
    // The daemon starts while the broker is away, so that its stats carry a
    // connection problem (`mqtt.last_error`, null until there is one). A
    // stopped Mosquitto saves the subscriber's session, which is back with it.
    broker.stop();
    // An output on every label and an input held active (frames inferred).
    let gpio = tempfile::tempdir().unwrap();
    std::fs::write(gpio.path().join("4"), "1\n").unwrap();
    let lines = format!(
        "[[cameras.demo.outputs]]\nline = 17\nchip = \"simulated:{dir}\"\nlabels = [\"*\"]\n\
         [cameras.demo.input]\nline = 4\nchip = \"simulated:{dir}\"\nhold_s = 0\n\
         [homeassistant]\nscore_sensors = true\n",
        dir = gpio.path().display()
    );
    // Looping at the camera's pace, so that stats see an active event; under
    // an emulator as fast as it is inferred, which is slow enough.
    let source = format!("file:{}?{}loop", clip().display(), if emulated() { "" } else { "fps=20&" });
    let mut daemon =
        Daemon::start(&config(&format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port()), &source, &lines));
    daemon.wait_stderr(patience(Duration::from_secs(60)), "cannot connect to the MQTT broker");
    broker.restart();
    // Commands are sent once frames are inferred: the daemon has long
    // subscribed by then.
    sub.wait_for(patience(Duration::from_secs(60)), "a first inferred frame", |m| {
        m.iter().any(|r| {
            r.topic == "edgeclip/test/stats"
                && serde_json::from_slice::<Value>(&r.payload)
                    .is_ok_and(|s| s["cameras"]["demo"]["frames"]["inferred"].as_u64() > Some(0))
        })
    });

    // enabled/set: the state is published again.
    let before = count(&sub.all(), "edgeclip/test/demo/enabled", b"ON");
    sub.publish("edgeclip/test/demo/enabled/set", b"ON", false);
    sub.wait_for(patience(Duration::from_secs(5)), "enabled ON again", |m| {
        count(m, "edgeclip/test/demo/enabled", b"ON") > before
    });
    let labels = std::fs::read_to_string(daemon.labels_file()).unwrap();
    // example/set on a background label with an example folder (it never
    // fires, so the events stay the clip's): the current frame is saved.
    let folder = daemon.labels_file().with_file_name("background");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(daemon.labels_file(), format!("{labels}!background: a grey wall; image:background/\n")).unwrap();
    daemon.wait_stderr(patience(Duration::from_secs(30)), "18 labels from");
    sub.publish("edgeclip/test/demo/example/set", b"background", false);
    sub.wait_for(patience(Duration::from_secs(15)), "the example saved", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/demo/example")
    });
    // Home Assistant's status: discovery again.
    let visited: Vec<String> = truth_visits().into_iter().map(|v| v.0).collect();
    let kept = &visited[0];
    let kept_config = format!("homeassistant/binary_sensor/test/demo_{}/config", kept.replace('-', "_"));
    let before = sub.all().iter().filter(|m| m.topic == kept_config).count();
    sub.publish("homeassistant/status", b"online", false);
    sub.wait_for(patience(Duration::from_secs(5)), "discovery again", |m| {
        m.iter().filter(|r| r.topic == kept_config).count() > before
    });
    // labels/set (the demo labels, with no example folder: a command may
    // not name files) without a label the clip never shows: its retained
    // topics are deleted (empty payloads).
    let removed = positive_labels(&labels).into_iter().rfind(|l| !visited.contains(l)).unwrap();
    sub.publish("edgeclip/test/demo/labels/set", without_label(&labels, &removed).as_bytes(), false);
    let removed_config = format!("homeassistant/binary_sensor/test/demo_{}/config", removed.replace('-', "_"));
    sub.wait_for(patience(Duration::from_secs(10)), "the removed label's entity deleted", |m| {
        count(m, &removed_config, b"") > 0
    });

    // A start and an end, and stats while an event was active.
    sub.wait_for(patience(Duration::from_secs(120)), "an event's end and stats with an active event", |m| {
        events(m, "edgeclip/test/demo/events").iter().any(|e| e["type"] == "end")
            && m.iter().any(|r| {
                r.topic == "edgeclip/test/stats"
                    && serde_json::from_slice::<Value>(&r.payload)
                        .is_ok_and(|s| s["cameras"]["demo"]["active"].as_array().is_some_and(|a| !a.is_empty()))
            })
    });
    // Searches of the history: every key of a request (on the fleet's topic;
    // its zone matches nothing) and one with hits (on the node's topic); and
    // a stored snapshot.
    let full = r#"{"camera":"demo","id":"p1","keyframes":true,"limit":5,"since":"2020-01-01T00:00:00Z","text":"a red circle","until":"2100-01-01T00:00:00Z","zone":"nowhere"}"#;
    sub.publish("edgeclip/search", full.as_bytes(), false);
    sub.publish("edgeclip/test/search", br#"{"id":"p3","text":"a red circle"}"#, false);
    sub.publish("edgeclip/test/snapshot/get", b"event/1", false);
    sub.wait_for(patience(Duration::from_secs(30)), "the search replies and the stored snapshot", |m| {
        ["edgeclip/search/reply/p1", "edgeclip/search/reply/p3", "edgeclip/test/history/event/1/snapshot"]
            .iter()
            .all(|t| m.iter().any(|r| r.topic == *t))
    });
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(patience(Duration::from_secs(10))).success(), "{}", daemon.stderr_text());
    let all = sub.wait_for(patience(Duration::from_secs(5)), "offline", |m| {
        count(m, "edgeclip/test/availability", b"offline") > 0
    });

    // A subscriber that comes now gets the retained messages: as many
    // topics as the documented retained rows have a message on (not
    // deleted), then anything beyond that arrives within a moment.
    let rows = topic_table(&doc());
    let expected = last_values(&all)
        .iter()
        .filter(|(topic, payload)| !payload.is_empty() && rows.iter().any(|r| r.retained && r.pattern.is_match(topic)))
        .count();
    let later = Subscriber::connect(broker.port(), "payloads-later", &["edgeclip/#", "homeassistant/#"]);
    later.wait_for(patience(Duration::from_secs(10)), "the retained messages", |m| {
        m.iter().map(|r| &r.topic).collect::<BTreeSet<_>>().len() >= expected
    });
    std::thread::sleep(Duration::from_millis(500));
    let retained = later.all().into_iter().map(|m| m.topic).collect();
    (all, retained)
}

fn doc() -> String {
    std::fs::read_to_string(repo().join("docs/mqtt.md")).unwrap()
}

#[test]
fn docs_mqtt_md_is_what_the_daemon_publishes() {
    let doc = doc();
    let rows = topic_table(&doc);
    let examples = json_examples(&doc);
    let (all, retained) = run_everything();

    let mut seen = vec![false; rows.len()];
    let mut shapes: BTreeMap<String, BTreeMap<String, BTreeSet<&'static str>>> = BTreeMap::new();
    for m in &all {
        let matching: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].pattern.is_match(&m.topic)).collect();
        let [i] = matching[..] else {
            panic!("'{}' matches {} rows of the topic table in docs/mqtt.md, not one", m.topic, matching.len())
        };
        seen[i] = true;
        let row = &rows[i];
        if m.payload.is_empty() {
            assert!(row.empty, "an empty payload on '{}', which row '{}' does not allow", m.topic, row.topic);
            continue;
        }
        match &row.payload {
            Payload::Json(kinds) => {
                let value: Value = serde_json::from_slice(&m.payload).unwrap_or_else(|e| {
                    panic!("'{}': not JSON ({e}): {:?}", m.topic, String::from_utf8_lossy(&m.payload))
                });
                // Several kinds on one topic are told apart by `type`
                // (`event-start`, `event-end`).
                let kind = match &kinds[..] {
                    [kind] => kind.clone(),
                    _ => kinds
                        .iter()
                        .find(|k| value["type"].as_str().is_some_and(|t| k.ends_with(&format!("-{t}"))))
                        .unwrap_or_else(|| panic!("'{}': a payload of none of {kinds:?}: {value}", m.topic))
                        .clone(),
                };
                add_shape(&value, "", shapes.entry(kind).or_default());
            }
            Payload::Jpeg => assert!(
                m.payload.starts_with(&[0xFF, 0xD8]) && m.payload.ends_with(&[0xFF, 0xD9]),
                "'{}': not a JPEG",
                m.topic
            ),
            Payload::Text => assert!(std::str::from_utf8(&m.payload).is_ok(), "'{}': not text", m.topic),
            Payload::OneOf(values) => {
                let text = String::from_utf8_lossy(&m.payload);
                assert!(
                    values.iter().any(|v| *v == text),
                    "'{}': '{text}' is none of {values:?} (docs/mqtt.md)",
                    m.topic
                );
            }
        }
    }
    let unseen: Vec<&str> = rows.iter().zip(&seen).filter(|(_, s)| !**s).map(|(r, _)| r.topic.as_str()).collect();
    assert!(unseen.is_empty(), "documented topics never seen: {unseen:?}");

    // Each documented JSON kind, as published.
    let named: BTreeSet<&String> =
        rows.iter().flat_map(|r| if let Payload::Json(k) = &r.payload { k.iter().collect() } else { vec![] }).collect();
    assert_eq!(named, examples.keys().collect(), "the JSON kinds of the topic table and the example blocks");
    for (kind, example) in &examples {
        let real = shapes.get(kind).unwrap_or_else(|| panic!("no {kind} payload was published"));
        let differences = shape_differences(real, &shape_of(example));
        assert!(differences.is_empty(), "the {kind} example in docs/mqtt.md:\n{}", differences.join("\n"));
    }

    // Retained: what a later subscriber got is exactly the topics of rows
    // that say so (and still have a message).
    for topic in &retained {
        let row = rows.iter().find(|r| r.pattern.is_match(topic)).unwrap();
        assert!(row.retained && row.from == "edgeclip", "'{topic}' is retained; its row '{}' says not", row.topic);
    }
    for row in rows.iter().filter(|r| r.retained) {
        assert!(retained.iter().any(|t| row.pattern.is_match(t)), "nothing retained on '{}'", row.topic);
    }
}

#[test]
fn the_shape_comparison_catches_a_field_added_removed_or_retyped() {
    let doc = shape_of(&serde_json::json!({"a": 1, "b": {"c": "x", "d": [1.5]}, "e": "text"}));
    let same = shape_of(&serde_json::json!({"a": 7, "b": {"c": "y", "d": [2.0, 3.25]}, "e": null}));
    let mut both = same.clone();
    add_shape(&serde_json::json!({"a": 7, "b": {"c": "y", "d": []}, "e": "x"}), "", &mut both);
    assert_eq!(shape_differences(&both, &doc), Vec::<String>::new());
    // A field only ever null has not shown its type.
    assert_eq!(shape_differences(&same, &doc).len(), 1);
    let added = shape_of(&serde_json::json!({"a": 1, "b": {"c": "x", "d": [1.5], "z": 1}, "e": "t"}));
    assert_eq!(shape_differences(&added, &doc).len(), 1);
    let removed = shape_of(&serde_json::json!({"a": 1, "b": {"d": [1.5]}, "e": "t"}));
    assert_eq!(shape_differences(&removed, &doc).len(), 1);
    let retyped = shape_of(&serde_json::json!({"a": 1.0, "b": {"c": "x", "d": [1]}, "e": "t"}));
    assert_eq!(shape_differences(&retyped, &doc).len(), 2);
    // Names as keys are one entry, whatever the names.
    let keyed = shape_of(&serde_json::json!({"cameras": {"front": {"x": 1}, "back": {"x": 2}}}));
    assert!(keyed.contains_key("cameras.<name>.x"), "{keyed:?}");
}
