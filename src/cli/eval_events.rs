//! `edgeclip eval-events`: a recording through exactly the daemon's
//! pipeline for one camera of a configuration (its zones, labels,
//! thresholds, detector, motion gate and `max_fps`), its events scored
//! against the
//! recording's ground truth (see [`crate::eval`]), as a table or one JSON
//! object.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::Serialize;

use super::CameraFootageArgs;
use crate::capture::file::FileSource;
use crate::capture::spec::SourceSpec;
use crate::config::Config;
use crate::eval::pipeline::{camera_pipeline, find_camera, CameraPipeline};
use crate::eval::replay::{replay, ReplayCounts};
use crate::eval::score::{score, Report, Score};
use crate::eval::truth::Truth;

/// `edgeclip eval-events`' arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalEventsArgs {
    #[command(flatten)]
    pub footage: CameraFootageArgs,
    /// The recording's ground truth (JSON: fps, frames, and per label the
    /// frame intervals it is visible in).
    #[arg(long, value_name = "FILE")]
    pub truth: PathBuf,
    /// The report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The JSON report.
#[derive(Serialize)]
struct JsonReport<'a> {
    camera: &'a str,
    model: &'a str,
    frames: &'a ReplayCounts,
    #[serde(flatten)]
    score: &'a Report,
}

/// `edgeclip eval-events`: see the module documentation.
pub fn eval_events(args: &EvalEventsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let config = Config::load(&args.footage.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cam = find_camera(&config, &args.footage.camera, &args.footage.config)?;
    let spec = match &args.footage.source {
        Some(text) => text.parse::<SourceSpec>().map_err(|e| anyhow::anyhow!("--source: {e}"))?,
        None => cam.source.clone(),
    };
    let SourceSpec::File(mut file) = spec else {
        bail!(
            "the source '{spec}' is not a recording; eval-events replays a file: give --source file:PATH \
             (a Motion-JPEG file or a folder of images)"
        );
    };
    if file.looping {
        bail!("the source '{}' loops; a recording is scored once through: drop '&loop'", file.path.display());
    }
    let truth = Truth::load(&args.truth)?;
    // Replayed as fast as it is inferred, on the truth's clock.
    file.fps = None;
    let path = file.path.clone();
    let mut source = FileSource::open(file).with_context(|| format!("the recording '{}'", path.display()))?;

    let CameraPipeline { bundle, mut inference, .. } = camera_pipeline(&config, cam)?;
    let (events, counts) = replay(&mut source, &mut inference, truth.fps)?;
    let report = score(&truth, &events);
    if args.json {
        let json = JsonReport { camera: &cam.name, model: &bundle.name, frames: &counts, score: &report };
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "camera '{}', model {}: {} frames ({:.1} min at {} fps), {} inferred, {} still, {} over max_fps, {} corrupt",
        cam.name,
        bundle.name,
        counts.frames,
        report.seconds / 60.0,
        truth.fps,
        counts.inferred,
        counts.still,
        counts.rate_skipped,
        counts.corrupt
    )?;
    let name = |s: &Score| match (&s.zone, &s.label) {
        (Some(z), Some(l)) => format!("{z}/{l}"),
        (None, Some(l)) => l.clone(),
        (_, None) => "all".to_string(),
    };
    let width = report.per_label.iter().map(|s| name(s).chars().count()).max().unwrap_or(5).max(5);
    writeln!(
        out,
        "  {:<width$}  {:>6}  {:>5}  {:>6}  {:>5}  {:>9}  {:>6}  {:>8}  {:>15}  {:>15}",
        "label",
        "events",
        "false",
        "visits",
        "found",
        "precision",
        "recall",
        "false/h",
        "start s med/max",
        "end s med/max"
    )?;
    for s in report.per_label.iter().chain([&report.total]) {
        let latency = |l: Option<crate::eval::score::Latency>| match l {
            Some(l) => format!("{:.1}/{:.1}", l.median_s, l.max_s),
            None => "-".to_string(),
        };
        writeln!(
            out,
            "  {:<width$}  {:>6}  {:>5}  {:>6}  {:>5}  {:>9.2}  {:>6.2}  {:>8.1}  {:>15}  {:>15}",
            name(s),
            s.events,
            s.false_events,
            s.visits,
            s.found,
            s.precision,
            s.recall,
            s.false_per_hour,
            latency(s.start_latency),
            latency(s.end_latency)
        )?;
    }
    Ok(())
}
