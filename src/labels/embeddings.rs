//! The `labels.emb` file: label vectors with the exact prompts that produced
//! each and the sha256 of the text encoder that embedded them, so that a
//! stale file is detected rather than silently matched.

use std::fs;
use std::path::Path;

use super::examples::{ExampleEmbedder, ExampleImage};
use super::{Label, LabelsError};
use crate::model::encode::text::{normalized, TextEncoder};

/// Magic bytes at the start of a `labels.emb` file.
pub const EMB_MAGIC: &[u8; 8] = b"ECLIPEMB";
/// The only `labels.emb` version this build reads and writes.
pub const EMB_VERSION: u32 = 1;
/// Largest string (label name or prompt) accepted in a `labels.emb`; a
/// prompt is at most 77 CLIP tokens, so 4 KiB only guards against a corrupt
/// length field.
pub const EMB_MAX_STRING: usize = 4096;
/// The most prompts one label may have: a prompt ensemble such as CLIP's 80
/// ImageNet templates fits many times over, and a file that claims more is
/// damaged. The labels file parser refuses more, so that every label set
/// that loads can be cached and read back.
pub const EMB_MAX_PROMPTS: usize = 1024;

/// One vector of a `labels.emb` file with what produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedLabel {
    pub name: String,
    pub prompts: Vec<String>,
    /// L2-normalized.
    pub vector: Vec<f32>,
}

impl EmbeddedLabel {
    /// A label's vector: the normalized mean of its prompts' normalized
    /// embeddings (a prompt ensemble), text prompts by the text encoder and
    /// expanded example images ([`super::examples::expand`]) by `images`.
    /// `on_truncated` hears of every text prompt cut to the encoder's
    /// context; `labels_path` is named in errors.
    pub fn compute(
        text: Option<&TextEncoder>,
        mut images: Option<&mut ExampleEmbedder>,
        label: &Label,
        labels_path: &Path,
        on_truncated: &mut dyn FnMut(&Label, &str),
    ) -> Result<EmbeddedLabel, LabelsError> {
        let error =
            |message: String| LabelsError::Syntax { path: labels_path.to_path_buf(), line: label.line, message };
        let mut sum: Vec<f32> = Vec::new();
        for prompt in &label.prompts {
            let vector = match (ExampleImage::parse(prompt), &mut images, text) {
                (Some(image), Some(images), _) => {
                    images.embed(&image).map_err(|e| error(format!("label '{}': {e}", label.name)))?
                }
                (Some(_), None, _) => {
                    return Err(error(format!("label '{}': example images need the image encoder", label.name)))
                }
                (None, _, Some(encoder)) => {
                    let e = encoder.embed_prompt(prompt)?;
                    if e.truncated {
                        on_truncated(label, prompt);
                    }
                    e.vector
                }
                (None, _, None) => {
                    return Err(error(format!(
                        "label '{}': the prompt {prompt:?} needs a text encoder, and the bundle has none",
                        label.name
                    )))
                }
            };
            if sum.is_empty() {
                sum = vec![0.0; vector.len()];
            }
            sum.iter_mut().zip(&vector).for_each(|(s, v)| *s += v);
        }
        Ok(EmbeddedLabel { name: label.name.clone(), prompts: label.prompts.clone(), vector: normalized(&sum) })
    }
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
            if prompt_count > EMB_MAX_PROMPTS {
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
