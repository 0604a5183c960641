//! RTSP cameras against a real RTSP server: GStreamer's gst-rtsp-server
//! serving the demo clip as H.264 at its own pace, with digest
//! authentication, or as RTP JPEG (support/rtsp.rs).
//!
//! Frames that arrive over RTSP are compared with ffmpeg's decode of the same
//! stream: exactly on NV12 (H.264 decoding is exactly specified), and within
//! a stated tolerance on the RGB images `capture` writes (our conversion
//! against ffmpeg's swscale). The daemon replaying the clip over RTSP must
//! give the clip's events; a server killed mid-stream and restarted must be
//! reconnected; a wrong password must be a clear, retried error that never
//! shows the password, in logs, stats or MQTT.

use std::time::{Duration, Instant};

use edgeclip::capture::{CaptureErrorKind, PixelFormat, SourceSpec};
use serde_json::Value;

use crate::support::daemon::{broker_at, config, events, Daemon, EVENTS_TOPIC, STATS_TOPIC};
use crate::support::demo::{clip, clip_frames, truth_visits, END_FRAMES, SLACK, START_FRAMES};
use crate::support::mosquitto::{Mosquitto, MosquittoOptions};
use crate::support::process::{edgeclip_command, SpawnWatched};
use crate::support::rtsp::{ffmpeg_nv12, h264_clip, RtspServer};
use crate::support::subscriber::Subscriber;

const LOGIN: (&str, &str) = ("viewer", "s3cret-Pa55");

#[test]
fn frames_over_rtsp_equal_ffmpegs_decode_of_the_stream() {
    let (mkv, _) = h264_clip(640, 480);
    let server = RtspServer::start(&mkv, "demo", Some(LOGIN));
    let reference = ffmpeg_nv12(&mkv, 60);
    let spec: SourceSpec = server.url(Some(LOGIN)).parse().unwrap();
    let mut source = spec.open().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 40 {
        assert!(Instant::now() < deadline, "40 frames within 30 s; got {seen:?}");
        let frame = match source.next_frame() {
            Ok(frame) => frame,
            Err(e) if e.kind == CaptureErrorKind::Timeout => continue,
            Err(e) => panic!("{e}"),
        };
        assert_eq!((frame.format, frame.width, frame.height, frame.stride), (PixelFormat::Nv12, 640, 480, 640));
        // Each client gets the stream from its first frame: the sequence is
        // the frame's index in the clip.
        let i = frame.sequence as usize;
        assert!(frame.data == reference[i], "frame {i} differs from ffmpeg's decode");
        seen.push(i);
    }
    // Nothing lost over TCP: in order, and (with a consumer this quick) at
    // most a few frames skipped when the machine was busy.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(seen[39] < 50, "{seen:?}");
}

#[test]
fn capture_writes_the_rtsp_frames_as_ffmpeg_sees_them() {
    let (mkv, _) = h264_clip(640, 480);
    let server = RtspServer::start(&mkv, "demo", None);
    let out = tempfile::tempdir().unwrap();
    let output = edgeclip_command()
        .args(["capture", "--raw", "--source", &server.url(None), "--frames", "8", "--out"])
        .arg(out.path())
        .output_watched()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("NV12 640x480"), "{stdout}");

    // ffmpeg's RGB of the first 40 frames (swscale, BT.601 limited range as
    // our converter, exact rounding and full chroma interpolation).
    let rgb = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-threads", "1", "-i"])
        .arg(&mkv)
        .args(["-frames:v", "40", "-sws_flags", "bilinear+accurate_rnd+full_chroma_int"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output_watched()
        .unwrap();
    assert!(rgb.status.success());
    let theirs: Vec<&[u8]> = rgb.stdout.chunks(640 * 480 * 3).collect();
    // "frame N: NV12 640x480, ... -> PATH": N is the frame's index in the clip.
    let written: Vec<(usize, &str)> = stdout
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.strip_prefix("frame ")?.split_once(':')?;
            Some((n.parse().ok()?, rest.rsplit_once(" -> ")?.1))
        })
        .collect();
    assert_eq!(written.len(), 8, "{stdout}");
    // --raw: each frame's NV12 as the decoder gave it, next to its PNG, equal
    // to ffmpeg's decode of the same frame.
    let decoded = ffmpeg_nv12(&mkv, 40);
    for &(index, path) in &written {
        let raw_path = path.replace(".png", "-NV12-640x480-640.raw");
        let raw = std::fs::read(&raw_path).unwrap_or_else(|e| panic!("{raw_path}: {e}\n{stdout}"));
        assert!(raw == decoded[index], "{raw_path} is not ffmpeg's decode of frame {index}");
    }
    for (index, path) in written {
        let ours = image::open(path).unwrap().to_rgb8();
        assert_eq!(ours.dimensions(), (640, 480));
        let (mean, max) = diff(ours.as_raw(), theirs[index]);
        // Tolerance: the two converters' rounding (measured: 0.006 on
        // average, 2 at most), at most 0.05 on average and 3 anywhere.
        assert!(
            mean <= 0.05 && max <= 3,
            "{path}: frame {index} differs from ffmpeg's by {mean:.3} on average, {max} at most"
        );
    }
}

/// Mean and largest absolute difference of two images' bytes.
fn diff(a: &[u8], b: &[u8]) -> (f64, u8) {
    let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    (sum as f64 / a.len() as f64, a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0))
}

#[test]
fn a_camera_that_reboots_is_reconnected() {
    let (mkv, _) = h264_clip(640, 480);
    let mut server = RtspServer::start(&mkv, "demo", Some(LOGIN));
    let spec: SourceSpec = format!("{}?fps=5", server.url(Some(LOGIN))).parse().unwrap();
    let mut source = spec.open().unwrap();
    let mut frames = 0;
    let mut errors = Vec::new();
    let take = |source: &mut Box<dyn edgeclip::capture::FrameSource>, errors: &mut Vec<String>, until: Instant| loop {
        assert!(Instant::now() < until, "no frame in time; errors: {errors:#?}");
        match source.next_frame() {
            Ok(frame) => return (frame.sequence, frame.timestamp),
            Err(e) => errors.push(format!("{:?}: {e}", e.kind)),
        }
    };
    let started = Instant::now();
    let (_, first_time) = take(&mut source, &mut errors, started + Duration::from_secs(20));
    while frames < 6 {
        take(&mut source, &mut errors, started + Duration::from_secs(30));
        frames += 1;
    }
    // fps=5 of a 10 fps camera: about every other frame.
    let (sequence, time) = take(&mut source, &mut errors, started + Duration::from_secs(30));
    let span = time.duration_since(first_time).unwrap().as_secs_f64();
    assert!((1.0..2.5).contains(&span), "7 frames at 5 fps span {span:.2} s of RTP time");
    assert!(sequence >= 11, "fps=5 handed out frame {sequence} as the 8th");

    server.kill();
    // The source reports the loss, then the failed reconnects, and waits.
    let down = Instant::now();
    while !errors.iter().any(|e| e.contains("reconnecting in")) || down.elapsed() < Duration::from_secs(2) {
        match source.next_frame() {
            Ok(_) => {}
            Err(e) => {
                assert_ne!(e.kind, CaptureErrorKind::Ended, "{e}");
                errors.push(format!("{:?}: {e}", e.kind));
            }
        }
        assert!(down.elapsed() < Duration::from_secs(30), "no reconnect attempt reported: {errors:#?}");
    }
    server.restart();
    let back = Instant::now();
    let (sequence_after, _) = take(&mut source, &mut errors, back + Duration::from_secs(30));
    assert!(sequence_after > sequence);
    eprintln!("reconnected {:.1} s after the server came back", back.elapsed().as_secs_f64());
    // Frames go on.
    for _ in 0..5 {
        take(&mut source, &mut errors, back + Duration::from_secs(40));
    }
    for e in &errors {
        assert!(!e.contains(LOGIN.1), "the password in an error: {e}");
    }
    assert!(errors.iter().any(|e| e.starts_with("Disconnected") && e.contains("reconnecting in")), "{errors:#?}");
}

#[test]
fn a_wrong_password_is_a_clear_retried_error_that_never_shows_the_password() {
    let (mkv, _) = h264_clip(640, 480);
    let server = RtspServer::start(&mkv, "demo", Some(LOGIN));
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "rtsp-sub", &["edgeclip/#", "homeassistant/#"]);
    let wrong = "hunter2-wrong";
    let mut daemon = Daemon::start(&config(&broker_at(broker.port()), &server.url(Some(("viewer", wrong))), ""));
    // Attempts at 0, 0.5, 1.5, 3.5, 7.5 and 15.5 s: the backoff doubles.
    // The log shows the first, then one line per 10 s with a count of the
    // rest; the sixth attempt's line says how long the next wait is.
    daemon.wait_stderr(Duration::from_secs(40), "reconnecting in 16.0 s");
    let stats = sub.wait_for(Duration::from_secs(20), "stats counting source errors", |m| {
        m.iter().any(|m| {
            m.topic == STATS_TOPIC
                && serde_json::from_slice::<Value>(&m.payload)
                    .is_ok_and(|s| s["cameras"]["demo"]["frames"]["source_errors"].as_u64() >= Some(6))
        })
    });
    daemon.stop();
    let stderr = daemon.stderr_text();
    assert!(
        stderr.contains("the camera refused user 'viewer' with this password (401 Unauthorized); check the user and password in the source URL"),
        "{stderr}"
    );
    assert!(stderr.contains("reconnecting in 0.5 s\n"), "{stderr}");
    assert!(stderr.contains("reconnecting in 16.0 s (4 more like it since the last report)"), "{stderr}");
    assert!(stderr.contains("rtsp://viewer:***@127.0.0.1:"), "{stderr}");
    // Nowhere: not in a log line, not on stdout, not in any MQTT message.
    assert!(!stderr.contains(wrong), "{stderr}");
    assert!(!daemon.stdout_lines().concat().contains(wrong));
    for m in sub.all().iter().chain(&stats) {
        assert!(!String::from_utf8_lossy(&m.payload).contains(wrong), "{}: {:?}", m.topic, m.payload);
    }
    let last_stats: Value =
        serde_json::from_slice(&stats.iter().rev().find(|m| m.topic == STATS_TOPIC).unwrap().payload).unwrap();
    assert_eq!(last_stats["cameras"]["demo"]["frames"]["captured"], 0, "{last_stats}");
}

#[test]
fn the_daemon_gives_the_demo_clips_events_over_rtsp() {
    let (mkv, _) = h264_clip(640, 480);
    let server = RtspServer::start(&mkv, "demo", Some(LOGIN));
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "rtsp-events", &["edgeclip/#"]);
    let visits = truth_visits();
    let mut daemon = Daemon::start(&config(&broker_at(broker.port()), &server.url(Some(LOGIN)), ""));
    // The clip plays at 10 fps: 42 s, then the stream ends and the source
    // reconnects; the last visit's end comes before that.
    let all = sub.wait_for(Duration::from_secs(120), "every visit's start and end", |m| {
        events(m, EVENTS_TOPIC).len() >= 2 * visits.len()
    });
    daemon.stop();
    let events = events(&all, EVENTS_TOPIC);
    // At the camera's pace a busy machine may skip a frame now and then, so
    // each visit is checked for one start and one end inside it, with the
    // detector's frames of slack, rather than to the frame.
    for (label, (any_first, any_last), (first, last)) in &visits {
        let mine: Vec<&Value> = events.iter().filter(|e| e["label"] == label.as_str()).collect();
        let kinds: Vec<&str> = mine.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["start", "end"], "{label}: {mine:?}");
        let (start, end) = (mine[0]["frame"].as_u64().unwrap(), mine[1]["frame"].as_u64().unwrap());
        assert!((*any_first..=*last).contains(&start), "{label}: started at {start}, in view {first}..{last}");
        assert!(
            (last + 1..=any_last + END_FRAMES + SLACK + START_FRAMES).contains(&end),
            "{label}: ended at {end}, in view until {any_last}"
        );
    }
    assert_eq!(events.len(), 2 * visits.len(), "{events:#?}");
    let stderr = daemon.stderr_text();
    assert!(stderr.contains("playing rtsp://viewer:***@127.0.0.1:"), "{stderr}");
    assert!(!stderr.contains(LOGIN.1), "{stderr}");
}

#[test]
fn garbage_instead_of_rtsp_is_a_retried_error() {
    use std::io::{Read, Write};
    // A "camera" that answers every connection with binary noise and hangs up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            let _ = stream.write_all(b"RTSP/1.0 200 OK\r\nCSeq: \x1b[31m1\r\n\r\n");
            let _ = stream.write_all(&noise);
        }
    });
    let spec: SourceSpec = format!("rtsp://127.0.0.1:{port}/cam").parse().unwrap();
    let mut source = spec.open().unwrap();
    let started = Instant::now();
    let mut errors = Vec::new();
    while errors.len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(20), "{errors:#?}");
        match source.next_frame() {
            Ok(frame) => panic!("a frame from noise: {} bytes", frame.data.len()),
            Err(e) => {
                assert_eq!(e.kind, CaptureErrorKind::Disconnected, "{e}");
                errors.push(e.message);
            }
        }
    }
    for e in &errors {
        assert!(e.contains("reconnecting in"), "{e}");
        assert!(!e.chars().any(|c| c.is_control()), "control characters reach the log: {e:?}");
    }
}

#[test]
fn a_motion_jpeg_camera_is_passed_on_as_its_jpeg() {
    let server = RtspServer::start(&clip(), "mjpeg", None);
    let originals: Vec<image::RgbImage> =
        clip_frames().iter().map(|jpeg| image::load_from_memory(jpeg).unwrap().to_rgb8()).collect();
    let spec: SourceSpec = server.url(None).parse().unwrap();
    let mut source = spec.open().unwrap();
    let started = Instant::now();
    let mut seen = 0;
    while seen < 5 {
        assert!(started.elapsed() < Duration::from_secs(30), "5 frames within 30 s");
        let frame = match source.next_frame() {
            Ok(frame) => frame,
            Err(e) if e.kind == CaptureErrorKind::Timeout => continue,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(frame.format, PixelFormat::Mjpeg);
        let sequence = frame.sequence as usize;
        let ours = image::load_from_memory_with_format(frame.data, image::ImageFormat::Jpeg).unwrap().to_rgb8();
        assert_eq!(ours.dimensions(), (640, 480));
        // GStreamer re-encoded it (jpegenc, quality 85): close to the clip's
        // frame of the same index, not equal.
        let (mean, _) = diff(ours.as_raw(), originals[sequence].as_raw());
        assert!(mean < 3.0, "frame {sequence}: mean difference {mean:.2} from the clip's");
        seen += 1;
    }
}
