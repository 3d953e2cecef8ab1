"""The Restore tab: both networks on one input, with details and scores."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from model.evaluation.degrade import to_uint8

from .. import cache
from ..io import ImageError, load_image
from ..region import LARGE_REGION, describe
from ..timing import RUN_LOCK, is_calibrated
from .common import (
    DEFAULT_TILE,
    MODE_AS_IS,
    RUNTIME_ONNX,
    apply_options,
    backend_line,
    backend_name,
    default_runtime,
    estimate_model,
    estimate_seconds,
    explain_errors,
    gpu,
    plan_for,
    prepare,
    provenance,
    record_speed,
    run_network,
    run_threads,
    score_pair,
    specs_for,
    trained_for,
)


@gpu
@explain_errors
def restore(image: Any, task: str | None = None, mode: str = MODE_AS_IS, routing: str = "argmax",
            seed: float = 0, prompt_order: str = "official", tile: float = DEFAULT_TILE,
            region: str | None = "", large: str = LARGE_REGION, runtime: str | None = None,
            progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008
    """Restore with MambaIRv2 and MambaIR: (v2 image, MambaIR image, slider, details, scores, state).

    A photo larger than the networks' limit is cut to ``region`` ('x,y' or 'x0,y0,x1,y1' in photo
    pixels; empty: the most detailed window, ``app.region.default_box``) or downscaled when ``large``
    is "Downscale to fit" (``app.region``).
    ``runtime``: "PyTorch" or "onnxruntime" (the network exported to ONNX on first use, cached;
    default from ``MAMBAIR_RUNTIME``); Gumbel routing has no ONNX form and runs on PyTorch.
    """
    runtime = runtime or default_runtime()
    prep = prepare(image, task, mode, region, large)
    specs = specs_for(task)
    outs: dict[str, np.ndarray | None] = {}
    # Short columns in the table; the long words (weights, training) as lines under it, so that the
    # table does not break words at a 1000 px window.
    rows = ["| model | estimated (s) | time (s) | params | device | scan |", "|---|---|---|---|---|---|"]
    about: list[str] = []
    hw = prep.lr.shape[:2]
    # The estimates are made before any model runs (as the preview's), so that the table compares
    # the promise with what happened; the first call of a process measures the machine first.
    if not all(is_calibrated(sp.key) for sp in specs.values()):
        progress((0, len(cache.FAMILIES)), desc="timing the models on this machine (once)")
    # One thread count for the estimates and the runs (chosen once the models are timed).
    n_threads = run_threads(specs)
    estimates = {fam: estimate_model(sp, hw, int(tile), n_threads) for fam, sp in specs.items()}
    for i, fam in enumerate(cache.FAMILIES):
        spec = specs.get(fam)
        if spec is None:
            outs[fam] = None
            rows.append(f"| {fam} | – | – | – | – | – |")
            about.append(f"- **{fam}**: no weights for this task")
            continue
        progress((i, len(cache.FAMILIES)), desc=f"loading {fam}")
        net = cache.get_model(spec)
        apply_options(net, fam, routing, int(seed), prompt_order)
        runner, engine = net, None
        if runtime == RUNTIME_ONNX:
            if fam == "MambaIRv2" and routing != "argmax":
                about.append(f"- **{fam}**: {routing} routing has no ONNX form; ran on PyTorch")
            else:
                progress((i, len(cache.FAMILIES)), desc=f"{fam} to ONNX (first use exports, checks, caches)")
                runner, engine = cache.get_onnx(spec, net), "onnxruntime"
        progress((i, len(cache.FAMILIES)), desc=f"running {fam}")
        with RUN_LOCK:  # no calibration shares the machine with this run
            t0 = time.perf_counter()
            outs[fam] = run_network(runner, prep.lr, int(tile), progress, n_threads)
            dt = time.perf_counter() - t0
        if engine is None:  # the time estimates are of the PyTorch path
            record_speed(spec, hw, int(tile), dt, n_threads)
        where = cache.device().type
        if n_threads and engine is None:
            where += f", {n_threads} thread{'s' if n_threads > 1 else ''}"
        rows.append(f"| {fam} | {estimates[fam]:.2f} | {dt:.2f} | {cache.param_count(net):,} | "
                    f"{where} | {engine or backend_name()} |")
        about.append(f"- **{fam}** weights: {provenance(spec)}; trained for {trained_for(spec)}")
    v2, v1 = outs.get("MambaIRv2"), outs.get("MambaIR")
    details = ("\n".join(rows) + "\n\n" + "\n".join(about)
               + f"\n\nScan backend: {backend_line(cache.device().type)}.")
    if runtime == RUNTIME_ONNX:
        details += ("\n\nRuntime: onnxruntime for the restored images (ONNX files exported from these "
                    "networks, checked against PyTorch to 1e-4); internals, capture and LAM run on PyTorch.")
    if prep.plan.how != "whole":
        details = describe(prep.plan, prep.scale, None) + "\n\n" + details
    if any(s.is_random for s in specs.values()):
        details = f"⚠️ {cache.RANDOM_NOTE}: no trained checkpoints in weights/.\n\n" + details
    scores = ""
    if prep.gt is not None:
        srows = ["| output | PSNR (dB) | SSIM |", "|---|---|---|"]
        for name, pred in (("MambaIRv2", v2), ("MambaIR", v1), (prep.baseline_name, prep.baseline)):
            if pred is not None:
                p, s = score_pair(pred, prep.gt, prep.kind, prep.scale)
                srows.append(f"| {name} | {p:.2f} | {s:.4f} |")
        conv = {"sr": f"Y channel, {prep.scale}-pixel border cropped",
                "dn": "RGB, no crop", "car": "grayscale, no crop"}[prep.kind]
        scores = "\n".join(srows) + f"\n\nBasicSR conventions: {conv}."
    before = to_uint8(prep.baseline)
    v2u = to_uint8(v2) if v2 is not None else None
    v1u = to_uint8(v1) if v1 is not None else None
    slider = (before, v2u if v2u is not None else v1u)
    state = {"task": task, "mode": mode, "v2": v2u, "v1": v1u}
    return v2u, v1u, slider, details, scores, state



PREVIEW_SIDE = 480     # pixels per side of the region preview (the photo shrunk, the region outlined)


@explain_errors
def region_preview(image: Any, task: str | None = None, mode: str = MODE_AS_IS, region: str | None = "",
                   large: str = LARGE_REGION, tile: float = DEFAULT_TILE) -> tuple:
    """Before a run: (what the networks will see, output size and estimated time; the photo shrunk with
    the region outlined, hidden when the whole photo is used). Cheap once the task's models have been
    measured (``app.timing``); the first preview of a task loads them and times a few small forwards."""
    if image is None:
        return "", gr.Image(value=None, visible=False)
    try:
        photo = load_image(image, max_side=None)
    except ImageError as exc:
        raise gr.Error(str(exc), title="Cannot use this image") from exc
    plan = plan_for(photo.shape[:2], task, mode, region, large, photo=photo)
    specs = specs_for(task)
    scale = next(iter(specs.values())).scale
    text = describe(plan, scale, estimate_seconds(specs, plan.net_hw, int(tile)))
    if plan.how == "whole":
        return text, gr.Image(value=None, visible=False)
    h, w = plan.photo_hw
    shrink = min(1.0, PREVIEW_SIDE / max(h, w))
    small = np.asarray(Image.fromarray(photo).resize((max(1, round(w * shrink)), max(1, round(h * shrink))),
                                                     Image.BILINEAR))
    t, left, b, r = (round(v * shrink) for v in plan.box)
    return text, gr.Image(value=draw_rect(small, t, left, b, r), visible=True)


@explain_errors
def new_photo(image: Any, task: str | None = None, mode: str = MODE_AS_IS,
              large: str = LARGE_REGION, tile: float = DEFAULT_TILE) -> tuple:
    """A new upload: the region goes back to the default (the most detailed window); (region, preview
    text, preview image)."""
    return ("", *region_preview(image, task, mode, "", large, tile))


def draw_rect(img: np.ndarray, top: int, left: int, bottom: int, right: int,
              color: tuple[int, int, int] = (255, 40, 40), width: int = 2) -> np.ndarray:
    """Copy of ``img`` with a rectangle outline on rows [top, bottom) and columns [left, right)."""
    out = np.array(img, copy=True)
    h, w = out.shape[:2]
    t, b = max(0, top), min(h, max(bottom, top + 1))
    lft, r = max(0, left), min(w, max(right, left + 1))
    out[t:b, lft:min(r, lft + width)] = color
    out[t:b, max(lft, r - width):r] = color
    out[t:min(b, t + width), lft:r] = color
    out[max(t, b - width):b, lft:r] = color
    return out
