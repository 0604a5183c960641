//! Fuzzes the labels-file parser and what a parsed label goes through next
//! (CLIP's text cleaning and tokenizer): no input may panic, and whatever
//! parses must satisfy the parser's promises.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use edgeclip::labels::file;
use edgeclip::model::tokenize::{ClipTokenizer, CONTEXT_LENGTH};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static TOKENIZER: ClipTokenizer = ClipTokenizer::new();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(labels) = file::parse(Path::new("fuzz.txt"), text) else { return };
    assert!(!labels.is_empty());
    let mut names = HashSet::new();
    let mut last_line = 0;
    for l in &labels {
        assert!(!l.name.is_empty() && l.name == l.name.trim(), "{:?}", l.name);
        assert!(!l.name.contains(['/', '+', '#']));
        assert!(names.insert(l.name.clone()), "duplicate {:?}", l.name);
        assert!(l.line > last_line);
        last_line = l.line;
        assert!(!l.prompts.is_empty());
        assert!(l.prompts.iter().all(|p| !p.is_empty() && p == p.trim()));
        assert!(l.threshold.is_none_or(|t| (0.0..=1.0).contains(&t)));
        assert!(!(l.negative && l.threshold.is_some()));
        TOKENIZER.with(|t| {
            for p in &l.prompts {
                let row = t.tokenize(p, CONTEXT_LENGTH);
                assert_eq!(row.ids.len(), CONTEXT_LENGTH);
                assert_eq!(row.ids[0], 49406);
                assert!(row.ids.contains(&49407));
            }
        });
    }
});
