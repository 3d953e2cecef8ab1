"""The Weights tab: which checkpoints the app offers, where they come from, how they scored."""

from __future__ import annotations

from typing import Any

from .. import cache
from .common import provenance, trained_for


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


