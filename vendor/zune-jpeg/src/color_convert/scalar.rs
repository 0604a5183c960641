/*
 * Copyright (c) 2023.
 *
 * This software is free software;
 *
 * You can redistribute it or modify it under terms of the MIT, Apache License or Zlib license
 */

use core::convert::TryInto;

// edgeclip's patch: YCbCr to RGB as libjpeg-turbo computes it (jdcolor.c,
// `build_ycc_rgb_table` and `ycc_rgb_convert`): 16-bit fixed point, red and
// blue rounded on their own, green's two products summed before one rounding.
// The upstream 14-bit version differed from it by 1 level.

/// Bits of fraction in the fixed-point coefficients (libjpeg's SCALEBITS).
const SCALEBITS: u32 = 16;
const ONE_HALF: i32 = 1 << (SCALEBITS - 1);
/// FIX(1.40200), FIX(1.77200), FIX(0.71414), FIX(0.34414): x * 65536 + 0.5.
const CR_R: i32 = 91881;
const CB_B: i32 = 116130;
const CR_G: i32 = 46802;
const CB_G: i32 = 22554;

/// Sixteen pixels: the clamped red, green and blue planes. Computed plane by
/// plane, lane by lane, so that the compiler vectorises it; the callers only
/// interleave.
#[inline(always)]
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn ycc_to_rgb_16(y: &[i16; 16], cb: &[i16; 16], cr: &[i16; 16]) -> [[u8; 16]; 3] {
    let mut rgb = [[0_u8; 16]; 3];
    for i in 0..16 {
        let (y, cb, cr) = (i32::from(y[i]), i32::from(cb[i]) - 128, i32::from(cr[i]) - 128);
        let r = y + ((CR_R * cr + ONE_HALF) >> SCALEBITS);
        let g = y + ((-CB_G * cb + ONE_HALF - CR_G * cr) >> SCALEBITS);
        let b = y + ((CB_B * cb + ONE_HALF) >> SCALEBITS);
        rgb[0][i] = r.clamp(0, 255) as u8;
        rgb[1][i] = g.clamp(0, 255) as u8;
        rgb[2][i] = b.clamp(0, 255) as u8;
    }
    rgb
}

/// Convert YCbCr to RGBA/BGRA
///
/// Converts to RGBA if const BGRA is false
///
/// Converts to BGRA if const BGRA is true
pub fn ycbcr_to_rgba_inner_16_scalar<const BGRA: bool>(
    y: &[i16; 16], cb: &[i16; 16], cr: &[i16; 16], output: &mut [u8], pos: &mut usize
) {
    ycbcr_to_rgba_inner_16_scalar_body::<BGRA>(y, cb, cr, output, pos);
}

/// The same, compiled for AVX2 (same integer arithmetic, same output).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
pub unsafe fn ycbcr_to_rgba_inner_16_avx2<const BGRA: bool>(
    y: &[i16; 16], cb: &[i16; 16], cr: &[i16; 16], output: &mut [u8], pos: &mut usize
) {
    ycbcr_to_rgba_inner_16_scalar_body::<BGRA>(y, cb, cr, output, pos);
}

#[inline(always)]
fn ycbcr_to_rgba_inner_16_scalar_body<const BGRA: bool>(
    y: &[i16; 16], cb: &[i16; 16], cr: &[i16; 16], output: &mut [u8], pos: &mut usize
) {
    let (_, output_position) = output.split_at_mut(*pos);

    // Convert into a slice with 64 elements for Rust to see we won't go out of bounds.
    let opt: &mut [u8; 64] = output_position
        .get_mut(0..64)
        .expect("Slice to small cannot write")
        .try_into()
        .unwrap();
    let [r, g, b] = ycc_to_rgb_16(y, cb, cr);
    for (i, out) in opt.chunks_exact_mut(4).enumerate() {
        if BGRA {
            out.copy_from_slice(&[b[i], g[i], r[i], 255]);
        } else {
            out.copy_from_slice(&[r[i], g[i], b[i], 255]);
        }
    }
    *pos += 64;
}

/// Convert YCbCr to RGB/BGR
///
/// Converts to RGB if const BGRA is false
///
/// Converts to BGR if const BGRA is true
pub fn ycbcr_to_rgb_inner_16_scalar<const BGRA: bool>(
    y: &[i16; 16], cb: &[i16; 16], cr: &[i16; 16], output: &mut [u8], pos: &mut usize
) {
    ycbcr_to_rgb_inner_16_scalar_body::<BGRA>(y, cb, cr, output, pos);
}

/// The same, compiled for AVX2 (same integer arithmetic, same output).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
pub unsafe fn ycbcr_to_rgb_inner_16_avx2<const BGRA: bool>(
    y: &[i16; 16], cb: &[i16; 16], cr: &[i16; 16], output: &mut [u8], pos: &mut usize
) {
    ycbcr_to_rgb_inner_16_scalar_body::<BGRA>(y, cb, cr, output, pos);
}

#[inline(always)]
fn ycbcr_to_rgb_inner_16_scalar_body<const BGRA: bool>(
    y: &[i16; 16], cb: &[i16; 16], cr: &[i16; 16], output: &mut [u8], pos: &mut usize
) {
    let (_, output_position) = output.split_at_mut(*pos);

    // Convert into a slice with 48 elements
    let opt: &mut [u8; 48] = output_position
        .get_mut(0..48)
        .expect("Slice to small cannot write")
        .try_into()
        .unwrap();
    let [r, g, b] = ycc_to_rgb_16(y, cb, cr);
    for (i, out) in opt.chunks_exact_mut(3).enumerate() {
        if BGRA {
            out.copy_from_slice(&[b[i], g[i], r[i]]);
        } else {
            out.copy_from_slice(&[r[i], g[i], b[i]]);
        }
    }

    // Increment pos
    *pos += 48;
}

pub fn ycbcr_to_grayscale(y: &[i16], width: usize, padded_width: usize, output: &mut [u8]) {
    for (y_in, out) in y
        .chunks_exact(padded_width)
        .zip(output.chunks_exact_mut(width))
    {
        for (y, out) in y_in.iter().zip(out.iter_mut()) {
            *out = *y as u8;
        }
    }
}
