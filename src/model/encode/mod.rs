//! The image encoder: a CLIP vision tower loaded from the bundle's ONNX file
//! and run with tract (the text tower, which shares the loading and checks
//! below, is in [`text`]).
//!
//! Loading checks what the manifest promises against the graph: the input
//! and output names and shapes, the embedding width, and the precision (an
//! "int8-dynamic" encoder must really contain `MatMulInteger`). Operators
//! tract does not implement are reported by name before tract's own, less
//! readable, type-inference error. After `into_optimized()` the graph goes
//! through [`fold`], which evaluates once the constant chains tract leaves
//! in the per-frame plan (see that module for why), and [`quantize`], which
//! swaps tract's element-at-a-time dynamic quantization for a vectorized one.
//! Plans run through [`vector_state::eval_node`], which keeps tract's AVX
//! kernels from slowing down the SSE code that runs after them.
//!
//! An [`ImageEncoder`] is the loaded, optimized plan and can be shared
//! between threads; each inference thread runs it through its own
//! [`EncoderSession`], which owns the input tensor and tract's state.
//! Matrix multiplications use `threads` threads through tract-linalg's
//! multithread executor.

pub mod fold;
pub mod quantize;
pub mod text;
pub mod vector_state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
use tract_onnx::tract_core::plan::SimpleState;
use tract_onnx::tract_hir::internal::{tvec, DimLike};

use crate::model::bundle::{Bundle, EncoderSpec};

/// ONNX operators that appear only in quantized graphs, with the precision
/// each one implies.
const QUANTIZED_OPS: &[(&str, &str)] = &[
    ("MatMulInteger", "int8-dynamic"),
    ("DynamicQuantizeLinear", "int8-dynamic"),
    ("ConvInteger", "int8-dynamic"),
    ("QLinearMatMul", "int8-qoperator"),
    ("QLinearConv", "int8-qoperator"),
    ("QuantizeLinear", "int8-qdq"),
    ("DequantizeLinear", "int8-qdq"),
];

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot read encoder '{}': {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error(
        "encoder '{}' uses operator{} {} that tract cannot run; re-export it with tools/model/export_clip.py (accepted: fp32, dynamic int8 with MatMulInteger, or QOperator int8 limited to QLinearMatMul/QLinearConv)",
        path.display(), if ops.len() > 1 { "s" } else { "" }, ops.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(", ")
    )]
    UnsupportedOperator { path: PathBuf, ops: Vec<String> },
    #[error("encoder '{}': {message}", path.display())]
    Mismatch { path: PathBuf, message: String },
    #[error("encoder '{}' could not be prepared by tract: {message}", path.display())]
    Tract { path: PathBuf, message: String },
    #[error("inference failed: {0}")]
    Run(String),
    #[error(
        "model bundle '{}' has no text encoder (no [text] table in its model.toml), so labels cannot be embedded here; use labels that are in its labels.emb, or embed them where the bundle was made: tools/model/export_clip.py ... --labels FILE",
        dir.display()
    )]
    NoTextEncoder { dir: PathBuf },
}

/// How to load an encoder.
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    /// Threads for matrix multiplication; 1 runs on the calling thread.
    pub threads: usize,
    /// Run the constant-chain folding pass after tract's optimizer.
    pub fold_constants: bool,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions { threads: 1, fold_constants: true }
    }
}

/// What loading found out about an encoder, for `edgeclip info` and logs.
#[derive(Debug, Clone, Default)]
pub struct EncoderReport {
    /// ONNX operator type → number of nodes, as in the file.
    pub onnx_ops: BTreeMap<String, usize>,
    /// tract matrix-multiply kernel name → number of optimized nodes using it.
    pub kernels: BTreeMap<String, usize>,
    /// Nodes replaced by constants by the folding pass.
    pub folded_nodes: usize,
    /// Dynamic quantizations swapped for [`quantize::DynamicQuantizeU8`].
    pub quantize_nodes: usize,
    /// Nodes in the optimized plan.
    pub plan_nodes: usize,
    pub load_time: Duration,
}

/// A loaded, optimized image encoder, shareable between threads.
pub struct ImageEncoder {
    plan: Arc<TypedRunnableModel>,
    executor: tract_linalg::multithread::Executor,
    threads: usize,
    size: usize,
    dim: usize,
    pub report: EncoderReport,
}

impl std::fmt::Debug for ImageEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageEncoder")
            .field("size", &self.size)
            .field("dim", &self.dim)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Counts the ONNX operator types of a parsed graph.
fn count_onnx_ops(proto: &tract_onnx::pb::ModelProto) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    if let Some(graph) = &proto.graph {
        for node in &graph.node {
            *counts.entry(node.op_type.clone()).or_insert(0) += 1;
        }
    }
    counts
}

/// The precision a graph's operators imply.
pub fn detect_precision(onnx_ops: &BTreeMap<String, usize>) -> &'static str {
    let has = |name: &str| onnx_ops.contains_key(name);
    let first = |p: &str| QUANTIZED_OPS.iter().any(|(op, prec)| *prec == p && has(op));
    if first("int8-dynamic") {
        "int8-dynamic"
    } else if first("int8-qoperator") {
        "int8-qoperator"
    } else if first("int8-qdq") {
        "int8-qdq"
    } else {
        "fp32"
    }
}

/// Reads an ONNX file's operator counts without building a tract model.
pub fn onnx_op_counts(path: &Path) -> Result<BTreeMap<String, usize>, EncodeError> {
    let proto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| EncodeError::Read { path: path.to_path_buf(), message: format!("{e:#}") })?;
    Ok(count_onnx_ops(&proto))
}

impl ImageEncoder {
    /// Loads the bundle's image encoder.
    pub fn load(bundle: &Bundle, options: &EncoderOptions) -> Result<ImageEncoder, EncodeError> {
        let size = bundle.image.size as usize;
        let input = InferenceFact::dt_shape(f32::datum_type(), [1, 3, size, size]);
        let (plan, report) = load_plan(&bundle.image.encoder, input, bundle.embedding_dim, options)?;
        Ok(ImageEncoder {
            plan,
            executor: executor_for(options.threads),
            threads: options.threads.max(1),
            size,
            dim: bundle.embedding_dim,
            report,
        })
    }

    pub fn embedding_dim(&self) -> usize {
        self.dim
    }

    pub fn input_size(&self) -> usize {
        self.size
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// A per-thread session holding the input tensor and tract's state.
    pub fn session(self: &Arc<Self>) -> Result<EncoderSession, EncodeError> {
        let input =
            Tensor::zero::<f32>(&[1, 3, self.size, self.size]).map_err(|e| EncodeError::Run(format!("{e:#}")))?;
        let state = SimpleState::new(&self.plan).map_err(|e| EncodeError::Run(format!("{e:#}")))?;
        Ok(EncoderSession { encoder: self.clone(), state, input: Arc::new(input), embedding: vec![0.0; self.dim] })
    }
}

fn executor_for(threads: usize) -> tract_linalg::multithread::Executor {
    if threads > 1 {
        tract_linalg::multithread::Executor::multithread_with_name(threads, "edgeclip-mm")
    } else {
        tract_linalg::multithread::Executor::SingleThread
    }
}

/// Loads, checks and optimizes one encoder with a fixed input type and shape,
/// checking that its single output is `[1, dim]`.
pub(crate) fn load_plan(
    spec: &EncoderSpec,
    input_fact: InferenceFact,
    dim: usize,
    options: &EncoderOptions,
) -> Result<(Arc<TypedRunnableModel>, EncoderReport), EncodeError> {
    let started = Instant::now();
    let path = &spec.path;
    let tract_err = |e: TractError| EncodeError::Tract { path: path.clone(), message: format!("{e:#}") };
    let mismatch = |message: String| EncodeError::Mismatch { path: path.clone(), message };

    let onnx = tract_onnx::onnx();
    let proto = onnx
        .proto_model_for_path(path)
        .map_err(|e| EncodeError::Read { path: path.clone(), message: format!("{e:#}") })?;
    let onnx_ops = count_onnx_ops(&proto);

    // The manifest's precision must be what the graph is: a mislabelled file
    // would otherwise be benchmarked, reported and trusted as something else.
    let found = detect_precision(&onnx_ops);
    if found == "int8-qdq" {
        return Err(mismatch(
            "is QDQ-quantized (QuantizeLinear/DequantizeLinear pairs), which tract runs with f32 kernels, slower than fp32; re-export with tools/model/export_clip.py --precision int8 (dynamic MatMulInteger)".into(),
        ));
    }
    if found != spec.precision.as_str() {
        return Err(mismatch(format!(
            "model.toml says precision '{}' but the graph is '{found}'; fix the manifest's precision key",
            spec.precision
        )));
    }

    let dir = path.parent().and_then(|p| p.to_str());
    let parsed = onnx.parse(&proto, dir).map_err(tract_err)?;
    drop(proto);
    let mut model = parsed.model;

    let mut unsupported: Vec<String> = model
        .nodes()
        .iter()
        .filter_map(|n| n.op.name().strip_prefix("Unimplemented(").map(|s| s.trim_end_matches(')').to_string()))
        .collect();
    if !unsupported.is_empty() {
        unsupported.sort();
        unsupported.dedup();
        return Err(EncodeError::UnsupportedOperator { path: path.clone(), ops: unsupported });
    }

    // Inputs and outputs by the names the manifest gives.
    let input_names: Vec<String> =
        model.input_outlets().map_err(tract_err)?.iter().map(|o| model.node(o.node).name.clone()).collect();
    if input_names.len() != 1 || input_names[0] != spec.input {
        return Err(mismatch(format!(
            "the manifest names input '{}' but the graph's inputs are {:?}",
            spec.input, input_names
        )));
    }
    let output_labels: Vec<String> = model
        .output_outlets()
        .map_err(tract_err)?
        .iter()
        .map(|o| model.outlet_label(*o).map(|s| s.to_string()).unwrap_or_else(|| model.node(o.node).name.clone()))
        .collect();
    let output_ix = output_labels.iter().position(|n| *n == spec.output).ok_or_else(|| {
        mismatch(format!("the manifest names output '{}' but the graph's outputs are {:?}", spec.output, output_labels))
    })?;
    if output_labels.len() > 1 {
        let keep = model.output_outlets().map_err(tract_err)?[output_ix];
        model.select_output_outlets(&[keep]).map_err(tract_err)?;
    }

    model.set_input_fact(0, input_fact).map_err(tract_err)?;
    let typed = model.into_typed().map_err(tract_err)?;

    let out_fact = typed.output_fact(0).map_err(tract_err)?;
    let out_shape: Vec<Option<usize>> = out_fact.shape.iter().map(|d| d.to_usize().ok()).collect();
    if out_shape.last().copied().flatten() != Some(dim) || out_shape.iter().rev().skip(1).any(|d| *d != Some(1)) {
        return Err(mismatch(format!(
            "output '{}' has shape {:?} but the manifest's embedding_dim {dim} needs [1, {dim}]; embedding_dim must be the width of the model's projection",
            spec.output, out_fact.shape
        )));
    }

    let mut optimized = typed.into_optimized().map_err(tract_err)?;
    let folded_nodes =
        if options.fold_constants { fold::fold_constant_chains(&mut optimized).map_err(tract_err)? } else { 0 };
    let quantize_nodes = quantize::speed_up_dynamic_quantization(&mut optimized).map_err(tract_err)?;

    let mut kernels = BTreeMap::new();
    for node in optimized.nodes() {
        for kernel in kernel_names(node.op.as_ref()) {
            *kernels.entry(kernel).or_insert(0) += 1;
        }
    }
    let plan_nodes = optimized.nodes().len();
    let plan = optimized.into_runnable().map_err(tract_err)?;
    let report =
        EncoderReport { onnx_ops, kernels, folded_nodes, quantize_nodes, plan_nodes, load_time: started.elapsed() };
    tracing::info!(
        encoder = %path.display(),
        precision = %spec.precision,
        plan_nodes,
        folded_nodes,
        quantize_nodes,
        kernels = ?report.kernels,
        load_ms = report.load_time.as_millis() as u64,
        "encoder loaded"
    );
    Ok((plan, report))
}

/// The time one node of the plan took in a profiled run.
#[derive(Debug, Clone)]
pub struct NodeTiming {
    /// The node's name in the plan: the ONNX node it came from, with the
    /// suffix of the last tract rewrite that touched it.
    pub node: String,
    /// tract's operator name (`OptMatMul`, `Conv`…).
    pub op: String,
    /// For a matrix product, the kernel that ran it; empty otherwise.
    pub detail: String,
    /// The first input's shape, e.g. `[1, 50, 512]`.
    pub input_shape: String,
    /// The first output's shape.
    pub output_shape: String,
    pub time: Duration,
}

/// The tract kernels a matrix-product node runs with (one per mode of the
/// product); none for any other op.
fn kernel_names(op: &dyn TypedOp) -> Vec<String> {
    op.downcast_ref::<OptMatMul>().map_or_else(Vec::new, |mm| mm.mmm.iter().map(|k| k.name().to_string()).collect())
}

/// One inference thread's handle on a shared [`ImageEncoder`].
pub struct EncoderSession {
    encoder: Arc<ImageEncoder>,
    state: TypedSimpleState,
    /// The input tensor, written in place by the preprocessor each frame.
    input: Arc<Tensor>,
    embedding: Vec<f32>,
}

impl EncoderSession {
    /// Lets `fill` write the NCHW input tensor in place (the preprocessor
    /// does), without allocating.
    pub fn fill_input<R>(&mut self, fill: impl FnOnce(&mut [f32]) -> R) -> R {
        if Arc::get_mut(&mut self.input).is_none() {
            // tract still holds the previous frame's input; costs one copy
            // and does not happen with SimpleState, which drops its inputs.
            self.input = Arc::new((*self.input).clone());
        }
        let tensor = Arc::get_mut(&mut self.input).expect("input tensor is exclusively owned");
        let mut view = tensor.as_plain_ram_mut().expect("input tensor is plain");
        fill(view.as_slice_mut::<f32>().expect("input tensor is f32"))
    }

    /// Runs the encoder on the current input and returns the (not
    /// normalized) image embedding.
    pub fn run(&mut self) -> Result<&[f32], EncodeError> {
        let input = TValue::from_const(self.input.clone());
        let executor = self.encoder.executor.clone();
        let state = &mut self.state;
        let outputs = tract_linalg::multithread::multithread_tract_scope(executor, || {
            state.run_plan_with_eval(tvec![input], vector_state::eval_node)
        })
        .map_err(|e| EncodeError::Run(format!("{e:#}")))?;
        let out =
            outputs[0].as_plain_ram().ok_or_else(|| EncodeError::Run("encoder output is not a plain tensor".into()))?;
        let values = out.as_slice::<f32>().map_err(|e| EncodeError::Run(format!("{e:#}")))?;
        if values.len() != self.embedding.len() {
            return Err(EncodeError::Run(format!(
                "encoder returned {} values, expected {}",
                values.len(),
                self.embedding.len()
            )));
        }
        self.embedding.copy_from_slice(values);
        Ok(&self.embedding)
    }

    /// Runs the encoder once, timing every node of tract's plan; returns
    /// one row per node, slowest first. For `edgeclip bench --profile`.
    pub fn run_profiled(&mut self) -> Result<Vec<NodeTiming>, EncodeError> {
        let input = TValue::from_const(self.input.clone());
        let executor = self.encoder.executor.clone();
        let state = &mut self.state;
        let mut rows = Vec::new();
        tract_linalg::multithread::multithread_tract_scope(executor, || {
            state.run_plan_with_eval(tvec![input], |ctx, op_state, node, inputs| {
                let inputs_shape = inputs.first().map(|i| format!("{:?}", i.shape())).unwrap_or_default();
                let started = Instant::now();
                let out = vector_state::eval_node(ctx, op_state, node, inputs);
                let time = started.elapsed();
                let output_shape = match &out {
                    Ok(values) => values.first().map(|v| format!("{:?}", v.shape())).unwrap_or_default(),
                    Err(_) => String::new(),
                };
                rows.push(NodeTiming {
                    node: node.name.clone(),
                    op: node.op.name().to_string(),
                    detail: kernel_names(node.op.as_ref()).join("+"),
                    input_shape: inputs_shape,
                    output_shape,
                    time,
                });
                out
            })
        })
        .map_err(|e| EncodeError::Run(format!("{e:#}")))?;
        rows.sort_by_key(|r| std::cmp::Reverse(r.time));
        Ok(rows)
    }

    pub fn encoder(&self) -> &Arc<ImageEncoder> {
        &self.encoder
    }
}
