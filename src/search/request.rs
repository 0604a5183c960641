//! Search over MQTT: the request a client publishes, the reply each node
//! sends, and their topics (docs/mqtt.md, "Search").
//!
//! MQTT 3.1.1 has no response topic, so the reply topic is fixed by the
//! request's id: a client subscribes to `<prefix>/search/reply/<id>`, then
//! publishes its request to `<prefix>/search` (every node answers) or
//! `<prefix>/<node>/search` (that node). The id is one topic level of
//! letters, digits, '-' and '_', so a request can never make a node publish
//! outside `<prefix>/search/reply/`.

use serde::{Deserialize, Serialize};

use super::Hit;
use crate::publish::payloads::Timestamp;

/// The longest request id: enough for a UUID with room to spare.
pub const MAX_ID_LEN: usize = 64;

/// The longest search text: CLIP reads 77 tokens, a few hundred characters.
pub const MAX_TEXT_LEN: usize = 1000;

/// The most hits a node returns for one request: a page of results; a
/// larger limit is cut to this.
pub const MAX_LIMIT: usize = 100;

/// Hits when a request names no limit.
pub const DEFAULT_LIMIT: usize = 10;

/// The fleet's search topic under `prefix`.
pub fn fleet_topic(prefix: &str) -> String {
    format!("{prefix}/search")
}

/// Where the replies to request `id` go.
pub fn reply_topic(prefix: &str, id: &str) -> String {
    format!("{prefix}/search/reply/{id}")
}

/// A search request as published (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Names the reply topic; see the module documentation.
    pub id: String,
    /// Rank by this text (embedded by each node's text encoder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Rank by this event's embedding (only on a node's own topic: event ids
    /// are per node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub like: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// RFC 3339 times: events starting (keyframes taken) in `[since, until)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Rank keyframes too (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyframes: Option<bool>,
}

/// One node's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReply {
    pub id: String,
    pub node: String,
    pub model: String,
    /// How many stored embeddings were ranked.
    pub searched: u64,
    /// The node's time for the search, embedding the text included.
    pub took_ms: f64,
    /// Best first.
    pub hits: Vec<Hit>,
    /// Why the node could not search (the hits are then empty).
    pub error: Option<String>,
}

/// Whether `id` can name a reply topic.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A time of a request, or what is wrong with it.
pub fn parse_time(key: &str, text: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{key} '{text}' is not a time ({e}); accepted: RFC 3339, e.g. 2026-12-07T14:00:00Z"))
}

/// A time as requests and replies write it.
pub fn format_time(t: std::time::SystemTime) -> String {
    Timestamp(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_safe_topic_level() {
        assert!(valid_id("c0ffee-1_2"));
        for bad in ["", "a/b", "+", "#", "a b", &"x".repeat(MAX_ID_LEN + 1)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        assert_eq!(reply_topic("edgeclip", "abc"), "edgeclip/search/reply/abc");
    }

    #[test]
    fn requests_read_what_clients_send_and_refuse_unknown_keys() {
        let r: SearchRequest = serde_json::from_str(r#"{"id":"a1","text":"a red van","limit":3}"#).unwrap();
        assert_eq!((r.text.as_deref(), r.limit, r.like), (Some("a red van"), Some(3), None));
        assert!(serde_json::from_str::<SearchRequest>(r#"{"id":"a1","txt":"typo"}"#).is_err());
        assert!(parse_time("since", "2026-12-07T14:00:00Z").is_ok());
        assert!(parse_time("since", "yesterday").unwrap_err().contains("RFC 3339"));
    }
}
