//! Every payload edgeclip publishes over MQTT, as a type: the event JSON,
//! the ON/OFF of label states and of a camera's enabled state, the
//! availability, the stats message, a camera's live scores and Home
//! Assistant's discovery configs, and the values the `enabled/set` command
//! accepts.
//!
//! These types are the project's public API: Home Assistant, automations
//! and scripts read what they serialize to, so a field's name, its type and
//! its format (rounding, time format) do not change without a reason.
//! docs/mqtt.md documents every topic and payload, with an example of each
//! JSON payload; tests/payloads.rs runs the daemon and checks what it
//! really publishes against that document.
//!
//! The fields of each struct are declared in alphabetical order, which is
//! the order of the keys on the wire: it is the order the messages have
//! always had, and a consumer that compares payloads as text keeps working.
//! The daemon assembles them: [`super::publisher`] (events,
//! states), [`crate::daemon::stats`] (stats) and [`super::discovery`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use crate::pipeline::detect::{EndReason, EventKind};

/// The JSON text of a payload.
pub fn to_json<T: Serialize>(payload: &T) -> Vec<u8> {
    // Cannot fail: every payload is made of strings, numbers, booleans and
    // maps with string keys.
    serde_json::to_vec(payload).expect("an MQTT payload serializes to JSON")
}

/// The empty payload, retained: it deletes a topic's retained message (a
/// removed label's state, snapshot and discovery config; for Home
/// Assistant, deleting the config deletes the entity).
pub const CLEARED: &[u8] = b"";

/// A point in time as RFC 3339 in UTC with milliseconds
/// (`2026-11-28T04:47:45.754Z`), as Home Assistant and people read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `online` or `offline`, retained on `<prefix>/<node>/availability`:
/// `online` at every connection, `offline` at a clean stop and as the last
/// will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Online,
    Offline,
}

impl Availability {
    /// The payload, as text.
    pub const fn payload(self) -> &'static [u8] {
        match self {
            Availability::Online => b"online",
            Availability::Offline => b"offline",
        }
    }
}

/// `ON` or `OFF`, as text: a label's state (`<camera>/<label>/state`: ON
/// while its event is active) and a camera's enabled state
/// (`<camera>/enabled`), both retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    /// The payload, as text.
    pub const fn payload(self) -> &'static [u8] {
        match self {
            Switch::On => b"ON",
            Switch::Off => b"OFF",
        }
    }

    /// What the `enabled/set` command asks for, from its payload's text:
    /// `ON`, `true` or `1`; `OFF`, `false` or `0`; in any case, with
    /// surrounding white space ignored. `None` for anything else.
    pub fn from_command(text: &str) -> Option<Switch> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Some(Switch::On),
            "off" | "false" | "0" => Some(Switch::Off),
            _ => None,
        }
    }
}

impl From<bool> for Switch {
    fn from(on: bool) -> Switch {
        if on {
            Switch::On
        } else {
            Switch::Off
        }
    }
}

/// Whether an event starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Start,
    End,
}

impl From<EventKind> for EventType {
    fn from(kind: EventKind) -> EventType {
        match kind {
            EventKind::Start => EventType::Start,
            EventKind::End => EventType::End,
        }
    }
}

/// Why an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventEndReason {
    /// `gone`: the label's score fell below its threshold (minus the
    /// margin) for `end_frames` inferred frames.
    Gone,
    /// `max_duration`: the event lasted `max_duration_s`.
    MaxDuration,
    /// `label_removed`: the label left the camera's label set.
    LabelRemoved,
    /// `stopped`: the daemon is stopping, or the camera was disabled.
    Stopped,
}

impl EventEndReason {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventEndReason::Gone => "gone",
            EventEndReason::MaxDuration => "max_duration",
            EventEndReason::LabelRemoved => "label_removed",
            EventEndReason::Stopped => "stopped",
        }
    }
}

impl From<EndReason> for EventEndReason {
    fn from(reason: EndReason) -> EventEndReason {
        match reason {
            EndReason::Gone => EventEndReason::Gone,
            EndReason::MaxDuration => EventEndReason::MaxDuration,
            EndReason::LabelRemoved => EventEndReason::LabelRemoved,
            EndReason::Stopped => EventEndReason::Stopped,
        }
    }
}

/// One event on `<prefix>/<node>/<camera>/events` (QoS 1, not retained): a
/// label's event started or ended, in the whole frame or in a zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPayload {
    /// The camera's name, as configured.
    pub camera: String,
    /// Seconds since the event started, to the millisecond (0 for a start).
    pub duration_s: f64,
    /// The index of the frame that caused this message, counted from 0
    /// since the camera started.
    pub frame: u64,
    /// When that frame arrived.
    pub frame_time: Timestamp,
    /// The event's id in the node's store, the same in its start and end
    /// messages: with `node` and `type`, what a subscriber de-duplicates on
    /// (after a crash or a broken connection a message can arrive twice);
    /// `--like` and the snapshot request take it. Null when the node keeps
    /// no store.
    pub id: Option<i64>,
    /// The label, as named in the labels file.
    pub label: String,
    /// The model bundle's name.
    pub model: String,
    /// The daemon's `node`.
    pub node: String,
    /// The label's highest score since the event started, 4 decimals.
    pub peak: f64,
    /// End events only: why it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<EventEndReason>,
    /// The label's score (softmax probability, 0 to 1) in that frame, 4
    /// decimals.
    pub score: f64,
    /// Start events only: the topic with the JPEG of the frame that started
    /// the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_topic: Option<String>,
    /// The frame that started the event.
    pub start_frame: u64,
    /// When the frame that started the event arrived.
    pub start_time: Timestamp,
    /// `start` or `end`.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The zone it happened in; `None` (null): the whole frame of a camera
    /// without zones.
    pub zone: Option<String>,
}

/// A camera's (or a zone's) live scores, at most every
/// `mqtt.scores_interval_s` on `<prefix>/<node>/<camera>/scores` (or
/// `<camera>/<zone>/scores`): what the model saw in the last inferred
/// frame, so that a person can see how close each label is to its
/// threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoresPayload {
    pub camera: String,
    /// The frame the scores are of.
    pub frame: u64,
    pub frame_time: Timestamp,
    /// Every label's score (background labels included): its softmax
    /// probability among the camera's labels, 4 decimals, by label name.
    pub scores: BTreeMap<String, f64>,
    /// The threshold of every label that can fire, by label name.
    pub thresholds: BTreeMap<String, f64>,
    /// The zone the scores are of; `None` (null): the whole frame.
    pub zone: Option<String>,
}

/// What the `example/set` command did, on `<prefix>/<node>/<camera>/example`
/// (not retained): the file saved, or why none was.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ExampleResultPayload {
    pub camera: String,
    /// Why no example was saved; `None` (null): it was.
    pub error: Option<String>,
    /// How many example images the label's folder holds now.
    pub examples: Option<usize>,
    pub label: String,
    /// The image file written, as the daemon sees it.
    pub saved: Option<String>,
    /// The zone the example is of; `None` (null): the whole frame.
    pub zone: Option<String>,
}

/// What every discovery config of the node starts with: the entity's name,
/// its device, and the node's availability. Its fields sort before those of
/// the configs that flatten it in, so the keys stay in alphabetical order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveryEntity {
    /// The node's availability topic.
    pub availability_topic: String,
    /// The device all of the node's sensors belong to.
    pub device: DiscoveryDevice,
    /// The entity's name: `<camera> <label>` (`<camera> <label> score`).
    pub name: String,
    /// What created the entity.
    pub origin: DiscoveryOrigin,
    /// `online`.
    pub payload_available: Availability,
    /// `offline`.
    pub payload_not_available: Availability,
}

/// The config of one label's binary sensor, retained on
/// `<discovery_prefix>/binary_sensor/<node>/<camera>_<label>/config`: what
/// Home Assistant needs to create the entity and keep it across restarts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveryConfig {
    #[serde(flatten)]
    pub entity: DiscoveryEntity,
    /// `OFF`.
    pub payload_off: Switch,
    /// `ON`.
    pub payload_on: Switch,
    /// The QoS Home Assistant subscribes with: 1.
    pub qos: u8,
    /// The label's state topic.
    pub state_topic: String,
    /// `edgeclip_<node>_<camera>_<label>`, each part a slug (`[a-z0-9_]`).
    pub unique_id: String,
}

/// The config of one label's score sensor (`homeassistant.score_sensors`),
/// retained on `<discovery_prefix>/sensor/<node>/<camera>_<label>_score/config`:
/// a number from the camera's scores topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreSensorConfig {
    #[serde(flatten)]
    pub entity: DiscoveryEntity,
    /// The QoS Home Assistant subscribes with: 0, as the scores are sent.
    pub qos: u8,
    /// `measurement`: Home Assistant keeps statistics of it.
    pub state_class: String,
    /// The camera's scores topic.
    pub state_topic: String,
    /// `edgeclip_<node>_<camera>_<label>_score`, each part a slug.
    pub unique_id: String,
    /// Picks the label's score out of the scores message.
    pub value_template: String,
}

/// The device of a discovery config: one per node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveryDevice {
    /// One id: `edgeclip_<node slug>`.
    pub identifiers: Vec<String>,
    /// `edgeclip`.
    pub manufacturer: String,
    /// The model bundle's name.
    pub model: String,
    /// `edgeclip <node>`.
    pub name: String,
    /// edgeclip's version.
    pub sw_version: String,
}

/// The origin of a discovery config: the software that published it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveryOrigin {
    /// `edgeclip`.
    pub name: String,
    /// edgeclip's version.
    pub sw_version: String,
}

/// The stats message on `<prefix>/<node>/stats` (QoS 0, not retained),
/// every `mqtt.stats_interval_s` and once more at a stop. Rates are over
/// the interval since the previous message; counts are since start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Each camera, by name.
    pub cameras: BTreeMap<String, CameraStats>,
    /// Seconds since the previous stats message, 1 decimal.
    pub interval_s: f64,
    /// The model bundle's name.
    pub model: String,
    /// The MQTT client.
    pub mqtt: MqttClientStats,
    /// The daemon's `node`.
    pub node: String,
    /// The event history on disk; null when `store.enabled` is false.
    pub store: Option<StoreStats>,
    /// When the message was made.
    pub time: Timestamp,
    /// Whole seconds since the daemon started.
    pub uptime_s: u64,
    /// edgeclip's version.
    pub version: String,
}

/// The event history in a stats message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Bytes of the file in use.
    pub bytes: u64,
    /// Undelivered event messages removed with their events by retention,
    /// since start: the only events lost.
    pub dropped: u64,
    /// Writes that failed, since start; their messages were published from
    /// memory instead.
    pub errors: u64,
    /// Events written, since start.
    pub events_stored: u64,
    /// Keyframes written, since start.
    pub keyframes_stored: u64,
    /// Events and keyframes removed by retention (age or size), since start.
    pub removed: u64,
    /// Searches answered over MQTT, since start.
    pub searches: u64,
    /// Event messages the broker has not acknowledged yet, on disk.
    pub undelivered: u64,
}

/// The MQTT client in a stats message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MqttClientStats {
    /// Commands carried out, since start.
    pub commands_accepted: u64,
    /// Incoming messages refused, since start: commands with an unknown
    /// camera, a value that is not accepted, a payload too large or not
    /// UTF-8, and messages too large for the client to take.
    pub commands_refused: u64,
    /// Connected to the broker now.
    pub connected: bool,
    /// The latest connection problem, for a person (kept after a
    /// reconnect); null if there was none.
    pub last_error: Option<String>,
    /// Events dropped because the offline queue was full, since start.
    pub overflowed: u64,
    /// Messages the broker acknowledged (QoS 0: written), since start.
    pub published: u64,
    /// Messages waiting to be sent or acknowledged.
    pub queued: usize,
    /// Connections made after the first one.
    pub reconnects: u64,
}

/// One camera in a stats message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraStats {
    /// The labels whose event is active now.
    pub active: Vec<String>,
    /// Enabled (by configuration or by the `enabled/set` command).
    pub enabled: bool,
    /// Frames per second over the interval.
    pub fps: FrameRates,
    /// Frame counts since start.
    pub frames: FrameCounts,
    /// The camera's GPIO lines; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpio: Option<GpioStats>,
    /// How many labels the camera matches frames against, background
    /// labels included.
    pub labels: usize,
    /// Where the labels came from: the labels file (`'<path>'`) or a
    /// command (`MQTT topic '<topic>'`).
    pub labels_from: String,
    /// Per-stage latencies of the frames inferred during the interval.
    pub latency: StageLatencies,
    /// The inference thread runs (false once a recording has ended).
    pub running: bool,
    /// The source, as configured.
    pub source: String,
}

/// Frames per second over a stats interval, 2 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrameRates {
    /// Frames the source delivered.
    pub captured: f64,
    /// Frames the model ran on.
    pub inferred: f64,
}

/// A camera's frames since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FrameCounts {
    /// Frames the source delivered.
    pub captured: u64,
    /// Frames that could not be read or decoded (skipped).
    pub corrupt: u64,
    /// Frames skipped while the camera was disabled.
    pub disabled_skipped: u64,
    /// Frames replaced by a newer one before inference took them.
    pub dropped: u64,
    /// Frames the model ran on.
    pub inferred: u64,
    /// Frames skipped while the GPIO input was idle.
    pub input_skipped: u64,
    /// Frames the motion gate found still.
    pub motion_skipped: u64,
    /// Frames skipped to stay under `max_fps`.
    pub rate_skipped: u64,
    /// Source failures: a camera gone or busy, a command that died, a
    /// timeout.
    pub source_errors: u64,
}

/// A camera's GPIO lines in a stats message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpioStats {
    /// The input line that gates inference; null when there is none.
    pub input: Option<GpioInputStats>,
    /// The output lines, in configuration order.
    pub outputs: Vec<GpioOutputStats>,
}

/// A GPIO input line in a stats message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpioInputStats {
    /// Reads that failed, since start (those frames were inferred).
    pub errors: u64,
    /// The line and its chip, as configured (`line 4 of /dev/gpiochip0`).
    pub line: String,
}

/// A GPIO output line in a stats message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpioOutputStats {
    /// At its active level now.
    pub active: bool,
    /// Writes that failed, since start.
    pub errors: u64,
    /// The line and its chip, as configured (`line 17 of /dev/gpiochip0`).
    pub line: String,
}

/// Latencies per stage of an inferred frame, over a stats interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StageLatencies {
    /// JPEG decoding or pixel conversion to RGB.
    pub decode: LatencyStats,
    /// The image encoder (the model).
    pub encode: LatencyStats,
    /// From the frame's arrival to its events being handed to the MQTT
    /// client.
    pub frame_to_publish: LatencyStats,
    /// Scoring the embedding against the labels.
    #[serde(rename = "match")]
    pub matching: LatencyStats,
    /// Resizing and normalizing to the model's input.
    pub preprocess: LatencyStats,
}

/// One stage's latencies over a stats interval, in milliseconds with 2
/// decimals; all 0 when no frame was inferred.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Frames measured.
    pub count: u64,
    /// The slowest.
    pub max_ms: f64,
    /// The median (nearest rank).
    pub p50_ms: f64,
    /// The 99th percentile (nearest rank).
    pub p99_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text<T: Serialize>(payload: &T) -> String {
        String::from_utf8(to_json(payload)).unwrap()
    }

    #[test]
    fn text_payloads() {
        assert_eq!(
            (Availability::Online.payload(), Availability::Offline.payload()),
            (&b"online"[..], &b"offline"[..])
        );
        assert_eq!((Switch::On.payload(), Switch::Off.payload()), (&b"ON"[..], &b"OFF"[..]));
        assert_eq!((Switch::from(true), Switch::from(false)), (Switch::On, Switch::Off));
        assert_eq!((text(&Availability::Offline), text(&Switch::On)), ("\"offline\"".into(), "\"ON\"".into()));
    }

    #[test]
    fn the_enabled_command_accepts_on_off_true_false_1_0_in_any_case() {
        for on in ["ON", "on", " True\n", "1"] {
            assert_eq!(Switch::from_command(on), Some(Switch::On), "{on:?}");
        }
        for off in ["OFF", "Off", "false", "0 "] {
            assert_eq!(Switch::from_command(off), Some(Switch::Off), "{off:?}");
        }
        for neither in ["", "yes", "2", "enable"] {
            assert_eq!(Switch::from_command(neither), None, "{neither:?}");
        }
    }

    #[test]
    fn end_reasons_have_their_wire_names() {
        for r in [EndReason::Gone, EndReason::MaxDuration, EndReason::LabelRemoved, EndReason::Stopped] {
            let r = EventEndReason::from(r);
            assert_eq!(text(&r), format!("\"{}\"", r.as_str()));
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_milliseconds() {
        let t = Timestamp(SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456));
        assert_eq!(text(&t), "\"2023-11-14T22:13:20.123Z\"");
    }

    fn latency(count: u64) -> LatencyStats {
        LatencyStats { count, max_ms: 12.5, p50_ms: 10.25, p99_ms: 12.0 }
    }

    #[test]
    fn a_stats_message_serializes_with_its_keys_in_order() {
        let camera = CameraStats {
            active: vec!["red-circle".into()],
            enabled: true,
            fps: FrameRates { captured: 10.0, inferred: 9.5 },
            frames: FrameCounts {
                captured: 1,
                corrupt: 2,
                disabled_skipped: 3,
                dropped: 4,
                inferred: 5,
                input_skipped: 6,
                motion_skipped: 7,
                rate_skipped: 8,
                source_errors: 9,
            },
            gpio: Some(GpioStats {
                input: Some(GpioInputStats { errors: 0, line: "line 4 of /dev/gpiochip0".into() }),
                outputs: vec![GpioOutputStats { active: true, errors: 1, line: "line 17 of /dev/gpiochip0".into() }],
            }),
            labels: 17,
            labels_from: "'/etc/edgeclip/labels.txt'".into(),
            latency: StageLatencies {
                decode: latency(1),
                encode: latency(2),
                frame_to_publish: latency(3),
                matching: latency(4),
                preprocess: latency(5),
            },
            running: true,
            source: "/dev/video0".into(),
        };
        let stats = Stats {
            cameras: BTreeMap::from([("front".to_string(), camera.clone())]),
            interval_s: 60.0,
            model: "tiny-shapes".into(),
            mqtt: MqttClientStats {
                commands_accepted: 2,
                commands_refused: 1,
                connected: true,
                last_error: None,
                overflowed: 0,
                published: 42,
                queued: 1,
                reconnects: 0,
            },
            node: "garage".into(),
            store: Some(StoreStats {
                bytes: 4096,
                dropped: 0,
                errors: 1,
                events_stored: 12,
                keyframes_stored: 3,
                removed: 2,
                searches: 5,
                undelivered: 4,
            }),
            time: Timestamp(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            uptime_s: 3600,
            version: "0.1.0".into(),
        };
        let l = |n: u64| format!(r#"{{"count":{n},"max_ms":12.5,"p50_ms":10.25,"p99_ms":12.0}}"#);
        let expected = format!(
            concat!(
                r#"{{"cameras":{{"front":{{"active":["red-circle"],"enabled":true,"#,
                r#""fps":{{"captured":10.0,"inferred":9.5}},"#,
                r#""frames":{{"captured":1,"corrupt":2,"disabled_skipped":3,"dropped":4,"inferred":5,"#,
                r#""input_skipped":6,"motion_skipped":7,"rate_skipped":8,"source_errors":9}},"#,
                r#""gpio":{{"input":{{"errors":0,"line":"line 4 of /dev/gpiochip0"}},"#,
                r#""outputs":[{{"active":true,"errors":1,"line":"line 17 of /dev/gpiochip0"}}]}},"#,
                r#""labels":17,"labels_from":"'/etc/edgeclip/labels.txt'","#,
                r#""latency":{{"decode":{},"encode":{},"frame_to_publish":{},"match":{},"preprocess":{}}},"#,
                r#""running":true,"source":"/dev/video0"}}}},"#,
                r#""interval_s":60.0,"model":"tiny-shapes","#,
                r#""mqtt":{{"commands_accepted":2,"commands_refused":1,"connected":true,"last_error":null,"overflowed":0,"published":42,"queued":1,"reconnects":0}},"#,
                r#""node":"garage","store":{{"bytes":4096,"dropped":0,"errors":1,"events_stored":12,"keyframes_stored":3,"removed":2,"searches":5,"undelivered":4}},"#,
                r#""time":"2023-11-14T22:13:20.123Z","uptime_s":3600,"version":"0.1.0"}}"#
            ),
            l(1),
            l(2),
            l(3),
            l(4),
            l(5)
        );
        assert_eq!(text(&stats), expected);

        // Without GPIO lines there is no `gpio` key; without an input, it is null.
        let bare = CameraStats { gpio: None, ..camera.clone() };
        assert!(!text(&bare).contains("gpio"));
        let no_input = CameraStats { gpio: Some(GpioStats { input: None, outputs: Vec::new() }), ..camera };
        assert!(text(&no_input).contains(r#""gpio":{"input":null,"outputs":[]}"#));
    }
}
