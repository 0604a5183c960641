#!/usr/bin/env python3
"""Write the golden files of tests/data/golden/ from the committed images and test bundles.

  tools/.venv/bin/python tools/testdata/make_golden.py [--images tests/data/images] \
      [--bundles tests/data/bundles/tiny-fp32 tests/data/bundles/tiny-int8] \
      [--embeds-only-bundles tests/data/bundles/tiny-qop] [--out tests/data/golden]

For each PNG image <stem>:
  <stem>.pixel_values.f32               transformers' CLIPImageProcessor (its PIL backend, the
                                        pre-5.0 implementation) with the bundle's size/mean/std/filter:
                                        raw little-endian f32, shape [1,3,S,S]
  <stem>.<bundle>.image_embeds.f32      onnxruntime's image_embeds of that tensor, raw LE f32 [1,D],
                                        for every bundle of --bundles and --embeds-only-bundles
and:
  scores.json     per image and bundle of --bundles (not --embeds-only-bundles): cosine to each label
                  of labels.emb, softmax(logit_scale * cos)
  tokens.json     OpenAI CLIP BPE token ids of the test labels' prompts and some tricky strings
  manifest.json   every file with shape, dtype, sha256; library versions; cross-checks; the command
Cross-checks (printed and kept in manifest.json): the direct Pillow implementation of FORMAT.md and
the torchvision-backed CLIPImageProcessor against the golden tensor; onnx's reference evaluator
against onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import bundlelib as bl  # noqa: E402

TRICKY_STRINGS = [
    "a photo of a cat",
    "A Photo Of A CAT!!",
    "  lots   of\twhitespace \n here ",
    "don't, can't; won't: it's 3.14 o'clock",
    "café crème brûlée",
    "日本語のテキスト",
    "emoji 🐈‍⬛ and 👍🏽",
    "&amp; html &lt;entities&gt;",
    "",
    " ".join(["word"] * 100),  # truncated to 77 tokens, EOT kept last
]


def log(msg: str) -> None:
    print(f"[make_golden] {msg}", file=sys.stderr, flush=True)


def f32_file(path: Path, a: np.ndarray) -> None:
    path.write_bytes(np.ascontiguousarray(a, dtype="<f4").tobytes())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(bl.REPO_ROOT / "tests/data/images"))
    ap.add_argument("--bundles", nargs="+", default=[str(bl.REPO_ROOT / "tests/data/bundles/tiny-fp32"),
                                                     str(bl.REPO_ROOT / "tests/data/bundles/tiny-int8")],
                    help="bundles that get golden image_embeds and label scores (scores.json)")
    ap.add_argument("--embeds-only-bundles", nargs="*",
                    default=[str(bl.REPO_ROOT / "tests/data/bundles/tiny-qop")],
                    help="bundles that get golden image_embeds (listed in manifest.json) but no entry in "
                         "scores.json")
    ap.add_argument("--labels", default=str(bl.REPO_ROOT / "tests/data/labels.txt"),
                    help="labels file whose prompts go into tokens.json")
    ap.add_argument("--out", default=str(bl.REPO_ROOT / "tests/data/golden"))
    args = ap.parse_args()

    import onnx
    import onnx.reference
    import onnxruntime as ort
    import PIL
    import transformers
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPImageProcessorPil
    from transformers.image_utils import PILImageResampling

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.suffix in (".f32", ".json"):
            old.unlink()

    bundles = {}
    for b in args.bundles + args.embeds_only_bundles:
        d = Path(b)
        if d.name in bundles:
            raise SystemExit(f"bundle {d.name} is given twice")
        bundles[d.name] = (d, bl.load_manifest(d))
    scored = {Path(b).name for b in args.bundles}
    pre_keys = ("size", "resize_shortest_edge", "resize_filter", "crop", "mean", "std")
    first = next(iter(bundles.values()))[1]["image"]
    pre = {k: first[k] for k in pre_keys}
    for name, (_, m) in bundles.items():
        if {k: m["image"][k] for k in pre_keys} != pre:
            raise SystemExit(f"bundle {name} preprocesses differently from the first; golden tensors are shared")
    S = pre["size"]
    resample = {"bicubic": PILImageResampling.BICUBIC, "bilinear": PILImageResampling.BILINEAR}[pre["resize_filter"]]
    proc_kwargs = dict(do_resize=True, size={"shortest_edge": pre["resize_shortest_edge"]}, resample=resample,
                       do_center_crop=True, crop_size={"height": S, "width": S}, do_rescale=True,
                       rescale_factor=1 / 255, do_normalize=True, image_mean=pre["mean"], image_std=pre["std"],
                       do_convert_rgb=True)
    proc_pil = CLIPImageProcessorPil(**proc_kwargs)
    proc_tv = CLIPImageProcessor(**proc_kwargs)

    sessions, refs = {}, {}
    for name, (d, m) in bundles.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sessions[name] = ort.InferenceSession(str(d / m["image"]["file"]), so, providers=["CPUExecutionProvider"])
        try:
            refs[name] = (onnx.reference.ReferenceEvaluator(str(d / m["image"]["file"])), None)
        except RuntimeError as e:
            # onnx.reference only implements QuantizeLinear/DequantizeLinear from opset 19 on, so the
            # opset-17 QOperator graph is evaluated after onnx's version converter lifts it to 19.
            import onnx.version_converter

            g = onnx.version_converter.convert_version(onnx.load(str(d / m["image"]["file"])), 19)
            refs[name] = (onnx.reference.ReferenceEvaluator(g),
                          "opset 17 graph converted to opset 19 by onnx.version_converter (onnx.reference "
                          "has no opset-17 QuantizeLinear/DequantizeLinear)")
            log(f"{name}: onnx.reference cannot load the graph as is ({e}); checking against opset 19")

    files, checks, scores = [], {"preprocess": {}, "onnx_reference_vs_onnxruntime": {}}, {}

    def add(path: Path, shape, dtype, what):
        files.append(dict(file=path.name, shape=list(shape), dtype=dtype, sha256=bl.sha256_file(path),
                          description=what))

    images = sorted(Path(args.images).glob("*.png"))
    if not images:
        raise SystemExit(f"no PNG images in {args.images}")
    for p in images:
        stem = p.stem
        with Image.open(p) as im:
            im.load()
            golden = np.asarray(proc_pil(images=im, return_tensors="np")["pixel_values"], dtype=np.float32)
            tv = np.asarray(proc_tv(images=im, return_tensors="pt")["pixel_values"].numpy(), dtype=np.float32)
            direct = bl.preprocess_pil(im, S, pre["resize_shortest_edge"], pre["resize_filter"], pre["mean"],
                                       pre["std"])
            size = im.size
        assert golden.shape == (1, 3, S, S), golden.shape
        step = np.asarray(pre["std"], np.float64)[None, :, None, None] * 255.0  # one 8-bit step, per channel
        c = {
            "image_size": list(size),
            "pillow_direct_max_abs_diff": float(np.abs(direct - golden).max()),
            "pillow_direct_max_diff_in_8bit_steps": float((np.abs(direct - golden) * step).max()),
            "torchvision_processor_max_abs_diff": float(np.abs(tv - golden).max()),
            "torchvision_processor_max_diff_in_8bit_steps": float(np.round((np.abs(tv - golden) * step).max(), 3)),
            "torchvision_processor_values_differing": int((np.abs(tv - golden) > 1e-5).sum()),
        }
        checks["preprocess"][stem] = c
        log(f"{p.name}: Pillow-direct vs CLIPImageProcessor(PIL) max |diff| {c['pillow_direct_max_abs_diff']:.3g}; "
            f"torchvision CLIPImageProcessor vs PIL: max |diff| {c['torchvision_processor_max_abs_diff']:.3g} "
            f"({c['torchvision_processor_max_diff_in_8bit_steps']} 8-bit steps, "
            f"{c['torchvision_processor_values_differing']} values)")
        f = out / f"{stem}.pixel_values.f32"
        f32_file(f, golden)
        add(f, golden.shape, "f32le", f"{p.name} preprocessed by transformers CLIPImageProcessorPil "
            f"(shortest edge {pre['resize_shortest_edge']}, {pre['resize_filter']}, center crop {S}, mean/std of "
            f"the bundles)")
        scores[stem] = {}
        for name, (d, m) in bundles.items():
            emb = sessions[name].run(None, {m["image"]["input"]: golden})[0].astype(np.float32)
            ref = refs[name][0].run(None, {m["image"]["input"]: golden})[0]
            D = m["embedding_dim"]
            assert emb.shape == (1, D), emb.shape
            checks["onnx_reference_vs_onnxruntime"][f"{stem}.{name}"] = {
                "max_abs_diff": float(np.abs(ref - emb).max()),
                "cosine": float((ref.ravel().astype(np.float64) @ emb.ravel())
                                / (np.linalg.norm(ref) * np.linalg.norm(emb))),
            }
            if refs[name][1]:
                checks["onnx_reference_vs_onnxruntime"][f"{stem}.{name}"]["reference_graph"] = refs[name][1]
            f = out / f"{stem}.{name}.image_embeds.f32"
            f32_file(f, emb)
            add(f, emb.shape, "f32le", f"onnxruntime image_embeds of {stem}.pixel_values.f32 through "
                f"bundles/{name}/image.onnx (projected, not normalized)")
            if name not in scored:
                continue
            le = bl.LabelEmbeddings.from_bytes((d / m["labels"]["embeddings"]).read_bytes())
            v = emb[0].astype(np.float64)
            v /= np.linalg.norm(v)
            cos = np.array([float(v @ lab.vector.astype(np.float64)) for lab in le.labels])
            logits = m["logit_scale"] * cos
            prob = np.exp(logits - logits.max())
            prob /= prob.sum()
            scores[stem][name] = {lab.name: {"cosine": round(float(cs), 7), "softmax": round(float(pr), 7)}
                                  for lab, cs, pr in zip(le.labels, cos, prob)}

    (out / "scores.json").write_text(json.dumps({
        "description": "cosine(normalize(image_embeds), labels.emb vector) for every label of the bundle's "
                       "labels.emb (negative labels included), and softmax over all labels of "
                       "logit_scale * cosine; values rounded to 7 decimals",
        "scores": scores}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    add(out / "scores.json", [], "json", "label scores of each golden image_embeds")

    prompts = []
    if Path(args.labels).exists():
        for lab in bl.parse_labels(Path(args.labels).read_text(encoding="utf-8"), args.labels):
            prompts += [p for p in lab.prompts if p not in prompts]
    tokens = []
    for t in prompts + TRICKY_STRINGS:
        ids = bl.tokenize(t)[0]
        n = int(np.count_nonzero(ids))
        assert (ids[n:] == 0).all()
        tokens.append({"text": t, "ids": ids[:n].tolist()})
    (out / "tokens.json").write_text(json.dumps({
        "description": "OpenAI CLIP BPE tokenization (open_clip's SimpleTokenizer, the vocabulary OpenAI "
                       "released): ids = [49406] + bpe(lower(collapse_whitespace(strip(html.unescape(html.unescape("
                       "ftfy.fix_text(text))))))) + [49407], truncated to 77 keeping 49407 last; the model input "
                       "pads 'ids' with 0 to 77",
        "context_length": bl.CONTEXT_LENGTH, "pad": 0, "sot": bl.SOT_TOKEN, "eot": bl.EOT_TOKEN,
        "tokens": tokens}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    add(out / "tokens.json", [], "json", "CLIP BPE token ids of the test prompts")

    worst_pil = max(c["pillow_direct_max_abs_diff"] for c in checks["preprocess"].values())
    worst_ref = max(c["max_abs_diff"] for c in checks["onnx_reference_vs_onnxruntime"].values())
    log(f"worst Pillow-direct vs CLIPImageProcessor(PIL): {worst_pil:.3g}; worst onnx reference vs "
        f"onnxruntime: {worst_ref:.3g}")
    import open_clip
    import torch

    manifest = {
        "description": "Golden files for edgeclip's tests. Raw tensors are little-endian f32, C order, "
                       "no header.",
        "command": "tools/testdata/make_test_data.sh (or: tools/.venv/bin/python tools/testdata/make_golden.py)",
        "preprocessing": pre,
        "bundles": {name: {"image_sha256": m["image"]["sha256"], "precision": m["image"]["precision"],
                           "embedding_dim": m["embedding_dim"], "in_scores_json": name in scored}
                    for name, (_, m) in bundles.items()},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "pillow": PIL.__version__,
                     "transformers": transformers.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "torch": torch.__version__,
                     "open_clip_torch": open_clip.__version__},
        "checks": checks,
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"wrote {len(files) + 1} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
