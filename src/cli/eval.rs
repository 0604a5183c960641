//! `edgeclip eval`: zero-shot top-1 accuracy on a labelled image folder
//! (`DATA/<label>/<image>.png`, see [`crate::model::evaluate`]), as a table or one
//! JSON object.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;

use super::classify::{classify_file, load_classifier};
use super::ModelArgs;
use crate::model::evaluate;

/// `edgeclip eval`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Labels file or .emb file; default: DATA/labels.txt if there is one, else the
    /// bundle's own labels.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// The labelled folder: one sub-folder per label, named as the label.
    #[arg(long)]
    pub data: PathBuf,
    /// The report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `edgeclip eval`: zero-shot top-1 accuracy on a labelled image folder.
/// Unreadable images are reported on stderr and make the run fail after the
/// report.
pub fn eval(args: &EvalArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    let options = args.model.encoder_options();
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
