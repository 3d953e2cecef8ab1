"""Forward time with memory as ``model.malloc`` sets it (glibc keeps freed blocks; torch asks for huge
pages) against the system's default (``MAMBAIR_MALLOC=system``: neither), or with ``--against
no-huge-pages`` against the same without huge pages (``THP_MEM_ALLOC_ENABLE=0``): each setting in
fresh subprocesses, interleaved rounds, the two light x2 models at 256x256 and the x4 ones at 64x64,
with minor page faults, peak memory and the huge pages in use at the end.

    PYTHONPATH=. python scripts/malloc_reuse.py [--rounds 3] [--against system|no-huge-pages]
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
from model.malloc import applied, use_huge_pages
out = {"applied": [applied, use_huge_pages()]}
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
rollup = open("/proc/self/smaps_rollup").read()
out["huge pages MB"] = int(rollup.split("AnonHugePages:")[1].split()[0]) / 1024
print(json.dumps(out))
"""


def main() -> None:
    """Print one line per measurement: median over rounds of each setting, and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--against", choices=("system", "no-huge-pages"), default="system")
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items()
            if k not in ("MAMBAIR_MALLOC", "THP_MEM_ALLOC_ENABLE") and not k.startswith("MALLOC_")}
    if args.against == "system":
        settings = {"system": dict(base, MAMBAIR_MALLOC="system"), "kept": base}
        expected = {"system": [False, False], "kept": [True, True]}
    else:
        settings = {"no-huge-pages": dict(base, THP_MEM_ALLOC_ENABLE="0"), "kept": base}
        expected = {"no-huge-pages": [True, False], "kept": [True, True]}
    old_name = args.against
    runs: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for name, env in settings.items():
            done = subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, capture_output=True, text=True,
                                  env=dict(env, PYTHONPATH=str(ROOT)), check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if result.pop("applied") != expected[name]:
                sys.exit(f"setting {name!r} did not take effect as expected")
            for key, value in result.items():
                runs.setdefault(key, {}).setdefault(name, []).append(value)
    print(f"# scripts/malloc_reuse.py, {args.rounds} interleaved rounds, medians; ratio = {old_name} / kept")
    for key, by in runs.items():
        old, new = statistics.median(by[old_name]), statistics.median(by["kept"])
        ratio = f"{old / new:.3f}" if new else "-"
        print(f"{key:34s} {old_name} {old:12.3f}   kept {new:12.3f}   ratio {ratio}")


if __name__ == "__main__":
    main()
