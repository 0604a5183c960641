//! The image encoder on tract against onnxruntime on the same bundle and the
//! same input tensor (the golden preprocessed tensors).

use std::sync::Arc;

use edgeclip::model::bundle::Bundle;
use edgeclip::model::encode::{EncoderOptions, ImageEncoder};

use crate::support::allocations::count_allocations;
use crate::support::golden::{cosine, golden_images, max_abs_diff, read_f32};
use crate::support::paths::{bundle_dir, golden_dir};

/// Cosine to onnxruntime's embedding that each precision must reach (lower
/// for int8: its kernels may round differently from onnxruntime's).
/// tiny-int8 is dynamic int8 (MatMulInteger), tiny-qop static QOperator
/// int8 (QLinearMatMul/QLinearConv).
const MIN_COSINE: &[(&str, f32)] = &[("tiny-fp32", 0.9999), ("tiny-int8", 0.999), ("tiny-qop", 0.999)];

fn embed(encoder: &Arc<ImageEncoder>, pixel_values: &[f32]) -> Vec<f32> {
    let mut session = encoder.session().unwrap();
    session.fill_input(|input| input.copy_from_slice(pixel_values));
    session.run().unwrap().to_vec()
}

fn load(name: &str, options: &EncoderOptions) -> Arc<ImageEncoder> {
    let bundle = Bundle::load(bundle_dir(name)).unwrap();
    Arc::new(ImageEncoder::load(&bundle, options).unwrap())
}

#[test]
fn embeddings_match_onnxruntime() {
    for &(name, min_cosine) in MIN_COSINE {
        let encoder = load(name, &EncoderOptions::default());
        for stem in golden_images() {
            let pixels = read_f32(&golden_dir().join(format!("{stem}.pixel_values.f32")));
            let want = read_f32(&golden_dir().join(format!("{stem}.{name}.image_embeds.f32")));
            let got = embed(&encoder, &pixels);
            let cos = cosine(&got, &want);
            eprintln!("{name} {stem}: cosine {cos:.7}, max abs diff {:.2e}", max_abs_diff(&got, &want));
            assert!(cos >= min_cosine, "{name} {stem}: cosine {cos} < {min_cosine}");
        }
    }
}

#[test]
fn folding_and_threads_do_not_change_outputs() {
    for (name, _) in MIN_COSINE {
        let pixels = read_f32(&golden_dir().join(format!("{}.pixel_values.f32", golden_images()[0])));
        let reference = embed(&load(name, &EncoderOptions { threads: 1, fold_constants: false }), &pixels);
        for options in
            [EncoderOptions { threads: 1, fold_constants: true }, EncoderOptions { threads: 2, fold_constants: true }]
        {
            let got = embed(&load(name, &options), &pixels);
            // Same kernels, same order of accumulation within a tile: equal
            // to the last bit is expected; allow float noise from a
            // different split between threads.
            assert!(max_abs_diff(&got, &reference) <= 1e-5, "{name} {options:?}: {got:?} vs {reference:?}");
        }
    }
}

#[test]
fn a_session_runs_many_frames_with_one_input_tensor() {
    let encoder = load("tiny-int8", &EncoderOptions::default());
    let stems = golden_images();
    let mut session = encoder.session().unwrap();
    // Alternate two images through one session: each result must be that
    // image's, so no state leaks from frame to frame.
    for round in 0..3 {
        for stem in &stems[..2] {
            let pixels = read_f32(&golden_dir().join(format!("{stem}.pixel_values.f32")));
            let want = read_f32(&golden_dir().join(format!("{stem}.tiny-int8.image_embeds.f32")));
            session.fill_input(|input| input.copy_from_slice(&pixels));
            let got = session.run().unwrap();
            assert!(cosine(got, &want) >= 0.999, "round {round} {stem}");
            // tract has let go of the input tensor: refilling it copies
            // nothing and allocates nothing.
            let allocations = count_allocations(|| session.fill_input(|input| input.copy_from_slice(&pixels)));
            assert_eq!(allocations, 0, "round {round}: the input tensor was cloned");
        }
    }
}

#[test]
fn int8_encoders_use_integer_kernels() {
    let fp32 = load("tiny-fp32", &EncoderOptions::default());
    assert!(fp32.report.kernels.keys().all(|k| !k.contains("i32")), "{:?}", fp32.report.kernels);
    for (name, op) in [("tiny-int8", "MatMulInteger"), ("tiny-qop", "QLinearMatMul")] {
        let int8 = load(name, &EncoderOptions::default());
        eprintln!("{name} kernels: {:?}", int8.report.kernels);
        assert!(int8.report.onnx_ops.contains_key(op), "{name}: {:?}", int8.report.onnx_ops);
        // Every weight MatMul of these graphs is quantized; the f32 kernels
        // left are the attention products (activation × activation).
        let integer: usize = int8.report.kernels.iter().filter(|(k, _)| k.contains("i32")).map(|(_, n)| n).sum();
        assert!(integer >= int8.report.onnx_ops[op], "{name}: {integer} integer matmuls: {:?}", int8.report.kernels);
    }
}
