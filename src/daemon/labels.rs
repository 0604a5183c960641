//! A camera's labels while the daemon runs: loading them (from the labels
//! file, or from a labels file's text sent to the `labels/set` command
//! topic), noticing that the file changed, and the set the inference thread
//! swaps to.
//!
//! A labels file is checked every [`POLL_INTERVAL`] by its size, modification
//! time and inode (editors that save by writing a new file and renaming it
//! change the inode), then by a hash of its content, so that touching a file
//! without changing it reloads nothing. A reload embeds new labels with the
//! bundle's text encoder, which can take seconds for a large CLIP, so it runs
//! on a thread of its own and the result comes back to the main loop. A file
//! with a mistake keeps the old labels running and logs the file, line and
//! problem.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::bundle::Bundle;
use crate::detect::DetectorLabel;
use crate::labels::{parse_labels, LabelsError};
use crate::labelset::{load_parsed_labels, LabelOptions, LoadReport};
use crate::matcher::Matcher;

/// How often labels files are checked for changes. An edit takes effect
/// within this plus the time to embed new labels (the issue asks for 2 s).
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The largest labels text accepted from the `labels/set` command topic:
/// thousands of labels, far below what would strain a board's memory.
pub const MAX_COMMAND_LABELS_BYTES: usize = 64 * 1024;

/// Where a camera's current labels came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelsOrigin {
    File(PathBuf),
    /// The `labels/set` command topic.
    Command(String),
}

impl std::fmt::Display for LabelsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelsOrigin::File(p) => write!(f, "'{}'", p.display()),
            LabelsOrigin::Command(topic) => write!(f, "MQTT topic '{topic}'"),
        }
    }
}

/// A camera's label set: what frames are matched against and what the
/// detector tracks, in the same order.
#[derive(Debug)]
pub struct ActiveLabels {
    pub matcher: Arc<Matcher>,
    pub detector: Vec<DetectorLabel>,
    pub origin: LabelsOrigin,
}

impl ActiveLabels {
    /// Names of the labels that can fire (not the negative ones).
    pub fn positive_names(&self) -> impl Iterator<Item = &str> {
        self.detector.iter().filter(|l| !l.negative).map(|l| l.name.as_str())
    }
}

/// Parses and embeds labels text; `default_threshold` applies to labels
/// whose line sets none.
pub fn load(
    bundle: &Bundle,
    origin: LabelsOrigin,
    text: &str,
    default_threshold: f32,
    options: &LabelOptions,
) -> anyhow::Result<(ActiveLabels, LoadReport)> {
    let name = match &origin {
        LabelsOrigin::File(p) => p.clone(),
        LabelsOrigin::Command(topic) => PathBuf::from(format!("mqtt:{topic}")),
    };
    let parsed = parse_labels(&name, text)?;
    let detector = parsed
        .iter()
        .map(|l| DetectorLabel {
            name: l.name.clone(),
            threshold: l.threshold.unwrap_or(default_threshold),
            negative: l.negative,
        })
        .collect();
    let (embedded, report) = load_parsed_labels(bundle, &name, parsed, options)?;
    let matcher = Matcher::new(&embedded, bundle.embedding_dim, bundle.logit_scale)
        .map_err(|e| anyhow::anyhow!("labels from {origin}: {e}"))?;
    Ok((ActiveLabels { matcher: Arc::new(matcher), detector, origin }, report))
}

/// Reads a labels file; the text and its hash.
pub fn read_file(path: &Path) -> Result<(String, [u8; 32]), LabelsError> {
    let text = std::fs::read_to_string(path).map_err(|error| LabelsError::Read { path: path.to_path_buf(), error })?;
    let hash = Sha256::digest(text.as_bytes()).into();
    Ok((text, hash))
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp { len: m.len(), modified: m.modified().ok(), inode: m.ino() })
}

/// Watches one labels file.
#[derive(Debug)]
pub struct FileWatch {
    pub path: PathBuf,
    stamp: Option<Stamp>,
    /// Hash of the content last loaded (or last refused: an invalid edit is
    /// reported once, not every poll).
    hash: Option<[u8; 32]>,
}

impl FileWatch {
    pub fn new(path: PathBuf, loaded_hash: [u8; 32]) -> FileWatch {
        let stamp = stamp(&path);
        FileWatch { path, stamp, hash: Some(loaded_hash) }
    }

    /// The file's new text if it changed since the last call (`force`: read
    /// it whatever its metadata says, for SIGHUP). A file that disappeared
    /// is not a change: editors delete and recreate, and the old labels keep
    /// running until a file is back.
    pub fn poll(&mut self, force: bool) -> Option<Result<String, LabelsError>> {
        let now = stamp(&self.path);
        if now.is_none() || (!force && now == self.stamp) {
            return None;
        }
        self.stamp = now;
        match read_file(&self.path) {
            Ok((text, hash)) if Some(hash) != self.hash || force => {
                self.hash = Some(hash);
                Some(Ok(text))
            }
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_reports_real_changes_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        std::fs::write(&path, "cat\n").unwrap();
        let (_, hash) = read_file(&path).unwrap();
        let mut watch = FileWatch::new(path.clone(), hash);
        assert!(watch.poll(false).is_none());
        // A rewrite with the same content (new inode through a rename).
        let tmp = dir.path().join("labels.tmp");
        std::fs::write(&tmp, "cat\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(watch.poll(false).is_none(), "same content: nothing to reload");
        std::fs::write(&tmp, "cat\ndog\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(watch.poll(false).unwrap().unwrap(), "cat\ndog\n");
        assert!(watch.poll(false).is_none());
        assert_eq!(watch.poll(true).unwrap().unwrap(), "cat\ndog\n", "SIGHUP reloads anyway");
        std::fs::remove_file(&path).unwrap();
        assert!(watch.poll(false).is_none(), "a missing file keeps the old labels");
    }
}
