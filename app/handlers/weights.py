"""The Weights tab: which checkpoints the app offers, where they come from, how they scored."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from .. import cache
from .common import apply_options, checkpoint_items, explain_errors, provenance, specs_for, trained_for


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
            rows.append(f"| {task} | {fam} | {provenance(sp)} | {trained_for(sp)} | {metrics} |")
    text = f"Weights folder: `{cache.weights_dir()}`\n\n" + "\n".join(rows)
    skipped = cache.skipped_files()
    if skipped:
        text += "\n\n**Files not used:**\n\n" + "\n".join(f"- `{s['file']}`: {s['reason']}" for s in skipped)
    return text


@explain_errors
def weights_status() -> str:
    """The one-line weights status shown at the top of the page and in the Weights tab."""
    line = cache.status_line()
    return line if not line or line.startswith("⚠️") else f"ℹ️ {line}"


def _task_menu(value: str | None = None) -> gr.Dropdown:
    names = cache.task_names()
    return gr.Dropdown(choices=names, value=value if value in names else (names[0] if names else None))


@explain_errors
def add_checkpoint(file: Any) -> tuple:
    """Offer the user's checkpoint: (task label it is offered under, task menu, weights table, status).

    Any MambaIRv2 / MambaIRv2Light / MambaIR configuration the detection handles; read with
    ``weights_only`` (a pickle that wants to run code is refused and runs nothing); a size limit.
    """
    from model import CheckpointError

    path = getattr(file, "path", None) or getattr(file, "name", None) or file
    if not path or not isinstance(path, str):
        raise gr.Error("choose a checkpoint file (.pth, .pt or .safetensors) first")
    name = getattr(file, "orig_name", None) or os.path.basename(path)
    try:
        spec = cache.add_user_checkpoint(path, name)
    except CheckpointError as exc:
        raise gr.Error(str(exc), title="Cannot use this checkpoint") from exc
    label = cache.file_label(spec)
    msg = f"Added `{os.path.basename(spec.path)}` ({spec.family}) as task **{label}**."
    return label, _task_menu(label), weights_table(), msg


@explain_errors
def fetch_official(preset: str, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008
    """Fetch one official checkpoint now: (message, task menu, weights table, status line)."""
    from model.hub import download

    progress(0, desc=f"listing {download.repo_id()}")
    report = download.fetch_many([preset], cache.official_dir(),
                                 log=lambda s: progress(0.5, desc=s[:80]))
    cache.tasks(refresh=True)
    if preset in report.fetched:
        msg = f"`{preset}`: {report.fetched[preset].name} fetched and verified (source: official)."
    else:
        msg = f"⚠️ `{preset}` could not be fetched: {report.failed.get(preset, report.problem)}"
    cache.set_status(cache.official_summary() + ("" if preset in report.fetched else f" {msg}"))
    return msg, _task_menu(), weights_table(), weights_status()


def official_name(preset: str) -> str:
    """Button text of an official preset: 'MambaIRv2-light x2', 'MambaIR-light x4'."""
    net, _, scale = preset.partition("_lightSR_")
    return f"{'MambaIRv2' if net == 'mambairv2' else 'MambaIR'}-light {scale}"


def fetcher(preset: str) -> Any:
    """A click handler that fetches ``preset`` (one per button of the Weights tab)."""
    def fetch(progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008
        return fetch_official(preset, progress)
    fetch.__name__ = f"fetch_{preset}"
    return explain_errors(fetch)


# ---------------------------------------------------------------------------
# Prompts across training: routing of a series of checkpoints on one image
# ---------------------------------------------------------------------------

TIMELINE_SIZE = 64  # LR pixels per side of the centre crop every checkpoint is run on


@explain_errors
def timeline(files: Any = None, folder: str | None = None, image: Any = None, layer: str = "0.0",
             progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """How routing evolves over checkpoints of one MambaIRv2 run, on the centre of one image.

    Returns (curves per layer, SGN label maps of ``layer`` per checkpoint, table and flags as markdown).
    """
    from model.analysis.timeline import checkpoint_timeline
    from viz import timeline as vtimeline

    from ..io import ImageError, load_image

    items = checkpoint_items(files, folder)
    if image is None:
        raise gr.Error("give an input image on the Restore tab (or pick an example there) first")
    try:
        rgb = load_image(image)
    except ImageError as exc:
        raise gr.Error(str(exc), title="Cannot use this image") from exc
    h, w = rgb.shape[:2]
    s = min(TIMELINE_SIZE, h, w)
    crop = rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]

    def report(i: int, n: int, path: Any) -> None:
        progress((i, n), desc=f"running {os.path.basename(str(path))}")

    try:
        snaps = checkpoint_timeline(items, crop, progress=report)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
        raise gr.Error(str(exc), title="Cannot use these checkpoints") from exc
    names = snaps[0].layers
    pick = layer if layer in names else names[0]
    flagged = [sn.name for sn in snaps if sn.untrained]
    note = ""
    if flagged:
        from model.analysis.router_stats import UNTRAINED_MESSAGE

        note = f"⚠️ {', '.join(flagged)}: {UNTRAINED_MESSAGE}.\n\n"
    table = vtimeline.timeline_table(snaps)
    text = (f"{note}{len(snaps)} checkpoints on the centre {s}×{s} pixels of the image; label maps of layer "
            f"{pick}.\n\n```\n{table}\n```")
    return vtimeline.timeline_figure(snaps), vtimeline.label_maps_figure(snaps, pick), text


@explain_errors
def onnx_download(task: str | None, family: str = "MambaIRv2",
                  progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008
    """The selected model as a verified ONNX file (made on first request, cached): (file, description)."""
    import shutil
    import tempfile
    from pathlib import Path

    from model.export import min_size

    spec = specs_for(task).get(family)
    if spec is None:
        raise gr.Error(f"no {family} weights for task {task!r}")
    net = cache.get_model(spec)
    apply_options(net, family, "argmax", 0, "official")  # the options the weights were trained with
    progress(0.1, desc=f"{family} to ONNX: export and check against PyTorch (first time only)")
    onnx = cache.get_onnx(spec, net)
    stem = Path(spec.path).stem if spec.path else str(spec.preset)
    out = Path(tempfile.mkdtemp(prefix="mambair_onnx_")) / f"{stem}.onnx"
    shutil.copyfile(onnx.path, out)  # a copy in the temp folder, which Gradio serves
    c = int(getattr(net.config, "in_chans", 3))
    text = (f"`{out.name}` ({os.path.getsize(out) / 1e6:.1f} MB, {provenance(spec)}): input `image` float32 "
            f"(1, {c}, H, W) in [0, 1], any H, W >= {min_size(net)}; output `restored` "
            f"(1, {c}, {spec.scale}H, {spec.scale}W). Cached as `{onnx.path.name}`.")
    return str(out), text
