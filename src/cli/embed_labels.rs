//! `edgeclip embed-labels`: embeds every label of a labels file with the
//! bundle's text encoder and writes a `labels.emb`, which the daemon and
//! `classify` then read without running the text encoder.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use super::{ms, ModelArgs};
use crate::labels::{file, EmbeddedLabel, LabelEmbeddings};
use crate::model::bundle::Bundle;
use crate::model::encode::text::TextEncoder;

/// `edgeclip embed-labels`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct EmbedLabelsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The labels file.
    pub labels: PathBuf,
    /// Where to write (default: the labels file with the extension .emb).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `edgeclip embed-labels`: embeds every label of a labels file with the
/// bundle's text encoder and writes a `labels.emb` (default: beside the labels
/// file, same name, `.emb`). Prompts longer than the context are named on
/// stderr.
pub fn embed_labels(args: &EmbedLabelsArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    let labels = args.labels.as_path();
    let started = Instant::now();
    let bundle = Bundle::load(&args.model.bundle)?;
    let encoder = TextEncoder::load(&bundle, &args.model.encoder_options())?;
    let wanted = file::read(labels)?;
    let loaded = started.elapsed();
    let mut embedded = Vec::with_capacity(wanted.len());
    let mut warnings = Vec::new();
    for label in &wanted {
        embedded
            .push(EmbeddedLabel::compute(&encoder, label, &mut |l, p| warnings.push(l.truncation_warning(labels, p)))?);
    }
    for warning in &warnings {
        writeln!(err, "warning: {warning}")?;
    }
    let output = args.output.clone().unwrap_or_else(|| labels.with_extension("emb"));
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
