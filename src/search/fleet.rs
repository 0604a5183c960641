//! A search across every edgeclip on a broker: `edgeclip search --broker`.
//!
//! The broker the boards share is the distributed system: this client asks
//! on `<prefix>/search`, every node whose store answers searches replies on
//! `<prefix>/search/reply/<id>` with its own best hits, and the client
//! merges them by score. It learns which nodes exist from their retained
//! availability topics (`<prefix>/<node>/availability`), so a node that is
//! online but does not answer by the deadline (busy, frozen, searches
//! turned off) is named in the result instead of being waited for; the
//! client stops as soon as every online node has answered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use super::request::{fleet_topic, reply_topic, SearchReply, SearchRequest};
use super::Hit;
use crate::util::untrusted::untrusted;

/// Where and how to reach the broker.
#[derive(Debug, Clone)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl BrokerAddress {
    /// `mqtt://HOST[:PORT]` (TLS brokers: run the search on a board with
    /// `--config` instead).
    pub fn parse(url: &str) -> Result<BrokerAddress, String> {
        let rest = url.strip_prefix("mqtt://").ok_or_else(|| {
            format!("--broker '{url}' is not an mqtt:// URL; accepted: mqtt://HOST[:PORT] (TLS brokers are not supported here)")
        })?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| format!("--broker '{url}': '{p}' is not a port number"))?)
            }
            _ => (rest, 1883),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("--broker '{url}' names no host"));
        }
        Ok(BrokerAddress { host: host.to_string(), port, username: None, password: None })
    }
}

/// What a fleet search gathered.
#[derive(Debug, Clone)]
pub struct FleetResult {
    /// Every node's reply, in the order they came.
    pub replies: Vec<SearchReply>,
    /// The best hits of all nodes, best first, at most the request's limit.
    pub hits: Vec<Hit>,
    /// Nodes online (by their availability topic) that did not answer
    /// before the deadline.
    pub silent: Vec<String>,
}

/// Asks every node under `prefix` and gathers their replies for at most
/// `deadline`.
pub fn search(
    broker: &BrokerAddress,
    prefix: &str,
    request: &SearchRequest,
    deadline: Duration,
) -> Result<FleetResult, String> {
    let started = Instant::now();
    let client_id = format!("edgeclip-search-{}", request.id);
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options.set_clean_session(true).set_keep_alive(Duration::from_secs(30)).set_max_packet_size(1 << 20, 1 << 20);
    if let Some(user) = &broker.username {
        options.set_credentials(user.clone(), broker.password.clone().unwrap_or_default());
    }
    let (client, mut connection) = Client::new(options, 16);
    let availability = format!("{prefix}/+/availability");
    let replies_topic = reply_topic(prefix, &request.id);
    let payload = serde_json::to_vec(request).map_err(|e| e.to_string())?;

    let mut online: BTreeMap<String, bool> = BTreeMap::new();
    let mut replies: Vec<SearchReply> = Vec::new();
    let mut asked: Option<Instant> = None;
    let end = started + deadline;
    while Instant::now() < end {
        let wait = end.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
        let event = match connection.recv_timeout(wait) {
            Ok(Ok(event)) => event,
            Ok(Err(e)) => {
                return Err(format!("MQTT broker mqtt://{}:{}: {e}", broker.host, broker.port));
            }
            Err(_) => {
                if finished(asked, &online, &replies) {
                    break;
                }
                continue;
            }
        };
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                client
                    .subscribe_many([
                        rumqttc::SubscribeFilter::new(availability.clone(), QoS::AtLeastOnce),
                        rumqttc::SubscribeFilter::new(replies_topic.clone(), QoS::AtLeastOnce),
                    ])
                    .map_err(|e| e.to_string())?;
            }
            Event::Incoming(Packet::SubAck(_)) => {
                // Subscribed to the replies before asking: none is missed.
                client
                    .publish(fleet_topic(prefix), QoS::AtLeastOnce, false, payload.clone())
                    .map_err(|e| e.to_string())?;
                asked = Some(Instant::now());
            }
            Event::Incoming(Packet::Publish(p)) => {
                if p.topic == replies_topic {
                    match serde_json::from_slice::<SearchReply>(&p.payload) {
                        Ok(reply) => replies.push(reply),
                        Err(e) => tracing::warn!(
                            "ignored a reply that is not a search reply ({e}): {}",
                            untrusted(&String::from_utf8_lossy(&p.payload))
                        ),
                    }
                } else if let Some(node) = p
                    .topic
                    .strip_prefix(prefix)
                    .and_then(|t| t.strip_prefix('/'))
                    .and_then(|t| t.strip_suffix("/availability"))
                {
                    online.insert(node.to_string(), &p.payload[..] == b"online");
                }
            }
            _ => {}
        }
        if finished(asked, &online, &replies) {
            break;
        }
    }
    let _ = client.disconnect();
    if asked.is_none() {
        return Err(format!(
            "MQTT broker mqtt://{}:{} did not accept the search within {} s",
            broker.host,
            broker.port,
            deadline.as_secs_f64()
        ));
    }
    let answered: Vec<&str> = replies.iter().map(|r| r.node.as_str()).collect();
    let silent =
        online.iter().filter(|(node, up)| **up && !answered.contains(&node.as_str())).map(|(n, _)| n.clone()).collect();
    let limit = request.limit.unwrap_or(super::request::DEFAULT_LIMIT);
    Ok(FleetResult { hits: merge(&replies, limit), replies, silent })
}

/// How long after asking the retained availability messages are surely in
/// (they arrive right after the SUBACK), before "every online node has
/// answered" may end the wait early.
const AVAILABILITY_SETTLED: Duration = Duration::from_millis(300);

/// Every online node has answered (and the list of nodes is complete).
fn finished(asked: Option<Instant>, online: &BTreeMap<String, bool>, replies: &[SearchReply]) -> bool {
    let Some(asked) = asked else { return false };
    asked.elapsed() >= AVAILABILITY_SETTLED
        && online.iter().filter(|(_, up)| **up).all(|(node, _)| replies.iter().any(|r| r.node == *node))
        && !replies.is_empty()
}

/// The replies' hits merged by score, best first.
pub fn merge(replies: &[SearchReply], limit: usize) -> Vec<Hit> {
    let mut hits: Vec<Hit> = replies.iter().flat_map(|r| r.hits.iter().cloned()).collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.node.cmp(&b.node)).then(a.id.cmp(&b.id)));
    hits.truncate(limit);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let b = BrokerAddress::parse("mqtt://10.0.0.5:1884").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("10.0.0.5", 1884));
        assert_eq!(BrokerAddress::parse("mqtt://mqtt.lan").unwrap().port, 1883);
        assert_eq!(BrokerAddress::parse("mqtt://[::1]:1885").unwrap().host, "::1");
        assert!(BrokerAddress::parse("mqtts://x").unwrap_err().contains("mqtt://HOST"));
        assert!(BrokerAddress::parse("mqtt://x:port").unwrap_err().contains("not a port"));
    }
}
