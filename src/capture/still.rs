//! Still images read whole from a file (PNG or JPEG, the format guessed from
//! the bytes) and decoded to RGB8: what `classify` and `eval` read, the
//! folder source's PNG files, and the tests' reference images.
//!
//! A JPEG is decoded by the daemon's own decoder ([`JpegDecoder`]), so that
//! `classify` accepts exactly the files the daemon would (a JPEG cut short
//! is refused by both) and refuses an oversized one with the same words.
//! Other formats go through the `image` crate with the same cap on their
//! size, checked on the header before any pixel memory is taken.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::pipeline::jpeg::{JpegDecoder, MAX_JPEG_SIDE};

/// Why an image file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StillImageError {
    #[error("cannot open image '{}'", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read image '{}'", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode image '{}': {problem} (accepted: PNG or JPEG, at most {MAX_IMAGE_SIDE} pixels a side)", path.display())]
    Decode { path: PathBuf, problem: String },
}

/// The largest still image accepted, per side: the cap of the camera's
/// JPEG frames. An 11000×11000 PNG would take 360 MB as RGB.
pub const MAX_IMAGE_SIDE: u32 = MAX_JPEG_SIDE;

/// Loads an image file as RGB8: its width, height and pixels, row by row.
pub fn read_rgb(path: &Path) -> Result<(u32, u32, Vec<u8>), StillImageError> {
    let mut file =
        std::fs::File::open(path).map_err(|source| StillImageError::Open { path: path.to_path_buf(), source })?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|source| StillImageError::Read { path: path.to_path_buf(), source })?;
    decode_rgb(&bytes).map_err(|problem| StillImageError::Decode { path: path.to_path_buf(), problem })
}

/// Decodes a PNG or JPEG (or another format the `image` crate knows, guessed
/// from the bytes) to RGB8, refusing one larger than [`MAX_IMAGE_SIDE`].
pub fn decode_rgb(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut rgb = Vec::new();
        let (w, h) = JpegDecoder::new().decode(bytes, &mut rgb).map_err(|e| format!("the JPEG {e}"))?;
        return Ok((w, h, rgb));
    }
    let mut reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => "it is larger than the largest image accepted".to_string(),
        e => e.to_string(),
    })?;
    let img = img.into_rgb8();
    let (w, h) = img.dimensions();
    Ok((w, h, img.into_raw()))
}
