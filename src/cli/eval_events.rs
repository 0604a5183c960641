//! `edgeclip eval-events`: a recording through exactly the daemon's
//! pipeline for one camera of a configuration (its zones, labels,
//! thresholds, detector, motion gate and `max_fps`), its events scored
//! against the
//! recording's ground truth (see [`crate::eval`]), as a table or one JSON
//! object.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::capture::file::FileSource;
use crate::capture::spec::SourceSpec;
use crate::config::Config;
use crate::daemon::camera_labels::{CameraLabels, LabelsOrigin};
use crate::eval::replay::{replay, ReplayCounts};
use crate::eval::score::{score, Report, Score};
use crate::eval::truth::Truth;
use crate::labels::resolve::LabelOptions;
use crate::model::bundle::Bundle;
use crate::model::encode::{EncoderOptions, ImageEncoder};
use crate::pipeline::classify::Classifier;
use crate::pipeline::inference::{Inference, InferenceOptions, ZoneSetup};

/// `edgeclip eval-events`' arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalEventsArgs {
    /// The daemon's configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The camera whose labels and settings are used.
    #[arg(long, value_name = "NAME")]
    pub camera: String,
    /// The recording: a Motion-JPEG file or a folder of images
    /// ('file:PATH' or a path); default: the camera's source, if it is one.
    #[arg(long, value_name = "SPEC")]
    pub source: Option<String>,
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
    let config = Config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(cam) = config.cameras.iter().find(|c| c.name == args.camera) else {
        let names: Vec<&str> = config.cameras.iter().map(|c| c.name.as_str()).collect();
        bail!("no camera '{}' in '{}'; its cameras: {}", args.camera, args.config.display(), names.join(", "));
    };
    let spec = match &args.source {
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

    let encoder_options = EncoderOptions { threads: config.model.threads, fold_constants: true };
    let bundle =
        Bundle::load(&config.model.path).with_context(|| format!("model.path '{}'", config.model.path.display()))?;
    let encoder = Arc::new(ImageEncoder::load(&bundle, &encoder_options)?);
    let cache_dir = std::env::var_os("EDGECLIP_CACHE_DIR").map(PathBuf::from).unwrap_or(config.model.cache_dir.clone());
    let label_options = LabelOptions {
        cache_dir: Some(cache_dir),
        encoder: encoder_options,
        templates: None,
        zone: None,
        image_encoder: Some(Arc::clone(&encoder)),
    };
    let mut zones = Vec::new();
    for zone in &cam.zones {
        let text = crate::labels::file::read_text(&zone.labels)?;
        let origin = LabelsOrigin::File(zone.labels.clone());
        let options = LabelOptions { zone: Some(zone.rect), ..label_options.clone() };
        let (labels, _) = CameraLabels::load(&bundle, origin, &text, zone.threshold, &options)?;
        zones.push(ZoneSetup {
            name: zone.name.clone(),
            rect: zone.rect,
            matcher: labels.matcher.clone(),
            labels: labels.detector.clone(),
        });
    }
    let classifier = Classifier::new(&bundle, &encoder, zones[0].matcher.clone())?;
    let options = InferenceOptions { detector: cam.detector, motion: cam.motion, max_fps: cam.max_fps };
    // No GPIO input: a recording has no sensor beside it.
    let mut inference = Inference::new(classifier, zones, options, None, bundle.image.size);

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
