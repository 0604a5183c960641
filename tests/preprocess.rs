//! Preprocessing against the golden tensors from transformers'
//! `CLIPImageProcessorPil` (Pillow bicubic), and its allocation behaviour.

use edgeclip::capture::still::read_rgb;
use edgeclip::cli::bench::synthetic_frame;
use edgeclip::model::bundle::Bundle;
use edgeclip::model::preprocess::{crop_origin, resized_size, Preprocessor, RgbFrame};

use crate::support::allocations::count_allocations;
use crate::support::golden::{golden_images, max_abs_diff, read_f32};
use crate::support::paths::{bundle_dir, data_dir, golden_dir};

/// Largest difference allowed from transformers' Pillow-backed processor, in
/// normalized units. The resampler reproduces Pillow's integer arithmetic and
/// the lookup table its float arithmetic, so the tensors are bit-identical
/// (measured: 0 on every golden image). A looser bar, 0.02, would be a bit
/// more than one 8-bit level (1/255/std ≈ 0.015); any drift now fails.
const TOLERANCE: f32 = 0.0;

#[test]
fn matches_clip_image_processor() {
    let bundle = Bundle::load(bundle_dir("tiny-fp32")).unwrap();
    let mut pre = Preprocessor::new(&bundle.image);
    let mut out = vec![0f32; pre.output_len()];
    let mut worst = 0f32;
    for stem in golden_images() {
        let (w, h, data) = read_rgb(&data_dir().join("images").join(format!("{stem}.png"))).unwrap();
        pre.run(RgbFrame::new(w, h, &data).unwrap(), &mut out).unwrap();
        let golden = read_f32(&golden_dir().join(format!("{stem}.pixel_values.f32")));
        let diff = max_abs_diff(&out, &golden);
        let off = out.iter().zip(&golden).filter(|(a, b)| (*a - *b).abs() > 1e-5).count();
        eprintln!("{stem} ({w}x{h}): max abs diff {diff:.6}, {off} of {} values differ", out.len());
        assert!(diff <= TOLERANCE, "{stem}: max abs diff {diff} > {TOLERANCE}");
        worst = worst.max(diff);
    }
    eprintln!("worst max abs diff over all images: {worst:.6}");
}

#[test]
fn resize_and_crop_geometry_follows_transformers() {
    // int(224 * 640 / 480) = 298, truncated; crop offset (298 - 224) // 2 = 37.
    assert_eq!(resized_size(640, 480, 224), (298, 224));
    assert_eq!(resized_size(480, 640, 224), (224, 298));
    assert_eq!(resized_size(333, 517, 224), (224, 347));
    assert_eq!(resized_size(150, 100, 224), (336, 224));
    assert_eq!(resized_size(224, 224, 224), (224, 224));
    // Saturates instead of wrapping around.
    assert_eq!(resized_size(1, u32::MAX, 224), (224, u32::MAX));
    assert_eq!(crop_origin((298, 224), 224), (37, 0));
    assert_eq!(crop_origin((224, 347), 224), (0, 61));
}

#[test]
fn bad_frames_are_errors() {
    let bundle = Bundle::load(bundle_dir("tiny-fp32")).unwrap();
    let mut pre = Preprocessor::new(&bundle.image);
    let mut out = vec![0f32; pre.output_len()];
    assert_eq!(
        RgbFrame::new(0, 10, &[]).unwrap_err().to_string(),
        "frame is 0x10: an empty frame cannot be preprocessed"
    );
    assert_eq!(
        RgbFrame::new(4, 4, &[0; 47]).unwrap_err().to_string(),
        "frame buffer holds 47 bytes but a 4x4 RGB8 frame needs 48"
    );
    let thin = vec![0u8; 4000 * 3];
    let e = pre.run(RgbFrame::new(4000, 1, &thin).unwrap(), &mut out).unwrap_err();
    assert_eq!(e.to_string(), "frame is 4000x1: more elongated than 16:1, which no camera delivers");
    let e = pre.run(RgbFrame::new(2, 2, &[0; 12]).unwrap(), &mut out[..10]).unwrap_err();
    assert!(e.to_string().starts_with("output tensor holds 10 values"));
}

#[test]
fn no_allocation_per_frame_once_warm() {
    let bundle = Bundle::load(bundle_dir("tiny-fp32")).unwrap();
    let mut pre = Preprocessor::new(&bundle.image);
    let mut out = vec![0f32; pre.output_len()];
    for (w, h) in [(640, 480), (1280, 720)] {
        let data = synthetic_frame(w, h);
        let frame = RgbFrame::new(w, h, &data).unwrap();
        pre.run(frame, &mut out).unwrap(); // warm-up: sizes the buffers
        let allocations = count_allocations(|| {
            for _ in 0..5 {
                pre.run(frame, &mut out).unwrap();
            }
        });
        assert_eq!(allocations, 0, "{w}x{h}: {allocations} allocations in 5 warm frames");
    }
}
