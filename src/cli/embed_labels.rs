//! `edgeclip embed-labels`: embeds every label of a labels file with the
//! bundle's text encoder (and its example images with the image encoder)
//! and writes a `labels.emb`, which the daemon and `classify` then read
//! without running an encoder for labels.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use super::{ms, ModelArgs};
use crate::labels::examples::{self, ExampleEmbedder, ExampleImage};
use crate::labels::{file, EmbeddedLabel, LabelEmbeddings};
use crate::model::bundle::Bundle;
use crate::model::encode::text::TextEncoder;
use crate::model::encode::ImageEncoder;

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
    let mut wanted = file::read(labels)?;
    // Example images are embedded whole: `frame:` images are cut to a zone
    // only by the daemon, which knows the zone.
    let images = examples::expand(&mut wanted, labels, None)?;
    let needs_text = wanted.iter().any(|l| l.prompts.iter().any(|p| ExampleImage::parse(p).is_none()));
    let encoder = if needs_text || bundle.text.is_some() {
        Some(TextEncoder::load(&bundle, &args.model.encoder_options())?)
    } else {
        None
    };
    let mut image_embedder = if images > 0 {
        let image_encoder = std::sync::Arc::new(ImageEncoder::load(&bundle, &args.model.encoder_options())?);
        Some(ExampleEmbedder::new(&bundle, &image_encoder, labels)?)
    } else {
        None
    };
    let loaded = started.elapsed();
    let mut embedded = Vec::with_capacity(wanted.len());
    let mut warnings = Vec::new();
    for label in &wanted {
        embedded.push(EmbeddedLabel::compute(
            encoder.as_ref(),
            image_embedder.as_mut(),
            label,
            labels,
            &mut |l, p| warnings.push(l.truncation_warning(labels, p)),
        )?);
    }
    for warning in &warnings {
        writeln!(err, "warning: {warning}")?;
    }
    let output = args.output.clone().unwrap_or_else(|| labels.with_extension("emb"));
    let text_encoder_sha256 = encoder.as_ref().map_or([0; 32], |e| e.sha256);
    let emb = LabelEmbeddings { dim: bundle.embedding_dim, text_encoder_sha256, labels: embedded };
    std::fs::write(&output, emb.to_bytes()).with_context(|| format!("cannot write '{}'", output.display()))?;
    let prompts: usize = wanted.iter().map(|l| l.prompts.len()).sum::<usize>() - images;
    writeln!(
        out,
        "{}: {} labels ({prompts} prompts, {images} example images) embedded with {} in {:.0} ms (loading {:.0} ms, embedding {:.0} ms)",
        output.display(),
        wanted.len(),
        bundle.text.as_ref().map(|t| t.encoder.path.display().to_string()).unwrap_or_default(),
        ms(started.elapsed()),
        ms(loaded),
        ms(started.elapsed() - loaded)
    )?;
    Ok(())
}
