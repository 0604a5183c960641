//! What a search of the event history costs, and what the history costs on
//! disk.
//!
//! 1. Ranking: 100 000 stored embeddings of a ViT-B/32's width (512) ranked
//!    against one query, best 10 kept ([`edgeclip::store::vector::rank`],
//!    int8, one thread). The baseline in the same run is the plain f32 scan
//!    of the same vectors (a dot product each, all scores sorted), which is
//!    what an unquantized store would do; the ratio is the number to compare
//!    between runs.
//! 2. Reading: the same 100 000 embeddings read from a store file
//!    (`Store::embeddings`, warm page cache) and ranked: a search's whole
//!    cost but the query's embedding.
//! 3. Storage: bytes per event and per keyframe in a store file, with a
//!    snapshot (the demo clip's first frame, a 640×480 JPEG) and without.
//!
//! Run: `cargo bench --bench search` (a release build). `cargo test
//! --all-targets` runs it too, with 1000 vectors, only to check that it runs.

use std::path::Path;
use std::time::{Duration, SystemTime};

mod common;

use common::median_ms;
use edgeclip::config::StoreConfig;
use edgeclip::store::query::Filter;
use edgeclip::store::vector::{rank, Quantized};
use edgeclip::store::{NewEvent, NewKeyframe, Store};

const DIM: usize = 512;
const STORED: usize = 100_000;
const ROUNDS: usize = 9;
/// Rows written one commit each for the storage figures.
const WRITTEN: usize = 500;

/// A deterministic pseudo-random unit vector.
fn vector(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.into_iter().map(|a| a / n).collect()
}

fn store_config(dir: &Path, name: &str) -> StoreConfig {
    StoreConfig {
        enabled: true,
        path: dir.join(name),
        max_bytes: u64::MAX,
        max_age: None,
        snapshots: true,
        keyframe_interval: None,
        mqtt_search: false,
    }
}

fn main() {
    let timed = std::env::args().any(|a| a == "--bench");
    let (stored, rounds, written) = if timed { (STORED, ROUNDS, WRITTEN) } else { (1000, 1, 20) };
    println!("{}", common::machine());
    println!("command: cargo bench --bench search ({stored} embeddings of {DIM}, median of {rounds}; 1 thread)");

    // 1. Ranking.
    let floats: Vec<Vec<f32>> = (0..stored as u64).map(vector).collect();
    let quantized: Vec<Quantized> = floats.iter().map(|v| Quantized::new(v).unwrap()).collect();
    let query_f = vector(u64::MAX / 3);
    let query = Quantized::new(&query_f).unwrap();
    let mut best = Vec::new();
    let int8_ms = median_ms(1, rounds, || best = rank(&query, &quantized, 10));
    let mut exact = Vec::new();
    let f32_ms = median_ms(1, rounds, || {
        let mut scores: Vec<(usize, f32)> =
            floats.iter().enumerate().map(|(i, v)| (i, v.iter().zip(&query_f).map(|(a, b)| a * b).sum())).collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        scores.truncate(10);
        exact = scores;
    });
    // Random vectors are the hard case: their cosines all lie within a few
    // hundredths of 0, where int8's rounding can swap neighbours.
    let same = best.iter().filter(|a| exact.iter().any(|b| b.0 == a.index)).count();
    println!(
        "rank {stored} x {DIM}: int8 {int8_ms:.2} ms, f32 scan {f32_ms:.2} ms (ratio {:.2}); f32's top 10 among int8's: {same}",
        int8_ms / f32_ms
    );

    // 3. Storage, per row, from the file's used pages.
    let dir = tempfile::tempdir().unwrap();
    let jpeg = first_demo_frame();
    let per_row = |name: &str, snapshot: Option<&[u8]>, keyframes: bool| -> f64 {
        let mut store = Store::open(&store_config(dir.path(), name)).unwrap();
        let before = store.used_bytes().unwrap();
        let t0 = SystemTime::now();
        for i in 0..written {
            let v = &floats[i % floats.len()];
            let at = t0 + Duration::from_secs(i as u64);
            if keyframes {
                let k = NewKeyframe {
                    camera: "front",
                    zone: None,
                    model: "m",
                    time: at,
                    frame: i as u64,
                    embedding: v,
                    snapshot,
                };
                store.keyframe(&k).unwrap();
            } else {
                let e = NewEvent {
                    camera: "front",
                    zone: None,
                    label: "a delivery van",
                    model: "m",
                    start: at,
                    start_frame: i as u64,
                    score: 0.9,
                    embedding: Some(v),
                    snapshot,
                };
                let (id, m) = store
                    .start_event(&e, |id| ("edgeclip/garage/front/events".into(), vec![b'x'; 420 + id as usize % 2]))
                    .unwrap();
                store.delivered(&[m.id]).unwrap();
                let _ = id;
            }
        }
        (store.used_bytes().unwrap() - before) as f64 / written as f64
    };
    println!(
        "storage per event: {:.0} bytes with a {} byte snapshot, {:.0} without",
        per_row("e1.db", Some(&jpeg), false),
        jpeg.len(),
        per_row("e2.db", None, false)
    );
    println!(
        "storage per keyframe: {:.0} bytes with the snapshot, {:.0} without",
        per_row("k1.db", Some(&jpeg), true),
        per_row("k2.db", None, true)
    );

    // 2. Reading and ranking from a store of `stored` keyframes (copies of
    // the written ones, made in SQL in one transaction).
    let path = dir.path().join("k2.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        loop {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM keyframes", [], |r| r.get(0)).unwrap();
            if n as usize >= stored {
                break;
            }
            conn.execute(
                "INSERT INTO keyframes (camera, zone, model, time_ms, frame, embedding, embedding_scale)
                 SELECT camera, zone, model, time_ms, frame, embedding, embedding_scale FROM keyframes LIMIT ?1",
                [stored as i64 - n],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    let store = Store::open_read_only(&path).unwrap();
    let mut count = 0;
    let mut from_store = Vec::new();
    let read_ms = median_ms(1, rounds, || {
        let (ranked, ranked_count) = store.rank(&query, &Filter::default(), true, 10, None).unwrap();
        count = ranked_count;
        from_store = ranked;
    });
    assert_eq!(from_store.len(), 10.min(count as usize));
    println!("read and rank {count} stored embeddings (Store::rank): {read_ms:.1} ms");
}

/// The demo clip's first frame: a snapshot as a 640×480 camera sends it.
fn first_demo_frame() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(root.join("models/tiny-shapes/demo.mjpeg")).expect("the demo clip");
    let frame = edgeclip::capture::mjpeg::MjpegFrames::new(&data).next().unwrap().unwrap();
    frame.jpeg.to_vec()
}
