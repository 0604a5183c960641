//! A frame copied out of a source's buffer: what crosses from the capture
//! thread to the inference thread through the latest-frame slot. Its buffer
//! is reused from frame to frame ([`OwnedFrame::fill_from`]), so a warm
//! capture loop allocates nothing.

use std::time::{Instant, SystemTime};

use super::{Frame, PixelFormat};

/// A frame copied out of the source's buffer, with when it arrived.
#[derive(Debug, Clone)]
pub struct OwnedFrame {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub data: Vec<u8>,
    pub sequence: u64,
    pub timestamp: SystemTime,
    pub arrived: Instant,
}

impl Default for OwnedFrame {
    fn default() -> Self {
        OwnedFrame {
            format: PixelFormat::Mjpeg,
            width: 0,
            height: 0,
            stride: 0,
            data: Vec::new(),
            sequence: 0,
            timestamp: SystemTime::UNIX_EPOCH,
            arrived: Instant::now(),
        }
    }
}

impl OwnedFrame {
    /// Copies `frame` in, reusing this buffer's memory.
    pub fn fill_from(&mut self, frame: &Frame<'_>) {
        self.format = frame.format;
        self.width = frame.width;
        self.height = frame.height;
        self.stride = frame.stride;
        self.data.clear();
        self.data.extend_from_slice(frame.data);
        self.sequence = frame.sequence;
        self.timestamp = frame.timestamp;
        self.arrived = Instant::now();
    }

    pub fn as_frame(&self) -> Frame<'_> {
        Frame {
            format: self.format,
            width: self.width,
            height: self.height,
            stride: self.stride,
            data: &self.data,
            sequence: self.sequence,
            timestamp: self.timestamp,
        }
    }
}
