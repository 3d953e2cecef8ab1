"""Figures that test the paper's claims (issue 14): each takes capture records or numbers from
``model.analysis.evidence`` / ``model.evaluation.profile`` and returns a plotly figure, a uint8 image or
markdown.

Every figure's title carries one line: what it shows and what would contradict the paper
(``model.analysis.evidence.CLAIMS``); with an untrained router the line says so instead of pretending.

Letters: B batch, L = Hp*Wp tokens, D scan channels, N d_state, K scans, H, W image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from model.analysis.evidence import (
    CLAIMS,
    UNTRAINED_NOTE,
    ase_query_map,
    ase_query_note,
    label_distances,
    redundancy_table,
)

from .arrays import Record, as_rgb_uint8, image_axes
from .attention import implicit_attention_row


def _wrap(text: str, width: int = 95) -> str:
    """Break a long line into <br>-separated lines for plotly titles."""
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return "<br>".join(lines + [cur])


def _title(head: str, claim: str, untrained: bool = False) -> dict[str, Any]:
    note = UNTRAINED_NOTE if untrained else claim
    return dict(text=f"<b>{head}</b><br><span style='font-size:11px'>{_wrap(note)}</span>", x=0.06,
                y=1.0, yanchor="top", yref="container", pad=dict(t=36))


def _finish(fig: go.Figure) -> go.Figure:
    """Room above the plots for the title's lines and the subplot titles (the plots keep their height)."""
    lines = str(fig.layout.title.text or "").count("<br>") + 1
    top = 36 + 20 + 17 * lines + 30
    fig.update_layout(margin_t=top, height=(fig.layout.height or 420) + top - 60)
    return fig


# ---------------------------------------------------------------------------
# 1. Redundancy of the four scans
# ---------------------------------------------------------------------------

SCAN_NAMES = ("row", "column", "row reversed", "column reversed")


def redundancy_figure(ss2d_records: Sequence[Record], layer: int | None = None) -> go.Figure:
    """The 4x4 cosine-similarity matrix of one SS2D layer (default: mean over layers) and, per layer,
    the mean off-diagonal similarity against the paper's 0.7."""
    rows = redundancy_table(ss2d_records)
    if not rows:
        raise ValueError("no SS2D records: the four-scan redundancy needs a MambaIR network")
    m = rows[layer]["matrix"] if layer is not None else np.mean([r["matrix"] for r in rows], axis=0)
    which = "mean over layers" if layer is None else f"layer {rows[layer]['stage']}.{rows[layer]['block']}"
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.12,
                        subplot_titles=(f"cosine similarity ({which})",
                                        "mean off-diagonal similarity per layer"))
    fig.add_trace(go.Heatmap(z=m, x=list(SCAN_NAMES), y=list(SCAN_NAMES), zmin=-1, zmax=1,
                             colorscale="RdBu_r", text=np.round(m, 2), texttemplate="%{text}",
                             showscale=False), row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    names = [f"{r['stage']}.{r['block']}" for r in rows]
    fig.add_trace(go.Bar(x=names, y=[r["mean"] for r in rows], name="scan outputs",
                         marker_color="#4c78a8"), row=1, col=2)
    fig.add_trace(go.Bar(x=names, y=[r["mean_state"] for r in rows], name="state part (skip D*u removed)",
                         marker_color="#f58518"), row=1, col=2)
    fig.add_hline(y=0.7, line_dash="dash", line_color="crimson", annotation_text="paper: > 0.7", row=1, col=2)
    low = min(min(r["mean"], r["mean_state"]) for r in rows)
    fig.update_yaxes(range=[min(-0.1, low - 0.05), 1.05], row=1, col=2)
    fig.update_layout(title=_title("Redundancy of MambaIR's four scans (Fig. 2a)", CLAIMS["redundancy"]),
                      barmode="group", legend=dict(orientation="h", y=-0.12),
                      margin=dict(l=10, r=10, b=10), height=440)
    return _finish(fig)


# ---------------------------------------------------------------------------
# 2. Long-range decay
# ---------------------------------------------------------------------------

def _scan_group(record: Record, group: int) -> tuple[dict[str, Any], slice | None]:
    """The scan arguments and the channel slice of one scan group (all channels for MambaIRv2)."""
    scan = record["scan"]
    if "orders" not in record:
        return scan, None
    k = torch.as_tensor(record["orders"]).shape[0]
    d = torch.as_tensor(scan["u"]).shape[1] // k
    return scan, slice(group * d, (group + 1) * d)


def decay_profile(record: Record, queries: int = 16, batch: int = 0, group: int = 0, seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """Mean |alpha[d, i, j]| (over channels and sampled query positions i) by distance i - j in the scan.

    Exact implicit-attention rows (``implicit_attention_row``, skip term left out) of ``queries``
    positions drawn in the second half of the sequence, so long distances are covered. Also the pure
    decay envelope mean_{d,n} exp(mean_l(delta[d]) * A[d, n] * k) at each distance k.
    Returns ``distance`` (M,), ``weight`` (M,), ``envelope`` (M,) with M = the longest distance + 1.
    """
    scan, channels = _scan_group(record, group)
    L = torch.as_tensor(scan["u"]).shape[-1]
    rng = np.random.default_rng(seed)
    qs = np.unique(rng.integers(L // 2, L, size=queries))
    total = np.zeros(L)
    count = np.zeros(L)
    for i in qs:
        row = implicit_attention_row(scan, int(i), batch, channels=channels, group=group,
                                     include_skip=False).abs().mean(dim=0).numpy()  # (D', i+1) -> (i+1,)
        dist = int(i) - np.arange(int(i) + 1)  # distance of each input position j
        total[dist] += row
        count[dist] += 1
    m = int(count.nonzero()[0].max()) + 1
    weight = total[:m] / np.maximum(count[:m], 1)
    delta = torch.as_tensor(scan["delta"])[batch].double()  # (D, L)
    A = torch.as_tensor(scan["A"]).double()  # (D, N)
    bias = torch.as_tensor(scan["delta_bias"]).double() if scan.get("delta_bias") is not None else None
    if channels is not None:
        delta, A = delta[channels], A[channels]
        bias = bias[channels] if bias is not None else None
    if bias is not None:
        delta = delta + bias[:, None]
    if scan.get("delta_softplus", False):
        delta = F.softplus(delta)
    rate = delta.mean(dim=1)[:, None] * A  # (D, N) mean log-decay per step
    k = torch.arange(m, dtype=torch.float64)
    envelope = torch.exp(rate[None] * k[:, None, None]).mean(dim=(1, 2)).numpy()  # (M, D, N) -> (M,)
    return {"distance": np.arange(m), "weight": weight, "envelope": envelope}


def decay_figure(record: Record, queries: int = 16, untrained: bool = False) -> go.Figure:
    """Implicit attention weight vs sequence distance (log scale) for one layer; for an ASSM layer also
    the mean distance between same-label pixels in raster order and in the scanned (SGN) order."""
    prof = decay_profile(record, queries)
    d = prof["distance"][1:]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35], horizontal_spacing=0.1,
                        subplot_titles=("|weight| vs distance",
                                        "same-label distance"))
    fig.add_trace(go.Scatter(x=d, y=prof["weight"][1:], mode="lines", name="implicit attention (exact)"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=d, y=prof["envelope"][1:], mode="lines", line=dict(dash="dot"),
                             name="decay exp(mean delta * A * k)"), row=1, col=1)
    fig.update_xaxes(type="log", title="distance k", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=1)
    if "labels" in record:
        dist = label_distances(record)
        fig.add_trace(go.Bar(x=["raster order", "scanned order"], y=[dist["raster"], dist["scan"]],
                             marker_color=["#9d9d9d", "#e45756"], showlegend=False,
                             text=[f"{dist['raster']:.0f}", f"{dist['scan']:.0f}"], textposition="auto"),
                      row=1, col=2)
        # The mean same-label distances marked on the curve (markers: shapes on log axes need log values).
        for name, x, color in (("raster", dist["raster"], "#9d9d9d"), ("scanned", dist["scan"], "#e45756")):
            if 1 <= x <= d[-1]:
                y = float(np.interp(x, d, prof["weight"][1:]))
                fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", marker=dict(size=11, color=color),
                                         name=f"same-label mean distance, {name} order"), row=1, col=1)
    layer = f"layer {record.get('stage', '?')}.{record.get('block', '?')}"
    fig.update_layout(title=_title(f"Long-range decay, raster vs SGN ({layer})", CLAIMS["decay"], untrained),
                      legend=dict(orientation="h", y=-0.15), margin=dict(l=10, r=10, b=10), height=440)
    return _finish(fig)


# ---------------------------------------------------------------------------
# 3. ASE query map
# ---------------------------------------------------------------------------

def ase_query_figure(record: Record, pixel: tuple[int, int], image: Any | None = None,
                     image_hw: tuple[int, int] | None = None, untrained: bool = False) -> go.Figure:
    """cos(prompt of the query pixel, C of every pixel) with the official prompt order and the aligned
    one side by side (the paper's Fig. 5), query marked; the subtitle says whose prompt is added."""
    if image_hw is None and image is not None:
        image_hw = as_rgb_uint8(image).shape[:2]
    maps = {o: ase_query_map(record, pixel, o, image_hw) for o in ("official", "aligned")}
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.05,
                        subplot_titles=("official prompt order (released code)", "aligned prompt order"))
    hover = "row %{y}, col %{x}<br>cos %{z:.2f}<extra></extra>"
    cross = dict(symbol="x", size=12, color="lime", line=dict(width=2))
    for c, m in enumerate(maps.values(), start=1):
        fig.add_trace(go.Heatmap(z=m, zmin=-1, zmax=1, colorscale="RdBu_r", showscale=(c == 2),
                                 colorbar=dict(title="cos"), hovertemplate=hover), row=1, col=c)
        fig.add_trace(go.Scatter(x=[pixel[1]], y=[pixel[0]], mode="markers", showlegend=False, marker=cross),
                      row=1, col=c)
    image_axes(fig, 1, 2)
    layer = f"layer {record.get('stage', '?')}.{record.get('block', '?')}"
    note = ase_query_note(record, pixel)
    claim = CLAIMS["ase"] + " " + note
    fig.update_layout(title=_title(f"ASE query map, {layer} (Fig. 5)", claim if not untrained
                                   else UNTRAINED_NOTE + " " + note),
                      margin=dict(l=10, r=10, b=10), height=460)
    return _finish(fig)


# ---------------------------------------------------------------------------
# 4. Knock-outs
# ---------------------------------------------------------------------------

def difference_image(a: np.ndarray, b: np.ndarray, gain: float = 10.0) -> np.ndarray:
    """uint8 (H, W, 3) map of |a - b| (float images in [0, 1]) averaged over channels, times ``gain``,
    in Inferno colours: where a knock-out changes the output."""
    from .attention import _lut

    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean(axis=2)  # (H, W, C) -> (H, W)
    level = np.clip(diff * gain, 0.0, 1.0)
    return _lut("Inferno")[(level * 255 + 0.5).astype(np.int64)]  # (H, W) -> (H, W, 3)


def ablation_markdown(outputs: dict[str, np.ndarray], metrics: list[dict[str, Any]] | None = None,
                      untrained: bool = False) -> str:
    """Markdown table, one row per variant: mean |change| vs 'as trained' (in 1/255), PSNR/SSIM if given."""
    base = outputs.get("as trained")
    by_name = {r["variant"]: r for r in (metrics or [])}
    head = "| variant | mean abs change vs as trained (/255) |" + (" PSNR (dB) | SSIM |" if metrics else "")
    lines = [head, "| --- | ---: |" + (" ---: | ---: |" if metrics else "")]
    for name, out in outputs.items():
        change = float(np.abs(np.asarray(out, np.float64) - base).mean() * 255) if base is not None else 0.0
        row = f"| {name} | {change:.3f} |"
        if metrics:
            m = by_name[name]
            row += f" {m['psnr']:.2f} | {m['ssim']:.4f} |"
        lines.append(row)
    note = UNTRAINED_NOTE if untrained else CLAIMS["ablation"]
    return "\n".join(lines) + f"\n\n{note}"


# ---------------------------------------------------------------------------
# 5. Prompt quality
# ---------------------------------------------------------------------------

def prompt_quality_figure(rows: Sequence[dict[str, Any]], untrained: bool = False) -> go.Figure:
    """Per ASSM layer: within-label variance of input pixels and of features as a fraction of random
    groups' (1 = chance), and the share of 4-neighbours with the same label over its chance level."""
    names = [f"{r['stage']}.{r['block']}" for r in rows]
    fig = go.Figure()
    if rows and "input_ratio" in rows[0]:
        fig.add_trace(go.Bar(x=names, y=[r["input_ratio"] for r in rows],
                             name="input pixels: variance / random"))
    fig.add_trace(go.Bar(x=names, y=[r["feature_ratio"] for r in rows],
                         name="layer features: variance / random"))
    fig.add_trace(go.Scatter(x=names, y=[r["neighbours"] / max(r["neighbours_chance"], 1e-12) for r in rows],
                             mode="lines+markers", name="same-label neighbours / chance", yaxis="y2"))
    fig.add_hline(y=1.0, line_dash="dash", line_color="gray", annotation_text="chance")
    fig.update_layout(title=_title("Prompt quality per layer", CLAIMS["quality"], untrained),
                      barmode="group", xaxis_title="layer (stage.block)",
                      yaxis=dict(title="within-label variance / random groups"),
                      yaxis2=dict(title="neighbour agreement / chance", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=10, r=10, b=10), height=440)
    return _finish(fig)


def prompt_quality_series_figure(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Prompt quality (mean over layers) against the training step, PSNR on a second axis, from
    ``model.analysis.evidence.prompt_quality_series``: does the grouping become semantic as the model
    learns?"""
    x = [r["step"] if r["step"] is not None else i for i, r in enumerate(rows)]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[r["input_ratio"] for r in rows], mode="lines+markers",
                             name="input pixels: variance / random"))
    fig.add_trace(go.Scatter(x=x, y=[r["feature_ratio"] for r in rows], mode="lines+markers",
                             name="features: variance / random"))
    fig.add_trace(go.Scatter(x=x, y=[r["psnr"] for r in rows], mode="lines+markers", name="PSNR-Y (dB)",
                             yaxis="y2", line=dict(dash="dot", color="black")))
    flat = [xi for xi, r in zip(x, rows, strict=True) if r["untrained"]]
    if flat:
        fig.add_trace(go.Scatter(x=flat, y=[1.0] * len(flat), mode="markers", name="router untrained",
                                 marker=dict(symbol="x", size=10, color="crimson")))
    fig.add_hline(y=1.0, line_dash="dash", line_color="gray", annotation_text="chance")
    fig.update_layout(title=_title("Prompt quality across training", CLAIMS["quality"]),
                      xaxis_title="training step", yaxis=dict(title="within-label variance / random"),
                      yaxis2=dict(title="PSNR-Y (dB)", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=10, r=10, b=10), height=420)
    return _finish(fig)


# ---------------------------------------------------------------------------
# 6. Single-scan cost
# ---------------------------------------------------------------------------

def cost_figure(results: Sequence[dict[str, Any]]) -> go.Figure:
    """GMACs (total and the scan alone) vs input pixels per preset, from
    ``model.evaluation.profile.profile``."""
    fig = make_subplots(rows=1, cols=2,
                        subplot_titles=("total GMACs", "selective scan GMACs (state + output)"))
    presets = list(dict.fromkeys(r["preset"] for r in results))
    for p in presets:
        rs = sorted((r for r in results if r["preset"] == p), key=lambda r: r["size"][0] * r["size"][1])
        px = [r["size"][0] * r["size"][1] for r in rs]
        fig.add_trace(go.Scatter(x=px, y=[r["total"] / 1e9 for r in rs], mode="lines+markers", name=p),
                      row=1, col=1)
        scan = [(r["macs"]["scan state"] + r["macs"]["scan output"]) / 1e9 for r in rs]
        fig.add_trace(go.Scatter(x=px, y=scan, mode="lines+markers", name=f"{p} scan", showlegend=False),
                      row=1, col=2)
    fig.update_xaxes(title="input pixels (H x W)")
    fig.update_layout(title=_title("Single-scan cost", CLAIMS["cost"]),
                      margin=dict(l=10, r=10, b=10), height=420)
    return _finish(fig)
