//! What the daemon counts and times while it runs, and the stats message
//! built from it.
//!
//! Each camera's threads bump lock-free counters ([`CameraCounters`]) and
//! record per-stage latencies into fixed-size windows ([`Latencies`], no
//! allocation once built); every `mqtt.stats_interval_s` the main loop has
//! a [`StatsReporter`] turn both, with the MQTT client's counts and each
//! camera's GPIO lines, into the [`Stats`] message published on
//! `<prefix>/<node>/stats`, rates computed from the difference with the
//! previous report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::camera::CameraShared;
use crate::gpio::output::EventOutput;
use crate::gpio::{AnyOutputPin, InputConfig};
use crate::publish::mqtt::MqttStats;
use crate::publish::payloads::{
    CameraStats, FrameCounts, FrameRates, GpioInputStats, GpioOutputStats, GpioStats, LatencyStats, MqttClientStats,
    StageLatencies, Stats, Timestamp,
};

/// Samples a latency window keeps between two reports. At 30 inferences a
/// second and a 60 s interval this is every sample; beyond it the window
/// keeps the first ones (the summary says how many it saw).
const WINDOW_SAMPLES: usize = 4096;

/// Lock-free counts of one camera's frames, since start.
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Frames the source delivered.
    pub captured: AtomicU64,
    /// Frames the encoder ran on.
    pub inferred: AtomicU64,
    /// Frames the motion gate found still.
    pub motion_skipped: AtomicU64,
    /// Frames skipped while the input line (a PIR sensor) was idle.
    pub input_skipped: AtomicU64,
    /// Reads of the input line that failed (those frames were inferred).
    pub input_errors: AtomicU64,
    /// Frames skipped to stay under `max_fps`.
    pub rate_skipped: AtomicU64,
    /// Frames skipped while the camera was disabled.
    pub disabled_skipped: AtomicU64,
    /// Frames that could not be read or decoded (counted, skipped).
    pub corrupt: AtomicU64,
    /// Source failures: a camera gone, busy, a command that died, timeouts.
    pub source_errors: AtomicU64,
}

impl CameraCounters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            captured: get(&self.captured),
            inferred: get(&self.inferred),
            motion_skipped: get(&self.motion_skipped),
            input_skipped: get(&self.input_skipped),
            input_errors: get(&self.input_errors),
            rate_skipped: get(&self.rate_skipped),
            disabled_skipped: get(&self.disabled_skipped),
            corrupt: get(&self.corrupt),
            source_errors: get(&self.source_errors),
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub captured: u64,
    pub inferred: u64,
    pub motion_skipped: u64,
    pub input_skipped: u64,
    pub input_errors: u64,
    pub rate_skipped: u64,
    pub disabled_skipped: u64,
    pub corrupt: u64,
    pub source_errors: u64,
}

/// Latency samples of one stage, in milliseconds.
#[derive(Debug)]
pub struct Window {
    samples: Vec<f32>,
    /// Samples offered, including those beyond the window's capacity.
    seen: u64,
    max: f32,
}

impl Default for Window {
    fn default() -> Self {
        Window { samples: Vec::with_capacity(WINDOW_SAMPLES), seen: 0, max: 0.0 }
    }
}

/// Median, 99th percentile and maximum of a window, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: f32,
    pub p99: f32,
    pub max: f32,
}

impl Window {
    pub fn record(&mut self, d: Duration) {
        let ms = d.as_secs_f32() * 1000.0;
        self.seen += 1;
        self.max = self.max.max(ms);
        if self.samples.len() < WINDOW_SAMPLES {
            self.samples.push(ms);
        }
    }

    /// The summary since the last call, which empties the window.
    pub fn take(&mut self) -> LatencySummary {
        let summary = summarize(&mut self.samples, self.seen, self.max);
        self.samples.clear();
        self.seen = 0;
        self.max = 0.0;
        summary
    }
}

/// Nearest-rank percentiles of `samples` (sorted in place).
pub fn summarize(samples: &mut [f32], count: u64, max: f32) -> LatencySummary {
    if samples.is_empty() {
        return LatencySummary::default();
    }
    samples.sort_unstable_by(f32::total_cmp);
    let rank = |p: f64| samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    LatencySummary { count, p50: rank(0.50), p99: rank(0.99), max }
}

/// One camera's latency windows, per stage of an inferred frame.
#[derive(Debug, Default)]
pub struct Latencies {
    /// JPEG decoding or pixel conversion to RGB.
    pub decode: Window,
    pub preprocess: Window,
    pub encode: Window,
    pub matching: Window,
    /// From the frame's arrival in the capture thread to its scores and
    /// events being handed to the publisher.
    pub frame_to_publish: Window,
}

impl Latencies {
    /// Each stage's summary since the last call, which empties the windows.
    pub fn take_stats(&mut self) -> StageLatencies {
        let stage = |w: &mut Window| {
            let s = w.take();
            LatencyStats { count: s.count, max_ms: round2(s.max), p50_ms: round2(s.p50), p99_ms: round2(s.p99) }
        };
        StageLatencies {
            decode: stage(&mut self.decode),
            encode: stage(&mut self.encode),
            frame_to_publish: stage(&mut self.frame_to_publish),
            matching: stage(&mut self.matching),
            preprocess: stage(&mut self.preprocess),
        }
    }
}

/// Rounds to 2 decimals for JSON meant to be read by people.
pub fn round2(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

/// Frames per second between two snapshots of a counter.
pub fn rate(now: u64, before: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    ((now.saturating_sub(before)) as f64 / secs * 100.0).round() / 100.0
}

/// One camera as a stats message sees it.
pub struct CameraView<'a> {
    pub name: &'a str,
    pub shared: &'a CameraShared,
    /// Its inference thread has not ended.
    pub running: bool,
    pub outputs: &'a [EventOutput<AnyOutputPin>],
    pub input: Option<&'a InputConfig>,
}

/// The MQTT commands the daemon received since start.
#[derive(Debug, Default)]
pub struct CommandCounts {
    /// Carried out.
    pub accepted: u64,
    /// Refused: an unknown camera, a value that is not accepted, a payload
    /// too large or not UTF-8.
    pub refused: u64,
}

/// Builds the stats messages, and keeps what the next one's rates are
/// computed from: when the last one was built and each camera's counters
/// then.
#[derive(Debug)]
pub struct StatsReporter {
    node: String,
    model: String,
    started: Instant,
    last: Instant,
    counters: BTreeMap<String, CounterSnapshot>,
    /// Reports for the web page: from the cameras' page latency windows.
    page: bool,
}

impl StatsReporter {
    /// For a daemon that started at `started`, which is also where the first
    /// interval begins.
    pub fn new(node: &str, model: &str, started: Instant) -> StatsReporter {
        StatsReporter {
            node: node.to_string(),
            model: model.to_string(),
            started,
            last: started,
            counters: BTreeMap::new(),
            page: false,
        }
    }

    /// A second reporter for the web page, with intervals and latency
    /// windows of its own, so that the MQTT stats stay as they are.
    pub fn for_page(node: &str, model: &str, started: Instant) -> StatsReporter {
        StatsReporter { page: true, ..StatsReporter::new(node, model, started) }
    }

    /// Time since the last message was built (or since the start).
    pub fn since_last(&self) -> Duration {
        self.last.elapsed()
    }

    /// The message for now: counts since start, rates and latencies since
    /// the last message (whose latency windows it empties).
    pub fn report<'a>(
        &mut self,
        mqtt: &MqttStats,
        commands: &CommandCounts,
        cameras: impl IntoIterator<Item = CameraView<'a>>,
    ) -> Stats {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last);
        let mut stats = BTreeMap::new();
        let mut snapshots = BTreeMap::new();
        for camera in cameras {
            let counts = camera.shared.counters.snapshot();
            let before = self.counters.get(camera.name).copied().unwrap_or_default();
            stats.insert(camera.name.to_string(), camera_stats(&camera, &counts, &before, elapsed, self.page));
            snapshots.insert(camera.name.to_string(), counts);
        }
        let message = Stats {
            cameras: stats,
            // Tenths of a second: the interval is a timer's, seconds long.
            interval_s: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            model: self.model.clone(),
            mqtt: MqttClientStats {
                commands_accepted: commands.accepted,
                commands_refused: commands.refused + mqtt.incoming_refused,
                connected: mqtt.connected,
                last_error: mqtt.last_error.clone(),
                overflowed: mqtt.overflowed,
                published: mqtt.published,
                queued: mqtt.queued,
                reconnects: mqtt.reconnects,
            },
            node: self.node.clone(),
            // Filled in by the daemon, which owns the store.
            store: None,
            time: Timestamp(SystemTime::now()),
            uptime_s: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        self.last = now;
        self.counters = snapshots;
        message
    }
}

/// One camera's part of a stats message; `before` is its counters at the
/// last message, `elapsed` ago.
fn camera_stats(
    camera: &CameraView<'_>,
    counts: &CounterSnapshot,
    before: &CounterSnapshot,
    elapsed: Duration,
    page: bool,
) -> CameraStats {
    let s = camera.shared;
    let sets: Vec<_> = (0..s.zone_count()).map(|i| s.labels(i)).collect();
    let mut origins: Vec<String> = sets.iter().map(|l| l.origin.to_string()).collect();
    origins.dedup();
    let gpio = (!camera.outputs.is_empty() || camera.input.is_some()).then(|| GpioStats {
        input: camera.input.map(|i| GpioInputStats { errors: counts.input_errors, line: i.line.to_string() }),
        outputs: camera
            .outputs
            .iter()
            .map(|o| GpioOutputStats { active: o.is_active(), errors: o.errors(), line: o.config().line.to_string() })
            .collect(),
    });
    CameraStats {
        active: s.active.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        enabled: s.enabled.load(Ordering::Relaxed),
        fps: FrameRates {
            captured: rate(counts.captured, before.captured, elapsed),
            inferred: rate(counts.inferred, before.inferred, elapsed),
        },
        frames: FrameCounts {
            captured: counts.captured,
            corrupt: counts.corrupt,
            disabled_skipped: counts.disabled_skipped,
            dropped: s.slot.dropped(),
            inferred: counts.inferred,
            input_skipped: counts.input_skipped,
            motion_skipped: counts.motion_skipped,
            rate_skipped: counts.rate_skipped,
            source_errors: counts.source_errors,
        },
        gpio,
        labels: sets.iter().map(|l| l.detector.len()).sum(),
        labels_from: origins.join(", "),
        latency: if page { &s.page_latencies } else { &s.latencies }
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take_stats(),
        running: camera.running,
        source: s.source.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_and_the_window_empties() {
        let mut w = Window::default();
        for ms in 1..=100 {
            w.record(Duration::from_millis(ms));
        }
        let s = w.take();
        assert_eq!(s.count, 100);
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
        assert_eq!(w.take(), LatencySummary::default());
    }

    #[test]
    fn a_full_window_still_counts_and_keeps_the_maximum() {
        let mut w = Window::default();
        for _ in 0..WINDOW_SAMPLES {
            w.record(Duration::from_millis(1));
        }
        w.record(Duration::from_millis(500));
        let s = w.take();
        assert_eq!(s.count, WINDOW_SAMPLES as u64 + 1);
        assert_eq!(s.max, 500.0);
        assert_eq!(s.p99, 1.0);
    }

    #[test]
    fn stage_latencies_are_milliseconds_to_the_hundredth() {
        let mut l = Latencies::default();
        l.encode.record(Duration::from_micros(180_523));
        l.encode.record(Duration::from_micros(12_341));
        let s = l.take_stats();
        assert_eq!(s.encode, LatencyStats { count: 2, max_ms: 180.52, p50_ms: 12.34, p99_ms: 180.52 });
        assert_eq!(s.matching, LatencyStats { count: 0, max_ms: 0.0, p50_ms: 0.0, p99_ms: 0.0 });
        assert_eq!(l.take_stats().encode.count, 0, "taking empties the windows");
    }

    #[test]
    fn rates_are_per_second() {
        assert_eq!(rate(130, 100, Duration::from_secs(10)), 3.0);
        assert_eq!(rate(5, 5, Duration::ZERO), 0.0);
    }
}
