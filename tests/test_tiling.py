"""Tiled inference: coverage, exactness with one tile, seam-free blending, progress, gradients."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.archs import build
from model.config import MambaIRConfig, MambaIRv2LightConfig
from model.tiling import plan_tiles, tile_starts, tiled_forward


class NearestUp(nn.Module):
    """Identity upsampler: nearest-neighbour x s (exactly tile-invariant)."""

    def __init__(self, scale: int):
        super().__init__()
        self.config = SimpleNamespace(upscale=scale)
        self.dummy = nn.Parameter(torch.zeros(()))  # so that the module has a device

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.config.upscale, mode="nearest")


class LocalConvNet(nn.Module):
    """Two 3x3 convs (receptive radius 2 input pixels) then nearest x s: a purely local model."""

    def __init__(self, scale: int):
        super().__init__()
        self.config = SimpleNamespace(upscale=scale)
        g = torch.Generator().manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 3, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        y = self.c2(torch.tanh(self.c1(x)))  # (1, 3, H, W)
        return F.interpolate(y, scale_factor=self.config.upscale, mode="nearest")


def tiny_v2(scale=2):
    torch.manual_seed(0)
    cfg = MambaIRv2LightConfig(upscale=scale, embed_dim=16, d_state=4, depths=(1,), num_heads=(2,),
                               window_size=8, inner_rank=4, num_tokens=8)
    return build(cfg)


def tiny_v1(scale=2):
    torch.manual_seed(0)
    cfg = MambaIRConfig(upscale=scale, embed_dim=30, d_state=4, depths=(1,), mlp_ratio=1.0,
                        upsampler="pixelshuffledirect")
    return build(cfg)


@pytest.mark.parametrize("size,tile,overlap", [(40, 16, 4), (37, 16, 5), (16, 16, 4), (10, 16, 4),
                                               (100, 33, 0), (17, 9, 8)])
def test_tile_starts_cover_with_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    t = min(tile, size)
    covered = torch.zeros(size, dtype=torch.bool)
    for s in starts:
        assert 0 <= s and s + t <= size
        covered[s:s + t] = True
    assert covered.all()
    assert starts == sorted(set(starts))
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + t - b >= overlap  # consecutive tiles overlap at least `overlap`


def test_plan_tiles_cover_the_image():
    boxes = plan_tiles(45, 70, 20, 6)
    hits = torch.zeros(45, 70, dtype=torch.int64)
    for y0, y1, x0, x1 in boxes:
        assert y1 - y0 == 20 and x1 - x0 == 20
        hits[y0:y1, x0:x1] += 1
    assert (hits >= 1).all()
    assert len(boxes) == len(tile_starts(45, 20, 6)) * len(tile_starts(70, 20, 6))


@pytest.mark.parametrize("tile,overlap", [(0, 0), (8, 8), (8, 9), (8, -1)])
def test_bad_tile_arguments(tile, overlap):
    with pytest.raises(ValueError):
        tiled_forward(NearestUp(2), torch.rand(1, 3, 20, 20), tile=tile, overlap=overlap)


@pytest.mark.parametrize("scale", [1, 3])
def test_identity_upsampler_is_seamless(scale):
    net = NearestUp(scale)
    x = torch.rand(1, 3, 29, 41)
    calls = []
    y = tiled_forward(net, x, tile=12, overlap=4, progress=lambda d, t: calls.append((d, t)))
    assert y.shape == (1, 3, 29 * scale, 41 * scale)
    torch.testing.assert_close(y, net(x), atol=1e-6, rtol=0)
    total = len(plan_tiles(29, 41, 12, 4))
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_local_model_with_enough_overlap_equals_untiled():
    net = LocalConvNet(2)
    x = torch.rand(1, 3, 50, 45)
    with torch.no_grad():
        ref = net(x)
        tiled = tiled_forward(net, x, tile=16, overlap=12)  # outer quarter = 3 px > radius 2
        cut = tiled_forward(net, x, tile=16, overlap=0)  # hard cuts: zero padding at every seam
    torch.testing.assert_close(tiled, ref, atol=1e-5, rtol=0)
    assert (cut - ref).abs().max() > 1e-3  # the comparison above can fail


def test_gradients_flow_through_tiles():
    net = NearestUp(2)
    x = torch.rand(1, 3, 20, 23, requires_grad=True)
    y = tiled_forward(net, x, tile=8, overlap=4)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, torch.full_like(x, 4.0))  # each input pixel feeds s*s outputs
    with torch.no_grad():
        assert tiled_forward(net, x, tile=8, overlap=4).grad_fn is None


@pytest.mark.parametrize("make", [tiny_v2, tiny_v1])
def test_one_big_tile_is_exactly_untiled(make):
    net = make()
    x = torch.rand(1, 3, 21, 26)
    with torch.no_grad():
        ref = net(x)
        y = tiled_forward(net, x, tile=26, overlap=4)
    assert torch.equal(y, ref)


def seam_excess(y: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest change, vs the untiled output, of the mean jump between neighbouring rows/columns."""
    worst = 0.0
    for dim in (2, 3):
        jump = y.diff(dim=dim).abs().mean(dim=(0, 1, 5 - dim))  # one value per row (column) pair
        jump_ref = ref.diff(dim=dim).abs().mean(dim=(0, 1, 5 - dim))
        worst = max(worst, (jump - jump_ref).abs().max().item())
    return worst


def test_real_model_tiled_is_close_and_seamless():
    """Tiles change what SGN/scans see, so outputs differ a little, but no seam appears."""
    net = tiny_v2(2)
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = net(x)
        y = tiled_forward(net, x, tile=24, overlap=8)  # tiles and image multiples of the window
        cut = tiled_forward(net, x, tile=24, overlap=0)  # hard cuts, for contrast
    assert y.shape == ref.shape == (1, 3, 64, 96)
    assert (y - ref).abs().max() < 0.1
    assert (y - ref).abs().mean() < 0.01 * ref.std()
    assert seam_excess(y, ref) < 0.01
    assert seam_excess(cut, ref) > 0.03  # the seam measure does see a hard cut
