//! The `v4l2` source: USB webcams and other V4L2 capture devices, and the
//! listing behind `edgeclip devices`.
//!
//! [`V4l2Source`] opens a device by path or by stable name (the
//! `/dev/v4l/by-id/...` and `/dev/v4l/by-path/...` symlinks, which survive
//! replugging, unlike `/dev/videoN`), negotiates a format from a preference
//! list and then uses whatever the driver chose as long as `convert` can
//! read it, streams through a fixed number of mmap buffers, and hands out
//! each frame borrowed from its buffer. A camera that disappears is reported
//! as `Disconnected` and reopened with a [`Backoff`] on later calls (from
//! [`BACKOFF_FIRST`] doubling up to [`BACKOFF_MAX`], back to the first delay
//! after a good frame); each call blocks at most for the frame timeout or one
//! backoff step, so that the capture loop can check for shutdown.
//!
//! Everything it needs from V4L2 is the small [`V4l2Device`] trait:
//! [`KernelDevice`] does it with ioctls, [`fake::FakeCamera`] from a script,
//! which is how this module is tested on machines without a camera.

mod device;
pub mod fake;
mod kernel;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use device::{ChosenFormat, Dequeued, DeviceInfo, FormatInfo, FrameSizes, Interval, V4l2Device};
pub use kernel::KernelDevice;

use super::{CaptureError, CaptureErrorKind, Frame, FrameSource, PixelFormat, BACKOFF_FIRST, BACKOFF_MAX};
use crate::util::backoff::Backoff;

/// The order formats are asked for when the configuration names none.
/// MJPEG first: it needs a fraction of the USB bandwidth of raw formats (a
/// USB 2.0 camera sends YUYV at 640×480 and 30 fps at most) and several
/// cameras share a Pi's bus; then the raw formats, cheapest to convert first.
pub const DEFAULT_FORMATS: [PixelFormat; 5] =
    [PixelFormat::Mjpeg, PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::Rgb24, PixelFormat::Grey];

/// The size asked for when none is configured: every UVC camera offers
/// 640×480, and the encoder needs only 224×224, so more pixels would cost
/// USB bandwidth and conversion time for nothing.
pub const DEFAULT_SIZE: (u32, u32) = (640, 480);

/// How long to wait for a frame. Webcams lengthen their exposure in the dark
/// down to about 5 fps (200 ms a frame); 2 s is ten such frames, long enough
/// never to fire on a slow but working camera, short enough that a stalled
/// stream is noticed and restarted within seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Buffers streamed through: one the capture thread reads, one the driver
/// fills, and two spare so that a read that runs late (a slow conversion on
/// a Pi Zero) does not make the driver drop frames. More would only add
/// latency (the slot takes the newest frame anyway) and memory (a 1280×720
/// YUYV buffer is 1.8 MB).
pub const DEFAULT_BUFFERS: u32 = 4;

/// Fewer than 2 buffers stalls most drivers (nothing to fill while the one
/// buffer is read); 32 is V4L2's own limit (VIDEO_MAX_FRAME).
pub const MIN_BUFFERS: u32 = 2;
pub const MAX_BUFFERS: u32 = 32;

/// Consecutive frame timeouts after which the stream is closed and the
/// device reopened: a UVC camera that stalls (USB trouble, firmware hiccup)
/// usually recovers from a fresh open, and three timeouts (6 s by default)
/// are no longer a dark scene.
pub const TIMEOUTS_BEFORE_REOPEN: u32 = 3;

/// A driver timestamp older than this when the frame is read is not trusted
/// (a driver stamping with another clock); the read time is used instead.
const MAX_TIMESTAMP_AGE: Duration = Duration::from_secs(60);

/// How to open and configure a V4L2 source (what a `v4l2` source
/// specification builds).
#[derive(Debug, Clone, PartialEq)]
pub struct V4l2Options {
    /// `/dev/videoN`, or a stable name under `/dev/v4l/by-id/` or
    /// `/dev/v4l/by-path/`. Default `/dev/video0`.
    pub device: String,
    /// Formats to ask for, most wanted first. Default [`DEFAULT_FORMATS`].
    /// Whatever the driver returns is used if it is any format we convert.
    pub formats: Vec<PixelFormat>,
    /// Size to ask for; the driver picks the nearest it has. Default
    /// [`DEFAULT_SIZE`] for a missing value.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frame rate to ask for. Default: the driver's.
    pub fps: Option<u32>,
    /// Longest wait for a frame. Default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// mmap buffers, [`MIN_BUFFERS`] to [`MAX_BUFFERS`]. Default [`DEFAULT_BUFFERS`].
    pub buffers: u32,
}

impl Default for V4l2Options {
    fn default() -> Self {
        V4l2Options {
            device: "/dev/video0".into(),
            formats: DEFAULT_FORMATS.to_vec(),
            width: None,
            height: None,
            fps: None,
            timeout: DEFAULT_TIMEOUT,
            buffers: DEFAULT_BUFFERS,
        }
    }
}

impl V4l2Options {
    /// Checks every setting; the error names the device and the value.
    pub fn validate(&self) -> Result<(), V4l2Error> {
        let bad = |setting: &'static str, value: String, accepted: &'static str| {
            Err(V4l2Error::Option { device: self.device.clone(), setting, value, accepted })
        };
        if self.device.is_empty() {
            return bad("device", String::new(), "a path such as /dev/video0 or /dev/v4l/by-id/...");
        }
        if self.formats.is_empty() {
            return bad("formats", "[]".into(), "one or more of MJPG, YUYV, NV12, RGB3, GREY");
        }
        for (setting, value) in [("width", self.width), ("height", self.height), ("fps", self.fps)] {
            if value == Some(0) {
                return bad(setting, "0".into(), "a positive number");
            }
        }
        if self.timeout.is_zero() {
            return bad("timeout", "0".into(), "a positive duration");
        }
        if !(MIN_BUFFERS..=MAX_BUFFERS).contains(&self.buffers) {
            return bad("buffers", self.buffers.to_string(), "2 to 32");
        }
        Ok(())
    }
}

/// Errors of the `v4l2` source; [`V4l2Error::kind`] says what the capture
/// loop should do about each.
#[derive(Debug, thiserror::Error)]
pub enum V4l2Error {
    #[error("invalid v4l2 {setting} '{value}' for '{device}': expected {accepted}")]
    Option { device: String, setting: &'static str, value: String, accepted: &'static str },
    #[error("cannot open '{device}': {source}{}", hint(source))]
    Open { device: String, source: io::Error },
    #[error(
        "'{device}' is not a video capture device (driver '{driver}', card '{card}'); \
         `edgeclip devices` lists the capture devices"
    )]
    NotCapture { device: String, driver: String, card: String },
    #[error("'{device}' cannot stream into mmap buffers (driver '{driver}'); edgeclip needs V4L2 streaming")]
    NoStreaming { device: String, driver: String },
    #[error(
        "'{device}' delivers '{got}', which edgeclip cannot convert; accepted: MJPG, YUYV, NV12, RGB3, GREY \
         (`edgeclip devices` lists what it offers)"
    )]
    Unsupported { device: String, got: String },
    #[error("'{device}' refused {setting} '{value}': {source}{}", hint(source))]
    Setting { device: String, setting: &'static str, value: String, source: io::Error },
    #[error("'{device}' gave an unusable {what} '{value}'")]
    BadFormat { device: String, what: &'static str, value: String },
    #[error("{step} on '{device}' failed: {source}{}", hint(source))]
    Io { device: String, step: &'static str, source: io::Error },
    #[error("'{device}' disappeared ({source}); reopening in {} ms", retry.as_millis())]
    Lost { device: String, source: io::Error, retry: Duration },
    #[error("no frame from '{device}' within {} ms{}", timeout.as_millis(),
        if *reopen { "; reopening it" } else { "" })]
    Timeout { device: String, timeout: Duration, reopen: bool },
    #[error("damaged frame from '{device}': {reason}")]
    Corrupt { device: String, reason: String },
}

impl V4l2Error {
    pub fn kind(&self) -> CaptureErrorKind {
        match self {
            V4l2Error::Open { source, .. } | V4l2Error::Setting { source, .. } | V4l2Error::Io { source, .. } => {
                errno_kind(source)
            }
            V4l2Error::Lost { .. } => CaptureErrorKind::Disconnected,
            V4l2Error::Timeout { .. } => CaptureErrorKind::Timeout,
            V4l2Error::Corrupt { .. } => CaptureErrorKind::Corrupt,
            V4l2Error::Option { .. }
            | V4l2Error::NotCapture { .. }
            | V4l2Error::NoStreaming { .. }
            | V4l2Error::Unsupported { .. }
            | V4l2Error::BadFormat { .. } => CaptureErrorKind::Other,
        }
    }
}

impl From<V4l2Error> for CaptureError {
    fn from(e: V4l2Error) -> CaptureError {
        CaptureError::new(e.kind(), e.to_string())
    }
}

/// What an errno means to the capture loop.
pub fn errno_kind(e: &io::Error) -> CaptureErrorKind {
    if e.kind() == io::ErrorKind::TimedOut {
        return CaptureErrorKind::Timeout;
    }
    match e.raw_os_error() {
        // ENOSPC: not enough USB bandwidth now; another camera may stop.
        Some(libc::EBUSY | libc::ENOSPC) => CaptureErrorKind::Busy,
        Some(libc::ENODEV | libc::ENOENT | libc::EIO | libc::ENXIO) => CaptureErrorKind::Disconnected,
        _ => CaptureErrorKind::Other,
    }
}

/// A hint for the person at the board, after an errno's own text.
fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => " (is the user in group 'video'?)",
        Some(libc::EBUSY) => " (another program is using the camera)",
        Some(libc::ENOENT | libc::ENODEV) => " (unplugged, or a wrong path? `edgeclip devices` lists the cameras)",
        Some(libc::ENOSPC) => {
            " (not enough USB bandwidth: use MJPG, a smaller size, or put the camera on another USB bus)"
        }
        _ => "",
    }
}

/// A fourcc as text: its characters when printable, else hex.
pub fn fourcc_text(code: [u8; 4]) -> String {
    if code.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(&code).trim_end().to_string()
    } else {
        format!("0x{:08x}", u32::from_le_bytes(code))
    }
}

/// Now on CLOCK_MONOTONIC, the clock V4L2 drivers stamp frames with.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// The wall-clock time of a driver's CLOCK_MONOTONIC timestamp (`None` or
/// an implausible one: the time it is read).
fn capture_time(timestamp: Option<Duration>) -> SystemTime {
    let now = SystemTime::now();
    let age = timestamp.and_then(|t| monotonic_now().checked_sub(t)).filter(|age| *age <= MAX_TIMESTAMP_AGE);
    age.and_then(|age| now.checked_sub(age)).unwrap_or(now)
}

/// `/dev/videoN` for a stable name (the path itself when it is not a
/// symlink or does not resolve).
pub fn resolve(device: &Path) -> PathBuf {
    std::fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf())
}

/// What the driver agreed to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Negotiated {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per row (0 for MJPEG).
    pub stride: u32,
    /// The frame rate the driver set, when one was asked and it has the control.
    pub fps: Option<f64>,
    /// Buffers the driver granted.
    pub buffers: u32,
}

/// Opens a device node by path.
pub type Opener<D> = Box<dyn FnMut(&Path) -> io::Result<D> + Send>;

/// A V4L2 capture device as a [`FrameSource`].
pub struct V4l2Source<D: V4l2Device = KernelDevice> {
    options: V4l2Options,
    opener: Opener<D>,
    device: Option<D>,
    negotiated: Option<Negotiated>,
    backoff: Backoff,
    /// The `/dev/videoN` last opened.
    resolved: PathBuf,
    /// Frames delivered.
    sequence: u64,
    last_driver_sequence: Option<u32>,
    dropped: u64,
    timeouts: u32,
    /// No good frame yet since the last (re)open: the backoff is reset only
    /// by a frame, so that a device that opens and fails at once is not
    /// reopened in a tight loop.
    fresh: bool,
}

impl V4l2Source<KernelDevice> {
    /// Opens and configures the device now, so that a wrong path or format
    /// is reported at start-up.
    pub fn open(options: V4l2Options) -> Result<V4l2Source<KernelDevice>, CaptureError> {
        let mut source = V4l2Source::with_opener(options, Box::new(|p: &Path| KernelDevice::open(p)))?;
        source.connect()?;
        Ok(source)
    }
}

impl<D: V4l2Device> V4l2Source<D> {
    /// A source that opens its device with `opener`, on the first
    /// [`next_frame`](FrameSource::next_frame) (or [`connect`](Self::connect)).
    pub fn with_opener(options: V4l2Options, opener: Opener<D>) -> Result<V4l2Source<D>, V4l2Error> {
        options.validate()?;
        let resolved = PathBuf::from(&options.device);
        Ok(V4l2Source {
            options,
            opener,
            device: None,
            negotiated: None,
            backoff: Backoff::new(BACKOFF_FIRST, BACKOFF_MAX),
            resolved,
            sequence: 0,
            last_driver_sequence: None,
            dropped: 0,
            timeouts: 0,
            fresh: true,
        })
    }

    /// Replaces the reopening delays (tests use milliseconds).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// What the driver agreed to at the last open.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Frames the driver dropped (gaps in its sequence numbers) since the
    /// source was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The `/dev/videoN` the device name resolved to at the last open.
    pub fn resolved(&self) -> &Path {
        &self.resolved
    }

    /// Opens, configures and starts the device (closing it first if open).
    /// On failure the next attempt waits one more backoff step.
    pub fn connect(&mut self) -> Result<Negotiated, CaptureError> {
        self.close();
        match self.try_connect() {
            Ok((device, negotiated)) => {
                self.device = Some(device);
                self.negotiated = Some(negotiated);
                self.fresh = true;
                self.timeouts = 0;
                self.last_driver_sequence = None;
                Ok(negotiated)
            }
            Err(e) => {
                let delay = self.backoff.failed();
                let kind = e.kind();
                let mut message = e.to_string();
                if matches!(kind, CaptureErrorKind::Busy | CaptureErrorKind::Disconnected) {
                    message.push_str(&format!("; retrying in {} ms", delay.as_millis()));
                }
                Err(CaptureError::new(kind, message))
            }
        }
    }

    fn close(&mut self) {
        if let Some(mut device) = self.device.take() {
            device.stop();
        }
    }

    fn try_connect(&mut self) -> Result<(D, Negotiated), V4l2Error> {
        let name = self.options.device.clone();
        let resolved = resolve(Path::new(&name));
        if resolved != Path::new(&name) {
            tracing::info!("'{name}' is '{}'", resolved.display());
        }
        self.resolved = resolved.clone();
        let io_err = |step: &'static str| {
            let device = name.clone();
            move |source| V4l2Error::Io { device, step, source }
        };
        let mut device = (self.opener)(&resolved).map_err(|source| V4l2Error::Open { device: name.clone(), source })?;
        let info = device.info().map_err(io_err("querying the device"))?;
        if !info.capture {
            return Err(V4l2Error::NotCapture { device: name, driver: info.driver, card: info.card });
        }
        if !info.streaming {
            return Err(V4l2Error::NoStreaming { device: name, driver: info.driver });
        }
        let offered = device.formats().map_err(io_err("listing formats"))?;
        let offers = |f: PixelFormat| offered.iter().any(|o| o.fourcc == f.fourcc());
        // The most wanted format offered; else any format we convert that is
        // offered; else the most wanted, and the driver picks.
        let wanted = (self.options.formats.iter().copied().find(|&f| offers(f)))
            .or_else(|| offered.iter().find_map(|o| PixelFormat::from_fourcc(o.fourcc)))
            .unwrap_or(self.options.formats[0]);
        let width = self.options.width.unwrap_or(DEFAULT_SIZE.0);
        let height = self.options.height.unwrap_or(DEFAULT_SIZE.1);
        let chosen = device.set_format(wanted.fourcc(), width, height).map_err(|source| V4l2Error::Setting {
            device: name.clone(),
            setting: "format",
            value: format!("{wanted} {width}x{height}"),
            source,
        })?;
        let Some(format) = PixelFormat::from_fourcc(chosen.fourcc) else {
            return Err(V4l2Error::Unsupported { device: name, got: fourcc_text(chosen.fourcc) });
        };
        if chosen.width == 0 || chosen.height == 0 {
            let value = format!("{}x{}", chosen.width, chosen.height);
            return Err(V4l2Error::BadFormat { device: name, what: "size", value });
        }
        let stride = match format {
            PixelFormat::Mjpeg => 0,
            _ if chosen.stride == 0 => format.packed_stride(chosen.width),
            _ if chosen.stride < format.packed_stride(chosen.width) => {
                let value = format!("{} bytes for {} pixels of {format}", chosen.stride, chosen.width);
                return Err(V4l2Error::BadFormat { device: name, what: "row stride", value });
            }
            _ => chosen.stride,
        };
        if format != wanted || (chosen.width, chosen.height) != (width, height) {
            tracing::info!(
                "'{name}': asked for {wanted} {width}x{height}, the driver chose {format} {}x{}",
                chosen.width,
                chosen.height
            );
        }
        let fps = match self.options.fps {
            None => None,
            Some(fps) => {
                let set = device.set_frame_rate(fps).map_err(|source| V4l2Error::Setting {
                    device: name.clone(),
                    setting: "frame rate",
                    value: format!("{fps} fps"),
                    source,
                })?;
                if set.is_none() {
                    tracing::warn!("'{name}' has no frame rate control; {fps} fps not set");
                }
                set.map(Interval::fps)
            }
        };
        let buffers = device.start(self.options.buffers).map_err(io_err("starting the stream"))?;
        tracing::info!(
            "'{name}' ('{}'): {format} {}x{}{}, {buffers} buffers",
            self.resolved.display(),
            chosen.width,
            chosen.height,
            fps.map(|f| format!(" at {f:.1} fps")).unwrap_or_default()
        );
        let negotiated = Negotiated { format, width: chosen.width, height: chosen.height, stride, fps, buffers };
        Ok((device, negotiated))
    }

    /// Handles a failed dequeue: counts timeouts, drops a vanished device.
    fn dequeue_failed(&mut self, source: io::Error) -> CaptureError {
        let device = self.options.device.clone();
        match errno_kind(&source) {
            CaptureErrorKind::Timeout => {
                self.timeouts += 1;
                let reopen = self.timeouts >= TIMEOUTS_BEFORE_REOPEN;
                if reopen {
                    // Reopened on the next call, without waiting: the device is there.
                    self.close();
                }
                V4l2Error::Timeout { device, timeout: self.options.timeout, reopen }.into()
            }
            CaptureErrorKind::Disconnected => {
                self.close();
                let retry = self.backoff.failed();
                V4l2Error::Lost { device, source, retry }.into()
            }
            _ => V4l2Error::Io { device, step: "reading a frame", source }.into(),
        }
    }

    /// Checks a dequeued buffer; returns the length of the frame in it.
    fn check(&self, d: &Dequeued, n: &Negotiated) -> Result<usize, String> {
        let buffer = self.device.as_ref().and_then(|dev| dev.buffer(d.index));
        let Some(buffer) = buffer else {
            return Err(format!("the driver returned buffer {} it does not have", d.index));
        };
        if d.error {
            return Err("the driver flagged it as damaged".into());
        }
        if d.bytes_used == 0 {
            return Err("empty buffer".into());
        }
        if d.bytes_used > buffer.len() {
            return Err(format!("{} bytes used of a {}-byte buffer", d.bytes_used, buffer.len()));
        }
        match n.format.frame_len(n.height, n.stride) {
            Some(expected) if d.bytes_used < expected => Err(format!(
                "short {} {}x{} frame: {} bytes, expected {expected}",
                n.format, n.width, n.height, d.bytes_used
            )),
            Some(expected) => Ok(expected),
            None if buffer[..d.bytes_used].starts_with(&[0xFF, 0xD8]) => Ok(d.bytes_used),
            None => Err(format!("{} bytes that do not start a JPEG", d.bytes_used)),
        }
    }
}

impl<D: V4l2Device> FrameSource for V4l2Source<D> {
    fn next_frame(&mut self) -> Result<Frame<'_>, CaptureError> {
        if self.device.is_none() {
            // At most one backoff step, then one attempt.
            self.backoff.wait(self.backoff.remaining());
            self.connect()?;
        }
        let (Some(device), Some(n)) = (self.device.as_mut(), self.negotiated) else {
            return Err(CaptureError::new(CaptureErrorKind::Other, "v4l2 source used without a device"));
        };
        let d = match device.dequeue(self.options.timeout) {
            Ok(d) => d,
            Err(e) => return Err(self.dequeue_failed(e)),
        };
        self.timeouts = 0;
        if let Some(last) = self.last_driver_sequence {
            let gap = d.sequence.wrapping_sub(last).wrapping_sub(1);
            // A counter that went backwards (a driver restart) is not a gap.
            if gap < u32::MAX / 2 {
                self.dropped += gap as u64;
            }
        }
        self.last_driver_sequence = Some(d.sequence);
        let len = self
            .check(&d, &n)
            .map_err(|reason| CaptureError::from(V4l2Error::Corrupt { device: self.options.device.clone(), reason }))?;
        if self.fresh {
            self.backoff.succeeded();
            self.fresh = false;
        }
        let sequence = self.sequence;
        self.sequence += 1;
        let data = self.device.as_ref().and_then(|dev| dev.buffer(d.index)).map(|b| &b[..len]).unwrap_or(&[]);
        Ok(Frame {
            format: n.format,
            width: n.width,
            height: n.height,
            stride: n.stride,
            data,
            sequence,
            timestamp: capture_time(d.timestamp),
        })
    }

    fn describe(&self) -> String {
        if self.resolved == Path::new(&self.options.device) {
            self.options.device.clone()
        } else {
            format!("{} ({})", self.options.device, self.resolved.display())
        }
    }
}

/// `edgeclip devices`: every V4L2 capture device under `/dev`, with its
/// stable names, driver, card, bus, and per format its sizes and rates.
pub fn list_devices(out: &mut dyn Write) -> anyhow::Result<()> {
    list_devices_in(Path::new("/dev"), &mut |p: &Path| KernelDevice::open(p), out)
}

/// [`list_devices`] for the `video*` nodes and `v4l/by-id`, `v4l/by-path`
/// links of `dev`, opened with `open`.
pub fn list_devices_in<D: V4l2Device>(
    dev: &Path,
    open: &mut dyn FnMut(&Path) -> io::Result<D>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir(dev)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    // Stable names by the node they point at.
    let mut names: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for sub in ["v4l/by-id", "v4l/by-path"] {
        let mut links: Vec<PathBuf> =
            std::fs::read_dir(dev.join(sub)).into_iter().flatten().flatten().map(|e| e.path()).collect();
        links.sort();
        for link in links {
            if let Ok(target) = std::fs::canonicalize(&link) {
                names.entry(target).or_default().push(link);
            }
        }
    }
    let mut listed = 0;
    let mut others = Vec::new();
    for (_, path) in &nodes {
        let mut device = match open(path) {
            Ok(d) => d,
            Err(e) => {
                writeln!(out, "{}: cannot open: {e}{}", path.display(), hint(&e))?;
                listed += 1;
                continue;
            }
        };
        let info = match device.info() {
            Ok(info) if info.capture => info,
            Ok(_) => {
                others.push(path.display().to_string());
                continue;
            }
            Err(e) => {
                writeln!(out, "{}: cannot query: {e}", path.display())?;
                listed += 1;
                continue;
            }
        };
        listed += 1;
        writeln!(out, "{}", path.display())?;
        let stable = std::fs::canonicalize(path).ok().and_then(|p| names.get(&p));
        for name in stable.into_iter().flatten() {
            writeln!(out, "  name    {}", name.display())?;
        }
        writeln!(out, "  driver  {}", info.driver)?;
        writeln!(out, "  card    {}", info.card)?;
        writeln!(out, "  bus     {}", info.bus)?;
        if !info.streaming {
            writeln!(out, "  (no mmap streaming: edgeclip cannot read it)")?;
        }
        match device.formats() {
            Err(e) => writeln!(out, "  formats: cannot list: {e}")?,
            Ok(formats) if formats.is_empty() => writeln!(out, "  formats: none listed")?,
            Ok(formats) => write_formats(&formats, out)?,
        }
        device.stop();
    }
    if listed == 0 {
        writeln!(out, "no V4L2 capture devices found (looked for video* in '{}')", dev.display())?;
    }
    if !others.is_empty() {
        writeln!(out, "not capture devices (metadata, codecs, outputs): {}", others.join(", "))?;
    }
    Ok(())
}

fn write_formats(formats: &[FormatInfo], out: &mut dyn Write) -> io::Result<()> {
    for f in formats {
        let note = if PixelFormat::from_fourcc(f.fourcc).is_some() { "" } else { "  (edgeclip cannot convert it)" };
        writeln!(out, "  {} {}{note}", fourcc_text(f.fourcc), f.description)?;
        for size in &f.sizes {
            match size {
                FrameSizes::Discrete { width, height, intervals } => {
                    let rates: Vec<String> = intervals.iter().map(|i| fps_text(i.fps())).collect();
                    let rates = if rates.is_empty() { String::new() } else { format!(" @ {} fps", rates.join(", ")) };
                    writeln!(out, "    {width}x{height}{rates}")?;
                }
                FrameSizes::Stepwise { min, max, step } => {
                    writeln!(out, "    {}x{} to {}x{}, steps of {}x{}", min.0, min.1, max.0, max.1, step.0, step.1)?
                }
            }
        }
    }
    Ok(())
}

/// 30 as "30", 7.5 as "7.5".
fn fps_text(fps: f64) -> String {
    if (fps - fps.round()).abs() < 0.01 {
        format!("{}", fps.round() as u64)
    } else {
        format!("{fps:.2}").trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_map_to_kinds() {
        let k = |errno| errno_kind(&io::Error::from_raw_os_error(errno));
        assert_eq!(k(libc::EBUSY), CaptureErrorKind::Busy);
        assert_eq!(k(libc::ENODEV), CaptureErrorKind::Disconnected);
        assert_eq!(k(libc::ENOENT), CaptureErrorKind::Disconnected);
        assert_eq!(k(libc::EIO), CaptureErrorKind::Disconnected);
        assert_eq!(k(libc::EINVAL), CaptureErrorKind::Other);
        assert_eq!(errno_kind(&io::ErrorKind::TimedOut.into()), CaptureErrorKind::Timeout);
    }

    #[test]
    fn fourccs_and_rates_print_readably() {
        assert_eq!(fourcc_text(*b"Y10B"), "Y10B");
        assert_eq!(fourcc_text([1, 2, 3, 4]), "0x04030201");
        assert_eq!(fps_text(30.0), "30");
        assert_eq!(fps_text(7.5), "7.5");
        assert_eq!(fps_text(1.0 / 0.3336), "3");
    }

    #[test]
    fn driver_timestamps_become_wall_clock_times() {
        let age = Duration::from_millis(250);
        let t = capture_time(Some(monotonic_now() - age));
        let measured = SystemTime::now().duration_since(t).unwrap_or_default();
        assert!(measured >= age && measured < age + Duration::from_millis(100), "{measured:?}");
        // A stamp from another clock (far in the future or past) is not trusted.
        let mut bogus = vec![monotonic_now() + Duration::from_secs(3600)];
        if monotonic_now() > MAX_TIMESTAMP_AGE * 2 {
            bogus.push(Duration::from_secs(1));
        }
        for bogus in bogus {
            let t = capture_time(Some(bogus));
            assert!(SystemTime::now().duration_since(t).unwrap_or_default() < Duration::from_millis(100));
        }
    }
}
