//! One frame in, label scores out: preprocess → encode → match, with every
//! buffer owned and reused.
//!
//! A [`Classifier`] is what an inference thread holds. It is built from the
//! shared parts (the loaded encoder and the matcher) and owns the per-thread
//! parts (the preprocessor's buffers, the encoder session, the scores).
//! [`load_labels`] applies the bundle's rule for finding label embeddings.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bundle::Bundle;
use crate::encode::{EncodeError, EncoderSession, ImageEncoder};
use crate::labels::{read_labels, EmbeddedLabel, LabelEmbeddings, LabelsError};
use crate::matcher::{Matcher, Scores};
use crate::preprocess::{PreprocessError, Preprocessor, RgbFrame};

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Time spent in each stage for the last frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub preprocess: Duration,
    pub encode: Duration,
    pub matching: Duration,
}

pub struct Classifier {
    preprocessor: Preprocessor,
    session: EncoderSession,
    matcher: Arc<Matcher>,
    scores: Scores,
    /// L2-normalized embedding of the last frame.
    embedding: Vec<f32>,
    pub times: StageTimes,
}

impl Classifier {
    pub fn new(bundle: &Bundle, encoder: &Arc<ImageEncoder>, matcher: Arc<Matcher>) -> Result<Classifier, EncodeError> {
        Ok(Classifier {
            preprocessor: Preprocessor::new(&bundle.image),
            session: encoder.session()?,
            scores: matcher.new_scores(),
            embedding: vec![0.0; encoder.embedding_dim()],
            matcher,
            times: StageTimes::default(),
        })
    }

    /// Classifies one frame, keeping the best `top_k` labels in the result.
    pub fn classify(&mut self, frame: RgbFrame<'_>, top_k: usize) -> Result<&Scores, ClassifyError> {
        let t0 = Instant::now();
        let preprocessor = &mut self.preprocessor;
        self.session.fill_input(|input| preprocessor.run(frame, input))?;
        let t1 = Instant::now();
        let raw = self.session.run()?;
        self.embedding.copy_from_slice(raw);
        crate::matcher::normalize(&mut self.embedding);
        let t2 = Instant::now();
        self.matcher.score(&self.embedding, top_k, &mut self.scores);
        let t3 = Instant::now();
        self.times = StageTimes { preprocess: t1 - t0, encode: t2 - t1, matching: t3 - t2 };
        Ok(&self.scores)
    }

    pub fn scores(&self) -> &Scores {
        &self.scores
    }

    /// The L2-normalized image embedding of the last classified frame.
    pub fn embedding(&self) -> &[f32] {
        &self.embedding
    }

    pub fn matcher(&self) -> &Arc<Matcher> {
        &self.matcher
    }
}

/// Finds the label embeddings to match against.
///
/// - no `labels` path: the bundle's `labels.txt`, embedded in its `labels.emb`;
/// - a `.emb` file: every label in it;
/// - a labels text file: each of its labels must be in the bundle's
///   `labels.emb` with exactly the same prompts, or it is an error that names
///   the line.
///
/// A `labels.emb` made by a text encoder other than the bundle's is stale and
/// refused.
pub fn load_labels(bundle: &Bundle, labels: Option<&Path>) -> Result<Vec<EmbeddedLabel>, LabelsError> {
    let check = |path: &Path, emb: &LabelEmbeddings| -> Result<(), LabelsError> {
        emb.check_dim(path, bundle.embedding_dim)?;
        if let Some(text) = &bundle.text {
            let produced_by = crate::bundle::hex(&emb.text_encoder_sha256);
            if produced_by != text.encoder.sha256 {
                return Err(LabelsError::BadEmbeddings {
                    path: path.to_path_buf(),
                    message: format!(
                        "it was made by text encoder {produced_by}, not by this bundle's '{}' ({}); it is stale, regenerate it with tools/export_clip.py",
                        text.encoder.path.display(),
                        text.encoder.sha256
                    ),
                });
            }
        }
        Ok(())
    };
    match labels {
        Some(path) if path.extension().is_some_and(|e| e == "emb") => {
            let emb = LabelEmbeddings::read(path)?;
            check(path, &emb)?;
            Ok(emb.labels)
        }
        other => {
            let labels_path = other.unwrap_or(&bundle.labels_file);
            let wanted = read_labels(labels_path)?;
            let emb = LabelEmbeddings::read(&bundle.labels_embeddings)?;
            check(&bundle.labels_embeddings, &emb)?;
            emb.select(&bundle.labels_embeddings, labels_path, &wanted)
        }
    }
}
