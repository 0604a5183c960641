//! The one-shot subcommands: `classify`, `eval`, `info`, `bench`, `tokenize`,
//! `embed-labels` and `capture`.
//!
//! Each takes its parsed arguments and a writer for its output, so that the
//! binary stays a thin argument parser and tests can run the same code.
//! Errors carry the cause in one line; the binary prints them with `{:#}`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::labels::resolve::{default_cache_dir, resolve_file, LabelOptions};
use crate::model::bundle::Bundle;
use crate::model::encode::{onnx_op_counts, EncoderOptions, EncoderReport, ImageEncoder};
use crate::model::evaluate;
use crate::model::preprocess::{Preprocessor, RgbFrame};
use crate::pipeline::classify::Classifier;
use crate::pipeline::matcher::{Matcher, MAX_TOP_K};

/// Loads an image file as RGB8.
pub fn read_rgb(path: &Path) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("cannot open image '{}'", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read image '{}'", path.display()))?
        .decode()
        .with_context(|| format!("cannot decode image '{}' (accepted: PNG, JPEG)", path.display()))?
        .into_rgb8();
    let (w, h) = img.dimensions();
    Ok((w, h, img.into_raw()))
}

fn load_bundle_and_encoder(model: &Path, options: &EncoderOptions) -> anyhow::Result<(Bundle, Arc<ImageEncoder>)> {
    let bundle = Bundle::load(model)?;
    let encoder = ImageEncoder::load(&bundle, options)?;
    Ok((bundle, Arc::new(encoder)))
}

/// Everything `classify` and `eval` need: the bundle, its encoder, the labels
/// chosen by `labels` (see [`load_labels`]) and a classifier over them.
fn load_classifier(
    model: &Path,
    labels: Option<&Path>,
    options: &EncoderOptions,
) -> anyhow::Result<(Bundle, Arc<Matcher>, Classifier)> {
    let (bundle, encoder) = load_bundle_and_encoder(model, options)?;
    let label_options = LabelOptions { cache_dir: default_cache_dir(), encoder: options.clone(), templates: None };
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
fn classify_file(classifier: &mut Classifier, path: &Path, top_k: usize) -> anyhow::Result<(u32, u32)> {
    let (w, h, data) = read_rgb(path)?;
    classifier.classify(RgbFrame::new(w, h, &data)?, top_k)?;
    Ok((w, h))
}

/// Decodes one JPEG frame of an MJPEG stream and classifies it.
fn classify_jpeg(classifier: &mut Classifier, jpeg: &[u8], top_k: usize) -> anyhow::Result<(u32, u32)> {
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)?.into_rgb8();
    let (w, h) = img.dimensions();
    classifier.classify(RgbFrame::new(w, h, img.as_raw())?, top_k)?;
    Ok((w, h))
}

/// File endings `classify` reads as Motion-JPEG streams (one result per frame).
const MJPEG_EXTENSIONS: &[&str] = &["mjpeg", "mjpg"];

fn is_mjpeg(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MJPEG_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

pub struct ClassifyArgs {
    pub model: PathBuf,
    pub labels: Option<PathBuf>,
    pub top: usize,
    pub json: bool,
    pub embedding: bool,
    pub threads: usize,
    /// Skip the constant folding (to check that it changes no output).
    pub no_fold: bool,
    /// Of an MJPEG stream, classify frames 0, N, 2N, ...
    pub every: usize,
    pub images: Vec<PathBuf>,
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
    let options = EncoderOptions { threads: args.threads, fold_constants: !args.no_fold };
    let (bundle, matcher, mut classifier) = load_classifier(&args.model, args.labels.as_deref(), &options)?;

    let mut failures = 0;
    let mut inputs = 0;
    for path in &args.images {
        if !is_mjpeg(path) {
            inputs += 1;
            let started = Instant::now();
            let result = classify_file(&mut classifier, path, args.top);
            let name = path.display().to_string();
            failures += report_one(args, &bundle, &matcher, &classifier, &name, started, result, out, err)? as usize;
            continue;
        }
        let stream = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                inputs += 1;
                failures += 1;
                writeln!(err, "error: cannot read MJPEG stream '{}': {e}", path.display())?;
                continue;
            }
        };
        for (index, frame) in crate::capture::mjpeg::MjpegFrames::new(&stream).enumerate() {
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
            failures += report_one(args, &bundle, &matcher, &classifier, &name, started, result, out, err)? as usize;
        }
    }
    if failures > 0 {
        bail!("{failures} of {inputs} images could not be classified");
    }
    Ok(())
}

/// Prints the result of one image (or frame) as text or a JSON line; an error
/// goes to `err`. Returns whether it failed.
#[allow(clippy::too_many_arguments)]
fn report_one(
    args: &ClassifyArgs,
    bundle: &Bundle,
    matcher: &Matcher,
    classifier: &Classifier,
    name: &str,
    started: Instant,
    result: anyhow::Result<(u32, u32)>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<bool> {
    let (width, height) = match result {
        Ok(wh) => wh,
        Err(e) => {
            writeln!(err, "error: {e:#}")?;
            return Ok(true);
        }
    };
    let scores = classifier.scores();
    let names = matcher.names();
    if args.json {
        let line = JsonResult {
            image: name.to_string(),
            width,
            height,
            model: &bundle.name,
            top: scores
                .top
                .iter()
                .map(|s| JsonScore { label: &names[s.label], probability: s.probability, cosine: s.cosine })
                .collect(),
            embedding: args.embedding.then(|| classifier.embedding()),
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
    } else {
        writeln!(out, "{name} ({width}x{height}, {:.1} ms)", ms(started.elapsed()))?;
        for s in &scores.top {
            writeln!(out, "  {:>6.1}%  cos {:+.3}  {}", s.probability * 100.0, s.cosine, names[s.label])?;
        }
        if args.embedding {
            let e: Vec<String> = classifier.embedding().iter().map(|v| format!("{v:.6}")).collect();
            writeln!(out, "  embedding [{}]", e.join(", "))?;
        }
    }
    Ok(false)
}

pub struct EvalArgs {
    pub model: PathBuf,
    pub labels: Option<PathBuf>,
    pub data: PathBuf,
    pub json: bool,
    pub threads: usize,
}

/// `edgeclip eval`: zero-shot top-1 accuracy on a labelled image folder
/// (see [`crate::model::evaluate`]). Unreadable images are reported on stderr and
/// make the run fail after the report.
pub fn eval(args: &EvalArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    let options = EncoderOptions { threads: args.threads, ..Default::default() };
    // The data set's own labels file (as tools/demo_model/render.py writes it)
    // names exactly its classes; the bundle's may hold others.
    let data_labels = args.data.join("labels.txt");
    let labels = args.labels.as_deref().or_else(|| data_labels.is_file().then_some(data_labels.as_path()));
    let (bundle, matcher, mut classifier) = load_classifier(&args.model, labels, &options)?;
    let samples = evaluate::discover(&args.data, matcher.names())?;
    let mut tally = evaluate::Tally::new(matcher.names());
    for sample in &samples {
        match classify_file(&mut classifier, &sample.path, 1) {
            Ok(_) => tally.add(sample.label, classifier.scores().top[0].label),
            Err(e) => {
                tally.failed += 1;
                writeln!(err, "error: {e:#}")?;
            }
        }
    }
    let report = tally.report();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        writeln!(
            out,
            "{} images in {} labels: top-1 {:.1}% ({}/{}), model {}",
            report.images,
            report.per_label.len(),
            report.top1 * 100.0,
            report.correct,
            report.images,
            bundle.name
        )?;
        let width = report.per_label.iter().map(|l| l.label.chars().count()).max().unwrap_or(5).max(5);
        writeln!(out, "  {:<width$}  {:>6}  {:>6}", "label", "images", "top-1")?;
        for l in &report.per_label {
            writeln!(out, "  {:<width$}  {:>6}  {:>5.1}%", l.label, l.images, l.accuracy * 100.0)?;
        }
        if !report.confusions.is_empty() {
            // The ten largest cells: enough to see a pattern on one screen.
            writeln!(out, "most frequent mistakes (truth -> predicted):")?;
            for c in report.confusions.iter().take(10) {
                writeln!(out, "  {} -> {}: {}", c.truth, c.predicted, c.images)?;
            }
        }
    }
    if report.failed > 0 {
        bail!("{} of {} images could not be read", report.failed, samples.len());
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn counts_line(counts: &BTreeMap<String, usize>) -> String {
    counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// `edgeclip info`: what the bundle holds and how tract runs it here.
pub fn info(model: &Path, threads: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    let options = EncoderOptions { threads, ..Default::default() };
    let (bundle, encoder) = load_bundle_and_encoder(model, &options)?;
    let img = &bundle.image;
    writeln!(out, "bundle        {}", bundle.dir.display())?;
    writeln!(out, "name          {}", bundle.name)?;
    writeln!(out, "embedding     {} dimensions, logit scale {}", bundle.embedding_dim, bundle.logit_scale)?;
    writeln!(out, "source        {}", bundle.source)?;
    writeln!(out, "licence       {}", bundle.licence)?;
    let size = std::fs::metadata(&img.encoder.path).map(|m| m.len()).unwrap_or(0);
    writeln!(out, "image encoder {} ({}, sha256 ok)", img.encoder.path.display(), human_size(size))?;
    writeln!(out, "  precision   {}", img.encoder.precision)?;
    writeln!(
        out,
        "  input       {} [1, 3, {s}, {s}] f32: shortest edge to {} ({}), center crop, mean {:?}, std {:?}",
        img.encoder.input,
        img.resize_shortest_edge,
        img.resize_filter.as_str(),
        img.mean,
        img.std,
        s = img.size
    )?;
    writeln!(out, "  output      {} [1, {}] f32", img.encoder.output, bundle.embedding_dim)?;
    print_report(&encoder.report, out)?;
    match &bundle.text {
        None => writeln!(out, "text encoder  none (labels must be in labels.emb)")?,
        Some(text) => {
            let size = std::fs::metadata(&text.encoder.path).map(|m| m.len()).unwrap_or(0);
            writeln!(out, "text encoder  {} ({}, sha256 ok)", text.encoder.path.display(), human_size(size))?;
            writeln!(out, "  precision   {}", text.encoder.precision)?;
            writeln!(out, "  tokenizer   {}, context length {}", text.tokenizer, text.context_length)?;
            writeln!(out, "  operators   {}", counts_line(&onnx_op_counts(&text.encoder.path)?))?;
        }
    }
    let label_options =
        LabelOptions { cache_dir: None, encoder: EncoderOptions { threads, ..Default::default() }, templates: None };
    match resolve_file(&bundle, None, &label_options) {
        Ok((labels, report)) if report.from_bundle == labels.len() => writeln!(
            out,
            "labels        {}: {} labels, all embedded in {}",
            bundle.labels_file.display(),
            labels.len(),
            bundle.labels_embeddings.display()
        )?,
        Ok((labels, report)) => writeln!(
            out,
            "labels        {}: {} labels, {} embedded in {}, {} not (the text encoder embeds them when the labels load)",
            bundle.labels_file.display(),
            labels.len(),
            report.from_bundle,
            bundle.labels_embeddings.display(),
            report.embedded
        )?,
        Err(e) => writeln!(out, "labels        problem: {e:#}")?,
    }
    writeln!(out, "threads       {} for matrix multiplication", encoder.threads())?;
    Ok(())
}

fn print_report(report: &EncoderReport, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "  operators   {}", counts_line(&report.onnx_ops))?;
    writeln!(
        out,
        "  tract plan  {} nodes, {} constant chains folded, loaded in {:.0} ms",
        report.plan_nodes,
        report.folded_nodes,
        ms(report.load_time)
    )?;
    let kernels = if report.kernels.is_empty() { "none".to_string() } else { counts_line(&report.kernels) };
    writeln!(out, "  kernels     {kernels} (tract matrix-multiply kernels chosen on this CPU)")?;
    Ok(())
}

pub struct BenchArgs {
    pub model: PathBuf,
    pub threads: usize,
    pub fold: bool,
    pub iters: usize,
    pub warmup: usize,
    /// Also print where the encoder's time goes, per operator.
    pub profile: bool,
}

/// One benchmark measurement, printed as a JSON line.
#[derive(Serialize)]
pub struct BenchResult {
    pub runtime: &'static str,
    pub stage: &'static str,
    pub bundle: String,
    pub precision: String,
    pub threads: usize,
    pub fold: bool,
    pub iters: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
}

/// Runs `f` `warmup` times untimed, then `iters` times timed; returns the
/// (median, p90, min) in milliseconds.
fn time_runs(
    warmup: usize,
    iters: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64, f64)> {
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let t = Instant::now();
        f()?;
        if i >= warmup {
            samples.push(ms(t.elapsed()));
        }
    }
    Ok(summarize(samples))
}

fn summarize(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), samples[0])
}

/// A deterministic RGB8 test frame of any size: gradients and a checkerboard,
/// the same in every run so that timings stay comparable.
pub fn synthetic_frame(width: u32, height: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let check = if ((x / 16) + (y / 16)) % 2 == 0 { 40 } else { 0 };
            data.push(((x * 255 / width) as u8).saturating_add(check));
            data.push((y * 255 / height) as u8);
            data.push((((x + y) * 7) % 256) as u8);
        }
    }
    data
}

/// `edgeclip bench`: times preprocessing of a 640×480 frame and the image
/// encoder, printing one JSON line for each.
pub fn bench(args: &BenchArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let options = EncoderOptions { threads: args.threads, fold_constants: args.fold };
    let (bundle, encoder) = load_bundle_and_encoder(&args.model, &options)?;
    let precision = bundle.image.encoder.precision.to_string();
    let name = bundle.dir.display().to_string();

    let frame_data = synthetic_frame(640, 480);
    let frame = RgbFrame::new(640, 480, &frame_data)?;
    let mut pre = Preprocessor::new(&bundle.image);
    let mut tensor = vec![0f32; pre.output_len()];
    // Preprocessing is ~1000× cheaper than the encoder: time it 10× as often
    // for a stable median at no real cost.
    let (median_ms, p90_ms, min_ms) = time_runs(args.warmup, args.iters * 10, || Ok(pre.run(frame, &mut tensor)?))?;
    let result = BenchResult {
        runtime: "edgeclip",
        stage: "preprocess-640x480",
        bundle: name.clone(),
        precision: precision.clone(),
        threads: 1,
        fold: args.fold,
        iters: args.iters * 10,
        median_ms,
        p90_ms,
        min_ms,
    };
    writeln!(out, "{}", serde_json::to_string(&result)?)?;

    let mut session = encoder.session()?;
    session.fill_input(|input| pre.run(frame, input))?;
    let (median_ms, p90_ms, min_ms) = time_runs(args.warmup, args.iters, || {
        session.run()?;
        Ok(())
    })?;
    let result = BenchResult {
        runtime: "edgeclip",
        stage: "image-encoder",
        bundle: name,
        precision,
        threads: encoder.threads(),
        fold: args.fold,
        iters: args.iters,
        median_ms,
        p90_ms,
        min_ms,
    };
    writeln!(out, "{}", serde_json::to_string(&result)?)?;

    if args.profile {
        let rows = session.run_profiled()?;
        let total: Duration = rows.iter().map(|r| r.1).sum();
        for (op, time, nodes) in rows.iter().take(15) {
            writeln!(
                out,
                "# {:>8.2} ms {:>5.1}%  {nodes:>4} nodes  {op}",
                ms(*time),
                100.0 * time.as_secs_f64() / total.as_secs_f64(),
            )?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonTokens<'a> {
    text: &'a str,
    clean: String,
    ids: &'a [i64],
    tokens: usize,
    truncated: bool,
}

/// `edgeclip tokenize`: the CLIP token ids of each text, as the text encoder
/// reads them (start token, tokens, end token; the zero padding is left out
/// of the text form), with a warning when the text is longer than the context.
pub fn tokenize(texts: &[String], json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    use crate::model::tokenize::{clean::clean, ClipTokenizer, CONTEXT_LENGTH};
    let tokenizer = ClipTokenizer::new();
    for text in texts {
        let t = tokenizer.tokenize(text, CONTEXT_LENGTH);
        if json {
            let line =
                JsonTokens { text, clean: clean(text), ids: &t.ids, tokens: t.tokens.len(), truncated: t.truncated };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
            continue;
        }
        let framed = t.tokens.len().min(CONTEXT_LENGTH - 2) + 2;
        let ids: Vec<String> = t.ids[..framed].iter().map(|i| i.to_string()).collect();
        writeln!(out, "{text:?}")?;
        writeln!(out, "  cleaned   {:?}", clean(text))?;
        writeln!(out, "  {} tokens  {}", t.tokens.len(), ids.join(" "))?;
        if t.truncated {
            writeln!(
                out,
                "  warning: {} tokens do not fit the {CONTEXT_LENGTH}-token context; the text encoder sees only the first {}",
                t.tokens.len(),
                CONTEXT_LENGTH - 2
            )?;
        }
    }
    Ok(())
}

/// `edgeclip embed-labels`: embeds every label of a labels file with the
/// bundle's text encoder and writes a `labels.emb` (default: beside the labels
/// file, same name, `.emb`). Prompts longer than the context are named on
/// stderr.
pub fn embed_labels(
    model: &Path,
    labels: &Path,
    output: Option<&Path>,
    threads: usize,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    use crate::labels::{file::read as read_labels, LabelEmbeddings};
    use crate::model::encode::text::TextEncoder;

    let started = Instant::now();
    let bundle = Bundle::load(model)?;
    let encoder = TextEncoder::load(&bundle, &EncoderOptions { threads, ..Default::default() })?;
    let wanted = read_labels(labels)?;
    let loaded = started.elapsed();
    let mut embedded = Vec::with_capacity(wanted.len());
    let mut warnings = Vec::new();
    for label in &wanted {
        embedded.push(encoder.embed_label(label, &mut |l, p| warnings.push(l.truncation_warning(labels, p)))?);
    }
    for warning in &warnings {
        writeln!(err, "warning: {warning}")?;
    }
    let output = output.map(Path::to_path_buf).unwrap_or_else(|| labels.with_extension("emb"));
    let emb = LabelEmbeddings { dim: bundle.embedding_dim, text_encoder_sha256: encoder.sha256, labels: embedded };
    std::fs::write(&output, emb.to_bytes()).with_context(|| format!("cannot write '{}'", output.display()))?;
    let prompts: usize = wanted.iter().map(|l| l.prompts.len()).sum();
    writeln!(
        out,
        "{}: {} labels ({prompts} prompts) embedded with {} in {:.0} ms (loading {:.0} ms, embedding {:.0} ms)",
        output.display(),
        wanted.len(),
        bundle.text.as_ref().map(|t| t.encoder.path.display().to_string()).unwrap_or_default(),
        ms(started.elapsed()),
        ms(loaded),
        ms(started.elapsed() - loaded)
    )?;
    Ok(())
}

/// `edgeclip capture`'s arguments.
pub struct CaptureArgs {
    pub source: crate::capture::SourceSpec,
    pub frames: u64,
    pub out_dir: PathBuf,
    /// Write every frame as the RGB image edgeclip converts it to (PNG),
    /// instead of a camera's JPEG as it came.
    pub rgb: bool,
}

/// Errors in a row (timeouts, a camera gone) after which `capture` gives up:
/// with the exec source's 10 s timeout that is about a minute of nothing.
const CAPTURE_MAX_ERRORS_IN_ROW: u32 = 6;

/// `edgeclip capture`: writes frames from any source as image files, one
/// line per frame, for checking a camera. A frame that does not decode is
/// reported and skipped, as the daemon would.
pub fn capture(args: &CaptureArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    use crate::capture::{CaptureErrorKind, PixelFormat};
    use crate::pipeline::convert::{Converter, RgbImage};

    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("cannot create '{}'", args.out_dir.display()))?;
    let mut source = args.source.open()?;
    writeln!(out, "capturing {} frames from {}", args.frames, source.describe())?;
    let mut converter = Converter::new(None);
    let mut rgb = RgbImage::new();
    let (mut written, mut skipped, mut errors_in_row) = (0u64, 0u64, 0u32);
    let started = Instant::now();
    while written < args.frames {
        let frame = match source.next_frame() {
            Ok(frame) => frame,
            Err(e) => match e.kind {
                CaptureErrorKind::Corrupt => {
                    skipped += 1;
                    writeln!(out, "skipped: {e}")?;
                    continue;
                }
                CaptureErrorKind::Ended => {
                    writeln!(out, "{e}")?;
                    break;
                }
                CaptureErrorKind::Busy | CaptureErrorKind::Disconnected | CaptureErrorKind::Timeout => {
                    errors_in_row += 1;
                    writeln!(out, "waiting: {e}")?;
                    if errors_in_row >= CAPTURE_MAX_ERRORS_IN_ROW {
                        bail!("gave up after {errors_in_row} errors in a row from {}: {e}", source.describe());
                    }
                    continue;
                }
                CaptureErrorKind::Other => return Err(anyhow::Error::new(e)),
            },
        };
        errors_in_row = 0;
        let (sequence, format, bytes) = (frame.sequence, frame.format, frame.data.len());
        if let Err(e) = converter.convert(&frame, &mut rgb) {
            skipped += 1;
            writeln!(out, "skipped frame {sequence}: {e}")?;
            continue;
        }
        let name = format!("frame-{written:06}");
        let path = if format == PixelFormat::Mjpeg && !args.rgb {
            let path = args.out_dir.join(format!("{name}.jpg"));
            std::fs::write(&path, frame.data).with_context(|| format!("cannot write '{}'", path.display()))?;
            path
        } else {
            let path = args.out_dir.join(format!("{name}.png"));
            image::save_buffer(&path, &rgb.data, rgb.width, rgb.height, image::ExtendedColorType::Rgb8)
                .with_context(|| format!("cannot write '{}'", path.display()))?;
            path
        };
        writeln!(
            out,
            "frame {sequence}: {format} {}x{}, {bytes} bytes, at {:.3} s -> {}",
            rgb.width,
            rgb.height,
            started.elapsed().as_secs_f64(),
            path.display()
        )?;
        written += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "wrote {written} frames to {} in {seconds:.2} s ({:.1} frames/s); {skipped} skipped as corrupt",
        args.out_dir.display(),
        written as f64 / seconds.max(1e-9)
    )?;
    Ok(())
}

/// `edgeclip check-config`: validates a configuration file and summarizes
/// what the daemon would run; the error names the file, line and key.
pub fn check_config(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    use crate::config::{Broker, Config};
    let config = Config::load(path)?;
    let broker = match &config.mqtt.broker {
        Broker::Embedded { listen } => format!("embedded broker on {listen}"),
        Broker::External { host, port, tls } => format!("{}://{host}:{port}", if *tls { "mqtts" } else { "mqtt" }),
    };
    writeln!(out, "{}: ok", path.display())?;
    writeln!(out, "  node      {} (topics under {}/{}/)", config.node, config.mqtt.topic_prefix, config.node)?;
    writeln!(out, "  model     {} ({} threads)", config.model.path.display(), config.model.threads)?;
    writeln!(out, "  mqtt      {broker}, client id '{}', QoS {}", config.mqtt.client_id, config.mqtt.qos)?;
    for c in &config.cameras {
        let motion = if c.motion.is_some() { "motion gate on" } else { "motion gate off" };
        let rate = c.max_fps.map_or("every frame".to_string(), |f| format!("at most {f} inferences/s"));
        let state = if c.enabled { "" } else { " (disabled)" };
        writeln!(out, "  camera    {}{state}: {}, labels {}, {rate}, {motion}", c.name, c.source, c.labels.display())?;
    }
    Ok(())
}
