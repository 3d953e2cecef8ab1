"""Helpers every ``viz`` module shares: arrays from tensors, capture-record sizes, image axes, pixel marks.

A capture record (``model.capture``) describes one scan layer on a padded grid (Hp, Wp); the image's
(H, W) pixels are its top-left corner. Letters: H, W image size, Hp, Wp padded grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

Record = dict[str, Any]

# The marker of the followed pixel, the same in every picture of the lesson view.
PIXEL_COLOR = "cyan"
PIXEL_RGB = (0, 255, 255)


def as_numpy(x: Any) -> np.ndarray:
    """A torch tensor or array-like as a numpy array (detached, on CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_rgb_uint8(image: Any) -> np.ndarray:
    """(H, W, 3) uint8 from uint8 or float-in-[0, 1] (H, W), (H, W, 1) or (H, W, 3) arrays/tensors."""
    img = as_numpy(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)  # (H, W, 1) -> (H, W, 3)
    img = img[:, :, :3]
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    return (np.clip(img.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def grid_hw(record: Record) -> tuple[int, int]:
    """The padded grid (Hp, Wp) the layer worked on."""
    hp, wp = record["grid"]
    return int(hp), int(wp)


def image_hw_of(record: Record, image_hw: tuple[int, int] | None) -> tuple[int, int]:
    """The image size to crop to (default: the whole grid); checked to fit inside the grid."""
    hp, wp = grid_hw(record)
    if image_hw is None:
        return hp, wp
    h, w = int(image_hw[0]), int(image_hw[1])
    if not (0 < h <= hp and 0 < w <= wp):
        raise ValueError(f"image size {(h, w)} does not fit in the layer's padded grid {(hp, wp)}")
    return h, w


def resize_nearest(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes to hw (pixel-centre sampling)."""
    h, w = a.shape[:2]
    rows = np.minimum(((np.arange(hw[0]) + 0.5) * h / hw[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(hw[1]) + 0.5) * w / hw[1]).astype(np.int64), w - 1)
    return a[rows][:, cols]


def image_axes(fig: go.Figure, rows: int, cols: int) -> None:
    """Make every subplot an image: y down, square pixels, no tick labels."""
    for k in range(rows * cols):
        r, c = k // cols + 1, k % cols + 1
        anchor = "x" if k == 0 else f"x{k + 1}"
        fig.update_yaxes(autorange="reversed", scaleanchor=anchor, showticklabels=False, row=r, col=c)
        fig.update_xaxes(showticklabels=False, constrain="domain", row=r, col=c)


def pixel_rc(pixel: Any, hw: tuple[int, int]) -> tuple[int, int] | None:
    """(row, col) of a ``pixel=`` argument, checked to lie inside ``hw``; None passes through."""
    if pixel is None:
        return None
    r, c = int(pixel[0]), int(pixel[1])
    if not (0 <= r < hw[0] and 0 <= c < hw[1]):
        raise ValueError(f"pixel {(r, c)} is outside the {hw[0]}x{hw[1]} image")
    return r, c


def mark_pixel(fig: go.Figure, rc: tuple[int, int], row: int = 1, col: int = 1, name: str = "your pixel",
               showlegend: bool = True, size: int = 13) -> None:
    """Draw the followed pixel as a cyan cross on one image subplot of ``fig``."""
    fig.add_trace(go.Scatter(x=[rc[1]], y=[rc[0]], mode="markers", name=name, legendgroup="pixel",
                             marker=dict(symbol="x-thin", size=size, color=PIXEL_COLOR,
                                         line=dict(width=3, color=PIXEL_COLOR)),
                             hovertemplate=f"{name}: row {rc[0]}, col {rc[1]}<extra></extra>",
                             showlegend=showlegend), row=row, col=col)


def box_pixel(img: np.ndarray, rc: tuple[int, int], zoom: int = 1, color: tuple[int, int, int] = PIXEL_RGB
              ) -> np.ndarray:
    """Copy of a uint8 picture (``zoom`` picture pixels per image pixel) with the pixel at ``rc`` boxed:
    a 1-pixel outline of its cell, widened to 3 cells when a cell is smaller than 4 picture pixels."""
    out = np.array(img, copy=True)
    h, w = out.shape[:2]
    grow = 1 if zoom < 4 else 0  # small cells: box the 3x3 neighbourhood so the mark can be seen
    r0, c0 = max(0, (rc[0] - grow) * zoom - 1), max(0, (rc[1] - grow) * zoom - 1)
    r1, c1 = min(h, (rc[0] + 1 + grow) * zoom + 1), min(w, (rc[1] + 1 + grow) * zoom + 1)
    out[r0:r1, [c0, c1 - 1]] = color
    out[[r0, r1 - 1], c0:c1] = color
    return out
