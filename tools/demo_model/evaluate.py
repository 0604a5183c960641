#!/usr/bin/env python3
"""Zero-shot evaluation (Python/torch) of a tiny-shapes checkpoint.

Loads the checkpoint exactly as tools/model/export_clip.py does (open_clip `local-dir:DIR`), embeds the
prompts "a {colour} {shape}" (render.prompt: "an orange square") and classifies single-shape images by top-1 cosine similarity.

  evaluate.py --model target/demo-model/probe1/ckpt [--per-label 40] [--seed 1000]   # render fresh
  evaluate.py --model DIR --data DIR                                                 # render.py eval-set folder

Reports, on render.py's 16-label set (8 seen + 8 held-out pairs; each colour on 2 shapes, each
shape in 2 colours): top-1 overall / seen / held-out, colour accuracy (predicted label has the right
colour) and shape accuracy (predicted label has the right shape); then the same images against all
64 colour x shape prompts (a harder, open-set check), and the most frequent confusions.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # noqa: E402
from train import MEAN, STD  # noqa: E402


def to_tensor(img):
    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", help="eval-set folder written by render.py eval-set")
    ap.add_argument("--per-label", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import open_clip

    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{args.model}")
    model.eval()
    tok = open_clip.get_tokenizer(f"local-dir:{args.model}")

    items = []  # (tensor, colour, shape)
    if args.data:
        man = json.loads((Path(args.data) / "manifest.json").read_text())
        for im in man["images"]:
            items.append((to_tensor(Image.open(Path(args.data) / im["file"])), im["colour"], im["shape"]))
        labels = [(l["colour"], l["shape"]) for l in man["labels"]]
    else:
        labels = render.EVAL_LABELS
        for k, c, s, j in render.eval_items(args.seed, args.per_label, labels):
            items.append((to_tensor(render.render_labelled(args.seed, k, c, s)), c, s))

    with torch.no_grad():
        feats = []
        for i in range(0, len(items), 64):
            x = torch.stack([t for t, _, _ in items[i:i + 64]])
            feats.append(F.normalize(model.encode_image(x), dim=-1))
        img_f = torch.cat(feats)

        def text_f(pairs):
            return F.normalize(model.encode_text(tok([render.prompt(c, s) for c, s in pairs])), dim=-1)

        all_pairs = [(c, s) for c in render.COLOURS_ORDER for s in render.SHAPES]
        res = {}
        for name, pairs in (("16-label", labels), ("64-label", all_pairs)):
            pred = (img_f @ text_f(pairs).t()).argmax(1).tolist()
            rows = []
            for (t, c, s), p in zip(items, pred):
                pc, ps = pairs[p]
                rows.append(((c, s) in render.HELD_OUT, pc == c and ps == s, pc == c, ps == s, (c, s), (pc, ps)))
            r = {}
            for sub, sel in (("all", lambda h: True), ("seen", lambda h: not h), ("held_out", lambda h: h)):
                rr = [x for x in rows if sel(x[0])]
                if rr:
                    r[sub] = {"n": len(rr), "top1": float(np.mean([x[1] for x in rr])),
                              "colour": float(np.mean([x[2] for x in rr])),
                              "shape": float(np.mean([x[3] for x in rr]))}
            conf = Counter(f"{x[4][0]} {x[4][1]} -> {x[5][0]} {x[5][1]}" for x in rows if not x[1])
            r["top_confusions"] = conf.most_common(8)
            res[name] = r
            print(f"== {name} ({len(rows)} images)")
            for sub in ("all", "seen", "held_out"):
                if sub in r:
                    v = r[sub]
                    print(f"  {sub:9s} n={v['n']:4d}  top1 {100*v['top1']:5.1f} %  colour {100*v['colour']:5.1f} %"
                          f"  shape {100*v['shape']:5.1f} %")
            print("  confusions:", "; ".join(f"{k} x{n}" for k, n in r["top_confusions"]))
        # diagnostic: is shape linearly decodable from the image embedding? (ridge regression on
        # one-hot shape/colour, fit on even images, tested on odd ones). High here but low zero-shot
        # = the text side / alignment is the bottleneck; low here = the image tower is.
        X = torch.cat([img_f, torch.ones(len(items), 1)], 1).numpy().astype(np.float64)
        for what, vocab, idx in (("shape", render.SHAPES, 2), ("colour", render.COLOURS_ORDER, 1)):
            y = np.array([vocab.index(it[idx]) for it in items])
            Y = np.eye(len(vocab))[y]
            tr, te = np.arange(len(y)) % 2 == 0, np.arange(len(y)) % 2 == 1
            W = np.linalg.solve(X[tr].T @ X[tr] + 1e-2 * np.eye(X.shape[1]), X[tr].T @ Y[tr])
            acc = float(np.mean((X[te] @ W).argmax(1) == y[te]))
            res[f"linear_probe_{what}"] = acc
            print(f"linear probe on image embeddings, {what}: {100*acc:.1f} % (held-out half)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
