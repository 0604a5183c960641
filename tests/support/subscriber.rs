//! The tests' MQTT subscriber: a client (rumqttc) that watches a broker and
//! records everything it receives, in arrival order.
//!
//! Its session is persistent (QoS 1, no clean session), so that it misses
//! nothing while it or the broker is away; it reconnects every 100 ms and
//! subscribes again on every connection. Tests read what arrived either as
//! a stream ([`Subscriber::next`], [`Subscriber::receive`],
//! [`Subscriber::drain`]) or as the whole record so far ([`Subscriber::all`],
//! [`Subscriber::wait_for`]); the two views are independent. Failure
//! messages say how many messages arrived and each connection's
//! `session_present`. Dropping it ends its thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter};

/// One message as the subscriber got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// Where a [`Subscriber`] connects, and what it subscribes to.
#[derive(Debug, Clone)]
pub struct SubscriberOptions {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub filters: Vec<String>,
    pub credentials: Option<(String, String)>,
    /// TLS to the broker (only with the `tls` feature, as rumqttc's own).
    #[cfg(feature = "tls")]
    pub tls: Option<rumqttc::TlsConfiguration>,
}

impl SubscriberOptions {
    /// A plain connection to 127.0.0.1:`port`, without credentials.
    pub fn new(port: u16, client_id: &str, filters: &[&str]) -> SubscriberOptions {
        SubscriberOptions {
            host: "127.0.0.1".into(),
            port,
            client_id: client_id.into(),
            filters: filters.iter().map(|f| f.to_string()).collect(),
            credentials: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Keep-alive: a broker that went away is noticed within seconds.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Largest packet either way: snapshots are JPEGs of tens of KB, and the
/// MQTT tests send megabytes (rumqttc's default is 10 KiB).
const MAX_PACKET_BYTES: usize = 16 << 20;

/// Requests the client may queue for its thread.
const REQUEST_CAPACITY: usize = 100;

/// Pause between reconnection attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// How long [`Subscriber::start`] waits for the broker to acknowledge the
/// subscription.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long dropping a subscriber waits for its thread to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How often dropping a subscriber looks whether its thread ended.
const STOP_POLL_PERIOD: Duration = Duration::from_millis(10);

/// How often [`Subscriber::wait_for`] looks at the record again.
const POLL_PERIOD: Duration = Duration::from_millis(50);

/// What the thread records, shared with the subscriber.
#[derive(Default)]
struct Record {
    messages: Mutex<Vec<Received>>,
    /// Signalled on every message.
    arrived: Condvar,
    /// `session_present` of each CONNACK so far.
    connects: Mutex<Vec<bool>>,
}

/// An MQTT client that subscribes and records what arrives (see the module
/// documentation).
pub struct Subscriber {
    client: Client,
    record: Arc<Record>,
    /// How many recorded messages [`Subscriber::next`] has handed out.
    read: Mutex<usize>,
    thread: Option<JoinHandle<()>>,
    /// Tells the thread to end.
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    /// A plain subscriber on 127.0.0.1:`port` (see [`Subscriber::start`]).
    pub fn connect(port: u16, client_id: &str, filters: &[&str]) -> Subscriber {
        Subscriber::start(SubscriberOptions::new(port, client_id, filters))
    }

    /// Connects and subscribes; returns once the broker acknowledged the
    /// subscription (at once when there are no filters: a client that only
    /// publishes).
    pub fn start(options: SubscriberOptions) -> Subscriber {
        let mut mqtt = MqttOptions::new(options.client_id.clone(), options.host.clone(), options.port);
        mqtt.set_clean_session(false)
            .set_keep_alive(KEEP_ALIVE)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        if let Some((user, password)) = &options.credentials {
            mqtt.set_credentials(user.clone(), password.clone());
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &options.tls {
            mqtt.set_transport(rumqttc::Transport::tls_with_config(tls.clone()));
        }
        let (client, mut connection) = Client::new(mqtt, REQUEST_CAPACITY);
        let record = Arc::new(Record::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
        let thread = {
            let (record, stop, sub_client) = (Arc::clone(&record), Arc::clone(&stop), client.clone());
            let filters: Vec<SubscribeFilter> =
                options.filters.iter().map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)).collect();
            std::thread::spawn(move || {
                // Ends when the client is dropped or disconnects.
                for event in connection.iter() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            record.connects.lock().unwrap().push(ack.session_present);
                            // Every time: a session the broker says it kept
                            // may still lack a subscription whose SUBACK was
                            // lost with the connection. One SUBSCRIBE for all
                            // filters: one SUBACK covers them all.
                            if !filters.is_empty() {
                                let _ = sub_client.try_subscribe_many(filters.clone());
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = subscribed_tx.send(());
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let received = Received { topic: p.topic, payload: p.payload.to_vec(), retain: p.retain };
                            record.messages.lock().unwrap().push(received);
                            record.arrived.notify_all();
                        }
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                        Ok(_) => {}
                        Err(_) => std::thread::sleep(RECONNECT_PAUSE),
                    }
                }
            })
        };
        let subscriber = Subscriber { client, record, read: Mutex::new(0), thread: Some(thread), stop };
        if !options.filters.is_empty() && subscribed.recv_timeout(SUBACK_TIMEOUT).is_err() {
            panic!(
                "'{}' got no SUBACK for {:?} within {SUBACK_TIMEOUT:?} (connections: {:?})",
                options.client_id,
                options.filters,
                subscriber.connects()
            );
        }
        subscriber
    }

    /// Everything received so far, in arrival order.
    pub fn all(&self) -> Vec<Received> {
        self.record.messages.lock().unwrap().clone()
    }

    /// Waits until `done` holds for everything received so far, and returns
    /// that; panics, naming `what`, after `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.all();
            if done(&all) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; got {} messages (connections: {:?})",
                all.len(),
                self.connects()
            );
            std::thread::sleep(POLL_PERIOD);
        }
    }

    /// The next message not yet handed out by `next`, or None after
    /// `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Received> {
        let mut read = self.read.lock().unwrap();
        let messages = self.record.messages.lock().unwrap();
        let (messages, _) =
            self.record.arrived.wait_timeout_while(messages, timeout, |messages| messages.len() <= *read).unwrap();
        let message = messages.get(*read).cloned()?;
        *read += 1;
        Some(message)
    }

    /// Waits until a message on `topic` with `payload` arrives (others are
    /// skipped); panics after `timeout`.
    pub fn wait_for_payload(&self, topic: &str, payload: &str, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(m) if m.topic == topic && m.payload == payload.as_bytes() => return m,
                Some(_) => {}
                None => {
                    panic!("no '{payload}' on '{topic}' within {timeout:?} (connections: {:?})", self.connects())
                }
            }
        }
    }

    /// The texts of the next `n` messages on `topic` (others are skipped);
    /// panics, with what came, after `timeout`.
    pub fn receive(&self, topic: &str, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(m) if m.topic == topic => got.push(m.text()),
                Some(_) => {}
                None => panic!(
                    "{} of {n} messages on '{topic}' within {timeout:?}: {got:?} (connections: {:?})",
                    got.len(),
                    self.connects()
                ),
            }
        }
        got
    }

    /// Everything that arrives until nothing more has come for `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Received> {
        let mut all = Vec::new();
        while let Some(m) = self.next(quiet) {
            all.push(m);
        }
        all
    }

    /// `session_present` of each CONNACK so far (for failure messages).
    pub fn connects(&self) -> Vec<bool> {
        self.record.connects.lock().unwrap().clone()
    }

    /// Publishes (QoS 1), as a second client or a user would.
    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.to_vec()).unwrap();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // A clean DISCONNECT ends the thread; if it is not connected, the
        // flag does at its next reconnect attempt (its client clone keeps
        // the connection alive: a thread left retrying for the rest of the
        // run makes qemu-user's fork, and so every later spawn under
        // emulation, likelier to deadlock).
        self.stop.store(true, Ordering::Relaxed);
        if self.client.try_disconnect().is_ok() {
            if let Some(thread) = self.thread.take() {
                let deadline = Instant::now() + STOP_TIMEOUT;
                while !thread.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(STOP_POLL_PERIOD);
                }
            }
        }
    }
}

/// The retained messages a new subscriber to `filter` on 127.0.0.1:`port`
/// gets, by topic (each checked to carry the retain flag).
pub fn retained(port: u16, client_id: &str, filter: &str) -> BTreeMap<String, Vec<u8>> {
    let sub = Subscriber::connect(port, client_id, &[filter]);
    // The broker sends them right after the SUBACK: half a second of quiet
    // means there are no more.
    sub.drain(Duration::from_millis(500))
        .into_iter()
        .map(|m| {
            assert!(m.retain, "'{}' reached a new subscriber without the retain flag", m.topic);
            (m.topic, m.payload)
        })
        .collect()
}
