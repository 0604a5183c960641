//! Prompts to token ids, exactly as OpenAI CLIP and open_clip tokenize them.
//!
//! A prompt is cleaned (`clean`: ftfy, HTML references, whitespace,
//! lower case, as the Python tokenizer does), split into words and merged
//! with CLIP's byte-pair encoding over OpenAI's vocabulary (`bpe`), then
//! framed for the text encoder: the start token,
//! the words' tokens, the end token, cut to the context length with the end
//! token kept last, padded with zeros. `edgeclip tokenize` prints the result
//! for people debugging a prompt.

pub mod bpe;
pub mod clean;
#[rustfmt::skip]
mod tables;

use bpe::Bpe;

/// Tokens a CLIP text encoder reads, start and end tokens included.
pub const CONTEXT_LENGTH: usize = 77;
/// `<start_of_text>` in OpenAI's vocabulary.
pub const START_OF_TEXT: u16 = 49406;
/// `<end_of_text>`; the text encoder pools its output at this token.
pub const END_OF_TEXT: u16 = 49407;

/// One prompt, tokenized for a text encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// Exactly the context length: start, tokens, end, zeros.
    pub ids: Vec<i64>,
    /// Tokens before framing and truncation (start and end excluded).
    pub tokens: Vec<u16>,
    /// Whether tokens were dropped to fit the context (CLIP silently does).
    pub truncated: bool,
}

/// The CLIP BPE tokenizer with CLIP's text cleaning.
pub struct ClipTokenizer {
    bpe: &'static Bpe,
}

impl Default for ClipTokenizer {
    fn default() -> Self {
        ClipTokenizer::new()
    }
}

impl ClipTokenizer {
    /// The first one in a process builds the merge tables (about 10 ms).
    pub fn new() -> ClipTokenizer {
        ClipTokenizer { bpe: Bpe::shared() }
    }

    /// The prompt's tokens without start and end tokens, untruncated.
    pub fn encode(&self, text: &str) -> Vec<u16> {
        let mut tokens = Vec::new();
        self.bpe.encode(&clean::clean(text), &mut tokens);
        tokens
    }

    /// The prompt framed for a text encoder with `context` positions
    /// (`CONTEXT_LENGTH` for every CLIP so far; at least 2).
    pub fn tokenize(&self, text: &str, context: usize) -> Tokenized {
        assert!(context >= 2, "a context holds at least the start and end tokens");
        let tokens = self.encode(text);
        let kept = tokens.len().min(context - 2);
        let mut ids = Vec::with_capacity(context);
        ids.push(i64::from(START_OF_TEXT));
        ids.extend(tokens[..kept].iter().map(|&t| i64::from(t)));
        ids.push(i64::from(END_OF_TEXT));
        ids.resize(context, 0);
        Tokenized { truncated: kept < tokens.len(), ids, tokens }
    }
}
