//! Labels: what the camera looks for, as text, and their text embeddings.
//!
//! A labels file is plain text, one label a line (see `models/FORMAT.md`):
//! [`file`](mod@file) parses it. A label's prompts may also be example
//! images ([`examples`]), embedded with the image encoder. Its embeddings live in a `labels.emb` file that
//! records, for every label, the exact prompts that produced the vector and
//! the sha256 of the text encoder that embedded them, so that a stale file is
//! detected rather than silently matched ([`embeddings`]). [`resolve`]
//! decides where each label's embedding comes from (the bundle's
//! `labels.emb`, the cache, or the text encoder), and [`watch`] notices a
//! labels file's edits.

use std::path::PathBuf;

pub mod embeddings;
pub mod examples;
pub mod file;
pub mod resolve;
pub mod watch;

pub use embeddings::{EmbeddedLabel, LabelEmbeddings};
pub use file::Label;

/// What can go wrong reading labels and their embeddings; every variant
/// names the file (and line) to fix.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("cannot read labels file '{}': {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{}:{line}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, message: String },
    #[error("'{}': no labels in it (every line is blank or a # comment); add one label a line, e.g. 'a cat on the sofa'", path.display())]
    Empty { path: PathBuf },
    #[error("'{}' is not a labels.emb file: {message}", path.display())]
    BadEmbeddings { path: PathBuf, message: String },
    #[error("'{}' holds {found}-dimensional embeddings but the model's are {expected}-dimensional; it was made for another model", path.display())]
    Dimension { path: PathBuf, found: usize, expected: usize },
    #[error(
        "{}:{line}: label '{label}' has no precomputed embedding in '{}'{why}; regenerate it with: tools/model/export_clip.py ... --labels {}",
        file.display(), embeddings.display(), file.display()
    )]
    NotEmbedded { file: PathBuf, line: usize, label: String, embeddings: PathBuf, why: String },
    #[error(transparent)]
    Encode(#[from] crate::model::encode::EncodeError),
}
