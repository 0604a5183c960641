//! The real [`V4l2Device`]: a device node driven with plain V4L2 ioctls
//! through the `v4l` crate's bindings to the kernel headers (its `v4l2`
//! backend, no libv4l2).
//!
//! Only the ioctl plumbing and structs of `v4l` are used. Its higher-level
//! types panic on device data we must survive: a card name that is not
//! UTF-8, a colorspace newer than the crate, and a failed STREAMOFF when its
//! mmap stream is dropped after the camera is unplugged with EIO. Here every
//! answer of the driver is checked and nothing panics.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use v4l::v4l2;
use v4l::v4l2::vidioc;
use v4l::v4l_sys::*;

use super::device::{ChosenFormat, Dequeued, DeviceInfo, FormatInfo, FrameSizes, Interval, V4l2Device};

/// Enumeration loops stop here even if a buggy driver never answers EINVAL.
const MAX_ENUM: u32 = 256;

const CAPTURE: u32 = v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE;
const MMAP: u32 = v4l2_memory_V4L2_MEMORY_MMAP;

/// An open device node, and its mmap buffers while streaming.
pub struct KernelDevice {
    fd: OwnedFd,
    /// (address, length) of each mapped buffer.
    buffers: Vec<(*mut c_void, usize)>,
    /// The buffer the caller holds, to be queued again on the next dequeue.
    held: Option<u32>,
    streaming: bool,
}

// SAFETY: the mappings belong to this struct alone (nothing else holds their
// addresses once `buffer`'s borrows end), so moving it to another thread is
// as safe as moving the file descriptor.
unsafe impl Send for KernelDevice {}

/// Calls one V4L2 ioctl on `arg`.
fn ioctl<T>(fd: &OwnedFd, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    // SAFETY: every call passes the struct that `request` was defined with
    // (the request number encodes its size), owned by the caller.
    unsafe { v4l2::ioctl(fd.as_raw_fd(), request, arg as *mut T as *mut c_void) }
}

/// A zeroed V4L2 struct (all of them are plain C data for which zero is valid).
fn zeroed<T>() -> T {
    // SAFETY: only used for the bindgen structs below, which hold integers,
    // arrays, unions of those, and pointers, for all of which zero is valid.
    unsafe { std::mem::zeroed() }
}

/// A NUL-padded C string from the driver, without trusting it to be UTF-8.
fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

fn is_einval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

impl KernelDevice {
    /// Opens a device node (non-blocking: frames are waited for with poll).
    pub fn open(path: &Path) -> io::Result<KernelDevice> {
        let fd = v4l2::open(path, libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC)?;
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(KernelDevice { fd, buffers: Vec::new(), held: None, streaming: false })
    }

    fn sizes(&self, fourcc: u32) -> io::Result<Vec<FrameSizes>> {
        let mut sizes = Vec::new();
        for index in 0..MAX_ENUM {
            let mut e: v4l2_frmsizeenum = zeroed();
            e.index = index;
            e.pixel_format = fourcc;
            match ioctl(&self.fd, vidioc::VIDIOC_ENUM_FRAMESIZES, &mut e) {
                Ok(()) => {}
                Err(e) if is_einval(&e) => break,
                Err(e) => return Err(e),
            }
            // SAFETY: `type_` says which member of the union the driver filled.
            let size = if e.type_ == v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_DISCRETE {
                let d = unsafe { e.__bindgen_anon_1.discrete };
                let intervals = self.intervals(fourcc, d.width, d.height)?;
                FrameSizes::Discrete { width: d.width, height: d.height, intervals }
            } else {
                // SAFETY: as above (STEPWISE and CONTINUOUS fill `stepwise`).
                let s = unsafe { e.__bindgen_anon_1.stepwise };
                FrameSizes::Stepwise {
                    min: (s.min_width, s.min_height),
                    max: (s.max_width, s.max_height),
                    step: (s.step_width.max(1), s.step_height.max(1)),
                }
            };
            let stepwise = matches!(size, FrameSizes::Stepwise { .. });
            sizes.push(size);
            if stepwise {
                break; // a stepwise range is the only entry
            }
        }
        Ok(sizes)
    }

    fn intervals(&self, fourcc: u32, width: u32, height: u32) -> io::Result<Vec<Interval>> {
        let mut intervals = Vec::new();
        for index in 0..MAX_ENUM {
            let mut e: v4l2_frmivalenum = zeroed();
            e.index = index;
            e.pixel_format = fourcc;
            e.width = width;
            e.height = height;
            match ioctl(&self.fd, vidioc::VIDIOC_ENUM_FRAMEINTERVALS, &mut e) {
                Ok(()) => {}
                // EINVAL ends the list; ENOTTY: the driver lists no rates.
                Err(err) if is_einval(&err) || err.raw_os_error() == Some(libc::ENOTTY) => break,
                Err(err) => return Err(err),
            }
            // SAFETY: `type_` says which member of the union the driver filled.
            let discrete = e.type_ == v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_DISCRETE;
            // A range: report its fastest rate (shortest interval) and stop.
            let f = unsafe {
                if discrete {
                    e.__bindgen_anon_1.discrete
                } else {
                    e.__bindgen_anon_1.stepwise.min
                }
            };
            intervals.push(Interval { numerator: f.numerator, denominator: f.denominator });
            if !discrete {
                break;
            }
        }
        Ok(intervals)
    }

    fn release(&mut self) {
        for (addr, len) in self.buffers.drain(..) {
            // SAFETY: each (addr, len) came from a successful mmap in `start`
            // and no borrow of it outlives `&mut self`.
            if unsafe { libc::munmap(addr, len) } != 0 {
                tracing::debug!("munmap of a V4L2 buffer failed: {}", io::Error::last_os_error());
            }
        }
        let mut req: v4l2_requestbuffers = zeroed();
        req.type_ = CAPTURE;
        req.memory = MMAP;
        if let Err(e) = ioctl(&self.fd, vidioc::VIDIOC_REQBUFS, &mut req) {
            tracing::debug!("freeing V4L2 buffers failed: {e}");
        }
    }

    fn queue(&self, index: u32) -> io::Result<()> {
        let mut buf: v4l2_buffer = zeroed();
        buf.type_ = CAPTURE;
        buf.memory = MMAP;
        buf.index = index;
        ioctl(&self.fd, vidioc::VIDIOC_QBUF, &mut buf)
    }
}

impl V4l2Device for KernelDevice {
    fn info(&self) -> io::Result<DeviceInfo> {
        let mut cap: v4l2_capability = zeroed();
        ioctl(&self.fd, vidioc::VIDIOC_QUERYCAP, &mut cap)?;
        // `capabilities` covers the whole physical device; `device_caps`
        // (when present) this node, which tells UVC's metadata node apart.
        let caps = if cap.capabilities & V4L2_CAP_DEVICE_CAPS != 0 { cap.device_caps } else { cap.capabilities };
        Ok(DeviceInfo {
            driver: c_text(&cap.driver),
            card: c_text(&cap.card),
            bus: c_text(&cap.bus_info),
            capture: caps & V4L2_CAP_VIDEO_CAPTURE != 0,
            streaming: caps & V4L2_CAP_STREAMING != 0,
        })
    }

    fn formats(&self) -> io::Result<Vec<FormatInfo>> {
        let mut formats = Vec::new();
        for index in 0..MAX_ENUM {
            let mut d: v4l2_fmtdesc = zeroed();
            d.index = index;
            d.type_ = CAPTURE;
            match ioctl(&self.fd, vidioc::VIDIOC_ENUM_FMT, &mut d) {
                Ok(()) => {}
                Err(e) if is_einval(&e) => break,
                Err(e) => return Err(e),
            }
            formats.push(FormatInfo {
                fourcc: d.pixelformat.to_le_bytes(),
                description: c_text(&d.description),
                sizes: self.sizes(d.pixelformat)?,
            });
        }
        Ok(formats)
    }

    fn set_format(&mut self, fourcc: [u8; 4], width: u32, height: u32) -> io::Result<ChosenFormat> {
        let mut f: v4l2_format = zeroed();
        f.type_ = CAPTURE;
        // `pix` is the member for VIDEO_CAPTURE, which we write and the driver fills in.
        f.fmt.pix.width = width;
        f.fmt.pix.height = height;
        f.fmt.pix.pixelformat = u32::from_le_bytes(fourcc);
        f.fmt.pix.field = v4l2_field_V4L2_FIELD_ANY;
        ioctl(&self.fd, vidioc::VIDIOC_S_FMT, &mut f)?;
        // SAFETY: the driver filled `pix`, the member for VIDEO_CAPTURE.
        let p = unsafe { f.fmt.pix };
        Ok(ChosenFormat {
            fourcc: p.pixelformat.to_le_bytes(),
            width: p.width,
            height: p.height,
            stride: p.bytesperline,
            size_image: p.sizeimage,
        })
    }

    fn set_frame_rate(&mut self, fps: u32) -> io::Result<Option<Interval>> {
        let mut p: v4l2_streamparm = zeroed();
        p.type_ = CAPTURE;
        match ioctl(&self.fd, vidioc::VIDIOC_G_PARM, &mut p) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => return Ok(None),
            Err(e) => return Err(e),
        }
        // SAFETY: `capture` is the member for VIDEO_CAPTURE.
        if unsafe { p.parm.capture.capability } & V4L2_CAP_TIMEPERFRAME == 0 {
            return Ok(None);
        }
        p.parm.capture.timeperframe = v4l2_fract { numerator: 1, denominator: fps };
        ioctl(&self.fd, vidioc::VIDIOC_S_PARM, &mut p)?;
        // SAFETY: as above.
        let t = unsafe { p.parm.capture.timeperframe };
        Ok(Some(Interval { numerator: t.numerator, denominator: t.denominator }))
    }

    fn start(&mut self, buffers: u32) -> io::Result<u32> {
        self.stop();
        let mut req: v4l2_requestbuffers = zeroed();
        req.count = buffers;
        req.type_ = CAPTURE;
        req.memory = MMAP;
        ioctl(&self.fd, vidioc::VIDIOC_REQBUFS, &mut req)?;
        for index in 0..req.count {
            let mut buf: v4l2_buffer = zeroed();
            buf.type_ = CAPTURE;
            buf.memory = MMAP;
            buf.index = index;
            let mapped = ioctl(&self.fd, vidioc::VIDIOC_QUERYBUF, &mut buf).and_then(|()| {
                let len = buf.length as usize;
                // SAFETY: QUERYBUF filled `m.offset` (the MMAP member) with
                // the offset of a buffer of this descriptor; the mapping of
                // `len` bytes there is released in `release`.
                let offset = unsafe { buf.m.offset };
                // SAFETY: as above.
                let addr = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        self.fd.as_raw_fd(),
                        offset as libc::off_t,
                    )
                };
                if addr == libc::MAP_FAILED {
                    return Err(io::Error::last_os_error());
                }
                self.buffers.push((addr, len));
                Ok(())
            });
            if let Err(e) = mapped.and_then(|()| self.queue(index)) {
                self.release();
                return Err(e);
            }
        }
        let mut typ = CAPTURE;
        if let Err(e) = ioctl(&self.fd, vidioc::VIDIOC_STREAMON, &mut typ) {
            self.release();
            return Err(e);
        }
        self.streaming = true;
        Ok(req.count)
    }

    fn dequeue(&mut self, timeout: Duration) -> io::Result<Dequeued> {
        if let Some(index) = self.held.take() {
            self.queue(index)?;
        }
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, millis) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            // A signal: report it as a timeout, the caller simply asks again.
            return Err(if e.kind() == io::ErrorKind::Interrupted { io::ErrorKind::TimedOut.into() } else { e });
        }
        if ready == 0 {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // POLLERR/POLLHUP (unplugged, not streaming) make DQBUF fail with the reason.
        let mut buf: v4l2_buffer = zeroed();
        buf.type_ = CAPTURE;
        buf.memory = MMAP;
        match ioctl(&self.fd, vidioc::VIDIOC_DQBUF, &mut buf) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Err(io::ErrorKind::TimedOut.into()),
            Err(e) => return Err(e),
        }
        self.held = Some(buf.index);
        let monotonic = buf.flags & V4L2_BUF_FLAG_TIMESTAMP_MASK == V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
        // i32 on 32-bit ARM, i64 on 64-bit boards: the conversion is not useless everywhere.
        #[allow(clippy::useless_conversion)]
        let (sec, usec) = (i64::from(buf.timestamp.tv_sec), i64::from(buf.timestamp.tv_usec));
        let timestamp = (monotonic && sec >= 0 && (0..1_000_000).contains(&usec) && (sec, usec) != (0, 0))
            .then(|| Duration::new(sec as u64, usec as u32 * 1000));
        Ok(Dequeued {
            index: buf.index as usize,
            bytes_used: buf.bytesused as usize,
            timestamp,
            sequence: buf.sequence,
            error: buf.flags & V4L2_BUF_FLAG_ERROR != 0,
        })
    }

    fn buffer(&self, index: usize) -> Option<&[u8]> {
        let &(addr, len) = self.buffers.get(index)?;
        // SAFETY: a live mapping of `len` bytes, unmapped only through
        // `&mut self`, so not while this borrow lasts.
        Some(unsafe { std::slice::from_raw_parts(addr as *const u8, len) })
    }

    fn stop(&mut self) {
        self.held = None;
        if self.streaming {
            let mut typ = CAPTURE;
            if let Err(e) = ioctl(&self.fd, vidioc::VIDIOC_STREAMOFF, &mut typ) {
                tracing::debug!("VIDIOC_STREAMOFF failed: {e}");
            }
            self.streaming = false;
        }
        if !self.buffers.is_empty() {
            self.release();
        }
    }
}

impl Drop for KernelDevice {
    fn drop(&mut self) {
        self.stop();
    }
}
