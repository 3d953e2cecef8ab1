"""Round trip over a grid of tiny configs: build -> save (.pth BasicSR dict, .safetensors) -> load_checkpoint.

The loaded network must have the same config (detected from keys and shapes only) and the same
tensors; one tiny forward per architecture checks that the loaded weights compute the same output.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from model import build, load_checkpoint
from model.config import Config, MambaIRConfig, MambaIRv2Config, MambaIRv2LightConfig
from model.detect import detect_config, expected_shapes

V2 = MambaIRv2Config
V2L = MambaIRv2LightConfig
V1 = MambaIRConfig

# Tiny but varied: every detected hyper-parameter takes at least two values across the grid.
# MambaIR needs embed_dim >= 30 (its channel attention squeezes by 30). MambaIRv2Light always uses
# a 5x5 gate conv, so its convffn_kernel_size stays at the default 5 (it leaves no trace).
GRID: dict[str, Config] = {
    "v2_ps_x2_k3": V2(upscale=2, embed_dim=12, depths=(1,), num_heads=(2,), window_size=4, d_state=4,
                      inner_rank=4, num_tokens=6, convffn_kernel_size=3, mlp_ratio=2.0,
                      upsampler="pixelshuffle"),
    "v2_ps_x3_3conv_r1.2": V2(upscale=3, embed_dim=16, depths=(2, 1), num_heads=(2, 4), window_size=8,
                              d_state=3, inner_rank=5, num_tokens=8, convffn_kernel_size=5, mlp_ratio=1.2,
                              upsampler="pixelshuffle", resi_connection="3conv"),
    "v2_ps_x4": V2(upscale=4, embed_dim=8, depths=(1, 1), num_heads=(1, 2), window_size=2, d_state=2,
                   inner_rank=3, num_tokens=4, mlp_ratio=1.5, upsampler="pixelshuffle"),
    "v2_none_gray": V2(upscale=1, in_chans=1, embed_dim=12, depths=(1, 1, 1), num_heads=(3, 1, 2),
                       window_size=4, d_state=5, inner_rank=2, num_tokens=3, convffn_kernel_size=3,
                       mlp_ratio=2.0, upsampler=""),
    "v2_direct_x3": V2(upscale=3, embed_dim=9, depths=(1,), num_heads=(3,), window_size=4, d_state=2,
                       inner_rank=2, num_tokens=5, mlp_ratio=2.0, upsampler="pixelshuffledirect"),
    "v2_nearest_x4": V2(upscale=4, embed_dim=12, depths=(1,), num_heads=(2,), window_size=4, d_state=2,
                        inner_rank=2, num_tokens=4, mlp_ratio=1.0, upsampler="nearest+conv"),
    "v2l_direct_x2": V2L(upscale=2, embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, d_state=4,
                         inner_rank=4, num_tokens=6, mlp_ratio=1.0, upsampler="pixelshuffledirect"),
    "v2l_direct_x4_gray_3conv": V2L(upscale=4, in_chans=1, embed_dim=16, depths=(1, 2), num_heads=(4, 2),
                                    window_size=8, d_state=3, inner_rank=6, num_tokens=5, mlp_ratio=2.0,
                                    upsampler="pixelshuffledirect", resi_connection="3conv"),
    "v2l_none": V2L(upscale=1, embed_dim=10, depths=(1,), num_heads=(1,), window_size=4, d_state=2,
                    inner_rank=2, num_tokens=3, mlp_ratio=1.2, upsampler=""),
    "v2l_ps_x2": V2L(upscale=2, embed_dim=12, depths=(1,), num_heads=(2,), window_size=4, d_state=2,
                     inner_rank=2, num_tokens=3, mlp_ratio=2.0, upsampler="pixelshuffle"),
    "v1_direct_x2_r1.2": V1(upscale=2, embed_dim=30, depths=(1,), d_state=2, mlp_ratio=1.2,
                            upsampler="pixelshuffledirect"),
    "v1_ps_x3_3conv": V1(upscale=3, embed_dim=32, depths=(1, 2), d_state=4, mlp_ratio=2.0,
                         upsampler="pixelshuffle", resi_connection="3conv"),
    "v1_ps_x4": V1(upscale=4, embed_dim=30, depths=(1,), d_state=3, mlp_ratio=1.5, upsampler="pixelshuffle"),
    "v1_none_gray": V1(upscale=1, in_chans=1, embed_dim=30, depths=(2,), d_state=2, mlp_ratio=1.2,
                       upsampler=""),
    "v1_nearest_x4": V1(upscale=4, embed_dim=34, depths=(1,), d_state=2, mlp_ratio=2.0,
                        upsampler="nearest+conv"),
}


def _save(net: torch.nn.Module, tmp_path: Path, fmt: str) -> Path:
    sd = net.state_dict()
    if fmt == "pth":
        path = tmp_path / "net_g_latest.pth"  # a name that says nothing about the architecture
        torch.save({"params": sd}, path)
    else:
        path = tmp_path / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
@pytest.mark.parametrize("name", sorted(GRID))
def test_roundtrip(name: str, fmt: str, tmp_path: Path) -> None:
    cfg = GRID[name]
    torch.manual_seed(0)
    net = build(cfg)
    sd = net.state_dict()
    # Our expected skeleton and the network agree, so detection sees what build makes.
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_shapes(cfg)
    loaded = load_checkpoint(_save(net, tmp_path, fmt))
    assert type(loaded.config) is type(cfg)
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(cfg)
    assert not loaded.training
    loaded_sd = loaded.state_dict()
    assert list(loaded_sd) == list(sd)
    for key, value in sd.items():
        assert torch.equal(loaded_sd[key], value), key


def test_grid_varies_every_detected_field() -> None:
    for field in ("embed_dim", "depths", "d_state", "mlp_ratio", "upsampler", "upscale", "in_chans",
                  "resi_connection"):
        assert len({getattr(c, field) for c in GRID.values()}) >= 2, field
    v2 = [c for c in GRID.values() if not isinstance(c, V1)]
    for field in ("num_heads", "window_size", "inner_rank", "num_tokens", "convffn_kernel_size"):
        assert len({getattr(c, field) for c in v2}) >= 2, field
    assert {1.2, 2.0} <= {c.mlp_ratio for c in GRID.values()}


@pytest.mark.parametrize("name", ["v2_ps_x3_3conv_r1.2", "v2l_direct_x2", "v1_direct_x2_r1.2"])
def test_loaded_network_computes_the_same(name: str, tmp_path: Path) -> None:
    cfg = GRID[name]
    torch.manual_seed(1)
    net = build(cfg)
    # Random non-trivial values everywhere (fresh builds have constant norms and scales).
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    loaded = load_checkpoint({"params": net.state_dict()})
    x = torch.rand(1, cfg.in_chans, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = net(x), loaded(x)
    assert got.shape == (1, cfg.in_chans, 8 * cfg.upscale, 8 * cfg.upscale)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert detect_config(loaded.state_dict()) == cfg
