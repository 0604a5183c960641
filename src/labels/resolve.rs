//! Where label embeddings come from.
//!
//! [`resolve_file`] is the rule the CLI and the daemon share:
//!
//! 1. a `.emb` file given by the user is used as it is (refused if another
//!    text encoder made it);
//! 2. a labels text file (prompt templates, "a photo of a {}.", from the
//!    options or the bundle, turn a label written without prompts into one
//!    prompt per template) (the bundle's own by default) takes each label from
//!    the bundle's `labels.emb` when it is there with exactly the same prompts;
//! 3. any other label is embedded with the bundle's text encoder, and the
//!    whole set is cached (`<cache>/labels-<key>.emb`, the key a hash of the
//!    text encoder and every name and prompt), so that the next start is
//!    instant;
//! 4. a bundle without a text encoder cannot embed text: the error names
//!    the label's line and the command that fixes it.
//!
//! A label's example images ([`examples`]) are embedded with the image
//! encoder in step 3; their hashes are part of the prompts that are looked
//! up and of the cache key, so a changed image is embedded again.
//!
//! [`resolve_labels`] applies the same rule (2 to 4) to labels already
//! parsed, such as a labels file's text sent over MQTT.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::examples::{self, ExampleEmbedder, ExampleImage};
use super::{file, EmbeddedLabel, Label, LabelEmbeddings, LabelsError};
use crate::model::bundle::{hex, parse_hex32, Bundle};
use crate::model::encode::text::TextEncoder;
use crate::model::encode::{EncoderOptions, ImageEncoder};
use crate::pipeline::zone::Rect;

/// How labels are loaded: where to cache embeddings computed here, and how
/// to run the text encoder.
#[derive(Debug, Clone, Default)]
pub struct LabelOptions {
    /// `None`: compute every time, write nothing.
    pub cache_dir: Option<PathBuf>,
    pub encoder: EncoderOptions,
    /// Prompt templates for labels without prompts of their own; `None`:
    /// the bundle's (`[labels] templates` in model.toml), if any.
    pub templates: Option<Vec<String>>,
    /// The zone the labels are for: `frame:` example images are cut to it
    /// (`None`: the whole frame).
    pub zone: Option<Rect>,
    /// The bundle's image encoder, already loaded, for example images;
    /// `None`: loaded when a label has one.
    pub image_encoder: Option<Arc<ImageEncoder>>,
}

/// The default cache: `$EDGECLIP_CACHE_DIR`, else `$XDG_CACHE_HOME/edgeclip`,
/// else `$HOME/.cache/edgeclip` (a service gets its own through systemd's
/// `CacheDirectory=`, which sets none of these, so it passes the path).
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("EDGECLIP_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("edgeclip")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/edgeclip")))
}

/// What [`resolve_file`] did, for logs and the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveReport {
    /// Labels taken from the bundle's `labels.emb`.
    pub from_bundle: usize,
    /// Labels taken from the cache.
    pub from_cache: usize,
    /// Labels embedded now with the text encoder (and the image encoder
    /// for their example images).
    pub embedded: usize,
    /// Example images among the labels' prompts.
    pub example_images: usize,
    /// The cache file read or written, if any.
    pub cache_file: Option<PathBuf>,
}

/// Finds the embeddings of `labels` (default: the bundle's labels file) by
/// the rule in the module documentation.
pub fn resolve_file(
    bundle: &Bundle,
    labels: Option<&Path>,
    options: &LabelOptions,
) -> Result<(Vec<EmbeddedLabel>, ResolveReport), LabelsError> {
    let made_by_this_encoder = |emb: &LabelEmbeddings| made_by_encoder_of(bundle, emb);

    if let Some(path) = labels.filter(|p| p.extension().is_some_and(|e| e == "emb")) {
        let emb = LabelEmbeddings::read(path)?;
        emb.check_dim(path, bundle.embedding_dim)?;
        if !made_by_this_encoder(&emb) {
            return Err(stale(path, &emb, bundle));
        }
        let report = ResolveReport { from_bundle: emb.labels.len(), ..Default::default() };
        return Ok((emb.labels, report));
    }

    let labels_path = labels.unwrap_or(&bundle.labels_file);
    resolve_labels(bundle, labels_path, file::read(labels_path)?, options)
}

/// [`resolve_file`] for labels already parsed (the daemon's `labels/set`
/// command gets a labels file's text over MQTT); `labels_path` names where
/// they came from in messages, and its folder is where example images'
/// paths start.
pub fn resolve_labels(
    bundle: &Bundle,
    labels_path: &Path,
    mut wanted: Vec<Label>,
    options: &LabelOptions,
) -> Result<(Vec<EmbeddedLabel>, ResolveReport), LabelsError> {
    let text_sha = bundle.text.as_ref().map(|t| t.encoder.sha256.clone());
    let made_by_this_encoder = |emb: &LabelEmbeddings| made_by_encoder_of(bundle, emb);
    let templates = options.templates.as_deref().unwrap_or(&bundle.label_templates);
    wanted.iter_mut().for_each(|l| l.apply_templates(templates));
    let example_images = examples::expand(&mut wanted, labels_path, options.zone)?;
    let bundle_emb = match LabelEmbeddings::read(&bundle.labels_embeddings) {
        Ok(emb) => {
            emb.check_dim(&bundle.labels_embeddings, bundle.embedding_dim)?;
            if made_by_this_encoder(&emb) {
                Some(emb)
            } else {
                tracing::warn!("{}; ignoring it", stale(&bundle.labels_embeddings, &emb, bundle));
                None
            }
        }
        // Without a text encoder the bundle's file is the only source of
        // text labels: its problem is the error. With one, labels can still
        // be embedded.
        Err(e) if bundle.text.is_none() => return Err(e),
        Err(e) => {
            tracing::warn!("{e}; embedding the labels with the text encoder instead");
            None
        }
    };
    let from_bundle = |label: &Label| bundle_emb.as_ref().and_then(|emb| emb.find(label));
    if let Some(found) = wanted.iter().map(|l| from_bundle(l).cloned()).collect::<Option<Vec<EmbeddedLabel>>>() {
        return Ok((found, ResolveReport { from_bundle: wanted.len(), ..Default::default() }));
    }
    let has_text = |l: &Label| l.prompts.iter().any(|p| ExampleImage::parse(p).is_none());
    if text_sha.is_none() {
        // No text encoder: name the first label that needs one.
        if let Some(label) = wanted.iter().find(|l| from_bundle(l).is_none() && has_text(l)) {
            let emb = bundle_emb.expect("read above when the bundle has no text encoder");
            return Err(emb.select(&bundle.labels_embeddings, labels_path, std::slice::from_ref(label)).unwrap_err());
        }
    }

    let cache_key =
        cache_key(text_sha.as_deref(), (example_images > 0).then_some(&bundle.image.encoder.sha256), &wanted);
    let cache_file = options.cache_dir.as_ref().map(|d| d.join(format!("labels-{cache_key}.emb")));
    if let Some(file) = &cache_file {
        match LabelEmbeddings::read(file) {
            Ok(emb) if made_by_this_encoder(&emb) && emb.dim == bundle.embedding_dim => {
                if let Ok(found) = emb.select(file, labels_path, &wanted) {
                    // The newest use, for the eviction of the least recently used.
                    let _ = std::fs::File::options()
                        .append(true)
                        .open(file)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    let report =
                        ResolveReport { from_cache: found.len(), cache_file: cache_file.clone(), ..Default::default() };
                    return Ok((found, report));
                }
            }
            Ok(_) => {}
            Err(LabelsError::Read { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("{e}; embedding the labels again and replacing it"),
        }
    }

    let needs_text = wanted.iter().any(|l| from_bundle(l).is_none() && has_text(l));
    let text_encoder = if needs_text { Some(TextEncoder::load(bundle, &options.encoder)?) } else { None };
    let mut images = if example_images > 0 {
        let encoder = match &options.image_encoder {
            Some(encoder) => Arc::clone(encoder),
            None => Arc::new(ImageEncoder::load(bundle, &options.encoder)?),
        };
        Some(ExampleEmbedder::new(bundle, &encoder, labels_path)?)
    } else {
        None
    };
    let mut report = ResolveReport { example_images, ..Default::default() };
    let mut found = Vec::with_capacity(wanted.len());
    for label in &wanted {
        if let Some(e) = from_bundle(label) {
            report.from_bundle += 1;
            found.push(e.clone());
            continue;
        }
        let mut warn_truncated =
            |l: &Label, prompt: &str| tracing::warn!("{}", l.truncation_warning(labels_path, prompt));
        found.push(EmbeddedLabel::compute(
            text_encoder.as_ref(),
            images.as_mut(),
            label,
            labels_path,
            &mut warn_truncated,
        )?);
        report.embedded += 1;
    }
    if let Some(file) = &cache_file {
        let text_encoder_sha256 = match (&text_encoder, &text_sha) {
            (Some(encoder), _) => encoder.sha256,
            // The bundle checked it is 64 hex digits when it loaded.
            (None, Some(sha)) => parse_hex32(sha).unwrap_or([0; 32]),
            (None, None) => [0; 32],
        };
        let emb = LabelEmbeddings { dim: bundle.embedding_dim, text_encoder_sha256, labels: found.clone() };
        match crate::util::file::write_atomically(file, &emb.to_bytes()) {
            Ok(()) => {
                report.cache_file = Some(file.clone());
                evict_least_recently_used(file, CACHE_MAX_BYTES);
            }
            Err(e) => tracing::warn!(
                "cannot cache label embeddings in '{}': {e}; they will be computed again next time",
                file.display()
            ),
        }
    }
    Ok((found, report))
}

/// The label cache's size on disk at most: a few hundred label sets of a
/// typical size (a 20-label set of 512-dimensional vectors is 45 KB), little
/// on an SD card. Every distinct label set adds a file, so without a bound
/// label edits by command would fill the disk.
pub const CACHE_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// Removes the least recently used cache files beside `kept` (the one just
/// written, never removed) until they take at most `max_bytes`.
fn evict_least_recently_used(kept: &Path, max_bytes: u64) {
    let Some(dir) = kept.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("labels-") && name.ends_with(".emb")
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        if path == kept {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                total -= len;
                tracing::debug!("label cache: removed '{}', the least recently used", path.display());
            }
            Err(e) => tracing::warn!("label cache: cannot remove '{}': {e}", path.display()),
        }
    }
}

/// Whether `emb` was made by the bundle's text encoder. A bundle without one
/// has nothing to compare with: its file is all there is.
fn made_by_encoder_of(bundle: &Bundle, emb: &LabelEmbeddings) -> bool {
    bundle.text.as_ref().is_none_or(|t| hex(&emb.text_encoder_sha256) == t.encoder.sha256)
}

fn stale(path: &Path, emb: &LabelEmbeddings, bundle: &Bundle) -> LabelsError {
    let text = bundle.text.as_ref().expect("only a bundle with a text encoder can call a file stale");
    LabelsError::BadEmbeddings {
        path: path.to_path_buf(),
        message: format!(
            "it was made by text encoder {}, not by this bundle's '{}' ({}); it is stale, regenerate it with: edgeclip embed-labels --model {} LABELS -o {}",
            hex(&emb.text_encoder_sha256),
            text.encoder.path.display(),
            text.encoder.sha256,
            bundle.dir.display(),
            path.display()
        ),
    }
}

/// A hash of everything the vectors depend on: the text encoder, the image
/// encoder when example images are among the prompts, and each label's name
/// and prompts, in order (an expanded example prompt holds its image's hash).
fn cache_key(text_encoder_sha256: Option<&str>, image_encoder_sha256: Option<&String>, labels: &[Label]) -> String {
    let mut h = Sha256::new();
    h.update(text_encoder_sha256.unwrap_or("no text encoder").as_bytes());
    if let Some(sha) = image_encoder_sha256 {
        h.update(b"\x00image encoder\x00");
        h.update(sha.as_bytes());
    }
    for l in labels {
        h.update(b"\x00label\x00");
        h.update(l.name.as_bytes());
        for p in &l.prompts {
            h.update(b"\x00prompt\x00");
            h.update(p.as_bytes());
        }
    }
    hex(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_cache_drops_its_least_recently_used_files_beyond_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = SystemTime::now() - Duration::from_secs(3600);
        // Used in the order c, a, b (oldest first), 100 bytes each; and a
        // file that is not the cache's.
        for (name, age) in [("labels-a.emb", 20), ("labels-b.emb", 30), ("labels-c.emb", 10), ("other.emb", 0)] {
            let path = dir.path().join(name);
            std::fs::write(&path, [0u8; 100]).unwrap();
            std::fs::File::options()
                .append(true)
                .open(&path)
                .unwrap()
                .set_modified(t0 + Duration::from_secs(age))
                .unwrap();
        }
        let kept = dir.path().join("labels-new.emb");
        std::fs::write(&kept, [0u8; 100]).unwrap();
        std::fs::File::options().append(true).open(&kept).unwrap().set_modified(t0).unwrap();
        evict_least_recently_used(&kept, 250);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        left.sort();
        // The new file stays though it is the oldest; c and a go.
        assert_eq!(left, ["labels-b.emb", "labels-new.emb", "other.emb"]);
    }
}
