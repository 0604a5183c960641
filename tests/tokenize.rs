//! The CLIP tokenizer against the reference: open_clip's `SimpleTokenizer`
//! (OpenAI's tokenizer) on the committed corpus `tests/data/golden/tokenizer.json`
//! (unicode, accents, CJK, emoji, punctuation, numbers, HTML references,
//! whitespace, control characters, special-token strings, very long text),
//! written by `tools/testdata/make_tokenizer_golden.py`. Tolerance: none, the ids must
//! be identical.

use edgeclip::model::tokenize::clean::clean;
use edgeclip::model::tokenize::{ClipTokenizer, CONTEXT_LENGTH};
use serde_json::Value;

use crate::support::paths::golden_dir;
use crate::support::process::{edgeclip_command, SpawnWatched};

/// The one category the Rust side does not reproduce: ftfy's mojibake repair
/// (see `src/tokenize/clean.rs`). Its strings are checked to differ only
/// where that repair acted.
const MOJIBAKE: &str = "mojibake";

#[test]
fn token_ids_match_the_reference_tokenizer_on_the_golden_corpus() {
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("tokenizer.json")).unwrap()).unwrap();
    assert_eq!(golden["context_length"].as_u64().unwrap() as usize, CONTEXT_LENGTH);
    let tokenizer = ClipTokenizer::new();
    let entries = golden["entries"].as_array().unwrap();
    assert!(entries.len() >= 500, "the corpus has {} strings", entries.len());
    let (mut checked, mut truncated, mut failures) = (0, 0, Vec::new());
    for e in entries {
        let text = e["text"].as_str().unwrap();
        let category = e["category"].as_str().unwrap();
        let want_clean = e["clean"].as_str().unwrap();
        let want_ids: Vec<u16> = e["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u16).collect();
        let want_context: Vec<i64> = e["context"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let got = tokenizer.tokenize(text, CONTEXT_LENGTH);
        let got_clean = clean(text);
        if category == MOJIBAKE {
            let fixes = e["ftfy_changed"].to_string();
            if got_clean != want_clean {
                assert!(fixes.contains("fix_encoding"), "{text:?}: differs without a mojibake repair ({fixes})");
            }
            continue;
        }
        checked += 1;
        truncated += got.truncated as usize;
        assert_eq!(got_clean, want_clean, "[{category}] {text:?}: cleaned text");
        if got.tokens != want_ids || got.ids != want_context {
            failures.push(format!(
                "[{category}] {text:?}\n    clean {got_clean:?}\n     want {want_clean:?}\n    ids {:?}\n   want {want_ids:?}",
                got.tokens
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {checked} strings differ:\n{}", failures.len(), failures.join("\n"));
    assert!(truncated >= 10, "the corpus should exercise truncation ({truncated} truncated)");
    eprintln!("{checked} strings, {truncated} truncated: all identical");
}

#[test]
fn truncation_keeps_the_end_token_last() {
    let tokenizer = ClipTokenizer::new();
    let long = "a ".repeat(100);
    let t = tokenizer.tokenize(&long, CONTEXT_LENGTH);
    assert!(t.truncated);
    assert_eq!(t.tokens.len(), 100);
    assert_eq!(t.ids.len(), CONTEXT_LENGTH);
    assert_eq!(t.ids[0], 49406);
    assert!(t.ids[1..76].iter().all(|&i| i == 320)); // "a</w>"
    assert_eq!(t.ids[76], 49407);
    // 75 tokens fit exactly: no truncation, no padding.
    let t = tokenizer.tokenize(&"a ".repeat(75), CONTEXT_LENGTH);
    assert!(!t.truncated);
    assert_eq!(t.ids[76], 49407);
    let t = tokenizer.tokenize("", CONTEXT_LENGTH);
    assert_eq!(&t.ids[..3], &[49406, 49407, 0]);
}

#[test]
fn the_tokenize_command_prints_ids_and_warns_on_truncation() {
    let out = edgeclip_command().args(["tokenize", "A photo of a cat", &"dog ".repeat(80)]).output_watched().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "\"A photo of a cat\"");
    assert_eq!(lines[1], "  cleaned   \"a photo of a cat\"");
    assert_eq!(lines[2], "  5 tokens  49406 320 1125 539 320 2368 49407");
    assert_eq!(
        lines[6],
        "  warning: 80 tokens do not fit the 77-token context; the text encoder sees only the first 75"
    );
}
