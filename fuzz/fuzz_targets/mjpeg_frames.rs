//! Fuzzes the MJPEG stream splitter and the frame converter behind it, the
//! path every byte from a camera command or a recording takes: arbitrary
//! bytes are split into frames, and each frame is converted at full size and
//! reduced (for the encoder's 224 input, and for a tiny one so that every
//! reduction factor is reached on small inputs). Nothing may panic, and a
//! converted image must be as large as it says. The same bytes also go
//! through the streaming splitter (`MjpegReader`, as the exec and file
//! sources read pipes and files), in reads of a size the input chooses: it
//! must find exactly the frames and errors the in-memory splitter finds.
#![no_main]

use std::cell::RefCell;
use std::io::{self, Read};
use std::time::SystemTime;

use edgeclip::pipeline::convert::{Converter, RgbImage};
use edgeclip::capture::{Frame, PixelFormat};
use edgeclip::capture::mjpeg::{MjpegError, MjpegFrames, MjpegReadError, MjpegReader};
use libfuzzer_sys::fuzz_target;

thread_local! {
    // Reused across inputs, as the capture thread reuses them across frames.
    static STATE: RefCell<([Converter; 3], RgbImage)> = RefCell::new((
        [Converter::new(None), Converter::new(Some(224)), Converter::new(Some(8))],
        RgbImage::new(),
    ));
}

/// Hands out at most `step` bytes a read, as a pipe may.
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

/// The stream read by `MjpegReader` equals the in-memory split. A small
/// frame cap makes the oversized-frame path reachable.
fn reader_matches_iterator(data: &[u8]) {
    let Some((&selector, data)) = data.split_first() else { return };
    let step = 1 + usize::from(selector) * 37;
    let max_frame = 64 + usize::from(selector) * 512;
    let want: Vec<Result<(u64, Vec<u8>), MjpegError>> =
        MjpegFrames::with_max_frame(data, max_frame).map(|r| r.map(|f| (f.offset, f.jpeg.to_vec()))).collect();
    let mut reader = MjpegReader::with_max_frame(Trickle { data, step }, max_frame);
    let mut got = Vec::new();
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => got.push(Ok((f.offset, f.jpeg.to_vec()))),
            Ok(None) => break,
            Err(MjpegReadError::Frame(e)) => got.push(Err(e)),
            Err(MjpegReadError::Io(e)) => panic!("{e}"),
        }
    }
    assert_eq!(got, want, "read {step} bytes at a time");
}

fuzz_target!(|data: &[u8]| {
    reader_matches_iterator(data);
    STATE.with(|state| {
        let (converters, out) = &mut *state.borrow_mut();
        for frame in MjpegFrames::new(data).flatten() {
            let frame = Frame {
                format: PixelFormat::Mjpeg,
                width: 0,
                height: 0,
                stride: 0,
                data: frame.jpeg,
                sequence: 0,
                timestamp: SystemTime::UNIX_EPOCH,
            };
            for conv in converters.iter_mut() {
                if conv.convert(&frame, out).is_ok() {
                    assert!(out.width > 0 && out.height > 0);
                    assert_eq!(out.data.len(), out.width as usize * out.height as usize * 3);
                }
            }
        }
    });
});
