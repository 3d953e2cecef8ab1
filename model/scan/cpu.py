"""Compiled CPU selective scan (numba), forward and backward, as an autograd Function.

Same signature and maths as ``ref.selective_scan_ref`` (the spec). Dimension
letters as in ``ref.py``: b batch, d channels, l sequence, n state, g groups of
B/C (channel c reads group c // (d // g)); m the channels of one chunk.

Split of the work:
  * torch (autograd as usual): ``delta + delta_bias``, softplus, ``+ D u``,
    ``* silu(z)`` -- cheap element-wise ops on (b, d, l);
  * numba (this file's ``_ScanCore``): the recurrence h_t = exp(dt_t A) h_{t-1}
    + dt_t B_t u_t, y_t = <C_t, h_t>, which is the b*d*l*n part.

Layout: channels innermost. u, dt and y are (b, l, d) inside the kernels, so
the innermost loop of every step runs over a chunk of up to 64 channels of one
group, which read the same scalars B_t[s] and C_t[s]: every lane of a SIMD
register does independent work (AVX-512: 16 channels per instruction). The
state size (8-16 in the light models) is the middle loop; vectorising over it,
as a (b, d, l) layout would, leaves half-empty registers and a reduction per
step. exp(dt A) is a vectorisable polynomial (``_exp32``), not libm's expf.

Parallelism: the forward over (b, g, channel chunk) with ``prange``. The
backward recomputes the hidden states of a chunk of 16 channels into a private
(l + 1, n, 16) buffer (nothing is kept from the forward: its memory is just its
output), then runs the reverse recurrence. B and C gradients are shared by the
d // g channels of a group, so the backward runs in parallel over (b, g, part)
where each part owns a slice of the group's channels and writes its own
partial gradient; the parts are summed afterwards. Extra backward memory:
``parts * b * g * l * n`` floats for each of dB and dC (parts <= numba threads)
plus ``(l + 1) * n * 16`` floats per running task.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from torch import Tensor

from .ref import scan_inputs

# cache=True writes the compiled machine code next to this file (__pycache__),
# so later processes (CI, the app) skip the few-second compile. fastmath only
# allows contraction into FMAs (one rounding instead of two: no reordering, no
# assumptions about NaN or infinity).
_JIT = dict(parallel=True, cache=True, fastmath={"contract"})
_LANES = 16  # float32 lanes of an AVX-512 register: chunks are padded to a multiple (no tail loops)
_FWD_CHUNK = 128  # most channels per forward task: B_t, C_t loads amortised over 8 vectors


@intrinsic
def _f32_from_bits(typingctx, bits):  # pragma: no cover - compile-time
    """Reinterpret an int32 as the float32 with the same bits (an LLVM bitcast, vectorisable)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@numba.njit(inline="always", cache=True)
def _exp32(x):  # pragma: no cover - compiled
    """exp(x) for float32 x, as straight-line arithmetic that LLVM vectorises inside a loop.

    libm's expf is most of the scan's time and cannot be vectorised here, so:
    exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2 (Cody-Waite split of
    ln 2), exp(r) by its degree-8 Taylor polynomial (|r| <= ln2/2: relative error
    < 1e-9 before float32 rounding), 2^k built from its float32 exponent bits.
    x is clamped to [-87, 88] (exp(-87) ~ 1.6e-38 stands in for smaller values;
    the scan only has x = dt * A <= 0).
    """
    v = min(max(x, np.float32(-87.0)), np.float32(88.0))
    k = np.floor(v * np.float32(1.4426950408889634) + np.float32(0.5))
    r = v - k * np.float32(0.693359375) + k * np.float32(2.12194440e-4)
    p = np.float32(1 / 5040) + r * np.float32(1 / 40320)
    p = np.float32(1 / 720) + r * p
    p = np.float32(1 / 120) + r * p
    p = np.float32(1 / 24) + r * p
    p = np.float32(1 / 6) + r * p
    p = np.float32(0.5) + r * p
    p = np.float32(1.0) + r * p
    p = np.float32(1.0) + r * p
    return p * _f32_from_bits((np.int32(k) + np.int32(127)) << 23)


@numba.njit(**_JIT)
def _scan_fwd(u, dt, At, Bt, Ct, y, nchunk):  # pragma: no cover - compiled
    """y[b,t,c] = <C[b,g,t,:], h_t[c,:]>; u, dt, y (b,l,d); At (n,d); Bt, Ct (b,g,l,n)."""
    nb, nl, nd = u.shape
    nn_ = At.shape[0]
    ng = Bt.shape[1]
    per = nd // ng
    clen = (per + nchunk - 1) // nchunk
    mp = (clen + _LANES - 1) // _LANES * _LANES  # lanes per task, padded
    for k in numba.prange(nb * ng * nchunk):
        q = k % nchunk
        gi = (k // nchunk) % ng
        bi = k // (nchunk * ng)
        c0 = gi * per + q * clen
        m = min(clen, gi * per + per - c0)  # real channels; lanes m..mp-1 stay 0
        if m <= 0:
            continue
        h = np.zeros((nn_, mp), dtype=np.float32)  # h_t of the chunk's channels
        Ac = np.zeros((nn_, mp), dtype=np.float32)  # A of the chunk
        for s in range(nn_):
            Ac[s, :m] = At[s, c0:c0 + m]
        dtv = np.zeros(mp, dtype=np.float32)
        duv = np.zeros(mp, dtype=np.float32)  # dt_t u_t
        acc = np.empty(mp, dtype=np.float32)
        for t in range(nl):
            dt_row = dt[bi, t, c0:c0 + m]
            u_row = u[bi, t, c0:c0 + m]
            for j in range(m):
                dtv[j] = dt_row[j]
                duv[j] = dt_row[j] * u_row[j]
            acc[:] = 0.0
            for s in range(nn_):
                bs = Bt[bi, gi, t, s]
                cs = Ct[bi, gi, t, s]
                for j in range(mp):  # the hot loop: one SIMD lane per channel
                    hv = _exp32(dtv[j] * Ac[s, j]) * h[s, j] + duv[j] * bs
                    h[s, j] = hv
                    acc[j] += cs * hv
            y[bi, t, c0:c0 + m] = acc[:m]


@numba.njit(fastmath={"reassoc", "nsz"}, cache=True)
def _dot(a, b, m):  # pragma: no cover - compiled
    """sum_j a[j] b[j] for j < m, as a vectorised tree sum (the flags allow reordering it;
    a function of its own so that they apply to nothing else)."""
    acc = np.float32(0.0)
    for j in range(m):
        acc += a[j] * b[j]
    return acc


@numba.njit(cache=True, fastmath={"contract"})
def _recompute_states(u, dt, At, Bt, bi, gi, c0, m, hs):  # pragma: no cover - compiled
    """hs[t + 1, s, j] = h_t of channel c0 + j (j < m <= 16) of group gi, batch bi; hs[0] = 0.

    The work arrays are allocated here, not passed in: LLVM then knows that they
    overlap nothing else, and vectorises the loop without run-time overlap checks.
    """
    nl = u.shape[1]
    nn_ = At.shape[0]
    w = _LANES
    Ac = np.zeros((nn_, w), dtype=np.float32)  # lanes m..w-1 stay zero throughout
    for s in range(nn_):
        Ac[s, :m] = At[s, c0:c0 + m]
    dtv = np.zeros(w, dtype=np.float32)
    duv = np.zeros(w, dtype=np.float32)
    hs[0, :, :] = 0.0
    for t in range(nl):
        dt_row = dt[bi, t, c0:c0 + m]
        u_row = u[bi, t, c0:c0 + m]
        for j in range(m):
            dtv[j] = dt_row[j]
            duv[j] = dt_row[j] * u_row[j]
        for s in range(nn_):
            bs = Bt[bi, gi, t, s]
            for j in range(w):
                hs[t + 1, s, j] = _exp32(dtv[j] * Ac[s, j]) * hs[t, s, j] + duv[j] * bs


@numba.njit(cache=True, fastmath={"contract"})
def _reverse(u, dt, At, Bt, Ct, dy, bi, gi, c0, m, hs, du, ddt, dA_b, dB, dC):  # pragma: no cover
    """The reverse recurrence of channels c0..c0+m-1 given their states hs; adds to dB, dC (l, n).

    Work arrays allocated here (see ``_recompute_states``), all float32 and with
    fixed row offsets (a float64 array, or one more array, in the hot loop makes
    LLVM fall back to scalar code): st[s] holds A, dLoss/dh_t arriving from t + 1,
    dLoss/dh_t and this block's dA terms; v holds dt_t, u_t, dt_t u_t, dy_t, ddt_t,
    du_t. dA sums l terms: float32 over blocks of 64 steps, then float64.
    """
    nl = u.shape[1]
    nn_ = At.shape[0]
    w = _LANES
    st = np.zeros((nn_, 4, w), dtype=np.float32)  # lanes m..w-1 stay zero throughout
    for s in range(nn_):
        st[s, 0, :m] = At[s, c0:c0 + m]
    v = np.zeros((6, w), dtype=np.float32)
    dA = np.zeros((nn_, w), dtype=np.float64)
    for t in range(nl - 1, -1, -1):
        dt_row = dt[bi, t, c0:c0 + m]
        u_row = u[bi, t, c0:c0 + m]
        dy_row = dy[bi, t, c0:c0 + m]
        for j in range(m):
            v[0, j] = dt_row[j]
            v[1, j] = u_row[j]
            v[2, j] = dt_row[j] * u_row[j]
            v[3, j] = dy_row[j]
        v[4, :] = 0.0
        v[5, :] = 0.0
        for s in range(nn_):
            bs = Bt[bi, gi, t, s]
            cs = Ct[bi, gi, t, s]
            for j in range(w):  # the hot loop: one SIMD lane per channel
                a = _exp32(v[0, j] * st[s, 0, j])  # a_t = exp(dt_t A)
                g = v[3, j] * cs + st[s, 1, j]  # dLoss/dh_t
                ga = g * hs[t, s, j] * a  # dLoss/d(dt A) through a_t (hs[t] = h_{t-1})
                v[4, j] += ga * st[s, 0, j] + g * bs * v[1, j]
                v[5, j] += g * v[0, j] * bs
                st[s, 3, j] += ga * v[0, j]
                st[s, 1, j] = g * a
                st[s, 2, j] = g
        for s in range(nn_):  # B and C are shared by the chunk: sums over its lanes
            dB[t, s] += _dot(st[s, 2], v[2], w)
            dC[t, s] += _dot(v[3], hs[t + 1, s], w)
        ddt[bi, t, c0:c0 + m] = v[4, :m]
        du[bi, t, c0:c0 + m] = v[5, :m]
        if t % 64 == 0:
            for s in range(nn_):
                dA[s, :] += st[s, 3, :]
                st[s, 3, :] = 0.0
    for s in range(nn_):
        dA_b[bi, s, c0:c0 + m] = dA[s, :m]


@numba.njit(**_JIT)
def _scan_bwd(u, dt, At, Bt, Ct, dy, du, ddt, dA_b, dB_p, dC_p, nparts):  # pragma: no cover
    """Gradients of the core scan. u, dt, dy, du, ddt (b,l,d); dA_b (b,n,d); dB_p, dC_p (parts,b,g,l,n)."""
    nb, nl, nd = u.shape
    nn_ = At.shape[0]
    ng = Bt.shape[1]
    per = nd // ng
    share = (per + nparts - 1) // nparts
    for k in numba.prange(nb * ng * nparts):
        p = k % nparts
        gi = (k // nparts) % ng
        bi = k // (nparts * ng)
        hs = np.empty((nl + 1, nn_, _LANES), dtype=np.float32)  # hs[t + 1] = h_t of 16 channels
        c_lo = gi * per + p * share
        c_hi = min(gi * per + per, c_lo + share)
        for c0 in range(c_lo, c_hi, _LANES):
            m = min(_LANES, c_hi - c0)
            _recompute_states(u, dt, At, Bt, bi, gi, c0, m, hs)
            _reverse(u, dt, At, Bt, Ct, dy, bi, gi, c0, m, hs, du, ddt, dA_b,
                     dB_p[p, bi, gi], dC_p[p, bi, gi])


@numba.njit(parallel=True, cache=True)
def _transpose(src, dst):  # pragma: no cover - compiled
    """dst[b, q, p] = src[b, p, q], in 8-row tiles.

    torch's own transposed copy of a (1, 480, 4096) float32 tensor takes ~3x longer:
    with rows 4096 floats apart, walking down a column hits one cache set over and
    over. Eight source rows (eight cache lines per column step) fit that set's ways.
    """
    nb, np_, nq = src.shape
    tp, tq = 8, 64
    nblk = (np_ + tp - 1) // tp
    for k in numba.prange(nb * nblk):
        bi = k // nblk
        p0 = (k % nblk) * tp
        p1 = min(p0 + tp, np_)
        for q0 in range(0, nq, tq):
            for q in range(q0, min(q0 + tq, nq)):
                d_row = dst[bi, q, p0:p1]
                for i in range(p1 - p0):
                    d_row[i] = src[bi, p0 + i, q]


def _swap12(x: Tensor) -> Tensor:
    """(b, p, q) -> contiguous (b, q, p), float32."""
    x = x.detach().float().contiguous()
    out = torch.empty((x.shape[0], x.shape[2], x.shape[1]), dtype=torch.float32)
    _transpose(x.numpy(), out.numpy())
    return out


def _np(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


class _ScanCore(torch.autograd.Function):
    """y = scan(u, dt, A, B, C) with dt already biased/softplussed; u, dt, y (b, d, l); B, C (b, g, l, n)."""

    @staticmethod
    def forward(ctx, u: Tensor, dt: Tensor, A: Tensor, Bt: Tensor, Ct: Tensor) -> Tensor:
        b, d, l = u.shape
        g = Bt.shape[1]
        per = d // g
        # enough chunks for every thread even at batch 1 with one group (MambaIRv2)
        nchunk = max(-(-per // _FWD_CHUNK), min(-(-per // _LANES), -(-numba.get_num_threads() // (b * g))))
        u_t, dt_t = _swap12(u), _swap12(dt)  # (b, d, l) -> (b, l, d): channels innermost
        y_t = torch.empty_like(u_t)  # (b, l, d)
        _scan_fwd(u_t.numpy(), dt_t.numpy(), _np(A.t()), _np(Bt), _np(Ct), y_t.numpy(), nchunk)
        ctx.save_for_backward(u_t, dt_t, A, Bt, Ct)
        return _swap12(y_t)  # (b, l, d) -> (b, d, l)

    @staticmethod
    def backward(ctx, dy: Tensor):
        u_t, dt_t, A, Bt, Ct = ctx.saved_tensors
        b, l, d = u_t.shape
        g, n = Bt.shape[1], Bt.shape[3]
        parts = max(1, min(numba.get_num_threads(), -(-(d // g) // _LANES)))
        du_t = torch.empty_like(u_t)  # (b, l, d)
        ddt_t = torch.empty_like(u_t)  # (b, l, d)
        dA_b = torch.empty((b, n, d), dtype=torch.float32)
        dB_p = torch.zeros((parts, b, g, l, n), dtype=torch.float32)
        dC_p = torch.zeros((parts, b, g, l, n), dtype=torch.float32)
        _scan_bwd(u_t.numpy(), dt_t.numpy(), _np(A.t()), _np(Bt), _np(Ct), _swap12(dy).numpy(),
                  du_t.numpy(), ddt_t.numpy(), dA_b.numpy(), dB_p.numpy(), dC_p.numpy(), parts)
        dA = dA_b.sum(0).t()  # (b, n, d) -> (d, n), summed over the batch
        return _swap12(du_t), _swap12(ddt_t), dA, dB_p.sum(0), dC_p.sum(0)  # dB, dC summed over parts


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
    y = _ScanCore.apply(uf, dt, A.float(), Bt, Ct)  # (b, d, l)
    if D is not None:
        y = y + uf * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)
