//! The `file` source: recorded footage replayed as if a camera sent it.
//!
//! Either an MJPEG stream file (JPEG frames back to back, like the demo clip
//! `models/tiny-shapes/demo.mjpeg` or `rpicam-vid --codec mjpeg -o
//! clip.mjpeg`) or a folder of images (`.jpg`, `.jpeg`, `.png`, replayed in
//! name order). Frames come at a set rate (or as fast as they are asked
//! for), optionally looping. The demo and the end-to-end tests use it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::{CaptureError, CaptureErrorKind, Frame, FrameSource, PixelFormat};
use crate::capture::mjpeg::{MjpegReadError, MjpegReader};

/// How to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOptions {
    pub path: PathBuf,
    /// Frames per second; `None` delivers each frame as soon as it is asked for.
    pub fps: Option<f64>,
    /// Start again at the first frame after the last.
    pub looping: bool,
}

enum Footage {
    Stream { reader: MjpegReader<File> },
    Folder { files: Vec<PathBuf>, next: usize, current: Image },
}

/// A folder's image: a JPEG's bytes, or a PNG decoded to RGB.
struct Image {
    format: PixelFormat,
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Default for Image {
    fn default() -> Self {
        Image { format: PixelFormat::Mjpeg, width: 0, height: 0, data: Vec::new() }
    }
}

pub struct FileSource {
    options: FileOptions,
    footage: Footage,
    pacer: Pacer,
    sequence: u64,
    /// Frames delivered in the current pass, to stop a loop over nothing.
    in_pass: u64,
}

/// The image files a folder source replays.
fn is_image(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png"))
}

impl FileSource {
    pub fn open(options: FileOptions) -> Result<FileSource, CaptureError> {
        let other = |message: String| CaptureError::new(CaptureErrorKind::Other, message);
        if let Some(fps) = options.fps {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(other(format!(
                    "frame rate '{fps}' for '{}' must be a positive number",
                    options.path.display()
                )));
            }
        }
        let path = &options.path;
        let meta = std::fs::metadata(path).map_err(|e| other(format!("cannot open '{}': {e}", path.display())))?;
        let footage = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| other(format!("cannot list '{}': {e}", path.display())))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(other(format!("'{}' holds no .jpg, .jpeg or .png images", path.display())));
            }
            Footage::Folder { files, next: 0, current: Image::default() }
        } else {
            Footage::Stream { reader: MjpegReader::new(open_file(path)?) }
        };
        let pacer = Pacer::new(options.fps);
        Ok(FileSource { options, footage, pacer, sequence: 0, in_pass: 0 })
    }

    /// Starts the next pass, or ends.
    fn rewind(&mut self) -> Result<(), CaptureError> {
        let path = self.options.path.display();
        if !self.options.looping {
            return Err(CaptureError::new(CaptureErrorKind::Ended, format!("end of '{path}'")));
        }
        if self.in_pass == 0 {
            return Err(CaptureError::new(
                CaptureErrorKind::Ended,
                format!("'{path}' holds no readable frame to loop over"),
            ));
        }
        self.in_pass = 0;
        match &mut self.footage {
            Footage::Stream { reader } => reader.restart(open_file(&self.options.path)?),
            Footage::Folder { next, .. } => *next = 0,
        }
        Ok(())
    }

    /// Moves to the next frame of this pass; `false` at its end.
    fn advance(&mut self) -> Result<bool, CaptureError> {
        let corrupt = |message: String| CaptureError::new(CaptureErrorKind::Corrupt, message);
        let path = &self.options.path;
        match &mut self.footage {
            Footage::Stream { reader } => match reader.advance() {
                Ok(more) => Ok(more),
                Err(MjpegReadError::Frame(e)) => Err(corrupt(format!("'{}': {e}", path.display()))),
                Err(MjpegReadError::Io(e)) => {
                    Err(CaptureError::new(CaptureErrorKind::Other, format!("'{}': {e}", path.display())))
                }
            },
            Footage::Folder { files, next, current } => {
                let Some(file) = files.get(*next) else { return Ok(false) };
                *next += 1;
                let bytes =
                    std::fs::read(file).map_err(|e| corrupt(format!("cannot read '{}': {e}", file.display())))?;
                *current = if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
                    let (width, height, data) = crate::capture::still::decode_rgb(&bytes)
                        .map_err(|e| corrupt(format!("cannot decode '{}': {e}", file.display())))?;
                    Image { format: PixelFormat::Rgb24, width, height, data }
                } else {
                    Image { format: PixelFormat::Mjpeg, width: 0, height: 0, data: bytes }
                };
                Ok(true)
            }
        }
    }

    /// The frame `advance` moved to.
    fn current(&self) -> Frame<'_> {
        let (format, width, height, data) = match &self.footage {
            Footage::Stream { reader } => (PixelFormat::Mjpeg, 0, 0, reader.last_frame().map_or(&[][..], |f| f.jpeg)),
            Footage::Folder { current, .. } => (current.format, current.width, current.height, &current.data[..]),
        };
        let stride = format.packed_stride(width);
        // `sequence` was counted past this frame already.
        Frame { format, width, height, stride, data, sequence: self.sequence - 1, timestamp: SystemTime::now() }
    }
}

fn open_file(path: &Path) -> Result<File, CaptureError> {
    File::open(path)
        .map_err(|e| CaptureError::new(CaptureErrorKind::Other, format!("cannot open '{}': {e}", path.display())))
}

impl FrameSource for FileSource {
    fn next_frame(&mut self) -> Result<Frame<'_>, CaptureError> {
        self.pacer.wait();
        if !self.advance()? {
            self.rewind()?;
            if !self.advance()? {
                return Err(CaptureError::new(
                    CaptureErrorKind::Ended,
                    format!("end of '{}'", self.options.path.display()),
                ));
            }
        }
        self.in_pass += 1;
        self.sequence += 1;
        Ok(self.current())
    }

    fn describe(&self) -> String {
        format!("file:{}", self.options.path.display())
    }
}

/// Keeps frames `1/fps` apart without catching up: a consumer that falls
/// more than a frame behind resets the schedule instead of getting a burst.
struct Pacer {
    period: Option<Duration>,
    due: Option<Instant>,
}

impl Pacer {
    fn new(fps: Option<f64>) -> Pacer {
        Pacer { period: fps.map(|f| Duration::from_secs_f64(1.0 / f)), due: None }
    }

    fn wait(&mut self) {
        let Some(period) = self.period else { return };
        let now = Instant::now();
        let due = self.due.unwrap_or(now);
        if due > now {
            thread::sleep(due - now);
        }
        let base = if due + period < now { now } else { due };
        self.due = Some(base + period);
    }
}
