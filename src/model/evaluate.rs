//! Zero-shot accuracy on a labelled folder of images, for `edgeclip eval`.
//!
//! The folder follows the common "image folder" layout: one sub-folder per
//! label, named exactly as the label, holding that label's images
//! (`DATA/a red circle/0001.png`). Every image is classified against the
//! whole label set and counts as correct when its top-1 label is its
//! folder's. The result holds overall and per-label top-1 accuracy and a
//! confusion matrix, so a person can see which labels are mistaken for which.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read data folder '{}': {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("data folder '{}' has no label sub-folders with images (expected DATA/<label>/<image>.png)", path.display())]
    Empty { path: PathBuf },
    #[error("folder '{}' is not one of the model's labels; labels are: {}", path.display(), known.join(", "))]
    UnknownLabel { path: PathBuf, known: Vec<String> },
}

/// One labelled image.
#[derive(Debug, Clone)]
pub struct Sample {
    pub path: PathBuf,
    /// Index into the label set of its folder's label.
    pub label: usize,
}

/// Image file endings `eval` reads.
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// Lists the samples of `data`, sorted by label folder then file name so that
/// runs are reproducible. `names` is the label set, in matcher order.
pub fn discover(data: &Path, names: &[String]) -> Result<Vec<Sample>, EvalError> {
    let read =
        |path: &Path| std::fs::read_dir(path).map_err(|error| EvalError::Read { path: path.to_path_buf(), error });
    let mut folders: Vec<PathBuf> = read(data)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    folders.sort();
    let mut samples = Vec::new();
    for folder in folders {
        let name = folder.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let Some(label) = names.iter().position(|n| *n == name) else {
            return Err(EvalError::UnknownLabel { path: folder, known: names.to_vec() });
        };
        let mut images: Vec<PathBuf> = read(&folder)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        images.sort();
        samples.extend(images.into_iter().map(|path| Sample { path, label }));
    }
    if samples.is_empty() {
        return Err(EvalError::Empty { path: data.to_path_buf() });
    }
    Ok(samples)
}

/// Accumulates predictions; `confusion[truth][predicted]` counts images.
#[derive(Debug, Clone)]
pub struct Tally {
    names: Vec<String>,
    confusion: Vec<Vec<usize>>,
    /// Images that could not be read or classified.
    pub failed: usize,
}

/// Per-label accuracy, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct LabelAccuracy {
    pub label: String,
    pub images: usize,
    pub correct: usize,
    pub accuracy: f64,
}

/// One off-diagonal cell of the confusion matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Confusion {
    pub truth: String,
    pub predicted: String,
    pub images: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub images: usize,
    pub correct: usize,
    pub top1: f64,
    pub failed: usize,
    pub per_label: Vec<LabelAccuracy>,
    /// The most frequent mistakes, largest first.
    pub confusions: Vec<Confusion>,
    /// The full matrix, rows = truth, columns = predicted, in label order.
    pub confusion_matrix: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Tally {
    pub fn new(names: &[String]) -> Tally {
        Tally { names: names.to_vec(), confusion: vec![vec![0; names.len()]; names.len()], failed: 0 }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.confusion[truth][predicted] += 1;
    }

    pub fn report(&self) -> Report {
        let n = self.names.len();
        let images: usize = self.confusion.iter().flatten().sum();
        let correct: usize = (0..n).map(|i| self.confusion[i][i]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_label = (0..n)
            .filter_map(|i| {
                let row: usize = self.confusion[i].iter().sum();
                (row > 0).then(|| LabelAccuracy {
                    label: self.names[i].clone(),
                    images: row,
                    correct: self.confusion[i][i],
                    accuracy: ratio(self.confusion[i][i], row),
                })
            })
            .collect();
        let mut confusions: Vec<Confusion> = (0..n)
            .flat_map(|t| (0..n).map(move |p| (t, p)))
            .filter(|&(t, p)| t != p && self.confusion[t][p] > 0)
            .map(|(t, p)| Confusion {
                truth: self.names[t].clone(),
                predicted: self.names[p].clone(),
                images: self.confusion[t][p],
            })
            .collect();
        // Largest first; ties in label order (the sort is stable).
        confusions.sort_by_key(|c| std::cmp::Reverse(c.images));
        let confusion_matrix = (0..n)
            .filter(|&t| self.confusion[t].iter().sum::<usize>() > 0)
            .map(|t| {
                let row = (0..n)
                    .filter(|&p| self.confusion[t][p] > 0)
                    .map(|p| (self.names[p].clone(), self.confusion[t][p]))
                    .collect();
                (self.names[t].clone(), row)
            })
            .collect();
        Report {
            images,
            correct,
            top1: ratio(correct, images),
            failed: self.failed,
            per_label,
            confusions,
            confusion_matrix,
        }
    }
}
