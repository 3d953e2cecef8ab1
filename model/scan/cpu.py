"""Compiled CPU selective scan (numba), forward and backward, as an autograd Function; also the
gather that puts the scan's input in MambaIRv2's SGN order (``permute_last_numba``).

Same signature and maths as ``ref.selective_scan_ref`` (the spec). Dimension
letters as in ``ref.py``: b batch, d channels, l sequence, n state, g groups of
B/C (channel c reads group c // (d // g)); k blocks of w channels of a group
(w = 16 lanes, or in the forward 32, 48 or 64: see ``_block_width``), j the channel
within a block.

Split of the work: one numba call per direction does everything but the optional gate z
(``* silu(z)``, in torch): each task copies its block's rows of u and delta from the (b, d, l)
input into private (l, 16) slabs (the forward: (512, w) slabs, one chunk of steps at a time,
carrying the state from chunk to chunk), applies ``delta + delta_bias`` and softplus there, runs the
recurrence h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, y_t = <C_t, h_t>, and writes y + D u
straight back into (b, d, l) rows. Done in torch around the kernel, the bias, softplus, skip and
the two layout copies took about as long as the recurrence itself (MambaIR-light, 48x48).

Groups may share u's rows and run backwards (``selective_scan_directed_numba``): a task reads its
u rows from the group of u it shares, and a reversed group's rows from their end, writing its
outputs and gradients back at the indices it read. MambaIR's four SS2D scans (two layouts of the
image, each read both ways) then need neither the stacked, flipped copies of the input nor the
flips of the outputs that the official code makes (SS2D's scan part at 256x256, 1.20x).
Both models' step inputs come from a rank-q projection (q = 4-6): given its weight, the kernels form
each slab's raw delta from the q numbers a step (``_lowrank_rows``) instead of reading a (b, d, l)
tensor that an einsum wrote (MambaIR-light block at 256x256: 0.183 -> 0.171 s). And the groups'
outputs may be added into given rows of one channel-last (b, l, p) output (``out_index``; a task
then runs every group of its block in turn): MambaIRv2's scan writes its output back in raster
order through the SGN permutation. (MambaIR's four scans went this way too, block 0.171 -> 0.148 s,
before ``cpu_tokens.py`` took them: the same kernels fed from channel-last tokens.)

Layout: blocks of w channels, channels innermost. Inside the kernels u, dt, y
and their gradients are (l, w) slabs: each group's channels are cut into
blocks of w (the last one padded with zeros, which the recurrence keeps at
zero), and a block's sequence is one contiguous (l, w) slab. The innermost
loop of every step then runs over the w channels of a block, which read the
same scalars B_t[s] and C_t[s]: one SIMD lane per channel (AVX-512: one
instruction per 16 lanes), no reduction, and every load is contiguous. Vectorising over the
state instead, as a (b, d, l) layout would, leaves registers half empty (the
light models have 8-10 states) and needs a sum across lanes each step.
exp(dt A) and softplus are straight-line arithmetic that LLVM vectorises (``_exp2_32``,
``_softplus32``). The recurrences themselves (``_scan_step16``, ``_bwd_step16``) and the token rows'
loads and adds are written as explicit 16-lane vectors in LLVM IR (numba intrinsics): as loops over
the lanes, LLVM kept the per-step sums over the states in memory and ran run-time-length loops in
scalar tails. Each is tested bit for bit against the loop it replaced.

Parallelism: one ``prange`` task per (b, g, k) block, forward and backward (a forward with
``out_index``: per (b, k), running the g groups in turn). The backward recomputes the block's
hidden states into a private (l + 1, n, 16) buffer (nothing is kept from the forward: its memory
is just its output), then runs the reverse recurrence. B and C are shared by a group's blocks, so
each block writes its own partial dB and dC, summed afterwards. Extra backward memory:
``b * g * k * l * n`` floats for each of dB and dC, plus ``(l + 1) * n * 16 + 6 * l * 16`` floats
per running task (states and slabs), and ``4 * l * n`` more for a group that runs backwards (its
B, C and their gradients in step order).
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
import torch
import torch.nn.functional as F
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from torch import Tensor

# numba's own thread pool ("workqueue"), not its OpenMP one: the OpenMP layer did not hold to
# numba.set_num_threads(1) here, so a run that model.threads put on one thread beside another busy
# process still spun a second scan thread (MambaIRv2-light x4 64x64 forward, one thread, busy
# machine: 0.89 s with the OpenMP layer, 0.37 s with workqueue; idle on two threads 0.231 / 0.238 s).
# A user's NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
# LLVM tunes for the host CPU, and for CPUs it knows as AVX-512 "client" parts (this machine reports
# itself as rocketlake) it prefers 256-bit vectors: each 16-lane loop of the kernels then runs as two
# ymm halves. With 512-bit vectors allowed the same loops are single zmm instructions, bit-identical
# results (the lanes are independent; the backward's sums are a fixed tree). Scan op on MambaIR-light
# x2 128x128 shapes (python scripts/scan_vector_width.py, two runs): forward 1.06-1.15x, backward
# 1.13-1.14x (a single round can show none: 1.01x / 0.98x); whole networks (bench --compare):
# forward 0.98-1.03x, MambaIR-light x4 64x64 forward+backward 1.08x.
# Only where the CPU has AVX-512, and a user's NUMBA_CPU_NAME / NUMBA_CPU_FEATURES wins. numba
# keys its on-disk cache by these features, so the kernels compile once more after a change.
if numba.config.CPU_NAME is None and numba.config.CPU_FEATURES is None:
    _host_features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in _host_features.split(","):
        numba.config.CPU_FEATURES = _host_features + ",-prefer-256-bit"
# workqueue is not thread-safe: two Python threads in a parallel kernel at once abort the process
# ("Concurrent access has been detected"; its task queue is unguarded, as numba's workqueue.c says,
# so a race the check misses is not safe either). Gradio runs events in worker threads, and the app's
# preview times the networks beside a running view, so every call into a parallel kernel (_fused_*,
# _tokens_*, _gather_*) holds this lock; each kernel uses every core it is given, so two at once
# would gain nothing.
_KERNEL_LOCK = threading.Lock()

# cache=True writes the compiled machine code next to this file (__pycache__),
# so later processes (CI, the app) skip the few-second compile. fastmath only
# allows contraction into FMAs (one rounding instead of two: no reordering, no
# assumptions about NaN or infinity).
_JIT = dict(parallel=True, cache=True, fastmath={"contract"})
_LANES = 16  # channels per block (the forward's may be wider): the float32 lanes of an AVX-512 register
_CHUNK = 512  # steps per chunk of the forward (see _fused_fwd): 3 * 512 * w floats of slabs per task


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


_LOG2E = np.float32(1.4426950408889634)  # the kernels scale A by this once, then take 2^(dt A log2 e)


# 2^f for f in [-1/2, 1/2]: a degree-6 polynomial fitted to minimise the relative error (< 2e-9 before
# float32 rounding, 1e-7 after); its coefficients from the highest degree down.
_POW2_FRAC = tuple(np.float32(c) for c in (
    0.00015345810970757157, 0.0013399930903688073, 0.009618489071726799, 0.05550328642129898,
    0.24022646248340607, 0.6931471824645996, 1.0))


@numba.njit(inline="always", cache=True)
def _pow2_frac(f):  # pragma: no cover - compiled
    """2^f for float32 f in [-1/2, 1/2] by ``_POW2_FRAC`` in Horner form, one FMA a degree."""
    p = _POW2_FRAC[1] + f * _POW2_FRAC[0]
    p = _POW2_FRAC[2] + f * p
    p = _POW2_FRAC[3] + f * p
    p = _POW2_FRAC[4] + f * p
    p = _POW2_FRAC[5] + f * p
    return _POW2_FRAC[6] + f * p


@numba.njit(inline="always", cache=True)
def _exp2_32_bits(y):  # pragma: no cover - compiled
    """2^y for float32 y: the scan's exp(dt A) as 2^(dt (A log2 e)), with A scaled once per block.

    Fewer operations per state update than ``_exp32`` (one block's forward alone, l = 65536, n = 10:
    1.21x; the scan op on MambaIR-light / MambaIRv2-light 128x128 shapes 1.05-1.12x forward and
    backward; whole networks, ``bench --compare HEAD``, 1.00-1.04x; outputs within 1.3e-7 of before):
    k = round(y) by adding and subtracting 1.5 * 2^23 (no rounding instruction), f = y - k exact in
    [-1/2, 1/2] (no Cody-Waite split), 2^f by ``_pow2_frac``, 2^k from its exponent bits.
    y is clamped to [-126, 127]: 2^-126 ~ 1.2e-38 stands in for smaller values.
    The kernels use it where the CPU lacks AVX-512; else ``_exp2_32_scalef``, the same values.
    """
    v = min(max(y, np.float32(-126.0)), np.float32(127.0))
    k = (v + np.float32(12582912.0)) - np.float32(12582912.0)
    return _pow2_frac(v - k) * _f32_from_bits((np.int32(k) + np.int32(127)) << 23)


@intrinsic
def _lrint32(typingctx, x):  # pragma: no cover - compile-time
    """float32 -> int32 rounded to nearest, ties to even (LLVM's lrint; one vcvtps2dq a vector)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [ir.FloatType()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.lrint.i32.f32")
        return builder.call(fn, args)

    return types.int32(types.float32), codegen


@intrinsic
def _ldexp32(typingctx, x, k):  # pragma: no cover - compile-time
    """x 2^k for float32 x and int32 k, correctly rounded (LLVM's ldexp; AVX-512: one vscalefps)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.FloatType(), [ir.FloatType(), ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.ldexp.f32.i32")
        return builder.call(fn, args)

    return types.float32(types.float32, types.int32), codegen


@numba.njit(inline="always", cache=True)
def _exp2_32_scalef(y):  # pragma: no cover - compiled
    """``_exp2_32_bits`` in fewer vector instructions where the CPU has AVX-512: k = round(y) by one
    conversion, 2^f 2^k by one vscalefps. The same k (both round ties to even), f and polynomial, and
    p 2^k is exact or correctly rounded either way: the same bits (tested). Not used without AVX-512,
    where LLVM turns a vector ldexp into a library call per lane.
    """
    v = min(max(y, np.float32(-126.0)), np.float32(127.0))
    k = _lrint32(v)
    return _ldexp32(_pow2_frac(v - np.float32(k)), k)


# The kernels' 2^y: which of the two, fixed when numba compiles them for its target CPU (the host,
# unless the user names one: then the portable one, as that CPU's features are not known here).
_TARGET_AVX512 = "+avx512f" in (numba.config.CPU_FEATURES or "").split(",")
_exp2_32 = _exp2_32_scalef if _TARGET_AVX512 else _exp2_32_bits


@numba.njit(inline="always", cache=True, error_model="numpy")
def _softplus32(x):  # pragma: no cover - compiled
    """torch's softplus (threshold 20) as straight-line arithmetic that LLVM vectorises.

    softplus(x) = max(x, 0) + log1p(q), q = e^-|x| in (0, 1]; log1p(q) = 2 atanh(s) with
    s = q / (2 + q) <= 1/3, by its odd series to s^17 (relative error < 1e-9 before float32
    rounding, and no cancellation for small q). Above 20 it returns x, as torch does.
    """
    q = _exp32(-abs(x))
    s = q / (np.float32(2.0) + q)
    s2 = s * s
    p = np.float32(1 / 15) + s2 * np.float32(1 / 17)
    p = np.float32(1 / 13) + s2 * p
    p = np.float32(1 / 11) + s2 * p
    p = np.float32(1 / 9) + s2 * p
    p = np.float32(1 / 7) + s2 * p
    p = np.float32(1 / 5) + s2 * p
    p = np.float32(1 / 3) + s2 * p
    p = np.float32(1.0) + s2 * p
    sp = max(x, np.float32(0.0)) + np.float32(2.0) * s * p
    return x if x > np.float32(20.0) else sp


def _check_rows16(name: str, *tys, ndim: int = 1) -> None:
    """Typing check of the 16-lane operations: contiguous float32 arrays of ndim dimensions, 1-D
    rows by default (their sizes are the caller's duty: the operations read and write whole 16-lane
    vectors without bounds checks)."""
    for ty in tys:
        if not (isinstance(ty, types.Array) and ty.ndim == ndim and ty.layout == "C"
                and ty.dtype == types.float32):
            raise numba.core.errors.TypingError(f"{name} takes contiguous {ndim}-D float32 arrays")


_VEC = ir.VectorType(ir.FloatType(), _LANES)  # one AVX-512 register of float32


def _vconst(value: float) -> ir.Constant:
    """A <16 x float> of one float32 constant."""
    return ir.Constant(_VEC, [float(np.float32(value))] * _LANES)


def _vec_at(builder, data, offset):  # pragma: no cover - compile-time
    """A pointer to the <16 x float> from element ``offset`` (an int64) of a float32 data pointer."""
    return builder.bitcast(builder.gep(data, [offset]), _VEC.as_pointer())


def _row16(context, builder, ty, val, off=None):  # pragma: no cover - compile-time
    """A row's data (from element off, an int64, where given) as a pointer to one <16 x float>."""
    data = context.make_array(ty)(context, builder, val).data
    if off is not None:
        return _vec_at(builder, data, off)
    return builder.bitcast(data, _VEC.as_pointer())


@intrinsic
def _dot16(typingctx, a, b):  # pragma: no cover - compile-time
    """sum_j a[j] b[j] over the 16 float32 lanes of two contiguous rows: one vector multiply and
    LLVM's tree reduction (lanes j and j + 8, then + 4, + 2, + 1).

    Written as scalar code, the products and the pairwise tree (the same order) were compiled
    lane by lane through memory: 2.5x slower on its own, a fifth of the backward kernel's time.
    The backward now sums sixteen rows at a time (``_lane_sums16``); this one-row form is its plain
    twin in the tests.
    """
    _check_rows16("_dot16", a, b)

    def codegen(context, builder, signature, args):
        rows = [builder.load(_row16(context, builder, ty, val), align=4)
                for ty, val in zip(signature.args, args, strict=True)]
        fnty = ir.FunctionType(ir.FloatType(), [ir.FloatType(), rows[0].type])
        reduce = cgutils.get_or_insert_function(builder.module, fnty, "llvm.vector.reduce.fadd.v16f32")
        # reassoc lets LLVM sum as a tree of halves; -0.0 is the sum's identity
        start = ir.Constant(ir.FloatType(), -0.0)
        return builder.call(reduce, [start, builder.fmul(*rows)], fastmath=("reassoc",))

    return types.float32(a, b), codegen


# The backward's per-step row copies as one vector load and store each. Written as loops over 16
# lanes, LLVM unrolled them into scalar moves (it could not prove the work rows apart from the
# input rows, so it kept every load after the previous store): ~100 scalar moves a step, a third
# of the backward kernel (one block, l = 4096, n = 10: 0.73 -> 0.51 ms, the same bits).
@intrinsic
def _copy16(typingctx, dst, src):  # pragma: no cover - compile-time
    """dst[:16] = src[:16] for contiguous float32 rows."""
    _check_rows16("_copy16", dst, src)

    def codegen(context, builder, signature, args):
        row = builder.load(_row16(context, builder, signature.args[1], args[1]), align=4)
        builder.store(row, _row16(context, builder, signature.args[0], args[0]), align=4)
        return context.get_dummy_value()

    return types.none(dst, src), codegen


@intrinsic
def _product16(typingctx, dst, a, b):  # pragma: no cover - compile-time
    """dst[:16] = a[:16] * b[:16] (float32 products) for contiguous float32 rows."""
    _check_rows16("_product16", dst, a, b)

    def codegen(context, builder, signature, args):
        x, y = (builder.load(_row16(context, builder, ty, val), align=4)
                for ty, val in zip(signature.args[1:], args[1:], strict=True))
        builder.store(builder.fmul(x, y), _row16(context, builder, signature.args[0], args[0]), align=4)
        return context.get_dummy_value()

    return types.none(dst, a, b), codegen


@intrinsic
def _zero16(typingctx, dst):  # pragma: no cover - compile-time
    """dst[:16] = 0 for a contiguous float32 row."""
    _check_rows16("_zero16", dst)

    def codegen(context, builder, signature, args):
        builder.store(_vconst(0.0), _row16(context, builder, signature.args[0], args[0]), align=4)
        return context.get_dummy_value()

    return types.none(dst), codegen


# The token loaders' and writers' loops over a block's lanes had a run-time count (16 to 64, or m
# real channels): LLVM vectorised them 64 lanes an iteration with 8-lane and scalar tails, so a
# 48-lane block ran entirely in the tails, behind an overlap check of the rows each step. Here a
# block's lanes are whole 16-lane vectors, masked where its real channels end (MambaIR-light's
# 72 = 48 + 24), addressed by offset into the token row (no slice a step): the same arithmetic.
def _splat(builder, value, ty):  # pragma: no cover - compile-time
    """A <16 x ty> vector of one scalar."""
    vec = builder.insert_element(ir.Constant(ir.VectorType(ty, _LANES), None), value,
                                 ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(ir.IntType(32), _LANES), [0] * _LANES))


def _lanes_below(builder, count):  # pragma: no cover - compile-time
    """<16 x i1>: lane j < count (an int64; none where count <= 0, all where count >= 16)."""
    lanes = ir.Constant(ir.VectorType(ir.IntType(64), _LANES), list(range(_LANES)))
    return builder.icmp_signed("<", lanes, _splat(builder, count, ir.IntType(64)))


def _masked(builder, name, *args):  # pragma: no cover - compile-time
    """A call of LLVM's masked load ("load": ptr, align, mask, pass-through) or store ("store":
    value, ptr, align, mask) of <16 x float>: the lanes off the mask are neither read nor written."""
    ptr, mask = _VEC.as_pointer(), ir.VectorType(ir.IntType(1), _LANES)
    if name == "load":
        fnty = ir.FunctionType(_VEC, [ptr, ir.IntType(32), mask, _VEC])
    else:
        fnty = ir.FunctionType(ir.VoidType(), [_VEC, ptr, ir.IntType(32), mask])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.{name}.v16f32.p0")
    return builder.call(fn, args)


def _fma_fn(builder):  # pragma: no cover - compile-time
    """LLVM's fused multiply-add of <16 x float>."""
    fnty = ir.FunctionType(_VEC, [_VEC] * 3)
    return cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.v16f32")


@intrinsic
def _load16(typingctx, dst, src, off, count):  # pragma: no cover - compile-time
    """dst[:16] = src[off + j] for j < count, 0 beyond; src's elements from off + count on are not
    read."""
    _check_rows16("_load16", dst, src)

    def codegen(context, builder, signature, args):
        row = _masked(builder, "load", _row16(context, builder, signature.args[1], args[1], args[2]),
                      ir.Constant(ir.IntType(32), 4), _lanes_below(builder, args[3]), _vconst(0.0))
        builder.store(row, _row16(context, builder, signature.args[0], args[0]), align=4)
        return context.get_dummy_value()

    return types.none(dst, src, types.int64, types.int64), codegen


@intrinsic
def _fma16(typingctx, dst, a, x):  # pragma: no cover - compile-time
    """dst[:16] = a[:16] x + dst[:16] in one rounding (what ``dst[j] += a[j] * x`` contracts to)."""
    _check_rows16("_fma16", dst, a)

    def codegen(context, builder, signature, args):
        dst_ptr = _row16(context, builder, signature.args[0], args[0])
        row = builder.load(_row16(context, builder, signature.args[1], args[1]), align=4)
        acc = builder.load(dst_ptr, align=4)
        builder.store(builder.call(_fma_fn(builder), [row, _splat(builder, args[2], ir.FloatType()), acc]),
                      dst_ptr, align=4)
        return context.get_dummy_value()

    return types.none(dst, a, types.float32), codegen


@intrinsic
def _add_skip16(typingctx, dst, off, y, u, dv, count):  # pragma: no cover - compile-time
    """dst[off + j] += y[j] + u[j] dv[j] for j < count (the product and y in one rounding, as
    ``dst[j] += y[j] + u[j] * dv[j]`` contracts); dst's elements from off + count on are neither
    read nor written."""
    _check_rows16("_add_skip16", dst, y, u, dv)

    def codegen(context, builder, signature, args):
        y_, u_, dv_ = (builder.load(_row16(context, builder, ty, val), align=4)
                       for ty, val in zip(signature.args[2:5], args[2:5], strict=True))
        dst = _row16(context, builder, signature.args[0], args[0], args[1])
        mask, align = _lanes_below(builder, args[5]), ir.Constant(ir.IntType(32), 4)
        old = _masked(builder, "load", dst, align, mask, _vconst(0.0))
        new = builder.fadd(old, builder.call(_fma_fn(builder), [u_, dv_, y_]))
        _masked(builder, "store", new, dst, align, mask)
        return context.get_dummy_value()

    return types.none(dst, types.int64, y, u, dv, types.int64), codegen


@intrinsic
def _store16(typingctx, dst, off, src, count):  # pragma: no cover - compile-time
    """dst[off + j] = src[j] for j < count; dst's elements from off + count on are not written."""
    _check_rows16("_store16", dst, src)

    def codegen(context, builder, signature, args):
        row = builder.load(_row16(context, builder, signature.args[2], args[2]), align=4)
        _masked(builder, "store", row, _row16(context, builder, signature.args[0], args[0], args[1]),
                ir.Constant(ir.IntType(32), 4), _lanes_below(builder, args[3]))
        return context.get_dummy_value()

    return types.none(dst, types.int64, src, types.int64), codegen


@intrinsic
def _store_fma16(typingctx, dst, off, a, x, y, count):  # pragma: no cover - compile-time
    """dst[off + j] = a[j] + x[j] y[j] for j < count in one rounding (what ``dst[off + j] = a[j] +
    x[j] * y[j]`` contracts to); dst's elements from off + count on are not written."""
    _check_rows16("_store_fma16", dst, a, x, y)

    def codegen(context, builder, signature, args):
        a_, x_, y_ = (builder.load(_row16(context, builder, ty, val), align=4)
                      for ty, val in zip(signature.args[2:5], args[2:5], strict=True))
        _masked(builder, "store", builder.call(_fma_fn(builder), [x_, y_, a_]),
                _row16(context, builder, signature.args[0], args[0], args[1]),
                ir.Constant(ir.IntType(32), 4), _lanes_below(builder, args[5]))
        return context.get_dummy_value()

    return types.none(dst, types.int64, a, x, y, types.int64), codegen


@intrinsic
def _step_sums16(typingctx, dy, u, g, s_d, s_b):  # pragma: no cover - compile-time
    """s_d[j] += sum_t dy[t, j] u[t, j] and s_b[j] += sum_t g[t, j] for the 16 lanes, each float32
    product or value added in float64 in step order (dD's and the delta bias's sums over a block's
    steps); dy, u, g (l, 16) float32, s_d and s_b (16,) float64. Both sums stay in registers: as
    a numba loop they went through memory every step (l = 4096: 46-49 us, here 8.8; one-off timing)."""
    _check_rows16("_step_sums16", dy, u, g, ndim=2)
    for ty in (s_d, s_b):
        if not (isinstance(ty, types.Array) and ty.ndim == 1 and ty.layout == "C"
                and ty.dtype == types.float64):
            raise numba.core.errors.TypingError("_step_sums16 sums into contiguous 1-D float64 arrays")

    def codegen(context, builder, signature, args):
        dy_arr, u_arr, g_arr = (context.make_array(ty)(context, builder, val)
                                for ty, val in zip(signature.args[:3], args[:3], strict=True))
        dvec = ir.VectorType(ir.DoubleType(), _LANES)
        sums = [builder.bitcast(context.make_array(ty)(context, builder, val).data, dvec.as_pointer())
                for ty, val in zip(signature.args[3:], args[3:], strict=True)]
        acc_d, acc_b = (cgutils.alloca_once_value(builder, builder.load(p, align=8)) for p in sums)
        nl = builder.extract_value(dy_arr.shape, 0)
        with cgutils.for_range(builder, nl) as loop:
            at = builder.mul(loop.index, ir.Constant(loop.index.type, _LANES))
            dy_, u_, g_ = (builder.load(_vec_at(builder, arr.data, at), align=4)
                           for arr in (dy_arr, u_arr, g_arr))
            prod = builder.fpext(builder.fmul(dy_, u_), dvec)  # the float32 product, then widened
            builder.store(builder.fadd(builder.load(acc_d), prod), acc_d)
            builder.store(builder.fadd(builder.load(acc_b), builder.fpext(g_, dvec)), acc_b)
        for acc, p in zip((acc_d, acc_b), sums, strict=True):
            builder.store(builder.load(acc), p, align=8)
        return context.get_dummy_value()

    return types.none(dy, u, g, s_d, s_b), codegen


_LINE = 16  # float32 values in a 64-byte cache line


@intrinsic
def _prefetch(typingctx, x, i, j):  # pragma: no cover - compile-time
    """Ask the CPU to bring the cache line holding x[i, j] into its caches (x a 2-D C-contiguous
    array; no bounds check, no effect on the program's values)."""
    _check_rows16("_prefetch", x, ndim=2)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        at = [context.cast(builder, v, ty, types.intp)
              for v, ty in zip(args[1:], signature.args[1:], strict=True)]
        ptr = cgutils.get_item_pointer2(context, builder, arr.data, cgutils.unpack_tuple(builder, arr.shape),
                                        cgutils.unpack_tuple(builder, arr.strides), "C", at)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, keep in all cache levels (locality 3), data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(x, i, j), codegen


@numba.njit(cache=True)
def _prefetch_tokens(xb, index, c0, m, s0, c, rev):  # pragma: no cover - compiled
    """Prefetch the cache lines of xb[index[i(s0 + t)], c0:c0 + m] for t < c (i as in _load_tokens):
    a chunk's token rows, which its index scatters where the CPU's own prefetcher cannot follow."""
    last = index.shape[0] - 1
    for t in range(c):
        tok = index[last - s0 - t if rev else s0 + t]
        for j in range(0, m, _LINE):
            _prefetch(xb, tok, c0 + j)
        _prefetch(xb, tok, c0 + m - 1)  # the last line, where the run straddles one more


# The forward's recurrence as explicit 16-lane vectors, one call per step and block vector running
# every state: y_t's sum over the states stays in a register, as do the polynomial's constants.
# Written as numba loops over the lanes (innermost, as LLVM vectorises only innermost loops), the sum
# went through memory once per state and each state's loop paid its entry checks: 24 instructions
# and 12 loads per lane-vector update, against 20 and 4 here (loop control included; a one-off
# disassembly); one block (w = 48, n = 10, 512 steps) 62.5 -> 49.7 us. The same operations in the
# same order as ``_exp2_32`` and the loop it replaced (tested bit for bit).
def _exp2_16(builder, y):  # pragma: no cover - compile-time
    """``_exp2_32`` of 16 lanes in LLVM IR: clamp to [-126, 127], k = round(y), 2^(y - k) by
    ``_pow2_frac``'s polynomial, times 2^k (one vscalefps on AVX-512, else from the exponent bits)."""
    v = builder.select(builder.fcmp_ordered(">", y, _vconst(-126.0)), y, _vconst(-126.0))
    v = builder.select(builder.fcmp_ordered("<", v, _vconst(127.0)), v, _vconst(127.0))
    ivec = ir.VectorType(ir.IntType(32), _LANES)
    if _TARGET_AVX512:
        fnty = ir.FunctionType(_VEC, [_VEC])
        rint = cgutils.get_or_insert_function(builder.module, fnty, "llvm.rint.v16f32")
        k = builder.call(rint, [v])  # vrndscaleps: round to nearest, ties to even (as lrint)
    else:
        k = builder.fsub(builder.fadd(v, _vconst(12582912.0)), _vconst(12582912.0))
    f = builder.fsub(v, k)
    p = _vconst(_POW2_FRAC[0])
    for c in _POW2_FRAC[1:]:
        p = builder.call(_fma_fn(builder), [f, p, _vconst(c)])
    if _TARGET_AVX512:
        fnty = ir.FunctionType(_VEC, [_VEC, _VEC, _VEC, ir.IntType(16), ir.IntType(32)])
        name = "llvm.x86.avx512.mask.scalef.ps.512"
        scalef = cgutils.get_or_insert_function(builder.module, fnty, name)
        every_lane, current_rounding = ir.Constant(ir.IntType(16), -1), ir.Constant(ir.IntType(32), 4)
        return builder.call(scalef, [p, k, p, every_lane, current_rounding])  # p 2^k
    bits = builder.shl(builder.add(builder.fptosi(k, ivec), ir.Constant(ivec, [127] * _LANES)),
                       ir.Constant(ivec, [23] * _LANES))
    return builder.fmul(p, builder.bitcast(bits, _VEC))


@intrinsic
def _scan_step16(typingctx, y, u, dt, a, h, B, C):  # pragma: no cover - compile-time
    """One step of 16 lanes: h[s] = 2^(dt a[s]) h[s] + dt u B[s] for every state s (h updated in
    place), y[:16] = sum_s C[s] h[s] in state order; y, u, dt 16-lane rows, a = A log2 e and h
    (n, 16), B and C (n,)."""
    _check_rows16("_scan_step16", y, u, dt, B, C)
    _check_rows16("_scan_step16", a, h, ndim=2)

    def codegen(context, builder, signature, args):
        arrays = [context.make_array(ty)(context, builder, val)
                  for ty, val in zip(signature.args, args, strict=True)]
        dt_ = builder.load(_row16(context, builder, signature.args[2], args[2]), align=4)
        du = builder.fmul(dt_, builder.load(_row16(context, builder, signature.args[1], args[1]), align=4))
        a_data, h_data, b_data, c_data = (arr.data for arr in arrays[3:])
        n = builder.extract_value(arrays[5].shape, 0)
        acc = cgutils.alloca_once_value(builder, _vconst(0.0))  # y's sum, promoted to a register
        fma = _fma_fn(builder)
        with cgutils.for_range(builder, n) as loop:
            at = builder.mul(loop.index, ir.Constant(loop.index.type, _LANES))
            a_s = builder.load(_vec_at(builder, a_data, at), align=4)
            h_ptr = _vec_at(builder, h_data, at)
            decay = builder.fmul(_exp2_16(builder, builder.fmul(dt_, a_s)), builder.load(h_ptr, align=4))
            b_s, c_s = (_splat(builder, builder.load(builder.gep(d, [loop.index])), ir.FloatType())
                        for d in (b_data, c_data))
            h_s = builder.call(fma, [du, b_s, decay])  # 2^(dt a) h + (dt u) B, as the loop contracted it
            builder.store(h_s, h_ptr, align=4)
            builder.store(builder.call(fma, [c_s, h_s, builder.load(acc)]), acc)
        builder.store(builder.load(acc), _row16(context, builder, signature.args[0], args[0]), align=4)
        return context.get_dummy_value()

    return types.none(y, u, dt, a, h, B, C), codegen


@intrinsic
def _bwd_step16(typingctx, dt, u, dy, h, ht, st, B, C, need_dA, ddt, du, pB, pC):  # pragma: no cover
    """One step of ``_block_bwd``'s reverse recurrence over every state s, 16 lanes, with its sums
    over the states (ddt, du) in registers: dt, u, dy, ddt, du 16-lane rows; h = h_{t-1} and
    ht = h_t (n, 16); st (n, 4, 16) as ``_block_bwd``'s (rows 1 and 2 updated in place; 2 only
    where need_dA); B, C (n,); pB, pC (>= n, 16): row s set to the products whose lane sums are dB_t[s]
    and dC_t[s] (``_lane_sums16``). The same operations in the same order as
    the loop it replaced (tested bit for bit)."""
    _check_rows16("_bwd_step16", dt, u, dy, B, C, ddt, du)
    _check_rows16("_bwd_step16", h, ht, pB, pC, ndim=2)
    _check_rows16("_bwd_step16", st, ndim=3)

    def codegen(context, builder, signature, args):
        arrays = [context.make_array(ty)(context, builder, val) if isinstance(ty, types.Array) else None
                  for ty, val in zip(signature.args, args, strict=True)]
        dt_, u_, dy_ = (builder.load(_row16(context, builder, signature.args[i], args[i]), align=4)
                        for i in range(3))
        h_data, ht_data, st_data, b_data, c_data = (arrays[i].data for i in (3, 4, 5, 6, 7))
        pb_data, pc_data = arrays[11].data, arrays[12].data
        n = builder.extract_value(arrays[6].shape, 0)
        du_ = builder.fmul(dt_, u_)  # dt_t u_t
        acc_ddt = cgutils.alloca_once_value(builder, _vconst(0.0))  # the sums over states, in registers
        acc_du = cgutils.alloca_once_value(builder, _vconst(0.0))
        fma = _fma_fn(builder)

        with cgutils.for_range(builder, n) as loop:
            s = loop.index
            i64 = s.type
            at = builder.mul(s, ir.Constant(i64, _LANES))  # row s of an (n, 16) array

            def st_row(r, s=s):  # st[s, r]
                row = builder.add(builder.mul(s, ir.Constant(i64, 4 * _LANES)), ir.Constant(i64, r * _LANES))
                return _vec_at(builder, st_data, row)

            b_s, c_s = (_splat(builder, builder.load(builder.gep(data, [s])), ir.FloatType())
                        for data in (b_data, c_data))
            a = _exp2_16(builder, builder.fmul(dt_, builder.load(st_row(3), align=4)))  # a_t = exp(dt_t A)
            g = builder.call(fma, [dy_, c_s, builder.load(st_row(1), align=4)])  # dLoss/dh_t
            h_prev = builder.load(_vec_at(builder, h_data, at), align=4)
            ga = builder.fmul(builder.fmul(g, h_prev), a)  # dLoss/d(dt A) through a_t
            # ddt += ga A + g B u, contracted as the loop was: (g B) u + (ga A) in one rounding
            ga_A = builder.fmul(ga, builder.load(st_row(0), align=4))
            term = builder.call(fma, [builder.fmul(g, b_s), u_, ga_A])
            builder.store(builder.fadd(builder.load(acc_ddt), term), acc_ddt)
            builder.store(builder.call(fma, [builder.fmul(g, dt_), b_s, builder.load(acc_du)]), acc_du)
            builder.store(builder.fmul(g, a), st_row(1), align=4)
            builder.store(builder.fmul(g, du_), _vec_at(builder, pb_data, at), align=4)  # dB's lane products
            h_now = builder.load(_vec_at(builder, ht_data, at), align=4)
            builder.store(builder.fmul(dy_, h_now), _vec_at(builder, pc_data, at), align=4)  # dC's
            with builder.if_then(builder.icmp_unsigned("!=", args[8], ir.Constant(args[8].type, 0))):
                dA_new = builder.call(fma, [ga, dt_, builder.load(st_row(2), align=4)])
                builder.store(dA_new, st_row(2), align=4)
        for acc, i in ((acc_ddt, 9), (acc_du, 10)):
            builder.store(builder.load(acc), _row16(context, builder, signature.args[i], args[i]), align=4)
        return context.get_dummy_value()

    return types.none(dt, u, dy, h, ht, st, B, C, types.boolean, ddt, du, pB, pC), codegen


def _halves(builder, a, b, width):  # pragma: no cover - compile-time
    """Lane sums of two vectors at once, one level of ``_dot16``'s tree: each run of 2 * width lanes
    of a, then of b, becomes width lanes x[j] + x[j + width]."""
    runs = range(0, 2 * _LANES, 2 * width)
    lo = [r + j for r in runs for j in range(width)]
    mask = ir.Constant(ir.VectorType(ir.IntType(32), _LANES), lo)
    hi = ir.Constant(ir.VectorType(ir.IntType(32), _LANES), [i + width for i in lo])
    return builder.fadd(builder.shuffle_vector(a, b, mask), builder.shuffle_vector(a, b, hi))


@intrinsic
def _lane_sums16(typingctx, p, out, add):  # pragma: no cover - compile-time
    """out[s] = sum over the 16 lanes of row s of p (16, 16), for s < len(out) <= 16, or out[s] +=
    that sum where ``add``: the same pairwise tree as ``_dot16`` (lanes j and j + 8, then + 4, + 2,
    + 1), run on 16 rows at once by pairing them level by level (45 vector operations, against 16
    reductions of 8-9 each)."""
    _check_rows16("_lane_sums16", out)
    _check_rows16("_lane_sums16", p, ndim=2)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        vs = [builder.load(_vec_at(builder, data, ir.Constant(ir.IntType(64), r * _LANES)), align=4)
              for r in range(_LANES)]
        for width in (8, 4, 2, 1):  # after this level each vector holds 16 // width rows' partial sums
            vs = [_halves(builder, vs[i], vs[i + 1], width) for i in range(0, len(vs), 2)]
        out_arr = context.make_array(signature.args[1])(context, builder, args[1])
        mask = _lanes_below(builder, builder.extract_value(out_arr.shape, 0))
        out_ptr, align = _row16(context, builder, signature.args[1], args[1]), ir.Constant(ir.IntType(32), 4)
        old = _masked(builder, "load", out_ptr, align, mask, _vconst(0.0))
        add = builder.icmp_unsigned("!=", args[2], ir.Constant(args[2].type, 0))
        _masked(builder, "store", builder.select(add, builder.fadd(old, vs[0]), vs[0]), out_ptr, align, mask)
        return context.get_dummy_value()

    return types.none(p, out, types.boolean), codegen


@numba.njit(cache=True, fastmath={"contract"})
def _block_fwd(u2, dt2, a2, B2, C2, h2, y2, m):  # pragma: no cover - compiled
    """Forward of one chunk of steps of a block: y2[t, j] = <C2[t], h_t[:, j]>; u2, dt2, y2 (c,w);
    a2 = A log2 e (n,w); B2, C2 (c,n); h2 (n,w) the state before the chunk, left as the state after.
    w a multiple of 16: each 16 lanes run by ``_scan_step16``, the first ceil(m / 16) of them only
    (m the block's real channels: a group's last block may be part padding, e.g. MambaIR-light's
    72 channels in blocks of 48; the other lanes' y2 and h2 are left as they were)."""
    nl, w = u2.shape
    nn_, nv = a2.shape[0], w // _LANES
    nr = min(nv, (m + _LANES - 1) // _LANES)  # vectors with a real channel
    a = np.empty((nv, nn_, _LANES), dtype=np.float32)  # (n, w) -> (w/16, n, 16): a vector's states together
    h = np.empty((nv, nn_, _LANES), dtype=np.float32)
    for k in range(nv):
        for s in range(nn_):
            for j in range(_LANES):
                a[k, s, j] = a2[s, k * _LANES + j]
                h[k, s, j] = h2[s, k * _LANES + j]
    u3 = u2.reshape(nl, nv, _LANES)  # (c, w) -> (c, w/16, 16)
    dt3 = dt2.reshape(nl, nv, _LANES)
    y3 = y2.reshape(nl, nv, _LANES)
    for t in range(nl):
        for k in range(nr):
            _scan_step16(y3[t, k], u3[t, k], dt3[t, k], a[k], h[k], B2[t], C2[t])
    for k in range(nv):
        for s in range(nn_):
            for j in range(_LANES):
                h2[s, k * _LANES + j] = h[k, s, j]


@numba.njit(cache=True, fastmath={"contract"})
def _block_bwd(u2, dt2, A2, B2, C2, dy2, du2, ddt2, dA2, dB2, dC2, need_dA, add_dBC):  # pragma: no cover
    """Backward of one block: u2, dt2, dy2, du2, ddt2 (l,16); A2, dA2 (n,16); B2, C2, dB2, dC2 (l,n).
    dA2 is left as zeros where need_dA is False (LAM's frozen parameters): 8% of the kernel. The
    block's dB and dC are added into dB2 and dC2 where add_dBC (a group's blocks in turn), else
    written there.

    The work arrays are allocated here, all float32 and with fixed row offsets: LLVM
    then knows that they overlap nothing else and vectorises the hot loops (with dA as
    a separate float64 array in the reverse loop, that loop ran more than 2x slower here).
    """
    nl = u2.shape[0]
    nn_ = A2.shape[0]
    w = _LANES  # a compile-time constant: the loops over lanes become single SIMD instructions
    hs = np.empty((nl + 1, nn_, w), dtype=np.float32)  # hs[t + 1] = h_t, hs[0] = 0
    # st[s]: A, dLoss/dh_t arriving from t + 1, this block of steps' dA terms, A log2 e
    st = np.zeros((nn_, 4, w), dtype=np.float32)
    v = np.zeros((2, w), dtype=np.float32)  # the recompute's dt_t and dt_t u_t
    dA = np.zeros((nn_, w), dtype=np.float64)  # sums l terms: float32 over 64 steps, then float64
    # a step's products for dB and dC, in whole slabs of 16 states (rows >= n stay 0)
    prod = np.zeros((2, (nn_ + _LANES - 1) // _LANES * _LANES, _LANES), dtype=np.float32)
    for s in range(nn_):
        for j in range(w):
            st[s, 0, j] = A2[s, j]
            st[s, 3, j] = A2[s, j] * _LOG2E
    # 1. recompute the hidden states
    hs[0, :, :] = 0.0
    for t in range(nl):
        _copy16(v[0], dt2[t])
        _product16(v[1], dt2[t], u2[t])
        for s in range(nn_):
            bs = B2[t, s]
            for j in range(w):
                hs[t + 1, s, j] = _exp2_32(v[0, j] * st[s, 3, j]) * hs[t, s, j] + v[1, j] * bs
    # 2. reverse recurrence
    for t in range(nl - 1, -1, -1):
        _bwd_step16(dt2[t], u2[t], dy2[t], hs[t], hs[t + 1], st, B2[t], C2[t], need_dA, ddt2[t], du2[t],
                    prod[0], prod[1])
        for s0 in range(0, nn_, _LANES):  # B and C are shared by the block: sums over its lanes
            s1 = min(s0 + _LANES, nn_)
            _lane_sums16(prod[0, s0:s0 + _LANES], dB2[t, s0:s1], add_dBC)
            _lane_sums16(prod[1, s0:s0 + _LANES], dC2[t, s0:s1], add_dBC)
        if t % 64 == 0:
            for s in range(nn_):
                for j in range(w):
                    dA[s, j] += st[s, 2, j]
                    st[s, 2, j] = 0.0
    for s in range(nn_):
        for j in range(w):
            dA2[s, j] = dA[s, j]


def _blocks(x: Tensor, g: int, w: int = _LANES) -> Tensor:
    """(b, d, l) -> (b, g, k, l, w) float32, zero-padded blocks of w of each group's channels.

    Used for the kernels' A (l = n: a few kilobytes), so plain torch copies: a parallel numba
    kernel here waited for its threads behind torch's spinning ones (0.66 ms a call in a forward,
    32 us alone)."""
    x = x.detach().float()
    b, d, l = x.shape
    per = d // g
    k = -(-per // w)
    xp = F.pad(x.reshape(b, g, per, l), (0, 0, 0, k * w - per))  # (b, g, k w, l), zero channels added
    return xp.reshape(b, g, k, w, l).transpose(3, 4).contiguous()  # (b, g, k, l, w)


def _unblocks(xb: Tensor, d: int) -> Tensor:
    """(b, g, k, l, w) -> (b, d, l), padding dropped."""
    b, g, k, l, w = xb.shape
    x = xb.transpose(3, 4).reshape(b, g, k * w, l)[:, :, : d // g]  # (b, g, per, l)
    return x.reshape(b, d, l).float()


def _np(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


@numba.njit(cache=True)
def _load_rows(x, bi, c0, m, s0, rev, slab):  # pragma: no cover - compiled
    """slab[t, j] = x[bi, c0 + j, i(s0 + t)] for j < m, 0 for m <= j < w; x (b, d, l), slab (c, w);
    i(p) = p, or l - 1 - p where rev (a scan that runs from the end of its rows).

    Eight rows at a time, in tiles of 64 steps: x's rows are l floats apart, and walking
    down many of them at once (l = 4096: 16 KB apart) keeps hitting one cache set.
    """
    nl, w = slab.shape
    lo = x.shape[2] - s0 - nl if rev else s0  # the rows' first index this chunk reads
    for j in range(m, w):
        for t in range(nl):
            slab[t, j] = 0.0
    for j0 in range(0, m, 8):
        for t0 in range(0, nl, 64):
            for j in range(j0, min(j0 + 8, m)):
                row = x[bi, c0 + j, lo:lo + nl]
                if rev:
                    for t in range(t0, min(t0 + 64, nl)):
                        slab[t, j] = row[nl - 1 - t]
                else:
                    for t in range(t0, min(t0 + 64, nl)):
                        slab[t, j] = row[t]


@numba.njit(cache=True)
def _reversed_rows(x, lo, hi, out):  # pragma: no cover - compiled
    """out[t] = x[hi - 1 - t] for t < hi - lo; x (l, n), out (>= hi - lo, n): B or C of a reversed scan."""
    for t in range(hi - lo):
        for s in range(x.shape[1]):
            out[t, s] = x[hi - 1 - t, s]


@numba.njit(cache=True, fastmath={"contract"})
def _lowrank_rows(X, W, c0, m, s0, rev, x2):  # pragma: no cover - compiled
    """x2[t, j] = sum_q W[c0 + j, q] X[i(s0 + t), q] for j < m, 0 for m <= j < w; X (l, q) a group's
    low-rank step inputs, W (d, q), x2 (c, w); i as in _load_rows. The step sizes of a block are
    formed in its slab from q (4-6) numbers a step, not read from a (b, d, l) tensor of them."""
    nl, w = x2.shape
    nq = X.shape[1]
    wq = np.zeros((nq, w), dtype=np.float32)
    for q in range(nq):
        for j in range(m):
            wq[q, j] = W[c0 + j, q]
    for t in range(nl):
        i = X.shape[0] - 1 - (s0 + t) if rev else s0 + t
        for j in range(w):
            x2[t, j] = 0.0
        for q in range(nq):
            xq = X[i, q]
            for j in range(w):
                x2[t, j] += wq[q, j] * xq


# error_model="numpy": no zero-division check on "/" (its branch stops LLVM vectorising the loop).
@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _dt_rows(x2, bias, c0, m, softplus, dt2):  # pragma: no cover - compiled
    """dt2 = softplus(x2 + bias[c0 + j]) per lane j (bias 0 on padded lanes), or x2 + bias; (c, w)."""
    nl, w = x2.shape
    bw = np.zeros(w, dtype=np.float32)
    for j in range(m):
        bw[j] = bias[c0 + j]
    for t in range(nl):
        if softplus:
            for j in range(w):
                dt2[t, j] = _softplus32(x2[t, j] + bw[j])
        else:
            for j in range(w):
                dt2[t, j] = x2[t, j] + bw[j]


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _softplus_grad_rows(x2, bias, c0, m, g2):  # pragma: no cover - compiled
    """In place g2 *= e^x / (e^x + 1) for x = x2 + bias (x <= 20; unchanged above), as torch; (l, 16)."""
    nl = x2.shape[0]
    b16 = np.zeros(_LANES, dtype=np.float32)
    for j in range(m):
        b16[j] = bias[c0 + j]
    for t in range(nl):
        for j in range(_LANES):
            x = x2[t, j] + b16[j]
            z = _exp32(min(x, np.float32(20.0)))
            f = z / (z + np.float32(1.0))
            g2[t, j] = g2[t, j] if x > np.float32(20.0) else g2[t, j] * f


@numba.njit(inline="always", cache=True)
def _task_block(task, ng, nk, per, w):  # pragma: no cover - compiled
    """One prange task's block: image bi, group gi, block k of the group, its first channel c0 and
    its count of real channels m (<= w; the rest of the block is padding)."""
    k = task % nk
    gi = (task // nk) % ng
    bi = task // (nk * ng)
    return bi, gi, k, gi * per + k * w, min(w, per - k * w)


@numba.njit(cache=True)
def _forward_work(w, nn_):  # pragma: no cover - compiled
    """A forward task's work arrays: u, dt, y slabs (_CHUNK, w); a chunk's B and C in step order
    (_CHUNK, n); the state h and A log2 e (n, w); D per lane (w,)."""
    return (np.empty((_CHUNK, w), dtype=np.float32), np.empty((_CHUNK, w), dtype=np.float32),
            np.empty((_CHUNK, w), dtype=np.float32), np.empty((_CHUNK, nn_), dtype=np.float32),
            np.empty((_CHUNK, nn_), dtype=np.float32), np.empty((nn_, w), dtype=np.float32),
            np.empty((nn_, w), dtype=np.float32), np.empty(w, dtype=np.float32))


@numba.njit(cache=True)
def _backward_slabs(nl):  # pragma: no cover - compiled
    """A backward task's six (l, 16) slabs: u, dt, dy, du, ddt and the raw step inputs."""
    return (np.empty((nl, _LANES), dtype=np.float32), np.empty((nl, _LANES), dtype=np.float32),
            np.empty((nl, _LANES), dtype=np.float32), np.empty((nl, _LANES), dtype=np.float32),
            np.empty((nl, _LANES), dtype=np.float32), np.empty((nl, _LANES), dtype=np.float32))


@numba.njit(cache=True)
def _start_group(A2, Dv, c0, m, h, a, dv):  # pragma: no cover - compiled
    """A forward block's start of a group: state h = 0, a = A log2 e (as _block_bwd scales it),
    dv[j] = D of channel c0 + j; A2, h, a (n, w), dv (w,)."""
    for s in range(A2.shape[0]):
        for j in range(A2.shape[1]):
            h[s, j] = 0.0
            a[s, j] = A2[s, j] * _LOG2E
    for j in range(m):
        dv[j] = Dv[c0 + j]


@numba.njit(cache=True)
def _load_tokens(xb, index, c0, m, s0, rev, slab):  # pragma: no cover - compiled
    """slab[t, j] = xb[index[i(s0 + t)], c0 + j] for j < m, 0 for m <= j < w; xb (l, c) one image's
    token rows, index (l,), slab (c, w); i(p) = p, or l - 1 - p where rev. For any width (a group's B
    and C, n of them); slabs of whole 16-lane vectors load faster by ``_load_tokens16``."""
    nl, w = slab.shape
    last = index.shape[0] - 1
    for t in range(nl):
        # sliced, not indexed as xb[tok, c0 + j]: numba's wrap-around of negative indices (it cannot
        # know c0 >= 0) made LLVM vectorise that as gathers
        src = xb[index[last - s0 - t if rev else s0 + t], c0:c0 + m]
        dst = slab[t]
        for j in range(m):
            dst[j] = src[j]
        for j in range(m, w):
            dst[j] = 0.0


@numba.njit(cache=True)
def _load_tokens16(xb, index, c0, m, s0, rev, slab):  # pragma: no cover - compiled
    """``_load_tokens`` for a slab of whole 16-lane vectors (w a multiple of 16): one masked vector
    load per 16 lanes (see ``_load16``), the same values."""
    nl, w = slab.shape
    s3 = slab.reshape(nl, w // _LANES, _LANES)
    last = index.shape[0] - 1
    for t in range(nl):
        row = xb[index[last - s0 - t if rev else s0 + t]]
        for k in range(w // _LANES):
            _load16(s3[t, k], row, c0 + k * _LANES, m - k * _LANES)


@numba.njit(cache=True, fastmath={"contract"})
def _add_rows_mapped(yb, index, j0, m, lo, c, rev, y2, u2, dv):  # pragma: no cover - compiled
    """yb[index[i(t)], j0 + j] += y2[t, j] + u2[t, j] dv[j] for j < m; yb (l, p) one image's
    channel-last output, index (l,), i(t) = lo + t, or lo + c - 1 - t where rev: a step's channels
    are one contiguous run of the output's row (``_load_tokens`` reads them so), added one masked
    16-lane vector at a time (``_add_skip16``); y2, u2 (c', w) slabs with w a multiple of 16."""
    nv = y2.shape[1] // _LANES  # 16-lane vectors a block
    y3 = y2.reshape(y2.shape[0], nv, _LANES)  # (c, w) -> (c, w/16, 16)
    u3 = u2.reshape(u2.shape[0], nv, _LANES)
    dv2 = dv.reshape(nv, _LANES)
    for t in range(c):
        row = yb[index[lo + c - 1 - t if rev else lo + t]]
        for k in range((m + _LANES - 1) // _LANES):
            _add_skip16(row, j0 + k * _LANES, y3[t, k], u3[t, k], dv2[k], m - k * _LANES)


@numba.njit(**_JIT)
def _fused_fwd(u, delta, X, W, bias, Dv, Ab, Bt, Ct, rev, out_index, softplus, y):  # pragma: no cover
    """y = scan(u, softplus(delta + bias)) + D u; delta (b, d, l); u (b, du, l), group gi reading u's
    group gi // (g // gu), gu = du // per; bias, Dv (d,); Ab (g, k, n, w); Bt, Ct (b, g, l, n);
    rev (g,): group gi scans from the end of its rows. Where W (d, q) has columns, delta is not read
    (any array will do) but formed as W X per group, X (b, g, l, q). Output: where out_index
    (b, g, l) has columns, y (b, l, per) channel-last and zeroed, group gi's step at index i of its
    rows added into row out_index[b, gi, i], the groups in turn (one task runs every group of its
    block); else y (b, d, l) in the groups' own layout and order.
    A task's block of w channels runs chunk by chunk of _CHUNK steps: it copies its rows into
    (chunk, w) slabs, scans them carrying the state, and writes its rows of y. Chunks keep the slabs
    in the core's L2 cache (w = 64: 3 x 256 KB); whole-sequence slabs of a wide block did not fit,
    and the copies in and out then cost more than the wider recurrence saved."""
    nb, nl = Bt.shape[0], Bt.shape[2]
    ng, nk, nn_, w = Ab.shape
    per = Dv.shape[0] // ng
    gu = u.shape[1] // per
    lowrank = W.shape[1] > 0
    summed = out_index.shape[2] > 0
    gpt = ng if summed else 1  # groups a task runs in turn
    for task in numba.prange(nb * (ng // gpt) * nk):
        bi, gt, k, _, m = _task_block(task, ng // gpt, nk, per, w)
        u2, dt2, y2, Br, Cr, h, a, dv = _forward_work(w, nn_)  # Br, Cr: a reversed scan's B and C
        for gi in range(gt * gpt, gt * gpt + gpt):
            c0 = gi * per + k * w  # the block's first channel of delta
            uc0 = gi // (ng // gu) * per + k * w  # and of u
            r = rev[gi]
            _start_group(Ab[gi, k], Dv, c0, m, h, a, dv)
            for s0 in range(0, nl, _CHUNK):
                c = min(_CHUNK, nl - s0)
                lo = nl - s0 - c if r else s0  # the rows' first index this chunk covers
                _load_rows(u, bi, uc0, m, s0, r, u2[:c])
                if lowrank:  # raw delta, in y2 until the scan writes it
                    _lowrank_rows(X[bi, gi], W, c0, m, s0, r, y2[:c])
                else:
                    _load_rows(delta, bi, c0, m, s0, r, y2[:c])
                _dt_rows(y2[:c], bias, c0, m, softplus, dt2[:c])
                if summed:  # the scattered rows this chunk adds into arrive during the recurrence
                    _prefetch_tokens(y[bi], out_index[bi, gi], k * w, m, s0, c, r)
                if r:
                    _reversed_rows(Bt[bi, gi], lo, lo + c, Br)
                    _reversed_rows(Ct[bi, gi], lo, lo + c, Cr)
                    _block_fwd(u2[:c], dt2[:c], a, Br[:c], Cr[:c], h, y2[:c], m)
                else:
                    _block_fwd(u2[:c], dt2[:c], a, Bt[bi, gi, s0:s0 + c], Ct[bi, gi, s0:s0 + c], h, y2[:c], m)
                if summed:
                    _add_rows_mapped(y[bi], out_index[bi, gi], k * w, m, lo, c, r, y2, u2, dv)
                    continue
                for j0 in range(0, m, 8):  # in tiles of 64 steps and eight rows, as _load_rows reads
                    for t0 in range(0, c, 64):
                        for j in range(j0, min(j0 + 8, m)):
                            row = y[bi, c0 + j, lo:lo + c]
                            if r:
                                for t in range(t0, min(t0 + 64, c)):
                                    row[c - 1 - t] = y2[t, j] + u2[t, j] * dv[j]
                            else:
                                for t in range(t0, min(t0 + 64, c)):
                                    row[t] = y2[t, j] + u2[t, j] * dv[j]


@numba.njit(**_JIT)
def _fused_bwd(u, delta, X, W, bias, Dv, Ab, Bt, Ct, rev, out_index, softplus, need_dA, dy, du, ddelta, dAb,
               dBb, dCb, dDp, dbp):  # pragma: no cover - compiled
    """Gradients of ``_fused_fwd``, per block: du (b, d, l) per group of delta (summed afterwards
    where groups share u), ddelta (b, d, l), layout order; dAb (b, g, k, n, 16); dBb, dCb
    (b, g, k, l, n) per block (summed afterwards); dDp, dbp (b, d) per image. dy is shaped as
    the forward's y (its rows read through out_index where that has columns)."""
    nb, nl = Bt.shape[0], Bt.shape[2]
    ng, nk, nn_ = Ab.shape[0], Ab.shape[1], Ab.shape[2]
    per = Dv.shape[0] // ng
    gu = u.shape[1] // per
    lowrank = W.shape[1] > 0
    summed = out_index.shape[2] > 0
    for task in numba.prange(nb * ng * nk):
        bi, gi, k, c0, m = _task_block(task, ng, nk, per, _LANES)
        uc0 = gi // (ng // gu) * per + k * _LANES
        r = rev[gi]
        u2, dt2, dy2, du2, ddt2, x2 = _backward_slabs(nl)  # x2: the raw step inputs
        _load_rows(u, bi, uc0, m, 0, r, u2)
        if lowrank:
            _lowrank_rows(X[bi, gi], W, c0, m, 0, r, x2)
        else:
            _load_rows(delta, bi, c0, m, 0, r, x2)
        _dt_rows(x2, bias, c0, m, softplus, dt2)
        if summed:
            _load_tokens(dy[bi], out_index[bi, gi], k * _LANES, m, 0, r, dy2)
        else:
            _load_rows(dy, bi, c0, m, 0, r, dy2)
        if r:  # B, C and their gradients in step order, reversed from and back into layout order
            B2 = np.empty((nl, nn_), dtype=np.float32)
            C2 = np.empty((nl, nn_), dtype=np.float32)
            _reversed_rows(Bt[bi, gi], 0, nl, B2)
            _reversed_rows(Ct[bi, gi], 0, nl, C2)
            dB2 = np.empty((nl, nn_), dtype=np.float32)
            dC2 = np.empty((nl, nn_), dtype=np.float32)
            _block_bwd(u2, dt2, Ab[gi, k], B2, C2, dy2, du2, ddt2, dAb[bi, gi, k], dB2, dC2, need_dA, False)
            _reversed_rows(dB2, 0, nl, dBb[bi, gi, k])
            _reversed_rows(dC2, 0, nl, dCb[bi, gi, k])
        else:
            _block_bwd(u2, dt2, Ab[gi, k], Bt[bi, gi], Ct[bi, gi], dy2, du2, ddt2, dAb[bi, gi, k],
                       dBb[bi, gi, k], dCb[bi, gi, k], need_dA, False)
        if softplus:  # torch's softplus backward: g e^x / (e^x + 1) up to the threshold, else g
            _softplus_grad_rows(x2, bias, c0, m, ddt2)
        s_d = np.zeros(_LANES, dtype=np.float64)  # sums over the steps, in step order
        s_b = np.zeros(_LANES, dtype=np.float64)
        _step_sums16(dy2, u2, ddt2, s_d, s_b)
        for j in range(m):
            c = c0 + j
            dj = Dv[c]
            du_row, dd_row = du[bi, c], ddelta[bi, c]
            for t in range(nl):
                i = nl - 1 - t if r else t  # step t's index in the rows
                du_row[i] = du2[t, j] + dy2[t, j] * dj
                dd_row[i] = ddt2[t, j]
            dDp[bi, c] = s_d[j]
            dbp[bi, c] = s_b[j]


# The forward's blocks may be wider than one register: its loops over lanes then run two to four
# independent SIMD chains per step and state, which hide each other's latency and share the step's
# loads and loop overhead. Scan op forward against the whole-sequence 16-lane kernel before it
# (one run of 5 rounds each, 2 threads, l = 65536, n = 10, 384 channels in one group): chunked 16
# lanes 1.30-1.32x, 32 lanes 1.52-1.69x, 48 lanes 1.52-1.64x, 64 lanes 1.38-1.68x; so one speed for
# 32-64 here. On the light models' 256x256 shapes as chosen below: MambaIR-light (4 groups of 72,
# 48 lanes) 1.38-1.51x, MambaIRv2-light (48 channels, 32 lanes) 1.48-1.54x. The lanes are
# independent, so every width gives the same bits. The backward keeps 16 lanes: it holds a block's
# whole sequence of states.
# Since the recurrence runs as explicit 16-lane steps (``_scan_step16``) the recurrence alone nearly
# keeps up at 16 lanes (one block, n = 10, 512 steps, one thread: 3.21 ns per 16-lane state update,
# 2.87-2.93 ns at 32-64), but each block still loads, forms and writes its own token rows: the
# tokens scan op at MambaIR-light's shapes (a one-off script, every width forced, 6 rounds, medians)
# ran 4 images of 64x64 in 16.7 / 14.7 / 15.0 / 18.3 ms at 16 / 32 / 48 / 64 lanes, one 256x256 in
# 65.6 / 73.4 / 50.4 / 62.8 ms, so the wider blocks keep their 1.3.
_WIDTHS = (64, 48, 32, _LANES)
_SPEED = {64: 1.3, 48: 1.3, 32: 1.3, _LANES: 1.0}  # a block's lanes per second, relative to 16 lanes


def _block_width(b: int, g: int, per: int, threads: int) -> int:
    """Lanes per block of the forward for b images, g groups of per channels: the width with the
    least time, counting the padding of each group's last block and rounds of tasks on the cores."""
    def cost(w: int) -> float:
        tasks = b * g * -(-per // w)
        return -(-tasks // threads) * w / _SPEED[w]

    return min(_WIDTHS, key=cost)  # ties go to the wider block (listed first)


class _ScanFused(torch.autograd.Function):
    """y = scan(u, softplus?(delta + bias), A, B, C) + D u in layout order; y (b, d, l) float32; delta
    (b, d, l), or with W (d, q) given, the low-rank X (b, g, l, q) with delta = W X per group; u
    (b, du, l) read by the groups in turn; Bt, Ct (b, g, l, n); D, bias (d,); rev (g,) bool, the
    groups that scan from the end. The bias, softplus and skip run inside the kernel."""

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, Bt: Tensor, Ct: Tensor, D: Tensor,
                bias: Tensor, W: Tensor | None, out_index: Tensor | None, softplus: bool,
                rev: np.ndarray) -> Tensor:
        (b, _, l), (d, g) = u.shape, (A.shape[0], Bt.shape[1])
        if out_index is None:  # y (b, d, l), a task per group's block
            w = _block_width(b, g, d // g, numba.get_num_threads())
            y = torch.empty((b, d, l), dtype=torch.float32)
        else:  # y (b, l, p) summed over the groups, a task per block running every group
            w = _block_width(b, 1, d // g, numba.get_num_threads())
            y = torch.zeros((b, l, d // g), dtype=torch.float32)
        Ab = _blocks(A[None], g, w)[0]  # (d, n) -> (g, k, n, w)
        with _KERNEL_LOCK:
            _fused_fwd(u.numpy(), *_delta_args(delta, W, b, g), bias.numpy(), D.numpy(), Ab.numpy(),
                       Bt.numpy(), Ct.numpy(), rev, _index_arg(out_index, b, g), softplus, y.numpy())
        ctx.save_for_backward(u, delta, A, Bt, Ct, D, bias, W, out_index)
        ctx.softplus, ctx.rev = softplus, rev
        return y

    @staticmethod
    def backward(ctx, dy: Tensor):
        u, delta, A, Bt, Ct, D, bias, W, out_index = ctx.saved_tensors
        (b, g, l, _), d = Bt.shape, A.shape[0]
        Ab = _blocks(A[None], Bt.shape[1])[0]  # (d, n) -> (g, k, n, 16)
        g, k, n, _ = Ab.shape
        du, ddelta, dAb, dBb, dCb, dDp, dbp = _grad_buffers((b, d, l), d, g, k, n)
        with _KERNEL_LOCK:
            _fused_bwd(u.numpy(), *_delta_args(delta, W, b, g), bias.numpy(), D.numpy(), Ab.numpy(),
                       Bt.numpy(), Ct.numpy(), ctx.rev, _index_arg(out_index, b, g), ctx.softplus,
                       ctx.needs_input_grad[2], _np(dy.float()), du.numpy(),
                       ddelta.numpy(), dAb.numpy(), dBb.numpy(), dCb.numpy(), dDp.numpy(), dbp.numpy())
        gu = u.shape[1] // (d // g)
        if gu != g:  # g // gu consecutive groups read the same rows of u: their gradients add up
            du = du.view(b, gu, g // gu, d // g, l).sum(2).view(b, u.shape[1], l)  # (b, d, l) -> (b, du, l)
        dW = dA = None
        if W is not None:  # delta = W X per group: the gradients of X and W from ddelta
            dd = ddelta.view(b, g, d // g, l)  # (b, g, p, l)
            if ctx.needs_input_grad[7]:
                dW = torch.einsum("bgpl,bglq->gpq", dd, delta).reshape(d, -1)  # (d, q)
            ddelta = torch.einsum("bgpl,gpq->bglq", dd, W.view(g, d // g, -1))  # (b, g, l, q)
        if ctx.needs_input_grad[2]:
            dA = _unblocks(dAb.sum(0)[None], d)[0]  # (g, k, n, 16) summed over the batch -> (d, n)
        # dB, dC summed over a group's blocks; dD, dbias over the batch.
        return du, ddelta, dA, dBb.sum(2), dCb.sum(2), dDp.sum(0), dbp.sum(0), dW, None, None, None


def _grad_buffers(rows: tuple[int, int, int], d: int, g: int, k: int, n: int) -> tuple[Tensor, ...]:
    """``_fused_bwd``'s outputs, float32: du and ddelta shaped ``rows`` (b, d, l); dAb (b, g, k, n, 16);
    dBb, dCb (b, g, k, l, n) per block; dDp, dbp (b, d)."""
    b, l = rows[0], rows[1] * rows[2] // d
    shapes = (rows, rows, (b, g, k, n, _LANES), (b, g, k, l, n), (b, g, k, l, n), (b, d), (b, d))
    return tuple(torch.empty(shape, dtype=torch.float32) for shape in shapes)


def _index_arg(out_index: Tensor | None, b: int, g: int) -> np.ndarray:
    """The kernels' out_index: (b, g, l) int64, or (b, g, 0) for outputs in the groups' own rows."""
    return np.zeros((b, g, 0), dtype=np.int64) if out_index is None else out_index.numpy()


def _delta_args(delta: Tensor, W: Tensor | None, b: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernels' (delta, X, W) arrays: delta's rows, or the low-rank X and W with an unread delta."""
    if W is None:
        return delta.numpy(), np.zeros((b, g, 1, 0), dtype=np.float32), np.zeros((1, 0), dtype=np.float32)
    return np.zeros((1, 1, 1), dtype=np.float32), delta.numpy(), W.numpy()


@numba.njit(parallel=True, cache=True)
def _gather_last(x, index, out):  # pragma: no cover - compiled
    """out[r, i] = x[r, index[i]]; x, out (r, l), index (l,). One task per row: a row of a
    256x256 input (256 KB) stays in L2 while its reads jump around it."""
    for r in numba.prange(x.shape[0]):
        row, dst = x[r], out[r]
        for i in range(index.shape[0]):
            dst[i] = row[index[i]]


@numba.njit(parallel=True, cache=True)
def _gather_tokens_last(tok, index, out):  # pragma: no cover - compiled
    """out[c, i] = tok[index[i], c]; tok (l, r) token rows, out (r, l): the gather of ``_gather_last``
    from a channel-last map, transposing as it goes. One task per tile of 64 positions: its token
    rows are copied whole into a small buffer, then written out as 64-wide runs of each row."""
    l, r = tok.shape
    nt = -(-l // 64)
    for task in numba.prange(nt):
        i0 = task * 64
        n = min(64, l - i0)
        buf = np.empty((64, r), dtype=tok.dtype)
        for ii in range(n):
            src, dst = tok[index[i0 + ii]], buf[ii]
            for c in range(r):
                dst[c] = src[c]
        for c in range(r):
            dst = out[c, i0:i0 + n]
            for ii in range(n):
                dst[ii] = buf[ii, c]


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """x (..., l) reordered along its last dimension by index (l,), through ``_gather_last``; a
    channel-last (1, d, l) view (MambaIRv2's convolution output) through ``_gather_tokens_last``,
    without the contiguous copy first (the two at 256x256: 6.3-6.9 -> 0.9-1.0 ms, one-off timing)."""
    out = torch.empty(x.shape, dtype=x.dtype)
    if x.dim() == 3 and x.shape[0] == 1 and x.stride(1) == 1 and x.stride(2) == x.shape[1]:
        with _KERNEL_LOCK:
            _gather_tokens_last(x[0].t().numpy(), index.numpy(), out[0].numpy())  # x[0].t(): (l, d) rows
        return out
    x = x.contiguous()
    with _KERNEL_LOCK:
        _gather_last(x.reshape(-1, x.shape[-1]).numpy(), index.numpy(), out.view(-1, x.shape[-1]).numpy())
    return out


class _GatherLast(torch.autograd.Function):
    """out[..., i] = x[..., index[i]] for a permutation index; its gradient is the same gather by
    the inverse permutation."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        return _gather(x.detach(), index.contiguous())

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        inverse = torch.empty_like(index)
        inverse[index] = torch.arange(index.shape[0])  # (l,): raster position -> sorted position
        return _gather(grad.contiguous(), inverse), None


def permute_last_numba(x: Tensor, index: Tensor) -> Tensor:
    """x[..., index] for a CPU tensor and a permutation index (l,) of its last dimension, as
    ``x.index_select(-1, index)`` (the reference twin; the same values and gradients) but one
    numba task per row: MambaIRv2's SGN sort of a (1, 48, 65536) input took 8.5 ms with
    index_select, 1.0 ms here (one-off timing, 2 threads)."""
    if x.device.type != "cpu" or index.dim() != 1 or index.shape[0] != x.shape[-1]:
        raise ValueError("permute_last_numba takes a CPU tensor (..., l) and a permutation (l,)")
    _follow_torch_threads()
    return _GatherLast.apply(x, index)


def _follow_torch_threads() -> None:
    """numba keeps its own thread pool: follow torch's count, which model.threads sets per run."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def selective_scan_numba(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                         z: Tensor | None = None, delta_bias: Tensor | None = None,
                         delta_softplus: bool = False) -> Tensor:
    """Numba selective scan on CPU tensors (mamba-ssm signature, float32 compute, returns u's dtype)."""
    n_groups = B.shape[1] if B.dim() == 4 else 1
    y = selective_scan_directed_numba(u, delta, A, B, C, D, delta_bias, delta_softplus, (False,) * n_groups)
    if z is not None:  # the gate in float32, as the rest
        y = y.float() * F.silu(z.float())
    return y.to(u.dtype)


def selective_scan_directed_numba(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                                  D: Tensor | None, delta_bias: Tensor | None, delta_softplus: bool,
                                  reverse: tuple[bool, ...], dt_weight: Tensor | None = None,
                                  out_index: Tensor | None = None) -> Tensor:
    """``ref.selective_scan_directed_ref`` (the spec, same signature) in the numba kernels: the groups
    read their shared rows of u and their reversed sequences in place, with no copies, form
    low-rank step sizes in place, and add their outputs into out_index's rows (float32 compute,
    returns u's dtype)."""
    if u.device.type != "cpu":
        raise ValueError("selective_scan_numba runs on CPU tensors only")
    _follow_torch_threads()
    Bg = B.float() if B.dim() == 4 else B.float().unsqueeze(1)  # (b, n, l) -> (b, 1, n, l)
    Cg = C.float() if C.dim() == 4 else C.float().unsqueeze(1)
    (b, g, _, l), d = Bg.shape, A.shape[0]
    W = None
    if dt_weight is not None:  # delta (b, g, q, l) low-rank, W (d, q)
        W = dt_weight.float().reshape(d, -1).contiguous()
        if delta.shape != (b, g, W.shape[1], l):
            raise ValueError(f"low-rank delta must be (b, g, q, l) = {(b, g, W.shape[1], l)}, "
                             f"got {tuple(delta.shape)}")
        df = delta.float().transpose(2, 3).contiguous()  # (b, g, q, l) -> (b, g, l, q): rank innermost
    elif delta.shape != (b, d, l):
        raise ValueError(f"delta must be (b, d, l) = {(b, d, l)}, got {tuple(delta.shape)}")
    else:
        df = delta.float().contiguous()
    if d % g or Cg.shape[1] != g or len(reverse) != g:
        raise ValueError(f"channels d={d} must split evenly into the groups of B/C {tuple(Bg.shape)}, "
                         f"with one direction per group (got {len(reverse)})")
    uf = u.float()
    if uf.shape[1] % (d // g) or g % (uf.shape[1] // (d // g)):
        raise ValueError(f"u's {uf.shape[1]} channels must be whole groups of {d // g} that the {g} "
                         "groups of delta share evenly")
    if out_index is not None:
        out_index = out_index.to(torch.int64).expand(b, g, l).contiguous()  # (b, g, l)
        if out_index.numel() and (int(out_index.min()) < 0 or int(out_index.max()) >= l):
            raise ValueError(f"out_index must hold rows 0..{l - 1} of the output")
    Bt = Bg.transpose(2, 3).contiguous()  # (b, g, n, l) -> (b, g, l, n): state innermost
    Ct = Cg.transpose(2, 3).contiguous()  # (b, g, n, l) -> (b, g, l, n)
    zeros = A.new_zeros(d, dtype=torch.float32)  # (d,) stands in for a missing D or bias
    Df = D.float() if D is not None else zeros
    bias = delta_bias.float() if delta_bias is not None else zeros
    return _ScanFused.apply(uf.contiguous(), df, A.float().contiguous(), Bt, Ct, Df.contiguous(),
                            bias.contiguous(), W, out_index, bool(delta_softplus),
                            np.array(reverse, dtype=np.bool_)).to(u.dtype)  # (b, d, l) or (b, l, p)
