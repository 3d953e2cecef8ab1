"""Chunked selective scan: the form that exports to ONNX (two short scans, no per-step unrolling).

Same signature and result as ``ref.selective_scan_ref``; letters as there (b batch, d channels,
l sequence, n state, g groups), plus
  k  CHUNK, steps per chunk       c  chunks = ceil(l / k)

The recurrence h[t] = a[t] h[t-1] + x[t] (a = exp(dt A), x = dt B u) is split in chunks of k
steps (a square-root decomposition of the sequence):
1. an inner scan over the k positions of a chunk runs every chunk at once from a zero state
   (carry (b, d, c, n): all chunks advance one step per iteration);
2. an outer scan over the c chunks carries the true state from chunk to chunk, using each
   chunk's decay exp(sum dt A) and its local end state;
3. each position adds the state that entered its chunk times exp(S), S the cumulative sum of
   dt A inside the chunk (log space; S <= 0 since A < 0, so exp never overflows).
That is k + c iterations of whole-tensor ops instead of l, and the same O(l d n) memory as
the reference. Mamba-1's A differs per state n, so Mamba-2's intra-chunk matrix (C B^T masked
by the segment sums) would need a (k, k, n) tensor per channel: we scan inside the chunk instead.
Both scans are ``torch._higher_order_ops.scan``, which torch.export keeps as one node and the
ONNX exporter turns into an ONNX ``Scan``; in eager PyTorch it runs as a loop (k + c steps) and
is differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch._higher_order_ops.scan import scan

from .ref import _expand_groups, scan_inputs

CHUNK = 64  # steps per chunk; k + ceil(l / k) iterations in all


def _step(h: Tensor, ax: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """One recurrence step for any state shape: h' = a h + x; returns (carry, output)."""
    a, x = ax
    h = a * h + x
    return h, h.clone()  # the scan's carry and output must not alias


def _enter(h: Tensor, ax: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Chunk-to-chunk step: output the state entering this chunk, carry the one leaving it."""
    decay, end = ax
    return decay * h + end, h.clone()


def selective_scan_chunked(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """The reference scan computed chunk-wise (see the module docstring); same shapes as ``ref``."""
    dtype_in = u.dtype
    u, dt, Bg, Cg = scan_inputs(u, delta, B, C, delta_bias, delta_softplus)
    b, d, l = u.shape
    n = A.shape[1]
    k = CHUNK
    pad = (-l) % k  # padded steps have dt = 0: a = 1, x = 0, the state passes unchanged
    c = (l + pad) // k
    Bf = _expand_groups(Bg, d).transpose(2, 3)  # (b, d, l, n)
    Cf = _expand_groups(Cg, d).transpose(2, 3)  # (b, d, l, n)
    dA = dt[..., None] * A.float()[:, None, :]  # (b, d, l, n)
    x = (dt * u)[..., None] * Bf  # (b, d, l, n)
    dA = F.pad(dA, (0, 0, 0, pad)).reshape(b, d, c, k, n)  # (b, d, c, k, n)
    x = F.pad(x, (0, 0, 0, pad)).reshape(b, d, c, k, n)  # (b, d, c, k, n)
    Cc = F.pad(Cf, (0, 0, 0, pad)).reshape(b, d, c, k, n)  # (b, d, c, k, n)

    # 1. every chunk from a zero state, one position per iteration.
    a_steps = torch.exp(dA).permute(3, 0, 1, 2, 4)  # (k, b, d, c, n)
    x_steps = x.permute(3, 0, 1, 2, 4)  # (k, b, d, c, n)
    _, h_local = scan(_step, x_steps.new_zeros(b, d, c, n), (a_steps, x_steps))  # (k, b, d, c, n)

    # 2. the state entering each chunk, carried across chunks.
    S = torch.cumsum(dA, dim=3)  # (b, d, c, k, n) log of the decay since the chunk start
    decay = torch.exp(S[:, :, :, -1]).permute(2, 0, 1, 3)  # (c, b, d, n)
    end = h_local[-1].permute(2, 0, 1, 3)  # (c, b, d, n)
    _, h_in = scan(_enter, end.new_zeros(b, d, n), (decay, end))  # (c, b, d, n)

    # 3. add the entering state, decayed to each position, and read out with C.
    h_in = h_in.permute(1, 2, 0, 3)[:, :, :, None]  # (b, d, c, 1, n)
    h = h_local.permute(1, 2, 3, 0, 4) + torch.exp(S) * h_in  # (b, d, c, k, n)
    y = (h * Cc).sum(-1).reshape(b, d, c * k)[:, :, :l]  # (b, d, l)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)
