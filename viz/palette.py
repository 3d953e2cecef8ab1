"""One fixed colour per SGN label / prompt index, the same in every layer, image and picture.

The first 48 colours are plotly's hand-tuned qualitative palettes (Dark24 then
Light24); further indices (up to any T, 256 in practice) get hues spaced by the
golden angle with a few lightness levels, so label k always has the same colour
whatever T is: ``label_colors(16)[k] == label_colors(256)[k]``.
"""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np
import plotly.colors as pc

_GOLDEN = 0.6180339887498949  # golden-ratio hue step: consecutive hues far apart
_BASE_HEX = tuple(pc.qualitative.Dark24) + tuple(pc.qualitative.Light24)


def _hex_to_rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _extra_color(k: int) -> tuple[int, int, int]:
    """Colour of index k beyond the base palette (deterministic, no randomness)."""
    m = k - len(_BASE_HEX)
    hue = (0.13 + m * _GOLDEN) % 1.0
    sat = (0.85, 0.55, 0.7)[m % 3]
    val = (0.9, 0.75, 0.6)[(m // 3) % 3]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return round(r * 255), round(g * 255), round(b * 255)


@lru_cache(maxsize=8)
def _colors(T: int) -> np.ndarray:
    out = np.empty((T, 3), dtype=np.uint8)
    for k in range(T):
        out[k] = _hex_to_rgb(_BASE_HEX[k]) if k < len(_BASE_HEX) else _extra_color(k)
    out.setflags(write=False)
    return out


def label_colors(T: int) -> np.ndarray:
    """(T, 3) uint8 RGB colour of each label index; label k has the same colour for every T."""
    if T < 1:
        raise ValueError(f"need at least one label, got T={T}")
    return _colors(int(T)).copy()


def label_hex(T: int) -> list[str]:
    """The same colours as ``label_colors`` as '#rrggbb' strings (for plotly markers)."""
    return [f"#{int(c[0]):02x}{int(c[1]):02x}{int(c[2]):02x}" for c in label_colors(T)]


def discrete_colorscale(T: int) -> list[list]:
    """A plotly colourscale that paints integer z = k (zmin=-0.5, zmax=T-0.5) in label k's colour."""
    hexes = label_hex(T)
    scale: list[list] = []
    for k, h in enumerate(hexes):
        scale.append([k / T, h])
        scale.append([(k + 1) / T, h])
    return scale
