"""Where the Internals lesson opens when the user has not chosen: the layer whose router is most decided
for this input and a pixel on an object edge. Plain functions (no Gradio), tested alone.

Why not simply the largest mean route probability: on the shipped demo weights the most decided layer
is often one that sends almost every pixel to one prompt (layer 0.3 of the light x2 and x4 models on
chelsea.png: one label for 100% of the pixels, mean largest probability 0.44 / 0.61), a picture with
nothing to follow. So the choice is the most decided layer among those whose labels split the picture
into at least MIN_GROUPS effective groups (perplexity of the label usage), and the most decided of all
only when no layer splits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .region import edge_pixel

AUTO_LAYER = "auto"            # the layer menu's value for "let the app choose"
AUTO_LAYER_LABEL = "auto: most decided"
MIN_GROUPS = 2.0               # effective number of label groups (perplexity) a chosen layer must reach
EDGE_MARGIN = 8                # pixels kept between the chosen pixel and the border of the crop
# The pixel's label must be shared by at least this share of the picture: on the demo weights the
# strongest edge of coffee.png sits in a label of 2 pixels (layer 0.4), whose group pictures are empty.
MIN_GROUP_SHARE = 0.05


def is_auto(layer: str | None) -> bool:
    """True for the menu's "auto" entry (and an empty value, as the API may send)."""
    return layer is None or str(layer).strip().lower() in ("", AUTO_LAYER)


def pick_layer(stats: Sequence[dict[str, Any]]) -> tuple[int, str]:
    """Index (forward order) of the layer the lesson opens on and why ("is shown because ...").

    ``stats``: ``model.analysis.router_stats.records_stats`` of the input's ASSM records (keys stage, block,
    mean_max_prob, perplexity, num_prompts)."""
    if not stats:
        raise ValueError("no ASSM layer recorded")
    mmp = np.array([float(s["mean_max_prob"]) for s in stats])
    split = np.array([float(s["perplexity"]) >= MIN_GROUPS for s in stats])
    pool = np.flatnonzero(split) if split.any() else np.arange(len(stats))
    i = int(pool[np.argmax(mmp[pool])])
    s = stats[i]
    t = int(s["num_prompts"])
    where = (f"among the layers whose labels split this picture into at least {MIN_GROUPS:g} groups "
             f"(perplexity ≥ {MIN_GROUPS:g})" if split.any() else "no layer splits this picture into "
             f"{MIN_GROUPS:g} or more label groups")
    why = (f"is shown because its router is the most decided for this input "
           f"(mean largest route probability {mmp[i]:.2f} = {mmp[i] * t:.1f}/T; uniform would be 1/T), "
           f"{where}; the least decided layer has {mmp.min():.2f}")
    return i, why


def pick_pixel(rgb: np.ndarray, labels: np.ndarray | None = None) -> tuple[tuple[int, int], str]:
    """(row, col) the lesson follows by default and why: the largest gradient magnitude of the input (an
    object edge), at least EDGE_MARGIN pixels from the border and, with the layer's (H, W) ``labels``,
    in a label group of at least MIN_GROUP_SHARE of the pixels (so that its group has something to show)."""
    allowed = None
    if labels is not None:
        counts = np.bincount(labels.ravel().astype(np.int64))
        allowed = counts[labels.astype(np.int64)] >= MIN_GROUP_SHARE * labels.size  # (H, W) bool
    r, c = edge_pixel(rgb, EDGE_MARGIN, allowed)
    # No "%" in this text: tests and app/screenshots.py take a "%" in the summary for a progress bar.
    group = (f", in a label group of at least 1/{round(1 / MIN_GROUP_SHARE)} of the pixels"
             if allowed is not None and allowed[r, c] else "")
    return (r, c), (f"chosen on an object edge: the largest gradient magnitude of the input, at least "
                    f"{EDGE_MARGIN} pixels from the border{group}")
