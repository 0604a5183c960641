//! What the daemon says over MQTT, sent from one place: events, label
//! states and snapshots, the camera's enabled state, Home Assistant
//! discovery as labels come and go, and the stats message (built by
//! [`crate::daemon::stats`]). The payloads are the types of [`super::payloads`];
//! the MQTT client ([`super::mqtt`]) queues and delivers; this module
//! decides what to send, when, and on which topic.
//!
//! Retained topics (states, snapshots, discovery, enabled) are what a
//! subscriber that connects later sees, so a removed label's retained
//! topics are cleared with empty retained messages, which is also how Home
//! Assistant is told to delete its entity.

use std::io::Write;
use std::time::{Duration, SystemTime};

use super::discovery::Discovery;
use super::mqtt::{Message, MqttClient};
use super::payloads::{
    to_json, EventEndReason, EventPayload, ExampleResultPayload, ScoresPayload, Stats, Switch, Timestamp, CLEARED,
};
use super::topics::Topics;
use crate::pipeline::detect::{EndReason, Event, EventKind};

pub struct Publisher {
    pub topics: Topics,
    pub discovery: Option<Discovery>,
    node: String,
    model: String,
    /// Where `print_events` lines go (stdout), if anywhere.
    print: Option<Box<dyn Write + Send>>,
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

    /// The payload of one event on `<camera>/events`; `id`: its id in the
    /// store.
    pub fn event_payload(&self, camera: &str, e: &Event, frame_time: SystemTime, id: Option<i64>) -> EventPayload {
        EventPayload {
            id,
            camera: camera.to_string(),
            duration_s: secs(e.duration),
            frame: e.frame,
            frame_time: Timestamp(frame_time),
            label: e.label.clone(),
            model: self.model.clone(),
            node: self.node.clone(),
            peak: score(e.peak),
            reason: match e.kind {
                EventKind::Start => None,
                EventKind::End => e.reason.map(EventEndReason::from),
            },
            score: score(e.score),
            snapshot_topic: match e.kind {
                EventKind::Start => Some(self.topics.snapshot(camera, e.zone.as_deref(), &e.label)),
                EventKind::End => None,
            },
            start_frame: e.start_frame,
            start_time: Timestamp(e.started),
            kind: e.kind.into(),
            zone: e.zone.clone(),
        }
    }

    /// The event message of one event: its topic and JSON.
    pub fn event_message(&self, camera: &str, e: &Event, frame_time: SystemTime, id: Option<i64>) -> (String, Vec<u8>) {
        (self.topics.events(camera), to_json(&self.event_payload(camera, e, frame_time, id)))
    }

    /// The event message for a daemon without a store: published from memory.
    pub fn unstored_event(&self, camera: &str, e: &Event, frame_time: SystemTime) -> Message {
        let (topic, json) = self.event_message(camera, e, frame_time, None);
        Message::event(topic, json)
    }

    /// One event: its message (QoS 1, in order; `None` when it waits in the
    /// store's outbox behind older ones), the label's retained state, and
    /// for a start the snapshot (retained, so the last one is always there
    /// to look at).
    pub fn event(
        &mut self,
        mqtt: &MqttClient,
        camera: &str,
        e: &Event,
        snapshot: Option<&[u8]>,
        frame_time: SystemTime,
        message: Option<Message>,
    ) {
        let zone = e.zone.as_deref();
        if e.kind == EventKind::Start {
            if let Some(jpeg) = snapshot {
                mqtt.publish(Message::retained(self.topics.snapshot(camera, zone, &e.label), jpeg.to_vec()));
            }
        }
        if let Some(message) = message {
            mqtt.publish(message);
        }
        // A removed label's retained state was cleared when its label set
        // changed (`labels_changed`); its ending event must not bring an
        // OFF back.
        let state: &[u8] = match (e.kind, e.reason) {
            (EventKind::Start, _) => Switch::On.payload(),
            (EventKind::End, Some(EndReason::LabelRemoved)) => CLEARED,
            (EventKind::End, _) => Switch::Off.payload(),
        };
        mqtt.publish(Message::retained(self.topics.state(camera, zone, &e.label), state.to_vec()));
        if let Some(out) = &mut self.print {
            // `camera/zone` for a zone's event.
            let place = match zone {
                Some(zone) => format!("{camera}/{zone}"),
                None => camera.to_string(),
            };
            let line = match e.kind {
                EventKind::Start => format!(
                    "{} {place} start {} score {:.3} frame {}",
                    Timestamp(frame_time),
                    e.label,
                    e.score,
                    e.frame
                ),
                EventKind::End => format!(
                    "{} {place} end   {} after {:.1} s (frames {}-{}, peak {:.3}, {})",
                    Timestamp(frame_time),
                    e.label,
                    e.duration.as_secs_f64(),
                    e.start_frame,
                    e.frame,
                    e.peak,
                    e.reason.map(|r| EventEndReason::from(r).as_str()).unwrap_or("")
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
        zone: Option<&str>,
        old: impl Iterator<Item = &'a str>,
        new: &[&str],
    ) {
        for removed in old.filter(|o| !new.contains(o)) {
            mqtt.publish(Message::retained(self.topics.state(camera, zone, removed), CLEARED.to_vec()));
            mqtt.publish(Message::retained(self.topics.snapshot(camera, zone, removed), CLEARED.to_vec()));
            if let Some(d) = &self.discovery {
                mqtt.publish(Message::retained(d.config_topic(camera, zone, removed), CLEARED.to_vec()));
                if d.score_sensors {
                    mqtt.publish(Message::retained(d.score_config_topic(camera, zone, removed), CLEARED.to_vec()));
                }
            }
        }
        self.discovery_for(mqtt, camera, zone, new.iter().copied());
    }

    /// Discovery configs of `labels` (Home Assistant restarted, or they are
    /// new).
    pub fn discovery_for<'a>(
        &self,
        mqtt: &MqttClient,
        camera: &str,
        zone: Option<&str>,
        labels: impl Iterator<Item = &'a str>,
    ) {
        let Some(d) = &self.discovery else { return };
        for label in labels {
            let config = to_json(&d.binary_sensor(camera, zone, label));
            mqtt.publish(Message::retained(d.config_topic(camera, zone, label), config));
            if d.score_sensors {
                let config = to_json(&d.score_sensor(camera, zone, label));
                mqtt.publish(Message::retained(d.score_config_topic(camera, zone, label), config));
            }
        }
    }

    /// `OFF` for every label of a camera (at start: nothing is active yet,
    /// whatever a previous run left retained).
    pub fn all_off<'a>(
        &self,
        mqtt: &MqttClient,
        camera: &str,
        zone: Option<&str>,
        labels: impl Iterator<Item = &'a str>,
    ) {
        for label in labels {
            mqtt.publish(Message::retained(self.topics.state(camera, zone, label), Switch::Off.payload().to_vec()));
        }
    }

    /// The camera's enabled state (retained).
    pub fn enabled(&self, mqtt: &MqttClient, camera: &str, enabled: bool) {
        mqtt.publish(Message::retained(self.topics.enabled(camera), Switch::from(enabled).payload().to_vec()));
    }

    /// A camera's live scores: QoS 0, not retained, only the newest kept
    /// while the broker is away (the next one replaces a lost one).
    pub fn scores(&self, mqtt: &MqttClient, scores: &ScoresPayload) {
        mqtt.publish(Message::latest(self.topics.scores(&scores.camera, scores.zone.as_deref()), to_json(scores)));
    }

    /// What an `example/set` command did (QoS 1, not retained).
    pub fn example_result(&self, mqtt: &MqttClient, result: &ExampleResultPayload) {
        mqtt.publish(Message::event(self.topics.example_result(&result.camera), to_json(result)));
    }

    /// The stats message (QoS 0, only the newest kept while waiting).
    pub fn stats(&self, mqtt: &MqttClient, stats: &Stats) {
        mqtt.publish(Message::latest(self.topics.stats(), to_json(stats)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The event's payload as a consumer parses it.
    fn event_json(p: &Publisher, camera: &str, e: &Event, frame_time: SystemTime) -> Value {
        serde_json::from_slice(&to_json(&p.event_payload(camera, e, frame_time, None))).unwrap()
    }

    fn start_and_end() -> (Event, Event) {
        let started = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let start = Event {
            kind: EventKind::Start,
            zone: None,
            label: "delivery van".into(),
            score: 0.912_34,
            peak: 0.912_34,
            start_frame: 41,
            started,
            frame: 41,
            duration: Duration::ZERO,
            reason: None,
        };
        let end = Event {
            kind: EventKind::End,
            frame: 70,
            duration: Duration::from_millis(2900),
            reason: Some(EndReason::Gone),
            score: 0.1,
            ..start.clone()
        };
        (start, end)
    }

    #[test]
    fn event_json_carries_what_a_consumer_needs() {
        let p = Publisher::new(Topics::new("edgeclip", "garage"), None, "garage", "tiny-shapes", None);
        let (start, end) = start_and_end();
        let started = start.started;
        let j = event_json(&p, "front", &start, started);
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
        let j = event_json(&p, "front", &end, started + Duration::from_millis(2900));
        assert_eq!((j["type"].as_str(), j["reason"].as_str()), (Some("end"), Some("gone")));
        assert_eq!(
            (j["frame"].as_u64(), j["start_frame"].as_u64(), j["duration_s"].as_f64()),
            (Some(70), Some(41), Some(2.9))
        );
        assert!(j.get("snapshot_topic").is_none());
    }

    #[test]
    fn events_serialize_exactly() {
        let p = Publisher::new(Topics::new("edgeclip", "garage"), None, "garage", "tiny-shapes", None);
        let (start, end) = start_and_end();
        let text =
            |e: &Event, t: SystemTime| String::from_utf8(to_json(&p.event_payload("front", e, t, Some(7)))).unwrap();
        assert_eq!(
            text(&start, start.started),
            concat!(
                r#"{"camera":"front","duration_s":0.0,"frame":41,"frame_time":"2023-11-14T22:13:20.123Z","id":7,"#,
                r#""label":"delivery van","model":"tiny-shapes","node":"garage","peak":0.9123,"score":0.9123,"#,
                r#""snapshot_topic":"edgeclip/garage/front/delivery van/snapshot","start_frame":41,"#,
                r#""start_time":"2023-11-14T22:13:20.123Z","type":"start","zone":null}"#
            )
        );
        assert_eq!(
            text(&end, start.started + Duration::from_millis(2900)),
            concat!(
                r#"{"camera":"front","duration_s":2.9,"frame":70,"frame_time":"2023-11-14T22:13:23.023Z","id":7,"#,
                r#""label":"delivery van","model":"tiny-shapes","node":"garage","peak":0.9123,"reason":"gone","#,
                r#""score":0.1,"start_frame":41,"start_time":"2023-11-14T22:13:20.123Z","type":"end","zone":null}"#
            )
        );
    }
}
