//! What the daemon says over MQTT, built in one place: event JSON, label
//! states and snapshots, the camera's enabled state, Home Assistant
//! discovery as labels come and go, and the stats message. The MQTT client
//! (`publish::mqtt`) queues and delivers; this module only decides what to
//! send.
//!
//! Retained topics (states, snapshots, discovery, enabled) are what a
//! subscriber that connects later sees, so a removed label's retained
//! topics are cleared with empty retained messages, which is also how Home
//! Assistant is told to delete its entity.

use std::io::Write;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::pipeline::detect::{EndReason, Event, EventKind};
use crate::publish::discovery::Discovery;
use crate::publish::mqtt::{Message, MqttClient};
use crate::publish::topics::Topics;

pub struct Publisher {
    pub topics: Topics,
    pub discovery: Option<Discovery>,
    node: String,
    model: String,
    /// Where `print_events` lines go (stdout), if anywhere.
    print: Option<Box<dyn Write + Send>>,
}

/// RFC 3339 in UTC with milliseconds, as Home Assistant and people read it.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn reason_name(r: EndReason) -> &'static str {
    match r {
        EndReason::Gone => "gone",
        EndReason::MaxDuration => "max_duration",
        EndReason::LabelRemoved => "label_removed",
        EndReason::Stopped => "stopped",
    }
}

/// Seconds with millisecond resolution, for JSON.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Scores with 4 decimals: enough to compare with a threshold.
fn score(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

impl Publisher {
    pub fn new(
        topics: Topics,
        discovery: Option<Discovery>,
        node: &str,
        model: &str,
        print: Option<Box<dyn Write + Send>>,
    ) -> Publisher {
        Publisher { topics, discovery, node: node.to_string(), model: model.to_string(), print }
    }

    /// The JSON of one event on `<camera>/events`.
    pub fn event_json(&self, camera: &str, e: &Event, frame_time: SystemTime) -> Value {
        let mut v = json!({
            "type": match e.kind { EventKind::Start => "start", EventKind::End => "end" },
            "node": self.node,
            "camera": camera,
            "label": e.label,
            "score": score(e.score),
            "peak": score(e.peak),
            "start_time": rfc3339(e.started),
            "duration_s": secs(e.duration),
            "frame": e.frame,
            "start_frame": e.start_frame,
            "frame_time": rfc3339(frame_time),
            "model": self.model,
        });
        match e.kind {
            EventKind::Start => v["snapshot_topic"] = json!(self.topics.snapshot(camera, &e.label)),
            EventKind::End => v["reason"] = json!(e.reason.map(reason_name)),
        }
        v
    }

    /// One event: its JSON (QoS 1, in order), the label's retained state,
    /// and for a start the snapshot (retained, so the last one is always
    /// there to look at).
    pub fn event(
        &mut self,
        mqtt: &MqttClient,
        camera: &str,
        e: &Event,
        snapshot: Option<&[u8]>,
        frame_time: SystemTime,
    ) {
        let json = self.event_json(camera, e, frame_time);
        if e.kind == EventKind::Start {
            if let Some(jpeg) = snapshot {
                mqtt.publish(Message::retained(self.topics.snapshot(camera, &e.label), jpeg.to_vec()));
            }
        }
        mqtt.publish(Message::event(self.topics.events(camera), json.to_string().into_bytes()));
        // A removed label's retained state was cleared when its label set
        // changed (`labels_changed`); its ending event must not bring an
        // OFF back.
        let state: &[u8] = match (e.kind, e.reason) {
            (EventKind::Start, _) => b"ON",
            (EventKind::End, Some(EndReason::LabelRemoved)) => b"",
            (EventKind::End, _) => b"OFF",
        };
        mqtt.publish(Message::retained(self.topics.state(camera, &e.label), state.to_vec()));
        if let Some(out) = &mut self.print {
            let line = match e.kind {
                EventKind::Start => {
                    format!("{} {camera} start {} score {:.3} frame {}", rfc3339(frame_time), e.label, e.score, e.frame)
                }
                EventKind::End => format!(
                    "{} {camera} end   {} after {:.1} s (frames {}-{}, peak {:.3}, {})",
                    rfc3339(frame_time),
                    e.label,
                    e.duration.as_secs_f64(),
                    e.start_frame,
                    e.frame,
                    e.peak,
                    e.reason.map(reason_name).unwrap_or("")
                ),
            };
            // Stdout closed (piped into `head`) is not a reason to stop.
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    }

    /// A camera's label set at start or after a change: discovery for each
    /// label that can fire, `OFF` for the new ones (an event turns it on),
    /// and for labels no longer there, their retained state, snapshot and
    /// discovery config cleared.
    pub fn labels_changed<'a>(
        &self,
        mqtt: &MqttClient,
        camera: &str,
        old: impl Iterator<Item = &'a str>,
        new: &[&str],
    ) {
        for removed in old.filter(|o| !new.contains(o)) {
            mqtt.publish(Message::retained(self.topics.state(camera, removed), Vec::new()));
            mqtt.publish(Message::retained(self.topics.snapshot(camera, removed), Vec::new()));
            if let Some(d) = &self.discovery {
                mqtt.publish(Message::retained(d.config_topic(camera, removed), Vec::new()));
            }
        }
        self.discovery_for(mqtt, camera, new.iter().copied());
    }

    /// Discovery configs of `labels` (Home Assistant restarted, or they are
    /// new).
    pub fn discovery_for<'a>(&self, mqtt: &MqttClient, camera: &str, labels: impl Iterator<Item = &'a str>) {
        let Some(d) = &self.discovery else { return };
        for label in labels {
            mqtt.publish(Message::retained(
                d.config_topic(camera, label),
                d.binary_sensor(camera, label).to_string().into_bytes(),
            ));
        }
    }

    /// `OFF` for every label of a camera (at start: nothing is active yet,
    /// whatever a previous run left retained).
    pub fn all_off<'a>(&self, mqtt: &MqttClient, camera: &str, labels: impl Iterator<Item = &'a str>) {
        for label in labels {
            mqtt.publish(Message::retained(self.topics.state(camera, label), b"OFF".to_vec()));
        }
    }

    pub fn enabled(&self, mqtt: &MqttClient, camera: &str, enabled: bool) {
        let payload = if enabled { "ON" } else { "OFF" };
        mqtt.publish(Message::retained(self.topics.enabled(camera), payload.into()));
    }

    pub fn stats(&self, mqtt: &MqttClient, stats: &Value) {
        mqtt.publish(Message::latest(self.topics.stats(), stats.to_string().into_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_carries_what_a_consumer_needs() {
        let p = Publisher::new(Topics::new("edgeclip", "garage"), None, "garage", "tiny-shapes", None);
        let started = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let start = Event {
            kind: EventKind::Start,
            label: "delivery van".into(),
            score: 0.912_34,
            peak: 0.912_34,
            start_frame: 41,
            started,
            frame: 41,
            duration: Duration::ZERO,
            reason: None,
        };
        let j = p.event_json("front", &start, started);
        assert_eq!(j["type"], "start");
        assert_eq!(
            (j["node"].as_str(), j["camera"].as_str(), j["label"].as_str()),
            (Some("garage"), Some("front"), Some("delivery van"))
        );
        assert_eq!(j["score"], 0.9123);
        assert_eq!(j["start_time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(j["snapshot_topic"], "edgeclip/garage/front/delivery van/snapshot");
        assert_eq!(j["model"], "tiny-shapes");
        assert!(j.get("reason").is_none());
        let end = Event {
            kind: EventKind::End,
            frame: 70,
            duration: Duration::from_millis(2900),
            reason: Some(EndReason::Gone),
            score: 0.1,
            ..start
        };
        let j = p.event_json("front", &end, started + Duration::from_millis(2900));
        assert_eq!((j["type"].as_str(), j["reason"].as_str()), (Some("end"), Some("gone")));
        assert_eq!(
            (j["frame"].as_u64(), j["start_frame"].as_u64(), j["duration_s"].as_f64()),
            (Some(70), Some(41), Some(2.9))
        );
        assert!(j.get("snapshot_topic").is_none());
    }
}
