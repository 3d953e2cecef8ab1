"""Which part of a large photo the networks see: a region (a box, or a window around a point) or the
whole photo downscaled to fit. Plain functions (no Gradio), tested alone.

Coordinates follow the click convention of the app: x = column, y = row, in pixels of the uploaded
photo (after its EXIF rotation). A box is (top, left, bottom, right), bottom/right exclusive.
"factor" is network pixels per photo pixel: 1 when the photo is the input, 1/scale in ground-truth
mode for SR (the photo is downscaled before the networks see it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .io import MAX_SIDE, MIN_SIDE, ImageError

LARGE_REGION = "Restore a region"
LARGE_FIT = "Downscale to fit"
LARGE_CHOICES = [LARGE_REGION, LARGE_FIT]
# Side (network pixels) of the default region and of the window placed by a click, on a CPU: a
# 256x256 input takes about 7 s per light model on a 2-core CPU (512x512: ~25 s). A drawn box may be
# as large as MAX_SIDE; on a GPU the default window is MAX_SIDE.
REGION_SIDE = 256

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Plan:
    """What to cut from the photo and how large the networks' input will be."""

    photo_hw: tuple[int, int]      # the whole photo (H, W)
    box: Box                       # the part of the photo that is used (the whole photo when it fits)
    resize_hw: tuple[int, int] | None  # photo pixels are resized to this (H, W) first (downscale to fit)
    net_hw: tuple[int, int]        # (H, W) of what the networks see
    how: str                       # "whole" | "region" | "downscaled"


def parse_region(text: str | None) -> tuple[int, ...] | None:
    """'' -> None (the default: centre); 'x,y' -> a point; 'x0,y0,x1,y1' -> a box (photo pixels)."""
    if text is None or not str(text).strip():
        return None
    parts = [p for p in re.split(r"[\s,;]+", str(text).strip()) if p]
    try:
        values = tuple(int(round(float(p))) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (2, 4) or any(v < 0 for v in values):
        raise ImageError(f"region {text!r}: give 'x,y' (a point) or 'x0,y0,x1,y1' (a box) in photo pixels, "
                         "or leave it empty for the centre")
    return values


def _window(centre: float, size: int, limit: int) -> tuple[int, int]:
    """[start, start + size) centred on ``centre`` and kept inside [0, limit)."""
    start = int(round(centre - size / 2))
    start = min(max(0, start), limit - size)
    return start, start + size


def choose_box(photo_hw: tuple[int, int], region: tuple[int, ...] | None, side: int, max_side: int) -> Box:
    """The box of the photo to use: ``side``-pixel window at the centre or around a point, or a drawn
    box clipped to the photo and shrunk about its centre to at most ``max_side`` per side."""
    h, w = int(photo_hw[0]), int(photo_hw[1])
    if region is None or len(region) == 2:
        x, y = (w / 2, h / 2) if region is None else (region[0] + 0.5, region[1] + 0.5)
        if region is not None and not (region[0] < w and region[1] < h):
            raise ImageError(f"point ({region[0]}, {region[1]}) is outside the {w}x{h} photo")
        t, b = _window(y, min(side, h), h)
        left, r = _window(x, min(side, w), w)
        return t, left, b, r
    x0, y0, x1, y1 = region
    left, r = sorted((min(x0, w), min(x1, w)))
    t, b = sorted((min(y0, h), min(y1, h)))
    if r - left > max_side:
        left, r = _window((left + r) / 2, max_side, w)
    if b - t > max_side:
        t, b = _window((t + b) / 2, max_side, h)
    return t, left, b, r


def plan_input(photo_hw: tuple[int, int], region: str | None = None, large: str = LARGE_REGION,
               factor: float = 1.0, max_side: int = MAX_SIDE, side: int = REGION_SIDE) -> Plan:
    """Plan the networks' input for a photo: the whole photo when its network view fits in ``max_side``,
    else a region (``region`` text, default the centre) or the photo downscaled to fit."""
    h, w = int(photo_hw[0]), int(photo_hw[1])
    if large not in LARGE_CHOICES:
        raise ImageError(f"large-photo choice must be one of {LARGE_CHOICES}, got {large!r}")
    net = (max(1, int(h * factor)), max(1, int(w * factor)))
    if max(net) <= max_side:
        return Plan((h, w), (0, 0, h, w), None, net, "whole")
    if large == LARGE_FIT:
        shrink = max_side / (max(h, w) * factor)
        rh, rw = max(1, math.floor(h * shrink / factor)), max(1, math.floor(w * shrink / factor))
        return Plan((h, w), (0, 0, h, w), (rh, rw), (int(rh * factor), int(rw * factor)), "downscaled")
    box = choose_box((h, w), parse_region(region), int(side / factor), int(max_side / factor))
    bh, bw = box[2] - box[0], box[3] - box[1]
    if min(bh, bw) * factor < MIN_SIDE:
        raise ImageError(f"the region is {bw}x{bh} photo pixels; the networks need at least "
                         f"{MIN_SIDE}x{MIN_SIDE} (drag a larger box)")
    return Plan((h, w), box, None, (max(1, int(bh * factor)), max(1, int(bw * factor))), "region")


def apply_plan(rgb: np.ndarray, plan: Plan) -> np.ndarray:
    """(H, W, 3) uint8 photo -> the (h, w, 3) uint8 part the plan uses (cropped, or resized with
    Lanczos, which low-passes before it subsamples)."""
    t, left, b, r = plan.box
    out = rgb[t:b, left:r]
    if plan.resize_hw is not None:
        out = np.asarray(Image.fromarray(out).resize((plan.resize_hw[1], plan.resize_hw[0]), Image.LANCZOS))
    return np.ascontiguousarray(out)


def describe(plan: Plan, scale: int, seconds: float | None) -> str:
    """One paragraph for the user: what the networks will see, the output size, the estimated time."""
    h, w = plan.photo_hw
    nh, nw = plan.net_hw
    t, left, b, r = plan.box
    if plan.how == "whole":
        what = f"Photo {w}x{h}: the networks see all of it ({nw}x{nh})"
    elif plan.how == "downscaled":
        what = (f"Photo {w}x{h}, larger than {MAX_SIDE} px per side: downscaled to fit, the networks "
                f"see {nw}x{nh}")
    else:
        what = (f"Photo {w}x{h}, larger than {MAX_SIDE} px per side: the networks see the region "
                f"x {left}–{r - 1}, y {t}–{b - 1} ({nw}x{nh}). Click on the input to move it, drag a box "
                "to draw another, or choose *downscale to fit*")
    eta = f"; estimated time {format_seconds(seconds)} for both models" if seconds is not None else ""
    return f"{what}. Output {nw * scale}x{nh * scale}{eta}."


def format_seconds(seconds: float) -> str:
    """'about 40 s' / 'about 3 min'."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"
