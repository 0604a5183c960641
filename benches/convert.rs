//! Per-frame cost of turning a camera frame into the encoder's 224×224
//! input: conversion (MJPEG decode, or YUYV to RGB) plus
//! `Preprocessor::run`, at full size and reduced (`Converter::new(Some(224))`),
//! with the allocations each frame makes once warm. The baseline, in the same
//! run, is `image::load_from_memory` (full decode, a new buffer per frame)
//! plus the same preprocessing; each row's ratio to it is the number to
//! compare between runs on a noisy machine.
//!
//! Run: `cargo bench --bench convert` (a release build). Frames: the first
//! frame of the demo clip (640×480, rendered scenes) and that frame resized
//! to 1280×720 and encoded by the `image` crate; YUYV frames are the same
//! pictures converted to BT.601 limited range.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

mod common;

use common::median_ms;
use edgeclip::capture::mjpeg::MjpegFrames;
use edgeclip::capture::{Frame, PixelFormat};
use edgeclip::model::bundle::Bundle;
use edgeclip::model::preprocess::{Preprocessor, RgbFrame};
use edgeclip::pipeline::convert::{Converter, RgbImage};

/// Frames timed per measurement; the median of `ROUNDS` measurements is kept.
const FRAMES: usize = 20;
const ROUNDS: usize = 9;
/// JPEG quality of the 1280×720 frame: what webcams typically send.
const QUALITY: u8 = 85;

/// Counts every allocation of the process (the bench is single-threaded).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Median milliseconds per frame, and allocations per frame over all
/// rounds, after one warm-up frame.
fn measure(frames: usize, rounds: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let ms = median_ms(frames, rounds, &mut f);
    let allocs = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / (frames * rounds) as f64;
    (ms, allocs)
}

/// RGB8 to YUYV, BT.601 limited range (the bench's camera).
fn to_yuyv(rgb: &[u8], width: u32) -> Vec<u8> {
    let luma = |p: &[u8]| 16.0 + (65.481 * p[0] as f32 + 128.553 * p[1] as f32 + 24.966 * p[2] as f32) / 255.0;
    let mut out = Vec::with_capacity(rgb.len() / 3 * 2);
    for row in rgb.chunks_exact(width as usize * 3) {
        for pair in row.chunks_exact(6) {
            let (a, b) = (&pair[..3], &pair[3..]);
            let avg = |i: usize| (a[i] as f32 + b[i] as f32) / 2.0;
            let (r, g, bl) = (avg(0), avg(1), avg(2));
            let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * bl) / 255.0;
            let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * bl) / 255.0;
            out.extend([luma(a), u, luma(b), v].map(|x| x.round() as u8));
        }
    }
    out
}

/// The chroma sampling of a JPEG's first component, for the table.
fn sampling(jpeg: &[u8]) -> &'static str {
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC1]);
    match sof.and_then(|i| jpeg.get(i + 11)) {
        Some(0x11) => "4:4:4",
        Some(0x21) => "4:2:2",
        Some(0x22) => "4:2:0",
        _ => "?",
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too,
    // without it, and then only checks that it runs (one frame a row).
    let timed = std::env::args().any(|a| a == "--bench");
    let (frames, rounds) = if timed { (FRAMES, ROUNDS) } else { (1, 1) };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundle = Bundle::load(root.join("models/tiny-shapes")).expect("the demo bundle");
    let mut pre = Preprocessor::new(&bundle.image);
    let mut input = vec![0f32; pre.output_len()];

    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("{}, {threads} threads available", common::machine());
    println!("command: cargo bench --bench convert ({frames} frames x {rounds} rounds, median; 1 thread)");
    println!(
        "ms: conversion + Preprocessor::run to the {0}x{0} input, per frame; convert ms: the conversion alone",
        pre.size()
    );
    println!(
        "{:<9} {:<12} {:<8} {:>9} {:>8} {:>10} {:>14} {:>10}",
        "frame", "format", "reduced", "out", "ms", "convert ms", "allocs/frame", "vs image"
    );

    let demo = std::fs::read(root.join("models/tiny-shapes/demo.mjpeg")).expect("the demo clip");
    let first = MjpegFrames::new(&demo).next().expect("a frame").expect("a whole frame").jpeg.to_vec();
    let first_rgb = image::load_from_memory(&first).expect("the demo frame decodes").into_rgb8();

    for (w, h) in [(640u32, 480u32), (1280, 720)] {
        let (jpeg, rgb) = if (w, h) == first_rgb.dimensions() {
            (first.clone(), first_rgb.clone())
        } else {
            let big = image::imageops::resize(&first_rgb, w, h, image::imageops::FilterType::CatmullRom);
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut jpeg), QUALITY)
                .encode_image(&big)
                .expect("JPEG encoding");
            (jpeg, big)
        };
        let yuyv = to_yuyv(rgb.as_raw(), w);

        let (base_ms, base_allocs) = measure(frames, rounds, || {
            let img = image::load_from_memory(&jpeg).expect("decodes").into_rgb8();
            let frame = RgbFrame::new(img.width(), img.height(), img.as_raw()).expect("a whole image");
            pre.run(frame, &mut input).expect("preprocesses");
        });
        let (decode_ms, _) = measure(frames, rounds, || {
            std::hint::black_box(image::load_from_memory(&jpeg).expect("decodes").into_rgb8());
        });
        println!(
            "{:<9} {:<12} {:<8} {:>9} {:>8.2} {:>10.2} {:>14.1} {:>10}",
            format!("{w}x{h}"),
            "image crate",
            "no",
            format!("{w}x{h}"),
            base_ms,
            decode_ms,
            base_allocs,
            "1.00"
        );

        let mjpeg_label = format!("MJPEG {}", sampling(&jpeg));
        let sources = [
            (
                mjpeg_label.as_str(),
                Frame {
                    format: PixelFormat::Mjpeg,
                    width: w,
                    height: h,
                    stride: 0,
                    data: &jpeg,
                    sequence: 0,
                    timestamp: SystemTime::UNIX_EPOCH,
                },
            ),
            (
                "YUYV",
                Frame {
                    format: PixelFormat::Yuyv,
                    width: w,
                    height: h,
                    stride: w * 2,
                    data: &yuyv,
                    sequence: 0,
                    timestamp: SystemTime::UNIX_EPOCH,
                },
            ),
        ];
        for (label, frame) in sources {
            for min_side in [None, Some(pre.size())] {
                let mut conv = Converter::new(min_side);
                let mut rgb = RgbImage::new();
                let (convert_ms, _) = measure(frames, rounds, || conv.convert(&frame, &mut rgb).expect("converts"));
                let (ms, allocs) = measure(frames, rounds, || {
                    conv.convert(&frame, &mut rgb).expect("converts");
                    pre.run(rgb.as_frame(), &mut input).expect("preprocesses");
                });
                println!(
                    "{:<9} {:<12} {:<8} {:>9} {:>8.2} {:>10.2} {:>14.1} {:>10.2}",
                    format!("{w}x{h}"),
                    label,
                    if min_side.is_some() { "yes" } else { "no" },
                    format!("{}x{}", rgb.width, rgb.height),
                    ms,
                    convert_ms,
                    allocs,
                    ms / base_ms
                );
            }
        }
    }
}
