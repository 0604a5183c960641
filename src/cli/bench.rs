//! `edgeclip bench`: times the stages of a frame, one JSON line each:
//! preprocessing of a 640×480 frame, the image encoder, the text encoder
//! (one prompt, tokenizer included) when the bundle has one, and with
//! `--frames` the whole path of a camera frame (JPEG decode, preprocessing,
//! encoder, matching). `--profile` adds where the image encoder's time goes,
//! node by node. `tools/bench/bench.sh` runs it beside onnxruntime.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::{ms, ModelArgs};
use crate::capture::mjpeg::MjpegFrames;
use crate::labels::embeddings::EmbeddedLabel;
use crate::model::encode::text::TextEncoder;
use crate::model::encode::{EncoderOptions, NodeTiming};
use crate::model::preprocess::{Preprocessor, RgbFrame};
use crate::pipeline::classify::Classifier;
use crate::pipeline::jpeg::JpegDecoder;
use crate::pipeline::matcher::Matcher;

/// `edgeclip bench`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Skip folding the constant chains tract leaves unfolded (for comparison).
    #[arg(long)]
    pub no_fold: bool,
    // Twenty timed runs: a stable median and p90 in seconds. The warm-up
    // runs go first, so that first-run costs (allocations, cold caches) are
    // not timed.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Also print the image encoder's slowest nodes and its time per
    /// operator (lines starting with #).
    #[arg(long)]
    pub profile: bool,
    /// An MJPEG file whose frames time the whole frame path: decode,
    /// preprocess, encode, match (e.g. models/tiny-shapes/demo.mjpeg).
    #[arg(long, value_name = "FILE")]
    pub frames: Option<PathBuf>,
    /// Skip the text encoder even when the bundle has one.
    #[arg(long)]
    pub no_text: bool,
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

/// The summary of one stage's timed runs, in milliseconds.
pub struct Timing {
    pub iters: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
}

/// Runs `f` `warmup` times untimed, then `iters` times timed.
fn time_runs(warmup: usize, iters: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Timing> {
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let t = Instant::now();
        f()?;
        if i >= warmup {
            samples.push(ms(t.elapsed()));
        }
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(Timing { iters, median_ms: at(0.5), p90_ms: at(0.9), min_ms: samples[0] })
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
    let fold = !args.no_fold;
    let options = EncoderOptions { fold_constants: fold, ..args.model.encoder_options() };
    let (bundle, encoder) = args.model.load_image_encoder(&options)?;
    let image_precision = bundle.image.encoder.precision.to_string();
    let name = bundle.dir.display().to_string();
    let mut write = |stage: &'static str, precision: &str, threads: usize, timing: Timing| -> anyhow::Result<()> {
        let result = BenchResult {
            runtime: "edgeclip",
            stage,
            bundle: name.clone(),
            precision: precision.to_string(),
            threads,
            fold,
            iters: timing.iters,
            median_ms: timing.median_ms,
            p90_ms: timing.p90_ms,
            min_ms: timing.min_ms,
        };
        Ok(writeln!(out, "{}", serde_json::to_string(&result)?)?)
    };

    let frame_data = synthetic_frame(640, 480);
    let frame = RgbFrame::new(640, 480, &frame_data)?;
    let mut pre = Preprocessor::new(&bundle.image);
    let mut tensor = vec![0f32; pre.output_len()];
    // Preprocessing is ~1000× cheaper than the encoder: time it 10× as often
    // for a stable median at no real cost.
    let timing = time_runs(args.warmup, args.iters * 10, || Ok(pre.run(frame, &mut tensor)?))?;
    write("preprocess-640x480", &image_precision, 1, timing)?;

    let mut session = encoder.session()?;
    session.fill_input(|input| pre.run(frame, input))?;
    let timing = time_runs(args.warmup, args.iters, || {
        session.run()?;
        Ok(())
    })?;
    write("image-encoder", &image_precision, encoder.threads(), timing)?;

    if let Some(path) = &args.frames {
        let timing = time_frame_path(args, path, &bundle, &encoder)?;
        write("frame-640x480", &image_precision, encoder.threads(), timing)?;
    }

    if let (Some(spec), false) = (&bundle.text, args.no_text) {
        let text = TextEncoder::load(&bundle, &options)?;
        let timing = time_runs(args.warmup, args.iters, || {
            text.embed_prompt(BENCH_PROMPT)?;
            Ok(())
        })?;
        write("text-encoder", &spec.encoder.precision.to_string(), encoder.threads(), timing)?;
    }

    if args.profile {
        write_profile(&session.run_profiled()?, out)?;
    }
    Ok(())
}

/// The prompt the text encoder is timed with (tokenizing included), the
/// same as `tools/bench/bench_onnxruntime.py` embeds.
pub const BENCH_PROMPT: &str = "a delivery van parked in front of a house";

/// Frames of the MJPEG file the frame path cycles through (kept as JPEG and
/// decoded on every run): enough that the decoder sees different pictures.
const BENCH_FRAMES: usize = 30;

/// Labels the frame path matches against. Matching costs the same whatever
/// the vectors are, so they are synthetic: a bundle without a labels.emb
/// (the benchmark bundles) is timed the same way as one with.
const BENCH_LABELS: usize = 20;

/// Times decode → preprocess → encode → match for the frames of an MJPEG
/// file, cycling through its first `BENCH_FRAMES`.
fn time_frame_path(
    args: &BenchArgs,
    path: &std::path::Path,
    bundle: &crate::model::bundle::Bundle,
    encoder: &Arc<crate::model::encode::ImageEncoder>,
) -> anyhow::Result<Timing> {
    let data = std::fs::read(path).with_context(|| format!("cannot read --frames {}", path.display()))?;
    let frames: Vec<&[u8]> =
        MjpegFrames::new(&data).filter_map(Result::ok).map(|f| f.jpeg).take(BENCH_FRAMES).collect();
    if frames.is_empty() {
        bail!(
            "--frames {}: no JPEG frame found; give an MJPEG file such as models/tiny-shapes/demo.mjpeg",
            path.display()
        );
    }
    let dim = encoder.embedding_dim();
    let labels: Vec<EmbeddedLabel> = (0..BENCH_LABELS)
        .map(|i| EmbeddedLabel {
            name: format!("label {i}"),
            prompts: Vec::new(),
            vector: (0..dim).map(|j| ((i * 31 + j * 7) % 17) as f32 - 8.0).collect(),
        })
        .collect();
    let matcher = Arc::new(Matcher::new(&labels, dim, bundle.logit_scale)?);
    let mut classifier = Classifier::new(bundle, encoder, matcher)?;
    let mut decoder = JpegDecoder::new();
    let mut rgb = Vec::new();
    let mut next = 0;
    time_runs(args.warmup, args.iters, || {
        let jpeg = frames[next % frames.len()];
        next += 1;
        let (width, height) = decoder.decode(jpeg, &mut rgb)?;
        classifier.classify(RgbFrame::new(width, height, &rgb)?, 1)?;
        Ok(())
    })
}

/// How many of the slowest nodes the profile lists: enough to cover most of
/// any encoder's time on one screen.
const PROFILE_TOP_NODES: usize = 20;

/// The profile of one run, as comment lines after the JSON: the slowest
/// nodes with their operator, kernel and shapes, then the time per operator.
fn write_profile(rows: &[NodeTiming], out: &mut dyn Write) -> anyhow::Result<()> {
    let total: Duration = rows.iter().map(|r| r.time).sum();
    let share = |t: Duration| 100.0 * t.as_secs_f64() / total.as_secs_f64().max(f64::MIN_POSITIVE);
    writeln!(out, "# profile: {} nodes, {:.2} ms in all; the {PROFILE_TOP_NODES} slowest:", rows.len(), ms(total))?;
    for r in rows.iter().take(PROFILE_TOP_NODES) {
        let op = if r.detail.is_empty() { r.op.clone() } else { format!("{} ({})", r.op, r.detail) };
        writeln!(
            out,
            "# {:>8.3} ms {:>5.1}%  {:<40} {} -> {}  {}",
            ms(r.time),
            share(r.time),
            op,
            r.input_shape,
            r.output_shape,
            r.node
        )?;
    }
    let mut per_op: BTreeMap<&str, (Duration, usize)> = BTreeMap::new();
    for r in rows {
        let entry = per_op.entry(&r.op).or_default();
        entry.0 += r.time;
        entry.1 += 1;
    }
    let mut per_op: Vec<_> = per_op.into_iter().collect();
    per_op.sort_by_key(|(_, (t, _))| std::cmp::Reverse(*t));
    writeln!(out, "# per operator:")?;
    for (op, (time, nodes)) in per_op {
        writeln!(out, "# {:>8.3} ms {:>5.1}%  {nodes:>4} nodes  {op}", ms(time), share(time))?;
    }
    Ok(())
}
