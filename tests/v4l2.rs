//! The `v4l2` source through a scripted fake camera (negotiation, frames,
//! timeouts, unplugging, busy devices, damaged buffers, stable names), the
//! real ioctl path on files that are not cameras, and `edgeclip devices`.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::support::process::{edgeclip_command, SpawnWatched};
use edgeclip::capture::v4l2::fake::{FakeCamera, FakeDevice};
use edgeclip::capture::v4l2::{
    list_devices_in, DeviceInfo, FrameSizes, KernelDevice, V4l2Options, V4l2Source, DEFAULT_BUFFERS,
};
use edgeclip::capture::{CaptureErrorKind, FrameSource, PixelFormat};
use edgeclip::util::backoff::Backoff;

const DEVICE: &str = "/dev/fake-video0";

fn options() -> V4l2Options {
    V4l2Options { device: DEVICE.into(), ..V4l2Options::default() }
}

/// Reopening delays of 20, 40, 80 ms: real backoff, no long sleeps.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(20), Duration::from_millis(80))
}

fn source(camera: &FakeCamera, options: V4l2Options) -> V4l2Source<FakeDevice> {
    V4l2Source::with_opener(options, Box::new(camera.opener())).unwrap().with_backoff(backoff())
}

/// A tiny "JPEG": SOI, a marker byte, EOI.
fn jpeg(n: u8) -> Vec<u8> {
    vec![0xFF, 0xD8, n, 0xFF, 0xD9]
}

fn webcam() -> FakeCamera {
    FakeCamera::new().offer(b"YUYV", &[(640, 480), (320, 240)], &[30, 15]).offer(
        b"MJPG",
        &[(640, 480), (1280, 720)],
        &[30, 15],
    )
}

#[test]
fn asks_for_the_most_wanted_format_offered_and_the_size_and_rate() {
    let camera = webcam().frame(&jpeg(1));
    let mut src = source(&camera, V4l2Options { fps: Some(15), ..options() });
    let frame = src.next_frame().unwrap();
    assert_eq!((frame.format, frame.width, frame.height, frame.stride), (PixelFormat::Mjpeg, 640, 480, 0));
    assert_eq!(camera.requested_formats(), [(*b"MJPG", 640, 480)]);
    assert_eq!(camera.requested_rates(), [15]);
    assert_eq!(camera.started(), [DEFAULT_BUFFERS]);
    assert_eq!(src.negotiated().unwrap().fps, Some(15.0));

    // Another preference order (its first not offered; the camera lists YUYV
    // before MJPG), size, and buffer count.
    let camera = webcam().frame(&jpeg(2));
    let wanted = V4l2Options {
        formats: vec![PixelFormat::Nv12, PixelFormat::Mjpeg, PixelFormat::Yuyv],
        width: Some(1280),
        height: Some(720),
        buffers: 3,
        ..options()
    };
    let mut src = source(&camera, wanted);
    let frame = src.next_frame().unwrap();
    assert_eq!((frame.format, frame.width, frame.height), (PixelFormat::Mjpeg, 1280, 720));
    assert_eq!(camera.requested_formats(), [(*b"MJPG", 1280, 720)]);
    assert_eq!(camera.requested_rates(), Vec::<u32>::new());
    assert_eq!(camera.started(), [3]);
    camera.done();
}

#[test]
fn uses_the_format_the_driver_substitutes() {
    // Asked MJPG 1280x720, the driver answers YUYV at its nearest size.
    let camera = webcam().substitute(b"YUYV").frame(&vec![0x10; 640 * 480 * 2]);
    let mut src = source(&camera, V4l2Options { width: Some(1280), height: Some(720), ..options() });
    let frame = src.next_frame().unwrap();
    assert_eq!(camera.requested_formats(), [(*b"MJPG", 1280, 720)]);
    assert_eq!((frame.format, frame.width, frame.height, frame.stride), (PixelFormat::Yuyv, 640, 480, 1280));
    assert_eq!(frame.data.len(), 640 * 480 * 2);
    camera.done();
}

#[test]
fn a_format_we_cannot_convert_is_a_clear_error() {
    let camera = FakeCamera::new().offer(b"Y10B", &[(640, 480)], &[30]);
    let mut src = source(&camera, options());
    let e = src.next_frame().unwrap_err();
    assert_eq!(e.kind, CaptureErrorKind::Other);
    assert!(e.message.contains("'/dev/fake-video0' delivers 'Y10B'"), "{e}");
    assert!(e.message.contains("accepted: MJPG, YUYV, NV12, RGB3, GREY"), "{e}");
    // Nothing offered that we know: the most wanted format was asked for.
    assert_eq!(camera.requested_formats(), [(*b"MJPG", 640, 480)]);
    assert_eq!(camera.started(), Vec::<u32>::new());
}

#[test]
fn frames_flow_with_sequence_numbers_and_timestamps() {
    let camera = webcam()
        .frame_aged(&jpeg(0), Some(Duration::from_millis(300)))
        .frame_aged(&jpeg(1), None)
        .frame_numbered(&jpeg(2), 10)
        .frame(&jpeg(3)) // driver sequence 11
        .frame_numbered(&jpeg(4), 14);
    let mut src = source(&camera, options());
    let mut got = Vec::new();
    for _ in 0..5 {
        let before = SystemTime::now();
        let f = src.next_frame().unwrap();
        let age = before.duration_since(f.timestamp).unwrap_or_default();
        got.push((f.sequence, f.data.to_vec(), age));
    }
    for (i, (sequence, data, _)) in got.iter().enumerate() {
        assert_eq!(*sequence, i as u64);
        assert_eq!(*data, jpeg(i as u8));
    }
    // The driver's stamp 300 ms before the read became a wall-clock time 300 ms ago.
    assert!(got[0].2 >= Duration::from_millis(290) && got[0].2 < Duration::from_millis(400), "{:?}", got[0].2);
    // No stamp: the read time.
    assert!(got[1].2 < Duration::from_millis(50), "{:?}", got[1].2);
    // Driver sequence 0, 1, 10, 11, 14: 8 then 2 frames dropped by the driver.
    assert_eq!(src.dropped(), 10);
    camera.done();
}

#[test]
fn timeouts_are_reported_and_a_stalled_stream_is_reopened() {
    let camera = webcam().timeout().timeout().timeout().frame(&jpeg(7));
    // A long backoff, which the reopen after timeouts must not wait for.
    let long = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
    let mut src = source(&camera, V4l2Options { timeout: Duration::from_millis(100), ..options() }).with_backoff(long);
    for attempt in 1..=3 {
        let e = src.next_frame().unwrap_err();
        assert_eq!(e.kind, CaptureErrorKind::Timeout);
        assert!(e.message.contains("no frame from '/dev/fake-video0' within 100 ms"), "{e}");
        assert_eq!(e.message.contains("reopening"), attempt == 3, "{e}");
    }
    assert_eq!(camera.stops(), 1);
    let started = Instant::now();
    assert_eq!(src.next_frame().unwrap().data, jpeg(7));
    // The device was there: reopened at once, not after a backoff step.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(camera.opened().len(), 2);
    camera.done();
}

#[test]
fn an_unplugged_camera_is_reopened_with_backoff() {
    let camera = webcam()
        .open_ok()
        .open_fails(libc::ENOENT, 2)
        .frame(&jpeg(1))
        .error(libc::ENODEV)
        .frame(&jpeg(2))
        .error(libc::EIO)
        .frame(&jpeg(3));
    let mut src = source(&camera, options());
    assert_eq!(src.next_frame().unwrap().sequence, 0);

    // Each failure is recorded inside a call, so the next attempt is due one
    // delay after that call began at the earliest: a wait is measured from
    // the start of the previous call (a lower bound that holds however long
    // the emulator takes to return) and capped on the call's own duration.
    let mut began = vec![Instant::now()];
    let e = src.next_frame().unwrap_err();
    assert_eq!(e.kind, CaptureErrorKind::Disconnected);
    assert!(e.message.contains("'/dev/fake-video0' disappeared") && e.message.contains("in 20 ms"), "{e}");
    assert_eq!(camera.stops(), 1);

    // Two failed reopens, 20 and 40 ms after the previous failure, each call
    // blocking one step at most; the third succeeds 80 ms later.
    let mut steps = Vec::new();
    for retry in ["retrying in 40 ms", "retrying in 80 ms"] {
        let started = Instant::now();
        began.push(started);
        let e = src.next_frame().unwrap_err();
        steps.push((started.elapsed(), began[began.len() - 2].elapsed()));
        assert_eq!(e.kind, CaptureErrorKind::Disconnected);
        assert!(e.message.contains("cannot open '/dev/fake-video0'") && e.message.contains(retry), "{e}");
    }
    let started = Instant::now();
    let frame = src.next_frame().unwrap();
    steps.push((started.elapsed(), began[began.len() - 1].elapsed()));
    assert_eq!((frame.sequence, frame.data), (1, &jpeg(2)[..]));
    for ((call, since_previous_call), ms) in steps.iter().zip([20, 40, 80]) {
        let ms = Duration::from_millis(ms);
        assert!(
            *since_previous_call >= ms && *call < ms * 3 + Duration::from_millis(50),
            "waited {call:?} ({since_previous_call:?} since the previous call began), expected about {ms:?}"
        );
    }
    assert_eq!(camera.opened().len(), 4);

    // A good frame reset the backoff: after EIO the first delay is 20 ms again.
    let e = src.next_frame().unwrap_err();
    assert!(e.message.contains("in 20 ms"), "{e}");
    assert_eq!(src.next_frame().unwrap().sequence, 2);
    camera.done();
}

#[test]
fn a_busy_camera_is_reported_as_busy_and_retried() {
    let camera = webcam().open_fails(libc::EBUSY, 1).frame(&jpeg(1)).fail_start(libc::EBUSY);
    let mut src = source(&camera, options());
    let e = src.next_frame().unwrap_err();
    assert_eq!(e.kind, CaptureErrorKind::Busy);
    assert!(e.message.contains("another program is using the camera"), "{e}");
    // Busy again when streaming starts (another program got it between our calls).
    let e = src.next_frame().unwrap_err();
    assert_eq!(e.kind, CaptureErrorKind::Busy);
    assert!(e.message.contains("starting the stream on '/dev/fake-video0' failed"), "{e}");
    assert_eq!(src.next_frame().unwrap().data, jpeg(1));
    camera.done();
}

#[test]
fn damaged_buffers_are_corrupt_and_the_next_frame_is_fine() {
    // YUYV 4x2: 8 bytes a row, 16 a frame.
    let good: Vec<u8> = (0..16).collect();
    let camera = FakeCamera::new()
        .offer(b"YUYV", &[(4, 2)], &[30])
        .short_frame(&good, 10)
        .short_frame(&good, 0)
        .flagged_frame(&good)
        .frame(&good);
    let mut src =
        source(&camera, V4l2Options { formats: vec![PixelFormat::Yuyv], width: Some(4), height: Some(2), ..options() });
    for expected in ["short YUYV 4x2 frame: 10 bytes, expected 16", "empty buffer", "flagged it as damaged"] {
        let e = src.next_frame().unwrap_err();
        assert_eq!(e.kind, CaptureErrorKind::Corrupt, "{e}");
        assert!(e.message.contains(expected) && e.message.contains("'/dev/fake-video0'"), "{e}");
    }
    let frame = src.next_frame().unwrap();
    assert_eq!((frame.sequence, frame.stride, frame.data), (0, 8, &good[..]));

    // An MJPEG buffer that does not start a JPEG.
    let camera = webcam().frame(&[0, 0, 0, 0]).frame(&jpeg(5));
    let mut src = source(&camera, options());
    let e = src.next_frame().unwrap_err();
    assert_eq!(e.kind, CaptureErrorKind::Corrupt);
    assert!(e.message.contains("4 bytes that do not start a JPEG"), "{e}");
    assert_eq!(src.next_frame().unwrap().data, jpeg(5));
    camera.done();
}

#[test]
fn a_refused_setting_is_named() {
    let camera = webcam().fail_set_rate(libc::EINVAL);
    let e = source(&camera, V4l2Options { fps: Some(90), ..options() }).next_frame().unwrap_err();
    assert_eq!(e.kind, CaptureErrorKind::Other);
    assert!(e.message.contains("'/dev/fake-video0' refused frame rate '90 fps'"), "{e}");

    let camera = webcam().fail_set_format(libc::EINVAL);
    let e = source(&camera, options()).next_frame().unwrap_err();
    assert_eq!(e.kind, CaptureErrorKind::Other);
    assert!(e.message.contains("refused format 'MJPG 640x480'"), "{e}");
}

#[test]
fn a_node_that_is_not_a_capture_device_is_refused() {
    let info = DeviceInfo {
        driver: "uvcvideo".into(),
        card: "Fake Webcam".into(),
        bus: "usb-1".into(),
        capture: false,
        streaming: true,
    };
    let camera = webcam().info(info);
    let e = source(&camera, options()).next_frame().unwrap_err();
    assert_eq!(e.kind, CaptureErrorKind::Other);
    assert!(e.message.contains("'/dev/fake-video0' is not a video capture device (driver 'uvcvideo'"), "{e}");
}

#[test]
fn a_stable_name_opens_the_node_it_points_at() {
    let dev = tempfile::tempdir().unwrap();
    std::fs::write(dev.path().join("video7"), b"").unwrap();
    std::fs::create_dir_all(dev.path().join("v4l/by-id")).unwrap();
    let link = dev.path().join("v4l/by-id/usb-Fake_Webcam-video-index0");
    std::os::unix::fs::symlink("../../video7", &link).unwrap();
    let camera = webcam().frame(&jpeg(1));
    let mut src = source(&camera, V4l2Options { device: link.display().to_string(), ..options() });
    src.next_frame().unwrap();
    let node = std::fs::canonicalize(dev.path().join("video7")).unwrap();
    assert_eq!(camera.opened(), std::slice::from_ref(&node));
    assert_eq!(src.describe(), format!("{} ({})", link.display(), node.display()));
}

#[test]
fn options_are_checked() {
    for (bad, setting) in [
        (V4l2Options { buffers: 1, ..options() }, "invalid v4l2 buffers '1' for '/dev/fake-video0': expected 2 to 32"),
        (V4l2Options { formats: vec![], ..options() }, "invalid v4l2 formats '[]'"),
        (V4l2Options { fps: Some(0), ..options() }, "invalid v4l2 fps '0'"),
        (V4l2Options { timeout: Duration::ZERO, ..options() }, "invalid v4l2 timeout '0'"),
    ] {
        let e = V4l2Source::with_opener(bad, Box::new(webcam().opener())).err().expect("invalid options accepted");
        assert!(e.to_string().contains(setting), "{e}");
    }
}

#[test]
fn the_kernel_device_reports_a_missing_node_and_a_file_that_is_no_camera() {
    let missing = V4l2Options { device: "/dev/v4l/by-id/usb-no-such-camera".into(), ..V4l2Options::default() };
    let e = V4l2Source::open(missing).err().expect("a missing device opened");
    assert_eq!(e.kind, CaptureErrorKind::Disconnected);
    assert!(e.message.contains("cannot open '/dev/v4l/by-id/usb-no-such-camera'"), "{e}");
    assert!(e.message.contains("`edgeclip devices` lists the cameras"), "{e}");

    // Real ioctls on a device that is not V4L2: VIDIOC_QUERYCAP fails with ENOTTY.
    let e = V4l2Source::open(V4l2Options { device: "/dev/null".into(), ..V4l2Options::default() })
        .err()
        .expect("/dev/null opened as a camera");
    assert_eq!(e.kind, CaptureErrorKind::Other);
    assert!(e.message.contains("querying the device on '/dev/null' failed"), "{e}");
}

#[test]
fn devices_lists_formats_sizes_rates_and_stable_names() {
    let dev = tempfile::tempdir().unwrap();
    for node in ["video0", "video1", "video2", "video10"] {
        std::fs::write(dev.path().join(node), b"").unwrap();
    }
    std::fs::write(dev.path().join("vhci"), b"").unwrap();
    for (sub, name) in
        [("by-id", "usb-Fake_Webcam-video-index0"), ("by-path", "platform-xhci-usb-0:1:1.0-video-index0")]
    {
        std::fs::create_dir_all(dev.path().join("v4l").join(sub)).unwrap();
        std::os::unix::fs::symlink("../../video0", dev.path().join("v4l").join(sub).join(name)).unwrap();
    }
    let webcam = FakeCamera::new()
        .offer(b"MJPG", &[(1280, 720), (640, 480)], &[30, 15])
        .offer_sizes(b"YUYV", vec![FrameSizes::Stepwise { min: (160, 120), max: (1920, 1080), step: (8, 8) }])
        .offer(b"Y10B", &[(640, 480)], &[]);
    let metadata = FakeCamera::new().info(DeviceInfo {
        driver: "uvcvideo".into(),
        card: "Fake Webcam".into(),
        bus: "usb-0000:01:00.0-1".into(),
        capture: false,
        streaming: true,
    });
    let mut out = Vec::new();
    let mut open = |p: &Path| match p.file_name().and_then(|n| n.to_str()) {
        Some("video0") => webcam.open(p),
        Some("video1") => metadata.open(p),
        Some("video10") => webcam.open(p),
        _ => Err(std::io::Error::from_raw_os_error(libc::EACCES)),
    };
    list_devices_in(dev.path(), &mut open, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let d = dev.path().display();
    let expected = format!(
        "{d}/video0
  name    {d}/v4l/by-id/usb-Fake_Webcam-video-index0
  name    {d}/v4l/by-path/platform-xhci-usb-0:1:1.0-video-index0
  driver  uvcvideo
  card    Fake Webcam
  bus     usb-0000:01:00.0-1
  MJPG fake MJPG
    1280x720 @ 30, 15 fps
    640x480 @ 30, 15 fps
  YUYV fake YUYV
    160x120 to 1920x1080, steps of 8x8
  Y10B fake Y10B  (edgeclip cannot convert it)
    640x480
{d}/video2: cannot open: Permission denied (os error 13) (is the user in group 'video'?)
{d}/video10
"
    );
    assert!(text.starts_with(&expected), "got:\n{text}\nexpected to start with:\n{expected}");
    assert!(text.ends_with(&format!("not capture devices (metadata, codecs, outputs): {d}/video1\n")), "{text}");
    assert!(!text.contains("no V4L2 capture devices"), "{text}");

    // Nothing there.
    let empty = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    list_devices_in(empty.path(), &mut |p: &Path| KernelDevice::open(p), &mut out).unwrap();
    let expected = format!("no V4L2 capture devices found (looked for video* in '{}')\n", empty.path().display());
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn devices_command_runs_on_this_machine() {
    let output = edgeclip_command().arg("devices").output_watched().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    let has_nodes = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("video")));
    if has_nodes {
        assert!(stdout.contains("/dev/video"), "{stdout}");
    } else {
        assert_eq!(stdout, "no V4L2 capture devices found (looked for video* in '/dev')\n");
    }
}
