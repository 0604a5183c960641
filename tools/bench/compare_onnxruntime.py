#!/usr/bin/env python3
"""Compare edgeclip's embeddings of a bundle with onnxruntime's on the same inputs.

  tools/.venv/bin/python tools/bench/compare_onnxruntime.py --bundle DIR --edgeclip BIN [--threads N] [IMAGE...]

Image side: `BIN classify --json --embedding --model DIR IMAGES` (default IMAGES: tests/data/images/*.png)
against image.onnx in onnxruntime on the same files preprocessed as model.toml says
(bundlelib.preprocess_pil, the Pillow reference of models/FORMAT.md). Text side (when the bundle has
a text encoder): `BIN embed-labels` on a labels file of one prompt per label (so each label's vector
is that prompt's normalized embedding) against text.onnx in onnxruntime on bundlelib.tokenize(prompt).
Cosines are of L2-normalized embeddings. Prints ONE line of JSON to stdout:
{"bundle":...,"image":{"precision":...,"n":...,"min_cosine":...,"mean_cosine":...,"required":...,
"between_inputs_max_cosine":...,"centered_min_cosine":...},"text":{...},"ok":...}
and exits with 1 when a min cosine is below the requirement (0.999 for fp32, 0.995 for int8).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import bundlelib as bl  # noqa: E402

PROMPTS = [
    "a photo of a cat",
    "a dog in the garden",
    "a delivery van parked in front of a house",
    "the garage door is open",
    "an empty driveway",
    "a " * 100,  # truncated at 77 tokens
]
REQUIRED = {"fp32": 0.999, "int8-dynamic": 0.995, "int8-qoperator": 0.995}


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def stats(a: np.ndarray, b: np.ndarray, precision: str) -> dict:
    """a, b: [N, D] raw or normalized embeddings (edgeclip, onnxruntime), compared row by row after
    normalization. `between_inputs_max_cosine` is the largest cosine between the onnxruntime
    embeddings of two different inputs: a random-weight model can map every input to nearly the same
    direction (random MobileCLIP2-S0: 1 - 1e-7), and then a min cosine close to 1 says little about
    the preprocessing or tokenization; `centered_min_cosine` (both sides minus the mean onnxruntime
    embedding) compares the input-dependent part alone. Only min_cosine is held to REQUIRED."""
    a, b = bl.l2_normalize(a), bl.l2_normalize(b)
    cos = np.sum(a * b, axis=-1)
    gram = b @ b.T
    between = gram[~np.eye(len(b), dtype=bool)].max() if len(b) > 1 else float("nan")
    # the same after subtracting the mean onnxruntime embedding: compares only the input-dependent part
    mu = b.mean(axis=0)
    centered = np.sum(bl.l2_normalize(a - mu) * bl.l2_normalize(b - mu), axis=-1) if len(b) > 2 else [np.nan]
    return dict(precision=precision, n=int(len(cos)), min_cosine=round(float(cos.min()), 8),
                mean_cosine=round(float(cos.mean()), 8), required=REQUIRED[precision],
                between_inputs_max_cosine=round(float(between), 6),
                centered_min_cosine=round(float(np.min(centered)), 6))


def run(cmd: list) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="bundle directory (with model.toml)")
    ap.add_argument("--edgeclip", required=True, help="the edgeclip binary")
    ap.add_argument("--threads", type=int, default=1, help="edgeclip and onnxruntime threads (default 1)")
    ap.add_argument("images", nargs="*", help="images (default: tests/data/images/*.png)")
    args = ap.parse_args()

    from PIL import Image

    bundle = Path(args.bundle)
    m = bl.load_manifest(bundle)
    images = [Path(p) for p in args.images] or sorted((bl.REPO_ROOT / "tests" / "data" / "images").glob("*.png"))
    threads = ["--threads", str(args.threads)]
    result = {"bundle": m["name"]}
    with tempfile.TemporaryDirectory(prefix="edgeclip-compare-") as tmpd:
        tmp = Path(tmpd)
        cache = ["--cache-dir", str(tmp / "cache")]  # nothing written to the user's cache

        # ---- image encoder
        img = m["image"]
        out = run([args.edgeclip, *cache, "classify", "--json", "--embedding", "--top", "1", *threads,
                   "--model", str(bundle), *map(str, images)])
        got = {}
        for line in out.splitlines():
            if line.strip():
                o = json.loads(line)
                got[o["image"]] = np.asarray(o["embedding"], dtype=np.float64)
        sess = ort_session(bundle / img["file"], args.threads)
        ours, ref = [], []
        for p in images:
            with Image.open(p) as im:
                x = bl.preprocess_pil(im, img["size"], img["resize_shortest_edge"], img["resize_filter"],
                                      img["mean"], img["std"])
            ref.append(sess.run([img["output"]], {img["input"]: x})[0][0])
            ours.append(got[str(p)])
        result["image"] = stats(np.stack(ours), np.stack(ref), img["precision"])

        # ---- text encoder: embed-labels on one prompt per label
        if "text" in m:
            txt = m["text"]
            labels = tmp / "prompts.txt"
            labels.write_text("".join(f"p{i}: {p.strip()}\n" for i, p in enumerate(PROMPTS)), encoding="utf-8")
            run([args.edgeclip, *cache, "embed-labels", *threads, "--model", str(bundle), "-o", str(tmp / "p.emb"),
                 str(labels)])
            emb = bl.LabelEmbeddings.from_bytes((tmp / "p.emb").read_bytes())
            tsess = ort_session(bundle / txt["file"], args.threads)
            ref = [tsess.run([txt["output"]], {txt["input"]: bl.tokenize(p.strip())})[0][0] for p in PROMPTS]
            result["text"] = stats(np.stack([lab.vector for lab in emb.labels]), np.stack(ref), txt["precision"])
        else:
            result["text"] = None
    result["ok"] = all(r["min_cosine"] >= r["required"] for r in (result["image"], result["text"]) if r)
    print(json.dumps(result, separators=(",", ":")))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
