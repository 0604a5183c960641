//! A recording through exactly the daemon's per-frame pipeline
//! ([`Inference::step`]: gates, model, detector), on the recording's own
//! clock: frame N arrives N / fps seconds after the first, however fast the
//! machine replays it, so that the motion gate's forced inferences,
//! `max_fps` and the detector's durations behave as they would live.

use std::time::{Duration, Instant, SystemTime};

use super::score::ReplayEvent;
use crate::capture::{CaptureErrorKind, FrameSource, OwnedFrame};
use crate::pipeline::detect::{Event, EventKind};
use crate::pipeline::inference::{Inference, Outcome};

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayCounts {
    pub frames: u64,
    pub inferred: u64,
    /// Frames the motion gate found still.
    pub still: u64,
    /// Frames `max_fps` skipped.
    pub rate_skipped: u64,
    /// Frames that did not decode.
    pub corrupt: u64,
}

/// Whose clock the frames are on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clock {
    /// A recording: frame N at N / fps seconds, to its end.
    Recording { fps: f64 },
    /// A live source: the frames' own times, until `until`.
    Live { until: Instant },
}

/// Replays `source` to its end at `fps` through `inference`, each event in
/// the zone it happened in. Events still active at the end are ended at the
/// last frame.
pub fn replay(
    source: &mut dyn FrameSource,
    inference: &mut Inference,
    fps: f64,
) -> anyhow::Result<(Vec<ReplayEvent>, ReplayCounts)> {
    replay_watching(source, inference, Clock::Recording { fps }, &mut |_, _| {})
}

/// [`replay`] on either clock, calling `on_inferred` after every inferred
/// frame (its scores are [`Inference::inferred_scores`]).
pub fn replay_watching(
    source: &mut dyn FrameSource,
    inference: &mut Inference,
    clock: Clock,
    on_inferred: &mut dyn FnMut(&OwnedFrame, &Inference),
) -> anyhow::Result<(Vec<ReplayEvent>, ReplayCounts)> {
    let origin = Instant::now();
    let mut counts = ReplayCounts::default();
    let mut frame = OwnedFrame::default();
    let mut events: Vec<Event> = Vec::new();
    let mut paired = Pairs::default();
    loop {
        if let Clock::Live { until } = clock {
            if Instant::now() >= until {
                break;
            }
        }
        let next = match source.next_frame() {
            Ok(next) => next,
            Err(e) if e.kind == CaptureErrorKind::Ended => break,
            Err(e) if e.kind == CaptureErrorKind::Corrupt => {
                counts.corrupt += 1;
                continue;
            }
            // A live camera's pause is waited out; its deadline still holds.
            Err(e) if e.kind == CaptureErrorKind::Timeout && matches!(clock, Clock::Live { .. }) => continue,
            Err(e) => anyhow::bail!("{e}"),
        };
        frame.fill_from(&next);
        if let Clock::Recording { fps } = clock {
            let at = Duration::from_secs_f64(frame.sequence as f64 / fps);
            frame.arrived = origin + at;
            frame.timestamp = SystemTime::UNIX_EPOCH + at;
        }
        counts.frames += 1;
        match inference.step(&frame, true, &mut events) {
            Ok(step) => match step.outcome {
                Outcome::Inferred(_) => {
                    counts.inferred += 1;
                    on_inferred(&frame, inference);
                }
                Outcome::Still => counts.still += 1,
                Outcome::RateLimited => counts.rate_skipped += 1,
                Outcome::Disabled | Outcome::InputIdle => {}
            },
            Err(_) => counts.corrupt += 1,
        }
        paired.take(&mut events);
    }
    // They end at the last frame stepped.
    inference.end_events(&mut events);
    paired.take(&mut events);
    Ok((paired.done, counts))
}

/// The finished events: each end names its start frame.
#[derive(Default)]
struct Pairs {
    done: Vec<ReplayEvent>,
}

impl Pairs {
    fn take(&mut self, events: &mut Vec<Event>) {
        for e in events.drain(..).filter(|e| e.kind == EventKind::End) {
            self.done.push(ReplayEvent {
                zone: e.zone,
                label: e.label,
                start_frame: e.start_frame,
                end_frame: e.frame,
            });
        }
    }
}
