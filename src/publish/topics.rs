//! The MQTT topics edgeclip publishes and listens to, in one place.
//!
//! ```text
//! <prefix>/<node>/availability                 online | offline, retained; offline is the last will
//! <prefix>/<node>/stats                        JSON, periodically
//! <prefix>/<node>/<camera>/events              JSON per event (start, end)
//! <prefix>/<node>/<camera>/<label>/state       ON | OFF, retained
//! <prefix>/<node>/<camera>/<label>/snapshot    JPEG of the frame that started the event, retained
//! <prefix>/<node>/<camera>/scores              JSON: every label's last score, at most every scores_interval_s
//! <prefix>/<node>/<camera>/<zone>/...          the same three for each zone of a camera with zones
//! <prefix>/<node>/<camera>/enabled             ON | OFF, retained
//! <prefix>/<node>/<camera>/enabled/set         command: ON | OFF
//! <prefix>/<node>/<camera>/labels/set          command: a labels file's text
//! <prefix>/<node>/<camera>/example/set         command: [ZONE/]LABEL, the current frame becomes an example image
//! <prefix>/<node>/<camera>/example             JSON: what example/set did
//! ```
//!
//! Label and zone names are used as written (the parsers refuse `/`, `+`,
//! `#` and control characters, so a name is always one topic level); Home
//! Assistant's ids use [`slug`]s of them. A zone's topics are one level
//! deeper than the whole frame's, so they never meet a label's.

/// Builds the topics of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `mqtt.topic_prefix`.
    prefix: String,
    /// `<prefix>/<node>`.
    base: String,
}

impl Topics {
    pub fn new(prefix: &str, node: &str) -> Topics {
        Topics { prefix: prefix.to_string(), base: format!("{prefix}/{node}") }
    }

    /// Where a search for every node on the broker is asked
    /// (`<prefix>/search`).
    pub fn search_fleet(&self) -> String {
        crate::search::request::fleet_topic(&self.prefix)
    }

    /// Where a search for this node alone is asked.
    pub fn search_node(&self) -> String {
        format!("{}/search", self.base)
    }

    /// Where the answers to search `id` go, from every node.
    pub fn search_reply(&self, id: &str) -> String {
        crate::search::request::reply_topic(&self.prefix, id)
    }

    /// Where a stored snapshot is asked for.
    pub fn snapshot_get(&self) -> String {
        format!("{}/snapshot/get", self.base)
    }

    /// Where a stored event's or keyframe's snapshot is published when
    /// asked for (not retained).
    pub fn stored_snapshot(&self, kind: &str, id: i64) -> String {
        format!("{}/history/{kind}/{id}/snapshot", self.base)
    }

    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }

    pub fn stats(&self) -> String {
        format!("{}/stats", self.base)
    }

    pub fn events(&self, camera: &str) -> String {
        format!("{}/{camera}/events", self.base)
    }

    /// `<prefix>/<node>/<camera>`, or `.../<camera>/<zone>` for a zone.
    fn place(&self, camera: &str, zone: Option<&str>) -> String {
        match zone {
            Some(zone) => format!("{}/{camera}/{zone}", self.base),
            None => format!("{}/{camera}", self.base),
        }
    }

    pub fn state(&self, camera: &str, zone: Option<&str>, label: &str) -> String {
        format!("{}/{label}/state", self.place(camera, zone))
    }

    pub fn snapshot(&self, camera: &str, zone: Option<&str>, label: &str) -> String {
        format!("{}/{label}/snapshot", self.place(camera, zone))
    }

    pub fn scores(&self, camera: &str, zone: Option<&str>) -> String {
        format!("{}/scores", self.place(camera, zone))
    }

    pub fn enabled(&self, camera: &str) -> String {
        format!("{}/{camera}/enabled", self.base)
    }

    pub fn enabled_set(&self, camera: &str) -> String {
        format!("{}/{camera}/enabled/set", self.base)
    }

    pub fn labels_set(&self, camera: &str) -> String {
        format!("{}/{camera}/labels/set", self.base)
    }

    pub fn example_set(&self, camera: &str) -> String {
        format!("{}/{camera}/example/set", self.base)
    }

    pub fn example_result(&self, camera: &str) -> String {
        format!("{}/{camera}/example", self.base)
    }

    /// What a subscription to every command topic of this node covers.
    pub fn commands_filter(&self) -> String {
        format!("{}/+/+/set", self.base)
    }
}

/// A camera name and a command, from a command topic of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandTopic {
    Enabled { camera: String },
    Labels { camera: String },
    Example { camera: String },
}

impl Topics {
    /// Which command a topic is, if it is one of this node's.
    pub fn parse_command(&self, topic: &str) -> Option<CommandTopic> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix('/')?;
        let (camera, command) = rest.split_once('/')?;
        match command {
            "enabled/set" => Some(CommandTopic::Enabled { camera: camera.to_string() }),
            "labels/set" => Some(CommandTopic::Labels { camera: camera.to_string() }),
            "example/set" => Some(CommandTopic::Example { camera: camera.to_string() }),
            _ => None,
        }
    }
}

/// An id made of `[a-z0-9_]` from a name, as Home Assistant wants unique ids
/// and object ids: lower case, every other run of characters one `_`.
/// "Delivery van" -> "delivery_van".
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        // A name of only symbols or non-Latin letters: keep it unique by its bytes.
        name.bytes().map(|b| format!("{b:02x}")).collect()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_commands() {
        let t = Topics::new("edgeclip", "garage");
        assert_eq!(t.state("front", None, "delivery van"), "edgeclip/garage/front/delivery van/state");
        assert_eq!(t.state("front", Some("porch"), "a van"), "edgeclip/garage/front/porch/a van/state");
        assert_eq!(t.scores("front", Some("porch")), "edgeclip/garage/front/porch/scores");
        assert_eq!(t.availability(), "edgeclip/garage/availability");
        assert_eq!(
            t.parse_command("edgeclip/garage/front/labels/set"),
            Some(CommandTopic::Labels { camera: "front".into() })
        );
        assert_eq!(
            t.parse_command("edgeclip/garage/front/enabled/set"),
            Some(CommandTopic::Enabled { camera: "front".into() })
        );
        assert_eq!(
            t.parse_command("edgeclip/garage/front/example/set"),
            Some(CommandTopic::Example { camera: "front".into() })
        );
        assert_eq!(t.example_set("front"), "edgeclip/garage/front/example/set");
        assert_eq!(t.example_result("front"), "edgeclip/garage/front/example");
        assert_eq!(t.parse_command("edgeclip/garage/front/cat/state"), None);
        assert_eq!(t.parse_command("edgeclip/garage2/front/enabled/set"), None);
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Delivery van"), "delivery_van");
        assert_eq!(slug("  a cat -- on the sofa!"), "a_cat_on_the_sofa");
        assert_eq!(slug("猫"), "e78cab");
    }
}
