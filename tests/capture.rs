//! The frame sources with real parts: the exec source runs real child
//! processes (shell scripts streaming JPEG frames at a rate, dying, hanging,
//! writing garbage), the file source real files and folders, and
//! `edgeclip capture` is run as the real binary.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::process::{edgeclip_command, SpawnWatched};
use edgeclip::capture::exec::{ExecOptions, ExecSource};
use edgeclip::capture::file::{FileOptions, FileSource};
use edgeclip::capture::{CaptureError, CaptureErrorKind, FrameSource, PixelFormat};

/// `n` small JPEGs that differ from each other (frame i is filled with gray i*8).
fn distinct_jpegs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let img = image::RgbImage::from_pixel(32, 24, image::Rgb([(i * 8) as u8, 128, 255 - (i * 8) as u8]));
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
            jpeg
        })
        .collect()
}

/// Writes the frames as dir/f000.jpg, ... for a script to stream.
fn write_frames(dir: &Path, frames: &[Vec<u8>]) {
    for (i, f) in frames.iter().enumerate() {
        std::fs::write(dir.join(format!("f{i:03}.jpg")), f).unwrap();
    }
}

/// Which of `frames` this is.
fn index_of(frames: &[Vec<u8>], data: &[u8]) -> usize {
    frames.iter().position(|f| f == data).expect("a frame that is not one of the streamed ones")
}

fn exec_options(command: String, timeout: Duration) -> ExecOptions {
    ExecOptions {
        timeout,
        restart_first: Duration::from_millis(50),
        restart_max: Duration::from_millis(200),
        ..ExecOptions::new(command)
    }
}

/// Next frame's index, or the error, from an exec source.
fn next(source: &mut ExecSource, frames: &[Vec<u8>]) -> Result<usize, CaptureError> {
    source.next_frame().map(|f| {
        assert_eq!(f.format, PixelFormat::Mjpeg);
        index_of(frames, f.data)
    })
}

#[test]
fn exec_streams_a_commands_frames_and_restarts_it_when_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let frames = distinct_jpegs(20);
    write_frames(dir.path(), &frames);
    // Streams the frames at about 50 per second; its first run dies after 8.
    let script = r#"n=$(cat runs 2>/dev/null || echo 0); echo $((n + 1)) > runs
echo "camera start, run $n" >&2
i=0
for f in f*.jpg; do
  cat "$f"; sleep 0.02; i=$((i + 1))
  if [ "$n" = 0 ] && [ "$i" = 8 ]; then echo "camera crashed" >&2; exit 3; fi
done"#;
    let command = format!("cd '{}' && {{ {script}\n}}", dir.path().display());
    let mut source = ExecSource::new(exec_options(command, Duration::from_secs(5)));
    let mut first_run = Vec::new();
    let exit_error = loop {
        match next(&mut source, &frames) {
            Ok(i) => first_run.push(i),
            Err(e) => break e,
        }
    };
    assert_eq!(exit_error.kind, CaptureErrorKind::Disconnected, "{exit_error}");
    assert!(exit_error.message.contains("exited (exit status 3); restarting in 0.1 s"), "{exit_error}");
    // Latest frame wins: a loaded machine may drop some, never reorder.
    assert!(first_run.len() >= 4 && first_run.len() <= 8, "{first_run:?}");
    assert!(first_run.windows(2).all(|w| w[0] < w[1]) && *first_run.last().unwrap() <= 7, "{first_run:?}");
    // Restarted after the backoff: the second run streams all 20 from the start.
    let mut second_run = Vec::new();
    while second_run.len() < 12 {
        match next(&mut source, &frames) {
            Ok(i) => second_run.push(i),
            Err(e) => assert_eq!(e.kind, CaptureErrorKind::Disconnected, "{e}"),
        }
    }
    assert_eq!(source.starts(), 2);
    assert!(second_run.windows(2).all(|w| w[0] < w[1]), "{second_run:?}");
    assert!(second_run[0] < 8, "the second run starts over: {second_run:?}");
}

#[test]
fn exec_restarts_a_silent_command_after_three_timeouts_and_kills_its_group() {
    let dir = tempfile::tempdir().unwrap();
    // The shell starts a child that would outlive a plain kill of the shell.
    let command = format!("sleep 30 & echo $! > '{}/child'; wait", dir.path().display());
    let mut source = ExecSource::new(exec_options(command, Duration::from_millis(150)));
    let started = Instant::now();
    let kinds: Vec<CaptureErrorKind> = (0..3).map(|_| source.next_frame().unwrap_err().kind).collect();
    assert_eq!(kinds, [CaptureErrorKind::Timeout, CaptureErrorKind::Timeout, CaptureErrorKind::Disconnected]);
    // Three timeouts and a SIGTERM the whole group obeys at once (the
    // shell's `wait` would otherwise hold the restart for the 30 s sleep).
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let child: u32 = std::fs::read_to_string(dir.path().join("child")).unwrap().trim().parse().unwrap();
    // The grandchild got SIGTERM with its group; give the kernel a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{child}")).exists() && !is_zombie(child) {
        assert!(Instant::now() < deadline, "the command's child {child} survived the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next call starts it again.
    assert_eq!(source.next_frame().unwrap_err().kind, CaptureErrorKind::Timeout);
    assert_eq!(source.starts(), 2);
    let pid = source.pid().unwrap();
    drop(source);
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid), "dropping the source stops the command");
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

#[test]
fn exec_skips_garbage_and_broken_frames_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let frames = distinct_jpegs(3);
    write_frames(dir.path(), &frames);
    // Garbage, then a frame cut short by another frame's start, then good frames.
    let command = format!(
        "cd '{}' && printf 'noise\\377\\330\\377\\340\\000\\020JFIF' && cat f000.jpg && sleep 0.2 && cat f001.jpg && sleep 0.2 && cat f002.jpg && sleep 5",
        dir.path().display()
    );
    let mut source = ExecSource::new(exec_options(command, Duration::from_secs(5)));
    let mut seen = Vec::new();
    let mut corrupt = 0;
    while seen.len() < 3 {
        match next(&mut source, &frames) {
            Ok(i) => seen.push(i),
            Err(e) if e.kind == CaptureErrorKind::Corrupt => corrupt += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(corrupt, 1);
}

fn mjpeg_file(dir: &Path, frames: &[Vec<u8>]) -> std::path::PathBuf {
    let path = dir.join("clip.mjpeg");
    std::fs::write(&path, frames.concat()).unwrap();
    path
}

#[test]
fn file_replays_a_stream_at_its_rate_and_loops() {
    let dir = tempfile::tempdir().unwrap();
    let frames = distinct_jpegs(4);
    let path = mjpeg_file(dir.path(), &frames);
    let mut source = FileSource::open(FileOptions { path, fps: Some(50.0), looping: true }).unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    for n in 0..10u64 {
        let f = source.next_frame().unwrap();
        assert_eq!(f.sequence, n);
        seen.push(index_of(&frames, f.data));
    }
    let elapsed = started.elapsed();
    assert_eq!(seen, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
    // Nine periods of 20 ms between ten frames.
    assert!(elapsed >= Duration::from_millis(175), "{elapsed:?}");
}

#[test]
fn file_ends_without_loop_and_skips_a_broken_frame() {
    let dir = tempfile::tempdir().unwrap();
    let frames = distinct_jpegs(3);
    let mut data = frames[0].clone();
    data.extend_from_slice(&frames[1][..frames[1].len() / 2]); // cut short by the next frame's start
    data.extend_from_slice(&frames[2]);
    let path = dir.path().join("broken.mjpeg");
    std::fs::write(&path, data).unwrap();
    let mut source = FileSource::open(FileOptions { path, fps: None, looping: false }).unwrap();
    let mut results = Vec::new();
    loop {
        match source.next_frame() {
            Ok(f) => results.push(Ok(index_of(&frames, f.data))),
            Err(e) if e.kind == CaptureErrorKind::Ended => break,
            Err(e) => results.push(Err(e.kind)),
        }
    }
    assert_eq!(results, [Ok(0), Err(CaptureErrorKind::Corrupt), Ok(2)]);
}

#[test]
fn file_replays_a_folder_of_images_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let frames = distinct_jpegs(2);
    std::fs::write(dir.path().join("b.jpg"), &frames[1]).unwrap();
    std::fs::write(dir.path().join("a.JPEG"), &frames[0]).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    image::RgbImage::from_pixel(5, 3, image::Rgb([1, 2, 3])).save(dir.path().join("c.png")).unwrap();
    let mut source = FileSource::open(FileOptions { path: dir.path().into(), fps: None, looping: false }).unwrap();
    assert_eq!(index_of(&frames, source.next_frame().unwrap().data), 0);
    assert_eq!(index_of(&frames, source.next_frame().unwrap().data), 1);
    let png = source.next_frame().unwrap();
    assert_eq!((png.format, png.width, png.height, png.stride), (PixelFormat::Rgb24, 5, 3, 15));
    assert_eq!(&png.data[..3], &[1, 2, 3]);
    assert_eq!(source.next_frame().unwrap_err().kind, CaptureErrorKind::Ended);

    let empty = tempfile::tempdir().unwrap();
    let e = FileSource::open(FileOptions { path: empty.path().into(), fps: None, looping: true }).err().unwrap();
    assert!(e.message.ends_with("holds no .jpg, .jpeg or .png images"), "{e}");
}

#[test]
fn the_capture_command_writes_a_commands_frames_and_logs_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let frames = distinct_jpegs(3);
    write_frames(dir.path(), &frames);
    let out_dir = dir.path().join("out");
    // A pause between frames: the exec source keeps only the latest frame.
    let source = format!(
        "exec:cd '{}' && echo 'sensor ready' >&2 && for f in f*.jpg; do cat $f; sleep 0.2; done && sleep 5",
        dir.path().display()
    );
    let out = edgeclip_command()
        .args(["capture", "--source", &source, "--frames", "3", "--out"])
        .arg(&out_dir)
        .env("EDGECLIP_LOG", "info")
        .output_watched()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("cd: sensor ready"), "the command's stderr is logged under its name:\n{stderr}");
    for (i, frame) in frames.iter().enumerate() {
        let written = std::fs::read(out_dir.join(format!("frame-{i:06}.jpg"))).unwrap();
        assert_eq!(&written, frame);
    }
    assert!(stdout.contains("frame 0: MJPG 32x24"), "{stdout}");
    assert!(stdout.contains("wrote 3 frames to"), "{stdout}");
}

#[test]
fn the_capture_command_converts_to_png_and_explains_a_bad_source() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-shapes/demo.mjpeg");
    let out = edgeclip_command()
        .args(["capture", "--rgb", "--frames", "2", "--source"])
        .arg(format!("file:{}", clip.display()))
        .arg("--out")
        .arg(&out_dir)
        .output_watched()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = image::open(out_dir.join("frame-000001.png")).unwrap();
    assert_eq!((png.width(), png.height()), (640, 480));

    let out =
        edgeclip_command().args(["capture", "--source", "webcam", "--out"]).arg(&out_dir).output_watched().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("source 'webcam': not a source kind, and no such file or folder; accepted: 'v4l2:"),
        "{stderr}"
    );
}
