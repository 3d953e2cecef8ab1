"""MAC counting (model.evaluation.profile) against direct counts from module shapes and a hand-counted scan.

Letters: B batch, L tokens, D scan channels, N d_state.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_models import V1_CFG, V2_CFG

import model.scan as scan
from model.archs import build
from model.archs.mambair import ChannelAttention
from model.evaluation.profile import count, format_table, parse_size, scan_macs

pytestmark = pytest.mark.usefixtures("ref_scan")


def _conv_macs_per_pixel(net: torch.nn.Module, skip=()) -> int:
    return sum(m.out_channels * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
               for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m not in skip)


def test_v2_counts_match_shapes():
    net = build(V2_CFG)
    L = 16 * 16  # a 13x15 image pads to the 16x16 grid (window 8); every module of the light net runs there
    got = count(net, torch.rand(1, 3, 13, 15))["macs"]
    assert got["conv"] == L * _conv_macs_per_pixel(net)
    assert got["linear"] == L * sum(m.in_features * m.out_features for m in net.modules()
                                    if isinstance(m, torch.nn.Linear))
    layers = [m for m in net.modules() if m.__class__.__name__ == "AttentiveLayer"]
    assert got["window attn"] == sum(2 * L * 64 * 12 for _ in layers)  # 2 L n c, n = 8*8 tokens per window
    d, n, q, t, r = 12, 4, 1, 6, 4
    assert got["scan state"] == len(layers) * (3 * L * d * n + L * d)
    assert got["scan output"] == len(layers) * (L * d * n + L * d)
    assert got["scan proj"] == len(layers) * (L * d * (q + 2 * n) + L * d * q)
    assert got["prompt"] == len(layers) * (t * r * n + L * t * n)


def test_v1_counts_match_shapes():
    net = build(V1_CFG)
    L = 10 * 11  # MambaIR does not pad
    att = [c for m in net.modules() if isinstance(m, ChannelAttention) for c in m.modules()
           if isinstance(c, torch.nn.Conv2d)]
    got = count(net, torch.rand(1, 3, 10, 11))
    # Channel-attention convs run on the 1x1 pooled map, every other conv on the full grid.
    assert got["macs"]["conv"] == L * _conv_macs_per_pixel(net, att) + sum(
        m.out_channels * m.in_channels for m in att)
    blocks = [m for m in net.modules() if m.__class__.__name__ == "SS2D"]
    d, n = blocks[0].d_inner, 4
    assert got["macs"]["scan state"] == len(blocks) * (3 * L * 4 * d * n + L * 4 * d)
    assert got["macs"]["window attn"] == 0 and got["macs"]["prompt"] == 0
    assert got["moves"]["sort"] == 0
    assert got["total"] == sum(got["macs"].values())


def _hand_scan(u, delta, A, B, C, D):
    """A loop scan over python floats that counts every multiplication it does."""
    d_, l_ = u.shape
    n_ = A.shape[1]
    muls = 0
    y = torch.zeros(d_, l_, dtype=torch.float64)
    for d in range(d_):
        h = [0.0] * n_
        for t in range(l_):
            du = float(delta[d, t]) * float(u[d, t])
            muls += 1
            acc = 0.0
            for k in range(n_):
                a = float(torch.exp(torch.tensor(float(delta[d, t]) * float(A[d, k]))))
                bu = du * float(B[k, t])
                h[k] = a * h[k] + bu
                acc += float(C[k, t]) * h[k]
                muls += 4  # delta*A, du*B, a*h, C*h
            y[d, t] = acc + float(D[d]) * float(u[d, t])
            muls += 1
    return y, muls


def test_scan_formula_equals_a_hand_count():
    g = torch.Generator().manual_seed(0)
    d, n, l = 3, 2, 5
    u = torch.randn(d, l, generator=g, dtype=torch.float64)
    delta = F.softplus(torch.randn(d, l, generator=g, dtype=torch.float64))
    A = -torch.rand(d, n, generator=g, dtype=torch.float64)
    B = torch.randn(n, l, generator=g, dtype=torch.float64)
    C = torch.randn(n, l, generator=g, dtype=torch.float64)
    D = torch.randn(d, generator=g, dtype=torch.float64)
    y, muls = _hand_scan(u, delta, A, B, C, D)
    ref = scan.selective_scan_ref(u[None], delta[None], A, B[None], C[None], D, None, None, False)[0]
    torch.testing.assert_close(y, ref.double())  # the hand loop is a correct scan
    assert sum(scan_macs(1, l, d, n).values()) == muls


def test_table_and_sizes():
    net = build(V2_CFG)
    r = {"preset": "tiny", "size": [13, 15], "backend": "ref", **count(net, torch.rand(1, 3, 13, 15))}
    table = format_table([r])
    assert "| scan state |" in table and "tiny 13x15" in table
    assert parse_size("64") == (64, 64) and parse_size("180x320") == (180, 320)
    with pytest.raises(ValueError):
        parse_size("1x2x3")


def test_reported_figures_sit_beside_ours_only_at_their_size():
    """compare_reported: params ours/reported always; MACs only when input x scale = the figure's output."""
    from model.evaluation.profile import Reported, compare_reported, format_reported

    rep = (Reported("mambairv2_lightSR_x4", 800_000, 80.0, (720, 1280), "test source"),)
    r = {"preset": "mambairv2_lightSR_x4", "size": [180, 320], "params": 790_000, "total": 60_000_000_000,
         "official_rule": 100_000_000_000}
    (row,) = compare_reported([r], rep)
    assert row["params_ratio"] == pytest.approx(790 / 800)
    assert row["macs_ratio"] == pytest.approx(60 / 80)
    assert row["official_rule_ratio"] == pytest.approx(100 / 80)
    text = format_reported([row])
    assert "ours/reported 0.75" in text and "official rule / reported 1.25" in text and "test source" in text
    (other,) = compare_reported([{**r, "size": [64, 64]}], rep)  # another input size: no MAC ratio
    assert other["macs_ratio"] is None and other["params_ratio"] == pytest.approx(790 / 800)
    assert "profile this input size" in format_reported([other])
    assert compare_reported([{**r, "preset": "MambaIR_SR_x2"}], rep) == []


def test_reported_params_match_our_presets():
    """Every published #Params agrees with our build of the preset to 1% (the figures are rounded to 1K)."""
    from model import PRESETS
    from model.evaluation.profile import REPORTED

    for rep in REPORTED:
        ours = sum(p.numel() for p in build(PRESETS[rep.preset]).parameters())
        assert abs(ours / rep.params - 1) < 0.01, (rep.preset, ours, rep.params)
