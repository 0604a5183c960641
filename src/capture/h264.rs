//! H.264 decoding: access units in, NV12 frames out.
//!
//! IP cameras send H.264, and a frame of it is only a difference from the
//! frames before it, so every frame from the last keyframe (IDR) on must be
//! decoded in order even when the pipeline wants one in ten. [`H264Decoder`]
//! wraps OpenH264 (Cisco's decoder, compiled into the binary with its NEON
//! assembly on ARM) and writes each picture as NV12, a format the rest of
//! edgeclip already converts, so an RTSP camera looks to the pipeline like a
//! V4L2 camera that delivers NV12.
//!
//! Two things keep decoding to what is needed: a frame that no other frame
//! refers to (`nal_ref_idc` 0) can be dropped undecoded when the pipeline
//! has no use for it ([`AccessUnit::is_reference`]), and after a loss or a
//! backlog, decoding restarts at the next keyframe instead of decoding
//! frames whose references are gone ([`H264Decoder::resync`]).
//!
//! [`AccessUnits`] splits an Annex B byte stream (a `.h264` file) into the
//! access units an RTSP client delivers one by one, for tests and benches.

use openh264::decoder::{DecodedYUV, Decoder};
use openh264::formats::YUVSource;
use thiserror::Error;

/// The NAL unit types that matter here (ITU-T H.264 table 7-1).
const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SEI: u8 = 6;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// A frame too large for any camera edgeclip serves: OpenH264 itself stops
/// at level 5.2's 36,864 macroblocks (4096×2304); this refuses a corrupt
/// size before a buffer of it is allocated.
const MAX_PIXELS: usize = 4096 * 2304;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the H.264 decoder could not start: {0}")]
    Start(String),
    #[error("a broken H.264 frame was skipped ({0}); decoding resumes at the next keyframe")]
    Corrupt(String),
    #[error("an H.264 frame of {width}x{height} is larger than edgeclip decodes (4096x2304 pixels at most)")]
    TooLarge { width: usize, height: usize },
}

/// One picture as NV12: a Y plane of `height` rows, then `height / 2`
/// (rounded up) rows of interleaved U V, every row `stride` bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Nv12Frame {
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub data: Vec<u8>,
}

/// A view of one access unit (one frame's NAL units, Annex B framed).
#[derive(Debug, Clone, Copy)]
pub struct AccessUnit<'a>(pub &'a [u8]);

impl<'a> AccessUnit<'a> {
    /// The NAL unit headers' first bytes, in order.
    fn nal_headers(self) -> impl Iterator<Item = u8> + 'a {
        nal_units(self.0).filter_map(|n| n.first().copied())
    }

    /// An IDR frame, from which decoding can start.
    pub fn is_keyframe(self) -> bool {
        self.nal_headers().any(|h| h & 0x1F == NAL_IDR)
    }

    /// Whether later frames may refer to this one: any slice with a
    /// non-zero `nal_ref_idc`. A frame without slices counts as one, so that
    /// parameter sets are never dropped.
    pub fn is_reference(self) -> bool {
        let mut slices = self.nal_headers().filter(|h| matches!(h & 0x1F, NAL_SLICE | NAL_IDR)).peekable();
        slices.peek().is_none() || slices.any(|h| h & 0x60 != 0)
    }
}

/// The NAL units of an Annex B buffer, start codes removed.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&next| {
            // The start code before `next`, and a fourth zero byte before it.
            let mut end = next - 3;
            while end > 0 && data[end - 1] == 0 {
                end -= 1;
            }
            end
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts.into_iter().zip(ends).map(move |(s, e)| &data[s..e.max(s)])
}

/// Splits an Annex B stream into access units: a new one begins at an
/// access unit delimiter, a parameter set or SEI after a slice, or a slice
/// whose `first_mb_in_slice` is 0 after a slice (ITU-T H.264 7.4.1.2.3,
/// enough for the streams cameras and encoders write: one picture per
/// access unit, slices in order).
pub struct AccessUnits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> AccessUnits<'a> {
    pub fn new(data: &'a [u8]) -> AccessUnits<'a> {
        AccessUnits { data, pos: 0 }
    }
}

impl<'a> Iterator for AccessUnits<'a> {
    type Item = AccessUnit<'a>;

    fn next(&mut self) -> Option<AccessUnit<'a>> {
        let rest = &self.data[self.pos..];
        let mut seen_slice = false;
        let mut i = 0;
        let mut unit_start = None;
        while i + 3 <= rest.len() {
            if rest[i] != 0 || rest[i + 1] != 0 || rest[i + 2] != 1 {
                i += 1;
                continue;
            }
            // The start code, with a leading zero byte if there is one.
            let code_start = if i > 0 && rest[i - 1] == 0 { i - 1 } else { i };
            let header = rest.get(i + 3).copied().unwrap_or(0);
            let kind = header & 0x1F;
            let first_mb_zero = rest.get(i + 4).is_some_and(|b| b & 0x80 != 0);
            let begins_new = match kind {
                NAL_AUD | NAL_SPS | NAL_PPS | NAL_SEI => seen_slice,
                NAL_SLICE | NAL_IDR => seen_slice && first_mb_zero,
                _ => false,
            };
            if begins_new {
                let end = code_start;
                let unit = &rest[unit_start.unwrap_or(0)..end];
                self.pos += end;
                return Some(AccessUnit(unit));
            }
            unit_start.get_or_insert(code_start);
            if matches!(kind, NAL_SLICE | NAL_IDR) {
                seen_slice = true;
            }
            i += 3;
        }
        self.pos = self.data.len();
        let start = unit_start?;
        Some(AccessUnit(&rest[start..]))
    }
}

/// OpenH264 with the bookkeeping of a live stream: whether decoding waits
/// for a keyframe, and the count of frames it decoded.
pub struct H264Decoder {
    decoder: Decoder,
    waiting_for_keyframe: bool,
    decoded: u64,
}

impl H264Decoder {
    /// A decoder that starts at the first keyframe.
    pub fn new() -> Result<H264Decoder, DecodeError> {
        let decoder = Decoder::new().map_err(|e| DecodeError::Start(e.to_string()))?;
        Ok(H264Decoder { decoder, waiting_for_keyframe: true, decoded: 0 })
    }

    /// Frames decoded so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Whether frames are being skipped until the next keyframe.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.waiting_for_keyframe
    }

    /// After a gap in the stream (lost packets, frames dropped from a
    /// backlog): skip frames until the next keyframe, whose picture does not
    /// depend on the ones lost.
    pub fn resync(&mut self) {
        self.waiting_for_keyframe = true;
    }

    /// Decodes one access unit. Returns whether it gave a picture, which
    /// is then written to `out` if `out` is given (a caller that has no use
    /// for the picture saves the copy). While waiting for a keyframe, other
    /// frames are skipped (`Ok(false)`).
    pub fn decode(&mut self, unit: AccessUnit<'_>, out: Option<&mut Nv12Frame>) -> Result<bool, DecodeError> {
        if self.waiting_for_keyframe {
            if !unit.is_keyframe() {
                return Ok(false);
            }
            self.waiting_for_keyframe = false;
        }
        let picture = match self.decoder.decode(unit.0) {
            Ok(picture) => picture,
            Err(e) => {
                self.waiting_for_keyframe = true;
                return Err(DecodeError::Corrupt(e.to_string()));
            }
        };
        let Some(picture) = picture else { return Ok(false) };
        self.decoded += 1;
        if let Some(out) = out {
            if let Err(e) = write_nv12(&picture, out) {
                self.waiting_for_keyframe = true;
                return Err(e);
            }
        }
        Ok(true)
    }
}

/// Copies a decoded I420 picture into `out` as NV12 (U and V interleaved),
/// reusing `out`'s buffer.
fn write_nv12(picture: &DecodedYUV<'_>, out: &mut Nv12Frame) -> Result<(), DecodeError> {
    let (width, height) = picture.dimensions();
    if width == 0 || height == 0 || width * height > MAX_PIXELS {
        return Err(DecodeError::TooLarge { width, height });
    }
    let (y_stride, u_stride, v_stride) = picture.strides();
    // NV12's rows hold whole U V pairs: an odd width gets a padding byte.
    let stride = width.next_multiple_of(2);
    let chroma_rows = height.div_ceil(2);
    let chroma_width = width.div_ceil(2);
    out.data.clear();
    out.data.resize(stride * (height + chroma_rows), 0);
    let (luma, chroma) = out.data.split_at_mut(stride * height);
    for (row, dst) in luma.chunks_exact_mut(stride).enumerate() {
        dst[..width].copy_from_slice(&picture.y()[row * y_stride..row * y_stride + width]);
    }
    for (row, dst) in chroma.chunks_exact_mut(stride).enumerate() {
        let u = &picture.u()[row * u_stride..row * u_stride + chroma_width];
        let v = &picture.v()[row * v_stride..row * v_stride + chroma_width];
        for ((pair, &u), &v) in dst.chunks_exact_mut(2).zip(u).zip(v) {
            pair[0] = u;
            pair[1] = v;
        }
    }
    out.width = width as u32;
    out.height = height as u32;
    out.stride = stride as u32;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Annex B: a start code, then a NAL header byte and payload.
    fn nal(header: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, header];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn access_units_split_at_new_pictures() {
        // SPS, PPS, IDR (first_mb 0) | slice (first_mb 0), slice (first_mb 1) | AUD, slice
        let stream = [
            nal(0x67, &[0x42]),
            nal(0x68, &[0xCE]),
            nal(0x65, &[0x88, 1]),
            nal(0x41, &[0x9A, 2]),
            nal(0x41, &[0x40, 3]),
            nal(0x09, &[0x10]),
            nal(0x01, &[0x80, 4]),
        ]
        .concat();
        let units: Vec<AccessUnit> = AccessUnits::new(&stream).collect();
        assert_eq!(units.len(), 3);
        assert_eq!(units[0].0, [nal(0x67, &[0x42]), nal(0x68, &[0xCE]), nal(0x65, &[0x88, 1])].concat());
        assert!(units[0].is_keyframe() && units[0].is_reference());
        assert!(!units[1].is_keyframe() && units[1].is_reference());
        assert_eq!(nal_units(units[1].0).count(), 2);
        // nal_ref_idc 0: nothing refers to it.
        assert!(!units[2].is_keyframe() && !units[2].is_reference());
        assert_eq!(nal_units(units[2].0).collect::<Vec<_>>(), [&[0x09, 0x10][..], &[0x01, 0x80, 4]]);
    }

    #[test]
    fn a_decoder_skips_to_the_first_keyframe_and_refuses_garbage() {
        let mut decoder = H264Decoder::new().unwrap();
        let p_frame = nal(0x41, &[0x9A, 1, 2, 3]);
        assert_eq!(decoder.decode(AccessUnit(&p_frame), None), Ok(false));
        assert!(decoder.waiting_for_keyframe());
        // An "IDR" of noise: an error, and waiting for a keyframe again.
        let noise: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let garbage = [nal(0x67, &noise[..20]), nal(0x68, &noise[20..30]), nal(0x65, &noise[30..])].concat();
        let mut out = Nv12Frame::default();
        match decoder.decode(AccessUnit(&garbage), Some(&mut out)) {
            Err(DecodeError::Corrupt(_)) | Ok(false) => {}
            other => panic!("noise decoded: {other:?}"),
        }
        assert_eq!(decoder.decoded(), 0);
    }
}
