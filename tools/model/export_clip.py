#!/usr/bin/env python3
"""Export a CLIP model to an edgeclip model bundle (models/FORMAT.md).

  tools/.venv/bin/python tools/model/export_clip.py --hf openai/clip-vit-base-patch32 --precision int8 --out models/clip-vit-b32-int8
  tools/.venv/bin/python tools/model/export_clip.py --open-clip MobileCLIP2-S0 --pretrained dfndr2b --out models/mobileclip2-s0-fp32
  tools/.venv/bin/python tools/model/export_clip.py --random tiny --no-text --out tests/data/bundles/tiny-fp32

The bundle gets image.onnx (pixel_values [1,3,S,S] f32 -> image_embeds [1,D], projected, not
normalized), text.onnx (input_ids [1,77] i64 -> text_embeds [1,D]; omitted with --no-text),
labels.txt, labels.emb (computed with the generated text.onnx in onnxruntime), model.toml and a
README.md model card. See tools/model/README.md.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import bundlelib as bl  # noqa: E402

DEFAULT_LABELS = """\
# Default labels of a bundle made by tools/model/export_clip.py (syntax: models/FORMAT.md).
person: a photo of a person; a person standing in a room
cat: a photo of a cat; a cat sleeping on a sofa
dog: a photo of a dog; a dog in the garden
car: a photo of a car; a car parked in a driveway
delivery van @0.45: a delivery van parked in front of a house
bicycle: a photo of a bicycle
package: a parcel on a doorstep; a cardboard box on the floor
garage door open: the garage door is open
!empty: an empty driveway; an empty room; an empty street
"""

# Randomly initialised transformers CLIPModel configurations (--random).
RANDOM_CONFIGS = {
    # Small enough that the committed test bundles stay under ~1 MB (the fp32 Conv patch embedding,
    # 3*32*32*48 weights, is most of it); the image side keeps the ViT-B/32 geometry (224 px,
    # 32 px patches: 7x7 + 1 tokens, 4x MLP).
    "tiny": dict(
        vision=dict(hidden_size=48, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                    patch_size=32, image_size=224),
        text=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  vocab_size=49408, max_position_embeddings=77),
        projection_dim=32,
    ),
    # OpenAI CLIP ViT-B/32 (openai/clip-vit-base-patch32) shapes.
    "vit-b-32": dict(
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    patch_size=32, image_size=224),
        text=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                  vocab_size=49408, max_position_embeddings=77),
        projection_dim=512,
    ),
    # TinyCLIP ViT-8M/16 + Text-3M (wkcn/TinyCLIP-ViT-8M-16-Text-3M-YFCC15M) shapes: 224 px, 16 px
    # patches (14x14 + 1 tokens), vision 256 wide x 10 layers, text 256 wide x 3 layers.
    "tinyclip-8m": dict(
        vision=dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=10, num_attention_heads=4,
                    patch_size=16, image_size=224),
        text=dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=3, num_attention_heads=4,
                  vocab_size=49408, max_position_embeddings=77),
        projection_dim=512,
    ),
}

OPSET = 17

# Operators we expect in an exported graph (all loaded by tract-onnx 0.23); anything else is
# reported with a warning so that a new upstream model does not silently grow exotic ops.
EXPECTED_OPS = {
    "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Softmax", "LayerNormalization", "ReduceMean",
    "Sigmoid", "Erf", "Tanh", "Conv", "Reshape", "Transpose", "Gather", "Concat", "Slice", "Squeeze",
    "Unsqueeze", "Shape", "Constant", "ArgMax", "Cast", "Expand", "Flatten", "Gemm", "Identity",
    "GlobalAveragePool", "ReduceSum", "Where", "Equal", "BatchNormalization", "Relu", "Clip",
    "AveragePool", "MaxPool", "Split", "Mod",
    # quantized
    "DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul", "QLinearConv", "QuantizeLinear",
    "DequantizeLinear",
}


def log(msg: str) -> None:
    print(f"[export_clip] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Source models
# --------------------------------------------------------------------------------------------

@dataclass
class Source:
    """A loaded CLIP with everything the bundle needs to know about it."""
    image_module: "torch.nn.Module"      # pixel_values -> image_embeds (what is exported)
    text_module: "torch.nn.Module"       # input_ids -> text_embeds (what is exported)
    ref_image: object                    # torch reference through the library's own API
    ref_text: object
    logit_scale: float
    embedding_dim: int
    image_size: int
    resize_shortest_edge: int
    resize_filter: str
    mean: list
    std: list
    source: str
    licence: str
    origin: str                          # longer text for the model card
    notes: list = field(default_factory=list)


def _tensor(x):
    import torch

    if torch.is_tensor(x):
        return x
    for attr in ("pooler_output", "image_embeds", "text_embeds"):
        v = getattr(x, attr, None)
        if v is not None:
            return v
    if isinstance(x, (tuple, list)):
        return x[0]
    raise TypeError(f"cannot take a tensor from {type(x)}")


def hf_wrappers(clip):
    """Export wrappers around a transformers CLIPModel. They call the model's own submodules
    (so every CLIPModel checkpoint works) but spell the top-level control flow out: no
    create_causal_mask machinery (the causal mask is a constant), no output dataclasses, and
    the EOT pooling is `argmax(input_ids)` as in OpenAI CLIP (EOT 49407 is the largest id)."""
    import torch
    from torch import nn

    vcfg = clip.vision_model.config
    grid = vcfg.image_size // vcfg.patch_size
    width = vcfg.hidden_size
    text_width = clip.text_model.config.hidden_size

    class HFImageEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            vm = clip.vision_model
            # CLIPVisionEmbeddings spelled out with static shapes (batch 1), so that the graph has
            # no Shape/Expand/Where arithmetic: Conv -> Reshape -> Transpose -> Concat(cls) -> Add(pos)
            self.patch_embedding = vm.embeddings.patch_embedding
            self.class_embedding = vm.embeddings.class_embedding
            self.position_embedding = vm.embeddings.position_embedding
            self.pre_layrnorm = vm.pre_layrnorm
            self.layers = vm.encoder.layers
            self.post_layernorm = vm.post_layernorm
            self.visual_projection = clip.visual_projection

        def forward(self, pixel_values):
            p = self.patch_embedding(pixel_values).reshape(1, width, grid * grid).transpose(1, 2)
            cls = self.class_embedding.reshape(1, 1, width)
            h = torch.cat([cls, p], dim=1) + self.position_embedding.weight.unsqueeze(0)
            h = self.pre_layrnorm(h)
            for layer in self.layers:
                h = layer(h, None)
            pooled = self.post_layernorm(h[:, 0, :])
            return self.visual_projection(pooled)

    class HFTextEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            tm = clip.text_model
            self.token_embedding = tm.embeddings.token_embedding
            self.position_embedding = tm.embeddings.position_embedding
            self.layers = tm.encoder.layers
            self.final_layer_norm = tm.final_layer_norm
            self.text_projection = clip.text_projection
            n = tm.config.max_position_embeddings
            mask = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)[None, None]
            self.register_buffer("causal_mask", mask, persistent=False)

        def forward(self, input_ids):
            n = self.causal_mask.shape[-1]
            h = self.token_embedding(input_ids) + self.position_embedding.weight[:n].unsqueeze(0)
            for layer in self.layers:
                h = layer(h, self.causal_mask)
            h = self.final_layer_norm(h)
            # ArgMax on i32 (onnxruntime has no i64 ArgMax kernel); batch is 1
            eot = input_ids.to(torch.int32).argmax(dim=-1)
            pooled = torch.index_select(h, 1, eot).reshape(1, text_width)
            return self.text_projection(pooled)

    def ref_image(x):
        return _tensor(clip.get_image_features(pixel_values=x))

    def ref_text(ids):
        return _tensor(clip.get_text_features(input_ids=ids))

    return HFImageEncoder().eval(), HFTextEncoder().eval(), ref_image, ref_text


def _size_value(d, *keys):
    """Reads a size from an image processor attribute that may be an int, a dict or a SizeDict."""
    if d is None:
        return None
    if isinstance(d, (int, float)):
        return int(d)
    for k in keys:
        v = d.get(k) if isinstance(d, dict) else getattr(d, k, None)
        if v is not None:
            return int(v)
    return None


def hf_preprocess(proc) -> dict:
    from transformers.image_utils import PILImageResampling

    resample = proc.resample
    filt = {int(PILImageResampling.BICUBIC): "bicubic", int(PILImageResampling.BILINEAR): "bilinear"}.get(
        int(resample))
    if filt is None:
        raise SystemExit(f"image processor uses resample={resample}; bundles support bicubic or bilinear")
    if not proc.do_resize or not proc.do_center_crop:
        raise SystemExit("image processor without resize + center crop is not expressible in model.toml")
    shortest = _size_value(proc.size, "shortest_edge")
    if shortest is None:
        raise SystemExit(f"image processor size {proc.size} is not a shortest-edge resize")
    crop_h = _size_value(proc.crop_size, "height")
    crop_w = _size_value(proc.crop_size, "width")
    if crop_h != crop_w:
        raise SystemExit(f"non-square crop {proc.crop_size}")
    if not proc.do_rescale or abs(float(proc.rescale_factor) - 1 / 255) > 1e-12 or not proc.do_normalize:
        raise SystemExit("image processor must rescale by 1/255 and normalize")
    return dict(image_size=crop_h, resize_shortest_edge=shortest, resize_filter=filt,
                mean=[float(v) for v in proc.image_mean], std=[float(v) for v in proc.image_std])


def _force_eager(model) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    for m in model.modules():
        cfg = getattr(m, "config", None)
        if cfg is not None and getattr(cfg, "_attn_implementation", "eager") != "eager":
            raise SystemExit(f"could not switch {type(m).__name__} to eager attention")


def load_hf(name: str, licence: str | None, source: str | None) -> Source:
    import torch
    from transformers import CLIPImageProcessorPil, CLIPModel

    log(f"loading transformers CLIPModel {name}")
    clip = CLIPModel.from_pretrained(name, attn_implementation="eager", dtype=torch.float32).eval()
    _force_eager(clip)
    proc = CLIPImageProcessorPil.from_pretrained(name)
    img, txt, ri, rt = hf_wrappers(clip)
    openai = name.startswith("openai/")
    if licence is None:
        if openai:
            licence = "MIT"
        else:
            licence = "unknown: check the upstream model card"
            log(f"WARNING: licence of {name} unknown; pass --licence")
    return Source(
        image_module=img, text_module=txt, ref_image=ri, ref_text=rt,
        logit_scale=math.exp(float(clip.logit_scale.detach())),
        embedding_dim=int(clip.config.projection_dim),
        **hf_preprocess(proc),
        source=source or f"{name} (transformers CLIPModel)",
        licence=licence,
        origin=(f"Weights: `{name}` loaded with transformers' CLIPModel"
                + (" (OpenAI CLIP, released under the MIT licence)." if openai else ".")),
    )


def load_random(config: str, seed: int) -> Source:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    spec = RANDOM_CONFIGS[config]
    common = dict(hidden_act="quick_gelu", layer_norm_eps=1e-5)
    cfg = CLIPConfig(
        text_config=dict(**spec["text"], **common, bos_token_id=bl.SOT_TOKEN, eos_token_id=bl.EOT_TOKEN,
                         pad_token_id=0),
        vision_config=dict(**spec["vision"], **common),
        projection_dim=spec["projection_dim"],
    )
    log(f"building a random CLIPModel '{config}' (seed {seed})")
    torch.manual_seed(seed)
    clip = CLIPModel._from_config(cfg, attn_implementation="eager", dtype=torch.float32).eval()
    _force_eager(clip)
    img, txt, ri, rt = hf_wrappers(clip)
    proc = CLIPImageProcessorPil()  # CLIP defaults: bicubic, shortest edge 224, crop 224, OpenAI mean/std
    return Source(
        image_module=img, text_module=txt, ref_image=ri, ref_text=rt,
        logit_scale=math.exp(float(clip.logit_scale.detach())),
        embedding_dim=spec["projection_dim"],
        **hf_preprocess(proc),
        source=f"random init (seed {seed}): tools/model/export_clip.py --random {config}",
        licence="none: random weights, no licence restrictions",
        origin=(f"Randomly initialised transformers CLIPModel, configuration `{config}` "
                f"(torch.manual_seed({seed}) then transformers' own initialisation). It recognises nothing; "
                f"it exists to test and benchmark the runtime. Configuration: {spec}, hidden_act quick_gelu."),
    )


def load_open_clip(arch: str, pretrained: str | None, licence: str | None, source: str | None,
                   seed: int = 0) -> Source:
    import open_clip
    import torch
    from torch import nn

    tag = pretrained or None
    # no tag and a plain architecture name: open_clip's random init (a local-dir:/hf-hub: checkpoint
    # loads its own weights and preprocessing without a tag)
    random_init = tag is None and not arch.startswith(("local-dir:", "hf-hub:"))
    notes = []
    force_pp = {}
    if random_init:
        # Random init: open_clip would fall back to its OpenAI defaults (bicubic, OpenAI mean/std),
        # which is not what the architecture's published weights use (MobileCLIP: bilinear, mean 0,
        # std 1). Take the preprocessing of its pretrained tags when they all agree.
        pcfgs = {tuple((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in sorted(c.items())
                       if k in ("mean", "std", "interpolation", "resize_mode"))
                 for t in open_clip.list_pretrained_tags_by_model(arch)
                 for c in [open_clip.get_pretrained_cfg(arch, t)]}
        if len(pcfgs) == 1:
            force_pp = {f"image_{k}": v for k, v in next(iter(pcfgs))}
            notes.append(f"Random weights; preprocessing of {arch}'s published weights "
                         f"({', '.join(open_clip.list_pretrained_tags_by_model(arch))}): {force_pp}.")
        else:
            notes.append(f"Random weights; open_clip's default preprocessing ({arch} has "
                         f"{len(pcfgs)} distinct pretrained preprocessing configs).")
    log(f"loading open_clip {arch} pretrained={tag}" + (f" (random init, seed {seed})" if random_init else ""))
    torch.manual_seed(seed)  # open_clip/timm initialise with torch's global RNG (random init)
    model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=tag, **force_pp)
    model.eval()
    if getattr(model, "logit_bias", None) is not None:
        raise SystemExit(f"{arch} is a SigLIP-style (sigmoid) model; bundle format 1 assumes a softmax CLIP")
    tokenizer = open_clip.get_tokenizer(arch)
    if type(tokenizer).__name__ != "SimpleTokenizer" or getattr(tokenizer, "context_length", 77) != 77:
        raise SystemExit(f"{arch} does not use the OpenAI CLIP BPE tokenizer with 77 tokens "
                         f"({type(tokenizer).__name__}); bundle format 1 only knows 'clip-bpe'")
    if getattr(tokenizer, "reduction_fn", None) is not None:
        raise SystemExit(f"{arch}'s tokenizer uses a reduction mask; only plain truncation is supported")
    if "mobileclip" in arch.lower():
        from timm.utils import reparameterize_model

        model = reparameterize_model(model)
        model.eval()
        notes.append("MobileCLIP blocks re-parameterized for inference (timm.utils.reparameterize_model).")

    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg["size"]
    size = size if isinstance(size, int) else (size[0] if size[0] == size[1] else None)
    if size is None:
        raise SystemExit(f"non-square input size {cfg['size']}")
    if cfg.get("resize_mode", "shortest") != "shortest":
        raise SystemExit(f"resize_mode {cfg.get('resize_mode')!r} is not expressible in model.toml "
                         f"(only shortest-edge resize + center crop)")
    filt = cfg.get("interpolation", "bicubic")
    if filt not in ("bicubic", "bilinear"):
        raise SystemExit(f"interpolation {filt!r} not supported")
    notes.append("open_clip's torchvision CenterCrop rounds the crop offset (round((h - S) / 2)) where "
                 "model.toml's crop takes (h - S) // 2: for an odd difference the crop is one pixel off.")

    class OCImage(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, pixel_values):
            return self.m.encode_image(pixel_values, normalize=False)

    class OCText(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, input_ids):
            return self.m.encode_text(input_ids, normalize=False)

    with torch.no_grad():
        dim = int(model.encode_image(torch.zeros(1, 3, size, size)).shape[-1])
    if licence is None and random_init:
        licence = "none: random weights, no licence restrictions"
    elif licence is None:
        licence = "MIT" if tag == "openai" else "unknown: check the upstream model card"
        if tag != "openai":
            log(f"WARNING: licence of {arch}/{tag} unknown; pass --licence")
    return Source(
        image_module=OCImage().eval(), text_module=OCText().eval(),
        ref_image=lambda x: model.encode_image(x, normalize=False),
        ref_text=lambda ids: model.encode_text(ids, normalize=False),
        logit_scale=math.exp(float(model.logit_scale.detach())),
        embedding_dim=dim, image_size=size, resize_shortest_edge=size, resize_filter=filt,
        mean=[float(v) for v in cfg["mean"]], std=[float(v) for v in cfg["std"]],
        source=source or (f"open_clip {arch} pretrained={tag}" if not random_init else
                          f"random init (seed {seed}): open_clip {arch} --pretrained ''"),
        licence=licence,
        origin=(f"Weights: the local open_clip checkpoint `{bl.rel(arch.split(':', 1)[1])}` "
                f"(open_clip_torch {open_clip.__version__})." if arch.startswith("local-dir:") else
                f"Weights: open_clip `{arch}`, pretrained tag `{tag}` (open_clip_torch {open_clip.__version__})."
                if not random_init else
                f"Randomly initialised open_clip `{arch}` (torch.manual_seed({seed}) then open_clip's own "
                f"initialisation, open_clip_torch {open_clip.__version__}). It recognises nothing; it exists "
                f"to test and benchmark the runtime with the architecture's shapes and operators."),
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# ONNX export, checks, quantization
# --------------------------------------------------------------------------------------------

def export_onnx(module, example, path: Path, input_name: str, output_name: str) -> None:
    import torch

    kwargs = dict(input_names=[input_name], output_names=[output_name], opset_version=OPSET,
                  do_constant_folding=True, export_params=True)
    import warnings

    # nn.MultiheadAttention (open_clip) takes a fused fast path in eval mode
    # (aten::_native_multi_head_attention) that the ONNX exporter cannot translate
    if hasattr(torch.backends, "mha"):
        torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        try:
            torch.onnx.export(module, (example,), str(path), dynamo=False, **kwargs)
        except TypeError:  # torch without the `dynamo` argument: the TorchScript exporter is the only one
            torch.onnx.export(module, (example,), str(path), **kwargs)


def simplify_graph(path: Path) -> None:
    """Removes what the TorchScript exporter leaves that is pure noise: Identity nodes (it emits
    them for deduplicated initializers) and Casts to the type their input already has (from
    softmax(dtype=float32)). Consumers are rewired to the node's input."""
    import onnx

    m = onnx.load(str(path))
    g = m.graph
    inferred = onnx.shape_inference.infer_shapes(m)
    types = {t.name: t.data_type for t in g.initializer}
    for v in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        types[v.name] = v.type.tensor_type.elem_type
    outputs = {o.name for o in g.output}
    rename = {}
    keep = []
    for n in g.node:
        ins = [rename.get(i, i) for i in n.input]
        del n.input[:]
        n.input.extend(ins)
        noop = n.op_type == "Identity" or (
            n.op_type == "Cast" and types.get(n.input[0]) is not None
            and types.get(n.input[0]) == onnx.helper.get_attribute_value(n.attribute[0]))
        if noop and n.output[0] not in outputs:
            rename[n.output[0]] = n.input[0]
        else:
            keep.append(n)
    if len(keep) == len(g.node):
        return
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    for vi in list(g.value_info):
        if vi.name in rename:
            g.value_info.remove(vi)
    unused = [t for t in g.initializer if t.name not in used and t.name not in outputs]
    for t in unused:
        g.initializer.remove(t)
    onnx.save(m, str(path))


def op_counts(path: Path) -> dict:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    c = collections.Counter()

    def walk(g):
        for n in g.node:
            c[n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"] += 1
            for a in n.attribute:
                if a.g.node:
                    walk(a.g)

    walk(m.graph)
    return dict(sorted(c.items()))


def check_onnx(path: Path, input_name: str, output_name: str, in_shape, out_shape) -> dict:
    import onnx

    onnx.checker.check_model(str(path))
    m = onnx.load(str(path), load_external_data=False)
    ins = [i for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}]
    if [i.name for i in ins] != [input_name] or [o.name for o in m.graph.output] != [output_name]:
        raise SystemExit(f"{path}: inputs {[i.name for i in ins]} outputs {[o.name for o in m.graph.output]}")

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]

    if dims(ins[0]) != list(in_shape) or dims(m.graph.output[0]) != list(out_shape):
        raise SystemExit(f"{path}: shapes {dims(ins[0])} -> {dims(m.graph.output[0])}, "
                         f"expected {list(in_shape)} -> {list(out_shape)}")
    opsets = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    ops = op_counts(path)
    unexpected = sorted(set(ops) - EXPECTED_OPS)
    if unexpected:
        log(f"WARNING: {path.name} has operators outside the expected set: {unexpected}")
    return dict(ops=ops, opsets=opsets, ir_version=m.ir_version)


def ort_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def quantize_int8_dynamic(src: Path, dst: Path, tmp: Path) -> None:
    """The recipe tract runs with real int8 kernels: shape inference without ORT's graph
    optimisation (which would fuse MatMul+Add into Gemm and then QGemm, unknown to tract), then
    dynamic quantization of MatMul only (MatMulInteger, u8 activations with a run-time scale,
    s8 per-tensor weights); the Conv patch embedding stays fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = tmp / f"{src.stem}.pre.onnx"
    try:
        quant_pre_process(str(src), str(pre), skip_optimization=True)
    except AssertionError:
        # onnxruntime's symbolic shape inference asserts on open_clip's text graph (a Reshape whose
        # shape has no literal rank); ONNX's own shape inference is all quantize_dynamic needs.
        log(f"{src.name}: symbolic shape inference failed; using ONNX shape inference only")
        quant_pre_process(str(src), str(pre), skip_optimization=True, skip_symbolic_shape=True)
    quantize_dynamic(str(pre), str(dst), op_types_to_quantize=["MatMul"], per_channel=False,
                     reduce_range=False, weight_type=QuantType.QInt8,
                     extra_options={"MatMulConstBOnly": True})


# A Gather table is quantized when it holds at least this many weights: the token embedding of a
# text encoder (49408 x width) is, the position embeddings (77 x width) are not worth it.
GATHER_QUANT_MIN_WEIGHTS = 1 << 20


def quantize_gather_tables(path: Path) -> list:
    """Store large constant Gather tables (the text encoder's token embedding) as int8 with one
    fp32 scale per row: Gather(table) becomes Gather(table_s8) -> Cast(f32) -> Mul(Gather(scales)).

    quantize_dynamic only quantizes MatMul, yet the token table is most of a small text encoder
    (49408 rows). Per-row symmetric scales (max |w| / 127) keep each token's vector to within half
    a step of 1/127 of its own largest weight. Every operator used is plain ONNX that tract runs.
    Returns [(table name, shape)] of the tables replaced."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    done, new_nodes = [], []
    for node in g.node:
        table = inits.get(node.input[0]) if node.op_type == "Gather" else None
        attr_axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if (table is None or table.data_type != onnx.TensorProto.FLOAT or len(table.dims) != 2
                or attr_axis != 0 or math.prod(table.dims) < GATHER_QUANT_MIN_WEIGHTS):
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(table).astype(np.float32)
        scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        base = table.name
        g.initializer.remove(table)
        g.initializer.extend([numpy_helper.from_array(q, f"{base}_s8"),
                              numpy_helper.from_array(scale.astype(np.float32), f"{base}_row_scale")])
        ids, out = node.input[1], node.output[0]
        new_nodes += [
            helper.make_node("Gather", [f"{base}_s8", ids], [f"{out}_s8"], axis=0),
            helper.make_node("Cast", [f"{out}_s8"], [f"{out}_f32"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Gather", [f"{base}_row_scale", ids], [f"{out}_scale"], axis=0),
            helper.make_node("Mul", [f"{out}_f32", f"{out}_scale"], [out]),
        ]
        done.append((base, list(table.dims)))
    del g.node[:]
    g.node.extend(new_nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return done


def quantize_int8_qoperator(src: Path, dst: Path, tmp: Path, calib: list) -> None:
    """Static QOperator quantization limited to MatMul (constant B) and Conv: QLinearMatMul /
    QLinearConv with Quantize/DequantizeLinear around them; MinMax calibration on `calib`."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"pixel_values": x} for x in calib])

        def get_next(self):
            return next(self.it, None)

    pre = tmp / f"{src.stem}.pre.onnx"
    quant_pre_process(str(src), str(pre), skip_optimization=True)
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["MatMul", "Conv"], per_channel=False, reduce_range=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"MatMulConstBOnly": True})


def cosine(a, b) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def sample_images(src: Source, n_random: int, seed: int) -> list:
    """Test inputs: the committed sample images (preprocessed per the bundle) + random tensors."""
    from PIL import Image

    out = []
    img_dir = bl.REPO_ROOT / "tests" / "data" / "images"
    for p in sorted(img_dir.glob("*.png")) if img_dir.is_dir() else []:
        with Image.open(p) as im:
            out.append(bl.preprocess_pil(im, src.image_size, src.resize_shortest_edge, src.resize_filter,
                                         src.mean, src.std))
    rng = np.random.default_rng(seed)
    for _ in range(n_random):
        out.append(rng.standard_normal((1, 3, src.image_size, src.image_size)).astype(np.float32))
    return out


def compare(session, ref_fn, inputs, input_name) -> dict:
    import torch

    cos, rel = [], []
    with torch.no_grad():
        for x in inputs:
            got = session.run(None, {input_name: x})[0]
            want = ref_fn(torch.from_numpy(x)).numpy()
            cos.append(cosine(got, want))
            rel.append(float(np.abs(got - want).max() / (np.abs(want).max() + 1e-12)))
    return dict(n=len(inputs), min_cosine=min(cos), mean_cosine=float(np.mean(cos)), max_rel_err=max(rel))


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def fmt_cos(c: float) -> str:
    return f"{c:.6f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src_g = ap.add_mutually_exclusive_group(required=True)
    src_g.add_argument("--hf", metavar="NAME_OR_DIR", help="transformers CLIPModel (hub name or local dir)")
    src_g.add_argument("--open-clip", metavar="ARCH", help="open_clip architecture, with --pretrained TAG")
    src_g.add_argument("--random", choices=sorted(RANDOM_CONFIGS), help="randomly initialised CLIPModel")
    ap.add_argument("--pretrained", metavar="TAG", default=None,
                    help="open_clip pretrained tag (e.g. openai, dfndr2b); empty = random open_clip init")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed for --random and for --open-clip with --pretrained '' (default 0)")
    ap.add_argument("--precision", choices=["fp32", "int8", "int8-dynamic", "int8-qoperator"], default="fp32",
                    help="image encoder precision; int8 = int8-dynamic (MatMulInteger)")
    ap.add_argument("--text-precision", choices=["fp32", "int8", "int8-dynamic"], default=None,
                    help="text encoder precision (default: fp32 for fp32, int8-dynamic otherwise)")
    ap.add_argument("--token-table", choices=["fp32", "int8"], default=None,
                    help="storage of the text encoder's token embedding table (default: int8 for an "
                         "int8 text encoder, fp32 for an fp32 one); int8 also shrinks an fp32 text encoder "
                         "whose MatMuls stay fp32, as the test bundle tiny-text does")
    ap.add_argument("--no-text", action="store_true",
                    help="do not ship text.onnx (labels.emb is still computed with it, from a temp dir)")
    ap.add_argument("--labels", metavar="FILE", help="labels file (default: a small built-in list)")
    ap.add_argument("--out", required=True, metavar="DIR", help="bundle directory to write")
    ap.add_argument("--name", help="bundle name in model.toml (default: the directory name)")
    ap.add_argument("--licence", help="licence of the weights (default: MIT for OpenAI weights)")
    ap.add_argument("--source", help="override the model.toml 'source' string")
    ap.add_argument("--calib-images", metavar="DIR",
                    help="int8-qoperator calibration images (default: tests/data/images + random)")
    ap.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads (default 1)")
    ap.add_argument("--card-extra", metavar="FILE",
                    help="markdown appended to the model card (training and evaluation of a model "
                         "made here, such as models/tiny-shapes)")
    ap.add_argument("--force", action="store_true", help="overwrite a non-empty --out directory")
    args = ap.parse_args(argv)

    precision = {"int8": "int8-dynamic"}.get(args.precision, args.precision)
    text_precision = {"int8": "int8-dynamic"}.get(args.text_precision or "", args.text_precision)
    if text_precision is None:
        text_precision = "fp32" if precision == "fp32" else "int8-dynamic"
    token_table = args.token_table or ("fp32" if text_precision == "fp32" else "int8")

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise SystemExit(f"{out} exists and is not empty (use --force to overwrite)")

    if args.random:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t_start = time.time()
    import onnx
    import onnxruntime
    import torch
    import transformers

    torch.set_num_threads(args.threads)

    labels_text = Path(args.labels).read_text(encoding="utf-8") if args.labels else DEFAULT_LABELS
    labels = bl.parse_labels(labels_text, args.labels or "<built-in labels>")

    if args.hf:
        src = load_hf(args.hf, args.licence, args.source)
    elif args.open_clip:
        src = load_open_clip(args.open_clip, args.pretrained, args.licence, args.source, args.seed)
    else:
        src = load_random(args.random, args.seed)
        if args.licence:
            src.licence = args.licence
        if args.source:
            src.source = args.source
    D, S = src.embedding_dim, src.image_size

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("image.onnx", "text.onnx", "labels.txt", "labels.emb", "model.toml", "README.md"):
        (out / stale).unlink(missing_ok=True)

    report = {}
    with tempfile.TemporaryDirectory(prefix="edgeclip-export-") as tmpd:
        tmp = Path(tmpd)

        # ---- image encoder
        t0 = time.time()
        img_fp32 = tmp / "image.fp32.onnx"
        log(f"exporting image encoder ({S}x{S} -> {D})")
        export_onnx(src.image_module, torch.zeros(1, 3, S, S), img_fp32, "pixel_values", "image_embeds")
        simplify_graph(img_fp32)
        check_onnx(img_fp32, "pixel_values", "image_embeds", [1, 3, S, S], [1, D])
        inputs = sample_images(src, n_random=2, seed=args.seed + 1)
        if precision == "fp32":
            img_final = img_fp32
        elif precision == "int8-dynamic":
            img_final = tmp / "image.int8.onnx"
            quantize_int8_dynamic(img_fp32, img_final, tmp)
        else:
            calib = inputs
            if args.calib_images:
                from PIL import Image

                calib = []
                for p in sorted(Path(args.calib_images).iterdir()):
                    if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
                        with Image.open(p) as im:
                            calib.append(bl.preprocess_pil(im, S, src.resize_shortest_edge, src.resize_filter,
                                                           src.mean, src.std))
            img_final = tmp / "image.qop.onnx"
            quantize_int8_qoperator(img_fp32, img_final, tmp, calib)
        info = check_onnx(img_final, "pixel_values", "image_embeds", [1, 3, S, S], [1, D])
        sess = ort_session(img_final, args.threads)
        report["image"] = dict(info, precision=precision, vs_torch=compare(sess, src.ref_image, inputs, "pixel_values"))
        if precision != "fp32":
            sess32 = ort_session(img_fp32, args.threads)
            c = [cosine(sess.run(None, {"pixel_values": x})[0], sess32.run(None, {"pixel_values": x})[0])
                 for x in inputs]
            report["image"]["vs_fp32_onnx_min_cosine"] = min(c)
        report["image"]["seconds"] = time.time() - t0
        log(f"image.onnx: {precision}, opsets {info['opsets']}, IR {info['ir_version']}, ops {info['ops']}")
        log(f"image.onnx: onnxruntime vs torch: {report['image']['vs_torch']}")
        shutil.copyfile(img_final, out / "image.onnx")

        # ---- text encoder
        t0 = time.time()
        txt_fp32 = tmp / "text.fp32.onnx"
        log(f"exporting text encoder (77 tokens -> {D})")
        export_onnx(src.text_module, torch.from_numpy(bl.tokenize("a photo of a cat")), txt_fp32,
                    "input_ids", "text_embeds")
        simplify_graph(txt_fp32)
        check_onnx(txt_fp32, "input_ids", "text_embeds", [1, 77], [1, D])
        if text_precision == "fp32":
            txt_final = txt_fp32
        else:
            txt_final = tmp / "text.int8.onnx"
            quantize_int8_dynamic(txt_fp32, txt_final, tmp)
        if token_table == "int8":
            for name, shape in quantize_gather_tables(txt_final):
                log(f"text.onnx: Gather table {name} {shape} stored as int8 with per-row scales")
        tinfo = check_onnx(txt_final, "input_ids", "text_embeds", [1, 77], [1, D])
        tsess = ort_session(txt_final, args.threads)
        prompts = [p for lab in labels for p in lab.prompts]
        probe = prompts + ["", "a " * 100]  # empty prompt, and one truncated at 77 tokens
        tinputs = [bl.tokenize(p) for p in probe]
        report["text"] = dict(tinfo, precision=text_precision, token_table=token_table, vs_torch=compare(tsess, src.ref_text, tinputs, "input_ids"))
        log(f"text.onnx: {text_precision}, ops {tinfo['ops']}")
        log(f"text.onnx: onnxruntime vs torch: {report['text']['vs_torch']}")

        # ---- labels.emb, with the text encoder just generated
        text_sha = bl.sha256_file(txt_final)
        emb = bl.LabelEmbeddings(dim=D, text_encoder_sha256=bytes.fromhex(text_sha))
        for lab in labels:
            vecs = np.concatenate([tsess.run(None, {"input_ids": bl.tokenize(p)})[0] for p in lab.prompts])
            emb.labels.append(bl.EmbeddedLabel(lab.name, lab.prompts, bl.ensemble(vecs)))
        (out / "labels.emb").write_bytes(emb.to_bytes())
        (out / "labels.txt").write_text(labels_text, encoding="utf-8")
        if not args.no_text:
            shutil.copyfile(txt_final, out / "text.onnx")
        report["text"]["seconds"] = time.time() - t0

    # ---- model.toml
    name = args.name or out.resolve().name
    manifest = {
        "format": bl.FORMAT_VERSION,
        "name": name,
        "embedding_dim": D,
        "logit_scale": float(src.logit_scale),
        "source": src.source,
        "licence": src.licence,
        "image": {
            "file": "image.onnx", "input": "pixel_values", "output": "image_embeds",
            "sha256": bl.sha256_file(out / "image.onnx"), "precision": precision,
            "size": S, "resize_shortest_edge": src.resize_shortest_edge, "resize_filter": src.resize_filter,
            "crop": "center", "mean": src.mean, "std": src.std,
        },
    }
    if not args.no_text:
        manifest["text"] = {
            "file": "text.onnx", "input": "input_ids", "output": "text_embeds",
            "sha256": bl.sha256_file(out / "text.onnx"), "precision": text_precision,
            "tokenizer": "clip-bpe", "context_length": 77,
        }
    manifest["labels"] = {"file": "labels.txt", "embeddings": "labels.emb"}
    bl.write_model_toml(out / "model.toml", manifest)
    bl.load_manifest(out)  # round trip + sha256 check

    # ---- model card
    cmd_args = []
    for a in (sys.argv[1:] if argv is None else argv):
        p = Path(a)
        cmd_args.append(bl.rel(a) if (p.is_absolute() or os.sep in a) and (p.exists() or p.parent.exists()) else a)
    command = "tools/.venv/bin/python tools/model/export_clip.py " + " ".join(shlex.quote(a) for a in cmd_args)
    write_card(out, manifest, src, report, command, text_sha, args, labels)
    log(f"wrote {out} in {time.time() - t_start:.0f} s")
    for f in sorted(out.iterdir()):
        log(f"  {f.name:12s} {f.stat().st_size:>12,d} bytes")
    print(str(out))
    return 0


def write_card(out: Path, manifest: dict, src: Source, report: dict, command: str, text_sha: str, args,
               labels) -> None:
    import onnx
    import onnxruntime
    import torch
    import transformers

    prec = manifest["image"]["precision"]
    recipe = {
        "fp32": "None: fp32 weights and activations.",
        "int8-dynamic": (
            "onnxruntime dynamic quantization of MatMul only: "
            "`quant_pre_process(..., skip_optimization=True)` (shape inference without ORT's graph "
            "optimisation, which would fuse MatMul+Add into Gemm and then QGemm, an operator tract lacks), "
            "then `quantize_dynamic(op_types_to_quantize=[\"MatMul\"], weight_type=QInt8, per_channel=False, "
            "reduce_range=False, MatMulConstBOnly=True)`: `DynamicQuantizeLinear` + `MatMulInteger` "
            "(u8 activations with a per-run scale, s8 per-tensor weights). The attention "
            "products (activation x activation) stay fp32, and so does every other operator "
            "(on the image side the Conv patch embedding)."),
        "int8-qoperator": (
            "onnxruntime static QOperator quantization limited to MatMul (constant B) and Conv: "
            "`quant_pre_process(..., skip_optimization=True)` then `quantize_static(quant_format=QOperator, "
            "op_types_to_quantize=[\"MatMul\", \"Conv\"], activation_type=QUInt8, weight_type=QInt8, "
            "per_channel=False, MatMulConstBOnly=True)`, MinMax calibration on "
            + (f"`{bl.rel(args.calib_images)}`" if args.calib_images else
               "the sample images of tests/data/images and random tensors") + "."),
    }
    img, txt = report["image"], report["text"]
    lines = [
        f"# {manifest['name']}",
        "",
        "An edgeclip model bundle (format 1, see `models/FORMAT.md`).",
        "",
        "## Origin",
        "",
        src.origin,
        "",
        f"- source: {manifest['source']}",
        f"- licence: {manifest['licence']}",
        f"- made by: `{command}`",
        f"- tools: torch {torch.__version__}, transformers {transformers.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; ONNX opset {OPSET}, TorchScript exporter",
        "",
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "| --- | ---: | --- |",
    ]
    for f in ("image.onnx", "text.onnx", "labels.txt", "labels.emb"):
        p = out / f
        if p.exists():
            lines.append(f"| {f} | {p.stat().st_size:,} | `{bl.sha256_file(p)}` |")
    lines += [
        "",
        f"Embedding dimension {manifest['embedding_dim']}, logit scale {manifest['logit_scale']:.6g}.",
        f"Input {manifest['image']['size']}x{manifest['image']['size']}: shortest edge resized to "
        f"{manifest['image']['resize_shortest_edge']} ({manifest['image']['resize_filter']}), center crop, "
        f"mean {manifest['image']['mean']}, std {manifest['image']['std']}.",
        "",
    ]
    if args.no_text:
        lines += [
            f"text.onnx is not shipped (`--no-text`). labels.emb was computed with the text encoder generated "
            f"in the same run ({txt['precision']}, sha256 `{text_sha}`); a changed labels file cannot be "
            "embedded on the board with this bundle.",
            "",
        ]
    lines += [
        "## Quantization",
        "",
        f"Image encoder ({prec}): {recipe[prec]}",
        "",
        f"Text encoder ({txt['precision']}): {recipe[txt['precision']]}"
        + (" Constant Gather tables of at least 2^20 weights (the token embedding) are stored as "
           "int8 with one fp32 scale per row, max |w| / 127 (`Gather -> Cast -> Mul`)."
           if txt.get("token_table") == "int8" else ""),
        "",
        "## Agreement with the source model",
        "",
        ("Zero-shot accuracy is measured below. " if args.card_extra else
         "No zero-shot benchmark was run (no data sets on the export machine). ")
        + "Agreement of the exported graphs, run in onnxruntime, with the source torch model:",
        "",
        f"- image encoder: min cosine {fmt_cos(img['vs_torch']['min_cosine'])} over {img['vs_torch']['n']} inputs "
        f"(the sample images of tests/data/images preprocessed as above, and random tensors)"
        + (f"; min cosine to the fp32 ONNX graph {fmt_cos(img['vs_fp32_onnx_min_cosine'])}"
           if "vs_fp32_onnx_min_cosine" in img else ""),
        f"- text encoder: min cosine {fmt_cos(txt['vs_torch']['min_cosine'])} over {txt['vs_torch']['n']} prompts "
        "(the label prompts, an empty prompt and one truncated at 77 tokens)",
        "",
        "Operators in image.onnx: " + ", ".join(f"{k} {v}" for k, v in img["ops"].items()) + ".",
        "",
    ]
    if src.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in src.notes] + [""]
    lines += ["## Labels", "", f"{len(labels)} labels in labels.txt; labels.emb holds, for each, its prompts "
              "and the mean of their L2-normalized embeddings, normalized again.", ""]
    if args.card_extra:
        lines += [Path(args.card_extra).read_text(encoding="utf-8").rstrip(), ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
