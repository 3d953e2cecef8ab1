"""The scan, step by step: which pixels a scan has read after t steps, in MambaIRv2's label-sorted (SGN)
order next to MambaIR's row-major scan, and how much of each output comes from the pixels read before it.

Everything here is computed once from ``model.capture`` records (no forward per step): ``step_data``
builds a plain JSON-able dict that the app's step-through animates in the browser (app/stepscan.js),
and ``step_frame`` draws the same picture as a uint8 image (for a GIF or a frame strip, and to test).

How much of an output comes from earlier pixels: a selective scan is linear in its input u, so the
output at sequence position i splits exactly into the part from positions j < i and its own part,

    y[d, i] = sum_{j<i} alpha[d, i, j] u[d, j]  +  alpha[d, i, i] u[d, i],
    alpha[d, i, i] = delta[d, i] * sum_n C[n, i] B[n, i] + D[d]

(alpha: the implicit attention of viz/attention.py; delta after bias and softplus). The own part needs
only position i, and the earlier part is the captured output minus it: one pass over the sequence,
not the L x L attention matrix. ``share`` = sum_d |earlier| / (sum_d |earlier| + sum_d |own|): 0 when
the output is the pixel's own input only, near 1 when it is mostly what the scan read before.

Letters: B batch, D channels of one scan, N d_state, L = Hp*Wp positions of the padded grid,
H, W image size, S = H*W image pixels in a sequence (padded ones dropped), T labels.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .arrays import PIXEL_RGB, Record, as_numpy, as_rgb_uint8, grid_hw, image_hw_of, pixel_rc
from .palette import label_colors, label_hex
from .sgn import label_grid, num_labels

UNREAD_RGB = (226, 226, 226)   # a pixel the scan has not read yet (flat: the picture fills in as it reads)
LABEL_TINT = 0.35              # MambaIRv2 panel: share of the label colour blended into a read pixel
V1_SCAN = 0                    # which of MambaIR's four scans is stepped through: 0 = row-major


def output_split(record: Record, channels: slice | None = None, group: int = 0, batch: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(D', L) float64 parts of every scan output (scan order): from the positions before it, and from
    its own input (the skip term D included); they add up to the captured output ``scan_out``."""
    scan = record["scan"]
    u = torch.as_tensor(scan["u"])[batch].double()  # (D, L)
    delta = torch.as_tensor(scan["delta"])[batch].double()  # (D, L)
    if scan.get("delta_bias") is not None:
        delta = delta + torch.as_tensor(scan["delta_bias"]).double()[:, None]  # (D, L)
    if scan.get("delta_softplus", False):
        delta = F.softplus(delta)
    Bm, Cm = torch.as_tensor(scan["B"])[batch].double(), torch.as_tensor(scan["C"])[batch].double()
    if Bm.dim() == 3:  # grouped (G, N, L): the group these channels read
        Bm, Cm = Bm[group], Cm[group]
    cb = (Cm * Bm).sum(dim=0)  # (N, L) -> (L,): C_i . B_i
    Dv = torch.as_tensor(scan["D"]).double() if scan.get("D") is not None else torch.zeros(u.shape[0])
    y = torch.as_tensor(record["scan_out"])[batch].double()  # (D, L)
    if channels is not None:
        u, delta, Dv, y = u[channels], delta[channels], Dv[channels], y[channels]
    own = (delta * cb[None, :] + Dv[:, None]) * u  # (D', L): alpha[d, i, i] u[d, i]
    return (y - own).numpy(), own.numpy()


def earlier_share(record: Record, channels: slice | None = None, group: int = 0, batch: int = 0
                  ) -> np.ndarray:
    """(L,) float64 share of each output (scan order) that comes from positions read before it:
    sum_d |earlier| / (sum_d |earlier| + sum_d |own|), 0..1."""
    earlier, own = output_split(record, channels, group, batch)
    e, o = np.abs(earlier).sum(axis=0), np.abs(own).sum(axis=0)  # (D', L) -> (L,)
    return np.divide(e, e + o, out=np.zeros_like(e), where=(e + o) > 0)


def _kept(order: np.ndarray, grid: tuple[int, int], hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a padded-grid sequence that are image pixels, and those pixels' raster index r*W+c."""
    rows, cols = order // grid[1], order % grid[1]
    keep = np.flatnonzero((rows < hw[0]) & (cols < hw[1]))
    return keep, rows[keep] * hw[1] + cols[keep]


def v2_sequence(record: Record, hw: tuple[int, int], batch: int = 0) -> dict[str, Any]:
    """MambaIRv2 (one ASSM layer): image pixels in SGN (label-sorted) order, the prompt the layer added
    at each position, and the share of each output from earlier positions."""
    grid = grid_hw(record)
    perm = as_numpy(record["perm"])[batch].astype(np.int64)  # (L,) sorted position -> raster pixel
    labels = as_numpy(record["labels"])[batch].astype(np.int64)  # (L,) raster order
    keep, order = _kept(perm, grid, hw)
    # Official order: the prompt added at sorted position i is that of raster pixel i (see viz/ase.py).
    added = labels[perm] if record.get("prompt_order", "official") == "aligned" else labels
    share = earlier_share(record, batch=batch)
    return {"order": order.tolist(), "prompt": added[keep].tolist(),
            "share": np.round(share[keep], 4).tolist(), "scan": "SGN order (sorted by label)",
            "layer": f"{record.get('stage', '?')}.{record.get('block', '?')}"}


def v1_sequence(record: Record, hw: tuple[int, int], scan: int = V1_SCAN, batch: int = 0) -> dict[str, Any]:
    """MambaIR (one SS2D layer): image pixels in the order of one of its four raster scans (default
    row-major) and the share of each of that scan's outputs from earlier positions."""
    from .sequence import SCAN_NAMES

    grid = grid_hw(record)
    orders = as_numpy(record["orders"]).astype(np.int64)  # (4, L)
    keep, order = _kept(orders[scan], grid, hw)
    dk = as_numpy(record["scan"]["u"]).shape[1] // orders.shape[0]  # channels per scan
    share = earlier_share(record, channels=slice(scan * dk, (scan + 1) * dk), group=scan, batch=batch)
    return {"order": order.tolist(), "share": np.round(share[keep], 4).tolist(),
            "scan": f"{SCAN_NAMES[scan]} (1 of its 4 scans)",
            "layer": f"{record.get('stage', '?')}.{record.get('block', '?')}"}


def step_data(v2: Record | None, v1: Record | None, image: Any, image_hw: tuple[int, int] | None = None,
              pixel: tuple[int, int] | None = None, batch: int = 0) -> dict[str, Any]:
    """Everything the step-through shows, as a JSON-able dict: the image (base64 RGB bytes), each
    pixel's label and the label colours, and per network the visit order (raster index r*W+c per
    sequence position), the added prompt (MambaIRv2) and the share of each output from earlier pixels."""
    img = as_rgb_uint8(image)
    ref = v2 if v2 is not None else v1
    if ref is None:
        raise ValueError("need a MambaIRv2 or a MambaIR record")
    hw = image_hw_of(ref, image_hw if image_hw is not None else img.shape[:2])
    img = np.ascontiguousarray(img[: hw[0], : hw[1]])
    data: dict[str, Any] = {"h": hw[0], "w": hw[1], "rgb": base64.b64encode(img.tobytes()).decode("ascii"),
                            "pixel": list(pixel_rc(pixel, hw)) if pixel is not None else None,
                            "v2": None, "v1": None, "labels": None, "colors": None}
    if v2 is not None:
        T = num_labels(v2)
        data.update(labels=label_grid(v2, hw, batch).ravel().tolist(), colors=label_hex(T))
        data["v2"] = v2_sequence(v2, hw, batch)
    if v1 is not None:
        data["v1"] = v1_sequence(v1, hw, batch=batch)
    return data


def image_of(data: dict[str, Any]) -> np.ndarray:
    """(H, W, 3) uint8 image of a ``step_data`` dict."""
    raw = np.frombuffer(base64.b64decode(data["rgb"]), dtype=np.uint8)
    return raw.reshape(int(data["h"]), int(data["w"]), 3)


def read_mask(order: list[int] | np.ndarray, t: int, hw: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the pixels a scan with visit ``order`` has read after t steps (positions 0..t-1)."""
    mask = np.zeros(hw[0] * hw[1], dtype=bool)
    mask[np.asarray(order, dtype=np.int64)[: max(0, int(t))]] = True
    return mask.reshape(hw)


def panel(data: dict[str, Any], net: str, t: int, zoom: int = 4) -> np.ndarray:
    """(zH, zW, 3) uint8 one network's picture after t steps: read pixels in colour (MambaIRv2's tinted
    with their label colour), unread ones flat grey, the pixel read at step t boxed in cyan."""
    hw = (int(data["h"]), int(data["w"]))
    seq = data[net]
    img = image_of(data).astype(np.float64)
    if net == "v2" and data.get("labels") is not None:
        colors = label_colors(len(data["colors"]))[np.asarray(data["labels"]).reshape(hw)]  # (H, W, 3)
        img = (1.0 - LABEL_TINT) * img + LABEL_TINT * colors
    shown = np.where(read_mask(seq["order"], t, hw)[:, :, None], np.floor(img + 0.5),
                     np.array(UNREAD_RGB, dtype=np.float64)).astype(np.uint8)
    out = np.repeat(np.repeat(shown, zoom, axis=0), zoom, axis=1)  # (H, W, 3) -> (zH, zW, 3)
    if 0 < t <= len(seq["order"]):
        p = int(seq["order"][t - 1])
        r, c = (p // hw[1]) * zoom, (p % hw[1]) * zoom
        r0, c0 = max(0, r - 1), max(0, c - 1)
        r1, c1 = min(out.shape[0], r + zoom + 1), min(out.shape[1], c + zoom + 1)
        for e in (0, 1):  # a box two pixels wide on the cell's edge: cell centres stay visible
            out[r0:r1, [min(c0 + e, c1 - 1), max(c1 - 1 - e, c0)]] = PIXEL_RGB
            out[[min(r0 + e, r1 - 1), max(r1 - 1 - e, r0)], c0:c1] = PIXEL_RGB
    return out


def _share_plot(share: list[float], t: int, width: int, height: int, color: tuple[int, int, int],
                top: float = 1.0) -> np.ndarray:
    """(height, width, 3) uint8 curve of the share per position (0 at the bottom, ``top`` at the top),
    drawn up to step t, faint after."""
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    s = np.asarray(share, dtype=np.float64)
    if s.size == 0:
        return out
    cols = np.minimum((np.arange(s.size) * width) // max(s.size, 1), width - 1)
    rows = (height - 1 - np.round(np.clip(s / max(top, 1e-12), 0, 1) * (height - 1))).astype(np.int64)
    faint = np.array(color, dtype=np.float64) * 0.25 + 255 * 0.75
    out[rows, cols] = faint.astype(np.uint8)
    done = np.arange(s.size) < t
    out[rows[done], cols[done]] = color
    out[[0, height - 1], :] = 200  # frame: share ``top`` at the top line, 0 at the bottom
    if 0 < t <= s.size:
        out[:, cols[t - 1]] = PIXEL_RGB
    return out


def step_frame(data: dict[str, Any], t: int, zoom: int = 4, plot_height: int = 48) -> np.ndarray:
    """uint8 still of the step-through after t steps: MambaIRv2 (SGN order) left, MambaIR (raster order)
    right, each with the share of every output from earlier pixels below it (cursor at step t; one scale
    for both, from 0 to the largest share)."""
    from PIL import Image, ImageDraw

    top = max(max(data[k]["share"], default=0.0) for k in ("v2", "v1") if data.get(k) is not None)
    panels = []
    for net, color in (("v2", (31, 119, 180)), ("v1", (214, 39, 40))):
        if data.get(net) is None:
            continue
        pic = panel(data, net, t, zoom)
        n = len(data[net]["order"])
        plot = _share_plot(data[net]["share"], t, pic.shape[1], plot_height, color, top)
        head = np.full((18, pic.shape[1], 3), 255, dtype=np.uint8)
        im = Image.fromarray(head)
        name = "MambaIRv2: SGN order" if net == "v2" else "MambaIR: row-major"
        ImageDraw.Draw(im).text((2, 3), f"{name}  t={min(t, n)}/{n}", fill=(0, 0, 0))
        gap = np.full((4, pic.shape[1], 3), 255, dtype=np.uint8)
        panels.append(np.concatenate([np.asarray(im), pic, gap, plot], axis=0))
        panels.append(np.full((panels[-1].shape[0], 8, 3), 255, dtype=np.uint8))
    if not panels:
        raise ValueError("step data holds neither network")
    return np.concatenate(panels[:-1], axis=1)


def frame_strip(data: dict[str, Any], steps: list[int], zoom: int = 2) -> np.ndarray:
    """uint8 frames of ``step_frame`` at several steps, stacked top to bottom with a thin gap."""
    frames = [step_frame(data, t, zoom) for t in steps]
    gap = np.full((6, frames[0].shape[1], 3), 160, dtype=np.uint8)
    out = [frames[0]]
    for f in frames[1:]:
        out += [gap, f]
    return np.concatenate(out, axis=0)
