"""Tiled inference with seam-free blending, for images too large to run in one piece.

Letters: C channels, H x W the low-resolution (input) size, s the scale
(``net.config.upscale``), t the tile size and o the overlap, both in input pixels.

The image is cut into overlapping t x t tiles; each tile runs through the
network on its own and its output is accumulated, weighted, into a CPU
buffer of size (C_out, H s, W s). Weights are separable: along each axis a
tile has weight 1 except where it overlaps a neighbour; there the two
neighbours cross-fade linearly over the middle half of the overlap, and the
outer quarter next to a tile's own cut edge gets weight 0 (those pixels saw a
cut-off neighbourhood). Dividing by the summed weights makes any partition
exact for a constant/identity model, and a local (convolutional) model whose
receptive radius fits in a quarter of the overlap gives the untiled result.

Caveat for MambaIRv2: the semantic-guided neighbouring (SGN) sorts the pixels
*of one tile* by their routing labels, so the scan of a tile only sees the
pixels of that tile (and MambaIR's four raster scans likewise stop at the tile
border): tiled output is close to, not equal to, the untiled output. A tile at
least as large as the image gives exactly the untiled output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``min(tile, size)`` covering ``[0, size)`` with >= ``overlap``."""
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile (got tile={tile}, overlap={overlap})")
    t = min(tile, size)
    if t == size:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - t, stride))
    starts.append(size - t)  # the last tile ends exactly at the border
    return starts


def plan_tiles(h: int, w: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Input-pixel boxes ``(y0, y1, x0, x1)`` of the tiles, row by row."""
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    return [(y, y + th, x, x + tw) for y in ys for x in xs]


def _ramp(overlap_out: int, rising: bool) -> Tensor:
    """Weights over ``overlap_out`` output pixels: 0 on the outer quarter, linear, 1 on the inner quarter."""
    margin = overlap_out // 4
    fade = overlap_out - 2 * margin
    i = torch.arange(overlap_out, dtype=torch.float32)
    w = ((i - margin + 0.5) / fade).clamp(0.0, 1.0) if fade > 0 else (i >= overlap_out / 2).float()
    return w if rising else w.flip(0)


def _axis_weight(starts: list[int], index: int, length: int, scale: int) -> Tensor:
    """1-D blending weight (length * scale,) of tile ``index`` along one axis."""
    w = torch.ones(length * scale)
    start = starts[index]
    if index > 0:  # overlap with the previous tile: fade in
        ov = (starts[index - 1] + length - start) * scale
        w[:ov] = torch.minimum(w[:ov], _ramp(ov, rising=True))
    if index + 1 < len(starts):  # overlap with the next tile: fade out
        ov = (start + length - starts[index + 1]) * scale
        w[length * scale - ov:] = torch.minimum(w[length * scale - ov:], _ramp(ov, rising=False))
    return w


def tiled_forward(net: nn.Module, x: Tensor, *, tile: int = 128, overlap: int = 16,
                  progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Run ``net`` on (1, C, H, W) ``x`` tile by tile; returns (1, C_out, H s, W s) blended, on x's device.

    Tiles run on the device of the network's parameters, one at a time; the
    output is accumulated on the CPU. ``progress(done, total)`` is called
    after each tile. Gradients are tracked only if enabled and ``x`` requires them.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected x of shape (1, C, H, W), got {tuple(x.shape)}")
    scale = int(getattr(getattr(net, "config", None), "upscale", 1))
    _, _, h, w = x.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    param = next(net.parameters(), None)
    device = param.device if param is not None else x.device
    track = torch.is_grad_enabled() and x.requires_grad
    total = len(ys) * len(xs)
    out: Tensor | None = None
    wsum = torch.zeros(1, 1, h * scale, w * scale)  # (1, 1, H s, W s)
    done = 0
    with torch.set_grad_enabled(track):
        for iy, y0 in enumerate(ys):
            wy = _axis_weight(ys, iy, th, scale)  # (th s,)
            for ix, x0 in enumerate(xs):
                wx = _axis_weight(xs, ix, tw, scale)  # (tw s,)
                y = net(x[:, :, y0:y0 + th, x0:x0 + tw].to(device)).cpu()  # (1, C_out, th s, tw s)
                if out is None:
                    out = torch.zeros(1, y.shape[1], h * scale, w * scale, dtype=y.dtype)
                weight = (wy[:, None] * wx[None, :]).to(y.dtype)  # (th s, tw s)
                box = (slice(None), slice(None), slice(y0 * scale, (y0 + th) * scale),
                       slice(x0 * scale, (x0 + tw) * scale))
                out[box] += y * weight  # autograd follows in-place slice adds when y needs grads
                wsum[box] += weight
                done += 1
                if progress is not None:
                    progress(done, total)
    assert out is not None
    return (out / wsum.to(out.dtype)).to(x.device)

