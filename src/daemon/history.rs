//! The daemon's side of the store (`[store]`): events committed before they
//! are published, the outbox fed to the MQTT client, keyframes, retention,
//! and the worker thread that answers searches and snapshot requests over
//! MQTT.
//!
//! **The outbox as the MQTT queue's source.** An event's message is
//! committed with the event ([`History::record`]); when nothing older waits
//! on disk and fewer than [`FEED_WINDOW`] stored messages are in the MQTT
//! client's hands, it is handed over at once, so a live event goes out as
//! fast as without a store. Otherwise it waits on disk, and
//! [`History::feed`] hands over the oldest ones as acknowledgements make
//! room. After a restart everything undelivered is fed from the start, in
//! order. The client reports each acknowledged message
//! ([`crate::publish::mqtt::MqttClient::take_delivered`]) and
//! [`History::delivered`] deletes its row. Memory holds at most the window;
//! the backlog is bounded by the disk (retention).
//!
//! **When the disk fails** (full, read-only, an I/O error) a write error is
//! counted and logged at a bounded rate, and the message is published from
//! memory as without a store: the daemon never stops over its history.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::StoreConfig;
use crate::model::bundle::Bundle;
use crate::model::encode::{EncoderOptions, ImageEncoder};
use crate::pipeline::detect::{Event, EventKind};
use crate::publish::mqtt::{Message, MqttClient, MqttPublisher};
use crate::publish::payloads::{to_json, EventEndReason, StoreStats};
use crate::publish::publisher::Publisher;
use crate::publish::topics::Topics;
use crate::search::request::{valid_id, SearchRequest};
use crate::search::Searcher;
use crate::store::query::Kind;
use crate::store::{EventEnd, NewEvent, NewKeyframe, OutboxMessage, Store, StoreError};
use crate::util::log_limit::{also, LogLimit};
use crate::util::untrusted::untrusted;
#[cfg(test)]
use serde_json::Value;

/// Stored event messages in the MQTT client's hands at most. A reconnect
/// drains a backlog at 64 messages per main-loop tick (50 ms), over a
/// thousand a second, while a window of small JSON messages is a few tens
/// of KB of memory.
pub const FEED_WINDOW: usize = 64;

/// Retention also runs this often without writes: the age limit passes
/// while a camera is quiet.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Requests waiting for the search thread. A search takes milliseconds to
/// a second; anyone on the broker can ask, so more than a few waiting are
/// refused (and answered with an error) rather than queued without bound.
const SEARCH_QUEUE: usize = 4;

/// The largest search or snapshot request read: a search is a few hundred
/// bytes of JSON.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// An active event's key: camera, zone, label.
type EventKey = (String, Option<String>, String);

/// Counters for the stats message.
#[derive(Debug, Default, Clone)]
struct Counters {
    events: u64,
    keyframes: u64,
    removed: u64,
    dropped: u64,
    errors: u64,
}

/// The store as the main loop uses it.
pub struct History {
    store: Store,
    model: String,
    /// Store ids of active events.
    active: HashMap<EventKey, i64>,
    /// The last outbox row handed to the MQTT client.
    fed_up_to: i64,
    /// Rows handed over and not acknowledged yet.
    in_client: BTreeSet<i64>,
    /// Rows after `fed_up_to` may wait on disk.
    backlog: bool,
    last_retention: Instant,
    counters: Counters,
    error_log: LogLimit,
}

impl History {
    /// Opens the store for a daemon running `model`.
    pub fn open(config: &StoreConfig, model: &str) -> Result<History, StoreError> {
        let mut store = Store::open(config)?;
        let waiting = store.undelivered()?;
        if waiting > 0 {
            tracing::info!(
                "store '{}': {waiting} event message(s) not delivered before the last stop; publishing them first, in order",
                config.path.display()
            );
        }
        let removed = store.enforce_retention(SystemTime::now())?;
        let mut history = History {
            store,
            model: model.to_string(),
            active: HashMap::new(),
            fed_up_to: 0,
            in_client: BTreeSet::new(),
            backlog: true,
            last_retention: Instant::now(),
            counters: Counters::default(),
            error_log: LogLimit::new(),
        };
        history.count_removed(removed);
        Ok(history)
    }

    pub fn path(&self) -> &std::path::Path {
        self.store.path()
    }

    /// Commits one event (and its message), and returns the message to
    /// publish now in its place: `None` when older messages wait on disk (it
    /// follows them, [`History::feed`]). If the store cannot be written, the
    /// message is published from memory.
    pub fn record(
        &mut self,
        publisher: &Publisher,
        camera: &str,
        e: &Event,
        snapshot: Option<&[u8]>,
        embedding: Option<&[f32]>,
        frame_time: SystemTime,
    ) -> Option<Message> {
        let key = (camera.to_string(), e.zone.clone(), e.label.clone());
        // The event's id as far as known, for the message from memory if
        // the store fails.
        let mut known = self.active.get(&key).copied();
        let written = match e.kind {
            EventKind::Start => {
                let new = NewEvent {
                    camera,
                    zone: e.zone.as_deref(),
                    label: &e.label,
                    model: &self.model,
                    start: e.started,
                    start_frame: e.start_frame,
                    score: e.score,
                    embedding,
                    snapshot,
                };
                self.store.start_event(&new, |id| publisher.event_message(camera, e, frame_time, Some(id))).map(
                    |(id, outbox)| {
                        known = Some(id);
                        self.active.insert(key, id);
                        self.counters.events += 1;
                        outbox
                    },
                )
            }
            EventKind::End => {
                let id = self.active.remove(&key);
                let reason = e.reason.map(|r| EventEndReason::from(r).as_str()).unwrap_or("");
                let end = EventEnd { end: frame_time, frame: e.frame, peak: e.peak, reason };
                let (topic, payload) = publisher.event_message(camera, e, frame_time, id);
                self.store.end_event(id, &end, topic, payload)
            }
        };
        let message = match written {
            Ok(outbox) => self.take_now(outbox),
            Err(err) => {
                self.write_failed(&err);
                let (topic, payload) = publisher.event_message(camera, e, frame_time, known);
                Some(Message::event(topic, payload))
            }
        };
        self.retention();
        message
    }

    /// A stored message goes to the client now if nothing older waits and
    /// the window has room.
    fn take_now(&mut self, outbox: OutboxMessage) -> Option<Message> {
        if self.backlog || self.in_client.len() >= FEED_WINDOW {
            self.backlog = true;
            return None;
        }
        self.fed_up_to = outbox.id;
        self.in_client.insert(outbox.id);
        Some(Message::stored_event(outbox.topic, outbox.payload, outbox.id))
    }

    /// Hands waiting messages to the client (`publish`), oldest first, up
    /// to the window.
    pub fn feed(&mut self, mut publish: impl FnMut(Message)) {
        while self.backlog && self.in_client.len() < FEED_WINDOW {
            let room = FEED_WINDOW - self.in_client.len();
            let rows = match self.store.outbox_after(self.fed_up_to, room) {
                Ok(rows) => rows,
                Err(e) => {
                    self.write_failed(&e);
                    return;
                }
            };
            if rows.len() < room {
                self.backlog = false;
            }
            for row in rows {
                self.fed_up_to = row.id;
                self.in_client.insert(row.id);
                publish(Message::stored_event(row.topic, row.payload, row.id));
            }
        }
    }

    /// The broker acknowledged these outbox rows.
    pub fn delivered(&mut self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            self.in_client.remove(id);
        }
        if let Err(e) = self.store.delivered(ids) {
            self.write_failed(&e);
        }
    }

    /// Stores a keyframe.
    pub fn keyframe(
        &mut self,
        camera: &str,
        zone: Option<&str>,
        frame: u64,
        time: SystemTime,
        embedding: &[f32],
        snapshot: Option<&[u8]>,
    ) {
        let k = NewKeyframe { camera, zone, model: &self.model, time, frame, embedding, snapshot };
        match self.store.keyframe(&k) {
            Ok(Some(_)) => self.counters.keyframes += 1,
            Ok(None) => {}
            Err(e) => self.write_failed(&e),
        }
        self.retention();
    }

    /// Periodic work: retention once a minute.
    pub fn tick(&mut self) {
        if self.last_retention.elapsed() >= RETENTION_EVERY {
            self.retention();
        }
    }

    fn retention(&mut self) {
        self.last_retention = Instant::now();
        match self.store.enforce_retention(SystemTime::now()) {
            Ok(removed) => self.count_removed(removed),
            Err(e) => self.write_failed(&e),
        }
    }

    fn count_removed(&mut self, removed: crate::store::retention::Removed) {
        self.counters.removed += removed.events + removed.keyframes;
        self.counters.dropped += removed.undelivered;
        if removed.undelivered > 0 {
            tracing::warn!(
                "store '{}': the size or age limit removed {} event message(s) the broker never acknowledged (store.max_size_mb, store.max_age_days)",
                self.store.path().display(),
                removed.undelivered
            );
        }
    }

    fn write_failed(&mut self, e: &StoreError) {
        self.counters.errors += 1;
        if let Some(n) = self.error_log.check() {
            tracing::error!("{e}; events are published from memory until the store works again{}", also(n));
        }
    }

    /// The store's part of the stats message.
    pub fn stats(&self, searches: u64) -> StoreStats {
        StoreStats {
            bytes: self.store.used_bytes().unwrap_or(0),
            dropped: self.counters.dropped,
            errors: self.counters.errors,
            events_stored: self.counters.events,
            keyframes_stored: self.counters.keyframes,
            removed: self.counters.removed,
            searches,
            undelivered: self.store.undelivered().unwrap_or(0),
        }
    }
}

// ---- searches and snapshots over MQTT ----------------------------------------

/// A request for the search thread.
pub enum Request {
    Search { request: SearchRequest, fleet: bool },
    Snapshot { kind: Kind, id: i64 },
}

/// The search thread, as the main loop reaches it.
pub struct SearchService {
    tx: SyncSender<Request>,
    answered: Arc<std::sync::atomic::AtomicU64>,
    /// For the replies refused here.
    node: String,
    model: String,
}

impl SearchService {
    /// Starts the thread, with its own read connection to the store.
    pub fn start(
        path: &std::path::Path,
        bundle: Arc<Bundle>,
        options: EncoderOptions,
        image_encoder: Arc<ImageEncoder>,
        node: &str,
        topics: Topics,
        mqtt: MqttPublisher,
    ) -> Result<SearchService, StoreError> {
        let store = Store::open_read_only(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(SEARCH_QUEUE);
        let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let model = bundle.name.clone();
        let searcher = Searcher::new(bundle, options, node, topics.clone(), Some(image_encoder));
        let count = Arc::clone(&answered);
        std::thread::Builder::new()
            .name("search".into())
            .spawn(move || serve(store, searcher, &rx, &mqtt, &topics, &count))
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                problem: format!("cannot start the search thread: {e}"),
            })?;
        Ok(SearchService { tx, answered, node: node.to_string(), model })
    }

    /// Searches answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Parses and queues an incoming request; `Err` says why it was refused
    /// (for the command log). A search refused for a full queue is still
    /// answered, with the reason, so that its client need not wait.
    pub fn submit(&self, topics: &Topics, mqtt: &MqttClient, topic: &str, payload: &[u8]) -> Result<(), String> {
        if payload.len() > MAX_REQUEST_BYTES {
            return Err(format!("{} bytes, more than the {MAX_REQUEST_BYTES} a request may have", payload.len()));
        }
        let request = if topic == topics.snapshot_get() {
            let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8 text".to_string())?;
            let (kind, id) = parse_snapshot_request(text.trim())?;
            Request::Snapshot { kind, id }
        } else {
            let request: SearchRequest =
                serde_json::from_slice(payload).map_err(|e| format!("not a search request ({e}); see docs/mqtt.md"))?;
            if !valid_id(&request.id) {
                return Err(format!(
                    "search id '{}' is not one topic level of letters, digits, '-' and '_' (at most {} characters)",
                    untrusted(&request.id),
                    crate::search::request::MAX_ID_LEN
                ));
            }
            Request::Search { request, fleet: topic == topics.search_fleet() }
        };
        match self.tx.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Request::Search { request, .. })) => {
                let reply = crate::search::request::SearchReply {
                    id: request.id.clone(),
                    node: self.node.clone(),
                    model: self.model.clone(),
                    searched: 0,
                    took_ms: 0.0,
                    hits: Vec::new(),
                    error: Some(format!("busy: {SEARCH_QUEUE} searches already wait; ask again")),
                };
                mqtt.publish(Message::event(topics.search_reply(&request.id), to_json(&reply)));
                Err("the search thread is busy".into())
            }
            Err(_) => Err("the search thread is busy or gone".into()),
        }
    }
}

/// `event/ID` or `keyframe/ID`.
fn parse_snapshot_request(text: &str) -> Result<(Kind, i64), String> {
    let wrong = || format!("'{}' is not a snapshot request; accepted: event/ID or keyframe/ID", untrusted(text));
    let (kind, id) = text.split_once('/').ok_or_else(wrong)?;
    let kind = match kind {
        "event" => Kind::Event,
        "keyframe" => Kind::Keyframe,
        _ => return Err(wrong()),
    };
    Ok((kind, id.parse().map_err(|_| wrong())?))
}

fn serve(
    store: Store,
    mut searcher: Searcher,
    rx: &Receiver<Request>,
    mqtt: &MqttPublisher,
    topics: &Topics,
    answered: &std::sync::atomic::AtomicU64,
) {
    while let Ok(request) = rx.recv() {
        match request {
            Request::Search { request, fleet } => {
                let reply = searcher.answer(&store, &request, fleet);
                if let Some(e) = &reply.error {
                    tracing::info!("search '{}' not answered: {e}", request.id);
                }
                mqtt.publish(Message::event(topics.search_reply(&request.id), to_json(&reply)));
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Request::Snapshot { kind, id } => match store.snapshot(kind, id) {
                Ok(Some(jpeg)) => mqtt.publish(Message::event(topics.stored_snapshot(kind.as_str(), id), jpeg)),
                Ok(None) => tracing::info!("snapshot of {} {id} asked for: none is stored", kind.as_str()),
                Err(e) => tracing::warn!("snapshot of {} {id}: {e}", kind.as_str()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::detect::{EndReason, Event};

    fn start(label: &str) -> Event {
        Event {
            kind: EventKind::Start,
            zone: None,
            label: label.into(),
            score: 0.9,
            peak: 0.9,
            start_frame: 1,
            started: SystemTime::now(),
            frame: 1,
            duration: Duration::ZERO,
            reason: None,
        }
    }

    fn receipts(messages: &[Message]) -> Vec<i64> {
        messages.iter().map(|m| m.receipt.unwrap()).collect()
    }

    #[test]
    fn the_client_gets_a_window_of_stored_messages_in_order_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            enabled: true,
            path: dir.path().join("history.db"),
            max_bytes: u64::MAX,
            max_age: None,
            snapshots: true,
            keyframe_interval: None,
            mqtt_search: true,
        };
        let publisher = Publisher::new(Topics::new("edgeclip", "n"), None, "n", "m", None);
        let mut history = History::open(&config, "m").unwrap();
        // Nothing waits on disk at first... once the first feed found nothing.
        history.feed(|_| panic!("an empty store feeds nothing"));
        let mut now: Vec<Message> = Vec::new();
        for i in 0..(FEED_WINDOW + 36) {
            let e = start(&format!("label {i}"));
            now.extend(history.record(&publisher, "cam", &e, None, Some(&[1.0, 0.0]), SystemTime::now()));
        }
        // The broker is away: the window fills and the rest wait on disk.
        assert_eq!(receipts(&now), (1..=FEED_WINDOW as i64).collect::<Vec<_>>());
        let payload: Value = serde_json::from_slice(&now[3].payload).unwrap();
        assert_eq!((payload["id"].as_i64(), payload["label"].as_str()), (Some(4), Some("label 3")));
        history.feed(|_| panic!("the window is full"));
        // Ten acknowledged: ten more, the next in order.
        history.delivered(&(1..=10).collect::<Vec<_>>());
        let mut fed = Vec::new();
        history.feed(|m| fed.push(m));
        assert_eq!(receipts(&fed), (FEED_WINDOW as i64 + 1..=FEED_WINDOW as i64 + 10).collect::<Vec<_>>());
        // An end follows its start's id, behind the backlog.
        let end = Event { kind: EventKind::End, reason: Some(EndReason::Gone), ..start("label 0") };
        assert!(history.record(&publisher, "cam", &end, None, None, SystemTime::now()).is_none());
        // A restart: everything not acknowledged, from the oldest.
        drop(history);
        let mut history = History::open(&config, "m").unwrap();
        let mut fed = Vec::new();
        history.feed(|m| fed.push(m));
        assert_eq!(receipts(&fed), (11..11 + FEED_WINDOW as i64).collect::<Vec<_>>());
        history.delivered(&receipts(&fed));
        let mut rest = Vec::new();
        history.feed(|m| rest.push(m));
        assert_eq!(receipts(&rest), (11 + FEED_WINDOW as i64..=FEED_WINDOW as i64 + 37).collect::<Vec<_>>());
        let last: Value = serde_json::from_slice(&rest.last().unwrap().payload).unwrap();
        assert_eq!(
            (last["type"].as_str(), last["id"].as_i64()),
            (Some("end"), Some(1)),
            "the end names its start's id"
        );
        // Caught up: the next event goes to the client at once.
        history.delivered(&receipts(&rest));
        history.feed(|_| panic!("nothing waits"));
        assert!(history.record(&publisher, "cam", &start("new"), None, None, SystemTime::now()).is_some());
    }

    #[test]
    fn snapshot_requests() {
        assert_eq!(parse_snapshot_request("event/12"), Ok((Kind::Event, 12)));
        assert_eq!(parse_snapshot_request("keyframe/3"), Ok((Kind::Keyframe, 3)));
        assert!(parse_snapshot_request("event/x").is_err());
        assert!(parse_snapshot_request("12").is_err());
    }
}
