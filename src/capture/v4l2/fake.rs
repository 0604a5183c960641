//! A scripted V4L2 camera for tests (style item 4): the formats its
//! "driver" offers and which one it picks, a queue of frames, timeouts and
//! errors (EBUSY, ENODEV while streaming as when the camera is unplugged,
//! short or empty buffers), and opens that fail a given number of times.
//! It records what it was asked (opens, formats, rates, buffer counts) and
//! [`FakeCamera::done`] checks that the whole script was used.
//!
//! One [`FakeCamera`] is one physical camera; every open hands out a
//! [`FakeDevice`] onto the same script, so a reopened device carries on
//! where the unplugged one stopped.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::device::{ChosenFormat, Dequeued, DeviceInfo, FormatInfo, FrameSizes, Interval, V4l2Device};
use super::monotonic_now;
use crate::capture::PixelFormat;

/// One thing the fake driver does when a frame is asked for.
#[derive(Debug, Clone)]
enum Event {
    Frame { data: Vec<u8>, bytes_used: usize, age: Option<Duration>, sequence: Option<u32>, error: bool },
    Timeout,
    Errno(i32),
}

#[derive(Debug, Default)]
struct Script {
    info: Option<DeviceInfo>,
    formats: Vec<FormatInfo>,
    /// The format S_FMT answers with whatever was asked.
    substitute: Option<[u8; 4]>,
    /// Errno of S_FMT, S_PARM or STREAMON (once each).
    set_format_errno: Option<i32>,
    set_rate_errno: Option<i32>,
    start_errno: Option<i32>,
    /// Results of the next opens (then: success).
    opens: VecDeque<Option<i32>>,
    events: VecDeque<Event>,
    driver_sequence: u32,
    // What was asked:
    opened: Vec<PathBuf>,
    requested: Vec<([u8; 4], u32, u32)>,
    rates: Vec<u32>,
    started: Vec<u32>,
    stops: usize,
    dequeues: usize,
}

/// A scripted camera; clones share the script.
#[derive(Debug, Clone, Default)]
pub struct FakeCamera {
    script: Arc<Mutex<Script>>,
}

/// An open handle on a [`FakeCamera`].
#[derive(Debug)]
pub struct FakeDevice {
    script: Arc<Mutex<Script>>,
    /// The "mmap buffer" of the last frame.
    buffer: Vec<u8>,
    format: Option<ChosenFormat>,
    streaming: bool,
}

fn lock(script: &Mutex<Script>) -> MutexGuard<'_, Script> {
    script.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeCamera {
    /// A UVC-like capture camera that offers nothing yet.
    pub fn new() -> FakeCamera {
        let camera = FakeCamera::default();
        camera.with(|s| {
            s.info = Some(DeviceInfo {
                driver: "uvcvideo".into(),
                card: "Fake Webcam".into(),
                bus: "usb-0000:01:00.0-1".into(),
                capture: true,
                streaming: true,
            })
        });
        camera
    }

    fn with<R>(&self, f: impl FnOnce(&mut Script) -> R) -> R {
        f(&mut lock(&self.script))
    }

    /// Replaces what QUERYCAP answers.
    pub fn info(self, info: DeviceInfo) -> Self {
        self.with(|s| s.info = Some(info));
        self
    }

    /// Offers `fourcc` at these sizes, each at these frame rates.
    pub fn offer(self, fourcc: &[u8; 4], sizes: &[(u32, u32)], fps: &[u32]) -> Self {
        let intervals: Vec<Interval> = fps.iter().map(|&f| Interval { numerator: 1, denominator: f }).collect();
        let sizes = sizes
            .iter()
            .map(|&(width, height)| FrameSizes::Discrete { width, height, intervals: intervals.clone() })
            .collect();
        self.offer_sizes(fourcc, sizes)
    }

    /// Offers `fourcc` with these sizes.
    pub fn offer_sizes(self, fourcc: &[u8; 4], sizes: Vec<FrameSizes>) -> Self {
        let description = format!("fake {}", String::from_utf8_lossy(fourcc));
        self.with(|s| s.formats.push(FormatInfo { fourcc: *fourcc, description, sizes }));
        self
    }

    /// The driver answers every S_FMT with this format, whatever was asked.
    pub fn substitute(self, fourcc: &[u8; 4]) -> Self {
        self.with(|s| s.substitute = Some(*fourcc));
        self
    }

    /// The next S_FMT fails with `errno`.
    pub fn fail_set_format(self, errno: i32) -> Self {
        self.with(|s| s.set_format_errno = Some(errno));
        self
    }

    /// The next S_PARM fails with `errno`.
    pub fn fail_set_rate(self, errno: i32) -> Self {
        self.with(|s| s.set_rate_errno = Some(errno));
        self
    }

    /// The next STREAMON fails with `errno`.
    pub fn fail_start(self, errno: i32) -> Self {
        self.with(|s| s.start_errno = Some(errno));
        self
    }

    /// The next open succeeds (to place failures after it).
    pub fn open_ok(self) -> Self {
        self.with(|s| s.opens.push_back(None));
        self
    }

    /// The next `times` opens fail with `errno`.
    pub fn open_fails(self, errno: i32, times: usize) -> Self {
        self.with(|s| s.opens.extend(std::iter::repeat_n(Some(errno), times)));
        self
    }

    /// A frame of these bytes, all used, stamped now.
    pub fn frame(self, data: &[u8]) -> Self {
        self.push(Event::Frame {
            data: data.to_vec(),
            bytes_used: data.len(),
            age: Some(Duration::ZERO),
            sequence: None,
            error: false,
        })
    }

    /// A frame the driver says was captured `age` before it is dequeued
    /// (`None`: the driver gives no usable timestamp).
    pub fn frame_aged(self, data: &[u8], age: Option<Duration>) -> Self {
        self.push(Event::Frame { data: data.to_vec(), bytes_used: data.len(), age, sequence: None, error: false })
    }

    /// A frame whose driver sequence number is `sequence` (the next ones count on from it).
    pub fn frame_numbered(self, data: &[u8], sequence: u32) -> Self {
        self.push(Event::Frame {
            data: data.to_vec(),
            bytes_used: data.len(),
            age: Some(Duration::ZERO),
            sequence: Some(sequence),
            error: false,
        })
    }

    /// A buffer of which the driver says only `bytes_used` bytes are filled.
    pub fn short_frame(self, data: &[u8], bytes_used: usize) -> Self {
        self.push(Event::Frame {
            data: data.to_vec(),
            bytes_used,
            age: Some(Duration::ZERO),
            sequence: None,
            error: false,
        })
    }

    /// A frame the driver flags as damaged (V4L2_BUF_FLAG_ERROR).
    pub fn flagged_frame(self, data: &[u8]) -> Self {
        self.push(Event::Frame {
            data: data.to_vec(),
            bytes_used: data.len(),
            age: Some(Duration::ZERO),
            sequence: None,
            error: true,
        })
    }

    /// No frame within the timeout.
    pub fn timeout(self) -> Self {
        self.push(Event::Timeout)
    }

    /// The next dequeue fails with `errno` (ENODEV: the camera was unplugged).
    pub fn error(self, errno: i32) -> Self {
        self.push(Event::Errno(errno))
    }

    fn push(self, event: Event) -> Self {
        self.with(|s| s.events.push_back(event));
        self
    }

    /// Opens the camera, as the path's opener would.
    pub fn open(&self, path: &Path) -> io::Result<FakeDevice> {
        let mut s = lock(&self.script);
        s.opened.push(path.to_path_buf());
        if let Some(Some(errno)) = s.opens.pop_front() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        Ok(FakeDevice { script: self.script.clone(), buffer: Vec::new(), format: None, streaming: false })
    }

    /// An opener for [`V4l2Source::with_opener`](super::V4l2Source::with_opener).
    pub fn opener(&self) -> impl FnMut(&Path) -> io::Result<FakeDevice> + Send + 'static {
        let camera = self.clone();
        move |path| camera.open(path)
    }

    /// The paths opened so far, failed opens included.
    pub fn opened(&self) -> Vec<PathBuf> {
        self.with(|s| s.opened.clone())
    }

    /// The (fourcc, width, height) of each S_FMT asked.
    pub fn requested_formats(&self) -> Vec<([u8; 4], u32, u32)> {
        self.with(|s| s.requested.clone())
    }

    /// The frame rates asked.
    pub fn requested_rates(&self) -> Vec<u32> {
        self.with(|s| s.rates.clone())
    }

    /// The buffer counts streaming was started with.
    pub fn started(&self) -> Vec<u32> {
        self.with(|s| s.started.clone())
    }

    /// How many times streaming was stopped.
    pub fn stops(&self) -> usize {
        self.with(|s| s.stops)
    }

    /// How many frames were asked for.
    pub fn dequeues(&self) -> usize {
        self.with(|s| s.dequeues)
    }

    /// Panics unless every scripted event and open result was used.
    pub fn done(&self) {
        self.with(|s| {
            assert!(s.events.is_empty(), "fake camera: {} scripted events not used: {:?}", s.events.len(), s.events);
            assert!(s.opens.is_empty(), "fake camera: {} scripted opens not used", s.opens.len());
        })
    }
}

/// The offered size nearest to the one asked, as drivers pick.
fn nearest(sizes: &[FrameSizes], width: u32, height: u32) -> (u32, u32) {
    let distance = |w: u32, h: u32| (w as i64 - width as i64).abs() + (h as i64 - height as i64).abs();
    sizes
        .iter()
        .map(|s| match *s {
            FrameSizes::Discrete { width, height, .. } => (width, height),
            FrameSizes::Stepwise { min, max, step } => {
                let fit = |v: u32, lo: u32, hi: u32, st: u32| lo + (v.clamp(lo, hi) - lo) / st * st;
                (fit(width, min.0, max.0, step.0), fit(height, min.1, max.1, step.1))
            }
        })
        .min_by_key(|&(w, h)| distance(w, h))
        .unwrap_or((width, height))
}

impl V4l2Device for FakeDevice {
    fn info(&self) -> io::Result<DeviceInfo> {
        lock(&self.script).info.clone().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOTTY))
    }

    fn formats(&self) -> io::Result<Vec<FormatInfo>> {
        Ok(lock(&self.script).formats.clone())
    }

    fn set_format(&mut self, fourcc: [u8; 4], width: u32, height: u32) -> io::Result<ChosenFormat> {
        let mut s = lock(&self.script);
        s.requested.push((fourcc, width, height));
        if let Some(errno) = s.set_format_errno.take() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        // Like a driver: the format asked if offered, else its substitute or
        // its first format.
        let offered = s.formats.iter().find(|f| f.fourcc == fourcc);
        let chosen = match (s.substitute, offered) {
            (Some(sub), _) => s.formats.iter().find(|f| f.fourcc == sub).cloned().unwrap_or(FormatInfo {
                fourcc: sub,
                description: String::new(),
                sizes: Vec::new(),
            }),
            (None, Some(f)) => f.clone(),
            (None, None) => s.formats.first().cloned().ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?,
        };
        let (w, h) = nearest(&chosen.sizes, width, height);
        let known = PixelFormat::from_fourcc(chosen.fourcc);
        // Unknown formats: pretend 2 bytes a pixel, as most raw formats we lack are.
        let stride = known.map_or(w * 2, |f| f.packed_stride(w));
        let size_image = known.and_then(|f| f.frame_len(h, stride)).unwrap_or((w * h) as usize) as u32;
        let chosen = ChosenFormat { fourcc: chosen.fourcc, width: w, height: h, stride, size_image };
        self.format = Some(chosen);
        Ok(chosen)
    }

    fn set_frame_rate(&mut self, fps: u32) -> io::Result<Option<Interval>> {
        let mut s = lock(&self.script);
        s.rates.push(fps);
        if let Some(errno) = s.set_rate_errno.take() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        Ok(Some(Interval { numerator: 1, denominator: fps }))
    }

    fn start(&mut self, buffers: u32) -> io::Result<u32> {
        let mut s = lock(&self.script);
        s.started.push(buffers);
        if let Some(errno) = s.start_errno.take() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.streaming = true;
        Ok(buffers)
    }

    fn dequeue(&mut self, _timeout: Duration) -> io::Result<Dequeued> {
        let mut s = lock(&self.script);
        s.dequeues += 1;
        if !self.streaming {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // An exhausted script is a camera that stopped sending.
        match s.events.pop_front().unwrap_or(Event::Timeout) {
            Event::Timeout => Err(io::ErrorKind::TimedOut.into()),
            Event::Errno(errno) => Err(io::Error::from_raw_os_error(errno)),
            Event::Frame { data, bytes_used, age, sequence, error } => {
                let sequence = sequence.unwrap_or(s.driver_sequence);
                s.driver_sequence = sequence.wrapping_add(1);
                self.buffer = data;
                Ok(Dequeued {
                    index: 0,
                    bytes_used,
                    timestamp: age.map(|a| monotonic_now().saturating_sub(a)),
                    sequence,
                    error,
                })
            }
        }
    }

    fn buffer(&self, index: usize) -> Option<&[u8]> {
        (index == 0 && self.streaming).then_some(&self.buffer[..])
    }

    fn stop(&mut self) {
        if self.streaming {
            lock(&self.script).stops += 1;
            self.streaming = false;
        }
    }
}
