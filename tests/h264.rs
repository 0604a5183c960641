//! H.264 decoding against ffmpeg: the demo clip encoded by libx264 as a
//! camera would send it (High profile, CABAC, no B-frames, a keyframe every
//! 2 s), decoded by our OpenH264 decoder one access unit at a time, and by
//! ffmpeg (libavcodec, single-threaded) as the independent reference.
//!
//! H.264 decoding is exactly specified (ITU-T H.264 clause 8: integer
//! transforms and filters), so two conforming decoders agree bit for bit:
//! the tolerance is 0, on every byte of every NV12 frame. This is also what
//! runs under qemu for aarch64 and armv7, where OpenH264 takes its NEON
//! assembly.

use edgeclip::capture::h264::{AccessUnits, H264Decoder, Nv12Frame};

use crate::support::rtsp::{ffmpeg_nv12, h264_clip};
use crate::support::timing::emulated;

/// Frames compared: the whole clip natively; under an emulator two groups
/// of pictures (the keyframes and the P-frames' NEON paths), which is what
/// differs by architecture.
fn frames_to_compare() -> usize {
    if emulated() {
        40
    } else {
        420
    }
}

fn decode_all(annex_b: &[u8], limit: usize) -> Vec<Nv12Frame> {
    let mut decoder = H264Decoder::new().unwrap();
    let mut frames = Vec::new();
    for unit in AccessUnits::new(annex_b) {
        let mut out = Nv12Frame::default();
        if decoder.decode(unit, Some(&mut out)).unwrap() {
            frames.push(out);
        }
        if frames.len() == limit {
            break;
        }
    }
    frames
}

#[test]
fn every_decoded_frame_equals_ffmpegs_at_640x480() {
    let (_, annex_b) = h264_clip(640, 480);
    let n = frames_to_compare();
    let reference = ffmpeg_nv12(&annex_b, n);
    let ours = decode_all(&std::fs::read(&annex_b).unwrap(), n);
    assert_eq!(ours.len(), n, "frames decoded");
    for (i, (ours, theirs)) in ours.iter().zip(&reference).enumerate() {
        assert_eq!((ours.width, ours.height, ours.stride), (640, 480, 640));
        let differing = ours.data.iter().zip(theirs).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "frame {i}: {differing} of {} bytes differ from ffmpeg's", theirs.len());
    }
}

#[test]
fn an_odd_size_keeps_its_last_column_and_row() {
    // 318x238 is not a whole number of macroblocks: the SPS crops it, and
    // NV12's chroma rows get a padding byte.
    if emulated() {
        return;
    }
    let (_, annex_b) = h264_clip(318, 238);
    let reference = ffmpeg_nv12(&annex_b, 30);
    let ours = decode_all(&std::fs::read(&annex_b).unwrap(), 30);
    assert_eq!(ours.len(), 30);
    for (i, (ours, theirs)) in ours.iter().zip(&reference).enumerate() {
        assert_eq!((ours.width, ours.height, ours.stride), (318, 238, 318), "frame {i}");
        assert!(ours.data == *theirs, "frame {i} differs from ffmpeg's");
    }
}

#[test]
fn decoding_starts_at_a_keyframe_and_resumes_at_the_next_after_a_gap() {
    let (_, annex_b) = h264_clip(640, 480);
    let data = std::fs::read(&annex_b).unwrap();
    let units: Vec<_> = AccessUnits::new(&data).take(45).collect();
    let keyframes: Vec<usize> = (0..units.len()).filter(|&i| units[i].is_keyframe()).collect();
    // -g 20: keyframes at 0, 20, 40 (libx264 may place one earlier at a cut).
    assert_eq!(keyframes[0], 0);
    assert!(keyframes.len() >= 3, "{keyframes:?}");
    let reference = ffmpeg_nv12(&annex_b, 45);

    let mut decoder = H264Decoder::new().unwrap();
    // Joining mid-stream: nothing until the next keyframe.
    let mut out = Nv12Frame::default();
    for unit in &units[5..keyframes[1]] {
        assert!(!decoder.decode(*unit, Some(&mut out)).unwrap());
    }
    assert!(decoder.decode(units[keyframes[1]], Some(&mut out)).unwrap());
    assert!(out.data == reference[keyframes[1]], "the keyframe's picture");
    // A gap: the frames after it are skipped, not decoded from lost
    // references, until the next keyframe, which is exact again.
    decoder.resync();
    for unit in &units[keyframes[1] + 3..keyframes[2]] {
        assert!(!decoder.decode(*unit, Some(&mut out)).unwrap());
    }
    for (i, unit) in units.iter().enumerate().skip(keyframes[2]) {
        assert!(decoder.decode(*unit, Some(&mut out)).unwrap());
        assert!(out.data == reference[i], "frame {i}");
    }
}
