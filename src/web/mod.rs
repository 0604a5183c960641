//! The page the daemon serves (`[web]`): what the camera sees and what the
//! model scores, live; the scores over time; the event history with its
//! snapshots and search; the labels file, edited with the daemon's own
//! validation and scored on the current frame before it is saved;
//! calibration on the last minutes; and the daemon's health.
//!
//! - [`server`]: the HTTP server (axum) on a thread of its own, with the
//!   guard every request passes ([`auth`]: login, sessions, cross-site
//!   writes, rate limits);
//! - [`api`]: the JSON the page reads and the changes it asks for;
//! - [`assets`]: the page itself (HTML, JavaScript, CSS), embedded in the
//!   binary, so that it works offline and loads nothing from elsewhere;
//! - [`password`]: the password's Argon2 hash (in every build, so that the
//!   configuration is checked the same everywhere).
//!
//! Every change the page makes goes through a way in that exists without
//! it: switching a camera and saving an example frame are the MQTT
//! commands, carried out by the daemon's main loop ([`WebCommand`]); saving
//! labels or thresholds writes the labels file, as an editor or
//! `edgeclip calibrate --write` would, and the daemon's file watch loads it.

pub mod password;

#[cfg(feature = "web")]
pub mod api;
#[cfg(feature = "web")]
pub mod assets;
#[cfg(feature = "web")]
pub mod auth;
#[cfg(feature = "web")]
pub mod server;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Mutex;
use std::time::SystemTime;

/// What the page asks of the daemon's main loop, each with where the answer
/// goes.
pub enum WebCommand {
    /// As `enabled/set`.
    Enable { camera: String, enabled: bool, reply: Sender<Result<(), String>> },
    /// As `example/set`: the camera's next frame saved as an example image
    /// of `label`; the answer is the file written and how many the label's
    /// folder holds.
    Example { camera: String, zone: Option<String>, label: String, reply: Sender<Result<(PathBuf, usize), String>> },
    /// An example image was added to a folder of `labels_file`: load the
    /// zones that read it again.
    Reload { camera: String, labels_file: PathBuf },
}

/// The most recent events the page keeps in memory, for the live page and
/// the chart's shading without a store: a busy camera's hour.
pub const RECENT_EVENTS: usize = 1000;

/// An event as the page shows it while it happens.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecentEvent {
    pub camera: String,
    pub zone: Option<String>,
    pub label: String,
    /// Milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// `None` while it lasts.
    pub end_ms: Option<i64>,
    pub peak: f32,
}

/// What the daemon's main loop tells the page: its stats (as the MQTT
/// stats message, made every few seconds while the page is on) and the
/// recent events.
#[derive(Default)]
pub struct DaemonView {
    inner: Mutex<ViewInner>,
}

#[derive(Default)]
struct ViewInner {
    stats: Option<serde_json::Value>,
    events: VecDeque<RecentEvent>,
}

impl DaemonView {
    pub fn set_stats(&self, stats: serde_json::Value) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).stats = Some(stats);
    }

    pub fn stats(&self) -> Option<serde_json::Value> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).stats.clone()
    }

    /// Notes an event's start or end.
    pub fn event(&self, camera: &str, e: &crate::pipeline::detect::Event, at: SystemTime) {
        use crate::pipeline::detect::EventKind;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let start_ms = crate::store::millis(e.started);
        match e.kind {
            EventKind::Start => {
                if inner.events.len() >= RECENT_EVENTS {
                    inner.events.pop_front();
                }
                inner.events.push_back(RecentEvent {
                    camera: camera.to_string(),
                    zone: e.zone.clone(),
                    label: e.label.clone(),
                    start_ms,
                    end_ms: None,
                    peak: e.peak,
                });
            }
            EventKind::End => {
                let found = inner
                    .events
                    .iter_mut()
                    .rev()
                    .find(|r| r.end_ms.is_none() && r.camera == camera && r.zone == e.zone && r.label == e.label);
                if let Some(r) = found {
                    r.end_ms = Some(crate::store::millis(at).max(start_ms));
                    r.peak = e.peak;
                }
            }
        }
    }

    /// The recent events of `camera` that were active at or after `since_ms`.
    pub fn events_since(&self, camera: &str, since_ms: i64) -> Vec<RecentEvent> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .events
            .iter()
            .filter(|r| r.camera == camera && r.end_ms.is_none_or(|end| end >= since_ms))
            .cloned()
            .collect()
    }
}
