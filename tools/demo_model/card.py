#!/usr/bin/env python3
"""Writes the tiny-shapes sections of the model card (models/tiny-shapes/README.md).

  card.py training --stage1 DIR --stage2 DIR          > training.md   (export_clip.py --card-extra)
  card.py accuracy --card README.md --measure M.json --test-set T.json --truth demo.truth.json \
                   --edgeclip target/release/edgeclip

`training` describes the model and how it was trained, from the checkpoints' train_meta.json.
`accuracy` (re)writes the card's measured-accuracy section from measure.py's numbers, plus the
demo clip's agreement with its ground truth as `edgeclip classify` sees it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # noqa: E402

ACCURACY_HEADING = "## Measured zero-shot accuracy"


def training(stage1: Path, stage2: Path) -> str:
    m1 = json.loads((stage1 / "train_meta.json").read_text())
    m2 = json.loads((stage2 / "train_meta.json").read_text())
    cfg = m1["model_cfg"]
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    held = ", ".join(f"{c} {s}" for c, s in sorted(render.HELD_OUT, key=lambda p: render.COLOURS_ORDER.index(p[0])))
    minutes = lambda m: m["elapsed_s"] / 60  # noqa: E731
    total = minutes(m1) + minutes(m2)

    def stage(m):
        a = m["args"]
        return (f"seed {a['seed']}, {a['steps']} steps x batch {a['batch']} = {a['steps'] * a['batch']:,} scenes, "
                f"lr {a['lr']:g} (warm-up {a['warmup']}, cosine), curriculum {a['curriculum']:g}, "
                f"shape-hard groups per batch {a.get('hard_groups', 0)}, {minutes(m):.0f} min")

    return "\n".join([
        "## The model",
        "",
        "A CLIP trained here from nothing (no pretrained weights) on procedurally rendered scenes, so that "
        "the README's demo shows real zero-shot matching on a machine without internet. It runs through "
        "exactly the export, tokenizer and tract code a real CLIP does.",
        "",
        f"- architecture: open_clip `CLIP`; image tower `ModifiedResNet` (OpenAI RN50 design: 3-conv stem, "
        f"anti-aliased bottlenecks, attention pooling), width {v['width']}, layers {v['layers']}, "
        f"{v['image_size']} px input; text transformer width {t['width']}, {t['layers']} layers, "
        f"{t['heads']} heads, the CLIP BPE tokenizer (vocabulary {t['vocab_size']}), context "
        f"{t['context_length']}; QuickGELU; embedding {cfg['embed_dim']}",
        f"- parameters: {m1['params'] / 1e6:.2f} M (the token embedding table alone is "
        f"{t['vocab_size'] * t['width'] / 1e6:.2f} M)",
        "- training data: `tools/demo_model/render.py`, 224x224 scenes of 0-3 shapes (circle, square, "
        "triangle, star, hexagon, cross, heart, diamond) in 8 colours (red, orange, yellow, green, blue, "
        "purple, pink, white) on flat, noisy, gradient, textured or cluttered backgrounds, with lighting, "
        "blur and JPEG noise, each with a caption (\"two small blue squares on a noisy background\", "
        "\"an empty grey scene\"); rendered on the fly, every scene a function of (seed, index)",
        f"- held out of training (no training caption names them): {held}",
        "- loss: CLIP's symmetric InfoNCE, scenes with the same content counting as positives",
        f"- stage 1: {stage(m1)}",
        f"- stage 2 (from stage 1): {stage(m2)}",
        f"- training time: {total:.0f} min on a 2-core x86 VM (AMD EPYC, torch CPU, 2 threads)",
        "- reproduce: `tools/demo_model/make_tiny_shapes.sh` (training, export, demo clip, test set, "
        "this card)",
        "- licence: MIT (weights and renderer are this project's)",
        "",
    ])


def clip_agreement(edgeclip: str, bundle: Path, truth_path: Path) -> dict:
    """Top-1 of every frame against the ground truth: frames with one shape in view (must name it)
    and frames with none (must say `empty`). Frames with two shapes in view, or one partly in view,
    are not scored."""
    truth = json.loads(truth_path.read_text())
    out = subprocess.run([edgeclip, "classify", "--json", "--top", "1", "--model", str(bundle),
                          str(truth_path.parent / truth["clip"])], check=True, capture_output=True, text=True).stdout
    top = [json.loads(line)["top"][0]["label"] for line in out.splitlines()]
    assert len(top) == truth["frames"], (len(top), truth["frames"])
    frames = list(zip(top, truth["per_frame"], truth["per_frame_partial"]))
    one = [(p, v[0]) for p, v, part in frames if len(v) == 1 and not part]
    none = [p for p, v, part in frames if not v and not part]
    return {"frames": len(top), "one_shape": len(one), "one_shape_right": sum(p == t for p, t in one),
            "empty": len(none), "empty_right": sum(p == "empty" for p in none)}


def accuracy(measure: dict, test_set: dict, clip: dict) -> str:
    pct = lambda d: f"{100 * d['accuracy']:.1f} %"  # noqa: E731
    n = next(iter(measure.values()))["images"]
    lines = [
        ACCURACY_HEADING,
        "",
        f"Measured by `edgeclip eval` (Rust, tract) on {n:,} freshly rendered images "
        "(`render.py eval-set --per-label 64 --seed 1000`: one shape on a random background, 16 labels, "
        "64 images each; the labels are those of labels.txt without `empty`). \"Colour only\" counts a "
        "prediction with the right colour whatever its shape, \"shape only\" the right shape whatever its "
        "colour.",
        "",
        "| encoders | top-1, all | seen pairs | held-out pairs | colour only | shape only |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = {"int8": "int8 image + int8 text (this bundle)", "fp32": "fp32 image + fp32 text (same weights)"}
    for k, r in measure.items():
        lines.append(f"| {names.get(k, k)} | {pct(r['all'])} | {pct(r['seen'])} | {pct(r['held_out'])} | "
                     f"{pct(r['colour'])} | {pct(r['shape'])} |")
    t = test_set["int8"]
    lines += [
        "",
        f"On the committed test set `tests/data/shapes` ({t['images']} images, seed 2000), which "
        f"`cargo test` checks: top-1 {pct(t['all'])}, seen {pct(t['seen'])}, held-out {pct(t['held_out'])}.",
        "",
        f"On the demo clip (`demo.mjpeg`, {clip['frames']} frames, every frame classified): the top label is "
        f"the shape in view in {clip['one_shape_right']} of {clip['one_shape']} frames with one shape in "
        f"view, and `empty` in {clip['empty_right']} of {clip['empty']} frames with none (frames with two "
        "shapes, or one partly in view, are not scored).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("training")
    a.add_argument("--stage1", type=Path, required=True)
    a.add_argument("--stage2", type=Path, required=True)
    b = sub.add_parser("accuracy")
    b.add_argument("--card", type=Path, required=True, help="the model card to update in place")
    b.add_argument("--measure", type=Path, required=True)
    b.add_argument("--test-set", type=Path, required=True)
    b.add_argument("--truth", type=Path, required=True)
    b.add_argument("--edgeclip", default="target/release/edgeclip")
    args = ap.parse_args(argv)
    if args.cmd == "training":
        print(training(args.stage1, args.stage2))
    else:
        clip = clip_agreement(args.edgeclip, args.card.parent, args.truth)
        section = accuracy(json.loads(args.measure.read_text()), json.loads(args.test_set.read_text()), clip)
        card = args.card.read_text(encoding="utf-8")
        head, _, _ = card.partition(ACCURACY_HEADING)
        args.card.write_text(head.rstrip() + "\n\n" + section, encoding="utf-8")
        print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
