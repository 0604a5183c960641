//! The motion gate: skip inference while the scene is still.
//!
//! Running the image encoder on a Pi costs far more than looking at the
//! frame, and most of a camera's day nothing moves. Each frame is shrunk to a
//! small colour thumbnail ([`GRID_W`] × [`GRID_H`] cell averages of red,
//! green and blue, which also smooths away sensor noise) and compared with
//! the thumbnail of the frame last inferred: when enough cells changed by
//! enough levels in any channel, the frame is inferred. Colour, not only
//! brightness: a green car in front of a grey wall can be exactly as bright
//! as the wall, and CLIP sees the colour. Comparing with the last *inferred* frame, not the previous
//! one, lets a slow change (a car creeping in, the light going) add up until
//! it counts; an inference is also forced every so often, and the first
//! frame is always inferred. After a change the still frames that follow
//! are inferred until the detector has decided ([`Settling`]).

use std::time::{Duration, Instant};

use super::convert::RgbImage;

/// Values per thumbnail: red, green and blue per cell.
const THUMB_LEN: usize = GRID_W * GRID_H * 3;

/// Thumbnail cells: 768, enough to see a person at the far side of a room
/// (a few cells) while costing a few microseconds to compare.
pub const GRID_W: usize = 32;
pub const GRID_H: usize = 24;
/// Samples per cell side at most; a cell of a large frame is subsampled,
/// which changes its average by far less than the threshold.
const SAMPLES_PER_CELL_SIDE: u32 = 8;

/// How sensitive the gate is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionOptions {
    /// A cell has changed when its average red, green or blue moved by more
    /// than this many levels (0..=255). 25 ignores sensor noise and compression
    /// flicker yet sees a person in a dim room (like Frigate's default
    /// motion threshold of 30 on single pixels, lower because cells average).
    pub pixel_threshold: u8,
    /// The frame is inferred when at least this fraction of the cells
    /// changed; 0.005 is 4 of 768 cells, about a person's head at 5 m with a
    /// 90° lens at 640×480.
    pub min_changed_area: f32,
    /// An inference at least this often even when nothing moves, so that a
    /// change the gate misses is still seen; 60 s bounds how long a missed
    /// change can go unreported while keeping a still scene nearly free.
    pub force_every: Duration,
}

impl MotionOptions {
    /// The defaults, also those of the configuration file's motion keys.
    pub const DEFAULT: MotionOptions =
        MotionOptions { pixel_threshold: 25, min_changed_area: 0.005, force_every: Duration::from_secs(60) };
}

impl Default for MotionOptions {
    fn default() -> Self {
        MotionOptions::DEFAULT
    }
}

/// Why a frame is inferred, or that it is not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GateDecision {
    /// The first frame, or the first after a size change.
    First,
    /// This fraction of the thumbnail changed since the last inference.
    Motion(f32),
    /// Nothing moved, but `force_every` has passed.
    Forced,
    /// Nothing moved enough (the fraction that did).
    Still(f32),
}

impl GateDecision {
    pub fn infer(self) -> bool {
        !matches!(self, GateDecision::Still(_))
    }
}

pub struct MotionGate {
    options: MotionOptions,
    /// The thumbnail of the last inferred frame, and that frame's size.
    reference: Option<([u8; THUMB_LEN], (u32, u32))>,
    thumbnail: [u8; THUMB_LEN],
    last_inference: Option<Instant>,
}

impl MotionGate {
    pub fn new(options: MotionOptions) -> MotionGate {
        MotionGate { options, reference: None, thumbnail: [0; THUMB_LEN], last_inference: None }
    }

    /// Whether to infer `frame`, seen at `now`. An inferred frame becomes
    /// the reference the next frames are compared with.
    pub fn check(&mut self, frame: &RgbImage, now: Instant) -> GateDecision {
        thumbnail(frame, &mut self.thumbnail);
        let size = (frame.width, frame.height);
        let decision = match &self.reference {
            Some((reference, ref_size)) if *ref_size == size => {
                let threshold = i16::from(self.options.pixel_threshold);
                let changed = reference
                    .chunks_exact(3)
                    .zip(self.thumbnail.chunks_exact(3))
                    .filter(|(a, b)| {
                        a.iter().zip(b.iter()).any(|(&a, &b)| (i16::from(a) - i16::from(b)).abs() > threshold)
                    })
                    .count();
                let fraction = changed as f32 / (GRID_W * GRID_H) as f32;
                if changed > 0 && fraction >= self.options.min_changed_area {
                    GateDecision::Motion(fraction)
                } else if self.last_inference.is_some_and(|t| now.duration_since(t) >= self.options.force_every) {
                    GateDecision::Forced
                } else {
                    GateDecision::Still(fraction)
                }
            }
            _ => GateDecision::First,
        };
        if decision.infer() {
            self.reference = Some((self.thumbnail, size));
            self.last_inference = Some(now);
        }
        decision
    }

    /// The frame last checked is inferred although the gate found it still
    /// (the scores are settling after a change): it becomes the reference,
    /// as an inferred frame does.
    pub fn inferred_anyway(&mut self, frame: &RgbImage, now: Instant) {
        self.reference = Some((self.thumbnail, (frame.width, frame.height)));
        self.last_inference = Some(now);
    }
}

/// How many still frames after a change are inferred anyway, so that the
/// detector can decide without waiting for the next movement: a shape that
/// appears and then stands still (a parcel left on a porch, a car that
/// parks) changes the picture once, and one inferred frame cannot start an
/// event that needs `start_frames` in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settling {
    /// Still frames inferred after every change: enough for a run of
    /// `start_frames` or `end_frames` to complete.
    pub min_frames: u32,
    /// Beyond those, still frames are inferred only while the detector is
    /// part-way to a decision, at most this many (a score hovering at a
    /// threshold in camera noise would otherwise keep a still scene
    /// inferring for ever).
    pub max_extra_frames: u32,
}

impl Settling {
    /// The extra frames after the minimum: 20 bounds what one change can
    /// cost on a still scene to 20 + `min_frames` inferences (about 12 s of
    /// a Pi 4's CPU with ViT-B/32 at 2 inferences a second), and is far
    /// more than a detector run needs once the picture holds still.
    pub const MAX_EXTRA_FRAMES: u32 = 20;

    /// The settling a detector with these runs needs.
    pub fn for_runs(start_frames: u32, end_frames: u32) -> Settling {
        Settling { min_frames: start_frames.max(end_frames).max(1), max_extra_frames: Settling::MAX_EXTRA_FRAMES }
    }
}

/// Where the settling after the last change stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleState {
    /// Still frames inferred since the last change.
    inferred: u32,
    /// Whether the minimum applies (after motion or the first frame; not
    /// after a forced inference, which only goes on while undecided).
    after_change: bool,
}

impl SettleState {
    /// The gate let a frame through.
    pub fn passed(&mut self, decision: GateDecision) {
        *self = SettleState { inferred: 0, after_change: !matches!(decision, GateDecision::Forced) };
    }

    /// Whether to infer a still frame; `undecided`: the detector is
    /// part-way to a decision.
    pub fn infer_still(&mut self, settling: Settling, undecided: bool) -> bool {
        let minimum = if self.after_change { settling.min_frames } else { 0 };
        let infer = self.inferred < minimum || (undecided && self.inferred < minimum + settling.max_extra_frames);
        if infer {
            self.inferred += 1;
        }
        infer
    }
}

/// Average red, green and blue of each cell of a `GRID_W` × `GRID_H` grid
/// laid over the frame, row by row.
fn thumbnail(frame: &RgbImage, out: &mut [u8; THUMB_LEN]) {
    let (w, h) = (frame.width.max(1), frame.height.max(1));
    for gy in 0..GRID_H as u32 {
        let (y0, y1) = (gy * h / GRID_H as u32, ((gy + 1) * h / GRID_H as u32).max(gy * h / GRID_H as u32 + 1));
        let ystep = ((y1 - y0) / SAMPLES_PER_CELL_SIDE).max(1);
        for gx in 0..GRID_W as u32 {
            let (x0, x1) = (gx * w / GRID_W as u32, ((gx + 1) * w / GRID_W as u32).max(gx * w / GRID_W as u32 + 1));
            let xstep = ((x1 - x0) / SAMPLES_PER_CELL_SIDE).max(1);
            let (mut sum, mut n) = ([0u32; 3], 0u32);
            for y in (y0..y1.min(h)).step_by(ystep as usize) {
                let row = (y * frame.width) as usize * 3;
                for x in (x0..x1.min(w)).step_by(xstep as usize) {
                    let Some(p) = frame.data.get(row + x as usize * 3..row + x as usize * 3 + 3) else { continue };
                    for c in 0..3 {
                        sum[c] += u32::from(p[c]);
                    }
                    n += 1;
                }
            }
            let cell = (gy as usize * GRID_W + gx as usize) * 3;
            for c in 0..3 {
                out[cell + c] = (sum[c] / n.max(1)) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 320x240 gray frame with a `side`-pixel white square at (x, y) and
    /// a deterministic noise of +-`noise` levels.
    fn scene(x: u32, y: u32, side: u32, background: u8, noise: u8, seed: u32) -> RgbImage {
        let (w, h) = (320u32, 240u32);
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        for py in 0..h {
            for px in 0..w {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let jitter =
                    if noise == 0 { 0 } else { (state % (2 * u32::from(noise) + 1)) as i32 - i32::from(noise) };
                let inside = px >= x && px < x + side && py >= y && py < y + side;
                let v = if inside { 255 } else { (i32::from(background) + jitter).clamp(0, 255) as u8 };
                data.extend_from_slice(&[v, v, v]);
            }
        }
        RgbImage { width: w, height: h, data }
    }

    #[test]
    fn a_still_noisy_scene_is_skipped_and_a_moving_object_inferred() {
        let mut gate = MotionGate::new(MotionOptions::default());
        let t0 = Instant::now();
        assert_eq!(gate.check(&scene(10, 10, 40, 100, 0, 0), t0), GateDecision::First);
        // Sensor noise of +-12 levels on every pixel: still.
        for i in 1..20 {
            let d = gate.check(&scene(10, 10, 40, 100, 12, i), t0 + Duration::from_millis(100 * i as u64));
            assert!(!d.infer(), "frame {i}: {d:?}");
        }
        // The square moves by its own width: motion.
        match gate.check(&scene(50, 10, 40, 100, 0, 0), t0 + Duration::from_secs(2)) {
            GateDecision::Motion(f) => assert!(f > 0.02, "{f}"),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn a_slow_change_adds_up_against_the_last_inferred_frame() {
        let mut gate = MotionGate::new(MotionOptions::default());
        let t0 = Instant::now();
        assert!(gate.check(&scene(0, 0, 0, 100, 0, 0), t0).infer());
        // The whole scene brightens by 2 levels a frame: no two successive
        // frames differ by more than the threshold, but the 13th frame is
        // 26 levels brighter than the reference.
        let decisions: Vec<bool> = (1..=14)
            .map(|i| gate.check(&scene(0, 0, 0, 100 + 2 * i, 0, 0), t0 + Duration::from_millis(i as u64)).infer())
            .collect();
        assert_eq!(decisions.iter().position(|&d| d), Some(12), "{decisions:?}");
    }

    #[test]
    fn nothing_moving_still_gets_an_inference_every_force_period() {
        let options = MotionOptions { force_every: Duration::from_secs(10), ..MotionOptions::default() };
        let mut gate = MotionGate::new(options);
        let t0 = Instant::now();
        let still = scene(10, 10, 40, 100, 0, 0);
        let inferred: Vec<u64> =
            (0..=25).filter(|&s| gate.check(&still, t0 + Duration::from_secs(s)).infer()).collect();
        assert_eq!(inferred, [0, 10, 20]);
    }

    #[test]
    fn a_size_change_starts_over_and_a_tiny_change_is_below_the_area() {
        let mut gate = MotionGate::new(MotionOptions::default());
        let t0 = Instant::now();
        gate.check(&scene(0, 0, 0, 100, 0, 0), t0);
        // A 6-pixel square lies inside one 10-pixel cell: one changed cell
        // of 768 is below the 0.5 % area.
        assert!(!gate.check(&scene(100, 100, 6, 100, 0, 0), t0).infer());
        let small = RgbImage { width: 160, height: 120, data: vec![100; 160 * 120 * 3] };
        assert_eq!(gate.check(&small, t0), GateDecision::First);
    }

    #[test]
    fn a_colour_as_bright_as_the_background_is_motion() {
        // Green (0, 200, 0) has the luma of grey 117 (BT.601): a brightness
        // gate would not see it enter.
        let grey = |w: u32, h: u32| RgbImage { width: w, height: h, data: vec![117; (w * h * 3) as usize] };
        let mut gate = MotionGate::new(MotionOptions::default());
        let t0 = Instant::now();
        let background = grey(320, 240);
        assert!(gate.check(&background, t0).infer());
        assert!(!gate.check(&background, t0 + Duration::from_millis(100)).infer());
        let mut with_car = grey(320, 240);
        for y in 100..160 {
            for x in 100..200 {
                let i = ((y * 320 + x) * 3) as usize;
                with_car.data[i..i + 3].copy_from_slice(&[0, 200, 0]);
            }
        }
        assert!(matches!(gate.check(&with_car, t0 + Duration::from_millis(200)), GateDecision::Motion(_)));
    }

    /// Still frames inferred after a gate decision, with the detector
    /// undecided for the first `undecided_for` of them.
    fn settled_after(decision: GateDecision, undecided_for: u32) -> u32 {
        let mut settle = SettleState::default();
        settle.passed(decision);
        let settling = Settling::for_runs(2, 3);
        (0..100).take_while(|&i| settle.infer_still(settling, i < undecided_for)).count() as u32
    }

    #[test]
    fn after_a_change_still_frames_are_inferred_until_the_detector_decides_and_no_longer() {
        // The minimum, max(start_frames, end_frames), even when decided.
        assert_eq!(Settling::for_runs(2, 3).min_frames, 3);
        assert_eq!(settled_after(GateDecision::Motion(0.1), 0), 3);
        assert_eq!(settled_after(GateDecision::First, 0), 3);
        // Beyond it while undecided, up to the cap.
        assert_eq!(settled_after(GateDecision::Motion(0.1), 7), 7);
        assert_eq!(settled_after(GateDecision::Motion(0.1), 1000), 3 + Settling::MAX_EXTRA_FRAMES);
        // A forced look at a still scene goes on only while undecided.
        assert_eq!(settled_after(GateDecision::Forced, 0), 0);
        assert_eq!(settled_after(GateDecision::Forced, 2), 2);
        assert_eq!(settled_after(GateDecision::Forced, 1000), Settling::MAX_EXTRA_FRAMES);
    }
}
