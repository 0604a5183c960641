//! The `exec` source: frames from a command that writes MJPEG to its stdout.
//!
//! This is how cameras without a plain V4L2 capture node are used: the Pi
//! camera module through `rpicam-vid -t 0 --codec mjpeg -o -`, Jetson CSI
//! cameras through `gst-launch-1.0 ... ! jpegenc ! fdsink`. The command runs
//! under `/bin/sh -c` (so a GStreamer pipeline can be written as in a
//! shell), in its own process group, so that stopping it stops the whole
//! pipeline. A reader thread splits its stdout into frames and leaves the
//! latest in a slot (a slow consumer drops frames; the pipe never backs up
//! into the camera); another thread copies its stderr to the log. When the
//! command exits, or stays silent for several frame timeouts, it is
//! restarted with backoff.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::slot::{Latest, TakeError};
use super::{CaptureError, CaptureErrorKind, Frame, FrameSource, PixelFormat};
use crate::capture::mjpeg::{MjpegReadError, MjpegReader};
use crate::util::backoff::Backoff;

/// `rpicam-vid` takes one to three seconds from start to its first frame
/// (camera start-up and exposure settling); 10 s without a frame means the
/// command is stuck rather than slow.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(10);
/// Consecutive frame timeouts after which a silent command is killed and
/// restarted: one timeout may be a pause, three is a hung camera.
const RESTART_AFTER_TIMEOUTS: u32 = 3;
/// A command that ran this long before exiting was working: its restart
/// starts from the shortest backoff again instead of the doubled one.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// Time a stopped command gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Longest single wait for a restart inside one `next_frame` call, so that
/// the capture loop can notice a shutdown in between.
const WAIT_STEP: Duration = Duration::from_secs(1);

/// How to run the command.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOptions {
    /// A shell command line, run by `/bin/sh -c`.
    pub command: String,
    /// No frame within this long is a timeout.
    pub timeout: Duration,
    /// Restart delays: first and longest.
    pub restart_first: Duration,
    pub restart_max: Duration,
}

impl ExecOptions {
    pub fn new(command: impl Into<String>) -> ExecOptions {
        ExecOptions {
            command: command.into(),
            timeout: DEFAULT_EXEC_TIMEOUT,
            restart_first: super::BACKOFF_FIRST,
            restart_max: super::BACKOFF_MAX,
        }
    }
}

/// One frame as the reader thread copied it out of the pipe.
#[derive(Default)]
struct Captured {
    jpeg: Vec<u8>,
    timestamp: Option<SystemTime>,
}

/// The running command and its helper threads' shared state.
struct Running {
    child: Child,
    frames: Arc<Latest<Captured>>,
    /// Broken frames the reader skipped.
    corrupt: Arc<AtomicU64>,
    corrupt_reported: u64,
    timeouts_in_row: u32,
}

pub struct ExecSource {
    options: ExecOptions,
    backoff: Backoff,
    running: Option<Running>,
    /// The frame last handed out (its buffer backs the returned `Frame`).
    current: Captured,
    sequence: u64,
    starts: u64,
}

impl ExecSource {
    /// Starts nothing yet: the command is started by the first `next_frame`.
    pub fn new(options: ExecOptions) -> ExecSource {
        let backoff = Backoff::new(options.restart_first, options.restart_max).with_stable_run(STABLE_RUN);
        ExecSource { options, backoff, running: None, current: Captured::default(), sequence: 0, starts: 0 }
    }

    /// Times the command was started.
    pub fn starts(&self) -> u64 {
        self.starts
    }

    /// The process id of the running command's shell (and process group).
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    fn start(&mut self) -> Result<(), CaptureError> {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(&self.options.command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: stopping the command stops everything
            // the shell started (a gst-launch pipeline, say).
            .process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; nothing else runs between
        // fork and exec here.
        unsafe {
            // If edgeclip dies without stopping it, the kernel stops it.
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            self.backoff.failed();
            CaptureError::new(
                CaptureErrorKind::Disconnected,
                format!("cannot start '/bin/sh' for '{}': {e}", self.options.command),
            )
        })?;
        self.starts += 1;
        let frames = Arc::new(Latest::new());
        let corrupt = Arc::new(AtomicU64::new(0));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let name = program_name(&self.options.command);
        spawn_reader(stdout, Arc::clone(&frames), Arc::clone(&corrupt), name.clone());
        spawn_stderr_logger(stderr, name);
        tracing::info!(command = %self.options.command, pid = child.id(), "started the camera command");
        self.backoff.run_started();
        self.running = Some(Running { child, frames, corrupt, corrupt_reported: 0, timeouts_in_row: 0 });
        Ok(())
    }

    /// Stops the command (if running) and schedules the restart; the error
    /// says why and when.
    fn restart_later(&mut self, why: String) -> CaptureError {
        if let Some(mut running) = self.running.take() {
            // Before stopping it: how long it ran, not how long it took to stop.
            self.backoff.run_ended();
            let status = stop(&mut running.child);
            let delay = self.backoff.failed();
            let message = format!(
                "camera command '{}' {why}{}; restarting in {:.1} s",
                self.options.command,
                status.map(describe_exit).unwrap_or_default(),
                delay.as_secs_f64()
            );
            tracing::warn!("{message}");
            return CaptureError::new(CaptureErrorKind::Disconnected, message);
        }
        CaptureError::new(CaptureErrorKind::Disconnected, format!("camera command '{}' {why}", self.options.command))
    }
}

impl FrameSource for ExecSource {
    fn next_frame(&mut self) -> Result<Frame<'_>, CaptureError> {
        if self.running.is_none() {
            if !self.backoff.wait(WAIT_STEP) {
                return Err(CaptureError::new(
                    CaptureErrorKind::Disconnected,
                    format!(
                        "camera command '{}' restarts in {:.1} s",
                        self.options.command,
                        self.backoff.remaining().as_secs_f64()
                    ),
                ));
            }
            self.start()?;
        }
        let running = self.running.as_mut().expect("started above");
        let corrupt = running.corrupt.load(Ordering::Relaxed);
        if corrupt > running.corrupt_reported {
            running.corrupt_reported += 1;
            return Err(CaptureError::new(
                CaptureErrorKind::Corrupt,
                format!("a broken JPEG frame from '{}' was skipped", self.options.command),
            ));
        }
        match running.frames.take(self.options.timeout) {
            Ok(captured) => {
                running.timeouts_in_row = 0;
                let old = std::mem::replace(&mut self.current, captured);
                running.frames.recycle(old);
                let sequence = self.sequence;
                self.sequence += 1;
                Ok(Frame {
                    format: PixelFormat::Mjpeg,
                    width: 0,
                    height: 0,
                    stride: 0,
                    data: &self.current.jpeg,
                    sequence,
                    timestamp: self.current.timestamp.unwrap_or_else(SystemTime::now),
                })
            }
            Err(TakeError::Timeout) => {
                running.timeouts_in_row += 1;
                if running.timeouts_in_row >= RESTART_AFTER_TIMEOUTS {
                    let why =
                        format!("sent no frame for {RESTART_AFTER_TIMEOUTS} timeouts of {:?}", self.options.timeout);
                    return Err(self.restart_later(why));
                }
                Err(CaptureError::new(
                    CaptureErrorKind::Timeout,
                    format!(
                        "no frame from camera command '{}' within {:?}",
                        self.options.command, self.options.timeout
                    ),
                ))
            }
            Err(TakeError::Closed) => Err(self.restart_later("exited".into())),
        }
    }

    fn describe(&self) -> String {
        format!("exec:{}", self.options.command)
    }
}

impl Drop for ExecSource {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            stop(&mut running.child);
        }
    }
}

/// The command's first word, to tag its log lines.
fn program_name(command: &str) -> String {
    let first = command.split_whitespace().next().unwrap_or("command");
    first.rsplit('/').next().unwrap_or(first).to_string()
}

fn spawn_reader(stdout: ChildStdout, frames: Arc<Latest<Captured>>, corrupt: Arc<AtomicU64>, name: String) {
    let thread_name = format!("exec-read {name}");
    let spawned = thread::Builder::new().name(thread_name.clone()).spawn(move || {
        let mut reader = MjpegReader::new(stdout);
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    let mut captured = frames.spare().unwrap_or_default();
                    captured.jpeg.clear();
                    captured.jpeg.extend_from_slice(frame.jpeg);
                    captured.timestamp = Some(SystemTime::now());
                    frames.put(captured);
                }
                Ok(None) => break,
                Err(MjpegReadError::Frame(e)) => {
                    tracing::debug!("{name}: {e}");
                    corrupt.fetch_add(1, Ordering::Relaxed);
                }
                Err(MjpegReadError::Io(e)) => {
                    tracing::warn!("{name}: {e}");
                    break;
                }
            }
        }
        frames.close();
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start thread '{thread_name}': {e}");
    }
}

fn spawn_stderr_logger(stderr: ChildStderr, name: String) {
    let thread_name = format!("exec-log {name}");
    let spawned = thread::Builder::new().name(thread_name.clone()).spawn(move || {
        for line in BufReader::new(stderr).lines() {
            match line {
                Ok(line) if !line.trim().is_empty() => tracing::info!(target: "edgeclip::camera", "{name}: {line}"),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start thread '{thread_name}': {e}");
    }
}

/// Stops the command's process group: SIGTERM, then SIGKILL after
/// [`STOP_GRACE`]. Returns the shell's exit status if it could be read.
fn stop(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        // The shell is gone; its pipeline may not be.
        signal_group(child.id(), libc::SIGKILL);
        return Some(status);
    }
    signal_group(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            signal_group(child.id(), libc::SIGKILL);
            return Some(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    signal_group(child.id(), libc::SIGKILL);
    // The shell itself too, should its group have been left.
    let _ = child.kill();
    child.wait().ok()
}

fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals the process group the
    // command was started in (its pgid is its pid); no memory is involved.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// " (exit status 1)", " (killed by signal 9)", with a hint for the
/// shell's "command not found".
fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(127), _) => " (exit status 127: the shell did not find the program; check the command and PATH)".into(),
        (Some(code), _) => format!(" (exit status {code})"),
        (None, Some(signal)) => format!(" (killed by signal {signal})"),
        _ => String::new(),
    }
}
