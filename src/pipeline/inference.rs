//! One camera's frames through the pipeline, one frame at a time.
//!
//! An [`Inference`] owns everything a camera's inference thread keeps from
//! frame to frame: the converter and its RGB buffer, the motion gate, the
//! sensor line that gates inference, the frame-rate cap, the classifier and
//! the detector. [`Inference::step`] takes one frame through the gates
//! (input line, `max_fps`, conversion, motion) and, if it passes them, the
//! model and the detector; it says what happened to the frame and how long
//! each stage took, and leaves counting and publishing to its caller.
//!
//! After the motion gate lets a changed frame through, the still frames
//! that follow are inferred too until the detector has decided (see
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
use super::matcher::Matcher;
use super::motion::{MotionGate, MotionOptions, SettleState, Settling};
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

/// A camera's per-frame state: see the module documentation.
pub struct Inference {
    classifier: Classifier,
    detector: Detector,
    converter: Converter,
    rgb: RgbImage,
    motion: Option<MotionOptions>,
    gate: Option<MotionGate>,
    settling: Settling,
    settle: SettleState,
    input: Option<InputGate<AnyInputPin>>,
    min_interval: Option<Duration>,
    last_inference: Option<Instant>,
    /// The last frame stepped, for events that end without a frame.
    last_id: u64,
}

impl Inference {
    /// `min_side` is the encoder's input size: frames are shrunk while their
    /// shorter side stays at least that.
    pub fn new(
        classifier: Classifier,
        labels: Vec<DetectorLabel>,
        options: InferenceOptions,
        input: Option<InputGate<AnyInputPin>>,
        min_side: u32,
    ) -> Inference {
        Inference {
            classifier,
            detector: Detector::new(labels, options.detector),
            converter: Converter::new(Some(min_side)),
            rgb: RgbImage::new(),
            gate: options.motion.map(MotionGate::new),
            motion: options.motion,
            settling: Settling::for_runs(options.detector.start_frames, options.detector.end_frames),
            settle: SettleState::default(),
            input,
            min_interval: options.max_fps.filter(|f| *f > 0.0).map(|f| Duration::from_secs_f64(1.0 / f)),
            last_inference: None,
            last_id: 0,
        }
    }

    /// Takes one frame through the gates, the model and the detector; the
    /// detector's events are added to `events`. `enabled`: the camera is
    /// switched on (off, the frame is only noted). An error is a frame that
    /// could not be decoded or run.
    pub fn step(&mut self, frame: &OwnedFrame, enabled: bool, events: &mut Vec<Event>) -> Result<Step, StepError> {
        self.last_id = frame.sequence;
        if !enabled {
            return Ok(Step { outcome: Outcome::Disabled, input_unreadable: false });
        }
        let t0 = Instant::now();
        let mut input_unreadable = false;
        if let Some(input) = &mut self.input {
            let state = input.check(t0);
            input_unreadable = state == InputState::Unreadable;
            if !state.open() && !self.detector.any_active() {
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
        if let Some(gate) = &mut self.gate {
            let decision = gate.check(&self.rgb, arrived);
            if decision.infer() {
                self.settle.passed(decision);
            } else if self.settle.infer_still(self.settling, self.detector.undecided()) {
                gate.inferred_anyway(&self.rgb, arrived);
            } else {
                return step(Outcome::Still);
            }
        }
        self.classifier.classify(self.rgb.as_frame(), TOP_K)?;
        let scores = self.classifier.scores();
        if tracing::enabled!(tracing::Level::TRACE) {
            let names = self.classifier.matcher().names();
            let top: Vec<String> =
                scores.top.iter().take(3).map(|s| format!("{} {:.3}", names[s.label], s.probability)).collect();
            tracing::trace!("frame {}: {}", frame.sequence, top.join(", "));
        }
        self.detector.observe(frame_info(frame), &scores.probability, events);
        self.last_inference = Some(arrived);
        let times = self.classifier.times;
        step(Outcome::Inferred(FrameTimes {
            decode: t1 - t0,
            preprocess: times.preprocess,
            encode: times.encode,
            matching: times.matching,
        }))
    }

    /// Every label's score (softmax probability, in label order) in the
    /// last inferred frame.
    pub fn last_scores(&self) -> &[f32] {
        &self.classifier.scores().probability
    }

    /// Matches the next frames against a new label set; events of labels
    /// that are gone end now (into `events`).
    pub fn set_labels(&mut self, matcher: Arc<Matcher>, labels: Vec<DetectorLabel>, events: &mut Vec<Event>) {
        self.classifier.set_matcher(matcher);
        self.detector.set_labels(labels, self.now(), events);
    }

    /// Ends every active event now (into `events`): the camera is stopping,
    /// was switched off, or its source ended.
    pub fn end_events(&mut self, events: &mut Vec<Event>) {
        self.detector.stop(self.now(), events);
    }

    /// Forgets the motion gate's reference frame: after a pause the scene has
    /// changed, so the next frame is compared with what comes.
    pub fn reset_motion(&mut self) {
        self.gate = self.motion.map(MotionGate::new);
        self.settle = SettleState::default();
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
