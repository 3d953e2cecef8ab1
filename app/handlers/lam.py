"""LAM for both networks on a window of the output, and the click that places the window."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from model.threads import cpu_threads
from viz.lam import FAST_NODES

from .. import cache
from ..region import LARGE_REGION
from .common import (
    MODE_AS_IS,
    apply_options,
    explain_errors,
    gpu,
    in_chans,
    prepare,
    progress_fn,
    specs_for,
    to_tensor,
)

LAM_WINDOW = 16        # HR pixels per side of the attributed output window (LAM_Demo)
# LR pixels per side of the crop LAM runs on: the paper's 64 (256 HR at x4). LAM runs with
# fast=True, where the steps are Gauss-Legendre nodes: FAST_NODES of them are closer to the
# converged map than LAM_Demo's 50 steps (README, Speed), so the DI is the paper's DI.
LAM_CONTEXT = 64
LAM_DEFAULT_STEPS = FAST_NODES


def draw_box(img: np.ndarray, x: int, y: int, size: int, color=(255, 40, 40)) -> np.ndarray:
    """Copy of ``img`` with a 2-pixel rectangle at top-left (x, y) of ``size`` pixels."""
    out = np.array(img, copy=True)
    h, w = out.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + size), min(h, y + size)
    t = 2 if size >= 8 else 1
    out[y0:y1, x0:min(w, x0 + t)] = color
    out[y0:y1, max(0, x1 - t):x1] = color
    out[y0:min(h, y0 + t), x0:x1] = color
    out[max(0, y1 - t):y1, x0:x1] = color
    return out


def lam_window(x: float, y: float, out_hw: tuple[int, int], size: int = LAM_WINDOW) -> tuple[int, int]:
    """Top-left (x, y) of the ``size`` window centred on a click at (x, y), kept inside the image."""
    h, w = out_hw
    x0 = int(min(max(0, round(x) - size // 2), max(0, w - size)))
    y0 = int(min(max(0, round(y) - size // 2), max(0, h - size)))
    return x0, y0


LAM_METHODS = ["LAM", "Integrated gradients", "Saliency"]


def _lam_crop(lr: np.ndarray, scale: int, x0: int, y0: int,
              context: int = LAM_CONTEXT) -> tuple[np.ndarray, int, int]:
    """LR crop of ``context`` pixels around the HR window at (x0, y0), and its top-left (row, col)."""
    H, W = lr.shape[:2]
    cy, cx = (y0 + LAM_WINDOW // 2) // scale, (x0 + LAM_WINDOW // 2) // scale
    r0 = int(min(max(0, cy - context // 2), max(0, H - context)))
    c0 = int(min(max(0, cx - context // 2), max(0, W - context)))
    return lr[r0:r0 + context, c0:c0 + context], r0, c0


@gpu
@explain_errors
def lam(image: Any, task: str | None = None, mode: str = MODE_AS_IS, x: float = -1, y: float = -1,
        method: str = "LAM", steps: float = LAM_DEFAULT_STEPS, routing: str = "argmax", seed: float = 0,
        prompt_order: str = "official", region: str | None = "", large: str = LARGE_REGION,
        progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """LAM of the 16x16 output window centred on output pixel (x, y) for both models, with DI.

    Returns (MambaIRv2 LAM picture, MambaIR LAM picture, details). x, y < 0 picks the centre.
    ``region``/``large``: the part of a large photo to use, as in ``restore`` (x, y are in its output).
    """
    from viz import lam as vlam

    prep = prepare(image, task, mode, region, large)
    specs = specs_for(task)
    s = prep.scale
    H, W = prep.lr.shape[:2]
    out_hw = (H * s, W * s)
    if x is None or y is None or x < 0 or y < 0:
        x, y = out_hw[1] / 2, out_hw[0] / 2
    if x >= out_hw[1] or y >= out_hw[0]:
        raise gr.Error(f"point ({x:.0f}, {y:.0f}) is outside the {out_hw[1]}x{out_hw[0]} output")
    x0, y0 = lam_window(x, y, out_hw)
    crop, r0, c0 = _lam_crop(prep.lr, s, x0, y0)
    h, w = y0 - r0 * s, x0 - c0 * s  # window top-left inside the crop's output
    window = min(LAM_WINDOW, crop.shape[0] * s - h, crop.shape[1] * s - w)
    steps = max(1, int(steps))
    pictures: dict[str, np.ndarray | None] = {}
    rows = ["| model | method | DI | Gini | steps | time (s) |", "|---|---|---|---|---|---|"]
    for fam in cache.FAMILIES:
        spec = specs.get(fam)
        if spec is None:
            pictures[fam] = None
            continue
        net = cache.get_model(spec)
        apply_options(net, fam, routing, int(seed), prompt_order)
        x_in = to_tensor(np.clip(crop, 0.0, 1.0), in_chans(net), next(net.parameters()).device)
        report = progress_fn(progress, f"{method} {fam}")
        kw = dict(h=int(h), w=int(w), window=int(window), progress=report)
        if method not in LAM_METHODS:
            raise gr.Error(f"unknown method {method!r}; choose one of {', '.join(LAM_METHODS)}")
        with cpu_threads(device=x_in.device):  # every core if idle, one beside another job
            if method == "Integrated gradients":
                res = vlam.integrated_gradients(net, x_in, steps=steps, **kw)
            elif method == "Saliency":
                res = vlam.saliency(net, x_in, **kw)
            else:
                res = vlam.local_attribution_map(net, x_in, steps=steps, fast=True, **kw)
        pictures[fam] = vlam.lam_figure(res, title=f"{fam}  DI {res.diffusion_index:.2f}")
        rows.append(f"| {fam} | {res.method} | {res.diffusion_index:.2f} | {res.gini:.3f} | {res.steps} | "
                    f"{res.seconds:.1f} |")
    info = (f"Window: output pixels x {x0}–{x0 + window - 1}, y {y0}–{y0 + window - 1} "
            f"(LR crop of {crop.shape[1]}x{crop.shape[0]} at column {c0}, row {r0}).\n\n" + "\n".join(rows)
            + "\n\nDI (diffusion index) = (1 − Gini of the map) × 100: higher means the model draws on "
              "more input pixels for this window.")
    if any(sp.is_random for sp in specs.values()):
        info = f"⚠️ {cache.RANDOM_NOTE}.\n\n" + info
    return pictures.get("MambaIRv2"), pictures.get("MambaIR"), info


def select_window(state: dict | None, evt: gr.SelectData) -> tuple:
    """Click on an output: (x, y) of the click, and both outputs with the LAM window drawn."""
    x, y = (int(v) for v in evt.index[:2])
    outs = []
    for key in ("v2", "v1"):
        img = (state or {}).get(key)
        if img is None:
            outs.append(gr.skip())
            continue
        x0, y0 = lam_window(x, y, img.shape[:2])
        outs.append(draw_box(img, x0, y0, LAM_WINDOW))
    return x, y, outs[0], outs[1]

