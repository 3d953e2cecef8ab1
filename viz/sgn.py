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

from . import hover
from .arrays import (
    Record,
    as_numpy,
    as_rgb_uint8,
    box_pixel,
    grid_hw,
    image_axes,
    image_hw_of,
    mark_pixel,
    pixel_rc,
    resize_nearest,
)
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


def same_label_mask(record: Record, pixel: tuple[int, int], image_hw: tuple[int, int] | None = None,
                    batch: int = 0) -> np.ndarray:
    """(H, W) bool: the pixels routed to the same label as ``pixel`` (row, col), itself included: after
    the sort they are its neighbours in the 1-D sequence, wherever they are in the image."""
    labels = label_grid(record, image_hw, batch)
    r, c = pixel_rc(pixel, labels.shape)
    return labels == labels[r, c]


def _dim(img: np.ndarray, keep: np.ndarray, amount: float = 0.75) -> np.ndarray:
    """Pixels outside ``keep`` faded towards white by ``amount`` (uint8 in, uint8 out)."""
    out = img.astype(np.float64)
    out[~keep] = (1.0 - amount) * out[~keep] + amount * 255.0
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def label_overlay(image: Any, record: Record, alpha: float = 0.5, image_hw: tuple[int, int] | None = None,
                  batch: int = 0, pixel: tuple[int, int] | None = None) -> np.ndarray:
    """(h, w, 3) uint8 blend of the label colours over the image: shows which objects/textures the
    router groups together (labels follow content, not position).

    ``image`` may be displayed at any size (e.g. the SR output): the labels of the LR image's
    ``image_hw`` (default: the image's own size if it fits in the grid) are resized to it with
    nearest neighbour. With ``pixel`` (row, col in the LR image) the pixels of other labels are faded
    and the pixel is boxed in cyan: the lesson view's "your pixel and its new neighbours".
    """
    img = as_rgb_uint8(image)
    lr_hw = _default_lr_hw(record, img, image_hw)
    colors = label_map(record, lr_hw, batch)
    colors = resize_nearest(colors, img.shape[:2])
    out = (1.0 - alpha) * img.astype(np.float64) + alpha * colors.astype(np.float64)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if pixel is None:
        return out
    keep = resize_nearest(same_label_mask(record, pixel, lr_hw, batch), img.shape[:2])
    zoom = max(1, img.shape[0] // lr_hw[0])
    return box_pixel(_dim(out, keep), pixel_rc(pixel, lr_hw), zoom)


def label_counts(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0) -> np.ndarray:
    """(T,) int64 number of image pixels routed to each label."""
    labels = label_grid(record, image_hw, batch)
    return np.bincount(labels.ravel(), minlength=num_labels(record)).astype(np.int64)


LEGEND_MAX = 12  # legend entries of a label map (largest groups first); the rest are summed in one


def label_map_figure(record: Record, image: Any | None = None, image_hw: tuple[int, int] | None = None,
                     batch: int = 0, title: str | None = None, pixel: tuple[int, int] | None = None,
                     height: int = 620) -> go.Figure:
    """Figure of the image beside its SGN label map, one legend entry (colour, pixel count) per label in
    use: the router splits the image into a few semantic groups and each group is scanned as a block.

    With ``pixel`` (row, col): a cyan cross on both panels, and on the input every pixel that shares
    its label kept while the rest is faded: the pixels it will sit next to in the sorted sequence.
    """
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
    rc = pixel_rc(pixel, hw)

    cols = 2 if img is not None and img.shape[:2] == labels.shape else 1
    left = "input" if rc is None else "input: same label as your pixel"
    fig = make_subplots(rows=1, cols=cols, horizontal_spacing=0.03,
                        subplot_titles=([left, "SGN labels"] if cols == 2 else None))
    facts = hover.pixel_facts(record, hw, batch) if "perm" in record else None
    if facts is not None:
        tip = dict(customdata=facts, hovertemplate=hover.PIXEL + hover.facts_lines(n_pix) + hover.NONE)
    else:
        tip = dict(hovertemplate=hover.PIXEL + "<br>label %{z}" + hover.NONE)
    if cols == 2:
        shown = img if rc is None else _dim(img, labels == labels[rc])
        fig.add_trace(go.Image(z=shown, name="input", **tip), row=1, col=1)
    fig.add_trace(
        go.Heatmap(z=labels, zmin=-0.5, zmax=T - 0.5, colorscale=discrete_colorscale(T), showscale=False,
                   name="labels", **tip),
        row=1, col=cols,
    )
    # Invisible markers give the legend one entry per used label (a heat map has no legend).
    for k in order[:LEGEND_MAX]:
        share = 100.0 * counts[k] / n_pix
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers",
                       marker=dict(color=hexes[k], size=10, symbol="square"),
                       name=f"label {k}: {counts[k]} px ({share:.1f}%)", legendgroup=f"label{k}",
                       showlegend=True),
            row=1, col=cols,
        )
    if len(order) > LEGEND_MAX:
        rest = order[LEGEND_MAX:]
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker=dict(color="white", size=1),
                                 name=f"{len(rest)} more labels: {int(counts[rest].sum())} px",
                                 showlegend=True), row=1, col=cols)
    if rc is not None:
        for c in range(1, cols + 1):
            mark_pixel(fig, rc, 1, c, showlegend=(c == cols))
    image_axes(fig, 1, cols)
    where = f"stage {record.get('stage', '?')}, block {record.get('block', '?')}"
    head = title or f"SGN labels ({where})"
    head = f"{head}: {len(used)} of {T} labels in use"
    if rc is not None:
        k = int(labels[rc])
        head += f"<br>your pixel (row {rc[0]}, col {rc[1]}): label {k}, shared by {int(counts[k])} pixels"
    # Legend under the maps: beside them it took a third of the width from the pictures.
    fig.update_layout(title=dict(text=head, x=0.01, xanchor="left", font=dict(size=15)),
                      legend=dict(title_text="label: pixels", orientation="h", x=0, y=-0.02, yanchor="top",
                                  entrywidth=200),  # fixed columns: wrapped, never cut
                      margin=dict(l=10, r=10, t=90 if rc is not None else 60, b=10), plot_bgcolor="white",
                      height=height)
    return fig
