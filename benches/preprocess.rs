//! Preprocessing speed: edgeclip's Pillow-exact resample-and-crop against
//! fast_image_resize (SIMD convolution of the whole frame, then the crop),
//! on the same frames in the same run, reported as a ratio.
//!
//! Run: `cargo bench --bench preprocess` (a release build). Not a test: the
//! numbers depend on the machine and its load; the ratio is what to compare.

mod common;

use common::median_ms;
use edgeclip::cli::bench::synthetic_frame;
use edgeclip::model::bundle::ResizeFilter;
use edgeclip::model::preprocess::resample::Resampler;
use edgeclip::model::preprocess::{crop_origin, resized_size, RgbFrame};
use fast_image_resize as fir;

/// Frames timed per measurement; the median of `ROUNDS` measurements is kept.
const FRAMES: usize = 50;
const ROUNDS: usize = 9;

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too,
    // without it, and then only checks that it runs (one frame per size).
    let timed = std::env::args().any(|a| a == "--bench");
    let (frames, rounds) = if timed { (FRAMES, ROUNDS) } else { (1, 1) };
    let size = 224u32;
    println!("{}", common::machine());
    println!("frame      edgeclip ms  fast_image_resize ms  ratio (edgeclip / fir)  max diff (8-bit levels)");
    for (w, h) in [(640u32, 480u32), (1280, 720), (1920, 1080)] {
        let src = synthetic_frame(w, h);
        let resized = resized_size(w, h, size);
        let origin = crop_origin(resized, size);

        let mut ours = vec![0u8; (size * size * 3) as usize];
        let mut resampler = Resampler::new();
        let t_ours = median_ms(frames, rounds, || {
            let frame = RgbFrame { width: w, height: h, data: &src };
            resampler.resize_crop(frame, resized, ResizeFilter::Bicubic, origin, size, &mut ours);
        });

        let mut theirs = vec![0u8; (size * size * 3) as usize];
        let mut full = fir::images::Image::new(resized.0, resized.1, fir::PixelType::U8x3);
        let mut resizer = fir::Resizer::new();
        let options = fir::ResizeOptions::new().resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::CatmullRom));
        let src_image = fir::images::ImageRef::new(w, h, &src, fir::PixelType::U8x3).unwrap();
        let t_fir = median_ms(frames, rounds, || {
            resizer.resize(&src_image, &mut full, &options).unwrap();
            let stride = resized.0 as usize * 3;
            for (y, row) in theirs.chunks_exact_mut(size as usize * 3).enumerate() {
                let from = (origin.1 as usize + y) * stride + origin.0 as usize * 3;
                row.copy_from_slice(&full.buffer()[from..from + size as usize * 3]);
            }
        });
        let max_diff = ours.iter().zip(&theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        println!(
            "{:<10} {:>11.3}  {:>20.3}  {:>22.2}  {:>23}",
            format!("{w}x{h}"),
            t_ours,
            t_fir,
            t_ours / t_fir,
            max_diff
        );
    }
}
