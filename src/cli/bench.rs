//! `edgeclip bench`: times preprocessing of a 640×480 frame and the image
//! encoder, one JSON line each, and optionally where the encoder's time goes
//! per operator.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::{ms, ModelArgs};
use crate::model::encode::EncoderOptions;
use crate::model::preprocess::{Preprocessor, RgbFrame};

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
    /// Also print the encoder's time per operator (lines starting with #).
    #[arg(long)]
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
    let fold = !args.no_fold;
    let options = EncoderOptions { fold_constants: fold, ..args.model.encoder_options() };
    let (bundle, encoder) = args.model.load_image_encoder(&options)?;
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
        fold,
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
        fold,
        iters: args.iters,
        median_ms,
        p90_ms,
        min_ms,
    };
    writeln!(out, "{}", serde_json::to_string(&result)?)?;

    if args.profile {
        let rows = session.run_profiled()?;
        let total: Duration = rows.iter().map(|r| r.1).sum();
        // The fifteen slowest operators: where the time goes, on one screen.
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
