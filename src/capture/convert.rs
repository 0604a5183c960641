//! Pixel conversion: any [`Frame`] to an RGB8 image for the preprocessor.
//!
//! PLACEHOLDER: a first cut (MJPEG through the `image` crate, RGB24 copied)
//! that the full conversion replaces: YUYV, NV12, GREY with BT.601 limited
//! range, MJPEG without Huffman tables, reduced-size decoding.

use thiserror::Error;

use super::{Frame, PixelFormat};
use crate::preprocess::RgbFrame;

/// A frame converted to RGB8, rows packed; its buffer is reused frame after
/// frame.
#[derive(Debug, Clone, Default)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new() -> RgbImage {
        RgbImage::default()
    }

    /// The image as the preprocessor takes it.
    pub fn as_frame(&self) -> RgbFrame<'_> {
        RgbFrame::new(self.width, self.height, &self.data).expect("an RgbImage holds width * height * 3 bytes")
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConvertError {
    #[error("corrupt {format} frame: {reason}")]
    Corrupt { format: PixelFormat, reason: String },
}

/// Converts frames to RGB8, keeping its scratch buffers between frames.
#[derive(Debug, Default)]
pub struct Converter {
    min_side: Option<u32>,
}

impl Converter {
    /// `min_side`: when set, the output may be smaller than the frame (a
    /// JPEG decoded at reduced scale) as long as its shorter side stays at
    /// least this long; the encoder's input size is what to pass.
    pub fn new(min_side: Option<u32>) -> Converter {
        Converter { min_side }
    }

    pub fn convert(&mut self, frame: &Frame<'_>, out: &mut RgbImage) -> Result<(), ConvertError> {
        let _ = self.min_side;
        let corrupt = |reason: String| ConvertError::Corrupt { format: frame.format, reason };
        match frame.format {
            PixelFormat::Mjpeg => {
                let img = image::load_from_memory_with_format(frame.data, image::ImageFormat::Jpeg)
                    .map_err(|e| corrupt(e.to_string()))?
                    .into_rgb8();
                out.width = img.width();
                out.height = img.height();
                out.data.clear();
                out.data.extend_from_slice(img.as_raw());
                Ok(())
            }
            PixelFormat::Rgb24 => {
                let row = frame.width as usize * 3;
                if frame.data.len() < frame.height as usize * frame.stride as usize || (frame.stride as usize) < row {
                    return Err(corrupt(format!("{} bytes for {}x{}", frame.data.len(), frame.width, frame.height)));
                }
                out.width = frame.width;
                out.height = frame.height;
                out.data.clear();
                for y in 0..frame.height as usize {
                    let start = y * frame.stride as usize;
                    out.data.extend_from_slice(&frame.data[start..start + row]);
                }
                Ok(())
            }
            other => Err(corrupt(format!("{other} is not converted yet"))),
        }
    }
}
