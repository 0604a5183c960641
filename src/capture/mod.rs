//! Frame sources: where the daemon's frames come from.
//!
//! Four sources sit behind one [`FrameSource`] trait: V4L2 devices (USB
//! webcams; `v4l2`), a command's MJPEG output (the Pi camera module through
//! `rpicam-vid`, Jetson CSI cameras through `gst-launch-1.0`; `exec`),
//! recorded footage (`file`) and IP cameras and restreams (`rtsp`, whose
//! H.264 [`h264`] decodes). A source hands out frames as the camera
//! delivers them, borrowed from its own buffers ([`Frame`]); the capture
//! thread copies each one once into an [`OwnedFrame`] in a latest-frame
//! [`slot`], which is the stage boundary where data is copied, and the
//! pipeline (`crate::pipeline`) takes it from there. [`mjpeg`] splits the
//! Motion-JPEG streams that commands and recordings deliver. Errors carry a [`CaptureErrorKind`] that says what the
//! loop should do: skip the frame, wait, reopen the device, or stop. Outside
//! the daemon, [`still`] decodes single image files (for `classify`, `eval`
//! and the tests).

pub mod exec;
pub mod file;
pub mod frame;
pub mod h264;
pub mod mjpeg;
pub mod rtsp;
pub mod slot;
pub mod spec;
pub mod still;
pub mod v4l2;

use std::fmt;
use std::time::{Duration, SystemTime};

pub use frame::OwnedFrame;
pub use spec::SourceSpec;

/// The pixel layouts sources deliver; what V4L2 calls a pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Motion-JPEG: each frame a complete JPEG (possibly without Huffman tables).
    Mjpeg,
    /// YUV 4:2:2 packed, Y0 U Y1 V (V4L2 `YUYV`), BT.601 limited range.
    Yuyv,
    /// YUV 4:2:0, a Y plane then an interleaved U V plane (V4L2 `NV12`).
    Nv12,
    /// 8-bit R G B (V4L2 `RGB3`).
    Rgb24,
    /// 8-bit luma only (V4L2 `GREY`), limited range like the Y of YUV.
    Grey,
}

impl PixelFormat {
    pub const ALL: [PixelFormat; 5] =
        [PixelFormat::Mjpeg, PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::Rgb24, PixelFormat::Grey];

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Rgb24 => *b"RGB3",
            PixelFormat::Grey => *b"GREY",
        }
    }

    /// The format of a V4L2 four-character code; `JPEG` is MJPEG as well.
    pub fn from_fourcc(code: [u8; 4]) -> Option<PixelFormat> {
        match &code {
            b"JPEG" => Some(PixelFormat::Mjpeg),
            _ => PixelFormat::ALL.into_iter().find(|f| f.fourcc() == code),
        }
    }

    /// Bytes of a frame of this size with rows of `stride` bytes (the Y
    /// plane's stride for NV12); `None` for MJPEG, whose size varies.
    pub fn frame_len(self, height: u32, stride: u32) -> Option<usize> {
        let plane = height as usize * stride as usize;
        match self {
            PixelFormat::Mjpeg => None,
            PixelFormat::Nv12 => Some(plane + (height as usize).div_ceil(2) * stride as usize),
            PixelFormat::Yuyv | PixelFormat::Rgb24 | PixelFormat::Grey => Some(plane),
        }
    }

    /// Bytes per row of a tightly packed frame `width` pixels wide.
    pub fn packed_stride(self, width: u32) -> u32 {
        match self {
            PixelFormat::Mjpeg => 0,
            PixelFormat::Yuyv => width.div_ceil(2) * 4,
            PixelFormat::Nv12 | PixelFormat::Grey => width,
            PixelFormat::Rgb24 => width * 3,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.fourcc()).unwrap())
    }
}

/// One frame as its source delivered it, borrowed from the source's buffer
/// until the next call to [`FrameSource::next_frame`].
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub format: PixelFormat,
    /// Pixels; for MJPEG the size the source announced (the JPEG header is
    /// what counts when it is decoded), 0 when unknown.
    pub width: u32,
    pub height: u32,
    /// Bytes per row of the first plane (NV12's UV plane has the same
    /// stride); 0 for MJPEG.
    pub stride: u32,
    pub data: &'a [u8],
    /// Counts frames delivered by this source, from 0.
    pub sequence: u64,
    /// When the frame was captured (the driver's timestamp where there is
    /// one, else when it was read).
    pub timestamp: SystemTime,
}

/// What a capture loop should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureErrorKind {
    /// The device is held by another process: wait and retry.
    Busy,
    /// The camera or the command went away: reopen with backoff.
    Disconnected,
    /// No frame within the frame timeout: count it; reopen if it persists.
    Timeout,
    /// This frame is damaged: count it and take the next one.
    Corrupt,
    /// The recording ended (a file source that does not loop): stop.
    Ended,
    /// Anything else, such as a setting the device refuses: stop and report.
    Other,
}

/// A source's error: its kind and a message for the person at the board.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CaptureError {
    pub kind: CaptureErrorKind,
    pub message: String,
}

impl CaptureError {
    pub fn new(kind: CaptureErrorKind, message: impl Into<String>) -> CaptureError {
        CaptureError { kind, message: message.into() }
    }
}

/// A camera or a recording, one frame at a time.
pub trait FrameSource: Send {
    /// The next frame. Blocks until one arrives, the source's frame timeout
    /// passes, or (while a device or command is being reopened) one backoff
    /// step has passed, so that a caller can check for shutdown between
    /// calls.
    fn next_frame(&mut self) -> Result<Frame<'_>, CaptureError>;

    /// What this source reads, for logs: a device path, a command, a file.
    fn describe(&self) -> String;
}

/// The reopening delays of [`v4l2`] devices and [`exec`] commands (a
/// [`Backoff`](crate::util::backoff::Backoff)): the first retry comes
/// quickly (a camera replugged, a command restarted by a transient failure);
/// 30 s between attempts at most keeps a board whose camera is gone for good
/// from spinning, while a camera plugged back in is picked up within half a
/// minute.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_round_trip_and_sizes() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
        }
        assert_eq!(PixelFormat::from_fourcc(*b"JPEG"), Some(PixelFormat::Mjpeg));
        assert_eq!(PixelFormat::from_fourcc(*b"Y10B"), None);
        assert_eq!(PixelFormat::Yuyv.packed_stride(5), 12);
        assert_eq!(PixelFormat::Nv12.frame_len(3, 4), Some(12 + 8));
        assert_eq!(PixelFormat::Mjpeg.frame_len(480, 0), None);
    }
}
