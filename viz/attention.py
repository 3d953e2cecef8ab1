"""Implicit ("hidden") attention of a selective scan (Ali, Zimerman & Wolf, arXiv 2403.01590).

A selective scan is linear in its input u for fixed delta, B, C, so output i of
channel d is a weighted sum of inputs j <= i (positions in scan order):

    y[d, i] = sum_{j<=i} alpha[d, i, j] u[d, j],
    alpha[d, i, j] = sum_n C[i, n] exp(sum_{k=j+1..i} delta[d, k] A[d, n]) delta[d, j] B[j, n]
                     + D[d] * [i == j],

with delta = softplus(delta_raw + delta_bias) as the scan used it. alpha is exactly
the Jacobian d y[d, i] / d u[d, j] (y of channel d does not depend on other
channels). One row i is computed at once, vectorised: the sums over k are
reversed cumulative sums of delta*A (float64, no subtraction of large cumsums).

Maps: for MambaIRv2, positions are in the label-sorted sequence: input position
j is raster pixel perm[j]. For MambaIR, the four scans are summed (the network
adds their outputs), each through its own visit order ``orders[k]``; a pixel's
weight is the sum over scans, per channel. Channels are then averaged: by default
the mean of |weight| over channels ("abs": how strongly pixel j feeds pixel i in
a typical channel, signs cannot cancel); ``reduce="signed"`` keeps the sign.

Letters: B batch, D channels of one scan, K scans (1 for MambaIRv2, 4 for
MambaIR), N d_state, L = Hp*Wp positions of the padded grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import Tensor

from . import hover
from .arrays import Record, as_rgb_uint8, grid_hw, image_axes, image_hw_of, mark_pixel

_CHUNK = 64  # channels per step: bounds memory at _CHUNK * L * N float64 values


def _group(M: Tensor, batch: int, group: int) -> Tensor:
    """(N, L) B or C of one scan group from (B, N, L) or (B, G, N, L)."""
    M = M[batch]
    return M if M.dim() == 2 else M[group]


def implicit_attention_row(scan: dict[str, Any], i: int, batch: int = 0, channels: slice | None = None,
                           group: int = 0, include_skip: bool = True) -> Tensor:
    """(D', i+1) float64 exact weights alpha[d, i, j] for j = 0..i of output position i (scan order).

    ``scan`` holds the selective-scan arguments (u, delta, A, B, C, D, delta_bias, delta_softplus) as
    in ``model.capture``; ``channels`` selects channels (default all), ``group`` the B/C group of a
    grouped scan those channels read.
    """
    delta = torch.as_tensor(scan["delta"])[batch].double()  # (D, L)
    if channels is not None:
        delta = delta[channels]
    if scan.get("delta_bias") is not None:
        bias = torch.as_tensor(scan["delta_bias"]).double()
        delta = delta + (bias[channels] if channels is not None else bias)[:, None]  # (D', L)
    if scan.get("delta_softplus", False):
        delta = F.softplus(delta)
    A = torch.as_tensor(scan["A"]).double()  # (D, N)
    if channels is not None:
        A = A[channels]
    Bm = _group(torch.as_tensor(scan["B"]), batch, group).double()[:, : i + 1]  # (N, i+1)
    Ci = _group(torch.as_tensor(scan["C"]), batch, group).double()[:, i]  # (N,)
    dl = delta[:, : i + 1]  # (D', i+1)
    out = torch.empty(dl.shape, dtype=torch.float64)
    for c0 in range(0, dl.shape[0], _CHUNK):
        d_c = dl[c0:c0 + _CHUNK]  # (d, i+1)
        dA = d_c[:, :, None] * A[c0:c0 + _CHUNK, None, :]  # (d, i+1, N)
        # decay[j] = sum_{k=j+1..i} dA[k]: reversed cumulative sum, shifted by one (decay[i] = 0).
        rev = torch.flip(dA, dims=[1]).cumsum(dim=1)  # rev[m] = sum_{k=i-m..i} dA[k]
        decay = torch.zeros_like(dA)
        decay[:, :i] = torch.flip(rev[:, :i], dims=[1])  # decay[j] = rev[i-1-j]
        out[c0:c0 + _CHUNK] = torch.einsum("n,djn,dj,nj->dj", Ci, torch.exp(decay), d_c, Bm)  # (d, i+1)
    if include_skip and scan.get("D") is not None:
        Dv = torch.as_tensor(scan["D"]).double()
        out[:, i] += Dv[channels] if channels is not None else Dv
    return out


def _reduce(w: Tensor, reduce: str) -> Tensor:
    if reduce == "abs":
        return w.abs().mean(dim=0)
    if reduce == "signed":
        return w.mean(dim=0)
    raise ValueError(f"reduce must be 'abs' or 'signed', got {reduce!r}")


def _query_index(pixel: int | tuple[int, int], grid: tuple[int, int]) -> int:
    """Raster index in the padded grid from a raster index or a (row, col) pair."""
    if isinstance(pixel, (tuple, list, np.ndarray)):
        r, c = int(pixel[0]), int(pixel[1])
        if not (0 <= r < grid[0] and 0 <= c < grid[1]):
            raise ValueError(f"pixel {(r, c)} outside the grid {grid}")
        return r * grid[1] + c
    p = int(pixel)
    if not 0 <= p < grid[0] * grid[1]:
        raise ValueError(f"raster index {p} outside the grid {grid}")
    return p


def implicit_attention_channels(record: Record, pixel: int | tuple[int, int], batch: int = 0,
                                include_skip: bool = True) -> Tensor:
    """(D, L) float64 per-channel weight of every raster pixel (padded grid) on the query pixel's output:
    exactly d y[d, query] / d x[d, pixel] of the scan (the sum of the four scans for MambaIR)."""
    scan = record["scan"]
    grid = grid_hw(record)
    L = grid[0] * grid[1]
    q = _query_index(pixel, grid)
    u = torch.as_tensor(scan["u"])
    if "perm" in record:  # MambaIRv2: one scan over the label-sorted sequence
        perm = torch.as_tensor(record["perm"])[batch].long()  # (L,) sorted position -> raster
        inv = torch.as_tensor(record["inv_perm"])[batch].long()  # (L,) raster -> sorted position
        i = int(inv[q])
        row = implicit_attention_row(scan, i, batch, include_skip=include_skip)  # (D, i+1)
        out = torch.zeros(row.shape[0], L, dtype=torch.float64)
        out[:, perm[: i + 1]] = row  # sorted position j -> raster pixel perm[j]
        return out
    if "orders" in record:  # MambaIR: four scans of the same features, outputs summed
        orders = torch.as_tensor(record["orders"]).long()  # (K, L)
        K = orders.shape[0]
        Dk = u.shape[1] // K
        out = torch.zeros(Dk, L, dtype=torch.float64)
        for k in range(K):
            i = int(torch.nonzero(orders[k] == q)[0, 0])  # position of the query in scan k
            row = implicit_attention_row(scan, i, batch, channels=slice(k * Dk, (k + 1) * Dk), group=k,
                                         include_skip=include_skip)  # (Dk, i+1)
            out[:, orders[k, : i + 1]] += row  # scan-k position j -> raster pixel orders[k, j]
        return out
    raise KeyError("record has neither 'perm' (MambaIRv2 ASSM) nor 'orders' (MambaIR SS2D)")


def implicit_attention_map(record: Record, pixel: int | tuple[int, int],
                           image_hw: tuple[int, int] | None = None, batch: int = 0, reduce: str = "abs",
                           include_skip: bool = True) -> np.ndarray:
    """(H, W) float64 implicit attention of the query pixel on every image pixel, averaged over channels
    (mean |weight| by default, or signed): MambaIRv2 reaches same-label pixels anywhere in the image
    (those sorted before it), MambaIR only pixels its four raster scans visited before the query.

    ``pixel`` is (row, col) in the image or a raster index of the padded grid.
    """
    grid = grid_hw(record)
    h, w = image_hw_of(record, image_hw)
    m = _reduce(implicit_attention_channels(record, pixel, batch, include_skip), reduce)  # (L,)
    return m.numpy().reshape(grid)[:h, :w]  # (L,) -> (Hp, Wp) -> (H, W)


def attention_figure(attn: np.ndarray, image: Any | None = None, pixel: int | tuple[int, int] | None = None,
                     title: str | None = None, grid_w: int | None = None, height: int = 380,
                     record: Record | None = None) -> go.Figure:
    """Heat map of one pixel's implicit attention over the image (beside the image), query marked with
    a cross: shows which pixels the scan lets this pixel read from; the colour scale ignores the query
    pixel itself (its skip term D usually dwarfs the rest).

    ``pixel`` is (row, col), or a raster index of a grid ``grid_w`` wide (default: the map's width).
    ``record``: the MambaIRv2 ASSM record the map came from; its labels, prompts and steps join the hover.
    """
    attn = np.asarray(attn, dtype=np.float64)
    h, w = attn.shape
    rc = None
    if pixel is not None:
        if isinstance(pixel, (tuple, list, np.ndarray)):
            rc = (int(pixel[0]), int(pixel[1]))
        else:
            gw = grid_w or w
            rc = (int(pixel) // gw, int(pixel) % gw)
    rest = attn.copy()
    if rc is not None and rc[0] < h and rc[1] < w:
        rest[rc] = np.nan
    finite = rest[np.isfinite(rest)]
    zmax = float(finite.max()) if finite.size and finite.max() > 0 else float(np.nanmax(attn) or 1.0)
    zmin = float(min(0.0, finite.min())) if finite.size else 0.0
    signed = zmin < 0
    if signed:
        zmax = max(zmax, -zmin)
        zmin = -zmax
    nz = int((np.abs(rest[np.isfinite(rest)]) > 0).sum())

    img = as_rgb_uint8(image) if image is not None else None
    cols = 2 if img is not None else 1
    fig = make_subplots(rows=1, cols=cols, horizontal_spacing=0.04,
                        subplot_titles=(["input", "implicit attention"] if cols == 2 else None))
    tip: dict[str, Any] = dict(hovertemplate=hover.PIXEL + "<br>weight on the followed pixel's output: "
                               "%{z:.3g}" + hover.NONE)
    if record is not None and "perm" in record:
        tip = dict(customdata=hover.pixel_facts(record, (h, w)),
                   hovertemplate=tip["hovertemplate"].replace(hover.NONE, "") + hover.facts_lines(h * w)
                   + hover.NONE)
    if img is not None:
        fig.add_trace(go.Image(z=img[:h, :w], hovertemplate=hover.PIXEL + "<br>colour (r, g, b) %{z}"
                               + hover.NONE), row=1, col=1)
    fig.add_trace(go.Heatmap(z=attn, zmin=zmin, zmax=zmax, colorscale="RdBu_r" if signed else "Inferno",
                             colorbar=dict(title="weight"), **tip),
                  row=1, col=cols)
    if rc is not None:
        for c in range(1, cols + 1):
            mark_pixel(fig, rc, 1, c, name="query pixel", showlegend=(c == cols))
    image_axes(fig, 1, cols)
    where = f" of pixel {rc}" if rc is not None else ""
    head = (title or "Implicit attention") + f"{where}<br>{nz} other pixels with non-zero weight"
    fig.update_layout(title=dict(text=head, x=0.01, xanchor="left", font=dict(size=14)), height=height,
                      legend=dict(orientation="h", x=1, xanchor="right", y=-0.02, yanchor="top"),
                      margin=dict(l=10, r=10, t=70, b=30))
    return fig


def _lut(colorscale: str) -> np.ndarray:
    """(256, 3) uint8 lookup table sampled from a named plotly colourscale."""
    cols = pc.sample_colorscale(colorscale, list(np.linspace(0.0, 1.0, 256)), colortype="tuple")
    return (np.asarray(cols, dtype=np.float64) * (255.0 if max(max(c) for c in cols) <= 1.0 else 1.0)
            + 0.5).astype(np.uint8)


def attention_image(attn: np.ndarray, image: Any | None = None, pixel: tuple[int, int] | None = None,
                    alpha: float = 0.6, zoom: int = 4, gamma: float = 0.5) -> np.ndarray:
    """uint8 picture of an implicit-attention map (Inferno colours, gamma-compressed so weak long-range
    weights stay visible) blended over the image, the query pixel boxed in cyan: the same content as
    ``attention_figure`` as a plain image for galleries and PNG export."""
    attn = np.abs(np.asarray(attn, dtype=np.float64))
    rest = attn.copy()
    if pixel is not None:
        rest[int(pixel[0]), int(pixel[1])] = 0.0  # scale without the query's own skip term
    top = rest.max() if rest.max() > 0 else (attn.max() or 1.0)
    level = np.clip(attn / top, 0.0, 1.0) ** gamma
    heat = _lut("Inferno")[(level * 255 + 0.5).astype(np.int64)]  # (H, W) -> (H, W, 3)
    if image is not None:
        img = as_rgb_uint8(image)[: attn.shape[0], : attn.shape[1]].astype(np.float64)
        heat = np.clip((1 - alpha) * img + alpha * heat + 0.5, 0, 255).astype(np.uint8)
    out = np.repeat(np.repeat(heat, zoom, axis=0), zoom, axis=1)
    if pixel is not None:
        r, c = int(pixel[0]) * zoom, int(pixel[1]) * zoom
        z = max(zoom, 1)
        out[r:r + z, c:c + z][[0, -1], :] = (0, 255, 255)  # top and bottom edge of the query cell
        out[r:r + z, c:c + z][:, [0, -1]] = (0, 255, 255)  # left and right edge
    return out
