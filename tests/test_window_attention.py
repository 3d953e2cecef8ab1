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
