//! Searching the event history: "when was a red van here?" as a
//! nearest-neighbour query over the image embeddings the daemon already
//! computed for its events and keyframes.
//!
//! A query becomes one embedding in the same space as the frames': a text
//! through the bundle's text encoder (with the bundle's prompt templates, as
//! a label would be), an image file through the image encoder, or a stored
//! event's own embedding (`--like`). [`Searcher::search`] then ranks every
//! stored embedding of the same model by cosine ([`crate::store::vector`]),
//! within the filter, and returns the best as [`Hit`]s.
//!
//! The same search runs from the CLI on the board (`edgeclip search
//! --config`), from the daemon for an MQTT request ([`request`]), and across
//! every board on a broker ([`fleet`]: each node answers with its own best,
//! and the client merges them by score).

pub mod fleet;
pub mod request;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::labels::examples::ExampleEmbedder;
use crate::model::bundle::Bundle;
use crate::model::encode::text::TextEncoder;
use crate::model::encode::{EncoderOptions, ImageEncoder};
use crate::publish::topics::Topics;
use crate::store::query::{Entry, Filter, Kind};
use crate::store::vector::Quantized;
use crate::store::{Store, StoreError};

/// What to look for.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Text(String),
    /// An image file (PNG or JPEG), whole.
    Image(PathBuf),
    /// A stored event or keyframe: others like it.
    Like(Kind, i64),
}

/// One search.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub query: Query,
    pub filter: Filter,
    pub limit: usize,
    /// Rank keyframes as well as events.
    pub keyframes: bool,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub node: String,
    pub kind: Kind,
    pub id: i64,
    /// Cosine of the query and the stored embedding (-1 to 1; CLIP's
    /// matches are typically 0.2 to 0.35 for text, higher for images).
    pub score: f64,
    pub camera: String,
    pub zone: Option<String>,
    /// The event's label; `null` for a keyframe.
    pub label: Option<String>,
    /// The event's start, or the keyframe's time.
    pub time: String,
    /// The event's end; `null` for a keyframe or an event still active.
    pub end_time: Option<String>,
    /// Where the stored snapshot is published when asked for
    /// (`<prefix>/<node>/snapshot/get`); `null` when none was kept.
    pub snapshot_topic: Option<String>,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Query(String),
}

/// Embeds queries with a bundle's encoders (loaded on first use) and ranks
/// a store.
pub struct Searcher {
    bundle: Arc<Bundle>,
    options: EncoderOptions,
    node: String,
    topics: Topics,
    text: Option<TextEncoder>,
    images: Option<ExampleEmbedder>,
    image_encoder: Option<Arc<ImageEncoder>>,
}

impl Searcher {
    /// `image_encoder`: one already loaded (the daemon's), else loaded when
    /// an image query needs it.
    pub fn new(
        bundle: Arc<Bundle>,
        options: EncoderOptions,
        node: &str,
        topics: Topics,
        image_encoder: Option<Arc<ImageEncoder>>,
    ) -> Searcher {
        Searcher { bundle, options, node: node.to_string(), topics, text: None, images: None, image_encoder }
    }

    pub fn model(&self) -> &str {
        &self.bundle.name
    }

    /// The query's embedding, quantized as the store keeps them.
    pub fn embed(&mut self, store: &Store, query: &Query) -> Result<Quantized, SearchError> {
        let vector = match query {
            Query::Text(text) => self.embed_text(text)?,
            Query::Image(path) => {
                if self.images.is_none() {
                    let encoder = match &self.image_encoder {
                        Some(e) => Arc::clone(e),
                        None => Arc::new(
                            ImageEncoder::load(&self.bundle, &self.options)
                                .map_err(|e| SearchError::Query(format!("cannot load the image encoder: {e}")))?,
                        ),
                    };
                    let embedder = ExampleEmbedder::new(&self.bundle, &encoder, path)
                        .map_err(|e| SearchError::Query(format!("cannot load the image encoder: {e}")))?;
                    self.images = Some(embedder);
                }
                self.images.as_mut().expect("just loaded").embed_file(path).map_err(SearchError::Query)?
            }
            Query::Like(kind, id) => {
                let (q, model) = store.embedding(*kind, *id)?.ok_or_else(|| {
                    SearchError::Query(format!(
                        "no {} {id} with an embedding in the store (removed by retention, or never there)",
                        kind.as_str()
                    ))
                })?;
                if model != self.bundle.name {
                    return Err(SearchError::Query(format!(
                        "{} {id} was embedded by model '{model}', not '{}', whose embeddings cannot be compared with it",
                        kind.as_str(),
                        self.bundle.name
                    )));
                }
                return Ok(q);
            }
        };
        Quantized::new(&vector).ok_or_else(|| SearchError::Query("the query's embedding is all zeros".into()))
    }

    /// A text as a label without prompts of its own: the bundle's prompt
    /// templates applied (a prompt ensemble), or the text itself.
    fn embed_text(&mut self, text: &str) -> Result<Vec<f32>, SearchError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SearchError::Query("the search text is empty".into()));
        }
        if self.text.is_none() {
            if self.bundle.text.is_none() {
                return Err(SearchError::Query(format!(
                    "model '{}' has no text encoder, so it cannot search by text; search --like an event or --image instead",
                    self.bundle.name
                )));
            }
            let encoder = TextEncoder::load(&self.bundle, &self.options)
                .map_err(|e| SearchError::Query(format!("cannot load the text encoder: {e}")))?;
            self.text = Some(encoder);
        }
        let encoder = self.text.as_ref().expect("just loaded");
        let prompts: Vec<String> = if self.bundle.label_templates.is_empty() {
            vec![text.to_string()]
        } else {
            self.bundle.label_templates.iter().map(|t| t.replacen("{}", text, 1)).collect()
        };
        let mut sum = vec![0f32; encoder.embedding_dim()];
        for prompt in &prompts {
            let e = encoder
                .embed_prompt(prompt)
                .map_err(|e| SearchError::Query(format!("cannot embed {prompt:?}: {e}")))?;
            sum.iter_mut().zip(&e.vector).for_each(|(s, v)| *s += v);
        }
        Ok(crate::model::encode::text::normalized(&sum))
    }

    /// Runs a search: the hits, best first, and how many embeddings were
    /// ranked.
    pub fn search(&mut self, store: &Store, search: &Search) -> Result<(Vec<Hit>, usize), SearchError> {
        let query = self.embed(store, &search.query)?;
        let filter = Filter { model: Some(self.bundle.name.clone()), ..search.filter.clone() };
        // `--like`: the entry itself is not a result.
        let itself = match search.query {
            Query::Like(kind, id) => Some((kind, id)),
            _ => None,
        };
        let (ranked, searched) = store.rank(&query, &filter, search.keyframes, search.limit, itself)?;
        let mut hits = Vec::with_capacity(ranked.len());
        for r in ranked {
            let (kind, id) = r.index;
            // Gone between the two reads (retention): no hit.
            if let Some(entry) = store.entry(kind, id)? {
                hits.push(self.hit(&entry, r.score));
            }
        }
        Ok((hits, searched as usize))
    }

    fn hit(&self, e: &Entry, score: f32) -> Hit {
        Hit {
            node: self.node.clone(),
            kind: e.kind,
            id: e.id,
            score: (f64::from(score) * 1e4).round() / 1e4,
            camera: e.camera.clone(),
            zone: e.zone.clone(),
            label: e.label.clone(),
            time: request::format_time(e.time),
            end_time: e.end.map(request::format_time),
            snapshot_topic: e.snapshot.then(|| self.topics.stored_snapshot(e.kind.as_str(), e.id)),
        }
    }

    /// Answers an MQTT search request from `store`.
    pub fn answer(&mut self, store: &Store, r: &request::SearchRequest, fleet: bool) -> request::SearchReply {
        let started = Instant::now();
        let outcome = self.parse_request(r, fleet).and_then(|search| self.search(store, &search));
        let took_ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0;
        let (hits, searched, error) = match outcome {
            Ok((hits, searched)) => (hits, searched as u64, None),
            Err(e) => (Vec::new(), 0, Some(e.to_string())),
        };
        request::SearchReply {
            id: r.id.clone(),
            node: self.node.clone(),
            model: self.bundle.name.clone(),
            searched,
            took_ms,
            hits,
            error,
        }
    }

    fn parse_request(&self, r: &request::SearchRequest, fleet: bool) -> Result<Search, SearchError> {
        let bad = |m: String| SearchError::Query(m);
        let query = match (&r.text, r.like) {
            (Some(text), None) => {
                if text.len() > request::MAX_TEXT_LEN {
                    return Err(bad(format!("'text' is {} bytes; at most {}", text.len(), request::MAX_TEXT_LEN)));
                }
                Query::Text(text.clone())
            }
            (None, Some(_)) if fleet => {
                return Err(bad("'like' names an event of one node: ask on that node's search topic".into()))
            }
            (None, Some(id)) => Query::Like(Kind::Event, id),
            _ => return Err(bad("a request has either 'text' or 'like'".into())),
        };
        let time = |key: &str, t: &Option<String>| t.as_deref().map(|t| request::parse_time(key, t)).transpose();
        Ok(Search {
            query,
            filter: Filter {
                camera: r.camera.clone(),
                zone: r.zone.clone(),
                since: time("since", &r.since).map_err(bad)?,
                until: time("until", &r.until).map_err(bad)?,
                model: None,
            },
            limit: r.limit.unwrap_or(request::DEFAULT_LIMIT).clamp(1, request::MAX_LIMIT),
            keyframes: r.keyframes.unwrap_or(true),
        })
    }
}

/// How long a fleet search waits for answers by default: a Pi embeds a
/// text with a ViT-B/32's text encoder in well under a second and ranks a
/// year of events in less.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);
