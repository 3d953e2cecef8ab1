"""Pictures and numbers of prompt routing: how many pixels each of the T prompts receives.

Inputs are MambaIRv2 ASSM capture records: ``labels`` (B, L) hard choice per
pixel, ``route_logp`` (B, L, T) the router's log-probabilities. Entropy is in
nats (natural log); perplexity = exp(entropy) is the "effective number of
prompts in use": T for a uniform split, 1 when every pixel takes one prompt.

Letters: B batch, L = Hp*Wp tokens, T prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from model.analysis.router_stats import UNTRAINED_MESSAGE, layer_stats, usage_stats

from .arrays import Record, image_hw_of
from .palette import label_hex
from .sgn import label_counts, num_labels


def routing_stats(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0) -> dict:
    """Routing numbers of one layer (model.analysis.router_stats.layer_stats for one batch item, over the
    image's pixels): pixel count per prompt, entropy in nats and bits, perplexity, used and dead
    prompts, largest share, ``mean_confidence`` (the router's mean max probability) and
    ``untrained`` (near-uniform router)."""
    if "route_logp" not in record:  # a record without the router's output: label usage only
        counts = label_counts(record, image_hw, batch)
        return {"counts": counts, **usage_stats(counts)}
    stats = layer_stats(record, image_hw=image_hw_of(record, image_hw), batch=batch)
    stats["mean_confidence"] = stats["mean_max_prob"]
    return stats


def _layer_name(record: Record) -> str:
    return f"{record.get('stage', '?')}.{record.get('block', '?')}"


def routing_histogram(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0) -> go.Figure:
    """Pixels per prompt, largest first, with entropy (nats), perplexity, unused share and largest share
    in the title: a few prompts taking most pixels means coarse semantic groups, a flat histogram
    (perplexity near T) means many small groups."""
    st = routing_stats(record, image_hw, batch)
    counts = st["counts"]
    T = num_labels(record)
    order = np.argsort(-counts, kind="stable")
    hexes = np.array(label_hex(T), dtype=object)
    total = max(int(counts.sum()), 1)
    fig = go.Figure(go.Bar(
        x=[f"#{k}" for k in order], y=counts[order], marker_color=hexes[order], customdata=order,
        hovertext=[f"{100.0 * c / total:.1f}%" for c in counts[order]],
        hovertemplate="prompt %{customdata}: %{y} pixels (%{hovertext}) got this label<br>"
                      "the sort puts them one after another in the sequence<extra></extra>",
    ))
    fig.update_layout(
        title=(f"Routing, layer {_layer_name(record)}: entropy {st['entropy_nats']:.2f} nats,<br>"
               f"perplexity {st['perplexity']:.1f} of {T}, unused {100 * st['unused_share']:.0f}%, "
               f"largest {100 * st['largest_share']:.1f}%"),
        xaxis=dict(type="category", title="prompt index, sorted by pixel count"),
        yaxis_title="pixels", bargap=0.1, margin=dict(l=10, r=10, t=70, b=10), height=400,
        title_font=dict(size=14),
    )
    if "mean_confidence" in st:
        note = f"router mean confidence {st['mean_confidence']:.2f}"
        if st["untrained"]:
            note = f"{UNTRAINED_MESSAGE} ({note})"
        fig.add_annotation(text=note, xref="paper", yref="paper", x=1, y=1, xanchor="right", showarrow=False)
    return fig


def usage_heatmap(records: Sequence[Record], image_hw: tuple[int, int] | None = None, batch: int = 0,
                  sort_rows: bool = False) -> go.Figure:
    """Share of pixels per prompt for every ASSM layer (rows "stage.block", forward order): shows which
    layers use many prompts and which collapse onto a few. Each layer has its own prompt pool, so with
    ``sort_rows`` each row is sorted (largest share first) to compare how concentrated layers are."""
    if not records:
        raise ValueError("no ASSM records to show")
    T = max(num_labels(r) for r in records)
    z = np.full((len(records), T), np.nan)
    names = []
    for row, rec in enumerate(records):
        st = routing_stats(rec, image_hw, batch)
        share = st["counts"] / max(int(st["counts"].sum()), 1)
        if sort_rows:
            share = np.sort(share)[::-1]
        z[row, : share.size] = share
        flag = " untrained" if st.get("untrained") else ""  # near-uniform router: arbitrary labels
        names.append(f"{_layer_name(rec)} (ppl {st['perplexity']:.1f}){flag}")
    fig = go.Figure(go.Heatmap(
        z=z, x=np.arange(T), y=names, colorscale="Magma", colorbar=dict(title="share"),
        hovertemplate="layer %{y}<br>" + ("the prompt ranked %{x}" if sort_rows else "prompt %{x}")
        + " got %{z:.1%} of the pixels<extra></extra>",
    ))
    fig.update_layout(
        title=dict(text="Prompt usage per layer<br>(share of pixels; ppl = perplexity, effective number of "
                        "prompts)", font=dict(size=14)), height=400,
        xaxis_title="prompt rank (sorted per layer)" if sort_rows else "prompt index",
        yaxis=dict(autorange="reversed", title="stage.block"), margin=dict(l=10, r=10, t=60, b=10),
    )
    return fig
