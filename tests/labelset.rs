//! Where label embeddings come from (the bundle's labels.emb, the cache, the
//! text encoder), `edgeclip embed-labels`, and swapping a label set while
//! frames are matched.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use edgeclip::labels::file;
use edgeclip::labels::resolve::{resolve_file, LabelOptions, ResolveReport};
use edgeclip::labels::LabelEmbeddings;
use edgeclip::model::bundle::Bundle;
use edgeclip::model::encode::{EncoderOptions, ImageEncoder};
use edgeclip::model::preprocess::RgbFrame;
use edgeclip::pipeline::classify::Classifier;
use edgeclip::pipeline::matcher::{LabelSet, Matcher};

use crate::support::golden::cosine;
use crate::support::paths::{bundle_dir, copy_dir_to_temp, data_dir};
use crate::support::process::{edgeclip_command, SpawnWatched};

fn options(cache: Option<&Path>) -> LabelOptions {
    LabelOptions {
        cache_dir: cache.map(Path::to_path_buf),
        encoder: EncoderOptions::default(),
        templates: None,
        ..Default::default()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bundle_labels_come_from_its_labels_emb_without_the_text_encoder() {
    let bundle = Bundle::load(bundle_dir("tiny-text")).unwrap();
    let (labels, report) = resolve_file(&bundle, None, &options(None)).unwrap();
    assert_eq!(report, ResolveReport { from_bundle: labels.len(), ..Default::default() });
}

#[test]
fn new_labels_are_embedded_then_cached() {
    let bundle = Bundle::load(bundle_dir("tiny-text")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // "person" is in the bundle's labels.emb; the other two are not.
    let file = write(dir.path(), "l.txt", "person\na purple giraffe\ncat: a cat on the sofa\n");
    let (first, report) = resolve_file(&bundle, Some(&file), &options(Some(&cache))).unwrap();
    assert_eq!((report.from_bundle, report.from_cache, report.embedded), (1, 0, 2));
    let cache_file = report.cache_file.unwrap();
    assert!(cache_file.starts_with(&cache) && cache_file.exists());
    let names: Vec<&str> = first.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["person", "a purple giraffe", "cat"]);

    let (second, report) = resolve_file(&bundle, Some(&file), &options(Some(&cache))).unwrap();
    assert_eq!((report.from_bundle, report.from_cache, report.embedded), (0, 3, 0));
    assert_eq!(second, first);

    // A changed prompt is another cache entry, embedded anew.
    write(dir.path(), "l.txt", "person\na purple giraffe\ncat: a cat on a sofa\n");
    let (_, report) = resolve_file(&bundle, Some(&file), &options(Some(&cache))).unwrap();
    assert_eq!((report.from_bundle, report.from_cache, report.embedded), (1, 0, 2));
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
}

#[test]
fn a_stale_bundle_labels_emb_is_ignored_when_labels_can_be_embedded() {
    let copy = copy_dir_to_temp(&bundle_dir("tiny-text"));
    let emb_path = copy.path().join("labels.emb");
    let mut emb = LabelEmbeddings::read(&emb_path).unwrap();
    emb.text_encoder_sha256 = [7; 32];
    std::fs::write(&emb_path, emb.to_bytes()).unwrap();
    let bundle = Bundle::load(copy.path()).unwrap();
    let (labels, report) = resolve_file(&bundle, None, &options(None)).unwrap();
    assert_eq!((report.from_bundle, report.embedded), (0, labels.len()));
    // The recomputed vectors are the ones the exporter made (fp32 text encoder).
    let fresh = LabelEmbeddings::read(&bundle_dir("tiny-text").join("labels.emb")).unwrap();
    for (got, want) in labels.iter().zip(&fresh.labels) {
        assert!(cosine(&got.vector, &want.vector) >= 0.9999, "{}", got.name);
    }
    // Named explicitly, a stale file is an error that names the fix.
    let e = resolve_file(&bundle, Some(&emb_path), &options(None)).unwrap_err().to_string();
    assert!(e.contains("it is stale, regenerate it with: edgeclip embed-labels --model"), "{e}");
}

#[test]
fn without_a_text_encoder_a_new_label_names_its_line_and_the_fix() {
    let bundle = Bundle::load(bundle_dir("tiny-int8")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "l.txt", "person\na purple giraffe\n");
    let e = resolve_file(&bundle, Some(&file), &options(Some(dir.path()))).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:2: label 'a purple giraffe' has no precomputed embedding in", file.display())),
        "{e}"
    );
    assert!(e.contains("tools/model/export_clip.py"), "{e}");
}

#[test]
fn embed_labels_writes_what_the_exporter_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir("tiny-text");
    let labels = dir.path().join("labels.txt");
    std::fs::copy(bundle.join("labels.txt"), &labels).unwrap();
    let out = edgeclip_command().args(["embed-labels", "--model"]).arg(&bundle).arg(&labels).output_watched().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let written = dir.path().join("labels.emb");
    assert!(stdout.starts_with(&format!("{}: 8 labels (", written.display())), "{stdout}");
    let got = LabelEmbeddings::read(&written).unwrap();
    let want = LabelEmbeddings::read(&bundle.join("labels.emb")).unwrap();
    assert_eq!(got.text_encoder_sha256, want.text_encoder_sha256);
    assert_eq!(got.labels.len(), want.labels.len());
    for (g, w) in got.labels.iter().zip(&want.labels) {
        assert_eq!((&g.name, &g.prompts), (&w.name, &w.prompts));
        assert!(cosine(&g.vector, &w.vector) >= 0.9999, "{}", g.name);
    }
    assert_eq!(file::read(&labels).unwrap().len(), got.labels.len());
}

#[test]
fn a_label_set_swapped_while_frames_are_matched() {
    let bundle = Bundle::load(bundle_dir("tiny-text")).unwrap();
    let encoder = Arc::new(ImageEncoder::load(&bundle, &EncoderOptions::default()).unwrap());
    let (all, _) = resolve_file(&bundle, None, &options(None)).unwrap();
    let (dim, scale) = (bundle.embedding_dim, bundle.logit_scale);
    let set = Arc::new(LabelSet::new(Matcher::new(&all, dim, scale).unwrap()));
    let mut classifier = Classifier::new(&bundle, &encoder, set.current()).unwrap();

    // Another thread alternates between two labels and all of them.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (set, stop, all) = (set.clone(), stop.clone(), all.clone());
        std::thread::spawn(move || {
            let mut swaps = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let labels = if swaps.is_multiple_of(2) { &all[..2] } else { &all[..] };
                set.replace(Matcher::new(labels, dim, scale).unwrap());
                swaps += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            swaps
        })
    };
    let pixels = vec![128u8; 64 * 48 * 3];
    let mut sizes = std::collections::BTreeSet::new();
    // At least 40 frames, and on until both sets were seen: on a loaded
    // machine the swapping thread may start late (bounded at 10 s).
    let started = std::time::Instant::now();
    let mut frames = 0;
    while (frames < 40 || sizes.len() < 2) && started.elapsed() < std::time::Duration::from_secs(10) {
        frames += 1;
        classifier.follow(&set);
        let n = classifier.matcher().names().len();
        let scores = classifier.classify(RgbFrame::new(64, 48, &pixels).unwrap(), 2).unwrap();
        assert_eq!(scores.probability.len(), n);
        assert!(scores.top.iter().all(|s| s.label < n));
        sizes.insert(n);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 1, "the set was never swapped");
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![2, all.len()], "frames saw both label sets");
}

#[test]
fn templates_give_prompts_to_labels_written_without_them() {
    let bundle = Bundle::load(bundle_dir("tiny-text")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "l.txt", "cat\ndog: a dog in the garden\n");
    let templates = vec!["a photo of a {}.".to_string(), "a blurry photo of a {}.".to_string()];
    let opts = LabelOptions { templates: Some(templates), ..options(None) };
    let (labels, report) = resolve_file(&bundle, Some(&file), &opts).unwrap();
    assert_eq!(report.embedded, 2);
    assert_eq!(labels[0].prompts, ["a photo of a cat.", "a blurry photo of a cat."]);
    assert_eq!(labels[1].prompts, ["a dog in the garden"]);
    // The ensemble is the normalized mean of the two prompts' embeddings.
    let encoder = edgeclip::model::encode::text::TextEncoder::load(&bundle, &EncoderOptions::default()).unwrap();
    let a = encoder.embed_prompt("a photo of a cat.").unwrap().vector;
    let b = encoder.embed_prompt("a blurry photo of a cat.").unwrap().vector;
    let mean: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert!(cosine(&labels[0].vector, &mean) > 0.99999);
}

#[test]
fn classify_embeds_new_labels_into_the_cache_dir_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let labels = write(dir.path(), "l.txt", "a purple giraffe\nperson\n");
    let cache = dir.path().join("cache");
    let image = data_dir().join("images/landscape-640x480.png");
    let run = || {
        edgeclip_command()
            .args(["classify", "--json", "--top", "1", "--cache-dir"])
            .arg(&cache)
            .arg("--labels")
            .arg(&labels)
            .arg("--model")
            .arg(bundle_dir("tiny-text"))
            .arg(&image)
            .output_watched()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 1);
    assert!(cached[0].file_name().unwrap().to_string_lossy().starts_with("labels-"));
    // A rewrite replaces the file (a new inode); a read only marks it used.
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&cached[0]).unwrap().ino();
    let second = run();
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(std::fs::metadata(&cached[0]).unwrap().ino(), inode, "read, not rewritten");
}
