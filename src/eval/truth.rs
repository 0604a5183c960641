//! A recording's ground truth: when each label is in view, in which zone,
//! by frame. `edgeclip eval-events` scores a replay's events against it.
//!
//! The file is JSON, the format the demo-model tools write with their clips
//! (`models/tiny-shapes/demo.truth.json`); keys other than these are
//! ignored:
//!
//! ```json
//! {
//!   "fps": 10,
//!   "frames": 420,
//!   "labels": { "red-circle": { "visible": [[20, 60]] } },
//!   "per_frame_partial": [[], ["red-circle"]],
//!   "zones": { "door": { "labels": { "blue-van": { "visible": [[100, 180]], "in_view": [[96, 185]] } } } }
//! }
//! ```
//!
//! `visible` lists the frame intervals (first and last, inclusive) in which
//! the label is wholly in view: an event is due there. `in_view` widens each
//! to the frames where it is at least partly in view, where an event may
//! start or end early without being false; without it, `per_frame_partial`
//! (per frame, the labels partly in view) widens the whole-frame visits.
//! `labels` is the whole frame; `zones` holds each zone's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One stay of a label in view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// `None`: the whole frame.
    pub zone: Option<String>,
    pub label: String,
    /// Wholly in view from `first` to `last`, inclusive.
    pub first: u64,
    pub last: u64,
    /// At least partly in view, a superset of `first..=last`.
    pub in_view: (u64, u64),
}

/// A recording's truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// Frame N is at N / fps seconds.
    pub fps: f64,
    pub frames: u64,
    /// In order of first frame.
    pub visits: Vec<Visit>,
}

/// A truth file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("truth file '{}': {message}", path.display())]
pub struct TruthError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Deserialize)]
struct RawTruth {
    fps: f64,
    frames: u64,
    #[serde(default)]
    labels: BTreeMap<String, RawLabel>,
    #[serde(default)]
    zones: BTreeMap<String, RawZone>,
    #[serde(default)]
    per_frame_partial: Vec<Vec<String>>,
}

#[derive(Deserialize)]
struct RawZone {
    labels: BTreeMap<String, RawLabel>,
}

#[derive(Deserialize)]
struct RawLabel {
    visible: Vec<[u64; 2]>,
    #[serde(default)]
    in_view: Option<Vec<[u64; 2]>>,
}

impl Truth {
    /// Reads and checks a truth file.
    pub fn load(path: &Path) -> Result<Truth, TruthError> {
        let error = |message: String| TruthError { path: path.to_path_buf(), message };
        let text = crate::util::file::read_small_file(path, MAX_TRUTH_BYTES).map_err(|e| error(format!("{e:#}")))?;
        Truth::parse(&text).map_err(error)
    }

    /// Parses a truth file's text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Truth, String> {
        let raw: RawTruth = serde_json::from_str(text).map_err(|e| format!("not a truth file: {e}"))?;
        if !(raw.fps.is_finite() && raw.fps > 0.0) {
            return Err(format!("fps {} is not a frame rate; accepted: a number above 0", raw.fps));
        }
        let mut visits = Vec::new();
        let whole = raw.labels.iter().map(|(label, l)| (None, label, l));
        let zoned = raw
            .zones
            .iter()
            .flat_map(|(zone, z)| z.labels.iter().map(move |(label, l)| (Some(zone.clone()), label, l)));
        for (zone, label, l) in whole.chain(zoned) {
            let where_ = || match &zone {
                Some(z) => format!("zone '{z}', label '{label}'"),
                None => format!("label '{label}'"),
            };
            if let Some(in_view) = &l.in_view {
                if in_view.len() != l.visible.len() {
                    return Err(format!(
                        "{}: {} 'visible' intervals but {} 'in_view' ones; give one 'in_view' per 'visible'",
                        where_(),
                        l.visible.len(),
                        in_view.len()
                    ));
                }
            }
            for (i, &[first, last]) in l.visible.iter().enumerate() {
                if first > last || last >= raw.frames {
                    return Err(format!(
                        "{}: interval [{first}, {last}] is not within the recording's {} frames (first <= last < frames)",
                        where_(),
                        raw.frames
                    ));
                }
                let in_view = match &l.in_view {
                    Some(in_view) => {
                        let [a, b] = in_view[i];
                        if a > first || b < last {
                            return Err(format!(
                                "{}: 'in_view' [{a}, {b}] does not contain 'visible' [{first}, {last}]",
                                where_()
                            ));
                        }
                        (a, b)
                    }
                    None if zone.is_none() => widen(first, last, label, &raw.per_frame_partial),
                    None => (first, last),
                };
                visits.push(Visit { zone: zone.clone(), label: label.clone(), first, last, in_view });
            }
        }
        visits.sort_by(|a, b| (a.first, &a.zone, &a.label).cmp(&(b.first, &b.zone, &b.label)));
        Ok(Truth { fps: raw.fps, frames: raw.frames, visits })
    }

    /// The recording's length in seconds.
    pub fn seconds(&self) -> f64 {
        self.frames as f64 / self.fps
    }
}

/// The largest truth file read: a day of 10 fps frames listed one by one.
const MAX_TRUTH_BYTES: u64 = 64 * 1024 * 1024;

/// `first..=last` widened by the frames next to it, on either side, that
/// list `label` as partly in view.
fn widen(first: u64, last: u64, label: &str, partial: &[Vec<String>]) -> (u64, u64) {
    let partly = |frame: u64| partial.get(frame as usize).is_some_and(|labels| labels.iter().any(|l| l == label));
    let (mut a, mut b) = (first, last);
    while a > 0 && partly(a - 1) {
        a -= 1;
    }
    while partly(b + 1) {
        b += 1;
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_are_read_per_zone_and_widened_by_the_partly_visible_frames() {
        let text = r#"{
            "fps": 10, "frames": 12, "seed": 7,
            "labels": { "red": { "visible": [[3, 4], [8, 9]], "colour": "red" } },
            "per_frame_partial": [[], [], ["red"], [], [], ["red"], ["red"], [], [], [], ["blue"], []],
            "zones": { "door": { "labels": { "blue": { "visible": [[6, 7]], "in_view": [[5, 8]] } } } }
        }"#;
        let truth = Truth::parse(text).unwrap();
        assert_eq!(truth.seconds(), 1.2);
        let visit = |zone: Option<&str>, label: &str, first, last, in_view| Visit {
            zone: zone.map(String::from),
            label: label.into(),
            first,
            last,
            in_view,
        };
        assert_eq!(
            truth.visits,
            [
                visit(None, "red", 3, 4, (2, 6)),
                visit(Some("door"), "blue", 6, 7, (5, 8)),
                visit(None, "red", 8, 9, (8, 9)),
            ]
        );
    }

    #[test]
    fn a_truth_that_cannot_be_scored_against_says_why() {
        let e = |text: &str| Truth::parse(text).unwrap_err();
        assert!(e(r#"{"fps": 0, "frames": 3}"#).contains("fps 0 is not a frame rate"));
        assert!(e(r#"{"fps": 10, "frames": 3, "labels": {"red": {"visible": [[2, 3]]}}}"#)
            .contains("label 'red': interval [2, 3] is not within the recording's 3 frames"));
        assert!(e(r#"{"fps": 10, "frames": 9, "zones": {"door": {"labels": {"red": {"visible": [[2, 3]], "in_view": [[3, 3]]}}}}}"#)
            .contains("zone 'door', label 'red': 'in_view' [3, 3] does not contain 'visible' [2, 3]"));
        assert!(e("[]").starts_with("not a truth file"));
    }
}
