"""Event handlers of the app: thin adapters from UI values to ``model`` and ``viz`` calls.

Every handler is a plain function (testable without a browser, callable through
``gradio_client`` by its ``api_name``). Images travel as numpy uint8 (H, W, 3) arrays; inside,
as float (H, W, C) in [0, 1]. H, W = LR size; s = scale; C = channels (3, or 1 for JPEG models).
User mistakes raise ``gr.Error`` (``AppError`` in ``gradio_client``).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import torch

from model.degrade import to_uint8

from . import cache
from .io import ImageError, load_image

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
LAM_WINDOW = 16        # HR pixels per side of the attributed output window (LAM_Demo)
# LR pixels per side of the crop LAM runs on. The paper uses 256 HR = 64 LR at x4; 48 keeps a
# LAM step of both light models under ~10 s on a busy 2-core CPU (64: ~14 s per step and model).
LAM_CONTEXT = 48
LAM_DEFAULT_STEPS = 8
INTERNALS_MAX = 96     # LR pixels per side the internals tab looks at (centre crop)
NOISE_SEED = 0         # fixed noise so that restore, internals and LAM see the same input


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


def _specs(task: str | None) -> dict[str, cache.ModelSpec]:
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


def _gray3(img: np.ndarray) -> np.ndarray:
    """Full-range luma (BT.601 weights) copied to 3 channels: what a grayscale JPEG model sees."""
    y = img[..., :3] @ np.array([0.299, 0.587, 0.114])  # (H, W, 3) -> (H, W)
    return np.repeat(y[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)


def prepare(image: Any, task: str | None, mode: str = MODE_AS_IS) -> Prepared:
    """Load/check the image and make the network input for ``task`` in ``mode``."""
    from model import degrade

    try:
        rgb = load_image(image)
    except ImageError as exc:
        raise _user_error(exc) from exc
    specs = _specs(task)
    kind, scale, level = _kind_scale_level(specs)
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
    if kind == "sr":
        baseline, name = degrade.bicubic_upscale(lr, scale), "bicubic"
    else:
        baseline, name = np.clip(lr, 0.0, 1.0), "input" if mode == MODE_AS_IS else "degraded input"
    return Prepared(lr=lr, gt=gt, baseline=baseline, baseline_name=name, kind=kind, scale=scale,
                    level=level)


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


def _in_chans(net: torch.nn.Module) -> int:
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


def _progress_fn(progress: Any, desc: str) -> Any:
    """Adapter from a (done, total) callback to ``gr.Progress``."""
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress((int(done), int(total)), desc=desc)
    return report


def run_network(net: torch.nn.Module, lr: np.ndarray, tile: int = DEFAULT_TILE,
                progress: Any = None) -> np.ndarray:
    """Restore ``lr`` (H, W, 3 float) with ``net``; tiles inputs larger than ``tile`` pixels."""
    dev = next(net.parameters()).device
    x = to_tensor(lr, _in_chans(net), dev)
    h, w = lr.shape[:2]
    with torch.no_grad():
        if tile and max(h, w) > int(tile):
            from model.tiling import tiled_forward

            y = tiled_forward(net, x, tile=int(tile), overlap=max(8, int(tile) // 16),
                              progress=_progress_fn(progress, "tiles"))
        else:
            y = net(x)
    return to_image(y)


def _backend() -> str:
    try:
        from model.scan import last_backend

        return str(last_backend() or "?")
    except ImportError:
        return "?"


def _scores(pred: np.ndarray, gt: np.ndarray, kind: str, scale: int) -> tuple[float, float]:
    """PSNR/SSIM with BasicSR conventions: SR on Y with crop = scale; denoise RGB; JPEG grayscale."""
    from model.metrics import psnr, ssim

    a, b = to_uint8(pred), to_uint8(gt)
    if kind == "sr":
        kw = dict(crop_border=scale, test_y_channel=True)
    elif kind == "car":
        a, b = a[..., :1], b[..., :1]  # the three channels are equal
        kw = dict(crop_border=0, test_y_channel=False)
    else:
        kw = dict(crop_border=0, test_y_channel=False)
    return float(psnr(a, b, **kw)), float(ssim(a, b, **kw))


def _provenance(spec: cache.ModelSpec) -> str:
    if spec.is_random:
        return f"**{cache.RANDOM_NOTE}** (preset `{spec.preset}`)"
    name = spec.path.rsplit("/", 1)[-1] if spec.path else "?"
    return f"{spec.source}: `{name}`"


def _trained_for(spec: cache.ModelSpec) -> str:
    if spec.kind == "sr":
        return f"bicubic-downscaled x{spec.scale} inputs (blurs real camera noise/JPEG)"
    if spec.kind == "dn":
        return f"Gaussian noise σ={spec.level}"
    return f"grayscale JPEG at quality {spec.level}"


def format_metric(name: str, value: Any) -> str:
    """One manifest evaluation as text, e.g. 'photos-test: PSNR 27.31 dB (bicubic 26.90), SSIM 0.79'."""
    if not isinstance(value, dict):
        return f"{name}: {value}"
    parts = []
    for key, unit in (("psnr", " dB"), ("ssim", "")):
        if isinstance(value.get(key), (int, float)):
            text = f"{key.upper()} {value[key]:.{2 if key == 'psnr' else 4}f}{unit}"
            base = value.get(f"baseline_{key}")
            if isinstance(base, (int, float)):
                text += f" ({value.get('baseline', 'baseline')} {base:.{2 if key == 'psnr' else 4}f})"
            parts.append(text)
    extra = f", {value['n_images']} images" if value.get("n_images") else ""
    return f"{name}: " + (", ".join(parts) if parts else str(value)) + extra


def weights_table() -> str:
    """Markdown: every model the app offers per task (source, file, metrics) and unusable files."""
    rows = ["| task | model | weights | trained for | metrics |", "|---|---|---|---|---|"]
    for task, fams in cache.tasks().items():
        for fam in cache.FAMILIES:
            sp = fams.get(fam)
            if sp is None:
                rows.append(f"| {task} | {fam} | none | – | – |")
                continue
            metrics = "; ".join(format_metric(k, v) for k, v in sp.metrics) or "–"
            rows.append(f"| {task} | {fam} | {_provenance(sp)} | {_trained_for(sp)} | {metrics} |")
    text = f"Weights folder: `{cache.weights_dir()}`\n\n" + "\n".join(rows)
    skipped = cache.skipped_files()
    if skipped:
        text += "\n\n**Files not used:**\n\n" + "\n".join(f"- `{s['file']}`: {s['reason']}" for s in skipped)
    return text


# ---------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------


@gpu
@explain_errors
def restore(image: Any, task: str | None = None, mode: str = MODE_AS_IS, routing: str = "argmax",
            seed: float = 0, prompt_order: str = "official", tile: float = DEFAULT_TILE,
            progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008
    """Restore with MambaIRv2 and MambaIR: (v2 image, MambaIR image, slider, details, scores, state)."""
    prep = prepare(image, task, mode)
    specs = _specs(task)
    outs: dict[str, np.ndarray | None] = {}
    rows = ["| model | time (s) | params | device | scan | weights | trained for |",
            "|---|---|---|---|---|---|---|"]
    for i, fam in enumerate(cache.FAMILIES):
        spec = specs.get(fam)
        if spec is None:
            outs[fam] = None
            rows.append(f"| {fam} | – | – | – | – | no weights for this task | – |")
            continue
        progress((i, len(cache.FAMILIES)), desc=f"loading {fam}")
        net = cache.get_model(spec)
        apply_options(net, fam, routing, int(seed), prompt_order)
        progress((i, len(cache.FAMILIES)), desc=f"running {fam}")
        t0 = time.perf_counter()
        outs[fam] = run_network(net, prep.lr, int(tile), progress)
        dt = time.perf_counter() - t0
        rows.append(f"| {fam} | {dt:.2f} | {cache.param_count(net):,} | {cache.device().type} | "
                    f"{_backend()} | {_provenance(spec)} | {_trained_for(spec)} |")
    v2, v1 = outs.get("MambaIRv2"), outs.get("MambaIR")
    details = "\n".join(rows)
    if any(s.is_random for s in specs.values()):
        details = f"⚠️ {cache.RANDOM_NOTE}: no trained checkpoints in weights/.\n\n" + details
    scores = ""
    if prep.gt is not None:
        srows = ["| output | PSNR (dB) | SSIM |", "|---|---|---|"]
        for name, pred in (("MambaIRv2", v2), ("MambaIR", v1), (prep.baseline_name, prep.baseline)):
            if pred is not None:
                p, s = _scores(pred, prep.gt, prep.kind, prep.scale)
                srows.append(f"| {name} | {p:.2f} | {s:.4f} |")
        conv = {"sr": f"Y channel, {prep.scale}-pixel border cropped",
                "dn": "RGB, no crop", "car": "grayscale, no crop"}[prep.kind]
        scores = "\n".join(srows) + f"\n\nBasicSR conventions: {conv}."
    before = to_uint8(prep.baseline)
    v2u = to_uint8(v2) if v2 is not None else None
    v1u = to_uint8(v1) if v1 is not None else None
    slider = (before, v2u if v2u is not None else v1u)
    state = {"task": task, "mode": mode, "v2": v2u, "v1": v1u}
    return v2u, v1u, slider, details, scores, state


# ---------------------------------------------------------------------------
# LAM
# ---------------------------------------------------------------------------


def draw_box(img: np.ndarray, x: int, y: int, size: int, color=(255, 40, 40)) -> np.ndarray:
    """Copy of ``img`` with a 2-pixel rectangle at top-left (x, y) of ``size`` pixels."""
    out = np.array(img, copy=True)
    h, w = out.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + size), min(h, y + size)
    t = 2 if size >= 8 else 1
    out[y0:y1, x0:min(w, x0 + t)] = color
    out[y0:y1, max(0, x1 - t):x1] = color
    out[y0:min(h, y0 + t), x0:x1] = color
    out[max(0, y1 - t):y1, x0:x1] = color
    return out


def lam_window(x: float, y: float, out_hw: tuple[int, int], size: int = LAM_WINDOW) -> tuple[int, int]:
    """Top-left (x, y) of the ``size`` window centred on a click at (x, y), kept inside the image."""
    h, w = out_hw
    x0 = int(min(max(0, round(x) - size // 2), max(0, w - size)))
    y0 = int(min(max(0, round(y) - size // 2), max(0, h - size)))
    return x0, y0


LAM_METHODS = ["LAM", "Integrated gradients", "Saliency"]


def _lam_crop(lr: np.ndarray, scale: int, x0: int, y0: int,
              context: int = LAM_CONTEXT) -> tuple[np.ndarray, int, int]:
    """LR crop of ``context`` pixels around the HR window at (x0, y0), and its top-left (row, col)."""
    H, W = lr.shape[:2]
    cy, cx = (y0 + LAM_WINDOW // 2) // scale, (x0 + LAM_WINDOW // 2) // scale
    r0 = int(min(max(0, cy - context // 2), max(0, H - context)))
    c0 = int(min(max(0, cx - context // 2), max(0, W - context)))
    return lr[r0:r0 + context, c0:c0 + context], r0, c0


@gpu
@explain_errors
def lam(image: Any, task: str | None = None, mode: str = MODE_AS_IS, x: float = -1, y: float = -1,
        method: str = "LAM", steps: float = LAM_DEFAULT_STEPS, routing: str = "argmax", seed: float = 0,
        prompt_order: str = "official",
        progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """LAM of the 16x16 output window centred on output pixel (x, y) for both models, with DI.

    Returns (MambaIRv2 LAM picture, MambaIR LAM picture, details). x, y < 0 picks the centre.
    """
    from viz import lam as vlam

    prep = prepare(image, task, mode)
    specs = _specs(task)
    s = prep.scale
    H, W = prep.lr.shape[:2]
    out_hw = (H * s, W * s)
    if x is None or y is None or x < 0 or y < 0:
        x, y = out_hw[1] / 2, out_hw[0] / 2
    if x >= out_hw[1] or y >= out_hw[0]:
        raise gr.Error(f"point ({x:.0f}, {y:.0f}) is outside the {out_hw[1]}x{out_hw[0]} output")
    x0, y0 = lam_window(x, y, out_hw)
    crop, r0, c0 = _lam_crop(prep.lr, s, x0, y0)
    h, w = y0 - r0 * s, x0 - c0 * s  # window top-left inside the crop's output
    window = min(LAM_WINDOW, crop.shape[0] * s - h, crop.shape[1] * s - w)
    steps = max(1, int(steps))
    pictures: dict[str, np.ndarray | None] = {}
    rows = ["| model | method | DI | Gini | steps | time (s) |", "|---|---|---|---|---|---|"]
    for fam in cache.FAMILIES:
        spec = specs.get(fam)
        if spec is None:
            pictures[fam] = None
            continue
        net = cache.get_model(spec)
        apply_options(net, fam, routing, int(seed), prompt_order)
        x_in = to_tensor(np.clip(crop, 0.0, 1.0), _in_chans(net), next(net.parameters()).device)
        report = _progress_fn(progress, f"{method} {fam}")
        kw = dict(h=int(h), w=int(w), window=int(window), progress=report)
        if method == "Integrated gradients":
            res = vlam.integrated_gradients(net, x_in, steps=steps, **kw)
        elif method == "Saliency":
            res = vlam.saliency(net, x_in, **kw)
        elif method == "LAM":
            res = vlam.local_attribution_map(net, x_in, steps=steps, **kw)
        else:
            raise gr.Error(f"unknown method {method!r}; choose one of {', '.join(LAM_METHODS)}")
        pictures[fam] = vlam.lam_figure(res, title=f"{fam}  DI {res.diffusion_index:.2f}")
        rows.append(f"| {fam} | {res.method} | {res.diffusion_index:.2f} | {res.gini:.3f} | {res.steps} | "
                    f"{res.seconds:.1f} |")
    info = (f"Window: output pixels x {x0}–{x0 + window - 1}, y {y0}–{y0 + window - 1} "
            f"(LR crop of {crop.shape[1]}x{crop.shape[0]} at column {c0}, row {r0}).\n\n" + "\n".join(rows)
            + "\n\nDI (diffusion index) = (1 − Gini of the map) × 100: higher means the model draws on "
              "more input pixels for this window.")
    if any(sp.is_random for sp in specs.values()):
        info = f"⚠️ {cache.RANDOM_NOTE}.\n\n" + info
    return pictures.get("MambaIRv2"), pictures.get("MambaIR"), info


def select_window(state: dict | None, evt: gr.SelectData) -> tuple:
    """Click on an output: (x, y) of the click, and both outputs with the LAM window drawn."""
    x, y = (int(v) for v in evt.index[:2])
    outs = []
    for key in ("v2", "v1"):
        img = (state or {}).get(key)
        if img is None:
            outs.append(gr.skip())
            continue
        x0, y0 = lam_window(x, y, img.shape[:2])
        outs.append(draw_box(img, x0, y0, LAM_WINDOW))
    return x, y, outs[0], outs[1]


# ---------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------


def layer_choices(task: str | None = None) -> list[str]:
    """'stage.block' of every ASSM layer of the task's MambaIRv2 network (from its config)."""
    spec = _specs(task).get("MambaIRv2")
    depths = getattr(cache.config_of(spec), "depths", (1,)) if spec is not None else (1,)
    return [f"{i}.{j}" for i, d in enumerate(depths) for j in range(int(d))]


def _centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    H, W = img.shape[:2]
    r0, c0 = max(0, (H - size) // 2), max(0, (W - size) // 2)
    return img[r0:r0 + size, c0:c0 + size]


def _pick(records: list[dict], layer: str) -> dict:
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


@gpu
@explain_errors
def internals(image: Any, task: str | None = None, mode: str = MODE_AS_IS, layer: str = "0.0",
              query_row: float = -1, query_col: float = -1, routing: str = "argmax", seed: float = 0,
              prompt_order: str = "official",
              progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """Record both networks on the (centre-cropped) input and draw every internals picture of one layer.

    Returns (summary, label overlay, label figure, sequence ribbon, sequence figure, MambaIR scan orders,
    routing histogram, usage heatmap, prompt projection, prompt similarity, ASE figure,
    MambaIRv2 attention, MambaIR attention).
    """
    from model.capture import capture
    from viz import ase, attention, prompts, sequence, sgn
    from viz import routing as vrouting

    prep = prepare(image, task, mode)
    specs = _specs(task)
    lr = np.clip(_centre_crop(prep.lr, INTERNALS_MAX), 0.0, 1.0)
    lr_u8 = to_uint8(lr)
    hw = lr.shape[:2]
    records: dict[str, list[dict]] = {}
    for i, fam in enumerate(cache.FAMILIES):
        spec = specs.get(fam)
        if spec is None:
            continue
        progress((i, 2), desc=f"recording {fam}")
        net = cache.get_model(spec)
        apply_options(net, fam, routing, int(seed), prompt_order)
        x = to_tensor(lr, _in_chans(net), next(net.parameters()).device)
        with torch.no_grad(), capture(net) as rec:
            net(x)
        records[fam] = list(rec.assm) if fam == "MambaIRv2" else list(rec.ss2d)
    qr = int(query_row) if query_row is not None and query_row >= 0 else hw[0] // 2
    qc = int(query_col) if query_col is not None and query_col >= 0 else hw[1] // 2
    qr, qc = min(qr, hw[0] - 1), min(qc, hw[1] - 1)
    progress((1, 2), desc="drawing")
    out: list[Any] = []
    notes = [f"Input: {hw[1]}x{hw[0]} LR pixels (centre crop, at most {INTERNALS_MAX}); "
             f"query pixel (row {qr}, col {qc})."]
    v2recs = records.get("MambaIRv2")
    if v2recs:
        r = _pick(v2recs, layer)
        st = vrouting.routing_stats(r, hw)
        notes.append(f"MambaIRv2 layer {r['stage']}.{r['block']}: {st['used']} of {st['num_prompts']} "
                     f"prompts used, perplexity {st['perplexity']:.1f}, "
                     f"mean router confidence {st.get('mean_confidence', float('nan')):.2f}.")
        zoom = max(1, 256 // max(hw))  # small crops are shown enlarged (nearest neighbour)
        big = np.repeat(np.repeat(lr_u8, zoom, axis=0), zoom, axis=1)  # (H, W, 3) -> (zH, zW, 3)
        out += [sgn.label_overlay(big, r, image_hw=hw),
                sgn.label_map_figure(r, image=lr_u8, image_hw=hw),
                sequence.sequence_ribbon(r, lr_u8, zoom=max(1, 256 // max(hw[1], 1))),
                sequence.sequence_distance_figure(r, image_hw=hw)]
    else:
        out += [None, None, None, None]
    v1recs = records.get("MambaIR")
    out.append(sequence.scan_orders_figure(_pick(v1recs, layer), image_hw=hw) if v1recs else None)
    if v2recs:
        out += [vrouting.routing_histogram(r, hw), vrouting.usage_heatmap(v2recs, hw),
                prompts.prompt_projection(r, image_hw=hw), prompts.prompt_similarity(r, image_hw=hw),
                ase.ase_figure(r, image=lr_u8, image_hw=hw)]
        amap = attention.implicit_attention_map(r, (qr, qc), image_hw=hw)
        out.append(attention.attention_figure(amap, image=lr_u8, pixel=(qr, qc),
                                              title=f"MambaIRv2 {r['stage']}.{r['block']}"))
    else:
        out += [None] * 6
    if v1recs:
        r1 = _pick(v1recs, layer)
        amap1 = attention.implicit_attention_map(r1, (qr, qc), image_hw=hw)
        out.append(attention.attention_figure(amap1, image=lr_u8, pixel=(qr, qc),
                                              title=f"MambaIR {r1['stage']}.{r1['block']}"))
    else:
        out.append(None)
    if any(sp.is_random for sp in specs.values()):
        notes.insert(0, f"⚠️ {cache.RANDOM_NOTE}.")
    return ("\n\n".join(notes), *out)


# ---------------------------------------------------------------------------
# Effect of the settings (prompt order, Gumbel noise) on MambaIRv2's output
# ---------------------------------------------------------------------------

EFFECTS = ["prompt order: official vs aligned", "Gumbel routing: spread over seeds"]


def _magnitude_image(m: np.ndarray) -> np.ndarray:
    """(h, w) non-negative map -> (h, w, 3) uint8 grey image scaled so that its max is white."""
    top = float(m.max())
    g = np.round(255.0 * (m / top if top > 0 else m))
    return np.repeat(g[..., None], 3, axis=2).astype(np.uint8)  # (h, w) -> (h, w, 3)


@gpu
@explain_errors
def settings_effect(image: Any, task: str | None = None, mode: str = MODE_AS_IS, what: str = EFFECTS[0],
                    runs: float = 3, tile: float = DEFAULT_TILE,
                    progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """How much MambaIRv2's output changes with a setting: (difference/spread picture, details)."""
    from model.metrics import psnr

    prep = prepare(image, task, mode)
    spec = _specs(task).get("MambaIRv2")
    if spec is None:
        raise gr.Error("no MambaIRv2 weights for this task")
    net = cache.get_model(spec)
    try:
        if what == EFFECTS[0]:
            outs = []
            for k, order in enumerate(PROMPT_ORDERS):
                progress((k, 2), desc=f"prompt order {order}")
                apply_options(net, "MambaIRv2", "argmax", 0, order)
                outs.append(run_network(net, prep.lr, int(tile), progress))
            diff = np.abs(outs[0] - outs[1]).mean(axis=2)  # (h, w, 3) -> (h, w)
            p = psnr(to_uint8(outs[0]), to_uint8(outs[1]))
            text = (f"Mean absolute difference official vs aligned: {255 * diff.mean():.2f} / 255, "
                    f"max {255 * diff.max():.1f} / 255; PSNR between the two outputs {p:.2f} dB. "
                    "Both with argmax routing; white = largest change.")
            pic = _magnitude_image(diff)
        elif what == EFFECTS[1]:
            n = max(2, int(runs))
            apply_options(net, "MambaIRv2", "argmax", 0, "official")
            ref = run_network(net, prep.lr, int(tile), progress)
            outs = []
            for k in range(n):
                progress((k, n), desc=f"Gumbel seed {k}")
                apply_options(net, "MambaIRv2", "gumbel", k, "official")
                outs.append(run_network(net, prep.lr, int(tile), progress))
            stack = np.stack(outs)  # (n, h, w, 3)
            spread = stack.std(axis=0).mean(axis=2)  # (h, w)
            ps = [psnr(to_uint8(o), to_uint8(ref)) for o in outs]
            text = (f"{n} runs with Gumbel noise (seeds 0..{n - 1}): mean per-pixel std "
                    f"{255 * spread.mean():.2f} / 255, max {255 * spread.max():.1f} / 255; PSNR of each run "
                    f"against argmax routing: {', '.join(f'{v:.2f}' for v in ps)} dB. White = most variable.")
            pic = _magnitude_image(spread)
        else:
            raise gr.Error(f"unknown comparison {what!r}; choose one of: {'; '.join(EFFECTS)}")
    finally:
        apply_options(net, "MambaIRv2", "argmax", 0, "official")  # leave the cached model as the default
    if spec.is_random:
        text = f"⚠️ {cache.RANDOM_NOTE}.\n\n" + text
    return pic, text
