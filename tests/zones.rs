//! Zones end to end against a real Mosquitto: a camera with two zones, one
//! with a labels file of its own, replaying a clip whose red circle appears
//! in the left one. Host only: it infers two crops a frame.

use std::time::Duration;

use crate::support::daemon::{broker_at, config, events, Daemon, EVENTS_TOPIC};
use crate::support::demo::clip_frames;
use crate::support::mosquitto::{Mosquitto, MosquittoOptions};
use crate::support::subscriber::Subscriber;
use crate::support::timing::patience;

/// Empty frames, the red circle (frame 40 of the demo clip: at x 111..312,
/// y 68..269 of 640×480, inside the left zone) for 40 frames, then empty
/// again. Each zone is a 320×320 square, which CLIP's centre crop keeps
/// whole.
const ZONES: &str = r#"
[cameras.demo.zones.left]
rect = [0.0, 0.0, 0.5, 0.6667]
labels = "@LEFT@"
[cameras.demo.zones.right]
rect = [0.5, 0.0, 1.0, 0.6667]
"#;

#[test]
fn each_zone_has_its_own_labels_events_states_snapshots_scores_and_entities() {
    let frames = clip_frames();
    let (empty, circle) = (&frames[0], &frames[40]);
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("circle-left.mjpeg");
    let sequence =
        std::iter::repeat_n(empty, 20).chain(std::iter::repeat_n(circle, 40)).chain(std::iter::repeat_n(empty, 20));
    std::fs::write(&clip, sequence.flatten().copied().collect::<Vec<u8>>()).unwrap();
    // The left zone's own labels: two shapes and the background.
    let left = dir.path().join("left-labels.txt");
    std::fs::write(
        &left,
        "red-circle: a red circle\nblue-diamond: a blue diamond\n!empty: an empty scene; an empty background\n",
    )
    .unwrap();

    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "zones-sub", &["edgeclip/#", "homeassistant/#"]);
    let text = config(
        &broker_at(broker.port()),
        &format!("file:{}", clip.display()),
        &ZONES.replace("@LEFT@", left.to_str().unwrap()),
    )
    .replace("stats_interval_s = 1\n", "stats_interval_s = 1\nscores_interval_s = 0.1\n");
    let daemon = Daemon::start(&text);
    let all = sub.wait_for(patience(Duration::from_secs(90)), "the circle's start and end", |m| {
        events(m, EVENTS_TOPIC).len() >= 2
    });
    let log = daemon.stderr_text();
    drop(daemon);

    // One event, in the left zone, named so; nothing in the right one.
    let evs = events(&all, EVENTS_TOPIC);
    let summary: Vec<(String, String, String)> = evs
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["zone"].as_str().unwrap_or("-").into(),
                e["label"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary[..2],
        [("start".into(), "left".into(), "red-circle".into()), ("end".into(), "left".into(), "red-circle".into())],
        "{summary:?}"
    );
    let start = &evs[0];
    assert!((20..=20 + 4 + 2).contains(&start["start_frame"].as_u64().unwrap()), "{start}");
    assert_eq!(start["snapshot_topic"], "edgeclip/test/demo/left/red-circle/snapshot");

    // Its state and snapshot under the zone; the snapshot is the frame with
    // the zone outlined (yellow on its left edge, where the frame is not).
    let state: Vec<&[u8]> = all
        .iter()
        .filter(|m| m.topic == "edgeclip/test/demo/left/red-circle/state")
        .map(|m| m.payload.as_slice())
        .collect();
    assert_eq!(state, [&b"OFF"[..], b"ON", b"OFF"]);
    let snapshot = all.iter().find(|m| m.topic == "edgeclip/test/demo/left/red-circle/snapshot").expect("a snapshot");
    let image = image::load_from_memory(&snapshot.payload).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (640, 480));
    let [r, g, b] = image.get_pixel(1, 150).0;
    assert!(r > 200 && g > 180 && b < 90, "the zone's outline: ({r}, {g}, {b})");
    let [r, g, b] = image.get_pixel(600, 400).0;
    let original = image::load_from_memory(circle).unwrap().to_rgb8();
    let o = original.get_pixel(600, 400).0;
    assert!(
        (r as i32 - o[0] as i32).abs() < 12
            && (g as i32 - o[1] as i32).abs() < 12
            && (b as i32 - o[2] as i32).abs() < 12,
        "outside the zone the frame is the frame"
    );

    // Scores per zone, with the zone's own labels.
    let scores = |zone: &str| {
        let topic = format!("edgeclip/test/demo/{zone}/scores");
        let m = all.iter().rev().find(|m| m.topic == topic).unwrap_or_else(|| panic!("no {topic}"));
        serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()
    };
    let (l, r) = (scores("left"), scores("right"));
    assert_eq!((l["zone"].as_str(), r["zone"].as_str()), (Some("left"), Some("right")));
    assert_eq!(l["scores"].as_object().unwrap().len(), 3, "{l}");
    assert_eq!(r["scores"].as_object().unwrap().len(), 17, "{r}");
    assert!(!all.iter().any(|m| m.topic == "edgeclip/test/demo/scores"), "no whole-frame scores with zones");

    // Home Assistant: an entity per zone and label, none for the whole frame.
    let discovered = |object: &str| {
        all.iter()
            .any(|m| m.topic == format!("homeassistant/binary_sensor/test/{object}/config") && !m.payload.is_empty())
    };
    assert!(
        discovered("demo_left_red_circle")
            && discovered("demo_left_blue_diamond")
            && !discovered("demo_left_green_star")
    );
    assert!(discovered("demo_right_red_circle") && discovered("demo_right_green_star"));
    assert!(!discovered("demo_red_circle"));
    let config =
        all.iter().find(|m| m.topic == "homeassistant/binary_sensor/test/demo_left_red_circle/config").unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config.payload).unwrap();
    assert_eq!(
        (config["name"].as_str(), config["state_topic"].as_str()),
        (Some("demo left red-circle"), Some("edgeclip/test/demo/left/red-circle/state"))
    );
    assert!(log.contains("zone 'left': 3 labels from") && log.contains("zone 'right': 17 labels from"), "{log}");
}

/// A zone's rectangle that is not one, a zone named like a camera topic and
/// a zone without a rectangle are refused with what would be accepted.
#[test]
fn zones_that_cannot_work_are_refused_by_check_config() {
    use crate::support::process::{edgeclip_command, SpawnWatched};
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(crate::support::paths::demo_model_dir().join("labels.txt"), dir.path().join("labels.txt")).unwrap();
    for (zones, expected) in [
        (
            "[cameras.demo.zones.door]\nrect = [0.5, 0.2, 0.52, 0.9]\n",
            "key 'cameras.demo.zones.door.rect': [0.5, 0.2, 0.52, 0.9] is not a zone; accepted: [x0, y0, x1, y1]",
        ),
        (
            "[cameras.demo.zones.scores]\nrect = [0, 0, 1, 1]\n",
            "a zone cannot be named 'scores', a topic of the camera's own",
        ),
        ("[cameras.demo.zones.door]\nthreshold = 0.7\n", "zone 'door' has no 'rect'; add rect = [x0, y0, x1, y1]"),
    ] {
        let text = config("broker = \"mqtt://127.0.0.1:1\"", "file:/dev/null", zones)
            .replace("@DIR@", dir.path().to_str().unwrap());
        let path = dir.path().join("edgeclip.toml");
        std::fs::write(&path, text).unwrap();
        let out = edgeclip_command().args(["check-config", "--file-only"]).arg(&path).output_watched().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{zones}: {stderr}");
    }
}
