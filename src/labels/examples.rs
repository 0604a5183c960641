//! Example images as a label's prompts: `my car: image:examples/my-car/`.
//!
//! A prompt that starts with `image:` or `frame:` names an image file
//! (`.jpg`, `.jpeg` or `.png`) or a folder of them, relative to the labels
//! file's folder. Each image is embedded with the bundle's image encoder,
//! after the same preprocessing as a camera frame, and goes into the label's
//! ensemble beside its text prompts: the label's vector is the normalized
//! mean of every prompt's and every image's normalized embedding.
//!
//! - `image:` is a picture of the subject, embedded whole: a photo, or a
//!   zone's crop that `add-example` saved.
//! - `frame:` is a whole camera frame (a snapshot): for a zone's labels the
//!   zone's rectangle is cut out of it first, as the daemon cuts it out of
//!   live frames; for the whole frame it is the same as `image:`.
//!
//! Before anything is looked up or embedded, [`expand`] replaces each such
//! prompt by one prompt per image file that records the file's sha256 (and
//! for `frame:` the zone it was cut to): `image:examples/my-car/1.jpg#3f2a…`.
//! Those are the prompts a `labels.emb` and the cache record, so an image
//! that was added, removed or changed makes a label's embedding stale
//! exactly as an edited text prompt does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Label, LabelsError};
use crate::capture::still::decode_rgb;
use crate::model::bundle::{hex, Bundle};
use crate::model::encode::{EncoderSession, ImageEncoder};
use crate::model::preprocess::{Preprocessor, RgbFrame};
use crate::pipeline::convert::RgbImage;
use crate::pipeline::zone::{crop, Rect};

/// A picture of the subject, embedded whole.
pub const IMAGE_PREFIX: &str = "image:";
/// A whole camera frame, cut to the zone the labels are for.
pub const FRAME_PREFIX: &str = "frame:";

/// The most example images one label takes. Each costs one image-encoder
/// run when the label set is embedded (about a second with a ViT-B/32 on a
/// Pi 4, once: the result is cached), and a few dozen views of a car or a
/// parcel already cover its looks; it also bounds what `add-example` may
/// write into a folder.
pub const MAX_EXAMPLES_PER_LABEL: usize = 64;

/// The largest example image file read: a 4096-pixel JPEG at high quality
/// fits; the decoders cap the pixels as well.
pub const MAX_EXAMPLE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The file names an example folder's images may have, compared without case.
pub const EXAMPLE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Whether a prompt as written in a labels file names example images, and
/// which kind (`true`: `frame:`) with the path after the prefix.
pub fn example_prompt(prompt: &str) -> Option<(bool, &str)> {
    if let Some(path) = prompt.strip_prefix(IMAGE_PREFIX) {
        Some((false, path.trim()))
    } else {
        prompt.strip_prefix(FRAME_PREFIX).map(|path| (true, path.trim()))
    }
}

/// Whether a label names any example image.
pub fn has_examples(label: &Label) -> bool {
    label.prompts.iter().any(|p| example_prompt(p).is_some())
}

/// One image of an expanded prompt: `image:PATH#HASH` or
/// `frame:PATH#HASH@x0,y0,x1,y1`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleImage {
    /// `frame:` (cut to `crop`) rather than `image:`.
    pub frame: bool,
    /// The file as the labels file's folder sees it.
    pub path: String,
    /// The first 16 hex digits of the file's sha256.
    pub hash: String,
    /// The zone a `frame:` image is cut to; `None`: the whole image.
    pub crop: Option<Rect>,
}

impl ExampleImage {
    /// The prompt that stands for this image in a `labels.emb`.
    pub fn prompt(&self) -> String {
        let prefix = if self.frame { FRAME_PREFIX } else { IMAGE_PREFIX };
        match &self.crop {
            Some(r) => format!("{prefix}{}#{}@{},{},{},{}", self.path, self.hash, r.x0, r.y0, r.x1, r.y1),
            None => format!("{prefix}{}#{}", self.path, self.hash),
        }
    }

    /// Reads back [`ExampleImage::prompt`]; `None` for a text prompt.
    pub fn parse(prompt: &str) -> Option<ExampleImage> {
        let (frame, rest) = example_prompt(prompt)?;
        let (path, tail) = rest.rsplit_once('#')?;
        let (hash, crop) = match tail.split_once('@') {
            Some((hash, rect)) => {
                let v: Vec<f32> = rect.split(',').map(str::parse).collect::<Result<_, _>>().ok()?;
                let [x0, y0, x1, y1] = v[..] else { return None };
                (hash, Some(Rect { x0, y0, x1, y1 }))
            }
            None => (tail, None),
        };
        if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(ExampleImage { frame, path: path.to_string(), hash: hash.to_string(), crop })
    }
}

/// Where a labels file's relative example paths start: its folder.
pub fn base_dir(labels_file: &Path) -> PathBuf {
    match labels_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The image files a written path stands for: the file itself, or a
/// folder's [`EXAMPLE_EXTENSIONS`] files sorted by name (not its subfolders),
/// each as the labels file would write it.
pub fn list_images(base: &Path, written: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let full = base.join(written);
    let meta = std::fs::metadata(&full).map_err(|e| format!("cannot read '{}': {e}", full.display()))?;
    if !meta.is_dir() {
        return Ok(vec![(written.to_string(), full)]);
    }
    let entries = std::fs::read_dir(&full).map_err(|e| format!("cannot list folder '{}': {e}", full.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && is_image_name(n))
        .collect();
    names.sort();
    let folder = written.trim_end_matches('/');
    Ok(names.into_iter().map(|n| (format!("{folder}/{n}"), full.join(&n))).collect())
}

fn is_image_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| EXAMPLE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)))
}

/// Replaces every example prompt of `labels` by one prompt per image file
/// ([`ExampleImage::prompt`]), reading each file to hash it. `labels_file`
/// is where the labels came from (paths are relative to its folder, and
/// messages name its lines); `zone` is the rectangle `frame:` images are cut
/// to (`None`: the whole frame). Returns how many images there are.
pub fn expand(labels: &mut [Label], labels_file: &Path, zone: Option<Rect>) -> Result<usize, LabelsError> {
    let base = base_dir(labels_file);
    let crop = zone.filter(|r| !r.is_whole());
    let mut count = 0;
    for label in labels.iter_mut() {
        if !has_examples(label) {
            continue;
        }
        let error =
            |message: String| LabelsError::Syntax { path: labels_file.to_path_buf(), line: label.line, message };
        let mut prompts = Vec::with_capacity(label.prompts.len());
        let mut images = 0;
        for prompt in &label.prompts {
            let Some((frame, written)) = example_prompt(prompt) else {
                prompts.push(prompt.clone());
                continue;
            };
            let files = list_images(&base, written).map_err(|e| error(format!("label '{}': {e}", label.name)))?;
            images += files.len();
            if images > MAX_EXAMPLES_PER_LABEL {
                return Err(error(format!(
                    "label '{}' has more than {MAX_EXAMPLES_PER_LABEL} example images; keep the most telling ones",
                    label.name
                )));
            }
            for (path, full) in files {
                let bytes = crate::util::file::read_small(&full, MAX_EXAMPLE_FILE_BYTES).map_err(|e| {
                    error(format!("label '{}': cannot read example '{}': {e}", label.name, full.display()))
                })?;
                let hash = hex(&Sha256::digest(&bytes)[..8]);
                let image = ExampleImage { frame, path, hash, crop: if frame { crop } else { None } };
                prompts.push(image.prompt());
            }
        }
        if prompts.is_empty() {
            return Err(error(format!(
                "label '{}' has no example image yet and no text prompt: put an image in its example folder, or give it a text prompt too ('{}: a ...; {}')",
                label.name,
                label.name,
                label.prompts.join("; ")
            )));
        }
        label.prompts = prompts;
        count += images;
    }
    Ok(count)
}

/// Embeds example images with the bundle's image encoder, after the same
/// preprocessing as a camera's frames.
pub struct ExampleEmbedder {
    preprocessor: Preprocessor,
    session: EncoderSession,
    base: PathBuf,
    rgb: RgbImage,
    cropped: RgbImage,
}

impl ExampleEmbedder {
    /// `encoder`: the bundle's image encoder; `labels_file`: the labels file
    /// the expanded prompts came from.
    pub fn new(
        bundle: &Bundle,
        encoder: &Arc<ImageEncoder>,
        labels_file: &Path,
    ) -> Result<ExampleEmbedder, LabelsError> {
        Ok(ExampleEmbedder {
            preprocessor: Preprocessor::new(&bundle.image),
            session: encoder.session()?,
            base: base_dir(labels_file),
            rgb: RgbImage::new(),
            cropped: RgbImage::new(),
        })
    }

    /// The L2-normalized embedding of one expanded example prompt's image;
    /// the file must still be what [`expand`] hashed.
    pub fn embed(&mut self, image: &ExampleImage) -> Result<Vec<f32>, String> {
        let full = self.base.join(&image.path);
        let bytes = crate::util::file::read_small(&full, MAX_EXAMPLE_FILE_BYTES)
            .map_err(|e| format!("cannot read example '{}': {e}", full.display()))?;
        if hex(&Sha256::digest(&bytes)[..8]) != image.hash {
            return Err(format!(
                "example '{}' changed while the labels were embedded; they are read again",
                full.display()
            ));
        }
        self.embed_bytes(&bytes, image.crop.as_ref(), &full)
    }

    /// The L2-normalized embedding of an image file (PNG or JPEG) as a
    /// whole: `edgeclip search --image`.
    pub fn embed_file(&mut self, path: &Path) -> Result<Vec<f32>, String> {
        let bytes = crate::util::file::read_small(path, MAX_EXAMPLE_FILE_BYTES)
            .map_err(|e| format!("cannot read image '{}': {e}", path.display()))?;
        self.embed_bytes(&bytes, None, path)
    }

    /// Decodes, crops (`crop`), preprocesses and encodes; `full` names the
    /// image in errors.
    fn embed_bytes(&mut self, bytes: &[u8], crop_to: Option<&Rect>, full: &Path) -> Result<Vec<f32>, String> {
        let (width, height, data) =
            decode_rgb(bytes).map_err(|e| format!("cannot decode example '{}': {e}", full.display()))?;
        self.rgb = RgbImage { width, height, data };
        let source = match crop_to {
            Some(rect) => {
                crop(&self.rgb, rect, &mut self.cropped);
                &self.cropped
            }
            None => &self.rgb,
        };
        let frame = RgbFrame::new(source.width, source.height, &source.data)
            .map_err(|e| format!("example '{}': {e}", full.display()))?;
        let preprocessor = &mut self.preprocessor;
        self.session
            .fill_input(|input| preprocessor.run(frame, input))
            .map_err(|e| format!("example '{}': {e}", full.display()))?;
        let raw = self.session.run().map_err(|e| format!("example '{}': {e}", full.display()))?;
        Ok(crate::model::encode::text::normalized(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expanded_prompt_reads_back_as_written() {
        let plain =
            ExampleImage { frame: false, path: "ex#1/a.jpg".into(), hash: "0123456789abcdef".into(), crop: None };
        assert_eq!(plain.prompt(), "image:ex#1/a.jpg#0123456789abcdef");
        assert_eq!(ExampleImage::parse(&plain.prompt()), Some(plain));
        let cut = ExampleImage {
            frame: true,
            path: "/var/lib/edgeclip/porch/b.png".into(),
            hash: "fedcba9876543210".into(),
            crop: Some(Rect { x0: 0.5, y0: 0.25, x1: 1.0, y1: 0.75 }),
        };
        assert_eq!(cut.prompt(), "frame:/var/lib/edgeclip/porch/b.png#fedcba9876543210@0.5,0.25,1,0.75");
        assert_eq!(ExampleImage::parse(&cut.prompt()), Some(cut));
        // Text, and written (not expanded) example prompts, are not images.
        assert_eq!(ExampleImage::parse("a red car"), None);
        assert_eq!(ExampleImage::parse("image:examples/car/"), None);
    }

    fn label(line: &str) -> Label {
        crate::labels::file::parse(Path::new("labels.txt"), line).unwrap().remove(0)
    }

    #[test]
    fn a_folder_becomes_its_images_by_name_with_their_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("examples/car");
        std::fs::create_dir_all(folder.join("old")).unwrap();
        for (name, bytes) in [("b.JPG", &b"two"[..]), ("a.png", b"one"), ("notes.txt", b"x"), (".hidden.jpg", b"x")] {
            std::fs::write(folder.join(name), bytes).unwrap();
        }
        std::fs::write(folder.join("old/c.jpg"), b"three").unwrap();
        let labels_file = dir.path().join("labels.txt");
        let mut labels = vec![label("car: a car; image:examples/car/"), label("van")];
        assert_eq!(expand(&mut labels, &labels_file, None).unwrap(), 2);
        let one = hex(&Sha256::digest(b"one")[..8]);
        let two = hex(&Sha256::digest(b"two")[..8]);
        assert_eq!(
            labels[0].prompts,
            ["a car".to_string(), format!("image:examples/car/a.png#{one}"), format!("image:examples/car/b.JPG#{two}")]
        );
        assert_eq!(labels[1].prompts, ["van"]);

        // frame: is cut to the zone, image: never.
        let zone = Rect { x0: 0.5, y0: 0.0, x1: 1.0, y1: 1.0 };
        let mut labels = vec![label("car: frame:examples/car/a.png; image:examples/car/b.JPG")];
        expand(&mut labels, &labels_file, Some(zone)).unwrap();
        assert_eq!(
            labels[0].prompts,
            [format!("frame:examples/car/a.png#{one}@0.5,0,1,1"), format!("image:examples/car/b.JPG#{two}")]
        );
    }

    #[test]
    fn missing_empty_and_overfull_example_folders_are_errors_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let labels_file = dir.path().join("labels.txt");
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let e = expand(&mut [label("car: image:nowhere/")], &labels_file, None).unwrap_err().to_string();
        assert!(e.contains("labels.txt:1: label 'car': cannot read '") && e.contains("nowhere"), "{e}");
        let e = expand(&mut [label("car: image:empty/")], &labels_file, None).unwrap_err().to_string();
        assert!(e.contains("label 'car' has no example image yet and no text prompt"), "{e}");
        // A text prompt beside an empty folder is a label all the same.
        let mut labels = [label("car: a car; image:empty/")];
        assert_eq!(expand(&mut labels, &labels_file, None).unwrap(), 0);
        assert_eq!(labels[0].prompts, ["a car"]);

        let full = dir.path().join("full");
        std::fs::create_dir_all(&full).unwrap();
        for i in 0..=MAX_EXAMPLES_PER_LABEL {
            std::fs::write(full.join(format!("{i:03}.jpg")), [i as u8]).unwrap();
        }
        let e = expand(&mut [label("car: image:full/")], &labels_file, None).unwrap_err().to_string();
        assert!(e.contains("label 'car' has more than 64 example images"), "{e}");
    }
}
