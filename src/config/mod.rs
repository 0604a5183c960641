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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::capture::motion::MotionOptions;
use crate::capture::SourceSpec;
use crate::detect::DetectorOptions;
use crate::gpio::{Chip, InputConfig, LabelFilter, Line, LineSpec, OutputConfig, OutputMode};

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

// ---- raw: what serde reads ------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: Option<Spanned<String>>,
    model: Option<RawModel>,
    mqtt: Option<RawMqtt>,
    homeassistant: Option<RawHomeAssistant>,
    logging: Option<RawLogging>,
    detector: Option<RawDetector>,
    exit_when_done: Option<bool>,
    cameras: Option<Spanned<BTreeMap<Spanned<String>, RawCamera>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    path: Option<Spanned<String>>,
    threads: Option<Spanned<i64>>,
    cache_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    broker: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    topic_prefix: Option<Spanned<String>>,
    qos: Option<Spanned<i64>>,
    keepalive_s: Option<Spanned<i64>>,
    offline_queue: Option<Spanned<i64>>,
    stats_interval_s: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHomeAssistant {
    enabled: Option<bool>,
    discovery_prefix: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    level: Option<Spanned<String>>,
    print_events: Option<bool>,
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct RawDetector {
    threshold: Option<Spanned<f64>>,
    start_frames: Option<Spanned<i64>>,
    end_frames: Option<Spanned<i64>>,
    margin: Option<Spanned<f64>>,
    min_duration_s: Option<Spanned<f64>>,
    max_duration_s: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    source: Option<Spanned<String>>,
    labels: Option<Spanned<String>>,
    enabled: Option<bool>,
    max_fps: Option<Spanned<f64>>,
    motion: Option<RawMotion>,
    detector: Option<RawDetector>,
    outputs: Option<Vec<Spanned<RawOutput>>>,
    input: Option<Spanned<RawInput>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    line: Option<Spanned<toml::Value>>,
    chip: Option<Spanned<String>>,
    labels: Option<Spanned<Vec<Spanned<String>>>>,
    mode: Option<Spanned<String>>,
    pulse_s: Option<Spanned<f64>>,
    off_delay_s: Option<Spanned<f64>>,
    active_low: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    line: Option<Spanned<toml::Value>>,
    chip: Option<Spanned<String>>,
    active_low: Option<bool>,
    hold_s: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMotion {
    enabled: Option<bool>,
    pixel_threshold: Option<Spanned<i64>>,
    min_changed_area: Option<Spanned<f64>>,
    force_every_s: Option<Spanned<f64>>,
}

// ---- validated -------------------------------------------------------------

/// The daemon's settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub node: String,
    pub model: ModelConfig,
    pub mqtt: MqttConfig,
    pub homeassistant: HomeAssistantConfig,
    pub log_filter: String,
    /// Also print each event as one line on stdout (the demo does).
    pub print_events: bool,
    /// Stop (exit 0) once every camera's source has ended: recordings
    /// played without `loop`, for demos and tests.
    pub exit_when_done: bool,
    pub cameras: Vec<CameraConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub path: PathBuf,
    pub threads: usize,
    pub cache_dir: PathBuf,
}

/// Where events go.
#[derive(Debug, Clone, PartialEq)]
pub enum Broker {
    /// A broker inside the daemon, listening here.
    Embedded { listen: SocketAddr },
    /// An external broker.
    External { host: String, port: u16, tls: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    pub broker: Broker,
    pub client_id: String,
    pub username: Option<String>,
    /// Read from `password_file` or `password_env` when the file is parsed.
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub topic_prefix: String,
    pub qos: u8,
    pub keepalive: Duration,
    pub offline_queue: usize,
    pub stats_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HomeAssistantConfig {
    pub enabled: bool,
    pub discovery_prefix: String,
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
}

// ---- defaults (boards/edgeclip.toml states the same; a test compares) -------

const DEFAULT_NODE: &str = "edgeclip";
const DEFAULT_MODEL: &str = "/usr/share/edgeclip/models/tiny-shapes";
const DEFAULT_THREADS: i64 = 2;
const DEFAULT_CACHE_DIR: &str = "/var/cache/edgeclip";
const DEFAULT_BROKER: &str = "mqtt://localhost:1883";
const DEFAULT_LISTEN: &str = "127.0.0.1:1883";
const DEFAULT_TOPIC_PREFIX: &str = "edgeclip";
const DEFAULT_QOS: i64 = 1;
const DEFAULT_KEEPALIVE_S: i64 = 30;
const DEFAULT_OFFLINE_QUEUE: i64 = 1000;
const DEFAULT_STATS_INTERVAL_S: i64 = 60;
const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";
const DEFAULT_LOG_LEVEL: &str = "info";
const DEFAULT_THRESHOLD: f64 = 0.5;
const DEFAULT_MAX_FPS: f64 = 2.0;
/// The chip of a line given by offset and no chip: the SoC's GPIO on every
/// Raspberry Pi (the Pi 5's header too, since kernel 6.6.45).
const DEFAULT_GPIO_CHIP: &str = "/dev/gpiochip0";
/// A pulse output's length: long enough for a buzzer's chirp or a relay
/// to pull in, short enough not to matter otherwise.
const DEFAULT_PULSE_S: f64 = 1.0;
/// The shortest pulse: the daemon's main loop times pulses and looks every
/// 50 ms, so a shorter one could not be kept.
const MIN_PULSE_S: f64 = 0.05;
/// How long an input keeps the camera inferring after the sensor went
/// quiet: 10 s covers a person who stops moving in front of a PIR (whose
/// own hold is a few seconds) without inferring long after they left.
const DEFAULT_HOLD_S: f64 = 10.0;
/// An offline queue beyond this holds more events than a day of a busy
/// camera; more would only eat a small board's memory.
const MAX_OFFLINE_QUEUE: i64 = 100_000;

/// Where in the file a key is, to report its line.
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

    fn invalid<T>(&self, key: &str, value: &Spanned<T>, problem: impl std::fmt::Display) -> ConfigError {
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

    fn int(
        &self,
        key: &str,
        value: Option<&Spanned<i64>>,
        default: i64,
        range: (i64, i64),
    ) -> Result<i64, ConfigError> {
        let Some(v) = value else { return Ok(default) };
        let n = *v.get_ref();
        if n < range.0 || n > range.1 {
            return Err(self.invalid(key, v, format!("{n} is out of range; accepted: {} to {}", range.0, range.1)));
        }
        Ok(n)
    }

    fn float(
        &self,
        key: &str,
        value: Option<&Spanned<f64>>,
        default: f64,
        range: (f64, f64),
    ) -> Result<f64, ConfigError> {
        let Some(v) = value else { return Ok(default) };
        let x = *v.get_ref();
        if !(x >= range.0 && x <= range.1) {
            return Err(self.invalid(key, v, format!("{x} is out of range; accepted: {} to {}", range.0, range.1)));
        }
        Ok(x)
    }

    /// A name that is one MQTT topic level and part of Home Assistant ids.
    fn name(&self, key: &str, value: &Spanned<String>) -> Result<String, ConfigError> {
        let s = value.get_ref();
        if !is_name(s) {
            return Err(self.invalid(
                key,
                value,
                format!("'{s}' is not a name; accepted: letters, digits, '-' and '_'"),
            ));
        }
        Ok(s.clone())
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: 0,
            message: format!("cannot read the configuration: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Validates configuration text; `path` names it in errors and anchors
    /// its relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cx = Ctx { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(&cx, &e))?;

        let node = match &raw.node {
            Some(n) => cx.name("node", n)?,
            None => DEFAULT_NODE.to_string(),
        };

        let model = {
            let m = raw.model.as_ref();
            let path = match m.and_then(|m| m.path.as_ref()) {
                Some(p) => cx.path_value("model.path", p)?,
                None => PathBuf::from(DEFAULT_MODEL),
            };
            let threads =
                cx.int("model.threads", m.and_then(|m| m.threads.as_ref()), DEFAULT_THREADS, (1, 64))? as usize;
            let cache_dir = match m.and_then(|m| m.cache_dir.as_ref()) {
                Some(p) => cx.path_value("model.cache_dir", p)?,
                None => PathBuf::from(DEFAULT_CACHE_DIR),
            };
            ModelConfig { path, threads, cache_dir }
        };

        let mqtt = parse_mqtt(&cx, raw.mqtt.as_ref(), &node)?;

        let homeassistant = {
            let h = raw.homeassistant.as_ref();
            let discovery_prefix = match h.and_then(|h| h.discovery_prefix.as_ref()) {
                Some(p) => topic_levels(&cx, "homeassistant.discovery_prefix", p)?,
                None => DEFAULT_DISCOVERY_PREFIX.to_string(),
            };
            HomeAssistantConfig { enabled: h.and_then(|h| h.enabled).unwrap_or(true), discovery_prefix }
        };

        let log_filter = match raw.logging.as_ref().and_then(|l| l.level.as_ref()) {
            Some(level) => {
                tracing_subscriber::EnvFilter::try_new(level.get_ref()).map_err(|e| {
                    cx.invalid("logging.level", level, format!("'{}' is not a log filter ({e}); accepted: error, warn, info, debug, trace, or e.g. 'info,edgeclip=debug'", level.get_ref()))
                })?;
                level.get_ref().clone()
            }
            None => DEFAULT_LOG_LEVEL.to_string(),
        };

        let defaults = raw.detector.clone().unwrap_or_default();
        let mut cameras = Vec::new();
        let Some(raw_cameras) = &raw.cameras else {
            return Err(cx.error(
                None,
                "no camera: add a [cameras.NAME] table with 'source' and 'labels' (see `edgeclip print-config`)".into(),
            ));
        };
        if raw_cameras.get_ref().is_empty() {
            return Err(cx.error(
                Some(raw_cameras.span()),
                "key 'cameras': no camera; add a [cameras.NAME] table with 'source' and 'labels'".into(),
            ));
        }
        let mut lines_used = Vec::new();
        for (name, camera) in raw_cameras.get_ref() {
            cameras.push(parse_camera(&cx, name, camera, &defaults, &mut lines_used)?);
        }
        let print_events = raw.logging.as_ref().and_then(|l| l.print_events).unwrap_or(false);
        let exit_when_done = raw.exit_when_done.unwrap_or(false);
        Ok(Config { node, model, mqtt, homeassistant, log_filter, print_events, exit_when_done, cameras })
    }
}

/// A TOML or serde error as "key 'table.key': what" at its line: the key
/// is read off the line the error points at and the table header above it.
fn toml_error(cx: &Ctx<'_>, e: &toml::de::Error) -> ConfigError {
    let message = crate::bundle::toml_problem(e)
        .replace("expected i64", "expected a whole number")
        .replace("expected f64", "expected a number");
    let Some(span) = e.span() else { return cx.error(None, message) };
    let line = cx.line_of(span.clone());
    let lines: Vec<&str> = cx.text.lines().collect();
    let table = lines[..line.saturating_sub(1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().replace('"', ""));
    let key = lines.get(line - 1).and_then(|l| l.split_once('=')).map(|(k, _)| k.trim().trim_matches('"').to_string());
    let message = match (table, key) {
        (_, Some(key)) if key.starts_with('[') => message,
        (Some(table), Some(key)) => format!("key '{table}.{key}': {message}"),
        (None, Some(key)) => format!("key '{key}': {message}"),
        _ => message,
    };
    ConfigError { path: cx.path.to_path_buf(), line, message }
}

/// Letters, digits, '-' and '_', at least one: safe as an MQTT topic level
/// and inside Home Assistant ids.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Topic levels joined by '/', each a name (`homeassistant`, `home/edgeclip`).
fn topic_levels(cx: &Ctx<'_>, key: &str, value: &Spanned<String>) -> Result<String, ConfigError> {
    let s = value.get_ref();
    if !s.split('/').all(is_name) {
        return Err(cx.invalid(
            key,
            value,
            format!("'{s}' is not a topic prefix; accepted: names of letters, digits, '-' and '_' joined by '/'"),
        ));
    }
    Ok(s.clone())
}

fn parse_mqtt(cx: &Ctx<'_>, raw: Option<&RawMqtt>, node: &str) -> Result<MqttConfig, ConfigError> {
    let get = |f: fn(&RawMqtt) -> Option<&Spanned<String>>| raw.and_then(f);
    let broker = match get(|m| m.broker.as_ref()) {
        Some(b) if b.get_ref() == "embedded" => {
            let listen = match get(|m| m.listen.as_ref()) {
                Some(l) => l.get_ref().parse().map_err(|_| {
                    cx.invalid(
                        "mqtt.listen",
                        l,
                        format!("'{}' is not an address; accepted: IP:PORT, e.g. '0.0.0.0:1883'", l.get_ref()),
                    )
                })?,
                None => DEFAULT_LISTEN.parse().expect("the default address parses"),
            };
            Broker::Embedded { listen }
        }
        Some(b) => parse_broker_url(b.get_ref()).map_err(|problem| cx.invalid("mqtt.broker", b, problem))?,
        None => parse_broker_url(DEFAULT_BROKER).expect("the default broker parses"),
    };
    let client_id = match get(|m| m.client_id.as_ref()) {
        Some(c) if !c.get_ref().is_empty() && c.get_ref().len() <= 65_535 => c.get_ref().clone(),
        Some(c) => return Err(cx.invalid("mqtt.client_id", c, "is empty; leave the key out for 'edgeclip-<node>'")),
        None => format!("edgeclip-{node}"),
    };
    let password = match (get(|m| m.password_file.as_ref()), get(|m| m.password_env.as_ref())) {
        (Some(f), Some(_)) => return Err(cx.invalid("mqtt.password_file", f, "and 'mqtt.password_env' are both set; keep one")),
        (Some(f), None) => {
            let file = cx.path_value("mqtt.password_file", f)?;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| cx.invalid("mqtt.password_file", f, format!("cannot read '{}': {e}", file.display())))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        (None, Some(v)) => Some(std::env::var(v.get_ref()).map_err(|_| {
            cx.invalid("mqtt.password_env", v, format!("the environment variable '{}' is not set (for a service: an Environment= or EnvironmentFile= line in its unit)", v.get_ref()))
        })?),
        (None, None) => None,
    };
    let username = get(|m| m.username.as_ref()).map(|u| u.get_ref().clone());
    if password.is_some() && username.is_none() {
        let key = get(|m| m.password_file.as_ref()).or(get(|m| m.password_env.as_ref())).expect("one is set");
        return Err(cx.invalid(
            "mqtt.username",
            key,
            "is missing: a password is set, but MQTT sends one only with a user name",
        ));
    }
    let file = |key: &str, v: Option<&Spanned<String>>| -> Result<Option<PathBuf>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let p = cx.path_value(key, v)?;
        if !p.is_file() {
            return Err(cx.invalid(key, v, format!("'{}' is not a readable file", p.display())));
        }
        Ok(Some(p))
    };
    let ca_file = file("mqtt.ca_file", get(|m| m.ca_file.as_ref()))?;
    let client_cert = file("mqtt.client_cert", get(|m| m.client_cert.as_ref()))?;
    let client_key = file("mqtt.client_key", get(|m| m.client_key.as_ref()))?;
    if client_cert.is_some() != client_key.is_some() {
        let v = get(|m| m.client_cert.as_ref()).or(get(|m| m.client_key.as_ref())).expect("one is set");
        return Err(cx.invalid("mqtt.client_cert", v, "and 'mqtt.client_key' go together; set both or neither"));
    }
    let tls = matches!(broker, Broker::External { tls: true, .. });
    if !tls {
        if let Some(v) = get(|m| m.ca_file.as_ref()).or(get(|m| m.client_cert.as_ref())) {
            return Err(cx.invalid("mqtt.ca_file", v, "TLS files are set but the broker is not 'mqtts://...'"));
        }
    }
    let topic_prefix = match get(|m| m.topic_prefix.as_ref()) {
        Some(p) => topic_levels(cx, "mqtt.topic_prefix", p)?,
        None => DEFAULT_TOPIC_PREFIX.to_string(),
    };
    let int =
        |key, f: fn(&RawMqtt) -> Option<&Spanned<i64>>, default, range| cx.int(key, raw.and_then(f), default, range);
    Ok(MqttConfig {
        broker,
        client_id,
        username,
        password,
        ca_file,
        client_cert,
        client_key,
        topic_prefix,
        qos: int("mqtt.qos", |m| m.qos.as_ref(), DEFAULT_QOS, (0, 2))? as u8,
        keepalive: Duration::from_secs(int(
            "mqtt.keepalive_s",
            |m| m.keepalive_s.as_ref(),
            DEFAULT_KEEPALIVE_S,
            (5, 3600),
        )? as u64),
        offline_queue: int(
            "mqtt.offline_queue",
            |m| m.offline_queue.as_ref(),
            DEFAULT_OFFLINE_QUEUE,
            (1, MAX_OFFLINE_QUEUE),
        )? as usize,
        stats_interval: Duration::from_secs(int(
            "mqtt.stats_interval_s",
            |m| m.stats_interval_s.as_ref(),
            DEFAULT_STATS_INTERVAL_S,
            (1, 86_400),
        )? as u64),
    })
}

/// "mqtt://host[:port]" or "mqtts://host[:port]".
fn parse_broker_url(url: &str) -> Result<Broker, String> {
    const ACCEPTED: &str = "accepted: 'mqtt://HOST[:PORT]', 'mqtts://HOST[:PORT]' or 'embedded'";
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(format!("'{url}' is not a broker; {ACCEPTED}"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 address is written in brackets: [::1]:1883.
        Some((host, port)) if !host.ends_with(':') => (
            host,
            port.parse::<u16>().map_err(|_| format!("port '{port}' in '{url}' is not a port number; {ACCEPTED}"))?,
        ),
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', '?']) {
        return Err(format!("'{url}' has no usable host name; {ACCEPTED}"));
    }
    Ok(Broker::External { host: host.to_string(), port, tls })
}

fn parse_detector(
    cx: &Ctx<'_>,
    prefix: &str,
    raw: &RawDetector,
    base: &RawDetector,
) -> Result<(f32, DetectorOptions), ConfigError> {
    // A camera's key wins, then [detector]'s, then the built-in default; an
    // error names the key where the value came from.
    macro_rules! pick {
        ($field:ident) => {
            match (&raw.$field, &base.$field) {
                (Some(v), _) => (format!("{prefix}.{}", stringify!($field)), Some(v)),
                (None, Some(v)) => (format!("detector.{}", stringify!($field)), Some(v)),
                (None, None) => (String::new(), None),
            }
        };
    }
    let d = DetectorOptions::default();
    let (k, v) = pick!(threshold);
    let threshold = cx.float(&k, v, DEFAULT_THRESHOLD, (0.0, 1.0))? as f32;
    let (k, v) = pick!(start_frames);
    let start_frames = cx.int(&k, v, d.start_frames.into(), (1, 1000))? as u32;
    let (k, v) = pick!(end_frames);
    let end_frames = cx.int(&k, v, d.end_frames.into(), (1, 1000))? as u32;
    let (k, v) = pick!(margin);
    let margin = cx.float(&k, v, d.margin.into(), (0.0, 0.5))? as f32;
    let (k, v) = pick!(min_duration_s);
    let min_duration = cx.float(&k, v, d.min_duration.as_secs_f64(), (0.0, 3600.0))?;
    let (k, max_v) = pick!(max_duration_s);
    let max_duration = cx.float(&k, max_v, d.max_duration.as_secs_f64(), (1.0, 7.0 * 86_400.0))?;
    if max_duration < min_duration {
        let v = max_v.expect("the defaults are ordered, so a key was set");
        return Err(cx.invalid(
            &k,
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

fn parse_camera(
    cx: &Ctx<'_>,
    name: &Spanned<String>,
    raw: &RawCamera,
    defaults: &RawDetector,
    lines_used: &mut Vec<(LineSpec, String)>,
) -> Result<CameraConfig, ConfigError> {
    let camera = cx.name("cameras", name)?;
    let key = |k: &str| format!("cameras.{camera}.{k}");
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
    let labels = cx.path_value(&key("labels"), raw.labels.as_ref().ok_or_else(|| missing("labels"))?)?;
    let max_fps = match cx.float(&key("max_fps"), raw.max_fps.as_ref(), DEFAULT_MAX_FPS, (0.0, 1000.0))? {
        0.0 => None,
        fps => Some(fps),
    };
    let motion = match &raw.motion {
        Some(m) if m.enabled == Some(false) => None,
        m => {
            let d = MotionOptions::default();
            let m = m.as_ref();
            Some(MotionOptions {
                pixel_threshold: cx.int(
                    &key("motion.pixel_threshold"),
                    m.and_then(|m| m.pixel_threshold.as_ref()),
                    d.pixel_threshold.into(),
                    (1, 254),
                )? as u8,
                min_changed_area: cx.float(
                    &key("motion.min_changed_area"),
                    m.and_then(|m| m.min_changed_area.as_ref()),
                    d.min_changed_area.into(),
                    (0.0, 1.0),
                )? as f32,
                force_every: Duration::from_secs_f64(cx.float(
                    &key("motion.force_every_s"),
                    m.and_then(|m| m.force_every_s.as_ref()),
                    d.force_every.as_secs_f64(),
                    (1.0, 86_400.0),
                )?),
            })
        }
    };
    let (threshold, detector) =
        parse_detector(cx, &key("detector"), raw.detector.as_ref().unwrap_or(&RawDetector::default()), defaults)?;
    let mut outputs = Vec::new();
    for (i, output) in raw.outputs.iter().flatten().enumerate() {
        outputs.push(parse_output(cx, &key(&format!("outputs[{i}]")), output, lines_used)?);
    }
    let input = match &raw.input {
        Some(input) => Some(parse_input(cx, &key("input"), input, lines_used)?),
        None => None,
    };
    Ok(CameraConfig {
        name: camera,
        source,
        labels,
        enabled: raw.enabled.unwrap_or(true),
        max_fps,
        motion,
        threshold,
        detector,
        outputs,
        input,
    })
}

/// A GPIO line's `line` and `chip` keys. `lines_used` holds the lines taken
/// so far, and the key that took each: a line has one user.
fn parse_line(
    cx: &Ctx<'_>,
    table: &str,
    at: Range<usize>,
    line: Option<&Spanned<toml::Value>>,
    chip: Option<&Spanned<String>>,
    lines_used: &mut Vec<(LineSpec, String)>,
) -> Result<LineSpec, ConfigError> {
    const ACCEPTED: &str = "accepted: the line's offset on its chip (on a Raspberry Pi, the BCM GPIO number, e.g. 17) \
                            or its name as `gpioinfo` lists it (e.g. \"GPIO17\")";
    let Some(value) = line else {
        return Err(cx.error(Some(at), format!("key '{table}.line' is missing; {ACCEPTED}")));
    };
    let key = format!("{table}.line");
    let line = match value.get_ref() {
        toml::Value::Integer(n) => Line::Offset(
            u32::try_from(*n)
                .ok()
                .filter(|n| *n < 65_536)
                .ok_or_else(|| cx.invalid(&key, value, format!("{n} is not a line offset; {ACCEPTED}")))?,
        ),
        toml::Value::String(name) if !name.is_empty() && !name.contains(['/', '\0']) => Line::Name(name.clone()),
        other => return Err(cx.invalid(&key, value, format!("{other} is not a line; {ACCEPTED}"))),
    };
    let chip = match chip {
        None if matches!(line, Line::Offset(_)) => Chip::Device(PathBuf::from(DEFAULT_GPIO_CHIP)),
        None => Chip::AnyWithName,
        Some(chip) => {
            let text = chip.get_ref();
            if let Some(dir) = text.strip_prefix("simulated:") {
                if dir.is_empty() {
                    return Err(cx.invalid(
                        &format!("{table}.chip"),
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
                    &format!("{table}.chip"),
                    chip,
                    format!("'{text}' is not a GPIO chip; accepted: \"/dev/gpiochipN\", \"gpiochipN\" or \"simulated:FOLDER\""),
                ));
            }
        }
    };
    let spec = LineSpec { chip, line };
    if let Some((_, other)) = lines_used.iter().find(|(used, _)| *used == spec) {
        return Err(cx.invalid(&key, value, format!("{spec} is already used by '{other}'; a line has one user")));
    }
    lines_used.push((spec.clone(), table.to_string()));
    Ok(spec)
}

fn parse_output(
    cx: &Ctx<'_>,
    table: &str,
    raw: &Spanned<RawOutput>,
    lines_used: &mut Vec<(LineSpec, String)>,
) -> Result<OutputConfig, ConfigError> {
    let output = raw.get_ref();
    let line = parse_line(cx, table, raw.span(), output.line.as_ref(), output.chip.as_ref(), lines_used)?;
    let key = |k: &str| format!("{table}.{k}");
    let labels = match &output.labels {
        None => {
            return Err(cx.error(
                Some(raw.span()),
                format!("key '{}' is missing; accepted: the labels whose events drive the line, e.g. [\"person\"], or [\"*\"] for any", key("labels")),
            ))
        }
        Some(labels) if labels.get_ref().is_empty() => {
            return Err(cx.invalid(&key("labels"), labels, "is empty; accepted: labels of this camera, e.g. [\"person\"], or [\"*\"] for any"))
        }
        Some(labels) => {
            if let Some(empty) = labels.get_ref().iter().find(|l| l.get_ref().trim().is_empty()) {
                return Err(cx.invalid(&key("labels"), empty, "has an empty label; accepted: a label of this camera, or \"*\" for any"));
            }
            if labels.get_ref().iter().any(|l| l.get_ref() == "*") {
                LabelFilter::Any
            } else {
                LabelFilter::Only(labels.get_ref().iter().map(|l| l.get_ref().trim().to_string()).collect())
            }
        }
    };
    let mode = match output.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
        None | Some((_, "level")) => {
            if let Some(p) = &output.pulse_s {
                return Err(cx.invalid(&key("pulse_s"), p, "is for mode = \"pulse\"; this output is in level mode"));
            }
            OutputMode::Level {
                off_delay: Duration::from_secs_f64(cx.float(
                    &key("off_delay_s"),
                    output.off_delay_s.as_ref(),
                    0.0,
                    (0.0, 86_400.0),
                )?),
            }
        }
        Some((_, "pulse")) => {
            if let Some(d) = &output.off_delay_s {
                return Err(cx.invalid(
                    &key("off_delay_s"),
                    d,
                    "is for mode = \"level\"; this output is in pulse mode",
                ));
            }
            OutputMode::Pulse {
                length: Duration::from_secs_f64(cx.float(
                    &key("pulse_s"),
                    output.pulse_s.as_ref(),
                    DEFAULT_PULSE_S,
                    (MIN_PULSE_S, 3600.0),
                )?),
            }
        }
        Some((m, other)) => {
            return Err(cx.invalid(
                &key("mode"),
                m,
                format!("'{other}' is not an output mode; accepted: \"level\" or \"pulse\""),
            ))
        }
    };
    Ok(OutputConfig { line, labels, mode, active_low: output.active_low.unwrap_or(false) })
}

fn parse_input(
    cx: &Ctx<'_>,
    table: &str,
    raw: &Spanned<RawInput>,
    lines_used: &mut Vec<(LineSpec, String)>,
) -> Result<InputConfig, ConfigError> {
    let input = raw.get_ref();
    let line = parse_line(cx, table, raw.span(), input.line.as_ref(), input.chip.as_ref(), lines_used)?;
    let hold = cx.float(&format!("{table}.hold_s"), input.hold_s.as_ref(), DEFAULT_HOLD_S, (0.0, 3600.0))?;
    Ok(InputConfig { line, active_low: input.active_low.unwrap_or(false), hold: Duration::from_secs_f64(hold) })
}
