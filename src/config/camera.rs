//! `[cameras.NAME]`, `[cameras.NAME.motion]` and `[cameras.NAME.zones.ZONE]`:
//! each camera's source, labels, rate, motion gate and zones; its detector
//! and GPIO tables have their own modules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::detector::{self, RawDetector};
use super::gpio::{self, LinesUsed, RawInput, RawOutput};
use super::{passwords, ConfigError, Ctx, Key, Number};
use crate::capture::SourceSpec;
use crate::gpio::{InputConfig, OutputConfig};
use crate::pipeline::detect::DetectorOptions;
use crate::pipeline::motion::MotionOptions;
use crate::pipeline::zone::Rect;

/// A zone's side at least, as a fraction of the frame's: a twentieth of a
/// 640×480 frame is 24 pixels, which the encoder would have to enlarge ten
/// times to its 224; anything smaller holds nothing it can tell apart.
const MIN_ZONE_SIDE: f64 = 0.05;
/// Zones per camera at most: each one inferred costs an encoder run, so a
/// frame with every zone changed costs this many.
const MAX_ZONES: usize = 8;
/// Names a zone cannot have: the camera's own topics at the zone's level.
const RESERVED_ZONE_NAMES: [&str; 4] = ["enabled", "events", "labels", "scores"];

/// Set to false to keep the camera configured but idle.
const ENABLED: Key<bool> = Key { name: "enabled", default: true };
/// Inferences per second at most; 0 infers every frame the board keeps up
/// with. At 2 an event starts about a second after the scene changes (two
/// inferred frames in a row, `start_frames`); each board's configuration in
/// `boards/` tunes it to its CPU. 1000 is beyond any camera's frame rate.
const MAX_FPS: Number<f64> = Number { name: "max_fps", default: 2.0, range: 0.0..=1000.0 };
/// The lowest limit above 0: one frame every 1000 s. A slower rate is no
/// use for a camera (the motion gate's forced inference is more frequent),
/// and a rate near zero is a period no clock can hold.
pub const MIN_FPS: f64 = 0.001;

// The motion gate's keys; the defaults are the gate's own
// ([`MotionOptions::DEFAULT`], which says why each is what it is).

/// Skip inference while the scene is still.
const MOTION_ENABLED: Key<bool> = Key { name: "enabled", default: true };
/// Levels (0-255) a cell's average red, green or blue must move by to count
/// as changed: 0 would count every flicker and 255 nothing.
const PIXEL_THRESHOLD: Number<i64> =
    Number { name: "pixel_threshold", default: MotionOptions::DEFAULT.pixel_threshold as i64, range: 1..=254 };
/// The fraction of cells that must change for a frame to be inferred.
const MIN_CHANGED_AREA: Number<f64> =
    Number { name: "min_changed_area", default: MotionOptions::DEFAULT.min_changed_area as f64, range: 0.0..=1.0 };
/// Seconds between inferences when nothing moves: at least a second (more
/// often is what the gate is there to avoid), at most a day.
const FORCE_EVERY_S: Number<f64> =
    Number { name: "force_every_s", default: MotionOptions::DEFAULT.force_every.as_secs_f64(), range: 1.0..=86_400.0 };

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCamera {
    /// v4l2:, exec:, file: or rtsp:// (see [`SourceSpec`]); required.
    source: Option<Spanned<String>>,
    /// An rtsp:// camera's password, from a file or the environment rather
    /// than in the URL (this file is readable by every user of the board).
    password_file: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    /// The labels file; required.
    labels: Option<Spanned<String>>,
    enabled: Option<bool>,
    max_fps: Option<Spanned<f64>>,
    motion: Option<RawMotion>,
    detector: Option<RawDetector>,
    outputs: Option<Vec<Spanned<RawOutput>>>,
    input: Option<Spanned<RawInput>>,
    zones: Option<BTreeMap<Spanned<String>, RawZone>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    /// `[x0, y0, x1, y1]` in fractions of the frame; required.
    rect: Option<Spanned<Vec<f64>>>,
    /// Default: the camera's labels file.
    labels: Option<Spanned<String>>,
    /// Default: the camera's threshold.
    threshold: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMotion {
    enabled: Option<bool>,
    pixel_threshold: Option<Spanned<i64>>,
    min_changed_area: Option<Spanned<f64>>,
    force_every_s: Option<Spanned<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    pub name: String,
    pub source: SourceSpec,
    pub labels: PathBuf,
    pub enabled: bool,
    /// Inferences per second at most; `None`: as many as the board manages.
    pub max_fps: Option<f64>,
    /// `None`: every frame is inferred (up to `max_fps`).
    pub motion: Option<MotionOptions>,
    /// A label's threshold when its line in the labels file sets none.
    pub threshold: f32,
    pub detector: DetectorOptions,
    /// GPIO lines driven by this camera's events.
    pub outputs: Vec<OutputConfig>,
    /// A GPIO line (a PIR sensor) that gates this camera's inference.
    pub input: Option<InputConfig>,
    /// What is classified: the zones in name order, or without any, the
    /// whole frame as one zone with no name.
    pub zones: Vec<ZoneConfig>,
}

/// A part of a camera's frame classified on its own, with its own labels,
/// detector and events.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    /// `None`: the whole frame of a camera without zones.
    pub name: Option<String>,
    pub rect: Rect,
    /// Its labels file (the camera's unless it names its own).
    pub labels: PathBuf,
    /// A label's threshold when its line sets none.
    pub threshold: f32,
}

/// Every `[cameras.NAME]` table, in name order; `detector` is the
/// top-level `[detector]` table, which each camera's own overrides.
pub(super) fn parse_cameras(
    cx: &Ctx<'_>,
    raw: Option<&Spanned<BTreeMap<Spanned<String>, RawCamera>>>,
    detector: Option<&RawDetector>,
) -> Result<Vec<CameraConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Err(cx.error(
            None,
            "no camera: add a [cameras.NAME] table with 'source' and 'labels' (see `edgeclip print-config`)".into(),
        ));
    };
    if raw.get_ref().is_empty() {
        return Err(cx.error(
            Some(raw.span()),
            "key 'cameras': no camera; add a [cameras.NAME] table with 'source' and 'labels'".into(),
        ));
    }
    let mut lines_used = LinesUsed::default();
    raw.get_ref().iter().map(|(name, camera)| parse_camera(cx, name, camera, detector, &mut lines_used)).collect()
}

fn parse_camera(
    cx: &Ctx<'_>,
    name: &Spanned<String>,
    raw: &RawCamera,
    detector: Option<&RawDetector>,
    lines_used: &mut LinesUsed,
) -> Result<CameraConfig, ConfigError> {
    let camera = cx.name("cameras", name)?;
    let table = format!("cameras.{camera}");
    let key = |k: &str| format!("{table}.{k}");
    let missing = |k: &str| {
        cx.error(Some(name.span()), format!("camera '{camera}' has no '{k}'; add {k} = \"...\" to [cameras.{camera}]"))
    };
    let source_value = raw.source.as_ref().ok_or_else(|| missing("source"))?;
    let mut source: SourceSpec =
        source_value.get_ref().parse().map_err(|e| cx.invalid(&key("source"), source_value, e))?;
    // A recording's path is relative to the configuration file, like every path in it.
    if let SourceSpec::File(options) = &mut source {
        options.path = cx.resolve(&options.path);
    }
    if let Some(password) = passwords::password(cx, &table, raw.password_file.as_ref(), raw.password_env.as_ref())? {
        let set = raw.password_file.as_ref().or(raw.password_env.as_ref()).expect("one is set");
        let problem = match &mut source {
            SourceSpec::Rtsp(o) if o.user.is_none() => Some("needs a user in the URL: rtsp://USER@host/..."),
            SourceSpec::Rtsp(o) if o.password.is_some() => Some("and a password in the URL are both set; keep one"),
            SourceSpec::Rtsp(o) => {
                o.password = Some(password);
                None
            }
            _ => Some("is for rtsp:// cameras"),
        };
        if let Some(problem) = problem {
            let which = if raw.password_file.is_some() { "password_file" } else { "password_env" };
            return Err(cx.invalid(&key(which), set, problem));
        }
    }
    let labels = cx.path_value(&key("labels"), raw.labels.as_ref().ok_or_else(|| missing("labels"))?)?;
    let max_fps = match MAX_FPS.read(cx, &table, raw.max_fps.as_ref())? {
        0.0 => None,
        fps if fps < MIN_FPS => {
            let value = raw.max_fps.as_ref().expect("a value below the default was read from the file");
            return Err(cx.invalid(
                &key(MAX_FPS.name),
                value,
                format!("{fps:?} is out of range; accepted: 0 (no limit) or {MIN_FPS} to {}", MAX_FPS.range.end()),
            ));
        }
        fps => Some(fps),
    };
    let motion = parse_motion(cx, &key("motion"), raw.motion.as_ref())?;
    let (threshold, detector) = detector::parse(cx, &key("detector"), raw.detector.as_ref(), detector)?;
    let mut outputs = Vec::new();
    for (i, output) in raw.outputs.iter().flatten().enumerate() {
        outputs.push(gpio::parse_output(cx, &key(&format!("outputs[{i}]")), output, lines_used)?);
    }
    let input = match &raw.input {
        Some(input) => Some(gpio::parse_input(cx, &key("input"), input, lines_used)?),
        None => None,
    };
    let zones = match &raw.zones {
        None => vec![ZoneConfig { name: None, rect: Rect::WHOLE, labels: labels.clone(), threshold }],
        Some(zones) => parse_zones(cx, &key("zones"), zones, &labels, threshold)?,
    };
    Ok(CameraConfig {
        name: camera,
        source,
        labels,
        enabled: raw.enabled.unwrap_or(ENABLED.default),
        max_fps,
        motion,
        threshold,
        detector,
        outputs,
        input,
        zones,
    })
}

/// `[cameras.NAME.zones.*]` (`table`), with the camera's labels file and
/// threshold as their defaults.
fn parse_zones(
    cx: &Ctx<'_>,
    table: &str,
    raw: &BTreeMap<Spanned<String>, RawZone>,
    labels: &std::path::Path,
    threshold: f32,
) -> Result<Vec<ZoneConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(cx.error(None, format!("key '{table}': no zone; add [{table}.NAME] with a rect, or remove it")));
    }
    if raw.len() > MAX_ZONES {
        let (first, _) = raw.iter().next().expect("not empty");
        return Err(cx.invalid(
            table,
            first,
            format!("{} zones; a camera has at most {MAX_ZONES} (each changed zone costs an encoder run)", raw.len()),
        ));
    }
    let mut zones = Vec::new();
    for (name, zone) in raw {
        let zone_name = cx.name(table, name)?;
        let zone_table = format!("{table}.{zone_name}");
        if RESERVED_ZONE_NAMES.contains(&zone_name.as_str()) {
            return Err(cx.invalid(
                table,
                name,
                format!(
                    "a zone cannot be named '{zone_name}', a topic of the camera's own ({}); rename it",
                    RESERVED_ZONE_NAMES.join(", ")
                ),
            ));
        }
        let rect_value = zone.rect.as_ref().ok_or_else(|| {
            cx.error(
                Some(name.span()),
                format!("zone '{zone_name}' has no 'rect'; add rect = [x0, y0, x1, y1] (fractions of the frame) to [{zone_table}]"),
            )
        })?;
        let rect = parse_rect(cx, &format!("{zone_table}.rect"), rect_value)?;
        let labels = match &zone.labels {
            Some(l) => cx.path_value(&format!("{zone_table}.labels"), l)?,
            None => labels.to_path_buf(),
        };
        let threshold = match &zone.threshold {
            Some(t) if (0.0..=1.0).contains(t.get_ref()) => *t.get_ref() as f32,
            Some(t) => {
                return Err(cx.invalid(
                    &format!("{zone_table}.threshold"),
                    t,
                    format!("{} is out of range; accepted: 0 to 1", t.get_ref()),
                ))
            }
            None => threshold,
        };
        zones.push(ZoneConfig { name: Some(zone_name), rect, labels, threshold });
    }
    Ok(zones)
}

/// A zone's `rect`: four fractions, left top to right bottom, each side at
/// least [`MIN_ZONE_SIDE`].
fn parse_rect(cx: &Ctx<'_>, key: &str, value: &Spanned<Vec<f64>>) -> Result<Rect, ConfigError> {
    let accepted = format!(
        "accepted: [x0, y0, x1, y1], fractions of the frame from its left top (0) to its right bottom (1), \
         x0 < x1 and y0 < y1, each side at least {MIN_ZONE_SIDE}"
    );
    let v = value.get_ref();
    let fits = v.len() == 4
        && v.iter().all(|f| (0.0..=1.0).contains(f))
        && v[2] - v[0] >= MIN_ZONE_SIDE
        && v[3] - v[1] >= MIN_ZONE_SIDE;
    if !fits {
        let shown: Vec<String> = v.iter().map(|f| f.to_string()).collect();
        return Err(cx.invalid(key, value, format!("[{}] is not a zone; {accepted}", shown.join(", "))));
    }
    Ok(Rect { x0: v[0] as f32, y0: v[1] as f32, x1: v[2] as f32, y1: v[3] as f32 })
}

/// The motion gate in `table` (`cameras.NAME.motion`); `None` when it is off.
fn parse_motion(cx: &Ctx<'_>, table: &str, raw: Option<&RawMotion>) -> Result<Option<MotionOptions>, ConfigError> {
    let none = RawMotion::default();
    let raw = raw.unwrap_or(&none);
    if !raw.enabled.unwrap_or(MOTION_ENABLED.default) {
        return Ok(None);
    }
    Ok(Some(MotionOptions {
        pixel_threshold: PIXEL_THRESHOLD.read(cx, table, raw.pixel_threshold.as_ref())? as u8,
        min_changed_area: MIN_CHANGED_AREA.read(cx, table, raw.min_changed_area.as_ref())? as f32,
        force_every: Duration::from_secs_f64(FORCE_EVERY_S.read(cx, table, raw.force_every_s.as_ref())?),
    }))
}
