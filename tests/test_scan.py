"""Scan backends against the reference (forward and gradients), and the dispatcher.

Dimension letters as in model/scan/ref.py: b batch, d channels, l length, n state, g groups.
"""

from __future__ import annotations

import importlib.util
import logging

import pytest
import torch

import model.scan as scan
from model.scan.gpu import selective_scan_torch
from model.scan.ref import selective_scan_ref

# (b, d, n, l, g, use_D, use_z, use_bias, softplus); g = 0 means ungrouped B/C (b, n, l).
GRID = [
    (1, 1, 1, 1, 0, False, False, False, False),
    (1, 3, 4, 17, 0, True, False, True, True),
    (2, 6, 16, 33, 1, True, True, True, True),
    (2, 8, 5, 300, 4, True, False, True, True),   # MambaIR-like: 4 groups
    (1, 12, 8, 257, 1, False, True, False, True),  # MambaIRv2-like: one group
    (2, 12, 3, 64, 4, False, False, False, False),
    (1, 4, 16, 2, 4, True, True, True, False),
    (2, 5, 2, 300, 0, True, True, False, True),
    (1, 40, 5, 70, 1, True, False, True, True),    # numba: three 16-channel blocks, the last padded
    (2, 272, 3, 20, 2, False, True, True, True),   # 136 channels a group: nine blocks each
]


def make_inputs(b, d, n, l, g, use_D, use_z, use_bias, softplus=True, dtype=torch.float32, seed=0):
    """Random scan arguments at the scales the models produce (A < 0, moderate dt > 0)."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale + shift).to(dtype)

    u = r(b, d, l)
    if softplus:  # raw dt, made positive by softplus(delta + bias)
        delta = r(b, d, l, scale=0.5, shift=-1.0)
    else:  # dt used as given: keep it (and the bias) positive
        delta = torch.rand(b, d, l, generator=gen, dtype=torch.float64).mul(0.5).add(0.01).to(dtype)
    A = -torch.rand(d, n, generator=gen, dtype=torch.float64).mul(2).add(0.05).to(dtype)
    bc_shape = (b, g, n, l) if g else (b, n, l)
    B = r(*bc_shape, scale=0.5)
    C = r(*bc_shape, scale=0.5)
    D = r(d) if use_D else None
    z = r(b, d, l) if use_z else None
    bias = None
    if use_bias:
        if softplus:
            bias = r(d, scale=0.3)
        else:
            bias = torch.rand(d, generator=gen, dtype=torch.float64).mul(0.1).to(dtype)
    return [u, delta, A, B, C, D, z, bias]


def rel_err(g: torch.Tensor, g_ref: torch.Tensor) -> float:
    """||g - g_ref|| / ||g_ref|| (absolute when the reference gradient is zero)."""
    num = (g.double() - g_ref.double()).norm().item()
    den = g_ref.double().norm().item()
    return num / den if den > 0 else num


def check_against_ref(fn, case, dtype=torch.float32):
    b, d, n, l, g, use_D, use_z, use_bias, softplus = case
    args = make_inputs(b, d, n, l, g, use_D, use_z, use_bias, softplus, dtype=dtype)
    leaves = [a.clone().requires_grad_() if a is not None else None for a in args]
    leaves_ref = [a.clone().requires_grad_() if a is not None else None for a in args]
    y = fn(*leaves, delta_softplus=softplus)
    y_ref = selective_scan_ref(*leaves_ref, delta_softplus=softplus)
    assert y.dtype == dtype and y.shape == (b, d, l)
    assert (y.float() - y_ref.float()).abs().max().item() <= 1e-5
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    present = [i for i, a in enumerate(leaves) if a is not None]
    grads = torch.autograd.grad(y, [leaves[i] for i in present], gy, materialize_grads=True)
    grads_ref = torch.autograd.grad(y_ref, [leaves_ref[i] for i in present], gy, materialize_grads=True)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    for i, gr, gr_ref in zip(present, grads, grads_ref, strict=True):
        assert gr.shape == args[i].shape and gr.dtype == dtype
        assert rel_err(gr, gr_ref) <= 1e-4, (names[i], rel_err(gr, gr_ref))


@pytest.mark.parametrize("case", GRID)
def test_numba_matches_reference(case):
    from model.scan.cpu import selective_scan_numba

    check_against_ref(selective_scan_numba, case)


@pytest.mark.parametrize("case", GRID)
def test_torch_scan_matches_reference(case):
    check_against_ref(selective_scan_torch, case)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_float64_inputs_return_float64(backend):
    fn = scan._LOADERS[backend]()
    check_against_ref(fn, (2, 8, 6, 40, 4, True, True, True, True), dtype=torch.float64)


def test_numba_gradient_is_not_trivially_zero():
    """Guards the gradient test: the compared gradients carry signal for every input."""
    from model.scan.cpu import selective_scan_numba

    args = [a.requires_grad_() for a in make_inputs(1, 4, 3, 20, 1, True, False, True)
            if a is not None]
    u, delta, A, B, C, D, bias = args
    y = selective_scan_numba(u, delta, A, B, C, D, None, bias, True)
    for gr in torch.autograd.grad(y.square().sum(), args):
        assert gr.abs().max() > 0


# Two Python threads scan at once (as the app's restore and a preview's timing do), forward and
# backward, and each result must equal the single-threaded one. In a fresh interpreter: numba's
# workqueue pool aborts the whole process on concurrent use.
_CONCURRENT = """
import threading, torch
from model.scan.cpu import selective_scan_numba
gen = torch.Generator().manual_seed(0)
b, d, l, n = 1, 96, 2048, 16
u, delta, B, C = (torch.randn(s, generator=gen) for s in [(b, d, l), (b, d, l), (b, 1, n, l), (b, 1, n, l)])
A = -torch.rand(d, n, generator=gen)
def run():
    x = u.clone().requires_grad_()
    y = selective_scan_numba(x, delta, A, B, C, delta_softplus=True)
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    return y.detach(), gx
want = run()
bad = []
go = threading.Barrier(2)
def work():
    go.wait()
    for _ in range(30):
        got = run()
        bad.extend(i for i in range(2) if not torch.equal(got[i], want[i]))
ts = [threading.Thread(target=work) for _ in range(2)]
[t.start() for t in ts]
[t.join() for t in ts]
print("differences", len(bad))
"""


def test_numba_scan_from_two_threads_at_once():
    """The compiled scan is safe to call from several threads: same results, no abort."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("numba")
    out = subprocess.run([sys.executable, "-c", _CONCURRENT], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["differences", "0"]


# --- dispatcher ---------------------------------------------------------------------------------


@pytest.fixture
def fresh_dispatch(monkeypatch):
    """Isolate the dispatcher's module state for one test."""
    monkeypatch.setattr(scan, "_forced", None)
    monkeypatch.setattr(scan, "_cache", {})
    monkeypatch.setattr(scan, "_errors", {})
    monkeypatch.setattr(scan, "_warned_device", set())
    monkeypatch.setattr(scan, "_LOADERS", dict(scan._LOADERS))
    monkeypatch.setattr(scan, "_DEVICES", dict(scan._DEVICES))
    monkeypatch.setattr(scan, "_DESCRIPTIONS", dict(scan._DESCRIPTIONS))
    monkeypatch.delenv("MAMBAIR_SCAN", raising=False)
    return scan


def small_call():
    args = make_inputs(1, 4, 3, 10, 1, True, False, True)
    return scan.selective_scan(*args, delta_softplus=True), selective_scan_ref(*args, delta_softplus=True)


def test_auto_uses_numba_on_cpu(fresh_dispatch):
    y, y_ref = small_call()
    assert scan.last_backend() == "numba"
    assert torch.allclose(y, y_ref, atol=1e-5)
    assert scan.backend_report("cpu") == "numba (CPU, compiled)"


@pytest.mark.parametrize("name", ["ref", "torch", "numba"])
def test_env_var_selects_backend(fresh_dispatch, monkeypatch, name):
    monkeypatch.setenv("MAMBAIR_SCAN", name)
    y, y_ref = small_call()
    assert scan.last_backend() == name
    assert torch.allclose(y, y_ref, atol=1e-5)


def test_set_backend_overrides_env_and_auto_resets(fresh_dispatch, monkeypatch):
    monkeypatch.setenv("MAMBAIR_SCAN", "torch")
    scan.set_backend("ref")
    small_call()
    assert scan.last_backend() == "ref"
    scan.set_backend("auto")
    small_call()
    assert scan.last_backend() == "torch"
    scan.set_backend(None)
    monkeypatch.delenv("MAMBAIR_SCAN")
    small_call()
    assert scan.last_backend() == "numba"


def test_unknown_names(fresh_dispatch, monkeypatch, caplog):
    with pytest.raises(ValueError, match="unknown scan backend"):
        scan.set_backend("cuda_magic")
    monkeypatch.setenv("MAMBAIR_SCAN", "cuda_magic")
    with caplog.at_level(logging.WARNING, logger="model.scan"):
        small_call()
    assert scan.last_backend() == "numba"
    assert "not a known backend" in caplog.text


def test_missing_dependency_falls_back_with_one_warning(fresh_dispatch, caplog):
    calls = []

    def broken_loader():
        calls.append(1)
        raise ImportError("No module named 'fancy_scan'")

    scan.register_backend("fancy", broken_loader, devices={"cpu"}, description="fancy")
    scan.set_backend("fancy")
    with caplog.at_level(logging.WARNING, logger="model.scan"):
        for _ in range(3):
            y, y_ref = small_call()
    assert scan.last_backend() == "numba"
    assert torch.allclose(y, y_ref, atol=1e-5)
    assert len(calls) == 1
    warnings = [r for r in caplog.records if "fancy" in r.getMessage()]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
    assert "fancy requested but ImportError" in scan.backend_report("cpu")


def test_auto_falls_back_to_ref_when_numba_breaks(fresh_dispatch, caplog):
    def no_numba():
        raise ImportError("No module named 'numba'")

    scan.register_backend("numba", no_numba, devices={"cpu"}, description="compiled")
    small_call()
    assert scan.last_backend() == "ref"
    assert scan.backend_report("cpu").startswith("ref (CPU, Python-loop reference); numba preferred but")


def test_device_restricted_backend_falls_back_on_cpu(fresh_dispatch, caplog):
    scan.set_backend("mamba_ssm")
    with caplog.at_level(logging.WARNING, logger="model.scan"):
        small_call()
        small_call()
    assert scan.last_backend() == "numba"
    assert sum("cannot run on cpu" in r.getMessage() for r in caplog.records) == 1
    assert "mamba_ssm requested but cannot run on CPU" in scan.backend_report("cpu")


def test_cuda_resolution_without_gpu(fresh_dispatch):
    """Which backend CUDA tensors would get; needs no GPU (resolution only)."""
    name, _ = scan.resolve_backend("cuda")
    expected = "mamba_ssm" if scan._load("mamba_ssm") is not None else "torch"
    assert name == expected
    scan.set_backend("numba")
    assert scan.resolve_backend("cuda")[0] == expected  # numba is CPU-only


def test_import_is_lazy():
    """Importing model.scan must not import numba (checked in a fresh interpreter)."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, model.scan; print('numba' in sys.modules, 'mamba_ssm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False"]


# --- GPU ------------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def to_cuda_fn(fn):
    def wrapped(*args, **kw):
        return fn(*[a.cuda() if a is not None else None for a in args], **kw).cpu()
    return wrapped


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("case", GRID[1:5])
def test_torch_scan_on_cuda(case):
    check_against_ref(to_cuda_fn(selective_scan_torch), case)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.skipif(importlib.util.find_spec("mamba_ssm") is None, reason="mamba_ssm not installed")
@pytest.mark.parametrize("case", GRID[1:5])
def test_mamba_ssm_on_cuda(case):
    from model.scan.gpu import load_mamba_ssm

    check_against_ref(to_cuda_fn(load_mamba_ssm()), case)


def _each(fn):
    """A compiled function applying the kernels' scalar numba function ``fn`` to every element."""
    import numba
    import numpy as np

    @numba.njit(error_model="numpy")
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = fn(x[i])
        return out

    return apply


def test_numba_vectorised_exp_accuracy():
    """The scan's own exp (polynomial, vectorisable) against numpy's, over the range the scan uses."""
    import numpy as np

    from model.scan.cpu import _exp32

    exp_all = _each(_exp32)
    x = np.linspace(-87.0, 10.0, 100_001).astype(np.float32)
    got = exp_all(x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    assert np.max(np.abs(got / want - 1)) < 5e-7  # a few float32 ulps


def test_numba_exp2_accuracy():
    """The scan's 2^y (exp(dt A) as 2^(dt A log2 e)) against numpy's, over the range the scan uses."""
    import numpy as np

    from model.scan.cpu import _exp2_32

    exp2_all = _each(_exp2_32)
    y = np.concatenate([np.linspace(-126.0, 10.0, 200_001), [-0.5, 0.5, 0.0, -1e-8]]).astype(np.float32)
    got = exp2_all(y).astype(np.float64)
    want = np.exp2(y.astype(np.float64))
    assert np.max(np.abs(got / want - 1)) < 2.5e-7  # two float32 ulps
    assert exp2_all(np.array([0.0], dtype=np.float32))[0] == 1.0  # dt = 0 keeps the state exactly
    tiny = exp2_all(np.array([-200.0, -1e6], dtype=np.float32))
    assert np.all((tiny > 0) & (tiny < 1.2e-38))  # clamped at -126: still ~0, never garbage


def test_numba_exp2_scalef_gives_the_bits_of_the_portable_one():
    """Both 2^y implementations (the kernels take the scalef one on AVX-512) agree bit for bit: every
    97th float32 in [-130, 130] (both signs, so ties and the clamps at -126 and 127 are crossed), the
    half-integers where rounding ties to even, and values far outside."""
    import numpy as np

    from model.scan.cpu import _TARGET_AVX512, _exp2_32, _exp2_32_bits, _exp2_32_scalef

    assert _exp2_32 is (_exp2_32_scalef if _TARGET_AVX512 else _exp2_32_bits)
    top = int(np.float32(130.0).view(np.int32))
    pos = np.arange(0, top, 97, dtype=np.int32).view(np.float32)
    halves = np.arange(-260, 261, dtype=np.float32) / 2
    far = np.array([-1e6, -1e30, 1e6, 1e30, -np.inf, np.inf, -0.0], dtype=np.float32)
    y = np.concatenate([pos, -pos, halves, far])
    got, want = _each(_exp2_32_scalef)(y), _each(_exp2_32_bits)(y)
    assert np.array_equal(got.view(np.int32), want.view(np.int32))


def test_numba_block_forward_is_the_plain_loop_bit_for_bit():
    """The forward's recurrence in explicit 16-lane vectors (``_scan_step16``) against the loop it
    replaced, written with the kernels' scalar 2^y: the same bits for outputs and states, at every
    block width, carrying the state across calls, with steps whose dt a falls below -126 (the clamp);
    a block's padding vectors are not run."""
    import numba
    import numpy as np

    from model.scan.cpu import _block_fwd, _exp2_32

    @numba.njit(fastmath={"contract"})
    def loops(u2, dt2, a, B2, C2, h, y2):
        v = np.empty((3, u2.shape[1]), dtype=np.float32)
        for t in range(u2.shape[0]):
            for j in range(u2.shape[1]):
                v[0, j] = dt2[t, j]
                v[1, j] = dt2[t, j] * u2[t, j]
                v[2, j] = 0.0
            for s in range(a.shape[0]):
                for j in range(u2.shape[1]):
                    hv = _exp2_32(v[0, j] * a[s, j]) * h[s, j] + v[1, j] * B2[t, s]
                    h[s, j] = hv
                    v[2, j] += C2[t, s] * hv
            for j in range(u2.shape[1]):
                y2[t, j] = v[2, j]

    rng = np.random.default_rng(3)
    for w, n in ((16, 1), (32, 10), (48, 16), (64, 3)):
        a = (-rng.random((n, w)) * 12).astype(np.float32)
        h, h_ref = np.repeat(rng.standard_normal((1, n, w)).astype(np.float32), 2, 0)
        for _ in range(2):  # two chunks, the state carried
            u2, B2, C2 = (rng.standard_normal(z).astype(np.float32) for z in ((70, w), (70, n), (70, n)))
            dt2 = (rng.random((70, w)) * 3).astype(np.float32)
            dt2[::7] *= 40  # dt a far below -126
            y, y_ref = np.empty((70, w), np.float32), np.empty((70, w), np.float32)
            _block_fwd(u2, dt2, a, B2, C2, h, y, w)
            loops(u2, dt2, a, B2, C2, h_ref, y_ref)
            assert np.array_equal(y, y_ref) and np.array_equal(h, h_ref), (w, n)
    # a block whose last vectors are padding (m real lanes): the real lanes as before, the vectors
    # past them not run (their y and state left as they were)
    w, n, m = 48, 10, 20
    a = (-rng.random((n, w)) * 12).astype(np.float32)
    u2, B2, C2 = (rng.standard_normal(z).astype(np.float32) for z in ((70, w), (70, n), (70, n)))
    dt2 = (rng.random((70, w)) * 3).astype(np.float32)
    h, h_ref = np.ones((n, w), np.float32), np.ones((n, w), np.float32)
    y, y_ref = np.full((70, w), 7.0, np.float32), np.empty((70, w), np.float32)
    _block_fwd(u2, dt2, a, B2, C2, h, y, m)
    loops(u2, dt2, a, B2, C2, h_ref, y_ref)
    assert np.array_equal(y[:, :32], y_ref[:, :32]) and np.array_equal(h[:, :32], h_ref[:, :32])
    assert np.all(y[:, 32:] == 7.0) and np.all(h[:, 32:] == 1.0)


def test_numba_block_backward_is_the_plain_loop_bit_for_bit():
    """The backward's reverse recurrence in explicit 16-lane vectors (``_bwd_step16``) and its lane
    sums for dB and dC sixteen rows at a time (``_lane_sums16``) against the loops they replaced (the
    kernels' scalar 2^y, ``_dot16`` per state): every gradient the same bits, with and without dA,
    for 1 to 20 states (past 16: two slabs of lane sums), with steps whose dt A falls below the clamp;
    dB and dC also added into what their arrays hold (a group's blocks in turn)."""
    import numba
    import numpy as np

    from model.scan.cpu import _LOG2E, _block_bwd, _dot16, _exp2_32

    @numba.njit(fastmath={"contract"})
    def loops(u2, dt2, A2, B2, C2, dy2, du2, ddt2, dA2, dB2, dC2, need_dA):
        nl, nn_ = u2.shape[0], A2.shape[0]
        hs = np.zeros((nl + 1, nn_, 16), dtype=np.float32)
        st = np.zeros((nn_, 5, 16), dtype=np.float32)
        v = np.zeros((6, 16), dtype=np.float32)
        dA = np.zeros((nn_, 16), dtype=np.float64)
        for s in range(nn_):
            for j in range(16):
                st[s, 0, j] = A2[s, j]
                st[s, 4, j] = A2[s, j] * _LOG2E
        for t in range(nl):
            for s in range(nn_):
                for j in range(16):
                    hs[t + 1, s, j] = (_exp2_32(dt2[t, j] * st[s, 4, j]) * hs[t, s, j]
                                       + dt2[t, j] * u2[t, j] * B2[t, s])
        for t in range(nl - 1, -1, -1):
            for j in range(16):
                v[0, j], v[1, j], v[2, j], v[3, j] = dt2[t, j], u2[t, j], dt2[t, j] * u2[t, j], dy2[t, j]
                v[4, j] = 0.0
                v[5, j] = 0.0
            for s in range(nn_):
                bs, cs = B2[t, s], C2[t, s]
                for j in range(16):
                    a = _exp2_32(v[0, j] * st[s, 4, j])
                    g = v[3, j] * cs + st[s, 1, j]
                    ga = g * hs[t, s, j] * a
                    v[4, j] += ga * st[s, 0, j] + g * bs * v[1, j]
                    v[5, j] += g * v[0, j] * bs
                    st[s, 1, j] = g * a
                    st[s, 2, j] = g
                    if need_dA:
                        st[s, 3, j] += ga * v[0, j]
            for s in range(nn_):
                dB2[t, s] = _dot16(st[s, 2], v[2])
                dC2[t, s] = _dot16(v[3], hs[t + 1, s])
            for j in range(16):
                ddt2[t, j], du2[t, j] = v[4, j], v[5, j]
            if t % 64 == 0:
                for s in range(nn_):
                    for j in range(16):
                        dA[s, j] += st[s, 3, j]
                        st[s, 3, j] = 0.0
        for s in range(nn_):
            for j in range(16):
                dA2[s, j] = dA[s, j]

    rng = np.random.default_rng(4)
    for n, need_dA in ((1, True), (8, False), (10, True), (16, True), (20, False)):
        u2, dy2 = (rng.standard_normal((150, 16)).astype(np.float32) for _ in range(2))
        dt2 = (rng.random((150, 16)) * 2).astype(np.float32)
        dt2[::9] *= 80  # dt A far below -126
        A2 = (-rng.random((n, 16)) * 8).astype(np.float32)
        B2, C2 = (rng.standard_normal((150, n)).astype(np.float32) for _ in range(2))
        sizes = ((150, 16), (150, 16), (n, 16), (150, n), (150, n))  # du, ddt, dA, dB, dC
        got, want = ([np.full(z, 7.0, np.float32) for z in sizes] for _ in range(2))
        _block_bwd(u2, dt2, A2, B2, C2, dy2, *got, need_dA, False)
        loops(u2, dt2, A2, B2, C2, dy2, *want, need_dA)
        for name, x, y in zip(("du", "ddt", "dA", "dB", "dC"), got, want, strict=True):
            assert np.array_equal(x, y), (n, need_dA, name)
        # a group's blocks in turn add their dB and dC into the same arrays: the old values plus
        # the block's, one float32 addition each
        summed = [np.full((150, n), 3.0, np.float32) for _ in range(2)]
        _block_bwd(u2, dt2, A2, B2, C2, dy2, *got[:3], *summed, need_dA, True)
        assert np.array_equal(summed[0], np.float32(3.0) + want[3]), n
        assert np.array_equal(summed[1], np.float32(3.0) + want[4]), n


def test_numba_softplus_matches_torch():
    """The kernel's own softplus (vectorisable series) against torch's, around its threshold too."""
    import numpy as np

    from model.scan.cpu import _softplus32

    softplus_all = _each(_softplus32)
    x = np.concatenate([np.linspace(-80.0, 40.0, 120_001), [19.999, 20.0, 20.001, 0.0]]).astype(np.float32)
    got = softplus_all(x).astype(np.float64)
    want = torch.nn.functional.softplus(torch.from_numpy(x).double()).numpy()
    assert np.max(np.abs(got / want - 1)) < 1e-6  # a few float32 ulps
    assert np.array_equal(got[x > 20], x[x > 20])  # torch returns x itself above the threshold
    tiny = softplus_all(np.array([-90.0, -120.0], dtype=np.float32))
    assert np.all((tiny >= 0) & (tiny < 1e-37))  # exp clamped at -87: still ~0


def test_numba_very_large_steps_match_reference():
    """dt * A far below -87 (exp underflows): clamped exp still equals the reference."""
    from model.scan.cpu import selective_scan_numba

    u, delta, A, B, C, D, z, bias = make_inputs(2, 4, 6, 50, 1, True, False, False, softplus=False)
    delta = delta * 400  # dt up to 200, dt * A down to -400
    u = u / 400  # keeps dt * u, and so the outputs, at the usual scale
    y = selective_scan_numba(u, delta, A, B, C, D, None, None, False)
    y_ref = selective_scan_ref(u, delta, A, B, C, D, None, None, False)
    assert torch.isfinite(y).all()
    assert (y - y_ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("w", [16, 32, 48, 64])
@pytest.mark.parametrize("b, d, l, g", [(1, 40, 70, 1), (2, 272, 33, 2), (1, 12, 5, 4), (3, 16, 64, 1)])
def test_numba_block_layout_round_trip(b, d, l, g, w):
    """The numba scan's (b, g, blocks, l, w) layout: zero padding, and back to (b, d, l) exactly."""
    from model.scan.cpu import _blocks, _unblocks

    x = torch.randn(b, d, l)
    xb = _blocks(x, g, w)
    per = d // g
    assert xb.shape == (b, g, -(-per // w), l, w)
    flat = xb.permute(0, 1, 2, 4, 3).reshape(b, g, -1, l)  # (b, g, k, l, w) -> (b, g, k * w, l)
    assert torch.equal(flat[:, :, :per], x.view(b, g, per, l))
    assert not flat[:, :, per:].any()
    assert torch.equal(_unblocks(xb, d), x)


# (b, d, n, l, g): a chunk and a part (l = 1100 > 2 chunks of 512), channels that fill no width
# evenly (72 a group, as MambaIR-light; 40), a sequence shorter than one chunk.
WIDE = [(1, 288, 10, 1100, 4), (2, 40, 5, 70, 1), (1, 48, 8, 600, 1)]


@pytest.mark.parametrize("case", WIDE)
def test_numba_forward_is_the_same_at_every_block_width(case, monkeypatch):
    """The forward's blocks of 16-64 lanes, scanned chunk by chunk: equal to the reference, and the
    same bits at every width (the lanes are independent)."""
    import model.scan.cpu as cpu

    b, d, n, l, g = case
    u, delta, A, B, C, D, _, bias = make_inputs(b, d, n, l, g, True, False, True)
    want = selective_scan_ref(u, delta, A, B, C, D, None, bias, True)
    got = {}
    for w in (16, 32, 48, 64):
        monkeypatch.setattr(cpu, "_block_width", lambda *a, w=w: w)
        got[w] = cpu.selective_scan_numba(u, delta, A, B, C, D, None, bias, True)
        assert rel_err(got[w], want) <= 1e-4, (w, rel_err(got[w], want))
        assert torch.equal(got[w], got[16]), w


def test_numba_block_width_avoids_padding_and_idle_cores():
    """The forward's width: the widest that wastes neither lanes nor a core's turn."""
    from model.scan.cpu import _block_width

    assert _block_width(1, 1, 64, 1) == 64  # one full block
    assert _block_width(1, 1, 8, 2) == 16  # 8 channels: the narrowest block pads least
    assert _block_width(1, 1, 64, 2) == 32  # two blocks keep both cores busy
    assert _block_width(1, 4, 72, 2) == 48  # MambaIR-light: 2 x 48 a group, not 5 x 16 or 2 x 64
    assert _block_width(4, 1, 72, 2) == 48  # and so for LAM's four images (tokens scan: g = 1)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numba_permute_last_matches_index_select(dtype, channels_last):
    """The SGN sort's numba gather against its twin, index_select: the same values and gradients,
    from a contiguous (1, d, l) input and from a channels-last map's (1, d, l) view (the convolution
    output it sorts in MambaIRv2, read as token rows by another kernel)."""
    from model.scan.cpu import permute_last_numba

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 7, 300, generator=gen, dtype=dtype)
    if channels_last:  # 300 = 15 x 20 pixels; 300 is not a multiple of the kernel's 64-wide tiles
        x = x.view(1, 7, 15, 20).contiguous(memory_format=torch.channels_last).flatten(2)
        assert x.stride()[1:] == (1, 7)  # a view: the kernel must read it as it lies
    perm = torch.randperm(300, generator=gen)
    grad = torch.randn(1, 7, 300, generator=gen, dtype=dtype)
    outs = []
    for fn in (permute_last_numba, lambda t, i: t.index_select(-1, i)):
        xx = x.clone().requires_grad_()
        y = fn(xx, perm)
        (gx,) = torch.autograd.grad(y, xx, grad)
        outs.append((y.detach(), gx))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], x)  # the permutation moved something


_WITHOUT_NUMBA = """
import builtins, torch
real = builtins.__import__
def no_numba(name, *args, **kw):
    if name.split(".")[0] == "numba":
        raise ImportError("numba hidden by the test")
    return real(name, *args, **kw)
builtins.__import__ = no_numba
from model.archs.mambairv2 import _numba_permute, gather_tokens
x, perm = torch.randn(1, 5, 40), torch.randperm(40)
assert _numba_permute() is None
assert torch.equal(gather_tokens(x, perm[None], dim=2), x.index_select(2, perm))
print("index_select")
"""


def test_sgn_sort_without_numba_falls_back_to_index_select():
    """Where numba does not load, MambaIRv2's sort still runs (index_select), as the scan falls back."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", _WITHOUT_NUMBA], cwd=root, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "index_select"
    assert "numba gather unavailable" in done.stderr


def _saved_bytes(fn, args, **kw) -> int:
    """Bytes autograd keeps for the backward of fn(*args)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args, **kw)
    return total


@pytest.mark.parametrize("case", [GRID[3], GRID[4]])
def test_torch_scan_checkpointed_matches_reference_and_keeps_less(case, monkeypatch):
    """Above CHECKPOINT_ELEMENTS the torch scan recomputes its intermediates in the backward:
    same values and gradients, a fraction of the saved memory."""
    import model.scan.gpu as gpu

    b, d, n, l, g, use_D, use_z, use_bias, softplus = case
    args = [a.requires_grad_() if a is not None else None
            for a in make_inputs(b, d, n, l, g, use_D, use_z, use_bias, softplus)]
    kept = _saved_bytes(selective_scan_torch, args, delta_softplus=softplus)
    monkeypatch.setattr(gpu, "CHECKPOINT_ELEMENTS", 0)
    check_against_ref(selective_scan_torch, case)
    kept_ckpt = _saved_bytes(selective_scan_torch, args, delta_softplus=softplus)
    assert kept_ckpt * 3 < kept, (kept_ckpt, kept)


# (b, p, n, l, g, gu, reverse): MambaIR's SS2D (4 groups, 2 layouts, each read both ways) across
# chunk boundaries with 72 channels a group; every group its own u; one layout read backwards only.
DIRECTED = [
    (1, 72, 10, 1100, 4, 2, (False, True, False, True)),
    (2, 40, 5, 70, 4, 4, (True, False, True, False)),
    (1, 16, 3, 600, 2, 1, (True, True)),
    (1, 12, 4, 33, 1, 1, (True,)),
]


def _directed_inputs(b, p, n, l, g, gu, dtype=torch.float32):
    u, delta, A, B, C, D, _, bias = make_inputs(b, p * g, n, l, g, True, False, True, dtype=dtype)
    return [u[:, :gu * p].contiguous(), delta, A, B, C, D, bias]


def _lowrank(b, p, l, g, q=4, dtype=torch.float32):
    """Low-rank step inputs (b, g, q, l) and a dt weight (g*p, q) at the models' scales."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(b, g, q, l, generator=gen, dtype=torch.float64)
    w = torch.randn(g * p, q, generator=gen, dtype=torch.float64) * 0.3
    return x.to(dtype), w.to(dtype)


@pytest.mark.parametrize("case", DIRECTED[:2])
def test_directed_ref_scans_each_group_in_its_direction(case):
    """The spec: group gi is selective_scan_ref of u's group gi // (g // gu), read from the end where
    reversed; its output at index i then depends on the inputs at i and after only."""
    from model.scan.ref import selective_scan_directed_ref

    b, p, n, l, g, gu, reverse = case
    u, delta, A, B, C, D, bias = _directed_inputs(b, p, n, l, g, gu, torch.float64)
    y = selective_scan_directed_ref(u, delta, A, B, C, D, bias, True, reverse)
    for gi, rev in enumerate(reverse):
        ch = slice(gi * p, (gi + 1) * p)
        uc = u[:, gi // (g // gu) * p:][:, :p]
        args = [uc, delta[:, ch], A[ch], B[:, gi], C[:, gi]]
        if rev:
            args = [t.flip(-1) if t.dim() == 3 else t for t in args]
        want = selective_scan_ref(*args, D[ch], None, bias[ch], True)
        torch.testing.assert_close(y[:, ch], want.flip(-1) if rev else want, rtol=1e-5, atol=1e-6)
    i = l // 2  # a change at index i reaches the outputs from i on (forward) or up to i (reversed)
    delta2 = delta.clone()
    delta2[..., i] += 1.0
    moved = (selective_scan_directed_ref(u, delta2, A, B, C, D, bias, True, reverse) - y).abs()
    moved = moved.view(b, g, p, l).amax(dim=(0, 2)) > 0  # (g, l)
    for gi, rev in enumerate(reverse):
        assert moved[gi, :i].any() == rev and moved[gi, i + 1:].any() != rev and moved[gi, i]


def _out_index(b, g, l):
    """(b, g, l) a random permutation of the l output rows for each image and group."""
    gen = torch.Generator().manual_seed(11)
    return torch.stack([torch.stack([torch.randperm(l, generator=gen) for _ in range(g)]) for _ in range(b)])


@pytest.mark.parametrize(("lowrank", "summed"), [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("case", DIRECTED)
def test_numba_directed_matches_reference(case, lowrank, summed):
    """The numba kernels reading shared and reversed rows in place, forming a low-rank delta and
    adding the groups' outputs into given rows in the kernel: values and every gradient (of the
    low-rank inputs and the dt weight too)."""
    from model.scan.cpu import selective_scan_directed_numba
    from model.scan.ref import selective_scan_directed_ref

    b, p, n, l, g, gu, reverse = case
    args = _directed_inputs(b, p, n, l, g, gu)
    names = ["u", "delta", "A", "B", "C", "D", "delta_bias"]
    weight, index = None, _out_index(b, g, l) if summed else None
    if lowrank:
        args[1], weight = _lowrank(b, p, l, g)
        args.append(weight)
        names.append("dt_weight")
    leaves = [a.clone().requires_grad_() for a in args]
    leaves_ref = [a.double().requires_grad_() for a in args]
    extra, extra_ref = (leaves[7] if lowrank else None, index), (leaves_ref[7] if lowrank else None, index)
    y = selective_scan_directed_numba(*leaves[:7], True, reverse, *extra)
    y_ref = selective_scan_directed_ref(*leaves_ref[:7], True, reverse, *extra_ref)
    assert y.shape == ((b, l, p) if summed else (b, p * g, l)) and y.dtype == torch.float32
    assert rel_err(y, y_ref) <= 1e-5
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(y, leaves, gy)
    grads_ref = torch.autograd.grad(y_ref, leaves_ref, gy.double())
    for name, gr, gr_ref in zip(names, grads, grads_ref, strict=True):
        assert gr.shape == gr_ref.shape
        assert rel_err(gr, gr_ref) <= 1e-5, (name, rel_err(gr, gr_ref))


def test_directed_dispatch_runs_every_backend(fresh_dispatch):
    """selective_scan_directed: numba in place, any other backend through copies and flips."""
    b, p, n, l, g, gu, reverse = DIRECTED[0][:3] + (70,) + DIRECTED[0][4:]
    args = _directed_inputs(b, p, n, l, g, gu)
    x, weight = _lowrank(b, p, l, g)
    want = scan.selective_scan_directed_ref(*args, True, reverse)
    want_lowrank = scan.selective_scan_directed_ref(args[0], x, *args[2:], True, reverse, weight)
    for name in ("numba", "torch", "ref"):
        scan.set_backend(name)
        got = scan.selective_scan_directed(*args, True, reverse)
        assert scan.last_backend() == name
        assert rel_err(got, want) <= 1e-5, name
        got = scan.selective_scan_directed(args[0], x, *args[2:], True, reverse, weight)
        assert rel_err(got, want_lowrank) <= 1e-5, name
        index = _out_index(b, g, l)
        want_summed = scan.selective_scan_directed_ref(*args, True, reverse, None, index)
        got = scan.selective_scan_directed(*args, True, reverse, None, index)
        assert got.shape == (b, l, p) and rel_err(got, want_summed) <= 1e-5, name


def test_directed_ref_adds_the_groups_into_out_index_rows():
    """The spec's summed output: row out_index[b, gi, i] of (b, l, p) takes group gi's output at index
    i, the groups added in turn; the numba kernel gives the same bits (groups in the same order)."""
    from model.scan.cpu import selective_scan_directed_numba
    from model.scan.ref import selective_scan_directed_ref

    b, p, n, l, g, gu, reverse = DIRECTED[0][:3] + (80,) + DIRECTED[0][4:]
    args = _directed_inputs(b, p, n, l, g, gu)
    index = _out_index(b, g, l)
    rows = selective_scan_directed_ref(*args, True, reverse).view(b, g, p, l)
    want = torch.zeros(b, l, p)
    for bi in range(b):
        for gi in range(g):
            want[bi, index[bi, gi]] += rows[bi, gi].t()
    assert torch.equal(selective_scan_directed_ref(*args, True, reverse, None, index), want)
    rows_numba = selective_scan_directed_numba(*args, True, reverse).view(b, g, p, l)
    want_numba = torch.zeros(b, l, p)
    for gi in range(g):
        want_numba[0, index[0, gi]] += rows_numba[0, gi].t()
    assert torch.equal(selective_scan_directed_numba(*args, True, reverse, None, index), want_numba)


def test_lowrank_delta_is_the_dt_projection():
    """The spec's low-rank delta: each group's dt weight times its q rows, summed over q."""
    from model.scan.ref import lowrank_delta

    x, weight = _lowrank(2, 6, 9, 3, q=5, dtype=torch.float64)  # (2, 3, 5, 9), (18, 5)
    got = lowrank_delta(x, weight)  # (2, 18, 9)
    for c in range(18):
        want = (weight[c][None, :, None] * x[:, c // 6]).sum(1)  # (2, 9)
        torch.testing.assert_close(got[:, c], want)


def test_numba_dot16_is_the_pairwise_tree():
    """The backward's 16-lane dot product (one vector multiply, LLVM's tree reduction): the products
    summed as lanes j + 8, then + 4, + 2, + 1, bit for bit; rows must be contiguous float32."""
    import numba
    import numpy as np

    from model.scan.cpu import _dot16

    @numba.njit
    def dots(a, b, out):
        for i in range(a.shape[0]):
            out[i] = _dot16(a[i], b[i])

    rng = np.random.default_rng(0)
    a = (rng.standard_normal((500, 16)) * 1e3 ** rng.integers(-2, 3, (500, 16))).astype(np.float32)
    b = rng.standard_normal((500, 16)).astype(np.float32)
    out = np.empty(500, np.float32)
    dots(a, b, out)
    p = a * b  # float32 products
    for half in (8, 4, 2, 1):
        p = p[:, :half] + p[:, half:2 * half]
    assert np.array_equal(out, p[:, 0])

    @numba.njit
    def strided(a):
        return _dot16(a[:, 0], a[:, 0])

    with pytest.raises(numba.core.errors.TypingError):
        strided(np.ones((16, 2), np.float32))


def test_numba_row16_copies_products_and_zeros():
    """The backward's per-step row operations (one vector load and store each): the same bits as
    element-wise float32 copies and products, only 16 lanes written; strided rows are refused."""
    import numba
    import numpy as np

    from model.scan.cpu import _copy16, _product16, _zero16

    @numba.njit
    def rows(a, b, out):
        for i in range(a.shape[0]):
            _copy16(out[i, 0], a[i])
            _product16(out[i, 1], a[i], b[i])
            _zero16(out[i, 2])

    rng = np.random.default_rng(1)
    a = (rng.standard_normal((300, 16)) * 1e3 ** rng.integers(-2, 3, (300, 16))).astype(np.float32)
    b = rng.standard_normal((300, 16)).astype(np.float32)
    out = np.full((300, 3, 17), 7.0, np.float32)  # lane 16 must stay untouched
    rows(a, b, out)
    assert np.array_equal(out[:, 0, :16], a)
    assert np.array_equal(out[:, 1, :16], a * b)
    assert not out[:, 2, :16].any() and (out[:, :, 16] == 7.0).all()

    @numba.njit
    def strided(a):
        _copy16(a[0], a[:, 0])

    with pytest.raises(numba.core.errors.TypingError):
        strided(np.ones((16, 16), np.float32))


def test_numba_masked_row16_loads_fmas_and_adds():
    """The token loaders' vector operations: the same bits as the element-wise loops they replace
    (``dst[j] += a[j] * x`` and ``dst[j] += y[j] + u[j] * dv[j]`` contracted to one rounding each, as
    the kernels compile them), masked lanes neither read nor written, and a prefetch changes nothing."""
    import numba
    import numpy as np

    from model.scan.cpu import _add_skip16, _fma16, _load16, _prefetch_tokens

    @numba.njit(fastmath={"contract"})
    def loops(src, off, count, acc, a, x, y, u, dv):
        load = np.zeros(16, np.float32)
        for j in range(min(count, 16)):
            load[j] = src[off + j]
        for j in range(16):
            acc[j] += a[j] * x
        for j in range(min(count, 16)):
            src[off + j] += y[j] + u[j] * dv[j]
        return load

    @numba.njit
    def vectors(src, off, count, acc, a, x, y, u, dv):
        load = np.full(16, 7.0, np.float32)
        _load16(load, src, off, count)
        _fma16(acc, a, x)
        _add_skip16(src, off, y, u, dv, count)
        return load

    rng = np.random.default_rng(2)
    for count in (-3, 0, 1, 5, 15, 16, 40):
        src = rng.standard_normal(60).astype(np.float32)
        src[10 + max(count, 0):] = np.nan  # beyond the count: must be neither read nor written
        acc = rng.standard_normal(16).astype(np.float32)
        a, y, u, dv = (rng.standard_normal(16).astype(np.float32) * 100 for _ in range(4))
        x = np.float32(rng.standard_normal() * 1e3)
        src2, acc2 = src.copy(), acc.copy()
        want = loops(src, 10, count, acc, a, x, y, u, dv)
        got = vectors(src2, 10, count, acc2, a, x, y, u, dv)
        assert np.array_equal(got, want) and np.array_equal(acc2, acc)
        assert np.array_equal(src2, src, equal_nan=True), count
        assert not np.isnan(got).any()  # the masked load read no NaN lane

    rows = rng.standard_normal((50, 40)).astype(np.float32)
    before = rows.copy()
    _prefetch_tokens(rows, rng.permutation(50), 3, 33, 5, 20, True)
    assert np.array_equal(rows, before)


def test_numba_masked_row16_stores_and_step_sums():
    """The backward's row writers and its dD / delta-bias sums: ``_store16`` and ``_store_fma16``
    the same bits as the loops they replace (``dst[off + j] = a[j] + x[j] * y[j]`` contracted),
    lanes past the count not written; ``_step_sums16`` the same float64 sums in step order as the
    per-lane loop."""
    import numba
    import numpy as np

    from model.scan.cpu import _step_sums16, _store16, _store_fma16

    @numba.njit(fastmath={"contract"})
    def loops(dst, dst2, off, count, a, x, y):
        for j in range(min(count, 16)):
            dst[off + j] = a[j] + x[j] * y[j]
            dst2[off + j] = a[j]

    @numba.njit
    def vectors(dst, dst2, off, count, a, x, y):
        _store_fma16(dst, off, a, x, y, count)
        _store16(dst2, off, a, count)

    @numba.njit
    def sums_vector(dy, u, g, s_d, s_b):
        _step_sums16(dy, u, g, s_d, s_b)

    rng = np.random.default_rng(5)
    for count in (-1, 0, 3, 16, 30):
        a, x, y = (rng.standard_normal(16).astype(np.float32) * 100 for _ in range(3))
        dst = np.full(40, np.nan, np.float32)
        want, want2, got, got2 = dst.copy(), dst.copy(), dst.copy(), dst.copy()
        loops(want, want2, 7, count, a, x, y)
        vectors(got, got2, 7, count, a, x, y)
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(got2, want2, equal_nan=True)
        assert np.isnan(got[7 + min(max(count, 0), 16):]).all()  # past the count: untouched

    @numba.njit
    def sums_loop(dy, u, g, s_d, s_b):
        for t in range(dy.shape[0]):
            for j in range(16):
                s_d[j] += dy[t, j] * u[t, j]
                s_b[j] += g[t, j]

    dy, u, g = (rng.standard_normal((333, 16)).astype(np.float32) * 10 for _ in range(3))
    start = rng.standard_normal((2, 16))
    want_d, want_b, got_d, got_b = start[0].copy(), start[1].copy(), start[0].copy(), start[1].copy()
    sums_loop(dy, u, g, want_d, want_b)
    sums_vector(dy, u, g, got_d, got_b)
    assert np.array_equal(got_d, want_d) and np.array_equal(got_b, want_b)
    assert not np.array_equal(got_d, (dy.astype(np.float64) * u).sum(0) + start[0])  # float32 products


def test_numba_backward_for_frozen_parameters_gives_the_same_input_gradients():
    """LAM's backward (A, D, bias and dt weight frozen) skips dA in the kernel: the gradients of the
    inputs are the same bits as when every gradient is asked for."""
    from model.scan.cpu import selective_scan_directed_numba

    b, p, n, l, g, gu, reverse = DIRECTED[0][:3] + (300,) + DIRECTED[0][4:]
    args = _directed_inputs(b, p, n, l, g, gu)
    args[1], weight = _lowrank(b, p, l, g)
    gy = torch.randn(b, p * g, l, generator=torch.Generator().manual_seed(2))
    grads = {}
    for frozen in (False, True):
        leaves = [a.clone().requires_grad_(not frozen or i in (0, 1, 3, 4)) for i, a in enumerate(args)]
        w = weight.clone().requires_grad_(not frozen)
        y = selective_scan_directed_numba(*leaves, True, reverse, w)
        grads[frozen] = torch.autograd.grad(y, [leaves[i] for i in (0, 1, 3, 4)], gy)
    for got, want in zip(grads[True], grads[False], strict=True):
        assert torch.equal(got, want)


# (b, p, n, q, l, g, gu, reverse): MambaIR's SS2D over tokens (4 groups, all reading the same
# channels, two orders each both ways) across chunk boundaries; groups with their own channels.
TOKENS = [
    (1, 72, 10, 4, 1100, 4, 1, (False, True, False, True)),
    (2, 20, 5, 3, 70, 4, 2, (True, False, True, False)),
    (1, 16, 3, 2, 600, 2, 2, (True, False)),
]


def _token_inputs(b, p, n, q, l, g, gu, dtype=torch.float32):
    """Tokens (b, l, gu p), a projection (b, l, g (q + 2n)), parameters, and a random order per group."""
    gen = torch.Generator().manual_seed(5)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype)

    d = g * p
    A = -torch.rand(d, n, generator=gen, dtype=torch.float64).mul(2).add(0.05).to(dtype)
    index = torch.stack([torch.stack([torch.randperm(l, generator=gen) for _ in range(g)]) for _ in range(b)])
    u, proj = r(b, l, gu * p), r(b, l, g * (q + 2 * n), scale=0.5)
    args = [u, proj, A, r(d), r(d, scale=0.3), r(d, q, scale=0.3)]
    return args, index


def test_tokens_ref_is_each_group_in_its_token_order():
    """The spec: group gi scans the tokens index[gi] (from the end where reversed) with its columns of
    the projection, and its outputs land back in those tokens' rows, the groups added in turn."""
    from model.scan.ref import lowrank_delta, selective_scan_tokens_ref

    b, p, n, q, l, g, gu, reverse = TOKENS[1]
    (u, proj, A, D, bias, W), index = _token_inputs(b, p, n, q, l, g, gu, torch.float64)
    y = selective_scan_tokens_ref(u, proj, A, D, bias, W, reverse, index)
    want = torch.zeros(b, l, p, dtype=torch.float64)
    for bi in range(b):
        for gi, rev in enumerate(reverse):
            order = index[bi, gi].flip(0) if rev else index[bi, gi]  # tokens in step order
            ch = slice(gi * p, (gi + 1) * p)
            ug = u[bi, order, gi // (g // gu) * p:][:, :p].t()[None]  # (1, p, l)
            pg = proj[bi, order, gi * (q + 2 * n):(gi + 1) * (q + 2 * n)].t()[None]  # (1, q + 2n, l)
            delta = lowrank_delta(pg[:, None, :q], W[ch])  # (1, p, l)
            B, C = pg[:, q:q + n], pg[:, q + n:]  # (1, n, l) each
            ys = selective_scan_ref(ug, delta, A[ch], B, C, D[ch], None, bias[ch], True)
            want[bi, order] += ys[0].t()
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", TOKENS)
def test_numba_tokens_matches_reference(case):
    """The token kernels (rows read and written through each group's order): values and every
    gradient; with the parameters frozen (LAM) the inputs' gradients are the same bits."""
    from model.scan.cpu_tokens import selective_scan_tokens_numba
    from model.scan.ref import selective_scan_tokens_ref

    b, p, n, q, l, g, gu, reverse = case
    args, index = _token_inputs(b, p, n, q, l, g, gu)
    leaves = [a.clone().requires_grad_() for a in args]
    leaves_ref = [a.double().requires_grad_() for a in args]
    y = selective_scan_tokens_numba(*leaves, reverse, index)
    y_ref = selective_scan_tokens_ref(*leaves_ref, reverse, index)
    assert y.shape == (b, l, p) and y.dtype == torch.float32
    assert rel_err(y, y_ref) <= 1e-5
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(y, leaves, gy)
    grads_ref = torch.autograd.grad(y_ref, leaves_ref, gy.double())
    names = ["u", "proj", "A", "D", "delta_bias", "dt_weight"]
    for name, gr, gr_ref in zip(names, grads, grads_ref, strict=True):
        assert gr.shape == gr_ref.shape
        assert rel_err(gr, gr_ref) <= 1e-5, (name, rel_err(gr, gr_ref))
    frozen = [a.clone().requires_grad_(i < 2) for i, a in enumerate(args)]
    y2 = selective_scan_tokens_numba(*frozen, reverse, index)
    assert torch.equal(y2, y.detach())
    for got, want in zip(torch.autograd.grad(y2, frozen[:2], gy), grads[:2], strict=True):
        assert torch.equal(got, want)


def test_tokens_dispatch_runs_every_backend(fresh_dispatch):
    """selective_scan_tokens: numba in place, any other backend through gathered rows."""
    b, p, n, q, l, g, gu, reverse = TOKENS[0][:4] + (90,) + TOKENS[0][5:]
    args, index = _token_inputs(b, p, n, q, l, g, gu)
    want = scan.selective_scan_tokens_ref(*args, reverse, index)
    for name in ("numba", "torch", "ref"):
        scan.set_backend(name)
        got = scan.selective_scan_tokens(*args, reverse, index)
        assert scan.last_backend() == name
        assert got.shape == (b, l, p) and rel_err(got, want) <= 1e-5, name
