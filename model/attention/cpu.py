"""Compiled CPU window attention, forward and backward (numba): ``ref.window_attention_rows_ref``'s maths.

Letters as in ``ref.py``: w windows, n tokens a window, nh heads, c channels, dh = c/nh per head,
m masked windows; j a key, i a query, and 16 queries at a time are the 16 float32 lanes of one
AVX-512 register.

Why: MambaIRv2-light's window attention has 12-wide heads (48 channels, 4 heads) on 16x16 windows,
and torch's flash-attention kernel runs them at ~80 GFLOP/s on the 2-core machine (4.0 GFLOP,
counted, in 49.3 ms of SDPA self time, ``python -m model.evaluation.cpu_profile --presets
mambairv2_lightSR_x4 --sizes 64``): a quarter to a third of a restore's forward, and its backward
was the largest part (28%) of a forward+backward (LAM's).

Forward: each task is one window and head: its K and V rows are copied once into small contiguous
arrays, then for every 16 queries (lanes) and every key j,
S_j = q . k_j scale + bias + mask is 12 fused multiply-adds with q held in 12 registers and k_j's
numbers broadcast, and the output sum over j of exp(S_j - max) v_j is 12 more, accumulating in 12
registers; exp as the scan's 16-lane 2^y (``model.scan.cpu._exp2_16``). No (n, n) matrix is ever
written: the 16 x n scores of a query block stay in the core's L1 cache. The relative position bias
and the mask are read transposed (``[.., j, i]``) so that 16 queries' values of one key are one
vector load. On the 2-core Sapphire Rapids (16 windows x 4 heads x 256 tokens, a one-off script):
1.53-1.62 ms against SDPA's 2.49-2.57 ms. Where a gradient is wanted it also keeps each query's
log-sum-exp (w, nh, n).

Backward (the gradient w.r.t. qkv; the bias and mask are constants, so a trainable bias table keeps
SDPA): per task and 16 queries, a first pass over the keys recomputes P_j = exp(S_j - lse) and
dS_j = P_j (dO . v_j - D), D = dO . O, as the forward does its scores (q and dO in registers), and
writes both (n x 16, L2); a second pass sums dq = dS K in 12 registers and adds P^T dO and dS^T q
into the key and value gradients, channels as lanes (rows padded to 16). 68 vector FMAs (besides
exp) per key and 16 queries where the five products need 60: about the work of SDPA's backward,
without SDPA's slow path on the shifted-window mask (``scripts/attention_kernel_ab.py``).

``supported`` says when these kernels may run. The same maths as SDPA up to float32 rounding (the
sums over keys in a different order, exp by a polynomial): tested against ``ref.py`` (forward, and
the backward against the twin's autograd in float64) and, inside the networks, against the
official vectors.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from torch import Tensor

# The scan's 16-lane IR helpers and its kernel lock (numba's workqueue runs one parallel kernel at a
# time): shared, not copied.
from ..scan.cpu import (
    _KERNEL_LOCK,
    _LOG2E,
    _VEC,
    _exp2_16,
    _fma_fn,
    _follow_torch_threads,
    _lanes_below,
    _masked,
    _splat,
    _vconst,
    _vec_at,
)

_LANES = 16  # queries a block: the float32 lanes of one AVX-512 register
HEAD_DIM = 12  # the head width compiled (MambaIRv2-light's, a constant of the kernel); others run in SDPA


def supported(qkv: Tensor, num_heads: int) -> bool:
    """Whether ``window_attention_rows_numba`` may run on these rows: CPU float32, heads HEAD_DIM
    wide, windows of a multiple of 16 tokens, outside tracing."""
    w, n, c3 = qkv.shape
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()  # an export records SDPA
    return (qkv.device.type == "cpu" and qkv.dtype == torch.float32 and not tracing
            and c3 % (3 * num_heads) == 0 and c3 // (3 * num_heads) == HEAD_DIM and n % _LANES == 0)


def _data(context, builder, ty, val):  # pragma: no cover - compile-time
    """A numba array's data pointer."""
    return context.make_array(ty)(context, builder, val).data


@intrinsic
def _copy_lanes16(typingctx, dst, doff, src, soff, count):  # pragma: no cover - compile-time
    """dst[doff + j] = src[soff + j] for j < count (<= 16): one masked vector load and store for a
    head's 12 numbers of a key or value row, instead of 12 scalar moves (the kernel's scalar copies,
    these and the queries' transposes, were about a quarter of its time; this one 1.04-1.05x)."""
    def codegen(context, builder, signature, args):
        d_, s_ = (_data(context, builder, signature.args[i], args[i]) for i in (0, 2))
        mask, align = _lanes_below(builder, args[4]), ir.Constant(ir.IntType(32), 4)
        row = _masked(builder, "load", _vec_at(builder, s_, args[3]), align, mask, _vconst(0.0))
        _masked(builder, "store", row, _vec_at(builder, d_, args[1]), align, mask)
        return context.get_dummy_value()

    return types.none(dst, types.int64, src, types.int64, types.int64), codegen


def _pointers(context, builder, signature, args, which):  # pragma: no cover - compile-time
    """The data pointers of the intrinsic's array arguments at the positions ``which``."""
    return [_data(context, builder, signature.args[i], args[i]) for i in which]


def _literals(dh, masked) -> tuple[int, bool] | None:
    """The compile-time head width and masked flag, or None (numba then retries with the literals)."""
    if not (isinstance(dh, types.IntegerLiteral) and isinstance(masked, types.IntegerLiteral)):
        return None
    return dh.literal_value, bool(masked.literal_value)


def _score_start(builder, b_, boff_, m_, moff_, row, masked: bool):  # pragma: no cover - compile-time
    """16 queries' bias for one key (at boff + row), plus their mask (at moff + row) where masked:
    the sum the forward and the backward start each score from."""
    acc = builder.load(_vec_at(builder, b_, builder.add(boff_, row)), align=4)
    if masked:
        acc = builder.fadd(acc, builder.load(_vec_at(builder, m_, builder.add(moff_, row)), align=4))
    return acc


@intrinsic
def _query_block16(typingctx, o, st, s, qt, kk, vv, bt, boff, mt, moff, n, dh, masked):  # pragma: no cover
    """Attention of 16 queries (lanes) to n keys: o[d*16 + lane] = sum_j p_j v_j[d] / sum_j p_j,
    p_j = exp(S_j - max_j S_j), S_j = sum_d qt[d*16 + lane] k_j[d] + bt[boff + j n + lane]
    (+ mt[moff + j n + lane] where ``masked``); kk, vv (n*dh,) key and value rows, qt (dh*16,) the
    queries transposed and scaled, s (n*16,) scratch for the scores; st (32,) gets max_j S_j log2 e
    and sum_j p_j (the backward's log-sum-exp). dh and masked are compile-time constants: q stays in
    dh registers and the output sums in dh more."""
    if (lit := _literals(dh, masked)) is None:
        return None
    DH, MASKED = lit

    def codegen(context, builder, signature, args):
        o_, st_, s_, q_, k_, v_, b_, m_ = _pointers(context, builder, signature, args,
                                                    (0, 1, 2, 3, 4, 5, 6, 8))
        boff_, moff_, n_ = args[7], args[9], args[10]
        i64 = ir.IntType(64)
        fma = _fma_fn(builder)
        fnty = ir.FunctionType(_VEC, [_VEC, _VEC])
        vmax = cgutils.get_or_insert_function(builder.module, fnty, "llvm.maxnum.v16f32")
        q = [builder.load(_vec_at(builder, q_, ir.Constant(i64, d * _LANES)), align=4) for d in range(DH)]
        mx = cgutils.alloca_once_value(builder, _vconst(-3e38))  # promoted to a register
        with cgutils.for_range(builder, n_) as loop:  # scores and their maximum
            j = loop.index
            row = builder.mul(j, n_)
            acc = _score_start(builder, b_, boff_, m_, moff_, row, MASKED)
            # two chains of FMAs (even and odd d) instead of one dh long: half the latency a key
            acc2 = _vconst(0.0)
            kj = builder.mul(j, ir.Constant(i64, DH))
            for d in range(DH):
                kd = _splat(builder, builder.load(builder.gep(k_, [builder.add(kj, ir.Constant(i64, d))])),
                            ir.FloatType())
                if d % 2 == 0:
                    acc = builder.call(fma, [q[d], kd, acc])
                else:
                    acc2 = builder.call(fma, [q[d], kd, acc2])
            acc = builder.fadd(acc, acc2)
            builder.store(acc, _vec_at(builder, s_, builder.mul(j, ir.Constant(i64, _LANES))), align=4)
            builder.store(builder.call(vmax, [builder.load(mx), acc]), mx)
        neg_m = builder.fneg(builder.fmul(builder.load(mx), _vconst(_LOG2E)))
        total = cgutils.alloca_once_value(builder, _vconst(0.0))
        sums = [cgutils.alloca_once_value(builder, _vconst(0.0)) for _ in range(DH)]
        with cgutils.for_range(builder, n_) as loop:  # exp(S_j - max) and the weighted values
            j = loop.index
            x = builder.load(_vec_at(builder, s_, builder.mul(j, ir.Constant(i64, _LANES))), align=4)
            y = builder.call(fma, [x, _vconst(_LOG2E), neg_m])  # (S - max) log2 e <= 0
            # exp(S - max) below 2^-64 is 0: far below float32's precision beside the maximum's 1, and
            # it keeps denormals out of the sums (the shifted-window mask's -100 gives 2^-144: each
            # product of such a p was a microcode assist, a masked layer 5.0 ms against 1.8 ms)
            tiny = builder.fcmp_ordered("<", y, _vconst(-64.0))
            p = builder.select(tiny, _vconst(0.0), _exp2_16(builder, y))
            builder.store(builder.fadd(builder.load(total), p), total)
            vj = builder.mul(j, ir.Constant(i64, DH))
            for d in range(DH):
                vd = _splat(builder, builder.load(builder.gep(v_, [builder.add(vj, ir.Constant(i64, d))])),
                            ir.FloatType())
                builder.store(builder.call(fma, [p, vd, builder.load(sums[d])]), sums[d])
        tot = builder.load(total)
        builder.store(builder.fneg(neg_m), _vec_at(builder, st_, ir.Constant(i64, 0)), align=4)
        builder.store(tot, _vec_at(builder, st_, ir.Constant(i64, _LANES)), align=4)
        for d in range(DH):
            builder.store(builder.fdiv(builder.load(sums[d]), tot),
                          _vec_at(builder, o_, ir.Constant(i64, d * _LANES)), align=4)
        return context.get_dummy_value()

    sig = types.none(o, st, s, qt, kk, vv, bt, types.int64, mt, types.int64, types.int64, dh, masked)
    return sig, codegen


@intrinsic
def _block_scores16(typingctx, pb, sb, qt, dt, kk, vv, bt, boff, mt, moff, ld, n, dh,  # pragma: no cover
                    masked):
    """The backward's first pass over n keys for 16 queries (lanes): p_j = exp(S_j - lse) (S_j as in
    ``_query_block16``, recomputed) to pb[j*16 + lane] and dS_j = p_j (dO . v_j - D) to
    sb[j*16 + lane]; dt (dh*16,) dO transposed, ld (32,) the queries' lse log2 e then their D =
    dO . O. q and dO stay in 2 dh registers."""
    if (lit := _literals(dh, masked)) is None:
        return None
    DH, MASKED = lit

    def codegen(context, builder, signature, args):
        p_, s_, q_, g_, k_, v_, b_, m_, l_ = _pointers(context, builder, signature, args,
                                                       (0, 1, 2, 3, 4, 5, 6, 8, 10))
        boff_, moff_, n_ = args[7], args[9], args[11]
        i64 = ir.IntType(64)
        fma = _fma_fn(builder)
        q = [builder.load(_vec_at(builder, q_, ir.Constant(i64, d * _LANES)), align=4) for d in range(DH)]
        g = [builder.load(_vec_at(builder, g_, ir.Constant(i64, d * _LANES)), align=4) for d in range(DH)]
        neg_l = builder.fneg(builder.load(_vec_at(builder, l_, ir.Constant(i64, 0)), align=4))
        dd = builder.load(_vec_at(builder, l_, ir.Constant(i64, _LANES)), align=4)
        with cgutils.for_range(builder, n_) as loop:
            j = loop.index
            row = builder.mul(j, n_)
            acc = _score_start(builder, b_, boff_, m_, moff_, row, MASKED)
            acc2, dp, dp2 = _vconst(0.0), _vconst(0.0), _vconst(0.0)
            kj = builder.mul(j, ir.Constant(i64, DH))
            for d in range(DH):  # two FMA chains each (even and odd d), as in the forward
                at = builder.add(kj, ir.Constant(i64, d))
                kd = _splat(builder, builder.load(builder.gep(k_, [at])), ir.FloatType())
                vd = _splat(builder, builder.load(builder.gep(v_, [at])), ir.FloatType())
                if d % 2 == 0:
                    acc, dp = builder.call(fma, [q[d], kd, acc]), builder.call(fma, [g[d], vd, dp])
                else:
                    acc2, dp2 = builder.call(fma, [q[d], kd, acc2]), builder.call(fma, [g[d], vd, dp2])
            y = builder.call(fma, [builder.fadd(acc, acc2), _vconst(_LOG2E), neg_l])  # (S - lse) log2 e
            # the forward's cut: probabilities below 2^-64 are 0 (no denormal products)
            tiny = builder.fcmp_ordered("<", y, _vconst(-64.0))
            p = builder.select(tiny, _vconst(0.0), _exp2_16(builder, y))
            ds = builder.fmul(p, builder.fsub(builder.fadd(dp, dp2), dd))
            at = builder.mul(j, ir.Constant(i64, _LANES))
            builder.store(p, _vec_at(builder, p_, at), align=4)
            builder.store(ds, _vec_at(builder, s_, at), align=4)
        return context.get_dummy_value()

    sig = types.none(pb, sb, qt, dt, kk, vv, bt, types.int64, mt, types.int64, ld, types.int64, dh, masked)
    return sig, codegen


@intrinsic
def _block_sums16(typingctx, dq, pb, sb, kk, gr, qr, dk, dv, i0, n, dh):  # pragma: no cover
    """The backward's second pass for 16 queries i0.. (pb, sb from ``_block_scores16``):
    dq[d*16 + lane] = sum_j dS_j k_j[d] (queries as lanes, in dh registers), and for every key j
    dv[j*16 + d] += sum_lane p_j dO[i0 + lane, d] and dk[j*16 + d] += sum_lane dS_j q[i0 + lane, d]
    (channels as lanes: gr and qr hold dO and the scaled q as rows padded to 16)."""
    if not isinstance(dh, types.IntegerLiteral):
        return None
    DH = dh.literal_value

    def codegen(context, builder, signature, args):
        q_, p_, s_, k_, g_, r_, dk_, dv_ = _pointers(context, builder, signature, args, range(8))
        i0_, n_ = args[8], args[9]
        i64 = ir.IntType(64)
        fma = _fma_fn(builder)
        sixteen = ir.Constant(i64, _LANES)
        sums = [cgutils.alloca_once_value(builder, _vconst(0.0)) for _ in range(DH)]
        with cgutils.for_range(builder, n_) as loop:
            j = loop.index
            at = builder.mul(j, sixteen)
            ds = builder.load(_vec_at(builder, s_, at), align=4)
            kj = builder.mul(j, ir.Constant(i64, DH))
            for d in range(DH):
                kd = _splat(builder, builder.load(builder.gep(k_, [builder.add(kj, ir.Constant(i64, d))])),
                            ir.FloatType())
                builder.store(builder.call(fma, [ds, kd, builder.load(sums[d])]), sums[d])
            # two chains each for dv and dk (even and odd lanes): half the latency a key
            av = [builder.load(_vec_at(builder, dv_, at), align=4), _vconst(0.0)]
            ak = [builder.load(_vec_at(builder, dk_, at), align=4), _vconst(0.0)]
            for lane in range(_LANES):
                at_l = builder.add(at, ir.Constant(i64, lane))
                row = builder.mul(builder.add(i0_, ir.Constant(i64, lane)), sixteen)
                pl = _splat(builder, builder.load(builder.gep(p_, [at_l])), ir.FloatType())
                sl = _splat(builder, builder.load(builder.gep(s_, [at_l])), ir.FloatType())
                g_row = builder.load(_vec_at(builder, g_, row), align=4)
                q_row = builder.load(_vec_at(builder, r_, row), align=4)
                av[lane % 2] = builder.call(fma, [pl, g_row, av[lane % 2]])
                ak[lane % 2] = builder.call(fma, [sl, q_row, ak[lane % 2]])
            builder.store(builder.fadd(av[0], av[1]), _vec_at(builder, dv_, at), align=4)
            builder.store(builder.fadd(ak[0], ak[1]), _vec_at(builder, dk_, at), align=4)
        for d in range(DH):
            builder.store(builder.load(sums[d]), _vec_at(builder, q_, ir.Constant(i64, d * _LANES)), align=4)
        return context.get_dummy_value()

    sig = types.none(dq, pb, sb, kk, gr, qr, dk, dv, types.int64, types.int64, dh)
    return sig, codegen


@numba.njit(inline="always", cache=True)
def _key_value_rows(qf, w, h, n, c, dh):  # pragma: no cover - compiled
    """kk, vv (n*dh,): window w's key and value rows of head h, contiguous, from the flat qkv rows
    qf (w, n, 3c)."""
    kk = np.empty(n * dh, dtype=np.float32)
    vv = np.empty(n * dh, dtype=np.float32)
    for j in range(n):
        row = (w * n + j) * 3 * c + h * dh  # the token's q of this head in qf; its k at + c, v at + 2c
        _copy_lanes16(kk, j * dh, qf, row + c, dh)
        _copy_lanes16(vv, j * dh, qf, row + 2 * c, dh)
    return kk, vv


@numba.njit(parallel=True, cache=True, fastmath={"contract"})
def _attention_rows(qkv, bias_t, mask_t, slot, scale, out, lse):  # pragma: no cover - compiled
    """out (w, n, c) from qkv (w, n, 3c), bias_t (nh, n, n), mask_t (m, n, n), slot (w,): one task
    per window and head (see ``window_attention_rows_ref``); lse (w, nh, n), where not empty, gets
    each query's log2 of sum_j exp(S_j) (the backward's)."""
    nw, n, c3 = qkv.shape
    c, nh = c3 // 3, bias_t.shape[0]
    dh = c // nh  # the head width (HEAD_DIM)
    bt, mt, qf = bias_t.reshape(-1), mask_t.reshape(-1), qkv.reshape(-1)
    keep = lse.shape[0] > 0
    for task in numba.prange(nw * nh):
        w, h = task // nh, task % nh
        kk, vv = _key_value_rows(qf, w, h, n, c, dh)  # the head's key and value rows
        qt = np.empty(dh * _LANES, dtype=np.float32)  # 16 queries transposed: (dh, 16)
        s = np.empty(n * _LANES, dtype=np.float32)  # their scores: (n, 16)
        o = np.empty(dh * _LANES, dtype=np.float32)  # their outputs: (dh, 16)
        st = np.empty(2 * _LANES, dtype=np.float32)  # their max S log2 e and sum of exp(S - max)
        ms = slot[w]
        for i0 in range(0, n, _LANES):
            for i in range(_LANES):
                for d in range(dh):
                    qt[d * _LANES + i] = qkv[w, i0 + i, h * dh + d] * scale
            if ms >= 0:
                _query_block16(o, st, s, qt, kk, vv, bt, h * n * n + i0, mt, ms * n * n + i0, n, HEAD_DIM, 1)
            else:
                _query_block16(o, st, s, qt, kk, vv, bt, h * n * n + i0, mt, 0, n, HEAD_DIM, 0)
            for i in range(_LANES):
                for d in range(dh):
                    out[w, i0 + i, h * dh + d] = o[d * _LANES + i]
            if keep:
                for i in range(_LANES):
                    lse[w, h, i0 + i] = st[i] + np.log2(st[_LANES + i])


@numba.njit(parallel=True, cache=True, fastmath={"contract"})
def _attention_rows_bwd(qkv, bias_t, mask_t, slot, scale, out, lse, dout, dqkv):  # pragma: no cover
    """dqkv (w, n, 3c), the gradient of sum(out * dout) w.r.t. qkv, from the forward's inputs, out
    and lse: per window and head, 16 queries at a time, dS = P (dO V^T - D), D = rowsum(dO O);
    dq = dS K scale, dk = dS^T q scale, dv = P^T dO."""
    nw, n, c3 = qkv.shape
    c, nh = c3 // 3, bias_t.shape[0]
    dh = c // nh  # the head width (HEAD_DIM)
    bt, mt, qf = bias_t.reshape(-1), mask_t.reshape(-1), qkv.reshape(-1)
    gf, df = dout.reshape(-1), dqkv.reshape(-1)
    for task in numba.prange(nw * nh):
        w, h = task // nh, task % nh
        kk, vv = _key_value_rows(qf, w, h, n, c, dh)  # as in the forward
        qr = np.zeros(n * _LANES, dtype=np.float32)  # scaled q rows, padded to 16: (n, 16)
        gr = np.zeros(n * _LANES, dtype=np.float32)  # dO rows, padded: (n, 16)
        dk = np.zeros(n * _LANES, dtype=np.float32)  # key and value gradients, padded: (n, 16)
        dv = np.zeros(n * _LANES, dtype=np.float32)
        qt = np.empty(dh * _LANES, dtype=np.float32)  # 16 queries' q and dO transposed: (dh, 16)
        gt = np.empty(dh * _LANES, dtype=np.float32)
        ld = np.empty(2 * _LANES, dtype=np.float32)  # their lse and D
        pb = np.empty(n * _LANES, dtype=np.float32)  # their P and dS: (n, 16)
        sb = np.empty(n * _LANES, dtype=np.float32)
        dq = np.empty(dh * _LANES, dtype=np.float32)  # their q gradient: (dh, 16)
        for j in range(n):
            _copy_lanes16(gr, j * _LANES, gf, (w * n + j) * c + h * dh, dh)
            for d in range(dh):
                qr[j * _LANES + d] = qkv[w, j, h * dh + d] * scale
        ms = slot[w]
        for i0 in range(0, n, _LANES):
            for i in range(_LANES):
                dd = np.float32(0.0)
                for d in range(dh):
                    qt[d * _LANES + i] = qr[(i0 + i) * _LANES + d]
                    g = gr[(i0 + i) * _LANES + d]
                    gt[d * _LANES + i] = g
                    dd += g * out[w, i0 + i, h * dh + d]
                ld[i] = lse[w, h, i0 + i]
                ld[_LANES + i] = dd
            if ms >= 0:
                _block_scores16(pb, sb, qt, gt, kk, vv, bt, h * n * n + i0, mt, ms * n * n + i0, ld, n,
                                HEAD_DIM, 1)
            else:
                _block_scores16(pb, sb, qt, gt, kk, vv, bt, h * n * n + i0, mt, 0, ld, n, HEAD_DIM, 0)
            _block_sums16(dq, pb, sb, kk, gr, qr, dk, dv, i0, n, HEAD_DIM)
            for i in range(_LANES):
                for d in range(dh):
                    dqkv[w, i0 + i, h * dh + d] = dq[d * _LANES + i] * scale
        for j in range(n):
            row = (w * n + j) * c3 + h * dh
            _copy_lanes16(df, row + c, dk, j * _LANES, dh)
            _copy_lanes16(df, row + 2 * c, dv, j * _LANES, dh)


class _RowsAttention(torch.autograd.Function):
    """The kernel as an autograd op: the gradient w.r.t. qkv by ``_attention_rows_bwd`` (the bias
    and mask are constants here: a trainable bias table keeps SDPA)."""

    @staticmethod
    def forward(ctx, qkv: Tensor, bias_t: Tensor, mask_t: Tensor, slot: Tensor, scale: float) -> Tensor:
        w, n, c3 = qkv.shape
        nh = bias_t.shape[0]
        out = torch.empty((w, n, c3 // 3), dtype=torch.float32)
        keep = ctx.needs_input_grad[0]
        lse = torch.empty((w, nh, n) if keep else (0, nh, n), dtype=torch.float32)
        _follow_torch_threads()
        with _KERNEL_LOCK:
            _attention_rows(qkv.detach().numpy(), bias_t.numpy(), mask_t.numpy(), slot.numpy(),
                            np.float32(scale), out.numpy(), lse.numpy())
        if keep:
            ctx.save_for_backward(qkv, bias_t, mask_t, slot, out, lse)
            ctx.scale = scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout: Tensor):
        qkv, bias_t, mask_t, slot, out, lse = ctx.saved_tensors
        dqkv = torch.empty_like(qkv)
        _follow_torch_threads()
        with _KERNEL_LOCK:
            _attention_rows_bwd(qkv.detach().numpy(), bias_t.numpy(), mask_t.numpy(), slot.numpy(),
                                np.float32(ctx.scale), out.numpy(), lse.numpy(),
                                dout.float().contiguous().numpy(), dqkv.numpy())
        return dqkv, None, None, None, None


def window_attention_rows_numba(qkv: Tensor, bias_t: Tensor, mask_t: Tensor, slot: Tensor, num_heads: int,
                                scale: float) -> Tensor:
    """``ref.window_attention_rows_ref`` (same signature and maths) in the numba kernels: CPU float32,
    differentiable w.r.t. qkv only (see ``supported``)."""
    if not supported(qkv, num_heads):
        raise ValueError(f"window_attention_rows_numba takes CPU float32 rows, heads of "
                         f"{HEAD_DIM} channels, windows of a multiple of {_LANES} tokens; got "
                         f"{tuple(qkv.shape)} {qkv.dtype} on {qkv.device} with {num_heads} heads")
    w, n, c3 = qkv.shape
    if bias_t.shape != (num_heads, n, n) or mask_t.shape[1:] != (n, n) or slot.shape != (w,):
        raise ValueError(f"bias_t must be {(num_heads, n, n)}, mask_t (m, {n}, {n}), slot ({w},); got "
                         f"{tuple(bias_t.shape)}, {tuple(mask_t.shape)}, {tuple(slot.shape)}")
    if slot.numel() and int(slot.max()) >= mask_t.shape[0]:
        raise ValueError(f"slot names mask {int(slot.max())} of {mask_t.shape[0]}")
    if torch.is_grad_enabled() and (bias_t.requires_grad or mask_t.requires_grad):
        raise ValueError("window_attention_rows_numba gives no gradient to the bias or mask; use SDPA "
                         "for a trainable bias table")
    return _RowsAttention.apply(qkv.contiguous(), bias_t.detach().float().contiguous(),
                                mask_t.detach().float().contiguous(), slot.to(torch.int64).contiguous(),
                                float(scale))
