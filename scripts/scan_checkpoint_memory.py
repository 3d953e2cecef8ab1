"""Memory autograd keeps for the backward of mambairv2_classicSR_x4 with the torch scan.

Usage: PYTHONPATH=. python scripts/scan_checkpoint_memory.py SIZE [never] [always]
"always": CHECKPOINT_ELEMENTS = 0, the scan recomputes its intermediates in the backward;
"never": it keeps them (at 64x64 that is more than 24 GB). Both by default, in one run.
Random weights, one (1, 3, SIZE, SIZE) input that requires its gradient.
"""
import sys
import time

import torch

import model.scan.gpu as gpu
from model import PRESETS, build
from model.scan import set_backend


def saved_bytes(net: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for the backward of net(x)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    return total


if __name__ == "__main__":
    size = int(sys.argv[1])
    modes = sys.argv[2:] or ["never", "always"]
    set_backend("torch")
    net = build(PRESETS["mambairv2_classicSR_x4"]).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.rand(1, 3, size, size, requires_grad=True)
    for mode in modes:
        gpu.CHECKPOINT_ELEMENTS = {"never": 1 << 62, "always": 0}[mode]
        t = time.perf_counter()
        kept = saved_bytes(net, x)
        print(f"classicSR_x4 {size}x{size}, torch scan, checkpoint {mode}: kept for the backward "
              f"{kept / 2**30:.2f} GiB ({time.perf_counter() - t:.1f} s)")
