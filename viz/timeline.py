"""Pictures of how routing evolves over a series of checkpoints (``model.analysis.timeline.Snapshot`` lists).

    python -m viz.timeline experiments/RUN/models --image photo.png --out DIR [--size 64]

writes ``timeline.png`` (per ASSM layer, against the iteration: mean largest route probability x T,
prompts used, perplexity, dead prompts), ``labels_all.png`` (the SGN label map of every layer,
rows, per checkpoint, columns), one ``labels_<stage>.<block>.png`` per layer, and ``index.json``,
and prints a table. Wherever labels are shown, a layer whose router is near uniform is flagged in
plain words (``model.analysis.router_stats.UNTRAINED_MESSAGE``).

Letters: H, W the input (LR) size, T prompts, n checkpoints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from model.analysis.router_stats import UNTRAINED_MESSAGE, layer_untrained
from model.analysis.timeline import Snapshot

from .palette import label_colors

__all__ = ["timeline_figure", "label_maps_figure", "label_strip", "label_grid_image", "timeline_table",
           "training_curves_figure", "main"]

_METRICS = (  # (key in the stats, y-axis title); "xT" = mean max prob times T
    ("xT", "mean largest route prob. × T"),
    ("used", "prompts used"),
    ("perplexity", "perplexity (effective prompts)"),
    ("dead", "dead prompts (never chosen)"),
)
_RED = (200, 30, 30)


def _value(stats: dict, key: str) -> float:
    """One number of a layer's stats for the figure."""
    if key == "xT":
        return stats["mean_max_prob"] * stats["num_prompts"]
    if key == "dead":
        return len(stats["dead"])
    return float(stats[key])


def _x(snaps: Sequence[Snapshot]) -> tuple[list, bool]:
    """x values: iterations when every file name has one, else checkpoint positions 0..n-1."""
    if all(s.step is not None for s in snaps):
        return [s.step for s in snaps], True
    return list(range(len(snaps))), False


def _check(snaps: Sequence[Snapshot]) -> None:
    if not snaps:
        raise ValueError("no checkpoints to show")
    if len({len(s.stats) for s in snaps}) != 1:
        raise ValueError("the checkpoints have different numbers of ASSM layers: not one network")


def timeline_figure(snaps: Sequence[Snapshot]) -> go.Figure:
    """Four panels against the iteration, one line per ASSM layer (colour = depth): how sure the router
    is (mean largest probability x T: 1 = uniform, dotted lines at 2 = the "not trained" threshold and
    4 = issue 13's target), how many prompts the image uses, how evenly (perplexity), how many are dead."""
    _check(snaps)
    xs, by_step = _x(snaps)
    names = snaps[0].layers
    colors = sample_colorscale("Viridis", [i / max(len(names) - 1, 1) for i in range(len(names))])
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in _METRICS], horizontal_spacing=0.08,
                        vertical_spacing=0.14)
    for k, (key, _) in enumerate(_METRICS):
        row, col = k // 2 + 1, k % 2 + 1
        for j, name in enumerate(names):
            ys = [_value(s.stats[j], key) for s in snaps]
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines+markers", name=f"layer {name}", legendgroup=name,
                showlegend=k == 0, line=dict(color=colors[j], width=1.5), marker=dict(size=5),
                hovertemplate=f"layer {name}<br>%{{x}}: %{{y:.3g}}<extra></extra>"), row=row, col=col)
        fig.update_xaxes(title_text="iteration" if by_step else "checkpoint", row=row, col=col)
    for level, text in ((1.0, "uniform"), (2.0, "untrained below"), (4.0, "target")):
        fig.add_hline(y=level, line=dict(dash="dot", color="grey", width=1), annotation_text=text,
                      annotation_position="top left", row=1, col=1)
    last = snaps[-1]
    T = last.stats[0]["num_prompts"]
    title = f"Routing over {len(snaps)} checkpoints ({len(names)} ASSM layers, T = {T})"
    if last.untrained:
        title += f"<br><span style='color:#c81e1e'>latest checkpoint: {UNTRAINED_MESSAGE}</span>"
    fig.update_layout(title=title, legend=dict(title="layer", font=dict(size=9)),
                      margin=dict(l=10, r=10, t=90, b=10))
    if not by_step:
        for k in range(4):
            fig.update_xaxes(tickmode="array", tickvals=xs, ticktext=[s.name for s in snaps], row=k // 2 + 1,
                             col=k % 2 + 1)
    return fig


def _layer_index(snaps: Sequence[Snapshot], layer: int | str) -> int:
    """Index of a layer given as a position (negative from the end) or a "stage.block" name."""
    names = snaps[0].layers
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(f"no ASSM layer {layer!r}; layers: {', '.join(names)}")
        return names.index(layer)
    if not -len(names) <= layer < len(names):
        raise ValueError(f"layer {layer} out of range: {len(names)} ASSM layers")
    return layer % len(names)


def label_maps_figure(snaps: Sequence[Snapshot], layer: int | str = 0) -> go.Figure:
    """The SGN label map of one layer for every checkpoint, side by side (one colour per prompt, the
    same colours everywhere): regions that keep their colour across checkpoints are groups the router
    has settled on. A checkpoint whose router is near uniform says so in its title."""
    _check(snaps)
    j = _layer_index(snaps, layer)
    T = snaps[0].stats[j]["num_prompts"]
    titles = []
    for s in snaps:
        st = s.stats[j]
        flag = "<br><span style='color:#c81e1e'>router not trained</span>" if layer_untrained(st) else ""
        titles.append(f"{s.name}: ×T {st['mean_max_prob'] * T:.2f}, {st['used']} used{flag}")
    fig = make_subplots(rows=1, cols=len(snaps), subplot_titles=titles, horizontal_spacing=0.01)
    for i, s in enumerate(snaps):
        fig.add_trace(go.Image(z=label_colors(T)[s.labels[j]], customdata=s.labels[j],
                               hovertemplate="row %{y}, col %{x}: prompt %{customdata}<extra></extra>"),
                      row=1, col=i + 1)
        fig.update_xaxes(visible=False, row=1, col=i + 1)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}",
                         row=1, col=i + 1)
    title = f"SGN labels of layer {snaps[0].layers[j]} per checkpoint"
    if any(layer_untrained(s.stats[j]) for s in snaps):
        title += f"<br><span style='color:#c81e1e'>flagged: {UNTRAINED_MESSAGE}</span>"
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=110, b=10))
    fig.update_annotations(font_size=11)
    return fig


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def label_strip(snaps: Sequence[Snapshot], layer: int | str = 0, zoom: int = 3, gap: int = 6,
                sentence: bool = True) -> np.ndarray:
    """(h, w, 3) uint8: the label maps of one layer side by side (each ``zoom`` x, nearest), each under a
    caption "step N  xT v"; a red "router not trained" under a near-uniform one, and (``sentence``) the
    full sentence at the bottom when any is flagged."""
    _check(snaps)
    j = _layer_index(snaps, layer)
    T = snaps[0].stats[j]["num_prompts"]
    colors = label_colors(T)
    maps = [np.repeat(np.repeat(colors[s.labels[j]], zoom, 0), zoom, 1) for s in snaps]  # (H*z, W*z, 3)
    mh, mw = maps[0].shape[:2]
    cap, flag_h = 30, 16
    flagged = [layer_untrained(s.stats[j]) for s in snaps]
    bottom = sentence and any(flagged)
    width = max(len(maps) * (mw + gap) + gap, 420 if bottom else 0)
    canvas = Image.new("RGB", (width, cap + mh + gap + (flag_h if bottom else 0)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (s, m) in enumerate(zip(snaps, maps, strict=True)):
        x = gap + i * (mw + gap)
        canvas.paste(Image.fromarray(np.ascontiguousarray(m)), (x, cap))
        st = s.stats[j]
        draw.text((x, 1), f"{s.name}", fill="black", font=_font(11))
        if flagged[i]:
            draw.text((x, 14), "router not trained", fill=_RED, font=_font(10))
        else:
            note = f"xT {st['mean_max_prob'] * T:.2f}, {st['used']} used"  # PIL default font: no ×
            draw.text((x, 14), note, fill="black", font=_font(10))
    if bottom:
        draw.text((gap, cap + mh + 2), UNTRAINED_MESSAGE, fill=_RED, font=_font(11))
    return np.asarray(canvas)


def label_grid_image(snaps: Sequence[Snapshot], layers: Sequence[int | str] | None = None, zoom: int = 2
                     ) -> np.ndarray:
    """(h, w, 3) uint8: one row per layer ("stage.block" at the left), one column per checkpoint, of
    SGN label maps; each row is a ``label_strip`` (captions and flags included), and the full "router
    not trained" sentence once at the bottom when any map is flagged."""
    _check(snaps)
    idx = [_layer_index(snaps, v) for v in (layers if layers is not None else range(len(snaps[0].stats)))]
    strips = [label_strip(snaps, j, zoom, sentence=False) for j in idx]
    flagged = any(layer_untrained(s.stats[j]) for s in snaps for j in idx)
    left, foot = 44, 20 if flagged else 0
    width = max(left + max(s.shape[1] for s in strips), 470 if flagged else 0)
    canvas = Image.new("RGB", (width, sum(s.shape[0] for s in strips) + foot), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for j, strip in zip(idx, strips, strict=True):
        canvas.paste(Image.fromarray(strip), (left, y))
        draw.text((2, y + 30), snaps[0].layers[j], fill="black", font=_font(12))
        y += strip.shape[0]
    if flagged:
        draw.text((4, y + 3), UNTRAINED_MESSAGE, fill=_RED, font=_font(12))
    return np.asarray(canvas)


def timeline_table(snaps: Sequence[Snapshot]) -> str:
    """A plain-text table: per checkpoint, mean largest route probability x T of every layer, and a
    summary (median x T, mean prompts used, mean perplexity, dead prompts, the untrained flag)."""
    _check(snaps)
    names = snaps[0].layers
    head = f"{'checkpoint':>14} | " + " ".join(f"{n:>5}" for n in names)
    head += " | median xT  used  ppl   dead  verdict"
    lines = ["mean largest route probability x T per ASSM layer (1 = uniform; < 2 = not trained; 4 = target)",
             head, "-" * len(head)]
    for s in snaps:
        xt = [st["mean_max_prob"] * st["num_prompts"] for st in s.stats]
        used = np.mean([st["used"] for st in s.stats])
        ppl = np.mean([st["perplexity"] for st in s.stats])
        dead = sum(len(st["dead"]) for st in s.stats)
        verdict = "router not trained" if s.untrained else "routing"
        lines.append(f"{s.name:>14} | " + " ".join(f"{v:5.2f}" for v in xt)
                     + f" | {np.median(xt):9.2f} {used:5.1f} {ppl:5.1f} {dead:6d}  {verdict}")
    if snaps[-1].untrained:
        lines.append(f"latest checkpoint: {UNTRAINED_MESSAGE}")
    return "\n".join(lines)


def training_curves_figure(runs: dict[str, list[dict]]) -> go.Figure:
    """Router numbers next to PSNR against the training step, one colour per run: the validation events
    of ``model.training.train``'s ``log.jsonl`` (those with a ``router`` summary). Panels: median and largest
    (over layers) mean max route probability x T, median RMS change of the route logits since the
    start, and validation PSNR-Y minus bicubic."""
    if not runs:
        raise ValueError("no runs to show")
    fig = make_subplots(rows=2, cols=2, horizontal_spacing=0.1, vertical_spacing=0.16, subplot_titles=(
        "median over layers: mean max route prob. × T", "largest over layers: mean max route prob. × T",
        "median over layers: RMS change of route logits", "validation PSNR-Y − bicubic (dB)"))
    palette = sample_colorscale("Turbo", [0.1 + 0.8 * i / max(len(runs) - 1, 1) for i in range(len(runs))])
    for color, (name, events) in zip(palette, runs.items(), strict=True):
        ev = [e for e in events if "router" in e]
        if not ev:
            raise ValueError(f"run {name!r} has no validation event with router numbers")
        steps = [e["step"] for e in ev]
        xt = [[r["mean_max_prob_xT"] for r in e["router"]["layers"]] for e in ev]
        lc = [[r.get("logit_change", 0.0) for r in e["router"]["layers"]] for e in ev]
        panels = ([float(np.median(v)) for v in xt], [max(v) for v in xt], [float(np.median(v)) for v in lc],
                  [e["val_psnr_y"] - e["val_psnr_y_bicubic"] for e in ev])
        for k, ys in enumerate(panels):
            trace = go.Scatter(x=steps, y=ys, name=name, legendgroup=name, showlegend=k == 0,
                               mode="lines+markers", line=dict(color=color))
            fig.add_trace(trace, row=k // 2 + 1, col=k % 2 + 1)
    for col in (1, 2):
        fig.add_hline(y=2.0, line=dict(dash="dot", color="grey"), annotation_text="untrained below",
                      annotation_position="top left", row=1, col=col)
    for k in range(4):
        fig.update_xaxes(title_text="step", row=k // 2 + 1, col=k % 2 + 1)
    fig.update_layout(title="Router while training (validation crops of held-out photos)",
                      margin=dict(l=10, r=10, t=80, b=10))
    return fig


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    from model.analysis.timeline import checkpoint_timeline

    from .render_all import Writer, default_image, load_image

    ap = argparse.ArgumentParser(prog="python -m viz.timeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoint files and/or folders (BasicSR models/ too)")
    ap.add_argument("--image", help="the LR input image (default: skimage astronaut)")
    ap.add_argument("--size", type=int, default=64, help="resize the input so its longer side is this")
    ap.add_argument("--out", required=True, help="folder for the pictures")
    ap.add_argument("--zoom", type=int, default=2, help="enlargement of the label maps in the PNGs")
    args = ap.parse_args(argv)

    image = load_image(args.image, args.size) if args.image else default_image(args.size)

    def progress(i: int, n: int, path: Path) -> None:
        print(f"[{i + 1}/{n}] {path}", file=sys.stderr, flush=True)

    snaps = checkpoint_timeline(args.checkpoints, image, progress)
    w = Writer(Path(args.out))
    w.image("input", image, "the input image (LR)", zoom=args.zoom)
    w.figure("timeline", timeline_figure(snaps), " ".join(timeline_figure.__doc__.split()), 1200, 800)
    w.image("labels_all", label_grid_image(snaps, zoom=args.zoom), " ".join(label_grid_image.__doc__.split()))
    for j, name in enumerate(snaps[0].layers):
        strip = label_strip(snaps, j, zoom=max(args.zoom, 3))
        w.image(f"labels_{name}", strip, f"SGN labels of layer {name}")
    table = timeline_table(snaps)
    meta = {"image": args.image or "skimage.data.astronaut", "image_hw": list(image.shape[:2]),
            "checkpoints": [{"file": str(s.path), "step": s.step, "untrained": s.untrained} for s in snaps],
            "static_export": bool(w.static_ok), "static_export_error": w.static_error, "files": w.index}
    (w.out / "index.json").write_text(json.dumps(meta, indent=1))
    (w.out / "table.txt").write_text(table + "\n")
    print(table)
    print(f"wrote {len(w.index)} pictures to {w.out}")
    return 0


if __name__ == "__main__":
    from model.cli import run_cli

    run_cli(main)
