/*
 * Copyright (c) 2023.
 *
 * This software is free software;
 *
 * You can redistribute it or modify it under terms of the MIT, Apache License or Zlib license
 */

//! edgeclip's patch: the chroma upsamplers, rewritten to give exactly what
//! libjpeg-turbo's "fancy" upsampling gives (`jdsample.c`:
//! `h2v1_fancy_upsample`, `h1v2_fancy_upsample`, `h2v2_fancy_upsample`).
//!
//! The upstream versions round after the vertical pass of 4:2:0 and use the
//! same rounding bias for both output samples; libjpeg-turbo keeps the
//! unrounded vertical sum and alternates the bias (1/2, 8/7) so that the
//! rounding errors do not pile up on one side. The difference reached 2
//! levels of chroma, and through the 1.772 Cb-to-blue gain 4 levels of RGB,
//! against the decoder that Pillow, ffmpeg and browsers use.

/// 4:2:2 — one row, twice as wide. `output[2i]` leans on the left
/// neighbour with bias 1, `output[2i + 1]` on the right with bias 2.
pub fn upsample_horizontal(
    input: &[i16], _ref: &[i16], _in_near: &[i16], _scratch: &mut [i16], output: &mut [i16]
) {
    assert_eq!(
        input.len() * 2,
        output.len(),
        "Input length is not half the size of the output length"
    );
    assert!(
        output.len() > 4 && input.len() > 2,
        "Too Short of a vector, cannot upsample"
    );

    let n = input.len();
    output[0] = input[0];
    output[1] = (input[0] * 3 + input[1] + 2) >> 2;

    for (output_window, input_window) in output[2..2 * n - 2]
        .chunks_exact_mut(2)
        .zip(input.windows(3))
    {
        let nearer = 3 * input_window[1];
        output_window[0] = (nearer + input_window[0] + 1) >> 2;
        output_window[1] = (nearer + input_window[2] + 2) >> 2;
    }

    output[2 * n - 2] = (3 * input[n - 1] + input[n - 2] + 1) >> 2;
    output[2 * n - 1] = input[n - 1];
}

/// 4:4:0 — two rows from one. `in_near` is the row above, `in_far` the row
/// below; the upper output row rounds with bias 1, the lower with bias 2.
pub fn upsample_vertical(
    input: &[i16], in_near: &[i16], in_far: &[i16], _scratch_space: &mut [i16], output: &mut [i16]
) {
    assert_eq!(input.len() * 2, output.len());
    assert_eq!(in_near.len(), input.len());
    assert_eq!(in_far.len(), input.len());

    let middle = output.len() / 2;

    let (out_top, out_bottom) = output.split_at_mut(middle);

    for ((this, above), x) in input.iter().zip(in_near.iter()).zip(out_top) {
        *x = (3 * this + above + 1) >> 2;
    }
    for ((this, below), x) in input.iter().zip(in_far.iter()).zip(out_bottom) {
        *x = (3 * this + below + 2) >> 2;
    }
}

/// 4:2:0 — two rows, each twice as wide. The vertical pass keeps the
/// unrounded sum `3 * this + neighbour` (at most 4 × 255, so i16 is ample);
/// the horizontal pass weighs those sums 3:1 and divides by 16 once, with
/// bias 8 on the left sample and 7 on the right.
pub fn upsample_hv(
    input: &[i16], in_near: &[i16], in_far: &[i16], scratch_space: &mut [i16], output: &mut [i16]
) {
    let n = input.len();
    assert_eq!(n * 4, output.len());
    assert!(n >= 2, "Too Short of a vector, cannot upsample");
    assert_eq!(in_near.len(), n);
    assert_eq!(in_far.len(), n);
    assert!(n <= scratch_space.len());

    let column_sums = &mut scratch_space[..n];
    let (upper, lower) = output.split_at_mut(2 * n);

    for (neighbour, out) in [(in_near, upper), (in_far, lower)] {
        for ((sum, this), other) in column_sums.iter_mut().zip(input).zip(neighbour) {
            *sum = 3 * this + other;
        }
        let sums = &*column_sums;

        out[0] = (sums[0] * 4 + 8) >> 4;
        out[1] = (sums[0] * 3 + sums[1] + 7) >> 4;
        for (out_pair, window) in out[2..2 * n - 2].chunks_exact_mut(2).zip(sums.windows(3)) {
            let nearer = 3 * window[1];
            out_pair[0] = (nearer + window[0] + 8) >> 4;
            out_pair[1] = (nearer + window[2] + 7) >> 4;
        }
        out[2 * n - 2] = (sums[n - 1] * 3 + sums[n - 2] + 8) >> 4;
        out[2 * n - 1] = (sums[n - 1] * 4 + 7) >> 4;
    }
}

pub fn upsample_generic(
    input: &[i16], _in_near: &[i16], _in_far: &[i16], _scratch_space: &mut [i16],
    output: &mut [i16]
) {
    // use nearest sample
    let difference = output.len() / input.len();
    if difference > 0 {
        // nearest neighbour
        for (input, chunk_output) in input.iter().zip(output.chunks_exact_mut(difference)) {
            chunk_output.iter_mut().for_each(|x| *x = *input);
        }
    }
}
