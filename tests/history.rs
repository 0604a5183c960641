//! The event history end to end: the real binary, a real Mosquitto, and
//! the store's SQLite file read back by the test.
//!
//! - Nothing committed is lost: the daemon aborted in the middle of a
//!   commit (a power cut, as near as a process gets: `EDGECLIP_FAULT`) and
//!   then killed with SIGKILL, both while the broker is down; after a
//!   restart every committed message arrives, in order.
//! - Search: the demo clip replayed with the store on; `edgeclip search`
//!   ranks each shape's event first for its own words, and `--like` ranks
//!   the same label's events first.
//! - A disk that refuses writes: events are published from memory, counted
//!   and logged; the daemon goes on.
//! - A fleet: two daemons on one Mosquitto that saw different shapes; a
//!   search over the broker returns the node that saw it first, and a node
//!   that is frozen is reported, not waited for.
//!
//! Cost on the 2-core machine: about a minute in all, mostly the replays.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use edgeclip::store::{OutboxMessage, Store};

use crate::support::daemon::{broker_at, config, looping_source, replay_source, Daemon, EVENTS_TOPIC, STATS_TOPIC};
use crate::support::demo::{clip_frames, truth_visits};
use crate::support::mosquitto::{Mosquitto, MosquittoOptions};
use crate::support::paths::demo_model_dir;
use crate::support::process::{edgeclip_command, SpawnWatched};
use crate::support::subscriber::Subscriber;
use crate::support::timing::patience;

/// The configuration of [`config`] with the store at `db` (outside the
/// daemon's own folder, so that a second run finds it).
fn with_store_at(config: &str, db: &Path) -> String {
    let replaced = config.replace("path = \"@DIR@/history.db\"", &format!("path = \"{}\"", db.display()));
    assert_ne!(replaced, config, "the support configuration names its store");
    replaced
}

/// The undelivered messages of the store at `db`, oldest first.
fn outbox(db: &Path) -> Vec<OutboxMessage> {
    Store::open_read_only(db).unwrap().outbox_after(0, 100_000).unwrap()
}

/// Waits until the store at `db` holds at least `n` undelivered messages.
fn wait_outbox(db: &Path, n: usize, daemon: &Daemon) {
    let deadline = Instant::now() + patience(Duration::from_secs(60));
    loop {
        if db.exists() && Store::open_read_only(db).and_then(|s| s.outbox_after(0, n)).is_ok_and(|m| m.len() >= n) {
            return;
        }
        assert!(Instant::now() < deadline, "fewer than {n} messages stored:\n{}", daemon.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_abort_mid_commit_and_a_sigkill_with_the_broker_down_lose_no_committed_event() {
    let mut broker = Mosquitto::start(MosquittoOptions::default());
    let port = broker.port();
    broker.stop();
    let store_dir = tempfile::tempdir().unwrap();
    let db = store_dir.path().join("history.db");
    let looping = with_store_at(&config(&broker_at(port), &looping_source(10), ""), &db);

    // 1. A power cut in the middle of the 7th event's commit.
    let mut daemon = Daemon::start_with_env(&looping, &[("EDGECLIP_FAULT", "abort:store-commit:7")]);
    let status = daemon.wait_exit(patience(Duration::from_secs(90)));
    assert!(!status.success(), "aborted: {status}");
    assert!(daemon.stderr_text().contains("fault injected at 'store-commit'"), "{}", daemon.stderr_text());
    let store = Store::open_read_only(&db).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let after_abort = outbox(&db);
    assert_eq!(after_abort.len(), 6, "the six committed messages, not the seventh");
    drop(store);

    // 2. More events, then SIGKILL.
    let mut daemon = Daemon::start(&looping);
    wait_outbox(&db, 12, &daemon);
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(patience(Duration::from_secs(10)));
    let stored = outbox(&db);
    assert!(stored.len() >= 12);
    assert_eq!(stored[..6], after_abort[..], "the first run's messages are still first");
    assert_eq!(Store::open_read_only(&db).unwrap().integrity_check().unwrap(), "ok");

    // 3. The broker is back; a daemon whose camera is off delivers the rest.
    broker.restart();
    let sub = Subscriber::connect(port, "history-sub", &[EVENTS_TOPIC]);
    let quiet = looping.replace("[cameras.demo]\n", "[cameras.demo]\nenabled = false\n");
    let mut daemon = Daemon::start(&quiet);
    let got = sub.wait_for(patience(Duration::from_secs(30)), "the stored events", |m| m.len() >= stored.len());
    let payloads: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
    let expected: Vec<&[u8]> = stored.iter().map(|m| m.payload.as_slice()).collect();
    assert_eq!(payloads[..expected.len()], expected[..], "every stored message, in order");
    // Each carries its event's id: (id, type) names a message once.
    let keys: BTreeSet<(i64, String)> = got
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            (v["id"].as_i64().expect("an id"), v["type"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(keys.len(), got.len(), "no message twice here (a repeat would carry the same id and type)");
    // Acknowledged, so removed from the outbox.
    let deadline = Instant::now() + patience(Duration::from_secs(10));
    while !outbox(&db).is_empty() {
        assert!(Instant::now() < deadline, "the outbox is not emptied: {}", daemon.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon.stderr_text().contains("not delivered before the last stop"), "{}", daemon.stderr_text());
    assert!(daemon.stop().success());
}

#[test]
fn a_store_that_cannot_be_written_costs_the_history_not_the_events() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "history-full", &[EVENTS_TOPIC, STATS_TOPIC]);
    let text = config(&broker_at(broker.port()), &looping_source(10), "");
    let mut daemon = Daemon::start_with_env(&text, &[("EDGECLIP_FAULT", "fail:store-write")]);
    let got = sub.wait_for(patience(Duration::from_secs(60)), "events and a stats message counting errors", |m| {
        m.iter().filter(|r| r.topic == EVENTS_TOPIC).count() >= 2
            && m.iter().any(|r| {
                r.topic == STATS_TOPIC
                    && serde_json::from_slice::<Value>(&r.payload)
                        .is_ok_and(|s| s["store"]["errors"].as_u64() >= Some(2))
            })
    });
    // Published from memory, without an id the store never gave.
    let first: Value = serde_json::from_slice(&got.iter().find(|r| r.topic == EVENTS_TOPIC).unwrap().payload).unwrap();
    assert_eq!((first["type"].as_str(), first["id"].as_i64()), (Some("start"), None));
    let log = daemon.stderr_text();
    assert!(log.contains("writing an event") && log.contains("published from memory"), "{log}");
    assert!(daemon.stop().success(), "{}", daemon.stderr_text());
}

/// `edgeclip ARGS` (the daemon's configuration is one of them): its stdout.
fn edgeclip(args: &[&str]) -> String {
    let out = edgeclip_command().args(args).output_watched().unwrap();
    assert!(out.status.success(), "edgeclip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The demo labels' prompts, by name ("blue-diamond" -> "a blue diamond").
fn prompts() -> Vec<(String, String)> {
    std::fs::read_to_string(demo_model_dir().join("labels.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| {
            let (name, prompt) = l.split_once(':').unwrap();
            (name.trim().to_string(), prompt.trim().to_string())
        })
        .collect()
}

#[test]
fn search_finds_each_shape_by_its_words_and_by_a_like_event() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let replay = format!("exit_when_done = true\n{}", config(&broker_at(broker.port()), &replay_source(), ""));
    let mut daemon = Daemon::start(&replay);
    assert!(daemon.wait_exit(patience(Duration::from_secs(300))).success(), "{}", daemon.stderr_text());
    let config_file = daemon.labels_file().with_file_name("edgeclip.toml");
    let config_arg = config_file.to_str().unwrap();

    let events = json_lines(&edgeclip(&["events", "--config", config_arg, "--json", "--limit", "1000"]));
    let shapes: Vec<String> = truth_visits().into_iter().map(|v| v.0).collect();
    assert_eq!(events.len(), shapes.len(), "one event per visit: {events:#?}");
    let prompts = prompts();
    for shape in &shapes {
        let words = &prompts.iter().find(|(name, _)| name == shape).unwrap().1;
        let hits = json_lines(&edgeclip(&["search", "--config", config_arg, words, "--json", "--events-only"]));
        assert_eq!(hits[0]["label"], shape.as_str(), "'{words}': {hits:#?}");
        assert_eq!(hits[0]["kind"], "event");
        assert!(hits[0]["snapshot_topic"].as_str().unwrap().ends_with("/snapshot"));
    }
    // --image: a frame of the clip in the middle of each visit.
    let frames = clip_frames();
    let pictures = tempfile::tempdir().unwrap();
    for (shape, _, (first, last)) in truth_visits() {
        let picture = pictures.path().join(format!("{shape}.jpg"));
        std::fs::write(&picture, &frames[((first + last) / 2) as usize]).unwrap();
        let hits = json_lines(&edgeclip(&[
            "search",
            "--config",
            config_arg,
            "--image",
            picture.to_str().unwrap(),
            "--json",
            "--events-only",
        ]));
        assert_eq!(hits[0]["label"], shape.as_str(), "--image of {shape}: {hits:#?}");
    }
    // --export: the events and their snapshots.
    let export = pictures.path().join("export");
    edgeclip(&["events", "--config", config_arg, "--export", export.to_str().unwrap()]);
    let exported = std::fs::read_to_string(export.join("events.jsonl")).unwrap();
    assert_eq!(json_lines(&exported), events);
    for e in &events {
        let jpeg = std::fs::read(export.join(format!("event-{}.jpg", e["id"]))).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]), "event {}'s snapshot", e["id"]);
    }
    // --like an event: the others are other shapes, so the closest ones
    // share its colour or its shape; here with a second replay, its twin.
    let first = &events[events.len() - 1];
    let hits = json_lines(&edgeclip(&["search", "--config", config_arg, "--like", &first["id"].to_string(), "--json"]));
    assert!(hits.iter().all(|h| h["id"] != first["id"] || h["kind"] != "event"), "the event itself is not a result");
    // Keyframes (one at the start, of an empty scene) are ranked too.
    assert!(hits.iter().any(|h| h["kind"] == "keyframe"), "{hits:#?}");

    // A second replay into the same store, of the visits of two shapes
    // (the whole clip again would double the test's time): each of their
    // first events finds its twin first.
    let twins = [shapes[0].as_str(), shapes[1].as_str()];
    let again_source = format!("file:{}", clip_of(&twins, pictures.path()).display());
    let again = replay
        .replace(&replay_source(), &again_source)
        .replace("@DIR@/history.db", &config_file.with_file_name("history.db").display().to_string());
    let mut again = Daemon::start(&again);
    assert!(again.wait_exit(patience(Duration::from_secs(300))).success(), "{}", again.stderr_text());
    let all = json_lines(&edgeclip(&["events", "--config", config_arg, "--json", "--limit", "1000"]));
    assert_eq!(all.len(), shapes.len() + twins.len());
    for e in events.iter().filter(|e| twins.contains(&e["label"].as_str().unwrap())) {
        let hits = json_lines(&edgeclip(&[
            "search",
            "--config",
            config_arg,
            "--like",
            &e["id"].to_string(),
            "--json",
            "--events-only",
            "--limit",
            "3",
        ]));
        assert_eq!(hits[0]["label"], e["label"], "--like {}: {hits:#?}", e["id"]);
        assert!(hits[0]["id"].as_i64() > Some(shapes.len() as i64), "its twin of the second replay: {hits:#?}");
    }
}

/// A folder with the clip's frames of the visits of `shapes` (and the
/// empty frames between them), for a node that sees only those.
fn clip_of(shapes: &[&str], dir: &Path) -> PathBuf {
    let frames = clip_frames();
    let folder = dir.join("clip");
    std::fs::create_dir_all(&folder).unwrap();
    let mut n = 0;
    for (label, (first, last), _) in truth_visits() {
        if !shapes.contains(&label.as_str()) {
            continue;
        }
        // Ten empty frames before, so that each visit starts from nothing.
        let from = first.saturating_sub(10) as usize;
        for frame in &frames[from..=(last as usize + 10).min(frames.len() - 1)] {
            std::fs::write(folder.join(format!("{n:05}.jpg")), frame).unwrap();
            n += 1;
        }
    }
    folder
}

#[test]
fn a_fleet_search_merges_the_nodes_and_reports_a_silent_one() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let visits: Vec<String> = truth_visits().into_iter().map(|v| v.0).collect();
    assert!(visits.len() >= 2);
    // Node a sees the first shape of the clip, node b the second.
    let (seen_by_a, seen_by_b) = (visits[0].as_str(), visits[1].as_str());
    let mut nodes = Vec::new();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for (node, shape, dir) in [("a", seen_by_a, &dirs[0]), ("b", seen_by_b, &dirs[1])] {
        let source = format!("file:{}", clip_of(&[shape], dir.path()).display());
        let text =
            config(&broker_at(broker.port()), &source, "").replace("node = \"test\"", &format!("node = \"{node}\""));
        let daemon = Daemon::start(&text);
        nodes.push(daemon);
    }
    for daemon in &nodes {
        daemon.wait_stderr(patience(Duration::from_secs(120)), "its source has ended");
    }
    let prompts = prompts();
    let words = |shape: &str| prompts.iter().find(|(n, _)| n == shape).unwrap().1.clone();
    let url = format!("mqtt://127.0.0.1:{}", broker.port());
    for (shape, node) in [(seen_by_a, "a"), (seen_by_b, "b")] {
        let lines = json_lines(&edgeclip(&[
            "search",
            "--broker",
            &url,
            &words(shape),
            "--json",
            "--events-only",
            "--deadline",
            "10",
        ]));
        let (summary, hits) = lines.split_last().unwrap();
        assert_eq!((hits[0]["node"].as_str(), hits[0]["label"].as_str()), (Some(node), Some(shape)), "{hits:#?}");
        assert_eq!(summary["answered"].as_array().unwrap().len(), 2, "{summary}");
        assert_eq!(summary["silent"], serde_json::json!([]));
        assert!(hits.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()), "merged by score");
    }
    // Requests straight over MQTT: refused ones change nothing, a `like` is
    // for one node's topic, and there it is answered.
    let raw = Subscriber::connect(broker.port(), "fleet-raw", &["edgeclip/search/reply/#"]);
    raw.publish("edgeclip/search", b"not json", false);
    raw.publish("edgeclip/search", br#"{"id":"a/b","text":"x"}"#, false);
    raw.publish("edgeclip/search", br#"{"id":"fleet-like","like":1}"#, false);
    raw.publish("edgeclip/a/search", br#"{"id":"a-like","like":1,"limit":2}"#, false);
    raw.wait_for(patience(Duration::from_secs(10)), "three replies", |m| m.len() >= 3);
    std::thread::sleep(Duration::from_millis(300));
    let replies: Vec<Value> = raw.all().iter().map(|m| serde_json::from_slice(&m.payload).unwrap()).collect();
    assert_eq!(replies.len(), 3, "two nodes refuse a fleet-wide like, one answers its own: {replies:#?}");
    for r in replies.iter().filter(|r| r["id"] == "fleet-like") {
        assert!(r["error"].as_str().unwrap().contains("one node"), "{r}");
    }
    let mine = replies.iter().find(|r| r["id"] == "a-like").unwrap();
    assert_eq!((mine["node"].as_str(), mine["error"].as_str()), (Some("a"), None));
    assert!(mine["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["node"] == "a" && h["id"] != 1 || h["kind"] == "keyframe"));

    // Node b frozen: reported, and the search ends at its deadline.
    nodes[1].signal(libc::SIGSTOP);
    let started = Instant::now();
    let lines = json_lines(&edgeclip(&["search", "--broker", &url, &words(seen_by_a), "--json", "--deadline", "2"]));
    let took = started.elapsed();
    nodes[1].signal(libc::SIGCONT);
    let (summary, hits) = lines.split_last().unwrap();
    assert_eq!(summary["silent"], serde_json::json!(["b"]), "{summary}");
    assert_eq!(summary["answered"], serde_json::json!(["a"]));
    assert_eq!(hits[0]["node"], "a");
    assert!(took < Duration::from_secs(2) + patience(Duration::from_secs(3)), "took {took:?}");
}
