//! One manifest per kind of bundle mistake, each checked for the message a
//! user sees. The manifests live in `tests/data/invalid-bundles/`; each is
//! copied over `model.toml` in a copy of the valid `tiny-fp32` bundle, with
//! `@IMAGE_SHA256@` replaced by the real checksum of its image encoder.

use std::path::Path;

use edgeclip::model::bundle::Bundle;
use edgeclip::model::encode::{EncoderOptions, ImageEncoder};

use crate::support::paths::{bundle_dir, copy_dir_to_temp, data_dir};

/// (file, what the message must contain; `{dir}` stands for the bundle
/// directory).
const CASES: &[(&str, &str)] = &[
    ("missing-key.toml", "{dir}/model.toml': line 1: missing key 'logit_scale'"),
    ("missing-image-key.toml", "{dir}/model.toml': line 9 (in [image]): missing key 'resize_filter'"),
    ("unknown-key.toml", "{dir}/model.toml': line 19: unknown key 'colour', expected one of 'file', 'input', 'output', 'sha256', 'precision', 'size', 'resize_shortest_edge', 'resize_filter', 'crop', 'mean', 'std'"),
    ("wrong-dimension.toml", "encoder '{dir}/image.onnx': output 'image_embeds' has shape 1,32 but the manifest's embedding_dim 48 needs [1, 48]; embedding_dim must be the width of the model's projection"),
    ("wrong-sha256.toml", "'{dir}/image.onnx': sha256 is @IMAGE_SHA256@ but '{dir}/model.toml' (key 'image.sha256') says 0000000000000000000000000000000000000000000000000000000000000000; the file is corrupt or belongs to another bundle"),
    ("missing-file.toml", "'{dir}/vision.onnx' (key 'image.file' in '{dir}/model.toml'): file is missing or unreadable: No such file or directory"),
    ("bad-sha256-format.toml", "{dir}/model.toml': key 'image.sha256': 'abc123' is not a sha256: expected 64 hexadecimal digits"),
    ("unknown-precision.toml", "{dir}/model.toml': key 'image.precision': unknown precision 'int4': expected 'fp32', 'int8-dynamic' or 'int8-qoperator'"),
    ("wrong-precision.toml", "encoder '{dir}/image.onnx': model.toml says precision 'int8-dynamic' but the graph is 'fp32'; fix the manifest's precision key"),
    ("mean-length.toml", "{dir}/model.toml': key 'image.mean': has 2 values: expected 3, one per RGB channel"),
    ("zero-std.toml", "{dir}/model.toml': key 'image.std': 0 is not a positive number"),
    ("template-without-placeholder.toml", "{dir}/model.toml': key 'labels.templates': template 'a photo' must hold '{}' exactly once, where the label goes, e.g. 'a photo of a {}.'"),
    ("crop-too-big.toml", "{dir}/model.toml': key 'image.resize_shortest_edge': 200 is smaller than image.size 224: the center crop would not fit"),
    ("unknown-filter.toml", "{dir}/model.toml': key 'image.resize_filter': unknown filter 'lanczos': expected 'bicubic' or 'bilinear'"),
    ("future-format.toml", "{dir}/model.toml': key 'format': bundle format 2 is not supported: this edgeclip reads format 1"),
    ("outside-file.toml", "{dir}/model.toml': key 'image.file': '../image.onnx' must be a file name inside the bundle directory"),
    ("log-logit-scale.toml", "{dir}/model.toml': key 'logit_scale': 0 is out of range: expected the exponentiated scale, between 1 and 1000 (CLIP uses 100)"),
    ("wrong-input-name.toml", "encoder '{dir}/image.onnx': the manifest names input 'pixels' but the graph's inputs are [\"pixel_values\"]"),
    ("not-toml.toml", "{dir}/model.toml': line 3: "),
];

fn load_error(dir: &Path) -> String {
    let bundle = match Bundle::load(dir) {
        Ok(b) => b,
        Err(e) => return format!("{e:#}"),
    };
    match ImageEncoder::load(&bundle, &EncoderOptions::default()) {
        Ok(_) => panic!("bundle in {} loaded without error", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn every_mistake_gives_its_message() {
    let valid = bundle_dir("tiny-fp32");
    let sha = edgeclip::model::bundle::sha256_file(&valid.join("image.onnx")).unwrap();
    for (file, want) in CASES {
        let template = std::fs::read_to_string(data_dir().join("invalid-bundles").join(file)).unwrap();
        let tmp = copy_dir_to_temp(&valid);
        std::fs::write(tmp.path().join("model.toml"), template.replace("@IMAGE_SHA256@", &sha)).unwrap();
        let dir = tmp.path().display().to_string();
        let got = load_error(tmp.path());
        let want = want.replace("{dir}", &dir).replace("@IMAGE_SHA256@", &sha);
        assert!(got.contains(&want), "{file}:\n  got:  {got}\n  want: {want}");
    }
}

#[test]
fn every_invalid_manifest_has_a_case() {
    for entry in std::fs::read_dir(data_dir().join("invalid-bundles")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(CASES.iter().any(|(f, _)| *f == name), "{name} has no expected message in CASES");
    }
}

#[test]
fn unsupported_operator_is_named() {
    let dir = bundle_dir("unsupported-op");
    let got = load_error(&dir);
    assert!(
        got.contains("uses operator 'QLinearAdd' that tract cannot run; re-export it with tools/model/export_clip.py"),
        "{got}"
    );
}

#[test]
fn missing_bundle_says_where_it_looked() {
    let got = load_error(Path::new("/nonexistent/bundle"));
    assert_eq!(got, "no model bundle at '/nonexistent/bundle/model.toml': No such file or directory (os error 2)");
}

#[test]
fn the_valid_bundles_load() {
    for name in ["tiny-fp32", "tiny-int8", "tiny-qop"] {
        let bundle = Bundle::load(bundle_dir(name)).unwrap();
        ImageEncoder::load(&bundle, &EncoderOptions::default()).unwrap();
    }
}
