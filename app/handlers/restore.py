"""The Restore tab: both networks on one input, with details and scores."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import numpy as np

from model.degrade import to_uint8

from .. import cache
from .common import (
    DEFAULT_TILE,
    MODE_AS_IS,
    apply_options,
    backend_name,
    explain_errors,
    gpu,
    prepare,
    provenance,
    run_network,
    score_pair,
    specs_for,
    trained_for,
)


@gpu
@explain_errors
def restore(image: Any, task: str | None = None, mode: str = MODE_AS_IS, routing: str = "argmax",
            seed: float = 0, prompt_order: str = "official", tile: float = DEFAULT_TILE,
            progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008
    """Restore with MambaIRv2 and MambaIR: (v2 image, MambaIR image, slider, details, scores, state)."""
    prep = prepare(image, task, mode)
    specs = specs_for(task)
    outs: dict[str, np.ndarray | None] = {}
    rows = ["| model | time (s) | params | device | scan | weights | trained for |",
            "|---|---|---|---|---|---|---|"]
    for i, fam in enumerate(cache.FAMILIES):
        spec = specs.get(fam)
        if spec is None:
            outs[fam] = None
            rows.append(f"| {fam} | – | – | – | – | no weights for this task | – |")
            continue
        progress((i, len(cache.FAMILIES)), desc=f"loading {fam}")
        net = cache.get_model(spec)
        apply_options(net, fam, routing, int(seed), prompt_order)
        progress((i, len(cache.FAMILIES)), desc=f"running {fam}")
        t0 = time.perf_counter()
        outs[fam] = run_network(net, prep.lr, int(tile), progress)
        dt = time.perf_counter() - t0
        rows.append(f"| {fam} | {dt:.2f} | {cache.param_count(net):,} | {cache.device().type} | "
                    f"{backend_name()} | {provenance(spec)} | {trained_for(spec)} |")
    v2, v1 = outs.get("MambaIRv2"), outs.get("MambaIR")
    details = "\n".join(rows)
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

