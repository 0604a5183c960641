//! One command and its reply over MQTT, for the commands a person runs
//! beside the daemon (`edgeclip add-example`): connect to the daemon's broker
//! with the daemon's settings, subscribe to the reply topic, publish the
//! command, wait for the reply, disconnect.
//!
//! A short-lived client of its own, not [`MqttClient`](super::MqttClient):
//! that one keeps a persistent session, publishes `online` and leaves a
//! last will, all of which belong to the daemon alone.

use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use super::{Target, MAX_PACKET_SIZE};
use crate::config::{Broker, MqttConfig};

/// Publishes `payload` to `topic` (QoS 1) and returns the first message on
/// `reply_topic`, published after the subscription was acknowledged, for
/// which `is_reply` holds; an error after `timeout` in all. `client_id`
/// must differ from the daemon's, or the broker drops the daemon.
pub fn request(
    config: &MqttConfig,
    client_id: &str,
    topic: &str,
    payload: Vec<u8>,
    reply_topic: &str,
    timeout: Duration,
    mut is_reply: impl FnMut(&[u8]) -> bool,
) -> Result<Vec<u8>, String> {
    let target = Target::of(&config.broker);
    let mut options = MqttOptions::new(client_id, target.host.clone(), target.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE);
    if let Some((user, password)) = login(config) {
        options.set_credentials(user, password);
    }
    if target.tls {
        options.set_transport(super::tls::transport(config, &target).map_err(|e| e.to_string())?);
    }
    let (client, mut connection) = Client::new(options, 10);
    let deadline = Instant::now() + timeout;
    let mut subscribed = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no reply on '{reply_topic}' within {} s from {}; is the daemon running, with mqtt.commands = true?",
                timeout.as_secs(),
                target.display
            ));
        }
        match connection.recv_timeout(left) {
            Err(_) => continue,
            Ok(Err(e)) => return Err(format!("MQTT connection to {}: {e}", target.display)),
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                client.subscribe(reply_topic, QoS::AtLeastOnce).map_err(|e| e.to_string())?;
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if !subscribed => {
                subscribed = true;
                client.publish(topic, QoS::AtLeastOnce, false, payload.clone()).map_err(|e| e.to_string())?;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if subscribed && p.topic == reply_topic => {
                if is_reply(&p.payload) {
                    let _ = client.disconnect();
                    return Ok(p.payload.to_vec());
                }
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// The login a command run beside the daemon uses: the configuration's
/// `mqtt.username` and password; for the embedded broker without one, the
/// first user of its `users_file` (the daemon's own login is made at random
/// for each run).
fn login(config: &MqttConfig) -> Option<(String, String)> {
    if let Some(user) = &config.username {
        return Some((user.clone(), config.password.clone().unwrap_or_default()));
    }
    match &config.broker {
        Broker::Embedded { users: Some(users), .. } => users.first().cloned(),
        _ => None,
    }
}
