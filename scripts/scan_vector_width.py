"""The numba scan with LLVM's host tuning (256-bit vectors on CPUs it counts as AVX-512 clients) against
this project's default (512-bit allowed, model/scan/cpu.py), on MambaIR-light x2 128x128 scan shapes:
forward and backward milliseconds per setting, interleaved rounds in fresh subprocesses, and whether the
outputs are bit-identical. Usage: python scripts/scan_vector_width.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One subprocess: time the scan op's forward and backward, save the output and the input gradient.
WORKER = r"""
import json, statistics, sys, time, torch
from model.scan.cpu import selective_scan_numba
import numba
torch.manual_seed(0)
b, d, l, n, g = 1, 288, 16384, 10, 4  # MambaIR-light x2 at 128x128: 4 scans of 72 channels, 10 states
u, delta = torch.randn(b, d, l), torch.randn(b, d, l) * 0.5 - 1
A, D, bias = -torch.rand(d, n) - 0.05, torch.randn(d), torch.randn(d) * 0.3
B, C = torch.randn(b, g, n, l) * 0.5, torch.randn(b, g, n, l) * 0.5
uu = u.clone().requires_grad_()
fwd, bwd = [], []
for i in range(6):
    t0 = time.perf_counter(); y = selective_scan_numba(uu, delta, A, B, C, D, None, bias, True)
    t1 = time.perf_counter(); (gu,) = torch.autograd.grad(y.square().sum(), uu); t2 = time.perf_counter()
    if i:  # the first call loads or compiles the kernels
        fwd.append(t1 - t0); bwd.append(t2 - t1)
torch.save((y.detach(), gu), sys.argv[1])
wide = "-prefer-256-bit" in (numba.config.CPU_FEATURES or "")
print(json.dumps({"fwd": statistics.median(fwd), "bwd": statistics.median(bwd), "wide": wide}))
"""


def run(env_extra: dict[str, str], out: str, cache: str) -> dict:
    """One worker run with ``env_extra`` added to the environment; its JSON line."""
    env = {**os.environ, **env_extra, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", WORKER, out], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print per-setting medians, the speed-up and whether the results are identical."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import llvmlite.binding as llvm
    import torch

    host = llvm.get_host_cpu_features().flatten()
    settings = {"host tuning (256-bit)": {"NUMBA_CPU_FEATURES": host}, "project default": {}}
    times: dict[str, dict[str, list[float]]] = {k: {"fwd": [], "bwd": []} for k in settings}
    wide: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {k: os.path.join(tmp, f"{i}.pt") for i, k in enumerate(settings)}
        caches = {k: os.path.join(tmp, f"cache{i}") for i, k in enumerate(settings)}  # compiled once each
        for _ in range(args.rounds):
            for k, extra in settings.items():
                r = run(extra, outs[k], caches[k])
                times[k]["fwd"].append(r["fwd"])
                times[k]["bwd"].append(r["bwd"])
                wide[k] = r["wide"]
        (y0, g0), (y1, g1) = (torch.load(outs[k]) for k in settings)
    print(f"# scan op, MambaIR-light x2 128x128 shapes; host {llvm.get_host_cpu_name()}, avx512f "
          f"{'+avx512f' in host.split(',')}; median of 5 calls per run, median of {args.rounds} rounds")
    for k in settings:
        print(f"{k:24s} forward {statistics.median(times[k]['fwd']) * 1e3:7.1f} ms   "
              f"backward {statistics.median(times[k]['bwd']) * 1e3:7.1f} ms   512-bit allowed: {wide[k]}")
    old, new = (statistics.median(times[k]["fwd"]) for k in settings)
    oldb, newb = (statistics.median(times[k]["bwd"]) for k in settings)
    print(f"speed-up: forward {old / new:.2f}x, backward {oldb / newb:.2f}x; output identical "
          f"{torch.equal(y0, y1)}, input gradient identical {torch.equal(g0, g1)}")


if __name__ == "__main__":
    main()
