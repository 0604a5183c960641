//! Folding the constant chains that tract leaves in the per-frame plan.
//!
//! An int8 `MatMulInteger` needs, for the zero-point correction, the sum of
//! each weight column: `Sum(Cast<i32>(W))`. Its inputs are all constants, so
//! it could be computed once, but tract's constant propagation refuses to
//! materialize an intermediate larger than 4 MiB (`CONST_FOLD_MEM_BUDGET`),
//! and the i32 cast of a ViT-B/32 MLP weight is 9 MiB. The cast is skipped,
//! so the sum after it is never reached, and both run on every frame: about
//! 340 ms of a 432 ms ViT-B/32 frame on x86, measured with tract 0.23.
//!
//! This pass finds every node whose output is small and whose inputs lead
//! back, within a few nodes, only to constants; evaluates that chain once at
//! load time; and replaces the node's output with the constant. The large
//! intermediate lives only during loading. It repeats until nothing changes,
//! then drops the nodes nothing uses any more. Outputs are identical, since
//! the same ops compute the same values, only earlier (checked by the tests
//! on real encoders).

use std::collections::HashMap;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::source::TypedSource;

/// Largest output folded, in bytes. The zero-point sums are one i32 per
/// output column (12 KiB for a 3072-wide layer); 1 MiB keeps every such sum
/// and never duplicates a real weight into the plan.
const MAX_FOLDED_OUTPUT_BYTES: usize = 1 << 20;

/// How far back from a node its constant inputs may be: the chains seen are
/// Const → Cast → Reduce (→ Reshape/Mul), so 8 leaves room without walking
/// the whole graph.
const MAX_CHAIN_DEPTH: usize = 8;

/// Folds until nothing changes; returns the number of nodes replaced.
pub fn fold_constant_chains(model: &mut TypedModel) -> TractResult<usize> {
    let mut folded = 0;
    while let Some(patch) = next_fold(model)? {
        patch.apply(model)?;
        folded += 1;
    }
    if folded > 0 {
        // Drops the chains that only fed folded nodes (compact keeps only
        // what the outputs need).
        model.compact()?;
    }
    Ok(folded)
}

fn next_fold(model: &TypedModel) -> TractResult<Option<TypedModelPatch>> {
    for &id in &model.eval_order()? {
        let node = model.node(id);
        if node.op_is::<Const>() || node.op_is::<TypedSource>() || node.inputs.is_empty() {
            continue;
        }
        let small = node.outputs.iter().all(|o| {
            o.fact.konst.is_none()
                && o.fact.is_plain()
                && o.fact.shape.as_concrete().is_some_and(|s| {
                    s.iter().product::<usize>() * o.fact.datum_type.size_of() <= MAX_FOLDED_OUTPUT_BYTES
                })
        });
        if !small || !constant_ancestry(model, id, 0) {
            continue;
        }
        let mut memo = HashMap::new();
        let Some(values) = evaluate(model, id, &mut memo)? else {
            continue;
        };
        let mut patch = TypedModelPatch::default();
        for (slot, value) in values.into_iter().enumerate() {
            let name = if slot == 0 { format!("{}.folded", node.name) } else { format!("{}.folded.{slot}", node.name) };
            let wire = patch.add_const(name, value.into_arc_tensor())?;
            patch.shunt_outside(model, OutletId::new(id, slot), wire)?;
        }
        return Ok(Some(patch));
    }
    Ok(None)
}

/// True when every input of `id` is a known constant or comes from nodes
/// that are, within `MAX_CHAIN_DEPTH`.
fn constant_ancestry(model: &TypedModel, id: usize, depth: usize) -> bool {
    if depth > MAX_CHAIN_DEPTH {
        return false;
    }
    let node = model.node(id);
    if node.op_is::<TypedSource>() {
        return false;
    }
    node.inputs.iter().all(|input| {
        let Ok(fact) = model.outlet_fact(*input) else { return false };
        fact.konst.is_some() || constant_ancestry(model, input.node, depth + 1)
    })
}

/// Evaluates a node out of plan from its constant ancestry. `None` when an op
/// on the way cannot be evaluated outside a plan (stateful ops).
fn evaluate(
    model: &TypedModel,
    id: usize,
    memo: &mut HashMap<usize, TVec<TValue>>,
) -> TractResult<Option<TVec<TValue>>> {
    if let Some(v) = memo.get(&id) {
        return Ok(Some(v.clone()));
    }
    let node = model.node(id);
    let mut inputs: TVec<TValue> = tvec!();
    for input in &node.inputs {
        let fact = model.outlet_fact(*input)?;
        if let Some(k) = &fact.konst {
            inputs.push(k.clone().into_tvalue());
        } else {
            let Some(values) = evaluate(model, input.node, memo)? else { return Ok(None) };
            inputs.push(values[input.slot].clone());
        }
    }
    let Some(outputs) = node.op.eval_out_of_plan(inputs)? else { return Ok(None) };
    memo.insert(id, outputs.clone());
    Ok(Some(outputs))
}
