//! Home Assistant MQTT discovery: the config messages that make Home
//! Assistant create a device for this node and one binary sensor per camera
//! and label, without any YAML.
//!
//! Each sensor's config is published retained to
//! `<discovery_prefix>/binary_sensor/<node>/<camera>_<label slug>/config`;
//! an empty retained message there deletes the entity (a label removed from
//! the labels file). Home Assistant announces its own restarts on
//! `<discovery_prefix>/status` (`online`), after which the configs are
//! published again. The payload carries what Home Assistant requires for a
//! discovered entity to work and survive restarts: a `unique_id`, the
//! `device` it belongs to, the `state_topic` with its `payload_on` and
//! `payload_off`, and the availability topic with its payloads.

use serde_json::{json, Value};

use super::topics::{slug, Topics};

/// The version Home Assistant shows for the device.
const SW_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Discovery for one node.
#[derive(Debug, Clone)]
pub struct Discovery {
    prefix: String,
    node: String,
    /// The model bundle's name, shown as the device's model.
    model: String,
    topics: Topics,
}

impl Discovery {
    pub fn new(discovery_prefix: &str, node: &str, model: &str, topics: Topics) -> Discovery {
        Discovery { prefix: discovery_prefix.to_string(), node: node.to_string(), model: model.to_string(), topics }
    }

    /// Where Home Assistant says it (re)started.
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// The config topic of a camera's label.
    pub fn config_topic(&self, camera: &str, label: &str) -> String {
        format!("{}/binary_sensor/{}/{}_{}/config", self.prefix, slug(&self.node), slug(camera), slug(label))
    }

    fn device(&self) -> Value {
        json!({
            "identifiers": [format!("edgeclip_{}", slug(&self.node))],
            "name": format!("edgeclip {}", self.node),
            "manufacturer": "edgeclip",
            "model": self.model,
            "sw_version": SW_VERSION,
        })
    }

    /// The config payload of a camera's label sensor.
    pub fn binary_sensor(&self, camera: &str, label: &str) -> Value {
        let id = format!("edgeclip_{}_{}_{}", slug(&self.node), slug(camera), slug(label));
        json!({
            "name": format!("{camera} {label}"),
            "unique_id": id,
            "state_topic": self.topics.state(camera, label),
            "payload_on": "ON",
            "payload_off": "OFF",
            "availability_topic": self.topics.availability(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 1,
            "device": self.device(),
            "origin": { "name": "edgeclip", "sw_version": SW_VERSION },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_sensor_has_what_home_assistant_requires() {
        let d = Discovery::new("homeassistant", "garage", "tiny-shapes", Topics::new("edgeclip", "garage"));
        assert_eq!(
            d.config_topic("front", "Delivery van"),
            "homeassistant/binary_sensor/garage/front_delivery_van/config"
        );
        let c = d.binary_sensor("front", "Delivery van");
        assert_eq!(c["unique_id"], "edgeclip_garage_front_delivery_van");
        assert_eq!(c["state_topic"], "edgeclip/garage/front/Delivery van/state");
        assert_eq!((c["payload_on"].as_str(), c["payload_off"].as_str()), (Some("ON"), Some("OFF")));
        assert_eq!(c["availability_topic"], "edgeclip/garage/availability");
        assert_eq!(c["device"]["identifiers"][0], "edgeclip_garage");
        assert_eq!(c["device"]["name"], "edgeclip garage");
        assert_eq!(d.status_topic(), "homeassistant/status");
    }
}
