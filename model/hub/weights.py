"""The weights registry: checkpoint files in a folder, joined with ``manifest.json``.

A file's network is always detected from its tensors (``model.inspect_checkpoint``), never from
its name. The manifest (a JSON list of entries) adds what the tensors cannot say: where the file
came from, what it was trained on and how it scored. Entries are joined to files by sha256 first
(so a renamed file keeps its facts), then by file name when the manifest has no hash.

Manifest entry fields: ``file`` (name inside the folder), ``arch``, ``task`` ("sr", "denoise",
"jpeg"), ``scale``, ``preset`` (a ``PRESETS`` name or null), ``source`` ("trained here",
"official" or "user file"), ``sha256``, ``size_bytes``, ``url`` (official downloads),
``training`` (dict of training facts or null), ``metrics`` (dict: evaluation name -> numbers),
``notes``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["CHECKPOINT_SUFFIXES", "sha256_file", "task_of", "manifest_entry", "load_manifest",
           "save_manifest", "upsert_manifest", "scan_weights", "preset_of"]

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")
MANIFEST = "manifest.json"
SOURCES = ("trained here", "official", "user file")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def task_of(cfg: Any) -> str:
    """'sr' for upscale > 1, 'jpeg' for one-channel restoration, else 'denoise' (the official tasks)."""
    if cfg.upscale > 1:
        return "sr"
    return "jpeg" if cfg.in_chans == 1 else "denoise"


def preset_of(cfg: Any) -> str | None:
    """Name of the first preset equal to ``cfg`` (None when it matches no official preset)."""
    from model.config import PRESETS

    return next((name for name, p in PRESETS.items() if p == cfg), None)


def manifest_entry(path: str | os.PathLike, *, source: str, training: dict | None = None,
                   metrics: dict | None = None, url: str | None = None, notes: str = "",
                   task: str | None = None) -> dict[str, Any]:
    """Manifest entry for a checkpoint file (architecture detected; raises ValueError if unusable)."""
    from model import inspect_checkpoint

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    path = Path(path)
    cfg, desc = inspect_checkpoint(path)
    if cfg is None:
        raise ValueError(f"{path.name}: not a usable checkpoint: {desc}")
    return {"file": path.name, "arch": cfg.arch, "task": task or task_of(cfg), "scale": int(cfg.upscale),
            "preset": preset_of(cfg), "source": source, "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size, "url": url, "training": training,
            "metrics": metrics or {}, "notes": notes}


def load_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Entries of a manifest file ([] when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    data = json.loads(path.read_text() or "[]")
    if not isinstance(data, list) or not all(isinstance(e, dict) and "file" in e for e in data):
        raise ValueError(f"{path}: a manifest is a JSON list of objects with a 'file' field")
    return data


def save_manifest(entries: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write entries (sorted by file name) as indented JSON."""
    Path(path).write_text(json.dumps(sorted(entries, key=lambda e: e["file"]), indent=2) + "\n")


def upsert_manifest(entry: dict[str, Any], path: str | os.PathLike) -> list[dict[str, Any]]:
    """Add ``entry`` to the manifest at ``path``, replacing one with the same file name or sha256.

    Fields the new entry leaves empty (training, metrics, url, notes) keep the old entry's values;
    metrics are merged per evaluation name.
    """
    entries = load_manifest(path)
    keep, old = [], None
    for e in entries:
        same = e["file"] == entry["file"] or (entry.get("sha256") and e.get("sha256") == entry["sha256"])
        if same and old is None:
            old = e
        elif not same:
            keep.append(e)
    new = dict(entry)
    if old is not None:
        for key in ("training", "url", "notes"):
            if not new.get(key) and old.get(key):
                new[key] = old[key]
        new["metrics"] = {**(old.get("metrics") or {}), **(new.get("metrics") or {})}
    keep.append(new)
    save_manifest(keep, path)
    return keep


def scan_weights(folder: str | os.PathLike = "weights") -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(entries, skipped) for every checkpoint file under ``folder``.

    entries: one dict per usable file with the manifest fields plus ``path``, ``description``
    (one line from the detected config), ``config`` (``to_dict()``) and ``in_manifest``; a file
    the manifest does not know gets source "user file". Each file is joined with the
    ``manifest.json`` of its own folder (``weights/`` has the files trained here, ``weights/official/``
    the fetched ones). skipped: ``{"file", "reason"}`` for files that cannot be used (not a checkpoint,
    unknown network, damaged) and for a broken manifest, whose files are then listed as of unknown
    provenance ("user file"), never upgraded.
    """
    from model import inspect_checkpoint

    folder = Path(folder)
    entries: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    if not folder.is_dir():
        return entries, skipped
    manifests: dict[Path, list[dict[str, Any]]] = {}

    def manifest_of(sub: Path) -> list[dict[str, Any]]:
        if sub not in manifests:
            try:
                manifests[sub] = load_manifest(sub / MANIFEST)
            except ValueError as exc:  # also json.JSONDecodeError
                manifests[sub] = []
                skipped.append({"file": (sub / MANIFEST).relative_to(folder).as_posix(),
                                "reason": f"broken manifest, provenance of its files unknown: {exc}"})
        return manifests[sub]

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES)
    for path in files:
        rel = path.relative_to(folder).as_posix()
        cfg, desc = inspect_checkpoint(path)
        if cfg is None:
            skipped.append({"file": rel, "reason": desc})
            continue
        manifest = manifest_of(path.parent)
        by_sha = {e["sha256"]: e for e in manifest if e.get("sha256")}
        by_name = {e["file"]: e for e in manifest}
        digest = sha256_file(path)
        known = by_sha.get(digest)
        if known is None:
            named = by_name.get(path.name)
            # A name match counts only if the manifest has no hash for it (else the file was replaced).
            known = named if named is not None and not named.get("sha256") else None
        notes = []
        if known is not None and known.get("arch") not in (None, cfg.arch):
            notes.append(f"manifest says {known['arch']}, the tensors are {cfg.arch}")
        if known is not None and known["file"] != path.name:
            notes.append(f"listed in the manifest as {known['file']}")
        base = dict(known) if known is not None else {
            "source": "user file", "training": None, "metrics": {}, "url": None, "notes": ""}
        base.update({"file": rel, "path": str(path), "arch": cfg.arch,
                     "task": base.get("task") or task_of(cfg),
                     "scale": int(cfg.upscale), "preset": preset_of(cfg), "sha256": digest,
                     "size_bytes": path.stat().st_size, "description": desc, "config": cfg.to_dict(),
                     "in_manifest": known is not None})
        if notes:
            base["notes"] = "; ".join([base.get("notes") or ""] + notes).strip("; ")
        entries.append(base)
    return entries, skipped
