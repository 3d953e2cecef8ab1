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
The big (k, ..., c, n) tensors are built step-first, so none of them is ever transposed.
Both scans are ``torch._higher_order_ops.scan``, which torch.export keeps as one node and the
ONNX exporter turns into an ONNX ``Scan``; in eager PyTorch it runs as a loop (k + c steps) and
is differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch._higher_order_ops.scan import scan

from .ref import scan_inputs

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
    g = Bg.shape[1]
    e = d // g  # channels per group of B/C

    def steps(t: Tensor) -> Tensor:
        """(b, X, l) -> (k, b, X, c): padded, cut in chunks, step index first (small tensors only)."""
        return F.pad(t, (0, pad)).reshape(*t.shape[:-1], c, k).movedim(-1, 0)

    # Every (k, b, g, e, c, n) tensor is made in the layout the scan reads (step first), so no
    # tensor with both k and n is ever transposed (5-D transposes dominated onnxruntime's time).
    dt_s = steps(dt).reshape(k, b, g, e, c, 1)  # (k, b, g, e, c, 1)
    du_s = steps(dt * u).reshape(k, b, g, e, c, 1)  # (k, b, g, e, c, 1)
    B_s = steps(Bg.reshape(b, g * n, l)).reshape(k, b, g, n, c)  # (k, b, g, n, c)
    C_s = steps(Cg.reshape(b, g * n, l)).reshape(k, b, g, n, c)  # (k, b, g, n, c)
    B_s = B_s.transpose(3, 4)[:, :, :, None]  # (k, b, g, 1, c, n)
    C_s = C_s.transpose(3, 4)[:, :, :, None]  # (k, b, g, 1, c, n)
    dA = dt_s * A.float().reshape(g, e, 1, n)  # (k, b, g, e, c, n)

    # 1. every chunk from a zero state, one position per iteration.
    x = du_s * B_s  # (k, b, g, e, c, n)
    _, h_local = scan(_step, x.new_zeros(b, g, e, c, n), (torch.exp(dA), x))  # (k, b, g, e, c, n)

    # 2. the state entering each chunk, carried across chunks.
    S = torch.cumsum(dA, dim=0)  # (k, b, g, e, c, n) log of the decay since the chunk start
    decay = torch.exp(S[-1]).movedim(3, 0)  # (c, b, g, e, n)
    end = h_local[-1].movedim(3, 0)  # (c, b, g, e, n)
    _, h_in = scan(_enter, end.new_zeros(b, g, e, n), (decay, end))  # (c, b, g, e, n)

    # 3. add the entering state, decayed to each position, and read out with C.
    h = h_local + torch.exp(S) * h_in.movedim(0, 3)  # (k, b, g, e, c, n)
    y = (h * C_s).sum(-1)  # (k, b, g, e, c)
    y = y.movedim(0, -1).reshape(b, d, c * k)[:, :, :l]  # (b, d, l)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)
