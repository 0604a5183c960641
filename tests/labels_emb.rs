//! labels.emb reading and writing, and pairing a labels file with it.

use std::path::Path;

use edgeclip::labels::file::parse as parse_labels;
use edgeclip::labels::{EmbeddedLabel, LabelEmbeddings};

use crate::support::paths::data_dir;

fn sample() -> LabelEmbeddings {
    LabelEmbeddings {
        dim: 3,
        text_encoder_sha256: [7u8; 32],
        labels: vec![
            EmbeddedLabel {
                name: "cat".into(),
                prompts: vec!["a photo of a cat".into(), "a cat".into()],
                vector: vec![1.0, 0.0, 0.0],
            },
            EmbeddedLabel { name: "café ☕".into(), prompts: vec!["café ☕".into()], vector: vec![0.0, 0.6, 0.8] },
        ],
    }
}

#[test]
fn round_trip_and_exact_layout() {
    let bytes = sample().to_bytes();
    // Header: magic, version 1, dim 3, count 2, 32-byte sha.
    assert_eq!(&bytes[..8], b"ECLIPEMB");
    assert_eq!(&bytes[8..20], &[1, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(&bytes[20..52], &[7u8; 32]);
    // First record: name length 3, "cat".
    assert_eq!(&bytes[52..59], &[3, 0, 0, 0, b'c', b'a', b't']);
    assert_eq!(LabelEmbeddings::from_bytes(&bytes).unwrap(), sample());
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    let bytes = sample().to_bytes();
    for cut in 0..bytes.len() {
        assert!(LabelEmbeddings::from_bytes(&bytes[..cut]).is_err(), "truncated at {cut} was accepted");
    }
    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = b'X';
    assert_eq!(LabelEmbeddings::from_bytes(&wrong_magic).unwrap_err(), "it does not start with 'ECLIPEMB'");
    let mut v2 = bytes.clone();
    v2[8] = 2;
    assert_eq!(
        LabelEmbeddings::from_bytes(&v2).unwrap_err(),
        "version 2 is not supported: this edgeclip reads version 1"
    );
    let mut huge = bytes.clone();
    huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(LabelEmbeddings::from_bytes(&huge).unwrap_err().contains("claims 4294967295 labels"));
    let mut trailing = bytes;
    trailing.push(0);
    assert_eq!(LabelEmbeddings::from_bytes(&trailing).unwrap_err(), "1 bytes of trailing data after the last label");
}

#[test]
fn labels_file_subset_syntax() {
    let text = "\u{feff}# comment\r\n\r\nperson\r\ncat: a photo of a cat; a cat\n!empty: an empty room\ndelivery van @0.45: a van\n";
    let labels = parse_labels(Path::new("l.txt"), text).unwrap();
    let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["person", "cat", "empty", "delivery van"]);
    assert_eq!(labels[0].prompts, ["person"]);
    assert_eq!(labels[1].prompts, ["a photo of a cat", "a cat"]);
    assert!(labels[2].negative && !labels[1].negative);
    assert_eq!(labels[3].threshold, Some(0.45));
    assert_eq!(labels[3].line, 6);
}

#[test]
fn select_refuses_missing_and_changed_prompts() {
    let emb = sample();
    let ok = parse_labels(Path::new("l.txt"), "cat: a photo of a cat; a cat\n").unwrap();
    assert_eq!(emb.select(Path::new("x.emb"), Path::new("l.txt"), &ok).unwrap()[0].name, "cat");

    let changed = parse_labels(Path::new("l.txt"), "cat: a cat\n").unwrap();
    let e = emb.select(Path::new("x.emb"), Path::new("l.txt"), &changed).unwrap_err().to_string();
    assert!(
        e.starts_with("l.txt:1: label 'cat' has no precomputed embedding in 'x.emb' for its current prompts;"),
        "{e}"
    );

    let missing = parse_labels(Path::new("l.txt"), "# x\ndog\n").unwrap();
    let e = emb.select(Path::new("x.emb"), Path::new("l.txt"), &missing).unwrap_err().to_string();
    assert!(e.starts_with("l.txt:2: label 'dog' has no precomputed embedding in 'x.emb';"), "{e}");
}

/// One file per labels-file mistake in `tests/data/invalid-labels/`, with the
/// exact message (`FILE` stands for the file's path).
const LABEL_MISTAKES: &[(&str, &str)] = &[
    ("duplicate-label.txt", "FILE:4: label 'person' is already defined on line 2"),
    ("empty-prompt.txt", "FILE:1: label 'cat' has an empty prompt in 'cat: a cat;; a kitten': write 'name: prompt one; prompt two'"),
    ("trailing-semicolon.txt", "FILE:1: label 'cat' has an empty prompt in 'cat: a photo of a cat;': write 'name: prompt one; prompt two'"),
    ("colon-without-prompts.txt", "FILE:1: label 'cat' has an empty prompt in 'cat:': write 'name: prompt one; prompt two'"),
    ("threshold-out-of-range.txt", "FILE:1: threshold '@1.5' is not a number between 0 and 1, e.g. 'delivery van @0.45'"),
    ("threshold-not-a-number.txt", "FILE:1: threshold '@high' is not a number between 0 and 1, e.g. 'delivery van @0.45'"),
    ("no-name.txt", "FILE:1: ': a photo of a cat' has no label name before ':' or '@'"),
    ("negative-alone.txt", "FILE:1: '!' has no label name before ':' or '@'"),
    (
        "negative-with-threshold.txt",
        "FILE:1: '!empty @0.5: an empty room': a negative label ('!') never fires, so a threshold ('@') means nothing; remove one of them",
    ),
    ("only-comments.txt", "'FILE': no labels in it (every line is blank or a # comment); add one label a line, e.g. 'a cat on the sofa'"),
    ("empty-file.txt", "'FILE': no labels in it (every line is blank or a # comment); add one label a line, e.g. 'a cat on the sofa'"),
    (
        "slash-in-name.txt",
        "FILE:2: label name 'cat/dog' contains '/', which cannot be part of an MQTT topic; use letters, digits, spaces and punctuation other than / + #, and put the wording in a prompt: 'cat dog: ...'",
    ),
    ("not-utf8.txt", "FILE:2: byte 10 (0xe9) is not UTF-8; save the file as UTF-8 text"),
    (
        "prompt-too-long.txt",
        "FILE:1: 'a very long prompt a very long prompt a ...' is 4749 bytes long; names and prompts are at most 4096 (CLIP reads only a prompt's first 77 tokens, about 300 characters)",
    ),
];

#[test]
fn every_labels_mistake_gives_its_message() {
    let dir = data_dir().join("invalid-labels");
    for (file, want) in LABEL_MISTAKES {
        let path = dir.join(file);
        let got = edgeclip::labels::file::read(&path).unwrap_err().to_string();
        assert_eq!(got.replace(&path.display().to_string(), "FILE"), *want, "{file}");
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(LABEL_MISTAKES.iter().any(|(f, _)| *f == name), "{name} has no expected message in LABEL_MISTAKES");
    }
}
