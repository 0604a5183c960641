//! What the web page reads of a running camera, written by its inference
//! thread: every inferred frame's label scores for the last minutes (the
//! scores chart, and calibration on what the camera saw), each zone's
//! latest image embedding (to score a labels file being edited on the
//! current frame), and, only while a page is looking, a recent frame as a
//! JPEG.
//!
//! With the page off nothing is recorded, and reading any of it finds
//! nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::camera_labels::CameraLabels;

/// The most scored frames kept per zone, whatever `web.score_history_min`
/// says: 20 hours at one inferred frame a second, or 2 hours at ten. With
/// 16 labels a frame takes about 110 bytes, so this caps a zone at 8 MB.
pub const MAX_SCORED_FRAMES: usize = 72_000;

/// A page that stops asking for frames stops the encoding this long after
/// its last request: a few of its refreshes.
const FRAME_WANTED_FOR: Duration = Duration::from_secs(10);

/// One inferred frame's scores in one zone, as a reader gets them.
#[derive(Clone)]
pub struct ScoredFrame {
    /// Milliseconds since the Unix epoch of the frame's arrival.
    pub time_ms: i64,
    pub frame: u64,
    /// The label set the frame was scored against: `scores[i]` is
    /// `labels.matcher.names()[i]`'s score.
    pub labels: Arc<CameraLabels>,
    pub scores: Box<[f32]>,
}

/// A recent frame of the camera, as a JPEG.
#[derive(Clone)]
pub struct LiveFrame {
    pub jpeg: Arc<Vec<u8>>,
    pub frame: u64,
    pub time: SystemTime,
}

/// A kept frame's place in its zone's history.
struct FrameMeta {
    time_ms: i64,
    frame: u64,
    labels: Arc<CameraLabels>,
}

/// A zone's history. The scores are kept back to back in one deque rather
/// than a small allocation per frame: those, made on the inference thread
/// between its large frame buffers and kept for an hour, would pin the
/// heap and let it grow by the frame (glibc's), over a megabyte a second.
#[derive(Default)]
struct ZoneLive {
    frames: VecDeque<FrameMeta>,
    /// Every kept frame's scores, in the frames' order, each as many as its
    /// label set has labels.
    scores: VecDeque<f32>,
    embedding: Option<Arc<Vec<f32>>>,
}

impl ZoneLive {
    fn scored(&self, from: usize) -> Vec<ScoredFrame> {
        let mut at: usize = self.frames.range(..from).map(|f| f.labels.matcher.names().len()).sum();
        self.frames
            .range(from..)
            .map(|f| {
                let n = f.labels.matcher.names().len();
                let scores = self.scores.range(at..at + n).copied().collect();
                at += n;
                ScoredFrame { time_ms: f.time_ms, frame: f.frame, labels: Arc::clone(&f.labels), scores }
            })
            .collect()
    }
}

#[derive(Default)]
struct FrameState {
    wanted_until: Option<Instant>,
    taken: Option<Instant>,
    latest: Option<LiveFrame>,
}

/// A camera's live view; see the module documentation.
pub struct LiveView {
    /// How long scores are kept; `None`: the page is off, nothing is kept.
    keep: Option<Duration>,
    frame_interval: Duration,
    zones: Vec<Mutex<ZoneLive>>,
    frame: Mutex<FrameState>,
}

impl LiveView {
    /// For a camera of `zones` zones; `keep` `None` records nothing.
    pub fn new(zones: usize, keep: Option<Duration>, frame_interval: Duration) -> LiveView {
        LiveView {
            keep,
            frame_interval,
            zones: (0..zones).map(|_| Mutex::new(ZoneLive::default())).collect(),
            frame: Mutex::new(FrameState::default()),
        }
    }

    /// Whether there is a page to record for.
    pub fn recording(&self) -> bool {
        self.keep.is_some()
    }

    /// Records zone `zone`'s scores and embedding of an inferred frame:
    /// `scores[i]` is `labels.matcher.names()[i]`'s.
    pub fn record(
        &self,
        zone: usize,
        time_ms: i64,
        frame: u64,
        labels: &Arc<CameraLabels>,
        scores: &[f32],
        embedding: &[f32],
    ) {
        let Some(keep) = self.keep else { return };
        let mut z = self.zones[zone].lock().unwrap_or_else(|e| e.into_inner());
        let oldest = time_ms - keep.as_millis() as i64;
        while z.frames.front().is_some_and(|f| f.time_ms < oldest) || z.frames.len() >= MAX_SCORED_FRAMES {
            let gone = z.frames.pop_front().expect("checked");
            z.scores.drain(..gone.labels.matcher.names().len());
        }
        z.frames.push_back(FrameMeta { time_ms, frame, labels: Arc::clone(labels) });
        z.scores.extend(scores.iter().copied());
        // The buffer is reused while no reader holds it.
        match z.embedding.as_mut().and_then(Arc::get_mut) {
            Some(e) => {
                e.clear();
                e.extend_from_slice(embedding);
            }
            None => z.embedding = Some(Arc::new(embedding.to_vec())),
        }
    }

    /// Zone `zone`'s scored frames since `since_ms` (all kept, with `i64::MIN`).
    pub fn scores_since(&self, zone: usize, since_ms: i64) -> Vec<ScoredFrame> {
        let Some(z) = self.zones.get(zone) else { return Vec::new() };
        let z = z.lock().unwrap_or_else(|e| e.into_inner());
        let start = z.frames.partition_point(|f| f.time_ms < since_ms);
        z.scored(start)
    }

    /// Zone `zone`'s latest scored frame.
    pub fn latest(&self, zone: usize) -> Option<ScoredFrame> {
        let z = self.zones.get(zone)?.lock().unwrap_or_else(|e| e.into_inner());
        z.scored(z.frames.len().checked_sub(1)?).pop()
    }

    /// Zone `zone`'s latest image embedding.
    pub fn embedding(&self, zone: usize) -> Option<Arc<Vec<f32>>> {
        self.zones.get(zone)?.lock().unwrap_or_else(|e| e.into_inner()).embedding.clone()
    }

    /// Whether the inference thread should encode this frame for the page:
    /// a page asked lately and the last one is `frame_interval` old.
    pub fn wants_frame(&self) -> bool {
        if self.keep.is_none() {
            return false;
        }
        let f = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        f.wanted_until.is_some_and(|until| now < until) && f.taken.is_none_or(|t| now >= t + self.frame_interval)
    }

    /// The inference thread's JPEG of a frame (or `None` when it could not
    /// be encoded; the next frame is tried after the interval too).
    pub fn set_frame(&self, frame: Option<LiveFrame>) {
        let mut f = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        f.taken = Some(Instant::now());
        if frame.is_some() {
            f.latest = frame;
        }
    }

    /// The latest frame encoded for the page, asking for more to come.
    pub fn frame(&self) -> Option<LiveFrame> {
        let mut f = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        f.wanted_until = Some(Instant::now() + FRAME_WANTED_FOR);
        f.latest.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::camera_labels::LabelsOrigin;
    use crate::labels::embeddings::EmbeddedLabel;
    use crate::pipeline::detect::DetectorLabel;
    use crate::pipeline::matcher::Matcher;

    fn labels(names: &[&str]) -> Arc<CameraLabels> {
        let embedded: Vec<EmbeddedLabel> = names
            .iter()
            .enumerate()
            .map(|(i, n)| EmbeddedLabel {
                name: n.to_string(),
                prompts: vec![],
                vector: vec![(i == 0) as u8 as f32, (i != 0) as u8 as f32],
            })
            .collect();
        Arc::new(CameraLabels {
            matcher: Arc::new(Matcher::new(&embedded, 2, 100.0).unwrap()),
            detector: names
                .iter()
                .map(|n| DetectorLabel { name: n.to_string(), threshold: 0.5, negative: false })
                .collect(),
            origin: LabelsOrigin::File("labels.txt".into()),
        })
    }

    #[test]
    fn scores_are_kept_for_their_minutes_with_their_labels() {
        let view = LiveView::new(1, Some(Duration::from_secs(60)), Duration::from_secs(1));
        let (two, three) = (labels(&["a", "b"]), labels(&["a", "b", "c"]));
        view.record(0, 1_000, 1, &two, &[0.9, 0.1], &[1.0, 0.0]);
        view.record(0, 2_000, 2, &three, &[0.2, 0.3, 0.5], &[0.0, 1.0]);
        view.record(0, 30_000, 3, &two, &[0.4, 0.6], &[0.6, 0.8]);
        let all = view.scores_since(0, i64::MIN);
        assert_eq!(all.iter().map(|s| s.frame).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(&*all[1].scores, &[0.2, 0.3, 0.5]);
        assert_eq!(all[1].labels.matcher.names(), ["a", "b", "c"]);
        assert_eq!(&*all[2].scores, &[0.4, 0.6]);
        assert_eq!(view.scores_since(0, 2_000).len(), 2);
        assert_eq!(view.embedding(0).unwrap().as_slice(), &[0.6, 0.8]);
        // A minute after the first, it is gone, and its scores with it.
        view.record(0, 61_500, 4, &three, &[0.1, 0.1, 0.8], &[1.0, 0.0]);
        let kept = view.scores_since(0, i64::MIN);
        assert_eq!(kept.iter().map(|s| s.frame).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(&*kept[0].scores, &[0.2, 0.3, 0.5]);
        assert_eq!(&*view.latest(0).unwrap().scores, &[0.1, 0.1, 0.8]);
    }

    #[test]
    fn without_a_page_nothing_is_kept() {
        let view = LiveView::new(1, None, Duration::from_secs(1));
        view.record(0, 1_000, 1, &labels(&["a", "b"]), &[0.9, 0.1], &[1.0, 0.0]);
        assert!(view.latest(0).is_none() && view.embedding(0).is_none() && !view.wants_frame());
        assert!(view.frame().is_none());
    }
}
