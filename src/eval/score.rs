//! Events scored against a recording's truth: which events found a visit,
//! which were false, which visits were missed, and how late the events
//! started and ended.
//!
//! An event *finds* a visit of its label in its zone when the two overlap:
//! the event started no later than the label's last frame partly in view
//! and ended no earlier than its first. Each visit is found by one event at
//! most (the first); a second event over the same visit is false, as is an
//! event that overlaps no visit of its label. Start latency is the event's
//! start against the visit's first wholly visible frame (negative when it
//! fired while the label was still coming into view); end latency its end
//! against the last wholly visible frame.

use serde::Serialize;

use super::truth::{Truth, Visit};

/// One event of a replay, from its start to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayEvent {
    pub zone: Option<String>,
    pub label: String,
    pub start_frame: u64,
    pub end_frame: u64,
}

/// Latencies in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub median_s: f64,
    pub max_s: f64,
}

/// The score of one label in one zone, or of all of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// `None`: the whole frame (or, in the total, every zone).
    pub zone: Option<String>,
    /// `None` in the total.
    pub label: Option<String>,
    pub events: usize,
    pub false_events: usize,
    pub visits: usize,
    pub found: usize,
    /// Found events over all events; 1 when there are none.
    pub precision: f64,
    /// Found visits over all visits; 1 when there are none.
    pub recall: f64,
    pub false_per_hour: f64,
    /// Over the found visits; `None` when none was found.
    pub start_latency: Option<Latency>,
    pub end_latency: Option<Latency>,
}

/// A replay's score: per zone and label (every one with a visit or an
/// event), then the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub seconds: f64,
    pub per_label: Vec<Score>,
    pub total: Score,
}

/// What one event or visit came to.
struct Outcome {
    zone: Option<String>,
    label: String,
    /// An event (`Some(found)`) or a visit (`None`).
    event_found: Option<bool>,
    /// For a found visit: its start and end latency in seconds.
    latency: Option<(f64, f64)>,
}

/// Scores `events` against `truth`.
pub fn score(truth: &Truth, events: &[ReplayEvent]) -> Report {
    let mut events: Vec<&ReplayEvent> = events.iter().collect();
    events.sort_by_key(|e| e.start_frame);
    let mut found: Vec<Option<&ReplayEvent>> = vec![None; truth.visits.len()];
    let mut outcomes = Vec::new();
    for e in events {
        let visit = truth.visits.iter().enumerate().find(|(i, v)| found[*i].is_none() && finds(e, v));
        if let Some((i, _)) = visit {
            found[i] = Some(e);
        }
        outcomes.push(Outcome {
            zone: e.zone.clone(),
            label: e.label.clone(),
            event_found: Some(visit.is_some()),
            latency: None,
        });
    }
    for (v, e) in truth.visits.iter().zip(&found) {
        let latency = e.map(|e| {
            let seconds = |from: u64, to: u64| (to as f64 - from as f64) / truth.fps;
            (seconds(v.first, e.start_frame), seconds(v.last, e.end_frame))
        });
        outcomes.push(Outcome { zone: v.zone.clone(), label: v.label.clone(), event_found: None, latency });
    }

    let mut keys: Vec<(Option<String>, String)> = outcomes.iter().map(|o| (o.zone.clone(), o.label.clone())).collect();
    keys.sort();
    keys.dedup();
    let seconds = truth.seconds();
    let per_label = keys
        .into_iter()
        .map(|(zone, label)| {
            let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.zone == zone && o.label == label).collect();
            tally(zone, Some(label), &mine, seconds)
        })
        .collect();
    let all: Vec<&Outcome> = outcomes.iter().collect();
    Report { seconds, per_label, total: tally(None, None, &all, seconds) }
}

/// Whether event `e` finds visit `v` (see the module documentation).
fn finds(e: &ReplayEvent, v: &Visit) -> bool {
    e.zone == v.zone && e.label == v.label && e.start_frame <= v.in_view.1 && e.end_frame >= v.in_view.0
}

fn tally(zone: Option<String>, label: Option<String>, outcomes: &[&Outcome], seconds: f64) -> Score {
    let events = outcomes.iter().filter(|o| o.event_found.is_some()).count();
    let false_events = outcomes.iter().filter(|o| o.event_found == Some(false)).count();
    let visits = outcomes.iter().filter(|o| o.event_found.is_none()).count();
    let latencies: Vec<(f64, f64)> = outcomes.iter().filter_map(|o| o.latency).collect();
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    Score {
        zone,
        label,
        events,
        false_events,
        visits,
        found: latencies.len(),
        precision: ratio(events - false_events, events),
        recall: ratio(latencies.len(), visits),
        false_per_hour: if seconds > 0.0 { false_events as f64 * 3600.0 / seconds } else { 0.0 },
        start_latency: summarise(latencies.iter().map(|l| l.0).collect()),
        end_latency: summarise(latencies.iter().map(|l| l.1).collect()),
    }
}

fn summarise(mut values: Vec<f64>) -> Option<Latency> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    Some(Latency { median_s: median, max_s: values[n - 1] })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(zone: Option<&str>, label: &str, first: u64, last: u64, in_view: (u64, u64)) -> Visit {
        Visit { zone: zone.map(String::from), label: label.into(), first, last, in_view }
    }

    fn event(zone: Option<&str>, label: &str, start_frame: u64, end_frame: u64) -> ReplayEvent {
        ReplayEvent { zone: zone.map(String::from), label: label.into(), start_frame, end_frame }
    }

    #[test]
    fn events_find_overlapping_visits_of_their_label_and_zone_once() {
        // 36 000 frames at 10 fps: one hour.
        let truth = Truth {
            fps: 10.0,
            frames: 36_000,
            visits: vec![
                visit(None, "red", 100, 200, (90, 210)),
                visit(Some("door"), "red", 300, 400, (300, 400)),
                visit(None, "blue", 500, 600, (500, 600)),
            ],
        };
        let events = [
            // Found: fired while partly in view, ended 3 frames late.
            event(None, "red", 95, 203),
            // A second event over the same visit: false.
            event(None, "red", 205, 208),
            // The right label in the wrong zone: false; the door visit is missed.
            event(None, "red", 310, 390),
            // Found: the blue visit, 2 frames after it was wholly in view.
            event(None, "blue", 502, 600),
            // Nothing there: false.
            event(None, "blue", 5000, 5010),
        ];
        let report = score(&truth, &events);
        let t = &report.total;
        assert_eq!((t.events, t.false_events, t.visits, t.found), (5, 3, 3, 2));
        assert_eq!((t.precision, t.recall, t.false_per_hour), (0.4, 2.0 / 3.0, 3.0));
        // Latencies -0.5 s (red) and 0.2 s (blue).
        let start = t.start_latency.unwrap();
        assert!((start.median_s + 0.15).abs() < 1e-9 && (start.max_s - 0.2).abs() < 1e-9, "{start:?}");
        let red = report.per_label.iter().find(|s| s.zone.is_none() && s.label.as_deref() == Some("red")).unwrap();
        assert_eq!((red.events, red.false_events, red.found, red.end_latency.unwrap().max_s), (3, 2, 1, 0.3));
        let door = report.per_label.iter().find(|s| s.zone.as_deref() == Some("door")).unwrap();
        assert_eq!((door.events, door.visits, door.found, door.recall, door.precision), (0, 1, 0, 0.0, 1.0));
    }
}
