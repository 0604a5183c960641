//! The labels text file: one label a line, `#` comments, optional prompts,
//! threshold and negative mark (`models/FORMAT.md` has the syntax).

use std::path::Path;

use super::embeddings::{EMB_MAX_PROMPTS, EMB_MAX_STRING};
use super::LabelsError;

/// One label as written in a labels file.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: String,
    /// The texts whose embeddings are averaged; the name itself when the
    /// line gives none.
    pub prompts: Vec<String>,
    /// Per-label detection threshold, if the line sets one (`name @0.45`).
    pub threshold: Option<f32>,
    /// A background class: competes in the softmax, never fires.
    pub negative: bool,
    /// 1-based line in the file it came from.
    pub line: usize,
    /// Whether the line gave prompts (`name: ...`); prompt templates apply
    /// only to labels that did not.
    pub explicit_prompts: bool,
}

impl Label {
    /// The warning for a prompt of this label that is longer than the text
    /// encoder's context (`path` is the labels file it came from).
    pub fn truncation_warning(&self, path: &Path, prompt: &str) -> String {
        format!(
            "{}:{}: a prompt of label '{}' is longer than the text encoder's context; only its start counts: {prompt:?}",
            path.display(),
            self.line,
            self.name
        )
    }

    /// Replaces the prompt of a label written without prompts by one per
    /// template (`{}` is the name): "cat" with "a photo of a {}." becomes
    /// "a photo of a cat.".
    pub fn apply_templates(&mut self, templates: &[String]) {
        if !self.explicit_prompts && !templates.is_empty() {
            self.prompts = templates.iter().map(|t| t.replacen("{}", &self.name, 1)).collect();
        }
    }
}

/// Parses the text of a labels file. `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Label>, LabelsError> {
    let syntax = |line: usize, message: String| LabelsError::Syntax { path: path.to_path_buf(), line, message };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut labels: Vec<Label> = Vec::new();
    for (ix, raw_line) in text.lines().enumerate() {
        let line_no = ix + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negative, rest) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        let (head, prompts_text) = match rest.split_once(':') {
            Some((head, prompts)) => (head.trim(), Some(prompts)),
            None => (rest.trim(), None),
        };
        if negative && head.contains('@') {
            return Err(syntax(
                line_no,
                format!("'{line}': a negative label ('!') never fires, so a threshold ('@') means nothing; remove one of them"),
            ));
        }
        let (name, threshold) = match head.rsplit_once('@') {
            Some((name, t)) => {
                let t = t.trim();
                let value: f32 = t.parse().ok().filter(|v: &f32| (0.0..=1.0).contains(v)).ok_or_else(|| {
                    syntax(
                        line_no,
                        format!("threshold '@{t}' is not a number between 0 and 1, e.g. 'delivery van @0.45'"),
                    )
                })?;
                (name.trim(), Some(value))
            }
            None => (head, None),
        };
        if name.is_empty() {
            return Err(syntax(line_no, format!("'{line}' has no label name before ':' or '@'")));
        }
        let prompts: Vec<String> = match prompts_text {
            None => vec![name.to_string()],
            Some(p) => {
                let prompts: Vec<String> = p.split(';').map(|s| s.trim().to_string()).collect();
                if prompts.len() > EMB_MAX_PROMPTS {
                    return Err(syntax(
                        line_no,
                        format!("label '{name}' has {} prompts; at most {EMB_MAX_PROMPTS} are accepted", prompts.len()),
                    ));
                }
                if let Some(p) =
                    prompts.iter().find(|p| super::examples::example_prompt(p).is_some_and(|(_, path)| path.is_empty()))
                {
                    return Err(syntax(
                        line_no,
                        format!("label '{name}': '{p}' names no image; write 'image:FILE-OR-FOLDER', relative to the labels file's folder"),
                    ));
                }
                if prompts.iter().any(|p| p.is_empty()) {
                    return Err(syntax(
                        line_no,
                        format!("label '{name}' has an empty prompt in '{line}': write 'name: prompt one; prompt two'"),
                    ));
                }
                prompts
            }
        };
        for text in std::iter::once(name).chain(prompts.iter().map(String::as_str)) {
            if text.len() > EMB_MAX_STRING {
                return Err(syntax(
                    line_no,
                    format!(
                        "'{}...' is {} bytes long; names and prompts are at most {EMB_MAX_STRING} (CLIP reads only a prompt's first 77 tokens, about 300 characters)",
                        text.chars().take(40).collect::<String>(),
                        text.len()
                    ),
                ));
            }
        }
        if let Some(c) = name.chars().find(|c| matches!(c, '/' | '+' | '#') || c.is_control()) {
            return Err(syntax(
                line_no,
                format!(
                    "label name '{name}' contains {c:?}, which cannot be part of an MQTT topic; use letters, digits, spaces and punctuation other than / + #, and put the wording in a prompt: '{}: ...'",
                    name.replace(['/', '+', '#'], " ").split_whitespace().collect::<Vec<_>>().join(" ")
                ),
            ));
        }
        if let Some(first) = labels.iter().find(|l| l.name == name) {
            return Err(syntax(line_no, format!("label '{name}' is already defined on line {}", first.line)));
        }
        let explicit_prompts = prompts_text.is_some();
        labels.push(Label { name: name.to_string(), prompts, threshold, negative, line: line_no, explicit_prompts });
    }
    if labels.is_empty() {
        return Err(LabelsError::Empty { path: path.to_path_buf() });
    }
    Ok(labels)
}

/// `text` (a labels file) with the thresholds of some labels set, by line
/// (1-based): `van: a van` at line 3 with 0.62 becomes `van @0.62: a van`,
/// an existing `@0.45` is replaced, and every other byte stays as it was
/// (comments, blank lines, prompts, line endings).
pub fn with_thresholds(text: &str, thresholds: &std::collections::BTreeMap<usize, f32>) -> String {
    let mut out = String::with_capacity(text.len() + 8 * thresholds.len());
    for (ix, line) in text.split_inclusive('\n').enumerate() {
        let Some(&threshold) = thresholds.get(&(ix + 1)) else {
            out.push_str(line);
            continue;
        };
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        let (head, tail) = body.split_at(body.find(':').unwrap_or(body.len()));
        let name = head.rsplit_once('@').map_or(head, |(name, _)| name).trim_end();
        out.push_str(&format!("{name} @{threshold:.2}{tail}{ending}"));
    }
    out
}

/// Sets the thresholds of some labels (by line) in the labels file at
/// `path`, as [`with_thresholds`] does: what was valid is checked to stay
/// valid before it replaces the file, through a rename, so that the
/// daemon's watcher never reads half a file. `edgeclip calibrate --write`
/// and the web page's calibration write with it.
pub fn write_thresholds(path: &Path, thresholds: &std::collections::BTreeMap<usize, f32>) -> anyhow::Result<()> {
    use anyhow::Context;
    let written = with_thresholds(&read_text(path)?, thresholds);
    parse(path, &written).with_context(|| format!("the thresholds written into '{}'", path.display()))?;
    crate::util::file::write_atomically(path, written.as_bytes())
        .with_context(|| format!("cannot write '{}'", path.display()))
}

/// The largest labels file read: a thousand labels with long prompt
/// ensembles fit many times over.
pub const MAX_LABELS_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads and parses a labels file.
pub fn read(path: &Path) -> Result<Vec<Label>, LabelsError> {
    parse(path, &read_text(path)?)
}

/// The text of a labels file: a regular file of at most
/// [`MAX_LABELS_FILE_BYTES`], in UTF-8 (a byte that is not is named with
/// its line).
pub fn read_text(path: &Path) -> Result<String, LabelsError> {
    let bytes = crate::util::file::read_small(path, MAX_LABELS_FILE_BYTES)
        .map_err(|error| LabelsError::Read { path: path.to_path_buf(), error })?;
    String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..bad].iter().filter(|&&b| b == b'\n').count() + 1;
        LabelsError::Syntax {
            path: path.to_path_buf(),
            line,
            message: format!("byte {bad} (0x{:02x}) is not UTF-8; save the file as UTF-8 text", e.as_bytes()[bad]),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_written_into_their_lines_and_nothing_else_changes() {
        let text = "# my labels\r\nvan: a delivery van; a van\r\n\r\ncar @0.45\r\n!empty: an empty drive\r\nbike";
        let thresholds = [(2, 0.62), (4, 0.7), (6, 0.5)].into_iter().collect();
        let written = with_thresholds(text, &thresholds);
        assert_eq!(
            written,
            "# my labels\r\nvan @0.62: a delivery van; a van\r\n\r\ncar @0.70\r\n!empty: an empty drive\r\nbike @0.50"
        );
        let labels = parse(Path::new("labels.txt"), &written).unwrap();
        let got: Vec<(&str, Option<f32>, &[String])> =
            labels.iter().map(|l| (l.name.as_str(), l.threshold, l.prompts.as_slice())).collect();
        let before = parse(Path::new("labels.txt"), text).unwrap();
        assert_eq!(got[0], ("van", Some(0.62), before[0].prompts.as_slice()));
        assert_eq!((got[1].0, got[1].1), ("car", Some(0.7)));
        assert_eq!((got[2].0, got[2].1), ("empty", None));
        assert_eq!((got[3].0, got[3].1), ("bike", Some(0.5)));
    }
}
