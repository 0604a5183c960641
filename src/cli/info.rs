//! `edgeclip info`: what a model bundle holds (its encoders, their inputs and
//! operators, its labels) and how tract runs it on this CPU.

use std::collections::BTreeMap;
use std::io::Write;

use super::{ms, ModelArgs};
use crate::labels::resolve::{resolve_file, LabelOptions};
use crate::model::encode::{onnx_op_counts, EncoderReport};

/// `edgeclip info`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
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
pub fn info(args: &InfoArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (bundle, encoder) = args.model.load_image_encoder(&args.model.encoder_options())?;
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
        LabelOptions { cache_dir: None, encoder: args.model.encoder_options(), templates: None, ..Default::default() };
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
        "  tract plan  {} nodes, {} constant chains folded, {} dynamic quantizations vectorized, loaded in {:.0} ms",
        report.plan_nodes,
        report.folded_nodes,
        report.quantize_nodes,
        ms(report.load_time)
    )?;
    let kernels = if report.kernels.is_empty() { "none".to_string() } else { counts_line(&report.kernels) };
    writeln!(out, "  kernels     {kernels} (tract matrix-multiply kernels chosen on this CPU)")?;
    Ok(())
}
