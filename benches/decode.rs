//! What an RTSP camera's H.264 costs to decode, per frame, against ffmpeg.
//!
//! The demo clip is encoded by ffmpeg's libx264 at 640×480 and 1280×720 as
//! an IP camera would send it (High profile, CABAC, no B-frames, a keyframe
//! every 2 s), as it is (a rendered scene: the easiest case) and with
//! sensor noise that changes every frame (a dim, grainy picture: about as
//! hard as a camera's stream gets), then decoded in the same run by:
//!
//! - edgeclip: OpenH264 through [`H264Decoder`], one access unit at a time,
//!   each picture written as NV12 (all the RTSP source does per frame);
//! - edgeclip without the NV12 copy (the decoding alone);
//! - ffmpeg (libavcodec's H.264 decoder) with one thread, to a null output,
//!   its `-benchmark` real time over the frames; this includes starting the
//!   process and probing the file, about 1 % of the total at 420 frames.
//!
//! The ratio edgeclip / ffmpeg is the number to compare between runs; both
//! decode on one core. Run: `cargo bench --bench decode` (a release build).
//! `cargo test --all-targets` runs it too, on 20 frames, only to check that
//! it runs.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod common;

use common::median_ms;
use edgeclip::capture::h264::{AccessUnit, AccessUnits, H264Decoder, Nv12Frame};

const ROUNDS: usize = 5;

/// The demo clip as Annex B H.264 at `width` x `height`, `frames` long,
/// with sensor noise of this strength (ffmpeg's `noise` filter) or none.
fn encode(dir: &Path, width: u32, height: u32, frames: usize, noise: u32) -> std::path::PathBuf {
    let out = dir.join(format!("demo-{width}x{height}-{noise}.h264"));
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-shapes/demo.mjpeg");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "mjpeg", "-framerate", "10", "-i"])
        .arg(clip)
        .args(["-frames:v", &frames.to_string()])
        .args(["-vf", &format!("scale={width}:{height}:flags=bicubic,noise=alls={noise}:allf=t")])
        .args(["-c:v", "libx264", "-profile:v", "high", "-pix_fmt", "yuv420p", "-bf", "0", "-g", "20", "-f", "h264"])
        .arg(&out)
        .status()
        .expect("ffmpeg (apt-get install ffmpeg; tools/test.sh does)");
    assert!(status.success(), "ffmpeg could not encode the clip");
    out
}

/// Milliseconds per frame of our decoder over the whole stream.
fn ours(units: &[AccessUnit<'_>], copy: bool, rounds: usize) -> f64 {
    let mut out = Nv12Frame::default();
    let ms = median_ms(1, rounds, || {
        let mut decoder = H264Decoder::new().unwrap();
        for unit in units {
            decoder.decode(*unit, copy.then_some(&mut out)).unwrap();
        }
        assert_eq!(decoder.decoded(), units.len() as u64);
    });
    ms / units.len() as f64
}

/// Milliseconds per frame of ffmpeg, one thread, decoding to nothing.
fn ffmpeg(file: &Path, frames: usize, rounds: usize) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new("ffmpeg")
                .args(["-v", "error", "-threads", "1", "-f", "h264", "-i"])
                .arg(file)
                .args(["-f", "null", "-"])
                .status()
                .unwrap();
            assert!(status.success());
            started.elapsed().as_secs_f64() * 1000.0 / frames as f64
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[rounds / 2]
}

fn main() {
    let timed = std::env::args().any(|a| a == "--bench");
    let (frames, rounds) = if timed { (420, ROUNDS) } else { (20, 1) };
    println!("{}", common::machine());
    println!("command: cargo bench --bench decode ({frames} frames, median of {rounds}; 1 thread each)");
    let dir = tempfile::tempdir().unwrap();
    // Noise 0: the clip as rendered; 6: grain that defeats prediction.
    for (width, height, noise) in [(640, 480, 0), (640, 480, 6), (1280, 720, 0), (1280, 720, 6)] {
        let file = encode(dir.path(), width, height, frames, noise);
        let data = std::fs::read(&file).unwrap();
        let units: Vec<AccessUnit> = AccessUnits::new(&data).collect();
        assert_eq!(units.len(), frames);
        let with_copy = ours(&units, true, rounds);
        let decode_only = ours(&units, false, rounds);
        let theirs = ffmpeg(&file, frames, rounds);
        println!(
            "{width}x{height} H.264, noise {noise} ({} KB a frame): edgeclip {with_copy:.2} ms/frame ({decode_only:.2} without the NV12 copy), \
             ffmpeg {theirs:.2} ms/frame (ratio {:.2})",
            data.len() / frames / 1024,
            with_copy / theirs
        );
    }
}
