"""Where a CPU forward and forward+backward of the light networks spend their time.

Usage: python -m model.evaluation.cpu_profile [--presets P ...] [--sizes 64 256]
       [--threads 2] [--no-backward] [--top 12]

For each preset and size, one warm-up, then one profiled forward (no_grad) and one profiled
forward+backward (input gradient of ``output.sum()``, parameters frozen: what LAM does), with
torch.profiler. Two tables per pass:
  * per part of the network: each module's time inclusive of its children minus the time of its
    profiled children ("self"), summed per part (scan, window attention, SGN routing/sort, FFN,
    convolutions, ...). Forward parts come from module hooks that open a ``record_function``
    range; backward ops are attributed by their autograd name (``ScanCoreBackward``,
    ``...AttentionBackward`` ...) as the backward does not run inside the forward's ranges.
  * per op: torch's own ``key_averages`` by self CPU time (``copy_`` = layout copies).
Random weights (time does not depend on them). Times are wall clock of one run on a possibly
shared machine: read shares, not absolute seconds.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from model.archs import build
from model.archs.common import WindowAttention
from model.archs.mambair import CAB, SS2D
from model.archs.mambairv2 import ASSM, GatedMLP, SelectiveScan
from model.config import PRESETS

# Module class -> part name (first match in this order; a module's self time goes to its part).
PARTS: list[tuple[type, str]] = [
    (SelectiveScan, "scan (v2: proj + kernel + D/prompt)"),
    (ASSM, "ASSM rest (routing, sort, gathers, in_proj/CPE, out norm/proj)"),
    (WindowAttention, "window attention"),
    (GatedMLP, "gated MLP (FFN)"),
    (SS2D, "SS2D (v1: proj, conv, 4 scans, reorders)"),
    (CAB, "CAB (v1 channel-attention convs)"),
    (nn.Conv2d, "other convolutions"),
    (nn.LayerNorm, "layer norms"),
    (nn.Linear, "other linears"),
]


def _part(m: nn.Module) -> str | None:
    for cls, name in PARTS:
        if isinstance(m, cls):
            return name
    return None


def _label_modules(net: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks opening a ``record_function('part::NAME')`` range around each module with a part."""
    handles = []
    for m in net.modules():
        name = _part(m)
        if name is None:
            continue
        stack: list = []

        def pre(mod, args, name=name, stack=stack):
            rf = record_function(f"part::{name}")
            rf.__enter__()
            stack.append(rf)

        def post(mod, args, out, stack=stack):
            stack.pop().__exit__(None, None, None)

        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    return handles


BACKWARD_PARTS = [  # substring of an autograd node name -> part
    ("_Scan", "scan kernel backward (numba)"),
    ("Attention", "window attention backward"),
    ("Convolution", "convolutions backward"),
    ("LayerNorm", "layer norms backward"),
    ("Mm", "matmuls backward (linears, einsums)"),
    ("Bmm", "matmuls backward (linears, einsums)"),
    ("Addmm", "matmuls backward (linears, einsums)"),
    ("Linear", "matmuls backward (linears, einsums)"),  # _InputGradLinearBackward (oneDNN)
    ("Gather", "gathers backward (SGN, windows)"),
    ("Scatter", "gathers backward (SGN, windows)"),
    ("Index", "gathers backward (SGN, windows)"),
]


def _self_by_part(events: list, prefix: str) -> dict[str, float]:
    """Self time (us) per labelled range: its CPU time minus that of labelled ranges nested inside."""
    ranges = [(e.time_range.start, e.time_range.end, e.name[len(prefix):]) for e in events
              if e.name.startswith(prefix)]
    ranges.sort(key=lambda r: (r[0], -r[1]))
    out: dict[str, float] = defaultdict(float)
    stack: list[list] = []  # [start, end, name, child_time]
    for s, e, name in ranges:
        while stack and stack[-1][1] <= s:
            top = stack.pop()
            out[top[2]] += (top[1] - top[0]) - top[3]
        if stack:
            stack[-1][3] += e - s
        stack.append([s, e, name, 0.0])
    while stack:
        top = stack.pop()
        out[top[2]] += (top[1] - top[0]) - top[3]
    return out


def _backward_by_part(events: list) -> dict[str, float]:
    """Time (us) of each top-level autograd node, grouped by BACKWARD_PARTS."""
    out: dict[str, float] = defaultdict(float)
    for e in events:
        if not e.name.startswith("autograd::engine::evaluate_function: "):
            continue
        node = e.name.split(": ", 1)[1]
        part = next((p for key, p in BACKWARD_PARTS if key in node), "other backward (" + node + ")")
        if part.startswith("other"):
            part = "other backward (element-wise, copies, views)"
        out[part] += e.time_range.end - e.time_range.start
    return out


def _table(title: str, parts: dict[str, float], total_us: float) -> str:
    lines = [title, f"  {'part':<62} {'ms':>8} {'share':>6}"]
    for name, us in sorted(parts.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<62} {us / 1e3:8.1f} {100 * us / total_us:5.1f}%")
    rest = total_us - sum(parts.values())
    lines.append(f"  {'(outside the parts: head, pads, residual adds)':<62} {rest / 1e3:8.1f} "
                 f"{100 * rest / total_us:5.1f}%")
    return "\n".join(lines)


def _ops(prof, total_us: float, top: int) -> str:
    lines = [f"  {'op (self CPU)':<50} {'ms':>8} {'share':>6} {'calls':>6}"]
    avgs = sorted(prof.key_averages(), key=lambda a: -a.self_cpu_time_total)
    avgs = [a for a in avgs if not a.key.startswith(("part::", "autograd::engine"))][:top]
    for a in avgs:
        lines.append(f"  {a.key[:50]:<50} {a.self_cpu_time_total / 1e3:8.1f} "
                     f"{100 * a.self_cpu_time_total / total_us:5.1f}% {a.count:6d}")
    return "\n".join(lines)


def profile_one(preset: str, size: int, backward: bool, top: int) -> None:
    """Print the part and op tables of one forward (and one forward+backward) of ``preset``."""
    torch.manual_seed(0)
    net = build(PRESETS[preset]).eval().requires_grad_(False)
    x = torch.rand(1, 3, size, size)
    handles = _label_modules(net)
    with torch.no_grad():
        net(x)  # warm-up (numba load, allocator)
    xg = x.clone().requires_grad_()

    def forward() -> None:
        with torch.no_grad():
            net(x)

    def forward_backward() -> None:
        torch.autograd.grad(net(xg).sum(), xg)

    passes = [("forward", False, forward)]
    if backward:
        forward_backward()  # warm-up of the backward
        passes.append(("forward+backward", True, forward_backward))
    for what, grad, run in passes:

        t0 = time.perf_counter()
        run()
        plain = time.perf_counter() - t0
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            run()
            wall = time.perf_counter() - t0
        events = list(prof.events())
        total_us = wall * 1e6
        parts = _self_by_part(events, "part::")
        if grad:
            for k, v in _backward_by_part(events).items():
                parts[k] += v
        print(f"\n## {preset} {size}x{size} {what}: {plain:.3f} s unprofiled, {wall:.3f} s profiled "
              f"(load average {os.getloadavg()[0]:.1f})")
        print(_table("  per part (self time; forward parts from module hooks):", parts, total_us))
        print(_ops(prof, total_us, top))
    for h in handles:
        h.remove()


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=["mambairv2_lightSR_x4", "MambaIR_lightSR_x4"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[64])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-backward", action="store_true", help="forward only (large sizes)")
    ap.add_argument("--top", type=int, default=12, help="ops listed per pass")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')}")
    for preset in args.presets:
        for size in args.sizes:
            profile_one(preset, size, not args.no_backward, args.top)


if __name__ == "__main__":
    main()
