//! `edgeclip classify`: the most likely labels of each image, or of each
//! frame of a Motion-JPEG stream, as text or JSON lines.
//!
//! Also the loading and per-image classification that `eval` shares.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

use super::{ms, ModelArgs};
use crate::capture::still::read_rgb;
use crate::labels::resolve::{default_cache_dir, resolve_file, LabelOptions};
use crate::model::bundle::Bundle;
use crate::model::encode::EncoderOptions;
use crate::model::preprocess::RgbFrame;
use crate::pipeline::classify::Classifier;
use crate::pipeline::matcher::{Matcher, MAX_TOP_K};

/// `edgeclip classify`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Labels file or a .emb file. Default: the bundle's own labels. Labels not in the
    /// bundle's labels.emb are embedded with its text encoder and cached.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// How many labels to print per image (1 to 16).
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// One JSON object per image instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also print the L2-normalized image embedding.
    #[arg(long)]
    pub embedding: bool,
    /// Skip folding the constant chains tract leaves unfolded (slower; for checking).
    #[arg(long)]
    pub no_fold: bool,
    /// Of an MJPEG stream, classify every Nth frame (frames 0, N, 2N, ...).
    #[arg(long, default_value_t = 1)]
    pub every: usize,
    /// Images to classify (PNG or JPEG), or Motion-JPEG streams (.mjpeg, .mjpg), whose
    /// frames are reported as FILE#FRAME.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// Everything `classify` and `eval` need: the bundle, its encoder, the labels
/// chosen by `labels` (see [`resolve_file`]) and a classifier over them.
pub(super) fn load_classifier(
    model: &ModelArgs,
    labels: Option<&Path>,
    options: &EncoderOptions,
) -> anyhow::Result<(Bundle, Arc<Matcher>, Classifier)> {
    let (bundle, encoder) = model.load_image_encoder(options)?;
    let label_options = LabelOptions {
        cache_dir: default_cache_dir(),
        encoder: options.clone(),
        templates: None,
        ..Default::default()
    };
    let (labels, report) = resolve_file(&bundle, labels, &label_options)?;
    tracing::info!(
        "labels: {} from the bundle, {} from the cache, {} embedded now{}",
        report.from_bundle,
        report.from_cache,
        report.embedded,
        report.cache_file.map(|f| format!(" (cache '{}')", f.display())).unwrap_or_default()
    );
    let matcher = Arc::new(Matcher::new(&labels, bundle.embedding_dim, bundle.logit_scale)?);
    let classifier = Classifier::new(&bundle, &encoder, matcher.clone())?;
    Ok((bundle, matcher, classifier))
}

/// Reads one image file and classifies it; returns its size. The scores are
/// in `classifier.scores()`.
pub(super) fn classify_file(classifier: &mut Classifier, path: &Path, top_k: usize) -> anyhow::Result<(u32, u32)> {
    let (w, h, data) = read_rgb(path)?;
    classifier.classify(RgbFrame::new(w, h, &data)?, top_k)?;
    Ok((w, h))
}

/// Decodes one JPEG frame of an MJPEG stream and classifies it.
fn classify_jpeg(classifier: &mut Classifier, jpeg: &[u8], top_k: usize) -> anyhow::Result<(u32, u32)> {
    // The daemon's decoder: a frame it would refuse is refused here too.
    let (w, h, rgb) = crate::capture::still::decode_rgb(jpeg).map_err(|e| anyhow::anyhow!("{e}"))?;
    classifier.classify(RgbFrame::new(w, h, &rgb)?, top_k)?;
    Ok((w, h))
}

/// File endings `classify` reads as Motion-JPEG streams (one result per frame).
const MJPEG_EXTENSIONS: &[&str] = &["mjpeg", "mjpg"];

fn is_mjpeg(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MJPEG_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

#[derive(Serialize)]
struct JsonScore<'a> {
    label: &'a str,
    probability: f32,
    cosine: f32,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    image: String,
    width: u32,
    height: u32,
    model: &'a str,
    top: Vec<JsonScore<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<&'a [f32]>,
}

/// `edgeclip classify`: prints the top labels of each image. An image that
/// cannot be read is reported on stderr and the others still run; the
/// result is an error if any failed.
pub fn classify(args: &ClassifyArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    if args.top == 0 || args.top > MAX_TOP_K {
        bail!("--top {} is out of range: expected 1 to {MAX_TOP_K}", args.top);
    }
    if args.every == 0 {
        bail!("--every 0 is out of range: expected 1 (every frame) or more");
    }
    let options = EncoderOptions { fold_constants: !args.no_fold, ..args.model.encoder_options() };
    let (bundle, matcher, mut classifier) = load_classifier(&args.model, args.labels.as_deref(), &options)?;
    let mut printer = ResultPrinter { args, model: &bundle.name, matcher: &matcher, out, err };

    let mut failures = 0;
    let mut inputs = 0;
    for path in &args.images {
        if !is_mjpeg(path) {
            inputs += 1;
            let started = Instant::now();
            let result = classify_file(&mut classifier, path, args.top);
            let name = path.display().to_string();
            failures += printer.print(&classifier, &name, started, result)? as usize;
            continue;
        }
        let stream = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                inputs += 1;
                failures += 1;
                writeln!(printer.err, "error: cannot read MJPEG stream '{}': {e}", path.display())?;
                continue;
            }
        };
        let mut frames = 0;
        for (index, frame) in crate::capture::mjpeg::MjpegFrames::new(&stream).enumerate() {
            frames += 1;
            if index % args.every != 0 {
                continue;
            }
            inputs += 1;
            let started = Instant::now();
            let name = format!("{}#{index}", path.display());
            let result = frame
                .map_err(anyhow::Error::from)
                .and_then(|f| classify_jpeg(&mut classifier, f.jpeg, args.top))
                .with_context(|| format!("frame {index} of '{}'", path.display()));
            failures += printer.print(&classifier, &name, started, result)? as usize;
        }
        if frames == 0 {
            inputs += 1;
            failures += 1;
            writeln!(printer.err, "error: MJPEG stream '{}' holds no JPEG frame", path.display())?;
        }
    }
    if failures > 0 {
        bail!("{failures} of {inputs} images could not be classified");
    }
    Ok(())
}

/// Where and how `classify` prints each image's result.
struct ResultPrinter<'a> {
    args: &'a ClassifyArgs,
    /// The bundle's name, for the JSON lines.
    model: &'a str,
    matcher: &'a Matcher,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl ResultPrinter<'_> {
    /// Prints the result of one image (or frame) as text or a JSON line; an
    /// error goes to `err`. Returns whether it failed.
    fn print(
        &mut self,
        classifier: &Classifier,
        name: &str,
        started: Instant,
        result: anyhow::Result<(u32, u32)>,
    ) -> anyhow::Result<bool> {
        let (width, height) = match result {
            Ok(wh) => wh,
            Err(e) => {
                writeln!(self.err, "error: {e:#}")?;
                return Ok(true);
            }
        };
        let scores = classifier.scores();
        let names = self.matcher.names();
        if self.args.json {
            let line = JsonResult {
                image: name.to_string(),
                width,
                height,
                model: self.model,
                top: scores
                    .top
                    .iter()
                    .map(|s| JsonScore { label: &names[s.label], probability: s.probability, cosine: s.cosine })
                    .collect(),
                embedding: self.args.embedding.then(|| classifier.embedding()),
            };
            writeln!(self.out, "{}", serde_json::to_string(&line)?)?;
        } else {
            writeln!(self.out, "{name} ({width}x{height}, {:.1} ms)", ms(started.elapsed()))?;
            for s in &scores.top {
                writeln!(self.out, "  {:>6.1}%  cos {:+.3}  {}", s.probability * 100.0, s.cosine, names[s.label])?;
            }
            if self.args.embedding {
                let e: Vec<String> = classifier.embedding().iter().map(|v| format!("{v:.6}")).collect();
                writeln!(self.out, "  embedding [{}]", e.join(", "))?;
            }
        }
        Ok(false)
    }
}
