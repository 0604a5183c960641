#!/usr/bin/env python3
"""Renders the example-image test set: tests/data/examples/.

For each colour x shape pair below, EXAMPLES renders to define a label by example images alone
(`<pair>: image:<pair>/examples/`) and FRESH renders of the same pair, from another seed, that the
label must then win (tests/examples.rs). The renders are the demo model's eval images
(tools/demo_model/render.py `render_labelled`: one shape on a random background, with lighting,
blur and noise), saved as JPEG at quality 85 to keep the set small (~8 KB an image, 390 KB in all).

One pair the model was trained on and one it never saw a caption of (held out), so that the test
covers both.

  PY=$(tools/python/venv.sh) && "$PY" tools/testdata/make_example_images.py --out tests/data/examples
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo_model"))
import render  # noqa: E402

PAIRS = [("green", "star"), ("blue", "diamond")]
EXAMPLES = 5
FRESH = 20
# Seeds apart from the demo model's training (0) and eval (1000) sets.
EXAMPLE_SEED = 5000
FRESH_SEED = 6000


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out)
    for pi, (colour, shape) in enumerate(PAIRS):
        for kind, seed, n in (("examples", EXAMPLE_SEED, EXAMPLES), ("fresh", FRESH_SEED, FRESH)):
            folder = out / f"{colour}-{shape}" / kind
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("*.jpg"):
                old.unlink()
            for j in range(n):
                img = render.render_labelled(seed, pi * 1000 + j, colour, shape)
                img.save(folder / f"{j:02d}.jpg", quality=85)
    print(f"{out}: {len(PAIRS)} pairs, {EXAMPLES} examples and {FRESH} fresh renders each")


if __name__ == "__main__":
    main()
