"""Hover text in plain words for the lesson's image-shaped plots: what a point is (pixel, its label, the
prompt the layer added there, its step in the scan) and the value shown.

Plotly names a heat map's column x and its row y, so a pixel reads "pixel (x col, y row)" everywhere.
Letters: H, W image size, S = H*W pixels.
"""

from __future__ import annotations

import numpy as np

from .arrays import Record, as_numpy, grid_hw, image_hw_of

PIXEL = "pixel (x %{x}, y %{y})"
NONE = "<extra></extra>"  # no trace name box beside the text


def pixel_facts(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0) -> np.ndarray:
    """(H, W, 4) int64 per pixel of a MambaIRv2 ASSM record: its label, the prompt the layer added at
    its position in the sequence, its step in SGN order (1-based) and how many pixels share its label."""
    hp, wp = grid_hw(record)
    h, w = image_hw_of(record, image_hw)
    labels = as_numpy(record["labels"])[batch].astype(np.int64)  # (L,) raster order
    perm = as_numpy(record["perm"])[batch].astype(np.int64)  # (L,) sorted position -> raster
    inv = as_numpy(record["inv_perm"])[batch].astype(np.int64)  # (L,) raster -> sorted position
    # Official order: sorted position s gets raster pixel s's prompt (ase.prompt_indices).
    added = labels if record.get("prompt_order", "official") == "aligned" else labels[inv]
    rows, cols = perm // wp, perm % wp
    keep = (rows < h) & (cols < w)
    step = np.empty(hp * wp, dtype=np.int64)
    step[perm[keep]] = np.arange(1, int(keep.sum()) + 1)  # padded pixels are not counted as steps
    grid = labels.reshape(hp, wp)[:h, :w]  # (L,) -> (Hp, Wp) -> (H, W)
    counts = np.bincount(grid.ravel(), minlength=int(labels.max()) + 1)
    crop = np.stack([labels, added, step], axis=1).reshape(hp, wp, 3)[:h, :w]  # (L, 3) -> (H, W, 3)
    return np.concatenate([crop, counts[grid][:, :, None]], axis=2)


def facts_lines(n_pixels: int, first: int = 0) -> str:
    """Hover lines that read ``pixel_facts`` from customdata columns first..first+3."""
    a, b, c, d = (f"%{{customdata[{first + i}]}}" for i in range(4))
    return (f"<br>label {a} (shared by {d} pixels), prompt added {b}"
            f"<br>read at step {c} of {n_pixels} in SGN order")
