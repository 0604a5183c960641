#!/usr/bin/env python3
"""Write tests/data/bundles/unsupported-op/: a valid bundle whose image.onnx uses an operator that
tract-onnx 0.23 does not implement (com.microsoft QLinearAdd), for the error-message test.

  tools/.venv/bin/python tools/testdata/make_unsupported_op_bundle.py [--labels-from tests/data/bundles/tiny-fp32] \
      [--out tests/data/bundles/unsupported-op]

Graph: pixel_values [1,3,224,224] -> GlobalAveragePool -> Reshape [1,3] -> MatMul [3,32] ->
Mul, Add, Clip, Cast to u8 -> com.microsoft.QLinearAdd -> Cast to f32, Sub, Mul -> image_embeds
[1,32]. No QuantizeLinear/DequantizeLinear (edgeclip would refuse the graph as QDQ before looking at
its operators), so the file is plain fp32 apart from that one operator. It runs in onnxruntime
(checked here). Everything else is correct: model.toml (real sha256), labels.txt and
labels.emb (copied from the tiny test bundle, D = 32), so only the operator is wrong.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import bundlelib as bl  # noqa: E402

D = 32


def build_model():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(32)
    w = rng.standard_normal((3, D)).astype(np.float32)
    bias_q = rng.integers(100, 156, size=(D,), dtype=np.uint8)
    # No QuantizeLinear/DequantizeLinear: with them the graph would look QDQ-quantized and be refused
    # for that before its operators are looked at. The u8 tensors come from plain arithmetic + Cast.
    inits = [
        numpy_helper.from_array(np.array([1, 3], dtype=np.int64), "shape_1x3"),
        numpy_helper.from_array(w, "proj_weight"),
        numpy_helper.from_array(np.array(1 / 0.02, dtype=np.float32), "inv_x_scale"),
        numpy_helper.from_array(np.array(128.0, dtype=np.float32), "f_128"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "f_0"),
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "f_255"),
        numpy_helper.from_array(np.array(0.02, dtype=np.float32), "x_scale"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "x_zero_point"),
        numpy_helper.from_array(bias_q, "bias_quantized"),
        numpy_helper.from_array(np.array(0.01, dtype=np.float32), "bias_scale"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "bias_zero_point"),
        numpy_helper.from_array(np.array(0.03, dtype=np.float32), "y_scale"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "y_zero_point"),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"], name="pool"),
        helper.make_node("Reshape", ["pooled", "shape_1x3"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "proj_weight"], ["proj"], name="project"),
        helper.make_node("Mul", ["proj", "inv_x_scale"], ["proj_scaled"], name="scale"),
        helper.make_node("Add", ["proj_scaled", "f_128"], ["proj_shifted"], name="shift"),
        helper.make_node("Clip", ["proj_shifted", "f_0", "f_255"], ["proj_clipped"], name="clip"),
        helper.make_node("Cast", ["proj_clipped"], ["proj_q"], name="to_u8", to=TensorProto.UINT8),
        helper.make_node("QLinearAdd", ["proj_q", "x_scale", "x_zero_point", "bias_quantized", "bias_scale",
                                        "bias_zero_point", "y_scale", "y_zero_point"], ["sum_q"],
                         name="qlinear_add_not_in_tract", domain="com.microsoft"),
        helper.make_node("Cast", ["sum_q"], ["sum_f"], name="to_f32", to=TensorProto.FLOAT),
        helper.make_node("Sub", ["sum_f", "f_128"], ["sum_centered"], name="unshift"),
        helper.make_node("Mul", ["sum_centered", "y_scale"], ["image_embeds"], name="unscale"),
    ]
    graph = helper.make_graph(
        nodes, "unsupported_op",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, [1, D])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="edgeclip tools/testdata/make_unsupported_op_bundle.py",
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels-from", default=str(bl.REPO_ROOT / "tests/data/bundles/tiny-fp32"),
                    help="bundle whose labels.txt/labels.emb (D = 32) are copied")
    ap.add_argument("--out", default=str(bl.REPO_ROOT / "tests/data/bundles/unsupported-op"))
    args = ap.parse_args()

    import onnx
    import onnxruntime as ort

    src = Path(args.labels_from)
    src_manifest = bl.load_manifest(src)
    if src_manifest["embedding_dim"] != D:
        raise SystemExit(f"{src} has D = {src_manifest['embedding_dim']}, need {D}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model()
    onnx.save(model, str(out / "image.onnx"))

    sess = ort.InferenceSession(str(out / "image.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"pixel_values": np.zeros((1, 3, 224, 224), np.float32)})[0]
    assert y.shape == (1, D) and np.isfinite(y).all()

    shutil.copyfile(src / src_manifest["labels"]["file"], out / "labels.txt")
    shutil.copyfile(src / src_manifest["labels"]["embeddings"], out / "labels.emb")
    manifest = {
        "format": bl.FORMAT_VERSION,
        "name": "unsupported-op",
        "embedding_dim": D,
        "logit_scale": 100.0,
        "source": "hand-built with onnx.helper by tools/testdata/make_unsupported_op_bundle.py",
        "licence": "none: synthetic test data, no licence restrictions",
        "image": {
            "file": "image.onnx", "input": "pixel_values", "output": "image_embeds",
            "sha256": bl.sha256_file(out / "image.onnx"), "precision": "fp32",
            "size": 224, "resize_shortest_edge": 224, "resize_filter": "bicubic", "crop": "center",
            "mean": bl.OPENAI_CLIP_MEAN, "std": bl.OPENAI_CLIP_STD,
        },
        "labels": {"file": "labels.txt", "embeddings": "labels.emb"},
    }
    bl.write_model_toml(out / "model.toml", manifest)
    bl.load_manifest(out)
    (out / "README.md").write_text(f"""# unsupported-op

A test bundle that is correct in every respect except one: its image.onnx contains
`com.microsoft.QLinearAdd` (node `qlinear_add_not_in_tract`), an operator tract-onnx 0.23 does not
implement. edgeclip must refuse it with a message naming the operator. onnxruntime runs it.

- graph: pixel_values [1,3,224,224] -> GlobalAveragePool -> Reshape [1,3] -> MatMul [3,{D}] ->
  Mul, Add, Clip, Cast u8 -> QLinearAdd (com.microsoft) -> Cast f32, Sub, Mul -> image_embeds [1,{D}];
  no QuantizeLinear/DequantizeLinear, so precision "fp32" is what the graph is apart from QLinearAdd
- labels.txt and labels.emb: copied from `{bl.rel(src)}` (D = {D}, embedded by that bundle's text encoder)
- made by: `tools/.venv/bin/python tools/testdata/make_unsupported_op_bundle.py` (run by tools/testdata/make_test_data.sh)
- licence: none, synthetic test data
""", encoding="utf-8")
    print(str(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
