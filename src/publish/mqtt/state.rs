//! The MQTT client's queue and session state machine, free of I/O.
//!
//! [`State`] holds the bounded offline queue, the messages in flight, the
//! last retained payload per topic, the session flags and the counters. Its
//! methods change that state and say what to send next or what has to happen
//! ([`State::next_publish`], [`State::accepted`], [`State::disconnect_due`]);
//! they never touch the network or rumqttc's `Client`. The MQTT thread
//! (`eventloop`) feeds it rumqttc's events and sends what it asks for; the
//! documentation of `publish::mqtt` describes the policies in words.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rumqttc::QoS;

use super::{Message, MqttStats};
use crate::publish::payloads::Availability;

/// Messages handed to rumqttc and not yet acknowledged, at most. Enough to
/// keep a LAN link busy when a backlog drains after a reconnect (16 round
/// trips of a few ms); few enough that a broken connection re-sends at most
/// this many messages, the only duplicates a subscriber can see.
pub const INFLIGHT_WINDOW: usize = 16;

/// A full offline queue drops a message per publish; the log says so at
/// most this often, with the count since the last line.
pub const OVERFLOW_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Payloads of the availability topic.
pub(super) const ONLINE: &[u8] = Availability::Online.payload();
pub(super) const OFFLINE: &[u8] = Availability::Offline.payload();

/// A publish to hand to rumqttc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Publish {
    pub topic: String,
    pub qos: QoS,
    pub retain: bool,
    pub payload: Vec<u8>,
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
    !q.internal && !q.message.latest_only && q.message.receipt.is_none()
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

/// The queue and the session, as the daemon's threads and the MQTT thread
/// share them (behind one lock, with rumqttc's `Client`).
#[derive(Debug)]
pub(super) struct State {
    connected: bool,
    queue: Queue,
    /// Handed to rumqttc, not acknowledged yet, oldest first.
    inflight: VecDeque<Inflight>,
    /// `mqtt.offline_queue`.
    capacity: usize,
    /// The QoS a must-arrive message goes out with (see the module
    /// documentation of `publish::mqtt`).
    wire_qos: u8,
    /// The last retained payload per topic, published again when the broker
    /// lost our session.
    retained: BTreeMap<String, Vec<u8>>,
    availability: String,
    overflowed: u64,
    published: u64,
    /// Incoming messages dropped before the daemon saw them.
    incoming_refused: u64,
    /// Connections the broker accepted (CONNACK) since the start.
    connections: u64,
    last_error: Option<String>,
    overflow_log: OverflowLog,
    /// `shutdown` was called: disconnect once everything is delivered.
    shutdown: bool,
    /// DISCONNECT was handed to rumqttc.
    disconnecting: bool,
    /// A packet id rumqttc reported as colliding, whose publish is written
    /// later (see [`State::held_back`]).
    collided: Option<u16>,
    /// The broker acknowledged our subscriptions since we started.
    subscribed: bool,
    /// `offline` was delivered and DISCONNECT written.
    clean: bool,
    /// Receipts of delivered messages not yet taken by the daemon.
    receipts: Vec<i64>,
}

impl State {
    /// A client that has not connected yet, with an empty queue of room for
    /// `capacity` events, sending must-arrive messages with `wire_qos`.
    pub fn new(capacity: usize, wire_qos: u8, availability: String) -> State {
        State {
            connected: false,
            queue: Queue::default(),
            inflight: VecDeque::new(),
            capacity,
            wire_qos,
            retained: BTreeMap::new(),
            availability,
            overflowed: 0,
            published: 0,
            incoming_refused: 0,
            connections: 0,
            last_error: None,
            overflow_log: OverflowLog::default(),
            shutdown: false,
            disconnecting: false,
            collided: None,
            subscribed: false,
            clean: false,
            receipts: Vec::new(),
        }
    }

    pub fn stats(&self) -> MqttStats {
        MqttStats {
            connected: self.connected,
            queued: self.queue.len() + self.inflight.len(),
            overflowed: self.overflowed,
            published: self.published,
            reconnects: self.connections.saturating_sub(1),
            last_error: self.last_error.clone(),
            incoming_refused: self.incoming_refused,
        }
    }

    /// An incoming message was dropped before the daemon saw it (too large
    /// to take, or no room among the unread ones).
    pub fn incoming_refused(&mut self) {
        self.incoming_refused += 1;
    }

    /// Messages waiting in the queue (not those in flight).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// `offline` was delivered and DISCONNECT written.
    pub fn clean(&self) -> bool {
        self.clean
    }

    /// The daemon publishes `message`: it is queued, and a retained one is
    /// remembered to be published again if the broker loses it (an empty
    /// one, which deletes the topic's retained message, is forgotten).
    pub fn publish(&mut self, message: Message) {
        if message.retain {
            if message.payload.is_empty() {
                self.retained.remove(&message.topic);
            } else {
                self.retained.insert(message.topic.clone(), message.payload.clone());
            }
        }
        self.enqueue(Queued { message, internal: false });
    }

    /// The client shuts down: `offline` (retained) is queued after
    /// everything else, and once all is delivered [`State::disconnect_due`]
    /// says so.
    pub fn begin_shutdown(&mut self) {
        let offline = Message::retained(self.availability.clone(), OFFLINE.to_vec());
        self.enqueue(Queued { message: offline, internal: true });
        self.shutdown = true;
    }

    /// The daemon's messages the broker has not acknowledged, oldest first.
    pub fn undelivered(&self) -> Vec<Message> {
        self.inflight
            .iter()
            .map(|i| &i.queued)
            .chain(self.queue.iter())
            .filter(|q| !q.internal)
            .map(|q| q.message.clone())
            .collect()
    }

    /// What to send when the client is abandoned (dropped, or shut down and
    /// out of time) while connected and not disconnected cleanly: a last
    /// `offline` (QoS 0, retained, as the will says), which also wakes
    /// rumqttc's event loop so that the thread notices and ends.
    pub fn farewell(&self) -> Option<Publish> {
        (self.connected && !self.clean).then(|| Publish {
            topic: self.availability.clone(),
            qos: QoS::AtMostOnce,
            retain: true,
            payload: OFFLINE.to_vec(),
        })
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

    /// The oldest queued message, to hand to rumqttc while connected and
    /// the window has room; from now on it is in flight (a copy: ours stays
    /// until the broker acknowledges it).
    pub fn next_publish(&mut self) -> Option<Publish> {
        if !self.connected || self.inflight.len() >= INFLIGHT_WINDOW {
            return None;
        }
        let q = self.queue.pop_front()?;
        let qos = match q.message.qos.min(self.wire_qos) {
            0 => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        };
        let publish = Publish {
            topic: q.message.topic.clone(),
            qos,
            retain: q.message.retain,
            payload: q.message.payload.clone(),
        };
        self.inflight.push_back(Inflight { queued: q, qos, pkid: None });
        Some(publish)
    }

    /// rumqttc did not take the publish [`State::next_publish`] returned
    /// last (its channel is full, which its capacity makes impossible, or
    /// closed, as the client is dropped): the message waits at the front of
    /// the queue again.
    pub fn put_back(&mut self) {
        if let Some(i) = self.inflight.pop_back() {
            self.queue.push_front(i.queued);
        }
    }

    /// Whether to ask rumqttc for a DISCONNECT now: shutting down,
    /// connected, everything delivered, and not asked yet. Its
    /// `Outgoing::Disconnect` event ends the thread.
    pub fn disconnect_due(&self) -> bool {
        self.shutdown && self.connected && !self.disconnecting && self.queue.len() == 0 && self.inflight.is_empty()
    }

    /// rumqttc took the DISCONNECT.
    pub fn disconnect_requested(&mut self) {
        self.disconnecting = true;
    }

    /// CONNACK accepted (`session_present`: the broker kept our session):
    /// `online` first, then the retained states if the broker lost them,
    /// then the queue. Returns whether to subscribe to the command filters:
    /// until the broker acknowledged them once, whatever it remembers (an
    /// earlier run may have had other filters, or the first SUBSCRIBE was
    /// lost with its connection); after that whenever the session is new.
    pub fn accepted(&mut self, session_present: bool) -> bool {
        self.connected = true;
        self.connections += 1;
        if self.overflow_log.unlogged > 0 {
            self.log_overflow(None);
        }
        if !session_present {
            // Newest first to the front, so that they go out in topic order.
            let republish: Vec<Queued> = self
                .retained
                .iter()
                .rev()
                .filter(|(topic, _)| self.queue.latest_on(topic).is_none())
                .map(|(topic, payload)| Queued {
                    message: Message::retained(topic.clone(), payload.clone()),
                    internal: true,
                })
                .collect();
            for q in republish {
                self.queue.push_front(q);
            }
        }
        // `online` first; one left over from a broken connection goes.
        let availability = self.availability.clone();
        while let Some(i) =
            self.queue.position(|q| q.internal && q.message.topic == availability && q.message.payload == ONLINE)
        {
            self.queue.remove(i);
        }
        self.queue.push_front(Queued { message: Message::retained(availability, ONLINE.to_vec()), internal: true });
        !self.subscribed || !session_present
    }

    /// The broker answered our SUBSCRIBE.
    pub fn subscriptions_acknowledged(&mut self) {
        self.subscribed = true;
    }

    /// rumqttc wrote a publish: the oldest message still without a packet id
    /// is that one (rumqttc takes requests in order).
    pub fn written(&mut self, pkid: u16) {
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

    /// rumqttc's packet-id collision (`Outgoing::AwaitAck`): cannot happen
    /// with our window under its in-flight limit. If it does, rumqttc holds
    /// this publish back until the old id is acknowledged, then writes it
    /// (an `Outgoing::Publish` with this id, which [`State::written`]
    /// recognizes); a reconnect re-sends it from our queue.
    pub fn held_back(&mut self, pkid: u16) {
        self.written(pkid);
        self.collided = Some(pkid);
    }

    /// The broker acknowledged the publish with this packet id.
    pub fn acknowledged(&mut self, pkid: u16) {
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
        if let Some(receipt) = q.message.receipt {
            self.receipts.push(receipt);
        }
    }

    /// The receipts of messages delivered since the last call.
    pub fn take_delivered(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.receipts)
    }

    /// DISCONNECT was written after everything was delivered.
    pub fn disconnected_cleanly(&mut self) {
        self.clean = true;
    }

    /// A connection attempt failed or a connection broke, for the reason
    /// `problem`: what was in flight goes back to the queue.
    pub fn connection_lost(&mut self, problem: String) {
        self.connected = false;
        self.collided = None;
        self.disconnecting = false;
        self.requeue_inflight();
        self.last_error = Some(problem);
    }

    /// The MQTT thread ended: no connection any more.
    pub fn closed(&mut self) {
        self.connected = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(capacity: usize) -> State {
        State::new(capacity, 1, "a".into())
    }

    fn topics(s: &State) -> Vec<String> {
        s.queue.iter().map(|q| format!("{}={}", q.message.topic, String::from_utf8_lossy(&q.message.payload))).collect()
    }

    fn user(m: Message) -> Queued {
        Queued { message: m, internal: false }
    }

    fn event(topic: &str, payload: &str) -> Message {
        Message::event(topic.into(), payload.as_bytes().to_vec())
    }

    fn retained(topic: &str, payload: &str) -> Message {
        Message::retained(topic.into(), payload.as_bytes().to_vec())
    }

    /// Everything the state hands out now, as "topic=payload".
    fn send_all(s: &mut State) -> Vec<String> {
        std::iter::from_fn(|| s.next_publish())
            .map(|p| format!("{}={}", p.topic, String::from_utf8_lossy(&p.payload)))
            .collect()
    }

    /// rumqttc writes everything handed out (packet ids from `first`) and
    /// the broker acknowledges it.
    fn deliver_all(s: &mut State, first: u16) {
        let ids: Vec<u16> = (first..).take(s.inflight.len()).collect();
        for &id in &ids {
            s.written(id);
        }
        for &id in &ids {
            s.acknowledged(id);
        }
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
    fn stored_events_are_reported_once_acknowledged_and_never_dropped_for_room() {
        let mut s = state(1);
        for receipt in 1..=3 {
            s.publish(Message::stored_event("e".into(), format!("{receipt}").into_bytes(), receipt));
        }
        s.publish(event("e", "ram"));
        assert_eq!(s.overflowed, 0, "stored events wait on disk, not in the queue's room");
        s.accepted(false);
        assert_eq!(send_all(&mut s), ["a=online", "e=1", "e=2", "e=3", "e=ram"]);
        s.written(1);
        s.written(2);
        s.acknowledged(1);
        assert_eq!(s.take_delivered(), Vec::<i64>::new(), "only online, which has no receipt, is acknowledged");
        s.written(3);
        s.acknowledged(2);
        // The connection breaks: the unacknowledged go back and are sent again.
        s.connection_lost("gone".into());
        assert_eq!(s.take_delivered(), [1]);
        s.accepted(true);
        assert_eq!(send_all(&mut s), ["a=online", "e=2", "e=3", "e=ram"]);
        deliver_all(&mut s, 10);
        assert_eq!(s.take_delivered(), [2, 3]);
        assert!(s.take_delivered().is_empty());
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
    fn nothing_is_sent_before_the_broker_accepts_us_and_then_online_goes_first_and_the_rest_in_order() {
        let mut s = state(10);
        for i in 1..=5 {
            s.publish(event("e", &i.to_string()));
        }
        assert_eq!(s.next_publish(), None, "not connected");
        assert!(s.accepted(false));
        assert_eq!(send_all(&mut s), ["a=online", "e=1", "e=2", "e=3", "e=4", "e=5"]);
        deliver_all(&mut s, 1);
        let stats = s.stats();
        assert_eq!((stats.published, stats.queued, stats.reconnects), (5, 0, 0), "online is not the daemon's");
        assert!(stats.connected);
    }

    #[test]
    fn must_arrive_messages_go_with_the_wire_qos_and_latest_news_with_qos_0() {
        let mut s = State::new(10, 1, "a".into());
        s.accepted(true);
        s.publish(event("e", "1"));
        s.publish(Message::latest("stats".into(), b"1".to_vec()));
        let qos: Vec<QoS> = std::iter::from_fn(|| s.next_publish()).map(|p| p.qos).collect();
        assert_eq!(qos, [QoS::AtLeastOnce, QoS::AtLeastOnce, QoS::AtMostOnce]);
        // mqtt.qos = 0: everything may be lost.
        let mut s = State::new(10, 0, "a".into());
        s.accepted(true);
        s.publish(event("e", "1"));
        assert!(std::iter::from_fn(|| s.next_publish()).all(|p| p.qos == QoS::AtMostOnce));
    }

    #[test]
    fn at_most_the_window_is_in_flight_and_each_acknowledgement_lets_one_more_go() {
        let mut s = state(100);
        s.accepted(true);
        for i in 0..40 {
            s.publish(event("e", &i.to_string()));
        }
        let sent = send_all(&mut s);
        assert_eq!(sent.len(), INFLIGHT_WINDOW, "online and the first events");
        assert_eq!(sent[1], "e=0");
        assert_eq!(s.stats().queued, 41);
        for id in 1..=3 {
            s.written(id);
        }
        assert_eq!(s.next_publish(), None, "written is not acknowledged");
        s.acknowledged(1);
        assert_eq!(send_all(&mut s), [format!("e={}", INFLIGHT_WINDOW - 1)]);
        assert_eq!(s.next_publish(), None);
    }

    #[test]
    fn a_publish_rumqttc_did_not_take_waits_at_the_front() {
        let mut s = state(10);
        s.accepted(true);
        s.publish(event("e", "1"));
        assert_eq!(send_all(&mut s), ["a=online", "e=1"]);
        s.put_back();
        assert_eq!(topics(&s), ["e=1"]);
        assert_eq!(s.inflight.len(), 1);
        assert_eq!(send_all(&mut s), ["e=1"]);
    }

    #[test]
    fn the_offline_queue_keeps_the_newest_events_and_counts_exactly_the_ones_it_dropped() {
        let mut s = state(5);
        for i in 0..12 {
            s.publish(event("e", &i.to_string()));
            // Latest-only messages in between are never dropped.
            s.publish(retained(&format!("state/{}", i % 3), &i.to_string()));
        }
        assert_eq!(s.overflowed, 7);
        assert_eq!(s.stats().overflowed, 7);
        s.accepted(true);
        let sent = send_all(&mut s);
        assert_eq!(
            sent,
            ["a=online", "e=7", "e=8", "e=9", "state/0=9", "e=10", "state/1=10", "e=11", "state/2=11"],
            "the 7 oldest events dropped, one state per topic, all in publishing order"
        );
    }

    #[test]
    fn states_snapshots_discovery_and_stats_keep_only_the_newest_per_topic_and_are_never_dropped() {
        let mut s = state(1);
        for i in 0..3 {
            s.publish(retained("edgeclip/garage/person/state", &format!("s{i}")));
            s.publish(retained("edgeclip/garage/person/snapshot", &format!("jpeg{i}")));
            s.publish(retained("homeassistant/binary_sensor/garage_person/config", &format!("d{i}")));
            s.publish(Message::latest("edgeclip/stats".into(), format!("n{i}").into_bytes()));
            for j in 0..3 {
                s.publish(event("edgeclip/garage/events", &format!("{i}.{j}")));
            }
        }
        assert_eq!(s.overflowed, 8, "9 events, room for 1");
        assert_eq!(
            topics(&s),
            [
                "edgeclip/garage/person/state=s2",
                "edgeclip/garage/person/snapshot=jpeg2",
                "homeassistant/binary_sensor/garage_person/config=d2",
                "edgeclip/stats=n2",
                "edgeclip/garage/events=2.2",
            ]
        );
    }

    #[test]
    fn a_broken_connection_sends_what_was_in_flight_again_first_in_order() {
        let mut s = state(10);
        s.accepted(true);
        for i in 1..=3 {
            s.publish(event("e", &i.to_string()));
        }
        assert_eq!(send_all(&mut s), ["a=online", "e=1", "e=2", "e=3"]);
        s.written(1);
        s.written(2);
        s.acknowledged(1);
        s.publish(event("e", "4"));
        s.connection_lost("connection lost: reset".into());
        assert_eq!(s.next_publish(), None);
        assert_eq!(s.stats().last_error.as_deref(), Some("connection lost: reset"));
        s.accepted(true);
        // `e=1` (whose PUBACK may be lost) again, one `online`, the rest in order.
        assert_eq!(send_all(&mut s), ["a=online", "e=1", "e=2", "e=3", "e=4"]);
        deliver_all(&mut s, 3);
        let stats = s.stats();
        assert_eq!((stats.published, stats.reconnects, stats.queued), (4, 1, 0));
    }

    #[test]
    fn retained_states_are_published_again_only_when_the_broker_lost_the_session() {
        let mut s = state(10);
        s.publish(retained("b", "1"));
        s.publish(retained("c", "1"));
        s.publish(retained("d", "1"));
        s.publish(Message::retained("d".into(), vec![])); // deletes d's retained message
        s.accepted(false);
        assert_eq!(send_all(&mut s), ["a=online", "b=1", "c=1", "d="], "queued ones are not doubled");
        deliver_all(&mut s, 1);
        assert_eq!(s.published, 3);
        s.connection_lost("gone".into());
        // The broker kept our session, and with it its retained store.
        s.accepted(true);
        assert_eq!(send_all(&mut s), ["a=online"]);
        deliver_all(&mut s, 10);
        s.connection_lost("gone".into());
        // A new session: every retained state again, unless a newer one waits.
        s.publish(retained("c", "2"));
        s.accepted(false);
        assert_eq!(send_all(&mut s), ["a=online", "b=1", "c=2"]);
        deliver_all(&mut s, 20);
        assert_eq!(s.published, 4, "b published again by us, not by the daemon");
    }

    #[test]
    fn subscriptions_are_renewed_until_acknowledged_and_then_for_new_sessions() {
        let mut s = state(10);
        assert!(s.accepted(true));
        assert!(s.accepted(true), "not acknowledged yet");
        s.subscriptions_acknowledged();
        assert!(!s.accepted(true));
        assert!(s.accepted(false));
    }

    #[test]
    fn shutdown_sends_offline_last_and_disconnects_once_everything_is_delivered() {
        let mut s = state(10);
        s.publish(event("e", "1"));
        s.begin_shutdown();
        assert!(!s.disconnect_due(), "not connected");
        assert_eq!(s.undelivered(), [event("e", "1")], "offline is not the daemon's");
        s.accepted(true);
        assert_eq!(send_all(&mut s), ["a=online", "e=1", "a=offline"]);
        s.written(1);
        s.written(2);
        s.written(3);
        s.acknowledged(1);
        s.acknowledged(2);
        assert!(!s.disconnect_due());
        s.acknowledged(3);
        assert!(s.disconnect_due());
        s.disconnect_requested();
        assert!(!s.disconnect_due(), "asked once");
        assert!(s.farewell().is_some(), "not clean until DISCONNECT is written");
        s.disconnected_cleanly();
        assert!(s.clean());
        assert_eq!(s.farewell(), None);
        assert!(s.undelivered().is_empty());
    }

    #[test]
    fn an_abandoned_client_says_offline_only_while_connected() {
        let mut s = state(10);
        assert_eq!(s.farewell(), None);
        s.accepted(true);
        let offline = Publish { topic: "a".into(), qos: QoS::AtMostOnce, retain: true, payload: OFFLINE.to_vec() };
        assert_eq!(s.farewell(), Some(offline));
        s.closed();
        assert_eq!(s.farewell(), None);
    }

    #[test]
    fn a_held_back_publish_is_recognized_when_rumqttc_writes_it() {
        let mut s = state(10);
        s.accepted(true);
        s.publish(event("e", "1"));
        s.publish(event("e", "2"));
        send_all(&mut s);
        s.written(1);
        s.held_back(2);
        s.written(3);
        s.written(2);
        let ids: Vec<Option<u16>> = s.inflight.iter().map(|i| i.pkid).collect();
        assert_eq!(ids, [Some(1), Some(2), Some(3)], "the second write of id 2 is the held-back one");
    }
}
