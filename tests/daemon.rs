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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::mosquitto::{Mosquitto, MosquittoOptions};
use crate::util::SpawnWatched;
use crate::util::{demo_model_dir as model_dir, emulated, patience};

/// The demo configuration's detector: a shape half in view is named wrongly
/// by the tiny model for up to 3 frames, so 4 frames in a row start an event
/// (boards/demo.toml says the same).
pub const START_FRAMES: u64 = 4;
pub const END_FRAMES: u64 = 3;
/// Frames an event may start or end beyond the window the truth allows
/// ("within a few frames").
pub const SLACK: u64 = 2;

/// The visits of the demo clip that an emulated run replays.
const EMULATED_VISITS: usize = 2;

/// The clip the tests replay: the demo clip, or under an emulator its first
/// frames up to the first frame of visit `EMULATED_VISITS + 1` (so the cut
/// ends on an empty scene), written once per test run.
pub fn clip() -> PathBuf {
    let full = model_dir().join("demo.mjpeg");
    if !emulated() {
        return full;
    }
    static CUT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CUT.get_or_init(|| {
        let data = std::fs::read(&full).unwrap();
        let frames: Vec<&[u8]> = edgeclip::capture::mjpeg::MjpegFrames::new(&data).map(|f| f.unwrap().jpeg).collect();
        let end = all_truth_visits()[EMULATED_VISITS].1 .0 as usize;
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-first-{end}-frames.mjpeg"));
        // Written whole to a temporary name first: tests start in parallel.
        let partial = path.with_extension(format!("{}.part", std::process::id()));
        std::fs::write(&partial, frames[..end].concat()).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    })
    .clone()
}

/// A clip source that loops at the camera's pace, `fps`.
fn looping_source(fps: u32) -> String {
    format!("file:{}?fps={fps}&loop", clip().display())
}

/// One message as the subscriber got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A subscriber on `filters` with a persistent session (QoS 1, no clean
/// session), recording everything in arrival order; it reconnects and
/// resubscribes when the broker comes back.
pub struct Subscriber {
    pub messages: Arc<Mutex<Vec<Received>>>,
    pub client: Client,
    /// Tells the thread to end.
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    pub fn connect(port: u16, id: &str, filters: &[&str]) -> Subscriber {
        Subscriber::connect_with(port, id, filters, None)
    }

    pub fn connect_with(port: u16, id: &str, filters: &[&str], credentials: Option<(&str, &str)>) -> Subscriber {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        options.set_clean_session(false);
        options.set_keep_alive(Duration::from_secs(5));
        // Snapshots are JPEGs of tens of KB.
        options.set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut connection) = Client::new(options, 64);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let (sub_client, record) = (client.clone(), Arc::clone(&messages));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if !ack.session_present {
                            for f in &filters {
                                let _ = sub_client.subscribe(f, QoS::AtLeastOnce);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        record.lock().unwrap().push(Received { topic: p.topic.clone(), payload: p.payload.to_vec() })
                    }
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => return,
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("the subscriber subscribed");
        Subscriber { messages, client, stop }
    }

    pub fn all(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the messages so far.
    pub fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.all();
            if done(&all) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; got {} messages",
                all.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.to_vec()).unwrap();
    }
}

/// Ends the thread: at once if connected, else at its next reconnect attempt
/// (its client clone keeps the connection alive, so it would otherwise retry
/// every 100 ms for the rest of the run; under qemu-user, busy threads make
/// a later process spawn likelier to deadlock in the forked emulator).
impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// The JSON events on `topic`, in arrival order.
pub fn events(messages: &[Received], topic: &str) -> Vec<Value> {
    messages.iter().filter(|m| m.topic == topic).map(|m| serde_json::from_slice(&m.payload).unwrap()).collect()
}

/// The last payload on each topic.
pub fn last_values(messages: &[Received]) -> BTreeMap<String, Vec<u8>> {
    messages.iter().map(|m| (m.topic.clone(), m.payload.clone())).collect()
}

/// A running `edgeclip run`, its stdout lines and stderr collected.
pub struct Daemon {
    pub child: Child,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
}

fn collect(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            into.lock().unwrap().push(line);
        }
    });
}

impl Daemon {
    /// Writes `config` (with `@DIR@` replaced by a fresh folder, where a
    /// copy of the demo labels waits as `labels.txt`) and starts the daemon.
    pub fn start(config: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(model_dir().join("labels.txt"), dir.path().join("labels.txt")).unwrap();
        let config = config.replace("@DIR@", dir.path().to_str().unwrap());
        let path = dir.path().join("edgeclip.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = crate::util::edgeclip_command()
            .args(["run", "--config"])
            .arg(&path)
            .env("EDGECLIP_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn_watched()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), Arc::clone(&stdout));
        collect(child.stderr.take().unwrap(), Arc::clone(&stderr));
        Daemon { child, stdout, stderr, dir }
    }

    pub fn labels_file(&self) -> PathBuf {
        self.dir.path().join("labels.txt")
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("edgeclip did not exit within {timeout:?}; stderr:\n{}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: i32) {
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    pub fn wait_stderr(&self, timeout: Duration, needle: &str) {
        let deadline = Instant::now() + timeout;
        while !self.stderr_text().contains(needle) {
            assert!(Instant::now() < deadline, "no '{needle}' in stderr within {timeout:?}:\n{}", self.stderr_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration on the demo model and labels (a copy in the daemon's
/// folder), for the camera `demo` reading `source`; `extra` is appended
/// (more tables, or keys of the last one).
pub fn config(broker: &str, source: &str, extra: &str) -> String {
    format!(
        r#"node = "test"
[model]
path = "{model}"
threads = 1
cache_dir = "@DIR@/cache"
[mqtt]
{broker}
stats_interval_s = 1
[logging]
print_events = true
[cameras.demo]
source = "{source}"
labels = "@DIR@/labels.txt"
max_fps = 0
[cameras.demo.detector]
start_frames = {START_FRAMES}
end_frames = {END_FRAMES}
min_duration_s = 0
{extra}
"#,
        model = model_dir().display(),
    )
}

/// A visit of the clip: label, the frames it is partly or wholly in view
/// (first, last) and wholly in view (first, last).
pub type Visit = (String, (u64, u64), (u64, u64));

/// The visits of the clip that the tests replay ([`clip`]), in order.
pub fn truth_visits() -> Vec<Visit> {
    let mut visits = all_truth_visits();
    if emulated() {
        visits.truncate(EMULATED_VISITS);
    }
    visits
}

/// Events one replay of the clip gives: a start and an end per visit.
fn expected_events() -> usize {
    2 * truth_visits().len()
}

/// The demo clip's visits, in order.
fn all_truth_visits() -> Vec<Visit> {
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("demo.truth.json")).unwrap()).unwrap();
    let mut visits = Vec::new();
    for (label, t) in truth["labels"].as_object().unwrap() {
        let span = &t["visible"].as_array().unwrap();
        assert_eq!(span.len(), 1, "one visit per label in the clip");
        let (first, last) = (span[0][0].as_u64().unwrap(), span[0][1].as_u64().unwrap());
        let partial: Vec<u64> = truth["per_frame_partial"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.as_array().unwrap().iter().any(|l| l == label.as_str()))
            .map(|(i, _)| i as u64)
            .collect();
        let any = (
            partial.iter().copied().chain([first]).min().unwrap(),
            partial.iter().copied().chain([last]).max().unwrap(),
        );
        visits.push((label.clone(), any, (first, last)));
    }
    visits.sort_by_key(|v| v.2 .0);
    visits
}

/// The clip's frames (JPEG bytes), by index.
pub fn clip_frames() -> Vec<Vec<u8>> {
    let data = std::fs::read(clip()).unwrap();
    edgeclip::capture::mjpeg::MjpegFrames::new(&data).map(|f| f.unwrap().jpeg.to_vec()).collect()
}

/// Checks the events of one replay of the clip against the truth: per visit
/// exactly one start and one end with its label, the start no earlier than
/// the shape's first frame in view and no later than `START_FRAMES` (+
/// slack) into its wholly-visible frames, the end after its last
/// wholly-visible frame and within `END_FRAMES` (+ slack) of it leaving.
/// Returns the start frame of each label.
fn check_against_truth(events: &[Value]) -> BTreeMap<String, u64> {
    let visits = truth_visits();
    let mut starts = BTreeMap::new();
    for (label, (any_first, any_last), (first, last)) in &visits {
        let mine: Vec<&Value> = events.iter().filter(|e| e["label"] == label.as_str()).collect();
        let kinds: Vec<&str> = mine.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["start", "end"], "{label}: one start then one end; events: {mine:?}");
        let (start, end) = (mine[0]["frame"].as_u64().unwrap(), mine[1]["frame"].as_u64().unwrap());
        assert!(
            (*any_first..=first + START_FRAMES - 1 + SLACK).contains(&start),
            "{label}: started at frame {start}; in view from {any_first}, wholly from {first}"
        );
        assert!(
            (last + 1..=any_last + END_FRAMES + SLACK).contains(&end),
            "{label}: ended at frame {end}; wholly in view until {last}, partly until {any_last}"
        );
        assert_eq!(mine[1]["start_frame"].as_u64(), Some(start), "{label}: the end names its start");
        assert_eq!(mine[1]["reason"], "gone");
        starts.insert(label.clone(), start);
    }
    let labels: Vec<&str> = visits.iter().map(|v| v.0.as_str()).collect();
    let others: Vec<&Value> = events.iter().filter(|e| !labels.contains(&e["label"].as_str().unwrap())).collect();
    assert!(others.is_empty(), "events for labels not in the clip: {others:?}");
    starts
}

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
        config(
            &format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port()),
            &format!("file:{}", clip().display()),
            &simulated_gpio(gpio.path(), &followed)
        )
    ));
    let status = daemon.wait_exit(patience(Duration::from_secs(300)));
    assert!(status.success(), "exit status {status}; stderr:\n{}", daemon.stderr_text());
    let all = sub.wait_for(patience(Duration::from_secs(10)), "offline", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/availability" && r.payload == b"offline")
    });

    let events = events(&all, "edgeclip/test/demo/events");
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
    let lines = daemon.stdout.lock().unwrap().clone();
    assert_eq!(lines.len(), expected_events(), "{lines:?}");
    for (line, e) in lines.iter().zip(&events) {
        assert!(line.contains(&format!(" demo {} ", e["type"].as_str().unwrap())), "{line}");
        assert!(line.contains(e["label"].as_str().unwrap()), "{line}");
    }

    // Stats were published, and count every frame.
    let stats: Vec<Value> = all
        .iter()
        .filter(|m| m.topic == "edgeclip/test/stats")
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
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
        config(
            &format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port()),
            &format!("file:{}", clip().display()),
            &simulated_gpio(gpio.path(), &["red-circle"])
        )
    ));
    let status = daemon.wait_exit(patience(Duration::from_secs(60)));
    assert!(status.success(), "exit status {status}; stderr:\n{}", daemon.stderr_text());
    let all = sub.wait_for(patience(Duration::from_secs(10)), "offline", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/availability" && r.payload == b"offline")
    });
    assert_eq!(std::fs::read_to_string(gpio.path().join("4")).unwrap(), "0\n");
    assert!(events(&all, "edgeclip/test/demo/events").is_empty());
    let stats: Value =
        serde_json::from_slice(&all.iter().rfind(|m| m.topic == "edgeclip/test/stats").unwrap().payload).unwrap();
    let frames = &stats["cameras"]["demo"]["frames"];
    assert_eq!(frames["inferred"], 0, "{stats}");
    assert_eq!(frames["input_skipped"], clip_frames().len(), "{stats}");
    // The outputs only ever held their safe levels.
    let levels = |line: &str| -> Vec<u8> { levels_written(&gpio.path().join(line)).iter().map(|(_, l)| *l).collect() };
    assert_eq!(levels("17"), [0, 0]);
    assert_eq!(levels("BUZZER"), [1, 1]);
}

/// The demo labels that can fire (all but the background label `!empty`).
fn positive_labels() -> Vec<String> {
    std::fs::read_to_string(model_dir().join("labels.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| l.split(':').next().unwrap().trim().to_string())
        .collect()
}

fn discovery_topic(label: &str) -> String {
    format!("homeassistant/binary_sensor/test/demo_{}/config", label.replace('-', "_"))
}

#[test]
fn events_survive_a_broker_restart_in_order() {
    let mut broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "restart-sub", &["edgeclip/test/demo/events"]);
    let daemon = Daemon::start(&config(
        &format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port()),
        &format!("file:{}", clip().display()),
        "",
    ));
    // The broker goes away as soon as the first event is through, for 10 s
    // and until the daemon has printed another event (natively the whole
    // replay fits in 10 s); the replay goes on meanwhile and its events wait
    // in the queue.
    sub.wait_for(patience(Duration::from_secs(120)), "the first event", |m| !m.is_empty());
    broker.kill();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let deadline = Instant::now() + patience(Duration::from_secs(60));
    while daemon.stdout.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "no second event: {}", daemon.stderr_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let during = daemon.stdout.lock().unwrap().len();
    broker.restart();
    let n = expected_events();
    let all = sub.wait_for(patience(Duration::from_secs(60)), &format!("all {n} events"), |m| m.len() >= n);
    assert!(during > 1, "the outage covered events: {during} printed before the restart");
    eprintln!("broker down for {:?}; {during} events printed by then", killed.elapsed());

    let received = events(&all, "edgeclip/test/demo/events");
    // In order, none lost: exactly what the daemon printed, in its order.
    let printed = daemon.stdout.lock().unwrap().clone();
    let as_lines: Vec<(String, String)> = received
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["label"].as_str().unwrap().to_string()))
        .collect();
    let from_stdout: Vec<(String, String)> = printed
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[2].to_string(), f[3].to_string())
        })
        .collect();
    assert_eq!(as_lines, from_stdout);
    check_against_truth(&received);

    daemon.signal(libc::SIGTERM);
    let mut daemon = daemon;
    assert!(daemon.wait_exit(patience(Duration::from_secs(10))).success());
}

#[test]
fn discovery_follows_label_edits_and_home_assistant_restarts() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "ha-sub", &["homeassistant/#", "edgeclip/#"]);
    let mut daemon = Daemon::start(&config(
        &format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port()),
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
        assert_eq!(c["availability_topic"], "edgeclip/test/availability");
        assert_eq!(c["device"]["identifiers"][0], "edgeclip_test");
        assert!(c["device"]["name"].is_string() && c["name"].is_string());
    }
    assert!(!all.iter().any(|m| m.topic == discovery_topic("empty")), "a negative label gets no entity");
    assert_eq!(last["edgeclip/test/availability"], b"online");

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

    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(patience(Duration::from_secs(10))).success());
}

#[test]
fn commands_switch_a_camera_and_replace_its_labels() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "cmd-sub", &["homeassistant/#", "edgeclip/#"]);
    let mut daemon =
        Daemon::start(&config(&format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port()), &looping_source(20), ""));
    sub.wait_for(patience(Duration::from_secs(60)), "the camera's enabled state", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/demo/enabled" && r.payload == b"ON")
    });
    // The inference thread is running (the model loads after the state is
    // published, which takes a while under an emulator).
    sub.wait_for(patience(Duration::from_secs(30)), "a first inferred frame", |m| {
        m.iter().any(|r| {
            r.topic == "edgeclip/test/stats"
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
        m[n..].iter().filter(|r| r.topic == "edgeclip/test/stats").count() >= 3
    });
    let s: Vec<Value> = stats[n..]
        .iter()
        .filter(|r| r.topic == "edgeclip/test/stats")
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
    daemon.wait_stderr(patience(Duration::from_secs(5)), "70000 bytes of labels refused");
    sub.publish("edgeclip/test/nosuch/enabled/set", b"OFF", false);
    daemon.wait_stderr(patience(Duration::from_secs(5)), "no camera named 'nosuch'");

    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(patience(Duration::from_secs(10))).success());
}

#[test]
fn sigterm_ends_events_publishes_offline_and_exits_0_within_5_s() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "term-sub", &["edgeclip/#"]);
    let mut daemon = Daemon::start(&config(
        &format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port()),
        // At the camera's pace; under an emulator as fast as it is
        // inferred, or the red circle would pass between two inferences.
        &if emulated() { format!("file:{}?loop", clip().display()) } else { looping_source(10) },
        "",
    ));
    // Stop while the red circle is in view: its event must end, not hang ON.
    sub.wait_for(patience(Duration::from_secs(60)), "the first start", |m| {
        events(m, "edgeclip/test/demo/events").iter().any(|e| e["type"] == "start")
    });
    let t0 = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(patience(Duration::from_secs(10)));
    let took = t0.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < patience(Duration::from_secs(5)), "took {took:?}");
    eprintln!("SIGTERM to exit: {took:?}");
    let all = sub.wait_for(patience(Duration::from_secs(5)), "offline", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/availability" && r.payload == b"offline")
    });
    let ev = events(&all, "edgeclip/test/demo/events");
    let last = ev.last().unwrap();
    assert_eq!((last["type"].as_str(), last["reason"].as_str()), (Some("end"), Some("stopped")), "{ev:?}");
    assert_eq!(last_values(&all)[&format!("edgeclip/test/demo/{}/state", last["label"].as_str().unwrap())], b"OFF");
}

#[test]
#[cfg(feature = "embedded-broker")]
fn the_demo_configuration_runs_on_the_embedded_broker() {
    // boards/demo.toml as shipped, but on a free port, with absolute paths,
    // and replayed as fast as it is inferred.
    let port = crate::mosquitto::free_port();
    let demo = std::fs::read_to_string(crate::util::repo().join("boards/demo.toml")).unwrap();
    assert!(demo.contains("listen = \"127.0.0.1:1884\"") && demo.contains("?fps=10\""));
    let demo = demo
        .replace("listen = \"127.0.0.1:1884\"", &format!("listen = \"127.0.0.1:{port}\""))
        .replace("?fps=10\"", "\"")
        .replace("../models/tiny-shapes/demo.mjpeg", clip().to_str().unwrap())
        .replace("../models/", &format!("{}/", crate::util::repo().join("models").display()))
        .replace("../target/demo-cache", "@DIR@/cache");
    let mut daemon = Daemon::start(&demo);
    // The broker is up once the daemon says so.
    daemon.wait_stderr(patience(Duration::from_secs(60)), "camera{name=demo}");
    let sub = Subscriber::connect(port, "embedded-sub", &["edgeclip/#"]);
    let status = daemon.wait_exit(patience(Duration::from_secs(300)));
    assert!(status.success(), "{status}: {}", daemon.stderr_text());
    let lines = daemon.stdout.lock().unwrap().clone();
    assert_eq!(lines.len(), expected_events(), "{lines:#?}");
    let all = sub.all();
    let got = events(&all, "edgeclip/demo/demo/events");
    assert!(!got.is_empty(), "events through the embedded broker");
    // The subscriber joined after the first frames: what it got is the tail
    // of what was printed, in the same order.
    let tail: Vec<String> =
        lines[lines.len() - got.len()..].iter().map(|l| l.split_whitespace().nth(3).unwrap().to_string()).collect();
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
    let daemon = Daemon::start(&config(
        &format!("broker = \"mqtt://127.0.0.1:{}\"\noffline_queue = {queue}", broker.port()),
        &format!("file:{}", clip().display()),
        "",
    ));
    let deadline = Instant::now() + patience(Duration::from_secs(180));
    while daemon.stdout.lock().unwrap().len() < total {
        assert!(Instant::now() < deadline, "the replay did not finish: {}", daemon.stderr_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.restart();
    let all = sub.wait_for(patience(Duration::from_secs(60)), "stats after the reconnect", |m| {
        m.iter().any(|r| {
            r.topic == "edgeclip/test/stats"
                && serde_json::from_slice::<Value>(&r.payload).is_ok_and(|s| s["mqtt"]["connected"] == true)
        })
    });
    let stats: Value =
        serde_json::from_slice(&all.iter().rev().find(|r| r.topic == "edgeclip/test/stats").unwrap().payload).unwrap();
    assert_eq!(stats["mqtt"]["overflowed"], total - queue, "{stats}");
    assert!(daemon.stderr_text().contains("dropped"), "the overflow is logged");
    // What arrived is the newest 5, in order.
    let got: Vec<String> = events(&all, "edgeclip/test/demo/events")
        .iter()
        .map(|e| format!("{} {}", e["type"].as_str().unwrap(), e["label"].as_str().unwrap()))
        .collect();
    let printed: Vec<String> = daemon
        .stdout
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.split_whitespace().skip(2).take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(got, printed[total - queue..]);
    // States are not events: every label's last state arrived all the same.
    let last = last_values(&all);
    for label in truth_visits().iter().map(|v| &v.0) {
        assert_eq!(last.get(&format!("edgeclip/test/demo/{label}/state")).map(Vec::as_slice), Some(&b"OFF"[..]));
    }
    daemon.signal(libc::SIGTERM);
    let mut daemon = daemon;
    assert!(daemon.wait_exit(patience(Duration::from_secs(10))).success());
}

#[test]
fn a_wrong_password_is_a_clear_error_retried_without_a_crash() {
    let broker =
        Mosquitto::start(MosquittoOptions { users: vec![("edgeclip".into(), "s3cret".into())], ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "guess\n").unwrap();
    let mqtt = format!(
        "broker = \"mqtt://127.0.0.1:{}\"\nusername = \"edgeclip\"\npassword_file = \"{}\"",
        broker.port(),
        password.display()
    );
    let mut daemon = Daemon::start(&config(&mqtt, &looping_source(10), ""));
    daemon.wait_stderr(patience(Duration::from_secs(30)), "refused the connection");
    let text = daemon.stderr_text();
    assert!(text.contains("mqtt.password_file"), "{text}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(daemon.child.try_wait().unwrap().is_none(), "still running");
    let t0 = Instant::now();
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(patience(Duration::from_secs(10))).success());
    assert!(t0.elapsed() < patience(Duration::from_secs(5)), "{:?}", t0.elapsed());

    // The right password in the same file: connected, events flow.
    std::fs::write(&password, "s3cret\n").unwrap();
    let sub = Subscriber::connect_with(broker.port(), "pw-sub", &["edgeclip/#"], Some(("edgeclip", "s3cret")));
    let daemon = Daemon::start(&config(&mqtt, &looping_source(10), ""));
    sub.wait_for(patience(Duration::from_secs(30)), "online", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/availability" && r.payload == b"online")
    });
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
        config(&format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port()), &format!("file:{}", path.display()), "")
    ));
    assert!(daemon.wait_exit(patience(Duration::from_secs(300))).success(), "{}", daemon.stderr_text());
    let all = sub.wait_for(patience(Duration::from_secs(10)), "offline", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/availability" && r.payload == b"offline")
    });
    check_against_truth(&events(&all, "edgeclip/test/demo/events"));
    let stats: Value =
        serde_json::from_slice(&all.iter().rev().find(|r| r.topic == "edgeclip/test/stats").unwrap().payload).unwrap();
    let counted = &stats["cameras"]["demo"]["frames"];
    assert_eq!(counted["corrupt"], 1, "{stats}");
    assert_eq!(
        counted["inferred"].as_u64().unwrap() + counted["motion_skipped"].as_u64().unwrap(),
        frames.len() as u64 - 1
    );
    // The splitter already sees the broken segments: logged with where.
    assert!(daemon.stderr_text().contains("skipped a corrupt frame"), "{}", daemon.stderr_text());
}
