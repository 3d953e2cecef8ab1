"""Compiled CPU window attention, forward only (numba): ``ref.window_attention_rows_ref``'s maths.

Letters as in ``ref.py``: w windows, n tokens a window, nh heads, c channels, dh = c/nh per head,
m masked windows; j a key, i a query, and 16 queries at a time are the 16 float32 lanes of one
AVX-512 register.

Why: MambaIRv2-light's window attention has 12-wide heads (48 channels, 4 heads) on 16x16 windows,
and torch's flash-attention kernel runs them at ~80 GFLOP/s on the 2-core machine (4.0 GFLOP,
counted, in 49.3 ms of SDPA self time, ``python -m model.evaluation.cpu_profile --presets
mambairv2_lightSR_x4 --sizes 64``): a quarter to a third of a restore's forward.
Here each task is one window and head: its K and V rows are copied once into small contiguous
arrays, then for every 16 queries (lanes) and every key j,
S_j = q . k_j scale + bias + mask is 12 fused multiply-adds with q held in 12 registers and k_j's
numbers broadcast, and the output sum over j of exp(S_j - max) v_j is 12 more, accumulating in 12
registers; exp as the scan's 16-lane 2^y (``model.scan.cpu._exp2_16``). No (n, n) matrix is ever
written: the 16 x n scores of a query block stay in the core's L1 cache. The relative position bias
and the mask are read transposed (``[.., j, i]``) so that 16 queries' values of one key are one
vector load. On the 2-core Sapphire Rapids (16 windows x 4 heads x 256 tokens, a one-off script):
1.53-1.62 ms against SDPA's 2.49-2.57 ms.

Forward only: a run that wants gradients (LAM, training) keeps SDPA, whose backward this file
does not replace; ``supported`` says when this kernel may run. The same maths as SDPA up to
float32 rounding (the sum over keys in a different order, exp by a polynomial): tested against
``ref.py`` and, inside the networks, against the official vectors.
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
    """Whether ``window_attention_rows_numba`` may run on these rows: CPU float32, no gradient
    wanted, heads HEAD_DIM wide, windows of a multiple of 16 tokens, outside tracing."""
    w, n, c3 = qkv.shape
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()  # an export records SDPA
    return (qkv.device.type == "cpu" and qkv.dtype == torch.float32 and not tracing
            and not (torch.is_grad_enabled() and qkv.requires_grad)
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


@intrinsic
def _query_block16(typingctx, o, s, qt, kk, vv, bt, boff, mt, moff, n, dh, masked):  # pragma: no cover
    """Attention of 16 queries (lanes) to n keys: o[d*16 + lane] = sum_j p_j v_j[d] / sum_j p_j,
    p_j = exp(S_j - max_j S_j), S_j = sum_d qt[d*16 + lane] k_j[d] + bt[boff + j n + lane]
    (+ mt[moff + j n + lane] where ``masked``); kk, vv (n*dh,) key and value rows, qt (dh*16,) the
    queries transposed and scaled, s (n*16,) scratch for the scores. dh and masked are compile-time
    constants: q stays in dh registers and the output sums in dh more."""
    if not (isinstance(dh, types.IntegerLiteral) and isinstance(masked, types.IntegerLiteral)):
        return None  # numba retries with the literal values
    DH, MASKED = dh.literal_value, bool(masked.literal_value)

    def codegen(context, builder, signature, args):
        o_, s_, q_, k_, v_, b_ = (_data(context, builder, t, a)
                              for t, a in zip(signature.args[:6], args[:6], strict=True))
        m_ = _data(context, builder, signature.args[7], args[7])
        boff_, moff_, n_ = args[6], args[8], args[9]
        i64 = ir.IntType(64)
        fma = _fma_fn(builder)
        fnty = ir.FunctionType(_VEC, [_VEC, _VEC])
        vmax = cgutils.get_or_insert_function(builder.module, fnty, "llvm.maxnum.v16f32")
        q = [builder.load(_vec_at(builder, q_, ir.Constant(i64, d * _LANES)), align=4) for d in range(DH)]
        mx = cgutils.alloca_once_value(builder, _vconst(-3e38))  # promoted to a register
        with cgutils.for_range(builder, n_) as loop:  # scores and their maximum
            j = loop.index
            row = builder.mul(j, n_)
            acc = builder.load(_vec_at(builder, b_, builder.add(boff_, row)), align=4)
            if MASKED:
                acc = builder.fadd(acc, builder.load(_vec_at(builder, m_, builder.add(moff_, row)), align=4))
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
        for d in range(DH):
            builder.store(builder.fdiv(builder.load(sums[d]), tot),
                          _vec_at(builder, o_, ir.Constant(i64, d * _LANES)), align=4)
        return context.get_dummy_value()

    sig = types.none(o, s, qt, kk, vv, bt, types.int64, mt, types.int64, types.int64, dh, masked)
    return sig, codegen


@numba.njit(parallel=True, cache=True, fastmath={"contract"})
def _attention_rows(qkv, bias_t, mask_t, slot, scale, out):  # pragma: no cover - compiled
    """out (w, n, c) from qkv (w, n, 3c), bias_t (nh, n, n), mask_t (m, n, n), slot (w,): one task
    per window and head (see ``window_attention_rows_ref``)."""
    nw, n, c3 = qkv.shape
    c = c3 // 3
    nh = bias_t.shape[0]
    dh = c // nh
    bt = bias_t.reshape(-1)
    mt = mask_t.reshape(-1)
    qf = qkv.reshape(-1)
    for task in numba.prange(nw * nh):
        w, h = task // nh, task % nh
        kk = np.empty(n * dh, dtype=np.float32)  # the head's key and value rows, contiguous
        vv = np.empty(n * dh, dtype=np.float32)
        qt = np.empty(dh * _LANES, dtype=np.float32)  # 16 queries transposed: (dh, 16)
        s = np.empty(n * _LANES, dtype=np.float32)  # their scores: (n, 16)
        o = np.empty(dh * _LANES, dtype=np.float32)  # their outputs: (dh, 16)
        for j in range(n):
            row = (w * n + j) * c3 + h * dh  # the token's q of this head in qf; its k at + c, v at + 2c
            _copy_lanes16(kk, j * dh, qf, row + c, dh)
            _copy_lanes16(vv, j * dh, qf, row + 2 * c, dh)
        ms = slot[w]
        for i0 in range(0, n, _LANES):
            for i in range(_LANES):
                for d in range(dh):
                    qt[d * _LANES + i] = qkv[w, i0 + i, h * dh + d] * scale
            if ms >= 0:
                _query_block16(o, s, qt, kk, vv, bt, h * n * n + i0, mt, ms * n * n + i0, n, HEAD_DIM, 1)
            else:
                _query_block16(o, s, qt, kk, vv, bt, h * n * n + i0, mt, 0, n, HEAD_DIM, 0)
            for i in range(_LANES):
                for d in range(dh):
                    out[w, i0 + i, h * dh + d] = o[d * _LANES + i]


def window_attention_rows_numba(qkv: Tensor, bias_t: Tensor, mask_t: Tensor, slot: Tensor, num_heads: int,
                                scale: float) -> Tensor:
    """``ref.window_attention_rows_ref`` (same signature and maths) in the numba kernel; CPU float32,
    no gradient (see ``supported``)."""
    if not supported(qkv, num_heads):
        raise ValueError(f"window_attention_rows_numba takes CPU float32 rows without gradient, heads of "
                         f"{HEAD_DIM} channels, windows of a multiple of {_LANES} tokens; got "
                         f"{tuple(qkv.shape)} {qkv.dtype} on {qkv.device} with {num_heads} heads")
    w, n, c3 = qkv.shape
    if bias_t.shape != (num_heads, n, n) or mask_t.shape[1:] != (n, n) or slot.shape != (w,):
        raise ValueError(f"bias_t must be {(num_heads, n, n)}, mask_t (m, {n}, {n}), slot ({w},); got "
                         f"{tuple(bias_t.shape)}, {tuple(mask_t.shape)}, {tuple(slot.shape)}")
    if slot.numel() and int(slot.max()) >= mask_t.shape[0]:
        raise ValueError(f"slot names mask {int(slot.max())} of {mask_t.shape[0]}")
    out = torch.empty((w, n, c3 // 3), dtype=torch.float32)
    args = (qkv.detach().contiguous(), bias_t.detach().float().contiguous(),
            mask_t.detach().float().contiguous(), slot.to(torch.int64).contiguous())
    _follow_torch_threads()
    with _KERNEL_LOCK:
        _attention_rows(*(a.numpy() for a in args), np.float32(scale), out.numpy())
    return out
