//! CLIP's word splitting and byte-pair encoding, as open_clip's
//! `SimpleTokenizer` (OpenAI's tokenizer) does them on cleaned text.
//!
//! Words: the reference runs `regex.findall` with the pattern
//! `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//! compiled with IGNORECASE. `split_words` is that pattern as a scanner over
//! character classes read off the reference's own regex engine
//! (`tables.rs`): under IGNORECASE a long s (U+017F) is an `s`, so `'ſ` is a
//! contraction and `<ſtart_of_text>` one word, and U+0345 belongs to no class
//! and is dropped. A general-purpose regex engine folds case differently
//! there, which is why this is not a `regex::Regex`.
//!
//! Tokens: each word's UTF-8 bytes, the last one marked as ending the word,
//! are merged pair by pair, always the pair whose merge comes first in the
//! vocabulary (`clip_merges.txt`: the 48,894 merges of OpenAI's
//! `bpe_simple_vocab_16e6.txt` that CLIP uses), until no pair merges. A word
//! that is exactly a special token's spelling is that token.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::clean::in_ranges;
use super::tables::{WORD_DIGITS, WORD_LETTERS, WORD_LITERAL_VARIANTS, WORD_SYMBOLS};
use super::{END_OF_TEXT, START_OF_TEXT};

/// The merges CLIP uses, with the vocabulary file's header line first;
/// written by `tools/testdata/make_text_clean_tables.py` from open_clip's copy of
/// OpenAI's `bpe_simple_vocab_16e6.txt.gz`.
const MERGES: &str = include_str!("clip_merges.txt");
/// Tokens before the first merge: one per byte, then one per byte ending a word.
const BYTE_TOKENS: u16 = 512;
/// Marks a unit as the end of a word in the vocabulary's spelling.
const END_OF_WORD: &str = "</w>";

const SPECIAL_TOKENS: [(&str, u16); 2] = [("<start_of_text>", START_OF_TEXT), ("<end_of_text>", END_OF_TEXT)];
/// The pattern's literal alternatives, in the order it tries them.
const LITERAL_WORDS: [&str; 9] = ["<start_of_text>", "<end_of_text>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

/// The byte-pair merge tables.
pub struct Bpe {
    /// The token of each byte inside a word; `+ 256` at the end of a word.
    byte_token: [u16; 256],
    /// (left token, right token) -> merged token. Merged tokens are numbered
    /// in merge order, so the smallest merged token is the merge to apply first.
    merges: HashMap<(u16, u16), u16>,
}

impl Bpe {
    /// The tables, built once per process from the bundled merges (about 10 ms).
    pub fn shared() -> &'static Bpe {
        static BPE: OnceLock<Bpe> = OnceLock::new();
        BPE.get_or_init(Bpe::from_merges)
    }

    fn from_merges() -> Bpe {
        let byte_units = byte_units();
        let mut byte_token = [0u16; 256];
        let mut token_of: HashMap<String, u16> = HashMap::with_capacity(50_000);
        for (token, &(byte, unit)) in byte_units.iter().enumerate() {
            byte_token[byte as usize] = token as u16;
            token_of.insert(unit.to_string(), token as u16);
            token_of.insert(format!("{unit}{END_OF_WORD}"), token as u16 + 256);
        }
        let mut merges = HashMap::with_capacity(50_000);
        // The first line is the file's version header.
        for (rank, line) in MERGES.lines().skip(1).enumerate() {
            let (left, right) = line.split_once(' ').expect("clip_merges.txt: a merge is two units");
            let merged = BYTE_TOKENS + rank as u16;
            let pair = (token_of[left], token_of[right]);
            merges.insert(pair, merged);
            let previous = token_of.insert(format!("{left}{right}"), merged);
            debug_assert!(previous.is_none(), "clip_merges.txt: {left}{right} is made twice");
        }
        assert_eq!(merges.len(), usize::from(START_OF_TEXT - BYTE_TOKENS), "clip_merges.txt is incomplete");
        Bpe { byte_token, merges }
    }

    /// Appends the tokens of cleaned text (see `clean::clean`).
    pub fn encode(&self, cleaned: &str, out: &mut Vec<u16>) {
        for word in split_words(cleaned) {
            match SPECIAL_TOKENS.iter().find(|(spelling, _)| *spelling == word) {
                Some(&(_, token)) => out.push(token),
                None => self.encode_word(word, out),
            }
        }
    }

    /// Appends the tokens of one word: its bytes, merged.
    fn encode_word(&self, word: &str, out: &mut Vec<u16>) {
        let start = out.len();
        out.extend(word.bytes().map(|b| self.byte_token[usize::from(b)]));
        if let Some(last) = out[start..].last_mut() {
            *last += 256;
        }
        loop {
            let next = out[start..]
                .windows(2)
                .filter_map(|pair| self.merges.get(&(pair[0], pair[1])).map(|&merged| (merged, pair[0], pair[1])))
                .min();
            let Some((merged, left, right)) = next else { break };
            // Every occurrence of the pair, left to right, without overlap.
            let mut read = start;
            let mut write = start;
            while read < out.len() {
                if read + 1 < out.len() && out[read] == left && out[read + 1] == right {
                    out[write] = merged;
                    read += 2;
                } else {
                    out[write] = out[read];
                    read += 1;
                }
                write += 1;
            }
            out.truncate(write);
        }
    }
}

/// GPT-2's reversible byte -> printable character map, in vocabulary order:
/// the printable Latin-1 bytes stand for themselves, the other bytes take
/// U+0100 onwards in byte order.
fn byte_units() -> Vec<(u8, char)> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut units: Vec<(u8, char)> = (0..=255u8).filter(|&b| printable(b)).map(|b| (b, char::from(b))).collect();
    let others = (0..=255u8).filter(|&b| !printable(b));
    units.extend(others.enumerate().map(|(n, b)| (b, char::from_u32(256 + n as u32).unwrap())));
    units
}

/// The reference's words of cleaned text, in order; whitespace and
/// characters no class matches separate them.
pub fn split_words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut pos = 0;
    while let Some(c) = text[pos..].chars().next() {
        let rest = &text[pos..];
        let len = if let Some(len) = LITERAL_WORDS.iter().find_map(|literal| literal_prefix(rest, literal)) {
            len
        } else if in_ranges(WORD_LETTERS, c) {
            run_length(rest, WORD_LETTERS)
        } else if in_ranges(WORD_DIGITS, c) {
            c.len_utf8()
        } else if in_ranges(WORD_SYMBOLS, c) {
            run_length(rest, WORD_SYMBOLS)
        } else {
            pos += c.len_utf8();
            continue;
        };
        words.push(&rest[..len]);
        pos += len;
    }
    words
}

/// Bytes of `text`'s longest prefix made of characters in `class`.
fn run_length(text: &str, class: &[(char, char)]) -> usize {
    text.char_indices().find(|&(_, c)| !in_ranges(class, c)).map_or(text.len(), |(i, _)| i)
}

/// The bytes of `text` that match `literal` case-insensitively as the
/// reference's regex engine matches it, if `text` starts with it.
fn literal_prefix(text: &str, literal: &str) -> Option<usize> {
    let mut chars = text.chars();
    let mut len = 0;
    for want in literal.chars() {
        let got = chars.next()?;
        if got != want && !case_variants(want).contains(got) {
            return None;
        }
        len += got.len_utf8();
    }
    Some(len)
}

fn case_variants(c: char) -> &'static str {
    WORD_LITERAL_VARIANTS.binary_search_by(|&(k, _)| k.cmp(&c)).map_or("", |i| WORD_LITERAL_VARIANTS[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_the_case_insensitive_pattern() {
        assert_eq!(split_words("it's a cat's toy"), ["it", "'s", "a", "cat", "'s", "toy"]);
        assert_eq!(split_words("it'\u{17f}"), ["it", "'\u{17f}"]);
        assert_eq!(split_words("''s"), ["''", "s"]);
        assert_eq!(split_words("<\u{17f}tart_of_text>x"), ["<\u{17f}tart_of_text>", "x"]);
        assert_eq!(split_words("a\u{345}b  12"), ["a", "b", "1", "2"]);
        assert_eq!(split_words("$5.99!"), ["$", "5", ".", "9", "9", "!"]);
        assert!(split_words(" \t").is_empty());
    }

    #[test]
    fn bytes_map_to_the_vocabulary_order() {
        let units = byte_units();
        assert_eq!(units.len(), 256);
        assert_eq!(units[0], (b'!', '!'));
        // The first non-printable byte, 0, is the first unit past Latin-1.
        assert_eq!(units[188], (0, '\u{100}'));
        assert_eq!(units[255], (0xAD, '\u{143}'));
    }

    #[test]
    fn merges_give_known_tokens() {
        let bpe = Bpe::shared();
        let mut out = Vec::new();
        bpe.encode("a photo of a cat", &mut out);
        assert_eq!(out, [320, 1125, 539, 320, 2368]);
        out.clear();
        bpe.encode("<start_of_text>hi<end_of_text>", &mut out);
        assert_eq!(out, [START_OF_TEXT, 1883, END_OF_TEXT]);
    }
}
