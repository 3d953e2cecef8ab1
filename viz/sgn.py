"""Pictures of SGN (semantic-guided neighbouring): which prompt/label each pixel was routed to.

Inputs are MambaIRv2 ASSM capture records (``model.capture``): ``labels`` (B, L)
holds the label of each raster pixel of the padded grid ``grid`` = (Hp, Wp),
L = Hp*Wp. The network pads at the bottom and right, so the image's (H, W)
pixels are the top-left corner of the grid; every picture crops to it.

Letters: B batch, L = Hp*Wp tokens, T number of prompts/labels, H, W image size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .arrays import Record, as_numpy, as_rgb_uint8, grid_hw, image_axes, image_hw_of, resize_nearest
from .palette import discrete_colorscale, label_colors, label_hex


def num_labels(record: Record) -> int:
    """T, the number of prompts a pixel could be routed to."""
    if "route_logp" in record:
        return int(record["route_logp"].shape[-1])
    return int(record["prompt_pool"].shape[0])


def label_grid(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0) -> np.ndarray:
    """(H, W) int64 label of each image pixel (the grid cropped to the image)."""
    hp, wp = grid_hw(record)
    h, w = image_hw_of(record, image_hw)
    labels = as_numpy(record["labels"])[batch].astype(np.int64)  # (L,)
    return labels.reshape(hp, wp)[:h, :w]  # (L,) -> (Hp, Wp) -> (H, W)


def _default_lr_hw(record: Record, image: np.ndarray, image_hw: tuple[int, int] | None) -> tuple[int, int]:
    # An image that fits in the grid is the (unpadded) LR input itself; a larger
    # one (e.g. the SR output) is shown over the whole grid unless told otherwise.
    if image_hw is not None:
        return image_hw_of(record, image_hw)
    hp, wp = grid_hw(record)
    if image.shape[0] <= hp and image.shape[1] <= wp:
        return image.shape[0], image.shape[1]
    return hp, wp


# ---------------------------------------------------------------- pictures
def label_map(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 label image: pixels that share a colour were routed to the same prompt and
    become neighbours in the sorted 1-D sequence, wherever they are in the image."""
    labels = label_grid(record, image_hw, batch)
    return label_colors(num_labels(record))[labels]  # (H, W) -> (H, W, 3)


def label_overlay(image: Any, record: Record, alpha: float = 0.5, image_hw: tuple[int, int] | None = None,
                  batch: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 blend of the label colours over the image: shows which objects/textures the
    router groups together (labels follow content, not position).

    ``image`` may be displayed at any size (e.g. the SR output): the labels of the LR image's
    ``image_hw`` (default: the image's own size if it fits in the grid) are resized to it with
    nearest neighbour.
    """
    img = as_rgb_uint8(image)
    lr_hw = _default_lr_hw(record, img, image_hw)
    colors = label_map(record, lr_hw, batch)
    colors = resize_nearest(colors, img.shape[:2])
    out = (1.0 - alpha) * img.astype(np.float64) + alpha * colors.astype(np.float64)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def label_counts(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0) -> np.ndarray:
    """(T,) int64 number of image pixels routed to each label."""
    labels = label_grid(record, image_hw, batch)
    return np.bincount(labels.ravel(), minlength=num_labels(record)).astype(np.int64)


def label_map_figure(record: Record, image: Any | None = None, image_hw: tuple[int, int] | None = None,
                     batch: int = 0, title: str | None = None) -> go.Figure:
    """Figure of the image beside its SGN label map, one legend entry (colour, pixel count) per label in
    use: the router splits the image into a few semantic groups and each group is scanned as a block."""
    if image is not None:
        img = as_rgb_uint8(image)
        hw = _default_lr_hw(record, img, image_hw)
        img = img[: hw[0], : hw[1]] if img.shape[:2] != hw else img
    else:
        img, hw = None, image_hw_of(record, image_hw)
    labels = label_grid(record, hw, batch)
    T = num_labels(record)
    counts = np.bincount(labels.ravel(), minlength=T)
    used = np.flatnonzero(counts)
    order = used[np.argsort(-counts[used], kind="stable")]  # legend: largest group first
    hexes = label_hex(T)
    n_pix = labels.size

    cols = 2 if img is not None and img.shape[:2] == labels.shape else 1
    fig = make_subplots(rows=1, cols=cols, horizontal_spacing=0.04,
                        subplot_titles=(["input", "SGN labels"] if cols == 2 else None))
    if cols == 2:
        fig.add_trace(go.Image(z=img, name="input", hoverinfo="skip"), row=1, col=1)
    fig.add_trace(
        go.Heatmap(z=labels, zmin=-0.5, zmax=T - 0.5, colorscale=discrete_colorscale(T), showscale=False,
                   name="labels", hovertemplate="row %{y}, col %{x}<br>label %{z}<extra></extra>"),
        row=1, col=cols,
    )
    # Invisible markers give the legend one entry per used label (a heat map has no legend).
    for k in order:
        share = 100.0 * counts[k] / n_pix
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers",
                       marker=dict(color=hexes[k], size=10, symbol="square"),
                       name=f"label {k}: {counts[k]} px ({share:.1f}%)", legendgroup=f"label{k}",
                       showlegend=True),
            row=1, col=cols,
        )
    image_axes(fig, 1, cols)
    where = f"stage {record.get('stage', '?')}, block {record.get('block', '?')}"
    head = title or f"SGN labels ({where})"
    fig.update_layout(title=f"{head}: {len(used)} of {T} labels in use", legend_title_text="label: pixels",
                      margin=dict(l=10, r=10, t=60, b=10), plot_bgcolor="white")
    return fig
