"""MambaIRv2-light's window attention: the compiled CPU kernels against SDPA, in one process.

Usage: PYTHONPATH=. python scripts/attention_kernel_ab.py [--rounds 7] [--batches 1 4]

Two levels, each timed interleaved (``kernel="auto"`` then ``"sdpa"`` in every round, median over
rounds), random seeded weights with the network's parameters frozen (a restore or LAM):
  * one ``WindowAttention`` module on the 16 windows of a 64x64 image (48 channels, 4 heads,
    16x16 windows), unmasked and with the shifted-window mask: forward without gradient, and
    forward+backward w.r.t. qkv;
  * the whole MambaIRv2-light x4 network at 64x64: forward without gradient, and forward+backward
    w.r.t. the input (LAM's), for each batch size.
Prints milliseconds and the ratio SDPA / kernel (above 1: the kernel is faster), and the largest
relative gradient difference between the two paths. A shared machine is noisy: read ratios.
"""
from __future__ import annotations

import argparse
import statistics
import time

import model  # noqa: F401  (its OpenMP settings must precede torch's loading)

# isort: split
import torch

from model.archs import build
from model.archs.common import (
    WindowAttention,
    relative_position_index,
    shifted_window_mask_sparse,
)
from model.config import PRESETS


def _interleaved(fns: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each function, called in turn every round after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _line(label: str, t: dict[str, float]) -> str:
    return (f"{label:<46} kernel {t['auto'] * 1e3:8.2f} ms   sdpa {t['sdpa'] * 1e3:8.2f} ms   "
            f"sdpa/kernel {t['sdpa'] / t['auto']:.2f}x")


def module_ab(rounds: int) -> None:
    """One attention module, plain and masked windows."""
    torch.manual_seed(0)
    s, nh, c = 16, 4, 48
    attn = WindowAttention(c, s, nh).requires_grad_(False)
    rpi = relative_position_index(s)
    windows, mask = shifted_window_mask_sparse(64, 64, s, 1)
    qkv = torch.randn(16, s * s, 3 * c)
    gy = torch.randn(16, s * s, c)
    for name, args in (("unmasked", (rpi,)), ("shifted-window mask", (rpi, mask, windows))):
        def fwd(kernel: str, args=args) -> None:
            attn.kernel = kernel
            with torch.no_grad():
                attn(qkv, *args)

        def fwd_bwd(kernel: str, args=args) -> torch.Tensor:
            attn.kernel = kernel
            x = qkv.clone().requires_grad_(True)
            return torch.autograd.grad(attn(x, *args), x, gy)[0]

        g_k, g_s = fwd_bwd("auto"), fwd_bwd("sdpa")
        print(_line(f"module, {name}, forward",
                    _interleaved({k: lambda k=k: fwd(k) for k in ("auto", "sdpa")}, rounds)))
        print(_line(f"module, {name}, forward+backward",
                    _interleaved({k: lambda k=k: fwd_bwd(k) for k in ("auto", "sdpa")}, rounds))
              + f"   grad rel diff {((g_k - g_s).norm() / g_s.norm()).item():.1e}")


def network_ab(rounds: int, batches: list[int]) -> None:
    """The whole MambaIRv2-light x4 at 64x64."""
    torch.manual_seed(0)
    net = build(PRESETS["mambairv2_lightSR_x4"]).eval().requires_grad_(False)
    mods = [m for m in net.modules() if isinstance(m, WindowAttention)]

    def use(kernel: str) -> None:
        for m in mods:
            m.kernel = kernel

    for b in batches:
        x = torch.rand(b, 3, 64, 64)

        def fwd(kernel: str, x=x) -> None:
            use(kernel)
            with torch.no_grad():
                net(x)

        def fwd_bwd(kernel: str, x=x) -> torch.Tensor:
            use(kernel)
            xg = x.clone().requires_grad_(True)
            return torch.autograd.grad(net(xg).sum(), xg)[0]

        g_k = fwd_bwd("auto")
        assert {m.last_kernel for m in mods} == {"numba"}, "the compiled kernel did not run"
        g_s = fwd_bwd("sdpa")
        print(_line(f"network x4 64x64 batch {b}, forward",
                    _interleaved({k: lambda k=k: fwd(k) for k in ("auto", "sdpa")}, rounds)))
        print(_line(f"network x4 64x64 batch {b}, forward+backward",
                    _interleaved({k: lambda k=k: fwd_bwd(k) for k in ("auto", "sdpa")}, rounds))
              + f"   grad rel diff {((g_k - g_s).norm() / g_s.norm()).item():.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, rounds {args.rounds}")
    module_ab(args.rounds)
    network_ab(args.rounds, args.batches)


if __name__ == "__main__":
    main()
