//! An input line that gates a camera's inference: a PIR sensor wakes the
//! encoder only when something warm moves.
//!
//! The line is read once per camera frame. The gate is open while the
//! sensor is active and for `hold` after it was last seen active; the
//! camera's inference thread also infers while one of its events is active
//! (so that the event can end when its label leaves the picture, instead of
//! staying ON until the sensor fires again) and applies the motion gate on
//! top. A line that cannot be read counts as active: a broken sensor must
//! not blind the camera. PIR modules hold their output for seconds, far
//! longer than a frame, so sampling per frame misses nothing they report.
//!
//! Times come from the caller (`now`), so that tests drive the clock.

use std::fmt;
use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;

use super::InputConfig;
use crate::util::log_limit::{also, LogLimit};

/// What the gate found for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputState {
    /// The sensor is active.
    Active,
    /// The sensor is quiet, but was active less than `hold` ago.
    Holding,
    /// The sensor is quiet, and has been for `hold` or longer (or has not
    /// been active since the start).
    Idle,
    /// The line could not be read; counted as active.
    Unreadable,
}

impl InputState {
    /// Whether the frame may be inferred.
    pub fn open(self) -> bool {
        !matches!(self, InputState::Idle)
    }
}

/// An input line and when it was last active.
pub struct InputGate<P> {
    pin: P,
    active_low: bool,
    hold: Duration,
    /// For logs: "camera 'front': input line 4 of /dev/gpiochip0".
    name: String,
    last_active: Option<Instant>,
    errors: u64,
    error_log: LogLimit,
}

impl<P: InputPin> InputGate<P>
where
    P::Error: fmt::Display,
{
    pub fn new(pin: P, config: &InputConfig, name: String) -> InputGate<P> {
        InputGate {
            pin,
            active_low: config.active_low,
            hold: config.hold,
            name,
            last_active: None,
            errors: 0,
            error_log: LogLimit::new(),
        }
    }

    /// Reads the line for a frame seen at `now`.
    pub fn check(&mut self, now: Instant) -> InputState {
        match self.pin.is_high() {
            Ok(high) if high != self.active_low => {
                self.last_active = Some(now);
                InputState::Active
            }
            Ok(_) => match self.last_active {
                Some(t) if now.saturating_duration_since(t) < self.hold => InputState::Holding,
                _ => InputState::Idle,
            },
            Err(e) => {
                self.errors += 1;
                if let Some(n) = self.error_log.check() {
                    tracing::warn!("{}: cannot read it: {e}; inferring as if it were active{}", self.name, also(n));
                }
                InputState::Unreadable
            }
        }
    }

    /// Reads that failed, since start.
    pub fn errors(&self) -> u64 {
        self.errors
    }
}
