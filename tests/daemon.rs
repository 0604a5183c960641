//! `edgeclip run` end to end: the real binary, a real Mosquitto started on a
//! free port (or the embedded broker), a subscriber that records what
//! arrives, and the demo clip with its ground truth
//! (`models/tiny-shapes/demo.truth.json`).
//!
//! Under an emulator (the aarch64 suite under qemu) inference is about 70
//! times slower, so these tests replay the clip's first two visits instead
//! of all six ([`clip`]), wait [`patience`] times longer, and let the
//! looping sources of the tests that need an event run as fast as they are
//! inferred. Everything they check is the same.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::{
    broker_at, config, events, has_message, last_json, last_values, looping_source, printed_event, replay_source,
    wait_offline, Daemon, AVAILABILITY_TOPIC, EVENTS_TOPIC, STATS_TOPIC,
};
use crate::support::demo::{check_against_truth, clip, clip_frames, expected_events, positive_labels, truth_visits};
use crate::support::mosquitto::{Mosquitto, MosquittoOptions};
use crate::support::subscriber::{Subscriber, SubscriberOptions};
use crate::support::timing::{emulated, patience};

/// GPIO lines on a simulated chip in `dir` (each line a file): a level
/// output (line 17) following `followed`, an active-low pulse output
/// ("BUZZER") on every label, and the input (line 4), which the test sets.
fn simulated_gpio(dir: &std::path::Path, followed: &[&str]) -> String {
    let labels: Vec<String> = followed.iter().map(|l| format!("\"{l}\"")).collect();
    format!(
        r#"
[[cameras.demo.outputs]]
line = 17
chip = "simulated:{dir}"
labels = [{labels}]
[[cameras.demo.outputs]]
line = "BUZZER"
chip = "simulated:{dir}"
labels = ["*"]
mode = "pulse"
pulse_s = 0.05
active_low = true
[cameras.demo.input]
line = 4
chip = "simulated:{dir}"
hold_s = 0
"#,
        dir = dir.display(),
        labels = labels.join(", ")
    )
}

/// A simulated output's log: (time, electrical level) per level written.
fn levels_written(path: &std::path::Path) -> Vec<(std::time::SystemTime, u8)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let (time, level) = l.split_once(' ').unwrap();
            (humantime::parse_rfc3339(time).unwrap(), level.parse().unwrap())
        })
        .collect()
}

fn event_time(e: &Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(e["frame_time"].as_str().unwrap()).unwrap()
}

/// The pins followed the events: the level output rose after each start of
/// a followed label and fell right after its end, the pulse output gave
/// one pulse of at least `pulse_s` per start, and both began and finished
/// at their safe level.
fn check_pins_followed(gpio: &std::path::Path, events: &[Value], followed: &[&str]) {
    let level = levels_written(&gpio.join("17"));
    let mine: Vec<&Value> = events.iter().filter(|e| followed.contains(&e["label"].as_str().unwrap())).collect();
    let levels: Vec<u8> = level.iter().map(|(_, l)| *l).collect();
    let mut expected = vec![0];
    expected.extend(mine.iter().map(|e| u8::from(e["type"] == "start")));
    expected.push(0);
    assert_eq!(levels, expected, "line 17: safe level, then one level per event of {followed:?}, then safe");
    for (i, pair) in mine.chunks(2).enumerate() {
        let (start, end) = (event_time(pair[0]), event_time(pair[1]));
        let (rose, fell) = (level[1 + 2 * i].0, level[2 + 2 * i].0);
        assert!(start <= rose && rose <= end, "line 17 rose at {rose:?}, for the event {start:?} to {end:?}");
        let late = fell.duration_since(end).expect("fell after the event's end");
        assert!(late < patience(Duration::from_secs(1)), "line 17 fell {late:?} after the event's end");
    }

    let buzzer = levels_written(&gpio.join("BUZZER"));
    let starts = events.iter().filter(|e| e["type"] == "start").count();
    let levels: Vec<u8> = buzzer.iter().map(|(_, l)| *l).collect();
    let mut expected = vec![1];
    expected.extend([0, 1].repeat(starts));
    expected.push(1);
    assert_eq!(levels, expected, "BUZZER (active low): one pulse per start, safe (high) at both ends");
    for pulse in buzzer[1..buzzer.len() - 1].chunks(2) {
        let length = pulse[1].0.duration_since(pulse[0].0).unwrap();
        assert!(
            length >= Duration::from_millis(50) && length < patience(Duration::from_millis(500)),
            "a pulse of {length:?}; pulse_s is 0.05"
        );
    }
}

#[test]
fn the_demo_clip_gives_its_ground_truth_over_mosquitto() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "truth-sub", &["edgeclip/#", "homeassistant/#"]);
    // The first two visits' labels drive line 17; the input is held active.
    let visits = truth_visits();
    let followed = [visits[0].0.as_str(), visits[1].0.as_str()];
    let gpio = tempfile::tempdir().unwrap();
    std::fs::write(gpio.path().join("4"), "1\n").unwrap();
    // No frame rate: every frame is inferred, so the replay is the same on
    // any machine.
    let mut daemon = Daemon::start(&format!(
        "exit_when_done = true\n{}",
        config(&broker_at(broker.port()), &replay_source(), &simulated_gpio(gpio.path(), &followed))
    ));
    let status = daemon.wait_exit(patience(Duration::from_secs(300)));
    assert!(status.success(), "exit status {status}; stderr:\n{}", daemon.stderr_text());
    let all = wait_offline(&sub, patience(Duration::from_secs(10)));

    let events = events(&all, EVENTS_TOPIC);
    let starts = check_against_truth(&events);
    assert_eq!(events.len(), expected_events());

    // States: ON at each start, OFF at the end, OFF for every label at start.
    let last = last_values(&all);
    let labels = positive_labels();
    assert_eq!(labels.len(), 16);
    for label in &labels {
        assert_eq!(
            last.get(&format!("edgeclip/test/demo/{label}/state")).map(Vec::as_slice),
            Some(&b"OFF"[..]),
            "{label}"
        );
    }
    for label in starts.keys() {
        let states: Vec<&[u8]> = all
            .iter()
            .filter(|m| m.topic == format!("edgeclip/test/demo/{label}/state"))
            .map(|m| m.payload.as_slice())
            .collect();
        // OFF at start (unless the client was still connecting when the
        // event came: then the ON replaced the queued OFF), ON, OFF.
        assert!(states == [&b"OFF"[..], b"ON", b"OFF"] || states == [&b"ON"[..], b"OFF"], "{label}: {states:?}");
    }

    // Snapshots: the camera's own JPEG of the frame that started the event.
    let frames = clip_frames();
    for (label, start) in &starts {
        let snap = last.get(&format!("edgeclip/test/demo/{label}/snapshot")).expect("a snapshot");
        assert!(snap == &frames[*start as usize], "{label}: the snapshot is frame {start}");
        image::load_from_memory_with_format(snap, image::ImageFormat::Jpeg).expect("a valid JPEG");
    }

    // stdout: one line per event, in order.
    let lines = daemon.stdout_lines();
    assert_eq!(lines.len(), expected_events(), "{lines:?}");
    for (line, e) in lines.iter().zip(&events) {
        assert!(line.contains(&format!(" demo {} ", e["type"].as_str().unwrap())), "{line}");
        assert!(line.contains(e["label"].as_str().unwrap()), "{line}");
    }

    // Stats were published, and count every frame.
    let stats: Vec<Value> =
        all.iter().filter(|m| m.topic == STATS_TOPIC).map(|m| serde_json::from_slice(&m.payload).unwrap()).collect();
    let final_stats = stats.last().expect("stats");
    // Every frame was looked at: inferred, or found still by the motion gate.
    let counted = &final_stats["cameras"]["demo"]["frames"];
    assert_eq!(
        counted["inferred"].as_u64().unwrap() + counted["motion_skipped"].as_u64().unwrap(),
        frames.len() as u64,
        "{final_stats}"
    );
    assert_eq!(counted["captured"], frames.len());
    assert_eq!(counted["dropped"], 0);
    assert_eq!(counted["corrupt"], 0);
    assert_eq!(final_stats["cameras"]["demo"]["frames"]["dropped"], 0);
    assert_eq!(final_stats["cameras"]["demo"]["frames"]["corrupt"], 0);
    assert_eq!(counted["input_skipped"], 0, "the input was active throughout");

    // GPIO: the pins followed the events, and the stats say so.
    check_pins_followed(gpio.path(), &events, &followed);
    let pins = &final_stats["cameras"]["demo"]["gpio"];
    assert_eq!(pins["outputs"][0]["line"], format!("simulated line 17 in {}", gpio.path().display()));
    assert_eq!((&pins["outputs"][0]["active"], &pins["outputs"][0]["errors"]), (&Value::from(false), &Value::from(0)));
    assert_eq!(pins["input"]["errors"], 0);
}

#[test]
fn an_idle_input_line_keeps_every_frame_from_the_encoder() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "idle-sub", &["edgeclip/#"]);
    let gpio = tempfile::tempdir().unwrap();
    // No file for line 4: the daemon creates it holding 0, the sensor idle.
    let mut daemon = Daemon::start(&format!(
        "exit_when_done = true\n{}",
        config(&broker_at(broker.port()), &replay_source(), &simulated_gpio(gpio.path(), &["red-circle"]))
    ));
    let status = daemon.wait_exit(patience(Duration::from_secs(60)));
    assert!(status.success(), "exit status {status}; stderr:\n{}", daemon.stderr_text());
    let all = wait_offline(&sub, patience(Duration::from_secs(10)));
    assert_eq!(std::fs::read_to_string(gpio.path().join("4")).unwrap(), "0\n");
    assert!(events(&all, EVENTS_TOPIC).is_empty());
    let stats = last_json(&all, STATS_TOPIC);
    let frames = &stats["cameras"]["demo"]["frames"];
    assert_eq!(frames["inferred"], 0, "{stats}");
    assert_eq!(frames["input_skipped"], clip_frames().len(), "{stats}");
    // The outputs only ever held their safe levels.
    let levels = |line: &str| -> Vec<u8> { levels_written(&gpio.path().join(line)).iter().map(|(_, l)| *l).collect() };
    assert_eq!(levels("17"), [0, 0]);
    assert_eq!(levels("BUZZER"), [1, 1]);
}

fn discovery_topic(label: &str) -> String {
    format!("homeassistant/binary_sensor/test/demo_{}/config", label.replace('-', "_"))
}

#[test]
fn events_survive_a_broker_restart_in_order() {
    let mut broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "restart-sub", &[EVENTS_TOPIC]);
    let mut daemon = Daemon::start(&config(&broker_at(broker.port()), &replay_source(), ""));
    // The broker goes away as soon as the first event is through, for 10 s
    // and until the daemon has printed another event (natively the whole
    // replay fits in 10 s); the replay goes on meanwhile and its events wait
    // in the queue.
    sub.wait_for(patience(Duration::from_secs(120)), "the first event", |m| !m.is_empty());
    broker.kill();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    daemon.wait_printed(2, patience(Duration::from_secs(60)), "no second event");
    let during = daemon.stdout_lines().len();
    broker.restart();
    let n = expected_events();
    let all = sub.wait_for(patience(Duration::from_secs(60)), &format!("all {n} events"), |m| m.len() >= n);
    assert!(during > 1, "the outage covered events: {during} printed before the restart");
    eprintln!("broker down for {:?}; {during} events printed by then", killed.elapsed());

    let received = events(&all, EVENTS_TOPIC);
    // In order, none lost: exactly what the daemon printed, in its order.
    let printed = daemon.stdout_lines();
    let as_lines: Vec<(String, String)> = received
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["label"].as_str().unwrap().to_string()))
        .collect();
    let from_stdout: Vec<(String, String)> = printed.iter().map(|l| printed_event(l)).collect();
    assert_eq!(as_lines, from_stdout);
    check_against_truth(&received);

    assert!(daemon.stop().success());
}

#[test]
fn discovery_follows_label_edits_and_home_assistant_restarts() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "ha-sub", &["homeassistant/#", "edgeclip/#"]);
    let mut daemon = Daemon::start(&config(
        &broker_at(broker.port()),
        // Looping at the camera's pace: the daemon runs until stopped.
        &looping_source(10),
        "",
    ));
    let positive = positive_labels();
    let all = sub.wait_for(patience(Duration::from_secs(60)), "16 discovery configs", |m| {
        positive.iter().all(|l| m.iter().any(|r| r.topic == discovery_topic(l)))
    });
    let last = last_values(&all);
    for label in &positive {
        let c: Value = serde_json::from_slice(&last[&discovery_topic(label)]).unwrap();
        assert_eq!(c["unique_id"], format!("edgeclip_test_demo_{}", label.replace('-', "_")));
        assert_eq!(c["state_topic"], format!("edgeclip/test/demo/{label}/state"));
        assert_eq!((c["payload_on"].as_str(), c["payload_off"].as_str()), (Some("ON"), Some("OFF")));
        assert_eq!(c["availability_topic"], AVAILABILITY_TOPIC);
        assert_eq!(c["device"]["identifiers"][0], "edgeclip_test");
        assert!(c["device"]["name"].is_string() && c["name"].is_string());
    }
    assert!(!all.iter().any(|m| m.topic == discovery_topic("empty")), "a negative label gets no entity");
    assert_eq!(last[AVAILABILITY_TOPIC], b"online");

    // Home Assistant restarts: every config comes again.
    let before = all.iter().filter(|m| m.topic == discovery_topic("red-circle")).count();
    sub.publish("homeassistant/status", b"online", false);
    sub.wait_for(patience(Duration::from_secs(5)), "discovery again", |m| {
        m.iter().filter(|r| r.topic == discovery_topic("red-circle")).count() > before
    });

    // An edit: pink-square goes, orange-star (which the bundle has not
    // embedded: the text encoder runs) comes. Within 2 s, discovery follows.
    let text = std::fs::read_to_string(daemon.labels_file()).unwrap();
    let edited = text.replace("pink-square: a pink square\n", "") + "orange-star: an orange star\n";
    let n_before = sub.all().len();
    let t0 = Instant::now();
    std::fs::write(daemon.labels_file(), &edited).unwrap();
    sub.wait_for(patience(Duration::from_secs(5)), "the edit's discovery", |m| {
        let m = &m[n_before..];
        m.iter().any(|r| r.topic == discovery_topic("orange-star") && !r.payload.is_empty())
            && m.iter().any(|r| r.topic == discovery_topic("pink-square") && r.payload.is_empty())
    });
    let took = t0.elapsed();
    eprintln!("labels edit to discovery: {took:?}");
    assert!(took < patience(Duration::from_secs(2)), "the edit took {took:?} to take effect");
    let last = last_values(&sub.all());
    assert_eq!(last["edgeclip/test/demo/pink-square/state"], b"", "the removed label's state is cleared");

    // A broken edit keeps the labels and says where the mistake is.
    std::fs::write(daemon.labels_file(), format!("{edited}cat/dog: a cat or a dog\n")).unwrap();
    daemon.wait_stderr(patience(Duration::from_secs(5)), "labels.txt:");
    assert!(daemon.stderr_text().contains("keeping the labels"), "{}", daemon.stderr_text());

    // SIGHUP reloads the file whatever its state (here, still broken).
    daemon.signal(libc::SIGHUP);
    daemon.wait_stderr(patience(Duration::from_secs(5)), "SIGHUP: reloading every labels file");

    assert!(daemon.stop().success());
}

#[test]
fn commands_switch_a_camera_and_replace_its_labels() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "cmd-sub", &["homeassistant/#", "edgeclip/#"]);
    let mut daemon = Daemon::start(&config(&broker_at(broker.port()), &looping_source(20), ""));
    sub.wait_for(patience(Duration::from_secs(60)), "the camera's enabled state", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/demo/enabled" && r.payload == b"ON")
    });
    // The inference thread is running (the model loads after the state is
    // published, which takes a while under an emulator).
    sub.wait_for(patience(Duration::from_secs(30)), "a first inferred frame", |m| {
        m.iter().any(|r| {
            r.topic == STATS_TOPIC
                && serde_json::from_slice::<Value>(&r.payload)
                    .is_ok_and(|s| s["cameras"]["demo"]["frames"]["inferred"].as_u64() > Some(0))
        })
    });

    sub.publish("edgeclip/test/demo/enabled/set", b"OFF", false);
    sub.wait_for(patience(Duration::from_secs(5)), "enabled OFF", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/demo/enabled" && r.payload == b"OFF")
    });
    // Stats say frames are now skipped, not inferred: over the next three
    // stats (one a second), at most the frame that was being inferred when
    // the command came is added (under qemu an inference takes over 1 s).
    let n = sub.all().len();
    let stats = sub.wait_for(patience(Duration::from_secs(5)), "stats while disabled", |m| {
        m[n..].iter().filter(|r| r.topic == STATS_TOPIC).count() >= 3
    });
    let s: Vec<Value> = stats[n..]
        .iter()
        .filter(|r| r.topic == STATS_TOPIC)
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    let (a, c) = (&s[0]["cameras"]["demo"], &s[2]["cameras"]["demo"]);
    assert_eq!(a["enabled"], false);
    assert!(c["frames"]["disabled_skipped"].as_u64() > a["frames"]["disabled_skipped"].as_u64(), "{a} {c}");
    let inferred = |s: &Value| s["frames"]["inferred"].as_u64().unwrap();
    assert!(inferred(c) <= inferred(a) + 1, "inferred while disabled: {a} {c}");
    sub.publish("edgeclip/test/demo/enabled/set", b"on", false);
    sub.wait_for(patience(Duration::from_secs(5)), "enabled ON", |m| {
        m.last_chunk::<1>().is_some()
            && m.iter().rev().any(|r| r.topic == "edgeclip/test/demo/enabled" && r.payload == b"ON")
    });

    // New labels over MQTT: two labels; the other fourteen entities go.
    sub.publish("edgeclip/test/demo/labels/set", b"red-circle: a red circle\nempty: an empty scene\n", false);
    sub.wait_for(patience(Duration::from_secs(10)), "the other entities deleted", |m| {
        m.iter().any(|r| r.topic == discovery_topic("blue-diamond") && r.payload.is_empty())
    });
    daemon.wait_stderr(patience(Duration::from_secs(5)), "MQTT topic 'edgeclip/test/demo/labels/set'");
    // A mistake is refused with its line, and an oversized payload too.
    sub.publish("edgeclip/test/demo/labels/set", b"red-circle: a red circle\n\x01bad\n", false);
    daemon.wait_stderr(patience(Duration::from_secs(5)), "mqtt:edgeclip/test/demo/labels/set:2");
    sub.publish("edgeclip/test/demo/labels/set", &vec![b'a'; 70_000], false);
    daemon.wait_stderr(patience(Duration::from_secs(5)), "refused: 70000 bytes of labels");
    sub.publish("edgeclip/test/nosuch/enabled/set", b"OFF", false);
    daemon.wait_stderr(patience(Duration::from_secs(5)), "no camera named 'nosuch'");

    assert!(daemon.stop().success());
}

#[test]
fn sigterm_ends_events_publishes_offline_and_exits_0_within_5_s() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "term-sub", &["edgeclip/#"]);
    let mut daemon = Daemon::start(&config(
        &broker_at(broker.port()),
        // At the camera's pace; under an emulator as fast as it is
        // inferred, or the red circle would pass between two inferences.
        &if emulated() { format!("file:{}?loop", clip().display()) } else { looping_source(10) },
        "",
    ));
    // Stop while the red circle is in view: its event must end, not hang ON.
    sub.wait_for(patience(Duration::from_secs(60)), "the first start", |m| {
        events(m, EVENTS_TOPIC).iter().any(|e| e["type"] == "start")
    });
    let t0 = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(patience(Duration::from_secs(10)));
    let took = t0.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < patience(Duration::from_secs(5)), "took {took:?}");
    eprintln!("SIGTERM to exit: {took:?}");
    let all = wait_offline(&sub, patience(Duration::from_secs(5)));
    let ev = events(&all, EVENTS_TOPIC);
    let last = ev.last().unwrap();
    assert_eq!((last["type"].as_str(), last["reason"].as_str()), (Some("end"), Some("stopped")), "{ev:?}");
    assert_eq!(last_values(&all)[&format!("edgeclip/test/demo/{}/state", last["label"].as_str().unwrap())], b"OFF");
}

#[test]
#[cfg(feature = "embedded-broker")]
fn the_demo_configuration_runs_on_the_embedded_broker() {
    use crate::support::mosquitto::free_port;
    use crate::support::paths::repo;

    // boards/demo.toml as shipped, but on a free port, with absolute paths,
    // and replayed as fast as it is inferred.
    let port = free_port();
    let demo = std::fs::read_to_string(repo().join("boards/demo.toml")).unwrap();
    assert!(demo.contains("listen = \"127.0.0.1:1884\"") && demo.contains("?fps=10\""));
    let demo = demo
        .replace("listen = \"127.0.0.1:1884\"", &format!("listen = \"127.0.0.1:{port}\""))
        .replace("?fps=10\"", "\"")
        .replace("../models/tiny-shapes/demo.mjpeg", clip().to_str().unwrap())
        .replace("../models/", &format!("{}/", repo().join("models").display()))
        .replace("../target/demo-cache", "@DIR@/cache")
        .replace("../target/demo-history.db", "@DIR@/history.db");
    let mut daemon = Daemon::start(&demo);
    // The broker is up once the daemon says so.
    daemon.wait_stderr(patience(Duration::from_secs(60)), "camera{name=demo}");
    let sub = Subscriber::connect(port, "embedded-sub", &["edgeclip/#"]);
    let status = daemon.wait_exit(patience(Duration::from_secs(300)));
    assert!(status.success(), "{status}: {}", daemon.stderr_text());
    let lines = daemon.stdout_lines();
    assert_eq!(lines.len(), expected_events(), "{lines:#?}");
    let all = sub.all();
    let got = events(&all, "edgeclip/demo/demo/events");
    assert!(!got.is_empty(), "events through the embedded broker");
    // The subscriber joined after the first frames: what it got is the tail
    // of what was printed, in the same order.
    let tail: Vec<String> = lines[lines.len() - got.len()..].iter().map(|l| printed_event(l).1).collect();
    let labels: Vec<String> = got.iter().map(|e| e["label"].as_str().unwrap().to_string()).collect();
    assert_eq!(labels, tail);
}

#[test]
fn a_full_offline_queue_drops_the_oldest_events_and_counts_them_exactly() {
    let mut broker = Mosquitto::start(MosquittoOptions::default());
    // The subscriber's session is on disk (autosave every second) before
    // the broker goes: after the restart, the broker keeps its events for
    // it whoever reconnects first.
    let sub = Subscriber::connect(broker.port(), "overflow-sub", &["edgeclip/test/#"]);
    std::thread::sleep(Duration::from_millis(1500));
    broker.kill();
    // The whole clip is replayed while the broker is away, with room for
    // fewer events than it gives (5 of 12; 1 of 4 under an emulator).
    let total = expected_events();
    let queue = total / 2 - 1;
    let mut daemon = Daemon::start(
        // Without a store: the queue in memory is what is tested here.
        &config(&format!("{}\noffline_queue = {queue}", broker_at(broker.port())), &replay_source(), "")
            .replace("[store]\n", "[store]\nenabled = false\n"),
    );
    daemon.wait_printed(total, patience(Duration::from_secs(180)), "the replay did not finish");
    broker.restart();
    let all = sub.wait_for(patience(Duration::from_secs(60)), "stats after the reconnect", |m| {
        m.iter().any(|r| {
            r.topic == STATS_TOPIC
                && serde_json::from_slice::<Value>(&r.payload).is_ok_and(|s| s["mqtt"]["connected"] == true)
        })
    });
    let stats = last_json(&all, STATS_TOPIC);
    assert_eq!(stats["mqtt"]["overflowed"], total - queue, "{stats}");
    assert!(daemon.stderr_text().contains("dropped"), "the overflow is logged");
    // What arrived is the newest 5, in order.
    let got: Vec<String> = events(&all, EVENTS_TOPIC)
        .iter()
        .map(|e| format!("{} {}", e["type"].as_str().unwrap(), e["label"].as_str().unwrap()))
        .collect();
    let printed: Vec<String> = daemon
        .stdout_lines()
        .iter()
        .map(|l| {
            let (kind, label) = printed_event(l);
            format!("{kind} {label}")
        })
        .collect();
    assert_eq!(got, printed[total - queue..]);
    // States are not events: every label's last state arrived all the same.
    let last = last_values(&all);
    for label in truth_visits().iter().map(|v| &v.0) {
        assert_eq!(last.get(&format!("edgeclip/test/demo/{label}/state")).map(Vec::as_slice), Some(&b"OFF"[..]));
    }
    assert!(daemon.stop().success());
}

#[test]
fn a_wrong_password_is_a_clear_error_retried_without_a_crash() {
    let broker =
        Mosquitto::start(MosquittoOptions { users: vec![("edgeclip".into(), "s3cret".into())], ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "guess\n").unwrap();
    let mqtt =
        format!("{}\nusername = \"edgeclip\"\npassword_file = \"{}\"", broker_at(broker.port()), password.display());
    let mut daemon = Daemon::start(&config(&mqtt, &looping_source(10), ""));
    daemon.wait_stderr(patience(Duration::from_secs(30)), "refused the connection");
    let text = daemon.stderr_text();
    assert!(text.contains("mqtt.password_file"), "{text}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(daemon.running(), "still running");
    let t0 = Instant::now();
    assert!(daemon.stop().success());
    assert!(t0.elapsed() < patience(Duration::from_secs(5)), "{:?}", t0.elapsed());

    // The right password in the same file: connected, events flow.
    std::fs::write(&password, "s3cret\n").unwrap();
    let mut options = SubscriberOptions::new(broker.port(), "pw-sub", &["edgeclip/#"]);
    options.credentials = Some(("edgeclip".into(), "s3cret".into()));
    let sub = Subscriber::start(options);
    let daemon = Daemon::start(&config(&mqtt, &looping_source(10), ""));
    sub.wait_for(patience(Duration::from_secs(30)), "online", |m| has_message(m, AVAILABILITY_TOPIC, b"online"));
    drop(daemon);
}

#[test]
fn a_corrupt_frame_is_counted_and_skipped_and_nothing_else_changes() {
    // Frame 100 (the blue diamond in full view) replaced by a JPEG header
    // and garbage, as a failing camera sends.
    let dir = tempfile::tempdir().unwrap();
    let mut frames = clip_frames();
    let mut broken = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    broken.extend((0..4000u32).map(|i| (i * 7 % 128) as u8));
    broken.extend([0xFF, 0xD9]);
    frames[100] = broken;
    let path = dir.path().join("broken.mjpeg");
    std::fs::write(&path, frames.concat()).unwrap();

    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "corrupt-sub", &["edgeclip/#"]);
    let mut daemon = Daemon::start(&format!(
        "exit_when_done = true\n{}",
        config(&broker_at(broker.port()), &format!("file:{}", path.display()), "")
    ));
    assert!(daemon.wait_exit(patience(Duration::from_secs(300))).success(), "{}", daemon.stderr_text());
    let all = wait_offline(&sub, patience(Duration::from_secs(10)));
    check_against_truth(&events(&all, EVENTS_TOPIC));
    let stats = last_json(&all, STATS_TOPIC);
    let counted = &stats["cameras"]["demo"]["frames"];
    assert_eq!(counted["corrupt"], 1, "{stats}");
    assert_eq!(
        counted["inferred"].as_u64().unwrap() + counted["motion_skipped"].as_u64().unwrap(),
        frames.len() as u64 - 1
    );
    // The splitter already sees the broken segments: logged with where.
    assert!(daemon.stderr_text().contains("skipped a corrupt frame"), "{}", daemon.stderr_text());
}

/// A shape that appears and then stands still, with the motion gate on (its
/// default): the still frames after the change are inferred until the
/// detector has decided, so the event starts within `START_FRAMES` frames
/// of the shape's arrival. Before, the gate let exactly one frame of the
/// change through, and the event waited for the forced inference a minute
/// later (after this clip's end).
#[test]
fn a_shape_that_appears_and_stays_still_fires_with_the_motion_gate_on() {
    use crate::support::demo::{SLACK, START_FRAMES};
    const EMPTY: usize = 20;
    let frames = clip_frames();
    // Frame 0 shows nothing; frame 40 the red circle, wholly in view.
    let (empty, circle) = (&frames[0], &frames[40]);
    let dir = tempfile::tempdir().unwrap();
    let still = dir.path().join("still.mjpeg");
    let clip: Vec<u8> =
        std::iter::repeat_n(empty, EMPTY).chain(std::iter::repeat_n(circle, 60)).flatten().copied().collect();
    std::fs::write(&still, clip).unwrap();

    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "still-sub", &[EVENTS_TOPIC]);
    // Replayed as fast as it is inferred, every frame: at a camera's pace a
    // busy machine would drop frames and move the start by as many.
    let source = format!("file:{}", still.display());
    let _daemon = Daemon::start(&config(&broker_at(broker.port()), &source, ""));
    let all = sub.wait_for(patience(Duration::from_secs(60)), "the red circle's event", |m| {
        events(m, EVENTS_TOPIC).iter().any(|e| e["type"] == "start")
    });
    let start = events(&all, EVENTS_TOPIC).into_iter().find(|e| e["type"] == "start").unwrap();
    assert_eq!(start["label"], "red-circle", "{start}");
    let frame = start["start_frame"].as_u64().unwrap();
    let latest = EMPTY as u64 + START_FRAMES - 1 + SLACK;
    assert!((EMPTY as u64..=latest).contains(&frame), "started at frame {frame}, not {EMPTY}..={latest}");
}

/// The live scores: every label's score and each firing label's threshold,
/// at most once per `mqtt.scores_interval_s`, following the clip (the shape
/// wholly in view scores highest).
#[test]
fn live_scores_follow_the_clip_at_most_once_per_interval() {
    const SCORES_TOPIC: &str = "edgeclip/test/demo/scores";
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "scores-sub", &[SCORES_TOPIC]);
    let text = config(&broker_at(broker.port()), &looping_source(20), "")
        .replace("stats_interval_s = 1\n", "stats_interval_s = 1\nscores_interval_s = 0.5\n");
    let daemon = Daemon::start(&text);
    let started = Instant::now();
    let all = sub.wait_for(patience(Duration::from_secs(90)), "scores over two visits", |m| m.len() >= 24);
    let elapsed = started.elapsed().as_secs_f64();
    drop(daemon);
    // At most one per 0.5 s since the daemon started (which includes
    // loading the model before the first).
    assert!((all.len() as f64) <= elapsed / 0.5 + 2.0, "{} messages in {elapsed:.1} s", all.len());

    let labels = crate::support::demo::positive_labels();
    let mut agreeing = (0, 0);
    for m in &all {
        assert!(!m.retain);
        let s: Value = serde_json::from_slice(&m.payload).unwrap();
        let scores = s["scores"].as_object().unwrap();
        let thresholds = s["thresholds"].as_object().unwrap();
        assert_eq!(scores.len(), labels.len() + 1, "every label and the background one: {s}");
        assert!(labels.iter().all(|l| thresholds.contains_key(l)) && thresholds.len() == labels.len(), "{s}");
        assert!(scores.values().all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap())), "{s}");
        let sum: f64 = scores.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 0.01, "softmax probabilities: {s}");
        // The clip loops: its frame within the clip.
        let frame = s["frame"].as_u64().unwrap() % 420;
        if let Some((label, ..)) = truth_visits().into_iter().find(|(_, _, (a, b))| (*a..=*b).contains(&frame)) {
            let top = scores.iter().max_by(|a, b| a.1.as_f64().partial_cmp(&b.1.as_f64()).unwrap()).unwrap().0;
            agreeing = (agreeing.0 + usize::from(*top == label), agreeing.1 + 1);
        }
    }
    assert!(
        agreeing.1 >= 3 && agreeing.0 * 10 >= agreeing.1 * 8,
        "top label right in {agreeing:?} of the frames with a shape wholly in view"
    );
}
