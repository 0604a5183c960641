//! Pixel conversion against golden frames from independent implementations
//! (ffmpeg's swscale for YUYV, NV12 and GREY; Pillow's libjpeg-turbo for
//! JPEG; `tools/testdata/make_frame_golden.py`), the Huffman-less MJPEG frames UVC
//! webcams send, broken frames, and allocations once warm.

use std::collections::BTreeMap;
use std::time::SystemTime;

use edgeclip::capture::mjpeg::MjpegFrames;
use edgeclip::capture::still::read_rgb;
use edgeclip::capture::{Frame, PixelFormat};
use edgeclip::pipeline::convert::{reduction, ConvertError, Converter, RgbImage};
use edgeclip::pipeline::jpeg::{missing_dht_before, JpegError};

use crate::support::allocations::count_allocations;
use crate::support::paths::data_dir;

/// Levels per channel a raw-format conversion may differ from the goldens
/// (the script's TOLERANCE): swscale and convert.rs round their fixed-point
/// arithmetic differently (measured: 1). Measured maxima are printed by
/// `matches_golden_frames`.
const TOLERANCE: u8 = 2;

/// JPEG is held to exactly libjpeg-turbo's output (Pillow's decoder): the
/// vendored zune-jpeg (vendor/README.md) computes its IDCT, chroma
/// upsampling and colour conversion. Upstream zune-jpeg was up to 4 levels
/// off on 4:2:0.
const JPEG_TOLERANCE: u8 = 0;

struct Case {
    name: String,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: u32,
    min_side: Option<u32>,
    input: Vec<u8>,
    golden: (u32, u32, Vec<u8>),
    dht_stripped: bool,
}

fn frames_dir() -> std::path::PathBuf {
    data_dir().join("frames")
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(frames_dir().join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest["tolerance"], TOLERANCE as u64, "the script and this test must agree on the tolerance");
    let cases: Vec<Case> = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let format = match c["format"].as_str().unwrap() {
                "yuyv" => PixelFormat::Yuyv,
                "nv12" => PixelFormat::Nv12,
                "grey" => PixelFormat::Grey,
                "rgb24" => PixelFormat::Rgb24,
                "mjpeg" => PixelFormat::Mjpeg,
                other => panic!("unknown format {other:?} in manifest.json"),
            };
            Case {
                name: c["name"].as_str().unwrap().to_string(),
                format,
                width: c["width"].as_u64().unwrap() as u32,
                height: c["height"].as_u64().unwrap() as u32,
                stride: c["stride"].as_u64().unwrap() as u32,
                min_side: c["min_side"].as_u64().map(|m| m as u32),
                input: std::fs::read(frames_dir().join(c["input"].as_str().unwrap())).unwrap(),
                golden: read_rgb(&frames_dir().join(c["golden"].as_str().unwrap())).unwrap(),
                dht_stripped: c["dht_stripped"].as_bool().unwrap_or(false),
            }
        })
        .collect();
    assert!(cases.len() >= 15, "expected the 16 golden frames, found {}", cases.len());
    cases
}

fn frame(format: PixelFormat, width: u32, height: u32, stride: u32, data: &[u8]) -> Frame<'_> {
    Frame { format, width, height, stride, data, sequence: 0, timestamp: SystemTime::UNIX_EPOCH }
}

fn case_frame(c: &Case) -> Frame<'_> {
    frame(c.format, c.width, c.height, c.stride, &c.input)
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0)
}

#[test]
fn matches_golden_frames() {
    // One converter per setting, reused across every size and format, as
    // the capture thread does.
    let mut full = Converter::new(None);
    let mut reduced = BTreeMap::new();
    let mut out = RgbImage::new();
    let mut worst: BTreeMap<String, u8> = BTreeMap::new();
    let mut failures = Vec::new();
    for c in cases() {
        let conv = match c.min_side {
            None => &mut full,
            Some(m) => reduced.entry(m).or_insert_with(|| Converter::new(Some(m))),
        };
        conv.convert(&case_frame(&c), &mut out).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let (gw, gh, golden) = &c.golden;
        assert_eq!((out.width, out.height), (*gw, *gh), "{}: output size", c.name);
        let diff = max_diff(&out.data, golden);
        let off = out.data.iter().zip(golden).filter(|(a, b)| a.abs_diff(**b) > 0).count();
        eprintln!(
            "{}: {}x{} -> {gw}x{gh}, max diff {diff}, {off} of {} values differ",
            c.name,
            c.width,
            c.height,
            golden.len()
        );
        let key = format!("{}{}", c.format, if c.min_side.is_some() { " reduced" } else { "" });
        let w = worst.entry(key).or_default();
        *w = (*w).max(diff);
        let tolerance = if c.format == PixelFormat::Mjpeg { JPEG_TOLERANCE } else { TOLERANCE };
        if diff > tolerance {
            failures.push(format!("{}: max diff {diff}", c.name));
        }
    }
    eprintln!("max difference per format: {worst:?}");
    assert!(failures.is_empty(), "beyond the tolerance: {failures:?}");
}

#[test]
fn the_huffman_less_frame_really_has_no_tables_and_matches_the_original() {
    let cases = cases();
    let c = cases.iter().find(|c| c.dht_stripped).expect("a golden frame without DHT");
    let sos = missing_dht_before(&c.input).expect("the stripped frame has no DHT before its scan");
    assert!(!c.input[..sos].windows(2).any(|w| w == [0xFF, 0xC4]));
    // No AVI1 APP0 either: the decoder would not add the tables by itself.
    assert!(!c.input.windows(4).any(|w| w == b"AVI1"));
    let mut out = RgbImage::new();
    Converter::new(None).convert(&case_frame(c), &mut out).unwrap();
    assert_eq!(max_diff(&out.data, &c.golden.2), JPEG_TOLERANCE, "exact");
}

/// Every frame of the demo clip (420 frames, 640×480, 4:2:0, as a webcam
/// sends) decodes to exactly the RGB that Pillow's libjpeg-turbo makes of it:
/// the golden is the SHA-256 of each of Pillow's frames.
#[test]
fn the_demo_clip_decodes_exactly_like_libjpeg_turbo() {
    let listing = std::fs::read_to_string(frames_dir().join("demo-clip.sha256")).unwrap();
    let expected: Vec<(u32, u32, &str)> = listing
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap(), f[3])
        })
        .collect();
    let clip =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-shapes/demo.mjpeg")).unwrap();
    let mut converter = Converter::new(None);
    let mut out = RgbImage::new();
    let mut differing = Vec::new();
    let mut count = 0;
    for (i, frame) in MjpegFrames::new(&clip).enumerate() {
        let frame = frame.expect("the demo clip has no broken frame");
        let (w, h, hash) = expected[i];
        converter.convert(&frame_of_jpeg(frame.jpeg, w, h), &mut out).unwrap();
        assert_eq!((out.width, out.height), (w, h), "frame {i}");
        if sha256_hex(&out.data) != hash {
            differing.push(i);
        }
        count += 1;
    }
    assert_eq!(count, expected.len(), "frames in the clip and in the listing");
    assert!(differing.is_empty(), "{} of {count} frames differ from Pillow's: {differing:?}", differing.len());
}

fn frame_of_jpeg(data: &[u8], width: u32, height: u32) -> Frame<'_> {
    frame(PixelFormat::Mjpeg, width, height, 0, data)
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Pillow writes the Annex K tables unless asked to optimize them: cutting
/// the DHT out of any of its frames must not change a single decoded byte.
#[test]
fn inserted_tables_decode_exactly_like_the_original_ones() {
    let mut tested = 0;
    for c in cases().iter().filter(|c| c.format == PixelFormat::Mjpeg && !c.dht_stripped) {
        let sos = c.input.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut stripped = c.input[..2].to_vec();
        let mut i = 2;
        while i < sos {
            let len = u16::from_be_bytes([c.input[i + 2], c.input[i + 3]]) as usize;
            if c.input[i + 1] != 0xC4 {
                stripped.extend_from_slice(&c.input[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        stripped.extend_from_slice(&c.input[sos..]);
        assert!(stripped.len() < c.input.len(), "{}: no DHT to strip", c.name);
        let (mut a, mut b) = (RgbImage::new(), RgbImage::new());
        let mut conv = Converter::new(c.min_side);
        conv.convert(&frame(PixelFormat::Mjpeg, 0, 0, 0, &c.input), &mut a).unwrap();
        conv.convert(&frame(PixelFormat::Mjpeg, 0, 0, 0, &stripped), &mut b).unwrap();
        assert_eq!((a.width, a.height), (b.width, b.height));
        assert!(a.data == b.data, "{}: decoded differently without its tables", c.name);
        tested += 1;
    }
    assert!(tested >= 5);
}

#[test]
fn rgb24_padding_is_never_read() {
    let cases = cases();
    let c = cases.iter().find(|c| c.format == PixelFormat::Rgb24).unwrap();
    let mut out = RgbImage::new();
    Converter::new(None).convert(&case_frame(c), &mut out).unwrap();
    // RGB24 is a copy: exact, and no padding byte (0xEE) got in.
    assert_eq!(out.data, c.golden.2);
    assert!(c.input.len() > out.data.len());
}

#[test]
fn reduction_factors_follow_min_side() {
    assert_eq!(reduction(1280, 720, Some(224)), 2);
    assert_eq!(reduction(640, 480, Some(224)), 2);
    let demo =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-shapes/demo.mjpeg")).unwrap();
    let (mut full, mut reduced) = (Converter::new(None), Converter::new(Some(224)));
    let mut out = RgbImage::new();
    let mut n = 0;
    for f in MjpegFrames::new(&demo).take(20) {
        let jpeg = f.unwrap().jpeg;
        full.convert(&frame(PixelFormat::Mjpeg, 0, 0, 0, jpeg), &mut out).unwrap();
        assert_eq!((out.width, out.height), (640, 480));
        reduced.convert(&frame(PixelFormat::Mjpeg, 0, 0, 0, jpeg), &mut out).unwrap();
        assert_eq!((out.width, out.height), (320, 240));
        n += 1;
    }
    assert_eq!(n, 20);
}

fn jpeg_case() -> Case {
    cases().into_iter().find(|c| c.name == "jpeg-420-96x64").unwrap()
}

fn convert_jpeg(data: &[u8]) -> Result<(), ConvertError> {
    let mut out = RgbImage::new();
    let r1 = Converter::new(None).convert(&frame(PixelFormat::Mjpeg, 0, 0, 0, data), &mut out);
    let r2 = Converter::new(Some(8)).convert(&frame(PixelFormat::Mjpeg, 0, 0, 0, data), &mut out);
    assert_eq!(r1, r2);
    r1
}

#[test]
fn broken_jpeg_frames_are_errors() {
    let good = jpeg_case().input;
    assert!(convert_jpeg(&good).is_ok());

    // Cut in half: no end-of-image marker.
    let half = &good[..good.len() / 2];
    assert_eq!(convert_jpeg(half), Err(ConvertError::Jpeg(JpegError::Truncated { len: half.len() })));
    // Cut in half with an end marker put back: zune-jpeg, even in strict
    // mode, decodes the missing half as if the scan went on with zero bits
    // (a known limitation, see jpeg.rs); it must not panic.
    let mut patched = half.to_vec();
    patched.extend_from_slice(&[0xFF, 0xD9]);
    let _ = convert_jpeg(&patched);
    // Headers only.
    let sos = good.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let mut headers = good[..sos].to_vec();
    headers.extend_from_slice(&[0xFF, 0xD9]);
    assert!(convert_jpeg(&headers).is_err());
    // Garbage, empty, and garbage behind a start marker.
    assert_eq!(convert_jpeg(b"definitely not a jpeg"), Err(ConvertError::Jpeg(JpegError::NotJpeg)));
    assert_eq!(convert_jpeg(b""), Err(ConvertError::Jpeg(JpegError::NotJpeg)));
    let mut garbage = vec![0xFF, 0xD8];
    garbage.extend((0..2000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    garbage.extend_from_slice(&[0xFF, 0xD9]);
    assert!(convert_jpeg(&garbage).is_err());
    // The scan's bytes scrambled (the headers intact): an error or a picture,
    // never a panic.
    for step in [3usize, 7, 31] {
        let mut scrambled = good.clone();
        for i in (sos + 20..scrambled.len() - 2).step_by(step) {
            scrambled[i] ^= 0x5A;
        }
        let _ = convert_jpeg(&scrambled);
    }
    // Every prefix of a frame, with and without an end marker.
    for cut in (0..good.len()).step_by(good.len() / 97 + 1) {
        let mut cut_frame = good[..cut].to_vec();
        assert!(convert_jpeg(&cut_frame).is_err(), "prefix of {cut} bytes");
        cut_frame.extend_from_slice(&[0xFF, 0xD9]);
        let _ = convert_jpeg(&cut_frame);
    }
}

#[test]
fn absurd_jpeg_sizes_are_refused_before_decoding() {
    let mut data = jpeg_case().input;
    let sof = data.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    data[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(convert_jpeg(&data), Err(ConvertError::Jpeg(JpegError::TooLarge { width: 65535, height: 65535 })));
}

#[test]
fn raw_frames_with_wrong_sizes_are_errors() {
    let mut out = RgbImage::new();
    let mut conv = Converter::new(None);
    let buf = vec![128u8; 64 * 48 * 2];
    let mut convert = |format, w, h, stride, data: &[u8]| conv.convert(&frame(format, w, h, stride, data), &mut out);

    // Short buffers, each format.
    for (format, stride) in
        [(PixelFormat::Yuyv, 128), (PixelFormat::Nv12, 64), (PixelFormat::Grey, 64), (PixelFormat::Rgb24, 192)]
    {
        let need = format.frame_len(48, stride).unwrap();
        let short = &vec![0u8; need][..need - 1];
        assert_eq!(
            convert(format, 64, 48, stride, short),
            Err(ConvertError::BufferSize {
                format,
                width: 64,
                height: 48,
                stride,
                expected: need as u64,
                actual: need - 1
            })
        );
        assert!(convert(format, 64, 48, stride, &vec![0u8; need]).is_ok());
    }
    // A stride shorter than a row; an odd-width NV12 whose chroma row would
    // run past its stride.
    assert!(matches!(convert(PixelFormat::Yuyv, 64, 48, 127, &buf), Err(ConvertError::Stride { needed: 128, .. })));
    assert!(matches!(convert(PixelFormat::Nv12, 37, 23, 37, &buf), Err(ConvertError::Stride { needed: 38, .. })));
    assert!(matches!(convert(PixelFormat::Rgb24, 64, 16, 0, &buf), Err(ConvertError::Stride { .. })));
    // Empty and absurd sizes.
    assert!(matches!(convert(PixelFormat::Grey, 0, 48, 64, &buf), Err(ConvertError::Empty { .. })));
    assert!(matches!(convert(PixelFormat::Grey, 64, 0, 64, &buf), Err(ConvertError::Empty { .. })));
    assert!(matches!(
        convert(PixelFormat::Grey, u32::MAX, u32::MAX, u32::MAX, &buf),
        Err(ConvertError::TooLarge { .. })
    ));
    assert!(matches!(convert(PixelFormat::Nv12, 16384, 16384, 16384, &buf), Err(ConvertError::BufferSize { .. })));
}

#[test]
fn error_messages_name_the_format_and_the_problem() {
    let e = ConvertError::BufferSize {
        format: PixelFormat::Yuyv,
        width: 640,
        height: 480,
        stride: 1280,
        expected: 614400,
        actual: 4096,
    };
    assert_eq!(
        e.to_string(),
        "YUYV frame of 640x480 with 1280-byte rows needs 614400 bytes, but the buffer holds 4096"
    );
    let e = ConvertError::Jpeg(JpegError::Truncated { len: 5000 });
    assert_eq!(e.to_string(), "MJPG frame ends without an end-of-image marker (cut off after 5000 bytes)");
    let e = ConvertError::Stride { format: PixelFormat::Nv12, width: 37, stride: 37, needed: 38 };
    assert_eq!(e.to_string(), "NV12 frame 37 pixels wide needs rows of at least 38 bytes, but its stride is 37");
}

#[test]
fn no_allocations_once_warm() {
    let mut worst = BTreeMap::new();
    for c in cases() {
        let settings = if c.min_side.is_some() { vec![None, c.min_side] } else { vec![None] };
        for min_side in settings {
            let mut conv = Converter::new(min_side);
            let mut out = RgbImage::new();
            let frame = case_frame(&c);
            conv.convert(&frame, &mut out).unwrap();
            conv.convert(&frame, &mut out).unwrap();
            let n = count_allocations(|| conv.convert(&frame, &mut out).unwrap());
            eprintln!("{} (min_side {min_side:?}): {n} allocations", c.name);
            let e = worst.entry(c.format.to_string()).or_insert(0);
            *e = (*e).max(n);
            if c.format != PixelFormat::Mjpeg {
                assert_eq!(n, 0, "{}: {n} allocations per frame once warm", c.name);
            }
        }
    }
    eprintln!("allocations per frame once warm, worst per format: {worst:?}");
    // zune-jpeg allocates its own buffers for every frame, whatever its size
    // (measured: 2 for greyscale, 4 for 4:4:4, 17 for 4:2:0 and 4:2:2, the
    // upsampler's scratch rows); per-row or per-block allocation would be
    // hundreds and fails here.
    assert!(worst["MJPG"] <= 24, "{worst:?}");
}
