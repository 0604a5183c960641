#!/usr/bin/env python3
"""Writes tests/data/golden/text_embeds.json: text encoder outputs from onnxruntime, the reference
the Rust text encoder (tract) is tested against.

  tools/.venv/bin/python tools/testdata/make_text_golden.py \
      --bundles tests/data/bundles/tiny-text models/tiny-shapes [--out tests/data/golden/text_embeds.json]

For every bundle, every prompt below is tokenized by bundlelib.tokenize (open_clip's SimpleTokenizer,
77 tokens) and run through the bundle's text.onnx in onnxruntime (1 thread); the raw, not normalized,
`text_embeds` row is stored with the bundle's text encoder sha256, so that a stale golden is noticed.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import bundlelib as bl  # noqa: E402

# Prompts that matter to a text encoder: ordinary labels, the demo model's own vocabulary, an empty
# prompt, cleaning at work (case, HTML, curly quotes, whitespace), non-Latin scripts and emoji, and
# two prompts past the 77-token context (truncated with the end token kept last).
PROMPTS = [
    "a photo of a cat",
    "a delivery van parked in front of a house",
    "the garage door is open",
    "a red circle",
    "a blue diamond",
    "an empty scene",
    "",
    "A RED   Circle",
    "Tom &amp; Jerry\u2019s \u201cbest\u201d",
    "\u732b\u306e\u5199\u771f",
    "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e",
    "\U0001f408 on the sofa \U0001f6cb\ufe0f",
    "a " * 100,
    " ".join(f"word{i}" for i in range(60)),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="+", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("tests/data/golden/text_embeds.json"))
    args = ap.parse_args(argv)

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    out = {
        "description": "onnxruntime text_embeds (raw, not normalized) of each prompt, per bundle; "
                       "prompts tokenized by open_clip's SimpleTokenizer to 77 tokens",
        # the bundles by name only: tools/testdata/make_test_data.sh --check writes them to a temp dir
        "command": "tools/testdata/make_test_data.sh (tools/testdata/make_text_golden.py --bundles "
                   + " ".join(b.name for b in args.bundles) + ")",
        "onnxruntime": ort.__version__,
        "prompts": PROMPTS,
        "bundles": {},
    }
    for bundle in args.bundles:
        manifest = bl.load_manifest(bundle)
        text = manifest["text"]
        sess = ort.InferenceSession(str(bundle / text["file"]), so, providers=["CPUExecutionProvider"])
        rows = [sess.run(None, {text["input"]: bl.tokenize(p)})[0][0].astype(float).tolist() for p in PROMPTS]
        out["bundles"][bundle.name] = {"text_sha256": text["sha256"], "precision": text["precision"],
                                       "embeds": [[float(f"{v:.8g}") for v in r] for r in rows]}
        print(f"[make_text_golden] {bundle}: {len(rows)} prompts, {text['precision']}", file=sys.stderr)
    text = json.dumps(out, indent=1, ensure_ascii=False)
    # one embedding per line keeps the file readable and diffable
    text = re.sub(r"\[\n\s+(-?[0-9][^\[\]]*?)\n\s+\]", lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "]", text)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"[make_text_golden] wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
