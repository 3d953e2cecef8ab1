"""Every official preset builds with exactly the official state_dict keys, shapes and size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.archs import build
from model.config import PRESETS, MambaIRConfig, MambaIRv2Config, MambaIRv2LightConfig

SKELETONS = json.loads((Path(__file__).parent / "data" / "official_skeletons.json").read_text())


@pytest.mark.parametrize("name", sorted(SKELETONS))
def test_preset_matches_official_skeleton(name: str) -> None:
    skeleton = SKELETONS[name]
    cfg = PRESETS[name]
    assert cfg.arch == skeleton["arch"]
    with torch.device("meta"):  # shapes only: no memory, no init cost
        net = build(cfg)
    assert type(net).__name__ == skeleton["arch"]
    assert net.config is cfg
    assert not net.training
    shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert sorted(set(shapes) - set(skeleton["keys"])) == []
    assert sorted(set(skeleton["keys"]) - set(shapes)) == []
    wrong = {k: (shapes[k], s) for k, s in skeleton["keys"].items() if shapes[k] != s}
    assert wrong == {}
    assert sum(p.numel() for p in net.parameters()) == skeleton["params"]


TINY_V2 = dict(img_size=8, embed_dim=12, d_state=4, depths=(2,), num_heads=(2,), window_size=4,
               inner_rank=4, num_tokens=5, mlp_ratio=1.0)
TINY_V1 = dict(img_size=8, embed_dim=30, d_state=4, depths=(1,), mlp_ratio=1.2)


@pytest.mark.parametrize("cfg", [
    MambaIRv2Config(upscale=3, upsampler="pixelshuffle", **TINY_V2),
    MambaIRv2Config(upscale=4, upsampler="nearest+conv", **TINY_V2),
    MambaIRv2Config(upscale=1, in_chans=1, upsampler="", **TINY_V2),
    MambaIRv2LightConfig(upscale=2, **TINY_V2),
    MambaIRConfig(upscale=4, upsampler="nearest+conv", **TINY_V1),
    MambaIRConfig(upscale=2, upsampler="pixelshuffle", resi_connection="3conv", **TINY_V1),
    MambaIRConfig(upscale=1, in_chans=1, upsampler="", **TINY_V1),
], ids=lambda c: f"{c.arch}-{c.upsampler or 'restore'}-x{c.upscale}")
def test_every_upsampler_runs(cfg) -> None:
    torch.manual_seed(0)
    net = build(cfg)
    x = torch.rand(1, cfg.in_chans, 6, 7)  # not a multiple of the window: v2 pads, then crops
    with torch.no_grad():
        y = net(x)
        assert y.shape == (1, cfg.in_chans, 6 * cfg.upscale, 7 * cfg.upscale)
        assert torch.isfinite(y).all()
        if cfg.upsampler == "":
            # Restoration predicts a residual: zeroing conv_last gives back the input exactly.
            net.conv_last.weight.zero_()
            net.conv_last.bias.zero_()
            assert torch.allclose(net(x), x, atol=1e-6)


@pytest.mark.parametrize("hw", [(4, 11), (3, 9), (11, 4), (8, 8)])
def test_one_window_high_or_wide_images(hw: tuple[int, int]) -> None:
    # A padded grid one window high made the shifted-window mask non-contiguous (a crash once).
    torch.manual_seed(0)
    net = build(MambaIRv2LightConfig(upscale=2, **TINY_V2))
    with torch.no_grad():
        y = net(torch.rand(1, 3, *hw))
    assert y.shape == (1, 3, 2 * hw[0], 2 * hw[1])
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("cfg", [MambaIRv2LightConfig(upscale=2, **TINY_V2),
                                 MambaIRConfig(upscale=2, upsampler="pixelshuffledirect", **TINY_V1)],
                         ids=lambda c: c.arch)
def test_conv_weights_are_channels_last_and_stay_so(cfg) -> None:
    """build stores every conv weight channels-last (oneDNN's fast NHWC path); loading an NCHW
    state_dict keeps the layout and the values, and the output matches NCHW weights' to rounding."""
    torch.manual_seed(0)
    net = build(cfg)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert any(not m.weight.is_contiguous() for m in convs)  # not only 1x1 kernels, where both hold
    nchw = {k: v.contiguous() for k, v in net.state_dict().items()}
    other = build(cfg)
    other.load_state_dict(nchw)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
               for m in other.modules() if isinstance(m, torch.nn.Conv2d))
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), nchw.values(), strict=True))
    plain = type(net)(**cfg.kwargs()).eval()  # the class alone: NCHW weights
    plain.load_state_dict(nchw)
    x = torch.rand(1, cfg.in_chans, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(other(x), plain(x), rtol=1e-5, atol=1e-5)
