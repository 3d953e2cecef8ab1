"""What every tab's handlers share: input preparation, running a network, errors, scores.

Images travel as numpy uint8 (H, W, 3) arrays; inside, as float (H, W, C) in [0, 1].
H, W = LR size; s = scale; C = channels (3, or 1 for JPEG models).
User mistakes raise ``gr.Error`` (``AppError`` in ``gradio_client``).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import torch

from model.evaluation.degrade import to_uint8
from model.threads import choose_threads, cpu_threads

from .. import cache, timing
from ..io import MAX_SIDE, ImageError, check_size, load_image
from ..region import LARGE_REGION, REGION_SIDE, Plan, apply_plan, plan_input

log = logging.getLogger(__name__)

try:  # On Hugging Face ZeroGPU, spaces.GPU attaches a GPU for the call; elsewhere a no-op.
    import spaces

    gpu = spaces.GPU(duration=120)
except Exception:  # spaces not installed (local runs, tests)
    def gpu(fn):  # type: ignore[no-redef]
        """No-op stand-in for ``spaces.GPU``."""
        return fn

MODE_AS_IS = "Restore as is"
MODE_GT = "Treat as ground truth: degrade, restore, score"
MODES = [MODE_AS_IS, MODE_GT]
ROUTINGS = ["argmax", "gumbel"]
PROMPT_ORDERS = ["official", "aligned"]
DEFAULT_TILE = 256
RUNTIME_TORCH = "PyTorch"
RUNTIME_ONNX = "onnxruntime"
RUNTIMES = [RUNTIME_TORCH, RUNTIME_ONNX]
NOISE_SEED = 0         # fixed noise so that restore, internals and LAM see the same input
INTERNALS_MAX = 96     # LR pixels per side the Internals and Evidence tabs look at (centre crop)


def explain_errors(fn: Any) -> Any:
    """Turn unexpected failures of a handler into ``gr.Error`` messages (logged with the traceback).

    Without this the user sees only "Error" (Gradio hides messages of other exceptions).
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except torch.OutOfMemoryError as exc:
            raise gr.Error("out of memory: lower the tile size in Settings, or use a smaller image",
                           title="Out of memory") from exc
        except Exception as exc:
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(f"{type(exc).__name__}: {exc}", title="The model run failed") from exc
    return wrapper


def _user_error(exc: Exception) -> gr.Error:
    return gr.Error(str(exc), title="Cannot use this image")


def specs_for(task: str | None) -> dict[str, cache.ModelSpec]:
    tasks = cache.tasks()
    if not task:
        task = next(iter(tasks))
    if task not in tasks:
        raise gr.Error(f"unknown task {task!r}; choose one of: {', '.join(tasks)}")
    return tasks[task]


def _kind_scale_level(specs: dict[str, cache.ModelSpec]) -> tuple[str, int, int]:
    sp = next(iter(specs.values()))
    return sp.kind, sp.scale, sp.level


# ---------------------------------------------------------------------------
# Inputs: the LR image the networks see, and the ground truth in scoring mode
# ---------------------------------------------------------------------------


@dataclass
class Prepared:
    """The network input (float (H, W, 3) in [0, 1]), the ground truth if any, and the baseline."""

    lr: np.ndarray
    gt: np.ndarray | None
    baseline: np.ndarray      # bicubic upscaling (SR) or the degraded input itself (denoise/JPEG)
    baseline_name: str
    kind: str
    scale: int
    level: int
    plan: Plan                # which part of the photo, at which size, the networks see


def _gray3(img: np.ndarray) -> np.ndarray:
    """Full-range luma (BT.601 weights) copied to 3 channels: what a grayscale JPEG model sees."""
    y = img[..., :3] @ np.array([0.299, 0.587, 0.114])  # (H, W, 3) -> (H, W)
    return np.repeat(y[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)


def plan_for(photo_hw: tuple[int, int], task: str | None, mode: str = MODE_AS_IS, region: str | None = "",
             large: str = LARGE_REGION, photo: np.ndarray | None = None) -> Plan:
    """``app.region.plan_input`` for a task and mode: in ground-truth mode SR networks see 1/scale; an
    empty ``region`` of a large ``photo`` (its pixels) is its most detailed window."""
    _, scale, _ = _kind_scale_level(specs_for(task))
    factor = 1.0 / scale if mode == MODE_GT else 1.0
    side = REGION_SIDE if cache.device().type == "cpu" else MAX_SIDE  # a GPU restores 1024^2 in seconds
    try:
        return plan_input(photo_hw, region, large, factor=factor, side=side, photo=photo)
    except ImageError as exc:
        raise _user_error(exc) from exc


def prepare(image: Any, task: str | None, mode: str = MODE_AS_IS, region: str | None = "",
            large: str = LARGE_REGION) -> Prepared:
    """Load/check the image and make the network input for ``task`` in ``mode``.

    A photo whose network input would exceed ``MAX_SIDE`` per side is cut to ``region`` (default:
    its most detailed window) or, with ``large`` = downscale to fit, resized (``app.region``).
    """
    from model.evaluation import degrade

    try:
        photo = load_image(image, max_side=None)
    except ImageError as exc:
        raise _user_error(exc) from exc
    specs = specs_for(task)
    kind, scale, level = _kind_scale_level(specs)
    plan = plan_for(photo.shape[:2], task, mode, region, large, photo=photo)
    rgb = apply_plan(photo, plan)
    img = rgb.astype(np.float64) / 255.0
    if kind == "car":
        img = _gray3(img)  # the official JPEG models are grayscale
    if mode == MODE_GT:
        gt = degrade.modcrop(img, scale)
        if kind == "sr":
            if min(gt.shape[:2]) < 8 * scale:
                raise gr.Error(f"image too small to downscale by {scale}")
            lr = degrade.bicubic_downscale(gt, scale)
        elif kind == "dn":
            lr = degrade.add_gaussian_noise(gt, level, seed=NOISE_SEED).astype(np.float64)
        else:
            lr = degrade.jpeg_compress(gt, level).astype(np.float64)
    else:
        gt, lr = None, img
    try:
        check_size(lr, MAX_SIDE)  # holds by the plan; a plain check that the limit is kept
    except ImageError as exc:
        raise _user_error(exc) from exc
    if kind == "sr":
        baseline, name = degrade.bicubic_upscale(lr, scale), "bicubic"
    else:
        baseline, name = np.clip(lr, 0.0, 1.0), "input" if mode == MODE_AS_IS else "degraded input"
    return Prepared(lr=lr, gt=gt, baseline=baseline, baseline_name=name, kind=kind, scale=scale,
                    level=level, plan=plan)


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` part of an (H, W, ...) image (all of it along a shorter side)."""
    H, W = img.shape[:2]
    r0, c0 = max(0, (H - size) // 2), max(0, (W - size) // 2)
    return img[r0:r0 + size, c0:c0 + size]


def layer_record(records: list[dict], layer: str) -> dict:
    """The record of 'stage.block' (the nearest earlier one when that layer does not exist)."""
    try:
        st, bl = (int(v) for v in str(layer).split("."))
    except ValueError as exc:
        raise gr.Error(f"layer must look like 'stage.block', e.g. '0.0'; got {layer!r}") from exc
    best = records[0]
    for r in records:
        if (int(r["stage"]), int(r["block"])) <= (st, bl):
            best = r
    return best


def checkpoint_items(files: Any, folder: str | None) -> list[str]:
    """Checkpoint paths from uploaded files and/or a folder on the machine running the app."""
    items = []
    for f in files or []:
        items.append(getattr(f, "path", None) or getattr(f, "name", None) or str(f))
    if folder and str(folder).strip():
        path = os.path.expanduser(str(folder).strip())
        if not os.path.isdir(path):
            raise gr.Error(f"{path} is not a folder on the machine that runs the app")
        items.append(path)
    if not items:
        raise gr.Error("upload several checkpoints of one run (e.g. net_g_1000.pth, net_g_2000.pth, ...) "
                       "or give the folder that holds them")
    return items


# ---------------------------------------------------------------------------
# Running a network
# ---------------------------------------------------------------------------


def apply_options(net: torch.nn.Module, family: str, routing: str = "argmax", seed: int = 0,
                  prompt_order: str = "official") -> None:
    """Routing / prompt-order settings for MambaIRv2 networks (MambaIR has none)."""
    if family != "MambaIRv2":
        return
    from model.archs import set_options

    gen = None
    if routing == "gumbel":
        gen = torch.Generator(device=next(net.parameters()).device.type).manual_seed(int(seed))
    set_options(net, routing=routing, generator=gen, prompt_order=prompt_order)


def default_runtime() -> str:
    """The restore runtime asked for by ``MAMBAIR_RUNTIME`` (``onnx``/``onnxruntime``; else PyTorch)."""
    import os

    name = os.environ.get("MAMBAIR_RUNTIME", "").strip().lower()
    if name in ("onnx", "onnxruntime"):
        return RUNTIME_ONNX
    if name not in ("", "torch", "pytorch"):
        log.warning("MAMBAIR_RUNTIME=%r is not onnx or torch; restoring with PyTorch", name)
    return RUNTIME_TORCH


def in_chans(net: torch.nn.Module) -> int:
    cfg = getattr(net, "config", None)
    return int(getattr(cfg, "in_chans", 3))


def to_tensor(img: np.ndarray, in_chans: int, device: torch.device) -> torch.Tensor:
    """(H, W, 3) float image -> (1, in_chans, H, W) float32 tensor."""
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]  # (1,3,H,W)
    if in_chans == 1:
        x = x[:, :1]  # grayscale models: the three channels are equal (see _gray3)
    return x.to(device)


def to_image(y: torch.Tensor) -> np.ndarray:
    """(1, C, h, w) network output -> (h, w, 3) float64 in [0, 1]."""
    out = y[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float64)  # (h,w,C)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)  # (h, w, 1) -> (h, w, 3)
    return out


def progress_fn(progress: Any, desc: str) -> Any:
    """Adapter from a (done, total) callback to ``gr.Progress``."""
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress((int(done), int(total)), desc=desc)
    return report


def tile_overlap(tile: int) -> int:
    """Input pixels two neighbouring tiles share (what ``run_network`` blends across)."""
    return max(8, int(tile) // 16)


def run_network(net: torch.nn.Module, lr: np.ndarray, tile: int = DEFAULT_TILE,
                progress: Any = None, threads: int | None = None) -> np.ndarray:
    """Restore ``lr`` (H, W, 3 float) with ``net``; tiles inputs larger than ``tile`` pixels; on
    ``threads`` CPU threads (None: ``model.threads``' choice now)."""
    param = next(net.parameters(), None)  # None for an onnxruntime model (model.export.runtime.OnnxNet)
    dev = param.device if param is not None else torch.device("cpu")
    x = to_tensor(lr, in_chans(net), dev)
    h, w = lr.shape[:2]
    with torch.no_grad(), cpu_threads(threads, device=dev):  # every core if idle, one beside another job
        if tile and max(h, w) > int(tile):
            from model.tiling import tiled_forward

            y = tiled_forward(net, x, tile=int(tile), overlap=tile_overlap(int(tile)),
                              progress=progress_fn(progress, "tiles"))
        else:
            y = net(x)
    return to_image(y)


def estimate_model(spec: cache.ModelSpec, net_hw: tuple[int, int], tile: int = DEFAULT_TILE,
                   threads: int | None = None) -> float:
    """Predicted seconds of ``run_network`` with ``spec``'s model on a ``net_hw`` input on ``threads``
    CPU threads (None: as calibrated), from its speed measured on this machine (``app.timing``; the
    first call loads the model and measures it)."""
    net = cache.get_model(spec)
    return timing.estimate(spec.key, net, net_hw, int(tile or 0), tile_overlap(int(tile or 0)), threads)


def run_threads(specs: dict[str, cache.ModelSpec]) -> int | None:
    """Time ``specs``' models if not yet done, then the CPU thread count a run would use now
    (``model.threads``: every core if idle, one beside another job); None off the CPU."""
    for sp in specs.values():
        if not timing.is_calibrated(sp.key):
            estimate_model(sp, (REGION_SIDE, REGION_SIDE))  # the first estimate calibrates
    return choose_threads() if cache.device().type == "cpu" else None


def estimate_seconds(specs: dict[str, cache.ModelSpec], net_hw: tuple[int, int],
                     tile: int = DEFAULT_TILE) -> float | None:
    """Predicted seconds to restore a ``net_hw`` input with every model of a task (None when a model
    cannot be loaded or run: the restore itself then says why)."""
    try:
        n = run_threads(specs)
        return sum(estimate_model(sp, net_hw, tile, n) for sp in specs.values())
    except Exception:
        log.exception("no time estimate for %s", [sp.key for sp in specs.values()])
        return None


def record_speed(spec: cache.ModelSpec, net_hw: tuple[int, int], tile: int, seconds: float,
                 threads: int | None = None) -> None:
    """A finished ``run_network`` on ``threads`` threads: the next estimates for ``spec`` follow its speed."""
    net = cache.get_model(spec)
    timing.record_run(spec.key, net, net_hw, int(tile or 0), tile_overlap(int(tile or 0)), seconds, threads)


def warm_up(task: str | None = None) -> None:
    """Load the models of ``task`` (default: the first) and measure their speed, so that the first
    estimate is ready; meant for a background thread at app start. Failures are only logged."""
    try:
        for sp in specs_for(task).values():
            t0 = time.perf_counter()
            estimate_model(sp, (REGION_SIDE, REGION_SIDE))
            pts = timing.points(sp.key)
            log.info("warm-up: %s loaded and timed in %.1f s; per forward: %s", sp.key,
                     time.perf_counter() - t0,
                     ", ".join(f"{p} px {t:.2f} s ({t / p * 1e6:.0f} us/px)" for p, t in sorted(pts.items())))
    except Exception:
        log.exception("warm-up of task %r failed", task)


def backend_name() -> str:
    """Name of the scan backend the last forward pass used ("?" before any)."""
    try:
        from model.scan import last_backend

        return str(last_backend() or "?")
    except ImportError:
        return "?"


def backend_line(device_type: str) -> str:
    """``model.scan.backend_report``: which scan runs on ``device_type`` and, after a fallback, why."""
    try:
        from model.scan import backend_report

        return backend_report(device_type)
    except Exception as exc:  # the report is information; a broken import must not stop a restore
        return f"unknown ({type(exc).__name__}: {exc})"


def score_pair(pred: np.ndarray, gt: np.ndarray, kind: str, scale: int) -> tuple[float, float]:
    """PSNR/SSIM with BasicSR conventions: SR on Y with crop = scale; denoise RGB; JPEG grayscale."""
    from model.evaluation.metrics import psnr, ssim

    a, b = to_uint8(pred), to_uint8(gt)
    if kind == "sr":
        kw = dict(crop_border=scale, test_y_channel=True)
    elif kind == "car":
        a, b = a[..., :1], b[..., :1]  # the three channels are equal
        kw = dict(crop_border=0, test_y_channel=False)
    else:
        kw = dict(crop_border=0, test_y_channel=False)
    return float(psnr(a, b, **kw)), float(ssim(a, b, **kw))


def provenance(spec: cache.ModelSpec) -> str:
    if spec.is_random:
        return f"**{cache.RANDOM_NOTE}** (preset `{spec.preset}`)"
    name = spec.path.rsplit("/", 1)[-1] if spec.path else "?"
    return f"{spec.source}: `{name}`"


def trained_for(spec: cache.ModelSpec) -> str:
    if spec.kind == "sr":
        return f"bicubic-downscaled x{spec.scale} inputs (blurs real camera noise/JPEG)"
    if spec.kind == "dn":
        return f"Gaussian noise σ={spec.level}"
    return f"grayscale JPEG at quality {spec.level}"
