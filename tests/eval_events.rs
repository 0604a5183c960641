//! `edgeclip eval-events` on the demo clip and its ground truth: the daemon's
//! pipeline for a configured camera (motion gate on, as by default), scored
//! event by event. Host only: it infers the whole clip.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::daemon::config;
use crate::support::demo::{SLACK, START_FRAMES};
use crate::support::paths::demo_model_dir;
use crate::support::process::{edgeclip_command, SpawnWatched};

/// A configuration in `dir` whose camera `demo` replays `clip` with the
/// demo labels; the broker is never contacted.
fn demo_config(dir: &Path, clip: &Path) -> std::path::PathBuf {
    let text = config("broker = \"mqtt://127.0.0.1:1\"", &format!("file:{}", clip.display()), "")
        .replace("@DIR@", dir.to_str().unwrap());
    std::fs::copy(demo_model_dir().join("labels.txt"), dir.join("labels.txt")).unwrap();
    let path = dir.join("edgeclip.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn eval_events(config: &Path, truth: &Path, json: bool) -> Output {
    let mut command = edgeclip_command();
    command.args(["eval-events", "--camera", "demo", "--config"]).arg(config).arg("--truth").arg(truth);
    if json {
        command.arg("--json");
    }
    command.output_watched().unwrap()
}

fn report(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every visit of the clip found by one event, none false, each started
/// within `START_FRAMES` (+ slack) of the shape being wholly in view; then
/// the clip's first two visits against a truth with one of them moved
/// elsewhere: that visit is missed and its event is false, in every figure.
#[test]
fn the_demo_clip_scores_every_visit_and_a_wrong_truth_scores_a_miss_and_a_false_event() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &demo_model_dir().join("demo.mjpeg"));
    let truth_path = demo_model_dir().join("demo.truth.json");
    let r = report(&eval_events(&config, &truth_path, true));
    let total = &r["total"];
    assert_eq!(r["frames"]["frames"], 420, "{r}");
    assert_eq!(
        (total["visits"].as_u64(), total["found"].as_u64(), total["events"].as_u64()),
        (Some(6), Some(6), Some(6)),
        "{r}"
    );
    assert_eq!(
        (total["precision"].as_f64(), total["recall"].as_f64(), total["false_per_hour"].as_f64()),
        (Some(1.0), Some(1.0), Some(0.0))
    );
    let latest_start = (START_FRAMES - 1 + SLACK) as f64 / 10.0;
    assert!(total["start_latency"]["max_s"].as_f64().unwrap() <= latest_start, "{r}");
    // The motion gate let the still frames between visits go.
    assert!(r["frames"]["still"].as_u64().unwrap() > 0, "{r}");

    // The first 140 frames: the red circle (20..=60) and the blue diamond
    // (88..=128) come and go; the red circle's visit is moved to 130..=135.
    const FRAMES: usize = 140;
    let short = dir.path().join("short");
    std::fs::create_dir(&short).unwrap();
    let clip = short.join("first-140.mjpeg");
    std::fs::write(&clip, crate::support::demo::clip_frames()[..FRAMES].concat()).unwrap();
    let config = demo_config(&short, &clip);
    let truth = serde_json::json!({
        "fps": 10, "frames": FRAMES,
        "labels": { "red-circle": { "visible": [[130, 135]] }, "blue-diamond": { "visible": [[88, 128]] } }
    });
    let moved = short.join("moved.truth.json");
    std::fs::write(&moved, truth.to_string()).unwrap();
    let r = report(&eval_events(&config, &moved, true));
    let total = &r["total"];
    assert_eq!((total["found"].as_u64(), total["false_events"].as_u64()), (Some(1), Some(1)), "{r}");
    assert_eq!((total["precision"].as_f64(), total["recall"].as_f64()), (Some(0.5), Some(0.5)));
    // One false event in the clip's 14 s.
    assert!((total["false_per_hour"].as_f64().unwrap() - 3600.0 / 14.0).abs() < 1e-6, "{r}");

    let table = eval_events(&config, &moved, false);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("camera 'demo'") && text.lines().any(|l| l.trim_start().starts_with("all ")), "{text}");
}

/// A camera that does not exist, a live source and a broken truth file are
/// refused with what would be accepted.
#[test]
fn eval_events_refuses_what_it_cannot_score() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &demo_model_dir().join("demo.mjpeg"));
    let truth = demo_model_dir().join("demo.truth.json");
    let run = |extra: &[&str], truth: &Path| {
        let out = edgeclip_command()
            .args(["eval-events", "--config"])
            .arg(&config)
            .arg("--truth")
            .arg(truth)
            .args(extra)
            .output_watched()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = run(&["--camera", "porch"], &truth);
    assert!(e.contains("no camera 'porch' in") && e.contains("its cameras: demo"), "{e}");
    let e = run(&["--camera", "demo", "--source", "v4l2:/dev/video0"], &truth);
    assert!(e.contains("is not a recording; eval-events replays a file"), "{e}");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, r#"{"fps": 10, "frames": 5, "labels": {"red-circle": {"visible": [[3, 9]]}}}"#).unwrap();
    let e = run(&["--camera", "demo"], &broken);
    assert!(e.contains("label 'red-circle': interval [3, 9] is not within the recording's 5 frames"), "{e}");
}
