//! `edgeclip calibrate` on the demo clip: thresholds proposed from the
//! scores the scene gave, written into the labels file, then checked with
//! `eval-events` through the same pipeline. Host only: it infers the whole
//! clip several times.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::daemon::config;
use crate::support::paths::demo_model_dir;
use crate::support::process::{edgeclip_command, SpawnWatched};

/// A configuration in `dir` whose camera `demo` replays the demo clip with
/// `labels` as its labels file; the broker is never contacted.
fn demo_config(dir: &Path, labels: &str) -> PathBuf {
    let clip = demo_model_dir().join("demo.mjpeg");
    let text = config("broker = \"mqtt://127.0.0.1:1\"", &format!("file:{}", clip.display()), "")
        .replace("@DIR@", dir.to_str().unwrap())
        // The daemon's default rate (a fifth of the clip's frames): each
        // replay costs seconds, not a minute.
        .replace("max_fps = 0\n", "max_fps = 2\n");
    std::fs::write(dir.join("labels.txt"), labels).unwrap();
    let path = dir.join("edgeclip.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str], config: &Path) -> Value {
    let out = edgeclip_command()
        .args(args)
        .arg("--camera")
        .arg("demo")
        .arg("--config")
        .arg(config)
        .arg("--json")
        .output_watched()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn total(report: &Value) -> (u64, u64, u64) {
    let t = &report["total"];
    (t["events"].as_u64().unwrap(), t["false_events"].as_u64().unwrap(), t["found"].as_u64().unwrap())
}

/// The demo labels without the six the clip shows: the shapes that pass
/// are distractors for the ten left, and every event is false.
fn labels_the_clip_never_shows() -> String {
    let shown = ["red-circle", "blue-diamond", "yellow-triangle", "purple-circle", "green-star", "pink-square"];
    let labels = std::fs::read_to_string(demo_model_dir().join("labels.txt")).unwrap();
    labels.lines().filter(|l| !shown.iter().any(|s| l.starts_with(s))).map(|l| format!("{l}\n")).collect()
}

/// The sums of a calibrate report's false events at the current and at the
/// proposed thresholds, and the labels it found inseparable.
fn false_events(report: &Value) -> (u64, u64, Vec<String>) {
    let labels = report["labels"].as_array().unwrap();
    let sum = |key: &str| labels.iter().map(|l| l[key]["false_events"].as_u64().unwrap()).sum();
    let flagged =
        labels.iter().filter(|l| l["basis"] == "unfireable").map(|l| l["label"].as_str().unwrap().to_string());
    (sum("events_now"), sum("events_proposed"), flagged.collect())
}

/// On footage without the labels (taken so: no truth), the defaults fire
/// on the shapes that pass. The first calibration raises what a threshold
/// can separate and flags four labels that the passing shapes score 0.99
/// for; made background labels, as the report advises, they compete
/// instead, and the second calibration's thresholds fire nothing at all.
/// The labels file keeps its comments throughout.
#[test]
fn calibrated_thresholds_fire_nothing_on_a_scene_without_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &labels_the_clip_never_shows());
    let labels_file = dir.path().join("labels.txt");
    let no_labels = dir.path().join("none.truth.json");
    std::fs::write(&no_labels, r#"{"fps": 10, "frames": 420, "labels": {}}"#).unwrap();
    let truth = no_labels.to_str().unwrap();

    let before = run(&["eval-events", "--truth", truth], &config);
    eprintln!("default thresholds: {:?} (events, false, found)", total(&before));
    assert!(total(&before).1 > 0, "the defaults fire on the passing shapes: {before}");

    let first = run(&["calibrate", "--write"], &config);
    let (now, proposed, flagged) = false_events(&first);
    eprintln!(
        "first calibration: {now} false events now, {proposed} at the proposed thresholds; inseparable: {flagged:?}"
    );
    assert!(proposed < now && !flagged.is_empty(), "{first}");
    assert!(
        first["labels"].as_array().unwrap().iter().all(|l| l["proposed"].as_f64() >= l["current"].as_f64()),
        "never lowered without visits"
    );

    // The report's advice: a background label for what cannot be separated.
    let text = std::fs::read_to_string(&labels_file).unwrap();
    let text: String = text
        .lines()
        .map(|line| match flagged.iter().find(|f| line.starts_with(f.as_str())) {
            Some(name) => format!("!{name}{}\n", &line[line.find(':').unwrap()..]),
            None => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&labels_file, text).unwrap();
    let second = run(&["calibrate", "--write"], &config);
    let (now, proposed, flagged) = false_events(&second);
    eprintln!(
        "second calibration: {now} false events now, {proposed} at the proposed thresholds; inseparable: {flagged:?}"
    );
    assert_eq!((proposed, flagged.len()), (0, 0), "{second}");

    let written = std::fs::read_to_string(&labels_file).unwrap();
    assert!(written.contains("# Held out of training:") && written.contains("!empty: an empty scene"), "{written}");
    let after = run(&["eval-events", "--truth", truth], &config);
    eprintln!("calibrated thresholds: {:?} (events, false, found)", total(&after));
    assert_eq!(total(&after).0, 0, "no event at all: {after}");
}

/// With the clip's truth, every visit still fires and none is false, and
/// each threshold sits between the scene and the visits.
#[test]
fn calibrated_thresholds_with_the_truth_still_fire_every_visit() {
    let dir = tempfile::tempdir().unwrap();
    let labels = std::fs::read_to_string(demo_model_dir().join("labels.txt")).unwrap();
    let config = demo_config(dir.path(), &labels);
    let truth = demo_model_dir().join("demo.truth.json");
    let truth = truth.to_str().unwrap();

    let report = run(&["calibrate", "--truth", truth, "--write"], &config);
    let mut changed = 0;
    for l in report["labels"].as_array().unwrap() {
        let (proposed, current) = (l["proposed"].as_f64().unwrap(), l["current"].as_f64().unwrap());
        if l["visits"].as_u64() > Some(0) {
            assert_eq!(l["basis"], "separated", "{l}");
            let held = l["visits_held"].as_f64().unwrap();
            assert!(proposed <= held && proposed > l["scene_held"].as_f64().unwrap(), "{l}");
        }
        changed += usize::from((proposed - current).abs() > 1e-6);
        eprintln!("{}: {current} -> {proposed} ({})", l["label"], l["basis"]);
    }
    assert!(changed > 0);
    let after = run(&["eval-events", "--truth", truth], &config);
    assert_eq!(total(&after), (6, 0, 6), "{after}");
}

/// `--minutes` watches a live source for that long (here the clip looping
/// at 10 fps for 6 s) and calibrates on what it saw; a looping recording
/// without it is refused.
#[test]
fn calibrate_watches_a_live_source_for_the_minutes_given() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &labels_the_clip_never_shows());
    let live = format!("file:{}?fps=10&loop", demo_model_dir().join("demo.mjpeg").display());
    let started = std::time::Instant::now();
    let report = run(&["calibrate", "--minutes", "0.1", "--source", &live], &config);
    let seconds = started.elapsed().as_secs_f64();
    let frames = report["frames"]["frames"].as_u64().unwrap();
    eprintln!("6 s live: {frames} frames, {} inferred, {seconds:.1} s in all", report["frames"]["inferred"]);
    assert!((40..=70).contains(&frames), "about 60 frames in 6 s: {report}");
    assert_eq!(report["labels"].as_array().unwrap().len(), 10);

    let out = edgeclip_command()
        .args(["calibrate", "--camera", "demo", "--source", &live, "--config"])
        .arg(&config)
        .output_watched()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("loops; a recording is replayed once: drop '&loop'"), "{stderr}");
}
