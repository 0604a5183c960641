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
//! (clean session off), so that commands sent to us while we are away wait
//! at the broker. Every (re)connect publishes `online` (retained) on the
//! availability topic, whose last will is `offline` (retained), and
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
//! [`BACKOFF_FIRST`] doubling up to [`BACKOFF_MAX`], and log each failure in
//! words that say what to check.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, Connection, ConnectionError, Event, LastWill, MqttOptions, NetworkOptions, Outgoing,
    Packet, QoS, StateError, SubscribeFilter, Transport,
};

use crate::config::{Broker, MqttConfig};
use crate::publish::payloads::Availability;

/// The largest MQTT packet we send or accept. Snapshots are JPEGs of a few
/// MB at most (a 4K frame at high quality is about 3 MB); rumqttc's default
/// of 10 KiB would refuse them. 8 MiB leaves room without letting one packet
/// take a large part of a small board's memory.
pub const MAX_PACKET_SIZE: usize = 8 * 1024 * 1024;

/// Messages handed to rumqttc and not yet acknowledged, at most. Enough to
/// keep a LAN link busy when a backlog drains after a reconnect (16 round
/// trips of a few ms); few enough that a broken connection re-sends at most
/// this many messages, the only duplicates a subscriber can see.
pub const INFLIGHT_WINDOW: usize = 16;

/// rumqttc's own in-flight limit, which also sets how packet ids cycle. At
/// twice our window its flow control never stops our requests, and a packet
/// id is reused only long after its publish was acknowledged (brokers
/// acknowledge QoS 1 in order), so its "collision" state never starts.
const RUMQTTC_INFLIGHT: u16 = 2 * INFLIGHT_WINDOW as u16;

/// The first wait before reconnecting: a restarting broker is usually back
/// within a second.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);

/// The longest wait between attempts: a board whose broker is away for hours
/// tries twice a minute, which costs nothing, and its events arrive at most
/// 30 s after the broker is back.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A connection that lasted this long was a working one: after it breaks the
/// backoff starts again from [`BACKOFF_FIRST`]. A broker that accepts and
/// drops us at once (another client with our id, an access rule) keeps us
/// backing off instead.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// How long the broker may take to accept the TCP (and TLS) connection and
/// answer CONNECT. A Pi Zero's TLS handshake takes about a second; 10 s leaves
/// room for a slow Wi-Fi link and still notices a dead address quickly.
const CONNECT_TIMEOUT_S: u64 = 10;

/// Messages from the subscribed command topics waiting for the daemon.
/// Commands are rare and small; if the daemon stops reading, newer ones are
/// dropped and logged rather than held without bound.
const INCOMING_CAPACITY: usize = 64;

/// A full offline queue drops a message per publish; the log says so at
/// most this often, with the count since the last line.
pub const OVERFLOW_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Payloads of the availability topic.
const ONLINE: &[u8] = Availability::Online.payload();
const OFFLINE: &[u8] = Availability::Offline.payload();

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
}

impl Message {
    /// An event: must arrive, not retained, queued in order and never
    /// coalesced.
    pub fn event(topic: String, payload: Vec<u8>) -> Message {
        Message { topic, payload, qos: 1, retain: false, latest_only: false }
    }

    /// A state: must arrive, retained; only the newest per topic is kept
    /// while waiting, and it is published again if the broker lost it.
    pub fn retained(topic: String, payload: Vec<u8>) -> Message {
        Message { topic, payload, qos: 1, retain: true, latest_only: true }
    }

    /// Periodic news (stats): not retained, only the newest per topic is kept
    /// while waiting, and QoS 0, since the next one replaces it anyway.
    pub fn latest(topic: String, payload: Vec<u8>) -> Message {
        Message { topic, payload, qos: 0, retain: false, latest_only: true }
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
        let target = Target::of(&config.broker);
        let mut options = MqttOptions::new(config.client_id.clone(), target.host.clone(), target.port);
        options
            .set_keep_alive(config.keepalive)
            // A persistent session: commands sent while we are away wait at
            // the broker (the module documentation says why this is safe).
            .set_clean_session(false)
            .set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE)
            .set_inflight(RUMQTTC_INFLIGHT)
            .set_last_will(LastWill::new(availability_topic.clone(), OFFLINE, QoS::AtLeastOnce, true));
        if let (Some(user), password) = (&config.username, &config.password) {
            options.set_credentials(user.clone(), password.clone().unwrap_or_default());
        }
        if target.tls {
            options.set_transport(tls_transport(config, &target)?);
        }
        if config.qos > 1 {
            tracing::info!(
                "mqtt.qos = {} is sent as QoS 1: at-least-once is what survives reconnecting (duplicates are possible, losses are not)",
                config.qos
            );
        }
        // Our window, the subscriptions and a DISCONNECT fit; a full channel
        // would only make a message wait in our queue.
        let channel_capacity = INFLIGHT_WINDOW + subscriptions.len() + 4;
        let (client, mut connection) = Client::new(options, channel_capacity);
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(CONNECT_TIMEOUT_S);
        connection.eventloop.set_network_options(network);

        let (incoming_tx, incoming) = std::sync::mpsc::sync_channel(INCOMING_CAPACITY);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(Some(client), config.offline_queue, config.qos.min(1), availability_topic)),
            changed: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            let worker = Worker {
                shared,
                target,
                username: config.username.clone(),
                client_id: config.client_id.clone(),
                ca_file: config.ca_file.clone(),
                subscriptions,
                incoming: incoming_tx,
            };
            std::thread::Builder::new()
                .name("mqtt".into())
                .spawn(move || worker.run(&mut connection))
                .map_err(MqttError::Thread)?
        };
        Ok(MqttClient { shared, incoming, thread: Some(thread) })
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

    /// Messages on the subscribed filters.
    pub fn incoming(&self) -> &Receiver<Incoming> {
        &self.incoming
    }

    pub fn stats(&self) -> MqttStats {
        self.shared.lock().stats()
    }

    /// Publishes `offline` (retained) on the availability topic, delivers what
    /// is queued within `timeout`, disconnects. Returns what was left
    /// undelivered. Never takes (much) longer than `timeout`.
    pub fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        let offline = Message::retained(state.availability.clone(), OFFLINE.to_vec());
        state.enqueue(Queued { message: offline, internal: true });
        state.shutdown = true;
        state.wakeups += 1;
        state.pump();
        state.maybe_disconnect();
        self.shared.changed.notify_all();
        while !state.finished {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self.shared.changed.wait_timeout(state, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        let undelivered = state
            .inflight
            .iter()
            .map(|i| &i.queued)
            .chain(state.queue.iter())
            .filter(|q| !q.internal)
            .map(|q| q.message.clone())
            .collect();
        let report = ShutdownReport { undelivered, clean: state.clean, stats: state.stats() };
        let finished = state.finished;
        // Out of time or done: the thread ends at its next step, without a
        // DISCONNECT if it got none out, so that the broker publishes the will.
        state.abandon();
        drop(state);
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
        self.shared.lock().stats()
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
    let mut state = shared.lock();
    if message.retain {
        if message.payload.is_empty() {
            // An empty retained message deletes the topic's retained one.
            state.retained.remove(&message.topic);
        } else {
            state.retained.insert(message.topic.clone(), message.payload.clone());
        }
    }
    state.enqueue(Queued { message, internal: false });
    state.pump();
}

impl Drop for MqttClient {
    /// Without [`MqttClient::shutdown`]: the thread ends and the connection
    /// closes without a DISCONNECT, so the broker publishes the last will.
    fn drop(&mut self) {
        self.shared.lock().abandon();
        self.shared.changed.notify_all();
    }
}

// ---- the state shared by the daemon's threads and the MQTT thread ----------

struct Shared {
    state: Mutex<State>,
    /// Signals shutdown and abandonment to the MQTT thread's backoff wait,
    /// and the thread's end to `shutdown`.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data:
        // every change is made before anything that could panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A message in our hands, and whether we made it up ourselves (`online`,
/// `offline`, a retained state published again), which the daemon's counts
/// and the shutdown report leave out.
#[derive(Debug, Clone)]
struct Queued {
    message: Message,
    internal: bool,
}

/// A message handed to rumqttc, waiting for its acknowledgement.
#[derive(Debug)]
struct Inflight {
    queued: Queued,
    /// The QoS it went out with.
    qos: QoS,
    /// Known once rumqttc wrote it (its `Outgoing::Publish` event).
    pkid: Option<u16>,
}

/// The waiting messages, oldest first, with the count of the daemon's own
/// events, the messages the capacity applies to. Latest-only messages
/// (states, snapshots, discovery, stats) do not count: there is at most one
/// per topic, so they are bounded by the number of labels.
#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<Queued>,
    events: usize,
}

/// Whether a message counts against the queue's capacity.
fn counted(q: &Queued) -> bool {
    !q.internal && !q.message.latest_only
}

impl Queue {
    fn len(&self) -> usize {
        self.messages.len()
    }

    fn iter(&self) -> impl Iterator<Item = &Queued> {
        self.messages.iter()
    }

    fn push_back(&mut self, q: Queued) {
        self.events += usize::from(counted(&q));
        self.messages.push_back(q);
    }

    fn push_front(&mut self, q: Queued) {
        self.events += usize::from(counted(&q));
        self.messages.push_front(q);
    }

    fn pop_front(&mut self) -> Option<Queued> {
        let q = self.messages.pop_front()?;
        self.events -= usize::from(counted(&q));
        Some(q)
    }

    fn remove(&mut self, index: usize) -> Option<Queued> {
        let q = self.messages.remove(index)?;
        self.events -= usize::from(counted(&q));
        Some(q)
    }

    fn position(&self, f: impl Fn(&Queued) -> bool) -> Option<usize> {
        self.messages.iter().position(f)
    }

    /// The queued latest-only message on this topic, if any.
    fn latest_on(&self, topic: &str) -> Option<usize> {
        self.position(|q| q.message.latest_only && q.message.topic == topic)
    }
}

#[derive(Debug, Default)]
struct OverflowLog {
    last: Option<Instant>,
    /// Drops not logged yet.
    unlogged: u64,
}

struct State {
    /// rumqttc's request side. Taken away when the client is dropped or shut
    /// down, which closes rumqttc's request channel and so ends the thread.
    client: Option<Client>,
    connected: bool,
    queue: Queue,
    /// Handed to rumqttc, not acknowledged yet, oldest first.
    inflight: VecDeque<Inflight>,
    /// `mqtt.offline_queue`.
    capacity: usize,
    /// The QoS a must-arrive message goes out with (see the module
    /// documentation).
    wire_qos: u8,
    /// The last retained payload per topic, published again when the broker
    /// lost our session.
    retained: BTreeMap<String, Vec<u8>>,
    availability: String,
    overflowed: u64,
    published: u64,
    reconnects: u64,
    last_error: Option<String>,
    overflow_log: OverflowLog,
    /// `shutdown` was called: disconnect once everything is delivered.
    shutdown: bool,
    /// DISCONNECT was handed to rumqttc.
    disconnecting: bool,
    /// A packet id rumqttc reported as colliding, whose publish is written
    /// later (see `Outgoing::AwaitAck`).
    collided: Option<u16>,
    /// The broker acknowledged our subscriptions since we started.
    subscribed: bool,
    /// Bumped to cut the thread's backoff wait short.
    wakeups: u64,
    /// The thread has ended.
    finished: bool,
    /// `offline` was delivered and DISCONNECT written.
    clean: bool,
}

impl State {
    /// A client that has not connected yet, with an empty queue of room for
    /// `capacity` events.
    fn new(client: Option<Client>, capacity: usize, wire_qos: u8, availability: String) -> State {
        State {
            client,
            connected: false,
            queue: Queue::default(),
            inflight: VecDeque::new(),
            capacity,
            wire_qos,
            retained: BTreeMap::new(),
            availability,
            overflowed: 0,
            published: 0,
            reconnects: 0,
            last_error: None,
            overflow_log: OverflowLog::default(),
            shutdown: false,
            disconnecting: false,
            collided: None,
            subscribed: false,
            wakeups: 0,
            finished: false,
            clean: false,
        }
    }

    fn stats(&self) -> MqttStats {
        MqttStats {
            connected: self.connected,
            queued: self.queue.len() + self.inflight.len(),
            overflowed: self.overflowed,
            published: self.published,
            reconnects: self.reconnects,
            last_error: self.last_error.clone(),
        }
    }

    /// Ends the thread without a DISCONNECT: the broker publishes the last
    /// will. rumqttc's event loop keeps a sender of its own request channel,
    /// so dropping our `Client` does not wake it; a last `offline` (QoS 0,
    /// retained, as the will says) does, and the thread, finding no client,
    /// ends and closes the connection.
    fn abandon(&mut self) {
        if let Some(client) = self.client.take() {
            if self.connected && !self.clean {
                let _ = client.try_publish(self.availability.clone(), QoS::AtMostOnce, true, OFFLINE);
            }
        }
        self.wakeups += 1;
    }

    /// Appends a message, replacing a queued latest-only one on its topic, and
    /// makes room if the daemon's messages exceed the capacity.
    fn enqueue(&mut self, q: Queued) {
        if q.message.latest_only {
            if let Some(i) = self.queue.latest_on(&q.message.topic) {
                // Removed and appended rather than replaced in place: what
                // arrives stays in the order it was published.
                self.queue.remove(i);
            }
        }
        self.queue.push_back(q);
        self.make_room();
    }

    /// Drops the oldest events beyond the capacity.
    fn make_room(&mut self) {
        while self.queue.events > self.capacity {
            let victim = self.queue.position(counted).expect("the queue counts an event");
            let dropped = self.queue.remove(victim).expect("the index was just found");
            self.overflowed += 1;
            self.overflow_log.unlogged += 1;
            let due = self.overflow_log.last.is_none_or(|t| t.elapsed() >= OVERFLOW_LOG_INTERVAL);
            if due {
                self.log_overflow(Some(&dropped.message.topic));
            }
        }
    }

    fn log_overflow(&mut self, topic: Option<&str>) {
        tracing::warn!(
            "MQTT offline queue full ({} messages, mqtt.offline_queue): dropped the oldest {} message{}{}; {} dropped since start",
            self.capacity,
            self.overflow_log.unlogged,
            if self.overflow_log.unlogged == 1 { "" } else { "s" },
            topic.map(|t| format!(" (the last on '{t}')")).unwrap_or_default(),
            self.overflowed
        );
        self.overflow_log = OverflowLog { last: Some(Instant::now()), unlogged: 0 };
    }

    /// Hands queued messages to rumqttc while connected, up to the window.
    fn pump(&mut self) {
        if !self.connected {
            return;
        }
        let Some(client) = &self.client else { return };
        while self.inflight.len() < INFLIGHT_WINDOW {
            let Some(q) = self.queue.pop_front() else { break };
            let qos = match q.message.qos.min(self.wire_qos) {
                0 => QoS::AtMostOnce,
                _ => QoS::AtLeastOnce,
            };
            // A copy: ours stays until the broker acknowledges it.
            match client.try_publish(q.message.topic.clone(), qos, q.message.retain, q.message.payload.clone()) {
                Ok(()) => self.inflight.push_back(Inflight { queued: q, qos, pkid: None }),
                Err(_) => {
                    // The channel is full (its capacity makes that impossible)
                    // or closed (we are being dropped): the message waits.
                    self.queue.push_front(q);
                    break;
                }
            }
        }
    }

    /// Once shutting down and everything is delivered, asks rumqttc for a
    /// DISCONNECT (whose `Outgoing::Disconnect` event ends the thread).
    fn maybe_disconnect(&mut self) {
        if self.shutdown && self.connected && !self.disconnecting && self.queue.len() == 0 && self.inflight.is_empty() {
            if let Some(client) = &self.client {
                self.disconnecting = client.try_disconnect().is_ok();
            }
        }
    }

    /// rumqttc wrote a publish: the oldest message still without a packet id
    /// is that one (rumqttc takes requests in order).
    fn written(&mut self, pkid: u16) {
        if pkid != 0 && self.collided == Some(pkid) {
            // The collided publish, which already has its id.
            self.collided = None;
            return;
        }
        let Some(i) = self.inflight.iter().position(|i| i.pkid.is_none()) else {
            tracing::debug!("rumqttc wrote a publish (id {pkid}) that is not ours");
            return;
        };
        if self.inflight[i].qos == QoS::AtMostOnce {
            let done = self.inflight.remove(i).expect("the index was just found");
            self.delivered(&done.queued);
        } else {
            self.inflight[i].pkid = Some(pkid);
        }
    }

    /// The broker acknowledged the publish with this packet id.
    fn acknowledged(&mut self, pkid: u16) {
        match self.inflight.iter().position(|i| i.pkid == Some(pkid)) {
            Some(i) => {
                let done = self.inflight.remove(i).expect("the index was just found");
                self.delivered(&done.queued);
            }
            None => tracing::debug!("an acknowledgement for packet id {pkid}, which is not waiting for one"),
        }
    }

    fn delivered(&mut self, q: &Queued) {
        if !q.internal {
            self.published += 1;
        }
    }

    /// After a broken connection: what rumqttc still holds goes back to the
    /// front of our queue, oldest first, coalescing latest-only messages with
    /// newer ones on the same topic.
    fn requeue_inflight(&mut self) {
        while let Some(i) = self.inflight.pop_back() {
            let m = &i.queued.message;
            if m.latest_only && self.queue.latest_on(&m.topic).is_some() {
                continue;
            }
            self.queue.push_front(i.queued);
        }
        self.make_room();
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
            Broker::Embedded { listen } => {
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

// ---- TLS ---------------------------------------------------------------------

#[cfg(feature = "tls")]
fn tls_transport(config: &MqttConfig, target: &Target) -> Result<Transport, MqttError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::path::Path;

    fn open(key: &'static str, path: &Path) -> Result<std::io::BufReader<std::fs::File>, MqttError> {
        std::fs::File::open(path).map(std::io::BufReader::new).map_err(|e| MqttError::TlsFile {
            key,
            path: path.into(),
            problem: format!("cannot be read: {e}"),
        })
    }
    fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, MqttError> {
        let certs = rustls_pemfile::certs(&mut open(key, path)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| MqttError::TlsFile { key, path: path.into(), problem: format!("is not a PEM file: {e}") })?;
        if certs.is_empty() {
            return Err(MqttError::TlsFile {
                key,
                path: path.into(),
                problem: "holds no certificate; expected PEM text with '-----BEGIN CERTIFICATE-----' blocks".into(),
            });
        }
        Ok(certs)
    }
    fn private_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, MqttError> {
        rustls_pemfile::private_key(&mut open(key, path)?)
            .map_err(|e| MqttError::TlsFile { key, path: path.into(), problem: format!("is not a PEM file: {e}") })?
            .ok_or_else(|| MqttError::TlsFile {
                key,
                path: path.into(),
                problem: "holds no private key; expected PEM text with a '-----BEGIN PRIVATE KEY-----' \
                          (or RSA / EC PRIVATE KEY) block"
                    .into(),
            })
    }

    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            for cert in certificates("mqtt.ca_file", path)? {
                roots.add(cert).map_err(|e| MqttError::TlsFile {
                    key: "mqtt.ca_file",
                    path: path.clone(),
                    problem: format!("holds a certificate that cannot be a CA: {e}"),
                })?;
            }
        }
        None => {
            let problem = |problem: String| MqttError::NoSystemCertificates { broker: target.display.clone(), problem };
            let certs = rustls_native_certs::load_native_certs().map_err(|e| problem(e.to_string()))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(problem("none found; Debian's are in the package ca-certificates".into()));
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let tls = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certificates("mqtt.client_cert", cert)?;
            let private = private_key("mqtt.client_key", key)?;
            builder.with_client_auth_cert(chain, private).map_err(|e| MqttError::TlsFile {
                key: "mqtt.client_key",
                path: key.clone(),
                problem: format!("cannot be used with mqtt.client_cert '{}': {e}", cert.display()),
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(tls))))
}

#[cfg(not(feature = "tls"))]
fn tls_transport(_config: &MqttConfig, target: &Target) -> Result<Transport, MqttError> {
    Err(MqttError::TlsNotBuilt { broker: target.display.clone() })
}

// ---- the MQTT thread -----------------------------------------------------------

struct Worker {
    shared: Arc<Shared>,
    target: Target,
    username: Option<String>,
    client_id: String,
    /// Named in TLS errors.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    ca_file: Option<std::path::PathBuf>,
    subscriptions: Vec<String>,
    incoming: SyncSender<Incoming>,
}

/// Whether the thread goes on.
enum Step {
    Continue,
    Done,
}

impl Worker {
    fn run(self, connection: &mut Connection) {
        let mut backoff = BACKOFF_FIRST;
        let mut connected_since: Option<Instant> = None;
        let mut connections = 0u64;
        loop {
            if self.shared.lock().client.is_none() {
                // Dropped, or shut down and out of time.
                break;
            }
            // Blocks until rumqttc has something: a packet, a written request,
            // a keep-alive ping, a (failed) connection attempt.
            match connection.recv() {
                // Every request sender is gone: the client was dropped.
                Err(_) => break,
                Ok(Ok(event)) => {
                    if let Event::Incoming(Packet::ConnAck(ack)) = &event {
                        connected_since = Some(Instant::now());
                        connections += 1;
                        self.connected(ack.session_present, connections);
                        continue;
                    }
                    if let Step::Done = self.event(event) {
                        break;
                    }
                }
                Ok(Err(error)) => {
                    let lasted = connected_since.take().map(|since| since.elapsed());
                    if lasted.is_some_and(|d| d >= STABLE_CONNECTION) {
                        backoff = BACKOFF_FIRST;
                    }
                    self.failed(connection, &error, lasted.is_some(), backoff);
                    if !self.wait(backoff) {
                        break;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        let mut state = self.shared.lock();
        state.connected = false;
        state.finished = true;
        drop(state);
        self.shared.changed.notify_all();
    }

    /// CONNACK accepted: `online`, the subscriptions, the retained states if
    /// the broker lost them, then the queue.
    fn connected(&self, session_present: bool, connections: u64) {
        let mut state = self.shared.lock();
        state.connected = true;
        if connections > 1 {
            state.reconnects += 1;
        }
        let waiting = state.queue.len();
        tracing::info!(
            "connected to the MQTT broker at {} as '{}' ({}){}",
            self.target.display,
            self.client_id,
            if session_present { "session resumed" } else { "new session" },
            if waiting > 0 { format!("; delivering {waiting} queued messages") } else { String::new() }
        );
        if state.overflow_log.unlogged > 0 {
            state.log_overflow(None);
        }
        if !session_present {
            // Newest first to the front, so that they go out in topic order.
            let republish: Vec<Queued> = state
                .retained
                .iter()
                .rev()
                .filter(|(topic, _)| state.queue.latest_on(topic).is_none())
                .map(|(topic, payload)| Queued {
                    message: Message::retained(topic.clone(), payload.clone()),
                    internal: true,
                })
                .collect();
            for q in republish {
                state.queue.push_front(q);
            }
        }
        // `online` first; one left over from a broken connection goes.
        let availability = state.availability.clone();
        while let Some(i) =
            state.queue.position(|q| q.internal && q.message.topic == availability && q.message.payload == ONLINE)
        {
            state.queue.remove(i);
        }
        state.queue.push_front(Queued { message: Message::retained(availability, ONLINE.to_vec()), internal: true });
        // Until the broker acknowledged them once, whatever it remembers (an
        // earlier run may have had other filters, or the first SUBSCRIBE was
        // lost with its connection); after that whenever the session is new.
        if !self.subscriptions.is_empty() && (!state.subscribed || !session_present) {
            if let Some(client) = &state.client {
                let filters = self.subscriptions.iter().map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::warn!("cannot subscribe to {:?}: {e}", self.subscriptions);
                }
            }
        }
        state.pump();
        state.maybe_disconnect();
    }

    fn event(&self, event: Event) -> Step {
        let mut state = self.shared.lock();
        match event {
            Event::Incoming(Packet::Publish(p)) => {
                let topic = p.topic.clone();
                match self.incoming.try_send(Incoming { topic: p.topic, payload: p.payload.to_vec() }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => tracing::warn!(
                        "dropped an MQTT message on '{topic}': {INCOMING_CAPACITY} received ones are still unread"
                    ),
                    // The daemon no longer reads (it is shutting down).
                    Err(TrySendError::Disconnected(_)) => {}
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => state.acknowledged(ack.pkid),
            Event::Incoming(Packet::PubComp(comp)) => state.acknowledged(comp.pkid),
            Event::Incoming(Packet::SubAck(ack)) => {
                state.subscribed = true;
                for (filter, code) in self.subscriptions.iter().zip(&ack.return_codes) {
                    if matches!(code, rumqttc::SubscribeReasonCode::Failure) {
                        tracing::error!(
                            "the MQTT broker at {} refused the subscription to '{filter}'; check its access rules for user '{}'",
                            self.target.display,
                            self.username.as_deref().unwrap_or("(none)")
                        );
                    }
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => state.written(pkid),
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                // rumqttc's packet-id collision: cannot happen with our window
                // under its in-flight limit. If it does, rumqttc holds this
                // publish back until the old id is acknowledged, then writes
                // it (an `Outgoing::Publish` with this id, which `written`
                // recognizes); a reconnect re-sends it from our queue.
                tracing::warn!("rumqttc waits for packet id {pkid} to be acknowledged before sending more");
                state.written(pkid);
                state.collided = Some(pkid);
            }
            Event::Outgoing(Outgoing::Disconnect) => {
                state.clean = true;
                tracing::info!("disconnected from the MQTT broker at {}", self.target.display);
                return Step::Done;
            }
            _ => {}
        }
        state.pump();
        state.maybe_disconnect();
        Step::Continue
    }

    /// A connection attempt failed or a connection broke.
    fn failed(&self, connection: &mut Connection, error: &ConnectionError, was_connected: bool, backoff: Duration) {
        let mut state = self.shared.lock();
        state.connected = false;
        // rumqttc moved what it held into `pending` (and may have taken more
        // from its channel since): we re-send from our own queue instead.
        connection.eventloop.clean();
        connection.eventloop.pending.clear();
        connection.eventloop.state.collision = None;
        state.collided = None;
        state.disconnecting = false;
        state.requeue_inflight();
        let (problem, refused) = self.describe(error, was_connected);
        let queued = state.queue.len();
        let retry = format!(
            "{queued} message{} queued; retrying in {:.1} s",
            if queued == 1 { "" } else { "s" },
            backoff.as_secs_f32()
        );
        if refused {
            tracing::error!("{problem}; {retry}");
        } else if was_connected {
            tracing::warn!("disconnected from the MQTT broker at {}: {problem}; {retry}", self.target.display);
        } else {
            tracing::warn!("{problem}; {retry}");
        }
        state.last_error = Some(problem);
    }

    /// Waits before the next attempt; false if the client is gone. A
    /// shutdown cuts the wait short, so that one more attempt is made.
    fn wait(&self, backoff: Duration) -> bool {
        let until = Instant::now() + backoff;
        let mut state = self.shared.lock();
        let seen = state.wakeups;
        loop {
            if state.client.is_none() {
                return false;
            }
            let now = Instant::now();
            if now >= until || state.wakeups != seen {
                return true;
            }
            state = self.shared.changed.wait_timeout(state, until - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// A sentence for the person at the board, and whether the broker
    /// refused us (as opposed to being unreachable or dropping the line).
    fn describe(&self, error: &ConnectionError, was_connected: bool) -> (String, bool) {
        let broker = &self.target.display;
        let user = match &self.username {
            Some(u) => format!("user name '{u}'"),
            None => "no user name".to_string(),
        };
        let credentials = "check mqtt.username and the password in the file named by mqtt.password_file \
                           (or the variable named by mqtt.password_env)";
        match error {
            ConnectionError::ConnectionRefused(code) => {
                let why = match code {
                    ConnectReturnCode::BadUserNamePassword => {
                        format!("bad user name or password ({user}); {credentials}")
                    }
                    ConnectReturnCode::NotAuthorized => format!(
                        "not authorized ({user}, client id '{}'); {credentials}, and the broker's access rules",
                        self.client_id
                    ),
                    ConnectReturnCode::BadClientId => {
                        format!("client id '{}' rejected; set mqtt.client_id to one the broker accepts", self.client_id)
                    }
                    ConnectReturnCode::ServiceUnavailable => "the broker says it is unavailable".to_string(),
                    ConnectReturnCode::RefusedProtocolVersion => "the broker does not speak MQTT 3.1.1".to_string(),
                    ConnectReturnCode::Success => "refused with code 0".to_string(),
                };
                (format!("the MQTT broker at {broker} refused the connection: {why}"), true)
            }
            ConnectionError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => (
                format!(
                    "cannot connect to the MQTT broker at {broker}: connection refused (is the broker running and \
                     listening on port {}? check mqtt.broker)",
                    self.target.port
                ),
                false,
            ),
            ConnectionError::Io(e) if was_connected => (format!("connection lost: {e}"), false),
            ConnectionError::Io(e) => (format!("cannot connect to the MQTT broker at {broker}: {e}"), false),
            ConnectionError::NetworkTimeout => {
                (format!("no answer from the MQTT broker at {broker} within {CONNECT_TIMEOUT_S} s"), false)
            }
            #[cfg(feature = "tls")]
            ConnectionError::Tls(e) => (self.describe_tls(e), false),
            ConnectionError::MqttState(StateError::AwaitPingResp) => {
                ("the broker stopped answering (no reply to a keep-alive ping)".to_string(), false)
            }
            ConnectionError::MqttState(StateError::Io(e)) => (format!("connection lost: {e}"), false),
            ConnectionError::MqttState(StateError::Deserialization(e)) => {
                (format!("the broker sent something that is not MQTT 3.1.1 or is too big: {e}"), false)
            }
            e => (e.to_string(), false),
        }
    }

    #[cfg(feature = "tls")]
    fn describe_tls(&self, error: &rumqttc::TlsError) -> String {
        let broker = &self.target.display;
        // Without the "I/O: " that rumqttc puts before a handshake's error.
        let text = match error {
            rumqttc::TlsError::Io(e) => e.to_string(),
            e => e.to_string(),
        };
        let hint = if text.contains("UnknownIssuer") || text.contains("BadSignature") {
            match &self.ca_file {
                Some(ca) => format!(
                    "; the broker's certificate is not signed by the CA in mqtt.ca_file '{}': is it the right file?",
                    ca.display()
                ),
                None => "; the broker's certificate is not signed by a CA this system trusts: set mqtt.ca_file to \
                         the CA that signed it"
                    .to_string(),
            }
        } else if text.contains("NotValidForName") {
            format!(
                "; the broker's certificate is not issued for '{}': use a name it is issued for in mqtt.broker",
                self.target.host
            )
        } else if text.contains("Expired") || text.contains("NotValidYet") {
            "; is this board's clock right?".to_string()
        } else if text.contains("CertificateRequired") || text.contains("HandshakeFailure") {
            "; does the broker want a client certificate (mqtt.client_cert, mqtt.client_key)?".to_string()
        } else {
            String::new()
        };
        format!("TLS with the MQTT broker at {broker} failed: {text}{hint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(capacity: usize) -> State {
        State::new(None, capacity, 1, "a".into())
    }

    fn topics(s: &State) -> Vec<String> {
        s.queue.iter().map(|q| format!("{}={}", q.message.topic, String::from_utf8_lossy(&q.message.payload))).collect()
    }

    fn user(m: Message) -> Queued {
        Queued { message: m, internal: false }
    }

    #[test]
    fn overflow_drops_the_oldest_event_and_keeps_latest_only_messages() {
        let mut s = state(3);
        s.enqueue(user(Message::retained("s".into(), b"1".to_vec())));
        for i in 0..4 {
            s.enqueue(user(Message::event("e".into(), format!("{i}").into_bytes())));
        }
        assert_eq!(topics(&s), ["s=1", "e=1", "e=2", "e=3"]);
        assert_eq!(s.overflowed, 1);
        // A newer state replaces the queued one, at the end: no drop.
        s.enqueue(user(Message::retained("s".into(), b"2".to_vec())));
        assert_eq!(topics(&s), ["e=1", "e=2", "e=3", "s=2"]);
        assert_eq!(s.overflowed, 1);
    }

    #[test]
    fn latest_only_messages_do_not_count_against_the_capacity() {
        let mut s = state(2);
        for topic in ["a", "b", "c", "d"] {
            s.enqueue(user(Message::retained(topic.into(), b"1".to_vec())));
        }
        s.enqueue(user(Message::event("e".into(), b"1".to_vec())));
        s.enqueue(user(Message::latest("stats".into(), b"1".to_vec())));
        s.enqueue(user(Message::event("e".into(), b"2".to_vec())));
        assert_eq!(topics(&s), ["a=1", "b=1", "c=1", "d=1", "e=1", "stats=1", "e=2"]);
        assert_eq!(s.overflowed, 0);
        s.enqueue(user(Message::event("e".into(), b"3".to_vec())));
        assert_eq!(topics(&s), ["a=1", "b=1", "c=1", "d=1", "stats=1", "e=2", "e=3"]);
        assert_eq!(s.overflowed, 1);
    }

    #[test]
    fn internal_messages_do_not_count_against_the_capacity() {
        let mut s = state(2);
        s.queue.push_front(Queued { message: Message::retained("a".into(), b"online".to_vec()), internal: true });
        s.enqueue(user(Message::event("e".into(), b"1".to_vec())));
        s.enqueue(user(Message::event("e".into(), b"2".to_vec())));
        assert_eq!(s.overflowed, 0);
        assert_eq!(s.queue.len(), 3);
    }

    #[test]
    fn requeued_messages_go_first_in_order_and_yield_to_newer_states() {
        let mut s = state(10);
        for (m, pkid) in [
            (Message::event("e".into(), b"1".to_vec()), Some(1)),
            (Message::retained("s".into(), b"old".to_vec()), Some(2)),
            (Message::event("e".into(), b"2".to_vec()), None),
        ] {
            s.inflight.push_back(Inflight { queued: user(m), qos: QoS::AtLeastOnce, pkid });
        }
        s.enqueue(user(Message::event("e".into(), b"3".to_vec())));
        s.enqueue(user(Message::retained("s".into(), b"new".to_vec())));
        s.requeue_inflight();
        assert_eq!(topics(&s), ["e=1", "e=2", "e=3", "s=new"]);
        assert!(s.inflight.is_empty());
    }

    #[test]
    fn acknowledgements_find_their_message_by_packet_id() {
        let mut s = state(10);
        for (m, qos) in [
            (Message::event("e".into(), b"1".to_vec()), QoS::AtLeastOnce),
            (Message::latest("l".into(), b"1".to_vec()), QoS::AtMostOnce),
            (Message::event("e".into(), b"2".to_vec()), QoS::AtLeastOnce),
        ] {
            s.inflight.push_back(Inflight { queued: user(m), qos, pkid: None });
        }
        s.written(7);
        s.written(0);
        assert_eq!(s.published, 1, "a QoS 0 message is done once written");
        s.written(8);
        s.acknowledged(8);
        assert_eq!(s.published, 2);
        assert_eq!(s.inflight.len(), 1);
        assert_eq!(s.inflight[0].pkid, Some(7));
        s.acknowledged(9);
        assert_eq!(s.published, 2, "an unknown id changes nothing");
    }

    #[test]
    fn topics_that_cannot_be_published_to() {
        assert!(topic_problem("edgeclip/garage/availability").is_none());
        assert!(topic_problem("").is_some());
        assert!(topic_problem("edgeclip/+/x").is_some());
        assert!(topic_problem("edgeclip/#").is_some());
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_tls_an_mqtts_broker_is_a_clear_error() {
        let config = MqttConfig {
            broker: Broker::External { host: "mqtt.lan".into(), port: 8883, tls: true },
            client_id: "c".into(),
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            topic_prefix: "edgeclip".into(),
            qos: 1,
            keepalive: Duration::from_secs(30),
            offline_queue: 10,
            stats_interval: Duration::from_secs(60),
        };
        let Err(e) = MqttClient::start(&config, "a".into(), vec![]) else { panic!("started without TLS") };
        assert!(
            e.to_string()
                .starts_with("mqtt.broker 'mqtts://mqtt.lan:8883' needs TLS, but this edgeclip was built without it"),
            "{e}"
        );
    }

    #[test]
    fn targets() {
        let t = Target::of(&Broker::Embedded { listen: "0.0.0.0:1883".parse().unwrap() });
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 1883));
        let t = Target::of(&Broker::Embedded { listen: "[::]:1884".parse().unwrap() });
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 1884));
        let t = Target::of(&Broker::External { host: "::1".into(), port: 1883, tls: false });
        assert_eq!((t.host.as_str(), t.display.as_str()), ("[::1]", "mqtt://[::1]:1883"));
        let t = Target::of(&Broker::External { host: "mqtt.lan".into(), port: 8883, tls: true });
        assert_eq!(t.display, "mqtts://mqtt.lan:8883");
    }
}
