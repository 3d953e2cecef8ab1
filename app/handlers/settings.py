"""The Settings tab: how much prompt order and Gumbel noise change MambaIRv2's output."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from model.evaluation.degrade import to_uint8

from .. import cache
from ..region import LARGE_REGION
from .common import (
    DEFAULT_TILE,
    MODE_AS_IS,
    PROMPT_ORDERS,
    apply_options,
    explain_errors,
    gpu,
    prepare,
    run_network,
    specs_for,
)

EFFECTS = ["prompt order: official vs aligned", "Gumbel routing: spread over seeds"]


def _magnitude_image(m: np.ndarray) -> np.ndarray:
    """(h, w) non-negative map -> (h, w, 3) uint8 grey image scaled so that its max is white."""
    top = float(m.max())
    g = np.round(255.0 * (m / top if top > 0 else m))
    return np.repeat(g[..., None], 3, axis=2).astype(np.uint8)  # (h, w) -> (h, w, 3)


@gpu
@explain_errors
def settings_effect(image: Any, task: str | None = None, mode: str = MODE_AS_IS, what: str = EFFECTS[0],
                    runs: float = 3, tile: float = DEFAULT_TILE, region: str | None = "",
                    large: str = LARGE_REGION,
                    progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """How much MambaIRv2's output changes with a setting: (difference/spread picture, details).

    ``region``/``large``: the part of a large photo to use, as in ``restore``."""
    from model.evaluation.metrics import psnr

    prep = prepare(image, task, mode, region, large)
    spec = specs_for(task).get("MambaIRv2")
    if spec is None:
        raise gr.Error("no MambaIRv2 weights for this task")
    net = cache.get_model(spec)
    try:
        if what == EFFECTS[0]:
            outs = []
            for k, order in enumerate(PROMPT_ORDERS):
                progress((k, 2), desc=f"prompt order {order}")
                apply_options(net, "MambaIRv2", "argmax", 0, order)
                outs.append(run_network(net, prep.lr, int(tile), progress))
            diff = np.abs(outs[0] - outs[1]).mean(axis=2)  # (h, w, 3) -> (h, w)
            p = psnr(to_uint8(outs[0]), to_uint8(outs[1]))
            text = (f"Mean absolute difference official vs aligned: {255 * diff.mean():.2f} / 255, "
                    f"max {255 * diff.max():.1f} / 255; PSNR between the two outputs {p:.2f} dB. "
                    "Both with argmax routing; white = largest change.")
            pic = _magnitude_image(diff)
        elif what == EFFECTS[1]:
            n = max(2, int(runs))
            apply_options(net, "MambaIRv2", "argmax", 0, "official")
            ref = run_network(net, prep.lr, int(tile), progress)
            outs = []
            for k in range(n):
                progress((k, n), desc=f"Gumbel seed {k}")
                apply_options(net, "MambaIRv2", "gumbel", k, "official")
                outs.append(run_network(net, prep.lr, int(tile), progress))
            stack = np.stack(outs)  # (n, h, w, 3)
            spread = stack.std(axis=0).mean(axis=2)  # (h, w)
            ps = [psnr(to_uint8(o), to_uint8(ref)) for o in outs]
            text = (f"{n} runs with Gumbel noise (seeds 0..{n - 1}): mean per-pixel std "
                    f"{255 * spread.mean():.2f} / 255, max {255 * spread.max():.1f} / 255; PSNR of each run "
                    f"against argmax routing: {', '.join(f'{v:.2f}' for v in ps)} dB. White = most variable.")
            pic = _magnitude_image(spread)
        else:
            raise gr.Error(f"unknown comparison {what!r}; choose one of: {'; '.join(EFFECTS)}")
    finally:
        apply_options(net, "MambaIRv2", "argmax", 0, "official")  # leave the cached model as the default
    if spec.is_random:
        text = f"⚠️ {cache.RANDOM_NOTE}.\n\n" + text
    return pic, text
