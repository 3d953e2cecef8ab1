"""The Evidence tab: the paper's claims tested on the user's image and checkpoint (issue 14).

Each view is one handler with its own api_name; the numbers come from ``model.analysis.evidence`` /
``model.evaluation.profile`` and the pictures from ``viz.evidence``. Views that record internals look at
the centre crop of the network input (as the Internals tab does); ``ablation`` runs the whole image.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
import torch

from model.evaluation.degrade import to_uint8

from .. import cache
from .common import (
    DEFAULT_TILE,
    INTERNALS_MAX,
    MODE_AS_IS,
    centre_crop,
    checkpoint_items,
    explain_errors,
    gpu,
    in_chans,
    layer_record,
    prepare,
    run_network,
    score_pair,
    specs_for,
    to_tensor,
)

COST_SIZES = "32, 64"
QUERY_ZOOM = 4  # the crop is shown this many times enlarged for picking the ASE query pixel
COST_MAX_SIDE = 256  # the cost view runs a forward per size; keep it to seconds on a CPU
SERIES_GT_SIDE = 128  # the series scores every checkpoint on the centre this-many pixels of the image
SERIES_CROP = 64  # LR pixels per side of the centre crop each checkpoint's layers are recorded on


def _records(image: Any, task: str | None, mode: str, family: str,
             progress: Any = None) -> tuple[list[dict], np.ndarray, bool]:
    """Capture records of one network on the centre crop: (records, crop (H, W, 3) float, random?)."""
    from model.capture import capture

    prep = prepare(image, task, mode)
    spec = specs_for(task).get(family)
    if spec is None:
        raise gr.Error(f"no {family} weights for this task")
    lr = np.clip(centre_crop(prep.lr, INTERNALS_MAX), 0.0, 1.0)
    if progress is not None:
        progress((0, 1), desc=f"recording {family}")
    net = cache.get_model(spec)
    x = to_tensor(lr, in_chans(net), next(net.parameters()).device)
    with torch.no_grad(), capture(net) as rec:
        net(x)
    records = list(rec.assm) if family == "MambaIRv2" else list(rec.ss2d)
    return records, lr, spec.is_random


def _untrained(records: list[dict], random_weights: bool) -> bool:
    from model.analysis.evidence import router_untrained

    return random_weights or router_untrained(records)


def _note(untrained: bool, random_weights: bool) -> str:
    from model.analysis.evidence import UNTRAINED_NOTE

    if random_weights:
        return f"⚠️ {cache.RANDOM_NOTE}: the views run, but cannot test the paper's claims."
    return f"⚠️ {UNTRAINED_NOTE}" if untrained else ""


@gpu
@explain_errors
def scan_redundancy(image: Any, task: str | None = None, mode: str = MODE_AS_IS,
                    progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """MambaIR's four-scan similarity per layer: (figure, markdown with one row per layer)."""
    from model.analysis.evidence import CLAIMS, redundancy_table
    from viz.evidence import redundancy_figure

    records, _, rnd = _records(image, task, mode, "MambaIR", progress)
    rows = redundancy_table(records)
    lines = ["| layer | mean similarity | state part only |", "| --- | ---: | ---: |"]
    lines += [f"| {r['stage']}.{r['block']} | {r['mean']:.3f} | {r['mean_state']:.3f} |" for r in rows]
    note = _note(False, rnd)
    text = "\n".join(lines) + f"\n\n{CLAIMS['redundancy']}" + (f"\n\n{note}" if note else "")
    return redundancy_figure(records), text


@gpu
@explain_errors
def decay(image: Any, task: str | None = None, mode: str = MODE_AS_IS, layer: str = "0.0",
          progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """Long-range decay of one layer: (MambaIRv2 figure, MambaIR figure, markdown)."""
    from model.analysis.evidence import label_distances
    from viz.evidence import decay_figure

    v2recs, _, rnd = _records(image, task, mode, "MambaIRv2", progress)
    untrained = _untrained(v2recs, rnd)
    r2 = layer_record(v2recs, layer)
    fig2 = decay_figure(r2, untrained=untrained)
    fig1 = None
    if specs_for(task).get("MambaIR") is not None:
        v1recs, _, _ = _records(image, task, mode, "MambaIR")
        fig1 = decay_figure(layer_record(v1recs, layer))
    d = label_distances(r2)
    text = (f"MambaIRv2 layer {r2['stage']}.{r2['block']}: same-label pixel pairs are on average "
            f"{d['raster']:.1f} positions apart in raster order and {d['scan']:.1f} in the scanned order.")
    note = _note(untrained, rnd)
    return fig2, fig1, text + (f"\n\n{note}" if note else "")


@gpu
@explain_errors
def ase_query(image: Any, task: str | None = None, mode: str = MODE_AS_IS, layer: str = "0.0",
              row: float = -1, col: float = -1,
              progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """The ASE query map of one pixel, official vs aligned prompt order: (figure, markdown, the crop
    enlarged QUERY_ZOOM times with the query pixel boxed, to click the next query on)."""
    from model.analysis.evidence import ase_query_note
    from viz.evidence import ase_query_figure

    records, lr, rnd = _records(image, task, mode, "MambaIRv2", progress)
    untrained = _untrained(records, rnd)
    h, w = lr.shape[:2]
    r = int(row) if row is not None and row >= 0 else h // 2
    c = int(col) if col is not None and col >= 0 else w // 2
    if not (0 <= r < h and 0 <= c < w):
        raise gr.Error(f"pixel (row {r}, col {c}) is outside the {w}x{h} crop")
    rec = layer_record(records, layer)
    fig = ase_query_figure(rec, (r, c), to_uint8(lr), untrained=untrained)
    note = _note(untrained, rnd)
    big = np.repeat(np.repeat(to_uint8(lr), QUERY_ZOOM, axis=0), QUERY_ZOOM, axis=1)  # (zH, zW, 3)
    z = QUERY_ZOOM
    big[r * z:(r + 1) * z, c * z:(c + 1) * z] = (0, 255, 0)  # the query pixel
    return fig, ase_query_note(rec, (r, c)) + (f"\n\n{note}" if note else ""), big


def select_query(evt: gr.SelectData) -> tuple[int, int]:
    """Click on the enlarged crop: (row, col) of the crop pixel under the click."""
    x, y = (int(v) for v in evt.index[:2])
    return y // QUERY_ZOOM, x // QUERY_ZOOM


@gpu
@explain_errors
def ablation(image: Any, task: str | None = None, mode: str = MODE_AS_IS, tile: float = DEFAULT_TILE,
             progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """MambaIRv2 as trained and with SGN off / prompt off / aligned prompts, on the whole image.

    Returns (outputs gallery, difference-map gallery (x10, vs as trained), markdown table with one
    row per variant; PSNR/SSIM columns in ground-truth mode).
    """
    from model.analysis.evidence import knockouts, router_untrained
    from viz.evidence import ablation_markdown, difference_image

    prep = prepare(image, task, mode)
    spec = specs_for(task).get("MambaIRv2")
    if spec is None:
        raise gr.Error("no MambaIRv2 weights for this task")
    net = cache.get_model(spec)

    def step(frac: float, name: str) -> None:
        progress(frac, desc=f"MambaIRv2 {name}")

    outs = knockouts(net, prep.lr, forward=lambda n, img: run_network(n, img, int(tile)), progress=step)
    metrics = None
    if prep.gt is not None:
        metrics = []
        for name, out in outs.items():
            p, s = score_pair(out, prep.gt, prep.kind, prep.scale)
            metrics.append({"variant": name, "psnr": p, "ssim": s})
    # Whether the router is trained: one capture on the crop (cheap next to four full forwards).
    crop_recs, _, rnd = _records(image, task, mode, "MambaIRv2")
    untrained = rnd or router_untrained(crop_recs)
    table = ablation_markdown(outs, metrics, untrained=untrained)
    if rnd:
        table += f"\n\n⚠️ {cache.RANDOM_NOTE}."
    base = outs["as trained"]
    gallery = [(to_uint8(o), name) for name, o in outs.items()]
    diffs = [(difference_image(o, base), f"|{name} - as trained| x10") for name, o in outs.items()
             if name != "as trained"]
    return gallery, diffs, table


@gpu
@explain_errors
def prompt_quality(image: Any, task: str | None = None, mode: str = MODE_AS_IS,
                   progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """Coherence of each layer's label groups: (figure, markdown with one row per layer)."""
    from model.analysis.evidence import prompt_quality_table
    from viz.evidence import prompt_quality_figure

    records, lr, rnd = _records(image, task, mode, "MambaIRv2", progress)
    untrained = _untrained(records, rnd)
    rows = prompt_quality_table(records, lr, lr.shape[:2])  # grayscale tasks: three equal channels
    lines = ["| layer | input var / random | feature var / random | same-label neighbours | chance "
             "| labels |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['stage']}.{r['block']} | {r['input_ratio']:.3f} | {r['feature_ratio']:.3f} | "
              f"{r['neighbours']:.3f} | {r['neighbours_chance']:.3f} | {r['labels_used']} |" for r in rows]
    note = _note(untrained, rnd)
    return prompt_quality_figure(rows, untrained), "\n".join(lines) + (f"\n\n{note}" if note else "")


@gpu
@explain_errors
def prompt_quality_series(files: Any = None, folder: str | None = None, image: Any = None,
                          progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """Prompt quality (mean over layers) and PSNR for every checkpoint of one SR run: (figure, markdown).

    The centre of ``image`` is the ground truth: MATLAB-style bicubic makes the LR, each checkpoint
    restores it and is scored on Y (BasicSR conventions); its layers are recorded on the LR's centre.
    """
    import os

    from model.analysis.evidence import CLAIMS, UNTRAINED_NOTE
    from model.analysis.evidence import prompt_quality_series as series
    from viz.evidence import prompt_quality_series_figure

    from ..io import ImageError, load_image

    items = checkpoint_items(files, folder)
    if image is None:
        raise gr.Error("give an input image on the Restore tab (or pick an example there) first: it is "
                       "the ground truth every checkpoint is scored against")
    try:
        rgb = load_image(image)
    except ImageError as exc:
        raise gr.Error(str(exc), title="Cannot use this image") from exc
    h, w = rgb.shape[:2]
    sh, sw = min(SERIES_GT_SIDE, h), min(SERIES_GT_SIDE, w)
    r0, c0 = (h - sh) // 2, (w - sw) // 2
    gt = rgb[r0:r0 + sh, c0:c0 + sw].astype(np.float32) / 255.0  # (sh, sw, 3) centre, the ground truth

    def report(i: int, n: int, path: Any) -> None:
        progress((i, n), desc=f"restoring and recording {os.path.basename(str(path))}")

    try:
        rows = series(items, gt, crop=SERIES_CROP, progress=report)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
        raise gr.Error(str(exc), title="Cannot use these checkpoints") from exc
    lines = ["| checkpoint | PSNR-Y (dB) | SSIM-Y | input var / random | feature var / random "
             "| neighbours / chance | router |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        name = f"step {r['step']}" if r["step"] is not None else os.path.basename(r["path"])
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['input_ratio']:.3f} | "
                     f"{r['feature_ratio']:.3f} | {r['neighbour_ratio']:.3f} | "
                     f"{'untrained' if r['untrained'] else 'trained'} |")
    head = (f"{len(rows)} checkpoints, scored on the centre {sw}×{sh} pixels of the image as ground truth "
            f"(bicubic LR, PSNR/SSIM on Y, border = scale); layers recorded on the LR's centre "
            f"{SERIES_CROP}×{SERIES_CROP} pixels at most.")
    text = head + "\n\n" + "\n".join(lines) + f"\n\n{CLAIMS['quality']}"
    if any(r["untrained"] for r in rows):
        text += f"\n\n⚠️ rows marked untrained: {UNTRAINED_NOTE}"
    return prompt_quality_series_figure(rows), text


@gpu
@explain_errors
def cost(task: str | None = None, sizes: str = COST_SIZES,
         progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """MACs per component and time for the task's two networks at the given input sizes: (figure, table)."""
    from model.analysis.evidence import CLAIMS
    from model.evaluation.profile import format_table, parse_size, profile
    from viz.evidence import cost_figure

    try:
        hws = [parse_size(s.strip()) for s in str(sizes).split(",") if s.strip()]
    except ValueError as exc:
        raise gr.Error(f"sizes must be like '32, 64' or '48x64': {exc}") from exc
    if not hws or max(max(hw) for hw in hws) > COST_MAX_SIDE or min(min(hw) for hw in hws) < 1:
        raise gr.Error(f"give one or more sizes between 1 and {COST_MAX_SIDE} pixels, e.g. '32, 64'")
    specs = specs_for(task)
    results = []
    jobs = [(fam, hw) for fam in cache.FAMILIES if fam in specs for hw in hws]
    for i, (fam, hw) in enumerate(jobs):
        progress((i, len(jobs)), desc=f"{fam} {hw[0]}x{hw[1]}")
        cfg = cache.config_of(specs[fam])
        results.append(profile(cfg, hw, name=f"{fam} ({getattr(cfg, 'arch', fam)})"))
    note = f"{CLAIMS['cost']} Counted on randomly initialised copies: the count does not depend on weights."
    return cost_figure(results), format_table(results) + f"\n\n{note}"
