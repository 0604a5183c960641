//! The constant-chain folding pass on a graph built to need it: the same
//! shape as an int8 MatMulInteger's zero-point correction, with a weight
//! large enough that tract's own constant propagation leaves it unfolded.

use edgeclip::model::encode::fold::fold_constant_chains;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::{
    cast::cast,
    math,
    nn::{Reduce, Reducer},
};

/// x [1, 1024] i32 + Sum_k(Cast<i32>(W [1100, 1024] i8)). The i32 cast is
/// 4.3 MiB, over tract's 4 MiB folding budget.
fn zero_point_like_model() -> TypedModel {
    let (k, n) = (1100usize, 1024usize);
    // u64: the products pass 2^32, and usize is 32 bits on armv7.
    let weights: Vec<i8> = (0..k * n).map(|i| ((i as u64 * 7919) % 255) as i8).collect();
    let mut model = TypedModel::default();
    let x = model.add_source("x", i32::fact([1, n])).unwrap();
    let w = model.add_const("w", Tensor::from_shape(&[k, n], &weights).unwrap()).unwrap();
    let wide = model.wire_node("cast", cast(i32::datum_type()), &[w]).unwrap();
    let sum = model.wire_node("sum", Reduce::new(tvec!(0), Reducer::Sum), &wide).unwrap();
    let out = model.wire_node("add", math::add(), &[x, sum[0]]).unwrap();
    model.select_output_outlets(&out).unwrap();
    model
}

fn has_reduce(model: &TypedModel) -> bool {
    model.nodes().iter().any(|n| n.op.name().starts_with("Reduce"))
}

fn run(model: TypedModel, x: &Tensor) -> Tensor {
    let plan = model.into_runnable().unwrap();
    plan.run(tvec!(x.clone().into_tvalue())).unwrap().remove(0).into_tensor()
}

#[test]
fn folds_the_reduce_that_tract_leaves_and_keeps_outputs() {
    let optimized = zero_point_like_model().into_optimized().unwrap();
    // The premise: tract itself leaves the chain in the plan.
    assert!(has_reduce(&optimized), "tract folded the chain itself; this test no longer tests anything:\n{optimized}");

    let mut folded = optimized.clone();
    let count = fold_constant_chains(&mut folded).unwrap();
    assert!(count >= 1, "nothing folded");
    assert!(!has_reduce(&folded), "a Reduce is still in the plan:\n{folded}");
    assert!(!folded.nodes().iter().any(|n| n.name == "cast"), "the dead cast was not removed");

    let x = Tensor::from_shape(&[1, 1024], &(0..1024i32).map(|i| i - 512).collect::<Vec<_>>()).unwrap();
    assert_eq!(run(optimized, &x), run(folded, &x));
}

#[test]
fn leaves_nodes_that_depend_on_inputs() {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([4, 8])).unwrap();
    let sum = model.wire_node("sum", Reduce::new(tvec!(0), Reducer::Sum), &[x]).unwrap();
    model.select_output_outlets(&sum).unwrap();
    let mut optimized = model.into_optimized().unwrap();
    assert_eq!(fold_constant_chains(&mut optimized).unwrap(), 0);
}
