//! Labels: what the camera looks for, as text, and their text embeddings.
//!
//! A labels file is plain text, one label a line (see `models/FORMAT.md`).
//! Its embeddings live in a `labels.emb` file that records, for every label,
//! the exact prompts that produced the vector and the sha256 of the text
//! encoder that embedded them, so that a stale file is detected rather than
//! silently matched. This module reads and writes both and pairs them up;
//! `crate::labelset` decides where embeddings come from (this file, a cache,
//! or the text encoder).

use std::fs;
use std::path::{Path, PathBuf};

/// Magic bytes at the start of a `labels.emb` file.
pub const EMB_MAGIC: &[u8; 8] = b"ECLIPEMB";
/// The only `labels.emb` version this build reads and writes.
pub const EMB_VERSION: u32 = 1;
/// Largest string (label name or prompt) accepted in a `labels.emb`; a
/// prompt is at most 77 CLIP tokens, so 4 KiB only guards against a corrupt
/// length field.
const EMB_MAX_STRING: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("cannot read labels file '{}': {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{}:{line}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, message: String },
    #[error("'{}': no labels in it (every line is blank or a # comment); add one label a line, e.g. 'a cat on the sofa'", path.display())]
    Empty { path: PathBuf },
    #[error("'{}' is not a labels.emb file: {message}", path.display())]
    BadEmbeddings { path: PathBuf, message: String },
    #[error("'{}' holds {found}-dimensional embeddings but the model's are {expected}-dimensional; it was made for another model", path.display())]
    Dimension { path: PathBuf, found: usize, expected: usize },
    #[error(
        "{}:{line}: label '{label}' has no precomputed embedding in '{}'{why}; regenerate it with: tools/model/export_clip.py ... --labels {}",
        file.display(), embeddings.display(), file.display()
    )]
    NotEmbedded { file: PathBuf, line: usize, label: String, embeddings: PathBuf, why: String },
    #[error(transparent)]
    Encode(#[from] crate::encode::EncodeError),
}

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
pub fn parse_labels(path: &Path, text: &str) -> Result<Vec<Label>, LabelsError> {
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

/// Reads and parses a labels file.
pub fn read_labels(path: &Path) -> Result<Vec<Label>, LabelsError> {
    let bytes = fs::read(path).map_err(|error| LabelsError::Read { path: path.to_path_buf(), error })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..bad].iter().filter(|&&b| b == b'\n').count() + 1;
        LabelsError::Syntax {
            path: path.to_path_buf(),
            line,
            message: format!("byte {bad} (0x{:02x}) is not UTF-8; save the file as UTF-8 text", e.as_bytes()[bad]),
        }
    })?;
    parse_labels(path, &text)
}

/// One vector of a `labels.emb` file with what produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedLabel {
    pub name: String,
    pub prompts: Vec<String>,
    /// L2-normalized.
    pub vector: Vec<f32>,
}

/// The content of a `labels.emb` file.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEmbeddings {
    pub dim: usize,
    /// sha256 of the text encoder that produced the vectors.
    pub text_encoder_sha256: [u8; 32],
    pub labels: Vec<EmbeddedLabel>,
}

impl LabelEmbeddings {
    pub fn read(path: &Path) -> Result<LabelEmbeddings, LabelsError> {
        let bytes = fs::read(path).map_err(|error| LabelsError::Read { path: path.to_path_buf(), error })?;
        Self::from_bytes(&bytes).map_err(|message| LabelsError::BadEmbeddings { path: path.to_path_buf(), message })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<LabelEmbeddings, String> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8)? != EMB_MAGIC {
            return Err("it does not start with 'ECLIPEMB'".into());
        }
        let version = r.u32()?;
        if version != EMB_VERSION {
            return Err(format!("version {version} is not supported: this edgeclip reads version {EMB_VERSION}"));
        }
        let dim = r.u32()? as usize;
        let count = r.u32()? as usize;
        if dim == 0 || dim > 8192 {
            return Err(format!("dimension {dim} is out of range 1 to 8192"));
        }
        let mut text_encoder_sha256 = [0u8; 32];
        text_encoder_sha256.copy_from_slice(r.take(32)?);
        // Every record holds at least its vector; bound `count` by the file
        // size before reserving memory for it.
        if count > bytes.len() / (dim * 4) {
            return Err(format!("it claims {count} labels but is only {} bytes long", bytes.len()));
        }
        let mut labels = Vec::with_capacity(count);
        for ix in 0..count {
            let name = r.string().map_err(|e| format!("label #{ix}: {e}"))?;
            let prompt_count = r.u32()? as usize;
            if prompt_count > 1024 {
                return Err(format!("label '{name}' claims {prompt_count} prompts"));
            }
            let prompts = (0..prompt_count).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
            let raw = r.take(dim * 4).map_err(|e| format!("label '{name}': {e}"))?;
            let vector: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            if vector.iter().any(|v| !v.is_finite()) {
                return Err(format!("label '{name}' has a non-finite value in its vector"));
            }
            labels.push(EmbeddedLabel { name, prompts, vector });
        }
        if r.pos != bytes.len() {
            return Err(format!("{} bytes of trailing data after the last label", bytes.len() - r.pos));
        }
        Ok(LabelEmbeddings { dim, text_encoder_sha256, labels })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(EMB_MAGIC);
        out.extend_from_slice(&EMB_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.labels.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.text_encoder_sha256);
        let put_str = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        for l in &self.labels {
            put_str(&mut out, &l.name);
            out.extend_from_slice(&(l.prompts.len() as u32).to_le_bytes());
            for p in &l.prompts {
                put_str(&mut out, p);
            }
            for v in &l.vector {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Checks the vectors' width against the model's.
    pub fn check_dim(&self, path: &Path, expected: usize) -> Result<(), LabelsError> {
        if self.dim != expected {
            return Err(LabelsError::Dimension { path: path.to_path_buf(), found: self.dim, expected });
        }
        Ok(())
    }

    /// Picks, for every label of a labels file, the vector that was made from
    /// exactly its prompts. A label that is missing or whose prompts changed is
    /// an error naming its line.
    pub fn select(
        &self,
        emb_path: &Path,
        labels_path: &Path,
        labels: &[Label],
    ) -> Result<Vec<EmbeddedLabel>, LabelsError> {
        labels
            .iter()
            .map(|label| {
                self.find(label).cloned().ok_or_else(|| LabelsError::NotEmbedded {
                    file: labels_path.to_path_buf(),
                    line: label.line,
                    label: label.name.clone(),
                    embeddings: emb_path.to_path_buf(),
                    why: if self.labels.iter().any(|e| e.name == label.name) {
                        " for its current prompts".into()
                    } else {
                        String::new()
                    },
                })
            })
            .collect()
    }

    /// The vector made from exactly this label's name and prompts, if any.
    pub fn find(&self, label: &Label) -> Option<&EmbeddedLabel> {
        self.labels.iter().find(|e| e.name == label.name && e.prompts == label.prompts)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("truncated: needed {n} bytes at offset {} of {}", self.pos, self.bytes.len()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        if len > EMB_MAX_STRING {
            return Err(format!("string of {len} bytes at offset {} is longer than {EMB_MAX_STRING}", self.pos));
        }
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("string at offset {} is not UTF-8", self.pos - len))
    }
}
