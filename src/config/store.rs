//! `[store]`: the event history on the board's disk (src/store/): where it
//! lives, how much of it is kept, what it holds, and whether the broker may
//! search it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{key, ConfigError, Ctx, Key, Number};

const TABLE: &str = "store";

/// Keep a history of events on disk. With it, an event is written to the
/// store before it is published and stays there until the broker has it,
/// so a crash or a power cut while the broker is away loses nothing, and
/// `edgeclip search` can find it later. Without it, events wait in memory
/// (`mqtt.offline_queue`) and nothing can be searched.
const ENABLED: Key<bool> = Key { name: "enabled", default: true };
/// The SQLite file, in the service's state directory (systemd makes
/// /var/lib/edgeclip for it). SQLite adds `-wal` and `-shm` files beside it.
const PATH: Key<&str> = Key { name: "path", default: "/var/lib/edgeclip/history.db" };
/// The most the file may hold, in MB: beyond it the oldest events and
/// keyframes are removed (and the file given back to the filesystem). 1 GB
/// is about 20 000 events with 50 KB snapshots, weeks of a busy camera, and
/// a small part of the smallest SD card a board boots from; 1 MB is the
/// least in which a few events fit.
const MAX_SIZE_MB: Number<i64> = Number { name: "max_size_mb", default: 1024, range: 1..=1_000_000 };
/// Events and keyframes older than this many days are removed (0: kept
/// until the size limit removes them). A month answers "when was the van
/// here last week?" and is a common retention for home cameras.
const MAX_AGE_DAYS: Number<f64> = Number { name: "max_age_days", default: 30.0, range: 0.0..=36_500.0 };
/// Keep each event's snapshot (the frame as a JPEG) in the store. These are
/// pictures of whatever the camera sees, people included; off, the store
/// keeps the events, their times and the frames' embeddings (which search
/// still ranks), but no picture.
const SNAPSHOTS: Key<bool> = Key { name: "snapshots", default: true };
/// Minutes between keyframes per camera zone: an inferred frame's
/// embedding (and snapshot, if `snapshots`) stored even when nothing
/// happens, so that a search can find moments without an event (0: none).
/// Every 10 minutes is 144 a day per zone, under 8 MB a day with snapshots.
const KEYFRAME_INTERVAL_MIN: Number<f64> = Number { name: "keyframe_interval_min", default: 10.0, range: 0.0..=1440.0 };
/// Answer searches sent over MQTT (`<prefix>/search` and
/// `<prefix>/<node>/search`; docs/mqtt.md). A search changes nothing, but
/// tells whoever may publish to those topics when what was seen; off, the
/// history is searched on the board only (`edgeclip search --config`).
const MQTT_SEARCH: Key<bool> = Key { name: "mqtt_search", default: true };

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    enabled: Option<bool>,
    path: Option<Spanned<String>>,
    max_size_mb: Option<Spanned<i64>>,
    max_age_days: Option<Spanned<f64>>,
    snapshots: Option<bool>,
    keyframe_interval_min: Option<Spanned<f64>>,
    mqtt_search: Option<bool>,
}

/// The `[store]` table, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub enabled: bool,
    pub path: PathBuf,
    pub max_bytes: u64,
    /// `None`: no age limit.
    pub max_age: Option<Duration>,
    pub snapshots: bool,
    /// `None`: no keyframes.
    pub keyframe_interval: Option<Duration>,
    pub mqtt_search: bool,
}

pub(super) fn parse(cx: &Ctx<'_>, raw: Option<&RawStore>) -> Result<StoreConfig, ConfigError> {
    let none = RawStore::default();
    let raw = raw.unwrap_or(&none);
    let path = match &raw.path {
        Some(p) => cx.path_value(&key(TABLE, PATH.name), p)?,
        None => PathBuf::from(PATH.default),
    };
    let days = MAX_AGE_DAYS.read(cx, TABLE, raw.max_age_days.as_ref())?;
    let minutes = KEYFRAME_INTERVAL_MIN.read(cx, TABLE, raw.keyframe_interval_min.as_ref())?;
    Ok(StoreConfig {
        enabled: raw.enabled.unwrap_or(ENABLED.default),
        path,
        max_bytes: MAX_SIZE_MB.read(cx, TABLE, raw.max_size_mb.as_ref())? as u64 * 1_000_000,
        max_age: (days > 0.0).then(|| Duration::from_secs_f64(days * 86_400.0)),
        snapshots: raw.snapshots.unwrap_or(SNAPSHOTS.default),
        keyframe_interval: (minutes > 0.0).then(|| Duration::from_secs_f64(minutes * 60.0)),
        mqtt_search: raw.mqtt_search.unwrap_or(MQTT_SEARCH.default),
    })
}
