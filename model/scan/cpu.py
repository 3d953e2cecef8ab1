"""Compiled CPU selective scan (numba), forward and backward, as an autograd Function.

Same signature and maths as ``ref.selective_scan_ref`` (the spec). Dimension
letters as in ``ref.py``: b batch, d channels, l sequence, n state, g groups of
B/C (channel c reads group c // (d // g)).

Split of the work:
  * torch (autograd as usual): ``delta + delta_bias``, softplus, ``+ D u``,
    ``* silu(z)`` -- cheap element-wise ops on (b, d, l);
  * numba (this file's ``_ScanCore``): the recurrence h_t = exp(dt_t A) h_{t-1}
    + dt_t B_t u_t, y_t = <C_t, h_t>, which is the b*d*l*n part.

exp(dt A) is a vectorisable polynomial (``_exp_row``), ~1.8x faster than libm.

Parallelism: forward over b*d channels with ``prange``. Backward recomputes
the hidden states of one channel into a private (l, n) buffer (nothing is
kept from the forward: memory of the forward is just its output), then runs
the reverse recurrence. B and C gradients are shared by the d // g channels
of a group, so the backward runs in parallel over (b, g, part) where each
part owns a slice of the group's channels and writes its own partial
gradient; the parts are summed afterwards. Extra backward memory:
``parts * b * g * l * n`` floats for each of dB and dC (parts <= numba
threads) plus two (l, n) buffers (h_t and exp(dt_t A)) per running task.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .ref import scan_inputs

# cache=True writes the compiled machine code next to this file (__pycache__),
# so later processes (CI, the app) skip the few-second compile.
_JIT = dict(parallel=True, cache=True, fastmath=False)


@numba.njit(inline="always", cache=True)
def _exp_row(x_scale, A_row, e, kb):  # pragma: no cover - compiled
    """e[s] * bits(kb[s]) = exp(x_scale * A_row[s]) for s < n, in a loop LLVM can vectorise.

    libm's expf is ~80% of the scan's time and cannot be vectorised here, so:
    exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2 (Cody-Waite split of
    ln 2), exp(r) by its degree-8 Taylor polynomial (|r| <= ln2/2: relative error
    < 1e-9 before float32 rounding), 2^k written as float32 exponent bits into kb.
    x is clamped to [-87, 88] (exp(-87) ~ 1.6e-38 stands in for smaller values;
    the scan only has x = dt * A <= 0).
    """
    for s in range(A_row.shape[0]):
        x = min(max(x_scale * A_row[s], np.float32(-87.0)), np.float32(88.0))
        k = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))
        r = x - k * np.float32(0.693359375) + k * np.float32(2.12194440e-4)
        p = np.float32(1 / 5040) + r * np.float32(1 / 40320)
        p = np.float32(1 / 720) + r * p
        p = np.float32(1 / 120) + r * p
        p = np.float32(1 / 24) + r * p
        p = np.float32(1 / 6) + r * p
        p = np.float32(0.5) + r * p
        p = np.float32(1.0) + r * p
        e[s] = np.float32(1.0) + r * p
        kb[s] = (np.int32(k) + np.int32(127)) << 23


@numba.njit(**_JIT)
def _scan_fwd(u, dt, A, Bt, Ct, y):  # pragma: no cover - compiled
    """y[b,c,t] = <C[b,g,t,:], h_t>; u, dt (b,d,l); A (d,n); Bt, Ct (b,g,l,n); y (b,d,l)."""
    nb, nd, nl = u.shape
    nn_ = A.shape[1]
    ng = Bt.shape[1]
    per = nd // ng
    for k in numba.prange(nb * nd):
        bi = k // nd
        ci = k % nd
        gi = ci // per
        h = np.zeros(nn_, dtype=np.float32)
        e = np.empty(nn_, dtype=np.float32)  # exp(r) part of exp(dt A)
        kb = np.empty(nn_, dtype=np.int32)  # 2^k part, as float32 bits
        p2 = kb.view(np.float32)
        for t in range(nl):
            dtv = dt[bi, ci, t]
            du = dtv * u[bi, ci, t]
            _exp_row(dtv, A[ci], e, kb)
            acc = np.float32(0.0)
            for s in range(nn_):
                h[s] = (e[s] * p2[s]) * h[s] + du * Bt[bi, gi, t, s]
                acc += Ct[bi, gi, t, s] * h[s]
            y[bi, ci, t] = acc


@numba.njit(**_JIT)
def _scan_bwd(u, dt, A, Bt, Ct, dy, du, ddt, dA_b, dB_p, dC_p, nparts):  # pragma: no cover
    """Gradients of the core scan. du, ddt (b,d,l); dA_b (b,d,n); dB_p, dC_p (parts,b,g,l,n)."""
    nb, nd, nl = u.shape
    nn_ = A.shape[1]
    ng = Bt.shape[1]
    per = nd // ng
    chunk = (per + nparts - 1) // nparts
    for k in numba.prange(nb * ng * nparts):
        p = k % nparts
        gi = (k // nparts) % ng
        bi = k // (nparts * ng)
        hs = np.empty((nl, nn_), dtype=np.float32)  # h_t of the current channel
        es = np.empty((nl, nn_), dtype=np.float32)  # a_t = exp(dt_t A), kept to skip a second exp
        gh = np.empty(nn_, dtype=np.float32)  # dLoss/dh_t coming from t+1
        dAc = np.empty(nn_, dtype=np.float64)
        e = np.empty(nn_, dtype=np.float32)
        kb = np.empty(nn_, dtype=np.int32)
        p2 = kb.view(np.float32)
        c_lo = gi * per + p * chunk
        c_hi = min(gi * per + per, c_lo + chunk)
        for ci in range(c_lo, c_hi):
            # 1. recompute the hidden states of this channel
            for s in range(nn_):
                gh[s] = 0.0
            for t in range(nl):
                dtv = dt[bi, ci, t]
                dxu = dtv * u[bi, ci, t]
                _exp_row(dtv, A[ci], e, kb)
                for s in range(nn_):
                    prev = hs[t - 1, s] if t > 0 else np.float32(0.0)
                    a = e[s] * p2[s]
                    es[t, s] = a
                    hs[t, s] = a * prev + dxu * Bt[bi, gi, t, s]
            # 2. reverse recurrence
            for s in range(nn_):
                dAc[s] = 0.0
            for t in range(nl - 1, -1, -1):
                dtv = dt[bi, ci, t]
                uv = u[bi, ci, t]
                dyv = dy[bi, ci, t]
                acc_dt = np.float32(0.0)
                acc_u = np.float32(0.0)
                for s in range(nn_):
                    g = dyv * Ct[bi, gi, t, s] + gh[s]  # dLoss/dh_t
                    dC_p[p, bi, gi, t, s] += dyv * hs[t, s]
                    a = es[t, s]
                    prev = hs[t - 1, s] if t > 0 else np.float32(0.0)
                    ga = g * prev * a  # dLoss/d(dt*A) through a_t
                    bval = Bt[bi, gi, t, s]
                    acc_dt += ga * A[ci, s] + g * bval * uv
                    dAc[s] += ga * dtv
                    dB_p[p, bi, gi, t, s] += g * dtv * uv
                    acc_u += g * dtv * bval
                    gh[s] = g * a
                ddt[bi, ci, t] = acc_dt
                du[bi, ci, t] = acc_u
            for s in range(nn_):
                dA_b[bi, ci, s] = dAc[s]


def _np(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


class _ScanCore(torch.autograd.Function):
    """y = scan(u, dt, A, B, C) with dt already biased/softplussed; B, C (b, g, l, n)."""

    @staticmethod
    def forward(ctx, u: Tensor, dt: Tensor, A: Tensor, Bt: Tensor, Ct: Tensor) -> Tensor:
        y = torch.empty_like(u)  # (b, d, l)
        _scan_fwd(_np(u), _np(dt), _np(A), _np(Bt), _np(Ct), y.numpy())
        ctx.save_for_backward(u, dt, A, Bt, Ct)
        return y

    @staticmethod
    def backward(ctx, dy: Tensor):
        u, dt, A, Bt, Ct = ctx.saved_tensors
        b, d, l = u.shape
        g, n = Bt.shape[1], Bt.shape[3]
        parts = max(1, min(numba.get_num_threads(), d // g))
        du = torch.empty_like(u)  # (b, d, l)
        ddt = torch.empty_like(u)  # (b, d, l)
        dA_b = torch.empty((b, d, n), dtype=torch.float32)
        dB_p = torch.zeros((parts, b, g, l, n), dtype=torch.float32)
        dC_p = torch.zeros((parts, b, g, l, n), dtype=torch.float32)
        _scan_bwd(_np(u), _np(dt), _np(A), _np(Bt), _np(Ct), _np(dy.float()),
                  du.numpy(), ddt.numpy(), dA_b.numpy(), dB_p.numpy(), dC_p.numpy(), parts)
        return du, ddt, dA_b.sum(0), dB_p.sum(0), dC_p.sum(0)  # sums over batch / parts


def selective_scan_numba(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                         z: Tensor | None = None, delta_bias: Tensor | None = None,
                         delta_softplus: bool = False) -> Tensor:
    """Numba selective scan on CPU tensors (mamba-ssm signature, float32 compute, returns u's dtype)."""
    if u.device.type != "cpu":
        raise ValueError("selective_scan_numba runs on CPU tensors only")
    dtype_in = u.dtype
    b, d, l = u.shape
    uf, dt, Bg, Cg = scan_inputs(u, delta, B, C, delta_bias, delta_softplus)  # float32, (b, g, n, l)
    if d % Bg.shape[1] or Cg.shape[1] != Bg.shape[1]:
        raise ValueError(f"channels d={d} must split evenly into the groups of B/C {tuple(Bg.shape)}")
    Bt = Bg.transpose(2, 3).contiguous()  # (b, g, n, l) -> (b, g, l, n): state innermost
    Ct = Cg.transpose(2, 3).contiguous()  # (b, g, n, l) -> (b, g, l, n)
    y = _ScanCore.apply(uf.contiguous(), dt.contiguous(), A.float().contiguous(), Bt, Ct)  # (b, d, l)
    if D is not None:
        y = y + uf * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)
