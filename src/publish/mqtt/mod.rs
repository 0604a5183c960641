//! The MQTT client: one thread that owns rumqttc's event loop, and a bounded
//! offline queue in front of it, so that what the daemon publishes while the
//! broker is away arrives once it is back, in order.
//!
//! The daemon calls [`MqttClient::publish`] (or [`MqttPublisher::publish`]
//! from other threads), which never blocks: it appends the message to our
//! queue and, while connected, hands the oldest queued messages to rumqttc,
//! at most [`INFLIGHT_WINDOW`] of them not yet acknowledged. A message leaves
//! our hands only when the broker acknowledged it (PUBACK; a QoS 0 message
//! once it is written to the socket).
//!
//! **What rumqttc (0.24) does on its own after a broken connection**, and why
//! we do not rely on it: it moves the unacknowledged publishes, and whatever
//! still waits in its request channel, into `EventLoop::pending`, and sends
//! them first after reconnecting, whatever the CONNACK says. That list is
//! unbounded, in packet-id order (not in age order once the ids wrap
//! around), knows nothing of our latest-only coalescing, and leaves out a
//! publish held back by a packet-id collision. So after every broken
//! connection we empty rumqttc's `pending` (and its request channel, and its
//! collision slot) and put our own unacknowledged messages back at the front
//! of our queue, oldest first: after the reconnect they are sent again, as
//! new publishes, before anything newer. Nothing is lost and the order holds;
//! a message whose PUBACK was lost with the connection arrives twice, which
//! QoS 1 allows. For the same reason a configured `mqtt.qos = 2` is sent as
//! QoS 1: a QoS 2 publish sent again under a new packet id into a resumed
//! session can make the broker drop a later message that reuses the old id.
//!
//! **Queue policy** ([`MqttConfig::offline_queue`] events): a latest-only
//! message (retained states, snapshots, discovery, stats) replaces a queued
//! one on the same topic (the newer one takes its place at the end), which is
//! not a loss, and does not count against the capacity: there is at most one
//! per topic. When more events than the capacity wait, the oldest is dropped,
//! counted in [`MqttStats::overflowed`] (so the count is exactly the events
//! lost) and logged at most every [`OVERFLOW_LOG_INTERVAL`]. Memory is
//! bounded by that many events, one message per latest-only topic, the
//! in-flight window, and the last retained payload of each topic.
//!
//! **Sessions and retained state.** We connect with a persistent session
//! (clean session off), so that the broker keeps our subscriptions. They are
//! made at QoS 0: the broker delivers a command at most once and keeps none
//! for us while we are away (a command is a "set" whose effect the state
//! topics show). A command larger than [`MAX_PACKET_SIZE`] arrives at QoS 0,
//! so our rumqttc (patched, vendor/README.md) reads it through without
//! holding it, drops it and counts it in [`MqttStats::incoming_refused`]; the
//! connection stays up. Upstream rumqttc ends the connection instead, and a
//! broker sends what it was sending again after the reconnect: one publish by
//! anyone on the broker would stop event delivery for good. Any other packet
//! too large to read (a broker that ignores our QoS 0) still ends the
//! connection, and then the next connection asks for a clean session, which
//! drops it at the broker (and then, like any new session, gets our
//! subscriptions and retained states again); it is counted too, and later
//! connections are persistent again.
//!
//! Every (re)connect publishes `online` (retained) on the availability
//! topic, whose last will is `offline` (retained), and
//! subscribes to the command filters: until the broker first acknowledged
//! them, and then whenever it has no session for us (a clean-session
//! reconnect loses them). A broker that answers CONNACK with
//! `session_present = 0` has lost our session, typically because it
//! restarted without persistence, and then its retained messages are likely
//! gone too: so we keep the last retained payload of every topic and publish
//! them all again after such a CONNACK (unless a newer one for the topic is
//! queued anyway). A broker that kept our session kept its retained store as
//! well, and is not sent them again.
//!
//! rumqttc reconnects at once, forever; we wait between attempts, from
//! [`BACKOFF_FIRST`] doubling up to [`BACKOFF_MAX`] (from the first again
//! after a connection that lasted [`STABLE_CONNECTION`]), and log each
//! failure in words that say what to check.
//!
//! The code follows rumqttc's own cut: `state` is the queue and session
//! state machine, free of I/O; `eventloop` is the thread that drives
//! rumqttc's connection and feeds it; `tls` sets up TLS; this file is the
//! API the daemon uses.

mod eventloop;
pub mod request;
mod state;
mod tls;

use std::fmt;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Broker, MqttConfig};
use eventloop::Shared;
pub use eventloop::{BACKOFF_FIRST, BACKOFF_MAX, STABLE_CONNECTION};
pub use state::{INFLIGHT_WINDOW, OVERFLOW_LOG_INTERVAL};

/// The largest MQTT packet we send or accept. Snapshots are JPEGs of a few
/// MB at most (a 4K frame at high quality is about 3 MB); rumqttc's default
/// of 10 KiB would refuse them. 8 MiB leaves room without letting one packet
/// take a large part of a small board's memory.
pub const MAX_PACKET_SIZE: usize = 8 * 1024 * 1024;

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// 0: may be lost; 1: must arrive (sent with `mqtt.qos`, see the module
    /// documentation).
    pub qos: u8,
    pub retain: bool,
    /// A newer message on the same topic replaces this one while it waits.
    pub latest_only: bool,
    /// The store's outbox row of this message: once the broker has it, the
    /// id is reported by [`MqttClient::take_delivered`].
    pub receipt: Option<i64>,
}

impl Message {
    /// An event: must arrive, not retained, queued in order and never
    /// coalesced.
    pub fn event(topic: String, payload: Vec<u8>) -> Message {
        Message { topic, payload, qos: 1, retain: false, latest_only: false, receipt: None }
    }

    /// A state: must arrive, retained; only the newest per topic is kept
    /// while waiting, and it is published again if the broker lost it.
    pub fn retained(topic: String, payload: Vec<u8>) -> Message {
        Message { topic, payload, qos: 1, retain: true, latest_only: true, receipt: None }
    }

    /// An event from the store's outbox (row `receipt`): as
    /// [`Message::event`], and its delivery is reported back. Such messages
    /// do not count against the offline queue's capacity: the daemon hands
    /// over only a window of them at a time, and the rest wait on disk.
    pub fn stored_event(topic: String, payload: Vec<u8>, receipt: i64) -> Message {
        Message { receipt: Some(receipt), ..Message::event(topic, payload) }
    }

    /// Periodic news (stats): not retained, only the newest per topic is kept
    /// while waiting, and QoS 0, since the next one replaces it anyway.
    pub fn latest(topic: String, payload: Vec<u8>) -> Message {
        Message { topic, payload, qos: 0, retain: false, latest_only: true, receipt: None }
    }
}

/// A message that arrived on one of the subscribed filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// What the client has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MqttStats {
    pub connected: bool,
    /// Messages not yet acknowledged by the broker: waiting in the queue or
    /// handed to rumqttc.
    pub queued: usize,
    /// Messages dropped because the offline queue was full.
    pub overflowed: u64,
    /// The daemon's messages the broker acknowledged (QoS 0: written).
    pub published: u64,
    /// Connections made after the first one.
    pub reconnects: u64,
    /// The latest connection problem, for a person (kept after a reconnect).
    pub last_error: Option<String>,
    /// Incoming messages dropped before the daemon saw them: larger than
    /// [`MAX_PACKET_SIZE`], or more than the unread ones it keeps.
    pub incoming_refused: u64,
}

/// What [`MqttClient::shutdown`] could not do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// The daemon's messages the broker had not acknowledged when the time
    /// was up, oldest first; empty when everything was delivered.
    pub undelivered: Vec<Message>,
    /// `offline` reached the broker and the connection ended with a
    /// DISCONNECT. Otherwise the broker publishes the last will (`offline`
    /// too) once it notices that the connection is gone.
    pub clean: bool,
    /// The counters at the end.
    pub stats: MqttStats,
    /// Receipts of stored messages delivered since the last
    /// [`MqttClient::take_delivered`].
    pub receipts: Vec<i64>,
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.undelivered.len(), self.clean) {
            (0, true) => write!(f, "every message delivered, disconnected cleanly"),
            (0, false) => {
                write!(f, "every message delivered, but 'offline' was not: the broker will publish the last will")
            }
            (n, _) => write!(
                f,
                "{n} message{} not delivered{}",
                if n == 1 { "" } else { "s" },
                match &self.stats.last_error {
                    Some(e) if !self.stats.connected => format!(" (not connected: {e})"),
                    _ => String::new(),
                }
            ),
        }
    }
}

/// Why the client could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A TLS file named in the configuration is unusable.
    #[error("{key} '{}': {problem}", path.display())]
    TlsFile { key: &'static str, path: std::path::PathBuf, problem: String },
    #[error(
        "mqtt.broker '{broker}' needs TLS, but this edgeclip was built without it (cargo feature 'tls'); \
         use an 'mqtt://' broker or an edgeclip built with the default features"
    )]
    TlsNotBuilt { broker: String },
    #[error(
        "mqtt.broker '{broker}' is TLS, mqtt.ca_file is not set and the system's CA certificates cannot be used \
         ({problem}); set mqtt.ca_file to the PEM file of the CA that signed the broker's certificate"
    )]
    NoSystemCertificates { broker: String, problem: String },
    #[error("MQTT {what} '{topic}' {problem}")]
    Topic { what: &'static str, topic: String, problem: &'static str },
    #[error("cannot start the MQTT thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The MQTT connection: publish, read the subscribed commands, shut down.
pub struct MqttClient {
    shared: Arc<Shared>,
    incoming: Receiver<Incoming>,
    thread: Option<JoinHandle<()>>,
}

impl MqttClient {
    /// Checks what can be checked at once (the TLS files are readable and
    /// parse, the topics are valid) and starts the MQTT thread; connecting
    /// happens in the background and never blocks the caller.
    pub fn start(
        config: &MqttConfig,
        availability_topic: String,
        subscriptions: Vec<String>,
    ) -> Result<MqttClient, MqttError> {
        if let Some(problem) = topic_problem(&availability_topic) {
            return Err(MqttError::Topic { what: "availability topic", topic: availability_topic, problem });
        }
        for filter in &subscriptions {
            if !rumqttc::valid_filter(filter) {
                return Err(MqttError::Topic {
                    what: "subscription",
                    topic: filter.clone(),
                    problem: "is not a topic filter ('+' and '#' stand for whole levels, '#' only last)",
                });
            }
        }
        let started = eventloop::start(config, availability_topic, subscriptions)?;
        Ok(MqttClient { shared: started.shared, incoming: started.incoming, thread: Some(started.thread) })
    }

    /// Queues a message; never blocks, never fails. A message that can never
    /// be sent (a topic with wildcards, bigger than [`MAX_PACKET_SIZE`]) is
    /// logged as an error and dropped.
    pub fn publish(&self, message: Message) {
        publish(&self.shared, message)
    }

    /// A handle that publishes from other threads. `MqttClient` itself is
    /// not `Sync` (it holds the receiver of [`MqttClient::incoming`]); this
    /// is, and clones cheaply. Once the client is shut down or dropped, what
    /// it publishes is only queued, never sent.
    pub fn publisher(&self) -> MqttPublisher {
        MqttPublisher { shared: Arc::clone(&self.shared) }
    }

    /// The outbox rows ([`Message::receipt`]) the broker acknowledged since
    /// the last call, in the order it did.
    pub fn take_delivered(&self) -> Vec<i64> {
        self.shared.lock().state.take_delivered()
    }

    /// Messages on the subscribed filters.
    pub fn incoming(&self) -> &Receiver<Incoming> {
        &self.incoming
    }

    pub fn stats(&self) -> MqttStats {
        self.shared.lock().state.stats()
    }

    /// Publishes `offline` (retained) on the availability topic, delivers what
    /// is queued within `timeout`, disconnects. Returns what was left
    /// undelivered. Never takes (much) longer than `timeout`.
    pub fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        let deadline = Instant::now() + timeout;
        let mut link = self.shared.lock();
        link.state.begin_shutdown();
        link.wake();
        link.pump();
        link.maybe_disconnect();
        self.shared.changed.notify_all();
        while !link.finished {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            link = self.shared.changed.wait_timeout(link, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        let report = ShutdownReport {
            undelivered: link.state.undelivered(),
            clean: link.state.clean(),
            stats: link.state.stats(),
            receipts: link.state.take_delivered(),
        };
        let finished = link.finished;
        // Out of time or done: the thread ends at its next step, without a
        // DISCONNECT if it got none out, so that the broker publishes the will.
        link.abandon();
        drop(link);
        self.shared.changed.notify_all();
        if finished {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
        report
    }
}

/// Publishes from any thread: see [`MqttClient::publisher`].
#[derive(Clone)]
pub struct MqttPublisher {
    shared: Arc<Shared>,
}

impl MqttPublisher {
    /// As [`MqttClient::publish`].
    pub fn publish(&self, message: Message) {
        publish(&self.shared, message)
    }

    pub fn stats(&self) -> MqttStats {
        self.shared.lock().state.stats()
    }
}

/// [`MqttClient::publish`] and [`MqttPublisher::publish`].
fn publish(shared: &Shared, message: Message) {
    if let Some(problem) = topic_problem(&message.topic) {
        tracing::error!("not publishing to MQTT topic '{}': it {problem}", message.topic);
        return;
    }
    // The fixed header (up to 5 bytes), the topic's length (2) and a
    // packet id (2) come on top of topic and payload.
    let size = message.topic.len() + message.payload.len() + 9;
    if size > MAX_PACKET_SIZE {
        tracing::error!(
            "not publishing {} bytes to MQTT topic '{}': more than the largest packet, {MAX_PACKET_SIZE} bytes",
            message.payload.len(),
            message.topic
        );
        return;
    }
    let mut link = shared.lock();
    link.state.publish(message);
    link.pump();
}

impl Drop for MqttClient {
    /// Without [`MqttClient::shutdown`]: the thread ends and the connection
    /// closes without a DISCONNECT, so the broker publishes the last will.
    fn drop(&mut self) {
        self.shared.lock().abandon();
        self.shared.changed.notify_all();
    }
}

/// A topic a message can be published to, or what is wrong with it.
fn topic_problem(topic: &str) -> Option<&'static str> {
    if topic.is_empty() {
        Some("is empty")
    } else if !rumqttc::valid_topic(topic) {
        Some("has a wildcard ('+' or '#'), which only subscriptions may have")
    } else if topic.contains('\0') {
        Some("has a NUL character")
    } else if topic.len() > usize::from(u16::MAX) {
        Some("is longer than 65535 bytes")
    } else {
        None
    }
}

// ---- where to connect ------------------------------------------------------

/// The broker's address as rumqttc wants it, and as a person reads it.
struct Target {
    host: String,
    port: u16,
    tls: bool,
    /// For messages: "mqtt://host:port" or "the embedded broker at ...".
    display: String,
}

impl Target {
    fn of(broker: &Broker) -> Target {
        match broker {
            Broker::Embedded { listen, .. } => {
                // A broker listening on every address is reached on loopback.
                let ip = match listen.ip() {
                    std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
                    ip => ip,
                };
                let address = std::net::SocketAddr::new(ip, listen.port());
                Target {
                    host: bracketed(&ip.to_string()),
                    port: listen.port(),
                    tls: false,
                    display: format!("the embedded broker at {address}"),
                }
            }
            Broker::External { host, port, tls } => Target {
                // rumqttc joins host and port with ':', so an IPv6 address
                // needs its brackets back (for TCP; rumqttc's TLS takes the
                // host as the certificate's name and cannot use them).
                host: if *tls { host.clone() } else { bracketed(host) },
                port: *port,
                tls: *tls,
                display: format!("{}://{}:{port}", if *tls { "mqtts" } else { "mqtt" }, bracketed(host)),
            },
        }
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_that_cannot_be_published_to() {
        assert!(topic_problem("edgeclip/garage/availability").is_none());
        assert!(topic_problem("").is_some());
        assert!(topic_problem("edgeclip/+/x").is_some());
        assert!(topic_problem("edgeclip/#").is_some());
    }

    #[test]
    fn targets() {
        let t = Target::of(&Broker::Embedded { listen: "0.0.0.0:1883".parse().unwrap(), users: None });
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 1883));
        let t = Target::of(&Broker::Embedded { listen: "[::]:1884".parse().unwrap(), users: None });
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 1884));
        let t = Target::of(&Broker::External { host: "::1".into(), port: 1883, tls: false });
        assert_eq!((t.host.as_str(), t.display.as_str()), ("[::1]", "mqtt://[::1]:1883"));
        let t = Target::of(&Broker::External { host: "mqtt.lan".into(), port: 8883, tls: true });
        assert_eq!(t.display, "mqtts://mqtt.lan:8883");
    }
}
