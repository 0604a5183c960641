//! `edgeclip calibrate`: footage of a camera's scene through exactly the
//! daemon's pipeline for that camera, each label's score recorded on every
//! inferred frame of each zone, and a threshold proposed per label that
//! would have fired no false event there ([`crate::eval::calibrate`] says
//! how). The footage is a recording (`--source`, default the camera's own
//! when it is one) or the live camera for `--minutes`; it is taken to hold
//! none of the labels unless `--truth` says where they are. `--write` puts
//! the thresholds into the labels files (`name @0.62`), keeping everything
//! else in them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::CameraFootageArgs;
use crate::capture::file::FileSource;
use crate::capture::spec::SourceSpec;
use crate::config::Config;
use crate::eval::calibrate::{propose_all, Basis, Proposal, Series};
use crate::eval::pipeline::{camera_pipeline, find_camera, CameraPipeline};
use crate::eval::replay::{replay_watching, Clock};
use crate::eval::truth::Truth;
use crate::labels::file;

/// The frame rate a recording is replayed at when neither the truth nor the
/// source's `?fps=` says: a typical camera's detection stream.
const DEFAULT_RECORDING_FPS: f64 = 10.0;

/// `edgeclip calibrate`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub footage: CameraFootageArgs,
    /// Watch the (live) source this many minutes instead of replaying a recording.
    #[arg(long, value_name = "N", conflicts_with = "truth")]
    pub minutes: Option<f64>,
    /// Where the labels are in the recording (the eval-events truth format);
    /// without it the footage is taken to hold none of them.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// How far above the highest score the scene held without a label its
    /// threshold goes, when no truth shows the label (softmax probability).
    #[arg(long, default_value_t = 0.1)]
    pub margin: f32,
    /// Write the proposed thresholds into the labels files.
    #[arg(long)]
    pub write: bool,
    /// The report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `edgeclip calibrate`: see the module documentation.
pub fn calibrate(args: &CalibrateArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if !(0.0..=0.5).contains(&args.margin) {
        bail!("--margin {} is out of range; accepted: 0 to 0.5 (a softmax probability)", args.margin);
    }
    let config = Config::load(&args.footage.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cam = find_camera(&config, &args.footage.camera, &args.footage.config)?;
    let spec = match &args.footage.source {
        Some(text) => text.parse::<SourceSpec>().map_err(|e| anyhow::anyhow!("--source: {e}"))?,
        None => cam.source.clone(),
    };
    let truth = args.truth.as_deref().map(Truth::load).transpose()?;
    let CameraPipeline { bundle, mut inference, zones } = camera_pipeline(&config, cam)?;

    let (mut source, clock, fps): (Box<dyn crate::capture::FrameSource>, Clock, f64) = match (args.minutes, spec) {
        (Some(minutes), spec) => {
            if !(minutes > 0.0 && minutes <= 24.0 * 60.0) {
                bail!("--minutes {minutes} is out of range; accepted: more than 0, at most a day (1440)");
            }
            let until = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
            let source = spec.open_lazy().with_context(|| format!("source {spec}"))?;
            // The detector's durations go by the frames' own times here;
            // the rate only places recorded frames when checking proposals.
            let fps = cam.max_fps.unwrap_or(DEFAULT_RECORDING_FPS);
            (source, Clock::Live { until }, fps)
        }
        (None, SourceSpec::File(mut file)) => {
            if file.looping {
                bail!("the source '{}' loops; a recording is replayed once: drop '&loop'", file.path.display());
            }
            let fps = truth.as_ref().map(|t| t.fps).or(file.fps).unwrap_or(DEFAULT_RECORDING_FPS);
            // As fast as it is inferred, on the recording's clock.
            file.fps = None;
            let path = file.path.clone();
            let source = FileSource::open(file).with_context(|| format!("the recording '{}'", path.display()))?;
            (Box::new(source), Clock::Recording { fps }, fps)
        }
        (None, spec) => {
            bail!("the source '{spec}' is not a recording; give --minutes N to watch it live, or --source file:PATH")
        }
    };

    // Every label that can fire, per zone, in the zone's label order.
    let mut series: Vec<Series> = Vec::new();
    let mut index: Vec<Vec<Option<usize>>> = Vec::new();
    for zone in &zones {
        let mut of_zone = Vec::new();
        for label in &zone.labels.detector {
            if label.negative {
                of_zone.push(None);
            } else {
                of_zone.push(Some(series.len()));
                series.push(Series {
                    zone: zone.name.clone(),
                    label: label.name.clone(),
                    threshold: label.threshold,
                    scores: Vec::new(),
                });
            }
        }
        index.push(of_zone);
    }
    let started = Instant::now();
    let (_, counts) = replay_watching(source.as_mut(), &mut inference, clock, &mut |frame, inference| {
        for (zone, scores) in inference.inferred_scores() {
            for (label, &score) in scores.iter().enumerate() {
                if let Some(s) = index[zone][label] {
                    series[s].scores.push((frame.sequence, score));
                }
            }
        }
    })?;
    if counts.inferred == 0 {
        bail!("no frame was inferred ({} frames, {} corrupt); nothing to calibrate on", counts.frames, counts.corrupt);
    }
    let proposals = propose_all(&series, truth.as_ref(), cam.detector, args.margin, fps);

    // One threshold per labels file line: a file that several zones read
    // takes the highest, which fires nothing false in any of them.
    let mut writes: BTreeMap<PathBuf, BTreeMap<usize, f32>> = BTreeMap::new();
    for zone in &zones {
        let lines: BTreeMap<String, usize> =
            file::read(&zone.labels_file)?.into_iter().map(|l| (l.name, l.line)).collect();
        for p in proposals.iter().filter(|p| p.zone == zone.name) {
            let Some(&line) = lines.get(&p.label) else {
                bail!(
                    "label '{}' is no longer in '{}' (it changed while calibrating); run calibrate again",
                    p.label,
                    zone.labels_file.display()
                );
            };
            let t = writes.entry(zone.labels_file.clone()).or_default().entry(line).or_insert(p.proposed);
            *t = t.max(p.proposed);
        }
    }
    if args.json {
        let json = serde_json::json!({
            "camera": cam.name,
            "model": bundle.name,
            "frames": counts,
            "seconds": started.elapsed().as_secs_f64(),
            "labels": proposals,
        });
        writeln!(out, "{json}")?;
    } else {
        report(out, &cam.name, &bundle.name, &counts, truth.is_some(), &proposals)?;
    }
    if args.write {
        for (path, thresholds) in &writes {
            file::write_thresholds(path, thresholds)?;
            if !args.json {
                writeln!(out, "wrote {} thresholds into '{}'", thresholds.len(), path.display())?;
            }
        }
    }
    Ok(())
}

/// The report as a table, a line per label and zone.
fn report(
    out: &mut dyn Write,
    camera: &str,
    model: &str,
    counts: &crate::eval::replay::ReplayCounts,
    with_truth: bool,
    proposals: &[Proposal],
) -> anyhow::Result<()> {
    writeln!(
        out,
        "camera '{camera}', model {model}: {} frames, {} inferred{}",
        counts.frames,
        counts.inferred,
        if with_truth { "" } else { "; the footage is taken to hold none of the labels" }
    )?;
    writeln!(
        out,
        "{:<28} {:>31} {:>6} {:>18} {:>7} {:>8} {:>8} {:>8}",
        "label", "scene p50/p90/p99/max", "held", "visits held/p50", "now", "proposed", "false", "found"
    )?;
    let mut false_now = 0;
    let mut false_then = 0;
    for p in proposals {
        let name = match &p.zone {
            Some(z) => format!("{z}/{}", p.label),
            None => p.label.clone(),
        };
        let scene = p
            .scene
            .map(|q| format!("{:.3}/{:.3}/{:.3}/{:.3}", q.p50, q.p90, q.p99, q.max))
            .unwrap_or_else(|| "-".into());
        let visits = match (p.visits_held, p.visits_scores) {
            (Some(h), Some(q)) => format!("{h:.3}/{:.3}", q.p50),
            _ if p.visits > 0 => "too short".into(),
            _ => "-".into(),
        };
        let flag = match p.basis {
            Basis::Separated | Basis::SceneOnly => "",
            Basis::Overlap => "  visits do not clear the scene",
            Basis::Unfireable => "  cannot be separated from the scene",
        };
        writeln!(
            out,
            "{name:<28} {scene:>31} {:>6.3} {visits:>18} {:>7.2} {:>8.2} {:>3} -> {:<2} {:>3} -> {:<2}{flag}",
            p.scene_held,
            p.current,
            p.proposed,
            p.events_now.false_events,
            p.events_proposed.false_events,
            p.events_now.visits_found,
            p.events_proposed.visits_found,
        )?;
        false_now += p.events_now.false_events;
        false_then += p.events_proposed.false_events;
    }
    writeln!(
        out,
        "false events on this footage: {false_now} with the current thresholds, {false_then} with the proposed"
    )?;
    if proposals.iter().any(|p| p.basis == Basis::Unfireable) {
        writeln!(
            out,
            "a label that cannot be separated scores high on this scene without being there: give it a zone that \
             leaves out what it is confused with, a background label ('!') for that, or example images"
        )?;
    }
    Ok(())
}
