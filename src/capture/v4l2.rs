//! V4L2 capture devices (PLACEHOLDER until the real source lands: only the
//! options type the spec parser fills in).

use std::time::Duration;

use super::{CaptureError, CaptureErrorKind, Frame, FrameSource, PixelFormat};

#[derive(Debug, Clone, PartialEq)]
pub struct V4l2Options {
    pub device: String,
    pub formats: Vec<PixelFormat>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    pub timeout: Duration,
    pub buffers: u32,
}

impl V4l2Options {
    pub fn new(device: impl Into<String>) -> V4l2Options {
        V4l2Options {
            device: device.into(),
            formats: PixelFormat::ALL.to_vec(),
            width: None,
            height: None,
            fps: None,
            timeout: Duration::from_secs(5),
            buffers: 4,
        }
    }
}

pub struct V4l2Source;

impl V4l2Source {
    pub fn open(options: V4l2Options) -> Result<V4l2Source, CaptureError> {
        Err(CaptureError::new(
            CaptureErrorKind::Other,
            format!("'{}': the v4l2 source is not built yet", options.device),
        ))
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self) -> Result<Frame<'_>, CaptureError> {
        unreachable!("never opened")
    }

    fn describe(&self) -> String {
        String::new()
    }
}
