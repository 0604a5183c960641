//! CLIP preprocessing, exactly as the bundle's manifest says: an RGB8 frame
//! becomes the image encoder's NCHW f32 input.
//!
//! The steps are those of transformers' Pillow-backed `CLIPImageProcessor`
//! (`CLIPImageProcessorPil` in transformers 5), which OpenAI's CLIP also
//! follows: resize so that the shortest edge is `resize_shortest_edge` with
//! Pillow's bicubic filter, rounded back to 8 bits; center crop `size`×`size`; scale to [0, 1]; subtract the mean and
//! divide by the std per channel. The resize is [`resample`], Pillow's
//! algorithm reproduced exactly and restricted to the pixels the crop keeps.
//! Scaling and normalization are one lookup table per channel.
//!
//! A [`Preprocessor`] owns its buffers: once it has seen a frame size, later
//! frames of that size allocate nothing.

pub mod resample;

use crate::model::bundle::{ImageSpec, ResizeFilter};
use resample::Resampler;

/// Longest edge accepted after the shortest-edge resize, as a multiple of the
/// crop: a 16:1 panorama still works, a corrupt 10000×1 header does not make
/// us allocate gigabytes.
const MAX_ASPECT: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("frame is {width}x{height}: an empty frame cannot be preprocessed")]
    Empty { width: u32, height: u32 },
    #[error("frame buffer holds {actual} bytes but a {width}x{height} RGB8 frame needs {expected}")]
    BufferSize { width: u32, height: u32, expected: usize, actual: usize },
    #[error("frame is {width}x{height}: more elongated than {MAX_ASPECT}:1, which no camera delivers")]
    Elongated { width: u32, height: u32 },
    #[error("output tensor holds {actual} values but the encoder input needs {expected}")]
    OutputSize { expected: usize, actual: usize },
}

/// A borrowed, tightly packed RGB8 frame (no row padding).
#[derive(Debug, Clone, Copy)]
pub struct RgbFrame<'a> {
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

impl<'a> RgbFrame<'a> {
    pub fn new(width: u32, height: u32, data: &'a [u8]) -> Result<RgbFrame<'a>, PreprocessError> {
        if width == 0 || height == 0 {
            return Err(PreprocessError::Empty { width, height });
        }
        let expected = width as usize * height as usize * 3;
        if data.len() != expected {
            return Err(PreprocessError::BufferSize { width, height, expected, actual: data.len() });
        }
        Ok(RgbFrame { width, height, data })
    }
}

/// Size of the image after the shortest-edge resize, as transformers'
/// `get_resize_output_image_size` computes it: the long edge is
/// `int(shortest * long / short)`, truncated.
pub fn resized_size(width: u32, height: u32, shortest: u32) -> (u32, u32) {
    // In u64 and saturated, so that an absurd frame size cannot wrap around
    // into a plausible one (the caller rejects the result as too elongated).
    let long_edge = |long: u32, short: u32| (shortest as u64 * long as u64 / short as u64).min(u32::MAX as u64) as u32;
    if width <= height {
        (shortest, long_edge(height, width))
    } else {
        (long_edge(width, height), shortest)
    }
}

/// Top-left corner of a center crop, as transformers' `center_crop`:
/// `(resized - crop) // 2`.
pub fn crop_origin(resized: (u32, u32), size: u32) -> (u32, u32) {
    ((resized.0 - size) / 2, (resized.1 - size) / 2)
}

pub struct Preprocessor {
    size: u32,
    shortest_edge: u32,
    filter: ResizeFilter,
    resampler: Resampler,
    /// The RGB8 crop after the resize, reused from frame to frame.
    cropped: Vec<u8>,
    /// u8 value → normalized f32, per channel.
    lut: [[f32; 256]; 3],
}

impl Preprocessor {
    pub fn new(spec: &ImageSpec) -> Preprocessor {
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                // The same arithmetic as transformers' processor: rescale
                // by 1/255 in f64, round to f32, then (x - mean) / std in
                // f32. Computing the rescale in f32 instead differs by one
                // ulp for some values.
                let x = (v as f64 * (1.0f64 / 255.0)) as f32;
                *out = (x - spec.mean[c]) / spec.std[c];
            }
        }
        Preprocessor {
            size: spec.size,
            shortest_edge: spec.resize_shortest_edge,
            filter: spec.resize_filter,
            resampler: Resampler::new(),
            cropped: vec![0; spec.size as usize * spec.size as usize * 3],
            lut,
        }
    }

    /// Number of f32 values in the encoder input: 3 × size × size.
    pub fn output_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Writes the NCHW tensor of `frame` into `out` (length [`output_len`]).
    ///
    /// [`output_len`]: Preprocessor::output_len
    pub fn run(&mut self, frame: RgbFrame<'_>, out: &mut [f32]) -> Result<(), PreprocessError> {
        if out.len() != self.output_len() {
            return Err(PreprocessError::OutputSize { expected: self.output_len(), actual: out.len() });
        }
        let (rw, rh) = resized_size(frame.width, frame.height, self.shortest_edge);
        if rw.max(rh) > self.shortest_edge.saturating_mul(MAX_ASPECT) {
            return Err(PreprocessError::Elongated { width: frame.width, height: frame.height });
        }
        let origin = crop_origin((rw, rh), self.size);
        self.resampler.resize_crop(frame, (rw, rh), self.filter, origin, self.size, &mut self.cropped);

        let s = self.size as usize;
        let (r_out, rest) = out.split_at_mut(s * s);
        let (g_out, b_out) = rest.split_at_mut(s * s);
        for (i, px) in self.cropped.chunks_exact(3).enumerate() {
            r_out[i] = self.lut[0][px[0] as usize];
            g_out[i] = self.lut[1][px[1] as usize];
            b_out[i] = self.lut[2][px[2] as usize];
        }
        Ok(())
    }
}
