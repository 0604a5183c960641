//! Matching an image embedding against the label embeddings: CLIP's
//! zero-shot classifier.
//!
//! The image embedding is L2-normalized, its cosine with every (already
//! normalized) label vector is taken, the cosines are scaled by the model's
//! logit scale and turned into probabilities with a softmax over all labels,
//! negative ones included. All buffers are owned by [`Scores`] and reused, so
//! matching a frame allocates nothing once warm; the top labels are kept in
//! a fixed-capacity `heapless` vector.
//!
//! A [`LabelSet`] holds the matcher one thread matches frames against while
//! another replaces it (the daemon swaps it when a labels file changes).

use std::sync::{Arc, RwLock};

use crate::labels::EmbeddedLabel;

/// Most labels reported as "top" for one frame. Policy: a person reads the
/// top few; the detector looks at every label's score, not at this list.
pub const MAX_TOP_K: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("no labels to match against")]
    NoLabels,
    #[error("label '{label}' has a {found}-dimensional embedding but the model's are {expected}-dimensional")]
    Dimension { label: String, found: usize, expected: usize },
    #[error("label '{label}' has a zero or non-finite embedding")]
    BadVector { label: String },
}

/// One label's score for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelScore {
    /// Index into [`Matcher::names`].
    pub label: usize,
    /// Softmax probability over all labels.
    pub probability: f32,
    /// Cosine similarity between the image and the label, in [-1, 1].
    pub cosine: f32,
}

/// The label matrix and the softmax temperature. Immutable once built, so one
/// matcher can be shared between inference threads.
#[derive(Debug, Clone)]
pub struct Matcher {
    names: Vec<String>,
    dim: usize,
    /// Row-major [labels × dim], rows L2-normalized.
    matrix: Vec<f32>,
    logit_scale: f32,
}

/// Per-frame results, reused from frame to frame.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// Cosine per label, in label order.
    pub cosine: Vec<f32>,
    /// Softmax probability per label, in label order.
    pub probability: Vec<f32>,
    /// The best labels, most probable first.
    pub top: heapless::Vec<LabelScore, MAX_TOP_K>,
    normalized: Vec<f32>,
}

impl Matcher {
    pub fn new(labels: &[EmbeddedLabel], dim: usize, logit_scale: f32) -> Result<Matcher, MatchError> {
        if labels.is_empty() {
            return Err(MatchError::NoLabels);
        }
        let mut matrix = Vec::with_capacity(labels.len() * dim);
        for l in labels {
            if l.vector.len() != dim {
                return Err(MatchError::Dimension { label: l.name.clone(), found: l.vector.len(), expected: dim });
            }
            // Renormalize: a labels.emb written by another tool may carry
            // float noise in its norms, and the cosine must stay a cosine.
            let norm = l2_norm(&l.vector);
            if !(norm.is_finite() && norm > 0.0) {
                return Err(MatchError::BadVector { label: l.name.clone() });
            }
            matrix.extend(l.vector.iter().map(|v| v / norm));
        }
        Ok(Matcher { names: labels.iter().map(|l| l.name.clone()).collect(), dim, matrix, logit_scale })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn logit_scale(&self) -> f32 {
        self.logit_scale
    }

    /// A `Scores` sized for this matcher, so that the first frame does not
    /// allocate either.
    pub fn new_scores(&self) -> Scores {
        Scores {
            cosine: Vec::with_capacity(self.names.len()),
            probability: Vec::with_capacity(self.names.len()),
            top: heapless::Vec::new(),
            normalized: Vec::with_capacity(self.dim),
        }
    }

    /// Scores one image embedding (not necessarily normalized) against every
    /// label and keeps the best `top_k` (at most [`MAX_TOP_K`]).
    pub fn score(&self, image_embedding: &[f32], top_k: usize, out: &mut Scores) {
        assert_eq!(image_embedding.len(), self.dim, "image embedding width differs from the label matrix");
        out.normalized.clear();
        let norm = l2_norm(image_embedding);
        // A zero embedding (a black frame through a model with no bias) has
        // no direction: score it as orthogonal to everything.
        let inv = if norm > 0.0 && norm.is_finite() { 1.0 / norm } else { 0.0 };
        out.normalized.extend(image_embedding.iter().map(|v| v * inv));

        out.cosine.clear();
        out.cosine.extend(self.matrix.chunks_exact(self.dim).map(|row| dot(row, &out.normalized)));

        // Softmax of scale × cosine, shifted by the maximum for stability.
        let max = out.cosine.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        out.probability.clear();
        out.probability.extend(out.cosine.iter().map(|c| ((c - max) * self.logit_scale).exp()));
        let sum: f32 = out.probability.iter().sum();
        out.probability.iter_mut().for_each(|p| *p /= sum);

        out.top.clear();
        let k = top_k.min(MAX_TOP_K).min(self.names.len());
        for (label, (&probability, &cosine)) in out.probability.iter().zip(&out.cosine).enumerate() {
            let candidate = LabelScore { label, probability, cosine };
            // Insertion into a short sorted list: k ≤ 16, so this beats a
            // heap and allocates nothing. Ties keep label order.
            let pos = out.top.iter().position(|s| candidate.probability > s.probability).unwrap_or(out.top.len());
            if pos < k {
                if out.top.len() == k {
                    out.top.pop();
                }
                // Cannot fail: len < k ≤ MAX_TOP_K after the pop.
                let _ = out.top.insert(pos, candidate);
            }
        }
    }
}

pub fn l2_norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// Dot product accumulated in four lanes, which the compiler vectorizes.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// L2-normalizes in place; a zero vector stays zero.
pub fn normalize(v: &mut [f32]) {
    let n = l2_norm(v);
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// The labels a camera matches against, replaceable while frames are being
/// matched: a matching thread takes the current [`Matcher`] for each frame
/// (`current`, a read lock and a reference count, no allocation), and a
/// swap (`replace`) is seen from the next frame on. The old matcher lives
/// until the last frame using it is done.
pub struct LabelSet {
    current: RwLock<Arc<Matcher>>,
}

impl LabelSet {
    pub fn new(matcher: Matcher) -> LabelSet {
        LabelSet { current: RwLock::new(Arc::new(matcher)) }
    }

    pub fn current(&self) -> Arc<Matcher> {
        // A poisoned lock only means a writer panicked between two whole
        // assignments; the Arc inside is intact.
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs a new label set; returns the previous one.
    pub fn replace(&self, matcher: Matcher) -> Arc<Matcher> {
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, Arc::new(matcher))
    }
}
