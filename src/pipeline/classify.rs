//! One frame in, label scores out: preprocess → encode → match, with every
//! buffer owned and reused.
//!
//! A [`Classifier`] is what an inference thread holds. It is built from the
//! shared parts (the loaded encoder and the matcher) and owns the per-thread
//! parts (the preprocessor's buffers, the encoder session, the scores).
//! [`Classifier::follow`] picks up a new label set between frames.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::bundle::Bundle;
use crate::model::encode::{EncodeError, EncoderSession, ImageEncoder};
use crate::model::preprocess::{PreprocessError, Preprocessor, RgbFrame};
use crate::pipeline::matcher::{LabelSet, Matcher, Scores};

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
        self.embed(frame)?;
        let t = Instant::now();
        self.matcher.score(&self.embedding, top_k, &mut self.scores);
        self.times.matching = t.elapsed();
        Ok(&self.scores)
    }

    /// Classifies one frame against another label set than the
    /// classifier's own (a zone's), into `scores` (from `matcher`).
    pub fn classify_into(
        &mut self,
        frame: RgbFrame<'_>,
        top_k: usize,
        matcher: &Matcher,
        scores: &mut Scores,
    ) -> Result<(), ClassifyError> {
        self.embed(frame)?;
        let t = Instant::now();
        matcher.score(&self.embedding, top_k, scores);
        self.times.matching = t.elapsed();
        Ok(())
    }

    /// Preprocesses and encodes one frame into the normalized embedding,
    /// timing both stages.
    fn embed(&mut self, frame: RgbFrame<'_>) -> Result<(), ClassifyError> {
        let t0 = Instant::now();
        let preprocessor = &mut self.preprocessor;
        self.session.fill_input(|input| preprocessor.run(frame, input))?;
        let t1 = Instant::now();
        let raw = self.session.run()?;
        self.embedding.copy_from_slice(raw);
        crate::pipeline::matcher::normalize(&mut self.embedding);
        let t2 = Instant::now();
        self.times = StageTimes { preprocess: t1 - t0, encode: t2 - t1, matching: Duration::ZERO };
        Ok(())
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

    /// Takes the label set's current matcher if it changed since the last
    /// call (then the score buffers are sized anew, once). Call it before a
    /// frame; the frame is then matched against one consistent set.
    pub fn follow(&mut self, set: &LabelSet) {
        self.set_matcher(set.current());
    }

    /// Matches the next frames against `matcher` (a new label set); the
    /// score buffers are sized anew only if it is another matcher.
    pub fn set_matcher(&mut self, matcher: Arc<Matcher>) {
        if !Arc::ptr_eq(&matcher, &self.matcher) {
            self.scores = matcher.new_scores();
            self.matcher = matcher;
        }
    }
}
