//! Dynamic quantization of activations, at the speed of the products it feeds.
//!
//! A dynamically quantized encoder turns each activation into u8 before
//! every integer matrix product (ONNX `DynamicQuantizeLinear`): find the
//! range, derive a scale and zero point, then `round(x / scale) + zero`,
//! rounding ties to even. tract's `DynamicQuantizeLinearU8` does this one
//! element at a time, and on x86-64 and armv7 builds (no SSE4.1, no VRINTN
//! in the baseline) each `round_ties_even` is a call into libm: about 16 ns
//! an element, 2.5 ms for one [50, 3072] MLP activation of ViT-B/32, a third
//! of that encoder's frame measured with tract 0.23.
//!
//! [`speed_up_dynamic_quantization`] swaps each such node of an optimized
//! plan for [`DynamicQuantizeU8`], which computes the same bytes, scale and
//! zero point (the same division, the same rounding; checked against
//! tract's op by the tests below) in loops the compiler vectorizes, with
//! ties-to-even rounding done by the float unit's own default rounding.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// tract's name for the op this module replaces.
const TRACT_OP_NAME: &str = "DynamicQuantizeLinearU8";

/// Replaces every `DynamicQuantizeLinearU8` of an optimized model with
/// [`DynamicQuantizeU8`]; returns how many were replaced.
pub fn speed_up_dynamic_quantization(model: &mut TypedModel) -> TractResult<usize> {
    let ids: Vec<usize> = model.nodes().iter().filter(|n| n.op.name() == TRACT_OP_NAME).map(|n| n.id).collect();
    for &id in &ids {
        let node = model.node(id);
        let inputs: Vec<&TypedFact> = node.inputs.iter().map(|i| model.outlet_fact(*i)).collect::<TractResult<_>>()?;
        // Same outputs, same types: the swap changes nothing downstream.
        let ours = DynamicQuantizeU8.output_facts(&inputs)?;
        let theirs: Vec<&TypedFact> = node.outputs.iter().map(|o| &o.fact).collect();
        if ours.len() != theirs.len() || ours.iter().zip(&theirs).any(|(a, b)| a.datum_type != b.datum_type) {
            bail!("node '{}': unexpected outputs of {TRACT_OP_NAME}: {theirs:?}", node.name);
        }
        model.node_mut(id).op = Box::new(DynamicQuantizeU8);
    }
    Ok(ids.len())
}

/// ONNX `DynamicQuantizeLinear` with a u8 output: outputs the quantized
/// tensor, its scale (f32) and its zero point (u8).
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
pub struct DynamicQuantizeU8;

impl Op for DynamicQuantizeU8 {
    fn name(&self) -> StaticName {
        "DynamicQuantizeU8".into()
    }

    op_as_typed_op!();
}

impl EvalOp for DynamicQuantizeU8 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].try_as_plain_ram()?;
        let xs = input.as_slice::<f32>()?;
        let (scale, zero_point) = scale_and_zero_point(xs);
        let mut out = unsafe { Tensor::uninitialized_dt(u8::datum_type(), inputs[0].shape())? };
        quantize(xs, scale, zero_point, out.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?);
        Ok(tvec!(out.into_tvalue(), tensor0(scale).into_tvalue(), tensor0(zero_point).into_tvalue()))
    }
}

impl TypedOp for DynamicQuantizeU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        if inputs.len() != 1 || inputs[0].datum_type != f32::datum_type() {
            bail!("DynamicQuantizeU8 takes one f32 input, got {inputs:?}");
        }
        let mut quantized = inputs[0].clone();
        quantized.datum_type = u8::datum_type();
        quantized.konst = None;
        quantized.uniform = None;
        Ok(tvec!(quantized, f32::fact([0usize; 0]), u8::fact([0usize; 0])))
    }

    as_op!();
}

/// Lanes of the min/max scan: eight independent accumulators, so that the
/// loop is a vector min and max per eight values rather than a chain.
const LANES: usize = 8;

/// The range of `xs` widened to include 0, as ONNX defines it, then
/// `scale = (max - min) / 255` and `zero = round_ties_even(-min / scale)`
/// clamped to [0, 255]. NaNs are skipped, as in tract's fold.
pub fn scale_and_zero_point(xs: &[f32]) -> (f32, u8) {
    let mut lo = [0f32; LANES];
    let mut hi = [0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for i in 0..LANES {
            // `<`/`>` with a select: a NaN compares false and is skipped.
            lo[i] = if chunk[i] < lo[i] { chunk[i] } else { lo[i] };
            hi[i] = if chunk[i] > hi[i] { chunk[i] } else { hi[i] };
        }
    }
    let mut min = lo.iter().fold(0f32, |a, &b| if b < a { b } else { a });
    let mut max = hi.iter().fold(0f32, |a, &b| if b > a { b } else { a });
    for &x in chunks.remainder() {
        if x < min {
            min = x;
        } else if x > max {
            max = x;
        }
    }
    let scale = (max - min) / u8::MAX as f32;
    let zero_point = (-min / scale).round_ties_even().clamp(0.0, u8::MAX as f32) as u8;
    (scale, zero_point)
}

/// 1.5 × 2^23: adding it to a float of magnitude below 2^22 gives a float
/// in [2^23, 2^24), where the unit is the last mantissa bit; so the float
/// unit rounds to an integer, ties to even (its default mode), and the
/// integer is the difference of the two bit patterns.
const ROUNDING_MAGIC: f32 = 12_582_912.0;

/// `ys[i] = clamp(round_ties_even(xs[i] / scale) + zero_point, 0, 255)`.
///
/// Clamping before rounding is the same as after, since the bounds are
/// integers; it keeps the rounding inside the magic constant's range and
/// the result in a byte. A NaN (from a NaN input, or 0/0 when every input
/// is 0) gives the zero point, as tract's saturating `NaN as i32 == 0`
/// does. Every step is a vector instruction on SSE2 and NEON.
pub fn quantize(xs: &[f32], scale: f32, zero_point: u8, ys: &mut [u8]) {
    let zero = zero_point as i32;
    let (low, high) = (-(zero as f32), (u8::MAX as i32 - zero) as f32);
    let magic_bits = ROUNDING_MAGIC.to_bits() as i32;
    for (x, y) in xs.iter().zip(ys.iter_mut()) {
        // The same division as the ONNX reference: `x * (1 / scale)` would
        // round some values to the neighbouring integer.
        let v = x / scale;
        let v = if v.is_nan() { 0.0 } else { v.clamp(low, high) };
        let rounded = (v + ROUNDING_MAGIC).to_bits() as i32 - magic_bits;
        *y = (rounded + zero) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tract's own op, as a reference: the original `DynamicQuantizeLinear`
    /// op of an ONNX model, evaluated on `xs`.
    fn tract_reference(xs: &[f32]) -> (Vec<u8>, f32, u8) {
        let mut model = tract_onnx::onnx().parse(&quantize_model_proto(), None).unwrap().model;
        model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), [xs.len()])).unwrap();
        let typed = model.into_typed().unwrap();
        assert!(typed.nodes().iter().any(|n| n.op.name() == TRACT_OP_NAME), "tract's op is not in the model");
        let outputs = typed.into_runnable().unwrap().run(tvec!(tensor1(xs).into_tvalue())).unwrap();
        (
            outputs[0].try_as_plain_ram().unwrap().as_slice::<u8>().unwrap().to_vec(),
            *outputs[1].try_as_plain_ram().unwrap().to_scalar::<f32>().unwrap(),
            *outputs[2].try_as_plain_ram().unwrap().to_scalar::<u8>().unwrap(),
        )
    }

    /// A one-node ONNX graph: `DynamicQuantizeLinear(x)` with a 1-D input.
    fn quantize_model_proto() -> tract_onnx::pb::ModelProto {
        use tract_onnx::pb::*;
        // elem_type 1 is ONNX's FLOAT; the shape is set on the parsed model.
        let float = TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: 1, shape: None })),
            ..Default::default()
        };
        let value =
            |name: &str| ValueInfoProto { name: name.into(), r#type: Some(float.clone()), ..Default::default() };
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    op_type: "DynamicQuantizeLinear".into(),
                    input: vec!["x".into()],
                    output: vec!["y".into(), "scale".into(), "zero".into()],
                    ..Default::default()
                }],
                input: vec![value("x")],
                output: vec![value("y"), value("scale"), value("zero")],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ours(xs: &[f32]) -> (Vec<u8>, f32, u8) {
        let (scale, zero) = scale_and_zero_point(xs);
        let mut ys = vec![0u8; xs.len()];
        quantize(xs, scale, zero, &mut ys);
        (ys, scale, zero)
    }

    /// A deterministic pseudo-random sequence (xorshift), so that the test
    /// needs no crate and always sees the same values.
    fn values(n: usize, seed: u32, spread: f32, offset: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32 - 0.5) * spread + offset
            })
            .collect()
    }

    #[test]
    fn same_bytes_scale_and_zero_point_as_tract() {
        let mut cases: Vec<Vec<f32>> = vec![
            // The ONNX operator documentation's examples.
            vec![0., 2., -3., -2.5, 1.34, 0.5],
            vec![-1., -2.1, -1.3, -2.5, -3.34, -4.],
            vec![1., 2.1, 1.3, 2.5, 3.34, 4., 1.5, 2.6, 3.9, 4., 3., 2.345],
            // Ties on the value and on the zero point (tract's own tests).
            vec![-127., 128., 0.5],
            vec![-253., 257.],
            // All zero: the scale is 0 and every division 0/0.
            vec![0.0; 37],
            // NaN among real values.
            vec![1.0, f32::NAN, -2.0, 0.25, 3.0, -0.75, 2.0, f32::NAN, 1.5],
            vec![5.0; 3],
            // Subnormals among normal values, and alone (the scale is
            // itself subnormal).
            vec![1e-39, -3e-40, 2.5, -1e-45, 0.7, 1.1754942e-38, -1.0],
            vec![1e-39, -3e-40, 1e-45, 1.1754942e-38, -5e-39],
            vec![1e-30, -2e-30, 1e-39, 3e-31],
        ];
        // Activations as encoders make them: every remainder of the eight
        // lanes, only positive (after a GELU), only negative, wide and narrow.
        for (i, n) in [1, 7, 8, 9, 63, 64, 65, 1000, 3072 * 5].into_iter().enumerate() {
            cases.push(values(n, 17 + i as u32, 8.0, 0.0));
            cases.push(values(n, 91 + i as u32, 0.01, 0.006));
            cases.push(values(n, 33 + i as u32, 300.0, -151.0));
        }
        // Values exactly on half steps of the scale: every one a tie.
        cases.push((-255..=255).map(|k| k as f32 * 0.5).collect());
        for xs in &cases {
            let (want, want_scale, want_zero) = tract_reference(xs);
            let (got, got_scale, got_zero) = ours(xs);
            assert_eq!(got_scale.to_bits(), want_scale.to_bits(), "scale of {xs:?}");
            assert_eq!(got_zero, want_zero, "zero point of {xs:?}");
            assert_eq!(got, want, "bytes of {xs:?}");
        }
    }
}
