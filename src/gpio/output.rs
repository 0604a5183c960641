//! An output line that follows a camera's events: a relay, an LED, a
//! buzzer.
//!
//! In level mode the line is active while an event of one of its labels is
//! (and `off_delay` after the last one ended); in pulse mode it is active
//! for a set time when one starts. It is driven to its inactive level, the
//! safe one, when it is made and at shutdown, and is written only when its
//! level changes: a relay clicks once per event, and a test can check the
//! exact sequence of levels. A write that fails is logged and retried at
//! the next [`EventOutput::tick`]; it never stops the daemon.
//!
//! Times come from the caller (`now`), so that tests drive the clock.

use std::fmt;
use std::time::Instant;

use embedded_hal::digital::{OutputPin, PinState};

use super::{OutputConfig, OutputMode};
use crate::pipeline::detect::{Event, EventKind};
use crate::util::log_limit::{also, LogLimit};

/// An output line and its state.
pub struct EventOutput<P: OutputPin>
where
    P::Error: fmt::Display,
{
    pin: P,
    config: OutputConfig,
    /// For logs: "camera 'front': output line 17 of /dev/gpiochip0".
    name: String,
    /// Labels whose event is active now (level mode).
    active_labels: Vec<String>,
    /// When the line goes inactive: the end of a pulse, or of the off
    /// delay after the last event.
    until: Option<Instant>,
    /// The level the events ask for (true: active).
    wanted: bool,
    /// The level last written; `None` after a failed write.
    written: Option<bool>,
    errors: u64,
    error_log: LogLimit,
    shut_down: bool,
}

impl<P: OutputPin> EventOutput<P>
where
    P::Error: fmt::Display,
{
    /// Takes the pin and drives it to its inactive level. `name` says which
    /// output this is in logs.
    pub fn new(pin: P, config: OutputConfig, name: String) -> Result<EventOutput<P>, P::Error> {
        let mut output = EventOutput {
            pin,
            config,
            name,
            active_labels: Vec::new(),
            until: None,
            wanted: false,
            written: None,
            errors: 0,
            error_log: LogLimit::new(),
            shut_down: false,
        };
        output.write(false)?;
        output.written = Some(false);
        Ok(output)
    }

    pub fn config(&self) -> &OutputConfig {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the events ask for the line to be active now.
    pub fn is_active(&self) -> bool {
        self.wanted
    }

    /// Writes that failed, since start.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Follows one event of the camera.
    pub fn event(&mut self, event: &Event, now: Instant) {
        if self.shut_down || !self.config.labels.matches(&event.label) {
            return;
        }
        match (self.config.mode, event.kind) {
            (OutputMode::Level { .. }, EventKind::Start) => {
                if !self.active_labels.contains(&event.label) {
                    self.active_labels.push(event.label.clone());
                }
                self.wanted = true;
                self.until = None;
            }
            (OutputMode::Level { off_delay }, EventKind::End) => {
                self.active_labels.retain(|l| *l != event.label);
                if self.active_labels.is_empty() && self.wanted {
                    if off_delay.is_zero() {
                        self.wanted = false;
                    } else {
                        self.until = Some(now + off_delay);
                    }
                }
            }
            (OutputMode::Pulse { length }, EventKind::Start) => {
                self.wanted = true;
                self.until = Some(now + length);
            }
            (OutputMode::Pulse { .. }, EventKind::End) => {}
        }
        self.apply();
    }

    /// Ends a pulse or an off delay that is over, and retries a failed
    /// write. Called often (the daemon's main loop: every 50 ms at most).
    pub fn tick(&mut self, now: Instant) {
        if self.shut_down {
            return;
        }
        if self.until.is_some_and(|until| now >= until) {
            self.until = None;
            self.wanted = false;
        }
        self.apply();
    }

    /// Drives the line to its inactive level for good (the daemon is
    /// stopping). Written even if it already is, so that the last word on
    /// the line is the safe level.
    pub fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        self.wanted = false;
        self.until = None;
        self.active_labels.clear();
        match self.write(false) {
            Ok(()) => self.written = Some(false),
            Err(e) => {
                self.errors += 1;
                tracing::error!("{}: cannot set its inactive level at shutdown: {e}", self.name);
            }
        }
    }

    fn apply(&mut self) {
        if self.written == Some(self.wanted) {
            return;
        }
        match self.write(self.wanted) {
            Ok(()) => self.written = Some(self.wanted),
            Err(e) => {
                self.written = None;
                self.errors += 1;
                if let Some(n) = self.error_log.check() {
                    tracing::warn!(
                        "{}: cannot set it {}: {e}; retrying{}",
                        self.name,
                        if self.wanted { "active" } else { "inactive" },
                        also(n)
                    );
                }
            }
        }
    }

    /// Sets the line active or inactive, electrically inverted for
    /// `active_low`.
    fn write(&mut self, active: bool) -> Result<(), P::Error> {
        self.pin.set_state(PinState::from(active != self.config.active_low))
    }
}

/// An output dropped on a way out that did not call [`EventOutput::shutdown`]
/// (a panic unwinding, a start that failed after it was made) still
/// leaves its line at the safe level.
impl<P: OutputPin> Drop for EventOutput<P>
where
    P::Error: fmt::Display,
{
    fn drop(&mut self) {
        self.shutdown();
    }
}
