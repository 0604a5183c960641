//! The store on a real SQLite file: the outbox across a reopen, the
//! schema's versions, retention by size and by age, and reading back. These
//! also run on aarch64 and armv7 (the unit tests' runs), where the bundled
//! SQLite is the boards' own build.

use std::time::{Duration, SystemTime};

use super::query::{Filter, Kind};
use super::vector::Quantized;
use super::*;

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        enabled: true,
        path: dir.join("history.db"),
        max_bytes: 1_000_000_000,
        max_age: None,
        snapshots: true,
        keyframe_interval: None,
        mqtt_search: true,
    }
}

/// A unit vector pointing mostly along `axis`.
fn embedding(axis: usize) -> Vec<f32> {
    let mut v = vec![0.05f32; 64];
    v[axis % 64] = 1.0;
    v
}

fn start(store: &mut Store, label: &str, at: SystemTime, jpeg: Option<&[u8]>, axis: usize) -> (i64, OutboxMessage) {
    let v = embedding(axis);
    let e = NewEvent {
        camera: "front",
        zone: None,
        label,
        model: "m",
        start: at,
        start_frame: 1,
        score: 0.9,
        embedding: Some(&v),
        snapshot: jpeg,
    };
    store.start_event(&e, |id| ("t/events".into(), format!("start {id}").into_bytes())).unwrap()
}

fn end(store: &mut Store, id: i64, at: SystemTime) -> OutboxMessage {
    let end = EventEnd { end: at, frame: 9, peak: 0.95, reason: "gone" };
    store.end_event(Some(id), &end, "t/events".into(), format!("end {id}").into_bytes()).unwrap()
}

fn payloads(messages: &[OutboxMessage]) -> Vec<String> {
    messages.iter().map(|m| String::from_utf8_lossy(&m.payload).into_owned()).collect()
}

/// Bytes of the file and its write-ahead log.
fn file_bytes(path: &Path) -> u64 {
    let wal = path.with_file_name(format!("{}-wal", path.file_name().unwrap().to_string_lossy()));
    std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

#[test]
fn the_outbox_survives_a_reopen_in_order_until_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = SystemTime::now();
    let mut store = Store::open(&config(dir.path())).unwrap();
    let (a, _) = start(&mut store, "cat", t0, Some(b"jpeg a"), 1);
    let (b, _) = start(&mut store, "van", t0 + Duration::from_secs(1), None, 2);
    end(&mut store, a, t0 + Duration::from_secs(2));
    let all = store.outbox_after(0, 10).unwrap();
    assert_eq!(payloads(&all), [format!("start {a}"), format!("start {b}"), format!("end {a}")]);
    store.delivered(&[all[0].id]).unwrap();
    // A crash: the store is dropped with two messages undelivered and `van` active.
    drop(store);
    let store = Store::open(&config(dir.path())).unwrap();
    let left = store.outbox_after(0, 10).unwrap();
    assert_eq!(payloads(&left), [format!("start {b}"), format!("end {a}")]);
    assert_eq!(store.outbox_after(left[0].id, 10).unwrap(), left[1..]);
    assert_eq!(store.undelivered().unwrap(), 2);
    let events = store.events(&Filter::default(), 10).unwrap();
    assert_eq!(
        events.iter().map(|e| (e.label.as_str(), e.reason.as_deref())).collect::<Vec<_>>(),
        [("van", Some("interrupted")), ("cat", Some("gone"))]
    );
    assert!(!events[0].delivered && !events[1].delivered, "each still has a message in the outbox");
    assert_eq!(store.snapshot(Kind::Event, a).unwrap().as_deref(), Some(&b"jpeg a"[..]));
    assert_eq!(store.snapshot(Kind::Event, b).unwrap(), None);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn an_end_whose_event_is_gone_is_still_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&config(dir.path())).unwrap();
    let end = EventEnd { end: SystemTime::now(), frame: 3, peak: 0.8, reason: "stopped" };
    let m = store.end_event(Some(999), &end, "t/events".into(), b"end ?".to_vec()).unwrap();
    assert_eq!(store.outbox_after(0, 5).unwrap(), [m]);
}

#[test]
fn the_schema_is_versioned_and_a_newer_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&config(dir.path())).unwrap();
    assert_eq!(schema::version(store.connection()).unwrap(), schema::current());
    drop(store);
    // As a later edgeclip would leave it.
    let conn = rusqlite::Connection::open(dir.path().join("history.db")).unwrap();
    conn.pragma_update(None, "user_version", schema::current() + 1).unwrap();
    drop(conn);
    let e = Store::open(&config(dir.path())).err().unwrap().to_string();
    assert!(e.contains("made by a newer edgeclip"), "{e}");
    let e = Store::open_read_only(&dir.path().join("history.db")).err().unwrap().to_string();
    assert!(e.contains("made by a newer edgeclip"), "{e}");
    // Not SQLite at all.
    std::fs::write(dir.path().join("junk.db"), vec![7u8; 5000]).unwrap();
    let e = Store::open(&StoreConfig { path: dir.path().join("junk.db"), ..config(dir.path()) }).err().unwrap();
    assert!(e.to_string().contains("junk.db"), "{e}");
    let e = Store::open_read_only(&dir.path().join("none.db")).err().unwrap().to_string();
    assert!(e.contains("no such file"), "{e}");
}

#[test]
fn the_size_limit_removes_the_oldest_and_bounds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    const LIMIT: u64 = 2_000_000;
    let mut store = Store::open(&StoreConfig { max_bytes: LIMIT, ..config(dir.path()) }).unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // 100 events with 50 KB snapshots: 5 MB, two and a half times the limit.
    let jpeg = vec![0xA5u8; 50_000];
    let mut removed = retention::Removed::default();
    let mut largest = 0;
    for i in 0..100 {
        let (id, m) = start(&mut store, &format!("label {i}"), t0 + Duration::from_secs(i), Some(&jpeg), i as usize);
        if i >= 50 {
            store.delivered(&[m.id]).unwrap();
        }
        assert_eq!(id, i as i64 + 1, "ids are never reused");
        let r = store.enforce_retention(t0 + Duration::from_secs(i)).unwrap();
        removed.events += r.events;
        removed.undelivered += r.undelivered;
        store.checkpoint().unwrap();
        largest = largest.max(file_bytes(store.path()));
    }
    assert!(store.used_bytes().unwrap() <= LIMIT);
    // The file itself, WAL included, within the limit and a page or two.
    assert!(largest <= LIMIT + 16 * 1024, "the file reached {largest} bytes");
    let kept = store.events(&Filter::default(), 1000).unwrap();
    assert_eq!(kept.len() as u64, 100 - removed.events);
    assert!((30..=40).contains(&kept.len()), "{} of 100 kept in 2 MB of 50 KB snapshots", kept.len());
    let ids: Vec<i64> = kept.iter().map(|e| e.id).collect();
    assert_eq!(ids, (101 - kept.len() as i64..=100).rev().collect::<Vec<_>>(), "the newest are kept");
    // The first 50 were never delivered: their removal is counted.
    assert_eq!(removed.undelivered, 50);
    assert_eq!(store.outbox_after(0, 1000).unwrap(), []);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn the_age_limit_removes_old_events_and_keyframes() {
    let dir = tempfile::tempdir().unwrap();
    let day = Duration::from_secs(86_400);
    let mut store = Store::open(&StoreConfig { max_age: Some(30 * day), ..config(dir.path()) }).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (old, m) = start(&mut store, "old", now - 40 * day, Some(b"x"), 1);
    store.delivered(&[m.id]).unwrap();
    let (new, _) = start(&mut store, "new", now - day, None, 2);
    let v = embedding(3);
    for (age, frame) in [(31 * day, 1), (2 * day, 2)] {
        let k = NewKeyframe {
            camera: "front",
            zone: None,
            model: "m",
            time: now - age,
            frame,
            embedding: &v,
            snapshot: Some(b"k"),
        };
        store.keyframe(&k).unwrap().unwrap();
    }
    let removed = store.enforce_retention(now).unwrap();
    assert_eq!((removed.events, removed.keyframes, removed.undelivered), (1, 1, 0));
    let ids: Vec<i64> = store.events(&Filter::default(), 10).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, [new]);
    assert_eq!(store.snapshot(Kind::Event, old).unwrap(), None);
    assert_eq!(store.counts().unwrap(), (1, 1));
    // Only images still referenced remain.
    let images: i64 = store.connection().query_row("SELECT COUNT(*) FROM images", [], |r| r.get(0)).unwrap();
    assert_eq!(images, 1);
}

#[test]
fn stored_embeddings_are_ranked_within_the_filter_and_show_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&config(dir.path())).unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (a, _) = start(&mut store, "cat", t0, Some(b"j"), 5);
    start(&mut store, "van", t0 + Duration::from_secs(60), None, 6);
    let v = embedding(7);
    let k = NewKeyframe {
        camera: "back",
        zone: Some("porch"),
        model: "m",
        time: t0,
        frame: 4,
        embedding: &v,
        snapshot: None,
    };
    let kid = store.keyframe(&k).unwrap().unwrap();
    // Ranked against the keyframe's own vector: itself first, then the
    // events, whose vectors are alike but for their axis.
    let query = Quantized::new(&embedding(7)).unwrap();
    let (ranked, searched) = store.rank(&query, &Filter::default(), true, 10, None).unwrap();
    assert_eq!(searched, 3);
    assert_eq!(ranked[0].index, (Kind::Keyframe, kid));
    assert!((ranked[0].score - 1.0).abs() < 1e-3, "{ranked:?}");
    assert_eq!(ranked.len(), 3);
    let entry = store.entry(Kind::Event, a).unwrap().unwrap();
    assert_eq!((entry.label.as_deref(), entry.snapshot, entry.camera.as_str()), (Some("cat"), true, "front"));
    let entry = store.entry(Kind::Keyframe, kid).unwrap().unwrap();
    assert_eq!((entry.label, entry.zone.as_deref(), entry.snapshot), (None, Some("porch"), false));
    assert_eq!(store.entry(Kind::Event, 999).unwrap(), None);
    let count = |f: Filter, keyframes| store.rank(&query, &f, keyframes, 10, None).unwrap().1;
    assert_eq!(count(Filter::default(), false), 2);
    assert_eq!(count(Filter { camera: Some("back".into()), ..Filter::default() }, true), 1);
    assert_eq!(count(Filter { since: Some(t0 + Duration::from_secs(1)), ..Filter::default() }, true), 1);
    assert_eq!(count(Filter { until: Some(t0 + Duration::from_secs(1)), ..Filter::default() }, true), 2);
    assert_eq!(count(Filter { model: Some("other".into()), ..Filter::default() }, true), 0);
    // Leaving one out, and a query of another width.
    let (ranked, _) = store.rank(&query, &Filter::default(), true, 10, Some((Kind::Keyframe, kid))).unwrap();
    assert_eq!(ranked.len(), 2);
    let narrow = Quantized::new(&[1.0, 0.0]).unwrap();
    assert!(store.rank(&narrow, &Filter::default(), true, 10, None).unwrap().0.is_empty());
    let (q, model) = store.embedding(Kind::Event, a).unwrap().unwrap();
    assert_eq!((q, model.as_str()), (Quantized::new(&embedding(5)).unwrap(), "m"));
    assert_eq!(store.embedding(Kind::Event, 12345).unwrap(), None);
}
