//! Source specifications: which source to open, with its settings.
//!
//! The one-line form is what `edgeclip capture --source` takes:
//!
//! - `v4l2:/dev/video0` (or a bare `/dev/...` path, or a stable name such as
//!   `/dev/v4l/by-id/usb-...-video-index0`), with optional settings
//!   `?format=MJPG,YUYV&size=1280x720&fps=15`;
//! - `exec:COMMAND`, the rest of the line being a shell command that writes
//!   MJPEG to stdout, e.g. `exec:rpicam-vid -t 0 --codec mjpeg -o -`;
//! - `file:PATH` (an MJPEG stream file or a folder of images), with optional
//!   settings `?fps=10&loop`; a bare path to an existing file or folder is
//!   a file source too;
//! - `rtsp://[user:password@]host[:port]/path`, an IP camera or a restream,
//!   with optional settings `?transport=tcp|udp&fps=N` (the camera's own
//!   query parameters stay in the URL). The password never leaves the
//!   options: the spec's `Display` and its errors write `***` for it.

use std::path::PathBuf;
use std::str::FromStr;

use thiserror::Error;

use super::exec::{ExecOptions, ExecSource};
use super::file::{FileOptions, FileSource};
use super::rtsp::url::redact_spec;
use super::rtsp::{RtspOptions, RtspSource};
use super::v4l2::{KernelDevice, V4l2Options, V4l2Source};
use super::{CaptureError, FrameSource, PixelFormat};

/// Which source to open and how.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    V4l2(V4l2Options),
    Exec(ExecOptions),
    File(FileOptions),
    Rtsp(RtspOptions),
}

/// The slowest replay: one frame every 1000 s. A rate near zero is a
/// period no clock can hold.
const MIN_FILE_FPS: f64 = 0.001;

const ACCEPTED: &str = "accepted: 'v4l2:/dev/video0[?format=MJPG,YUYV&size=1280x720&fps=15]', \
                        'exec:COMMAND', 'file:PATH[?fps=10&loop]', \
                        'rtsp://[user:password@]host[:port]/path[?transport=tcp|udp&fps=N]', \
                        or a path to a device, file or folder";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("source '{spec}': {problem}; {ACCEPTED}")]
pub struct SpecError {
    pub spec: String,
    pub problem: String,
}

impl FromStr for SourceSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<SourceSpec, SpecError> {
        let error = |problem: String| SpecError { spec: redact_spec(spec), problem };
        let (kind, rest) = match spec.split_once(':') {
            Some((kind @ ("v4l2" | "exec" | "file" | "rtsp"), rest)) => (kind, rest),
            _ if spec.starts_with("/dev/") => ("v4l2", spec),
            _ if PathBuf::from(spec).exists() => ("file", spec),
            _ => return Err(error("not a source kind, and no such file or folder".into())),
        };
        match kind {
            "rtsp" => RtspOptions::parse(spec).map(SourceSpec::Rtsp).map_err(error),
            "exec" => {
                if rest.trim().is_empty() {
                    return Err(error("'exec:' needs a command".into()));
                }
                Ok(SourceSpec::Exec(ExecOptions::new(rest.trim())))
            }
            "file" => {
                let (path, settings) = split_settings(rest);
                let mut options = FileOptions { path: PathBuf::from(path), fps: None, looping: false };
                for (key, value) in settings {
                    match (key, value) {
                        ("fps", Some(v)) => {
                            let fps: f64 = v.parse().map_err(|_| error(format!("fps '{v}' is not a number")))?;
                            if !(fps.is_finite() && fps >= MIN_FILE_FPS) {
                                return Err(error(format!(
                                    "fps '{v}' is out of range; accepted: {MIN_FILE_FPS} or more"
                                )));
                            }
                            options.fps = Some(fps);
                        }
                        ("loop", None | Some("true")) => options.looping = true,
                        ("loop", Some("false")) => options.looping = false,
                        _ => return Err(error(format!("unknown file setting '{key}' (accepted: fps=N, loop)"))),
                    }
                }
                if path.is_empty() {
                    return Err(error("'file:' needs a path".into()));
                }
                Ok(SourceSpec::File(options))
            }
            _ => {
                let (device, settings) = split_settings(rest);
                if device.is_empty() {
                    return Err(error("'v4l2:' needs a device path".into()));
                }
                let mut options = V4l2Options { device: device.to_string(), ..V4l2Options::default() };
                for (key, value) in settings {
                    let value = value.unwrap_or("");
                    match key {
                        "format" => {
                            options.formats = value
                                .split(',')
                                .map(|code| {
                                    parse_format(code).ok_or_else(|| {
                                        error(format!(
                                            "unknown pixel format '{code}' (accepted: MJPG, YUYV, NV12, RGB3, GREY)"
                                        ))
                                    })
                                })
                                .collect::<Result<_, _>>()?;
                        }
                        "size" => {
                            let (w, h) = value
                                .split_once('x')
                                .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                                .filter(|&(w, h)| w > 0 && h > 0)
                                .ok_or_else(|| error(format!("size '{value}' is not WIDTHxHEIGHT")))?;
                            (options.width, options.height) = (Some(w), Some(h));
                        }
                        "fps" => {
                            let fps: u32 = value
                                .parse()
                                .ok()
                                .filter(|&f| f > 0)
                                .ok_or_else(|| error(format!("fps '{value}' is not a whole number above 0")))?;
                            options.fps = Some(fps);
                        }
                        _ => return Err(error(format!("unknown v4l2 setting '{key}' (accepted: format, size, fps)"))),
                    }
                }
                Ok(SourceSpec::V4l2(options))
            }
        }
    }
}

/// "path?a=1&b" -> ("path", [("a", Some("1")), ("b", None)]).
fn split_settings(rest: &str) -> (&str, Vec<(&str, Option<&str>)>) {
    match rest.rsplit_once('?') {
        Some((path, query)) => (
            path,
            query
                .split('&')
                .filter(|s| !s.is_empty())
                .map(|s| match s.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (s, None),
                })
                .collect(),
        ),
        None => (rest, Vec::new()),
    }
}

/// A four-character code, any case; `MJPEG` and `JPEG` mean MJPEG.
fn parse_format(code: &str) -> Option<PixelFormat> {
    let upper = code.trim().to_ascii_uppercase();
    if upper == "MJPEG" {
        return Some(PixelFormat::Mjpeg);
    }
    let bytes: [u8; 4] = upper.as_bytes().try_into().ok()?;
    PixelFormat::from_fourcc(bytes)
}

impl std::fmt::Display for SourceSpec {
    /// The one-line form, with the settings that differ from the defaults.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Exec(o) => write!(f, "exec:{}", o.command),
            SourceSpec::Rtsp(o) => write!(f, "{o}"),
            SourceSpec::File(o) => {
                write!(f, "file:{}", o.path.display())?;
                let mut settings = Vec::new();
                if let Some(fps) = o.fps {
                    settings.push(format!("fps={fps}"));
                }
                if o.looping {
                    settings.push("loop".into());
                }
                if !settings.is_empty() {
                    write!(f, "?{}", settings.join("&"))?;
                }
                Ok(())
            }
            SourceSpec::V4l2(o) => {
                write!(f, "v4l2:{}", o.device)?;
                let mut settings = Vec::new();
                if o.formats != super::v4l2::DEFAULT_FORMATS {
                    settings.push(format!(
                        "format={}",
                        o.formats.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
                    ));
                }
                if let (Some(w), Some(h)) = (o.width, o.height) {
                    settings.push(format!("size={w}x{h}"));
                }
                if let Some(fps) = o.fps {
                    settings.push(format!("fps={fps}"));
                }
                if !settings.is_empty() {
                    write!(f, "?{}", settings.join("&"))?;
                }
                Ok(())
            }
        }
    }
}

impl SourceSpec {
    /// Opens the source (a command starts, a device opens, on the first frame
    /// for `exec` and as the V4L2 source decides).
    pub fn open(&self) -> Result<Box<dyn FrameSource>, CaptureError> {
        Ok(match self {
            SourceSpec::V4l2(options) => Box::new(V4l2Source::open(options.clone())?),
            SourceSpec::Exec(options) => Box::new(ExecSource::new(options.clone())),
            SourceSpec::File(options) => Box::new(FileSource::open(options.clone())?),
            SourceSpec::Rtsp(options) => Box::new(RtspSource::open(options.clone())?),
        })
    }

    /// Like [`open`](Self::open), but a V4L2 device is only opened on the
    /// first frame, so that a camera missing when the daemon starts (not
    /// yet plugged in, its driver still loading at boot) is waited for with
    /// backoff instead of stopping the daemon. Settings are still checked
    /// here.
    pub fn open_lazy(&self) -> Result<Box<dyn FrameSource>, CaptureError> {
        match self {
            SourceSpec::V4l2(options) => Ok(Box::new(
                V4l2Source::with_opener(options.clone(), Box::new(|p: &std::path::Path| KernelDevice::open(p)))
                    .map_err(CaptureError::from)?,
            )),
            _ => self.open(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_specs() {
        let spec: SourceSpec = "file:clip.mjpeg?fps=12.5&loop".parse().unwrap();
        assert_eq!(spec, SourceSpec::File(FileOptions { path: "clip.mjpeg".into(), fps: Some(12.5), looping: true }));
        let spec: SourceSpec = "exec: rpicam-vid -t 0 --codec mjpeg -o -".parse().unwrap();
        assert_eq!(spec, SourceSpec::Exec(ExecOptions::new("rpicam-vid -t 0 --codec mjpeg -o -")));
        let SourceSpec::V4l2(v) = "v4l2:/dev/video2?format=yuyv,MJPG&size=1280x720&fps=15".parse().unwrap() else {
            panic!()
        };
        assert_eq!((v.device.as_str(), v.width, v.height, v.fps), ("/dev/video2", Some(1280), Some(720), Some(15)));
        assert_eq!(v.formats, [PixelFormat::Yuyv, PixelFormat::Mjpeg]);
        assert!(matches!("/dev/video0".parse(), Ok(SourceSpec::V4l2(_))));
        for line in [
            "v4l2:/dev/video2?format=YUYV,MJPG&size=1280x720&fps=15",
            "exec:rpicam-vid -o -",
            "file:a.mjpeg?fps=2.5&loop",
        ] {
            assert_eq!(line.parse::<SourceSpec>().unwrap().to_string(), line);
        }
    }

    #[test]
    fn mistakes_say_what_is_accepted() {
        for (spec, problem) in [
            ("camera", "not a source kind, and no such file or folder"),
            ("exec:  ", "'exec:' needs a command"),
            ("file:x.mjpeg?fps=0", "fps '0' is out of range; accepted: 0.001 or more"),
            ("file:x.mjpeg?fps=1e-20", "fps '1e-20' is out of range; accepted: 0.001 or more"),
            ("file:x.mjpeg?speed=2", "unknown file setting 'speed' (accepted: fps=N, loop)"),
            ("v4l2:/dev/video0?size=big", "size 'big' is not WIDTHxHEIGHT"),
            ("v4l2:/dev/video0?format=H264", "unknown pixel format 'H264' (accepted: MJPG, YUYV, NV12, RGB3, GREY)"),
            ("rtsp://admin:hunter2@cam/x?fps=fast", "fps 'fast' is not a number above 0"),
        ] {
            let e = spec.parse::<SourceSpec>().unwrap_err();
            assert_eq!(e.problem, problem, "{spec}");
            assert!(e.to_string().starts_with(&format!("source '{}': {problem}; accepted: ", e.spec)), "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }
}
