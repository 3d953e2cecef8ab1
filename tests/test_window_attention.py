"""Fused window attention (SDPA, sparse shifted-window mask) against the plain formula.

Letters as in model/archs/common.py: b batch, nw windows per image, n tokens per window (s*s),
nh heads, c channels.
"""

from __future__ import annotations

import pytest
import torch

from model.archs.common import (
    WindowAttention,
    permute_tokens,
    relative_position_index,
    shifted_window_mask,
    shifted_window_mask_sparse,
    window_attention_ref,
    window_order,
)


def plain(attn: WindowAttention, qkv: torch.Tensor, rpi: torch.Tensor, mask: torch.Tensor | None,
          b: int) -> torch.Tensor:
    """The module's maths in plain ops: full (nw, n, n) mask repeated per image, explicit softmax."""
    bw, n, c3 = qkv.shape
    c, nh = c3 // 3, attn.num_heads
    q, k, v = qkv.reshape(bw, n, 3, nh, c // nh).permute(2, 0, 3, 1, 4)  # (b*nw, nh, n, c/nh) each
    bias = attn.relative_position_bias_table[rpi.reshape(-1)].view(n, n, nh).permute(2, 0, 1)  # (nh, n, n)
    add = bias[None] if mask is None else bias[None] + mask.repeat(b, 1, 1)[:, None]  # (b*nw, nh, n, n)
    x = window_attention_ref(q, k, v, add, attn.scale)  # (b*nw, nh, n, c/nh)
    return attn.proj(x.transpose(1, 2).reshape(bw, n, c))


@pytest.mark.parametrize("b, h, w, s, nh, mode", [
    (1, 16, 24, 8, 2, "sparse"), (2, 24, 16, 8, 3, "sparse"), (1, 8, 8, 8, 2, "sparse"),
    (2, 16, 16, 4, 2, "full"), (1, 16, 16, 4, 2, "none"), (3, 12, 8, 4, 1, "sparse")])
def test_window_attention_matches_plain_formula(b, h, w, s, nh, mode):
    torch.manual_seed(0)
    c = 6 * nh
    attn = WindowAttention(c, s, nh)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_(0, 1)  # large enough to matter
    rpi = relative_position_index(s)
    nw, n = (h // s) * (w // s), s * s
    qkv = torch.randn(b * nw, n, 3 * c, requires_grad=True)
    full = shifted_window_mask(h, w, s) if mode != "none" else None
    if mode == "sparse":
        windows, mask = shifted_window_mask_sparse(h, w, s, b)
        got = attn(qkv, rpi, mask, windows)
    else:
        got = attn(qkv, rpi, full)
    want = plain(attn, qkv, rpi, full, b)
    assert (got - want).abs().max() < 1e-5
    gy = torch.randn_like(got)
    params = [qkv, attn.relative_position_bias_table, attn.proj.weight]
    g_got = torch.autograd.grad(got, params, gy)
    g_want = torch.autograd.grad(want, params, gy)
    for a, e in zip(g_got, g_want, strict=True):
        assert (a - e).norm() <= 1e-5 * e.norm()


def test_sparse_mask_covers_exactly_the_masked_windows():
    """The sparse mask's windows are those where the full mask is non-zero, with the same values."""
    for h, w, s in [(64, 64, 16), (32, 48, 16), (16, 16, 16), (24, 40, 8)]:
        full = shifted_window_mask(h, w, s)  # (nw, n, n)
        windows, mask = shifted_window_mask_sparse(h, w, s, batch=2)
        nw = full.shape[0]
        touched = full.flatten(1).ne(0).any(1).nonzero().squeeze(1)
        assert torch.equal(windows, torch.cat([touched, touched + nw]))
        assert torch.equal(mask, full[touched].repeat(2, 1, 1))
        assert len(touched) == h // s + w // s - 1  # last row and column of windows


def test_kept_bias_and_mask_sum_follow_the_weights_and_never_reach_training():
    """A frozen network keeps its bias / masked windows' sum between forwards; changing the table,
    the input shape or the dtype recomputes them, and a trainable table never uses them."""
    from model.archs import build
    from model.config import PRESETS

    torch.manual_seed(0)
    cfg = PRESETS["mambairv2_lightSR_x2"]
    net = build(cfg).eval().requires_grad_(False)
    fresh = build(cfg).eval().requires_grad_(False)
    attn = net.layers[0].residual_group.layers[1].win_mhsa  # a shifted layer
    calls = []
    make = attn._bias
    attn._bias = lambda *a: calls.append(1) or make(*a)
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        y1 = net(x)
        y2 = net(x)
        assert len(calls) == 1 and torch.equal(y1, y2)  # kept: computed once for two forwards
        net(torch.rand(1, 3, 24, 24))
        assert len(calls) == 1  # the bias does not depend on the input shape
        fresh.load_state_dict(net.state_dict())
        attn.relative_position_bias_table.add_(0.5)  # an in-place change of the weights
        fresh.layers[0].residual_group.layers[1].win_mhsa.relative_position_bias_table.add_(0.5)
        y3 = net(x)
        assert len(calls) == 2 and torch.equal(y3, fresh(x))  # recomputed, as a fresh network
        assert not torch.equal(y3, y1)
    # Frozen weights under autograd (LAM's input gradient): kept values, the same gradient as fresh.
    xg, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.autograd.grad(net(xg).sum(), xg)[0]
    torch.testing.assert_close(g, torch.autograd.grad(fresh(xf).sum(), xf)[0], rtol=0, atol=0)
    # A trainable table: recomputed every forward, so its gradient flows.
    net.requires_grad_(True)
    n0 = len(calls)
    net(x).sum().backward()
    net(x)
    assert len(calls) == n0 + 2 and attn.relative_position_bias_table.grad.abs().sum() > 0


@pytest.mark.parametrize(("b", "h", "w", "s", "shift"),
                         [(1, 32, 48, 16, 8), (2, 16, 16, 8, 0), (1, 24, 16, 8, 4)])
def test_window_order_is_the_roll_and_partition(b, h, w, s, shift):
    """One gather by window_order = the official roll by -shift then window partition; the inverse
    gather puts the windows back and rolls them back; gradients as index_select's."""
    c = 5
    x = torch.randn(b, h, w, c, dtype=torch.float64)
    rolled = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    # The official window_partition, written out: (b, h/s, s, w/s, s, c) -> (b*nw, s*s, c).
    want = rolled.view(b, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
    order, inverse = window_order(h, w, s, shift)
    got = permute_tokens(x.view(b, h * w, c), order, inverse).view(-1, s * s, c)
    assert torch.equal(got, want)
    back = permute_tokens(got.view(b, h * w, c), inverse, order)
    assert torch.equal(back, x.view(b, h * w, c))
    xl = x.view(b, h * w, c).clone().requires_grad_(True)
    gy = torch.randn(b, h * w, c, dtype=torch.float64)
    (g_ours,) = torch.autograd.grad(permute_tokens(xl, order, inverse), xl, gy)
    (g_ref,) = torch.autograd.grad(xl.index_select(1, order), xl, gy)
    assert torch.equal(g_ours, g_ref)


# ---------------------------------------------------------------------------
# The compiled CPU forward (model/attention/cpu.py) against its plain twin and inside the module
# ---------------------------------------------------------------------------

def _rows_inputs(w: int, n: int, nh: int, m: int, seed: int = 0, spread: float = 1.0):
    """Random qkv rows (w, n, 3c) with 12-wide heads, a transposed bias, m masks of 0 / -100 and
    each window's slot (every third window unmasked)."""
    g = torch.Generator().manual_seed(seed)
    c = 12 * nh
    qkv = torch.randn(w, n, 3 * c, generator=g) * spread
    bias_t = torch.randn(nh, n, n, generator=g)
    mask_t = torch.where(torch.rand(m, n, n, generator=g) < 0.3, -100.0, 0.0)
    slot = torch.tensor([-1 if i % 3 == 0 or m == 0 else i % m for i in range(w)])
    return qkv, bias_t, mask_t, slot


@pytest.mark.parametrize(("w", "n", "nh", "m", "spread"),
                         [(7, 256, 4, 3, 1.0), (5, 64, 2, 0, 1.0), (4, 256, 1, 2, 6.0), (3, 16, 3, 1, 1.0)])
def test_numba_window_attention_rows_match_the_plain_twin(w, n, nh, m, spread):
    """The kernels = ``window_attention_rows_ref`` for masked and unmasked windows, 16 to 256 tokens,
    and peaked scores (spread 6: most exp(S - max) far below 2^-64, which the kernels set to 0):
    the forward, and the backward's gradient w.r.t. qkv against the twin's in float64."""
    cpu = pytest.importorskip("model.attention.cpu")
    from model.attention.ref import window_attention_rows_ref

    qkv, bias_t, mask_t, slot = _rows_inputs(w, n, nh, m, spread=spread)
    with torch.no_grad():
        got = cpu.window_attention_rows_numba(qkv, bias_t, mask_t, slot, nh, 12 ** -0.5)
    want = window_attention_rows_ref(qkv, bias_t, mask_t, slot, nh, 12 ** -0.5)
    assert got.shape == want.shape == (w, n, 12 * nh)
    assert (got - want).abs().max() <= 1e-5 * max(1.0, want.abs().max().item())
    x, x64 = qkv.clone().requires_grad_(True), qkv.double().requires_grad_(True)
    y = cpu.window_attention_rows_numba(x, bias_t, mask_t, slot, nh, 12 ** -0.5)
    assert torch.equal(y.detach(), got)  # the forward keeping its log-sum-exp: the same output
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    (g,) = torch.autograd.grad(y, x, gy)
    y64 = window_attention_rows_ref(x64, bias_t.double(), mask_t.double(), slot, nh, 12 ** -0.5)
    (g64,) = torch.autograd.grad(y64, x64, gy.double())
    assert g.shape == qkv.shape and g64.abs().sum() > 0
    assert (g.double() - g64).norm() <= 1e-5 * g64.norm()
    assert (g.double() - g64).abs().max() <= 1e-4 * g64.abs().max()  # q, k and v parts, every head


def test_numba_window_attention_refuses_what_it_does_not_compute():
    """Other head widths, windows that are not whole 16-query blocks, other dtypes, a slot past the
    masks and a bias wanting a gradient are refused with a reason (the module then takes SDPA)."""
    cpu = pytest.importorskip("model.attention.cpu")
    qkv, bias_t, mask_t, slot = _rows_inputs(3, 64, 2, 1)
    assert cpu.supported(qkv, 2) and cpu.supported(qkv.clone().requires_grad_(True), 2)
    for bad in (torch.randn(3, 64, 3 * 16), torch.randn(3, 60, 3 * 24), qkv.double()):
        assert not cpu.supported(bad, 2)
        with pytest.raises(ValueError, match="window_attention_rows_numba takes"):
            cpu.window_attention_rows_numba(bad, bias_t, mask_t, slot, 2, 0.3)
    with pytest.raises(ValueError, match="slot names mask 5"):
        cpu.window_attention_rows_numba(qkv, bias_t, mask_t, torch.tensor([-1, 5, 0]), 2, 0.3)
    with pytest.raises(ValueError, match="bias_t must be"):
        cpu.window_attention_rows_numba(qkv, bias_t[:1], mask_t, slot, 2, 0.3)
    with pytest.raises(ValueError, match="no gradient to the bias"):
        cpu.window_attention_rows_numba(qkv, bias_t.clone().requires_grad_(True), mask_t, slot, 2, 0.3)
    with torch.no_grad():  # no gradient wanted: a trainable bias is only read
        cpu.window_attention_rows_numba(qkv, bias_t.clone().requires_grad_(True), mask_t, slot, 2, 0.3)


@pytest.mark.parametrize(("b", "h", "w", "mode"), [(1, 32, 48, "sparse"), (2, 32, 32, "sparse"),
                                                   (2, 32, 16, "full"), (1, 32, 32, "none")])
def test_window_attention_module_takes_the_kernel_for_a_restore(b, h, w, mode):
    """MambaIRv2-light's heads (48 channels, 4 heads, 16x16 windows): with a frozen table (a restore,
    or LAM's input gradient) the module runs the compiled kernels, with the same output and input
    gradient as SDPA's path; with a trainable table, or kernel="sdpa", it runs SDPA."""
    pytest.importorskip("model.attention.cpu")
    torch.manual_seed(0)
    s, nh, c = 16, 4, 48
    attn = WindowAttention(c, s, nh)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_(0, 1)
    attn.requires_grad_(False)
    rpi = relative_position_index(s)
    nw, n = (h // s) * (w // s), s * s
    qkv = torch.randn(b * nw, n, 3 * c)
    if mode == "sparse":
        args = (rpi, *reversed(shifted_window_mask_sparse(h, w, s, b)))
    else:
        args = (rpi, shifted_window_mask(h, w, s) if mode == "full" else None)
    with torch.no_grad():
        fast = attn(qkv, *args)
        assert attn.last_kernel == "numba"
        attn.kernel = "sdpa"
        slow = attn(qkv, *args)
        assert attn.last_kernel == "sdpa"
    assert (fast - slow).abs().max() < 1e-5
    gy = torch.randn(fast.shape)
    x = qkv.clone().requires_grad_(True)
    (g_slow,) = torch.autograd.grad(attn(x, *args), x, gy)  # still "sdpa"
    attn.kernel = "auto"
    (g_fast,) = torch.autograd.grad(attn(x, *args), x, gy)
    assert attn.last_kernel == "numba" and g_slow.abs().sum() > 0
    assert (g_fast - g_slow).norm() <= 1e-5 * g_slow.norm()
    attn.requires_grad_(True)
    attn(qkv, *args)
    assert attn.last_kernel == "sdpa"  # the table's gradient needs SDPA's backward
    attn.kernel = "fast"
    with pytest.raises(ValueError, match="unknown kernel 'fast'"):
        attn(qkv, *args)
