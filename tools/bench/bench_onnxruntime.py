#!/usr/bin/env python3
"""Time a bundle's image encoder in onnxruntime, for comparison with edgeclip's tract numbers.

  tools/.venv/bin/python tools/bench/bench_onnxruntime.py --bundle DIR [--threads N] [--iters K] [--warmup W]

Runs image.onnx on one fixed random input (seed 0, N(0,1), the shape of model.toml's [image])
with intra_op_num_threads = N and sequential execution, and prints ONE line of JSON to stdout:
{"runtime":"onnxruntime","bundle":...,"precision":...,"threads":N,"iters":K,"median_ms":...,"p90_ms":...,"min_ms":...}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import bundlelib as bl  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="bundle directory (with model.toml)")
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
    sess = ort.InferenceSession(str(bundle / img["file"]), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, img["size"], img["size"])).astype(np.float32)
    feed = {img["input"]: x}
    out_names = [img["output"]]
    for _ in range(args.warmup):
        sess.run(out_names, feed)
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        sess.run(out_names, feed)
        times.append((time.perf_counter() - t0) * 1000.0)
    t = np.asarray(times)
    print(json.dumps({
        "runtime": "onnxruntime",
        "bundle": m["name"],
        "precision": img["precision"],
        "threads": args.threads,
        "iters": args.iters,
        "median_ms": round(float(np.median(t)), 3),
        "p90_ms": round(float(np.percentile(t, 90)), 3),
        "min_ms": round(float(t.min()), 3),
    }, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
