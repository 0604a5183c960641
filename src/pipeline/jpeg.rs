//! JPEG decoding for MJPEG frames: zune-jpeg, plus the Huffman tables that
//! UVC webcams leave out.
//!
//! The decoder is `zune-jpeg` (pure Rust, already in the tree through
//! `image`, no threads, fuzzed upstream), vendored with a patch that makes it
//! decode exactly what libjpeg-turbo decodes (vendor/README.md). It
//! was measured against `jpeg-decoder` 0.3, the one pure-Rust decoder with DCT
//! scaling (`Decoder::scale`), on the same 640×480 and 1280×720 frames: zune
//! decodes the full frame in 2.4 and 8.2 ms with 4 allocations (17 for
//! subsampled chroma), where jpeg-decoder takes 3.5 and 11.6 ms *at half
//! size* with 1,200 to 1,800 allocations and a worker thread per colour
//! component started for every frame. So full-size decoding with zune is both faster and quieter than
//! DCT-scaled decoding with the alternative; the reduced size the encoder
//! asks for is then made by [`super::convert`] with a box filter.
//!
//! MJPEG frames from UVC webcams usually carry no DHT segment: the camera
//! assumes the standard tables of JPEG Annex K.3 (the AVI1 convention).
//! zune-jpeg supplies them only when the frame has an `AVI1` APP0 segment,
//! which many cameras do not write, so [`JpegDecoder`] looks for a DHT before
//! the first scan and, when there is none, decodes a copy of the frame with
//! the Annex K tables inserted before the start of scan (a reused buffer: no
//! allocation once warm).
//!
//! The decoder runs in strict mode: a marker inside the entropy-coded data is
//! an error, and a frame without its end-of-image marker (cut off by the
//! camera or the stream) is refused before decoding. What zune-jpeg does not
//! catch, even in strict mode: a scan that runs out of data right before an
//! end marker (a frame with its middle lost) decodes as if the rest of the
//! scan were zero bits, a picture garbled from there on, not an error.
//!
//! Accuracy against libjpeg-turbo (tests/convert.rs, Pillow's decoder):
//! identical, byte for byte, on every golden frame (greyscale, 4:4:4, 4:2:2
//! with and without restart markers or Huffman tables, 4:2:0) and on all 420
//! frames of the demo clip. (Those timings above are upstream's hand-written
//! SIMD; the exact version takes about twice as long on x86, see
//! vendor/README.md.)

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

/// Largest JPEG accepted, per side. 4096 covers every UVC camera (4K is
/// 3840×2160); a corrupt header claiming 65535×65535 is refused before
/// anything is allocated for it.
pub const MAX_JPEG_SIDE: u32 = 4096;

/// Why a JPEG frame cannot be decoded; `convert` wraps it into a
/// `ConvertError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    #[error("does not start with a JPEG start-of-image marker")]
    NotJpeg,
    #[error("ends without an end-of-image marker (cut off after {len} bytes)")]
    Truncated { len: usize },
    #[error("is {width}x{height}, larger than {MAX_JPEG_SIDE} pixels on a side")]
    TooLarge { width: u32, height: u32 },
    #[error("{0}")]
    Decode(String),
}

/// The standard Huffman tables of JPEG Annex K.3 (K.3.3.1 and K.3.3.2), as
/// (class and id, 16 code counts, symbols).
const ANNEX_K_TABLES: [(u8, [u8; 16], &[u8]); 4] = [
    // Luminance DC (table K.3).
    (0x00, [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    // Chrominance DC (table K.4).
    (0x01, [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    // Luminance AC (table K.5).
    (
        0x10,
        [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D],
        &[
            0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
            0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72,
            0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37,
            0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
            0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83,
            0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3,
            0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
            0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
            0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
        ],
    ),
    // Chrominance AC (table K.6).
    (
        0x11,
        [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
        &[
            0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22,
            0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1,
            0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36,
            0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
            0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A,
            0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A,
            0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA,
            0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
            0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
        ],
    ),
];

/// Appends one DHT segment holding the four Annex K tables.
fn push_annex_k_dht(out: &mut Vec<u8>) {
    let len: usize = 2 + ANNEX_K_TABLES.iter().map(|(_, _, symbols)| 17 + symbols.len()).sum::<usize>();
    out.extend_from_slice(&[0xFF, 0xC4]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for (class_id, counts, symbols) in ANNEX_K_TABLES {
        out.push(class_id);
        out.extend_from_slice(&counts);
        out.extend_from_slice(symbols);
    }
}

/// What the marker segments before the first scan say, read without
/// decoding.
#[derive(Debug, Default, PartialEq, Eq)]
struct Headers {
    /// Offset of the first start-of-scan marker.
    sos: Option<usize>,
    /// Whether a DHT segment comes before it.
    dht: bool,
    /// Width and height from the frame header (SOFn).
    size: Option<(u32, u32)>,
}

/// Walks the segments from SOI to the first scan; stops early, with what it
/// has, where they cannot be walked (the decoder then reports what is wrong).
fn headers(jpeg: &[u8]) -> Headers {
    let mut h = Headers::default();
    let mut i = 2;
    let u16_at = |i: usize| Some(u16::from_be_bytes([*jpeg.get(i)?, *jpeg.get(i + 1)?]));
    loop {
        // Fill bytes (FF FF ...) may precede a marker.
        while jpeg.get(i) == Some(&0xFF) && jpeg.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let (Some(0xFF), Some(&marker)) = (jpeg.get(i), jpeg.get(i + 1)) else { return h };
        match marker {
            0xDA => {
                h.sos = Some(i);
                return h;
            }
            0xD9 => return h,
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                let Some(len) = u16_at(i + 2).map(usize::from).filter(|&l| l >= 2) else { return h };
                match marker {
                    0xC4 => h.dht = true,
                    // SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC):
                    // precision, height, width.
                    0xC0..=0xCF if !matches!(marker, 0xC8 | 0xCC) => {
                        if let (Some(height), Some(width)) = (u16_at(i + 5), u16_at(i + 7)) {
                            h.size = Some((width as u32, height as u32));
                        }
                    }
                    _ => {}
                }
                i += 2 + len;
            }
        }
    }
}

/// Where the frame's first start-of-scan marker is, when no DHT segment
/// comes before it; `None` when the frame has its own tables, or when its
/// segments cannot be walked to a scan.
pub fn missing_dht_before(jpeg: &[u8]) -> Option<usize> {
    let h = headers(jpeg);
    if h.dht {
        None
    } else {
        h.sos
    }
}

/// Decodes JPEG frames to packed RGB8, keeping its scratch buffer (for
/// frames that need the standard tables inserted) between frames.
#[derive(Debug, Default)]
pub struct JpegDecoder {
    with_tables: Vec<u8>,
}

impl JpegDecoder {
    pub fn new() -> JpegDecoder {
        JpegDecoder::default()
    }

    /// Decodes `jpeg` into `out` (resized to width × height × 3) and returns
    /// the width and height.
    pub fn decode(&mut self, jpeg: &[u8], out: &mut Vec<u8>) -> Result<(u32, u32), JpegError> {
        if !jpeg.starts_with(&[0xFF, 0xD8]) {
            return Err(JpegError::NotJpeg);
        }
        // A frame the camera cut off (a dropped USB packet) has no EOI; some
        // drivers pad the buffer with zeros after it.
        let end = jpeg.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        if !jpeg[..end].ends_with(&[0xFF, 0xD9]) {
            return Err(JpegError::Truncated { len: jpeg.len() });
        }
        let jpeg = &jpeg[..end];
        let headers = headers(jpeg);
        if let Some((width, height)) = headers.size {
            if width > MAX_JPEG_SIDE || height > MAX_JPEG_SIDE {
                return Err(JpegError::TooLarge { width, height });
            }
        }
        let data = match headers.sos.filter(|_| !headers.dht) {
            Some(sos) => {
                self.with_tables.clear();
                self.with_tables.extend_from_slice(&jpeg[..sos]);
                push_annex_k_dht(&mut self.with_tables);
                self.with_tables.extend_from_slice(&jpeg[sos..]);
                &self.with_tables[..]
            }
            None => jpeg,
        };
        let options = DecoderOptions::default()
            .set_strict_mode(true)
            .set_max_width(MAX_JPEG_SIDE as usize)
            .set_max_height(MAX_JPEG_SIDE as usize)
            .jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), options);
        decoder.decode_headers().map_err(|e| JpegError::Decode(e.to_string()))?;
        let (width, height) = decoder.dimensions().ok_or_else(|| JpegError::Decode("no frame header".into()))?;
        let len = decoder.output_buffer_size().ok_or_else(|| JpegError::Decode("no frame header".into()))?;
        if decoder.output_colorspace() != Some(ColorSpace::RGB) || len != width * height * 3 {
            return Err(JpegError::Decode(format!(
                "colour space {:?} cannot be decoded to RGB",
                decoder.input_colorspace()
            )));
        }
        out.resize(len, 0);
        decoder.decode_into(out).map_err(|e| JpegError::Decode(e.to_string()))?;
        Ok((width as u32, height as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_k_tables_have_as_many_symbols_as_codes() {
        for (_, counts, symbols) in ANNEX_K_TABLES {
            assert_eq!(counts.iter().map(|&c| c as usize).sum::<usize>(), symbols.len());
        }
        let mut dht = Vec::new();
        push_annex_k_dht(&mut dht);
        // 2 marker bytes + the length, which counts itself: 0x01A2 = 418,
        // the size of the DHT every MJPEG-to-JPEG converter inserts.
        assert_eq!(dht.len(), 2 + 418);
        assert_eq!(&dht[2..4], &[0x01, 0xA2]);
    }

    #[test]
    fn finds_the_scan_only_when_no_table_precedes_it() {
        let without = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0, 0, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9];
        assert_eq!(missing_dht_before(&without), Some(8));
        let with = [0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x02, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9];
        assert_eq!(missing_dht_before(&with), None);
        assert_eq!(missing_dht_before(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]), None);
    }

    #[test]
    fn reads_the_size_from_the_frame_header() {
        // SOF0: length 11, precision 8, height 0x01E0, width 0x0280, 1 component.
        let sof = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0x01, 0xE0, 0x02, 0x80, 1, 1, 0x11, 0, 0xFF, 0xDA];
        assert_eq!(headers(&sof), Headers { sos: Some(15), dht: false, size: Some((640, 480)) });
    }
}
