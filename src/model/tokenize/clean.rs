//! The text cleaning OpenAI CLIP's tokenizer applies before BPE, reproduced
//! step for step.
//!
//! open_clip's `SimpleTokenizer` (and OpenAI's original) runs
//! `whitespace_clean(basic_clean(text)).lower()`, where `basic_clean` is
//! `ftfy.fix_text(text)`, then `html.unescape` twice, then `strip()`, and
//! `whitespace_clean` joins `text.split()` with single spaces. A prompt that
//! is cleaned differently gets other tokens and so another embedding than the
//! one the model was trained to produce, so each step here follows the Python
//! one, with the character tables generated from the Python objects
//! themselves (`tables.rs`, by `tools/testdata/make_text_clean_tables.py`).
//!
//! Of `ftfy.fix_text` this does every step except the mojibake repair
//! (`fix_encoding`: re-decoding text such as "cafÃ©" that was UTF-8 read as
//! Latin-1), which rests on ftfy's statistical heuristics; text that is
//! valid, as labels typed by a person are, passes that step unchanged.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::{Captures, Regex};
use unicode_normalization::UnicodeNormalization;

use super::tables::*;

/// The whole cleaning: what CLIP's tokenizer feeds to its word splitter.
pub fn clean(text: &str) -> String {
    let fixed = ftfy_fix_text(text);
    let unescaped = html_unescape(&html_unescape(&fixed)).into_owned();
    py_lower(&whitespace_clean(&unescaped))
}

// ---- ftfy.fix_text -------------------------------------------------------

/// `ftfy.fix_text` with its default configuration, less `fix_encoding`: the
/// fixes run in ftfy's order until the text stops changing.
pub fn ftfy_fix_text(text: &str) -> String {
    // unescape_html = "auto": text with a '<' may be HTML source; leave it.
    let unescape = !text.contains('<');
    let mut text = text.to_string();
    loop {
        let before = text.clone();
        if unescape {
            text = ftfy_unescape_html(&text).into_owned();
        }
        text = text.chars().map(fix_c1_control).collect();
        text = translate(&text, FTFY_LIGATURES);
        text = translate(&text, FTFY_WIDTH);
        text = text.chars().map(uncurl_quote).collect();
        text = fix_line_breaks(&text);
        text = remove_terminal_escapes(&text).into_owned();
        text = text.chars().filter(|&c| !in_ranges(FTFY_CONTROL_CHARS, c)).collect();
        text = text.nfc().collect();
        if text == before {
            return text;
        }
    }
}

/// ftfy's `unescape_html`: only references that end in ';', named ones from
/// HTML5 (and the all-caps forms of some), numeric ones through Python's
/// `html.unescape` when that consumes the whole reference.
fn ftfy_unescape_html(text: &str) -> Cow<'_, str> {
    static ENTITY: OnceLock<Regex> = OnceLock::new();
    let entity = ENTITY.get_or_init(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").unwrap());
    entity.replace_all(text, |caps: &Captures| {
        let reference = &caps[0];
        if let Some(value) = lookup(FTFY_ENTITIES, reference) {
            value.to_string()
        } else if reference.starts_with("&#") {
            let decoded = html_unescape(reference);
            if decoded.contains(';') {
                reference.to_string()
            } else {
                decoded.into_owned()
            }
        } else {
            reference.to_string()
        }
    })
}

/// ftfy's `fix_c1_controls`: U+0080..U+009F are read as windows-1252 bytes.
fn fix_c1_control(c: char) -> char {
    match c as u32 {
        cp @ 0x80..=0x9F => FTFY_C1[(cp - 0x80) as usize],
        _ => c,
    }
}

/// ftfy's `uncurl_quotes`.
fn uncurl_quote(c: char) -> char {
    match c {
        '\u{2BC}' | '\u{2018}'..='\u{201B}' => '\'',
        '\u{201C}'..='\u{201F}' => '"',
        _ => c,
    }
}

/// ftfy's `fix_line_breaks`.
fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n").replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
}

/// ftfy's `remove_terminal_escapes` (`\x1b[` digits and ';', then a letter;
/// Python's `\d` is any Unicode decimal digit, as the regex crate's is).
fn remove_terminal_escapes(text: &str) -> Cow<'_, str> {
    static ANSI: OnceLock<Regex> = OnceLock::new();
    ANSI.get_or_init(|| Regex::new(r"\x1b\[((?:\d|;)*)([a-zA-Z])").unwrap()).replace_all(text, "")
}

/// `str.translate` with a table of single characters to strings.
fn translate(text: &str, table: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match table.binary_search_by(|(k, _)| k.cmp(&c)) {
            Ok(i) => out.push_str(table[i].1),
            Err(_) => out.push(c),
        }
    }
    out
}

// ---- html.unescape -------------------------------------------------------

/// Python's `html.unescape`: decimal, hexadecimal and named references, with
/// or without the ';' where HTML5 allows it, longest known name first.
pub fn html_unescape(text: &str) -> Cow<'_, str> {
    static REFERENCE: OnceLock<Regex> = OnceLock::new();
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let reference =
        REFERENCE.get_or_init(|| Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0C <&#;]{1,32};?)").unwrap());
    reference.replace_all(text, |caps: &Captures| replace_reference(&caps[1]))
}

fn replace_reference(body: &str) -> String {
    if let Some(number) = body.strip_prefix('#') {
        let (digits, radix) = match number.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16),
            None => (number, 10),
        };
        // Python's int() has no limit; anything past u64 is past U+10FFFF too.
        let value = u64::from_str_radix(digits.trim_end_matches(';'), radix).unwrap_or(u64::MAX);
        if let Ok(i) = HTML_INVALID_CHARREFS.binary_search_by(|(k, _)| u64::from(*k).cmp(&value)) {
            return HTML_INVALID_CHARREFS[i].1.to_string();
        }
        let Some(c) = u32::try_from(value).ok().and_then(char::from_u32) else {
            return "\u{FFFD}".into(); // a surrogate or past U+10FFFF
        };
        if in_ranges(HTML_INVALID_CODEPOINTS, c) {
            return String::new();
        }
        return c.to_string();
    }
    if let Some(value) = lookup(HTML5_ENTITIES, body) {
        return value.to_string();
    }
    // The longest prefix that is a name (of at least two characters).
    let ends: Vec<usize> = body.char_indices().map(|(i, _)| i).skip(2).collect();
    for &end in ends.iter().rev() {
        if let Some(value) = lookup(HTML5_ENTITIES, &body[..end]) {
            return format!("{value}{}", &body[end..]);
        }
    }
    format!("&{body}")
}

// ---- Python str methods --------------------------------------------------

/// Python's `str.isspace()`.
pub fn is_py_space(c: char) -> bool {
    in_ranges(PY_WHITESPACE, c)
}

/// `" ".join(text.split())`: Python's whitespace, not Rust's (they differ on
/// U+001C..U+001F, which Python counts).
pub fn whitespace_clean(text: &str) -> String {
    text.split(is_py_space).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Python's `str.lower()`, including its final-sigma rule: U+03A3 becomes
/// U+03C2 when a cased character comes before it and none after, skipping
/// case-ignorable characters both ways.
pub fn py_lower(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '\u{3A3}' {
            let significant = |c: &&char| !in_ranges(PY_CASE_IGNORABLE, **c);
            let cased_before = chars[..i].iter().rev().find(significant).is_some_and(|&c| in_ranges(PY_CASED, c));
            let cased_after = chars[i + 1..].iter().find(significant).is_some_and(|&c| in_ranges(PY_CASED, c));
            out.push(if cased_before && !cased_after { '\u{3C2}' } else { '\u{3C3}' });
        } else {
            match PY_LOWER.binary_search_by(|(k, _)| k.cmp(&c)) {
                Ok(i) => out.push_str(PY_LOWER[i].1),
                Err(_) => out.push(c),
            }
        }
    }
    out
}

// ---- table look-ups ------------------------------------------------------

fn lookup<'t>(table: &'t [(&str, &str)], key: &str) -> Option<&'t str> {
    table.binary_search_by(|(k, _)| (*k).cmp(key)).ok().map(|i| table[i].1)
}

/// Whether `c` is in one of the sorted, inclusive `ranges`.
pub(super) fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    match ranges.binary_search_by(|&(lo, _)| lo.cmp(&c)) {
        Ok(_) => true,
        Err(0) => false,
        Err(i) => c <= ranges[i - 1].1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_lookup_covers_bounds_and_gaps() {
        let r = [('b', 'd'), ('x', 'x')];
        let got: String = "abcdewxyz".chars().filter(|&c| in_ranges(&r, c)).collect();
        assert_eq!(got, "bcdx");
    }
}
