"""The Weights tab: which checkpoints the app offers, where they come from, how they scored."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from .. import cache
from .common import explain_errors, provenance, trained_for


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


def weights_status() -> str:
    """The one-line weights status shown at the top of the page and in the Weights tab."""
    line = cache.status_line()
    return f"ℹ️ {line}" if line else ""


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


def fetch_official(preset: str, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008
    """Fetch one official checkpoint now: (message, task menu, weights table, status line)."""
    from model import download

    progress(0, desc=f"listing {download.repo_id()}")
    report = download.fetch_many([preset], cache.official_dir(),
                                 log=lambda s: progress(0.5, desc=s[:80]))
    cache.tasks(refresh=True)
    if preset in report.fetched:
        msg = f"✅ `{preset}`: {report.fetched[preset].name} fetched and verified (source: official)."
    else:
        msg = f"⚠️ `{preset}` could not be fetched: {report.failed.get(preset, report.problem)}"
    cache.set_status(report.line())
    return msg, _task_menu(), weights_table(), weights_status()


def fetcher(preset: str) -> Any:
    """A click handler that fetches ``preset`` (one per button of the Weights tab)."""
    def fetch(progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008
        return fetch_official(preset, progress)
    fetch.__name__ = f"fetch_{preset}"
    return fetch
