//! The RTSP connection: one thread per camera that connects, plays and
//! reconnects, and queues the camera's encoded frames for the decoder.
//!
//! The thread runs a small single-threaded tokio runtime for retina (an
//! async RTSP client). It describes, sets up the first video stream it can
//! use (H.264 or Motion-JPEG) and plays it; every frame goes into a
//! [`Shared`] queue, which the source drains on the capture thread. Any
//! failure (refused connection, wrong password, the camera rebooting, a
//! stream silent for the timeout, garbage on the wire) ends the session;
//! the thread reports it and tries again with backoff. The thread never
//! blocks the capture thread, and stops at the next check of the stop flag
//! once the source is dropped.
//!
//! The queue is bounded: when the decoder falls behind by more than
//! [`MAX_QUEUED`] frames, the frames queued are dropped at the next
//! keyframe, or new ones are dropped until it, so memory stays bounded and
//! decoding catches up with the camera instead of lagging further.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use retina::client::{
    Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};

use super::url::{RtspOptions, Transport};
use crate::util::backoff::Backoff;
use crate::util::untrusted::untrusted;

/// Frames the decoder may fall behind by before frames are dropped: about
/// three seconds of a 20 fps substream, well beyond a decode hiccup, and
/// 64 × 100 KB at most for a main stream's keyframes.
pub const MAX_QUEUED: usize = 64;
/// Notices kept for a source that is not taking them.
const MAX_NOTICES: usize = 8;
/// The longest wait inside the session between checks of the stop flag.
const STEP: Duration = Duration::from_millis(500);
/// DESCRIBE, SETUP and PLAY each get this long: a camera on the local
/// network answers in milliseconds, one rebooting does not answer at all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A session that played this long before it broke was working: the next
/// attempt starts from the shortest backoff again.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// RTP timestamps that drift further than this from the board's clock (a
/// camera whose clock runs fast, a stream that paused) are re-anchored.
const MAX_CLOCK_DRIFT: Duration = Duration::from_secs(2);

/// The encodings edgeclip reads from a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Jpeg,
}

/// One encoded frame as the camera sent it.
#[derive(Debug)]
pub struct Received {
    pub codec: Codec,
    /// H.264: one access unit, Annex B, with the parameter sets before each
    /// keyframe; JPEG: one whole image.
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// Frames before this one were lost (RTP sequence gap or frames
    /// dropped from the queue): decoding must restart at a keyframe.
    pub gap: bool,
    /// When the camera captured it: the RTP timestamp on the board's clock.
    pub timestamp: SystemTime,
    /// Counts the camera's frames since the source started, lost ones too.
    pub sequence: u64,
}

/// What the session thread tells the source besides frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Playing: the codec and size as the camera described them.
    Playing(String),
    /// The session failed or could not start; the message says why and
    /// when the next attempt is.
    Failed(String),
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Received>,
    notices: VecDeque<Notice>,
    /// Frames were dropped since the last one queued.
    gap: bool,
    dropped: u64,
    sequence: u64,
}

/// The queue between the session thread and the source.
#[derive(Default)]
pub struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    stop: AtomicBool,
}

/// What one wait on the queue gave.
#[derive(Default)]
pub struct Batch {
    pub frames: Vec<Received>,
    pub notices: Vec<Notice>,
    /// Frames dropped from the queue in all, since the source started.
    pub dropped: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the session thread to stop at its next check.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn notify(&self, notice: Notice) {
        let mut q = self.lock();
        // Nobody may be taking them (a capture thread that stopped): the
        // newest few say all there is to say.
        if q.notices.len() >= MAX_NOTICES {
            q.notices.pop_front();
        }
        q.notices.push_back(notice);
        drop(q);
        self.changed.notify_all();
    }

    /// Queues a frame, dropping frames when the decoder is too far behind.
    fn push(&self, codec: Codec, data: Vec<u8>, keyframe: bool, lost: bool, timestamp: SystemTime) {
        let mut q = self.lock();
        let sequence = q.sequence;
        q.sequence += 1;
        q.gap |= lost;
        if q.frames.len() >= MAX_QUEUED {
            if keyframe {
                // Everything queued is older than this keyframe, which
                // needs none of it.
                q.dropped += q.frames.len() as u64;
                q.frames.clear();
            } else {
                q.dropped += 1;
                q.gap = true;
                return;
            }
        }
        let gap = std::mem::take(&mut q.gap);
        q.frames.push_back(Received { codec, data, keyframe, gap, timestamp, sequence });
        drop(q);
        self.changed.notify_all();
    }

    /// Takes everything queued, waiting up to `timeout` for something.
    pub fn take(&self, timeout: Duration) -> Batch {
        let deadline = Instant::now() + timeout;
        let mut q = self.lock();
        while q.frames.is_empty() && q.notices.is_empty() && !self.stopped() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = self.changed.wait_timeout(q, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        Batch { frames: q.frames.drain(..).collect(), notices: q.notices.drain(..).collect(), dropped: q.dropped }
    }
}

/// Starts the session thread for `options`; it runs until `shared.stop()`.
pub fn spawn(options: RtspOptions, shared: Arc<Shared>) -> std::io::Result<()> {
    let name = format!("rtsp {}", options.url.host_str().unwrap_or("camera"));
    std::thread::Builder::new().name(name).spawn(move || run(&options, &shared))?;
    Ok(())
}

fn run(options: &RtspOptions, shared: &Shared) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            shared.notify(Notice::Failed(format!("cannot start the RTSP client for {options}: {e}")));
            return;
        }
    };
    let mut backoff = Backoff::new(options.retry_first, options.retry_max).with_stable_run(STABLE_RUN);
    while !shared.stopped() {
        backoff.run_started();
        let why = runtime.block_on(session(options, shared));
        if shared.stopped() {
            break;
        }
        backoff.run_ended();
        let delay = backoff.failed();
        shared.notify(Notice::Failed(format!("{why}; reconnecting in {:.1} s", delay.as_secs_f64())));
        while !shared.stopped() && !backoff.wait(STEP) {}
    }
}

/// One session, from DESCRIBE until it breaks; returns why it ended (the
/// capture loop's log line names the camera).
async fn session(options: &RtspOptions, shared: &Shared) -> String {
    match play(options, shared, &options.redacted_url()).await {
        Ok(()) => "stopped".to_string(),
        Err(why) => why,
    }
}

async fn play(options: &RtspOptions, shared: &Shared, camera: &str) -> Result<(), String> {
    let creds = options
        .user
        .clone()
        .map(|username| Credentials { username, password: options.password.clone().unwrap_or_default() });
    let session_options =
        SessionOptions::default().creds(creds).user_agent(format!("edgeclip/{}", env!("CARGO_PKG_VERSION")));
    let mut described = timed("DESCRIBE", retina::client::Session::describe(options.url.clone(), session_options))
        .await?
        .map_err(|e| describe_error(&e, options))?;

    let videos: Vec<(usize, String)> = described
        .streams()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.media() == "video")
        .map(|(i, s)| (i, s.encoding_name().to_ascii_lowercase()))
        .collect();
    let Some((index, codec)) = videos.iter().find_map(|(i, name)| match name.as_str() {
        "h264" => Some((*i, Codec::H264)),
        "jpeg" => Some((*i, Codec::Jpeg)),
        _ => None,
    }) else {
        let offered: Vec<&str> = videos.iter().map(|(_, n)| n.as_str()).collect();
        return Err(if offered.is_empty() {
            "the stream has no video".to_string()
        } else {
            format!(
                "the camera sends {} video, which edgeclip does not decode (accepted: H.264 or MJPEG); \
                 set this stream (or the camera's substream) to H.264",
                untrusted(&offered.join(", ").to_uppercase())
            )
        });
    };
    let transport = match options.transport {
        Transport::Tcp => retina::client::Transport::Tcp(TcpTransportOptions::default()),
        Transport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
    };
    timed(
        "SETUP",
        described.setup(index, SetupOptions::default().transport(transport).frame_format(FrameFormat::SIMPLE)),
    )
    .await?
    .map_err(|e| describe_error(&e, options))?;
    let playing =
        timed("PLAY", described.play(PlayOptions::default())).await?.map_err(|e| describe_error(&e, options))?;
    let mut frames = playing.demuxed().map_err(|e| describe_error(&e, options))?;
    shared.notify(Notice::Playing(format!(
        "playing {camera} ({}, over {})",
        if codec == Codec::H264 { "H.264" } else { "MJPEG" },
        if options.transport == Transport::Tcp { "TCP" } else { "UDP" }
    )));

    // RTP time 0 of this session on the board's clock.
    let mut anchor: Option<(SystemTime, f64)> = None;
    let mut silent = Duration::ZERO;
    while !shared.stopped() {
        let item = match tokio::time::timeout(STEP, frames.next()).await {
            Err(_) => {
                silent += STEP;
                if silent >= options.timeout {
                    return Err(format!("no frame for {:?}", options.timeout));
                }
                continue;
            }
            Ok(None) => return Err("the camera ended the stream".into()),
            Ok(Some(Err(e))) => return Err(describe_error(&e, options)),
            Ok(Some(Ok(item))) => item,
        };
        let CodecItem::VideoFrame(frame) = item else { continue };
        silent = Duration::ZERO;
        let now = SystemTime::now();
        let elapsed = frame.timestamp().elapsed_secs();
        let mut at = anchor.map(|(wall, zero)| wall + Duration::from_secs_f64((elapsed - zero).max(0.0)));
        let drifted = at.is_none_or(|at| {
            at.duration_since(now).or_else(|e| Ok::<_, ()>(e.duration())).unwrap_or_default() > MAX_CLOCK_DRIFT
        });
        if drifted {
            anchor = Some((now, elapsed));
            at = Some(now);
        }
        let keyframe = frame.is_random_access_point();
        let lost = frame.loss() > 0;
        shared.push(codec, frame.into_data(), keyframe, lost, at.unwrap_or(now));
    }
    Ok(())
}

/// Runs one RTSP request with [`REQUEST_TIMEOUT`].
async fn timed<T>(what: &str, request: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| format!("no answer to {what} within {:?}", REQUEST_TIMEOUT))
}

/// A retina error for the log: its first line (the rest is a packet dump
/// for Wireshark), escaped, with what to do about a refused login.
fn describe_error(e: &retina::Error, options: &RtspOptions) -> String {
    let text = e.to_string();
    let first = text.split("\n\n").next().unwrap_or(&text).trim();
    match e.status_code() {
        Some(401) => format!(
            "the camera refused {} (401 Unauthorized); check the user and password in the source URL",
            match &options.user {
                Some(user) => format!("user '{}' with this password", untrusted(user)),
                None => "to play without a user and password".to_string(),
            }
        ),
        Some(404) => "the camera has no stream at this path (404 Not Found); check the URL's path".to_string(),
        _ => untrusted(first).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_frames_until_the_next_keyframe() {
        let shared = Shared::default();
        let now = SystemTime::now();
        for i in 0..MAX_QUEUED {
            shared.push(Codec::H264, vec![i as u8], i == 0, false, now);
        }
        // Full: a P-frame is dropped (and marks a gap)...
        shared.push(Codec::H264, vec![1], false, false, now);
        // ...and a keyframe replaces everything queued.
        shared.push(Codec::H264, vec![2], true, false, now);
        shared.push(Codec::H264, vec![3], false, false, now);
        let batch = shared.take(Duration::ZERO);
        let sequences: Vec<u64> = batch.frames.iter().map(|f| f.sequence).collect();
        assert_eq!(sequences, [MAX_QUEUED as u64 + 1, MAX_QUEUED as u64 + 2]);
        assert!(batch.frames[0].keyframe && batch.frames[0].gap);
        assert!(!batch.frames[1].gap);
        assert_eq!(batch.dropped, MAX_QUEUED as u64 + 1);
        // A loss the camera's packets showed is passed on once.
        shared.push(Codec::H264, vec![4], false, true, now);
        shared.push(Codec::H264, vec![5], false, false, now);
        let gaps: Vec<bool> = shared.take(Duration::ZERO).frames.iter().map(|f| f.gap).collect();
        assert_eq!(gaps, [true, false]);
    }

    #[test]
    fn a_wait_ends_at_a_notice_or_the_timeout() {
        let shared = Arc::new(Shared::default());
        let started = Instant::now();
        assert!(shared.take(Duration::from_millis(50)).frames.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));
        let notifier = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            notifier.notify(Notice::Failed("refused".into()));
        });
        let batch = shared.take(Duration::from_secs(10));
        assert_eq!(batch.notices, [Notice::Failed("refused".into())]);
        thread.join().unwrap();
    }
}
