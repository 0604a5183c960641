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
//! that name the offset; the iterator then resumes at the next start marker.

use thiserror::Error;

/// Frames above this size are refused: a 4K MJPEG frame at high quality is
/// about 2 MB, so 16 MiB only stops a runaway scan through garbage.
pub const MAX_FRAME_BYTES: usize = 16 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MjpegError {
    #[error("JPEG frame at byte {offset} is cut off at the end of the stream ({len} bytes, no end-of-image marker)")]
    Truncated { offset: usize, len: usize },
    #[error("JPEG frame at byte {offset} is larger than {max} bytes without an end-of-image marker; skipped")]
    TooLarge { offset: usize, max: usize },
    #[error("JPEG frame at byte {offset} has a malformed segment at byte {at}; skipped")]
    Malformed { offset: usize, at: usize },
}

/// One frame of the stream: where it starts and its bytes (SOI to EOI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MjpegFrame<'a> {
    pub offset: usize,
    pub jpeg: &'a [u8],
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

    /// Offset of the next start-of-image (`FF D8 FF`) at or after `from`.
    fn find_soi(&self, from: usize) -> Option<usize> {
        self.data.get(from..)?.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF]).map(|p| from + p)
    }

    /// The end (exclusive) of the frame starting at `start`.
    fn frame_end(&self, start: usize) -> Result<usize, MjpegError> {
        let d = self.data;
        let limit = d.len().min(start.saturating_add(self.max_frame));
        let too_long = |at: usize| {
            if at >= d.len() {
                MjpegError::Truncated { offset: start, len: d.len() - start }
            } else {
                MjpegError::TooLarge { offset: start, max: self.max_frame }
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
                return Err(MjpegError::Malformed { offset: start, at: i });
            }
            let marker = d[i + 1];
            match marker {
                0xD9 => return Ok(i + 2),
                0x01 | 0xD0..=0xD7 => i += 2, // markers without a length
                0xD8 => return Err(MjpegError::Malformed { offset: start, at: i }),
                _ => {
                    if i + 3 >= limit {
                        return Err(too_long(limit));
                    }
                    let len = u16::from_be_bytes([d[i + 2], d[i + 3]]) as usize;
                    if len < 2 {
                        return Err(MjpegError::Malformed { offset: start, at: i });
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
}

impl<'a> Iterator for MjpegFrames<'a> {
    type Item = Result<MjpegFrame<'a>, MjpegError>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.find_soi(self.pos)?;
        match self.frame_end(start) {
            Ok(end) => {
                self.pos = end;
                Some(Ok(MjpegFrame { offset: start, jpeg: &self.data[start..end] }))
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
        assert_eq!(got[1].as_ref().unwrap().offset, data.len() - b.len());
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
        assert_eq!(got[1], Err(MjpegError::Truncated { offset: second.len(), len: second.len() - 3 }));
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
}
