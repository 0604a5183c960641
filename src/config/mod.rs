//! The daemon's configuration file (TOML): parsed, then validated.
//!
//! As for every file a person writes here, reading is two steps: serde
//! parses the text into raw structs that reject unknown keys, then
//! [`Config::parse`] builds the validated [`Config`], checking each value
//! and turning sources, durations and paths into what the daemon uses. Every
//! mistake is reported as `FILE:LINE: key 'a.b': what was wrong; what is
//! accepted`, because the person reading it is at the board with a text
//! editor. The documented default is `boards/edgeclip.toml`, which
//! `edgeclip print-config` prints and a test parses.
//!
//! Each section of the file has its own module here, holding its raw struct,
//! its validated struct and its parser. A key that has a default is declared
//! once, in its section, as a `Key` (its name and default) or a `Number`
//! (also the values accepted), with its meaning and the reason for each
//! number in the comment above; the parser reads the default and the range
//! from there and nowhere else.

mod camera;
mod detector;
mod gpio;
mod logging;
mod model;
mod mqtt;
mod passwords;
mod store;
mod web;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use camera::{CameraConfig, ZoneConfig};
pub use model::ModelConfig;
pub use mqtt::{Broker, HomeAssistantConfig, MqttConfig};
pub use store::StoreConfig;
pub use web::WebConfig;

/// The documented default configuration, as shipped.
pub const DEFAULT_CONFIG: &str = include_str!("../../boards/edgeclip.toml");

/// A mistake in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based; 0 when the mistake has no place (the file cannot be read).
    pub line: usize,
    pub message: String,
}

/// A key that takes a default when left out.
struct Key<T> {
    /// The key's name in its table.
    name: &'static str,
    default: T,
}

impl Key<&'static str> {
    /// This address key of `table` (`IP:PORT`, where something listens):
    /// the one set, or the default; an error shows `example`.
    fn address(
        &self,
        cx: &Ctx<'_>,
        table: &str,
        value: Option<&Spanned<String>>,
        example: &str,
    ) -> Result<std::net::SocketAddr, ConfigError> {
        let Some(v) = value else { return Ok(self.default.parse().expect("the default address parses")) };
        v.get_ref().parse().map_err(|_| {
            cx.invalid(
                &key(table, self.name),
                v,
                format!("'{}' is not an address; accepted: IP:PORT, e.g. '{example}'", v.get_ref()),
            )
        })
    }
}

/// A number key: its default when left out, and the values accepted. An
/// error states the range, so a person can fix the value without the docs.
struct Number<T> {
    /// The key's name in its table.
    name: &'static str,
    default: T,
    range: RangeInclusive<T>,
}

impl<T: Copy + PartialOrd + Display> Number<T> {
    /// The value of this key in `table` (e.g. "mqtt", "cameras.front.motion"):
    /// the one set, checked against the range, or the default.
    fn read(&self, cx: &Ctx<'_>, table: &str, value: Option<&Spanned<T>>) -> Result<T, ConfigError> {
        let Some(v) = value else { return Ok(self.default) };
        let x = *v.get_ref();
        // `contains` rejects a NaN, which is in no range.
        if !self.range.contains(&x) {
            let (min, max) = (self.range.start(), self.range.end());
            return Err(cx.invalid(
                &key(table, self.name),
                v,
                format!("{x} is out of range; accepted: {min} to {max}"),
            ));
        }
        Ok(x)
    }
}

/// A key's full name, as errors show it: `table.name`, or `name` at the top.
fn key(table: &str, name: &str) -> String {
    if table.is_empty() {
        name.to_string()
    } else {
        format!("{table}.{name}")
    }
}

// ---- the top level ---------------------------------------------------------

/// This board's name: a level of every MQTT topic (`edgeclip/<node>/...`)
/// and the device name in Home Assistant.
const NODE: Key<&str> = Key { name: "node", default: "edgeclip" };
/// Exit (status 0) once every camera's source has ended, i.e. recordings
/// played without `loop`: for demos and tests, as a camera never ends.
const EXIT_WHEN_DONE: Key<bool> = Key { name: "exit_when_done", default: false };

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: Option<Spanned<String>>,
    model: Option<model::RawModel>,
    mqtt: Option<mqtt::RawMqtt>,
    homeassistant: Option<mqtt::RawHomeAssistant>,
    logging: Option<logging::RawLogging>,
    store: Option<store::RawStore>,
    web: Option<web::RawWeb>,
    /// Defaults of every camera's `[cameras.NAME.detector]` keys.
    detector: Option<detector::RawDetector>,
    exit_when_done: Option<bool>,
    cameras: Option<Spanned<BTreeMap<Spanned<String>, camera::RawCamera>>>,
}

/// The daemon's settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub node: String,
    pub model: ModelConfig,
    pub mqtt: MqttConfig,
    pub homeassistant: HomeAssistantConfig,
    pub store: StoreConfig,
    pub web: WebConfig,
    pub log_filter: String,
    /// Also print each event as one line on stdout (the demo does).
    pub print_events: bool,
    /// Stop (exit 0) once every camera's source has ended: recordings
    /// played without `loop`, for demos and tests.
    pub exit_when_done: bool,
    pub cameras: Vec<CameraConfig>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let unreadable = |line: usize, message: String| ConfigError { path: path.to_path_buf(), line, message };
        let bytes = crate::util::file::regular_file(path)
            .and_then(|()| std::fs::read(path))
            .map_err(|e| unreadable(0, format!("cannot read the configuration: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            unreadable(line, format!("byte {at} is not UTF-8 text; a configuration is a TOML text file"))
        })?;
        Config::parse(path, &text)
    }

    /// Validates configuration text; `path` names it in errors and anchors
    /// its relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cx = Ctx { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;
        let node = match &raw.node {
            Some(n) => cx.name(NODE.name, n)?,
            None => NODE.default.to_string(),
        };
        let model = model::parse(&cx, raw.model.as_ref())?;
        let mqtt = mqtt::parse(&cx, raw.mqtt.as_ref(), &node)?;
        let homeassistant = mqtt::parse_home_assistant(&cx, raw.homeassistant.as_ref(), &mqtt)?;
        let logging = logging::parse(&cx, raw.logging.as_ref())?;
        let store = store::parse(&cx, raw.store.as_ref())?;
        let web = web::parse(&cx, raw.web.as_ref())?;
        let cameras = camera::parse_cameras(&cx, raw.cameras.as_ref(), raw.detector.as_ref())?;
        Ok(Config {
            node,
            model,
            mqtt,
            homeassistant,
            store,
            web,
            log_filter: logging.filter,
            print_events: logging.print_events,
            exit_when_done: raw.exit_when_done.unwrap_or(EXIT_WHEN_DONE.default),
            cameras,
        })
    }
}

// ---- reading the file --------------------------------------------------------

/// The file being read: its path, for errors and relative paths, and its
/// text, to tell a key's line.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, span: Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())].matches('\n').count() + 1
    }

    fn error(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        ConfigError { path: self.path.to_path_buf(), line: span.map_or(0, |s| self.line_of(s)), message }
    }

    fn invalid<T>(&self, key: &str, value: &Spanned<T>, problem: impl Display) -> ConfigError {
        self.error(Some(value.span()), format!("key '{key}': {problem}"))
    }

    /// A path from the file, relative to the file's folder.
    fn path_value(&self, key: &str, value: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        if value.get_ref().trim().is_empty() {
            return Err(self.invalid(key, value, "is empty; give a path or leave the key out"));
        }
        Ok(self.resolve(Path::new(value.get_ref())))
    }

    /// `p` as written in the file: relative paths start at the file's folder.
    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// A name that is one MQTT topic level and part of Home Assistant ids.
    fn name(&self, key: &str, value: &Spanned<String>) -> Result<String, ConfigError> {
        let s = value.get_ref();
        if s.len() > MAX_NAME_LEN {
            return Err(self.invalid(
                key,
                value,
                format!("is {} characters long; a name has at most {MAX_NAME_LEN}", s.len()),
            ));
        }
        if !is_name(s) {
            return Err(self.invalid(
                key,
                value,
                format!("'{s}' is not a name; accepted: letters, digits, '-' and '_'"),
            ));
        }
        Ok(s.clone())
    }

    /// A TOML or serde error as "key 'table.key': what" at its line: the key
    /// is read off the line the error points at and the table header above it.
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = crate::model::bundle::toml_problem(e)
            .replace("expected i64", "expected a whole number")
            .replace("expected f64", "expected a number");
        let Some(span) = e.span() else { return self.error(None, message) };
        let line = self.line_of(span.clone());
        let lines: Vec<&str> = self.text.lines().collect();
        let table = lines[..line.saturating_sub(1).min(lines.len())]
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().replace('"', ""));
        let key =
            lines.get(line - 1).and_then(|l| l.split_once('=')).map(|(k, _)| k.trim().trim_matches('"').to_string());
        let message = match (table, key) {
            (_, Some(key)) if key.starts_with('[') => message,
            (Some(table), Some(key)) => format!("key '{table}.{key}': {message}"),
            (None, Some(key)) => format!("key '{key}': {message}"),
            _ => message,
        };
        ConfigError { path: self.path.to_path_buf(), line, message }
    }
}

/// The longest node or camera name: each is a level of every topic and part
/// of Home Assistant's ids and entity names, where 64 characters already
/// make unwieldy names.
const MAX_NAME_LEN: usize = 64;

/// Letters, digits, '-' and '_', at least one: safe as an MQTT topic level
/// and inside Home Assistant ids.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Ctx<'static> {
        Ctx { path: Path::new("/etc/edgeclip/edgeclip.toml"), text: "a = 1\nb = 2\n" }
    }

    #[test]
    fn a_number_is_its_default_or_a_value_in_range() {
        const COUNT: Number<i64> = Number { name: "count", default: 3, range: 1..=5 };
        const SHARE: Number<f64> = Number { name: "share", default: 0.5, range: 0.0..=1.0 };
        let cx = cx();
        assert_eq!(COUNT.read(&cx, "t", None), Ok(3));
        assert_eq!(COUNT.read(&cx, "t", Some(&Spanned::new(0..5, 5))), Ok(5));
        let error = COUNT.read(&cx, "t", Some(&Spanned::new(6..11, 6))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/etc/edgeclip/edgeclip.toml:2: key 't.count': 6 is out of range; accepted: 1 to 5"
        );
        let error = SHARE.read(&cx, "t.u", Some(&Spanned::new(0..5, f64::NAN))).unwrap_err();
        assert_eq!(error.message, "key 't.u.share': NaN is out of range; accepted: 0 to 1");
    }

    #[test]
    fn names_are_topic_levels() {
        assert!(is_name("front-door_2"));
        assert!(!is_name("") && !is_name("a/b") && !is_name("a b") && !is_name("+") && !is_name("#"));
    }
}
