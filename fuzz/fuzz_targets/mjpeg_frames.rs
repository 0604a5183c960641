//! Fuzzes the MJPEG stream splitter and the frame converter behind it, the
//! path every byte from a camera command or a recording takes: arbitrary
//! bytes are split into frames, and each frame is converted at full size and
//! reduced (for the encoder's 224 input, and for a tiny one so that every
//! reduction factor is reached on small inputs). Nothing may panic, and a
//! converted image must be as large as it says.
#![no_main]

use std::cell::RefCell;
use std::time::SystemTime;

use edgeclip::capture::convert::{Converter, RgbImage};
use edgeclip::capture::{Frame, PixelFormat};
use edgeclip::mjpeg::MjpegFrames;
use libfuzzer_sys::fuzz_target;

thread_local! {
    // Reused across inputs, as the capture thread reuses them across frames.
    static STATE: RefCell<([Converter; 3], RgbImage)> = RefCell::new((
        [Converter::new(None), Converter::new(Some(224)), Converter::new(Some(8))],
        RgbImage::new(),
    ));
}

fuzz_target!(|data: &[u8]| {
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
