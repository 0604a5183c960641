//! The model bundle: a directory holding the encoders and a `model.toml`
//! manifest that states every number preprocessing and matching need.
//!
//! Loading happens in two steps, as for every user-written file here: the
//! TOML is parsed into raw serde structs that reject unknown keys, then a
//! validated [`Bundle`] is built from them. Each error names the manifest,
//! the key and what would be accepted, because the person reading it is at
//! the board with a text editor. The format is documented in
//! `models/FORMAT.md`; sha256 sums of the encoder files are checked here so
//! that a truncated copy to an SD card is caught before tract sees it.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::util::file::regular_file;

/// The only manifest format version this build understands.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the manifest inside a bundle directory.
pub const MANIFEST_NAME: &str = "model.toml";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("no model bundle at '{}': {error}", path.display())]
    NoManifest { path: PathBuf, error: std::io::Error },
    #[error("'{}': {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("'{}': key '{key}': {message}", path.display())]
    Invalid { path: PathBuf, key: String, message: String },
    #[error("'{}' (key '{key}' in '{}'): file is missing or unreadable: {error}", file.display(), manifest.display())]
    MissingFile { manifest: PathBuf, key: String, file: PathBuf, error: std::io::Error },
    #[error(
        "'{}': sha256 is {actual} but '{}' (key '{key}') says {expected}; the file is corrupt or belongs to another bundle, copy it again or re-export the bundle",
        file.display(),
        manifest.display()
    )]
    Checksum { manifest: PathBuf, key: String, file: PathBuf, expected: String, actual: String },
}

/// Numeric precision of an encoder, as written in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Plain f32 weights and activations.
    Fp32,
    /// Dynamic int8 quantization: `MatMulInteger` with run-time activation scales.
    Int8Dynamic,
    /// Static QOperator quantization limited to `QLinearMatMul`/`QLinearConv`.
    Int8QOperator,
}

impl Precision {
    pub const ACCEPTED: &'static str = "'fp32', 'int8-dynamic' or 'int8-qoperator'";

    pub fn parse(s: &str) -> Option<Precision> {
        match s {
            "fp32" => Some(Precision::Fp32),
            "int8-dynamic" => Some(Precision::Int8Dynamic),
            "int8-qoperator" => Some(Precision::Int8QOperator),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8Dynamic => "int8-dynamic",
            Precision::Int8QOperator => "int8-qoperator",
        }
    }

    pub fn is_int8(self) -> bool {
        !matches!(self, Precision::Fp32)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resampling filter for the shortest-edge resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeFilter {
    /// Pillow's bicubic (Keys a = -0.5, antialiased when shrinking): what
    /// OpenAI CLIP, open_clip and transformers use.
    Bicubic,
    /// Pillow's bilinear (triangle filter, antialiased when shrinking).
    Bilinear,
}

impl ResizeFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            ResizeFilter::Bicubic => "bicubic",
            ResizeFilter::Bilinear => "bilinear",
        }
    }
}

/// An encoder file with its graph names and checksum.
#[derive(Debug, Clone)]
pub struct EncoderSpec {
    pub path: PathBuf,
    pub input: String,
    pub output: String,
    pub sha256: String,
    pub precision: Precision,
}

/// How frames become the image encoder's input tensor.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub encoder: EncoderSpec,
    /// Side of the square input tensor after the crop.
    pub size: u32,
    /// The shortest edge is resized to this before the center crop.
    pub resize_shortest_edge: u32,
    pub resize_filter: ResizeFilter,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Clone)]
pub struct TextSpec {
    pub encoder: EncoderSpec,
    pub tokenizer: String,
    pub context_length: u32,
}

/// A validated model bundle. Paths are absolute or relative to the working
/// directory, already joined with the bundle directory.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub name: String,
    pub embedding_dim: usize,
    pub logit_scale: f32,
    pub source: String,
    pub licence: String,
    pub image: ImageSpec,
    pub text: Option<TextSpec>,
    pub labels_file: PathBuf,
    pub labels_embeddings: PathBuf,
    /// Prompt templates ("a photo of a {}.") for labels written without
    /// prompts of their own; empty: such a label's name is its prompt.
    pub label_templates: Vec<String>,
}

// ---- raw manifest, exactly as written -------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    format: u32,
    name: String,
    embedding_dim: i64,
    logit_scale: f64,
    source: String,
    licence: String,
    image: RawImage,
    text: Option<RawText>,
    labels: RawLabels,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    file: String,
    input: String,
    output: String,
    sha256: String,
    precision: String,
    size: i64,
    resize_shortest_edge: i64,
    resize_filter: String,
    crop: String,
    mean: Vec<f64>,
    std: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    file: String,
    input: String,
    output: String,
    sha256: String,
    precision: String,
    tokenizer: String,
    context_length: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabels {
    file: String,
    embeddings: String,
    #[serde(default)]
    templates: Vec<String>,
}

// ---- validation ------------------------------------------------------------

/// Largest embedding width accepted; real CLIPs use 512–1024, so anything far
/// beyond is a typo rather than a model.
const MAX_EMBEDDING_DIM: i64 = 8192;
/// Largest input side accepted; CLIP variants use 224–448.
const MAX_INPUT_SIZE: i64 = 2048;

struct Validator<'a> {
    manifest: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> BundleError {
        BundleError::Invalid { path: self.manifest.to_path_buf(), key: key.to_string(), message: message.into() }
    }

    fn non_empty(&self, key: &str, value: String) -> Result<String, BundleError> {
        if value.trim().is_empty() {
            return Err(self.invalid(key, "must not be empty"));
        }
        Ok(value)
    }

    fn sha256(&self, key: &str, value: &str) -> Result<String, BundleError> {
        let ok = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(self.invalid(key, format!("'{value}' is not a sha256: expected 64 hexadecimal digits")));
        }
        Ok(value.to_ascii_lowercase())
    }

    fn precision(&self, key: &str, value: &str) -> Result<Precision, BundleError> {
        Precision::parse(value)
            .ok_or_else(|| self.invalid(key, format!("unknown precision '{value}': expected {}", Precision::ACCEPTED)))
    }

    fn positive(&self, key: &str, value: i64, max: i64) -> Result<u32, BundleError> {
        if value < 1 || value > max {
            return Err(self.invalid(key, format!("{value} is out of range: expected 1 to {max}")));
        }
        Ok(value as u32)
    }

    fn triple(&self, key: &str, values: &[f64], positive: bool) -> Result<[f32; 3], BundleError> {
        if values.len() != 3 {
            return Err(self.invalid(key, format!("has {} values: expected 3, one per RGB channel", values.len())));
        }
        for v in values {
            if !v.is_finite() || (positive && *v <= 0.0) {
                let what = if positive { "a positive number" } else { "a finite number" };
                return Err(self.invalid(key, format!("{v} is not {what}")));
            }
        }
        Ok([values[0] as f32, values[1] as f32, values[2] as f32])
    }

    fn templates(&self, key: &str, values: Vec<String>) -> Result<Vec<String>, BundleError> {
        for t in &values {
            if t.matches("{}").count() != 1 {
                return Err(self.invalid(
                    key,
                    format!(
                        "template '{t}' must hold '{{}}' exactly once, where the label goes, e.g. 'a photo of a {{}}.'"
                    ),
                ));
            }
        }
        Ok(values)
    }

    /// A file named by the manifest must stay inside the bundle directory, so
    /// that copying the directory copies the model.
    fn file(&self, dir: &Path, key: &str, value: &str) -> Result<PathBuf, BundleError> {
        let rel = Path::new(value);
        let plain = !value.is_empty() && rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(self.invalid(key, format!("'{value}' must be a file name inside the bundle directory")));
        }
        Ok(dir.join(rel))
    }
}

impl Bundle {
    /// Reads and validates `DIR/model.toml`, and checks that every file it
    /// names exists and every encoder matches its sha256. The encoders
    /// themselves are loaded by [`crate::model::encode`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Bundle, BundleError> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = dir.join(MANIFEST_NAME);
        let text = regular_file(&manifest)
            .and_then(|()| fs::read_to_string(&manifest))
            .map_err(|error| BundleError::NoManifest { path: manifest.clone(), error })?;
        let bundle = Bundle::from_manifest_str(&dir, &manifest, &text)?;
        bundle.check_files()?;
        Ok(bundle)
    }

    /// Parses and validates a manifest without touching the files it names.
    pub fn from_manifest_str(dir: &Path, manifest: &Path, text: &str) -> Result<Bundle, BundleError> {
        let raw: RawManifest = toml::from_str(text)
            .map_err(|e| BundleError::Syntax { path: manifest.to_path_buf(), message: toml_error_message(text, &e) })?;
        let v = Validator { manifest };

        if raw.format != FORMAT_VERSION {
            return Err(v.invalid(
                "format",
                format!("bundle format {} is not supported: this edgeclip reads format {FORMAT_VERSION}", raw.format),
            ));
        }
        let embedding_dim = v.positive("embedding_dim", raw.embedding_dim, MAX_EMBEDDING_DIM)? as usize;
        // CLIP clamps its learned scale to 100; allow a margin for other
        // models but reject zero, negatives and the raw (log) value by mistake.
        if !(raw.logit_scale.is_finite() && raw.logit_scale >= 1.0 && raw.logit_scale <= 1000.0) {
            return Err(v.invalid(
                "logit_scale",
                format!(
                    "{} is out of range: expected the exponentiated scale, between 1 and 1000 (CLIP uses 100)",
                    raw.logit_scale
                ),
            ));
        }

        let img = raw.image;
        let image_encoder = EncoderSpec {
            path: v.file(dir, "image.file", &img.file)?,
            input: v.non_empty("image.input", img.input)?,
            output: v.non_empty("image.output", img.output)?,
            sha256: v.sha256("image.sha256", &img.sha256)?,
            precision: v.precision("image.precision", &img.precision)?,
        };
        let size = v.positive("image.size", img.size, MAX_INPUT_SIZE)?;
        let resize_shortest_edge =
            v.positive("image.resize_shortest_edge", img.resize_shortest_edge, MAX_INPUT_SIZE)?;
        if resize_shortest_edge < size {
            return Err(v.invalid(
                "image.resize_shortest_edge",
                format!("{resize_shortest_edge} is smaller than image.size {size}: the center crop would not fit"),
            ));
        }
        let resize_filter = match img.resize_filter.as_str() {
            "bicubic" => ResizeFilter::Bicubic,
            "bilinear" => ResizeFilter::Bilinear,
            other => {
                return Err(v.invalid(
                    "image.resize_filter",
                    format!("unknown filter '{other}': expected 'bicubic' or 'bilinear'"),
                ))
            }
        };
        if img.crop != "center" {
            return Err(v.invalid("image.crop", format!("unknown crop '{}': expected 'center'", img.crop)));
        }
        let image = ImageSpec {
            encoder: image_encoder,
            size,
            resize_shortest_edge,
            resize_filter,
            mean: v.triple("image.mean", &img.mean, false)?,
            std: v.triple("image.std", &img.std, true)?,
        };

        let text = match raw.text {
            None => None,
            Some(t) => {
                if t.tokenizer != "clip-bpe" {
                    return Err(v.invalid(
                        "text.tokenizer",
                        format!("unknown tokenizer '{}': expected 'clip-bpe'", t.tokenizer),
                    ));
                }
                Some(TextSpec {
                    encoder: EncoderSpec {
                        path: v.file(dir, "text.file", &t.file)?,
                        input: v.non_empty("text.input", t.input)?,
                        output: v.non_empty("text.output", t.output)?,
                        sha256: v.sha256("text.sha256", &t.sha256)?,
                        precision: v.precision("text.precision", &t.precision)?,
                    },
                    tokenizer: t.tokenizer,
                    // OpenAI CLIP's positional table has 77 rows; longer
                    // contexts exist in some open_clip models but not past 512.
                    context_length: v.positive("text.context_length", t.context_length, 512)?,
                })
            }
        };

        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest: manifest.to_path_buf(),
            name: v.non_empty("name", raw.name)?,
            embedding_dim,
            logit_scale: raw.logit_scale as f32,
            source: raw.source,
            licence: raw.licence,
            image,
            text,
            labels_file: v.file(dir, "labels.file", &raw.labels.file)?,
            labels_embeddings: v.file(dir, "labels.embeddings", &raw.labels.embeddings)?,
            label_templates: v.templates("labels.templates", raw.labels.templates)?,
        })
    }

    /// Every named file exists; every encoder matches its sha256.
    fn check_files(&self) -> Result<(), BundleError> {
        self.check_encoder("image.file", &self.image.encoder)?;
        if let Some(text) = &self.text {
            self.check_encoder("text.file", &text.encoder)?;
        }
        for (key, path) in [("labels.file", &self.labels_file), ("labels.embeddings", &self.labels_embeddings)] {
            regular_file(path).map_err(|error| BundleError::MissingFile {
                manifest: self.manifest.clone(),
                key: key.to_string(),
                file: path.clone(),
                error,
            })?;
        }
        Ok(())
    }

    fn check_encoder(&self, key: &str, enc: &EncoderSpec) -> Result<(), BundleError> {
        let actual = regular_file(&enc.path).and_then(|()| sha256_file(&enc.path)).map_err(|error| {
            BundleError::MissingFile {
                manifest: self.manifest.clone(),
                key: key.to_string(),
                file: enc.path.clone(),
                error,
            }
        })?;
        if actual != enc.sha256 {
            return Err(BundleError::Checksum {
                manifest: self.manifest.clone(),
                key: key.replace(".file", ".sha256"),
                file: enc.path.clone(),
                expected: enc.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// Lower-case hex sha256 of a file, read in blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    // 64 KiB blocks: large enough to stream a 350 MB encoder quickly, small
    // enough not to matter on a 512 MB board.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The 32 bytes of a 64-digit hex string (a sha256), or `None`.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Turns a toml/serde error into one line, "line L (in [table]): what",
/// speaking of keys rather than serde's "fields".
pub(crate) fn toml_error_message(text: &str, e: &toml::de::Error) -> String {
    let mut where_ = String::new();
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let line_no = text[..start].matches('\n').count() + 1;
        let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
        where_ =
            if line.starts_with('[') { format!("line {line_no} (in {line}): ") } else { format!("line {line_no}: ") };
    }
    format!("{where_}{}", toml_problem(e))
}

/// What a toml/serde error says, in one line and a user's words: keys
/// rather than serde's "fields", quotes rather than backticks. The first
/// line only: the rest is a source excerpt that does not fit a log line.
pub(crate) fn toml_problem(e: &toml::de::Error) -> String {
    let msg = e.message().lines().next().unwrap_or("").trim_end_matches('.');
    msg.replace("missing field", "missing key").replace("unknown field", "unknown key").replace('`', "'")
}
