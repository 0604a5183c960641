//! The detector: turns each inferred frame's label scores into events.
//!
//! Per label a small state machine with hysteresis, so that a score hovering
//! around the threshold gives one event rather than a flicker of them:
//!
//! - **idle → active** when the label's score is at or above its threshold
//!   for `start_frames` inferred frames in a row (a `Start` event, carrying
//!   the frame that completed the run: its snapshot goes with the event);
//! - **active → idle** when the score has been below `threshold - margin`
//!   for `end_frames` inferred frames in a row, and the event has lasted
//!   `min_duration` (an `End` event);
//! - an event that reaches `max_duration` ends (reason `MaxDuration`) and,
//!   if the label is still there, the next frame at or above the threshold
//!   starts a fresh one, so that a car parked all day does not make one
//!   endless event.
//!
//! Scores are the softmax probabilities over all labels (negative labels
//! compete there but never fire). Frames the motion gate skipped are not
//! observed: "N frames" always means N inferred frames. Durations use the
//! monotonic clock (a board without a real-time clock jumps its wall clock
//! when NTP syncs); events carry wall-clock times for people.

use std::time::{Duration, Instant, SystemTime};

/// When frames turn into events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorOptions {
    /// Inferred frames in a row at or above the threshold that start an
    /// event. 2 ignores a single misclassified frame at the cost of one
    /// frame of latency.
    pub start_frames: u32,
    /// Inferred frames in a row below `threshold - margin` that end one. 3
    /// rides out a frame or two of occlusion or motion blur.
    pub end_frames: u32,
    /// The hysteresis band under the threshold in which an active event
    /// neither ends nor counts towards ending.
    pub margin: f32,
    /// An event lasts at least this long (a flicker still shows in Home
    /// Assistant's history as a visible pulse).
    pub min_duration: Duration,
    /// An event is ended after this long, and restarted if the label is
    /// still seen.
    pub max_duration: Duration,
}

impl DetectorOptions {
    /// The defaults, also those of the configuration file's `[detector]` keys.
    pub const DEFAULT: DetectorOptions = DetectorOptions {
        start_frames: 2,
        end_frames: 3,
        margin: 0.05,
        min_duration: Duration::from_secs(1),
        // A delivery stays minutes; anything present for an hour is part
        // of the scene, reported again hourly while it stays.
        max_duration: Duration::from_secs(3600),
    };
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions::DEFAULT
    }
}

/// One label as the detector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorLabel {
    pub name: String,
    pub threshold: f32,
    /// A background label: scored, never an event.
    pub negative: bool,
}

/// When and which frame a score belongs to.
#[derive(Debug, Clone, Copy)]
pub struct FrameInfo {
    /// The frame's id (its source's sequence number).
    pub id: u64,
    pub at: Instant,
    pub wall: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Start,
    End,
}

/// Why an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The label's score fell and stayed below the threshold.
    Gone,
    /// `max_duration` passed.
    MaxDuration,
    /// The label was removed from the labels file.
    LabelRemoved,
    /// The daemon is stopping (or the camera was disabled).
    Stopped,
}

/// A detection event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// The zone it happened in; `None`: the whole frame (a camera without
    /// zones). The detector leaves it `None`; the camera's inference names it.
    pub zone: Option<String>,
    pub label: String,
    /// The score of the frame that caused this event.
    pub score: f32,
    /// The highest score since the event started.
    pub peak: f32,
    /// The frame that started the event (its snapshot), and its time.
    pub start_frame: u64,
    pub started: SystemTime,
    /// The frame that caused this event (for `Start`, the start frame).
    pub frame: u64,
    /// Time since the start (zero for `Start`).
    pub duration: Duration,
    /// Why it ended; `None` for `Start`.
    pub reason: Option<EndReason>,
}

#[derive(Debug, Clone)]
enum State {
    /// `run` frames in a row at or above the threshold so far.
    Idle {
        run: u32,
    },
    Active {
        start_frame: u64,
        started: SystemTime,
        since: Instant,
        peak: f32,
        low_run: u32,
        last_score: f32,
    },
}

#[derive(Debug, Clone)]
struct Tracked {
    label: DetectorLabel,
    state: State,
}

/// The per-label state machines of one camera.
#[derive(Debug, Clone)]
pub struct Detector {
    options: DetectorOptions,
    labels: Vec<Tracked>,
}

impl Detector {
    pub fn new(labels: Vec<DetectorLabel>, options: DetectorOptions) -> Detector {
        let labels = labels.into_iter().map(|label| Tracked { label, state: State::Idle { run: 0 } }).collect();
        Detector { options, labels }
    }

    /// Names of the labels being tracked, in score order.
    pub fn labels(&self) -> impl Iterator<Item = &DetectorLabel> {
        self.labels.iter().map(|t| &t.label)
    }

    /// Whether the label is in an event now.
    pub fn is_active(&self, name: &str) -> bool {
        self.labels.iter().any(|t| t.label.name == name && matches!(t.state, State::Active { .. }))
    }

    /// Whether any label is in an event now.
    pub fn any_active(&self) -> bool {
        self.labels.iter().any(|t| matches!(t.state, State::Active { .. }))
    }

    /// Whether some label is part-way to a decision: a run of frames at or
    /// above its threshold that has not started an event yet, or a run below
    /// it that has not ended one yet. The motion gate lets still frames
    /// through while this holds after a change, so that a decision never
    /// waits for the next movement.
    pub fn undecided(&self) -> bool {
        self.labels.iter().any(|t| {
            !t.label.negative
                && match t.state {
                    State::Idle { run } => run > 0,
                    State::Active { low_run, .. } => low_run > 0,
                }
        })
    }

    /// Feeds one inferred frame's scores (one per label, in label order)
    /// and appends the events it causes to `events`.
    pub fn observe(&mut self, frame: FrameInfo, scores: &[f32], events: &mut Vec<Event>) {
        assert_eq!(scores.len(), self.labels.len(), "one score per label");
        let o = self.options;
        for (t, &score) in self.labels.iter_mut().zip(scores) {
            if t.label.negative {
                continue;
            }
            let threshold = t.label.threshold;
            match &mut t.state {
                State::Idle { run } => {
                    *run = if score >= threshold { *run + 1 } else { 0 };
                    if *run >= o.start_frames.max(1) {
                        t.state = State::Active {
                            start_frame: frame.id,
                            started: frame.wall,
                            since: frame.at,
                            peak: score,
                            low_run: 0,
                            last_score: score,
                        };
                        events.push(start_event(&t.label.name, score, frame));
                    }
                }
                State::Active { start_frame, started, since, peak, low_run, last_score } => {
                    *peak = peak.max(score);
                    *last_score = score;
                    *low_run = if score < threshold - o.margin { *low_run + 1 } else { 0 };
                    let lasted = frame.at.saturating_duration_since(*since);
                    let reason = if lasted >= o.max_duration {
                        Some(EndReason::MaxDuration)
                    } else if *low_run >= o.end_frames.max(1) && lasted >= o.min_duration {
                        Some(EndReason::Gone)
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        events.push(Event {
                            kind: EventKind::End,
                            zone: None,
                            label: t.label.name.clone(),
                            score,
                            peak: *peak,
                            start_frame: *start_frame,
                            started: *started,
                            frame: frame.id,
                            duration: lasted,
                            reason: Some(reason),
                        });
                        t.state = State::Idle { run: 0 };
                    }
                }
            }
        }
    }

    /// Takes a new label list (a labels file edited): labels kept by name
    /// keep their state and take the new threshold; active events of
    /// removed labels (or labels turned negative) end with `LabelRemoved`.
    pub fn set_labels(&mut self, labels: Vec<DetectorLabel>, frame: FrameInfo, events: &mut Vec<Event>) {
        let mut old = std::mem::take(&mut self.labels);
        for label in labels {
            let state = match old.iter().position(|t| t.label.name == label.name) {
                Some(i) if !label.negative => old.swap_remove(i).state,
                _ => State::Idle { run: 0 },
            };
            self.labels.push(Tracked { label, state });
        }
        for t in old.iter().chain(self.labels.iter().filter(|t| t.label.negative)) {
            end_active(t, EndReason::LabelRemoved, frame, events);
        }
        for t in self.labels.iter_mut().filter(|t| t.label.negative) {
            t.state = State::Idle { run: 0 };
        }
    }

    /// Ends every active event (shutdown, camera disabled).
    pub fn stop(&mut self, frame: FrameInfo, events: &mut Vec<Event>) {
        for t in &mut self.labels {
            end_active(t, EndReason::Stopped, frame, events);
            t.state = State::Idle { run: 0 };
        }
    }
}

fn start_event(label: &str, score: f32, frame: FrameInfo) -> Event {
    Event {
        kind: EventKind::Start,
        zone: None,
        label: label.to_string(),
        score,
        peak: score,
        start_frame: frame.id,
        started: frame.wall,
        frame: frame.id,
        duration: Duration::ZERO,
        reason: None,
    }
}

fn end_active(t: &Tracked, reason: EndReason, frame: FrameInfo, events: &mut Vec<Event>) {
    if let State::Active { start_frame, started, since, peak, last_score, .. } = t.state {
        events.push(Event {
            kind: EventKind::End,
            zone: None,
            label: t.label.name.clone(),
            score: last_score,
            peak,
            start_frame,
            started,
            frame: frame.id,
            duration: frame.at.saturating_duration_since(since),
            reason: Some(reason),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str, threshold: f32) -> DetectorLabel {
        DetectorLabel { name: name.into(), threshold, negative: false }
    }

    /// Runs `scores` (per frame, per label) at 10 frames a second and
    /// returns the events as (frame, kind, label, reason).
    fn run(detector: &mut Detector, scores: &[&[f32]]) -> Vec<(u64, EventKind, String, Option<EndReason>)> {
        let t0 = Instant::now();
        let mut events = Vec::new();
        for (i, s) in scores.iter().enumerate() {
            let frame = FrameInfo {
                id: i as u64,
                at: t0 + Duration::from_millis(100 * i as u64),
                wall: SystemTime::UNIX_EPOCH,
            };
            detector.observe(frame, s, &mut events);
        }
        events.into_iter().map(|e| (e.frame, e.kind, e.label, e.reason)).collect()
    }

    fn options() -> DetectorOptions {
        DetectorOptions { min_duration: Duration::ZERO, ..DetectorOptions::default() }
    }

    #[test]
    fn an_event_needs_two_frames_to_start_and_three_to_end_with_hysteresis() {
        let mut d = Detector::new(vec![label("cat", 0.5)], options());
        let s: Vec<[f32; 1]> =
            [0.6, 0.1, 0.6, 0.7, 0.3, 0.2, 0.47, 0.2, 0.1, 0.05, 0.9].into_iter().map(|x| [x]).collect();
        let scores: Vec<&[f32]> = s.iter().map(|x| &x[..]).collect();
        let got = run(&mut d, &scores);
        // Frame 0 alone does not start; 2 and 3 do. 4 and 5 are low, 6 is in
        // the margin (0.45..0.5) and resets the count; 7, 8, 9 end it.
        assert_eq!(
            got,
            [(3, EventKind::Start, "cat".into(), None), (9, EventKind::End, "cat".into(), Some(EndReason::Gone))]
        );
        assert!(!d.is_active("cat"));
    }

    #[test]
    fn a_label_part_way_to_starting_or_ending_an_event_is_undecided() {
        let mut d = Detector::new(
            vec![label("cat", 0.5), DetectorLabel { name: "empty".into(), threshold: 0.5, negative: true }],
            options(),
        );
        let mut undecided = Vec::new();
        // Idle; one high frame; a start; in the margin; low twice; the end.
        for s in [0.1, 0.6, 0.6, 0.47, 0.2, 0.2, 0.2] {
            run(&mut d, &[&[s, 0.9]]);
            undecided.push(d.undecided());
        }
        assert_eq!(undecided, [false, true, false, false, true, true, false]);
        assert!(!d.is_active("cat"));
    }

    #[test]
    fn negative_labels_never_fire_and_labels_are_independent() {
        let mut d = Detector::new(
            vec![
                label("cat", 0.5),
                DetectorLabel { name: "empty".into(), threshold: 0.5, negative: true },
                label("dog", 0.3),
            ],
            options(),
        );
        let got = run(&mut d, &[&[0.1, 0.9, 0.35], &[0.1, 0.9, 0.4], &[0.8, 0.9, 0.0]]);
        assert_eq!(got, [(1, EventKind::Start, "dog".into(), None)]);
    }

    #[test]
    fn min_duration_holds_an_event_and_max_duration_ends_it() {
        let o = DetectorOptions {
            min_duration: Duration::from_millis(800),
            max_duration: Duration::from_secs(2),
            ..options()
        };
        let mut d = Detector::new(vec![label("van", 0.5)], o);
        // Starts at frame 1 (t=0.1 s), low from frame 2: three low frames
        // would end it at frame 4, but it lasts until frame 9 (0.8 s).
        let mut s: Vec<[f32; 1]> = vec![[0.9], [0.9]];
        s.extend(std::iter::repeat_n([0.0], 10));
        let scores: Vec<&[f32]> = s.iter().map(|x| &x[..]).collect();
        assert_eq!(
            run(&mut d, &scores),
            [(1, EventKind::Start, "van".into(), None), (9, EventKind::End, "van".into(), Some(EndReason::Gone))]
        );

        // Always present: ends at 2 s and starts again two frames later.
        let mut d = Detector::new(vec![label("van", 0.5)], o);
        let s = [[0.9f32]; 30];
        let scores: Vec<&[f32]> = s.iter().map(|x| &x[..]).collect();
        assert_eq!(
            run(&mut d, &scores),
            [
                (1, EventKind::Start, "van".into(), None),
                (21, EventKind::End, "van".into(), Some(EndReason::MaxDuration)),
                (23, EventKind::Start, "van".into(), None),
            ]
        );
    }

    #[test]
    fn events_carry_peak_start_and_duration() {
        let mut d = Detector::new(vec![label("cat", 0.5)], options());
        let t0 = Instant::now();
        let mut events = Vec::new();
        for (i, score) in [0.6f32, 0.8, 0.95, 0.7, 0.1, 0.1, 0.1].into_iter().enumerate() {
            let frame = FrameInfo {
                id: 100 + i as u64,
                at: t0 + Duration::from_millis(250 * i as u64),
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64),
            };
            d.observe(frame, &[score], &mut events);
        }
        let [start, end] = &events[..] else { panic!("{events:?}") };
        assert_eq!(
            (start.kind, start.frame, start.start_frame, start.score, start.peak),
            (EventKind::Start, 101, 101, 0.8, 0.8)
        );
        assert_eq!(start.started, SystemTime::UNIX_EPOCH + Duration::from_secs(1));
        assert_eq!((end.kind, end.frame, end.start_frame, end.peak, end.score), (EventKind::End, 106, 101, 0.95, 0.1));
        assert_eq!(end.duration, Duration::from_millis(1250));
    }

    #[test]
    fn new_labels_keep_the_state_of_kept_ones_and_end_removed_ones() {
        let mut d = Detector::new(vec![label("cat", 0.5), label("dog", 0.5)], options());
        run(&mut d, &[&[0.9, 0.9], &[0.9, 0.9]]);
        assert!(d.is_active("cat") && d.is_active("dog"));
        let frame = FrameInfo { id: 7, at: Instant::now(), wall: SystemTime::now() };
        let mut events = Vec::new();
        d.set_labels(vec![label("bird", 0.5), label("cat", 0.4)], frame, &mut events);
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].label.as_str(), events[0].reason), ("dog", Some(EndReason::LabelRemoved)));
        assert!(d.is_active("cat") && !d.is_active("bird"));
        events.clear();
        d.stop(frame, &mut events);
        assert_eq!(
            events.iter().map(|e| (e.label.as_str(), e.reason)).collect::<Vec<_>>(),
            [("cat", Some(EndReason::Stopped))]
        );
    }
}
