//! `edgeclip tokenize`: the CLIP token ids of each text, as the text encoder
//! reads them, to check what a label's prompts become.

use std::io::Write;

use serde::Serialize;

use crate::model::tokenize::{clean::clean, ClipTokenizer, CONTEXT_LENGTH};

/// `edgeclip tokenize`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct TokenizeArgs {
    /// One JSON object per text (with the cleaned text and the padded ids).
    #[arg(long)]
    pub json: bool,
    /// The texts (quote each prompt).
    #[arg(required = true)]
    pub texts: Vec<String>,
}

#[derive(Serialize)]
struct JsonTokens<'a> {
    text: &'a str,
    clean: String,
    ids: &'a [i64],
    tokens: usize,
    truncated: bool,
}

/// `edgeclip tokenize`: the CLIP token ids of each text, as the text encoder
/// reads them (start token, tokens, end token; the zero padding is left out
/// of the text form), with a warning when the text is longer than the context.
pub fn tokenize(args: &TokenizeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let tokenizer = ClipTokenizer::new();
    for text in &args.texts {
        let t = tokenizer.tokenize(text, CONTEXT_LENGTH);
        if args.json {
            let line =
                JsonTokens { text, clean: clean(text), ids: &t.ids, tokens: t.tokens.len(), truncated: t.truncated };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
            continue;
        }
        let framed = t.tokens.len().min(CONTEXT_LENGTH - 2) + 2;
        let ids: Vec<String> = t.ids[..framed].iter().map(|i| i.to_string()).collect();
        writeln!(out, "{text:?}")?;
        writeln!(out, "  cleaned   {:?}", clean(text))?;
        writeln!(out, "  {} tokens  {}", t.tokens.len(), ids.join(" "))?;
        if t.truncated {
            writeln!(
                out,
                "  warning: {} tokens do not fit the {CONTEXT_LENGTH}-token context; the text encoder sees only the first {}",
                t.tokens.len(),
                CONTEXT_LENGTH - 2
            )?;
        }
    }
    Ok(())
}
