//! The text encoder: a CLIP text tower loaded from the bundle's ONNX file and
//! run with tract, turning labels into the vectors frames are matched with.
//!
//! It is loaded and checked like the image encoder (names, `[1, D]` output,
//! precision, operators tract lacks), with a fixed `[1, context]` i64 input
//! of token ids from [`crate::model::tokenize`]. A label's vector is the mean of its
//! prompts' L2-normalized embeddings, normalized again (a prompt ensemble, as
//! CLIP's zero-shot evaluation does), so that a label with three phrasings
//! weighs as much as one with a single prompt.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;
use tract_onnx::tract_hir::internal::tvec;

use super::{executor_for, load_plan, EncodeError, EncoderOptions, EncoderReport};
use crate::model::bundle::{Bundle, TextSpec};
use crate::model::tokenize::ClipTokenizer;

/// A loaded text encoder with its tokenizer.
pub struct TextEncoder {
    plan: Arc<TypedRunnableModel>,
    executor: tract_linalg::multithread::Executor,
    tokenizer: ClipTokenizer,
    context: usize,
    dim: usize,
    /// The encoder file's sha256, as `labels.emb` records it.
    pub sha256: [u8; 32],
    pub report: EncoderReport,
}

/// A prompt's embedding and whether its end was cut off to fit the context.
pub struct PromptEmbedding {
    /// L2-normalized.
    pub vector: Vec<f32>,
    pub truncated: bool,
}

impl TextEncoder {
    /// Loads the bundle's text encoder; a bundle without one is an error that
    /// says what it means for labels.
    pub fn load(bundle: &Bundle, options: &EncoderOptions) -> Result<TextEncoder, EncodeError> {
        let Some(text) = &bundle.text else {
            return Err(EncodeError::NoTextEncoder { dir: bundle.dir.clone() });
        };
        Self::load_spec(text, bundle.embedding_dim, options)
    }

    fn load_spec(text: &TextSpec, dim: usize, options: &EncoderOptions) -> Result<TextEncoder, EncodeError> {
        let context = text.context_length as usize;
        let input = InferenceFact::dt_shape(i64::datum_type(), [1, context]);
        let (plan, report) = load_plan(&text.encoder, input, dim, options)?;
        let sha256 = crate::model::bundle::parse_hex32(&text.encoder.sha256).ok_or_else(|| EncodeError::Mismatch {
            path: text.encoder.path.clone(),
            message: format!("its sha256 '{}' is not 64 hex digits", text.encoder.sha256),
        })?;
        Ok(TextEncoder {
            plan,
            executor: executor_for(options.threads),
            tokenizer: ClipTokenizer::new(),
            context,
            dim,
            sha256,
            report,
        })
    }

    pub fn embedding_dim(&self) -> usize {
        self.dim
    }

    /// One prompt's embedding.
    pub fn embed_prompt(&self, prompt: &str) -> Result<PromptEmbedding, EncodeError> {
        let tokens = self.tokenizer.tokenize(prompt, self.context);
        let input =
            Tensor::from_shape(&[1, self.context], &tokens.ids).map_err(|e| EncodeError::Run(format!("{e:#}")))?;
        let outputs = tract_linalg::multithread::multithread_tract_scope(self.executor.clone(), || {
            let mut state = SimpleState::new(&self.plan)?;
            state.run_plan_with_eval(tvec![input.into_tvalue()], super::vector_state::eval_node)
        })
        .map_err(|e| EncodeError::Run(format!("{e:#}")))?;
        let out = outputs[0]
            .as_plain_ram()
            .ok_or_else(|| EncodeError::Run("text encoder output is not a plain tensor".into()))?;
        let values = out.as_slice::<f32>().map_err(|e| EncodeError::Run(format!("{e:#}")))?;
        if values.len() != self.dim {
            return Err(EncodeError::Run(format!("text encoder gave {} values, expected {}", values.len(), self.dim)));
        }
        Ok(PromptEmbedding { vector: normalized(values), truncated: tokens.truncated })
    }
}

/// `v / |v|`; a zero vector stays zero (it then matches nothing).
pub(crate) fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}
