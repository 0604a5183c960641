//! One camera's frames through the pipeline, one frame at a time.
//!
//! An [`Inference`] owns everything a camera's inference thread keeps from
//! frame to frame: the converter and its RGB buffer, the sensor line that
//! gates inference, the frame-rate cap, the classifier, and per zone
//! ([`crate::pipeline::zone`]; the whole frame when the camera has none) its
//! crop, motion gate, label set and detector. [`Inference::step`] takes one
//! frame through the camera's gates (input line, `max_fps`, conversion) and
//! then each zone through its motion gate and, if it passes, the model and
//! its detector; it says what happened to the frame and how long each stage
//! took (summed over the zones inferred), and leaves counting and publishing
//! to its caller. The encoder runs once per zone whose picture changed: a
//! still zone costs nothing.
//!
//! After a zone's motion gate lets a changed crop through, the still crops
//! that follow are inferred too until its detector has decided (see
//! [`Settling`]): a shape that appears and then stands still changes the
//! picture once, and an event needs `start_frames` inferred frames in a row.
//!
//! The input line is read on every frame, so that its hold counts from the
//! sensor's last active moment. While an event is active, frames are
//! inferred whatever the line says, so that the event can end when its
//! label leaves the picture (otherwise a light switched on by a PIR sensor
//! would stay on until the next trigger).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::classify::{Classifier, ClassifyError};
use super::convert::{ConvertError, Converter, RgbImage};
use super::detect::{Detector, DetectorLabel, DetectorOptions, Event, FrameInfo};
use super::matcher::{Matcher, Scores};
use super::motion::{MotionGate, MotionOptions, SettleState, Settling};
use super::zone::{crop, min_frame_side, Rect};
use crate::capture::OwnedFrame;
use crate::gpio::input::{InputGate, InputState};
use crate::gpio::AnyInputPin;

/// Labels kept in a frame's top list (the detector reads every label's
/// score; the top list is for logs).
const TOP_K: usize = 5;

/// How a camera's frames are gated and detected.
#[derive(Debug, Clone, Copy)]
pub struct InferenceOptions {
    pub detector: DetectorOptions,
    /// `None`: every frame that passes the other gates is inferred.
    pub motion: Option<MotionOptions>,
    /// Inferred frames a second at most; `None` or 0: no cap.
    pub max_fps: Option<f64>,
}

/// A frame that could not be inferred.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The frame did not decode (a corrupt JPEG, a short raw frame).
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(transparent)]
    Classify(#[from] ClassifyError),
}

/// What [`Inference::step`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The camera is switched off.
    Disabled,
    /// The input line is idle (and no event is active).
    InputIdle,
    /// Too soon after the last inferred frame for `max_fps`.
    RateLimited,
    /// The motion gate found the scene unchanged.
    Still,
    /// The model ran; the detector's events, if any, were added.
    Inferred(FrameTimes),
}

/// How long each stage of an inferred frame took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameTimes {
    /// Decoding and converting to RGB.
    pub decode: Duration,
    pub preprocess: Duration,
    pub encode: Duration,
    pub matching: Duration,
}

/// One step's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub outcome: Outcome,
    /// The input line could not be read (it then counts as active, so that
    /// a broken sensor never blinds the camera).
    pub input_unreadable: bool,
}

/// One zone as a camera's inference thread builds it: where it is and its
/// labels.
pub struct ZoneSetup {
    /// `None`: the whole frame of a camera without zones.
    pub name: Option<String>,
    pub rect: Rect,
    pub matcher: Arc<Matcher>,
    pub labels: Vec<DetectorLabel>,
}

/// A zone's per-frame state: its crop, motion gate, labels and detector.
struct Zone {
    name: Option<String>,
    rect: Rect,
    /// The zone's pixels of the last frame (unused for the whole frame).
    crop: RgbImage,
    gate: Option<MotionGate>,
    settle: SettleState,
    matcher: Arc<Matcher>,
    scores: Scores,
    detector: Detector,
    /// The model ran on this zone in the last step.
    inferred: bool,
    /// The zone's image embedding of the last frame the model ran on
    /// (normalized; empty before the first).
    embedding: Vec<f32>,
}

impl Zone {
    /// Names the zone in the events added to `events` since index `from`.
    fn tag(&self, events: &mut [Event], from: usize) {
        for e in &mut events[from..] {
            e.zone.clone_from(&self.name);
        }
    }
}

/// A camera's per-frame state: see the module documentation.
pub struct Inference {
    classifier: Classifier,
    converter: Converter,
    rgb: RgbImage,
    zones: Vec<Zone>,
    motion: Option<MotionOptions>,
    settling: Settling,
    input: Option<InputGate<AnyInputPin>>,
    min_interval: Option<Duration>,
    last_inference: Option<Instant>,
    /// The last frame stepped, for events that end without a frame.
    last_id: u64,
}

impl Inference {
    /// `encoder_size` is the encoder's input size: frames are shrunk while
    /// the shorter side of their smallest zone stays at least that.
    pub fn new(
        classifier: Classifier,
        zones: Vec<ZoneSetup>,
        options: InferenceOptions,
        input: Option<InputGate<AnyInputPin>>,
        encoder_size: u32,
    ) -> Inference {
        let rects: Vec<Rect> = zones.iter().map(|z| z.rect).collect();
        let zones = zones
            .into_iter()
            .map(|z| Zone {
                name: z.name,
                rect: z.rect,
                crop: RgbImage::new(),
                gate: options.motion.map(MotionGate::new),
                settle: SettleState::default(),
                scores: z.matcher.new_scores(),
                matcher: z.matcher,
                detector: Detector::new(z.labels, options.detector),
                inferred: false,
                embedding: Vec::new(),
            })
            .collect();
        Inference {
            classifier,
            converter: Converter::new(Some(min_frame_side(encoder_size, &rects))),
            rgb: RgbImage::new(),
            zones,
            motion: options.motion,
            settling: Settling::for_runs(options.detector.start_frames, options.detector.end_frames),
            input,
            min_interval: options.max_fps.filter(|f| *f > 0.0).map(|f| Duration::from_secs_f64(1.0 / f)),
            last_inference: None,
            last_id: 0,
        }
    }

    /// Takes one frame through the gates, the model and the detectors, zone
    /// by zone; the detectors' events, each naming its zone, are added to
    /// `events`. `enabled`: the camera is switched on (off, the frame is only
    /// noted). An error is a frame that could not be decoded or run.
    pub fn step(&mut self, frame: &OwnedFrame, enabled: bool, events: &mut Vec<Event>) -> Result<Step, StepError> {
        self.last_id = frame.sequence;
        for zone in &mut self.zones {
            zone.inferred = false;
        }
        if !enabled {
            return Ok(Step { outcome: Outcome::Disabled, input_unreadable: false });
        }
        let t0 = Instant::now();
        let mut input_unreadable = false;
        if let Some(input) = &mut self.input {
            let state = input.check(t0);
            input_unreadable = state == InputState::Unreadable;
            if !state.open() && !self.zones.iter().any(|z| z.detector.any_active()) {
                return Ok(Step { outcome: Outcome::InputIdle, input_unreadable });
            }
        }
        let step = |outcome| Ok(Step { outcome, input_unreadable });
        // The rate cap and the motion gate go by when the frame arrived, so
        // that a recording replayed faster than live on its own clock
        // (`crate::eval::replay`) is gated as it would be live.
        let arrived = frame.arrived;
        if let (Some(min), Some(last)) = (self.min_interval, self.last_inference) {
            if arrived.saturating_duration_since(last) < min {
                return step(Outcome::RateLimited);
            }
        }
        self.converter.convert(&frame.as_frame(), &mut self.rgb)?;
        let t1 = Instant::now();
        let mut times = FrameTimes { decode: t1 - t0, ..FrameTimes::default() };
        let mut any = false;
        for zone in &mut self.zones {
            let image = if zone.rect.is_whole() {
                &self.rgb
            } else {
                crop(&self.rgb, &zone.rect, &mut zone.crop);
                &zone.crop
            };
            if let Some(gate) = &mut zone.gate {
                let decision = gate.check(image, arrived);
                if decision.infer() {
                    zone.settle.passed(decision);
                } else if zone.settle.infer_still(self.settling, zone.detector.undecided()) {
                    gate.inferred_anyway(image, arrived);
                } else {
                    continue;
                }
            }
            self.classifier.classify_into(image.as_frame(), TOP_K, &zone.matcher, &mut zone.scores)?;
            // Sized once, then overwritten: no allocation per frame.
            zone.embedding.clear();
            zone.embedding.extend_from_slice(self.classifier.embedding());
            if tracing::enabled!(tracing::Level::TRACE) {
                let names = zone.matcher.names();
                let top: Vec<String> = zone
                    .scores
                    .top
                    .iter()
                    .take(3)
                    .map(|s| format!("{} {:.3}", names[s.label], s.probability))
                    .collect();
                tracing::trace!("frame {} zone {:?}: {}", frame.sequence, zone.name, top.join(", "));
            }
            let from = events.len();
            zone.detector.observe(frame_info(frame), &zone.scores.probability, events);
            zone.tag(events, from);
            zone.inferred = true;
            any = true;
            let stages = self.classifier.times;
            times.preprocess += stages.preprocess;
            times.encode += stages.encode;
            times.matching += stages.matching;
        }
        if !any {
            return step(Outcome::Still);
        }
        self.last_inference = Some(arrived);
        step(Outcome::Inferred(times))
    }

    /// The zones, in order: their names (`None`: the whole frame) and
    /// rectangles.
    pub fn zones(&self) -> impl Iterator<Item = (Option<&str>, &Rect)> {
        self.zones.iter().map(|z| (z.name.as_deref(), &z.rect))
    }

    /// The zones the model ran on in the last step, by index, with every
    /// label's score there (softmax probability, in label order).
    pub fn inferred_scores(&self) -> impl Iterator<Item = (usize, &[f32])> {
        self.zones.iter().enumerate().filter(|(_, z)| z.inferred).map(|(i, z)| (i, z.scores.probability.as_slice()))
    }

    /// Zone `zone`'s image embedding of the last frame the model ran on
    /// there (normalized; empty before the first): what the store keeps
    /// with an event or a keyframe.
    pub fn embedding(&self, zone: usize) -> &[f32] {
        &self.zones[zone].embedding
    }

    /// Matches zone `zone`'s next crops against a new label set; events of
    /// labels that are gone end now (into `events`).
    pub fn set_labels(
        &mut self,
        zone: usize,
        matcher: Arc<Matcher>,
        labels: Vec<DetectorLabel>,
        events: &mut Vec<Event>,
    ) {
        let now = self.now();
        let z = &mut self.zones[zone];
        z.scores = matcher.new_scores();
        z.matcher = matcher;
        let from = events.len();
        z.detector.set_labels(labels, now, events);
        z.tag(events, from);
        // New labels ask a new question of the same scene: the next frame is
        // inferred, and settles, however still the scene is (a still scene
        // would otherwise keep the old answer until the forced inference).
        z.gate = self.motion.map(MotionGate::new);
        z.settle = SettleState::default();
    }

    /// Ends every active event of every zone now (into `events`): the
    /// camera is stopping, was switched off, or its source ended.
    pub fn end_events(&mut self, events: &mut Vec<Event>) {
        let now = self.now();
        for z in &mut self.zones {
            let from = events.len();
            z.detector.stop(now, events);
            z.tag(events, from);
        }
    }

    /// Forgets the motion gates' reference frames: after a pause the scene
    /// has changed, so the next frame is compared with what comes.
    pub fn reset_motion(&mut self) {
        for z in &mut self.zones {
            z.gate = self.motion.map(MotionGate::new);
            z.settle = SettleState::default();
        }
    }

    /// A moment without a frame (stop, label change), for events that end then.
    fn now(&self) -> FrameInfo {
        FrameInfo { id: self.last_id, at: Instant::now(), wall: SystemTime::now() }
    }
}

/// The detector's view of a frame.
fn frame_info(frame: &OwnedFrame) -> FrameInfo {
    FrameInfo { id: frame.sequence, at: frame.arrived, wall: frame.timestamp }
}
