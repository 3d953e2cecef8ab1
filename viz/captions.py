"""Two-line captions for the lesson view: what to notice in each step's pictures, for this image.

Pure functions of capture records (``model.capture``), the step-through data of ``viz.stepscan`` and
the implicit-attention maps of ``viz.attention``; strings out (Markdown, two lines per step joined by
a hard line break). Letters: H, W image size, S = H*W pixels, T labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model.analysis.router_stats import UNIFORM_FACTOR

from .arrays import Record
from .sgn import label_grid, num_labels

BREAK = "  \n"   # a Markdown line break: two lines, one paragraph
FAR = 8          # pixels farther than this from yours are "far" (outside a 17x17 window around it)
STEPS = ("pick", "route", "sort", "scan", "unsort", "step")


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.0f}%" if whole else "0%"


def _share(v: float) -> str:
    return f"{100.0 * v:.1f}%"


def _layer(record: Record) -> str:
    return f"{record.get('stage', '?')}.{record.get('block', '?')}"


def _jumps(order: np.ndarray, w: int) -> np.ndarray:
    """(S-1,) image distance between consecutive pixels of a visit order (raster indices r*W+c)."""
    r, c = order // w, order % w
    return np.hypot(np.diff(r), np.diff(c))


def _reach(amap: np.ndarray, px: tuple[int, int], rel: float = 0.01) -> tuple[int, float]:
    """How many other pixels get at least ``rel`` of the largest weight, and the farthest one's distance."""
    a = np.abs(np.asarray(amap, dtype=np.float64)).copy()
    a[px] = 0.0  # the pixel's own (skip) weight is not reach
    top = a.max()
    if top <= 0:
        return 0, 0.0
    rr, cc = np.nonzero(a >= rel * top)
    return int(rr.size), float(np.hypot(rr - px[0], cc - px[1]).max())


def lesson_captions(v2: Record | None, v1: Record | None, hw: tuple[int, int], pixel: tuple[int, int],
                    data: dict[str, Any] | None = None, amap_v2: np.ndarray | None = None,
                    amap_v1: np.ndarray | None = None) -> dict[str, str]:
    """Caption per lesson step (keys ``STEPS``) computed for this image, layer and pixel; a step with
    nothing to say for the networks at hand gets an empty string."""
    h, w = int(hw[0]), int(hw[1])
    S = h * w
    r, c = int(pixel[0]), int(pixel[1])
    out = dict.fromkeys(STEPS, "")
    if v2 is not None:
        labels = label_grid(v2, hw)
        T = num_labels(v2)
        counts = np.bincount(labels.ravel(), minlength=T)
        k = int(labels[r, c])
        mine = labels == k
        rr, cc = np.nonzero(mine)
        far = int((np.hypot(rr - r, cc - c) > FAR).sum())
        out["pick"] = (f"Your pixel (x {c}, y {r}) got label {k} in layer {_layer(v2)}: "
                       f"{int(counts[k])} of the {S} pixels ({_pct(counts[k], S)}) share it, {far} of them "
                       f"more than {FAR} px away."
                       + BREAK + ("The pixels that keep their colour become its neighbours in the sequence, "
                                  "wherever they are in the picture."
                                  if far else "Its group is local here: the sort keeps it among pixels "
                                  "near it, much as a raster scan would."))
        top = int(np.argmax(counts))
        used = int((counts > 0).sum())
        cover = int(np.searchsorted(np.cumsum(np.sort(counts)[::-1]), 0.9 * S) + 1)
        probs = np.exp(np.asarray(v2["route_logp"][0], dtype=np.float64)) if "route_logp" in v2 else None
        line2 = ""
        if probs is not None:
            grid_w = int(v2["grid"][1])
            keep = (np.arange(probs.shape[0]) // grid_w < h) & (np.arange(probs.shape[0]) % grid_w < w)
            conf = float(probs[keep].max(axis=1).mean())
            line2 = (f"The router's mean confidence is {conf:.2f}, {conf * T:.1f}× the 1/T = {1 / T:.3f} "
                     "of a coin toss: " + ("its labels follow this image." if conf >= UNIFORM_FACTOR / T
                                      else "its labels are close to arbitrary here."))
        out["route"] = (f"Label {top} holds {int(counts[top])} pixels ({_pct(counts[top], S)}), the largest "
                        f"group; {min(cover, used)} of the {used} labels in use cover 90% of the pixels."
                        + (BREAK + line2 if line2 else ""))
    if data is not None and data.get("v2") is not None:
        o2 = np.asarray(data["v2"]["order"], dtype=np.int64)
        pos = int(np.flatnonzero(o2 == r * w + c)[0])
        lab = np.asarray(data["labels"])[o2]
        run = np.flatnonzero(lab == lab[pos])
        j2 = _jumps(o2, w)
        out["sort"] = (f"In SGN order your pixel is read at step {pos + 1} of {S}, in a run of {run.size} "
                       f"same-label pixels (steps {run[0] + 1}–{run[-1] + 1}); MambaIR's row-major scan "
                       f"reads it at step {r * w + c + 1}." + BREAK
                       + f"Consecutive pixels of the SGN sequence are {j2.mean():.1f} px apart on average "
                         f"({_pct((j2 > 1.5).sum(), j2.size)} are jumps), against "
                         f"{_jumps(np.arange(S), w).mean():.2f} px for a row-major scan.")
        own_added = data["v2"]["prompt"][pos]
        s2 = np.asarray(data["v2"]["share"])
        line2 = (f"{_share(s2[pos])} of your pixel's MambaIRv2 output comes from pixels read before it "
                 f"({_share(s2.mean())} on average in this layer)")
        if data.get("v1") is not None:
            s1 = np.asarray(data["v1"]["share"])
            line2 += (f"; MambaIR's row-major scan: {_share(s1[r * w + c])} ({_share(s1.mean())} on "
                      "average)")
        own = int(label_grid(v2, hw)[r, c]) if v2 is not None else own_added
        out["scan"] = (f"At your pixel's step the layer adds prompt {own_added} to C"
                       + (" (its own)." if own_added == own else
                          f", not its own prompt {own} (the official order adds another pixel's).")
                       + BREAK + line2
                       + "; the rest is the pixel's own input (the skip term D·x and its own B·x).")
        n_groups = int((np.diff(lab) != 0).sum() + 1)
        q = S // 4
        rows_hit = np.unique(o2[:q] // w).size
        out["step"] = (f"SGN order reads {n_groups} label groups one after another: after a quarter of the "
                       f"scan (t = {q}) it has read pixels in {rows_hit} of the {h} rows, where row-major "
                       f"has read only the top {-(-q // w)}." + BREAK
                       + f"The largest share of an output from earlier pixels: MambaIRv2 "
                         f"{_share(s2.max())} (at step {int(np.argmax(s2)) + 1})"
                       + (f", MambaIR {_share(np.max(data['v1']['share']))}." if data.get("v1") else "."))
    parts = []
    for name, amap in (("MambaIRv2", amap_v2), ("MambaIR", amap_v1)):
        if amap is not None:
            n, d = _reach(amap[:h, :w], (r, c))
            parts.append(f"{name}'s output at your pixel reads {n} other pixels with at least 1% of its "
                         f"largest weight, the farthest {d:.0f} px away")
    if parts:
        line2 = ""
        if amap_v2 is not None and v2 is not None:
            a = np.abs(np.asarray(amap_v2, dtype=np.float64))[:h, :w].copy()
            a[r, c] = 0.0
            mine = label_grid(v2, hw) == label_grid(v2, hw)[r, c]
            line2 = (f"{_pct(a[mine].sum(), a.sum())} of MambaIRv2's weight (its own pixel left out) lies "
                     "on pixels with your pixel's label.")
        out["unsort"] = "; ".join(parts) + "." + (BREAK + line2 if line2 else "")
    return out
