"""Render every internals picture for one image: ``python -m viz.render_all --out DIR [--image PATH]``.

Runs the image through MambaIRv2 and MambaIR models (``--ckpt PATH``, repeatable;
default: tiny *random, untrained* models of both architectures, labelled so in
every file name and title), records their internals with ``model.capture`` and
writes PNGs to ``--out``: uint8 pictures directly (PIL), plotly figures with
``fig.write_image`` when kaleido (+ Chrome/Chromium) is installed, otherwise as
standalone HTML next to a shared ``plotly.min.js``. ``index.json`` lists every
file with the sentence that explains it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

from . import arrays, ase, attention, prompts, routing, sequence, sgn


def default_image(size: int) -> np.ndarray:
    """skimage's astronaut photo, centre-cropped to a square and resized to size x size (uint8 RGB)."""
    from skimage.data import astronaut

    img = Image.fromarray(astronaut()).resize((size, size), Image.BICUBIC)
    return np.asarray(img)


def load_image(path: str, size: int | None) -> np.ndarray:
    """An RGB uint8 image from a file, its longer side resized to ``size`` if given."""
    img = Image.open(path).convert("RGB")
    if size:
        s = size / max(img.size)
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.BICUBIC)
    return np.asarray(img)


def tiny_models(seed: int = 0) -> list[tuple[str, torch.nn.Module]]:
    """Tiny random (untrained) MambaIRv2-light and MambaIR x2 models, for pictures without weights."""
    from model.archs import build
    from model.config import MambaIRConfig, MambaIRv2LightConfig

    torch.manual_seed(seed)
    v2 = build(MambaIRv2LightConfig(embed_dim=24, depths=(2, 2), num_heads=(2, 2), window_size=8,
                                    inner_rank=8, num_tokens=16, d_state=4, upscale=2))
    v1 = build(MambaIRConfig(embed_dim=30, depths=(1, 1), d_state=4, upscale=2, img_size=8, mlp_ratio=1.0,
                             upsampler="pixelshuffledirect"))
    return [("random-tiny-MambaIRv2Light", v2), ("random-tiny-MambaIR", v1)]


class Writer:
    """Writes pictures into one folder and remembers what each file shows."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.index: list[dict[str, str]] = []
        self.static_ok: bool | None = None  # does fig.write_image work here?
        self.static_error = ""

    def image(self, name: str, arr: np.ndarray, about: str, zoom: int = 1) -> None:
        """Save a uint8 (H, W, 3) array as PNG, enlarged ``zoom`` times (nearest)."""
        if zoom > 1:
            arr = np.repeat(np.repeat(arr, zoom, axis=0), zoom, axis=1)
        path = self.out / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(arr)).save(path)
        self.index.append({"file": path.name, "about": about})

    def figure(self, name: str, fig: go.Figure, about: str, width: int = 1000, height: int = 600) -> None:
        """Save a plotly figure as PNG (kaleido) or, failing that, HTML."""
        if self.static_ok is not False:
            try:
                fig.write_image(self.out / f"{name}.png", width=width, height=height)
                self.static_ok = True
                self.index.append({"file": f"{name}.png", "about": about})
                return
            except Exception as exc:  # kaleido or a browser missing: fall back to HTML for all figures
                self.static_ok = False
                lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                self.static_error = f"{type(exc).__name__}: {lines[0] if lines else ''}"
                print(f"static export unavailable ({self.static_error}); writing HTML", file=sys.stderr)
        fig.write_html(self.out / f"{name}.html", include_plotlyjs="directory")
        self.index.append({"file": f"{name}.html", "about": about})


def _doc(fn: Any) -> str:
    """The first paragraph of a function's docstring, on one line (the 'what it teaches' sentence)."""
    return " ".join((fn.__doc__ or "").split("\n\n")[0].split())


def render_attention(w: Writer, where: str, r: dict, image: np.ndarray, pixel: tuple[int, int]) -> None:
    """The implicit attention of one query pixel in one layer, as a picture and as a figure."""
    amap = attention.implicit_attention_map(r, pixel, image.shape[:2])
    pic = attention.attention_image(amap, image, pixel)
    w.image(f"{where}_attention", pic, _doc(attention.attention_image))
    fig = attention.attention_figure(amap, image, pixel, title=f"Implicit attention, {where}")
    w.figure(f"{where}_attention_figure", fig, _doc(attention.implicit_attention_map), width=1100, height=500)


def render_v2(w: Writer, tag: str, records: list[dict], image: np.ndarray, layer: int,
              pixel: tuple[int, int]) -> None:
    """All MambaIRv2 pictures for one captured forward pass."""
    hw = image.shape[:2]
    r = records[layer]
    where = f"{tag}_L{r['stage']}.{r['block']}"
    w.image(f"{where}_labels", sgn.label_map(r, hw), _doc(sgn.label_map), zoom=4)
    w.image(f"{where}_overlay", sgn.label_overlay(image, r, 0.5), _doc(sgn.label_overlay), zoom=4)
    w.figure(f"{where}_label_figure", sgn.label_map_figure(r, image, title=f"SGN labels, {tag}"),
             _doc(sgn.label_map_figure))
    w.image(f"{where}_ribbon", sequence.sequence_ribbon(r, image, bar=2, zoom=4),
            _doc(sequence.sequence_ribbon))
    w.figure(f"{where}_sequence_distance", sequence.sequence_distance_figure(r, hw),
             _doc(sequence.sequence_distance_figure), width=1200, height=500)
    w.figure(f"{where}_routing", routing.routing_histogram(r, hw), _doc(routing.routing_histogram))
    w.figure(f"{tag}_usage", routing.usage_heatmap(records, hw), _doc(routing.usage_heatmap))
    for method in ("pca", "tsne"):
        w.figure(f"{where}_prompts_{method}", prompts.prompt_projection(r, method, hw),
                 _doc(prompts.prompt_projection))
    w.figure(f"{where}_prompt_similarity", prompts.prompt_similarity(r, hw), _doc(prompts.prompt_similarity),
             width=800, height=750)
    w.figure(f"{where}_ase", ase.ase_figure(r, image), _doc(ase.ase_figure), width=1100, height=500)
    render_attention(w, where, r, image, pixel)


def render_v1(w: Writer, tag: str, records: list[dict], image: np.ndarray, layer: int,
              pixel: tuple[int, int]) -> None:
    """MambaIR pictures: the four raster scans and the implicit attention of their sum."""
    hw = image.shape[:2]
    r = records[layer]
    where = f"{tag}_L{r['stage']}.{r['block']}"
    w.figure(f"{tag}_scan_orders", sequence.scan_orders_figure(r, hw), _doc(sequence.scan_orders_figure),
             width=900, height=850)
    render_attention(w, where, r, image, pixel)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for the pictures")
    ap.add_argument("--image", help="input image (default: skimage astronaut)")
    ap.add_argument("--size", type=int, default=48, help="resize the input to this size (longer side)")
    ap.add_argument("--ckpt", action="append", default=[], help="checkpoint path (repeatable)")
    ap.add_argument("--layer", type=int, default=-1, help="which ASSM/SS2D layer the per-layer pictures show")
    ap.add_argument("--pixel", default=None, help="implicit-attention query 'row,col' (default: centre)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from model.capture import capture
    from model.scan import last_backend

    image = load_image(args.image, args.size) if args.image else default_image(args.size)
    h, wd = image.shape[:2]
    pixel = tuple(int(v) for v in args.pixel.split(",")) if args.pixel else (h // 2, wd // 2)
    if args.ckpt:
        from model import load_checkpoint

        models = [(Path(p).stem, load_checkpoint(p)) for p in args.ckpt]
    else:
        models = tiny_models(args.seed)

    w = Writer(Path(args.out))
    w.image("input", image, "the input image (LR)", zoom=4)
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]  # (H,W,3) -> (1,3,H,W)
    runs = []
    for tag, net in models:
        if getattr(net.config, "in_chans", 3) == 1:
            xin = x.mean(dim=1, keepdim=True)  # grayscale models (JPEG CAR) take one channel
        else:
            xin = x
        t0 = time.time()
        with torch.no_grad(), capture(net) as rec:
            y = net(xin)
        secs = time.time() - t0
        out = (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        w.image(f"{tag}_output", arrays.as_rgb_uint8(out), f"output of {tag}", zoom=2)
        if rec.assm:
            render_v2(w, tag, rec.assm, image, args.layer, pixel)
        if rec.ss2d:
            render_v1(w, tag, rec.ss2d, image, args.layer, pixel)
        runs.append({"model": tag, "arch": net.config.arch, "config": net.config.to_dict(),
                     "random_weights": not args.ckpt, "forward_s": round(secs, 2),
                     "scan_backend": last_backend(), "assm_layers": len(rec.assm),
                     "ss2d_layers": len(rec.ss2d)})
        print(f"{tag}: forward {secs:.1f} s ({last_backend()} scan), "
              f"{len(rec.assm)} ASSM / {len(rec.ss2d)} SS2D layers recorded")

    meta = {"image": args.image or "skimage.data.astronaut", "image_hw": [h, wd],
            "query_pixel": list(pixel), "runs": runs, "static_export": bool(w.static_ok),
            "static_export_error": w.static_error,
            "files": w.index}
    (w.out / "index.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {len(w.index)} pictures to {w.out} ({'PNG' if w.static_ok else 'HTML'} figures)")
    return 0


if __name__ == "__main__":
    from model.cli import run_cli

    run_cli(main)
