"""The paper's claims as numbers, from capture records and knock-out forwards (issue 14).

    python -m model.analysis.evidence CKPT IMAGE [--gt] [--crop 96]     # every view's numbers as text

Each function measures one claim of MambaIRv2 (arXiv 2411.15269) on any image and checkpoint:

* ``scan_redundancy``   Fig. 2a: MambaIR's four scans give outputs with cosine similarity > 0.7.
* (``viz.evidence.decay_profile``: long-range decay of the implicit attention with sequence distance.)
* ``label_distances``   SGN brings same-label pixels close in the scanned sequence.
* ``ase_query_map``     Fig. 5: cosine of a query pixel's prompt with C of every pixel.
* ``knockouts``         SGN / prompt contributions, by switching them off at inference.
* ``prompt_quality``    how coherent each layer's label groups are (vs random groups of the same sizes).
* ``router_untrained``  whether routing is still uniform (the views then say so).

Dimension letters: B batch, L = Hp*Wp tokens of the padded grid, D scan channels, N d_state,
K scans (4 for MambaIR), T prompts, H, W image size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.archs import get_options, set_options
from model.archs.common import flip_pad

Record = dict[str, Any]

# One line per view: what it shows, and what would contradict the paper.
CLAIMS: dict[str, str] = {
    "redundancy": ("Cosine similarity of MambaIR's four scan outputs (brought back to raster order), per "
                   "layer, as the layer adds them and without the skip D*u (identical in every scan). The "
                   "paper (Fig. 2a) reports > 0.7; values well below 0.7 would contradict the claimed "
                   "redundancy."),
    "decay": ("Mean |implicit attention weight| of the scan vs distance in the scanned sequence, and the "
              "distance between same-label pixels in raster vs SGN order. The claim is contradicted if "
              "the weight does not fall with distance, or if SGN does not shorten same-label distances."),
    "ase": ("Cosine similarity between the query pixel's prompt and C of every pixel (Fig. 5), official "
            "prompt order vs aligned. The claim (prompts let a pixel query its semantic group) is "
            "contradicted if the map does not follow the query pixel's label."),
    "ablation": ("The trained network with SGN off (raster scan, same prompts), with the prompt removed "
                 "from C, and with aligned prompts. If switching SGN or the prompt off changes nothing, "
                 "the trained model does not use them."),
    "quality": ("Within-label variance of input pixels and of the layer's features, as a fraction of that "
                "of random groups of the same sizes (< 1: labels group similar pixels), and how often "
                "4-neighbours share a label (vs chance). Ratios near 1 contradict 'semantic' grouping."),
    "cost": ("MACs per component from the real shapes of one forward, scan included "
             "(model.evaluation.profile). "
             "MambaIRv2 runs one scan per ASSM where MambaIR runs four; a larger scan or total count for "
             "MambaIRv2 at the same input size would contradict the claimed saving."),
}


# ---------------------------------------------------------------------------
# Router state
# ---------------------------------------------------------------------------

def mean_max_route_prob(record: Record, batch: int = 0) -> float:
    """Mean over pixels of the largest route probability (1/T for a uniform router)."""
    from model.analysis.router_stats import mean_max_prob

    return mean_max_prob(torch.as_tensor(record["route_logp"])[batch:batch + 1])


def router_untrained(records: Sequence[Record]) -> bool:
    """True when most ASSM layers route almost uniformly (``model.analysis.router_stats.is_untrained``: mean
    largest route probability < 2/T in more than half of the layers)."""
    from model.analysis.router_stats import is_untrained, records_stats

    return is_untrained(records_stats(records))


UNTRAINED_NOTE = ("The router of this checkpoint is untrained (mean max route probability < 2/T in most "
                  "layers): labels and prompts are close to random, so these views cannot test the claim.")


# ---------------------------------------------------------------------------
# 1. Redundancy of MambaIR's four scans
# ---------------------------------------------------------------------------

def ss2d_outputs_raster(record: Record, batch: int = 0, skip: bool = True) -> torch.Tensor:
    """(K, D, L) float64 the output of each SS2D scan, moved from scan order back to raster order.

    ``skip=False`` removes the skip term D*u first, leaving only what the state carried.
    """
    out = torch.as_tensor(record["scan_out"])[batch].double()  # (K*D, L)
    if not skip:
        u = torch.as_tensor(record["scan"]["u"])[batch].double()  # (K*D, L)
        out = out - torch.as_tensor(record["scan"]["D"]).double()[:, None] * u
    orders = torch.as_tensor(record["orders"]).long()  # (K, L): raster pixel visited at scan position p
    k, L = orders.shape
    out = out.reshape(k, -1, L)  # (K*D, L) -> (K, D, L)
    raster = torch.empty_like(out)
    for i in range(k):
        raster[i][:, orders[i]] = out[i]  # scan position p -> raster pixel orders[i, p]
    return raster


def scan_redundancy(record: Record, batch: int = 0, skip: bool = True) -> np.ndarray:
    """(K, K) cosine similarity of the K scan outputs of one SS2D layer, each flattened over (D, L).

    With ``skip`` (default) the outputs as the layer adds them; without, the state part only (the
    skip D*u is the same input in every scan, so it alone pushes the similarity towards 1).
    """
    v = ss2d_outputs_raster(record, batch, skip).flatten(1)  # (K, D, L) -> (K, D*L)
    v = F.normalize(v, dim=1)
    return (v @ v.T).numpy()  # (K, K)


def redundancy_table(records: Sequence[Record], batch: int = 0) -> list[dict[str, Any]]:
    """Per SS2D layer: stage, block, the (K, K) matrix and its mean off-diagonal similarity, with the
    skip term (``mean``) and without it (``matrix_state``, ``mean_state``)."""
    rows = []
    for r in records:
        m = scan_redundancy(r, batch)
        ms = scan_redundancy(r, batch, skip=False)
        off = ~np.eye(m.shape[0], dtype=bool)
        rows.append({"stage": r.get("stage"), "block": r.get("block"), "matrix": m,
                     "mean": float(m[off].mean()), "matrix_state": ms, "mean_state": float(ms[off].mean())})
    return rows


# ---------------------------------------------------------------------------
# 2. Long-range decay and same-label distances
# ---------------------------------------------------------------------------

def _mean_pairwise_gap(positions: np.ndarray) -> tuple[float, int]:
    """Sum of |p - q| over all pairs of ``positions`` and the number of pairs (exact, O(m log m))."""
    x = np.sort(positions.astype(np.float64))
    m = x.size
    if m < 2:
        return 0.0, 0
    coef = 2 * np.arange(m) - m + 1  # x_i appears +i times and -(m-1-i) times
    return float((coef * x).sum()), m * (m - 1) // 2


def label_distances(record: Record, batch: int = 0) -> dict[str, float]:
    """Mean distance between two pixels of the same label in the raster sequence and in the scanned one.

    ``raster``: |p - q| between raster indices; ``scan``: |inv_perm[p] - inv_perm[q]|, their
    positions in the sequence the layer actually scanned (SGN-sorted, or raster with SGN off).
    Mean over all same-label pairs, all labels pooled.
    """
    labels = torch.as_tensor(record["labels"])[batch].numpy()  # (L,)
    inv = torch.as_tensor(record["inv_perm"])[batch].numpy()  # (L,)
    raster = np.arange(labels.size)
    sums = {"raster": 0.0, "scan": 0.0}
    pairs = 0
    for t in np.unique(labels):
        idx = np.nonzero(labels == t)[0]
        s_r, n = _mean_pairwise_gap(raster[idx])
        s_s, _ = _mean_pairwise_gap(inv[idx])
        sums["raster"] += s_r
        sums["scan"] += s_s
        pairs += n
    if pairs == 0:
        return {"raster": 0.0, "scan": 0.0, "pairs": 0}
    return {"raster": sums["raster"] / pairs, "scan": sums["scan"] / pairs, "pairs": pairs}


# ---------------------------------------------------------------------------
# 3. ASE query map (Fig. 5)
# ---------------------------------------------------------------------------

ASE_ORDERS = ("official", "aligned")


def ase_query_map(record: Record, pixel: tuple[int, int], order: str = "official",
                  image_hw: tuple[int, int] | None = None, batch: int = 0) -> np.ndarray:
    """(H, W) cosine similarity between the prompt added to the query pixel's C and C of every pixel.

    ``official``: the prompt the released code adds at the query's sorted position s = inv_perm[q],
    i.e. the prompt of raster pixel s; ``aligned``: the query pixel's own prompt. C is the scan's C
    before the prompt, seen from each raster pixel (C[inv_perm[j]]).
    """
    if order not in ASE_ORDERS:
        raise ValueError(f"order must be one of {ASE_ORDERS}, got {order!r}")
    hp, wp = (int(v) for v in record["grid"])
    h, w = image_hw or (hp, wp)
    r, c = int(pixel[0]), int(pixel[1])
    if not (0 <= r < h and 0 <= c < w):
        raise ValueError(f"pixel {(r, c)} outside the image {(h, w)}")
    q = r * wp + c
    prompt = torch.as_tensor(record["prompt"])[batch].double()  # (L, N) raster order
    inv = torch.as_tensor(record["inv_perm"])[batch].long()  # (L,)
    C = torch.as_tensor(record["C"])[batch].double()[inv]  # (L, N): C at each raster pixel
    p = prompt[int(inv[q])] if order == "official" else prompt[q]  # (N,)
    cos = F.cosine_similarity(C, p[None], dim=1, eps=1e-30)  # (L,)
    return cos.numpy().reshape(hp, wp)[:h, :w]  # (L,) -> (Hp, Wp) -> (H, W)


def ase_query_note(record: Record, pixel: tuple[int, int], batch: int = 0) -> str:
    """One line: whose prompt the official code adds to the query pixel's C, and whose the aligned one."""
    hp, wp = (int(v) for v in record["grid"])
    q = int(pixel[0]) * wp + int(pixel[1])
    inv = torch.as_tensor(record["inv_perm"])[batch].long()
    labels = torch.as_tensor(record["labels"])[batch].long()
    s = int(inv[q])
    return (f"Official code: pixel {tuple(int(v) for v in pixel)} (label {int(labels[q])}) sits at sorted "
            f"position {s} and gets the prompt of raster pixel {(s // wp, s % wp)} (label {int(labels[s])}); "
            f"aligned: its own prompt (label {int(labels[q])}).")


# ---------------------------------------------------------------------------
# 4. Knock-outs at inference
# ---------------------------------------------------------------------------

# Variant name -> ASSM options (model.archs.set_options); "as trained" is the official forward.
VARIANTS: dict[str, dict[str, str]] = {
    "as trained": {"sgn": "on", "prompt": "on", "prompt_order": "official"},
    "SGN off": {"sgn": "off", "prompt": "on", "prompt_order": "official"},
    "prompt off": {"sgn": "on", "prompt": "off", "prompt_order": "official"},
    "aligned prompts": {"sgn": "on", "prompt": "on", "prompt_order": "aligned"},
}


def knockouts(net: nn.Module, x: Any, variants: Sequence[str] | None = None,
              forward: Callable[[nn.Module, Any], Any] | None = None,
              progress: Callable[[float, str], Any] | None = None) -> dict[str, Any]:
    """Output of ``net`` on ``x`` for each variant of ``VARIANTS``; the options are restored after.

    ``forward(net, x)`` runs the network (default: ``net(x)`` without gradients on a (B, C, H, W)
    tensor; pass e.g. a tiled forward on an image array). Raises for a network without ASSM layers
    (MambaIR has no SGN or prompts).
    """
    old = get_options(net)
    if not old:
        raise ValueError("knock-outs need a MambaIRv2 network (MambaIR has no SGN or prompts)")
    names = list(variants or VARIANTS)
    for v in names:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; expected one of {list(VARIANTS)}")
    run = forward or _plain_forward
    outs = {}
    try:
        for i, v in enumerate(names):
            if progress is not None:
                progress(i / len(names), v)
            set_options(net, **VARIANTS[v])
            outs[v] = run(net, x)
    finally:
        set_options(net, sgn=old["sgn"], prompt=old["prompt"], prompt_order=old["prompt_order"])
    return outs


def _plain_forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def knockout_metrics(outputs: dict[str, np.ndarray], gt: np.ndarray, crop: int = 0, y_only: bool = False
                     ) -> list[dict[str, Any]]:
    """PSNR/SSIM (BasicSR conventions, on uint8) of each variant's (H, W, C) float output against ``gt``."""
    from model.evaluation.degrade import to_uint8
    from model.evaluation.metrics import psnr, ssim

    g8 = to_uint8(gt)
    rows = []
    for name, out in outputs.items():
        o8 = to_uint8(out)
        rows.append({"variant": name, "psnr": psnr(o8, g8, crop, y_only), "ssim": ssim(o8, g8, crop, y_only)})
    return rows


# ---------------------------------------------------------------------------
# 5. Prompt quality
# ---------------------------------------------------------------------------

def padded_input(image: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(Hp*Wp, C) the network input pixels on a layer's padded grid (flip padding, as the network does)."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]  # (1, C, H, W)
    hp, wp = grid
    win = math.gcd(hp, wp)  # the grid is the smallest multiple of the window >= the image, so also of this
    x = flip_pad(x, win)
    if tuple(x.shape[-2:]) != (hp, wp):
        raise ValueError(f"image {tuple(image.shape[:2])} does not pad to the layer's grid {grid}")
    return x[0].flatten(1).T.double().numpy()  # (C, Hp, Wp) -> (L, C)


def within_group_fraction(values: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared deviations from each group's mean over that from the global mean (0..1)."""
    v = values - values.mean(axis=0)
    total = float((v * v).sum())
    if total == 0:
        return 0.0
    within = 0.0
    for t in np.unique(labels):
        g = values[labels == t]
        within += float(((g - g.mean(axis=0)) ** 2).sum())
    return within / total


def neighbour_agreement(label_hw: np.ndarray) -> float:
    """Fraction of horizontal and vertical neighbour pairs with the same label."""
    same = (label_hw[1:] == label_hw[:-1]).sum() + (label_hw[:, 1:] == label_hw[:, :-1]).sum()
    pairs = label_hw[1:].size + label_hw[:, 1:].size
    return float(same) / max(pairs, 1)


def prompt_quality(record: Record, image: np.ndarray | None = None, image_hw: tuple[int, int] | None = None,
                   draws: int = 4, batch: int = 0, seed: int = 0) -> dict[str, float]:
    """Coherence of one ASSM layer's label groups (pixels of the image area only).

    ``input_ratio`` / ``feature_ratio``: within-label variance fraction of the input pixels (``image``,
    (H, W, C) float, as fed to the network) / of the scan input u (the layer's features), divided by
    the mean of the same fraction for ``draws`` random relabellings with the same group sizes (< 1:
    groups more coherent than chance). ``neighbours``: fraction of 4-neighbour pairs sharing a label;
    ``neighbours_chance``: its expectation for random labels of the same sizes (sum of p_t^2).
    """
    hp, wp = (int(v) for v in record["grid"])
    h, w = image_hw or (image.shape[:2] if image is not None else (hp, wp))
    keep = (np.arange(hp)[:, None] < h) & (np.arange(wp)[None, :] < w)  # (Hp, Wp) image area
    keep = keep.reshape(-1)  # (L,)
    labels = torch.as_tensor(record["labels"])[batch].numpy()[keep]  # (L',)
    inv = torch.as_tensor(record["inv_perm"])[batch].long()
    u = torch.as_tensor(record["scan"]["u"])[batch].double()  # (D, L) scan order
    feats = u[:, inv].T.numpy()[keep]  # (D, L) raster -> (L, D) -> (L', D)
    rng = np.random.default_rng(seed)
    shuffles = [rng.permutation(labels) for _ in range(draws)]

    def ratio(values: np.ndarray) -> float:
        chance = np.mean([within_group_fraction(values, s) for s in shuffles])
        return within_group_fraction(values, labels) / chance if chance > 0 else float("nan")

    out = {"feature_ratio": ratio(feats)}
    if image is not None:
        out["input_ratio"] = ratio(padded_input(image, (hp, wp))[keep])
    counts = np.bincount(labels)
    p = counts / counts.sum()
    out["neighbours"] = neighbour_agreement(labels.reshape(h, w))
    out["neighbours_chance"] = float((p * p).sum())
    out["labels_used"] = int((counts > 0).sum())
    return out


def prompt_quality_table(records: Sequence[Record], image: np.ndarray | None = None,
                         image_hw: tuple[int, int] | None = None, batch: int = 0) -> list[dict[str, Any]]:
    """``prompt_quality`` for every ASSM layer, with its stage and block."""
    return [{"stage": r.get("stage"), "block": r.get("block"),
             **prompt_quality(r, image, image_hw, batch=batch)} for r in records]


def prompt_quality_series(items: Sequence[Any], image: np.ndarray, crop: int = 64,
                          progress: Callable[[int, int, Any], Any] | None = None) -> list[dict[str, Any]]:
    """Prompt quality (mean over ASSM layers) and PSNR for every checkpoint of one SR training run.

    ``items``: checkpoint files or folders (``model.analysis.timeline.list_checkpoints``: sorted by
    iteration);
    ``image`` (H, W, 3) float in [0, 1] is the ground truth: the LR is made by MATLAB-style bicubic,
    each checkpoint restores the whole LR (PSNR/SSIM on Y, crop = scale) and is recorded on the centre
    ``crop`` px of the LR. One row per checkpoint: path, step, psnr, ssim, input_ratio, feature_ratio,
    neighbour_ratio (same-label neighbours / chance), mean_max_prob, untrained.
    """
    from model import capture
    from model.analysis.timeline import checkpoint_step, list_checkpoints
    from model.evaluation.degrade import bicubic_downscale, modcrop, to_uint8
    from model.loading import load_checkpoint

    paths = list_checkpoints(items)
    rows = []
    for i, path in enumerate(paths):
        if progress is not None:
            progress(i, len(paths), path)
        net = load_checkpoint(path)
        s = int(net.config.upscale)
        if s == 1 or net.config.in_chans != 3:
            raise ValueError(f"{path.name}: the series needs RGB SR checkpoints")
        gt = modcrop(np.asarray(image, dtype=np.float32), s)
        lr = to_uint8(bicubic_downscale(gt, s)).astype(np.float32) / 255.0
        x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None]  # (1, 3, h, w)
        h0, w0 = lr.shape[:2]
        r0, c0 = max(0, (h0 - crop) // 2), max(0, (w0 - crop) // 2)
        small = np.ascontiguousarray(lr[r0:r0 + crop, c0:c0 + crop])
        with torch.no_grad():
            out = net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()  # (1, 3, H, W) -> (H, W, 3)
            with capture(net) as rec:
                net(torch.from_numpy(small).permute(2, 0, 1)[None])
        if not rec.assm:
            raise ValueError(f"{path.name} has no ASSM layers: the series needs MambaIRv2 checkpoints")
        m = knockout_metrics({"as trained": out}, gt, s, True)[0]
        q = prompt_quality_table(rec.assm, small)
        rows.append({"path": str(path), "step": checkpoint_step(path), "psnr": m["psnr"], "ssim": m["ssim"],
                     "input_ratio": float(np.mean([r["input_ratio"] for r in q])),
                     "feature_ratio": float(np.mean([r["feature_ratio"] for r in q])),
                     "neighbour_ratio": float(np.mean([r["neighbours"] / max(r["neighbours_chance"], 1e-12)
                                                       for r in q])),
                     "mean_max_prob": float(np.mean([mean_max_route_prob(r) for r in rec.assm])),
                     "untrained": router_untrained(rec.assm)})
    return rows


__all__ = ["CLAIMS", "UNTRAINED_NOTE", "VARIANTS", "ASE_ORDERS", "mean_max_route_prob", "router_untrained",
           "ss2d_outputs_raster", "scan_redundancy", "redundancy_table", "label_distances",
           "ase_query_map", "ase_query_note", "knockouts", "knockout_metrics", "padded_input",
           "within_group_fraction", "neighbour_agreement", "prompt_quality", "prompt_quality_table",
           "prompt_quality_series"]


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def _report(ckpt: str, image_path: str, ground_truth: bool, crop: int) -> list[str]:
    """The numbers of every view for one checkpoint and image, as printable lines."""
    from model import capture, load_checkpoint
    from model.evaluation.degrade import bicubic_downscale, modcrop, to_uint8
    from model.hub.weights import task_of
    from model.training.data import load_image

    net = load_checkpoint(ckpt)
    cfg = net.config
    s = int(cfg.upscale)
    img = load_image(image_path)
    gt = None
    if ground_truth:
        if task_of(cfg) != "sr":
            raise ValueError("--gt is implemented for SR checkpoints only")
        gt = modcrop(img, s)
        img = to_uint8(bicubic_downscale(gt, s)).astype(np.float32) / 255.0
    h0, w0 = img.shape[:2]
    r0, c0 = max(0, (h0 - crop) // 2), max(0, (w0 - crop) // 2)
    small = img[r0:r0 + crop, c0:c0 + crop]  # records of the centre crop keep memory small
    x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None][:, : cfg.in_chans]
    with torch.no_grad(), capture(net) as rec:
        net(x)
    lines = [f"{ckpt}: {cfg.arch}, x{s}; records of the centre {small.shape[1]}x{small.shape[0]} crop"]
    if rec.ss2d:
        lines.append(CLAIMS["redundancy"])
        lines.append("layer  similarity  state part only")
        lines += [f"{r['stage']}.{r['block']:<5} {r['mean']:10.3f} {r['mean_state']:16.3f}"
                  for r in redundancy_table(rec.ss2d)]
    if rec.assm:
        untrained = router_untrained(rec.assm)
        probs = [mean_max_route_prob(r) for r in rec.assm]
        lines.append(f"router: mean max route probability {min(probs):.3f}..{max(probs):.3f} "
                     f"(1/T = {1 / rec.assm[0]['route_logp'].shape[-1]:.3f})"
                     + (f"; {UNTRAINED_NOTE}" if untrained else ""))
        lines.append("layer  same-label distance raster -> scan   input var/rand  feature var/rand  "
                     "neighbours (chance)")
        for r, q in zip(rec.assm, prompt_quality_table(rec.assm, small[..., : cfg.in_chans]), strict=True):
            d = label_distances(r)
            lines.append(f"{r['stage']}.{r['block']:<5} {d['raster']:12.1f} -> {d['scan']:8.1f} "
                         f"{q['input_ratio']:17.3f} {q['feature_ratio']:17.3f}   "
                         f"{q['neighbours']:.3f} ({q['neighbours_chance']:.3f})")
        xs = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None][:, : cfg.in_chans]
        outs = {k: v[0].clamp(0, 1).permute(1, 2, 0).numpy() for k, v in knockouts(net, xs).items()}
        base = outs["as trained"]
        rows = knockout_metrics(outs, gt, s, True) if gt is not None else None
        lines.append("variant            mean |change| (/255)" + ("   PSNR-Y   SSIM-Y" if rows else ""))
        for i, (name, out) in enumerate(outs.items()):
            change = float(np.abs(out.astype(np.float64) - base).mean() * 255)
            tail = f"   {rows[i]['psnr']:6.2f}   {rows[i]['ssim']:.4f}" if rows else ""
            lines.append(f"{name:<18} {change:20.4f}{tail}")
    return lines


def main(argv: list[str] | None = None) -> None:
    """``python -m model.analysis.evidence CKPT IMAGE [--gt] [--crop N]``: the views' numbers as text."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m model.analysis.evidence",
                                 description="The paper's claims measured on one image and checkpoint.")
    ap.add_argument("checkpoint")
    ap.add_argument("image")
    ap.add_argument("--gt", action="store_true",
                    help="treat the image as ground truth: downscale (MATLAB bicubic), restore, score")
    ap.add_argument("--crop", type=int, default=96, help="side of the centre crop the layers are recorded on")
    a = ap.parse_args(argv)
    print("\n".join(_report(a.checkpoint, a.image, a.gt, a.crop)))


if __name__ == "__main__":
    from model.cli import run_cli

    run_cli(main)
