//! Home Assistant MQTT discovery: the config messages that make Home
//! Assistant create a device for this node and one binary sensor per camera
//! and label, without any YAML; with `homeassistant.score_sensors`, also a
//! sensor per camera and label with the label's live score.
//!
//! Each sensor's config is published retained to
//! `<discovery_prefix>/binary_sensor/<node>/<camera>_<label slug>/config`;
//! an empty retained message there deletes the entity (a label removed from
//! the labels file). Home Assistant announces its own restarts on
//! `<discovery_prefix>/status` (`online`), after which the configs are
//! published again. The payload carries what Home Assistant requires for a
//! discovered entity to work and survive restarts: a `unique_id`, the
//! `device` it belongs to, the `state_topic` with its `payload_on` and
//! `payload_off`, and the availability topic with its payloads
//! ([`DiscoveryConfig`]).

use super::payloads::{
    Availability, DiscoveryConfig, DiscoveryDevice, DiscoveryEntity, DiscoveryOrigin, ScoreSensorConfig, Switch,
};
use super::topics::{slug, Topics};

/// The version Home Assistant shows for the device.
const SW_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Discovery for one node.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Also a score sensor per label (`homeassistant.score_sensors`).
    pub score_sensors: bool,
    prefix: String,
    node: String,
    /// The model bundle's name, shown as the device's model.
    model: String,
    topics: Topics,
}

impl Discovery {
    pub fn new(discovery_prefix: &str, node: &str, model: &str, topics: Topics) -> Discovery {
        Discovery {
            score_sensors: false,
            prefix: discovery_prefix.to_string(),
            node: node.to_string(),
            model: model.to_string(),
            topics,
        }
    }

    /// Where Home Assistant says it (re)started.
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// `<camera>_<label>` or `<camera>_<zone>_<label>`, slugs: a label's part
    /// of ids and topics.
    fn object(camera: &str, zone: Option<&str>, label: &str) -> String {
        match zone {
            Some(zone) => format!("{}_{}_{}", slug(camera), slug(zone), slug(label)),
            None => format!("{}_{}", slug(camera), slug(label)),
        }
    }

    /// `<camera> <label>` or `<camera> <zone> <label>`: a label's entity name.
    fn entity_name(camera: &str, zone: Option<&str>, label: &str) -> String {
        match zone {
            Some(zone) => format!("{camera} {zone} {label}"),
            None => format!("{camera} {label}"),
        }
    }

    /// The config topic of a camera's (or zone's) label.
    pub fn config_topic(&self, camera: &str, zone: Option<&str>, label: &str) -> String {
        format!("{}/binary_sensor/{}/{}/config", self.prefix, slug(&self.node), Discovery::object(camera, zone, label))
    }

    /// The config topic of a camera's (or zone's) label's score sensor.
    pub fn score_config_topic(&self, camera: &str, zone: Option<&str>, label: &str) -> String {
        format!("{}/sensor/{}/{}_score/config", self.prefix, slug(&self.node), Discovery::object(camera, zone, label))
    }

    /// The config payload of a camera's (or zone's) label's score sensor.
    pub fn score_sensor(&self, camera: &str, zone: Option<&str>, label: &str) -> ScoreSensorConfig {
        // The label's name as a JSON string inside the template: a quote or
        // a backslash in it stays part of the name.
        let key = serde_json::to_string(label).expect("a string serializes");
        ScoreSensorConfig {
            entity: self.entity(format!("{} score", Discovery::entity_name(camera, zone, label))),
            qos: 0,
            state_class: "measurement".to_string(),
            state_topic: self.topics.scores(camera, zone),
            unique_id: format!("edgeclip_{}_{}_score", slug(&self.node), Discovery::object(camera, zone, label)),
            value_template: format!("{{{{ value_json.scores[{key}] }}}}"),
        }
    }

    /// What every entity's config starts with, for an entity named `name`.
    fn entity(&self, name: String) -> DiscoveryEntity {
        DiscoveryEntity {
            availability_topic: self.topics.availability(),
            device: self.device(),
            name,
            origin: DiscoveryOrigin { name: "edgeclip".to_string(), sw_version: SW_VERSION.to_string() },
            payload_available: Availability::Online,
            payload_not_available: Availability::Offline,
        }
    }

    fn device(&self) -> DiscoveryDevice {
        DiscoveryDevice {
            identifiers: vec![format!("edgeclip_{}", slug(&self.node))],
            manufacturer: "edgeclip".to_string(),
            model: self.model.clone(),
            name: format!("edgeclip {}", self.node),
            sw_version: SW_VERSION.to_string(),
        }
    }

    /// The config payload of a camera's (or zone's) label sensor.
    pub fn binary_sensor(&self, camera: &str, zone: Option<&str>, label: &str) -> DiscoveryConfig {
        DiscoveryConfig {
            entity: self.entity(Discovery::entity_name(camera, zone, label)),
            payload_off: Switch::Off,
            payload_on: Switch::On,
            qos: 1,
            state_topic: self.topics.state(camera, zone, label),
            unique_id: format!("edgeclip_{}_{}", slug(&self.node), Discovery::object(camera, zone, label)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::payloads::to_json;

    #[test]
    fn a_label_sensor_has_what_home_assistant_requires() {
        let d = Discovery::new("homeassistant", "garage", "tiny-shapes", Topics::new("edgeclip", "garage"));
        assert_eq!(
            d.config_topic("front", None, "Delivery van"),
            "homeassistant/binary_sensor/garage/front_delivery_van/config"
        );
        let c: serde_json::Value =
            serde_json::from_slice(&to_json(&d.binary_sensor("front", None, "Delivery van"))).unwrap();
        assert_eq!(c["unique_id"], "edgeclip_garage_front_delivery_van");
        assert_eq!(c["state_topic"], "edgeclip/garage/front/Delivery van/state");
        assert_eq!((c["payload_on"].as_str(), c["payload_off"].as_str()), (Some("ON"), Some("OFF")));
        assert_eq!(c["availability_topic"], "edgeclip/garage/availability");
        assert_eq!(c["device"]["identifiers"][0], "edgeclip_garage");
        assert_eq!(c["device"]["name"], "edgeclip garage");
        assert_eq!(d.status_topic(), "homeassistant/status");
        // A zone's label: its own entity, topic and id.
        assert_eq!(
            d.config_topic("front", Some("Porch"), "Delivery van"),
            "homeassistant/binary_sensor/garage/front_porch_delivery_van/config"
        );
        let c: serde_json::Value =
            serde_json::from_slice(&to_json(&d.binary_sensor("front", Some("Porch"), "Delivery van"))).unwrap();
        assert_eq!(c["unique_id"], "edgeclip_garage_front_porch_delivery_van");
        assert_eq!(c["name"], "front Porch Delivery van");
        assert_eq!(c["state_topic"], "edgeclip/garage/front/Porch/Delivery van/state");
    }

    #[test]
    fn a_score_sensor_reads_its_label_from_the_scores_topic() {
        let d = Discovery::new("homeassistant", "garage", "tiny-shapes", Topics::new("edgeclip", "garage"));
        assert_eq!(
            d.score_config_topic("front", None, "Delivery van"),
            "homeassistant/sensor/garage/front_delivery_van_score/config"
        );
        let c: serde_json::Value =
            serde_json::from_slice(&to_json(&d.score_sensor("front", None, "Delivery \"van\""))).unwrap();
        assert_eq!(c["unique_id"], "edgeclip_garage_front_delivery_van_score");
        assert_eq!(c["state_topic"], "edgeclip/garage/front/scores");
        assert_eq!(c["value_template"], r#"{{ value_json.scores["Delivery \"van\""] }}"#);
        assert_eq!((c["state_class"].as_str(), c["qos"].as_u64()), (Some("measurement"), Some(0)));
    }

    #[test]
    fn a_label_sensor_serializes_exactly() {
        let d = Discovery::new("homeassistant", "garage", "tiny-shapes", Topics::new("edgeclip", "garage"));
        let text = String::from_utf8(to_json(&d.binary_sensor("front", None, "Delivery van"))).unwrap();
        let expected = format!(
            concat!(
                r#"{{"availability_topic":"edgeclip/garage/availability","#,
                r#""device":{{"identifiers":["edgeclip_garage"],"manufacturer":"edgeclip","model":"tiny-shapes","#,
                r#""name":"edgeclip garage","sw_version":"{v}"}},"#,
                r#""name":"front Delivery van","origin":{{"name":"edgeclip","sw_version":"{v}"}},"#,
                r#""payload_available":"online","payload_not_available":"offline","payload_off":"OFF","#,
                r#""payload_on":"ON","qos":1,"state_topic":"edgeclip/garage/front/Delivery van/state","#,
                r#""unique_id":"edgeclip_garage_front_delivery_van"}}"#
            ),
            v = SW_VERSION
        );
        assert_eq!(text, expected);
    }
}
