/*
 * Copyright (c) 2023.
 *
 * This software is free software;
 *
 * You can redistribute it or modify it under terms of the MIT, Apache License or Zlib license
 */

//! Platform independent IDCT algorithm
//!
//! Not as fast as AVX one.

#[inline(always)]
fn wa(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

#[inline(always)]
fn ws(a: i32, b: i32) -> i32 {
    a.wrapping_sub(b)
}

#[inline(always)]
fn wm(a: i32, b: i32) -> i32 {
    a.wrapping_mul(b)
}

#[inline]
pub fn idct_int_1x1(in_vector: &mut [i32; 64], mut out_vector: &mut [i16], stride: usize) {
    let coeff = ((wa(wa(in_vector[0], 4), 1024) >> 3).clamp(0, 255)) as i16;

    out_vector[..8].fill(coeff);
    for _ in 0..7 {
        out_vector = &mut out_vector[stride..];
        out_vector[..8].fill(coeff);

    }
}

// edgeclip's patch: the 8x8 inverse DCT is libjpeg-turbo's `jpeg_idct_islow`
// (jidctint.c), the decoder's default "slow but accurate" integer method, so
// that our samples equal those of the decoder Pillow, ffmpeg and browsers
// use. The upstream IDCT (stb_image's, 12-bit constants) differed from it by 1
// level in ~0.5 % of samples, which became 3 levels of blue after colour
// conversion.

/// Bits of fraction in the multiplier constants.
const CONST_BITS: u32 = 13;
/// Extra bits of precision kept between the two passes.
const PASS1_BITS: u32 = 2;

const FIX_0_298631336: i32 = 2446;
const FIX_0_390180644: i32 = 3196;
const FIX_0_541196100: i32 = 4433;
const FIX_0_765366865: i32 = 6270;
const FIX_0_899976223: i32 = 7373;
const FIX_1_175875602: i32 = 9633;
const FIX_1_501321110: i32 = 12299;
const FIX_1_847759065: i32 = 15137;
const FIX_1_961570560: i32 = 16069;
const FIX_2_053119869: i32 = 16819;
const FIX_2_562915447: i32 = 20995;
const FIX_3_072711026: i32 = 25172;

/// Round and shift right, as libjpeg's `DESCALE`.
#[inline(always)]
fn descale(x: i32, n: u32) -> i32 {
    wa(x, 1 << (n - 1)) >> n
}

/// Eight 8-point inverse DCTs side by side: the even and odd halves of
/// jidctint.c applied to `v[k][lane]` for every lane, returning the eight
/// outputs per lane before descaling. Written lane-wise so that the compiler
/// turns each step into vector instructions (SSE2, NEON).
#[inline(always)]
fn idct_1d_x8(v: &[[i32; 8]; 8]) -> [[i32; 8]; 8] {
    let mut out = [[0_i32; 8]; 8];
    for lane in 0..8 {
        // Even part.
        let (z2, z3) = (v[2][lane], v[6][lane]);
        let z1 = wm(wa(z2, z3), FIX_0_541196100);
        let tmp2 = wa(z1, wm(z3, -FIX_1_847759065));
        let tmp3 = wa(z1, wm(z2, FIX_0_765366865));
        let tmp0 = wa(v[0][lane], v[4][lane]) << CONST_BITS;
        let tmp1 = ws(v[0][lane], v[4][lane]) << CONST_BITS;
        let tmp10 = wa(tmp0, tmp3);
        let tmp13 = ws(tmp0, tmp3);
        let tmp11 = wa(tmp1, tmp2);
        let tmp12 = ws(tmp1, tmp2);

        // Odd part.
        let (mut tmp0, mut tmp1, mut tmp2, mut tmp3) = (v[7][lane], v[5][lane], v[3][lane], v[1][lane]);
        let z1 = wa(tmp0, tmp3);
        let z2 = wa(tmp1, tmp2);
        let z3 = wa(tmp0, tmp2);
        let z4 = wa(tmp1, tmp3);
        let z5 = wm(wa(z3, z4), FIX_1_175875602);
        tmp0 = wm(tmp0, FIX_0_298631336);
        tmp1 = wm(tmp1, FIX_2_053119869);
        tmp2 = wm(tmp2, FIX_3_072711026);
        tmp3 = wm(tmp3, FIX_1_501321110);
        let z1 = wm(z1, -FIX_0_899976223);
        let z2 = wm(z2, -FIX_2_562915447);
        let z3 = wa(wm(z3, -FIX_1_961570560), z5);
        let z4 = wa(wm(z4, -FIX_0_390180644), z5);
        tmp0 = wa(tmp0, wa(z1, z3));
        tmp1 = wa(tmp1, wa(z2, z4));
        tmp2 = wa(tmp2, wa(z2, z3));
        tmp3 = wa(tmp3, wa(z1, z4));

        out[0][lane] = wa(tmp10, tmp3);
        out[1][lane] = wa(tmp11, tmp2);
        out[2][lane] = wa(tmp12, tmp1);
        out[3][lane] = wa(tmp13, tmp0);
        out[4][lane] = ws(tmp13, tmp0);
        out[5][lane] = ws(tmp12, tmp1);
        out[6][lane] = ws(tmp11, tmp2);
        out[7][lane] = ws(tmp10, tmp3);
    }
    out
}

/// The full 8x8 inverse DCT of dequantized coefficients (row-major), written
/// level-shifted and clamped to 0..=255 as 8 rows `stride` apart. The
/// coefficients are only read, so blocks that were zero stay zero (the
/// contract of the 4x4 variant).
///
/// libjpeg-turbo skips the arithmetic for a column (pass 1) or row (pass 2)
/// whose AC terms are zero; the arithmetic gives the same numbers there, so
/// this version always does it, eight lanes at a time.
pub fn idct_int(in_vector: &mut [i32; 64], out_vector: &mut [i16], stride: usize) {
    idct_islow(in_vector, out_vector, stride);
}

/// [`idct_int`] compiled for AVX2 (the same integer arithmetic, so the same
/// output, in 8-lane registers).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
pub unsafe fn idct_int_avx2(in_vector: &mut [i32; 64], out_vector: &mut [i16], stride: usize) {
    idct_islow(in_vector, out_vector, stride);
}

#[inline(always)]
#[allow(clippy::cast_possible_truncation)]
fn idct_islow(in_vector: &mut [i32; 64], out_vector: &mut [i16], stride: usize) {
    if in_vector[1..] == [0_i32; 63] {
        return idct_int_1x1(in_vector, out_vector, stride);
    }

    // Pass 1: the columns (lane = column), keeping PASS1_BITS of fraction.
    let rows: [[i32; 8]; 8] = core::array::from_fn(|r| in_vector[r * 8..r * 8 + 8].try_into().unwrap());
    let pass1 = idct_1d_x8(&rows);
    // Transposed, so that pass 2 runs lane = row.
    let mut columns = [[0_i32; 8]; 8];
    for (r, row) in pass1.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            columns[c][r] = descale(*value, CONST_BITS - PASS1_BITS);
        }
    }

    // Pass 2: the rows, removing the pass-1 fraction and the factor 8 of the
    // transform, then the +128 level shift and libjpeg's range limit.
    // `pass2[c][r]` is output row r, column c.
    let pass2 = idct_1d_x8(&columns);
    for r in 0..8 {
        let mut tmp = [0; 8];
        let out: &mut [i16; 8] = out_vector
            .get_mut(r * stride..r * stride + 8)
            .unwrap_or(&mut tmp)
            .try_into()
            .unwrap();
        for (c, o) in out.iter_mut().enumerate() {
            *o = clamp(wa(descale(pass2[c][r], CONST_BITS + PASS1_BITS + 3), 128));
        }
    }
}

/// Clamp values between 0 and 255
#[inline]
#[allow(clippy::cast_possible_truncation)]
fn clamp(a: i32) -> i16 {
    a.clamp(0, 255) as i16
}
