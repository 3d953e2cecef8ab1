"""Pictures of the attentive state-space equation (ASE): how the prompt changes the scan's C per pixel.

MambaIRv2 adds a prompt to C, the "query" matrix of the selective scan. From an
ASSM capture record: ``C`` (B, L, N) the scan's C before the prompt, in sorted
(scan) order; ``prompt`` (B, L, N) each raster pixel's own prompt (its routed row
of the pool); ``inv_perm`` (B, L) the sorted position of each raster pixel.

Which prompt is added where (``record["prompt_order"]``):
* ``official`` (the released code, trained this way): the prompt added at sorted
  position i is prompt[i], the prompt of *raster pixel i* -- not of the pixel that
  sits at position i. So raster pixel j, at sorted position s = inv_perm[j],
  gets C[s] + prompt[s].
* ``aligned``: the prompt travels with its pixel; raster pixel j gets
  C[s] + prompt[j].
The maps use the prompt as the model actually added it (``use="added"``), or
optionally the pixel's own prompt (``use="own"``) to show what aligned routing
would have added. Letters: B batch, L = Hp*Wp tokens, N = d_state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import hover
from .arrays import Record, as_numpy, as_rgb_uint8, grid_hw, image_axes, image_hw_of, mark_pixel, pixel_rc


def added_prompt_raster(record: Record, batch: int = 0, use: str = "added") -> np.ndarray:
    """(L, N) prompt added to C at each raster pixel's sorted position (or the pixel's own with use='own')."""
    prompt = as_numpy(record["prompt"])[batch].astype(np.float64)  # (L, N), raster order
    if use == "own":
        return prompt
    if use != "added":
        raise ValueError(f"use must be 'added' or 'own', got {use!r}")
    order = record.get("prompt_order", "official")
    if order == "aligned":
        return prompt
    if order != "official":
        raise ValueError(f"unknown prompt_order {order!r}")
    inv = as_numpy(record["inv_perm"])[batch].astype(np.int64)  # (L,)
    return prompt[inv]  # raster j sits at sorted position inv[j] and receives prompt[inv[j]]


def c_raster(record: Record, batch: int = 0) -> np.ndarray:
    """(L, N) the scan's C (before the prompt) seen from each raster pixel: C[inv_perm[j]]."""
    C = as_numpy(record["C"])[batch].astype(np.float64)  # (L, N), sorted order
    inv = as_numpy(record["inv_perm"])[batch].astype(np.int64)  # (L,)
    return C[inv]


def prompt_indices(record: Record, pixel: tuple[int, int], batch: int = 0) -> tuple[int, int]:
    """(own, added) prompt indices of image pixel (row, col): the prompt it was routed to, and the one
    the layer actually added to C at its sorted position (the same in aligned order; in official order
    the prompt of raster pixel inv_perm[j])."""
    hp, wp = grid_hw(record)
    r, c = pixel_rc(pixel, (hp, wp))
    j = r * wp + c  # raster index in the padded grid
    labels = as_numpy(record["labels"])[batch].astype(np.int64)  # (L,) raster order
    if record.get("prompt_order", "official") == "aligned":
        return int(labels[j]), int(labels[j])
    inv = as_numpy(record["inv_perm"])[batch].astype(np.int64)  # (L,)
    return int(labels[j]), int(labels[inv[j]])


def ase_maps(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0,
             use: str = "added") -> dict[str, np.ndarray]:
    """Per-pixel (H, W) maps: ``cos`` = cosine similarity of the added prompt and C at the pixel's sorted
    position, ``norm_ratio`` = ||prompt|| / ||C||, and ``own_prompt`` = 1 where the added prompt is the
    pixel's own (always in aligned order; in official order only by coincidence): how strongly, and in
    which direction, the semantic prompt steers each pixel's query."""
    hp, wp = grid_hw(record)
    h, w = image_hw_of(record, image_hw)
    P = added_prompt_raster(record, batch, use)  # (L, N)
    C = c_raster(record, batch)  # (L, N)
    pn = np.linalg.norm(P, axis=1)
    cn = np.linalg.norm(C, axis=1)
    cos = np.divide((P * C).sum(axis=1), pn * cn, out=np.zeros_like(pn), where=(pn * cn) > 0)
    ratio = np.divide(pn, cn, out=np.full_like(pn, np.inf), where=cn > 0)
    own = as_numpy(record["prompt"])[batch].astype(np.float64)  # (L, N)
    same = np.all(np.isclose(P, own, rtol=0, atol=1e-7 * max(1.0, np.abs(own).max())), axis=1)

    def crop(v: np.ndarray) -> np.ndarray:
        return v.reshape(hp, wp)[:h, :w]  # (L,) -> (Hp, Wp) -> (H, W)

    return {"cos": crop(cos), "norm_ratio": crop(ratio), "own_prompt": crop(same.astype(np.float64))}


def ase_figure(record_or_maps: Record | dict[str, np.ndarray], image: Any | None = None,
               image_hw: tuple[int, int] | None = None, batch: int = 0,
               pixel: tuple[int, int] | None = None, height: int = 420) -> go.Figure:
    """Two heat maps: cosine(prompt, C) and ||prompt||/||C|| per pixel: where the ratio is large the
    prompt dominates the query and pixels of one semantic group read the state alike; where it is
    small the pixel's own C decides.

    With ``pixel`` (row, col) and a capture record: the pixel is crossed on both maps and a third
    panel shows its C, the prompt added to it, and their sum, state by state (the query it scans with).
    """
    rec = None
    if "cos" in record_or_maps:
        maps = record_or_maps
        head = "ASE"
    else:
        rec = record_or_maps
        if image_hw is None and image is not None:
            image_hw = as_rgb_uint8(image).shape[:2]
        maps = ase_maps(rec, image_hw, batch)
        head = (f"ASE, layer {rec.get('stage', '?')}.{rec.get('block', '?')} "
                f"({rec.get('prompt_order', 'official')} order)")
    cos, ratio = maps["cos"], maps["norm_ratio"]
    rc = pixel_rc(pixel, cos.shape)
    finite = ratio[np.isfinite(ratio)]
    median = float(np.median(finite)) if finite.size else 0.0
    bars = rc is not None and rec is not None
    titles = [f"cos(prompt, C): mean {cos.mean():.2f}", f"||prompt|| / ||C||: median {median:.2f}"]
    if bars:  # the pixel's vectors in a second row, under both maps: beside them it crowded the colour bars
        titles.append("your pixel: C, the prompt added to it, and their sum (the query), per state n")
        fig = make_subplots(rows=2, cols=2, horizontal_spacing=0.14, vertical_spacing=0.14,
                            subplot_titles=titles, row_heights=[0.65, 0.35],
                            specs=[[{}, {}], [{"colspan": 2}, None]])
    else:
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14, subplot_titles=titles)
    cb = dict(len=0.55, y=1.0, yanchor="top") if bars else dict(len=0.9)
    facts, lines = np.zeros(cos.shape + (0,)), ""
    if rec is not None:
        facts, lines = hover.pixel_facts(rec, cos.shape, batch), hover.facts_lines(cos.size, first=1)
    data = np.concatenate([ratio[:, :, None], facts], axis=2)  # (H, W, 1 + 4): ratio, then the facts
    fig.add_trace(go.Heatmap(z=cos, zmin=-1, zmax=1, colorscale="RdBu_r",
                             colorbar=dict(title="cos", x=0.43, **cb), customdata=data,
                             hovertemplate=hover.PIXEL + "<br>cosine of its prompt and its C: %{z:.2f}"
                                           + lines + hover.NONE), row=1, col=1)
    fig.add_trace(go.Heatmap(z=np.log10(np.clip(ratio, 1e-6, 1e6)), colorscale="Viridis",
                             colorbar=dict(title="log10<br>ratio", x=1.0, **cb), customdata=data,
                             hovertemplate=hover.PIXEL + "<br>its prompt is %{customdata[0]:.3g} times as "
                                           "long as its C" + lines + hover.NONE),
                  row=1, col=2)
    if rc is not None:
        mark_pixel(fig, rc, 1, 1)
        mark_pixel(fig, rc, 1, 2, showlegend=False)
        head += f"; your pixel: cos {cos[rc]:.2f}, ratio {ratio[rc]:.3g}"
    if bars:
        hp, wp = grid_hw(rec)
        j = rc[0] * wp + rc[1]
        C = c_raster(rec, batch)[j]  # (N,)
        P = added_prompt_raster(rec, batch)[j]  # (N,)
        n = np.arange(C.shape[0])
        own, added = prompt_indices(rec, rc, batch)
        for vals, name, colour in ((C, "C (from the pixel)", "#1f77b4"),
                                   (P, f"prompt {added} (added)", "#d62728"),
                                   (C + P, "C + prompt (the query)", "#2ca02c")):
            fig.add_trace(go.Bar(x=n, y=vals, name=name, marker_color=colour,
                                 hovertemplate=name + ", state %{x}: %{y:.3g}<extra></extra>"), row=2, col=1)
        fig.update_xaxes(title_text="state n", dtick=1, row=2, col=1)
        if own != added:
            head += f"<br>it was routed to prompt {own}; official order added prompt {added}"
    image_axes(fig, 1, 2)
    fig.update_layout(title=dict(text=head, x=0.01, xanchor="left", font=dict(size=14)),
                      height=height if not bars else max(height, 720),
                      margin=dict(l=10, r=10, t=90, b=10), barmode="group",
                      legend=dict(orientation="h", x=1, xanchor="right", y=-0.06, yanchor="top"))
    return fig
