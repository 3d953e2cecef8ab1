"""python -m model.export.bench [FILES...] [--sizes 64 256] [--repeats 3]: onnxruntime vs PyTorch forward.

For each checkpoint (default: the two shipped light x4 demo files) the cached dynamic ONNX file
is made (``model.export.runtime``; export time and size printed when made now), then PyTorch
(default scan backend) and onnxruntime run the same random input alternately, ``repeats`` times
each per size after one warm-up; the table gives median seconds, the ratio and the max abs
difference. Print ``uptime`` beside it: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from model.cli import run_cli
from model.loading import load_checkpoint

from .runtime import cache_dir, cache_name, onnx_net

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILES = [ROOT / "weights" / "mambairv2_lightSR_x4_demo.pth",
                 ROOT / "weights" / "MambaIR_lightSR_x4_demo.pth"]


def _seconds(fn, x: torch.Tensor) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    with torch.no_grad():
        fn(x)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Print the export facts and a markdown table of forward times."""
    p = argparse.ArgumentParser(prog="python -m model.export.bench", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", default=[str(f) for f in DEFAULT_FILES])
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 256])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    rows = ["| model | input | PyTorch (s) | onnxruntime (s) | onnxruntime / PyTorch | max abs diff |",
            "|---|---|---|---|---|---|"]
    for f in a.files:
        net = load_checkpoint(f)
        name = Path(f).name
        cached = (cache_dir() / cache_name(net, f)).exists()
        t0 = time.perf_counter()
        ort_net = onnx_net(net, f, log=print)
        if not cached:
            print(f"{name}: exported and verified in {time.perf_counter() - t0:.1f} s")
        print(f"{name}: {ort_net.path} {os.path.getsize(ort_net.path) / 1e6:.1f} MB")
        for side in a.sizes:
            x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(side))
            with torch.no_grad():
                diff = float((ort_net(x) - net(x)).abs().max())  # also the warm-up of both
            tt, to = [], []
            for _ in range(a.repeats):  # alternate, so both see the same machine load
                tt.append(_seconds(net, x))
                to.append(_seconds(ort_net, x))
            mt, mo = statistics.median(tt), statistics.median(to)
            rows.append(f"| {name} | {side}x{side} | {mt:.2f} | {mo:.2f} | {mo / mt:.2f} | {diff:.1e} |")
            print(rows[-1], flush=True)
    print("\n".join(rows))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    run_cli(main)
