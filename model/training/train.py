"""Train an SR preset on a prepared photo folder with the BasicSR recipe, resumably.

    python -m model.training.train --preset mambairv2_lightSR_x4 --data data/photos --steps 2000 \\
        --batch 16 --patch 48 --out runs/v2light_x4 [--device cuda] [--init nearest] [--warmup 50] [--resume]
        [--weights weights/mambairv2_lightSR_x4_demo.pth] [--router-lr-mult 10] [--router-eps 1e-16]
        [--prompt-scale 100]

Recipe (BasicSR / the official option files): L1 loss; Adam lr 2e-4, betas (0.9, 0.99);
random LR patches of ``--patch`` px with the aligned HR patch (``patch * scale`` px); random
horizontal/vertical flips and 90-degree rotations; LR images made once per image by MATLAB
bicubic downscaling of the whole (mod-cropped) HR image, rounded to uint8 as a saved PNG would be;
optional cosine or multi-step (halving at 50/80/90/95 %) learning-rate decay. ASSM routing during
training defaults to the official Gumbel-softmax (``--routing gumbel``); inference uses argmax.

Letters: B batch, C=3 channels, p LR patch side, s scale, P = p*s HR patch side.

Files written to ``--out``: ``state.pt`` (model, optimizer, scheduler, step, numpy and torch RNG
states; every ``--save-every`` steps and at the end; ``--resume`` continues from it),
``model.pth`` (BasicSR ``{'params': state_dict}``, float32, loadable by ``model.load_checkpoint``;
written with every state), ``log.jsonl`` (one JSON object per log/validation event),
``train_info.json`` (the training facts, for the weights manifest), ``router_ref.pt`` (MambaIRv2:
the first validation's route log-probabilities, float16, the reference of ``logit_change``), and
with ``--keep-checkpoints`` ``models/net_g_{step}.pth`` at step 0 and every save.

Router and prompt pool (issue 13). The router's gradient reaches it only through the prompt
(straight-through one-hot times the pool P = embeddingB @ embeddingA, entries ~1e-4 at the
official initialisation), so its gradients (1e-13..1e-10) sit far below Adam's eps (1e-8) and
Adam's steps, ~lr*g/eps, are nil. Three documented training choices, none of which changes the
architecture, the keys or inference:
- ``--router-lr-mult M`` and ``--router-eps E``: the router (``assm.route.*``) and the prompt pool
  (``assm.embeddingB``, ``embeddingA``) form their own Adam parameter group with lr x M and eps E
  (default: the same as the rest); with E well below the gradients Adam steps ~lr again;
- ``--prompt-scale S``: multiply ``embeddingB`` by S once at the start (fresh runs only), so the
  pool, and with it the router's gradient, is S times larger;
- ``--weights FILE``: start from a checkpoint's weights (fine-tune), e.g. the shipped demo file.

``--weights`` also takes the same network at another scale (light SR, ``pixelshuffledirect``):
every tensor but the upsampling conv is copied, and that conv's rows are derived from the
source's (``transfer_upsampler``): each sub-pixel of the new scale averages the source sub-pixels
whose centres fall in its cell (4 -> 2: a 2x2 block), so the new network starts at the
box-average of what the source would draw. BasicSR's option files do the reverse (x3/x4 start
from x2); for the demo weights, x2 starts from the trained x4 body (issue 13).

At each validation the router numbers of ``model.analysis.router_stats`` are logged per ASSM layer (mean
largest route probability, prompts used, dead prompts, perplexity, and the RMS change of the route
logits since the run's first validation, whose records are kept in ``router_ref.pt``).

``--init nearest`` starts the network *at* nearest-neighbour upsampling (NOTES.md section 10),
so the first steps refine a sensible image instead of recovering colours from noise:
- every arch: ``conv_first`` copies the (mean-shifted) input channels into feature channels
  0..C-1 (centre tap 1), and the closing conv of the body (``conv_after_body``, its last conv
  for '3conv') starts at zero, so the features entering the reconstruction are exactly
  ``conv_first``'s, whatever the random body does;
- ``pixelshuffledirect`` (light SR): the upsampling conv writes feature channel c to all s^2
  sub-pixel channels of output channel c (index c*s^2 + k), so PixelShuffle gives nearest;
- ``pixelshuffle`` (classic SR) and ``nearest+conv`` (real SR): the convs there are followed by a
  LeakyReLU (slope a), which would cut negative values; channels c and C+c carry +v and -v, and
  since lrelu(v) - lrelu(-v) = (1 + a) v the next conv recombines them linearly; pixel-shuffle
  convs copy each channel to every sub-pixel, ``conv_last`` outputs channel c;
- no upsampler (denoise/JPEG; not trained by this script): ``conv_last`` at zero = identity.
Only the rows of the convs that carry the pass-through are overwritten; all other weights keep
their random initialisation and train normally.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.evaluation.degrade import bicubic_downscale, bicubic_upscale, modcrop, to_uint8
from model.evaluation.metrics import psnr

__all__ = ["nearest_init", "load_start_weights", "sub_pixel_sources", "transfer_upsampler",
           "PatchSampler", "make_lr_pairs", "train", "main", "lr_factor", "is_router_param",
           "param_groups", "scale_prompt_pool"]


# ----------------------------------------------------------------------------- initialisation


def _pass_rows(conv: nn.Conv2d, pairs: list[tuple[int, int, float]]) -> None:
    """Zero the rows (output channels) named in ``pairs`` and set centre taps [out, in] = value."""
    k = conv.kernel_size[0] // 2
    with torch.no_grad():
        for o in {o for o, _, _ in pairs}:
            conv.weight[o].zero_()
            if conv.bias is not None:
                conv.bias[o] = 0.0
        for o, i, v in pairs:
            conv.weight[o, i, k, k] = v


def _last_conv(m: nn.Module) -> nn.Conv2d:
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    return convs[-1]


def _slope(m: nn.Module) -> float:
    acts = [a for a in m.modules() if isinstance(a, nn.LeakyReLU)]
    return float(acts[-1].negative_slope) if acts else 0.0


def nearest_init(net: nn.Module) -> nn.Module:
    """Make ``net`` compute nearest-neighbour upsampling (identity for upscale 1); see module doc."""
    cfg = net.config
    C, s, up = cfg.in_chans, cfg.upscale, cfg.upsampler
    _pass_rows(net.conv_first, [(c, c, 1.0) for c in range(C)])
    with torch.no_grad():
        last = _last_conv(net.conv_after_body)
        last.weight.zero_()
        last.bias.zero_()
    if up == "pixelshuffledirect":
        _pass_rows(net.upsample[0], [(c * s * s + k, c, 1.0) for c in range(C) for k in range(s * s)])
    elif up in ("pixelshuffle", "nearest+conv"):
        a = _slope(net.conv_before_upsample)
        # +v in channels 0..C-1, -v in C..2C-1, each then passed through the LeakyReLU.
        _pass_rows(net.conv_before_upsample[0], [(c, c, 1.0) for c in range(C)]
                   + [(C + c, c, -1.0) for c in range(C)])
        if up == "pixelshuffle":
            first = True
            for conv in (m for m in net.upsample if isinstance(m, nn.Conv2d)):
                r = conv.out_channels // conv.in_channels  # sub-pixels per step: 4 (x2) or 9 (x3)
                # The first shuffle conv recombines (+, -) into v; later ones copy v (no activation).
                pairs = []
                for c in range(C):
                    for k in range(r):
                        if first:
                            pairs += [(c * r + k, c, 1.0 / (1 + a)), (c * r + k, C + c, -1.0 / (1 + a))]
                        else:
                            pairs.append((c * r + k, c, 1.0))
                _pass_rows(conv, pairs)
                first = False
            _pass_rows(net.conv_last, [(c, c, 1.0) for c in range(C)])
        else:
            b = float(net.lrelu.negative_slope)
            slopes = (a, b, b)  # the activation before conv_up1, conv_up2, conv_hr respectively
            for conv, sl in zip((net.conv_up1, net.conv_up2, net.conv_hr), slopes, strict=True):
                _pass_rows(conv, [(c, c, 1 / (1 + sl)) for c in range(C)]
                           + [(c, C + c, -1 / (1 + sl)) for c in range(C)]
                           + [(C + c, c, -1 / (1 + sl)) for c in range(C)]
                           + [(C + c, C + c, 1 / (1 + sl)) for c in range(C)])
            _pass_rows(net.conv_last, [(c, c, 1 / (1 + b)) for c in range(C)]
                       + [(c, C + c, -1 / (1 + b)) for c in range(C)])
    else:  # denoise / JPEG: output = input + conv_last(features)
        with torch.no_grad():
            net.conv_last.weight.zero_()
            net.conv_last.bias.zero_()
    return net


def sub_pixel_sources(src: int, dst: int) -> list[list[int]]:
    """For each 1-D sub-pixel of scale ``dst``, the sub-pixels of scale ``src`` it draws from: those
    whose centres fall in its cell, or (upscaling the scale) the one whose cell holds its centre."""
    out = []
    for a in range(dst):
        inside = [i for i in range(src) if a * src <= (2 * i + 1) * dst / 2 < (a + 1) * src]
        out.append(inside or [min(src - 1, int((a + 0.5) * src / dst))])
    return out


def transfer_upsampler(weight: Tensor, bias: Tensor, src: int, dst: int, chans: int
                       ) -> tuple[Tensor, Tensor]:
    """The ``pixelshuffledirect`` conv (rows c*s^2 + i*s + j) of scale ``src`` turned into one of
    scale ``dst``: row (c, a, b) is the mean of the source rows (c, i, j), i and j from
    ``sub_pixel_sources``."""
    one_d = sub_pixel_sources(src, dst)
    rows_w, rows_b = [], []
    for c in range(chans):
        for a in range(dst):
            for b in range(dst):
                idx = [c * src * src + i * src + j for i in one_d[a] for j in one_d[b]]
                rows_w.append(weight[idx].mean(0))  # (C_feat, k, k)
                rows_b.append(bias[idx].mean(0))
    return torch.stack(rows_w), torch.stack(rows_b)  # (C*dst^2, C_feat, k, k), (C*dst^2,)


def load_start_weights(net: nn.Module, sd: dict[str, Tensor]) -> int | None:
    """Load a checkpoint into ``net`` (strict); a light-SR checkpoint of another scale is accepted
    with its upsampling conv derived by ``transfer_upsampler``. Returns the source scale when it
    differed, else None; raises ValueError when the checkpoint does not fit."""
    cfg, own = net.config, net.state_dict()
    sd = dict(sd)
    src = None
    w, b = sd.get("upsample.0.weight"), sd.get("upsample.0.bias")
    w_own = own.get("upsample.0.weight")
    if (cfg.upsampler == "pixelshuffledirect" and w is not None and b is not None and w_own is not None
            and w.shape != w_own.shape and w.shape[1:] == w_own.shape[1:]):
        r = w.shape[0] // cfg.in_chans  # src^2 sub-pixel rows per output channel
        src = math.isqrt(r)
        if src * src * cfg.in_chans != w.shape[0]:
            raise ValueError(f"upsample.0.weight has {w.shape[0]} rows: not {cfg.in_chans} x scale^2")
        sd["upsample.0.weight"], sd["upsample.0.bias"] = transfer_upsampler(w, b, src, cfg.upscale,
                                                                            cfg.in_chans)
    bad = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if bad or missing or unexpected:
        raise ValueError(f"missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {bad[:3]}")
    net.load_state_dict(sd)
    return src


# ----------------------------------------------------------------------------- router group


def is_router_param(name: str) -> bool:
    """True for the ASSM router (``assm.route.*``) and prompt pool (``assm.embeddingB``, ``embeddingA``)."""
    return ".assm.route." in name or ".assm.embeddingB." in name or name.endswith("embeddingA.weight")


def param_groups(net: nn.Module, router_lr_mult: float = 1.0, router_eps: float = 1e-8
                 ) -> list[dict[str, Any]]:
    """Adam parameter groups: everything else, then router + prompt pool with its own lr multiplier
    and eps. Each group carries ``name`` and ``lr_mult`` (the schedule multiplies the base lr by it).
    The router group is empty for MambaIR."""
    rest, router = [], []
    for name, p in net.named_parameters():
        (router if is_router_param(name) else rest).append(p)
    return [{"params": rest, "name": "rest", "lr_mult": 1.0, "eps": 1e-8},
            {"params": router, "name": "router", "lr_mult": float(router_lr_mult), "eps": float(router_eps)}]


def _one_group_state(state: dict[str, Any], net: nn.Module) -> dict[str, Any]:
    """An optimizer state saved with a single group (before the router group existed), re-indexed for
    ``param_groups``: Adam keys its per-parameter state by position over the groups in order."""
    names = [n for n, _ in net.named_parameters()]
    new_order = [n for n in names if not is_router_param(n)] + [n for n in names if is_router_param(n)]
    old_index = {n: i for i, n in enumerate(names)}  # one group = net.parameters() order
    old_group = state["param_groups"][0]
    new_state = {j: state["state"][old_index[n]] for j, n in enumerate(new_order)
                 if old_index[n] in state["state"]}
    hyper = {k: v for k, v in old_group.items() if k != "params"}
    n_rest = sum(not is_router_param(n) for n in names)
    groups = [{**hyper, "name": "rest", "lr_mult": 1.0, "params": list(range(n_rest))},
              {**hyper, "name": "router", "lr_mult": 1.0, "params": list(range(n_rest, len(names)))}]
    return {"state": new_state, "param_groups": groups}


def scale_prompt_pool(net: nn.Module, scale: float) -> nn.Module:
    """Multiply every ASSM's ``embeddingB`` by ``scale``: the prompt pool P = B @ A scales with it."""
    from model.archs import ASSM

    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, ASSM):
                m.embeddingB.weight.mul_(scale)
    return net


# ----------------------------------------------------------------------------- data


def make_lr_pairs(paths: list[Path], scale: int, min_lr: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(HR, LR) float32 pairs: HR mod-cropped to the scale, LR = MATLAB bicubic, rounded to uint8 levels.

    Images whose LR side would be smaller than ``min_lr`` are left out.
    """
    from model.training.data import load_image

    pairs = []
    for path in paths:
        hr = modcrop(load_image(path), scale)
        if min(hr.shape[:2]) // scale < min_lr:
            continue
        lr = to_uint8(bicubic_downscale(hr, scale)).astype(np.float32) / 255.0
        pairs.append((hr, lr))
    return pairs


class PatchSampler:
    """Random aligned (LR, HR) patch batches with flips/rotations, from a numpy Generator."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]], scale: int, patch: int,
                 rng: np.random.Generator) -> None:
        if not pairs:
            raise ValueError("no training images large enough for this patch size")
        self.pairs, self.scale, self.patch, self.rng = pairs, scale, patch, rng

    def one(self) -> tuple[np.ndarray, np.ndarray]:
        """One (LR (p, p, C), HR (P, P, C)) patch pair, augmented."""
        hr, lr = self.pairs[int(self.rng.integers(len(self.pairs)))]
        p, s = self.patch, self.scale
        y = int(self.rng.integers(lr.shape[0] - p + 1))
        x = int(self.rng.integers(lr.shape[1] - p + 1))
        lp = lr[y:y + p, x:x + p]
        hp = hr[y * s:(y + p) * s, x * s:(x + p) * s]
        hflip, vflip, rot = (bool(v) for v in self.rng.integers(0, 2, 3))
        if hflip:
            lp, hp = lp[:, ::-1], hp[:, ::-1]
        if vflip:
            lp, hp = lp[::-1], hp[::-1]
        if rot:
            lp, hp = lp.transpose(1, 0, 2), hp.transpose(1, 0, 2)  # transpose = rot90 + flip
        return lp, hp

    def batch(self, n: int) -> tuple[Tensor, Tensor]:
        """(LR (B, C, p, p), HR (B, C, P, P)) float32 tensors."""
        lrs, hrs = zip(*(self.one() for _ in range(n)), strict=True)
        lr = torch.from_numpy(np.stack(lrs)).permute(0, 3, 1, 2).contiguous()  # (B, p, p, C) -> (B, C, p, p)
        hr = torch.from_numpy(np.stack(hrs)).permute(0, 3, 1, 2).contiguous()  # (B, P, P, C) -> (B, C, P, P)
        return lr, hr


def val_crops(pairs: list[tuple[np.ndarray, np.ndarray]], scale: int, size: int, n: int = 2
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` fixed centre crops (LR size ``size``) of the first held-out images."""
    out = []
    for hr, lr in pairs[:n]:
        h, w = min(size, lr.shape[0]), min(size, lr.shape[1])
        y, x = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
        out.append((hr[y * scale:(y + h) * scale, x * scale:(x + w) * scale], lr[y:y + h, x:x + w]))
    return out


@torch.no_grad()
def validate(net: nn.Module, crops: list[tuple[np.ndarray, np.ndarray]], scale: int,
             device: torch.device, router_ref: list[dict[str, Any]] | None = None
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Mean PSNR-Y (crop = scale, output rounded to uint8) of the network and of bicubic, and for
    MambaIRv2 the router numbers per ASSM layer over the crops' pixels (``router``, a
    ``router_stats.summary``; ``logit_change`` against ``router_ref``). Also returns the slim
    router records of this validation (empty for MambaIR), the reference for later ones.

    MambaIRv2 routes by argmax here, as the app does, whatever the training routing.
    """
    from model.analysis.router_stats import pool_records, records_stats, slim_records, summary
    from model.archs import get_options, set_options
    from model.capture import capture

    was_training, routing = net.training, get_options(net).get("routing")
    net.eval()
    if routing is not None:
        set_options(net, routing="argmax")
    ours, bic, runs = [], [], []
    for hr, lr in crops:
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].to(device)  # (1, C, h, w)
        with capture(net) as rec:
            out = net(x)
        sr = out[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()  # (h*s, w*s, C)
        ours.append(psnr(to_uint8(sr), to_uint8(hr), scale, True))
        bic.append(psnr(to_uint8(bicubic_upscale(lr, scale)), to_uint8(hr), scale, True))
        runs.append(slim_records(rec.assm, lr.shape[:2]))
    net.train(was_training)
    if routing is not None:
        set_options(net, routing=routing)
    v: dict[str, Any] = {"val_psnr_y": float(np.mean(ours)), "val_psnr_y_bicubic": float(np.mean(bic))}
    records = pool_records(runs) if runs and runs[0] else []
    if records:
        v["router"] = summary(records_stats(records, router_ref))
    return v, records


# ----------------------------------------------------------------------------- schedule


def lr_factor(step: int, total: int, schedule: str, warmup: int = 0) -> float:
    """Learning-rate multiplier at ``step`` (0-based) of ``total``: none, cosine, or multistep.

    ``warmup`` > 0 ramps the rate linearly over the first ``warmup`` steps (BasicSR's warmup_iter):
    with ``--init nearest`` it softens the first updates, which wake up the zeroed body conv.
    """
    ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if schedule == "none":
        return ramp
    if schedule == "cosine":
        return ramp * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    if schedule == "multistep":  # the official light-SR milestones, as fractions of the run
        return ramp * 0.5 ** sum(step >= int(f * total) for f in (0.5, 0.8, 0.9, 0.95))
    raise ValueError(f"unknown schedule {schedule!r}")


# ----------------------------------------------------------------------------- training


def _save(out: Path, net: nn.Module, opt: torch.optim.Optimizer, step: int, rng: np.random.Generator,
          args: dict[str, Any], history: dict[str, Any], keep: bool = False) -> None:
    """Write state.pt (resumable) and model.pth (BasicSR weights); atomic renames. With ``keep`` also
    ``models/net_g_{step}.pth``, BasicSR's series of checkpoints (for ``python -m viz.timeline``)."""
    sd = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
          for k, v in net.state_dict().items()}
    state = {"model": sd, "optimizer": opt.state_dict(), "step": step, "np_rng": rng.bit_generator.state,
             "torch_rng": torch.get_rng_state(), "args": args, "history": history}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(state, out / "state.pt.tmp")
    os.replace(out / "state.pt.tmp", out / "state.pt")
    torch.save({"params": sd}, out / "model.pth.tmp")
    os.replace(out / "model.pth.tmp", out / "model.pth")
    if keep:
        (out / "models").mkdir(exist_ok=True)
        torch.save({"params": sd}, out / "models" / f"net_g_{step}.pth")


def train(preset: str, data: str | os.PathLike, steps: int, out: str | os.PathLike, *, batch: int = 16,
          patch: int = 48, lr: float = 2e-4, schedule: str = "none", device: str = "cpu",
          init: str = "default", routing: str = "gumbel", resume: bool = False, seed: int = 0,
          save_every: int = 100, val_every: int = 100, val_size: int = 64, log_every: int = 10,
          warmup: int = 0, config: Any = None, progress: bool = True, weights: str | None = None,
          router_lr_mult: float = 1.0, router_eps: float = 1e-8, prompt_scale: float = 1.0,
          keep_checkpoints: bool = False) -> dict[str, Any]:
    """Train (or resume) and return the training facts (also in ``out/train_info.json``).

    ``config`` overrides the preset's config (used by tests for tiny networks); ``weights``,
    ``router_lr_mult``, ``router_eps``, ``prompt_scale``: see the module docstring;
    ``keep_checkpoints``: also keep ``models/net_g_{step}.pth`` at every save (and step 0).
    """
    from tqdm import tqdm

    from model import PRESETS, build, set_options
    from model.training.data import list_images

    if config is None and preset not in PRESETS:
        sr = sorted(k for k, v in PRESETS.items() if v.upscale > 1)
        raise ValueError(f"unknown preset {preset!r}; SR presets: {', '.join(sr)}")
    cfg = config if config is not None else PRESETS[preset]
    if cfg.upscale < 2:
        raise ValueError(f"{preset}: this script trains SR presets (upscale >= 2)")
    s = cfg.upscale
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    args = {"preset": preset, "data": str(data), "steps": steps, "batch": batch, "patch": patch, "lr": lr,
            "schedule": schedule, "warmup": warmup, "device": device, "init": init, "routing": routing,
            "seed": seed, "config": cfg.to_dict(), "weights": weights, "router_lr_mult": router_lr_mult,
            "router_eps": router_eps, "prompt_scale": prompt_scale}

    torch.manual_seed(seed)
    net = build(cfg)
    if init == "nearest":
        nearest_init(net)
    elif init != "default":
        raise ValueError(f"unknown init {init!r}; expected default or nearest")
    if weights is not None:
        from model.loading import read_state_dict

        try:
            weights_scale = load_start_weights(net, read_state_dict(weights))
        except ValueError as e:
            raise ValueError(f"{weights} does not fit {preset}: {e} (choose the preset of that checkpoint, "
                             "or the same light-SR network at another scale)") from None
        if weights_scale is not None:
            args["weights_scale"] = weights_scale
            print(f"{weights}: x{weights_scale} weights; upsampler derived for x{s}", file=sys.stderr)
    if prompt_scale != 1.0:
        scale_prompt_pool(net, prompt_scale)  # overwritten by the saved state on --resume
    if cfg.arch != "MambaIR":
        set_options(net, routing=routing)
    net.to(dev).train()
    opt = torch.optim.Adam(param_groups(net, router_lr_mult, router_eps), lr=lr, betas=(0.9, 0.99))
    rng = np.random.default_rng(seed)
    step, history = 0, {"seconds": 0.0}

    state_path = out / "state.pt"
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)  # our own file
        if state["args"]["config"] != cfg.to_dict():
            raise ValueError(f"{state_path} was trained with another network config; use a new --out")
        net.load_state_dict(state["model"])
        saved = state["optimizer"]
        if len(saved["param_groups"]) == 1:  # a state from before the router group
            saved = _one_group_state(saved, net)
        for g_saved, g in zip(saved["param_groups"], opt.param_groups, strict=True):
            g_saved.update(lr_mult=g["lr_mult"], eps=g["eps"])  # this run's router settings win
        opt.load_state_dict(saved)
        step, history = int(state["step"]), state.get("history", history)
        rng.bit_generator.state = state["np_rng"]
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and dev.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        print(f"resumed from {state_path} at step {step}", file=sys.stderr)
    elif resume:
        print(f"--resume: no {state_path} yet, starting from scratch", file=sys.stderr)

    sampler = PatchSampler(make_lr_pairs(list_images(data, "train"), s, patch), s, patch, rng)
    crops = val_crops(make_lr_pairs(list_images(data, "test"), s, 16), s, val_size)
    log = open(out / "log.jsonl", "a")

    def event(d: dict[str, Any]) -> None:
        log.write(json.dumps(d) + "\n")
        log.flush()

    ref_path = out / "router_ref.pt"
    router_ref = torch.load(ref_path, weights_only=True) if ref_path.exists() and step > 0 else None
    if step == 0 and keep_checkpoints:
        _save(out, net, opt, step, rng, args, history, keep=True)
    if step == 0 and crops:
        v, router_ref = validate(net, crops, s, dev)
        if router_ref:
            torch.save([{**r, "route_logp": r["route_logp"].half()} for r in router_ref], ref_path)
            router_ref = torch.load(ref_path, weights_only=True)  # the same float16 values as on resume
        event({"step": 0, **v})
        history["last_val"] = {"step": 0, **v}
    bar = tqdm(total=steps, initial=step, disable=not progress, unit="it", dynamic_ncols=True)
    t_run, losses = time.perf_counter(), []
    while step < steps:
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"] * lr_factor(step, steps, schedule, warmup)
        x, y = sampler.batch(batch)
        t0 = time.perf_counter()
        loss = F.l1_loss(net(x.to(dev)), y.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        step += 1
        losses.append(loss.item())
        history["seconds"] += dt
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", s_it=f"{dt:.2f}")
        if step % log_every == 0 or step == steps:
            event({"step": step, "loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"],
                   "s_per_iter": dt, "time": time.time()})
            losses = []
        if crops and (step % val_every == 0 or step == steps):
            v, _ = validate(net, crops, s, dev, router_ref)
            event({"step": step, **v})
            history["last_val"] = {"step": step, **v}
            routed = ""
            if "router" in v:
                xt = [r["mean_max_prob_xT"] for r in v["router"]["layers"]]
                routed = f"; router mean max prob x T: median {np.median(xt):.2f}, max {max(xt):.2f}"
            bar.write(f"step {step}: val PSNR-Y {v['val_psnr_y']:.2f} dB "
                      f"(bicubic {v['val_psnr_y_bicubic']:.2f} dB){routed}")
        if step % save_every == 0 or step == steps:
            _save(out, net, opt, step, rng, args, history, keep_checkpoints)
    bar.close()
    log.close()
    wall = time.perf_counter() - t_run
    info = {**{k: v for k, v in args.items() if k != "config"}, "arch": cfg.arch, "scale": s,
            "steps_done": step, "train_seconds": round(history["seconds"], 1),
            "s_per_iter": round(history["seconds"] / max(step, 1), 3),
            "train_files": len(sampler.pairs), "val": history.get("last_val"),
            "recipe": "L1, Adam(0.9, 0.99), MATLAB-bicubic LR, flips/rot90"}
    (out / "train_info.json").write_text(json.dumps(info, indent=2))
    print(f"done: {step} steps, {info['s_per_iter']} s/iter (this run: {wall:.1f} s wall); "
          f"weights in {out / 'model.pth'}")
    return info


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m model.training.train", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", required=True, help="an SR preset name, e.g. mambairv2_lightSR_x4")
    ap.add_argument("--data", default="data/photos",
                    help="folder made by `python -m model.training.data prepare`")
    ap.add_argument("--steps", type=int, required=True, help="total steps (a resumed run continues to it)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="LR patch side in pixels")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--schedule", choices=("none", "cosine", "multistep"), default="none")
    ap.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps")
    ap.add_argument("--out", required=True, help="run folder (state.pt, model.pth, log.jsonl)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--init", choices=("default", "nearest"), default="default")
    ap.add_argument("--routing", choices=("gumbel", "argmax"), default="gumbel",
                    help="ASSM routing while training (official: gumbel)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--val-size", type=int, default=64, help="LR side of the 2 validation crops")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--weights", help="start from this checkpoint's weights (fine-tune; same preset, "
                    "or the same light-SR network at another scale: upsampler derived)")
    ap.add_argument("--router-lr-mult", type=float, default=1.0,
                    help="lr multiplier of the router + prompt pool parameter group")
    ap.add_argument("--router-eps", type=float, default=1e-8, help="Adam eps of that group")
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="also keep models/net_g_{step}.pth at every save (BasicSR's series)")
    ap.add_argument("--prompt-scale", type=float, default=1.0,
                    help="multiply embeddingB (the prompt pool) by this at the start of a fresh run")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    train(a.preset, a.data, a.steps, a.out, batch=a.batch, patch=a.patch, lr=a.lr, schedule=a.schedule,
          device=a.device, init=a.init, routing=a.routing, resume=a.resume, seed=a.seed,
          save_every=a.save_every, val_every=a.val_every, val_size=a.val_size, log_every=a.log_every,
          warmup=a.warmup, weights=a.weights, router_lr_mult=a.router_lr_mult, router_eps=a.router_eps,
          prompt_scale=a.prompt_scale, keep_checkpoints=a.keep_checkpoints)


if __name__ == "__main__":
    from model.cli import run_cli

    run_cli(main)
