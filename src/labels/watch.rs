//! Noticing that a labels file changed.
//!
//! A labels file is checked every [`POLL_INTERVAL`] by its size, modification
//! time and inode (editors that save by writing a new file and renaming it
//! change the inode), then by a hash of its content, so that touching a file
//! without changing it reloads nothing. A file that disappeared is not a
//! change: editors delete and recreate, and the old labels keep running.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::LabelsError;

/// How often labels files are checked for changes. An edit takes effect
/// within this plus the time to embed new labels: well within 2 s, the
/// time a person waits after saving before they wonder.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Reads a labels file ([`super::file::read_text`]): the text and its hash.
pub fn read_with_hash(path: &Path) -> Result<(String, [u8; 32]), LabelsError> {
    let text = super::file::read_text(path)?;
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
        match read_with_hash(&self.path) {
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
        let (_, hash) = read_with_hash(&path).unwrap();
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
