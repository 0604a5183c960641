//! Publishing over MQTT: what the daemon says and when ([`publisher`]:
//! events, states, snapshots, discovery, stats), the topics edgeclip uses
//! ([`topics`]), every
//! payload it publishes, as types ([`payloads`], documented in
//! docs/mqtt.md), Home Assistant's discovery messages ([`discovery`]), the
//! client that delivers them ([`mqtt`]: one thread around rumqttc, with a
//! bounded offline queue so that what is published while the broker is
//! away arrives in order once it is back, TLS and credentials), and the
//! broker that `broker = "embedded"` starts inside the daemon ([`broker`],
//! rumqttd).

pub mod broker;
pub mod discovery;
pub mod mqtt;
pub mod payloads;
pub mod publisher;
pub mod topics;
