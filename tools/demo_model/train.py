#!/usr/bin/env python3
"""Contrastive trainer for the tiny-shapes demo CLIP (open_clip CLIP, ModifiedResNet image tower).

Scenes are rendered on the fly by render.py (sample i of the run = render_scene(seed, i,
difficulty(i))), so a run is a pure function of its arguments. The model is open_clip's `CLIP`
with a ModifiedResNet (OpenAI RN50 design: 3-conv stem, anti-aliased bottlenecks, attention
pooling) at small widths, 224 px input, and a narrow text transformer with the standard CLIP BPE
tokenizer (vocabulary 49408, 77 tokens).

The checkpoint directory (--out) is an open_clip "local-dir": `open_clip_config.json`
({"model_cfg", "preprocess_cfg"}) + `open_clip_model.safetensors`, which tools/model/export_clip.py
loads with `--open-clip local-dir:DIR --pretrained ''`.

Loss: CLIP's symmetric InfoNCE, except that pairs in the batch whose scenes have the same content
(same multiset of colour x shape, see render.py's key) count as positives (soft targets), so that
two "a red circle" images are not pushed apart.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # noqa: E402

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def model_cfg(args):
    return {
        "embed_dim": args.embed_dim,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": args.vision_layers, "width": args.vision_width,
                       "patch_size": None},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": args.text_width,
                     "heads": args.text_heads, "layers": args.text_layers},
    }


def build_model(cfg):
    import open_clip
    return open_clip.CLIP(**{k: v for k, v in cfg.items()})


class Scenes(torch.utils.data.Dataset):
    def __init__(self, seed, n, curriculum, batch=64, hard_groups=0):
        self.seed, self.n, self.curriculum = seed, n, curriculum
        self.batch, self.hard_groups = batch, hard_groups
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self):
        return self.n

    def difficulty(self, i):
        if self.curriculum <= 0:
            return 1.0
        return min(1.0, (i / self.n) / self.curriculum)

    def __getitem__(self, i):
        b, j = divmod(i, self.batch)
        force = None
        if j < 8 * self.hard_groups:  # shape-hard group: 8 scenes, one colour, different shapes
            c, shapes = render.hard_group(self.seed, b, j // 8)
            force = (c, shapes[j % 8])
        img, cap, key = render.render_scene(self.seed, i, self.difficulty(i), force=force)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
        return (x - self.mean) / self.std, cap, key


def collate(batch):
    xs, caps, keys = zip(*batch)
    return torch.stack(xs), list(caps), list(keys)


def save_checkpoint(model, cfg, out: Path, meta: dict):
    from safetensors.torch import save_file
    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": cfg,
        "preprocess_cfg": {"mean": list(MEAN), "std": list(STD), "interpolation": "bicubic",
                           "resize_mode": "shortest"},
    }, indent=1))
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(out / "open_clip_model.safetensors"))
    (out / "train_meta.json").write_text(json.dumps(meta, indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="checkpoint dir (put it under target/)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--curriculum", type=float, default=0.3,
                    help="fraction of the run over which scene difficulty ramps 0 -> 1 (0 = off)")
    ap.add_argument("--hard-groups", type=int, default=0,
                    help="per batch, this many groups of 8 single-shape scenes sharing one colour with "
                         "different shapes (shape-hard negatives; 0 = off, as in probe1)")
    ap.add_argument("--vision-width", type=int, default=16)
    ap.add_argument("--vision-layers", type=int, nargs=4, default=[1, 1, 1, 1])
    ap.add_argument("--text-width", type=int, default=64)
    ap.add_argument("--text-heads", type=int, default=4)
    ap.add_argument("--text-layers", type=int, default=3)
    ap.add_argument("--embed-dim", type=int, default=128)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--bench", type=int, default=0, help="only time N steps and exit")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this checkpoint dir's weights (a later stage of a curriculum); "
                         "its model config must match the one given here")
    args = ap.parse_args(argv)

    import open_clip
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg = model_cfg(args)
    model = build_model(cfg)
    if args.init:
        from safetensors.torch import load_file
        init_cfg = json.loads((args.init / "open_clip_config.json").read_text())["model_cfg"]
        if init_cfg != cfg:
            sys.exit(f"--init {args.init}: its model config {init_cfg} differs from this run's {cfg}")
        model.load_state_dict(load_file(str(args.init / "open_clip_model.safetensors")))
        print(f"initialised from {args.init}", flush=True)
    model = model.to(memory_format=torch.channels_last)  # ~1.5x faster convs on CPU
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    n_vis = sum(p.numel() for p in model.visual.parameters())
    print(f"params: total {n_params/1e6:.2f}M, vision {n_vis/1e6:.2f}M, text {(n_params-n_vis)/1e6:.2f}M "
          f"(token embedding {model.token_embedding.weight.numel()/1e6:.2f}M)", flush=True)
    tok = open_clip.get_tokenizer("RN50")  # SimpleTokenizer, CLIP BPE, 77 tokens
    tok_cache: dict[str, torch.Tensor] = {}

    def tokenize(caps):
        for c in caps:
            if c not in tok_cache:
                tok_cache[c] = tok([c])[0]
        return torch.stack([tok_cache[c] for c in caps])

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-6)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    steps = args.bench or args.steps
    ds = Scenes(args.seed, steps * args.batch, args.curriculum if not args.bench else 0,
                args.batch, args.hard_groups)
    dl = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=False, num_workers=args.workers,
                                     collate_fn=collate, prefetch_factor=4 if args.workers else None,
                                     persistent_workers=False)
    out = Path(args.out)
    t0 = time.perf_counter()
    t_last, n_last = t0, 0
    meta = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "model_cfg": cfg, "params": n_params}
    for step, (x, caps, keys) in enumerate(dl):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        ids = tokenize(caps)
        img_f = F.normalize(model.encode_image(x.contiguous(memory_format=torch.channels_last)), dim=-1)
        txt_f = F.normalize(model.encode_text(ids), dim=-1)
        scale = model.logit_scale.exp()
        logits = scale * img_f @ txt_f.t()
        k = np.array(keys)
        pos = torch.from_numpy((k[:, None] == k[None, :]).astype(np.float32))
        target = pos / pos.sum(1, keepdim=True)
        loss = 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                      + torch.sum(-target * F.log_softmax(logits.t(), 1), 1).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 20 == 0 or step == steps - 1:
            now = time.perf_counter()
            ips = (step + 1 - n_last) * args.batch / max(1e-6, now - t_last) if step else 0.0
            t_last, n_last = now, step + 1
            with torch.no_grad():
                acc = (logits.argmax(1) == torch.arange(len(k))).float().mean().item()
                pacc = pos[torch.arange(len(k)), logits.argmax(1)].mean().item()
            print(f"step {step:5d}/{steps} loss {loss.item():.3f} i2t-pos-acc {pacc:.2f} exact {acc:.2f} "
                  f"scale {scale.item():.1f} lr {lr_at(step):.2e} diff {ds.difficulty(step*args.batch):.2f} "
                  f"{ips:.1f} img/s elapsed {now - t0:.0f}s", flush=True)
        if not args.bench and args.save_every and step and step % args.save_every == 0:
            meta.update(step=step, elapsed_s=time.perf_counter() - t0)
            save_checkpoint(model, cfg, out, meta)
    el = time.perf_counter() - t0
    print(f"done: {steps} steps, {steps*args.batch} images in {el:.0f}s = {steps*args.batch/el:.1f} img/s", flush=True)
    if not args.bench:
        model.eval()
        meta.update(step=steps, elapsed_s=el, images=steps * args.batch)
        save_checkpoint(model, cfg, out, meta)
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
