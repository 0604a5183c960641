//! Readers for the golden files in `tests/data/golden/` and the measures
//! the numerical tests compare with.

use std::path::Path;

use super::paths::golden_dir;

/// The PNG sample images that have golden files, by stem.
pub fn golden_images() -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("manifest.json")).unwrap()).unwrap();
    let mut stems: Vec<String> = manifest["files"]
        .as_array()
        .expect("manifest.json has a 'files' array")
        .iter()
        .filter_map(|f| f["file"].as_str()?.strip_suffix(".pixel_values.f32").map(str::to_string))
        .collect();
    stems.sort();
    assert!(stems.len() >= 4, "expected at least 4 golden images, found {stems:?}");
    stems
}

/// Reads a raw little-endian f32 golden file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read golden file {}: {e}", path.display()));
    assert_eq!(bytes.len() % 4, 0, "{} is not a whole number of f32", path.display());
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The cosine of the angle between two vectors (computed in f64).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    (dot / (na * nb)) as f32
}

/// The largest element-wise difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
