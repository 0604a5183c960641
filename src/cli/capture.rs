//! `edgeclip capture`: frames from any source written as image files, one
//! line per frame, for checking a camera or a recording before the daemon
//! uses it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::capture::{CaptureErrorKind, PixelFormat, SourceSpec};
use crate::pipeline::convert::{Converter, RgbImage};

/// `edgeclip capture`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct CaptureArgs {
    /// v4l2:/dev/video0[?format=MJPG,YUYV&size=1280x720&fps=15], exec:COMMAND,
    /// file:PATH[?fps=10&loop], rtsp://USER:PASSWORD@HOST:PORT/PATH?transport=tcp&fps=N (the login,
    /// port and settings optional), or a path to a device, MJPEG file or image folder.
    #[arg(long, value_name = "SPEC")]
    pub source: SourceSpec,
    /// How many frames to write.
    #[arg(long, default_value_t = 10)]
    pub frames: u64,
    /// Folder to write frame-NNNNNN.jpg (a camera's JPEG as it came) or .png files to.
    #[arg(long = "out", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Write every frame as the RGB image edgeclip converts it to (PNG).
    #[arg(long)]
    pub rgb: bool,
    /// Also write each raw frame's bytes as the source delivered them, rows
    /// padded to the driver's stride, as frame-NNNNNN-FOURCC-WxH-STRIDE.raw
    /// (to compare with another converter; a JPEG is written as it came).
    #[arg(long)]
    pub raw: bool,
}

/// Errors in a row (timeouts, a camera gone) after which `capture` gives up:
/// with the exec source's 10 s timeout that is about a minute of nothing.
const CAPTURE_MAX_ERRORS_IN_ROW: u32 = 6;

/// `edgeclip capture`: writes frames from any source as image files, one
/// line per frame, for checking a camera. A frame that does not decode is
/// reported and skipped, as the daemon would.
pub fn capture(args: &CaptureArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("cannot create '{}'", args.out_dir.display()))?;
    let mut source = args.source.open()?;
    writeln!(out, "capturing {} frames from {}", args.frames, source.describe())?;
    let mut converter = Converter::new(None);
    let mut rgb = RgbImage::new();
    let (mut written, mut skipped, mut errors_in_row) = (0u64, 0u64, 0u32);
    let started = Instant::now();
    while written < args.frames {
        let frame = match source.next_frame() {
            Ok(frame) => frame,
            Err(e) => match e.kind {
                CaptureErrorKind::Corrupt => {
                    skipped += 1;
                    writeln!(out, "skipped: {e}")?;
                    continue;
                }
                CaptureErrorKind::Ended => {
                    writeln!(out, "{e}")?;
                    break;
                }
                CaptureErrorKind::Busy | CaptureErrorKind::Disconnected | CaptureErrorKind::Timeout => {
                    errors_in_row += 1;
                    writeln!(out, "waiting: {e}")?;
                    if errors_in_row >= CAPTURE_MAX_ERRORS_IN_ROW {
                        bail!("gave up after {errors_in_row} errors in a row from {}: {e}", source.describe());
                    }
                    continue;
                }
                CaptureErrorKind::Other => return Err(anyhow::Error::new(e)),
            },
        };
        errors_in_row = 0;
        let (sequence, format, bytes) = (frame.sequence, frame.format, frame.data.len());
        if let Err(e) = converter.convert(&frame, &mut rgb) {
            skipped += 1;
            writeln!(out, "skipped frame {sequence}: {e}")?;
            continue;
        }
        let name = format!("frame-{written:06}");
        if args.raw && format != PixelFormat::Mjpeg {
            let path =
                args.out_dir.join(format!("{name}-{format}-{}x{}-{}.raw", frame.width, frame.height, frame.stride));
            std::fs::write(&path, frame.data).with_context(|| format!("cannot write '{}'", path.display()))?;
        }
        let path = if format == PixelFormat::Mjpeg && !args.rgb {
            let path = args.out_dir.join(format!("{name}.jpg"));
            std::fs::write(&path, frame.data).with_context(|| format!("cannot write '{}'", path.display()))?;
            path
        } else {
            let path = args.out_dir.join(format!("{name}.png"));
            image::save_buffer(&path, &rgb.data, rgb.width, rgb.height, image::ExtendedColorType::Rgb8)
                .with_context(|| format!("cannot write '{}'", path.display()))?;
            path
        };
        writeln!(
            out,
            "frame {sequence}: {format} {}x{}, {bytes} bytes, at {:.3} s -> {}",
            rgb.width,
            rgb.height,
            started.elapsed().as_secs_f64(),
            path.display()
        )?;
        written += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "wrote {written} frames to {} in {seconds:.2} s ({:.1} frames/s); {skipped} skipped as corrupt",
        args.out_dir.display(),
        written as f64 / seconds.max(1e-9)
    )?;
    if written == 0 {
        bail!(
            "no frame from {}: {}",
            source.describe(),
            if skipped > 0 { "every frame was corrupt" } else { "it ended before its first frame" }
        );
    }
    Ok(())
}
