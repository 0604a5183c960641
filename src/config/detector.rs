//! `[detector]` and `[cameras.NAME.detector]`: how scores become events.
//!
//! The top-level table sets every camera's defaults; a camera's own table
//! overrides any of its keys. The defaults other than the threshold are the
//! detector's own ([`DetectorOptions::DEFAULT`], which says why each is what
//! it is).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{key, ConfigError, Ctx, Number};
use crate::pipeline::detect::DetectorOptions;

/// The table of every camera's defaults.
const TABLE: &str = "detector";

/// The score (softmax probability over the labels) a label must reach when
/// its line in the labels file sets none: 0.5 is more likely than every
/// other label together. A probability, so 0 to 1.
const THRESHOLD: Number<f64> = Number { name: "threshold", default: 0.5, range: 0.0..=1.0 };
/// Inferred frames in a row at or above the threshold that start an event;
/// 1000 frames is minutes even at a high rate, past any use.
const START_FRAMES: Number<i64> =
    Number { name: "start_frames", default: DetectorOptions::DEFAULT.start_frames as i64, range: 1..=1000 };
/// Inferred frames in a row below threshold - margin that end an event;
/// bounded as `start_frames`.
const END_FRAMES: Number<i64> =
    Number { name: "end_frames", default: DetectorOptions::DEFAULT.end_frames as i64, range: 1..=1000 };
/// The hysteresis band under the threshold; at most half the score range,
/// as a wider band would keep an event going at scores far below it.
const MARGIN: Number<f64> =
    Number { name: "margin", default: DetectorOptions::DEFAULT.margin as f64, range: 0.0..=0.5 };
/// Seconds an event lasts at least: up to an hour, the default maximum.
const MIN_DURATION_S: Number<f64> = Number {
    name: "min_duration_s",
    default: DetectorOptions::DEFAULT.min_duration.as_secs_f64(),
    range: 0.0..=3600.0,
};
/// Seconds after which an event is ended (and started again if the label is
/// still seen): at least a second, and at most a week, so that something
/// present for good is still reported again weekly. Never below the minimum.
const MAX_DURATION_S: Number<f64> = Number {
    name: "max_duration_s",
    default: DetectorOptions::DEFAULT.max_duration.as_secs_f64(),
    range: 1.0..=7.0 * 86_400.0,
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDetector {
    threshold: Option<Spanned<f64>>,
    start_frames: Option<Spanned<i64>>,
    end_frames: Option<Spanned<i64>>,
    margin: Option<Spanned<f64>>,
    min_duration_s: Option<Spanned<f64>>,
    max_duration_s: Option<Spanned<f64>>,
}

/// A camera's threshold and detector options: the key in `table` (the
/// camera's `cameras.NAME.detector`) wins, then `[detector]`'s, then the
/// default; an error names the key where the value came from.
pub(super) fn parse(
    cx: &Ctx<'_>,
    table: &str,
    raw: Option<&RawDetector>,
    base: Option<&RawDetector>,
) -> Result<(f32, DetectorOptions), ConfigError> {
    let none = RawDetector::default();
    let layers = Layers { table, camera: raw.unwrap_or(&none), base: base.unwrap_or(&none) };
    let (t, v) = layers.pick(|d| d.threshold.as_ref());
    let threshold = THRESHOLD.read(cx, t, v)? as f32;
    let (t, v) = layers.pick(|d| d.start_frames.as_ref());
    let start_frames = START_FRAMES.read(cx, t, v)? as u32;
    let (t, v) = layers.pick(|d| d.end_frames.as_ref());
    let end_frames = END_FRAMES.read(cx, t, v)? as u32;
    let (t, v) = layers.pick(|d| d.margin.as_ref());
    let margin = MARGIN.read(cx, t, v)? as f32;
    let (t, v) = layers.pick(|d| d.min_duration_s.as_ref());
    let min_duration = MIN_DURATION_S.read(cx, t, v)?;
    let (max_table, max_value) = layers.pick(|d| d.max_duration_s.as_ref());
    let max_duration = MAX_DURATION_S.read(cx, max_table, max_value)?;
    if max_duration < min_duration {
        let v = max_value.expect("the defaults are ordered, so a key was set");
        return Err(cx.invalid(
            &key(max_table, MAX_DURATION_S.name),
            v,
            format!("{max_duration} s is shorter than the minimum duration of {min_duration} s"),
        ));
    }
    Ok((
        threshold,
        DetectorOptions {
            start_frames,
            end_frames,
            margin,
            min_duration: Duration::from_secs_f64(min_duration),
            max_duration: Duration::from_secs_f64(max_duration),
        },
    ))
}

/// A camera's detector table over `[detector]`.
struct Layers<'a> {
    /// The camera's table, `cameras.NAME.detector`.
    table: &'a str,
    camera: &'a RawDetector,
    base: &'a RawDetector,
}

impl<'a> Layers<'a> {
    /// One key's value, if set, and the table it was set in.
    fn pick<T>(&self, field: fn(&RawDetector) -> Option<&Spanned<T>>) -> (&'a str, Option<&'a Spanned<T>>) {
        match (field(self.camera), field(self.base)) {
            (Some(v), _) => (self.table, Some(v)),
            (None, v) => (TABLE, v),
        }
    }
}
