//! Pixel conversion: any [`Frame`] to a packed RGB8 image for the
//! preprocessor, optionally at a reduced size.
//!
//! Raw formats are converted a row at a time. YUYV and NV12 are BT.601
//! limited range, as UVC cameras deliver them (Y 16..235, U and V 16..240
//! around 128). GREY is full range, 0 black and 255 white, each byte its
//! pixel's R, G and B: what the kernel's own test driver (vivid) delivers
//! and ffmpeg reads, and what greyscale and infrared sensors send. Chroma
//! is shared by the two pixels (YUYV) or the 2×2 pixels (NV12) it was
//! sampled for, without interpolation, as swscale's unscaled converters do.
//! RGB24 rows are copied. Every raw format respects [`Frame::stride`] and
//! accepts odd widths and heights (the last YUYV macropixel and the last
//! NV12 chroma row then serve one pixel or row).
//! MJPEG is decoded by [`super::jpeg`].
//!
//! With `min_side` set (the encoder's input size), the output is shrunk by
//! the largest factor of 2, 4 or 8 that keeps its shorter side at least
//! `min_side` (1280×720 → 640×360, 640×480 → 320×240): each output pixel is
//! the rounded mean of an f×f block, and a last partial block (odd sizes) is
//! dropped. That is what a DCT-scaled JPEG decode approximates, and it
//! leaves the preprocessor's bicubic resize a quarter of the pixels. For raw
//! formats the full-size rows exist only in a scratch strip of f rows; for
//! MJPEG the full frame is decoded first (the decoder has no DCT scaling;
//! see `jpeg` for why it is still the faster choice).
//!
//! A [`Converter`] and an [`RgbImage`] are reused frame after frame: once
//! they have seen a frame size, raw frames allocate nothing and MJPEG frames
//! only what zune-jpeg allocates inside: 2 buffers a frame for greyscale, 4
//! for 4:4:4, 17 for 4:2:2 and 4:2:0 (its upsampler's scratch), whatever the
//! frame size.

use thiserror::Error;

use super::jpeg::{JpegDecoder, JpegError};
use crate::capture::{Frame, PixelFormat};
use crate::model::preprocess::RgbFrame;

/// Largest raw frame accepted, per side: far beyond any camera, and small
/// enough that no size computation can overflow, even on 32-bit ARM.
pub const MAX_RAW_SIDE: u32 = 16384;

/// Reduction factors tried, largest first: the JPEG DCT scales, applied as
/// box filters.
const FACTORS: [u32; 3] = [8, 4, 2];

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

/// Why a frame cannot be converted. Every variant means the same to the
/// capture loop: this frame is unusable, count it and take the next one.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConvertError {
    #[error("{format} frame is {width}x{height}: nothing to convert")]
    Empty { format: PixelFormat, width: u32, height: u32 },
    #[error("{format} frame is {width}x{height}, larger than {MAX_RAW_SIDE} pixels on a side")]
    TooLarge { format: PixelFormat, width: u32, height: u32 },
    #[error("{format} frame {width} pixels wide needs rows of at least {needed} bytes, but its stride is {stride}")]
    Stride { format: PixelFormat, width: u32, stride: u32, needed: u64 },
    #[error("{format} frame of {width}x{height} with {stride}-byte rows needs {expected} bytes, but the buffer holds {actual}")]
    BufferSize { format: PixelFormat, width: u32, height: u32, stride: u32, expected: u64, actual: usize },
    #[error("MJPG frame {0}")]
    Jpeg(#[from] JpegError),
}

/// Converts frames to RGB8, keeping its scratch buffers between frames.
#[derive(Debug, Default)]
pub struct Converter {
    min_side: Option<u32>,
    jpeg: JpegDecoder,
    /// Full-size RGB rows before a reduction: a strip of f rows for raw
    /// formats, the whole decoded frame for MJPEG.
    full: Vec<u8>,
}

/// The reduction factor for a frame: the largest of `FACTORS` that keeps
/// the shorter side at least `min_side`, else 1.
pub fn reduction(width: u32, height: u32, min_side: Option<u32>) -> u32 {
    let Some(min_side) = min_side else { return 1 };
    let short = width.min(height);
    FACTORS.into_iter().find(|f| short / f >= min_side.max(1)).unwrap_or(1)
}

/// BT.601 limited range to full-range RGB in 16.16 fixed point:
/// 255/219 for Y; 255/224 × (1.402, 0.344136, 0.714136, 1.772) for chroma.
const Y_GAIN: i32 = 76309; // 1.164384 * 65536
const V_TO_R: i32 = 104597; // 1.596027
const U_TO_G: i32 = 25675; // 0.391762
const V_TO_G: i32 = 53279; // 0.812968
const U_TO_B: i32 = 132201; // 2.017232

#[inline(always)]
fn clamp8(v: i32) -> u8 {
    (v >> 16).clamp(0, 255) as u8
}

/// The chroma part of BT.601 limited-range YUV to RGB, shared by the pixels
/// a chroma sample serves: what is added to the luma term for R, G and B.
#[derive(Clone, Copy)]
struct Chroma(i32, i32, i32);

impl Chroma {
    #[inline(always)]
    fn new(u: u8, v: u8) -> Chroma {
        let (d, e) = (u as i32 - 128, v as i32 - 128);
        Chroma(V_TO_R * e, -U_TO_G * d - V_TO_G * e, U_TO_B * d)
    }

    /// Writes the RGB of luma `y` with this chroma into `out[..3]`.
    #[inline(always)]
    fn put(self, y: u8, out: &mut [u8]) {
        let c = (y as i32 - 16) * Y_GAIN + (1 << 15);
        out[0] = clamp8(c + self.0);
        out[1] = clamp8(c + self.1);
        out[2] = clamp8(c + self.2);
    }
}

#[cfg(test)]
fn yuv_to_rgb(y: u8, u: u8, v: u8, out: &mut [u8]) {
    Chroma::new(u, v).put(y, out)
}

/// One row of a raw frame: the bytes of its first plane and, for NV12, its
/// chroma row. Pixels go by pairs, which share their chroma; an odd width
/// leaves one pixel for the last, half-used pair.
fn convert_row(format: PixelFormat, row: &[u8], chroma: &[u8], width: usize, out: &mut [u8]) {
    let out = &mut out[..width * 3];
    let pairs = width / 2;
    match format {
        PixelFormat::Yuyv => {
            for (m, px) in row.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
                let c = Chroma::new(m[1], m[3]);
                c.put(m[0], &mut px[..3]);
                c.put(m[2], &mut px[3..]);
            }
            if width % 2 == 1 {
                let m = &row[pairs * 4..pairs * 4 + 4];
                Chroma::new(m[1], m[3]).put(m[0], &mut out[pairs * 6..]);
            }
        }
        PixelFormat::Nv12 => {
            for ((y, uv), px) in row.chunks_exact(2).zip(chroma.chunks_exact(2)).zip(out.chunks_exact_mut(6)) {
                let c = Chroma::new(uv[0], uv[1]);
                c.put(y[0], &mut px[..3]);
                c.put(y[1], &mut px[3..]);
            }
            if width % 2 == 1 {
                Chroma::new(chroma[pairs * 2], chroma[pairs * 2 + 1]).put(row[width - 1], &mut out[pairs * 6..]);
            }
        }
        PixelFormat::Grey => {
            for (px, &y) in out.chunks_exact_mut(3).zip(&row[..width]) {
                px.fill(y);
            }
        }
        PixelFormat::Rgb24 => out.copy_from_slice(&row[..width * 3]),
        PixelFormat::Mjpeg => unreachable!("MJPEG frames are decoded, not converted by rows"),
    }
}

/// One output row of an f× reduction: `strip` holds f full-size rows of
/// `width` pixels; each output pixel is the rounded mean of an f×f block.
fn reduce_row(strip: &[u8], width: usize, f: usize, out: &mut [u8]) {
    match f {
        2 => reduce_row_by::<2>(strip, width, out),
        4 => reduce_row_by::<4>(strip, width, out),
        8 => reduce_row_by::<8>(strip, width, out),
        _ => unreachable!("reduction factors are those of FACTORS"),
    }
}

/// [`reduce_row`] for one factor, a constant so that the block loops unroll.
fn reduce_row_by<const F: usize>(strip: &[u8], width: usize, out: &mut [u8]) {
    let row_bytes = width * 3;
    let half = (F * F / 2) as u32;
    for (ox, px) in out.chunks_exact_mut(3).enumerate() {
        let mut sum = [0u32; 3];
        for r in 0..F {
            let start = r * row_bytes + ox * F * 3;
            for p in strip[start..start + F * 3].chunks_exact(3) {
                sum[0] += p[0] as u32;
                sum[1] += p[1] as u32;
                sum[2] += p[2] as u32;
            }
        }
        for (o, s) in px.iter_mut().zip(sum) {
            *o = ((s + half) / (F * F) as u32) as u8;
        }
    }
}

impl Converter {
    /// `min_side`: when set, the output may be smaller than the frame as
    /// long as its shorter side stays at least this long; the encoder's
    /// input size is what to pass.
    pub fn new(min_side: Option<u32>) -> Converter {
        Converter { min_side, ..Converter::default() }
    }

    pub fn convert(&mut self, frame: &Frame<'_>, out: &mut RgbImage) -> Result<(), ConvertError> {
        match frame.format {
            PixelFormat::Mjpeg => self.convert_jpeg(frame.data, out),
            _ => self.convert_raw(frame, out),
        }
    }

    fn convert_jpeg(&mut self, jpeg: &[u8], out: &mut RgbImage) -> Result<(), ConvertError> {
        let (w, h) = self.jpeg.decode(jpeg, &mut self.full)?;
        let f = reduction(w, h, self.min_side);
        if f == 1 {
            // The decoded frame is the output: trade buffers rather than
            // copy (both keep their capacity for the next frames).
            std::mem::swap(&mut self.full, &mut out.data);
            out.width = w;
            out.height = h;
            return Ok(());
        }
        let (ow, oh) = ((w / f) as usize, (h / f) as usize);
        let (w, f) = (w as usize, f as usize);
        out.data.resize(ow * oh * 3, 0);
        for (oy, out_row) in out.data.chunks_exact_mut(ow * 3).enumerate() {
            reduce_row(&self.full[oy * f * w * 3..(oy + 1) * f * w * 3], w, f, out_row);
        }
        out.width = ow as u32;
        out.height = oh as u32;
        Ok(())
    }

    fn convert_raw(&mut self, frame: &Frame<'_>, out: &mut RgbImage) -> Result<(), ConvertError> {
        let Frame { format, width, height, stride, data, .. } = *frame;
        if width == 0 || height == 0 {
            return Err(ConvertError::Empty { format, width, height });
        }
        if width > MAX_RAW_SIDE || height > MAX_RAW_SIDE {
            return Err(ConvertError::TooLarge { format, width, height });
        }
        // Bytes a row needs: NV12's chroma row holds U V for every pair of
        // pixels, one more byte than the luma row when the width is odd.
        let needed = match format {
            PixelFormat::Nv12 => width.next_multiple_of(2),
            _ => format.packed_stride(width),
        };
        if stride < needed {
            return Err(ConvertError::Stride { format, width, stride, needed: needed as u64 });
        }
        let plane = height as u64 * stride as u64;
        let expected = match format {
            PixelFormat::Nv12 => plane + height.div_ceil(2) as u64 * stride as u64,
            _ => plane,
        };
        if (data.len() as u64) < expected {
            return Err(ConvertError::BufferSize { format, width, height, stride, expected, actual: data.len() });
        }
        let (w, stride) = (width as usize, stride as usize);
        let (luma, chroma) = data.split_at(plane as usize);
        let row = |y: usize| &luma[y * stride..(y + 1) * stride];
        let chroma_row = |y: usize| match format {
            PixelFormat::Nv12 => &chroma[(y / 2) * stride..(y / 2 + 1) * stride],
            _ => &[][..],
        };
        let f = reduction(width, height, self.min_side) as usize;
        let (ow, oh) = (w / f, height as usize / f);
        out.data.resize(ow * oh * 3, 0);
        out.width = ow as u32;
        out.height = oh as u32;
        if f == 1 {
            for (y, out_row) in out.data.chunks_exact_mut(w * 3).enumerate() {
                convert_row(format, row(y), chroma_row(y), w, out_row);
            }
            return Ok(());
        }
        self.full.resize(f * w * 3, 0);
        for (oy, out_row) in out.data.chunks_exact_mut(ow * 3).enumerate() {
            for (i, strip_row) in self.full.chunks_exact_mut(w * 3).enumerate() {
                let y = oy * f + i;
                convert_row(format, row(y), chroma_row(y), w, strip_row);
            }
            reduce_row(&self.full, w, f, out_row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_keeps_the_short_side_at_least_min_side() {
        assert_eq!(reduction(1280, 720, Some(224)), 2);
        assert_eq!(reduction(640, 480, Some(224)), 2);
        assert_eq!(reduction(1920, 1080, Some(224)), 4);
        assert_eq!(reduction(3840, 2160, Some(224)), 8);
        assert_eq!(reduction(400, 300, Some(224)), 1);
        assert_eq!(reduction(1280, 720, None), 1);
        assert_eq!(reduction(1280, 720, Some(0)), 8);
    }

    #[test]
    fn limited_range_extremes_map_to_full_range() {
        let mut px = [0u8; 3];
        yuv_to_rgb(16, 128, 128, &mut px);
        assert_eq!(px, [0, 0, 0]);
        yuv_to_rgb(235, 128, 128, &mut px);
        assert_eq!(px, [255, 255, 255]);
        yuv_to_rgb(126, 128, 128, &mut px);
        assert_eq!(px, [128, 128, 128]);
        // Pure red in BT.601 limited range: Y 81, U 90, V 240.
        yuv_to_rgb(81, 90, 240, &mut px);
        assert!(px[0] >= 254 && px[1] <= 1 && px[2] <= 1, "{px:?}");
    }

    #[test]
    fn grey_is_full_range() {
        // vivid's 75 % colour bar in GREY (Rec. 709 luma of 191): white,
        // yellow, ..., blue, black, as the kernel's driver delivered them.
        let row = [190u8, 176, 149, 136, 54, 40, 13, 0, 255];
        let frame = Frame {
            format: PixelFormat::Grey,
            width: row.len() as u32,
            height: 1,
            stride: row.len() as u32,
            data: &row,
            sequence: 0,
            timestamp: std::time::SystemTime::UNIX_EPOCH,
        };
        let mut out = RgbImage::new();
        Converter::new(None).convert(&frame, &mut out).unwrap();
        let expected: Vec<u8> = row.iter().flat_map(|&y| [y, y, y]).collect();
        assert_eq!(out.data, expected);
    }
}
