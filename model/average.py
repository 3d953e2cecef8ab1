"""Uniform weight averaging of checkpoints of one run (its tail at a constant learning rate).

    python -m model.average runs/x4_v2light/models/net_g_{2125..2650..25}.pth --out avg.pth

At a constant learning rate and a small batch the weights wander around a minimum with the
gradient noise; the mean of the checkpoints along that walk lies closer to it than any one of them
(stochastic weight averaging, Izmailov et al. 2018). A training choice for demo weights only: the
network, its keys and inference are unchanged, and the output is an ordinary BasicSR file
(``{'params': state_dict}``) that ``model.load_checkpoint`` reads like any other.

Floating-point tensors are averaged in float64 and stored in their own dtype; integer buffers
(e.g. ``relative_position_index_SA``) are fixed by the architecture, so they must agree and are kept.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["average_state_dicts", "average_checkpoints"]


def average_state_dicts(sds: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Mean of state dicts with the same keys and shapes; integer tensors must be equal and are kept."""
    if not sds:
        raise ValueError("nothing to average: no state dicts given")
    first = sds[0]
    for i, sd in enumerate(sds[1:], start=1):
        if sd.keys() != first.keys():
            extra = sorted(set(sd) ^ set(first))[:3]
            raise ValueError(f"state dict {i} has other keys than the first (e.g. {', '.join(extra)}): "
                             "average checkpoints of one network only")
        for k, t in sd.items():
            if t.shape != first[k].shape:
                raise ValueError(f"state dict {i}: {k} has shape {tuple(t.shape)}, the first "
                                 f"{tuple(first[k].shape)}: average checkpoints of one network only")
    out = {}
    for k, t in first.items():
        if t.is_floating_point():
            mean = torch.stack([sd[k].double() for sd in sds]).mean(0)  # float64: 20+ terms without drift
            out[k] = mean.to(t.dtype)
        else:
            if any(not torch.equal(sd[k], t) for sd in sds[1:]):
                raise ValueError(f"{k} (an integer buffer) differs between the checkpoints")
            out[k] = t.clone()
    return out


def average_checkpoints(paths: Sequence[str | os.PathLike]) -> dict[str, Tensor]:
    """Read checkpoints (any format ``model.loading`` reads) and return their average state dict."""
    from model.loading import read_state_dict

    return average_state_dicts([read_state_dict(p) for p in paths])


def main(argv: list[str] | None = None) -> None:
    """Command line: average the given checkpoints into one BasicSR file and say what it holds."""
    from model.loading import inspect_checkpoint

    ap = argparse.ArgumentParser(prog="python -m model.average", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+",
                    help="checkpoint files of one network (e.g. a run's models/net_g_*.pth)")
    ap.add_argument("--out", required=True, help="the averaged file to write (.pth)")
    a = ap.parse_args(argv)
    missing = [p for p in a.checkpoints if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no such checkpoint: {', '.join(missing[:3])}")
    avg = average_checkpoints(a.checkpoints)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": avg}, a.out)
    print(f"{a.out}: mean of {len(a.checkpoints)} checkpoints; {inspect_checkpoint(a.out)[1]}")


if __name__ == "__main__":
    from .cli import run_cli

    run_cli(main)
