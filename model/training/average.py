"""Uniform weight averaging of checkpoints of one run (its tail at a constant learning rate).

    python -m model.training.average runs/x4_v2light/models/net_g_{2150..2650..25}.pth --out avg.pth [--force]

At a constant learning rate and a small batch the weights wander around a minimum with the
gradient noise; the mean of the checkpoints along that walk tends to lie closer to it than the last one
(stochastic weight averaging, Izmailov et al. 2018). A training choice for demo weights only: the
network, its keys and inference are unchanged, and the output is an ordinary BasicSR file
(``{'params': state_dict}``) that ``model.load_checkpoint`` reads like any other.

Floating-point tensors are averaged in float64 and stored in their own dtype; integer buffers
(e.g. ``relative_position_index_SA``) are fixed by the architecture, so they must agree and are kept.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["average_state_dicts", "average_checkpoints"]


def average_state_dicts(sds: Iterable[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Mean of state dicts with the same keys and shapes; integer tensors must be equal and are kept.

    Takes any iterable (a generator reads one checkpoint at a time): the memory is one state dict
    plus a float64 running sum, whatever the number of checkpoints.
    """
    first, total, n = None, {}, 0
    for sd in sds:
        if first is None:
            first = sd
            total = {k: t.double() for k, t in sd.items() if t.is_floating_point()}  # float64: no drift
        else:
            if sd.keys() != first.keys():
                extra = sorted(set(sd) ^ set(first))[:3]
                raise ValueError(f"state dict {n} has other keys than the first (e.g. {', '.join(extra)}): "
                                 "average checkpoints of one network only")
            for k, t in sd.items():
                if t.shape != first[k].shape:
                    raise ValueError(f"state dict {n}: {k} has shape {tuple(t.shape)}, the first "
                                     f"{tuple(first[k].shape)}: average checkpoints of one network only")
                if k in total:
                    total[k] += t.double()
                elif not torch.equal(t, first[k]):
                    raise ValueError(f"{k} (an integer buffer) differs between the checkpoints")
        n += 1
    if first is None:
        raise ValueError("nothing to average: no state dicts given")
    return {k: (total[k] / n).to(t.dtype) if k in total else t.clone() for k, t in first.items()}


def average_checkpoints(paths: Sequence[str | os.PathLike]) -> dict[str, Tensor]:
    """Read checkpoints (any format ``model.loading`` reads), one at a time, and return their mean."""
    from model.loading import read_state_dict

    return average_state_dicts(read_state_dict(p) for p in paths)


def main(argv: list[str] | None = None) -> None:
    """Command line: average the given checkpoints into one BasicSR file and say what it holds."""
    from model.loading import inspect_checkpoint

    ap = argparse.ArgumentParser(prog="python -m model.training.average",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+",
                    help="checkpoint files of one network (e.g. a run's models/net_g_*.pth)")
    ap.add_argument("--out", required=True, help="the averaged file to write (.pth)")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    a = ap.parse_args(argv)
    if Path(a.out).exists() and not a.force:
        raise ValueError(f"{a.out} exists; choose another --out or add --force to replace it")
    missing = [p for p in a.checkpoints if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no such checkpoint: {', '.join(missing[:3])}")
    avg = average_checkpoints(a.checkpoints)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": avg}, a.out)
    print(f"{a.out}: mean of {len(a.checkpoints)} checkpoints; {inspect_checkpoint(a.out)[1]}")


if __name__ == "__main__":
    from model.cli import run_cli

    run_cli(main)
