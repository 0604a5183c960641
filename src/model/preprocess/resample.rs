//! Pillow's resampling, bit for bit, computing only the pixels a center
//! crop keeps.
//!
//! CLIP's reference preprocessing resizes with Pillow, so matching Pillow's
//! integer arithmetic exactly removes a source of drift between what the
//! model was trained on and what it sees here. The algorithm is Pillow's
//! `ImagingResample` for 8-bit images: per output column (then row) a
//! window of source pixels with filter weights computed in f64, normalized
//! to sum to one, then rounded to 22-bit fixed point; a horizontal pass into
//! an 8-bit intermediate, then a vertical pass. Each output pixel depends
//! only on its own window, so the columns and rows that the crop discards
//! are simply not computed, which gives the same values as resizing the
//! whole frame and cropping afterwards.
//!
//! The weight tables depend only on the frame size, so they are computed
//! once and kept while the size stays; a warm frame allocates nothing.

use super::RgbFrame;
use crate::model::bundle::ResizeFilter;

/// Fixed-point precision of the weights, as Pillow's `PRECISION_BITS` for
/// 8-bit images: 32 bits less 8 for the pixel and 2 for overshoot, since
/// cubic weights can be negative or sum above one within a window.
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    // Keys' cubic convolution with a = -0.5, Pillow's BICUBIC.
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// The filter function and its support at scale 1.
fn filter_of(filter: ResizeFilter) -> (fn(f64) -> f64, f64) {
    match filter {
        ResizeFilter::Bicubic => (bicubic, 2.0),
        ResizeFilter::Bilinear => (bilinear, 1.0),
    }
}

/// Per output pixel along one axis: the first source pixel, how many
/// follow, and their fixed-point weights.
#[derive(Debug, Default, Clone)]
struct Weights {
    /// Slots reserved per output pixel in `k`.
    window: usize,
    start: Vec<u32>,
    len: Vec<u32>,
    k: Vec<i32>,
}

impl Weights {
    /// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for
    /// resizing `in_size` source pixels to `out_size`.
    fn compute(in_size: u32, out_size: u32, filter: ResizeFilter, into: &mut Weights) {
        let (f, base_support) = filter_of(filter);
        // Pillow passes the box edges as f32 and subtracts them in f32
        // before widening; for a whole-image box that is exact.
        let scale = (in_size as f32 - 0.0f32) as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = base_support * filter_scale;
        let window = support.ceil() as usize * 2 + 1;
        into.window = window;
        into.start.clear();
        into.len.clear();
        into.k.clear();
        into.k.resize(window * out_size as usize, 0);
        let mut weights = vec![0f64; window];
        let inv = 1.0 / filter_scale;
        for xx in 0..out_size as usize {
            let center = 0.0 + (xx as f64 + 0.5) * scale;
            // `as i64` truncates toward zero like C's (int) cast.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
            let n = xmax.max(0) as usize;
            let mut sum = 0.0;
            for (x, w) in weights.iter_mut().enumerate().take(n) {
                *w = f((x as f64 + xmin as f64 - center + 0.5) * inv);
                sum += *w;
            }
            let k = &mut into.k[xx * window..][..window];
            for x in 0..n {
                let w = if sum != 0.0 { weights[x] / sum } else { weights[x] };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                k[x] = if w < 0.0 { (-0.5 + scaled) as i32 } else { (0.5 + scaled) as i32 };
            }
            into.start.push(xmin as u32);
            into.len.push(n as u32);
        }
    }
}

/// Pillow's `clip8`: drop the fraction (rounding was added up front as
/// half a unit), clamp to a byte.
#[inline(always)]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Reusable state for resizing RGB8 frames of one size and center-cropping.
#[derive(Debug, Default)]
pub struct Resampler {
    /// (source width, source height, resized width, resized height) the
    /// weights were computed for.
    key: Option<(u32, u32, u32, u32, ResizeFilter)>,
    horizontal: Weights,
    vertical: Weights,
    /// Output of the horizontal pass: the source rows the crop needs, at the
    /// crop's width.
    intermediate: Vec<u8>,
}

impl Resampler {
    pub fn new() -> Resampler {
        Resampler::default()
    }

    /// Resizes the RGB8 image `frame` to `resized` (as Pillow's
    /// `Image.resize`) and writes the `crop`×`crop` window at `origin` of the
    /// result into `dst` (RGB8, `crop`×`crop`×3 bytes).
    pub fn resize_crop(
        &mut self,
        frame: RgbFrame<'_>,
        resized: (u32, u32),
        filter: ResizeFilter,
        origin: (u32, u32),
        crop: u32,
        dst: &mut [u8],
    ) {
        let (src, src_w, src_h) = (frame.data, frame.width, frame.height);
        let (rw, rh) = resized;
        let (left, top) = (origin.0 as usize, origin.1 as usize);
        let c = crop as usize;
        debug_assert!(left + c <= rw as usize && top + c <= rh as usize);
        debug_assert_eq!(src.len(), src_w as usize * src_h as usize * 3);
        debug_assert_eq!(dst.len(), c * c * 3);

        let key = (src_w, src_h, rw, rh, filter);
        if self.key != Some(key) {
            // Only when the frame size changes: a camera keeps its size.
            Weights::compute(src_w, rw, filter, &mut self.horizontal);
            Weights::compute(src_h, rh, filter, &mut self.vertical);
            self.key = Some(key);
        }
        let need_horizontal = rw != src_w;
        let need_vertical = rh != src_h;
        let src_stride = src_w as usize * 3;

        // Source rows the kept output rows read.
        let (first_row, last_row) = if need_vertical {
            let v = &self.vertical;
            let first = v.start[top] as usize;
            let last = (v.start[top + c - 1] + v.len[top + c - 1]) as usize;
            (first, last)
        } else {
            (top, top + c)
        };

        // Horizontal pass (or a plain copy of the kept columns) into the
        // intermediate rows.
        let rows = last_row - first_row;
        let needed = rows * c * 3;
        if self.intermediate.len() < needed {
            self.intermediate.resize(needed, 0);
        }
        let inter = &mut self.intermediate[..needed];
        for (r, out_row) in inter.chunks_exact_mut(c * 3).enumerate() {
            let src_row = &src[(first_row + r) * src_stride..][..src_stride];
            if need_horizontal {
                horizontal_row(src_row, &self.horizontal, left, out_row);
            } else {
                out_row.copy_from_slice(&src_row[left * 3..][..c * 3]);
            }
        }

        // Vertical pass (or a copy) into the destination.
        for (yy, out_row) in dst.chunks_exact_mut(c * 3).enumerate() {
            if need_vertical {
                let y = top + yy;
                let v = &self.vertical;
                let start = v.start[y] as usize - first_row;
                let n = v.len[y] as usize;
                let k = &v.k[y * v.window..][..n];
                vertical_row(inter, c * 3, start, k, out_row);
            } else {
                out_row.copy_from_slice(&inter[yy * c * 3..][..c * 3]);
            }
        }
    }
}

/// One row of the horizontal pass: output columns `left..left + out.len()/3`,
/// window by window as Pillow does it.
fn horizontal_row(src_row: &[u8], w: &Weights, left: usize, out: &mut [u8]) {
    for (i, px) in out.chunks_exact_mut(3).enumerate() {
        let xx = left + i;
        let start = w.start[xx] as usize;
        let n = w.len[xx] as usize;
        let k = &w.k[xx * w.window..][..n];
        let window = &src_row[start * 3..][..n * 3];
        let (mut r, mut g, mut b) = (HALF, HALF, HALF);
        for (p, &kx) in window.chunks_exact(3).zip(k) {
            r += p[0] as i32 * kx;
            g += p[1] as i32 * kx;
            b += p[2] as i32 * kx;
        }
        px[0] = clip8(r);
        px[1] = clip8(g);
        px[2] = clip8(b);
    }
}

/// One row of the vertical pass: every value of the output row is the
/// weighted sum of the same column in `k.len()` intermediate rows. Rows are
/// accumulated one after another so that the inner loop runs along a row,
/// which vectorizes.
#[inline]
fn vertical_row(inter: &[u8], stride: usize, start: usize, k: &[i32], out: &mut [u8]) {
    // 224 × 3 values; a fixed stack array keeps this allocation-free for
    // any crop up to MAX_ROW (larger crops fall back to chunks).
    const MAX_ROW: usize = 1024;
    for (chunk_ix, out_chunk) in out.chunks_mut(MAX_ROW).enumerate() {
        let offset = chunk_ix * MAX_ROW;
        let mut acc = [HALF; MAX_ROW];
        let acc = &mut acc[..out_chunk.len()];
        for (y, &ky) in k.iter().enumerate() {
            let row = &inter[(start + y) * stride + offset..][..out_chunk.len()];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as i32 * ky;
            }
        }
        for (o, &a) in out_chunk.iter_mut().zip(acc.iter()) {
            *o = clip8(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        let mut w = Weights::default();
        Weights::compute(640, 298, ResizeFilter::Bicubic, &mut w);
        for xx in 0..298 {
            let sum: i32 = w.k[xx * w.window..][..w.len[xx] as usize].iter().sum();
            // Each weight is rounded separately: the sum is within one unit
            // per tap of 1.0.
            assert!((sum - (1 << PRECISION_BITS)).abs() <= w.window as i32, "column {xx}: {sum}");
        }
    }
}
