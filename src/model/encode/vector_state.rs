//! Between two nodes of a plan, leave the x86 vector registers clean.
//!
//! tract's AVX2 and AVX-512 matrix kernels return with the upper halves of
//! the vector registers still dirty (no `vzeroupper`). Everything compiled
//! for the x86-64 baseline, which is SSE2 — our dynamic quantization and
//! many of tract's own element-wise ops — then pays for each SSE
//! instruction a merge with those upper halves (Intel's AVX–SSE transition
//! penalty). Measured on a Xeon with AVX-512 in a TinyCLIP frame: quantizing
//! a [197, 1024] activation took 990 µs after a kernel and 204 µs after a
//! `vzeroupper`.
//!
//! [`eval_node`] evaluates one node as tract would, then clears the upper
//! halves, which costs one instruction. It is what [`super::EncoderSession`]
//! and the text encoder run their plans with. Elsewhere it is tract's eval.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{EvalContext, OpState};

/// tract's evaluation of one node, followed by [`clear_upper_halves`].
pub fn eval_node(
    ctx: &EvalContext,
    state: Option<&mut (dyn OpState + 'static)>,
    node: &TypedNode,
    inputs: TVec<TValue>,
) -> TractResult<TVec<TValue>> {
    let outputs = tract_onnx::tract_core::plan::eval(ctx, state, node, inputs);
    clear_upper_halves();
    outputs
}

/// `vzeroupper` where the CPU has AVX; nothing elsewhere.
#[inline]
pub fn clear_upper_halves() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx") {
        #[target_feature(enable = "avx")]
        unsafe fn zero_upper() {
            std::arch::x86_64::_mm256_zeroupper();
        }
        // SAFETY: the CPU has AVX (checked above), and vzeroupper only
        // zeroes the upper halves of registers no Rust value lives in
        // between two node evaluations.
        unsafe { zero_upper() };
    }
}
