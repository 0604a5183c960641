#!/usr/bin/env python3
"""Time a bundle's encoders in onnxruntime, for comparison with `edgeclip bench`.

  tools/.venv/bin/python tools/bench/bench_onnxruntime.py --bundle DIR [--stage S] [--threads N] [--iters K]

Stages, each the same work as the `edgeclip bench` stage of the same name:
  image-encoder   image.onnx on one fixed random input (seed 0, N(0,1), model.toml's [image] shape)
  text-encoder    one prompt, tokenized (open_clip's reference tokenizer) and run through text.onnx
  frame-640x480   the frames of --frames (an MJPEG file, cycling through its first 30): Pillow
                  decode, the bundle's preprocessing (bundlelib.preprocess_pil, what the golden
                  files are checked against), image.onnx, normalize, cosine and softmax against
                  20 labels: what a Python pipeline on onnxruntime does with a camera frame

with intra_op_num_threads = N and sequential execution. Prints ONE line of JSON to stdout:
{"runtime":"onnxruntime","stage":...,"bundle":...,"precision":...,"threads":N,"iters":K,"median_ms":...,"p90_ms":...,"min_ms":...}
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import bundlelib as bl  # noqa: E402


# The same prompt, frame count and label count as `edgeclip bench` (src/cli/bench.rs).
BENCH_PROMPT = "a delivery van parked in front of a house"
BENCH_FRAMES = 30
BENCH_LABELS = 20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="bundle directory (with model.toml)")
    ap.add_argument("--stage", choices=["image-encoder", "text-encoder", "frame-640x480"], default="image-encoder")
    ap.add_argument("--frames", metavar="MJPEG", help="the MJPEG file of the frame-640x480 stage")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--iters", type=int, default=20, help="timed runs (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    ap.add_argument("--opt-level", choices=["disable", "basic", "extended", "all"], default="all",
                    help="onnxruntime graph optimization level (default all, as an ORT user gets)")
    args = ap.parse_args()
    if args.threads < 1 or args.iters < 1 or args.warmup < 0:
        raise SystemExit("--threads and --iters must be >= 1, --warmup >= 0")

    import onnxruntime as ort

    bundle = Path(args.bundle)
    m = bl.load_manifest(bundle, check_files=False)
    img = m["image"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[args.opt_level]
    so.log_severity_level = 3

    spec = m.get("text") if args.stage == "text-encoder" else img
    if spec is None:
        raise SystemExit(f"{bundle} has no text encoder")
    sess = ort.InferenceSession(str(bundle / spec["file"]), so, providers=["CPUExecutionProvider"])
    output, feed = [spec["output"]], spec["input"]

    if args.stage == "text-encoder":
        def run_once():
            ids = bl.tokenize(BENCH_PROMPT, spec.get("context_length", bl.CONTEXT_LENGTH))
            v = sess.run(output, {feed: ids})[0][0]
            return v / np.linalg.norm(v)
    elif args.stage == "frame-640x480":
        from PIL import Image

        if not args.frames:
            raise SystemExit("--stage frame-640x480 needs --frames MJPEG")
        jpegs = bl.mjpeg_frames(Path(args.frames).read_bytes())[:BENCH_FRAMES]
        dim = m["embedding_dim"]
        labels = np.array([[((i * 31 + j * 7) % 17) - 8.0 for j in range(dim)] for i in range(BENCH_LABELS)],
                          dtype=np.float32)
        labels /= np.linalg.norm(labels, axis=1, keepdims=True)
        scale = float(m["logit_scale"])
        counter = [0]

        def run_once():
            jpeg = jpegs[counter[0] % len(jpegs)]
            counter[0] += 1
            image = Image.open(io.BytesIO(jpeg))
            x = bl.preprocess_pil(image, img["size"], img["resize_shortest_edge"], img["resize_filter"],
                                  img["mean"], img["std"])
            v = sess.run(output, {feed: x})[0][0]
            logits = scale * (labels @ (v / np.linalg.norm(v)))
            p = np.exp(logits - logits.max())
            return p / p.sum()
    else:
        x = np.random.default_rng(0).standard_normal((1, 3, img["size"], img["size"])).astype(np.float32)

        def run_once():
            return sess.run(output, {feed: x})

    for _ in range(args.warmup):
        run_once()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        run_once()
        times.append((time.perf_counter() - t0) * 1000.0)
    t = np.asarray(times)
    print(json.dumps({
        "runtime": "onnxruntime",
        "stage": args.stage,
        "bundle": m["name"],
        "precision": spec["precision"],
        "threads": args.threads,
        "iters": args.iters,
        "median_ms": round(float(np.median(t)), 3),
        "p90_ms": round(float(np.percentile(t, 90)), 3),
        "min_ms": round(float(t.min()), 3),
    }, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
