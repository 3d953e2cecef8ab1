"""Pictures of the 1-D sequence a scan reads: MambaIRv2's label-sorted order versus MambaIR's raster scans.

MambaIRv2 records (``model.capture``): ``perm`` (B, L), sorted position i holds
raster pixel perm[i] of the padded grid (Hp, Wp). MambaIR SS2D records:
``orders`` (4, L), the raster pixel visited at each position of the four scans
(row-major, column-major, reversed row-major, reversed column-major).
Padded pixels (outside the image's (H, W), bottom/right) are dropped from every
sequence shown here, keeping the order of the rest.

Letters: B batch, L = Hp*Wp tokens, T labels, H, W image size, S = H*W pixels kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .arrays import (
    Record,
    as_numpy,
    as_rgb_uint8,
    box_pixel,
    grid_hw,
    image_axes,
    image_hw_of,
    mark_pixel,
    pixel_rc,
)
from .palette import label_colors, label_hex
from .sgn import num_labels

SCAN_NAMES = ("row-major", "column-major", "reversed row-major", "reversed column-major")


# ---------------------------------------------------------------- sequences
def raster_orders(hw: tuple[int, int]) -> np.ndarray:
    """(4, L) int64 raster index visited at each position of MambaIR's four scans of an (H, W) grid."""
    h, w = int(hw[0]), int(hw[1])
    row_major = np.arange(h * w, dtype=np.int64)
    col_major = row_major.reshape(h, w).T.ravel()  # (H, W) -> (W, H) -> (L,): down each column
    return np.stack([row_major, col_major, row_major[::-1], col_major[::-1]])


def crop_sequence(order: np.ndarray, grid: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """(S, 2) int64 (row, col) of the image pixels in sequence order; padded grid pixels are dropped."""
    wp = int(grid[1])
    order = np.asarray(order, dtype=np.int64)
    rows, cols = order // wp, order % wp
    keep = (rows < image_hw[0]) & (cols < image_hw[1])
    return np.stack([rows[keep], cols[keep]], axis=1)


def scan_sequence(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """MambaIRv2: (S, 2) (row, col) of image pixels in scan (label-sorted) order, and their (S,) labels."""
    grid = grid_hw(record)
    hw = image_hw_of(record, image_hw)
    perm = as_numpy(record["perm"])[batch].astype(np.int64)  # (L,)
    rc = crop_sequence(perm, grid, hw)
    labels = as_numpy(record["labels"])[batch].astype(np.int64).reshape(grid)  # (L,) -> (Hp, Wp)
    return rc, labels[rc[:, 0], rc[:, 1]]


def sequence_position(rc: np.ndarray, pixel: tuple[int, int]) -> int:
    """Position of image pixel (row, col) in a (S, 2) sequence of (row, col)."""
    hit = np.flatnonzero((rc[:, 0] == int(pixel[0])) & (rc[:, 1] == int(pixel[1])))
    if hit.size == 0:
        raise ValueError(f"pixel {tuple(pixel)} is not in the sequence")
    return int(hit[0])


def neighbour_distances(rc: np.ndarray) -> np.ndarray:
    """(S-1,) Euclidean image distance (pixels) between consecutive entries of a (S, 2) sequence."""
    rc = np.asarray(rc, dtype=np.float64)
    return np.sqrt(((rc[1:] - rc[:-1]) ** 2).sum(axis=1))


# ---------------------------------------------------------------- pictures
def sequence_ribbon(record: Record, image: Any, width: int | None = None, bar: int = 2, zoom: int = 1,
                    batch: int = 0, pixel: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 image of the input's pixels in the order the MambaIRv2 scan reads them, wrapped into rows
    of ``width`` (default: the image width), each row of pixels followed by ``bar`` rows in the pixels'
    label colours with a black tick where a new label group starts: similar-looking pixels from all
    over the image end up next to each other in the sequence.

    Layout: row r of the ribbon holds sequence entries r*width .. r*width+width-1 at image row
    r*(1+bar); unfilled cells of the last row are white. ``zoom`` enlarges every cell (nearest).
    With ``pixel`` (row, col of the image): its cell is boxed in cyan and entries of other labels are
    faded, so its label group shows as one run of the sequence.
    """
    img = as_rgb_uint8(image)
    hw = image_hw_of(record, img.shape[:2])
    rc, labels = scan_sequence(record, hw, batch)
    width = int(width or hw[1])
    n = len(rc)
    n_rows = -(-n // width)
    pix = np.full((n_rows * width, 3), 255, dtype=np.uint8)
    pix[:n] = img[rc[:, 0], rc[:, 1]]
    colors = np.full((n_rows * width, 3), 255, dtype=np.uint8)
    colors[:n] = label_colors(num_labels(record))[labels]
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])  # first entry of each group
    tick = colors.copy()
    tick[starts] = 0
    at = None
    if pixel is not None:
        at = sequence_position(rc, pixel_rc(pixel, hw))
        other = np.ones(n_rows * width, dtype=bool)
        other[:n] = labels != labels[at]
        pix[other] = (0.25 * pix[other] + 0.75 * 255.0 + 0.5).astype(np.uint8)  # fade other groups
    rows = [pix.reshape(n_rows, 1, width, 3)]  # (n_rows*width, 3) -> (n_rows, 1, width, 3)
    if bar > 0:
        bars = [tick.reshape(n_rows, 1, width, 3)] + [colors.reshape(n_rows, 1, width, 3)] * (bar - 1)
        rows += bars
    out = np.concatenate(rows, axis=1).reshape(n_rows * (1 + max(bar, 0)), width, 3)  # rows interleaved
    if zoom > 1:
        out = np.repeat(np.repeat(out, zoom, axis=0), zoom, axis=1)
    if at is not None:
        out = box_pixel(out, ((at // width) * (1 + max(bar, 0)), at % width), zoom)
    return out


def sequence_distance_figure(record: Record, image_hw: tuple[int, int] | None = None, batch: int = 0,
                             max_points: int = 20000, pixel: tuple[int, int] | None = None,
                             height: int = 420) -> go.Figure:
    """Where each sequence entry comes from, and how far apart (in the image) consecutive entries are:
    MambaIRv2's sorted sequence jumps across the image to connect same-label pixels, while a raster
    scan's neighbours are almost always adjacent pixels (mean distance ~1). With ``pixel`` (row, col)
    its (sorted position, raster index) is marked with a cyan cross."""
    hw = image_hw_of(record, image_hw)
    rc, labels = scan_sequence(record, hw, batch)
    T = num_labels(record)
    raster_idx = rc[:, 0] * hw[1] + rc[:, 1]  # (S,) raster index in the (H, W) image
    d_sgn = neighbour_distances(rc)
    same = labels[1:] == labels[:-1]
    raster_rc = crop_sequence(raster_orders(hw)[0], hw, hw)
    d_raster = neighbour_distances(raster_rc)

    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.12,
                        subplot_titles=("sorted position vs raster position", "neighbour distances"))
    step = max(1, len(rc) // max_points)  # thin very long sequences; the picture is the same
    pos = np.arange(len(rc))[::step]
    fig.add_trace(go.Scattergl(
        x=pos, y=raster_idx[::step], mode="markers", name="SGN sequence",
        marker=dict(size=3, color=np.array(label_hex(T), dtype=object)[labels[::step]]),
        customdata=np.stack([labels[::step], rc[::step, 0], rc[::step, 1], pos + 1, raster_idx[::step] + 1],
                            axis=1),  # 1-based steps, as the step-through counts them
        hovertemplate="step %{customdata[3]} of the SGN sequence reads pixel (x %{customdata[2]}, "
                      "y %{customdata[1]})<br>label %{customdata[0]}; a row-major scan reads it at step "
                      "%{customdata[4]}<extra></extra>",
        showlegend=False,
    ), row=1, col=1)
    fig.add_trace(go.Scattergl(x=[0, len(rc) - 1], y=[0, len(rc) - 1], mode="lines", name="raster scan",
                               line=dict(color="grey", dash="dot", width=1),
                               hovertemplate="a row-major scan reads raster pixel k at step k: "
                                             "this diagonal<extra></extra>"), row=1, col=1)
    bins = dict(start=0, end=float(max(d_sgn.max(initial=1), d_raster.max(initial=1))) + 1, size=1)
    fig.add_trace(go.Histogram(x=d_sgn, name=f"SGN sorted (mean {d_sgn.mean():.1f} px)", xbins=bins,
                               opacity=0.7, marker_color="#d62728"), row=1, col=2)
    fig.add_trace(go.Histogram(x=d_raster, name=f"raster row-major (mean {d_raster.mean():.1f} px)",
                               xbins=bins, opacity=0.7, marker_color="#1f77b4"), row=1, col=2)
    for val, colour in ((d_sgn.mean(), "#d62728"), (d_raster.mean(), "#1f77b4")):
        fig.add_vline(x=float(val), line=dict(color=colour, dash="dash"), row=1, col=2)
    within = d_sgn[same].mean() if same.any() else float("nan")
    head = (f"SGN sequence of {len(rc)} pixels: mean neighbour distance {d_sgn.mean():.1f} px<br>"
            f"(within a label group {within:.1f} px) vs {d_raster.mean():.2f} px for a raster scan")
    if pixel is not None:
        prc = pixel_rc(pixel, hw)
        at = sequence_position(rc, prc)
        mark_pixel(fig, (int(raster_idx[at]), at), 1, 1)
        head += f"; your pixel: raster {int(raster_idx[at])} → sorted {at}"
    fig.update_layout(
        barmode="overlay", margin=dict(l=10, r=10, t=90, b=10), height=height,
        title=dict(text=head, x=0.01, xanchor="left", font=dict(size=14)),
        legend=dict(orientation="h", x=1, xanchor="right", y=-0.18, yanchor="top"),
    )
    fig.update_xaxes(title_text="position in the sorted sequence", row=1, col=1)
    fig.update_yaxes(title_text="raster index in the image", row=1, col=1)
    fig.update_xaxes(title_text="image distance (px)", row=1, col=2)
    fig.update_yaxes(title_text="pairs", type="log", row=1, col=2)
    return fig


def scan_orders_figure(record_or_grid: Record | tuple[int, int], image_hw: tuple[int, int] | None = None,
                       arrows: int = 3, pixel: tuple[int, int] | None = None, height: int = 720) -> go.Figure:
    """The four raster scans of MambaIR as small panels coloured by visit order (dark = early), with the
    path of the first rows drawn as arrows: each scan only ever links a pixel to its row or column
    neighbour, so distant similar regions are far apart in every one of the four sequences.

    With ``pixel`` (row, col): the pixel is crossed in every panel and the pixels each scan reads
    *after* it are faded: what is left is what that scan has seen when it reaches the pixel."""
    if isinstance(record_or_grid, dict):
        grid = grid_hw(record_or_grid)
        orders = (as_numpy(record_or_grid["orders"]).astype(np.int64) if "orders" in record_or_grid
                  else raster_orders(grid))
        hw = image_hw_of(record_or_grid, image_hw)
    else:
        grid = (int(record_or_grid[0]), int(record_or_grid[1]))
        orders = raster_orders(grid)
        hw = grid if image_hw is None else (int(image_hw[0]), int(image_hw[1]))
    h, w = hw
    prc = pixel_rc(pixel, hw)
    titles = []
    seqs = []
    for k in range(4):
        rc = crop_sequence(orders[k], grid, hw)
        seqs.append(rc)
        if prc is None:
            titles.append(f"{SCAN_NAMES[k]} (mean step {neighbour_distances(rc).mean():.2f} px)")
        else:
            titles.append(f"{SCAN_NAMES[k]}<br>{sequence_position(rc, prc)} pixels before yours")
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.12 if prc is not None else 0.08)
    for k, rc in enumerate(seqs):
        r, c = k // 2 + 1, k % 2 + 1
        visit = np.empty((h, w), dtype=np.int64)
        visit[rc[:, 0], rc[:, 1]] = np.arange(len(rc))  # pixel -> when it is read
        fig.add_trace(go.Heatmap(z=visit, colorscale="Viridis", showscale=(k == 0), name=SCAN_NAMES[k],
                                 colorbar=dict(title="visit step", len=0.45, y=0.78), customdata=visit + 1,
                                 hovertemplate=f"pixel (x %{{x}}, y %{{y}})<br>the {SCAN_NAMES[k]} scan "
                                               f"reads it at step %{{customdata}} of {len(rc)}"
                                               "<extra></extra>"),
                      row=r, col=c)
        n_path = min(len(rc), max(2, arrows * (w if k % 2 == 0 else h)))  # the first `arrows` lines
        path = rc[:n_path]
        fig.add_trace(go.Scatter(x=path[:, 1], y=path[:, 0], mode="lines+markers", showlegend=False,
                                 line=dict(color="white", width=1.5),
                                 marker=dict(symbol="arrow", angleref="previous", size=7, color="white"),
                                 hoverinfo="skip"), row=r, col=c)
        if prc is not None:
            later = np.where(visit > visit[prc], 1.0, np.nan)  # (H, W): read after the pixel
            fig.add_trace(go.Heatmap(z=later, colorscale=[[0, "rgba(255,255,255,0.8)"],
                                                          [1, "rgba(255,255,255,0.8)"]],
                                     showscale=False, hoverinfo="skip"), row=r, col=c)
            mark_pixel(fig, prc, r, c, showlegend=False)  # the title says what the cross is
    image_axes(fig, 2, 2)
    head = "MambaIR: four raster scans of the same image, summed (arrows: first steps)"
    if prc is not None:
        head += f"<br>your pixel (cross): row {prc[0]}, col {prc[1]}; faded = read after it"
    fig.update_layout(title=dict(text=head, x=0.01, xanchor="left", font=dict(size=15)),
                      margin=dict(l=10, r=10, t=130 if prc is not None else 80, b=10), height=height)
    return fig
