#!/usr/bin/env python3
"""Write the deterministic synthetic sample images of tests/data/images/.

  tools/.venv/bin/python tools/testdata/make_test_images.py [--out tests/data/images]

Each image exercises a different preprocessing case (CLIP: shortest edge -> 224, center crop):
  landscape-640x480.png  shapes on a gradient; shrink, crop the long (horizontal) edge
  portrait-480x640.png   gradients and bands; shrink, crop the long (vertical) edge
  odd-333x517.png        texture + mild noise; odd sizes: long edge int(224*517/333)=347, odd crop offset
  small-150x100.png      stripes and a checkerboard; upscaled (bicubic overshoot/clamping)
  smoke-640x480.jpg      the landscape scene as a JPEG (quality 85) for a CLI smoke test
Only numpy and Pillow drawing primitives; fixed seeds; no text (fonts differ between machines).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]


def gradient(w: int, h: int, c0, c1, vertical: bool) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h if vertical else w)[:, None] if vertical else np.linspace(0.0, 1.0, w)[None, :]
    t = np.broadcast_to(t, (h, w))[..., None]
    return (np.asarray(c0, float) * (1 - t) + np.asarray(c1, float) * t)


def landscape() -> Image.Image:
    w, h = 640, 480
    sky = gradient(w, h, (90, 150, 230), (235, 240, 250), vertical=True)
    img = Image.fromarray(np.clip(sky + 0.5, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.rectangle([0, 330, w, h], fill=(70, 130, 60))                    # ground
    d.ellipse([480, 40, 580, 140], fill=(250, 210, 60))               # sun
    d.polygon([(60, 330), (200, 150), (340, 330)], fill=(120, 110, 100))  # mountain
    d.polygon([(260, 330), (420, 110), (600, 330)], fill=(95, 90, 85))
    d.rectangle([90, 250, 230, 360], fill=(180, 60, 50), outline=(30, 20, 20), width=3)  # house
    d.polygon([(80, 250), (160, 190), (240, 250)], fill=(110, 40, 30))
    d.rectangle([140, 300, 175, 360], fill=(60, 40, 30))
    d.rectangle([380, 360, 560, 420], fill=(240, 240, 235), outline=(20, 20, 20), width=2)  # van
    d.rectangle([540, 375, 600, 420], fill=(200, 200, 210), outline=(20, 20, 20), width=2)
    for cx in (420, 570):
        d.ellipse([cx - 18, 405, cx + 18, 441], fill=(25, 25, 25))
    for i in range(12):                                                # fence posts: fine detail
        x = 20 + 50 * i
        d.line([(x, 430), (x, 470)], fill=(140, 100, 60), width=4)
    d.line([(0, 445), (w, 445)], fill=(140, 100, 60), width=3)
    return img


def portrait() -> Image.Image:
    w, h = 480, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot(xx - w * 0.35, yy - h * 0.4) / np.hypot(w, h)
    a = np.empty((h, w, 3))
    a[..., 0] = 255 * (1 - r * 1.6)
    a[..., 1] = 255 * (xx / (w - 1))
    a[..., 2] = 255 * (yy / (h - 1))
    bands = ((yy // 40) % 2 == 0) & (xx > w * 0.7)
    a[bands] = a[bands] * 0.4
    img = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse([60, 420, 260, 620], outline=(255, 255, 255), width=6)
    d.rectangle([300, 80, 440, 220], fill=(20, 20, 20))
    d.line([(0, 0), (w - 1, h - 1)], fill=(255, 255, 0), width=2)
    return img


def odd() -> Image.Image:
    w, h = 333, 517
    rng = np.random.default_rng(333517)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.empty((h, w, 3))
    a[..., 0] = 128 + 100 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    a[..., 1] = 128 + 90 * np.sin((xx + yy) / 5.0)
    checker = (((xx // 16) + (yy // 16)) % 2) * 160 + 40
    a[..., 2] = checker
    # grey noise in 3x3 blocks, in the lower half only: texture for the resize, yet a small PNG
    noise = rng.normal(0.0, 10.0, size=(h // 3 + 1, w // 3 + 1)).round().repeat(3, 0).repeat(3, 1)[:h, :w]
    a[h // 2:] += noise[h // 2:, :, None]
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "RGB")


def small() -> Image.Image:
    w, h = 150, 100
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[..., 0] = np.where((xx // 3) % 2 == 0, 230, 20)               # 3 px vertical stripes
    a[..., 1] = np.where(((xx // 10) + (yy // 10)) % 2 == 0, 200, 40)  # checkerboard
    a[..., 2] = (255 * yy / (h - 1)).astype(np.uint8)
    a[40:60, 60:90] = (255, 255, 255)                                # hard-edged block: overshoot
    a[45:55, 70:80] = (0, 0, 0)
    return Image.fromarray(a, "RGB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "tests" / "data" / "images"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = {
        "landscape-640x480.png": landscape(),
        "portrait-480x640.png": portrait(),
        "odd-333x517.png": odd(),
        "small-150x100.png": small(),
    }
    for name, img in images.items():
        img.save(out / name, format="PNG", optimize=True)
    images["landscape-640x480.png"].save(out / "smoke-640x480.jpg", format="JPEG", quality=85,
                                          subsampling="4:2:0", optimize=True)
    total = 0
    for p in sorted(out.iterdir()):
        if p.suffix in (".png", ".jpg"):
            total += p.stat().st_size
            print(f"{p.name:24s} {p.stat().st_size:>9,d} bytes", file=sys.stderr)
    print(f"{'total':24s} {total:>9,d} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
