//! Where the committed test data is (the demo model, bundles, golden files),
//! and copying it for tests that change it.

use std::path::{Path, PathBuf};

/// The repository's root (the package's manifest folder).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled demo model, `models/tiny-shapes`.
pub fn demo_model_dir() -> PathBuf {
    repo().join("models/tiny-shapes")
}

/// `tests/data`: images, bundles, golden files, invalid inputs.
pub fn data_dir() -> PathBuf {
    repo().join("tests/data")
}

/// A test bundle in `tests/data/bundles` (`tiny-fp32`, `tiny-int8`, ...).
pub fn bundle_dir(name: &str) -> PathBuf {
    data_dir().join("bundles").join(name)
}

/// `tests/data/golden`: what independent implementations produced.
pub fn golden_dir() -> PathBuf {
    data_dir().join("golden")
}

/// Copies a directory (flat) into a fresh temporary directory.
pub fn copy_dir_to_temp(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}
