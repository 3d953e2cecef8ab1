"""Compiled CPU scan over channel-last tokens (numba): ``selective_scan_tokens_numba``, the kernels of
``cpu.py`` fed from and written back to (b, l, c) token rows through an index per group.

Same maths as ``ref.selective_scan_tokens_ref`` (the spec). Letters as in ``ref.py``, plus q the
rank of the step inputs (dt_rank); ``mg`` = q + 2n is the projection's columns per group, and m (as
in ``cpu.py``) a block's count of real channels.

Why: MambaIR's SS2D reads the image's tokens in two layouts (row-major, column-major), each both
ways. Its depth-wise conv already leaves the tokens channel-last, so a group can read its u, its
step inputs, B and C as one contiguous run per step from the token rows, in its own order
(``index``), and add its output back into the same rows: no layout copies of u (the stacked
row-major / column-major (b, 2, d, l) tensor), no transposed (b, g, l, n) copies of B and C, and
one (l, d) x (d, g mg) matmul for every group's projection (MambaIR-light block at 256x256:
0.148 -> 0.134 s against ``cpu.py``'s rows). For orders that jump around the token rows it is not
the better layout: MambaIRv2's SGN order read this way ran 0.96-0.97x (``bench --compare``), the
rows of a 256x256 map's tokens (12.6 MB) not staying in cache as one channel's row does.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from .cpu import (
    _CHUNK,
    _JIT,
    _KERNEL_LOCK,
    _LANES,
    _add_rows_mapped,
    _block_bwd,
    _block_fwd,
    _block_width,
    _blocks,
    _dt_rows,
    _fma16,
    _follow_torch_threads,
    _forward_work,
    _load16,
    _load_tokens,
    _load_tokens16,
    _prefetch_tokens,
    _softplus_grad_rows,
    _start_group,
    _step_sums16,
    _store16,
    _store_fma16,
    _task_block,
    _unblocks,
    _zero16,
)


@numba.njit(cache=True)
def _block_weights(W, c0, m, w):  # pragma: no cover - compiled
    """(q, w/16, 16): W[c0 + j, q] for j < m, 0 beyond: a block's step-input weights, lanes last."""
    nq = W.shape[1]
    wq = np.zeros((nq, w), dtype=np.float32)
    for q in range(nq):
        for j in range(m):
            wq[q, j] = W[c0 + j, q]
    return wq.reshape(nq, w // _LANES, _LANES)


@numba.njit(inline="always", cache=True)
def _lowrank_step(x3t, wq3, row, x0):  # pragma: no cover - compiled
    """x3t[k] = sum_q wq3[q, k] row[x0 + q] for each 16-lane vector k, in q order (``_fma16``)."""
    for k in range(x3t.shape[0]):
        _zero16(x3t[k])
        for q in range(wq3.shape[0]):
            _fma16(x3t[k], wq3[q, k], row[x0 + q])


@numba.njit(cache=True)
def _lowrank_tokens(pb, index, x0, W, c0, m, s0, rev, x2):  # pragma: no cover - compiled
    """x2[t, j] = sum_q W[c0 + j, q] pb[index[i(s0 + t)], x0 + q] for j < m, 0 beyond: a block's raw
    step inputs from the q step-input columns of its group (from x0) in the token rows pb (l, c);
    w a multiple of 16, each 16 lanes summed in a vector (``_fma16``: the same order and roundings as
    a loop of ``x2[t, j] += W[c0 + j, q] x_q``, which LLVM ran in 8-lane and scalar tails)."""
    nl, w = x2.shape
    last = index.shape[0] - 1
    wq3 = _block_weights(W, c0, m, w)
    x3 = x2.reshape(nl, w // _LANES, _LANES)  # (c, w) -> (c, w/16, 16)
    for t in range(nl):
        _lowrank_step(x3[t], wq3, pb[index[last - s0 - t if rev else s0 + t]], x0)


@numba.njit(cache=True)
def _lowrank_steps(X, W, c0, m, x2):  # pragma: no cover - compiled
    """``_lowrank_tokens`` from a group's step inputs already in step order: X (l, q), x2 (l, w)."""
    nl, w = x2.shape
    wq3 = _block_weights(W, c0, m, w)
    x3 = x2.reshape(nl, w // _LANES, _LANES)
    for t in range(nl):
        _lowrank_step(x3[t], wq3, X[t], 0)


@numba.njit(cache=True)
def _load_group16(xb, index, c0, per, rev, slab):  # pragma: no cover - compiled
    """slab[k, t, j] = xb[index[i(t)], c0 + 16 k + j] for 16 k + j < per, 0 beyond; slab (k, l, 16)
    a group's channels block by block, xb (l, c) one image's token rows, i as in ``_load_tokens``.
    Each row's run of per channels is read at once, not once per block (5 passes over the rows
    for MambaIR-light's 72)."""
    nk, nl = slab.shape[0], slab.shape[1]
    last = index.shape[0] - 1
    for t in range(nl):
        row = xb[index[last - t if rev else t]]
        for k in range(nk):
            _load16(slab[k, t], row, c0 + k * _LANES, per - k * _LANES)


@numba.njit(cache=True)
def _store_group16(xb, index, c0, per, rev, slab):  # pragma: no cover - compiled
    """xb[index[i(t)], c0 + 16 k + j] = slab[k, t, j] for 16 k + j < per: ``_load_group16``'s inverse
    (the other channels of the rows are not written)."""
    nk, nl = slab.shape[0], slab.shape[1]
    last = index.shape[0] - 1
    for t in range(nl):
        row = xb[index[last - t if rev else t]]
        for k in range(nk):
            _store16(row, c0 + k * _LANES, slab[k, t], per - k * _LANES)


@numba.njit(**_JIT)
def _tokens_fwd(u, proj, W, bias, Dv, Ab, index, rev, softplus, y):  # pragma: no cover - compiled
    """y (b, l, p), zeroed: every group's scan added into its tokens' rows, the groups in turn.
    u (b, l, gu p) tokens, group gi reading u's channels of group gi // (g // gu); proj (b, l, g mg),
    group gi's columns gi mg + [0, q) step inputs, then B (n), then C (n); W (g p, q); bias, Dv
    (g p,); Ab (g, k, n, w); index (b, g, l): the token at index i of group gi's order; rev (g,):
    group gi runs its order from the end. One task per block of w channels, running every group of
    it chunk by chunk (as ``cpu._fused_fwd``)."""
    nb, nl = y.shape[0], y.shape[1]
    ng, nk, nn_, w = Ab.shape
    per = y.shape[2]
    gu = u.shape[2] // per
    nq = W.shape[1]
    mg = proj.shape[2] // ng  # projection columns per group
    for task in numba.prange(nb * nk):
        bi, _, k, _, m = _task_block(task, 1, nk, per, w)
        u2, dt2, y2, B2, C2, h, a, dv = _forward_work(w, nn_)
        for gi in range(ng):
            c0 = gi * per + k * w  # the block's first channel among the g p
            uc0 = gi // (ng // gu) * per + k * w  # and of u
            r = rev[gi]
            order = index[bi, gi]
            _start_group(Ab[gi, k], Dv, c0, m, h, a, dv)
            for s0 in range(0, nl, _CHUNK):
                c = min(_CHUNK, nl - s0)
                _load_tokens16(u[bi], order, uc0, m, s0, r, u2[:c])
                _lowrank_tokens(proj[bi], order, gi * mg, W, c0, m, s0, r, y2[:c])  # raw delta in y2
                _dt_rows(y2[:c], bias, c0, m, softplus, dt2[:c])
                _load_tokens(proj[bi], order, gi * mg + nq, nn_, s0, r, B2[:c])
                _load_tokens(proj[bi], order, gi * mg + nq + nn_, nn_, s0, r, C2[:c])
                # the rows this chunk adds into and the next chunk reads arrive during the recurrence
                _prefetch_tokens(y[bi], order, k * w, m, s0, c, r)
                if s0 + c < nl:
                    cn = min(_CHUNK, nl - s0 - c)
                    _prefetch_tokens(u[bi], order, uc0, m, s0 + c, cn, r)
                    _prefetch_tokens(proj[bi], order, gi * mg, nq + 2 * nn_, s0 + c, cn, r)
                _block_fwd(u2[:c], dt2[:c], a, B2[:c], C2[:c], h, y2[:c], m)
                lo = nl - s0 - c if r else s0
                _add_rows_mapped(y[bi], order, k * w, m, lo, c, r, y2, u2, dv)


@numba.njit(**_JIT)
def _tokens_bwd(u, proj, W, bias, Dv, Ab, index, rev, softplus, need_dA, dy, du, ddelta, dAb, dproj, dDp,
                dbp):  # pragma: no cover - compiled
    """Gradients of ``_tokens_fwd``, one task per image and group, running the group's blocks of 16
    channels in turn: du, ddelta (b, l, g p) per group in token rows (du summed afterwards where
    groups share u); dAb (b, g, k, n, 16); dproj (b, l, g mg): the B and C columns of each group (its
    blocks' dB and dC summed in block order), the step-input columns left for the caller; dDp, dbp
    (b, g p) per image. dy (b, l, p) as the forward's y. (A task per block wrote each block's dB and
    dC into token rows and torch summed them: five times the scattered writes for MambaIR-light.)
    A task reads its group's rows once into step-order slabs and writes its du and ddelta once at
    the end; those four slabs take 4 k l 16 floats (MambaIR-light at 64x64: 5 MB; at 256x256:
    84 MB per running task, beside _block_bwd's states, (l + 1) n 16 floats)."""
    nb, nl, per = dy.shape
    ng, nk, nn_ = Ab.shape[0], Ab.shape[1], Ab.shape[2]
    gu = u.shape[2] // per
    nq = W.shape[1]
    mg = proj.shape[2] // ng
    for task in numba.prange(nb * ng):
        gi = task % ng
        bi = task // ng
        r = rev[gi]
        order = index[bi, gi]
        # the group's u, dy, du and ddelta block by block (k, l, 16), its steps' inputs, B and C, and
        # dB and dC summed over its blocks, all in step order
        slabs = np.empty((4, nk, nl, _LANES), dtype=np.float32)
        U, DY, DU, DD = slabs[0], slabs[1], slabs[2], slabs[3]
        dt2 = np.empty((nl, _LANES), dtype=np.float32)
        x2 = np.empty((nl, _LANES), dtype=np.float32)  # the raw step inputs
        X = np.empty((nl, nq), dtype=np.float32)
        B2 = np.empty((nl, nn_), dtype=np.float32)
        C2 = np.empty((nl, nn_), dtype=np.float32)
        dBg = np.zeros((nl, nn_), dtype=np.float32)
        dCg = np.zeros((nl, nn_), dtype=np.float32)
        _load_tokens(proj[bi], order, gi * mg, nq, 0, r, X)
        _load_tokens(proj[bi], order, gi * mg + nq, nn_, 0, r, B2)
        _load_tokens(proj[bi], order, gi * mg + nq + nn_, nn_, 0, r, C2)
        _load_group16(u[bi], order, gi // (ng // gu) * per, per, r, U)
        _load_group16(dy[bi], order, 0, per, r, DY)
        dv = np.zeros(_LANES, dtype=np.float32)
        for k in range(nk):
            c0 = gi * per + k * _LANES
            m = min(_LANES, per - k * _LANES)
            _lowrank_steps(X, W, c0, m, x2)
            _dt_rows(x2, bias, c0, m, softplus, dt2)
            _block_bwd(U[k], dt2, Ab[gi, k], B2, C2, DY[k], DU[k], DD[k], dAb[bi, gi, k], dBg, dCg, need_dA,
                       True)
            if softplus:  # torch's softplus backward: g e^x / (e^x + 1) up to the threshold, else g
                _softplus_grad_rows(x2, bias, c0, m, DD[k])
            dv[:] = 0.0  # D of the block's channels, 0 past m
            dv[:m] = Dv[c0:c0 + m]
            for t in range(nl):
                _store_fma16(DU[k, t], 0, DU[k, t], DY[k, t], dv, _LANES)  # du + dy D
            s_d = np.zeros(_LANES, dtype=np.float64)  # sums over the steps, in step order
            s_b = np.zeros(_LANES, dtype=np.float64)
            _step_sums16(DY[k], U[k], DD[k], s_d, s_b)  # whole vectors: the lanes past m summed, not written
            for j in range(m):
                dDp[bi, c0 + j] = s_d[j]
                dbp[bi, c0 + j] = s_b[j]
        _store_group16(du[bi], order, gi * per, per, r, DU)
        _store_group16(ddelta[bi], order, gi * per, per, r, DD)
        b0 = gi * mg + nq  # the group's B columns of dproj, then its C columns
        for t in range(nl):
            row = dproj[bi, order[nl - 1 - t if r else t], b0:b0 + 2 * nn_]
            for s in range(nn_):
                row[s] = dBg[t, s]
                row[nn_ + s] = dCg[t, s]


class _ScanTokens(torch.autograd.Function):
    """``_tokens_fwd`` with its gradients; tensors as there, float32 and contiguous."""

    @staticmethod
    def forward(ctx, u: Tensor, proj: Tensor, A: Tensor, D: Tensor, bias: Tensor, W: Tensor, index: Tensor,
                softplus: bool, rev: np.ndarray) -> Tensor:
        (b, l, _), (d, g) = u.shape, (A.shape[0], index.shape[1])
        w = _block_width(b, 1, d // g, numba.get_num_threads())
        Ab = _blocks(A[None], g, w)[0]  # (d, n) -> (g, k, n, w)
        y = torch.zeros((b, l, d // g), dtype=torch.float32)
        with _KERNEL_LOCK:
            _tokens_fwd(u.numpy(), proj.numpy(), W.numpy(), bias.numpy(), D.numpy(), Ab.numpy(),
                        index.numpy(), rev, softplus, y.numpy())
        ctx.save_for_backward(u, proj, A, D, bias, W, index)
        ctx.softplus, ctx.rev = softplus, rev
        return y

    @staticmethod
    def backward(ctx, dy: Tensor):
        u, proj, A, D, bias, W, index = ctx.saved_tensors
        (b, l, _), (d, n), g, q = u.shape, A.shape, index.shape[1], W.shape[1]
        per = d // g
        Ab = _blocks(A[None], g)[0]  # (d, n) -> (g, k, n, 16)
        k = Ab.shape[1]
        f32 = torch.float32
        du, ddelta = torch.empty((b, l, d), dtype=f32), torch.empty((b, l, d), dtype=f32)
        dAb = torch.empty((b, g, k, n, _LANES), dtype=f32)
        dDp, dbp = torch.empty((b, d), dtype=f32), torch.empty((b, d), dtype=f32)
        dproj = torch.empty(proj.shape, dtype=f32)  # (b, l, g mg): the kernel fills dB and dC, the einsum dx
        with _KERNEL_LOCK:
            _tokens_bwd(u.numpy(), proj.numpy(), W.numpy(), bias.numpy(), D.numpy(), Ab.numpy(),
                        index.numpy(), ctx.rev, ctx.softplus, ctx.needs_input_grad[2],
                        dy.float().contiguous().numpy(), du.numpy(), ddelta.numpy(), dAb.numpy(),
                        dproj.numpy(), dDp.numpy(), dbp.numpy())
        gu = u.shape[2] // per
        du = du.view(b, l, gu, g // gu, per).sum(3).view(b, l, gu * per)  # groups sharing u's channels
        dd = ddelta.view(b, l, g, per)  # (b, l, g, p)
        x = proj.view(b, l, g, -1)[..., :q]  # (b, l, g, q) the step inputs
        dproj.view(b, l, g, -1)[..., :q] = torch.einsum("blgp,gpq->blgq", dd, W.view(g, per, q))  # dx
        dA = _unblocks(dAb.sum(0)[None], d)[0] if ctx.needs_input_grad[2] else None  # (d, n)
        dW = torch.einsum("blgp,blgq->gpq", dd, x).reshape(d, q) if ctx.needs_input_grad[5] else None
        return du, dproj, dA, dDp.sum(0), dbp.sum(0), dW, None, None, None


def selective_scan_tokens_numba(u: Tensor, proj: Tensor, A: Tensor, D: Tensor | None,
                                delta_bias: Tensor | None, dt_weight: Tensor, reverse: tuple[bool, ...],
                                index: Tensor, delta_softplus: bool = True) -> Tensor:
    """``ref.selective_scan_tokens_ref`` (the spec, same signature) in the numba kernels (float32
    compute, returns u's dtype)."""
    if u.device.type != "cpu":
        raise ValueError("selective_scan_tokens_numba runs on CPU tensors only")
    _follow_torch_threads()
    (b, l, du), (d, n), g = u.shape, A.shape, len(reverse)
    W = dt_weight.float().reshape(d, -1).contiguous()  # (g p, q)
    if d % g or du % (d // g) or g % (du // (d // g)):
        raise ValueError(f"A's {d} channels must split into {g} groups whose size divides u's {du} channels")
    if proj.shape != (b, l, g * (W.shape[1] + 2 * n)):
        raise ValueError(f"proj must be (b, l, g (q + 2n)) = {(b, l, g * (W.shape[1] + 2 * n))}, "
                         f"got {tuple(proj.shape)}")
    index = index.to(torch.int64).expand(b, g, l).contiguous()  # (b, g, l)
    if int(index.min()) < 0 or int(index.max()) >= l:
        raise ValueError(f"index must hold tokens 0..{l - 1}")
    zeros = A.new_zeros(d, dtype=torch.float32)  # (d,) stands in for a missing D or bias
    Df = D.float() if D is not None else zeros
    bias = delta_bias.float() if delta_bias is not None else zeros
    return _ScanTokens.apply(u.float().contiguous(), proj.float().contiguous(), A.float().contiguous(),
                             Df.contiguous(), bias.contiguous(), W, index, bool(delta_softplus),
                             np.array(reverse, dtype=np.bool_)).to(u.dtype)  # (b, l, p)
