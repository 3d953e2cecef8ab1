"""One LAM pass (forward + input gradient) of each light x4 demo model in float32 and under CPU bf16 autocast.

Usage: PYTHONPATH=. python scripts/lam_bf16_profile.py [REPEATS]
Same process, alternating float32 / bf16 passes on the 64x64 centre crop of assets/chelsea.png
(the LAM bench's input and window); prints wall and CPU seconds of each, NaN gradients, the
gradient's relative L1 change, and the largest items of a torch.profiler run of each dtype.
The scan gets float32 either way: both networks cast its inputs with .float().
"""
import sys
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from model import load_checkpoint
from model.training.data import load_image
from viz import lam

WEIGHTS = {"mambairv2_lightSR_x4": "weights/mambairv2_lightSR_x4_demo.pth",
           "MambaIR_lightSR_x4": "weights/MambaIR_lightSR_x4_demo.pth"}


def one_pass(net: torch.nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Input gradient of the LAM objective (window 16 at the output's centre), as one LAM node."""
    xx = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = net(xx)  # (1, 3, 256, 256)
    (g,) = torch.autograd.grad(lam.attr_grad(out.float(), 120, 120, 16).sum(), xx)
    return g


def main(repeats: int = 3) -> None:
    """Time, compare and profile float32 and bf16 passes for both models."""
    print(f"CPU bf16 units: avx512_bf16 {torch.cpu._is_avx512_bf16_supported()}, "
          f"amx {torch.cpu._is_amx_tile_supported()}; torch threads {torch.get_num_threads()}")
    photo = load_image("assets/chelsea.png")  # (H, W, 3)
    r0, c0 = (photo.shape[0] - 64) // 2, (photo.shape[1] - 64) // 2
    x = torch.from_numpy(np.ascontiguousarray(photo[r0:r0 + 64, c0:c0 + 64].transpose(2, 0, 1)))[None]
    for name, path in WEIGHTS.items():
        net = load_checkpoint(path)
        for p in net.parameters():
            p.requires_grad_(False)
        one_pass(net, x, False), one_pass(net, x, True)  # warm-up
        times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(repeats):
            for bf16 in (False, True):
                t0, c0_ = time.perf_counter(), time.process_time()
                one_pass(net, x, bf16)
                times[bf16].append((time.perf_counter() - t0, time.process_time() - c0_))
        g32, g16 = one_pass(net, x, False), one_pass(net, x, True)
        nan32, nan16 = int(g32.isnan().sum()), int(g16.isnan().sum())
        g32, g16 = lam._zero_nan(g32), lam._zero_nan(g16)
        rel = float((g32 - g16).abs().sum() / g32.abs().sum())
        for bf16 in (False, True):
            wall = np.median([t[0] for t in times[bf16]])
            cpu = np.median([t[1] for t in times[bf16]])
            print(f"{name} {'bf16' if bf16 else 'fp32'}: {wall:.2f} s wall, {cpu:.2f} s CPU per pass "
                  f"(median of {repeats})")
        print(f"{name}: NaN gradients fp32 {nan32}, bf16 {nan16} of {g32.numel()}; "
              f"relative L1 change of the gradient {rel:.3f}")
        for bf16 in (False, True):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                one_pass(net, x, bf16)
            print(f"--- {name} {'bf16' if bf16 else 'fp32'}: largest self-CPU items")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
