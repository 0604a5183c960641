//! Still images read whole from a file (PNG or JPEG, the format guessed from
//! the bytes) and decoded to RGB8: what `classify` and `eval` read, and the
//! tests' reference images.

use std::path::{Path, PathBuf};

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
    #[error("cannot decode image '{}' (accepted: PNG, JPEG)", path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

/// Loads an image file as RGB8: its width, height and pixels, row by row.
pub fn read_rgb(path: &Path) -> Result<(u32, u32, Vec<u8>), StillImageError> {
    let img = image::ImageReader::open(path)
        .map_err(|source| StillImageError::Open { path: path.to_path_buf(), source })?
        .with_guessed_format()
        .map_err(|source| StillImageError::Read { path: path.to_path_buf(), source })?
        .decode()
        .map_err(|source| StillImageError::Decode { path: path.to_path_buf(), source })?
        .into_rgb8();
    let (w, h) = img.dimensions();
    Ok((w, h, img.into_raw()))
}
