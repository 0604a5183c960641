//! One camera's two threads: capture (the source's frames into a
//! latest-frame slot) and inference (slot → [`Inference::step`], which is
//! input gate → RGB → motion gate → encoder → scores → detector → events,
//! which go to the main loop as [`CameraReport`]s).
//!
//! The slot holds one frame: when inference is slower than the camera, the
//! capture thread replaces the waiting frame and the replaced one is counted
//! as dropped: the latest frame wins, and a slow model never builds a
//! backlog. A recording replayed without
//! a frame rate is the exception: its capture thread waits for the inference
//! thread, so that every frame is inferred and a replay gives the same
//! events on any machine. Frame buffers go round through the slot's pool,
//! so a warm pipeline allocates nothing per frame except the events it
//! reports.
//!
//! The inference thread owns the [`Inference`]. It sees label changes and the
//! enabled switch between two frames, and on stop (or when the source ends)
//! ends every active event, so that no `ON` state is left behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::camera_labels::CameraLabels;
use super::examples::ExampleRequest;
use super::live::{LiveFrame, LiveView};
use crate::capture::slot::{Latest, TakeError};
use crate::capture::{CaptureErrorKind, FrameSource, OwnedFrame, PixelFormat};
use crate::config::ZoneConfig;
use crate::gpio::input::InputGate;
use crate::gpio::AnyInputPin;
use crate::model::bundle::Bundle;
use crate::model::encode::ImageEncoder;
use crate::pipeline::classify::Classifier;
use crate::pipeline::convert::{Converter, RgbImage};
use crate::pipeline::detect::{Event, EventKind};
use crate::pipeline::inference::{Inference, InferenceOptions, Outcome, Step, ZoneSetup};
use crate::pipeline::zone::{crop, outline, Rect};
use crate::publish::payloads::{ScoresPayload, Timestamp};
use crate::util::backoff::Backoff;
use crate::util::log_limit::{also, LogLimit};

use super::stats::{CameraCounters, Latencies};

/// How long a thread blocks before it looks at the stop flag again; also
/// bounds how late a stop, a label change or the enabled switch is seen.
const POLL: Duration = Duration::from_millis(100);

/// Quality of the JPEG made for a snapshot when the camera did not send
/// JPEG (YUYV, NV12...): a typical webcam setting, ~50 KB at 640×480.
const SNAPSHOT_JPEG_QUALITY: u8 = 85;

/// Snapshots of one frame, by zone (`None`: the whole frame).
pub type Snapshots = Vec<(Option<String>, Arc<Vec<u8>>)>;

/// Image embeddings of one frame, by zone.
pub type Embeddings = Vec<(Option<String>, Vec<f32>)>;

/// The colour a zone is outlined in on its snapshots: yellow, which few
/// scenes are, 4 pixels wide at any frame size up to 1080p.
const ZONE_OUTLINE: [u8; 3] = [255, 220, 0];
const ZONE_OUTLINE_PX: u32 = 4;

/// What a camera's inference thread tells the main loop.
#[derive(Debug)]
pub enum CameraReport {
    /// Events from one inferred frame. `snapshots` has that frame as JPEG,
    /// and `embeddings` the zone's image embedding, for each zone with a
    /// start among them.
    Events { camera: String, events: Vec<Event>, snapshots: Snapshots, embeddings: Embeddings, frame_time: SystemTime },
    /// A zone's inferred frame to keep in the store without an event, every
    /// `store.keyframe_interval_min`.
    Keyframe {
        camera: String,
        zone: Option<String>,
        frame: u64,
        frame_time: SystemTime,
        embedding: Vec<f32>,
        snapshot: Option<Vec<u8>>,
    },
    /// Every label's score in an inferred frame, at most every
    /// `mqtt.scores_interval_s`.
    Scores(ScoresPayload),
    /// The frame an [`ExampleRequest`] asked for, as a JPEG (or why there
    /// is none).
    Example { camera: String, id: u64, frame: u64, frame_time: SystemTime, jpeg: Result<Vec<u8>, String> },
    /// The inference thread has ended (stopped, or its source ended); its
    /// last events were sent before this.
    Finished { camera: String, source_ended: bool },
}

/// What a camera's threads and the main loop share.
pub struct CameraShared {
    pub name: String,
    /// The source as configured, for logs and stats.
    pub source: String,
    pub enabled: AtomicBool,
    pub stop: AtomicBool,
    /// Each zone's label set, in the configuration's zone order.
    labels: Vec<RwLock<Arc<CameraLabels>>>,
    pub counters: CameraCounters,
    pub latencies: Mutex<Latencies>,
    /// The same for the web page's stats, whose windows are emptied on
    /// their own schedule (only recorded while there is a page).
    pub page_latencies: Mutex<Latencies>,
    pub slot: Latest<OwnedFrame>,
    /// Labels in an event now, for stats (`zone/label` in a zone).
    pub active: Mutex<Vec<String>>,
    /// When the inference thread last went round its loop (it does at least
    /// every 100 ms unless a frame is being inferred): the watchdog's sign
    /// of life.
    pub heartbeat: Mutex<Instant>,
    /// An `example/set` command's request for the next frame.
    pub example_request: Mutex<Option<ExampleRequest>>,
    /// Scores, embeddings and a recent frame for the web page.
    pub live: LiveView,
}

impl CameraShared {
    /// How many zones the camera has (1: the whole frame).
    pub fn zone_count(&self) -> usize {
        self.labels.len()
    }

    /// Zone `zone`'s label set.
    pub fn labels(&self, zone: usize) -> Arc<CameraLabels> {
        self.labels[zone].read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs a new label set for zone `zone`; the inference thread takes
    /// it before its next frame. Returns the previous set.
    /// Records an inferred frame's stage times in the stats' windows, and in
    /// the web page's while there is a page.
    fn record_latencies(&self, record: impl Fn(&mut Latencies)) {
        record(&mut self.latencies.lock().unwrap_or_else(|e| e.into_inner()));
        if self.live.recording() {
            record(&mut self.page_latencies.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    pub fn set_labels(&self, zone: usize, labels: CameraLabels) -> Arc<CameraLabels> {
        let mut slot = self.labels[zone].write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, Arc::new(labels))
    }
}

/// Everything the inference thread needs besides the shared state.
pub struct InferenceSetup {
    pub bundle: Arc<Bundle>,
    pub encoder: Arc<ImageEncoder>,
    pub options: InferenceOptions,
    /// The camera's zones (the whole frame when it has none), in the order
    /// of its label sets.
    pub zones: Vec<ZoneConfig>,
    /// A sensor line that gates inference (`[cameras.NAME.input]`).
    pub input: Option<InputGate<AnyInputPin>>,
    /// How often the live scores are reported at most; `None`: never.
    pub scores_interval: Option<Duration>,
    /// How often a zone's inferred frame is reported as a keyframe, and
    /// whether with its snapshot; `None`: never (no store, or none asked).
    pub keyframes: Option<(Duration, bool)>,
    /// How long every inferred frame's scores are kept for the web page, and
    /// how often it gets a frame; `None`: no page.
    pub live: Option<(Duration, Duration)>,
    pub out: Sender<CameraReport>,
}

/// A running camera.
pub struct Camera {
    pub shared: Arc<CameraShared>,
    inference: Option<JoinHandle<()>>,
}

impl Camera {
    /// Starts the camera's threads. `wait_for_inference`: the capture
    /// thread never drops a frame (a recording replayed as fast as it is
    /// inferred).
    pub fn start(
        name: &str,
        source: Box<dyn FrameSource>,
        source_spec: String,
        enabled: bool,
        labels: Vec<CameraLabels>,
        setup: InferenceSetup,
        wait_for_inference: bool,
    ) -> anyhow::Result<Camera> {
        let shared = Arc::new(CameraShared {
            name: name.to_string(),
            source: source_spec,
            enabled: AtomicBool::new(enabled),
            stop: AtomicBool::new(false),
            labels: labels.into_iter().map(|l| RwLock::new(Arc::new(l))).collect(),
            counters: CameraCounters::default(),
            latencies: Mutex::new(Latencies::default()),
            page_latencies: Mutex::new(Latencies::default()),
            slot: Latest::new(),
            active: Mutex::new(Vec::new()),
            heartbeat: Mutex::new(Instant::now()),
            example_request: Mutex::new(None),
            live: LiveView::new(
                setup.zones.len(),
                setup.live.map(|(keep, _)| keep),
                setup.live.map_or(Duration::ZERO, |(_, every)| every),
            ),
        });
        // Built here, not in the thread, so that a model that cannot run
        // stops the start-up with its error.
        let zones: Vec<ZoneSetup> = setup
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let labels = shared.labels(i);
                ZoneSetup {
                    name: z.name.clone(),
                    rect: z.rect,
                    matcher: labels.matcher.clone(),
                    labels: labels.detector.clone(),
                }
            })
            .collect();
        let classifier = Classifier::new(&setup.bundle, &setup.encoder, zones[0].matcher.clone())?;
        let inference = Inference::new(classifier, zones, setup.options, setup.input, setup.bundle.image.size);
        let out = setup.out;
        let reporting = Reporting { scores_interval: setup.scores_interval, keyframes: setup.keyframes };
        {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name(format!("capture-{name}")).spawn(move || {
                let _span = camera_span(&shared.name).entered();
                capture_loop(&shared, source, wait_for_inference)
            })?;
        }
        let inference = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name(format!("infer-{name}")).spawn(move || {
                let _span = camera_span(&shared.name).entered();
                inference_loop(&shared, &out, inference, reporting)
            })?
        };
        Ok(Camera { shared, inference: Some(inference) })
    }

    /// Asks both threads to stop. The inference thread ends active events
    /// and reports [`CameraReport::Finished`]; a capture thread blocked in its
    /// source (a camera that went silent) is left to the process exit.
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Whether the inference thread has ended (normally it reports
    /// [`CameraReport::Finished`] first; a thread that panicked does not).
    pub fn inference_ended(&self) -> bool {
        self.inference.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the inference thread, at most until `deadline`.
    pub fn join(&mut self, deadline: Instant) -> bool {
        let Some(handle) = self.inference.take() else { return true };
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                self.inference = Some(handle);
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = handle.join();
        true
    }
}

/// The span every log line about one camera is written in, on its threads
/// and in the main loop: `camera{name=front}: ...`.
pub fn camera_span(name: &str) -> tracing::Span {
    tracing::info_span!("camera", name = %name)
}

fn capture_loop(shared: &CameraShared, mut source: Box<dyn FrameSource>, wait_for_inference: bool) {
    let mut corrupt_log = LogLimit::new();
    let mut error_log = LogLimit::new();
    // Sources back off by themselves between reopen attempts; this is a
    // floor for one that fails at once, so that the loop never spins: 100 ms
    // doubling up to 5 s, back to 100 ms with every frame.
    let mut quick_failures = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !shared.stop.load(Ordering::Relaxed) {
        crate::util::fault::point("capture");
        match source.next_frame() {
            Ok(frame) => {
                quick_failures.succeeded();
                let mut owned = shared.slot.spare().unwrap_or_default();
                owned.fill_from(&frame);
                if wait_for_inference {
                    while !shared.slot.wait_taken(POLL) {
                        if shared.stop.load(Ordering::Relaxed) {
                            shared.slot.close();
                            return;
                        }
                    }
                }
                CameraCounters::bump(&shared.counters.captured);
                shared.slot.put(owned);
            }
            Err(e) => match e.kind {
                CaptureErrorKind::Corrupt => {
                    CameraCounters::bump(&shared.counters.corrupt);
                    if let Some(n) = corrupt_log.check() {
                        tracing::warn!("skipped a corrupt frame: {e}{}", also(n));
                    }
                }
                CaptureErrorKind::Ended => {
                    tracing::info!("{e}");
                    break;
                }
                CaptureErrorKind::Timeout
                | CaptureErrorKind::Busy
                | CaptureErrorKind::Disconnected
                | CaptureErrorKind::Other => {
                    CameraCounters::bump(&shared.counters.source_errors);
                    if let Some(n) = error_log.check() {
                        tracing::warn!("{}: {e}{}", shared.source, also(n));
                    }
                    if e.kind != CaptureErrorKind::Timeout {
                        quick_failures.failed();
                        quick_failures.wait(POLL * 50);
                    }
                }
            },
        }
    }
    shared.slot.close();
}

/// What the inference thread reports besides events.
struct Reporting {
    scores_interval: Option<Duration>,
    keyframes: Option<(Duration, bool)>,
}

fn inference_loop(shared: &CameraShared, out: &Sender<CameraReport>, mut inference: Inference, reporting: Reporting) {
    let zone_count = shared.zone_count();
    let mut labels: Vec<Arc<CameraLabels>> = (0..zone_count).map(|i| shared.labels(i)).collect();
    let mut scores_sent: Vec<Option<Instant>> = vec![None; zone_count];
    let mut keyframe_taken: Vec<Option<Instant>> = vec![None; zone_count];
    let rects: Vec<(Option<String>, Rect)> = inference.zones().map(|(n, r)| (n.map(String::from), *r)).collect();
    let mut full_size = Converter::new(None);
    let mut was_enabled = shared.enabled.load(Ordering::Relaxed);
    let mut events = Vec::new();
    let mut decode_log = LogLimit::new();
    // A source whose every frame is undecodable (a looped recording of
    // garbage, a camera sending junk) would keep both threads busy for
    // nothing: after `UNDECODABLE_IN_ROW` bad frames in a row, each next one
    // waits, 100 ms doubling up to 2 s, until a frame decodes again.
    let mut undecodable_in_row = 0u32;
    let mut undecodable_pause = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let send = |events: &mut Vec<Event>, snapshots: Snapshots, embeddings: Embeddings, frame_time: SystemTime| {
        if events.is_empty() {
            return;
        }
        let mut active = shared.active.lock().unwrap_or_else(|e| e.into_inner());
        for e in events.iter() {
            let name = match &e.zone {
                Some(zone) => format!("{zone}/{}", e.label),
                None => e.label.clone(),
            };
            match e.kind {
                EventKind::Start => active.push(name),
                EventKind::End => active.retain(|l| *l != name),
            }
        }
        drop(active);
        let _ = out.send(CameraReport::Events {
            camera: shared.name.clone(),
            events: std::mem::take(events),
            snapshots,
            embeddings,
            frame_time,
        });
    };

    let source_ended = loop {
        *shared.heartbeat.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        if shared.stop.load(Ordering::Relaxed) {
            inference.end_events(&mut events);
            send(&mut events, Vec::new(), Vec::new(), SystemTime::now());
            break false;
        }
        for (zone, labels) in labels.iter_mut().enumerate() {
            let current = shared.labels(zone);
            if !Arc::ptr_eq(&current, labels) {
                inference.set_labels(zone, current.matcher.clone(), current.detector.clone(), &mut events);
                send(&mut events, Vec::new(), Vec::new(), SystemTime::now());
                *labels = current;
            }
        }
        let enabled = shared.enabled.load(Ordering::Relaxed);
        if was_enabled && !enabled {
            inference.end_events(&mut events);
            send(&mut events, Vec::new(), Vec::new(), SystemTime::now());
            inference.reset_motion();
        }
        was_enabled = enabled;

        let frame = match shared.slot.take(POLL) {
            Ok(frame) => frame,
            Err(TakeError::Timeout) => continue,
            Err(TakeError::Closed) => {
                inference.end_events(&mut events);
                send(&mut events, Vec::new(), Vec::new(), SystemTime::now());
                break true;
            }
        };
        crate::util::fault::point("inference");
        if shared.live.wants_frame() {
            let jpeg = snapshot_jpeg(&frame, &mut full_size, &Rect::WHOLE);
            shared.live.set_frame(jpeg.map(|jpeg| LiveFrame {
                jpeg: Arc::new(jpeg),
                frame: frame.sequence,
                time: frame.timestamp,
            }));
        }
        if let Some(request) = shared.example_request.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let rect = if request.whole_frame { Rect::WHOLE } else { rects[request.zone].1 };
            let _ = out.send(CameraReport::Example {
                camera: shared.name.clone(),
                id: request.id,
                frame: frame.sequence,
                frame_time: frame.timestamp,
                jpeg: example_jpeg(&frame, &mut full_size, &rect),
            });
        }
        match inference.step(&frame, enabled, &mut events) {
            Ok(step) => {
                if undecodable_in_row > 0 {
                    undecodable_in_row = 0;
                    undecodable_pause.succeeded();
                }
                count_step(shared, &frame, step, events.is_empty());
                if let Outcome::Inferred(_) = step.outcome {
                    let time_ms = crate::store::millis(frame.timestamp);
                    for (zone, scores) in inference.inferred_scores() {
                        let embedding = inference.embedding(zone);
                        shared.live.record(zone, time_ms, frame.sequence, &labels[zone], scores, embedding);
                    }
                }
                if let (Outcome::Inferred(_), Some((interval, with_snapshot))) = (step.outcome, reporting.keyframes) {
                    let inferred: Vec<usize> = inference.inferred_scores().map(|(zone, _)| zone).collect();
                    for zone in inferred {
                        // The first after the interval (and one at the start).
                        if keyframe_taken[zone].is_none_or(|t| t.elapsed() >= interval) {
                            keyframe_taken[zone] = Some(Instant::now());
                            let (name, rect) = &rects[zone];
                            let snapshot =
                                if with_snapshot { snapshot_jpeg(&frame, &mut full_size, rect) } else { None };
                            let _ = out.send(CameraReport::Keyframe {
                                camera: shared.name.clone(),
                                zone: name.clone(),
                                frame: frame.sequence,
                                frame_time: frame.timestamp,
                                embedding: inference.embedding(zone).to_vec(),
                                snapshot,
                            });
                        }
                    }
                }
                if let (Outcome::Inferred(_), Some(interval)) = (step.outcome, reporting.scores_interval) {
                    for (zone, scores) in inference.inferred_scores() {
                        if scores_sent[zone].is_none_or(|t| t.elapsed() >= interval) {
                            scores_sent[zone] = Some(Instant::now());
                            let zone_name = rects[zone].0.as_deref();
                            let payload = scores_payload(&shared.name, zone_name, &labels[zone], scores, &frame);
                            let _ = out.send(CameraReport::Scores(payload));
                        }
                    }
                }
                if !events.is_empty() {
                    // A snapshot per zone with a start: the frame, with the
                    // zone marked on it.
                    let mut snapshots: Snapshots = Vec::new();
                    let mut embeddings: Embeddings = Vec::new();
                    for (zone, (name, rect)) in rects.iter().enumerate() {
                        let starts = events.iter().any(|e| e.kind == EventKind::Start && e.zone == *name);
                        if starts {
                            if let Some(jpeg) = snapshot_jpeg(&frame, &mut full_size, rect) {
                                snapshots.push((name.clone(), Arc::new(jpeg)));
                            }
                            embeddings.push((name.clone(), inference.embedding(zone).to_vec()));
                        }
                    }
                    send(&mut events, snapshots, embeddings, frame.timestamp);
                    let to_publish = frame.arrived.elapsed();
                    shared.record_latencies(|lat| lat.frame_to_publish.record(to_publish));
                }
            }
            Err(e) => {
                CameraCounters::bump(&shared.counters.corrupt);
                if let Some(n) = decode_log.check() {
                    tracing::warn!("skipped frame {}: {e}{}", frame.sequence, also(n));
                }
                undecodable_in_row += 1;
                if undecodable_in_row >= UNDECODABLE_IN_ROW {
                    undecodable_pause.failed();
                    shared.slot.recycle(frame);
                    // In steps of POLL, so that a stop is not held up.
                    while !shared.stop.load(Ordering::Relaxed) {
                        if undecodable_pause.wait(POLL) {
                            break;
                        }
                    }
                    continue;
                }
            }
        }
        shared.slot.recycle(frame);
    };
    let _ = out.send(CameraReport::Finished { camera: shared.name.clone(), source_ended });
}

/// The live scores of a zone of an inferred frame, by label name;
/// thresholds for the labels that can fire.
fn scores_payload(
    camera: &str,
    zone: Option<&str>,
    labels: &CameraLabels,
    scores: &[f32],
    frame: &OwnedFrame,
) -> ScoresPayload {
    let four_decimals = |x: f32| (f64::from(x) * 1e4).round() / 1e4;
    let names = labels.matcher.names();
    ScoresPayload {
        camera: camera.to_string(),
        zone: zone.map(String::from),
        frame: frame.sequence,
        frame_time: Timestamp(frame.timestamp),
        scores: names.iter().cloned().zip(scores.iter().map(|&s| four_decimals(s))).collect(),
        thresholds: labels
            .detector
            .iter()
            .filter(|l| !l.negative)
            .map(|l| (l.name.clone(), four_decimals(l.threshold)))
            .collect(),
    }
}

/// Undecodable frames in a row before the inference thread slows down.
const UNDECODABLE_IN_ROW: u32 = 10;

/// Counts what happened to a frame, and records the stage times of an
/// inferred one. `no_events`: the frame's processing ends here, so its
/// frame-to-publish latency is recorded now (with events, once they are sent).
fn count_step(shared: &CameraShared, frame: &OwnedFrame, step: Step, no_events: bool) {
    let counters = &shared.counters;
    if step.input_unreadable {
        CameraCounters::bump(&counters.input_errors);
    }
    let times = match step.outcome {
        Outcome::Disabled => return CameraCounters::bump(&counters.disabled_skipped),
        Outcome::InputIdle => return CameraCounters::bump(&counters.input_skipped),
        Outcome::RateLimited => return CameraCounters::bump(&counters.rate_skipped),
        Outcome::Still => return CameraCounters::bump(&counters.motion_skipped),
        Outcome::Inferred(times) => times,
    };
    CameraCounters::bump(&counters.inferred);
    let to_publish = frame.arrived.elapsed();
    shared.record_latencies(|lat| {
        lat.decode.record(times.decode);
        lat.preprocess.record(times.preprocess);
        lat.encode.record(times.encode);
        lat.matching.record(times.matching);
        if no_events {
            lat.frame_to_publish.record(to_publish);
        }
    });
}

/// Quality of an example image's JPEG: it is embedded again whenever the
/// labels load, so it keeps nearly every detail (~3× a snapshot's bytes).
pub const EXAMPLE_JPEG_QUALITY: u8 = 95;

/// The part of the frame under `rect`, converted at full size, as a JPEG:
/// an example image of what the zone shows.
fn example_jpeg(frame: &OwnedFrame, full_size: &mut Converter, rect: &Rect) -> Result<Vec<u8>, String> {
    let mut rgb = RgbImage::new();
    full_size.convert(&frame.as_frame(), &mut rgb).map_err(|e| format!("frame {}: {e}", frame.sequence))?;
    let mut cut = RgbImage::new();
    let image = if rect.is_whole() {
        &rgb
    } else {
        crop(&rgb, rect, &mut cut);
        &cut
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, EXAMPLE_JPEG_QUALITY)
        .encode(&image.data, image.width, image.height, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("cannot encode frame {} as JPEG: {e}", frame.sequence))?;
    Ok(jpeg)
}

/// The frame as a JPEG for the snapshot topic of zone `rect`: for the whole
/// frame, the camera's own JPEG when it sent one; else the frame converted
/// at full size, a zone outlined on it, and encoded.
fn snapshot_jpeg(frame: &OwnedFrame, full_size: &mut Converter, rect: &Rect) -> Option<Vec<u8>> {
    if frame.format == PixelFormat::Mjpeg && rect.is_whole() {
        return Some(frame.data.clone());
    }
    let mut rgb = RgbImage::new();
    let encoded = full_size.convert(&frame.as_frame(), &mut rgb).map_err(anyhow::Error::from).and_then(|()| {
        if !rect.is_whole() {
            outline(&mut rgb, rect, ZONE_OUTLINE_PX, ZONE_OUTLINE);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, SNAPSHOT_JPEG_QUALITY).encode(
            &rgb.data,
            rgb.width,
            rgb.height,
            image::ExtendedColorType::Rgb8,
        )?;
        Ok(jpeg)
    });
    match encoded {
        Ok(jpeg) => Some(jpeg),
        Err(e) => {
            tracing::warn!("no snapshot for frame {}: {e}", frame.sequence);
            None
        }
    }
}
