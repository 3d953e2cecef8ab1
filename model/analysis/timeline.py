"""How routing evolves over a series of checkpoints of one MambaIRv2 network (issue 10, item 5).

    snaps = checkpoint_timeline(["experiments/run/models"], image)   # sorted by iteration
    snaps[i].step, snaps[i].stats[layer]["mean_max_prob"], snaps[i].labels[layer]  # (H, W) int

Each checkpoint is loaded with ``model.load_checkpoint`` and run once on the same image with argmax
routing under capture (``model.analysis.router_stats.router_records``); what is kept per checkpoint is
small: the router numbers per ASSM layer and the label map of each layer. Figures are in
``viz.timeline``.

Letters: H, W the image (LR) size, T prompts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.analysis.router_stats import is_untrained, records_stats
from model.hub.weights import CHECKPOINT_SUFFIXES

__all__ = ["Snapshot", "CHECKPOINT_SUFFIXES", "checkpoint_step", "list_checkpoints", "checkpoint_timeline"]

_NUMBER = re.compile(r"(\d+)")


@dataclass
class Snapshot:
    """One checkpoint's routing on the image: numbers and label map per ASSM layer (forward order)."""

    path: Path
    step: int | None  # iteration from the file name (net_g_5000.pth -> 5000), None if it has none
    stats: list[dict[str, Any]]  # model.analysis.router_stats.layer_stats per layer
    labels: list[np.ndarray] = field(repr=False)  # (H, W) int64 label per pixel, per layer
    untrained: bool = False  # model.analysis.router_stats.is_untrained(stats)

    @property
    def name(self) -> str:
        """A short label: ``step N`` when the file name has an iteration, else the file name."""
        return f"step {self.step}" if self.step is not None else self.path.name

    @property
    def layers(self) -> list[str]:
        """Layer names "stage.block", forward order."""
        return [f"{s['stage']}.{s['block']}" for s in self.stats]


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The iteration in a checkpoint's file name: its last number (``net_g_5000.pth`` -> 5000)."""
    numbers = _NUMBER.findall(Path(path).name.split(".")[0])
    return int(numbers[-1]) if numbers else None


def list_checkpoints(items: Sequence[str | os.PathLike]) -> list[Path]:
    """Checkpoint files from files and folders (a folder gives its checkpoint files, or those of its
    ``models/`` sub-folder as in a BasicSR experiment), sorted by iteration; files without a number
    (e.g. ``net_g_latest.pth``) come last, by name."""
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in CHECKPOINT_SUFFIXES and f.is_file())
            if not found and (p / "models").is_dir():
                found = sorted(f for f in (p / "models").iterdir() if f.suffix in CHECKPOINT_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)}) in {p}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist")
    if not files:
        raise ValueError("no checkpoints given")
    unique = list(dict.fromkeys(f.resolve() for f in files))

    def key(f: Path) -> tuple[int, int, str]:
        step = checkpoint_step(f)
        return (0, step, f.name) if step is not None else (1, 0, f.name)

    return sorted(unique, key=key)


def _as_input(image: Any) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1] from a uint8 or float (H, W, 3) array, or a (1, 3, H, W) tensor."""
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        return image.float()
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    return torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()  # (H, W, 3) -> (1, 3, H, W)


def checkpoint_timeline(items: Sequence[str | os.PathLike], image: Any,
                        progress: Callable[[int, int, Path], None] | None = None) -> list[Snapshot]:
    """Routing of every checkpoint in ``items`` (see ``list_checkpoints``) on ``image`` (the LR input,
    (H, W, 3) uint8 or float in [0, 1]), in iteration order.

    All checkpoints must be MambaIRv2 networks of one configuration (a series of one run);
    ``progress(i, n, path)`` is called before each checkpoint is run.
    """
    from model.analysis.router_stats import router_records
    from model.detect import CheckpointError
    from model.loading import load_checkpoint

    paths = list_checkpoints(items)
    x = _as_input(image)
    h, w = x.shape[-2:]
    snaps: list[Snapshot] = []
    config = None
    for i, path in enumerate(paths):
        if progress is not None:
            progress(i, len(paths), path)
        net = load_checkpoint(path)
        if config is None:
            config = net.config
        elif net.config != config:
            raise CheckpointError(f"{path.name} is another network ({net.config.arch}, different settings) "
                                  f"than {paths[0].name}: give checkpoints of one training run")
        records = router_records(net, x)
        if not records:
            raise CheckpointError(f"{path.name} is a {net.config.arch} network: it has no router (no ASSM "
                                  "layers); the timeline needs MambaIRv2 checkpoints")
        stats = records_stats(records)
        labels = [r["labels"][0].numpy().reshape(h, w).astype(np.int64) for r in records]  # (L,) -> (H, W)
        snaps.append(Snapshot(path, checkpoint_step(path), stats, labels, is_untrained(stats)))
    return snaps
