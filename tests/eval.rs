//! `edgeclip eval`: the tally on hand-made cases and the command end to end.

use std::path::Path;
use std::process::Command;

use edgeclip::model::evaluate::{discover, Tally};

use crate::support::paths::{bundle_dir, data_dir};
use crate::support::process::{edgeclip_command, SpawnWatched};

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tally_counts_by_hand() {
    let mut t = Tally::new(&names(&["a", "b", "c"]));
    for (truth, predicted) in [(0, 0), (0, 1), (1, 1), (2, 0), (2, 0)] {
        t.add(truth, predicted);
    }
    let r = t.report();
    assert_eq!((r.images, r.correct), (5, 2));
    assert!((r.top1 - 0.4).abs() < 1e-12);
    let per: Vec<(String, usize, usize)> = r.per_label.iter().map(|l| (l.label.clone(), l.images, l.correct)).collect();
    assert_eq!(per, vec![("a".into(), 2, 1), ("b".into(), 1, 1), ("c".into(), 2, 0)]);
    let conf: Vec<(String, String, usize)> =
        r.confusions.iter().map(|c| (c.truth.clone(), c.predicted.clone(), c.images)).collect();
    assert_eq!(conf, vec![("c".into(), "a".into(), 2), ("a".into(), "b".into(), 1)]);
    assert_eq!(r.confusion_matrix["c"]["a"], 2);
    assert!(!r.confusion_matrix["c"].contains_key("c"));
}

#[test]
fn discover_reads_the_image_folder_layout() {
    let dir = tempfile::tempdir().unwrap();
    for (folder, file) in [("b", "2.png"), ("b", "1.JPG"), ("b", "notes.txt"), ("a", "x.jpeg")] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        std::fs::write(dir.path().join(folder).join(file), b"").unwrap();
    }
    let samples = discover(dir.path(), &names(&["a", "b"])).unwrap();
    let got: Vec<(String, usize)> =
        samples.iter().map(|s| (s.path.file_name().unwrap().to_string_lossy().to_string(), s.label)).collect();
    assert_eq!(got, vec![("x.jpeg".into(), 0), ("1.JPG".into(), 1), ("2.png".into(), 1)]);

    let e = discover(dir.path(), &names(&["a"])).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("folder '{}' is not one of the model's labels; labels are: a", dir.path().join("b").display())
    );
    let empty = tempfile::tempdir().unwrap();
    let e = discover(empty.path(), &names(&["a"])).unwrap_err().to_string();
    assert!(e.ends_with("has no label sub-folders with images (expected DATA/<label>/<image>.png)"), "{e}");
}

fn edgeclip() -> Command {
    edgeclip_command()
}

/// The top-1 label the model gives an image, from `classify --json`.
fn predicted(bundle: &Path, image: &Path) -> String {
    let out = edgeclip()
        .args(["classify", "--json", "--top", "1", "--model"])
        .arg(bundle)
        .arg(image)
        .output_watched()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["top"][0]["label"].as_str().unwrap().to_string()
}

#[test]
fn eval_counts_what_classify_predicts() {
    let bundle = bundle_dir("tiny-int8");
    let labels: Vec<String> =
        edgeclip::labels::file::read(&bundle.join("labels.txt")).unwrap().into_iter().map(|l| l.name).collect();
    let images: Vec<_> = std::fs::read_dir(data_dir().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert!(images.len() >= 4);

    // Every image in the folder of the label the model picks for it, except
    // the first, which goes into another label's folder: 1 mistake in N.
    let data = tempfile::tempdir().unwrap();
    let mut wrong = None;
    for (i, image) in images.iter().enumerate() {
        let mut label = predicted(&bundle, image);
        if i == 0 {
            let other = labels.iter().find(|l| **l != label).unwrap().clone();
            wrong = Some((other.clone(), label.clone()));
            label = other;
        }
        std::fs::create_dir_all(data.path().join(&label)).unwrap();
        std::fs::copy(image, data.path().join(&label).join(image.file_name().unwrap())).unwrap();
    }
    let (truth, predicted_label) = wrong.unwrap();

    let out = edgeclip()
        .args(["eval", "--json", "--model"])
        .arg(&bundle)
        .arg("--data")
        .arg(data.path())
        .output_watched()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = images.len() as u64;
    assert_eq!(r["images"].as_u64(), Some(n));
    assert_eq!(r["correct"].as_u64(), Some(n - 1));
    assert_eq!(r["confusions"][0]["truth"], truth.as_str());
    assert_eq!(r["confusions"][0]["predicted"], predicted_label.as_str());

    let out =
        edgeclip().args(["eval", "--model"]).arg(&bundle).arg("--data").arg(data.path()).output_watched().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let pct = 100.0 * (n - 1) as f64 / n as f64;
    assert!(text.starts_with(&format!("{n} images in ")), "{text}");
    assert!(text.contains(&format!("top-1 {pct:.1}% ({}/{n})", n - 1)), "{text}");
    assert!(text.contains(&format!("  {truth} -> {predicted_label}: 1")), "{text}");

    // An unreadable image: the report still prints, the run fails.
    std::fs::write(data.path().join(&truth).join("broken.png"), b"not a png").unwrap();
    let out =
        edgeclip().args(["eval", "--model"]).arg(&bundle).arg("--data").arg(data.path()).output_watched().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.png"), "{stderr}");
    assert!(stderr.ends_with(&format!("error: 1 of {} images could not be read\n", n + 1)), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("top-1 {pct:.1}%")));
}
