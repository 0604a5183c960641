//! The demo clip (`models/tiny-shapes/demo.mjpeg`) as the end-to-end tests
//! replay it, its ground truth (`demo.truth.json`), the detector settings
//! they run it with, and the check of a replay's events against the truth.
//!
//! Under an emulator (the aarch64 suite under qemu) inference is about 70
//! times slower, so the tests replay the clip's first two visits instead of
//! all six ([`clip`]); everything they check is the same.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use super::paths::demo_model_dir;
use super::timing::emulated;

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
    let full = demo_model_dir().join("demo.mjpeg");
    if !emulated() {
        return full;
    }
    static CUT: OnceLock<PathBuf> = OnceLock::new();
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

/// The clip's frames (JPEG bytes), by index.
pub fn clip_frames() -> Vec<Vec<u8>> {
    let data = std::fs::read(clip()).unwrap();
    edgeclip::capture::mjpeg::MjpegFrames::new(&data).map(|f| f.unwrap().jpeg.to_vec()).collect()
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
pub fn expected_events() -> usize {
    2 * truth_visits().len()
}

/// The demo clip's visits, in order.
fn all_truth_visits() -> Vec<Visit> {
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(demo_model_dir().join("demo.truth.json")).unwrap()).unwrap();
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

/// The demo labels that can fire (all but the background label `!empty`).
pub fn positive_labels() -> Vec<String> {
    std::fs::read_to_string(demo_model_dir().join("labels.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| l.split(':').next().unwrap().trim().to_string())
        .collect()
}

/// Checks the events (JSON, as published) of one replay of the clip against
/// the truth: per visit exactly one start and one end with its label, the
/// start no earlier than the shape's first frame in view and no later than
/// `START_FRAMES` (+ slack) into its wholly-visible frames, the end after its
/// last wholly-visible frame and within `END_FRAMES` (+ slack) of it
/// leaving. Returns the start frame of each label.
pub fn check_against_truth(events: &[Value]) -> BTreeMap<String, u64> {
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
