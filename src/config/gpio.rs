//! `[[cameras.NAME.outputs]]` and `[cameras.NAME.input]`: GPIO lines a
//! camera's events drive, and the line (a PIR sensor) that gates its
//! inference. Each line has one user in the whole file.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{key, ConfigError, Ctx, Key, Number};
use crate::gpio::{Chip, InputConfig, LabelFilter, Line, LineSpec, OutputConfig, OutputMode};

// Keys of both tables.

/// The chip of a line given by offset and no chip: the SoC's GPIO on every
/// Raspberry Pi (the Pi 5's header too, since kernel 6.6.45). A line given
/// by name is looked for on every chip.
const CHIP: Key<&str> = Key { name: "chip", default: "/dev/gpiochip0" };
/// Line offsets are below this: no GPIO chip has as many lines, so a
/// bigger number is a mistake.
const LINE_OFFSET_LIMIT: u32 = 65_536;

// An output's keys.

/// "level": active while one of the labels' events is; "pulse": active for
/// `pulse_s` when one starts.
const MODE: Key<&str> = Key { name: "mode", default: "level" };
/// Level mode: seconds the line stays active after the last event ended;
/// at most a day.
const OFF_DELAY_S: Number<f64> = Number { name: "off_delay_s", default: 0.0, range: 0.0..=86_400.0 };
/// Pulse mode: the pulse's length in seconds. 1 s is long enough for a
/// buzzer's chirp or a relay to pull in, short enough not to matter
/// otherwise. At least 0.05 s: the daemon's main loop times pulses and looks
/// every 50 ms, so a shorter one could not be kept; at most an hour.
const PULSE_S: Number<f64> = Number { name: "pulse_s", default: 1.0, range: 0.05..=3600.0 };
/// Active is the electrically low level (most opto-isolated relay modules).
const OUTPUT_ACTIVE_LOW: Key<bool> = Key { name: "active_low", default: false };

// The input's keys.

/// Seconds the camera keeps inferring after the sensor went quiet: 10 s
/// covers a person who stops moving in front of a PIR (whose own hold is a
/// few seconds) without inferring long after they left; at most an hour.
const HOLD_S: Number<f64> = Number { name: "hold_s", default: 10.0, range: 0.0..=3600.0 };
/// The sensor pulls the line low when it fires.
const INPUT_ACTIVE_LOW: Key<bool> = Key { name: "active_low", default: false };

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    /// Required: an offset or a name.
    line: Option<Spanned<toml::Value>>,
    chip: Option<Spanned<String>>,
    /// Required: the labels whose events drive the line, or "*".
    labels: Option<Spanned<Vec<Spanned<String>>>>,
    mode: Option<Spanned<String>>,
    pulse_s: Option<Spanned<f64>>,
    off_delay_s: Option<Spanned<f64>>,
    active_low: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    /// Required: an offset or a name.
    line: Option<Spanned<toml::Value>>,
    chip: Option<Spanned<String>>,
    active_low: Option<bool>,
    hold_s: Option<Spanned<f64>>,
}

/// The lines taken so far in the file, and the table that took each.
pub(super) type LinesUsed = Vec<(LineSpec, String)>;

/// A GPIO line's `line` and `chip` keys in `table`, whose own place in the
/// file is `at`. A line has one user: it is added to `lines_used`.
fn parse_line(
    cx: &Ctx<'_>,
    table: &str,
    at: Range<usize>,
    line: Option<&Spanned<toml::Value>>,
    chip: Option<&Spanned<String>>,
    lines_used: &mut LinesUsed,
) -> Result<LineSpec, ConfigError> {
    const ACCEPTED: &str = "accepted: the line's offset on its chip (on a Raspberry Pi, the BCM GPIO number, e.g. 17) \
                            or its name as `gpioinfo` lists it (e.g. \"GPIO17\")";
    let Some(value) = line else {
        return Err(cx.error(Some(at), format!("key '{table}.line' is missing; {ACCEPTED}")));
    };
    let line_key = format!("{table}.line");
    let line = match value.get_ref() {
        toml::Value::Integer(n) => Line::Offset(
            u32::try_from(*n)
                .ok()
                .filter(|n| *n < LINE_OFFSET_LIMIT)
                .ok_or_else(|| cx.invalid(&line_key, value, format!("{n} is not a line offset; {ACCEPTED}")))?,
        ),
        toml::Value::String(name) if !name.is_empty() && !name.contains(['/', '\0']) => Line::Name(name.clone()),
        other => return Err(cx.invalid(&line_key, value, format!("{other} is not a line; {ACCEPTED}"))),
    };
    let chip = match chip {
        None if matches!(line, Line::Offset(_)) => Chip::Device(PathBuf::from(CHIP.default)),
        None => Chip::AnyWithName,
        Some(chip) => {
            let text = chip.get_ref();
            let chip_key = key(table, CHIP.name);
            if let Some(dir) = text.strip_prefix("simulated:") {
                if dir.is_empty() {
                    return Err(cx.invalid(
                        &chip_key,
                        chip,
                        "'simulated:' needs a folder, e.g. \"simulated:/tmp/edgeclip-gpio\"",
                    ));
                }
                Chip::Simulated(cx.resolve(Path::new(dir)))
            } else if text.starts_with("gpiochip") && !text.contains('/') {
                Chip::Device(Path::new("/dev").join(text))
            } else if text.starts_with('/') {
                Chip::Device(PathBuf::from(text))
            } else {
                return Err(cx.invalid(
                    &chip_key,
                    chip,
                    format!("'{text}' is not a GPIO chip; accepted: \"/dev/gpiochipN\", \"gpiochipN\" or \"simulated:FOLDER\""),
                ));
            }
        }
    };
    let spec = LineSpec { chip, line };
    if let Some((_, other)) = lines_used.iter().find(|(used, _)| *used == spec) {
        return Err(cx.invalid(&line_key, value, format!("{spec} is already used by '{other}'; a line has one user")));
    }
    lines_used.push((spec.clone(), table.to_string()));
    Ok(spec)
}

/// One `[[cameras.NAME.outputs]]` table; `table` is its name in errors
/// (`cameras.NAME.outputs[I]`).
pub(super) fn parse_output(
    cx: &Ctx<'_>,
    table: &str,
    raw: &Spanned<RawOutput>,
    lines_used: &mut LinesUsed,
) -> Result<OutputConfig, ConfigError> {
    let output = raw.get_ref();
    let line = parse_line(cx, table, raw.span(), output.line.as_ref(), output.chip.as_ref(), lines_used)?;
    let labels_key = format!("{table}.labels");
    let labels = match &output.labels {
        None => {
            return Err(cx.error(
                Some(raw.span()),
                format!("key '{labels_key}' is missing; accepted: the labels whose events drive the line, e.g. [\"person\"], or [\"*\"] for any"),
            ))
        }
        Some(labels) if labels.get_ref().is_empty() => {
            return Err(cx.invalid(&labels_key, labels, "is empty; accepted: labels of this camera, e.g. [\"person\"], or [\"*\"] for any"))
        }
        Some(labels) => {
            if let Some(empty) = labels.get_ref().iter().find(|l| l.get_ref().trim().is_empty()) {
                return Err(cx.invalid(&labels_key, empty, "has an empty label; accepted: a label of this camera, or \"*\" for any"));
            }
            if labels.get_ref().iter().any(|l| l.get_ref() == "*") {
                LabelFilter::Any
            } else {
                LabelFilter::Only(labels.get_ref().iter().map(|l| l.get_ref().trim().to_string()).collect())
            }
        }
    };
    let mode = match output.mode.as_ref().map_or(MODE.default, |m| m.get_ref().as_str()) {
        "level" => {
            if let Some(p) = &output.pulse_s {
                return Err(cx.invalid(
                    &key(table, PULSE_S.name),
                    p,
                    "is for mode = \"pulse\"; this output is in level mode",
                ));
            }
            let off_delay = OFF_DELAY_S.read(cx, table, output.off_delay_s.as_ref())?;
            OutputMode::Level { off_delay: Duration::from_secs_f64(off_delay) }
        }
        "pulse" => {
            if let Some(d) = &output.off_delay_s {
                return Err(cx.invalid(
                    &key(table, OFF_DELAY_S.name),
                    d,
                    "is for mode = \"level\"; this output is in pulse mode",
                ));
            }
            OutputMode::Pulse { length: Duration::from_secs_f64(PULSE_S.read(cx, table, output.pulse_s.as_ref())?) }
        }
        other => {
            let m = output.mode.as_ref().expect("the default is a mode");
            return Err(cx.invalid(
                &key(table, MODE.name),
                m,
                format!("'{other}' is not an output mode; accepted: \"level\" or \"pulse\""),
            ));
        }
    };
    Ok(OutputConfig { line, labels, mode, active_low: output.active_low.unwrap_or(OUTPUT_ACTIVE_LOW.default) })
}

/// A camera's `[cameras.NAME.input]` table; `table` is its name in errors.
pub(super) fn parse_input(
    cx: &Ctx<'_>,
    table: &str,
    raw: &Spanned<RawInput>,
    lines_used: &mut LinesUsed,
) -> Result<InputConfig, ConfigError> {
    let input = raw.get_ref();
    let line = parse_line(cx, table, raw.span(), input.line.as_ref(), input.chip.as_ref(), lines_used)?;
    let hold = HOLD_S.read(cx, table, input.hold_s.as_ref())?;
    Ok(InputConfig {
        line,
        active_low: input.active_low.unwrap_or(INPUT_ACTIVE_LOW.default),
        hold: Duration::from_secs_f64(hold),
    })
}
