"""The oneDNN linear layer (model/layers/onednn.py) against its plain twin, torch's F.linear."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import model.layers.onednn as lin
from model import PRESETS, build
from model.layers import Linear, linear

needs_onednn = pytest.mark.skipif(not lin.ENABLED, reason="oneDNN linear not enabled on this machine")


def _ops(fn) -> set[str]:
    """Names of the operators that fn() ran (torch's profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


@pytest.mark.parametrize("shape,k,n,bias", [((4096, 48), 48, 48, True), ((2, 300, 60), 60, 144, False),
                                            ((3, 5, 7, 24), 24, 48, True), ((1, 1), 1, 3, True)])
def test_forward_and_input_gradient_match_f_linear(shape, k, n, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape[:-1], k, generator=g, requires_grad=True)
    w = torch.randn(n, k, generator=g)
    b = torch.randn(n, generator=g) if bias else None
    y, y_ref = linear(x, w, b), F.linear(x, w, b)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = torch.randn(y.shape, generator=g)
    (gx,), (gx_ref,) = torch.autograd.grad(y, x, dy), torch.autograd.grad(y_ref, x, dy)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)
    # an expanded upstream gradient (stride 0), as .sum() gives
    (gx,) = torch.autograd.grad(linear(x, w, b).sum(), x)
    (gx_ref,) = torch.autograd.grad(F.linear(x, w, b).sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)


def test_non_contiguous_input_matches():
    x = torch.randn(64, 3, 48).transpose(0, 1)  # (3, 64, 48), rows not contiguous
    w, b = torch.randn(16, 48), torch.randn(16)
    torch.testing.assert_close(linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_runs_on_onednn_forward_and_backward():
    x = torch.randn(2, 256, 48, requires_grad=True)
    w, b = torch.randn(48, 48), torch.randn(48)
    with torch.no_grad():
        assert "mkldnn::_linear_pointwise" in _ops(lambda: linear(x, w, b))
    y = linear(x, w, b)
    assert type(y.grad_fn).__name__ == "_InputGradLinearBackward"
    ops = _ops(lambda: torch.autograd.grad(y.sum(), x))
    assert "mkldnn::_linear_pointwise" in ops and "aten::mm" not in ops


def test_trainable_weight_keeps_f_linear_and_gets_its_gradient():
    x = torch.randn(8, 48, requires_grad=True)
    layer = Linear(48, 24)
    y = layer(x)
    assert "InputGrad" not in type(y.grad_fn).__name__
    (gw,) = torch.autograd.grad(y.sum(), layer.weight)
    torch.testing.assert_close(gw, x.detach().sum(0).expand(24, 48))


def test_disabled_traced_and_other_dtypes_use_f_linear(monkeypatch):
    x, w = torch.randn(4, 48), torch.randn(8, 48)
    assert not lin.supported(x.double(), w.double()) and not lin.supported(x, w, torch.randn(8).double())
    monkeypatch.setattr(lin, "ENABLED", False)
    assert not lin.supported(x, w)
    with torch.no_grad():
        assert "mkldnn::_linear_pointwise" not in _ops(lambda: linear(x, w))
    monkeypatch.setattr(lin, "ENABLED", True)
    traced = torch.jit.trace(Linear(48, 8).eval(), x)  # a trace records F.linear, not the oneDNN op
    assert "_linear_pointwise" not in str(traced.graph)


def test_linear_keeps_nn_linear_state_dict():
    layer = Linear(48, 24, bias=False)
    assert isinstance(layer, torch.nn.Linear)
    assert list(layer.state_dict()) == ["weight"]


@needs_onednn
@pytest.mark.parametrize("preset", ["mambairv2_lightSR_x4", "MambaIR_lightSR_x4"])
def test_networks_same_output_and_lam_gradient_with_and_without_onednn(preset, monkeypatch):
    torch.manual_seed(0)
    net = build(PRESETS[preset]).eval().requires_grad_(False)
    x = torch.rand(2, 3, 24, 24)

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        xg = x.clone().requires_grad_()
        y = net(xg)
        (g,) = torch.autograd.grad(y[..., 30:46, 30:46].sum(), xg)
        return y.detach(), g

    monkeypatch.setattr(lin, "ENABLED", True)
    assert "mkldnn::_linear_pointwise" in _ops(run)
    y1, g1 = run()
    monkeypatch.setattr(lin, "ENABLED", False)
    y0, g0 = run()
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-6)
