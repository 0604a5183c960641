//! One camera's two threads: capture (the source's frames into a
//! latest-frame slot) and inference (slot → input gate → RGB → motion gate
//! → encoder → scores → detector → events for the publisher).
//!
//! The slot holds one frame: when inference is slower than the camera, the
//! capture thread replaces the waiting frame and the replaced one is counted
//! as dropped (design.md, "latest frame wins"). A recording replayed without
//! a frame rate is the exception: its capture thread waits for the inference
//! thread, so that every frame is inferred and a replay gives the same
//! events on any machine. Frame buffers go round through the slot's pool,
//! so a warm pipeline allocates nothing per frame except the events it
//! reports.
//!
//! The inference thread owns the detector. It sees label changes and the
//! enabled switch between two frames, and on stop (or when the source ends)
//! ends every active event, so that no `ON` state is left behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::bundle::Bundle;
use crate::capture::convert::{Converter, RgbImage};
use crate::capture::motion::{MotionGate, MotionOptions};
use crate::capture::slot::{Latest, TakeError};
use crate::capture::{CaptureErrorKind, Frame, FrameSource, PixelFormat};
use crate::classify::Classifier;
use crate::detect::{Detector, DetectorOptions, Event, EventKind, FrameInfo};
use crate::encode::ImageEncoder;
use crate::gpio::input::{InputGate, InputState};
use crate::gpio::AnyInputPin;
use crate::log_limit::{also, LogLimit};
use crate::util::backoff::Backoff;

use super::labels::ActiveLabels;
use super::stats::{CameraCounters, Latencies};

/// How long a thread blocks before it looks at the stop flag again; also
/// bounds how late a stop, a label change or the enabled switch is seen.
const POLL: Duration = Duration::from_millis(100);

/// Labels kept in a frame's top list (the detector reads every label's
/// score; the top list is for logs).
const TOP_K: usize = 5;

/// Quality of the JPEG made for a snapshot when the camera did not send
/// JPEG (YUYV, NV12...): a typical webcam setting, ~50 KB at 640×480.
const SNAPSHOT_JPEG_QUALITY: u8 = 85;

/// A frame copied out of the source's buffer, with when it arrived.
#[derive(Debug, Clone)]
pub struct OwnedFrame {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub data: Vec<u8>,
    pub sequence: u64,
    pub timestamp: SystemTime,
    pub arrived: Instant,
}

impl Default for OwnedFrame {
    fn default() -> Self {
        OwnedFrame {
            format: PixelFormat::Mjpeg,
            width: 0,
            height: 0,
            stride: 0,
            data: Vec::new(),
            sequence: 0,
            timestamp: SystemTime::UNIX_EPOCH,
            arrived: Instant::now(),
        }
    }
}

impl OwnedFrame {
    /// Copies `frame` in, reusing this buffer's memory.
    fn fill_from(&mut self, frame: &Frame<'_>) {
        self.format = frame.format;
        self.width = frame.width;
        self.height = frame.height;
        self.stride = frame.stride;
        self.data.clear();
        self.data.extend_from_slice(frame.data);
        self.sequence = frame.sequence;
        self.timestamp = frame.timestamp;
        self.arrived = Instant::now();
    }

    pub fn as_frame(&self) -> Frame<'_> {
        Frame {
            format: self.format,
            width: self.width,
            height: self.height,
            stride: self.stride,
            data: &self.data,
            sequence: self.sequence,
            timestamp: self.timestamp,
        }
    }
}

/// What a camera's inference thread tells the main loop.
#[derive(Debug)]
pub enum Output {
    /// Events from one inferred frame. `snapshot` is that frame as JPEG
    /// when one of the events is a start.
    Events { camera: String, events: Vec<Event>, snapshot: Option<Arc<Vec<u8>>>, frame_time: SystemTime },
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
    labels: RwLock<Arc<ActiveLabels>>,
    pub counters: CameraCounters,
    pub latencies: Mutex<Latencies>,
    pub slot: Latest<OwnedFrame>,
    /// Labels in an event now, for stats.
    pub active: Mutex<Vec<String>>,
}

impl CameraShared {
    pub fn labels(&self) -> Arc<ActiveLabels> {
        self.labels.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs a new label set; the inference thread takes it before its
    /// next frame. Returns the previous set.
    pub fn set_labels(&self, labels: ActiveLabels) -> Arc<ActiveLabels> {
        let mut slot = self.labels.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, Arc::new(labels))
    }
}

/// Everything the inference thread needs besides the shared state.
pub struct InferenceSetup {
    pub bundle: Arc<Bundle>,
    pub encoder: Arc<ImageEncoder>,
    pub detector: DetectorOptions,
    pub motion: Option<MotionOptions>,
    pub max_fps: Option<f64>,
    /// A sensor line that gates inference (`[cameras.NAME.input]`).
    pub input: Option<InputGate<AnyInputPin>>,
    pub out: Sender<Output>,
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
        labels: ActiveLabels,
        setup: InferenceSetup,
        wait_for_inference: bool,
    ) -> anyhow::Result<Camera> {
        let shared = Arc::new(CameraShared {
            name: name.to_string(),
            source: source_spec,
            enabled: AtomicBool::new(enabled),
            stop: AtomicBool::new(false),
            labels: RwLock::new(Arc::new(labels)),
            counters: CameraCounters::default(),
            latencies: Mutex::new(Latencies::default()),
            slot: Latest::new(),
            active: Mutex::new(Vec::new()),
        });
        // Built here, not in the thread, so that a model that cannot run
        // stops the start-up with its error.
        let labels = shared.labels();
        let classifier = Classifier::new(&setup.bundle, &setup.encoder, labels.matcher.clone())?;
        {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn(move || capture_loop(&shared, source, wait_for_inference))?;
        }
        let inference = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("infer-{name}"))
                .spawn(move || inference_loop(&shared, setup, classifier))?
        };
        Ok(Camera { shared, inference: Some(inference) })
    }

    /// Asks both threads to stop. The inference thread ends active events
    /// and reports [`Output::Finished`]; a capture thread blocked in its
    /// source (a camera that went silent) is left to the process exit.
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
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

fn capture_loop(shared: &CameraShared, mut source: Box<dyn FrameSource>, wait_for_inference: bool) {
    let name = &shared.name;
    let mut corrupt_log = LogLimit::new();
    let mut error_log = LogLimit::new();
    // Sources back off by themselves between reopen attempts; this is a
    // floor for one that fails at once, so that the loop never spins: 100 ms
    // doubling up to 5 s, back to 100 ms with every frame.
    let mut quick_failures = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !shared.stop.load(Ordering::Relaxed) {
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
                        tracing::warn!("camera '{name}': skipped a corrupt frame: {e}{}", also(n));
                    }
                }
                CaptureErrorKind::Ended => {
                    tracing::info!("camera '{name}': {e}");
                    break;
                }
                CaptureErrorKind::Timeout
                | CaptureErrorKind::Busy
                | CaptureErrorKind::Disconnected
                | CaptureErrorKind::Other => {
                    CameraCounters::bump(&shared.counters.source_errors);
                    if let Some(n) = error_log.check() {
                        tracing::warn!("camera '{name}' ({}): {e}{}", shared.source, also(n));
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

/// The detector's view of a frame.
fn frame_info(frame: &OwnedFrame) -> FrameInfo {
    FrameInfo { id: frame.sequence, at: frame.arrived, wall: frame.timestamp }
}

/// A moment without a frame (stop, label change), for events that end then.
fn now_info(last_id: u64) -> FrameInfo {
    FrameInfo { id: last_id, at: Instant::now(), wall: SystemTime::now() }
}

fn inference_loop(shared: &CameraShared, mut setup: InferenceSetup, mut classifier: Classifier) {
    let name = shared.name.clone();
    let min_side = setup.bundle.image.size;
    let mut labels = shared.labels();
    let mut detector = Detector::new(labels.detector.clone(), setup.detector);
    let mut converter = Converter::new(Some(min_side));
    let mut full_size = Converter::new(None);
    let mut rgb = RgbImage::new();
    let mut gate = setup.motion.map(MotionGate::new);
    let min_interval = setup.max_fps.filter(|f| *f > 0.0).map(|f| Duration::from_secs_f64(1.0 / f));
    let mut last_inference: Option<Instant> = None;
    let mut last_id = 0;
    let mut was_enabled = shared.enabled.load(Ordering::Relaxed);
    let mut events = Vec::new();
    let mut decode_log = LogLimit::new();
    let send = |events: &mut Vec<Event>, snapshot: Option<Arc<Vec<u8>>>, frame_time: SystemTime| {
        if events.is_empty() {
            return;
        }
        let mut active = shared.active.lock().unwrap_or_else(|e| e.into_inner());
        for e in events.iter() {
            match e.kind {
                EventKind::Start => active.push(e.label.clone()),
                EventKind::End => active.retain(|l| *l != e.label),
            }
        }
        drop(active);
        let _ = setup.out.send(Output::Events {
            camera: shared.name.clone(),
            events: std::mem::take(events),
            snapshot,
            frame_time,
        });
    };

    let source_ended = loop {
        if shared.stop.load(Ordering::Relaxed) {
            detector.stop(now_info(last_id), &mut events);
            send(&mut events, None, SystemTime::now());
            break false;
        }
        let current = shared.labels();
        if !Arc::ptr_eq(&current, &labels) {
            classifier.set_matcher(current.matcher.clone());
            detector.set_labels(current.detector.clone(), now_info(last_id), &mut events);
            send(&mut events, None, SystemTime::now());
            labels = current;
        }
        let enabled = shared.enabled.load(Ordering::Relaxed);
        if was_enabled && !enabled {
            detector.stop(now_info(last_id), &mut events);
            send(&mut events, None, SystemTime::now());
            // After a pause the scene has changed: compare with what comes.
            gate = setup.motion.map(MotionGate::new);
        }
        was_enabled = enabled;

        let frame = match shared.slot.take(POLL) {
            Ok(frame) => frame,
            Err(TakeError::Timeout) => continue,
            Err(TakeError::Closed) => {
                detector.stop(now_info(last_id), &mut events);
                send(&mut events, None, SystemTime::now());
                break true;
            }
        };
        last_id = frame.sequence;
        let outcome = infer_frame(
            &frame,
            enabled,
            setup.input.as_mut(),
            min_interval,
            &mut last_inference,
            &mut converter,
            &mut rgb,
            &mut gate,
            &mut classifier,
            &mut detector,
            &mut events,
            shared,
        );
        match outcome {
            Ok(()) if !events.is_empty() => {
                let snapshot = events
                    .iter()
                    .any(|e| e.kind == EventKind::Start)
                    .then(|| snapshot_jpeg(&frame, &mut full_size, &name))
                    .flatten()
                    .map(Arc::new);
                send(&mut events, snapshot, frame.timestamp);
                let mut lat = shared.latencies.lock().unwrap_or_else(|e| e.into_inner());
                lat.frame_to_publish.record(frame.arrived.elapsed());
            }
            Ok(()) => {}
            Err(e) => {
                CameraCounters::bump(&shared.counters.corrupt);
                if let Some(n) = decode_log.check() {
                    tracing::warn!("camera '{name}': skipped frame {}: {e}{}", frame.sequence, also(n));
                }
            }
        }
        shared.slot.recycle(frame);
    };
    let _ = setup.out.send(Output::Finished { camera: name, source_ended });
}

/// Runs one frame through the gates and the model; the detector's events
/// land in `events`. An error is a frame that could not be decoded.
#[allow(clippy::too_many_arguments)]
fn infer_frame(
    frame: &OwnedFrame,
    enabled: bool,
    input: Option<&mut InputGate<AnyInputPin>>,
    min_interval: Option<Duration>,
    last_inference: &mut Option<Instant>,
    converter: &mut Converter,
    rgb: &mut RgbImage,
    gate: &mut Option<MotionGate>,
    classifier: &mut Classifier,
    detector: &mut Detector,
    events: &mut Vec<Event>,
    shared: &CameraShared,
) -> anyhow::Result<()> {
    let counters = &shared.counters;
    if !enabled {
        CameraCounters::bump(&counters.disabled_skipped);
        return Ok(());
    }
    let t0 = Instant::now();
    if let Some(input) = input {
        // Read on every frame, so that the hold counts from the sensor's
        // last active moment; an active event keeps the frames coming, so
        // that it can end when its label leaves the picture.
        let state = input.check(t0);
        if state == InputState::Unreadable {
            CameraCounters::bump(&counters.input_errors);
        }
        if !state.open() && !detector.any_active() {
            CameraCounters::bump(&counters.input_skipped);
            return Ok(());
        }
    }
    if let (Some(min), Some(last)) = (min_interval, *last_inference) {
        if t0.duration_since(last) < min {
            CameraCounters::bump(&counters.rate_skipped);
            return Ok(());
        }
    }
    converter.convert(&frame.as_frame(), rgb)?;
    let t1 = Instant::now();
    if let Some(gate) = gate {
        if !gate.check(rgb, t1).infer() {
            CameraCounters::bump(&counters.motion_skipped);
            return Ok(());
        }
    }
    classifier.classify(rgb.as_frame(), TOP_K)?;
    let scores = classifier.scores();
    if tracing::enabled!(tracing::Level::TRACE) {
        let names = classifier.matcher().names();
        let top: Vec<String> =
            scores.top.iter().take(3).map(|s| format!("{} {:.3}", names[s.label], s.probability)).collect();
        tracing::trace!("camera '{}': frame {}: {}", shared.name, frame.sequence, top.join(", "));
    }
    detector.observe(frame_info(frame), &scores.probability, events);
    *last_inference = Some(t0);
    CameraCounters::bump(&counters.inferred);
    let times = classifier.times;
    let mut lat = shared.latencies.lock().unwrap_or_else(|e| e.into_inner());
    lat.decode.record(t1 - t0);
    lat.preprocess.record(times.preprocess);
    lat.encode.record(times.encode);
    lat.matching.record(times.matching);
    if events.is_empty() {
        lat.frame_to_publish.record(frame.arrived.elapsed());
    }
    Ok(())
}

/// The frame as a JPEG for the snapshot topic: the camera's own JPEG when
/// it sent one, else the frame converted at full size and encoded.
fn snapshot_jpeg(frame: &OwnedFrame, full_size: &mut Converter, camera: &str) -> Option<Vec<u8>> {
    if frame.format == PixelFormat::Mjpeg {
        return Some(frame.data.clone());
    }
    let mut rgb = RgbImage::new();
    let encoded = full_size.convert(&frame.as_frame(), &mut rgb).map_err(anyhow::Error::from).and_then(|()| {
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
            tracing::warn!("camera '{camera}': no snapshot for frame {}: {e}", frame.sequence);
            None
        }
    }
}
