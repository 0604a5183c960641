//! What [`V4l2Source`](super::V4l2Source) and [`list_devices`](super::list_devices)
//! need from a V4L2 device, as one small trait: the kernel's device
//! ([`KernelDevice`](super::KernelDevice), plain ioctls) and a scripted fake
//! ([`FakeCamera`](super::fake::FakeCamera)) implement it, so that format
//! negotiation, timeouts, unplugging and reopening are tested without a
//! camera.
//!
//! Errors are plain `io::Error`s carrying the driver's errno (or
//! `ErrorKind::TimedOut` for a poll that saw no frame); the source maps them
//! to [`CaptureErrorKind`](crate::capture::CaptureErrorKind)s, naming the step
//! that failed.

use std::io;
use std::time::Duration;

/// What VIDIOC_QUERYCAP says about a device node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// The node captures video (single-planar): not a UVC metadata node, an
    /// output, or a codec.
    pub capture: bool,
    /// The node supports mmap streaming.
    pub streaming: bool,
}

/// A frame size a format offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSizes {
    /// One size, with the frame rates it offers.
    Discrete { width: u32, height: u32, intervals: Vec<Interval> },
    /// Any size in a range (continuous when the steps are 1).
    Stepwise { min: (u32, u32), max: (u32, u32), step: (u32, u32) },
}

/// A frame interval, seconds as a fraction; `1/30` is 30 fps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub numerator: u32,
    pub denominator: u32,
}

impl Interval {
    /// Frames per second (0 for a zero numerator, which no driver should report).
    pub fn fps(self) -> f64 {
        if self.numerator == 0 {
            0.0
        } else {
            self.denominator as f64 / self.numerator as f64
        }
    }
}

/// One pixel format a device offers (VIDIOC_ENUM_FMT) and its sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatInfo {
    pub fourcc: [u8; 4],
    /// The driver's name for it, e.g. "Motion-JPEG".
    pub description: String,
    pub sizes: Vec<FrameSizes>,
}

/// The format the driver chose (VIDIOC_S_FMT's answer), which may differ
/// from what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChosenFormat {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    /// Bytes per row (0 for compressed formats, and from drivers that leave
    /// it to the application).
    pub stride: u32,
    /// The largest frame the driver will deliver.
    pub size_image: u32,
}

/// What VIDIOC_DQBUF says about a filled buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued {
    /// Which buffer; its bytes are [`V4l2Device::buffer`]`(index)`.
    pub index: usize,
    pub bytes_used: usize,
    /// CLOCK_MONOTONIC time of capture when the driver stamps it so.
    pub timestamp: Option<Duration>,
    /// The driver's frame counter (gaps are frames it dropped).
    pub sequence: u32,
    /// The driver flagged the data as damaged (V4L2_BUF_FLAG_ERROR).
    pub error: bool,
}

/// An open V4L2 capture device node.
pub trait V4l2Device: Send {
    /// VIDIOC_QUERYCAP.
    fn info(&self) -> io::Result<DeviceInfo>;

    /// The capture formats offered, each with its sizes and rates.
    fn formats(&self) -> io::Result<Vec<FormatInfo>>;

    /// Asks for a format and size; returns what the driver chose.
    fn set_format(&mut self, fourcc: [u8; 4], width: u32, height: u32) -> io::Result<ChosenFormat>;

    /// Asks for a frame rate; returns the interval the driver chose, `None`
    /// when the driver has no frame rate control.
    fn set_frame_rate(&mut self, fps: u32) -> io::Result<Option<Interval>>;

    /// Allocates `buffers` mmap buffers, queues them and starts streaming;
    /// returns how many buffers the driver granted.
    fn start(&mut self, buffers: u32) -> io::Result<u32>;

    /// Gives the previously dequeued buffer back to the driver, then waits
    /// up to `timeout` for the next filled one (`ErrorKind::TimedOut` when
    /// none comes).
    fn dequeue(&mut self, timeout: Duration) -> io::Result<Dequeued>;

    /// The bytes of buffer `index` (all of it; `bytes_used` says how much is
    /// the frame). Valid until the next `dequeue` or `stop`.
    fn buffer(&self, index: usize) -> Option<&[u8]>;

    /// Stops streaming and releases the buffers; errors (the device may be
    /// gone) are only logged.
    fn stop(&mut self);
}
