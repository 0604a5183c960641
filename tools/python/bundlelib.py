"""Shared helpers for the edgeclip Python tools: the bundle format of
models/FORMAT.md (model.toml, labels.txt, labels.emb), CLIP tokenization,
the reference (Pillow) preprocessing and the frames of a bundle's MJPEG clip.

Only numpy, Pillow and the standard library are imported at module level;
torch/open_clip are imported lazily by the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]

FORMAT_VERSION = 1
EMB_MAGIC = b"ECLIPEMB"
EMB_VERSION = 1
CONTEXT_LENGTH = 77
SOT_TOKEN = 49406
EOT_TOKEN = 49407

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

PRECISIONS = ("fp32", "int8-dynamic", "int8-qoperator")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rel(path: str | os.PathLike) -> str:
    """Path relative to the repository root when inside it (for messages and model cards)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# Labels file (the subset of models/FORMAT.md), parsed exactly like src/labels.rs
# --------------------------------------------------------------------------------------------

@dataclass
class Label:
    name: str
    prompts: list[str]
    threshold: float | None = None
    negative: bool = False
    line: int = 0


class LabelsSyntaxError(ValueError):
    pass


_RUST_F32 = re.compile(r"^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)$")


def parse_labels(text: str, path: str = "<labels>") -> list[Label]:
    """Parses a labels file: one label a line; blank lines and lines starting with '#'
    are skipped; `name`, `name: prompt one; prompt two`, a leading `!` (negative) and
    `@0.45` after the name (threshold). Whitespace around every piece is trimmed."""
    if text.startswith("\ufeff"):
        text = text[1:]
    labels: list[Label] = []
    # str.splitlines would also split on \x0b, \x1c, \u2028...; Rust's lines() splits on \n only
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for ix, raw in enumerate(lines):
        line_no = ix + 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negative = line.startswith("!")
        rest = line[1:].lstrip() if negative else line
        if ":" in rest:
            head, prompts_text = rest.split(":", 1)
            head = head.strip()
        else:
            head, prompts_text = rest.strip(), None
        if negative and "@" in head:
            raise LabelsSyntaxError(f"{path}:{line_no}: a negative label ('!') never fires, so a threshold means nothing")
        threshold = None
        name = head
        if "@" in head:
            name, t = head.rsplit("@", 1)
            t = t.strip()
            ok = bool(_RUST_F32.match(t)) and 0.0 <= float(t) <= 1.0
            if not ok:
                raise LabelsSyntaxError(f"{path}:{line_no}: threshold '@{t}' is not a number between 0 and 1")
            threshold = float(t)
            name = name.strip()
        if not name:
            raise LabelsSyntaxError(f"{path}:{line_no}: '{line}' has no label name before ':' or '@'")
        if prompts_text is None:
            prompts = [name]
        else:
            prompts = [p.strip() for p in prompts_text.split(";")]
            if any(not p for p in prompts):
                raise LabelsSyntaxError(f"{path}:{line_no}: label '{name}' has an empty prompt")
        if any(len(t.encode("utf-8")) > 4096 for t in [name, *prompts]):  # labels.emb's string limit
            raise LabelsSyntaxError(f"{path}:{line_no}: a name or prompt is longer than 4096 bytes")
        if any(c in "/+#" or (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) for c in name):
            raise LabelsSyntaxError(f"{path}:{line_no}: label name '{name}' contains / + # or a control "
                                    f"character, which cannot be part of an MQTT topic")
        for other in labels:
            if other.name == name:
                raise LabelsSyntaxError(f"{path}:{line_no}: label '{name}' is already defined on line {other.line}")
        labels.append(Label(name, prompts, threshold, negative, line_no))
    if not labels:
        raise LabelsSyntaxError(f"{path}: no labels in it")
    return labels


# --------------------------------------------------------------------------------------------
# labels.emb
# --------------------------------------------------------------------------------------------

@dataclass
class EmbeddedLabel:
    name: str
    prompts: list[str]
    vector: np.ndarray  # f32 [D], L2-normalized


@dataclass
class LabelEmbeddings:
    dim: int
    text_encoder_sha256: bytes
    labels: list[EmbeddedLabel] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        assert len(self.text_encoder_sha256) == 32
        out = bytearray()
        out += EMB_MAGIC
        out += struct.pack("<III", EMB_VERSION, self.dim, len(self.labels))
        out += self.text_encoder_sha256

        def put_str(s: str) -> None:
            b = s.encode("utf-8")
            out.extend(struct.pack("<I", len(b)))
            out.extend(b)

        for lab in self.labels:
            put_str(lab.name)
            out += struct.pack("<I", len(lab.prompts))
            for p in lab.prompts:
                put_str(p)
            v = np.asarray(lab.vector, dtype="<f4")
            assert v.shape == (self.dim,), v.shape
            out += v.tobytes()
        return bytes(out)

    @staticmethod
    def from_bytes(data: bytes) -> "LabelEmbeddings":
        pos = 0

        def take(n: int) -> bytes:
            nonlocal pos
            if pos + n > len(data):
                raise ValueError("truncated labels.emb")
            b = data[pos:pos + n]
            pos += n
            return b

        def u32() -> int:
            return struct.unpack("<I", take(4))[0]

        def string() -> str:
            return take(u32()).decode("utf-8")

        if take(8) != EMB_MAGIC:
            raise ValueError("not a labels.emb file (magic)")
        version, dim, count = u32(), u32(), u32()
        if version != EMB_VERSION:
            raise ValueError(f"labels.emb version {version}")
        sha = take(32)
        labels = []
        for _ in range(count):
            name = string()
            prompts = [string() for _ in range(u32())]
            vec = np.frombuffer(take(4 * dim), dtype="<f4").astype(np.float32)
            labels.append(EmbeddedLabel(name, prompts, vec))
        if pos != len(data):
            raise ValueError("trailing bytes in labels.emb")
        return LabelEmbeddings(dim, sha, labels)


def l2_normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / n


def ensemble(prompt_embeddings: np.ndarray) -> np.ndarray:
    """[P, D] raw text embeddings -> [D] f32: each normalized, mean, renormalized."""
    e = l2_normalize(prompt_embeddings)
    return l2_normalize(e.mean(axis=0)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# CLIP BPE tokenizer (OpenAI's, as shipped in open_clip: its vocabulary file is in the wheel)
# --------------------------------------------------------------------------------------------

_TOKENIZER = None


def clip_tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        from open_clip.tokenizer import SimpleTokenizer  # OpenAI's CLIP tokenizer, vocab in the package

        _TOKENIZER = SimpleTokenizer()
    return _TOKENIZER


def tokenize(text: str, context_length: int = CONTEXT_LENGTH) -> np.ndarray:
    """OpenAI CLIP tokenization: [SOT] + BPE(clean(text).lower()) + [EOT], truncated to
    context_length keeping EOT last, padded with 0. Returns int64 [1, context_length]."""
    tok = clip_tokenizer()
    ids = [SOT_TOKEN] + tok.encode(text) + [EOT_TOKEN]
    if len(ids) > context_length:
        ids = ids[:context_length]
        ids[-1] = EOT_TOKEN
    out = np.zeros((1, context_length), dtype=np.int64)
    out[0, :len(ids)] = ids
    return out


# --------------------------------------------------------------------------------------------
# model.toml
# --------------------------------------------------------------------------------------------

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"non-finite float {v!r} in model.toml")
        r = repr(v)
        return r
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def write_model_toml(path: str | os.PathLike, manifest: dict, comments: dict | None = None) -> None:
    """Writes a manifest dict (top-level scalars, then the tables image/text/labels)."""
    comments = comments or {}
    lines = []
    tables = [k for k, v in manifest.items() if isinstance(v, dict)]
    for k, v in manifest.items():
        if isinstance(v, dict):
            continue
        lines.append(f"{k} = {_toml_value(v)}")
    for t in tables:
        lines.append("")
        lines.append(f"[{t}]")
        for k, v in manifest[t].items():
            c = comments.get(f"{t}.{k}")
            lines.append(f"{k} = {_toml_value(v)}" + (f"  # {c}" if c else ""))
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text) == manifest
    Path(path).write_text(text, encoding="utf-8")


MANIFEST_KEYS = {
    "": {"format", "name", "embedding_dim", "logit_scale", "source", "licence", "image", "text", "labels"},
    "image": {"file", "input", "output", "sha256", "precision", "size", "resize_shortest_edge",
              "resize_filter", "crop", "mean", "std"},
    "text": {"file", "input", "output", "sha256", "precision", "tokenizer", "context_length"},
    "labels": {"file", "embeddings"},
}


def load_manifest(bundle_dir: str | os.PathLike, check_files: bool = True) -> dict:
    """Reads and validates a bundle's model.toml (keys, sha256 sums)."""
    bundle_dir = Path(bundle_dir)
    m = tomllib.loads((bundle_dir / "model.toml").read_text(encoding="utf-8"))
    for table, keys in MANIFEST_KEYS.items():
        section = m if table == "" else m.get(table)
        if section is None:
            if table in ("image", "labels"):
                raise ValueError(f"{bundle_dir}/model.toml: missing [{table}]")
            continue
        unknown = set(section) - keys
        if unknown:
            raise ValueError(f"{bundle_dir}/model.toml: unknown keys in [{table or 'top'}]: {sorted(unknown)}")
        missing = keys - set(section) - ({"text"} if table == "" else set())
        if missing:
            raise ValueError(f"{bundle_dir}/model.toml: missing keys in [{table or 'top'}]: {sorted(missing)}")
    if m["format"] != FORMAT_VERSION:
        raise ValueError(f"format {m['format']}")
    if check_files:
        for table in ("image", "text"):
            if table in m:
                f = bundle_dir / m[table]["file"]
                if sha256_file(f) != m[table]["sha256"]:
                    raise ValueError(f"{f}: sha256 does not match model.toml")
    return m


# --------------------------------------------------------------------------------------------
# Preprocessing: a direct Pillow implementation of models/FORMAT.md
# --------------------------------------------------------------------------------------------

def resized_size(width: int, height: int, shortest_edge: int) -> tuple[int, int]:
    """(new_w, new_h): the short edge becomes `shortest_edge`, the long edge
    int(shortest_edge * long / short) (truncated), as transformers computes it."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def preprocess_pil(image, size: int, resize_shortest_edge: int, resize_filter: str,
                   mean, std) -> np.ndarray:
    """RGB8 -> Pillow resize (shortest edge) -> 8 bits -> center crop (top = (h - size) // 2)
    -> /255 -> (x - mean) / std -> f32 [1, 3, size, size].

    The arithmetic is that of transformers' PIL-backend CLIPImageProcessor, so that the result is
    bit-identical to it: x = f32(v * (1/255) computed in f64), then (x - f32(mean)) / f32(std) in
    f32. (Computing in f64 with one final rounding differs by at most 1 ulp.)"""
    from PIL import Image

    image = image.convert("RGB")
    filt = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}[resize_filter]
    w, h = image.size
    nw, nh = resized_size(w, h, resize_shortest_edge)
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), resample=filt)
    a = np.asarray(image, dtype=np.uint8)  # [h, w, 3]
    top, left = (nh - size) // 2, (nw - size) // 2
    if top < 0 or left < 0:
        raise ValueError("crop larger than the resized image (resize_shortest_edge < size)")
    a = a[top:top + size, left:left + size, :]
    x = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# MJPEG clips
# --------------------------------------------------------------------------------------------

def mjpeg_frames(data: bytes) -> list[bytes]:
    """The JPEG frames of a clean MJPEG stream (frames back to back, as the demo clip is)."""
    assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9"), "not a clean MJPEG stream"
    parts = data.split(b"\xff\xd9\xff\xd8")
    return [(b"" if i == 0 else b"\xff\xd8") + p + (b"" if i == len(parts) - 1 else b"\xff\xd9")
            for i, p in enumerate(parts)]
