"""Which part of a large photo the networks see: a region (a box, or a window around a point) or the
whole photo downscaled to fit. Plain functions (no Gradio), tested alone.

Coordinates follow the click convention of the app: x = column, y = row, in pixels of the uploaded
photo (after its EXIF rotation). A box is (top, left, bottom, right), bottom/right exclusive.
"factor" is network pixels per photo pixel: 1 when the photo is the input, 1/scale in ground-truth
mode for SR (the photo is downscaled before the networks see it).

The default region of a large photo is its most detailed window (``most_detailed_box``): detail is the
mean gradient magnitude of the luma, so a window full of edges and texture beats a smooth sky or a
featureless blade of grass, where both networks' outputs would look the same as bicubic.
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
    why: str = ""                  # why this region (the default: the most detailed window, or the centre)


def parse_region(text: str | None) -> tuple[int, ...] | None:
    """'' -> None (the default window); 'x,y' -> a point; 'x0,y0,x1,y1' -> a box (photo pixels)."""
    if text is None or not str(text).strip():
        return None
    parts = [p for p in re.split(r"[\s,;]+", str(text).strip()) if p]
    try:
        values = tuple(int(round(float(p))) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (2, 4) or any(v < 0 for v in values):
        raise ImageError(f"region {text!r}: give 'x,y' (a point) or 'x0,y0,x1,y1' (a box) in photo pixels, "
                         "or leave it empty for the most detailed window")
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
               factor: float = 1.0, max_side: int = MAX_SIDE, side: int = REGION_SIDE,
               photo: np.ndarray | None = None) -> Plan:
    """Plan the networks' input for a photo: the whole photo when its network view fits in ``max_side``,
    else a region (``region`` text; empty: the most detailed window of ``photo``, the (H, W, 3) uint8
    pixels, or the centre without them) or the photo downscaled to fit."""
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
    point_or_box = parse_region(region)
    why = ""
    if point_or_box is None and photo is not None:
        box, why = default_box(photo, int(side / factor))
    else:
        box = choose_box((h, w), point_or_box, int(side / factor), int(max_side / factor))
    bh, bw = box[2] - box[0], box[3] - box[1]
    if min(bh, bw) * factor < MIN_SIDE:
        raise ImageError(f"the region is {bw}x{bh} photo pixels; the networks need at least "
                         f"{MIN_SIDE}x{MIN_SIDE} (drag a larger box)")
    return Plan((h, w), box, None, (max(1, int(bh * factor)), max(1, int(bw * factor))), "region", why)


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
                f"x {left}–{r - 1}, y {t}–{b - 1} ({nw}x{nh})" + (f", {plan.why}" if plan.why else "")
                + ". Click on the input to move it, drag a box to draw another, or choose *downscale to fit*")
    eta = f"; estimated time {format_seconds(seconds)} for both models" if seconds is not None else ""
    return f"{what}. Output {nw * scale}x{nh * scale}{eta}."


def format_seconds(seconds: float) -> str:
    """'about 40 s' / 'about 3 min'."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


# ---------------------------------------------------------------------------
# The most detailed window of a photo (the default region) and an edge pixel (the lesson's default)
# ---------------------------------------------------------------------------

DETAIL_SHRINK = 2      # detail is measured on the photo box-averaged 2x2: 4x fewer pixels, less sensor noise
# The most detailed window replaces the centre only when it is clearly more detailed: on an evenly
# textured photo the centre is as good a view and easier to predict.
DETAIL_MARGIN = 1.05
DETAIL_MEASURE = "mean gradient magnitude of the luma"


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) image -> (H, W) float32 luma (BT.601 weights, the image's own range)."""
    a = np.asarray(rgb, dtype=np.float32)
    if a.ndim == 2:
        return a
    return a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W, 3) -> (H, W)


def gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W) float32 |grad| by central differences (one-sided at the borders)."""
    g = np.asarray(gray, dtype=np.float32)
    gy, gx = np.gradient(g) if min(g.shape) > 1 else (np.zeros_like(g), np.zeros_like(g))
    return np.sqrt(gx * gx + gy * gy)


def window_means(values: np.ndarray, wh: int, ww: int) -> np.ndarray:
    """Mean of ``values`` (H, W) in every wh x ww window, by an integral image: (H-wh+1, W-ww+1), entry
    [i, j] for the window whose top-left pixel is (i, j). O(H*W) whatever the window size."""
    s = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    s[1:, 1:] = np.asarray(values, dtype=np.float64).cumsum(0).cumsum(1)  # s[i, j] = sum of values[:i, :j]
    total = s[wh:, ww:] - s[:-wh, ww:] - s[wh:, :-ww] + s[:-wh, :-ww]
    return total / float(wh * ww)


def most_detailed_box(rgb: np.ndarray, side: int) -> tuple[Box, float]:
    """The ``side`` x ``side`` window (clipped to the photo) of highest mean gradient magnitude of the luma,
    and that mean (grey levels per pixel). Measured on the photo box-averaged by DETAIL_SHRINK, so the
    window is placed on a grid of DETAIL_SHRINK photo pixels."""
    h, w = rgb.shape[:2]
    wh, ww = min(int(side), h), min(int(side), w)
    k = DETAIL_SHRINK if min(wh, ww) >= 8 * DETAIL_SHRINK else 1
    g = luma(rgb)[: h // k * k, : w // k * k]
    g = g.reshape(h // k, k, w // k, k).mean(axis=(1, 3))  # (H, W) -> (H/k, W/k) box average
    means = window_means(gradient_magnitude(g), wh // k, ww // k)
    i, j = np.unravel_index(int(np.argmax(means)), means.shape)
    top, left = min(int(i) * k, h - wh), min(int(j) * k, w - ww)
    return (top, left, top + wh, left + ww), float(means[i, j]) / k  # per photo pixel


def box_detail(rgb: np.ndarray, box: Box) -> float:
    """Mean gradient magnitude of the luma inside ``box`` (same measure and scale as most_detailed_box)."""
    t, left, b, r = box
    k = DETAIL_SHRINK if min(b - t, r - left) >= 8 * DETAIL_SHRINK else 1
    g = luma(rgb[t:b, left:r])
    hh, ww = g.shape[0] // k * k, g.shape[1] // k * k
    g = g[:hh, :ww].reshape(hh // k, k, ww // k, k).mean(axis=(1, 3))  # box average, as above
    return float(gradient_magnitude(g).mean()) / k


def default_box(rgb: np.ndarray, side: int) -> tuple[Box, str]:
    """The default region of a large photo and why: the most detailed ``side`` window when its detail
    beats the centre window's by DETAIL_MARGIN, else the centre."""
    h, w = rgb.shape[:2]
    centre = choose_box((h, w), None, side, side)
    best, score = most_detailed_box(rgb, side)
    base = box_detail(rgb, centre)
    if score > DETAIL_MARGIN * base:
        return best, (f"chosen as the most detailed window of the photo ({DETAIL_MEASURE} {score:.1f} "
                      f"grey levels per pixel; the centre has {base:.1f})")
    return centre, (f"the centre: no window is clearly more detailed ({DETAIL_MEASURE} {score:.1f} at "
                    f"most, the centre {base:.1f})")


def edge_pixel(rgb: np.ndarray, margin: int = 4, allowed: np.ndarray | None = None) -> tuple[int, int]:
    """(row, col) of the largest gradient magnitude of the luma (smoothed 3x3, so that one noisy pixel
    does not win), at least ``margin`` pixels from the border when the image allows, among the
    ``allowed`` pixels ((H, W) bool) when any is left: a pixel on an object edge, where the networks have
    something to restore."""
    g = luma(rgb)
    h, w = g.shape
    p = np.pad(g, 1, mode="edge")
    smooth = sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0  # 3x3 box blur
    mag = gradient_magnitude(smooth)
    m = min(int(margin), (h - 1) // 2, (w - 1) // 2)
    if allowed is not None and allowed[m:h - m, m:w - m].any():
        mag = np.where(allowed, mag, -1.0)
    inner = mag[m:h - m, m:w - m]
    r, c = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(r) + m, int(c) + m
