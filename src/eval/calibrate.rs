//! Calibration: each label's threshold from the scores the scene gave it.
//!
//! A CLIP score means little on its own: how high a label scores on a scene
//! without it depends on the scene, the other labels and the lighting, so
//! one threshold for every label fires on some scenes and misses on others.
//! Calibration replays footage of the camera's own scene through its
//! pipeline, records every label's score on every inferred frame of each
//! zone, and sets each label's threshold from them.
//!
//! The detector starts an event when a label scores at or above its
//! threshold for `start_frames` inferred frames in a row. So what matters on
//! frames without the label is the **held score**: the highest level a
//! label kept for `start_frames` frames in a row (the best of the minima of
//! every such window). A threshold above it fires nothing on this footage.
//! With a truth file, each visit of the label has a held score too, and a
//! threshold at or below the lowest visit's fires on every visit.
//!
//! - With visits, and every visit held higher than any stretch without the
//!   label: the threshold goes halfway between, the largest margin on
//!   both sides.
//! - With visits that do not clear the scene: just above the scene's held
//!   score (no false event here), and the visits it loses are counted.
//! - Without visits (the footage is assumed to hold none of the label): the
//!   held score plus `margin`, for what this footage did not show (other
//!   light, other clutter), never lowered below the current threshold (only
//!   visits are evidence that a lower one still fires right), and at most
//!   [`MAX_FIREABLE`], so that the label can still fire; a label that needs
//!   more is flagged: no threshold separates it from this scene.
//!
//! Every proposal is checked by running the detector again over the
//! recorded scores with the current and with the proposed threshold and
//! counting the events each fires, false or true.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::truth::Truth;
use crate::pipeline::detect::{Detector, DetectorLabel, DetectorOptions, EventKind, FrameInfo};

/// The highest threshold proposed for a label without visits to go by: a
/// label whose threshold is any higher fires only on near-certain frames,
/// which a real CLIP gives rarely, so it would fire too seldom to trust.
pub const MAX_FIREABLE: f32 = 0.95;

/// The highest threshold ever proposed: a softmax probability above it is
/// rounding.
pub const MAX_THRESHOLD: f32 = 0.99;

/// How far above the scene's held score a threshold goes when the visits
/// do not clear it: as little as counts, so that as many visits as can be
/// still fire.
const OVER_THE_SCENE: f32 = 0.01;

/// One label's scores in one zone, on every inferred frame, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub zone: Option<String>,
    pub label: String,
    pub threshold: f32,
    /// (frame, score).
    pub scores: Vec<(u64, f32)>,
}

/// Score quantiles over a set of frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    pub frames: usize,
    pub p50: f32,
    pub p90: f32,
    pub p99: f32,
    pub max: f32,
}

impl Quantiles {
    fn of(mut scores: Vec<f32>) -> Option<Quantiles> {
        if scores.is_empty() {
            return None;
        }
        scores.sort_by(f32::total_cmp);
        let at = |q: f64| scores[((scores.len() - 1) as f64 * q).round() as usize];
        Some(Quantiles { frames: scores.len(), p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) })
    }
}

/// What the proposal rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Every visit held higher than the scene: halfway between.
    Separated,
    /// Some visits held no higher than the scene: just above the scene.
    Overlap,
    /// No visits: the scene's held score and the margin.
    SceneOnly,
    /// No visits, and the scene needs a threshold above [`MAX_FIREABLE`].
    Unfireable,
}

/// Events of a label over the footage at one threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EventCount {
    /// Events that overlap no visit of the label.
    pub false_events: usize,
    /// Visits that an event overlapped.
    pub visits_found: usize,
}

/// One label's calibration in one zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    pub zone: Option<String>,
    pub label: String,
    pub current: f32,
    pub proposed: f32,
    pub basis: Basis,
    /// Scores on frames without the label.
    pub scene: Option<Quantiles>,
    /// The highest score held for `start_frames` frames without the label.
    pub scene_held: f32,
    /// Scores on frames where the label is wholly in view.
    pub visits_scores: Option<Quantiles>,
    /// The lowest, over the visits, of the highest score held in each.
    pub visits_held: Option<f32>,
    /// Visits of the label in the truth, and those too short to fire at
    /// all (fewer inferred frames than `start_frames`).
    pub visits: usize,
    pub visits_too_short: usize,
    /// Proposed threshold minus the scene's held score.
    pub margin_over_scene: f32,
    /// The visits' held score minus the proposed threshold.
    pub margin_under_visits: Option<f32>,
    pub events_now: EventCount,
    pub events_proposed: EventCount,
}

/// Where a frame stands for one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Without the label: an event here is false.
    Scene,
    /// Visit number `i` (wholly or partly in view): an event here finds it.
    Visit(usize),
}

/// The visits of `series`' label in its zone: (first, last, in view).
fn visits_of<'a>(truth: Option<&'a Truth>, series: &'a Series) -> Vec<&'a super::truth::Visit> {
    truth
        .map(|t| t.visits.iter().filter(|v| v.zone == series.zone && v.label == series.label).collect())
        .unwrap_or_default()
}

/// The highest of the minima of every `k` consecutive scores of `run`.
fn held(run: &[f32], k: usize) -> Option<f32> {
    run.windows(k.max(1)).map(|w| w.iter().copied().fold(f32::INFINITY, f32::min)).reduce(f32::max)
}

/// Proposes a threshold for each label's series ([`propose`] for one).
pub fn propose_all(
    series: &[Series],
    truth: Option<&Truth>,
    detector: DetectorOptions,
    margin: f32,
    fps: f64,
) -> Vec<Proposal> {
    series.iter().map(|s| propose(s, truth, detector, margin, fps)).collect()
}

/// The module documentation's rule for one label in one zone; `fps` puts
/// the frames on the clock the detector's durations need.
pub fn propose(series: &Series, truth: Option<&Truth>, detector: DetectorOptions, margin: f32, fps: f64) -> Proposal {
    let k = detector.start_frames.max(1) as usize;
    let visits = visits_of(truth, series);
    let class = |frame: u64| match visits.iter().position(|v| (v.in_view.0..=v.in_view.1).contains(&frame)) {
        Some(i) => Class::Visit(i),
        None => Class::Scene,
    };
    // Runs of consecutive inferred frames of one class.
    let mut runs: Vec<(Class, Vec<f32>)> = Vec::new();
    for &(frame, score) in &series.scores {
        let c = class(frame);
        match runs.last_mut() {
            Some((last, run)) if *last == c => run.push(score),
            _ => runs.push((c, vec![score])),
        }
    }
    let scene_held =
        runs.iter().filter(|(c, _)| *c == Class::Scene).filter_map(|(_, r)| held(r, k)).fold(0.0, f32::max);
    let scene =
        Quantiles::of(series.scores.iter().filter(|(f, _)| class(*f) == Class::Scene).map(|&(_, s)| s).collect());
    // Only the wholly visible frames count as the label's scores; an event
    // may start anywhere the visit is in view.
    let visible = |f: u64| visits.iter().any(|v| (v.first..=v.last).contains(&f));
    let visits_scores = Quantiles::of(series.scores.iter().filter(|(f, _)| visible(*f)).map(|&(_, s)| s).collect());
    let per_visit: Vec<Option<f32>> = (0..visits.len())
        .map(|i| runs.iter().filter(|(c, _)| *c == Class::Visit(i)).filter_map(|(_, r)| held(r, k)).reduce(f32::max))
        .collect();
    let visits_too_short = per_visit.iter().filter(|h| h.is_none()).count();
    let visits_held = per_visit.iter().flatten().copied().reduce(f32::min);

    let (proposed, basis) = match visits_held {
        Some(v) if v > scene_held => (((scene_held + v) / 2.0).min(MAX_THRESHOLD), Basis::Separated),
        Some(_) => ((scene_held + OVER_THE_SCENE).min(MAX_THRESHOLD), Basis::Overlap),
        None if scene_held + margin > MAX_FIREABLE => (MAX_FIREABLE, Basis::Unfireable),
        None => ((scene_held + margin).max(series.threshold).min(MAX_FIREABLE), Basis::SceneOnly),
    };
    // Two decimals, as a person writes it in the labels file, rounded up so
    // that the margin over the scene holds.
    // (Less a thousandth of a hundredth, so that 0.6 + 0.1 in f32 stays 0.7.)
    let proposed = ((proposed * 100.0 - 1e-3).ceil() / 100.0).min(MAX_THRESHOLD);
    Proposal {
        zone: series.zone.clone(),
        label: series.label.clone(),
        current: series.threshold,
        proposed,
        basis,
        scene,
        scene_held,
        visits_scores,
        visits_held,
        visits: visits.len(),
        visits_too_short,
        margin_over_scene: proposed - scene_held,
        margin_under_visits: visits_held.map(|v| v - proposed),
        events_now: count_events(series, series.threshold, &visits, detector, fps),
        events_proposed: count_events(series, proposed, &visits, detector, fps),
    }
}

/// The events the detector fires on `series` at `threshold`, judged against
/// the visits.
fn count_events(
    series: &Series,
    threshold: f32,
    visits: &[&super::truth::Visit],
    options: DetectorOptions,
    fps: f64,
) -> EventCount {
    let label = DetectorLabel { name: series.label.clone(), threshold, negative: false };
    let mut detector = Detector::new(vec![label], options);
    let origin = Instant::now();
    let mut events = Vec::new();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut open: Option<u64> = None;
    let mut last_frame = 0;
    for &(frame, score) in &series.scores {
        let at = Duration::from_secs_f64(frame as f64 / fps);
        let info = FrameInfo { id: frame, at: origin + at, wall: SystemTime::UNIX_EPOCH + at };
        detector.observe(info, &[score], &mut events);
        for e in events.drain(..) {
            match e.kind {
                EventKind::Start => open = Some(e.frame),
                EventKind::End => spans.push((e.start_frame, e.frame)),
            }
        }
        last_frame = frame;
    }
    if let Some(start) = open.filter(|_| detector.any_active()) {
        spans.push((start, last_frame));
    }
    let overlaps = |(a, b): (u64, u64), v: &super::truth::Visit| a <= v.in_view.1 && b >= v.in_view.0;
    EventCount {
        false_events: spans.iter().filter(|&&s| !visits.iter().any(|v| overlaps(s, v))).count(),
        visits_found: visits.iter().filter(|v| spans.iter().any(|&s| overlaps(s, v))).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(scores: &[f32]) -> Series {
        Series {
            zone: None,
            label: "van".into(),
            threshold: 0.5,
            scores: scores.iter().enumerate().map(|(i, &s)| (i as u64, s)).collect(),
        }
    }

    fn options() -> DetectorOptions {
        DetectorOptions { start_frames: 2, min_duration: Duration::ZERO, ..DetectorOptions::DEFAULT }
    }

    #[test]
    fn the_held_score_is_the_best_level_kept_for_start_frames_in_a_row() {
        assert_eq!(held(&[0.1, 0.9, 0.2, 0.6, 0.7, 0.3], 2), Some(0.6));
        assert_eq!(held(&[0.1, 0.9, 0.2], 1), Some(0.9));
        assert_eq!(held(&[0.9], 2), None, "one frame cannot start an event");
    }

    #[test]
    fn without_visits_the_threshold_clears_the_scene_by_the_margin() {
        // A single 0.9 spike never starts an event; 0.6 held for two does.
        let s = series(&[0.1, 0.9, 0.2, 0.6, 0.62, 0.3, 0.2]);
        let p = propose(&s, None, options(), 0.1, 10.0);
        assert_eq!((p.basis, p.proposed), (Basis::SceneOnly, 0.7));
        assert!((p.scene_held - 0.6).abs() < 1e-6);
        assert_eq!(p.events_now, EventCount { false_events: 1, visits_found: 0 });
        assert_eq!(p.events_proposed, EventCount::default());
        // A quiet scene keeps the current threshold: nothing says lower fires right.
        let quiet = propose(&series(&[0.1, 0.2, 0.1, 0.15]), None, options(), 0.1, 10.0);
        assert_eq!((quiet.basis, quiet.proposed), (Basis::SceneOnly, 0.5));
        // A scene that holds 0.9 cannot be separated by a fireable threshold.
        let loud = propose(&series(&[0.9, 0.91, 0.92]), None, options(), 0.1, 10.0);
        assert_eq!((loud.basis, loud.proposed), (Basis::Unfireable, MAX_FIREABLE));
    }

    #[test]
    fn with_visits_the_threshold_goes_halfway_between_or_just_over_the_scene() {
        let truth =
            Truth::parse(r#"{"fps": 10, "frames": 12, "labels": {"van": {"visible": [[4, 6]], "in_view": [[3, 7]]}}}"#)
                .unwrap();
        // Scene held 0.4 (frames 0-2), the visit held 0.85 (frames 3-7 in view).
        let s = series(&[0.4, 0.45, 0.1, 0.5, 0.8, 0.85, 0.9, 0.2, 0.3, 0.1, 0.05, 0.1]);
        let p = propose(&s, Some(&truth), options(), 0.1, 10.0);
        assert_eq!((p.basis, p.proposed, p.visits, p.visits_too_short), (Basis::Separated, 0.63, 1, 0));
        assert_eq!(p.events_proposed, EventCount { false_events: 0, visits_found: 1 });
        assert!((p.margin_under_visits.unwrap() - 0.22).abs() < 1e-6, "{p:?}");
        // A scene that holds 0.9 after the visit beats it (0.85): just over
        // the scene, and the visit is lost.
        let truth =
            Truth::parse(r#"{"fps": 10, "frames": 14, "labels": {"van": {"visible": [[4, 6]], "in_view": [[3, 7]]}}}"#)
                .unwrap();
        let s = series(&[0.1, 0.1, 0.1, 0.5, 0.8, 0.85, 0.9, 0.2, 0.1, 0.1, 0.1, 0.9, 0.92, 0.1]);
        let p = propose(&s, Some(&truth), options(), 0.1, 10.0);
        assert_eq!((p.basis, p.proposed), (Basis::Overlap, 0.91));
        assert_eq!(p.events_proposed, EventCount { false_events: 0, visits_found: 0 });
        assert_eq!(p.events_now, EventCount { false_events: 1, visits_found: 1 });
    }
}
