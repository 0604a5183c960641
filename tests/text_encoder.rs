//! The text encoder on tract against onnxruntime on the same files.
//!
//! `tests/data/golden/text_embeds.json` (tools/testdata/make_text_golden.py) holds
//! onnxruntime's embeddings of tricky prompts for `tests/data/bundles/tiny-text`
//! (fp32 MatMuls) and `models/tiny-shapes` (int8-dynamic), and each bundle's
//! `labels.emb` holds onnxruntime's prompt-ensemble vectors. Tolerances:
//! cosine >= 0.9999 for fp32 and >= 0.999 for int8-dynamic, whose activations
//! are quantized at run time by each runtime's own rounding.

use std::path::{Path, PathBuf};

use edgeclip::labels::file::read as read_labels;
use edgeclip::labels::{EmbeddedLabel, LabelEmbeddings};
use edgeclip::model::bundle::Bundle;
use edgeclip::model::encode::text::TextEncoder;
use edgeclip::model::encode::EncoderOptions;
use serde_json::Value;

use crate::support::golden::cosine;
use crate::support::paths::{bundle_dir, golden_dir};

fn min_cosine(precision: &str) -> f32 {
    match precision {
        "fp32" => 0.9999,
        _ => 0.999,
    }
}

fn golden_bundles() -> Vec<(PathBuf, Value)> {
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("text_embeds.json")).unwrap()).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    ["tiny-text", "tiny-shapes"]
        .iter()
        .map(|name| {
            let dir = if *name == "tiny-shapes" { root.join("models/tiny-shapes") } else { bundle_dir(name) };
            let mut entry = golden["bundles"][name].clone();
            entry["prompts"] = golden["prompts"].clone();
            (dir, entry)
        })
        .collect()
}

fn load(dir: &Path) -> (Bundle, TextEncoder) {
    let bundle = Bundle::load(dir).unwrap();
    let encoder = TextEncoder::load(&bundle, &EncoderOptions::default()).unwrap();
    (bundle, encoder)
}

#[test]
fn prompt_embeddings_match_onnxruntime() {
    for (dir, golden) in golden_bundles() {
        let (bundle, encoder) = load(&dir);
        let text = bundle.text.as_ref().unwrap();
        assert_eq!(text.encoder.sha256, golden["text_sha256"].as_str().unwrap(), "{}: golden is stale", dir.display());
        let floor = min_cosine(golden["precision"].as_str().unwrap());
        let mut worst = 1.0f32;
        let prompts = golden["prompts"].as_array().unwrap();
        for (prompt, want) in prompts.iter().zip(golden["embeds"].as_array().unwrap()) {
            let prompt = prompt.as_str().unwrap();
            let want: Vec<f32> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let got = encoder.embed_prompt(prompt).unwrap();
            let c = cosine(&got.vector, &want);
            assert!(c >= floor, "{}: {prompt:?}: cosine {c} < {floor}", dir.display());
            worst = worst.min(c);
        }
        eprintln!("{}: {} prompts, min cosine to onnxruntime {worst}", dir.display(), prompts.len());
    }
}

#[test]
fn label_ensembles_match_the_bundles_labels_emb() {
    for (dir, golden) in golden_bundles() {
        let (bundle, encoder) = load(&dir);
        let floor = min_cosine(golden["precision"].as_str().unwrap());
        let emb = LabelEmbeddings::read(&bundle.labels_embeddings).unwrap();
        assert_eq!(emb.text_encoder_sha256, encoder.sha256);
        let labels = read_labels(&bundle.labels_file).unwrap();
        assert_eq!(labels.len(), emb.labels.len());
        for label in &labels {
            let got =
                EmbeddedLabel::compute(Some(&encoder), None, label, Path::new("labels.txt"), &mut |_, _| {}).unwrap();
            let want = emb.labels.iter().find(|e| e.name == label.name).unwrap();
            assert_eq!(got.prompts, want.prompts);
            let norm: f32 = got.vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{}: not normalized ({norm})", label.name);
            let c = cosine(&got.vector, &want.vector);
            assert!(c >= floor, "{}: label {}: cosine {c} < {floor}", dir.display(), label.name);
        }
    }
}

#[test]
fn truncated_prompts_are_reported() {
    let (_, encoder) = load(&bundle_dir("tiny-text"));
    let label = edgeclip::labels::file::parse(Path::new("t.txt"), &format!("long: {}; short", "a ".repeat(90)))
        .unwrap()
        .remove(0);
    let mut heard = Vec::new();
    EmbeddedLabel::compute(Some(&encoder), None, &label, Path::new("labels.txt"), &mut |l, p| {
        heard.push((l.name.clone(), p.len()))
    })
    .unwrap();
    assert_eq!(heard, vec![("long".to_string(), 179)]);
}

#[test]
fn a_bundle_without_a_text_encoder_says_what_that_means() {
    let bundle = Bundle::load(bundle_dir("tiny-int8")).unwrap();
    let e = TextEncoder::load(&bundle, &EncoderOptions::default()).err().unwrap().to_string();
    assert!(e.starts_with(&format!("model bundle '{}' has no text encoder", bundle.dir.display())), "{e}");
    assert!(e.ends_with("tools/model/export_clip.py ... --labels FILE"), "{e}");
}
