"""Pictures of a layer's prompt pool P = embeddingB.weight @ embeddingA.weight, shape (T, N).

Each row of P is the prompt that a pixel routed to that index adds to the scan's
C (its "query"). Inputs are MambaIRv2 ASSM capture records (``prompt_pool``,
``labels``). Letters: T prompts, N = d_state.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from .arrays import PIXEL_COLOR, Record, as_numpy
from .ase import prompt_indices
from .palette import label_hex
from .sgn import label_counts


def project_prompts(pool: np.ndarray, method: str = "pca", seed: int = 0, tsne_iter: int = 500
                    ) -> tuple[np.ndarray, str]:
    """(T, 2) 2-D coordinates of the (T, N) prompt pool, and a short note on the projection."""
    pool = np.asarray(pool, dtype=np.float64)
    T, N = pool.shape
    if method == "pca":
        if N == 1 or T < 2:
            xy = np.zeros((T, 2))
            xy[:, 0] = pool[:, 0] if N >= 1 else 0.0
            return xy, "raw (N=1)"
        pca = PCA(n_components=2, random_state=seed).fit(pool)
        xy = pca.transform(pool)
        ev = pca.explained_variance_ratio_
        return xy, f"PCA, explained variance {100 * ev[0]:.0f}% + {100 * ev[1]:.0f}%"
    if method == "tsne":
        if T < 3:
            raise ValueError("t-SNE needs at least 3 prompts")
        perplexity = float(min(30.0, max(1.0, (T - 1) / 3.0)))  # must be < T
        # One OpenMP thread: with torch loaded, sklearn's threaded Barnes-Hut step contends with
        # torch's OpenMP pool and runs ~20x slower (measured on 2 cores); T <= 256 points need no threads.
        with threadpool_limits(limits=1, user_api="openmp"):
            xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                      max_iter=max(250, int(tsne_iter))).fit_transform(pool)
        return xy, f"t-SNE, perplexity {perplexity:.1f}, random_state {seed}"
    raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")


def prompt_projection(record: Record, method: str = "pca", image_hw: tuple[int, int] | None = None,
                      batch: int = 0, seed: int = 0, tsne_iter: int = 500,
                      pixel: tuple[int, int] | None = None, height: int = 420) -> go.Figure:
    """2-D map of the T prompts (PCA, or t-SNE with a fixed seed), marker size = pixels routed to each:
    prompts close together add similar queries to C, and unused prompts (hollow) show pool capacity
    the image did not need. ``tsne_iter`` (>= 250) trades t-SNE quality for time. With ``pixel``
    (row, col): a cyan ring on the prompt it was routed to, and a cyan diamond on the prompt the layer
    added at its sorted position when that is another one (official prompt order)."""
    pool = as_numpy(record["prompt_pool"]).astype(np.float64)  # (T, N)
    T = pool.shape[0]
    counts = label_counts(record, image_hw, batch)
    xy, note = project_prompts(pool, method, seed, tsne_iter)
    share = counts / max(int(counts.sum()), 1)
    size = 6 + 34 * np.sqrt(share / max(share.max(), 1e-12))  # area ~ share
    hexes = label_hex(T)
    used = counts > 0
    fig = go.Figure()
    for mask, name, fill in ((used, "used", True), (~used, "unused", False)):
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            continue
        colours = [hexes[k] for k in idx]
        fig.add_trace(go.Scatter(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers+text", name=f"{name} ({idx.size})",
            text=[str(k) for k in idx], textposition="top center", textfont=dict(size=9),
            marker=dict(size=size[idx], color=colours if fill else "rgba(0,0,0,0)",
                        line=dict(color=colours, width=1.5)),
            customdata=np.stack([idx, counts[idx]], axis=1),
            hovertemplate="prompt %{customdata[0]}: %{customdata[1]} pixels routed to it<br>"
                          "nearby points: prompts that ask the state similar questions<extra></extra>",
        ))
    head = f"Prompt pool ({T} prompts, N={pool.shape[1]})<br>{note}"
    if pixel is not None:
        own, added = prompt_indices(record, pixel, batch)
        marks = [(own, "circle-open", f"your pixel's prompt ({own})")]
        if added != own:
            marks.append((added, "diamond-open", f"prompt added at its position ({added})"))
        for k, symbol, name in marks:
            fig.add_trace(go.Scatter(x=[xy[k, 0]], y=[xy[k, 1]], mode="markers", name=name,
                                     marker=dict(symbol=symbol, size=float(size[k]) + 14, color=PIXEL_COLOR,
                                                 line=dict(width=3, color=PIXEL_COLOR)),
                                     hovertemplate=name + "<extra></extra>"))
        head += f"<br>your pixel: prompt {own}" + (f", added {added}" if added != own else "")
    fig.update_layout(title=dict(text=head, x=0.01, xanchor="left", font=dict(size=14)),
                      xaxis_title="component 1", yaxis_title="component 2", height=height,
                      margin=dict(l=10, r=10, t=90, b=10),
                      legend=dict(orientation="h", x=1, xanchor="right", y=-0.15, yanchor="top"))
    return fig


def prompt_similarity_matrix(pool: np.ndarray) -> np.ndarray:
    """(T, T) cosine similarity between the rows of a (T, N) prompt pool (0 where a row is all zero)."""
    pool = np.asarray(pool, dtype=np.float64)
    norm = np.linalg.norm(pool, axis=1, keepdims=True)  # (T, 1)
    unit = np.divide(pool, norm, out=np.zeros_like(pool), where=norm > 0)
    return unit @ unit.T  # (T, N) @ (N, T) -> (T, T)


def prompt_similarity(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0) -> go.Figure:
    """Cosine similarity between every pair of prompts, used prompts first (by pixel count): the low-rank
    factorisation P = B A (rank r) makes prompts share directions, so blocks of similar prompts show
    which semantic groups the layer treats alike."""
    pool = as_numpy(record["prompt_pool"]).astype(np.float64)  # (T, N)
    counts = label_counts(record, image_hw, batch)
    order = np.argsort(-counts, kind="stable")
    sim = prompt_similarity_matrix(pool)[np.ix_(order, order)]
    labels = [f"{k}" for k in order]
    fig = go.Figure(go.Heatmap(
        z=sim, x=labels, y=labels, zmin=-1, zmax=1, colorscale="RdBu_r", colorbar=dict(title="cos"),
        hovertemplate="prompts %{y} and %{x}: cosine similarity %{z:.2f}<br>"
                      "(1 = same direction, 0 = unrelated, -1 = opposite)<extra></extra>",
    ))
    used = int((counts > 0).sum())
    fig.update_layout(title=f"Prompt cosine similarity<br>(sorted by usage; first {used} are used)",
                      height=420,
                      xaxis=dict(type="category", title="prompt"),
                      yaxis=dict(type="category", autorange="reversed", title="prompt", scaleanchor="x"),
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig
