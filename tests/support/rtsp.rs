//! A real RTSP server and H.264 clips for the tests.
//!
//! [`h264_clip`] encodes the demo clip (or a scaled copy) to H.264 with
//! ffmpeg's libx264, as an IP camera would send it: High profile, CABAC, no
//! B-frames, a keyframe every 2 s. It writes a Matroska file (timestamps,
//! for the server's pace) and the same stream as Annex B (for our decoder),
//! once per test run. [`ffmpeg_nv12`] is the independent decode every
//! comparison is against.
//!
//! [`RtspServer`] runs `rtsp_server.py` (GStreamer's gst-rtsp-server, through
//! Debian's python3-gi) on a free port of 127.0.0.1, optionally with digest
//! authentication; [`RtspServer::kill`] and [`RtspServer::restart`] (same
//! port) make the camera that reboots. tools/test.sh installs ffmpeg and the
//! GStreamer packages.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::mosquitto::free_port;
use super::paths::{demo_model_dir, repo};
use super::process::{installed, SpawnWatched};

/// The system Python, whose dist-packages hold python3-gi (a python3 earlier
/// in PATH, such as pyenv's, would not have it).
const PYTHON: &str = "/usr/bin/python3";
/// How long the server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A clip's two files: (Matroska, Annex B).
type ClipFiles = (PathBuf, PathBuf);
/// The clips made so far, by size.
type Clips = Vec<((u32, u32), ClipFiles)>;

/// The demo clip as H.264, `width` x `height`: (Matroska file, Annex B file).
pub fn h264_clip(width: u32, height: u32) -> ClipFiles {
    static CLIPS: OnceLock<Mutex<Clips>> = OnceLock::new();
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let clips = CLIPS.get_or_init(|| Mutex::new(Vec::new()));
    let mut clips = clips.lock().unwrap();
    if let Some((_, files)) = clips.iter().find(|(size, _)| *size == (width, height)) {
        return files.clone();
    }
    assert!(installed("ffmpeg"), "ffmpeg is not installed: apt-get install ffmpeg (tools/test.sh does)");
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap()).path();
    let mkv = dir.join(format!("demo-{width}x{height}.mkv"));
    let annex_b = dir.join(format!("demo-{width}x{height}.h264"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "mjpeg", "-framerate", "10", "-i"])
        .arg(demo_model_dir().join("demo.mjpeg"))
        .args(["-vf", &format!("scale={width}:{height}:flags=bicubic")])
        .args(["-c:v", "libx264", "-profile:v", "high", "-pix_fmt", "yuv420p", "-bf", "0", "-g", "20"])
        .args(["-threads", "2"])
        .arg(&mkv)
        .output_watched()
        .unwrap();
    assert!(status.status.success(), "ffmpeg could not encode the clip: {}", String::from_utf8_lossy(&status.stderr));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&mkv)
        .args(["-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264"])
        .arg(&annex_b)
        .output_watched()
        .unwrap();
    assert!(status.status.success(), "ffmpeg could not write Annex B: {}", String::from_utf8_lossy(&status.stderr));
    clips.push(((width, height), (mkv.clone(), annex_b.clone())));
    (mkv, annex_b)
}

/// ffmpeg's decode of `file` (its first `frames` frames), each frame NV12.
pub fn ffmpeg_nv12(file: &Path, frames: usize) -> Vec<Vec<u8>> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-threads", "1", "-i"])
        .arg(file)
        .args(["-frames:v", &frames.to_string(), "-f", "rawvideo", "-pix_fmt", "nv12", "-"])
        .output_watched()
        .unwrap();
    assert!(output.status.success(), "ffmpeg could not decode: {}", String::from_utf8_lossy(&output.stderr));
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(file)
        .output_watched()
        .unwrap();
    let size = String::from_utf8(probe.stdout).unwrap();
    let (w, h) = size.trim().split_once(',').unwrap();
    let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
    let frame_len = w * h + w * h.div_ceil(2);
    assert_eq!(output.stdout.len() % frame_len, 0);
    output.stdout.chunks(frame_len).map(<[u8]>::to_vec).collect()
}

/// gst-rtsp-server serving one clip. Killed when dropped.
pub struct RtspServer {
    clip: PathBuf,
    path: String,
    login: Option<(String, String)>,
    port: u16,
    child: Option<Child>,
}

impl RtspServer {
    /// Serves `clip` (Matroska, H.264) at `rtsp://127.0.0.1:PORT/path`.
    pub fn start(clip: &Path, path: &str, login: Option<(&str, &str)>) -> RtspServer {
        let mut server = RtspServer {
            clip: clip.to_path_buf(),
            path: path.to_string(),
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
            port: 0,
            child: None,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!("the RTSP server found no free port");
    }

    /// Starts the script on `self.port`; false if the port was taken.
    fn launch(&mut self) -> bool {
        assert!(
            Path::new(PYTHON).exists(),
            "{PYTHON} is missing: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 (tools/test.sh does)"
        );
        let mut command = Command::new(PYTHON);
        command
            .arg(repo().join("tests/support/rtsp_server.py"))
            .arg(self.port.to_string())
            .arg(&self.path)
            .arg(&self.clip)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((user, password)) = &self.login {
            command.arg(user).arg(password);
        }
        let mut child = command.spawn_watched().expect("start rtsp_server.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let started = Instant::now();
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) if line.starts_with("listening") => {
                self.child = Some(child);
                true
            }
            _ => {
                let _ = child.kill();
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                let _ = child.wait();
                assert!(
                    err.contains("cannot listen") || err.contains("in use"),
                    "rtsp_server.py did not start within {:?}: {err}",
                    started.elapsed()
                );
                false
            }
        }
    }

    /// The URL a client plays, with `user:password@` if given.
    pub fn url(&self, login: Option<(&str, &str)>) -> String {
        match login {
            Some((u, p)) => format!("rtsp://{u}:{p}@127.0.0.1:{}/{}", self.port, self.path),
            None => format!("rtsp://127.0.0.1:{}/{}", self.port, self.path),
        }
    }

    /// SIGKILL: the camera loses power.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port: the camera is back.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.launch() {
            assert!(Instant::now() < deadline, "port {} stayed taken", self.port);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}
