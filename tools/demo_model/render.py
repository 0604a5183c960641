#!/usr/bin/env python3
"""Seeded, deterministic scene renderer + caption generator for the tiny-shapes demo CLIP.

A scene is 0-3 coloured shapes on a background (flat, noise, gradient, texture or clutter), with
lighting, blur and JPEG-noise augmentation. Each scene comes with a caption ("two small blue
squares on a noisy background", "an empty grey scene"). Everything is a pure function of
(seed, index, difficulty): `render_scene(seed, idx)` always returns the same pixels and caption.

HELD_OUT colour x shape pairs never appear in a training scene (so never in a training caption);
eval sets use them to measure zero-shot generalisation.

CLI:
  render.py sample --out DIR [--n 16] [--seed 0] [--difficulty 1.0]     # look at training scenes
  render.py eval-set --out DIR [--per-label 40] [--seed 1000]             # labelled folder
  render.py demo-clip --out models/tiny-shapes/demo.mjpeg                # the demo clip + truth
  render.py hard-clip --out tests/data/hard/hard.mjpeg                    # two zones, distractors + truths
  render.py bench [--n 200]                                               # render speed

eval-set folder format:
  DIR/<colour>-<shape>/NNNN.png    one image per file, the folder name is the label
  DIR/labels.txt                   "<colour>-<shape>: a <colour> <shape>" per label (edgeclip labels format)
  DIR/manifest.json                {"seed", "labels": [{"name","colour","shape","held_out","prompt"}],
                                    "images": [{"file","label","colour","shape","held_out"}]}
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 224

COLOURS = {  # name -> base RGB
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "purple": (130, 40, 180),
    "pink": (250, 120, 190),
    "white": (245, 245, 245),
}
SHAPES = ["circle", "square", "triangle", "star", "hexagon", "cross", "heart", "diamond"]
PLURAL = {s: (s + "es" if s.endswith("s") else s + "s") for s in SHAPES}

# Latin-square hold-out: every colour and every shape appears in exactly one held-out pair.
HELD_OUT = {
    ("red", "star"), ("orange", "hexagon"), ("yellow", "cross"), ("green", "heart"),
    ("blue", "diamond"), ("purple", "circle"), ("pink", "square"), ("white", "triangle"),
}
# A 16-label eval set: the 8 held-out pairs + 8 seen pairs; each colour on 2 shapes, each shape in
# 2 colours, so neither colour nor shape alone solves it.
EVAL_SEEN = [
    ("red", "circle"), ("orange", "square"), ("yellow", "triangle"), ("green", "star"),
    ("blue", "hexagon"), ("purple", "cross"), ("pink", "heart"), ("white", "diamond"),
]
COLOURS_ORDER = list(COLOURS)
EVAL_LABELS = EVAL_SEEN + sorted(HELD_OUT, key=lambda p: COLOURS_ORDER.index(p[0]))

NUM_WORDS = {1: "one", 2: "two", 3: "three"}
BG_WORDS = {"flat": ["plain", "flat"], "noise": ["noisy", "grainy"], "gradient": ["gradient", "shaded"],
            "texture": ["striped", "patterned", "textured"], "clutter": ["cluttered", "busy", "messy"]}
GREY_NAMES = [("black", 20), ("dark grey", 70), ("grey", 128), ("light grey", 190)]


def rng_for(seed: int, idx: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, idx, stream])


# ------------------------------------------------------------------------------------------------
# shapes: polygon point lists in unit coordinates (radius 1, centred at 0)
# ------------------------------------------------------------------------------------------------

def _regular(n, phase=0.0):
    return [(math.cos(phase + 2 * math.pi * k / n), math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]


def _star():
    pts = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.42
        a = -math.pi / 2 + math.pi * k / 5
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _heart():
    pts = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x / 17.0, (y + 2.5) / 17.0))
    return pts


def _cross():
    a = 0.34
    return [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)]


UNIT = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": [(0, -1.0), (0.95, 0.72), (-0.95, 0.72)],
    "star": _star(),
    "hexagon": _regular(6),
    "cross": _cross(),
    "heart": _heart(),
    "diamond": [(0, -1.0), (0.62, 0), (0, 1.0), (-0.62, 0)],
}
# max rotation (degrees) that keeps a shape's identity (square vs diamond, cross vs "x")
MAX_ROT = {"circle": 0, "square": 12, "triangle": 25, "star": 180, "hexagon": 180, "cross": 12,
           "heart": 20, "diamond": 10}


def shape_polygon(shape, cx, cy, r, rot_deg):
    a = math.radians(rot_deg)
    ca, sa = math.cos(a), math.sin(a)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in UNIT[shape]]


def jitter_colour(rng, name):
    base = np.array(COLOURS[name], dtype=np.float32)
    c = base + rng.normal(0, 12, 3)
    c *= rng.uniform(0.85, 1.1)
    return tuple(int(v) for v in np.clip(c, 0, 255))


# ------------------------------------------------------------------------------------------------
# backgrounds
# ------------------------------------------------------------------------------------------------

def _bg_colour(rng):
    """A muted background colour (never a saturated shape colour), with its caption name if grey."""
    if rng.random() < 0.5:
        name, v = GREY_NAMES[rng.integers(len(GREY_NAMES))]
        v = int(np.clip(v + rng.normal(0, 8), 0, 255))
        return (v, v, v), name
    base = rng.uniform(40, 200)
    tint = rng.normal(0, 18, 3)
    return tuple(int(x) for x in np.clip(base + tint, 0, 255)), None


def render_background(rng, kind):
    col, grey_name = _bg_colour(rng)
    if kind == "flat":
        arr = np.empty((SIZE, SIZE, 3), np.float32)
        arr[:] = col
    elif kind == "noise":
        arr = np.empty((SIZE, SIZE, 3), np.float32)
        arr[:] = col
        arr += rng.normal(0, rng.uniform(8, 30), (SIZE, SIZE, 1 if rng.random() < 0.5 else 3))
    elif kind == "gradient":
        col2, _ = _bg_colour(rng)
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
        t = (xx * math.cos(a) + yy * math.sin(a))
        t = (t - t.min()) / (t.max() - t.min() + 1e-6)
        arr = (1 - t)[..., None] * np.array(col, np.float32) + t[..., None] * np.array(col2, np.float32)
        grey_name = None
    elif kind == "texture":
        col2 = np.clip(np.array(col, np.float32) + rng.choice([-1, 1]) * rng.uniform(20, 50), 0, 255)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
        period = rng.uniform(6, 24)
        if rng.random() < 0.5:  # stripes
            a = rng.uniform(0, math.pi)
            m = (np.sin((xx * math.cos(a) + yy * math.sin(a)) * 2 * math.pi / period) > 0)
        else:  # checker
            m = ((xx // period).astype(int) + (yy // period).astype(int)) % 2 == 0
        arr = np.where(m[..., None], np.array(col, np.float32), col2)
    elif kind == "clutter":
        img = Image.new("RGB", (SIZE, SIZE), col)
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(6, 20))):
            v = np.clip(np.array(col, np.float32) + rng.normal(0, 45) + rng.normal(0, 8, 3), 0, 255)
            c = tuple(int(x) for x in v)  # clutter stays near the background hue: low saturation
            x0, y0 = rng.uniform(0, SIZE, 2)
            if rng.random() < 0.6:
                x1, y1 = x0 + rng.normal(0, 50), y0 + rng.normal(0, 50)
                d.line([(x0, y0), (x1, y1)], fill=c, width=int(rng.integers(1, 4)))
            else:
                rr = rng.uniform(2, 8)
                d.ellipse([x0 - rr, y0 - rr, x0 + rr, y0 + rr], fill=c)
        arr = np.asarray(img, np.float32)
        grey_name = None
    else:
        raise ValueError(kind)
    return arr, grey_name


# ------------------------------------------------------------------------------------------------
# scenes
# ------------------------------------------------------------------------------------------------

BG_KINDS = ["flat", "noise", "gradient", "texture", "clutter"]


def sample_objects(rng, difficulty, allow_held_out=False, n=None):
    """List of (colour, shape, size_word, radius)."""
    if n is None:
        # difficulty 0: mostly one big shape; 1: 0-3 shapes
        p1 = 0.85 - 0.40 * difficulty
        p0 = 0.05
        rest = 1 - p1 - p0
        n = int(rng.choice(4, p=[p0, p1, rest * 0.6, rest * 0.4]))
    objs = []
    for _ in range(n):
        while True:
            c = COLOURS_ORDER[rng.integers(len(COLOURS_ORDER))]
            s = SHAPES[rng.integers(len(SHAPES))]
            if allow_held_out or (c, s) not in HELD_OUT:
                break
        small = rng.random() < (0.15 + 0.35 * difficulty) * (1.0 if n == 1 else 1.4)
        if small:
            r = rng.uniform(18, 32)
        else:
            r = rng.uniform(40, 75 if n == 1 else 55)
        objs.append((c, s, "small" if small else "large", r))
    return objs


def _place(rng, objs):
    placed = []
    for c, s, sw, r in objs:
        for _ in range(30):
            cx, cy = rng.uniform(r + 2, SIZE - r - 2, 2)
            if all(math.hypot(cx - px, cy - py) > 0.8 * (r + pr) for _, _, _, pr, px, py in placed):
                break
        placed.append((c, s, sw, r, cx, cy))
    return placed


def paste_shape(img, rgb, shape, cx, cy, r, rot):
    """Paints one shape of radius r centred at (cx, cy), antialiased: drawn at 2x on a mask, which is
    then scaled down and used to paste a flat patch of colour `rgb`."""
    S2 = 2
    box = int(math.ceil(r * 1.1)) + 2
    x0, y0 = int(cx) - box, int(cy) - box
    w = 2 * box
    m = Image.new("L", (w * S2, w * S2), 0)
    md = ImageDraw.Draw(m)
    lx, ly = (cx - x0) * S2, (cy - y0) * S2
    if shape == "circle":
        md.ellipse([lx - r * S2, ly - r * S2, lx + r * S2, ly + r * S2], fill=255)
    else:
        md.polygon(shape_polygon(shape, lx, ly, r * S2, rot), fill=255)
    img.paste(Image.new("RGB", (w, w), rgb), (x0, y0), m.resize((w, w), Image.BILINEAR))


def draw_objects(rng, arr, placed):
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    for c, s, sw, r, cx, cy in placed:
        col = jitter_colour(rng, c)
        # a circle draws no rotation, so that the random stream stays as it always was
        rot = 0.0 if s == "circle" else rng.uniform(-MAX_ROT[s], MAX_ROT[s])
        paste_shape(img, col, s, cx, cy, r, rot)
    return img


def augment(rng, img, difficulty):
    arr = np.asarray(img, np.float32)
    # lighting: global gain + a linear light gradient
    gain = rng.uniform(0.75, 1.2)
    a = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE - 0.5
    grad = 1 + rng.uniform(0, 0.35) * (xx * math.cos(a) + yy * math.sin(a))
    arr = arr * (gain * grad)[..., None]
    if rng.random() < 0.3:
        arr = arr + rng.normal(0, rng.uniform(2, 10), arr.shape).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.6 + 1.2 * difficulty)))
    if rng.random() < 0.4:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(25, 90)))
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def caption(rng, placed, bg_kind, grey_name):
    bgw = BG_WORDS[bg_kind][rng.integers(len(BG_WORDS[bg_kind]))]
    if not placed:
        opts = ["an empty scene", f"an empty {bgw} scene", f"nothing on a {bgw} background",
                "an empty background"]
        if grey_name:
            opts += [f"an empty {grey_name} scene", f"a plain {grey_name} background"]
        return opts[rng.integers(len(opts))]
    # group identical (colour, shape); size word only when the whole group shares it
    groups = {}
    for c, s, sw, *_ in placed:
        groups.setdefault((c, s), []).append(sw)
    parts = []
    use_size = rng.random() < 0.4
    for (c, s), sizes in groups.items():
        n = len(sizes)
        size = (sizes[0] + " ") if (use_size and len(set(sizes)) == 1) else ""
        if n == 1:
            phrase = f"{size}{c} {s}"
            parts.append(f"{_article(phrase)} {phrase}")
        else:
            parts.append(f"{NUM_WORDS[n]} {size}{c} {PLURAL[s]}")
    rng.shuffle(parts)
    body = parts[0] if len(parts) == 1 else (", ".join(parts[:-1]) + " and " + parts[-1])
    r = rng.random()
    if r < 0.45:
        return body
    if r < 0.65:
        return f"{body} on a {bgw} background"
    if r < 0.8 and grey_name:
        return f"{body} on {grey_name}"
    if r < 0.9:
        return f"a picture of {body}"
    return f"a photo of {body}"


def render_scene(seed, idx, difficulty=1.0, allow_held_out=False, force=None):
    """-> (PIL RGB 224x224, caption str, key str).  key = canonical content (same key = same meaning).

    force=(colour, shape): the scene holds exactly that one shape (used by the trainer's
    "shape-hard" batch groups: several scenes of one colour with different shapes)."""
    rng = rng_for(seed, idx)
    # backgrounds get harder with difficulty: clutter/texture only later
    w = np.array([1.0, 1.0, 1.0, 0.2 + 0.8 * difficulty, 0.1 + 0.9 * difficulty])
    bg_kind = BG_KINDS[rng.choice(5, p=w / w.sum())]
    arr, grey_name = render_background(rng, bg_kind)
    if force is not None:
        objs = sample_objects(rng, difficulty, allow_held_out, n=1)
        objs = [(force[0], force[1], objs[0][2], objs[0][3])]
    else:
        objs = sample_objects(rng, difficulty, allow_held_out)
    placed = _place(rng, objs)
    img = draw_objects(rng, arr, placed)
    img = augment(rng, img, difficulty)
    cap = caption(rng, placed, bg_kind, grey_name)
    key = "|".join(sorted(f"{c} {s}" for c, s, *_ in placed)) or "empty"
    return img, cap, key


def hard_group(seed, batch, group, size=8):
    """(colour, [shape]*size) for a shape-hard group: one colour, `size` different shapes (as far as
    the held-out list allows), so that colour alone cannot tell the group's captions apart."""
    rng = rng_for(seed, batch, 100 + group)
    c = COLOURS_ORDER[rng.integers(len(COLOURS_ORDER))]
    shapes = [s for s in SHAPES if (c, s) not in HELD_OUT]
    order = list(rng.permutation(shapes))
    while len(order) < size:
        order += list(rng.permutation(shapes))
    return c, [str(s) for s in order[:size]]


def render_labelled(seed, idx, colour, shape, difficulty=0.6):
    """One shape of the given colour x shape on a random background (eval images)."""
    rng = rng_for(seed, idx, 1)
    bg_kind = BG_KINDS[rng.integers(5)]
    arr, _ = render_background(rng, bg_kind)
    r = rng.uniform(32, 70)
    placed = _place(rng, [(colour, shape, "large", r)])
    img = draw_objects(rng, arr, placed)
    return augment(rng, img, difficulty)


def eval_items(seed, per_label, labels=None):
    labels = labels or EVAL_LABELS
    k = 0
    for li, (c, s) in enumerate(labels):
        for j in range(per_label):
            yield k, c, s, j
            k += 1


def prompt(colour, shape):
    """The zero-shot prompt of a colour x shape label, phrased as the training captions are."""
    return f"{_article(colour)} {colour} {shape}"


def write_eval_set(out: Path, seed: int, per_label: int, labels=None, fmt="png"):
    labels = labels or EVAL_LABELS
    out.mkdir(parents=True, exist_ok=True)
    man = {"seed": seed, "labels": [], "images": []}
    lines = []
    for c, s in labels:
        name = f"{c}-{s}"
        (out / name).mkdir(exist_ok=True)
        man["labels"].append({"name": name, "colour": c, "shape": s, "held_out": (c, s) in HELD_OUT,
                              "prompt": prompt(c, s)})
        lines.append(f"{name}: {prompt(c, s)}")
    for k, c, s, j in eval_items(seed, per_label, labels):
        img = render_labelled(seed, k, c, s)
        f = f"{c}-{s}/{j:04d}.{fmt}"
        img.save(out / f, **({"quality": 90} if fmt == "jpg" else {}))
        man["images"].append({"file": f, "label": f"{c}-{s}", "colour": c, "shape": s,
                              "held_out": (c, s) in HELD_OUT})
    (out / "labels.txt").write_text("\n".join(lines) + "\n")
    (out / "manifest.json").write_text(json.dumps(man, indent=1))
    return man


# ------------------------------------------------------------------------------------------------
# demo clip: a still 640x480 scene where shapes enter, stay a while and leave
# ------------------------------------------------------------------------------------------------

CLIP_W, CLIP_H = 640, 480
# The encoder sees the centre square (shortest edge resized to 224, centre crop): x in [80, 560).
CLIP_VIEW = ((CLIP_W - CLIP_H) // 2, (CLIP_W + CLIP_H) // 2)
# Shape radius in clip pixels: 100 px is 47 px at the encoder's 224, the middle of the trained
# "large" range (40-75 px).
CLIP_RADIUS = 100
CLIP_MOVE_FRAMES = 10  # frames to slide in from outside the view (and out again)
CLIP_JPEG_QUALITY = 80  # ~20 KB a frame on this background; the whole clip stays a few MB

# (label, first frame entering, frames in view, exit side); frames at 10 fps. One shape at a time,
# each visit 10 frames apart from the next: the model (one softmax over the labels) names one thing
# per frame, so two shapes in view at once have no right answer for it, and the daemon's end-to-end
# test holds every visit to one start and one end event. The light dims to 70 % and recovers over
# frames 150-230, across the yellow triangle's and the purple circle's visits.
CLIP_SCRIPT = [
    (("red", "circle"), 15, 36, "left"),
    (("blue", "diamond"), 81, 36, "right"),         # held-out pair
    (("yellow", "triangle"), 147, 40, "right"),
    (("purple", "circle"), 217, 36, "left"),        # held-out pair
    (("green", "star"), 283, 36, "left"),
    (("pink", "square"), 349, 36, "right"),         # held-out pair
]
CLIP_FRAMES = 420
CLIP_FPS = 10


def _clip_background(rng):
    """A still room-like scene: a soft vertical gradient wall, a darker floor band, a few muted
    clutter strokes (all low saturation, so they are never mistaken for a shape colour)."""
    yy, xx = np.mgrid[0:CLIP_H, 0:CLIP_W].astype(np.float32)
    wall = np.array([150, 146, 138], np.float32)
    floor = np.array([96, 90, 84], np.float32)
    t = np.clip((yy - 360) / 30, 0, 1)[..., None]
    arr = (1 - t) * (wall * (1 - 0.15 * yy / CLIP_H)[..., None]) + t * floor
    arr += 10 * np.sin(xx / 57.0)[..., None]  # uneven light across the wall
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(14):
        v = int(rng.uniform(80, 180))
        c = (v, v - 4, v - 8)
        x0, y0 = rng.uniform(0, CLIP_W), rng.uniform(0, CLIP_H)
        d.line([(x0, y0), (x0 + rng.normal(0, 80), y0 + rng.normal(0, 40))], fill=c, width=int(rng.integers(2, 5)))
    return np.asarray(img, np.float32)


def _clip_track(rng, entry, stay, side, slot):
    """Centre x, y per frame (None when out of the frame) and the frames fully inside the view."""
    x_in = CLIP_VIEW[0] + CLIP_RADIUS + 20 + slot * 150
    x_out = -CLIP_RADIUS - 5 if side == "left" else CLIP_W + CLIP_RADIUS + 5
    x_start = -CLIP_RADIUS - 5 if rng.random() < 0.5 else CLIP_W + CLIP_RADIUS + 5
    y = rng.uniform(CLIP_RADIUS + 30, CLIP_H - CLIP_RADIUS - 30)
    pos = {}
    m = CLIP_MOVE_FRAMES
    for k in range(m):  # enter
        f = (k + 1) / m
        pos[entry + k] = (x_start + (x_in - x_start) * f, y)
    for k in range(stay):  # stay, drifting slowly
        pos[entry + m + k] = (x_in + 12 * math.sin(k / 9), y + 8 * math.sin(k / 13))
    for k in range(m):  # leave
        f = (k + 1) / m
        pos[entry + m + stay + k] = (x_in + (x_out - x_in) * f, y)
    return pos


def render_demo_clip(out_mjpeg: Path, out_truth: Path, seed: int = 7):
    """Writes the demo clip (concatenated JPEG frames, 640x480) and its ground truth (JSON)."""
    rng = np.random.default_rng([seed, 0])
    background = _clip_background(rng)
    tracks = []
    for i, ((c, s), entry, stay, side) in enumerate(CLIP_SCRIPT):
        pos = _clip_track(rng, entry, stay, side, slot=i % 2)
        rot = rng.uniform(-MAX_ROT[s], MAX_ROT[s]) if s != "circle" else 0.0
        tracks.append({"label": f"{c}-{s}", "colour": c, "shape": s, "held_out": (c, s) in HELD_OUT,
                       "pos": pos, "rot": rot, "rgb": jitter_colour(rng, c)})
    truth_frames, partial_frames, visits = [], [], {t["label"]: [] for t in tracks}
    with open(out_mjpeg, "wb") as f:
        for n in range(CLIP_FRAMES):
            img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
            visible, partial = [], []
            for t in tracks:
                if n not in t["pos"]:
                    continue
                cx, cy = t["pos"][n]
                r = CLIP_RADIUS
                paste_shape(img, t["rgb"], t["shape"], cx, cy, r, t["rot"])
                if CLIP_VIEW[0] <= cx - r and cx + r <= CLIP_VIEW[1]:
                    visible.append(t["label"])
                elif CLIP_VIEW[0] < cx + r and cx - r < CLIP_VIEW[1]:
                    partial.append(t["label"])
            # lighting: dims to 70 % over frames 150-190, back over 190-230
            gain = 1.0 - 0.3 * max(0.0, 1 - abs(n - 190) / 40)
            arr = np.asarray(img, np.float32) * gain
            frame = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
            buf = io.BytesIO()
            frame.save(buf, "JPEG", quality=CLIP_JPEG_QUALITY)
            f.write(buf.getvalue())
            truth_frames.append(sorted(visible))
            partial_frames.append(sorted(partial))
    for n, labels in enumerate(truth_frames):
        for lab in labels:
            v = visits[lab]
            if v and v[-1][1] == n - 1:
                v[-1][1] = n
            else:
                v.append([n, n])
    truth = {
        "clip": out_mjpeg.name, "width": CLIP_W, "height": CLIP_H, "fps": CLIP_FPS, "frames": CLIP_FRAMES,
        "seed": seed,
        "visible_rule": f"a label is visible in a frame when its whole shape is inside the centre "
                        f"{CLIP_H}x{CLIP_H} square (x {CLIP_VIEW[0]}..{CLIP_VIEW[1]}), the part the encoder sees; "
                        f"per_frame lists those, per_frame_partial the shapes only partly inside it",
        "labels": {t["label"]: {"colour": t["colour"], "shape": t["shape"], "held_out": t["held_out"],
                                "visible": [list(v) for v in visits[t["label"]]]} for t in tracks},
        "per_frame": truth_frames,
        "per_frame_partial": partial_frames,
    }
    out_truth.write_text(json.dumps(truth, indent=1) + "\n")
    return truth


# ------------------------------------------------------------------------------------------------
# hard clip: two zones, two shapes at once, distractors, light, noise, a small shape, empty stretches
# ------------------------------------------------------------------------------------------------

HARD_FPS = 2
HARD_FRAMES = 280
HARD_JPEG_QUALITY = 60
# Two square zones side by side, each a 320x320 square of the 640x480 frame (in fractions, as
# edgeclip's [cameras.NAME.zones.ZONE] rect): a zone's crop is exactly what CLIP's centre crop keeps.
HARD_ZONES = {"door": (0.0, 1 / 6, 0.5, 5 / 6), "drive": (0.5, 1 / 6, 1.0, 5 / 6)}
# Each zone's labels: what its owner watches for there.
HARD_LABELS = {"door": ["red-circle", "blue-diamond"], "drive": ["green-star", "yellow-triangle"]}
HARD_RADIUS = 62
# (colour, shape, zone, first frame in view, last frame in view, radius): every shape steps in and
# out (no slide), so that "in view" is exact. Visits of the zone's labels, then distractors that
# share a colour or a shape with a label, in both zones; the light dims over frames 96-126 (to
# 55 % at 111) and camera noise runs over frames 160-177. Frames 261-279 are empty. 2 fps: the
# daemon's default max_fps, so every frame of the clip is one the daemon would infer.
HARD_SCRIPT = [
    ("red", "circle", "door", 6, 19, HARD_RADIUS),
    ("green", "star", "drive", 25, 38, HARD_RADIUS),
    ("blue", "diamond", "door", 45, 58, HARD_RADIUS),         # two at once
    ("yellow", "triangle", "drive", 47, 60, HARD_RADIUS),
    ("purple", "circle", "door", 67, 80, HARD_RADIUS),        # distractor: a label's shape
    ("orange", "triangle", "drive", 67, 80, HARD_RADIUS),     # distractor: a label's shape
    ("red", "square", "drive", 86, 97, HARD_RADIUS),          # distractor: a label's colour
    ("green", "star", "drive", 105, 118, HARD_RADIUS),        # in dim light
    ("red", "circle", "door", 125, 138, 34),                  # small, in the zone's corner
    ("green", "heart", "door", 145, 156, HARD_RADIUS),        # distractor: a label's colour
    ("blue", "hexagon", "drive", 145, 156, HARD_RADIUS),      # distractor: a label's colour
    ("blue", "diamond", "door", 162, 175, HARD_RADIUS),       # in camera noise
    ("yellow", "triangle", "drive", 182, 195, HARD_RADIUS),   # two at once
    ("red", "circle", "door", 185, 197, HARD_RADIUS),
    ("white", "diamond", "drive", 205, 215, HARD_RADIUS),     # distractor: a label's shape
    ("green", "star", "drive", 222, 235, HARD_RADIUS),        # two at once
    ("blue", "diamond", "door", 225, 237, HARD_RADIUS),
    ("yellow", "triangle", "drive", 247, 260, HARD_RADIUS),
]


def _hard_position(rng, zone, radius):
    """A centre for a shape in `zone`: inside the zone's square and the whole frame's centre square
    (what the encoder sees of the whole frame), so that both set-ups can see it. A small shape goes
    to the zone's outer upper corner."""
    x0, y0, x1, y1 = HARD_ZONES[zone]
    zx0, zy0, zx1, zy1 = x0 * CLIP_W, y0 * CLIP_H, x1 * CLIP_W, y1 * CLIP_H
    lo_x, hi_x = max(zx0, CLIP_VIEW[0]) + radius + 8, min(zx1, CLIP_VIEW[1]) - radius - 8
    lo_y, hi_y = zy0 + radius + 8, zy1 - radius - 8
    if radius < HARD_RADIUS:
        x = lo_x if zone == "door" else hi_x
        return x, lo_y
    return rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)


def render_hard_clip(out_mjpeg: Path, seed: int = 11):
    """Writes the hard clip (concatenated JPEG frames, 640x480, HARD_FPS), its whole-frame truth
    (<name>.truth.json: each label of any zone, wherever it is) and its zones' truth
    (<name>.zones.truth.json: each zone's own labels in that zone)."""
    rng = np.random.default_rng([seed, 0])
    background = _clip_background(rng)
    shapes = []
    for c, s, zone, first, last, radius in HARD_SCRIPT:
        x, y = _hard_position(rng, zone, radius)
        rot = rng.uniform(-MAX_ROT[s], MAX_ROT[s]) if s != "circle" else 0.0
        shapes.append({"label": f"{c}-{s}", "shape": s, "zone": zone, "first": first, "last": last, "x": x,
                       "y": y, "r": radius, "rot": rot, "rgb": jitter_colour(rng, c)})
    noise_rng = np.random.default_rng([seed, 1])
    with open(out_mjpeg, "wb") as f:
        for n in range(HARD_FRAMES):
            img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
            for t in shapes:
                if t["first"] <= n <= t["last"]:
                    # a little drift, as a thing that stands still on a real camera does
                    dx, dy = 4 * math.sin(n / 3.5), 3 * math.sin(n / 5.5)
                    paste_shape(img, t["rgb"], t["shape"], t["x"] + dx, t["y"] + dy, t["r"], t["rot"])
            gain = 1.0 - 0.45 * max(0.0, 1 - abs(n - 111) / 15)  # dims to 55 % at frame 111
            arr = np.asarray(img, np.float32) * gain
            if 160 <= n <= 177:
                arr = arr + noise_rng.normal(0, 8, arr.shape).astype(np.float32)
            buf = io.BytesIO()
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=HARD_JPEG_QUALITY)
            f.write(buf.getvalue())
    whole, zones = {}, {z: {} for z in HARD_ZONES}
    for t in shapes:
        if t["label"] in HARD_LABELS[t["zone"]]:
            zones[t["zone"]].setdefault(t["label"], {"visible": []})["visible"].append([t["first"], t["last"]])
        if any(t["label"] in labels for labels in HARD_LABELS.values()):
            whole.setdefault(t["label"], {"visible": []})["visible"].append([t["first"], t["last"]])
    common = {"clip": out_mjpeg.name, "width": CLIP_W, "height": CLIP_H, "fps": HARD_FPS, "frames": HARD_FRAMES,
              "seed": seed, "script": [{k: t[k] for k in ("label", "zone", "first", "last", "r")} for t in shapes]}
    stem = out_mjpeg.with_suffix("")
    Path(f"{stem}.truth.json").write_text(json.dumps({**common, "labels": whole}, indent=1) + "\n")
    Path(f"{stem}.zones.truth.json").write_text(
        json.dumps({**common, "zones": {z: {"labels": l} for z, l in zones.items()}}, indent=1) + "\n")
    return sum(len(v["visible"]) for v in whole.values())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("sample")
    a.add_argument("--out", required=True)
    a.add_argument("--n", type=int, default=16)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--difficulty", type=float, default=1.0)
    b = sub.add_parser("eval-set")
    b.add_argument("--out", required=True)
    b.add_argument("--per-label", type=int, default=40)
    b.add_argument("--seed", type=int, default=1000)
    b.add_argument("--format", choices=["png", "jpg"], default="png",
                   help="jpg (quality 90) keeps committed test sets small")
    d = sub.add_parser("demo-clip")
    d.add_argument("--out", required=True, help="the .mjpeg to write; the ground truth goes beside it "
                                                "as <name>.truth.json")
    d.add_argument("--seed", type=int, default=7)
    h = sub.add_parser("hard-clip")
    h.add_argument("--out", required=True, help="the .mjpeg to write; its truths go beside it as "
                                                "<name>.truth.json and <name>.zones.truth.json")
    h.add_argument("--seed", type=int, default=11)
    c = sub.add_parser("bench")
    c.add_argument("--n", type=int, default=200)
    args = ap.parse_args(argv)
    if args.cmd == "sample":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        caps = []
        for i in range(args.n):
            img, cap, key = render_scene(args.seed, i, args.difficulty)
            img.save(out / f"{i:04d}.png")
            caps.append(f"{i:04d}.png\t{cap}\t{key}")
        (out / "captions.tsv").write_text("\n".join(caps) + "\n")
        print("\n".join(caps))
    elif args.cmd == "eval-set":
        man = write_eval_set(Path(args.out), args.seed, args.per_label, fmt=args.format)
        print(f"wrote {len(man['images'])} images over {len(man['labels'])} labels to {args.out}")
    elif args.cmd == "demo-clip":
        out = Path(args.out)
        truth = render_demo_clip(out, out.with_suffix(".truth.json"), args.seed)
        print(f"wrote {out}: {truth['frames']} frames, {out.stat().st_size:,} bytes")
    elif args.cmd == "hard-clip":
        out = Path(args.out)
        visits = render_hard_clip(out, args.seed)
        print(f"wrote {out}: {HARD_FRAMES} frames, {visits} visits, {out.stat().st_size:,} bytes")
    elif args.cmd == "bench":
        t = time.perf_counter()
        for i in range(args.n):
            render_scene(0, i)
        dt = time.perf_counter() - t
        print(f"{args.n / dt:.1f} scenes/s (one core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
