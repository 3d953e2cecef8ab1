"""Forward time with glibc's malloc as ``model.malloc`` sets it (freed blocks kept) against the
system's default (``MAMBAIR_MALLOC=system``): each setting in fresh subprocesses, interleaved rounds,
the two light x2 models at 256x256 and the x4 ones at 64x64, with minor page faults and peak memory.

    PYTHONPATH=. python scripts/malloc_reuse.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, resource, time, torch
import model
from model.archs import build
from model.config import PRESETS
from model.malloc import applied
out = {"applied": applied}
for name, s in [("MambaIR_lightSR_x2", 256), ("mambairv2_lightSR_x2", 256),
                ("MambaIR_lightSR_x4", 64), ("mambairv2_lightSR_x4", 64)]:
    net = build(PRESETS[name]).eval()
    x = torch.rand(1, 3, s, s)
    with torch.no_grad():
        net(x)  # warm-up: compiles or loads the kernels
        times = []
        for _ in range(3):
            t = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t)
    out[f"{name} {s}x{s} s"] = min(times)
use = resource.getrusage(resource.RUSAGE_SELF)
out["minor faults"] = use.ru_minflt
out["system CPU s"] = use.ru_stime
out["peak memory MB"] = use.ru_maxrss / 1024
print(json.dumps(out))
"""


def main() -> None:
    """Print one line per measurement: median over rounds of each setting, and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "MAMBAIR_MALLOC" and not k.startswith("MALLOC_")}
    settings = {"system": dict(base, MAMBAIR_MALLOC="system"), "kept": base}
    runs: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for name, env in settings.items():
            done = subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, capture_output=True, text=True,
                                  env=dict(env, PYTHONPATH=str(ROOT)), check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if result.pop("applied") != (name == "kept"):
                sys.exit(f"setting {name!r} did not take effect as expected")
            for key, value in result.items():
                runs.setdefault(key, {}).setdefault(name, []).append(value)
    print(f"# scripts/malloc_reuse.py, {args.rounds} interleaved rounds, medians; ratio = system / kept")
    for key, by in runs.items():
        old, new = statistics.median(by["system"]), statistics.median(by["kept"])
        print(f"{key:34s} system {old:12.3f}   kept {new:12.3f}   ratio {old / new:.2f}")


if __name__ == "__main__":
    main()
