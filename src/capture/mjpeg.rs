//! Splits a Motion-JPEG byte stream into its JPEG frames.
//!
//! An MJPEG stream is JPEG images written back to back, as `rpicam-vid
//! --codec mjpeg -o -`, `gst-launch-1.0 ... ! jpegenc ! fdsink` and our demo
//! clip (`models/tiny-shapes/demo.mjpeg`) produce. A frame is found by
//! walking its markers rather than by searching for the end marker, so that an
//! embedded thumbnail (an EXIF APP1 segment holding a whole JPEG) does not end
//! the frame early: marker segments are skipped by their length, and after
//! start-of-scan the entropy-coded data is scanned for a marker that is not
//! byte stuffing (`FF 00`) or a restart marker (`FF D0`..`FF D7`).
//!
//! Bytes between frames are skipped, a frame larger than
//! [`MAX_FRAME_BYTES`] and a frame cut off by the end of the data are errors
//! that name the offset; splitting then resumes at the next start marker.
//! [`MjpegFrames`] splits a stream held in memory, [`MjpegReader`] one read
//! from a pipe or a file, with one buffer reused from frame to frame.

use std::io::{self, Read};
use std::ops::Range;

use thiserror::Error;

/// Frames above this size are refused: a 4K MJPEG frame at high quality is
/// about 2 MB, so 16 MiB only stops a runaway scan through garbage.
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// A broken frame; offsets count bytes from the start of the stream.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MjpegError {
    #[error("JPEG frame at byte {offset} is cut off at the end of the stream ({len} bytes, no end-of-image marker)")]
    Truncated { offset: u64, len: usize },
    #[error("JPEG frame at byte {offset} is larger than {max} bytes without an end-of-image marker; skipped")]
    TooLarge { offset: u64, max: usize },
    #[error("JPEG frame at byte {offset} has a malformed segment at byte {at}; skipped")]
    Malformed { offset: u64, at: u64 },
}

impl MjpegError {
    /// The same error with its offsets moved by `by` bytes.
    fn shifted(self, by: u64) -> MjpegError {
        match self {
            MjpegError::Truncated { offset, len } => MjpegError::Truncated { offset: offset + by, len },
            MjpegError::TooLarge { offset, max } => MjpegError::TooLarge { offset: offset + by, max },
            MjpegError::Malformed { offset, at } => MjpegError::Malformed { offset: offset + by, at: at + by },
        }
    }
}

/// One frame of the stream: where it starts and its bytes (SOI to EOI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MjpegFrame<'a> {
    pub offset: u64,
    pub jpeg: &'a [u8],
}

/// Offset of the next start-of-image (`FF D8 FF`) in `data` at or after `from`.
fn find_soi(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF]).map(|p| from + p)
}

/// Iterates over the frames of an MJPEG stream held in memory.
pub struct MjpegFrames<'a> {
    data: &'a [u8],
    pos: usize,
    max_frame: usize,
}

impl<'a> MjpegFrames<'a> {
    pub fn new(data: &'a [u8]) -> MjpegFrames<'a> {
        MjpegFrames { data, pos: 0, max_frame: MAX_FRAME_BYTES }
    }

    /// The same with a smaller frame size cap (tests).
    pub fn with_max_frame(data: &'a [u8], max_frame: usize) -> MjpegFrames<'a> {
        MjpegFrames { data, pos: 0, max_frame }
    }
}

/// The end (exclusive) of the frame starting at `start` in `d`, walking its
/// markers; a frame running past `d`'s end is `Truncated`, one longer than
/// `max_frame` `TooLarge`. Offsets in errors are indices into `d`.
fn frame_end(d: &[u8], start: usize, max_frame: usize) -> Result<usize, MjpegError> {
    let limit = d.len().min(start.saturating_add(max_frame));
    let too_long = |at: usize| {
        if at >= d.len() {
            MjpegError::Truncated { offset: start as u64, len: d.len() - start }
        } else {
            MjpegError::TooLarge { offset: start as u64, max: max_frame }
        }
    };
    let mut i = start + 2;
    // Marker segments up to the start of scan.
    let mut in_scan = false;
    loop {
        if in_scan {
            // Entropy-coded data: stop at the first real marker.
            while i + 1 < limit {
                if d[i] == 0xFF {
                    match d[i + 1] {
                        0x00 | 0xD0..=0xD7 | 0xFF => i += 1,
                        0xD9 => return Ok(i + 2),
                        _ => {
                            in_scan = false;
                            break;
                        }
                    }
                } else {
                    i += 1;
                }
            }
            if in_scan {
                return Err(too_long(limit));
            }
        }
        // At a marker: FF (fill bytes) xx [length].
        while i < limit && d[i] == 0xFF && i + 1 < limit && d[i + 1] == 0xFF {
            i += 1;
        }
        if i + 1 >= limit {
            return Err(too_long(limit));
        }
        if d[i] != 0xFF {
            return Err(MjpegError::Malformed { offset: start as u64, at: i as u64 });
        }
        let marker = d[i + 1];
        match marker {
            0xD9 => return Ok(i + 2),
            0x01 | 0xD0..=0xD7 => i += 2, // markers without a length
            0xD8 => return Err(MjpegError::Malformed { offset: start as u64, at: i as u64 }),
            _ => {
                if i + 3 >= limit {
                    return Err(too_long(limit));
                }
                let len = u16::from_be_bytes([d[i + 2], d[i + 3]]) as usize;
                if len < 2 {
                    return Err(MjpegError::Malformed { offset: start as u64, at: i as u64 });
                }
                i += 2 + len;
                if i > limit {
                    return Err(too_long(i));
                }
                in_scan = marker == 0xDA;
            }
        }
    }
}

impl<'a> Iterator for MjpegFrames<'a> {
    type Item = Result<MjpegFrame<'a>, MjpegError>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = find_soi(self.data, self.pos)?;
        match frame_end(self.data, start, self.max_frame) {
            Ok(end) => {
                self.pos = end;
                Some(Ok(MjpegFrame { offset: start as u64, jpeg: &self.data[start..end] }))
            }
            Err(e) => {
                // Resume the search just after this start marker: the next
                // frame may begin inside the broken one.
                self.pos = start + 2;
                if matches!(e, MjpegError::Truncated { .. }) {
                    self.pos = self.data.len();
                }
                Some(Err(e))
            }
        }
    }
}

/// Bytes asked of the reader at a time: a few frames of a 640x480 camera.
const READ_CHUNK: usize = 64 << 10;

/// Splits an MJPEG stream read from a pipe or a file into frames, with one
/// buffer that is reused (it grows to the largest frame seen, at most
/// [`MAX_FRAME_BYTES`] and a read chunk).
pub struct MjpegReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// `buf[start..end]` is read but not yet consumed.
    start: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    max_frame: usize,
    /// Where in `buf` the frame found by the last `advance` is.
    last: Option<Range<usize>>,
}

/// Why [`MjpegReader::next_frame`] returned no frame.
#[derive(Debug, Error)]
pub enum MjpegReadError {
    /// One frame is broken; the next call goes on with the next frame.
    #[error(transparent)]
    Frame(#[from] MjpegError),
    /// Reading the stream failed.
    #[error("cannot read the MJPEG stream: {0}")]
    Io(#[from] io::Error),
}

impl<R: Read> MjpegReader<R> {
    pub fn new(inner: R) -> MjpegReader<R> {
        MjpegReader::with_max_frame(inner, MAX_FRAME_BYTES)
    }

    /// The same with a smaller frame size cap (tests).
    pub fn with_max_frame(inner: R, max_frame: usize) -> MjpegReader<R> {
        MjpegReader { inner, buf: Vec::new(), start: 0, end: 0, base: 0, eof: false, max_frame, last: None }
    }

    /// The next frame; `Ok(None)` once the stream has ended. Garbage between
    /// frames is skipped; a broken frame is an error, after which the next
    /// call resumes behind it.
    pub fn next_frame(&mut self) -> Result<Option<MjpegFrame<'_>>, MjpegReadError> {
        Ok(if self.advance()? { self.last_frame() } else { None })
    }

    /// Moves to the next frame, which [`last_frame`](Self::last_frame) then
    /// returns; `Ok(false)` once the stream has ended.
    pub fn advance(&mut self) -> Result<bool, MjpegReadError> {
        self.last = None;
        let (start, end) = loop {
            let Some(soi) = find_soi(&self.buf[..self.end], self.start) else {
                // Keep two bytes: a start marker may straddle the next read.
                self.start = self.start.max(self.end.saturating_sub(2));
                if self.eof {
                    self.start = self.end;
                    return Ok(false);
                }
                self.fill()?;
                continue;
            };
            self.start = soi;
            match frame_end(&self.buf[..self.end], soi, self.max_frame) {
                Ok(end) => break (soi, end),
                Err(MjpegError::Truncated { .. }) if !self.eof => self.fill_until_frame_may_end()?,
                Err(e) => {
                    // Resume just after this start marker (the next frame may
                    // begin inside the broken one), or at the end if the
                    // stream is over.
                    self.start = if matches!(e, MjpegError::Truncated { .. }) { self.end } else { soi + 2 };
                    return Err(e.shifted(self.base).into());
                }
            }
        };
        self.start = end;
        self.last = Some(start..end);
        Ok(true)
    }

    /// The frame the last successful [`advance`](Self::advance) moved to.
    pub fn last_frame(&self) -> Option<MjpegFrame<'_>> {
        let range = self.last.clone()?;
        Some(MjpegFrame { offset: self.base + range.start as u64, jpeg: &self.buf[range] })
    }

    /// Reads a new stream (a file replayed from its start) with the same
    /// buffer.
    pub fn restart(&mut self, inner: R) {
        self.inner = inner;
        (self.start, self.end, self.base, self.eof, self.last) = (0, 0, 0, false, None);
    }

    /// Reads more of the unfinished frame (which starts at `self.start`)
    /// until it may have ended: an end-of-image marker arrived, the frame
    /// reached the size cap, or the stream ended. Scanning the frame again
    /// after every small read would cost time quadratic in its size on a
    /// pipe that trickles.
    fn fill_until_frame_may_end(&mut self) -> io::Result<()> {
        loop {
            let had = self.end - self.start;
            self.fill()?;
            // `fill` moved the frame to the front of the buffer.
            let new_from = (self.start + had).saturating_sub(1);
            let eoi = self.buf[new_from..self.end].windows(2).any(|w| w == [0xFF, 0xD9]);
            if self.eof || eoi || self.end - self.start >= self.max_frame {
                return Ok(());
            }
        }
    }

    /// Drops consumed bytes and reads at least one more chunk (or notes the
    /// end of the stream). The read size grows with the unfinished frame, so
    /// that rescanning a large frame from its start stays linear overall.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        let want = self.end + READ_CHUNK.max(self.end);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structurally valid JPEG: SOI, an APP0 segment, SOS with a few
    /// entropy bytes (including stuffing and a restart marker), EOI.
    fn frame(payload: u8) -> Vec<u8> {
        let mut f = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB];
        f.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x03, 0x01]);
        f.extend_from_slice(&[payload, 0xFF, 0x00, 0x12, 0xFF, 0xD3, 0x34]);
        f.extend_from_slice(&[0xFF, 0xD9]);
        f
    }

    fn split(data: &[u8]) -> Vec<Result<MjpegFrame<'_>, MjpegError>> {
        MjpegFrames::new(data).collect()
    }

    #[test]
    fn frames_back_to_back_and_with_garbage_between() {
        let (a, b) = (frame(1), frame(2));
        let mut data = b"garbage \xFF\xD9 more".to_vec();
        data.extend(&a);
        data.extend(b"\x00\x00junk");
        data.extend(&b);
        let got = split(&data);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().jpeg, &a[..]);
        assert_eq!(got[1].as_ref().unwrap().jpeg, &b[..]);
        assert_eq!(got[1].as_ref().unwrap().offset, (data.len() - b.len()) as u64);
    }

    #[test]
    fn an_end_marker_inside_a_segment_does_not_end_the_frame() {
        // An APP1 segment holding FF D9 (as an EXIF thumbnail does).
        let mut f = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0xFF, 0xD9];
        f.extend_from_slice(&frame(3)[2..]);
        let got = split(&f);
        assert_eq!(got, vec![Ok(MjpegFrame { offset: 0, jpeg: &f[..] })]);
    }

    #[test]
    fn a_truncated_last_frame_is_an_error_after_the_good_ones() {
        let mut data = frame(1);
        let second = frame(2);
        data.extend(&second[..second.len() - 3]);
        let got = split(&data);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert_eq!(got[1], Err(MjpegError::Truncated { offset: second.len() as u64, len: second.len() - 3 }));
    }

    #[test]
    fn an_oversized_frame_is_skipped_and_the_next_one_found() {
        let mut big = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        big.extend(std::iter::repeat_n(0x11, 100));
        let good = frame(4);
        let mut data = big.clone();
        data.extend(&good);
        let got: Vec<_> = MjpegFrames::with_max_frame(&data, 64).collect();
        assert_eq!(got[0], Err(MjpegError::TooLarge { offset: 0, max: 64 }));
        assert_eq!(got.last().unwrap().as_ref().unwrap().jpeg, &good[..]);
    }

    /// Reads at most `step` bytes at a time, as a pipe may deliver them.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// What the reader yields, in the iterator's terms.
    fn read_all(data: &[u8], step: usize, max_frame: usize) -> Vec<Result<(u64, Vec<u8>), MjpegError>> {
        let mut reader = MjpegReader::with_max_frame(Trickle { data, step }, max_frame);
        let mut out = Vec::new();
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => out.push(Ok((f.offset, f.jpeg.to_vec()))),
                Ok(None) => return out,
                Err(MjpegReadError::Frame(e)) => out.push(Err(e)),
                Err(MjpegReadError::Io(e)) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn the_reader_splits_as_the_in_memory_iterator_does_whatever_the_read_sizes() {
        let mut big = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        big.extend(std::iter::repeat_n(0x11, 100));
        let mut data = b"\xFF\xD8 junk".to_vec();
        for (i, part) in [frame(1), big, frame(2), b"\xFF\xFF\x00".to_vec(), frame(3)].iter().enumerate() {
            data.extend(part);
            data.extend(std::iter::repeat_n(0xEE, i));
        }
        let second_last = frame(5);
        data.extend(&second_last[..second_last.len() - 4]);
        let want: Vec<_> =
            MjpegFrames::with_max_frame(&data, 64).map(|r| r.map(|f| (f.offset, f.jpeg.to_vec()))).collect();
        assert_eq!(want.len(), 5, "{want:?}");
        for step in [1, 2, 3, 7, 64, 1 << 20] {
            assert_eq!(read_all(&data, step, 64), want, "reading {step} bytes at a time");
        }
    }

    #[test]
    fn the_reader_reuses_its_buffer() {
        let data: Vec<u8> = (0..50).flat_map(|i| frame(i as u8)).collect();
        let mut reader = MjpegReader::new(&data[..]);
        let mut frames = 0;
        while let Some(f) = reader.next_frame().unwrap() {
            assert_eq!(f.jpeg, &frame(frames as u8)[..]);
            frames += 1;
        }
        assert_eq!(frames, 50);
        assert!(reader.buf.len() <= 2 * READ_CHUNK, "buffer grew to {}", reader.buf.len());
    }

    #[test]
    fn a_large_frame_trickling_in_a_byte_at_a_time_is_scanned_in_linear_time() {
        // 300 KB of entropy-coded data: rescanning it after every byte would
        // take about 45 G steps; scanning once an end marker arrives, 300 k.
        let mut big = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        big.extend((0..300_000u32).map(|i| (i % 251) as u8 & 0x7F));
        big.extend_from_slice(&[0xFF, 0xD9]);
        let started = std::time::Instant::now();
        let got = read_all(&big, 1, MAX_FRAME_BYTES);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().1.len(), big.len());
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
