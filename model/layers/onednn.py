"""``linear``: x W^T + b on the CPU through oneDNN (torch's ``mkldnn._linear_pointwise``), the same
maths as its plain twin ``torch.nn.functional.linear``; ``Linear``, the ``nn.Linear`` that uses it.

Letters: m rows (every leading dimension of x together), k input features, n output features.

Why: torch's CPU float32 matmul (``addmm``, ``mm``) is MKL's sgemm, and MKL runs its AVX2 code on
AMD CPUs, which have AVX-512 too; oneDNN picks its kernels from the CPU's features. On the 2-core AMD
EPYC (Zen 5) VM, two threads, ``import model`` first (its malloc settings), one-off script, per
call: (65536, 48) x (48, 48)^T + b 2.63 -> 1.46 ms, (4, 4096, 48) batch 0.43 -> 0.21 ms,
(65536, 72) x (72, 60)^T 5.06 -> 1.88 ms; a 1024^3 product 112 -> 250 GFLOP/s. oneDNN also adds the
bias inside the product, where ``addmm`` first copies it into every row of the output (the ``copy_``
beside ``addmm`` in ``model.evaluation.cpu_profile``). The outputs were equal bit for bit to
``F.linear``'s at the networks' widths (48-144). Whole networks, in-process A/B: 256x256 x2 forward
1.11x (MambaIRv2-light) and 1.16x (MambaIR-light), x4 64x64 / 48x48 1.04x / 1.06x, LAM 1.03x. On an
Intel CPU MKL has AVX-512 code of its own: a Xeon gave 8.7 against 9.0 ms on the (65536, 48) -> 144
qkv projection alone (README, the fifth stop); the networks were not timed there with this.

``supported`` says when it runs: CPU float32 input, weight and bias, x86-64 with oneDNN in torch, not
while tracing or compiling (an ONNX export records ``F.linear``), and ``ENABLED`` (``MAMBAIR_LINEAR=
torch`` in the environment turns it off). A weight or bias that takes a gradient (training) keeps
``F.linear``: the backward here gives the input's gradient only, which is what LAM asks for
(``viz.lam`` runs with the parameters' ``requires_grad`` off).
"""

from __future__ import annotations

import os
import platform

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

# oneDNN where torch has it, on x86-64 (its kernels elsewhere were not measured); a module flag so
# that benchmarks and tests can compare both paths in one process.
ENABLED = (os.environ.get("MAMBAIR_LINEAR", "onednn") != "torch"
           and platform.machine().lower() in ("x86_64", "amd64")
           and torch.backends.mkldnn.is_available()
           and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def supported(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> bool:
    """Whether ``linear`` may run x W^T + b on oneDNN (see the module text)."""
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    return (ENABLED and not tracing and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and (bias is None or bias.dtype == torch.float32)
            and weight.dim() == 2 and x.dim() >= 2 and x.numel() > 0)


def _onednn(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """(.., k) x (n, k)^T + (n,) -> (.., n), by oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _InputGradLinear(torch.autograd.Function):
    """oneDNN's x W^T + b with the gradient w.r.t. x only: dx = dy W, itself a oneDNN product."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(weight)
        return _onednn(x, weight, bias)

    @staticmethod
    def backward(ctx, dy: Tensor) -> tuple[Tensor, None, None]:
        (weight,) = ctx.saved_tensors
        # dy W = dy (W^T)^T: the product with W^T (k, n) as oneDNN's weight; dy may be an expanded
        # view (stride 0) from a sum, which oneDNN's row strides do not describe.
        return _onednn(dy.contiguous(), weight.t().contiguous(), None), None, None


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)``, on oneDNN where ``supported`` and no parameter takes a gradient."""
    params_grad = torch.is_grad_enabled() and (weight.requires_grad
                                               or (bias is not None and bias.requires_grad))
    if params_grad or not supported(x, weight, bias):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and x.requires_grad:
        return _InputGradLinear.apply(x, weight, bias)
    return _onednn(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` (the same parameters and state_dict keys) whose forward is ``linear``."""

    def forward(self, x: Tensor) -> Tensor:
        """x W^T + b."""
        return linear(x, self.weight, self.bias)
