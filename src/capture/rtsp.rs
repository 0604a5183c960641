//! The `rtsp` source: IP cameras, and the restreams of go2rtc and Frigate.
//!
//! A session thread ([`session`]) keeps the RTSP connection up and queues
//! the camera's encoded frames; [`RtspSource::next_frame`], on the capture
//! thread, takes what is queued and decodes it: H.264 through
//! [`H264Decoder`] into NV12, Motion-JPEG passed
//! on as the JPEG it is (the pipeline decodes it, as a V4L2 camera's). Of a
//! batch, only the newest picture is handed on (a slow board drops frames,
//! it never queues them), and with `fps=N` at most N a second, the frames
//! nothing refers to then not decoded at all. A backlog of more than
//! [`BACKLOG_FRAMES`] frames is skipped to its newest keyframe.
//!
//! Frame timestamps are the camera's RTP timestamps on the board's clock,
//! and `sequence` counts the camera's frames, lost and skipped ones too.

pub mod session;
pub mod url;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use url::{RtspOptions, Transport};

use self::session::{Batch, Codec, Notice, Received, Shared};
use super::h264::{AccessUnit, DecodeError, H264Decoder, Nv12Frame};
use super::{CaptureError, CaptureErrorKind, Frame, FrameSource, PixelFormat};
use crate::util::log_limit::{also, LogLimit};

/// Frames queued at once beyond which decoding skips to the newest keyframe
/// among them: a second of a 10 fps substream. Decoding them all would only
/// make pictures nobody will see, late.
pub const BACKLOG_FRAMES: usize = 10;

/// The picture last handed out.
enum Current {
    Nothing,
    Nv12(Nv12Frame),
    Jpeg(Vec<u8>),
}

pub struct RtspSource {
    options: RtspOptions,
    shared: Arc<Shared>,
    decoder: Option<H264Decoder>,
    current: Current,
    current_sequence: u64,
    current_timestamp: SystemTime,
    /// When the last frame was handed out (for `fps`).
    last_handed: Option<Instant>,
    /// Broken frames not yet reported, one per call.
    corrupt_pending: Vec<String>,
    /// Frames the session dropped from its queue, as last logged.
    dropped_logged: u64,
    drop_log: LogLimit,
    /// The session failed and has not played since.
    reconnecting: bool,
}

impl RtspSource {
    /// Starts the session thread; it connects in the background, so a
    /// camera that is down is retried instead of refused here.
    pub fn open(options: RtspOptions) -> Result<RtspSource, CaptureError> {
        let shared = Arc::new(Shared::default());
        session::spawn(options.clone(), Arc::clone(&shared)).map_err(|e| {
            CaptureError::new(CaptureErrorKind::Other, format!("cannot start the RTSP thread for {options}: {e}"))
        })?;
        Ok(RtspSource {
            options,
            shared,
            decoder: None,
            current: Current::Nothing,
            current_sequence: 0,
            current_timestamp: SystemTime::UNIX_EPOCH,
            last_handed: None,
            corrupt_pending: Vec::new(),
            dropped_logged: 0,
            drop_log: LogLimit::new(),
            reconnecting: false,
        })
    }

    /// Whether the next picture is wanted: always, unless `fps` limits it.
    fn due(&self, now: Instant) -> bool {
        match (self.options.fps, self.last_handed) {
            (Some(fps), Some(last)) => now.duration_since(last).as_secs_f64() >= 1.0 / fps,
            _ => true,
        }
    }

    /// Decodes a batch in order; returns whether its newest picture is now
    /// in `current`.
    fn decode(&mut self, mut frames: Vec<Received>) -> Result<bool, CaptureError> {
        if frames.len() > BACKLOG_FRAMES {
            if let Some(k) = frames.iter().rposition(|f| f.keyframe).filter(|&k| k > 0) {
                frames.drain(..k);
            }
        }
        let due = self.due(Instant::now());
        let last = frames.len().saturating_sub(1);
        let mut produced = false;
        for (i, frame) in frames.into_iter().enumerate() {
            let wanted = due && i == last;
            match frame.codec {
                Codec::Jpeg => {
                    if !wanted {
                        continue;
                    }
                    self.current = Current::Jpeg(frame.data);
                    produced = true;
                }
                Codec::H264 => {
                    let unit = AccessUnit(&frame.data);
                    if self.decoder.is_none() {
                        self.decoder = Some(H264Decoder::new().map_err(|e| {
                            CaptureError::new(CaptureErrorKind::Other, format!("{}: {e}", self.options))
                        })?);
                    }
                    let decoder = self.decoder.as_mut().expect("made above");
                    if frame.gap {
                        decoder.resync();
                    }
                    if !wanted && !unit.is_reference() {
                        // Nothing refers to it and nobody will see it.
                        continue;
                    }
                    let out = match (&mut self.current, wanted) {
                        (Current::Nv12(out), true) => Some(out),
                        (_, true) => {
                            self.current = Current::Nv12(Nv12Frame::default());
                            let Current::Nv12(out) = &mut self.current else { unreachable!() };
                            Some(out)
                        }
                        (_, false) => None,
                    };
                    match decoder.decode(unit, out) {
                        Ok(true) if wanted => produced = true,
                        Ok(_) => {}
                        Err(DecodeError::Start(e)) => {
                            return Err(CaptureError::new(CaptureErrorKind::Other, format!("{}: {e}", self.options)))
                        }
                        Err(e) => self.corrupt_pending.push(format!("{} frame {}: {e}", self.options, frame.sequence)),
                    }
                    if !produced || !wanted {
                        continue;
                    }
                }
            }
            self.current_sequence = frame.sequence;
            self.current_timestamp = frame.timestamp;
        }
        Ok(produced)
    }

    /// The picture in `current` as a frame.
    fn frame(&self) -> Frame<'_> {
        let (format, width, height, stride, data): (_, _, _, _, &[u8]) = match &self.current {
            Current::Nv12(f) => (PixelFormat::Nv12, f.width, f.height, f.stride, &f.data),
            Current::Jpeg(jpeg) => (PixelFormat::Mjpeg, 0, 0, 0, jpeg),
            Current::Nothing => (PixelFormat::Mjpeg, 0, 0, 0, &[]),
        };
        Frame {
            format,
            width,
            height,
            stride,
            data,
            sequence: self.current_sequence,
            timestamp: self.current_timestamp,
        }
    }
}

impl FrameSource for RtspSource {
    fn next_frame(&mut self) -> Result<Frame<'_>, CaptureError> {
        let deadline = Instant::now() + self.options.timeout;
        loop {
            if !self.corrupt_pending.is_empty() {
                let message = self.corrupt_pending.remove(0);
                return Err(CaptureError::new(CaptureErrorKind::Corrupt, message));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if self.reconnecting {
                    // Between attempts; each failed one was reported.
                    return Err(CaptureError::new(
                        CaptureErrorKind::Disconnected,
                        "not connected; waiting to reconnect",
                    ));
                }
                return Err(CaptureError::new(
                    CaptureErrorKind::Timeout,
                    format!("no frame from {} within {:?}", self.options, self.options.timeout),
                ));
            }
            let Batch { frames, notices, dropped } = self.shared.take(left.min(Duration::from_secs(1)));
            if dropped > self.dropped_logged {
                if let Some(n) = self.drop_log.check() {
                    tracing::warn!(
                        "{}: decoding fell {} frames behind the camera; {} frames skipped to the next keyframe in all{}",
                        self.options,
                        session::MAX_QUEUED,
                        dropped,
                        also(n)
                    );
                }
                self.dropped_logged = dropped;
            }
            let mut failure = None;
            for notice in notices {
                match notice {
                    Notice::Playing(what) => {
                        self.reconnecting = false;
                        tracing::info!("{what}");
                    }
                    Notice::Failed(why) => {
                        self.reconnecting = true;
                        failure = Some(why);
                    }
                }
            }
            let produced = if frames.is_empty() { false } else { self.decode(frames)? };
            if produced {
                self.last_handed = Some(Instant::now());
                return Ok(self.frame());
            }
            if let Some(why) = failure {
                // The decoder starts again at the next session's keyframe.
                if let Some(decoder) = &mut self.decoder {
                    decoder.resync();
                }
                return Err(CaptureError::new(CaptureErrorKind::Disconnected, why));
            }
        }
    }

    fn describe(&self) -> String {
        self.options.to_string()
    }
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        // The thread ends at its next check (half a second, or a request's
        // timeout while connecting); nothing here waits for it.
        self.shared.stop();
    }
}
