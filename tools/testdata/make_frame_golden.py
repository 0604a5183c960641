#!/usr/bin/env python3
"""Golden frames for src/capture/convert.rs: camera frames in every pixel format and the RGB8 an
independent implementation makes of them (tests/data/frames/, read by tests/convert.rs).

- YUYV, NV12, GREY -> RGB24: ffmpeg's swscale through PyAV, source BT.601 (ITU601) limited range
  (MPEG), output full range, POINT interpolation (each chroma sample serves the pixels it was
  sampled for, as src/capture/convert.rs does), FULL_CHR_H_INT, ACCURATE_RND (see swscale_rgb for
  odd sizes and GREY).
- RGB24: the input itself (what is tested there is the stride).
- JPEG: Pillow's decoder (libjpeg-turbo). The Huffman-less frame is a JPEG written with the standard
  (Annex K) tables with its DHT segments cut out; its golden is Pillow's decode of the original.
- Reduced size (Converter::new(Some(min_side))): the reference full-size RGB above, then the mean of
  each f x f block rounded half up, dropping a last partial block, which is what convert.rs claims to
  do. For JPEG the script also prints how far that is from Pillow's DCT-scaled decode (`draft()`),
  for information only.

- The demo clip (models/tiny-shapes/demo.mjpeg, 640x480 4:2:0): the SHA-256 of Pillow's RGB decode
  of every frame, in `demo-clip.sha256`. JPEG decoding is meant to be bit-exact with libjpeg-turbo
  (vendor/zune-jpeg), and this checks it on 420 real frames without committing them.

The Rust test accepts 2 levels per channel for raw formats (TOLERANCE below) and none for JPEG; for
YUV the script prints the largest difference between the reference and a direct numpy
implementation of the same formulas, as a sanity check on the reference settings.

    tools/.venv/bin/python tools/testdata/make_frame_golden.py --out tests/data/frames
"""

import argparse
import hashlib
import io
import json
import pathlib
import sys

import av
import numpy as np
import PIL
from av.video.reformatter import ColorRange, Colorspace, Interpolation
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "python"))
import bundlelib as bl  # noqa: E402

# Levels per channel the Rust conversion of raw frames may differ from these goldens
# (tests/convert.rs checks that it uses the same number): swscale's and our fixed-point arithmetic
# round differently. JPEG is held to 0: the vendored decoder computes what libjpeg-turbo computes.
TOLERANCE = 2
REPO = pathlib.Path(__file__).resolve().parents[2]
DEMO_CLIP = REPO / "models" / "tiny-shapes" / "demo.mjpeg"
# Bytes in a row's padding beyond the pixels: a value no correct conversion reads.
PAD_BYTE = 0xEE


def scene(width, height, seed):
    """A test picture: gradients, saturated patches, hard edges and a patch of noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), np.float64)
    img[..., 0] = 255 * x / max(width - 1, 1)
    img[..., 1] = 255 * y / max(height - 1, 1)
    img[..., 2] = 127 + 120 * np.sin(x / 3.0 + y / 5.0)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (255, 255, 0)]
    for i, c in enumerate(colours):
        x0, y0 = (i * width) // len(colours), (i % 2) * height // 2
        img[y0 : y0 + height // 4, x0 : x0 + max(width // 8, 2)] = c
    img[x + y > (width + height) // 2 + 10] *= 0.5
    n = img[height // 2 :, width // 2 :]
    n[:] = rng.integers(0, 256, n.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def rgb_to_yuv(rgb):
    """BT.601 limited range Y, U, V planes at full resolution (float)."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return y, u, v


def subsample(plane, fx, fy):
    h, w = plane.shape
    ph, pw = -h % fy, -w % fx
    p = np.pad(plane, ((0, ph), (0, pw)), mode="edge")
    return p.reshape(p.shape[0] // fy, fy, p.shape[1] // fx, fx).mean(axis=(1, 3))


def u8(a):
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def raw_frame(fmt, rgb, stride, seed):
    """The frame's bytes (rows of `stride` bytes, padding PAD_BYTE) and its planes for PyAV."""
    h, w, _ = rgb.shape
    y, u, v = rgb_to_yuv(rgb)
    rng = np.random.default_rng(seed)
    # Random samples anywhere in the legal ranges (Y 16..235, U and V 16..240) make colours outside
    # the RGB cube, which exercises the clamping. Not beyond those ranges: swscale's full-chroma path
    # overflows there (Y 250, U 248 gives blue 0 instead of 255), so it cannot be the reference.
    y, u, v = u8(y), u8(u), u8(v)
    y[: h // 4, : w // 4] = rng.integers(16, 236, y[: h // 4, : w // 4].shape)
    if fmt == "yuyv":
        cu, cv = u8(subsample(u.astype(float), 2, 1)), u8(subsample(v.astype(float), 2, 1))
        cu[: h // 4, : w // 8] = rng.integers(16, 241, cu[: h // 4, : w // 8].shape)
        cw = cu.shape[1]
        yp = np.pad(y, ((0, 0), (0, 2 * cw - w)), constant_values=16)
        packed = np.stack([yp[:, 0::2], cu, yp[:, 1::2], cv], axis=-1).reshape(h, 4 * cw)
        planes = [packed]
    elif fmt == "nv12":
        cu, cv = u8(subsample(u.astype(float), 2, 2)), u8(subsample(v.astype(float), 2, 2))
        cv[: h // 8, : w // 8] = rng.integers(16, 241, cv[: h // 8, : w // 8].shape)
        uv = np.stack([cu, cv], axis=-1).reshape(cu.shape[0], 2 * cu.shape[1])
        planes = [y, uv]
    elif fmt == "grey":
        planes = [y]
    elif fmt == "rgb24":
        planes = [rgb.reshape(h, w * 3)]
    else:
        raise ValueError(fmt)
    data = b""
    for p in planes:
        assert p.shape[1] <= stride, (fmt, p.shape, stride)
        padded = np.full((p.shape[0], stride), PAD_BYTE, np.uint8)
        padded[:, : p.shape[1]] = p
        data += padded.tobytes()
    return data, planes


def swscale_rgb(fmt, planes, w, h):
    """ffmpeg's RGB24 of a raw frame, BT.601 limited range in, full range out.

    swscale is given even sizes: at an odd width its chroma scaler maps 19 chroma samples onto 37
    pixels by ratio rather than one per pair, so the last pixel column (and for NV12 the last row)
    is duplicated, which keeps every chroma sample on the pixels it was sampled for, and the result
    is cropped back. GREY is full range (as the kernel's vivid driver delivers it), which is how
    swscale reads its gray formats whatever range it is told.
    """
    ew, eh = w + w % 2, h + h % 2
    if fmt == "yuyv":
        p = planes[0]
        if w % 2:  # the last macropixel's second luma sample becomes the duplicate of the first
            p = p.copy()
            p[:, -2] = p[:, -4]
        planes, av_format = [p], "yuyv422"
    elif fmt == "nv12":
        y = np.pad(planes[0], ((0, eh - h), (0, ew - w)), mode="edge")
        planes, av_format = [y, planes[1]], "nv12"
    elif fmt == "grey":
        y = np.pad(planes[0], ((0, eh - h), (0, ew - w)), mode="edge")
        planes, av_format = [y], "gray"
    else:
        raise ValueError(fmt)
    frame = av.VideoFrame(ew, eh, av_format)
    for plane, data in zip(frame.planes, planes):
        buf = np.zeros((plane.height, plane.line_size), np.uint8)
        buf[:, : data.shape[1]] = np.pad(data, ((0, plane.height - data.shape[0]), (0, 0)), mode="edge")
        plane.update(buf.tobytes())
    # FULL_CHR_H_INT: swscale's full-chroma output path, whose arithmetic is exact to 1 level (its
    # default path is up to 3 levels off at the range ends); POINT: no chroma interpolation.
    out = frame.reformat(
        format="rgb24",
        src_colorspace=Colorspace.ITU601,
        dst_colorspace=Colorspace.ITU601,
        src_color_range=ColorRange.MPEG,
        dst_color_range=ColorRange.JPEG,
        interpolation=Interpolation.POINT | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND,
    )
    return out.to_ndarray()[:h, :w]


def numpy_rgb(fmt, planes, w, h):
    """The same conversion in float, nearest chroma: a cross-check of the swscale settings."""
    if fmt == "yuyv":
        p = planes[0].astype(np.float64)
        y = np.empty((h, p.shape[1] // 2))
        y[:, 0::2], y[:, 1::2] = p[:, 0::4], p[:, 2::4]
        y = y[:, :w]
        u, v = np.repeat(p[:, 1::4], 2, axis=1)[:, :w], np.repeat(p[:, 3::4], 2, axis=1)[:, :w]
    elif fmt == "nv12":
        y = planes[0].astype(np.float64)
        uv = planes[1].astype(np.float64)
        u = np.repeat(np.repeat(uv[:, 0::2], 2, axis=0), 2, axis=1)[:h, :w]
        v = np.repeat(np.repeat(uv[:, 1::2], 2, axis=0), 2, axis=1)[:h, :w]
    else:
        # GREY: full range, each byte its pixel's R, G and B.
        return np.repeat(planes[0][:h, :w, None], 3, axis=-1)
    c, d, e = (y - 16) * 255 / 219, (u - 128) * 255 / 224, (v - 128) * 255 / 224
    r = c + 1.402 * e
    g = c - 0.344136 * d - 0.714136 * e
    b = c + 1.772 * d
    return u8(np.stack([r, g, b], axis=-1))


def box_reduce(rgb, f):
    """Mean of each f x f block, rounded half up; a last partial block is dropped."""
    h, w, _ = rgb.shape
    oh, ow = h // f, w // f
    blocks = rgb[: oh * f, : ow * f].astype(np.uint32).reshape(oh, f, ow, f, 3).sum(axis=(1, 3))
    return ((blocks + f * f // 2) // (f * f)).astype(np.uint8)


def strip_dht(jpeg):
    """The JPEG without its DHT segments (before the first scan)."""
    out, i = bytearray(jpeg[:2]), 2
    while True:
        marker, length = jpeg[i + 1], int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker == 0xDA:
            return bytes(out + jpeg[i:])
        if marker != 0xC4:
            out += jpeg[i : i + 2 + length]
        i += 2 + length


def pillow_jpeg(rgb, mode="RGB", **save):
    buf = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buf, format="JPEG", **save)
    return buf.getvalue()


def pillow_decode(jpeg, draft=None):
    img = Image.open(io.BytesIO(jpeg))
    if draft:
        img.draft("RGB", draft)
    return np.asarray(img.convert("RGB"))


def clip_hashes(path):
    """One line per frame: index, width, height and the SHA-256 of Pillow's RGB decode."""
    lines = []
    for i, jpeg in enumerate(bl.mjpeg_frames(path.read_bytes())):
        rgb = pillow_decode(jpeg)
        lines.append(f"{i} {rgb.shape[1]} {rgb.shape[0]} {hashlib.sha256(rgb.tobytes()).hexdigest()}")
    return lines


def reduction(w, h, min_side):
    """The factor convert.rs picks (its `reduction`)."""
    if min_side is None:
        return 1
    return next((f for f in (8, 4, 2) if min(w, h) // f >= max(min_side, 1)), 1)


# (name, format, width, height, stride or None for packed, min_side)
RAW_CASES = [
    ("yuyv-64x48", "yuyv", 64, 48, None, None),
    ("yuyv-odd-37x23-stride", "yuyv", 37, 23, 84, None),
    ("yuyv-64x48-reduced-2", "yuyv", 64, 48, None, 24),
    ("nv12-64x48", "nv12", 64, 48, None, None),
    ("nv12-odd-37x23-stride", "nv12", 37, 23, 44, None),
    ("nv12-odd-37x23-reduced-2", "nv12", 37, 23, 40, 11),
    ("nv12-64x48-reduced-4", "nv12", 64, 48, None, 12),
    ("grey-odd-37x23-stride", "grey", 37, 23, 40, None),
    ("rgb24-odd-37x23-stride", "rgb24", 37, 23, 120, None),
]

# (name, width, height, Pillow mode, save options, strip DHT, min_side)
JPEG_CASES = [
    ("jpeg-420-96x64", 96, 64, "RGB", {"quality": 90, "subsampling": 2}, False, None),
    ("jpeg-422-odd-45x29", 45, 29, "RGB", {"quality": 85, "subsampling": 1}, False, None),
    ("jpeg-444-48x32", 48, 32, "RGB", {"quality": 95, "subsampling": 0}, False, None),
    ("jpeg-grey-40x24", 40, 24, "L", {"quality": 90}, False, None),
    ("jpeg-422-restart-64x48", 64, 48, "RGB", {"quality": 80, "subsampling": 1, "restart_marker_blocks": 2}, False, None),
    ("jpeg-422-no-dht-64x48", 64, 48, "RGB", {"quality": 80, "subsampling": 1}, True, None),
    ("jpeg-420-128x96-reduced-2", 128, 96, "RGB", {"quality": 90, "subsampling": 2}, False, 48),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cases = []
    for seed, (name, fmt, w, h, stride, min_side) in enumerate(RAW_CASES):
        rgb = scene(w, h, seed)
        packed = {"yuyv": (w + 1) // 2 * 4, "nv12": w, "grey": w, "rgb24": 3 * w}[fmt]
        stride = stride or packed
        data, planes = raw_frame(fmt, rgb, stride, seed)
        if fmt == "rgb24":
            ref = rgb
        else:
            ref = swscale_rgb(fmt, planes, w, h)
            check = np.abs(ref.astype(int) - numpy_rgb(fmt, planes, w, h)).max()
            print(f"{name}: swscale vs numpy max diff {check}")
            assert check <= 1, "swscale settings do not give BT.601 limited range with nearest chroma"
        f = reduction(w, h, min_side)
        golden = box_reduce(ref, f) if f > 1 else ref
        (args.out / f"{name}.{fmt}").write_bytes(data)
        Image.fromarray(golden).save(args.out / f"{name}.png", optimize=True)
        cases.append({"name": name, "format": fmt, "width": w, "height": h, "stride": stride,
                      "min_side": min_side, "input": f"{name}.{fmt}", "golden": f"{name}.png"})
    for seed, (name, w, h, mode, save, no_dht, min_side) in enumerate(JPEG_CASES, start=100):
        original = pillow_jpeg(scene(w, h, seed), mode, **save)
        jpeg = strip_dht(original) if no_dht else original
        if no_dht:
            assert b"\xff\xc4" not in jpeg[: jpeg.index(b"\xff\xda")]
        ref = pillow_decode(original)
        f = reduction(w, h, min_side)
        golden = box_reduce(ref, f) if f > 1 else ref
        if f > 1:
            draft = pillow_decode(original, draft=(w // f, h // f))[: h // f, : w // f]
            d = np.abs(draft.astype(int) - golden.astype(int))
            print(f"{name}: box-reduced full decode vs Pillow draft() (DCT-scaled): max {d.max()}, mean {d.mean():.2f}")
        (args.out / f"{name}.jpg").write_bytes(jpeg)
        Image.fromarray(golden).save(args.out / f"{name}.png", optimize=True)
        chroma = "grey" if mode == "L" else ["4:4:4", "4:2:2", "4:2:0"][save["subsampling"]]
        cases.append({"name": name, "format": "mjpeg", "width": w, "height": h, "stride": 0,
                      "min_side": min_side, "input": f"{name}.jpg", "golden": f"{name}.png",
                      "dht_stripped": no_dht, "chroma": chroma})
    hashes = clip_hashes(DEMO_CLIP)
    (args.out / "demo-clip.sha256").write_text(
        f"# Pillow's RGB decode of each frame of {DEMO_CLIP.relative_to(REPO)}: index width height sha256\n"
        + "\n".join(hashes) + "\n")
    print(f"demo clip: {len(hashes)} frames hashed")
    manifest = {
        "tolerance": TOLERANCE,
        "generator": "tools/testdata/make_frame_golden.py",
        "versions": {"av": av.__version__, "ffmpeg_libswscale": av.library_versions.get("libswscale"),
                     "pillow": PIL.__version__, "numpy": np.__version__},
        "cases": cases,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{len(cases)} cases, {total} bytes in {args.out}")


if __name__ == "__main__":
    main()
