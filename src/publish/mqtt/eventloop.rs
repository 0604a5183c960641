//! The MQTT thread: it owns rumqttc's `Connection`, turns its events into
//! calls on the state machine ([`State`]) and sends what that asks for
//! through rumqttc's `Client`. It also sets up what rumqttc needs before the
//! first connection (persistent session, packet sizes, last will,
//! credentials, TLS), waits between attempts with a [`Backoff`], subscribes
//! to the command filters and hands received commands to the daemon.
//!
//! The state machine and rumqttc's request side sit behind one lock
//! ([`Shared`]), which the daemon's threads take to publish and the MQTT
//! thread to feed events; every step ends by handing rumqttc what the state
//! machine has ready ([`Link::pump`]).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, Connection, ConnectionError, Event, LastWill, MqttOptions, NetworkOptions, Outgoing,
    OversizedPublishes, Packet, QoS, StateError, SubscribeFilter,
};

use super::state::{State, INFLIGHT_WINDOW, OFFLINE};
use super::{Incoming, MqttError, Target, MAX_PACKET_SIZE};
use crate::config::MqttConfig;
use crate::util::backoff::Backoff;
use crate::util::log_limit::{also, LogLimit};
use crate::util::untrusted::untrusted;

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

// ---- the state shared by the daemon's threads and the MQTT thread ----------

pub(super) struct Shared {
    link: Mutex<Link>,
    /// Signals shutdown and abandonment to the MQTT thread's backoff wait,
    /// and the thread's end to `shutdown`.
    pub changed: Condvar,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Link> {
        // A panic elsewhere while holding the lock leaves consistent data:
        // every change is made before anything that could panic.
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The state machine, and rumqttc's request side that sends what it asks
/// for.
pub(super) struct Link {
    pub state: State,
    /// rumqttc's request side. Taken away when the client is dropped or shut
    /// down, which closes rumqttc's request channel and so ends the thread.
    client: Option<Client>,
    /// Bumped to cut the thread's backoff wait short.
    wakeups: u64,
    /// The thread has ended.
    pub finished: bool,
}

impl Link {
    /// Hands queued messages to rumqttc while connected, up to the window.
    pub fn pump(&mut self) {
        let Some(client) = &self.client else { return };
        while let Some(p) = self.state.next_publish() {
            if client.try_publish(p.topic, p.qos, p.retain, p.payload).is_err() {
                // The channel is full (its capacity makes that impossible)
                // or closed (we are being dropped): the message waits.
                self.state.put_back();
                break;
            }
        }
    }

    /// Once shutting down and everything is delivered, asks rumqttc for a
    /// DISCONNECT (whose `Outgoing::Disconnect` event ends the thread).
    pub fn maybe_disconnect(&mut self) {
        if self.state.disconnect_due() {
            if let Some(client) = &self.client {
                if client.try_disconnect().is_ok() {
                    self.state.disconnect_requested();
                }
            }
        }
    }

    /// Cuts the thread's backoff wait short, so that one more attempt is
    /// made at once.
    pub fn wake(&mut self) {
        self.wakeups += 1;
    }

    /// Ends the thread without a DISCONNECT: the broker publishes the last
    /// will. rumqttc's event loop keeps a sender of its own request channel,
    /// so dropping our `Client` does not wake it; a last `offline` (see
    /// [`State::farewell`]) does, and the thread, finding no client, ends
    /// and closes the connection.
    pub fn abandon(&mut self) {
        if let Some(client) = self.client.take() {
            if let Some(p) = self.state.farewell() {
                let _ = client.try_publish(p.topic, p.qos, p.retain, p.payload);
            }
        }
        self.wake();
    }

    /// The client was dropped, or shut down and out of time.
    fn abandoned(&self) -> bool {
        self.client.is_none()
    }
}

// ---- starting ----------------------------------------------------------------

/// The MQTT thread, started.
pub(super) struct Started {
    pub shared: Arc<Shared>,
    pub incoming: Receiver<Incoming>,
    pub thread: JoinHandle<()>,
}

/// Sets up rumqttc for the broker in `config` (the TLS files are read and
/// checked here) and starts the MQTT thread, which connects in the
/// background. The topics are already checked.
pub(super) fn start(
    config: &MqttConfig,
    availability_topic: String,
    subscriptions: Vec<String>,
) -> Result<Started, MqttError> {
    let target = Target::of(&config.broker);
    let oversized = Arc::new(OversizedPublishes::default());
    let mut options = MqttOptions::new(config.client_id.clone(), target.host.clone(), target.port);
    options
        .set_keep_alive(config.keepalive)
        // A persistent session, with the subscriptions at QoS 0 (the module
        // documentation of `publish::mqtt` says why both).
        .set_clean_session(false)
        .set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE)
        // An oversized command (every subscription is QoS 0) is read
        // through, dropped and counted; the connection stays up.
        .set_drop_oversized_publishes(Arc::clone(&oversized))
        .set_inflight(RUMQTTC_INFLIGHT)
        .set_last_will(LastWill::new(availability_topic.clone(), OFFLINE, QoS::AtLeastOnce, true));
    if let (Some(user), password) = (&config.username, &config.password) {
        options.set_credentials(user.clone(), password.clone().unwrap_or_default());
    }
    if target.tls {
        options.set_transport(super::tls::transport(config, &target)?);
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
    let link = Link {
        state: State::new(config.offline_queue, config.qos.min(1), availability_topic),
        client: Some(client),
        wakeups: 0,
        finished: false,
    };
    let shared = Arc::new(Shared { link: Mutex::new(link), changed: Condvar::new() });
    let worker = Worker {
        shared: Arc::clone(&shared),
        target,
        username: config.username.clone(),
        client_id: config.client_id.clone(),
        ca_file: config.ca_file.clone(),
        subscriptions,
        incoming: incoming_tx,
        full_log: Mutex::new(LogLimit::new()),
        oversized,
        oversized_seen: std::cell::Cell::new(0),
        oversized_log: Mutex::new(LogLimit::new()),
    };
    let thread = std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || worker.run(&mut connection))
        .map_err(MqttError::Thread)?;
    Ok(Started { shared, incoming, thread })
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
    /// Drops for want of room, logged at a bounded rate.
    full_log: Mutex<LogLimit>,
    /// Incoming publishes rumqttc dropped for their size, how many of them
    /// were counted already, and their log lines at a bounded rate.
    oversized: Arc<OversizedPublishes>,
    oversized_seen: std::cell::Cell<usize>,
    oversized_log: Mutex<LogLimit>,
}

/// Whether the thread goes on.
enum Step {
    Continue,
    Done,
}

impl Worker {
    fn run(self, connection: &mut Connection) {
        // Every line this thread logs names the broker it is about.
        let _span = tracing::info_span!("mqtt", broker = %self.target.display).entered();
        let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_MAX).with_stable_run(STABLE_CONNECTION);
        loop {
            if self.shared.lock().abandoned() {
                // Dropped, or shut down and out of time.
                break;
            }
            // Blocks until rumqttc has something: a packet, a written request,
            // a keep-alive ping, a (failed) connection attempt.
            let received = connection.recv();
            self.count_oversized();
            match received {
                // Every request sender is gone: the client was dropped.
                Err(_) => break,
                Ok(Ok(event)) => {
                    if let Event::Incoming(Packet::ConnAck(ack)) = &event {
                        // After a clean start that dropped an oversized
                        // message: persistent again from the next connection.
                        connection.eventloop.mqtt_options.set_clean_session(false);
                        backoff.run_started();
                        self.connected(ack.session_present);
                        continue;
                    }
                    if let Step::Done = self.event(event) {
                        break;
                    }
                }
                Ok(Err(error)) => {
                    let was_connected = backoff.run_ended();
                    let delay = backoff.failed();
                    self.failed(connection, &error, was_connected, delay);
                    if !self.wait(delay) {
                        break;
                    }
                }
            }
        }
        let mut link = self.shared.lock();
        link.state.closed();
        link.finished = true;
        drop(link);
        self.shared.changed.notify_all();
    }

    /// Counts and logs the incoming publishes rumqttc dropped for their size
    /// since the last call.
    fn count_oversized(&self) {
        let count = self.oversized.count.load(std::sync::atomic::Ordering::Relaxed);
        let new = count - self.oversized_seen.replace(count);
        if new == 0 {
            return;
        }
        let mut link = self.shared.lock();
        for _ in 0..new {
            link.state.incoming_refused();
        }
        drop(link);
        let len = self.oversized.last_len.load(std::sync::atomic::Ordering::Relaxed);
        let mut log = self.oversized_log.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..new {
            if let Some(n) = log.check() {
                tracing::warn!(
                    "dropped a message of {len} bytes from the MQTT broker on a command topic, more than the \
                     {MAX_PACKET_SIZE} this client takes{}; the connection stays up — limit the broker's message \
                     size (Mosquitto: max_packet_size) or who may publish to the command topics (README: Security)",
                    also(n)
                );
            }
        }
    }

    /// CONNACK accepted: `online`, the subscriptions, the retained states if
    /// the broker lost them, then the queue.
    fn connected(&self, session_present: bool) {
        let mut link = self.shared.lock();
        let waiting = link.state.queued();
        tracing::info!(
            "connected to the MQTT broker at {} as '{}' ({}){}",
            self.target.display,
            self.client_id,
            if session_present { "session resumed" } else { "new session" },
            if waiting > 0 { format!("; delivering {waiting} queued messages") } else { String::new() }
        );
        let subscribe = link.state.accepted(session_present);
        if subscribe && !self.subscriptions.is_empty() {
            if let Some(client) = &link.client {
                let filters = self.subscriptions.iter().map(|f| SubscribeFilter::new(f.clone(), QoS::AtMostOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::warn!("cannot subscribe to {:?}: {e}", self.subscriptions);
                }
            }
        }
        link.pump();
        link.maybe_disconnect();
    }

    fn event(&self, event: Event) -> Step {
        let mut link = self.shared.lock();
        match event {
            Event::Incoming(Packet::Publish(p)) => {
                let topic = p.topic.clone();
                match self.incoming.try_send(Incoming { topic: p.topic, payload: p.payload.to_vec() }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        link.state.incoming_refused();
                        if let Some(n) = self.full_log.lock().unwrap_or_else(|e| e.into_inner()).check() {
                            tracing::warn!(
                                "dropped an MQTT message on '{}': {INCOMING_CAPACITY} received ones are still unread{}",
                                untrusted(&topic),
                                also(n)
                            );
                        }
                    }
                    // The daemon no longer reads (it is shutting down).
                    Err(TrySendError::Disconnected(_)) => {}
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => link.state.acknowledged(ack.pkid),
            Event::Incoming(Packet::PubComp(comp)) => link.state.acknowledged(comp.pkid),
            Event::Incoming(Packet::SubAck(ack)) => {
                link.state.subscriptions_acknowledged();
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
            Event::Outgoing(Outgoing::Publish(pkid)) => link.state.written(pkid),
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                tracing::warn!("rumqttc waits for packet id {pkid} to be acknowledged before sending more");
                link.state.held_back(pkid);
            }
            Event::Outgoing(Outgoing::Disconnect) => {
                link.state.disconnected_cleanly();
                tracing::info!("disconnected from the MQTT broker at {}", self.target.display);
                return Step::Done;
            }
            _ => {}
        }
        link.pump();
        link.maybe_disconnect();
        Step::Continue
    }

    /// A connection attempt failed or a connection broke; the next attempt
    /// comes after `backoff`.
    fn failed(&self, connection: &mut Connection, error: &ConnectionError, was_connected: bool, backoff: Duration) {
        let mut link = self.shared.lock();
        // rumqttc moved what it held into `pending` (and may have taken more
        // from its channel since): we re-send from our own queue instead.
        connection.eventloop.clean();
        connection.eventloop.pending.clear();
        connection.eventloop.state.collision = None;
        let (problem, refused) = self.describe(error, was_connected);
        if let ConnectionError::MqttState(StateError::Deserialization(rumqttc::Error::PayloadSizeLimitExceeded(_))) =
            error
        {
            link.state.incoming_refused();
            // The broker keeps the message in our session: a clean one drops it.
            connection.eventloop.mqtt_options.set_clean_session(true);
        }
        link.state.connection_lost(problem.clone());
        let queued = link.state.queued();
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
    }

    /// Waits before the next attempt; false if the client is gone. A
    /// shutdown cuts the wait short, so that one more attempt is made.
    fn wait(&self, backoff: Duration) -> bool {
        let until = Instant::now() + backoff;
        let mut link = self.shared.lock();
        let seen = link.wakeups;
        loop {
            if link.abandoned() {
                return false;
            }
            let now = Instant::now();
            if now >= until || link.wakeups != seen {
                return true;
            }
            link = self.shared.changed.wait_timeout(link, until - now).unwrap_or_else(|e| e.into_inner()).0;
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
            ConnectionError::Tls(e) => (super::tls::describe_error(e, &self.target, self.ca_file.as_deref()), false),
            ConnectionError::MqttState(StateError::AwaitPingResp) => {
                ("the broker stopped answering (no reply to a keep-alive ping)".to_string(), false)
            }
            ConnectionError::MqttState(StateError::Io(e)) => (format!("connection lost: {e}"), false),
            ConnectionError::MqttState(StateError::Deserialization(rumqttc::Error::PayloadSizeLimitExceeded(n))) => (
                format!(
                    "the broker sent a message of {n} bytes, more than the {MAX_PACKET_SIZE} this client takes; \
                     it is dropped (the next connection starts a clean session, so the broker does not send it \
                     again) — limit the broker's message size (Mosquitto: max_packet_size) to keep it out"
                ),
                false,
            ),
            ConnectionError::MqttState(StateError::Deserialization(e)) => {
                (format!("the broker sent something that is not MQTT 3.1.1 or is too big: {e}"), false)
            }
            e => (e.to_string(), false),
        }
    }
}
