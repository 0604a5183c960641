#!/usr/bin/env python3
"""Zero-shot accuracy of tiny-shapes bundles, measured by `edgeclip eval` (Rust, tract).

Runs `edgeclip eval --json` for each bundle on a labelled folder written by
`render.py eval-set` and splits the result the way the model card reports it:

- top-1 over all images, over the seen colour x shape pairs and over the held-out pairs
  (render.HELD_OUT: pairs that never appear in a training caption);
- colour-only accuracy (the predicted label has the right colour, whatever its shape) and
  shape-only accuracy (right shape, whatever its colour), from the confusion matrix.

  measure.py --edgeclip target/release/edgeclip --data DIR --bundle int8=models/tiny-shapes \
      --bundle fp32=target/demo-model/bundle-fp32 [--json OUT] [--markdown OUT]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # noqa: E402


def split_label(name: str) -> tuple[str, str]:
    colour, shape = name.split("-", 1)
    return colour, shape


def summarise(report: dict) -> dict:
    totals = {k: [0, 0] for k in ("all", "seen", "held_out", "colour", "shape")}
    # per_label holds the totals; confusion_matrix is truth -> predicted -> images (zeros left out)
    per_label = {l["label"]: l for l in report["per_label"]}
    for name, l in per_label.items():
        c, s = split_label(name)
        group = "held_out" if (c, s) in render.HELD_OUT else "seen"
        for k in ("all", group):
            totals[k][0] += l["correct"]
            totals[k][1] += l["images"]
        right_colour = right_shape = 0
        for predicted, n in report["confusion_matrix"].get(name, {}).items():
            pc, ps = split_label(predicted)
            right_colour += n * (pc == c)
            right_shape += n * (ps == s)
        totals["colour"][0] += right_colour
        totals["colour"][1] += l["images"]
        totals["shape"][0] += right_shape
        totals["shape"][1] += l["images"]
    return {k: {"correct": a, "images": b, "accuracy": a / b if b else 0.0} for k, (a, b) in totals.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgeclip", default="target/release/edgeclip")
    ap.add_argument("--data", required=True, help="folder from render.py eval-set")
    ap.add_argument("--bundle", action="append", required=True, metavar="NAME=DIR")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    ap.add_argument("--markdown", type=Path, help="write the model card's accuracy table here")
    args = ap.parse_args(argv)

    results = {}
    for spec in args.bundle:
        name, _, path = spec.partition("=")
        out = subprocess.run([args.edgeclip, "eval", "--json", "--model", path, "--data", args.data],
                             check=True, capture_output=True, text=True).stdout
        report = json.loads(out)
        results[name] = {"bundle": path, "images": report["images"], **summarise(report)}
        r = results[name]
        print(f"{name:6s} {path}: all {r['all']['accuracy']:.1%}  seen {r['seen']['accuracy']:.1%}  "
              f"held-out {r['held_out']['accuracy']:.1%}  colour {r['colour']['accuracy']:.1%}  "
              f"shape {r['shape']['accuracy']:.1%}  ({report['images']} images)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.markdown:
        pct = lambda d: f"{100 * d['accuracy']:.1f} % ({d['correct']}/{d['images']})"  # noqa: E731
        lines = ["| encoders | top-1, all | seen pairs | held-out pairs | colour only | shape only |",
                 "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in results.items():
            lines.append(f"| {name} | {pct(r['all'])} | {pct(r['seen'])} | {pct(r['held_out'])} | "
                         f"{pct(r['colour'])} | {pct(r['shape'])} |")
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
