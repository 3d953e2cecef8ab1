"""GPU-capable selective scans: a pure-PyTorch parallel scan and a mamba-ssm wrapper.

Dimension letters as in ``ref.py``: b batch, d channels, l sequence, n state,
g groups of B/C (channel c reads group c // (d // g)); k = d // g channels per group.

``selective_scan_torch`` solves the linear recurrence h_t = a_t h_{t-1} + x_t
(a_t = exp(dt_t A), x_t = dt_t u_t B_t) with the *odd-even* (recursive
halving, Blelloch-style) parallel scan: neighbouring pairs are combined,
the half-length problem is solved recursively, and the even positions are
filled in from their odd neighbours. That is O(log l) levels of whole-tensor
torch ops (the only Python loop), O(l) total work, and about 3x the memory
of one (b, d, l, n) tensor, autograd through plain torch ops (recomputed in the
backward instead of kept, when that tensor is large: ``CHECKPOINT_ELEMENTS``). It runs on any
device; on CPU it is slower than the compiled numba scan, it exists for CUDA
without mamba-ssm and as a second independent check of the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .ref import scan_inputs


def _linear_recurrence(a: Tensor, x: Tensor) -> Tensor:
    """h_t = a_t h_{t-1} + x_t with h_{-1} = 0, along dim -2 of (..., l, n) tensors."""
    l = a.shape[-2]
    if l == 1:
        return x
    if l % 2:  # pad one identity step (a=1, x=0) so that positions pair up
        a = torch.cat([a, torch.ones_like(a[..., :1, :])], dim=-2)  # (..., l+1, n)
        x = torch.cat([x, torch.zeros_like(x[..., :1, :])], dim=-2)  # (..., l+1, n)
    a0, a1 = a[..., 0::2, :], a[..., 1::2, :]  # (..., l/2, n) even / odd steps
    x0, x1 = x[..., 0::2, :], x[..., 1::2, :]  # (..., l/2, n)
    # Two steps in one: h_{2i+1} = (a_{2i+1} a_{2i}) h_{2i-1} + (a_{2i+1} x_{2i} + x_{2i+1}).
    h_odd = _linear_recurrence(a1 * a0, a1 * x0 + x1)  # (..., l/2, n) states at 2i+1
    h_prev = F.pad(h_odd[..., :-1, :], (0, 0, 1, 0))  # (..., l/2, n) h_{2i-1}, zero for i = 0
    h_even = a0 * h_prev + x0  # (..., l/2, n) states at 2i
    h = torch.stack([h_even, h_odd], dim=-2)  # (..., l/2, 2, n)
    return h.flatten(-3, -2)[..., :l, :]  # (..., l, n)


# Above this many elements in one (b, d, l, n) tensor (256 MB in float32), autograd does not keep
# the scan's intermediates: the scan runs under activation checkpointing and is recomputed in
# the backward. The intermediates are several (b, d, l, n) tensors per layer, which at 128x128
# made mambairv2_classicSR_x4's forward+backward run out of 80 GB; below the threshold (the
# light models' training patches, LAM at 64x64) recomputing would only cost time.
CHECKPOINT_ELEMENTS = 1 << 26


def _scan_core_torch(uf: Tensor, dt: Tensor, A: Tensor, Bg: Tensor, Cg: Tensor) -> Tensor:
    """y = <C_t, h_t> for float32 uf, dt (b, d, l), A (d, n), Bg, Cg (b, g, n, l); returns (b, d, l)."""
    b, d, l = uf.shape
    g, n = Bg.shape[1], Bg.shape[2]
    k = d // g
    dt4 = dt.view(b, g, k, l, 1)  # (b, d, l) -> (b, g, k, l, 1)
    a = torch.exp(dt4 * A.float().view(1, g, k, 1, n))  # (b, g, k, l, n)
    x = (dt4 * uf.view(b, g, k, l, 1)) * Bg.transpose(2, 3).unsqueeze(2)  # (b, g, k, l, n)
    h = _linear_recurrence(a, x)  # (b, g, k, l, n)
    return torch.einsum("bgkln,bgnl->bgkl", h, Cg).reshape(b, d, l)  # (b, g, k, l) -> (b, d, l)


def selective_scan_torch(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                         z: Tensor | None = None, delta_bias: Tensor | None = None,
                         delta_softplus: bool = False) -> Tensor:
    """Parallel (odd-even) selective scan in PyTorch ops, any device (mamba-ssm signature)."""
    dtype_in = u.dtype
    b, d, l = u.shape
    uf, dt, Bg, Cg = scan_inputs(u, delta, B, C, delta_bias, delta_softplus)  # float32, (b, g, n, l)
    args = (uf, dt, A, Bg, Cg)
    if (b * d * l * A.shape[1] > CHECKPOINT_ELEMENTS and torch.is_grad_enabled()
            and any(t.requires_grad for t in args)):
        y = checkpoint(_scan_core_torch, *args, use_reentrant=False)  # (b, d, l)
    else:
        y = _scan_core_torch(*args)  # (b, d, l)
    if D is not None:
        y = y + uf * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)


def load_mamba_ssm():
    """mamba-ssm's fused CUDA ``selective_scan_fn``, wrapped to refuse non-CUDA tensors.

    Importing mamba_ssm runs its package ``__init__`` (Mamba2, Triton kernels,
    optional extras) which can fail in many ways besides ImportError, so the
    caller (the dispatcher) treats any exception as "backend unavailable".
    """
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    def selective_scan_mamba_ssm(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                                 D: Tensor | None = None, z: Tensor | None = None,
                                 delta_bias: Tensor | None = None, delta_softplus: bool = False) -> Tensor:
        """mamba-ssm's CUDA kernel (float32 in, u's dtype out); CUDA tensors only."""
        if not u.is_cuda:
            raise ValueError("the mamba_ssm backend needs CUDA tensors")
        dtype_in = u.dtype
        # The kernel wants contiguous float inputs (it also supports grouped B/C (b, g, n, l)).
        args = [t.float().contiguous() if t is not None else None
                for t in (u, delta, A, B, C, D, z, delta_bias)]
        y = selective_scan_fn(*args[:5], D=args[5], z=args[6], delta_bias=args[7],
                              delta_softplus=delta_softplus)
        return y.to(dtype_in)

    return selective_scan_mamba_ssm
