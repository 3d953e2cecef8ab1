"""PSNR/SSIM of a checkpoint on a folder of images, next to the classical baseline and the paper.

    python -m model.evaluation.evaluate weights/mambairv2_lightSR_x4.pth --data data/photos --split test \\
        [--scale 4] [--update-manifest] [--json out.json]
    python -m model.evaluation.evaluate mambairv2_lightSR_x4.pth --data benchmarks/Urban100   # HR/ + LRbicx4/
    python -m model.evaluation.evaluate mambairv2_lightSR_x4.pth --data my_photos/            # plain images

The folder is a prepared photo set (``split.json`` from ``python -m model.training.data prepare``; ``--split``
picks its part), or any folder (``model.evaluation.benchsets.find_pairs``): plain images, or the benchmarks'
HR + LR layouts (``HR/`` + ``LR_bicubic/X4/``, ``GTmod12/`` + ``LRbicx4/``, ``*_HR``/``*_LR`` files),
where the given LR is used as is and the HR is cropped to LR x scale. When the folder is a known
benchmark (its name: Set5, Urban100, ...) and the paper's number for the checkpoint's preset on it is
known (``model.evaluation.benchsets.PAPER``, from the official README), it is printed beside the mean.

SR (BasicSR conventions): HR mod-cropped to the scale, LR = MATLAB bicubic rounded to uint8,
output clamped and rounded to uint8, PSNR/SSIM on Y (BT.601) with crop_border = scale; the
baseline is MATLAB bicubic upscaling. Denoising (``--sigma``, default 15): Gaussian noise with
a fixed seed per image, metrics on RGB, crop 0, baseline = the noisy input. JPEG (``--quality``,
default 10): grayscale (full-range luma) JPEG, metrics on the gray image, baseline = the JPEG.
Inputs larger than ``--tile`` px go through ``model.tiling.tiled_forward`` when available.

MambaIRv2 models also get their router numbers per ASSM layer (``model.analysis.router_stats``: mean
largest route probability, x T, prompts used, dead prompts, perplexity), pooled over the centre
``--router-crop`` px crop of every input (one extra forward per image with argmax routing, small
enough to record), printed as a table and stored in the manifest with ``--update-manifest``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.evaluation.benchsets import PAPER_SOURCE, Pair, dataset_name, find_pairs, paper_result
from model.evaluation.degrade import (
    add_gaussian_noise,
    bicubic_downscale,
    bicubic_upscale,
    jpeg_compress,
    modcrop,
    to_uint8,
)
from model.evaluation.metrics import psnr, ssim

__all__ = ["evaluate", "degrade_for", "run_net", "router_table", "images_to_test", "paired_sr", "main"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # full-range luma, as a grayscale image file


def degrade_for(hr: np.ndarray, task: str, scale: int, sigma: float, quality: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ground truth, network input, baseline output) float arrays for one image and task."""
    if task == "sr":
        gt = modcrop(hr, scale)
        lr = to_uint8(bicubic_downscale(gt, scale)).astype(np.float32) / 255.0
        return gt, lr, bicubic_upscale(lr, scale)
    if task == "denoise":
        noisy = add_gaussian_noise(hr, sigma, seed=seed)
        return hr, noisy, np.clip(noisy, 0, 1)
    gray = (hr @ _LUMA)[..., None]  # (H, W, 3) @ (3,) -> (H, W) -> (H, W, 1)
    gray = to_uint8(gray).astype(np.float32) / 255.0
    jpg = jpeg_compress(gray, quality)
    return gray, jpg, jpg


def run_net(net: nn.Module, img: np.ndarray, tile: int = 256, device: str | torch.device = "cpu"
            ) -> np.ndarray:
    """Network output (H', W', C) float in [0, 1] for a float image (H, W, C); tiled when large."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()  # (1, C, H, W)
    with torch.no_grad():
        if max(img.shape[:2]) > tile:
            try:
                from model.tiling import tiled_forward
            except ImportError:  # tiling not available: run the whole image
                tiled_forward = None
            overlap = min(16, tile // 4)  # the tiler needs overlap < tile
            y = (tiled_forward(net, x, tile=tile, overlap=overlap) if tiled_forward is not None
                 else net(x.to(device)).cpu())
        else:
            y = net(x.to(device)).cpu()
    return y[0].clamp(0, 1).permute(1, 2, 0).numpy()  # (1, C, H', W') -> (H', W', C)


def _centre(img: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` crop (or less, where the image is smaller) of an (H, W, C) image."""
    h, w = min(size, img.shape[0]), min(size, img.shape[1])
    y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[y:y + h, x:x + w]


def router_table(router: dict[str, Any]) -> str:
    """The per-layer router numbers of ``evaluate``'s result as a plain-text table."""
    T = router["num_prompts"]
    lines = [f"router per ASSM layer (T = {T}; mean largest route probability: 1/T = uniform, "
             f"< 2/T = not trained, issue 13's target >= 4/T)",
             f"{'layer':>6} {'mean max p':>10} {'x T':>6} {'used':>5} {'dead':>5} {'perplexity':>10}"]
    for r in router["layers"]:
        lines.append(f"{r['layer']:>6} {r['mean_max_prob']:10.4f} {r['mean_max_prob_xT']:6.2f} "
                     f"{r['used']:5d} {r['dead']:5d} {r['perplexity']:10.2f}")
    n = len(router["layers"])
    lines.append(f"layers with mean max prob >= 4/T: {router['layers_at_4_over_T']} of {n}")
    if router["untrained"]:
        from model.analysis.router_stats import UNTRAINED_MESSAGE

        lines.append(UNTRAINED_MESSAGE)
    return "\n".join(lines)


def images_to_test(data: str | os.PathLike, split: str, scale: int) -> tuple[list[Pair], str]:
    """The images to test on: a prepared folder's split (``split.json``), else any folder's layout."""
    from model.training.data import list_images

    if (Path(data) / "split.json").exists():
        return [Pair(p.name, p, None) for p in list_images(data, split)], f"prepared photo set, {split} split"
    return find_pairs(data, scale)


def paired_sr(hr: np.ndarray, lr: np.ndarray, scale: int, name: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ground truth, input, bicubic baseline) from a given LR: the HR cropped to LR x scale."""
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if hr.shape[0] < h or hr.shape[1] < w:
        raise ValueError(f"{name}: HR {hr.shape[1]}x{hr.shape[0]} is smaller than LR x{scale} ({w}x{h})")
    return np.ascontiguousarray(hr[:h, :w]), lr, bicubic_upscale(lr, scale)


def evaluate(ckpt: str | os.PathLike, data: str | os.PathLike = "data/photos", split: str = "test", *,
             scale: int | None = None, sigma: float = 15.0, quality: int = 10, tile: int = 256,
             device: str = "cpu", limit: int | None = None, verbose: bool = True,
             router_crop: int = 64) -> dict[str, Any]:
    """Per-image and mean metrics of the checkpoint and of the baseline, the paper's number where known,
    and for MambaIRv2 the router numbers per layer (``router``) over the centre ``router_crop`` crops."""
    from model import load_checkpoint
    from model.analysis.router_stats import pool_records, records_stats, router_records, summary
    from model.hub.weights import preset_of, task_of
    from model.training.data import load_image

    net = load_checkpoint(ckpt, device=device)
    cfg = net.config
    task = task_of(cfg)
    if scale is not None and task == "sr" and scale != cfg.upscale:
        raise ValueError(f"{Path(ckpt).name} is a x{cfg.upscale} model, not x{scale}")
    s = int(cfg.upscale)
    y_only, crop = (True, s) if task == "sr" else (False, 0)
    pairs, layout = images_to_test(data, split, s)
    if verbose:
        print(f"{data}: {layout}, {len(pairs[:limit])} images")
    rows, runs = [], []
    for pair in pairs[:limit]:
        path = pair.hr
        if task == "sr" and pair.lr is not None:
            gt, inp, base = paired_sr(load_image(path), load_image(pair.lr), s, path.name)
        else:
            seed = zlib.crc32(path.name.encode())  # a fixed noise per image, whatever the order
            gt, inp, base = degrade_for(load_image(path), task, s, sigma, quality, seed)
        if cfg.in_chans == 1 and inp.shape[2] != 1:
            raise ValueError("a one-channel model needs the jpeg task")
        out = run_net(net, inp, tile, device)
        crop_in = torch.from_numpy(np.ascontiguousarray(_centre(inp, router_crop))).permute(2, 0, 1)[None]
        records = router_records(net, crop_in.to(device))  # (1, C, h, w) centre crop; [] for MambaIR
        if records:
            runs.append(records)
        g8, o8, b8 = to_uint8(gt), to_uint8(out), to_uint8(base)
        row = {"file": path.name, "size": [int(gt.shape[1]), int(gt.shape[0])],
               "psnr": psnr(o8, g8, crop, y_only), "ssim": ssim(o8, g8, crop, y_only),
               "baseline_psnr": psnr(b8, g8, crop, y_only), "baseline_ssim": ssim(b8, g8, crop, y_only)}
        rows.append(row)
        if verbose:
            print(f"{row['file']:<24} {row['psnr']:7.2f} dB {row['ssim']:.4f}   "
                  f"baseline {row['baseline_psnr']:7.2f} dB {row['baseline_ssim']:.4f}")
    if not rows:
        raise ValueError(f"no images to test in {data} ({layout})")
    keys = ("psnr", "ssim", "baseline_psnr", "baseline_ssim")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    lr_note = "given LR" if any(p.lr is not None for p in pairs) else "MATLAB bicubic LR"
    setting = {"sr": f"x{s}, Y channel, crop {crop}, {lr_note}",
               "denoise": f"sigma {sigma:g}, RGB", "jpeg": f"quality {quality}, gray"}[task]
    baseline = {"sr": "bicubic", "denoise": "noisy input", "jpeg": "JPEG input"}[task]
    preset, dataset = preset_of(cfg), dataset_name(data)
    level = {"sr": None, "denoise": sigma, "jpeg": quality}[task]
    known = paper_result(preset, dataset, level)
    paper = None if known is None else {"psnr": known[0], "ssim": known[1], "source": PAPER_SOURCE}
    result = {"checkpoint": str(ckpt), "arch": cfg.arch, "preset": preset, "task": task, "scale": s,
              "data": str(data), "dataset": dataset, "layout": layout, "split": split, "n_images": len(rows),
              "setting": setting, "baseline": baseline, "date": datetime.date.today().isoformat(), **mean,
              "paper": paper, "per_image": rows}
    if runs:
        result["router"] = {**summary(records_stats(pool_records(runs))), "crop": router_crop}
    if verbose:
        print(f"{'mean':<24} {mean['psnr']:7.2f} dB {mean['ssim']:.4f}   "
              f"{baseline} {mean['baseline_psnr']:7.2f} dB {mean['baseline_ssim']:.4f}   ({setting})")
        print(f"gain over {baseline}: {mean['psnr'] - mean['baseline_psnr']:+.2f} dB PSNR, "
              f"{mean['ssim'] - mean['baseline_ssim']:+.4f} SSIM")
        if paper is not None:
            ss = f" {paper['ssim']:.4f}" if paper["ssim"] is not None else ""
            print(f"{'paper':<24} {paper['psnr']:7.2f} dB{ss}   ({preset} on {dataset}; {PAPER_SOURCE})")
        else:
            print(f"paper: no published number known here for {preset or 'this (non-preset) model'} "
                  f"on {dataset or 'this folder'}")
        if "router" in result:
            print(router_table(result["router"]))
    return result


def manifest_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The summary stored in a manifest entry under ``metrics[<data name>-<split>]``."""
    keys = ("n_images", "setting", "baseline", "psnr", "ssim", "baseline_psnr", "baseline_ssim", "date")
    out = {k: (round(result[k], 4) if isinstance(result[k], float) else result[k]) for k in keys}
    out["gain_psnr"] = round(result["psnr"] - result["baseline_psnr"], 4)
    if "router" in result:
        out["router"] = result["router"]
    return out


def update_manifest(ckpt: str | os.PathLike, result: dict[str, Any], manifest: str | os.PathLike,
                    source: str = "trained here") -> dict[str, Any]:
    """Write the metrics (and training facts found beside the checkpoint) into the manifest entry."""
    from model.hub.weights import load_manifest, manifest_entry, sha256_file, upsert_manifest

    ckpt = Path(ckpt)
    digest = sha256_file(ckpt)
    old = next((e for e in load_manifest(manifest) if e.get("sha256") == digest or e["file"] == ckpt.name),
               None)
    info = ckpt.parent / "train_info.json"
    training = json.loads(info.read_text()) if info.exists() else None
    entry = manifest_entry(ckpt, source=old["source"] if old else source, training=training)
    name = f"{Path(result['data']).name}-{result['split']}"
    entry["metrics"] = {name: manifest_metrics(result)}
    upsert_manifest(entry, manifest)
    return entry


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m model.evaluation.evaluate",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default="data/photos")
    ap.add_argument("--split", default="test", choices=("test", "train", "all"),
                    help="part of a prepared photo set (folders with split.json only)")
    ap.add_argument("--scale", type=int, default=None, help="check that the model has this scale")
    ap.add_argument("--sigma", type=float, default=15.0, help="noise level for denoising models")
    ap.add_argument("--quality", type=int, default=10, help="JPEG quality for JPEG models")
    ap.add_argument("--tile", type=int, default=256, help="inputs larger than this run tiled")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--router-crop", type=int, default=64,
                    help="MambaIRv2: router numbers over the centre crop of this size of each input")
    ap.add_argument("--json", default=None, help="also write the full result here")
    ap.add_argument("--update-manifest", action="store_true", help="store the means in the manifest")
    ap.add_argument("--manifest", default="weights/manifest.json")
    ap.add_argument("--source", default="trained here", choices=("trained here", "official", "user file"),
                    help="source for a new manifest entry")
    a = ap.parse_args(argv)
    result = evaluate(a.checkpoint, a.data, a.split, scale=a.scale, sigma=a.sigma, quality=a.quality,
                      tile=a.tile, device=a.device, limit=a.limit, router_crop=a.router_crop)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    if a.update_manifest:
        update_manifest(a.checkpoint, result, a.manifest, a.source)
        print(f"updated {a.manifest}")


if __name__ == "__main__":
    from model.cli import run_cli

    run_cli(main)
